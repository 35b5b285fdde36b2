//! The admin HTTP API (INTERFACE.md, described in `openapi.json`, served at
//! `/api/v1/openapi.json`).
//!
//! - Every route and who may call it is one table, `permissions::TABLE` (method, pattern,
//!   rule, handler): the router is built from it, and one middleware, `access::guard`,
//!   enforces its rules: `/health` and `/metrics` are open; the rest of `/api/v1`
//!   needs a session cookie (with its CSRF token on anything that changes something) or a
//!   bearer token — a personal API token, or the shared legacy `admin.token` (an admin)
//!   while it is configured; `/api/v1/partner/…` takes `partner.token` only (see
//!   `partner_api`). No credentials: 401; not for this role: 403.
//! - The actor recorded on an appeal's timeline and in the audit log is the authenticated
//!   account (`admin-token` for the legacy token).
//! - Every error is JSON `{ "error": "…" }`; malformed input is 400, never a panic.
//! - Store-backed routes (appeals, reports) answer 503 while the database cannot be reached;
//!   [`connect_store`] keeps trying in the background and requests never wait for it.

pub mod access;
pub(crate) mod appeals_api;
mod audit;
mod citizens_api;
mod directory_api;
mod events;
#[cfg(test)]
mod events_tests;
pub(crate) mod export;
pub(crate) mod headers;
mod listing;
mod metrics;
mod operators;
mod partner_api;
pub mod permissions;
mod reports_api;
#[cfg(test)]
mod search_tests;
#[cfg(test)]
mod tests;
mod users_api;
mod worklists_api;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use appeals::{AppealWriter, ReportOptions, Store};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use chrono::FixedOffset;
use gateway::Stats;
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::appeal_log::CallCounters;
pub(crate) use metrics::queue_figures;
pub(crate) use operators::{command as operator_command, Action as OperatorAction};
pub use operators::{OperatorTable, QueueBoard, TableBook, WorkState};

/// The database handle once it has been reached; empty while it is down at start.
pub type StoreSlot = Arc<OnceLock<Store>>;

/// How reports are taken (`[reports]` in the configuration).
#[derive(Clone, Debug)]
pub struct ReportSettings {
    /// The offset report days and hours are taken at.
    pub tz: FixedOffset,
    /// Service-level threshold.
    pub options: ReportOptions,
    /// When the board colours a queue.
    pub board: BoardThresholds,
}

/// When the supervisor's board colours a queue amber or red (`[reports]`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BoardThresholds {
    /// Longest wait, seconds: amber from here…
    pub wait_warn_seconds: u64,
    /// …red from here.
    pub wait_alarm_seconds: u64,
    /// The service level aimed at (0..1).
    pub service_level_target: f64,
}

impl Default for BoardThresholds {
    fn default() -> Self {
        BoardThresholds {
            wait_warn_seconds: 30,
            wait_alarm_seconds: 60,
            service_level_target: 0.8,
        }
    }
}

/// Everything the handlers read. Cheap to clone.
#[derive(Clone)]
pub struct AdminState {
    /// The gateway's live figures and registered contacts.
    pub stats: Arc<Stats>,
    /// The shared legacy bearer token (acts as an admin); empty = none.
    pub token: Arc<str>,
    /// Sessions, lock-out and retention settings.
    pub access: Arc<AccessSettings>,
    /// The admin address serves HTTPS (`admin.tls_cert`): the session cookie is `Secure`.
    pub tls: bool,
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
    /// The workspace's live picture (`GET /events`).
    pub live: Arc<crate::live::Live>,
    /// Operators held until their last call's disposition is saved (`disposition_hold`).
    pub holds: Arc<crate::disposition_hold::Holds>,
}

