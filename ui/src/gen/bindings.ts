// Generated from the Rust types by src-tauri/src/bindings.rs (ts-rs). Do not edit:
// run `UPDATE_BINDINGS=1 cargo test -p chartroom-desktop bindings` after changing them.

export type VaultStatus = { 
/**
 * Whether a vault exists at `location`.
 */
exists: boolean, 
/**
 * The vault folder, so staff can tell which clinic's vault this window opens.
 */
location: string, signed_in: SessionInfo | null, 
/**
 * Why the vault was locked without being asked to (once), e.g. the idle timeout.
 */
notice: string | null, 
/**
 * Present in demo mode: a synthetic clinic, with the demo accounts to sign in with.
 */
demo: DemoInfo | null, };

export type SessionInfo = { user: string, role: Role, recovery: boolean, permissions: Array<Permission>, idle_timeout_minutes: number, 
/**
 * How long a break-the-glass grant lasts, for the dialog to say.
 */
break_glass_minutes: number, 
/**
 * The clinic's time zone (IANA): every time on screen is shown in it.
 */
time_zone: string, 
/**
 * The units vital signs are shown and typed in.
 */
units: Units, };

export type Created = { 
/**
 * Shown once on the first-run screen, then dropped; it is stored nowhere.
 */
recovery_key: string, signed_in: SessionInfo, };

export type DemoInfo = { users: Array<DemoUser>, password: string, patients: number, };

export type DemoUser = { name: string, role: Role, };

export type AppError = { code: string, message: string, 
/**
 * The patients a registration may duplicate (`possible_duplicate` only).
 */
candidates?: Array<DuplicateCandidate>, 
/**
 * Each field's problem, to show beside it (`invalid_input` from a form), or the
 * questions about values far from the last ones (`check_values`).
 */
fields?: Array<FieldError>, };

export type Role = "admin" | "physician" | "nurse" | "front_desk" | "auditor";

export type Permission = "manage_users" | "view_users" | "manage_keys" | "export_key" | "manage_settings" | "search_patients" | "register_patient" | "read_demographics" | "edit_demographics" | "manage_care_team" | "read_clinical" | "read_notes" | "write_clinical" | "record_encounter" | "record_vitals" | "record_allergies" | "record_immunizations" | "record_results" | "draft_note" | "sign_note" | "break_glass" | "read_audit" | "verify_audit" | "manage_alerts" | "export_records" | "import_records" | "read_disclosures" | "manage_sync" | "backup" | "manage_schedules" | "view_schedules" | "view_appointments" | "book_appointments" | "check_in_patients" | "room_patients" | "start_appointments";

export type SearchHit = { id: PatientId, mrn: string, family: string, given: string, preferred: string | null, 
/**
 * Absent when `masked`.
 */
birth_date: string | null, age: number | null, sex: Sex | null, 
/**
 * The chart opens only for the care team (or through break-the-glass).
 */
restricted: boolean, 
/**
 * A restricted patient the searcher may not open: found only by its exact MRN, and
 * shown only as "Restricted patient" with its id and MRN (to break the glass by), no
 * name, birth date or sex.
 */
masked: boolean, 
/**
 * The phone number as registered (absent when `masked`), to tell callers apart.
 */
phone: string | null, 
/**
 * What matched: `mrn`, `phone`, `birth_date`, `name` or `name_and_birth_date`.
 */
matched: string, 
/**
 * How well: 0 is exact; larger is looser (prefix, substring, typo).
 */
rank: number, };

export type Sex = "female" | "male" | "other" | "unknown";

