//! The appeal store end to end on SQLite, and on PostgreSQL under `scripts/with-postgres.sh`.

// The cases below are called by #[tokio::test] wrappers (see `on_both!`), all test code.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use appeals::{
    AppealId, AppealUpdate, AppealWriter, CallbackStatus, EventKind, NewAppeal, NewCallback,
    Outcome, Page, ReportOptions, SearchFilter, Status, Store,
};
use chrono::{FixedOffset, NaiveDate};
use common::{at, TestDb};
use serde_json::json;
use sqlx::Row;

const FLUSH: Duration = Duration::from_secs(30);

fn new_appeal(i: usize, line: &str, arrived: chrono::DateTime<chrono::Utc>) -> NewAppeal {
    NewAppeal {
        call_id: format!("call-{i}"),
        line: line.to_owned(),
        caller_number: format!("+7913{i:07}"),
        arrived_at: arrived,
    }
}

async fn count(store: &Store, table: &str) -> i64 {
    sqlx::query(&format!("SELECT COUNT(*) FROM {table}"))
        .fetch_one(store.pool())
        .await
        .unwrap()
        .get::<i64, _>(0)
}

fn kinds(events: &[appeals::AppealEvent]) -> Vec<EventKind> {
    events.iter().map(|e| e.kind).collect()
}

fn seqs(events: &[appeals::AppealEvent]) -> Vec<i64> {
    events.iter().map(|e| e.seq).collect()
}

// ---------------------------------------------------------------------------------------

async fn round_trip(db: TestDb) {
    let w = db.writer();
    let id = w.create(new_appeal(1, "3758787", at(9, 0, 0)));
    w.event(
        id,
        EventKind::IvrChoice,
        json!({"menu": "main", "key": "1"}),
    );
    w.event(id, EventKind::EnteredQueue, json!({"queue": "benefits"}));
    w.event(id, EventKind::Offered, json!({"operator": "op1"}));
    w.event(id, EventKind::NoAnswer, json!({"operator": "op1"}));
    w.event(id, EventKind::Answered, json!({"operator": "op2"}));
    w.update(
        id,
        AppealUpdate {
            answered_at: Some(at(9, 1, 30)),
            ended_at: Some(at(9, 5, 0)),
            ivr_path: Some("main:1".into()),
            category: Some("benefits".into()),
            queue: Some("benefits".into()),
            wait_seconds: Some(42),
            talk_seconds: Some(210),
            operator: Some("op2".into()),
            outcome: Some(Outcome::Answered),
            recording: Some("data/recordings/x.wav".into()),
            partner_ref: None,
        },
    );
    // A later partial update leaves the other fields alone.
    w.update(
        id,
        AppealUpdate {
            outcome: Some(Outcome::Transferred),
            ..AppealUpdate::default()
        },
    );
    w.event_by(id, EventKind::Ended, json!({"by": "caller"}), "op2");
    assert!(
        w.flushed(FLUSH).await,
        "writer did not flush: {:?}",
        w.stats()
    );
    let stats = w.shutdown().await;
    assert_eq!(stats.committed, 9);
    assert_eq!(stats.backlog, 0);

    let store = Store::connect(&db.url).await.unwrap();
    let got = store.get(id).await.unwrap().expect("appeal stored");
    let a = &got.appeal;
    assert_eq!(a.id, id);
    assert_eq!(a.call_id, "call-1");
    assert_eq!(a.line, "3758787");
    assert_eq!(a.caller_number, "+79130000001");
    assert_eq!(a.arrived_at, at(9, 0, 0));
    assert_eq!(a.answered_at, Some(at(9, 1, 30)));
    assert_eq!(a.ended_at, Some(at(9, 5, 0)));
    assert_eq!(a.ivr_path.as_deref(), Some("main:1"));
    assert_eq!(a.category.as_deref(), Some("benefits"));
    assert_eq!(a.queue.as_deref(), Some("benefits"));
    assert_eq!(a.wait_seconds, Some(42));
    assert_eq!(a.talk_seconds, Some(210));
    assert_eq!(a.operator.as_deref(), Some("op2"));
    assert_eq!(a.outcome, Some(Outcome::Transferred));
    assert_eq!(a.recording.as_deref(), Some("data/recordings/x.wav"));
    assert_eq!(a.status, Status::New);
    assert_eq!(a.partner_ref, None);

    assert_eq!(
        kinds(&got.events),
        [
            EventKind::Created,
            EventKind::IvrChoice,
            EventKind::EnteredQueue,
            EventKind::Offered,
            EventKind::NoAnswer,
            EventKind::Answered,
            EventKind::Ended
        ]
    );
    assert_eq!(seqs(&got.events), [1, 2, 3, 4, 5, 6, 7]);
    assert_eq!(got.events[0].at, at(9, 0, 0));
    assert_eq!(got.events[1].data, json!({"menu": "main", "key": "1"}));
    assert_eq!(got.events[6].actor.as_deref(), Some("op2"));
    assert!(got
        .events
        .windows(2)
        .all(|w| w[0].at <= w[1].at || w[0].seq == 1));

    assert!(store.get(AppealId::new()).await.unwrap().is_none());
}
on_both!(round_trip);

