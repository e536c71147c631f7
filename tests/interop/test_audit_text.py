"""The audit trail's free text (break-the-glass reasons, export purposes and recipients) is
sealed to the audit-text compartment, tried as an insider would: each role's own password,
the vault's files and the formats in docs/security.md, read with PyPI `cryptography` and
`sqlcipher3` (keyfiles.py), never through Chartroom. The database key alone shows none of it;
an administrator's or auditor's password opens it; a clinician's or the front desk's does not;
an auditor whose trust ended opens nothing written after."""

import base64
import re

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from keyfiles import SlotFile, lp, raw_public, u64
from test_insider_keys import connect, dump

ADMIN_PW = "admin-password-1"
STAFF = {
    "dr.adeyemi": ("physician", "doctor-password-1"),
    "nurse.ho": ("nurse", "nurse-password-1"),
    "desk.kim": ("front_desk", "desk-password-1"),
    "audit.ray": ("auditor", "audit-password-1"),
}
REASON = "MRK-btg-reason-Qx unconscious in the waiting room"
PURPOSE = "MRK-export-purpose-Qx referral re HIV"
RECIPIENT = "MRK-export-recipient-Qx Riverside Clinic"
MARKERS = (REASON, PURPOSE, RECIPIENT)
TOKEN = re.compile(r"sealed:v1:(\d+):([A-Za-z0-9_-]+)")


def open_text(token: re.Match, vault_id: str, secrets: dict) -> str | None:
    """One sealed text, opened as docs/security.md says, with the private key of its epoch."""
    epoch, body = int(token.group(1)), token.group(2)
    secret = secrets.get(epoch)
    if secret is None:
        return None
    data = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    eph, nonce, sealed = data[:32], data[32:44], data[44:]
    shared = secret.exchange(X25519PublicKey.from_public_bytes(eph))
    k = HKDF(hashes.SHA256(), 32, salt=eph + raw_public(secret), info=b"chartroom/audit-text/v1").derive(shared)
    try:
        return ChaCha20Poly1305(k).decrypt(nonce, sealed, lp(b"chartroom/audit-text/v1", vault_id.encode(),
                                                               u64(epoch))).decode()
    except InvalidTag:
        return None


def opened_with(text: str, vault_id: str, secrets: dict) -> set:
    return {v for v in (open_text(m, vault_id, secrets) for m in TOKEN.finditer(text)) if v is not None}


@pytest.fixture
def clinic(cli, tmp_path):
    cli.run("vault", "init", "--admin", "admin", password=ADMIN_PW)
    for name, (role, pw) in STAFF.items():
        cli.run("--user", "admin", "user", "add", name, "--role", role, password=ADMIN_PW, new_password=pw)
    doc = ("--user", "dr.adeyemi")
    dpw = STAFF["dr.adeyemi"][1]
    pid = str(cli.json(*doc, "patient", "add", "--family", "Vip", "--given", "Val", "--birth-date",
                       "1970-03-04", "--sex", "female", "--restricted", password=dpw)["id"])
    open_pid = str(cli.json(*doc, "patient", "add", "--family", "Open", "--given", "Oli", "--birth-date",
                            "1971-03-04", "--sex", "male", password=dpw)["id"])
    # The nurse is not on the restricted chart's care team: she breaks the glass, and reads it.
    grant = cli.json("--user", "nurse.ho", "patient", "break-glass", pid, "--reason", REASON,
                     password=STAFF["nurse.ho"][1])
    assert grant["reason"] == REASON, "the nurse is shown her own reason back"
    cli.run("--user", "nurse.ho", "patient", "show", pid, password=STAFF["nurse.ho"][1])
    cli.run(*doc, "export", "--patient", open_pid, "--passphrase", "--purpose", PURPOSE, "--to", RECIPIENT,
            "--out", str(tmp_path / "referral.age"), password=dpw,
            extra_env={"CHARTROOM_EXPORT_PASSPHRASE": "tulip anchor velvet ninety"})
    cli.pid, cli.open_pid = pid, open_pid
    return cli


def test_the_database_key_shows_no_reason_purpose_or_recipient(clinic):
    slots = SlotFile(clinic.vault)
    db_key, _ = slots.keys_of("desk.kim", STAFF["desk.kim"][1])
    text = dump(connect(clinic.vault, db_key))
    for marker in MARKERS:
        assert marker not in text, f"{marker} is readable with the database key"
    # They are there, sealed: in the grant, the accounting, the alert and the audit entries.
    assert len(TOKEN.findall(text)) >= 5


