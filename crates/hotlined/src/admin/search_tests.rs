//! Search, filters and exports of the appeal list, and the missed worklist fed by the call
//! log (issue 12 items 4 and 5), through the HTTP API on SQLite (the store's own tests run
//! the same SQL on PostgreSQL too).

use std::io::Cursor;

use appeals::{AppealUpdate, CaseChange, Status};
use axum::http::StatusCode;
use chrono::{TimeDelta, Utc};
use gateway::{CallArrived, CallEnded, CallLog, EndReason, IvrEnd, IvrStep};
use serde_json::{json, Value};

use super::tests::{audit_of, call, call_by, env, user_token};

fn ids(v: &Value) -> Vec<String> {
    v["appeals"]
        .as_array()
        .unwrap_or_else(|| panic!("no appeals in {v}"))
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_owned())
        .collect()
}

fn answered_by(op: &str) -> AppealUpdate {
    AppealUpdate {
        answered_at: Some(Utc::now()),
        operator: Some(op.into()),
        outcome: Some(appeals::Outcome::Answered),
        ..AppealUpdate::default()
    }
}

#[tokio::test]
async fn free_text_filters_and_who_finds_what() {
    let e = env().await;
    let c = call(
        &e.state,
        "POST",
        "/api/v1/citizens",
        r#"{"name":"Иванова Мария Петровна","phones":["+7 913 123-45-67"],
            "address":"ул. Петухова, 12","district":"kirovsky","notes":"Слабослышащая"}"#,
    )
    .await;
    assert_eq!(c.status, StatusCode::CREATED, "{}", c.body);
    let now = Utc::now();
    let hers = e.appeal(
        now - TimeDelta::minutes(10),
        "city",
        "89131234567",
        answered_by("op1"),
    );
    let other = e.appeal(now, "city", "+79130000002", answered_by("op2"));
    e.flush().await;
    let p = call(
        &e.state,
        "PATCH",
        &format!("/api/v1/appeals/{other}"),
        r#"{"version":1,"notes":"Просит доставить продукты","service":"delivery","district":"leninsky"}"#,
    )
    .await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    // routed to the organisation the test accounts belong to
    e.store
        .update_case(
            hers,
            None,
            &CaseChange {
                organisation: Some(Some("tc-1".into())),
                ..CaseChange::default()
            },
            "test",
        )
        .await
        .unwrap();
    let get = |token: Option<String>, q: String| {
        let state = e.state.clone();
        async move {
            match token {
                None => call(&state, "GET", &q, "").await,
                Some(t) => call_by(&state, &t, "GET", &q, "").await,
            }
        }
    };
    let found = |q: &str| {
        let q = format!("/api/v1/appeals?{q}");
        let a = get(None, q.clone());
        async move {
            let a = a.await;
            assert_eq!(a.status, StatusCode::OK, "{q}: {}", a.body);
            ids(&a.json())
        }
    };

    // citizens by a word's beginning, any case, in the name, the address, the notes
    let cards = |q: &str| {
        let q = format!("/api/v1/citizens?q={q}");
        let a = get(None, q);
        async move {
            let v = a.await.json();
            v["citizens"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["name"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    for q in ["иван", "ИВАНОВА", "петух", "слабослыш", "мария%20петровна"]
    {
        assert_eq!(cards(q).await, ["Иванова Мария Петровна"], "{q}");
    }
    assert!(cards("ванова").await.is_empty());

    // appeals: their own text, and the linked card's for those who may see cards
    assert_eq!(found("q=продукт").await, [other.to_string()]);
    assert_eq!(found("q=Иванова").await, [hers.to_string()]);
    assert_eq!(found("q=иван&line=city").await, [hers.to_string()]);
    assert!(found("q=иван&line=regional").await.is_empty());
    // the other filters
    assert_eq!(found("operator=op2").await, [other.to_string()]);
    assert_eq!(
        found("service=delivery&district=leninsky&status=new").await,
        [other.to_string()]
    );
    // the organisation suggested from the service and the district
    assert_eq!(
        found("organisation=kcson-leninsky").await,
        [other.to_string()]
    );
    let total = get(None, "/api/v1/appeals?q=продукт".into()).await.json();
    assert_eq!(
        (total["total"].clone(), total["pages"].clone()),
        (json!(1), json!(1))
    );

    // an operator finds only what they handled
    let op1 = user_token(&e.state, "op1", appeals::Role::Operator).await;
    let mine = get(Some(op1.clone()), "/api/v1/appeals?q=иванова".into()).await;
    assert_eq!(ids(&mine.json()), [hers.to_string()]);
    let theirs = get(Some(op1.clone()), "/api/v1/appeals?q=продукт".into()).await;
    assert!(ids(&theirs.json()).is_empty());
    let other_op = get(Some(op1), "/api/v1/appeals?operator=op2".into()).await;
    assert_eq!(other_op.status, StatusCode::FORBIDDEN, "{}", other_op.body);

    // an organisation sees its applications, but never finds them by a citizen's card
    let org = user_token(&e.state, "tc1", appeals::Role::Organisation).await;
    let routed = get(Some(org.clone()), "/api/v1/appeals".into()).await;
    assert_eq!(ids(&routed.json()), [hers.to_string()]);
    for q in ["иванова", "петух", "слабослыш"] {
        let a = get(Some(org.clone()), format!("/api/v1/appeals?q={q}")).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        assert!(ids(&a.json()).is_empty(), "{q}: {}", a.body);
    }
    let cards_by_org = get(Some(org), "/api/v1/citizens?q=иван".into()).await;
    assert_eq!(cards_by_org.status, StatusCode::FORBIDDEN);

    // every bad filter value: 422 naming the field
    for (q, field) in [
        ("status=finished", "status"),
        ("from=yesterday", "from"),
        ("to=2026-13-01", "to"),
        ("from=2026-11-23&to=2026-11-22T00:00:00Z", "to"),
        ("service=nope", "service"),
        ("district=atlantis", "district"),
        ("organisation=nope", "organisation"),
        ("citizen_id=x", "citizen_id"),
        ("overdue=maybe", "overdue"),
        ("caller=abc", "caller"),
        ("q=%20-%2C%20", "q"),
        ("format=pdf", "format"),
        ("lang=de", "lang"),
        ("line=a%0Ab", "line"),
    ] {
        let a = get(None, format!("/api/v1/appeals?{q}")).await;
        assert_eq!(
            a.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{q}: {}",
            a.body
        );
        assert_eq!(a.json()["field"], field, "{q}: {}", a.body);
    }
    let bad = get(None, "/api/v1/citizens?q=--".into()).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.json()["field"], "q");
    // paging and unknown parameters stay 400
    for q in ["per_page=0", "page=0", "colour=red"] {
        let a = get(None, format!("/api/v1/appeals?{q}")).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{q}");
    }
}

#[tokio::test]
async fn exports_csv_and_xlsx_of_the_filtered_list() {
    use calamine::{open_workbook_from_rs, Reader, Xlsx};
    let e = env().await;
    let now = Utc::now();
    let a = e.appeal(
        now - TimeDelta::minutes(2),
        "city",
        "+79130000001",
        answered_by("op1"),
    );
    let b = e.appeal(
        now - TimeDelta::minutes(1),
        "city",
        "+79130000002",
        answered_by("op2"),
    );
    let skipped = e.appeal(now, "regional", "+79130000003", answered_by("op1"));
    e.flush().await;
    for (id, notes) in [(a, "=HYPERLINK(\"x\")"), (b, "Доставка, «продукты»")] {
        let p = call(
            &e.state,
            "PATCH",
            &format!("/api/v1/appeals/{id}"),
            &json!({ "version": 1, "notes": notes, "service": "delivery", "district": "leninsky" })
                .to_string(),
        )
        .await;
        assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    }

    let x = call(&e.state, "GET", "/api/v1/appeals?line=city&format=xlsx", "").await;
    assert_eq!(x.status, StatusCode::OK, "{}", x.body);
    assert_eq!(
        x.headers["content-type"],
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    );
    let mut book: Xlsx<_> = open_workbook_from_rs(Cursor::new(x.bytes.clone())).unwrap();
    let sheet = book.worksheet_range("Обращения").unwrap();
    let rows: Vec<Vec<String>> = sheet
        .rows()
        .map(|r| r.iter().map(|c| c.to_string()).collect())
        .collect();
    assert_eq!(
        rows.len(),
        3,
        "a heading and the two city appeals: {rows:?}"
    );
    assert_eq!(rows[0][0], "Обращение");
    assert_eq!(rows[0][7], "Статус");
    // newest first, labels and directory names in Russian
    assert_eq!(rows[1][0], b.to_string());
    assert_eq!(rows[2][0], a.to_string());
    assert_eq!(rows[1][3], "+79130000002");
    assert_eq!(rows[1][6], "принят");
    assert_eq!(rows[1][7], "новое");
    assert!(rows[1][8].starts_with("Доставка"), "{:?}", rows[1]);
    assert!(rows[1][9].contains("Ленин"), "{:?}", rows[1]);
    assert_eq!(rows[1][15], "Доставка, «продукты»");
    assert_eq!(
        rows[2][15], "=HYPERLINK(\"x\")",
        "a string, never a formula"
    );
    assert!(!rows.iter().any(|r| r[0] == skipped.to_string()));

    let en = call(
        &e.state,
        "GET",
        "/api/v1/appeals?format=xlsx&lang=en&operator=op2",
        "",
    )
    .await;
    let mut book: Xlsx<_> = open_workbook_from_rs(Cursor::new(en.bytes.clone())).unwrap();
    let sheet = book.worksheet_range("Appeals").unwrap();
    let rows: Vec<Vec<String>> = sheet
        .rows()
        .map(|r| r.iter().map(|c| c.to_string()).collect())
        .collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        (rows[0][0].as_str(), rows[1][7].as_str()),
        ("Appeal", "new")
    );

    let csv = call(&e.state, "GET", "/api/v1/appeals?q=продукт&format=csv", "").await;
    assert_eq!(csv.status, StatusCode::OK);
    assert!(csv.body.starts_with('\u{feff}'));
    let lines: Vec<&str> = csv.body.trim_start_matches('\u{feff}').lines().collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].starts_with("Обращение,Поступило,Линия,Телефон"));
    assert!(lines[1].starts_with(&b.to_string()));
    assert!(
        lines[1].ends_with(",\"Доставка, «продукты»\","),
        "{}",
        lines[1]
    );
    let all = call(&e.state, "GET", "/api/v1/appeals?format=csv&line=city", "").await;
    // a formula is made text (and a number's leading + too, as the registry's CSV does)
    assert!(
        all.body.contains(",\"'=HYPERLINK(\"\"x\"\")\","),
        "{}",
        all.body
    );
    assert!(all.body.contains(",'+79130000001,"), "{}", all.body);

    // every export is audited: what, format, rows, which filters (never their values)
    let audited = audit_of(&e.state, "export").await;
    let appeals: Vec<_> = audited
        .iter()
        .filter(|r| r.details["what"] == "appeals")
        .collect();
    assert_eq!(appeals.len(), 4);
    assert_eq!(appeals[0].details["format"], "xlsx");
    assert_eq!(appeals[0].details["rows"], 2);
    assert_eq!(appeals[0].details["filters"], json!(["line"]));
    assert_eq!(appeals[2].details["filters"], json!(["q"]));
    assert!(!appeals[2].details.to_string().contains("продукт"));
}

