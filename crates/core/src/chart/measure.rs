//! Vital signs as people type them: in the clinic's units (metric or US), or with a unit
//! written after the number (`150lb`, `98.6F`, `65in`, `5'5"`), read into the UCUM units
//! they are stored in; every field's problem found at once and said in words ("°C", not
//! "Cel"); and the questions asked before saving a value far from the patient's last one
//! ("did you mean 180 lb?").

use serde::Serialize;

use super::vitals::{Vital, VitalsInput};
use crate::CoreError;

/// The units a clinic shows and types vital signs in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum Units {
    /// kg, cm, °C.
    #[default]
    Metric,
    /// lb, in, °F.
    Us,
}

impl Units {
    pub fn parse(text: &str) -> Result<Units, CoreError> {
        match text.trim().to_ascii_lowercase().as_str() {
            "metric" | "si" => Ok(Units::Metric),
            "us" | "imperial" => Ok(Units::Us),
            _ => Err(CoreError::InvalidInput(
                "Units are metric (kg, cm, °C) or us (lb, in, °F).".into(),
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Units::Metric => "metric",
            Units::Us => "us",
        }
    }
}

const KG_PER_LB: f64 = 0.453_592_37;
const CM_PER_IN: f64 = 2.54;

/// A unit a value may be typed in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Unit {
    Kg,
    Lb,
    Cm,
    M,
    In,
    Celsius,
    Fahrenheit,
    /// The vital's own unit (mmHg, /min, %, kg/m²).
    Own,
}

impl Unit {
    fn words(self, vital: Vital) -> &'static str {
        match self {
            Unit::Kg => "kg",
            Unit::Lb => "lb",
            Unit::Cm => "cm",
            Unit::M => "m",
            Unit::In => "in",
            Unit::Celsius => "°C",
            Unit::Fahrenheit => "°F",
            Unit::Own => unit_words(vital),
        }
    }

    /// The value in the vital's stored (UCUM) unit.
    fn to_stored(self, v: f64) -> f64 {
        match self {
            Unit::Lb => v * KG_PER_LB,
            Unit::M => v * 100.0,
            Unit::In => v * CM_PER_IN,
            Unit::Fahrenheit => (v - 32.0) * 5.0 / 9.0,
            Unit::Kg | Unit::Cm | Unit::Celsius | Unit::Own => v,
        }
    }

    fn shown_from_stored(self, v: f64) -> f64 {
        match self {
            Unit::Lb => v / KG_PER_LB,
            Unit::M => v / 100.0,
            Unit::In => v / CM_PER_IN,
            Unit::Fahrenheit => v * 9.0 / 5.0 + 32.0,
            Unit::Kg | Unit::Cm | Unit::Celsius | Unit::Own => v,
        }
    }
}

/// A vital's stored unit, as a person reads it.
pub fn unit_words(vital: Vital) -> &'static str {
    match vital {
        Vital::Systolic | Vital::Diastolic => "mmHg",
        Vital::HeartRate => "beats/min",
        Vital::RespiratoryRate => "breaths/min",
        Vital::Temperature => "°C",
        Vital::Spo2 => "%",
        Vital::Weight => "kg",
        Vital::Height => "cm",
        Vital::Bmi => "kg/m²",
    }
}

/// The unit a bare number is read in, and values shown in, for this clinic.
fn clinic_unit(vital: Vital, units: Units) -> Unit {
    match (vital, units) {
        (Vital::Weight, Units::Metric) => Unit::Kg,
        (Vital::Weight, Units::Us) => Unit::Lb,
        (Vital::Height, Units::Metric) => Unit::Cm,
        (Vital::Height, Units::Us) => Unit::In,
        (Vital::Temperature, Units::Metric) => Unit::Celsius,
        (Vital::Temperature, Units::Us) => Unit::Fahrenheit,
        _ => Unit::Own,
    }
}

