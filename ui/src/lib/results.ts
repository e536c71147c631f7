// Lab results for the Results tab: results grouped under their reports, flags and ranges in
// words, one test's values over time for the trend plot, and what the forms send.
import type { FieldError, LabReport, LabResult, LabTestChoice, Range, ResultFlag, ResultInput } from "../gen/bindings";

/** HL7's words for a result's flag. */
export const FLAG_WORDS: Record<ResultFlag, string> = {
  N: "Normal",
  L: "Low",
  H: "High",
  LL: "Critical low",
  HH: "Critical high",
  A: "Abnormal",
};

/** How loudly a flag is shown: critical in red, abnormal in amber, normal not at all. */
export type Severity = "normal" | "abnormal" | "critical";

export function flagSeverity(flag: ResultFlag | null | undefined): Severity {
  if (flag === "LL" || flag === "HH") return "critical";
  if (flag === "L" || flag === "H" || flag === "A") return "abnormal";
  return "normal";
}

export const isAbnormalFlag = (flag: ResultFlag | null | undefined): boolean => flagSeverity(flag) !== "normal";

/** A flag in words ("High", "Critical low"); empty for none. */
export function flagWords(flag: ResultFlag | null | undefined): string {
  return flag ? FLAG_WORDS[flag] ?? flag : "";
}

export const isStruck = (r: { status: string }): boolean => r.status === "entered-in-error";

/** A result flagged outside its range that still counts (one entered in error is never flagged). */
export const isAbnormalResult = (r: LabResult): boolean => !isStruck(r) && isAbnormalFlag(r.flag);

/** A reference range as people write it: "3.5–5.1", "<200", ">40"; empty for none. */
export function rangeText(range: Range | null | undefined): string {
  if (!range) return "";
  const { low, high } = range;
  if (low !== null && high !== null) return `${low}–${high}`;
  if (high !== null) return `<${high}`;
  if (low !== null) return `>${low}`;
  return "";
}

/** A range as the form takes it back ("3.5-5.1"), for a correction. */
export function rangeInput(range: Range | null | undefined): string {
  return rangeText(range).replace("–", "-");
}

/** A value as shown: numbers as the lab gave them, findings and text as written. */
export function valueText(value: number | string): string {
  // Six significant digits at most: a lab prints 77.4, not the 77.41418673109915 some
  // systems' files carry (the value kept is the file's).
  return typeof value === "number" ? String(Number(value.toPrecision(6))) : value;
}

/** A value with its unit: "5.4 mmol/L", "Positive". */
export function valueWithUnit(value: number | string, unit: string | null | undefined): string {
  const v = valueText(value);
  return unit ? `${v} ${unit}` : v;
}

/** Result and report statuses in words. */
export const STATUS_WORDS: Record<string, string> = {
  registered: "Registered, no results yet",
  preliminary: "Preliminary",
  final: "Final",
  corrected: "Corrected",
  "entered-in-error": "Entered in error",
};

export const statusWords = (status: string): string => STATUS_WORDS[status] ?? status;

const ms = (t: string): number => {
  const n = Date.parse(t);
  return Number.isFinite(n) ? n : 0;
};

/** Newest collection first; the order given is kept between equal times. */
function newestFirst<T extends { collected_at: string }>(items: readonly T[]): T[] {
  return [...items].sort((a, b) => ms(b.collected_at) - ms(a.collected_at));
}

export interface ReportGroup {
  report: LabReport;
  /** Its results, in the order the report lists them. */
  results: LabResult[];
}

export interface GroupedResults {
  /** Reports, newest collection first. */
  reports: ReportGroup[];
  /** Results with no report (or with one this chart was not sent), newest first. */
  other: LabResult[];
}

/** Results under their reports, and the rest under "Other results". */
export function groupResults(results: readonly LabResult[], reports: readonly LabReport[]): GroupedResults {
  const known = new Set(reports.map((r) => r.id));
  const byReport = new Map<number, LabResult[]>();
  const other: LabResult[] = [];
  for (const r of results) {
    if (r.report_id !== null && known.has(r.report_id)) {
      const list = byReport.get(r.report_id) ?? [];
      list.push(r);
      byReport.set(r.report_id, list);
    } else {
      other.push(r);
    }
  }
  const groups = newestFirst(reports).map((report) => {
    const mine = byReport.get(report.id) ?? [];
    const place = new Map(report.result_ids.map((id, i) => [id, i]));
    const listed = mine.filter((r) => place.has(r.id)).sort((a, b) => place.get(a.id)! - place.get(b.id)!);
    const rest = newestFirst(mine.filter((r) => !place.has(r.id)));
    return { report, results: [...listed, ...rest] };
  });
  return { reports: groups, other: newestFirst(other) };
}

/** The tests by LOINC code, for looking up short names and units. */
export function testIndex(tests: readonly LabTestChoice[]): Map<string, LabTestChoice> {
  return new Map(tests.map((t) => [t.loinc, t]));
}

/** The short name people use ("Potassium", "HbA1c"), or the name given when the code is not known. */
export function shortName(tests: ReadonlyMap<string, LabTestChoice>, loinc: string, name: string): string {
  return tests.get(loinc)?.short || name;
}

