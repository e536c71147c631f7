"""The documented key formats (docs/security.md), read with PyPI `cryptography` and nothing
of Chartroom's: what an insider can do with their own password, the vault's files and that
page. XChaCha20-Poly1305 is HChaCha20 (draft-irtf-cfrg-xchacha, section 2.2) in front of
cryptography's ChaCha20-Poly1305."""

import base64
import json
import struct
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

# The sealed columns, as docs/security.md lists them.
SEALED = {
    "encounters": ["reason"],
    "notes": ["text", "subjective", "objective", "assessment", "plan", "content_sha256", "signature", "signer_key"],
    "observations": ["value", "flag"],
    "problems": ["text", "system", "code"],
    "allergies": ["substance", "reaction", "severity", "category", "allergy_override"],
    "medications": ["name", "dose", "route", "frequency", "allergy_override"],
    "immunizations": ["vaccine", "cvx", "lot", "site"],
    "entered_in_error": ["reason"],
    "lab_reports": ["loinc", "name"],
    "lab_results": ["loinc", "name", "value", "unit", "range", "flag", "reason", "error_reason"],
}


def b64(text: str) -> bytes:
    return base64.b64decode(text)


def lp(*parts: bytes) -> bytes:
    return b"".join(struct.pack(">I", len(p)) + p for p in parts)


def u64(n: int) -> bytes:
    return struct.pack(">Q", n)


def _rotl(v, c):
    return ((v << c) & 0xFFFFFFFF) | (v >> (32 - c))


def _quarter(s, a, b, c, d):
    s[a] = (s[a] + s[b]) & 0xFFFFFFFF; s[d] = _rotl(s[d] ^ s[a], 16)
    s[c] = (s[c] + s[d]) & 0xFFFFFFFF; s[b] = _rotl(s[b] ^ s[c], 12)
    s[a] = (s[a] + s[b]) & 0xFFFFFFFF; s[d] = _rotl(s[d] ^ s[a], 8)
    s[c] = (s[c] + s[d]) & 0xFFFFFFFF; s[b] = _rotl(s[b] ^ s[c], 7)


def hchacha20(key: bytes, nonce16: bytes) -> bytes:
    s = list(struct.unpack("<4I", b"expand 32-byte k")) + list(struct.unpack("<8I", key)) + \
        list(struct.unpack("<4I", nonce16))
    for _ in range(10):
        _quarter(s, 0, 4, 8, 12); _quarter(s, 1, 5, 9, 13); _quarter(s, 2, 6, 10, 14); _quarter(s, 3, 7, 11, 15)
        _quarter(s, 0, 5, 10, 15); _quarter(s, 1, 6, 11, 12); _quarter(s, 2, 7, 8, 13); _quarter(s, 3, 4, 9, 14)
    return struct.pack("<8I", *(s[0:4] + s[12:16]))


def xchacha_decrypt(key: bytes, nonce24: bytes, ciphertext: bytes, ad: bytes) -> bytes:
    return ChaCha20Poly1305(hchacha20(key, nonce24[:16])).decrypt(b"\0" * 4 + nonce24[16:], ciphertext, ad)


def raw_public(private: X25519PrivateKey) -> bytes:
    return private.public_key().public_bytes_raw()


def identity_ad(vault_id: str, slot: dict) -> bytes:
    """The wrapped identity's associated data: version 2 names the security log's root key."""
    parts = [vault_id.encode(), slot["kind"].encode(), slot["owner"].encode(), b64(slot["public_key"])]
    if slot.get("root"):
        return lp(b"chartroom/slot-identity/v2", *parts, b64(slot["root"]))
    return lp(b"chartroom/slot-identity/v1", *parts)


def xchacha_encrypt(key: bytes, nonce24: bytes, plaintext: bytes, ad: bytes) -> bytes:
    sub = hchacha20(key, nonce24[:16])
    return ChaCha20Poly1305(sub).encrypt(b"\0\0\0\0" + nonce24[16:], plaintext, ad)


def forge_user_slot(vault_id: str, owner: str, password: str, database_key: bytes, epoch: int,
                    root: str | None, params: dict) -> dict:
    """A user slot for `owner` under a password the insider chose, holding the database key,
    made from the documented format alone (what an insider with the database key can write)."""
    import os
    salt = os.urandom(16)
    params = {k: params[k] for k in ("memory_kib", "iterations", "parallelism")}
    kek = Argon2id(salt=salt, length=32, iterations=params["iterations"], lanes=params["parallelism"],
                   memory_cost=params["memory_kib"]).derive(password.encode())
    identity = X25519PrivateKey.generate()
    public = raw_public(identity)
    slot = {"kind": "user", "owner": owner, "created_at": "2026-01-01T00:00:00Z",
            "kdf": {"algorithm": "argon2id", "version": 19, **params, "salt": base64.b64encode(salt).decode()},
            "public_key": base64.b64encode(public).decode()}
    if root:
        slot["root"] = root
    nonce = os.urandom(24)
    slot["identity"] = {"nonce": base64.b64encode(nonce).decode(),
                        "ciphertext": base64.b64encode(xchacha_encrypt(
                            kek, nonce, identity.private_bytes_raw(), identity_ad(vault_id, slot))).decode()}
    eph = X25519PrivateKey.generate()
    eph_pub = raw_public(eph)
    shared = eph.exchange(X25519PublicKey.from_public_bytes(public))
    k = HKDF(hashes.SHA256(), 32, salt=eph_pub + public, info=b"chartroom/seal-key/v1").derive(shared)
    nonce = os.urandom(24)
    ad = lp(b"chartroom/slot-seal/v1", vault_id.encode(), b"user", owner.encode(), u64(epoch),
            slot["public_key"].encode(), eph_pub)
    slot["sealed"] = {"epoch": epoch, "ephemeral": base64.b64encode(eph_pub).decode(),
                      "nonce": base64.b64encode(nonce).decode(),
                      "ciphertext": base64.b64encode(xchacha_encrypt(k, nonce, database_key, ad)).decode()}
    return slot


