//! The built `hotlined` binary as an operator runs it: `check` on good and broken
//! configurations, `run` refusing a broken one before binding, `run` serving `/health` on
//! ports given through `HOTLINE__…` overrides and stopping on SIGTERM, and caller numbers
//! kept out of the log unless redaction is turned off.

// A test file: helpers outside #[test] fns may unwrap too.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

use common::{config_copy, hotlined, http_get, repo, Daemon, CALLER};

/// The shipped file with the `[sip] listen` key misspelt; returns the text and its line (1-based).
fn with_typo(main: &str) -> (String, usize) {
    let key = "listen = \"127.0.0.1:5060\"";
    assert_eq!(
        main.matches(key).count(),
        1,
        "the shipped [sip] listen line"
    );
    let line = main.lines().position(|l| l.starts_with(key)).unwrap() + 1;
    (main.replacen(key, "lisen = \"127.0.0.1:5060\"", 1), line)
}

#[test]
fn check_accepts_the_shipped_config_and_lists_it() {
    let out = hotlined()
        .current_dir(repo())
        .args(["check", "--config", "config/hotline.toml"])
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "config/hotline.toml: OK");
    for want in [
        "  SIP       127.0.0.1:5060 (UDP+TCP), [::1]:5060",
        "  admin     http://127.0.0.1:8080",
        "  line      city 3758787      Городская социальная справочная служба",
        "  operator  op1          Оператор 1",
        "  trunks    local-test",
        "  queue     psychologists  skills       operators op5/1 op6/2; after 300 s: callback; \
         callback offered after 60 s (Психологическая помощь)",
        "  queue     rehab          round-robin  operators op2/1 op3/1 op4/2; after 600 s: \
         queue benefits (Технические средства реабилитации и социальное такси)",
    ] {
        assert!(lines.contains(&want), "no line {want:?} in\n{stdout}");
    }
    assert_eq!(lines.iter().filter(|l| l.starts_with("  line ")).count(), 2);
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("  operator "))
            .count(),
        6
    );
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("  queue ")).count(),
        6
    );
    assert!(
        lines.contains(
            &"  directory 10 districts, 15 organisations, 7 services; \
              9 social categories, 5 flags, 6 dispositions"
        ),
        "{stdout}"
    );
}

#[test]
fn check_accepts_the_minsk_example_and_lists_it() {
    let out = hotlined()
        .current_dir(repo())
        .args([
            "check",
            "--config",
            "config/examples/minsk-139/hotline.toml",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "config/examples/minsk-139/hotline.toml: OK");
    for want in [
        "  line      minsk-139 139          Контакт-центр государственных социальных услуг Минска",
        "  directory 9 districts, 11 organisations, 6 services; \
         9 social categories, 5 flags, 6 dispositions",
    ] {
        assert!(lines.contains(&want), "no line {want:?} in\n{stdout}");
    }
}

#[test]
fn check_reports_unknown_directory_references_at_their_place() {
    let (dir, path) = config_copy(str::to_string);
    let orgs = dir.path().join("organisations.toml");
    let text = std::fs::read_to_string(&orgs).unwrap();
    let good = "districts = [\"kirovsky\"]";
    let line = text.lines().position(|l| l == good).unwrap() + 1;
    std::fs::write(&orgs, text.replace(good, "districts = [\"kirovskiy\"]")).unwrap();
    let out = hotlined()
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        [format!(
            "{}:{line}:14: organisation \"kcson-kirovsky\": unknown district \"kirovskiy\"",
            orgs.display()
        )]
    );
}

#[test]
fn check_reports_queue_and_skill_problems_at_their_keys() {
    let (dir, path) = config_copy(str::to_string);
    let ops = dir.path().join("operators.toml");
    let text = std::fs::read_to_string(&ops).unwrap();
    let good = "skills = { psychologists = 2 }";
    let line = text.lines().position(|l| l == good).unwrap() + 1;
    std::fs::write(&ops, text.replace(good, "skills = { psychology = 2 }")).unwrap();
    let queues = dir.path().join("queues.toml");
    let text = std::fs::read_to_string(&queues).unwrap();
    let good = "strategy = \"ring-all\"";
    let qline = text.lines().position(|l| l == good).unwrap() + 1;
    std::fs::write(&queues, text.replace(good, "strategy = \"random\"")).unwrap();
    let out = hotlined()
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        [
            format!(
                "{}:{qline}:12: queue \"volunteers\": strategy must be one of \
                 \"longest-idle\", \"round-robin\", \"ring-all\", \"fewest-calls\", \
                 \"skills\", not \"random\"",
                queues.display()
            ),
            format!(
                "{}:{line}:12: operator \"op6\": unknown queue \"psychology\" (queues: \
                 benefits, home-care, rehab, volunteers, psychologists, regional)",
                ops.display()
            ),
        ]
    );
}

