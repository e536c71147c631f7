// How Chartroom writes dates, ages, names and measurements: unambiguous at a glance
// ("02 Mar 2024", never 03/02/2024), always with units.
import type { Flag, ImportOrigin, Permission, Role, Sex, Units, Vital } from "../gen/bindings";

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

const pad = (n: number) => String(n).padStart(2, "0");

/** A calendar date (YYYY-MM-DD) as "02 Mar 2024", without any time-zone shift. */
export function formatDate(iso: string | null | undefined): string {
  if (!iso) return "—";
  const m = /^(\d{4})-(\d{2})-(\d{2})/.exec(iso);
  if (!m) return iso;
  const month = MONTHS[Number(m[2]) - 1];
  return month ? `${m[3]} ${month} ${m[1]}` : iso;
}

/** The clinic's time zone (IANA), set at sign-in: every moment on screen is shown in it. */
let clinicZone: string | undefined;

export function setClinicZone(zone: string | undefined): void {
  try {
    // An unknown name would make every formatter throw; fall back to this computer's zone.
    if (zone) new Intl.DateTimeFormat("en-GB", { timeZone: zone });
    clinicZone = zone || undefined;
  } catch {
    clinicZone = undefined;
  }
}

/** A moment's calendar date and clock time in the clinic's zone. */
export function clinicParts(d: Date): { y: number; m: number; day: number; hh: number; mm: number } {
  const parts = new Intl.DateTimeFormat("en-GB", {
    timeZone: clinicZone,
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
    hourCycle: "h23",
  }).formatToParts(d);
  const get = (t: string) => Number(parts.find((p) => p.type === t)?.value ?? "0");
  return { y: get("year"), m: get("month"), day: get("day"), hh: get("hour"), mm: get("minute") };
}

/** Today's date in the clinic (YYYY-MM-DD). */
export function clinicToday(now: Date = new Date()): string {
  const p = clinicParts(now);
  return `${p.y}-${pad(p.m)}-${pad(p.day)}`;
}

/** A moment (RFC 3339) in the clinic's time zone: "02 Mar 2024 14:05". */
export function formatDateTime(iso: string | null | undefined, zone?: string): string {
  if (!iso) return "—";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  if (zone === "UTC") {
    return `${pad(d.getUTCDate())} ${MONTHS[d.getUTCMonth()]} ${d.getUTCFullYear()} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())} UTC`;
  }
  const p = clinicParts(d);
  return `${pad(p.day)} ${MONTHS[p.m - 1]} ${p.y} ${pad(p.hh)}:${pad(p.mm)}`;
}

/** The clock time of a moment written with the clinic's offset ("…T09:00:00+01:00"). */
export function clockTime(iso: string): string {
  return iso.slice(11, 16);
}

/** Minutes since a moment, for "waiting 12 min". */
export function minutesSince(iso: string | null | undefined, now: Date): number {
  if (!iso) return 0;
  return Math.max(0, Math.floor((now.getTime() - new Date(iso).getTime()) / 60_000));
}

/** A date (YYYY-MM-DD) moved by whole days, as a calendar date. */
export function addDays(date: string, days: number): string {
  const d = new Date(`${date}T12:00:00Z`);
  d.setUTCDate(d.getUTCDate() + days);
  return d.toISOString().slice(0, 10);
}

/** The Monday of a date's week. */
export function mondayOf(date: string): string {
  const d = new Date(`${date}T12:00:00Z`);
  return addDays(date, -((d.getUTCDay() + 6) % 7));
}

export const WEEKDAY_NAMES = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/** Appointment statuses in words, with a symbol so colour is never the only cue. */
export const STATUS_WORDS: Record<string, { label: string; symbol: string }> = {
  booked: { label: "Booked", symbol: "○" },
  arrived: { label: "Arrived", symbol: "●" },
  in_room: { label: "In room", symbol: "▣" },
  seen: { label: "Seen", symbol: "✓" },
  no_show: { label: "No-show", symbol: "✗" },
  cancelled: { label: "Cancelled", symbol: "–" },
};

/** Whole years between a birth date and `today`; the same rule as the Rust side. */
export function ageOn(birth: string, today: Date): number {
  const [y, m, d] = birth.split("-").map(Number);
  if (!y || !m || !d) return 0;
  let age = today.getFullYear() - y;
  const month = today.getMonth() + 1;
  if (month < m || (month === m && today.getDate() < d)) age -= 1;
  return Math.max(0, age);
}

export const ROLE_LABELS: Record<Role, string> = {
  admin: "Administrator",
  physician: "Physician",
  nurse: "Nurse",
  front_desk: "Front desk",
  auditor: "Auditor",
};

export const SEX_LABELS: Record<Sex, string> = {
  female: "Female",
  male: "Male",
  other: "Other",
  unknown: "Unknown",
};

/** "Family, Given (Preferred)" as a chart header and search list show it, exactly as
 *  registered (no case changes: what was typed is what is shown). */
export function displayName(p: { family: string; given: string; preferred?: string | null }): string {
  const preferred = p.preferred && p.preferred !== p.given ? ` (${p.preferred})` : "";
  return `${p.family}, ${p.given}${preferred}`;
}

export interface VitalInfo {
  label: string;
  short: string;
  unit: string;
  /** The UCUM unit as stored, for the tooltip. */
  ucum: string;
  decimals: number;
}

