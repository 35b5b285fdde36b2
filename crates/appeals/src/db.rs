//! Connecting to SQLite or PostgreSQL through `sqlx::AnyPool`, the embedded migrations, and
//! the SQL that applies one write operation. All SQL here is portable: `$N` placeholders
//! (SQLite accepts them too), BIGINT milliseconds for times, TEXT for everything else.

use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::any::AnyPoolOptions;
use sqlx::AnyConnection;
use sqlx::{AnyPool, Connection, Executor, Row};
use uuid::Uuid;

use crate::model::{
    AppealId, CallbackProgress, CallbackStatus, EventKind, NewCallback, OperatorStateRow,
};
use crate::Error;

/// Which database a URL names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// `sqlite://path` or `sqlite:path`.
    Sqlite,
    /// `postgres://…` or `postgresql://…`.
    Postgres,
}

impl Backend {
    /// Tells the backend from the URL's scheme.
    pub fn from_url(url: &str) -> Result<Self, Error> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else {
            Err(Error::UnsupportedUrl(redact_url(url)))
        }
    }
}

/// The URL without any password, for messages and logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}://{}:***{}", &url[..s], &creds[..c], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// One migration: version and SQL text, embedded in the binary.
struct Migration {
    version: i64,
    name: &'static str,
    sql: &'static str,
    /// Run after `sql` on SQLite only, and on PostgreSQL only (full text search).
    sqlite: &'static str,
    postgres: &'static str,
}

/// The schema's history. Append only; never edit a released entry.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "init",
        sql: include_str!("../migrations/0001_init.sql"),
        sqlite: "",
        postgres: "",
    },
    Migration {
        version: 2,
        name: "partner",
        sql: include_str!("../migrations/0002_partner.sql"),
        sqlite: "",
        postgres: "",
    },
    Migration {
        version: 3,
        name: "operator_state",
        sql: include_str!("../migrations/0003_operator_state.sql"),
        sqlite: "",
        postgres: "",
    },
    Migration {
        version: 4,
        name: "callback_result",
        sql: include_str!("../migrations/0004_callback_result.sql"),
        sqlite: "",
        postgres: "",
    },
    Migration {
        version: 5,
        name: "access",
        sql: include_str!("../migrations/0005_access.sql"),
        sqlite: "",
        postgres: "",
    },
    Migration {
        version: 6,
        name: "cases",
        sql: include_str!("../migrations/0006_cases.sql"),
        sqlite: "",
        postgres: "",
    },
    Migration {
        version: 7,
        name: "search",
        sql: include_str!("../migrations/0007_search.sql"),
        sqlite: include_str!("../migrations/0007_search.sqlite.sql"),
        postgres: include_str!("../migrations/0007_search.postgres.sql"),
    },
    Migration {
        version: 8,
        name: "partner_update",
        sql: include_str!("../migrations/0008_partner_update.sql"),
        sqlite: "",
        postgres: "",
    },
];

/// Splits a SQLite URL into the file path (None for in-memory) and the query string.
pub(crate) fn sqlite_path(url: &str) -> (Option<PathBuf>, Option<&str>) {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    if path.is_empty() || path == ":memory:" {
        (None, query)
    } else {
        (Some(PathBuf::from(path)), query)
    }
}

/// Makes the SQLite URL create the file on first run, and creates its folder.
fn prepare_sqlite(url: &str) -> Result<String, Error> {
    let (path, query) = sqlite_path(url);
    if let Some(parent) = path.as_deref().and_then(Path::parent) {
        if !parent.as_os_str().is_empty() {
            std::fs::create_dir_all(parent).map_err(|source| Error::CreateDir {
                path: parent.to_owned(),
                source,
            })?;
        }
    }
    let has_mode = query.is_some_and(|q| q.split('&').any(|kv| kv.starts_with("mode=")));
    Ok(match (has_mode, query) {
        (true, _) => url.to_owned(),
        (false, None) => format!("{url}?mode=rwc"),
        (false, Some(_)) => format!("{url}&mode=rwc"),
    })
}

static DRIVERS: Once = Once::new();

/// How long a pooled connection may stay idle before the pool closes it.
const IDLE_CONNECTION: Duration = Duration::from_secs(30);

