//! Access with the real daemon: the demo accounts of a first start on a loopback address,
//! logging in through `POST /login`, a session that survives a restart of the daemon, the
//! shared legacy token working as an admin (with a warning) and its reload in the audit log;
//! `hotlined user` reading passwords from stdin; and a non-loopback admin address refused
//! before anything is bound while the token is `change-me` or no admin exists.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Stdio;
use std::time::Duration;

use common::{hotlined, http, Site};

/// One raw HTTP/1.1 exchange: status, head, body.
fn raw(addr: SocketAddr, request: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text.split_whitespace().nth(1).unwrap().parse().unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    (status, head.to_owned(), body.to_owned())
}

/// `POST /login`: status and the session cookie (`hotline_session=…`) when one was set.
fn login(addr: SocketAddr, user: &str, password: &str) -> (u16, Option<String>) {
    let body = format!("login={user}&password={password}");
    let (status, head, _) = raw(
        addr,
        &format!(
            "POST /login HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    );
    let cookie = head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .map(|l| l[11..].trim().split(';').next().unwrap().to_owned());
    (status, cookie)
}

fn me(addr: SocketAddr, cookie: &str) -> (u16, String) {
    http(addr, "GET", "/api/v1/me", &[("Cookie", cookie)], "").unwrap()
}

#[test]
fn demo_accounts_log_in_and_their_sessions_survive_a_restart() {
    let site = Site::new();
    let mut d = site.start(&[]);
    d.wait_for_log("demo accounts made");
    let log = d.log();
    assert!(log.contains("admin / admin-secret"), "{log}");
    assert!(
        log.contains("admin.token is set"),
        "the legacy token is warned about"
    );
    // the demo accounts exist once the store is connected
    let mut session = None;
    for _ in 0..100 {
        let (status, cookie) = login(d.admin, "admin", "admin-secret");
        if status == 303 {
            session = cookie;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let admin = session.expect("admin logs in");
    let (status, body) = me(d.admin, &admin);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"role\":\"admin\""), "{body}");
    let (status, op1) = login(d.admin, "op1", "op1-secret");
    assert_eq!(status, 303);
    let op1 = op1.unwrap();
    assert!(me(d.admin, &op1).1.contains("Оператор 1"));
    assert_eq!(login(d.admin, "op1", "wrong-one").0, 401);

    // the shared legacy token is an admin: a reload, recorded in the audit log
    let legacy = [("Authorization", "Bearer change-me")];
    let (status, body) = http(d.admin, "POST", "/api/v1/reload", &legacy, "").unwrap();
    assert_eq!(status, 200, "{body}");

    // a restart keeps the sessions (they are in the database)
    d.signal("TERM");
    assert!(d.wait(Duration::from_secs(20)).is_some());
    drop(d);
    let d = site.start(&[]);
    d.wait_for_log("admin API: database connected");
    let (status, body) = me(d.admin, &op1);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"id\":\"op1\""));
    // an operator's session is refused a supervisor's route
    let (status, _) = http(
        d.admin,
        "GET",
        "/api/v1/reports/daily",
        &[("Cookie", &op1)],
        "",
    )
    .unwrap();
    assert_eq!(status, 403);
    assert!(!d.log().contains("demo accounts made"), "made once only");

    let (status, body) = http(
        d.admin,
        "GET",
        "/api/v1/audit?action=config_reloaded",
        &legacy,
        "",
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"actor\":\"admin-token\""), "{body}");
    // a SIGHUP reload is recorded too
    d.signal("HUP");
    common::eventually(
        Duration::from_secs(60),
        "the SIGHUP reload in the audit log",
        || {
            let (_, body) = http(
                d.admin,
                "GET",
                "/api/v1/audit?action=config_reloaded&actor=sighup",
                &legacy,
                "",
            )?;
            body.contains("\"reloaded\":true").then_some(())
        },
    );
    let (_, body) = http(d.admin, "GET", "/api/v1/audit?action=login_ok", &legacy, "").unwrap();
    assert!(
        body.contains("\"actor\":\"op1\"") && body.contains("127.0.0.1"),
        "{body}"
    );
}

