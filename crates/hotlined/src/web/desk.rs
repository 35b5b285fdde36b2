//! `GET /desk` — the operator's desk: their state and its controls, the wrap-up countdown,
//! the screen pop (filled from `GET /desk/pop/{appeal}` when an `offer` rings), the appeal
//! form saved as it is typed, transfer buttons, their worklists and today's figures.
//! The page script (`assets/app.js`) keeps it live from `GET /events`.

use std::time::Instant;

use appeals::{Appeal, Page, Role, SearchFilter, Worklist};
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

/// One option of a select filled from the directory.
pub struct Opt {
    pub id: String,
    pub name: String,
}

/// A missed caller on the worklist.
pub struct MissedItem {
    pub id: String,
    pub when: String,
    pub caller: String,
    pub calls: i64,
}

/// A callback waiting, being dialled, or given up today, of the operator's queues.
pub struct CallbackItem {
    pub appeal: String,
    pub when: String,
    pub number: String,
    pub queue: String,
    pub status: &'static str,
    pub status_id: &'static str,
    pub attempts: i64,
}

/// The callbacks list of an operator: of their skill queues (or every queue when they have
/// none), pending and dialling ones first (oldest request first), then the ones given up
/// since `since`; at most 20.
fn callbacks_of(
    c: &Chrome,
    names: &super::names::Names,
    all: Vec<appeals::Callback>,
    queues: &[String],
    since: chrono::DateTime<Utc>,
) -> Vec<CallbackItem> {
    use appeals::CallbackStatus as S;
    let mut list: Vec<&appeals::Callback> = all
        .iter()
        .filter(|cb| {
            queues.is_empty()
                || cb
                    .queue
                    .as_ref()
                    .is_none_or(|q| queues.iter().any(|m| m == q))
        })
        .filter(|cb| match cb.status {
            S::Pending | S::Dialling => true,
            S::Failed => cb.completed_at.is_some_and(|t| t >= since),
            S::Done | S::Cancelled => false,
        })
        .collect();
    list.sort_by_key(|cb| (cb.status == S::Failed, cb.requested_at));
    list.truncate(20);
    let ru = c.lang == super::chrome::Lang::Ru;
    list.into_iter()
        .map(|cb| {
            let (status, status_id) = match (cb.status, ru) {
                (S::Pending, true) => ("ждёт звонка", "pending"),
                (S::Pending, false) => ("waiting", "pending"),
                (S::Dialling, true) => ("набирается", "dialling"),
                (S::Dialling, false) => ("dialling", "dialling"),
                (_, true) => ("не дозвонились", "failed"),
                (_, false) => ("not reached", "failed"),
            };
            CallbackItem {
                appeal: cb.appeal_id.to_string(),
                when: c.when(&cb.requested_at),
                number: cb.number.clone(),
                queue: cb
                    .queue
                    .as_deref()
                    .map(|q| names.queue(q))
                    .unwrap_or_default(),
                status,
                status_id,
                attempts: cb.attempts,
            }
        })
        .collect()
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
    /// The operator whose desk this is (empty: a supervisor who has not chosen one yet).
    operator: String,
    /// The viewer is not that operator (a supervisor looking on): nothing to press.
    read_only: bool,
    /// Supervisors and admins choose whose desk they look at: (login, name, chosen).
    chooser: Vec<(String, String, bool)>,
    /// The appeal whose disposition the operator is held for (`disposition_hold`).
    held_for: Option<String>,
    /// The queues whose calls need a disposition before the next (comma-separated).
    hold_queues: String,
    state: &'static str,
    since: String,
    reason: String,
    my_queues: Vec<String>,
    queues: Vec<QueueItem>,
    colleagues: Vec<Colleague>,
    mine: Vec<WorkItem>,
    due: Vec<WorkItem>,
    missed: Vec<MissedItem>,
    callbacks: Vec<CallbackItem>,
    services: Vec<Opt>,
    districts: Vec<Opt>,
    organisations: Vec<Opt>,
    /// Organisations with a transfer phone (the directory's `phone`).
    transfer_orgs: Vec<Opt>,
    dispositions: Vec<Opt>,
    calls: u64,
    answered: u64,
    avg_talk: String,
    /// The max wrap-up of the operator's queues (the countdown when no queue is known).
    wrap_up_seconds: u64,
    /// Whether `PATCH /api/v1/appeals/{id}` takes the case fields (service, district,
    /// address, disposition, organisation, version).
    case_fields: bool,
}

