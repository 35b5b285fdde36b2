//! `GET /board` — the supervisor's live board: per queue the callers waiting now (each
//! one's wait and menu path), the longest wait, answered and abandoned today and the service
//! level against its target, coloured at `[reports]` thresholds; the operators by state with
//! their time in state and pause reason, with the buttons their state offers (pause or
//! unpause, log out; none and «—» for those not logged in); reassigning an appeal. The page
//! is rendered with what the daemon knows now, then `assets/app.js` keeps it current from
//! `GET /events` (`queue` and `operator` events) without a reload.

use std::collections::BTreeMap;
use std::time::Instant;

use appeals::{Page, SearchFilter};
use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::Utc;

use super::chrome::{Chrome, Viewer};
use super::errors;
use crate::admin::AdminState;

/// One queue's tile.
pub struct QueueTile {
    pub id: String,
    pub title: String,
    pub waiting: u64,
    pub longest: u64,
    pub answered: u64,
    pub abandoned: u64,
    /// Service level today, percent, or "—".
    pub service_level: String,
    /// `ok`, `warn` or `alarm`.
    pub colour: &'static str,
}

/// One operator's row.
pub struct OperatorRow {
    pub id: String,
    pub name: String,
    pub state: &'static str,
    pub since: String,
    pub reason: String,
    pub queues: String,
}

impl OperatorRow {
    /// Whether the row offers `action` (`pause`, `unpause`, `logout`) in the state shown:
    /// nothing for an operator not logged in, unpause instead of pause for one paused. The
    /// page script keeps the buttons so from the live events (`offers` in `assets/app.js`).
    pub fn offers(&self, action: &str) -> bool {
        match (action, self.state) {
            (_, "logged_out") => false,
            ("pause", state) => state != "paused",
            ("unpause", state) => state == "paused",
            ("logout", _) => true,
            _ => false,
        }
    }

    /// No action at all: the cell shows «—».
    pub fn offers_nothing(&self) -> bool {
        !["pause", "unpause", "logout"]
            .iter()
            .any(|a| self.offers(a))
    }
}

/// `board.html`.
#[derive(Template)]
#[template(path = "board.html")]
struct BoardPage {
    c: Chrome,
    queues: Vec<QueueTile>,
    operators: Vec<OperatorRow>,
    warn_s: u64,
    alarm_s: u64,
    target_pct: u64,
    sl_seconds: i64,
}

/// Today's answered, abandoned and answered-within-the-service-level, per queue.
#[derive(Default, Clone, Copy)]
struct Today {
    answered: u64,
    abandoned: u64,
    within: u64,
}

/// A queue's colour: the worse of its longest wait and its service level against the target.
pub fn colour(
    longest: u64,
    service_level: Option<f64>,
    t: &crate::admin::BoardThresholds,
) -> &'static str {
    let by_wait = if longest >= t.wait_alarm_seconds {
        2
    } else if longest >= t.wait_warn_seconds {
        1
    } else {
        0
    };
    let by_sl = match service_level {
        Some(sl) if sl < t.service_level_target - 0.15 => 2,
        Some(sl) if sl < t.service_level_target => 1,
        _ => 0,
    };
    ["ok", "warn", "alarm"][by_wait.max(by_sl)]
}

