//! The receiving half of the partner-centre exchange: `/api/v1/partner/…`, served to the
//! partner Hotline, authorised by the shared `partner.token` only (never the admin token).
//! Every request carries an `Idempotency-Key`; the store applies each key once and answers
//! a repeated key as it did the first time (see `appeals::partner`).
//!
//! - `POST /api/v1/partner/appeals` — a forwarded appeal: 201 with
//!   `{ "appeal_id", "partner_ref" }` when it is made, 200 with the same body for a key seen
//!   before.
//! - `POST /api/v1/partner/appeals/{id}/status` — the partner changed the status of the
//!   appeal it made from our appeal `{id}`: 200 (`"duplicate": true` for a key seen before),
//!   404 for no such appeal.
//! - `POST /api/v1/partner/appeals/{id}/update` — the partner (the origin) changed its appeal
//!   `{id}` that it forwarded to us: applied to our copy (see `appeals::partner`): 200
//!   (`"duplicate": true` for a key seen before, whatever our copy is now), 404 when no
//!   forward of `{id}` from that centre made a copy here, 422 naming the field of a bad
//!   body, 409 with the reason when our copy cannot take the status (nothing written; the
//!   sender gives a 4xx up).

use appeals::{ForwardMessage, StatusMessage, StatusMove, UpdateMessage};
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::appeals_api::path_id;
use super::{bearer, constant_time_eq, unauthorized, AdminState, ApiError};

/// Longest idempotency key accepted.
const MAX_KEY: usize = 128;
/// Longest centre name accepted.
const MAX_CENTRE: usize = 64;
/// Longest notes or resolution accepted in an update, in characters.
const MAX_TEXT: usize = 10_000;
/// Longest actor (the origin's login) accepted.
const MAX_ACTOR: usize = 64;

/// Checks the partner token for `/api/v1/partner/…`; 403 when no partner is configured.
pub async fn authenticate(State(s): State<AdminState>, req: Request, next: Next) -> Response {
    let Some(link) = &s.partner else {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "no partner configured: the partner exchange is closed",
        )
        .into_response();
    };
    match bearer(&req) {
        None => unauthorized(None, "a bearer token is required"),
        Some(t) if !constant_time_eq(t.as_bytes(), link.token.as_bytes()) => {
            unauthorized(Some("invalid_token"), "the bearer token is not valid")
        }
        Some(_) => next.run(req).await,
    }
}

/// An audit line by the partner centre.
fn partner_audit(action: &str, target: String, details: serde_json::Value) -> appeals::AuditEntry {
    appeals::AuditEntry {
        at: chrono::Utc::now(),
        actor: "partner".into(),
        role: None,
        address: None,
        action: action.into(),
        target: Some(target),
        details,
    }
}

/// The `Idempotency-Key` header: 1–128 visible ASCII characters.
fn idempotency_key(headers: &HeaderMap) -> Result<String, ApiError> {
    let v = headers
        .get("idempotency-key")
        .ok_or_else(|| ApiError::bad_request("an Idempotency-Key header is required"))?;
    match v.to_str().map(str::trim) {
        Ok(k) if !k.is_empty() && k.len() <= MAX_KEY && k.chars().all(|c| c.is_ascii_graphic()) => {
            Ok(k.to_owned())
        }
        _ => Err(ApiError::bad_request(format!(
            "Idempotency-Key must be 1 to {MAX_KEY} visible ASCII characters"
        ))),
    }
}

fn check_centre(centre: &str) -> Result<(), ApiError> {
    if centre.is_empty()
        || centre.len() > MAX_CENTRE
        || !centre
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(ApiError::invalid(
            "centre",
            format!("centre must be 1 to {MAX_CENTRE} letters, digits, - _ ."),
        ));
    }
    Ok(())
}

/// `POST /api/v1/partner/appeals`.
pub async fn receive_forward(
    State(s): State<AdminState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let key = idempotency_key(&headers)?;
    let msg: ForwardMessage = super::json_body(&body)?;
    check_centre(&msg.centre)?;
    let ours = s
        .partner
        .as_ref()
        .map(|l| l.name.clone())
        .unwrap_or_default();
    let store = s.store()?;
    let r = store.receive_forward(&key, &msg, &ours).await?;
    if r.created {
        tracing::info!(appeal = %r.accepted.appeal_id, from = %msg.centre, partner_appeal = %msg.appeal_id, "appeal received from the partner");
        s.audit(partner_audit(
            "appeal_received",
            r.accepted.appeal_id.to_string(),
            json!({ "centre": msg.centre, "partner_appeal": msg.appeal_id, "idempotency_key": key }),
        ))
        .await;
    }
    let status = if r.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(r.accepted)).into_response())
}

/// `POST /api/v1/partner/appeals/{id}/status`.
pub async fn receive_status(
    State(s): State<AdminState>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = path_id(id)?;
    let key = idempotency_key(&headers)?;
    let msg: StatusMessage = super::json_body(&body)?;
    check_centre(&msg.centre)?;
    let store = s.store()?;
    // Changes to one appeal go one at a time, as the admin's PATCH does.
    let _one_at_a_time = s.patch_lock.lock().await;
    let applied = store.receive_status(&key, id, &msg).await?;
    if applied {
        tracing::info!(appeal = %id, from = %msg.centre, status = %msg.status, "partner reported a status");
        s.audit(partner_audit(
            "appeal_changed",
            id.to_string(),
            json!({ "status": { "to": msg.status }, "centre": msg.centre, "idempotency_key": key }),
        ))
        .await;
    }
    Ok(Json(json!({ "appeal_id": id, "duplicate": !applied })).into_response())
}

