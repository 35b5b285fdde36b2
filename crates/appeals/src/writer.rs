//! The write path the call path uses: [`AppealWriter`]. Its methods are plain functions that
//! never wait for the database; every operation is appended to the spool at once and a
//! writer task commits the spool to the database in batches, in order.
//!
//! Guarantees:
//! - order: operations reach the database in the order the methods were called (the spool is
//!   one ordered log, appended under a mutex);
//! - no loss: an operation is in the spool file when its method returns, so `kill -9` or a
//!   database outage loses nothing; the spool is emptied only when all of it is committed;
//! - no duplicates: every operation carries its own ids, and the SQL skips ids already stored,
//!   so replaying a spool (wholly or partly committed) is harmless: the part of the spool a
//!   previous run left, and any batch whose commit failed, is written in "verify" mode,
//!   which looks its event ids up first so that no sequence number is spent on them;
//! - gap-free numbering: each appeal's events are numbered 1, 2, 3… in spool order, taken
//!   from the appeal row in the statement that reserves them, so the admin side's changes
//!   interleave safely (the design is in `src/batch.rs`).
//!
//! Cost: a batch of up to `batch_max` operations is one transaction of about five
//! statements (`BEGIN`, one multi-row insert of new appeals, one multi-row update of
//! appeals seen before, one multi-row insert of events, `COMMIT`), not several per
//! operation; [`WriterStats::statements`] counts them.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::AnyPool;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::batch::{self, BatchError};
use crate::db;
use crate::model::{
    AppealId, AppealUpdate, CallbackProgress, CallbackStatus, EventKind, NewAppeal, NewCallback,
    OperatorStateRow,
};
use crate::spool::{self, SpoolAppender, SpoolLine, SpoolReader};
use crate::Error;

/// Settings of the writer task.
#[derive(Clone, Debug)]
pub struct WriterConfig {
    /// `sqlite://…` or `postgres://…`.
    pub database_url: String,
    /// Folder of the spool file (`data/spool` in the daemon).
    pub spool_dir: PathBuf,
    /// Most operations in one transaction.
    pub batch_max: usize,
    /// How long the task gathers operations before committing them.
    pub batch_interval: Duration,
    /// First wait after the database failed; doubles up to `retry_max`.
    pub retry_min: Duration,
    /// Longest wait between attempts while the database is down.
    pub retry_max: Duration,
}

impl WriterConfig {
    /// Defaults: batches of up to 200 operations every 50 ms; retries from 100 ms to 5 s.
    pub fn new(database_url: impl Into<String>, spool_dir: impl Into<PathBuf>) -> Self {
        Self {
            database_url: database_url.into(),
            spool_dir: spool_dir.into(),
            batch_max: 200,
            batch_interval: Duration::from_millis(50),
            retry_min: Duration::from_millis(100),
            retry_max: Duration::from_secs(5),
        }
    }
}

/// Counters for `/metrics` and health.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct WriterStats {
    /// Operations written by the call path but not yet committed.
    pub backlog: u64,
    /// Size of the spool file in bytes.
    pub spool_bytes: u64,
    /// Operations committed since start.
    pub committed: u64,
    /// Operations the database refused, moved to `rejected.jsonl`.
    pub rejected: u64,
    /// Operations held in memory because the spool file could not be written.
    pub unspooled: u64,
    /// Whether the last attempt to reach the database worked.
    pub db_available: bool,
    /// SQL statements the writer sent since start (`BEGIN` and `COMMIT` included): a few
    /// per batch, however many operations the batch holds.
    pub statements: u64,
}

/// One write operation: a line of the spool.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(crate) enum Op {
    Create {
        id: AppealId,
        event_id: Uuid,
        appeal: NewAppeal,
    },
    Event {
        id: AppealId,
        event_id: Uuid,
        at: DateTime<Utc>,
        kind: EventKind,
        data: serde_json::Value,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        actor: Option<String>,
    },
    Update {
        id: AppealId,
        at: DateTime<Utc>,
        update: AppealUpdate,
    },
    Callback {
        id: Uuid,
        callback: NewCallback,
    },
    CallbackStatus {
        id: Uuid,
        at: DateTime<Utc>,
        status: CallbackStatus,
        attempts: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        operator: Option<String>,
    },
    CallbackProgress {
        appeal: AppealId,
        at: DateTime<Utc>,
        progress: CallbackProgress,
    },
    SessionStart {
        id: Uuid,
        operator: String,
        at: DateTime<Utc>,
        queues: Vec<String>,
    },
    SessionEnd {
        id: Uuid,
        at: DateTime<Utc>,
        reason: String,
    },
    OperatorState {
        state: OperatorStateRow,
    },
}