def test_only_administrators_auditors_and_the_recovery_key_open_the_audit_text(clinic):
    slots = SlotFile(clinic.vault)
    passwords = {"admin": ("admin", ADMIN_PW), **STAFF}
    compartment = slots.compartment("audit_text")
    assert compartment is not None and compartment["epoch"] == 0
    for user, (role, pw) in passwords.items():
        db_key, compartments = slots.keys_of(user, pw)
        text = dump(connect(clinic.vault, db_key))
        secrets = {0: compartments["audit_text"]} if "audit_text" in compartments else {}
        # Every key the slot holds is tried, the clinical one too.
        tried = {0: k for k in compartments.values()}
        opened = opened_with(text, slots.vault_id, secrets or tried)
        if role in ("admin", "auditor"):
            assert set(compartments) == {"audit_text"}, user
            assert set(MARKERS) <= opened, f"{user} reads the audit text"
        else:
            assert "audit_text" not in compartments, f"{user} ({role}) holds no audit text key"
            assert opened == set(), f"{user} ({role}) opens no audit text"


def test_the_app_shows_the_words_to_the_auditor_and_withholds_them_from_others(clinic):
    trail = clinic.json("--user", "audit.ray", "audit", "list", "--event", "break_glass",
                        password=STAFF["audit.ray"][1])
    assert any(e.get("reason") == REASON for e in trail["entries"]), trail
    alerts = clinic.json("--user", "admin", "alerts", "list", password=ADMIN_PW)["alerts"]
    assert any(REASON in a["summary"] for a in alerts if a["rule"] == "break_glass"), alerts
    shown = clinic.json("--user", "audit.ray", "disclosures", clinic.open_pid, password=STAFF["audit.ray"][1])
    assert shown["disclosures"][0]["purpose"] == PURPOSE
    assert shown["disclosures"][0]["recipient"] == RECIPIENT
    # The physician who exported signs in again: the accounting holds the words sealed.
    again = clinic.json("--user", "dr.adeyemi", "disclosures", clinic.open_pid, password=STAFF["dr.adeyemi"][1])
    disclosure = again["disclosures"][0]
    assert PURPOSE not in disclosure["purpose"] and "sealed" in disclosure["purpose"]
    assert RECIPIENT not in disclosure["recipient"]


def test_an_auditor_whose_trust_ended_opens_nothing_written_after(clinic):
    slots = SlotFile(clinic.vault)
    # The auditor kept her key before she was disabled.
    _, kept = slots.keys_of("audit.ray", STAFF["audit.ray"][1])
    old = kept["audit_text"]
    clinic.run("--user", "admin", "user", "disable", "audit.ray", password=ADMIN_PW)
    slots = SlotFile(clinic.vault)
    assert slots.compartment("audit_text")["epoch"] == 1, "the administrator rotated it at once"
    later = "MRK-after-rotation-Qx"
    clinic.run("--user", "nurse.ho", "patient", "break-glass", clinic.pid, "--reason", later,
               password=STAFF["nurse.ho"][1], check=False)
    clinic.run("--user", "dr.adeyemi", "export", "--patient", clinic.open_pid, "--passphrase", "--purpose",
               later, "--out", str(clinic.vault.parent / "second.age"), password=STAFF["dr.adeyemi"][1],
               extra_env={"CHARTROOM_EXPORT_PASSPHRASE": "tulip anchor velvet ninety"})
    db_key, compartments = slots.keys_of("admin", ADMIN_PW)
    text = dump(connect(clinic.vault, db_key))
    assert later not in text
    # Her kept key opens what was written before and nothing after.
    before = opened_with(text, slots.vault_id, {0: old})
    assert REASON in before and later not in before
    assert opened_with(text, slots.vault_id, {1: old}) == set()
    # The administrator opens both, the earlier epoch through the retired key.
    trail = clinic.json("--user", "admin", "alerts", "list", password=ADMIN_PW)["alerts"]
    assert any(REASON in a["summary"] for a in trail)
    assert later in opened_with(text, slots.vault_id, {1: compartments["audit_text"]})
