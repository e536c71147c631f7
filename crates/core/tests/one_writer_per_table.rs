//! One writer per table: every SQL statement that writes a clinical or patient table lives in
//! that table's one module. This scans the sources of core, the CLI and the desktop shell for
//! INSERT, UPDATE, DELETE and REPLACE statements and names any file that writes a table it
//! does not own. Test code (which tampers on purpose) is exempt, and so are the migrations
//! in schema.rs, which rebuild tables (a copy of every row, no value of their own) and run
//! once. A migration's backfill of values (v3's first versions and name words for patients
//! registered before those tables existed) is written in the table's own module and only
//! spliced into the migration's text, which stays as it shipped.

use std::path::{Path, PathBuf};

/// Each record table and the one file (under crates/core/src) allowed to write it.
const OWNERS: &[(&str, &str)] = &[
    ("patients", "chart/patient.rs"),
    ("patient_versions", "chart/patient.rs"),
    ("patient_name_words", "chart/patient.rs"),
    ("care_team", "access.rs"),
    ("encounters", "chart/encounter.rs"),
    ("notes", "chart/note.rs"),
    ("observations", "chart/vitals.rs"),
    ("problems", "chart/problem.rs"),
    ("allergies", "chart/allergy.rs"),
    ("medications", "chart/medication.rs"),
    ("immunizations", "chart/immunization.rs"),
    ("appointments", "chart/appointment.rs"),
    ("entered_in_error", "chart/correction.rs"),
    ("lab_reports", "chart/lab.rs"),
    ("lab_results", "chart/lab.rs"),
];

/// The tables a piece of source text writes, in the order they appear. SQL keywords are
/// matched in capitals (as every statement here is written), so English prose in comments
/// does not count; trigger clauses (`BEFORE UPDATE ON`) and upserts (`DO UPDATE SET`) are
/// not writes of a table named after them.
fn tables_written(source: &str) -> Vec<String> {
    let words: Vec<&str> = source
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let mut at = i + 1;
        let skip_or = |at: &mut usize| {
            if words.get(*at) == Some(&"OR") {
                *at += 2;
            }
        };
        let table = match words[i] {
            "INSERT" | "REPLACE" => {
                skip_or(&mut at);
                (words.get(at) == Some(&"INTO"))
                    .then(|| words.get(at + 1))
                    .flatten()
            }
            "UPDATE" => {
                skip_or(&mut at);
                words
                    .get(at)
                    .filter(|w| !matches!(**w, "ON" | "OF" | "SET"))
            }
            "DELETE" => (words.get(at) == Some(&"FROM"))
                .then(|| words.get(at + 1))
                .flatten(),
            _ => None,
        };
        if let Some(t) = table {
            out.push(t.to_string());
        }
        i += 1;
    }
    out
}

fn is_test_code(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name == "tests.rs"
        || name.ends_with("_tests.rs")
        || path.components().any(|c| c.as_os_str() == "tests")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Source text outside `#[cfg(test)]` modules at the end of a file (this codebase's
/// convention for unit tests).
fn production_part(source: &str) -> &str {
    match source.find("#[cfg(test)]\nmod tests") {
        Some(i) => &source[..i],
        None => source,
    }
}

/// Every (file, table) where a file writes a record table it does not own.
fn trespasses(core_src: &Path, roots: &[PathBuf]) -> Vec<(String, String)> {
    let mut files = Vec::new();
    for root in roots {
        rust_files(root, &mut files);
    }
    files.sort();
    let mut found = Vec::new();
    for file in files {
        if is_test_code(&file) || file.ends_with("schema.rs") {
            continue;
        }
        let source = std::fs::read_to_string(&file).expect("reads a source file");
        let relative = file
            .strip_prefix(core_src)
            .map(|p| p.to_string_lossy().replace('\\', "/"))
            .unwrap_or_else(|_| file.to_string_lossy().into_owned());
        for table in tables_written(production_part(&source)) {
            if let Some((_, owner)) = OWNERS.iter().find(|(t, _)| *t == table) {
                if relative != *owner {
                    found.push((relative.clone(), table));
                }
            }
        }
    }
    found
}

#[test]
fn each_record_table_is_written_by_its_one_module_only() {
    let core = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let src = core.join("src");
    let roots = [
        src.clone(),
        core.join("../cli/src"),
        core.join("../../src-tauri/src"),
    ];
    assert!(
        roots[1].is_dir() && roots[2].is_dir(),
        "the CLI and shell sources are where expected"
    );
    let found = trespasses(&src, &roots);
    assert!(
        found.is_empty(),
        "record tables written outside their one writer (file, table): {found:?}"
    );
    // And each owner does write its table, so the list above stays true to the code.
    for (table, owner) in OWNERS {
        let source = std::fs::read_to_string(src.join(owner)).expect("reads the owner");
        assert!(
            tables_written(production_part(&source))
                .iter()
                .any(|t| t == table),
            "{owner} is named as the writer of {table} but does not write it"
        );
    }
}

#[test]
fn the_scan_sees_every_shape_of_write_and_ignores_what_is_not_one() {
    let sql = r#"
        conn.execute("INSERT INTO notes (a) VALUES (1)");
        conn.execute("INSERT OR IGNORE INTO care_team (a) VALUES (1)");
        conn.execute("UPDATE problems SET status = 'x'");
        conn.execute("UPDATE OR REPLACE allergies SET status = 'x'");
        conn.execute("DELETE FROM care_team WHERE 1");
        conn.execute("REPLACE INTO observations VALUES (1)");
        // CREATE TRIGGER t BEFORE UPDATE ON notes, BEFORE DELETE ON notes, ON CONFLICT DO UPDATE SET
        // we update the notes here, and delete from notes, in plain words
    "#;
    assert_eq!(
        tables_written(sql),
        [
            "notes",
            "care_team",
            "problems",
            "allergies",
            "care_team",
            "observations"
        ]
    );
    // A file that writes a table it does not own is named.
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("chart")).expect("dir");
    std::fs::write(
        dir.path().join("chart/problem.rs"),
        "fn f() { x(\"INSERT INTO notes (id) VALUES (1)\") }",
    )
    .expect("writes");
    std::fs::write(
        dir.path().join("chart/note.rs"),
        "fn g() { x(\"UPDATE notes SET a = 1\") }",
    )
    .expect("writes");
    assert_eq!(
        trespasses(dir.path(), &[dir.path().to_path_buf()]),
        [("chart/problem.rs".to_string(), "notes".to_string())]
    );
}
