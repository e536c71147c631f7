//! Slowing down repeated failed unlocks, remembered across restarts.
//!
//! The state lives outside the vault folder (in the user's state directory), so a failed
//! unlock changes nothing in the vault itself. It is a brake on guessing at the sign-in
//! screen; someone holding a copy of the files is held back by Argon2id instead.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::slots::atomic_write;
use crate::VaultError;

/// Failed attempts allowed before the first pause.
pub const FREE_ATTEMPTS: u32 = 5;
/// The first pause; each further failure doubles it.
const FIRST_PAUSE: Duration = Duration::from_secs(30);
/// The longest pause.
const MAX_PAUSE: Duration = Duration::from_secs(15 * 60);

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    #[serde(default)]
    accounts: BTreeMap<String, Failures>,
    /// Failed attempts not yet written to the audit trail (which needs an unlocked vault).
    #[serde(default)]
    unaudited: Vec<FailedUnlock>,
}

/// The most failed attempts kept for the audit trail; older ones are summarised by count.
const MAX_UNAUDITED: usize = 1000;

/// A failed unlock, kept outside the vault until the next unlock can audit it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedUnlock {
    /// `user:NAME` or `recovery`.
    pub account: String,
    pub at: DateTime<Utc>,
    /// True when refused because sign-in was paused, rather than for a wrong secret.
    #[serde(default)]
    pub while_paused: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Failures {
    count: u32,
    last: DateTime<Utc>,
}

/// Failed-unlock bookkeeping for one vault.
#[derive(Debug, Clone)]
pub struct Lockout {
    dir: PathBuf,
    file: String,
}

/// What a failure did to the account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// Attempts left before sign-in pauses.
    AttemptsLeft(u32),
    /// Sign-in for this account is now paused this long.
    Paused(Duration),
}

impl Lockout {
    /// Bookkeeping for the vault `vault_id`, kept in `state_dir`.
    pub fn new(state_dir: &Path, vault_id: &str) -> Self {
        Self {
            dir: state_dir.to_path_buf(),
            file: format!("unlock-failures-{vault_id}.json"),
        }
    }

