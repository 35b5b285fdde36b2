//! The partner-centre exchange in the store, with two databases standing for the two
//! centres (on SQLite, and on PostgreSQL under `scripts/with-postgres.sh`): a forward is
//! queued with the status change, received once however often it is delivered, the answer is
//! stored as the sender's `partner_ref`, and the receiver's status changes flow back.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use appeals::{
    AppealId, CaseChange, CitizenFields, EventKind, ForwardMessage, ForwardOrder, NewAppeal,
    OutboxKind, Status, StatusMessage, StatusMove, Store, UpdateMessage,
};
use chrono::Utc;
use common::{at, TestDb};
use serde_json::json;
use sqlx::Row;

/// Delivers every due message from `from` to `to` as the daemon's sender would, naming the
/// sender `centre`, pass after pass (a pass takes the oldest pending message of each appeal)
/// until nothing is due; returns how many were delivered. A message the receiver refuses
/// (no such appeal, a status its copy cannot take) is given up, as the sender gives up a
/// 4xx.
async fn deliver(from: &Store, to: &Store, centre: &str, to_centre: &str) -> usize {
    let mut delivered = 0;
    loop {
        let due = from.outbox_due(Utc::now(), 100).await.unwrap();
        if due.is_empty() {
            return delivered;
        }
        for m in &due {
            let mut body = m.payload.clone();
            body["centre"] = json!(centre);
            let key = m.key.to_string();
            let target = || -> AppealId { m.path.split('/').nth(5).unwrap().parse().unwrap() };
            let refused = match m.kind {
                OutboxKind::Forward => {
                    let fwd: ForwardMessage = serde_json::from_value(body).unwrap();
                    let r = to.receive_forward(&key, &fwd, to_centre).await.unwrap();
                    from.outbox_sent(m, Some(&r.accepted)).await.unwrap();
                    None
                }
                OutboxKind::Status => {
                    let st: StatusMessage = serde_json::from_value(body).unwrap();
                    to.receive_status(&key, target(), &st).await.err()
                }
                OutboxKind::Update => {
                    let up: UpdateMessage = serde_json::from_value(body).unwrap();
                    to.receive_update(&key, target(), &up).await.err()
                }
            };
            match refused {
                None if m.kind == OutboxKind::Forward => delivered += 1,
                None => {
                    from.outbox_sent(m, None).await.unwrap();
                    delivered += 1;
                }
                Some(
                    e @ (appeals::Error::NotFound(_)
                    | appeals::Error::Transition { .. }
                    | appeals::Error::NotReopenable { .. }),
                ) => from.outbox_failed(m, &e.to_string()).await.unwrap(),
                Some(e) => panic!("{e}"),
            }
        }
    }
}

/// Runs a test of two centres (A and B, a database each) on SQLite, and on PostgreSQL when
/// there is one (`case::sqlite`, `case::postgres`), as `on_both!` does for one database.
macro_rules! on_two_centres {
    ($case:ident, $what:literal) => {
        mod $case {
            use super::common;

            #[tokio::test]
            async fn sqlite() {
                super::$case(common::sqlite(), common::sqlite()).await;
            }

            #[tokio::test]
            async fn postgres() {
                let (Some(a), Some(b)) = (
                    common::postgres(concat!($what, " (A)"), true).await,
                    common::postgres(concat!($what, " (B)"), true).await,
                ) else {
                    return;
                };
                super::$case(a, b).await;
            }
        }
    };
}

async fn count(store: &Store, sql: &str) -> i64 {
    sqlx::query(sql)
        .fetch_one(store.pool())
        .await
        .unwrap()
        .get::<i64, _>(0)
}

