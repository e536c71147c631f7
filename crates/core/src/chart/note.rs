//! Notes: free text or SOAP, drafted, signed once and then only amended by addenda and
//! amendments that are signed in their own right. The changes, their one writer (the only
//! code that writes `notes`), and the operations on the Session.

use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::change::{self, apply, same, Applied, Change, RecordId, Stamp, Table};
use super::{encounter_id_of, encounter_row, Item};
use crate::audit::Op;
use crate::ids::*;
use crate::keys::open_field;
use crate::roles::Permission;
use crate::{CoreError, Denial, Session};

const MAX_NOTE_CHARS: usize = 20_000;

/// Where a note stands: a draft can change; a signed note never does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum NoteStatus {
    Draft,
    Signed,
}

impl NoteStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            NoteStatus::Draft => "draft",
            NoteStatus::Signed => "signed",
        }
    }

    fn parse(text: &str) -> NoteStatus {
        if text == "signed" {
            NoteStatus::Signed
        } else {
            NoteStatus::Draft
        }
    }
}

impl PartialEq<&str> for NoteStatus {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl std::fmt::Display for NoteStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A note's content: free text, or SOAP sections.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(tag = "format", rename_all = "snake_case")]
pub enum NoteContent {
    Free {
        text: String,
    },
    Soap {
        subjective: Option<String>,
        objective: Option<String>,
        assessment: Option<String>,
        plan: Option<String>,
    },
}

fn note_text(label: &str, text: &str) -> Result<String, CoreError> {
    let t = text.trim();
    if t.is_empty() {
        return Err(CoreError::InvalidInput(format!("The {label} is empty.")));
    }
    if t.chars().count() > MAX_NOTE_CHARS {
        return Err(CoreError::InvalidInput(format!(
            "The {label} is longer than {MAX_NOTE_CHARS} characters."
        )));
    }
    if t.chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\t' | '\r'))
    {
        return Err(CoreError::InvalidInput(format!(
            "The {label} contains a control character."
        )));
    }
    Ok(t.replace("\r\n", "\n"))
}

impl NoteContent {
    /// The same checks as [`NoteContent::free`] and [`NoteContent::soap`], for content that
    /// arrives already shaped (the desktop window sends it as JSON).
    pub fn validated(&self) -> Result<NoteContent, CoreError> {
        match self {
            NoteContent::Free { text } => NoteContent::free(text),
            NoteContent::Soap {
                subjective,
                objective,
                assessment,
                plan,
            } => NoteContent::soap(
                subjective.as_deref(),
                objective.as_deref(),
                assessment.as_deref(),
                plan.as_deref(),
            ),
        }
    }

    pub fn free(text: &str) -> Result<NoteContent, CoreError> {
        Ok(NoteContent::Free {
            text: note_text("note", text)?,
        })
    }

    /// SOAP sections; at least one must have text.
    pub fn soap(
        subjective: Option<&str>,
        objective: Option<&str>,
        assessment: Option<&str>,
        plan: Option<&str>,
    ) -> Result<NoteContent, CoreError> {
        let section = |label: &str, t: Option<&str>| -> Result<Option<String>, CoreError> {
            match t.map(str::trim) {
                None | Some("") => Ok(None),
                Some(t) => note_text(label, t).map(Some),
            }
        };
        let content = NoteContent::Soap {
            subjective: section("subjective section", subjective)?,
            objective: section("objective section", objective)?,
            assessment: section("assessment section", assessment)?,
            plan: section("plan section", plan)?,
        };
        if let NoteContent::Soap {
            subjective: None,
            objective: None,
            assessment: None,
            plan: None,
        } = content
        {
            return Err(CoreError::InvalidInput(
                "A SOAP note needs text in at least one section.".into(),
            ));
        }
        Ok(content)
    }

    /// The note as plain text, for display and export.
    pub fn as_text(&self) -> String {
        match self {
            NoteContent::Free { text } => text.clone(),
            NoteContent::Soap {
                subjective,
                objective,
                assessment,
                plan,
            } => [
                ("Subjective", subjective),
                ("Objective", objective),
                ("Assessment", assessment),
                ("Plan", plan),
            ]
            .iter()
            .filter_map(|(label, text)| text.as_ref().map(|t| format!("{label}: {t}")))
            .collect::<Vec<_>>()
            .join("\n"),
        }
    }
}

/// A note, an addendum to a signed note, or an amendment that corrects one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum NoteKind {
    Note,
    Addendum,
    Amendment,
}

