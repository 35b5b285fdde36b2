//! Working hours: weekly hours in an IANA time zone, a calendar of holidays, moved working days
//! and shortened pre-holiday days, and the admin's "closed now" switch.
//!
//! Time zones come from `chrono-tz`, which compiles the IANA database into the binary: the answer
//! for `Asia/Novosibirsk` is the same on every machine, including containers without
//! `/usr/share/zoneinfo`, and `chrono` is already what the appeals store uses. (`jiff` would read
//! the system database by default and bring a second date-time type into the workspace.)

use std::collections::BTreeSet;
use std::fmt;

use chrono::{DateTime, Datelike, NaiveDate, Timelike, Utc};
use chrono_tz::Tz;

/// Weekday names in hours entries, Monday first (index = `Weekday::num_days_from_monday`).
const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
/// Weekday names for messages.
pub(crate) const DAY_NAMES: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// One hours entry, e.g. `mon-fri 09:00-18:00`: open on the marked weekdays from `from` up to
/// (not including) `to`, in minutes since local midnight (`to` may be 24:00 = 1440).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hours {
    /// Open on these weekdays, Monday first.
    pub days: [bool; 7],
    /// Opening minute of the day.
    pub from: u32,
    /// Closing minute of the day (exclusive).
    pub to: u32,
    /// The entry as written, for messages.
    pub text: String,
}

/// Why an hours entry cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HoursError {
    /// Not `DAYS HH:MM-HH:MM`.
    #[error("hours {0:?} must look like \"mon-fri 09:00-18:00\"")]
    Shape(String),
    /// A weekday name that is not mon…sun (or `daily`).
    #[error("unknown weekday {0:?} (use mon tue wed thu fri sat sun, or daily)")]
    Day(String),
    /// A time that is not HH:MM in 00:00…24:00.
    #[error("time {0:?} must be HH:MM between 00:00 and 24:00")]
    Time(String),
    /// Closing not after opening.
    #[error("hours {0:?} close before they open; split hours past midnight into two entries")]
    Order(String),
}

impl Hours {
    /// Parses `mon-fri 09:00-18:00`, `mon,wed,fri 09:00-13:00`, `sat 10:00-14:00`,
    /// `daily 00:00-24:00`. A range of days may wrap (`fri-mon`).
    pub fn parse(text: &str) -> Result<Hours, HoursError> {
        let shape = || HoursError::Shape(text.to_owned());
        let mut words = text.split_whitespace();
        let (Some(days_text), Some(times), None) = (words.next(), words.next(), words.next())
        else {
            return Err(shape());
        };
        let mut days = [false; 7];
        if days_text.eq_ignore_ascii_case("daily") {
            days = [true; 7];
        } else {
            for part in days_text.split(',') {
                let day = |d: &str| {
                    DAYS.iter()
                        .position(|n| n.eq_ignore_ascii_case(d))
                        .ok_or_else(|| HoursError::Day(d.to_owned()))
                };
                match part.split_once('-') {
                    Some((a, b)) => {
                        let (a, b) = (day(a)?, day(b)?);
                        let mut i = a;
                        loop {
                            days[i] = true;
                            if i == b {
                                break;
                            }
                            i = (i + 1) % 7;
                        }
                    }
                    None => days[day(part)?] = true,
                }
            }
        }
        let (from, to) = times.split_once('-').ok_or_else(shape)?;
        let (from, to) = (minute(from)?, minute(to)?);
        if to <= from {
            return Err(HoursError::Order(text.to_owned()));
        }
        Ok(Hours {
            days,
            from,
            to,
            text: text.to_owned(),
        })
    }

    /// The first weekday (Monday = 0) on which `self` and `other` are both open at some minute.
    pub fn overlap(&self, other: &Hours) -> Option<usize> {
        (0..7).find(|&d| {
            self.days[d] && other.days[d] && self.from < other.to && other.from < self.to
        })
    }
}

fn minute(t: &str) -> Result<u32, HoursError> {
    let bad = || HoursError::Time(t.to_owned());
    let (h, m) = t.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(bad());
    }
    let h: u32 = h.parse().map_err(|_| bad())?;
    let m: u32 = m.parse().map_err(|_| bad())?;
    if m > 59 || h > 24 || (h == 24 && m != 0) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

/// Dates that break the weekly pattern (the Russian production calendar is the example).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Calendar {
    /// Closed all day (public holidays and the weekdays they were moved to).
    pub holidays: BTreeSet<NaiveDate>,
    /// Working days moved onto a weekend: open with Monday's hours.
    pub workdays: BTreeSet<NaiveDate>,
    /// Pre-holiday days one hour shorter (Labour Code art. 95): the day's last closing time
    /// comes an hour early.
    pub short_days: BTreeSet<NaiveDate>,
}

/// A weekly timetable in one time zone with its calendar and the "closed now" switch.
#[derive(Debug, Clone)]
pub struct Timetable {
    /// Local time of the service.
    pub tz: Tz,
    /// Weekly hours; entries never overlap (the checker refuses that).
    pub hours: Vec<Hours>,
    /// Exceptions by date.
    pub calendar: Calendar,
    /// The admin's override: closed whatever the hours say.
    pub closed_now: bool,
}

/// Why the timetable says open or closed, for the simulator and the call's path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Inside an hours entry.
    Open,
    /// Outside the hours of an ordinary day.
    AfterHours,
    /// The date is a holiday in the calendar.
    Holiday,
    /// The admin's `closed_now` switch is on.
    ClosedNow,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Open => "open",
            Verdict::AfterHours => "after hours",
            Verdict::Holiday => "holiday",
            Verdict::ClosedNow => "closed by the admin",
        })
    }
}