async fn exchange(a_db: TestDb, b_db: TestDb) {
    let w = a_db.writer();
    let id = w.create(NewAppeal {
        call_id: "call-1".into(),
        line: "city".into(),
        caller_number: "+79131234567".into(),
        arrived_at: at(9, 0, 0),
    });
    assert!(w.flushed(Duration::from_secs(30)).await);
    let a = Store::connect(&a_db.url).await.unwrap();
    let b = Store::connect(&b_db.url).await.unwrap();

    let key = a
        .forward(
            id,
            &ForwardOrder {
                note: Some("needs long-term care".into()),
                destination_org: Some("ГАУ СО НСО".into()),
                actor: "op1".into(),
            },
        )
        .await
        .unwrap();
    let got = a.get(id).await.unwrap().unwrap();
    assert_eq!(got.appeal.status, Status::Forwarded);
    assert_eq!(got.appeal.destination_org.as_deref(), Some("ГАУ СО НСО"));
    let fwd = got.events.last().unwrap();
    assert_eq!(fwd.kind, EventKind::Forwarded);
    assert_eq!(fwd.actor.as_deref(), Some("op1"));
    assert_eq!(fwd.data["idempotency_key"], json!(key));
    // A second forward of the same appeal is refused; so is one of a forwarded appeal.
    assert!(matches!(
        a.forward(id, &ForwardOrder::default()).await,
        Err(appeals::Error::NotForwardable { .. })
    ));

    // The same message delivered three times (the sender lost the answers) makes one appeal.
    let due = a.outbox_due(Utc::now(), 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].key, key);
    let mut body = due[0].payload.clone();
    body["centre"] = json!("city");
    let msg: ForwardMessage = serde_json::from_value(body).unwrap();
    let first = b
        .receive_forward(&key.to_string(), &msg, "region")
        .await
        .unwrap();
    assert!(first.created);
    for _ in 0..2 {
        let again = b
            .receive_forward(&key.to_string(), &msg, "region")
            .await
            .unwrap();
        assert!(!again.created);
        assert_eq!(again.accepted, first.accepted);
    }
    assert_eq!(count(&b, "SELECT COUNT(*) FROM appeals").await, 1);
    let theirs = first.accepted.appeal_id;
    assert_eq!(first.accepted.partner_ref, format!("region:{theirs}"));
    let on_b = b.get(theirs).await.unwrap().unwrap();
    assert_eq!(on_b.appeal.partner_ref, Some(format!("city:{id}")));
    assert_eq!(on_b.appeal.line, "partner:city");
    assert_eq!(on_b.appeal.caller_number, "+79131234567");
    assert_eq!(on_b.appeal.status, Status::New);
    assert_eq!(on_b.events.len(), 1);
    assert_eq!(on_b.events[0].kind, EventKind::Created);
    assert_eq!(on_b.events[0].data["from_partner"], "city");
    assert_eq!(on_b.events[0].data["partner_appeal"], json!(id));

    a.outbox_sent(&due[0], Some(&first.accepted)).await.unwrap();
    a.outbox_sent(&due[0], Some(&first.accepted)).await.unwrap();
    assert!(a.outbox_due(Utc::now(), 10).await.unwrap().is_empty());
    let got = a.get(id).await.unwrap().unwrap();
    assert_eq!(
        got.appeal.partner_ref.as_deref(),
        Some(first.accepted.partner_ref.as_str())
    );
    let delivered: Vec<_> = got
        .events
        .iter()
        .filter(|e| e.kind == EventKind::PartnerUpdate)
        .collect();
    assert_eq!(delivered.len(), 1, "marking sent twice records it once");

    // B works the appeal: each status change is queued back to A, in order.
    b.set_status(theirs, Status::InProgress, "psy1")
        .await
        .unwrap();
    b.set_notes(theirs, "called back", "psy1").await.unwrap();
    b.set_status(theirs, Status::Done, "psy1").await.unwrap();
    let queued = b.outbox(Some(theirs)).await.unwrap();
    assert_eq!(queued.len(), 2, "notes are not reported, statuses are");
    assert!(queued.iter().all(|r| r.kind == OutboxKind::Status));
    // Status changes on A's own appeal queue nothing (it did not come from the partner).
    assert_eq!(deliver(&b, &a, "region", "city").await, 2);
    assert_eq!(deliver(&b, &a, "region", "city").await, 0);

    let got = a.get(id).await.unwrap().unwrap();
    let updates: Vec<_> = got
        .events
        .iter()
        .filter(|e| e.kind == EventKind::PartnerUpdate && e.data.get("status").is_some())
        .collect();
    assert_eq!(updates.len(), 2);
    assert_eq!(updates[0].data["status"], "in_progress");
    assert_eq!(updates[0].data["partner_actor"], "psy1");
    assert_eq!(updates[0].actor.as_deref(), Some("partner:region"));
    assert_eq!(updates[1].data["status"], "done");
    // The partner's `resolved` resolves the forwarded appeal here too.
    assert_eq!(got.appeal.status, Status::Done);
    let last = got.events.last().unwrap();
    assert_eq!(last.kind, EventKind::StatusChanged);
    assert_eq!(last.data, json!({"from": "forwarded", "to": "done"}));
    assert!(a.outbox(None).await.unwrap().len() == 1);

    // A status message replayed under its key changes nothing.
    let st = StatusMessage {
        centre: "region".into(),
        appeal_id: theirs,
        from: Status::Done,
        status: Status::InProgress,
        actor: None,
        at: Utc::now(),
        resolution: None,
    };
    assert!(a.receive_status("k-1", id, &st).await.unwrap());
    assert!(!a.receive_status("k-1", id, &st).await.unwrap());
    let n = a.get(id).await.unwrap().unwrap().events.len();
    assert_eq!(n, got.events.len() + 1);
    // … and the partner reopening it is recorded, not mirrored.
    assert_eq!(
        a.get(id).await.unwrap().unwrap().appeal.status,
        Status::Done
    );
    assert!(matches!(
        a.receive_status("k-2", AppealId::new(), &st).await,
        Err(appeals::Error::NotFound(_))
    ));

    // The received appeal is no call on B's lines: B's daily report does not count it.
    let day = on_b
        .appeal
        .arrived_at
        .with_timezone(&chrono::Utc)
        .date_naive();
    let r = b
        .daily_report(
            day,
            chrono::FixedOffset::east_opt(0).unwrap(),
            &Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(r.total.calls, 0);
    w.shutdown().await;
}