struct Shared {
    appender: Mutex<SpoolAppender>,
    wake: Notify,
    stop_wake: Notify,
    stop: AtomicBool,
    backlog: AtomicU64,
    committed: AtomicU64,
    rejected: AtomicU64,
    db_up: AtomicBool,
    statements: AtomicU64,
}

impl Shared {
    fn appender(&self) -> MutexGuard<'_, SpoolAppender> {
        self.appender.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Aborts the writer task when the last handle goes without `shutdown` — as a crash would
/// stop it; the spool keeps everything for the next start.
struct TaskGuard(Mutex<Option<JoinHandle<()>>>);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        if let Some(task) = self.0.lock().unwrap_or_else(PoisonError::into_inner).take() {
            task.abort();
        }
    }
}

/// The call path's handle on the appeal store. Clone it freely; all clones share one spool
/// and one writer task.
#[derive(Clone)]
pub struct AppealWriter {
    shared: Arc<Shared>,
    task: Arc<TaskGuard>,
}

/// Now, cut to the millisecond the database keeps.
pub(crate) fn now_ms() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now)
}

impl AppealWriter {
    /// Opens the spool in `config.spool_dir` (replaying whatever a previous run left there
    /// first) and starts the writer task on the current tokio runtime. Does not wait for the
    /// database: until it can be reached, operations stay in the spool.
    /// A spool written for another database is refused ([`Error::SpoolOfAnotherDatabase`]).
    pub fn start(config: WriterConfig) -> Result<Self, Error> {
        spool::claim(&config.spool_dir, &config.database_url)?;
        let (appender, reader, waiting) = spool::open(&config.spool_dir)?;
        // What a previous run left may be partly in the database already.
        let replay_to = appender.len;
        if waiting > 0 {
            tracing::info!(operations = waiting, "replaying the appeal spool");
        }
        let sync = appender.sync_handle().map_err(|source| Error::Spool {
            path: config.spool_dir.join(spool::SPOOL_FILE),
            source,
        })?;
        let shared = Arc::new(Shared {
            appender: Mutex::new(appender),
            wake: Notify::new(),
            stop_wake: Notify::new(),
            stop: AtomicBool::new(false),
            backlog: AtomicU64::new(waiting),
            committed: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            db_up: AtomicBool::new(false),
            statements: AtomicU64::new(0),
        });
        if waiting > 0 {
            shared.wake.notify_one();
        }
        let task = tokio::spawn(run(
            shared.clone(),
            config,
            reader,
            Arc::new(sync),
            replay_to,
        ));
        Ok(Self {
            shared,
            task: Arc::new(TaskGuard(Mutex::new(Some(task)))),
        })
    }

    /// Records a new appeal (with its `created` event) and returns its id at once.
    pub fn create(&self, appeal: NewAppeal) -> AppealId {
        let id = AppealId::new();
        self.create_with_id(id, appeal);
        id
    }

    /// Like [`create`](Self::create) with an id chosen by the caller (e.g. one received
    /// from the partner centre). Creating the same id twice keeps the first.
    pub fn create_with_id(&self, id: AppealId, appeal: NewAppeal) {
        self.push(&Op::Create {
            id,
            event_id: Uuid::now_v7(),
            appeal,
        });
    }

    /// Appends an event to the appeal's timeline.
    pub fn event(&self, id: AppealId, kind: EventKind, data: serde_json::Value) {
        self.push_event(id, kind, data, None);
    }

    /// Appends an event done by someone (an operator, a supervisor).
    pub fn event_by(&self, id: AppealId, kind: EventKind, data: serde_json::Value, actor: &str) {
        self.push_event(id, kind, data, Some(actor.to_owned()));
    }

    fn push_event(
        &self,
        id: AppealId,
        kind: EventKind,
        data: serde_json::Value,
        actor: Option<String>,
    ) {
        self.push(&Op::Event {
            id,
            event_id: Uuid::now_v7(),
            at: now_ms(),
            kind,
            data,
            actor,
        });
    }

    /// Sets call facts (times, category, queue, operator, outcome…).
    pub fn update(&self, id: AppealId, update: AppealUpdate) {
        self.push(&Op::Update {
            id,
            at: now_ms(),
            update,
        });
    }

    /// Books a callback (see also the `callback_requested` event on the appeal).
    /// Returns the callback's id.
    pub fn callback(&self, callback: NewCallback) -> Uuid {
        let id = Uuid::now_v7();
        self.push(&Op::Callback { id, callback });
        id
    }

    /// Sets a callback's status and how many attempts were made so far.
    pub fn callback_status(
        &self,
        id: Uuid,
        status: CallbackStatus,
        attempts: i64,
        operator: Option<&str>,
    ) {
        self.push(&Op::CallbackStatus {
            id,
            at: now_ms(),
            status,
            attempts,
            operator: operator.map(str::to_owned),
        });
    }

