//! Every extension Chartroom writes into an export has its published definition: a
//! StructureDefinition in docs/fhir named by the canonical URL the export uses. The names
//! are read from the exporter's source, so a new extension without a definition fails here.

use std::path::Path;

const BASE: &str = "https://chartroom.example/fhir/StructureDefinition/";

/// The extension names the FHIR exporter writes: `ext_string("name"`, `ext_time("name"` and
/// `{EXT}name` in format strings.
fn written() -> Vec<String> {
    let source =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/exchange/fhir.rs"))
            .expect("reads the exporter");
    let mut names = Vec::new();
    for marker in ["ext_string(\"", "ext_time(\"", "{EXT}"] {
        for (at, _) in source.match_indices(marker) {
            let rest = &source[at + marker.len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')
                .collect();
            if !name.is_empty() && !names.contains(&name) {
                names.push(name);
            }
        }
    }
    names.sort();
    names
}

#[test]
fn every_extension_written_has_its_structure_definition() {
    let names = written();
    assert!(
        names.len() >= 10,
        "the scan finds the extensions: {names:?}"
    );
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/fhir");
    for name in &names {
        let path = docs.join(format!("StructureDefinition-{name}.json"));
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|_| panic!("{name} has no definition at {}", path.display()));
        let sd: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(sd["resourceType"], "StructureDefinition", "{name}");
        assert_eq!(sd["url"], format!("{BASE}{name}"), "{name}");
        assert_eq!(sd["type"], "Extension", "{name}");
        let fixed = sd["differential"]["element"]
            .as_array()
            .and_then(|e| e.iter().find(|e| e["path"] == "Extension.url"))
            .and_then(|e| e["fixedUri"].as_str());
        assert_eq!(fixed, Some(format!("{BASE}{name}").as_str()), "{name}");
    }
}
