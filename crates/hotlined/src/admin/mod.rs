//! The admin HTTP API (INTERFACE.md, described in `openapi.json`, served at
//! `/api/v1/openapi.json`).
//!
//! - `/health` and `/metrics` are open; everything under `/api/v1` needs
//!   `Authorization: Bearer <admin.token>` (compared in constant time), except
//!   `/api/v1/partner/…`, which the partner Hotline calls with `partner.token` (see
//!   `partner_api`). An empty configured
//!   token closes the API: every call gets 403 (`hotlined check` warns about it).
//! - The actor recorded on an appeal's timeline is the `X-Hotline-Actor` header, or `admin`
//!   (the name of the one configured token) when it is absent.
//! - Every error is JSON `{ "error": "…" }`; malformed input is 400, never a panic.
//! - Store-backed routes (appeals, reports) answer 503 while the database cannot be reached;
//!   [`connect_store`] keeps trying in the background and requests never wait for it.

mod appeals_api;
mod audit;
mod citizens_api;
mod directory_api;
mod metrics;
mod operators;
mod partner_api;
#[cfg(test)]
mod tests;
mod worklists_api;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use appeals::{AppealWriter, ReportOptions, Store};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post, MethodRouter};
use axum::{Json, Router};
use chrono::FixedOffset;
use gateway::Stats;
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::appeal_log::CallCounters;
pub use operators::{OperatorTable, QueueBoard, TableBook};

/// The database handle once it has been reached; empty while it is down at start.
pub type StoreSlot = Arc<OnceLock<Store>>;

/// How reports are taken (`[reports]` in the configuration).
#[derive(Clone, Debug)]
pub struct ReportSettings {
    /// The offset report days and hours are taken at.
    pub tz: FixedOffset,
    /// Service-level threshold.
    pub options: ReportOptions,
}

/// Everything the handlers read. Cheap to clone.
#[derive(Clone)]
pub struct AdminState {
    /// The gateway's live figures and registered contacts.
    pub stats: Arc<Stats>,
    /// Bearer token for `/api/v1`; empty closes the API.
    pub token: Arc<str>,
    /// The database, once connected.
    pub store: StoreSlot,
    /// The spool-first writer (operator sessions, writer figures for `/metrics`).
    pub writer: AppealWriter,
    /// Operators' login/pause state.
    pub operators: Arc<OperatorTable>,
    /// Queues and their callers.
    pub queues: Arc<QueueBoard>,
    /// Finished calls by line and outcome.
    pub calls: Arc<CallCounters>,
    /// Report settings.
    pub reports: ReportSettings,
    /// Serialises appeal changes made through this daemon, so that a status transition is
    /// checked against the status it replaces.
    pub patch_lock: Arc<tokio::sync::Mutex<()>>,
    /// The partner centre (`[partner]`), when one is configured.
    pub partner: Option<crate::partner::PartnerLink>,
    /// Reloads the configuration (`POST /api/v1/reload`); `None` where nothing runs to
    /// reload (tests of the API alone): 503.
    pub reloader: Option<Arc<crate::reload::ConfigReloader>>,
    /// The running gateway's ACD, told of every login, logout, pause and unpause the table
    /// takes; `None` in tests of the API alone.
    pub acd: Option<gateway::OperatorControl>,
    /// Districts, organisations, services and the case code lists (swapped by reloads).
    pub directory: crate::directory::DirectorySlot,
}

/// Who is making a change, for the appeal timeline.
#[derive(Clone, Debug)]
pub struct Actor(pub String);

/// The actor when the request names none: the name of the configured token.
pub const DEFAULT_ACTOR: &str = "admin";

/// A JSON error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }
    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

impl From<appeals::Error> for ApiError {
    fn from(e: appeals::Error) -> Self {
        match e {
            appeals::Error::NotFound(id) => ApiError::not_found(format!("no appeal {id}")),
            e @ (appeals::Error::NotForwardable { .. }
            | appeals::Error::AlreadyForwarded(_)
            | appeals::Error::Stale { .. }) => ApiError::conflict(e.to_string()),
            appeals::Error::Transition { id, from, to } => ApiError::conflict(format!(
                "appeal {id} is {from}: it cannot become {to}; allowed next: {}",
                appeals_api::allowed_next(from)
            )),
            appeals::Error::CitizenNotFound(id) => ApiError::not_found(format!("no citizen {id}")),
            appeals::Error::Db(e) => {
                tracing::warn!(error = %e, "admin API: database error");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the database did not answer; try again",
                )
            }
            other => {
                tracing::error!(error = %other, "admin API: store error");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, other.to_string())
            }
        }
    }
}

