//! The clinical record's operations on the Session. Each names its one permission and goes
//! through [`Session::run`], so it is gated, restricted-patient aware and audited in the
//! same transaction as its change.

use chartroom_audit::format_time;
use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use crate::audit::Op;
use crate::error::Denial;
use crate::patients::{self, ChartAccess, NewPatient, Patient, PatientForm, PatientVersion};
use crate::record::{
    self, Allergy, Encounter, Immunization, Medication, NewAllergy, NewEncounter, NewImmunization,
    NewMedication, NewProblem, Note, NoteContent, NoteKind, Observation, Problem,
};
use crate::roles::{Permission, Role};
use crate::search::{self, SearchHit};
use crate::session::chart_access;
use crate::vitals::{bmi, Vital, VitalsInput};
use crate::{CoreError, Session};

/// A patient's chart as this session may see it: demographics always, clinical sections
/// only for roles that may read them (absent, not empty, otherwise).
#[derive(Debug, Clone, Serialize, PartialEq, ts_rs::TS)]
pub struct Chart {
    #[serde(flatten)]
    pub patient: Patient,
    pub age: u32,
    pub care_team: Vec<String>,
    /// How this session got in.
    pub access: ChartAccess,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub allergies: Option<Vec<Allergy>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub problems: Option<Vec<Problem>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub medications: Option<Vec<Medication>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub immunizations: Option<Vec<Immunization>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub encounters: Option<Vec<Encounter>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub vitals: Option<Vec<Observation>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub notes: Option<Vec<Note>>,
}

/// A patient's allergies with the status that says what an empty list means.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, ts_rs::TS)]
pub struct AllergyList {
    /// `unknown` (never asked), `no_known_allergies` (asked: none) or `recorded`.
    pub allergy_status: String,
    pub allergies: Vec<Allergy>,
}

/// Changes to demographics: `None` leaves a field as it is; for optional fields,
/// `Some("")` clears it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PatientChanges {
    pub family: Option<String>,
    pub given: Option<String>,
    pub preferred: Option<String>,
    pub birth_date: Option<String>,
    pub sex: Option<String>,
    pub gender_identity: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub address: Option<String>,
    pub emergency_name: Option<String>,
    pub emergency_phone: Option<String>,
    pub emergency_relationship: Option<String>,
    /// Changing the restriction also needs the care-team permission.
    pub restricted: Option<bool>,
}

impl PatientChanges {
    fn apply(&self, form: &mut PatientForm) -> Vec<&'static str> {
        let mut changed = Vec::new();
        let mut set = |name: &'static str, target: &mut String, value: &Option<String>| {
            if let Some(v) = value {
                if target != v {
                    changed.push(name);
                }
                *target = v.clone();
            }
        };
        set("family", &mut form.family, &self.family);
        set("given", &mut form.given, &self.given);
        set("birth_date", &mut form.birth_date, &self.birth_date);
        set("sex", &mut form.sex, &self.sex);
        let mut set_opt =
            |name: &'static str, target: &mut Option<String>, value: &Option<String>| {
                if let Some(v) = value {
                    let new = (!v.trim().is_empty()).then(|| v.clone());
                    if *target != new {
                        changed.push(name);
                    }
                    *target = new;
                }
            };
        set_opt("preferred", &mut form.preferred, &self.preferred);
        set_opt(
            "gender_identity",
            &mut form.gender_identity,
            &self.gender_identity,
        );
        set_opt("phone", &mut form.phone, &self.phone);
        set_opt("email", &mut form.email, &self.email);
        set_opt("address", &mut form.address, &self.address);
        set_opt(
            "emergency_name",
            &mut form.emergency_name,
            &self.emergency_name,
        );
        set_opt(
            "emergency_phone",
            &mut form.emergency_phone,
            &self.emergency_phone,
        );
        set_opt(
            "emergency_relationship",
            &mut form.emergency_relationship,
            &self.emergency_relationship,
        );
        changed
    }
}

