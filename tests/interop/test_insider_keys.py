"""Roles enforced by keys, tried as an insider would: each role's own password, the vault's
files and the formats in docs/security.md, read with PyPI `cryptography` and `sqlcipher3`
(keyfiles.py), never through Chartroom. What a role may not read, its password cannot
decrypt; the database key alone opens no clinical field; a ciphertext moved to another row
or patient does not open, in the app either."""

import json
import shutil
import subprocess

import pytest
import sqlcipher3

from keyfiles import SlotFile, content_keys, open_field, sealed_fields

ADMIN_PW = "admin-password-1"
STAFF = {
    "dr.adeyemi": ("physician", "doctor-password-1"),
    "nurse.ho": ("nurse", "nurse-password-1"),
    "desk.kim": ("front_desk", "desk-password-1"),
    "audit.ray": ("auditor", "audit-password-1"),
}
MARKERS = {
    "reason": "MRK-encounter-reason-Zq",
    "note": "MRK-note-text-Zq HIV result discussed",
    "soap": "MRK-soap-plan-Zq",
    "addendum": "MRK-addendum-Zq",
    "problem": "MRK-problem-Zq",
    "allergy": "MRK-allergy-Zq",
    "reaction": "MRK-reaction-Zq",
    "medication": "MRK-medication-Zq",
    "dose": "MRK-dose-Zq",
    "vaccine": "MRK-vaccine-Zq",
    "lot": "MRK-lot-Zq",
}


def connect(vault, key: bytes):
    db = sqlcipher3.connect(str(vault / "chartroom.db"))
    db.execute(f"PRAGMA key = \"x'{key.hex()}'\"")
    return db


def dump(db) -> str:
    """Every value of every table of the decrypted database, as text (blobs as they are, read
    as Latin-1, so text hidden in a blob shows too)."""
    out = []
    tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    for table in tables:
        for row in db.execute(f'SELECT * FROM "{table}"'):
            out.append(table + ": " + " | ".join(
                bytes(v).decode("latin-1") if isinstance(v, (bytes, memoryview)) else str(v) for v in row))
    return "\n".join(out)


@pytest.fixture
def clinic(cli):
    cli.run("vault", "init", "--admin", "admin", password=ADMIN_PW)
    for name, (role, pw) in STAFF.items():
        cli.run("--user", "admin", "user", "add", name, "--role", role, password=ADMIN_PW, new_password=pw)
    doc = ("--user", "dr.adeyemi")
    dpw = STAFF["dr.adeyemi"][1]
    pid = str(cli.json(*doc, "patient", "add", "--family", "Insider", "--given", "Ada", "--birth-date",
                       "1980-01-02", "--sex", "female", password=dpw)["id"])
    other = str(cli.json(*doc, "patient", "add", "--family", "Other", "--given", "Bo", "--birth-date",
                         "1975-05-06", "--sex", "male", password=dpw)["id"])
    enc = str(cli.json(*doc, "encounter", "add", "--patient", pid, "--reason", MARKERS["reason"],
                       password=dpw)["id"])
    note = cli.json(*doc, "note", "draft", "--patient", pid, "--encounter", enc, "--text", MARKERS["note"],
                    password=dpw)
    cli.run(*doc, "note", "sign", str(note["id"]), password=dpw)
    cli.run(*doc, "note", "addendum", str(note["id"]), "--text", MARKERS["addendum"], "--sign", password=dpw)
    cli.run(*doc, "note", "draft", "--patient", other, "--subjective", "s", "--objective", "o",
            "--assessment", "a", "--plan", MARKERS["soap"], password=dpw)
    cli.run(*doc, "problem", "add", "--patient", pid, "--text", MARKERS["problem"], "--system", "icd10",
            "--code", "B20", password=dpw)
    cli.run(*doc, "allergy", "add", "--patient", pid, "--substance", MARKERS["allergy"], "--reaction",
            MARKERS["reaction"], "--severity", "severe", password=dpw)
    cli.run(*doc, "medication", "add", "--patient", pid, "--name", MARKERS["medication"], "--dose",
            MARKERS["dose"], password=dpw)
    cli.run(*doc, "immunization", "add", "--patient", pid, "--vaccine", MARKERS["vaccine"], "--cvx", "208",
            "--date", "2026-01-05", "--lot", MARKERS["lot"], password=dpw)
    # The nurse writes too, under her own content key.
    cli.run("--user", "nurse.ho", "vitals", "add", "--patient", pid, "--weight", "123.4", "--bp", "141/93",
            password=STAFF["nurse.ho"][1])
    cli.pid, cli.other = pid, other
    return cli


