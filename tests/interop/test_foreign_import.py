"""Imports from other systems, through the real command line: the 20 Synthea R4 bundles in
../shared/fhir (transaction Bundles with urn:uuid references), the same records as Bulk Data
NDJSON and age-encrypted, a hand-made US Core file with a clinical note, conditional
references and a lab report, and broken files. Report counts are checked against the file's
own counts per type; the imported charts are exported again and every resource validated
with the shared Medplum validator (base R4 and US Core)."""

import base64
import collections
import io
import json
import subprocess
import tarfile
from pathlib import Path

import pytest

from conftest import ROOT, Cli
from test_export import ADMIN_PW, DOCTOR_PW, dump, keypair, age_decrypt, medplum, ndjson_resources, validate

SYNTHEA = ROOT.parent / "shared" / "fhir" / "synthea-sample"


def bundles() -> list[Path]:
    files = sorted(SYNTHEA.glob("*.json"))
    assert len(files) == 20, f"the Synthea fixtures are missing from {SYNTHEA}"
    return files


def counts(bundle: dict) -> collections.Counter:
    return collections.Counter(e["resource"]["resourceType"] for e in bundle["entry"])


def accounted(report: dict) -> collections.Counter:
    """Every resource of a file, by type, as the report accounts for it: added, already
    here, or left out with a reason."""
    out = collections.Counter(report["added"]) + collections.Counter(report["already_here"])
    for s in report["skipped"]:
        assert s["reason"], s
        out[s["resource_type"]] += s["count"]
    return out


@pytest.fixture
def vault(cli):
    cli.run("vault", "init", "--admin", "admin", password=ADMIN_PW)
    cli.run("--user", "admin", "user", "add", "dr.lin", "--role", "physician",
            password=ADMIN_PW, new_password=DOCTOR_PW)
    cli.recovery = None
    return cli


def imp(cli, *args, **kw):
    return cli.json("--user", "admin", "import", *map(str, args), password=ADMIN_PW, **kw)


def test_every_synthea_bundle_imports_with_its_counts_and_exports_as_valid_us_core(vault, tmp_path):
    files = bundles()
    first = {}
    for path in files:
        bundle = json.loads(path.read_text())
        preview = imp(vault, path, "--dry-run")
        report = imp(vault, path)
        assert preview["dry_run"] and not report["dry_run"]
        # The dry run said exactly what the import did.
        for key in ("added", "already_here", "skipped", "patients_added"):
            assert preview[key] == report[key], (path.name, key)
        assert report["foreign"] is True and report["signed"] is False
        assert report["source"] == "https://github.com/synthetichealth/synthea"
        assert report["patients_added"] == 1
        # Every resource of the file is accounted for, per type.
        assert accounted(report) == counts(bundle), path.name
        reasons = {s["resource_type"]: s["reason"] for s in report["skipped"]}
        assert "no place" in reasons["Claim"] and "no place" in reasons["ExplanationOfBenefit"]
        first[path.name] = report
    # What Chartroom keeps, across the 20: nothing of these types left out.
    added = sum((collections.Counter(r["added"]) for r in first.values()), collections.Counter())
    skipped = collections.Counter()
    for r in first.values():
        for s in r["skipped"]:
            skipped[s["resource_type"]] += s["count"]
    for kind in ("Patient", "Encounter", "Condition", "AllergyIntolerance", "MedicationRequest",
                 "Immunization", "DiagnosticReport"):
        assert skipped[kind] == 0, (kind, [s for r in first.values() for s in r["skipped"]
                                           if s["resource_type"] == kind])
    assert added["Patient"] == 20 and added["Encounter"] == 546 and added["Immunization"] == 337
    # Vital signs (1,008 less 216 pain scores, which Chartroom does not chart) and the 1,624
    # laboratory results come in; surveys and the like are named, not dropped.
    assert added["Observation"] == 792 + 1624
    why = {s["reason"] for r in first.values() for s in r["skipped"] if s["resource_type"] == "Observation"}
    assert "a measurement Chartroom does not chart (LOINC 72514-3)" in why
    assert any("category survey" in w for w in why), why
    # A second import of every file adds nothing.
    for path in files:
        again = imp(vault, path)
        assert again["added"] == {} and again["patients_added"] == 0, path.name
        assert again["already_here"] == first[path.name]["added"]

    # A chart as the clinician sees it: results with their units, the BP panel as two
    # values, notes of where it came from.
    pid = first[files[0].name]["patients"][0]["id"]
    chart = vault.json("--user", "dr.lin", "patient", "show", str(pid), password=DOCTOR_PW)
    assert chart["problems"] and chart["immunizations"] and chart["lab_results"]
    assert {v["code"] for v in chart["vitals"]} >= {"8480-6", "8462-4", "29463-7", "8302-2"}
    assert all(o["foreign"] and o["source"] == "https://github.com/synthetichealth/synthea"
               for o in chart["imported"])

    # Exported again, every resource passes base R4 and US Core.
    identity, recipient = keypair(tmp_path)
    out = tmp_path / "synthea.age"
    vault.run("--user", "dr.lin", "export", "--all", "--recipient", recipient, "--purpose", "Validation",
              "--out", str(out), password=DOCTOR_PW)
    files_out = ndjson_resources(age_decrypt(out, identity))
    files_out.pop("manifest.json")
    folder = tmp_path / "exported"
    folder.mkdir()
    for name, resources in files_out.items():
        (folder / name).write_text("".join(json.dumps(r) + "\n" for r in resources))
        for r in resources[:200]:
            validate(r)
    summary = medplum(*sorted(folder.iterdir()))
    assert "us-core-observation-lab" in summary and "us-core-patient" in summary