/// Which table an item id belongs to, for finding its patient before the gate runs.
#[derive(Clone, Copy)]
enum Item {
    Note,
    Encounter,
    Problem,
    Allergy,
    Medication,
    Immunization,
}

impl Item {
    fn sql(self) -> &'static str {
        match self {
            Item::Note => "SELECT patient_id FROM notes WHERE id = ?1",
            Item::Encounter => "SELECT patient_id FROM encounters WHERE id = ?1",
            Item::Problem => "SELECT patient_id FROM problems WHERE id = ?1",
            Item::Allergy => "SELECT patient_id FROM allergies WHERE id = ?1",
            Item::Medication => "SELECT patient_id FROM medications WHERE id = ?1",
            Item::Immunization => "SELECT patient_id FROM immunizations WHERE id = ?1",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Item::Note => "note",
            Item::Encounter => "encounter",
            Item::Problem => "problem",
            Item::Allergy => "allergy",
            Item::Medication => "medication",
            Item::Immunization => "immunization",
        }
    }

    fn resource(self) -> &'static str {
        match self {
            Item::Note => "Note",
            Item::Encounter => "Encounter",
            Item::Problem => "Condition",
            Item::Allergy => "AllergyIntolerance",
            Item::Medication => "MedicationStatement",
            Item::Immunization => "Immunization",
        }
    }
}

fn today_of(now: DateTime<Utc>) -> NaiveDate {
    now.date_naive()
}

impl Session {
    fn today(&self) -> NaiveDate {
        today_of(self.clock.now())
    }

    /// The patient an item belongs to; reveals nothing else. A missing item is "not found".
    fn owner(&self, item: Item, id: i64) -> Result<i64, CoreError> {
        let conn = self
            .vault
            .as_ref()
            .map(chartroom_vault::Vault::connection)
            .ok_or(self.expired())?;
        conn.prepare_cached(item.sql())?
            .query_row([id], |r| r.get(0))
            .optional()?
            .ok_or_else(|| CoreError::NotFound(format!("There is no {} {id}.", item.name())))
    }

    // ----- patients --------------------------------------------------------------------

    /// Registers a patient. The registering user joins the care team.
    pub fn register_patient(&mut self, new: &NewPatient) -> Result<Patient, CoreError> {
        let user_id = self.actor_user_id();
        let clinical = self.can(Permission::ReadClinical);
        self.run(
            Permission::RegisterPatient,
            Op::create("patient.create"),
            false,
            |tx, op, ctx| {
                let p = patients::insert(tx, new, &format_time(ctx.now), &ctx.actor.name)?;
                if let Some(uid) = user_id {
                    tx.execute(
                        "INSERT INTO care_team (patient_id, user_id, added_at, added_by) VALUES (?1, ?2, ?3, ?4)",
                        params![p.id, uid, format_time(ctx.now), ctx.actor.name],
                    )?;
                }
                *op = op.clone().patient(p.id);
                op.purpose = Some(ctx.actor.role.map_or("HOPERAT", Role::purpose_of_use).to_owned());
                if p.restricted {
                    op.detail = Some("restricted".into());
                }
                Ok(hide_clinical(p, clinical))
            },
        )
    }