impl NoteKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NoteKind::Note => "note",
            NoteKind::Addendum => "addendum",
            NoteKind::Amendment => "amendment",
        }
    }

    fn parse(text: &str) -> NoteKind {
        match text {
            "addendum" => NoteKind::Addendum,
            "amendment" => NoteKind::Amendment,
            _ => NoteKind::Note,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Note {
    pub id: NoteId,
    pub patient_id: PatientId,
    pub encounter_id: Option<EncounterId>,
    pub kind: NoteKind,
    /// The signed note this addendum or amendment points to.
    pub parent_id: Option<NoteId>,
    pub author: String,
    #[serde(flatten)]
    pub content: NoteContent,
    pub status: NoteStatus,
    pub created_at: String,
    pub updated_at: String,
    pub signed_by: Option<String>,
    pub signed_at: Option<String>,
    /// SHA-256 of the content as signed.
    pub content_sha256: Option<String>,
    /// The signer's personal Ed25519 signature over [`signature_message`], with their public
    /// key; none for notes signed before personal signatures, or made by the demo.
    pub signature: Option<NoteSignature>,
}

/// A personal signature on a note: standard Ed25519, both values in standard base64.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct NoteSignature {
    /// The signer's Ed25519 public key (32 bytes).
    pub key: String,
    /// The signature (64 bytes).
    pub signature: String,
}

/// The bytes a note's signature covers (docs/security.md): its kind, who signed it and when,
/// and the SHA-256 of its content as JSON, exactly as an export carries that JSON.
pub fn signature_message(
    kind: NoteKind,
    signed_by: &str,
    signed_at: &str,
    content: &NoteContent,
) -> Vec<u8> {
    let structured = serde_json::to_string(content).unwrap_or_default();
    format!(
        "chartroom/note-signature/v1\n{}\n{signed_by}\n{signed_at}\n{}\n",
        kind.as_str(),
        hex::encode(Sha256::digest(structured.as_bytes()))
    )
    .into_bytes()
}

impl NoteSignature {
    /// Signs `message` with `key`.
    pub(crate) fn sign(key: &chartroom_vault::ed25519_dalek::SigningKey, message: &[u8]) -> Self {
        use base64::Engine as _;
        use chartroom_vault::ed25519_dalek::Signer as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        NoteSignature {
            key: b64.encode(key.verifying_key().as_bytes()),
            signature: b64.encode(key.sign(message).to_bytes()),
        }
    }

    /// Whether this is a valid signature of `message` by its key.
    pub(crate) fn verifies(&self, message: &[u8]) -> bool {
        use base64::Engine as _;
        use chartroom_vault::ed25519_dalek::{Signature, VerifyingKey};
        let b64 = base64::engine::general_purpose::STANDARD;
        let (Ok(key), Ok(sig)) = (b64.decode(&self.key), b64.decode(&self.signature)) else {
            return false;
        };
        let (Ok(key), Ok(sig)) = (<[u8; 32]>::try_from(key), <[u8; 64]>::try_from(sig)) else {
            return false;
        };
        VerifyingKey::from_bytes(&key)
            .map(|k| {
                k.verify_strict(message, &Signature::from_bytes(&sig))
                    .is_ok()
            })
            .unwrap_or(false)
    }
}

const NOTE_COLUMNS: &str = concat!(
    "id, patient_id, encounter_id, kind, parent_id, author, format, ",
    open_field!("notes", "text"),
    ", ",
    open_field!("notes", "subjective"),
    ", ",
    open_field!("notes", "objective"),
    ", ",
    open_field!("notes", "assessment"),
    ", ",
    open_field!("notes", "plan"),
    ", status, created_at, updated_at, signed_by, signed_at, ",
    open_field!("notes", "content_sha256"),
    ", ",
    open_field!("notes", "signature"),
    ", ",
    open_field!("notes", "signer_key")
);

fn row_to_note(r: &rusqlite::Row<'_>) -> rusqlite::Result<Note> {
    let kind: String = r.get(3)?;
    let format: String = r.get(6)?;
    let content = if format == "soap" {
        NoteContent::Soap {
            subjective: r.get(8)?,
            objective: r.get(9)?,
            assessment: r.get(10)?,
            plan: r.get(11)?,
        }
    } else {
        NoteContent::Free { text: r.get(7)? }
    };
    Ok(Note {
        id: r.get(0)?,
        patient_id: r.get(1)?,
        encounter_id: r.get(2)?,
        kind: NoteKind::parse(&kind),
        parent_id: r.get(4)?,
        author: r.get(5)?,
        content,
        status: NoteStatus::parse(&r.get::<_, String>(12)?),
        created_at: r.get(13)?,
        updated_at: r.get(14)?,
        signed_by: r.get(15)?,
        signed_at: r.get(16)?,
        content_sha256: r.get(17)?,
        signature: match (
            r.get::<_, Option<String>>(18)?,
            r.get::<_, Option<String>>(19)?,
        ) {
            (Some(signature), Some(key)) => Some(NoteSignature { key, signature }),
            _ => None,
        },
    })
}

/// The hash a signature covers: the note's kind, what it points to and its content.
pub fn note_digest(note: &Note) -> String {
    digest_of(
        note.patient_id.get(),
        note.encounter_id.map(EncounterId::get),
        note.kind,
        note.parent_id.map(NoteId::get),
        &note.content,
    )
}

/// [`note_digest`] from a note's parts, for writers that have not read the note back.
pub(crate) fn digest_of(
    patient_id: i64,
    encounter_id: Option<i64>,
    kind: NoteKind,
    parent_id: Option<i64>,
    content: &NoteContent,
) -> String {
    let canonical = serde_json::json!({
        "patient_id": patient_id,
        "encounter_id": encounter_id,
        "kind": kind,
        "parent_id": parent_id,
        "content": content,
    });
    hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
}

pub(crate) fn note(conn: &Connection, id: i64) -> Result<Note, CoreError> {
    conn.prepare_cached(&format!("SELECT {NOTE_COLUMNS} FROM notes WHERE id = ?1"))?
        .query_row([id], row_to_note)
        .optional()?
        .ok_or_else(|| CoreError::NotFound(format!("There is no note {id}.")))
}

pub(crate) fn notes(conn: &Connection, patient_id: i64) -> Result<Vec<Note>, CoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {NOTE_COLUMNS} FROM notes WHERE patient_id = ?1 ORDER BY created_at DESC, id DESC"
    ))?;
    let rows = stmt.query_map([patient_id], row_to_note)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(crate) fn content_columns(c: &NoteContent) -> (&'static str, String, [Option<&str>; 4]) {
    match c {
        NoteContent::Free { text } => ("free", text.clone(), [None, None, None, None]),
        NoteContent::Soap {
            subjective,
            objective,
            assessment,
            plan,
        } => (
            "soap",
            c.as_text(),
            [
                subjective.as_deref(),
                objective.as_deref(),
                assessment.as_deref(),
                plan.as_deref(),
            ],
        ),
    }
}

