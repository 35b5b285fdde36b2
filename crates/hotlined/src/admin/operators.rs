//! Operators and queues as the admin API sees them now.
//!
//! [`OperatorTable`] holds each configured operator's work state — logged out, available or
//! paused — changed by `POST /api/v1/operators/{id}/login|logout|pause|unpause` and by the
//! softphones' feature codes: both reach [`OperatorTable::apply`] (the admin API through the
//! gateway's `OperatorControl`, which asks the table as its [`gateway::OperatorBook`] — see
//! [`TableBook`] — before the ACD). Logins and logouts are written to `operator_sessions`
//! and every change to `operator_state` through the [`AppealWriter`] (spool first, never
//! waiting for the database); at start [`OperatorTable::restore`] brings back who was logged
//! in and paused, each in a new session (the old one ends with the daemon: `shutdown`, or
//! no end time after a `kill -9`). A reload adds and removes operators
//! ([`OperatorTable::sync`]).
//!
//! `GET /api/v1/operators` joins the table with the registrar's contacts
//! ([`gateway::Stats::registered_contacts`]). [`QueueBoard`] lists the queues; until the
//! ACD queues callers nobody is ever waiting in one.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use appeals::AppealWriter;
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use gateway::RegisteredContact;
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::access::Caller;
use super::{AdminState, ApiError};

/// An operator's work state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkState {
    /// Not working: takes no calls.
    LoggedOut,
    /// Logged in and taking calls.
    Available,
    /// Logged in, taking no calls for now.
    Paused,
}

impl WorkState {
    pub fn as_str(self) -> &'static str {
        match self {
            WorkState::LoggedOut => "logged_out",
            WorkState::Available => "available",
            WorkState::Paused => "paused",
        }
    }
}

#[derive(Debug, Clone)]
struct Session {
    id: Uuid,
    since: DateTime<Utc>,
    queues: Vec<String>,
    paused: Option<(DateTime<Utc>, Option<String>)>,
}

#[derive(Debug, Clone)]
struct Entry {
    name: String,
    session: Option<Session>,
}

/// What an admin asks of an operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start work in these queues.
    Login { queues: Vec<String> },
    /// Stop work.
    Logout,
    /// Take no calls for a while.
    Pause { reason: Option<String> },
    /// Take calls again.
    Unpause,
}

impl Action {
    fn verb(&self) -> &'static str {
        match self {
            Action::Login { .. } => "log in",
            Action::Logout => "log out",
            Action::Pause { .. } => "pause",
            Action::Unpause => "unpause",
        }
    }
}

/// Why an action was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OperatorError {
    /// No configured operator has this login.
    #[error("no operator {0:?}")]
    Unknown(String),
    /// The action does not apply to the operator's state.
    #[error("operator {operator:?} is {state}: cannot {action}", state = .state.as_str())]
    WrongState {
        operator: String,
        state: WorkState,
        action: &'static str,
    },
}

/// One operator as `GET /api/v1/operators` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct OperatorView {
    /// Login (the SIP user).
    pub id: String,
    /// Display name.
    pub name: String,
    pub state: WorkState,
    /// Queues logged in to.
    pub queues: Vec<String>,
    /// Start of the current session.
    pub logged_in_since: Option<DateTime<Utc>>,
    pub paused_since: Option<DateTime<Utc>>,
    pub pause_reason: Option<String>,
    /// The `operator_sessions` row of the current session.
    pub session: Option<Uuid>,
    /// Whether a phone is registered for this operator.
    pub registered: bool,
    /// The registered contacts.
    pub contacts: Vec<ContactView>,
    /// What the ACD has the operator doing: `ringing`, `on_call`, `wrap_up`, or `null` when
    /// idle, paused or logged out (see `state`).
    pub activity: Option<&'static str>,
}

/// A registered contact.
#[derive(Debug, Clone, Serialize)]
pub struct ContactView {
    pub contact: String,
    pub source: String,
    pub transport: &'static str,
    /// Seconds until the binding runs out unless the phone refreshes it.
    pub expires_in_seconds: u64,
}

/// The operators' work state, keyed by login.
#[derive(Debug, Default)]
pub struct OperatorTable {
    inner: Mutex<BTreeMap<String, Entry>>,
}

