//! Synthetic clinics: a deterministic generator of realistic, obviously fictional records for
//! demos, tests and benchmarks.
//!
//! The same seed and reference date always give the same clinic. Names are drawn from many
//! origins and combined at random; phone numbers use the 555-01xx range reserved for fiction,
//! email addresses use example.org (RFC 2606), addresses are on Example and Sample streets,
//! and every note says it is synthetic. Nothing here is a real person's record.

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use rusqlite::Connection;
use serde::Serialize;

use crate::audit::Op;
use crate::chart::allergy::{AllergyRecorded, NewAllergy, NoKnownAllergiesRecorded};
use crate::chart::change::{apply, Change, RecordId, Stamp};
use crate::chart::encounter::{EncounterKind, EncounterOpened};
use crate::chart::immunization::{ImmunizationRecorded, NewImmunization};
use crate::chart::medication::{MedicationStarted, MedicationStopped, NewMedication};
use crate::chart::note::{AddendumAdded, NoteContent, NoteDrafted, NoteSigned};
use crate::chart::patient::{
    self, Demographics, EmergencyContact, NewPatient, PatientRegistered, Sex,
};
use crate::chart::problem::{NewProblem, ProblemAdded, ProblemOutcome, ProblemResolved};
use crate::chart::vitals::{bmi, Vital, VitalsRecorded};
use crate::roles::Permission;
use crate::{CoreError, Session};

mod names;
pub mod rng;

use names::*;
pub use rng::Rng;

/// Patients written per transaction (and per audit entry).
const BATCH: u32 = 250;

/// What a generated clinic holds.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct DemoSummary {
    pub patients: u64,
    pub encounters: u64,
    pub notes: u64,
    pub addenda: u64,
    pub observations: u64,
    pub problems: u64,
    pub allergies: u64,
    pub medications: u64,
    pub immunizations: u64,
    pub lab_reports: u64,
    pub lab_results: u64,
    /// Ids of the patients with a long history (200 encounters), for benchmarks.
    pub long_charts: Vec<i64>,
}

/// How to generate.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub patients: u32,
    pub seed: u64,
    /// The "today" of the clinic: visits happen before it.
    pub as_of: NaiveDate,
    /// One patient in this many gets a long history (200 encounters, about 2,000
    /// observations); 0 for none.
    pub long_chart_every: u32,
}

/// One patient's vital-sign baseline, so values trend instead of jumping.
struct Baseline {
    systolic: f64,
    diastolic: f64,
    heart_rate: f64,
    weight: f64,
    height: f64,
}

/// Hands the generator's changes to their writers, on one batch's transaction.
struct Writer<'c> {
    conn: &'c Connection,
}

impl Writer<'_> {
    /// Applies a change; returns the (first) row it wrote.
    fn apply(&mut self, change: Change) -> Result<i64, CoreError> {
        Ok(apply(self.conn, &change)?.row())
    }
}

fn at_hour(date: NaiveDate, rng: &mut Rng) -> DateTime<Utc> {
    let minutes = 8 * 60 + rng.below(9 * 60) as u32;
    Utc.from_utc_datetime(
        &date
            .and_hms_opt(minutes / 60, minutes % 60, 0)
            .unwrap_or_default(),
    )
}

fn ymd(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

struct Generator<'a> {
    rng: Rng,
    /// Its own stream for the records' global ids, so adding them left the clinic the same.
    ids: Rng,
    /// The time the ids are made at (see [`Generator::id`]) and how many have been.
    id_base: DateTime<Utc>,
    ids_made: u64,
    /// Its own stream for the lab results, so adding them left the rest of the clinic the
    /// same.
    labs: Rng,
    /// Its own stream for the USCDI demographics, for the same reason.
    uscdi: Rng,
    as_of: NaiveDate,
    summary: &'a mut DemoSummary,
}

