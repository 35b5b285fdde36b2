//! The real gateway on 127.0.0.1 (and ::1) with OS-chosen ports, driven by a tiny test UAC that
//! writes literal SIP text over UDP or TCP and reads the answers with `sip::parse_message`.
//!
//! Every test asserts what a caller sees on the wire (status, the headers that matter, the
//! order of messages) and what the gateway counts in [`Stats`]. Timers are short (`t1` 20 ms,
//! rings of 100 ms) so each test takes well under five seconds.

// Test helpers outside `#[test]` functions: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::sync::Mutex;

use gateway::{
    CallArrived, CallEnded, CallLog, EndReason, Gateway, LineSettings, Settings, Stats,
    TrunkSettings,
};
use sip::{HeaderName, Message, Method, Request, Response};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long the UAC waits for a message it expects.
const WAIT: Duration = Duration::from_secs(2);
/// The city line: answers after a short ring.
const CITY: &str = "3758787";
/// A line that rings for a long time (for CANCEL and retransmissions while ringing).
const SLOW: &str = "5550000";
const CALLER: &str = "+79131234567";

fn settings() -> Settings {
    Settings {
        t1: Duration::from_millis(20),
        digest_algorithms: vec![sip::auth::Algorithm::Md5, sip::auth::Algorithm::Sha256],
        lines: vec![
            LineSettings {
                name: "City".into(),
                ..test_support::line("city", &[CITY, "83833758787"], Duration::from_millis(100))
            },
            LineSettings {
                name: "Slow".into(),
                ..test_support::line("slow", &[SLOW], Duration::from_secs(30))
            },
        ],
        trunks: vec![TrunkSettings {
            name: "local".into(),
            allow: vec!["127.0.0.1/32".parse().unwrap(), "::1/128".parse().unwrap()],
            credentials: None,
            outbound: None,
        }],
        operators: test_support::operators(&["op1"]),
        rtp_ports: (20_000, 20_100),
        recordings_dir: std::env::temp_dir().join("hotline-gateway-tests"),
        max_call: Duration::from_secs(3600),
        ..test_support::settings()
    }
}

/// What the gateway wrote to its call log: (appeal, line, caller) on arrival, then the end.
/// Appeals read `appeal-N` for the N-th id call control minted.
#[derive(Default)]
struct RecordingLog {
    arrived: Mutex<Vec<(String, String, String)>>,
    ended: Mutex<Vec<(String, EndReason, bool)>>,
    /// The ids as minted (UUIDs), in the order the calls arrived.
    ids: Mutex<Vec<String>>,
}

impl RecordingLog {
    fn short(&self, appeal: &str) -> String {
        let ids = self.ids.lock().unwrap();
        match ids.iter().position(|i| i == appeal) {
            Some(n) => format!("appeal-{}", n + 1),
            None => format!("unknown {appeal}"),
        }
    }
}

impl CallLog for RecordingLog {
    fn call_arrived(&self, appeal: &str, call: &CallArrived<'_>) {
        assert_eq!(appeal.len(), 36, "a UUID: {appeal}");
        self.ids.lock().unwrap().push(appeal.to_string());
        let id = self.short(appeal);
        let mut a = self.arrived.lock().unwrap();
        a.push((id, call.line.to_string(), call.caller.to_string()));
    }
    fn call_ended(&self, appeal: &str, end: &CallEnded) {
        let id = self.short(appeal);
        self.ended
            .lock()
            .unwrap()
            .push((id, end.reason, end.answered));
    }
}

/// A running gateway.
struct Server {
    addr: SocketAddr,
    stats: Arc<Stats>,
    log: Arc<RecordingLog>,
    stop: CancellationToken,
    run: JoinHandle<()>,
}

impl Server {
    async fn start(s: Settings) -> Server {
        Self::start_with(s, gateway::OverloadSettings::default()).await
    }

    async fn start_with(s: Settings, overload: gateway::OverloadSettings) -> Server {
        let stats = Arc::new(Stats::default());
        let log = Arc::new(RecordingLog::default());
        let gw = Gateway::bind(s, stats.clone(), log.clone())
            .await
            .unwrap()
            .with_overload(overload);
        let addr = gw.local_addrs()[0];
        assert_ne!(addr.port(), 0, "port 0 resolved");
        let stop = CancellationToken::new();
        let run = tokio::spawn(gw.run(stop.clone()));
        Server {
            addr,
            stats,
            log,
            stop,
            run,
        }
    }

    fn stat(&self, f: impl Fn(&Stats) -> u64) -> u64 {
        f(&self.stats)
    }

    /// The gateway task is still serving (it did not panic or stop on the test's input).
    fn assert_alive(&self) {
        assert!(!self.run.is_finished(), "gateway task ended");
    }
}

fn calls(s: &Stats) -> u64 {
    s.calls.load(Ordering::Relaxed)
}
fn calls_total(s: &Stats) -> u64 {
    s.calls_total.load(Ordering::Relaxed)
}

enum Conn {
    Udp(UdpSocket),
    Tcp {
        stream: TcpStream,
        framer: sip::StreamFramer,
    },
}

/// The test UAC: literal SIP text out, parsed messages in.
struct Uac {
    conn: Conn,
    me: SocketAddr,
    server: SocketAddr,
    queue: VecDeque<Message>,
    /// (Call-ID, CSeq) of every 2xx to an INVITE read so far: over UDP the gateway sends it
    /// again until our ACK arrives, so a late ACK can leave one before the next request.
    answered: Vec<(String, u32)>,
}

impl Uac {
    async fn udp(server: SocketAddr) -> Uac {
        let bind: SocketAddr = if server.is_ipv4() {
            "127.0.0.1:0".parse().unwrap()
        } else {
            "[::1]:0".parse().unwrap()
        };
        let sock = UdpSocket::bind(bind).await.unwrap();
        let me = sock.local_addr().unwrap();
        Uac {
            conn: Conn::Udp(sock),
            me,
            server,
            queue: VecDeque::new(),
            answered: Vec::new(),
        }
    }

    async fn tcp(server: SocketAddr) -> Uac {
        let stream = TcpStream::connect(server).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let me = stream.local_addr().unwrap();
        Uac {
            conn: Conn::Tcp {
                stream,
                framer: sip::StreamFramer::new(65_535),
            },
            me,
            server,
            queue: VecDeque::new(),
            answered: Vec::new(),
        }
    }

