//! The workspace pages through the router, on SQLite and PostgreSQL: where `/` sends each
//! role, who may open which page (an operator gets a 403 page on the board), the hooks the
//! browser tests rely on, an operator's registry keeping to their own appeals, the screen
//! pop with the caller's earlier appeal, English on `?lang=en`, and an organisation seeing
//! and closing only its own applications.

use appeals::{AppealUpdate, NewAppeal};

use super::*;

/// An appeal from `number`, handled by `operator` when given, sent to `org` when given.
async fn appeal(
    s: &AdminState,
    number: &str,
    operator: Option<&str>,
    org: Option<&str>,
) -> AppealId {
    let id = s.writer.create(NewAppeal {
        call_id: format!("c-{}", uuid::Uuid::now_v7()),
        line: "city".into(),
        caller_number: number.into(),
        arrived_at: Utc::now(),
    });
    s.writer.update(
        id,
        AppealUpdate {
            operator: operator.map(Into::into),
            queue: Some("general".into()),
            ivr_path: Some("main:1>benefits:2".into()),
            ..AppealUpdate::default()
        },
    );
    assert!(s.writer.flushed(Duration::from_secs(10)).await);
    if let Some(o) = org {
        let change = appeals::CaseChange {
            organisation: Some(Some(o.into())),
            ..appeals::CaseChange::default()
        };
        store(s)
            .update_case(id, None, &change, "test")
            .await
            .unwrap();
    }
    id
}

async fn get(s: &AdminState, path: &str, cookie: &str) -> Answer {
    send(s, req("GET", path, "", &[("cookie", cookie)])).await
}