def test_each_roles_password_opens_exactly_what_its_role_may_read(clinic):
    slots = SlotFile(clinic.vault)
    passwords = {"admin": ("admin", ADMIN_PW), **STAFF}
    opened_by = {}
    for user, (role, pw) in passwords.items():
        db_key, compartments = slots.keys_of(user, pw)
        db = connect(clinic.vault, db_key)
        text = dump(db)
        # The database key (every signed-in user's) opens the tables, never a clinical word.
        for marker in MARKERS.values():
            assert marker not in text, f"{marker} is readable with {user}'s database key"
        assert db.execute("SELECT count(*) FROM observations WHERE typeof(value) <> 'blob'").fetchone()[0] == 0
        keys = {}
        for secret in compartments.values():
            keys.update(content_keys(db, slots.vault_id, secret))
        # Every key this role holds is tried on every sealed field, the database key too.
        candidates = dict(keys)
        candidates[-1] = db_key
        opened = [open_field(blob, t, c, r, p, candidates) for t, c, r, p, blob in sealed_fields(db)]
        opened_by[user] = opened
        if role in ("physician", "nurse"):
            assert set(compartments) == {"clinical"}, user
            assert all(v is not None for v in opened), f"{user} opens every clinical field"
            values = set(opened)
            for marker in MARKERS.values():
                assert marker in values, f"{user} reads {marker}"
            assert "123.4" in values, "the weight the nurse recorded"
        else:
            want = {"audit_text"} if role in ("admin", "auditor") else set()
            assert set(compartments) == want, f"{user} ({role}) holds no clinical key"
            assert all(v is None for v in opened), f"{user} ({role}) opens no clinical field"
        db.close()
    # What the user list says matches the files.
    users = {u["name"]: u for u in clinic.json("--user", "admin", "user", "list", password=ADMIN_PW)["users"]}
    for user, (role, _) in passwords.items():
        want = {"physician": ["database", "clinical"], "nurse": ["database", "clinical"],
                "admin": ["database", "audit_text"], "auditor": ["database", "audit_text"]}.get(role, ["database"])
        assert users[user]["keys"] == want, users[user]
        assert users[user]["keys_pending"] == []


def test_the_recovery_key_opens_everything(clinic, tmp_path):
    # A vault made in the fixture has its recovery key in the init output; make one here.
    fresh = type(clinic)(tmp_path / "second")
    (tmp_path / "second").mkdir()
    init = fresh.json("vault", "init", "--admin", "admin", password=ADMIN_PW)
    recovery = init["recovery_key"]
    fresh.run("--user", "admin", "user", "add", "dr.b", "--role", "physician", password=ADMIN_PW,
              new_password="doctor-password-2")
    pid = str(fresh.json("--user", "dr.b", "patient", "add", "--family", "R", "--given", "K", "--birth-date",
                         "1990-01-01", "--sex", "male", password="doctor-password-2")["id"])
    fresh.run("--user", "dr.b", "problem", "add", "--patient", pid, "--text", "MRK-recovery-Zq",
              password="doctor-password-2")
    slots = SlotFile(fresh.vault)
    # The KDF reads the key's 32 characters as docs/security.md says: no dashes, upper case.
    db_key, compartments = slots.keys_of("recovery", recovery.replace("-", "").upper(), kind="recovery")
    db = connect(fresh.vault, db_key)
    keys = content_keys(db, slots.vault_id, compartments["clinical"])
    values = {open_field(b, t, c, r, p, keys) for t, c, r, p, b in sealed_fields(db)}
    assert "MRK-recovery-Zq" in values