impl Generator<'_> {
    /// A reproducible global id. Its time is the clinic's "today" plus a millisecond per id
    /// made, not the (historical) time of the record: ids are made now, and made in order
    /// they keep the global-id indexes appending rather than splitting pages at random.
    fn id(&mut self) -> RecordId {
        let (a, b) = (
            self.ids.next_u64().to_le_bytes(),
            self.ids.next_u64().to_le_bytes(),
        );
        let mut random = [0u8; 10];
        random[..8].copy_from_slice(&a);
        random[8..].copy_from_slice(&b[..2]);
        self.ids_made += 1;
        let at = self.id_base + Duration::milliseconds(self.ids_made as i64);
        RecordId::from_parts(at, random)
    }

    #[allow(clippy::too_many_lines)]
    fn patient(&mut self, w: &mut Writer<'_>, n: u64, long_chart: bool) -> Result<(), CoreError> {
        let rng = &mut self.rng;
        let sex = match rng.below(100) {
            0 => Sex::Other,
            1 => Sex::Unknown,
            x if x < 51 => Sex::Female,
            _ => Sex::Male,
        };
        let given = match sex {
            Sex::Female => *rng.pick(GIVEN_FEMALE),
            Sex::Male => *rng.pick(GIVEN_MALE),
            _ => {
                if rng.chance(0.5) {
                    *rng.pick(GIVEN_FEMALE)
                } else {
                    *rng.pick(GIVEN_MALE)
                }
            }
        };
        let family = *rng.pick(FAMILY);
        // Ages: children, adults, a long tail of older patients.
        let age = if long_chart {
            55 + rng.below(30) as u32
        } else {
            match rng.below(100) {
                0..=17 => rng.below(18) as u32,
                18..=74 => 18 + rng.below(47) as u32,
                _ => 65 + rng.below(31) as u32,
            }
        };
        let birth = self
            .as_of
            .checked_sub_signed(Duration::days(i64::from(age) * 365 + rng.below(365) as i64))
            .unwrap_or(self.as_of);
        let ascii = |s: &str| patient::fold(s).replace(' ', "");
        let phone = format!("+1 ({}) 555-01{:02}", rng.pick(AREA_CODES), rng.below(100));
        let demographics = Demographics {
            family: family.to_owned(),
            given: given.to_owned(),
            preferred: None,
            birth_date: birth,
            sex,
            gender_identity: None,
            phone: Some(phone.clone()),
            email: rng
                .chance(0.7)
                .then(|| format!("{}.{}{}@example.org", ascii(given), ascii(family), n)),
            address: Some(format!(
                "{} {} {}, {}",
                1 + rng.below(240),
                rng.pick(STREETS),
                rng.pick(STREET_KINDS),
                rng.pick(TOWNS)
            )),
            emergency_contact: rng.chance(0.6).then(|| EmergencyContact {
                name: format!("{} {}", rng.pick(GIVEN_FEMALE), family),
                phone: format!("+1 ({}) 555-01{:02}", rng.pick(AREA_CODES), rng.below(100)),
                relationship: Some(
                    (if age < 18 {
                        "parent"
                    } else {
                        *rng.pick(&["spouse", "parent", "sibling", "child", "friend"])
                    })
                    .to_owned(),
                ),
            }),
            race: vec![],
            ethnicity: vec![],
            language: None,
            birth_sex: None,
            sexual_orientation: None,
        };
        let demographics = uscdi_demographics(&mut self.uscdi, demographics, self.as_of);
        let restricted = rng.chance(0.01);
        let registered = at_hour(
            (self.as_of
                - Duration::days(if long_chart {
                    3650
                } else {
                    30 + rng.below(3000) as i64
                }))
            .max(birth + Duration::days(1))
            .min(self.as_of),
            rng,
        );
        let registrar = "Front desk (demo)";
        let stamp = Stamp::new(registered, registrar);
        // Allergy status: never asked, none known, or some recorded.
        let allergy_roll = rng.below(100);
        let allergy_state = match allergy_roll {
            0..=19 => "unknown",
            20..=69 => "no_known_allergies",
            _ => "recorded",
        };
        let patient = self.id();
        let id = w.apply(Change::PatientRegistered(PatientRegistered {
            patient,
            mrn: patient::mrn_for(n as i64),
            new: NewPatient {
                demographics,
                restricted,
            },
            registered: stamp.clone(),
        }))?;
        if allergy_state == "no_known_allergies" {
            w.apply(Change::NoKnownAllergiesRecorded(NoKnownAllergiesRecorded {
                patient,
                recorded: stamp.clone(),
            }))?;
        }
        self.summary.patients += 1;
        if long_chart {
            self.summary.long_charts.push(id);
        }

        if allergy_state == "recorded" {
            let count = 1 + self.rng.below(2);
            let mut used = Vec::new();
            for _ in 0..count {
                let a = *self.rng.pick(ALLERGENS);
                if used.contains(&a.0) {
                    continue;
                }
                used.push(a.0);
                let allergy = self.id();
                w.apply(Change::AllergyRecorded(AllergyRecorded {
                    allergy,
                    patient,
                    item: NewAllergy::new(a.0, Some(a.1), Some(a.2), Some(a.3))?,
                    recorded: stamp.clone(),
                    allergy_override: None,
                }))?;
                self.summary.allergies += 1;
            }
        }

        // Chronic conditions, each with its medication.
        let mut chronic = Vec::new();
        for c in CONDITIONS {
            let p = if long_chart {
                c.prevalence * 2.5
            } else {
                c.prevalence
            };
            if age >= c.min_age && self.rng.chance(p) {
                chronic.push(c);
            }
        }
        let clinician = *self.rng.pick(CLINICIANS);
        for c in &chronic {
            let onset_years = 1 + self.rng.below(u64::from((age - c.min_age).clamp(1, 15)));
            let onset = (self.as_of
                - Duration::days(onset_years as i64 * 365 + self.rng.below(300) as i64))
            .max(birth);
            let onset_at = Stamp::new(at_hour(onset, &mut self.rng), clinician);
            let problem = self.id();
            w.apply(Change::ProblemAdded(ProblemAdded {
                problem,
                patient,
                item: NewProblem::new(
                    c.text,
                    Some("icd10"),
                    Some(c.icd10),
                    Some(&ymd(onset)),
                    onset,
                )?,
                recorded: onset_at.clone(),
            }))?;
            let (name, dose, route, frequency) = c.medication;
            let medication = self.id();
            w.apply(Change::MedicationStarted(MedicationStarted {
                medication,
                patient,
                item: NewMedication::new(
                    name,
                    Some(dose),
                    Some(route),
                    Some(frequency),
                    Some(&ymd(onset)),
                    onset,
                )?,
                recorded: onset_at,
                allergy_override: None,
            }))?;
            self.summary.problems += 1;
            self.summary.medications += 1;
        }
        // A resolved acute problem and a finished course now and then.
        if self.rng.chance(0.15) {
            let onset = self.as_of - Duration::days(60 + self.rng.below(1500) as i64);
            let at = Stamp::new(at_hour(onset, &mut self.rng), clinician);
            let problem = self.id();
            w.apply(Change::ProblemAdded(ProblemAdded {
                problem,
                patient,
                item: NewProblem::new(
                    "Community-acquired pneumonia",
                    Some("icd10"),
                    Some("J18.9"),
                    Some(&ymd(onset)),
                    onset,
                )?,
                recorded: at.clone(),
            }))?;
            w.apply(Change::ProblemResolved(ProblemResolved {
                problem,
                outcome: ProblemOutcome::Resolved,
                on: Some(onset + Duration::days(21)),
                resolved: at.clone(),
            }))?;
            let medication = self.id();
            w.apply(Change::MedicationStarted(MedicationStarted {
                medication,
                patient,
                item: NewMedication::new(
                    "Amoxicillin",
                    Some("500 mg"),
                    Some("oral"),
                    Some("three times daily"),
                    Some(&ymd(onset)),
                    onset,
                )?,
                recorded: at.clone(),
                allergy_override: None,
            }))?;
            w.apply(Change::MedicationStopped(MedicationStopped {
                medication,
                on: Some(onset + Duration::days(7)),
                stopped: at,
            }))?;
            self.summary.problems += 1;
            self.summary.medications += 1;
        }

        self.immunizations(w, patient, age, birth)?;

        // Encounters over the years, with vitals and a signed note each.
        let hypertensive = chronic.iter().any(|c| c.icd10 == "I10");
        let height = match sex {
            Sex::Female => 162.0,
            _ => 176.0,
        } + self.rng.gauss() * 7.0;
        let adult_height = if age < 18 {
            height * (0.45 + 0.03 * f64::from(age))
        } else {
            height
        };
        let mut base = Baseline {
            systolic: if hypertensive { 150.0 } else { 118.0 } + self.rng.gauss() * 8.0,
            diastolic: if hypertensive { 92.0 } else { 76.0 } + self.rng.gauss() * 5.0,
            heart_rate: 72.0 + self.rng.gauss() * 8.0,
            weight: (adult_height / 100.0).powi(2) * (23.5 + self.rng.gauss() * 4.0),
            height: adult_height,
        };
        let visits = if long_chart {
            200
        } else {
            let expected = 1.0 + chronic.len() as f64 * 1.5 + f64::from(age) / 25.0;
            (expected * (0.5 + self.rng.unit())).round() as u64
        };
        let span_days = (self.as_of - registered.date_naive()).num_days().max(1) as u64;
        let mut days: Vec<u64> = (0..visits).map(|_| self.rng.below(span_days)).collect();
        days.sort_unstable();
        for (i, day) in days.into_iter().enumerate() {
            let date = registered.date_naive() + Duration::days(day as i64);
            let when = at_hour(date, &mut self.rng);
            let follow_up = !chronic.is_empty() && self.rng.chance(0.6);
            let (reason, subjective, assessment, plan) = if follow_up {
                let c = *self.rng.pick(&chronic);
                (
                    format!("Review of {}", c.text.to_lowercase()),
                    "Attends for review. Taking medication as prescribed.".to_owned(),
                    format!("{}: stable.", c.text),
                    format!("Continue {}. Review in three months.", c.medication.0),
                )
            } else {
                let (r, s, a) = *self.rng.pick(ACUTE_REASONS);
                (
                    r.to_owned(),
                    s.to_owned(),
                    a.to_owned(),
                    "Advice given; return if not improving.".to_owned(),
                )
            };
            let kind = match self.rng.below(20) {
                0..=13 => "office",
                14..=16 => "telephone",
                17..=18 => "telehealth",
                _ => "home",
            };
            let encounter = self.id();
            w.apply(Change::EncounterOpened(EncounterOpened {
                encounter,
                patient,
                kind: EncounterKind::parse(kind)?,
                start: when,
                reason,
                clinician_id: None,
                clinician: clinician.to_owned(),
                opened: Stamp::new(when, clinician),
            }))?;
            self.summary.encounters += 1;

            let mut objective = "Not examined (remote consultation).".to_owned();
            if matches!(kind, "office" | "home") {
                // Blood pressure improves once treated; weight drifts.
                if hypertensive {
                    base.systolic += (128.0 - base.systolic) * 0.05;
                    base.diastolic += (82.0 - base.diastolic) * 0.05;
                }
                base.weight = (base.weight + self.rng.gauss() * 0.6).clamp(3.0, 250.0);
                let sys = (base.systolic + self.rng.gauss() * 7.0)
                    .round()
                    .clamp(80.0, 230.0);
                let dia = (base.diastolic + self.rng.gauss() * 5.0)
                    .round()
                    .clamp(45.0, 130.0)
                    .min(sys - 15.0);
                let hr = (base.heart_rate + self.rng.gauss() * 6.0)
                    .round()
                    .clamp(45.0, 150.0);
                let temp = ((36.7 + self.rng.gauss() * 0.3) * 10.0).round() / 10.0;
                let spo2 = (97.5 + self.rng.gauss() * 1.2).round().clamp(88.0, 100.0);
                let weight = (base.weight * 10.0).round() / 10.0;
                let mut values = Vec::new();
                if age >= 12 {
                    // Blood pressure is measured in adults and older children.
                    values.extend([(Vital::Systolic, sys), (Vital::Diastolic, dia)]);
                }
                values.extend([
                    (Vital::HeartRate, hr),
                    (Vital::Temperature, temp),
                    (Vital::Spo2, spo2),
                    (Vital::Weight, weight),
                ]);
                if i == 0 || self.rng.chance(0.1) {
                    values.push((Vital::Height, (base.height * 10.0).round() / 10.0));
                }
                if self.rng.chance(0.4) {
                    values.push((
                        Vital::RespiratoryRate,
                        (15.0 + self.rng.gauss() * 2.0).round().clamp(8.0, 30.0),
                    ));
                }
                values.push((Vital::Bmi, bmi(weight, base.height)));
                let recorder = *self.rng.pick(NURSES);
                values.retain(|(vital, value)| vital.validate(*value).is_ok());
                self.summary.observations += values.len() as u64;
                let set = self.vitals(patient, encounter, when, &values, recorder);
                w.apply(Change::VitalsRecorded(set))?;
                if long_chart {
                    // Home readings between visits fill a long chart to about 2,000 values.
                    for k in 1..=4 {
                        let t = when + Duration::days(k * 3);
                        let s = (base.systolic + self.rng.gauss() * 8.0)
                            .round()
                            .clamp(80.0, 230.0);
                        let d = (base.diastolic + self.rng.gauss() * 5.0)
                            .round()
                            .clamp(45.0, 130.0)
                            .min(s - 15.0);
                        let pair = [(Vital::Systolic, s), (Vital::Diastolic, d)];
                        let set = self.vitals(patient, encounter, t, &pair, "Home monitor (demo)");
                        w.apply(Change::VitalsRecorded(set))?;
                        self.summary.observations += 2;
                    }
                }
                objective = if age >= 12 {
                    format!("BP {sys:.0}/{dia:.0} mmHg, HR {hr:.0}/min, T {temp:.1} °C, SpO2 {spo2:.0} %, weight {weight:.1} kg.")
                } else {
                    format!(
                        "HR {hr:.0}/min, T {temp:.1} °C, SpO2 {spo2:.0} %, weight {weight:.1} kg."
                    )
                };
            }
            let subjective = format!("[Synthetic demo record] {subjective}");
            let content = NoteContent::Soap {
                subjective: Some(subjective),
                objective: Some(objective),
                assessment: Some(assessment),
                plan: Some(plan),
            };
            let signed = Stamp::new(when + Duration::minutes(20), clinician);
            let note = self.id();
            w.apply(Change::NoteDrafted(NoteDrafted {
                note,
                patient,
                encounter: Some(encounter),
                author_id: None,
                content,
                drafted: signed.clone(),
            }))?;
            w.apply(Change::NoteSigned(NoteSigned {
                note,
                signed,
                signature: None,
            }))?;
            self.summary.notes += 1;
            if self.rng.chance(0.05) {
                let text = "[Synthetic demo record] Addendum: results reviewed by telephone; no change to plan.";
                let at = Stamp::new(when + Duration::days(2), clinician);
                let addendum = self.id();
                w.apply(Change::AddendumAdded(AddendumAdded {
                    note: addendum,
                    parent: note,
                    amendment: false,
                    encounter: Some(encounter),
                    author_id: None,
                    content: NoteContent::Free {
                        text: text.to_owned(),
                    },
                    drafted: at.clone(),
                }))?;
                w.apply(Change::NoteSigned(NoteSigned {
                    note: addendum,
                    signed: at,
                    signature: None,
                }))?;
                self.summary.addenda += 1;
            }
        }
        let diabetic = chronic.iter().any(|c| c.icd10 == "E11.9");
        self.labs(w, patient, age, diabetic, registered.date_naive())?;
        Ok(())
    }

    /// An adult's lipid panels of the last years, and a diabetic's HbA1c beside them.
    fn labs(
        &mut self,
        w: &mut Writer<'_>,
        patient: RecordId,
        age: u32,
        diabetic: bool,
        since: NaiveDate,
    ) -> Result<(), CoreError> {
        use crate::chart::lab::{ReportAdded, ResultInput, ResultRecorded};
        if age < 18 {
            return Ok(());
        }
        let years = if diabetic { 3 } else { 1 + self.labs.below(2) };
        let nurse = "Nurse P. Okonjo (demo)";
        let zone = crate::ClinicZone::utc();
        for y in 0..years {
            let date =
                self.as_of - Duration::days(365 * y as i64 + 20 + self.labs.below(200) as i64);
            if date < since {
                continue;
            }
            let at = chartroom_audit::truncate_to_micros(at_hour(date, &mut self.labs));
            let by = Stamp::new(at + Duration::hours(26), nurse);
            let report = self.id();
            w.apply(Change::ReportAdded(ReportAdded {
                report,
                patient,
                encounter: None,
                loinc: "57698-3".into(),
                name: "Lipid panel with direct LDL - Serum or Plasma".into(),
                collected: at,
                recorded: by.clone(),
            }))?;
            self.summary.lab_reports += 1;
            let mut result = |g: &mut Self,
                              report: Option<RecordId>,
                              loinc: &str,
                              value: f64,
                              range: &str|
             -> Result<(), CoreError> {
                let item = ResultInput {
                    loinc: loinc.into(),
                    value: format!("{value}"),
                    range: Some(range.into()),
                    ..ResultInput::default()
                }
                .read(by.at, &zone, at)?;
                let result = g.id();
                w.apply(Change::ResultRecorded(ResultRecorded {
                    result,
                    patient,
                    report,
                    item,
                    reported: by.at,
                    reason: None,
                    recorded: by.clone(),
                }))?;
                g.summary.lab_results += 1;
                Ok(())
            };
            for (loinc, mean, sd, range) in [
                ("2093-3", 195.0, 30.0, "<200"),
                ("2571-8", 140.0, 50.0, "<150"),
                ("2085-9", 52.0, 12.0, ">40"),
                ("18262-6", 115.0, 28.0, "<130"),
            ] {
                let value = (mean + self.labs.gauss() * sd).max(20.0).round();
                result(self, Some(report), loinc, value, range)?;
            }
            if diabetic {
                let value = ((7.2 + self.labs.gauss() * 0.8).max(5.0) * 10.0).round() / 10.0;
                result(self, None, "4548-4", value, "4-5.6")?;
            }
        }
        Ok(())
    }

    /// A set of vitals taken at `at` by `by`, each value with its own reproducible id.
    fn vitals(
        &mut self,
        patient: RecordId,
        encounter: RecordId,
        at: DateTime<Utc>,
        values: &[(Vital, f64)],
        by: &str,
    ) -> VitalsRecorded {
        let mut set = VitalsRecorded::new(patient, Some(encounter), at, values, Stamp::new(at, by));
        for v in &mut set.values {
            v.observation = self.id();
        }
        set
    }

    fn immunizations(
        &mut self,
        w: &mut Writer<'_>,
        patient: RecordId,
        age: u32,
        birth: NaiveDate,
    ) -> Result<(), CoreError> {
        let mut give = |g: &mut Self, v: &Vaccine, date: NaiveDate| -> Result<(), CoreError> {
            if date > g.as_of || date < birth {
                return Ok(());
            }
            let lot = format!("DEMO{:04}", g.rng.below(10_000));
            let site = if v.cvx == "03" {
                "left_thigh"
            } else {
                *g.rng.pick(&["left_arm", "right_arm"])
            };
            let at = Stamp::new(at_hour(date, &mut g.rng), "Nurse P. Okonjo (demo)");
            let immunization = g.id();
            w.apply(Change::ImmunizationRecorded(ImmunizationRecorded {
                immunization,
                patient,
                item: NewImmunization::new(
                    v.name,
                    v.cvx,
                    &ymd(date),
                    Some(&lot),
                    Some(site),
                    date,
                )?,
                recorded: at,
            }))?;
            g.summary.immunizations += 1;
            Ok(())
        };
        if age < 18 {
            give(self, &DTAP, birth + Duration::days(61))?;
            give(self, &MMR, birth + Duration::days(366))?;
            if age >= 11 {
                give(self, &HPV, birth + Duration::days(11 * 365 + 30))?;
            }
        } else {
            let years = (age - 18).min(30);
            if years >= 1 {
                give(
                    self,
                    &TDAP,
                    self.as_of - Duration::days(365 * i64::from(1 + (years % 9))),
                )?;
            }
            let covid = self.as_of - Duration::days(200 + self.rng.below(400) as i64);
            give(self, &COVID, covid)?;
            if age >= 65 || self.rng.chance(0.3) {
                for y in 0..3 {
                    let autumn = NaiveDate::from_ymd_opt(
                        self.as_of.year() - y - i32::from(self.as_of.month() < 10),
                        10,
                        1 + self.rng.below(28) as u32,
                    );
                    if let Some(d) = autumn {
                        give(self, &FLU, d)?;
                    }
                }
            }
            if age >= 65 {
                give(self, &PNEUMO, birth + Duration::days(65 * 365 + 40))?;
            }
            if age >= 50 && self.rng.chance(0.4) {
                let zoster = self.as_of - Duration::days(100 + self.rng.below(900) as i64);
                give(self, &ZOSTER, zoster)?;
            }
        }
        Ok(())
    }
}