export type Chart = { age: number, care_team: Array<string>, 
/**
 * How this session got in.
 */
access: ChartAccess, allergies?: Array<Allergy>, problems?: Array<Problem>, medications?: Array<Medication>, immunizations?: Array<Immunization>, 
/**
 * Lab results (current versions, each with the versions it replaced), newest first.
 */
lab_results?: Array<LabResult>, 
/**
 * Lab reports (panels), newest first.
 */
lab_reports?: Array<LabReport>, encounters?: Array<Encounter>, vitals?: Array<Observation>, notes?: Array<Note>, 
/**
 * Upcoming and past appointments, newest first (roles that see appointment books).
 */
appointments?: Array<Appointment>, 
/**
 * The items shown here that an import brought in: from which vault, signed there by
 * which key (empty for a chart made here).
 */
imported: Array<ImportOrigin>, id: PatientId, mrn: string, restricted: boolean, 
/**
 * How the allergy list stands: `unknown`, `no_known_allergies` or `recorded`. Clinical
 * information: absent for roles that may not read the clinical record.
 */
allergy_status?: string, 
/**
 * Increases with every change of demographics.
 */
version: number, created_at: string, created_by: string, updated_at: string, updated_by: string, family: string, given: string, preferred: string | null, birth_date: string, sex: Sex, gender_identity: string | null, phone: string | null, email: string | null, address: string | null, emergency_contact: EmergencyContact | null, 
/**
 * USCDI race: CDC Race & Ethnicity codes (OMB categories and detailed), or `ASKU`
 * (chose not to answer) or `UNK` alone. Empty: never asked.
 */
race?: Array<string>, 
/**
 * USCDI ethnicity: Hispanic or Latino (2135-2, with detailed origins) or not (2186-5),
 * or `ASKU` / `UNK`.
 */
ethnicity?: Array<string>, 
/**
 * Preferred language, BCP 47 (`en`, `es`, …).
 */
language?: string, 
/**
 * Sex assigned at birth: `F`, `M` or `UNK`.
 */
birth_sex?: string, 
/**
 * Sexual orientation: a SNOMED CT code, or `OTH`, `UNK`, `ASKU`.
 */
sexual_orientation?: string, };

export type ImportOrigin = { 
/**
 * The item's kind as the chart's sections name it: `patient`, `encounter`, `vitals`,
 * `problem`, `allergy`, `no_known_allergies`, `medication`, `immunization`,
 * `lab_result`, `lab_report` or `note`.
 */
item: string, 
/**
 * The item's id in this vault (the patient's id for `patient` and
 * `no_known_allergies`).
 */
id: number, 
/**
 * The vault it came from (`urn:chartroom:vault:…`).
 */
source: string, 
/**
 * The fingerprint (`SHA256:…`) of the sending vault's key that signed the file it came
 * in with; absent for a file made before exports were signed.
 */
signed_by: string | null, imported_at: string, 
/**
 * From another system's FHIR (not a Chartroom vault): recorded and signed there, with
 * no vault signature to check.
 */
foreign: boolean, };

export type ChartAccess = { "via": "open" } | { "via": "care_team" } | { "via": "break_glass", reason: string, expires_at: string, };

export type Patient = { id: PatientId, mrn: string, restricted: boolean, 
/**
 * How the allergy list stands: `unknown`, `no_known_allergies` or `recorded`. Clinical
 * information: absent for roles that may not read the clinical record.
 */
allergy_status?: string, 
/**
 * Increases with every change of demographics.
 */
version: number, created_at: string, created_by: string, updated_at: string, updated_by: string, family: string, given: string, preferred: string | null, birth_date: string, sex: Sex, gender_identity: string | null, phone: string | null, email: string | null, address: string | null, emergency_contact: EmergencyContact | null, 
/**
 * USCDI race: CDC Race & Ethnicity codes (OMB categories and detailed), or `ASKU`
 * (chose not to answer) or `UNK` alone. Empty: never asked.
 */
race?: Array<string>, 
/**
 * USCDI ethnicity: Hispanic or Latino (2135-2, with detailed origins) or not (2186-5),
 * or `ASKU` / `UNK`.
 */
ethnicity?: Array<string>, 
/**
 * Preferred language, BCP 47 (`en`, `es`, …).
 */
language?: string, 
/**
 * Sex assigned at birth: `F`, `M` or `UNK`.
 */
birth_sex?: string, 
/**
 * Sexual orientation: a SNOMED CT code, or `OTH`, `UNK`, `ASKU`.
 */
sexual_orientation?: string, };

