//! Session and user-management tests on real vaults.

use secrecy::{ExposeSecret, SecretString};

use super::*;

struct Clinic {
    _tmp: tempfile::TempDir,
    config: VaultConfig,
}

fn pw(s: &str) -> SecretString {
    SecretString::from(s.to_owned())
}

impl Clinic {
    fn new() -> (Clinic, RecoveryKey) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let config = VaultConfig {
            dir: tmp.path().join("vault"),
            state_dir: tmp.path().join("state"),
            kdf: KdfPolicy::insecure_fast_for_tests(),
        };
        let (session, recovery) =
            Session::create(config.clone(), "admin", &pw("admin-password")).expect("creates");
        session.lock().expect("locks");
        (Clinic { _tmp: tmp, config }, recovery)
    }

    fn unlock(&self, user: &str, password: &str) -> Result<Session, CoreError> {
        Session::unlock(self.config.clone(), user, &pw(password))
    }

    fn admin(&self) -> Session {
        self.unlock("admin", "admin-password")
            .expect("admin unlocks")
    }
}

#[test]
fn the_first_user_is_an_admin() {
    let (clinic, _) = Clinic::new();
    let mut session = clinic.admin();
    assert_eq!(
        session.signed_in(),
        SignedIn {
            user: "admin".into(),
            role: Role::Admin,
            recovery: false
        }
    );
    let users = session.users().expect("lists");
    assert_eq!(users.len(), 1);
    assert_eq!(users[0].role, Role::Admin);
}

#[test]
fn admins_add_users_who_then_sign_in_with_their_role() {
    let (clinic, _) = Clinic::new();
    let mut admin = clinic.admin();
    admin
        .add_user("nurse.joy", Role::Nurse, None, &pw("nurse-password"))
        .expect("adds");
    let err = admin
        .add_user("NURSE.JOY", Role::Nurse, None, &pw("nurse-password"))
        .expect_err("duplicate");
    assert_eq!(err.code(), "conflict");
    let err = admin
        .add_user("bad name", Role::Nurse, None, &pw("nurse-password"))
        .expect_err("invalid");
    assert_eq!(err.code(), "invalid_input");
    let err = admin
        .add_user("shorty", Role::Nurse, None, &pw("short"))
        .expect_err("weak");
    assert_eq!(err.code(), "invalid_input");
    admin.lock().expect("locks");
    let nurse = clinic
        .unlock("nurse.joy", "nurse-password")
        .expect("nurse unlocks");
    assert_eq!(nurse.signed_in().role, Role::Nurse);
}

#[test]
fn a_role_without_the_permission_is_refused_and_nothing_changes() {
    let (clinic, _) = Clinic::new();
    let mut admin = clinic.admin();
    admin
        .add_user("dr.who", Role::Physician, None, &pw("doctor-password"))
        .expect("adds");
    admin.lock().expect("locks");
    let mut doctor = clinic.unlock("dr.who", "doctor-password").expect("unlocks");
    let err = doctor
        .add_user("intruder", Role::Admin, None, &pw("intruder-password"))
        .expect_err("forbidden");
    assert!(matches!(
        err,
        CoreError::Forbidden(Denial::Role {
            permission: Permission::ManageUsers,
            ..
        })
    ));
    assert_eq!(err.kind(), ErrorKind::Forbidden);
    assert!(err.to_string().contains("not allowed to manage users"));
    assert_eq!(
        doctor.export_key().expect_err("forbidden").code(),
        "forbidden"
    );
    assert_eq!(doctor.rekey().expect_err("forbidden").code(), "forbidden");
    assert_eq!(doctor.users().expect_err("forbidden").code(), "forbidden");
    doctor.lock().expect("locks");
    assert_eq!(
        clinic
            .unlock("intruder", "intruder-password")
            .expect_err("no such user")
            .code(),
        "auth_failed"
    );
    assert_eq!(clinic.admin().users().expect("lists").len(), 2);
}

