//! Builds the Tauri context, and lists the app's own commands so capabilities can grant them
//! one by one: the webview can call nothing that is not listed here and granted.

fn main() {
    let commands = &[
        "vault_status",
        "create_vault",
        "unlock",
        "lock",
        "keep_alive",
    ];
    tauri_build::try_build(
        tauri_build::Attributes::new()
            .app_manifest(tauri_build::AppManifest::new().commands(commands)),
    )
    .expect("the Tauri configuration and capabilities are valid");
}