/// Opens a pool: SQLite in WAL mode (file and folder created if missing) or PostgreSQL.
/// Does not migrate; see [`migrate`].
pub async fn connect(
    url: &str,
    max_connections: u32,
    acquire_timeout: Duration,
) -> Result<AnyPool, Error> {
    DRIVERS.call_once(sqlx::any::install_default_drivers);
    let backend = Backend::from_url(url)?;
    let url = match backend {
        Backend::Sqlite => prepare_sqlite(url)?,
        Backend::Postgres => url.to_owned(),
    };
    // Connections opened for a burst of readers close after half a minute idle (sqlx keeps
    // them 10 minutes by default): each SQLite connection holds its own page cache, so a
    // burst would otherwise keep megabytes it no longer needs.
    let pool = AnyPoolOptions::new()
        .max_connections(max_connections)
        .min_connections(1)
        .idle_timeout(Some(IDLE_CONNECTION))
        .acquire_timeout(acquire_timeout)
        .after_connect(move |conn, _meta| {
            Box::pin(async move {
                if backend == Backend::Sqlite {
                    // WAL lets the admin API read while the writer task writes.
                    conn.execute("PRAGMA journal_mode = WAL").await?;
                }
                Ok(())
            })
        })
        .connect(&url)
        .await?;
    Ok(pool)
}

/// Applies the embedded migrations that the database has not seen yet, each in its own
/// transaction, recorded in `hotline_migrations`.
pub async fn migrate(pool: &AnyPool) -> Result<(), Error> {
    pool.execute(
        "CREATE TABLE IF NOT EXISTS hotline_migrations (\
            version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
    )
    .await?;
    let applied: Vec<i64> = sqlx::query("SELECT version FROM hotline_migrations")
        .fetch_all(pool)
        .await?
        .iter()
        .map(|r| r.try_get::<i64, _>(0))
        .collect::<Result<_, _>>()?;
    for m in MIGRATIONS.iter().filter(|m| !applied.contains(&m.version)) {
        let mut tx = pool.begin().await?;
        let wrap = |source| Error::Migration {
            version: m.version,
            source,
        };
        // A plain string with no arguments runs as a multi-statement script on both backends.
        (&mut *tx).execute(m.sql).await.map_err(wrap)?;
        let own = if tx.backend_name().eq_ignore_ascii_case("sqlite") {
            m.sqlite
        } else {
            m.postgres
        };
        if !own.is_empty() {
            (&mut *tx).execute(own).await.map_err(wrap)?;
        }
        if m.version == 7 {
            // the missed callers table starts with every caller missed so far
            crate::missed::refresh(&mut tx, None).await.map_err(wrap)?;
        }
        sqlx::query(
            "INSERT INTO hotline_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
        )
        .bind(m.version)
        .bind(m.name)
        .bind(Utc::now().timestamp_millis())
        .execute(&mut *tx)
        .await
        .map_err(wrap)?;
        tx.commit().await.map_err(wrap)?;
        tracing::info!(version = m.version, name = m.name, "applied migration");
    }
    Ok(())
}

/// Begins a transaction that is going to write. On SQLite it is `BEGIN IMMEDIATE`: a plain
/// (deferred) transaction that reads first and writes later cannot wait for the lock when
/// another connection (the writer task, an admin request) committed in between — SQLite
/// fails it at once with "database is locked" — while an immediate one takes the write lock
/// up front and waits for it under the busy timeout. PostgreSQL: plain `BEGIN`.
pub(crate) async fn begin_write(
    conn: &mut AnyConnection,
) -> Result<sqlx::Transaction<'_, sqlx::Any>, sqlx::Error> {
    if conn.backend_name().eq_ignore_ascii_case("sqlite") {
        conn.begin_with("BEGIN IMMEDIATE").await
    } else {
        conn.begin().await
    }
}

pub(crate) fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// What happened to an event write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventWrite {
    /// Stored with this sequence number.
    Stored(i64),
    /// Already there (a replay) or its appeal does not exist; nothing written.
    Skipped,
}

