//! Vital signs as observations: LOINC codes, UCUM units, physiological bounds (refused
//! outside them) and adult reference ranges (stored, but flagged outside them); the change
//! that records a set, its one writer (the only code that writes `observations`), and the
//! operations on the Session.

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::change::{self, apply, Applied, Change, RecordId, Stamp, Table};
use super::correction::{
    correction_column, not_in_error, read_correction, Correction, ENTERED_IN_ERROR,
};
use super::{encounter_id_of, encounter_row};
use crate::audit::Op;
use crate::ids::*;
use crate::keys::open_field;
use crate::roles::Permission;
use crate::{CoreError, Session};

/// A vital sign Chartroom records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum Vital {
    Systolic,
    Diastolic,
    HeartRate,
    RespiratoryRate,
    Temperature,
    Spo2,
    Weight,
    Height,
    Bmi,
}

/// How a value compares with the adult reference range (HL7 v3 ObservationInterpretation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub enum Flag {
    /// Within the reference range.
    N,
    /// Low.
    L,
    /// High.
    H,
    /// Critically low.
    LL,
    /// Critically high.
    HH,
}

impl Flag {
    pub fn as_str(self) -> &'static str {
        match self {
            Flag::N => "N",
            Flag::L => "L",
            Flag::H => "H",
            Flag::LL => "LL",
            Flag::HH => "HH",
        }
    }

    pub fn is_abnormal(self) -> bool {
        self != Flag::N
    }
}

/// Bounds and ranges for one vital sign.
struct Spec {
    loinc: &'static str,
    display: &'static str,
    unit: &'static str,
    /// Values outside [min, max] are not physiologically possible: refused.
    min: f64,
    max: f64,
    /// Below `critical_low` is LL, below `low` is L, above `high` is H, above
    /// `critical_high` is HH. NaN means no flag on that side.
    critical_low: f64,
    low: f64,
    high: f64,
    critical_high: f64,
    /// Decimal places kept.
    decimals: i32,
}

impl Vital {
    pub const ALL: [Vital; 9] = [
        Vital::Systolic,
        Vital::Diastolic,
        Vital::HeartRate,
        Vital::RespiratoryRate,
        Vital::Temperature,
        Vital::Spo2,
        Vital::Weight,
        Vital::Height,
        Vital::Bmi,
    ];

    fn spec(self) -> Spec {
        let none = f64::NAN;
        match self {
            Vital::Systolic => Spec {
                loinc: "8480-6",
                display: "Systolic blood pressure",
                unit: "mm[Hg]",
                min: 40.0,
                max: 300.0,
                critical_low: 70.0,
                low: 90.0,
                high: 139.0,
                critical_high: 179.0,
                decimals: 0,
            },
            Vital::Diastolic => Spec {
                loinc: "8462-4",
                display: "Diastolic blood pressure",
                unit: "mm[Hg]",
                min: 20.0,
                max: 200.0,
                critical_low: 40.0,
                low: 60.0,
                high: 89.0,
                critical_high: 119.0,
                decimals: 0,
            },
            Vital::HeartRate => Spec {
                loinc: "8867-4",
                display: "Heart rate",
                unit: "/min",
                min: 20.0,
                max: 300.0,
                critical_low: 40.0,
                low: 60.0,
                high: 100.0,
                critical_high: 130.0,
                decimals: 0,
            },
            Vital::RespiratoryRate => Spec {
                loinc: "9279-1",
                display: "Respiratory rate",
                unit: "/min",
                min: 3.0,
                max: 80.0,
                critical_low: 8.0,
                low: 12.0,
                high: 20.0,
                critical_high: 30.0,
                decimals: 0,
            },
            Vital::Temperature => Spec {
                loinc: "8310-5",
                display: "Body temperature",
                unit: "Cel",
                min: 25.0,
                max: 45.0,
                critical_low: 35.0,
                low: 36.0,
                high: 37.8,
                critical_high: 39.9,
                // Two places, so a value typed in °F reads back as typed.
                decimals: 2,
            },
            Vital::Spo2 => Spec {
                loinc: "59408-5",
                display: "Oxygen saturation by pulse oximetry",
                unit: "%",
                min: 50.0,
                max: 100.0,
                critical_low: 90.0,
                low: 95.0,
                high: none,
                critical_high: none,
                decimals: 0,
            },
            Vital::Weight => Spec {
                loinc: "29463-7",
                display: "Body weight",
                unit: "kg",
                min: 0.2,
                max: 500.0,
                critical_low: none,
                low: none,
                high: none,
                critical_high: none,
                // Two places, so a weight typed in pounds reads back as typed.
                decimals: 2,
            },
            Vital::Height => Spec {
                loinc: "8302-2",
                display: "Body height",
                unit: "cm",
                min: 20.0,
                max: 260.0,
                critical_low: none,
                low: none,
                high: none,
                critical_high: none,
                decimals: 1,
            },
            Vital::Bmi => Spec {
                loinc: "39156-5",
                display: "Body mass index",
                unit: "kg/m2",
                min: 5.0,
                max: 150.0,
                critical_low: 16.0,
                low: 18.5,
                high: 29.9,
                critical_high: 39.9,
                decimals: 1,
            },
        }
    }

