//! The security log: who may do what, as a hash-chained list of facts, each signed with the
//! personal key of the person who made the change.
//!
//! Users, roles, key slots, the compartments' public keys, restrictions and the care teams of
//! restricted charts are stated here first; the `users`, `patients.restricted` and
//! `care_team` tables and the slot file are what the app reads day to day, and each unlock
//! checks them against the log. What differs was changed outside Chartroom: it is undone,
//! named in an alert, and has no effect. The first entry names the root key (the first
//! administrator's signing key), which every slot also names inside its password-wrapped
//! identity, so nobody can replace the whole log without every colleague's sign-in noticing.
//!
//! The formats are in docs/security.md ("The security log"); what signs an entry is the
//! session's own key, through the direct-only SQL function `cr_sign` that [`crate::keys`]
//! registers, so every writer (a user change, a care-team change, a restricted registration)
//! appends in its own transaction.

use std::collections::{BTreeMap, BTreeSet};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use chartroom_vault::account_key;
use chartroom_vault::ed25519_dalek::{Signature, Verifier, VerifyingKey};
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::roles::{Permission, Role};
use crate::CoreError;

/// The `format` every entry carries.
pub(crate) const FORMAT: u32 = 1;
/// What the signature covers, before the entry's bytes.
pub(crate) const SIGN_LABEL: &[u8] = b"chartroom/security-log/v1";
/// What the chain hash covers, before the entry's bytes and its signature.
pub(crate) const HASH_LABEL: &[u8] = b"chartroom/security-log-hash/v1";
/// The signer named by entries the recovery key's session makes.
pub(crate) const RECOVERY_SIGNER: &str = "recovery key";
/// The `prev` of the first entry.
const NO_PREVIOUS: [u8; 32] = [0; 32];

/// One change of who may do what.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum Fact {
    /// The first entry: the vault and its root key (the first administrator's signing key).
    Root { vault_id: String, root_key: String },
    /// A user's whole state after a change: added, role changed, disabled, password changed
    /// or reset (a new slot key; a reset also a new signing key).
    User {
        user: String,
        role: Role,
        enabled: bool,
        slot_key: Option<String>,
        signing_key: Option<String>,
    },
    /// The recovery slot's keys (made, or replaced with a new recovery key).
    Recovery {
        slot_key: Option<String>,
        signing_key: Option<String>,
    },
    /// A compartment's public key, at each epoch.
    Compartment {
        name: String,
        epoch: u64,
        public_key: String,
    },
    /// A chart restricted to its care team (the team as it then is), or opened again.
    Restriction {
        patient: String,
        restricted: bool,
        team: Vec<String>,
    },
    /// Someone joined or left the care team of a restricted chart.
    CareTeam {
        patient: String,
        user: String,
        member: bool,
    },
    /// A restricted chart's key, at each epoch (its public half): what its demographics are
    /// sealed to.
    ChartKey {
        patient: String,
        epoch: u64,
        public_key: String,
    },
}

impl Fact {
    /// The (kind, subject) an entry is indexed under, for appends that load only what they
    /// check against.
    fn index(&self) -> (&'static str, String) {
        match self {
            Fact::Root { .. } => ("root", String::new()),
            Fact::User { user, .. } => ("user", account_key(user)),
            Fact::Recovery { .. } => ("recovery", String::new()),
            Fact::Compartment { name, .. } => ("compartment", name.clone()),
            Fact::Restriction { patient, .. }
            | Fact::CareTeam { patient, .. }
            | Fact::ChartKey { patient, .. } => ("patient", patient.clone()),
        }
    }
}

fn short(patient: &str) -> &str {
    patient.get(..8).unwrap_or(patient)
}

/// One entry as signed: its place in the chain, who signed it and the fact.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Entry {
    pub format: u32,
    pub seq: u64,
    /// The previous entry's hash (hex); 64 zeros for the first.
    pub prev: String,
    pub at: String,
    /// The signer's user name, or "recovery key".
    pub by: String,
    /// The signer's Ed25519 public key (base64).
    pub signer_key: String,
    pub fact: Fact,
}

/// The bytes an entry's signature covers.
pub(crate) fn signed_message(entry_bytes: &[u8]) -> Vec<u8> {
    lp_concat(&[SIGN_LABEL, entry_bytes])
}

/// The chain hash of an entry.
pub(crate) fn entry_hash(entry_bytes: &[u8], signature: &[u8]) -> [u8; 32] {
    Sha256::digest(lp_concat(&[HASH_LABEL, entry_bytes, signature])).into()
}

fn lp_concat(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for part in parts {
        let len = u32::try_from(part.len()).expect("log entries are short");
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(part);
    }
    out
}

/// A user as the log states them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct UserState {
    pub name: String,
    pub role: Role,
    pub enabled: bool,
    pub slot_key: Option<String>,
    pub signing_key: Option<String>,
}

/// Who may do what, as the log states it after replaying its entries.
#[derive(Clone, Debug, Default)]
pub(crate) struct State {
    pub vault_id: Option<String>,
    pub root: Option<String>,
    /// By account key (trimmed, lower case).
    pub users: BTreeMap<String, UserState>,
    /// The recovery slot's keys: (slot key, signing key).
    pub recovery: Option<(Option<String>, Option<String>)>,
    /// By name: (epoch, public key).
    pub compartments: BTreeMap<String, (u64, String)>,
    /// Restricted charts (patient uuid, hex) and their care teams (account keys).
    pub restricted: BTreeMap<String, BTreeSet<String>>,
    /// Each restricted chart's newest key: (epoch, public key).
    pub chart_keys: BTreeMap<String, (u64, String)>,
    /// Every chart the log has ever named (restricted once, or still).
    seen: BTreeSet<String>,
    /// The last entry absorbed: who signed it and what it said.
    last: Option<(String, Fact)>,
    /// How many entries, and the last one's hash.
    pub len: u64,
    pub head: [u8; 32],
}