/// `GET /board`.
pub async fn page(State(s): State<AdminState>, v: Viewer) -> Response {
    let c = v.chrome("board", "/board", s.reports.tz);
    let mut today: BTreeMap<String, Today> = BTreeMap::new();
    if let Ok(store) = s.store() {
        let day = Utc::now().with_timezone(&s.reports.tz).date_naive();
        let (from, to) = appeals::report::day_bounds(day, s.reports.tz);
        let f = SearchFilter {
            from: Some(from),
            to: Some(to),
            ..SearchFilter::default()
        };
        let sl = s.reports.options.service_level_seconds;
        let mut offset = 0;
        // today's calls, a page at a time (the board is opened, not polled)
        while let Ok(list) = store
            .search(
                &f,
                Page {
                    offset,
                    limit: Page::MAX_LIMIT,
                },
            )
            .await
        {
            for a in &list {
                let Some(q) = &a.queue else { continue };
                let e = today.entry(q.clone()).or_default();
                if a.answered_at.is_some() || a.outcome == Some(appeals::Outcome::Answered) {
                    e.answered += 1;
                    if a.wait_seconds.is_some_and(|w| w <= sl) {
                        e.within += 1;
                    }
                } else if a.outcome == Some(appeals::Outcome::Abandoned) {
                    e.abandoned += 1;
                }
            }
            if list.len() < Page::MAX_LIMIT as usize || offset > 100_000 {
                break;
            }
            offset += u64::from(Page::MAX_LIMIT);
        }
    }
    let titles: BTreeMap<String, String> = s
        .queues
        .snapshot()
        .into_iter()
        .map(|q| (q.name, q.title))
        .collect();
    let t = &s.reports.board;
    let queues = crate::admin::queue_figures(&s, Instant::now())
        .into_iter()
        .map(|(id, waiting, longest)| {
            let d = today.get(&id).copied().unwrap_or_default();
            let base = d.answered + d.abandoned;
            let sl = (base > 0).then(|| d.within as f64 / base as f64);
            QueueTile {
                title: titles
                    .get(&id)
                    .filter(|t| !t.is_empty())
                    .cloned()
                    .unwrap_or_else(|| id.clone()),
                waiting,
                longest,
                answered: d.answered,
                abandoned: d.abandoned,
                service_level: sl.map_or_else(|| "—".into(), |v| format!("{:.0}%", v * 100.0)),
                colour: colour(longest, sl, t),
                id,
            }
        })
        .collect();
    let names = super::names::Names::of(&s);
    let contacts = s.stats.registered_contacts();
    let operators = s
        .operators
        .views(&contacts, Instant::now())
        .into_iter()
        .map(|v| {
            let state = super::desk::live_state(&s, &v.id, v.state);
            OperatorRow {
                since: v
                    .paused_since
                    .or(v.logged_in_since)
                    .map(|t| t.to_rfc3339())
                    .unwrap_or_default(),
                reason: v
                    .pause_reason
                    .as_deref()
                    .map(|r| c.reason_label(r).to_owned())
                    .unwrap_or_default(),
                queues: v
                    .queues
                    .iter()
                    .map(|q| names.queue(q))
                    .collect::<Vec<_>>()
                    .join(", "),
                id: v.id,
                name: v.name,
                state,
            }
        })
        .collect();
    let page = BoardPage {
        queues,
        operators,
        warn_s: t.wait_warn_seconds,
        alarm_s: t.wait_alarm_seconds,
        target_pct: (t.service_level_target * 100.0).round() as u64,
        sl_seconds: s.reports.options.service_level_seconds,
        c,
    };
    page.c.finish(errors::html(StatusCode::OK, page.render()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::BoardThresholds;

    #[test]
    fn colours_follow_the_thresholds() {
        let t = BoardThresholds::default();
        assert_eq!(colour(0, None, &t), "ok");
        assert_eq!(colour(30, None, &t), "warn");
        assert_eq!(colour(60, Some(0.9), &t), "alarm");
        assert_eq!(colour(0, Some(0.79), &t), "warn");
        assert_eq!(colour(0, Some(0.6), &t), "alarm");
        assert_eq!(colour(0, Some(0.8), &t), "ok");
    }

    #[test]
    fn a_row_offers_what_its_state_allows() {
        let row = |state| OperatorRow {
            id: "op1".into(),
            name: "Оператор".into(),
            state,
            since: String::new(),
            reason: String::new(),
            queues: String::new(),
        };
        let offered = |state| {
            let r = row(state);
            ["pause", "unpause", "logout"]
                .into_iter()
                .filter(|a| r.offers(a))
                .collect::<Vec<_>>()
        };
        assert_eq!(offered("logged_out"), Vec::<&str>::new());
        assert!(row("logged_out").offers_nothing());
        assert_eq!(offered("paused"), ["unpause", "logout"]);
        for busy in ["available", "ringing", "on_call", "wrap_up"] {
            assert_eq!(offered(busy), ["pause", "logout"], "{busy}");
            assert!(!row(busy).offers_nothing());
        }
        assert!(!row("paused").offers("transfer"));
    }
}