    fn transport(&self) -> &'static str {
        match self.conn {
            Conn::Udp(_) => "UDP",
            Conn::Tcp { .. } => "TCP",
        }
    }

    async fn send_bytes(&mut self, bytes: &[u8]) {
        match &mut self.conn {
            Conn::Udp(s) => {
                s.send_to(bytes, self.server).await.unwrap();
            }
            Conn::Tcp { stream, .. } => stream.write_all(bytes).await.unwrap(),
        }
    }

    async fn send(&mut self, text: &str) {
        self.send_bytes(text.as_bytes()).await;
    }

    /// The next message, or `None` after `d`.
    async fn try_recv(&mut self, d: Duration) -> Option<Message> {
        if let Some(m) = self.queue.pop_front() {
            return Some(m);
        }
        let deadline = tokio::time::Instant::now() + d;
        loop {
            match &mut self.conn {
                Conn::Udp(s) => {
                    let mut buf = vec![0u8; 65_536];
                    let (n, from) = tokio::time::timeout_at(deadline, s.recv_from(&mut buf))
                        .await
                        .ok()?
                        .unwrap();
                    assert_eq!(from, self.server, "datagram from the gateway's address");
                    return Some(parse(&buf[..n]));
                }
                Conn::Tcp { stream, framer } => {
                    while let Some(f) = framer.next_message() {
                        if let sip::Frame::Message(bytes) = f.unwrap() {
                            self.queue.push_back(parse(&bytes));
                        }
                    }
                    if let Some(m) = self.queue.pop_front() {
                        return Some(m);
                    }
                    let mut buf = vec![0u8; 16 * 1024];
                    let n = tokio::time::timeout_at(deadline, stream.read(&mut buf))
                        .await
                        .ok()?
                        .unwrap();
                    assert!(n > 0, "gateway closed the TCP connection");
                    framer.push(&buf[..n]);
                }
            }
        }
    }

    async fn recv(&mut self) -> Message {
        match self.try_recv(WAIT).await {
            Some(m) => m,
            None => panic!("nothing from the gateway within {WAIT:?}"),
        }
    }

    async fn response(&mut self) -> Response {
        match self.recv().await {
            Message::Response(r) => {
                if let Some(key) = invite_ok(&r) {
                    self.answered.push(key);
                }
                r
            }
            Message::Request(r) => panic!("expected a response, got {} {}", r.method, r.uri),
        }
    }

    /// The next request; a 2xx to an INVITE already read (sent again before our ACK got
    /// there) is skipped, any other response fails the test.
    async fn request(&mut self) -> Request {
        loop {
            match self.recv().await {
                Message::Request(r) => return r,
                Message::Response(r) => {
                    let again = invite_ok(&r).is_some_and(|k| self.answered.contains(&k));
                    assert!(again, "expected a request, got {} {}", r.status, r.reason);
                }
            }
        }
    }

    /// The next response with exactly this status.
    async fn expect(&mut self, status: u16) -> Response {
        let r = self.response().await;
        assert_eq!(r.status, status, "got {} {}", r.status, r.reason);
        r
    }

    /// Skip provisional responses; the first final one.
    async fn final_response(&mut self) -> Response {
        loop {
            let r = self.response().await;
            if r.status >= 200 {
                return r;
            }
        }
    }

    /// Nothing at all arrives for `d`.
    async fn expect_silence(&mut self, d: Duration) {
        if let Some(m) = self.try_recv(d).await {
            panic!("expected silence, got {:?}", first_line(&m));
        }
    }

    /// Answer a request from the gateway.
    async fn answer(&mut self, req: &Request, status: u16) {
        let bytes = req.response(status).to_bytes();
        self.send_bytes(&bytes).await;
    }
}

/// (Call-ID, CSeq number) of a 2xx answering an INVITE.
fn invite_ok(r: &Response) -> Option<(String, u32)> {
    let cseq = r.headers.cseq().ok()?;
    if !(200..300).contains(&r.status) || cseq.method != Method::Invite {
        return None;
    }
    Some((r.headers.call_id().ok()?.to_string(), cseq.seq))
}

fn parse(bytes: &[u8]) -> Message {
    match sip::parse_message(bytes) {
        Ok(m) => m,
        Err(e) => panic!(
            "gateway sent an unparsable message ({e:?}):\n{}",
            String::from_utf8_lossy(bytes)
        ),
    }
}

fn first_line(m: &Message) -> String {
    match m {
        Message::Request(r) => format!("{} {}", r.method, r.uri),
        Message::Response(r) => format!("{} {}", r.status, r.reason),
    }
}

fn header<'a>(r: &'a Response, name: &str) -> &'a str {
    r.headers
        .get(&HeaderName::from_name(name))
        .unwrap_or_else(|| panic!("no {name} in {} {}", r.status, r.reason))
}

fn to_tag(r: &Response) -> Option<String> {
    r.headers.to_addr().unwrap().tag().map(str::to_string)
}

fn body(r: &Response) -> String {
    String::from_utf8(r.body.clone()).unwrap()
}

/// An SDP offer with the given payload types (`rtpmap` lines) and direction.
fn sdp(formats: &[(u8, &str)], direction: &str) -> String {
    let pts: Vec<String> = formats.iter().map(|(pt, _)| pt.to_string()).collect();
    let mut s = format!(
        "v=0\r\no=uac 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP {}\r\n",
        pts.join(" ")
    );
    for (pt, map) in formats {
        s.push_str(&format!("a=rtpmap:{pt} {map}\r\n"));
    }
    s.push_str(&format!("a={direction}\r\n"));
    s
}

fn g711_offer() -> String {
    sdp(
        &[
            (0, "PCMU/8000"),
            (8, "PCMA/8000"),
            (101, "telephone-event/8000"),
        ],
        "sendrecv",
    )
}

static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
fn unique(prefix: &str) -> String {
    format!("{prefix}{}", NEXT.fetch_add(1, Ordering::Relaxed))
}
fn branch() -> String {
    unique("z9hG4bK-test-")
}

/// One call leg as the UAC sees it.
#[derive(Clone)]
struct Leg {
    /// The dialled number (Request-URI user of the INVITE, To user).
    number: String,
    caller: String,
    call_id: String,
    from_tag: String,
    /// The gateway's tag, once a response carried it.
    to_tag: Option<String>,
    /// Request-URI for in-dialog requests: the Contact of the gateway's 2xx.
    target: Option<String>,
}