// ---------------------------------------------------------------------------------------

async fn admin_changes_are_events(db: TestDb) {
    let w = db.writer();
    let id = w.create(new_appeal(7, "3758787", at(10, 0, 0)));
    w.event(id, EventKind::Ended, json!({}));
    assert!(w.flushed(FLUSH).await);
    let store = Store::connect(&db.url).await.unwrap();

    store
        .set_status(id, Status::InProgress, "supervisor")
        .await
        .unwrap();
    store
        .set_notes(id, "needs a social worker visit", "op2")
        .await
        .unwrap();
    store
        .set_destination(id, "КЦСОН Ленинского района", "op2")
        .await
        .unwrap();
    store
        .set_status(id, Status::Forwarded, "op2")
        .await
        .unwrap();
    // The call path keeps writing after the admin did: numbering stays one sequence.
    w.event(id, EventKind::PartnerUpdate, json!({"status": "done"}));
    assert!(w.flushed(FLUSH).await);

    let got = store.get(id).await.unwrap().unwrap();
    assert_eq!(got.appeal.status, Status::Forwarded);
    assert_eq!(
        got.appeal.notes.as_deref(),
        Some("needs a social worker visit")
    );
    assert_eq!(
        got.appeal.destination_org.as_deref(),
        Some("КЦСОН Ленинского района")
    );
    assert_eq!(
        kinds(&got.events),
        [
            EventKind::Created,
            EventKind::Ended,
            EventKind::StatusChanged,
            EventKind::NoteAdded,
            EventKind::DestinationSet,
            EventKind::StatusChanged,
            EventKind::PartnerUpdate
        ]
    );
    assert_eq!(seqs(&got.events), [1, 2, 3, 4, 5, 6, 7]);
    assert_eq!(got.events[2].actor.as_deref(), Some("supervisor"));
    assert_eq!(
        got.events[2].data,
        json!({"from": "new", "to": "in_progress"})
    );
    assert_eq!(
        got.events[5].data,
        json!({"from": "in_progress", "to": "forwarded"})
    );
    assert_eq!(got.events[3].actor.as_deref(), Some("op2"));

    let missing = AppealId::new();
    assert!(matches!(
        store.set_status(missing, Status::Done, "x").await,
        Err(appeals::Error::NotFound(i)) if i == missing
    ));
    w.shutdown().await;
}
on_both!(admin_changes_are_events);

/// `set_status` follows the workflow `update_case` (the API's PATCH) follows: a move it
/// refuses is `Transition` and writes nothing (status, version, timeline); allowed moves
/// are recorded as before.
async fn set_status_follows_the_workflow(db: TestDb) {
    let w = db.writer();
    let id = w.create(new_appeal(8, "3758787", at(11, 0, 0)));
    assert!(w.flushed(FLUSH).await);
    let store = Store::connect(&db.url).await.unwrap();
    let before = store.get(id).await.unwrap().unwrap();
    assert_eq!(before.appeal.status, Status::New);

    // new → done, new → forwarded: refused, as the PATCH refuses them
    for to in [Status::Done, Status::Forwarded, Status::Pending] {
        let got = store.set_status(id, to, "org1").await;
        assert!(
            matches!(got, Err(appeals::Error::Transition { id: i, from: Status::New, to: t })
                if i == id && t == to),
            "{to}: {got:?}"
        );
    }
    assert_eq!(
        store.get(id).await.unwrap().unwrap(),
        before,
        "nothing written"
    );

    // allowed: new → in_progress → done, then done → forwarded refused, done → in_progress
    store
        .set_status(id, Status::InProgress, "op1")
        .await
        .unwrap();
    store.set_status(id, Status::Done, "org1").await.unwrap();
    let done = store.get(id).await.unwrap().unwrap();
    assert!(matches!(
        store.set_status(id, Status::Forwarded, "op1").await,
        Err(appeals::Error::Transition {
            from: Status::Done,
            to: Status::Forwarded,
            ..
        })
    ));
    assert_eq!(
        store.get(id).await.unwrap().unwrap(),
        done,
        "nothing written"
    );
    store
        .set_status(id, Status::InProgress, "sup")
        .await
        .unwrap();

    let got = store.get(id).await.unwrap().unwrap();
    assert_eq!(got.appeal.status, Status::InProgress);
    assert_eq!(got.appeal.case.version, before.appeal.case.version + 3);
    let moves: Vec<_> = got
        .events
        .iter()
        .filter(|e| e.kind == EventKind::StatusChanged)
        .map(|e| (e.data.clone(), e.actor.clone().unwrap()))
        .collect();
    assert_eq!(
        moves,
        [
            (
                json!({"from": "new", "to": "in_progress"}),
                "op1".to_owned()
            ),
            (
                json!({"from": "in_progress", "to": "done"}),
                "org1".to_owned()
            ),
            (
                json!({"from": "done", "to": "in_progress"}),
                "sup".to_owned()
            ),
        ]
    );
    w.shutdown().await;
}
on_both!(set_status_follows_the_workflow);