on_both!(pages_by_role);
async fn pages_by_role(db: Db) {
    let s = state_on(&db, AccessSettings::default()).await;
    make_user(&s, "op1", Role::Operator, "op1-secret").await;
    make_user(&s, "sup", Role::Supervisor, "sup-secret").await;
    make_user(&s, "org1", Role::Organisation, "org-secret").await;
    let op = session(&s, "op1", "op1-secret").await;
    let sup = session(&s, "sup", "sup-secret").await;
    let org = session(&s, "org1", "org-secret").await;

    // `/` sends each role home; nobody signed in gets the login page from every page
    for (cookie, home) in [(&op, "/desk"), (&sup, "/board"), (&org, "/org")] {
        let a = get(&s, "/", cookie).await;
        assert_eq!(a.status, StatusCode::SEE_OTHER);
        assert_eq!(a.headers["location"], home);
    }
    for page in ["/desk", "/board", "/registry", "/reports", "/org"] {
        let a = send(&s, req("GET", page, "", &[])).await;
        assert_eq!(a.status, StatusCode::SEE_OTHER, "{page}");
        assert_eq!(a.headers["location"], "/", "{page}");
    }

    // an operator may not open the board or the reports: a page in Russian saying so
    for page in ["/board", "/reports", "/org"] {
        let a = get(&s, page, &op).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{page}");
        assert!(
            a.body.contains("Нет доступа") && a.body.contains("href=\"/\""),
            "{page}: {}",
            a.body
        );
    }
    // an organisation sees only its own view
    for page in ["/desk", "/board", "/registry", "/reports"] {
        assert_eq!(
            get(&s, page, &org).await.status,
            StatusCode::FORBIDDEN,
            "{page}"
        );
    }

    // the desk carries the hooks of the workspace contract
    let desk = get(&s, "/desk", &op).await;
    assert_eq!(desk.status, StatusCode::OK);
    for hook in [
        "id=\"desk-state\" class=\"state\" data-state=\"logged_out\"",
        "id=\"btn-login\"",
        "id=\"btn-pause\"",
        "<select id=\"pause-reason\">",
        "id=\"btn-resume\"",
        "id=\"btn-logout\"",
        "id=\"wrapup-countdown\"",
        "id=\"screen-pop\"",
        "<form id=\"appeal-form\"",
        "name=\"service\"",
        "name=\"district\"",
        "name=\"address\"",
        "name=\"notes\"",
        "name=\"disposition\"",
        "name=\"organisation\"",
        "id=\"appeal-saved\"",
        "data-transfer-queue=\"general\"",
        "data-transfer-operator=\"op2\"",
        "id=\"worklist-mine\"",
        "id=\"worklist-missed\"",
        "id=\"live-status\" data-live=\"down\"",
        "<span id=\"user-name\">Имя op1</span>",
        "<html lang=\"ru\" class=\"ws\">",
        "Рабочее место",
    ] {
        assert!(desk.body.contains(hook), "desk lacks {hook}");
    }
    // English on ?lang=en, remembered in a cookie
    let en = get(&s, "/desk?lang=en", &op).await;
    assert!(en.body.contains("<html lang=\"en\"") && en.body.contains("Log in to queues"));
    let set = en.headers["set-cookie"].to_str().unwrap();
    assert!(set.starts_with("hotline_lang=en"), "{set}");
    let again = get(&s, "/desk", &format!("{op}; hotline_lang=en")).await;
    assert!(again.body.contains("Log in to queues"));

    // the board: a tile per queue, a row per operator with its state and actions
    let board = get(&s, "/board", &sup).await;
    assert_eq!(board.status, StatusCode::OK);
    for hook in [
        "data-queue=\"general\"",
        "data-waiting-count",
        "data-longest-wait",
        "<tr data-operator=\"op1\" data-state=\"logged_out\"",
        "data-action=\"pause\" data-operator-id=\"op1\"",
        "data-action=\"logout\" data-operator-id=\"op2\"",
        "data-warn-s=\"30\" data-alarm-s=\"60\" data-sl-target=\"80\"",
    ] {
        assert!(board.body.contains(hook), "board lacks {hook}");
    }
    // op1 logs in: the board renders them available
    let csrf = csrf_of(&s, &sup).await;
    let a = send(
        &s,
        req(
            "POST",
            "/api/v1/operators/op1/login",
            "",
            &[("cookie", &sup), ("x-csrf-token", &csrf)],
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let board = get(&s, "/board", &sup).await;
    assert!(board
        .body
        .contains("<tr data-operator=\"op1\" data-state=\"available\""));
    let desk = get(&s, "/desk", &op).await;
    assert!(desk.body.contains("data-state=\"available\""));
}

on_both!(registry_card_and_pop);
async fn registry_card_and_pop(db: Db) {
    let s = state_on(&db, AccessSettings::default()).await;
    make_user(&s, "op1", Role::Operator, "op1-secret").await;
    make_user(&s, "sup", Role::Supervisor, "sup-secret").await;
    let op = session(&s, "op1", "op1-secret").await;
    let sup = session(&s, "sup", "sup-secret").await;
    let earlier = appeal(&s, "+79131234567", Some("op1"), None).await;
    let others = appeal(&s, "+79130000001", Some("op2"), None).await;
    let ringing = appeal(&s, "+79131234567", None, None).await;

    // an operator's registry keeps to the appeals they handled
    let mine = get(&s, "/registry", &op).await;
    assert_eq!(mine.status, StatusCode::OK);
    assert!(mine
        .body
        .contains(&format!("<tr data-appeal-id=\"{earlier}\"")));
    assert!(!mine.body.contains(&others.to_string()));
    assert!(mine.body.contains("<form id=\"search\""));
    let all = get(&s, "/registry", &sup).await;
    for id in [earlier, others, ringing] {
        assert!(
            all.body.contains(&format!("<tr data-appeal-id=\"{id}\"")),
            "{id}"
        );
    }
    // the search narrows by number; a wrong date says which field, in Russian
    let found = get(&s, "/registry?q=0000001", &sup).await;
    assert!(found.body.contains(&others.to_string()) && !found.body.contains(&earlier.to_string()));
    let bad = get(&s, "/registry?from=yesterday", &sup).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body.contains("Поле «С даты»"), "{}", bad.body);
    let csv = get(&s, "/registry?q=0000001&format=csv", &sup).await;
    assert_eq!(csv.headers["content-type"], "text/csv; charset=utf-8");
    let lines: Vec<&str> = csv.body.lines().collect();
    assert_eq!(lines.len(), 2, "{}", csv.body);
    assert!(lines[1].starts_with(&others.to_string()) && lines[1].contains("'+79130000001"));

    // the appeal card: its timeline; someone else's appeal is refused to an operator
    let card = get(&s, &format!("/appeals/{earlier}"), &op).await;
    assert_eq!(card.status, StatusCode::OK);
    assert!(card.body.contains("<ol id=\"appeal-timeline\""));
    assert!(
        card.body.contains("<li data-kind=\"created\">"),
        "{}",
        card.body
    );
    assert_eq!(
        get(&s, &format!("/appeals/{others}"), &op).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        get(&s, "/appeals/nope", &op).await.status,
        StatusCode::BAD_REQUEST
    );

    // the screen pop of a ringing call: the number, the earlier appeal, the menu path
    let pop = get(&s, &format!("/desk/pop/{ringing}"), &op).await;
    assert_eq!(pop.status, StatusCode::OK);
    assert!(pop.body.contains("data-caller-number=\"+79131234567\""));
    assert!(
        pop.body
            .contains(&format!("<li data-appeal-id=\"{earlier}\"")),
        "{}",
        pop.body
    );
    assert!(!pop.body.contains(&format!("data-appeal-id=\"{others}\"")));
    assert!(pop.body.contains("id=\"citizen-card\"") && pop.body.contains("id=\"citizen-flags\""));
    assert!(pop.body.contains("main:1 → benefits:2"));
    assert!(pop.body.contains("<dd id=\"calls-30d\">1</dd>"));
    assert!(!pop.body.contains("<html"), "a fragment, not a page");
    let missing = get(&s, &format!("/desk/pop/{}", AppealId::new()), &op).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

on_both!(organisation_sees_and_closes_its_own);
async fn organisation_sees_and_closes_its_own(db: Db) {
    let s = state_on(&db, AccessSettings::default()).await;
    make_user(&s, "org1", Role::Organisation, "org-secret").await;
    let org = session(&s, "org1", "org-secret").await;
    // make_user gives the organisation account the organisation "tc-1"
    let ours = appeal(&s, "+79131111111", Some("op1"), Some("tc-1")).await;
    let theirs = appeal(&s, "+79132222222", Some("op1"), Some("tc-2")).await;
    let unrouted = appeal(&s, "+79133333333", Some("op1"), None).await;

    let view = get(&s, "/org", &org).await;
    assert_eq!(view.status, StatusCode::OK);
    assert!(view
        .body
        .contains(&format!("<tr data-appeal-id=\"{ours}\"")));
    assert!(!view.body.contains(&theirs.to_string()) && !view.body.contains(&unrouted.to_string()));
    assert!(view.body.contains("data-action=\"done\""));
    let csrf = {
        let needle = "name=\"csrf\" value=\"";
        let at = view.body.find(needle).unwrap() + needle.len();
        view.body[at..at + view.body[at..].find('"').unwrap()].to_owned()
    };
    let post = |id: AppealId, form: String| {
        let s = s.clone();
        let org = org.clone();
        async move {
            send(
                &s,
                req(
                    "POST",
                    &format!("/org/{id}"),
                    &form,
                    &[
                        ("cookie", &org),
                        ("content-type", "application/x-www-form-urlencoded"),
                    ],
                ),
            )
            .await
        }
    };
    // without the form's token: refused, nothing written
    let forged = post(ours, "action=done&comment=x".into()).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    // another organisation's application: refused
    let other = post(theirs, format!("csrf={csrf}&action=done&comment=")).await;
    assert_eq!(other.status, StatusCode::FORBIDDEN);
    // an empty comment says what to do
    let empty = post(ours, format!("csrf={csrf}&action=comment&comment=")).await;
    assert_eq!(empty.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(empty.body.contains("Поле «Комментарий»"));
    // a comment, then done
    let c = post(
        ours,
        format!(
            "csrf={csrf}&action=comment&comment={}",
            urlencode("Выехали к заявителю")
        ),
    )
    .await;
    assert_eq!(c.status, StatusCode::SEE_OTHER, "{}", c.body);
    let d = post(ours, format!("csrf={csrf}&action=done&comment=")).await;
    assert_eq!(d.status, StatusCode::SEE_OTHER, "{}", d.body);
    assert!(s.writer.flushed(Duration::from_secs(10)).await);
    let got = store(&s).get(ours).await.unwrap().unwrap();
    assert!(!crate::web::chrome::is_open(got.appeal.status.as_str()));
    assert!(got
        .events
        .iter()
        .any(|e| e.kind == appeals::EventKind::NoteAdded
            && e.data["comment"] == "Выехали к заявителю"
            && e.actor.as_deref() == Some("org1")));
    let untouched = store(&s).get(theirs).await.unwrap().unwrap();
    assert!(crate::web::chrome::is_open(
        untouched.appeal.status.as_str()
    ));
    let view = get(&s, "/org", &org).await;
    assert!(
        !view.body.contains("data-action=\"done\""),
        "done rows have no done button"
    );
}
