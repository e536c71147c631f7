import { describe, expect, it } from "vitest";
import type { LabReport, LabResult, LabTestChoice } from "../src/gen/bindings";
import {
  correctionForm,
  correctionInput,
  flagSeverity,
  flagWords,
  groupResults,
  isAbnormalResult,
  plottable,
  rangeInput,
  rangeText,
  resultInput,
  shortName,
  splitFieldErrors,
  statusWords,
  testHistory,
  testIndex,
  trendData,
  valueText,
  valueWithUnit,
} from "../src/lib/results";

let next = 0;
function result(over: Partial<LabResult> = {}): LabResult {
  next += 1;
  return {
    id: next,
    patient_id: 1,
    report_id: null,
    loinc: "2823-3",
    name: "Potassium [Moles/volume] in Serum or Plasma",
    value: 4.2,
    value_kind: "quantity",
    value_code: null,
    unit: "mmol/L",
    range: { low: 3.5, high: 5.1 },
    flag: "N",
    status: "final",
    collected_at: "2026-01-01T09:00:00Z",
    reported_at: "2026-01-01T12:00:00Z",
    recorded_by: "nurse",
    recorded_at: "2026-01-01T12:00:00Z",
    reason: null,
    earlier: [],
    ...over,
  };
}

function report(over: Partial<LabReport> = {}): LabReport {
  next += 1;
  return {
    id: next,
    patient_id: 1,
    encounter_id: null,
    loinc: "51990-0",
    name: "Basic metabolic panel - Blood",
    status: "final",
    collected_at: "2026-01-01T09:00:00Z",
    recorded_by: "nurse",
    recorded_at: "2026-01-01T12:00:00Z",
    result_ids: [],
    ...over,
  };
}

const T1 = "2026-01-01T09:00:00Z";
const T2 = "2026-02-01T09:00:00Z";
const T3 = "2026-03-01T09:00:00Z";

describe("grouping results by report", () => {
  it("puts results under their reports, newest report first, in the report's order", () => {
    const older = report({ collected_at: T1 });
    const newer = report({ collected_at: T3 });
    const na = result({ report_id: newer.id, collected_at: T3, loinc: "2951-2" });
    const k = result({ report_id: newer.id, collected_at: T3 });
    const old = result({ report_id: older.id, collected_at: T1 });
    newer.result_ids = [k.id, na.id];
    older.result_ids = [old.id];
    const g = groupResults([na, k, old], [older, newer]);
    expect(g.reports.map((x) => x.report.id)).toEqual([newer.id, older.id]);
    expect(g.reports[0].results.map((r) => r.id)).toEqual([k.id, na.id]);
    expect(g.reports[1].results.map((r) => r.id)).toEqual([old.id]);
    expect(g.other).toEqual([]);
  });

  it("lists results without a report (or with one not sent) under other results, newest first", () => {
    const rep = report();
    const a = result({ collected_at: T1 });
    const b = result({ collected_at: T3 });
    const orphan = result({ report_id: 9999, collected_at: T2 });
    const g = groupResults([a, b, orphan], [rep]);
    expect(g.other.map((r) => r.id)).toEqual([b.id, orphan.id, a.id]);
    expect(g.reports[0].results).toEqual([]);
  });

  it("keeps a report's results it does not list, after the ones it does", () => {
    const rep = report();
    const listed = result({ report_id: rep.id });
    const unlisted = result({ report_id: rep.id });
    rep.result_ids = [listed.id];
    expect(groupResults([unlisted, listed], [rep]).reports[0].results.map((r) => r.id)).toEqual([listed.id, unlisted.id]);
  });

  it("compares times as moments, whatever their offset", () => {
    const a = result({ collected_at: "2026-01-01T10:00:00+02:00" }); // 08:00Z
    const b = result({ collected_at: "2026-01-01T09:00:00Z" });
    expect(groupResults([a, b], []).other.map((r) => r.id)).toEqual([b.id, a.id]);
  });
});

