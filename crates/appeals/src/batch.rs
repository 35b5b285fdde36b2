//! Writes one batch of spooled operations with a handful of multi-row statements instead of
//! several statements per operation.
//!
//! A batch becomes, inside one transaction:
//!
//! 1. one multi-row `INSERT INTO appeals … ON CONFLICT (id) DO NOTHING RETURNING id` for the
//!    appeals the batch creates, each row already carrying the call facts of the batch's
//!    later updates and `last_seq` = the number of events the batch gives it;
//! 2. one multi-row `UPDATE appeals … FROM (VALUES …) RETURNING id, last_seq` for every
//!    other appeal the batch touches (events and/or updates), which adds the batch's event
//!    count to `last_seq` and sets the folded call facts in the same statement;
//! 3. one multi-row `INSERT INTO appeal_events … ON CONFLICT (id) DO NOTHING`;
//! 4. the rare other operations (callbacks, operator sessions) one statement each, in order.
//!
//! The insert links each new appeal to the citizen whose card has the caller's number, when
//! exactly one card has it: `citizen_id` is a sub-select on `citizen_phones` in the row.
//!
//! Each statement is cut into chunks below SQLite's 32 766 and PostgreSQL's 65 535 bound
//! parameters. When the batch may hold operations that are already in the database (a spool
//! replayed after a crash or after a commit whose outcome was lost), a `SELECT id FROM
//! appeal_events WHERE id IN (…)` first drops the events already stored ("verify" mode).
//!
//! **Sequence numbers.** Event `seq` must stay 1, 2, 3… per appeal without gaps, while the
//! admin side ([`crate::Store`], [`crate::partner`]) appends events to the same appeals
//! through [`crate::db::append_event`] (`UPDATE appeals SET last_seq = last_seq + 1 …
//! RETURNING last_seq`). The writer therefore keeps no `last_seq` of its own between
//! batches — a cached value could be overtaken by an admin change — but takes its numbers
//! from the database in the statement that reserves them:
//!
//! - an appeal this batch inserts did not exist before the statement (the `RETURNING` says
//!   which rows really went in), so nobody else can have numbered events on it: its events
//!   get `1..=k` and the row is inserted with `last_seq = k`;
//! - for any other appeal, `last_seq = last_seq + k … RETURNING last_seq` reserves
//!   `last_seq-k+1 ..= last_seq` under the row's write lock (PostgreSQL re-reads the latest
//!   committed row for an `UPDATE`; SQLite has one writer at a time), exactly like the admin
//!   side's `+ 1`, so the two can never hand out the same number;
//! - every reserved number gets its event in the same transaction: the event insert must
//!   store exactly as many rows as were reserved, or the whole batch rolls back
//!   ([`BatchError::AlreadyStored`]) and is redone in verify mode, so a replay never leaves a
//!   gap.
//!
//! Folding keeps the per-operation meaning: updates apply in spool order (a later value
//! wins, as consecutive `COALESCE` updates would), events and updates that come before
//! their appeal's `create` in a batch that inserts it are dropped (the appeal did not exist
//! yet), and events or updates for an appeal that does not exist are skipped.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::{Any, AnyConnection, Row};
use uuid::Uuid;

use crate::db::{self, ms};
use crate::missed;
use crate::model::{AppealId, AppealUpdate, EventKind, NewAppeal};
use crate::writer::Op;

/// Most bound parameters in one statement: below SQLite's limit (32 766), itself below
/// PostgreSQL's (65 535).
const MAX_BINDS: usize = 32_000;

/// Why a batch was not written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BatchError {
    /// The database failed or refused a statement.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// Some of the batch's events were already stored although the batch was written
    /// without verify mode; nothing was committed.
    #[error("{stored} of {expected} events stored: the batch replays stored events")]
    AlreadyStored {
        /// Events the batch meant to store.
        expected: usize,
        /// Events the database took.
        stored: u64,
    },
}

/// A value bound to a multi-row statement.
enum Bind<'a> {
    Text(&'a str),
    OptText(Option<&'a str>),
    Int(i64),
    OptInt(Option<i64>),
    Owned(String),
}

fn bind_all<'q>(
    mut q: Query<'q, Any, AnyArguments<'q>>,
    binds: Vec<Bind<'q>>,
) -> Query<'q, Any, AnyArguments<'q>> {
    for b in binds {
        q = match b {
            Bind::Text(s) => q.bind(s),
            Bind::OptText(s) => q.bind(s),
            Bind::Int(i) => q.bind(i),
            Bind::OptInt(i) => q.bind(i),
            Bind::Owned(s) => q.bind(s),
        };
    }
    q
}

