//! Clinic settings: idle logoff, the break-the-glass time box, alert thresholds, clinic hours.
//!
//! Stored as key/value rows inside the encrypted database; every change is audited.

use chrono::{DateTime, Datelike, FixedOffset, NaiveTime, Offset, Utc};
use rusqlite::Connection;
use serde::Serialize;

use chartroom_audit::format_time;
use rusqlite::params;

use crate::audit::Op;
use crate::roles::Permission;
use crate::CoreError;

/// Clinic opening hours, in the clinic's local time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ClinicHours {
    pub open: NaiveTime,
    pub close: NaiveTime,
}

/// The longest break-the-glass time box a clinic may set, in minutes.
pub(crate) const MAX_BREAK_GLASS_MINUTES: u32 = 720;

/// The clinic's settings, with their defaults.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Settings {
    /// A session locks after this long without use.
    pub idle_timeout_minutes: u32,
    /// How long a break-the-glass grant lasts.
    pub break_glass_minutes: u32,
    /// Alert when one user opens this many distinct charts …
    pub alert_chart_burst_count: u32,
    /// … within this many minutes.
    pub alert_chart_burst_minutes: u32,
    /// Alert at this many failed unlocks of one account in a row.
    pub alert_failed_unlocks: u32,
    /// Alert on patient-data access outside these hours (none: the rule is off).
    #[serde(serialize_with = "ser_hours")]
    #[cfg_attr(feature = "ts", ts(type = "string"))]
    pub clinic_hours: Option<ClinicHours>,
    /// The days the clinic is open (Monday first).
    #[serde(serialize_with = "ser_days")]
    #[cfg_attr(feature = "ts", ts(type = "string"))]
    pub clinic_days: [bool; 7],
    /// The clinic's UTC offset in minutes, as versions before the time zone set it: when
    /// set, clinic hours are read at this fixed offset. New clinics set the time zone.
    pub clinic_utc_offset_minutes: Option<i32>,
    /// The clinic's time zone (an IANA name): every local time shown or typed is in it.
    /// By default this computer's zone.
    #[serde(serialize_with = "ser_zone")]
    #[cfg_attr(feature = "ts", ts(type = "string"))]
    pub clinic_time_zone: crate::ClinicZone,
    /// How typed dates with slashes or dots are read: `ymd`, `dmy` (18/12/1978) or `mdy`
    /// (12/18/1978). Dates are always shown unambiguously (18 Dec 1978).
    pub date_format: DateFormat,
    /// The units vital signs are shown and typed in: `metric` (kg, cm, °C) or `us` (lb,
    /// in, °F). Values are stored in UCUM's metric units either way, and a value typed with
    /// its unit (150lb, 98.6F) is read in that unit whatever this says.
    pub units: crate::chart::measure::Units,
}

/// The order of day and month in a date typed with slashes or dots.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum DateFormat {
    #[default]
    Ymd,
    Dmy,
    Mdy,
}

impl DateFormat {
    pub fn parse(text: &str) -> Result<DateFormat, CoreError> {
        match text.trim().to_ascii_lowercase().as_str() {
            "ymd" => Ok(DateFormat::Ymd),
            "dmy" => Ok(DateFormat::Dmy),
            "mdy" => Ok(DateFormat::Mdy),
            _ => Err(CoreError::InvalidInput(
                "The date format is ymd (1978-12-18), dmy (18/12/1978) or mdy (12/18/1978).".into(),
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DateFormat::Ymd => "ymd",
            DateFormat::Dmy => "dmy",
            DateFormat::Mdy => "mdy",
        }
    }
}

fn ser_zone<S: serde::Serializer>(z: &crate::ClinicZone, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(z.name())
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            idle_timeout_minutes: 10,
            break_glass_minutes: 60,
            alert_chart_burst_count: 30,
            alert_chart_burst_minutes: 10,
            alert_failed_unlocks: 5,
            clinic_hours: None,
            clinic_days: [true, true, true, true, true, false, false],
            clinic_utc_offset_minutes: None,
            clinic_time_zone: crate::ClinicZone::system(),
            date_format: DateFormat::Ymd,
            units: crate::chart::measure::Units::Metric,
        }
    }
}

fn ser_hours<S: serde::Serializer>(h: &Option<ClinicHours>, s: S) -> Result<S::Ok, S::Error> {
    match h {
        Some(h) => s.serialize_str(&format!(
            "{}-{}",
            h.open.format("%H:%M"),
            h.close.format("%H:%M")
        )),
        None => s.serialize_str("off"),
    }
}