    /// The callback booked on `appeal` (the booking call's appeal) progressed: being dialled,
    /// an attempt ended, reached or given up. Spool first like every write; the row changes
    /// only while it is still pending or dialling.
    pub fn callback_progress(&self, appeal: AppealId, progress: CallbackProgress) {
        self.push(&Op::CallbackProgress {
            appeal,
            at: now_ms(),
            progress,
        });
    }

    /// Records an operator's login to `queues`; returns the session id for the logout.
    pub fn operator_login(&self, operator: &str, queues: &[String]) -> Uuid {
        let id = Uuid::now_v7();
        self.push(&Op::SessionStart {
            id,
            operator: operator.to_owned(),
            at: now_ms(),
            queues: queues.to_vec(),
        });
        id
    }

    /// Records the end of an operator's session.
    pub fn operator_logout(&self, session: Uuid, reason: &str) {
        self.push(&Op::SessionEnd {
            id: session,
            at: now_ms(),
            reason: reason.to_owned(),
        });
    }

    /// Saves an operator's work state for the next start (see
    /// [`crate::operator_state::load`]); `state.updated_at` is set to now.
    pub fn operator_state(&self, mut state: OperatorStateRow) {
        state.updated_at = now_ms();
        self.push(&Op::OperatorState { state });
    }

    fn push(&self, op: &Op) {
        let mut line = match serde_json::to_vec(op) {
            Ok(line) => line,
            Err(e) => {
                // Only a non-string map key could do this; our types have none.
                tracing::error!(error = %e, "cannot encode an appeal operation");
                return;
            }
        };
        line.push(b'\n');
        self.shared.appender().append(line);
        self.shared.backlog.fetch_add(1, Ordering::Relaxed);
        self.shared.wake.notify_one();
    }

    /// Current counters.
    pub fn stats(&self) -> WriterStats {
        let (spool_bytes, unspooled) = {
            let a = self.shared.appender();
            (a.len, a.pending_len() as u64)
        };
        WriterStats {
            backlog: self.shared.backlog.load(Ordering::Relaxed),
            spool_bytes,
            committed: self.shared.committed.load(Ordering::Relaxed),
            rejected: self.shared.rejected.load(Ordering::Relaxed),
            unspooled,
            db_available: self.shared.db_up.load(Ordering::Relaxed),
            statements: self.shared.statements.load(Ordering::Relaxed),
        }
    }