/// The statuses, for messages.
fn statuses() -> String {
    appeals::Status::ALL
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// An RFC 3339 instant in field `field`, or 422 naming it.
fn instant(
    field: &'static str,
    v: &serde_json::Value,
) -> Result<chrono::DateTime<chrono::Utc>, ApiError> {
    v.as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&chrono::Utc))
        .ok_or_else(|| ApiError::invalid(field, format!("{field}: expected an RFC 3339 time")))
}

/// Text of at most `max` characters in field `field`, or 422 naming it.
fn text(field: &'static str, v: &serde_json::Value, max: usize) -> Result<String, ApiError> {
    match v.as_str() {
        Some(t) if t.chars().count() <= max => Ok(t.to_owned()),
        Some(_) => Err(ApiError::invalid(
            field,
            format!("{field} is longer than {max} characters"),
        )),
        None => Err(ApiError::invalid(
            field,
            format!("{field}: expected a string"),
        )),
    }
}

/// The body of an update, each field checked on its own: 400 when it is not a JSON object,
/// 422 naming the first field that is wrong (or unknown), 422 when it reports nothing.
fn update_body(body: &[u8]) -> Result<UpdateMessage, ApiError> {
    let v: serde_json::Value = super::json_body(body)?;
    let Some(fields) = v.as_object() else {
        return Err(ApiError::bad_request("bad JSON body: expected an object"));
    };
    let mut msg = UpdateMessage::default();
    let mut at = None;
    for (name, v) in fields {
        match name.as_str() {
            "centre" => {
                let c = text("centre", v, MAX_CENTRE)?;
                check_centre(&c)?;
                msg.centre = c;
            }
            "status" => {
                let m: StatusMove = serde_json::from_value(v.clone()).map_err(|_| {
                    ApiError::invalid(
                        "status",
                        format!(
                            "status: expected {{\"from\": S, \"to\": S}}, S one of {}",
                            statuses()
                        ),
                    )
                })?;
                msg.status = Some(m);
            }
            "due_at" => {
                msg.due_at = Some(match v {
                    serde_json::Value::Null => None,
                    v => Some(instant("due_at", v)?),
                })
            }
            "notes" => msg.notes = Some(text("notes", v, MAX_TEXT)?),
            "resolution" => {
                msg.resolution = Some(match v {
                    serde_json::Value::Null => None,
                    v => Some(text("resolution", v, MAX_TEXT)?),
                })
            }
            "actor" => msg.actor = Some(text("actor", v, MAX_ACTOR)?),
            "at" => at = Some(instant("at", v)?),
            other => {
                return Err(ApiError::unprocessable(format!(
                    "{other}: unknown field; an update has centre, status, due_at, notes, \
                     resolution, actor, at"
                )))
            }
        }
    }
    if msg.centre.is_empty() {
        return Err(ApiError::invalid("centre", "centre is required"));
    }
    msg.at = at.ok_or_else(|| ApiError::invalid("at", "at is required"))?;
    if msg.is_empty() {
        return Err(ApiError::unprocessable(
            "nothing to update: give status, due_at, notes or resolution",
        ));
    }
    Ok(msg)
}

/// `POST /api/v1/partner/appeals/{id}/update`.
pub async fn receive_update(
    State(s): State<AdminState>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let origin = path_id(id)?;
    let key = idempotency_key(&headers)?;
    let msg = update_body(&body)?;
    let store = s.store()?;
    // Changes to one appeal go one at a time, as the admin's PATCH does.
    let _one_at_a_time = s.patch_lock.lock().await;
    let r = match store.receive_update(&key, origin, &msg).await {
        Err(appeals::Error::NotFound(_)) => {
            return Err(ApiError::not_found(format!(
                "no appeal here came from {}'s appeal {origin}",
                msg.centre
            )))
        }
        other => other?,
    };
    if r.fresh {
        tracing::info!(appeal = %r.appeal_id, from = %msg.centre, partner_appeal = %origin,
            status = ?r.status.map(|m| m.to), "the partner changed an appeal it forwarded");
        let mut details = json!({ "centre": msg.centre, "idempotency_key": key });
        if let Some(m) = r.status {
            details["status"] = json!({ "from": m.from, "to": m.to });
        }
        if let Some((from, to)) = r.due_at {
            details["due_at"] = json!({ "from": from, "to": to });
        }
        // personal text: that it came, not what it says
        if msg.notes.is_some() {
            details["notes"] = json!({ "changed": true });
        }
        if msg.resolution.is_some() {
            details["resolution"] = json!({ "changed": true });
        }
        s.audit(partner_audit(
            "appeal_changed",
            r.appeal_id.to_string(),
            details,
        ))
        .await;
    }
    Ok(Json(json!({ "appeal_id": r.appeal_id, "duplicate": !r.fresh })).into_response())
}
