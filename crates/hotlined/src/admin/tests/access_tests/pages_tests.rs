//! The workspace pages through the router, on SQLite and PostgreSQL: where `/` sends each
//! role, who may open which page (an operator gets a 403 page on the board), the hooks the
//! browser tests rely on, an operator's registry keeping to their own appeals, the screen
//! pop with the caller's earlier appeal and the citizen's card, the citizen card page, the
//! desk's case form and worklists, English on `?lang=en`, and an organisation seeing and
//! closing only its own applications, as the workflow allows.

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

/// A page's `POST` without a body: the session cookie and its CSRF token.
async fn post(s: &AdminState, path: &str, cookie: &str, csrf: &str) -> Answer {
    send(
        s,
        req(
            "POST",
            path,
            "",
            &[("cookie", cookie), ("x-csrf-token", csrf)],
        ),
    )
    .await
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
        "<th scope=\"col\">В состоянии</th>",
    ] {
        assert!(board.body.contains(hook), "board lacks {hook}");
    }
    // what an operator's row offers: its buttons not hidden, and «—» when it shows none
    let offered = |body: &str, id: &str| -> Vec<String> {
        let start = body
            .find(&format!("<tr data-operator=\"{id}\""))
            .expect("the operator's row");
        let row = &body[start..];
        let row = &row[..row.find("</tr>").expect("the row's end")];
        let cell = &row[row
            .find("<td data-cell=\"actions\">")
            .expect("the actions cell")..];
        cell.split('<')
            .filter_map(|piece| piece.split_once('>'))
            .filter(|(tag, _)| !tag.ends_with(" hidden"))
            .filter_map(|(tag, text)| {
                if let Some(a) = tag.strip_prefix("button type=\"button\" data-action=\"") {
                    a.split('"').next().map(str::to_owned)
                } else if tag == "span data-no-action" {
                    Some(text.trim().to_owned())
                } else {
                    None
                }
            })
            .collect()
    };
    // nobody is logged in yet: no pause or log-out is offered, «—» instead
    assert_eq!(offered(&board.body, "op1"), ["—"]);
    assert_eq!(offered(&board.body, "op2"), ["—"]);
    // op1 logs in (the board renders them available, offering «Пауза»), the supervisor
    // pauses them (the board offers «Снять паузу» instead) and takes the pause off
    let csrf = csrf_of(&s, &sup).await;
    for (verb, state, offers) in [
        ("login", "available", ["pause", "logout"]),
        ("pause", "paused", ["unpause", "logout"]),
        ("unpause", "available", ["pause", "logout"]),
    ] {
        let a = post(&s, &format!("/api/v1/operators/op1/{verb}"), &sup, &csrf).await;
        assert_eq!(a.status, StatusCode::OK, "{verb}: {}", a.body);
        let board = get(&s, "/board", &sup).await;
        let row = format!("<tr data-operator=\"op1\" data-state=\"{state}\"");
        assert!(board.body.contains(&row), "after {verb}: {}", board.body);
        assert_eq!(offered(&board.body, "op1"), offers, "after {verb}");
        assert_eq!(offered(&board.body, "op2"), ["—"], "after {verb}");
    }
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
    assert!(bad.body.contains("ДД.ММ.ГГГГ"), "{}", bad.body);
    // dates as people write them (дд.мм.гггг) and as a date input sends them
    for q in ["from=01.01.2020&to=31.12.2099", "from=2020-01-01"] {
        let ok = get(&s, &format!("/registry?{q}"), &sup).await;
        assert_eq!(ok.status, StatusCode::OK, "{q}");
        assert!(ok.body.contains(&others.to_string()), "{q}");
    }
    let none = get(&s, "/registry?to=01.01.2000", &sup).await;
    assert!(!none.body.contains(&others.to_string()));
    assert!(all.body.contains("lang=\"ru\"") && all.body.contains("placeholder=\"дд.мм.гггг\""));
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
    // the menu path as the keys pressed (no menus configured here: no words for them), never
    // the node ids
    assert!(pop.body.contains("1 → 2"), "{}", pop.body);
    assert!(!pop.body.contains("main:1"));
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
    // a new application can be taken in work, not marked done (the workflow's rule)
    assert!(view.body.contains("data-action=\"take\""));
    assert!(!view.body.contains("data-action=\"done\""));
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
    // done on a new application: the workflow refuses new → done (as the API's PATCH
    // does); the page says why in Russian and writes nothing, the comment neither
    let early = post(
        ours,
        format!(
            "csrf={csrf}&action=done&comment={}",
            urlencode("Сделано заранее")
        ),
    )
    .await;
    assert_eq!(
        early.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        early.body
    );
    assert!(
        early
            .body
            .contains("Заявку в статусе «новое» нельзя перевести в статус «выполнено»")
            && early.body.contains("«в работе», «отказано»"),
        "{}",
        early.body
    );
    assert!(s.writer.flushed(Duration::from_secs(10)).await);
    let still = store(&s).get(ours).await.unwrap().unwrap();
    assert_eq!(still.appeal.status, appeals::Status::New);
    assert!(!still
        .events
        .iter()
        .any(|e| e.kind == appeals::EventKind::StatusChanged
            || e.data["comment"] == "Сделано заранее"));
    // the organisation takes it in work from the page; then a comment, then done
    let t = post(ours, format!("csrf={csrf}&action=take&comment=")).await;
    assert_eq!(t.status, StatusCode::SEE_OTHER, "{}", t.body);
    let view = get(&s, "/org", &org).await;
    assert!(
        view.body.contains("data-action=\"done\"") && !view.body.contains("data-action=\"take\"")
    );
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
    assert_eq!(got.appeal.status, appeals::Status::Done);
    assert!(got
        .events
        .iter()
        .any(|e| e.kind == appeals::EventKind::StatusChanged
            && e.data == serde_json::json!({"from": "in_progress", "to": "done"})
            && e.actor.as_deref() == Some("org1")));
    assert!(got
        .events
        .iter()
        .any(|e| e.kind == appeals::EventKind::StatusChanged
            && e.data == serde_json::json!({"from": "new", "to": "in_progress"})
            && e.actor.as_deref() == Some("org1")));
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