/// The unit written after a number, if it is one this vital may be typed in.
fn unit_named(vital: Vital, name: &str) -> Option<Unit> {
    let name = name.trim().trim_end_matches('.').to_lowercase();
    let unit = match name.as_str() {
        "kg" | "kgs" | "kilo" | "kilos" | "kilogram" | "kilograms" => Unit::Kg,
        "lb" | "lbs" | "pound" | "pounds" | "#" => Unit::Lb,
        "cm" | "cms" | "centimetre" | "centimetres" | "centimeter" | "centimeters" => Unit::Cm,
        "m" | "metre" | "metres" | "meter" | "meters" => Unit::M,
        "in" | "ins" | "inch" | "inches" | "\"" | "″" => Unit::In,
        "c" | "°c" | "cel" | "celsius" | "° c" => Unit::Celsius,
        "f" | "°f" | "fahrenheit" | "° f" => Unit::Fahrenheit,
        "mmhg" | "mm hg" | "mm[hg]" => {
            return matches!(vital, Vital::Systolic | Vital::Diastolic).then_some(Unit::Own)
        }
        "bpm" | "beats/min" => return (vital == Vital::HeartRate).then_some(Unit::Own),
        "breaths/min" => return (vital == Vital::RespiratoryRate).then_some(Unit::Own),
        "/min" | "per min" => {
            return matches!(vital, Vital::HeartRate | Vital::RespiratoryRate).then_some(Unit::Own)
        }
        "%" => return (vital == Vital::Spo2).then_some(Unit::Own),
        _ => return None,
    };
    let fits = match unit {
        Unit::Kg | Unit::Lb => vital == Vital::Weight,
        Unit::Cm | Unit::M | Unit::In => vital == Vital::Height,
        Unit::Celsius | Unit::Fahrenheit => vital == Vital::Temperature,
        Unit::Own => false,
    };
    fits.then_some(unit)
}

/// The units a vital may be typed in, for the error that names them.
fn units_accepted(vital: Vital) -> &'static str {
    match vital {
        Vital::Weight => "kg or lb (68kg, 150lb)",
        Vital::Height => "cm or in (165cm, 65in, 5'5\")",
        Vital::Temperature => "°C or °F (37.0C, 98.6F)",
        Vital::Systolic | Vital::Diastolic => "mmHg",
        Vital::HeartRate => "beats per minute",
        Vital::RespiratoryRate => "breaths per minute",
        Vital::Spo2 => "%",
        Vital::Bmi => "kg/m²",
    }
}

/// A problem with one field of a form, said in words, with what to type instead when there
/// is a likely fix.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct FieldError {
    /// The field: `systolic`, `diastolic`, `heart_rate`, `respiratory_rate`,
    /// `temperature`, `spo2`, `weight`, `height`, or `form` for the whole form.
    pub field: String,
    pub message: String,
    /// What to type in the field instead, when a likely fix is known (`98.6F`).
    #[cfg_attr(feature = "ts", ts(optional))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suggestion: Option<String>,
}

impl FieldError {
    fn new(vital: Vital, message: String, suggestion: Option<String>) -> FieldError {
        FieldError {
            field: field_name(vital).into(),
            message,
            suggestion,
        }
    }
}

/// The form field of a vital.
pub fn field_name(vital: Vital) -> &'static str {
    match vital {
        Vital::Systolic => "systolic",
        Vital::Diastolic => "diastolic",
        Vital::HeartRate => "heart_rate",
        Vital::RespiratoryRate => "respiratory_rate",
        Vital::Temperature => "temperature",
        Vital::Spo2 => "spo2",
        Vital::Weight => "weight",
        Vital::Height => "height",
        Vital::Bmi => "bmi",
    }
}