/// Sessions, login throttling and retention (`[admin]`, `[retention]`).
#[derive(Clone, Debug)]
pub struct AccessSettings {
    /// A session ends after this long without a request…
    pub session_idle: chrono::Duration,
    /// …and this long after the login.
    pub session_max: chrono::Duration,
    /// Failures before an account is locked.
    pub lockout_failures: u32,
    /// Failures before an address is locked.
    pub address_lockout_failures: u32,
    /// How long a lock lasts.
    pub lockout_minutes: u32,
    /// Recordings are deleted this many days after the call (0 = kept).
    pub recordings_days: u32,
    /// Caller numbers are masked this many days after the call (0 = kept).
    pub mask_callers_days: u32,
    /// Where recordings are written (relative recording paths are under it).
    pub recordings_dir: std::path::PathBuf,
}

impl Default for AccessSettings {
    fn default() -> Self {
        AccessSettings {
            session_idle: chrono::Duration::minutes(30),
            session_max: chrono::Duration::hours(12),
            lockout_failures: 5,
            address_lockout_failures: 20,
            lockout_minutes: 15,
            recordings_days: 0,
            mask_callers_days: 0,
            recordings_dir: "data/recordings".into(),
        }
    }
}

/// Who is making a change, for the appeal timeline: the authenticated account.
#[derive(Clone, Debug)]
pub struct Actor(pub String);

/// A JSON error answer: `{ "error": "…" }`, plus `"field"` when one input field is wrong.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    field: Option<&'static str>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            field: None,
        }
    }
    /// 422 naming the input field that is wrong.
    pub fn field(e: crate::accounts::FieldError) -> Self {
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            message: e.to_string(),
            field: Some(e.field),
        }
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
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
    /// 422 naming the input `field` that is wrong.
    /// True for a 422 (a field's value refused).
    pub fn is_invalid(&self) -> bool {
        self.status == StatusCode::UNPROCESSABLE_ENTITY
    }

    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            message: message.into(),
            field: Some(field),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = match self.field {
            Some(f) => json!({ "error": self.message, "field": f }),
            None => json!({ "error": self.message }),
        };
        (self.status, Json(body)).into_response()
    }
}

impl From<appeals::Error> for ApiError {
    fn from(e: appeals::Error) -> Self {
        match e {
            appeals::Error::NotFound(id) => ApiError::not_found(format!("no appeal {id}")),
            appeals::Error::NoUser(id) => ApiError::not_found(format!("no user {id:?}")),
            e @ (appeals::Error::NotForwardable { .. }
            | appeals::Error::AlreadyForwarded(_)
            | appeals::Error::UserExists(_)
            | appeals::Error::Stale { .. }
            | appeals::Error::NotReopenable { .. }) => ApiError::conflict(e.to_string()),
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

/// The `version` an edit (`PATCH` of an appeal or a citizen) was made on: required, 422
/// naming the field when missing, before anything is read or written. `path` is where the
/// current one is read (for the message).
pub(crate) fn required_version(version: Option<i64>, path: &str) -> Result<i64, ApiError> {
    version.ok_or_else(|| {
        ApiError::invalid(
            "version",
            format!(
                "version: required — the version the edit was made on (GET {path} gives it); \
                 a stale one gets 409"
            ),
        )
    })
}

/// A query string that did not parse: 400.
pub(crate) fn query_error(e: axum::extract::rejection::QueryRejection) -> ApiError {
    ApiError::bad_request(format!("bad query: {}", e.body_text()))
}

impl AdminState {
    /// The store, or 503 while the database has not been reached.
    pub(crate) fn store(&self) -> Result<&Store, ApiError> {
        self.store.get().ok_or_else(|| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the database is not reachable yet; retrying in the background",
            )
        })
    }
}

/// Every (method, path) the router serves: the lines of [`permissions::TABLE`].
#[cfg(test)]
fn route_list() -> Vec<(&'static str, &'static str)> {
    permissions::TABLE
        .iter()
        .map(|r| (r.method, r.path))
        .collect()
}

/// The whole admin router: every route behind the one permission middleware.
pub fn router(state: AdminState) -> Router {
    permissions::TABLE
        .iter()
        .fold(Router::new(), |router, r| {
            router.route(r.path, (r.handler)())
        })
        .route_layer(middleware::from_fn_with_state(state.clone(), access::guard))
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            headers::security,
        ))
        .with_state(state)
}

