//! The allergy cross-check: a new medication against the patient's active allergies, and a
//! new allergy against their current medications, by name and by drug class (the table in
//! `data/drug_classes.txt`, with its sources). A match is refused as `allergy_conflict`
//! naming the allergy, its severity and the class; saving anyway takes a reason, recorded
//! with the item.

use std::sync::OnceLock;

use super::allergy::{Allergy, Severity};
use super::patient::fold;

struct Class {
    name: String,
    allergy_terms: Vec<String>,
    drugs: Vec<String>,
    related: Vec<String>,
}

const TABLE: &str = include_str!("../../data/drug_classes.txt");

/// Text as whole words, padded: " amoxicillin 500 mg ".
fn words(text: &str) -> String {
    let folded: String = fold(text)
        .chars()
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect();
    format!(
        " {} ",
        folded.split_whitespace().collect::<Vec<_>>().join(" ")
    )
}

fn has(text: &str, term: &str) -> bool {
    let t = words(term);
    t.trim().chars().count() >= 3 && text.contains(&t)
}

fn table() -> &'static [Class] {
    static CLASSES: OnceLock<Vec<Class>> = OnceLock::new();
    CLASSES.get_or_init(|| {
        let list = |s: &str| {
            s.split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        TABLE
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .filter_map(|l| {
                let f: Vec<&str> = l.split('|').map(str::trim).collect();
                (f.len() == 5).then(|| Class {
                    name: f[0].to_owned(),
                    allergy_terms: list(f[2]),
                    drugs: list(f[3]),
                    related: list(f[4]),
                })
            })
            .collect()
    })
}

/// Why a drug and an allergy do not go together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Conflict {
    pub allergy: String,
    pub severity: Option<Severity>,
    /// The class they share (or the allergy's class and the drug's related class).
    pub class: Option<String>,
    pub how: How,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum How {
    SameName,
    SameClass,
    RelatedClass,
}

/// Whether `drug` conflicts with an allergy to `substance`.
pub(crate) fn conflict(
    substance: &str,
    severity: Option<Severity>,
    drug: &str,
) -> Option<Conflict> {
    let (s, d) = (words(substance), words(drug));
    let make = |class: Option<String>, how| Conflict {
        allergy: substance.to_owned(),
        severity,
        class,
        how,
    };
    if s == d || has(&d, substance) || has(&s, drug) {
        let class = table()
            .iter()
            .find(|c| c.drugs.iter().any(|m| has(&d, m)))
            .map(|c| c.name.clone());
        return Some(make(class, How::SameName));
    }
    let allergy_classes: Vec<&Class> = table()
        .iter()
        .filter(|c| {
            c.allergy_terms.iter().any(|t| has(&s, t)) || c.drugs.iter().any(|m| has(&s, m))
        })
        .collect();
    let drug_classes: Vec<&Class> = table()
        .iter()
        .filter(|c| c.drugs.iter().any(|m| has(&d, m)))
        .collect();
    for a in &allergy_classes {
        if let Some(c) = drug_classes.iter().find(|c| c.name == a.name) {
            return Some(make(Some(c.name.clone()), How::SameClass));
        }
    }
    for a in &allergy_classes {
        if let Some(c) = drug_classes.iter().find(|c| a.related.contains(&c.name)) {
            return Some(make(
                Some(format!("{} (related to {})", c.name, a.name)),
                How::RelatedClass,
            ));
        }
    }
    None
}

/// The conflicts of `drug` with a patient's active allergies.
pub(crate) fn against_allergies(allergies: &[Allergy], drug: &str) -> Vec<Conflict> {
    allergies
        .iter()
        .filter(|a| a.status == "active")
        .filter_map(|a| conflict(&a.substance, a.severity, drug))
        .collect()
}