    pub fn loinc(self) -> &'static str {
        self.spec().loinc
    }

    pub fn display(self) -> &'static str {
        self.spec().display
    }

    /// The UCUM unit values are stored in.
    pub fn unit(self) -> &'static str {
        self.spec().unit
    }

    pub fn from_loinc(code: &str) -> Option<Vital> {
        Vital::ALL.into_iter().find(|v| v.loinc() == code)
    }

    /// The range a value must fall in to be possible at all.
    pub fn bounds(self) -> (f64, f64) {
        let s = self.spec();
        (s.min, s.max)
    }

    /// Checks a value is physiologically possible and rounds it to the precision kept.
    pub fn validate(self, value: f64) -> Result<f64, CoreError> {
        let s = self.spec();
        if !value.is_finite() || value < s.min || value > s.max {
            let unit = super::measure::unit_words(self);
            return Err(CoreError::InvalidInput(format!(
                "{} of {} {unit} is not possible; it must be between {} and {} {unit}.",
                s.display,
                trim_number(value),
                trim_number(s.min),
                trim_number(s.max),
            )));
        }
        let scale = 10f64.powi(s.decimals);
        Ok((value * scale).round() / scale)
    }

    /// Flags a (valid) value against the adult reference range.
    pub fn flag(self, value: f64) -> Flag {
        let s = self.spec();
        // Comparisons with NaN are false, so a missing limit never flags.
        if value < s.critical_low {
            Flag::LL
        } else if value < s.low {
            Flag::L
        } else if value > s.critical_high {
            Flag::HH
        } else if value > s.high {
            Flag::H
        } else {
            Flag::N
        }
    }
}

pub(crate) fn trim_number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e9 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

/// BMI from a weight in kg and a height in cm.
pub fn bmi(weight_kg: f64, height_cm: f64) -> f64 {
    let m = height_cm / 100.0;
    ((weight_kg / (m * m)) * 10.0).round() / 10.0
}

/// One set of vitals taken together, before validation.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VitalsInput {
    pub systolic: Option<f64>,
    pub diastolic: Option<f64>,
    pub heart_rate: Option<f64>,
    pub respiratory_rate: Option<f64>,
    pub temperature: Option<f64>,
    pub spo2: Option<f64>,
    pub weight: Option<f64>,
    pub height: Option<f64>,
}