/// A note drafted: version 1 of [`Change::NoteDrafted`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoteDrafted {
    pub note: RecordId,
    pub patient: RecordId,
    pub encounter: Option<RecordId>,
    /// The author's local user id, when they are a user of this vault.
    pub author_id: Option<i64>,
    pub content: NoteContent,
    /// The author and when they began it.
    pub drafted: Stamp,
}

/// An addendum or amendment to a signed note, drafted: version 1 of
/// [`Change::AddendumAdded`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddendumAdded {
    pub note: RecordId,
    /// The signed note it appends to.
    pub parent: RecordId,
    pub amendment: bool,
    pub encounter: Option<RecordId>,
    pub author_id: Option<i64>,
    pub content: NoteContent,
    pub drafted: Stamp,
}

/// A draft's content replaced: version 1 of [`Change::DraftEdited`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DraftEdited {
    pub note: RecordId,
    pub content: NoteContent,
    pub edited: Stamp,
}

/// A draft signed, which freezes it: version 1 of [`Change::NoteSigned`]. The digest the
/// signature covers is computed from the note as stored when the change is applied.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoteSigned {
    pub note: RecordId,
    pub signed: Stamp,
    /// The signer's personal signature over [`signature_message`] of the note as stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<NoteSignature>,
}

fn check_content(content: &NoteContent) -> Result<(), CoreError> {
    same("note's content", &content.validated()?, content)
}

