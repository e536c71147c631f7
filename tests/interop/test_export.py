"""Exports against the standard tools, not our own code.

Debian's `age` decrypts what `chartroom export` writes (to an `age-keygen` identity, and to
a passphrase typed at its terminal prompt); every resource inside validates with the PyPI
fhir.resources R4B models. Imports round-trip through a second vault, refuse bad files with
the documented exit codes and leave the target unchanged, and no plaintext ever reaches
the disk while a large export runs.
"""

import datetime
import importlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import threading
import time

import pexpect
import pytest
import sqlcipher3

from conftest import TARGET, Cli

ADMIN_PW = "admin-password-1"
DOCTOR_PW = "doctor-password-1"
DESK_PW = "desk-password-1"
MARKER = "Quokkamarker"
NOTE_MARKER = "MARKER-7d1e-note-text"

MODULES = {
    "Bundle": "bundle",
    "Patient": "patient",
    "Encounter": "encounter",
    "Observation": "observation",
    "Condition": "condition",
    "AllergyIntolerance": "allergyintolerance",
    "MedicationStatement": "medicationstatement",
    "MedicationRequest": "medicationrequest",
    "Practitioner": "practitioner",
    "Organization": "organization",
    "Immunization": "immunization",
    "DocumentReference": "documentreference",
    "Provenance": "provenance",
    "Schedule": "schedule",
    "Slot": "slot",
    "Appointment": "appointment",
    "DiagnosticReport": "diagnosticreport",
}


VALIDATOR = TARGET / "fhir" / "validate" / "validate.js"


