//! `chartroom patient` and `chartroom note`: the parts of the record the access rules need.

use chartroom_core::{Chart, NewPatient, Note, PatientSummary, Session};
use clap::Subcommand;
use serde_json::{json, Value};

use crate::{Failure, Output};

#[derive(Debug, Subcommand)]
pub enum PatientCommand {
    /// Register a patient; prints the new patient (with --json: its id and mrn among others).
    Add {
        #[arg(long)]
        family: String,
        #[arg(long)]
        given: String,
        /// YYYY-MM-DD.
        #[arg(long, value_name = "DATE")]
        birth_date: String,
        /// female, male, other or unknown.
        #[arg(long, default_value = "unknown")]
        sex: String,
        /// Only the care team may open the chart; others must break the glass.
        #[arg(long)]
        restricted: bool,
    },
    /// Find patients by MRN or by the start of a name.
    Search { query: String },
    /// Open a chart (audited).
    Show { id: i64 },
    /// Show or change a patient's care team.
    CareTeam {
        id: i64,
        /// Add this user to the care team.
        #[arg(long, value_name = "USER")]
        add: Vec<String>,
        /// Take this user off the care team.
        #[arg(long, value_name = "USER")]
        remove: Vec<String>,
    },
    /// Open a restricted chart in an emergency. The reason is recorded and reported.
    BreakGlass {
        id: i64,
        #[arg(long, value_name = "TEXT")]
        reason: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum NoteCommand {
    /// Write a draft note for a patient.
    Draft {
        #[arg(long, value_name = "ID")]
        patient: i64,
        #[arg(long, value_name = "TEXT")]
        text: String,
    },
    /// Sign a draft note; it can then never change.
    Sign { id: i64 },
    /// List a patient's notes.
    List {
        #[arg(long, value_name = "ID")]
        patient: i64,
    },
}

fn summary_line(p: &PatientSummary) -> String {
    format!(
        "{:>6}  {:<9} {:<32} {}  {}{}",
        p.id,
        p.mrn,
        format!("{}, {}", p.family, p.given),
        p.birth_date.format("%d %b %Y"),
        p.sex.as_str(),
        if p.restricted { "  [restricted]" } else { "" }
    )
}

fn note_text(n: &Note) -> String {
    let status = match (&n.signed_by, &n.signed_at) {
        (Some(by), Some(at)) => format!("signed by {by} at {at}"),
        _ => "draft".to_owned(),
    };
    format!("Note {} by {} ({status}):\n{}\n", n.id, n.author, n.text)
}

fn chart_text(c: &Chart) -> String {
    let p = &c.patient;
    let mut t = format!(
        "{}, {}   MRN {}   born {}   {}{}\nCare team: {}\n",
        p.family,
        p.given,
        p.mrn,
        p.birth_date.format("%d %b %Y"),
        p.sex.as_str(),
        if p.restricted { "   [restricted]" } else { "" },
        if c.care_team.is_empty() {
            "-".to_owned()
        } else {
            c.care_team.join(", ")
        }
    );
    if let chartroom_core::ChartAccess::BreakGlass { expires_at, .. } = &c.access {
        t.push_str(&format!(
            "Opened by breaking the glass; access ends at {expires_at}.\n"
        ));
    }
    if let Some(notes) = &c.notes {
        for n in notes {
            t.push('\n');
            t.push_str(&note_text(n));
        }
    }
    t
}

pub fn patient(session: &mut Session, cmd: &PatientCommand) -> Result<Output, Failure> {
    match cmd {
        PatientCommand::Add {
            family,
            given,
            birth_date,
            sex,
            restricted,
        } => {
            let today = chrono::Local::now().date_naive();
            let new = NewPatient::new(family, given, birth_date, sex, *restricted, today)?;
            let p = session.register_patient(&new)?;
            let text = format!(
                "Registered {}, {} (id {}, MRN {}).",
                p.family, p.given, p.id, p.mrn
            );
            Ok(Output::new(
                serde_json::to_value(&p).unwrap_or(Value::Null),
                text,
            ))
        }
        PatientCommand::Search { query } => {
            let hits = session.search_patients(query)?;
            let text = if hits.is_empty() {
                "No patients found.".to_owned()
            } else {
                hits.iter().map(summary_line).collect::<Vec<_>>().join("\n")
            };
            Ok(Output::new(json!({"patients": hits}), text))
        }
        PatientCommand::Show { id } => {
            let chart = session.open_chart(*id)?;
            let text = chart_text(&chart);
            let mut doc = serde_json::to_value(&chart.patient).unwrap_or(Value::Null);
            doc["care_team"] = json!(chart.care_team);
            doc["access"] = json!(chart.access);
            if let Some(notes) = &chart.notes {
                doc["notes"] = json!(notes);
            }
            Ok(Output::new(doc, text))
        }
        PatientCommand::CareTeam { id, add, remove } => {
            for user in add {
                session.add_to_care_team(*id, user)?;
            }
            for user in remove {
                session.remove_from_care_team(*id, user)?;
            }
            let chart = session.open_chart(*id)?;
            Ok(Output::new(
                json!({"patient": id, "care_team": chart.care_team}),
                format!("Care team: {}", chart.care_team.join(", ")),
            ))
        }
        PatientCommand::BreakGlass { id, reason } => {
            let grant = session.break_glass(*id, reason)?;
            Ok(Output::new(
                serde_json::to_value(&grant).unwrap_or(Value::Null),
                format!(
                    "Emergency access to patient {id} until {} ({} minutes). This access is recorded and reported.",
                    grant.expires_at, grant.minutes
                ),
            ))
        }
    }
}

pub fn note(session: &mut Session, cmd: &NoteCommand) -> Result<Output, Failure> {
    match cmd {
        NoteCommand::Draft { patient, text } => {
            let n = session.draft_note(*patient, text)?;
            Ok(Output::new(
                serde_json::to_value(&n).unwrap_or(Value::Null),
                format!("Draft note {} saved.", n.id),
            ))
        }
        NoteCommand::Sign { id } => {
            let n = session.sign_note(*id)?;
            Ok(Output::new(
                serde_json::to_value(&n).unwrap_or(Value::Null),
                format!("Note {} signed; it can no longer be changed.", n.id),
            ))
        }
        NoteCommand::List { patient } => {
            let notes = session.notes(*patient)?;
            let text = if notes.is_empty() {
                "No notes.".to_owned()
            } else {
                notes.iter().map(note_text).collect::<Vec<_>>().join("\n")
            };
            Ok(Output::new(json!({"notes": notes}), text))
        }
    }
}