    fn load(&self) -> State {
        // A damaged or missing state file counts as no failures: it can only lengthen a pause,
        // and refusing every sign-in because of it would lock the whole clinic out.
        fs::read(self.dir.join(&self.file))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    fn save(&self, state: &State) -> Result<(), VaultError> {
        crate::files::private_dir(&self.dir)?;
        let bytes = serde_json::to_vec(state).map_err(|_| VaultError::Crypto)?;
        atomic_write(&self.dir, &self.file, &bytes)
    }

    /// Refuses with [`VaultError::LockedOut`] while `account` is paused.
    pub fn check(&self, account: &str, now: DateTime<Utc>) -> Result<(), VaultError> {
        let state = self.load();
        if let Some(f) = state.accounts.get(account) {
            if let Some(pause) = pause_after(f.count) {
                let until = f.last + chrono::Duration::from_std(pause).unwrap_or_default();
                if now < until {
                    let wait = (until - now).to_std().unwrap_or_default();
                    return Err(VaultError::LockedOut {
                        wait: round_up_secs(wait),
                    });
                }
            }
        }
        Ok(())
    }

    /// Counts a failed attempt for `account`.
    pub fn record_failure(
        &self,
        account: &str,
        now: DateTime<Utc>,
    ) -> Result<AfterFailure, VaultError> {
        let mut state = self.load();
        let entry = state
            .accounts
            .entry(account.to_owned())
            .or_insert(Failures {
                count: 0,
                last: now,
            });
        entry.count = entry.count.saturating_add(1);
        entry.last = now;
        let count = entry.count;
        push_unaudited(&mut state, account, now, false);
        self.save(&state)?;
        Ok(match pause_after(count) {
            Some(pause) => AfterFailure::Paused(pause),
            None => AfterFailure::AttemptsLeft(FREE_ATTEMPTS - count),
        })
    }

    /// Notes an attempt refused because sign-in was paused, for the audit trail.
    pub fn record_refused(&self, account: &str, now: DateTime<Utc>) -> Result<(), VaultError> {
        let mut state = self.load();
        push_unaudited(&mut state, account, now, true);
        self.save(&state)
    }

    /// Failed attempts not yet in the audit trail, oldest first.
    pub fn unaudited(&self) -> Vec<FailedUnlock> {
        self.load().unaudited
    }

    /// Forgets the first `n` unaudited attempts, once they are in the audit trail.
    pub fn forget_unaudited(&self, n: usize) -> Result<(), VaultError> {
        let mut state = self.load();
        if n == 0 || state.unaudited.is_empty() {
            return Ok(());
        }
        let n = n.min(state.unaudited.len());
        state.unaudited.drain(..n);
        self.save(&state)
    }

    /// Clears the count after a successful unlock.
    pub fn record_success(&self, account: &str) -> Result<(), VaultError> {
        let mut state = self.load();
        if state.accounts.remove(account).is_some() {
            self.save(&state)?;
        }
        Ok(())
    }
}

fn push_unaudited(state: &mut State, account: &str, at: DateTime<Utc>, while_paused: bool) {
    if state.unaudited.len() >= MAX_UNAUDITED {
        state.unaudited.remove(0);
    }
    state.unaudited.push(FailedUnlock {
        account: account.to_owned(),
        at,
        while_paused,
    });
}

/// The pause after `failures` failed attempts: none for the first few, then 30 s doubling
/// up to 15 minutes.
fn pause_after(failures: u32) -> Option<Duration> {
    let over = failures.checked_sub(FREE_ATTEMPTS)?;
    let factor = 1u32.checked_shl(over.min(16)).unwrap_or(u32::MAX);
    Some(FIRST_PAUSE.saturating_mul(factor).min(MAX_PAUSE))
}

fn round_up_secs(d: Duration) -> Duration {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    Duration::from_secs(secs.max(1))
}

/// Says a pause in words: "30 seconds", "2 minutes".
pub fn describe_wait(wait: Duration) -> String {
    let secs = wait.as_secs().max(1);
    if secs < 90 {
        format!("{secs} second{}", if secs == 1 { "" } else { "s" })
    } else {
        let mins = secs.div_ceil(60);
        format!("{mins} minutes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_start_after_five_failures_and_grow() {
        assert_eq!(pause_after(4), None);
        assert_eq!(pause_after(5), Some(Duration::from_secs(30)));
        assert_eq!(pause_after(6), Some(Duration::from_secs(60)));
        assert_eq!(pause_after(100), Some(MAX_PAUSE));
    }

    #[test]
    fn failures_are_remembered_by_a_new_instance_and_cleared_by_success() {
        let dir = tempfile::tempdir().expect("tempdir");
        let now = Utc::now();
        let lockout = Lockout::new(dir.path(), "abc");
        for i in 1..=4 {
            assert_eq!(
                lockout.record_failure("user:a", now).expect("records"),
                AfterFailure::AttemptsLeft(5 - i)
            );
        }
        assert!(lockout.check("user:a", now).is_ok());
        assert_eq!(
            lockout.record_failure("user:a", now).expect("records"),
            AfterFailure::Paused(Duration::from_secs(30))
        );
        // A restart: a new instance reads the same state.
        let again = Lockout::new(dir.path(), "abc");
        assert!(matches!(
            again.check("user:a", now),
            Err(VaultError::LockedOut { .. })
        ));
        assert!(
            again.check("user:b", now).is_ok(),
            "other accounts are not paused"
        );
        assert!(again
            .check("user:a", now + chrono::Duration::seconds(31))
            .is_ok());
        again.record_success("user:a").expect("clears");
        assert!(again.check("user:a", now).is_ok());
    }

    #[test]
    fn waits_read_as_words() {
        assert_eq!(describe_wait(Duration::from_secs(1)), "1 second");
        assert_eq!(describe_wait(Duration::from_secs(30)), "30 seconds");
        assert_eq!(describe_wait(Duration::from_secs(240)), "4 minutes");
    }
}