export type DuplicateCandidate = { id: PatientId, mrn: string, family: string, given: string, birth_date: string, phone: string | null, 
/**
 * What matched: `name_and_birth_date`, `birth_date_and_phone` or `name_and_phone`; for
 * an import, also `identifier` (the same identifier system and value).
 */
matched: string, };

export type Demographics = { family: string, given: string, preferred: string | null, birth_date: string, sex: Sex, gender_identity: string | null, phone: string | null, email: string | null, address: string | null, emergency_contact: EmergencyContact | null, 
/**
 * USCDI race: CDC Race & Ethnicity codes (OMB categories and detailed), or `ASKU`
 * (chose not to answer) or `UNK` alone. Empty: never asked.
 */
race?: Array<string>, 
/**
 * USCDI ethnicity: Hispanic or Latino (2135-2, with detailed origins) or not (2186-5),
 * or `ASKU` / `UNK`.
 */
ethnicity?: Array<string>, 
/**
 * Preferred language, BCP 47 (`en`, `es`, …).
 */
language?: string, 
/**
 * Sex assigned at birth: `F`, `M` or `UNK`.
 */
birth_sex?: string, 
/**
 * Sexual orientation: a SNOMED CT code, or `OTH`, `UNK`, `ASKU`.
 */
sexual_orientation?: string, };

export type EmergencyContact = { name: string, phone: string, relationship: string | null, };

export type Grant = { patient_id: PatientId, reason: string, granted_at: string, expires_at: string, minutes: number, };

export type Encounter = { id: EncounterId, patient_id: PatientId, start: string, kind: EncounterKind, clinician: string, reason: string, created_at: string, created_by: string, };

export type EncounterKind = "office" | "telephone" | "telehealth" | "home";

export type Note = { id: NoteId, patient_id: PatientId, encounter_id: EncounterId | null, kind: NoteKind, 
/**
 * The signed note this addendum or amendment points to.
 */
parent_id: NoteId | null, author: string, status: NoteStatus, created_at: string, updated_at: string, signed_by: string | null, signed_at: string | null, 
/**
 * SHA-256 of the content as signed.
 */
content_sha256: string | null, 
/**
 * The signer's personal Ed25519 signature over [`signature_message`], with their public
 * key; none for notes signed before personal signatures, or made by the demo.
 */
signature: NoteSignature | null, } & ({ "format": "free", text: string, } | { "format": "soap", subjective: string | null, objective: string | null, assessment: string | null, plan: string | null, });

export type NoteSignature = { 
/**
 * The signer's Ed25519 public key (32 bytes).
 */
key: string, 
/**
 * The signature (64 bytes).
 */
signature: string, };

export type PatientId = number;

export type EncounterId = number;

export type NoteId = number;

export type ObservationId = number;

export type ProblemId = number;

export type AllergyId = number;

export type MedicationId = number;

export type ImmunizationId = number;

export type LabResultId = number;

export type LabReportId = number;

export type NoteKind = "note" | "addendum" | "amendment";

export type NoteStatus = "draft" | "signed";

export type NoteContent = { "format": "free", text: string, } | { "format": "soap", subjective: string | null, objective: string | null, assessment: string | null, plan: string | null, };

export type Observation = { id: ObservationId, patient_id: PatientId, encounter_id: EncounterId | null, vital: Vital, 
/**
 * LOINC code.
 */
code: string, display: string, value: number, 
/**
 * UCUM unit.
 */
unit: string, effective: string, 
/**
 * N, L, H, LL or HH against the adult reference range.
 */
flag: Flag, recorded_by: string, recorded_at: string, 
/**
 * `final`, or `entered-in-error` once marked as a mistake (then kept, struck out, and
 * left out of the latest values, BMI, flags and plots).
 */
status: string, 
/**
 * Who marked it entered in error, when and why.
 */
correction?: Correction, };