describe("flags and ranges in words", () => {
  it("names every flag and says how loudly to show it", () => {
    expect(flagWords("H")).toBe("High");
    expect(flagWords("L")).toBe("Low");
    expect(flagWords("HH")).toBe("Critical high");
    expect(flagWords("LL")).toBe("Critical low");
    expect(flagWords("A")).toBe("Abnormal");
    expect(flagWords(null)).toBe("");
    expect(flagSeverity("HH")).toBe("critical");
    expect(flagSeverity("LL")).toBe("critical");
    expect(flagSeverity("H")).toBe("abnormal");
    expect(flagSeverity("A")).toBe("abnormal");
    expect(flagSeverity("N")).toBe("normal");
    expect(flagSeverity(null)).toBe("normal");
  });

  it("never flags a result entered in error", () => {
    expect(isAbnormalResult(result({ flag: "H" }))).toBe(true);
    expect(isAbnormalResult(result({ flag: "N" }))).toBe(false);
    expect(isAbnormalResult(result({ flag: "H", status: "entered-in-error" }))).toBe(false);
  });

  it("writes ranges as people do, and back as the form takes them", () => {
    expect(rangeText({ low: 3.5, high: 5.1 })).toBe("3.5–5.1");
    expect(rangeText({ low: null, high: 200 })).toBe("<200");
    expect(rangeText({ low: 40, high: null })).toBe(">40");
    expect(rangeText({ low: -2, high: 2 })).toBe("-2–2");
    expect(rangeText(null)).toBe("");
    expect(rangeInput({ low: 3.5, high: 5.1 })).toBe("3.5-5.1");
    expect(rangeInput({ low: null, high: 200 })).toBe("<200");
  });

  it("writes values with their unit, and statuses in words", () => {
    expect(valueWithUnit(5.4, "mmol/L")).toBe("5.4 mmol/L");
    expect(valueWithUnit("Positive", null)).toBe("Positive");
    expect(statusWords("preliminary")).toBe("Preliminary");
    expect(statusWords("entered-in-error")).toBe("Entered in error");
    expect(statusWords("something-new")).toBe("something-new");
  });
});

describe("short names", () => {
  const tests: LabTestChoice[] = [
    { loinc: "2823-3", name: "Potassium [Moles/volume] in Serum or Plasma", short: "Potassium", unit: "mmol/L", panel: false },
    { loinc: "51990-0", name: "Basic metabolic panel - Blood", short: "BMP", unit: null, panel: true },
  ];
  it("uses the short name when the test is known, the name given otherwise", () => {
    const index = testIndex(tests);
    expect(shortName(index, "2823-3", "Potassium [Moles/volume] in Serum or Plasma")).toBe("Potassium");
    expect(shortName(index, "51990-0", "x")).toBe("BMP");
    expect(shortName(index, "99999-9", "Some rare test")).toBe("Some rare test");
    expect(shortName(testIndex([]), "2823-3", "Potassium long")).toBe("Potassium long");
  });
});

describe("trend of one test", () => {
  it("gives times ascending, abnormal values singled out, the latest range and unit", () => {
    const all = [
      result({ collected_at: T3, value: 5.9, flag: "H", range: { low: 3.5, high: 5.3 } }),
      result({ collected_at: T1, value: 4.1 }),
      result({ collected_at: T2, value: 3.1, flag: "L" }),
      result({ collected_at: T2, loinc: "2951-2", value: 140 }),
    ];
    const d = trendData(all, "2823-3");
    expect(d.times).toEqual([T1, T2, T3].map((t) => Date.parse(t) / 1000));
    expect(d.values).toEqual([4.1, 3.1, 5.9]);
    expect(d.abnormal).toEqual([null, 3.1, 5.9]);
    expect(d.range).toEqual({ low: 3.5, high: 5.3 });
    expect(d.unit).toBe("mmol/L");
    expect(d.otherUnits).toBe(0);
  });

  it("leaves out results entered in error, and ones in another unit", () => {
    const all = [
      result({ collected_at: T3, value: 50, status: "entered-in-error", flag: "HH" }),
      result({ collected_at: T2, value: 4.4 }),
      result({ collected_at: T1, value: 17, unit: "mg/dL" }),
    ];
    const d = trendData(all, "2823-3");
    expect(d.values).toEqual([4.4]);
    expect(d.abnormal).toEqual([null]);
    expect(d.otherUnits).toBe(1);
  });

  it("has nothing to plot for findings and text, which get a history instead", () => {
    const all = [
      result({ loinc: "5196-1", value: "Positive", value_kind: "coded", value_code: "10828004", unit: null, range: null, flag: "A", collected_at: T2 }),
      result({ loinc: "5196-1", value: "Negative", value_kind: "coded", unit: null, range: null, flag: "N", collected_at: T1, status: "entered-in-error" }),
    ];
    expect(plottable(all, "5196-1")).toBe(false);
    expect(trendData(all, "5196-1")).toMatchObject({ times: [], values: [], range: null, unit: null });
    expect(testHistory(all, "5196-1").map((r) => r.value)).toEqual(["Positive", "Negative"]);
    expect(plottable([result()], "2823-3")).toBe(true);
    expect(plottable([result({ status: "entered-in-error" })], "2823-3")).toBe(false);
  });
});