on_two_centres!(exchange, "exchange");

/// Retries move the next attempt; a refused message is given up and says so on the
/// timeline.
#[tokio::test]
async fn retry_and_give_up() {
    let db = common::sqlite();
    let w = db.writer();
    let id = w.create(NewAppeal {
        call_id: "c".into(),
        line: "city".into(),
        caller_number: "+7".into(),
        arrived_at: at(9, 0, 0),
    });
    assert!(w.flushed(Duration::from_secs(30)).await);
    let a = Store::connect(&db.url).await.unwrap();
    a.forward(id, &ForwardOrder::default()).await.unwrap();
    let due = a.outbox_due(Utc::now(), 10).await.unwrap();
    let later = Utc::now() + chrono::Duration::seconds(60);
    a.outbox_retry(due[0].key, later, "connection refused")
        .await
        .unwrap();
    assert!(a.outbox_due(Utc::now(), 10).await.unwrap().is_empty());
    let next = a.outbox_next_due().await.unwrap().unwrap();
    assert_eq!(next.timestamp_millis(), later.timestamp_millis());
    let again = a.outbox_due(later, 10).await.unwrap();
    assert_eq!(again[0].attempts, 1);
    a.outbox_failed(&again[0], "422: bad appeal").await.unwrap();
    assert!(a.outbox_due(later, 10).await.unwrap().is_empty());
    assert_eq!(a.outbox_next_due().await.unwrap(), None);
    let rows = a.outbox(Some(id)).await.unwrap();
    assert_eq!(rows[0].attempts, 2);
    assert!(rows[0].failed_at.is_some());
    let got = a.get(id).await.unwrap().unwrap();
    assert_eq!(
        got.events.last().unwrap().data["delivery_failed"],
        "422: bad appeal"
    );
    w.shutdown().await;
}

/// A forward carries what the partner needs to act: the citizen, the service, the address
/// and district, the due date. The partner links the appeal to its own card with one of the
/// numbers, or makes one; the citizen's consent and notes stay with the sender.
async fn forward_carries_the_case(a_db: TestDb, b_db: TestDb) {
    let a = Store::connect(&a_db.url).await.unwrap();
    let b = Store::connect(&b_db.url).await.unwrap();
    let w = a_db.writer();
    let card = CitizenFields {
        name: "Иванова Мария Петровна".into(),
        phones: vec!["+7 913 123-45-67".into()],
        address: Some("ул. Петухова, 12".into()),
        district: Some("kirovsky".into()),
        notes: Some("только для нас".into()),
        consent: Some(appeals::Consent {
            by: "op1".into(),
            at: at(8, 0, 0),
        }),
        ..CitizenFields::default()
    };
    let citizen = a.create_citizen(&card).await.unwrap();
    let mut ids = Vec::new();
    for i in 0..2 {
        ids.push(w.create(NewAppeal {
            call_id: format!("call-{i}"),
            line: "city".into(),
            caller_number: "+79131234567".into(),
            arrived_at: at(9, i, 0),
        }));
    }
    assert!(w.flushed(Duration::from_secs(30)).await);
    let due = at(9, 0, 0) + chrono::Duration::days(10);
    for id in &ids {
        a.update_case(
            *id,
            None,
            &CaseChange {
                service: Some(Some("long-term-care".into())),
                address: Some(Some("ул. Петухова, 12".into())),
                district: Some(Some("kirovsky".into())),
                due_at: Some(Some(due)),
                ..CaseChange::default()
            },
            "op1",
        )
        .await
        .unwrap();
        assert_eq!(
            a.get(*id).await.unwrap().unwrap().appeal.case.citizen_id,
            Some(citizen.id)
        );
        a.forward(*id, &ForwardOrder::default()).await.unwrap();
    }
    assert_eq!(deliver(&a, &b, "city", "region").await, 2);
    let received: Vec<_> = sqlx::query("SELECT id FROM appeals ORDER BY id")
        .fetch_all(b.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<String, _>(0).parse::<AppealId>().unwrap())
        .collect();
    assert_eq!(received.len(), 2);
    let mut cards = Vec::new();
    for id in received {
        let got = b.get(id).await.unwrap().unwrap().appeal;
        assert_eq!(got.case.service.as_deref(), Some("long-term-care"));
        assert_eq!(got.case.district.as_deref(), Some("kirovsky"));
        assert_eq!(got.case.address.as_deref(), Some("ул. Петухова, 12"));
        assert_eq!(got.case.due_at, Some(due));
        cards.push(got.case.citizen_id.unwrap());
    }
    // the second forward found the card the first one made
    assert_eq!(cards[0], cards[1]);
    let theirs = b.citizen(cards[0]).await.unwrap().unwrap();
    assert_eq!(theirs.card.name, "Иванова Мария Петровна");
    assert_eq!(theirs.card.phones, ["+7 913 123-45-67"]);
    assert_eq!(theirs.card.consent, None);
    assert_eq!(theirs.card.notes, None);
    assert_eq!(count(&b, "SELECT COUNT(*) FROM citizens").await, 1);
    w.shutdown().await;
}