on_both!(citizen_card_and_its_pop);
async fn citizen_card_and_its_pop(db: Db) {
    let s = state_on(&db, AccessSettings::default()).await;
    make_user(&s, "op1", Role::Operator, "op1-secret").await;
    let op = session(&s, "op1", "op1-secret").await;
    let today = Utc::now().date_naive();
    let card = store(&s)
        .create_citizen(&appeals::CitizenFields {
            name: "Иванова Мария Петровна".into(),
            phones: vec!["+79137770001".into()],
            address: Some("ул. Ленина, 1".into()),
            district: Some("dzerzhinsky".into()),
            birth_year: Some(1941),
            categories: vec!["pensioner".into()],
            flags: vec![
                appeals::Flag {
                    flag: "hard-of-hearing".into(),
                    until: None,
                },
                appeals::Flag {
                    flag: "lives-alone".into(),
                    until: today.pred_opt(),
                },
            ],
            consent: Some(appeals::Consent {
                by: "op1".into(),
                at: Utc::now(),
            }),
            notes: Some("Звонить после обеда".into()),
        })
        .await
        .unwrap();
    // an appeal linked to the card; a later call from the card's number, not yet linked
    let first = appeal(&s, "+79130000099", Some("op1"), None).await;
    let link = appeals::CaseChange {
        citizen_id: Some(Some(card.id)),
        ..appeals::CaseChange::default()
    };
    store(&s)
        .update_case(first, None, &link, "test")
        .await
        .unwrap();
    let second = appeal(&s, "+79130000098", Some("op1"), None).await;
    store(&s)
        .update_case(second, None, &link, "test")
        .await
        .unwrap();

    // the card: name, numbers, district and category by name, flags with expiry, consent,
    // notes, its appeals newest first
    let page = get(&s, &format!("/citizens/{}", card.id), &op).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let b = &page.body;
    for want in [
        "Иванова Мария Петровна",
        "data-phone=\"+79137770001\"",
        "ул. Ленина, 1",
        "Дзержинский",
        "Пенсионер",
        "1941",
        "Звонить после обеда",
        "получено: op1",
        "<span class=\"flag\" data-flag=\"hard-of-hearing\">Плохо слышит</span>",
        "data-flag=\"lives-alone\" data-expired=\"true\"",
    ] {
        assert!(b.contains(want), "{want} in {b}");
    }
    let at = |id: AppealId| b.find(&format!("<li data-appeal-id=\"{id}\"")).unwrap();
    assert!(at(second) < at(first), "newest first");
    assert_eq!(
        get(&s, &format!("/citizens/{}", uuid::Uuid::now_v7()), &op)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&s, "/citizens/nope", &op).await.status,
        StatusCode::BAD_REQUEST
    );

    // the pop of a linked appeal shows the card; of an unlinked call, the card with the
    // caller's number; flags in force in plain sight, the expired one not
    let link_href = format!("href=\"/citizens/{}\"", card.id);
    let linked = get(&s, &format!("/desk/pop/{first}"), &op).await;
    assert!(linked.body.contains(&link_href), "{}", linked.body);
    let ringing = appeal(&s, "+7 913 777-00-01", None, None).await;
    let pop = get(&s, &format!("/desk/pop/{ringing}"), &op).await;
    assert_eq!(pop.status, StatusCode::OK);
    let p = &pop.body;
    assert!(p.contains(&format!(
        "id=\"citizen-card\" class=\"citizen\" data-citizen-id=\"{}\"",
        card.id
    )));
    assert!(p.contains(&link_href) && p.contains("Иванова Мария Петровна"));
    let flags = &p[p.find("id=\"citizen-flags\"").unwrap()..];
    assert!(flags.contains("Плохо слышит") && !flags.contains("Проживает один"));
    assert!(!p.contains("не найден"));
    // two cards with one number: both offered, neither taken for the caller
    let twin = store(&s)
        .create_citizen(&appeals::CitizenFields {
            name: "Иванов Пётр Ильич".into(),
            phones: vec!["+79137770002".into()],
            ..appeals::CitizenFields::default()
        })
        .await
        .unwrap();
    let sister = store(&s)
        .create_citizen(&appeals::CitizenFields {
            name: "Иванова Анна Ильинична".into(),
            phones: vec!["+79137770002".into()],
            ..appeals::CitizenFields::default()
        })
        .await
        .unwrap();
    let shared = appeal(&s, "+79137770002", None, None).await;
    let two = get(&s, &format!("/desk/pop/{shared}"), &op).await;
    assert!(two.body.contains("несколько заявителей"), "{}", two.body);
    for id in [twin.id, sister.id] {
        assert!(two.body.contains(&format!("<li data-citizen-id=\"{id}\">")));
    }
    // nobody has this number: "не найден"
    let stranger = appeal(&s, "+79135550000", None, None).await;
    let none = get(&s, &format!("/desk/pop/{stranger}"), &op).await;
    assert!(none.body.contains("не найден") && none.body.contains("data-citizen-id=\"\""));
}

