//! Vault tests on real SQLCipher files in temporary folders.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use rusqlite::Connection;
use secrecy::{ExposeSecret, SecretString};

use super::*;

const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "notes",
    sql: "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL);",
}];

struct Fixture {
    _tmp: tempfile::TempDir,
    config: VaultConfig,
}

impl Fixture {
    fn new() -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let config = VaultConfig {
            dir: tmp.path().join("vault"),
            state_dir: tmp.path().join("state"),
            kdf: KdfPolicy::insecure_fast_for_tests(),
        };
        Self { _tmp: tmp, config }
    }

    fn dir(&self) -> &Path {
        &self.config.dir
    }

    fn create(&self) -> RecoveryKey {
        let (vault, recovery) = Vault::create(
            self.config.clone(),
            "alice",
            &pw("alice-password"),
            MIGRATIONS,
        )
        .expect("creates");
        vault.lock().expect("locks");
        recovery
    }

    fn unlock(&self, user: &str, password: &str) -> Result<Vault, VaultError> {
        let password = pw(password);
        Vault::unlock(
            self.config.clone(),
            Credential::Password {
                user,
                password: &password,
            },
            MIGRATIONS,
        )
    }
}

impl Fixture {
    fn lockout(&self) -> Lockout {
        Lockout::new(
            self.dir(),
            &self.config.state_dir,
            &Vault::info(self.dir()).expect("info").vault_id,
        )
    }
}

const LOCKOUT_FILE_NAME: &str = crate::lockout::FILE_NAME;

fn pw(s: &str) -> SecretString {
    SecretString::from(s.to_owned())
}

fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(dir)
        .expect("reads dir")
        .map(|e| {
            let e = e.expect("entry");
            (
                e.file_name().to_string_lossy().into_owned(),
                fs::read(e.path()).expect("reads file"),
            )
        })
        .collect()
}

fn raw_open(dir: &Path, hex_key: &str) -> rusqlite::Result<i64> {
    let conn = Connection::open(dir.join(DB_FILE_NAME))?;
    conn.pragma_update(None, "key", format!("x'{hex_key}'"))?;
    conn.query_row("SELECT count(*) FROM notes", [], |r| r.get(0))
}

#[test]
fn create_then_unlock_with_password_and_recovery_key() {
    let f = Fixture::new();
    let recovery = f.create();
    let vault = f.unlock("alice", "alice-password").expect("unlocks");
    assert_eq!(vault.unlocker(), &Unlocker::User("alice".into()));
    vault.lock().expect("locks");
    let typed = RecoveryKey::parse(recovery.display_grouped().expose_secret()).expect("parses");
    let vault = Vault::unlock(f.config.clone(), Credential::Recovery(&typed), MIGRATIONS)
        .expect("recovery unlocks");
    assert_eq!(vault.unlocker(), &Unlocker::Recovery);
}

#[test]
fn a_second_create_in_the_same_folder_is_refused() {
    let f = Fixture::new();
    f.create();
    let before = snapshot(f.dir());
    let err = Vault::create(f.config.clone(), "bob", &pw("bob-password"), MIGRATIONS)
        .expect_err("refused");
    assert!(matches!(err, VaultError::AlreadyExists(_)));
    assert_eq!(snapshot(f.dir()), before);
}