def medplum(*files) -> str:
    """The shared Medplum validator (scripts/setup.sh installs it under target/fhir) over
    FHIR files: every resource against base R4 and, where one maps, its US Core 5.0.1
    profile. Returns the summary; fails on any failing resource."""
    assert VALIDATOR.exists(), f"{VALIDATOR} is missing: run scripts/setup.sh test"
    proc = subprocess.run(["node", str(VALIDATOR), *map(str, files)], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    summary = proc.stdout.split("--- summary")[-1]
    for line in summary.splitlines():
        if " passed, " in line:
            assert " 0 failed" in line, line
    return summary


def validate(resource: dict):
    kind = resource["resourceType"]
    model = getattr(importlib.import_module(f"fhir.resources.R4B.{MODULES[kind]}"), kind)
    model.model_validate(resource)


def keypair(tmp_path, name="key.txt"):
    path = tmp_path / name
    subprocess.run(["age-keygen", "-o", str(path)], check=True, capture_output=True)
    recipient = subprocess.run(["age-keygen", "-y", str(path)], check=True, capture_output=True, text=True)
    return path, recipient.stdout.strip()


def age_decrypt(path, identity) -> bytes:
    proc = subprocess.run(["age", "-d", "-i", str(identity), str(path)], capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def ndjson_resources(plain: bytes) -> dict:
    """{file name: [resources]} from a decrypted Bulk Data archive."""
    out = {}
    with tarfile.open(fileobj=io.BytesIO(plain)) as tar:
        for member in tar.getmembers():
            data = tar.extractfile(member).read().decode()
            if member.name == "manifest.json":
                out[member.name] = json.loads(data)
            else:
                out[member.name] = [json.loads(line) for line in data.splitlines() if line.strip()]
    return out


def whole_clinic(cli, *args, **kw):
    """`export --all` with the recovery key: a whole clinic with its clinical record takes keys
    that open it (an administrator's export holds demographics only)."""
    return cli.json("export", "--all", "--recovery-key", *args,
                    extra_env={"CHARTROOM_RECOVERY_KEY": cli.recovery}, **kw)


def make_clinic(cli, patients=40):
    cli.recovery = cli.json("vault", "init", "--admin", "admin", password=ADMIN_PW)["recovery_key"]
    cli.run("--user", "admin", "user", "add", "dr.adeyemi", "--role", "physician",
            password=ADMIN_PW, new_password=DOCTOR_PW)
    cli.run("--user", "admin", "demo", "--patients", str(patients), "--long-chart-every", "20",
            password=ADMIN_PW)
    doctor = ("--user", "dr.adeyemi")
    made = cli.json(*doctor, "patient", "add", "--family", MARKER, "--given", "Ada",
                    "--birth-date", "1980-01-02", "--sex", "female", password=DOCTOR_PW)
    pid = str(made["id"])
    cli.run(*doctor, "vitals", "add", "--patient", pid, "--bp", "150/95", "--pulse", "88", password=DOCTOR_PW)
    note = cli.json(*doctor, "note", "draft", "--patient", pid, "--text", f"{NOTE_MARKER} <script>alert(1)</script>",
                    password=DOCTOR_PW)
    cli.run(*doctor, "note", "sign", str(note["id"]), password=DOCTOR_PW)
    cli.run(*doctor, "allergy", "none", "--patient", pid, password=DOCTOR_PW)
    # Items entered in error travel marked (FHIR's entered-in-error status, no clinical status).
    wrong = cli.json(*doctor, "vitals", "add", "--patient", pid, "--weight", "180", password=DOCTOR_PW)
    cli.run(*doctor, "vitals", "entered-in-error", str(wrong["observations"][0]["id"]),
            "--reason", "Pounds typed as kilograms", password=DOCTOR_PW)
    problem = cli.json(*doctor, "problem", "add", "--patient", pid, "--text", "Asthma", password=DOCTOR_PW)
    cli.run(*doctor, "problem", "entered-in-error", str(problem["id"]), "--reason", "Wrong patient",
            password=DOCTOR_PW)
    # Lab results: a panel with a corrected value, a coded finding, one entered in error.
    panel = cli.json(*doctor, "report", "add", "--patient", pid, "--loinc", "57698-3", password=DOCTOR_PW)
    ldl = cli.json(*doctor, "result", "add", "--patient", pid, "--loinc", "18262-6", "--value", "162",
                   "--range", "<130", "--report", str(panel["id"]), password=DOCTOR_PW)
    assert ldl["flag"] == "H" and ldl["unit"] == "mg/dL"
    cli.run(*doctor, "result", "add", "--patient", pid, "--loinc", "2085-9", "--value", "38", "--range", ">40",
            "--report", str(panel["id"]), password=DOCTOR_PW)
    cli.run(*doctor, "result", "correct", str(ldl["id"]), "--value", "126", "--reason", "Corrected report",
            password=DOCTOR_PW)
    cli.run(*doctor, "result", "add", "--patient", pid, "--loinc", "94500-6", "--value", "not detected",
            password=DOCTOR_PW)
    sugar = cli.json(*doctor, "result", "add", "--patient", pid, "--loinc", "2345-7", "--value", "310",
                     "--range", "70-99", password=DOCTOR_PW)
    cli.run(*doctor, "result", "entered-in-error", str(sugar["id"]), "--reason", "Another patient's sample",
            password=DOCTOR_PW)
    # The appointment book travels too: one visit started today, one booked ahead, one cancelled.
    cli.run("--user", "admin", "user", "add", "desk.ola", "--role", "front_desk",
            password=ADMIN_PW, new_password=DESK_PW)
    cli.run("--user", "admin", "schedule", "set", "dr.adeyemi", "--day", "mon-sun", "--hours", "08:00-17:00",
            password=ADMIN_PW)
    cli.run("--user", "admin", "appointment-type", "add", "Follow-up", "--minutes", "20", password=ADMIN_PW)
    today = datetime.date.today()
    desk = ("--user", "desk.ola", "appointment", "book", "--patient", pid, "--with", "dr.adeyemi")
    visit = cli.json(*desk, "--at", f"{today} 00:05", "--reason", "Blood pressure review", password=DESK_PW)
    ahead = today + datetime.timedelta(days=14)
    cli.json(*desk, "--at", f"{ahead} 09:00", "--type", "Follow-up", password=DESK_PW)
    gone = cli.json(*desk, "--at", f"{ahead} 10:00", password=DESK_PW)
    cli.run("--user", "desk.ola", "appointment", "cancel", str(gone["id"]), "--reason", "Moved away",
            password=DESK_PW)
    cli.run(*doctor, "appointment", "start", str(visit["id"]), password=DOCTOR_PW)
    return pid


@pytest.fixture
def clinic(cli):
    cli.marker_patient = make_clinic(cli)
    return cli


@pytest.fixture
def other(tmp_path):
    """A second, empty clinic: the receiving vault."""
    cli = Cli(tmp_path / "receiving")
    (tmp_path / "receiving").mkdir()
    cli.run("vault", "init", "--admin", "admin", password=ADMIN_PW)
    return cli


def test_age_decrypts_the_clinic_export_and_every_resource_is_valid_fhir(clinic, tmp_path):
    identity, recipient = keypair(tmp_path)
    out = tmp_path / "clinic.age"
    report = whole_clinic(clinic, "--recipient", recipient,
                          "--purpose", "Practice closing: records to the new clinic", "--to", "Harbour Clinic",
                          "--out", str(out))
    assert report["format"] == "bulk-ndjson"
    assert report["clinical_left_out"] is False
    # The recovery key is on no care team: the demo's restricted patients stay home, and say so.
    assert report["left_out"], "the demo clinic has restricted patients"
    assert report["patients"] + len(report["left_out"]) == 41
    assert out.read_bytes().startswith(b"age-encryption.org/v1\n")

    files = ndjson_resources(age_decrypt(out, identity))
    manifest = files.pop("manifest.json")
    # Bulk Data names each file by an absolute URL.
    assert {o["url"].rsplit("/", 1)[1] for o in manifest["output"]} == set(files)
    assert all(o["url"].startswith("https://") for o in manifest["output"])
    total = 0
    for name, resources in files.items():
        listed = next(o for o in manifest["output"] if o["url"].endswith("/" + name))
        assert listed["count"] == len(resources)
        for r in resources:
            assert r["resourceType"] == listed["type"]
            validate(r)
            total += 1
    assert total == sum(report["resources"].values())

    # Every resource passes base R4 and its US Core 5.0.1 profile (Medplum's validator), the
    # second opinion beside fhir.resources above.
    folder = tmp_path / "ndjson"
    folder.mkdir()
    for name, resources in files.items():
        (folder / name).write_text("".join(json.dumps(r) + "\n" for r in resources))
    summary = medplum(*sorted(folder.iterdir()))
    for profile in ["us-core-blood-pressure", "us-core-pulse-oximetry", "us-core-body-weight", "us-core-patient",
                    "us-core-medicationrequest",
                    "us-core-encounter", "us-core-condition-problems-health-concerns", "us-core-immunization",
                    "us-core-observation-lab", "us-core-diagnosticreport-lab",
                    "us-core-observation-sexual-orientation"]:
        assert profile in summary, summary

    # Vitals carry LOINC and UCUM, a blood pressure as one panel with its two components;
    # the "no known allergies" statement is SNOMED 716186003.
    obs = files["Observation.ndjson"]
    panel = next(o for o in obs if o["code"]["coding"][0]["code"] == "85354-9")
    systolic = next(c for c in panel["component"] if c["code"]["coding"][0]["code"] == "8480-6")
    assert systolic["code"]["coding"][0]["system"] == "http://loinc.org"
    assert systolic["valueQuantity"]["system"] == "http://unitsofmeasure.org"
    assert systolic["valueQuantity"]["code"] == "mm[Hg]"
    assert not any(o["code"]["coding"][0]["code"] in ("8480-6", "8462-4") for o in obs), "no half pressures"
    spo2 = [o for o in obs if o["code"]["coding"][0]["code"] == "59408-5"]
    assert spo2 and all(any(c["code"] == "2708-6" for c in o["code"]["coding"]) for o in spo2)
    nka = [a for a in files["AllergyIntolerance.ndjson"]
           if a["code"].get("coding", [{}])[0].get("code") == "716186003"]
    assert nka, "the no-known-allergies statement is exported"
    # Addenda point at what they append to, and every signed note has its Provenance.
    docs = files["DocumentReference.ndjson"]
    ids = {d["id"] for d in docs}
    addenda = [d for d in docs if "relatesTo" in d]
    assert addenda and all(d["relatesTo"][0]["code"] == "appends" for d in addenda)
    assert all(d["relatesTo"][0]["target"]["reference"].split("/")[1] in ids for d in addenda)
    signed = {p["target"][0]["reference"] for p in files["Provenance.ndjson"]}
    assert signed == {f"DocumentReference/{i}" for i in ids}
    # Each signature names its signer as a Practitioner in the file, acting for the clinic
    # (US Core Provenance, provenance-1); each Practitioner and the clinic are there once.
    staff = {p["id"] for p in files["Practitioner.ndjson"]}
    assert len(staff) == len(files["Practitioner.ndjson"])
    assert [o["id"] for o in files["Organization.ndjson"]] == ["clinic"]
    for p in files["Provenance.ndjson"]:
        agent = p["agent"][0]
        assert agent["who"]["reference"].split("/")[1] in staff
        assert agent["onBehalfOf"]["reference"] == "Organization/clinic"


def test_one_patient_is_a_bundle_and_a_passphrase_export_opens_at_ages_prompt(clinic, tmp_path):
    out = tmp_path / "referral.age"
    passphrase = "tulip anchor velvet ninety"
    proc = clinic.run("--user", "dr.adeyemi", "export", "--patient", clinic.marker_patient, "--passphrase",
                      "--purpose", "Referral to cardiology", "--out", str(out), password=DOCTOR_PW,
                      extra_env={"CHARTROOM_EXPORT_PASSPHRASE": passphrase})
    report = json.loads(proc.stdout)
    assert report["format"] == "bundle"
    assert report["keys"] == [{"type": "passphrase"}]

    plain = tmp_path / "plain.json"
    child = pexpect.spawn("age", ["-d", "-o", str(plain), str(out)], timeout=60)
    child.expect("passphrase")
    child.sendline(passphrase)
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    bundle = json.loads(plain.read_text())
    validate(bundle)
    medplum(plain)
    assert all(e["fullUrl"].endswith(f'/{e["resource"]["resourceType"]}/{e["resource"]["id"]}')
               and e["fullUrl"].startswith("https://") for e in bundle["entry"])
    for entry in bundle["entry"]:
        validate(entry["resource"])
    patient = bundle["entry"][0]["resource"]
    assert patient["name"][0]["family"] == MARKER
    note = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "DocumentReference")
    assert note["content"][0]["attachment"]["contentType"].startswith("text/plain")
    # The appointment book: each appointment, its clinician's Schedule, a busy Slot for each
    # that holds time, and the visit's Encounter pointing back at the appointment it started.
    kinds = [e["resource"]["resourceType"] for e in bundle["entry"]]
    assert (kinds.count("Appointment"), kinds.count("Slot"), kinds.count("Schedule")) == (3, 2, 1), kinds
    appointments = {e["resource"]["status"]: e["resource"] for e in bundle["entry"]
                    if e["resource"]["resourceType"] == "Appointment"}
    assert set(appointments) == {"fulfilled", "booked", "cancelled"}
    assert appointments["cancelled"]["cancelationReason"]["text"] == "Moved away"
    assert appointments["booked"]["appointmentType"]["text"] == "Follow-up"
    assert appointments["booked"]["minutesDuration"] == 20
    visit = next(e["resource"] for e in bundle["entry"]
                 if e["resource"]["resourceType"] == "Encounter" and "appointment" in e["resource"])
    assert visit["appointment"][0]["reference"] == f"Appointment/{appointments['fulfilled']['id']}"
    assert visit["reasonCode"][0]["text"] == "Blood pressure review"


def test_a_patient_already_here_stops_the_import_until_matched(clinic, other, tmp_path):
    """The receiving clinic registered the marker patient itself: the import stops, names
    them and their chart here, and writes nothing; --match joins the records to that chart."""
    identity, recipient = keypair(tmp_path)
    out = tmp_path / "move.age"
    report = whole_clinic(clinic, "--recipient", recipient, "--purpose", "Patient moved", "--out", str(out))
    other.run("--user", "admin", "user", "add", "dr.lin", "--role", "physician",
              password=ADMIN_PW, new_password=DOCTOR_PW)
    here = other.json("--user", "dr.lin", "patient", "add", "--family", MARKER, "--given", "Ada",
                      "--birth-date", "1980-01-02", "--sex", "female", password=DOCTOR_PW)
    source_id = f"p{clinic.marker_patient}"
    args = ("--user", "admin", "import", str(out), "--identity", str(identity))
    for extra in [(), ("--dry-run",)]:
        proc = other.run(*args, *extra, password=ADMIN_PW, check=False)
        assert proc.returncode == 65, proc.stderr
        error = json.loads(proc.stderr)["error"]
        assert error["code"] == "possible_duplicate"
        assert [m["source_id"] for m in error["matches"]] == [source_id], error
        assert error["matches"][0]["candidates"][0]["id"] == here["id"]
        assert "--match" in error["message"]
    hits = other.json("--user", "dr.lin", "patient", "search", MARKER, password=DOCTOR_PW)["patients"]
    assert len(hits) == 1, "nothing was written"
    proc = other.run(*args, "--match", "p1=maybe", password=ADMIN_PW, check=False)
    assert proc.returncode == 64, proc.stderr
    joined = other.json(*args, "--match", f"{source_id}={here['id']}", password=ADMIN_PW)
    assert joined["patients_matched"] == 1
    assert joined["patients_added"] == report["patients"] - 1
    hits = other.json("--user", "dr.lin", "patient", "search", MARKER, password=DOCTOR_PW)["patients"]
    assert [h["id"] for h in hits] == [here["id"]], "no second chart"
    chart = other.json("--user", "dr.lin", "patient", "show", str(here["id"]), password=DOCTOR_PW)
    assert any(o["value"] == 150.0 for o in chart["vitals"]), "the records joined the chart here"
    again = other.json(*args, password=ADMIN_PW)
    assert again["added"] == {}


def test_import_round_trips_and_a_second_import_adds_nothing(clinic, other, tmp_path):
    identity, recipient = keypair(tmp_path)
    out = tmp_path / "move.age"
    report = whole_clinic(clinic, "--recipient", recipient, "--purpose", "Patient moved", "--out", str(out))
    # Staff first, then the import: it seals to the clinicians there are (a physician added
    # later gets the key when a clinician or the recovery key next signs in).
    other.run("--user", "admin", "user", "add", "dr.lin", "--role", "physician",
              password=ADMIN_PW, new_password=DOCTOR_PW)
    # A dry run first: the same report, nothing written.
    preview = other.json("--user", "admin", "import", str(out), "--identity", str(identity), "--dry-run",
                         password=ADMIN_PW)
    assert preview["dry_run"] is True
    assert preview["added"] == report["resources"]
    assert other.json("--user", "admin", "patient", "search", MARKER, password=ADMIN_PW)["patients"] == []
    first = other.json("--user", "admin", "import", str(out), "--identity", str(identity), password=ADMIN_PW)
    assert first["dry_run"] is False
    assert first["patients_added"] == report["patients"]
    assert first["added"] == report["resources"]
    again = other.json("--user", "admin", "import", str(out), "--identity", str(identity), password=ADMIN_PW)
    assert again["patients_added"] == 0
    assert again["added"] == {}
    assert again["already_here"] == first["added"]

    moved = next(p for p in first["patients"] if p["source_id"] == f"p{clinic.marker_patient}")
    chart = other.json("--user", "dr.lin", "patient", "show", str(moved["id"]), password=DOCTOR_PW)
    original = clinic.json("--user", "dr.adeyemi", "patient", "show", clinic.marker_patient, password=DOCTOR_PW)
    assert chart["family"] == MARKER
    assert chart["allergy_status"] == "no_known_allergies"
    assert [n["text"] for n in chart["notes"]] == [n["text"] for n in original["notes"]]
    assert NOTE_MARKER in chart["notes"][0]["text"]
    assert [n["signed_by"] for n in chart["notes"]] == ["dr.adeyemi"]
    assert sorted((v["code"], v["value"]) for v in chart["vitals"]) == \
        sorted((v["code"], v["value"]) for v in original["vitals"])


def dump(cli) -> list:
    key = cli.json("--user", "admin", "vault", "export-key", password=ADMIN_PW)["key"]
    conn = sqlcipher3.connect(str(cli.vault / "chartroom.db"), isolation_level=None)
    conn.execute(f"PRAGMA key = \"x'{key}'\"")
    rows = []
    for table in ("patients", "encounters", "notes", "observations", "problems", "allergies",
                  "medications", "immunizations", "imported_records", "care_team"):
        rows += [(table, *r) for r in conn.execute(f"SELECT * FROM {table} ORDER BY 1")]
    conn.close()
    return rows


def test_bad_files_are_refused_with_clear_errors_and_change_nothing(clinic, other, tmp_path):
    identity, recipient = keypair(tmp_path)
    stranger, _ = keypair(tmp_path, "stranger.txt")
    good = tmp_path / "good.age"
    whole_clinic(clinic, "--recipient", recipient, "--purpose", "Patient moved", "--out", str(good))
    data = good.read_bytes()
    truncated = tmp_path / "truncated.age"
    truncated.write_bytes(data[: len(data) // 2])
    altered = tmp_path / "altered.age"
    flipped = bytearray(data)
    flipped[len(flipped) // 2] ^= 0x40
    altered.write_bytes(bytes(flipped))
    # Valid age, but the FHIR inside is broken: an Observation whose encounter is not there.
    plain = age_decrypt(good, identity)
    files = ndjson_resources(plain)
    files["Observation.ndjson"][0]["encounter"] = {"reference": "Encounter/e99999999"}
    # Unsigned, so that the broken reference (not the signature, which any edit breaks) is
    # what refuses it: an unsigned file from a source never seen here.
    del files["manifest.json"]["extension"]["chartroom"]["signature"]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, content in files.items():
            body = (json.dumps(content) if name == "manifest.json"
                    else "".join(json.dumps(r) + "\n" for r in content)).encode()
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    dangling = tmp_path / "dangling.age"
    subprocess.run(["age", "-r", recipient, "-o", str(dangling)], input=buf.getvalue(), check=True)
    not_fhir = tmp_path / "not-fhir.age"
    subprocess.run(["age", "-r", recipient, "-o", str(not_fhir)], input=b'{"hello": "world"}', check=True)

    before = dump(other)
    cases = [
        ("someone else's key", good, ["--identity", str(stranger)], 77, "wrong_key"),
        ("truncated", truncated, ["--identity", str(identity)], 65, "integrity"),
        ("altered", altered, ["--identity", str(identity)], 65, "integrity"),
        ("a dangling reference", dangling, ["--identity", str(identity)], 65, "invalid_file"),
        ("not FHIR", not_fhir, ["--identity", str(identity)], 65, "invalid_file"),
        ("not an export", identity, ["--identity", str(identity)], 65, "invalid_file"),
        ("no such file", tmp_path / "missing.age", ["--identity", str(identity)], 66, "no_input"),
    ]
    for what, path, key, code, error in cases:
        proc = other.run("--user", "admin", "import", str(path), *key, password=ADMIN_PW, check=False)
        assert proc.returncode == code, (what, proc.returncode, proc.stderr)
        err = json.loads(proc.stderr)["error"]
        assert err["code"] == error, (what, err)
        assert "AGE-SECRET-KEY-1" not in proc.stderr
        assert MARKER not in proc.stderr
    assert dump(other) == before


def test_no_plaintext_reaches_the_disk_during_a_large_export(cli, tmp_path):
    make_clinic(cli, patients=600)
    _, recipient = keypair(tmp_path)
    watched = tmp_path / "watched"
    tmp = watched / "tmp"
    outdir = watched / "out"
    tmp.mkdir(parents=True)
    outdir.mkdir()
    found = []
    seen_files = set()
    done = threading.Event()

    def watch():
        while not done.is_set():
            for root, _, names in os.walk(watched):
                for name in names:
                    path = os.path.join(root, name)
                    seen_files.add(name)
                    try:
                        with open(path, "rb") as f:
                            data = f.read()
                    except OSError:
                        continue
                    for marker in (MARKER.encode(), NOTE_MARKER.encode(), b"resourceType"):
                        if marker in data:
                            found.append((path, marker))
            time.sleep(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        cli.run("export", "--all", "--recovery-key", "--recipient", recipient, "--purpose", "Backup for the new system",
                "--out", str(outdir / "all.age"),
                extra_env={"TMPDIR": str(tmp), "CHARTROOM_RECOVERY_KEY": cli.recovery})
    finally:
        done.set()
        watcher.join()
    assert found == []
    # The watcher saw the file while it was written (under its temporary name or its own).
    assert seen_files & {".all.age.partial", "all.age"}
    assert os.listdir(outdir) == ["all.age"]
    assert os.listdir(tmp) == []


def test_disclosures_list_every_export_of_a_patient(clinic, tmp_path):
    _, recipient = keypair(tmp_path)
    pid = clinic.marker_patient
    clinic.run("--user", "dr.adeyemi", "export", "--patient", pid, "--recipient", recipient,
               "--purpose", "Referral to cardiology", "--to", "Dr. Osei, Harbour Cardiology",
               "--out", str(tmp_path / "a.age"), password=DOCTOR_PW)
    clinic.run("--user", "admin", "export", "--all", "--recipient", recipient, "--purpose", "Practice move",
               "--out", str(tmp_path / "b.age"), password=ADMIN_PW)
    # Why and to whom are the audit trail's words: the administrator (and an auditor) reads
    # them; the physician, signed in again, sees that they are there, sealed.
    doc = clinic.json("--user", "dr.adeyemi", "disclosures", pid, password=DOCTOR_PW)
    assert [d["purpose"] for d in doc["disclosures"]] == [
        "[sealed: only an auditor or administrator can read this]"] * 2
    doc = clinic.json("--user", "admin", "disclosures", pid, password=ADMIN_PW)
    assert [d["purpose"] for d in doc["disclosures"]] == ["Referral to cardiology", "Practice move"]
    first = doc["disclosures"][0]
    assert first["recipient"] == "Dr. Osei, Harbour Cardiology"
    assert first["by"] == "dr.adeyemi"
    assert first["keys"][0]["recipient"] == recipient
    assert first["resources"]["Patient"] == 1
    # Export needs its own permission: a nurse is refused, with nothing written.
    clinic.run("--user", "admin", "user", "add", "nurse.ho", "--role", "nurse",
               password=ADMIN_PW, new_password="nurse-password-1")
    proc = clinic.run("--user", "nurse.ho", "export", "--patient", pid, "--recipient", recipient,
                      "--purpose", "x", "--out", str(tmp_path / "c.age"), password="nurse-password-1", check=False)
    assert proc.returncode == 77
    assert json.loads(proc.stderr)["error"]["code"] == "forbidden"
    assert not (tmp_path / "c.age").exists()
    # And the trail holds one entry per exported patient.
    audit = clinic.json("--user", "admin", "user", "add", "audit.kim", "--role", "auditor",
                        password=ADMIN_PW, new_password="auditor-password-1")
    assert audit
    entries = clinic.json("--user", "audit.kim", "audit", "list", "--patient", pid,
                          password="auditor-password-1")["entries"]
    exports = [e for e in entries if e["event"] == "patient.export"]
    assert len(exports) == 2
    assert shutil.which("age")


def test_a_file_dressed_up_as_another_clinics_export_is_refused(clinic, other, tmp_path):
    """An insider at a third clinic edits their own export to say it comes from `clinic`,
    with Python and the age tool, as the review did; the receiving vault knows `clinic`'s
    key from its first import and refuses the file."""
    identity, recipient = keypair(tmp_path)
    real = tmp_path / "real.age"
    clinic.json("--user", "dr.adeyemi", "export", "--patient", clinic.marker_patient, "--recipient", recipient,
                "--purpose", "Referral", "--out", str(real), password=DOCTOR_PW)
    bundle = json.loads(age_decrypt(real, identity))
    validate(bundle)
    signature = bundle["signature"]
    assert signature["sigFormat"] == "application/x-chartroom-ed25519"
    assert signature["who"]["identifier"]["system"] == "urn:chartroom:vault-key"
    first = other.json("--user", "admin", "import", str(real), "--identity", str(identity), password=ADMIN_PW)
    assert first["signed"] is True and first["source_key"].startswith("SHA256:")

    third = Cli(tmp_path / "third")
    (tmp_path / "third").mkdir()
    third.run("vault", "init", "--admin", "admin", password=ADMIN_PW)
    third.run("--user", "admin", "user", "add", "dr.x", "--role", "physician", password=ADMIN_PW,
              new_password=DOCTOR_PW)
    made = third.json("--user", "dr.x", "patient", "add", "--family", "Forgery", "--given", "Fay",
                      "--birth-date", "1970-01-01", password=DOCTOR_PW)
    theirs = tmp_path / "theirs.age"
    third.json("--user", "dr.x", "export", "--patient", str(made["id"]), "--recipient", recipient,
               "--purpose", "x", "--out", str(theirs), password=DOCTOR_PW)
    forged = json.loads(age_decrypt(theirs, identity))
    text = json.dumps(forged).replace(forged["meta"]["source"], bundle["meta"]["source"])

    def attempt(doc: dict, name: str):
        path = tmp_path / name
        subprocess.run(["age", "-r", recipient, "-o", str(path)], input=json.dumps(doc).encode(), check=True)
        return other.run("--user", "admin", "import", str(path), "--identity", str(identity),
                         password=ADMIN_PW, check=False)

    before = dump(other)
    relabelled = json.loads(text)
    stripped = dict(relabelled)
    del stripped["signature"]
    for doc, name in [(relabelled, "relabelled.age"), (stripped, "stripped.age")]:
        proc = attempt(doc, name)
        assert proc.returncode == 65, (name, proc.stderr)
        assert json.loads(proc.stderr)["error"]["code"] == "integrity", proc.stderr
    assert dump(other) == before, "nothing of the forgery was imported"