#[test]
fn check_refuses_disposition_required_without_dispositions() {
    let (dir, path) = config_copy(str::to_string);
    let queues = dir.path().join("queues.toml");
    let text = std::fs::read_to_string(&queues).unwrap();
    let name = "name = \"benefits\"";
    let line = text.lines().position(|l| l == name).unwrap() + 2;
    std::fs::write(
        &queues,
        text.replacen(name, &format!("{name}\ndisposition_required = true"), 1),
    )
    .unwrap();
    let check = || {
        let out = hotlined()
            .args(["check", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8(out.stdout).unwrap())
    };
    // with the shipped dispositions the queue may require one
    let (code, stdout) = check();
    assert_eq!(code, Some(0), "{stdout}");

    // cases.toml without any [[disposition]]: the operator could never save one
    let cases = dir.path().join("cases.toml");
    let text = std::fs::read_to_string(&cases).unwrap();
    let cut = text.find("[[disposition]]").unwrap();
    std::fs::write(&cases, &text[..cut]).unwrap();
    let (code, stdout) = check();
    assert_eq!(code, Some(1), "{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        [format!(
            "{}:{line}:24: queue \"benefits\": disposition_required = true needs the \
             dispositions an operator chooses from, and {} has no [[disposition]]",
            queues.display(),
            cases.display()
        )]
    );
}

#[test]
fn check_reports_a_typo_as_path_line_col() {
    let line = std::cell::Cell::new(0);
    let (_dir, path) = config_copy(|m| {
        let (text, l) = with_typo(m);
        line.set(l);
        text
    });
    let out = hotlined()
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one problem, one line:\n{stdout}");
    let want = format!(
        "{}:{}:1: unknown field `lisen`, expected one of `listen`",
        path.display(),
        line.get()
    );
    assert!(
        lines[0].starts_with(&want),
        "{:?}\nwanted {want:?}",
        lines[0]
    );
}

#[test]
fn check_warns_while_the_shared_legacy_token_is_set() {
    const WARNING: &str = "  warning   admin.token is set: the shared legacy token acts as an admin; give people accounts and API tokens instead";
    let shipped = hotlined()
        .current_dir(repo())
        .args(["check", "--config", "config/hotline.toml"])
        .output()
        .unwrap();
    assert!(shipped.status.success(), "a warning, not an error");
    let stdout = String::from_utf8(shipped.stdout).unwrap();
    assert!(stdout.lines().any(|l| l == WARNING), "{stdout}");
    let (_dir, path) = config_copy(|m| m.replace("token = \"change-me\"", "token = \"\""));
    let out = hotlined()
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(!stdout.contains("warning"), "{stdout}");
}

