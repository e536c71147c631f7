"""Restricted charts have keys of their own, tried as an insider would: each role's own
password, the vault's files and the formats in docs/security.md, read with PyPI
`cryptography` and `sqlcipher3` (keyfiles.py), never through Chartroom. A restricted
patient's demographics and history open for the care team (and, as the break-the-glass path
that must work offline, for physicians and nurses); the database key, a front-desk, admin or
auditor password outside the team opens none of them; a member who leaves opens nothing
written after."""

import base64
import re

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from keyfiles import SlotFile, lp, raw_public, u64
from test_insider_keys import connect, dump

ADMIN_PW = "admin-password-1"
STAFF = {
    "dr.adeyemi": ("physician", "doctor-password-1"),
    "nurse.ho": ("nurse", "nurse-password-1"),
    "desk.kim": ("front_desk", "desk-password-1"),
    "desk.two": ("front_desk", "desk-password-2"),
    "audit.ray": ("auditor", "audit-password-1"),
}
FAMILY = "Zqvipname"
PHONE = "+1 (415) 555-0199"
TEXT = re.compile(r"psealed:v1:(\d+):([A-Za-z0-9_-]+)")


def unseal_patient_key(row, vault_id: str, uuid: bytes, with_key: X25519PrivateKey) -> X25519PrivateKey | None:
    """One row of patient_keys opened with the private key it is sealed to."""
    epoch, public, holder, to_public, eph, nonce, sealed = row
    if raw_public(with_key) != bytes(to_public):
        return None
    shared = with_key.exchange(X25519PublicKey.from_public_bytes(bytes(eph)))
    k = HKDF(hashes.SHA256(), 32, salt=bytes(eph) + bytes(to_public),
             info=b"chartroom/patient-key/v1").derive(shared)
    ad = lp(b"chartroom/patient-key/v1", vault_id.encode(), uuid, u64(epoch), bytes(public), holder.encode())
    try:
        return X25519PrivateKey.from_private_bytes(ChaCha20Poly1305(k).decrypt(bytes(nonce), bytes(sealed), ad))
    except InvalidTag:
        return None


def open_text(token: str, vault_id: str, uuid: bytes, what: str, keys: dict) -> str | None:
    """A restricted patient's sealed text, opened with the patient key of its epoch."""
    m = TEXT.fullmatch(token)
    epoch, body = int(m.group(1)), m.group(2)
    if epoch not in keys:
        return None
    data = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    eph, nonce, sealed = data[:32], data[32:44], data[44:]
    secret = keys[epoch]
    shared = secret.exchange(X25519PublicKey.from_public_bytes(eph))
    k = HKDF(hashes.SHA256(), 32, salt=eph + raw_public(secret), info=b"chartroom/patient-text/v1").derive(shared)
    ad = lp(b"chartroom/patient-text/v1", vault_id.encode(), uuid, u64(epoch), what.encode())
    try:
        return ChaCha20Poly1305(k).decrypt(nonce, sealed, ad).decode()
    except InvalidTag:
        return None


def what_opens(vault, owner: str, password: str, kind: str = "user") -> tuple[set, dict]:
    """Every restricted patient's text `owner`'s secret opens outside Chartroom, and the
    patient keys (by epoch) it opened: with the slot's own key (a member's seal) and every
    compartment key the slot holds (the clinical key: break the glass)."""
    slots = SlotFile(vault)
    db_key, compartments = slots.keys_of(owner, password, kind)
    slot = slots.slot(owner, kind)
    identity = slots.identity(slot, password.encode())
    db = connect(vault, db_key)
    texts, opened = set(), {}
    for pid, uuid, sealed in db.execute("SELECT id, uuid, sealed FROM patients WHERE sealed IS NOT NULL"):
        keys = {}
        for row in db.execute("SELECT epoch, public_key, holder, to_public, ephemeral, nonce, sealed "
                              "FROM patient_keys WHERE patient_id = ?", (pid,)):
            for candidate in [identity, *compartments.values()]:
                secret = unseal_patient_key(row, slots.vault_id, bytes(uuid), candidate)
                if secret is not None:
                    keys[row[0]] = secret
        opened[pid] = keys
        value = open_text(sealed, slots.vault_id, bytes(uuid), "patients", keys)
        if value is not None:
            texts.add(value)
        for (data,) in db.execute("SELECT data FROM patient_versions WHERE patient_id = ?", (pid,)):
            if data.startswith("psealed:"):
                value = open_text(data, slots.vault_id, bytes(uuid), "patient_versions", keys)
                if value is not None:
                    texts.add(value)
    db.close()
    return texts, opened


@pytest.fixture
def clinic(cli):
    cli.recovery = cli.json("vault", "init", "--admin", "admin", password=ADMIN_PW)["recovery_key"]
    for name, (role, pw) in STAFF.items():
        cli.run("--user", "admin", "user", "add", name, "--role", role, password=ADMIN_PW, new_password=pw)
    doctor = ("--user", "dr.adeyemi")
    made = cli.json(*doctor, "patient", "add", "--family", FAMILY, "--given", "Vera", "--birth-date",
                    "1966-06-16", "--sex", "female", "--phone", PHONE, "--restricted",
                    password=STAFF["dr.adeyemi"][1])
    cli.pid = str(made["id"])
    cli.mrn = made["mrn"]
    assert made["family"] == FAMILY, "the registrant sees who they registered"
    # The front desk who looks after the patient joins the team; she adds the e-mail address.
    cli.run(*doctor, "patient", "care-team", cli.pid, "--add", "desk.kim", password=STAFF["dr.adeyemi"][1])
    cli.run("--user", "desk.kim", "patient", "update", cli.pid, "--email", "vera@example.org",
            password=STAFF["desk.kim"][1])
    return cli


