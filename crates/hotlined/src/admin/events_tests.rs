//! `GET /events` and `POST /api/v1/operators/{id}/transfer` on the admin router alone (the
//! harness of `calls` and the daemon tests run the transfer itself).

use std::time::Duration;

use appeals::Role;
use axum::body::Body;
use axum::http::StatusCode;
use chrono::Utc;
use futures_util::StreamExt;
use gateway::live::{LiveEvent, OperatorLive, OperatorPhase, QueueChange, QueueLive};

use super::tests::{env, req, send, user_token};

/// What a stream sends first (its snapshot): chunks until it pauses for 200 ms, or nothing
/// after 2 s.
pub(super) async fn first_chunk(body: Body) -> axum::body::Bytes {
    let mut s = body.into_data_stream();
    let mut got = Vec::new();
    let mut wait = Duration::from_secs(2);
    while let Ok(Some(Ok(b))) = tokio::time::timeout(wait, s.next()).await {
        got.extend_from_slice(&b);
        wait = Duration::from_millis(200);
    }
    got.into()
}

/// Reads a stream until `want` shows up (or 2 s pass); what it read.
async fn read_until(s: &mut axum::body::BodyDataStream, want: &str) -> String {
    let mut got = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while !got.contains(want) {
        match tokio::time::timeout_at(deadline, s.next()).await {
            Ok(Some(Ok(b))) => got.push_str(&String::from_utf8_lossy(&b)),
            _ => break,
        }
    }
    got
}

fn joined(queue: &str, appeal: &str, caller: &str) -> LiveEvent {
    LiveEvent::Queue(QueueLive {
        queue: queue.into(),
        appeal: appeal.into(),
        call: format!("call-{appeal}"),
        change: QueueChange::Joined {
            since: Utc::now(),
            path: vec!["main".into(), "main:1".into()],
            caller: caller.into(),
        },
        at: Utc::now(),
    })
}