describe("what the forms send", () => {
  it("leaves empty fields out of a new result and reads the report", () => {
    expect(resultInput({ loinc: " 2823-3 ", value: " 4.2 ", unit: "", range: " ", flag: "", status: "final", at: "", report: "" })).toEqual({
      loinc: "2823-3",
      value: "4.2",
      status: "final",
    });
    expect(resultInput({ loinc: "1-8", name: "Rare", value: "7", unit: "U/L", range: "3-9", flag: "H", status: "preliminary", at: "2026-03-02 14:30", report: "12" })).toEqual({
      loinc: "1-8",
      name: "Rare",
      value: "7",
      unit: "U/L",
      range: "3-9",
      flag: "H",
      status: "preliminary",
      at: "2026-03-02 14:30",
      report_id: 12,
    });
  });

  it("drops the test's own unit for a finding or text, but keeps one typed on purpose", () => {
    expect(resultInput({ loinc: "2823-3", value: "<0.5", unit: "mmol/L" }, "mmol/L").unit).toBeUndefined();
    expect(resultInput({ loinc: "2823-3", value: "4.2", unit: "mmol/L" }, "mmol/L").unit).toBe("mmol/L");
    expect(resultInput({ loinc: "2823-3", value: "<0.5", unit: "mg/dL" }, "mmol/L").unit).toBe("mg/dL");
  });

  it("keeps the test in a correction, and sends an emptied unit or range as none", () => {
    const r = result({ value: 5.9, range: { low: 3.5, high: 5.1 }, flag: "H", status: "final" });
    const f = correctionForm(r);
    expect(f).toEqual({ value: "5.9", unit: "mmol/L", range: "3.5-5.1", flag: "", status: "final" });
    expect(correctionInput({ ...f, value: "4.9" }, r.unit)).toEqual({ loinc: "", value: "4.9", unit: "mmol/L", range: "3.5-5.1", status: "final" });
    expect(correctionInput({ ...f, value: "haemolysed", range: "" }, r.unit)).toEqual({ loinc: "", value: "haemolysed", unit: "", range: "", status: "final" });
    expect(correctionInput({ ...f, flag: "HH" }, r.unit).flag).toBe("HH");
  });
});

describe("errors beside their fields", () => {
  it("puts each field's problem beside it and says the rest above the button", () => {
    const err = {
      code: "invalid_input",
      message: "Please check the result.",
      fields: [
        { field: "value", message: "The value is not a number a lab reports." },
        { field: "range", message: "The reference range is not LOW-HIGH.", suggestion: "3.5-5.1" },
        { field: "name", message: "Give the test's name." },
      ],
    };
    const s = splitFieldErrors(err, ["value", "range"]);
    expect(s.fields.value?.message).toBe("The value is not a number a lab reports.");
    expect(s.fields.range?.suggestion).toBe("3.5-5.1");
    expect(s.fields.name).toBeUndefined();
    expect(s.message).toBe("Give the test's name.");
    expect(splitFieldErrors(err, ["value", "range", "name"]).message).toBeNull();
    expect(splitFieldErrors({ message: "Lab result 3 has already been corrected." }, ["value"])).toEqual({
      fields: {},
      message: "Lab result 3 has already been corrected.",
    });
  });
});

describe("values from other systems' files", () => {
  it("shows at most six significant digits, as a lab prints them", () => {
    expect(valueText(77.41418673109915)).toBe("77.4142");
    expect(valueText(162)).toBe("162");
    expect(valueText(5.4)).toBe("5.4");
    expect(valueText(0.000123456789)).toBe("0.000123457");
    expect(valueText("<0.5")).toBe("<0.5");
    expect(valueWithUnit(8.686388388458207, "mg/dL")).toBe("8.68639 mg/dL");
  });
});