/// How a statement names its bound parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Marks {
    /// `$1, $2, …` (PostgreSQL).
    Numbered,
    /// `?, ?, …` in order (SQLite: it looks each `$N` name up in a list, which makes a
    /// statement with thousands of them take seconds to prepare).
    Anonymous,
}

impl Marks {
    fn of(conn: &AnyConnection) -> Self {
        if conn.backend_name().eq_ignore_ascii_case("sqlite") {
            Marks::Anonymous
        } else {
            Marks::Numbered
        }
    }
}

/// `($1, $2), ($3, $4)` (or with `?`) for `rows` rows of `cols` placeholders.
fn values_list(marks: Marks, rows: usize, cols: usize) -> String {
    values_list_with(marks, rows, cols, |_, m| m)
}

/// [`values_list`] with each placeholder passed through `wrap(column, placeholder)`, for a
/// column whose value is an expression of its parameter.
fn values_list_with(
    marks: Marks,
    rows: usize,
    cols: usize,
    wrap: impl Fn(usize, String) -> String,
) -> String {
    let mut s = String::with_capacity(rows * cols * 6);
    let mut n = 0;
    for r in 0..rows {
        if r > 0 {
            s.push_str(", ");
        }
        s.push('(');
        for c in 0..cols {
            if c > 0 {
                s.push_str(", ");
            }
            n += 1;
            let mark = match marks {
                Marks::Numbered => format!("${n}"),
                Marks::Anonymous => "?".to_owned(),
            };
            s.push_str(&wrap(c, mark));
        }
        s.push(')');
    }
    s
}

/// Rows of `cols` values that fit in one statement.
fn chunk_rows(cols: usize) -> usize {
    (MAX_BINDS / cols).max(1)
}

/// One event to store.
struct EventRow<'a> {
    id: Uuid,
    at: DateTime<Utc>,
    kind: EventKind,
    /// The JSON text.
    data: String,
    actor: Option<&'a str>,
}

enum Item<'a> {
    Event(EventRow<'a>),
    Update(DateTime<Utc>, &'a AppealUpdate),
}

/// What a batch does to one appeal, in spool order.
struct AppealPlan<'a> {
    id: AppealId,
    /// The batch's first `create` of this appeal: where its `created` event is in `items`.
    create: Option<(usize, &'a NewAppeal)>,
    items: Vec<Item<'a>>,
}

/// Call facts of several updates folded into one: a later value replaces an earlier one.
#[derive(Default)]
struct Folded<'a> {
    answered_at: Option<i64>,
    ended_at: Option<i64>,
    ivr_path: Option<&'a str>,
    category: Option<&'a str>,
    queue: Option<&'a str>,
    wait_seconds: Option<i64>,
    talk_seconds: Option<i64>,
    operator: Option<&'a str>,
    outcome: Option<&'static str>,
    recording: Option<&'a str>,
    partner_ref: Option<&'a str>,
    /// Time of the last update, if any.
    at: Option<i64>,
}