/// The snapshot: a supervisor sees every operator and queue with callers' numbers; op1 sees
/// their own operator event and their skill queue without numbers, nothing of op2 or the
/// other queue. Without credentials: 401.
#[tokio::test]
async fn the_snapshot_is_filtered_by_role_and_user() {
    let e = env().await;
    let s = &e.state;
    s.live.apply(joined("general", "A1", "+79131234567"));
    s.live.apply(joined("other", "A2", "+79137654321"));
    s.live.flush();
    let sup = user_token(s, "sup", Role::Supervisor).await;
    let op1 = user_token(s, "op1", Role::Operator).await;

    let anonymous = send(s, req("GET", "/events", "", &[])).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);

    let a = send(
        s,
        req(
            "GET",
            "/events",
            "",
            &[("authorization", &format!("Bearer {sup}"))],
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    for want in [
        "event: operator\ndata: {",
        "\"id\":\"op1\"",
        "\"id\":\"op2\"",
        "\"name\":\"Оператор 1\"",
        "\"state\":\"logged_out\"",
        "event: queue\n",
        "\"caller\":\"+79131234567\"",
        "\"caller\":\"+79137654321\"",
        "\"path\":[\"main\",\"main:1\"]",
        "\"service_level_target_s\":20",
    ] {
        assert!(
            a.body.contains(want),
            "supervisor's snapshot lacks {want}: {}",
            a.body
        );
    }

    let o = send(
        s,
        req(
            "GET",
            "/events",
            "",
            &[("authorization", &format!("Bearer {op1}"))],
        ),
    )
    .await;
    assert_eq!(o.status, StatusCode::OK);
    assert!(o.body.contains("\"id\":\"op1\""), "{}", o.body);
    assert!(o.body.contains("\"appeal\":\"A1\""), "{}", o.body);
    for unwanted in ["\"id\":\"op2\"", "\"appeal\":\"A2\"", "\"caller\""] {
        assert!(
            !o.body.contains(unwanted),
            "operator's snapshot has {unwanted}: {}",
            o.body
        );
    }
}

/// Changes after the snapshot: an operator's new state reaches their stream at once; a
/// queue's change after the flush, with answered/abandoned counts.
#[tokio::test]
async fn changes_follow_the_snapshot() {
    let e = env().await;
    let s = &e.state;
    let op1 = user_token(s, "op1", Role::Operator).await;
    let res = tower::ServiceExt::oneshot(
        super::router(s.clone()),
        req(
            "GET",
            "/events",
            "",
            &[("authorization", &format!("Bearer {op1}"))],
        ),
    )
    .await
    .unwrap();
    assert_eq!(
        res.headers().get("content-type").map(|v| v.as_bytes()),
        Some(&b"text/event-stream"[..])
    );
    let mut body = res.into_body().into_data_stream();
    read_until(&mut body, "\"id\":\"general\"").await;

    s.live.apply(LiveEvent::Operator(OperatorLive {
        id: "op1".into(),
        state: OperatorPhase::Paused,
        since: Utc::now(),
        reason: Some("lunch".into()),
        queues: vec!["general".into()],
    }));
    let got = read_until(&mut body, "lunch").await;
    assert!(got.contains("\"state\":\"paused\""), "{got}");

    s.live.apply(joined("general", "A7", "+79131112233"));
    s.live.apply(LiveEvent::Queue(QueueLive {
        queue: "general".into(),
        appeal: "A7".into(),
        call: "call-A7".into(),
        change: QueueChange::Left {
            exit: gateway::live::QueueExit::Answered,
            waited: Duration::from_secs(5),
        },
        at: Utc::now(),
    }));
    s.live.flush();
    let got = read_until(&mut body, "answered_today").await;
    assert!(got.contains("\"answered_today\":1"), "{got}");
    assert!(got.contains("\"service_level\":1.0"), "{got}");
    assert!(
        !got.contains("+79131112233"),
        "an operator never gets numbers: {got}"
    );
}

/// The transfer route: operators only their own call; exactly one target, each checked
/// (422 naming the field); without a running gateway 503.
#[tokio::test]
async fn transfer_checks_its_body_and_whose_call() {
    let e = env().await;
    let s = &e.state;
    let op1 = format!("Bearer {}", user_token(s, "op1", Role::Operator).await);
    let sup = format!("Bearer {}", user_token(s, "sup", Role::Supervisor).await);
    let post = |who: &str, path: &str, body: &str| {
        req(
            "POST",
            path,
            body,
            &[("authorization", who), ("content-type", "application/json")],
        )
    };
    let other = send(
        s,
        post(
            &op1,
            "/api/v1/operators/op2/transfer",
            r#"{"queue":"general"}"#,
        ),
    )
    .await;
    assert_eq!(other.status, StatusCode::FORBIDDEN);
    for (body, field) in [
        (r#"{}"#, "target"),
        (r#"{"queue":"a","number":"112"}"#, "target"),
        (r#"{"queue":""}"#, "queue"),
        (r#"{"number":"call me"}"#, "number"),
        (r#"{"organisation":"tc-1"}"#, "organisation"),
    ] {
        let a = send(s, post(&sup, "/api/v1/operators/op1/transfer", body)).await;
        assert_eq!(
            a.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            a.body
        );
        assert!(
            a.body.contains(&format!("\"field\":\"{field}\"")),
            "{body}: {}",
            a.body
        );
    }
    // an organisation of the directory: its phone is the target (no gateway here: 503 once
    // the body passed); one without a phone is refused naming the field
    let with_phone = s
        .directory
        .get()
        .organisations
        .iter()
        .find(|o| o.phone.is_some())
        .map(|o| o.id.clone())
        .expect("the shipped directory has an organisation with a phone");
    let body = format!(r#"{{"organisation":"{with_phone}"}}"#);
    let a = send(s, post(&sup, "/api/v1/operators/op1/transfer", &body)).await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{}", a.body);
    let mut d = (*s.directory.get()).clone();
    for o in &mut d.organisations {
        if o.id == with_phone {
            o.phone = None;
        }
    }
    s.directory.set(std::sync::Arc::new(d));
    let a = send(s, post(&sup, "/api/v1/operators/op1/transfer", &body)).await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", a.body);
    assert!(a.body.contains("\"field\":\"organisation\""), "{}", a.body);
    assert!(a.body.contains("phone"), "{}", a.body);
    let bad = send(s, post(&sup, "/api/v1/operators/op1/transfer", "nope")).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let own = send(
        s,
        post(
            &op1,
            "/api/v1/operators/op1/transfer",
            r#"{"queue":"general"}"#,
        ),
    )
    .await;
    assert_eq!(own.status, StatusCode::SERVICE_UNAVAILABLE, "{}", own.body);
}
