//! Synthetic clinics: a deterministic generator of realistic, obviously fictional records for
//! demos, tests and benchmarks.
//!
//! The same seed and reference date always give the same clinic. Names are drawn from many
//! origins and combined at random; phone numbers use the 555-01xx range reserved for fiction,
//! email addresses use example.org (RFC 2606), addresses are on Example and Sample streets,
//! and every note says it is synthetic. Nothing here is a real person's record.

use chartroom_audit::format_time;
use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use rusqlite::{params, Connection};
use serde::Serialize;

use crate::audit::Op;
use crate::patients::{self, Demographics, EmergencyContact, Sex};
use crate::record::NoteKind;
use crate::roles::Permission;
use crate::vitals::{bmi, Vital};
use crate::{CoreError, Session};

/// Patients written per transaction (and per audit entry).
const BATCH: u32 = 250;

/// What a generated clinic holds.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq, ts_rs::TS)]
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

/// SplitMix64: small, fast, and the same on every platform and version.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// Roughly normal (sum of uniforms), mean 0, sd 1.
    fn gauss(&mut self) -> f64 {
        (0..6).map(|_| self.unit()).sum::<f64>() * std::f64::consts::SQRT_2
            - 6.0 * std::f64::consts::FRAC_1_SQRT_2
    }
}

const FAMILY: &[&str] = &[
    "Okafor",
    "Adeyemi",
    "Mensah",
    "Nkemelu",
    "Abebe",
    "Haddad",
    "Nasser",
    "Khalil",
    "Yilmaz",
    "Özdemir",
    "Demir",
    "Nguyễn",
    "Trần",
    "Phạm",
    "Lê",
    "Wang",
    "Li",
    "Zhang",
    "Chen",
    "Liu",
    "Tanaka",
    "Suzuki",
    "Watanabe",
    "Kim",
    "Park",
    "Choi",
    "Patel",
    "Sharma",
    "Singh",
    "Iyer",
    "Reddy",
    "Khan",
    "Hussain",
    "Rahman",
    "García",
    "Martínez",
    "Rodríguez",
    "Núñez",
    "Hernández",
    "López",
    "Gonçalves",
    "Silva",
    "Santos",
    "Oliveira",
    "Rossi",
    "Bianchi",
    "Esposito",
    "Romano",
    "Dubois",
    "Lefèvre",
    "Moreau",
    "Fournier",
    "Müller",
    "Schmidt",
    "Schneider",
    "Fischer",
    "Weiß",
    "Becker",
    "Novák",
    "Dvořák",
    "Kowalski",
    "Nowak",
    "Wiśniewski",
    "Łukasiewicz",
    "Ivanova",
    "Petrov",
    "Smirnova",
    "Kuznetsov",
    "Horváth",
    "Nagy",
    "Popescu",
    "Ionescu",
    "Papadopoulos",
    "Georgiou",
    "Johansson",
    "Andersson",
    "Nielsen",
    "Søndergaard",
    "Hansen",
    "Virtanen",
    "Korhonen",
    "O'Brien",
    "Murphy",
    "Kelly",
    "Walsh",
    "MacLeod",
    "Campbell",
    "Smith",
    "Jones",
    "Williams",
    "Brown",
    "Taylor",
    "Davies",
    "Evans",
    "Wilson",
    "Johnson",
    "Miller",
    "Anderson",
    "Thompson",
    "White",
    "Harris",
    "van der Berg",
    "de Vries",
    "Jansen",
    "Bakker",
    "Cohen",
    "Levi",
    "Friedman",
    "Ali",
    "Mohammed",
    "Ahmed",
    "Tesfaye",
    "Girma",
    "Kamau",
    "Otieno",
    "Wanjiru",
    "Dlamini",
    "Ndlovu",
    "Mokoena",
    "Santiago",
    "Reyes",
    "Cruz",
    "Bautista",
    "Kaur",
    "Gill",
    "Begum",
    "Karimi",
    "Hosseini",
    "Rahimi",
    "Tóth",
    "Szabó",
    "Kovačević",
    "Horvat",
    "Jovanović",
    "Petrović",
    "Smith-Jones",
    "Lindqvist",
    "Bergström",
    "Aalto",
    "Fonseca",
    "Carvalho",
];

