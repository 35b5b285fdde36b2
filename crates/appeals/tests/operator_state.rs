//! Operators' work state survives a restart: saved through the writer's spool, read back by
//! `operator_state::load` from the database, or from the spool while the database is down.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use appeals::operator_state::load;
use appeals::OperatorStateRow;
use common::{at, TestDb};

fn state(op: &str, logged_in: bool, paused: Option<&str>) -> OperatorStateRow {
    OperatorStateRow {
        operator: op.into(),
        logged_in,
        queues: if logged_in {
            vec!["benefits".into()]
        } else {
            vec![]
        },
        since: logged_in.then(|| at(9, 0, 0)),
        paused_since: paused.map(|_| at(10, 0, 0)),
        pause_reason: paused.filter(|r| !r.is_empty()).map(str::to_owned),
        // the writer stamps its own time
        updated_at: at(0, 0, 0),
    }
}

/// What a daemon does while running: op1 logs in and pauses for a break, op2 logs in, op3
/// logs in and out again. A new process (a new load over the same database, the spool
/// committed and emptied) sees exactly that.
async fn state_survives_a_restart(db: TestDb) {
    let writer = db.writer();
    writer.operator_state(state("op1", true, None));
    writer.operator_state(state("op1", true, Some("break")));
    writer.operator_state(state("op2", true, None));
    writer.operator_state(state("op3", true, None));
    writer.operator_state(state("op3", false, None));
    assert!(writer.flushed(Duration::from_secs(10)).await);
    writer.shutdown().await;
    drop(writer);

    let loaded = load(&db.url, &db.spool(), Duration::from_secs(5)).await;
    assert!(
        loaded.database_error.is_none(),
        "{:?}",
        loaded.database_error
    );
    let got: Vec<(String, bool, Option<String>, Vec<String>)> = loaded
        .states
        .iter()
        .map(|s| {
            (
                s.operator.clone(),
                s.logged_in,
                s.pause_reason.clone(),
                s.queues.clone(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "op1".into(),
                true,
                Some("break".into()),
                vec!["benefits".into()]
            ),
            ("op2".into(), true, None, vec!["benefits".into()]),
            ("op3".into(), false, None, vec![]),
        ]
    );
    let op1 = &loaded.states[0];
    assert_eq!(op1.since, Some(at(9, 0, 0)));
    assert_eq!(op1.paused_since, Some(at(10, 0, 0)));
    // the writer's stamp, not the one we passed
    assert!(op1.updated_at > at(0, 0, 0));
}
on_both!(state_survives_a_restart);

/// The database is down the whole time: the changes wait in the spool, and a restart still
/// finds them there (the newest change of each operator), saying the database was not read.
/// Once the database is back, the writer saves them and a load finds them in the table.
async fn state_waits_in_the_spool_while_the_database_is_down(db: TestDb) {
    let broken = db.broken_url();
    let writer = appeals::AppealWriter::start(db.writer_config(&broken)).unwrap();
    writer.operator_state(state("op1", true, None));
    writer.operator_state(state("op1", true, Some("paperwork")));
    writer.shutdown().await;
    drop(writer);

    let loaded = load(&broken, &db.spool(), Duration::from_secs(2)).await;
    assert!(loaded.database_error.is_some());
    assert_eq!(loaded.states.len(), 1);
    assert_eq!(loaded.states[0].pause_reason.as_deref(), Some("paperwork"));

    db.repair().await;
    let writer = appeals::AppealWriter::start(db.writer_config(&broken)).unwrap();
    assert!(writer.flushed(Duration::from_secs(10)).await);
    writer.shutdown().await;
    drop(writer);
    // the spool is empty now: what load finds came from the table
    assert_eq!(
        std::fs::metadata(db.spool().join("appeals.jsonl"))
            .unwrap()
            .len(),
        0
    );
    let loaded = load(&broken, &db.spool(), Duration::from_secs(5)).await;
    assert!(loaded.database_error.is_none());
    assert_eq!(loaded.states.len(), 1);
    assert!(loaded.states[0].logged_in);
    assert_eq!(loaded.states[0].pause_reason.as_deref(), Some("paperwork"));
}
on_both!(state_waits_in_the_spool_while_the_database_is_down, false);
