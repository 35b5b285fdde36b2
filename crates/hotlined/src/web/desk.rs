//! `GET /desk` — the operator's desk: their state and its controls, the wrap-up countdown,
//! the screen pop (filled from `GET /desk/pop/{appeal}` when an `offer` rings), the appeal
//! form saved as it is typed, transfer buttons, their worklists and today's figures.
//! The page script (`assets/app.js`) keeps it live from `GET /events`.

use std::time::Instant;

use appeals::{Appeal, Page, Role, SearchFilter};
use askama::Template;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{Duration, Utc};

use super::chrome::{appeal_id, is_open, status_label, Chrome, Viewer};
use super::errors;
use crate::admin::AdminState;

/// One queue the operator may be sent to or transfer to.
pub struct QueueItem {
    pub id: String,
    pub title: String,
    pub wrap_up_seconds: u64,
}

/// One line of a worklist.
pub struct WorkItem {
    pub id: String,
    pub when: String,
    pub caller: String,
    pub status: String,
}

/// A colleague a call may be transferred to.
pub struct Colleague {
    pub id: String,
    pub name: String,
    pub state: &'static str,
}

/// `desk.html`.
#[derive(Template)]
#[template(path = "desk.html")]
struct DeskPage {
    c: Chrome,
    /// The operator whose desk this is.
    operator: String,
    state: &'static str,
    since: String,
    reason: String,
    my_queues: Vec<String>,
    queues: Vec<QueueItem>,
    colleagues: Vec<Colleague>,
    mine: Vec<WorkItem>,
    missed: Vec<WorkItem>,
    calls: u64,
    answered: u64,
    avg_talk: String,
    /// The max wrap-up of the operator's queues (the countdown when no queue is known).
    wrap_up_seconds: u64,
    /// Whether `PATCH /api/v1/appeals/{id}` takes the case fields (service, district,
    /// address, disposition, organisation, version).
    case_fields: bool,
}

/// The appeal store keeps case fields (set when the cases work is in).
const CASE_FIELDS: bool = false;

/// The operator's current state id and since when (RFC 3339).
pub fn operator_state(
    s: &AdminState,
    id: &str,
) -> Option<(&'static str, String, String, Vec<String>)> {
    let contacts = s.stats.registered_contacts();
    let v = s.operators.view_of(id, &contacts, Instant::now())?;
    let state = live_state(s, id, v.state);
    let since = v
        .paused_since
        .or(v.logged_in_since)
        .map(|t| t.to_rfc3339())
        .unwrap_or_default();
    Some((
        state,
        since,
        v.pause_reason.clone().unwrap_or_default(),
        v.queues,
    ))
}

/// An operator's state id: what the ACD has them doing (ringing, on a call, wrap-up), else
/// the table's (logged out, available, paused).
pub fn live_state(s: &AdminState, id: &str, table: crate::admin::WorkState) -> &'static str {
    s.stats
        .activity
        .of(id)
        .map(gateway::live::Activity::as_str)
        .unwrap_or(table.as_str())
}

/// The configured queues with their titles.
pub fn queue_items(s: &AdminState) -> Vec<QueueItem> {
    s.queues
        .snapshot()
        .into_iter()
        .map(|q| QueueItem {
            title: if q.title.is_empty() {
                q.name.clone()
            } else {
                q.title.clone()
            },
            id: q.name,
            wrap_up_seconds: q.wrap_up_seconds,
        })
        .collect()
}

fn work_item(c: &Chrome, a: &Appeal) -> WorkItem {
    WorkItem {
        id: a.id.to_string(),
        when: c.when(&a.arrived_at),
        caller: a.caller_number.clone(),
        status: status_label(c.lang, a.status.as_str()),
    }
}

