//! Builds the Tauri context, and lists the app's own commands so capabilities can grant them
//! one by one: the webview can call nothing that is not listed here and granted.

fn main() {
    let commands = &[
        "ui_ready",
        "vault_status",
        "create_vault",
        "unlock",
        "lock",
        "keep_alive",
        "create_demo",
        "search_patients",
        "open_chart",
        "register_patient",
        "break_glass",
        "add_encounter",
        "draft_note",
        "edit_draft",
        "sign_note",
        "add_addendum",
        "record_vitals",
        "add_problem",
        "resolve_problem",
        "add_allergy",
        "record_no_known_allergies",
        "resolve_allergy",
        "add_medication",
        "stop_medication",
        "add_immunization",
        "resolve_immunization",
        "list_users",
        "add_user",
        "disable_user",
        "change_role",
        "reset_password",
        "get_settings",
        "set_setting",
        "audit_entries",
        "verify_audit",
        "list_alerts",
        "acknowledge_alert",
        "export_records",
        "export_progress",
        "patient_disclosures",
        "sync_status",
        "sync_enroll",
    ];
    tauri_build::try_build(
        tauri_build::Attributes::new()
            .app_manifest(tauri_build::AppManifest::new().commands(commands)),
    )
    .expect("the Tauri configuration and capabilities are valid");
}