/// What an entry's signer may do.
enum Authority {
    /// The root key before any administrator or recovery key is registered (the entries that
    /// start the log).
    Bootstrap,
    Role(Role),
}

impl Authority {
    fn allows(&self, permission: Permission) -> bool {
        match self {
            Authority::Bootstrap => true,
            Authority::Role(role) => role.allows(permission),
        }
    }

    /// Whether the authority's role holds compartment `name` (the bootstrap holds all).
    fn reads(&self, name: &str) -> bool {
        match self {
            Authority::Bootstrap => true,
            Authority::Role(role) => crate::keys::compartments_of(*role).contains(&name),
        }
    }

    fn is_clinical_or_admin(&self) -> bool {
        match self {
            Authority::Bootstrap => true,
            Authority::Role(role) => matches!(role, Role::Admin | Role::Physician | Role::Nurse),
        }
    }
}

impl State {
    fn authority(&self, e: &Entry) -> Result<Authority, String> {
        let root = self
            .root
            .as_deref()
            .ok_or("the log does not begin with its root key")?;
        let bootstrap = self.recovery.is_none()
            && !self
                .users
                .values()
                .any(|u| u.enabled && u.role == Role::Admin);
        if bootstrap && e.signer_key == root {
            return Ok(Authority::Bootstrap);
        }
        if e.by == RECOVERY_SIGNER {
            return match &self.recovery {
                Some((_, Some(key))) if *key == e.signer_key => Ok(Authority::Role(Role::Admin)),
                _ => Err("signed with a recovery key the log does not register".into()),
            };
        }
        match self.users.get(&account_key(&e.by)) {
            Some(u) if !u.enabled => Err(format!("signed by {}, who is disabled", e.by)),
            Some(u) if u.signing_key.as_deref() == Some(e.signer_key.as_str()) => {
                Ok(Authority::Role(u.role))
            }
            Some(_) => Err(format!(
                "signed by {} with a key the log does not register for them",
                e.by
            )),
            None => Err(format!("signed by {}, whom the log does not know", e.by)),
        }
    }

    /// Whether the log lets `e`'s signer make `e`'s change, given everything before it.
    pub(crate) fn authorize(&self, e: &Entry) -> Result<(), String> {
        if let Fact::Root {
            vault_id: _,
            root_key,
        } = &e.fact
        {
            return if e.seq == 0 && *root_key == e.signer_key && self.root.is_none() {
                Ok(())
            } else {
                Err("a second root entry".into())
            };
        }
        let authority = self.authority(e)?;
        match &e.fact {
            Fact::Root { .. } => unreachable!("handled above"),
            Fact::User {
                user,
                role,
                enabled,
                signing_key,
                slot_key,
            } => {
                if authority.allows(Permission::ManageUsers) {
                    return Ok(());
                }
                // Anyone may give themselves a new password (a new slot), nothing else.
                let own = account_key(user) == account_key(&e.by) && e.by != RECOVERY_SIGNER;
                match self.users.get(&account_key(user)) {
                    Some(before)
                        if own
                            && before.role == *role
                            && before.enabled == *enabled
                            && *enabled
                            && before.signing_key == *signing_key
                            && slot_key.is_some() =>
                    {
                        Ok(())
                    }
                    _ => Err(format!("{} may not change the account of {user}", e.by)),
                }
            }
            Fact::Recovery { .. } => {
                if authority.allows(Permission::ManageKeys) {
                    Ok(())
                } else {
                    Err(format!("{} may not replace the recovery key", e.by))
                }
            }
            Fact::Compartment { name, epoch, .. } => {
                // The audit text's key is rotated only by those who read it (an auditor or an
                // administrator); any role that writes it may make its first one.
                let may = authority.is_clinical_or_admin()
                    && (name != crate::keys::AUDIT_TEXT
                        || !self.compartments.contains_key(name)
                        || authority.reads(name))
                    || authority.reads(name);
                if !may {
                    return Err(format!("{} may not make the {name} key", e.by));
                }
                match self.compartments.get(name) {
                    Some((current, _)) if *epoch <= *current => {
                        Err(format!("the {name} key of epoch {epoch} is not new"))
                    }
                    _ => Ok(()),
                }
            }
            Fact::Restriction {
                patient,
                restricted,
                team,
            } => {
                for member in team {
                    if !self.users.contains_key(&account_key(member)) {
                        return Err(format!(
                            "the care team names {member}, whom the log does not know"
                        ));
                    }
                }
                let may = if *restricted {
                    authority.allows(Permission::ManageCareTeam)
                        // Registering a restricted chart: a new chart, its team still empty
                        // (the registrant joins in the next entry).
                        || (authority.allows(Permission::RegisterPatient)
                            && team.is_empty()
                            && !self.seen.contains(patient))
                } else {
                    authority.allows(Permission::ManageCareTeam)
                        && self.restricted.contains_key(patient)
                };
                if may {
                    Ok(())
                } else {
                    Err(format!(
                        "{} may not change who may open chart {}",
                        e.by,
                        short(patient)
                    ))
                }
            }
            Fact::ChartKey { patient, epoch, .. } => {
                if !self.restricted.contains_key(patient) {
                    return Err(format!("chart {} is not restricted", short(patient)));
                }
                if let Some((current, _)) = self.chart_keys.get(patient) {
                    if *epoch <= *current {
                        return Err(format!(
                            "the key of chart {} at epoch {epoch} is not new",
                            short(patient)
                        ));
                    }
                }
                if self.may_key(&authority, e, patient) {
                    Ok(())
                } else {
                    Err(format!(
                        "{} may not give chart {} a new key",
                        e.by,
                        short(patient)
                    ))
                }
            }
            Fact::CareTeam {
                patient,
                user,
                member,
            } => {
                if !self.restricted.contains_key(patient) {
                    return Err(format!("chart {} is not restricted", short(patient)));
                }
                if !self.users.contains_key(&account_key(user)) {
                    return Err(format!("{user} is not known to the log"));
                }
                if authority.allows(Permission::ManageCareTeam) {
                    return Ok(());
                }
                // Whoever registers a restricted chart joins its team, right after (after the
                // chart's first key, which they sign in between).
                let same = |by: &str| account_key(by) == account_key(&e.by);
                let registering = match &self.last {
                    Some((
                        by,
                        Fact::Restriction {
                            patient: p,
                            restricted: true,
                            team,
                        },
                    )) => p == patient && team.is_empty() && same(by),
                    Some((
                        by,
                        Fact::ChartKey {
                            patient: p,
                            epoch: 0,
                            ..
                        },
                    )) => {
                        p == patient
                            && same(by)
                            && self.restricted.get(patient).is_some_and(|t| t.is_empty())
                    }
                    _ => false,
                };
                // The care team named at registration joins in the same breath, after the
                // registrar: each join chained to the one before, by the same signer.
                let naming = matches!(
                    &self.last,
                    Some((by, Fact::CareTeam { patient: p, member: true, .. }))
                        if p == patient && same(by)
                );
                if *member
                    && ((registering && account_key(user) == account_key(&e.by))
                        || (naming
                            && self
                                .restricted
                                .get(patient)
                                .is_some_and(|t| t.contains(&account_key(&e.by)))
                            // Named at registration: staff who treat or book patients,
                            // as core allows, never an administrator or auditor.
                            && self.users.get(&account_key(user)).is_some_and(|u| {
                                u.enabled
                                    && matches!(
                                        u.role,
                                        Role::Physician | Role::Nurse | Role::FrontDesk
                                    )
                            })))
                {
                    Ok(())
                } else {
                    Err(format!(
                        "{} may not change the care team of chart {}",
                        e.by,
                        short(patient)
                    ))
                }
            }
        }
    }

