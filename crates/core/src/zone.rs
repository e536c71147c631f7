//! The clinic's time zone: every local time Chartroom shows or reads is in it, every instant
//! is stored in UTC.
//!
//! The zone is an IANA name (`Europe/Berlin`, `America/Chicago`) from the `clinic_time_zone`
//! setting, by default this computer's. Rules come from the IANA database as `chrono-tz`
//! carries it, never from a hand-written table. A local time that does not exist (the hour
//! skipped when clocks go forward) is refused; one that exists twice (the hour repeated when
//! clocks go back) is refused with both readings spelled out, so the person typing chooses.

use chrono::{DateTime, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

use crate::CoreError;

/// A clinic's time zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClinicZone(Tz);

impl Default for ClinicZone {
    fn default() -> Self {
        ClinicZone::system()
    }
}

impl ClinicZone {
    /// Reads an IANA zone name, case as written or not ("europe/berlin" reads as
    /// "Europe/Berlin").
    pub fn parse(name: &str) -> Result<ClinicZone, CoreError> {
        let name = name.trim();
        name.parse::<Tz>()
            .or_else(|_| Tz::from_str_insensitive(name))
            .map(ClinicZone)
            .map_err(|_| {
                CoreError::InvalidInput(format!(
                    "\"{}\" is not a time zone Chartroom knows. Use a name from the IANA time-zone database, such as Europe/Berlin or America/Chicago.",
                    name.chars().take(40).collect::<String>()
                ))
            })
    }

    /// This computer's zone, or UTC when it cannot be told.
    pub fn system() -> ClinicZone {
        std::env::var("TZ")
            .ok()
            .map(|tz| tz.trim_start_matches(':').to_owned())
            .and_then(|tz| ClinicZone::parse(&tz).ok())
            .or_else(|| {
                iana_time_zone::get_timezone()
                    .ok()
                    .and_then(|name| ClinicZone::parse(&name).ok())
            })
            .unwrap_or(ClinicZone(Tz::UTC))
    }

    pub fn utc() -> ClinicZone {
        ClinicZone(Tz::UTC)
    }

    /// The zone's IANA name.
    pub fn name(&self) -> &'static str {
        self.0.name()
    }

    pub fn tz(&self) -> Tz {
        self.0
    }

    /// The instant as the clinic's clocks show it.
    pub fn local(&self, t: DateTime<Utc>) -> DateTime<Tz> {
        t.with_timezone(&self.0)
    }

    /// The instant in RFC 3339 with the clinic's offset: "2026-03-02T09:00:00+01:00".
    pub fn rfc3339(&self, t: DateTime<Utc>) -> String {
        self.local(t).format("%Y-%m-%dT%H:%M:%S%:z").to_string()
    }

    /// The instant for people: "2026-03-02 09:00".
    pub fn show(&self, t: DateTime<Utc>) -> String {
        self.local(t).format("%Y-%m-%d %H:%M").to_string()
    }

    /// The clinic's date at an instant.
    pub fn date_of(&self, t: DateTime<Utc>) -> NaiveDate {
        self.local(t).date_naive()
    }

    /// The instant of a local date and time, refusing a time the clocks skip and asking
    /// which one is meant when they show it twice.
    pub fn resolve(&self, label: &str, local: NaiveDateTime) -> Result<DateTime<Utc>, CoreError> {
        match self.0.from_local_datetime(&local) {
            LocalResult::Single(t) => Ok(t.with_timezone(&Utc)),
            LocalResult::None => Err(CoreError::InvalidInput(format!(
                "The {label} {} does not exist in {}: the clocks go forward then. Choose a time after the change.",
                local.format("%Y-%m-%d %H:%M"),
                self.name()
            ))),
            LocalResult::Ambiguous(first, second) => Err(CoreError::InvalidInput(format!(
                "The {label} {} happens twice in {} (the clocks go back then). Write {} for the first or {} for the second.",
                local.format("%Y-%m-%d %H:%M"),
                self.name(),
                first.format("%Y-%m-%dT%H:%M%:z"),
                second.format("%Y-%m-%dT%H:%M%:z"),
            ))),
        }
    }

    /// The instant a local time of day falls on, on `date`, for rules that must always give
    /// an answer (working hours, the start of a day): a skipped time moves past the gap, a
    /// repeated time takes its first occurrence.
    pub fn at(&self, date: NaiveDate, time: NaiveTime) -> DateTime<Utc> {
        let mut local = date.and_time(time);
        for _ in 0..4 {
            match self.0.from_local_datetime(&local) {
                LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => {
                    return t.with_timezone(&Utc)
                }
                LocalResult::None => local += chrono::Duration::minutes(30),
            }
        }
        local.and_utc()
    }

    /// The first instant of a local date.
    pub fn day_start(&self, date: NaiveDate) -> DateTime<Utc> {
        self.at(date, NaiveTime::MIN)
    }

    /// The instants a local date runs from (inclusive) and to (exclusive): 23, 24 or 25 hours.
    pub fn day_bounds(&self, date: NaiveDate) -> (DateTime<Utc>, DateTime<Utc>) {
        let next = date.succ_opt().unwrap_or(date);
        (self.day_start(date), self.day_start(next))
    }

    /// Reads a time as people type it: RFC 3339 with an offset (taken as written), or a
    /// local `YYYY-MM-DD HH:MM`, `YYYY-MM-DDTHH:MM[:SS]` or `YYYY-MM-DD` (midnight) in the
    /// clinic's zone.
    pub fn parse_instant(&self, label: &str, text: &str) -> Result<DateTime<Utc>, CoreError> {
        let t = self.parse_any(label, text)?;
        in_range(label, self.date_of(t))?;
        Ok(t)
    }

    fn parse_any(&self, label: &str, text: &str) -> Result<DateTime<Utc>, CoreError> {
        let t = text.trim();
        if let Ok(d) = DateTime::parse_from_rfc3339(t) {
            return Ok(d.with_timezone(&Utc));
        }
        for format in [
            "%Y-%m-%d %H:%M",
            "%Y-%m-%dT%H:%M",
            "%Y-%m-%dT%H:%M:%S",
            "%Y-%m-%d %H:%M:%S",
        ] {
            if let Ok(local) = NaiveDateTime::parse_from_str(t, format) {
                return self.resolve(label, local);
            }
        }
        if let Ok(date) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
            return Ok(self.day_start(date));
        }
        Err(CoreError::InvalidInput(format!(
            "The {label} \"{}\" is not a time. Write 2026-03-02 14:30 (the clinic's time, {}) or 2026-03-02T14:30:00+01:00.",
            t.chars().take(30).collect::<String>(),
            self.name()
        )))
    }
}

