//! Access through the router, on SQLite and (under `scripts/with-postgres.sh`) PostgreSQL:
//! the login form, sessions surviving a restart, CSRF refusals, lock-out per account and per
//! address, API tokens, bad account input, retention, an audit row for every kind of
//! change, and the walk of every route with every role.

use std::net::SocketAddr;

use appeals::{AuditFilter, Role};
use axum::extract::ConnectInfo;
use sqlx::Executor;

use super::*;

/// A database for one case: its URL and the folder of its spool (and SQLite file).
pub(super) struct Db {
    url: String,
    dir: tempfile::TempDir,
}

pub(super) fn sqlite_db() -> Db {
    let dir = tempfile::tempdir().unwrap();
    Db {
        url: format!("sqlite://{}", dir.path().join("hotline.db").display()),
        dir,
    }
}

pub(super) async fn postgres_db(case: &str) -> Option<Db> {
    let Ok(admin) = std::env::var("HOTLINE_TEST_PG_URL") else {
        println!("SKIPPED {case} on PostgreSQL: HOTLINE_TEST_PG_URL is not set");
        return None;
    };
    let name = format!("t_{}", uuid::Uuid::now_v7().simple());
    let pool = appeals::db::connect(&admin, 1, Duration::from_secs(10))
        .await
        .unwrap();
    pool.execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .unwrap();
    pool.close().await;
    let base = admin.split('?').next().unwrap();
    Some(Db {
        url: format!("{}/{}", &base[..base.rfind('/').unwrap()], name),
        dir: tempfile::tempdir().unwrap(),
    })
}

macro_rules! on_both {
    ($case:ident) => {
        mod $case {
            #[tokio::test]
            async fn sqlite() {
                super::$case(super::sqlite_db()).await;
            }
            #[tokio::test]
            async fn postgres() {
                if let Some(db) = super::postgres_db(stringify!($case)).await {
                    super::$case(db).await;
                }
            }
        }
    };
}

/// The admin state on `db`, with `access` settings and a fresh store (a "restart" when
/// called again on the same database).
pub(super) async fn state_on(db: &Db, access: AccessSettings) -> AdminState {
    let store = Store::connect(&db.url).await.unwrap();
    let writer = AppealWriter::start(WriterConfig::new(
        db.url.clone(),
        db.dir.path().join("spool"),
    ))
    .unwrap();
    let mut state = state_with(writer, TOKEN);
    state.access = Arc::new(access);
    state.store.set(store).unwrap();
    state
}

fn store(s: &AdminState) -> &Store {
    s.store.get().unwrap()
}

fn from(addr: &str, mut r: Request<Body>) -> Request<Body> {
    let a: SocketAddr = format!("{addr}:40000").parse().unwrap();
    r.extensions_mut().insert(ConnectInfo(a));
    r
}