on_two_centres!(forward_carries_the_case, "case forward");

/// A's appeal `call`, with a due date, forwarded to B and delivered: (A's id, B's copy).
async fn forwarded(
    a: &Store,
    b: &Store,
    w: &appeals::AppealWriter,
    call: &str,
) -> (AppealId, AppealId) {
    let id = w.create(NewAppeal {
        call_id: call.into(),
        line: "city".into(),
        caller_number: "+79131234567".into(),
        arrived_at: at(9, 0, 0),
    });
    assert!(w.flushed(Duration::from_secs(30)).await);
    let due = CaseChange {
        due_at: Some(Some(at(9, 0, 0) + chrono::Duration::days(10))),
        ..CaseChange::default()
    };
    a.update_case(id, None, &due, "op1").await.unwrap();
    a.forward(id, &ForwardOrder::default()).await.unwrap();
    assert_eq!(deliver(a, b, "city", "region").await, 1);
    let r = a
        .get(id)
        .await
        .unwrap()
        .unwrap()
        .appeal
        .partner_ref
        .unwrap();
    (id, r.strip_prefix("region:").unwrap().parse().unwrap())
}

/// The kinds of `id`'s outbox rows on `s`, oldest first.
async fn queued(s: &Store, id: AppealId) -> Vec<OutboxKind> {
    s.outbox(Some(id))
        .await
        .unwrap()
        .iter()
        .map(|r| r.kind)
        .collect()
}