export type Vital = "systolic" | "diastolic" | "heart_rate" | "respiratory_rate" | "temperature" | "spo2" | "weight" | "height" | "bmi";

export type Flag = "N" | "L" | "H" | "LL" | "HH";

export type Problem = { id: ProblemId, patient_id: PatientId, text: string, system: CodeSystem | null, code: string | null, 
/**
 * `active`, `resolved` or `inactive`.
 */
status: string, onset: string | null, resolved_on: string | null, recorded_by: string, recorded_at: string, updated_by: string, updated_at: string, 
/**
 * Who marked it entered in error, when and why (its status then reads
 * `entered-in-error`).
 */
correction?: Correction, };

export type CodeSystem = "icd10" | "snomed";

export type Allergy = { id: AllergyId, patient_id: PatientId, substance: string, reaction: string | null, severity: Severity | null, category: AllergyCategory | null, 
/**
 * `active` or `resolved`.
 */
status: string, recorded_by: string, recorded_at: string, updated_by: string, updated_at: string, 
/**
 * Why it was recorded although the patient takes a matching medication.
 */
allergy_override: string | null, 
/**
 * Who marked it entered in error, when and why (its status then reads
 * `entered-in-error`).
 */
correction?: Correction, };

export type AllergyList = { 
/**
 * `unknown` (never asked), `no_known_allergies` (asked: none) or `recorded`.
 */
allergy_status: string, allergies: Array<Allergy>, };

export type Severity = "mild" | "moderate" | "severe";

export type AllergyCategory = "food" | "medication" | "environment" | "biologic";

export type Medication = { id: MedicationId, patient_id: PatientId, name: string, dose: string | null, route: Route | null, frequency: string | null, start: string | null, stop: string | null, 
/**
 * `active` or `stopped`.
 */
status: string, recorded_by: string, recorded_at: string, updated_by: string, updated_at: string, 
/**
 * Why it was saved despite a matching active allergy.
 */
allergy_override: string | null, 
/**
 * Who marked it entered in error, when and why (its status then reads
 * `entered-in-error`).
 */
correction?: Correction, };

export type Route = "oral" | "sublingual" | "inhaled" | "nasal" | "topical" | "transdermal" | "ophthalmic" | "otic" | "rectal" | "vaginal" | "subcutaneous" | "intramuscular" | "intravenous";

export type Immunization = { id: ImmunizationId, patient_id: PatientId, vaccine: string, cvx: string, date: string, lot: string | null, site: Site | null, 
/**
 * `completed`, or `entered_in_error` once resolved as a mistake.
 */
status: string, recorded_by: string, recorded_at: string, updated_by: string, updated_at: string, 
/**
 * Who marked it entered in error, when and why (its status then reads
 * `entered_in_error`).
 */
correction?: Correction, };

export type Site = "left_arm" | "right_arm" | "left_thigh" | "right_thigh" | "oral" | "nasal";

export type LabResult = { id: LabResultId, patient_id: PatientId, report_id: LabReportId | null, loinc: string, name: string, 
/**
 * A number for a quantity; the finding's name or the text otherwise.
 */
value: number | string, 
/**
 * `quantity`, `coded` or `text`.
 */
value_kind: string, 
/**
 * The SNOMED CT code of a coded finding.
 */
value_code: string | null, unit: string | null, range: Range | null, flag: ResultFlag | null, 
/**
 * `preliminary`, `final`, `corrected` or `entered-in-error`.
 */
status: string, collected_at: string, reported_at: string, recorded_by: string, recorded_at: string, 
/**
 * Why this version corrected the one before it.
 */
reason: string | null, 
/**
 * Who marked it entered in error, when and why.
 */
correction?: Correction, 
/**
 * The versions it replaced, newest first.
 */
earlier: Array<EarlierResult>, };

