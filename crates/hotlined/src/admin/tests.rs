//! The admin router driven with `tower::ServiceExt::oneshot` over a SQLite store in a temp
//! folder: auth, appeal search and paging, the PATCH workflow on the timeline, reports in
//! CSV and HTML checked against the database, operators, metrics format, the OpenAPI
//! document against the router, and the database being down at start.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use appeals::{
    AppealId, AppealUpdate, AppealWriter, NewAppeal, Outcome, ReportOptions, Store, WriterConfig,
};
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use chrono::{DateTime, FixedOffset, NaiveDate, TimeZone, Utc};
use gateway::{RegisteredContact, Stats};
use serde_json::{json, Value};
use sqlx::Row;
use tower::ServiceExt;

use super::*;
use crate::appeal_log::CallCounters;

const TOKEN: &str = "s3cret-token";

fn nsk() -> FixedOffset {
    FixedOffset::east_opt(7 * 3600).unwrap()
}

pub(super) struct Env {
    dir: tempfile::TempDir,
    pub(super) state: AdminState,
    pub(super) store: Store,
    pub(super) writer: AppealWriter,
}

fn state_with(writer: AppealWriter, token: &str) -> AdminState {
    AdminState {
        stats: Arc::new(Stats::default()),
        token: Arc::from(token),
        access: Arc::new(AccessSettings::default()),
        tls: false,
        store: StoreSlot::default(),
        writer,
        operators: Arc::new(OperatorTable::new([
            ("op1".to_owned(), "Оператор 1".to_owned()),
            ("op2".to_owned(), "Оператор 2".to_owned()),
        ])),
        queues: Arc::new(QueueBoard::new(["general".to_owned()])),
        calls: Arc::new(CallCounters::default()),
        reports: ReportSettings {
            tz: nsk(),
            options: ReportOptions::default(),
            board: Default::default(),
        },
        patch_lock: Default::default(),
        partner: None,
        reloader: None,
        acd: None,
        directory: crate::directory::DirectorySlot::new(Arc::new(shipped_directory())),
        live: crate::live::Live::new(crate::live::LiveSetup {
            operators: vec![
                ("op1".into(), "Оператор 1".into(), vec!["general".into()]),
                ("op2".into(), "Оператор 2".into(), vec!["other".into()]),
            ],
            queues: vec![
                ("general".into(), "Общие вопросы".into()),
                ("other".into(), "Другое".into()),
            ],
            ..Default::default()
        }),
        holds: Default::default(),
    }
}

/// The directory of the shipped configuration (Novosibirsk).
fn shipped_directory() -> crate::directory::Directory {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config");
    let mut problems = Vec::new();
    let d = crate::directory::load(
        &dir,
        crate::directory::Files {
            districts: Some("districts.toml"),
            organisations: Some("organisations.toml"),
            services: Some("services.toml"),
            cases: Some("cases.toml"),
        },
        &mut problems,
    );
    assert!(problems.is_empty(), "{problems:?}");
    d
}

pub(super) async fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("hotline.db").display());
    let store = Store::connect(&url).await.unwrap();
    let writer =
        AppealWriter::start(WriterConfig::new(url.clone(), dir.path().join("spool"))).unwrap();
    let state = state_with(writer.clone(), TOKEN);
    state.store.set(store.clone()).unwrap();
    Env {
        dir,
        state,
        store,
        writer,
    }
}

impl Env {
    /// Writes an appeal through the spool-first writer, as the call path does.
    pub(super) fn appeal(
        &self,
        at: DateTime<Utc>,
        line: &str,
        caller: &str,
        update: AppealUpdate,
    ) -> AppealId {
        let id = self.writer.create(NewAppeal {
            call_id: format!("call-{}", uuid::Uuid::now_v7()),
            line: line.into(),
            caller_number: caller.into(),
            arrived_at: at,
        });
        self.writer.update(id, update);
        id
    }

    pub(super) async fn flush(&self) {
        assert!(self.writer.flushed(Duration::from_secs(10)).await);
    }
}

pub(super) struct Answer {
    pub(super) status: StatusCode,
    pub(super) headers: HeaderMap,
    pub(super) body: String,
    /// The body as sent (`body` is it as text).
    pub(super) bytes: Vec<u8>,
}

impl Answer {
    pub(super) fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
    pub(super) fn error(&self) -> String {
        self.json()["error"].as_str().unwrap().to_owned()
    }
}

pub(super) async fn send(state: &AdminState, req: Request<Body>) -> Answer {
    let res = router(state.clone()).oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let stream = headers
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    let bytes = if stream {
        // a live stream never ends: what it sent first (the snapshot) is the body
        super::events_tests::first_chunk(res.into_body()).await
    } else {
        axum::body::to_bytes(res.into_body(), 1 << 24)
            .await
            .unwrap()
    };
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
        bytes: bytes.to_vec(),
    }
}

pub(super) fn req(method: &str, path: &str, body: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(path);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Body::from(body.to_owned())).unwrap()
}

/// An audit line by the tests themselves.
fn test_audit(action: &str, target: &str) -> appeals::AuditEntry {
    appeals::AuditEntry {
        at: Utc::now(),
        actor: "test".into(),
        role: None,
        address: None,
        action: action.into(),
        target: Some(target.into()),
        details: json!({}),
    }
}

/// An account with this password (tests choose it; no rules checked).
pub(super) async fn make_user(state: &AdminState, id: &str, role: appeals::Role, password: &str) {
    let audit = test_audit("user_created", id);
    state
        .store
        .get()
        .unwrap()
        .create_user(
            &appeals::NewUser {
                id: id.into(),
                display_name: format!("Имя {id}"),
                role,
                organisation_id: (role == appeals::Role::Organisation).then(|| "tc-1".into()),
                password_hash: crate::accounts::hash_password(password).unwrap(),
            },
            &audit,
        )
        .await
        .unwrap();
}

/// A new account of `role` with an API token: the token.
pub(super) async fn user_token(state: &AdminState, id: &str, role: appeals::Role) -> String {
    make_user(state, id, role, "test-password-1").await;
    let token = crate::accounts::new_api_token();
    let audit = test_audit("token_created", id);
    state
        .store
        .get()
        .unwrap()
        .create_token(id, "test", &crate::accounts::secret_hash(&token), &audit)
        .await
        .unwrap();
    token
}

/// A request with a personal API token.
pub(super) async fn call_by(
    state: &AdminState,
    token: &str,
    method: &str,
    path: &str,
    body: &str,
) -> Answer {
    let auth = format!("Bearer {token}");
    send(
        state,
        req(method, path, body, &[("authorization", auth.as_str())]),
    )
    .await
}