impl OperatorTable {
    /// A table of logged-out operators: (login, display name).
    pub fn new(operators: impl IntoIterator<Item = (String, String)>) -> Self {
        OperatorTable {
            inner: Mutex::new(
                operators
                    .into_iter()
                    .map(|(login, name)| {
                        (
                            login,
                            Entry {
                                name,
                                session: None,
                            },
                        )
                    })
                    .collect(),
            ),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Entry>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies `action` to operator `id`, writing logins and logouts to `operator_sessions`.
    pub fn apply(
        &self,
        id: &str,
        action: Action,
        writer: &AppealWriter,
    ) -> Result<(), OperatorError> {
        let mut table = self.lock();
        let entry = table
            .get_mut(id)
            .ok_or_else(|| OperatorError::Unknown(id.to_owned()))?;
        let refuse = |state| OperatorError::WrongState {
            operator: id.to_owned(),
            state,
            action: action.verb(),
        };
        let now = Utc::now();
        match (&mut entry.session, &action) {
            (None, Action::Login { queues }) => {
                let session = writer.operator_login(id, queues);
                entry.session = Some(Session {
                    id: session,
                    since: now,
                    queues: queues.clone(),
                    paused: None,
                });
            }
            (Some(s), Action::Logout) => {
                writer.operator_logout(s.id, "logout");
                entry.session = None;
            }
            (Some(s), Action::Pause { reason }) if s.paused.is_none() => {
                s.paused = Some((now, reason.clone()));
            }
            (Some(s), Action::Unpause) if s.paused.is_some() => {
                s.paused = None;
            }
            (session, _) => return Err(refuse(state_of(session.as_ref()))),
        }
        writer.operator_state(saved_state(id, entry.session.as_ref()));
        tracing::info!(
            operator = id,
            action = action.verb(),
            "operator state changed"
        );
        Ok(())
    }

    /// Brings back the saved state of configured operators (unknown ones are skipped): each
    /// logged-in operator gets a new `operator_sessions` row and keeps the saved login time,
    /// queues and pause. Returns how many were logged in.
    pub fn restore(&self, saved: &[appeals::OperatorStateRow], writer: &AppealWriter) -> usize {
        let mut table = self.lock();
        let mut n = 0;
        for st in saved.iter().filter(|s| s.logged_in) {
            let Some(entry) = table.get_mut(&st.operator) else {
                tracing::info!(operator = %st.operator, "saved state of an operator no longer configured: skipped");
                continue;
            };
            let session = writer.operator_login(&st.operator, &st.queues);
            entry.session = Some(Session {
                id: session,
                since: st.since.unwrap_or(st.updated_at),
                queues: st.queues.clone(),
                paused: st.paused_since.map(|t| (t, st.pause_reason.clone())),
            });
            n += 1;
        }
        n
    }

    /// The table's state as commands for the ACD: `Login`, then `Pause` for paused operators.
    pub fn as_commands(&self) -> Vec<(String, gateway::OperatorCommand)> {
        let mut out = Vec::new();
        for (id, e) in self.lock().iter() {
            let Some(s) = &e.session else {
                continue;
            };
            out.push((
                id.clone(),
                gateway::OperatorCommand::Login {
                    queues: s.queues.clone(),
                },
            ));
            if let Some((_, reason)) = &s.paused {
                out.push((
                    id.clone(),
                    gateway::OperatorCommand::Pause {
                        reason: reason.clone().unwrap_or_default(),
                    },
                ));
            }
        }
        out
    }

    /// Follows a reloaded operators file: new operators join logged out, removed ones leave
    /// (an open session ends with reason `removed`, and their saved state says logged out),
    /// display names are updated. Returns the logins (added, removed).
    pub fn sync(
        &self,
        operators: impl IntoIterator<Item = (String, String)>,
        writer: &AppealWriter,
    ) -> (Vec<String>, Vec<String>) {
        let wanted: BTreeMap<String, String> = operators.into_iter().collect();
        let mut table = self.lock();
        let removed: Vec<String> = table
            .keys()
            .filter(|k| !wanted.contains_key(*k))
            .cloned()
            .collect();
        for id in &removed {
            if let Some(Entry {
                session: Some(s), ..
            }) = table.remove(id)
            {
                writer.operator_logout(s.id, "removed");
                writer.operator_state(saved_state(id, None));
            }
        }
        let mut added = Vec::new();
        for (id, name) in wanted {
            match table.get_mut(&id) {
                Some(e) => e.name = name,
                None => {
                    added.push(id.clone());
                    table.insert(
                        id,
                        Entry {
                            name,
                            session: None,
                        },
                    );
                }
            }
        }
        (added, removed)
    }

    /// A logged-in operator now works in `queues` (a reload changed their skills and the ACD
    /// resolved the login again): the session shows them and the saved state keeps them.
    /// Nothing for a logged-out or unknown operator.
    pub fn set_queues(&self, id: &str, queues: &[String], writer: &AppealWriter) {
        let mut table = self.lock();
        let Some(Entry {
            session: Some(s), ..
        }) = table.get_mut(id)
        else {
            return;
        };
        if s.queues == queues {
            return;
        }
        s.queues = queues.to_vec();
        writer.operator_state(saved_state(id, Some(s)));
        tracing::info!(operator = id, queues = ?queues, "operator's queues follow new skills");
    }

    /// Ends every open session (the daemon is stopping).
    pub fn logout_all(&self, writer: &AppealWriter, reason: &str) {
        for entry in self.lock().values_mut() {
            if let Some(s) = entry.session.take() {
                writer.operator_logout(s.id, reason);
            }
        }
    }

    /// Operators by state: (logged out, available, paused).
    pub fn counts(&self) -> [(WorkState, u64); 3] {
        let mut n = [0u64; 3];
        for e in self.lock().values() {
            n[match state_of(e.session.as_ref()) {
                WorkState::LoggedOut => 0,
                WorkState::Available => 1,
                WorkState::Paused => 2,
            }] += 1;
        }
        [
            (WorkState::LoggedOut, n[0]),
            (WorkState::Available, n[1]),
            (WorkState::Paused, n[2]),
        ]
    }

    /// Logged-in and available operators of each queue.
    pub fn in_queue(&self, queue: &str) -> (u64, u64) {
        let (mut logged_in, mut available) = (0, 0);
        for s in self.lock().values().filter_map(|e| e.session.as_ref()) {
            if s.queues.iter().any(|q| q == queue) {
                logged_in += 1;
                if s.paused.is_none() {
                    available += 1;
                }
            }
        }
        (logged_in, available)
    }

    /// Every operator, by login, with the registered contacts in `contacts`.
    pub fn views(&self, contacts: &[RegisteredContact], now: Instant) -> Vec<OperatorView> {
        self.lock()
            .iter()
            .map(|(id, e)| view(id, e, contacts, now))
            .collect()
    }

    /// One operator.
    pub fn view_of(
        &self,
        id: &str,
        contacts: &[RegisteredContact],
        now: Instant,
    ) -> Option<OperatorView> {
        self.lock().get(id).map(|e| view(id, e, contacts, now))
    }
}

/// The row `operator_state` keeps for an operator in this state.
fn saved_state(id: &str, s: Option<&Session>) -> appeals::OperatorStateRow {
    appeals::OperatorStateRow {
        operator: id.to_owned(),
        logged_in: s.is_some(),
        queues: s.map(|s| s.queues.clone()).unwrap_or_default(),
        since: s.map(|s| s.since),
        paused_since: s.and_then(|s| s.paused.as_ref().map(|p| p.0)),
        pause_reason: s.and_then(|s| s.paused.as_ref().and_then(|p| p.1.clone())),
        // the writer stamps the time it takes the change
        updated_at: Utc::now(),
    }
}

/// The operator table as the gateway's [`gateway::OperatorBook`]: feature codes and admin
/// commands reaching the gateway are checked and recorded here before the ACD hears of them.
pub struct TableBook {
    pub table: std::sync::Arc<OperatorTable>,
    pub writer: AppealWriter,
}

impl gateway::OperatorBook for TableBook {
    fn apply(
        &self,
        operator: &str,
        cmd: &gateway::OperatorCommand,
    ) -> Result<(), gateway::OperatorRefusal> {
        let action = match cmd {
            gateway::OperatorCommand::Login { queues } => Action::Login {
                queues: queues.clone(),
            },
            gateway::OperatorCommand::Logout => Action::Logout,
            gateway::OperatorCommand::Pause { reason } => Action::Pause {
                reason: (!reason.is_empty()).then(|| reason.clone()),
            },
            gateway::OperatorCommand::Unpause => Action::Unpause,
        };
        self.table
            .apply(operator, action, &self.writer)
            .map_err(|e| match e {
                OperatorError::Unknown(id) => gateway::OperatorRefusal::Unknown(id),
                OperatorError::WrongState {
                    operator,
                    state,
                    action,
                } => gateway::OperatorRefusal::WrongState {
                    operator,
                    state: state.as_str(),
                    action,
                },
            })
    }

    fn restored(&self) -> Vec<(String, gateway::OperatorCommand)> {
        self.table.as_commands()
    }

    fn queues_changed(&self, operator: &str, queues: &[String]) {
        self.table.set_queues(operator, queues, &self.writer);
    }
}

fn state_of(s: Option<&Session>) -> WorkState {
    match s {
        None => WorkState::LoggedOut,
        Some(s) if s.paused.is_some() => WorkState::Paused,
        Some(_) => WorkState::Available,
    }
}

fn view(id: &str, e: &Entry, contacts: &[RegisteredContact], now: Instant) -> OperatorView {
    let contacts: Vec<ContactView> = contacts
        .iter()
        .filter(|c| c.operator == id && c.expires_at > now)
        .map(|c| ContactView {
            contact: c.contact.clone(),
            source: c.source.to_string(),
            transport: c.transport,
            expires_in_seconds: c.expires_at.saturating_duration_since(now).as_secs(),
        })
        .collect();
    let s = e.session.as_ref();
    OperatorView {
        id: id.to_owned(),
        name: e.name.clone(),
        state: state_of(s),
        queues: s.map(|s| s.queues.clone()).unwrap_or_default(),
        logged_in_since: s.map(|s| s.since),
        paused_since: s.and_then(|s| s.paused.as_ref().map(|p| p.0)),
        pause_reason: s.and_then(|s| s.paused.as_ref().and_then(|p| p.1.clone())),
        session: s.map(|s| s.id),
        registered: !contacts.is_empty(),
        contacts,
        activity: None,
    }
}

/// `v` with the ACD's live activity of its operator.
fn with_activity(mut v: OperatorView, board: &gateway::live::ActivityBoard) -> OperatorView {
    v.activity = board.of(&v.id).map(gateway::live::Activity::as_str);
    v
}

/// One queue's live state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueueState {
    pub name: String,
    /// What the queue is for (`title` in the queues file).
    pub title: String,
    /// Wrap-up after each call, seconds.
    pub wrap_up_seconds: u64,
    /// Callers waiting now.
    pub waiting: u64,
    /// How long the longest-waiting caller has waited, seconds.
    pub longest_wait_seconds: u64,
}

/// The configured queues, so that `/api/v1/queues` and `/metrics` list every queue even while
/// nobody waits in it; the live figures come from `gateway::Stats::queue_waits`.
#[derive(Debug, Default)]
pub struct QueueBoard {
    inner: Mutex<Vec<QueueState>>,
}

impl QueueBoard {
    /// Empty queues with these names.
    #[cfg(test)]
    pub fn new(names: impl IntoIterator<Item = String>) -> Self {
        QueueBoard {
            inner: Mutex::new(
                names
                    .into_iter()
                    .map(|name| QueueState {
                        name,
                        title: String::new(),
                        wrap_up_seconds: 0,
                        waiting: 0,
                        longest_wait_seconds: 0,
                    })
                    .collect(),
            ),
        }
    }