const GIVEN_FEMALE: &[&str] = &[
    "Ada",
    "Amara",
    "Chioma",
    "Ngozi",
    "Abena",
    "Fatima",
    "Layla",
    "Yasmin",
    "Zeynep",
    "Elif",
    "Linh",
    "Mai",
    "Mei",
    "Xiu",
    "Yuki",
    "Hana",
    "Ji-woo",
    "Seo-yeon",
    "Priya",
    "Ananya",
    "Aisha",
    "Sofia",
    "Lucía",
    "María José",
    "Camila",
    "Beatriz",
    "Giulia",
    "Chiara",
    "Chloé",
    "Amélie",
    "Anna",
    "Lena",
    "Hannah",
    "Zofia",
    "Agnieszka",
    "Olga",
    "Tatiana",
    "Ioana",
    "Eleni",
    "Ingrid",
    "Astrid",
    "Saoirse",
    "Siobhan",
    "Emily",
    "Grace",
    "Olivia",
    "Charlotte",
    "Ruth",
    "Miriam",
    "Noa",
    "Wanjiku",
    "Thandiwe",
    "Rosa",
    "Imani",
    "Leila",
    "Maryam",
    "Harpreet",
    "Nadia",
    "Réka",
    "Marta",
    "Ines",
    "Aino",
];

const GIVEN_MALE: &[&str] = &[
    "Chidi",
    "Emeka",
    "Kwame",
    "Kofi",
    "Tesfaye",
    "Omar",
    "Karim",
    "Yusuf",
    "Emre",
    "Mehmet",
    "Minh",
    "Duc",
    "Wei",
    "Jun",
    "Haruto",
    "Ren",
    "Min-jun",
    "Arjun",
    "Rohan",
    "Vikram",
    "Imran",
    "Mateo",
    "José",
    "Alejandro",
    "João",
    "Luca",
    "Marco",
    "Louis",
    "Théo",
    "Jonas",
    "Lukas",
    "Felix",
    "Tomasz",
    "Jakub",
    "Piotr",
    "Dmitri",
    "Ivan",
    "Andrei",
    "Nikos",
    "Erik",
    "Lars",
    "Mikko",
    "Liam",
    "Seán",
    "Oliver",
    "James",
    "Daniel",
    "David",
    "Samuel",
    "Noah",
    "Kamau",
    "Sipho",
    "Thabo",
    "Miguel",
    "Rafael",
    "Hamza",
    "Reza",
    "Bence",
    "Goran",
    "Eitan",
];

const STREETS: &[&str] = &[
    "Example",
    "Sample",
    "Specimen",
    "Placeholder",
    "Fictional",
    "Mock",
];
const STREET_KINDS: &[&str] = &["Street", "Lane", "Road", "Avenue", "Close", "Way"];
const TOWNS: &[&str] = &[
    "Exampleton",
    "Sampleford",
    "Demo Heights",
    "Testbury",
    "Mockham",
];
const AREA_CODES: &[&str] = &["202", "312", "415", "617", "303", "512", "206", "404"];
const CLINICIANS: &[&str] = &[
    "Dr A. Rivera (demo)",
    "Dr K. Osei (demo)",
    "Dr M. Lindqvist (demo)",
];
const NURSES: &[&str] = &["Nurse P. Okonjo (demo)", "Nurse S. Park (demo)"];

/// A chronic condition with its code and the medication that treats it.
struct Condition {
    text: &'static str,
    icd10: &'static str,
    min_age: u32,
    prevalence: f64,
    medication: (&'static str, &'static str, &'static str, &'static str),
}