/// A number the way people write it, with `,` as a decimal point accepted.
fn number(text: &str) -> Option<f64> {
    let text = text.trim();
    if text.is_empty() || text.len() > 20 {
        return None;
    }
    // A comma before exactly three digits groups thousands (1,000); otherwise it is a
    // decimal comma (37,2).
    let thousands = text
        .split_once(',')
        .is_some_and(|(_, rest)| rest.len() == 3 && rest.bytes().all(|b| b.is_ascii_digit()));
    let text = if thousands {
        text.replace(',', "")
    } else if text.contains(',') && !text.contains('.') {
        text.replace(',', ".")
    } else {
        text.to_owned()
    };
    text.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// Feet and inches: `5'5"`, `5' 5`, `5 ft 5 in`, `5ft`.
fn feet_and_inches(text: &str) -> Option<f64> {
    let t = text.to_lowercase().replace("ft", "'").replace('′', "'");
    let (feet, rest) = t.split_once('\'')?;
    let feet = number(feet)?;
    let rest = rest
        .trim()
        .trim_end_matches("inches")
        .trim_end_matches("in")
        .trim_end_matches('"')
        .trim_end_matches('″')
        .trim();
    let inches = if rest.is_empty() { 0.0 } else { number(rest)? };
    (feet.fract() == 0.0 && (0.0..12.0).contains(&inches))
        .then_some((feet * 12.0 + inches) * CM_PER_IN)
}

/// Formats a number for a message: no trailing zeros, at most `decimals` places.
fn show(v: f64, decimals: usize) -> String {
    let text = format!("{v:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

/// A stored value in the clinic's units, as a person reads it: `150 lb`, `98.6 °F`.
pub fn show_in(vital: Vital, stored: f64, units: Units) -> String {
    let unit = clinic_unit(vital, units);
    let decimals = if unit == Unit::Own && vital != Vital::Bmi {
        0
    } else {
        1
    };
    format!(
        "{} {}",
        show(unit.shown_from_stored(stored), decimals),
        unit.words(vital)
    )
}

/// Reads one field as typed (a number, in the clinic's units unless a unit follows it) into
/// the vital's stored unit, and checks it is possible. The message names the units in
/// words and, where a likely slip is seen (98.6 typed where °C is read), what was meant.
pub fn read_field(vital: Vital, text: &str, units: Units) -> Result<f64, FieldError> {
    let text = bare_in_clinic_units(vital, text, units);
    let text = text.as_str();
    let display = vital.display();
    let (value, unit) = match split_unit(vital, text) {
        Some(found) => found,
        None => {
            return Err(FieldError::new(
                vital,
                format!(
                    "{display}: \"{}\" is not a number; give it in {}.",
                    text.chars().take(20).collect::<String>(),
                    units_accepted(vital)
                ),
                None,
            ))
        }
    };
    let stored = unit.to_stored(value);
    let (min, max) = vital.bounds();
    if (min..=max).contains(&stored) {
        return vital
            .validate(stored)
            .map_err(|e| FieldError::new(vital, e.to_string(), None));
    }
    // The value is not possible in the unit it was read in: is it in the other one?
    let other = match unit {
        Unit::Celsius => Some(Unit::Fahrenheit),
        Unit::Fahrenheit => Some(Unit::Celsius),
        Unit::Kg => Some(Unit::Lb),
        Unit::Lb => Some(Unit::Kg),
        Unit::Cm => Some(Unit::In),
        Unit::In => Some(Unit::Cm),
        _ => None,
    };
    let suggestion = other.and_then(|o| {
        let v = o.to_stored(value);
        (min..=max).contains(&v).then(|| {
            (
                format!("{}{}", show(value, 2), suffix(o)),
                format!(
                    " Did you mean {} {} ({})?",
                    show(value, 2),
                    o.words(vital),
                    show_in(vital, v, Units::Metric)
                ),
            )
        })
    });
    let unit_text = unit.words(vital);
    Err(FieldError::new(
        vital,
        format!(
            "{display} of {} {unit_text} is not possible; it must be between {} and {} {unit_text}.{}",
            show(value, 2),
            show(unit.shown_from_stored(min), 1),
            show(unit.shown_from_stored(max), 1),
            suggestion.as_ref().map(|s| s.1.as_str()).unwrap_or("")
        ),
        suggestion.map(|s| s.0),
    ))
}

/// The unit suffix to type after a number.
fn suffix(unit: Unit) -> &'static str {
    match unit {
        Unit::Kg => "kg",
        Unit::Lb => "lb",
        Unit::Cm => "cm",
        Unit::M => "m",
        Unit::In => "in",
        Unit::Celsius => "C",
        Unit::Fahrenheit => "F",
        Unit::Own => "",
    }
}

/// The number and the unit it is in: a unit written after it, or the clinic's.
fn split_unit(vital: Vital, text: &str) -> Option<(f64, Unit)> {
    if vital == Vital::Height {
        if let Some(cm) = feet_and_inches(text) {
            return Some((cm, Unit::Cm));
        }
    }
    let at = text
        .char_indices()
        .find(|(i, c)| !(c.is_ascii_digit() || *c == '.' || *c == ',' || (*i == 0 && *c == '-')))
        .map(|(i, _)| i)
        .unwrap_or(text.len());
    let (num, rest) = text.split_at(at);
    let value = number(num)?;
    if rest.trim().is_empty() {
        // The vital's own unit (callers write the clinic's unit after a bare weight,
        // height or temperature first).
        return Some((value, Unit::Own));
    }
    Some((value, unit_named(vital, rest)?))
}

/// Reads every field of a vitals form as typed, in the clinic's units: every field's
/// problem at once (a field that is blank is not taken).
pub fn read_form(fields: &[(Vital, &str)], units: Units) -> Result<VitalsInput, Vec<FieldError>> {
    let mut input = VitalsInput::default();
    let mut errors = Vec::new();
    for (vital, text) in fields {
        if text.trim().is_empty() {
            continue;
        }
        match (slot(&mut input, *vital), read_field(*vital, text, units)) {
            (None, _) => errors.push(FieldError::new(
                *vital,
                "BMI is worked out from the weight and height; it is not typed.".into(),
                None,
            )),
            (Some(slot), Ok(v)) => *slot = Some(v),
            (Some(_), Err(e)) => errors.push(e),
        }
    }
    // The pairing rules, on the fields that read.
    match (input.systolic, input.diastolic) {
        (Some(_), None) if !errors.iter().any(|e| e.field == "diastolic") => {
            errors.push(FieldError::new(
                Vital::Diastolic,
                "Blood pressure needs both numbers: give the diastolic too.".into(),
                None,
            ))
        }
        (None, Some(_)) if !errors.iter().any(|e| e.field == "systolic") => {
            errors.push(FieldError::new(
                Vital::Systolic,
                "Blood pressure needs both numbers: give the systolic too.".into(),
                None,
            ))
        }
        (Some(s), Some(d)) if s <= d => errors.push(FieldError::new(
            Vital::Diastolic,
            format!(
                "Systolic pressure ({}) must be higher than diastolic ({}); were they swapped?",
                show(s, 0),
                show(d, 0)
            ),
            None,
        )),
        _ => {}
    }
    if errors.is_empty() && fields.iter().all(|(_, t)| t.trim().is_empty()) {
        errors.push(FieldError {
            field: "form".into(),
            message: "Give at least one vital sign to record.".into(),
            suggestion: None,
        });
    }
    if errors.is_empty() {
        Ok(input)
    } else {
        Err(errors)
    }
}

/// A bare number gets the clinic's unit written after it, so [`read_field`] reads it in
/// that unit (and can say which unit it read it in).
fn bare_in_clinic_units(vital: Vital, text: &str, units: Units) -> String {
    let text = text.trim();
    let bare = number(text).is_some();
    match clinic_unit(vital, units) {
        Unit::Own => text.to_owned(),
        unit if bare => format!("{text}{}", suffix(unit)),
        _ => text.to_owned(),
    }
}

/// Where a typed vital goes in the input; none for BMI, which is derived, never typed.
fn slot(input: &mut VitalsInput, vital: Vital) -> Option<&mut Option<f64>> {
    Some(match vital {
        Vital::Systolic => &mut input.systolic,
        Vital::Diastolic => &mut input.diastolic,
        Vital::HeartRate => &mut input.heart_rate,
        Vital::RespiratoryRate => &mut input.respiratory_rate,
        Vital::Temperature => &mut input.temperature,
        Vital::Spo2 => &mut input.spo2,
        Vital::Weight => &mut input.weight,
        Vital::Height => &mut input.height,
        Vital::Bmi => return None,
    })
}

/// A question to ask before saving a value far from the patient's last one.
pub fn question(
    vital: Vital,
    new: f64,
    last: Option<(f64, &str)>,
    adult: bool,
    units: Units,
) -> Option<FieldError> {
    let (last, when) = last?;
    let far = match vital {
        Vital::Weight => (new - last).abs() > 0.2 * last,
        Vital::Height => adult && (new - last).abs() > 5.0,
        _ => false,
    };
    if !far {
        return None;
    }
    let shown = show_in(vital, new, units);
    let before = show_in(vital, last, units);
    // Was it typed in the other unit? (180 typed as kg, meant as lb.)
    let typed_unit = clinic_unit(vital, units);
    let other = match typed_unit {
        Unit::Kg => Unit::Lb,
        Unit::Lb => Unit::Kg,
        Unit::Cm => Unit::In,
        _ => Unit::Cm,
    };
    let typed = typed_unit.shown_from_stored(new);
    let meant = other.to_stored(typed);
    // Offered when reading it in the other unit brings it nearer the last value.
    let (min, max) = vital.bounds();
    let close = (meant - last).abs() < (new - last).abs() && (min..=max).contains(&meant);
    let display = vital.display();
    if close {
        let meant_text = format!("{} {}", show(typed, 2), other.words(vital));
        Some(FieldError::new(
            vital,
            format!(
                "{display} {shown} is far from the last one ({before}, {when}). Did you mean {meant_text} ({})?",
                show_in(vital, meant, Units::Metric)
            ),
            Some(format!("{}{}", show(typed, 2), suffix(other))),
        ))
    } else {
        Some(FieldError::new(
            vital,
            format!("{display} {shown} is far from the last one ({before}, {when}). Is it right?"),
            None,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(vital: Vital, text: &str, units: Units) -> Result<f64, FieldError> {
        read_field(vital, text, units)
    }

    #[test]
    fn values_with_their_unit_are_read_into_ucum_whatever_the_clinic_uses() {
        for units in [Units::Metric, Units::Us] {
            assert_eq!(read(Vital::Weight, "150lb", units), Ok(68.04));
            assert_eq!(read(Vital::Weight, "150 lbs", units), Ok(68.04));
            assert_eq!(read(Vital::Weight, "68 kg", units), Ok(68.0));
            assert_eq!(read(Vital::Temperature, "98.6F", units), Ok(37.0));
            assert_eq!(read(Vital::Temperature, "98.6 °F", units), Ok(37.0));
            assert_eq!(read(Vital::Temperature, "37.2C", units), Ok(37.2));
            assert_eq!(read(Vital::Height, "65in", units), Ok(165.1));
            assert_eq!(read(Vital::Height, "5'5\"", units), Ok(165.1));
            assert_eq!(read(Vital::Height, "5 ft 5 in", units), Ok(165.1));
            assert_eq!(read(Vital::Height, "1.65m", units), Ok(165.0));
            assert_eq!(read(Vital::Systolic, "128 mmHg", units), Ok(128.0));
        }
    }

    #[test]
    fn a_bare_number_is_read_in_the_clinics_units() {
        assert_eq!(read(Vital::Weight, "150", Units::Us), Ok(68.04));
        assert_eq!(read(Vital::Weight, "68", Units::Metric), Ok(68.0));
        assert_eq!(read(Vital::Temperature, "98.6", Units::Us), Ok(37.0));
        assert_eq!(read(Vital::Temperature, "37,2", Units::Metric), Ok(37.2));
        assert_eq!(read(Vital::Height, "65", Units::Us), Ok(165.1));
        // Shown back as typed.
        assert_eq!(show_in(Vital::Weight, 68.04, Units::Us), "150 lb");
        assert_eq!(show_in(Vital::Temperature, 37.0, Units::Us), "98.6 °F");
        assert_eq!(show_in(Vital::Temperature, 37.06, Units::Us), "98.7 °F");
        assert_eq!(show_in(Vital::Height, 165.1, Units::Us), "65 in");
    }

    #[test]
    fn a_value_in_the_other_unit_is_refused_in_words_with_what_was_meant() {
        let e = read(Vital::Temperature, "98.6", Units::Metric).expect_err("not °C");
        assert_eq!(e.field, "temperature");
        assert!(
            e.message.contains("98.6 °C is not possible"),
            "{}",
            e.message
        );
        assert!(
            e.message.contains("Did you mean 98.6 °F (37 °C)?"),
            "{}",
            e.message
        );
        assert!(!e.message.contains("Cel"), "{}", e.message);
        assert_eq!(e.suggestion.as_deref(), Some("98.6F"));
        let e = read(Vital::Temperature, "37", Units::Us).expect_err("not °F");
        assert_eq!(e.suggestion.as_deref(), Some("37C"));
        let e = read(Vital::Weight, "kilo", Units::Metric).expect_err("not a number");
        assert!(e.message.contains("kg or lb"), "{}", e.message);
        assert!(read(Vital::Weight, "150 stone", Units::Metric).is_err());
        assert!(read(Vital::HeartRate, "72kg", Units::Metric).is_err());
        assert!(read(Vital::HeartRate, "72 %", Units::Metric).is_err());
        assert!(read(Vital::Spo2, "98 mmHg", Units::Metric).is_err());
        assert_eq!(read(Vital::HeartRate, "72 bpm", Units::Metric), Ok(72.0));
        // 1,000 is a thousand (and no one weighs it), 37,2 a decimal comma.
        assert!(read(Vital::Weight, "1,000", Units::Metric).is_err());
    }

    #[test]
    fn every_field_is_checked_at_once() {
        let errors = read_form(
            &[
                (Vital::Systolic, "120"),
                (Vital::Temperature, "98.6"),
                (Vital::HeartRate, "fast"),
                (Vital::Weight, "70"),
            ],
            Units::Metric,
        )
        .expect_err("three problems");
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["temperature", "heart_rate", "diastolic"]);
        let ok = read_form(&[(Vital::Weight, "150lb")], Units::Metric).expect("reads");
        assert_eq!(ok.weight, Some(68.04));
        assert!(read_form(&[(Vital::Weight, " ")], Units::Metric).is_err());
        // BMI is never typed (and never lands in another field).
        let bmi = read_form(&[(Vital::Bmi, "25")], Units::Metric).expect_err("derived");
        assert_eq!(bmi[0].field, "bmi");
    }

    #[test]
    fn a_value_far_from_the_last_asks_did_you_mean() {
        // 180 typed as kg after 55.5 kg: pounds typed as kilograms.
        let q = question(
            Vital::Weight,
            180.0,
            Some((55.5, "3 Dec")),
            true,
            Units::Metric,
        )
        .expect("asks");
        assert!(
            q.message.contains("Did you mean 180 lb (81.6 kg)?"),
            "{}",
            q.message
        );
        assert_eq!(q.suggestion.as_deref(), Some("180lb"));
        // Far, but not a unit slip: asked without a suggestion.
        let q = question(
            Vital::Weight,
            75.0,
            Some((55.5, "3 Dec")),
            true,
            Units::Metric,
        )
        .expect("asks");
        assert!(q.suggestion.is_none() && q.message.contains("Is it right?"));
        // Near: no question. Height changes are asked only in adults.
        assert!(question(Vital::Weight, 60.0, Some((55.5, "")), true, Units::Metric).is_none());
        assert!(question(
            Vital::Height,
            150.0,
            Some((165.0, "")),
            false,
            Units::Metric
        )
        .is_none());
        let q =
            question(Vital::Height, 65.0, Some((165.0, "")), true, Units::Metric).expect("asks");
        assert_eq!(q.suggestion.as_deref(), Some("65in"));
        assert!(question(Vital::Weight, 90.0, None, true, Units::Metric).is_none());
    }
}