#[test]
fn a_user_signs_in_however_their_name_is_typed() {
    let (clinic, _) = Clinic::new();
    let mut admin = clinic.admin();
    admin
        .add_user("Nurse.Lee", Role::Nurse, None, &pw("nurse-password"))
        .expect("adds");
    admin.lock().expect("locks");
    for typed in ["nurse.lee", " NURSE.LEE ", "Nurse.Lee"] {
        let session = clinic.unlock(typed, "nurse-password").expect(typed);
        assert_eq!(session.signed_in().user, "Nurse.Lee", "{typed}");
        assert_eq!(session.signed_in().role, Role::Nurse);
    }
}

#[test]
fn disabling_a_user_closes_their_way_in() {
    let (clinic, _) = Clinic::new();
    let mut admin = clinic.admin();
    admin
        .add_user("temp", Role::FrontDesk, None, &pw("temp-password"))
        .expect("adds");
    admin.disable_user("temp").expect("disables");
    assert_eq!(
        admin.disable_user("admin").expect_err("self").code(),
        "conflict"
    );
    assert_eq!(
        admin.disable_user("ghost").expect_err("missing").code(),
        "not_found"
    );
    let users = admin.users().expect("lists");
    assert!(
        users
            .iter()
            .any(|u| u.name.as_str() == "temp" && u.disabled),
        "the record stays"
    );
    admin.lock().expect("locks");
    assert_eq!(
        clinic
            .unlock("temp", "temp-password")
            .expect_err("disabled")
            .code(),
        "auth_failed"
    );
}

#[test]
fn passwords_change_for_oneself_and_reset_for_others() {
    let (clinic, recovery) = Clinic::new();
    let mut admin = clinic.admin();
    admin
        .add_user("bob", Role::Nurse, None, &pw("bob-password"))
        .expect("adds");
    admin
        .change_own_password(&pw("admin-password-2"))
        .expect("changes");
    admin
        .reset_password("bob", &pw("bob-password-2"))
        .expect("resets");
    admin.lock().expect("locks");
    assert!(clinic.unlock("admin", "admin-password").is_err());
    assert!(clinic.unlock("bob", "bob-password").is_err());
    let mut bob = clinic
        .unlock("bob", "bob-password-2")
        .expect("new password");
    assert_eq!(
        bob.reset_password("admin", &pw("hijacked-pw"))
            .expect_err("forbidden")
            .code(),
        "forbidden"
    );
    bob.change_own_password(&pw("bob-password-3"))
        .expect("own change");
    bob.lock().expect("locks");

    // An admin who forgot their password: the recovery key resets it.
    let mut rescue =
        Session::unlock_with_recovery_key(clinic.config.clone(), &recovery).expect("recovery");
    assert!(rescue.signed_in().recovery);
    rescue
        .reset_password("admin", &pw("admin-password-3"))
        .expect("resets");
    rescue.lock().expect("locks");
    clinic
        .unlock("admin", "admin-password-3")
        .expect("admin is back");
    clinic
        .unlock("bob", "bob-password-3")
        .expect("bob unaffected");
}

#[test]
fn rekey_keeps_every_user_and_changes_the_key() {
    let (clinic, recovery) = Clinic::new();
    let mut admin = clinic.admin();
    admin
        .add_user("carol", Role::Auditor, None, &pw("carol-password"))
        .expect("adds");
    let before = admin
        .export_key()
        .expect("exports")
        .expose_secret()
        .to_owned();
    admin.rekey().expect("rekeys");
    let after = admin
        .export_key()
        .expect("exports")
        .expose_secret()
        .to_owned();
    assert_ne!(before, after);
    admin.lock().expect("locks");
    clinic
        .unlock("carol", "carol-password")
        .expect("carol opens");
    Session::unlock_with_recovery_key(clinic.config.clone(), &recovery).expect("recovery opens");
}