impl Leg {
    fn new(number: &str) -> Leg {
        Leg {
            number: number.into(),
            caller: CALLER.into(),
            call_id: unique("call-"),
            from_tag: unique("ft"),
            to_tag: None,
            target: None,
        }
    }

    /// A request in literal text. `extra` are whole header lines without CRLF; a non-empty
    /// body is sent as application/sdp.
    fn request(
        &self,
        uac: &Uac,
        method: &str,
        cseq: u32,
        branch: &str,
        extra: &[&str],
        body: &str,
    ) -> String {
        // in a dialog: the gateway's Contact; otherwise (INVITE, its CANCEL and non-2xx ACK,
        // out-of-dialog requests) the dialled number at the gateway
        let uri = match &self.target {
            Some(t) => t.clone(),
            None => format!("sip:{}@{}", self.number, uac.server),
        };
        let to_tag = self
            .to_tag
            .as_ref()
            .map(|t| format!(";tag={t}"))
            .unwrap_or_default();
        let mut s = format!(
            "{method} {uri} SIP/2.0\r\n\
             Via: SIP/2.0/{tp} {me};branch={branch};rport\r\n\
             Max-Forwards: 70\r\n\
             From: \"Caller\" <sip:{caller}@{me_ip}>;tag={from_tag}\r\n\
             To: <sip:{number}@{server}>{to_tag}\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} {method}\r\n\
             Contact: <sip:{caller_user}@{me}{tp_param}>\r\n",
            tp = uac.transport(),
            me = uac.me,
            me_ip = host(uac.me),
            caller = self.caller,
            caller_user = self.caller.trim_start_matches('+'),
            from_tag = self.from_tag,
            number = self.number,
            server = uac.server,
            call_id = self.call_id,
            tp_param = if uac.transport() == "TCP" {
                ";transport=tcp"
            } else {
                ""
            },
        );
        for h in extra {
            s.push_str(h);
            s.push_str("\r\n");
        }
        if !body.is_empty() {
            s.push_str("Content-Type: application/sdp\r\n");
        }
        s.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        s
    }

    /// Take the dialog state (To tag, remote target) from a response to our INVITE.
    fn learn(&mut self, r: &Response) {
        if let Some(t) = to_tag(r) {
            self.to_tag = Some(t);
        }
        if r.status >= 200 && r.status < 300 {
            let contact = r.headers.contacts().unwrap().unwrap();
            self.target = Some(contact[0].uri.to_string());
        }
    }
}

fn host(a: SocketAddr) -> String {
    match a {
        SocketAddr::V4(v4) => v4.ip().to_string(),
        SocketAddr::V6(v6) => format!("[{}]", v6.ip()),
    }
}

/// ACK for a non-2xx final: same branch as the INVITE, inside its transaction (§17.1.1.3).
async fn ack_failure(uac: &mut Uac, leg: &Leg, cseq: u32, invite_branch: &str, r: &Response) {
    let mut l = leg.clone();
    l.to_tag = to_tag(r);
    l.target = None;
    let ack = l.request(uac, "ACK", cseq, invite_branch, &[], "");
    uac.send(&ack).await;
}

/// INVITE to the city line up to the ACK of the 200: asserts 100, 180, 200 with SDP.
async fn establish(uac: &mut Uac, leg: &mut Leg, extra: &[&str]) -> Response {
    let b = branch();
    let invite = leg.request(uac, "INVITE", 1, &b, extra, &g711_offer());
    uac.send(&invite).await;
    let trying = uac.expect(100).await;
    assert_eq!(header(&trying, "Call-ID"), leg.call_id);
    let ringing = uac.expect(180).await;
    let ring_tag = to_tag(&ringing).expect("180 carries the gateway's To tag");
    let ok = uac.expect(200).await;
    assert_eq!(
        to_tag(&ok).as_deref(),
        Some(ring_tag.as_str()),
        "same dialog"
    );
    assert_eq!(header(&ok, "CSeq"), "1 INVITE");
    leg.learn(&ok);
    let ack = leg.request(uac, "ACK", 1, &branch(), &[], "");
    uac.send(&ack).await;
    ok
}

/// CANCEL of a ringing INVITE (same branch and Request-URI, no To tag); ACKs the 487.
/// Returns the final responses seen as (CSeq, status), sorted.
async fn cancel(uac: &mut Uac, leg: &Leg, invite_branch: &str) -> Vec<(String, u16)> {
    uac.send(&leg.request(uac, "CANCEL", 1, invite_branch, &[], ""))
        .await;
    let mut seen = Vec::new();
    for _ in 0..2 {
        let r = uac.final_response().await;
        seen.push((header(&r, "CSeq").to_string(), r.status));
        if r.status == 487 {
            ack_failure(uac, leg, 1, invite_branch, &r).await;
        }
    }
    seen.sort();
    seen
}