fn ser_days<S: serde::Serializer>(d: &[bool; 7], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&days_text(d))
}

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn days_text(d: &[bool; 7]) -> String {
    DAY_NAMES
        .iter()
        .zip(d)
        .filter(|(_, on)| **on)
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(",")
}

/// The setting names, as `settings set` takes them.
pub const SETTING_KEYS: [&str; 11] = [
    "idle_timeout_minutes",
    "break_glass_minutes",
    "alert_chart_burst_count",
    "alert_chart_burst_minutes",
    "alert_failed_unlocks",
    "clinic_hours",
    "clinic_days",
    "clinic_utc_offset",
    "clinic_time_zone",
    "date_format",
    "units",
];

/// Whether a setting decides which alerts are raised: changing one raises an alert itself.
pub(crate) fn governs_alerts(key: &str) -> bool {
    key.starts_with("alert_")
        || matches!(
            key,
            "clinic_hours"
                | "clinic_days"
                | "clinic_utc_offset"
                | "clinic_time_zone"
                | "break_glass_minutes"
        )
}

fn number(key: &str, value: &str, min: u32, max: u32) -> Result<u32, CoreError> {
    value
        .trim()
        .parse::<u32>()
        .ok()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| {
            CoreError::InvalidInput(format!("{key} must be a whole number from {min} to {max}."))
        })
}

impl Settings {
    /// The clinic's time zone.
    pub fn zone(&self) -> crate::ClinicZone {
        self.clinic_time_zone
    }

    /// Reads the stored settings over the defaults.
    pub(crate) fn load(conn: &Connection) -> Result<Settings, CoreError> {
        let mut settings = Settings::default();
        let mut stmt = conn.prepare_cached("SELECT key, value FROM settings")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        for row in rows {
            let (key, value) = row?;
            // A value that no longer parses (an older or damaged row) keeps the default
            // rather than locking everyone out of the clinic.
            let _ = settings.apply(&key, &value);
        }
        Ok(settings)
    }

    /// Sets one setting from its text form, validating it. Returns the normalised text.
    pub fn apply(&mut self, key: &str, value: &str) -> Result<String, CoreError> {
        let value = value.trim();
        match key {
            "idle_timeout_minutes" => self.idle_timeout_minutes = number(key, value, 1, 240)?,
            "break_glass_minutes" => {
                self.break_glass_minutes = number(key, value, 5, MAX_BREAK_GLASS_MINUTES)?
            }
            "alert_chart_burst_count" => {
                self.alert_chart_burst_count = number(key, value, 2, 10_000)?
            }
            "alert_chart_burst_minutes" => {
                self.alert_chart_burst_minutes = number(key, value, 1, 1440)?
            }
            "alert_failed_unlocks" => self.alert_failed_unlocks = number(key, value, 1, 1000)?,
            "clinic_hours" => {
                self.clinic_hours = if value.eq_ignore_ascii_case("off") {
                    None
                } else {
                    Some(parse_hours(value)?)
                };
                return Ok(match self.clinic_hours {
                    Some(h) => format!("{}-{}", h.open.format("%H:%M"), h.close.format("%H:%M")),
                    None => "off".into(),
                });
            }
            "clinic_days" => {
                self.clinic_days = parse_days(value)?;
                return Ok(days_text(&self.clinic_days));
            }
            "clinic_utc_offset" => {
                self.clinic_utc_offset_minutes = if value.eq_ignore_ascii_case("local") {
                    None
                } else {
                    Some(parse_offset(value)?)
                };
                return Ok(value.to_ascii_lowercase());
            }
            "date_format" => {
                self.date_format = DateFormat::parse(value)?;
                return Ok(self.date_format.as_str().to_owned());
            }
            "units" => {
                self.units = crate::chart::measure::Units::parse(value)?;
                return Ok(self.units.as_str().to_owned());
            }
            "clinic_time_zone" => {
                self.clinic_time_zone = if value.eq_ignore_ascii_case("local") {
                    crate::ClinicZone::system()
                } else {
                    crate::ClinicZone::parse(value)?
                };
                return Ok(self.clinic_time_zone.name().to_owned());
            }
            _ => {
                return Err(CoreError::InvalidInput(format!(
                    "There is no setting called \"{}\". Settings are: {}.",
                    key.chars().take(40).collect::<String>(),
                    SETTING_KEYS.join(", ")
                )))
            }
        }
        Ok(value.to_owned())
    }

