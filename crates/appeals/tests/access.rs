//! The access store (`appeals::access`) on SQLite, and on PostgreSQL under
//! `scripts/with-postgres.sh`: accounts with their audit rows, sessions (idle, lifetime,
//! ended, disabled account, a new store on the same database), tokens (found by hash,
//! revoked, disabled account), the login throttle, and the audit log's filters.

#![allow(clippy::unwrap_used)]

mod common;

use appeals::{AuditEntry, AuditFilter, NewUser, Role, Store, UserChange};
use chrono::{Duration, Utc};
use common::TestDb;
use serde_json::json;

fn audit(action: &str, target: &str) -> AuditEntry {
    AuditEntry {
        at: Utc::now(),
        actor: "tester".into(),
        role: Some("admin".into()),
        address: Some("127.0.0.1".into()),
        action: action.into(),
        target: Some(target.into()),
        details: json!({ "x": 1 }),
    }
}

fn new_user(id: &str, role: Role) -> NewUser {
    NewUser {
        id: id.into(),
        display_name: format!("Имя {id}"),
        role,
        organisation_id: (role == Role::Organisation).then(|| "tc-1".into()),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
    }
}

async fn accounts_sessions_and_tokens(db: TestDb) {
    let store = Store::connect(&db.url).await.unwrap();
    assert_eq!(store.user_counts().await.unwrap(), (0, 0));
    store
        .create_user(
            &new_user("boss", Role::Admin),
            &audit("user_created", "boss"),
        )
        .await
        .unwrap();
    store
        .create_user(
            &new_user("op1", Role::Operator),
            &audit("user_created", "op1"),
        )
        .await
        .unwrap();
    let dup = store
        .create_user(
            &new_user("op1", Role::Supervisor),
            &audit("user_created", "op1"),
        )
        .await;
    assert!(matches!(dup, Err(appeals::Error::UserExists(_))));
    assert_eq!(store.user_counts().await.unwrap(), (2, 1));
    // a refused duplicate writes no audit row
    let made = store
        .audit_search(&AuditFilter {
            action: Some("user_created".into()),
            limit: 10,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(made.len(), 2);
    assert_eq!(made[0].entry.target.as_deref(), Some("op1"), "newest first");

    // sessions: found while live, within both limits
    let now = Utc::now();
    store
        .create_session("h1", "op1", "csrf-1", Some("10.0.0.1"), now)
        .await
        .unwrap();
    let live = store
        .session("h1", now - Duration::minutes(30), now - Duration::hours(12))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (live.user.id.as_str(), live.csrf.as_str()),
        ("op1", "csrf-1")
    );
    assert!(
        store
            .session("h1", now + Duration::seconds(1), now - Duration::hours(1))
            .await
            .unwrap()
            .is_none(),
        "idle too long"
    );
    assert!(
        store
            .session("h1", now - Duration::hours(1), now + Duration::seconds(1))
            .await
            .unwrap()
            .is_none(),
        "older than its lifetime"
    );
    // another store on the same database (a restart) finds it
    let again = Store::connect(&db.url).await.unwrap();
    assert!(again
        .session("h1", now - Duration::minutes(30), now - Duration::hours(12))
        .await
        .unwrap()
        .is_some());
    // a new password ends the account's sessions
    store
        .update_user(
            "op1",
            &UserChange {
                password_hash: Some("$argon2id$new".into()),
                ..UserChange::default()
            },
            &audit("user_changed", "op1"),
        )
        .await
        .unwrap();
    assert!(store
        .session("h1", now - Duration::minutes(30), now - Duration::hours(12))
        .await
        .unwrap()
        .is_none());
    store
        .create_session("h2", "op1", "csrf-2", None, now)
        .await
        .unwrap();
    assert!(store.end_session("h2", now).await.unwrap());
    assert!(!store.end_session("h2", now).await.unwrap());

    // tokens: by hash, with the account's role; revoked; a disabled account's stop working
    let t = store
        .create_token("op1", "script", "tokhash", &audit("token_created", "op1"))
        .await
        .unwrap();
    let (info, user) = store.token_user("tokhash").await.unwrap().unwrap();
    assert_eq!((info.id, user.role), (t.id, Role::Operator));
    assert!(store.token_user("other").await.unwrap().is_none());
    store
        .update_user(
            "op1",
            &UserChange {
                disabled: Some(true),
                ..UserChange::default()
            },
            &audit("user_changed", "op1"),
        )
        .await
        .unwrap();
    assert!(store.token_user("tokhash").await.unwrap().is_none());
    store
        .update_user(
            "op1",
            &UserChange {
                disabled: Some(false),
                role: Some(Role::Organisation),
                organisation_id: Some(Some("tc-7".into())),
                ..UserChange::default()
            },
            &audit("user_changed", "op1"),
        )
        .await
        .unwrap();
    let u = store.user("op1").await.unwrap().unwrap();
    assert_eq!(
        (u.role, u.organisation_id.as_deref()),
        (Role::Organisation, Some("tc-7"))
    );
    let revoked = store
        .revoke_token(t.id, &audit("token_revoked", "op1"))
        .await
        .unwrap()
        .unwrap();
    assert!(revoked.revoked_at.is_some());
    assert!(store.token_user("tokhash").await.unwrap().is_none());
    let missing = store
        .update_user(
            "ghost",
            &UserChange::default(),
            &audit("user_changed", "ghost"),
        )
        .await;
    assert!(matches!(missing, Err(appeals::Error::NoUser(_))));
    let kinds: Vec<String> = store
        .audit_search(&AuditFilter {
            target: Some("op1".into()),
            limit: 100,
            ..AuditFilter::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.entry.action)
        .collect();
    for k in ["user_created", "user_changed", "token_revoked"] {
        assert!(kinds.iter().any(|a| a == k), "{k} in {kinds:?}");
    }
    // a new token's audit row names the token (never the token itself)
    let made = store
        .audit_search(&AuditFilter {
            action: Some("token_created".into()),
            limit: 10,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(made.len(), 1);
    assert_eq!(made[0].entry.target, Some(t.id.to_string()));
    let ghost = store
        .audit_search(&AuditFilter {
            target: Some("ghost".into()),
            limit: 10,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert!(
        ghost.is_empty(),
        "no audit row for a change that did not happen"
    );
}
on_both!(accounts_sessions_and_tokens);

async fn the_login_throttle(db: TestDb) {
    let store = Store::connect(&db.url).await.unwrap();
    let now = Utc::now();
    let lock = Duration::minutes(15);
    for n in 1..5 {
        let t = store.login_failed("login:op1", now, 5, lock).await.unwrap();
        assert_eq!((t.failures, t.locked_until), (n, None));
    }
    assert_eq!(store.locked_until(&["login:op1"], now).await.unwrap(), None);
    let t = store.login_failed("login:op1", now, 5, lock).await.unwrap();
    assert_eq!(t.locked_until, Some(now + lock));
    let until = store
        .locked_until(&["address:1.2.3.4", "login:op1"], now)
        .await
        .unwrap();
    assert!(until.is_some());
    // it ends by itself
    assert_eq!(
        store
            .locked_until(&["login:op1"], now + lock + Duration::seconds(1))
            .await
            .unwrap(),
        None
    );
    // a success forgets the count
    store.login_failed("login:op2", now, 5, lock).await.unwrap();
    store.login_succeeded("login:op2").await.unwrap();
    let t = store.login_failed("login:op2", now, 5, lock).await.unwrap();
    assert_eq!(t.failures, 1);
}
on_both!(the_login_throttle);

async fn audit_filters(db: TestDb) {
    let store = Store::connect(&db.url).await.unwrap();
    let t0 = Utc::now() - Duration::days(2);
    for (i, action) in ["login_ok", "appeal_changed", "login_ok"]
        .iter()
        .enumerate()
    {
        let mut e = audit(action, "a1");
        e.at = t0 + Duration::hours(i as i64);
        e.actor = format!("u{i}");
        store.audit(&e).await.unwrap();
    }
    let all = |f: AuditFilter| {
        let store = store.clone();
        async move { store.audit_search(&f).await.unwrap() }
    };
    let rows = all(AuditFilter {
        limit: 10,
        ..AuditFilter::default()
    })
    .await;
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0].entry.actor, "u2");
    assert_eq!(rows[0].entry.details, json!({ "x": 1 }));
    let logins = all(AuditFilter {
        action: Some("login_ok".into()),
        limit: 10,
        ..AuditFilter::default()
    })
    .await;
    assert_eq!(logins.len(), 2);
    let window = all(AuditFilter {
        from: Some(t0 + Duration::minutes(30)),
        to: Some(t0 + Duration::minutes(90)),
        actor: Some("u1".into()),
        limit: 10,
        ..AuditFilter::default()
    })
    .await;
    assert_eq!(window.len(), 1);
    assert_eq!(window[0].entry.action, "appeal_changed");
    let one = all(AuditFilter {
        limit: 1,
        ..AuditFilter::default()
    })
    .await;
    assert_eq!(one.len(), 1);
}
on_both!(audit_filters);