impl Session {
    /// Fills the vault with a synthetic clinic (see the module docs). Needs the import
    /// permission. Written in transactions of 250 patients, each audited as one
    /// `demo.generate` entry; `progress` hears the number of patients written so far.
    pub fn generate_demo(
        &mut self,
        options: &DemoOptions,
        mut progress: impl FnMut(u64),
    ) -> Result<DemoSummary, CoreError> {
        if options.patients == 0 || options.patients > 1_000_000 {
            return Err(CoreError::InvalidInput(
                "A demo clinic has 1 to 1,000,000 patients.".into(),
            ));
        }
        let start: i64 = self.run(
            Permission::ImportRecords,
            Op::execute("demo.start").detail(format!(
                "{} synthetic patients, seed {}",
                options.patients, options.seed
            )),
            false,
            |tx, _, _| {
                Ok(
                    tx.query_row("SELECT coalesce(max(id), 0) FROM patients", [], |r| {
                        r.get(0)
                    })?,
                )
            },
        )?;
        self.prepare_clinical_writes()?;
        let mut summary = DemoSummary::default();
        let mut generator = Generator {
            rng: Rng::new(options.seed ^ 0x6368_6172_7472_6f6f),
            // Seeded by where this clinic starts too, so a second demo run into the same
            // vault (same seed, more patients) makes new ids.
            ids: Rng::new(options.seed ^ 0x7265_636f_7264_6964 ^ (start as u64).rotate_left(32)),
            id_base: Utc.from_utc_datetime(&options.as_of.and_hms_opt(0, 0, 0).unwrap_or_default()),
            ids_made: 0,
            labs: Rng::new(options.seed ^ 0x6c61_6273_6c61_6273),
            uscdi: Rng::new(options.seed ^ 0x7573_6364_6964_656d),
            as_of: options.as_of,
            summary: &mut summary,
        };
        let mut done: u32 = 0;
        while done < options.patients {
            let count = BATCH.min(options.patients - done);
            let first = start as u64 + u64::from(done) + 1;
            let every = options.long_chart_every;
            self.run(
                Permission::ImportRecords,
                Op::create("demo.generate").detail(format!(
                    "synthetic patients {first} to {} (seed {})",
                    first + u64::from(count) - 1,
                    options.seed
                )),
                false,
                |tx, _, _| {
                    let mut writer = Writer { conn: tx };
                    crate::chart::change::bulk(|| {
                        for k in 0..u64::from(count) {
                            let n = first + k;
                            let long_chart =
                                every > 0 && n % u64::from(every) == 1 % u64::from(every);
                            generator.patient(&mut writer, n, long_chart)?;
                        }
                        Ok(())
                    })
                },
            )?;
            done += count;
            progress(u64::from(done));
        }
        Ok(summary)
    }
}

