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
pub mod db;
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
pub use db::Backend;
pub use model::{
    Appeal, AppealEvent, AppealId, AppealUpdate, AppealWithEvents, Callback, CallbackProgress,
    CallbackStatus, EventKind, NewAppeal, NewCallback, OperatorSession, OperatorStateRow, Outcome,
    Status, UnknownValue,
};
pub use partner::{
    ForwardAccepted, ForwardMessage, ForwardOrder, OutboxKind, OutboxMessage, OutboxRow, Received,
    StatusMessage,
};
pub use report::{DailyReport, Figures, Group, HourFigures, ReportOptions};
pub use store::{Page, SearchFilter, Store};
pub use writer::{AppealWriter, WriterConfig, WriterStats};

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