const CONDITIONS: &[Condition] = &[
    Condition {
        text: "Essential hypertension",
        icd10: "I10",
        min_age: 35,
        prevalence: 0.30,
        medication: ("Amlodipine", "5 mg", "oral", "once daily"),
    },
    Condition {
        text: "Type 2 diabetes mellitus",
        icd10: "E11.9",
        min_age: 35,
        prevalence: 0.11,
        medication: ("Metformin", "500 mg", "oral", "twice daily"),
    },
    Condition {
        text: "Hyperlipidaemia",
        icd10: "E78.5",
        min_age: 40,
        prevalence: 0.18,
        medication: ("Atorvastatin", "20 mg", "oral", "once daily at night"),
    },
    Condition {
        text: "Asthma",
        icd10: "J45.9",
        min_age: 4,
        prevalence: 0.08,
        medication: (
            "Salbutamol inhaler",
            "100 micrograms, 2 puffs",
            "inhaled",
            "as needed",
        ),
    },
    Condition {
        text: "Hypothyroidism",
        icd10: "E03.9",
        min_age: 25,
        prevalence: 0.05,
        medication: (
            "Levothyroxine",
            "75 micrograms",
            "oral",
            "once daily before breakfast",
        ),
    },
    Condition {
        text: "Depressive episode",
        icd10: "F32.9",
        min_age: 16,
        prevalence: 0.07,
        medication: ("Sertraline", "50 mg", "oral", "once daily"),
    },
    Condition {
        text: "Chronic obstructive pulmonary disease",
        icd10: "J44.9",
        min_age: 50,
        prevalence: 0.05,
        medication: (
            "Tiotropium inhaler",
            "2.5 micrograms, 2 puffs",
            "inhaled",
            "once daily",
        ),
    },
    Condition {
        text: "Atrial fibrillation",
        icd10: "I48.9",
        min_age: 60,
        prevalence: 0.05,
        medication: ("Apixaban", "5 mg", "oral", "twice daily"),
    },
    Condition {
        text: "Osteoarthritis of knee",
        icd10: "M17.9",
        min_age: 50,
        prevalence: 0.12,
        medication: (
            "Paracetamol",
            "1 g",
            "oral",
            "up to four times daily as needed",
        ),
    },
];

const ACUTE_REASONS: &[(&str, &str, &str)] = &[
    (
        "Cough for five days",
        "Dry cough, no fever, no breathlessness.",
        "Viral upper respiratory tract infection",
    ),
    (
        "Sore throat",
        "Sore throat for three days, eating and drinking.",
        "Viral pharyngitis",
    ),
    (
        "Lower back pain",
        "Back pain after lifting, no red flags.",
        "Mechanical low back pain",
    ),
    (
        "Rash on forearm",
        "Itchy rash for a week, new washing powder.",
        "Contact dermatitis",
    ),
    (
        "Headache",
        "Intermittent tension-type headaches, no neurological symptoms.",
        "Tension-type headache",
    ),
    ("Ear pain", "Left ear pain since a cold.", "Otitis media"),
    (
        "Annual review",
        "Feels well, no new concerns.",
        "Routine review",
    ),
    (
        "Travel vaccination advice",
        "Travelling next month.",
        "Pre-travel consultation",
    ),
    (
        "Sprained ankle",
        "Twisted ankle playing football, able to bear weight.",
        "Ankle sprain",
    ),
    (
        "Tiredness",
        "Tired for a month, sleeping poorly.",
        "Fatigue, likely sleep related",
    ),
];

const ALLERGENS: &[(&str, &str, &str, &str)] = &[
    ("Penicillin", "Hives", "moderate", "medication"),
    ("Amoxicillin", "Rash", "mild", "medication"),
    ("Sulfonamides", "Rash and fever", "moderate", "medication"),
    ("Aspirin", "Wheeze", "moderate", "medication"),
    ("Ibuprofen", "Stomach upset", "mild", "medication"),
    ("Codeine", "Nausea and vomiting", "mild", "medication"),
    ("Peanut", "Anaphylaxis", "severe", "food"),
    ("Shellfish", "Lip swelling", "severe", "food"),
    ("Egg", "Hives", "mild", "food"),
    ("Latex", "Contact dermatitis", "moderate", "environment"),
    ("Bee venom", "Anaphylaxis", "severe", "environment"),
    ("House dust mite", "Rhinitis", "mild", "environment"),
];

