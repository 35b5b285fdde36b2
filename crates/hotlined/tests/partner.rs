//! Two real `hotlined run` daemons — the city centre A and the regional centre B — each with
//! its own SQLite database, pointed at each other through `HOTLINE__PARTNER__…`:
//! a call on A becomes an appeal, A forwards it, it appears on B pointing back, B works it,
//! and A's timeline gets B's status changes. And the restart case: B is down when A forwards
//! (and A itself is killed with the message still queued); when both are back the appeal
//! arrives exactly once.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{eventually, http, ring, Daemon, Site, CALLER};
use serde_json::{json, Value};

const ADMIN: &str = "Bearer change-me";
const SHARED: &str = "city-region-shared-token";
const WAIT: Duration = Duration::from_secs(20);

/// The environment that makes `name` a centre whose partner is `other`.
fn partner_env(name: &str, other: &Site) -> Vec<(String, String)> {
    vec![
        ("HOTLINE__PARTNER__NAME".into(), name.into()),
        (
            "HOTLINE__PARTNER__URL".into(),
            format!("http://{}", other.admin),
        ),
        ("HOTLINE__PARTNER__TOKEN".into(), SHARED.into()),
        ("HOTLINE__PARTNER__RETRY_MIN_MS".into(), "100".into()),
        ("HOTLINE__PARTNER__RETRY_MAX_MS".into(), "400".into()),
        ("HOTLINE__LOG__LEVEL".into(), "info,hotlined=debug".into()),
    ]
}

fn start(site: &Site, env: &[(String, String)]) -> Daemon {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    site.start(&env)
}

/// An admin API call with the legacy admin token: status and JSON body.
fn api(d: &Daemon, method: &str, path: &str, body: &str) -> (u16, Value) {
    api_as(d, ADMIN, method, path, body)
}

/// An admin API call with the `Authorization` value `auth`: status and JSON body.
fn api_as(d: &Daemon, auth: &str, method: &str, path: &str, body: &str) -> (u16, Value) {
    let (status, text) = http(d.admin, method, path, &[("Authorization", auth)], body)
        .unwrap_or_else(|| panic!("{method} {path}: no answer"));
    let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, v)
}

/// A supervisor's personal account on `d`, made through the users API: the
/// `Authorization` value of its API token.
fn supervisor(d: &Daemon, login: &str) -> String {
    let (s, v) = api(
        d,
        "POST",
        "/api/v1/users",
        &json!({ "login": login, "display_name": "Смирнова О. В.", "role": "supervisor",
                 "password": "Region-centre-2026" })
        .to_string(),
    );
    assert_eq!(s, 201, "{v}");
    let (s, v) = api(
        d,
        "POST",
        &format!("/api/v1/users/{login}/tokens"),
        r#"{"name":"partner test"}"#,
    );
    assert_eq!(s, 201, "{v}");
    format!("Bearer {}", v["token"].as_str().unwrap())
}

/// The appeals on `d` (newest first), once its database is connected (503 until then).
fn appeals(d: &Daemon) -> Vec<Value> {
    eventually(WAIT, "the appeal list", || {
        let (s, v) = api(d, "GET", "/api/v1/appeals?per_page=100", "");
        assert!(s == 200 || s == 503, "{s} {v}");
        (s == 200).then(|| v["appeals"].as_array().unwrap().clone())
    })
}

/// Rings the city line on `d` and returns the appeal the call became.
fn call_appeal(d: &Daemon, call_id: &str) -> String {
    let _call = ring(d.sip, "3758787", CALLER, call_id);
    eventually(WAIT, "the call's appeal", || {
        appeals(d)
            .into_iter()
            .find(|a| a["call_id"] == call_id)
            .map(|a| a["id"].as_str().unwrap().to_owned())
    })
}

/// B's appeals that point back at A's `id`.
fn received(b: &Daemon, id: &str) -> Vec<Value> {
    appeals(b)
        .into_iter()
        .filter(|a| a["partner_ref"] == format!("city:{id}"))
        .collect()
}

fn timeline(d: &Daemon, id: &str) -> Value {
    let (s, v) = api(d, "GET", &format!("/api/v1/appeals/{id}"), "");
    assert_eq!(s, 200, "{v}");
    v
}

