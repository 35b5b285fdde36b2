//! The daily report: what a supervisor or manager reads about one day of calls.
//!
//! Definitions (the same for the whole day, a line, a category, an operator or an hour):
//! - *calls*: appeals that arrived in the period;
//! - *answered*: an operator picked up (`answered_at` set, or outcome `answered`);
//! - *abandoned*: outcome `abandoned` (the caller hung up while waiting);
//! - *service level*: answered within N seconds of waiting ÷ (answered + abandoned);
//! - *average wait*: mean `wait_seconds` of answered calls (speed of answer);
//!   abandoned calls' mean wait is given apart;
//! - *average talk*: mean `talk_seconds` of answered calls;
//! - *overdue*: appeals with a due date that is past at the moment the report is made
//!   (`as_of`) and still open (neither done nor declined) — an appeal of last month still
//!   open today counts as overdue in last month's report.
//!
//! Besides the line, category, operator and hour, the case fields group the same figures:
//! the service asked for, the destination organisation and the district (`key` `None`:
//! appeals without one).

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, FixedOffset, NaiveDate, NaiveTime, Timelike, Utc};
use serde::{Deserialize, Serialize};

use crate::model::{Appeal, Outcome};

/// Report settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportOptions {
    /// Answered within this many seconds of waiting counts towards the service level.
    pub service_level_seconds: i64,
}

impl Default for ReportOptions {
    fn default() -> Self {
        Self {
            service_level_seconds: 20,
        }
    }
}

/// Figures for one group of calls.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    /// Appeals that arrived.
    pub calls: u64,
    /// Taken by an operator.
    pub answered: u64,
    /// Caller hung up while waiting.
    pub abandoned: u64,
    /// Answered within the service-level time.
    pub answered_within_sl: u64,
    /// `answered_within_sl / (answered + abandoned)`; `None` when nobody queued.
    pub service_level: Option<f64>,
    /// Mean wait of answered calls, seconds.
    pub avg_wait: Option<f64>,
    /// Mean wait of abandoned calls before they hung up, seconds.
    pub avg_wait_abandoned: Option<f64>,
    /// Mean talk time of answered calls, seconds.
    pub avg_talk: Option<f64>,
    /// Open appeals past their due date when the report was made.
    #[serde(default)]
    pub overdue: u64,
}

/// Figures for one line, category or operator. `key` is `None` for calls without a category.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Group {
    /// The line, category or operator.
    pub key: Option<String>,
    /// Its figures.
    #[serde(flatten)]
    pub figures: Figures,
}

/// Figures for one hour of the day (local time).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HourFigures {
    /// 0–23.
    pub hour: u32,
    /// Its figures.
    #[serde(flatten)]
    pub figures: Figures,
}

/// One day's report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DailyReport {
    /// The calendar day, at `utc_offset_seconds`.
    pub day: NaiveDate,
    /// The offset the day was taken at.
    pub utc_offset_seconds: i32,
    /// The service-level threshold used.
    pub service_level_seconds: i64,
    /// All calls of the day.
    pub total: Figures,
    /// Per line, by line.
    pub by_line: Vec<Group>,
    /// Per category (what people called about), by category; uncategorised first.
    pub by_category: Vec<Group>,
    /// Per operator, for calls an operator took.
    pub by_operator: Vec<Group>,
    /// Per service asked for (directory id); without a service first.
    #[serde(default)]
    pub by_service: Vec<Group>,
    /// Per destination organisation (directory id); without one first.
    #[serde(default)]
    pub by_organisation: Vec<Group>,
    /// Per district (directory id); without one first.
    #[serde(default)]
    pub by_district: Vec<Group>,
    /// All 24 hours, 0 to 23.
    pub by_hour: Vec<HourFigures>,
}

/// The UTC instants where the local `day` at `tz` starts and ends.
pub fn day_bounds(day: NaiveDate, tz: FixedOffset) -> (DateTime<Utc>, DateTime<Utc>) {
    let start = (day.and_time(NaiveTime::MIN) - Duration::seconds(i64::from(tz.local_minus_utc())))
        .and_utc();
    (start, start + Duration::days(1))
}

#[derive(Default)]
struct Acc {
    calls: u64,
    answered: u64,
    abandoned: u64,
    within: u64,
    wait: (i64, u64),
    wait_abandoned: (i64, u64),
    talk: (i64, u64),
    overdue: u64,
}

fn mean((sum, n): (i64, u64)) -> Option<f64> {
    (n > 0).then(|| sum as f64 / n as f64)
}