export type LabReport = { id: LabReportId, patient_id: PatientId, encounter_id: EncounterId | null, loinc: string, name: string, 
/**
 * From its results: `registered` (none yet), `preliminary`, `final`, `corrected`, or
 * `entered-in-error` when every result is.
 */
status: string, collected_at: string, recorded_by: string, recorded_at: string, 
/**
 * Its results' ids (current versions).
 */
result_ids: Array<LabResultId>, };

export type EarlierResult = { id: LabResultId, value: number | string, unit: string | null, flag: ResultFlag | null, status: string, recorded_by: string, recorded_at: string, };

export type Range = { low: number | null, high: number | null, };

export type ResultFlag = "N" | "L" | "H" | "LL" | "HH" | "A";

export type ResultInput = { loinc: string, 
/**
 * The test's name; taken from LOINC's when Chartroom knows the code.
 */
name?: string, value: string, 
/**
 * The unit (UCUM); the test's usual unit when left out.
 */
unit?: string, 
/**
 * `LOW-HIGH`, `<HIGH` or `>LOW`.
 */
range?: string, 
/**
 * N, L, H, LL, HH or A; worked out from the range when left out.
 */
flag?: string, 
/**
 * `preliminary` or `final` (the default).
 */
status?: string, 
/**
 * When the specimen was taken; the report's time, or now, when left out.
 */
at?: string, 
/**
 * The report it belongs to.
 */
report_id?: number, };

export type ReportInput = { loinc: string, name?: string, at?: string, encounter_id?: number, };

export type LabTestChoice = { loinc: string, name: string, short: string, unit: string | null, panel: boolean, };

export type DemographicChoices = { races: Array<Choice>, ethnicities: Array<Choice>, languages: Array<Choice>, birth_sexes: Array<Choice>, sexual_orientations: Array<Choice>, };

export type Choice = { code: string, label: string, group: string | null, };

export type User = { name: UserName, role: Role, disabled: boolean, created_at: string, created_by: string | null, 
/**
 * The keys this user's slot holds: `database` (everyone who can sign in) and the
 * compartments their role may read (`clinical`). Filled in by [`Session::users`].
 */
keys: Array<string>, 
/**
 * Compartments the role should hold that have not reached the slot yet: they are
 * handed over at the next sign-in of someone who holds them.
 */
keys_pending: Array<string>, };

export type UserName = string;

export type Settings = { 
/**
 * A session locks after this long without use.
 */
idle_timeout_minutes: number, 
/**
 * How long a break-the-glass grant lasts.
 */
break_glass_minutes: number, 
/**
 * Alert when one user opens this many distinct charts …
 */
alert_chart_burst_count: number, 
/**
 * … within this many minutes.
 */
alert_chart_burst_minutes: number, 
/**
 * Alert at this many failed unlocks of one account in a row.
 */
alert_failed_unlocks: number, 
/**
 * Alert on patient-data access outside these hours (none: the rule is off).
 */
clinic_hours: string, 
/**
 * The days the clinic is open (Monday first).
 */
clinic_days: string, 
/**
 * The clinic's UTC offset in minutes, as versions before the time zone set it: when
 * set, clinic hours are read at this fixed offset. New clinics set the time zone.
 */
clinic_utc_offset_minutes: number | null, 
/**
 * The clinic's time zone (an IANA name): every local time shown or typed is in it.
 * By default this computer's zone.
 */
clinic_time_zone: string, 
/**
 * How typed dates with slashes or dots are read: `ymd`, `dmy` (18/12/1978) or `mdy`
 * (12/18/1978). Dates are always shown unambiguously (18 Dec 1978).
 */
date_format: DateFormat, 
/**
 * The units vital signs are shown and typed in: `metric` (kg, cm, °C) or `us` (lb,
 * in, °F). Values are stored in UCUM's metric units either way, and a value typed with
 * its unit (150lb, 98.6F) is read in that unit whatever this says.
 */
units: Units, };