    /// Changes demographics; the previous version is kept with who changed it and when.
    pub fn update_patient(
        &mut self,
        patient_id: i64,
        changes: &PatientChanges,
    ) -> Result<Patient, CoreError> {
        let clinical = self.can(Permission::ReadClinical);
        if changes.restricted.is_some() && !self.can(Permission::ManageCareTeam) {
            let role = self.role();
            self.touch()?;
            return Err(self.deny(
                Op::update("patient.update").patient(patient_id),
                Denial::Role {
                    role,
                    permission: Permission::ManageCareTeam,
                },
            ));
        }
        self.run(
            Permission::EditDemographics,
            Op::update("patient.update").patient(patient_id),
            true,
            |tx, op, ctx| {
                let current = ctx.patient()?;
                let mut form = current.demographics.to_form();
                let mut changed = changes.apply(&mut form);
                let demographics = form.validate(today_of(ctx.now))?;
                let restricted = changes.restricted.unwrap_or(current.restricted);
                if restricted != current.restricted {
                    changed.push("restricted");
                }
                if restricted && !current.restricted {
                    // Whoever restricts a chart joins its care team, so it never ends up
                    // closed to everyone, the person who closed it included.
                    if let Some(uid) = ctx.actor.id {
                        tx.execute(
                            "INSERT OR IGNORE INTO care_team (patient_id, user_id, added_at, added_by) VALUES (?1, ?2, ?3, ?4)",
                            params![patient_id, uid, format_time(ctx.now), ctx.actor.name],
                        )?;
                    }
                }
                patients::update(
                    tx,
                    current,
                    &demographics,
                    restricted,
                    &format_time(ctx.now),
                    &ctx.actor.name,
                )?;
                op.detail = Some(if changed.is_empty() {
                    "no change".into()
                } else {
                    format!("changed {}", changed.join(", "))
                });
                patients::get(tx, patient_id).map(|p| hide_clinical(p, clinical))
            },
        )
    }

    /// Every version of a patient's demographics, oldest first.
    pub fn patient_history(&mut self, patient_id: i64) -> Result<Vec<PatientVersion>, CoreError> {
        self.run(
            Permission::ReadDemographics,
            Op::read("patient.history").patient(patient_id),
            true,
            |tx, op, _| {
                let versions = patients::history(tx, patient_id)?;
                op.detail = Some(format!("{} versions", versions.len()));
                Ok(versions)
            },
        )
    }

    /// Finds patients by name (prefix, substring, one typo, accents ignored), birth date,
    /// MRN or phone. The trail records that a search ran and how many it found, never what
    /// was searched for.
    pub fn search_patients(&mut self, query: &str) -> Result<Vec<SearchHit>, CoreError> {
        let today = self.today();
        let mut dictionary = self.search_dictionary.take();
        let result = self.run(
            Permission::SearchPatients,
            Op::execute("patient.search"),
            false,
            |tx, op, ctx| {
                let mut hits = search::search(tx, &mut dictionary, query, today, 50)?;
                // Restricted patients the searcher may not open are shown only as restricted.
                for hit in hits.iter_mut().filter(|h| h.restricted) {
                    let allowed = match ctx.actor.id {
                        Some(uid) => {
                            patients::on_care_team(tx, hit.id, uid)?
                                || patients::active_grant(tx, hit.id, uid, ctx.now)?.is_some()
                        }
                        None => false,
                    };
                    if !allowed {
                        hit.mask();
                    }
                }
                op.detail = Some(format!("{} results", hits.len()));
                Ok(hits)
            },
        );
        self.search_dictionary = dictionary;
        result
    }

    /// Opens a chart: demographics, and each clinical section the role may read.
    pub fn open_chart(&mut self, patient_id: i64) -> Result<Chart, CoreError> {
        let clinical = self.can(Permission::ReadClinical);
        let notes = self.can(Permission::ReadNotes);
        self.run(
            Permission::ReadDemographics,
            Op::read("chart.read").patient(patient_id),
            true,
            |tx, op, ctx| {
                let patient = ctx.patient()?.clone();
                let access =
                    chart_access(tx, &patient, ctx.actor, ctx.now)?.unwrap_or(ChartAccess::Open);
                op.detail = Some(
                    match (clinical, notes) {
                        (true, true) => "demographics, clinical, notes",
                        (true, false) => "demographics, clinical",
                        (false, true) => "demographics, notes",
                        (false, false) => "demographics",
                    }
                    .into(),
                );
                load_chart(tx, patient, access, clinical, notes, today_of(ctx.now))
            },
        )
    }

    // ----- encounters and notes --------------------------------------------------------

