import { describe, expect, it } from "vitest";
import type { Flag, Observation, Vital } from "../src/gen/bindings";
import { setClinicUnits, withUnit } from "../src/lib/format";
import { current, measured, plotData, vitalsRows } from "../src/lib/vitals";

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
    status: "final",
  };
}

const T1 = "2026-01-01T09:00:00Z";
const T2 = "2026-02-01T09:00:00Z";
const T3 = "2026-03-01T09:00:00Z";

describe("vitals table", () => {
  it("groups a set taken together into one row, newest first", () => {
    const rows = vitalsRows([obs("systolic", 120, T1), obs("diastolic", 80, T1), obs("systolic", 150, T2, "H")]);
    expect(rows.map((r) => r.effective)).toEqual([T2, T1]);
    expect(rows[1].values.diastolic).toMatchObject({ value: 80, flag: "N", reason: null });
    expect(rows[0].values.systolic).toMatchObject({ value: 150, flag: "H", reason: null });
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

describe("values entered in error", () => {
  it("stay in the table, struck out with the reason, and leave the plots and the latest values", () => {
    const wrong: Observation = {
      ...obs("weight", 180, T2),
      status: "entered-in-error",
      correction: { reason: "Pounds typed as kilograms", marked_by: "nurse", marked_at: T3 },
    };
    const all = [wrong, obs("weight", 55.5, T1)];
    expect(current(all).map((o) => o.value)).toEqual([55.5]);
    const rows = vitalsRows(all);
    expect(rows[0].values.weight?.reason).toBe("Pounds typed as kilograms");
    expect(rows[1].values.weight?.reason).toBeNull();
    const d = plotData(all, ["weight"]);
    expect(d.series.get("weight")).toEqual([55.5]);
  });
});

describe("the clinic's units", () => {
  it("shows weight, height and temperature in US units when the clinic uses them", () => {
    setClinicUnits("us");
    try {
      expect(withUnit("weight", 68.04)).toBe("150.0 lb");
      expect(withUnit("temperature", 37)).toBe("98.6 °F");
      expect(withUnit("height", 165.1)).toBe("65.0 in");
      expect(withUnit("systolic", 120)).toBe("120 mmHg");
      expect(plotData([obs("weight", 68.04, T1)], ["weight"]).series.get("weight")?.[0]).toBeCloseTo(150, 1);
    } finally {
      setClinicUnits("metric");
    }
    expect(withUnit("weight", 68.04)).toBe("68.0 kg");
  });
});