#[test]
fn report_reads_the_database_in_every_format() {
    let (dir, path) = config_copy(|m| m.to_string());
    let db = format!("sqlite://{}", dir.path().join("data/hotline.db").display());
    let report = |args: &[&str]| {
        hotlined()
            .args(["report", "--config"])
            .arg(&path)
            .args(args)
            .env("HOTLINE__DATABASE__URL", &db)
            .output()
            .unwrap()
    };
    let out = report(&["--from", "2026-11-23", "--to", "2026-11-24", "--lang", "en"]);
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{table}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        table.starts_with("Hotline call report 2026-11-23 – 2026-11-24 (UTC+07:00); service level: answered within 20 s"),
        "{table}"
    );
    assert!(table.contains("By day"), "{table}");
    // Russian unless English is asked for
    let out = report(&["--from", "2026-11-23", "--to", "2026-11-24"]);
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(
        table.starts_with("Отчёт горячей линии 2026-11-23 – 2026-11-24 (UTC+07:00)"),
        "{table}"
    );
    assert!(table.contains("По дням"), "{table}");
    let out = report(&["--from", "2026-11-23", "--format", "csv", "--lang", "en"]);
    let csv = String::from_utf8(out.stdout).unwrap();
    assert!(csv.starts_with("day,group,key,name,calls,"), "{csv}");
    assert!(
        csv.contains("\n2026-11-23,total,,,0,0,0,0,,,,,0\n"),
        "{csv}"
    );
    let out = report(&["--from", "2026-11-23", "--format", "csv"]);
    let csv = String::from_utf8(out.stdout).unwrap();
    assert!(
        csv.starts_with("день,группа,ключ,название,звонков,"),
        "{csv}"
    );
    let out = report(&["--from", "2026-11-23", "--format", "json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["period"]["total"]["calls"], 0);
    let out = report(&["--from", "2026-11-23", "--format", "html"]);
    assert!(String::from_utf8(out.stdout)
        .unwrap()
        .starts_with("<!DOCTYPE html>"));
    let out = report(&["--from", "2026-11-24", "--to", "2026-11-23"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8(out.stderr)
        .unwrap()
        .contains("ends (2026-11-23) before it starts (2026-11-24)"));
}

#[test]
fn run_with_a_broken_config_exits_1_before_binding() {
    // hold the ports the broken config would use: a bind attempt would fail differently
    let sip = UdpSocket::bind("127.0.0.1:0").unwrap();
    let sip_tcp = TcpListener::bind(sip.local_addr().unwrap()).unwrap();
    let admin = TcpListener::bind("127.0.0.1:0").unwrap();
    let (_dir, path) = config_copy(|m| with_typo(m).0);
    let t0 = Instant::now();
    let out = hotlined()
        .args(["run", "--config"])
        .arg(&path)
        .env(
            "HOTLINE__SIP__LISTEN",
            sip.local_addr().unwrap().to_string(),
        )
        .env(
            "HOTLINE__ADMIN__LISTEN",
            admin.local_addr().unwrap().to_string(),
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(t0.elapsed() < Duration::from_secs(3));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.starts_with("hotlined: invalid configuration:\n"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{}:", path.display()))
            && stderr.contains("unknown field `lisen`"),
        "{stderr}"
    );
    assert!(!stderr.contains("cannot bind"), "{stderr}");

    // a bad value from the environment is named too
    let (_dir2, good) = config_copy(str::to_string);
    let out = hotlined()
        .args(["run", "--config"])
        .arg(&good)
        .env("HOTLINE__SIP__LISTEN", "not-an-address")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("HOTLINE__SIP__LISTEN"), "{stderr}");
    assert!(!stderr.contains("cannot bind"), "{stderr}");
    drop((sip, sip_tcp, admin));
}

#[test]
fn run_serves_health_and_stops_on_sigterm() {
    let mut d = Daemon::start(&[]);
    // "hotlined started" is logged just before the gateway's loop marks it ready
    let until = Instant::now() + Duration::from_secs(3);
    let (status, body) = loop {
        let answer = http_get(d.admin, "/health").expect("admin HTTP answers");
        if answer.0 == 200 || Instant::now() > until {
            break answer;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    let (status, metrics) = http_get(d.admin, "/metrics").unwrap();
    assert_eq!(status, 200);
    assert!(metrics.contains("\nhotline_calls_active 0\n"), "{metrics}");
    // SIP answers on the overridden port
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let me = sock.local_addr().unwrap();
    let options = format!(
        "OPTIONS sip:{sip} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-cli-1\r\n\
         Max-Forwards: 70\r\nFrom: <sip:probe@{me}>;tag=p1\r\nTo: <sip:{sip}>\r\n\
         Call-ID: cli-options\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        sip = d.sip
    );
    sock.send_to(options.as_bytes(), d.sip).unwrap();
    let mut buf = [0u8; 4096];
    let (n, _) = sock.recv_from(&mut buf).unwrap();
    assert!(buf[..n].starts_with(b"SIP/2.0 200 "));

    let t0 = Instant::now();
    d.signal("TERM");
    let st = d
        .wait(Duration::from_secs(3))
        .expect("exits within the 1 s grace and a margin");
    assert!(st.success(), "{st:?}\n{}", d.log());
    assert!(t0.elapsed() < Duration::from_secs(3));
    let log = d.log();
    assert!(log.contains("SIGTERM"), "{log}");
    assert!(log.contains("hotlined stopped"), "{log}");
    // the ports are free again
    assert!(TcpListener::bind(d.admin).is_ok());
    assert!(UdpSocket::bind(d.sip).is_ok());
}

/// Send an INVITE from `CALLER` to the city line and wait for its 180; the daemon's log is
/// returned after it is killed.
fn log_of_one_call(env: &[(&str, &str)]) -> String {
    let d = Daemon::start(env);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let me = sock.local_addr().unwrap();
    let sdp = "v=0\r\no=uac 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
               m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";
    let invite = format!(
        "INVITE sip:3758787@{sip} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-cli-inv\r\n\
         Max-Forwards: 70\r\nFrom: \"{CALLER}\" <sip:{CALLER}@{ip}>;tag=c1\r\n\
         To: <sip:3758787@{sip}>\r\nCall-ID: cli-call\r\nCSeq: 1 INVITE\r\n\
         Contact: <sip:{CALLER}@{me}>\r\nContent-Type: application/sdp\r\n\
         Content-Length: {len}\r\n\r\n{sdp}",
        sip = d.sip,
        ip = me.ip(),
        len = sdp.len()
    );
    sock.send_to(invite.as_bytes(), d.sip).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        let (n, _) = sock.recv_from(&mut buf).expect("the call rings");
        if buf[..n].starts_with(b"SIP/2.0 180 ") {
            break;
        }
    }
    d.wait_for_log("call arrived");
    let (_, metrics) = http_get(d.admin, "/metrics").unwrap();
    assert!(metrics.contains("\nhotline_calls_total 1\n"), "{metrics}");
    d.kill()
}

#[test]
fn caller_numbers_are_redacted_in_the_log_by_default() {
    let log = log_of_one_call(&[]);
    let arrived = log
        .lines()
        .find(|l| l.contains("call arrived"))
        .unwrap()
        .to_string();
    assert!(arrived.contains("caller=**********67"), "{arrived}");
    assert!(!log.contains("79131234567"), "{log}");
}

#[test]
fn caller_numbers_are_logged_when_redaction_is_off() {
    let log = log_of_one_call(&[("HOTLINE__LOG__REDACT_CALLERS", "false")]);
    let arrived = log
        .lines()
        .find(|l| l.contains("call arrived"))
        .unwrap()
        .to_string();
    assert!(arrived.contains(&format!("caller={CALLER}")), "{arrived}");
}

/// An HTTP/1.1 request with the shipped admin token: status code and body.
fn http(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer change-me\r\n\
         Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, text.split_once("\r\n\r\n").unwrap().1.to_string())
}

/// One answered call to the city line, held `hold`, then BYE; returns when the BYE is answered.
fn call_city(d: &Daemon, call_id: &str, hold: Duration) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let rtp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let me = sock.local_addr().unwrap();
    let sdp = format!(
        "v=0\r\no=uac 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
        rtp.local_addr().unwrap().port()
    );
    let head = |method: &str, cseq: u32, to_tag: &str, branch: &str| {
        format!(
            "{method} sip:3758787@{sip} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-{branch}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:{CALLER}@{ip}>;tag=c1\r\n\
             To: <sip:3758787@{sip}>{to_tag}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\n\
             Contact: <sip:{CALLER}@{me}>\r\n",
            sip = d.sip,
            ip = me.ip(),
        )
    };
    let invite = format!(
        "{}Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        head("INVITE", 1, "", &format!("{call_id}-1")),
        sdp.len()
    );
    sock.send_to(invite.as_bytes(), d.sip).unwrap();
    let mut buf = [0u8; 4096];
    let ok = loop {
        let (n, _) = sock.recv_from(&mut buf).expect("the call is answered");
        let text = String::from_utf8_lossy(&buf[..n]).to_string();
        if text.starts_with("SIP/2.0 200 ") {
            break text;
        }
    };
    let to_tag = ok
        .lines()
        .find(|l| l.starts_with("To:"))
        .and_then(|l| l.split_once(";tag="))
        .map(|(_, t)| format!(";tag={}", t.trim()))
        .unwrap();
    let ack = format!(
        "{}Content-Length: 0\r\n\r\n",
        head("ACK", 1, &to_tag, &format!("{call_id}-2"))
    );
    sock.send_to(ack.as_bytes(), d.sip).unwrap();
    std::thread::sleep(hold);
    let bye = format!(
        "{}Content-Length: 0\r\n\r\n",
        head("BYE", 2, &to_tag, &format!("{call_id}-3"))
    );
    sock.send_to(bye.as_bytes(), d.sip).unwrap();
    loop {
        let (n, _) = sock.recv_from(&mut buf).expect("the BYE is answered");
        if buf[..n].starts_with(b"SIP/2.0 200 ")
            && String::from_utf8_lossy(&buf[..n]).contains("BYE")
        {
            break;
        }
    }
}

/// The appeal of `call_id` once its IVR path and end have been written (through the spool).
fn appeal_of(d: &Daemon, call_id: &str) -> serde_json::Value {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = http(d.admin, "GET", "/api/v1/appeals?per_page=100");
        if status == 200 {
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            let found = v["appeals"]
                .as_array()
                .unwrap()
                .iter()
                .find(|a| {
                    a["call_id"] == call_id && !a["outcome"].is_null() && !a["ivr_path"].is_null()
                })
                .cloned();
            if let Some(a) = found {
                return a;
            }
        }
        assert!(
            Instant::now() < until,
            "no finished appeal for {call_id}:\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The city line answers at once, so that calls in these tests are quick.
fn city_rings_zero(dir: &Path) {
    let p = dir.join("lines.toml");
    let lines = std::fs::read_to_string(&p).unwrap();
    std::fs::write(
        &p,
        lines.replacen("ring_seconds = 2", "ring_seconds = 0", 1),
    )
    .unwrap();
}

/// Puts a `set` node giving `category` in front of the city menu and starts the city line's
/// calls there (every node stays reachable: it goes on to the greeting).
fn city_tagged(dir: &Path, category: &str) {
    let p = dir.join("lines.toml");
    let lines = std::fs::read_to_string(&p).unwrap();
    let start = lines
        .lines()
        .find(|l| l.starts_with("start = "))
        .unwrap()
        .to_string();
    std::fs::write(&p, lines.replacen(&start, "start = \"tag\"", 1)).unwrap();
    let p = dir.join("ivr/city.toml");
    let menu = std::fs::read_to_string(&p).unwrap();
    let menu = match menu.find("\n# tag\n") {
        Some(i) => menu[..i].to_string(),
        None => menu,
    };
    std::fs::write(
        &p,
        format!("{menu}\n# tag\n[[set]]\nid = \"tag\"\ncategory = \"{category}\"\nnext = \"greeting\"\n"),
    )
    .unwrap();
}

#[test]
fn reload_gives_new_calls_the_new_menu_and_refuses_a_broken_one() {
    let d = Daemon::start_in(&[], city_rings_zero);
    let dir = d.dir().to_path_buf();

    // before: the shipped menu starts with the greeting
    call_city(&d, "reload-1", Duration::from_millis(300));
    let a = appeal_of(&d, "reload-1");
    assert_eq!(a["ivr_path"], "greeting", "{a}");
    // hung up during the greeting, before the menu ended: missed (abandoned)
    assert_eq!(a["outcome"], "abandoned", "{a}");

    // a valid edit through the API: new calls pass a new node first
    city_tagged(&dir, "reloaded");
    let (status, body) = http(d.admin, "POST", "/api/v1/reload");
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["reloaded"], true, "{body}");
    assert_eq!(v["lines"], 2, "{body}");
    assert_eq!(v["restart_needed"], serde_json::json!([]), "{body}");
    call_city(&d, "reload-2", Duration::from_millis(300));
    let a = appeal_of(&d, "reload-2");
    assert_eq!(a["category"], "reloaded", "{a}");
    assert_eq!(a["ivr_path"], "tag>greeting", "{a}");

    // a broken menu: 422 with where the problem is, and the running menu keeps serving
    let city = dir.join("ivr/city.toml");
    let menu = std::fs::read_to_string(&city).unwrap();
    let broken = menu.replacen("next = \"queue-benefits\"", "next = \"nowhere\"", 1);
    let line = broken
        .lines()
        .position(|l| l.contains("\"nowhere\""))
        .unwrap()
        + 1;
    std::fs::write(&city, &broken).unwrap();
    let (status, body) = http(d.admin, "POST", "/api/v1/reload");
    assert_eq!(status, 422, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let problems: Vec<&str> = v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    let want = format!("{}:{line}:", city.display());
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with(&want) && p.contains("nowhere")),
        "{problems:?}"
    );
    // the log line is read from the daemon's stderr by a thread: wait for it
    d.wait_for_log("reload refused");
    call_city(&d, "reload-3", Duration::from_millis(300));
    let a = appeal_of(&d, "reload-3");
    assert_eq!(
        a["category"], "reloaded",
        "the running menu still serves: {a}"
    );

    // `hotlined reload` says the same and exits 1
    let out = hotlined()
        .args(["reload", "--config"])
        .arg(dir.join("hotline.toml"))
        .env("HOTLINE__ADMIN__LISTEN", d.admin.to_string())
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains(&want), "{stdout}");

    // fixed, and a SIGHUP
    std::fs::write(&city, &menu).unwrap();
    city_tagged(&dir, "after-sighup");
    let reloads = d.log().matches("configuration reloaded").count();
    d.signal("HUP");
    let until = Instant::now() + Duration::from_secs(10);
    while d.log().matches("configuration reloaded").count() == reloads {
        assert!(
            Instant::now() < until,
            "no reload after SIGHUP:\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    call_city(&d, "reload-4", Duration::from_millis(300));
    let a = appeal_of(&d, "reload-4");
    assert_eq!(a["category"], "after-sighup", "{a}");

    // and `hotlined reload` with a valid configuration: exit 0, the restart-only change named
    let main = std::fs::read_to_string(dir.join("hotline.toml")).unwrap();
    std::fs::write(
        dir.join("hotline.toml"),
        main.replacen("level = \"info\"", "level = \"debug\"", 1),
    )
    .unwrap();
    let out = hotlined()
        .args(["reload", "--config"])
        .arg(dir.join("hotline.toml"))
        .env("HOTLINE__ADMIN__LISTEN", d.admin.to_string())
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("configuration reloaded"), "{stdout}");
    assert!(stdout.contains("log.level/format"), "{stdout}");
    d.wait_for_log("only take effect after a restart");
}

#[test]
fn check_prints_data_paths_resolved_against_the_config_folder() {
    let repo = std::fs::canonicalize(repo()).unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    // The same file from the repository root and from another working directory.
    for (cwd, config) in [
        (repo.clone(), Path::new("config/hotline.toml").to_path_buf()),
        (
            elsewhere.path().to_path_buf(),
            repo.join("config/hotline.toml"),
        ),
    ] {
        let out = hotlined()
            .current_dir(&cwd)
            .arg("check")
            .arg("--config")
            .arg(&config)
            .output()
            .unwrap();
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert!(out.status.success(), "{stdout}");
        for want in [
            format!("  database  sqlite://{}/data/hotline.db", repo.display()),
            format!("  spool     {}/data/spool", repo.display()),
            format!("  recordings {}/data/recordings", repo.display()),
        ] {
            assert!(
                stdout.lines().any(|l| l == want),
                "no {want:?} from {}:\n{stdout}",
                cwd.display()
            );
        }
    }
    // A relative path from the environment is taken from the config folder too; an absolute
    // one is kept; a password is never printed.
    let (dir, path) = config_copy(str::to_string);
    let folder = std::fs::canonicalize(dir.path()).unwrap();
    let out = hotlined()
        .current_dir(elsewhere.path())
        .args(["check", "--config"])
        .arg(&path)
        .env("HOTLINE__DATABASE__SPOOL_DIR", "state/spool")
        .env("HOTLINE__RECORDING__DIR", "/srv/recordings")
        .env(
            "HOTLINE__DATABASE__URL",
            "postgres://hotline:s3cret@db/hotline",
        )
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains(&format!("  spool     {}/state/spool\n", folder.display())),
        "{stdout}"
    );
    assert!(
        stdout.contains("  recordings /srv/recordings\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  database  postgres://hotline:***@db/hotline\n"),
        "{stdout}"
    );
    assert!(!stdout.contains("s3cret"), "{stdout}");
}