/// A synthetic appointment book for demos and benchmarks: each clinician works Monday to
/// Friday, 08:00-12:00 and 13:00-17:00 in the clinic's zone, with `per_day` appointments of
/// 20 minutes on each working day from `days_before` days before `as_of` to `days_after`
/// after it, for random patients of the clinic. Past appointments are mostly left booked
/// (the demo's visits are not linked to them), some cancelled, some no-shows.
#[derive(Debug, Clone)]
pub struct DemoBook {
    /// Enabled physicians or nurses of the vault.
    pub clinicians: Vec<String>,
    pub as_of: NaiveDate,
    pub days_before: u32,
    pub days_after: u32,
    /// At most 21 (the working day holds 21 twenty-minute slots).
    pub per_day: u32,
    pub seed: u64,
}

impl Session {
    /// Fills the clinicians' books (see [`DemoBook`]); returns the appointments written.
    /// Needs the import permission, as [`Session::generate_demo`] does; one audited
    /// transaction per month of the book.
    pub fn generate_demo_appointments(&mut self, book: &DemoBook) -> Result<u64, CoreError> {
        if book.per_day == 0 || book.per_day > 21 || book.clinicians.is_empty() {
            return Err(CoreError::InvalidInput(
                "A demo book has 1 to 21 appointments a day and at least one clinician.".into(),
            ));
        }
        let zone = self.settings().zone();
        let patients: i64 = self.run(
            Permission::ImportRecords,
            Op::execute("demo.book").detail(format!(
                "synthetic appointments for {} clinicians",
                book.clinicians.len()
            )),
            false,
            |tx, _, ctx| {
                let stamp = ctx.stamp();
                let hours = crate::schedule::parse_hours("08:00-12:00,13:00-17:00")?;
                for c in &book.clinicians {
                    let name = crate::schedule::clinician(tx, c)?;
                    for day in 0..5 {
                        crate::schedule::write_hours(tx, &name, day, &hours, &stamp)?;
                    }
                }
                for (name, minutes) in [("New patient", 40), ("Follow-up", 20), ("Telehealth", 20)]
                {
                    // A type the clinic already has keeps its length.
                    if crate::schedule::appointment_type(tx, name).is_err() {
                        crate::schedule::write_type(tx, name, minutes, &stamp)?;
                    }
                }
                Ok(tx.query_row("SELECT count(*) FROM patients", [], |r| r.get(0))?)
            },
        )?;
        if patients == 0 {
            return Err(CoreError::InvalidInput(
                "The demo book needs patients: generate the clinic first.".into(),
            ));
        }
        let mut rng = Rng::new(book.seed ^ 0x6170_706f_696e_746d);
        let slots: Vec<chrono::NaiveTime> = (0..24)
            .map(|i| 8 * 60 + i * 20)
            .filter(|m| !(12 * 60..13 * 60).contains(m))
            .filter_map(|m| chrono::NaiveTime::from_hms_opt(m / 60, m % 60, 0))
            .collect();
        let first = book.as_of - Duration::days(i64::from(book.days_before));
        let last = book.as_of + Duration::days(i64::from(book.days_after));
        let mut written = 0u64;
        let mut month_start = first;
        while month_start <= last {
            let month_end = (month_start + Duration::days(30)).min(last + Duration::days(1));
            let n = self.run(
                Permission::ImportRecords,
                Op::create("demo.book").detail(format!(
                    "synthetic appointments {month_start} to {}",
                    month_end - Duration::days(1)
                )),
                false,
                |tx, _, ctx| {
                    let mut n = 0u64;
                    let mut day = month_start;
                    while day < month_end {
                        if day.weekday().num_days_from_monday() < 5 {
                            for c in &book.clinicians {
                                let mut times = slots.clone();
                                for _ in 0..book.per_day {
                                    let i = rng.below(times.len() as u64) as usize;
                                    let t = times.swap_remove(i);
                                    let patient = 1 + rng.below(patients as u64) as i64;
                                    let uuid: RecordId = tx.query_row(
                                        "SELECT uuid FROM patients WHERE id = ?1",
                                        [patient],
                                        |r| r.get(0),
                                    )?;
                                    let start = zone.at(day, t);
                                    let (kind, reason) = *rng.pick(&[
                                        ("Follow-up", "Blood pressure review"),
                                        ("Follow-up", "Results discussion"),
                                        ("Telehealth", "Medication check"),
                                        ("Follow-up", "Knee pain"),
                                        ("Follow-up", "Annual review"),
                                    ]);
                                    let appointment = RecordId::new(ctx.now);
                                    apply(
                                        tx,
                                        &Change::AppointmentBooked(
                                            crate::chart::appointment::AppointmentBooked {
                                                appointment,
                                                patient: uuid,
                                                clinician: c.clone(),
                                                start,
                                                end: start + Duration::minutes(20),
                                                appointment_type: Some(kind.into()),
                                                reason: Some(reason.into()),
                                                overbooked: false,
                                                booked: Stamp::new(ctx.now, &ctx.actor.name),
                                            },
                                        ),
                                    )?;
                                    if day < book.as_of {
                                        let roll = rng.below(100);
                                        if roll < 6 {
                                            apply(tx, &Change::AppointmentCancelled(
                                                crate::chart::appointment::AppointmentCancelled {
                                                    appointment,
                                                    reason: "Patient called to cancel".into(),
                                                    cancelled: Stamp::new(ctx.now, &ctx.actor.name),
                                                },
                                            ))?;
                                        } else if roll < 10 {
                                            apply(tx, &Change::AppointmentStatusChanged(
                                                crate::chart::appointment::AppointmentStatusChanged {
                                                    appointment,
                                                    status: crate::AppointmentStatus::NoShow,
                                                    encounter: None,
                                                    changed: Stamp::new(ctx.now, &ctx.actor.name),
                                                },
                                            ))?;
                                        }
                                    }
                                    n += 1;
                                }
                            }
                        }
                        day = match day.succ_opt() {
                            Some(d) => d,
                            None => break,
                        };
                    }
                    Ok(n)
                },
            )?;
            written += n;
            month_start = month_end;
        }
        Ok(written)
    }
}