/// The writer numbers whole batches while the admin numbers single changes on the same
/// appeals at the same time: every timeline stays 1, 2, 3… with no gap and no duplicate,
/// and neither side fails for the other's lock.
async fn admin_and_writer_interleave(db: TestDb) {
    const APPEALS: usize = 20;
    const WRITER_EVENTS: usize = 30;
    const ADMIN_CHANGES: usize = 8;
    let w = db.writer();
    let ids: Vec<AppealId> = (0..APPEALS)
        .map(|i| w.create(new_appeal(i, "3758787", at(11, 0, 0))))
        .collect();
    assert!(w.flushed(FLUSH).await);
    let store = Store::connect(&db.url).await.unwrap();
    let admin = {
        let store = store.clone();
        let ids = ids.clone();
        tokio::spawn(async move {
            for round in 0..ADMIN_CHANGES {
                for id in &ids {
                    store
                        .set_notes(*id, &format!("round {round}"), "supervisor")
                        .await
                        .unwrap();
                }
                tokio::task::yield_now().await;
            }
        })
    };
    for k in 0..WRITER_EVENTS {
        for id in &ids {
            w.event(*id, EventKind::Offered, json!({"k": k}));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    admin.await.unwrap();
    assert!(w.flushed(FLUSH).await, "{:?}", w.stats());
    w.shutdown().await;

    let total = 1 + WRITER_EVENTS + ADMIN_CHANGES;
    for id in &ids {
        let got = store.get(*id).await.unwrap().unwrap();
        assert_eq!(seqs(&got.events), (1..=total as i64).collect::<Vec<_>>());
        let offered: Vec<_> = got
            .events
            .iter()
            .filter(|e| e.kind == EventKind::Offered)
            .map(|e| e.data["k"].as_u64().unwrap())
            .collect();
        assert_eq!(offered, (0..WRITER_EVENTS as u64).collect::<Vec<_>>());
        let notes = got
            .events
            .iter()
            .filter(|e| e.kind == EventKind::NoteAdded)
            .count();
        assert_eq!(notes, ADMIN_CHANGES);
    }
    let at_total: i64 = sqlx::query("SELECT COUNT(*) FROM appeals WHERE last_seq = $1")
        .bind(total as i64)
        .fetch_one(store.pool())
        .await
        .unwrap()
        .get(0);
    assert_eq!(at_total, APPEALS as i64);
    assert_eq!(
        count(&store, "appeal_events").await,
        (APPEALS * total) as i64
    );
}
on_both!(admin_and_writer_interleave);

// ---------------------------------------------------------------------------------------

const CATEGORIES: [&str; 4] = ["benefits", "home-care", "rehab", "volunteers"];

fn line_of(i: usize) -> &'static str {
    if i % 3 == 0 {
        "88002015388"
    } else {
        "3758787"
    }
}

async fn search_filters_and_paging(db: TestDb) {
    let w = db.writer();
    let mut ids = Vec::new();
    for i in 0..30 {
        let id = w.create(new_appeal(
            i,
            line_of(i),
            at(0, 0, 0) + chrono::Duration::minutes(i as i64),
        ));
        w.update(
            id,
            AppealUpdate {
                category: Some(CATEGORIES[i % 4].into()),
                ..AppealUpdate::default()
            },
        );
        ids.push(id);
    }
    assert!(w.flushed(FLUSH).await);
    let store = Store::connect(&db.url).await.unwrap();
    for i in (0..30).filter(|i| i % 7 == 0) {
        store
            .set_status(ids[i], Status::InProgress, "sup")
            .await
            .unwrap();
    }

    // Which call numbers a filter returns, newest first.
    let calls = |appeals: Vec<appeals::Appeal>| -> Vec<usize> {
        appeals
            .iter()
            .map(|a| a.call_id.trim_start_matches("call-").parse().unwrap())
            .collect()
    };
    let expect = |pred: &dyn Fn(usize) -> bool| -> Vec<usize> {
        (0..30).rev().filter(|i| pred(*i)).collect()
    };
    let all = Page {
        offset: 0,
        limit: 100,
    };

    let page1 = store
        .search(
            &SearchFilter::default(),
            Page {
                offset: 0,
                limit: 10,
            },
        )
        .await
        .unwrap();
    assert_eq!(calls(page1), (20..30).rev().collect::<Vec<_>>());
    let last = store
        .search(
            &SearchFilter::default(),
            Page {
                offset: 25,
                limit: 10,
            },
        )
        .await
        .unwrap();
    assert_eq!(calls(last), [4, 3, 2, 1, 0]);
    assert_eq!(store.count(&SearchFilter::default()).await.unwrap(), 30);

    let f = SearchFilter {
        line: Some("88002015388".into()),
        ..SearchFilter::default()
    };
    assert_eq!(
        calls(store.search(&f, all).await.unwrap()),
        expect(&|i| i % 3 == 0)
    );
    assert_eq!(store.count(&f).await.unwrap(), 10);

    let f = SearchFilter {
        category: Some("rehab".into()),
        ..SearchFilter::default()
    };
    assert_eq!(
        calls(store.search(&f, all).await.unwrap()),
        expect(&|i| i % 4 == 2)
    );

    let f = SearchFilter {
        status: Some(Status::InProgress),
        ..SearchFilter::default()
    };
    assert_eq!(
        calls(store.search(&f, all).await.unwrap()),
        [28, 21, 14, 7, 0]
    );

    let f = SearchFilter {
        caller: Some("0000012".into()),
        ..SearchFilter::default()
    };
    assert_eq!(calls(store.search(&f, all).await.unwrap()), [12]);
    // LIKE wildcards in the input are plain characters.
    let f = SearchFilter {
        caller: Some("%".into()),
        ..SearchFilter::default()
    };
    assert!(store.search(&f, all).await.unwrap().is_empty());

    let f = SearchFilter {
        from: Some(at(0, 10, 0)),
        to: Some(at(0, 20, 0)),
        ..SearchFilter::default()
    };
    assert_eq!(
        calls(store.search(&f, all).await.unwrap()),
        expect(&|i| (10..20).contains(&i))
    );

    let f = SearchFilter {
        from: Some(at(0, 5, 0)),
        line: Some("3758787".into()),
        category: Some("benefits".into()),
        status: Some(Status::New),
        ..SearchFilter::default()
    };
    let want = expect(&|i| i >= 5 && i % 3 != 0 && i % 4 == 0 && i % 7 != 0);
    assert!(!want.is_empty());
    assert_eq!(calls(store.search(&f, all).await.unwrap()), want);
    let paged = store
        .search(
            &f,
            Page {
                offset: 1,
                limit: 1,
            },
        )
        .await
        .unwrap();
    assert_eq!(calls(paged), [want[1]]);
    w.shutdown().await;
}
on_both!(search_filters_and_paging);

// ---------------------------------------------------------------------------------------

struct Call {
    line: &'static str,
    arrived: chrono::DateTime<chrono::Utc>,
    category: Option<&'static str>,
    outcome: Outcome,
    wait: Option<i64>,
    talk: Option<i64>,
    operator: Option<&'static str>,
}

async fn daily_report_numbers(db: TestDb) {
    use chrono::TimeZone;
    let city = "3758787";
    let region = "88002015388";
    let c = |line, arrived, category, outcome, wait, talk, operator| Call {
        line,
        arrived,
        category,
        outcome,
        wait,
        talk,
        operator,
    };
    // The day is 2024-03-15 at +07:00: 2024-03-14T17:00Z up to 2024-03-15T17:00Z.
    let calls = [
        c(
            city,
            at(3, 0, 0),
            Some("benefits"),
            Outcome::Answered,
            Some(10),
            Some(100),
            Some("anna"),
        ),
        c(
            city,
            at(3, 30, 0),
            Some("benefits"),
            Outcome::Transferred,
            Some(30),
            Some(200),
            Some("boris"),
        ),
        c(
            city,
            at(4, 10, 0),
            Some("home-care"),
            Outcome::Abandoned,
            Some(40),
            None,
            None,
        ),
        c(city, at(5, 0, 0), None, Outcome::InfoOnly, None, None, None),
        c(
            region,
            at(6, 0, 0),
            Some("regional"),
            Outcome::Answered,
            Some(5),
            Some(60),
            Some("anna"),
        ),
        c(
            region,
            at(6, 20, 0),
            Some("regional"),
            Outcome::Abandoned,
            Some(20),
            None,
            None,
        ),
        c(
            city,
            at(16, 59, 59),
            Some("benefits"),
            Outcome::Answered,
            Some(20),
            Some(50),
            Some("anna"),
        ),
        // Outside the day on either side.
        c(
            city,
            at(17, 0, 0),
            Some("benefits"),
            Outcome::Answered,
            Some(1),
            Some(1),
            Some("anna"),
        ),
        c(
            city,
            chrono::Utc
                .with_ymd_and_hms(2024, 3, 14, 16, 59, 59)
                .unwrap(),
            Some("benefits"),
            Outcome::Abandoned,
            Some(99),
            None,
            None,
        ),
    ];
    let w = db.writer();
    for (i, call) in calls.iter().enumerate() {
        let id = w.create(new_appeal(i, call.line, call.arrived));
        let answered = call.operator.is_some();
        w.update(
            id,
            AppealUpdate {
                answered_at: answered
                    .then(|| call.arrived + chrono::Duration::seconds(call.wait.unwrap_or(0))),
                category: call.category.map(Into::into),
                wait_seconds: call.wait,
                talk_seconds: call.talk,
                operator: call.operator.map(Into::into),
                outcome: Some(call.outcome),
                ..AppealUpdate::default()
            },
        );
    }
    assert!(w.flushed(FLUSH).await);
    let store = Store::connect(&db.url).await.unwrap();
    let nsk = FixedOffset::east_opt(7 * 3600).unwrap();
    let day = NaiveDate::from_ymd_opt(2024, 3, 15).unwrap();
    let r = store
        .daily_report(day, nsk, &ReportOptions::default())
        .await
        .unwrap();

    let close = |a: Option<f64>, b: f64| a.is_some_and(|a| (a - b).abs() < 1e-9);
    assert_eq!(r.service_level_seconds, 20);
    assert_eq!(r.utc_offset_seconds, 7 * 3600);
    let t = &r.total;
    assert_eq!(
        (t.calls, t.answered, t.abandoned, t.answered_within_sl),
        (7, 4, 2, 3)
    );
    assert!(close(t.service_level, 0.5));
    assert!(close(t.avg_wait, 16.25));
    assert!(close(t.avg_wait_abandoned, 30.0));
    assert!(close(t.avg_talk, 102.5));

    let keys = |g: &[appeals::Group]| g.iter().map(|g| g.key.clone()).collect::<Vec<_>>();
    assert_eq!(
        keys(&r.by_line),
        [Some(city.to_owned()), Some(region.to_owned())]
    );
    let l = &r.by_line[0].figures;
    assert_eq!(
        (l.calls, l.answered, l.abandoned, l.answered_within_sl),
        (5, 3, 1, 2)
    );
    assert!(close(l.service_level, 0.5));
    assert!(close(l.avg_wait, 20.0));
    assert!(close(l.avg_wait_abandoned, 40.0));
    assert!(close(l.avg_talk, 350.0 / 3.0));
    let l = &r.by_line[1].figures;
    assert_eq!(
        (l.calls, l.answered, l.abandoned, l.answered_within_sl),
        (2, 1, 1, 1)
    );
    assert!(close(l.avg_wait, 5.0));
    assert!(close(l.avg_wait_abandoned, 20.0));

    assert_eq!(
        keys(&r.by_category),
        [
            None,
            Some("benefits".into()),
            Some("home-care".into()),
            Some("regional".into())
        ]
    );
    let cats: Vec<_> = r
        .by_category
        .iter()
        .map(|g| (g.figures.calls, g.figures.answered, g.figures.abandoned))
        .collect();
    assert_eq!(cats, [(1, 0, 0), (3, 3, 0), (1, 0, 1), (2, 1, 1)]);
    assert_eq!(r.by_category[0].figures.service_level, None);

    assert_eq!(
        keys(&r.by_operator),
        [Some("anna".into()), Some("boris".into())]
    );
    let anna = &r.by_operator[0].figures;
    assert_eq!((anna.calls, anna.answered), (3, 3));
    assert!(close(anna.avg_talk, 70.0));
    assert!(close(anna.avg_wait, 35.0 / 3.0));
    assert_eq!(r.by_operator[1].figures.calls, 1);

    assert_eq!(r.by_hour.len(), 24);
    let per_hour: Vec<(u32, u64)> = r
        .by_hour
        .iter()
        .filter(|h| h.figures.calls > 0)
        .map(|h| (h.hour, h.figures.calls))
        .collect();
    assert_eq!(per_hour, [(10, 2), (11, 1), (12, 1), (13, 2), (23, 1)]);
    assert_eq!(r.by_hour[13].figures.abandoned, 1);

    // A stricter service level changes only what it should.
    let strict = store
        .daily_report(
            day,
            nsk,
            &ReportOptions {
                service_level_seconds: 5,
            },
        )
        .await
        .unwrap();
    assert_eq!(strict.total.answered_within_sl, 1);
    assert!(close(strict.total.service_level, 1.0 / 6.0));
    assert_eq!(strict.total.calls, 7);
    w.shutdown().await;
}
on_both!(daily_report_numbers);

// ---------------------------------------------------------------------------------------

/// Writes `n` appeals with three events and an update each; returns their ids.
fn write_calls(w: &AppealWriter, n: usize) -> Vec<AppealId> {
    (0..n)
        .map(|i| {
            let id = w.create(new_appeal(
                i,
                line_of(i),
                at(8, 0, 0) + chrono::Duration::seconds(i as i64),
            ));
            w.event(
                id,
                EventKind::IvrChoice,
                json!({"key": (i % 5).to_string()}),
            );
            w.event(id, EventKind::EnteredQueue, json!({"queue": "benefits"}));
            w.update(
                id,
                AppealUpdate {
                    category: Some(CATEGORIES[i % 4].into()),
                    outcome: Some(Outcome::Abandoned),
                    ..AppealUpdate::default()
                },
            );
            w.event(id, EventKind::Abandoned, json!({"i": i}));
            id
        })
        .collect()
}

/// Every appeal is there once, with its four events in order and its update applied.
async fn check_calls(store: &Store, ids: &[AppealId]) {
    for (i, id) in ids.iter().enumerate() {
        let got = store
            .get(*id)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("appeal {i} lost"));
        assert_eq!(got.appeal.call_id, format!("call-{i}"));
        assert_eq!(got.appeal.category.as_deref(), Some(CATEGORIES[i % 4]));
        assert_eq!(got.appeal.outcome, Some(Outcome::Abandoned));
        assert_eq!(
            kinds(&got.events),
            [
                EventKind::Created,
                EventKind::IvrChoice,
                EventKind::EnteredQueue,
                EventKind::Abandoned
            ],
            "appeal {i}"
        );
        assert_eq!(seqs(&got.events), [1, 2, 3, 4]);
        assert_eq!(got.events[3].data, json!({"i": i}));
    }
    assert_eq!(count(store, "appeals").await, ids.len() as i64);
    assert_eq!(count(store, "appeal_events").await, 4 * ids.len() as i64);
}