def to_ndjson(bundle: dict) -> dict[str, list]:
    """A transaction Bundle as a Bulk Data export would hold it: one NDJSON file per type,
    urn:uuid references rewritten to Type/id."""
    ids = {e["fullUrl"]: f'{e["resource"]["resourceType"]}/{e["resource"]["id"]}' for e in bundle["entry"]}
    text = json.dumps([e["resource"] for e in bundle["entry"]])
    for url, ref in ids.items():
        text = text.replace(f'"{url}"', f'"{ref}"')
    out = collections.defaultdict(list)
    for r in json.loads(text):
        out[f'{r["resourceType"]}.ndjson'].append(r)
    return out


def tar_of(files: dict[str, list]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, resources in files.items():
            body = "".join(json.dumps(r) + "\n" for r in resources).encode()
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    return buf.getvalue()


def test_bulk_ndjson_and_age_encrypted_files_import_the_same_records(vault, tmp_path):
    path = bundles()[3]
    bundle = json.loads(path.read_text())
    identity, recipient = keypair(tmp_path)
    # Bulk Data NDJSON in a tar archive, encrypted to this clinic's key.
    archive = tmp_path / "bulk.tar.age"
    subprocess.run(["age", "-r", recipient, "-o", str(archive)], input=tar_of(to_ndjson(bundle)), check=True)
    proc = vault.run("--user", "admin", "import", str(archive), password=ADMIN_PW, check=False)
    assert proc.returncode == 64, "an encrypted file needs its key"
    assert "encrypted" in json.loads(proc.stderr)["error"]["message"]
    bulk = imp(vault, archive, "--identity", identity)
    assert bulk["patients_added"] == 1
    assert accounted(bulk) == counts(bundle)
    # The same records as one plain NDJSON file: all already here.
    flat = tmp_path / "all.ndjson"
    flat.write_text("".join(json.dumps(r) + "\n" for rs in to_ndjson(bundle).values() for r in rs))
    again = imp(vault, flat)
    assert again["added"] == {} and again["already_here"] == bulk["added"]
    # The transaction Bundle itself, encrypted with a passphrase: the same resources, so
    # nothing new either.
    sealed = tmp_path / "bundle.age"
    subprocess.run(["age", "-r", recipient, "-o", str(sealed), str(path)], check=True)
    third = imp(vault, sealed, "--identity", identity)
    assert third["added"] == {}


NPI = "http://hl7.org/fhir/sid/us-npi"


def hand_made() -> dict:
    """A small US Core file as another EHR writes it: a collection Bundle, a conditional
    reference to the author, a signed clinical note as text, a lab report, a medication by
    reference to a contained Medication, and a procedure Chartroom has no place for."""
    note = "Seen for cough. Lungs clear. <b>Plan</b>: fluids; review in 1 week."
    return {
        "resourceType": "Bundle", "type": "collection",
        "entry": [
            {"fullUrl": "https://ehr.example.org/fhir/Patient/pt-1", "resource": {
                "resourceType": "Patient", "id": "pt-1", "meta": {"source": "https://ehr.example.org/fhir"},
                "identifier": [{"system": "https://ehr.example.org/mrn", "value": "A-1001"}],
                "name": [{"use": "official", "family": "Okonkwo-Bright", "given": ["Ifeoma"]}],
                "gender": "female", "birthDate": "1971-03-09",
                "telecom": [{"system": "phone", "value": "(555) 010-7788"}],
                "address": [{"line": ["12 Harbour Road"], "city": "Easton", "state": "MA", "postalCode": "02334"}],
                "extension": [{"url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race",
                               "extension": [{"url": "ombCategory", "valueCoding": {
                                   "system": "urn:oid:2.16.840.1.113883.6.238", "code": "2054-5"}},
                                   {"url": "ombCategory", "valueCoding": {
                                       "system": "urn:oid:2.16.840.1.113883.6.238", "code": "2131-1"}},
                                   {"url": "text", "valueString": "Black, Other"}]}]}},
            {"fullUrl": "https://ehr.example.org/fhir/Practitioner/dr-7", "resource": {
                "resourceType": "Practitioner", "id": "dr-7",
                "identifier": [{"system": NPI, "value": "9999999991"}],
                "name": [{"family": "Marsh", "given": ["Tobias"], "prefix": ["Dr."]}]}},
            {"fullUrl": "https://ehr.example.org/fhir/Encounter/enc-1", "resource": {
                "resourceType": "Encounter", "id": "enc-1", "status": "finished",
                "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
                "type": [{"text": "Office visit"}], "subject": {"reference": "Patient/pt-1"},
                "participant": [{"individual": {"reference": f"Practitioner?identifier={NPI}|9999999991"}}],
                "period": {"start": "2026-10-01T09:00:00-04:00"},
                "reasonCode": [{"text": "Cough for two weeks"}]}},
            {"fullUrl": "https://ehr.example.org/fhir/DocumentReference/doc-1", "resource": {
                "resourceType": "DocumentReference", "id": "doc-1", "status": "current", "docStatus": "final",
                "type": {"coding": [{"system": "http://loinc.org", "code": "11506-3"}]},
                "subject": {"reference": "Patient/pt-1"}, "date": "2026-10-01T09:40:00-04:00",
                "author": [{"reference": f"Practitioner?identifier={NPI}|9999999991"}],
                "content": [{"attachment": {"contentType": "text/plain; charset=utf-8",
                                            "data": base64.b64encode(note.encode()).decode()}}],
                "context": {"encounter": [{"reference": "Encounter/enc-1"}]}}},
            {"fullUrl": "urn:uuid:6f0c1c0e-1b7e-4a53-9d1a-3f2f2d0b9a01", "resource": {
                "resourceType": "Observation", "status": "final",
                "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                          "code": "laboratory"}]}],
                "code": {"coding": [{"system": "http://loinc.org", "code": "2823-3"}], "text": "Potassium"},
                "subject": {"reference": "Patient/pt-1"}, "effectiveDateTime": "2026-10-01T09:30:00-04:00",
                "valueQuantity": {"value": 5.9, "unit": "mmol/L", "system": "http://unitsofmeasure.org",
                                  "code": "mmol/L"},
                "referenceRange": [{"low": {"value": 3.5}, "high": {"value": 5.1}}],
                "interpretation": [{"coding": [{"system":
                    "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "code": "H"}]}]}},
            {"fullUrl": "urn:uuid:6f0c1c0e-1b7e-4a53-9d1a-3f2f2d0b9a02", "resource": {
                "resourceType": "DiagnosticReport", "status": "final",
                "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "LAB"}]}],
                "code": {"coding": [{"system": "http://loinc.org", "code": "24323-8"}],
                         "text": "Comprehensive metabolic panel"},
                "subject": {"reference": "Patient/pt-1"}, "effectiveDateTime": "2026-10-01T09:30:00-04:00",
                "issued": "2026-10-01T15:00:00-04:00",
                "result": [{"reference": "urn:uuid:6f0c1c0e-1b7e-4a53-9d1a-3f2f2d0b9a01"}]}},
            {"fullUrl": "https://ehr.example.org/fhir/MedicationStatement/ms-1", "resource": {
                "resourceType": "MedicationStatement", "id": "ms-1", "status": "active",
                "contained": [{"resourceType": "Medication", "id": "m",
                               "code": {"text": "Lisinopril 10 mg tablet"}}],
                "medicationReference": {"reference": "#m"}, "subject": {"reference": "Patient/pt-1"},
                "dateAsserted": "2026-10-01", "dosage": [{"text": "1 tablet by mouth daily"}]}},
            {"fullUrl": "https://ehr.example.org/fhir/Procedure/pr-1", "resource": {
                "resourceType": "Procedure", "id": "pr-1", "status": "completed",
                "code": {"text": "Spirometry"}, "subject": {"reference": "Patient/pt-1"}}},
        ],
    }


def test_a_note_lab_report_and_conditional_references_from_another_ehr(vault, tmp_path):
    path = tmp_path / "ehr.json"
    path.write_text(json.dumps(hand_made()))
    report = imp(vault, path)
    assert report["source"] == "https://ehr.example.org/fhir"
    assert report["added"] == {"Patient": 1, "Encounter": 1, "DocumentReference": 1, "Observation": 1,
                               "DiagnosticReport": 1, "MedicationStatement": 1}
    assert [(s["resource_type"], s["count"]) for s in report["skipped"]] == [("Practitioner", 1), ("Procedure", 1)]
    # The race code Chartroom does not record is named, and the one it does kept.
    assert any("2131-1" in w for w in report["warnings"]), report["warnings"]
    pid = report["patients"][0]["id"]
    chart = vault.json("--user", "dr.lin", "patient", "show", str(pid), password=DOCTOR_PW)
    assert chart["race"] == ["2054-5"]
    [note] = chart["notes"]
    # Signed elsewhere: by its author there (the conditional reference resolved in the file),
    # its text as written, never markup.
    assert note["status"] == "signed" and "Marsh" in note["signed_by"]
    assert note["signed_by"].endswith(", in https://ehr.example.org/fhir"), "never taken for a user here"
    assert "<b>Plan</b>" in note["text"]
    assert any(o["item"] == "note" and o["foreign"] for o in chart["imported"])
    [enc] = chart["encounters"]
    assert enc["clinician"] == "Dr. Tobias Marsh"
    [result] = chart["lab_results"]
    assert result["flag"] == "H" and result["report_id"]
    [med] = chart["medications"]
    assert med["name"] == "Lisinopril 10 mg tablet"


def test_a_patient_already_here_stops_a_foreign_import_until_matched(vault, tmp_path):
    path = tmp_path / "ehr.json"
    path.write_text(json.dumps(hand_made()))
    here = vault.json("--user", "dr.lin", "patient", "add", "--family", "Okonkwo-Bright", "--given", "Ifeoma",
                      "--birth-date", "1971-03-09", "--sex", "female", password=DOCTOR_PW)
    before = dump(vault)
    for extra in [(), ("--dry-run",)]:
        proc = vault.run("--user", "admin", "import", str(path), *extra, password=ADMIN_PW, check=False)
        assert proc.returncode == 65, proc.stderr
        error = json.loads(proc.stderr)["error"]
        assert error["code"] == "possible_duplicate"
        assert [m["source_id"] for m in error["matches"]] == ["pt-1"]
        assert error["matches"][0]["candidates"][0]["id"] == here["id"]
    assert dump(vault) == before
    joined = imp(vault, path, "--match", f"pt-1={here['id']}")
    assert joined["patients_matched"] == 1 and joined["patients_added"] == 0
    chart = vault.json("--user", "dr.lin", "patient", "show", str(here["id"]), password=DOCTOR_PW)
    assert len(chart["notes"]) == 1
    assert imp(vault, path)["added"] == {}


def broken(edit) -> dict:
    b = hand_made()
    edit({e["resource"]["resourceType"]: e["resource"] for e in b["entry"]}, b)
    return b


def test_bad_files_from_elsewhere_are_refused_naming_the_resource_and_field(vault, tmp_path):
    def dangling(r, b):
        r["Observation"]["encounter"] = {"reference": "Encounter/nowhere"}

    def wrong_type(r, b):
        r["Observation"]["valueQuantity"]["value"] = "5.9"

    def no_loinc(r, b):
        r["Observation"]["code"]["coding"][0]["system"] = "urn:oid:1.2.3.4.local-lab"

    def no_cvx(r, b):
        b["entry"].append({"fullUrl": "urn:uuid:0a9c5d3e-0000-4000-8000-000000000001", "resource": {
            "resourceType": "Immunization", "status": "completed", "patient": {"reference": "Patient/pt-1"},
            "vaccineCode": {"coding": [{"system": "urn:oid:2.16.840.1.113883.6.59", "code": "140"}],
                            "text": "Influenza"}, "occurrenceDateTime": "2026-10-01"}})

    def deletes(r, b):
        b["type"] = "transaction"
        b["entry"][0]["request"] = {"method": "DELETE", "url": "Patient/pt-1"}

    cases = [
        (dangling, "Observation/", "encounter"),
        (wrong_type, "Observation/", "valueQuantity.value"),
        (no_loinc, "Observation/", "LOINC"),
        (no_cvx, "Immunization/", "CVX"),
        (deletes, "entry 0", "DELETE"),
    ]
    before = dump(vault)
    for edit, resource, field in cases:
        path = tmp_path / f"{edit.__name__}.json"
        path.write_text(json.dumps(broken(edit)))
        proc = vault.run("--user", "admin", "import", str(path), password=ADMIN_PW, check=False)
        assert proc.returncode == 65, (edit.__name__, proc.stderr)
        err = json.loads(proc.stderr)["error"]
        assert err["code"] == "invalid_file", (edit.__name__, err)
        assert resource in err["message"] and field in err["message"], (edit.__name__, err["message"])
        assert "Okonkwo" not in proc.stderr, "no patient data in errors"
    # Larger than an import reads: refused before it is parsed.
    big = tmp_path / "big.json"
    with big.open("wb") as f:
        f.write(b"{" + b" " * (257 << 20) + b"}")
    proc = vault.run("--user", "admin", "import", str(big), password=ADMIN_PW, check=False)
    assert proc.returncode == 65, proc.stderr
    assert "larger than Chartroom imports" in json.loads(proc.stderr)["error"]["message"]
    # A file naming a Chartroom vault as its source must be that vault's signed export.
    forged = hand_made()
    for e in forged["entry"]:
        e["resource"].setdefault("meta", {})["source"] = "urn:chartroom:vault:00000000-0000-4000-8000-000000000000"
    path = tmp_path / "forged.json"
    path.write_text(json.dumps(forged))
    proc = vault.run("--user", "admin", "import", str(path), password=ADMIN_PW, check=False)
    assert proc.returncode == 65, proc.stderr
    assert dump(vault) == before


def lab_file(patient: dict) -> dict:
    """A lab's results for one patient, as a collection Bundle from the lab's own system."""
    return {
        "resourceType": "Bundle", "type": "collection",
        "entry": [
            {"fullUrl": "urn:uuid:5c2d9a40-0000-4000-8000-00000000aa01", "resource": {
                "meta": {"source": "https://lab.example.net"}, **patient}},
            {"fullUrl": "urn:uuid:5c2d9a40-0000-4000-8000-00000000aa02", "resource": {
                "resourceType": "Observation", "status": "final",
                "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                          "code": "laboratory"}]}],
                "code": {"coding": [{"system": "http://loinc.org", "code": "4548-4"}], "text": "Hemoglobin A1c"},
                "subject": {"reference": "urn:uuid:5c2d9a40-0000-4000-8000-00000000aa01"},
                "effectiveDateTime": "2026-11-02T08:15:00Z",
                "valueQuantity": {"value": 7.2, "unit": "%", "system": "http://unitsofmeasure.org", "code": "%"}}},
        ],
    }


def test_a_patient_named_by_an_identifier_here_stops_the_import_and_government_numbers_are_not_kept(vault, tmp_path):
    """The same identifier system and value as a patient here is a match, even when the names
    differ: an identifier an earlier import brought in, or this clinic's own MRN in a lab's
    file. Social security numbers are used for nothing and kept nowhere."""
    ehr = hand_made()
    ehr["entry"][0]["resource"]["identifier"].append(
        {"system": "http://hl7.org/fhir/sid/us-ssn", "value": "999-12-3456"})
    path = tmp_path / "ehr.json"
    path.write_text(json.dumps(ehr))
    first = imp(vault, path)
    pid, mrn = first["patients"][0]["id"], first["patients"][0]["mrn"]
    key = vault.json("--user", "admin", "vault", "export-key", password=ADMIN_PW)["key"]
    import sqlcipher3
    conn = sqlcipher3.connect(str(vault.vault / "chartroom.db"))
    conn.execute(f"PRAGMA key = \"x'{key}'\"")
    kept = conn.execute("SELECT source, source_id FROM imported_records WHERE resource_type = 'Patient:identifier'").fetchall()
    assert kept == [("https://ehr.example.org/mrn", "A-1001")]
    assert not any("999-12-3456" in str(row) for t in ("imported_records", "patients")
                   for row in conn.execute(f"SELECT * FROM {t}"))
    conn.close()

    vault_id = vault.json("--user", "admin", "vault", "info", password=ADMIN_PW)["vault_id"]
    cases = {
        "the old EHR's number": {"system": "https://ehr.example.org/mrn", "value": "A-1001"},
        "this clinic's MRN": {"system": f"urn:chartroom:vault:{vault_id}:mrn", "value": mrn},
    }
    for what, identifier in cases.items():
        # Named differently at the lab (a typo, a married name): only the identifier matches.
        lab = lab_file({"resourceType": "Patient", "identifier": [identifier],
                        "name": [{"family": "Bright", "given": ["Ify"]}], "gender": "female",
                        "birthDate": "1971-09-03"})
        lab_path = tmp_path / "lab.json"
        lab_path.write_text(json.dumps(lab))
        before = dump(vault)
        proc = vault.run("--user", "admin", "import", str(lab_path), password=ADMIN_PW, check=False)
        assert proc.returncode == 65, (what, proc.stderr)
        error = json.loads(proc.stderr)["error"]
        assert error["code"] == "possible_duplicate", what
        [match] = error["matches"]
        assert match["source_id"] == "5c2d9a40-0000-4000-8000-00000000aa01"
        assert [(c["id"], c["matched"]) for c in match["candidates"]] == [(pid, "identifier")], what
        assert dump(vault) == before, what
    joined = imp(vault, lab_path, "--match", f"5c2d9a40-0000-4000-8000-00000000aa01={pid}")
    assert joined["patients_matched"] == 1 and joined["added"] == {"Observation": 1}
    chart = vault.json("--user", "dr.lin", "patient", "show", str(pid), password=DOCTOR_PW)
    assert {r["loinc"] for r in chart["lab_results"]} == {"2823-3", "4548-4"}
    assert chart["family"] == "Okonkwo-Bright", "the chart's demographics stay"


def test_a_later_file_from_the_same_source_may_add_only_to_the_person_it_named_before(vault, tmp_path):
    """Nothing proves where another system's file comes from: a file naming the same source
    and patient id for someone else, or labelling them restricted now, adds nothing."""
    path = tmp_path / "ehr.json"
    path.write_text(json.dumps(hand_made()))
    pid = imp(vault, path)["patients"][0]["id"]

    def later(edit):
        b = hand_made()
        b["entry"] = [b["entry"][0], {"fullUrl": "urn:uuid:7e1d0000-0000-4000-8000-0000000000b1", "resource": {
            "resourceType": "AllergyIntolerance", "clinicalStatus": {"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "code": "active"}]},
            "code": {"text": "Penicillin"}, "patient": {"reference": "Patient/pt-1"}, "recordedDate": "2026-11-01"}}]
        edit(b["entry"][0]["resource"])
        out = tmp_path / "later.json"
        out.write_text(json.dumps(b))
        return out

    def someone_else(p):
        p["name"] = [{"family": "Stranger", "given": ["Sam"]}]
        p["birthDate"] = "1999-09-09"
        p["identifier"] = []

    def restricted_now(p):
        p["meta"]["security"] = [{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "V"}]

    before = dump(vault)
    for edit, code in [(someone_else, "invalid_file"), (restricted_now, "invalid_input")]:
        proc = vault.run("--user", "admin", "import", str(later(edit)), password=ADMIN_PW, check=False)
        assert proc.returncode == 65, (edit.__name__, proc.stderr)
        assert json.loads(proc.stderr)["error"]["code"] == code, (edit.__name__, proc.stderr)
    assert dump(vault) == before
    # The same person, described as before: the allergy joins their chart.
    same = imp(vault, later(lambda p: None))
    assert same["added"] == {"AllergyIntolerance": 1} and same["patients"][0]["id"] == pid
    # A new name with the same record number there is the same person; a new name and
    # nothing else in common is confirmed by --match.
    assert imp(vault, later(lambda p: p.update(name=[{"family": "Bright", "given": ["Ifeoma"]}])))["added"] == {}
    renamed = later(lambda p: p.update(name=[{"family": "Bright", "given": ["Ifeoma"]}], identifier=[], telecom=[]))
    proc = vault.run("--user", "admin", "import", str(renamed), password=ADMIN_PW, check=False)
    assert proc.returncode == 65 and f"--match pt-1={pid}" in json.loads(proc.stderr)["error"]["message"]
    assert imp(vault, renamed, "--match", f"pt-1={pid}")["already_here"]["AllergyIntolerance"] == 1


def test_a_panel_and_an_observation_whose_id_ends_in_2_both_arrive(vault, tmp_path):
    b = hand_made()
    b["entry"] = b["entry"][:1]
    for rid, code, value in [("bp", "85354-9", None), ("bp-2", "8867-4", 72)]:
        obs = {"resourceType": "Observation", "id": rid, "status": "final",
               "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                         "code": "vital-signs"}]}],
               "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
               "subject": {"reference": "Patient/pt-1"}, "effectiveDateTime": "2026-10-01T09:10:00Z"}
        if value is None:
            obs["component"] = [
                {"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
                 "valueQuantity": {"value": 128, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}},
                {"code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]},
                 "valueQuantity": {"value": 84, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}}]
        else:
            obs["valueQuantity"] = {"value": value, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"}
        b["entry"].append({"resource": obs})
    for order in (b["entry"], b["entry"][:1] + b["entry"][:0:-1]):
        fresh = Cli(tmp_path / f"v{len(list(tmp_path.iterdir()))}")
        fresh.vault.parent.mkdir(exist_ok=True)
        fresh.run("vault", "init", "--admin", "admin", password=ADMIN_PW)
        path = tmp_path / "vitals.json"
        path.write_text(json.dumps({**b, "entry": order}))
        report = imp(fresh, path)
        assert report["added"] == {"Patient": 1, "Observation": 2}, report
        assert imp(fresh, path)["already_here"] == {"Patient": 1, "Observation": 2}
