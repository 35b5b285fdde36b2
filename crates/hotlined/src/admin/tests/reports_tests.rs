//! Reports over a real store, on SQLite and (under `scripts/with-postgres.sh`) PostgreSQL:
//! a calendar month spanning several ISO weeks, an ISO week spanning two months, the case
//! groups (services, organisations, districts) and the overdue count, the CSV in Russian
//! with the directory's names, and a bad range refused naming the field.

use super::access_tests::{postgres_db, sqlite_db, state_on, Db};
use super::*;
use appeals::Status;

/// An appeal that arrived at `at` (local Novosibirsk time on `day`), with its case fields.
async fn case(
    s: &AdminState,
    day: NaiveDate,
    service: &str,
    district: Option<&str>,
    due: DateTime<Utc>,
    status: Option<Status>,
) -> AppealId {
    let id = s.writer.create(NewAppeal {
        call_id: format!("r-{day}-{service}"),
        line: "city".into(),
        caller_number: "+79130000000".into(),
        arrived_at: local(day, 10, 0),
    });
    s.writer.update(
        id,
        AppealUpdate {
            outcome: Some(Outcome::Answered),
            answered_at: Some(local(day, 10, 0)),
            wait_seconds: Some(5),
            talk_seconds: Some(60),
            operator: Some("op1".into()),
            ..AppealUpdate::default()
        },
    );
    assert!(s.writer.flushed(Duration::from_secs(10)).await);
    s.store
        .get()
        .unwrap()
        .update_case(
            id,
            None,
            &appeals::CaseChange {
                status,
                service: Some(Some(service.into())),
                district: Some(district.map(str::to_owned)),
                organisation: Some(Some("kcson-dzerzhinsky".into())),
                due_at: Some(Some(due)),
                ..Default::default()
            },
            "test",
        )
        .await
        .unwrap();
    id
}

