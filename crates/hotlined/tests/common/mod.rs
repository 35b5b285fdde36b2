//! Helpers shared by the tests that run the built `hotlined` binary: configuration copies,
//! free ports, a [`Daemon`] on a [`Site`] (restartable on the same database and ports), a
//! minimal HTTP/1.1 client for the admin API, and a one-INVITE SIP caller.

// Test support code: each test file uses a different part of it, and may unwrap.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const CALLER: &str = "+79131234567";

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The binary with no `HOTLINE…` variables inherited from whoever runs the tests.
pub fn hotlined() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hotlined"));
    for (k, _) in std::env::vars() {
        if k.starts_with("HOTLINE") {
            c.env_remove(k);
        }
    }
    c.env("NO_COLOR", "1");
    c
}

/// Copies a folder with everything in it (the lines name menus, the menus name prompts).
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        let kind = e.file_type().unwrap();
        if kind.is_symlink() {
            // config/examples/*/prompts links to the shipped prompts: keep it a link
            std::os::unix::fs::symlink(std::fs::read_link(e.path()).unwrap(), target).unwrap();
        } else if kind.is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// A copy of the shipped configuration in a temp folder, with `edit` applied to hotline.toml.
pub fn config_copy(edit: impl Fn(&str) -> String) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&repo().join("config"), dir.path());
    let main = std::fs::read_to_string(repo().join("config/hotline.toml")).unwrap();
    let path = dir.path().join("hotline.toml");
    std::fs::write(&path, edit(&main)).unwrap();
    (dir, path)
}