#[test]
fn wrong_password_and_unknown_user_change_only_the_failure_count() {
    let f = Fixture::new();
    f.create();
    let mut before = snapshot(f.dir());
    let err = f.unlock("alice", "not-her-password").expect_err("refused");
    assert!(matches!(err, VaultError::WrongCredential(_)), "{err:?}");
    assert!(err.to_string().contains("password is wrong"));
    // A password typed into the user-name field.
    let err = f
        .unlock("Correct-Horse-Battery-9", "whatever-password")
        .expect_err("refused");
    assert!(matches!(err, VaultError::WrongCredential(_)));
    let mut after = snapshot(f.dir());
    let failures = after
        .remove(LOCKOUT_FILE_NAME)
        .expect("counted in the vault folder");
    before.remove(LOCKOUT_FILE_NAME);
    assert_eq!(after, before, "nothing else changed");
    let text = String::from_utf8_lossy(&failures).to_lowercase();
    assert!(
        !text.contains("correct-horse"),
        "the typed name is kept nowhere: {text}"
    );
    assert!(!text.contains("password"), "{text}");
    let kept = f.lockout().unaudited();
    assert_eq!(kept.len(), 2);
    assert_eq!(kept[0].account, "user:alice");
    let tag = kept[1]
        .account
        .strip_prefix("unknown:")
        .expect("as unknown");
    assert_eq!(tag.len(), 12);
    // The same mistyped name gets the same tag; another name another.
    let _ = f.unlock("correct-horse-battery-9", "x");
    let _ = f.unlock("someone-else", "x");
    let kept = f.lockout().unaudited();
    assert_eq!(
        kept[2].account, kept[1].account,
        "case and spaces do not matter"
    );
    assert_ne!(kept[3].account, kept[1].account);
}

#[test]
fn the_failure_count_ignores_the_state_folder_setting() {
    let f = Fixture::new();
    f.create();
    for _ in 0..5 {
        let _ = f.unlock("alice", "guess-guess");
    }
    // A fresh state folder (CHARTROOM_STATE_DIR pointed elsewhere) changes nothing.
    let mut moved = f.config.clone();
    moved.state_dir = f._tmp.path().join("elsewhere");
    let err = Vault::unlock(
        moved,
        Credential::Password {
            user: "alice",
            password: &pw("alice-password"),
        },
        MIGRATIONS,
    )
    .expect_err("still paused");
    assert!(matches!(err, VaultError::LockedOut { .. }), "{err:?}");
}

#[test]
fn repeated_failures_pause_sign_in_even_for_the_right_password() {
    let f = Fixture::new();
    f.create();
    for _ in 0..5 {
        assert!(matches!(
            f.unlock("alice", "guess-guess"),
            Err(VaultError::WrongCredential(_))
        ));
    }
    let err = f.unlock("alice", "alice-password").expect_err("paused");
    assert!(matches!(err, VaultError::LockedOut { .. }), "{err:?}");
    assert!(err.to_string().contains("try again in 30 seconds"), "{err}");
    // Another account is not paused by alice's failures.
    assert!(f.lockout().check("recovery", chrono::Utc::now()).is_ok());
}

#[test]
fn files_hold_no_plaintext() {
    let f = Fixture::new();
    f.create();
    let vault = f.unlock("alice", "alice-password").expect("unlocks");
    let markers = ["MARKER-Zebulon-Quixote", "MARKER-8675309", "alice-password"];
    for m in &markers[..2] {
        vault
            .connection()
            .execute("INSERT INTO notes (body) VALUES (?1)", [m])
            .expect("inserts");
    }
    // Read the WAL while it still holds the frames, before lock checkpoints it.
    let files = snapshot(f.dir());
    assert!(files.contains_key("chartroom.db-wal"), "WAL mode is on");
    for (name, bytes) in &files {
        for m in markers {
            assert!(
                !bytes.windows(m.len()).any(|w| w == m.as_bytes()),
                "{m} found in {name}"
            );
        }
    }
    assert!(!files["chartroom.db"].starts_with(b"SQLite format 3"));
    vault.lock().expect("locks");
}

#[test]
fn exported_key_opens_the_database_with_plain_sqlcipher() {
    let f = Fixture::new();
    f.create();
    let vault = f.unlock("alice", "alice-password").expect("unlocks");
    vault
        .connection()
        .execute("INSERT INTO notes (body) VALUES ('x')", [])
        .expect("inserts");
    let key = vault.export_key();
    assert_eq!(key.expose_secret().len(), 64);
    vault.lock().expect("locks");
    assert_eq!(raw_open(f.dir(), key.expose_secret()).expect("opens"), 1);
    assert!(raw_open(f.dir(), &"00".repeat(32)).is_err());
}

