//! The USCDI demographics beside name, birth date and sex (ONC 170.315(a)(5)): race and
//! ethnicity as CDC Race & Ethnicity codes grouped under the OMB categories, preferred
//! language (BCP 47), birth sex and sexual orientation, each with the answer "chose not to
//! answer" and, where the value sets have it, "unknown".
//!
//! A form takes a code or its name (`2106-3` or `white`, `es` or `Spanish`); the record keeps
//! the code. The lists are the categories and the detailed codes a clinic in the US most
//! often records; a code not here is refused with the list's words rather than guessed.

use crate::CoreError;

/// The CDC Race & Ethnicity code system, as US Core names it.
pub const CDC_RACE_SYSTEM: &str = "urn:oid:2.16.840.1.113883.6.238";
/// HL7's null flavours: ASKU (asked, no answer), UNK (unknown), OTH (other).
pub const NULL_FLAVOR_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/v3-NullFlavor";

/// A code with its display and, for a detailed code, the OMB category it rolls up to (a
/// category's own is itself).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Coded {
    pub code: &'static str,
    pub display: &'static str,
    pub category: &'static str,
}

const fn c(code: &'static str, display: &'static str, category: &'static str) -> Coded {
    Coded {
        code,
        display,
        category,
    }
}

/// "Chose not to answer" and "unknown": allowed alone, for race and ethnicity.
pub const DECLINED: Coded = c("ASKU", "Chose not to answer", "ASKU");
pub const UNKNOWN: Coded = c("UNK", "Unknown", "UNK");

const AIAN: &str = "1002-5";
const ASIAN: &str = "2028-9";
const BLACK: &str = "2054-5";
const NHPI: &str = "2076-8";
const WHITE: &str = "2106-3";

/// The five OMB race categories first, then detailed codes under them.
pub const RACES: &[Coded] = &[
    c(AIAN, "American Indian or Alaska Native", AIAN),
    c(ASIAN, "Asian", ASIAN),
    c(BLACK, "Black or African American", BLACK),
    c(NHPI, "Native Hawaiian or Other Pacific Islander", NHPI),
    c(WHITE, "White", WHITE),
    c("1004-1", "American Indian", AIAN),
    c("1735-0", "Alaska Native", AIAN),
    c("2029-7", "Asian Indian", ASIAN),
    c("2030-5", "Bangladeshi", ASIAN),
    c("2032-1", "Burmese", ASIAN),
    c("2033-9", "Cambodian", ASIAN),
    c("2034-7", "Chinese", ASIAN),
    c("2036-2", "Filipino", ASIAN),
    c("2037-0", "Hmong", ASIAN),
    c("2038-8", "Indonesian", ASIAN),
    c("2039-6", "Japanese", ASIAN),
    c("2040-4", "Korean", ASIAN),
    c("2041-2", "Laotian", ASIAN),
    c("2044-6", "Pakistani", ASIAN),
    c("2045-3", "Sri Lankan", ASIAN),
    c("2046-1", "Thai", ASIAN),
    c("2047-9", "Vietnamese", ASIAN),
    c("2058-6", "African American", BLACK),
    c("2060-2", "African", BLACK),
    c("2071-9", "Haitian", BLACK),
    c("2072-7", "Jamaican", BLACK),
    c("2079-2", "Native Hawaiian", NHPI),
    c("2080-0", "Samoan", NHPI),
    c("2086-7", "Guamanian or Chamorro", NHPI),
    c("2108-9", "European", WHITE),
    c("2118-8", "Middle Eastern or North African", WHITE),
];

const HISPANIC: &str = "2135-2";
const NOT_HISPANIC: &str = "2186-5";

/// The two OMB ethnicity categories, then detailed Hispanic or Latino origins.
pub const ETHNICITIES: &[Coded] = &[
    c(HISPANIC, "Hispanic or Latino", HISPANIC),
    c(NOT_HISPANIC, "Not Hispanic or Latino", NOT_HISPANIC),
    c("2148-5", "Mexican", HISPANIC),
    c("2180-8", "Puerto Rican", HISPANIC),
    c("2182-4", "Cuban", HISPANIC),
    c("2184-0", "Dominican", HISPANIC),
    c("2155-0", "Central American", HISPANIC),
    c("2165-9", "South American", HISPANIC),
    c("2137-8", "Spaniard", HISPANIC),
];