export type DateFormat = "ymd" | "dmy" | "mdy";

export type Units = "metric" | "us";

export type FieldError = { 
/**
 * The field: `systolic`, `diastolic`, `heart_rate`, `respiratory_rate`,
 * `temperature`, `spo2`, `weight`, `height`, or `form` for the whole form.
 */
field: string, message: string, 
/**
 * What to type in the field instead, when a likely fix is known (`98.6F`).
 */
suggestion?: string, };

export type Correction = { reason: string, marked_by: string, marked_at: string, };

export type ListItem = "vital" | "problem" | "allergy" | "medication" | "immunization" | "lab_result";

export type DemographicsInput = { family: string | null, given: string | null, preferred: string | null, birth_date: string | null, sex: string | null, gender_identity: string | null, phone: string | null, email: string | null, address: string | null, emergency_name: string | null, emergency_phone: string | null, emergency_relationship: string | null, 
/**
 * Race: CDC codes, comma-separated, or `ASKU` (chose not to answer).
 */
race?: string, 
/**
 * Ethnicity: CDC codes, comma-separated, or `ASKU`.
 */
ethnicity?: string, 
/**
 * Preferred language (BCP 47).
 */
language?: string, 
/**
 * Sex assigned at birth: `F`, `M` or `UNK`.
 */
birth_sex?: string, 
/**
 * A SNOMED CT code, or `OTH`, `UNK`, `ASKU`.
 */
sexual_orientation?: string, };

export type StaffMember = { name: string, role: Role, };

export type PatientVersion = { version: number, changed_at: string, changed_by: string, demographics: Demographics, restricted: boolean, };

export type Alert = { id: number, rule: string, time: string, 
/**
 * The user whose action raised it, if any.
 */
user: string | null, patient_id: string | null, 
/**
 * The MRN of the patient it is about, if any.
 */
mrn: string | null, 
/**
 * The patient's name ("Okafor, Chidi"), only for a reader who may see it: a role that
 * reads demographics, and for a restricted chart only someone who may open it.
 */
patient_name: string | null, summary: string, 
/**
 * The audit entry that raised it.
 */
audit_seq: number, acknowledged_at: string | null, acknowledged_by: string | null, note: string | null, 
/**
 * The stretch of the trail to read about it, with its user and patient (RFC 3339;
 * from inclusive, until exclusive): which stretch depends on the rule.
 */
entries_since: string, entries_until: string, };

export type Verification = { ok: boolean, entries: number, head_seq: number, checkpoints: number, unsigned_tail: number, first_bad_seq: number | null, reason: string | null, };

export type PatientInput = { family: string, given: string, preferred: string | null, 
/**
 * YYYY-MM-DD.
 */
birth_date: string, 
/**
 * `female`, `male`, `other` or `unknown`.
 */
sex: string, phone: string | null, email: string | null, address: string | null, emergency_name: string | null, emergency_phone: string | null, emergency_relationship: string | null, 
/**
 * Race: CDC codes, comma-separated, or `ASKU` (chose not to answer).
 */
race?: string, 
/**
 * Ethnicity: CDC codes, comma-separated, or `ASKU`.
 */
ethnicity?: string, 
/**
 * Preferred language (BCP 47).
 */
language?: string, 
/**
 * Sex assigned at birth: `F`, `M` or `UNK`.
 */
birth_sex?: string, 
/**
 * A SNOMED CT code, or `OTH`, `UNK`, `ASKU`.
 */
sexual_orientation?: string, restricted: boolean, 
/**
 * Register even though the patient looks like one already here: the person
 * registering checked the candidates and this is someone else.
 */
new_person: boolean, 
/**
 * The care team (user names) besides the person registering; a restricted chart
 * registered by the front desk needs at least one physician or nurse here.
 */
care_team: Array<string>, };