#[test]
fn a_slot_moved_to_another_user_does_not_open() {
    let f = Fixture::new();
    f.create();
    let mut vault = f.unlock("alice", "alice-password").expect("unlocks");
    vault
        .add_user_slot("bob", &pw("bob-password"))
        .expect("adds");
    vault.lock().expect("locks");
    // Rename alice's slot to bob's name: alice's password must not open it as bob.
    let path = f.dir().join(SLOT_FILE_NAME);
    let mut json: serde_json::Value =
        serde_json::from_slice(&fs::read(&path).expect("reads")).expect("json");
    let slots = json["slots"].as_array_mut().expect("slots");
    slots.retain(|s| s["owner"] != "bob");
    slots[0]["owner"] = "bob".into();
    fs::write(&path, serde_json::to_vec(&json).expect("json")).expect("writes");
    let before = snapshot(f.dir());
    assert!(matches!(
        f.unlock("bob", "alice-password"),
        Err(VaultError::WrongCredential(_))
    ));
    let mut after = snapshot(f.dir());
    assert!(
        after.remove(LOCKOUT_FILE_NAME).is_some(),
        "the failure is counted"
    );
    assert_eq!(after, before);
}

#[test]
fn a_slot_file_from_another_vault_does_not_open_this_database() {
    let a = Fixture::new();
    a.create();
    let b = Fixture::new();
    b.create();
    fs::copy(a.dir().join(SLOT_FILE_NAME), b.dir().join(SLOT_FILE_NAME)).expect("copies");
    let before = snapshot(b.dir());
    let err = b.unlock("alice", "alice-password").expect_err("refused");
    assert!(matches!(err, VaultError::KeyDoesNotOpenDatabase), "{err:?}");
    assert_eq!(snapshot(b.dir()), before);
}

#[test]
fn a_damaged_slot_file_or_missing_database_is_a_clear_error() {
    let f = Fixture::new();
    f.create();
    let path = f.dir().join(SLOT_FILE_NAME);
    let good = fs::read(&path).expect("reads");

    fs::write(&path, &good[..good.len() / 2]).expect("truncates");
    let before = snapshot(f.dir());
    let err = f.unlock("alice", "alice-password").expect_err("refused");
    assert!(matches!(err, VaultError::SlotFileInvalid(_)), "{err:?}");
    assert!(err.to_string().contains("damaged or truncated"));
    assert_eq!(snapshot(f.dir()), before);

    // Flip one character inside alice's wrapped identity.
    let text = String::from_utf8(good.clone()).expect("utf8");
    let at = text.find("\"ciphertext\": \"").expect("field") + 16;
    let mut bytes = good.clone();
    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    fs::write(&path, &bytes).expect("writes");
    assert!(f.unlock("alice", "alice-password").is_err());

    fs::write(&path, &good).expect("restores");
    fs::remove_file(f.dir().join(DB_FILE_NAME)).expect("removes db");
    let before = snapshot(f.dir());
    let err = f.unlock("alice", "alice-password").expect_err("refused");
    assert!(matches!(err, VaultError::DatabaseMissing), "{err:?}");
    assert_eq!(snapshot(f.dir()), before, "no empty database was created");

    let empty = tempfile::tempdir().expect("tempdir");
    assert!(matches!(
        Vault::info(empty.path()),
        Err(VaultError::NoVault(_))
    ));
}

#[test]
fn setting_a_slot_replaces_one_or_adds_the_first() {
    let f = Fixture::new();
    f.create();
    let mut vault = f.unlock("alice", "alice-password").expect("unlocks");
    vault
        .add_user_slot("bob", &pw("bob-password"))
        .expect("adds");
    // Bob's slot is replaced; Carol, who has none, gets her first; names are compared in
    // their one folded form.
    vault
        .set_user_slot(" BOB ", &pw("bob-new-password"))
        .expect("replaces");
    vault
        .set_user_slot("carol", &pw("carol-password"))
        .expect("adds");
    vault.lock().expect("locks");
    let slots: serde_json::Value =
        serde_json::from_slice(&fs::read(f.dir().join(SLOT_FILE_NAME)).expect("r")).expect("j");
    assert_eq!(slots["slots"].as_array().expect("slots").len(), 4);
    assert!(f.unlock("bob", "bob-password").is_err());
    f.unlock("bob", "bob-new-password")
        .expect("bob's new password");
    f.unlock("Carol", "carol-password")
        .expect("carol's first slot");
    f.unlock("alice", "alice-password")
        .expect("alice untouched");
}

