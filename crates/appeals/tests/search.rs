//! Search (issue 12 item 5) and the missed callers table (item 4) on SQLite, and on
//! PostgreSQL under `scripts/with-postgres.sh`: full text by Cyrillic word beginnings in the
//! citizens' cards and the appeals, kept in step with every change; the cards searched
//! through the appeals only when asked; `missed_callers` kept by the writer through call →
//! hang-up → callback answered; and migration 7 over a database migration 6 made.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use appeals::{
    AppealUpdate, CallbackStatus, CaseChange, CitizenFields, CitizenFilter, CitizenPatch,
    NewAppeal, NewCallback, Outcome, Page, SearchFilter, Status, Store,
};
use chrono::Utc;
use common::{at, TestDb};
use sqlx::Row;

const FLUSH: Duration = Duration::from_secs(30);
const ALL: Page = Page {
    offset: 0,
    limit: 100,
};

fn call(i: usize, caller: &str, arrived: chrono::DateTime<Utc>) -> NewAppeal {
    NewAppeal {
        call_id: format!("call-{i}"),
        line: "3758787".to_owned(),
        caller_number: caller.to_owned(),
        arrived_at: arrived,
    }
}

fn card(name: &str, address: Option<&str>, notes: Option<&str>, phone: &str) -> CitizenFields {
    CitizenFields {
        name: name.into(),
        phones: vec![phone.into()],
        address: address.map(Into::into),
        notes: notes.map(Into::into),
        ..CitizenFields::default()
    }
}

async fn names(store: &Store, text: &str) -> Vec<String> {
    let f = CitizenFilter {
        text: Some(text.into()),
        ..CitizenFilter::default()
    };
    store
        .search_citizens(&f, ALL)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.card.name)
        .collect()
}

async fn found(store: &Store, text: &str, in_citizens: bool) -> Vec<appeals::AppealId> {
    let f = SearchFilter {
        text: Some(text.into()),
        text_in_citizens: in_citizens,
        ..SearchFilter::default()
    };
    let list: Vec<_> = store
        .search(&f, ALL)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(store.count(&f).await.unwrap(), list.len() as u64, "{text}");
    list
}

// ---------------------------------------------------------------------------------------
async fn full_text(db: TestDb) {
    let store = Store::connect(&db.url).await.unwrap();
    let ivanova = store
        .create_citizen(&card(
            "Иванова Мария Петровна",
            Some("ул. Петухова, 12, кв. 5"),
            None,
            "+79131234567",
        ))
        .await
        .unwrap();
    let semenov = store
        .create_citizen(&card(
            "Семёнов Пётр Ильич",
            Some("Красный проспект, 1"),
            Some("Слабослышащий, говорить громко"),
            "+79131234568",
        ))
        .await
        .unwrap();
    store
        .create_citizen(&card("ИВАНЕНКО Олег", None, None, "+79131234569"))
        .await
        .unwrap();
    store
        .create_citizen(&card("Петров Иван", None, None, "+79131234570"))
        .await
        .unwrap();

    // a word's beginning, any case, in the name, the address, the notes; ё = е
    // (by name as stored: capitals first)
    assert_eq!(
        names(&store, "иван").await,
        ["ИВАНЕНКО Олег", "Иванова Мария Петровна", "Петров Иван"]
    );
    assert_eq!(names(&store, "ИВАНОВА").await, ["Иванова Мария Петровна"]);
    assert_eq!(names(&store, "петух").await, ["Иванова Мария Петровна"]);
    assert_eq!(names(&store, "слабослыш").await, ["Семёнов Пётр Ильич"]);
    assert_eq!(names(&store, "семенов петр").await, ["Семёнов Пётр Ильич"]);
    assert_eq!(names(&store, "Семён").await, ["Семёнов Пётр Ильич"]);
    // every word must match; the middle of a word is not its beginning
    assert!(names(&store, "мария семенов").await.is_empty());
    assert!(names(&store, "ванова").await.is_empty());
    // punctuation separates words and is no query syntax
    assert_eq!(
        names(&store, "\"петухова\"*) ( ^: & | ! <->").await,
        ["Иванова Мария Петровна"]
    );
    // a changed card is found by what it says now
    let changed = store
        .update_citizen(
            semenov.id,
            semenov.version,
            &CitizenPatch {
                name: Some("Семёнов-Тянь-Шанский Пётр".into()),
                notes: Some(None),
                ..CitizenPatch::default()
            },
        )
        .await
        .unwrap();
    assert!(names(&store, "слабослыш").await.is_empty());
    assert_eq!(names(&store, "тянь").await, [changed.card.name.as_str()]);
    // the name and phone filters still work, with the text too
    let f = CitizenFilter {
        phone: Some("8 913 123-45-67".into()),
        text: Some("иван".into()),
        ..CitizenFilter::default()
    };
    let by_both = store.search_citizens(&f, ALL).await.unwrap();
    assert_eq!(by_both.len(), 1);
    assert_eq!(by_both[0].id, ivanova.id);

    // appeals: notes, address, resolution; the linked citizen's card only when asked
    let w = db.writer();
    let a = w.create(call(1, "+79131234567", at(9, 0, 0))); // linked to Иванова by number
    let b = w.create(call(2, "+79990000000", at(10, 0, 0)));
    let plain = w.create(call(3, "+79990000001", at(11, 0, 0)));
    assert!(w.flushed(FLUSH).await);
    w.shutdown().await;
    assert_eq!(
        store.get(a).await.unwrap().unwrap().appeal.case.citizen_id,
        Some(ivanova.id)
    );
    store
        .update_case(
            b,
            None,
            &CaseChange {
                notes: Some("Просит доставить продукты".into()),
                address: Some(Some("пр. Карла Маркса, 3".into())),
                resolution: Some(Some("Передано в КЦСОН Кировского района".into())),
                status: Some(Status::InProgress),
                ..CaseChange::default()
            },
            "op1",
        )
        .await
        .unwrap();
    assert_eq!(found(&store, "продукт", false).await, [b]);
    assert_eq!(found(&store, "маркса", false).await, [b]);
    assert_eq!(found(&store, "кцсон кировск", false).await, [b]);
    assert!(found(&store, "иванова", false).await.is_empty());
    assert_eq!(found(&store, "иванова", true).await, [a]);
    assert_eq!(found(&store, "петух", true).await, [a]);
    // newest first when both match
    store
        .update_case(
            a,
            None,
            &CaseChange {
                notes: Some("Иванова просит продукты".into()),
                ..CaseChange::default()
            },
            "op1",
        )
        .await
        .unwrap();
    assert_eq!(found(&store, "продукт", true).await, [b, a]);
    // text and the other filters together
    let f = SearchFilter {
        text: Some("продукт".into()),
        status: Some(Status::InProgress),
        ..SearchFilter::default()
    };
    assert_eq!(store.count(&f).await.unwrap(), 1);
    // a replaced note is no longer found by its old words
    store
        .update_case(
            b,
            None,
            &CaseChange {
                notes: Some("Вопрос решён".into()),
                ..CaseChange::default()
            },
            "op1",
        )
        .await
        .unwrap();
    assert_eq!(found(&store, "продукт", false).await, [a]);
    assert_eq!(found(&store, "решен", false).await, [b]);
    let _ = plain;
}