/// A JSON request body; 400 saying what is wrong with it.
pub(crate) fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("bad JSON body: {e}")))
}

/// A query string that did not parse: 400.
pub(crate) fn query_error(e: axum::extract::rejection::QueryRejection) -> ApiError {
    ApiError::bad_request(format!("bad query: {}", e.body_text()))
}

impl AdminState {
    /// The store, or 503 while the database has not been reached.
    fn store(&self) -> Result<&Store, ApiError> {
        self.store.get().ok_or_else(|| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the database is not reachable yet; retrying in the background",
            )
        })
    }
}

/// Routes and the (method, path) list they were built from: the OpenAPI test checks the
/// document against this list, and every listed route against the router.
struct Routes {
    router: Router<AdminState>,
    list: Vec<(&'static str, &'static str)>,
}

impl Routes {
    fn new() -> Self {
        Routes {
            router: Router::new(),
            list: Vec::new(),
        }
    }

    fn add(
        mut self,
        method: &'static str,
        path: &'static str,
        handler: MethodRouter<AdminState>,
    ) -> Self {
        self.list.push((method, path));
        self.router = self.router.route(path, handler);
        self
    }
}

fn open_routes() -> Routes {
    Routes::new()
        .add("GET", "/health", get(health))
        .add("GET", "/metrics", get(metrics::metrics))
}

fn api_routes() -> Routes {
    Routes::new()
        .add("GET", "/api/v1/openapi.json", get(openapi))
        .add("GET", "/api/v1/appeals", get(appeals_api::list))
        .add("GET", "/api/v1/appeals/{id}", get(appeals_api::one))
        .add("PATCH", "/api/v1/appeals/{id}", patch(appeals_api::update))
        .add(
            "POST",
            "/api/v1/appeals/{id}/forward",
            post(appeals_api::forward),
        )
        .add(
            "GET",
            "/api/v1/reports/daily",
            get(appeals_api::daily_report),
        )
        .add("GET", "/api/v1/callbacks", get(appeals_api::callbacks))
        .add("GET", "/api/v1/queues", get(operators::queues))
        .add("GET", "/api/v1/operators", get(operators::list))
        .add(
            "POST",
            "/api/v1/operators/{id}/login",
            post(operators::login),
        )
        .add(
            "POST",
            "/api/v1/operators/{id}/logout",
            post(operators::logout),
        )
        .add(
            "POST",
            "/api/v1/operators/{id}/pause",
            post(operators::pause),
        )
        .add(
            "POST",
            "/api/v1/operators/{id}/unpause",
            post(operators::unpause),
        )
        .add("POST", "/api/v1/reload", post(reload))
        .add("GET", "/api/v1/districts", get(directory_api::districts))
        .add(
            "GET",
            "/api/v1/organisations",
            get(directory_api::organisations),
        )
        .add("GET", "/api/v1/services", get(directory_api::services))
        .add("GET", "/api/v1/case-codes", get(directory_api::codes))
        .add("GET", "/api/v1/citizens", get(citizens_api::list))
        .add("POST", "/api/v1/citizens", post(citizens_api::create))
        .add("GET", "/api/v1/citizens/{id}", get(citizens_api::one))
        .add(
            "PATCH",
            "/api/v1/citizens/{id}",
            patch(citizens_api::update),
        )
        .add("GET", "/api/v1/worklists/{list}", get(worklists_api::list))
        .add(
            "POST",
            "/api/v1/worklists/missed/{id}/close",
            post(worklists_api::close_missed),
        )
}

/// Routes the partner Hotline calls, with the partner token.
fn partner_routes() -> Routes {
    Routes::new()
        .add(
            "POST",
            "/api/v1/partner/appeals",
            post(partner_api::receive_forward),
        )
        .add(
            "POST",
            "/api/v1/partner/appeals/{id}/status",
            post(partner_api::receive_status),
        )
}

/// Every (method, path) the router serves.
#[cfg(test)]
fn route_list() -> Vec<(&'static str, &'static str)> {
    let mut list = open_routes().list;
    list.extend(api_routes().list);
    list.extend(partner_routes().list);
    list
}

/// The whole admin router.
pub fn router(state: AdminState) -> Router {
    let api = api_routes()
        .router
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate));
    let partner = partner_routes()
        .router
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            partner_api::authenticate,
        ));
    open_routes()
        .router
        .merge(api)
        .merge(partner)
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .with_state(state)
}