/// `GET /desk`.
pub async fn page(State(s): State<AdminState>, v: Viewer) -> Response {
    let c = v.chrome("desk", "/desk", s.reports.tz);
    // a supervisor looking at the desk sees the first operator's (read-only use)
    let operator = if v.who.role == Role::Operator {
        v.who.id.clone()
    } else {
        let contacts = s.stats.registered_contacts();
        s.operators
            .views(&contacts, Instant::now())
            .into_iter()
            .next()
            .map(|v| v.id)
            .unwrap_or_else(|| v.who.id.clone())
    };
    let (state, since, reason, my_queues) = operator_state(&s, &operator).unwrap_or((
        "logged_out",
        String::new(),
        String::new(),
        vec![],
    ));
    let queues = queue_items(&s);
    let wrap_up_seconds = queues
        .iter()
        .filter(|q| my_queues.is_empty() || my_queues.contains(&q.id))
        .map(|q| q.wrap_up_seconds)
        .max()
        .unwrap_or(0);
    let contacts = s.stats.registered_contacts();
    let colleagues = s
        .operators
        .views(&contacts, Instant::now())
        .into_iter()
        .filter(|v| v.id != operator)
        .map(|v| {
            let state = live_state(&s, &v.id, v.state);
            Colleague {
                id: v.id,
                name: v.name,
                state,
            }
        })
        .collect();
    let (mut mine, mut missed) = (Vec::new(), Vec::new());
    let (mut calls, mut answered, mut avg_talk) = (0, 0, String::from("—"));
    if let Ok(store) = s.store() {
        let f = SearchFilter {
            operator: Some(operator.clone()),
            ..SearchFilter::default()
        };
        let page = Page {
            offset: 0,
            limit: 200,
        };
        if let Ok(list) = store.search(&f, page).await {
            mine = list
                .iter()
                .filter(|a| is_open(a.status.as_str()))
                .take(20)
                .map(|a| work_item(&c, a))
                .collect();
        }
        let today = Utc::now().with_timezone(&s.reports.tz).date_naive();
        let (from, _) = appeals::report::day_bounds(today, s.reports.tz);
        let f = SearchFilter {
            from: Some(from.max(Utc::now() - Duration::days(1))),
            ..SearchFilter::default()
        };
        if let Ok(list) = store
            .search(
                &f,
                Page {
                    offset: 0,
                    limit: 500,
                },
            )
            .await
        {
            missed = list
                .iter()
                .filter(|a| a.outcome == Some(appeals::Outcome::Abandoned))
                .take(20)
                .map(|a| work_item(&c, a))
                .collect();
        }
        if let Ok(r) =
            crate::report::build(store, today, today, s.reports.tz, &s.reports.options).await
        {
            if let Some(g) = r
                .period
                .by_operator
                .iter()
                .find(|g| g.key.as_deref() == Some(operator.as_str()))
            {
                calls = g.figures.calls;
                answered = g.figures.answered;
                avg_talk = g
                    .figures
                    .avg_talk
                    .map_or_else(|| "—".into(), |v| format!("{v:.0}"));
            }
        }
    }
    let reason = c.reason_label(&reason).to_owned();
    let page = DeskPage {
        operator,
        state,
        since,
        reason,
        my_queues,
        queues,
        colleagues,
        mine,
        missed,
        calls,
        answered,
        avg_talk,
        wrap_up_seconds,
        case_fields: CASE_FIELDS,
        c,
    };
    page.c.finish(errors::html(StatusCode::OK, page.render()))
}

/// An earlier appeal of the caller.
pub struct Earlier {
    pub id: String,
    pub when: String,
    pub status: String,
    pub open: bool,
    pub notes: String,
}

/// `pop_partial.html`: what the desk shows when the phone rings.
#[derive(Template)]
#[template(path = "pop_partial.html")]
struct Pop {
    c: Chrome,
    appeal: String,
    number: String,
    queue: String,
    path: Vec<String>,
    waited: i64,
    calls_30d: usize,
    open: usize,
    earlier: Vec<Earlier>,
}

/// `GET /desk/pop/{appeal}`: the screen pop, an HTML fragment.
pub async fn pop(
    State(s): State<AdminState>,
    v: Viewer,
    id: Result<Path<String>, PathRejection>,
) -> Response {
    let c = v.chrome("desk", "/desk", s.reports.tz);
    let Some(id) = appeal_id(id) else {
        return errors::fragment(StatusCode::BAD_REQUEST, "Неверный номер обращения.");
    };
    let Ok(store) = s.store() else {
        return errors::fragment(
            StatusCode::SERVICE_UNAVAILABLE,
            "База данных недоступна: карточка звонящего не загружена.",
        );
    };
    let appeal = match store.get(id).await {
        Ok(Some(a)) => a.appeal,
        Ok(None) => {
            return errors::fragment(
                StatusCode::NOT_FOUND,
                "Обращение ещё не записано. Карточка появится через секунду.",
            )
        }
        Err(_) => {
            return errors::fragment(
                StatusCode::SERVICE_UNAVAILABLE,
                "База данных не ответила: карточка звонящего не загружена.",
            )
        }
    };
    let digits: String = appeal
        .caller_number
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    let mut earlier = Vec::new();
    let mut calls_30d = 0;
    if digits.len() >= 5 {
        let f = SearchFilter {
            caller: Some(digits),
            ..SearchFilter::default()
        };
        let month_ago = Utc::now() - Duration::days(30);
        if let Ok(list) = store
            .search(
                &f,
                Page {
                    offset: 0,
                    limit: 200,
                },
            )
            .await
        {
            for a in list.iter().filter(|a| a.id != appeal.id) {
                // the search matches digits anywhere: keep the same number only
                if a.caller_number != appeal.caller_number {
                    continue;
                }
                if a.arrived_at >= month_ago {
                    calls_30d += 1;
                }
                earlier.push(Earlier {
                    id: a.id.to_string(),
                    when: c.when(&a.arrived_at),
                    status: status_label(c.lang, a.status.as_str()),
                    open: is_open(a.status.as_str()),
                    notes: a.notes.clone().unwrap_or_default(),
                });
            }
        }
    }
    let open = earlier.iter().filter(|e| e.open).count();
    earlier.truncate(10);
    let waited = appeal
        .wait_seconds
        .unwrap_or_else(|| (Utc::now() - appeal.arrived_at).num_seconds().max(0));
    let path = appeal
        .ivr_path
        .as_deref()
        .map(|p| p.split('>').map(str::to_owned).collect())
        .unwrap_or_default();
    let body = Pop {
        appeal: appeal.id.to_string(),
        number: appeal.caller_number.clone(),
        queue: appeal.queue.clone().unwrap_or_default(),
        path,
        waited,
        calls_30d,
        open,
        earlier,
        c,
    }
    .render();
    errors::html(StatusCode::OK, body)
}