export interface TrendData {
  /** Seconds since the epoch, ascending. */
  times: number[];
  values: number[];
  /** The value where it was flagged, null elsewhere (drawn as red points). */
  abnormal: (number | null)[];
  /** The unit plotted: the latest result's. */
  unit: string | null;
  /** The latest result's reference range, if it has one. */
  range: Range | null;
  /** Results of the test left out because they are in another unit. */
  otherUnits: number;
}

/** Results of one test that count (not entered in error). */
export function testResults(results: readonly LabResult[], loinc: string): LabResult[] {
  return results.filter((r) => r.loinc === loinc && !isStruck(r));
}

/** Whether a test has any number to plot. */
export function plottable(results: readonly LabResult[], loinc: string): boolean {
  return testResults(results, loinc).some((r) => r.value_kind === "quantity" && typeof r.value === "number");
}

/** One test's numbers over time, oldest first, in the latest result's unit; results entered
 * in error, findings and text are left out. */
export function trendData(results: readonly LabResult[], loinc: string): TrendData {
  const numbers = testResults(results, loinc)
    .filter((r) => r.value_kind === "quantity" && typeof r.value === "number" && Number.isFinite(Date.parse(r.collected_at)))
    .sort((a, b) => ms(a.collected_at) - ms(b.collected_at));
  const latest = numbers[numbers.length - 1];
  const unit = latest?.unit ?? null;
  const same = numbers.filter((r) => (r.unit ?? null) === unit);
  return {
    times: same.map((r) => ms(r.collected_at) / 1000),
    values: same.map((r) => r.value as number),
    abnormal: same.map((r) => (isAbnormalFlag(r.flag) ? (r.value as number) : null)),
    unit,
    range: latest?.range ?? null,
    otherUnits: numbers.length - same.length,
  };
}

/** Every version of one test, newest first, struck ones included (for the history table of a
 * finding or text). */
export function testHistory(results: readonly LabResult[], loinc: string): LabResult[] {
  return newestFirst(results.filter((r) => r.loinc === loinc));
}

const typed = (s: string | undefined): string | undefined => {
  const t = (s ?? "").trim();
  return t === "" ? undefined : t;
};

/** Whether what was typed reads as a number (so it takes a unit). */
export const looksNumeric = (s: string | undefined): boolean => {
  const t = (s ?? "").trim();
  return t !== "" && Number.isFinite(Number(t));
};

/** The add-result form as typed. */
export interface ResultForm {
  loinc?: string;
  name?: string;
  value?: string;
  unit?: string;
  range?: string;
  flag?: string;
  status?: string;
  at?: string;
  report?: string;
}

/** What the add-result form sends: empty fields left out (the Rust side fills them in). A unit
 * filled in from the test is dropped when the value is a finding or text, which has none. */
export function resultInput(f: ResultForm, testUnit: string | null = null): ResultInput {
  const input: ResultInput = { loinc: (f.loinc ?? "").trim(), value: (f.value ?? "").trim() };
  const name = typed(f.name);
  if (name) input.name = name;
  const unit = typed(f.unit);
  if (unit && !(unit === testUnit && !looksNumeric(f.value))) input.unit = unit;
  const range = typed(f.range);
  if (range) input.range = range;
  const flag = typed(f.flag);
  if (flag) input.flag = flag;
  const status = typed(f.status);
  if (status) input.status = status;
  const at = typed(f.at);
  if (at) input.at = at;
  const report = Number(typed(f.report));
  if (Number.isInteger(report) && report > 0) input.report_id = report;
  return input;
}

/** What a correction sends: the same test (an empty code keeps it), and the unit and range
 * as they now stand, an emptied one meaning none. The result's old unit, left in the form, is
 * dropped when the value becomes a finding or text. */
export function correctionInput(f: ResultForm, oldUnit: string | null = null): ResultInput {
  const unit = (f.unit ?? "").trim();
  const input: ResultInput = {
    loinc: "",
    value: (f.value ?? "").trim(),
    unit: unit === oldUnit && !looksNumeric(f.value) ? "" : unit,
    range: (f.range ?? "").trim(),
  };
  const flag = typed(f.flag);
  if (flag) input.flag = flag;
  const status = typed(f.status);
  if (status) input.status = status;
  return input;
}

/** A correction form filled in with the result as it stands. */
export function correctionForm(r: LabResult): ResultForm {
  return {
    value: valueText(r.value),
    unit: r.unit ?? "",
    range: rangeInput(r.range),
    flag: "",
    status: r.status === "preliminary" ? "preliminary" : "final",
  };
}

/** A command's field errors split into those shown beside a field on screen and the rest,
 * which are said in words above the form's button. */
export function splitFieldErrors(
  err: { message: string; fields?: FieldError[] },
  shown: readonly string[],
): { fields: Partial<Record<string, FieldError>>; message: string | null } {
  if (!err.fields?.length) return { fields: {}, message: err.message };
  const fields: Partial<Record<string, FieldError>> = {};
  const rest: string[] = [];
  for (const f of err.fields) {
    if (shown.includes(f.field) && !fields[f.field]) fields[f.field] = f;
    else rest.push(f.message);
  }
  return { fields, message: rest.length ? rest.join(" ") : null };
}