impl VitalsInput {
    /// Validates every value and the pairing rules; returns (vital, value) pairs, BMI not
    /// included (it needs the latest height when none was measured now).
    pub fn validate(&self) -> Result<Vec<(Vital, f64)>, CoreError> {
        match (self.systolic, self.diastolic) {
            (Some(_), None) | (None, Some(_)) => {
                return Err(CoreError::InvalidInput(
                    "Blood pressure needs both numbers: systolic and diastolic.".into(),
                ))
            }
            (Some(s), Some(d)) if s <= d => {
                return Err(CoreError::InvalidInput(format!(
                    "Systolic pressure ({}) must be higher than diastolic ({}); were they swapped?",
                    trim_number(s),
                    trim_number(d)
                )))
            }
            _ => {}
        }
        let pairs = [
            (Vital::Systolic, self.systolic),
            (Vital::Diastolic, self.diastolic),
            (Vital::HeartRate, self.heart_rate),
            (Vital::RespiratoryRate, self.respiratory_rate),
            (Vital::Temperature, self.temperature),
            (Vital::Spo2, self.spo2),
            (Vital::Weight, self.weight),
            (Vital::Height, self.height),
        ];
        let mut out = Vec::new();
        for (vital, value) in pairs {
            if let Some(v) = value {
                out.push((vital, vital.validate(v)?));
            }
        }
        if out.is_empty() {
            return Err(CoreError::InvalidInput(
                "Give at least one vital sign to record.".into(),
            ));
        }
        Ok(out)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Observation {
    pub id: ObservationId,
    pub patient_id: PatientId,
    pub encounter_id: Option<EncounterId>,
    pub vital: Vital,
    /// LOINC code.
    pub code: String,
    pub display: String,
    pub value: f64,
    /// UCUM unit.
    pub unit: String,
    pub effective: String,
    /// N, L, H, LL or HH against the adult reference range.
    pub flag: Flag,
    pub recorded_by: String,
    pub recorded_at: String,
    /// `final`, or `entered-in-error` once marked as a mistake (then kept, struck out, and
    /// left out of the latest values, BMI, flags and plots).
    pub status: String,
    /// Who marked it entered in error, when and why.
    #[cfg_attr(feature = "ts", ts(optional))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correction: Option<Correction>,
}

impl Observation {
    /// Whether it counts: not marked entered in error.
    pub fn is_current(&self) -> bool {
        self.correction.is_none()
    }
}

const OBSERVATION_COLUMNS: &str = concat!(
    "id, patient_id, encounter_id, code, CAST(",
    open_field!("observations", "value"),
    // The flag is stored (sealed, for readers outside Chartroom) but read back as what it
    // always is, the value's flag: one field to open per observation, not two.
    " AS REAL), unit, effective, NULL, recorded_by, recorded_at, ",
    correction_column!("observations", "observation")
);

fn row_to_observation(r: &rusqlite::Row<'_>) -> rusqlite::Result<Observation> {
    let code: String = r.get(3)?;
    let vital = Vital::from_loinc(&code).unwrap_or(Vital::Weight);
    let value: f64 = r.get(4)?;
    Ok(Observation {
        id: r.get(0)?,
        patient_id: r.get(1)?,
        encounter_id: r.get(2)?,
        vital,
        display: vital.display().to_owned(),
        code,
        value,
        unit: r.get(5)?,
        effective: r.get(6)?,
        flag: vital.flag(value),
        recorded_by: r.get(8)?,
        recorded_at: r.get(9)?,
        status: "final".into(),
        correction: None,
    })
    .and_then(|mut o| {
        o.correction = read_correction(r.get(10)?);
        if o.correction.is_some() {
            o.status = ENTERED_IN_ERROR.into();
        }
        Ok(o)
    })
}

pub(crate) fn observations(
    conn: &Connection,
    patient_id: i64,
) -> Result<Vec<Observation>, CoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {OBSERVATION_COLUMNS} FROM observations WHERE patient_id = ?1 ORDER BY effective DESC, id"
    ))?;
    let rows = stmt.query_map([patient_id], row_to_observation)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(crate) fn observations_by_id(
    conn: &Connection,
    ids: &[i64],
) -> Result<Vec<Observation>, CoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {OBSERVATION_COLUMNS} FROM observations WHERE id = ?1"
    ))?;
    ids.iter()
        .map(|id| Ok(stmt.query_row([id], row_to_observation)?))
        .collect()
}