pub async fn serve(listener: TcpListener, state: AdminState, stop: CancellationToken) {
    let app = router(state);
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await
    {
        tracing::error!(error = %e, "admin HTTP failed");
    }
}

/// Connects the store in the background, retrying with a growing pause (1 s … 30 s) until
/// the database answers or `stop` is cancelled; then fills `slot`.
pub fn connect_store(
    url: String,
    slot: StoreSlot,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut pause = Duration::from_secs(1);
        loop {
            match Store::connect(&url).await {
                Ok(store) => {
                    let _ = slot.set(store);
                    tracing::info!("admin API: database connected");
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_s = pause.as_secs(), "admin API: database not reachable; store-backed routes answer 503");
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = stop.cancelled() => return,
            }
            pause = (pause * 2).min(Duration::from_secs(30));
        }
    })
}

/// Compares two byte strings in time that depends only on their lengths.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= x ^ y;
    }
    diff == 0
}

/// The token of an `Authorization: Bearer …` header (scheme case-insensitive).
pub(crate) fn bearer(req: &Request) -> Option<&str> {
    let v = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// The longest actor name accepted.
const MAX_ACTOR: usize = 64;

pub(crate) fn unauthorized(error: Option<&str>, message: &str) -> Response {
    let challenge = match error {
        Some(e) => format!("Bearer realm=\"hotline\", error=\"{e}\""),
        None => "Bearer realm=\"hotline\"".to_owned(),
    };
    let mut r = ApiError::new(StatusCode::UNAUTHORIZED, message).into_response();
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    r
}

/// Bearer-token check for `/api/v1`, and the actor for the handlers.
async fn authenticate(State(s): State<AdminState>, mut req: Request, next: Next) -> Response {
    if s.token.is_empty() {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "the admin API is closed: admin.token is empty in the configuration",
        )
        .into_response();
    }
    match bearer(&req) {
        None => return unauthorized(None, "a bearer token is required"),
        Some(t) if !constant_time_eq(t.as_bytes(), s.token.as_bytes()) => {
            return unauthorized(Some("invalid_token"), "the bearer token is not valid");
        }
        Some(_) => {}
    }
    let actor = match req.headers().get("x-hotline-actor") {
        None => DEFAULT_ACTOR.to_owned(),
        Some(v) => match v.to_str().map(str::trim) {
            Ok(a) if !a.is_empty() && a.chars().count() <= MAX_ACTOR => a.to_owned(),
            _ => {
                return ApiError::bad_request(format!(
                    "X-Hotline-Actor must be 1 to {MAX_ACTOR} visible ASCII characters"
                ))
                .into_response()
            }
        },
    };
    req.extensions_mut().insert(Actor(actor));
    next.run(req).await
}

/// 200 when SIP is up and taking calls; 503 while starting or draining.
async fn health(State(s): State<AdminState>) -> impl IntoResponse {
    use std::sync::atomic::Ordering;
    let ready = s.stats.ready.load(Ordering::Relaxed) && !s.stats.draining.load(Ordering::Relaxed);
    if ready {
        (StatusCode::OK, "ok\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

/// The OpenAPI 3 document, written by hand next to this file.
pub const OPENAPI: &str = include_str!("openapi.json");

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

/// Loads the configuration again (as SIGHUP does): 200 with what new calls get and the
/// settings that need a restart; 422 with every `path:line:col` problem when it is invalid
/// (the running configuration is kept); 503 while shutting down.
async fn reload(State(s): State<AdminState>) -> Response {
    use crate::reload::ReloadError;
    let Some(r) = &s.reloader else {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "nothing to reload: the gateway is not running",
        )
        .into_response();
    };
    match r.reload("admin API").await {
        Ok(done) => {
            let message = if done.restart_needed.is_empty() {
                "configuration reloaded: new calls get it, calls in progress keep theirs".to_owned()
            } else {
                format!(
                    "configuration reloaded; these changed but need a restart and keep their running values: {}",
                    done.restart_needed.join(", ")
                )
            };
            Json(json!({
                "reloaded": true,
                "message": message,
                "lines": done.lines,
                "menus": done.menus,
                "prompts": done.prompts,
                "restart_needed": done.restart_needed,
            }))
            .into_response()
        }
        Err(ReloadError::Invalid(errors)) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({
                "error": "the configuration has problems; the running one is kept",
                "problems": errors.0.iter().map(ToString::to_string).collect::<Vec<_>>(),
            })),
        )
            .into_response(),
        Err(e) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    }
}

async fn no_route() -> ApiError {
    ApiError::not_found("no such route")
}

async fn wrong_method() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "this route does not take that method",
    )
}