    /// Opens an encounter with the signed-in user as the clinician.
    pub fn add_encounter(
        &mut self,
        patient_id: i64,
        encounter: &NewEncounter,
    ) -> Result<Encounter, CoreError> {
        let user_id = self.actor_user_id();
        self.run(
            Permission::RecordEncounter,
            Op::create("encounter.create").patient(patient_id),
            true,
            |tx, op, ctx| {
                let e = record::insert_encounter(
                    tx,
                    patient_id,
                    encounter,
                    user_id,
                    &ctx.actor.name,
                    &format_time(ctx.now),
                )?;
                op.object = Some(("Encounter", e.id.to_string()));
                op.detail = Some(e.kind.as_str().to_owned());
                Ok(e)
            },
        )
    }

    /// A patient's encounters, newest first.
    pub fn encounters(&mut self, patient_id: i64) -> Result<Vec<Encounter>, CoreError> {
        self.run(
            Permission::ReadClinical,
            Op::read("encounter.read").patient(patient_id),
            true,
            |tx, _, _| record::encounters(tx, patient_id),
        )
    }

    /// Writes a draft note, attached to one of the patient's encounters if given.
    pub fn draft_note(
        &mut self,
        patient_id: i64,
        encounter_id: Option<i64>,
        content: &NoteContent,
    ) -> Result<Note, CoreError> {
        let author_id = self.actor_user_id();
        self.run(
            Permission::DraftNote,
            Op::create("note.create").patient(patient_id),
            true,
            |tx, op, ctx| {
                if let Some(eid) = encounter_id {
                    check_belongs(tx, Item::Encounter, eid, patient_id)?;
                }
                let n = record::insert_note(
                    tx,
                    patient_id,
                    encounter_id,
                    NoteKind::Note,
                    None,
                    author_id,
                    &ctx.actor.name,
                    content,
                    &format_time(ctx.now),
                )?;
                op.object = Some(("Note", n.id.to_string()));
                Ok(n)
            },
        )
    }

    /// Replaces a draft's content. A signed note is never edited: add an addendum.
    pub fn edit_draft(&mut self, note_id: i64, content: &NoteContent) -> Result<Note, CoreError> {
        let patient_id = self.owner(Item::Note, note_id)?;
        self.run(
            Permission::DraftNote,
            Op::update("note.update")
                .patient(patient_id)
                .object("Note", note_id),
            true,
            |tx, _, ctx| {
                let n = record::note(tx, note_id)?;
                if n.status != "draft" {
                    return Err(signed_is_final(note_id));
                }
                record::update_draft(tx, note_id, content, &format_time(ctx.now))
            },
        )
    }

    /// Signs a draft (a note, addendum or amendment), which makes it final. Physicians only.
    pub fn sign_note(&mut self, note_id: i64) -> Result<Note, CoreError> {
        let patient_id = self.owner(Item::Note, note_id)?;
        self.run(
            Permission::SignNote,
            Op::update("note.sign")
                .patient(patient_id)
                .object("Note", note_id),
            true,
            |tx, op, ctx| {
                let n = record::note(tx, note_id)?;
                if n.status == "signed" {
                    return Err(signed_is_final(note_id));
                }
                if n.kind != NoteKind::Note {
                    op.detail = Some(format!(
                        "{} to note {}",
                        n.kind.as_str(),
                        n.parent_id.unwrap_or(0)
                    ));
                }
                record::sign(tx, &n, &ctx.actor.name, &format_time(ctx.now))
            },
        )
    }

