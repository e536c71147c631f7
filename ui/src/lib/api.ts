// The Tauri commands this window calls, typed with the declarations generated from the Rust
// types (src/gen/bindings.ts). Every call goes through the Rust gate; what the webview is
// sent is already filtered to what the signed-in role may see.
import { invoke } from "@tauri-apps/api/core";
import type {
  Alert,
  Appointment,
  AppointmentQuery,
  AppointmentType,
  Booking,
  FreeSlot,
  ScheduleView,
  Started,
  Allergy,
  AllergyInput,
  AllergyList,
  AppError,
  AuditPage,
  AuditQuery,
  AuditVocabulary,
  Chart,
  Created,
  Disclosure,
  Encounter,
  EncounterInput,
  ExportDone,
  ExportForm,
  ExportProgress,
  Grant,
  Immunization,
  ImmunizationInput,
  LabReport,
  LabResult,
  LabTestChoice,
  DemographicChoices,
  Medication,
  MedicationInput,
  Note,
  NoteContent,
  Observation,
  Patient,
  PatientInput,
  Problem,
  ProblemInput,
  ReportInput,
  ResultInput,
  SearchHit,
  SessionInfo,
  SyncStatus,
  Settings,
  User,
  VaultStatus,
  Verification,
  VitalsForm,
  ListItem,
  DemographicsInput,
  PatientVersion,
  StaffMember,
} from "../gen/bindings";

export type * from "../gen/bindings";

/** Every command fails with an AppError; anything else becomes a generic message. */
export function asAppError(e: unknown): AppError {
  if (e && typeof e === "object" && "message" in e && "code" in e) {
    const { code, message, candidates, fields } = e as AppError;
    if (typeof code === "string" && typeof message === "string") {
      const err: AppError = { code, message };
      if (Array.isArray(candidates)) err.candidates = candidates;
      if (Array.isArray(fields)) err.fields = fields;
      return err;
    }
  }
  return { code: "internal", message: "Something went wrong. Please try again." };
}