export const VITALS: Record<Vital, VitalInfo> = {
  systolic: { label: "BP systolic", short: "Systolic", unit: "mmHg", ucum: "mm[Hg]", decimals: 0 },
  diastolic: { label: "BP diastolic", short: "Diastolic", unit: "mmHg", ucum: "mm[Hg]", decimals: 0 },
  heart_rate: { label: "Heart rate", short: "Pulse", unit: "/min", ucum: "/min", decimals: 0 },
  respiratory_rate: { label: "Resp. rate", short: "Resp.", unit: "/min", ucum: "/min", decimals: 0 },
  temperature: { label: "Temperature", short: "Temp.", unit: "°C", ucum: "Cel", decimals: 1 },
  spo2: { label: "SpO₂", short: "SpO₂", unit: "%", ucum: "%", decimals: 0 },
  weight: { label: "Weight", short: "Weight", unit: "kg", ucum: "kg", decimals: 1 },
  height: { label: "Height", short: "Height", unit: "cm", ucum: "cm", decimals: 0 },
  bmi: { label: "Body mass index", short: "BMI", unit: "kg/m²", ucum: "kg/m2", decimals: 1 },
};

/** The clinic's units (setting `units`), set at sign-in: weight, height and temperature are
 * shown (and read) in them; values are stored in UCUM's metric units either way. */
let clinicUnits: Units = "metric";

export function setClinicUnits(units: Units | undefined): void {
  clinicUnits = units === "us" ? "us" : "metric";
}

export function getClinicUnits(): Units {
  return clinicUnits;
}

const US: Partial<Record<Vital, { unit: string; from: (v: number) => number; decimals: number }>> = {
  weight: { unit: "lb", from: (kg) => kg / 0.45359237, decimals: 1 },
  height: { unit: "in", from: (cm) => cm / 2.54, decimals: 1 },
  temperature: { unit: "°F", from: (c) => (c * 9) / 5 + 32, decimals: 1 },
};

/** The unit a vital is shown and typed in, in the clinic's units. */
export function unitOf(vital: Vital): string {
  return (clinicUnits === "us" && US[vital]?.unit) || VITALS[vital].unit;
}

/** A stored (UCUM) value in the clinic's units. */
export function inClinicUnits(vital: Vital, value: number): number {
  const us = clinicUnits === "us" ? US[vital] : undefined;
  return us ? us.from(value) : value;
}

/** A stored value as shown, without its unit: "150.0", "98.6". */
export function shownValue(vital: Vital, value: number): string {
  const us = clinicUnits === "us" ? US[vital] : undefined;
  return inClinicUnits(vital, value).toFixed(us ? us.decimals : VITALS[vital].decimals);
}

/** A value with its unit: "120 mmHg", "37.2 °C" (or "99.0 °F" where the clinic uses US units). */
export function withUnit(vital: Vital, value: number): string {
  return `${shownValue(vital, value)} ${unitOf(vital)}`;
}

export const FLAG_LABELS: Record<Flag, string> = {
  N: "normal",
  L: "low",
  H: "high",
  LL: "critically low",
  HH: "critically high",
};

export const isAbnormal = (flag: Flag) => flag !== "N";

/** Screens and actions offered to a role; the Rust gate decides what actually happens. */
export function may(permissions: readonly Permission[], p: Permission): boolean {
  return permissions.includes(p);
}

/** "42 minutes left", "1 minute left", "expired", from an expiry and a moment. */
export function timeLeft(expiresAt: string, now: Date): string {
  const ms = new Date(expiresAt).getTime() - now.getTime();
  if (!(ms > 0)) return "expired";
  const minutes = Math.ceil(ms / 60_000);
  if (minutes >= 120) return `${Math.floor(minutes / 60)} h ${minutes % 60} min left`;
  return minutes === 1 ? "1 minute left" : `${minutes} minutes left`;
}

/** A time-axis label (seconds since the epoch, local time): "02 Mar 2024", or with the time
 *  when the axis spans less than two days, "02 Mar 14:05". Never 03/02/24. */
export function axisDate(seconds: number, spanSeconds: number): string {
  const d = new Date(seconds * 1000);
  const day = `${pad(d.getDate())} ${MONTHS[d.getMonth()]}`;
  return spanSeconds < 2 * 86_400 ? `${day} ${pad(d.getHours())}:${pad(d.getMinutes())}` : `${day} ${d.getFullYear()}`;
}

/** The vault a record came from, short enough for a list line: "vault 3f9a…c21d". */
export function sourceLabel(source: string): string {
  if (!source.startsWith("urn:chartroom:vault:")) {
    // Another system, named as its file names it (a URI).
    return source.length > 60 ? `${source.slice(0, 59)}…` : source;
  }
  const id = source.replace(/^urn:chartroom:vault:/, "");
  return id.length > 12 ? `vault ${id.slice(0, 4)}…${id.slice(-4)}` : `vault ${id}`;
}

/**
 * Where an imported item came from, in words: "Imported 01 Dec 2026 from vault 3f9a…c21d,
 * signed there by key SHA256:ab12…"; null for an item made here.
 */
export function originWords(
  origins: readonly ImportOrigin[] | undefined,
  item: string,
  id: number,
): string | null {
  const o = origins?.find((x) => x.item === item && x.id === id);
  if (!o) return null;
  const signed = o.signed_by
    ? `signed there by key ${o.signed_by}`
    : o.foreign
      ? "recorded and signed in that system (FHIR from another system)"
      : "not signed (an export from before exports were signed)";
  return `Imported ${formatDate(o.imported_at)} from ${sourceLabel(o.source)}, ${signed}`;
}
