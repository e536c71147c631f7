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
        "audit_checkpoints_no_delete",
        "CREATE TRIGGER IF NOT EXISTS audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
         BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END",
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
];