def test_a_ciphertext_moved_to_another_row_or_patient_does_not_open(clinic):
    slots = SlotFile(clinic.vault)
    db_key, _ = slots.keys_of("desk.kim", STAFF["desk.kim"][1])
    db = connect(clinic.vault, db_key)
    # The front desk copies the signed note's sealed text onto the other patient's draft.
    blob = db.execute("SELECT text FROM notes WHERE patient_id = ? AND status = 'signed' AND kind = 'note'",
                      (clinic.pid,)).fetchone()[0]
    db.execute("UPDATE notes SET text = ? WHERE patient_id = ?", (blob, clinic.other))
    db.commit()
    db.close()
    proc = clinic.run("--user", "dr.adeyemi", "note", "list", "--patient", clinic.other,
                      password=STAFF["dr.adeyemi"][1], check=False)
    assert proc.returncode != 0
    err = json.loads(proc.stderr)["error"]
    assert err["code"] == "integrity", err
    assert "changed outside Chartroom" in err["message"]
    assert "MRK" not in proc.stderr and "MRK" not in proc.stdout
    # The patient whose note it is still reads it.
    notes = clinic.json("--user", "dr.adeyemi", "note", "list", "--patient", clinic.pid,
                        password=STAFF["dr.adeyemi"][1])
    assert any(MARKERS["note"] in json.dumps(n) for n in notes["notes"])


def test_a_nurse_added_later_waits_for_a_holder_then_reads(clinic):
    clinic.run("--user", "admin", "user", "add", "nurse.new", "--role", "nurse", password=ADMIN_PW,
               new_password="nurse-password-2")
    users = {u["name"]: u for u in clinic.json("--user", "admin", "user", "list", password=ADMIN_PW)["users"]}
    assert users["nurse.new"]["keys"] == ["database"]
    assert users["nurse.new"]["keys_pending"] == ["clinical"]
    proc = clinic.run("--user", "nurse.new", "problem", "list", "--patient", clinic.pid,
                      password="nurse-password-2", check=False)
    assert proc.returncode == 77, proc.stderr
    assert "handed over" in json.loads(proc.stderr)["error"]["message"]
    # Her password alone opens no clinical field outside the app either.
    _, compartments = SlotFile(clinic.vault).keys_of("nurse.new", "nurse-password-2")
    assert compartments == {}
    # A physician signs in; the key is handed over, and the trail says so.
    clinic.run("--user", "dr.adeyemi", "user", "list", password=STAFF["dr.adeyemi"][1], check=False)
    problems = clinic.json("--user", "nurse.new", "problem", "list", "--patient", clinic.pid,
                           password="nurse-password-2")
    assert MARKERS["problem"] in json.dumps(problems)
    trail = clinic.json("--user", "audit.ray", "audit", "list", "--event", "key.grant",
                        password=STAFF["audit.ray"][1])
    assert any(e.get("object_id") == "nurse.new" or "nurse.new" in json.dumps(e) for e in trail["entries"])


def test_a_role_change_takes_the_clinical_key_out_of_the_slot(clinic):
    clinic.run("--user", "admin", "user", "set-role", "nurse.ho", "--role", "front_desk", password=ADMIN_PW)
    _, compartments = SlotFile(clinic.vault).keys_of("nurse.ho", STAFF["nurse.ho"][1])
    assert compartments == {}
    users = {u["name"]: u for u in clinic.json("--user", "admin", "user", "list", password=ADMIN_PW)["users"]}
    assert users["nurse.ho"]["keys"] == ["database"]


def test_an_admins_whole_clinic_export_is_demographics_only(clinic, tmp_path):
    key = tmp_path / "k.txt"
    subprocess.run(["age-keygen", "-o", str(key)], check=True, capture_output=True)
    recipient = subprocess.run(["age-keygen", "-y", str(key)], check=True, capture_output=True,
                               text=True).stdout.strip()
    report = clinic.json("--user", "admin", "export", "--all", "--recipient", recipient, "--purpose",
                         "Insider test", "--out", str(tmp_path / "admin.age"), password=ADMIN_PW)
    assert report["clinical_left_out"] is True
    assert set(report["resources"]) == {"Patient"}
    plain = subprocess.run(["age", "-d", "-i", str(key), str(tmp_path / "admin.age")], check=True,
                           capture_output=True).stdout
    for marker in MARKERS.values():
        assert marker.encode() not in plain