    /// The queues now.
    /// The configured queues: (name, title, wrap-up seconds).
    pub fn described(queues: impl IntoIterator<Item = (String, String, u64)>) -> Self {
        QueueBoard {
            inner: Mutex::new(
                queues
                    .into_iter()
                    .map(|(name, title, wrap_up_seconds)| QueueState {
                        name,
                        title,
                        wrap_up_seconds,
                        waiting: 0,
                        longest_wait_seconds: 0,
                    })
                    .collect(),
            ),
        }
    }

    pub fn snapshot(&self) -> Vec<QueueState> {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// `GET /api/v1/queues`.
pub async fn queues(State(s): State<AdminState>) -> Response {
    // the same figures as `/metrics`: what the gateway sees, plus every configured queue
    let queues: Vec<_> = super::metrics::queue_figures(&s, Instant::now())
        .into_iter()
        .map(|(name, waiting, longest)| {
            let (logged_in, available) = s.operators.in_queue(&name);
            json!({
                "name": name,
                "waiting": waiting,
                "longest_wait_seconds": longest,
                "operators_logged_in": logged_in,
                "operators_available": available,
            })
        })
        .collect();
    Json(json!({ "queues": queues })).into_response()
}

/// `GET /api/v1/operators` (an operator sees their own line).
pub async fn list(State(s): State<AdminState>, Extension(who): Extension<Caller>) -> Response {
    let contacts = s.stats.registered_contacts();
    let views: Vec<OperatorView> = s
        .operators
        .views(&contacts, Instant::now())
        .into_iter()
        .filter(|v| who.sees_all() || v.id == who.id)
        .map(|v| with_activity(v, &s.stats.activity))
        .collect();
    Json(json!({ "operators": views })).into_response()
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    #[serde(default)]
    queues: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PauseBody {
    reason: Option<String>,
}

/// An optional JSON body: empty means the defaults.
fn optional_body<T: Default + serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    super::json_body(body)
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

async fn act(
    s: AdminState,
    who: Caller,
    id: Result<Path<String>, PathRejection>,
    action: Action,
) -> Result<Response, ApiError> {
    let Path(id) = id.map_err(|e| ApiError::bad_request(e.body_text()))?;
    if !who.sees_all() && id != who.id {
        return Err(ApiError::forbidden(
            "an operator changes only their own state",
        ));
    }
    let verb = action.verb();
    command(&s, &id, action).await?;
    s.audit(who.audit(
        "operator_changed",
        Some(id.clone()),
        json!({ "command": verb }),
    ))
    .await;
    let contacts = s.stats.registered_contacts();
    match s.operators.view_of(&id, &contacts, Instant::now()) {
        Some(v) => Ok(Json(with_activity(v, &s.stats.activity)).into_response()),
        None => Err(ApiError::not_found(format!("no operator {id:?}"))),
    }
}

/// Carries out one operator command as the API and the softphones' feature codes do: through
/// the running gateway (the table as its operator book, then the ACD), or the table alone
/// without one. What `POST /api/v1/operators/{id}/…` and the disposition hold
/// (`crate::disposition_hold`) use.
pub(crate) async fn command(s: &AdminState, id: &str, action: Action) -> Result<(), ApiError> {
    let id = id.to_owned();
    let cmd = match &action {
        Action::Login { queues } => gateway::OperatorCommand::Login {
            queues: queues.clone(),
        },
        Action::Logout => gateway::OperatorCommand::Logout,
        Action::Pause { reason } => gateway::OperatorCommand::Pause {
            reason: reason.clone().unwrap_or_default(),
        },
        Action::Unpause => gateway::OperatorCommand::Unpause,
    };
    // With a running gateway the change goes through it — the same code as a softphone's
    // feature code: the table (as the gateway's operator book), then the ACD. Without one
    // (tests of the API alone, or the gateway stopping) the table alone takes it.
    let direct = |action| {
        s.operators
            .apply(&id, action, &s.writer)
            .map_err(|e| match e {
                OperatorError::Unknown(_) => ApiError::not_found(e.to_string()),
                OperatorError::WrongState { .. } => ApiError::conflict(e.to_string()),
            })
    };
    match &s.acd {
        None => direct(action)?,
        Some(acd) => match acd.apply(&id, cmd).await {
            Ok(()) => {}
            Err(gateway::OperatorControlError::Refused(e)) => {
                return Err(match e {
                    gateway::OperatorRefusal::Unknown(_) => ApiError::not_found(e.to_string()),
                    gateway::OperatorRefusal::WrongState { .. } => {
                        ApiError::conflict(e.to_string())
                    }
                })
            }
            Err(gateway::OperatorControlError::Stopped) => direct(action)?,
            // a login naming a queue outside the operator's skills: nothing was changed
            Err(gateway::OperatorControlError::Acd(
                e @ (acd::AcdError::NotSkilled { .. } | acd::AcdError::UnknownQueue(_)),
            )) => return Err(ApiError::unprocessable(e.to_string())),
            // the table took it; the ACD decides who is offered calls
            Err(e) => tracing::warn!(operator = %id, error = %e, "the ACD did not take the change"),
        },
    }
    Ok(())
}

/// `POST /api/v1/operators/{id}/login` with an optional `{ "queues": [...] }`.
pub async fn login(
    State(s): State<AdminState>,
    Extension(who): Extension<Caller>,
    id: Result<Path<String>, PathRejection>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let b: LoginBody = optional_body(&body)?;
    if b.queues.len() > 32 || !b.queues.iter().all(|q| valid_name(q)) {
        return Err(ApiError::unprocessable(
            "queues: at most 32 names of letters, digits, - _ .",
        ));
    }
    act(s, who, id, Action::Login { queues: b.queues }).await
}

/// `POST /api/v1/operators/{id}/logout`.
pub async fn logout(
    State(s): State<AdminState>,
    Extension(who): Extension<Caller>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    act(s, who, id, Action::Logout).await
}

/// `POST /api/v1/operators/{id}/pause` with an optional `{ "reason": "…" }`.
pub async fn pause(
    State(s): State<AdminState>,
    Extension(who): Extension<Caller>,
    id: Result<Path<String>, PathRejection>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let b: PauseBody = optional_body(&body)?;
    if let Some(r) = &b.reason {
        if r.chars().count() > 200 || r.chars().any(char::is_control) {
            return Err(ApiError::unprocessable(
                "reason must be at most 200 characters on one line",
            ));
        }
    }
    act(s, who, id, Action::Pause { reason: b.reason }).await
}

/// `POST /api/v1/operators/{id}/unpause`.
pub async fn unpause(
    State(s): State<AdminState>,
    Extension(who): Extension<Caller>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    act(s, who, id, Action::Unpause).await
}
