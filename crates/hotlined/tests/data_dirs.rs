//! One data directory per daemon: a second `hotlined run` pointed at the spool (or the
//! recordings) of a running one refuses to start, before binding any port, naming the folder
//! and the holder's pid, while the first goes on taking calls; every call of the first has
//! exactly one appeal in its own database.

// A test file: helpers outside #[test] fns may unwrap too.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::Path;
use std::process::Output;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{ring, Site};

/// Rings the city line (2 s of ringing) and CANCELs it; returns once the INVITE got its 487.
fn cancelled_call(sip: SocketAddr, call_id: &str) {
    let sock = ring(sip, "3758787", "+79130000001", call_id);
    let me = sock.local_addr().unwrap();
    let head = |method: &str, to_tag: &str| {
        format!(
            "{method} sip:3758787@{sip} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-{call_id}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:+79130000001@127.0.0.1>;tag=c1\r\n\
             To: <sip:3758787@{sip}>{to_tag}\r\nCall-ID: {call_id}\r\nCSeq: 1 {method}\r\n\
             Content-Length: 0\r\n\r\n"
        )
    };
    sock.send_to(head("CANCEL", "").as_bytes(), sip).unwrap();
    let mut buf = [0u8; 4096];
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        assert!(Instant::now() < until, "no 487 for {call_id}");
        let Ok((n, _)) = sock.recv_from(&mut buf) else {
            continue;
        };
        let msg = String::from_utf8_lossy(&buf[..n]);
        if msg.starts_with("SIP/2.0 487 ") {
            let tag = msg
                .lines()
                .find(|l| l.to_ascii_lowercase().starts_with("to:"))
                .and_then(|l| l.split(";tag=").nth(1))
                .unwrap_or("")
                .trim()
                .to_owned();
            sock.send_to(head("ACK", &format!(";tag={tag}")).as_bytes(), sip)
                .unwrap();
            return;
        }
    }
}

/// `hotlined run` on `site` (its own ports, database and folders) with `env` on top, to the end.
fn second_daemon(site: &Site, env: &[(&str, &Path)]) -> Output {
    let mut cmd = site.command();
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn appeals_by_call(db: &Path) -> BTreeMap<String, i64> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        sqlx::any::install_default_drivers();
        let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&format!(
            "sqlite://{}",
            db.display()
        ))
        .await
        .unwrap();
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT call_id, COUNT(*) FROM appeals GROUP BY call_id")
                .fetch_all(&mut conn)
                .await
                .unwrap();
        rows.into_iter().collect()
    })
}

#[test]
fn a_second_daemon_on_the_same_data_folders_is_refused_while_the_first_takes_calls() {
    let a = Site::new();
    let first = a.start(&[]);
    let spool_a = std::fs::canonicalize(a.dir.path().join("spool")).unwrap();
    let recordings_a = std::fs::canonicalize(a.dir.path().join("recordings")).unwrap();

    // Calls go on into the first daemon the whole time.
    let stop = Arc::new(AtomicBool::new(false));
    let caller = {
        let (stop, sip) = (stop.clone(), a.sip);
        std::thread::spawn(move || {
            let mut ids = Vec::new();
            let mut handles = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) || i < 12 {
                let id = format!("dd-{i}");
                ids.push(id.clone());
                handles.push(std::thread::spawn(move || cancelled_call(sip, &id)));
                i += 1;
                std::thread::sleep(Duration::from_millis(150));
            }
            for h in handles {
                h.join().unwrap();
            }
            ids
        })
    };

    let b = Site::new();
    // B with A's spool folder (its own database, recordings and ports).
    let t0 = Instant::now();
    let out = second_daemon(&b, &[("HOTLINE__DATABASE__SPOOL_DIR", &spool_a)]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(t0.elapsed() < Duration::from_secs(5), "{stderr}");
    let want = format!(
        "{} is in use by another hotlined (pid {})",
        spool_a.display(),
        first.pid()
    );
    assert!(stderr.contains(&want), "no {want:?} in {stderr}");
    // Refused before binding: its ports are free, its database untouched.
    UdpSocket::bind(b.sip).unwrap();
    TcpListener::bind(b.sip).unwrap();
    TcpListener::bind(b.admin).unwrap();
    assert!(!b.db_path().exists());

    // B with A's recordings folder and a spool of its own: refused the same way.
    let out = second_daemon(&b, &[("HOTLINE__RECORDING__DIR", &recordings_a)]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{} is in use by another hotlined (pid {})",
            recordings_a.display(),
            first.pid()
        )),
        "{stderr}"
    );

    stop.store(true, Ordering::Relaxed);
    let ids = caller.join().unwrap();
    assert!(ids.len() >= 12);
    // Every call of the first daemon has exactly one appeal in its database.
    let until = Instant::now() + Duration::from_secs(15);
    let by_call = loop {
        let by_call = appeals_by_call(&a.db_path());
        if by_call.len() >= ids.len() || Instant::now() > until {
            break by_call;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let want: BTreeMap<String, i64> = ids.iter().map(|id| (id.clone(), 1)).collect();
    assert_eq!(by_call, want);
    assert!(!first.log().contains("replaying the appeal spool"));
    drop(first); // SIGKILL

    // The kernel let go of the lock with the process: a daemon on A's data starts.
    let db_a = format!("sqlite://{}", a.db_path().display());
    let again = b.start(&[
        ("HOTLINE__DATABASE__SPOOL_DIR", spool_a.to_str().unwrap()),
        ("HOTLINE__RECORDING__DIR", recordings_a.to_str().unwrap()),
        ("HOTLINE__DATABASE__URL", &db_a),
    ]);
    assert!(
        again.log().contains("data folders locked"),
        "{}",
        again.log()
    );
}