    /// Adds an addendum (more information) or an amendment (a correction) to a signed note,
    /// as a draft that points to it and is signed in its own right.
    pub fn add_addendum(
        &mut self,
        note_id: i64,
        content: &NoteContent,
        amendment: bool,
    ) -> Result<Note, CoreError> {
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
                let parent = record::note(tx, note_id)?;
                if parent.status != "signed" {
                    return Err(CoreError::Conflict(format!(
                        "Note {note_id} is still a draft: edit it instead of adding an addendum."
                    )));
                }
                let n = record::insert_note(
                    tx,
                    patient_id,
                    parent.encounter_id,
                    kind,
                    Some(note_id),
                    author_id,
                    &ctx.actor.name,
                    content,
                    &format_time(ctx.now),
                )?;
                op.object = Some(("Note", n.id.to_string()));
                op.detail = Some(format!("{} to note {note_id}", kind.as_str()));
                Ok(n)
            },
        )
    }

    /// A patient's notes, newest first.
    pub fn notes(&mut self, patient_id: i64) -> Result<Vec<Note>, CoreError> {
        self.run(
            Permission::ReadNotes,
            Op::read("note.read").patient(patient_id),
            true,
            |tx, op, _| {
                let notes = record::notes(tx, patient_id)?;
                op.detail = Some(format!("{} notes", notes.len()));
                Ok(notes)
            },
        )
    }

    // ----- vital signs -----------------------------------------------------------------

    /// Records a set of vitals taken together (one audited transaction). BMI is derived when
    /// a weight is recorded and a height is known (now or from before).
    pub fn record_vitals(
        &mut self,
        patient_id: i64,
        input: &VitalsInput,
        effective: Option<DateTime<Utc>>,
        encounter_id: Option<i64>,
    ) -> Result<Vec<Observation>, CoreError> {
        let values = input.validate()?;
        if let Some(t) = effective {
            if t > self.clock.now() + chrono::Duration::hours(1) {
                return Err(CoreError::InvalidInput(
                    "The time of the vitals is in the future.".into(),
                ));
            }
        }
        self.run(
            Permission::RecordVitals,
            Op::create("vitals.create").patient(patient_id),
            true,
            |tx, op, ctx| {
                if let Some(eid) = encounter_id {
                    check_belongs(tx, Item::Encounter, eid, patient_id)?;
                }
                let now = format_time(ctx.now);
                let at = format_time(effective.unwrap_or(ctx.now));
                let mut ids = Vec::new();
                for (vital, value) in &values {
                    ids.push(record::insert_observation(
                        tx,
                        patient_id,
                        encounter_id,
                        *vital,
                        *value,
                        &at,
                        &ctx.actor.name,
                        &now,
                    )?);
                }
                let weight = values
                    .iter()
                    .find(|(v, _)| *v == Vital::Weight)
                    .map(|(_, w)| *w);
                let height = match values.iter().find(|(v, _)| *v == Vital::Height) {
                    Some((_, h)) => Some(*h),
                    None => record::latest_value(tx, patient_id, Vital::Height)?,
                };
                if let (Some(w), Some(h)) = (weight, height) {
                    let b = bmi(w, h);
                    if let Ok(b) = Vital::Bmi.validate(b) {
                        ids.push(record::insert_observation(
                            tx,
                            patient_id,
                            encounter_id,
                            Vital::Bmi,
                            b,
                            &at,
                            &ctx.actor.name,
                            &now,
                        )?);
                    }
                }
                let observations = record::observations_by_id(tx, &ids)?;
                let abnormal = observations.iter().filter(|o| o.flag.is_abnormal()).count();
                op.object = Some(("Observation", ids.first().copied().unwrap_or(0).to_string()));
                op.detail = Some(format!(
                    "{} observations, {abnormal} flagged",
                    observations.len()
                ));
                Ok(observations)
            },
        )
    }

    /// A patient's vital-sign observations, newest first.
    pub fn vitals(&mut self, patient_id: i64) -> Result<Vec<Observation>, CoreError> {
        self.run(
            Permission::ReadClinical,
            Op::read("vitals.read").patient(patient_id),
            true,
            |tx, _, _| record::observations(tx, patient_id),
        )
    }

    // ----- problems, allergies, medications, immunizations ----------------------------

    pub fn add_problem(
        &mut self,
        patient_id: i64,
        problem: &NewProblem,
    ) -> Result<Problem, CoreError> {
        self.run(
            Permission::WriteClinical,
            Op::create("problem.create").patient(patient_id),
            true,
            |tx, op, ctx| {
                let p = record::insert_problem(
                    tx,
                    patient_id,
                    problem,
                    &ctx.actor.name,
                    &format_time(ctx.now),
                )?;
                op.object = Some(("Condition", p.id.to_string()));
                Ok(p)
            },
        )
    }

    pub fn problems(&mut self, patient_id: i64) -> Result<Vec<Problem>, CoreError> {
        self.run(
            Permission::ReadClinical,
            Op::read("problem.read").patient(patient_id),
            true,
            |tx, _, _| record::problems(tx, patient_id),
        )
    }

    /// Marks a problem resolved (on `date`, default today).
    pub fn resolve_problem(
        &mut self,
        problem_id: i64,
        date: Option<NaiveDate>,
    ) -> Result<Problem, CoreError> {
        self.resolve(Item::Problem, Permission::WriteClinical, problem_id, |tx, by, now| {
            let p = record::problem(tx, problem_id)?;
            if p.status == "resolved" {
                return Err(CoreError::Conflict(format!("Problem {problem_id} is already resolved.")));
            }
            let on = date.unwrap_or_else(|| today_of(now)).format("%Y-%m-%d").to_string();
            tx.execute(
                "UPDATE problems SET status = 'resolved', resolved_on = ?1, updated_by = ?2, updated_at = ?3 WHERE id = ?4",
                params![on, by, format_time(now), problem_id],
            )?;
            record::problem(tx, problem_id)
        })
    }

    pub fn add_allergy(
        &mut self,
        patient_id: i64,
        allergy: &NewAllergy,
    ) -> Result<Allergy, CoreError> {
        self.run(
            Permission::RecordAllergies,
            Op::create("allergy.create").patient(patient_id),
            true,
            |tx, op, ctx| {
                let wanted = patients::fold(&allergy.substance);
                if record::allergies(tx, patient_id)?
                    .iter()
                    .any(|a| a.status == "active" && patients::fold(&a.substance) == wanted)
                {
                    return Err(CoreError::Conflict(format!(
                        "An active allergy to {} is already recorded.",
                        allergy.substance
                    )));
                }
                let a = record::insert_allergy(
                    tx,
                    patient_id,
                    allergy,
                    &ctx.actor.name,
                    &format_time(ctx.now),
                )?;
                op.object = Some(("AllergyIntolerance", a.id.to_string()));
                Ok(a)
            },
        )
    }

    /// Records that the patient has no known allergies: a statement, not an empty list.
    pub fn record_no_known_allergies(&mut self, patient_id: i64) -> Result<Patient, CoreError> {
        self.run(
            Permission::RecordAllergies,
            Op::update("allergy.none").patient(patient_id),
            true,
            |tx, _, ctx| {
                let active: i64 = tx.query_row(
                    "SELECT count(*) FROM allergies WHERE patient_id = ?1 AND status = 'active'",
                    [patient_id],
                    |r| r.get(0),
                )?;
                if active > 0 {
                    return Err(CoreError::Conflict(format!(
                        "The patient has {active} active allerg{}; resolve them before recording \"no known allergies\".",
                        if active == 1 { "y" } else { "ies" }
                    )));
                }
                tx.execute(
                    "UPDATE patients SET allergy_state = 'no_known_allergies', allergy_state_at = ?2, allergy_state_by = ?3 WHERE id = ?1",
                    params![patient_id, format_time(ctx.now), ctx.actor.name],
                )?;
                patients::get(tx, patient_id)
            },
        )
    }

    /// The allergy status (`unknown`, `no_known_allergies`, `recorded`) and the list.
    pub fn allergies(&mut self, patient_id: i64) -> Result<AllergyList, CoreError> {
        self.run(
            Permission::ReadClinical,
            Op::read("allergy.read").patient(patient_id),
            true,
            |tx, _, ctx| {
                let status = ctx
                    .patient()?
                    .allergy_status
                    .clone()
                    .unwrap_or_else(|| "unknown".into());
                Ok(AllergyList {
                    allergy_status: status,
                    allergies: record::allergies(tx, patient_id)?,
                })
            },
        )
    }

    /// Marks an allergy resolved (no longer applies).
    pub fn resolve_allergy(&mut self, allergy_id: i64) -> Result<Allergy, CoreError> {
        self.resolve(Item::Allergy, Permission::RecordAllergies, allergy_id, |tx, by, now| {
            let a = record::allergy(tx, allergy_id)?;
            if a.status == "resolved" {
                return Err(CoreError::Conflict(format!("Allergy {allergy_id} is already resolved.")));
            }
            tx.execute(
                "UPDATE allergies SET status = 'resolved', updated_by = ?1, updated_at = ?2 WHERE id = ?3",
                params![by, format_time(now), allergy_id],
            )?;
            record::allergy(tx, allergy_id)
        })
    }

    pub fn add_medication(
        &mut self,
        patient_id: i64,
        medication: &NewMedication,
    ) -> Result<Medication, CoreError> {
        self.run(
            Permission::WriteClinical,
            Op::create("medication.create").patient(patient_id),
            true,
            |tx, op, ctx| {
                let m = record::insert_medication(
                    tx,
                    patient_id,
                    medication,
                    &ctx.actor.name,
                    &format_time(ctx.now),
                )?;
                op.object = Some(("MedicationStatement", m.id.to_string()));
                Ok(m)
            },
        )
    }

    pub fn medications(&mut self, patient_id: i64) -> Result<Vec<Medication>, CoreError> {
        self.run(
            Permission::ReadClinical,
            Op::read("medication.read").patient(patient_id),
            true,
            |tx, _, _| record::medications(tx, patient_id),
        )
    }

    /// Stops a medication (on `date`, default today).
    pub fn stop_medication(
        &mut self,
        medication_id: i64,
        date: Option<NaiveDate>,
    ) -> Result<Medication, CoreError> {
        self.resolve(Item::Medication, Permission::WriteClinical, medication_id, |tx, by, now| {
            let m = record::medication(tx, medication_id)?;
            if m.status != "active" {
                return Err(CoreError::Conflict(format!("Medication {medication_id} is already stopped.")));
            }
            let on = date.unwrap_or_else(|| today_of(now));
            if let Some(start) = m.start.as_deref().and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()) {
                if on < start {
                    return Err(CoreError::InvalidInput("A medication cannot stop before it started.".into()));
                }
            }
            tx.execute(
                "UPDATE medications SET status = 'stopped', stop = ?1, updated_by = ?2, updated_at = ?3 WHERE id = ?4",
                params![on.format("%Y-%m-%d").to_string(), by, format_time(now), medication_id],
            )?;
            record::medication(tx, medication_id)
        })
    }

    pub fn add_immunization(
        &mut self,
        patient_id: i64,
        immunization: &NewImmunization,
    ) -> Result<Immunization, CoreError> {
        self.run(
            Permission::RecordAllergies,
            Op::create("immunization.create").patient(patient_id),
            true,
            |tx, op, ctx| {
                let i = record::insert_immunization(
                    tx,
                    patient_id,
                    immunization,
                    &ctx.actor.name,
                    &format_time(ctx.now),
                )?;
                op.object = Some(("Immunization", i.id.to_string()));
                Ok(i)
            },
        )
    }

    pub fn immunizations(&mut self, patient_id: i64) -> Result<Vec<Immunization>, CoreError> {
        self.run(
            Permission::ReadClinical,
            Op::read("immunization.read").patient(patient_id),
            true,
            |tx, _, _| record::immunizations(tx, patient_id),
        )
    }

    /// Marks an immunization entered in error (it stays in the record, struck out).
    pub fn resolve_immunization(
        &mut self,
        immunization_id: i64,
    ) -> Result<Immunization, CoreError> {
        self.resolve(Item::Immunization, Permission::RecordAllergies, immunization_id, |tx, by, now| {
            let i = record::immunization(tx, immunization_id)?;
            if i.status != "completed" {
                return Err(CoreError::Conflict(format!(
                    "Immunization {immunization_id} is already marked entered in error."
                )));
            }
            tx.execute(
                "UPDATE immunizations SET status = 'entered_in_error', updated_by = ?1, updated_at = ?2 WHERE id = ?3",
                params![by, format_time(now), immunization_id],
            )?;
            record::immunization(tx, immunization_id)
        })
    }

    /// The shared shape of "resolve this list item": find its patient, gate, change, audit.
    fn resolve<T>(
        &mut self,
        item: Item,
        permission: Permission,
        id: i64,
        change: impl FnOnce(&Connection, &str, DateTime<Utc>) -> Result<T, CoreError>,
    ) -> Result<T, CoreError> {
        let patient_id = self.owner(item, id)?;
        let event = match item {
            Item::Problem => "problem.resolve",
            Item::Allergy => "allergy.resolve",
            Item::Medication => "medication.stop",
            Item::Immunization => "immunization.entered_in_error",
            Item::Note | Item::Encounter => "record.update",
        };
        self.run(
            permission,
            Op::update(event)
                .patient(patient_id)
                .object(item.resource(), id),
            true,
            |tx, _, ctx| change(tx, &ctx.actor.name, ctx.now),
        )
    }
}