/// Race, ethnicity, language, birth sex and sexual orientation for a demo patient, in
/// proportions like a US clinic's, some never asked and some declined; sexual orientation
/// only for adults.
fn uscdi_demographics(rng: &mut Rng, mut d: Demographics, as_of: NaiveDate) -> Demographics {
    let s = |v: &[&str]| v.iter().map(|c| (*c).to_owned()).collect::<Vec<_>>();
    d.race = match rng.below(100) {
        0..=54 => s(&["2106-3"]),
        55..=66 => s(&["2054-5"]),
        67..=69 => s(&["2028-9"]),
        70..=72 => s(&[*rng.pick(&["2034-7", "2036-2", "2047-9", "2029-7", "2040-4"])]),
        73 => s(&["1002-5"]),
        74 => s(&["2076-8"]),
        75..=77 => s(&["2054-5", "2106-3"]),
        78..=80 => s(&["ASKU"]),
        _ => vec![],
    };
    let hispanic = rng.below(100) < 18;
    d.ethnicity = if d.race.is_empty() && rng.chance(0.5) {
        vec![]
    } else if hispanic {
        match rng.below(4) {
            0 => s(&["2135-2", "2148-5"]),
            1 => s(&["2135-2", "2180-8"]),
            _ => s(&["2135-2"]),
        }
    } else if rng.chance(0.04) {
        s(&["ASKU"])
    } else {
        s(&["2186-5"])
    };
    d.language = match rng.below(100) {
        0..=4 => None,
        x if hispanic && x < 45 => Some("es".to_owned()),
        5..=86 => Some("en".to_owned()),
        87..=92 => Some("es".to_owned()),
        _ => Some((*rng.pick(&["zh", "vi", "tl", "ko", "ar", "ru", "ht"])).to_owned()),
    };
    d.birth_sex = if rng.chance(0.1) {
        None
    } else {
        Some(
            match d.sex {
                Sex::Female => "F",
                Sex::Male => "M",
                _ => *rng.pick(&["F", "M", "UNK"]),
            }
            .to_owned(),
        )
    };
    // Asked of adults.
    let adult = as_of.years_since(d.birth_date).unwrap_or(0) >= 18;
    d.sexual_orientation = adult
        .then(|| match rng.below(100) {
            0..=29 => None,
            30..=89 => Some("20430005"),
            90..=92 => Some("38628009"),
            93..=95 => Some("42035005"),
            96 => Some("OTH"),
            97 => Some("UNK"),
            _ => Some("ASKU"),
        })
        .flatten()
        .map(str::to_owned);
    d
}
