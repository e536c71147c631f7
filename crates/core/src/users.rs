//! Users: validated names, password rules, and the stored user record.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use crate::roles::Role;
use crate::CoreError;

/// Shortest password accepted (NIST SP 800-63B's minimum for chosen secrets).
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest password accepted; longer input is almost certainly a paste mistake.
pub const MAX_PASSWORD_CHARS: usize = 1024;
const MAX_NAME_CHARS: usize = 64;

/// A user's sign-in name: 1–64 letters, digits, `.`, `_` or `-`, starting with a letter or
/// digit. Names never become paths or markup, but keeping them plain makes them safe to show
/// and to type.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, ts_rs::TS)]
#[serde(transparent)]
pub struct UserName(String);

impl UserName {
    pub fn parse(text: &str) -> Result<Self, CoreError> {
        let ok = !text.is_empty()
            && text.chars().count() <= MAX_NAME_CHARS
            && text
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric())
            && text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if ok {
            Ok(Self(text.to_owned()))
        } else {
            Err(CoreError::InvalidInput(
                "A user name is 1 to 64 letters, digits, dots, dashes or underscores, starting with a letter or digit."
                    .into(),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks a new password against the rules, without ever echoing it.
pub fn check_new_password(user: &UserName, password: &SecretString) -> Result<(), CoreError> {
    let text = password.expose_secret();
    let chars = text.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(CoreError::InvalidInput(format!(
            "The password is too short: use at least {MIN_PASSWORD_CHARS} characters."
        )));
    }
    if chars > MAX_PASSWORD_CHARS {
        return Err(CoreError::InvalidInput(format!(
            "The password is too long: use at most {MAX_PASSWORD_CHARS} characters."
        )));
    }
    if text.trim().is_empty() {
        return Err(CoreError::InvalidInput(
            "The password cannot be only spaces.".into(),
        ));
    }
    if text.eq_ignore_ascii_case(user.as_str()) {
        return Err(CoreError::InvalidInput(
            "The password cannot be the user name.".into(),
        ));
    }
    Ok(())
}

/// A user as stored in the clinic database.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ts_rs::TS)]
pub struct User {
    pub name: UserName,
    pub role: Role,
    pub disabled: bool,
    pub created_at: String,
    pub created_by: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names_are_plain() {
        for good in ["alice", "dr.bob", "nurse_1", "A-2"] {
            assert!(UserName::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            ".hidden",
            "a b",
            "<script>",
            "../x",
            "é",
            &"a".repeat(65),
        ] {
            assert!(UserName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords_follow_the_rules() {
        let user = UserName::parse("alice").expect("valid");
        let check = |p: &str| check_new_password(&user, &SecretString::from(p.to_owned()));
        assert!(check("correct horse").is_ok());
        assert!(check("short").is_err());
        assert!(check("        ").is_err());
        assert!(check("ALICE").is_err());
        let err = check("tiny").expect_err("too short");
        assert!(
            !err.to_string().contains("tiny"),
            "the message never echoes the password"
        );
    }
}