    /// Whether `e`'s signer may give restricted chart `patient` a new key: someone who may
    /// open it (on its team, or a role that may break the glass), an administrator (an
    /// import, an upgrade), or whoever restricted it in the entry just before.
    fn may_key(&self, authority: &Authority, e: &Entry, patient: &str) -> bool {
        let member = self
            .restricted
            .get(patient)
            .is_some_and(|team| team.contains(&account_key(&e.by)));
        let restricting = matches!(
            &self.last,
            Some((by, Fact::Restriction { patient: p, restricted: true, .. }))
                if p == patient && account_key(by) == account_key(&e.by)
        );
        member
            || restricting
            || authority.allows(Permission::BreakGlass)
            || authority.allows(Permission::ManageUsers)
    }

    /// Takes `e`'s change into the state (after [`State::authorize`], or for entries already
    /// checked).
    pub(crate) fn absorb(&mut self, e: &Entry, hash: [u8; 32]) {
        match &e.fact {
            Fact::Root { vault_id, root_key } => {
                self.vault_id = Some(vault_id.clone());
                self.root = Some(root_key.clone());
            }
            Fact::User {
                user,
                role,
                enabled,
                slot_key,
                signing_key,
            } => {
                self.users.insert(
                    account_key(user),
                    UserState {
                        name: user.clone(),
                        role: *role,
                        enabled: *enabled,
                        slot_key: slot_key.clone(),
                        signing_key: signing_key.clone(),
                    },
                );
            }
            Fact::Recovery {
                slot_key,
                signing_key,
            } => self.recovery = Some((slot_key.clone(), signing_key.clone())),
            Fact::Compartment {
                name,
                epoch,
                public_key,
            } => {
                self.compartments
                    .insert(name.clone(), (*epoch, public_key.clone()));
            }
            Fact::Restriction {
                patient,
                restricted,
                team,
            } => {
                self.seen.insert(patient.clone());
                if *restricted {
                    self.restricted.insert(
                        patient.clone(),
                        team.iter().map(|t| account_key(t)).collect(),
                    );
                } else {
                    self.restricted.remove(patient);
                }
            }
            Fact::ChartKey {
                patient,
                epoch,
                public_key,
            } => {
                self.chart_keys
                    .insert(patient.clone(), (*epoch, public_key.clone()));
            }
            Fact::CareTeam {
                patient,
                user,
                member,
            } => {
                if let Some(team) = self.restricted.get_mut(patient) {
                    if *member {
                        team.insert(account_key(user));
                    } else {
                        team.remove(&account_key(user));
                    }
                }
            }
        }
        self.last = Some((e.by.clone(), e.fact.clone()));
        self.len = e.seq + 1;
        self.head = hash;
    }

    /// The user behind `name`, as the log states them.
    pub(crate) fn user(&self, name: &str) -> Option<&UserState> {
        self.users.get(&account_key(name))
    }
}

/// Where and why the log does not verify.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Broken {
    /// The first entry that fails (its sequence number; the length of the log when entries
    /// are missing at the end or the whole log is).
    pub seq: u64,
    pub why: String,
}

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "security log entry {}: {}", self.seq, self.why)
    }
}

/// A stored row of the log.
struct Row {
    seq: i64,
    kind: String,
    subject: String,
    entry: String,
    signature: Vec<u8>,
    hash: Vec<u8>,
}

fn read_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok(Row {
        seq: r.get(0)?,
        kind: r.get(1)?,
        subject: r.get(2)?,
        entry: r.get(3)?,
        signature: r.get(4)?,
        hash: r.get(5)?,
    })
}

const ROW_COLUMNS: &str = "seq, kind, subject, entry, signature, hash";

