//! Cases (issue 12) on SQLite, and on PostgreSQL under `scripts/with-postgres.sh`: citizens'
//! cards and their versions, calls linked to the card with the caller's number, the case
//! fields of an appeal with their timeline and versions, the worklists, and the upgrade of a
//! database the previous schema made.

// The cases below are called by #[tokio::test] wrappers (see `on_both!`), all test code.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use appeals::{
    AppealUpdate, CallbackStatus, CaseChange, CitizenFields, CitizenPatch, Consent, Error,
    EventKind, Flag, NewAppeal, NewCallback, Outcome, Page, SearchFilter, Status, Store, Worklist,
};
use chrono::{NaiveDate, TimeDelta, Utc};
use common::{at, TestDb};
use serde_json::json;
use sqlx::Row;

const FLUSH: Duration = Duration::from_secs(30);

fn call(i: usize, caller: &str, arrived: chrono::DateTime<Utc>) -> NewAppeal {
    NewAppeal {
        call_id: format!("call-{i}"),
        line: "3758787".to_owned(),
        caller_number: caller.to_owned(),
        arrived_at: arrived,
    }
}

fn ivanova() -> CitizenFields {
    CitizenFields {
        name: "Иванова Мария Петровна".into(),
        phones: vec!["8 913 123-45-67".into(), "+7 (383) 222-33-44".into()],
        address: Some("ул. Петухова, 12, кв. 5".into()),
        district: Some("kirovsky".into()),
        birth_year: Some(1941),
        categories: vec!["pensioner".into(), "disability-2".into()],
        flags: vec![Flag {
            flag: "hard-of-hearing".into(),
            until: None,
        }],
        consent: Some(Consent {
            by: "op1".into(),
            at: at(9, 0, 0),
        }),
        notes: None,
    }
}

const ALL: Page = Page {
    offset: 0,
    limit: 100,
};

// ---------------------------------------------------------------------------------------

async fn citizens_and_versions(db: TestDb) {
    let store = Store::connect(&db.url).await.unwrap();
    let c = store.create_citizen(&ivanova()).await.unwrap();
    assert_eq!(c.version, 1);
    assert_eq!(c.card.phones, ["8 913 123-45-67", "+7 (383) 222-33-44"]);
    let got = store.citizen(c.id).await.unwrap().unwrap();
    assert_eq!(got, c);
    assert_eq!(got.card.consent.as_ref().unwrap().by, "op1");

    // found by a part of the name and by the number in any form
    let by_name = store.find_citizens(Some("Мария"), None, ALL).await.unwrap();
    assert_eq!(by_name.len(), 1);
    let by_phone = store
        .find_citizens(None, Some("+79131234567"), ALL)
        .await
        .unwrap();
    assert_eq!(by_phone.len(), 1);
    assert!(store
        .find_citizens(None, Some("+79130000000"), ALL)
        .await
        .unwrap()
        .is_empty());

    // an edit on the current version goes in and bumps it
    let patch = CitizenPatch {
        phones: Some(vec!["+79131234567".into()]),
        flags: Some(vec![Flag {
            flag: "lives-alone".into(),
            until: NaiveDate::from_ymd_opt(2027, 1, 31),
        }]),
        address: Some(None),
        ..CitizenPatch::default()
    };
    let v2 = store.update_citizen(c.id, 1, &patch).await.unwrap();
    assert_eq!(v2.version, 2);
    assert_eq!(v2.card.phones, ["+79131234567"]);
    assert_eq!(v2.card.address, None);
    assert_eq!(v2.card.district.as_deref(), Some("kirovsky"), "untouched");
    assert_eq!(v2.card.flags[0].until, NaiveDate::from_ymd_opt(2027, 1, 31));

    // one made on the old version is refused and writes nothing
    let stale = store
        .update_citizen(
            c.id,
            1,
            &CitizenPatch {
                name: Some("Петрова".into()),
                ..CitizenPatch::default()
            },
        )
        .await;
    assert!(
        matches!(stale, Err(Error::Stale { current: 2, .. })),
        "{stale:?}"
    );
    assert_eq!(
        store.citizen(c.id).await.unwrap().unwrap().card.name,
        "Иванова Мария Петровна"
    );
    let missing = store
        .update_citizen(uuid::Uuid::now_v7(), 1, &CitizenPatch::default())
        .await;
    assert!(matches!(missing, Err(Error::CitizenNotFound(_))));
}