/// Status both ways (issue 12, item 7): what the origin changes on an appeal it forwarded —
/// due date, notes, withdrawal, reopening — reaches the partner's copy, applied by the
/// partner and echoed back by nobody; the partner's own status still comes back; the same
/// update twice applies once; what the copy cannot take is refused, written nowhere and
/// given up by the sender.
async fn status_both_ways(a_db: TestDb, b_db: TestDb) {
    let a = Store::connect(&a_db.url).await.unwrap();
    let b = Store::connect(&b_db.url).await.unwrap();
    let w = a_db.writer();
    let (ours, theirs) = forwarded(&a, &b, &w, "both-1").await;
    use OutboxKind::{Forward, Status as St, Update};
    use Status::{Declined, Done, Forwarded, InProgress, New};

    // A moves the due date and writes notes: one update, applied to B's copy by A's centre.
    let due = at(9, 0, 0) + chrono::Duration::days(20);
    let change = CaseChange {
        due_at: Some(Some(due)),
        notes: Some("Позвонить дочери после 18:00".into()),
        ..CaseChange::default()
    };
    a.update_case(ours, None, &change, "op1").await.unwrap();
    assert_eq!(queued(&a, ours).await, [Forward, Update]);
    let before = b.get(theirs).await.unwrap().unwrap();
    assert_eq!(deliver(&a, &b, "city", "region").await, 1);
    let got = b.get(theirs).await.unwrap().unwrap();
    assert_eq!(got.appeal.case.due_at, Some(due));
    assert_eq!(got.appeal.status, New);
    assert_eq!(
        got.appeal.notes, before.appeal.notes,
        "B's own notes stay B's"
    );
    assert_eq!(got.appeal.case.version, before.appeal.case.version + 1);
    let new_events = &got.events[before.events.len()..];
    assert_eq!(new_events.len(), 2, "{new_events:?}");
    assert_eq!(new_events[0].kind, EventKind::PartnerUpdate);
    assert_eq!(new_events[0].data["notes"], "Позвонить дочери после 18:00");
    assert_eq!(new_events[0].data["partner_appeal"], json!(ours));
    assert_eq!(new_events[0].data["partner_actor"], "op1");
    assert!(new_events[0].data.get("status").is_none());
    assert_eq!(new_events[1].kind, EventKind::CaseUpdated);
    assert_eq!(new_events[1].data["field"], "due_at");
    assert_eq!(new_events[1].data["to"], json!(due));
    assert!(new_events
        .iter()
        .all(|e| e.actor.as_deref() == Some("partner:city")));
    assert!(b.outbox(None).await.unwrap().is_empty(), "nothing echoed");

    // A withdraws it (declined, with the reason): B's copy is declined by A's centre, and
    // nothing goes back.
    let withdraw = CaseChange {
        status: Some(Declined),
        resolution: Some(Some("Заявитель отказался".into())),
        ..CaseChange::default()
    };
    a.update_case(ours, None, &withdraw, "op1").await.unwrap();
    assert_eq!(deliver(&a, &b, "city", "region").await, 1);
    let got = b.get(theirs).await.unwrap().unwrap();
    assert_eq!(got.appeal.status, Declined);
    let n = got.events.len();
    let report = &got.events[n - 2];
    assert_eq!(report.kind, EventKind::PartnerUpdate);
    assert_eq!(
        (&report.data["from"], &report.data["status"]),
        (&json!(Forwarded), &json!(Declined))
    );
    assert_eq!(report.data["resolution"], "Заявитель отказался");
    let moved = &got.events[n - 1];
    assert_eq!(moved.kind, EventKind::StatusChanged);
    assert_eq!(moved.data, json!({"from": "new", "to": "declined"}));
    assert_eq!(moved.actor.as_deref(), Some("partner:city"));
    assert!(b.outbox(None).await.unwrap().is_empty(), "nothing echoed");

    // A reopens it: B's closed copy reopens.
    let reopen = CaseChange {
        status: Some(InProgress),
        ..CaseChange::default()
    };
    a.update_case(ours, None, &reopen, "op1").await.unwrap();
    assert_eq!(deliver(&a, &b, "city", "region").await, 1);
    let got = b.get(theirs).await.unwrap().unwrap();
    assert_eq!(got.appeal.status, InProgress);
    assert_eq!(
        got.events.last().unwrap().data,
        json!({"from": "declined", "to": "in_progress", "reopened": true})
    );

    // B finishes it: its status comes back to A as before, and A echoes nothing.
    let done = CaseChange {
        status: Some(Done),
        ..CaseChange::default()
    };
    b.update_case(theirs, None, &done, "psy1").await.unwrap();
    assert_eq!(queued(&b, theirs).await, [St]);
    let a_rows = queued(&a, ours).await;
    assert_eq!(deliver(&b, &a, "region", "city").await, 1);
    assert_eq!(queued(&a, ours).await, a_rows, "nothing echoed");
    let last = a.get(ours).await.unwrap().unwrap();
    let last = last.events.last().unwrap();
    assert_eq!(last.kind, EventKind::PartnerUpdate);
    assert_eq!(last.data["status"], "done");

    // The same update twice (the answer was lost) applies once.
    let up = UpdateMessage {
        centre: "city".into(),
        status: Some(StatusMove {
            from: Done,
            to: InProgress,
        }),
        at: Utc::now(),
        ..UpdateMessage::default()
    };
    let first = b.receive_update("again-1", ours, &up).await.unwrap();
    assert!(first.fresh);
    assert_eq!(
        first.status,
        Some(StatusMove {
            from: Done,
            to: InProgress
        })
    );
    let n = b.get(theirs).await.unwrap().unwrap().events.len();
    let second = b.receive_update("again-1", ours, &up).await.unwrap();
    assert!(!second.fresh);
    assert_eq!(second.appeal_id, theirs);
    assert_eq!(b.get(theirs).await.unwrap().unwrap().events.len(), n);
    // A reopen of a copy that is not closed is refused; nothing is written and the key is
    // not taken (the same message is refused again, not answered as a duplicate).
    for _ in 0..2 {
        assert!(matches!(
            b.receive_update("again-2", ours, &up).await,
            Err(appeals::Error::NotReopenable {
                status: InProgress,
                ..
            })
        ));
    }
    let got = b.get(theirs).await.unwrap().unwrap();
    assert_eq!((got.events.len(), got.appeal.status), (n, InProgress));
    // Only the centre that forwarded the appeal can change its copy.
    for (centre, origin) in [("city", AppealId::new()), ("elsewhere", ours)] {
        let up = UpdateMessage {
            centre: centre.into(),
            ..up.clone()
        };
        assert!(matches!(
            b.receive_update("again-3", origin, &up).await,
            Err(appeals::Error::NotFound(_))
        ));
    }

    // A closes an appeal B has not started: B's `new` copy cannot become `done` — refused,
    // and the sender gives it up with the reason on A's timeline.
    let (second, copy) = forwarded(&a, &b, &w, "both-2").await;
    a.update_case(second, None, &done, "op1").await.unwrap();
    assert_eq!(deliver(&a, &b, "city", "region").await, 0);
    assert_eq!(b.get(copy).await.unwrap().unwrap().appeal.status, New);
    let rows = a.outbox(Some(second)).await.unwrap();
    assert!(rows[1].failed_at.is_some() && rows[1].kind == Update);
    let got = a.get(second).await.unwrap().unwrap();
    let failed = got.events.last().unwrap();
    assert!(
        failed.data["delivery_failed"]
            .as_str()
            .unwrap()
            .contains("cannot become done"),
        "{failed:?}"
    );
    assert!(a.outbox_due(Utc::now(), 10).await.unwrap().is_empty());
    w.shutdown().await;
}