impl<'a> Folded<'a> {
    fn of(items: &[Item<'a>]) -> Self {
        let mut f = Folded::default();
        for item in items {
            let Item::Update(at, u) = item else { continue };
            let u: &'a AppealUpdate = u;
            f.answered_at = u.answered_at.map(ms).or(f.answered_at);
            f.ended_at = u.ended_at.map(ms).or(f.ended_at);
            f.ivr_path = u.ivr_path.as_deref().or(f.ivr_path);
            f.category = u.category.as_deref().or(f.category);
            f.queue = u.queue.as_deref().or(f.queue);
            f.wait_seconds = u.wait_seconds.or(f.wait_seconds);
            f.talk_seconds = u.talk_seconds.or(f.talk_seconds);
            f.operator = u.operator.as_deref().or(f.operator);
            f.outcome = u.outcome.map(|o| o.as_str()).or(f.outcome);
            f.recording = u.recording.as_deref().or(f.recording);
            f.partner_ref = u.partner_ref.as_deref().or(f.partner_ref);
            f.at = Some(ms(*at));
        }
        f
    }

    /// The eleven call-fact columns, in [`FACT_COLUMNS`] order.
    fn binds(&self, out: &mut Vec<Bind<'a>>) {
        out.extend([
            Bind::OptInt(self.answered_at),
            Bind::OptInt(self.ended_at),
            Bind::OptText(self.ivr_path),
            Bind::OptText(self.category),
            Bind::OptText(self.queue),
            Bind::OptInt(self.wait_seconds),
            Bind::OptInt(self.talk_seconds),
            Bind::OptText(self.operator),
            Bind::OptText(self.outcome),
            Bind::OptText(self.recording),
            Bind::OptText(self.partner_ref),
        ]);
    }
}

/// The call-fact columns an update sets.
const FACT_COLUMNS: [&str; 11] = [
    "answered_at",
    "ended_at",
    "ivr_path",
    "category",
    "queue",
    "wait_seconds",
    "talk_seconds",
    "operator",
    "outcome",
    "recording",
    "partner_ref",
];

fn events_of<'p, 'a>(items: &'p [Item<'a>]) -> impl Iterator<Item = &'p EventRow<'a>> {
    items.iter().filter_map(|i| match i {
        Item::Event(e) => Some(e),
        Item::Update(..) => None,
    })
}

/// Event ids (of `event` and `create` operations) in the batch.
fn event_ids(ops: &[&Op]) -> Vec<Uuid> {
    ops.iter()
        .filter_map(|op| match op {
            Op::Create { event_id, .. } | Op::Event { event_id, .. } => Some(*event_id),
            _ => None,
        })
        .collect()
}

/// Of `ids`, those already in `appeal_events`.
async fn stored_events(
    conn: &mut AnyConnection,
    ids: &[Uuid],
    statements: &AtomicU64,
) -> Result<HashSet<Uuid>, sqlx::Error> {
    let mut found = HashSet::new();
    for chunk in ids.chunks(MAX_BINDS) {
        let list = values_list(Marks::of(conn), 1, chunk.len());
        let sql = format!("SELECT id FROM appeal_events WHERE id IN {list}");
        let binds = chunk.iter().map(|id| Bind::Owned(id.to_string())).collect();
        statements.fetch_add(1, Ordering::Relaxed);
        for row in bind_all(sqlx::query(&sql), binds)
            .fetch_all(&mut *conn)
            .await?
        {
            let id: String = row.try_get(0)?;
            if let Ok(id) = Uuid::parse_str(&id) {
                found.insert(id);
            }
        }
    }
    Ok(found)
}

/// The plan of appeal `id`, made (empty) on first use.
fn plan_for<'p, 'a>(
    plans: &'p mut Vec<AppealPlan<'a>>,
    index: &mut HashMap<AppealId, usize>,
    id: AppealId,
) -> &'p mut AppealPlan<'a> {
    let i = *index.entry(id).or_insert_with(|| {
        plans.push(AppealPlan {
            id,
            create: None,
            items: Vec::new(),
        });
        plans.len() - 1
    });
    &mut plans[i]
}

/// Groups the batch's appeal operations per appeal (in order of first appearance) and
/// returns the rest in order. Events in `skip` (already stored) and repeated event ids are
/// left out.
fn plan<'a>(ops: &[&'a Op], skip: &HashSet<Uuid>) -> (Vec<AppealPlan<'a>>, Vec<&'a Op>) {
    let mut plans: Vec<AppealPlan<'a>> = Vec::new();
    let mut index: HashMap<AppealId, usize> = HashMap::new();
    let mut seen: HashSet<Uuid> = HashSet::new();
    let mut others = Vec::new();
    for op in ops {
        let op: &'a Op = op;
        match op {
            Op::Create {
                id,
                event_id,
                appeal,
            } => {
                let p = plan_for(&mut plans, &mut index, *id);
                if p.create.is_none() {
                    p.create = Some((p.items.len(), appeal));
                }
                if !skip.contains(event_id) && seen.insert(*event_id) {
                    let data =
                        serde_json::json!({ "line": appeal.line, "call_id": appeal.call_id });
                    p.items.push(Item::Event(EventRow {
                        id: *event_id,
                        at: appeal.arrived_at,
                        kind: EventKind::Created,
                        data: data.to_string(),
                        actor: None,
                    }));
                }
            }
            Op::Event {
                id,
                event_id,
                at,
                kind,
                data,
                actor,
            } => {
                let p = plan_for(&mut plans, &mut index, *id);
                if !skip.contains(event_id) && seen.insert(*event_id) {
                    p.items.push(Item::Event(EventRow {
                        id: *event_id,
                        at: *at,
                        kind: *kind,
                        data: data.to_string(),
                        actor: actor.as_deref(),
                    }));
                }
            }
            Op::Update { id, at, update } => {
                let p = plan_for(&mut plans, &mut index, *id);
                p.items.push(Item::Update(*at, update));
            }
            Op::Callback { .. }
            | Op::CallbackStatus { .. }
            | Op::CallbackProgress { .. }
            | Op::SessionStart { .. }
            | Op::SessionEnd { .. }
            | Op::OperatorState { .. } => others.push(op),
        }
    }
    (plans, others)
}