on_both!(full_text);

#[test]
fn terms_are_lower_case_words() {
    assert_eq!(
        appeals::search_terms("  ИВАНОВА,ул.Пётра-1 \"x\"*"),
        ["иванова", "ул", "петра", "1", "x"]
    );
    assert!(appeals::search_terms(" ,.-*\"").is_empty());
    assert_eq!(
        appeals::search_terms("a b c d e f g h i j").len(),
        appeals::MAX_TERMS
    );
}

// ---------------------------------------------------------------------------------------
async fn missed_rows(store: &Store) -> Vec<(String, i64)> {
    sqlx::query("SELECT caller_key, calls FROM missed_callers ORDER BY first_at")
        .fetch_all(store.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// A caller hangs up in the queue: a row in `missed_callers`, kept by the writer; a
/// second miss counts; a callback booked and then answered clears it; missing again
/// after that puts them back; answered on a later call clears it again.
async fn missed_table_through_a_callback(db: TestDb) {
    let store = Store::connect(&db.url).await.unwrap();
    let w = db.writer();
    let hang_up = |i: usize, t: chrono::DateTime<Utc>| {
        let id = w.create(call(i, "+7 913 000-00-01", t));
        w.update(
            id,
            AppealUpdate {
                ended_at: Some(t + chrono::TimeDelta::seconds(40)),
                wait_seconds: Some(40),
                outcome: Some(Outcome::Abandoned),
                ..AppealUpdate::default()
            },
        );
        id
    };
    let first = hang_up(1, at(9, 0, 0));
    assert!(w.flushed(FLUSH).await);
    assert_eq!(missed_rows(&store).await, [("79130000001".to_owned(), 1)]);
    let second = hang_up(2, at(10, 0, 0));
    assert!(w.flushed(FLUSH).await);
    assert_eq!(missed_rows(&store).await, [("79130000001".to_owned(), 2)]);
    let list = store.missed(ALL).await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].appeal_id, second);
    assert_eq!(list[0].first_missed_at, at(9, 0, 0));
    assert_eq!(list[0].caller_number, "+7 913 000-00-01");

    // the callback is booked on the first call and answered (by number, another form)
    let cb = w.callback(NewCallback {
        appeal_id: first,
        number: "89130000001".into(),
        queue: None,
        requested_at: at(10, 30, 0),
        due_at: None,
    });
    w.callback_status(cb, CallbackStatus::Dialling, 1, Some("op1"));
    assert!(w.flushed(FLUSH).await);
    assert_eq!(
        missed_rows(&store).await.len(),
        1,
        "dialling is not reached"
    );
    w.callback_progress(
        first,
        appeals::CallbackProgress {
            status: CallbackStatus::Done,
            attempts: 1,
            operator: Some("op1".into()),
            last_result: Some("answered".into()),
        },
    );
    assert!(w.flushed(FLUSH).await);
    assert!(missed_rows(&store).await.is_empty());
    assert!(store.missed(ALL).await.unwrap().is_empty());

    // missing again (after the callback was done, now) is a new row; answered later
    // clears it
    let now = Utc::now() + chrono::TimeDelta::seconds(5);
    let third = hang_up(3, now);
    assert!(w.flushed(FLUSH).await);
    let list = store.missed(ALL).await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!((list[0].appeal_id, list[0].calls), (third, 1));
    let answered = w.create(call(
        4,
        "+79130000001",
        now + chrono::TimeDelta::seconds(60),
    ));
    w.update(
        answered,
        AppealUpdate {
            answered_at: Some(now + chrono::TimeDelta::seconds(65)),
            operator: Some("op2".into()),
            ..AppealUpdate::default()
        },
    );
    assert!(w.flushed(FLUSH).await);
    assert!(missed_rows(&store).await.is_empty());
    w.shutdown().await;
}