/// `PATCH /api/v1/appeals/{id}` takes the case fields with the `version` (issue 12).
const CASE_FIELDS: bool = true;

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
    // a supervisor chooses whose desk to look at (`?operator=`); their own when they are an
    // operator themselves; else only the chooser
    let contacts = s.stats.registered_contacts();
    let all_ops = s.operators.views(&contacts, Instant::now());
    let asked = v
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("operator=")))
        .map(str::to_owned);
    let operator = if v.who.role == Role::Operator {
        v.who.id.clone()
    } else {
        asked
            .filter(|a| all_ops.iter().any(|o| &o.id == a))
            .or_else(|| {
                all_ops
                    .iter()
                    .find(|o| o.id == v.who.id)
                    .map(|o| o.id.clone())
            })
            .unwrap_or_default()
    };
    let read_only = operator != v.who.id;
    let chooser = if v.who.role == Role::Operator {
        Vec::new()
    } else {
        all_ops
            .iter()
            .map(|o| (o.id.clone(), o.name.clone(), o.id == operator))
            .collect()
    };
    let (state, since, reason, my_queues) = operator_state(&s, &operator).unwrap_or((
        "logged_out",
        String::new(),
        String::new(),
        vec![],
    ));
    let queues = queue_items(&s);
    let my_queue_titles: Vec<String> = my_queues
        .iter()
        .map(|q| {
            queues
                .iter()
                .find(|x| &x.id == q)
                .map_or_else(|| q.clone(), |x| x.title.clone())
        })
        .collect();
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
    let (mut mine, mut due, mut missed, mut callbacks) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut calls, mut answered, mut avg_talk) = (0, 0, String::from("—"));
    if let Ok(store) = s.store() {
        // the worklists route's lists as the operator has them: their own appeals (in work,
        // due today), the missed callers to call back, the callbacks of their queues
        let now = Utc::now();
        let page = Page {
            offset: 0,
            limit: 20,
        };
        if let Ok(all) = store.callbacks(None).await {
            let names = super::names::Names::of(&s);
            let skills = s.live.skills(&operator);
            let (from, _) = appeals::report::day_bounds(
                now.with_timezone(&s.reports.tz).date_naive(),
                s.reports.tz,
            );
            callbacks = callbacks_of(&c, &names, all, &skills, from);
        }
        if let Ok(list) = store.worklist(Worklist::Mine(&operator), now, page).await {
            mine = list.iter().map(|a| work_item(&c, a)).collect();
        }
        let today = now.with_timezone(&s.reports.tz).date_naive();
        let (from, to) = appeals::report::day_bounds(today, s.reports.tz);
        let own_due = Worklist::Due {
            from,
            to,
            assignee: Some(&operator),
        };
        if let Ok(list) = store.worklist(own_due, now, page).await {
            due = list.iter().map(|a| work_item(&c, a)).collect();
        }
        if let Ok(list) = store.missed(page).await {
            missed = list
                .iter()
                .map(|m| MissedItem {
                    id: m.appeal_id.to_string(),
                    when: c.when(&m.last_missed_at),
                    caller: m.caller_number.clone(),
                    calls: m.calls,
                })
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
    let d = s.directory.get();
    let opts = |it: &mut dyn Iterator<Item = (&String, &String)>| -> Vec<Opt> {
        it.map(|(id, name)| Opt {
            id: id.clone(),
            name: name.clone(),
        })
        .collect()
    };
    let services = opts(&mut d.services.iter().map(|x| (&x.id, &x.title)));
    let districts = opts(&mut d.districts.iter().map(|x| (&x.id, &x.name)));
    let organisations = opts(&mut d.organisations.iter().map(|x| (&x.id, &x.name)));
    let dispositions = opts(&mut d.dispositions.iter().map(|x| (&x.id, &x.name)));
    let transfer_orgs = opts(
        &mut d
            .organisations
            .iter()
            .filter(|x| x.phone.is_some())
            .map(|x| (&x.id, &x.name)),
    );
    let held_for = s.holds.of(&operator).map(|a| a.to_string());
    let hold_queues = s
        .live
        .labels()
        .disposition_queues()
        .collect::<Vec<_>>()
        .join(",");
    let page = DeskPage {
        held_for,
        hold_queues,
        operator,
        read_only,
        chooser,
        state,
        since,
        reason,
        my_queues: my_queue_titles,
        queues,
        colleagues,
        mine,
        due,
        missed,
        callbacks,
        services,
        districts,
        organisations,
        transfer_orgs,
        dispositions,
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
    citizen: Option<super::citizen::CardView>,
    /// More than one card has the caller's number: the operator picks.
    several: Vec<super::citizen::CardView>,
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
    let names = super::names::Names::of(&s);
    let path = appeal
        .ivr_path
        .as_deref()
        .map(|p| {
            names
                .labels
                .stored_path(c.lang == super::chrome::Lang::En, p)
        })
        .unwrap_or_default();
    // a card that cannot be read leaves the pop without it rather than without the call
    let d = s.directory.get();
    let mut cards: Vec<super::citizen::CardView> =
        super::citizen::for_call(store, appeal.case.citizen_id, &appeal.caller_number)
            .await
            .unwrap_or_default()
            .iter()
            .map(|x| super::citizen::card_view(&c, &d, x, super::citizen::today(&c)))
            .collect();
    let (citizen, several) = if cards.len() == 1 {
        (cards.pop(), Vec::new())
    } else {
        (None, cards)
    };
    let body = Pop {
        citizen,
        several,
        appeal: appeal.id.to_string(),
        number: appeal.caller_number.clone(),
        queue: appeal
            .queue
            .as_deref()
            .map(|q| names.queue(q))
            .unwrap_or_default(),
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