async fn spool_survives_outage(db: TestDb) {
    let url = db.broken_url();
    let w = AppealWriter::start(db.writer_config(&url)).unwrap();
    let started = std::time::Instant::now();
    let ids = write_calls(&w, 50);
    // Writing never waited for the database.
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let s = w.stats();
    assert_eq!(s.backlog, 250, "{s:?}");
    assert!(!s.db_available);
    assert!(s.spool_bytes > 0);
    assert_eq!(s.committed, 0);

    db.repair().await;
    assert!(
        w.flushed(FLUSH).await,
        "not flushed after repair: {:?}",
        w.stats()
    );
    let s = w.shutdown().await;
    assert_eq!(
        (s.backlog, s.committed, s.rejected, s.spool_bytes),
        (0, 250, 0, 0),
        "{s:?}"
    );
    assert!(s.db_available);
    let store = Store::connect(&url).await.unwrap();
    check_calls(&store, &ids).await;
}
on_both!(spool_survives_outage, false);

async fn replay_is_idempotent(db: TestDb) {
    let url = db.broken_url();
    let w = AppealWriter::start(db.writer_config(&url)).unwrap();
    let ids = write_calls(&w, 20);
    let s = w.shutdown().await;
    assert_eq!(s.backlog, 100, "{s:?}");
    let spool_file = db.spool().join("appeals.jsonl");
    let saved = std::fs::read(&spool_file).unwrap();
    assert_eq!(saved.iter().filter(|b| **b == b'\n').count(), 100);

    db.repair().await;
    let w = AppealWriter::start(db.writer_config(&url)).unwrap();
    assert!(w.flushed(FLUSH).await);
    assert_eq!(w.shutdown().await.spool_bytes, 0);
    assert_eq!(std::fs::metadata(&spool_file).unwrap().len(), 0);

    // The same spool again, as after a crash between commit and truncation.
    std::fs::write(&spool_file, &saved).unwrap();
    let w = AppealWriter::start(db.writer_config(&url)).unwrap();
    assert_eq!(w.stats().backlog, 100);
    assert!(w.flushed(FLUSH).await);
    let s = w.shutdown().await;
    assert_eq!((s.committed, s.rejected), (100, 0));
    let store = Store::connect(&url).await.unwrap();
    check_calls(&store, &ids).await;
}
on_both!(replay_is_idempotent, false);