#[allow(clippy::too_many_arguments)]
fn insert(
    conn: &Connection,
    uuid: RecordId,
    patient: i64,
    encounter: Option<i64>,
    kind: NoteKind,
    parent: Option<i64>,
    author_id: Option<i64>,
    content: &NoteContent,
    drafted: &Stamp,
) -> Result<Applied, CoreError> {
    check_content(content)?;
    let (format, text, [s, o, a, p]) = content_columns(content);
    conn.prepare_cached(
        "INSERT INTO notes (uuid, patient_id, encounter_id, kind, parent_id, author_id, author, format, text,
                            subjective, objective, assessment, plan, status, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8,
                 cr_seal(?9, 'notes', 'text', ?1, (SELECT uuid FROM patients WHERE id = ?2)),
                 cr_seal(?10, 'notes', 'subjective', ?1, (SELECT uuid FROM patients WHERE id = ?2)),
                 cr_seal(?11, 'notes', 'objective', ?1, (SELECT uuid FROM patients WHERE id = ?2)),
                 cr_seal(?12, 'notes', 'assessment', ?1, (SELECT uuid FROM patients WHERE id = ?2)),
                 cr_seal(?13, 'notes', 'plan', ?1, (SELECT uuid FROM patients WHERE id = ?2)),
                 'draft', ?14, ?14)",
    )?
    .execute(params![
        uuid,
        patient,
        encounter,
        kind.as_str(),
        parent,
        author_id,
        drafted.by,
        format,
        text,
        s,
        o,
        a,
        p,
        drafted.time()
    ])?;
    Ok(Applied::one(conn.last_insert_rowid()))
}

/// The one writer of `notes`, for a new note.
pub(super) fn apply_drafted(conn: &Connection, c: &NoteDrafted) -> Result<Applied, CoreError> {
    let patient = change::row_of(conn, Table::Patients, c.patient)?;
    let encounter = encounter_row(conn, c.encounter, patient)?;
    insert(
        conn,
        c.note,
        patient,
        encounter,
        NoteKind::Note,
        None,
        c.author_id,
        &c.content,
        &c.drafted,
    )
}

