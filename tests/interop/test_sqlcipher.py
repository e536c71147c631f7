"""A standard SQLCipher 4 binding (PyPI sqlcipher3, not our code) opens a Chartroom vault
with the key from `chartroom vault export-key`, and nothing opens it without that key."""

import sqlcipher3
import pytest

ADMIN_PW = "admin-password-1"
MARKERS = ["MARKERqz7wx", "MARKER0042xy"]


def connect(path, hex_key=None):
    conn = sqlcipher3.connect(str(path))
    if hex_key is not None:
        conn.execute(f"PRAGMA key = \"x'{hex_key}'\"")
    return conn


def user_names(path, hex_key):
    conn = connect(path, hex_key)
    try:
        return sorted(row[0] for row in conn.execute("SELECT name FROM users"))
    finally:
        conn.close()


@pytest.fixture
def vault(cli):
    cli.run("vault", "init", "--admin", "admin", password=ADMIN_PW)
    for name in MARKERS:
        cli.run("--user", "admin", "user", "add", name, "--role", "nurse", password=ADMIN_PW, new_password="nurse-password")
    return cli


def export_key(cli) -> str:
    key = cli.json("--user", "admin", "vault", "export-key", password=ADMIN_PW)["key"]
    assert len(key) == 64 and all(c in "0123456789abcdef" for c in key)
    return key


def test_exported_key_opens_the_database_in_sqlcipher3(vault):
    key = export_key(vault)
    db = vault.vault / "chartroom.db"
    assert user_names(db, key) == sorted(["admin", *MARKERS])
    version = connect(db, key).execute("PRAGMA cipher_version").fetchone()[0]
    assert version.startswith("4."), version


def test_no_key_or_a_wrong_key_opens_nothing(vault):
    db = vault.vault / "chartroom.db"
    with pytest.raises(sqlcipher3.DatabaseError):
        connect(db).execute("SELECT count(*) FROM sqlite_master").fetchone()
    with pytest.raises(sqlcipher3.DatabaseError):
        connect(db, "00" * 32).execute("SELECT count(*) FROM sqlite_master").fetchone()


def test_database_and_wal_hold_no_plaintext(cli):
    cli.run("vault", "init", "--admin", "admin", password=ADMIN_PW)
    key = export_key(cli)
    # A reader holding a snapshot keeps the WAL from being checkpointed away, so the users
    # added next stay in the WAL file where the test can read them as bytes.
    holder = connect(cli.vault / "chartroom.db", key)
    holder.execute("BEGIN")
    holder.execute("SELECT count(*) FROM users").fetchone()
    for name in MARKERS:
        cli.run("--user", "admin", "user", "add", name, "--role", "nurse", password=ADMIN_PW, new_password="nurse-password")
    files = {p.name: p.read_bytes() for p in cli.vault.glob("chartroom.db*")}
    holder.rollback()
    holder.close()
    assert "chartroom.db-wal" in files and len(files["chartroom.db-wal"]) > 0, sorted(files)
    assert not files["chartroom.db"].startswith(b"SQLite format 3")
    for name, data in files.items():
        for marker in MARKERS + [ADMIN_PW]:
            assert marker.encode() not in data, f"{marker} in {name}"
    # The markers did reach the database: the test would see them if they were in clear.
    assert set(MARKERS) <= set(user_names(cli.vault / "chartroom.db", key))


def test_after_rekey_only_the_new_key_opens(vault):
    old = export_key(vault)
    vault.run("--user", "admin", "vault", "rekey", password=ADMIN_PW)
    new = export_key(vault)
    assert new != old
    db = vault.vault / "chartroom.db"
    assert "admin" in user_names(db, new)
    with pytest.raises(sqlcipher3.DatabaseError):
        user_names(db, old)