async fn writer_dropped_without_shutdown(db: TestDb) {
    let mut config = db.writer_config(&db.url);
    config.batch_max = 50;
    let w = AppealWriter::start(config).unwrap();
    let ids = write_calls(&w, 300);
    // Let some batches commit, then stop the task abruptly, as a crash would.
    let deadline = std::time::Instant::now() + FLUSH;
    while w.stats().committed == 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let before = w.stats();
    drop(w);
    assert!(
        before.committed > 0 && before.backlog > 0,
        "the crash should come mid-way: {before:?}"
    );
    let spool_len = std::fs::metadata(db.spool().join("appeals.jsonl"))
        .unwrap()
        .len();
    assert!(
        spool_len > 0,
        "uncommitted operations must still be in the spool"
    );

    let w = db.writer();
    assert!(w.stats().backlog > 0);
    assert!(w.flushed(FLUSH).await, "{:?}", w.stats());
    w.shutdown().await;
    let store = Store::connect(&db.url).await.unwrap();
    check_calls(&store, &ids).await;
}
on_both!(writer_dropped_without_shutdown);

async fn callbacks_and_operator_sessions(db: TestDb) {
    let w = db.writer();
    let appeal = w.create(new_appeal(1, "88002015388", at(20, 0, 0)));
    let first = w.callback(NewCallback {
        appeal_id: appeal,
        number: "+79130000001".into(),
        queue: Some("regional".into()),
        requested_at: at(20, 1, 0),
        due_at: Some(at(23, 0, 0)),
    });
    let second = w.callback(NewCallback {
        appeal_id: appeal,
        number: "+79130000002".into(),
        queue: None,
        requested_at: at(20, 2, 0),
        due_at: None,
    });
    w.callback_status(first, CallbackStatus::Dialling, 1, Some("anna"));
    w.callback_status(first, CallbackStatus::Done, 1, None);
    // a callback followed by its booking appeal (what the call side knows): dialled, missed,
    // given up; a late step after the end does not reopen it
    let other = w.create(new_appeal(2, "88002015388", at(20, 5, 0)));
    let third = w.callback(NewCallback {
        appeal_id: other,
        number: "+79130000003".into(),
        queue: Some("benefits".into()),
        requested_at: at(20, 6, 0),
        due_at: None,
    });
    let progress = |status, attempts, operator: Option<&str>, result: Option<&str>| {
        appeals::CallbackProgress {
            status,
            attempts,
            operator: operator.map(str::to_owned),
            last_result: result.map(str::to_owned),
        }
    };
    w.callback_progress(
        other,
        progress(CallbackStatus::Dialling, 0, Some("boris"), None),
    );
    w.callback_progress(
        other,
        progress(CallbackStatus::Pending, 1, Some("boris"), Some("no_answer")),
    );
    w.callback_progress(
        other,
        progress(CallbackStatus::Failed, 2, Some("anna"), Some("busy")),
    );
    w.callback_progress(
        other,
        progress(CallbackStatus::Pending, 1, None, Some("no_answer")),
    );
    let s1 = w.operator_login("anna", &["benefits".to_owned(), "regional".to_owned()]);
    let s2 = w.operator_login("boris", &[]);
    w.operator_logout(s1, "logout");
    w.operator_logout(s1, "again"); // the first end recorded wins
    assert!(w.flushed(FLUSH).await, "{:?}", w.stats());
    w.shutdown().await;

    let store = Store::connect(&db.url).await.unwrap();
    let all = store.callbacks(None).await.unwrap();
    assert_eq!(
        all.iter().map(|c| c.id).collect::<Vec<_>>(),
        [first, second, third]
    );
    let failed = &all[2];
    assert_eq!(failed.status, CallbackStatus::Failed);
    assert_eq!(failed.attempts, 2);
    assert_eq!(failed.operator.as_deref(), Some("anna"));
    assert_eq!(failed.last_result.as_deref(), Some("busy"));
    assert!(failed.completed_at.is_some());
    assert_eq!(
        all[1].last_result, None,
        "another appeal's callback is untouched"
    );
    let done = &all[0];
    assert_eq!(done.status, CallbackStatus::Done);
    assert_eq!(done.attempts, 1);
    assert_eq!(done.operator.as_deref(), Some("anna"));
    assert_eq!(done.due_at, Some(at(23, 0, 0)));
    assert!(done.completed_at.is_some());
    assert_eq!(done.appeal_id, appeal);
    let pending = store
        .callbacks(Some(CallbackStatus::Pending))
        .await
        .unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].number, "+79130000002");
    assert_eq!(pending[0].status, CallbackStatus::Pending);
    assert_eq!(pending[0].completed_at, None);

    let now = chrono::Utc::now();
    let sessions = store
        .operator_sessions(
            now - chrono::Duration::hours(1),
            now + chrono::Duration::hours(1),
        )
        .await
        .unwrap();
    assert_eq!(sessions.iter().map(|s| s.id).collect::<Vec<_>>(), [s1, s2]);
    assert_eq!(sessions[0].operator, "anna");
    assert_eq!(sessions[0].queues, ["benefits", "regional"]);
    assert_eq!(sessions[0].end_reason.as_deref(), Some("logout"));
    assert!(sessions[0].ended_at.is_some());
    assert_eq!(sessions[1].ended_at, None);
    assert!(sessions[1].queues.is_empty());
    assert!(store
        .operator_sessions(
            now + chrono::Duration::hours(1),
            now + chrono::Duration::hours(2)
        )
        .await
        .unwrap()
        .is_empty());
}
on_both!(callbacks_and_operator_sessions);

