//! Appeals: every call becomes an appeal (обращение) record that the service follows up,
//! forwards and reports on. This crate is the store under the daemon's admin API:
//!
//! - [`AppealWriter`] — the call path's handle. Plain, never-waiting methods append each
//!   operation to an on-disk spool; a writer task commits the spool to the database in
//!   batches, in order, surviving database outages and `kill -9` (see [`writer`]).
//! - [`operator_state`] — operators' logins and pauses saved through the same spool and
//!   read back at start.
//! - [`access`] — accounts, sessions, API tokens, login throttling, the audit log and
//!   retention (masking old caller numbers).
//! - [`partner`] — the outbox and inbox of the partner-centre exchange.
//! - [`Store`] — search, one appeal with its timeline, the admin's changes (recorded as events
//!   with who made them) and the [`DailyReport`].
//!
//! SQLite (WAL, created on first run) or PostgreSQL, chosen by the URL, through
//! `sqlx::AnyPool` with the same portable SQL; the schema is embedded (`migrations/`).
//! Times are `chrono::DateTime<Utc>`, stored as UTC milliseconds.
//!
//! Invariants: nothing here knows about SIP or sockets; the only files it writes are the
//! database (SQLite) and the spool folder.

pub mod access;
mod batch;
pub mod cases;
pub mod db;
mod missed;
pub mod model;
pub mod operator_state;
pub mod partner;
pub mod report;
pub mod spool;
pub mod store;
pub mod writer;

use std::path::PathBuf;

pub use access::{
    AuditEntry, AuditFilter, AuditRow, Masked, NewUser, Role, SessionRecord, Throttle, TokenInfo,
    User, UserChange,
};
pub use cases::{
    CaseChange, Citizen, CitizenFields, CitizenFilter, CitizenPatch, Consent, Flag, MissedCaller,
    Worklist,
};
pub use db::Backend;
pub use model::{
    Appeal, AppealEvent, AppealId, AppealUpdate, AppealWithEvents, Callback, CallbackProgress,
    CallbackStatus, EventKind, NewAppeal, NewCallback, OperatorSession, OperatorStateRow, Outcome,
    Status, UnknownValue,
};
pub use partner::{
    ForwardAccepted, ForwardCase, ForwardMessage, ForwardOrder, OutboxKind, OutboxMessage,
    OutboxRow, Received, StatusMessage, StatusMove, UpdateApplied, UpdateMessage,
};
pub use report::{DailyReport, Figures, Group, HourFigures, ReportOptions};
pub use store::{search_terms, Page, SearchFilter, Store, MAX_TERMS};
pub use writer::{AppealWriter, WriterConfig, WriterStats};

/// Serde helper for a field that may be absent (`None`), `null` (`Some(None)`: cleared) or a
/// value: `#[serde(default, deserialize_with = "appeals::nullable")]`.
pub fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    <Option<T> as serde::Deserialize>::deserialize(d).map(Some)
}

/// The form phone numbers are matched in: the digits of `number` with `+`, spaces, dashes
/// and brackets removed, and the national prefixes made international — 11 digits `80…`
/// (Belarus) become `375…`, 11 digits `8…` become `7…`, 10 digits `9…` (a Russian mobile
/// without prefix) become `79…`. Migration 6 computes the same key in SQL for the calls
/// stored before it: change both together.
pub fn phone_key(number: &str) -> String {
    let k: String = number
        .chars()
        .filter(|c| !matches!(c, '+' | ' ' | '-' | '(' | ')'))
        .collect();
    // lengths in characters, as SQL's LENGTH counts them
    let len = k.chars().count();
    if len == 11 && k.starts_with("80") {
        format!("375{}", &k[2..])
    } else if len == 11 && k.starts_with('8') {
        format!("7{}", &k[1..])
    } else if len == 10 && k.starts_with('9') {
        format!("7{k}")
    } else {
        k
    }
}

/// What can go wrong in the appeal store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database refused or could not be reached.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// The URL names no database we support.
    #[error("unsupported database URL {0:?}: expected sqlite:… or postgres://…")]
    UnsupportedUrl(String),
    /// The SQLite file's folder could not be made.
    #[error("cannot create the database folder {path}: {source}")]
    CreateDir {
        /// The folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A schema migration failed.
    #[error("database migration {version} failed: {source}")]
    Migration {
        /// Its version.
        version: i64,
        /// Why.
        source: sqlx::Error,
    },
    /// The spool file could not be opened, read or written.
    #[error("appeal spool {path}: {source}")]
    Spool {
        /// The file or folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The spool folder holds operations written for another database: replaying them here
    /// would put that database's appeals into this one.
    #[error("the appeal spool {dir} holds {waiting} operations written for the database {owner}, not for {database}: start with that database to write them there, or run `hotlined spool adopt` to write them into this one")]
    SpoolOfAnotherDatabase {
        /// The spool folder.
        dir: PathBuf,
        /// The database the spool belongs to ([`spool::database_identity`]).
        owner: String,
        /// The database this daemon was given.
        database: String,
        /// Operations waiting in the spool.
        waiting: u64,
    },
    /// No appeal has this id.
    #[error("appeal {0} not found")]
    NotFound(AppealId),
    /// Only `new` and `in_progress` appeals can be forwarded to the partner centre.
    #[error("appeal {id} is {status}: only new or in_progress appeals can be forwarded")]
    NotForwardable {
        /// The appeal.
        id: AppealId,
        /// Its status.
        status: Status,
    },
    /// The appeal was sent to the partner centre before.
    #[error("appeal {0} was already forwarded to the partner centre")]
    AlreadyForwarded(AppealId),
    /// No citizen has this id.
    #[error("citizen {0} not found")]
    CitizenNotFound(uuid::Uuid),
    /// The record changed since the version the edit was made on; nothing was written.
    #[error("the {what} {id} has changed: it is at version {current}; reload it and edit again")]
    Stale {
        /// `appeal` or `citizen`.
        what: &'static str,
        /// Its id.
        id: String,
        /// Its version now.
        current: i64,
    },
    /// The workflow does not allow this status change.
    #[error("appeal {id} is {from}: it cannot become {to}")]
    Transition {
        /// The appeal.
        id: AppealId,
        /// Its status.
        from: Status,
        /// The status asked for.
        to: Status,
    },
    /// The partner asked to reopen our copy of its appeal, which is not closed.
    #[error("appeal {id} is {status}, not done or declined: there is nothing to reopen")]
    NotReopenable {
        /// Our appeal.
        id: AppealId,
        /// Its status.
        status: Status,
    },
    /// An account with this login exists already.
    #[error("user {0:?} exists already")]
    UserExists(String),
    /// No account has this login.
    #[error("no user {0:?}")]
    NoUser(String),
    /// A stored value could not be read back.
    #[error("column {column} holds an invalid value {value:?}")]
    BadValue {
        /// The column.
        column: &'static str,
        /// What it held.
        value: String,
    },
}
