//! The partner-centre exchange in the store, with two databases standing for the two
//! centres (on SQLite, and on PostgreSQL under `scripts/with-postgres.sh`): a forward is
//! queued with the status change, received once however often it is delivered, the answer is
//! stored as the sender's `partner_ref`, and the receiver's status changes flow back.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use appeals::{
    AppealId, CaseChange, CitizenFields, EventKind, ForwardMessage, ForwardOrder, NewAppeal,
    OutboxKind, Status, StatusMessage, Store,
};
use chrono::Utc;
use common::{at, TestDb};
use serde_json::json;
use sqlx::Row;

/// Delivers every due message from `from` to `to` as the daemon's sender would, naming the
/// sender `centre`; returns how many were delivered.
async fn deliver(from: &Store, to: &Store, centre: &str, to_centre: &str) -> usize {
    let due = from.outbox_due(Utc::now(), 100).await.unwrap();
    for m in &due {
        let mut body = m.payload.clone();
        body["centre"] = json!(centre);
        let key = m.key.to_string();
        match m.kind {
            OutboxKind::Forward => {
                let fwd: ForwardMessage = serde_json::from_value(body).unwrap();
                let r = to.receive_forward(&key, &fwd, to_centre).await.unwrap();
                from.outbox_sent(m, Some(&r.accepted)).await.unwrap();
            }
            OutboxKind::Status => {
                let st: StatusMessage = serde_json::from_value(body).unwrap();
                let target: AppealId = m.path.split('/').nth(5).unwrap().parse().unwrap();
                to.receive_status(&key, target, &st).await.unwrap();
                from.outbox_sent(m, None).await.unwrap();
            }
        }
    }
    due.len()
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

#[tokio::test]
async fn exchange_on_sqlite() {
    exchange(common::sqlite(), common::sqlite()).await;
}

#[tokio::test]
async fn exchange_on_postgres() {
    let (Some(a), Some(b)) = (
        common::postgres("exchange (A)", true).await,
        common::postgres("exchange (B)", true).await,
    ) else {
        return;
    };
    exchange(a, b).await;
}

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

#[tokio::test]
async fn forward_carries_the_case_on_sqlite() {
    forward_carries_the_case(common::sqlite(), common::sqlite()).await;
}

#[tokio::test]
async fn forward_carries_the_case_on_postgres() {
    let (Some(a), Some(b)) = (
        common::postgres("case forward (A)", true).await,
        common::postgres("case forward (B)", true).await,
    ) else {
        return;
    };
    forward_carries_the_case(a, b).await;
}