// ---------------------------------------------------------------------------------------

/// A line the database cannot take is set aside, and the rest goes on.
#[tokio::test]
async fn bad_spool_line_is_set_aside() {
    let db = common::sqlite();
    std::fs::create_dir_all(db.spool()).unwrap();
    let id = AppealId::new();
    let spool = format!(
        concat!(
            r#"{{"op":"create","id":"{id}","event_id":"{e1}","appeal":{{"call_id":"c","line":"3758787","caller_number":"+7","arrived_at":"2024-03-15T09:00:00Z"}}}}"#,
            "\n",
            "this is not json\n",
            r#"{{"op":"event","id":"{id}","event_id":"{e2}","at":"2024-03-15T09:00:01Z","kind":"ended","data":{{}}}}"#,
            "\n",
        ),
        id = id,
        e1 = uuid::Uuid::now_v7(),
        e2 = uuid::Uuid::now_v7()
    );
    std::fs::write(db.spool().join("appeals.jsonl"), spool).unwrap();
    let w = db.writer();
    assert!(w.flushed(FLUSH).await);
    let s = w.shutdown().await;
    assert_eq!((s.committed, s.rejected), (2, 1));
    let rejected = std::fs::read_to_string(db.spool().join("rejected.jsonl")).unwrap();
    assert_eq!(rejected.lines().count(), 1);
    assert!(rejected.contains("this is not json"));
    let store = Store::connect(&db.url).await.unwrap();
    let got = store.get(id).await.unwrap().unwrap();
    assert_eq!(kinds(&got.events), [EventKind::Created, EventKind::Ended]);
}

/// SQLite is created on first run, folder included, in WAL mode.
#[tokio::test]
async fn sqlite_created_in_wal_mode() {
    let db = common::sqlite();
    let store = Store::connect(&db.url).await.unwrap();
    assert!(db.dir.path().join("data/hotline.db").is_file());
    let mode: String = sqlx::query("PRAGMA journal_mode")
        .fetch_one(store.pool())
        .await
        .unwrap()
        .get(0);
    assert_eq!(mode, "wal");
    // Connecting again does not re-run the migrations.
    store.close().await;
    let again = Store::connect(&db.url).await.unwrap();
    // one migration per number (a backend's own part, `*.sqlite.sql`, is not another)
    let shipped = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
        .unwrap()
        .filter(|f| {
            let name = f.as_ref().unwrap().file_name();
            let name = name.to_string_lossy();
            !name.ends_with(".sqlite.sql") && !name.ends_with(".postgres.sql")
        })
        .count();
    assert_eq!(count(&again, "hotline_migrations").await, shipped as i64);
}