/// Preferred languages (BCP 47), the ones US clinics most often record.
pub const LANGUAGES: &[(&str, &str)] = &[
    ("en", "English"),
    ("es", "Spanish"),
    ("zh", "Chinese"),
    ("vi", "Vietnamese"),
    ("tl", "Tagalog"),
    ("ar", "Arabic"),
    ("fr", "French"),
    ("ko", "Korean"),
    ("ru", "Russian"),
    ("de", "German"),
    ("ht", "Haitian Creole"),
    ("pt", "Portuguese"),
    ("it", "Italian"),
    ("pl", "Polish"),
    ("hi", "Hindi"),
    ("ja", "Japanese"),
    ("fa", "Persian"),
    ("ur", "Urdu"),
    ("bn", "Bengali"),
    ("pa", "Punjabi"),
    ("so", "Somali"),
    ("am", "Amharic"),
    ("uk", "Ukrainian"),
    ("el", "Greek"),
    ("he", "Hebrew"),
    ("hy", "Armenian"),
    ("km", "Khmer"),
    ("lo", "Lao"),
    ("hmn", "Hmong"),
    ("ne", "Nepali"),
    ("my", "Burmese"),
    ("sw", "Swahili"),
    ("ase", "American Sign Language"),
    ("nv", "Navajo"),
];

/// US Core's birth sex: female, male or unknown.
pub const BIRTH_SEXES: &[(&str, &str)] = &[("F", "Female"), ("M", "Male"), ("UNK", "Unknown")];

/// The SNOMED CT system.
pub const SNOMED: &str = "http://snomed.info/sct";

/// US Core's sexual orientation value set: the code, its display in the code system, and
/// the words a form shows.
pub const SEXUAL_ORIENTATIONS: &[(&str, &str, &str)] = &[
    (
        "20430005",
        "Heterosexual (finding)",
        "Straight or heterosexual",
    ),
    ("38628009", "Homosexual (finding)", "Lesbian or gay"),
    ("42035005", "Bisexual (finding)", "Bisexual"),
    ("OTH", "other", "Something else"),
    ("UNK", "unknown", "Don't know"),
    ("ASKU", "asked but no answer", "Chose not to answer"),
];

/// The system a sexual orientation code belongs to.
pub fn sexual_orientation_system(code: &str) -> &'static str {
    if code.chars().all(|c| c.is_ascii_digit()) {
        SNOMED
    } else {
        NULL_FLAVOR_SYSTEM
    }
}