on_both!(desk_case_form_and_worklists);
async fn desk_case_form_and_worklists(db: Db) {
    let s = state_on(&db, AccessSettings::default()).await;
    make_user(&s, "op1", Role::Operator, "op1-secret").await;
    make_user(&s, "sup", Role::Supervisor, "sup-secret").await;
    let op = session(&s, "op1", "op1-secret").await;
    let sup = session(&s, "sup", "sup-secret").await;
    // assigned to op1 and due today; a caller who hung up before anyone answered
    let assigned = appeal(&s, "+79130000011", Some("op1"), None).await;
    let work = appeals::CaseChange {
        assignee: Some(Some("op1".into())),
        due_at: Some(Some(Utc::now() + Duration::from_secs(60))),
        ..appeals::CaseChange::default()
    };
    store(&s)
        .update_case(assigned, None, &work, "test")
        .await
        .unwrap();
    let not_mine = appeal(&s, "+79130000012", Some("op1"), None).await;
    let gone = appeal(&s, "+79130000013", None, None).await;
    s.writer.update(
        gone,
        AppealUpdate {
            outcome: Some(appeals::Outcome::Abandoned),
            ..AppealUpdate::default()
        },
    );
    assert!(s.writer.flushed(Duration::from_secs(10)).await);

    let desk = get(&s, "/desk", &op).await;
    assert_eq!(desk.status, StatusCode::OK);
    let b = &desk.body;
    // the case form: on, selects filled from the directory and the case codes
    assert!(b.contains("data-case-fields=\"1\""));
    for want in [
        "<select id=\"f-service\" name=\"service\" aria-describedby=\"f-service-full\">",
        "<option value=\"home-care\">Социальное обслуживание на дому</option>",
        "<select id=\"f-district\" name=\"district\">",
        "<option value=\"dzerzhinsky\">Дзержинский</option>",
        "<select id=\"f-organisation\" name=\"organisation\" aria-describedby=\"f-organisation-full org-suggested\">",
        // the citizen of the call is found or created on the desk
        "id=\"citizen-q\"",
        "<input type=\"hidden\" name=\"citizen_id\" id=\"f-citizen\" value=\"\">",
        // the organisations with a phone to transfer to
        "<select id=\"transfer-org\">",
        "<option value=\"consulted\">Консультация дана</option>",
        "id=\"org-suggested\"",
    ] {
        assert!(b.contains(want), "desk lacks {want}");
    }
    let org = s.directory.get().organisations[0].clone();
    assert!(b.contains(&format!("<option value=\"{}\">", org.id)));
    // worklists: mine is the assigned one (not every appeal the operator answered)
    let list = |body: &str, id: &str| -> String {
        let from = body.find(&format!("<ul id=\"{id}\"")).unwrap();
        let to = from + body[from..].find("</ul>").unwrap();
        body[from..to].to_owned()
    };
    let mine = list(b, "worklist-mine");
    assert!(
        mine.contains(&format!("data-appeal-id=\"{assigned}\"")),
        "{mine}"
    );
    assert!(!mine.contains(&not_mine.to_string()));
    // the missed caller is the operator's to call back too
    let missed = list(b, "worklist-missed");
    assert!(
        missed.contains(&format!("data-appeal-id=\"{gone}\"")) && missed.contains("+79130000013"),
        "{missed}"
    );
    // an operator has no chooser; a supervisor who is not an operator gets only the chooser,
    // then the chosen operator's desk, read-only
    assert!(!b.contains("id=\"desk-chooser\""));
    let choose = get(&s, "/desk", &sup).await;
    assert!(
        choose.body.contains("id=\"desk-chooser\""),
        "{}",
        choose.body
    );
    assert!(choose
        .body
        .contains("<option value=\"op2\">Оператор 2 (op2)</option>"));
    assert!(!choose.body.contains("class=\"desk\""));
    let sdesk = get(&s, "/desk?operator=op1", &sup).await;
    assert!(
        sdesk.body.contains("<option value=\"op1\" selected>"),
        "{}",
        sdesk.body
    );
    assert!(
        sdesk.body.contains("data-operator=\"op1\"") && sdesk.body.contains("data-read-only=\"1\"")
    );
    assert!(!b.contains("data-read-only"));
    let missed = list(&sdesk.body, "worklist-missed");
    assert!(
        missed.contains(&format!("data-appeal-id=\"{gone}\"")) && missed.contains("+79130000013"),
        "{missed}"
    );
    let due = list(&sdesk.body, "worklist-due");
    assert!(
        due.contains(&format!("data-appeal-id=\"{assigned}\"")),
        "{due}"
    );
}