on_both!(missed_table_through_a_callback);

// ---------------------------------------------------------------------------------------
/// A database migrations 1–6 made, with citizens, appeals with text, and callers missed:
/// migration 7 keeps every row, indexes the old text, and fills `missed_callers`.
async fn upgrade_from_migration_6(db: TestDb) {
    let pool = common::old_schema(&db.url, &common::OLD_MIGRATIONS[..6]).await;
    let citizen = uuid::Uuid::now_v7();
    sqlx::query(
        "INSERT INTO citizens (id, name, address, notes, created_at, updated_at) \
         VALUES ($1, 'Кузнецова Ёлка Сергеевна', 'ул. Ватутина, 7', 'живёт одна', 1, 1)",
    )
    .bind(citizen.to_string())
    .execute(&pool)
    .await
    .unwrap();
    // (caller key, outcome, answered, notes, hour)
    let rows = [
        ("79130000001", "abandoned", false, None, 8),
        ("79130000001", "abandoned", false, None, 9),
        ("79130000002", "abandoned", false, None, 10),
        (
            "79130000002",
            "answered",
            true,
            Some("Перезвонили, помогли"),
            11,
        ),
        (
            "79130000003",
            "answered",
            true,
            Some("Нужна сиделка на дому"),
            12,
        ),
    ];
    let mut ids = Vec::new();
    for (i, (key, outcome, answered, notes, h)) in rows.iter().enumerate() {
        let id = appeals::AppealId::new();
        let t = at(*h, 0, 0).timestamp_millis();
        sqlx::query(
            "INSERT INTO appeals (id, call_id, line, caller_number, caller_key, arrived_at, \
             answered_at, outcome, notes, citizen_id, status, last_seq, updated_at) \
             VALUES ($1, $2, '3758787', $3, $3, $4, $5, $6, $7, $8, 'new', 0, $4)",
        )
        .bind(id.to_string())
        .bind(format!("c{i}"))
        .bind(key.to_string())
        .bind(t)
        .bind(answered.then_some(t + 5000))
        .bind(outcome.to_string())
        .bind(notes.map(str::to_owned))
        .bind((i == 4).then(|| citizen.to_string()))
        .execute(&pool)
        .await
        .unwrap();
        ids.push(id);
    }
    pool.close().await;

    let store = Store::connect(&db.url).await.unwrap();
    let version: i64 = sqlx::query("SELECT MAX(version) FROM hotline_migrations")
        .fetch_one(store.pool())
        .await
        .unwrap()
        .get(0);
    assert_eq!(version, 8);
    // nothing lost
    let all = store.search(&SearchFilter::default(), ALL).await.unwrap();
    assert_eq!(all.len(), rows.len());
    for (id, (_, _, _, notes, _)) in ids.iter().zip(rows) {
        let a = store.get(*id).await.unwrap().unwrap().appeal;
        assert_eq!(a.notes.as_deref(), notes);
    }
    let c = store.citizen(citizen).await.unwrap().unwrap();
    assert_eq!(c.card.notes.as_deref(), Some("живёт одна"));
    // the old text is indexed
    assert_eq!(found(&store, "сиделк", false).await, [ids[4]]);
    assert_eq!(found(&store, "перезвон", false).await, [ids[3]]);
    assert_eq!(found(&store, "кузнецов", true).await, [ids[4]]);
    assert_eq!(names(&store, "елка").await, ["Кузнецова Ёлка Сергеевна"]);
    assert_eq!(names(&store, "ватут").await, ["Кузнецова Ёлка Сергеевна"]);
    assert_eq!(names(&store, "живет").await, ["Кузнецова Ёлка Сергеевна"]);
    // the missed callers so far: the one never reached, with both calls
    let missed = store.missed(ALL).await.unwrap();
    assert_eq!(missed.len(), 1);
    assert_eq!((missed[0].appeal_id, missed[0].calls), (ids[1], 2));
    assert_eq!(missed[0].first_missed_at, at(8, 0, 0));
    // and the new work after it is indexed too
    let fresh = store
        .create_citizen(&card("Новикова Анна", None, None, "+79131110000"))
        .await
        .unwrap();
    assert_eq!(names(&store, "новик").await, [fresh.card.name]);
}

on_both!(upgrade_from_migration_6);