#[test]
fn subcommands_end_quietly_on_a_closed_pipe() {
    use std::os::unix::process::ExitStatusExt;
    use std::process::Stdio;
    for args in [
        &["check"][..],
        &["simulate", "--line", "3758787", "--digits", "1 * 0"][..],
    ] {
        let mut child = hotlined()
            .current_dir(repo())
            .args(args)
            .args(["--config", "config/hotline.toml"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // `| head -0`: the reader is gone before the first line is written.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() || out.status.signal() == Some(13),
            "{args:?}: {:?} {stderr}",
            out.status
        );
        assert!(stderr.is_empty(), "{args:?}: {stderr}");
    }
}

#[test]
fn reload_swaps_the_directory_and_refuses_a_bad_one() {
    let d = Daemon::start_in(&[], |_| {});
    let dir = d.dir().to_path_buf();
    let districts = |d: &Daemon| {
        let (status, body) = http(d.admin, "GET", "/api/v1/districts");
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["districts"].as_array().unwrap().len()
    };
    assert_eq!(districts(&d), 10);

    // a new district and its centre
    let path = dir.join("districts.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        format!("{text}\n[[district]]\nid = \"novy\"\nname = \"Новый\"\n"),
    )
    .unwrap();
    let orgs = dir.join("organisations.toml");
    let good = std::fs::read_to_string(&orgs).unwrap();
    let with_centre = format!(
        "{good}\n[[organisation]]\nid = \"kcson-novy\"\nname = \"Центр Нового района\"\n\
         kind = \"territorial_centre\"\ndistricts = [\"novy\"]\n"
    );
    std::fs::write(&orgs, &with_centre).unwrap();
    let (status, body) = http(d.admin, "POST", "/api/v1/reload");
    assert_eq!(status, 200, "{body}");
    assert_eq!(districts(&d), 11);
    let (_, body) = http(
        d.admin,
        "GET",
        "/api/v1/organisations?service=home-care&district=novy",
    );
    assert!(body.contains("\"suggested\":\"kcson-novy\""), "{body}");

    // a centre naming a district nobody defined: refused where it is, the running one kept
    let bad = with_centre.replace("districts = [\"novy\"]", "districts = [\"novyi\"]");
    let line = bad.lines().position(|l| l.contains("novyi")).unwrap() + 1;
    std::fs::write(&orgs, &bad).unwrap();
    let (status, body) = http(d.admin, "POST", "/api/v1/reload");
    assert_eq!(status, 422, "{body}");
    assert!(
        body.contains(&format!("{}:{line}:14: ", orgs.display()))
            && body.contains("unknown district \\\"novyi\\\""),
        "{body}"
    );
    let (_, body) = http(
        d.admin,
        "GET",
        "/api/v1/organisations?service=home-care&district=novy",
    );
    assert!(body.contains("\"suggested\":\"kcson-novy\""), "{body}");
}