on_both!(citizens_and_versions);

/// A page of cards comes back with each card's own phones, in the card's order: several
/// cards with several phones each (one with none, one with a number written twice), a page
/// from the middle of the list, and a card whose phones were rewritten.
async fn a_page_of_cards_with_their_phones(db: TestDb) {
    let store = Store::connect(&db.url).await.unwrap();
    let card = |name: &str, phones: &[&str]| CitizenFields {
        name: name.into(),
        phones: phones.iter().map(|p| (*p).to_owned()).collect(),
        ..CitizenFields::default()
    };
    let made = [
        card(
            "Абрамова Анна",
            &["+79130000001", "+73832000001", "+79130000011"],
        ),
        card("Борисов Борис", &[]),
        card(
            "Васильева Вера",
            &["+79130000003", "8 913 000-00-03", "+73832000003"],
        ),
        card("Григорьев Глеб", &["+73832000004", "+79130000004"]),
        card(
            "Дмитриева Дарья",
            &[
                "+79130000005",
                "+79130000055",
                "+79130000555",
                "+73832000005",
            ],
        ),
        card("Егоров Егор", &["+79130000006"]),
    ];
    let mut ids = Vec::new();
    for c in &made {
        ids.push(store.create_citizen(c).await.unwrap().id);
    }
    // Григорьев's phones rewritten in another order
    let v = store.citizen(ids[3]).await.unwrap().unwrap().version;
    let patch = CitizenPatch {
        phones: Some(vec![
            "+79130000044".into(),
            "+73832000004".into(),
            "+79130000004".into(),
        ]),
        ..CitizenPatch::default()
    };
    store.update_citizen(ids[3], v, &patch).await.unwrap();

    let want = |i: usize, phones: &[&str]| {
        (
            made[i].name.clone(),
            phones.iter().map(|p| (*p).to_owned()).collect::<Vec<_>>(),
        )
    };
    let all = store
        .search_citizens(&appeals::CitizenFilter::default(), ALL)
        .await
        .unwrap();
    let got: Vec<_> = all
        .iter()
        .map(|c| (c.card.name.clone(), c.card.phones.clone()))
        .collect();
    assert_eq!(
        got,
        [
            want(0, &["+79130000001", "+73832000001", "+79130000011"]),
            want(1, &[]),
            // the same number written twice is kept once
            want(2, &["+79130000003", "+73832000003"]),
            want(3, &["+79130000044", "+73832000004", "+79130000004"]),
            want(
                4,
                &[
                    "+79130000005",
                    "+79130000055",
                    "+79130000555",
                    "+73832000005"
                ]
            ),
            want(5, &["+79130000006"]),
        ]
    );
    // each card as `citizen` reads it
    for c in &all {
        assert_eq!(&store.citizen(c.id).await.unwrap().unwrap(), c);
    }
    // a page from the middle
    let middle = Page {
        offset: 1,
        limit: 4,
    };
    let page = store
        .search_citizens(&appeals::CitizenFilter::default(), middle)
        .await
        .unwrap();
    assert_eq!(page, all[1..5]);
    // found by one number: the card with all its numbers
    let by_phone = store
        .find_citizens(None, Some("+7 913 000-00-55"), ALL)
        .await
        .unwrap();
    assert_eq!(by_phone, [all[4].clone()]);
}

on_both!(a_page_of_cards_with_their_phones);

async fn calls_link_to_the_one_card_with_the_number(db: TestDb) {
    let store = Store::connect(&db.url).await.unwrap();
    let ivanova = store.create_citizen(&ivanova()).await.unwrap();
    // two cards share a landline: calls from it are not linked
    for name in ["Сидоров", "Сидорова"] {
        store
            .create_citizen(&CitizenFields {
                name: name.into(),
                phones: vec!["+73835550000".into()],
                ..CitizenFields::default()
            })
            .await
            .unwrap();
    }
    let w = db.writer();
    let first = w.create(call(1, "+79131234567", at(9, 0, 0)));
    let shared = w.create(call(2, "83835550000", at(9, 5, 0)));
    let stranger = w.create(call(3, "+79990000000", at(9, 6, 0)));
    let second = w.create(call(4, "89131234567", at(10, 0, 0)));
    assert!(w.flushed(FLUSH).await);
    let linked = |id| {
        let store = store.clone();
        async move { store.get(id).await.unwrap().unwrap().appeal.case.citizen_id }
    };
    assert_eq!(linked(first).await, Some(ivanova.id));
    assert_eq!(linked(second).await, Some(ivanova.id));
    assert_eq!(linked(shared).await, None);
    assert_eq!(linked(stranger).await, None);
    // the card lists its appeals newest first
    let appeals = store.citizen_appeals(ivanova.id, ALL).await.unwrap();
    let ids: Vec<_> = appeals.iter().map(|a| a.id).collect();
    assert_eq!(ids, [second, first]);
    w.shutdown().await;
}

