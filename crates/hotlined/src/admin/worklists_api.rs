//! `/api/v1/worklists/{mine|overdue|due-today|missed}`: what to work on.
//!
//! - `mine`: open appeals assigned to the requesting account, soonest due first;
//! - `overdue`: open appeals past their due date, most overdue first;
//! - `due-today`: open appeals due today (at `reports.timezone`);
//! - `missed`: callers who hung up in the queue or before the answer without reaching a
//!   person and have not been reached since (a later call of theirs answered, a callback to
//!   them done), oldest first, one row per caller; `POST …/missed/{appeal}/close` with a
//!   `reason` takes a caller off it.
//!
//! "Open" is every status but `done` and `declined`.

use appeals::Worklist;
use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;

use super::access::Caller;
use super::appeals_api::path_id;
use super::citizens_api::line_text;
use super::listing::Paging;
use super::{json_body, query_error, Actor, AdminState, ApiError};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    page: Option<u64>,
    per_page: Option<u32>,
}

/// `GET /api/v1/worklists/{list}`.
pub async fn list(
    State(s): State<AdminState>,
    Extension(Actor(actor)): Extension<Actor>,
    Extension(who): Extension<Caller>,
    list: Result<Path<String>, PathRejection>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Path(list) = list.map_err(|e| ApiError::bad_request(e.body_text()))?;
    // an operator works their own appeals (mine, due today) and calls missed callers back;
    // the whole line's overdue list is the supervisors'
    if !who.sees_all() && list == "overdue" {
        return Err(ApiError::forbidden(format!(
            "worklist {list:?}: an operator has mine, due-today (their own) and missed"
        )));
    }
    let Query(q) = q.map_err(query_error)?;
    let paging = Paging::of(q.page, q.per_page)?;
    let p = paging.store();
    let store = s.store()?;
    let now = Utc::now();
    let which = match list.as_str() {
        "mine" => Worklist::Mine(&actor),
        "overdue" => Worklist::Overdue,
        "due-today" => {
            let today = now.with_timezone(&s.reports.tz).date_naive();
            let (from, to) = appeals::report::day_bounds(today, s.reports.tz);
            Worklist::Due {
                from,
                to,
                assignee: (!who.sees_all()).then_some(actor.as_str()),
            }
        }
        "missed" => {
            let callers = store.missed(p).await?;
            let v = paging.answer("callers", json!(callers), None, json!({ "list": "missed" }));
            return Ok(Json(v).into_response());
        }
        other => {
            return Err(ApiError::not_found(format!(
                "no worklist {other:?}: mine, overdue, due-today or missed"
            )))
        }
    };
    let appeals = store.worklist(which, now, p).await?;
    let v = paging.answer("appeals", json!(appeals), None, json!({ "list": list }));
    Ok(Json(v).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Close {
    reason: String,
}

/// `POST /api/v1/worklists/missed/{appeal}/close` `{ "reason": "…" }`: the caller of that
/// appeal leaves the `missed` list (their missed calls up to now), recorded on the appeal's
/// timeline with the reason.
pub async fn close_missed(
    State(s): State<AdminState>,
    Extension(Actor(actor)): Extension<Actor>,
    Extension(who): Extension<Caller>,
    id: Result<Path<String>, PathRejection>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = path_id(id)?;
    let c: Close = json_body(&body)?;
    let reason = line_text("reason", &c.reason, 500)?;
    s.store()?.close_missed(id, &actor, &reason).await?;
    // the reason is free text about a person: the audit line says only that there was one
    s.audit(who.audit(
        "missed_closed",
        Some(id.to_string()),
        json!({ "reason_chars": reason.chars().count() }),
    ))
    .await;
    Ok(Json(json!({ "closed": true, "appeal": id })).into_response())
}