on_two_centres!(status_both_ways, "both ways");

/// The partner's result comes back: its resolution travels with its close and closes our
/// forwarded appeal with it (ours had none); a later change of its resolution reaches our
/// timeline without touching our own; a note of theirs does not travel.
async fn result_comes_back(a_db: TestDb, b_db: TestDb) {
    let a = Store::connect(&a_db.url).await.unwrap();
    let b = Store::connect(&b_db.url).await.unwrap();
    let w = a_db.writer();
    let (ours, theirs) = forwarded(&a, &b, &w, "result-1").await;
    use Status::{Done, Forwarded, InProgress};
    assert_eq!(a.get(ours).await.unwrap().unwrap().appeal.status, Forwarded);

    let start = CaseChange {
        status: Some(InProgress),
        notes: Some("Внутренняя заметка".into()),
        ..CaseChange::default()
    };
    b.update_case(theirs, None, &start, "psy1").await.unwrap();
    let finish = CaseChange {
        status: Some(Done),
        resolution: Some(Some("Назначена выплата".into())),
        ..CaseChange::default()
    };
    b.update_case(theirs, None, &finish, "psy1").await.unwrap();
    let before = a.get(ours).await.unwrap().unwrap().events.len();
    assert_eq!(deliver(&b, &a, "region", "city").await, 2);
    let got = a.get(ours).await.unwrap().unwrap();
    assert_eq!(got.appeal.status, Done);
    assert_eq!(
        got.appeal.case.resolution.as_deref(),
        Some("Назначена выплата")
    );
    assert_eq!(got.appeal.notes, None, "their notes stay theirs");
    let new_events = &got.events[before..];
    let kinds: Vec<EventKind> = new_events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            EventKind::PartnerUpdate,
            EventKind::PartnerUpdate,
            EventKind::StatusChanged,
            EventKind::CaseUpdated
        ]
    );
    assert!(new_events[0].data.get("resolution").is_none());
    assert!(new_events[0].data.get("notes").is_none());
    assert_eq!(new_events[1].data["resolution"], "Назначена выплата");
    assert_eq!(new_events[1].data["status"], "done");
    assert_eq!(
        new_events[3].data,
        json!({"field": "resolution", "from": null, "to": "Назначена выплата"})
    );
    assert!(new_events
        .iter()
        .all(|e| e.actor.as_deref() == Some("partner:region")));
    assert!(
        a.outbox_due(Utc::now(), 10).await.unwrap().is_empty(),
        "nothing echoed"
    );

    // They correct the result afterwards: our timeline has it, our resolution stays ours.
    let correct = CaseChange {
        resolution: Some(Some("Назначена выплата с 1 января".into())),
        ..CaseChange::default()
    };
    b.update_case(theirs, None, &correct, "psy1").await.unwrap();
    assert_eq!(deliver(&b, &a, "region", "city").await, 1);
    let got = a.get(ours).await.unwrap().unwrap();
    let last = got.events.last().unwrap();
    assert_eq!(last.kind, EventKind::PartnerUpdate);
    assert_eq!(last.data["resolution"], "Назначена выплата с 1 января");
    assert!(last.data.get("status").is_none(), "{last:?}");
    assert_eq!(
        got.appeal.case.resolution.as_deref(),
        Some("Назначена выплата")
    );
    // A resolution cleared there tells us nothing.
    let clear = CaseChange {
        resolution: Some(None),
        ..CaseChange::default()
    };
    b.update_case(theirs, None, &clear, "psy1").await.unwrap();
    assert_eq!(deliver(&b, &a, "region", "city").await, 0);
    w.shutdown().await;
}

on_two_centres!(result_comes_back, "result back");

