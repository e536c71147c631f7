// Vitals for the table and the plot: one row per moment they were taken, and one series per
// vital with abnormal values singled out so the plot can mark them.
import type { Flag, Observation, Vital } from "../gen/bindings";
import { inClinicUnits } from "./format";

/** Observations that count: not marked entered in error (those stay listed, struck out, but
 * are left out of the latest values, the flags and the plots). */
export function current(observations: readonly Observation[]): Observation[] {
  return observations.filter((o) => o.status !== "entered-in-error");
}

export const TABLE_VITALS: Vital[] = [
  "systolic",
  "diastolic",
  "heart_rate",
  "respiratory_rate",
  "temperature",
  "spo2",
  "weight",
  "height",
  "bmi",
];

export interface VitalsRow {
  effective: string;
  values: Partial<Record<Vital, { id: number; value: number; flag: Flag; reason: string | null }>>;
  /** The observations in the row, for finding where imported ones came from. */
  ids: number[];
}

/** Observations grouped by the moment they were taken, newest first. */
export function vitalsRows(observations: readonly Observation[]): VitalsRow[] {
  const byTime = new Map<string, VitalsRow>();
  for (const o of observations) {
    let row = byTime.get(o.effective);
    if (!row) {
      row = { effective: o.effective, values: {}, ids: [] };
      byTime.set(o.effective, row);
    }
    // A value marked entered in error gives way to one that counts at the same moment.
    const struck = o.status === "entered-in-error";
    if (!struck || !row.values[o.vital] || row.values[o.vital]!.reason !== null) {
      row.values[o.vital] = { id: o.id, value: o.value, flag: o.flag, reason: struck ? o.correction?.reason ?? "" : null };
    }
    row.ids.push(o.id);
  }
  return [...byTime.values()].sort((a, b) => b.effective.localeCompare(a.effective));
}

export interface PlotData {
  /** Seconds since the epoch, ascending. */
  times: number[];
  /** Per vital: the value at each time, or null where it was not measured. */
  series: Map<Vital, (number | null)[]>;
  /** Per vital: the value where it was abnormal, null elsewhere (drawn as marked points). */
  abnormal: Map<Vital, (number | null)[]>;
}

/** Aligned columns for the chart library: one shared time axis, gaps as null. */
export function plotData(all: readonly Observation[], vitals: readonly Vital[]): PlotData {
  const observations = current(all);
  const wanted = new Set(vitals);
  const times = [...new Set(observations.filter((o) => wanted.has(o.vital)).map((o) => o.effective))]
    .map((t) => ({ t, s: Date.parse(t) / 1000 }))
    .filter(({ s }) => Number.isFinite(s))
    .sort((a, b) => a.s - b.s);
  const index = new Map(times.map(({ t }, i) => [t, i]));
  const series = new Map<Vital, (number | null)[]>();
  const abnormal = new Map<Vital, (number | null)[]>();
  for (const v of vitals) {
    series.set(v, new Array(times.length).fill(null));
    abnormal.set(v, new Array(times.length).fill(null));
  }
  for (const o of observations) {
    const i = index.get(o.effective);
    if (i === undefined || !wanted.has(o.vital) || o.status === "entered-in-error") continue;
    const shown = inClinicUnits(o.vital, o.value);
    series.get(o.vital)![i] = shown;
    if (o.flag !== "N") abnormal.get(o.vital)![i] = shown;
  }
  return { times: times.map(({ s }) => s), series, abnormal };
}

/** Which vitals this patient has any values for, in table order. */
export function measured(observations: readonly Observation[]): Vital[] {
  const have = new Set(observations.map((o) => o.vital));
  return TABLE_VITALS.filter((v) => have.has(v));
}