pub(crate) fn latest_value(
    conn: &Connection,
    patient_id: i64,
    vital: Vital,
) -> Result<Option<f64>, CoreError> {
    Ok(conn
        .prepare_cached(concat!(
            "SELECT CAST(",
            open_field!("observations", "value"),
            " AS REAL) FROM observations WHERE patient_id = ?1 AND code = ?2 AND ",
            not_in_error!("observations", "observation"),
            " ORDER BY effective DESC, id DESC LIMIT 1"
        ))?
        .query_row(params![patient_id, vital.loinc()], |r| r.get(0))
        .optional()?)
}

/// The latest value of a vital not marked entered in error, with when it was taken.
fn latest_with_time(
    conn: &Connection,
    patient_id: i64,
    vital: Vital,
) -> Result<Option<(f64, String)>, CoreError> {
    Ok(conn
        .prepare_cached(concat!(
            "SELECT CAST(",
            open_field!("observations", "value"),
            " AS REAL), effective FROM observations WHERE patient_id = ?1 AND code = ?2 AND ",
            not_in_error!("observations", "observation"),
            " ORDER BY effective DESC, id DESC LIMIT 1"
        ))?
        .query_row(params![patient_id, vital.loinc()], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?)
}

/// One value of a set of vitals, with its observation's global id.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VitalValue {
    pub observation: RecordId,
    pub vital: Vital,
    pub value: f64,
}

/// A set of vitals taken together: version 1 of [`Change::VitalsRecorded`]. Derived values
/// (BMI) are in the set as measured ones are: a change states facts, it computes nothing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VitalsRecorded {
    pub patient: RecordId,
    pub encounter: Option<RecordId>,
    #[serde(with = "change::micros_time")]
    pub effective: DateTime<Utc>,
    pub values: Vec<VitalValue>,
    pub recorded: Stamp,
}

impl VitalsRecorded {
    pub(crate) fn new(
        patient: RecordId,
        encounter: Option<RecordId>,
        effective: DateTime<Utc>,
        values: &[(Vital, f64)],
        recorded: Stamp,
    ) -> VitalsRecorded {
        VitalsRecorded {
            patient,
            encounter,
            effective: chartroom_audit::truncate_to_micros(effective),
            values: values
                .iter()
                .map(|(vital, value)| VitalValue {
                    observation: RecordId::new(recorded.at),
                    vital: *vital,
                    value: *value,
                })
                .collect(),
            recorded,
        }
    }

    fn check(&self) -> Result<(), CoreError> {
        if self.values.is_empty() {
            return Err(CoreError::InvalidInput(
                "A set of vitals needs at least one value.".into(),
            ));
        }
        if self.effective > self.recorded.at + chrono::Duration::hours(1) {
            return Err(CoreError::InvalidInput(
                "The time of the vitals is in the future.".into(),
            ));
        }
        for v in &self.values {
            if v.vital.validate(v.value)? != v.value {
                return Err(CoreError::InvalidInput(format!(
                    "{} is kept to its unit's precision.",
                    v.vital.display()
                )));
            }
        }
        Ok(())
    }
}

/// The one writer of `observations`.
pub(super) fn apply_recorded(conn: &Connection, c: &VitalsRecorded) -> Result<Applied, CoreError> {
    c.check()?;
    let patient = change::row_of(conn, Table::Patients, c.patient)?;
    let encounter = encounter_row(conn, c.encounter, patient)?;
    let effective = chartroom_audit::format_time(c.effective);
    let at = c.recorded.time();
    let mut insert = conn.prepare_cached(
        "INSERT INTO observations (uuid, patient_id, encounter_id, code, value, unit, effective, flag, recorded_by, recorded_at)
         VALUES (?1, ?2, ?3, ?4, cr_seal(?5, 'observations', 'value', ?1, ?11), ?6, ?7,
                 cr_seal(?8, 'observations', 'flag', ?1, ?11), ?9, ?10)",
    )?;
    let mut rows = Vec::with_capacity(c.values.len());
    for v in &c.values {
        insert.execute(params![
            v.observation,
            patient,
            encounter,
            v.vital.loinc(),
            v.value,
            v.vital.unit(),
            effective,
            v.vital.flag(v.value).as_str(),
            c.recorded.by,
            at,
            c.patient
        ])?;
        rows.push(conn.last_insert_rowid());
    }
    Ok(Applied(rows))
}