struct Vaccine {
    name: &'static str,
    cvx: &'static str,
}

const FLU: Vaccine = Vaccine {
    name: "Influenza, seasonal, injectable",
    cvx: "141",
};
const TDAP: Vaccine = Vaccine {
    name: "Tdap (tetanus, diphtheria, acellular pertussis)",
    cvx: "115",
};
const PNEUMO: Vaccine = Vaccine {
    name: "Pneumococcal conjugate PCV20",
    cvx: "216",
};
const COVID: Vaccine = Vaccine {
    name: "COVID-19 mRNA vaccine",
    cvx: "208",
};
const MMR: Vaccine = Vaccine {
    name: "MMR (measles, mumps, rubella)",
    cvx: "03",
};
const DTAP: Vaccine = Vaccine {
    name: "DTaP",
    cvx: "20",
};
const HPV: Vaccine = Vaccine {
    name: "HPV, 9-valent",
    cvx: "165",
};
const ZOSTER: Vaccine = Vaccine {
    name: "Zoster recombinant",
    cvx: "187",
};

/// One patient's vital-sign baseline, so values trend instead of jumping.
struct Baseline {
    systolic: f64,
    diastolic: f64,
    heart_rate: f64,
    weight: f64,
    height: f64,
}

/// Prepared statements for one batch.
struct Writer<'c> {
    patient: rusqlite::CachedStatement<'c>,
    word: rusqlite::CachedStatement<'c>,
    version: rusqlite::CachedStatement<'c>,
    encounter: rusqlite::CachedStatement<'c>,
    note: rusqlite::CachedStatement<'c>,
    observation: rusqlite::CachedStatement<'c>,
    problem: rusqlite::CachedStatement<'c>,
    allergy: rusqlite::CachedStatement<'c>,
    medication: rusqlite::CachedStatement<'c>,
    immunization: rusqlite::CachedStatement<'c>,
}

impl<'c> Writer<'c> {
    fn new(conn: &'c Connection) -> Result<Writer<'c>, CoreError> {
        Ok(Writer {
            patient: conn.prepare_cached(
                "INSERT INTO patients (mrn, family, given, preferred_name, birth_date, sex, gender_identity,
                    phone, phone_digits, email, address, emergency_name, emergency_phone, emergency_relation,
                    restricted, allergy_state, allergy_state_at, allergy_state_by, created_at, created_by,
                    updated_at, updated_by)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?17, ?18, ?17, ?18)",
            )?,
            word: conn.prepare_cached(
                "INSERT OR IGNORE INTO patient_name_words (word, patient_id, field) VALUES (?1, ?2, ?3)",
            )?,
            version: conn.prepare_cached(
                "INSERT INTO patient_versions (patient_id, version, data, changed_at, changed_by) VALUES (?1, 1, ?2, ?3, ?4)",
            )?,
            encounter: conn.prepare_cached(
                "INSERT INTO encounters (patient_id, start, kind, clinician, reason, created_at, created_by)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?2, ?4)",
            )?,
            note: conn.prepare_cached(
                "INSERT INTO notes (patient_id, encounter_id, kind, parent_id, author, format, text,
                    subjective, objective, assessment, plan, status, created_at, updated_at, signed_by,
                    signed_at, content_sha256)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 'signed', ?12, ?12, ?5, ?12, ?13)",
            )?,
            observation: conn.prepare_cached(
                "INSERT INTO observations (patient_id, encounter_id, code, value, unit, effective, flag, recorded_by, recorded_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?6)",
            )?,
            problem: conn.prepare_cached(
                "INSERT INTO problems (patient_id, text, system, code, status, onset, resolved_on, recorded_by, recorded_at, updated_by, updated_at)
                 VALUES (?1, ?2, 'icd10', ?3, ?4, ?5, ?6, ?7, ?8, ?7, ?8)",
            )?,
            allergy: conn.prepare_cached(
                "INSERT INTO allergies (patient_id, substance, reaction, severity, category, status, recorded_by, recorded_at, updated_by, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'active', ?6, ?7, ?6, ?7)",
            )?,
            medication: conn.prepare_cached(
                "INSERT INTO medications (patient_id, name, dose, route, frequency, start, stop, status, recorded_by, recorded_at, updated_by, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?9, ?10)",
            )?,
            immunization: conn.prepare_cached(
                "INSERT INTO immunizations (patient_id, vaccine, cvx, date, lot, site, status, recorded_by, recorded_at, updated_by, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'completed', ?7, ?8, ?7, ?8)",
            )?,
        })
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
    as_of: NaiveDate,
    summary: &'a mut DemoSummary,
}