impl Timetable {
    /// Open or closed at `at`, and why.
    pub fn verdict(&self, at: DateTime<Utc>) -> Verdict {
        if self.closed_now {
            return Verdict::ClosedNow;
        }
        let local = at.with_timezone(&self.tz);
        let date = local.date_naive();
        if self.calendar.holidays.contains(&date) {
            return Verdict::Holiday;
        }
        let weekday = if self.calendar.workdays.contains(&date) {
            0
        } else {
            local.weekday().num_days_from_monday() as usize
        };
        let minute = local.hour() * 60 + local.minute();
        let today: Vec<&Hours> = self.hours.iter().filter(|h| h.days[weekday]).collect();
        let mut closing = today.iter().map(|h| h.to).max().unwrap_or(0);
        if self.calendar.short_days.contains(&date) {
            closing = closing.saturating_sub(60);
        }
        let open = today
            .iter()
            .any(|h| h.from <= minute && minute < h.to.min(closing));
        if open {
            Verdict::Open
        } else {
            Verdict::AfterHours
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(hours: &[&str]) -> Timetable {
        Timetable {
            tz: chrono_tz::Asia::Novosibirsk,
            hours: hours.iter().map(|h| Hours::parse(h).unwrap()).collect(),
            calendar: Calendar::default(),
            closed_now: false,
        }
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    #[test]
    fn parses_days_and_times() {
        let h = Hours::parse("mon-fri 09:00-18:00").unwrap();
        assert_eq!(h.days, [true, true, true, true, true, false, false]);
        assert_eq!((h.from, h.to), (540, 1080));
        let h = Hours::parse("fri-mon 00:00-24:00").unwrap();
        assert_eq!(h.days, [true, false, false, false, true, true, true]);
        assert_eq!(h.to, 1440);
        let h = Hours::parse("sat,sun 10:00-14:00").unwrap();
        assert_eq!(h.days, [false, false, false, false, false, true, true]);
        assert_eq!(Hours::parse("daily 08:00-20:00").unwrap().days, [true; 7]);
    }

    #[test]
    fn refuses_bad_entries() {
        assert_eq!(
            Hours::parse("mon-fry 09:00-18:00"),
            Err(HoursError::Day("fry".into()))
        );
        assert_eq!(
            Hours::parse("mon 9:00-18:00"),
            Err(HoursError::Time("9:00".into()))
        );
        assert_eq!(
            Hours::parse("mon 22:00-06:00"),
            Err(HoursError::Order("mon 22:00-06:00".into()))
        );
        assert_eq!(Hours::parse("mon"), Err(HoursError::Shape("mon".into())));
        assert_eq!(
            Hours::parse("mon 10:00-24:30"),
            Err(HoursError::Time("24:30".into()))
        );
    }

    #[test]
    fn overlap_finds_the_shared_day() {
        let a = Hours::parse("mon-sat 09:00-18:00").unwrap();
        let b = Hours::parse("sat,sun 10:00-14:00").unwrap();
        assert_eq!(a.overlap(&b), Some(5));
        let c = Hours::parse("mon-fri 18:00-20:00").unwrap();
        assert_eq!(a.overlap(&c), None, "18:00 closes one and opens the other");
    }

    #[test]
    fn open_in_the_zone_of_the_service() {
        let t = table(&["mon-fri 09:00-18:00"]);
        // Monday 2026-11-23 09:00 in Novosibirsk (+07:00) is 02:00 UTC.
        assert_eq!(t.verdict(at("2026-11-23T09:00:00+07:00")), Verdict::Open);
        assert_eq!(t.verdict(at("2026-11-23T02:00:00Z")), Verdict::Open);
        assert_eq!(
            t.verdict(at("2026-11-23T08:59:59+07:00")),
            Verdict::AfterHours
        );
        assert_eq!(
            t.verdict(at("2026-11-23T18:00:00+07:00")),
            Verdict::AfterHours
        );
        // 10:00 Moscow is 14:00 in Novosibirsk: open.
        assert_eq!(t.verdict(at("2026-11-23T10:00:00+03:00")), Verdict::Open);
        // Sunday.
        assert_eq!(
            t.verdict(at("2026-11-22T12:00:00+07:00")),
            Verdict::AfterHours
        );
    }

    #[test]
    fn calendar_and_override() {
        let mut t = table(&["mon-fri 09:00-18:00"]);
        let d = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
        t.calendar.holidays.insert(d(2026, 11, 4));
        t.calendar.workdays.insert(d(2026, 11, 7)); // a Saturday made a working day
        t.calendar.short_days.insert(d(2026, 11, 3));
        assert_eq!(t.verdict(at("2026-11-04T12:00:00+07:00")), Verdict::Holiday);
        assert_eq!(t.verdict(at("2026-11-07T12:00:00+07:00")), Verdict::Open);
        assert_eq!(t.verdict(at("2026-11-03T16:59:00+07:00")), Verdict::Open);
        assert_eq!(
            t.verdict(at("2026-11-03T17:00:00+07:00")),
            Verdict::AfterHours
        );
        t.closed_now = true;
        assert_eq!(
            t.verdict(at("2026-11-23T12:00:00+07:00")),
            Verdict::ClosedNow
        );
    }
}