/// A set of vitals recorded, with the questions its values raised (a value far from the
/// patient's last one), for a caller that saved without asking first.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct RecordedVitals {
    pub observations: Vec<Observation>,
    pub questions: Vec<super::measure::FieldError>,
}

impl Session {
    /// Records a set of vitals taken together (one audited transaction). BMI is derived when
    /// a weight is recorded and a height is known (now or from before).
    pub fn record_vitals(
        &mut self,
        patient_id: impl Into<PatientId>,
        input: &VitalsInput,
        effective: Option<DateTime<Utc>>,
        encounter_id: Option<EncounterId>,
    ) -> Result<Vec<Observation>, CoreError> {
        self.record_vitals_checked(patient_id, input, effective, encounter_id, true)
            .map(|r| r.observations)
    }

    /// Records a set of vitals, first comparing a weight or height with the patient's last
    /// (weight ±20 %, height ±5 cm in adults). Unless `confirmed`, such a value is asked
    /// about ("did you mean 180 lb?") with `check_values` and nothing is written; once
    /// confirmed it is saved and the questions come back beside it.
    pub fn record_vitals_checked(
        &mut self,
        patient_id: impl Into<PatientId>,
        input: &VitalsInput,
        effective: Option<DateTime<Utc>>,
        encounter_id: Option<EncounterId>,
        confirmed: bool,
    ) -> Result<RecordedVitals, CoreError> {
        let patient_id = patient_id.into().get();
        let units = self.settings().units;
        let zone = self.settings().zone();
        let encounter_id = encounter_id.map(EncounterId::get);
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
                let encounter = encounter_id_of(tx, encounter_id, patient_id)?;
                let adult = ctx.patient()?.age_on(zone.date_of(ctx.now)) >= 18;
                let mut questions = Vec::new();
                // Only a weight or a height is compared with the last one: no query for the rest.
                let compared = values
                    .iter()
                    .filter(|(v, _)| matches!(v, Vital::Weight | Vital::Height));
                for (vital, value) in compared {
                    let last = latest_with_time(tx, patient_id, *vital)?;
                    let when = last.as_ref().map(|(_, t)| {
                        chartroom_audit::parse_time(t)
                            .map(|t| zone.date_of(t).format("%-d %b %Y").to_string())
                            .unwrap_or_default()
                    });
                    let last = last.map(|(v, _)| v).zip(when);
                    if let Some(q) = super::measure::question(
                        *vital,
                        *value,
                        last.as_ref().map(|(v, w)| (*v, w.as_str())),
                        adult,
                        units,
                    ) {
                        questions.push(q);
                    }
                }
                if !confirmed && !questions.is_empty() {
                    return Err(CoreError::CheckValues(questions));
                }
                let set = with_bmi(tx, patient_id, values)?;
                let recorded = VitalsRecorded::new(
                    ctx.patient()?.uuid,
                    encounter,
                    effective.unwrap_or(ctx.now),
                    &set,
                    ctx.stamp(),
                );
                let ids = apply(tx, &Change::VitalsRecorded(recorded))?.0;
                let observations = observations_by_id(tx, &ids)?;
                let abnormal = observations.iter().filter(|o| o.flag.is_abnormal()).count();
                op.object = Some(("Observation", ids.first().copied().unwrap_or(0).to_string()));
                op.detail = Some(format!(
                    "{} observations, {abnormal} flagged{}",
                    observations.len(),
                    if questions.is_empty() {
                        ""
                    } else {
                        ", saved after a question about a value far from the last"
                    }
                ));
                Ok(RecordedVitals {
                    observations,
                    questions,
                })
            },
        )
    }

    /// A patient's vital-sign observations, newest first.
    pub fn vitals(
        &mut self,
        patient_id: impl Into<PatientId>,
    ) -> Result<Vec<Observation>, CoreError> {
        let patient_id = patient_id.into().get();
        self.run(
            Permission::ReadClinical,
            Op::read("vitals.read").patient(patient_id),
            true,
            |tx, _, _| observations(tx, patient_id),
        )
    }
}