#[test]
fn password_change_rewraps_one_slot() {
    let f = Fixture::new();
    f.create();
    let mut vault = f.unlock("alice", "alice-password").expect("unlocks");
    vault
        .add_user_slot("bob", &pw("bob-password"))
        .expect("adds");
    let before: serde_json::Value =
        serde_json::from_slice(&fs::read(f.dir().join(SLOT_FILE_NAME)).expect("r")).expect("j");
    vault
        .change_password("alice", &pw("alice-new-password"))
        .expect("changes");
    vault.lock().expect("locks");
    let after: serde_json::Value =
        serde_json::from_slice(&fs::read(f.dir().join(SLOT_FILE_NAME)).expect("r")).expect("j");
    assert_ne!(
        before["slots"][0], after["slots"][0],
        "alice's slot changed"
    );
    assert_eq!(
        before["slots"][1], after["slots"][1],
        "the recovery slot did not"
    );
    assert_eq!(before["slots"][2], after["slots"][2], "bob's slot did not");
    assert!(f.unlock("alice", "alice-password").is_err());
    f.unlock("alice", "alice-new-password")
        .expect("new password")
        .lock()
        .expect("locks");
    f.unlock("bob", "bob-password")
        .expect("bob unaffected")
        .lock()
        .expect("locks");
}

#[test]
fn removed_slot_no_longer_opens_and_the_last_user_slot_stays() {
    let f = Fixture::new();
    f.create();
    let mut vault = f.unlock("alice", "alice-password").expect("unlocks");
    assert!(matches!(
        vault.remove_user_slot("alice"),
        Err(VaultError::LastSlot)
    ));
    vault
        .add_user_slot("bob", &pw("bob-password"))
        .expect("adds");
    assert!(matches!(
        vault.add_user_slot("bob", &pw("x-password")),
        Err(VaultError::SlotExists(_))
    ));
    vault.remove_user_slot("bob").expect("removes");
    vault.lock().expect("locks");
    assert!(matches!(
        f.unlock("bob", "bob-password"),
        Err(VaultError::WrongCredential(_))
    ));
}

fn rekey_fixture() -> (Fixture, RecoveryKey, String) {
    let f = Fixture::new();
    let recovery = f.create();
    let mut vault = f.unlock("alice", "alice-password").expect("unlocks");
    vault
        .add_user_slot("bob", &pw("bob-password"))
        .expect("adds");
    vault
        .connection()
        .execute("INSERT INTO notes (body) VALUES ('kept')", [])
        .expect("inserts");
    let old = vault.export_key().expose_secret().to_owned();
    vault.lock().expect("locks");
    (f, recovery, old)
}

fn assert_every_secret_opens(f: &Fixture, recovery: &RecoveryKey) -> String {
    let mut keys = Vec::new();
    for (user, password) in [("alice", "alice-password"), ("bob", "bob-password")] {
        let vault = f.unlock(user, password).expect("opens");
        let n: i64 = vault
            .connection()
            .query_row("SELECT count(*) FROM notes", [], |r| r.get(0))
            .expect("reads");
        assert_eq!(n, 1, "the record survived");
        keys.push(vault.export_key().expose_secret().to_owned());
        vault.lock().expect("locks");
    }
    let vault = Vault::unlock(f.config.clone(), Credential::Recovery(recovery), MIGRATIONS)
        .expect("recovery opens");
    keys.push(vault.export_key().expose_secret().to_owned());
    vault.lock().expect("locks");
    assert!(
        keys.windows(2).all(|w| w[0] == w[1]),
        "every slot holds the same key"
    );
    assert!(
        !Vault::info(f.dir()).expect("info").rekey_pending,
        "no rekey left half done"
    );
    keys.remove(0)
}