fn words(s: &str) -> String {
    s.trim()
        .to_lowercase()
        .replace(['_', '-'], " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Typed text quoted back in an error, cut to 40 characters.
fn short(s: &str) -> String {
    s.chars().take(40).collect()
}

/// One code from a list by code (any case) or by its words.
fn pick<'a, T: Copy>(list: &'a [T], text: &str, key: impl Fn(&T) -> [&'a str; 3]) -> Option<&'a T> {
    let t = text.trim();
    let w = words(t);
    list.iter().find(|item| {
        let [code, a, b] = key(item);
        code.eq_ignore_ascii_case(t) || words(a) == w || words(b) == w
    })
}

fn declined_or_unknown(text: &str) -> Option<Coded> {
    let w = words(text);
    [DECLINED, UNKNOWN].into_iter().find(|x| {
        x.code.eq_ignore_ascii_case(text.trim())
            || words(x.display) == w
            || (x.code == "ASKU" && (w == "declined" || w == "asked but no answer"))
    })
}

/// Comma- or semicolon-separated codes or names, checked against `list`, in the list's
/// order without repeats. "Chose not to answer" or "unknown" stand alone.
fn coded_list(field: &str, list: &[Coded], text: &str) -> Result<Vec<String>, CoreError> {
    let parts: Vec<&str> = text
        .split([',', ';'])
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    let mut picked: Vec<Coded> = Vec::new();
    for p in &parts {
        let found = pick(list, p, |x| [x.code, x.display, x.display])
            .copied()
            .or_else(|| declined_or_unknown(p))
            .ok_or_else(|| {
                CoreError::InvalidInput(format!(
                    "The {field} \"{}\" is not one Chartroom knows: use a CDC code or name \
                     such as {}, or \"chose not to answer\".",
                    short(p),
                    list.iter()
                        .take(5)
                        .map(|x| x.display)
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?;
        if !picked.contains(&found) {
            picked.push(found);
        }
    }
    if picked.len() > 1 && picked.iter().any(|x| x.code == "ASKU" || x.code == "UNK") {
        return Err(CoreError::InvalidInput(format!(
            "The {field} is either answered or \"chose not to answer\" / \"unknown\", not both."
        )));
    }
    let order = |x: &Coded| {
        list.iter()
            .position(|y| y.code == x.code)
            .unwrap_or(usize::MAX)
    };
    picked.sort_by_key(order);
    Ok(picked.into_iter().map(|x| x.code.to_owned()).collect())
}

/// Race: one or more OMB categories and detailed codes.
pub fn races(text: &str) -> Result<Vec<String>, CoreError> {
    coded_list("race", RACES, text)
}

/// Ethnicity: Hispanic or Latino (with detailed origins) or not, never both.
pub fn ethnicities(text: &str) -> Result<Vec<String>, CoreError> {
    let codes = coded_list("ethnicity", ETHNICITIES, text)?;
    let hispanic = codes
        .iter()
        .any(|c| ethnicity(c).is_some_and(|e| e.category == HISPANIC));
    if hispanic && codes.iter().any(|c| c == NOT_HISPANIC) {
        return Err(CoreError::InvalidInput(
            "The ethnicity is Hispanic or Latino or not Hispanic or Latino, not both.".into(),
        ));
    }
    Ok(codes)
}

/// A race code's entry (declined and unknown included).
pub fn race(code: &str) -> Option<Coded> {
    RACES
        .iter()
        .copied()
        .chain([DECLINED, UNKNOWN])
        .find(|x| x.code == code)
}

/// An ethnicity code's entry (declined and unknown included).
pub fn ethnicity(code: &str) -> Option<Coded> {
    ETHNICITIES
        .iter()
        .copied()
        .chain([DECLINED, UNKNOWN])
        .find(|x| x.code == code)
}

/// A preferred language: its BCP 47 code or its English name.
pub fn language(text: &str) -> Result<String, CoreError> {
    pick(LANGUAGES, text, |(code, name)| [code, name, name])
        .map(|(code, _)| (*code).to_owned())
        .ok_or_else(|| {
            CoreError::InvalidInput(format!(
                "The preferred language \"{}\" is not one Chartroom knows: use its name or \
                 code, such as English (en), Spanish (es) or Chinese (zh).",
                short(text.trim())
            ))
        })
}

pub fn language_name(code: &str) -> Option<&'static str> {
    LANGUAGES.iter().find(|(c, _)| *c == code).map(|(_, n)| *n)
}

/// Birth sex: F, M or UNK (female, male, unknown).
pub fn birth_sex(text: &str) -> Result<String, CoreError> {
    pick(BIRTH_SEXES, text, |(code, name)| [code, name, name])
        .map(|(code, _)| (*code).to_owned())
        .ok_or_else(|| {
            CoreError::InvalidInput(
                "The sex assigned at birth is female (F), male (M) or unknown (UNK).".into(),
            )
        })
}

pub fn birth_sex_name(code: &str) -> Option<&'static str> {
    BIRTH_SEXES
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, n)| *n)
}

/// Sexual orientation: a SNOMED CT code or null flavour, or the form's words.
pub fn sexual_orientation(text: &str) -> Result<String, CoreError> {
    let w = words(text);
    let alias = match w.as_str() {
        "heterosexual" | "straight" => Some("20430005"),
        "gay" | "lesbian" | "homosexual" => Some("38628009"),
        "other" => Some("OTH"),
        "unknown" | "dont know" | "don't know" => Some("UNK"),
        "declined" => Some("ASKU"),
        _ => None,
    };
    alias
        .or_else(|| {
            pick(SEXUAL_ORIENTATIONS, text, |(code, display, shown)| {
                [code, display, shown]
            })
            .map(|(code, ..)| *code)
        })
        .map(str::to_owned)
        .ok_or_else(|| {
            CoreError::InvalidInput(
                "The sexual orientation is one of: straight or heterosexual, lesbian or gay, \
                 bisexual, something else, don't know, chose not to answer."
                    .into(),
            )
        })
}

/// The words a form shows for a sexual orientation code.
pub fn sexual_orientation_words(code: &str) -> Option<&'static str> {
    SEXUAL_ORIENTATIONS
        .iter()
        .find(|(c, ..)| *c == code)
        .map(|(_, _, w)| *w)
}

/// The code system's display for a sexual orientation code.
pub fn sexual_orientation_display(code: &str) -> Option<&'static str> {
    SEXUAL_ORIENTATIONS
        .iter()
        .find(|(c, ..)| *c == code)
        .map(|(_, d, _)| *d)
}

/// Race or ethnicity codes as words: "Asian, Chinese".
pub fn coded_words(codes: &[String], lookup: fn(&str) -> Option<Coded>) -> String {
    codes
        .iter()
        .map(|c| lookup(c).map_or(c.as_str(), |x| x.display))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn race_takes_codes_and_names_in_any_case_in_the_lists_order_without_repeats() {
        assert_eq!(
            races("chinese, 2106-3; White, ASIAN").expect("valid"),
            ["2028-9", "2106-3", "2034-7"]
        );
        assert_eq!(races("declined").expect("valid"), ["ASKU"]);
        assert_eq!(races(" unknown ").expect("valid"), ["UNK"]);
        let e = races("Martian").expect_err("refused").to_string();
        assert!(e.contains("\"Martian\" is not one Chartroom knows"), "{e}");
        assert!(races("White, chose not to answer").is_err());
        // Every detailed code rolls up to a category in the list.
        for r in RACES {
            assert!(RACES
                .iter()
                .any(|x| x.code == r.category && x.category == x.code));
        }
    }

    #[test]
    fn ethnicity_is_hispanic_with_origins_or_not_never_both() {
        assert_eq!(ethnicities("Mexican").expect("valid"), ["2148-5"]);
        assert_eq!(
            ethnicities("puerto rican, hispanic or latino").expect("valid"),
            ["2135-2", "2180-8"]
        );
        assert_eq!(ethnicities("2186-5").expect("valid"), ["2186-5"]);
        assert!(ethnicities("Cuban, not hispanic or latino").is_err());
    }

    #[test]
    fn language_birth_sex_and_sexual_orientation_take_codes_or_words() {
        assert_eq!(language("Spanish").expect("valid"), "es");
        assert_eq!(language("ZH").expect("valid"), "zh");
        assert_eq!(language("haitian creole").expect("valid"), "ht");
        assert!(language("Klingon").is_err());
        assert_eq!(birth_sex("female").expect("valid"), "F");
        assert_eq!(birth_sex("unk").expect("valid"), "UNK");
        assert!(birth_sex("x").is_err());
        assert_eq!(sexual_orientation("straight").expect("valid"), "20430005");
        assert_eq!(
            sexual_orientation("Lesbian or gay").expect("valid"),
            "38628009"
        );
        assert_eq!(sexual_orientation("42035005").expect("valid"), "42035005");
        assert_eq!(
            sexual_orientation("chose not to answer").expect("valid"),
            "ASKU"
        );
        assert_eq!(sexual_orientation_system("OTH"), NULL_FLAVOR_SYSTEM);
        assert_eq!(sexual_orientation_system("42035005"), SNOMED);
        assert!(sexual_orientation("yes").is_err());
    }
}