/// What the admin HTTP is served on: plain TCP, or TLS with the certificate of a
/// [`crate::tls::CertSwitch`] (which a reload replaces).
pub enum AdminListener {
    Plain(TcpListener),
    Tls(crate::tls::TlsListener),
}

pub async fn serve(listener: AdminListener, state: AdminState, stop: CancellationToken) {
    let app = router(state);
    let stopped = async move { stop.cancelled().await };
    let served = match listener {
        AdminListener::Plain(l) => serve_on(l, app, stopped).await,
        AdminListener::Tls(l) => serve_on(l, app, stopped).await,
    };
    if let Err(e) = served {
        tracing::error!(error = %e, "admin HTTP failed");
    }
}

/// Serves `app` on any listener, each connection's requests carrying the peer's address as
/// `ConnectInfo<SocketAddr>` (the login throttle's and the audit log's "address"). axum's own
/// `into_make_service_with_connect_info` knows only its `TcpListener`.
async fn serve_on<L>(
    listener: L,
    app: Router,
    stopped: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()>
where
    L: axum::serve::Listener<Addr = std::net::SocketAddr>,
{
    let make = tower::service_fn(move |incoming: axum::serve::IncomingStream<'_, L>| {
        let peer = *incoming.remote_addr();
        std::future::ready(Ok::<_, std::convert::Infallible>(
            app.clone()
                .layer(axum::Extension(axum::extract::ConnectInfo(peer))),
        ))
    });
    axum::serve(listener, make)
        .with_graceful_shutdown(stopped)
        .await
}

/// The operators a first start makes demo accounts for: (login, name, plain password).
pub type DemoOperators = Vec<(String, String, Option<String>)>;

/// Connects the store in the background, retrying with a growing pause (1 s … 30 s) until
/// the database answers or `stop` is cancelled; then fills `slot`. With `demo` (a loopback
/// admin address) an empty account table then gets the demo accounts: the store routes
/// answer meanwhile (a login while no account exists yet is told to come back in a few
/// seconds, 503, and counts toward no lock-out), and one WARN line
/// says when they are made (`demo accounts made`, what scripts wait for).
pub fn connect_store(
    url: String,
    slot: StoreSlot,
    stop: CancellationToken,
    demo: Option<DemoOperators>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut pause = Duration::from_secs(1);
        loop {
            match Store::connect(&url).await {
                Ok(store) => {
                    let _ = slot.set(store.clone());
                    tracing::info!("admin API: database connected");
                    if let Some(ops) = &demo {
                        seed_demo_logged(&store, ops).await;
                    }
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

/// [`crate::accounts::seed_demo`] and its one log line: how many accounts, the first few
/// logins, never a password of the operators file.
async fn seed_demo_logged(store: &Store, ops: &[(String, String, Option<String>)]) {
    match crate::accounts::seed_demo(store, ops).await {
        Ok(made) if !made.is_empty() => tracing::warn!(
            count = made.len(),
            accounts = %crate::accounts::demo_logins_shown(&made),
            "first start on a loopback admin address: demo accounts made — \
             operators log in with their operators.toml passwords, \
             supervisor / supervisor-secret, admin / admin-secret; \
             change them before real use"
        ),
        Ok(_) => {}
        Err(e) => tracing::error!(error = %e, "demo accounts not made"),
    }
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
    bearer_in(req.headers())
}

/// The token of an `Authorization: Bearer …` header among `headers`.
pub(crate) fn bearer_in(headers: &axum::http::HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

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
async fn reload(
    State(s): State<AdminState>,
    axum::Extension(who): axum::Extension<access::Caller>,
) -> Response {
    use crate::reload::ReloadError;
    let Some(r) = &s.reloader else {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "nothing to reload: the gateway is not running",
        )
        .into_response();
    };
    let outcome = r.reload("admin API").await;
    let details = match &outcome {
        Ok(done) => json!({ "reloaded": true, "restart_needed": done.restart_needed }),
        Err(e) => json!({ "reloaded": false, "error": e.to_string() }),
    };
    s.audit(who.audit("config_reloaded", None, details)).await;
    match outcome {
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