export const api = {
  uiReady: () => invoke<void>("ui_ready"),
  vaultStatus: () => invoke<VaultStatus>("vault_status"),
  createVault: (admin: string, password: string) => invoke<Created>("create_vault", { admin, password }),
  createDemo: () => invoke<SessionInfo>("create_demo"),
  unlock: (user: string, password: string) => invoke<SessionInfo>("unlock", { user, password }),
  unlockWithRecoveryKey: (key: string) => invoke<SessionInfo>("unlock_with_recovery_key", { key }),
  changeOwnPassword: (current: string, password: string) =>
    invoke<void>("change_own_password", { current, password }),
  lock: () => invoke<void>("lock"),
  keepAlive: () => invoke<void>("keep_alive"),

  searchPatients: (query: string) => invoke<SearchHit[]>("search_patients", { query }),
  openChart: (patient_id: number) => invoke<Chart>("open_chart", { patient_id }),
  registerPatient: (patient: PatientInput) => invoke<Patient>("register_patient", { patient }),
  updatePatient: (patient_id: number, changes: DemographicsInput) =>
    invoke<Patient>("update_patient", { patient_id, changes }),
  patientHistory: (patient_id: number) => invoke<PatientVersion[]>("patient_history", { patient_id }),
  careTeamChoices: () => invoke<StaffMember[]>("care_team_choices"),
  changeCareTeam: (patient_id: number, user: string, member: boolean) =>
    invoke<void>("change_care_team", { patient_id, user, member }),
  breakGlass: (patient_id: number, reason: string) => invoke<Grant>("break_glass", { patient_id, reason }),
  addEncounter: (patient_id: number, encounter: EncounterInput) =>
    invoke<Encounter>("add_encounter", { patient_id, encounter }),
  draftNote: (patient_id: number, encounter_id: number | null, note: NoteContent) =>
    invoke<Note>("draft_note", { patient_id, encounter_id, note }),
  editDraft: (note_id: number, note: NoteContent) => invoke<Note>("edit_draft", { note_id, note }),
  signNote: (note_id: number) => invoke<Note>("sign_note", { note_id }),
  addAddendum: (note_id: number, note: NoteContent, amendment: boolean) =>
    invoke<Note>("add_addendum", { note_id, note, amendment }),
  recordVitals: (patient_id: number, vitals: VitalsForm) =>
    invoke<Observation[]>("record_vitals", { patient_id, vitals }),
  addProblem: (patient_id: number, problem: ProblemInput) => invoke<Problem>("add_problem", { patient_id, problem }),
  resolveProblem: (problem_id: number, date: string | null) =>
    invoke<Problem>("resolve_problem", { problem_id, date }),
  addAllergy: (patient_id: number, allergy: AllergyInput) => invoke<Allergy>("add_allergy", { patient_id, allergy }),
  recordNoKnownAllergies: (patient_id: number) =>
    invoke<AllergyList>("record_no_known_allergies", { patient_id }),
  resolveAllergy: (allergy_id: number) => invoke<Allergy>("resolve_allergy", { allergy_id }),
  addMedication: (patient_id: number, medication: MedicationInput) =>
    invoke<Medication>("add_medication", { patient_id, medication }),
  stopMedication: (medication_id: number, date: string | null) =>
    invoke<Medication>("stop_medication", { medication_id, date }),
  addImmunization: (patient_id: number, immunization: ImmunizationInput) =>
    invoke<Immunization>("add_immunization", { patient_id, immunization }),
  resolveImmunization: (immunization_id: number) =>
    invoke<Immunization>("resolve_immunization", { immunization_id }),
  /** The tests the result form offers (panels flagged); the same for everyone. */
  labTests: () => invoke<LabTestChoice[]>("lab_tests"),
  /** The answers the race, ethnicity, language, birth sex and sexual orientation fields offer. */
  demographicChoices: () => invoke<DemographicChoices>("demographic_choices"),
  addLabReport: (patient_id: number, report: ReportInput) =>
    invoke<LabReport>("add_lab_report", { patient_id, report }),
  addLabResult: (patient_id: number, result: ResultInput) =>
    invoke<LabResult>("add_lab_result", { patient_id, result }),
  /** A new version of a result with the reason; the earlier value stays, shown beside it. */
  correctLabResult: (result_id: number, result: ResultInput, reason: string) =>
    invoke<LabResult>("correct_lab_result", { result_id, result, reason }),
  /** Marks a list item entered in error, with the reason; read the chart again after. */
  markEnteredInError: (item: ListItem, id: number, reason: string) =>
    invoke<void>("mark_entered_in_error", { item, id, reason }),

  listAppointments: (query: AppointmentQuery) => invoke<Appointment[]>("list_appointments", { query }),
  bookAppointment: (patient_id: number, booking: Booking) =>
    invoke<Appointment>("book_appointment", { patient_id, booking }),
  freeSlots: (clinician: string, from: string | null, appointment_type: string | null, count: number) =>
    invoke<FreeSlot[]>("free_slots", { clinician, from, appointment_type, count }),
  moveAppointment: (appointment_id: number, at: string, overbook: boolean) =>
    invoke<Appointment>("move_appointment", { appointment_id, at, overbook }),
  cancelAppointment: (appointment_id: number, reason: string) =>
    invoke<Appointment>("cancel_appointment", { appointment_id, reason }),
  appointmentStatus: (appointment_id: number, step: "arrive" | "room" | "no_show") =>
    invoke<Appointment>("appointment_status", { appointment_id, step }),
  startAppointment: (appointment_id: number) => invoke<Started>("start_appointment", { appointment_id }),
  listClinicians: () => invoke<string[]>("list_clinicians"),
  appointmentTypes: () => invoke<AppointmentType[]>("appointment_types"),
  clinicianSchedule: (clinician: string, week_of: string | null) =>
    invoke<ScheduleView>("clinician_schedule", { clinician, week_of }),
  setSchedule: (clinician: string, day: string, hours: string) =>
    invoke<ScheduleView>("set_schedule", { clinician, day, hours }),
  setDayOff: (clinician: string, date: string, off: boolean) =>
    invoke<ScheduleView>("set_day_off", { clinician, date, off }),
  addAppointmentType: (name: string, minutes: number) =>
    invoke<AppointmentType>("add_appointment_type", { name, minutes }),

  listUsers: () => invoke<User[]>("list_users"),
  addUser: (name: string, role: string, family_name: string | null, password: string) =>
    invoke<User>("add_user", { name, role, family_name, password }),
  disableUser: (name: string) => invoke<User[]>("disable_user", { name }),
  enableUser: (name: string, password: string) => invoke<User[]>("enable_user", { name, password }),
  changeRole: (name: string, role: string) => invoke<User[]>("change_role", { name, role }),
  resetPassword: (name: string, password: string) => invoke<void>("reset_password", { name, password }),
  getSettings: () => invoke<Settings>("get_settings"),
  setSetting: (key: string, value: string) => invoke<Settings>("set_setting", { key, value }),

  auditEntries: (query: AuditQuery) => invoke<AuditPage>("audit_entries", { query }),
  auditVocabulary: () => invoke<AuditVocabulary>("audit_vocabulary"),
  verifyAudit: () => invoke<Verification>("verify_audit"),
  listAlerts: (all: boolean) => invoke<Alert[]>("list_alerts", { all }),
  acknowledgeAlert: (id: number, note: string) => invoke<Alert[]>("acknowledge_alert", { id, note }),

  exportRecords: (form: ExportForm) => invoke<ExportDone>("export_records", { form }),
  exportProgress: () => invoke<ExportProgress | null>("export_progress"),
  /** Opens the system file manager at an exported file (a path the export returned). */
  showInFolder: (path: string) => invoke<void>("show_in_folder", { path }),
  patientDisclosures: (patient_id: number) => invoke<Disclosure[]>("patient_disclosures", { patient_id }),
  syncStatus: () => invoke<SyncStatus>("sync_status"),
  syncEnroll: (url: string, token: string, certificate: string) =>
    invoke<SyncStatus>("sync_enroll", { url, token, certificate }),
};