impl Acc {
    fn add(&mut self, a: &Appeal, sl: i64, as_of: DateTime<Utc>) {
        self.calls += 1;
        if is_overdue(a, as_of) {
            self.overdue += 1;
        }
        let answered = a.answered_at.is_some() || a.outcome == Some(Outcome::Answered);
        if answered {
            self.answered += 1;
            let wait = a.wait_seconds.unwrap_or(0);
            if wait <= sl {
                self.within += 1;
            }
            if let Some(w) = a.wait_seconds {
                self.wait.0 += w;
                self.wait.1 += 1;
            }
            if let Some(t) = a.talk_seconds {
                self.talk.0 += t;
                self.talk.1 += 1;
            }
        } else if a.outcome == Some(Outcome::Abandoned) {
            self.abandoned += 1;
            if let Some(w) = a.wait_seconds {
                self.wait_abandoned.0 += w;
                self.wait_abandoned.1 += 1;
            }
        }
    }

    fn figures(&self) -> Figures {
        let queued = self.answered + self.abandoned;
        Figures {
            calls: self.calls,
            answered: self.answered,
            abandoned: self.abandoned,
            answered_within_sl: self.within,
            service_level: (queued > 0).then(|| self.within as f64 / queued as f64),
            avg_wait: mean(self.wait),
            avg_wait_abandoned: mean(self.wait_abandoned),
            avg_talk: mean(self.talk),
            overdue: self.overdue,
        }
    }
}

fn groups(map: BTreeMap<Option<String>, Acc>) -> Vec<Group> {
    map.into_iter()
        .map(|(key, acc)| Group {
            key,
            figures: acc.figures(),
        })
        .collect()
}

/// Whether `a` is overdue at `as_of`: it has a due date before then and is still open.
pub fn is_overdue(a: &Appeal, as_of: DateTime<Utc>) -> bool {
    !a.status.is_closed() && a.case.due_at.is_some_and(|due| due < as_of)
}

/// Computes the report from the day's appeals (any order), overdue as of now.
pub fn compute(
    day: NaiveDate,
    tz: FixedOffset,
    options: &ReportOptions,
    appeals: &[Appeal],
) -> DailyReport {
    compute_at(day, tz, options, appeals, Utc::now())
}

/// Computes the report from the day's appeals (any order), overdue as of `as_of`.
pub fn compute_at(
    day: NaiveDate,
    tz: FixedOffset,
    options: &ReportOptions,
    appeals: &[Appeal],
    as_of: DateTime<Utc>,
) -> DailyReport {
    let sl = options.service_level_seconds;
    let mut total = Acc::default();
    let mut by_line: BTreeMap<Option<String>, Acc> = BTreeMap::new();
    let mut by_category: BTreeMap<Option<String>, Acc> = BTreeMap::new();
    let mut by_operator: BTreeMap<Option<String>, Acc> = BTreeMap::new();
    let mut by_service: BTreeMap<Option<String>, Acc> = BTreeMap::new();
    let mut by_organisation: BTreeMap<Option<String>, Acc> = BTreeMap::new();
    let mut by_district: BTreeMap<Option<String>, Acc> = BTreeMap::new();
    let mut by_hour: Vec<Acc> = (0..24).map(|_| Acc::default()).collect();
    for a in appeals {
        total.add(a, sl, as_of);
        let groups = [
            (&mut by_line, Some(a.line.clone())),
            (&mut by_category, a.category.clone()),
            (&mut by_service, a.case.service.clone()),
            (&mut by_organisation, a.case.organisation.clone()),
            (&mut by_district, a.case.district.clone()),
        ];
        for (map, key) in groups {
            map.entry(key).or_default().add(a, sl, as_of);
        }
        if let Some(op) = &a.operator {
            by_operator
                .entry(Some(op.clone()))
                .or_default()
                .add(a, sl, as_of);
        }
        let hour = a.arrived_at.with_timezone(&tz).hour() as usize;
        if let Some(acc) = by_hour.get_mut(hour) {
            acc.add(a, sl, as_of);
        }
    }
    DailyReport {
        day,
        utc_offset_seconds: tz.local_minus_utc(),
        service_level_seconds: sl,
        total: total.figures(),
        by_line: groups(by_line),
        by_category: groups(by_category),
        by_operator: groups(by_operator),
        by_service: groups(by_service),
        by_organisation: groups(by_organisation),
        by_district: groups(by_district),
        by_hour: by_hour
            .iter()
            .enumerate()
            .map(|(h, acc)| HourFigures {
                hour: h as u32,
                figures: acc.figures(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_bounds_follow_the_offset() {
        let nsk = FixedOffset::east_opt(7 * 3600).unwrap();
        let day = NaiveDate::from_ymd_opt(2024, 3, 15).unwrap();
        let (from, to) = day_bounds(day, nsk);
        assert_eq!(from.to_rfc3339(), "2024-03-14T17:00:00+00:00");
        assert_eq!(to.to_rfc3339(), "2024-03-15T17:00:00+00:00");
    }
}
