//! The clinic's schema, as migrations the vault applies in order at unlock.

use chartroom_vault::Migration;

/// The triggers that make the audit tables append-only. Unlock re-creates any that are
/// missing (and raises an alert), so dropping them does not outlive the next sign-in.
pub(crate) const AUDIT_TRIGGERS: &[(&str, &str)] = &[
    (
        "audit_log_no_update",
        "CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log
         BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END",
    ),
    (
        "audit_log_no_delete",
        "CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log
         BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END",
    ),
    (
        "audit_checkpoints_no_update",
        "CREATE TRIGGER IF NOT EXISTS audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
         BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END",
    ),
    (
        "security_log_no_update",
        "CREATE TRIGGER IF NOT EXISTS security_log_no_update BEFORE UPDATE ON security_log
         BEGIN SELECT RAISE(ABORT, 'the security log is append-only'); END",
    ),
    (
        "security_log_no_delete",
        "CREATE TRIGGER IF NOT EXISTS security_log_no_delete BEFORE DELETE ON security_log
         BEGIN SELECT RAISE(ABORT, 'the security log is append-only'); END",
    ),
    (
        "audit_checkpoints_no_delete",
        "CREATE TRIGGER IF NOT EXISTS audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
         BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END",
    ),
];

/// Every trigger Chartroom's schema makes. Any other trigger (or any view) in the database
/// was planted outside Chartroom (one that changes a role while a colleague's session writes
/// its audit entry, say): the unlock removes it and says so.
pub(crate) const KNOWN_TRIGGERS: &[&str] = &[
    "audit_checkpoints_no_delete",
    "audit_checkpoints_no_update",
    "audit_log_no_delete",
    "audit_log_no_update",
    "disclosure_patients_no_delete",
    "disclosure_patients_no_update",
    "disclosures_no_delete",
    "disclosures_no_update",
    "notes_signed_are_final",
    "notes_signed_stay",
    "patient_versions_no_delete",
    "patient_versions_no_update",
    "security_log_no_delete",
    "security_log_no_update",
    "vault_restores_no_delete",
    "vault_restores_no_update",
];

/// The accounting of disclosures' protection against updates, made again after the one
/// change it allows (sealing what an earlier version wrote in clear).
pub(crate) const DISCLOSURES_NO_UPDATE_SQL: &str =
    "CREATE TRIGGER disclosures_no_update BEFORE UPDATE ON disclosures
        BEGIN SELECT RAISE(ABORT, 'the accounting of disclosures is append-only'); END;";

/// The patient history's protection against updates, made again after the one change it
/// allows (sealing a restricted chart's history, or opening it when the restriction is lifted).
pub(crate) const PATIENT_VERSIONS_NO_UPDATE_SQL: &str =
    "CREATE TRIGGER patient_versions_no_update BEFORE UPDATE ON patient_versions
        BEGIN SELECT RAISE(ABORT, 'patient history is append-only'); END;";

/// The content keys: each a random key sealed to a compartment's public key (see
/// docs/security.md). `seq` orders them for loading; `id` is what a sealed field names.
macro_rules! content_keys_sql {
    () => {
        "CREATE TABLE content_keys (
            seq         INTEGER PRIMARY KEY,
            id          INTEGER NOT NULL UNIQUE,
            compartment TEXT NOT NULL,
            epoch       INTEGER NOT NULL,
            owner       TEXT,              -- the holder whose own key it is; NULL: one session's
            ephemeral   BLOB NOT NULL CHECK (length(ephemeral) = 32),
            nonce       BLOB NOT NULL CHECK (length(nonce) = 12),
            sealed      BLOB NOT NULL,
            created_at  TEXT NOT NULL
        ) STRICT;
        CREATE INDEX content_keys_owner ON content_keys (compartment, epoch, owner) WHERE owner IS NOT NULL;
        "
    };
}

#[cfg(any(test, feature = "bench"))]
pub(crate) const CONTENT_KEYS_SQL: &str = content_keys_sql!();

/// The tables a keyring reads restricted patients' keys from, alone, for tests and benches
/// that key an in-memory database.
#[cfg(any(test, feature = "bench"))]
pub(crate) const PATIENT_KEYS_FOR_TESTS_SQL: &str = "
    CREATE TABLE patients (id INTEGER PRIMARY KEY, uuid BLOB);
    CREATE TABLE patient_keys (seq INTEGER PRIMARY KEY, patient_id INTEGER, epoch INTEGER,
        public_key BLOB, holder TEXT, to_public BLOB, ephemeral BLOB, nonce BLOB, sealed BLOB);
    CREATE TABLE security_log (seq INTEGER PRIMARY KEY, kind TEXT, subject TEXT, entry TEXT);";

