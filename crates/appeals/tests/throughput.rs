//! The writer's cost per call, in process: 10 000 calls' worth of operations (create, an
//! `ended` event and the end-of-call update, as the daemon writes them) through the writer
//! into a temporary database. Prints the time and the statements sent; asserts only that
//! everything arrived correctly and that statements are counted per batch, not per call.
//!
//! `cargo test -p appeals --test throughput -- --nocapture` shows the figures.

// All test code.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use appeals::{AppealId, AppealUpdate, EventKind, NewAppeal, Outcome, Store};
use common::TestDb;
use serde_json::json;
use sqlx::Row;

const CALLS: usize = 10_000;
/// A call ends this many calls after it arrived, so its operations fall in different
/// batches, as in the daemon (the end's batch then updates an appeal stored earlier).
const LAG: usize = 100;

async fn count(store: &Store, sql: &str) -> i64 {
    sqlx::query(sql)
        .fetch_one(store.pool())
        .await
        .unwrap()
        .get(0)
}

async fn ten_thousand_calls(db: TestDb) {
    let config = db.writer_config(&db.url);
    let batch_max = config.batch_max;
    let w = appeals::AppealWriter::start(config).unwrap();
    let started = Instant::now();
    let mut ids: Vec<AppealId> = Vec::with_capacity(CALLS);
    for i in 0..CALLS + LAG {
        if i < CALLS {
            ids.push(w.create(NewAppeal {
                call_id: format!("call-{i}"),
                line: "5550100".into(),
                caller_number: format!("+7913{i:07}"),
                arrived_at: common::at(9, 0, 0),
            }));
        }
        if let Some(id) = i.checked_sub(LAG).and_then(|j| ids.get(j)) {
            w.event(
                *id,
                EventKind::Ended,
                json!({"reason": "caller_hung_up", "in_call_seconds": 0}),
            );
            w.update(
                *id,
                AppealUpdate {
                    ended_at: Some(common::at(9, 0, 1)),
                    outcome: Some(Outcome::InfoOnly),
                    ..AppealUpdate::default()
                },
            );
        }
    }
    let spooled = started.elapsed();
    assert!(
        w.flushed(Duration::from_secs(300)).await,
        "not flushed: {:?}",
        w.stats()
    );
    let elapsed = started.elapsed();
    let s = w.shutdown().await;
    let ops = 3 * CALLS as u64;
    let batches = ops.div_ceil(batch_max as u64);
    println!(
        "writer throughput ({}): {CALLS} calls, {ops} operations spooled in {spooled:?}, \
         committed in {elapsed:?} ({:.0} calls/s, {:.1} µs per call); {} statements \
         ({:.2} per call, {:.2} per batch of up to {batch_max})",
        db.url.split(':').next().unwrap_or(""),
        CALLS as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1e6 / CALLS as f64,
        s.statements,
        s.statements as f64 / CALLS as f64,
        s.statements as f64 / batches as f64,
    );
    assert_eq!((s.committed, s.rejected, s.backlog), (ops, 0, 0), "{s:?}");
    // BEGIN, INSERT appeals, UPDATE appeals, INSERT events, COMMIT, and the missed list of
    // the callers whose calls ended (their keys, their rows deleted and recomputed): at most
    // eight per full batch (the batches are full: every operation is spooled before the task
    // runs).
    assert!(
        s.statements <= 8 * batches,
        "{} statements for {batches} batches",
        s.statements
    );

    let store = Store::connect(&db.url).await.unwrap();
    assert_eq!(
        count(&store, "SELECT COUNT(*) FROM appeals").await,
        CALLS as i64
    );
    assert_eq!(
        count(
            &store,
            "SELECT COUNT(*) FROM appeals WHERE last_seq = 2 AND outcome = 'info_only' \
             AND ended_at IS NOT NULL"
        )
        .await,
        CALLS as i64
    );
    assert_eq!(
        count(&store, "SELECT COUNT(*) FROM appeal_events").await,
        2 * CALLS as i64
    );
    assert_eq!(
        count(
            &store,
            "SELECT COUNT(*) FROM appeal_events WHERE (seq = 1 AND kind = 'created') \
             OR (seq = 2 AND kind = 'ended')"
        )
        .await,
        2 * CALLS as i64
    );
    let last = store.get(ids[CALLS - 1]).await.unwrap().unwrap();
    assert_eq!(last.appeal.call_id, format!("call-{}", CALLS - 1));
    assert_eq!(
        last.events.iter().map(|e| e.kind).collect::<Vec<_>>(),
        [EventKind::Created, EventKind::Ended]
    );
}
on_both!(ten_thousand_calls);