export type EncounterInput = { kind: string, 
/**
 * When it started; now if empty.
 */
start: string | null, reason: string, };

export type VitalsForm = { systolic: string | null, diastolic: string | null, heart_rate: string | null, respiratory_rate: string | null, temperature: string | null, spo2: string | null, weight: string | null, height: string | null, 
/**
 * When they were taken; now if empty.
 */
effective: string | null, encounter_id: number | null, 
/**
 * The person has seen the questions about values far from the last ones and saves
 * as typed; without it such a value is refused with `check_values`.
 */
confirmed: boolean, };

export type ProblemInput = { text: string, 
/**
 * `snomed` or `icd10`, with `code`; both empty for an uncoded problem.
 */
system: string | null, code: string | null, onset: string | null, };

export type AllergyInput = { substance: string, reaction: string | null, 
/**
 * `mild`, `moderate` or `severe`.
 */
severity: string | null, 
/**
 * `medication`, `food`, `environment` or `biologic`.
 */
category: string | null, 
/**
 * The reason for recording it although a current medication matches it.
 */
override_allergy?: string, };

export type MedicationInput = { name: string, dose: string | null, route: string | null, frequency: string | null, start: string | null, 
/**
 * The reason for saving it although it matches an active allergy.
 */
override_allergy?: string, };

export type ImmunizationInput = { vaccine: string, 
/**
 * The CDC CVX code, e.g. 141 for influenza.
 */
cvx: string, date: string, lot: string | null, site: string | null, };

export type AuditQuery = { 
/**
 * An MRN, exactly (0000018), or a name, matched as patient search matches names.
 */
patient: string | null, user: string | null, event: string | null, 
/**
 * `success`, `denied` or `failed`.
 */
outcome: string | null, 
/**
 * From this day (YYYY-MM-DD, UTC), inclusive, or this instant (RFC 3339).
 */
since: string | null, 
/**
 * Up to this day (YYYY-MM-DD, UTC), inclusive, or before this instant (RFC 3339).
 */
until: string | null, 
/**
 * The newest this many.
 */
limit: number | null, };

export type AuditRow = { seq: number, time: string, actor: string, role: string | null, action: string, 
/**
 * As the trail stores it (`chart.read`).
 */
event: string, 
/**
 * "Opened a chart"; absent for an event this release does not know.
 */
event_words: string | null, outcome: string, 
/**
 * The MRN of the patient the entry is about.
 */
mrn: string | null, object: string | null, 
/**
 * The purpose-of-use code (`TREAT`) and its words ("treatment").
 */
purpose: string | null, purpose_words: string | null, reason: string | null, detail: string | null, };

export type AuditPage = { rows: Array<AuditRow>, patients_named: number | null, };

export type AuditVocabulary = { events: Array<EventWords>, purposes: Array<PurposeWords>, };

export type EventWords = { 
/**
 * As the trail stores it (`chart.read`).
 */
event: string, 
/**
 * As a person says it ("Opened a chart").
 */
words: string, 
/**
 * Where a list of events shows it ("Charts and patients").
 */
group: string, };

export type PurposeWords = { code: string, words: string, };

export type ExportForm = { patient_ids?: Array<number>, 
/**
 * age public keys (age1…); empty when a passphrase is used.
 */
recipients: Array<string>, 
/**
 * Dropped into a secret at once; never sent back.
 */
passphrase?: string, recipient_name?: string, purpose: string, };

export type ExportDone = { report: ExportReport, 
/**
 * The file written (in the exports folder).
 */
path: string, folder: string, };

export type ExportProgress = { done: number, total: number, };