/// Reads a chart's sections (those the caller may see) on an open connection.
fn load_chart(
    conn: &Connection,
    patient: Patient,
    access: ChartAccess,
    clinical: bool,
    notes: bool,
    today: NaiveDate,
) -> Result<Chart, CoreError> {
    let id = patient.id;
    let mut patient = patient;
    if !clinical {
        patient.allergy_status = None;
    }
    let some = |on: bool| on.then_some(());
    Ok(Chart {
        age: patient.age_on(today),
        care_team: patients::care_team(conn, id)?,
        access,
        allergies: some(clinical)
            .map(|()| record::allergies(conn, id))
            .transpose()?,
        problems: some(clinical)
            .map(|()| record::problems(conn, id))
            .transpose()?,
        medications: some(clinical)
            .map(|()| record::medications(conn, id))
            .transpose()?,
        immunizations: some(clinical)
            .map(|()| record::immunizations(conn, id))
            .transpose()?,
        encounters: some(clinical)
            .map(|()| record::encounters(conn, id))
            .transpose()?,
        vitals: some(clinical)
            .map(|()| record::observations(conn, id))
            .transpose()?,
        notes: some(notes).map(|()| record::notes(conn, id)).transpose()?,
        patient,
    })
}

/// Every section of a chart, for an export (whose own permission covers the whole record).
pub(crate) fn load_full_chart(
    conn: &Connection,
    patient: Patient,
    today: NaiveDate,
) -> Result<Chart, CoreError> {
    load_chart(conn, patient, ChartAccess::Open, true, true, today)
}

