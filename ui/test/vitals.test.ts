import { describe, expect, it } from "vitest";
import type { Flag, Observation, Vital } from "../src/gen/bindings";
import { measured, parseMeasurement, plotData, vitalsRows } from "../src/lib/vitals";

let id = 0;
function obs(vital: Vital, value: number, effective: string, flag: Flag = "N"): Observation {
  id += 1;
  return {
    id,
    patient_id: 1,
    encounter_id: null,
    vital,
    code: "0000-0",
    display: vital,
    value,
    unit: "x",
    effective,
    flag,
    recorded_by: "nurse",
    recorded_at: effective,
  };
}

const T1 = "2026-01-01T09:00:00Z";
const T2 = "2026-02-01T09:00:00Z";
const T3 = "2026-03-01T09:00:00Z";

describe("vitals table", () => {
  it("groups a set taken together into one row, newest first", () => {
    const rows = vitalsRows([obs("systolic", 120, T1), obs("diastolic", 80, T1), obs("systolic", 150, T2, "H")]);
    expect(rows.map((r) => r.effective)).toEqual([T2, T1]);
    expect(rows[1].values.diastolic).toEqual({ value: 80, flag: "N" });
    expect(rows[0].values.systolic).toEqual({ value: 150, flag: "H" });
    expect(rows[0].values.diastolic).toBeUndefined();
    expect(rows[1].ids).toHaveLength(2);
  });

  it("lists only the vitals that were measured, in a fixed order", () => {
    expect(measured([obs("weight", 70, T1), obs("heart_rate", 60, T1)])).toEqual(["heart_rate", "weight"]);
  });
});

describe("vitals plot", () => {
  it("aligns series on one ascending time axis with gaps, and marks abnormal values", () => {
    const d = plotData(
      [obs("systolic", 150, T3, "H"), obs("systolic", 120, T1), obs("heart_rate", 40, T2, "L"), obs("weight", 70, T2)],
      ["systolic", "heart_rate"],
    );
    expect(d.times).toEqual([T1, T2, T3].map((t) => Date.parse(t) / 1000));
    expect(d.series.get("systolic")).toEqual([120, null, 150]);
    expect(d.series.get("heart_rate")).toEqual([null, 40, null]);
    expect(d.abnormal.get("systolic")).toEqual([null, null, 150]);
    expect(d.abnormal.get("heart_rate")).toEqual([null, 40, null]);
    expect(d.series.has("weight")).toBe(false);
  });

  it("is empty for no observations", () => {
    const d = plotData([], ["systolic"]);
    expect(d.times).toEqual([]);
    expect(d.series.get("systolic")).toEqual([]);
  });
});

describe("typed measurements", () => {
  it("reads numbers, a decimal comma, and empty as not measured", () => {
    expect(parseMeasurement(" 120 ", "Systolic")).toBe(120);
    expect(parseMeasurement("37,5", "Temperature")).toBe(37.5);
    expect(parseMeasurement("", "Weight")).toBeNull();
  });

  it("refuses anything else with the field's name", () => {
    expect(() => parseMeasurement("12o", "Systolic")).toThrow(/Systolic: type a number/);
    expect(() => parseMeasurement("-5", "Weight")).toThrow(/Weight/);
    expect(() => parseMeasurement("1e3", "Weight")).toThrow();
  });
});
