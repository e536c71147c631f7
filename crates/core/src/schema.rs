//! The clinic's schema, as migrations the vault applies in order at unlock.

use chartroom_vault::Migration;

pub const MIGRATIONS: &[Migration] = &[Migration {
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
}];