/// Appends an event to an appeal's timeline (the admin side's single events; the writer
/// task numbers whole batches in `batch`). The sequence number comes from the appeal row's
/// `last_seq`, bumped in the same statement that checks the event is new: the row lock
/// orders concurrent writers on PostgreSQL, and a replayed event (same id) changes nothing.
pub(crate) async fn append_event(
    conn: &mut AnyConnection,
    appeal: AppealId,
    event_id: Uuid,
    at: DateTime<Utc>,
    kind: EventKind,
    data: &serde_json::Value,
    actor: Option<&str>,
) -> Result<EventWrite, sqlx::Error> {
    let appeal = appeal.to_string();
    let event_id = event_id.to_string();
    let seq = sqlx::query(
        "UPDATE appeals SET last_seq = last_seq + 1 \
         WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM appeal_events WHERE id = $2) \
         RETURNING last_seq",
    )
    .bind(&appeal)
    .bind(&event_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = seq else {
        return Ok(EventWrite::Skipped);
    };
    let seq: i64 = row.try_get(0)?;
    sqlx::query(
        "INSERT INTO appeal_events (id, appeal_id, seq, at, kind, data, actor) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING",
    )
    .bind(event_id)
    .bind(appeal)
    .bind(seq)
    .bind(ms(at))
    .bind(kind.as_str())
    .bind(data.to_string())
    .bind(actor.map(str::to_owned))
    .execute(&mut *conn)
    .await?;
    Ok(EventWrite::Stored(seq))
}

/// Stores a booked callback; one with the same id already there is left alone.
pub(crate) async fn insert_callback(
    conn: &mut AnyConnection,
    id: Uuid,
    c: &NewCallback,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO callbacks (id, appeal_id, number, number_key, queue, requested_at, due_at, \
         status, attempts, updated_at) \
         VALUES ($1, $2, $3, $8, $4, $5, $6, 'pending', 0, $7) ON CONFLICT (id) DO NOTHING",
    )
    .bind(id.to_string())
    .bind(c.appeal_id.to_string())
    .bind(&c.number)
    .bind(c.queue.clone())
    .bind(ms(c.requested_at))
    .bind(c.due_at.map(ms))
    .bind(ms(c.requested_at))
    .bind(crate::phone_key(&c.number))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Where the callback booked on `appeal` stands after an attempt (absolute values, so replays
/// are harmless). Only a callback still pending or dialling changes: a finished one keeps its
/// end, and a replayed older step never reopens it.
pub(crate) async fn update_callbacks_of_appeal(
    conn: &mut AnyConnection,
    appeal: AppealId,
    at: DateTime<Utc>,
    p: &CallbackProgress,
) -> Result<(), sqlx::Error> {
    let finished = matches!(
        p.status,
        CallbackStatus::Done | CallbackStatus::Failed | CallbackStatus::Cancelled
    );
    sqlx::query(
        "UPDATE callbacks SET status = $2, attempts = $3, operator = COALESCE($4, operator), \
         last_result = COALESCE($5, last_result), completed_at = $6, updated_at = $7 \
         WHERE appeal_id = $1 AND status IN ('pending', 'dialling')",
    )
    .bind(appeal.to_string())
    .bind(p.status.as_str())
    .bind(p.attempts)
    .bind(p.operator.clone())
    .bind(p.last_result.clone())
    .bind(finished.then_some(ms(at)))
    .bind(ms(at))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Sets a callback's status and attempt count (absolute values, so replays are harmless).
pub(crate) async fn update_callback(
    conn: &mut AnyConnection,
    id: Uuid,
    at: DateTime<Utc>,
    status: CallbackStatus,
    attempts: i64,
    operator: Option<&str>,
) -> Result<(), sqlx::Error> {
    let finished = matches!(
        status,
        CallbackStatus::Done | CallbackStatus::Failed | CallbackStatus::Cancelled
    );
    sqlx::query(
        "UPDATE callbacks SET status = $2, attempts = $3, operator = COALESCE($4, operator), \
         completed_at = $5, updated_at = $6 WHERE id = $1",
    )
    .bind(id.to_string())
    .bind(status.as_str())
    .bind(attempts)
    .bind(operator.map(str::to_owned))
    .bind(finished.then_some(ms(at)))
    .bind(ms(at))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Records an operator's login; a session with the same id already there is left alone.
pub(crate) async fn start_session(
    conn: &mut AnyConnection,
    id: Uuid,
    operator: &str,
    at: DateTime<Utc>,
    queues: &[String],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO operator_sessions (id, operator, started_at, queues) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(id.to_string())
    .bind(operator.to_owned())
    .bind(ms(at))
    .bind(serde_json::to_string(queues).unwrap_or_else(|_| "[]".into()))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Replaces an operator's saved work state, unless the row holds a later change (a replayed
/// spool line never undoes a newer state).
pub(crate) async fn save_operator_state(
    conn: &mut AnyConnection,
    s: &OperatorStateRow,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO operator_state \
         (operator, logged_in, queues, since, paused_since, pause_reason, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (operator) DO UPDATE SET logged_in = excluded.logged_in, \
         queues = excluded.queues, since = excluded.since, \
         paused_since = excluded.paused_since, pause_reason = excluded.pause_reason, \
         updated_at = excluded.updated_at \
         WHERE operator_state.updated_at <= excluded.updated_at",
    )
    .bind(s.operator.clone())
    .bind(i64::from(s.logged_in))
    .bind(serde_json::to_string(&s.queues).unwrap_or_else(|_| "[]".into()))
    .bind(s.since.map(ms))
    .bind(s.paused_since.map(ms))
    .bind(s.pause_reason.clone())
    .bind(ms(s.updated_at))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Records the end of an operator's session (the first end recorded wins).
pub(crate) async fn end_session(
    conn: &mut AnyConnection,
    id: Uuid,
    at: DateTime<Utc>,
    reason: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE operator_sessions SET ended_at = $2, end_reason = $3 WHERE id = $1 AND ended_at IS NULL",
    )
    .bind(id.to_string())
    .bind(ms(at))
    .bind(reason.to_owned())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// True when the error means "the database cannot be reached or is busy right now" —
/// worth retrying the same work later — rather than "this write is wrong".
pub(crate) fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            let code = db.code();
            let code = code.as_deref().unwrap_or("");
            // PostgreSQL SQLSTATE: connection exceptions, resources, shutdown, serialization.
            code.starts_with("08")
                || code.starts_with("53")
                || code.starts_with("57")
                || code == "40001"
                || code == "40P01"
                // SQLite primary result codes: BUSY, LOCKED, IOERR, FULL, CANTOPEN (and extended).
                || code
                    .parse::<i32>()
                    .is_ok_and(|c| matches!(c & 0xff, 5 | 6 | 10 | 13 | 14))
        }
        sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::ColumnIndexOutOfBounds { .. }
        | sqlx::Error::TypeNotFound { .. }
        | sqlx::Error::Decode(_)
        | sqlx::Error::Encode(_)
        | sqlx::Error::RowNotFound => false,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_from_url() {
        assert_eq!(
            Backend::from_url("sqlite://data/hotline.db").ok(),
            Some(Backend::Sqlite)
        );
        assert_eq!(
            Backend::from_url("postgresql://u@h/db").ok(),
            Some(Backend::Postgres)
        );
        assert!(matches!(
            Backend::from_url("mysql://u:secret@h/db"),
            Err(Error::UnsupportedUrl(u)) if !u.contains("secret")
        ));
    }

    #[test]
    fn sqlite_url_gets_create_mode() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("a/b/hotline.db");
        let url = format!("sqlite://{}", db.display());
        let prepared = prepare_sqlite(&url).unwrap();
        assert_eq!(prepared, format!("{url}?mode=rwc"));
        assert!(dir.path().join("a/b").is_dir());
        assert_eq!(
            prepare_sqlite("sqlite://x.db?mode=ro").unwrap(),
            "sqlite://x.db?mode=ro"
        );
        assert_eq!(
            prepare_sqlite("sqlite://x.db?cache=shared").unwrap(),
            "sqlite://x.db?cache=shared&mode=rwc"
        );
    }

    #[test]
    fn password_is_redacted() {
        assert_eq!(
            redact_url("postgres://hot:secret@db:5432/x"),
            "postgres://hot:***@db:5432/x"
        );
        assert_eq!(redact_url("postgres://db/x"), "postgres://db/x");
    }
}