    /// Waits until everything written so far is committed, or `timeout` passes.
    /// Returns whether the backlog reached zero.
    pub async fn flushed(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.shared.backlog.load(Ordering::Relaxed) == 0 {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Stops the writer task after committing what it can: everything, if the database is
    /// up; otherwise it stops at the first failure and the rest stays in the spool for the
    /// next start. Returns the final counters. Later writes only reach the spool.
    pub async fn shutdown(&self) -> WriterStats {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.stop_wake.notify_one();
        self.shared.wake.notify_one();
        let task = self
            .task
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(task) = task {
            if let Err(e) = task.await {
                tracing::error!(error = %e, "appeal writer task failed");
            }
        }
        self.stats()
    }
}

/// The writer task: waits for work, makes sure the database is there, commits batches.
async fn run(
    shared: Arc<Shared>,
    config: WriterConfig,
    mut reader: SpoolReader,
    sync: Arc<std::fs::File>,
    replay_to: u64,
) {
    // Spool bytes before this offset may hold operations already committed: a previous
    // run's leftovers, or a batch whose commit failed with an unknown outcome. Batches
    // starting there are written in verify mode (their events looked up first).
    let mut verify_to = replay_to;
    let mut pool: Option<AnyPool> = None;
    let mut backoff = config.retry_min;
    let mut synced_to = 0u64;
    loop {
        let stopping = shared.stop.load(Ordering::SeqCst);
        let len = {
            let mut a = shared.appender();
            a.flush_pending();
            // Everything committed: empty the spool (appends wait on this lock).
            if a.len > 0 && reader.pos == a.len && a.pending_len() == 0 {
                match a.truncate() {
                    Ok(()) => {
                        reader.pos = 0;
                        synced_to = 0;
                        verify_to = 0;
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot truncate the appeal spool"),
                }
            }
            a.len
        };
        if reader.pos >= len {
            if stopping {
                break;
            }
            shared.wake.notified().await;
            if !shared.stop.load(Ordering::SeqCst) {
                // Let a batch gather.
                tokio::time::sleep(config.batch_interval).await;
            }
            continue;
        }

        let db = match &pool {
            Some(p) => p.clone(),
            None => match open_db(&config.database_url).await {
                Ok(p) => {
                    tracing::info!("appeal database reachable");
                    pool = Some(p.clone());
                    p
                }
                Err(e) => {
                    shared.db_up.store(false, Ordering::Relaxed);
                    tracing::warn!(error = %e, retry_in = ?backoff, "appeal database unavailable; keeping operations in the spool");
                    if stopping || !pause(&shared, backoff).await {
                        break;
                    }
                    backoff = (backoff * 2).min(config.retry_max);
                    continue;
                }
            },
        };

        if synced_to < len {
            let file = sync.clone();
            match tokio::task::spawn_blocking(move || file.sync_data()).await {
                Ok(Ok(())) => synced_to = len,
                Ok(Err(e)) => tracing::warn!(error = %e, "cannot fsync the appeal spool"),
                Err(e) => tracing::warn!(error = %e, "fsync task failed"),
            }
        }

        let (lines, end) = match reader.read_batch(config.batch_max, len) {
            Ok(batch) => batch,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the appeal spool");
                if stopping || !pause(&shared, backoff).await {
                    break;
                }
                continue;
            }
        };
        let verify = reader.pos < verify_to;
        match commit(&db, &config, &lines, verify, &shared.statements).await {
            Ok(outcome) => {
                reader.pos = end;
                shared
                    .backlog
                    .fetch_sub(lines.len() as u64, Ordering::Relaxed);
                shared
                    .committed
                    .fetch_add(outcome.committed, Ordering::Relaxed);
                shared
                    .rejected
                    .fetch_add(outcome.rejected, Ordering::Relaxed);
                shared.db_up.store(true, Ordering::Relaxed);
                backoff = config.retry_min;
            }
            Err(e) => {
                // The commit itself may have gone through before the failure was seen.
                verify_to = verify_to.max(end);
                shared.db_up.store(false, Ordering::Relaxed);
                tracing::warn!(error = %e, retry_in = ?backoff, "appeal batch not committed; will retry");
                if stopping || !pause(&shared, backoff).await {
                    break;
                }
                backoff = (backoff * 2).min(config.retry_max);
            }
        }
    }
    if let Some(pool) = pool {
        pool.close().await;
    }
}

/// Sleeps for `d` unless asked to stop; returns false when asked to stop.
async fn pause(shared: &Shared, d: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => !shared.stop.load(Ordering::SeqCst),
        _ = shared.stop_wake.notified() => false,
    }
}

async fn open_db(url: &str) -> Result<AnyPool, Error> {
    let pool = db::connect(url, 2, Duration::from_secs(3)).await?;
    db::migrate(&pool).await?;
    Ok(pool)
}

#[derive(Default)]
struct Committed {
    committed: u64,
    rejected: u64,
}

/// Commits a batch in one transaction with a few multi-row statements (see [`batch`]).
/// `verify` says the batch may hold operations already in the database (a replayed spool):
/// their events are looked up and skipped first. A batch that turns out to hold stored
/// events without `verify` is redone with it. If the database refuses the batch (not a
/// transient failure), it is redone one operation per transaction and the refused ones are
/// set aside in `rejected.jsonl`. A transient failure returns the error: the whole batch is
/// tried again later, in verify mode (the caller's business).
async fn commit(
    pool: &AnyPool,
    config: &WriterConfig,
    lines: &[SpoolLine],
    mut verify: bool,
    statements: &AtomicU64,
) -> Result<Committed, sqlx::Error> {
    let ops: Vec<Result<Op, serde_json::Error>> = lines
        .iter()
        .map(|l| serde_json::from_slice(&l.bytes))
        .collect();
    let good: Vec<&Op> = ops.iter().flatten().collect();
    let mut conn = pool.acquire().await?;
    let refused = loop {
        match batch::write(&mut conn, &good, verify, statements).await {
            Ok(()) => break false,
            Err(BatchError::Db(e)) if db::is_transient(&e) => return Err(e),
            Err(e @ BatchError::AlreadyStored { .. }) if !verify => {
                tracing::info!(error = %e, "appeal batch replays stored operations; redoing it verified");
                verify = true;
            }
            Err(e) => {
                tracing::warn!(error = %e, "appeal batch refused; retrying one operation at a time");
                break true;
            }
        }
    };
    let mut out = Committed::default();
    for (op, line) in ops.iter().zip(lines) {
        let op = match op {
            Ok(op) => op,
            Err(e) => {
                spool::reject(&config.spool_dir, &line.bytes, &e.to_string());
                out.rejected += 1;
                continue;
            }
        };
        if !refused {
            out.committed += 1;
            continue;
        }
        match batch::write(&mut conn, &[op], true, statements).await {
            Ok(()) => out.committed += 1,
            Err(BatchError::Db(e)) if db::is_transient(&e) => return Err(e),
            Err(e) => {
                tracing::error!(error = %e, "appeal operation refused by the database; set aside");
                spool::reject(&config.spool_dir, &line.bytes, &e.to_string());
                out.rejected += 1;
            }
        }
    }
    Ok(out)
}
