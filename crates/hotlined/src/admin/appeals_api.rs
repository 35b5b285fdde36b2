//! `/api/v1/appeals…` and `/api/v1/reports/daily`.
//!
//! The follow-up workflow a PATCH may move an appeal along:
//!
//! ```text
//!   new ──► in_progress ──► forwarded ──► resolved
//!                │  ▲            │            │
//!                │  └────────────┘ returned   │
//!                └──────────► resolved ◄──────┘ (reopened: resolved ──► in_progress)
//! ```
//!
//! Allowed: `new → in_progress`; `in_progress → forwarded | resolved`;
//! `forwarded → in_progress` (the organisation sent it back) `| resolved`;
//! `resolved → in_progress` (reopened). Setting the status an appeal already has changes
//! nothing and is not recorded. Everything else — skipping `in_progress` from `new`, going
//! back to `new` — is refused with 409; a status that does not exist is 422.

use appeals::{AppealId, Page, SearchFilter, Status};
use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use serde::Deserialize;
use serde_json::json;

use super::access::Caller;
use super::{Actor, AdminState, ApiError};
use crate::report::{self, Format};

/// Whether the workflow lets an appeal go from `from` to `to` (see the module docs).
pub fn transition_allowed(from: Status, to: Status) -> bool {
    use Status::*;
    matches!(
        (from, to),
        (New, InProgress)
            | (InProgress, Forwarded)
            | (InProgress, Resolved)
            | (Forwarded, InProgress)
            | (Forwarded, Resolved)
            | (Resolved, InProgress)
    )
}

/// Longest notes accepted, in characters.
const MAX_NOTES: usize = 10_000;
/// Longest destination organisation accepted, in characters.
const MAX_ORG: usize = 200;
/// Default page size.
const PER_PAGE: u32 = 50;

fn query_error(e: QueryRejection) -> ApiError {
    ApiError::bad_request(format!("bad query: {}", e.body_text()))
}

pub(super) fn path_id(p: Result<Path<String>, PathRejection>) -> Result<AppealId, ApiError> {
    let Path(id) = p.map_err(|e| ApiError::bad_request(e.body_text()))?;
    id.parse()
        .map_err(|_| ApiError::bad_request(format!("{id:?} is not an appeal id")))
}

/// `None` for an absent or empty parameter.
fn given(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

/// An instant from RFC 3339 (`2026-11-23T10:00:00+07:00`), or a day (`2026-11-23`) at the
/// report offset: its start for `from`, the start of the next day for `to`, so `to=DAY`
/// includes that day.
pub(super) fn instant(
    name: &str,
    s: &str,
    tz: FixedOffset,
    end: bool,
) -> Result<DateTime<Utc>, ApiError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let day = NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| {
        ApiError::bad_request(format!(
            "{name}={s:?}: expected YYYY-MM-DD or an RFC 3339 time"
        ))
    })?;
    let (start, next) = appeals::report::day_bounds(day, tz);
    Ok(if end { next } else { start })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    from: Option<String>,
    to: Option<String>,
    line: Option<String>,
    category: Option<String>,
    status: Option<String>,
    caller: Option<String>,
    page: Option<u64>,
    per_page: Option<u32>,
}

/// 403 unless the caller may see every appeal, or handled this one (an operator's own).
fn may_see(who: &Caller, a: &appeals::Appeal) -> Result<(), ApiError> {
    if who.sees_all() || a.operator.as_deref() == Some(who.id.as_str()) {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "appeal {} is not yours: an operator sees the appeals they handled",
            a.id
        )))
    }
}

/// The appeal, when the caller may see it (404 / 403 otherwise).
async fn visible(
    s: &AdminState,
    who: &Caller,
    id: AppealId,
) -> Result<appeals::AppealWithEvents, ApiError> {
    match s.store()?.get(id).await? {
        Some(a) => {
            may_see(who, &a.appeal)?;
            Ok(a)
        }
        None => Err(ApiError::not_found(format!("no appeal {id}"))),
    }
}

