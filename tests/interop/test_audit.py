"""The audit trail against an insider and against FHIR.

An insider with the raw key (from `chartroom vault export-key`) opens the database with a
standard SQLCipher binding (PyPI sqlcipher3, not our code), drops the append-only triggers
and changes, deletes or inserts an audit row: `chartroom audit verify` must name the exact
first bad sequence. The FHIR export is checked with the PyPI fhir.resources R4B models.
"""

import json
import shutil

import pytest
import sqlcipher3
from fhir.resources.R4B.auditevent import AuditEvent

ADMIN_PW = "admin-password-1"
DOCTOR_PW = "doctor-password-1"
AUDITOR_PW = "auditor-password-1"


@pytest.fixture
def clinic(cli):
    cli.run("vault", "init", "--admin", "admin", password=ADMIN_PW)
    cli.run("--user", "admin", "user", "add", "dr.adeyemi", "--role", "physician",
            password=ADMIN_PW, new_password=DOCTOR_PW)
    cli.run("--user", "admin", "user", "add", "audit.kim", "--role", "auditor",
            password=ADMIN_PW, new_password=AUDITOR_PW)
    doctor = ("--user", "dr.adeyemi")
    for family, given in [("Haddad", "Lina"), ("Nakamura", "Ren"), ("Okonkwo", "Chidi")]:
        cli.run(*doctor, "patient", "add", "--family", family, "--given", given,
                "--birth-date", "1970-05-06", "--sex", "unknown", password=DOCTOR_PW)
    for pid in ("1", "2", "3", "1"):
        cli.run(*doctor, "patient", "show", pid, password=DOCTOR_PW)
    # A denial and a failed unlock, so the trail holds every outcome.
    cli.run("--user", "audit.kim", "patient", "show", "1", password=AUDITOR_PW, check=False)
    cli.run("--user", "dr.adeyemi", "patient", "show", "1", password="wrong-password", check=False)
    return cli


def verify(cli):
    proc = cli.run("--user", "audit.kim", "audit", "verify", password=AUDITOR_PW, check=False)
    return proc.returncode, json.loads(proc.stdout)


def raw(cli):
    key = cli.json("--user", "admin", "vault", "export-key", password=ADMIN_PW)["key"]
    conn = sqlcipher3.connect(str(cli.vault / "chartroom.db"), isolation_level=None)
    conn.execute(f"PRAGMA key = \"x'{key}'\"")
    return conn


def entries(cli, *filters):
    doc = cli.json("--user", "audit.kim", "audit", "list", *filters, password=AUDITOR_PW)
    return doc["entries"]


def test_an_untouched_trail_verifies(clinic):
    code, doc = verify(clinic)
    assert code == 0, doc
    assert doc["ok"] is True
    assert doc["entries"] > 20
    assert doc["checkpoints"] >= 10


def test_denials_and_failed_unlocks_are_recorded(clinic):
    denied = entries(clinic, "--outcome", "denied")
    assert [(e["actor"], e["event"], e["patient_id"]) for e in denied] == [("audit.kim", "chart.read", "1")]
    failed = entries(clinic, "--event", "session.unlock", "--outcome", "failed")
    assert [e["actor"] for e in failed] == ["dr.adeyemi"]
    reads = entries(clinic, "--by", "dr.adeyemi", "--event", "chart.read", "--patient", "1")
    assert len(reads) == 2 and all(e["outcome"] == "success" for e in reads)


def tampered_copy(clinic, tmp_path, name, sql_steps):
    """Copies the vault, tampers with the copy's audit_log as an insider would, and returns
    a Cli on the copy."""
    conn = raw(clinic)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    copy = tmp_path / name
    shutil.copytree(clinic.vault, copy)
    original = clinic.vault
    clinic.vault = copy
    try:
        conn = raw(clinic)
        conn.execute("DROP TRIGGER audit_log_no_update")
        conn.execute("DROP TRIGGER audit_log_no_delete")
        for step in sql_steps(conn):
            conn.execute(*step)
        conn.close()
        return verify(clinic)
    finally:
        clinic.vault = original


def test_a_changed_row_is_named(clinic, tmp_path):
    target = entries(clinic, "--event", "chart.read")[1]["seq"]
    code, doc = tampered_copy(clinic, tmp_path, "changed", lambda c: [
        ("UPDATE audit_log SET patient_id = '3' WHERE seq = ?", (target,)),
    ])
    assert code == 65
    assert doc == {"ok": False, "first_bad_seq": target, "reason": doc["reason"]}
    assert str(target) in doc["reason"]


def test_a_deleted_row_is_named(clinic, tmp_path):
    target = entries(clinic, "--event", "chart.read")[0]["seq"]
    code, doc = tampered_copy(clinic, tmp_path, "deleted", lambda c: [
        ("DELETE FROM audit_log WHERE seq = ?", (target,)),
    ])
    assert code == 65
    assert doc["ok"] is False and doc["first_bad_seq"] == target, doc
    assert "missing" in doc["reason"]


def test_an_inserted_row_is_named(clinic, tmp_path):
    target = entries(clinic, "--event", "chart.read")[2]["seq"]

    def insert(conn):
        top = conn.execute("SELECT max(seq) FROM audit_log").fetchone()[0]
        steps = [("UPDATE audit_log SET seq = seq + 1 WHERE seq = ?", (s,)) for s in range(top, target - 1, -1)]
        # A forged read of patient 2, dressed in the neighbouring row's hashes.
        steps.append((
            "INSERT INTO audit_log SELECT ?, time, actor_id, actor, role, device_id, action, event, outcome, "
            "'2', object_type, '2', purpose, reason, detail, prev_hash, hash FROM audit_log WHERE seq = ?",
            (target, target - 1),
        ))
        return steps

    code, doc = tampered_copy(clinic, tmp_path, "inserted", insert)
    assert code == 65
    assert doc["ok"] is False and doc["first_bad_seq"] == target, doc


def test_the_fhir_export_validates_as_r4_audit_events(clinic, tmp_path):
    out = tmp_path / "audit.ndjson"
    doc = clinic.json("--user", "audit.kim", "audit", "export", "--format", "fhir", "--out", str(out),
                      password=AUDITOR_PW)
    lines = out.read_text().splitlines()
    assert doc["written"] == len(lines) > 20
    events = [AuditEvent.model_validate(json.loads(line)) for line in lines]
    codes = {(e.type.code, e.outcome) for e in events}
    assert ("110114", "0") in codes, "a successful login"
    assert ("110114", "8") in codes, "a failed login"
    reads = [e for e in events if e.action == "R" and e.entity]
    assert reads and all(any(ent.what and ent.what.reference and ent.what.reference.startswith("Patient/")
                             for ent in e.entity) for e in reads)
    # The export is itself in the trail.
    assert entries(clinic, "--event", "audit.export")


def test_removed_checkpoints_are_noticed(clinic, tmp_path):
    first_lock = entries(clinic, "--event", "session.lock")[0]["seq"]
    code, doc = tampered_copy(clinic, tmp_path, "checkpoints", lambda c: [
        ("DROP TRIGGER audit_checkpoints_no_delete", ()),
        ("DELETE FROM audit_checkpoints", ()),
    ])
    assert code == 65
    assert doc["ok"] is False and doc["first_bad_seq"] == first_lock, doc
    assert "checkpoint" in doc["reason"]