/// The clinical columns sealed under the clinical compartment, by table.
pub(crate) const SEALED_COLUMNS: &[(&str, &[&str])] = &[
    ("encounters", &["reason"]),
    (
        "notes",
        &[
            "text",
            "subjective",
            "objective",
            "assessment",
            "plan",
            "content_sha256",
            "signature",
            "signer_key",
        ],
    ),
    ("observations", &["value", "flag"]),
    ("problems", &["text", "system", "code"]),
    (
        "allergies",
        &[
            "substance",
            "reaction",
            "severity",
            "category",
            "allergy_override",
        ],
    ),
    (
        "medications",
        &["name", "dose", "route", "frequency", "allergy_override"],
    ),
    ("immunizations", &["vaccine", "cvx", "lot", "site"]),
    ("entered_in_error", &["reason"]),
    ("lab_reports", &["loinc", "name"]),
    (
        "lab_results",
        &[
            "loinc",
            "name",
            "value",
            "unit",
            "range",
            "flag",
            "reason",
            "error_reason",
        ],
    ),
];

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "users",
        sql: "
        CREATE TABLE users (
            id          INTEGER PRIMARY KEY,
            name        TEXT NOT NULL UNIQUE COLLATE NOCASE,
            role        TEXT NOT NULL
                        CHECK (role IN ('admin', 'physician', 'nurse', 'front_desk', 'auditor')),
            disabled_at TEXT,
            created_at  TEXT NOT NULL,
            created_by  TEXT
        ) STRICT;
    ",
    },
    Migration {
        version: 2,
        name: "audit trail, settings, alerts, patients, care teams, access grants, notes",
        sql: "
        ALTER TABLE users ADD COLUMN family_name TEXT;

        -- The device's Ed25519 key pair, made at vault creation; signs audit checkpoints.
        CREATE TABLE device (
            id          INTEGER PRIMARY KEY CHECK (id = 1),
            device_id   TEXT NOT NULL,
            signing_key BLOB NOT NULL CHECK (length(signing_key) = 32),
            public_key  BLOB NOT NULL CHECK (length(public_key) = 32),
            created_at  TEXT NOT NULL
        ) STRICT;

        CREATE TABLE audit_log (
            seq         INTEGER PRIMARY KEY,
            time        TEXT NOT NULL,
            actor_id    INTEGER,
            actor       TEXT NOT NULL,
            role        TEXT,
            device_id   TEXT NOT NULL,
            action      TEXT NOT NULL,
            event       TEXT NOT NULL,
            outcome     TEXT NOT NULL,
            patient_id  TEXT,
            object_type TEXT,
            object_id   TEXT,
            purpose     TEXT,
            reason      TEXT,
            detail      TEXT,
            prev_hash   BLOB NOT NULL,
            hash        BLOB NOT NULL
        ) STRICT;
        CREATE INDEX audit_log_patient ON audit_log (patient_id, seq) WHERE patient_id IS NOT NULL;
        CREATE INDEX audit_log_actor ON audit_log (actor, event, time);

        CREATE TABLE audit_checkpoints (
            seq         INTEGER PRIMARY KEY,
            hash        BLOB NOT NULL,
            time        TEXT NOT NULL,
            signature   BLOB NOT NULL
        ) STRICT;

        CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
        CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
        CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
        BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
        CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
        BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;

        CREATE TABLE settings (
            key         TEXT PRIMARY KEY,
            value       TEXT NOT NULL,
            updated_at  TEXT NOT NULL,
            updated_by  TEXT NOT NULL
        ) STRICT;

        CREATE TABLE alerts (
            id              INTEGER PRIMARY KEY,
            rule            TEXT NOT NULL,
            time            TEXT NOT NULL,
            actor           TEXT,
            patient_id      TEXT,
            summary         TEXT NOT NULL,
            audit_seq       INTEGER NOT NULL,
            acknowledged_at TEXT,
            acknowledged_by TEXT,
            ack_note        TEXT
        ) STRICT;
        CREATE INDEX alerts_rule_actor ON alerts (rule, actor, time);

        CREATE TABLE patients (
            id          INTEGER PRIMARY KEY,
            mrn         TEXT NOT NULL UNIQUE,
            family      TEXT NOT NULL,
            given       TEXT NOT NULL,
            birth_date  TEXT NOT NULL,
            sex         TEXT NOT NULL CHECK (sex IN ('female', 'male', 'other', 'unknown')),
            restricted  INTEGER NOT NULL DEFAULT 0 CHECK (restricted IN (0, 1)),
            created_at  TEXT NOT NULL,
            created_by  TEXT NOT NULL
        ) STRICT;
        CREATE INDEX patients_family ON patients (family COLLATE NOCASE);

        CREATE TABLE care_team (
            patient_id  INTEGER NOT NULL REFERENCES patients (id),
            user_id     INTEGER NOT NULL REFERENCES users (id),
            added_at    TEXT NOT NULL,
            added_by    TEXT NOT NULL,
            PRIMARY KEY (patient_id, user_id)
        ) STRICT, WITHOUT ROWID;

        CREATE TABLE access_grants (
            id          INTEGER PRIMARY KEY,
            user_id     INTEGER NOT NULL REFERENCES users (id),
            patient_id  INTEGER NOT NULL REFERENCES patients (id),
            reason      TEXT NOT NULL CHECK (length(trim(reason)) > 0),
            granted_at  TEXT NOT NULL,
            expires_at  TEXT NOT NULL,
            audit_seq   INTEGER NOT NULL
        ) STRICT;
        CREATE INDEX access_grants_user_patient ON access_grants (user_id, patient_id, expires_at);

        CREATE TABLE notes (
            id          INTEGER PRIMARY KEY,
            patient_id  INTEGER NOT NULL REFERENCES patients (id),
            author_id   INTEGER REFERENCES users (id),
            author      TEXT NOT NULL,
            text        TEXT NOT NULL,
            status      TEXT NOT NULL CHECK (status IN ('draft', 'signed')),
            created_at  TEXT NOT NULL,
            updated_at  TEXT NOT NULL,
            signed_by   TEXT,
            signed_at   TEXT,
            content_sha256 TEXT
        ) STRICT;
        CREATE INDEX notes_patient ON notes (patient_id);
        -- A signed note is never edited or removed: corrections are addenda.
        CREATE TRIGGER notes_signed_are_final BEFORE UPDATE ON notes WHEN OLD.status = 'signed'
        BEGIN SELECT RAISE(ABORT, 'a signed note cannot be changed'); END;
        CREATE TRIGGER notes_signed_stay BEFORE DELETE ON notes WHEN OLD.status = 'signed'
        BEGIN SELECT RAISE(ABORT, 'a signed note cannot be removed'); END;
    ",
    },
    Migration {
        version: 3,
        name: "the clinical record: demographics with history, encounters, notes with addenda, observations, problems, allergies, medications, immunizations",
        sql: concat!(
            "
        ALTER TABLE patients ADD COLUMN preferred_name TEXT;
        ALTER TABLE patients ADD COLUMN gender_identity TEXT;
        ALTER TABLE patients ADD COLUMN phone TEXT;
        ALTER TABLE patients ADD COLUMN phone_digits TEXT;
        ALTER TABLE patients ADD COLUMN email TEXT;
        ALTER TABLE patients ADD COLUMN address TEXT;
        ALTER TABLE patients ADD COLUMN emergency_name TEXT;
        ALTER TABLE patients ADD COLUMN emergency_phone TEXT;
        ALTER TABLE patients ADD COLUMN emergency_relation TEXT;
        ALTER TABLE patients ADD COLUMN allergy_state TEXT NOT NULL DEFAULT 'unknown'
            CHECK (allergy_state IN ('unknown', 'no_known_allergies', 'recorded'));
        ALTER TABLE patients ADD COLUMN allergy_state_at TEXT;
        ALTER TABLE patients ADD COLUMN allergy_state_by TEXT;
        ALTER TABLE patients ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
        ALTER TABLE patients ADD COLUMN updated_at TEXT;
        ALTER TABLE patients ADD COLUMN updated_by TEXT;
        DROP INDEX patients_family;
        CREATE INDEX patients_birth_date ON patients (birth_date);
        CREATE INDEX patients_phone ON patients (phone_digits) WHERE phone_digits IS NOT NULL;

        -- Every word of every name, folded (lower case, no accents), for search.
        CREATE TABLE patient_name_words (
            word        TEXT NOT NULL,
            patient_id  INTEGER NOT NULL REFERENCES patients (id),
            field       INTEGER NOT NULL,   -- 0 family, 1 given, 2 preferred
            PRIMARY KEY (word, patient_id, field)
        ) STRICT, WITHOUT ROWID;
        CREATE INDEX patient_name_words_patient ON patient_name_words (patient_id);
",
            crate::chart::patient::name_words_backfill!(),
            "
        -- Each version of a patient's demographics, with who changed it and when.
        CREATE TABLE patient_versions (
            patient_id  INTEGER NOT NULL REFERENCES patients (id),
            version     INTEGER NOT NULL,
            data        TEXT NOT NULL,
            changed_at  TEXT NOT NULL,
            changed_by  TEXT NOT NULL,
            PRIMARY KEY (patient_id, version)
        ) STRICT;
        CREATE TRIGGER patient_versions_no_update BEFORE UPDATE ON patient_versions
        BEGIN SELECT RAISE(ABORT, 'patient history is append-only'); END;
        CREATE TRIGGER patient_versions_no_delete BEFORE DELETE ON patient_versions
        BEGIN SELECT RAISE(ABORT, 'patient history is append-only'); END;
",
            crate::chart::patient::first_versions_backfill!(),
            "
        CREATE TABLE encounters (
            id           INTEGER PRIMARY KEY,
            patient_id   INTEGER NOT NULL REFERENCES patients (id),
            start        TEXT NOT NULL,
            kind         TEXT NOT NULL CHECK (kind IN ('office', 'telephone', 'telehealth', 'home')),
            clinician_id INTEGER REFERENCES users (id),
            clinician    TEXT NOT NULL,
            reason       TEXT NOT NULL,
            created_at   TEXT NOT NULL,
            created_by   TEXT NOT NULL
        ) STRICT;
        CREATE INDEX encounters_patient ON encounters (patient_id, start);

        ALTER TABLE notes ADD COLUMN encounter_id INTEGER REFERENCES encounters (id);
        ALTER TABLE notes ADD COLUMN kind TEXT NOT NULL DEFAULT 'note'
            CHECK (kind IN ('note', 'addendum', 'amendment'));
        ALTER TABLE notes ADD COLUMN parent_id INTEGER REFERENCES notes (id);
        ALTER TABLE notes ADD COLUMN format TEXT NOT NULL DEFAULT 'free' CHECK (format IN ('free', 'soap'));
        ALTER TABLE notes ADD COLUMN subjective TEXT;
        ALTER TABLE notes ADD COLUMN objective TEXT;
        ALTER TABLE notes ADD COLUMN assessment TEXT;
        ALTER TABLE notes ADD COLUMN plan TEXT;
        CREATE INDEX notes_parent ON notes (parent_id) WHERE parent_id IS NOT NULL;

        CREATE TABLE observations (
            id           INTEGER PRIMARY KEY,
            patient_id   INTEGER NOT NULL REFERENCES patients (id),
            encounter_id INTEGER REFERENCES encounters (id),
            code         TEXT NOT NULL,
            value        REAL NOT NULL,
            unit         TEXT NOT NULL,
            effective    TEXT NOT NULL,
            flag         TEXT NOT NULL CHECK (flag IN ('N', 'L', 'H', 'LL', 'HH')),
            recorded_by  TEXT NOT NULL,
            recorded_at  TEXT NOT NULL
        ) STRICT;
        CREATE INDEX observations_patient ON observations (patient_id, code, effective);

        CREATE TABLE problems (
            id           INTEGER PRIMARY KEY,
            patient_id   INTEGER NOT NULL REFERENCES patients (id),
            text         TEXT NOT NULL,
            system       TEXT CHECK (system IN ('icd10', 'snomed')),
            code         TEXT,
            status       TEXT NOT NULL CHECK (status IN ('active', 'resolved', 'inactive')),
            onset        TEXT,
            resolved_on  TEXT,
            recorded_by  TEXT NOT NULL,
            recorded_at  TEXT NOT NULL,
            updated_by   TEXT NOT NULL,
            updated_at   TEXT NOT NULL
        ) STRICT;
        CREATE INDEX problems_patient ON problems (patient_id);

        CREATE TABLE allergies (
            id           INTEGER PRIMARY KEY,
            patient_id   INTEGER NOT NULL REFERENCES patients (id),
            substance    TEXT NOT NULL,
            reaction     TEXT,
            severity     TEXT CHECK (severity IN ('mild', 'moderate', 'severe')),
            category     TEXT CHECK (category IN ('food', 'medication', 'environment', 'biologic')),
            status       TEXT NOT NULL CHECK (status IN ('active', 'resolved')),
            recorded_by  TEXT NOT NULL,
            recorded_at  TEXT NOT NULL,
            updated_by   TEXT NOT NULL,
            updated_at   TEXT NOT NULL
        ) STRICT;
        CREATE INDEX allergies_patient ON allergies (patient_id);

        CREATE TABLE medications (
            id           INTEGER PRIMARY KEY,
            patient_id   INTEGER NOT NULL REFERENCES patients (id),
            name         TEXT NOT NULL,
            dose         TEXT,
            route        TEXT,
            frequency    TEXT,
            start        TEXT,
            stop         TEXT,
            status       TEXT NOT NULL CHECK (status IN ('active', 'stopped')),
            recorded_by  TEXT NOT NULL,
            recorded_at  TEXT NOT NULL,
            updated_by   TEXT NOT NULL,
            updated_at   TEXT NOT NULL
        ) STRICT;
        CREATE INDEX medications_patient ON medications (patient_id);

        CREATE TABLE immunizations (
            id           INTEGER PRIMARY KEY,
            patient_id   INTEGER NOT NULL REFERENCES patients (id),
            vaccine      TEXT NOT NULL,
            cvx          TEXT NOT NULL,
            date         TEXT NOT NULL,
            lot          TEXT,
            site         TEXT,
            status       TEXT NOT NULL CHECK (status IN ('completed', 'entered_in_error')),
            recorded_by  TEXT NOT NULL,
            recorded_at  TEXT NOT NULL,
            updated_by   TEXT NOT NULL,
            updated_at   TEXT NOT NULL
        ) STRICT;
        CREATE INDEX immunizations_patient ON immunizations (patient_id);
    "
        ),
    },
    Migration {
        version: 4,
        name: "exports as disclosures, and what imports brought in",
        sql: "
        -- Each export: who made it, for whom (name and key fingerprints), why, and what.
        CREATE TABLE disclosures (
            id          INTEGER PRIMARY KEY,
            time        TEXT NOT NULL,
            actor       TEXT NOT NULL,
            role        TEXT,
            recipient   TEXT NOT NULL,
            keys        TEXT NOT NULL,      -- JSON: [{type, fingerprint}]
            purpose     TEXT NOT NULL CHECK (length(trim(purpose)) > 0),
            format      TEXT NOT NULL,
            patients    INTEGER NOT NULL,
            resources   TEXT NOT NULL,      -- JSON: {resource type: count}
            left_out    INTEGER NOT NULL,
            bytes       INTEGER NOT NULL,
            sha256      TEXT NOT NULL       -- of the encrypted file as written
        ) STRICT;
        CREATE TABLE disclosure_patients (
            disclosure_id INTEGER NOT NULL REFERENCES disclosures (id),
            patient_id    INTEGER NOT NULL REFERENCES patients (id),
            resources     TEXT NOT NULL,    -- JSON: {resource type: count}
            PRIMARY KEY (disclosure_id, patient_id)
        ) STRICT, WITHOUT ROWID;
        CREATE INDEX disclosure_patients_patient ON disclosure_patients (patient_id);
        CREATE TRIGGER disclosures_no_update BEFORE UPDATE ON disclosures
        BEGIN SELECT RAISE(ABORT, 'the accounting of disclosures is append-only'); END;
        CREATE TRIGGER disclosures_no_delete BEFORE DELETE ON disclosures
        BEGIN SELECT RAISE(ABORT, 'the accounting of disclosures is append-only'); END;
        CREATE TRIGGER disclosure_patients_no_update BEFORE UPDATE ON disclosure_patients
        BEGIN SELECT RAISE(ABORT, 'the accounting of disclosures is append-only'); END;
        CREATE TRIGGER disclosure_patients_no_delete BEFORE DELETE ON disclosure_patients
        BEGIN SELECT RAISE(ABORT, 'the accounting of disclosures is append-only'); END;

        -- Every imported resource by its origin, so importing a file again adds nothing.
        CREATE TABLE imported_records (
            source        TEXT NOT NULL,
            resource_type TEXT NOT NULL,
            source_id     TEXT NOT NULL,
            local_id      INTEGER NOT NULL,
            imported_at   TEXT NOT NULL,
            PRIMARY KEY (source, resource_type, source_id)
        ) STRICT, WITHOUT ROWID;
    ",
    },
    Migration {
        version: 5,
        name: "audit sync: the collector and how far it has acknowledged",
        sql: "
        CREATE TABLE sync_state (
            id           INTEGER PRIMARY KEY CHECK (id = 1),
            url          TEXT NOT NULL,
            certificate  TEXT NOT NULL,     -- the collector's pinned certificate (or CA), PEM
            enrolled_at  TEXT NOT NULL,
            acked_seq    INTEGER NOT NULL DEFAULT 0,
            last_success TEXT,
            last_attempt TEXT,
            last_error   TEXT
        ) STRICT;
    ",
    },
    Migration {
        version: 6,
        name: "global record ids (UUIDv7) for the typed changes",
        sql: "
        -- A global id (UUIDv7, 16 bytes) beside each record's local row id: changes name
        -- records by it, so changes made on two desktops never collide. Records written before
        -- get one made from their creation time; a signed note is final, so its guard steps
        -- aside for this one write.
        ALTER TABLE patients ADD COLUMN uuid BLOB CHECK (uuid IS NULL OR length(uuid) = 16);
        ALTER TABLE encounters ADD COLUMN uuid BLOB CHECK (uuid IS NULL OR length(uuid) = 16);
        ALTER TABLE notes ADD COLUMN uuid BLOB CHECK (uuid IS NULL OR length(uuid) = 16);
        ALTER TABLE observations ADD COLUMN uuid BLOB CHECK (uuid IS NULL OR length(uuid) = 16);
        ALTER TABLE problems ADD COLUMN uuid BLOB CHECK (uuid IS NULL OR length(uuid) = 16);
        ALTER TABLE allergies ADD COLUMN uuid BLOB CHECK (uuid IS NULL OR length(uuid) = 16);
        ALTER TABLE medications ADD COLUMN uuid BLOB CHECK (uuid IS NULL OR length(uuid) = 16);
        ALTER TABLE immunizations ADD COLUMN uuid BLOB CHECK (uuid IS NULL OR length(uuid) = 16);
        DROP TRIGGER notes_signed_are_final;
        UPDATE patients SET uuid = unhex(printf('%012x', CAST(round((julianday(created_at) - 2440587.5) * 86400000) AS INTEGER)) || '7' || substr(hex(randomblob(2)), 2) || substr('89AB', 1 + abs(random() % 4), 1) || substr(hex(randomblob(2)), 2) || hex(randomblob(6)));
        UPDATE encounters SET uuid = unhex(printf('%012x', CAST(round((julianday(created_at) - 2440587.5) * 86400000) AS INTEGER)) || '7' || substr(hex(randomblob(2)), 2) || substr('89AB', 1 + abs(random() % 4), 1) || substr(hex(randomblob(2)), 2) || hex(randomblob(6)));
        UPDATE notes SET uuid = unhex(printf('%012x', CAST(round((julianday(created_at) - 2440587.5) * 86400000) AS INTEGER)) || '7' || substr(hex(randomblob(2)), 2) || substr('89AB', 1 + abs(random() % 4), 1) || substr(hex(randomblob(2)), 2) || hex(randomblob(6)));
        UPDATE observations SET uuid = unhex(printf('%012x', CAST(round((julianday(recorded_at) - 2440587.5) * 86400000) AS INTEGER)) || '7' || substr(hex(randomblob(2)), 2) || substr('89AB', 1 + abs(random() % 4), 1) || substr(hex(randomblob(2)), 2) || hex(randomblob(6)));
        UPDATE problems SET uuid = unhex(printf('%012x', CAST(round((julianday(recorded_at) - 2440587.5) * 86400000) AS INTEGER)) || '7' || substr(hex(randomblob(2)), 2) || substr('89AB', 1 + abs(random() % 4), 1) || substr(hex(randomblob(2)), 2) || hex(randomblob(6)));
        UPDATE allergies SET uuid = unhex(printf('%012x', CAST(round((julianday(recorded_at) - 2440587.5) * 86400000) AS INTEGER)) || '7' || substr(hex(randomblob(2)), 2) || substr('89AB', 1 + abs(random() % 4), 1) || substr(hex(randomblob(2)), 2) || hex(randomblob(6)));
        UPDATE medications SET uuid = unhex(printf('%012x', CAST(round((julianday(recorded_at) - 2440587.5) * 86400000) AS INTEGER)) || '7' || substr(hex(randomblob(2)), 2) || substr('89AB', 1 + abs(random() % 4), 1) || substr(hex(randomblob(2)), 2) || hex(randomblob(6)));
        UPDATE immunizations SET uuid = unhex(printf('%012x', CAST(round((julianday(recorded_at) - 2440587.5) * 86400000) AS INTEGER)) || '7' || substr(hex(randomblob(2)), 2) || substr('89AB', 1 + abs(random() % 4), 1) || substr(hex(randomblob(2)), 2) || hex(randomblob(6)));
        CREATE TRIGGER notes_signed_are_final BEFORE UPDATE ON notes WHEN OLD.status = 'signed'
        BEGIN SELECT RAISE(ABORT, 'a signed note cannot be changed'); END;
        CREATE UNIQUE INDEX patients_uuid ON patients (uuid);
        CREATE UNIQUE INDEX encounters_uuid ON encounters (uuid);
        CREATE UNIQUE INDEX notes_uuid ON notes (uuid);
        CREATE UNIQUE INDEX problems_uuid ON problems (uuid);
        CREATE UNIQUE INDEX allergies_uuid ON allergies (uuid);
        CREATE UNIQUE INDEX medications_uuid ON medications (uuid);
        CREATE UNIQUE INDEX immunizations_uuid ON immunizations (uuid);
        -- Observations are many and never looked up by global id yet: no index to keep up.
    ",
    },
    Migration {
        version: 7,
        name: "clinical fields sealed under the clinical compartment",
        sql: concat!(content_keys_sql!(), "
        -- The sealed columns become ANY (a sealed field is a BLOB; rows written before keep their
        -- text until the upgrade seals them, in batches, at an administrator's sign-in). Their
        -- CHECKs go: the values are ciphertext, checked by core's types before sealing. Tables
        -- are rebuilt parents first under new names, so no foreign key ever points at nothing.
        DROP TRIGGER notes_signed_are_final;
        DROP TRIGGER notes_signed_stay;
        CREATE TABLE encounters_new (
            id           INTEGER PRIMARY KEY,
            patient_id   INTEGER NOT NULL REFERENCES patients (id),
            start        TEXT NOT NULL,
            kind         TEXT NOT NULL CHECK (kind IN ('office', 'telephone', 'telehealth', 'home')),
            clinician_id INTEGER REFERENCES users (id),
            clinician    TEXT NOT NULL,
            reason       ANY NOT NULL,
            created_at   TEXT NOT NULL,
            created_by   TEXT NOT NULL,
            uuid         BLOB CHECK (uuid IS NULL OR length(uuid) = 16)
        ) STRICT;
        INSERT INTO encounters_new SELECT * FROM encounters;
        CREATE TABLE notes_new (
            id           INTEGER PRIMARY KEY,
            patient_id   INTEGER NOT NULL REFERENCES patients (id),
            author_id    INTEGER REFERENCES users (id),
            author       TEXT NOT NULL,
            text         ANY NOT NULL,
            status       TEXT NOT NULL CHECK (status IN ('draft', 'signed')),
            created_at   TEXT NOT NULL,
            updated_at   TEXT NOT NULL,
            signed_by    TEXT,
            signed_at    TEXT,
            content_sha256 ANY,
            encounter_id INTEGER REFERENCES encounters_new (id),
            kind         TEXT NOT NULL DEFAULT 'note' CHECK (kind IN ('note', 'addendum', 'amendment')),
            parent_id    INTEGER REFERENCES notes_new (id),
            format       TEXT NOT NULL DEFAULT 'free' CHECK (format IN ('free', 'soap')),
            subjective   ANY,
            objective    ANY,
            assessment   ANY,
            plan         ANY,
            uuid         BLOB CHECK (uuid IS NULL OR length(uuid) = 16),
            signature    ANY,               -- the signer's Ed25519 signature, sealed
            signer_key   ANY                -- and their public key, sealed
        ) STRICT;
        INSERT INTO notes_new SELECT *, NULL, NULL FROM notes;
        CREATE TABLE observations_new (
            id           INTEGER PRIMARY KEY,
            patient_id   INTEGER NOT NULL REFERENCES patients (id),
            encounter_id INTEGER REFERENCES encounters_new (id),
            code         TEXT NOT NULL,
            value        ANY NOT NULL,
            unit         TEXT NOT NULL,
            effective    TEXT NOT NULL,
            flag         ANY NOT NULL,
            recorded_by  TEXT NOT NULL,
            recorded_at  TEXT NOT NULL,
            uuid         BLOB CHECK (uuid IS NULL OR length(uuid) = 16)
        ) STRICT;
        INSERT INTO observations_new SELECT * FROM observations;
        CREATE TABLE problems_new (
            id           INTEGER PRIMARY KEY,
            patient_id   INTEGER NOT NULL REFERENCES patients (id),
            text         ANY NOT NULL,
            system       ANY,
            code         ANY,
            status       TEXT NOT NULL CHECK (status IN ('active', 'resolved', 'inactive')),
            onset        TEXT,
            resolved_on  TEXT,
            recorded_by  TEXT NOT NULL,
            recorded_at  TEXT NOT NULL,
            updated_by   TEXT NOT NULL,
            updated_at   TEXT NOT NULL,
            uuid         BLOB CHECK (uuid IS NULL OR length(uuid) = 16)
        ) STRICT;
        INSERT INTO problems_new SELECT * FROM problems;
        CREATE TABLE allergies_new (
            id           INTEGER PRIMARY KEY,
            patient_id   INTEGER NOT NULL REFERENCES patients (id),
            substance    ANY NOT NULL,
            reaction     ANY,
            severity     ANY,
            category     ANY,
            status       TEXT NOT NULL CHECK (status IN ('active', 'resolved')),
            recorded_by  TEXT NOT NULL,
            recorded_at  TEXT NOT NULL,
            updated_by   TEXT NOT NULL,
            updated_at   TEXT NOT NULL,
            uuid         BLOB CHECK (uuid IS NULL OR length(uuid) = 16)
        ) STRICT;
        INSERT INTO allergies_new SELECT * FROM allergies;
        CREATE TABLE medications_new (
            id           INTEGER PRIMARY KEY,
            patient_id   INTEGER NOT NULL REFERENCES patients (id),
            name         ANY NOT NULL,
            dose         ANY,
            route        ANY,
            frequency    ANY,
            start        TEXT,
            stop         TEXT,
            status       TEXT NOT NULL CHECK (status IN ('active', 'stopped')),
            recorded_by  TEXT NOT NULL,
            recorded_at  TEXT NOT NULL,
            updated_by   TEXT NOT NULL,
            updated_at   TEXT NOT NULL,
            uuid         BLOB CHECK (uuid IS NULL OR length(uuid) = 16)
        ) STRICT;
        INSERT INTO medications_new SELECT * FROM medications;
        CREATE TABLE immunizations_new (
            id           INTEGER PRIMARY KEY,
            patient_id   INTEGER NOT NULL REFERENCES patients (id),
            vaccine      ANY NOT NULL,
            cvx          ANY NOT NULL,
            date         TEXT NOT NULL,
            lot          ANY,
            site         ANY,
            status       TEXT NOT NULL CHECK (status IN ('completed', 'entered_in_error')),
            recorded_by  TEXT NOT NULL,
            recorded_at  TEXT NOT NULL,
            updated_by   TEXT NOT NULL,
            updated_at   TEXT NOT NULL,
            uuid         BLOB CHECK (uuid IS NULL OR length(uuid) = 16)
        ) STRICT;
        INSERT INTO immunizations_new SELECT * FROM immunizations;
        DROP TABLE notes;
        DROP TABLE observations;
        DROP TABLE encounters;
        DROP TABLE problems;
        DROP TABLE allergies;
        DROP TABLE medications;
        DROP TABLE immunizations;
        ALTER TABLE encounters_new RENAME TO encounters;
        ALTER TABLE notes_new RENAME TO notes;
        ALTER TABLE observations_new RENAME TO observations;
        ALTER TABLE problems_new RENAME TO problems;
        ALTER TABLE allergies_new RENAME TO allergies;
        ALTER TABLE medications_new RENAME TO medications;
        ALTER TABLE immunizations_new RENAME TO immunizations;
        CREATE INDEX encounters_patient ON encounters (patient_id, start);
        CREATE UNIQUE INDEX encounters_uuid ON encounters (uuid);
        CREATE INDEX notes_patient ON notes (patient_id);
        CREATE INDEX notes_parent ON notes (parent_id) WHERE parent_id IS NOT NULL;
        CREATE UNIQUE INDEX notes_uuid ON notes (uuid);
        CREATE INDEX observations_patient ON observations (patient_id, code, effective);
        CREATE INDEX problems_patient ON problems (patient_id);
        CREATE UNIQUE INDEX problems_uuid ON problems (uuid);
        CREATE INDEX allergies_patient ON allergies (patient_id);
        CREATE UNIQUE INDEX allergies_uuid ON allergies (uuid);
        CREATE INDEX medications_patient ON medications (patient_id);
        CREATE UNIQUE INDEX medications_uuid ON medications (uuid);
        CREATE INDEX immunizations_patient ON immunizations (patient_id);
        CREATE UNIQUE INDEX immunizations_uuid ON immunizations (uuid);
        CREATE TRIGGER notes_signed_are_final BEFORE UPDATE ON notes WHEN OLD.status = 'signed'
        BEGIN SELECT RAISE(ABORT, 'a signed note cannot be changed'); END;
        CREATE TRIGGER notes_signed_stay BEFORE DELETE ON notes WHEN OLD.status = 'signed'
        BEGIN SELECT RAISE(ABORT, 'a signed note cannot be removed'); END;

        -- A rotation of the database key owed since a user was disabled or had their password
        -- reset, until it is done (the next administrator sign-in finishes one a crash cut).
        CREATE TABLE key_rotation (
            id           INTEGER PRIMARY KEY CHECK (id = 1),
            reason       TEXT NOT NULL,
            requested_at TEXT NOT NULL,
            requested_by TEXT NOT NULL
        ) STRICT;

        -- Whether rows written before this version still wait to be sealed.
        CREATE TABLE field_encryption (
            id       INTEGER PRIMARY KEY CHECK (id = 1),
            done_at  TEXT
        ) STRICT;
        INSERT INTO field_encryption (id, done_at) SELECT 1,
            CASE WHEN EXISTS (SELECT 1 FROM encounters) OR EXISTS (SELECT 1 FROM notes)
                   OR EXISTS (SELECT 1 FROM observations) OR EXISTS (SELECT 1 FROM problems)
                   OR EXISTS (SELECT 1 FROM allergies) OR EXISTS (SELECT 1 FROM medications)
                   OR EXISTS (SELECT 1 FROM immunizations)
                 THEN NULL ELSE strftime('%Y-%m-%dT%H:%M:%fZ', 'now') END;
    "),
    },
    Migration {
        version: 8,
        name: "security log",
        sql: "
        -- Who may do what, hash-chained and signed (docs/security.md, \"The security log\").
        -- kind and subject index the entries an append checks against; they are checked
        -- against the signed entry at every unlock.
        CREATE TABLE security_log (
            seq       INTEGER PRIMARY KEY,
            kind      TEXT NOT NULL,
            subject   TEXT NOT NULL,
            entry     TEXT NOT NULL,
            signature BLOB NOT NULL CHECK (length(signature) = 64),
            hash      BLOB NOT NULL CHECK (length(hash) = 32)
        ) STRICT;
        CREATE INDEX security_log_subject ON security_log (kind, subject);
        -- The log's length and head as each slot's owner last verified it, with a MAC only
        -- their password yields: their next unlock checks the signatures after it only, and
        -- notices a log cut back below it.
        -- A rotated compartment's earlier private key, sealed to the next epoch's public key,
        -- so fields not yet re-sealed stay readable to those who hold the new key.
        CREATE TABLE retired_keys (
            compartment TEXT NOT NULL,
            epoch       INTEGER NOT NULL,
            ephemeral   BLOB NOT NULL CHECK (length(ephemeral) = 32),
            nonce       BLOB NOT NULL CHECK (length(nonce) = 12),
            sealed      BLOB NOT NULL,
            created_at  TEXT NOT NULL,
            PRIMARY KEY (compartment, epoch)
        ) STRICT;
        -- A compartment rotation owed (a holder disabled, their role changed, their password
        -- reset, or asked for): done by the next session that holds the key, resumable.
        -- rotated_to is the epoch made for it, once made; the re-sealing then goes on.
        CREATE TABLE compartment_rotation (
            compartment  TEXT PRIMARY KEY,
            reason       TEXT NOT NULL,
            requested_at TEXT NOT NULL,
            requested_by TEXT NOT NULL,
            rotated_to   INTEGER
        ) STRICT;
        -- The security log length the collector holds, for the next push's overlap check.
        ALTER TABLE sync_state ADD COLUMN security_entries INTEGER NOT NULL DEFAULT 0;
        CREATE TABLE security_heads (
            slot_key TEXT PRIMARY KEY,
            entries  INTEGER NOT NULL,
            head     BLOB NOT NULL CHECK (length(head) = 32),
            mac      BLOB NOT NULL CHECK (length(mac) = 32)
        ) STRICT;
        CREATE TRIGGER IF NOT EXISTS security_log_no_update BEFORE UPDATE ON security_log
        BEGIN SELECT RAISE(ABORT, 'the security log is append-only'); END;
        CREATE TRIGGER IF NOT EXISTS security_log_no_delete BEFORE DELETE ON security_log
        BEGIN SELECT RAISE(ABORT, 'the security log is append-only'); END;
    ",
    },
    Migration {
        version: 9,
        name: "every patient-scoped read counts toward the chart-burst alert",
        sql: "
        -- The rule counts the distinct patients one user read in a window, whatever the
        -- read (a chart, a note list, a history, an export): by actor and time.
        CREATE INDEX audit_log_actor_patient_time ON audit_log (actor, time)
            WHERE patient_id IS NOT NULL;
    ",
    },
    Migration {
        version: 10,
        name: "the key each source's exports are signed with",
        sql: "
        -- Pinned at the first signed import from a source (trust on first use); every later
        -- file naming that source must be signed by the same key.
        CREATE TABLE import_sources (
            source     TEXT PRIMARY KEY,
            public_key BLOB NOT NULL CHECK (length(public_key) = 32),
            pinned_at  TEXT NOT NULL
        ) STRICT;
    ",
    },
    Migration {
        version: 11,
        name: "which key signed each imported record; restores and sync epochs",
        sql: "
        -- The sending vault's key (32 bytes) that signed the file a record came in with; NULL
        -- for a file made before exports were signed. The chart shows it beside the item.
        ALTER TABLE imported_records ADD COLUMN signer_key BLOB
            CHECK (signer_key IS NULL OR length(signer_key) = 32);
        CREATE INDEX imported_records_local ON imported_records (resource_type, local_id);

        -- Every `vault restore`: the audit entry that records it, and the backup's audit head
        -- (the last entry the backup held). Sync goes on from that head as a new chain epoch.
        CREATE TABLE vault_restores (
            restore_seq INTEGER PRIMARY KEY,
            base_seq    INTEGER NOT NULL,
            restored_at TEXT NOT NULL
        ) STRICT;
        CREATE TRIGGER vault_restores_no_update BEFORE UPDATE ON vault_restores
        BEGIN SELECT RAISE(ABORT, 'the list of restores is append-only'); END;
        CREATE TRIGGER vault_restores_no_delete BEFORE DELETE ON vault_restores
        BEGIN SELECT RAISE(ABORT, 'the list of restores is append-only'); END;
        -- The collector's epoch for this device, and the head a pending epoch supersedes.
        ALTER TABLE sync_state ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE sync_state ADD COLUMN follows_seq INTEGER;
        ALTER TABLE sync_state ADD COLUMN follows_hash BLOB;
    ",
    },
    Migration {
        version: 12,
        name: "restricted patients' keys",
        sql: "
        -- A restricted patient's key, of an epoch, sealed to one holder each row: a member of
        -- the care team ('user:NAME'), the recovery slot ('recovery') or the clinical key of
        -- an epoch ('clinical:N', the break-the-glass path). docs/security.md gives the format.
        CREATE TABLE patient_keys (
            seq         INTEGER PRIMARY KEY,
            patient_id  INTEGER NOT NULL REFERENCES patients (id),
            epoch       INTEGER NOT NULL,
            public_key  BLOB NOT NULL CHECK (length(public_key) = 32),
            holder      TEXT NOT NULL,
            to_public   BLOB NOT NULL CHECK (length(to_public) = 32),
            ephemeral   BLOB NOT NULL CHECK (length(ephemeral) = 32),
            nonce       BLOB NOT NULL CHECK (length(nonce) = 12),
            sealed      BLOB NOT NULL,
            created_at  TEXT NOT NULL,
            UNIQUE (patient_id, epoch, holder, to_public)
        ) STRICT;
        -- A restricted patient's demographics, sealed to the patient's key ('psealed:v1:…');
        -- the clear columns then hold placeholders. NULL for every other patient.
        ALTER TABLE patients ADD COLUMN sealed TEXT;
        -- The few restricted charts, found without reading every patient (the search, the
        -- unlock's checks and a key rotation look for them).
        CREATE INDEX patients_restricted ON patients (id) WHERE restricted = 1;
    ",
    },
    Migration {
        version: 13,
        name: "schedules and appointments",
        sql: "
        -- A clinician's working hours on one weekday (0 Monday … 6 Sunday), local times in
        -- the clinic's zone: '08:00-12:00,13:00-17:00' (the gap is the break) or 'off'.
        CREATE TABLE schedule_hours (
            clinician  TEXT NOT NULL,
            weekday    INTEGER NOT NULL CHECK (weekday BETWEEN 0 AND 6),
            hours      TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            updated_by TEXT NOT NULL,
            PRIMARY KEY (clinician, weekday)
        ) STRICT;
        CREATE TABLE schedule_days_off (
            clinician  TEXT NOT NULL,
            day        TEXT NOT NULL,
            created_at TEXT NOT NULL,
            created_by TEXT NOT NULL,
            PRIMARY KEY (clinician, day)
        ) STRICT;
        CREATE TABLE appointment_types (
            name       TEXT PRIMARY KEY COLLATE NOCASE,
            minutes    INTEGER NOT NULL CHECK (minutes BETWEEN 5 AND 480),
            updated_at TEXT NOT NULL,
            updated_by TEXT NOT NULL
        ) STRICT;
        -- Written only by the appointment changes (chart/appointment.rs). Instants in UTC.
        CREATE TABLE appointments (
            id            INTEGER PRIMARY KEY,
            uuid          BLOB NOT NULL UNIQUE CHECK (length(uuid) = 16),
            patient_id    INTEGER NOT NULL REFERENCES patients (id),
            clinician     TEXT NOT NULL,
            start         TEXT NOT NULL,
            end           TEXT NOT NULL,
            type          TEXT,
            reason        TEXT,
            status        TEXT NOT NULL CHECK (status IN
                ('booked', 'arrived', 'in_room', 'seen', 'no_show', 'cancelled')),
            overbooked    INTEGER NOT NULL DEFAULT 0 CHECK (overbooked IN (0, 1)),
            cancel_reason TEXT,
            arrived_at    TEXT,
            roomed_at     TEXT,
            seen_at       TEXT,
            encounter_id  INTEGER REFERENCES encounters (id),
            created_at    TEXT NOT NULL,
            created_by    TEXT NOT NULL,
            updated_at    TEXT NOT NULL,
            updated_by    TEXT NOT NULL,
            CHECK (end > start)
        ) STRICT;
        CREATE INDEX appointments_clinician_start ON appointments (clinician, start);
        CREATE INDEX appointments_start ON appointments (start);
        CREATE INDEX appointments_patient ON appointments (patient_id, start);
    ",
    },
    Migration {
        version: 14,
        name: "phone numbers found by their last digits",
        sql: "
        -- The phone's digits reversed, so that its last seven to ten digits (a number given
        -- without its country or area code) are a prefix an index finds.
        ALTER TABLE patients ADD COLUMN phone_rev TEXT;
        UPDATE patients SET phone_rev = (
            WITH RECURSIVE r(i, out) AS (
                SELECT length(patients.phone_digits), ''
                UNION ALL SELECT i - 1, out || substr(patients.phone_digits, i, 1) FROM r WHERE i > 0)
            SELECT out FROM r WHERE i = 0)
        WHERE phone_digits IS NOT NULL AND phone_digits <> '';
        CREATE INDEX patients_phone_rev ON patients (phone_rev) WHERE phone_rev IS NOT NULL;
    ",
    },
    Migration {
        version: 15,
        name: "the reason a medication or allergy was saved despite the allergy check",
        sql: "
        -- Sealed under the clinical compartment, as the item's other clinical fields.
        ALTER TABLE medications ADD COLUMN allergy_override ANY;
        ALTER TABLE allergies ADD COLUMN allergy_override ANY;
    ",
    },
    Migration {
        version: 16,
        name: "list items marked entered in error, with the reason",
        sql: "
        -- A vital sign, problem, allergy, medication or immunization found to be a mistake
        -- stays in the record, marked: one row here per item, keyed by the item's global id
        -- (uuid) and its local row. The reason is sealed under the clinical compartment, as
        -- the item's own clinical fields are.
        CREATE TABLE entered_in_error (
            id          INTEGER PRIMARY KEY,
            uuid        BLOB NOT NULL UNIQUE,
            patient_id  INTEGER NOT NULL REFERENCES patients (id),
            item        TEXT NOT NULL CHECK (item IN ('observation', 'problem', 'allergy', 'medication', 'immunization')),
            item_id     INTEGER NOT NULL,
            reason      ANY NOT NULL,
            marked_by   TEXT NOT NULL,
            marked_at   TEXT NOT NULL,
            UNIQUE (item, item_id)
        ) STRICT;
        CREATE INDEX entered_in_error_patient ON entered_in_error (patient_id);
    ",
    },
    Migration {
        version: 17,
        name: "lab results and reports",
        sql: "
        -- A report: tests ordered and resulted together (a lipid panel, a blood count).
        -- Its LOINC code and name are sealed under the clinical compartment.
        CREATE TABLE lab_reports (
            id           INTEGER PRIMARY KEY,
            uuid         BLOB NOT NULL UNIQUE CHECK (length(uuid) = 16),
            patient_id   INTEGER NOT NULL REFERENCES patients (id),
            encounter_id INTEGER REFERENCES encounters (id),
            loinc        ANY NOT NULL,
            name         ANY NOT NULL,
            collected_at TEXT NOT NULL,
            recorded_by  TEXT NOT NULL,
            recorded_at  TEXT NOT NULL
        ) STRICT;
        CREATE INDEX lab_reports_patient ON lab_reports (patient_id);

        -- One version of a result. A correction is a new row naming the row it replaces,
        -- which stays; entered in error marks the current row. The test, value, unit,
        -- range, flag and reasons are sealed under the clinical compartment; status and
        -- times are in clear, as every item's are.
        CREATE TABLE lab_results (
            id           INTEGER PRIMARY KEY,
            uuid         BLOB NOT NULL UNIQUE CHECK (length(uuid) = 16),
            patient_id   INTEGER NOT NULL REFERENCES patients (id),
            report_id    INTEGER REFERENCES lab_reports (id),
            replaces     INTEGER UNIQUE REFERENCES lab_results (id),
            loinc        ANY NOT NULL,
            name         ANY NOT NULL,
            value        ANY NOT NULL,
            unit         ANY,
            range        ANY,
            flag         ANY,
            status       TEXT NOT NULL
                         CHECK (status IN ('preliminary', 'final', 'corrected', 'entered-in-error')),
            reason       ANY,
            error_reason ANY,
            marked_by    TEXT,
            marked_at    TEXT,
            collected_at TEXT NOT NULL,
            reported_at  TEXT NOT NULL,
            recorded_by  TEXT NOT NULL,
            recorded_at  TEXT NOT NULL
        ) STRICT;
        CREATE INDEX lab_results_patient ON lab_results (patient_id, collected_at);
    ",
    },
    Migration {
        version: 18,
        name: "USCDI demographics: race, ethnicity, preferred language, birth sex, sexual orientation",
        sql: "
        -- Demographics, beside the others in this table (NULL for a restricted patient, whose
        -- demographics are sealed whole): race and ethnicity as comma-separated CDC codes,
        -- the language as BCP 47, birth sex F, M or UNK, sexual orientation a SNOMED CT code
        -- or null flavour.
        ALTER TABLE patients ADD COLUMN race TEXT;
        ALTER TABLE patients ADD COLUMN ethnicity TEXT;
        ALTER TABLE patients ADD COLUMN language TEXT;
        ALTER TABLE patients ADD COLUMN birth_sex TEXT;
        ALTER TABLE patients ADD COLUMN sexual_orientation TEXT;
    ",
    },
];

/// Seals the clinical columns that rows written before version 7 still hold in clear, a batch
/// of `batch` rows of each table per transaction (the session's write key must be ready).
/// Returns the number of rows sealed when every row is sealed, or None when `stop_after`
/// batches were done first (a test standing in for a crash). This is the upgrade's, and a
/// migration's, exemption from the one-writer rule: it writes no value of its own.
/// Re-seals, with the session's write key, every clinical field sealed under a content key of
/// an epoch before `epoch` (a rotation): a batch of rows per table at a time, each batch its
/// own transaction, so a crash loses nothing and the next holder's sign-in goes on. Returns
/// the fields re-sealed, or None when stopped after `stop_after` batches (tests).
pub(crate) fn reseal_old_fields(
    conn: &mut rusqlite::Connection,
    epoch: u64,
    batch: i64,
    stop_after: Option<usize>,
) -> Result<Option<u64>, crate::CoreError> {
    conn.execute_batch(
        "CREATE TEMP TABLE IF NOT EXISTS old_content_keys (id BLOB PRIMARY KEY) WITHOUT ROWID;
         DELETE FROM temp.old_content_keys;",
    )?;
    // A field names its key by the 8 bytes after its format byte (big-endian id).
    let ids: Vec<i64> = conn
        .prepare("SELECT id FROM content_keys WHERE compartment = 'clinical' AND epoch < ?1")?
        .query_map([epoch as i64], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for id in ids {
        conn.execute(
            "INSERT OR IGNORE INTO temp.old_content_keys (id) VALUES (?1)",
            [(id as u64).to_be_bytes().to_vec()],
        )?;
    }
    let old = |table: &str, c: &str| {
        format!("(typeof({table}.{c}) = 'blob' AND substr({table}.{c}, 2, 8) IN (SELECT id FROM temp.old_content_keys))")
    };
    in_batches(conn, batch, stop_after, |tx, table, columns, from, to| {
        // UPDATE … FROM patients: the patient's uuid joined once per row, not looked up twice
        // per field.
        let sets = columns
            .iter()
            .map(|c| {
                format!(
                    "{c} = CASE WHEN {} THEN cr_seal(cr_open({table}.{c}, '{table}', '{c}', {table}.uuid, p.uuid), '{table}', '{c}', {table}.uuid, p.uuid) ELSE {c} END",
                    old(table, c)
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let any_old = columns
            .iter()
            .map(|c| old(table, c))
            .collect::<Vec<_>>()
            .join(" OR ");
        tx.execute(
            &format!(
                "UPDATE {table} SET {sets} FROM patients p
                  WHERE p.id = {table}.patient_id AND {table}.id > ?1 AND {table}.id <= ?2 AND ({any_old})"
            ),
            rusqlite::params![from, to],
        )
    })
}

/// Runs `update(tx, table, columns, after id, up to id)` over every table of
/// [`SEALED_COLUMNS`], `batch` rows by id at a time, each batch its own IMMEDIATE transaction
/// in which the signed-note guard steps aside. Returns the rows changed, or None when stopped
/// after `stop_after` batches (tests that stop it as a crash would).
fn in_batches(
    conn: &mut rusqlite::Connection,
    batch: i64,
    stop_after: Option<usize>,
    update: impl Fn(&rusqlite::Transaction<'_>, &str, &[&str], i64, i64) -> rusqlite::Result<usize>,
) -> Result<Option<u64>, crate::CoreError> {
    let mut after: Vec<i64> = vec![0; SEALED_COLUMNS.len()];
    let mut batches = 0;
    let mut total = 0u64;
    loop {
        if stop_after == Some(batches) {
            return Ok(None);
        }
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        // A signed note is final; its guard steps aside for this rewrite of its sealed
        // fields (the text stays what was signed), in this transaction only.
        tx.execute_batch("DROP TRIGGER IF EXISTS notes_signed_are_final")?;
        let mut any = false;
        for (i, (table, columns)) in SEALED_COLUMNS.iter().enumerate() {
            let last: Option<i64> = tx.query_row(
                &format!(
                    "SELECT max(id) FROM (SELECT id FROM {table} WHERE id > ?1 ORDER BY id LIMIT ?2)"
                ),
                rusqlite::params![after[i], batch],
                |r| r.get(0),
            )?;
            let Some(last) = last else { continue };
            any = true;
            total += update(&tx, table, columns, after[i], last)? as u64;
            after[i] = last;
        }
        tx.execute_batch(
            "CREATE TRIGGER notes_signed_are_final BEFORE UPDATE ON notes WHEN OLD.status = 'signed'
             BEGIN SELECT RAISE(ABORT, 'a signed note cannot be changed'); END;",
        )?;
        tx.commit()?;
        if !any {
            return Ok(Some(total));
        }
        batches += 1;
    }
}

pub(crate) fn seal_clear_fields(
    conn: &mut rusqlite::Connection,
    batch: i64,
    stop_after: Option<usize>,
) -> Result<Option<u64>, crate::CoreError> {
    in_batches(conn, batch, stop_after, |tx, table, columns, from, to| {
        let sets = columns
            .iter()
            .map(|c| {
                format!(
                    "{c} = CASE WHEN typeof({c}) IN ('blob', 'null') THEN {c} ELSE {} END",
                    crate::keys::seal_sql(table, c)
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let clear = columns
            .iter()
            .map(|c| format!("typeof({c}) NOT IN ('blob', 'null')"))
            .collect::<Vec<_>>()
            .join(" OR ");
        tx.execute(
            &format!("UPDATE {table} SET {sets} WHERE id > ?1 AND id <= ?2 AND ({clear})"),
            rusqlite::params![from, to],
        )
    })
}
