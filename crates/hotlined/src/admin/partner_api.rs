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

use appeals::{ForwardMessage, StatusMessage};
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
        return Err(ApiError::unprocessable(format!(
            "centre must be 1 to {MAX_CENTRE} letters, digits, - _ ."
        )));
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