#[test]
fn rekey_keeps_every_slot_working_and_retires_the_old_key() {
    let (f, recovery, old) = rekey_fixture();
    let mut vault = f.unlock("alice", "alice-password").expect("unlocks");
    vault.rekey().expect("rekeys");
    vault.lock().expect("locks");
    let new = assert_every_secret_opens(&f, &recovery);
    assert_ne!(new, old);
    assert!(
        raw_open(f.dir(), &old).is_err(),
        "the old key no longer opens the database"
    );
    assert_eq!(raw_open(f.dir(), &new).expect("new key opens"), 1);
    assert_eq!(Vault::info(f.dir()).expect("info").key_epoch, 1);
}

#[test]
fn rekey_interrupted_at_each_step_leaves_an_openable_vault() {
    for step in [RekeyStep::SlotsPrepared, RekeyStep::DatabaseRekeyed] {
        let (f, recovery, old) = rekey_fixture();
        let mut vault = f.unlock("alice", "alice-password").expect("unlocks");
        vault.rekey_until(Some(step)).expect("runs to the step");
        // The process "dies" here: drop without the remaining steps.
        drop(vault);
        assert!(Vault::info(f.dir()).expect("info").rekey_pending);
        let now = assert_every_secret_opens(&f, &recovery);
        match step {
            RekeyStep::SlotsPrepared => assert_eq!(now, old, "the rekey never happened"),
            RekeyStep::DatabaseRekeyed => {
                assert_ne!(now, old, "the rekey was finished at the next unlock");
                assert!(raw_open(f.dir(), &old).is_err());
            }
        }
    }
}

#[test]
fn a_schema_newer_than_this_build_is_refused() {
    let f = Fixture::new();
    f.create();
    let newer = [
        MIGRATIONS[0],
        Migration {
            version: 2,
            name: "more",
            sql: "CREATE TABLE more (x);",
        },
    ];
    let password = pw("alice-password");
    Vault::unlock(
        f.config.clone(),
        Credential::Password {
            user: "alice",
            password: &password,
        },
        &newer,
    )
    .expect("upgrades")
    .lock()
    .expect("locks");
    let err = f.unlock("alice", "alice-password").expect_err("refused");
    assert!(
        matches!(
            err,
            VaultError::NewerSchema {
                found: 2,
                supported: 1
            }
        ),
        "{err:?}"
    );
}

#[test]
fn a_failing_migration_changes_nothing() {
    let f = Fixture::new();
    f.create();
    let broken = [
        MIGRATIONS[0],
        Migration {
            version: 2,
            name: "half",
            sql: "CREATE TABLE half (x); THIS IS NOT SQL;",
        },
    ];
    let password = pw("alice-password");
    let err = Vault::unlock(
        f.config.clone(),
        Credential::Password {
            user: "alice",
            password: &password,
        },
        &broken,
    );
    assert!(err.is_err());
    let vault = f
        .unlock("alice", "alice-password")
        .expect("unlocks at the old schema");
    let half: i64 = vault
        .connection()
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 'half'",
            [],
            |r| r.get(0),
        )
        .expect("reads");
    assert_eq!(half, 0);
}

#[test]
fn a_slot_change_keeps_what_another_open_vault_changed_meanwhile() {
    let f = Fixture::new();
    f.create();
    // Two windows open at once (the desktop and the command line).
    let mut first = f.unlock("alice", "alice-password").expect("unlocks");
    let mut second = f.unlock("alice", "alice-password").expect("unlocks");
    first
        .add_user_slot("bob", &pw("bob-password"))
        .expect("adds bob");
    second
        .change_password("alice", &pw("alice-password-2"))
        .expect("changes alice's password");
    second
        .add_user_slot("carol", &pw("carol-password"))
        .expect("adds carol");
    drop((first, second));
    let owners: Vec<String> = Vault::info(f.dir())
        .expect("info")
        .slots
        .into_iter()
        .map(|s| s.owner)
        .collect();
    for who in ["alice", "bob", "carol", "recovery"] {
        assert!(owners.iter().any(|o| o == who), "{who} kept: {owners:?}");
    }
    f.unlock("bob", "bob-password").expect("bob still opens it");
    f.unlock("alice", "alice-password-2")
        .expect("alice's new password works");
}