/// The audit rows with this action, oldest first.
pub(super) async fn audit_of(state: &AdminState, action: &str) -> Vec<appeals::AuditEntry> {
    let mut rows: Vec<appeals::AuditEntry> = state
        .store
        .get()
        .unwrap()
        .audit_search(&appeals::AuditFilter {
            action: Some(action.into()),
            limit: 10_000,
            ..appeals::AuditFilter::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.entry)
        .collect();
    rows.sort_by_key(|e| e.at);
    rows
}

/// `body` (a JSON object) with the `version` the appeal or citizen at `path` has now, as a
/// client sends it after reading the record (read with the shared token).
pub(super) async fn versioned(state: &AdminState, path: &str, body: &str) -> String {
    let now = call(state, "GET", path, "").await;
    assert_eq!(now.status, StatusCode::OK, "{path}: {}", now.body);
    let mut v: Value = serde_json::from_str(body).unwrap();
    v["version"] = now.json()["version"].clone();
    v.to_string()
}

/// `PATCH path` with `body` and the version the record has now (see [`versioned`]).
pub(super) async fn patch_now(state: &AdminState, path: &str, body: &str) -> Answer {
    let body = versioned(state, path, body).await;
    call(state, "PATCH", path, &body).await
}

/// An authorised request.
pub(super) async fn call(state: &AdminState, method: &str, path: &str, body: &str) -> Answer {
    call_as(state, method, path, body, &[]).await
}

async fn call_as(
    state: &AdminState,
    method: &str,
    path: &str,
    body: &str,
    extra: &[(&str, &str)],
) -> Answer {
    let auth = format!("Bearer {TOKEN}");
    let mut headers = vec![("authorization", auth.as_str())];
    headers.extend_from_slice(extra);
    send(state, req(method, path, body, &headers)).await
}

fn local(day: NaiveDate, h: u32, m: u32) -> DateTime<Utc> {
    nsk()
        .from_local_datetime(&day.and_hms_opt(h, m, 0).unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

fn day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 23).unwrap()
}

/// The ids of a listing's `appeals`, in its order.
fn appeal_ids(list: &Value) -> Vec<&str> {
    list["appeals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn auth_is_required_refused_and_accepted() {
    let e = env().await;
    let none = send(&e.state, req("GET", "/api/v1/appeals", "", &[])).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        none.headers["www-authenticate"].to_str().unwrap(),
        "Bearer realm=\"hotline\""
    );
    assert!(none.error().contains("bearer token"), "{}", none.body);

    for bad in [
        "Bearer wrong",
        "Bearer s3cret-toke",
        "Bearer s3cret-token2",
        "Basic czNjcmV0",
    ] {
        let a = send(
            &e.state,
            req("GET", "/api/v1/operators", "", &[("authorization", bad)]),
        )
        .await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{bad}");
        assert!(a.headers["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer"));
    }
    let wrong = send(
        &e.state,
        req(
            "GET",
            "/api/v1/appeals",
            "",
            &[("authorization", "Bearer nope")],
        ),
    )
    .await;
    assert!(wrong.headers["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("error=\"invalid_token\""));

    let ok = send(
        &e.state,
        req(
            "GET",
            "/api/v1/appeals",
            "",
            &[("authorization", &format!("bearer {TOKEN}"))],
        ),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);

    // /health and /metrics are open.
    assert_eq!(
        send(&e.state, req("GET", "/health", "", &[])).await.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "the gateway is not running in this test"
    );
    assert_eq!(
        send(&e.state, req("GET", "/metrics", "", &[])).await.status,
        StatusCode::OK
    );

    // Without a configured legacy token, no bearer (not even an empty one) is it.
    let closed = state_with(e.writer.clone(), "");
    closed.store.set(e.store.clone()).unwrap();
    for h in [
        vec![],
        vec![("authorization", "Bearer ")],
        vec![("authorization", "Bearer x")],
        vec![("authorization", "Bearer s3cret-token")],
    ] {
        let a = send(&closed, req("GET", "/api/v1/operators", "", &h)).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{h:?}");
    }
    assert_eq!(
        send(&closed, req("GET", "/metrics", "", &[])).await.status,
        StatusCode::OK
    );
}

#[test]
fn constant_time_compare() {
    assert!(constant_time_eq(b"abc", b"abc"));
    assert!(!constant_time_eq(b"abc", b"abd"));
    assert!(!constant_time_eq(b"abc", b"abcd"));
    assert!(!constant_time_eq(b"", b"a"));
    assert!(constant_time_eq(b"", b""));
}

#[tokio::test]
async fn search_filters_and_pages_newest_first() {
    let e = env().await;
    let d = day();
    let mut ids = Vec::new();
    for i in 0..7u32 {
        let line = if i % 2 == 0 { "city" } else { "regional" };
        let category = if i < 3 { "pensions" } else { "care" };
        ids.push(e.appeal(
            local(d, 9 + i, 0),
            line,
            &format!("+7913000000{i}"),
            AppealUpdate {
                category: Some(category.into()),
                ..AppealUpdate::default()
            },
        ));
    }
    // The day before, late evening local time.
    let old = e.appeal(
        local(d.pred_opt().unwrap(), 23, 30),
        "city",
        "+73830000000",
        AppealUpdate::default(),
    );
    e.flush().await;
    e.store
        .set_status(ids[1], appeals::Status::InProgress, "t")
        .await
        .unwrap();

    let all = call(&e.state, "GET", "/api/v1/appeals", "").await.json();
    assert_eq!(all["total"], 8);
    assert_eq!(all["pages"], 1);
    let got = appeal_ids(&all);
    let mut want: Vec<String> = ids.iter().rev().map(|i| i.to_string()).collect();
    want.push(old.to_string());
    assert_eq!(got, want, "newest first");

    let ids_of = |v: &Value| -> Vec<String> {
        v["appeals"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let page2 = call(&e.state, "GET", "/api/v1/appeals?per_page=3&page=2", "")
        .await
        .json();
    assert_eq!(page2["page"], 2);
    assert_eq!(page2["per_page"], 3);
    assert_eq!(page2["total"], 8);
    assert_eq!(page2["pages"], 3);
    assert_eq!(ids_of(&page2), want[3..6].to_vec());
    let page3 = call(&e.state, "GET", "/api/v1/appeals?per_page=3&page=3", "")
        .await
        .json();
    assert_eq!(ids_of(&page3), want[6..].to_vec());

    let city = call(
        &e.state,
        "GET",
        "/api/v1/appeals?line=city&from=2026-11-23",
        "",
    )
    .await
    .json();
    assert_eq!(city["total"], 4, "the day before is outside from=");
    assert!(city["appeals"]
        .as_array()
        .unwrap()
        .iter()
        .all(|a| a["line"] == "city"));
    let day_only = call(&e.state, "GET", "/api/v1/appeals?to=2026-11-22", "")
        .await
        .json();
    assert_eq!(
        ids_of(&day_only),
        vec![old.to_string()],
        "to=DAY includes that day"
    );
    let care = call(
        &e.state,
        "GET",
        "/api/v1/appeals?category=care&line=regional",
        "",
    )
    .await
    .json();
    assert_eq!(ids_of(&care), vec![ids[5].to_string(), ids[3].to_string()]);
    let status = call(&e.state, "GET", "/api/v1/appeals?status=in_progress", "")
        .await
        .json();
    assert_eq!(ids_of(&status), vec![ids[1].to_string()]);
    let caller = call(&e.state, "GET", "/api/v1/appeals?caller=0000004", "")
        .await
        .json();
    assert_eq!(ids_of(&caller), vec![ids[4].to_string()]);
    let rfc = call(
        &e.state,
        "GET",
        "/api/v1/appeals?from=2026-11-23T12:00:00%2B07:00&to=2026-11-23T14:00:00%2B07:00",
        "",
    )
    .await
    .json();
    assert_eq!(ids_of(&rfc), vec![ids[4].to_string(), ids[3].to_string()]);

    for bad in [
        "/api/v1/appeals?per_page=0",
        "/api/v1/appeals?per_page=1001",
        "/api/v1/appeals?page=0",
        "/api/v1/appeals?page=abc",
        "/api/v1/appeals?colour=red",
        "/api/v1/appeals/not-a-uuid",
    ] {
        let a = call(&e.state, "GET", bad, "").await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{bad}: {}", a.body);
        assert!(!a.error().is_empty());
    }
    // a bad filter value is 422 naming the field
    for (bad, field) in [("status=finished", "status"), ("from=yesterday", "from")] {
        let a = call(&e.state, "GET", &format!("/api/v1/appeals?{bad}"), "").await;
        assert_eq!(
            a.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{bad}: {}",
            a.body
        );
        assert_eq!(a.json()["field"], field);
    }
}

#[tokio::test]
async fn patch_is_recorded_on_the_timeline_with_the_actor() {
    let e = env().await;
    let id = e.appeal(Utc::now(), "city", "+79130000001", AppealUpdate::default());
    e.flush().await;
    let path = format!("/api/v1/appeals/{id}");

    let one = call(&e.state, "GET", &path, "").await.json();
    assert_eq!(one["status"], "new");
    assert_eq!(one["events"][0]["kind"], "created");

    // Skipping in_progress is refused, and says what is allowed.
    let refused = patch_now(&e.state, &path, r#"{"status":"done"}"#).await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert!(
        refused
            .error()
            .contains("allowed next: in_progress, declined"),
        "{}",
        refused.body
    );
    let refused = patch_now(&e.state, &path, r#"{"status":"forwarded"}"#).await;
    assert_eq!(refused.status, StatusCode::CONFLICT);

    let ivanova = format!(
        "Bearer {}",
        user_token(&e.state, "supervisor.ivanova", appeals::Role::Supervisor).await
    );
    let taken = send(
        &e.state,
        req(
            "PATCH",
            &path,
            &versioned(
                &e.state,
                &path,
                r#"{"status":"in_progress","notes":"called back, needs a social worker"}"#,
            )
            .await,
            &[("authorization", &ivanova)],
        ),
    )
    .await;
    assert_eq!(taken.status, StatusCode::OK, "{}", taken.body);
    let v = taken.json();
    assert_eq!(v["status"], "in_progress");
    assert_eq!(v["notes"], "called back, needs a social worker");
    let events = v["events"].as_array().unwrap();
    let status_ev = events
        .iter()
        .find(|e| e["kind"] == "status_changed")
        .unwrap();
    assert_eq!(status_ev["actor"], "supervisor.ivanova");
    assert_eq!(
        status_ev["data"],
        json!({"from": "new", "to": "in_progress"})
    );
    let note_ev = events.iter().find(|e| e["kind"] == "note_added").unwrap();
    assert_eq!(note_ev["actor"], "supervisor.ivanova");

    // The shared legacy token's actor is its name.
    let fwd = patch_now(
        &e.state,
        &path,
        r#"{"status":"forwarded","destination_org":"УСЗН Ленинского района"}"#,
    )
    .await;
    assert_eq!(fwd.status, StatusCode::OK, "{}", fwd.body);
    let v = fwd.json();
    assert_eq!(v["destination_org"], "УСЗН Ленинского района");
    let last = v["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["kind"], "destination_set");
    assert_eq!(last["actor"], access::LEGACY_ACTOR);

    // Back to new is never allowed.
    let back = patch_now(&e.state, &path, r#"{"status":"new"}"#).await;
    assert_eq!(back.status, StatusCode::CONFLICT);

    // The same status again changes nothing and records nothing.
    let before = e.store.get(id).await.unwrap().unwrap().events.len();
    let same = patch_now(&e.state, &path, r#"{"status":"forwarded"}"#).await;
    assert_eq!(same.status, StatusCode::OK);
    assert_eq!(e.store.get(id).await.unwrap().unwrap().events.len(), before);

    for (to, ok) in [("done", true), ("in_progress", true), ("done", true)] {
        let a = patch_now(&e.state, &path, &format!(r#"{{"status":"{to}"}}"#)).await;
        assert_eq!(a.status == StatusCode::OK, ok, "{to}: {}", a.body);
    }
    let changes: Vec<(String, String)> = e
        .store
        .get(id)
        .await
        .unwrap()
        .unwrap()
        .events
        .iter()
        .filter(|e| e.kind == appeals::EventKind::StatusChanged)
        .map(|e| {
            (
                e.data["from"].as_str().unwrap().to_owned(),
                e.data["to"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let pairs: Vec<(&str, &str)> = changes
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    assert_eq!(
        pairs,
        vec![
            ("new", "in_progress"),
            ("in_progress", "forwarded"),
            ("forwarded", "done"),
            ("done", "in_progress"),
            ("in_progress", "done"),
        ]
    );

    // Without the version it was made on an edit is refused, naming the field, and nothing
    // is written.
    let before = e.store.get(id).await.unwrap().unwrap();
    let unversioned = call(&e.state, "PATCH", &path, r#"{"status":"in_progress"}"#).await;
    assert_eq!(
        unversioned.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        unversioned.body
    );
    assert_eq!(unversioned.json()["field"], "version");
    assert!(unversioned.error().starts_with("version: required"));
    let after = e.store.get(id).await.unwrap().unwrap();
    assert_eq!(after.appeal.status, before.appeal.status);
    assert_eq!(after.events.len(), before.events.len());
    // a stale one is 409
    let stale = json!({ "notes": "late", "version": after.appeal.case.version - 1 }).to_string();
    assert_eq!(
        call(&e.state, "PATCH", &path, &stale).await.status,
        StatusCode::CONFLICT
    );

    // Bad input.
    let cases = [
        (
            r#"{"status":"closed","version":1}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (r#"{"status":"#, StatusCode::BAD_REQUEST),
        ("", StatusCode::BAD_REQUEST),
        ("{}", StatusCode::BAD_REQUEST),
        (r#"{"priority":"high"}"#, StatusCode::BAD_REQUEST),
        (r#"{"notes":5}"#, StatusCode::BAD_REQUEST),
        (
            r#"{"destination_org":"  ","version":1}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (r#"[1,2]"#, StatusCode::BAD_REQUEST),
    ];
    for (body, want) in cases {
        let a = call(&e.state, "PATCH", &path, body).await;
        assert_eq!(a.status, want, "{body}: {}", a.body);
        assert!(!a.error().is_empty());
    }
    let long = format!(r#"{{"notes":"{}","version":1}}"#, "я".repeat(10_001));
    assert_eq!(
        call(&e.state, "PATCH", &path, &long).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let missing = format!("/api/v1/appeals/{}", AppealId::new());
    assert_eq!(
        call(&e.state, "PATCH", &missing, r#"{"notes":"x","version":1}"#)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        call(&e.state, "GET", &missing, "").await.status,
        StatusCode::NOT_FOUND
    );
}

#[test]
fn transitions_table() {
    use appeals::Status;
    use appeals::Status::*;
    let allowed: Vec<_> = Status::ALL
        .iter()
        .flat_map(|a| Status::ALL.iter().map(move |b| (*a, *b)))
        .filter(|(a, b)| a.can_become(*b))
        .collect();
    assert_eq!(
        allowed,
        vec![
            (New, InProgress),
            (New, Declined),
            (InProgress, Forwarded),
            (InProgress, Pending),
            (InProgress, Done),
            (InProgress, Declined),
            (Forwarded, InProgress),
            (Forwarded, Pending),
            (Forwarded, Done),
            (Forwarded, Declined),
            (Pending, InProgress),
            (Pending, Forwarded),
            (Pending, Done),
            (Pending, Declined),
            (Done, InProgress),
            (Declined, InProgress),
        ]
    );
}

/// A day of calls: hours 8–17 local, three lines, categories, outcomes, waits and talks.
fn generate_day(e: &Env, d: NaiveDate) -> usize {
    let categories = [
        Some("pensions"),
        Some("care"),
        None,
        Some("housing & utilities"),
    ];
    let mut n = 0;
    for i in 0..60u32 {
        let at = local(d, 8 + i % 10, i % 60);
        let line = ["city", "regional", "city"][(i % 3) as usize];
        let category = categories[(i % 4) as usize].map(str::to_owned);
        let update = if i % 5 == 0 {
            AppealUpdate {
                category,
                outcome: Some(Outcome::Abandoned),
                wait_seconds: Some(i64::from(30 + i)),
                ..AppealUpdate::default()
            }
        } else if i % 7 == 0 {
            AppealUpdate {
                category,
                outcome: Some(Outcome::InfoOnly),
                ..AppealUpdate::default()
            }
        } else {
            AppealUpdate {
                category,
                answered_at: Some(at + chrono::Duration::seconds(i64::from(i % 25))),
                outcome: Some(Outcome::Answered),
                wait_seconds: Some(i64::from(i % 25)),
                talk_seconds: Some(i64::from(60 + i)),
                operator: Some(format!("op{}", 1 + i % 3)),
                ..AppealUpdate::default()
            }
        };
        e.appeal(at, line, "+79130000000", update);
        n += 1;
    }
    n
}

#[tokio::test]
async fn csv_report_has_the_columns_and_the_figures() {
    let e = env().await;
    generate_day(&e, day());
    e.flush().await;
    let a = call_as(
        &e.state,
        "GET",
        "/api/v1/reports/daily?day=2026-11-23&lang=en",
        "",
        &[("accept", "text/csv")],
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert!(a.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let mut lines = a.body.lines();
    assert_eq!(
        lines.next().unwrap().split(',').collect::<Vec<_>>(),
        vec![
            "day",
            "group",
            "key",
            "name",
            "calls",
            "answered",
            "abandoned",
            "answered_within_sl",
            "service_level",
            "avg_wait_seconds",
            "avg_wait_abandoned_seconds",
            "avg_talk_seconds",
            "overdue"
        ]
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert!(rows.iter().all(|r| r.len() == 13 && r[0] == "2026-11-23"));
    let total = rows.iter().find(|r| r[1] == "total").unwrap();
    // 12 abandoned (every 5th), 7 information only (every 7th but not 5th), 41 answered.
    assert_eq!(&total[4..7], &["60", "41", "12"]);
    let lines_rows: Vec<_> = rows.iter().filter(|r| r[1] == "line").collect();
    assert_eq!(lines_rows.len(), 2);
    assert_eq!(rows.iter().filter(|r| r[1] == "hour").count(), 24);
    // Russian unless English is asked for: the same rows under Russian names.
    let ru = call_as(
        &e.state,
        "GET",
        "/api/v1/reports/daily?day=2026-11-23",
        "",
        &[("accept", "text/csv")],
    )
    .await;
    let mut ru_lines = ru.body.lines();
    assert!(ru_lines
        .next()
        .unwrap()
        .starts_with("день,группа,ключ,название,звонков,отвечено,сброшено,"));
    let ru_total: Vec<&str> = ru_lines
        .find(|l| l.starts_with("2026-11-23,итого,"))
        .unwrap()
        .split(',')
        .collect();
    assert_eq!(&ru_total[4..7], &["60", "41", "12"]);

    // JSON by default, with the same figures.
    let j = call(&e.state, "GET", "/api/v1/reports/daily?day=2026-11-23", "")
        .await
        .json();
    assert_eq!(j["total"]["calls"], 60);
    assert_eq!(j["day"], "2026-11-23");
    // A day without calls is a report of zeros, not an error.
    let empty = call(&e.state, "GET", "/api/v1/reports/daily?day=2026-11-25", "")
        .await
        .json();
    assert_eq!(empty["total"]["calls"], 0);
    for (bad, field) in [
        ("/api/v1/reports/daily?day=23.11.2026", "day"),
        ("/api/v1/reports/daily?format=pdf", "format"),
        ("/api/v1/reports/daily?range=week", "range"),
        ("/api/v1/reports?range=year", "range"),
        ("/api/v1/reports?lang=de", "lang"),
    ] {
        let a = call(&e.state, "GET", bad, "").await;
        assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        assert_eq!(a.json()["field"], field, "{bad}");
    }
}

#[tokio::test]
async fn html_report_shows_the_figures_in_the_database() {
    let e = env().await;
    let d = day();
    let n = generate_day(&e, d);
    // Calls on the neighbouring days must not count.
    e.appeal(
        local(d.pred_opt().unwrap(), 23, 59),
        "city",
        "+7",
        AppealUpdate::default(),
    );
    e.appeal(
        local(d.succ_opt().unwrap(), 0, 0),
        "city",
        "+7",
        AppealUpdate::default(),
    );
    e.flush().await;

    let a = call(
        &e.state,
        "GET",
        "/api/v1/reports/daily?day=2026-11-23&format=html&lang=en",
        "",
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert!(a.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = a.body;

    // The figures, straight from the database.
    let (from, to) = appeals::report::day_bounds(d, nsk());
    let row = sqlx::query(
        "SELECT COUNT(*) AS calls, \
           SUM(CASE WHEN answered_at IS NOT NULL THEN 1 ELSE 0 END) AS answered, \
           SUM(CASE WHEN outcome = 'abandoned' AND answered_at IS NULL THEN 1 ELSE 0 END) AS abandoned, \
           SUM(CASE WHEN answered_at IS NOT NULL AND wait_seconds <= 20 THEN 1 ELSE 0 END) AS within, \
           AVG(CASE WHEN answered_at IS NOT NULL THEN wait_seconds * 1.0 END) AS avg_wait, \
           AVG(CASE WHEN outcome = 'abandoned' THEN wait_seconds * 1.0 END) AS avg_wait_abandoned, \
           AVG(CASE WHEN answered_at IS NOT NULL THEN talk_seconds * 1.0 END) AS avg_talk \
         FROM appeals WHERE arrived_at >= $1 AND arrived_at < $2",
    )
    .bind(from.timestamp_millis())
    .bind(to.timestamp_millis())
    .fetch_one(e.store.pool())
    .await
    .unwrap();
    let calls: i64 = row.try_get("calls").unwrap();
    let answered: i64 = row.try_get("answered").unwrap();
    let abandoned: i64 = row.try_get("abandoned").unwrap();
    let within: i64 = row.try_get("within").unwrap();
    let avg_wait: f64 = row.try_get("avg_wait").unwrap();
    let avg_wait_abandoned: f64 = row.try_get("avg_wait_abandoned").unwrap();
    let avg_talk: f64 = row.try_get("avg_talk").unwrap();
    assert_eq!(calls as usize, n);
    let sl = within as f64 / (answered + abandoned) as f64;
    for (figure, value) in [
        ("calls", calls.to_string()),
        ("answered", answered.to_string()),
        ("abandoned", abandoned.to_string()),
        ("service_level", format!("{sl:.4}")),
        ("avg_wait", format!("{avg_wait:.4}")),
        ("avg_wait_abandoned", format!("{avg_wait_abandoned:.4}")),
        ("avg_talk", format!("{avg_talk:.4}")),
    ] {
        let needle =
            format!("<div class=\"card\" data-figure=\"{figure}\" data-value=\"{value}\">");
        assert!(html.contains(&needle), "{needle} not in the page");
    }
    assert!(html.contains(&format!("{:.1}%", sl * 100.0)));

    // Per line and per hour, from the database too.
    let per_line = sqlx::query(
        "SELECT line, COUNT(*) AS n FROM appeals WHERE arrived_at >= $1 AND arrived_at < $2 GROUP BY line",
    )
    .bind(from.timestamp_millis())
    .bind(to.timestamp_millis())
    .fetch_all(e.store.pool())
    .await
    .unwrap();
    assert_eq!(per_line.len(), 2);
    for r in per_line {
        let line: String = r.try_get("line").unwrap();
        let n: i64 = r.try_get("n").unwrap();
        assert!(
            html.contains(&format!("data-key=\"{line}\" data-calls=\"{n}\"")),
            "line {line} bar"
        );
        assert!(html.contains(&format!(
            "<tr data-key=\"{line}\"><td>{line}</td><td data-figure=\"calls\">{n}</td>"
        )));
    }
    for h in 8..18u32 {
        let (hf, ht) = (local(d, h, 0), local(d, h + 1, 0));
        let r =
            sqlx::query("SELECT COUNT(*) FROM appeals WHERE arrived_at >= $1 AND arrived_at < $2")
                .bind(hf.timestamp_millis())
                .bind(ht.timestamp_millis())
                .fetch_one(e.store.pool())
                .await
                .unwrap();
        let n: i64 = r.try_get(0).unwrap();
        assert!(
            html.contains(&format!("data-hour=\"{h}\" data-calls=\"{n}\"")),
            "hour {h}"
        );
    }
    assert!(html.contains("housing &amp; utilities"));
    assert!(!html.contains("<script"));
}

/// One sample: metric name, labels, value.
type Sample = (String, Vec<(String, String)>, f64);

/// Checks the Prometheus text format line by line; returns the samples.
fn parse_prometheus(text: &str) -> Vec<Sample> {
    let mut typed = std::collections::HashSet::new();
    let mut samples = Vec::new();
    let is_name = |s: &str| {
        let mut c = s.chars();
        c.next()
            .is_some_and(|f| f.is_ascii_alphabetic() || f == '_' || f == ':')
            && c.all(|x| x.is_ascii_alphanumeric() || x == '_' || x == ':')
    };
    assert!(text.ends_with('\n'));
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (kw, name, tail) = (parts.next().unwrap(), parts.next().unwrap(), parts.next());
            assert!(is_name(name), "{line}");
            match kw {
                "HELP" => assert!(tail.is_some_and(|t| !t.is_empty()), "{line}"),
                "TYPE" => {
                    assert!(
                        matches!(
                            tail,
                            Some("counter" | "gauge" | "histogram" | "summary" | "untyped")
                        ),
                        "{line}"
                    );
                    assert!(typed.insert(name.to_owned()), "TYPE twice: {line}");
                }
                _ => panic!("unknown comment {line}"),
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("value in {line}"));
        let (name, labels) = match series.split_once('{') {
            None => (series, Vec::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').unwrap_or_else(|| panic!("{line}"));
                let mut labels = Vec::new();
                let mut chars = body.chars().peekable();
                while chars.peek().is_some() {
                    let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
                    assert!(is_name(&key), "label name in {line}");
                    assert_eq!(chars.next(), Some('"'), "{line}");
                    let mut v = String::new();
                    loop {
                        match chars.next() {
                            Some('\\') => match chars.next() {
                                Some('\\') => v.push('\\'),
                                Some('"') => v.push('"'),
                                Some('n') => v.push('\n'),
                                other => panic!("bad escape {other:?} in {line}"),
                            },
                            Some('"') => break,
                            Some(c) => v.push(c),
                            None => panic!("unterminated label in {line}"),
                        }
                    }
                    labels.push((key, v));
                    match chars.next() {
                        Some(',') | None => {}
                        other => panic!("{other:?} after a label in {line}"),
                    }
                }
                (name, labels)
            }
        };
        assert!(is_name(name), "{line}");
        assert!(typed.contains(name), "sample before its TYPE: {line}");
        samples.push((name.to_owned(), labels, value));
    }
    samples
}

#[tokio::test]
async fn metrics_are_valid_prometheus_text() {
    let e = env().await;
    e.state.calls.arrived("a1", "city");
    e.state.calls.ended("a1", Outcome::Abandoned);
    e.state.calls.arrived("a2", "we\"ird\\line\nx");
    e.state.calls.ended("a2", Outcome::InfoOnly);
    e.state
        .operators
        .apply(
            "op2",
            operators::Action::Login { queues: vec![] },
            &e.writer,
        )
        .unwrap();
    e.appeal(Utc::now(), "city", "+7", AppealUpdate::default());
    e.flush().await;
    // what the gateway counts as calls, SIP and RTP go by
    let st = &e.state.stats;
    st.calls_in_ivr.store(2, Ordering::Relaxed);
    st.queue_enter("benefits", "c1", Instant::now() - Duration::from_secs(7));
    st.queue_enter("benefits", "c2", Instant::now());
    st.queue_enter("general", "c3", Instant::now() - Duration::from_secs(2));
    st.queue_leave("general", "c3");
    for r in [
        "SIP/2.0 100 Trying\r\n\r\n",
        "SIP/2.0 200 OK\r\n\r\n",
        "SIP/2.0 200 OK\r\n\r\n",
        "SIP/2.0 484 Address Incomplete\r\n\r\n",
    ] {
        st.count_sent(r.as_bytes());
    }
    st.count_digit(gateway::DtmfVia::Rfc4733);
    st.count_digit(gateway::DtmfVia::Inband);
    st.count_digit(gateway::DtmfVia::Inband);
    st.rtp_legs_active.store(3, Ordering::Relaxed);
    st.rtp_packets_sent.store(500, Ordering::Relaxed);
    st.rtp_packets_received.store(490, Ordering::Relaxed);
    st.rtp_packets_lost.store(4, Ordering::Relaxed);
    st.rtp_timeouts.store(1, Ordering::Relaxed);

    let a = send(&e.state, req("GET", "/metrics", "", &[])).await;
    assert!(a.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let samples = parse_prometheus(&a.body);
    let find = |name: &str, labels: &[(&str, &str)]| -> f64 {
        samples
            .iter()
            .find(|(n, l, _)| {
                n == name
                    && l.len() == labels.len()
                    && labels
                        .iter()
                        .all(|(k, v)| l.iter().any(|(a, b)| a == k && b == v))
            })
            .unwrap_or_else(|| panic!("{name} {labels:?} in\n{}", a.body))
            .2
    };
    assert_eq!(
        find(
            "hotline_calls_ended_total",
            &[("line", "city"), ("outcome", "abandoned")]
        ),
        1.0
    );
    assert_eq!(
        find(
            "hotline_calls_ended_total",
            &[("line", "we\"ird\\line\nx"), ("outcome", "info_only")]
        ),
        1.0
    );
    assert_eq!(find("hotline_operators", &[("state", "available")]), 1.0);
    assert_eq!(find("hotline_operators", &[("state", "logged_out")]), 1.0);
    assert_eq!(find("hotline_operators", &[("state", "paused")]), 0.0);
    assert_eq!(find("hotline_queue_waiting", &[("queue", "general")]), 0.0);
    assert_eq!(find("hotline_queue_waiting", &[("queue", "benefits")]), 2.0);
    assert_eq!(
        find(
            "hotline_queue_longest_wait_seconds",
            &[("queue", "general")]
        ),
        0.0
    );
    let longest = find(
        "hotline_queue_longest_wait_seconds",
        &[("queue", "benefits")],
    );
    assert!((7.0..9.0).contains(&longest), "{longest}");
    assert_eq!(find("hotline_calls_in_ivr", &[]), 2.0);
    let code = |class: &str, code: &str| {
        find(
            "hotline_sip_responses_total",
            &[("class", class), ("code", code)],
        )
    };
    assert_eq!(code("1xx", "100"), 1.0);
    assert_eq!(code("2xx", "200"), 2.0);
    assert_eq!(code("4xx", "404"), 0.0);
    assert_eq!(code("4xx", "other"), 1.0);
    assert_eq!(code("6xx", "603"), 0.0);
    assert_eq!(
        find("hotline_dtmf_digits_total", &[("kind", "rfc4733")]),
        1.0
    );
    assert_eq!(find("hotline_dtmf_digits_total", &[("kind", "info")]), 0.0);
    assert_eq!(
        find("hotline_dtmf_digits_total", &[("kind", "inband")]),
        2.0
    );
    assert_eq!(find("hotline_rtp_legs_active", &[]), 3.0);
    assert_eq!(find("hotline_rtp_packets_sent_total", &[]), 500.0);
    assert_eq!(find("hotline_rtp_packets_received_total", &[]), 490.0);
    assert_eq!(find("hotline_rtp_packets_lost_total", &[]), 4.0);
    assert_eq!(find("hotline_rtp_timeouts_total", &[]), 1.0);
    // every family of issue 6 is there with its HELP and TYPE
    for (name, kind) in [
        ("hotline_calls_ended_total", "counter"),
        ("hotline_calls_in_ivr", "gauge"),
        ("hotline_queue_waiting", "gauge"),
        ("hotline_queue_longest_wait_seconds", "gauge"),
        ("hotline_operators", "gauge"),
        ("hotline_sip_requests_total", "counter"),
        ("hotline_sip_responses_total", "counter"),
        ("hotline_rtp_legs_active", "gauge"),
        ("hotline_rtp_packets_sent_total", "counter"),
        ("hotline_rtp_packets_received_total", "counter"),
        ("hotline_rtp_packets_lost_total", "counter"),
        ("hotline_rtp_timeouts_total", "counter"),
        ("hotline_dtmf_digits_total", "counter"),
        ("hotline_appeal_writer_backlog", "gauge"),
        ("hotline_appeal_spool_bytes", "gauge"),
    ] {
        assert!(a.body.contains(&format!("\n# HELP {name} ")), "{name}");
        assert!(
            a.body.contains(&format!("\n# TYPE {name} {kind}\n")),
            "{name}"
        );
    }
    assert_eq!(find("hotline_appeal_writer_backlog", &[]), 0.0);
    // Everything committed: the spool may have been truncated.
    assert!(find("hotline_appeal_spool_bytes", &[]) >= 0.0);
    assert!(find("hotline_appeal_writer_committed_total", &[]) >= 3.0);
    assert_eq!(find("hotline_appeal_database_up", &[]), 1.0);
    assert_eq!(find("hotline_admin_store_connected", &[]), 1.0);
    assert_eq!(find("hotline_calls_active", &[]), 0.0);

    // The parser itself refuses what Prometheus would.
    for bad in [
        "# TYPE x gauge\nx{a=\"1} 1\n",
        "x 1\n",
        "# TYPE x gauge\nx one\n",
        "# TYPE x gauge\nx{a=\"\\q\"} 1\n",
        "# TYPE 1x gauge\n",
    ] {
        assert!(
            std::panic::catch_unwind(|| parse_prometheus(bad)).is_err(),
            "{bad:?} should not parse"
        );
    }
}

/// `activity` shows what the ACD has each operator doing: the operator offered a caller is
/// `ringing`, then `on_call`, then `wrap_up`; the others are `null`.
#[tokio::test]
async fn operators_show_the_acds_live_activity() {
    let e = env().await;
    let t0 = Instant::now();
    let mut cfg = acd::AcdConfig::default();
    cfg.queues.push(acd::QueueConfig::new("general"));
    for op in ["op1", "op2"] {
        cfg.operators
            .push(acd::OperatorConfig::new(op, [("general", 1)]));
    }
    let mut acd = acd::Acd::new(cfg).unwrap();
    acd.set_registered(t0, &"op1".into(), true).unwrap();
    acd.login(t0, &"op1".into()).unwrap();
    let activity = |v: &Value, id: &str| -> Value {
        v["operators"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["id"] == id)
            .unwrap()["activity"]
            .clone()
    };
    let changed = acd.take_changed();
    e.state.stats.activity.update(&acd, &changed);
    let list = call(&e.state, "GET", "/api/v1/operators", "").await.json();
    assert_eq!(activity(&list, "op1"), Value::Null);

    acd.caller_joined(t0, acd::CallerId(1), &"general".into(), 0, None)
        .unwrap();
    let changed = acd.take_changed();
    e.state.stats.activity.update(&acd, &changed);
    let list = call(&e.state, "GET", "/api/v1/operators", "").await.json();
    assert_eq!(activity(&list, "op1"), "ringing");
    assert_eq!(activity(&list, "op2"), Value::Null);

    acd.offer_answered(t0, acd::CallerId(1), &"op1".into())
        .unwrap();
    let changed = acd.take_changed();
    e.state.stats.activity.update(&acd, &changed);
    let list = call(&e.state, "GET", "/api/v1/operators", "").await.json();
    assert_eq!(activity(&list, "op1"), "on_call");

    acd.call_ended(t0 + Duration::from_secs(3), &"op1".into())
        .unwrap();
    let changed = acd.take_changed();
    e.state.stats.activity.update(&acd, &changed);
    let list = call(&e.state, "GET", "/api/v1/operators", "").await.json();
    assert_eq!(activity(&list, "op1"), "wrap_up");
}

#[tokio::test]
async fn operators_log_in_pause_and_log_out() {
    let e = env().await;
    let t0 = Utc::now() - chrono::Duration::seconds(1);
    e.state.stats.publish_contacts(vec![RegisteredContact {
        operator: "op1".into(),
        contact: "sip:op1@192.0.2.7:5062".into(),
        source: "192.0.2.7:5062".parse().unwrap(),
        transport: "UDP",
        expires_at: Instant::now() + Duration::from_secs(300),
    }]);
    let list = call(&e.state, "GET", "/api/v1/operators", "").await.json();
    let ops = list["operators"].as_array().unwrap();
    assert_eq!(ops.len(), 2);
    assert_eq!(ops[0]["id"], "op1");
    assert_eq!(ops[0]["state"], "logged_out");
    assert_eq!(ops[0]["registered"], true);
    assert_eq!(ops[0]["contacts"][0]["contact"], "sip:op1@192.0.2.7:5062");
    assert!(
        ops[0]["contacts"][0]["expires_in_seconds"]
            .as_u64()
            .unwrap()
            > 290
    );
    assert_eq!(ops[1]["registered"], false);

    let state_of = |v: &Value, id: &str| -> String {
        v["operators"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["id"] == id)
            .unwrap()["state"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let steps = [
        (
            "login",
            r#"{"queues":["general"]}"#,
            StatusCode::OK,
            "available",
        ),
        ("login", "", StatusCode::CONFLICT, "available"),
        ("unpause", "", StatusCode::CONFLICT, "available"),
        ("pause", r#"{"reason":"lunch"}"#, StatusCode::OK, "paused"),
        ("pause", "", StatusCode::CONFLICT, "paused"),
        ("unpause", "", StatusCode::OK, "available"),
        ("pause", "", StatusCode::OK, "paused"),
        ("logout", "", StatusCode::OK, "logged_out"),
        ("logout", "", StatusCode::CONFLICT, "logged_out"),
        ("pause", "", StatusCode::CONFLICT, "logged_out"),
    ];
    for (verb, body, want, state) in steps {
        let a = call(
            &e.state,
            "POST",
            &format!("/api/v1/operators/op1/{verb}"),
            body,
        )
        .await;
        assert_eq!(a.status, want, "{verb}: {}", a.body);
        if want == StatusCode::OK {
            assert_eq!(a.json()["state"], state);
        } else {
            assert!(a.error().contains("op1"), "{}", a.body);
        }
        let list = call(&e.state, "GET", "/api/v1/operators", "").await.json();
        assert_eq!(state_of(&list, "op1"), state, "after {verb}");
        if verb == "pause" && want == StatusCode::OK && body.contains("lunch") {
            let op = &list["operators"][0];
            assert_eq!(op["pause_reason"], "lunch");
            assert_eq!(op["queues"], json!(["general"]));
            let q = call(&e.state, "GET", "/api/v1/queues", "").await.json();
            assert_eq!(
                q,
                json!({"queues": [{"name": "general", "waiting": 0, "longest_wait_seconds": 0,
                                   "operators_logged_in": 1, "operators_available": 0}]})
            );
        }
    }
    assert_eq!(
        call(&e.state, "POST", "/api/v1/operators/op9/login", "")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    for body in [r#"{"queues":"general"}"#, "{", r#"{"queue":["a"]}"#] {
        assert_eq!(
            call(&e.state, "POST", "/api/v1/operators/op2/login", body)
                .await
                .status,
            StatusCode::BAD_REQUEST,
            "{body}"
        );
    }
    assert_eq!(
        call(
            &e.state,
            "POST",
            "/api/v1/operators/op2/login",
            r#"{"queues":["bad name"]}"#
        )
        .await
        .status,
        StatusCode::UNPROCESSABLE_ENTITY
    );

    // The session reached operator_sessions through the writer.
    e.flush().await;
    let sessions = e
        .store
        .operator_sessions(t0, Utc::now() + chrono::Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].operator, "op1");
    assert_eq!(sessions[0].queues, vec!["general".to_owned()]);
    assert_eq!(sessions[0].end_reason.as_deref(), Some("logout"));
    assert!(sessions[0].ended_at.is_some());

    // A stopping daemon ends the sessions still open.
    call(&e.state, "POST", "/api/v1/operators/op2/login", "").await;
    e.state.operators.logout_all(&e.writer, "shutdown");
    e.flush().await;
    let sessions = e
        .store
        .operator_sessions(t0, Utc::now() + chrono::Duration::seconds(1))
        .await
        .unwrap();
    let op2 = sessions.iter().find(|s| s.operator == "op2").unwrap();
    assert_eq!(op2.end_reason.as_deref(), Some("shutdown"));
}

#[tokio::test]
async fn openapi_lists_every_route_and_every_route_is_served() {
    let e = env().await;
    let doc: Value = serde_json::from_str(OPENAPI).unwrap();
    let served = call(&e.state, "GET", "/api/v1/openapi.json", "").await;
    assert_eq!(served.status, StatusCode::OK);
    assert_eq!(served.json(), doc);
    let paths = doc["paths"].as_object().unwrap();
    let routes = route_list();
    for (method, path) in &routes {
        let item = paths
            .get(*path)
            .unwrap_or_else(|| panic!("{path} missing from openapi.json"));
        assert!(
            item.get(method.to_ascii_lowercase()).is_some(),
            "{method} {path} missing from openapi.json"
        );
    }
    let mut documented = 0;
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            documented += 1;
            assert!(
                routes
                    .iter()
                    .any(|(m, p)| p == path && m.eq_ignore_ascii_case(method)),
                "{method} {path} is documented but not routed"
            );
        }
    }
    assert_eq!(documented, routes.len());
    // Every listed route reaches a handler (not the router's 404/405).
    let id = AppealId::new().to_string();
    for (method, path) in &routes {
        let concrete = if path.starts_with("/api/v1/operators/") {
            path.replace("{id}", "op2")
        } else {
            path.replace("{id}", &id)
        };
        let body = if *method == "PATCH" {
            r#"{"notes":"x"}"#
        } else {
            ""
        };
        let a = call(&e.state, method, &concrete, body).await;
        assert_ne!(a.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        // a page's own 404 is HTML; the router's is JSON
        if a.status == StatusCode::NOT_FOUND && !a.body.starts_with('<') {
            assert_ne!(a.error(), "no such route", "{method} {path}");
        }
    }
    let nope = call(&e.state, "GET", "/api/v1/nothing", "").await;
    assert_eq!(
        (nope.status, nope.error().as_str()),
        (StatusCode::NOT_FOUND, "no such route")
    );
    let wrong = call(&e.state, "DELETE", "/api/v1/appeals", "").await;
    assert_eq!(wrong.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(!wrong.error().is_empty());
    // without a running gateway there is nothing to reload (the daemon tests reload for real)
    let reload = call(&e.state, "POST", "/api/v1/reload", "").await;
    assert_eq!(reload.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(reload.error().contains("not running"));
}

#[tokio::test]
async fn database_down_at_start_gives_503_until_it_is_reached() {
    let dir = tempfile::tempdir().unwrap();
    // The database's folder cannot be made while a file stands where it should be.
    let blocker = dir.path().join("db");
    std::fs::write(&blocker, "not a folder").unwrap();
    let url = format!("sqlite://{}", blocker.join("hotline.db").display());
    let writer =
        AppealWriter::start(WriterConfig::new(url.clone(), dir.path().join("spool"))).unwrap();
    let state = state_with(writer.clone(), TOKEN);
    let stop = CancellationToken::new();
    let task = connect_store(url, state.store.clone(), stop.clone(), None);

    let started = Instant::now();
    let a = call(&state, "GET", "/api/v1/appeals", "").await;
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "never waits for the database"
    );
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(a.error().contains("database"));
    assert_eq!(
        call(&state, "GET", "/api/v1/reports/daily", "")
            .await
            .status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    // Live state does not need the database.
    assert_eq!(
        call(&state, "GET", "/api/v1/operators", "").await.status,
        StatusCode::OK
    );
    let m = send(&state, req("GET", "/metrics", "", &[])).await.body;
    assert!(m.contains("\nhotline_admin_store_connected 0\n"), "{m}");

    std::fs::remove_file(&blocker).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while state.store.get().is_none() {
        assert!(Instant::now() < deadline, "the store was never connected");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        call(&state, "GET", "/api/v1/appeals", "").await.status,
        StatusCode::OK
    );
    task.await.unwrap();
    stop.cancel();
    writer.shutdown().await;
}

#[tokio::test]
async fn period_report_over_the_store_splits_days() {
    let e = env().await;
    let d = day();
    generate_day(&e, d);
    generate_day(&e, d.succ_opt().unwrap());
    e.flush().await;
    let r = crate::report::build(
        &e.store,
        d.pred_opt().unwrap(),
        d.succ_opt().unwrap(),
        nsk(),
        &ReportOptions::default(),
    )
    .await
    .unwrap();
    let per_day: Vec<u64> = r.days.iter().map(|x| x.total.calls).collect();
    assert_eq!(per_day, vec![0, 60, 60]);
    assert_eq!(r.period.total.calls, 120);
    assert_eq!(r.period.by_hour[8].figures.calls, 12);
    assert!(matches!(
        crate::report::build(
            &e.store,
            d,
            d.pred_opt().unwrap(),
            nsk(),
            &ReportOptions::default()
        )
        .await,
        Err(crate::report::ReportError::Reversed { .. })
    ));
    let _ = &e.dir;
}

// ---------------------------------------------------------------------------------------
// The partner-centre exchange.

const PARTNER_TOKEN: &str = "partner-shared";

fn link(name: &str, url: &str) -> crate::partner::PartnerLink {
    crate::partner::PartnerLink {
        name: Arc::from(name),
        url: Arc::from(url),
        token: Arc::from(PARTNER_TOKEN),
        retry_min: Duration::from_millis(10),
        retry_max: Duration::from_millis(40),
        wake: Arc::new(tokio::sync::Notify::new()),
        ca: Arc::from([]),
    }
}

/// An `Env` whose daemon is centre `name` with a partner at `url`.
async fn partner_env(name: &str, url: &str) -> Env {
    let mut e = env().await;
    e.state.partner = Some(link(name, url));
    e
}

fn forward_body(centre: &str, origin: AppealId) -> String {
    json!({
        "centre": centre,
        "appeal_id": origin,
        "note": "needs long-term care",
        "line": "city",
        "caller_number": "+79131234567",
        "arrived_at": "2026-11-23T03:00:00Z",
        "category": "home-care",
    })
    .to_string()
}

async fn partner_call(state: &AdminState, path: &str, key: Option<&str>, body: &str) -> Answer {
    let auth = format!("Bearer {PARTNER_TOKEN}");
    let mut h = vec![("authorization", auth.as_str())];
    if let Some(k) = key {
        h.push(("idempotency-key", k));
    }
    send(state, req("POST", path, body, &h)).await
}

#[tokio::test]
async fn forward_without_a_partner_is_409() {
    let e = env().await;
    let id = e.appeal(local(day(), 9, 0), "city", "+7", AppealUpdate::default());
    e.flush().await;
    let a = call(
        &e.state,
        "POST",
        &format!("/api/v1/appeals/{id}/forward"),
        "",
    )
    .await;
    assert_eq!(a.status, StatusCode::CONFLICT, "{}", a.body);
    assert!(a.error().contains("no partner configured"), "{}", a.body);
    // … and the partner routes are closed.
    let r = partner_call(
        &e.state,
        "/api/v1/partner/appeals",
        Some("k"),
        &forward_body("city", id),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.error().contains("no partner configured"));
}

#[tokio::test]
async fn partner_routes_take_the_partner_token_only() {
    let e = partner_env("region", "http://127.0.0.1:9").await;
    let body = forward_body("city", AppealId::new());
    let path = "/api/v1/partner/appeals";
    for auth in [
        None,
        Some(format!("Bearer {TOKEN}")),
        Some("Bearer partner-share".to_owned()),
    ] {
        let mut h = vec![("idempotency-key", "k-1")];
        if let Some(a) = &auth {
            h.push(("authorization", a.as_str()));
        }
        let a = send(&e.state, req("POST", path, &body, &h)).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{auth:?}");
    }
    // … and the partner token opens nothing else.
    let a = send(
        &e.state,
        req(
            "GET",
            "/api/v1/appeals",
            "",
            &[("authorization", &format!("Bearer {PARTNER_TOKEN}"))],
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    let none = partner_call(&e.state, path, None, &body).await;
    assert_eq!(none.status, StatusCode::BAD_REQUEST);
    assert!(none.error().contains("Idempotency-Key"));
    let bad = partner_call(&e.state, path, Some("k-1"), "{\"centre\":").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let a = partner_call(&e.state, path, Some("k-1"), &body).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
}

#[tokio::test]
async fn the_same_key_twice_makes_one_appeal() {
    let e = partner_env("region", "http://127.0.0.1:9").await;
    let origin = AppealId::new();
    let body = forward_body("city", origin);
    let path = "/api/v1/partner/appeals";
    let first = partner_call(&e.state, path, Some("key-1"), &body).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    let again = partner_call(&e.state, path, Some("key-1"), &body).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert_eq!(first.json(), again.json());
    let id = first.json()["appeal_id"].as_str().unwrap().to_owned();
    assert_eq!(first.json()["partner_ref"], format!("region:{id}"));
    let list = call(&e.state, "GET", "/api/v1/appeals", "").await.json();
    assert_eq!(list["total"], 1);
    let a = &list["appeals"][0];
    assert_eq!(a["id"], id.as_str());
    assert_eq!(a["partner_ref"], format!("city:{origin}"));
    assert_eq!(a["line"], "partner:city");
    assert_eq!(a["category"], "home-care");
    // A different key is a different message.
    let other = partner_call(&e.state, path, Some("key-2"), &body).await;
    assert_eq!(other.status, StatusCode::CREATED);
    assert_ne!(other.json()["appeal_id"], first.json()["appeal_id"]);
}

#[tokio::test]
async fn forward_queues_and_status_changes_on_a_received_appeal_flow_back() {
    let e = partner_env("city", "http://127.0.0.1:9").await;
    let id = e.appeal(local(day(), 9, 0), "city", "+7913", AppealUpdate::default());
    e.flush().await;
    let path = format!("/api/v1/appeals/{id}/forward");
    let bad = call(&e.state, "POST", &path, r#"{"nope":1}"#).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let petrova = format!(
        "Bearer {}",
        user_token(&e.state, "petrova", appeals::Role::Supervisor).await
    );
    let a = send(
        &e.state,
        req(
            "POST",
            &path,
            r#"{"note":"please call back","destination_org":"КЦСОН"}"#,
            &[("authorization", &petrova)],
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.body);
    let j = a.json();
    assert_eq!(j["appeal"]["status"], "forwarded");
    assert_eq!(j["appeal"]["destination_org"], "КЦСОН");
    let ev = j["appeal"]["events"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(ev["kind"], "forwarded");
    assert_eq!(ev["actor"], "petrova");
    assert_eq!(ev["data"]["note"], "please call back");
    assert_eq!(ev["data"]["idempotency_key"], j["idempotency_key"]);
    let rows = e.store.outbox(Some(id)).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows[0].key.to_string(),
        j["idempotency_key"].as_str().unwrap()
    );
    let twice = call(&e.state, "POST", &path, "").await;
    assert_eq!(twice.status, StatusCode::CONFLICT);
    let missing = call(
        &e.state,
        "POST",
        &format!("/api/v1/appeals/{}/forward", AppealId::new()),
        "",
    )
    .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);

    // An appeal received from the partner reports its status changes back; ours do not.
    let origin = AppealId::new();
    let got = partner_call(
        &e.state,
        "/api/v1/partner/appeals",
        Some("k"),
        &forward_body("region", origin),
    )
    .await
    .json();
    let theirs = got["appeal_id"].as_str().unwrap().to_owned();
    let p = patch_now(
        &e.state,
        &format!("/api/v1/appeals/{theirs}"),
        r#"{"status":"in_progress"}"#,
    )
    .await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    let own = e.appeal(local(day(), 10, 0), "city", "+7", AppealUpdate::default());
    e.flush().await;
    patch_now(
        &e.state,
        &format!("/api/v1/appeals/{own}"),
        r#"{"status":"in_progress"}"#,
    )
    .await;
    let due = e.store.outbox_due(Utc::now(), 10).await.unwrap();
    let status: Vec<_> = due
        .iter()
        .filter(|m| m.kind == appeals::OutboxKind::Status)
        .collect();
    assert_eq!(status.len(), 1);
    assert_eq!(
        status[0].path,
        format!("/api/v1/partner/appeals/{origin}/status")
    );
    assert_eq!(status[0].payload["status"], "in_progress");
    assert_eq!(status[0].payload["from"], "new");

    // The origin side takes it once per key; an unknown appeal is 404.
    let st = json!({"centre":"region","appeal_id":theirs,"from":"new","status":"in_progress","at":"2026-11-23T03:00:00Z"}).to_string();
    let r = partner_call(
        &e.state,
        &format!("/api/v1/partner/appeals/{id}/status"),
        Some("s-1"),
        &st,
    )
    .await;
    assert_eq!(
        (r.status, r.json()["duplicate"].clone()),
        (StatusCode::OK, json!(false))
    );
    let r = partner_call(
        &e.state,
        &format!("/api/v1/partner/appeals/{id}/status"),
        Some("s-1"),
        &st,
    )
    .await;
    assert_eq!(
        (r.status, r.json()["duplicate"].clone()),
        (StatusCode::OK, json!(true))
    );
    let r = partner_call(
        &e.state,
        &format!("/api/v1/partner/appeals/{}/status", AppealId::new()),
        Some("s-2"),
        &st,
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let timeline = e.store.get(id).await.unwrap().unwrap().events;
    let updates: Vec<_> = timeline
        .iter()
        .filter(|e| e.kind == appeals::EventKind::PartnerUpdate)
        .collect();
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0].data["status"], "in_progress");
}

/// The partner side of status both ways: `POST /api/v1/partner/appeals/{origin}/update`
/// applies the origin's change to our copy once per key; a bad body is 422 naming the field,
/// an appeal that did not come from that centre 404, a status our copy cannot take 409 —
/// and none of them writes anything. Nothing is queued back.
#[tokio::test]
async fn the_origins_update_reaches_our_copy_once() {
    let e = partner_env("region", "http://127.0.0.1:9").await;
    let origin = AppealId::new();
    let got = partner_call(
        &e.state,
        "/api/v1/partner/appeals",
        Some("fwd-1"),
        &forward_body("city", origin),
    )
    .await;
    assert_eq!(got.status, StatusCode::CREATED, "{}", got.body);
    let copy: AppealId = got.json()["appeal_id"].as_str().unwrap().parse().unwrap();
    let path = format!("/api/v1/partner/appeals/{origin}/update");
    let at = "2026-11-23T05:00:00Z";
    let before = e.store.get(copy).await.unwrap().unwrap();

    // Bad bodies: 422 naming the field, or saying what is missing; nothing written.
    let long = "я".repeat(10_001);
    for (body, field) in [
        (
            json!({"centre": "city", "at": "soon", "notes": "x"}),
            Some("at"),
        ),
        (json!({"centre": "city", "notes": "x"}), Some("at")),
        (json!({"at": at, "notes": "x"}), Some("centre")),
        (
            json!({"centre": "c i t y", "at": at, "notes": "x"}),
            Some("centre"),
        ),
        (
            json!({"centre": "city", "at": at, "status": {"from": "forwarded", "to": "gone"}}),
            Some("status"),
        ),
        (
            json!({"centre": "city", "at": at, "due_at": 5}),
            Some("due_at"),
        ),
        (
            json!({"centre": "city", "at": at, "notes": long}),
            Some("notes"),
        ),
        (
            json!({"centre": "city", "at": at, "resolution": 7}),
            Some("resolution"),
        ),
        (json!({"centre": "city", "at": at, "colour": "red"}), None),
        (json!({"centre": "city", "at": at}), None),
    ] {
        let r = partner_call(&e.state, &path, Some("bad"), &body.to_string()).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            r.body
        );
        assert_eq!(
            r.json().get("field").and_then(Value::as_str),
            field,
            "{body}"
        );
    }
    let r = partner_call(&e.state, &path, Some("bad"), "[1]").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = partner_call(&e.state, &path, None, "{}").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "no Idempotency-Key");
    assert!(r.error().contains("Idempotency-Key"));
    // Not an appeal that centre forwarded here: 404.
    let withdraw = json!({
        "centre": "city", "at": at, "actor": "op1",
        "status": {"from": "forwarded", "to": "declined"},
        "due_at": "2026-12-01T10:00:00Z",
        "notes": "Заявитель переехал",
        "resolution": "Отозвано",
    });
    for (p, body) in [
        (
            format!("/api/v1/partner/appeals/{}/update", AppealId::new()),
            withdraw.clone(),
        ),
        (path.clone(), {
            let mut b = withdraw.clone();
            b["centre"] = json!("elsewhere");
            b
        }),
    ] {
        let r = partner_call(&e.state, &p, Some("u-0"), &body.to_string()).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    }
    assert_eq!(e.store.get(copy).await.unwrap().unwrap(), before);

    // The withdrawal: applied once, answered 200 both times.
    for duplicate in [false, true] {
        let r = partner_call(&e.state, &path, Some("u-1"), &withdraw.to_string()).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.json()["duplicate"], json!(duplicate));
        assert_eq!(r.json()["appeal_id"], json!(copy));
    }
    let now = e.store.get(copy).await.unwrap().unwrap();
    assert_eq!(now.appeal.status, appeals::Status::Declined);
    assert_eq!(
        now.appeal.case.due_at.map(|d| d.to_rfc3339()),
        Some("2026-12-01T10:00:00+00:00".to_owned())
    );
    let added: Vec<_> = now.events[before.events.len()..]
        .iter()
        .map(|e| (e.kind.as_str(), e.actor.clone().unwrap_or_default()))
        .collect();
    let by = || "partner:city".to_owned();
    assert_eq!(
        added,
        [
            ("partner_update", by()),
            ("status_changed", by()),
            ("case_updated", by())
        ]
    );
    let report = &now.events[before.events.len()].data;
    assert_eq!(report["notes"], "Заявитель переехал");
    assert_eq!(report["resolution"], "Отозвано");
    // one audit row, by the partner, without the text
    let audit = audit_of(&e.state, "appeal_changed").await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].actor, "partner");
    assert_eq!(audit[0].target.as_deref(), Some(copy.to_string().as_str()));
    assert_eq!(
        audit[0].details["status"],
        json!({"from": "new", "to": "declined"})
    );
    assert_eq!(audit[0].details["notes"], json!({"changed": true}));
    assert!(!audit[0].details.to_string().contains("переехал"));

    // Reopened by the origin: our closed copy reopens. A second reopen finds it open: 409
    // with the reason, nothing written, and the key not taken.
    let reopen =
        json!({"centre": "city", "at": at, "status": {"from": "declined", "to": "in_progress"}});
    let r = partner_call(&e.state, &path, Some("u-2"), &reopen.to_string()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let reopened = e.store.get(copy).await.unwrap().unwrap();
    assert_eq!(reopened.appeal.status, appeals::Status::InProgress);
    for _ in 0..2 {
        let r = partner_call(&e.state, &path, Some("u-3"), &reopen.to_string()).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
        assert!(r.error().contains("nothing to reopen"), "{}", r.body);
    }
    // A close the copy's workflow does not allow: 409 naming what it allows.
    let again = partner_call(
        &e.state,
        "/api/v1/partner/appeals",
        Some("fwd-2"),
        &forward_body("city", AppealId::new()),
    )
    .await;
    let second = again.json()["appeal_id"].as_str().unwrap().to_owned();
    let second_origin: AppealId = e
        .store
        .get(second.parse().unwrap())
        .await
        .unwrap()
        .unwrap()
        .appeal
        .partner_ref
        .unwrap()
        .strip_prefix("city:")
        .unwrap()
        .parse()
        .unwrap();
    let done = json!({"centre": "city", "at": at, "status": {"from": "forwarded", "to": "done"}});
    let r = partner_call(
        &e.state,
        &format!("/api/v1/partner/appeals/{second_origin}/update"),
        Some("u-4"),
        &done.to_string(),
    )
    .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert!(r.error().contains("cannot become done"), "{}", r.body);
    assert_eq!(e.store.get(copy).await.unwrap().unwrap(), reopened);
    // Nothing of this goes back to the origin.
    assert!(e.store.outbox(None).await.unwrap().is_empty());
}

/// The origin side: a PATCH of a forwarded appeal queues an update with the change, for
/// the origin's appeal id; one never forwarded queues nothing.
#[tokio::test]
async fn a_patch_of_a_forwarded_appeal_queues_an_update() {
    let e = partner_env("city", "http://127.0.0.1:9").await;
    let id = e.appeal(local(day(), 9, 0), "city", "+7913", AppealUpdate::default());
    let own = e.appeal(local(day(), 9, 5), "city", "+7914", AppealUpdate::default());
    e.flush().await;
    let f = call(
        &e.state,
        "POST",
        &format!("/api/v1/appeals/{id}/forward"),
        "",
    )
    .await;
    assert_eq!(f.status, StatusCode::ACCEPTED, "{}", f.body);
    let patch = r#"{"status":"declined","due_at":"2026-12-01","resolution":"Отозвано"}"#;
    for a in [id, own] {
        let r = patch_now(&e.state, &format!("/api/v1/appeals/{a}"), patch).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    let rows = e.store.outbox(None).await.unwrap();
    let kinds: Vec<_> = rows.iter().map(|r| (r.kind, r.appeal_id)).collect();
    assert_eq!(
        kinds,
        [
            (appeals::OutboxKind::Forward, id),
            (appeals::OutboxKind::Update, id)
        ]
    );
    // it waits behind the forward, which is not delivered yet
    let due = e.store.outbox_due(Utc::now(), 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].kind, appeals::OutboxKind::Forward);
    let body: String =
        sqlx::query_scalar("SELECT payload FROM partner_outbox WHERE kind = 'update'")
            .fetch_one(e.store.pool())
            .await
            .unwrap();
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        body["status"],
        json!({"from": "forwarded", "to": "declined"})
    );
    assert_eq!(body["resolution"], "Отозвано");
    assert!(body["due_at"].as_str().unwrap().starts_with("2026-12-01"));
    assert_eq!(body["actor"], "admin-token");
    let path: String = sqlx::query_scalar("SELECT path FROM partner_outbox WHERE kind = 'update'")
        .fetch_one(e.store.pool())
        .await
        .unwrap();
    assert_eq!(path, format!("/api/v1/partner/appeals/{id}/update"));
}

/// What the flaky partner does with each request, in turn.
#[derive(Clone, Copy, Debug)]
enum Flake {
    /// 503 without looking at the request.
    Refuse,
    /// Handles it, then loses the answer (500): the partner has it, the sender does not know.
    LoseAnswer,
    /// Handles it.
    Serve,
}

/// The outbox retry logic against a real receiving router behind a server that refuses
/// the first attempt and loses the answer to the second: the sender tries three times
/// under one key, and exactly one appeal is made at the partner.
#[tokio::test]
async fn sender_retries_until_the_partner_takes_it_exactly_once() {
    use std::sync::Mutex as StdMutex;
    // The partner: a real receiving daemon state, behind a flaky front.
    let region = partner_env("region", "http://127.0.0.1:9").await;
    let plan = Arc::new(StdMutex::new(vec![Flake::Refuse, Flake::LoseAnswer]));
    let keys = Arc::new(StdMutex::new(Vec::<String>::new()));
    let inner = router(region.state.clone());
    let front = {
        let (plan, keys) = (plan.clone(), keys.clone());
        axum::Router::new().fallback(move |r: axum::extract::Request| {
            let (plan, keys, inner) = (plan.clone(), keys.clone(), inner.clone());
            async move {
                keys.lock()
                    .unwrap()
                    .push(r.headers()["idempotency-key"].to_str().unwrap().to_owned());
                let step = {
                    let mut p = plan.lock().unwrap();
                    if p.is_empty() {
                        Flake::Serve
                    } else {
                        p.remove(0)
                    }
                };
                match step {
                    Flake::Refuse => StatusCode::SERVICE_UNAVAILABLE.into_response(),
                    Flake::LoseAnswer => {
                        let _ = inner.oneshot(r).await;
                        StatusCode::INTERNAL_SERVER_ERROR.into_response()
                    }
                    Flake::Serve => inner.oneshot(r).await.into_response(),
                }
            }
        })
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, front).await });

    let city = partner_env("city", &format!("http://{addr}")).await;
    let id = city.appeal(local(day(), 9, 0), "city", "+7913", AppealUpdate::default());
    city.flush().await;
    let a = call(
        &city.state,
        "POST",
        &format!("/api/v1/appeals/{id}/forward"),
        "",
    )
    .await;
    assert_eq!(a.status, StatusCode::ACCEPTED);
    let client = crate::partner::PartnerClient::new(city.state.partner.clone().unwrap());
    let t0 = Instant::now();
    let mut delivered = 0;
    while delivered == 0 {
        assert!(t0.elapsed() < Duration::from_secs(10), "never delivered");
        delivered = crate::partner::deliver_due(&city.store, &client)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(delivered, 1);
    let keys = keys.lock().unwrap().clone();
    assert_eq!(keys.len(), 3, "{keys:?}");
    assert!(keys.iter().all(|k| *k == keys[0]), "one key: {keys:?}");
    let rows = city.store.outbox(Some(id)).await.unwrap();
    assert_eq!(rows[0].attempts, 3);
    assert!(rows[0].sent_at.is_some());
    assert_eq!(rows[0].key.to_string(), keys[0]);
    // Nothing is due any more: a further pass sends nothing.
    assert_eq!(
        crate::partner::deliver_due(&city.store, &client)
            .await
            .unwrap(),
        0
    );

    let list = call(&region.state, "GET", "/api/v1/appeals", "")
        .await
        .json();
    assert_eq!(list["total"], 1, "exactly one appeal at the partner");
    let theirs = list["appeals"][0]["id"].as_str().unwrap();
    assert_eq!(list["appeals"][0]["partner_ref"], format!("city:{id}"));
    let ours = city.store.get(id).await.unwrap().unwrap();
    assert_eq!(ours.appeal.partner_ref, Some(format!("region:{theirs}")));
    assert_eq!(
        ours.events.last().unwrap().kind,
        appeals::EventKind::PartnerUpdate
    );
}

/// A partner that refuses a message for good (422) is not asked again.
#[tokio::test]
async fn a_refused_message_is_given_up() {
    let front = axum::Router::new().fallback(|| async {
        (StatusCode::UNPROCESSABLE_ENTITY, "{\"error\":\"no\"}").into_response()
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, front).await });
    let city = partner_env("city", &format!("http://{addr}")).await;
    let id = city.appeal(local(day(), 9, 0), "city", "+7", AppealUpdate::default());
    city.flush().await;
    call(
        &city.state,
        "POST",
        &format!("/api/v1/appeals/{id}/forward"),
        "",
    )
    .await;
    let client = crate::partner::PartnerClient::new(city.state.partner.clone().unwrap());
    assert_eq!(
        crate::partner::deliver_due(&city.store, &client)
            .await
            .unwrap(),
        0
    );
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert_eq!(
        crate::partner::deliver_due(&city.store, &client)
            .await
            .unwrap(),
        0
    );
    let rows = city.store.outbox(Some(id)).await.unwrap();
    assert_eq!(rows[0].attempts, 1);
    assert!(rows[0].failed_at.is_some());
    assert!(rows[0].last_error.as_deref().unwrap().contains("422"));
}

/// The operators' state as the API shows it: (id, state, pause reason, queues).
async fn operator_rows(state: &AdminState) -> Vec<(String, String, Value, Value)> {
    let list = call(state, "GET", "/api/v1/operators", "").await.json();
    list["operators"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["id"].as_str().unwrap().to_owned(),
                o["state"].as_str().unwrap().to_owned(),
                o["pause_reason"].clone(),
                o["queues"].clone(),
            )
        })
        .collect()
}

/// Logins and pauses made through the API survive a restart: the first daemon's writer saves
/// them, the next start loads them (a new table over the same SQLite file and spool), and the
/// API and the ACD's start-up commands show them back. Each restored login is a new session.
#[tokio::test]
async fn operators_state_survives_a_restart() {
    let e = env().await;
    let ok = |a: Answer| assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    ok(call(
        &e.state,
        "POST",
        "/api/v1/operators/op1/login",
        r#"{"queues":["general"]}"#,
    )
    .await);
    ok(call(
        &e.state,
        "POST",
        "/api/v1/operators/op1/pause",
        r#"{"reason":"break"}"#,
    )
    .await);
    ok(call(&e.state, "POST", "/api/v1/operators/op2/login", "").await);
    let before = operator_rows(&e.state).await;
    // the daemon stops: sessions end, the saved state stays
    e.state.operators.logout_all(&e.writer, "shutdown");
    e.flush().await;
    e.writer.shutdown().await;

    let url = format!("sqlite://{}", e.dir.path().join("hotline.db").display());
    let spool = e.dir.path().join("spool");
    let saved = appeals::operator_state::load(&url, &spool, Duration::from_secs(5)).await;
    assert!(saved.database_error.is_none());
    let writer = AppealWriter::start(WriterConfig::new(url, spool)).unwrap();
    let state = state_with(writer.clone(), TOKEN);
    assert_eq!(state.operators.restore(&saved.states, &writer), 2);
    let after = operator_rows(&state).await;
    assert_eq!(after, before);
    assert_eq!(
        after[0],
        (
            "op1".to_owned(),
            "paused".to_owned(),
            json!("break"),
            json!(["general"])
        )
    );
    assert_eq!(after[1].1, "available");
    assert_eq!(
        state.operators.as_commands(),
        vec![
            (
                "op1".to_owned(),
                gateway::OperatorCommand::Login {
                    queues: vec!["general".into()]
                }
            ),
            (
                "op1".to_owned(),
                gateway::OperatorCommand::Pause {
                    reason: "break".into()
                }
            ),
            (
                "op2".to_owned(),
                gateway::OperatorCommand::Login { queues: vec![] }
            ),
        ]
    );
    // a logout after the restart is saved as well: the next start finds op1 logged out
    ok(call(&state, "POST", "/api/v1/operators/op1/logout", "").await);
    assert!(writer.flushed(Duration::from_secs(10)).await);
    writer.shutdown().await;
    let url = format!("sqlite://{}", e.dir.path().join("hotline.db").display());
    let saved =
        appeals::operator_state::load(&url, &e.dir.path().join("spool"), Duration::from_secs(5))
            .await;
    let op1 = saved.states.iter().find(|s| s.operator == "op1").unwrap();
    assert!(!op1.logged_in);
    // two sessions for op1: before and after the restart
    let sessions = e
        .store
        .operator_sessions(
            Utc::now() - chrono::Duration::minutes(1),
            Utc::now() + chrono::Duration::minutes(1),
        )
        .await
        .unwrap();
    assert_eq!(sessions.iter().filter(|s| s.operator == "op1").count(), 2);
}

/// A reload that adds op3 and removes op2 (logged in): the operator table follows — op3 is
/// listed and can log in, op2 is gone (404) and its session ended as `removed`; op1 keeps
/// its state and gets its new display name.
#[tokio::test]
async fn operators_follow_a_reload() {
    let e = env().await;
    let t0 = Utc::now() - chrono::Duration::seconds(1);
    call(&e.state, "POST", "/api/v1/operators/op1/login", "").await;
    call(&e.state, "POST", "/api/v1/operators/op2/login", "").await;
    let (added, removed) = e.state.operators.sync(
        [
            ("op1".to_owned(), "Оператор один".to_owned()),
            ("op3".to_owned(), "Оператор 3".to_owned()),
        ],
        &e.writer,
    );
    assert_eq!((added, removed), (vec!["op3".into()], vec!["op2".into()]));
    let rows = operator_rows(&e.state).await;
    let ids: Vec<(&str, &str)> = rows.iter().map(|r| (r.0.as_str(), r.1.as_str())).collect();
    assert_eq!(ids, [("op1", "available"), ("op3", "logged_out")]);
    let list = call(&e.state, "GET", "/api/v1/operators", "").await.json();
    assert_eq!(list["operators"][0]["name"], "Оператор один");
    assert_eq!(
        call(&e.state, "POST", "/api/v1/operators/op3/login", "")
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        call(&e.state, "POST", "/api/v1/operators/op2/logout", "")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    e.flush().await;
    let sessions = e
        .store
        .operator_sessions(t0, Utc::now() + chrono::Duration::seconds(1))
        .await
        .unwrap();
    let op2 = sessions.iter().find(|s| s.operator == "op2").unwrap();
    assert_eq!(op2.end_reason.as_deref(), Some("removed"));
    // and op2's saved state says logged out, so a restart does not bring it back
    e.writer.shutdown().await;
    let url = format!("sqlite://{}", e.dir.path().join("hotline.db").display());
    let saved =
        appeals::operator_state::load(&url, &e.dir.path().join("spool"), Duration::from_secs(5))
            .await;
    assert!(
        !saved
            .states
            .iter()
            .find(|s| s.operator == "op2")
            .unwrap()
            .logged_in
    );
}

/// A login that names no queues (what `*1` on a softphone sends) means every queue of the
/// operator's skills: with a running gateway the ACD resolves the list before the table
/// records it, so `/api/v1/queues` counts the operator in each of those queues and
/// `/api/v1/operators` lists them. A queue outside the skills is refused (422) and changes
/// nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_without_queues_counts_in_every_skill_queue() {
    let config_path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/hotline.toml");
    let c = crate::config::Config::load_with_env(&config_path, std::iter::empty()).unwrap();
    let mut settings = crate::gateway_settings(&c);
    settings.listen = vec!["127.0.0.1:0".parse().unwrap()];
    let e = env().await;
    let mut state = e.state.clone();
    state.operators = Arc::new(OperatorTable::new(
        c.operators
            .iter()
            .map(|o| (o.login.clone(), o.name.clone())),
    ));
    state.queues = Arc::new(QueueBoard::new(c.queues.iter().map(|q| q.name.clone())));
    let gw = gateway::Gateway::bind(settings, state.stats.clone(), Arc::new(gateway::NoCallLog))
        .await
        .unwrap()
        .with_operator_book(Arc::new(TableBook {
            table: state.operators.clone(),
            writer: e.writer.clone(),
        }));
    state.acd = Some(gw.operators());
    let stop = tokio_util::sync::CancellationToken::new();
    let run = tokio::spawn(gw.run(stop.clone()));

    // op1: skills benefits, home-care, regional (config/operators.toml)
    let a = call(&state, "POST", "/api/v1/operators/op1/login", "").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(
        a.json()["queues"],
        json!(["benefits", "home-care", "regional"])
    );
    let q = call(&state, "GET", "/api/v1/queues", "").await.json();
    let logged_in = |name: &str| {
        q["queues"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == name)
            .unwrap()["operators_logged_in"]
            .clone()
    };
    assert_eq!(logged_in("benefits"), 1);
    assert_eq!(logged_in("home-care"), 1);
    assert_eq!(logged_in("regional"), 1);
    assert_eq!(logged_in("rehab"), 0);

    // op2 has no skill in regional: refused before the table hears of it
    let a = call(
        &state,
        "POST",
        "/api/v1/operators/op2/login",
        r#"{"queues":["regional"]}"#,
    )
    .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", a.body);
    assert!(a.error().contains("regional"), "{}", a.body);
    let list = call(&state, "GET", "/api/v1/operators", "").await.json();
    let op2 = list["operators"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["id"] == "op2")
        .unwrap();
    assert_eq!(op2["state"], "logged_out");
    // a named subset of the skills is what the ACD serves and the table shows
    let a = call(
        &state,
        "POST",
        "/api/v1/operators/op2/login",
        r#"{"queues":["rehab"]}"#,
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.json()["queues"], json!(["rehab"]));
    let acd = state.acd.as_ref().unwrap();
    assert_eq!(
        acd.status("op2").await.unwrap().unwrap().state,
        acd::OperatorState::Available
    );

    stop.cancel();
    tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .unwrap()
        .unwrap();
}

/// New skills after a reload move a logged-in operator's queues (`TableBook::queues_changed`):
/// the table shows them, `/api/v1/queues` counts them and the saved state keeps them; a
/// logged-out operator is left alone.
#[tokio::test]
async fn new_skills_move_a_logged_in_operators_queues() {
    use gateway::OperatorBook;
    let e = env().await;
    let ok = |a: Answer| assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    ok(call(
        &e.state,
        "POST",
        "/api/v1/operators/op1/login",
        r#"{"queues":["general"]}"#,
    )
    .await);
    let book = TableBook {
        table: e.state.operators.clone(),
        writer: e.writer.clone(),
    };
    book.queues_changed("op1", &["rehab".to_owned()]);
    book.queues_changed("op2", &["rehab".to_owned()]);
    let list = call(&e.state, "GET", "/api/v1/operators", "").await.json();
    assert_eq!(list["operators"][0]["queues"], json!(["rehab"]));
    assert_eq!(list["operators"][1]["state"], "logged_out");
    assert_eq!(list["operators"][1]["queues"], json!([]));
    let q = call(&e.state, "GET", "/api/v1/queues", "").await.json();
    assert_eq!(q["queues"][0]["operators_logged_in"], 0, "{q}");
    assert_eq!(e.state.operators.in_queue("rehab"), (1, 1));
    e.flush().await;
    let url = format!("sqlite://{}", e.dir.path().join("hotline.db").display());
    let saved =
        appeals::operator_state::load(&url, &e.dir.path().join("spool"), Duration::from_secs(5))
            .await;
    let op1 = saved.states.iter().find(|s| s.operator == "op1").unwrap();
    assert_eq!(op1.queues, ["rehab"]);
}

/// Callback attempts reach the `callbacks` row through the call log (spool first, like every
/// write) and `GET /api/v1/callbacks` shows them: dialling, a busy attempt (pending again,
/// one attempt, last result busy), a second that went unanswered, then the ACD giving up
/// (failed, two attempts, completed). Another caller's answered callback is done.
#[tokio::test]
async fn callbacks_show_their_attempts() {
    use gateway::{CallArrived, CallLog, CallbackAttempt, CallbackOutcome, IvrStep};
    let e = env().await;
    let log =
        crate::appeal_log::AppealLog::new(e.writer.clone(), Default::default(), Default::default());
    let book = |n: &str, queue: Option<&str>| {
        let appeal = uuid::Uuid::now_v7().to_string();
        log.call_arrived(
            &appeal,
            &CallArrived {
                call_id: &format!("call-{n}"),
                line: "88002015388",
                caller: n,
            },
        );
        log.ivr_step(
            &appeal,
            &IvrStep::CallbackRequested {
                number: n.into(),
                queue: queue.map(str::to_owned),
            },
        );
        appeal
    };
    let attempt = |appeal: &str, number: &str, n: u32, result| {
        log.callback_dialling(appeal, "op1", n);
        log.callback_attempt(
            appeal,
            &CallbackAttempt {
                number,
                operator: "op1",
                attempt: n,
                result,
            },
        );
    };
    let missed = book("+79130000001", Some("regional"));
    let reached = book("+79130000002", None);
    log.callback_dialling(&missed, "op1", 1);
    e.flush().await;
    let get = |q: &'static str| {
        let state = e.state.clone();
        async move {
            let a = call(&state, "GET", &format!("/api/v1/callbacks{q}"), "").await;
            assert_eq!(a.status, StatusCode::OK, "{}", a.body);
            a.json()["callbacks"].as_array().unwrap().clone()
        }
    };
    let all = get("").await;
    assert_eq!(all.len(), 2);
    assert_eq!(all[0]["status"], "dialling");
    assert_eq!(all[0]["operator"], "op1");
    assert_eq!(
        all[0]["queue"], "regional",
        "the queue whose place it keeps"
    );
    assert_eq!(all[1]["status"], "pending");
    assert_eq!(all[1]["queue"], json!(null));

    attempt(&missed, "+79130000001", 1, CallbackOutcome::Busy);
    e.flush().await;
    let all = get("").await;
    assert_eq!(
        (
            &all[0]["status"],
            &all[0]["attempts"],
            &all[0]["last_result"]
        ),
        (&json!("pending"), &json!(1), &json!("busy"))
    );
    attempt(&missed, "+79130000001", 2, CallbackOutcome::NoAnswer);
    log.callback_failed(&missed, 2);
    attempt(&reached, "+79130000002", 1, CallbackOutcome::Answered);
    e.flush().await;

    let failed = get("?status=failed").await;
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["number"], "+79130000001");
    assert_eq!(failed[0]["attempts"], 2);
    assert_eq!(failed[0]["last_result"], "no_answer");
    assert!(failed[0]["completed_at"].is_string());
    let done = get("?status=done").await;
    assert_eq!(done.len(), 1);
    assert_eq!(done[0]["number"], "+79130000002");
    assert_eq!(done[0]["last_result"], "answered");
    assert!(get("?status=pending").await.is_empty());
    let a = call(&e.state, "GET", "/api/v1/callbacks?status=lost", "").await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);
}

mod access_tests;
mod reports_tests;

// --- cases (issue 12): directory, citizens, case fields, worklists --------------------

/// The directory of `config/examples/minsk-139`.
fn minsk_directory() -> crate::directory::Directory {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../config/examples/minsk-139/hotline.toml");
    let c = crate::config::Config::load_with_env(&path, std::iter::empty()).unwrap();
    (*c.directory).clone()
}

#[tokio::test]
async fn directory_routes_list_the_configuration_and_suggest() {
    let e = env().await;
    let d = call(&e.state, "GET", "/api/v1/districts", "").await.json();
    let names: Vec<&str> = d["districts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 10);
    assert!(names.contains(&"Заельцовский") && names.contains(&"Первомайский"));
    let s = call(&e.state, "GET", "/api/v1/services", "").await.json();
    let home = s["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == "home-care")
        .unwrap()
        .clone();
    assert_eq!(home["performer"], "territorial_centre");
    assert_eq!(home["days"], 10);
    let o = call(
        &e.state,
        "GET",
        "/api/v1/organisations?service=home-care&district=kirovsky",
        "",
    )
    .await
    .json();
    assert_eq!(o["suggested"], "kcson-kirovsky");
    assert!(o["organisations"].as_array().unwrap().len() >= 10);
    let codes = call(&e.state, "GET", "/api/v1/case-codes", "").await.json();
    assert!(codes["dispositions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["id"] == "application"));
    for (q, field) in [
        ("service=flying", "service:"),
        ("service=home-care&district=nowhere", "district:"),
    ] {
        let a = call(&e.state, "GET", &format!("/api/v1/organisations?{q}"), "").await;
        assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{q}");
        assert!(a.error().starts_with(field), "{}", a.body);
    }
    // a reload swaps the directory whole
    e.state.directory.set(Arc::new(minsk_directory()));
    let d = call(&e.state, "GET", "/api/v1/districts", "").await.json();
    assert_eq!(d["districts"].as_array().unwrap().len(), 9);
}

#[tokio::test]
async fn citizens_are_created_found_changed_with_versions_and_checked() {
    let e = env().await;
    let op1 = user_token(&e.state, "op1", appeals::Role::Operator).await;
    let made = call_by(
        &e.state,
        &op1,
        "POST",
        "/api/v1/citizens",
        r#"{"name":"Иванова Мария Петровна","phones":["8 913 123-45-67"],
            "address":"ул. Петухова, 12","district":"kirovsky","birth_year":1941,
            "categories":["pensioner"],"flags":[{"flag":"hard-of-hearing"}],"consent":true}"#,
    )
    .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    let c = made.json();
    let id = c["id"].as_str().unwrap().to_owned();
    assert_eq!(c["consent"]["by"], "op1");
    assert_eq!(c["version"], 1);
    assert_eq!(c["phones"], json!(["8 913 123-45-67"]));

    // a call from that number is linked to the card, which lists it
    let appeal = e.appeal(Utc::now(), "city", "+79131234567", AppealUpdate::default());
    e.flush().await;
    let card = call(&e.state, "GET", &format!("/api/v1/citizens/{id}"), "")
        .await
        .json();
    assert_eq!(card["appeals"][0]["id"], appeal.to_string());
    assert_eq!(card["appeals"][0]["citizen_id"], id);
    let found = call(&e.state, "GET", "/api/v1/citizens?phone=%2B79131234567", "")
        .await
        .json();
    assert_eq!(found["citizens"][0]["id"], id);

    let path = format!("/api/v1/citizens/{id}");
    let changed = call(
        &e.state,
        "PATCH",
        &path,
        r#"{"version":1,"address":null,"flags":[{"flag":"lives-alone","until":"2027-03-01"}]}"#,
    )
    .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    let v = changed.json();
    assert_eq!(v["version"], 2);
    assert_eq!(v["address"], Value::Null);
    assert_eq!(v["flags"][0]["until"], "2027-03-01");
    // both are in the audit log: who, and what changed, without the personal text
    let created = audit_of(&e.state, "citizen_created").await;
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].actor, "op1");
    assert_eq!(created[0].role.as_deref(), Some("operator"));
    assert_eq!(created[0].target.as_deref(), Some(id.as_str()));
    assert_eq!(created[0].details["district"]["to"], "kirovsky");
    assert_eq!(created[0].details["name"], json!({ "changed": true }));
    let changed = audit_of(&e.state, "citizen_changed").await;
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0].actor, crate::admin::access::LEGACY_ACTOR);
    assert_eq!(
        changed[0].details,
        json!({ "address": { "changed": true }, "flags": { "changed": true } })
    );
    assert!(!changed[0].details.to_string().contains("Петухова"));
    let stale = call(
        &e.state,
        "PATCH",
        &path,
        r#"{"version":1,"name":"Петрова"}"#,
    )
    .await;
    assert_eq!(stale.status, StatusCode::CONFLICT, "{}", stale.body);
    assert!(stale.error().contains("version 2"), "{}", stale.body);
    // without a version: 422 naming it, nothing written
    let no_version = call(&e.state, "PATCH", &path, r#"{"name":"Петрова"}"#).await;
    assert_eq!(
        no_version.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        no_version.body
    );
    assert_eq!(no_version.json()["field"], "version");
    let card = call(&e.state, "GET", &path, "").await.json();
    assert_eq!(
        (card["version"].clone(), card["name"].clone()),
        (json!(2), json!("Иванова Мария Петровна"))
    );

    for (body, field) in [
        (r#"{"name":"А","district":"atlantis"}"#, "district:"),
        (r#"{"name":"А","categories":["astronaut"]}"#, "categories:"),
        (r#"{"name":"А","flags":[{"flag":"grumpy"}]}"#, "flags:"),
        (r#"{"name":"А","phones":["call me"]}"#, "phones:"),
        (r#"{"name":"  "}"#, "name:"),
        (r#"{"name":"А","birth_year":1700}"#, "birth_year:"),
    ] {
        let a = call(&e.state, "POST", "/api/v1/citizens", body).await;
        assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(a.error().starts_with(field), "{body}: {}", a.body);
    }
    let a = call(
        &e.state,
        "PATCH",
        &path,
        r#"{"version":2,"district":"atlantis"}"#,
    )
    .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(a.error().starts_with("district:"));
    // nothing of the refused edits was written
    let now = e.store.citizen(id.parse().unwrap()).await.unwrap().unwrap();
    assert_eq!(
        (now.version, now.card.name.as_str()),
        (2, "Иванова Мария Петровна")
    );
    let missing = call(
        &e.state,
        "GET",
        &format!("/api/v1/citizens/{}", uuid::Uuid::now_v7()),
        "",
    )
    .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn appeal_case_fields_are_derived_checked_and_versioned() {
    let e = env().await;
    let c = call(
        &e.state,
        "POST",
        "/api/v1/citizens",
        r#"{"name":"Петров","address":"ул. Станиславского, 3","district":"leninsky"}"#,
    )
    .await
    .json();
    let arrived = Utc::now() - chrono::Duration::hours(1);
    let id = e.appeal(arrived, "city", "+79130000009", AppealUpdate::default());
    e.flush().await;
    let path = format!("/api/v1/appeals/{id}");
    let body = format!(
        r#"{{"version":1,"status":"in_progress","citizen_id":"{}","service":"home-care","assignee":"op1"}}"#,
        c["id"].as_str().unwrap()
    );
    let a = call(&e.state, "PATCH", &path, &body).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let v = a.json();
    assert_eq!(v["district"], "leninsky", "from the citizen");
    assert_eq!(v["address"], "ул. Станиславского, 3");
    assert_eq!(v["organisation"], "kcson-leninsky", "suggested");
    let due: DateTime<Utc> = v["due_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        due.timestamp_millis(),
        (arrived + chrono::Duration::days(10)).timestamp_millis()
    );
    assert_eq!(v["version"], 2);

    // the operator overrides the destination; a stale edit is refused and writes nothing
    let o = call(
        &e.state,
        "PATCH",
        &path,
        r#"{"version":2,"organisation":"dsp-mayor"}"#,
    )
    .await;
    assert_eq!(o.status, StatusCode::OK, "{}", o.body);
    assert_eq!(o.json()["organisation"], "dsp-mayor");
    let stale = call(
        &e.state,
        "PATCH",
        &path,
        r#"{"version":2,"assignee":"op2"}"#,
    )
    .await;
    assert_eq!(stale.status, StatusCode::CONFLICT, "{}", stale.body);
    assert_eq!(
        e.store
            .get(id)
            .await
            .unwrap()
            .unwrap()
            .appeal
            .case
            .assignee
            .as_deref(),
        Some("op1")
    );

    for (body, status, field) in [
        (r#"{"service":"flying"}"#, 422, "service:"),
        (r#"{"organisation":"nowhere"}"#, 422, "organisation:"),
        (r#"{"district":"atlantis"}"#, 422, "district:"),
        (r#"{"disposition":"shrug"}"#, 422, "disposition:"),
        (r#"{"citizen_id":"not-a-uuid"}"#, 422, "citizen_id:"),
        (r#"{"due_at":"someday"}"#, 422, "due_at:"),
        (r#"{"status":"pending"}"#, 422, "pending_until:"),
        (r#"{"colour":"red"}"#, 400, "bad JSON"),
    ] {
        let body = &versioned(&e.state, &path, body).await;
        let a = call(&e.state, "PATCH", &path, body).await;
        assert_eq!(a.status.as_u16(), status, "{body}: {}", a.body);
        assert!(a.error().starts_with(field), "{body}: {}", a.body);
    }
    let pending = patch_now(
        &e.state,
        &path,
        r#"{"status":"pending","pending_until":"2099-01-15"}"#,
    )
    .await;
    assert_eq!(pending.status, StatusCode::OK, "{}", pending.body);
    assert_eq!(pending.json()["status"], "pending");

    // every edit is an audit row with what changed
    let edits = audit_of(&e.state, "appeal_changed").await;
    assert!(edits
        .iter()
        .all(|r| r.actor == crate::admin::access::LEGACY_ACTOR));
    assert!(
        edits
            .iter()
            .any(|r| r.target.as_deref() == Some(id.to_string().as_str())
                && r.details["status"] == json!({ "from": "in_progress", "to": "pending" })),
        "{edits:?}"
    );

    // mine, as the assignee sees it; an operator has no overdue list
    let op1 = user_token(&e.state, "op1", appeals::Role::Operator).await;
    let op2 = user_token(&e.state, "op2", appeals::Role::Operator).await;
    let mine = call_by(&e.state, &op1, "GET", "/api/v1/worklists/mine", "")
        .await
        .json();
    assert_eq!(mine["appeals"][0]["id"], id.to_string());
    let theirs = call_by(&e.state, &op2, "GET", "/api/v1/worklists/mine", "")
        .await
        .json();
    assert!(theirs["appeals"].as_array().unwrap().is_empty());
    let overdue = call_by(&e.state, &op2, "GET", "/api/v1/worklists/overdue", "").await;
    assert_eq!(overdue.status, StatusCode::FORBIDDEN, "{}", overdue.body);
    // an operator's due-today is their own (op1's appeal, due now, is not op2's); the
    // missed callers are everyone's to call back
    let was = call(&e.state, "GET", &path, "").await.json()["due_at"].clone();
    assert!(was.is_string(), "{was}");
    let due_now = format!(r#"{{"due_at":"{}"}}"#, Utc::now().to_rfc3339());
    let due = patch_now(&e.state, &path, &due_now).await;
    assert_eq!(due.status, StatusCode::OK, "{}", due.body);
    let due_of = |token: String| {
        let state = e.state.clone();
        async move {
            let a = call_by(&state, &token, "GET", "/api/v1/worklists/due-today", "").await;
            assert_eq!(a.status, StatusCode::OK, "{}", a.body);
            let ids: Vec<String> = a.json()["appeals"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["id"].as_str().unwrap_or_default().to_owned())
                .collect();
            ids
        }
    };
    assert_eq!(due_of(op1.clone()).await, [id.to_string()]);
    assert!(due_of(op2.clone()).await.is_empty());
    let back = patch_now(&e.state, &path, &json!({ "due_at": was }).to_string()).await;
    assert_eq!(back.status, StatusCode::OK, "{}", back.body);
    let missed = call_by(&e.state, &op2, "GET", "/api/v1/worklists/missed", "").await;
    assert_eq!(missed.status, StatusCode::OK, "{}", missed.body);
    let nope = call(&e.state, "GET", "/api/v1/worklists/someday", "").await;
    assert_eq!(nope.status, StatusCode::NOT_FOUND);

    // the appeals search takes the case fields as filters
    let other = e.appeal(Utc::now(), "city", "+79130000010", AppealUpdate::default());
    e.flush().await;
    let found = |q: &str| {
        let state = e.state.clone();
        let q = q.to_owned();
        async move {
            let v = call(&state, "GET", &format!("/api/v1/appeals?{q}"), "")
                .await
                .json();
            v["appeals"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["id"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(found("organisation=dsp-mayor").await, [id.to_string()]);
    assert_eq!(
        found(&format!(
            "citizen_id={}&service=home-care&assignee=op1",
            c["id"].as_str().unwrap()
        ))
        .await,
        [id.to_string()]
    );
    assert_eq!(found("district=leninsky").await, [id.to_string()]);
    assert!(found("overdue=true").await.is_empty());
    assert_eq!(found("").await.len(), 2, "{other}");
    for bad in ["citizen_id=x", "overdue=maybe"] {
        let a = call(&e.state, "GET", &format!("/api/v1/appeals?{bad}"), "").await;
        assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    }
}

/// Minsk's 139 on its example directory: a citizen of Заводской district asks for home
/// care; the application goes to that district's territorial centre, is forwarded and done;
/// one past its due date is overdue.
#[tokio::test]
async fn minsk_home_care_goes_to_the_districts_centre_and_overdue_is_listed() {
    let e = env().await;
    e.state.directory.set(Arc::new(minsk_directory()));
    let c = call(
        &e.state,
        "POST",
        "/api/v1/citizens",
        r#"{"name":"Ковалёва Нина Ивановна","phones":["+375 29 123-45-67"],
            "address":"ул. Ангарская, 20","district":"zavodskoy","consent":true}"#,
    )
    .await
    .json();
    let cid = c["id"].as_str().unwrap();
    // she calls 139 from her mobile, dialled nationally
    let id = e.appeal(
        Utc::now(),
        "minsk-139",
        "80291234567",
        AppealUpdate::default(),
    );
    let late = e.appeal(
        Utc::now() - chrono::Duration::days(20),
        "minsk-139",
        "80291234567",
        AppealUpdate::default(),
    );
    e.flush().await;
    let path = format!("/api/v1/appeals/{id}");
    let a = patch_now(
        &e.state,
        &path,
        r#"{"status":"in_progress","service":"home-care"}"#,
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let v = a.json();
    assert_eq!(v["citizen_id"], cid, "linked by her number");
    assert_eq!(v["district"], "zavodskoy", "from her card");
    assert_eq!(
        v["organisation"], "tcson-zavodskoy",
        "that district's centre"
    );
    for status in ["forwarded", "done"] {
        let a = patch_now(
            &e.state,
            &path,
            &format!(r#"{{"status":"{status}","disposition":"application"}}"#),
        )
        .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    }
    assert_eq!(
        e.store.get(id).await.unwrap().unwrap().appeal.status,
        appeals::Status::Done
    );
    // the one registered 20 days ago for a 10-day service is overdue
    let a = patch_now(
        &e.state,
        &format!("/api/v1/appeals/{late}"),
        r#"{"status":"in_progress","service":"home-care"}"#,
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let overdue = call(&e.state, "GET", "/api/v1/worklists/overdue", "")
        .await
        .json();
    assert_eq!(appeal_ids(&overdue), [late.to_string()]);
}

#[tokio::test]
async fn missed_callers_are_listed_and_closed_with_a_reason() {
    let e = env().await;
    let gone = AppealUpdate {
        outcome: Some(Outcome::Abandoned),
        ..AppealUpdate::default()
    };
    let first = e.appeal(
        Utc::now() - chrono::Duration::hours(2),
        "city",
        "+79130000001",
        gone.clone(),
    );
    let second = e.appeal(
        Utc::now() - chrono::Duration::hours(1),
        "city",
        "+79130000002",
        gone,
    );
    e.flush().await;
    let list = call(&e.state, "GET", "/api/v1/worklists/missed", "")
        .await
        .json();
    let ids: Vec<&str> = list["callers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["appeal_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [first.to_string(), second.to_string()]);
    let close = format!("/api/v1/worklists/missed/{first}/close");
    let empty = call(&e.state, "POST", &close, r#"{"reason":" "}"#).await;
    assert_eq!(empty.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(empty.error().starts_with("reason:"));
    let op1 = user_token(&e.state, "op1", appeals::Role::Operator).await;
    let refused = call_by(&e.state, &op1, "POST", &close, r#"{"reason":"сам"}"#).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    let sup1 = user_token(&e.state, "sup1", appeals::Role::Supervisor).await;
    let done = call_by(
        &e.state,
        &sup1,
        "POST",
        &close,
        r#"{"reason":"дозвонились с личного телефона"}"#,
    )
    .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    let closed = audit_of(&e.state, "missed_closed").await;
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0].actor, "sup1");
    assert_eq!(
        closed[0].target.as_deref(),
        Some(first.to_string().as_str())
    );
    let list = call(&e.state, "GET", "/api/v1/worklists/missed", "")
        .await
        .json();
    assert_eq!(list["callers"][0]["appeal_id"], second.to_string());
    assert_eq!(list["callers"].as_array().unwrap().len(), 1);
}

/// Every answer carries the security headers: pages, the API, a 404; the HTML report keeps
/// its own policy (inline styles, nothing else); HSTS only where the address serves HTTPS.
#[tokio::test]
async fn every_answer_carries_the_security_headers() {
    let mut e = env().await;
    for (path, status) in [
        ("/", StatusCode::OK),
        ("/api/v1/appeals", StatusCode::OK),
        ("/login", StatusCode::METHOD_NOT_ALLOWED),
        ("/no-such-page", StatusCode::NOT_FOUND),
    ] {
        let a = call(&e.state, "GET", path, "").await;
        assert_eq!(a.status, status, "{path}");
        let h = |name: &str| {
            a.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        assert_eq!(h("content-security-policy"), headers::PAGE_CSP, "{path}");
        assert!(h("content-security-policy").contains("frame-ancestors 'none'"));
        assert!(!h("content-security-policy").contains("unsafe-inline"));
        assert_eq!(h("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(h("x-frame-options"), "DENY", "{path}");
        assert_eq!(h("referrer-policy"), "same-origin", "{path}");
        assert!(
            a.headers.get("strict-transport-security").is_none(),
            "{path}: plain HTTP"
        );
    }
    let html = call(&e.state, "GET", "/api/v1/reports?format=html", "").await;
    assert_eq!(html.status, StatusCode::OK, "{}", html.body);
    assert_eq!(
        html.headers["content-security-policy"],
        headers::REPORT_CSP,
        "the report's own policy"
    );
    assert!(html.body.contains("<style>"));
    e.state.tls = true;
    let a = call(&e.state, "GET", "/", "").await;
    assert_eq!(
        a.headers["strict-transport-security"],
        "max-age=31536000; includeSubDomains"
    );
}