async fn bye(uac: &mut Uac, leg: &Leg, cseq: u32) {
    let bye = leg.request(uac, "BYE", cseq, &branch(), &[], "");
    uac.send(&bye).await;
    let r = uac.expect(200).await;
    assert_eq!(header(&r, "CSeq"), format!("{cseq} BYE"));
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let until = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn basic_call_is_answered_with_pcmu_and_hung_up() {
    let gw = Server::start(settings()).await;
    let mut uac = Uac::udp(gw.addr).await;
    let mut leg = Leg::new(CITY);
    let ok = establish(&mut uac, &mut leg, &[]).await;
    assert_eq!(header(&ok, "Content-Type"), "application/sdp");
    let answer = body(&ok);
    assert!(
        answer.contains("\r\nm=audio ") && answer.contains(" RTP/AVP 0 101\r\n"),
        "{answer}"
    );
    assert!(answer.contains("a=rtpmap:0 PCMU/8000"), "{answer}");
    assert!(answer.contains("c=IN IP4 127.0.0.1"), "{answer}");
    let contact = leg.target.clone().unwrap();
    assert!(
        contact.starts_with(&format!("sip:{CITY}@{}", gw.addr)),
        "{contact}"
    );
    // the ACK stops the 2xx retransmissions (every t1 = 20 ms otherwise)
    uac.expect_silence(Duration::from_millis(200)).await;
    assert_eq!(gw.stat(calls), 1);
    assert_eq!(gw.stats.calls_answered.load(Ordering::Relaxed), 1);

    bye(&mut uac, &leg, 2).await;
    wait_for("the call to end", || gw.stat(calls) == 0).await;
    assert_eq!(gw.stat(calls_total), 1);
    // the call was written down when it arrived and when it ended
    assert_eq!(
        *gw.log.arrived.lock().unwrap(),
        vec![(
            "appeal-1".to_string(),
            "city".to_string(),
            CALLER.to_string()
        )]
    );
    assert_eq!(
        *gw.log.ended.lock().unwrap(),
        vec![("appeal-1".to_string(), EndReason::CallerHungUp, true)]
    );
    // a second BYE no longer matches a dialog
    let again = leg.request(&uac, "BYE", 3, &branch(), &[], "");
    uac.send(&again).await;
    uac.expect(481).await;
    gw.assert_alive();
}

#[tokio::test]
async fn unknown_number_gets_404_with_a_to_tag() {
    let gw = Server::start(settings()).await;
    let mut uac = Uac::udp(gw.addr).await;
    let leg = Leg::new("1234");
    let b = branch();
    uac.send(&leg.request(&uac, "INVITE", 1, &b, &[], &g711_offer()))
        .await;
    uac.expect(100).await;
    let r = uac.expect(404).await;
    assert!(
        to_tag(&r).is_some_and(|t| !t.is_empty()),
        "404 has a To tag"
    );
    ack_failure(&mut uac, &leg, 1, &b, &r).await;
    // the ACK stops the 404 retransmissions
    uac.expect_silence(Duration::from_millis(200)).await;
    assert_eq!(gw.stat(calls_total), 0);
    gw.assert_alive();
}

#[tokio::test]
async fn source_outside_the_trunk_allow_list_gets_403() {
    let mut s = settings();
    s.trunks = vec![TrunkSettings {
        name: "carrier".into(),
        allow: vec!["192.0.2.0/24".parse().unwrap()],
        credentials: None,
        outbound: None,
    }];
    let gw = Server::start(s).await;
    let mut uac = Uac::udp(gw.addr).await;
    let leg = Leg::new(CITY);
    let b = branch();
    uac.send(&leg.request(&uac, "INVITE", 1, &b, &[], &g711_offer()))
        .await;
    uac.expect(100).await;
    let r = uac.expect(403).await;
    assert!(to_tag(&r).is_some());
    ack_failure(&mut uac, &leg, 1, &b, &r).await;
    assert_eq!(gw.stat(calls_total), 0);
    gw.assert_alive();
}

#[tokio::test]
async fn trunk_with_credentials_is_challenged_then_admitted() {
    let mut s = settings();
    s.trunks = vec![TrunkSettings {
        name: "carrier".into(),
        allow: vec!["192.0.2.0/24".parse().unwrap()],
        credentials: Some(("carrier".into(), "trunk-pw".into())),
        outbound: None,
    }];
    let gw = Server::start(s).await;
    let mut uac = Uac::udp(gw.addr).await;
    let mut leg = Leg::new(CITY);
    let uri = format!("sip:{CITY}@{}", gw.addr);

    let b1 = branch();
    uac.send(&leg.request(&uac, "INVITE", 1, &b1, &[], &g711_offer()))
        .await;
    uac.expect(100).await;
    let challenge = uac.expect(401).await;
    let www = header(&challenge, "WWW-Authenticate").to_string();
    assert!(www.starts_with("Digest "), "{www}");
    assert!(www.contains("realm=\"hotline\""), "{www}");
    ack_failure(&mut uac, &leg, 1, &b1, &challenge).await;

    // a wrong password is refused outright
    let bad =
        sip::auth::authorization_for(&www, &Method::Invite, &uri, "carrier", "wrong", "cn1", 1)
            .unwrap();
    let auth = format!("Authorization: {bad}");
    let b2 = branch();
    uac.send(&leg.request(&uac, "INVITE", 2, &b2, &[&auth], &g711_offer()))
        .await;
    uac.expect(100).await;
    let refused = uac.expect(403).await;
    ack_failure(&mut uac, &leg, 2, &b2, &refused).await;
    assert_eq!(gw.stat(calls_total), 0);

    // the right one gets the call through
    let good =
        sip::auth::authorization_for(&www, &Method::Invite, &uri, "carrier", "trunk-pw", "cn2", 1)
            .unwrap();
    let auth = format!("Authorization: {good}");
    uac.send(&leg.request(&uac, "INVITE", 3, &branch(), &[&auth], &g711_offer()))
        .await;
    uac.expect(100).await;
    let ringing = uac.expect(180).await;
    leg.learn(&ringing);
    let ok = uac.expect(200).await;
    leg.learn(&ok);
    uac.send(&leg.request(&uac, "ACK", 3, &branch(), &[], ""))
        .await;
    assert_eq!(gw.stat(calls_total), 1);
    bye(&mut uac, &leg, 4).await;
    gw.assert_alive();
}

#[tokio::test]
async fn options_advertises_methods_and_sdp() {
    let gw = Server::start(settings()).await;
    let mut uac = Uac::udp(gw.addr).await;
    let leg = Leg::new(CITY);
    uac.send(&leg.request(
        &uac,
        "OPTIONS",
        1,
        &branch(),
        &["Accept: application/sdp"],
        "",
    ))
    .await;
    let r = uac.expect(200).await;
    let allow: Vec<&str> = header(&r, "Allow").split(',').map(str::trim).collect();
    for m in ["INVITE", "ACK", "BYE", "CANCEL", "OPTIONS"] {
        assert!(allow.contains(&m), "Allow {allow:?} lacks {m}");
    }
    assert!(!allow.contains(&"SUBSCRIBE"), "{allow:?}");
    assert_eq!(header(&r, "Accept"), "application/sdp");
    assert!(header(&r, "Supported").contains("timer"));
    assert!(to_tag(&r).is_some());
    assert_eq!(header(&r, "Server"), "Hotline-test");
    gw.assert_alive();
}

#[tokio::test]
async fn unknown_extension_method_gets_501() {
    let gw = Server::start(settings()).await;
    let mut uac = Uac::udp(gw.addr).await;
    let leg = Leg::new(CITY);
    uac.send(&leg.request(&uac, "FOO", 1, &branch(), &[], ""))
        .await;
    let r = uac.expect(501).await;
    assert_eq!(header(&r, "CSeq"), "1 FOO");
    gw.assert_alive();
}

#[tokio::test]
async fn subscribe_gets_405_with_allow() {
    let gw = Server::start(settings()).await;
    let mut uac = Uac::udp(gw.addr).await;
    let leg = Leg::new(CITY);
    uac.send(&leg.request(&uac, "SUBSCRIBE", 1, &branch(), &["Event: presence"], ""))
        .await;
    let r = uac.expect(405).await;
    assert!(header(&r, "Allow").contains("INVITE"));
    assert!(!header(&r, "Allow").contains("SUBSCRIBE"));
    gw.assert_alive();
}

#[tokio::test]
async fn max_forwards_zero_gets_483() {
    let gw = Server::start(settings()).await;
    let mut uac = Uac::udp(gw.addr).await;
    let leg = Leg::new(CITY);
    let req = leg
        .request(&uac, "OPTIONS", 1, &branch(), &[], "")
        .replace("Max-Forwards: 70", "Max-Forwards: 0");
    uac.send(&req).await;
    uac.expect(483).await;
    gw.assert_alive();
}

#[tokio::test]
async fn unknown_require_gets_420_with_unsupported() {
    let gw = Server::start(settings()).await;
    let mut uac = Uac::udp(gw.addr).await;
    let leg = Leg::new(CITY);
    let b = branch();
    uac.send(&leg.request(
        &uac,
        "INVITE",
        1,
        &b,
        &["Require: timer, 100rel-unknown-ext"],
        &g711_offer(),
    ))
    .await;
    uac.expect(100).await;
    let r = uac.expect(420).await;
    // only the tag we do not know is listed; `timer` we support
    assert_eq!(header(&r, "Unsupported"), "100rel-unknown-ext");
    ack_failure(&mut uac, &leg, 1, &b, &r).await;
    assert_eq!(gw.stat(calls_total), 0);
    gw.assert_alive();
}

#[tokio::test]
async fn malformed_cseq_gets_400_with_a_reason() {
    let gw = Server::start(settings()).await;
    let mut uac = Uac::udp(gw.addr).await;
    let leg = Leg::new(CITY);
    let req = leg
        .request(&uac, "INVITE", 1, &branch(), &[], &g711_offer())
        .replace("CSeq: 1 INVITE", "CSeq: one INVITE");
    uac.send(&req).await;
    let r = uac.expect(400).await;
    assert!(
        r.reason.starts_with("Bad Request - ") && r.reason.contains("CSeq"),
        "{}",
        r.reason
    );
    assert_eq!(header(&r, "Call-ID"), leg.call_id);
    uac.expect_silence(Duration::from_millis(100)).await;
    assert_eq!(gw.stat(calls_total), 0);

    // and garbage that is not SIP at all gets nothing, and breaks nothing
    uac.send("\u{1}\u{2}garbage\r\n\r\n").await;
    uac.expect_silence(Duration::from_millis(100)).await;
    uac.send(&leg.request(&uac, "OPTIONS", 2, &branch(), &[], ""))
        .await;
    uac.expect(200).await;
    gw.assert_alive();
}

#[tokio::test]
async fn cancel_while_ringing_gets_200_and_487() {
    let gw = Server::start(settings()).await;
    let mut uac = Uac::udp(gw.addr).await;
    let leg = Leg::new(SLOW);
    let b = branch();
    uac.send(&leg.request(&uac, "INVITE", 1, &b, &[], &g711_offer()))
        .await;
    uac.expect(100).await;
    uac.expect(180).await;
    assert_eq!(gw.stat(calls), 1);

    let seen = cancel(&mut uac, &leg, &b).await;
    assert_eq!(
        seen,
        vec![("1 CANCEL".to_string(), 200), ("1 INVITE".to_string(), 487)]
    );
    wait_for("the call to go", || gw.stat(calls) == 0).await;
    assert_eq!(gw.stats.calls_cancelled.load(Ordering::Relaxed), 1);
    assert_eq!(gw.stats.calls_answered.load(Ordering::Relaxed), 0);
    assert_eq!(
        *gw.log.ended.lock().unwrap(),
        vec![("appeal-1".to_string(), EndReason::CallerCancelled, false)]
    );
    uac.expect_silence(Duration::from_millis(200)).await;
    gw.assert_alive();
}

#[tokio::test]
async fn invite_retransmission_while_ringing_makes_one_call() {
    let gw = Server::start(settings()).await;
    let mut uac = Uac::udp(gw.addr).await;
    let leg = Leg::new(SLOW);
    let b = branch();
    let invite = leg.request(&uac, "INVITE", 1, &b, &[], &g711_offer());
    uac.send(&invite).await;
    uac.expect(100).await;
    let first = uac.expect(180).await;
    for _ in 0..3 {
        uac.send(&invite).await;
        // the transaction re-sends its last provisional response, the same 180
        let again = uac.expect(180).await;
        assert_eq!(to_tag(&again), to_tag(&first));
    }
    assert_eq!(gw.stat(calls_total), 1);
    assert_eq!(gw.stat(calls), 1);
    // clean up
    uac.send(&leg.request(&uac, "CANCEL", 1, &b, &[], "")).await;
    for _ in 0..2 {
        let r = uac.final_response().await;
        if r.status == 487 {
            ack_failure(&mut uac, &leg, 1, &b, &r).await;
        }
    }
    wait_for("the call to go", || gw.stat(calls) == 0).await;
    assert_eq!(gw.stat(calls_total), 1);
    gw.assert_alive();
}

#[tokio::test]
async fn reinvite_sendonly_is_answered_recvonly() {
    let gw = Server::start(settings()).await;
    let mut uac = Uac::udp(gw.addr).await;
    let mut leg = Leg::new(CITY);
    let ok = establish(&mut uac, &mut leg, &[]).await;
    let version1 = origin_version(&body(&ok));

    // hold
    let hold = sdp(
        &[(0, "PCMU/8000"), (101, "telephone-event/8000")],
        "sendonly",
    );
    uac.send(&leg.request(&uac, "INVITE", 2, &branch(), &[], &hold))
        .await;
    let r = uac.final_response().await;
    assert_eq!(r.status, 200);
    assert_eq!(header(&r, "CSeq"), "2 INVITE");
    assert_eq!(to_tag(&r), leg.to_tag, "same dialog");
    let held = body(&r);
    assert!(held.contains("a=recvonly"), "{held}");
    assert!(!held.contains("a=sendrecv"), "{held}");
    assert_eq!(origin_version(&held), version1 + 1, "o= version goes up");
    uac.send(&leg.request(&uac, "ACK", 2, &branch(), &[], ""))
        .await;

    // unhold
    uac.send(&leg.request(&uac, "INVITE", 3, &branch(), &[], &g711_offer()))
        .await;
    let r = uac.final_response().await;
    assert_eq!(r.status, 200);
    assert!(body(&r).contains("a=sendrecv"), "{}", body(&r));
    uac.send(&leg.request(&uac, "ACK", 3, &branch(), &[], ""))
        .await;

    // a re-INVITE for a dialog that does not exist
    let mut stranger = leg.clone();
    stranger.to_tag = Some("nosuchtag".into());
    uac.send(&stranger.request(&uac, "INVITE", 4, &branch(), &[], &g711_offer()))
        .await;
    assert_eq!(uac.final_response().await.status, 481);

    bye(&mut uac, &leg, 5).await;
    assert_eq!(gw.stat(calls_total), 1);
    gw.assert_alive();
}

fn origin_version(sdp: &str) -> u64 {
    let o = sdp.lines().find(|l| l.starts_with("o=")).unwrap();
    o.split_whitespace().nth(2).unwrap().parse().unwrap()
}

#[tokio::test]
async fn offer_without_a_common_codec_gets_488() {
    let gw = Server::start(settings()).await;
    let mut uac = Uac::udp(gw.addr).await;
    let leg = Leg::new(CITY);
    let b = branch();
    let g722 = sdp(&[(9, "G722/8000")], "sendrecv");
    uac.send(&leg.request(&uac, "INVITE", 1, &b, &[], &g722))
        .await;
    uac.expect(100).await;
    let r = uac.expect(488).await;
    assert!(header(&r, "Warning").starts_with("304 "));
    ack_failure(&mut uac, &leg, 1, &b, &r).await;
    assert_eq!(gw.stat(calls_total), 0);
    gw.assert_alive();
}

#[tokio::test]
async fn session_timer_is_granted_and_too_short_an_interval_refused() {
    let gw = Server::start(settings()).await;
    let mut uac = Uac::udp(gw.addr).await;

    let leg = Leg::new(CITY);
    let b = branch();
    uac.send(&leg.request(
        &uac,
        "INVITE",
        1,
        &b,
        &["Supported: timer", "Session-Expires: 30"],
        &g711_offer(),
    ))
    .await;
    uac.expect(100).await;
    let r = uac.expect(422).await;
    assert_eq!(header(&r, "Min-SE"), "90");
    ack_failure(&mut uac, &leg, 1, &b, &r).await;

    let mut leg = Leg::new(CITY);
    let ok = establish(
        &mut uac,
        &mut leg,
        &["Supported: timer", "Session-Expires: 90"],
    )
    .await;
    assert_eq!(header(&ok, "Session-Expires"), "90;refresher=uac");
    assert_eq!(header(&ok, "Require"), "timer");
    // a refresh by UPDATE is accepted in the dialog
    uac.send(&leg.request(&uac, "UPDATE", 2, &branch(), &[], ""))
        .await;
    uac.expect(200).await;
    bye(&mut uac, &leg, 3).await;
    gw.assert_alive();
}

/// The session timer cannot go below 90 s (RFC 4028 Min-SE), and the gateway reads the real
/// clock, so virtual time cannot speed it up; the hard call limit shows the same hang-up path.
#[tokio::test]
async fn call_reaching_the_maximum_duration_gets_a_bye() {
    let mut s = settings();
    s.max_call = Duration::from_secs(1);
    let gw = Server::start(s).await;
    let mut uac = Uac::udp(gw.addr).await;
    let mut leg = Leg::new(CITY);
    let started = Instant::now();
    establish(&mut uac, &mut leg, &[]).await;

    let bye = match uac.try_recv(Duration::from_secs(3)).await {
        Some(Message::Request(r)) => r,
        other => panic!("expected our BYE, got {:?}", other.as_ref().map(first_line)),
    };
    let after = started.elapsed();
    assert_eq!(bye.method, Method::Bye);
    assert!(
        after >= Duration::from_millis(950) && after < Duration::from_millis(1800),
        "BYE after {after:?}"
    );
    // in the dialog, from the gateway's side: tags swapped, our Contact as Request-URI
    assert_eq!(bye.headers.call_id().unwrap(), leg.call_id);
    assert_eq!(
        bye.headers.from_addr().unwrap().tag(),
        leg.to_tag.as_deref()
    );
    assert_eq!(
        bye.headers.to_addr().unwrap().tag(),
        Some(leg.from_tag.as_str())
    );
    assert_eq!(
        bye.uri.to_string(),
        format!("sip:{}@{}", CALLER.trim_start_matches('+'), uac.me)
    );
    let cseq = bye.headers.cseq().unwrap();
    assert_eq!(cseq.method, Method::Bye);
    uac.answer(&bye, 200).await;
    wait_for("the call to end", || gw.stat(calls) == 0).await;
    // our 200 ended the BYE transaction: no retransmission
    uac.expect_silence(Duration::from_millis(200)).await;
    gw.assert_alive();
}

fn register(uac: &Uac, call_id: &str, cseq: u32, auth: Option<&str>) -> String {
    let auth = auth.map(|a| format!("Authorization: {a}\r\n"));
    test_support::Register {
        transport: uac.transport(),
        ..test_support::Register::udp("op1", uac.me, call_id)
    }
    .text(cseq, &unique("-test-"), auth.as_deref())
}

#[tokio::test]
async fn register_with_digest_and_wrong_password() {
    let gw = Server::start(settings()).await;
    let mut uac = Uac::udp(gw.addr).await;
    let call_id = unique("reg-");

    uac.send(&register(&uac, &call_id, 1, None)).await;
    let ch = uac.expect(401).await;
    let www = header(&ch, "WWW-Authenticate").to_string();

    let wrong = sip::auth::authorization_for(
        &www,
        &Method::Register,
        "sip:hotline",
        "op1",
        "guess",
        "c1",
        1,
    )
    .unwrap();
    uac.send(&register(&uac, &call_id, 2, Some(&wrong))).await;
    let refused = uac.expect(401).await;
    assert!(refused.headers.get(&HeaderName::WwwAuthenticate).is_some());
    assert_eq!(gw.stats.registrations.load(Ordering::Relaxed), 0);

    let right = sip::auth::authorization_for(
        &www,
        &Method::Register,
        "sip:hotline",
        "op1",
        "op1-secret",
        "c2",
        1,
    )
    .unwrap();
    uac.send(&register(&uac, &call_id, 3, Some(&right))).await;
    let ok = uac.expect(200).await;
    let contacts = ok.headers.contacts().unwrap().unwrap();
    assert_eq!(contacts.len(), 1);
    assert_eq!(contacts[0].uri.to_string(), format!("sip:op1@{}", uac.me));
    assert_eq!(gw.stats.registrations.load(Ordering::Relaxed), 1);
    // The admin API's read-only copy of the registrar.
    let snapshot = gw.stats.registered_contacts();
    assert_eq!(snapshot.len(), 1);
    assert_eq!(snapshot[0].operator, "op1");
    assert_eq!(snapshot[0].contact, format!("sip:op1@{}", uac.me));
    assert_eq!(snapshot[0].transport, "UDP");
    assert!(snapshot[0].expires_at > Instant::now() + Duration::from_secs(200));
    gw.assert_alive();
}

#[tokio::test]
async fn tcp_basic_call() {
    let gw = Server::start(settings()).await;
    let mut uac = Uac::tcp(gw.addr).await;
    let mut leg = Leg::new(CITY);
    let ok = establish(&mut uac, &mut leg, &[]).await;
    assert!(body(&ok).contains("a=rtpmap:0 PCMU/8000"));
    assert!(
        leg.target.as_deref().unwrap().ends_with(";transport=tcp"),
        "{:?}",
        leg.target
    );
    // reliable transport: the 200 is not retransmitted even before the ACK matters
    uac.expect_silence(Duration::from_millis(150)).await;
    bye(&mut uac, &leg, 2).await;
    wait_for("the call to end", || gw.stat(calls) == 0).await;
    assert_eq!(gw.stat(calls_total), 1);
    // the call was written down when it arrived and when it ended
    assert_eq!(
        *gw.log.arrived.lock().unwrap(),
        vec![(
            "appeal-1".to_string(),
            "city".to_string(),
            CALLER.to_string()
        )]
    );
    assert_eq!(
        *gw.log.ended.lock().unwrap(),
        vec![("appeal-1".to_string(), EndReason::CallerHungUp, true)]
    );
    gw.assert_alive();
}

#[tokio::test]
async fn tcp_two_messages_in_one_write() {
    let gw = Server::start(settings()).await;
    let mut uac = Uac::tcp(gw.addr).await;
    let leg = Leg::new(CITY);
    let mut both = leg.request(&uac, "OPTIONS", 1, &branch(), &[], "");
    both.push_str(&leg.request(&uac, "FOO", 2, &branch(), &[], ""));
    uac.send(&both).await;
    let a = uac.response().await;
    let b = uac.response().await;
    assert_eq!((a.status, header(&a, "CSeq")), (200, "1 OPTIONS"));
    assert_eq!((b.status, header(&b, "CSeq")), (501, "2 FOO"));
    gw.assert_alive();
}

#[tokio::test]
async fn tcp_message_split_across_writes() {
    let gw = Server::start(settings()).await;
    let mut uac = Uac::tcp(gw.addr).await;
    let mut leg = Leg::new(CITY);
    let invite = leg.request(&uac, "INVITE", 1, &branch(), &[], &g711_offer());
    let bytes = invite.as_bytes();
    // inside the start line, inside the header section, inside the body
    let cuts = [7, bytes.len() / 2, bytes.len() - 10];
    let mut from = 0;
    for cut in cuts {
        uac.send_bytes(&bytes[from..cut]).await;
        from = cut;
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(
            gw.stat(calls_total),
            0,
            "no call before the message is whole"
        );
    }
    uac.send_bytes(&bytes[from..]).await;
    uac.expect(100).await;
    uac.expect(180).await;
    let ok = uac.expect(200).await;
    leg.learn(&ok);
    uac.send(&leg.request(&uac, "ACK", 1, &branch(), &[], ""))
        .await;
    bye(&mut uac, &leg, 2).await;
    assert_eq!(gw.stat(calls_total), 1);
    gw.assert_alive();
}

#[tokio::test]
async fn ipv6_options_are_answered() {
    if std::net::UdpSocket::bind("[::1]:0").is_err() {
        println!("NOTICE: ::1 cannot be bound here; IPv6 test skipped");
        return;
    }
    let mut s = settings();
    s.listen = vec!["[::1]:0".parse().unwrap()];
    let gw = Server::start(s).await;
    assert!(gw.addr.is_ipv6());
    for mut uac in [Uac::udp(gw.addr).await, Uac::tcp(gw.addr).await] {
        let leg = Leg::new(CITY);
        uac.send(&leg.request(&uac, "OPTIONS", 1, &branch(), &[], ""))
            .await;
        let r = uac.expect(200).await;
        assert!(header(&r, "Allow").contains("INVITE"));
        // the Via we sent comes back with what the gateway saw
        let via = header(&r, "Via");
        assert!(via.contains(&format!("rport={}", uac.me.port())), "{via}");
    }
    gw.assert_alive();
}

// ---- graceful shutdown ----

/// With a call up, cancelling the token: new INVITEs get 503 + Retry-After, the call gets our
/// BYE after the grace, and `run` returns soon after. Over TCP, so no transaction lingers in
/// a Timer I/K absorb state (T4 = 5 s on UDP) and the timing is the gateway's own.
#[tokio::test]
async fn shutdown_refuses_new_calls_and_hangs_up_after_the_grace() {
    let gw = Server::start(settings()).await;
    let mut uac = Uac::tcp(gw.addr).await;
    let mut leg = Leg::new(CITY);
    establish(&mut uac, &mut leg, &[]).await;

    let t0 = Instant::now();
    gw.stop.cancel();
    wait_for("draining", || gw.stats.draining.load(Ordering::Relaxed)).await;

    let newcomer = Leg::new(CITY);
    let b = branch();
    uac.send(&newcomer.request(&uac, "INVITE", 1, &b, &[], &g711_offer()))
        .await;
    uac.expect(100).await;
    let r = uac.expect(503).await;
    let retry: u32 = header(&r, "Retry-After").trim().parse().unwrap();
    assert!(retry > 0);
    ack_failure(&mut uac, &newcomer, 1, &b, &r).await;
    // the call in progress is still up, and in-dialog requests still work
    uac.send(&leg.request(&uac, "OPTIONS", 2, &branch(), &[], ""))
        .await;
    uac.expect(200).await;
    assert_eq!(gw.stat(calls), 1);
    assert_eq!(gw.stat(calls_total), 1);

    let bye = uac.request().await;
    let at = t0.elapsed();
    assert_eq!(bye.method, Method::Bye);
    assert_eq!(bye.headers.call_id().unwrap(), leg.call_id);
    assert!(
        at >= Duration::from_millis(950) && at < Duration::from_millis(1800),
        "BYE after {at:?}"
    );
    uac.answer(&bye, 200).await;
    tokio::time::timeout(Duration::from_secs(2), gw.run)
        .await
        .expect("run returns soon after the last BYE is answered")
        .unwrap();
    assert!(t0.elapsed() < Duration::from_secs(3));
    assert!(!gw.stats.ready.load(Ordering::Relaxed));
}

/// A call that ends by itself during the grace lets `run` return without waiting out the
/// grace. Over UDP with t1 = 5 ms, so the transactions' own UDP timers (J, L = 64*T1) end
/// within a third of a second.
#[tokio::test]
async fn shutdown_returns_promptly_when_the_last_call_ends() {
    let mut s = settings();
    s.t1 = Duration::from_millis(5);
    s.shutdown_grace = Duration::from_secs(3);
    let gw = Server::start(s).await;
    let mut uac = Uac::udp(gw.addr).await;
    let mut leg = Leg::new(CITY);
    establish(&mut uac, &mut leg, &[]).await;

    gw.stop.cancel();
    wait_for("draining", || gw.stats.draining.load(Ordering::Relaxed)).await;
    assert!(!gw.run.is_finished(), "a call is up: run waits");
    let t0 = Instant::now();
    bye(&mut uac, &leg, 2).await;
    tokio::time::timeout(Duration::from_secs(2), gw.run)
        .await
        .expect("run returns once the last call is gone")
        .unwrap();
    let took = t0.elapsed();
    assert!(took < Duration::from_millis(1500), "took {took:?}");
    // it never sent a BYE of its own
    uac.expect_silence(Duration::from_millis(50)).await;
}

/// A gateway that is "behind" for every new INVITE (no queueing delay allowed) sheds each one
/// with a stateless 503 + Retry-After before any call state exists, while requests inside
/// dialogs and out-of-dialog ones other than INVITE are still served.
#[tokio::test]
async fn new_invites_are_shed_with_503_while_other_requests_are_served() {
    let gw = Server::start_with(
        settings(),
        gateway::OverloadSettings {
            max_queue_delay: Duration::ZERO,
            retry_after: 7,
            ..Default::default()
        },
    )
    .await;
    let mut uac = Uac::udp(gw.addr).await;
    let leg = Leg::new(CITY);
    let b = branch();
    let invite = leg.request(&uac, "INVITE", 1, &b, &[], &g711_offer());
    uac.send(&invite).await;
    let r = uac.expect(503).await;
    assert_eq!(header(&r, "Retry-After"), "7");
    assert_eq!(header(&r, "Call-ID"), leg.call_id);
    assert!(to_tag(&r).is_some());
    // its retransmission is shed again; the ACK of the 503 is absorbed
    uac.send(&invite).await;
    let again = uac.expect(503).await;
    ack_failure(&mut uac, &leg, 1, &b, &again).await;
    uac.expect_silence(Duration::from_millis(100)).await;
    // no call, no appeal
    assert!(gw.log.arrived.lock().unwrap().is_empty());
    assert_eq!(gw.stat(calls_total), 0);
    let shed: Vec<(gateway::ShedReason, u64)> = gw.stats.invites_shed().to_vec();
    assert_eq!(shed[0], (gateway::ShedReason::QueueDelay, 2));
    assert!(shed[1..].iter().all(|(_, n)| *n == 0), "{shed:?}");
    // an in-dialog BYE (To tag) is not a new call: answered (481: no such dialog)
    let mut in_dialog = Leg::new(CITY);
    in_dialog.to_tag = Some("theirs".into());
    let bye = in_dialog.request(&uac, "BYE", 2, &branch(), &[], "");
    uac.send(&bye).await;
    uac.expect(481).await;
    // and OPTIONS is answered
    let options = Leg::new(CITY).request(&uac, "OPTIONS", 1, &branch(), &[], "");
    uac.send(&options).await;
    uac.expect(200).await;
    gw.assert_alive();
}

/// Nothing of a call stays in call control once it has ended, however it ended: its timers
/// (answer, session expiry with Session-Expires, the four-hour maximum duration) go with it.
/// They used to stay until they fired — about 130 bytes a call for four hours.
#[tokio::test]
async fn ended_calls_leave_no_timers_behind() {
    let gw = Server::start(settings()).await;
    let mut uac = Uac::udp(gw.addr).await;
    for i in 0..3u32 {
        // answered, with a session timer, hung up by the caller
        let mut leg = Leg::new(CITY);
        establish(
            &mut uac,
            &mut leg,
            &["Session-Expires: 1800", "Supported: timer"],
        )
        .await;
        bye(&mut uac, &leg, 2).await;
        // cancelled while ringing
        let leg = Leg::new(SLOW);
        let b = branch();
        uac.send(&leg.request(&uac, "INVITE", 1, &b, &[], &g711_offer()))
            .await;
        uac.expect(100).await;
        uac.expect(180).await;
        cancel(&mut uac, &leg, &b).await;
        wait_for("the calls to go", || gw.stat(calls) == 0).await;
        assert_eq!(gw.stat(calls_total), u64::from(2 * (i + 1)));
    }
    wait_for("no timer left", || {
        gw.stats.call_timers.load(Ordering::Relaxed) == 0
    })
    .await;
    gw.assert_alive();
}
