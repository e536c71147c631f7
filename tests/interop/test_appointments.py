"""The appointment book as an insider sees it: the vault's files read with PyPI `sqlcipher3`
and `cryptography` (keyfiles.py), the front desk's own password, the formats in
docs/security.md. Nothing of the book is on disk in clear; with the database key (which any
password opens) the book is readable, as docs/security.md says; every list the app showed is
in the trail with each patient it named; and the CLI's times keep the clinic's local time
across a daylight-saving change."""

import datetime

import pytest
import sqlcipher3

from keyfiles import SlotFile

ADMIN_PW = "admin-password-1"
DOC_PW = "doctor-password-1"
DESK_PW = "desk-password-1"
REASON = "MRK-appointment-reason-Qx"


@pytest.fixture
def clinic(cli):
    cli.run("vault", "init", "--admin", "admin", password=ADMIN_PW)
    cli.run("--user", "admin", "user", "add", "dr.adeyemi", "--role", "physician", password=ADMIN_PW,
            new_password=DOC_PW)
    cli.run("--user", "admin", "user", "add", "desk.kim", "--role", "front_desk", password=ADMIN_PW,
            new_password=DESK_PW)
    cli.run("--user", "admin", "settings", "set", "clinic_time_zone", "America/Chicago", password=ADMIN_PW)
    cli.run("--user", "admin", "schedule", "set", "dr.adeyemi", "--day", "mon-fri", "--hours", "09:00-12:00",
            password=ADMIN_PW)
    cli.pids = [str(cli.json("--user", "desk.kim", "patient", "add", "--family", family, "--given", "Ada",
                             "--birth-date", "1980-01-02", "--sex", "female", password=DESK_PW)["id"])
                for family in ("Booked", "Listed")]
    return cli


def book(cli, pid, at, *extra):
    return cli.json("--user", "desk.kim", "appointment", "book", "--patient", pid, "--with", "dr.adeyemi",
                    "--at", at, *extra, password=DESK_PW)


def next_weekday(days_ahead: int) -> datetime.date:
    d = datetime.date.today() + datetime.timedelta(days=days_ahead)
    while d.weekday() >= 5:
        d += datetime.timedelta(days=1)
    return d


def test_the_book_is_encrypted_on_disk_and_every_list_is_in_the_trail(clinic):
    day = next_weekday(3)
    first = book(clinic, clinic.pids[0], f"{day} 09:00", "--reason", REASON)
    book(clinic, clinic.pids[1], f"{day} 09:30")
    listed = clinic.json("--user", "desk.kim", "appointment", "list", "--day", str(day), password=DESK_PW)
    assert [a["id"] for a in listed["appointments"]][0] == first["id"]

    # On disk: nothing of the book in clear, in the database or its write-ahead log.
    for path in clinic.vault.iterdir():
        if path.name.startswith("chartroom.db"):
            raw = path.read_bytes()
            assert REASON.encode() not in raw and b"dr.adeyemi" not in raw, path.name

    # With the front desk's own password: the database key opens the book (it must: the
    # front desk books), reasons included, as docs/security.md states.
    db_key, compartments = SlotFile(clinic.vault).keys_of("desk.kim", DESK_PW)
    assert compartments == {}, "the front desk holds no compartment key"
    db = sqlcipher3.connect(str(clinic.vault / "chartroom.db"))
    db.execute(f"PRAGMA key = \"x'{db_key.hex()}'\"")
    rows = db.execute("SELECT patient_id, clinician, start, status, reason FROM appointments ORDER BY start").fetchall()
    assert [(str(r[0]), r[1], r[3]) for r in rows] == [(clinic.pids[0], "dr.adeyemi", "booked"),
                                                         (clinic.pids[1], "dr.adeyemi", "booked")]
    assert rows[0][4] == REASON
    # Stored as UTC instants: 09:00 in Chicago is 14:00 or 15:00 UTC, never 09:00.
    assert rows[0][2][11:13] in ("14", "15") and rows[0][2].endswith("Z"), rows[0][2]

    # The list the app showed is in the trail: its own entry, and one per patient it named.
    entries = db.execute("SELECT event, patient_id, object_id FROM audit_log "
                         "WHERE event = 'appointment.list' ORDER BY seq").fetchall()
    assert [e[1] for e in entries] == [None, clinic.pids[0], clinic.pids[1]], entries
    db.close()
    verified = clinic.json("--user", "admin", "audit", "verify", password=ADMIN_PW)
    assert verified["ok"] is True


def test_local_time_holds_across_the_clocks_changing_and_a_skipped_time_is_refused(clinic):
    # The next spring change in Chicago: the second Sunday of March.
    year = datetime.date.today().year + 1
    march = datetime.date(year, 3, 1)
    sunday = march + datetime.timedelta(days=(6 - march.weekday()) % 7 + 7)
    friday, monday = sunday - datetime.timedelta(days=2), sunday + datetime.timedelta(days=1)
    before = book(clinic, clinic.pids[0], f"{friday} 09:00")
    after = book(clinic, clinic.pids[0], f"{monday} 09:00")
    assert before["start"] == f"{friday}T09:00:00-06:00"
    assert after["start"] == f"{monday}T09:00:00-05:00"
    assert before["warnings"] == [] and after["warnings"] == []
    skipped = clinic.run("--user", "desk.kim", "appointment", "book", "--patient", clinic.pids[0],
                         "--with", "dr.adeyemi", "--at", f"{sunday} 02:30", password=DESK_PW, check=False)
    assert skipped.returncode == 65
    assert "does not exist" in skipped.stderr