on_both!(calls_link_to_the_one_card_with_the_number);

async fn case_fields_timeline_and_versions(db: TestDb) {
    let store = Store::connect(&db.url).await.unwrap();
    let citizen = store.create_citizen(&ivanova()).await.unwrap();
    let w = db.writer();
    let id = w.create(call(1, "+79130000001", at(9, 0, 0)));
    assert!(w.flushed(FLUSH).await);
    let v1 = store.get(id).await.unwrap().unwrap().appeal.case.version;
    assert_eq!(v1, 1);

    let due = at(9, 0, 0) + TimeDelta::days(10);
    let change = CaseChange {
        status: Some(Status::InProgress),
        citizen_id: Some(Some(citizen.id)),
        service: Some(Some("home-care".into())),
        district: Some(Some("kirovsky".into())),
        organisation: Some(Some("kcson-kirovsky".into())),
        assignee: Some(Some("op1".into())),
        due_at: Some(Some(due)),
        ..CaseChange::default()
    };
    let a = store
        .update_case(id, Some(1), &change, "op1")
        .await
        .unwrap();
    let c = &a.appeal.case;
    assert_eq!(a.appeal.status, Status::InProgress);
    assert_eq!(c.citizen_id, Some(citizen.id));
    assert_eq!(c.service.as_deref(), Some("home-care"));
    assert_eq!(c.organisation.as_deref(), Some("kcson-kirovsky"));
    assert_eq!(c.due_at, Some(due));
    assert_eq!(c.version, 2, "one edit, one version");
    let fields: Vec<String> = a
        .events
        .iter()
        .filter(|e| e.kind == EventKind::CaseUpdated)
        .map(|e| e.data["field"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        fields,
        [
            "citizen_id",
            "service",
            "district",
            "organisation",
            "assignee",
            "due_at"
        ]
    );
    assert!(a
        .events
        .iter()
        .all(|e| e.kind == EventKind::Created || e.actor.as_deref() == Some("op1")));
    let svc = a
        .events
        .iter()
        .find(|e| e.data["field"] == "service")
        .unwrap();
    assert_eq!(
        svc.data,
        json!({"field": "service", "from": null, "to": "home-care"})
    );

    // an edit made on version 1 is now stale: refused, nothing written
    let before = store.get(id).await.unwrap().unwrap();
    let stale = store
        .update_case(
            id,
            Some(1),
            &CaseChange {
                assignee: Some(Some("op2".into())),
                ..CaseChange::default()
            },
            "op2",
        )
        .await;
    assert!(
        matches!(stale, Err(Error::Stale { current: 2, .. })),
        "{stale:?}"
    );
    assert_eq!(store.get(id).await.unwrap().unwrap(), before);

    // the workflow: a skipped step is refused; forwarded, done, reopened
    let bad = store
        .update_case(
            id,
            None,
            &CaseChange {
                status: Some(Status::New),
                ..CaseChange::default()
            },
            "op1",
        )
        .await;
    assert!(matches!(
        bad,
        Err(Error::Transition {
            from: Status::InProgress,
            to: Status::New,
            ..
        })
    ));
    for to in [Status::Forwarded, Status::Done, Status::InProgress] {
        store
            .update_case(
                id,
                None,
                &CaseChange {
                    status: Some(to),
                    disposition: (to == Status::Done).then(|| Some("application".into())),
                    ..CaseChange::default()
                },
                "op1",
            )
            .await
            .unwrap();
    }
    let a = store.get(id).await.unwrap().unwrap();
    assert_eq!(a.appeal.case.version, 5);
    assert_eq!(a.appeal.case.disposition.as_deref(), Some("application"));
    let reopen = a
        .events
        .iter()
        .rfind(|e| e.kind == EventKind::StatusChanged)
        .unwrap();
    assert_eq!(
        reopen.data,
        json!({"from": "done", "to": "in_progress", "reopened": true})
    );
    // an edit that changes nothing records nothing and keeps the version
    let same = store
        .update_case(
            id,
            Some(5),
            &CaseChange {
                service: Some(Some("home-care".into())),
                ..CaseChange::default()
            },
            "op1",
        )
        .await
        .unwrap();
    assert_eq!(same.appeal.case.version, 5);
    assert_eq!(same.events.len(), a.events.len());
    w.shutdown().await;
}

on_both!(case_fields_timeline_and_versions);

/// Two edits made on the same version at the same time: one goes in, the other is stale.
async fn concurrent_edits_on_one_version(db: TestDb) {
    let store = Store::connect(&db.url).await.unwrap();
    let w = db.writer();
    let id = w.create(call(1, "+79130000001", at(9, 0, 0)));
    assert!(w.flushed(FLUSH).await);
    for round in 0..5 {
        let version = store.get(id).await.unwrap().unwrap().appeal.case.version;
        let edit = |who: &'static str| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .update_case(
                        id,
                        Some(version),
                        &CaseChange {
                            assignee: Some(Some(format!("{who}-{round}"))),
                            ..CaseChange::default()
                        },
                        who,
                    )
                    .await
            })
        };
        let (a, b) = (edit("op1"), edit("op2"));
        let results = [a.await.unwrap(), b.await.unwrap()];
        let ok = results.iter().filter(|r| r.is_ok()).count();
        let stale = results
            .iter()
            .filter(|r| matches!(r, Err(Error::Stale { .. })))
            .count();
        assert_eq!((ok, stale), (1, 1), "{results:?}");
        let now = store.get(id).await.unwrap().unwrap().appeal.case.version;
        assert_eq!(now, version + 1);
    }
    w.shutdown().await;
}