/// Appends one operator to the site's operators file.
fn add_operator(dir: &Path, login: &str) {
    let path = dir.join("operators.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        format!(
            "{text}\n[[operator]]\nlogin = \"{login}\"\nname = \"Новый {login}\"\n\
             password = \"{login}-secret\"\nskills = {{ benefits = 1 }}\n"
        ),
    )
    .unwrap();
}

#[test]
fn reload_adds_operators_the_book_takes() {
    let d = Daemon::start_in(&[], |_| {});
    let dir = d.dir().to_path_buf();
    let (status, body) = http(d.admin, "POST", "/api/v1/operators/op7/login");
    assert_eq!(status, 404, "not configured yet: {body}");

    // through the API
    add_operator(&dir, "op7");
    let (status, body) = http(d.admin, "POST", "/api/v1/reload");
    assert_eq!(status, 200, "{body}");
    let (status, body) = http(d.admin, "POST", "/api/v1/operators/op7/login");
    assert_eq!(status, 200, "the book takes the new operator: {body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["state"], "available", "{body}");
    let (_, body) = http(d.admin, "GET", "/api/v1/operators");
    assert!(body.contains("\"Новый op7\""), "{body}");

    // through SIGHUP (the same path)
    add_operator(&dir, "op8");
    let reloads = d.log().matches("configuration reloaded").count();
    d.signal("HUP");
    let until = Instant::now() + Duration::from_secs(20);
    while d.log().matches("configuration reloaded").count() == reloads {
        assert!(Instant::now() < until, "no reload after SIGHUP");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (status, body) = http(d.admin, "POST", "/api/v1/operators/op8/login");
    assert_eq!(status, 200, "{body}");
    let (status, body) = http(d.admin, "POST", "/api/v1/operators/op8/pause");
    assert_eq!(status, 200, "{body}");
}