#[test]
fn two_daemons_forward_an_appeal_and_see_the_status_come_back() {
    let (site_a, site_b) = (Site::new(), Site::new());
    let a = start(&site_a, &partner_env("city", &site_b));
    let b = start(&site_b, &partner_env("region", &site_a));

    let id = call_appeal(&a, "partner-call-1");
    let (s, v) = api(
        &a,
        "POST",
        &format!("/api/v1/appeals/{id}/forward"),
        &json!({"note": "нужен уход на дому", "destination_org": "ГАУ НСО «Геронтологический центр»"})
            .to_string(),
    );
    assert_eq!(s, 202, "{v}");
    assert_eq!(v["appeal"]["status"], "forwarded");

    // It appears on B, pointing back at A's appeal…
    let on_b = eventually(WAIT, "the appeal on B", || received(&b, &id).pop());
    let theirs = on_b["id"].as_str().unwrap().to_owned();
    assert_eq!(on_b["status"], "new");
    assert_eq!(on_b["line"], "partner:city");
    assert_eq!(on_b["caller_number"], CALLER);
    assert_eq!(on_b["destination_org"], "ГАУ НСО «Геронтологический центр»");
    assert_eq!(on_b["notes"], "нужен уход на дому");
    let created = &timeline(&b, &theirs)["events"][0];
    assert_eq!(created["kind"], "created");
    assert_eq!(created["data"]["from_partner"], "city");
    assert_eq!(created["data"]["partner_appeal"], id.as_str());
    // … and A keeps B's reference.
    let want_ref = format!("region:{theirs}");
    eventually(WAIT, "A's partner_ref", || {
        (timeline(&a, &id)["partner_ref"] == want_ref.as_str()).then_some(())
    });

    // A supervisor on B works it with their own account; A's timeline gets each status
    // with who made it.
    let smirnova = supervisor(&b, "smirnova");
    for status in ["in_progress", "done"] {
        let path = format!("/api/v1/appeals/{theirs}");
        let (_, now) = api_as(&b, &smirnova, "GET", &path, "");
        let (s, v) = api_as(
            &b,
            &smirnova,
            "PATCH",
            &path,
            &json!({ "status": status, "version": now["version"] }).to_string(),
        );
        assert_eq!(s, 200, "{v}");
    }
    let t = eventually(WAIT, "B's statuses on A's timeline", || {
        let t = timeline(&a, &id);
        let n = t["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "partner_update" && e["data"].get("status").is_some())
            .count();
        // the status follows the update it came with: wait for both
        (n == 2 && t["status"] == "done").then_some(t)
    });
    let updates: Vec<&Value> = t["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "partner_update" && e["data"].get("status").is_some())
        .collect();
    assert_eq!(updates[0]["data"]["status"], "in_progress");
    assert_eq!(updates[1]["data"]["status"], "done");
    assert_eq!(updates[0]["data"]["partner_appeal"], theirs.as_str());
    assert_eq!(updates[0]["data"]["partner_actor"], "smirnova");
    assert_eq!(updates[1]["data"]["partner_actor"], "smirnova");
    assert_eq!(updates[0]["actor"], "partner:region");
    // B's `resolved` resolves A's forwarded appeal.
    assert_eq!(t["status"], "done");
    let kinds: Vec<&str> = t["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.starts_with(&["created"]), "{kinds:?}");
    // the call is still in the menu while it is forwarded: its own steps may land in between
    let tail: Vec<&str> = kinds[kinds.iter().position(|k| *k == "forwarded").unwrap()..]
        .iter()
        .copied()
        .filter(|k| !k.starts_with("ivr_") && *k != "entered_queue" && *k != "ended")
        .collect();
    assert_eq!(
        tail,
        [
            "forwarded",
            "partner_update",
            "partner_update",
            "partner_update",
            "status_changed"
        ],
        "{kinds:?}"
    );
    // Still one appeal on B.
    assert_eq!(received(&b, &id).len(), 1);

    // The partner routes take the shared token, not the admin one.
    let (s, _) = http(
        b.admin,
        "POST",
        "/api/v1/partner/appeals",
        &[("Authorization", ADMIN), ("Idempotency-Key", "x")],
        "{}",
    )
    .unwrap();
    assert_eq!(s, 401);
}

#[test]
fn an_appeal_forwarded_while_the_partner_is_down_arrives_exactly_once() {
    let (site_a, site_b) = (Site::new(), Site::new());
    let env_a = partner_env("city", &site_b);
    let env_b = partner_env("region", &site_a);
    let a = start(&site_a, &env_a);
    let mut b = start(&site_b, &env_b);
    let id = call_appeal(&a, "partner-call-2");

    // B stops; A forwards: queued, retried.
    b.signal("TERM");
    assert!(b.wait(Duration::from_secs(5)).is_some(), "B stops");
    let (s, v) = api(&a, "POST", &format!("/api/v1/appeals/{id}/forward"), "");
    assert_eq!(s, 202, "{v}");
    a.wait_for_log("partner delivery failed; will retry");
    assert_eq!(timeline(&a, &id)["partner_ref"], Value::Null);

    // A is killed with the message still queued, B comes back, then A: the outbox is in A's
    // database, so the message goes out after the restart.
    let log_a = a.kill();
    assert!(!log_a.contains("partner accepted"), "{log_a}");
    let b = start(&site_b, &env_b);
    assert!(received(&b, &id).is_empty());
    let a = start(&site_a, &env_a);
    let on_b = eventually(WAIT, "the appeal on B", || received(&b, &id).pop());
    let want_ref = format!("region:{}", on_b["id"].as_str().unwrap());
    eventually(WAIT, "A's partner_ref", || {
        (timeline(&a, &id)["partner_ref"] == want_ref.as_str()).then_some(())
    });
    // Give a duplicate every chance to show up: none does.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(received(&b, &id).len(), 1);
    assert_eq!(appeals(&b).len(), 1, "B has only the forwarded appeal");
    let delivered = timeline(&a, &id)["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "partner_update" && e["data"]["delivered"] == true)
        .count();
    assert_eq!(delivered, 1);
}

/// The kinds of `d`'s appeal `id`'s timeline events, in order.
fn kinds(d: &Daemon, id: &str) -> Vec<String> {
    timeline(d, id)["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect()
}

/// Status both ways between two real daemons: what A (the origin) changes on the appeal it
/// forwarded reaches B's copy — the due date, a reopening after B closed it, a withdrawal —
/// while B's own status still comes back to A, nothing echoes, and an update posted twice
/// applies once.
#[test]
fn two_daemons_carry_the_origins_changes_to_the_partner() {
    let (site_a, site_b) = (Site::new(), Site::new());
    let a = start(&site_a, &partner_env("city", &site_b));
    let b = start(&site_b, &partner_env("region", &site_a));
    let id = call_appeal(&a, "partner-call-3");
    let (s, v) = api(&a, "POST", &format!("/api/v1/appeals/{id}/forward"), "");
    assert_eq!(s, 202, "{v}");
    let theirs = eventually(WAIT, "the appeal on B", || received(&b, &id).pop())["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // every edit names the version it was made on: read it, then PATCH
    let patch = |d: &Daemon, appeal: &str, mut body: Value| {
        let path = format!("/api/v1/appeals/{appeal}");
        let (_, now) = api(d, "GET", &path, "");
        body["version"] = now["version"].clone();
        let (s, v) = api(d, "PATCH", &path, &body.to_string());
        assert_eq!(s, 200, "{body}: {v}");
        v
    };
    let on_b = |what: &str, ok: &dyn Fn(&Value) -> bool| {
        eventually(WAIT, what, || {
            let t = timeline(&b, &theirs);
            ok(&t).then_some(t)
        })
    };

    // A moves the due date and writes a note: B's copy gets the date, the note on its
    // timeline.
    let v = patch(
        &a,
        &id,
        json!({"due_at": "2026-12-20", "notes": "Звонить дочери"}),
    );
    let due = v["due_at"].clone();
    assert!(due.is_string(), "{v}");
    let t = on_b("the due date on B", &|t| t["due_at"] == due);
    let report = t["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "partner_update")
        .unwrap();
    assert_eq!(report["data"]["notes"], "Звонить дочери");
    assert_eq!(report["actor"], "partner:city");
    assert_eq!(t["status"], "new");

    // B works it and finishes it with its result: A shows it done, with B's result.
    patch(&b, &theirs, json!({ "status": "in_progress" }));
    patch(
        &b,
        &theirs,
        json!({"status": "done", "resolution": "Назначена выплата"}),
    );
    let t = eventually(WAIT, "A done", || {
        let t = timeline(&a, &id);
        (t["status"] == "done").then_some(t)
    });
    assert_eq!(t["resolution"], "Назначена выплата", "{t}");
    assert!(
        t["events"].as_array().unwrap().iter().any(
            |e| e["kind"] == "partner_update" && e["data"]["resolution"] == "Назначена выплата"
        ),
        "{t}"
    );

    // A reopens it: B's copy reopens. A withdraws it: B's copy is declined.
    patch(&a, &id, json!({"status": "in_progress"}));
    on_b("B reopened", &|t| t["status"] == "in_progress");
    patch(
        &a,
        &id,
        json!({"status": "declined", "resolution": "Отозвано заявителем"}),
    );
    let t = on_b("B declined", &|t| t["status"] == "declined");
    let last = t["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["kind"], "status_changed");
    assert_eq!(last["actor"], "partner:city");
    assert_eq!(
        last["data"],
        json!({"from": "in_progress", "to": "declined"})
    );

    // The same update posted twice (the sender lost the answer) applies once.
    let path = format!("/api/v1/partner/appeals/{id}/update");
    let bearer = format!("Bearer {SHARED}");
    let body = json!({"centre": "city", "at": "2026-11-23T05:00:00Z",
                      "status": {"from": "declined", "to": "in_progress"}})
    .to_string();
    let before = kinds(&b, &theirs).len();
    for duplicate in [false, true] {
        let (s, text) = http(
            b.admin,
            "POST",
            &path,
            &[("Authorization", &bearer), ("Idempotency-Key", "twice-1")],
            &body,
        )
        .unwrap();
        assert_eq!(s, 200, "{text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["duplicate"], json!(duplicate));
    }
    let t = timeline(&b, &theirs);
    assert_eq!(t["status"], "in_progress");
    assert_eq!(
        t["events"].as_array().unwrap().len(),
        before + 2,
        "applied once"
    );
    // … and the copy, open now, cannot be reopened: 409, nothing written.
    let (s, text) = http(
        b.admin,
        "POST",
        &path,
        &[("Authorization", &bearer), ("Idempotency-Key", "twice-2")],
        &body,
    )
    .unwrap();
    assert_eq!(s, 409, "{text}");
    assert_eq!(kinds(&b, &theirs).len(), before + 2);

    // A closes an appeal B has not started: B's `new` copy cannot become `done` (409); A's
    // sender gives it up, and A's timeline says why.
    let second = call_appeal(&a, "partner-call-4");
    let (s, v) = api(&a, "POST", &format!("/api/v1/appeals/{second}/forward"), "");
    assert_eq!(s, 202, "{v}");
    let copy = eventually(WAIT, "the second appeal on B", || {
        received(&b, &second).pop()
    })["id"]
        .as_str()
        .unwrap()
        .to_owned();
    patch(&a, &second, json!({"status": "done"}));
    let refused = eventually(WAIT, "the refusal on A's timeline", || {
        timeline(&a, &second)["events"]
            .as_array()
            .unwrap()
            .iter()
            .find_map(|e| e["data"]["delivery_failed"].as_str().map(str::to_owned))
    });
    assert!(
        refused.contains("409") && refused.contains("cannot become done"),
        "{refused}"
    );
    assert_eq!(timeline(&b, &copy)["status"], "new");

    // No echo: give one every chance to show up. A heard B's two statuses only; B's copy
    // heard A's three updates (and the one posted by hand) only.
    std::thread::sleep(Duration::from_millis(1500));
    let a_heard = timeline(&a, &id)["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "partner_update" && e["data"].get("status").is_some())
        .count();
    assert_eq!(a_heard, 2);
    let b_heard = kinds(&b, &theirs)
        .iter()
        .filter(|k| *k == "partner_update")
        .count();
    assert_eq!(
        b_heard, 4,
        "three updates from A and the one posted by hand"
    );
    let log = b.kill();
    assert!(
        log.contains("the partner changed an appeal it forwarded"),
        "B logs it"
    );
    assert!(
        !log.contains("Звонить дочери") && !log.contains("Отозвано"),
        "no personal text in the log"
    );
}