async fn month_and_week_reports(db: Db) {
    let s = state_on(&db, AccessSettings::default()).await;
    let d = |m, day| NaiveDate::from_ymd_opt(2026, m, day).unwrap();
    let past = local(d(11, 20), 12, 0);
    let future = Utc::now() + chrono::Duration::days(30);
    // November 2026: Monday 2 Nov (week 45), Wednesday 18 Nov (week 47), Monday 30 Nov
    // (week 49, which ends on Sunday 6 Dec); and 31 Oct and 1 Dec around it.
    case(&s, d(10, 31), "home-care", Some("dzerzhinsky"), past, None).await;
    case(&s, d(11, 2), "home-care", Some("dzerzhinsky"), past, None).await; // overdue
    case(
        &s,
        d(11, 18),
        "home-care",
        Some("dzerzhinsky"),
        past,
        Some(Status::Declined),
    )
    .await;
    case(&s, d(11, 30), "delivery", None, future, None).await;
    case(
        &s,
        d(12, 1),
        "delivery",
        Some("zheleznodorozhny"),
        past,
        None,
    )
    .await;

    // The month: three appeals, one of them overdue (the declined one is closed).
    let a = call(&s, "GET", "/api/v1/reports?range=month&day=2026-11-15", "").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let j = a.json();
    assert_eq!(j["range"], "month");
    let r = &j["report"];
    assert_eq!(r["from"], "2026-11-01");
    assert_eq!(r["to"], "2026-11-30");
    assert_eq!(r["days"].as_array().unwrap().len(), 30);
    let p = &r["period"];
    assert_eq!(p["total"]["calls"], 3);
    assert_eq!(p["total"]["overdue"], 1);
    let group = |name: &str, key: Option<&str>| {
        p[name]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["key"].as_str() == key)
            .map(|g| (g["calls"].as_u64().unwrap(), g["overdue"].as_u64().unwrap()))
    };
    assert_eq!(group("by_service", Some("home-care")), Some((2, 1)));
    assert_eq!(group("by_service", Some("delivery")), Some((1, 0)));
    assert_eq!(group("by_district", Some("dzerzhinsky")), Some((2, 1)));
    assert_eq!(group("by_district", None), Some((1, 0)));
    assert_eq!(
        group("by_organisation", Some("kcson-dzerzhinsky")),
        Some((3, 1))
    );
    // each day of the month is in it, the weeks' days included
    let days = r["days"].as_array().unwrap();
    assert_eq!(days[1]["day"], "2026-11-02");
    assert_eq!(days[1]["total"]["calls"], 1);
    assert_eq!(days[17]["total"]["calls"], 1);
    assert_eq!(days[29]["total"]["calls"], 1);

    // The ISO week of Wednesday 2 December: Monday 30 Nov to Sunday 6 Dec, two months.
    let w = call(&s, "GET", "/api/v1/reports?range=week&day=2026-12-02", "")
        .await
        .json();
    assert_eq!(w["report"]["from"], "2026-11-30");
    assert_eq!(w["report"]["to"], "2026-12-06");
    assert_eq!(w["report"]["period"]["total"]["calls"], 2);
    assert_eq!(w["report"]["period"]["total"]["overdue"], 1);

    // The CSV, Russian by default, names from the directory and the ids beside them.
    let csv = call(
        &s,
        "GET",
        "/api/v1/reports?range=month&day=2026-11-15&format=csv",
        "",
    )
    .await;
    assert_eq!(csv.status, StatusCode::OK);
    assert!(
        csv.body.starts_with("день,группа,ключ,название,"),
        "{}",
        csv.body
    );
    assert!(
        csv.body.contains(
            "\nпериод,услуга,home-care,Социальное обслуживание на дому,2,2,0,2,1.0000,5.0,,60.0,1\n"
        ),
        "{}",
        csv.body
    );
    assert!(
        csv.body.contains("\nпериод,район,,(без района),1,"),
        "{}",
        csv.body
    );
    let audit = audit_of(&s, "export").await;
    assert!(audit
        .iter()
        .any(|e| e.details["what"] == "report" && e.details["range"] == "month"));

    // The page: Russian, the period picker on the month, the new tables.
    let page = call(&s, "GET", "/reports?range=month&day=2026-11-15", "").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    for needle in [
        "<option value=\"month\" selected>Месяц</option>",
        "Месяц: 01.11.2026 – 30.11.2026",
        "data-chart=\"by_day\"",
        // the days of the chart named дд.мм.гггг too, keyed ISO
        "<title>15.11.2026</title>15.11.2026</text>",
        "data-key=\"2026-11-15\"",
        "data-chart=\"by_service\"",
        "<table class=\"results\" data-group=\"district\">",
        "<tr data-key=\"home-care\"><td>Социальное обслуживание на дому</td><td data-figure=\"calls\">2</td>",
        // operators by their display names, keyed by login
        "<tr data-key=\"op1\"><td>Оператор 1</td>",
        "/api/v1/reports?range=month&amp;day=2026-11-15&amp;format=csv&amp;lang=ru",
    ] {
        assert!(page.body.contains(needle), "{needle} not on the page");
    }
    // the date field is дд.мм.гггг text, as in the registry (not the browser's date input)
    assert!(
        page.body.contains(
            "<input id=\"r-day\" name=\"day\" type=\"text\" inputmode=\"numeric\" \
             placeholder=\"дд.мм.гггг\" value=\"15.11.2026\""
        ),
        "{}",
        page.body
    );
    // what the field sends gives the same report, its links in ISO
    let typed = call(&s, "GET", "/reports?range=month&day=15.11.2026", "").await;
    assert_eq!(typed.status, StatusCode::OK, "{}", typed.body);
    for needle in [
        "Месяц: 01.11.2026 – 30.11.2026",
        "value=\"15.11.2026\"",
        "/api/v1/reports?range=month&amp;day=2026-11-15&amp;format=csv&amp;lang=ru",
    ] {
        assert!(typed.body.contains(needle), "{needle} not on the page");
    }
    let bad = call(&s, "GET", "/reports?day=11/15/2026", "").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(
        bad.body
            .contains("Поле «Дата в периоде»: укажите дату в виде ДД.ММ.ГГГГ"),
        "{}",
        bad.body
    );
    let bad = call(&s, "GET", "/reports?range=year", "").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body.contains("Поле «Период»"), "{}", bad.body);
    let bad = call(&s, "GET", "/api/v1/reports?range=quarter", "").await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.json()["field"], "range");
}

#[tokio::test]
async fn month_and_week_reports_sqlite() {
    month_and_week_reports(sqlite_db()).await;
}

#[tokio::test]
async fn month_and_week_reports_postgres() {
    if let Some(db) = postgres_db("month_and_week_reports").await {
        month_and_week_reports(db).await;
    }
}