/// Retention masks the caller's number in what was sent to the partner too; a message still
/// on its way keeps it; a second run reads nothing again.
async fn retention_masks_what_was_sent(a_db: TestDb, b_db: TestDb) {
    let a = Store::connect(&a_db.url).await.unwrap();
    let b = Store::connect(&b_db.url).await.unwrap();
    let w = a_db.writer();
    let (ours, _) = forwarded(&a, &b, &w, "mask-1").await;
    let waiting = w.create(NewAppeal {
        call_id: "mask-2".into(),
        line: "city".into(),
        caller_number: "+79135550000".into(),
        arrived_at: at(9, 0, 0),
    });
    assert!(w.flushed(Duration::from_secs(30)).await);
    a.forward(waiting, &ForwardOrder::default()).await.unwrap();
    let sent = "SELECT COUNT(*) FROM partner_outbox WHERE payload LIKE '%9131234567%'";
    let on_its_way = "SELECT COUNT(*) FROM partner_outbox WHERE payload LIKE '%9135550000%'";
    assert_eq!((count(&a, sent).await, count(&a, on_its_way).await), (1, 1));

    let later = Utc::now() + chrono::Duration::days(1);
    let m = a.mask_callers_before(later).await.unwrap();
    assert_eq!(m.appeals, 2);
    assert_eq!(count(&a, sent).await, 0, "what was sent keeps no number");
    assert_eq!(
        count(&a, on_its_way).await,
        1,
        "a message on its way is left whole"
    );
    assert_eq!(
        a.get(ours).await.unwrap().unwrap().appeal.caller_number,
        "+7********67"
    );
    let again = a.mask_callers_before(later).await.unwrap();
    assert_eq!((again.appeals, again.callbacks), (0, 0));
    w.shutdown().await;
}

on_two_centres!(retention_masks_what_was_sent, "retention");

/// A trigger that makes every insert of an update into the outbox fail.
async fn refuse_updates(s: &Store) {
    use sqlx::Executor;
    let sql = match s.backend() {
        appeals::Backend::Sqlite => {
            "CREATE TRIGGER refuse_updates BEFORE INSERT ON partner_outbox \
             WHEN NEW.kind = 'update' BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
        }
        appeals::Backend::Postgres => {
            "CREATE FUNCTION refuse_updates() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN IF NEW.kind = 'update' THEN RAISE EXCEPTION 'refused by the test'; END IF; \
             RETURN NEW; END $$; \
             CREATE TRIGGER refuse_updates BEFORE INSERT ON partner_outbox \
             FOR EACH ROW EXECUTE FUNCTION refuse_updates()"
        }
    };
    s.pool().execute(sql).await.unwrap();
}

/// The change of a forwarded appeal and its message share one transaction: a change that
/// fails queues nothing, a message that cannot be queued undoes the change. Messages about
/// one appeal leave in order: an update waits behind the forward being retried, and a
/// forward refused for good takes its updates with it. Appeals never forwarded queue
/// nothing.
async fn change_and_message_in_one_transaction(db: TestDb) {
    let a = Store::connect(&db.url).await.unwrap();
    let w = db.writer();
    let mut ids = Vec::new();
    for i in 0..2 {
        ids.push(w.create(NewAppeal {
            call_id: format!("tx-{i}"),
            line: "city".into(),
            caller_number: "+79131234567".into(),
            arrived_at: at(9, i, 0),
        }));
    }
    assert!(w.flushed(Duration::from_secs(30)).await);
    let (id, never) = (ids[0], ids[1]);
    let fwd = a.forward(id, &ForwardOrder::default()).await.unwrap();
    let due = at(9, 0, 0) + chrono::Duration::days(5);
    let move_due = CaseChange {
        due_at: Some(Some(due)),
        ..CaseChange::default()
    };

    // Refused changes queue nothing.
    let version = a.get(id).await.unwrap().unwrap().appeal.case.version;
    assert!(matches!(
        a.update_case(id, Some(version - 1), &move_due, "op1").await,
        Err(appeals::Error::Stale { .. })
    ));
    let back_to_new = CaseChange {
        status: Some(Status::New),
        ..CaseChange::default()
    };
    assert!(matches!(
        a.update_case(id, None, &back_to_new, "op1").await,
        Err(appeals::Error::Transition { .. })
    ));
    assert_eq!(queued(&a, id).await, [OutboxKind::Forward]);

    // A message that cannot be queued undoes its change.
    refuse_updates(&a).await;
    let before = a.get(id).await.unwrap().unwrap();
    assert!(a.update_case(id, None, &move_due, "op1").await.is_err());
    assert!(a.set_status(id, Status::Declined, "op1").await.is_err());
    assert!(a.set_notes(id, "перезвонить", "op1").await.is_err());
    assert_eq!(a.get(id).await.unwrap().unwrap(), before, "nothing changed");
    assert_eq!(queued(&a, id).await, [OutboxKind::Forward]);
    // … while an appeal never forwarded changes freely and queues nothing.
    a.update_case(never, None, &move_due, "op1").await.unwrap();
    a.set_notes(never, "перезвонить", "op1").await.unwrap();
    assert!(queued(&a, never).await.is_empty());
    let drop = match a.backend() {
        appeals::Backend::Sqlite => "DROP TRIGGER refuse_updates",
        appeals::Backend::Postgres => "DROP TRIGGER refuse_updates ON partner_outbox",
    };
    sqlx::query(drop).execute(a.pool()).await.unwrap();

    // Each kind of change queues its update with the change.
    a.update_case(id, None, &move_due, "op1").await.unwrap();
    a.set_notes(id, "перезвонить", "op1").await.unwrap();
    a.set_status(id, Status::Declined, "op1").await.unwrap();
    use OutboxKind::{Forward, Update};
    assert_eq!(queued(&a, id).await, [Forward, Update, Update, Update]);
    let payloads: Vec<serde_json::Value> = sqlx::query(
        "SELECT payload FROM partner_outbox WHERE appeal_id = $1 AND kind = 'update' ORDER BY created_at, id",
    )
    .bind(id.to_string())
    .fetch_all(a.pool())
    .await
    .unwrap()
    .iter()
    .map(|r| serde_json::from_str(&r.get::<String, _>(0)).unwrap())
    .collect();
    assert_eq!(payloads[0]["due_at"], json!(due));
    assert_eq!(payloads[1]["notes"], "перезвонить");
    assert_eq!(
        payloads[2]["status"],
        json!({"from": "forwarded", "to": "declined"})
    );
    assert!(payloads.iter().all(|p| p.get("centre").is_none()));

    // Only the forward is due while it is pending; retried later, nothing is due until then.
    let due_now = a.outbox_due(Utc::now(), 10).await.unwrap();
    assert_eq!(due_now.len(), 1);
    assert_eq!(due_now[0].key, fwd);
    let later = Utc::now() + chrono::Duration::seconds(60);
    a.outbox_retry(fwd, later, "connection refused")
        .await
        .unwrap();
    assert!(a.outbox_due(Utc::now(), 10).await.unwrap().is_empty());
    assert_eq!(
        a.outbox_next_due()
            .await
            .unwrap()
            .map(|t| t.timestamp_millis()),
        Some(later.timestamp_millis())
    );
    // Refused for good: the updates behind it can never apply and are given up too.
    let head = a.outbox_due(later, 10).await.unwrap();
    assert_eq!(head.len(), 1);
    a.outbox_failed(&head[0], "422: bad appeal").await.unwrap();
    assert!(a.outbox_due(later, 10).await.unwrap().is_empty());
    assert_eq!(a.outbox_next_due().await.unwrap(), None);
    let rows = a.outbox(Some(id)).await.unwrap();
    assert!(rows
        .iter()
        .all(|r| r.failed_at.is_some() && r.sent_at.is_none()));
    assert_eq!(
        rows[3].last_error.as_deref(),
        Some("the forward was refused")
    );
    // … and a refused forward queues no more.
    a.set_notes(id, "ещё раз", "op1").await.unwrap();
    assert_eq!(a.outbox(Some(id)).await.unwrap().len(), 4);
    w.shutdown().await;
}