/// The message a clinician reads: which allergy, how severe, which class.
pub(crate) fn message(drug: &str, conflicts: &[Conflict]) -> String {
    let each = conflicts
        .iter()
        .map(|c| {
            let severity = c
                .severity
                .map(|s| format!("{} ", s.as_str()))
                .unwrap_or_default();
            let why = match (c.how, &c.class) {
                (How::SameName, _) => "the same drug".to_owned(),
                (How::SameClass, Some(class)) => format!("the same class: {class}"),
                (How::RelatedClass, Some(class)) => {
                    format!("a class that can cross-react: {class}")
                }
                (_, None) => "a related drug".to_owned(),
            };
            format!("a {severity}allergy to {} ({why})", c.allergy)
        })
        .collect::<Vec<_>>()
        .join("; ");
    format!(
        "{drug} may not be safe for this patient: {each}. Save it only with a reason for going ahead."
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn how(substance: &str, drug: &str) -> Option<(How, Option<String>)> {
        conflict(substance, Some(Severity::Severe), drug).map(|c| (c.how, c.class))
    }

    #[test]
    fn the_table_holds_every_class_the_clinic_asked_for() {
        let names: Vec<&str> = table().iter().map(|c| c.name.as_str()).collect();
        for wanted in [
            "penicillins",
            "cephalosporins",
            "sulfonamide antibiotics",
            "nsaids and aspirin",
            "opioids",
            "macrolides",
            "fluoroquinolones",
            "ace inhibitors",
            "statins",
            "iodinated contrast",
            "latex",
        ] {
            assert!(names.contains(&wanted), "{wanted} missing from {names:?}");
        }
        assert!(table().iter().all(|c| !c.drugs.is_empty()));
    }

    #[test]
    fn names_classes_and_cross_reacting_classes_are_caught() {
        assert_eq!(
            how("Penicillin", "Amoxicillin 500 mg"),
            Some((How::SameClass, Some("penicillins".into())))
        );
        assert_eq!(
            how("amoxicillin", "Amoxicillin"),
            Some((How::SameName, Some("penicillins".into())))
        );
        assert_eq!(
            how("Ampicillin", "amoxicillin"),
            Some((How::SameClass, Some("penicillins".into())))
        );
        assert_eq!(
            how("Penicillin", "Cefalexin").map(|h| h.0),
            Some(How::RelatedClass)
        );
        assert_eq!(
            how("Sulfa drugs", "Bactrim DS").map(|h| h.0),
            Some(How::SameClass)
        );
        assert_eq!(
            how("Aspirin", "Ibuprofen").map(|h| h.0),
            Some(How::SameClass)
        );
        assert_eq!(how("NSAIDs", "Naproxen").map(|h| h.0), Some(How::SameClass));
        assert_eq!(
            how("Codeine", "Morphine").map(|h| h.0),
            Some(How::SameClass)
        );
        assert_eq!(
            how("Lisinopril", "Enalapril").map(|h| h.0),
            Some(How::SameClass)
        );
        assert_eq!(
            how("Statins", "Atorvastatin").map(|h| h.0),
            Some(How::SameClass)
        );
        assert_eq!(
            how("Ciprofloxacin", "Levofloxacin").map(|h| h.0),
            Some(How::SameClass)
        );
        assert_eq!(
            how("Erythromycin", "Azithromycin").map(|h| h.0),
            Some(How::SameClass)
        );
        assert_eq!(
            how("Contrast dye", "Iohexol").map(|h| h.0),
            Some(How::SameClass)
        );
        // Unrelated drugs, and words that only contain a name, are not matched.
        assert_eq!(how("Penicillin", "Metformin"), None);
        assert_eq!(how("Peanut", "Amoxicillin"), None);
        assert_eq!(how("Cats", "Acetaminophen"), None);
        assert_eq!(how("Sulfa drugs", "Sulfur ointment"), None);
    }

    #[test]
    fn the_message_names_the_allergy_its_severity_and_the_class() {
        let c = conflict("Penicillin", Some(Severity::Severe), "Amoxicillin").expect("conflict");
        let m = message("Amoxicillin", &[c]);
        assert!(m.contains("severe allergy to Penicillin"), "{m}");
        assert!(m.contains("penicillins"), "{m}");
    }
}