/// `GET /api/v1/appeals`: newest first, paged (`page` from 1, `per_page` 1–1000, default 50).
/// An operator gets the appeals they handled.
pub async fn list(
    State(s): State<AdminState>,
    Extension(who): Extension<Caller>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(query_error)?;
    let tz = s.reports.tz;
    let status = match given(q.status) {
        None => None,
        Some(v) => Some(v.parse::<Status>().map_err(|_| {
            ApiError::bad_request(format!(
                "status={v:?}: expected new, in_progress, forwarded or resolved"
            ))
        })?),
    };
    let filter = SearchFilter {
        from: given(q.from)
            .map(|v| instant("from", &v, tz, false))
            .transpose()?,
        to: given(q.to)
            .map(|v| instant("to", &v, tz, true))
            .transpose()?,
        line: given(q.line),
        category: given(q.category),
        status,
        caller: given(q.caller),
        operator: (!who.sees_all()).then(|| who.id.clone()),
    };
    let page = q.page.unwrap_or(1);
    let per_page = q.per_page.unwrap_or(PER_PAGE);
    if page == 0 {
        return Err(ApiError::bad_request("page counts from 1"));
    }
    if !(1..=Page::MAX_LIMIT).contains(&per_page) {
        return Err(ApiError::bad_request(format!(
            "per_page must be 1 to {}",
            Page::MAX_LIMIT
        )));
    }
    let store = s.store()?;
    let total = store.count(&filter).await?;
    let offset = (page - 1).saturating_mul(u64::from(per_page));
    let appeals = store
        .search(
            &filter,
            Page {
                offset,
                limit: per_page,
            },
        )
        .await?;
    Ok(Json(json!({
        "appeals": appeals,
        "page": page,
        "per_page": per_page,
        "total": total,
        "pages": total.div_ceil(u64::from(per_page)),
    }))
    .into_response())
}

/// `GET /api/v1/appeals/{id}`: the appeal with its timeline.
pub async fn one(
    State(s): State<AdminState>,
    Extension(who): Extension<Caller>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = path_id(id)?;
    Ok(Json(visible(&s, &who, id).await?).into_response())
}