impl Generator<'_> {
    #[allow(clippy::too_many_lines)]
    fn patient(
        &mut self,
        w: &mut Writer<'_>,
        conn: &Connection,
        n: u64,
        long_chart: bool,
    ) -> Result<(), CoreError> {
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
        let ascii = |s: &str| patients::fold(s).replace(' ', "");
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
        };
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
        let registered_s = format_time(registered);
        let registrar = "Front desk (demo)";
        // Allergy status: never asked, none known, or some recorded.
        let allergy_roll = rng.below(100);
        let allergy_state = match allergy_roll {
            0..=19 => "unknown",
            20..=69 => "no_known_allergies",
            _ => "recorded",
        };
        let e = demographics.emergency_contact.as_ref();
        w.patient.execute(params![
            patients::mrn_for(n as i64),
            demographics.family,
            demographics.given,
            demographics.preferred,
            ymd(birth),
            sex.as_str(),
            demographics.gender_identity,
            phone,
            patients::phone_digits(&phone),
            demographics.email,
            demographics.address,
            e.map(|e| e.name.as_str()),
            e.map(|e| e.phone.as_str()),
            e.and_then(|e| e.relationship.as_deref()),
            restricted,
            allergy_state,
            registered_s,
            registrar,
        ])?;
        let id = conn.last_insert_rowid();
        for (field, text) in [(0, family), (1, given)] {
            for word in patients::name_words(text) {
                w.word.execute(params![word, id, field])?;
            }
        }
        let snapshot =
            serde_json::json!({ "demographics": demographics, "restricted": restricted });
        w.version
            .execute(params![id, snapshot.to_string(), registered_s, registrar])?;
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
                w.allergy
                    .execute(params![id, a.0, a.1, a.2, a.3, registrar, registered_s])?;
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
            let onset_at = format_time(at_hour(onset, &mut self.rng));
            w.problem.execute(params![
                id,
                c.text,
                c.icd10,
                "active",
                ymd(onset),
                None::<String>,
                clinician,
                onset_at
            ])?;
            let (name, dose, route, frequency) = c.medication;
            w.medication.execute(params![
                id,
                name,
                dose,
                route,
                frequency,
                ymd(onset),
                None::<String>,
                "active",
                clinician,
                onset_at
            ])?;
            self.summary.problems += 1;
            self.summary.medications += 1;
        }
        // A resolved acute problem and a finished course now and then.
        if self.rng.chance(0.15) {
            let onset = self.as_of - Duration::days(60 + self.rng.below(1500) as i64);
            let at = format_time(at_hour(onset, &mut self.rng));
            w.problem.execute(params![
                id,
                "Community-acquired pneumonia",
                "J18.9",
                "resolved",
                ymd(onset),
                ymd(onset + Duration::days(21)),
                clinician,
                at
            ])?;
            w.medication.execute(params![
                id,
                "Amoxicillin",
                "500 mg",
                "oral",
                "three times daily",
                ymd(onset),
                ymd(onset + Duration::days(7)),
                "stopped",
                clinician,
                at
            ])?;
            self.summary.problems += 1;
            self.summary.medications += 1;
        }

        self.immunizations(w, id, age, birth)?;

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
            let when_s = format_time(when);
            w.encounter
                .execute(params![id, when_s, kind, clinician, reason])?;
            let encounter_id = conn.last_insert_rowid();
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
                for (vital, value) in &values {
                    if vital.validate(*value).is_ok() {
                        w.observation.execute(params![
                            id,
                            encounter_id,
                            vital.loinc(),
                            value,
                            vital.unit(),
                            when_s,
                            vital.flag(*value).as_str(),
                            recorder
                        ])?;
                        self.summary.observations += 1;
                    }
                }
                if long_chart {
                    // Home readings between visits fill a long chart to about 2,000 values.
                    for k in 1..=4 {
                        let t = format_time(when + Duration::days(k * 3));
                        let s = (base.systolic + self.rng.gauss() * 8.0)
                            .round()
                            .clamp(80.0, 230.0);
                        let d = (base.diastolic + self.rng.gauss() * 5.0)
                            .round()
                            .clamp(45.0, 130.0)
                            .min(s - 15.0);
                        for (vital, value) in [(Vital::Systolic, s), (Vital::Diastolic, d)] {
                            w.observation.execute(params![
                                id,
                                encounter_id,
                                vital.loinc(),
                                value,
                                vital.unit(),
                                t,
                                vital.flag(value).as_str(),
                                "Home monitor (demo)"
                            ])?;
                            self.summary.observations += 1;
                        }
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
            let content = crate::record::NoteContent::Soap {
                subjective: Some(subjective.clone()),
                objective: Some(objective.clone()),
                assessment: Some(assessment.clone()),
                plan: Some(plan.clone()),
            };
            let signed_at = format_time(when + Duration::minutes(20));
            let digest =
                crate::record::digest_of(id, Some(encounter_id), NoteKind::Note, None, &content);
            w.note.execute(params![
                id,
                encounter_id,
                "note",
                None::<i64>,
                clinician,
                "soap",
                content.as_text(),
                subjective,
                objective,
                assessment,
                plan,
                signed_at,
                digest
            ])?;
            let note_id = conn.last_insert_rowid();
            self.summary.notes += 1;
            if self.rng.chance(0.05) {
                let text = "[Synthetic demo record] Addendum: results reviewed by telephone; no change to plan.";
                let addendum = crate::record::NoteContent::Free {
                    text: text.to_owned(),
                };
                let at = format_time(when + Duration::days(2));
                let digest = crate::record::digest_of(
                    id,
                    Some(encounter_id),
                    NoteKind::Addendum,
                    Some(note_id),
                    &addendum,
                );
                w.note.execute(params![
                    id,
                    encounter_id,
                    "addendum",
                    note_id,
                    clinician,
                    "free",
                    text,
                    None::<String>,
                    None::<String>,
                    None::<String>,
                    None::<String>,
                    at,
                    digest
                ])?;
                self.summary.addenda += 1;
            }
        }
        Ok(())
    }

    fn immunizations(
        &mut self,
        w: &mut Writer<'_>,
        id: i64,
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
            let at = format_time(at_hour(date, &mut g.rng));
            w.immunization.execute(params![
                id,
                v.name,
                v.cvx,
                ymd(date),
                lot,
                site,
                "Nurse P. Okonjo (demo)",
                at
            ])?;
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
        let mut summary = DemoSummary::default();
        let mut generator = Generator {
            rng: Rng(options.seed ^ 0x6368_6172_7472_6f6f),
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
                    let mut writer = Writer::new(tx)?;
                    for k in 0..u64::from(count) {
                        let n = first + k;
                        let long_chart = every > 0 && n % u64::from(every) == 1 % u64::from(every);
                        generator.patient(&mut writer, tx, n, long_chart)?;
                    }
                    Ok(())
                },
            )?;
            done += count;
            progress(u64::from(done));
        }
        Ok(summary)
    }
}