/// Writes the batch in one transaction on `conn` (see the module docs). With `verify`,
/// events already stored are skipped first; without it, finding one rolls the batch back
/// with [`BatchError::AlreadyStored`]. Counts the statements sent in `statements`.
pub(crate) async fn write(
    conn: &mut AnyConnection,
    ops: &[&Op],
    verify: bool,
    statements: &AtomicU64,
) -> Result<(), BatchError> {
    let skip = if verify {
        stored_events(conn, &event_ids(ops), statements).await?
    } else {
        HashSet::new()
    };
    let (plans, others) = plan(ops, &skip);

    let mut tx = db::begin_write(conn).await?;
    statements.fetch_add(1, Ordering::Relaxed);
    let fresh = insert_appeals(&mut tx, &plans, statements).await?;

    // The events to store, with their numbers.
    let mut events: Vec<(AppealId, i64, &EventRow<'_>)> = Vec::new();
    let mut existing: Vec<&AppealPlan<'_>> = Vec::new();
    for p in &plans {
        match p.create {
            Some((at, _)) if fresh.contains(&p.id) => {
                events.extend(
                    events_of(&p.items[at..])
                        .zip(1..)
                        .map(|(e, s)| (p.id, s, e)),
                );
            }
            _ if !p.items.is_empty() => existing.push(p),
            _ => {}
        }
    }
    let last = update_appeals(&mut tx, &existing, statements).await?;
    for p in existing {
        let Some(last) = last.get(&p.id) else {
            tracing::warn!(appeal = %p.id, "events or update for an unknown appeal; skipped");
            continue;
        };
        let rows: Vec<_> = events_of(&p.items).collect();
        let first = last - rows.len() as i64 + 1;
        events.extend(rows.into_iter().zip(first..).map(|(e, s)| (p.id, s, e)));
    }
    let stored = insert_events(&mut tx, &events, statements).await?;
    if stored != events.len() as u64 {
        tx.rollback().await?;
        statements.fetch_add(1, Ordering::Relaxed);
        return Err(BatchError::AlreadyStored {
            expected: events.len(),
            stored,
        });
    }

    for op in &others {
        statements.fetch_add(1, Ordering::Relaxed);
        apply_other(&mut tx, op).await?;
    }
    refresh_missed(&mut tx, &plans, &others, statements).await?;
    tx.commit().await?;
    statements.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// Keeps the `missed` worklist (see [`crate::missed`]): the callers whose call ended or was
/// answered in this batch, and those whose callback progressed, get their rows recomputed.
async fn refresh_missed(
    conn: &mut AnyConnection,
    plans: &[AppealPlan<'_>],
    others: &[&Op],
    statements: &AtomicU64,
) -> Result<(), sqlx::Error> {
    let ended: Vec<AppealId> = plans
        .iter()
        .filter(|p| {
            let f = Folded::of(&p.items);
            f.outcome.is_some() || f.answered_at.is_some()
        })
        .map(|p| p.id)
        .collect();
    let mut callback_appeals = Vec::new();
    let mut callback_ids = Vec::new();
    for op in others {
        match op {
            Op::CallbackStatus { id, .. } => callback_ids.push(*id),
            Op::CallbackProgress { appeal, .. } => callback_appeals.push(*appeal),
            _ => {}
        }
    }
    if ended.is_empty() && callback_appeals.is_empty() && callback_ids.is_empty() {
        return Ok(());
    }
    let mut keys = missed::keys_of_appeals(conn, &ended).await?;
    keys.extend(missed::keys_of_callbacks(conn, &callback_appeals, &callback_ids).await?);
    // a lookup per non-empty list (of fewer than 500 ids in a batch), then a delete and an
    // insert per 500 callers
    let lookups = [ended.len(), callback_appeals.len(), callback_ids.len()]
        .iter()
        .map(|n| n.div_ceil(missed::CHUNK))
        .sum::<usize>()
        + 2 * keys.len().div_ceil(missed::CHUNK);
    statements.fetch_add(lookups as u64, Ordering::Relaxed);
    missed::refresh(conn, Some(&keys)).await
}

/// Inserts the appeals the batch creates; returns the ids that really went in (the others
/// existed already).
async fn insert_appeals(
    conn: &mut AnyConnection,
    plans: &[AppealPlan<'_>],
    statements: &AtomicU64,
) -> Result<HashSet<AppealId>, sqlx::Error> {
    const COLS: usize = 10 + FACT_COLUMNS.len();
    /// Where the citizen column is in a row: its value is the one card with the caller's
    /// number, when exactly one card has it (none or several: NULL, the operator picks).
    const CITIZEN_COL: usize = 5;
    let creates: Vec<_> = plans
        .iter()
        .filter_map(|p| p.create.map(|(at, a)| (p, &p.items[at..], a)))
        .collect();
    let mut fresh = HashSet::new();
    for chunk in creates.chunks(chunk_rows(COLS)) {
        let sql = format!(
            "INSERT INTO appeals (id, call_id, line, caller_number, caller_key, citizen_id, \
             arrived_at, status, {}, last_seq, updated_at) VALUES {} \
             ON CONFLICT (id) DO NOTHING RETURNING id",
            FACT_COLUMNS.join(", "),
            values_list_with(Marks::of(conn), chunk.len(), COLS, |col, mark| {
                if col == CITIZEN_COL {
                    format!(
                        "(SELECT MIN(p.citizen_id) FROM citizen_phones p \
                         WHERE p.phone_key = {mark} HAVING COUNT(DISTINCT p.citizen_id) = 1)"
                    )
                } else {
                    mark
                }
            }),
        );
        let mut binds = Vec::with_capacity(chunk.len() * COLS);
        for (p, items, a) in chunk {
            let f = Folded::of(items);
            binds.extend([
                Bind::Owned(p.id.to_string()),
                Bind::Text(&a.call_id),
                Bind::Text(&a.line),
                Bind::Text(&a.caller_number),
                Bind::Owned(crate::phone_key(&a.caller_number)),
                Bind::Owned(crate::phone_key(&a.caller_number)),
                Bind::Int(ms(a.arrived_at)),
                Bind::Text("new"),
            ]);
            f.binds(&mut binds);
            binds.push(Bind::Int(events_of(items).count() as i64));
            binds.push(Bind::Int(f.at.unwrap_or(ms(a.arrived_at))));
        }
        statements.fetch_add(1, Ordering::Relaxed);
        for row in bind_all(sqlx::query(&sql), binds)
            .fetch_all(&mut *conn)
            .await?
        {
            let id: String = row.try_get(0)?;
            if let Ok(id) = id.parse() {
                fresh.insert(id);
            }
        }
    }
    Ok(fresh)
}

/// For appeals that exist already: reserves `last_seq` numbers for their events and sets
/// the folded call facts, in one statement per chunk. Returns each found appeal's new
/// `last_seq`; appeals not in the map do not exist.
async fn update_appeals(
    conn: &mut AnyConnection,
    plans: &[&AppealPlan<'_>],
    statements: &AtomicU64,
) -> Result<HashMap<AppealId, i64>, sqlx::Error> {
    // id, events, facts…, updated_at
    const COLS: usize = 3 + FACT_COLUMNS.len();
    let set_facts: String = FACT_COLUMNS
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{c} = COALESCE(v.column{}, appeals.{c}), ", i + 3))
        .collect();
    let mut last = HashMap::new();
    for chunk in plans.chunks(chunk_rows(COLS)) {
        let sql = format!(
            "UPDATE appeals SET last_seq = appeals.last_seq + v.column2, {set_facts}\
             updated_at = COALESCE(v.column{COLS}, appeals.updated_at) \
             FROM (VALUES {}) AS v WHERE appeals.id = v.column1 RETURNING id, last_seq",
            values_list(Marks::of(conn), chunk.len(), COLS)
        );
        let mut binds = Vec::with_capacity(chunk.len() * COLS);
        for p in chunk {
            let f = Folded::of(&p.items);
            binds.push(Bind::Owned(p.id.to_string()));
            binds.push(Bind::Int(events_of(&p.items).count() as i64));
            f.binds(&mut binds);
            binds.push(Bind::OptInt(f.at));
        }
        statements.fetch_add(1, Ordering::Relaxed);
        for row in bind_all(sqlx::query(&sql), binds)
            .fetch_all(&mut *conn)
            .await?
        {
            let id: String = row.try_get(0)?;
            let seq: i64 = row.try_get(1)?;
            if let Ok(id) = id.parse() {
                last.insert(id, seq);
            }
        }
    }
    Ok(last)
}

/// Stores the events; returns how many rows went in.
async fn insert_events(
    conn: &mut AnyConnection,
    events: &[(AppealId, i64, &EventRow<'_>)],
    statements: &AtomicU64,
) -> Result<u64, sqlx::Error> {
    const COLS: usize = 7;
    let mut stored = 0;
    for chunk in events.chunks(chunk_rows(COLS)) {
        let sql = format!(
            "INSERT INTO appeal_events (id, appeal_id, seq, at, kind, data, actor) VALUES {} \
             ON CONFLICT (id) DO NOTHING",
            values_list(Marks::of(conn), chunk.len(), COLS)
        );
        let mut binds = Vec::with_capacity(chunk.len() * COLS);
        for (appeal, seq, e) in chunk {
            binds.extend([
                Bind::Owned(e.id.to_string()),
                Bind::Owned(appeal.to_string()),
                Bind::Int(*seq),
                Bind::Int(ms(e.at)),
                Bind::Text(e.kind.as_str()),
                Bind::Text(&e.data),
                Bind::OptText(e.actor),
            ]);
        }
        statements.fetch_add(1, Ordering::Relaxed);
        stored += bind_all(sqlx::query(&sql), binds)
            .execute(&mut *conn)
            .await?
            .rows_affected();
    }
    Ok(stored)
}

/// Callbacks, operator sessions and operator states: one statement each.
async fn apply_other(conn: &mut AnyConnection, op: &Op) -> Result<(), sqlx::Error> {
    match op {
        Op::Callback { id, callback } => db::insert_callback(conn, *id, callback).await,
        Op::CallbackStatus {
            id,
            at,
            status,
            attempts,
            operator,
        } => db::update_callback(conn, *id, *at, *status, *attempts, operator.as_deref()).await,
        Op::CallbackProgress {
            appeal,
            at,
            progress,
        } => db::update_callbacks_of_appeal(conn, *appeal, *at, progress).await,
        Op::SessionStart {
            id,
            operator,
            at,
            queues,
        } => db::start_session(conn, *id, operator, *at, queues).await,
        Op::SessionEnd { id, at, reason } => db::end_session(conn, *id, *at, reason).await,
        Op::OperatorState { state } => db::save_operator_state(conn, state).await,
        Op::Create { .. } | Op::Event { .. } | Op::Update { .. } => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use sqlx::AnyPool;

    use super::*;
    use crate::model::Outcome;

    #[test]
    fn values_list_numbers_rows() {
        assert_eq!(
            values_list(Marks::Numbered, 2, 3),
            "($1, $2, $3), ($4, $5, $6)"
        );
        assert_eq!(values_list(Marks::Anonymous, 2, 2), "(?, ?), (?, ?)");
        assert_eq!(values_list(Marks::Numbered, 1, 1), "($1)");
        assert!(chunk_rows(7) * 7 <= MAX_BINDS);
        assert_eq!(chunk_rows(MAX_BINDS * 2), 1);
    }

    async fn pool(dir: &tempfile::TempDir) -> AnyPool {
        let url = format!("sqlite://{}/t.db", dir.path().display());
        let pool = db::connect(&url, 1, Duration::from_secs(5)).await.unwrap();
        db::migrate(&pool).await.unwrap();
        pool
    }

    fn create(id: AppealId, i: usize) -> Op {
        Op::Create {
            id,
            event_id: Uuid::now_v7(),
            appeal: NewAppeal {
                call_id: format!("call-{i}"),
                line: "3758787".into(),
                caller_number: "+7913".into(),
                arrived_at: DateTime::from_timestamp_millis(1_700_000_000_000).unwrap(),
            },
        }
    }

    fn event(id: AppealId, kind: EventKind) -> Op {
        Op::Event {
            id,
            event_id: Uuid::now_v7(),
            at: DateTime::from_timestamp_millis(1_700_000_001_000).unwrap(),
            kind,
            data: serde_json::json!({}),
            actor: None,
        }
    }

    fn update(id: AppealId, at_ms: i64, u: AppealUpdate) -> Op {
        Op::Update {
            id,
            at: DateTime::from_timestamp_millis(at_ms).unwrap(),
            update: u,
        }
    }

    /// (seq, kind) of an appeal's events, by seq.
    async fn timeline(pool: &AnyPool, id: AppealId) -> Vec<(i64, String)> {
        sqlx::query("SELECT seq, kind FROM appeal_events WHERE appeal_id = $1 ORDER BY seq")
            .bind(id.to_string())
            .fetch_all(pool)
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect()
    }

    async fn last_seq(pool: &AnyPool, id: AppealId) -> i64 {
        sqlx::query("SELECT last_seq FROM appeals WHERE id = $1")
            .bind(id.to_string())
            .fetch_one(pool)
            .await
            .unwrap()
            .get(0)
    }

    async fn write_ops(pool: &AnyPool, ops: &[Op], verify: bool) -> Result<u64, BatchError> {
        let n = AtomicU64::new(0);
        let refs: Vec<&Op> = ops.iter().collect();
        let mut conn = pool.acquire().await.unwrap();
        write(&mut conn, &refs, verify, &n).await?;
        Ok(n.load(Ordering::Relaxed))
    }

    #[tokio::test]
    async fn one_batch_numbers_folds_and_skips_like_single_operations() {
        let dir = tempfile::tempdir().unwrap();
        let pool = pool(&dir).await;
        let (a, b, ghost) = (AppealId::new(), AppealId::new(), AppealId::new());
        let early = event(b, EventKind::IvrChoice);
        let ops = vec![
            create(a, 1),
            event(a, EventKind::IvrChoice),
            update(
                a,
                1_700_000_002_000,
                AppealUpdate {
                    category: Some("benefits".into()),
                    queue: Some("q1".into()),
                    ..AppealUpdate::default()
                },
            ),
            // b's event and update before its create: b did not exist yet.
            early.clone(),
            update(
                b,
                1_700_000_002_500,
                AppealUpdate {
                    category: Some("too-early".into()),
                    ..AppealUpdate::default()
                },
            ),
            create(b, 2),
            event(ghost, EventKind::Ended),
            update(
                a,
                1_700_000_003_000,
                AppealUpdate {
                    queue: Some("q2".into()),
                    outcome: Some(Outcome::Answered),
                    ..AppealUpdate::default()
                },
            ),
            event(a, EventKind::Ended),
            event(b, EventKind::Ended),
        ];
        let statements = write_ops(&pool, &ops, false).await.unwrap();
        // BEGIN, INSERT appeals, UPDATE appeals (the ghost), INSERT events, the caller key of
        // the appeal that ended, its missed row deleted and recomputed, COMMIT.
        assert_eq!(statements, 8);
        assert_eq!(
            timeline(&pool, a).await,
            [
                (1, "created".into()),
                (2, "ivr_choice".into()),
                (3, "ended".into())
            ]
        );
        assert_eq!(
            timeline(&pool, b).await,
            [(1, "created".into()), (2, "ended".into())]
        );
        assert_eq!((last_seq(&pool, a).await, last_seq(&pool, b).await), (3, 2));
        let row =
            sqlx::query("SELECT category, queue, outcome, updated_at FROM appeals WHERE id = $1")
                .bind(a.to_string())
                .fetch_one(&pool)
                .await
                .unwrap();
        assert_eq!(row.get::<Option<String>, _>(0).as_deref(), Some("benefits"));
        assert_eq!(row.get::<Option<String>, _>(1).as_deref(), Some("q2"));
        assert_eq!(row.get::<Option<String>, _>(2).as_deref(), Some("answered"));
        assert_eq!(row.get::<i64, _>(3), 1_700_000_003_000);
        let b_category: Option<String> = sqlx::query("SELECT category FROM appeals WHERE id = $1")
            .bind(b.to_string())
            .fetch_one(&pool)
            .await
            .unwrap()
            .get(0);
        assert_eq!(b_category, None);
        let ghosts: i64 = sqlx::query("SELECT COUNT(*) FROM appeals WHERE id = $1")
            .bind(ghost.to_string())
            .fetch_one(&pool)
            .await
            .unwrap()
            .get(0);
        assert_eq!(ghosts, 0);

        // Now b exists: a later batch numbers on from the stored last_seq, and an update
        // folds into the same statement.
        let ops2 = vec![
            early,
            event(b, EventKind::Answered),
            update(
                b,
                1_700_000_004_000,
                AppealUpdate {
                    category: Some("rehab".into()),
                    ..AppealUpdate::default()
                },
            ),
        ];
        assert_eq!(write_ops(&pool, &ops2, false).await.unwrap(), 4);
        assert_eq!(
            timeline(&pool, b).await,
            [
                (1, "created".into()),
                (2, "ended".into()),
                (3, "ivr_choice".into()),
                (4, "answered".into())
            ]
        );
        assert_eq!(last_seq(&pool, b).await, 4);
    }

    #[tokio::test]
    async fn replayed_batch_is_refused_unverified_and_skipped_verified() {
        let dir = tempfile::tempdir().unwrap();
        let pool = pool(&dir).await;
        let id = AppealId::new();
        let ops = vec![create(id, 1), event(id, EventKind::Ended)];
        write_ops(&pool, &ops, false).await.unwrap();
        // Unverified, the replay rolls back whole instead of reserving seqs it cannot use.
        assert!(matches!(
            write_ops(&pool, &ops, false).await,
            Err(BatchError::AlreadyStored {
                expected: 2,
                stored: 0
            })
        ));
        assert_eq!(last_seq(&pool, id).await, 2);
        // Verified, it changes nothing; a new event in the same batch is numbered on.
        let mut more = ops.clone();
        more.push(event(id, EventKind::PartnerUpdate));
        write_ops(&pool, &more, true).await.unwrap();
        write_ops(&pool, &more, true).await.unwrap();
        assert_eq!(
            timeline(&pool, id).await,
            [
                (1, "created".into()),
                (2, "ended".into()),
                (3, "partner_update".into())
            ]
        );
        assert_eq!(last_seq(&pool, id).await, 3);
    }

    /// A batch larger than one statement's bound parameters is cut into chunks.
    #[tokio::test]
    async fn big_batch_is_chunked() {
        let dir = tempfile::tempdir().unwrap();
        let pool = pool(&dir).await;
        let ids: Vec<AppealId> = (0..4000).map(|_| AppealId::new()).collect();
        let first: Vec<Op> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| create(*id, i))
            .collect();
        write_ops(&pool, &first, false).await.unwrap();
        let second: Vec<Op> = ids
            .iter()
            .flat_map(|id| {
                [
                    event(*id, EventKind::Answered),
                    update(
                        *id,
                        1_700_000_005_000,
                        AppealUpdate {
                            talk_seconds: Some(42),
                            ..AppealUpdate::default()
                        },
                    ),
                    event(*id, EventKind::Ended),
                ]
            })
            .collect();
        // 4000 rows of 14 values need two UPDATE chunks; 8000 events of 7 need two INSERTs.
        assert_eq!(
            write_ops(&pool, &second, true).await.unwrap(),
            2 + 1 + 2 + 2
        );
        let row = sqlx::query(
            "SELECT COUNT(*), MIN(last_seq), MAX(last_seq), SUM(talk_seconds) FROM appeals",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(
            (
                row.get::<i64, _>(0),
                row.get::<i64, _>(1),
                row.get::<i64, _>(2),
                row.get::<i64, _>(3)
            ),
            (4000, 3, 3, 42 * 4000)
        );
        let seqs = sqlx::query(
            "SELECT COUNT(*) FROM appeal_events e JOIN appeals a ON a.id = e.appeal_id \
             WHERE e.seq BETWEEN 1 AND a.last_seq",
        )
        .fetch_one(&pool)
        .await
        .unwrap()
        .get::<i64, _>(0);
        assert_eq!(seqs, 12_000);
    }
}
