//! Slowing down repeated failed unlocks, remembered across restarts.
//!
//! The state lives in the vault folder, beside the slot file, so no setting of the person
//! signing in (an environment variable, a state folder of their own) switches the count
//! off: a wrong password changes that one file and nothing else. It is a brake on guessing
//! at the sign-in screen and the CLI; someone holding a copy of the files is held back by
//! Argon2id instead.
//!
//! A user name that has no slot is never kept as typed (it may be a password typed into
//! the wrong field): its attempts count as one "unknown user" account, and each is kept
//! for the trail with a tag for correlation, derived with the slots' own Argon2id cost so
//! that guessing at it is no cheaper than guessing at a slot.

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

/// The file in the vault folder.
pub const FILE_NAME: &str = "unlock-failures.json";
/// The account that attempts with a user name that has no slot count against.
pub const UNKNOWN_ACCOUNT: &str = "unknown";

/// A failed unlock, kept until the next unlock can audit it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedUnlock {
    /// `user:NAME` (a user who has a slot), `unknown:TAG` (a name with no slot, as its
    /// correlation tag; `unknown:` without one when sign-in was paused) or `recovery`.
    pub account: String,
    pub at: DateTime<Utc>,
    /// True when refused because sign-in was paused, rather than for a wrong secret.
    #[serde(default)]
    pub while_paused: bool,
    /// Further refusals of the same account while paused, right after this one: a flood of
    /// attempts against a paused account is one entry, not a thousand.
    #[serde(default)]
    pub repeats: u32,
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
    /// Where an earlier version kept the count (the state folder): read and merged once,
    /// so that moving the file does not forget failures, then removed.
    legacy: PathBuf,
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
    /// Bookkeeping for the vault in `vault_dir` (whose id is `vault_id`); an earlier
    /// version's count in `legacy_state_dir` is taken over.
    pub fn new(vault_dir: &Path, legacy_state_dir: &Path, vault_id: &str) -> Self {
        Self {
            dir: vault_dir.to_path_buf(),
            legacy: legacy_state_dir.join(format!("unlock-failures-{vault_id}.json")),
        }
    }

    fn read(path: &Path) -> State {
        // A damaged or missing file counts as no failures: refusing every sign-in because
        // of it would lock the whole clinic out.
        fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    fn load(&self) -> State {
        let mut state = Self::read(&self.dir.join(FILE_NAME));
        if self.legacy.exists() {
            let old = Self::read(&self.legacy);
            for (account, f) in old.accounts {
                let e = state.accounts.entry(account).or_insert(Failures {
                    count: 0,
                    last: f.last,
                });
                e.count = e.count.max(f.count);
                e.last = e.last.max(f.last);
            }
            let mut merged = old.unaudited;
            merged.append(&mut state.unaudited);
            merged.sort_by_key(|f| f.at);
            let over = merged.len().saturating_sub(MAX_UNAUDITED);
            merged.drain(..over);
            state.unaudited = merged;
        }
        state
    }

    fn save(&self, state: &State) -> Result<(), VaultError> {
        let bytes = serde_json::to_vec(state).map_err(|_| VaultError::Crypto)?;
        atomic_write(&self.dir, FILE_NAME, &bytes)?;
        // Taken over: the old file goes (best effort; it only ever adds to the count).
        let _ = fs::remove_file(&self.legacy);
        Ok(())
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
        self.record_failure_as(account, account, now)
    }

    /// Counts a failed attempt for `account`, kept for the trail as `recorded`.
    pub fn record_failure_as(
        &self,
        account: &str,
        recorded: &str,
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
        push_unaudited(&mut state, recorded, now, false);
        self.save(&state)?;
        Ok(match pause_after(count) {
            Some(pause) => AfterFailure::Paused(pause),
            None => AfterFailure::AttemptsLeft(FREE_ATTEMPTS - count),
        })
    }

    /// Notes an attempt refused because sign-in was paused, for the audit trail.
    pub fn record_refused(&self, account: &str, now: DateTime<Utc>) -> Result<(), VaultError> {
        let mut state = self.load();
        let recorded = if account == UNKNOWN_ACCOUNT {
            "unknown:"
        } else {
            account
        };
        push_unaudited(&mut state, recorded, now, true);
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
    if while_paused {
        if let Some(last) = state
            .unaudited
            .last_mut()
            .filter(|l| l.while_paused && l.account == account)
        {
            last.repeats = last.repeats.saturating_add(1);
            return;
        }
    }
    if state.unaudited.len() >= MAX_UNAUDITED {
        // Full: an attempt with a name that has no slot goes first, so a flood of made-up
        // names cannot push a real account's failures out before the trail records them.
        let oldest_unknown = state
            .unaudited
            .iter()
            .position(|f| f.account.starts_with("unknown:"));
        state.unaudited.remove(oldest_unknown.unwrap_or(0));
    }
    state.unaudited.push(FailedUnlock {
        account: account.to_owned(),
        at,
        while_paused,
        repeats: 0,
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
        let lockout = Lockout::new(dir.path(), &dir.path().join("state"), "abc");
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
        let again = Lockout::new(dir.path(), &dir.path().join("state"), "abc");
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
    fn an_earlier_versions_count_in_the_state_folder_is_taken_over_not_forgotten() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("state");
        fs::create_dir(&state).expect("mkdir");
        let now = Utc::now();
        let old = Lockout {
            dir: state.clone(),
            legacy: state.join("none"),
        };
        for _ in 0..5 {
            old.record_failure("user:a", now).expect("records");
        }
        fs::rename(
            state.join(FILE_NAME),
            state.join("unlock-failures-abc.json"),
        )
        .expect("mv");
        let lockout = Lockout::new(dir.path(), &state, "abc");
        assert!(matches!(
            lockout.check("user:a", now),
            Err(VaultError::LockedOut { .. })
        ));
        assert_eq!(lockout.unaudited().len(), 5);
        lockout.record_failure("user:a", now).expect("records");
        assert!(
            !state.join("unlock-failures-abc.json").exists(),
            "taken over"
        );
        assert_eq!(lockout.unaudited().len(), 6);
        assert!(matches!(
            lockout.check("user:a", now),
            Err(VaultError::LockedOut { .. })
        ));
    }

    #[test]
    fn a_flood_of_made_up_names_does_not_push_a_real_accounts_failures_out() {
        let dir = tempfile::tempdir().expect("tempdir");
        let now = Utc::now();
        let lockout = Lockout::new(dir.path(), &dir.path().join("state"), "abc");
        for _ in 0..6 {
            lockout.record_failure("user:drkim", now).expect("records");
        }
        for i in 0..(MAX_UNAUDITED + 10) {
            lockout
                .record_failure_as(UNKNOWN_ACCOUNT, &format!("unknown:{i:012x}"), now)
                .expect("records");
            lockout
                .record_refused(UNKNOWN_ACCOUNT, now)
                .expect("records");
        }
        let kept = lockout.unaudited();
        assert!(kept.len() <= MAX_UNAUDITED);
        assert_eq!(
            kept.iter().filter(|f| f.account == "user:drkim").count(),
            6,
            "the real account's failures all wait for the trail"
        );
    }

    #[test]
    fn refusals_while_paused_are_one_entry_with_a_count() {
        let dir = tempfile::tempdir().expect("tempdir");
        let now = Utc::now();
        let lockout = Lockout::new(dir.path(), &dir.path().join("state"), "abc");
        for _ in 0..500 {
            lockout.record_refused("user:a", now).expect("records");
        }
        let kept = lockout.unaudited();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].repeats, 499);
    }

    #[test]
    fn waits_read_as_words() {
        assert_eq!(describe_wait(Duration::from_secs(1)), "1 second");
        assert_eq!(describe_wait(Duration::from_secs(30)), "30 seconds");
        assert_eq!(describe_wait(Duration::from_secs(240)), "4 minutes");
    }
}
