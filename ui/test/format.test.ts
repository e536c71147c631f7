import { describe, expect, it, afterEach } from "vitest";
import { ageOn, axisDate, displayName, formatDate, formatDateTime, originWords, sourceLabel, timeLeft, withUnit, setClinicZone, clinicToday, addDays, mondayOf, clockTime, minutesSince } from "../src/lib/format";

describe("dates", () => {
  it("writes calendar dates unambiguously, without a zone shift", () => {
    expect(formatDate("2024-03-02")).toBe("02 Mar 2024");
    expect(formatDate("1999-12-31")).toBe("31 Dec 1999");
    expect(formatDate(null)).toBe("—");
    expect(formatDate("not a date")).toBe("not a date");
    expect(formatDate("2024-13-01")).toBe("2024-13-01");
  });

  it("writes moments in UTC when asked", () => {
    expect(formatDateTime("2026-03-02T14:05:09.123456Z", "UTC")).toBe("02 Mar 2026 14:05 UTC");
    expect(formatDateTime(undefined)).toBe("—");
  });

  it("counts age in whole years, the day before and on the birthday", () => {
    expect(ageOn("2000-03-02", new Date(2024, 2, 1))).toBe(23);
    expect(ageOn("2000-03-02", new Date(2024, 2, 2))).toBe(24);
    expect(ageOn("2024-01-01", new Date(2024, 5, 1))).toBe(0);
  });

  it("says how long a break-the-glass grant has left", () => {
    const now = new Date("2026-01-01T10:00:00Z");
    expect(timeLeft("2026-01-01T11:00:00Z", now)).toBe("60 minutes left");
    expect(timeLeft("2026-01-01T10:00:30Z", now)).toBe("1 minute left");
    expect(timeLeft("2026-01-01T09:59:00Z", now)).toBe("expired");
    expect(timeLeft("2026-01-01T13:30:00Z", now)).toBe("3 h 30 min left");
  });
});

describe("names and units", () => {
  it("puts the family name first, as registered, with a preferred name", () => {
    expect(displayName({ family: "García", given: "Ana", preferred: "Annie" })).toBe("García, Ana (Annie)");
    expect(displayName({ family: "Lee", given: "Jo", preferred: null })).toBe("Lee, Jo");
    expect(displayName({ family: "<b>x</b>", given: "Jo", preferred: "Jo" })).toBe("<b>x</b>, Jo");
  });

  it("gives every number its unit", () => {
    expect(withUnit("systolic", 120)).toBe("120 mmHg");
    expect(withUnit("temperature", 37.25)).toBe("37.3 °C");
    expect(withUnit("bmi", 22.04)).toBe("22.0 kg/m²");
  });
});

describe("plot axis", () => {
  it("labels days unambiguously, with the time only on short spans", () => {
    const t = new Date(2024, 2, 2, 14, 5).getTime() / 1000;
    expect(axisDate(t, 400 * 86_400)).toBe("02 Mar 2024");
    expect(axisDate(t, 3600)).toBe("02 Mar 14:05");
  });
});

describe("imported items", () => {
  const origins = [
    { item: "problem", id: 7, source: "urn:chartroom:vault:3f9a00000000000000000000000c21d", signed_by: "SHA256:ab12", imported_at: "2026-12-01T10:00:00.000000Z", foreign: false },
    { item: "note", id: 7, source: "urn:chartroom:vault:0123456789abcdef0123456789abcdef", signed_by: null, imported_at: "2026-11-30T10:00:00.000000Z", foreign: false },
    { item: "lab_result", id: 3, source: "https://github.com/synthetichealth/synthea", signed_by: null, imported_at: "2026-12-07T10:00:00.000000Z", foreign: true },
  ];

  it("says an item from another system's FHIR was recorded there, naming the system", () => {
    expect(originWords(origins, "lab_result", 3)).toBe(
      "Imported 07 Dec 2026 from https://github.com/synthetichealth/synthea, recorded and signed in that system (FHIR from another system)",
    );
    expect(sourceLabel("https://" + "x".repeat(80))).toHaveLength(60);
  });

  it("says where an item came from and which key signed it", () => {
    expect(originWords(origins, "problem", 7)).toBe("Imported 01 Dec 2026 from vault 3f9a…c21d, signed there by key SHA256:ab12");
    expect(originWords(origins, "note", 7)).toContain("not signed");
  });

  it("says nothing of an item made here, even with the same id in another section", () => {
    expect(originWords(origins, "medication", 7)).toBeNull();
    expect(originWords(origins, "problem", 8)).toBeNull();
    expect(originWords(undefined, "problem", 7)).toBeNull();
  });

  it("shortens a vault's id", () => {
    expect(sourceLabel("urn:chartroom:vault:0123456789abcdef0123456789abcdef")).toBe("vault 0123…cdef");
  });
});

describe("times in the clinic's zone", () => {
  afterEach(() => setClinicZone(undefined));

  it("shows a moment in the clinic's zone, whatever this computer's", () => {
    setClinicZone("America/Chicago");
    // 15:00 UTC on a winter day is 09:00 in Chicago; in July it is 10:00 (daylight time).
    expect(formatDateTime("2026-01-14T15:00:00Z")).toBe("14 Jan 2026 09:00");
    expect(formatDateTime("2026-07-14T15:00:00Z")).toBe("14 Jul 2026 10:00");
    setClinicZone("Europe/Berlin");
    expect(formatDateTime("2026-01-14T23:30:00Z")).toBe("15 Jan 2026 00:30");
    expect(clinicToday(new Date("2026-01-14T23:30:00Z"))).toBe("2026-01-15");
  });

  it("ignores a zone name it cannot use", () => {
    setClinicZone("Mars/Olympus");
    expect(formatDateTime("2026-01-14T15:00:00Z")).toMatch(/^14 Jan 2026 \d\d:\d\d$/);
  });

  it("walks calendar days and weeks without a time-zone shift", () => {
    expect(addDays("2026-03-28", 2)).toBe("2026-03-30");
    expect(addDays("2026-12-31", 1)).toBe("2027-01-01");
    expect(mondayOf("2026-12-06")).toBe("2026-11-30");
    expect(mondayOf("2026-12-07")).toBe("2026-12-07");
    expect(clockTime("2026-03-04T09:15:00+01:00")).toBe("09:15");
    expect(minutesSince("2026-03-04T09:00:00+01:00", new Date("2026-03-04T08:12:30Z"))).toBe(12);
  });
});
