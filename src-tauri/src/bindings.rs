//! The TypeScript types in `ui/src/gen/bindings.ts` are generated from the Rust types the
//! commands take and return, never written by hand. This test regenerates them and fails
//! when the committed file differs; `UPDATE_BINDINGS=1 cargo test -p chartroom-desktop
//! bindings` rewrites it. It also checks that every command the app registers is granted
//! in the window's capability and listed in build.rs, and nothing else is.

use std::path::PathBuf;

use ts_rs::TS;

const HEADER: &str =
    "// Generated from the Rust types by src-tauri/src/bindings.rs (ts-rs). Do not edit:\n\
// run `UPDATE_BINDINGS=1 cargo test -p chartroom-desktop bindings` after changing them.\n\n";

fn generate() -> String {
    let cfg = ts_rs::Config::new().with_large_int("number");
    let mut out = String::from(HEADER);
    macro_rules! declare {
        ($($t:ty),* $(,)?) => {
            $(
                out.push_str("export ");
                out.push_str(&<$t as TS>::decl(&cfg));
                out.push_str("\n\n");
            )*
        };
    }
    use chartroom_core as c;
    declare!(
        crate::vault::VaultStatus,
        crate::vault::SessionInfo,
        crate::vault::Created,
        crate::state::DemoInfo,
        crate::state::DemoUser,
        crate::error::AppError,
        c::Role,
        c::Permission,
        c::SearchHit,
        c::Sex,
        c::Chart,
        c::ImportOrigin,
        c::ChartAccess,
        c::Patient,
        c::DuplicateCandidate,
        c::Demographics,
        c::EmergencyContact,
        c::Grant,
        c::Encounter,
        c::EncounterKind,
        c::Note,
        c::NoteSignature,
        c::PatientId,
        c::EncounterId,
        c::NoteId,
        c::ObservationId,
        c::ProblemId,
        c::AllergyId,
        c::MedicationId,
        c::ImmunizationId,
        c::LabResultId,
        c::LabReportId,
        c::NoteKind,
        c::NoteStatus,
        c::NoteContent,
        c::Observation,
        c::Vital,
        c::Flag,
        c::Problem,
        c::CodeSystem,
        c::Allergy,
        c::AllergyList,
        c::Severity,
        c::AllergyCategory,
        c::Medication,
        c::Route,
        c::Immunization,
        c::Site,
        c::LabResult,
        c::LabReport,
        c::EarlierResult,
        c::Range,
        c::ResultFlag,
        c::ResultInput,
        c::ReportInput,
        crate::records::LabTestChoice,
        crate::records::DemographicChoices,
        crate::records::Choice,
        c::User,
        c::UserName,
        c::Settings,
        c::DateFormat,
        c::Units,
        c::FieldError,
        c::Correction,
        crate::records::ListItem,
        crate::records::DemographicsInput,
        crate::records::StaffMember,
        c::PatientVersion,
        c::Alert,
        c::Verification,
        crate::records::PatientInput,
        crate::records::EncounterInput,
        crate::records::VitalsForm,
        crate::records::ProblemInput,
        crate::records::AllergyInput,
        crate::records::MedicationInput,
        crate::records::ImmunizationInput,
        crate::trail::AuditQuery,
        crate::trail::AuditRow,
        crate::trail::AuditPage,
        crate::trail::AuditVocabulary,
        c::audit_words::EventWords,
        c::audit_words::PurposeWords,
        crate::exchange::ExportForm,
        crate::exchange::ExportDone,
        crate::exchange::ExportProgress,
        c::ExportReport,
        c::LeftOut,
        c::KeyInfo,
        c::Disclosure,
        c::SyncStatus,
        c::Appointment,
        c::AppointmentId,
        c::AppointmentStatus,
        c::AppointmentQuery,
        c::Booking,
        c::FreeSlot,
        c::Started,
        c::AppointmentType,
        c::ScheduleView,
        c::ScheduleDay,
    );
    out.trim_end().to_owned() + "\n"
}

fn here(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

#[test]
fn the_ui_types_are_generated_from_rust() {
    let path = here("../ui/src/gen/bindings.ts");
    let fresh = generate();
    if std::env::var_os("UPDATE_BINDINGS").is_some() {
        std::fs::create_dir_all(path.parent().expect("a folder")).expect("ui/src/gen");
        std::fs::write(&path, &fresh).expect("write bindings.ts");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == fresh,
        "ui/src/gen/bindings.ts is out of date: run \
         `UPDATE_BINDINGS=1 cargo test -p chartroom-desktop bindings` and commit it"
    );
}

/// The commands in main.rs's generate_handler!, in order.
fn registered_commands() -> Vec<String> {
    let main = std::fs::read_to_string(here("src/main.rs")).expect("main.rs");
    let start = main.find("generate_handler![").expect("generate_handler!") + 18;
    let end = start + main[start..].find(']').expect("end of the list");
    main[start..end]
        .split(',')
        .map(|c| c.trim().rsplit("::").next().unwrap_or("").to_owned())
        .filter(|c| !c.is_empty())
        .collect()
}

#[test]
fn every_command_is_granted_and_nothing_else() {
    let commands = registered_commands();
    assert!(commands.len() > 30, "{commands:?}");

    let cap: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(here("capabilities/main.json")).expect("main.json"),
    )
    .expect("json");
    let granted: Vec<String> = cap["permissions"]
        .as_array()
        .expect("permissions")
        .iter()
        .map(|p| p.as_str().expect("a string").to_owned())
        .collect();
    let wanted: Vec<String> = commands
        .iter()
        .map(|c| format!("allow-{}", c.replace('_', "-")))
        .collect();
    assert_eq!(
        granted, wanted,
        "capabilities/main.json grants exactly the app's commands"
    );

    let build = std::fs::read_to_string(here("build.rs")).expect("build.rs");
    for c in &commands {
        assert!(build.contains(&format!("\"{c}\"")), "build.rs lists {c}");
    }
    assert_eq!(
        build.matches("\",\n").count(),
        commands.len(),
        "build.rs lists only these"
    );
}