/// The whole chart read of [`Session::open_chart`], on a raw connection and without the
/// gate or the audit entry: for the benchmark that prices the audit write. Only someone who
/// already holds the database key can open such a connection.
#[doc(hidden)]
pub fn read_chart_for_benchmarks(conn: &Connection, patient_id: i64) -> Result<Chart, CoreError> {
    let patient = patients::get(conn, patient_id)?;
    load_chart(
        conn,
        patient,
        ChartAccess::Open,
        true,
        true,
        Utc::now().date_naive(),
    )
}

/// Leaves out what only clinical roles may see.
fn hide_clinical(mut p: Patient, clinical: bool) -> Patient {
    if !clinical {
        p.allergy_status = None;
    }
    p
}

fn signed_is_final(note_id: i64) -> CoreError {
    CoreError::Conflict(format!(
        "Note {note_id} is signed and can no longer change; add an addendum or an amendment instead."
    ))
}

fn check_belongs(conn: &Connection, item: Item, id: i64, patient_id: i64) -> Result<(), CoreError> {
    let owner: Option<i64> = conn
        .prepare_cached(item.sql())?
        .query_row([id], |r| r.get(0))
        .optional()?;
    match owner {
        Some(p) if p == patient_id => Ok(()),
        Some(_) => Err(CoreError::InvalidInput(format!(
            "{} {id} belongs to another patient.",
            capitalise(item.name())
        ))),
        None => Err(CoreError::NotFound(format!(
            "There is no {} {id}.",
            item.name()
        ))),
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}