#[test]
fn a_slot_change_after_another_process_rekeyed_is_refused() {
    let f = Fixture::new();
    f.create();
    let mut stale = f.unlock("alice", "alice-password").expect("unlocks");
    // Another process finished a rekey meanwhile: the slot file moved to the next key epoch.
    let path = f.dir().join(SLOT_FILE_NAME);
    let mut doc: serde_json::Value =
        serde_json::from_slice(&fs::read(&path).expect("reads")).expect("json");
    let epoch = doc["key_epoch"].as_u64().expect("an epoch");
    doc["key_epoch"] = serde_json::json!(epoch + 1);
    fs::write(&path, serde_json::to_vec(&doc).expect("json")).expect("writes");
    let before = fs::read(&path).expect("reads");
    assert!(matches!(
        stale.add_user_slot("mallory", &pw("mallory-password")),
        Err(VaultError::Busy)
    ));
    assert_eq!(fs::read(&path).expect("reads"), before, "nothing written");
}

#[test]
fn user_names_are_not_case_sensitive() {
    let f = Fixture::new();
    f.create();
    f.unlock("ALICE", "alice-password").expect("any case opens");
    let mut v = f.unlock("alice", "alice-password").expect("unlocks");
    assert!(matches!(
        v.add_user_slot("Alice", &pw("another-password")),
        Err(VaultError::SlotExists(_))
    ));
    // Failures count against one account whatever the case.
    for _ in 0..5 {
        let _ = f.unlock("Alice", "wrong-password");
    }
    assert!(matches!(
        f.unlock("alice", "alice-password"),
        Err(VaultError::LockedOut { .. })
    ));
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).expect("exists").permissions().mode() & 0o777
}

#[cfg(unix)]
fn assert_private(dir: &Path) {
    assert_eq!(mode(dir), 0o700, "{} is for its owner only", dir.display());
    for entry in fs::read_dir(dir).expect("lists") {
        let path = entry.expect("entry").path();
        assert_eq!(
            mode(&path),
            0o600,
            "{} is for its owner only",
            path.display()
        );
    }
}

#[cfg(unix)]
#[test]
fn the_vault_its_backup_and_the_lockout_state_are_for_their_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let f = Fixture::new();
    f.create();
    let vault = f.unlock("alice", "alice-password").expect("unlocks");
    // Open, so the WAL and shared-memory files exist too.
    assert!(f.dir().join("chartroom.db-wal").exists());
    assert_private(f.dir());
    let backup = f._tmp.path().join("backup");
    vault.backup_to(&backup).expect("backs up");
    assert_private(&backup);
    vault.lock().expect("locks");
    let _ = f.unlock("alice", "wrong password");
    assert!(f.dir().join(LOCKOUT_FILE_NAME).exists());
    assert_private(f.dir());

    // A vault left readable by an earlier version is tightened at its next unlock.
    fs::set_permissions(f.dir(), fs::Permissions::from_mode(0o755)).expect("chmod");
    fs::set_permissions(
        f.dir().join(SLOT_FILE_NAME),
        fs::Permissions::from_mode(0o644),
    )
    .expect("chmod");
    fs::set_permissions(
        f.dir().join(DB_FILE_NAME),
        fs::Permissions::from_mode(0o644),
    )
    .expect("chmod");
    f.unlock("alice", "alice-password")
        .expect("unlocks")
        .lock()
        .expect("locks");
    assert_private(f.dir());
}