FIXTURE = __import__("pathlib").Path(__file__).resolve().parents[1] / "fixtures" / "vault-before-field-encryption"


def test_a_vault_of_the_previous_release_upgrades_at_an_admins_sign_in(cli):
    shutil.copytree(FIXTURE / "vault", cli.vault)
    pid = (FIXTURE / "marker-patient").read_text().strip()
    before = dump(connect(cli.vault, SlotFile(cli.vault).keys_of("admin", ADMIN_PW)[0]))
    assert "OLDMARKER-note" in before, "the fixture holds clear text"
    # A nurse cannot finish the upgrade; she is told who can.
    proc = cli.run("--user", "nurse.ho", "problem", "list", "--patient", pid, password="nurse-password-1",
                   check=False)
    assert proc.returncode != 0
    assert "administrator must sign in once" in json.loads(proc.stderr)["error"]["message"]
    cli.run("--user", "admin", "user", "list", password=ADMIN_PW)
    slots = SlotFile(cli.vault)
    assert slots.doc["version"] == 2 and slots.compartment("clinical")
    db_key, _ = slots.keys_of("desk.kim", "desk-password-1")
    after = dump(connect(cli.vault, db_key))
    assert "OLDMARKER" not in after, "every clinical field is sealed"
    # The clinicians of the users table hold the new key and read what they wrote before.
    for user, pw in [("dr.adeyemi", "doctor-password-1"), ("nurse.ho", "nurse-password-1")]:
        _, compartments = slots.keys_of(user, pw)
        assert set(compartments) == {"clinical"}
    notes = cli.json("--user", "dr.adeyemi", "note", "list", "--patient", pid, password="doctor-password-1")
    assert "OLDMARKER-note signed before the upgrade" in json.dumps(notes)
    problems = cli.json("--user", "nurse.ho", "problem", "list", "--patient", pid, password="nurse-password-1")
    assert "OLDMARKER-problem" in json.dumps(problems)
    vitals = cli.json("--user", "nurse.ho", "vitals", "list", "--patient", pid, password="nurse-password-1")
    assert any(o["value"] == 81.3 for o in vitals["observations"])
    # The security log started from the users as they stood, rooted in the administrator's key;
    # every slot that has signed in since names that root.
    out = cli.json("--user", "admin", "vault", "verify", password=ADMIN_PW)
    assert out["ok"] and out["security_log"]["entries"] >= 6, out
    after = SlotFile(cli.vault)
    roots = {s["owner"]: s.get("root") for s in after.doc["slots"]}
    assert roots["admin"] and roots["dr.adeyemi"] == roots["admin"] == roots["nurse.ho"]