/// The one writer of `notes`, for an addendum or amendment.
pub(super) fn apply_addendum(conn: &Connection, c: &AddendumAdded) -> Result<Applied, CoreError> {
    let parent_id = change::row_of(conn, Table::Notes, c.parent)?;
    // Status and patient only: an import adds addenda without opening what they amend.
    let (parent_patient, parent_status): (i64, String) = conn
        .prepare_cached("SELECT patient_id, status FROM notes WHERE id = ?1")?
        .query_row([parent_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
    if NoteStatus::parse(&parent_status) != NoteStatus::Signed {
        return Err(CoreError::Conflict(format!(
            "Note {parent_id} is still a draft: edit it instead of adding an addendum."
        )));
    }
    let encounter = encounter_row(conn, c.encounter, parent_patient)?;
    let kind = if c.amendment {
        NoteKind::Amendment
    } else {
        NoteKind::Addendum
    };
    insert(
        conn,
        c.note,
        parent_patient,
        encounter,
        kind,
        Some(parent_id),
        c.author_id,
        &c.content,
        &c.drafted,
    )
}

/// The one writer of `notes`, for a draft's new content.
pub(super) fn apply_edited(conn: &Connection, c: &DraftEdited) -> Result<Applied, CoreError> {
    check_content(&c.content)?;
    let id = change::row_of(conn, Table::Notes, c.note)?;
    let status: String = conn
        .prepare_cached("SELECT status FROM notes WHERE id = ?1")?
        .query_row([id], |r| r.get(0))?;
    if NoteStatus::parse(&status) != NoteStatus::Draft {
        return Err(signed_is_final(id));
    }
    let (format, text, [s, o, a, p]) = content_columns(&c.content);
    conn.prepare_cached(
        "UPDATE notes SET format = ?1,
             text = cr_seal(?2, 'notes', 'text', uuid, (SELECT p.uuid FROM patients p WHERE p.id = notes.patient_id)),
             subjective = cr_seal(?3, 'notes', 'subjective', uuid, (SELECT p.uuid FROM patients p WHERE p.id = notes.patient_id)),
             objective = cr_seal(?4, 'notes', 'objective', uuid, (SELECT p.uuid FROM patients p WHERE p.id = notes.patient_id)),
             assessment = cr_seal(?5, 'notes', 'assessment', uuid, (SELECT p.uuid FROM patients p WHERE p.id = notes.patient_id)),
             plan = cr_seal(?6, 'notes', 'plan', uuid, (SELECT p.uuid FROM patients p WHERE p.id = notes.patient_id)),
             updated_at = ?7 WHERE id = ?8 AND status = 'draft'",
    )?
    .execute(params![format, text, s, o, a, p, c.edited.time(), id])?;
    Ok(Applied::one(id))
}

/// The one writer of `notes`, for a signature.
pub(super) fn apply_signed(conn: &Connection, c: &NoteSigned) -> Result<Applied, CoreError> {
    let id = change::row_of(conn, Table::Notes, c.note)?;
    let n = note(conn, id)?;
    if n.status != NoteStatus::Draft {
        return Err(signed_is_final(id));
    }
    let signed_at = c.signed.time();
    if let Some(sig) = &c.signature {
        // A signature that does not cover this note, signed by this person then, is refused.
        if !sig.verifies(&signature_message(
            n.kind,
            &c.signed.by,
            &signed_at,
            &n.content,
        )) {
            return Err(CoreError::Integrity(format!(
                "The signature on note {id} does not match the note: it was changed after it was signed, or the signature belongs to another note."
            )));
        }
    }
    conn.prepare_cached(
        "UPDATE notes SET status = 'signed', signed_by = ?1, signed_at = ?2, updated_at = ?2,
             content_sha256 = cr_seal(?3, 'notes', 'content_sha256', uuid, (SELECT p.uuid FROM patients p WHERE p.id = notes.patient_id)),
             signature = cr_seal(?5, 'notes', 'signature', uuid, (SELECT p.uuid FROM patients p WHERE p.id = notes.patient_id)),
             signer_key = cr_seal(?6, 'notes', 'signer_key', uuid, (SELECT p.uuid FROM patients p WHERE p.id = notes.patient_id))
             WHERE id = ?4 AND status = 'draft'",
    )?
    .execute(params![
        c.signed.by,
        signed_at,
        note_digest(&n),
        id,
        c.signature.as_ref().map(|s| s.signature.as_str()),
        c.signature.as_ref().map(|s| s.key.as_str()),
    ])?;
    Ok(Applied::one(id))
}

pub(crate) fn signed_is_final(note_id: i64) -> CoreError {
    CoreError::Conflict(format!(
        "Note {note_id} is signed and can no longer change; add an addendum or an amendment instead."
    ))
}

impl Session {
    /// Writes a draft note, attached to one of the patient's encounters if given.
    pub fn draft_note(
        &mut self,
        patient_id: impl Into<PatientId>,
        encounter_id: Option<EncounterId>,
        content: &NoteContent,
    ) -> Result<Note, CoreError> {
        let patient_id = patient_id.into().get();
        let encounter_id = encounter_id.map(EncounterId::get);
        let author_id = self.actor_user_id();
        self.run(
            Permission::DraftNote,
            Op::create("note.create").patient(patient_id),
            true,
            |tx, op, ctx| {
                let encounter = encounter_id_of(tx, encounter_id, patient_id)?;
                let stamp = ctx.stamp();
                let drafted = NoteDrafted {
                    note: RecordId::new(stamp.at),
                    patient: ctx.patient()?.uuid,
                    encounter,
                    author_id,
                    content: content.validated()?,
                    drafted: stamp,
                };
                let n = note(tx, apply(tx, &Change::NoteDrafted(drafted))?.row())?;
                op.object = Some(("Note", n.id.to_string()));
                Ok(n)
            },
        )
    }

    /// Replaces a draft's content. Only its author edits a draft (it goes out under their
    /// name); a signed note is never edited: add an addendum.
    pub fn edit_draft(
        &mut self,
        note_id: impl Into<NoteId>,
        content: &NoteContent,
    ) -> Result<Note, CoreError> {
        let note_id = note_id.into().get();
        let patient_id = self.owner(Item::Note, note_id)?;
        let me = self.actor_user_id();
        let op = Op::update("note.update")
            .patient(patient_id)
            .object("Note", note_id);
        // A signed note is refused as final by its writer, whoever asks.
        let (author, draft): (Option<i64>, bool) = self
            .connection()?
            .prepare_cached("SELECT author_id, status = 'draft' FROM notes WHERE id = ?1")?
            .query_row([note_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        if self.can(Permission::DraftNote) && draft && (me.is_none() || author != me) {
            self.touch()?;
            return Err(self.deny(
                op,
                Denial::NotYours(
                    "This draft is another person's: only its author edits it (it goes out under their name).",
                ),
            ));
        }
        self.run(Permission::DraftNote, op, true, |tx, _, ctx| {
            // The writer refuses a signed note.
            let edited = DraftEdited {
                note: change::id_of(tx, Table::Notes, note_id)?,
                content: content.validated()?,
                edited: ctx.stamp(),
            };
            note(tx, apply(tx, &Change::DraftEdited(edited))?.row())
        })
    }

    /// Signs a draft (a note, addendum or amendment), which makes it final. Physicians only.
    pub fn sign_note(&mut self, note_id: impl Into<NoteId>) -> Result<Note, CoreError> {
        let note_id = note_id.into().get();
        let patient_id = self.owner(Item::Note, note_id)?;
        // Their own key, unwrapped from their slot at unlock: holding the database key does
        // not let anyone sign as someone else.
        let signer = self.vault()?.signing_key().cloned();
        self.run(
            Permission::SignNote,
            Op::update("note.sign")
                .patient(patient_id)
                .object("Note", note_id),
            true,
            |tx, op, ctx| {
                let n = note(tx, note_id)?;
                if n.kind != NoteKind::Note {
                    op.detail = Some(format!(
                        "{} to note {}",
                        n.kind.as_str(),
                        n.parent_id.unwrap_or_default()
                    ));
                }
                let stamp = ctx.stamp();
                let signature = signer.as_ref().map(|key| {
                    NoteSignature::sign(
                        key,
                        &signature_message(n.kind, &stamp.by, &stamp.time(), &n.content),
                    )
                });
                let signed = NoteSigned {
                    note: change::id_of(tx, Table::Notes, note_id)?,
                    signed: stamp,
                    signature,
                };
                note(tx, apply(tx, &Change::NoteSigned(signed))?.row())
            },
        )
    }

    /// Adds an addendum (more information) or an amendment (a correction) to a signed note,
    /// as a draft that points to it and is signed in its own right.
    pub fn add_addendum(
        &mut self,
        note_id: impl Into<NoteId>,
        content: &NoteContent,
        amendment: bool,
    ) -> Result<Note, CoreError> {
        let note_id = note_id.into().get();
        let patient_id = self.owner(Item::Note, note_id)?;
        let author_id = self.actor_user_id();
        let kind = if amendment {
            NoteKind::Amendment
        } else {
            NoteKind::Addendum
        };
        self.run(
            Permission::DraftNote,
            Op::create("note.addendum").patient(patient_id),
            true,
            |tx, op, ctx| {
                // The writer refuses an addendum to a draft.
                let parent = note(tx, note_id)?;
                let stamp = ctx.stamp();
                let added = AddendumAdded {
                    note: RecordId::new(stamp.at),
                    parent: change::id_of(tx, Table::Notes, note_id)?,
                    amendment,
                    encounter: parent
                        .encounter_id
                        .map(|e| change::id_of(tx, Table::Encounters, e))
                        .transpose()?,
                    author_id,
                    content: content.validated()?,
                    drafted: stamp,
                };
                let n = note(tx, apply(tx, &Change::AddendumAdded(added))?.row())?;
                op.object = Some(("Note", n.id.to_string()));
                op.detail = Some(format!("{} to note {note_id}", kind.as_str()));
                Ok(n)
            },
        )
    }

    /// A patient's notes, newest first.
    pub fn notes(&mut self, patient_id: impl Into<PatientId>) -> Result<Vec<Note>, CoreError> {
        let patient_id = patient_id.into().get();
        self.run(
            Permission::ReadNotes,
            Op::read("note.read").patient(patient_id),
            true,
            |tx, op, _| {
                let notes = notes(tx, patient_id)?;
                op.detail = Some(format!("{} notes", notes.len()));
                Ok(notes)
            },
        )
    }
}