#[test]
fn a_compartment_opens_only_for_the_slots_it_was_sealed_to() {
    let f = Fixture::new();
    let recovery = f.create();
    let mut alice = f.unlock("alice", "alice-password").expect("unlocks");
    alice
        .add_user_slot("bob", &pw("bob-password"))
        .expect("adds");
    alice
        .add_user_slot("carol", &pw("carol-password"))
        .expect("adds");
    alice
        .create_compartment("clinical", &["bob".to_owned()])
        .expect("makes");
    // Alice made it for Bob: she holds it until she locks, and can always seal to it.
    assert!(alice.compartment_secret("clinical").is_some());
    let (epoch, public) = alice.compartment_public("clinical").expect("public");
    assert_eq!(epoch, 0);
    alice.lock().expect("locks");

    let bob = f.unlock("bob", "bob-password").expect("unlocks");
    let (_, secret) = bob.compartment_secret("clinical").expect("bob holds it");
    assert_eq!(x25519_dalek::PublicKey::from(&secret).as_bytes(), &public);
    assert_eq!(bob.slot_compartments("bob"), vec!["clinical".to_owned()]);
    assert!(bob.slot_compartments("carol").is_empty());
    bob.lock().expect("locks");
    let carol = f.unlock("carol", "carol-password").expect("unlocks");
    assert!(carol.compartment_secret("clinical").is_none());
    carol.lock().expect("locks");
    let rec = Vault::unlock(
        f.config.clone(),
        Credential::Recovery(&recovery),
        MIGRATIONS,
    )
    .expect("recovery unlocks");
    assert!(
        rec.compartment_secret("clinical").is_some(),
        "recovery holds every compartment"
    );
    rec.lock().expect("locks");

    // Carol's turn comes from someone who holds it; Bob's ends by anyone's hand.
    let mut alice = f.unlock("alice", "alice-password").expect("unlocks");
    let changes = alice
        .set_compartment_holders("clinical", &["carol".to_owned()])
        .expect("sets");
    assert_eq!(changes.revoked, vec!["bob".to_owned()]);
    assert_eq!(changes.pending, vec!["carol".to_owned()]);
    alice.lock().expect("locks");
    let bob = f.unlock("bob", "bob-password").expect("unlocks");
    assert!(bob.compartment_secret("clinical").is_none(), "revoked");
    bob.lock().expect("locks");
    let mut rec = Vault::unlock(
        f.config.clone(),
        Credential::Recovery(&recovery),
        MIGRATIONS,
    )
    .expect("recovery unlocks");
    let changes = rec
        .set_compartment_holders("clinical", &["carol".to_owned()])
        .expect("sets");
    assert_eq!(changes.granted, vec!["carol".to_owned()]);
    rec.lock().expect("locks");
    let mut carol = f.unlock("carol", "carol-password").expect("unlocks");
    assert!(carol.compartment_secret("clinical").is_some());
    // A password change keeps what the user could read.
    carol
        .change_password("carol", &pw("carol-new-password"))
        .expect("changes");
    carol.lock().expect("locks");
    let carol = f.unlock("carol", "carol-new-password").expect("unlocks");
    assert!(carol.compartment_secret("clinical").is_some());
    carol.lock().expect("locks");
}

#[test]
fn a_swapped_compartment_key_or_a_moved_seal_is_noticed_by_its_holder() {
    let f = Fixture::new();
    f.create();
    let mut alice = f.unlock("alice", "alice-password").expect("unlocks");
    alice
        .add_user_slot("bob", &pw("bob-password"))
        .expect("adds");
    alice
        .add_user_slot("carol", &pw("carol-password"))
        .expect("adds");
    alice
        .create_compartment("clinical", &["bob".to_owned()])
        .expect("makes");
    alice.lock().expect("locks");
    let original = fs::read(f.dir().join(SLOT_FILE_NAME)).expect("reads");

    // An insider puts their own public key in place of the compartment's.
    let mut file: serde_json::Value = serde_json::from_slice(&original).expect("json");
    file["compartments"][0]["public_key"] = serde_json::Value::String(slots::encode_key(
        x25519_dalek::PublicKey::from(&StaticSecret::random_from_rng(rand_core::OsRng)).as_bytes(),
    ));
    fs::write(
        f.dir().join(SLOT_FILE_NAME),
        serde_json::to_vec(&file).expect("json"),
    )
    .expect("writes");
    assert!(matches!(
        f.unlock("bob", "bob-password"),
        Err(VaultError::SlotFileInvalid(_))
    ));

    // Bob's seal copied into Carol's slot opens nothing for Carol.
    let mut file: serde_json::Value = serde_json::from_slice(&original).expect("json");
    let slots = file["slots"].as_array_mut().expect("slots");
    let bob_seal = slots.iter().find(|s| s["owner"] == "bob").expect("bob")["compartments"].clone();
    let carol = slots
        .iter_mut()
        .find(|s| s["owner"] == "carol")
        .expect("carol");
    carol["compartments"] = bob_seal;
    fs::write(
        f.dir().join(SLOT_FILE_NAME),
        serde_json::to_vec(&file).expect("json"),
    )
    .expect("writes");
    assert!(f.unlock("carol", "carol-password").is_err());
}