def test_the_database_key_shows_nothing_of_who_a_restricted_patient_is(clinic):
    db_key, _ = SlotFile(clinic.vault).keys_of("desk.two", STAFF["desk.two"][1])
    text = dump(connect(clinic.vault, db_key))
    for clue in (FAMILY, FAMILY.lower(), "Vera", "1966-06-16", "4155550199", "555-0199", "vera@example.org"):
        assert clue not in text, f"{clue} is readable with the database key"
    assert clinic.mrn in text, "the MRN stays in clear: the one way outsiders find the chart"


def test_each_password_opens_a_restricted_chart_only_for_its_team_and_the_break_the_glass_roles(clinic):
    passwords = {"admin": ADMIN_PW, **{n: pw for n, (_, pw) in STAFF.items()}}
    for user, pw in passwords.items():
        texts, _ = what_opens(clinic.vault, user, pw)
        reads = any(FAMILY in t for t in texts)
        if user in ("desk.kim", "dr.adeyemi"):
            assert reads, f"{user} is on the care team"
            assert any("vera@example.org" in t for t in texts) and any(PHONE in t for t in texts)
        elif user == "nurse.ho":
            # Break the glass must work offline, so every nurse and physician holds the key
            # that opens it outside the app too (docs/security.md says so).
            assert reads, "the clinical key is the break-the-glass path"
        else:
            assert not reads and texts == set(), f"{user} opens no restricted chart"
    # The recovery key opens everything.
    texts, _ = what_opens(clinic.vault, "recovery", clinic.recovery.replace("-", "").upper(), "recovery")
    assert any(FAMILY in t for t in texts)


def test_the_app_finds_the_chart_by_name_for_its_team_only(clinic):
    def found(user, query):
        return [h["family"] for h in clinic.json("--user", user, "patient", "search", query,
                                                 password=passwords[user])["patients"]]
    passwords = {n: pw for n, (_, pw) in STAFF.items()}
    assert found("desk.kim", FAMILY[:5]) == [FAMILY]
    assert found("dr.adeyemi", "1966-06-16") == [FAMILY]
    assert found("desk.two", FAMILY) == []
    assert found("nurse.ho", "4155550199") == []
    assert found("desk.two", clinic.mrn) == ["Restricted patient"]


def test_a_member_who_leaves_opens_nothing_written_after(clinic):
    _, before = what_opens(clinic.vault, "desk.kim", STAFF["desk.kim"][1])
    kept = before[int(clinic.pid)]
    assert set(kept) == {0}
    clinic.run("--user", "dr.adeyemi", "patient", "care-team", clinic.pid, "--remove", "desk.kim",
               password=STAFF["dr.adeyemi"][1])
    clinic.run("--user", "dr.adeyemi", "patient", "update", clinic.pid, "--address", "12 New Street",
               password=STAFF["dr.adeyemi"][1])
    texts, now = what_opens(clinic.vault, "desk.kim", STAFF["desk.kim"][1])
    assert texts == set() and now[int(clinic.pid)] == {}, "her slot opens no key of the chart now"
    # The key she kept opens nothing current either: the chart was sealed anew.
    slots = SlotFile(clinic.vault)
    db = connect(clinic.vault, slots.keys_of("desk.kim", STAFF["desk.kim"][1])[0])
    uuid, sealed = db.execute("SELECT uuid, sealed FROM patients WHERE id = ?", (clinic.pid,)).fetchone()
    assert open_text(sealed, slots.vault_id, bytes(uuid), "patients", kept) is None
    for (data,) in db.execute("SELECT data FROM patient_versions WHERE patient_id = ?", (clinic.pid,)):
        assert open_text(data, slots.vault_id, bytes(uuid), "patient_versions", kept) is None
    # The team reads the new address.
    doctor, _ = what_opens(clinic.vault, "dr.adeyemi", STAFF["dr.adeyemi"][1])
    assert any("12 New Street" in t for t in doctor)


def test_the_front_desk_registers_a_restricted_chart_and_alone_of_the_front_desk_opens_it(clinic):
    pw = STAFF["desk.two"][1]
    made = clinic.json("--user", "desk.two", "patient", "add", "--family", "Qzregistered", "--given", "Ida",
                       "--birth-date", "1981-01-01", "--sex", "female", "--restricted", password=pw)
    assert made["family"] == "Qzregistered"
    texts, _ = what_opens(clinic.vault, "desk.two", pw)
    assert any("Qzregistered" in t for t in texts), "the registrant is its first member"
    others, _ = what_opens(clinic.vault, "desk.kim", STAFF["desk.kim"][1])
    assert not any("Qzregistered" in t for t in others)
    assert clinic.json("--user", "admin", "vault", "verify", password=ADMIN_PW)["ok"] is True