/// `GET /api/v1/appeals/{id}/recording`: the appeal's recording (or message) as WAV; 404
/// when it has none or the file is gone (retention). Every fetch is in the audit log.
pub async fn recording(
    State(s): State<AdminState>,
    Extension(who): Extension<Caller>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = path_id(id)?;
    let a = visible(&s, &who, id).await?.appeal;
    let Some(file) = a.recording else {
        return Err(ApiError::not_found(format!("appeal {id} has no recording")));
    };
    let path = std::path::Path::new(&file);
    let path = if path.is_absolute() || path.exists() {
        path.to_path_buf()
    } else {
        s.access.recordings_dir.join(path)
    };
    let bytes = tokio::fs::read(&path)
        .await
        .map_err(|_| ApiError::not_found(format!("the recording of appeal {id} is gone")))?;
    s.audit(who.audit(
        "recording_fetched",
        Some(id.to_string()),
        json!({ "bytes": bytes.len() }),
    ))
    .await;
    Ok(([(header::CONTENT_TYPE, "audio/wav")], bytes).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Change {
    status: Option<String>,
    notes: Option<String>,
    destination_org: Option<String>,
}

/// `PATCH /api/v1/appeals/{id}`: status, notes, destination organisation. Each change is
/// recorded on the timeline with the actor; the answer is the appeal as it now stands.
pub async fn update(
    State(s): State<AdminState>,
    Extension(Actor(actor)): Extension<Actor>,
    Extension(who): Extension<Caller>,
    id: Result<Path<String>, PathRejection>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = path_id(id)?;
    let change: Change = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("bad JSON body: {e}")))?;
    if change.status.is_none() && change.notes.is_none() && change.destination_org.is_none() {
        return Err(ApiError::bad_request(
            "nothing to change: give status, notes or destination_org",
        ));
    }
    let status = match &change.status {
        None => None,
        Some(v) => Some(v.parse::<Status>().map_err(|_| {
            ApiError::unprocessable(format!(
                "status {v:?} does not exist: new, in_progress, forwarded or resolved"
            ))
        })?),
    };
    if let Some(n) = &change.notes {
        if n.chars().count() > MAX_NOTES {
            return Err(ApiError::unprocessable(format!(
                "notes are longer than {MAX_NOTES} characters"
            )));
        }
    }
    let org = change.destination_org.as_deref().map(str::trim);
    if let Some(o) = org {
        if o.is_empty() || o.chars().count() > MAX_ORG || o.chars().any(char::is_control) {
            return Err(ApiError::unprocessable(format!(
                "destination_org must be 1 to {MAX_ORG} characters on one line"
            )));
        }
    }
    let store = s.store()?;
    let _one_at_a_time = s.patch_lock.lock().await;
    let Some(current) = store.get(id).await? else {
        return Err(ApiError::not_found(format!("no appeal {id}")));
    };
    let current = current.appeal;
    may_see(&who, &current)?;
    if let Some(to) = status {
        if to != current.status && !transition_allowed(current.status, to) {
            let allowed: Vec<&str> = Status::ALL
                .iter()
                .filter(|s| transition_allowed(current.status, **s))
                .map(|s| s.as_str())
                .collect();
            return Err(ApiError::conflict(format!(
                "appeal {id} is {}: it cannot become {}; allowed next: {}",
                current.status,
                to,
                allowed.join(", ")
            )));
        }
    }
    let mut changed = serde_json::Map::new();
    if let Some(to) = status.filter(|to| *to != current.status) {
        store.set_status(id, to, &actor).await?;
        changed.insert("status".into(), json!({ "from": current.status, "to": to }));
        // An appeal from the partner queued its new status for the partner: send it now.
        if let Some(link) = &s.partner {
            link.wake.notify_one();
        }
    }
    if let Some(n) = change.notes.filter(|n| Some(n) != current.notes.as_ref()) {
        store.set_notes(id, &n, &actor).await?;
        // the notes' text is personal data kept on the appeal, not copied into the log
        changed.insert(
            "notes".into(),
            json!({ "changed": true, "chars": n.chars().count() }),
        );
    }
    if let Some(o) = org.filter(|o| Some(*o) != current.destination_org.as_deref()) {
        store.set_destination(id, o, &actor).await?;
        changed.insert(
            "destination_org".into(),
            json!({ "from": current.destination_org, "to": o }),
        );
    }
    if !changed.is_empty() {
        s.audit(who.audit("appeal_changed", Some(id.to_string()), changed.into()))
            .await;
    }
    match store.get(id).await? {
        Some(a) => Ok(Json(a).into_response()),
        None => Err(ApiError::not_found(format!("no appeal {id}"))),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ForwardBody {
    note: Option<String>,
    destination_org: Option<String>,
}

/// `POST /api/v1/appeals/{id}/forward` (body `{ "note", "destination_org" }`, both
/// optional; an empty body is no note): sends the appeal to the partner centre. It becomes
/// `forwarded` at once — from `new` or `in_progress`, once per appeal, otherwise 409 — with
/// a `forwarded` event; the message waits in the outbox until the partner accepts it, which
/// the timeline records as a `partner_update` event and the partner's reference in
/// `partner_ref`. 202 with the appeal and the message's idempotency key; 409 when no
/// partner is configured.
pub async fn forward(
    State(s): State<AdminState>,
    Extension(Actor(actor)): Extension<Actor>,
    Extension(who): Extension<Caller>,
    id: Result<Path<String>, PathRejection>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = path_id(id)?;
    if !who.sees_all() {
        visible(&s, &who, id).await?;
    }
    let Some(link) = &s.partner else {
        return Err(ApiError::conflict(
            "no partner configured: add a [partner] section to forward appeals",
        ));
    };
    let body: ForwardBody = if body.iter().all(u8::is_ascii_whitespace) {
        ForwardBody::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("bad JSON body: {e}")))?
    };
    if let Some(n) = &body.note {
        if n.chars().count() > MAX_NOTES {
            return Err(ApiError::unprocessable(format!(
                "note is longer than {MAX_NOTES} characters"
            )));
        }
    }
    let org = given(body.destination_org);
    if let Some(o) = &org {
        if o.chars().count() > MAX_ORG || o.chars().any(char::is_control) {
            return Err(ApiError::unprocessable(format!(
                "destination_org must be 1 to {MAX_ORG} characters on one line"
            )));
        }
    }
    let store = s.store()?;
    let org_audit = org.clone();
    let key = {
        let _one_at_a_time = s.patch_lock.lock().await;
        store
            .forward(
                id,
                &appeals::ForwardOrder {
                    note: given(body.note),
                    destination_org: org,
                    actor,
                },
            )
            .await?
    };
    link.wake.notify_one();
    s.audit(who.audit(
        "appeal_forwarded",
        Some(id.to_string()),
        json!({ "idempotency_key": key, "destination_org": org_audit }),
    ))
    .await;
    match store.get(id).await? {
        Some(a) => Ok((
            StatusCode::ACCEPTED,
            Json(json!({ "idempotency_key": key, "appeal": a })),
        )
            .into_response()),
        None => Err(ApiError::not_found(format!("no appeal {id}"))),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DailyQuery {
    day: Option<String>,
    format: Option<String>,
}

/// `GET /api/v1/reports/daily?day=YYYY-MM-DD[&format=json|csv|html]`: the day's figures
/// (today at `reports.timezone` by default). Without `format`, `Accept: text/csv` gives CSV
/// and anything else JSON.
pub async fn daily_report(
    State(s): State<AdminState>,
    Extension(who): Extension<Caller>,
    headers: HeaderMap,
    q: Result<Query<DailyQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(query_error)?;
    let tz = s.reports.tz;
    let day = match given(q.day) {
        None => Utc::now().with_timezone(&tz).date_naive(),
        Some(d) => NaiveDate::parse_from_str(&d, "%Y-%m-%d")
            .map_err(|_| ApiError::bad_request(format!("day={d:?}: expected YYYY-MM-DD")))?,
    };
    let format = match given(q.format).as_deref() {
        Some("json") => Format::Json,
        Some("csv") => Format::Csv,
        Some("html") => Format::Html,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "format={other:?}: expected json, csv or html"
            )))
        }
        None => {
            let wants_csv = headers
                .get_all(header::ACCEPT)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .any(|v| v.to_ascii_lowercase().contains("text/csv"));
            if wants_csv {
                Format::Csv
            } else {
                Format::Json
            }
        }
    };
    let store = s.store()?;
    if !matches!(format, Format::Json) {
        s.audit(who.audit(
            "export",
            None,
            json!({ "what": "daily_report", "day": day, "format": if matches!(format, Format::Csv) { "csv" } else { "html" } }),
        ))
        .await;
    }
    let r = report::build(store, day, day, tz, &s.reports.options)
        .await
        .map_err(|e| match e {
            report::ReportError::Store(e) => ApiError::from(e),
            other => ApiError::bad_request(other.to_string()),
        })?;
    Ok(match format {
        Format::Json => match r.days.into_iter().next() {
            Some(d) => Json(d).into_response(),
            None => return Err(ApiError::not_found("no such day")),
        },
        Format::Csv => (
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            report::render(&r, Format::Csv),
        )
            .into_response(),
        Format::Html | Format::Table => (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            report::render(&r, Format::Html),
        )
            .into_response(),
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallbacksQuery {
    status: Option<String>,
}

/// `GET /api/v1/callbacks`: booked callbacks, oldest request first, optionally only those
/// with `status` (`pending`, `dialling`, `done`, `failed`, `cancelled`): the number, queue,
/// attempts so far, the operator and result of the last attempt, and when it ended.
pub async fn callbacks(
    State(s): State<AdminState>,
    q: Result<Query<CallbacksQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(query_error)?;
    let status = match given(q.status) {
        None => None,
        Some(v) => Some(v.parse::<appeals::CallbackStatus>().map_err(|_| {
            ApiError::bad_request(format!(
                "status={v:?}: expected pending, dialling, done, failed or cancelled"
            ))
        })?),
    };
    let callbacks = s.store()?.callbacks(status).await?;
    Ok(Json(json!({ "callbacks": callbacks })).into_response())
}