#[test]
fn a_version_1_slot_file_still_opens_and_is_written_back_as_version_2() {
    let f = Fixture::new();
    f.create();
    let path = f.dir().join(SLOT_FILE_NAME);
    let mut file: serde_json::Value =
        serde_json::from_slice(&fs::read(&path).expect("reads")).expect("json");
    file["version"] = 1.into();
    fs::write(&path, serde_json::to_vec(&file).expect("json")).expect("writes");
    let mut alice = f
        .unlock("alice", "alice-password")
        .expect("a version 1 file opens");
    alice
        .add_user_slot("bob", &pw("bob-password"))
        .expect("adds");
    alice.lock().expect("locks");
    let file: serde_json::Value =
        serde_json::from_slice(&fs::read(&path).expect("reads")).expect("json");
    assert_eq!(file["version"], 2);
}

#[test]
fn each_user_has_a_signing_key_of_their_own_that_a_password_change_keeps() {
    let f = Fixture::new();
    f.create();
    let mut alice = f.unlock("alice", "alice-password").expect("unlocks");
    let alice_key = alice.signing_key().expect("alice signs").verifying_key();
    alice
        .add_user_slot("bob", &pw("bob-password"))
        .expect("adds");
    alice.lock().expect("locks");
    let bob = f.unlock("bob", "bob-password").expect("unlocks");
    let bob_key = bob.signing_key().expect("bob signs").verifying_key();
    assert_ne!(alice_key, bob_key);
    bob.lock().expect("locks");
    let mut alice = f.unlock("alice", "alice-password").expect("unlocks");
    assert_eq!(
        alice.signing_key().expect("signs").verifying_key(),
        alice_key
    );
    alice
        .change_password("alice", &pw("alice-new-password"))
        .expect("changes");
    // An administrator's reset gives Bob a new slot, and with it a new key.
    alice
        .set_user_slot("bob", &pw("bob-new-password"))
        .expect("resets");
    alice.lock().expect("locks");
    let alice = f.unlock("alice", "alice-new-password").expect("unlocks");
    assert_eq!(
        alice.signing_key().expect("signs").verifying_key(),
        alice_key
    );
    alice.lock().expect("locks");
    let bob = f.unlock("bob", "bob-new-password").expect("unlocks");
    assert_ne!(bob.signing_key().expect("signs").verifying_key(), bob_key);
    bob.lock().expect("locks");
}

#[test]
fn a_slot_made_before_signatures_gets_a_signing_key_at_its_next_unlock() {
    let f = Fixture::new();
    f.create();
    let path = f.dir().join(SLOT_FILE_NAME);
    let mut file: serde_json::Value =
        serde_json::from_slice(&fs::read(&path).expect("reads")).expect("json");
    for slot in file["slots"].as_array_mut().expect("slots") {
        slot.as_object_mut().expect("object").remove("signing");
    }
    fs::write(&path, serde_json::to_vec(&file).expect("json")).expect("writes");
    let alice = f.unlock("alice", "alice-password").expect("unlocks");
    let key = alice.signing_key().expect("made at unlock").verifying_key();
    alice.lock().expect("locks");
    let alice = f.unlock("alice", "alice-password").expect("unlocks");
    assert_eq!(alice.signing_key().expect("kept").verifying_key(), key);
    alice.lock().expect("locks");
}