/// `hotlined user …` on the site's database; `stdin` is the password line.
fn user_cmd(site: &Site, args: &[&str], stdin: &str) -> (bool, String) {
    let mut c = hotlined();
    c.arg("user")
        .args(args)
        .arg("--config")
        .arg(&site.config)
        .env(
            "HOTLINE__DATABASE__URL",
            format!("sqlite://{}", site.db_path().display()),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// `hotlined run` on a non-loopback admin address with `env`: it must exit before binding.
fn refused(site: &Site, env: &[(&str, &str)]) -> String {
    // 192.0.2.1 (TEST-NET-1) is not an address of this machine: binding it would fail
    // too, so a refusal must come from the check, which the message shows.
    // the site's own ports, database, spool and recordings
    let mut c = site.command();
    c.env("HOTLINE__ADMIN__LISTEN", "192.0.2.1:18080")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    assert!(!out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn users_from_the_cli_and_a_public_admin_address_needs_an_admin() {
    let site = Site::new();
    let e = refused(&site, &[]);
    assert!(
        e.contains("not a loopback address") && e.contains("change-me"),
        "{e}"
    );
    assert!(!e.contains("hotlined started"));
    let e = refused(&site, &[("HOTLINE__ADMIN__TOKEN", "")]);
    assert!(e.contains("no enabled admin account"), "{e}");
    assert!(e.contains("hotlined user add"), "{e}");

    // the password comes from stdin, never from the command line
    let (ok, out) = user_cmd(&site, &["add", "boss", "--role", "admin"], "short\n");
    assert!(!ok && out.contains("password"), "{out}");
    let (ok, out) = user_cmd(&site, &["add", "boss", "--role", "root"], "Long-enough-9\n");
    assert!(!ok && out.contains("role"), "{out}");
    let (ok, out) = user_cmd(
        &site,
        &["add", "boss", "--role", "admin"],
        "Long-enough-9\n",
    );
    assert!(ok, "{out}");
    let (ok, out) = user_cmd(
        &site,
        &["add", "op1", "--role", "operator"],
        "Zima-long-pass\n",
    );
    assert!(ok, "{out}");
    // an organisation account names an organisation of organisations.toml
    let (ok, out) = user_cmd(
        &site,
        &[
            "add",
            "tc1",
            "--role",
            "organisation",
            "--organisation",
            "tc-nowhere",
        ],
        "Long-enough-9\n",
    );
    assert!(!ok && out.contains("organisations.toml"), "{out}");
    let (ok, out) = user_cmd(
        &site,
        &[
            "add",
            "tc1",
            "--role",
            "organisation",
            "--organisation",
            "kcson-dzerzhinsky",
        ],
        "Long-enough-9\n",
    );
    assert!(ok, "{out}");
    let check = || {
        let out = hotlined()
            .args(["check", "--config"])
            .arg(&site.config)
            .env(
                "HOTLINE__DATABASE__URL",
                format!("sqlite://{}", site.db_path().display()),
            )
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    assert!(!check().contains("tc1"), "{}", check());
    // …and `hotlined check` warns when organisations.toml no longer has it
    let orgs = site.config.parent().unwrap().join("organisations.toml");
    let text = std::fs::read_to_string(&orgs).unwrap();
    std::fs::write(
        &orgs,
        text.replace("\"kcson-dzerzhinsky\"", "\"kcson-dzerzhinsky-2\""),
    )
    .unwrap();
    let out = check();
    assert!(
        out.contains("warning   account \"tc1\" names organisation \"kcson-dzerzhinsky\", which organisations.toml does not have"),
        "{out}"
    );
    std::fs::write(&orgs, text).unwrap();
    let (ok, out) = user_cmd(&site, &["list"], "");
    assert!(ok);
    assert!(out.contains("boss") && out.contains("admin"), "{out}");
    assert!(
        out.contains("Оператор 1"),
        "the operator's name from operators.toml: {out}"
    );
    assert!(!out.contains("Long-enough"), "{out}");
    let (ok, _) = user_cmd(&site, &["disable", "boss"], "");
    assert!(!ok, "the last admin stays");
    let (ok, _) = user_cmd(&site, &["passwd", "op1"], "Vesna-new-long-pass\n");
    assert!(ok);
    let (ok, _) = user_cmd(&site, &["disable", "op1"], "");
    assert!(ok);
    let (_, out) = user_cmd(&site, &["list"], "");
    assert!(out.contains("(disabled)"), "{out}");

    // with an admin, the check passes and only the (impossible) bind fails
    let e = refused(&site, &[("HOTLINE__ADMIN__TOKEN", "")]);
    assert!(!e.contains("no enabled admin account"), "{e}");
    assert!(e.contains("192.0.2.1"), "{e}");
}