class SlotFile:
    def __init__(self, vault: Path):
        self.doc = json.loads((vault / "keyslots.json").read_text())
        self.vault_id = self.doc["vault_id"]

    def slot(self, owner: str, kind: str = "user") -> dict:
        return next(s for s in self.doc["slots"] if s["kind"] == kind and s["owner"].lower() == owner.lower())

    def compartment(self, name: str) -> dict | None:
        return next((c for c in self.doc.get("compartments", []) if c["name"] == name), None)

    def identity(self, slot: dict, secret: bytes) -> X25519PrivateKey:
        """The slot's X25519 private key, from its password (or recovery key) by Argon2id."""
        kdf = slot["kdf"]
        kek = Argon2id(salt=b64(kdf["salt"]), length=32, iterations=kdf["iterations"],
                       lanes=kdf["parallelism"], memory_cost=kdf["memory_kib"]).derive(secret)
        ad = identity_ad(self.vault_id, slot)
        raw = xchacha_decrypt(kek, b64(slot["identity"]["nonce"]), b64(slot["identity"]["ciphertext"]), ad)
        return X25519PrivateKey.from_private_bytes(raw)

    def _unseal(self, identity: X25519PrivateKey, sealed: dict, ad_of) -> bytes:
        eph = b64(sealed["ephemeral"])
        shared = identity.exchange(X25519PublicKey.from_public_bytes(eph))
        k = HKDF(hashes.SHA256(), 32, salt=eph + raw_public(identity), info=b"chartroom/seal-key/v1").derive(shared)
        return xchacha_decrypt(k, b64(sealed["nonce"]), b64(sealed["ciphertext"]), ad_of(eph))

    def database_key(self, slot: dict, identity: X25519PrivateKey) -> bytes:
        sealed = slot["sealed"]
        return self._unseal(identity, sealed, lambda eph: lp(
            b"chartroom/slot-seal/v1", self.vault_id.encode(), slot["kind"].encode(), slot["owner"].encode(),
            u64(sealed["epoch"]), slot["public_key"].encode(), eph))

    def compartment_keys(self, slot: dict, identity: X25519PrivateKey) -> dict:
        """{name: X25519 private key} for every compartment sealed into this slot."""
        out = {}
        for sealed in slot.get("compartments", []):
            public = self.compartment(sealed["name"])
            ad = lambda eph: lp(
                b"chartroom/slot-compartment/v1", self.vault_id.encode(), slot["kind"].encode(),
                slot["owner"].encode(), sealed["name"].encode(), u64(sealed["epoch"]), b64(public["public_key"]),
                slot["public_key"].encode(), eph)
            out[sealed["name"]] = X25519PrivateKey.from_private_bytes(self._unseal(identity, sealed, ad))
        return out

    def keys_of(self, owner: str, password: str, kind: str = "user"):
        """(database key, {compartment: private key}) that `owner`'s secret opens."""
        slot = self.slot(owner, kind)
        identity = self.identity(slot, password.encode())
        return self.database_key(slot, identity), self.compartment_keys(slot, identity)


def content_keys(db, vault_id: str, compartment_secret: X25519PrivateKey) -> dict:
    """{id: key} of every content key the compartment's private key opens."""
    public = raw_public(compartment_secret)
    out = {}
    for key_id, name, epoch, eph, nonce, sealed in db.execute(
            "SELECT id, compartment, epoch, ephemeral, nonce, sealed FROM content_keys"):
        shared = compartment_secret.exchange(X25519PublicKey.from_public_bytes(eph))
        k = HKDF(hashes.SHA256(), 32, salt=bytes(eph) + public, info=b"chartroom/content-key/v1").derive(shared)
        ad = lp(b"chartroom/content-key/v1", vault_id.encode(), name.encode(), u64(epoch), u64(key_id))
        try:
            out[key_id] = ChaCha20Poly1305(k).decrypt(bytes(nonce), bytes(sealed), ad)
        except InvalidTag:
            pass
    return out


def open_field(blob: bytes, table: str, column: str, row_uuid: bytes, patient_uuid: bytes, keys: dict) -> str | None:
    """The text of one sealed field, or None when none of `keys` opens it."""
    blob = bytes(blob)
    assert blob[0] == 1, "field format 1"
    key_id = struct.unpack(">Q", blob[1:9])[0]
    ad = lp(b"chartroom/field/v1", table.encode(), column.encode(), bytes(row_uuid), bytes(patient_uuid), u64(key_id))
    for candidate in ([keys[key_id]] if key_id in keys else []) + [k for k in keys.values()]:
        try:
            return AESGCM(candidate).decrypt(blob[9:21], blob[21:], ad).decode()
        except (InvalidTag, ValueError):
            continue
    return None


def sealed_fields(db):
    """Every sealed field: (table, column, row uuid, patient uuid, blob)."""
    for table, columns in SEALED.items():
        for column in columns:
            for row_uuid, patient_uuid, blob in db.execute(
                    f"SELECT t.uuid, p.uuid, t.{column} FROM {table} t JOIN patients p ON p.id = t.patient_id "
                    f"WHERE t.{column} IS NOT NULL"):
                yield table, column, row_uuid, patient_uuid, blob
