// How Chartroom writes dates, ages, names and measurements: unambiguous at a glance
// ("02 Mar 2024", never 03/02/2024), always with units.
import type { Flag, ImportOrigin, Permission, Role, Sex, Vital } from "../gen/bindings";

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

/** A moment (RFC 3339, UTC) in this computer's local time: "02 Mar 2024 14:05". */
export function formatDateTime(iso: string | null | undefined, zone?: string): string {
  if (!iso) return "—";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  if (zone === "UTC") {
    return `${pad(d.getUTCDate())} ${MONTHS[d.getUTCMonth()]} ${d.getUTCFullYear()} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())} UTC`;
  }
  return `${pad(d.getDate())} ${MONTHS[d.getMonth()]} ${d.getFullYear()} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

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

/** A value with its unit: "120 mmHg", "37.2 °C". */
export function withUnit(vital: Vital, value: number): string {
  const info = VITALS[vital];
  return `${value.toFixed(info.decimals)} ${info.unit}`;
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
  const signed = o.signed_by ? `signed there by key ${o.signed_by}` : "not signed (an export from before exports were signed)";
  return `Imported ${formatDate(o.imported_at)} from ${sourceLabel(o.source)}, ${signed}`;
}