export type ExportReport = { 
/**
 * Its number in the accounting of disclosures.
 */
disclosure_id: number, 
/**
 * `bundle` (one patient, a FHIR Bundle) or `bulk-ndjson` (a tar of NDJSON files).
 */
format: string, patients: number, resources: Record<string, number>, 
/**
 * Restricted patients the exporter may not see.
 */
left_out: Array<LeftOut>, 
/**
 * Unsigned drafts are not part of the record and are not exported.
 */
drafts_left_out: number, 
/**
 * True when the exporter's keys do not open clinical content (an administrator): the
 * export then holds demographics only. A whole clinic with its clinical record takes a
 * physician, a nurse or the recovery key.
 */
clinical_left_out: boolean, recipient: string, keys: Array<KeyInfo>, 
/**
 * Size and SHA-256 of the encrypted file.
 */
bytes: number, sha256: string, };

export type LeftOut = { patient_id: PatientId, reason: string, };

export type KeyInfo = { 
/**
 * `age-x25519` or `passphrase`.
 */
type: string, 
/**
 * For a recipient, the recipient itself (public, as the receiver gave it).
 */
recipient?: string, 
/**
 * SHA-256 of the recipient, first 16 bytes in hex.
 */
fingerprint?: string, };

export type Disclosure = { id: number, time: string, by: string, role: string | null, recipient: string, keys: Array<KeyInfo>, purpose: string, format: string, 
/**
 * How many patients the same export held in all.
 */
patients_in_export: number, 
/**
 * This patient's resources in it, by type.
 */
resources: Record<string, number>, sha256: string, };

export type SyncStatus = { 
/**
 * False until an admin enrolls this computer with a collector.
 */
configured: boolean, url?: string, 
/**
 * The highest audit entry the collector has acknowledged.
 */
acknowledged: number, 
/**
 * Entries written here and not yet acknowledged.
 */
queued: number, last_success: string | null, last_attempt: string | null, 
/**
 * The last failure, in words; cleared by a success.
 */
last_error: string | null, };

export type Appointment = { id: AppointmentId, patient_id: PatientId, mrn: string, 
/**
 * "Family, Given" ("Restricted patient" for those outside a restricted chart's care team).
 */
patient_name: string, 
/**
 * Empty for those outside a restricted chart's care team.
 */
birth_date: string, restricted: boolean, clinician: string, start: string, end: string, minutes: number, type: string | null, 
/**
 * Withheld (None) from those outside a restricted patient's care team.
 */
reason: string | null, status: AppointmentStatus, overbooked: boolean, cancel_reason: string | null, arrived_at: string | null, roomed_at: string | null, seen_at: string | null, encounter_id: EncounterId | null, created_at: string, created_by: string, updated_at: string, updated_by: string, 
/**
 * What the person booking should know (outside working hours, a day off); only in
 * the answer to a booking or a move.
 */
warnings: Array<string>, };

export type AppointmentId = number;

export type AppointmentStatus = "booked" | "arrived" | "in_room" | "seen" | "no_show" | "cancelled";

export type AppointmentQuery = { 
/**
 * The first day (clinic's date); default today, or every day for a patient's list.
 */
day?: string, 
/**
 * How many days from `day` (1: a day view, 7: a week view).
 */
days?: number, clinician?: string, patient_id?: number, 
/**
 * Leave out cancelled appointments and no-shows.
 */
active_only: boolean, };

export type Booking = { clinician: string, at: string, appointment_type?: string, minutes?: number, reason?: string, overbook: boolean, };

export type FreeSlot = { clinician: string, start: string, end: string, minutes: number, };

export type Started = { appointment: Appointment, encounter: Encounter, };

export type AppointmentType = { name: string, minutes: number, };

export type ScheduleView = { clinician: string, time_zone: string, 
/**
 * Weekday (`mon` …) to its hours (`08:00-12:00,13:00-17:00` or `off`).
 */
hours: { [key in string]: string }, days_off: Array<string>, days: Array<ScheduleDay>, };

export type ScheduleDay = { date: string, weekday: string, 
/**
 * `08:00-12:00,13:00-17:00`, or `off`.
 */
hours: string, day_off: boolean, };