/// The call log decides who is missed: hung up in the menu while choosing → `abandoned`,
/// on the missed worklist; the menu's information leaf heard to its `hangup` node, or a
/// line without a menu → `info_only`, not missed. The missed caller leaves the list when a
/// callback to them is answered.
#[tokio::test]
async fn menu_hang_ups_are_missed_until_called_back() {
    let e = env().await;
    let log =
        crate::appeal_log::AppealLog::new(e.writer.clone(), Default::default(), Default::default());
    let start = |n: &str, menu: bool| {
        // call control mints the id (a UUIDv7); the log creates the appeal under it
        let appeal = uuid::Uuid::now_v7().to_string();
        log.call_arrived(
            &appeal,
            &CallArrived {
                call_id: &format!("call-{n}"),
                line: "city",
                caller: n,
            },
        );
        if menu {
            log.ivr_step(
                &appeal,
                &IvrStep::Path {
                    step: "main".into(),
                    path: "greeting>main".into(),
                },
            );
        }
        appeal
    };
    let end = |appeal: &str, reason: EndReason, ivr: Option<IvrEnd>| {
        log.call_ended(
            appeal,
            &CallEnded {
                reason,
                answered: true,
                talked: std::time::Duration::from_secs(7),
                ivr,
                operator: None,
            },
        );
    };
    let choosing = start("+79130000001", true);
    end(&choosing, EndReason::CallerHungUp, None);
    let informed = start("+79130000002", true);
    end(&informed, EndReason::IvrHangup, Some(IvrEnd::Hangup));
    let no_menu = start("+79130000003", false);
    end(&no_menu, EndReason::CallerHungUp, None);
    e.flush().await;
    let outcome = |id: &str| {
        let state = e.state.clone();
        let path = format!("/api/v1/appeals/{id}");
        async move { call(&state, "GET", &path, "").await.json()["outcome"].clone() }
    };
    assert_eq!(outcome(&choosing).await, "abandoned");
    assert_eq!(outcome(&informed).await, "info_only");
    assert_eq!(outcome(&no_menu).await, "info_only");
    let missed = call(&e.state, "GET", "/api/v1/worklists/missed", "")
        .await
        .json();
    let callers: Vec<_> = missed["callers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["appeal_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(callers, [choosing.as_str()], "{missed}");
    assert_eq!(missed["page"], 1);

    // a callback to them is booked (by a supervisor's call) and answered: off the list
    let booking = start("+79130000001", true);
    log.ivr_step(
        &booking,
        &IvrStep::CallbackRequested {
            number: "8 913 000-00-01".into(),
            queue: None,
        },
    );
    end(&booking, EndReason::IvrHangup, Some(IvrEnd::Callback));
    log.callback_dialling(&booking, "op1", 1);
    e.flush().await;
    let still = call(&e.state, "GET", "/api/v1/worklists/missed", "")
        .await
        .json();
    assert_eq!(still["callers"].as_array().unwrap().len(), 1, "{still}");
    log.callback_attempt(
        &booking,
        &gateway::CallbackAttempt {
            number: "8 913 000-00-01",
            operator: "op1",
            attempt: 1,
            result: gateway::CallbackOutcome::Answered,
        },
    );
    e.flush().await;
    let left = call(&e.state, "GET", "/api/v1/worklists/missed", "")
        .await
        .json();
    assert!(left["callers"].as_array().unwrap().is_empty(), "{left}");
    let _ = Status::New;
}
