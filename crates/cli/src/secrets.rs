//! Where the command line gets secrets: environment, standard input, or a no-echo prompt.

use std::io::BufRead;

use secrecy::{ExposeSecret, SecretString};

use crate::Failure;

/// The user's password.
pub const ENV_PASSWORD: &str = "CHARTROOM_PASSWORD";
/// A new password (for `user add`, `user passwd`).
pub const ENV_NEW_PASSWORD: &str = "CHARTROOM_NEW_PASSWORD";
/// The recovery key, for `--recovery-key` given without a value.
pub const ENV_RECOVERY_KEY: &str = "CHARTROOM_RECOVERY_KEY";
/// An export's passphrase, for `export --passphrase` and `import --passphrase`.
pub const ENV_EXPORT_PASSPHRASE: &str = "CHARTROOM_EXPORT_PASSPHRASE";
/// The collector's one-time enrollment token, for `sync enroll URL` given without one.
pub const ENV_ENROLL_TOKEN: &str = "CHARTROOM_ENROLL_TOKEN";

/// Says on standard error that a secret given as an argument is visible to every account on
/// the computer (`ps`, /proc) while the command runs, and how to give it instead. Only to a
/// person at a terminal: a script's standard error stays the one JSON error it expects.
pub fn warn_visible(what: &str, env: &str) {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return;
    }
    eprintln!(
        "chartroom: warning: the {what} was given on the command line, where other accounts on this computer can read it in the process list; set {env} or let Chartroom ask for it instead."
    );
}

pub enum SecretSource {
    Given(String),
    Interactive,
}

/// Reads secrets in the documented order of sources, standard input line by line.
pub struct Inputs {
    stdin: bool,
}

impl Inputs {
    pub fn new(stdin: bool) -> Self {
        Self { stdin }
    }

    fn env(name: &str) -> Option<SecretString> {
        std::env::var(name)
            .ok()
            .filter(|v| !v.is_empty())
            .map(SecretString::from)
    }

    fn stdin_line(&mut self, what: &str) -> Result<SecretString, Failure> {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).map_err(|_| {
            Failure::usage(format!("Could not read the {what} from standard input."))
        })?;
        let trimmed = line.trim_end_matches(['\r', '\n']).to_owned();
        zeroize_string(&mut line);
        if trimmed.is_empty() {
            return Err(Failure::usage(format!(
                "Standard input ended before the {what}."
            )));
        }
        Ok(SecretString::from(trimmed))
    }

    fn prompt(label: &str) -> Result<SecretString, Failure> {
        rpassword::prompt_password(format!("{label}: ")).map(SecretString::from).map_err(|_| {
            Failure::usage(format!(
                "No {} given: set {ENV_PASSWORD} / {ENV_NEW_PASSWORD}, use --password-stdin, or run in a terminal.",
                label.to_lowercase()
            ))
        })
    }

    /// The acting user's password: CHARTROOM_PASSWORD, else standard input, else a prompt.
    pub fn password(&mut self, user: &str) -> Result<SecretString, Failure> {
        if let Some(p) = Self::env(ENV_PASSWORD) {
            return Ok(p);
        }
        if self.stdin {
            return self.stdin_line("password");
        }
        Self::prompt(&format!("Password for {user}"))
    }

    /// A password being set: CHARTROOM_NEW_PASSWORD, else standard input, else asked twice.
    pub fn new_password(&mut self, label: &str) -> Result<SecretString, Failure> {
        if let Some(p) = Self::env(ENV_NEW_PASSWORD) {
            return Ok(p);
        }
        if self.stdin {
            return self.stdin_line("new password");
        }
        Self::ask_twice(label)
    }

    /// The first administrator's password at `vault init`: CHARTROOM_PASSWORD (the password
    /// the same script will unlock with), else CHARTROOM_NEW_PASSWORD, else standard input,
    /// else asked twice.
    pub fn initial_password(&mut self, admin: &str) -> Result<SecretString, Failure> {
        if let Some(p) = Self::env(ENV_PASSWORD).or_else(|| Self::env(ENV_NEW_PASSWORD)) {
            return Ok(p);
        }
        if self.stdin {
            return self.stdin_line("password");
        }
        Self::ask_twice(&format!("Password for {admin}"))
    }

    fn ask_twice(label: &str) -> Result<SecretString, Failure> {
        let first = Self::prompt(label)?;
        let second = Self::prompt(&format!("{label} (again)"))?;
        if first.expose_secret() != second.expose_secret() {
            return Err(Failure::usage(
                "The two passwords do not match; nothing was changed.",
            ));
        }
        Ok(first)
    }

    /// An export's passphrase: CHARTROOM_EXPORT_PASSPHRASE, else standard input, else a
    /// prompt (twice when making an export).
    pub fn export_passphrase(&mut self, confirm: bool) -> Result<SecretString, Failure> {
        if let Some(p) = Self::env(ENV_EXPORT_PASSPHRASE) {
            return Ok(p);
        }
        if self.stdin {
            return self.stdin_line("export passphrase");
        }
        let label = "Export passphrase";
        let first = rpassword::prompt_password(format!("{label}: ")).map_err(|_| {
            Failure::usage(format!(
                "No passphrase given: pass it to --passphrase, set {ENV_EXPORT_PASSPHRASE}, or run in a terminal."
            ))
        })?;
        if confirm {
            let second = rpassword::prompt_password(format!("{label} (again): "))
                .map_err(|_| Failure::usage("The passphrase could not be read twice."))?;
            if first != second {
                return Err(Failure::usage(
                    "The two passphrases do not match; nothing was exported.",
                ));
            }
        }
        Ok(SecretString::from(first))
    }

    /// The recovery key: as given, else CHARTROOM_RECOVERY_KEY, else standard input, else a prompt.
    pub fn recovery_key(&mut self, source: SecretSource) -> Result<SecretString, Failure> {
        match source {
            SecretSource::Given(k) => {
                warn_visible("recovery key", ENV_RECOVERY_KEY);
                Ok(SecretString::from(k))
            }
            SecretSource::Interactive => {
                if let Some(k) = Self::env(ENV_RECOVERY_KEY) {
                    return Ok(k);
                }
                if self.stdin {
                    return self.stdin_line("recovery key");
                }
                rpassword::prompt_password("Recovery key: ").map(SecretString::from).map_err(|_| {
                    Failure::usage(format!(
                        "No recovery key given: pass it to --recovery-key, set {ENV_RECOVERY_KEY}, or run in a terminal."
                    ))
                })
            }
        }
    }
}

impl Inputs {
    /// The collector's enrollment token: CHARTROOM_ENROLL_TOKEN, else standard input, else
    /// a prompt that does not echo.
    pub fn enroll_token(&mut self) -> Result<SecretString, Failure> {
        if let Some(t) = Self::env(ENV_ENROLL_TOKEN) {
            return Ok(t);
        }
        if self.stdin {
            return self.stdin_line("enrollment token");
        }
        rpassword::prompt_password("Enrollment token: ")
            .map(SecretString::from)
            .map_err(|_| {
                Failure::usage(format!(
                    "No enrollment token given: set {ENV_ENROLL_TOKEN}, use --password-stdin (the token on the line after the password), or run in a terminal."
                ))
            })
    }
}

fn zeroize_string(s: &mut String) {
    use zeroize::Zeroize;
    s.zeroize();
}
