//! The workspace's live routes: `GET /events` (Server-Sent Events from [`crate::live`]) and
//! `POST /api/v1/operators/{id}/transfer` (a command to call control).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::json;
use tokio::sync::broadcast;

use super::access::Caller;
use super::{AdminState, ApiError};
use crate::accounts::FieldError;
use crate::live::{Audience, Live, PageEvent};

/// How often an idle stream gets a comment (proxies and browsers keep it open).
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// One page's stream: the snapshot first, then the changes for its audience.
struct Stream {
    live: Arc<Live>,
    rx: broadcast::Receiver<Arc<PageEvent>>,
    pending: VecDeque<Arc<PageEvent>>,
    audience: Audience,
}

/// `GET /events`: a snapshot of every operator and queue the caller may see, then the
/// changes as they happen, a keep-alive comment every 15 s. Operators get their own
/// `operator` and `offer` events and their skill queues without callers' numbers;
/// supervisors and admins everything. A page that falls behind gets a fresh snapshot.
pub async fn events(State(s): State<AdminState>, Extension(who): Extension<Caller>) -> Response {
    let audience = if who.sees_all() {
        Audience::All
    } else {
        Audience::Operator {
            queues: s.live.skills(&who.id),
            id: who.id.clone(),
        }
    };
    let (snapshot, rx) = s.live.subscribe();
    let start = Stream {
        live: s.live.clone(),
        rx,
        pending: snapshot.into(),
        audience,
    };
    let stream = futures_util::stream::unfold(start, |mut st| async move {
        loop {
            if let Some(ev) = st.pending.pop_front() {
                if let Some(data) = st.audience.render(&ev) {
                    let sse = Event::default().event(ev.kind).data(data);
                    return Some((Ok::<_, Infallible>(sse), st));
                }
                continue;
            }
            let next = tokio::select! {
                biased;
                _ = st.live.closed() => return None,
                next = st.rx.recv() => next,
            };
            match next {
                Ok(ev) => st.pending.push_back(ev),
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    // too slow for the broadcast: start again from the current picture
                    let (snapshot, rx) = st.live.subscribe();
                    st.rx = rx;
                    st.pending = snapshot.into();
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    let mut r = Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response();
    // an SSE stream must not be buffered by a proxy on the way
    r.headers_mut().insert(
        "x-accel-buffering",
        axum::http::HeaderValue::from_static("no"),
    );
    r
}

/// The transfer body: exactly one target.
#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TransferBody {
    queue: Option<String>,
    operator: Option<String>,
    number: Option<String>,
    organisation: Option<String>,
}

fn invalid(field: &'static str, message: &str) -> ApiError {
    ApiError::field(FieldError {
        field,
        message: message.to_owned(),
    })
}

/// Checks the body and names its target; 422 naming the field otherwise.
fn target(
    body: &Bytes,
    dir: &crate::directory::Directory,
) -> Result<gateway::TransferTarget, ApiError> {
    let b: TransferBody = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("bad JSON body: {e}")))?;
    let given = [&b.queue, &b.operator, &b.number, &b.organisation]
        .iter()
        .filter(|v| v.is_some())
        .count();
    if given != 1 {
        return Err(invalid(
            "target",
            "give exactly one of queue, operator, number, organisation",
        ));
    }
    let plain = |s: &str| !s.is_empty() && s.len() <= 64 && !s.chars().any(char::is_control);
    if let Some(q) = b.queue {
        return match plain(&q) {
            true => Ok(gateway::TransferTarget::Queue(q)),
            false => Err(invalid("queue", "a queue's name, at most 64 characters")),
        };
    }
    if let Some(op) = b.operator {
        return match plain(&op) {
            true => Ok(gateway::TransferTarget::Operator(op)),
            false => Err(invalid("operator", "an operator's login")),
        };
    }
    if let Some(n) = b.number {
        let digits = n.chars().filter(char::is_ascii_digit).count();
        let allowed = n.chars().all(|c| c.is_ascii_digit() || " +-()".contains(c));
        return match allowed && (3..=20).contains(&digits) {
            true => Ok(gateway::TransferTarget::Number(n)),
            false => Err(invalid("number", "a phone number: digits, +, -, spaces")),
        };
    }
    // an organisation: its transfer phone from the directory, then as a number
    let id = b.organisation.unwrap_or_default();
    let Some(org) = dir.organisation(&id) else {
        return Err(invalid(
            "organisation",
            "no such organisation in the directory (GET /api/v1/organisations)",
        ));
    };
    let phone: String = org
        .phone
        .as_deref()
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == '+')
        .collect();
    if phone.chars().filter(char::is_ascii_digit).count() < 3 {
        return Err(invalid(
            "organisation",
            "the organisation has no phone to transfer to in the directory (organisations.toml `phone`)",
        ));
    }
    Ok(gateway::TransferTarget::Number(phone))
}

/// `POST /api/v1/operators/{id}/transfer`: moves the caller talking to operator `id` as
/// their phone's REFER would. 202 once started; 409 when they have no call (or a transfer
/// is under way); 404 for an unknown queue or operator; 422 naming a bad field. Operators
/// only their own calls.
pub async fn transfer(
    State(s): State<AdminState>,
    Extension(who): Extension<Caller>,
    id: Result<Path<String>, PathRejection>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let Path(id) = id.map_err(|e| ApiError::bad_request(e.body_text()))?;
    if !who.sees_all() && id != who.id {
        return Err(ApiError::forbidden(
            "an operator transfers only their own call",
        ));
    }
    let target = target(&body, &s.directory.get())?;
    let what = format!("{target:?}");
    let Some(acd) = &s.acd else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the SIP gateway is not running",
        ));
    };
    use gateway::TransferError as E;
    match acd.transfer(&id, target).await {
        Ok(()) => {}
        Err(e @ (E::NoCall | E::InProgress)) => return Err(ApiError::conflict(e.to_string())),
        Err(e @ (E::UnknownQueue | E::UnknownOperator)) => {
            return Err(ApiError::not_found(e.to_string()))
        }
        Err(e @ E::NotANumber) => return Err(invalid("number", &e.to_string())),
        Err(e @ E::Stopped) => {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                e.to_string(),
            ))
        }
    }
    s.audit(who.audit(
        "operator.transfer",
        Some(id.clone()),
        json!({ "target": what }),
    ))
    .await;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "operator": id, "transfer": "started" })),
    )
        .into_response())
}
