//! A real `kill -9`: a child process (this test binary again) writes appeals as fast as it
//! can and prints each id once `create` has returned; the parent SIGKILLs it mid-stream and a
//! new writer on the same spool must bring every printed appeal into the database, once.

// All test code.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use appeals::{AppealId, AppealWriter, EventKind, NewAppeal, Store, WriterConfig};
use serde_json::json;
use sqlx::Row;

const CHILD_URL: &str = "HOTLINE_KILL9_URL";
const CHILD_SPOOL: &str = "HOTLINE_KILL9_SPOOL";
/// Ids the parent reads before it kills the child.
const KILL_AFTER: usize = 1000;

/// The child's side; does nothing unless started by `killed_mid_stream` (then never returns:
/// it is killed, or gives up after a bounded number of writes and 60 s).
#[test]
fn kill9_child_helper() {
    let (Ok(url), Ok(spool)) = (std::env::var(CHILD_URL), std::env::var(CHILD_SPOOL)) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let w = AppealWriter::start(WriterConfig::new(url, spool)).unwrap();
        let started = Instant::now();
        let mut out = std::io::stdout().lock();
        for i in 0..200_000u32 {
            let id = w.create(NewAppeal {
                call_id: format!("call-{i}"),
                line: "3758787".into(),
                caller_number: "+79130000000".into(),
                arrived_at: common::at(9, 0, 0),
            });
            w.event(id, EventKind::Ended, json!({ "i": i }));
            // Direct to fd 1 (not captured by the test harness).
            writeln!(out, "{id}").unwrap();
            out.flush().unwrap();
            if i % 64 == 0 {
                tokio::task::yield_now().await;
            }
            if started.elapsed() > Duration::from_secs(60) {
                break;
            }
        }
    });
    std::process::exit(3);
}

fn killed_mid_stream(db: &common::TestDb, rt: &tokio::runtime::Runtime) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "kill9_child_helper",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_URL, &db.url)
        .env(CHILD_SPOOL, db.spool())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut ids: Vec<AppealId> = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        // libtest's own "running 1 test" comes first, and "test kill9_child_helper ... "
        // (no newline) before the first id.
        let Ok(id) = line.rsplit(' ').next().unwrap_or("").parse() else {
            assert!(ids.is_empty(), "unexpected line {line:?}");
            continue;
        };
        ids.push(id);
        if ids.len() == KILL_AFTER {
            break;
        }
    }
    assert_eq!(ids.len(), KILL_AFTER, "child stopped early");
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert!(!status.success());
    // Whatever it printed before dying was written too.
    for line in lines {
        match line.ok().and_then(|l| l.parse().ok()) {
            Some(id) => ids.push(id),
            None => break,
        }
    }

    rt.block_on(async {
        let w = AppealWriter::start(db.writer_config(&db.url)).unwrap();
        let waiting = w.stats().backlog;
        assert!(waiting > 0, "the kill should leave work in the spool");
        assert!(w.flushed(Duration::from_secs(60)).await, "{:?}", w.stats());
        w.shutdown().await;
        let store = Store::connect(&db.url).await.unwrap();
        for (i, id) in ids.iter().enumerate() {
            let got = store
                .get(*id)
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("appeal {i} of {} lost", ids.len()));
            assert_eq!(got.appeal.call_id, format!("call-{i}"));
            let kinds: Vec<_> = got.events.iter().map(|e| e.kind).collect();
            // The last one may have died between its create and its event.
            if i + 1 < ids.len() {
                assert_eq!(kinds, [EventKind::Created, EventKind::Ended], "appeal {i}");
            }
        }
        let n: i64 = sqlx::query("SELECT COUNT(*) FROM appeals")
            .fetch_one(store.pool())
            .await
            .unwrap()
            .get(0);
        // At most one more: created, killed before its id was printed.
        let n = usize::try_from(n).unwrap();
        assert!(
            n == ids.len() || n == ids.len() + 1,
            "{n} rows for {} ids",
            ids.len()
        );
    });
}

#[test]
fn kill9_sqlite() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    killed_mid_stream(&common::sqlite(), &rt);
}

#[test]
fn kill9_postgres() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    if let Some(db) = rt.block_on(common::postgres("kill9", true)) {
        killed_mid_stream(&db, &rt);
    }
}