on_both!(change_and_message_in_one_transaction);

/// A database the schema before this change (migrations 1–6; 7 is the search one) made,
/// holding a received forward: the upgrade keeps it, and an update finds the copy.
async fn upgrade_keeps_received_forwards(db: TestDb) {
    let pool = common::old_schema(&db.url, &common::OLD_MIGRATIONS[..6]).await;
    let (copy, origin) = (AppealId::new(), AppealId::new());
    sqlx::query(
        "INSERT INTO appeals (id, call_id, line, caller_number, arrived_at, status, partner_ref, \
         last_seq, updated_at) VALUES ($1, $2, 'partner:city', '+79131234567', 1, 'new', $3, 0, 1)",
    )
    .bind(copy.to_string())
    .bind(format!("partner:city:{origin}"))
    .bind(format!("city:{origin}"))
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO partner_inbox (idempotency_key, kind, appeal_id, origin_centre, \
         origin_appeal_id, received_at) VALUES ('k-old', 'forward', $1, 'city', $2, 1)",
    )
    .bind(copy.to_string())
    .bind(origin.to_string())
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;

    let b = Store::connect(&db.url).await.unwrap();
    let version: i64 = sqlx::query("SELECT MAX(version) FROM hotline_migrations")
        .fetch_one(b.pool())
        .await
        .unwrap()
        .get(0);
    assert_eq!(version, 9, "and every migration after it");
    assert_eq!(
        count(
            &b,
            "SELECT COUNT(*) FROM partner_inbox WHERE kind = 'forward'"
        )
        .await,
        1
    );
    let up = UpdateMessage {
        centre: "city".into(),
        status: Some(StatusMove {
            from: Status::Forwarded,
            to: Status::Declined,
        }),
        at: Utc::now(),
        ..UpdateMessage::default()
    };
    let r = b.receive_update("k-new", origin, &up).await.unwrap();
    assert_eq!((r.appeal_id, r.fresh), (copy, true));
    assert_eq!(
        b.get(copy).await.unwrap().unwrap().appeal.status,
        Status::Declined
    );
}

on_both!(upgrade_keeps_received_forwards);