fn form(login: &str, password: &str) -> String {
    format!(
        "login={}&password={}",
        urlencode(login),
        urlencode(password)
    )
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn login_from(s: &AdminState, addr: &str, login: &str, password: &str) -> Answer {
    send(
        s,
        from(
            addr,
            req(
                "POST",
                "/login",
                &form(login, password),
                &[("content-type", "application/x-www-form-urlencoded")],
            ),
        ),
    )
    .await
}

/// Logs in: the cookie header to send back.
async fn session(s: &AdminState, login: &str, password: &str) -> String {
    let a = login_from(s, "127.0.0.1", login, password).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    let set = a.headers["set-cookie"].to_str().unwrap();
    set.split(';').next().unwrap().to_owned()
}

/// The CSRF token of the landing page's logout form.
async fn csrf_of(s: &AdminState, cookie: &str) -> String {
    let root = send(s, req("GET", "/", "", &[("cookie", cookie)])).await;
    assert_eq!(root.status, StatusCode::SEE_OTHER);
    let to = root.headers["location"].to_str().unwrap().to_owned();
    let home = send(s, req("GET", &to, "", &[("cookie", cookie)])).await;
    assert_eq!(home.status, StatusCode::OK, "{to}");
    let needle = "name=\"csrf\" value=\"";
    let at = home.body.find(needle).unwrap() + needle.len();
    home.body[at..at + home.body[at..].find('"').unwrap()].to_owned()
}

async fn audit_actions(s: &AdminState) -> Vec<(String, String)> {
    store(s)
        .audit_search(&AuditFilter {
            limit: 10_000,
            ..AuditFilter::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.entry.action, r.entry.actor))
        .collect()
}

on_both!(login_sessions_and_csrf);
async fn login_sessions_and_csrf(db: Db) {
    let s = state_on(&db, AccessSettings::default()).await;
    make_user(&s, "op1", Role::Operator, "op1-secret").await;

    let page = send(&s, req("GET", "/", "", &[])).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Вход в систему") && page.body.contains("<label for=\"login\">"));

    let wrong = login_from(&s, "127.0.0.1", "op1", "op1-wrong").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.body.contains("Неверное имя пользователя или пароль"));
    assert!(wrong.headers.get("set-cookie").is_none());

    let ok = login_from(&s, "127.0.0.1", "op1", "op1-secret").await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER);
    assert_eq!(ok.headers["location"], "/");
    let set = ok.headers["set-cookie"].to_str().unwrap();
    assert!(set.starts_with("hotline_session="), "{set}");
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attr), "{set}");
    }
    assert!(!set.contains("Secure"), "no TLS here: {set}");
    let cookie = set.split(';').next().unwrap().to_owned();
    // the database keeps only the session id's hash
    let value = cookie.trim_start_matches("hotline_session=");
    let rows = sqlx::query("SELECT id_hash FROM user_sessions")
        .fetch_all(store(&s).pool())
        .await
        .unwrap();
    let hashes: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(hashes, [crate::accounts::secret_hash(value)]);

    let root = send(&s, req("GET", "/", "", &[("cookie", &cookie)])).await;
    assert_eq!(root.status, StatusCode::SEE_OTHER);
    assert_eq!(root.headers["location"], "/desk");
    let home = send(&s, req("GET", "/desk", "", &[("cookie", &cookie)])).await;
    assert_eq!(home.status, StatusCode::OK);
    assert!(home.body.contains("<span id=\"user-name\">Имя op1</span>"));
    assert!(home.body.contains("data-role=\"operator\""));
    let me = send(&s, req("GET", "/api/v1/me", "", &[("cookie", &cookie)])).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.json()["id"], "op1");
    assert_eq!(me.json()["role"], "operator");
    assert_eq!(me.json()["via"], "session");

    // a state-changing request with the cookie needs its CSRF token
    let no_csrf = send(
        &s,
        req(
            "POST",
            "/api/v1/operators/op1/login",
            "",
            &[("cookie", &cookie)],
        ),
    )
    .await;
    assert_eq!(no_csrf.status, StatusCode::FORBIDDEN);
    assert!(no_csrf.error().contains("CSRF"));
    let bad = send(
        &s,
        req(
            "POST",
            "/api/v1/operators/op1/login",
            "",
            &[("cookie", &cookie), ("x-csrf-token", "forged")],
        ),
    )
    .await;
    assert_eq!(bad.status, StatusCode::FORBIDDEN);
    let csrf = csrf_of(&s, &cookie).await;
    let good = send(
        &s,
        req(
            "POST",
            "/api/v1/operators/op1/login",
            "",
            &[("cookie", &cookie), ("x-csrf-token", &csrf)],
        ),
    )
    .await;
    assert_eq!(good.status, StatusCode::OK, "{}", good.body);

    // a login form posted from another site is refused
    let cross = send(
        &s,
        req(
            "POST",
            "/login",
            &form("op1", "op1-secret"),
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("host", "127.0.0.1:8080"),
                ("origin", "https://evil.example"),
            ],
        ),
    )
    .await;
    assert_eq!(cross.status, StatusCode::FORBIDDEN);

    // the session lives in the database: a restarted daemon knows it
    let restarted = state_on(&db, AccessSettings::default()).await;
    let me = send(
        &restarted,
        req("GET", "/api/v1/me", "", &[("cookie", &cookie)]),
    )
    .await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);
    // …within its absolute lifetime only
    let expired = state_on(
        &db,
        AccessSettings {
            session_max: chrono::Duration::zero(),
            ..AccessSettings::default()
        },
    )
    .await;
    let me = send(
        &expired,
        req("GET", "/api/v1/me", "", &[("cookie", &cookie)]),
    )
    .await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED);

    // logout needs the form's CSRF token, then the cookie is worth nothing
    let forged = send(
        &restarted,
        req(
            "POST",
            "/logout",
            "csrf=forged",
            &[
                ("cookie", &cookie),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
        ),
    )
    .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let out = send(
        &restarted,
        req(
            "POST",
            "/logout",
            &format!("csrf={csrf}"),
            &[
                ("cookie", &cookie),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
        ),
    )
    .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert!(out.headers["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    let me = send(
        &restarted,
        req("GET", "/api/v1/me", "", &[("cookie", &cookie)]),
    )
    .await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED);

    let actions = audit_actions(&s).await;
    for (action, actor) in [
        ("login_refused", "op1"),
        ("login_ok", "op1"),
        ("operator_changed", "op1"),
        ("logout", "op1"),
    ] {
        assert!(
            actions.iter().any(|(a, who)| a == action && who == actor),
            "{action} by {actor} not in {actions:?}"
        );
    }
}

on_both!(many_demo_operators_at_first_start);
/// A first start with 200 demo operators: the store answers while their passwords are
/// hashed, the one log line's logins are few, and every operator can then log in.
async fn many_demo_operators_at_first_start(db: Db) {
    let ops: DemoOperators = (1..=200)
        .map(|i| {
            (
                format!("d{i:03}"),
                format!("Оператор {i}"),
                Some(format!("pw-d{i:03}-secret")),
            )
        })
        .collect();
    let writer = AppealWriter::start(WriterConfig::new(
        db.url.clone(),
        db.dir.path().join("spool"),
    ))
    .unwrap();
    let state = state_with(writer.clone(), TOKEN);
    let stop = CancellationToken::new();
    let task = connect_store(
        db.url.clone(),
        state.store.clone(),
        stop.clone(),
        Some(ops.clone()),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while state.store.get().is_none() {
        assert!(Instant::now() < deadline, "the store was never connected");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // 202 argon2id hashes take seconds: the store routes answer before they are done
    let (users, _) = store(&state).user_counts().await.unwrap();
    assert!(
        users < 202,
        "{users} accounts made before the store was offered"
    );
    assert_eq!(
        call(&state, "GET", "/api/v1/appeals", "").await.status,
        StatusCode::OK
    );
    task.await.unwrap();
    assert_eq!(store(&state).user_counts().await.unwrap(), (202, 1));

    // every operator's password verifies (on as many threads as there are cores)
    let mut hashes = Vec::new();
    for (login, _, password) in &ops {
        let (u, hash) = store(&state).user_with_hash(login).await.unwrap().unwrap();
        assert_eq!(u.role, Role::Operator);
        hashes.push((password.clone().unwrap(), hash));
    }
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let checks = hashes.chunks(hashes.len().div_ceil(workers)).map(|c| {
        let c = c.to_vec();
        tokio::task::spawn_blocking(move || {
            c.iter()
                .filter(|(p, h)| crate::accounts::verify_password(p, h))
                .count()
        })
    });
    let verified: usize = futures_util::future::join_all(checks)
        .await
        .into_iter()
        .map(Result::unwrap)
        .sum();
    assert_eq!(verified, 200);
    // and the first, the last and the admin log in through the form
    for (login, password) in [
        ("d001", "pw-d001-secret"),
        ("d200", "pw-d200-secret"),
        ("admin", "admin-secret"),
    ] {
        session(&state, login, password).await;
    }

    let made: Vec<String> = (1..=202).map(|i| format!("x{i}")).collect();
    let shown = crate::accounts::demo_logins_shown(&made);
    assert_eq!(shown, "x1, x2, x3, x4, x5, x6, x7, x8 and 194 more");
    stop.cancel();
    writer.shutdown().await;
}

on_both!(lockout_per_account_and_address);
async fn lockout_per_account_and_address(db: Db) {
    let s = state_on(&db, AccessSettings::default()).await;
    // before any account exists (a first start still making its demo accounts) a login is
    // told to come back, and counts toward no lock-out
    for _ in 0..6 {
        let early = login_from(&s, "10.0.0.1", "admin", "admin-secret").await;
        assert_eq!(
            early.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            early.body
        );
        assert!(
            early.body.contains("Учётных записей пока нет"),
            "{}",
            early.body
        );
    }
    make_user(&s, "op1", Role::Operator, "op1-secret").await;
    // not locked by the early tries
    assert!(!session(&s, "op1", "op1-secret").await.is_empty());
    for _ in 0..4 {
        let a = login_from(&s, "10.0.0.1", "op1", "wrong-password").await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    }
    let fifth = login_from(&s, "10.0.0.1", "op1", "wrong-password").await;
    assert_eq!(fifth.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(fifth.body.contains("заблокирован"), "{}", fifth.body);
    // locked: even the right password, from anywhere, is refused with the same message
    let right = login_from(&s, "10.0.0.9", "op1", "op1-secret").await;
    assert_eq!(right.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(right.headers.get("set-cookie").is_none());
    // a login that does not exist locks the same way: the answer does not tell
    let mut ghost = None;
    for _ in 0..5 {
        ghost = Some(login_from(&s, "10.0.0.2", "ghost", "wrong-password").await);
    }
    let ghost = ghost.unwrap();
    assert_eq!(ghost.status, fifth.status);
    let message = |b: &str| {
        let at = b.find("role=\"alert\"").unwrap();
        b[at..at + b[at..].find("</p>").unwrap()].to_owned()
    };
    assert_eq!(message(&ghost.body), message(&fifth.body));
    // the lock outlives a restart (it is in the database)
    let restarted = state_on(&db, AccessSettings::default()).await;
    let still = login_from(&restarted, "10.0.0.9", "op1", "op1-secret").await;
    assert_eq!(still.status, StatusCode::TOO_MANY_REQUESTS);

    // per address: failures for different logins from one address lock the address
    let strict = state_on(
        &db,
        AccessSettings {
            address_lockout_failures: 3,
            ..AccessSettings::default()
        },
    )
    .await;
    make_user(&strict, "op2", Role::Operator, "op2-secret").await;
    for name in ["a1", "a2", "a3"] {
        login_from(&strict, "10.0.0.3", name, "wrong-password").await;
    }
    let blocked = login_from(&strict, "10.0.0.3", "op2", "op2-secret").await;
    assert_eq!(blocked.status, StatusCode::TOO_MANY_REQUESTS);
    let elsewhere = login_from(&strict, "10.0.0.4", "op2", "op2-secret").await;
    assert_eq!(elsewhere.status, StatusCode::SEE_OTHER);
    let refused = audit_actions(&s)
        .await
        .iter()
        .filter(|(a, _)| a == "login_refused")
        .count();
    assert!(refused >= 14, "{refused}");
}

on_both!(users_and_tokens_through_the_api);
async fn users_and_tokens_through_the_api(db: Db) {
    let s = state_on(&db, AccessSettings::default()).await;
    let admin = format!("Bearer {}", user_token(&s, "boss", Role::Admin).await);
    let auth = [("authorization", admin.as_str())];
    let post = |path: &'static str, body: String| {
        let s = s.clone();
        let admin = admin.clone();
        async move {
            send(
                &s,
                req("POST", path, &body, &[("authorization", admin.as_str())]),
            )
            .await
        }
    };
    let before = store(&s).users().await.unwrap().len();
    let audit_before = audit_actions(&s).await.len();
    // bad input: 400 / 422 naming the field, nothing written
    assert_eq!(
        post("/api/v1/users", "{\"login\": ".into()).await.status,
        StatusCode::BAD_REQUEST
    );
    for (body, field) in [
        (
            json!({"login": "x".repeat(65), "display_name": "X", "role": "operator", "password": "long-enough-1"}),
            "login",
        ),
        (
            json!({"login": "ok", "display_name": "я".repeat(201), "role": "operator", "password": "long-enough-1"}),
            "display_name",
        ),
        (
            json!({"login": "ok", "display_name": "X", "role": "root", "password": "long-enough-1"}),
            "role",
        ),
        (
            json!({"login": "ok", "display_name": "X", "role": "operator", "password": "short"}),
            "password",
        ),
        (
            json!({"login": "ok", "display_name": "X", "role": "operator", "password": "1234567890"}),
            "password",
        ),
        (
            json!({"login": "ok", "display_name": "X", "role": "organisation", "password": "long-enough-1"}),
            "organisation_id",
        ),
        (
            json!({"login": "ok", "display_name": "X", "role": "organisation",
                   "organisation_id": "tc-nowhere", "password": "long-enough-1"}),
            "organisation_id",
        ),
    ] {
        let a = post("/api/v1/users", body.to_string()).await;
        assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(a.json()["field"], field, "{}", a.body);
    }
    assert_eq!(store(&s).users().await.unwrap().len(), before);
    assert_eq!(audit_actions(&s).await.len(), audit_before);

    let made = post(
        "/api/v1/users",
        json!({"login": "ivanova", "display_name": "Иванова А. П.", "role": "supervisor", "password": "Vesna-2026-long"}).to_string(),
    )
    .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    assert!(!made.body.contains("Vesna"));
    let (_, hash) = store(&s).user_with_hash("ivanova").await.unwrap().unwrap();
    assert!(hash.starts_with("$argon2id$") && !hash.contains("Vesna"));
    let again = post(
        "/api/v1/users",
        json!({"login": "ivanova", "display_name": "X", "role": "operator", "password": "Vesna-2026-long"}).to_string(),
    )
    .await;
    assert_eq!(again.status, StatusCode::CONFLICT);

    // a token for her: shown once, stored hashed, acts with her role, revocable
    let t = post(
        "/api/v1/users/ivanova/tokens",
        json!({"name": "script"}).to_string(),
    )
    .await;
    assert_eq!(t.status, StatusCode::CREATED, "{}", t.body);
    let token = t.json()["token"].as_str().unwrap().to_owned();
    let token_id = t.json()["info"]["id"].as_str().unwrap().to_owned();
    let bearer = format!("Bearer {token}");
    let me = send(
        &s,
        req("GET", "/api/v1/me", "", &[("authorization", &bearer)]),
    )
    .await;
    assert_eq!(me.json()["id"], "ivanova");
    assert_eq!(me.json()["role"], "supervisor");
    let list = send(&s, req("GET", "/api/v1/users/ivanova/tokens", "", &auth)).await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(!list.body.contains(&token));
    let stored: Vec<String> = sqlx::query("SELECT token_hash FROM api_tokens")
        .fetch_all(store(&s).pool())
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(stored.contains(&crate::accounts::secret_hash(&token)));
    assert!(!stored.contains(&token));
    // a supervisor may not manage users
    let denied = send(
        &s,
        req("GET", "/api/v1/users", "", &[("authorization", &bearer)]),
    )
    .await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    let revoked = send(
        &s,
        req("DELETE", &format!("/api/v1/tokens/{token_id}"), "", &auth),
    )
    .await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.body);
    let me = send(
        &s,
        req("GET", "/api/v1/me", "", &[("authorization", &bearer)]),
    )
    .await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED);

    // changes: a weak password is 422, disabling ends her sessions
    let weak = send(
        &s,
        req(
            "PATCH",
            "/api/v1/users/ivanova",
            &json!({"password": "aaaaaaaaaaaa"}).to_string(),
            &auth,
        ),
    )
    .await;
    assert_eq!(weak.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(weak.json()["field"], "password");
    let cookie = session(&s, "ivanova", "Vesna-2026-long").await;
    let off = send(
        &s,
        req(
            "PATCH",
            "/api/v1/users/ivanova",
            &json!({"disabled": true}).to_string(),
            &auth,
        ),
    )
    .await;
    assert_eq!(off.status, StatusCode::OK, "{}", off.body);
    assert_eq!(off.json()["disabled"], true);
    let me = send(&s, req("GET", "/api/v1/me", "", &[("cookie", &cookie)])).await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED);
    let login = login_from(&s, "127.0.0.1", "ivanova", "Vesna-2026-long").await;
    assert_eq!(login.status, StatusCode::UNAUTHORIZED);
    // the last enabled admin stays one
    let last = send(
        &s,
        req(
            "PATCH",
            "/api/v1/users/boss",
            &json!({"role": "operator"}).to_string(),
            &auth,
        ),
    )
    .await;
    assert_eq!(last.status, StatusCode::CONFLICT);

    let actions = audit_actions(&s).await;
    for action in [
        "user_created",
        "token_created",
        "token_revoked",
        "user_changed",
    ] {
        assert!(
            actions.iter().any(|(a, who)| a == action && who == "boss"),
            "{action} not in {actions:?}"
        );
    }
}

on_both!(every_change_is_audited_and_retention_runs);
async fn every_change_is_audited_and_retention_runs(db: Db) {
    let rec_dir = db.dir.path().join("recordings");
    std::fs::create_dir_all(&rec_dir).unwrap();
    let s = state_on(
        &db,
        AccessSettings {
            recordings_days: 30,
            mask_callers_days: 60,
            recordings_dir: rec_dir.clone(),
            ..AccessSettings::default()
        },
    )
    .await;
    let admin = format!("Bearer {}", user_token(&s, "boss", Role::Admin).await);
    let auth = [("authorization", admin.as_str())];
    let now = Utc::now();
    let old = now - chrono::Duration::days(90);
    let mid = now - chrono::Duration::days(45);
    let writer = s.writer.clone();
    let appeal = |at: DateTime<Utc>, caller: &str, file: &str| {
        let id = writer.create(NewAppeal {
            call_id: format!("call-{}", uuid::Uuid::now_v7()),
            line: "city".into(),
            caller_number: caller.into(),
            arrived_at: at,
        });
        std::fs::write(rec_dir.join(file), b"RIFF....WAVE").unwrap();
        writer.update(
            id,
            AppealUpdate {
                recording: Some(file.into()),
                operator: Some("op1".into()),
                ..AppealUpdate::default()
            },
        );
        id
    };
    let a_old = appeal(old, "+79131234567", "old.wav");
    let a_mid = appeal(mid, "+79139876543", "mid.wav");
    let a_new = appeal(now, "+79130000011", "new.wav");
    // the old appeal's callback, and its number on the timeline
    writer.callback(appeals::NewCallback {
        appeal_id: a_old,
        number: "+79131234567".into(),
        queue: None,
        requested_at: old,
        due_at: None,
    });
    writer.event(
        a_old,
        appeals::EventKind::CallbackRequested,
        json!({ "number": "+79131234567" }),
    );
    assert!(writer.flushed(Duration::from_secs(10)).await);

    // an appeal changed, a recording fetched, a report exported
    let p = send(
        &s,
        req(
            "PATCH",
            &format!("/api/v1/appeals/{a_new}"),
            r#"{"version":1,"status":"in_progress","notes":"позвонить вечером"}"#,
            &auth,
        ),
    )
    .await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    let wav = send(
        &s,
        req(
            "GET",
            &format!("/api/v1/appeals/{a_new}/recording"),
            "",
            &auth,
        ),
    )
    .await;
    assert_eq!(wav.status, StatusCode::OK);
    assert_eq!(wav.headers["content-type"], "audio/wav");
    let csv = send(
        &s,
        req("GET", "/api/v1/reports/daily?format=csv", "", &auth),
    )
    .await;
    assert_eq!(csv.status, StatusCode::OK);

    // retention: recordings older than 30 days go, numbers older than 60 days are masked
    let run = send(&s, req("POST", "/api/v1/retention/run", "", &auth)).await;
    assert_eq!(run.status, StatusCode::OK, "{}", run.body);
    assert_eq!(run.json()["recordings_deleted"], 2);
    assert_eq!(run.json()["appeals_masked"], 1);
    assert!(!rec_dir.join("old.wav").exists() && !rec_dir.join("mid.wav").exists());
    assert!(rec_dir.join("new.wav").exists());
    let st = store(&s).clone();
    let get = |id| {
        let st = st.clone();
        async move { st.get(id).await.unwrap().unwrap().appeal }
    };
    let (o, m, n) = (get(a_old).await, get(a_mid).await, get(a_new).await);
    assert_eq!(o.caller_number, "+7********67");
    assert_eq!(o.recording, None);
    assert_eq!(run.json()["callbacks_masked"], 1);
    let cbs = st.callbacks(None).await.unwrap();
    assert!(cbs.iter().all(|c| c.number != "+79131234567"), "{cbs:?}");
    let timeline = st.get(a_old).await.unwrap().unwrap().events;
    assert!(
        timeline
            .iter()
            .all(|e| !e.data.to_string().contains("9131234567")),
        "{timeline:?}"
    );
    assert_eq!(m.caller_number, "+79139876543");
    assert_eq!(m.recording, None);
    assert_eq!(n.recording.as_deref(), Some("new.wav"));
    let gone = send(
        &s,
        req(
            "GET",
            &format!("/api/v1/appeals/{a_old}/recording"),
            "",
            &auth,
        ),
    )
    .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    // a second run finds nothing more to do, and is recorded all the same
    let again = send(&s, req("POST", "/api/v1/retention/run", "", &auth)).await;
    assert_eq!(again.json()["recordings_deleted"], 0);
    assert_eq!(again.json()["appeals_masked"], 0);

    let audit = send(&s, req("GET", "/api/v1/audit?limit=1000", "", &auth)).await;
    assert_eq!(audit.status, StatusCode::OK);
    let rows = audit.json()["audit"].as_array().unwrap().clone();
    let find = |action: &str| {
        rows.iter()
            .find(|r| r["action"] == action)
            .unwrap_or_else(|| panic!("no {action} in {rows:?}"))
            .clone()
    };
    let changed = find("appeal_changed");
    assert_eq!(changed["actor"], "boss");
    assert_eq!(changed["target"], a_new.to_string());
    assert_eq!(
        changed["details"]["status"],
        json!({"from": "new", "to": "in_progress"})
    );
    // the notes' text is not copied into the log
    assert!(!changed.to_string().contains("вечером"));
    assert_eq!(find("recording_fetched")["target"], a_new.to_string());
    assert_eq!(find("export")["details"]["what"], "daily_report");
    let runs: Vec<&Value> = rows
        .iter()
        .filter(|r| r["action"] == "retention_run")
        .collect();
    assert_eq!(runs.len(), 2);
    assert!(
        !audit.body.contains("9131234567"),
        "no caller number in the log"
    );
    // filters and CSV (reading the log as CSV is an export itself)
    let only = send(
        &s,
        req(
            "GET",
            "/api/v1/audit?action=retention_run&actor=boss",
            "",
            &auth,
        ),
    )
    .await;
    assert_eq!(only.json()["audit"].as_array().unwrap().len(), 2);
    let csv = send(&s, req("GET", "/api/v1/audit?format=csv", "", &auth)).await;
    assert_eq!(csv.status, StatusCode::OK);
    assert!(csv
        .body
        .starts_with("id,at,actor,role,address,action,target,details\r\n"));
    assert!(csv.body.contains(",appeal_changed,"));
    let exports = store(&s)
        .audit_search(&AuditFilter {
            action: Some("export".into()),
            limit: 100,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert!(exports.iter().any(|e| e.entry.details["what"] == "audit"));
    let bad = send(&s, req("GET", "/api/v1/audit?from=yesterday", "", &auth)).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn every_route_has_a_permission_and_the_audit_log_is_read_only() {
    let routes = route_list();
    // one line per route: the router would panic on a repeated (method, path), and the
    // permission lookup would only ever see the first line
    for (i, (m, p)) in routes.iter().enumerate() {
        assert!(
            !routes[..i].contains(&(m, p)),
            "{m} {p} has two lines in permissions::TABLE"
        );
        assert!(
            ["GET", "POST", "PATCH", "DELETE"].contains(m),
            "{m} {p}: unexpected method"
        );
        assert_eq!(permissions::rule(m, p), Some(permissions::TABLE[i].rule));
    }
    // a route the router serves without a line is refused to everyone
    let db = sqlite_db();
    let state = state_on(&db, AccessSettings::default()).await;
    let app = axum::Router::new()
        .route("/unlisted", axum::routing::get(|| async { "served" }))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            super::access::guard,
        ))
        .with_state(state);
    let r = tower::ServiceExt::oneshot(
        app,
        axum::http::Request::get("/unlisted")
            .body(axum::body::Body::empty())
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // no route can change or delete the audit log
    for r in permissions::TABLE {
        if r.path.contains("audit") {
            assert_eq!(r.method, "GET", "{:?}", r);
        }
    }
}

/// Every route of the OpenAPI document with every role: allowed (past the permission
/// check), 403, and 401 without credentials.
#[tokio::test]
async fn route_walk_every_route_with_every_role() {
    let db = sqlite_db();
    let s = state_on(&db, AccessSettings::default()).await;
    let mut tokens = Vec::new();
    for (id, role) in [
        ("op1", Role::Operator),
        ("sup", Role::Supervisor),
        ("adm", Role::Admin),
        ("org", Role::Organisation),
    ] {
        tokens.push((role, user_token(&s, id, role).await));
    }
    // an appeal op1 handled, so the operator's own-appeal routes let them through
    let appeal = s.writer.create(NewAppeal {
        call_id: "walk".into(),
        line: "city".into(),
        caller_number: "+79130000000".into(),
        arrived_at: Utc::now(),
    });
    s.writer.update(
        appeal,
        AppealUpdate {
            operator: Some("op1".into()),
            ..AppealUpdate::default()
        },
    );
    assert!(s.writer.flushed(Duration::from_secs(10)).await);
    // …and routed to the organisation account's organisation, so its routes let it through
    store(&s)
        .update_case(
            appeal,
            None,
            &appeals::CaseChange {
                organisation: Some(Some("tc-1".into())),
                ..Default::default()
            },
            "test",
        )
        .await
        .unwrap();

    let doc: Value = serde_json::from_str(OPENAPI).unwrap();
    let mut walked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let method = method.to_ascii_uppercase();
            let rule = permissions::rule(&method, path)
                .unwrap_or_else(|| panic!("{method} {path} has no permission"));
            let concrete =
                if path.starts_with("/api/v1/operators/") || path.starts_with("/api/v1/users/") {
                    path.replace("{id}", "op1")
                } else if path.starts_with("/api/v1/tokens/") {
                    path.replace("{id}", &uuid::Uuid::now_v7().to_string())
                } else {
                    path.replace("{id}", &appeal.to_string())
                        .replace("{list}", "mine")
                };
            let body = match (method.as_str(), path.as_str()) {
                ("PATCH", p) if p.starts_with("/api/v1/users") => r#"{"display_name":"X"}"#,
                ("PATCH", _) => r#"{"notes":"x"}"#,
                _ => "",
            };
            let anonymous = send(&s, req(&method, &concrete, body, &[])).await;
            match rule {
                permissions::Rule::Open | permissions::Rule::Page => assert!(
                    ![401, 403].contains(&anonymous.status.as_u16()),
                    "{method} {path} without credentials: {}",
                    anonymous.status
                ),
                permissions::Rule::Partner => assert!(
                    [401, 403].contains(&anonymous.status.as_u16()),
                    "{method} {path}: {}",
                    anonymous.status
                ),
                permissions::Rule::Roles(_) | permissions::Rule::PageFor(_) => {
                    let want = if matches!(rule, permissions::Rule::PageFor(_)) {
                        // a page sends whoever is not signed in to the login page
                        StatusCode::SEE_OTHER
                    } else {
                        StatusCode::UNAUTHORIZED
                    };
                    assert_eq!(
                        anonymous.status, want,
                        "{method} {path} without credentials"
                    );
                    for (role, token) in &tokens {
                        let a = send(
                            &s,
                            req(
                                &method,
                                &concrete,
                                body,
                                &[("authorization", &format!("Bearer {token}"))],
                            ),
                        )
                        .await;
                        if permissions::grant(rule, *role).is_some() {
                            assert!(
                                ![401, 403].contains(&a.status.as_u16()),
                                "{method} {path} as {role}: {} {}",
                                a.status,
                                a.body
                            );
                        } else {
                            assert_eq!(
                                a.status,
                                StatusCode::FORBIDDEN,
                                "{method} {path} as {role}: {}",
                                a.body
                            );
                        }
                    }
                }
            }
            walked += 1;
        }
    }
    assert_eq!(walked, route_list().len());

    // an operator keeps to their own: another's state, appeals they did not handle
    let op = format!("Bearer {}", tokens[0].1);
    let other = send(
        &s,
        req(
            "POST",
            "/api/v1/operators/op2/pause",
            "",
            &[("authorization", &op)],
        ),
    )
    .await;
    assert_eq!(other.status, StatusCode::FORBIDDEN);
    let theirs = s.writer.create(NewAppeal {
        call_id: "other".into(),
        line: "city".into(),
        caller_number: "+79130000001".into(),
        arrived_at: Utc::now(),
    });
    assert!(s.writer.flushed(Duration::from_secs(10)).await);
    let a = send(
        &s,
        req(
            "GET",
            &format!("/api/v1/appeals/{theirs}"),
            "",
            &[("authorization", &op)],
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    let list = send(
        &s,
        req("GET", "/api/v1/appeals", "", &[("authorization", &op)]),
    )
    .await;
    assert_eq!(list.json()["total"], 1);
    let ops = send(
        &s,
        req("GET", "/api/v1/operators", "", &[("authorization", &op)]),
    )
    .await;
    assert_eq!(ops.json()["operators"].as_array().unwrap().len(), 1);
}

/// Issue 12's Minsk flow through the API on `config/examples/minsk-139`: a citizen of the
/// Moscow district asks for home care, the suggested destination is that district's
/// territorial centre, the operator forwards it, the centre's own organisation account
/// (made through the users API) marks it done; another centre's account neither sees nor
/// changes it; an application past its due date is on `overdue`.
async fn minsk_home_care_to_the_territorial_centre_and_back(db: Db) {
    let s = state_on(&db, AccessSettings::default()).await;
    s.directory.set(Arc::new(super::minsk_directory()));
    let op1 = user_token(&s, "op1", Role::Operator).await;
    let sup = user_token(&s, "sup1", Role::Supervisor).await;
    let admin = |method: &'static str, path: String, body: String| {
        let s = s.clone();
        async move { call(&s, method, &path, &body).await }
    };
    // the centres' accounts, through the users API, each with its organisation
    let mut centre = std::collections::HashMap::new();
    for (login, org) in [
        ("tc-moskovsky", "tcson-moskovsky"),
        ("tc-leninsky", "tcson-leninsky"),
    ] {
        let made = admin(
            "POST",
            "/api/v1/users".into(),
            json!({ "login": login, "display_name": format!("ТЦСОН {org}"), "role": "organisation",
                    "organisation_id": org, "password": "Minsk-139-centre" })
            .to_string(),
        )
        .await;
        assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
        assert_eq!(made.json()["organisation_id"], org);
        let t = admin(
            "POST",
            format!("/api/v1/users/{login}/tokens"),
            r#"{"name":"centre"}"#.into(),
        )
        .await;
        assert_eq!(t.status, StatusCode::CREATED, "{}", t.body);
        centre.insert(login, t.json()["token"].as_str().unwrap().to_owned());
    }
    let (moskovsky, leninsky) = (&centre["tc-moskovsky"], &centre["tc-leninsky"]);

    // the operator makes the citizen's card; her call is linked to it by the number
    let card = call_by(
        &s,
        &op1,
        "POST",
        "/api/v1/citizens",
        r#"{"name":"Ковалёва Нина Степановна","phones":["+375 29 123-45-67"],
            "address":"ул. Есенина, 16","district":"moskovsky","birth_year":1938,
            "categories":["pensioner"],"consent":true}"#,
    )
    .await;
    assert_eq!(card.status, StatusCode::CREATED, "{}", card.body);
    let citizen = card.json()["id"].as_str().unwrap().to_owned();
    let arrived = Utc::now();
    let id = s.writer.create(NewAppeal {
        call_id: "minsk-1".into(),
        line: "minsk-139".into(),
        caller_number: "+375291234567".into(),
        arrived_at: arrived,
    });
    s.writer.update(
        id,
        AppealUpdate {
            operator: Some("op1".into()),
            ..AppealUpdate::default()
        },
    );
    assert!(s.writer.flushed(Duration::from_secs(10)).await);
    let path = format!("/api/v1/appeals/{id}");
    let a = call_by(&s, &op1, "GET", &path, "").await.json();
    assert_eq!(a["citizen_id"], citizen);

    // home care: the district comes from the card, the destination is suggested
    let a = call_by(
        &s,
        &op1,
        "PATCH",
        &path,
        &json!({ "version": a["version"], "status": "in_progress", "service": "home-care" })
            .to_string(),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let a = a.json();
    assert_eq!(a["district"], "moskovsky");
    assert_eq!(
        a["organisation"], "tcson-moskovsky",
        "the district's centre"
    );
    let due: DateTime<Utc> = a["due_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        due.timestamp_millis(),
        (arrived + chrono::Duration::days(10)).timestamp_millis()
    );
    let a = call_by(
        &s,
        &op1,
        "PATCH",
        &path,
        &json!({ "version": a["version"], "status": "forwarded" }).to_string(),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let version = a.json()["version"].clone();

    // another centre: not in its list, and neither readable nor changeable
    let list = call_by(&s, leninsky, "GET", "/api/v1/appeals", "").await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    assert_eq!(list.json()["total"], 0);
    let peek = call_by(
        &s,
        leninsky,
        "GET",
        "/api/v1/appeals?organisation=tcson-moskovsky",
        "",
    )
    .await;
    assert_eq!(peek.status, StatusCode::FORBIDDEN, "{}", peek.body);
    assert_eq!(
        call_by(&s, leninsky, "GET", &path, "").await.status,
        StatusCode::FORBIDDEN
    );
    let grab = call_by(
        &s,
        leninsky,
        "PATCH",
        &path,
        &json!({ "version": version, "status": "done" }).to_string(),
    )
    .await;
    assert_eq!(grab.status, StatusCode::FORBIDDEN, "{}", grab.body);
    // and the directory is theirs to read, citizens are not
    assert_eq!(
        call_by(&s, leninsky, "GET", "/api/v1/services", "")
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        call_by(&s, leninsky, "GET", "/api/v1/citizens", "")
            .await
            .status,
        StatusCode::FORBIDDEN
    );

    // the centre sees its application, may not reroute it, and marks it done
    let mine = call_by(&s, moskovsky, "GET", "/api/v1/appeals", "")
        .await
        .json();
    assert_eq!(mine["total"], 1);
    assert_eq!(mine["appeals"][0]["id"], id.to_string());
    let reroute = call_by(
        &s,
        moskovsky,
        "PATCH",
        &path,
        &json!({ "version": version, "organisation": "tcson-leninsky" }).to_string(),
    )
    .await;
    assert_eq!(reroute.status, StatusCode::FORBIDDEN, "{}", reroute.body);
    assert!(
        reroute.error().starts_with("organisation:"),
        "{}",
        reroute.body
    );
    let pending = call_by(
        &s,
        moskovsky,
        "PATCH",
        &path,
        &json!({ "version": version, "status": "pending", "pending_until": "2099-01-01" })
            .to_string(),
    )
    .await;
    assert_eq!(pending.status, StatusCode::FORBIDDEN, "{}", pending.body);
    let done = call_by(
        &s,
        moskovsky,
        "PATCH",
        &path,
        &json!({ "version": version, "status": "done",
                 "resolution": "Назначен социальный работник, посещения 2 раза в неделю" })
        .to_string(),
    )
    .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    let closed = call_by(&s, &op1, "GET", &path, "").await.json();
    assert_eq!(closed["status"], "done");
    assert!(closed["events"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["actor"] == "tc-moskovsky"));
    let rows = audit_of(&s, "appeal_changed").await;
    let by_centre: Vec<_> = rows.iter().filter(|r| r.actor == "tc-moskovsky").collect();
    assert_eq!(by_centre.len(), 1, "{rows:?}");
    assert_eq!(by_centre[0].role.as_deref(), Some("organisation"));
    assert_eq!(
        by_centre[0].details["status"],
        json!({ "from": "forwarded", "to": "done" })
    );
    assert_eq!(
        by_centre[0].details["resolution"],
        json!({ "changed": true })
    );

    // an application past its due date is overdue; the done one is not
    let late = s.writer.create(NewAppeal {
        call_id: "minsk-2".into(),
        line: "minsk-139".into(),
        caller_number: "+375297654321".into(),
        arrived_at: Utc::now() - chrono::Duration::days(12),
    });
    assert!(s.writer.flushed(Duration::from_secs(10)).await);
    let l = call_by(
        &s,
        &sup,
        "PATCH",
        &format!("/api/v1/appeals/{late}"),
        r#"{"version":1,"status":"in_progress","service":"home-care","district":"leninsky"}"#,
    )
    .await;
    assert_eq!(l.status, StatusCode::OK, "{}", l.body);
    assert_eq!(l.json()["organisation"], "tcson-leninsky");
    let overdue = call_by(&s, &sup, "GET", "/api/v1/worklists/overdue", "")
        .await
        .json();
    assert_eq!(super::appeal_ids(&overdue), [late.to_string()]);
    // …and in the Leninsky centre's list, not the Moscow one's
    let theirs = call_by(&s, leninsky, "GET", "/api/v1/appeals?overdue=true", "")
        .await
        .json();
    assert_eq!(theirs["appeals"][0]["id"], late.to_string());
    let ours = call_by(&s, moskovsky, "GET", "/api/v1/appeals?overdue=true", "")
        .await
        .json();
    assert_eq!(ours["total"], 0);
}

on_both!(minsk_home_care_to_the_territorial_centre_and_back);

mod pages_tests;