    /// Whether `t` falls outside clinic hours (false when no hours are set).
    pub fn outside_clinic_hours(&self, t: DateTime<Utc>) -> bool {
        let Some(hours) = self.clinic_hours else {
            return false;
        };
        let (day, now) = match self.clinic_utc_offset_minutes {
            Some(m) => {
                let local = t.with_timezone(&FixedOffset::east_opt(m * 60).unwrap_or(Utc.fix()));
                (local.weekday(), local.time())
            }
            None => {
                let local = self.clinic_time_zone.local(t);
                (local.weekday(), local.time())
            }
        };
        if !self.clinic_days[day.num_days_from_monday() as usize] {
            return true;
        }
        if hours.open <= hours.close {
            now < hours.open || now >= hours.close
        } else {
            // Overnight hours, e.g. 20:00-06:00.
            now < hours.open && now >= hours.close
        }
    }
}

fn parse_hours(value: &str) -> Result<ClinicHours, CoreError> {
    let bad = || {
        CoreError::InvalidInput(
            "Clinic hours look like 07:30-18:00 (24-hour clock), or \"off\".".into(),
        )
    };
    let (a, b) = value.split_once('-').ok_or_else(bad)?;
    let open = NaiveTime::parse_from_str(a.trim(), "%H:%M").map_err(|_| bad())?;
    let close = NaiveTime::parse_from_str(b.trim(), "%H:%M").map_err(|_| bad())?;
    if open == close {
        return Err(bad());
    }
    Ok(ClinicHours { open, close })
}

fn parse_days(value: &str) -> Result<[bool; 7], CoreError> {
    let bad = || {
        CoreError::InvalidInput(
            "Clinic days look like mon-fri or mon,tue,thu (three-letter day names).".into(),
        )
    };
    let index = |name: &str| -> Result<usize, CoreError> {
        let name = name.trim().to_ascii_lowercase();
        let short: String = name.chars().take(3).collect();
        DAY_NAMES.iter().position(|d| *d == short).ok_or_else(bad)
    };
    let mut days = [false; 7];
    for part in value.split(',') {
        if let Some((a, b)) = part.split_once('-') {
            let (a, b) = (index(a)?, index(b)?);
            if a > b {
                return Err(bad());
            }
            days[a..=b].iter_mut().for_each(|d| *d = true);
        } else {
            days[index(part)?] = true;
        }
    }
    Ok(days)
}

fn parse_offset(value: &str) -> Result<i32, CoreError> {
    let bad = || {
        CoreError::InvalidInput(
            "The clinic's UTC offset looks like +01:00 or -05:00, or \"local\".".into(),
        )
    };
    let (sign, rest) = match value.as_bytes().first() {
        Some(b'+') => (1, &value[1..]),
        Some(b'-') => (-1, &value[1..]),
        _ => return Err(bad()),
    };
    let (h, m) = rest.split_once(':').ok_or_else(bad)?;
    let h: i32 = h.parse().map_err(|_| bad())?;
    let m: i32 = m.parse().map_err(|_| bad())?;
    if !(0..=14).contains(&h) || !(0..60).contains(&m) {
        return Err(bad());
    }
    Ok(sign * (h * 60 + m))
}
impl crate::Session {
    /// Changes one setting (see [`crate::SETTING_KEYS`]); returns the settings as they are now.
    pub fn set_setting(&mut self, key: &str, value: &str) -> Result<Settings, CoreError> {
        let mut next = self.settings.clone();
        let normalised = next.apply(key, value)?;
        let key_owned = key.to_owned();
        self.run(
            Permission::ManageSettings,
            Op::update("settings.update")
                .object("Setting", key)
                .detail(format!("{key} = {normalised}")),
            false,
            |tx, _, ctx| {
                tx.execute(
                    "INSERT INTO settings (key, value, updated_at, updated_by) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value,
                        updated_at = excluded.updated_at, updated_by = excluded.updated_by",
                    params![key_owned, normalised, format_time(ctx.now), ctx.actor.name],
                )?;
                // The time zone supersedes the fixed offset of earlier versions.
                if key_owned == "clinic_time_zone" {
                    tx.execute("DELETE FROM settings WHERE key = 'clinic_utc_offset'", [])?;
                }
                Ok(())
            },
        )?;
        if key == "clinic_time_zone" {
            next.clinic_utc_offset_minutes = None;
        }
        self.settings = next;
        Ok(self.settings.clone())
    }
}