on_both!(concurrent_edits_on_one_version);

async fn worklists(db: TestDb) {
    let store = Store::connect(&db.url).await.unwrap();
    let w = db.writer();
    let now = Utc::now();
    let ids: Vec<_> = (0..4)
        .map(|i| {
            w.create(call(
                i,
                &format!("+7913000000{i}"),
                now - TimeDelta::hours(5),
            ))
        })
        .collect();
    assert!(w.flushed(FLUSH).await);
    let set = |id, assignee: &str, due| {
        let store = store.clone();
        let assignee = assignee.to_owned();
        async move {
            store
                .update_case(
                    id,
                    None,
                    &CaseChange {
                        status: Some(Status::InProgress),
                        assignee: Some(Some(assignee)),
                        due_at: Some(Some(due)),
                        ..CaseChange::default()
                    },
                    "sup",
                )
                .await
                .unwrap();
        }
    };
    set(ids[0], "op1", now - TimeDelta::days(2)).await;
    set(ids[1], "op1", now - TimeDelta::hours(1)).await;
    set(ids[2], "op2", now + TimeDelta::hours(1)).await;
    set(ids[3], "op1", now + TimeDelta::days(3)).await;
    let list = |l| {
        let store = store.clone();
        async move {
            store
                .worklist(l, now, ALL)
                .await
                .unwrap()
                .iter()
                .map(|a| a.id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(list(Worklist::Mine("op1")).await, [ids[0], ids[1], ids[3]]);
    assert_eq!(list(Worklist::Overdue).await, [ids[0], ids[1]]);
    let (from, to) = (now - TimeDelta::hours(2), now + TimeDelta::hours(2));
    assert_eq!(
        list(Worklist::Due {
            from,
            to,
            assignee: None
        })
        .await,
        [ids[1], ids[2]]
    );
    // done work leaves the lists
    for to in [Status::Declined] {
        store
            .update_case(
                ids[0],
                None,
                &CaseChange {
                    status: Some(to),
                    ..CaseChange::default()
                },
                "op1",
            )
            .await
            .unwrap();
    }
    assert_eq!(list(Worklist::Overdue).await, [ids[1]]);

    // the same through the search filters
    store
        .update_case(
            ids[2],
            None,
            &CaseChange {
                service: Some(Some("delivery".into())),
                district: Some(Some("kirovsky".into())),
                organisation: Some(Some("kcson-kirovsky".into())),
                ..CaseChange::default()
            },
            "op2",
        )
        .await
        .unwrap();
    let search = |f: SearchFilter| {
        let store = store.clone();
        async move {
            let mut found: Vec<_> = store
                .search(&f, ALL)
                .await
                .unwrap()
                .iter()
                .map(|a| a.id)
                .collect();
            found.sort();
            found
        }
    };
    assert_eq!(
        search(SearchFilter {
            assignee: Some("op1".into()),
            ..SearchFilter::default()
        })
        .await,
        [ids[0], ids[1], ids[3]]
    );
    assert_eq!(
        search(SearchFilter {
            overdue_at: Some(now),
            ..SearchFilter::default()
        })
        .await,
        [ids[1]]
    );
    for f in [
        SearchFilter {
            service: Some("delivery".into()),
            ..SearchFilter::default()
        },
        SearchFilter {
            district: Some("kirovsky".into()),
            organisation: Some("kcson-kirovsky".into()),
            ..SearchFilter::default()
        },
    ] {
        assert_eq!(search(f).await, [ids[2]]);
    }
    assert_eq!(
        store
            .count(&SearchFilter {
                district: Some("leninsky".into()),
                ..SearchFilter::default()
            })
            .await
            .unwrap(),
        0
    );
    w.shutdown().await;
}

on_both!(worklists);

async fn missed_callers(db: TestDb) {
    let store = Store::connect(&db.url).await.unwrap();
    let w = db.writer();
    let abandoned = |i: usize, caller: &str, h: u32| {
        let id = w.create(call(i, caller, at(h, 0, 0)));
        w.update(
            id,
            AppealUpdate {
                ended_at: Some(at(h, 1, 0)),
                outcome: Some(Outcome::Abandoned),
                ..AppealUpdate::default()
            },
        );
        id
    };
    let a1 = abandoned(1, "+79130000001", 9);
    let a2 = abandoned(2, "89130000001", 10); // the same caller, another form
    let b = abandoned(3, "+79130000002", 8);
    let c = abandoned(4, "+79130000003", 11);
    let d = abandoned(5, "+79130000004", 12);
    // an answered call long before does not clear a later miss
    let early = w.create(call(6, "+79130000003", at(7, 0, 0)));
    w.update(
        early,
        AppealUpdate {
            answered_at: Some(at(7, 0, 10)),
            outcome: Some(Outcome::Answered),
            ..AppealUpdate::default()
        },
    );
    assert!(w.flushed(FLUSH).await);
    let missed = store.missed(ALL).await.unwrap();
    let order: Vec<_> = missed.iter().map(|m| m.appeal_id).collect();
    assert_eq!(order, [b, a2, c, d], "one row per caller, oldest first");
    assert_eq!(missed[1].calls, 2);
    assert_eq!(missed[1].first_missed_at, at(9, 0, 0));
    let _ = a1;

    // b calls again and is answered; c books a callback later done; d is closed by hand
    let again = w.create(call(7, "+79130000002", at(13, 0, 0)));
    w.update(
        again,
        AppealUpdate {
            answered_at: Some(at(13, 0, 20)),
            outcome: Some(Outcome::Answered),
            ..AppealUpdate::default()
        },
    );
    let booking = w.create(call(8, "+79130000003", at(13, 5, 0)));
    let cb = w.callback(NewCallback {
        appeal_id: booking,
        number: "+79130000003".into(),
        queue: None,
        requested_at: at(13, 5, 30),
        due_at: None,
    });
    w.callback_status(cb, CallbackStatus::Done, 1, Some("op1"));
    assert!(w.flushed(FLUSH).await);
    store
        .close_missed(d, "sup", "номер не существует")
        .await
        .unwrap();
    let left: Vec<_> = store
        .missed(ALL)
        .await
        .unwrap()
        .iter()
        .map(|m| m.appeal_id)
        .collect();
    assert_eq!(left, [a2]);
    let closed = store.get(d).await.unwrap().unwrap();
    let last = closed.events.last().unwrap();
    assert_eq!(last.actor.as_deref(), Some("sup"));
    assert_eq!(last.data["to"], "номер не существует");
    // missing again after the closing puts the caller back
    let later = w.create(call(9, "+79130000004", Utc::now() + TimeDelta::seconds(5)));
    w.update(
        later,
        AppealUpdate {
            outcome: Some(Outcome::Abandoned),
            ..AppealUpdate::default()
        },
    );
    assert!(w.flushed(FLUSH).await);
    let left: Vec<_> = store
        .missed(ALL)
        .await
        .unwrap()
        .iter()
        .map(|m| m.appeal_id)
        .collect();
    assert_eq!(left, [a2, later]);
    w.shutdown().await;
}

on_both!(missed_callers);

/// The schema as migrations 1–4 made it, with calls in it: migration 6 adds the case
/// fields and loses nothing.
async fn upgrade_from_the_previous_schema(db: TestDb) {
    let pool = common::old_schema(&db.url, &common::OLD_MIGRATIONS[..4]).await;
    // calls as the previous version wrote them
    let numbers = [
        "+79131234567",
        "89131234567",
        "80291234567",
        "9131234567",
        "anonymous",
    ];
    let statuses = ["new", "in_progress", "forwarded", "resolved", "resolved"];
    let mut ids = Vec::new();
    for (i, (n, s)) in numbers.iter().zip(statuses).enumerate() {
        let id = appeals::AppealId::new();
        sqlx::query(
            "INSERT INTO appeals (id, call_id, line, caller_number, arrived_at, status, \
             destination_org, notes, operator, outcome, last_seq, updated_at) \
             VALUES ($1, $2, '3758787', $3, $4, $5, 'УСЗН', 'заметка', 'op1', 'answered', 1, $4)",
        )
        .bind(id.to_string())
        .bind(format!("c{i}"))
        .bind(n.to_string())
        .bind(at(9, i as u32, 0).timestamp_millis())
        .bind(s)
        .execute(&pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO appeal_events (id, appeal_id, seq, at, kind, data, actor) \
             VALUES ($1, $2, 1, $3, 'created', '{}', NULL)",
        )
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(id.to_string())
        .bind(at(9, i as u32, 0).timestamp_millis())
        .execute(&pool)
        .await
        .unwrap();
        ids.push(id);
    }
    sqlx::query(
        "INSERT INTO callbacks (id, appeal_id, number, requested_at, status, attempts, updated_at, last_result) \
         VALUES ($1, $2, '+79131234567', 1, 'done', 1, 1, 'answered')",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(ids[0].to_string())
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;

    let store = Store::connect(&db.url).await.unwrap();
    let want_status = [
        Status::New,
        Status::InProgress,
        Status::Forwarded,
        Status::Done,
        Status::Done,
    ];
    for (i, id) in ids.iter().enumerate() {
        let a = store.get(*id).await.unwrap().unwrap();
        assert_eq!(a.appeal.caller_number, numbers[i]);
        assert_eq!(a.appeal.status, want_status[i]);
        assert_eq!(a.appeal.destination_org.as_deref(), Some("УСЗН"));
        assert_eq!(a.appeal.notes.as_deref(), Some("заметка"));
        assert_eq!(a.appeal.operator.as_deref(), Some("op1"));
        assert_eq!(a.appeal.outcome, Some(Outcome::Answered));
        assert_eq!(a.appeal.case.version, 1);
        assert_eq!(a.appeal.case.citizen_id, None);
        assert_eq!(a.events.len(), 1);
        // the key SQL computed is the one the writer computes for new calls
        let key: Option<String> = sqlx::query("SELECT caller_key FROM appeals WHERE id = $1")
            .bind(id.to_string())
            .fetch_one(store.pool())
            .await
            .unwrap()
            .get(0);
        assert_eq!(key, Some(appeals::phone_key(numbers[i])), "{}", numbers[i]);
    }
    assert_eq!(store.callbacks(None).await.unwrap().len(), 1);
    let key: Option<String> = sqlx::query("SELECT number_key FROM callbacks")
        .fetch_one(store.pool())
        .await
        .unwrap()
        .get(0);
    assert_eq!(key, Some(appeals::phone_key("+79131234567")));
    // and the upgraded database takes the new work: a card with the number, a new call linked
    let c = store.create_citizen(&ivanova()).await.unwrap();
    let w = db.writer();
    let id = w.create(call(9, "+79131234567", at(12, 0, 0)));
    assert!(w.flushed(FLUSH).await);
    assert_eq!(
        store.get(id).await.unwrap().unwrap().appeal.case.citizen_id,
        Some(c.id)
    );
    w.shutdown().await;
}

on_both!(upgrade_from_the_previous_schema);

#[test]
fn phone_keys() {
    for (given, key) in [
        ("+7 913 123-45-67", "79131234567"),
        ("8 (913) 123-45-67", "79131234567"),
        ("9131234567", "79131234567"),
        ("+375 29 123-45-67", "375291234567"),
        ("8 029 123 45 67", "375291234567"),
        ("139", "139"),
        ("anonymous", "anonymous"),
    ] {
        assert_eq!(appeals::phone_key(given), key, "{given}");
    }
}