/// A port free on 127.0.0.1 for both UDP and TCP (released again before returning).
pub fn free_sip_port() -> u16 {
    loop {
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = u.local_addr().unwrap().port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

pub fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Where a daemon lives: a copy of the shipped configuration (without its IPv6 listener,
/// which a test host may lack), free ports, and a folder for its database and spool. A site
/// outlives the daemons started on it, so a daemon can be stopped and started again with its
/// database and ports.
pub struct Site {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub sip: SocketAddr,
    pub admin: SocketAddr,
}

impl Site {
    pub fn new() -> Site {
        let (dir, config) = config_copy(|m| {
            m.lines()
                .filter(|l| !l.starts_with("listen_v6"))
                .collect::<Vec<_>>()
                .join("\n")
        });
        Site {
            dir,
            config,
            sip: ([127, 0, 0, 1], free_sip_port()).into(),
            admin: ([127, 0, 0, 1], free_tcp_port()).into(),
        }
    }

    /// The SQLite database the daemon writes.
    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("hotline.db")
    }

    /// `hotlined run` on this site: its ports, and its database, spool and recordings in the
    /// site's folder (not the crate's).
    pub fn command(&self) -> Command {
        let mut cmd = hotlined();
        cmd.args(["run", "--config"])
            .arg(&self.config)
            .env("HOTLINE__SIP__LISTEN", self.sip.to_string())
            .env("HOTLINE__ADMIN__LISTEN", self.admin.to_string())
            .env("HOTLINE__CALLS__SHUTDOWN_GRACE", "1")
            .env("HOTLINE__SIP__T1_MS", "20")
            .env(
                "HOTLINE__DATABASE__URL",
                format!("sqlite://{}", self.db_path().display()),
            )
            .env(
                "HOTLINE__DATABASE__SPOOL_DIR",
                self.dir.path().join("spool"),
            )
            .env(
                "HOTLINE__RECORDING__DIR",
                self.dir.path().join("recordings"),
            );
        cmd
    }

    /// Starts `hotlined run` on this site with `env` added, and waits for it to be up.
    pub fn start(&self, env: &[(&str, &str)]) -> Daemon {
        let mut cmd = self.command();
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let pipe = child.stderr.take().unwrap();
        let sink = stderr.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        let d = Daemon {
            child,
            stderr,
            reader: Some(reader),
            sip: self.sip,
            admin: self.admin,
            _site: None,
        };
        d.wait_for_log("hotlined started");
        d
    }
}

/// A running daemon whose stderr is collected as it comes.
pub struct Daemon {
    child: Child,
    stderr: Arc<Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
    pub sip: SocketAddr,
    pub admin: SocketAddr,
    _site: Option<Site>,
}

impl Daemon {
    /// A daemon on a site of its own (see [`Site`]), with `env` added.
    pub fn start(env: &[(&str, &str)]) -> Daemon {
        let site = Site::new();
        let mut d = site.start(env);
        d._site = Some(site);
        d
    }

    /// The same, with `prepare` run on the configuration folder before the daemon starts.
    pub fn start_in(env: &[(&str, &str)], prepare: impl FnOnce(&Path)) -> Daemon {
        let site = Site::new();
        prepare(site.dir.path());
        let mut d = site.start(env);
        d._site = Some(site);
        d
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The configuration folder of the daemon's site (when it owns one).
    pub fn dir(&self) -> &Path {
        self._site
            .as_ref()
            .map(|s| s.dir.path())
            .expect("a daemon started with its own site")
    }

    pub fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub fn wait_for_log(&self, what: &str) {
        // generous: a loaded machine (several builds at once) can take seconds to start a
        // debug daemon; a healthy one answers at once, so this only bounds a failure
        let until = Instant::now() + Duration::from_secs(30);
        while !self.log().contains(what) {
            assert!(
                Instant::now() < until,
                "no {what:?} in the log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// Wait up to `d` for the process to exit.
    pub fn wait(&mut self, d: Duration) -> Option<ExitStatus> {
        let until = Instant::now() + d;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                if let Some(r) = self.reader.take() {
                    r.join().unwrap();
                }
                return Some(st);
            }
            if Instant::now() >= until {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGKILL and collect the whole log.
    pub fn kill(mut self) -> String {
        let _ = self.child.kill();
        self.wait(Duration::from_secs(5)).unwrap();
        self.log()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain HTTP/1.1 GET: status code and body.
pub fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n")?.1.to_string();
    Some((status, body))
}

/// One HTTP/1.1 request with `Connection: close`: status code and body.
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(request(addr, method, path, headers, body).as_bytes())
        .ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    answer(raw)
}

/// The text of an HTTP/1.1 request with `Connection: close` (JSON when there is a body).
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> String {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() {
        head.push_str("Content-Type: application/json\r\n");
    }
    head.push_str("\r\n");
    head.push_str(body);
    head
}

/// Status code and body of a whole HTTP/1.1 answer (chunked or not).
pub fn answer(raw: Vec<u8>) -> Option<(u16, String)> {
    let text = String::from_utf8(raw).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)?
    } else {
        body.to_string()
    };
    Some((status, body))
}

/// The body of a chunked HTTP/1.1 answer.
fn dechunk(mut s: &str) -> Option<String> {
    let mut out = String::new();
    loop {
        let (size, rest) = s.split_once("\r\n")?;
        let n = usize::from_str_radix(size.trim(), 16).ok()?;
        if n == 0 {
            return Some(out);
        }
        out.push_str(rest.get(..n)?);
        s = rest.get(n + 2..)?;
    }
}

/// A call from `caller` to `number`: one INVITE over UDP, waiting for its 180. Returns the
/// socket (keep it while the call should stay up).
pub fn ring(sip: SocketAddr, number: &str, caller: &str, call_id: &str) -> UdpSocket {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let me = sock.local_addr().unwrap();
    let sdp = "v=0\r\no=uac 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
               m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";
    let invite = format!(
        "INVITE sip:{number}@{sip} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-{call_id}\r\n\
         Max-Forwards: 70\r\nFrom: \"{caller}\" <sip:{caller}@{ip}>;tag=c1\r\n\
         To: <sip:{number}@{sip}>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\n\
         Contact: <sip:{caller}@{me}>\r\nContent-Type: application/sdp\r\n\
         Content-Length: {len}\r\n\r\n{sdp}",
        ip = me.ip(),
        len = sdp.len()
    );
    sock.send_to(invite.as_bytes(), sip).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        let (n, _) = sock.recv_from(&mut buf).expect("the call rings");
        if buf[..n].starts_with(b"SIP/2.0 180 ") {
            return sock;
        }
    }
}

/// Polls `f` every 50 ms until it gives `Some`, for at most `within`.
pub fn eventually<T>(within: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let until = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