// A queue that requires the disposition: the operator whose call ended without one is
// paused with the hold's reason (the desk says so); a PATCH without a disposition leaves
// them held, the one that sets it resumes them; an operator who paused for another reason
// meanwhile stays paused.
on_both!(disposition_hold_until_saved);
async fn disposition_hold_until_saved(db: Db) {
    use crate::disposition_hold::{hold, REASON};
    let mut s = state_on(&db, AccessSettings::default()).await;
    s.live = crate::live::Live::new(crate::live::LiveSetup {
        labels: Arc::new(
            crate::labels::Labels::new(Vec::new(), Vec::new())
                .with_disposition_required(["general".to_owned()]),
        ),
        ..Default::default()
    });
    make_user(&s, "op1", Role::Operator, "op1-secret").await;
    let op = session(&s, "op1", "op1-secret").await;
    let reason = |s: &AdminState| {
        let contacts = s.stats.registered_contacts();
        s.operators
            .view_of("op1", &contacts, std::time::Instant::now())
            .and_then(|v| v.pause_reason)
    };
    let login = OperatorAction::Login { queues: Vec::new() };
    operator_command(&s, "op1", login).await.unwrap();
    let a = appeal(&s, "+79130000021", Some("op1"), None).await;
    assert!(s.live.labels().disposition_required("general"));
    hold(&s, &s.holds, "op1", a).await;
    assert_eq!(reason(&s).as_deref(), Some(REASON));
    let desk = get(&s, "/desk", &op).await;
    assert!(
        desk.body.contains(&format!("data-held-appeal=\"{a}\"")),
        "{}",
        desk.body
    );
    assert!(desk
        .body
        .contains("<p id=\"disposition-hold\" class=\"alert\" role=\"status\">"));
    assert!(desk.body.contains("data-hold-queues=\"general\""));

    let patch = |body: &'static str| {
        req(
            "PATCH",
            &format!("/api/v1/appeals/{a}"),
            body,
            &[
                ("authorization", &format!("Bearer {TOKEN}")),
                ("content-type", "application/json"),
            ],
        )
    };
    let notes = send(&s, patch(r#"{"version":1,"notes":"ещё пишу"}"#)).await;
    assert_eq!(notes.status, StatusCode::OK, "{}", notes.body);
    assert_eq!(
        reason(&s).as_deref(),
        Some(REASON),
        "a note is not the disposition"
    );
    let done = send(&s, patch(r#"{"version":2,"disposition":"consulted"}"#)).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert_eq!(reason(&s), None, "the disposition resumes op1");
    assert!(s.holds.of("op1").is_none());

    // held, then paused by hand for a break: the disposition does not end the break
    let b = appeal(&s, "+79130000022", Some("op1"), None).await;
    hold(&s, &s.holds, "op1", b).await;
    assert_eq!(reason(&s).as_deref(), Some(REASON));
    operator_command(&s, "op1", OperatorAction::Unpause)
        .await
        .unwrap();
    let brk = OperatorAction::Pause {
        reason: Some("break".into()),
    };
    operator_command(&s, "op1", brk).await.unwrap();
    let req_b = req(
        "PATCH",
        &format!("/api/v1/appeals/{b}"),
        r#"{"version":1,"disposition":"consulted"}"#,
        &[
            ("authorization", &format!("Bearer {TOKEN}")),
            ("content-type", "application/json"),
        ],
    );
    assert_eq!(send(&s, req_b).await.status, StatusCode::OK);
    assert_eq!(reason(&s).as_deref(), Some("break"));
    // an appeal that has its disposition already: no hold
    hold(&s, &s.holds, "op1", a).await;
    assert!(s.holds.of("op1").is_none());
}

on_both!(totals_past_the_cap);
/// More appeals found than the lists count (10 000): the API's `total` stops at the cap with
/// `total_exact: false` and the registry says «более 10 000» with a next page; a page past
/// the cap counts to its end, exactly when that is all; a small total is exact.
async fn totals_past_the_cap(db: Db) {
    let s = state_on(&db, AccessSettings::default()).await;
    make_user(&s, "sup", Role::Supervisor, "sup-secret").await;
    let sup = session(&s, "sup", "sup-secret").await;
    let t0 = Utc::now().timestamp_millis() - 86_400_000;
    for chunk in 0..11 {
        let rows: Vec<String> = (0..1000)
            .map(|i| chunk * 1000 + i)
            .take_while(|n| *n < 10_001)
            .map(|n| {
                format!(
                    "('{}', 'bulk-{n}', 'city', '79990000000', '79990000000', {t}, 'new', \
                     'Просит доставить продукты', 0, {t})",
                    AppealId::new(),
                    t = t0 + n as i64
                )
            })
            .collect();
        if rows.is_empty() {
            break;
        }
        sqlx::query(&format!(
            "INSERT INTO appeals (id, call_id, line, caller_number, caller_key, arrived_at, \
             status, notes, last_seq, updated_at) VALUES {}",
            rows.join(", ")
        ))
        .execute(store(&s).pool())
        .await
        .unwrap();
    }
    let other = appeal(&s, "+79130000001", Some("op1"), None).await;

    let api = |q: &'static str| {
        let (s, sup) = (&s, &sup);
        async move {
            let a = get(s, &format!("/api/v1/appeals?{q}"), sup).await;
            assert_eq!(a.status, StatusCode::OK, "{q}: {}", a.body);
            serde_json::from_str::<Value>(&a.body).unwrap()
        }
    };
    let capped = api("q=продукт").await;
    assert_eq!(capped["total"], 10_000);
    assert_eq!(capped["total_exact"], false);
    assert_eq!(capped["pages"], 200);
    assert_eq!(capped["appeals"].as_array().unwrap().len(), 50);
    let past = api("q=продукт&page=201").await;
    assert_eq!(
        (&past["total"], &past["total_exact"]),
        (&json!(10_001), &json!(true))
    );
    assert_eq!(past["appeals"].as_array().unwrap().len(), 1, "the oldest");
    let last = api("q=продукт&page=201&per_page=1000").await;
    assert_eq!(last["appeals"].as_array().unwrap().len(), 0);
    let all = api("").await;
    assert_eq!(
        (&all["total"], &all["total_exact"]),
        (&json!(10_000), &json!(false))
    );
    let small = api("caller=79130000001").await;
    assert_eq!(
        (&small["total"], &small["total_exact"]),
        (&json!(1), &json!(true))
    );
    assert_eq!(small["appeals"][0]["id"], other.to_string());

    let page = get(
        &s,
        "/registry?q=%D0%BF%D1%80%D0%BE%D0%B4%D1%83%D0%BA%D1%82",
        &sup,
    )
    .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains("Найдено: более 10 000</span>"),
        "{}",
        page.body
    );
    assert!(page.body.contains("rel=\"next\""));
    let end = get(
        &s,
        "/registry?q=%D0%BF%D1%80%D0%BE%D0%B4%D1%83%D0%BA%D1%82&page=201",
        &sup,
    )
    .await;
    assert!(end.body.contains("Найдено: 10 001</span>"), "{}", end.body);
    assert!(!end.body.contains("rel=\"next\""));
    let one = get(&s, "/registry?q=79130000001", &sup).await;
    assert!(one.body.contains("Найдено: 1</span>"), "{}", one.body);
}

// The appeal card and the registry name the line as the lines file does (an id no longer
// configured is shown as it is).
on_both!(pages_name_the_line);
async fn pages_name_the_line(db: Db) {
    let mut s = state_on(&db, AccessSettings::default()).await;
    s.live = crate::live::Live::new(crate::live::LiveSetup {
        labels: Arc::new(
            crate::labels::Labels::new(Vec::new(), Vec::new())
                .with_lines([("city".to_owned(), "Городская справочная".to_owned())]),
        ),
        ..Default::default()
    });
    make_user(&s, "sup", Role::Supervisor, "sup-secret").await;
    let sup = session(&s, "sup", "sup-secret").await;
    let a = appeal(&s, "+79130000031", None, None).await;
    let card = get(&s, &format!("/appeals/{a}"), &sup).await;
    assert_eq!(card.status, StatusCode::OK);
    assert!(
        card.body.contains("<dd>Городская справочная</dd>"),
        "{}",
        card.body
    );
    // the registry's line filter offers the lines by name
    let list = get(&s, "/registry?line=city", &sup).await;
    assert!(
        list.body
            .contains("<option value=\"city\" selected>Городская справочная</option>"),
        "{}",
        list.body
    );
    assert!(list.body.contains(&a.to_string()));
    assert_eq!(crate::labels::Labels::default().line("gone"), "gone");
}