/// A validated set with its BMI added when a weight was taken and a height is known (now
/// or from before) and the BMI is possible.
pub(crate) fn with_bmi(
    conn: &Connection,
    patient_id: i64,
    mut values: Vec<(Vital, f64)>,
) -> Result<Vec<(Vital, f64)>, CoreError> {
    let weight = values
        .iter()
        .find(|(v, _)| *v == Vital::Weight)
        .map(|(_, w)| *w);
    let height = match values.iter().find(|(v, _)| *v == Vital::Height) {
        Some((_, h)) => Some(*h),
        None => latest_value(conn, patient_id, Vital::Height)?,
    };
    if let (Some(w), Some(h)) = (weight, height) {
        if let Ok(b) = Vital::Bmi.validate(bmi(w, h)) {
            values.push((Vital::Bmi, b));
        }
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_vital_accepts_a_normal_value_and_refuses_an_impossible_one() {
        let cases = [
            (Vital::Systolic, 120.0, 20.0, 400.0),
            (Vital::Diastolic, 80.0, 10.0, 250.0),
            (Vital::HeartRate, 72.0, 5.0, 400.0),
            (Vital::RespiratoryRate, 16.0, 1.0, 120.0),
            (Vital::Temperature, 36.8, 20.0, 50.0),
            (Vital::Spo2, 98.0, 30.0, 101.0),
            (Vital::Weight, 70.0, 0.0, 700.0),
            (Vital::Height, 170.0, 10.0, 300.0),
            (Vital::Bmi, 22.0, 2.0, 200.0),
        ];
        for (vital, good, low, high) in cases {
            assert_eq!(vital.validate(good).expect("valid"), good, "{vital:?}");
            assert_eq!(vital.flag(good), Flag::N, "{vital:?}");
            assert!(vital.validate(low).is_err(), "{vital:?} {low}");
            assert!(vital.validate(high).is_err(), "{vital:?} {high}");
        }
        assert!(Vital::HeartRate.validate(f64::NAN).is_err());
    }

    #[test]
    fn possible_but_abnormal_values_are_flagged() {
        assert_eq!(Vital::Systolic.flag(150.0), Flag::H);
        assert_eq!(Vital::Systolic.flag(190.0), Flag::HH);
        assert_eq!(Vital::Systolic.flag(85.0), Flag::L);
        assert_eq!(Vital::HeartRate.flag(35.0), Flag::LL);
        assert_eq!(Vital::Temperature.flag(38.5), Flag::H);
        assert_eq!(Vital::Temperature.flag(37.8), Flag::N);
        assert_eq!(Vital::Spo2.flag(92.0), Flag::L);
        assert_eq!(Vital::Spo2.flag(100.0), Flag::N);
        assert_eq!(Vital::Weight.flag(180.0), Flag::N);
        assert_eq!(Vital::Bmi.flag(bmi(120.0, 170.0)), Flag::HH);
    }

    #[test]
    fn blood_pressure_comes_in_pairs_the_right_way_round() {
        let mut v = VitalsInput {
            systolic: Some(120.0),
            ..VitalsInput::default()
        };
        assert!(v.validate().is_err());
        v.diastolic = Some(130.0);
        assert!(v.validate().is_err());
        v.diastolic = Some(80.0);
        assert_eq!(v.validate().expect("valid").len(), 2);
        assert!(VitalsInput::default().validate().is_err());
    }

    #[test]
    fn bmi_is_derived_from_kg_and_cm() {
        assert_eq!(bmi(70.0, 175.0), 22.9);
    }

    #[test]
    fn loinc_codes_are_the_standard_ones() {
        let codes: Vec<&str> = Vital::ALL.iter().map(|v| v.loinc()).collect();
        assert_eq!(
            codes,
            [
                "8480-6", "8462-4", "8867-4", "9279-1", "8310-5", "59408-5", "29463-7", "8302-2",
                "39156-5"
            ]
        );
        assert_eq!(Vital::from_loinc("8867-4"), Some(Vital::HeartRate));
    }
}
