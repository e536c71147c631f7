"""Who may do what is signed: the security log, tried as an insider would. With their own
password, the vault's files and docs/security.md, read and written with PyPI `cryptography`
and `sqlcipher3` (keyfiles.py), an insider edits the users table, swaps a slot into
keyslots.json, adds themselves to a care team and rewrites the log itself. Each is detected
at the next unlock, named in an alert, and has no effect. The log's own signatures verify
with a standard Ed25519 library."""

import base64
import hashlib
import json

import pytest
import sqlcipher3
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from keyfiles import SlotFile, forge_user_slot, lp

ADMIN_PW = "admin-password-1"
STAFF = {
    "dr.adeyemi": ("physician", "doctor-password-1"),
    "nurse.ho": ("nurse", "nurse-password-1"),
    "desk.kim": ("front_desk", "desk-password-1"),
    "audit.ray": ("auditor", "audit-password-1"),
}


@pytest.fixture
def clinic(cli):
    cli.run("vault", "init", "--admin", "admin", password=ADMIN_PW)
    for name, (role, pw) in STAFF.items():
        cli.run("--user", "admin", "user", "add", name, "--role", role, password=ADMIN_PW, new_password=pw)
    doc = ("--user", "dr.adeyemi")
    cli.json(*doc, "patient", "add", "--family", "Hidden", "--given", "Hana", "--birth-date", "1980-01-02",
             "--sex", "female", "--restricted", password=STAFF["dr.adeyemi"][1])
    return cli


def insider_db(cli, owner="desk.kim"):
    """The database, opened outside Chartroom with the database key from `owner`'s own slot."""
    slots = SlotFile(cli.vault)
    key, _ = slots.keys_of(owner, STAFF[owner][1])
    db = sqlcipher3.connect(str(cli.vault / "chartroom.db"))
    db.execute(f"PRAGMA key = \"x'{key.hex()}'\"")
    return db, key, slots


def tampering_alerts(cli):
    alerts = cli.json("--user", "admin", "alerts", "list", "--all", password=ADMIN_PW)["alerts"]
    return [a["summary"] for a in alerts if a["rule"] == "security_tampering"]


def log_rows(db):
    return db.execute("SELECT seq, kind, subject, entry, signature, hash FROM security_log ORDER BY seq").fetchall()


def test_every_entry_is_chained_and_signed_as_documented(clinic):
    db, _, slots = insider_db(clinic)
    rows = log_rows(db)
    assert len(rows) >= 8
    prev = bytes(32)
    keys = {}
    root = None
    for seq, kind, subject, text, signature, stored in rows:
        entry = json.loads(text)
        assert entry["seq"] == seq and entry["prev"] == prev.hex() and entry["format"] == 1
        public = Ed25519PublicKey.from_public_bytes(base64.b64decode(entry["signer_key"]))
        public.verify(bytes(signature), lp(b"chartroom/security-log/v1", text.encode()))
        prev = hashlib.sha256(lp(b"chartroom/security-log-hash/v1", text.encode(), bytes(signature))).digest()
        assert prev == bytes(stored)
        fact = entry["fact"]
        if fact["kind"] == "root":
            root = fact["root_key"]
        if fact["kind"] == "user":
            keys[fact["user"]] = fact
        # One byte of the entry changed, and its signature no longer holds.
        with pytest.raises(InvalidSignature):
            public.verify(bytes(signature), lp(b"chartroom/security-log/v1", text.replace('"', "'", 1).encode()))
    # The root is the first administrator's signing key, and every slot names it.
    assert root == keys["admin"]["signing_key"]
    for slot in slots.doc["slots"]:
        assert slot["root"] == root
        registered = keys.get(slot["owner"])
        if registered:
            assert registered["slot_key"] == slot["public_key"]
            assert registered["signing_key"] == slot["signing"]["public_key"]
    # The restricted chart's care team is its registering physician.
    facts = [json.loads(r[3])["fact"] for r in rows]
    assert {"kind": "care_team", "user": "dr.adeyemi", "member": True}.items() <= \
        next(f for f in facts if f["kind"] == "care_team").items()
    out = clinic.json("--user", "admin", "vault", "verify", password=ADMIN_PW)
    assert out["ok"] and out["security_log"]["entries"] == len(rows)
    init_fp = hashlib.sha256(base64.b64decode(root)).hexdigest().upper()[:20]
    assert out["security_log"]["root_fingerprint"].replace("-", "") == init_fp


def test_a_front_desk_who_writes_admin_into_the_users_table_still_signs_in_as_front_desk(clinic):
    db, _, _ = insider_db(clinic)
    db.execute("UPDATE users SET role = 'admin' WHERE name = 'desk.kim'")
    db.commit()
    db.close()
    proc = clinic.run("--user", "desk.kim", "user", "list", password=STAFF["desk.kim"][1], check=False)
    assert proc.returncode == 77, proc.stderr
    db, _, _ = insider_db(clinic)
    assert db.execute("SELECT role FROM users WHERE name = 'desk.kim'").fetchone()[0] == "front_desk"
    assert any("desk.kim's role was set back from admin to front_desk" in a for a in tampering_alerts(clinic))