/// The years Chartroom reads dates and times in: no record is older, no plan longer.
pub const FIRST_YEAR: i32 = 1900;
pub const LAST_YEAR: i32 = 2200;

fn in_range(label: &str, date: NaiveDate) -> Result<NaiveDate, CoreError> {
    use chrono::Datelike as _;
    if (FIRST_YEAR..=LAST_YEAR).contains(&date.year()) {
        Ok(date)
    } else {
        Err(CoreError::InvalidInput(format!(
            "The {label} is outside the years {FIRST_YEAR} to {LAST_YEAR}."
        )))
    }
}

/// Reads a calendar date, `YYYY-MM-DD`, from 1900 to 2200.
pub fn parse_date(label: &str, text: &str) -> Result<NaiveDate, CoreError> {
    let date = NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").map_err(|_| {
        CoreError::InvalidInput(format!(
            "The {label} \"{}\" is not a date. Write it as 2026-03-02.",
            text.trim().chars().take(30).collect::<String>()
        ))
    })?;
    in_range(label, date)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone(name: &str) -> ClinicZone {
        ClinicZone::parse(name).expect("known zone")
    }

    fn local(text: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M").expect("time")
    }

    #[test]
    fn names_are_read_from_the_iana_database() {
        assert_eq!(zone("Europe/Berlin").name(), "Europe/Berlin");
        assert_eq!(zone("america/chicago").name(), "America/Chicago");
        let e = ClinicZone::parse("Mars/Olympus").expect_err("unknown");
        assert!(e.to_string().contains("IANA"), "{e}");
    }

    #[test]
    fn nine_oclock_stays_nine_oclock_across_both_changes_of_the_year() {
        for (name, spring, autumn) in [
            (
                "Europe/Berlin",
                ("2026-03-28", "2026-03-30"),
                ("2026-10-24", "2026-10-26"),
            ),
            (
                "America/Chicago",
                ("2026-03-07", "2026-03-09"),
                ("2026-10-31", "2026-11-02"),
            ),
        ] {
            let z = zone(name);
            for (before, after) in [spring, autumn] {
                let a = z
                    .parse_instant("time", &format!("{before} 09:00"))
                    .expect("before");
                let b = z
                    .parse_instant("time", &format!("{after} 09:00"))
                    .expect("after");
                assert_eq!(z.show(a), format!("{before} 09:00"));
                assert_eq!(z.show(b), format!("{after} 09:00"));
                // Two calendar days apart, but not 48 hours: the clocks moved by one.
                assert_eq!((b - a).num_hours().abs_diff(48), 1, "{name} {before}");
            }
        }
    }

    #[test]
    fn days_of_the_changes_are_23_and_25_hours_long() {
        let z = zone("Europe/Berlin");
        let day = |d: &str| {
            let (a, b) = z.day_bounds(parse_date("date", d).expect("date"));
            (b - a).num_hours()
        };
        assert_eq!(day("2026-03-29"), 23);
        assert_eq!(day("2026-10-25"), 25);
        assert_eq!(day("2026-06-01"), 24);
        let z = zone("America/Chicago");
        let (a, _) = z.day_bounds(parse_date("date", "2026-03-08").expect("date"));
        assert_eq!(z.rfc3339(a), "2026-03-08T00:00:00-06:00");
    }

    #[test]
    fn a_time_the_clocks_skip_is_refused() {
        let e = zone("Europe/Berlin")
            .resolve("appointment time", local("2026-03-29 02:30"))
            .expect_err("skipped");
        assert!(e.to_string().contains("does not exist"), "{e}");
        let e = zone("America/Chicago")
            .parse_instant("appointment time", "2026-03-08 02:15")
            .expect_err("skipped");
        assert!(e.to_string().contains("America/Chicago"), "{e}");
    }

    #[test]
    fn a_time_the_clocks_show_twice_offers_both_and_either_offset_is_taken() {
        let z = zone("America/Chicago");
        let e = z
            .parse_instant("appointment time", "2026-11-01 01:30")
            .expect_err("ambiguous");
        let text = e.to_string();
        assert!(text.contains("2026-11-01T01:30-05:00"), "{text}");
        assert!(text.contains("2026-11-01T01:30-06:00"), "{text}");
        let first = z
            .parse_instant("t", "2026-11-01T01:30:00-05:00")
            .expect("first");
        let second = z
            .parse_instant("t", "2026-11-01T01:30:00-06:00")
            .expect("second");
        assert_eq!((second - first).num_minutes(), 60);
        // Rules that must answer take the first.
        let d = parse_date("date", "2026-11-01").expect("date");
        assert_eq!(
            z.at(d, NaiveTime::from_hms_opt(1, 30, 0).expect("t")),
            first
        );
        // And a skipped working-hours start moves past the gap.
        let d = parse_date("date", "2026-03-08").expect("date");
        let t = z.at(d, NaiveTime::from_hms_opt(2, 0, 0).expect("t"));
        assert_eq!(z.show(t), "2026-03-08 03:00");
    }

    #[test]
    fn offsets_written_out_win_over_the_clinic_zone() {
        let z = zone("Europe/Berlin");
        let t = z.parse_instant("t", "2026-07-01T09:00:00Z").expect("utc");
        assert_eq!(z.show(t), "2026-07-01 11:00");
        let t = z.parse_instant("t", "2026-07-01 09:00").expect("local");
        assert_eq!(t.to_rfc3339(), "2026-07-01T07:00:00+00:00");
        assert!(z.parse_instant("t", "tomorrow").is_err());
        // Far-off years are refused in words, never overflow later arithmetic.
        for far in ["+262142-12-31 23:50", "1899-12-31 10:00", "2201-01-01"] {
            let e = z.parse_instant("time", far).expect_err(far);
            assert!(e.to_string().contains("1900 to 2200"), "{far}: {e}");
        }
        assert!(parse_date("date", "+262142-12-15").is_err());
    }
}