def test_a_note_signature_in_an_export_verifies_with_ed25519_and_fails_when_one_byte_changes(clinic, tmp_path):
    import base64
    import hashlib
    import io

    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    key = tmp_path / "k.txt"
    subprocess.run(["age-keygen", "-o", str(key)], check=True, capture_output=True)
    recipient = subprocess.run(["age-keygen", "-y", str(key)], check=True, capture_output=True,
                               text=True).stdout.strip()
    out = tmp_path / "one.age"
    clinic.run("--user", "dr.adeyemi", "export", "--patient", clinic.pid, "--recipient", recipient, "--purpose",
               "Signature check", "--out", str(out), password=STAFF["dr.adeyemi"][1])
    plain = subprocess.run(["age", "-d", "-i", str(key), str(out)], check=True, capture_output=True).stdout
    bundle = json.load(io.BytesIO(plain))
    resources = [e["resource"] for e in bundle["entry"]]
    docs = {r["id"]: r for r in resources if r["resourceType"] == "DocumentReference"}
    provenances = [r for r in resources if r["resourceType"] == "Provenance"]
    assert provenances
    # The signer's public key is the one sealed in their own slot (docs/security.md).
    slot_key = SlotFile(clinic.vault).slot("dr.adeyemi")["signing"]["public_key"]
    checked = 0
    for prov in provenances:
        doc = docs[prov["target"][0]["reference"].split("/")[1]]
        sig = next(s for s in prov["signature"] if s["sigFormat"] == "application/x-chartroom-ed25519")
        public = next(e["valueBase64Binary"] for e in sig["extension"] if e["url"].endswith("signer-ed25519-key"))
        assert public == slot_key
        structured = base64.b64decode(next(c["attachment"]["data"] for c in doc["content"]
                                           if c["attachment"]["contentType"] == "application/json"))
        kind = doc["category"][0]["coding"][0]["code"]

        def message(content: bytes) -> bytes:
            return (f"chartroom/note-signature/v1\n{kind}\n{sig['who']['display']}\n{sig['when']}\n"
                    f"{hashlib.sha256(content).hexdigest()}\n").encode()

        verifier = Ed25519PublicKey.from_public_bytes(base64.b64decode(public))
        verifier.verify(base64.b64decode(sig["data"]), message(structured))
        tampered = bytearray(structured)
        tampered[len(tampered) // 2] ^= 0x01
        with pytest.raises(InvalidSignature):
            verifier.verify(base64.b64decode(sig["data"]), message(bytes(tampered)))
        checked += 1
    assert checked == 2, "the note and its addendum are both signed"


def test_a_content_key_planted_under_a_clinicians_name_is_never_written_with(clinic):
    """Anyone can seal a content key to the clinical public key. A front-desk insider who lists
    one under a physician's name must not thereby read what the physician writes next."""
    import os

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    from keyfiles import b64, lp, raw_public, u64

    slots = SlotFile(clinic.vault)
    db_key, _ = slots.keys_of("desk.kim", STAFF["desk.kim"][1])
    public = b64(slots.compartment("clinical")["public_key"])
    planted, key_id = os.urandom(32), 4242
    eph = X25519PrivateKey.generate()
    shared = eph.exchange(X25519PublicKey.from_public_bytes(public))
    wrap = HKDF(hashes.SHA256(), 32, salt=raw_public(eph) + public, info=b"chartroom/content-key/v1").derive(shared)
    nonce = os.urandom(12)
    sealed = ChaCha20Poly1305(wrap).encrypt(
        nonce, planted, lp(b"chartroom/content-key/v1", slots.vault_id.encode(), b"clinical", u64(0), u64(key_id)))
    db = connect(clinic.vault, db_key)
    for owner in ("dr.adeyemi", "nurse.ho"):
        db.execute("INSERT INTO content_keys (id, compartment, epoch, owner, ephemeral, nonce, sealed, created_at) "
                   "VALUES (?, 'clinical', 0, ?, ?, ?, ?, '2026-12-01T00:00:00.000000Z')",
                   (key_id + len(owner), owner, raw_public(eph), nonce, sealed))
    db.commit()
    db.close()
    clinic.run("--user", "dr.adeyemi", "problem", "add", "--patient", clinic.pid, "--text", "MRK-after-plant-Zq",
               password=STAFF["dr.adeyemi"][1])
    clinic.run("--user", "nurse.ho", "vitals", "add", "--patient", clinic.pid, "--weight", "77.7",
               password=STAFF["nurse.ho"][1])
    db = connect(clinic.vault, db_key)
    keys = {key_id + len("dr.adeyemi"): planted, key_id + len("nurse.ho"): planted}
    opened = {open_field(b, t, c, r, p, keys) for t, c, r, p, b in sealed_fields(db)}
    assert opened == {None}, "nothing written after the plant opens with the planted key"
    # The physician still reads what they wrote.
    problems = clinic.json("--user", "dr.adeyemi", "problem", "list", "--patient", clinic.pid,
                           password=STAFF["dr.adeyemi"][1])
    assert "MRK-after-plant-Zq" in json.dumps(problems)


def test_a_compartment_key_swapped_into_the_slot_file_is_refused_or_put_back(clinic):
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    from keyfiles import raw_public

    path = clinic.vault / "keyslots.json"
    original = path.read_text()
    genuine = next(c for c in json.loads(original)["compartments"] if c["name"] == "clinical")
    mine = __import__("base64").b64encode(raw_public(X25519PrivateKey.generate())).decode()
    # Added before the real one at the same epoch: the file is refused outright.
    doc = json.loads(original)
    doc["compartments"] = [{"name": "clinical", "epoch": genuine["epoch"], "public_key": mine}] + doc["compartments"]
    path.write_text(json.dumps(doc))
    proc = clinic.run("--user", "dr.adeyemi", "problem", "add", "--patient", clinic.pid, "--text",
                      "MRK-after-swap-Zq", password=STAFF["dr.adeyemi"][1], check=False)
    assert proc.returncode != 0, "a holder does not write to a swapped key"
    assert json.loads(proc.stderr)["error"]["code"] == "keyslots_invalid", proc.stderr
    # Put in its place at the next epoch: the security log says which key is genuine, and the
    # sign-in puts it back before anything is written.
    doc = json.loads(original)
    doc["compartments"] = [{"name": "clinical", "epoch": genuine["epoch"] + 1, "public_key": mine}] + \
        [c for c in doc["compartments"] if c["name"] != "clinical"]
    path.write_text(json.dumps(doc))
    clinic.run("--user", "dr.adeyemi", "problem", "add", "--patient", clinic.pid, "--text", "MRK-after-swap-Zq",
               password=STAFF["dr.adeyemi"][1])
    now = next(c for c in json.loads(path.read_text())["compartments"] if c["name"] == "clinical")
    assert now["public_key"] == genuine["public_key"] and now["epoch"] == genuine["epoch"]
    alerts = clinic.json("--user", "admin", "alerts", "list", "--all", password=ADMIN_PW)["alerts"]
    assert any("public keys in the key slot file were restored" in a["summary"] for a in alerts)
    # What was written opens with the genuine key, not the insider's.
    key, held = SlotFile(clinic.vault).keys_of("dr.adeyemi", STAFF["dr.adeyemi"][1])
    db = connect(clinic.vault, key)
    keys = content_keys(db, SlotFile(clinic.vault).vault_id, held["clinical"])
    texts = [open_field(blob, t, c, r, p, keys) for t, c, r, p, blob in sealed_fields(db)]
    assert "MRK-after-swap-Zq" in texts


def test_a_nurse_who_kept_the_clinical_key_reads_nothing_after_her_role_changes_and_it_rotates(clinic):
    """She copied her compartment key before the role change; she keeps the database key as
    front desk. Once a physician signs in, the clinical key has rotated and every field is
    re-sealed: her copy opens none of them."""
    slots = SlotFile(clinic.vault)
    _, kept = slots.keys_of("nurse.ho", STAFF["nurse.ho"][1])
    kept = kept["clinical"]

    def opened_with_kept_key():
        key, _ = SlotFile(clinic.vault).keys_of("desk.kim", STAFF["desk.kim"][1])
        db = connect(clinic.vault, key)
        keys = content_keys(db, slots.vault_id, kept)
        return sum(open_field(blob, t, c, r, p, keys) is not None for t, c, r, p, blob in sealed_fields(db))

    assert opened_with_kept_key() > 0, "her copy opens today's fields"
    clinic.run("--user", "admin", "user", "set-role", "nurse.ho", "--role", "front_desk", password=ADMIN_PW)
    pending = clinic.json("--user", "admin", "vault", "rotate", "--reason", "nurse left the clinical role",
                          password=ADMIN_PW)
    assert pending["clinical_key"] == "pending"
    # The physician's sign-in rotates it (they hold it) and re-seals every field.
    clinic.run("--user", "dr.adeyemi", "patient", "search", "Insider", password=STAFF["dr.adeyemi"][1])
    assert opened_with_kept_key() == 0
    # The physician still reads everything, under the new key.
    key, held = SlotFile(clinic.vault).keys_of("dr.adeyemi", STAFF["dr.adeyemi"][1])
    assert SlotFile(clinic.vault).compartment("clinical")["epoch"] == 1
    db = connect(clinic.vault, key)
    keys = content_keys(db, slots.vault_id, held["clinical"])
    texts = [open_field(blob, t, c, r, p, keys) for t, c, r, p, blob in sealed_fields(db)]
    assert all(t is not None for t in texts)
    assert MARKERS["note"] in texts
    out = clinic.json("--user", "admin", "vault", "verify", password=ADMIN_PW)
    assert out["ok"]