def test_a_slot_swapped_in_under_the_insiders_password_is_refused_and_removed(clinic):
    db, key, slots = insider_db(clinic)
    epoch = slots.doc["key_epoch"]
    doc = slots.doc
    forged = forge_user_slot(doc["vault_id"], "dr.adeyemi", "insider-chosen-1", key, epoch,
                             slots.slot("admin")["root"], slots.slot("admin")["kdf"])
    doc["slots"] = [forged if s["owner"] == "dr.adeyemi" else s for s in doc["slots"]]
    (clinic.vault / "keyslots.json").write_text(json.dumps(doc, indent=2))
    # The forged slot opens with the chosen password, and Chartroom refuses it all the same.
    proc = clinic.run("--user", "dr.adeyemi", "patient", "search", "Hidden", password="insider-chosen-1",
                      check=False)
    assert proc.returncode == 65, proc.stderr
    assert "not the one the clinic's security log registered" in json.loads(proc.stderr)["error"]["message"]
    # A colleague's sign-in takes it out; it never receives the clinical key.
    clinic.run("--user", "nurse.ho", "patient", "search", "Hidden", password=STAFF["nurse.ho"][1])
    after = SlotFile(clinic.vault)
    assert not any(s["owner"] == "dr.adeyemi" for s in after.doc["slots"])
    assert any("a key slot for dr.adeyemi that the log does not register was removed" in a
               for a in tampering_alerts(clinic))


def test_a_care_team_row_added_with_the_database_key_is_taken_off(clinic):
    db, _, _ = insider_db(clinic)
    db.execute("INSERT INTO care_team (patient_id, user_id, added_at, added_by) "
               "SELECT p.id, u.id, '2026-01-01T00:00:00Z', 'x' FROM patients p, users u "
               "WHERE p.restricted = 1 AND u.name = 'nurse.ho'")
    db.commit()
    db.close()
    proc = clinic.run("--user", "nurse.ho", "patient", "search", "Hidden", password=STAFF["nurse.ho"][1])
    db, _, _ = insider_db(clinic)
    assert db.execute("SELECT count(*) FROM care_team c JOIN users u ON u.id = c.user_id "
                      "WHERE u.name = 'nurse.ho'").fetchone()[0] == 0
    assert any("nurse.ho, put on the care team of MRN" in a for a in tampering_alerts(clinic)), proc.stdout


@pytest.mark.parametrize("edit", [
    "UPDATE security_log SET entry = replace(entry, '\"front_desk\"', '\"admin\"') WHERE entry LIKE '%desk.kim%'",
    "DELETE FROM security_log WHERE seq = 4",
])
def test_a_log_entry_changed_or_removed_refuses_sign_in_and_verify_names_it(clinic, edit):
    db, _, _ = insider_db(clinic)
    db.execute("DROP TRIGGER IF EXISTS security_log_no_update")
    db.execute("DROP TRIGGER IF EXISTS security_log_no_delete")
    db.execute(edit)
    db.commit()
    db.close()
    proc = clinic.run("--user", "admin", "vault", "verify", password=ADMIN_PW, check=False)
    assert proc.returncode == 65, proc.stderr
    message = json.loads(proc.stderr)["error"]["message"]
    assert "security log entry 4" in message or "security log entry" in message, message
    for name, (_, pw) in STAFF.items():
        assert clinic.run("--user", name, "patient", "search", "Hidden", password=pw, check=False).returncode == 65


def test_the_collector_refuses_a_security_log_cut_back_after_it_saw_it(clinic, collector):
    token = collector.run("token")
    clinic.run("--user", "admin", "sync", "enroll", collector.url, token, "--cert", str(collector.cert),
               password=ADMIN_PW)
    clinic.run("--user", "admin", "user", "add", "temp.x", "--role", "auditor", password=ADMIN_PW,
               new_password="temp-password-1")
    clinic.run("--user", "admin", "user", "disable", "temp.x", password=ADMIN_PW)
    clinic.run("--user", "admin", "sync", "push", password=ADMIN_PW)
    # The insider cuts the disable off the end of the log, and the remembered heads with it, so
    # that every sign-in verifies the shorter log from scratch and accepts it.
    db, _, _ = insider_db(clinic)
    db.execute("DROP TRIGGER IF EXISTS security_log_no_delete")
    db.execute("DELETE FROM security_log WHERE seq = (SELECT max(seq) FROM security_log)")
    db.execute("DELETE FROM security_heads")
    db.commit()
    db.close()
    proc = clinic.run("--user", "admin", "sync", "push", password=ADMIN_PW, check=False)
    assert proc.returncode != 0, proc.stdout
    status = clinic.json("--user", "admin", "sync", "status", password=ADMIN_PW)
    assert "security log was cut back or rewritten" in status["last_error"], status
    assert "security log that was cut back or rewritten" in collector_alerts(collector)


def collector_alerts(collector) -> str:
    import ssl
    import urllib.request
    token = collector.run("token", "--auditor")
    req = urllib.request.Request(f"{collector.url}/v1/alerts", headers={"Authorization": f"Bearer {token}"})
    ctx = ssl.create_default_context(cafile=str(collector.cert))
    with urllib.request.urlopen(req, context=ctx, timeout=30) as r:
        return r.read().decode()