/// Checks one row on its own: the entry parses, sits where it says, chains to `prev`, is
/// signed by the key it names and hashes to what is stored.
fn check_row(
    row: &Row,
    expected_seq: u64,
    prev: &[u8; 32],
    check_signature: bool,
) -> Result<Entry, String> {
    if row.seq < 0 || row.seq as u64 != expected_seq {
        return Err(if (row.seq as u64) > expected_seq {
            "an entry before it is missing".into()
        } else {
            "entries are out of order".into()
        });
    }
    let entry: Entry =
        serde_json::from_str(&row.entry).map_err(|_| "the entry is not readable".to_owned())?;
    if entry.format != FORMAT {
        return Err(format!("unknown entry format {}", entry.format));
    }
    if entry.seq != expected_seq {
        return Err("the entry names another place in the log".into());
    }
    if entry.prev != hex::encode(prev) {
        return Err("the entry does not follow the one before it (changed or removed)".into());
    }
    let (kind, subject) = entry.fact.index();
    if row.kind != kind || row.subject != subject {
        return Err("the entry's index columns were changed".into());
    }
    if row.hash != entry_hash(row.entry.as_bytes(), &row.signature) {
        return Err("the stored hash does not match the entry".into());
    }
    if !check_signature {
        return Ok(entry);
    }
    let key: [u8; 32] = B64
        .decode(&entry.signer_key)
        .ok()
        .and_then(|k| k.try_into().ok())
        .ok_or("the signer's key is not readable")?;
    let key = VerifyingKey::from_bytes(&key).map_err(|_| "the signer's key is not valid")?;
    let signature =
        Signature::from_slice(&row.signature).map_err(|_| "the signature is not readable")?;
    key.verify(&signed_message(row.entry.as_bytes()), &signature)
        .map_err(|_| "the signature does not match the entry".to_owned())?;
    if row.hash != entry_hash(row.entry.as_bytes(), &row.signature) {
        return Err("the stored hash does not match the entry".into());
    }
    Ok(entry)
}

/// Replays the whole log: every entry checked, chained, signed by someone the entries
/// before it allow to make its change. `root` is the root key the caller's slot names
/// (None for a slot made before the log, which then learns it from the first entry).
pub(crate) fn verify(conn: &Connection, root: Option<&str>) -> Result<State, Broken> {
    verify_from(conn, root, None)
}

/// [`verify`], trusting the signatures of the first `trusted.0` entries, whose head this
/// slot's owner verified before (their MAC says so): the chain is still checked through
/// them, and a log shorter than that, or with another head there, is broken.
pub(crate) fn verify_from(
    conn: &Connection,
    root: Option<&str>,
    trusted: Option<(u64, [u8; 32])>,
) -> Result<State, Broken> {
    let fail = |seq: u64, why: String| Broken { seq, why };
    let mut stmt = conn
        .prepare(&format!(
            "SELECT {ROW_COLUMNS} FROM security_log ORDER BY seq"
        ))
        .map_err(|e| fail(0, format!("the log cannot be read ({e})")))?;
    let rows = stmt
        .query_map([], read_row)
        .map_err(|e| fail(0, format!("the log cannot be read ({e})")))?;
    let mut state = State::default();
    let mut prev = NO_PREVIOUS;
    for row in rows {
        let seq = state.len;
        let row = row.map_err(|e| fail(seq, format!("the entry cannot be read ({e})")))?;
        let known = trusted.is_some_and(|(n, _)| seq < n);
        let entry = check_row(&row, seq, &prev, !known).map_err(|why| fail(seq, why))?;
        if seq == 0 {
            if let (Some(root), Fact::Root { root_key, .. }) = (root, &entry.fact) {
                if root_key != root {
                    return Err(fail(
                        0,
                        "the log was replaced: its root key is not the one your key slot names"
                            .into(),
                    ));
                }
            }
        }
        state.authorize(&entry).map_err(|why| fail(seq, why))?;
        prev = entry_hash(row.entry.as_bytes(), &row.signature);
        state.absorb(&entry, prev);
        if let Some((n, head)) = trusted {
            if state.len == n && head != prev {
                return Err(fail(seq, "the log was rewritten from this entry on".into()));
            }
        }
    }
    if state.len == 0 && root.is_some() {
        return Err(fail(0, "the log is missing".into()));
    }
    if let Some((n, _)) = trusted {
        if state.len < n {
            return Err(fail(
                state.len,
                format!(
                    "entries were removed from the end of the log (it had {n} when you last signed in)"
                ),
            ));
        }
    }
    Ok(state)
}

/// The number of entries and the hash of the last, for the sync head.
pub(crate) fn head(conn: &Connection) -> Result<Option<(u64, [u8; 32])>, CoreError> {
    let row: Option<(i64, Vec<u8>)> = conn
        .query_row(
            "SELECT seq, hash FROM security_log ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    Ok(row.and_then(|(seq, hash)| Some((seq as u64 + 1, hash.try_into().ok()?))))
}

/// The head a sync push carries: the log's length and last hash, and its hash at the length
/// the collector said it holds (so it can tell a log that grew from one rewritten).
pub(crate) fn push_head(
    conn: &Connection,
) -> Result<Option<chartroom_audit::sync::SecurityLogHead>, CoreError> {
    let Some((entries, hash)) = head(conn)? else {
        return Ok(None);
    };
    let known: i64 = conn
        .query_row(
            "SELECT security_entries FROM sync_state WHERE id = 1",
            [],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or(0);
    let at_known = if known > 0 {
        conn.query_row(
            "SELECT hash FROM security_log WHERE seq = ?1",
            [known - 1],
            |r| r.get::<_, Vec<u8>>(0),
        )
        .optional()?
        .map(|h| (known as u64, hex::encode(h)))
    } else {
        None
    };
    Ok(Some(chartroom_audit::sync::SecurityLogHead {
        entries,
        hash: hex::encode(hash),
        at_known,
    }))
}

/// Appends `fact`, signed by this connection's session (`cr_sign`), after checking that the
/// log lets it make that change: an append that would break the log is refused instead.
///
/// In a vault made before the log, until an administrator's sign-in starts it, there is no
/// log to append to: the change stands in the tables, which the start then takes as they are.
pub(crate) fn append(conn: &Connection, at: &str, fact: Fact) -> Result<(), CoreError> {
    let started: bool = conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM security_log)")?
        .query_row([], |r| r.get(0))?;
    if !started && !matches!(fact, Fact::Root { .. }) {
        return Ok(());
    }
    let (by, signer_key): (String, String) = conn
        .query_row("SELECT cr_signer_name(), cr_signer_key()", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .map_err(|_| refused("this sign-in has no signing key"))?;
    let last: Option<(i64, Vec<u8>)> = conn
        .prepare_cached("SELECT seq, hash FROM security_log ORDER BY seq DESC LIMIT 1")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let (seq, prev) = match last {
        Some((seq, hash)) => (
            seq as u64 + 1,
            hash.try_into()
                .map_err(|_| CoreError::Integrity("The security log is damaged.".into()))?,
        ),
        None => (0, NO_PREVIOUS),
    };
    let entry = Entry {
        format: FORMAT,
        seq,
        prev: hex::encode(prev),
        at: at.to_owned(),
        by,
        signer_key,
        fact,
    };
    let state = if seq > 0 {
        partial_state(conn, &entry)?
    } else {
        State::default()
    };
    state.authorize(&entry).map_err(|why| refused(&why))?;
    let text = serde_json::to_string(&entry).expect("log entries serialise");
    let signature: Vec<u8> = conn
        .query_row(
            "SELECT cr_sign(?1)",
            [signed_message(text.as_bytes())],
            |r| r.get(0),
        )
        .map_err(|_| refused("this sign-in has no signing key"))?;
    let hash = entry_hash(text.as_bytes(), &signature);
    let (kind, subject) = entry.fact.index();
    conn.prepare_cached(
        "INSERT INTO security_log (seq, kind, subject, entry, signature, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![seq as i64, kind, subject, text, signature, hash.to_vec()])?;
    Ok(())
}

fn refused(why: &str) -> CoreError {
    CoreError::Conflict(format!(
        "The clinic's security log does not allow this change ({why})."
    ))
}

/// The state an append is checked against: the entries about its signer and its subject, the
/// root, the recovery key and the entry before it (each already verified at this session's
/// unlock, or appended by it).
fn partial_state(conn: &Connection, entry: &Entry) -> Result<State, CoreError> {
    let (kind, subject) = entry.fact.index();
    let mut subjects = vec![("user", account_key(&entry.by)), (kind, subject)];
    if let Fact::Restriction { team, .. } = &entry.fact {
        subjects.extend(team.iter().map(|t| ("user", account_key(t))));
    }
    if let Fact::CareTeam { user, .. } = &entry.fact {
        subjects.push(("user", account_key(user)));
    }
    let mut wanted: BTreeMap<i64, Row> = BTreeMap::new();
    let mut take = |sql: &str, p: &[&dyn rusqlite::ToSql]| -> Result<(), CoreError> {
        let mut stmt = conn.prepare_cached(sql)?;
        for row in stmt.query_map(p, read_row)? {
            let row = row?;
            wanted.insert(row.seq, row);
        }
        Ok(())
    };
    let every = format!("SELECT {ROW_COLUMNS} FROM security_log WHERE kind = ?1 AND subject = ?2");
    for (k, s) in &subjects {
        take(&every, &[k, s])?;
    }
    take(
        &format!("SELECT {ROW_COLUMNS} FROM security_log WHERE kind IN ('root', 'recovery')"),
        &[],
    )?;
    take(
        &format!("SELECT {ROW_COLUMNS} FROM security_log ORDER BY seq DESC LIMIT 1"),
        &[],
    )?;
    let mut state = State::default();
    for row in wanted.values() {
        let e: Entry = serde_json::from_str(&row.entry)
            .map_err(|_| CoreError::Integrity("The security log is damaged.".into()))?;
        let hash = row.hash.clone().try_into().unwrap_or(NO_PREVIOUS);
        state.absorb(&e, hash);
    }
    Ok(state)
}

/// Whether the log (as it stands) lets `user` open restricted chart `patient`: it lists the
/// chart as restricted with them on its team. None when the log does not list the chart as
/// restricted (or has not started). Read from the chart's own entries only.
pub(crate) fn team_allows(
    conn: &Connection,
    patient_uuid: &[u8],
    user: &str,
) -> Result<Option<bool>, CoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT entry FROM security_log WHERE kind = 'patient' AND subject = ?1 ORDER BY seq",
    )?;
    let rows = stmt.query_map([patient_hex(patient_uuid)], |r| r.get::<_, String>(0))?;
    let mut state = State::default();
    for row in rows {
        let e: Entry = serde_json::from_str(&row?)
            .map_err(|_| CoreError::Integrity("The security log is damaged.".into()))?;
        state.absorb(&e, NO_PREVIOUS);
    }
    Ok(state
        .restricted
        .get(&patient_hex(patient_uuid))
        .map(|team| team.contains(&account_key(user))))
}

/// The compartments the slot file lists: (name, epoch, base64 public key).
fn file_compartments(vault: &chartroom_vault::Vault) -> Vec<(String, u64, String)> {
    vault.compartment_publics()
}

/// Starts the log of a vault made before it, from its tables and slot file as they stand:
/// signed by the administrator (or recovery key) whose sign-in upgrades it, whose signing key
/// becomes the root. Slots without a signing key get one now, so everyone has a key the log
/// can name.
fn start(
    vault: &mut chartroom_vault::Vault,
    at: &str,
    me: Option<&str>,
) -> Result<String, CoreError> {
    use chartroom_vault::SlotKind;
    let root = vault
        .own_slot_keys()
        .signing_key
        .ok_or_else(|| CoreError::Integrity("This key slot has no signing key.".into()))?;
    let vault_id = vault.vault_id().to_owned();
    append(
        vault.connection(),
        at,
        Fact::Root {
            vault_id,
            root_key: root.clone(),
        },
    )?;
    let users = crate::users::list_for_log(vault.connection())?;
    let slots = vault.slot_keys()?;
    let slot_of = |name: &str| {
        slots
            .iter()
            .find(|s| s.kind == SlotKind::User && account_key(&s.owner) == account_key(name))
            .cloned()
    };
    // The signer first, so the entries after it are signed by a registered administrator.
    let mut order: Vec<&(String, Role, bool)> = users
        .iter()
        .filter(|(n, _, _)| me.is_some_and(|m| account_key(m) == account_key(n)))
        .collect();
    order.extend(
        users
            .iter()
            .filter(|(n, _, _)| me.is_none_or(|m| account_key(m) != account_key(n))),
    );
    let recovery = slots.iter().find(|s| s.kind == SlotKind::Recovery).cloned();
    if me.is_none() {
        if let Some(r) = &recovery {
            append(
                vault.connection(),
                at,
                Fact::Recovery {
                    slot_key: Some(r.slot_key.clone()),
                    signing_key: r.signing_key.clone(),
                },
            )?;
        }
    }
    for (name, role, enabled) in order {
        let (slot_key, signing_key) = match (enabled, slot_of(name)) {
            (true, Some(slot)) => {
                let signing = vault.give_signing_key(SlotKind::User, &slot.owner)?;
                (Some(slot.slot_key), signing)
            }
            _ => (None, None),
        };
        append(
            vault.connection(),
            at,
            Fact::User {
                user: name.clone(),
                role: *role,
                enabled: *enabled,
                slot_key,
                signing_key,
            },
        )?;
    }
    if me.is_some() {
        if let Some(r) = &recovery {
            let signing = vault.give_signing_key(SlotKind::Recovery, &r.owner)?;
            append(
                vault.connection(),
                at,
                Fact::Recovery {
                    slot_key: Some(r.slot_key.clone()),
                    signing_key: signing,
                },
            )?;
        }
    }
    for (name, epoch, public_key) in file_compartments(vault) {
        append(
            vault.connection(),
            at,
            Fact::Compartment {
                name,
                epoch,
                public_key,
            },
        )?;
    }
    for (patient, team) in crate::access::restricted_teams(vault.connection())? {
        append(
            vault.connection(),
            at,
            Fact::Restriction {
                patient,
                restricted: true,
                team,
            },
        )?;
    }
    Ok(root)
}

/// Writes the first entries of a new vault's log: its root, its first administrator and its
/// recovery key.
pub(crate) fn begin(
    vault: &mut chartroom_vault::Vault,
    at: &str,
    admin: &str,
) -> Result<(), CoreError> {
    start(vault, at, Some(admin)).map(|_| ())
}

/// What an unlock's check of the log decided.
pub(crate) enum Checked {
    /// The log verified; what differed from it outside the log was undone. The state is
    /// what the session decides by (its role, who holds which key).
    Verified(Box<State>),
    /// A vault made before the security log, opened by someone who may not start it: the
    /// tables are taken as they are until an administrator signs in.
    NotStarted,
}

/// Checks the log at unlock, inside one IMMEDIATE transaction: verifies it against the root
/// key the unlocker's slot names (learning the root on a slot made before the log), refuses
/// an unlocker the log does not register, and undoes every change made outside Chartroom to
/// users, slots, compartments' public keys, restrictions and care teams, with an audit entry
/// and an alert naming them. A log that does not verify refuses the sign-in, after recording
/// why.
pub(crate) fn check_at_unlock(
    vault: &mut chartroom_vault::Vault,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Checked, CoreError> {
    vault.connection().execute_batch("BEGIN IMMEDIATE")?;
    // First of all, before anything writes: a trigger or view planted outside Chartroom
    // would run inside the honest transactions below and after.
    let result = remove_planted_triggers(vault.connection()).and_then(|planted| {
        let device = crate::audit::Device::load_or_create(vault.connection(), now)?;
        check_inside(vault, &device, now, planted)
    });
    crate::session::finish_manual_tx(vault, result, |_| {})?
}

type Outcome = Result<Checked, CoreError>;

fn check_inside(
    vault: &mut chartroom_vault::Vault,
    device: &crate::audit::Device,
    now: chrono::DateTime<chrono::Utc>,
    planted: Vec<String>,
) -> Result<Outcome, CoreError> {
    use chartroom_vault::{SlotKind, Unlocker};
    let at = crate::format_time(now);
    let me: Option<String> = match vault.unlocker() {
        Unlocker::User(name) => Some(name.clone()),
        Unlocker::Recovery => None,
    };
    let my_root = vault.root_key().map(|r| B64.encode(r));
    if head(vault.connection())?.is_none() && my_root.is_none() {
        let may_start = match &me {
            None => true,
            Some(name) => crate::users::find_user(vault.connection(), name)?
                .is_some_and(|(_, u)| !u.disabled && u.role == Role::Admin),
        };
        if !may_start {
            return Ok(Ok(Checked::NotStarted));
        }
        let canonical = match &me {
            Some(name) => {
                crate::users::find_user(vault.connection(), name)?.map(|(_, u)| u.name.to_string())
            }
            None => None,
        };
        start(vault, &at, canonical.as_deref())?;
        record(
            vault.connection(),
            device,
            now,
            crate::audit::Op::execute("security.log_start").detail(
                "security log started from the users, key slots and care teams as they stood",
            ),
            None,
        )?;
    }
    let own_key = vault.own_slot_keys().slot_key;
    let trusted = own_head(vault, &own_key)?;
    let state = match verify_from(vault.connection(), my_root.as_deref(), trusted) {
        Ok(state) => state,
        Err(broken) => {
            let summary = format!(
                "The clinic's security log does not verify ({broken}): it was changed outside Chartroom. Sign-in is refused until an administrator restores the vault from a backup; `chartroom vault verify` names the entry."
            );
            record(
                vault.connection(),
                device,
                now,
                crate::audit::Op::execute("security.log_broken")
                    .outcome(chartroom_audit::Outcome::Failed)
                    .detail(broken.to_string()),
                Some(&summary),
            )?;
            return Ok(Err(CoreError::Integrity(summary)));
        }
    };
    // Is the unlocker who the log says?
    let own = vault.own_slot_keys();
    let registered = match &me {
        Some(name) => state
            .user(name)
            .filter(|u| u.enabled)
            .map(|u| (u.slot_key.clone(), u.signing_key.clone())),
        None => state.recovery.clone(),
    };
    let who = me.clone().unwrap_or_else(|| RECOVERY_SIGNER.to_owned());
    match registered {
        Some((slot, signing))
            if slot.as_deref() == Some(own.slot_key.as_str()) && signing == own.signing_key => {}
        Some(_) => {
            let summary = format!(
                "The key slot that opened for {who} is not the one the clinic's security log registered: it was replaced outside Chartroom. Sign-in is refused; an administrator must reset the password."
            );
            record(
                vault.connection(),
                device,
                now,
                crate::audit::Op::execute("security.slot_refused")
                    .outcome(chartroom_audit::Outcome::Failed)
                    .object("User", &who),
                Some(&summary),
            )?;
            return Ok(Err(CoreError::Integrity(summary)));
        }
        None => {
            // Disabled, or never added through Chartroom: like a wrong password.
            return Ok(Err(CoreError::Vault(
                chartroom_vault::VaultError::WrongCredential(None),
            )));
        }
    }
    remember_head(vault, &own_key, state.len, &state.head)?;
    if my_root.is_none() {
        if let Some(root) = state.root.as_deref().and_then(|r| B64.decode(r).ok()) {
            let root: [u8; 32] = root.try_into().map_err(|_| {
                CoreError::Integrity("The security log's root key is damaged.".into())
            })?;
            vault.bind_root(root)?;
        }
    }

    // Undo what was changed outside Chartroom.
    let mut undone = planted;
    undone.extend(crate::users::restore_from_log(
        vault.connection(),
        &state,
        &at,
    )?);
    for slot in vault.slot_keys()? {
        let ok = match slot.kind {
            SlotKind::User => state.user(&slot.owner).is_some_and(|u| {
                u.enabled
                    && u.slot_key.as_deref() == Some(slot.slot_key.as_str())
                    && u.signing_key == slot.signing_key
            }),
            SlotKind::Recovery => state.recovery.as_ref().is_some_and(|(k, s)| {
                k.as_deref() == Some(slot.slot_key.as_str()) && *s == slot.signing_key
            }),
        };
        if !ok && vault.drop_slot(slot.kind, &slot.owner, &slot.slot_key)? {
            undone.push(match slot.kind {
                SlotKind::User => format!("a key slot for {} that the log does not register was removed", slot.owner),
                SlotKind::Recovery => "a recovery key slot that the log does not register was removed (make a new recovery key)".into(),
            });
        }
    }
    let registered: Vec<(String, u64, String)> = state
        .compartments
        .iter()
        .map(|(n, (e, k))| (n.clone(), *e, k.clone()))
        .collect();
    if vault.restore_compartment_publics(&registered)? {
        undone.push("the compartments' public keys in the key slot file were restored".into());
    }
    undone.extend(crate::chart::patient::restore_restrictions(
        vault.connection(),
        &state,
        &at,
    )?);
    undone.extend(crate::access::restore_care_teams(
        vault.connection(),
        &state,
        &at,
    )?);
    if !undone.is_empty() {
        let summary = format!(
            "Changes made outside Chartroom were undone at sign-in: {}.",
            undone.join("; ")
        );
        record(
            vault.connection(),
            device,
            now,
            crate::audit::Op::execute("security.repair")
                .outcome(chartroom_audit::Outcome::Failed)
                .detail(undone.join("; ")),
            Some(&summary),
        )?;
    }
    Ok(Ok(Checked::Verified(Box::new(state))))
}

const HEAD_LABEL: &[u8] = b"chartroom/security-head/v1";

fn head_message(vault_id: &str, slot_key: &str, entries: u64, head: &[u8]) -> Vec<u8> {
    lp_concat(&[
        HEAD_LABEL,
        vault_id.as_bytes(),
        slot_key.as_bytes(),
        &entries.to_be_bytes(),
        head,
    ])
}

/// The log's length and head as this slot's owner last verified it, if their MAC holds (a
/// row planted or changed by someone else is ignored: the whole log is then verified).
fn own_head(
    vault: &chartroom_vault::Vault,
    slot_key: &str,
) -> Result<Option<(u64, [u8; 32])>, CoreError> {
    let row: Option<(i64, Vec<u8>, Vec<u8>)> = vault
        .connection()
        .query_row(
            "SELECT entries, head, mac FROM security_heads WHERE slot_key = ?1",
            [slot_key],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let Some((entries, head, mac)) = row else {
        return Ok(None);
    };
    let Ok(head) = <[u8; 32]>::try_from(head) else {
        return Ok(None);
    };
    let expected = vault.own_mac(&head_message(
        vault.vault_id(),
        slot_key,
        entries as u64,
        &head,
    ));
    Ok(match expected {
        Some(m) if m.as_slice() == mac.as_slice() => Some((entries as u64, head)),
        _ => None,
    })
}

/// [`remember_head`] for the unlocker's own slot, outside any other transaction.
pub(crate) fn remember_head_now(
    vault: &chartroom_vault::Vault,
    entries: u64,
    head: &[u8; 32],
) -> Result<(), CoreError> {
    let key = vault.own_slot_keys().slot_key;
    remember_head(vault, &key, entries, head)
}

fn remember_head(
    vault: &chartroom_vault::Vault,
    slot_key: &str,
    entries: u64,
    head: &[u8; 32],
) -> Result<(), CoreError> {
    let Some(mac) = vault.own_mac(&head_message(vault.vault_id(), slot_key, entries, head)) else {
        return Ok(());
    };
    vault.connection().execute(
        "INSERT INTO security_heads (slot_key, entries, head, mac) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (slot_key) DO UPDATE SET entries = excluded.entries, head = excluded.head, mac = excluded.mac",
        params![slot_key, entries as i64, head.to_vec(), mac.to_vec()],
    )?;
    Ok(())
}

/// Drops every trigger and view that Chartroom's schema does not make; returns what it
/// removed, in words.
fn remove_planted_triggers(conn: &Connection) -> Result<Vec<String>, CoreError> {
    let found: Vec<(String, String)> = conn
        .prepare("SELECT type, name FROM sqlite_master WHERE type IN ('trigger', 'view')")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut removed = Vec::new();
    for (kind, name) in found {
        if kind == "trigger" && crate::schema::KNOWN_TRIGGERS.contains(&name.as_str()) {
            continue;
        }
        let quoted = name.replace('"', "\"\"");
        conn.execute_batch(&format!(
            "DROP {} IF EXISTS \"{quoted}\"",
            if kind == "trigger" { "TRIGGER" } else { "VIEW" }
        ))?;
        let shown: String = name.chars().filter(|c| !c.is_control()).take(64).collect();
        removed.push(format!(
            "a {kind} named {shown}, which Chartroom did not make, was removed"
        ));
    }
    Ok(removed)
}

/// An audit entry by the system, and an alert with `summary` when given.
fn record(
    conn: &Connection,
    device: &crate::audit::Device,
    now: chrono::DateTime<chrono::Utc>,
    op: crate::audit::Op,
    summary: Option<&str>,
) -> Result<(), CoreError> {
    let system = crate::audit::ActorRef {
        id: None,
        name: "system".into(),
        role: None,
    };
    let rec = crate::audit::append(conn, device, &system, now, &op)?;
    if let Some(summary) = summary {
        crate::alerts::raise(
            conn,
            crate::alerts::rule::SECURITY_TAMPERING,
            now,
            None,
            None,
            summary,
            rec.entry.seq,
        )?;
    }
    Ok(())
}

/// A root key's fingerprint as people compare it: the first 80 bits of its SHA-256, in
/// groups of four hex digits.
pub fn fingerprint(root: &[u8]) -> String {
    let digest = Sha256::digest(root);
    hex::encode_upper(&digest[..10])
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("-")
}

/// What `vault verify` says of the security log.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct LogVerification {
    pub ok: bool,
    pub entries: u64,
    /// The root key's fingerprint, as shown with the recovery key.
    pub root_fingerprint: Option<String>,
    pub first_bad_seq: Option<u64>,
    pub reason: Option<String>,
}

/// Both chains, as `vault verify` reports them.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct VaultVerification {
    pub ok: bool,
    pub security_log: LogVerification,
    pub audit: crate::audit::Verification,
}

impl crate::Session {
    /// Verifies the security log (every entry chained, signed and allowed by those before
    /// it, from the root key this session's slot names) and the audit trail.
    pub fn verify_vault(&mut self) -> Result<VaultVerification, CoreError> {
        let root = self.vault()?.root_key().map(|r| B64.encode(r));
        let audit = self.verify_audit()?;
        self.run(
            Permission::VerifyAudit,
            crate::audit::Op::execute("security.verify"),
            false,
            |tx, op, _| {
                let log = match verify(tx, root.as_deref()) {
                    Ok(state) => LogVerification {
                        ok: true,
                        entries: state.len,
                        root_fingerprint: state
                            .root
                            .as_deref()
                            .and_then(|r| B64.decode(r).ok())
                            .map(|r| fingerprint(&r)),
                        first_bad_seq: None,
                        reason: None,
                    },
                    Err(broken) => LogVerification {
                        ok: false,
                        entries: head(tx)?.map_or(0, |(n, _)| n),
                        root_fingerprint: None,
                        first_bad_seq: Some(broken.seq),
                        reason: Some(broken.why),
                    },
                };
                if !log.ok {
                    op.outcome = chartroom_audit::Outcome::Failed;
                }
                op.detail = Some(match log.first_bad_seq {
                    Some(seq) => format!("security log broken at entry {seq}"),
                    None => format!("{} security log entries intact", log.entries),
                });
                Ok(VaultVerification {
                    ok: log.ok && audit.ok,
                    security_log: log,
                    audit: audit.clone(),
                })
            },
        )
    }

    /// The security log's root key fingerprint (shown with the recovery key).
    pub fn root_fingerprint(&self) -> Result<Option<String>, CoreError> {
        Ok(self.vault()?.root_key().map(|r| fingerprint(&r)))
    }
}

/// Every public key the log registered for compartment `name`, by epoch (base64).
pub(crate) fn compartment_publics(
    conn: &Connection,
    name: &str,
) -> Result<BTreeMap<u64, String>, CoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT entry FROM security_log WHERE kind = 'compartment' AND subject = ?1 ORDER BY seq",
    )?;
    let rows = stmt.query_map([name], |r| r.get::<_, String>(0))?;
    let mut out = BTreeMap::new();
    for row in rows {
        if let Ok(Entry {
            fact: Fact::Compartment {
                epoch, public_key, ..
            },
            ..
        }) = serde_json::from_str::<Entry>(&row?)
        {
            out.insert(epoch, public_key);
        }
    }
    Ok(out)
}

/// Hex of a patient's global id, as the log names charts.
pub(crate) fn patient_hex(uuid: &[u8]) -> String {
    hex::encode(uuid)
}
