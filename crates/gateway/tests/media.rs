//! The gateway's media edge over real sockets: a test UAC places calls over UDP with an SDP
//! offer naming its own RTP socket, then checks the RTP the gateway sends (payload type,
//! sequence, timestamps, 20 ms pacing, the greeting), sends RFC 4733 events, SIP INFO and
//! nothing at all (RTP timeout), fills the RTP port range, and records a call.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gateway::{
    CallArrived, CallEnded, CallLog, DtmfMode, EndReason, Gateway, IvrEnd, IvrStep, LineSettings,
    Settings, Stats, TrunkSettings,
};
use media::g711::Law;
use media::prompts::{Prompt, PromptCache, PromptName};
use sip::{Message, Method, Response};
use test_support::RtpPacket as Rtp;
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

const CITY: &str = "3758787";
const WAIT: Duration = Duration::from_secs(3);

/// A 400 Hz tone, 1 s: the city line's greeting in these tests.
fn greeting_pcm() -> Vec<i16> {
    (0..8000)
        .map(|n| (8000.0 * (2.0 * std::f64::consts::PI * 400.0 * n as f64 / 8000.0).sin()) as i16)
        .collect()
}

fn settings(rtp_ports: (u16, u16)) -> Settings {
    let encoders = media::prompts::G711;
    let greeting = Prompt::from_pcm(PromptName::new("greeting"), &greeting_pcm(), &encoders);
    Settings {
        t1: Duration::from_millis(50),
        lines: vec![LineSettings {
            name: "City".into(),
            greeting: Some(PromptName::new("greeting")),
            ..test_support::line("city", &[CITY], Duration::ZERO)
        }],
        trunks: vec![TrunkSettings {
            name: "local".into(),
            allow: vec!["127.0.0.1/32".parse().unwrap()],
            credentials: None,
            outbound: None,
        }],
        rtp_ports,
        prompts: Arc::new(PromptCache::from_prompts([Arc::new(greeting)], &encoders)),
        recordings_dir: std::env::temp_dir().join("hotline-media-tests-unused"),
        max_call: Duration::from_secs(3600),
        ..test_support::settings()
    }
}

/// A range of `pairs` RTP port pairs that were free a moment ago.
fn free_range(pairs: u16) -> (u16, u16) {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    loop {
        let base = 30_000
            + (std::process::id() as u16 % 50) * 200
            + (NEXT.fetch_add(1, Ordering::Relaxed) as u16 % 100) * 2 * pairs.max(1);
        let base = base & !1;
        let all_free =
            (base..base + 2 * pairs).all(|p| std::net::UdpSocket::bind(("127.0.0.1", p)).is_ok());
        if all_free {
            return (base, base + 2 * pairs - 1);
        }
    }
}

#[derive(Default)]
struct Log {
    arrived: Mutex<Vec<String>>,
    ended: Mutex<Vec<(String, EndReason)>>,
    digits: Mutex<Vec<(String, char, String)>>,
    steps: Mutex<Vec<(String, IvrStep)>>,
    ivr_ends: Mutex<Vec<Option<IvrEnd>>>,
    /// `operator_answered`: appeal, operator, wait.
    answered: Mutex<Vec<(String, String, Duration)>>,
    /// Each ended call's operator and talk time.
    operators: Mutex<Vec<Option<(String, Duration)>>>,
    /// Returning-caller lookups asked for: number and lookback.
    lookups: Mutex<Vec<(String, Duration)>>,
    /// What a lookup answers: `Some(operator)`, or `None` for a store that never answers.
    lookup_answer: Mutex<Option<Option<String>>>,
}

impl CallLog for Log {
    fn call_arrived(&self, appeal: &str, _call: &CallArrived<'_>) {
        self.arrived.lock().unwrap().push(appeal.to_string());
    }
    fn call_ended(&self, appeal: &str, end: &CallEnded) {
        self.ended
            .lock()
            .unwrap()
            .push((appeal.to_string(), end.reason));
        self.ivr_ends.lock().unwrap().push(end.ivr);
        self.operators.lock().unwrap().push(end.operator.clone());
    }
    fn operator_answered(&self, appeal: &str, operator: &str, waited: Duration) {
        self.answered
            .lock()
            .unwrap()
            .push((appeal.to_string(), operator.to_string(), waited));
    }
    fn ivr_step(&self, appeal: &str, step: &IvrStep) {
        self.steps
            .lock()
            .unwrap()
            .push((appeal.to_string(), step.clone()));
    }
    fn returning_operator(&self, caller: &str, lookback: Duration) -> gateway::ReturningLookup {
        self.lookups
            .lock()
            .unwrap()
            .push((caller.to_string(), lookback));
        match self.lookup_answer.lock().unwrap().clone() {
            Some(answer) => Box::pin(async move { Ok(answer) }),
            None => Box::pin(std::future::pending()),
        }
    }
    fn digit(&self, appeal: &str, digit: char, via: &str) {
        self.digits
            .lock()
            .unwrap()
            .push((appeal.to_string(), digit, via.to_string()));
    }
}

struct Server {
    addr: SocketAddr,
    log: Arc<Log>,
    stats: Arc<Stats>,
    stop: CancellationToken,
    run: tokio::task::JoinHandle<()>,
    reloader: gateway::Reloader,
    ops: gateway::OperatorControl,
}

impl Server {
    async fn start(s: Settings) -> Server {
        let log = Arc::new(Log::default());
        let stats = Arc::new(Stats::default());
        let gw = Gateway::bind(s, stats.clone(), log.clone()).await.unwrap();
        let addr = gw.local_addrs()[0];
        let reloader = gw.reloader();
        let ops = gw.operators();
        let stop = CancellationToken::new();
        let run = tokio::spawn(gw.run(stop.clone()));
        Server {
            ops,
            reloader,
            addr,
            log,
            stats,
            stop,
            run,
        }
    }

    async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(5), self.run)
            .await
            .unwrap()
            .unwrap();
    }
}

static NEXT: AtomicU64 = AtomicU64::new(1);
fn unique() -> u64 {
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A caller: SIP over UDP and an RTP socket of its own.
struct Caller {
    sip: UdpSocket,
    rtp: UdpSocket,
    server: SocketAddr,
    call_id: String,
    from_tag: String,
    to_tag: Option<String>,
    target: Option<String>,
    cseq: u32,
    /// Where the gateway's SDP says to send RTP.
    gw_rtp: Option<SocketAddr>,
}

impl Caller {
    async fn new(server: SocketAddr) -> Caller {
        Caller {
            sip: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
            rtp: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
            server,
            call_id: format!("media-call-{}", unique()),
            from_tag: format!("ft{}", unique()),
            to_tag: None,
            target: None,
            cseq: 0,
            gw_rtp: None,
        }
    }

    fn offer(&self, pts: &[(u8, &str)], direction: &str) -> String {
        let port = self.rtp.local_addr().unwrap().port();
        let list: Vec<String> = pts.iter().map(|(p, _)| p.to_string()).collect();
        let mut s = format!(
            "v=0\r\no=t 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {port} RTP/AVP {}\r\n",
            list.join(" ")
        );
        for (pt, map) in pts {
            s.push_str(&format!("a=rtpmap:{pt} {map}\r\n"));
        }
        s.push_str(&format!("a={direction}\r\n"));
        s
    }

    fn request(&mut self, method: &str, extra: &[&str], ct: &str, body: &str) -> String {
        if method != "ACK" {
            self.cseq += 1;
        }
        let me = self.sip.local_addr().unwrap();
        let uri = self
            .target
            .clone()
            .unwrap_or_else(|| format!("sip:{CITY}@{}", self.server));
        let to_tag = self
            .to_tag
            .as_ref()
            .map(|t| format!(";tag={t}"))
            .unwrap_or_default();
        let mut s = format!(
            "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-m{}\r\nMax-Forwards: 70\r\n\
             From: <sip:79131234567@127.0.0.1>;tag={}\r\nTo: <sip:{CITY}@{}>{to_tag}\r\nCall-ID: {}\r\n\
             CSeq: {} {method}\r\nContact: <sip:79131234567@{me}>\r\n",
            unique(),
            self.from_tag,
            self.server,
            self.call_id,
            self.cseq
        );
        for h in extra {
            s.push_str(h);
            s.push_str("\r\n");
        }
        if !body.is_empty() {
            s.push_str(&format!("Content-Type: {ct}\r\n"));
        }
        s.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        s
    }

    async fn send(&self, text: &str) {
        self.sip
            .send_to(text.as_bytes(), self.server)
            .await
            .unwrap();
    }

    async fn recv(&self) -> Message {
        let mut buf = vec![0u8; 65_536];
        let (n, _) = tokio::time::timeout(WAIT, self.sip.recv_from(&mut buf))
            .await
            .expect("a SIP message from the gateway")
            .unwrap();
        sip::parse_message(&buf[..n]).unwrap()
    }

    /// The next final response (provisional ones skipped).
    async fn final_response(&self) -> Response {
        loop {
            match self.recv().await {
                Message::Response(r) if r.status >= 200 => return r,
                Message::Response(_) => {}
                Message::Request(r) => panic!("unexpected {} from the gateway", r.method),
            }
        }
    }

    /// INVITE with `offer`, the final response, and the ACK when it is a 2xx.
    async fn invite(&mut self, offer: &str) -> Response {
        let inv = self.request("INVITE", &[], "application/sdp", offer);
        self.send(&inv).await;
        let r = self.final_response().await;
        if (200..300).contains(&r.status) {
            self.to_tag = r.headers.to_addr().unwrap().tag().map(str::to_string);
            let contact = r.headers.contacts().unwrap().unwrap();
            self.target = Some(contact[0].uri.to_string());
            self.gw_rtp = Some(sdp_rtp(&r));
            let ack = self.request("ACK", &[], "", "");
            self.send(&ack).await;
        }
        r
    }

    async fn bye(&mut self) {
        let bye = self.request("BYE", &[], "", "");
        self.send(&bye).await;
        let r = self.final_response().await;
        assert_eq!(r.status, 200);
    }

    /// The next RTP packet from the gateway.
    async fn rtp_packet(&self) -> Rtp {
        let mut buf = vec![0u8; 2048];
        let (n, from) = tokio::time::timeout(WAIT, self.rtp.recv_from(&mut buf))
            .await
            .expect("RTP from the gateway")
            .unwrap();
        assert_eq!(
            Some(from),
            self.gw_rtp,
            "RTP comes from the port in the SDP"
        );
        Rtp::parse(&buf[..n])
    }

    /// Sends one RTP packet to the gateway's RTP port.
    async fn send_rtp(&self, pt: u8, marker: bool, seq: u16, ts: u32, payload: &[u8]) {
        let mut p = vec![0x80, pt | if marker { 0x80 } else { 0 }];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&ts.to_be_bytes());
        p.extend_from_slice(&0x1234_5678u32.to_be_bytes());
        p.extend_from_slice(payload);
        self.rtp.send_to(&p, self.gw_rtp.unwrap()).await.unwrap();
    }

    /// One RFC 4733 key press: three updates and three redundant end packets.
    async fn press(&self, seq: &mut u16, ts: u32, event: u8) {
        for (i, (end, duration)) in [
            (false, 160u16),
            (false, 320),
            (false, 480),
            (true, 640),
            (true, 640),
            (true, 640),
        ]
        .into_iter()
        .enumerate()
        {
            let payload = [
                event,
                if end { 0x80 | 10 } else { 10 },
                (duration >> 8) as u8,
                duration as u8,
            ];
            self.send_rtp(101, i == 0, *seq, ts, &payload).await;
            *seq = seq.wrapping_add(1);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

fn sdp_rtp(r: &Response) -> SocketAddr {
    let body = String::from_utf8(r.body.clone()).unwrap();
    let n = media::sdp::answer_body(body.as_bytes()).unwrap();
    n.remote.unwrap()
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let until = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

const PCMA_OFFER: &[(u8, &str)] = &[
    (8, "PCMA/8000"),
    (0, "PCMU/8000"),
    (101, "telephone-event/8000"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answered_call_gets_the_greeting_paced_every_20_ms() {
    let gw = Server::start(settings(free_range(4))).await;
    let mut c = Caller::new(gw.addr).await;
    let ok = c.invite(&c.offer(PCMA_OFFER, "sendrecv")).await;
    assert_eq!(ok.status, 200);
    let answer = String::from_utf8(ok.body.clone()).unwrap();
    assert!(
        answer.contains("m=audio ") && answer.contains(" RTP/AVP 8 101\r\n"),
        "{answer}"
    );
    let port = c.gw_rtp.unwrap().port();
    assert_eq!(port % 2, 0, "even RTP port");

    let first = c.rtp_packet().await;
    let t0 = Instant::now();
    assert!(first.marker, "the first packet starts a talk-spurt");
    let greeting = greeting_pcm();
    let mut packets = vec![first];
    for _ in 0..49 {
        packets.push(c.rtp_packet().await);
    }
    let span = t0.elapsed();
    // 49 intervals of 20 ms, with scheduling slack
    assert!(
        span >= Duration::from_millis(900) && span <= Duration::from_millis(1150),
        "49 packets took {span:?}"
    );
    for (i, w) in packets.windows(2).enumerate() {
        assert_eq!(w[1].pt, 8, "PCMA as negotiated");
        assert_eq!(w[1].ssrc, w[0].ssrc);
        assert_eq!(w[1].seq, w[0].seq.wrapping_add(1), "packet {i}");
        assert_eq!(w[1].ts, w[0].ts.wrapping_add(160), "packet {i}");
        assert!(!w[1].marker);
    }
    // the greeting, encoded once with A-law, frame by frame
    for (i, p) in packets.iter().enumerate() {
        let mut want = Vec::new();
        Law::Alaw.encode_into(&greeting[i * 160..(i + 1) * 160], &mut want);
        assert_eq!(p.payload, want, "frame {i} of the greeting");
    }
    // after the greeting (50 frames): silence, still paced
    let after = c.rtp_packet().await;
    assert_eq!(after.payload, vec![Law::Alaw.silence(); 160]);

    // hold: the caller sends sendonly, we answer recvonly and stop sending
    let hold = c.offer(PCMA_OFFER, "sendonly");
    let inv = c.request("INVITE", &[], "application/sdp", &hold);
    c.send(&inv).await;
    let r = c.final_response().await;
    assert!(String::from_utf8(r.body.clone())
        .unwrap()
        .contains("a=recvonly"));
    let ack = c.request("ACK", &[], "", "");
    c.send(&ack).await;
    // drain what was in flight, then nothing for 300 ms
    tokio::time::sleep(Duration::from_millis(60)).await;
    let mut buf = [0u8; 2048];
    while c.rtp.try_recv_from(&mut buf).is_ok() {}
    let quiet = tokio::time::timeout(Duration::from_millis(300), c.rtp.recv_from(&mut buf)).await;
    assert!(quiet.is_err(), "no RTP while on hold");
    // unhold: sending resumes with a marker, same SSRC
    let inv = c.request(
        "INVITE",
        &[],
        "application/sdp",
        &c.offer(PCMA_OFFER, "sendrecv"),
    );
    c.send(&inv).await;
    assert_eq!(c.final_response().await.status, 200);
    let ack = c.request("ACK", &[], "", "");
    c.send(&ack).await;
    let resumed = c.rtp_packet().await;
    assert!(resumed.marker);
    assert_eq!(resumed.ssrc, packets[0].ssrc);
    c.bye().await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc4733_and_info_digits_reach_the_call_log_once() {
    let gw = Server::start(settings(free_range(4))).await;
    let mut c = Caller::new(gw.addr).await;
    assert_eq!(c.invite(&c.offer(PCMA_OFFER, "sendrecv")).await.status, 200);
    let appeal = gw.log.arrived.lock().unwrap()[0].clone();
    let mut seq = 1000u16;
    c.press(&mut seq, 8000, 5).await;
    // the same key again: same timestamp as SIPp's pcaps replay, after a pause
    tokio::time::sleep(Duration::from_millis(350)).await;
    c.press(&mut seq, 8000, 5).await;
    c.press(&mut seq, 16000, 11).await;
    wait_for("three digits", || gw.log.digits.lock().unwrap().len() >= 3).await;
    // in auto mode RFC 4733 came first: an INFO digit is answered 200 but not counted twice
    let info = c.request(
        "INFO",
        &[],
        "application/dtmf-relay",
        "Signal=7\r\nDuration=160\r\n",
    );
    c.send(&info).await;
    assert_eq!(c.final_response().await.status, 200);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let got = gw.log.digits.lock().unwrap().clone();
    let want: Vec<(String, char, String)> = [('5'), ('5'), ('#')]
        .iter()
        .map(|d| (appeal.clone(), *d, "rfc4733".to_string()))
        .collect();
    assert_eq!(got, want);
    c.bye().await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_digits_reach_the_call_log() {
    let mut s = settings(free_range(4));
    s.lines[0].dtmf = DtmfMode::Info;
    let gw = Server::start(s).await;
    let mut c = Caller::new(gw.addr).await;
    assert_eq!(c.invite(&c.offer(PCMA_OFFER, "sendrecv")).await.status, 200);
    let appeal = gw.log.arrived.lock().unwrap()[0].clone();
    let info = c.request(
        "INFO",
        &[],
        "application/dtmf-relay",
        "Signal=1\r\nDuration=160\r\n",
    );
    c.send(&info).await;
    assert_eq!(c.final_response().await.status, 200);
    let info = c.request("INFO", &[], "application/dtmf", "*");
    c.send(&info).await;
    assert_eq!(c.final_response().await.status, 200);
    // the line takes INFO only: RFC 4733 events are ignored
    let mut seq = 1;
    c.press(&mut seq, 1000, 9).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        *gw.log.digits.lock().unwrap(),
        vec![
            (appeal.clone(), '1', "info".to_string()),
            (appeal, '*', "info".to_string())
        ]
    );
    c.bye().await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_without_rtp_is_hung_up_after_the_timeout() {
    let mut s = settings(free_range(4));
    s.rtp_timeout = Some(Duration::from_millis(400));
    let gw = Server::start(s).await;
    let mut c = Caller::new(gw.addr).await;
    let started = Instant::now();
    assert_eq!(c.invite(&c.offer(PCMA_OFFER, "sendrecv")).await.status, 200);
    // a little RTP keeps it alive
    for i in 0..15u16 {
        c.send_rtp(8, i == 0, i, u32::from(i) * 160, &[0xD5; 160])
            .await;
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    let bye = loop {
        match c.recv().await {
            Message::Request(r) => break r,
            Message::Response(_) => {}
        }
    };
    let after = started.elapsed();
    assert_eq!(bye.method, Method::Bye);
    assert!(
        after >= Duration::from_millis(600 + 350) && after < Duration::from_millis(2000),
        "BYE after {after:?}"
    );
    c.sip
        .send_to(&bye.response(200).to_bytes(), c.server)
        .await
        .unwrap();
    wait_for("the end", || !gw.log.ended.lock().unwrap().is_empty()).await;
    assert_eq!(gw.log.ended.lock().unwrap()[0].1, EndReason::RtpTimeout);
    assert_eq!(gw.stats.rtp_timeouts.load(Ordering::Relaxed), 1);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_port_range_gets_503_and_freed_ports_are_reused() {
    let range = free_range(1);
    let gw = Server::start(settings(range)).await;
    let mut a = Caller::new(gw.addr).await;
    assert_eq!(a.invite(&a.offer(PCMA_OFFER, "sendrecv")).await.status, 200);
    assert_eq!(a.gw_rtp.unwrap().port(), range.0);
    let mut b = Caller::new(gw.addr).await;
    let r = b.invite(&b.offer(PCMA_OFFER, "sendrecv")).await;
    assert_eq!(r.status, 503);
    let ack = b.request("ACK", &[], "", "");
    b.send(&ack).await;
    wait_for("the refused call to be written down", || {
        gw.log
            .ended
            .lock()
            .unwrap()
            .iter()
            .any(|(_, r)| *r == EndReason::NoMediaPort)
    })
    .await;
    a.bye().await;
    // the pair is free again (its sockets close within a tick)
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut c = Caller::new(gw.addr).await;
    assert_eq!(c.invite(&c.offer(PCMA_OFFER, "sendrecv")).await.status, 200);
    assert_eq!(c.gw_rtp.unwrap().port(), range.0);
    c.bye().await;
    assert_eq!(gw.stats.calls_total.load(Ordering::Relaxed), 2);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_sdp_gets_400() {
    let gw = Server::start(settings(free_range(4))).await;
    let mut c = Caller::new(gw.addr).await;
    let r = c
        .invite("v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio x RTP/AVP 0\r\n")
        .await;
    assert_eq!(r.status, 400);
    assert!(r.reason.starts_with("Bad Request - "), "{}", r.reason);
    let ack = c.request("ACK", &[], "", "");
    c.send(&ack).await;
    gw.stop().await;
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "hotline-{name}-{}-{}",
        std::process::id(),
        unique()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorded_call_holds_exactly_the_samples_sent() {
    let dir = temp_dir("rec");
    let mut s = settings(free_range(4));
    s.lines[0].record = true;
    s.recordings_dir = dir.clone();
    let gw = Server::start(s).await;
    let mut c = Caller::new(gw.addr).await;
    let offer = c.offer(
        &[(0, "PCMU/8000"), (101, "telephone-event/8000")],
        "sendrecv",
    );
    assert_eq!(c.invite(&offer).await.status, 200);
    let appeal = gw.log.arrived.lock().unwrap()[0].clone();
    // 50 frames of varied μ-law codes (no code that decodes to 0)
    let mut sent = Vec::new();
    let mut x: u32 = 12345;
    for i in 0..50u16 {
        let payload: Vec<u8> = (0..160)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                let code = (x >> 16) as u8;
                if code == 0xFF || code == 0x7F {
                    0x80
                } else {
                    code
                }
            })
            .collect();
        c.send_rtp(0, i == 0, 500 + i, 90_000 + u32::from(i) * 160, &payload)
            .await;
        sent.extend(payload.iter().map(|&b| Law::Ulaw.decode(b)));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    c.bye().await;
    gw.stop().await; // the writer has finished every file when run returns
    let path = dir.join(format!("{appeal}.wav"));
    let r = hound::WavReader::open(&path).unwrap();
    assert_eq!(
        (
            r.spec().channels,
            r.spec().sample_rate,
            r.spec().bits_per_sample
        ),
        (2, 8000, 16)
    );
    let all: Vec<i16> = r.into_samples().map(Result::unwrap).collect();
    let caller: Vec<i16> = all.iter().step_by(2).copied().collect();
    let ours: Vec<i16> = all.iter().skip(1).step_by(2).copied().collect();
    let start = caller
        .iter()
        .position(|&v| v != 0)
        .expect("caller audio recorded");
    assert_eq!(
        &caller[start..start + sent.len()],
        &sent[..],
        "left channel = what was sent"
    );
    assert!(caller[start + sent.len()..].iter().all(|&v| v == 0));
    // right channel: the greeting we played, through μ-law
    let greeting: Vec<i16> = greeting_pcm()
        .iter()
        .map(|&v| Law::Ulaw.decode(Law::Ulaw.encode(v)))
        .collect();
    let lead = greeting.iter().position(|&v| v != 0).unwrap();
    let g0 = ours
        .iter()
        .position(|&v| v != 0)
        .expect("our audio recorded")
        - lead;
    let n = greeting.len().min(ours.len() - g0);
    assert!(
        n > 4000,
        "at least half the greeting was recorded ({n} samples)"
    );
    assert_eq!(&ours[g0..g0 + n], &greeting[..n]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recording_cut_short_is_repaired_at_start() {
    let dir = temp_dir("repair");
    let path = dir.join("crashed.wav");
    {
        let mut c = std::io::Cursor::new(Vec::new());
        let mut w = media::wav::WavWriter::new(
            &mut c,
            media::wav::Spec {
                channels: 2,
                sample_rate: 8000,
            },
        )
        .unwrap();
        w.write_samples(&[1, 2, 3, 4, 5, 6]).unwrap();
        // no finish: the header still says 0 bytes
        let _ = w;
        std::fs::write(&path, c.into_inner()).unwrap();
    }
    let mut s = settings(free_range(1));
    s.recordings_dir = dir.clone();
    let gw = Server::start(s).await;
    let samples: Vec<i16> = hound::WavReader::open(&path)
        .unwrap()
        .into_samples()
        .map(Result::unwrap)
        .collect();
    assert_eq!(samples, [1, 2, 3, 4, 5, 6]);
    gw.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

// --- the voice menu in a call ------------------------------------------------------------

/// A tone of `hz` for `ms` as a WAV file (8 kHz mono 16-bit).
fn tone_wav(path: &std::path::Path, hz: f64, ms: usize) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for n in 0..ms * 8 {
        let v = 8000.0 * (2.0 * std::f64::consts::PI * hz * n as f64 / 8000.0).sin();
        w.write_sample(v as i16).unwrap();
    }
    w.finalize().unwrap();
}

/// A small menu: a 0.4 s greeting, then a 2 s menu where `1` sets category `benefits` and
/// queues the caller in `benefits` after a 0.3 s prompt. Returns the settings with the city
/// line running it and the prompts loaded into the cache as the daemon does.
fn menu_settings(dir: &std::path::Path) -> Settings {
    let p = dir.join("prompts");
    std::fs::create_dir_all(&p).unwrap();
    tone_wav(&p.join("greet.wav"), 400.0, 400);
    tone_wav(&p.join("menu.wav"), 1000.0, 2000);
    tone_wav(&p.join("queued.wav"), 600.0, 300);
    std::fs::write(
        p.join("prompts.toml"),
        "greet = \"Hello\"\nmenu = \"Press 1\"\nqueued = \"Please wait\"\n",
    )
    .unwrap();
    let file = dir.join("menu.toml");
    std::fs::write(
        &file,
        "prompts = \"prompts\"\noperator = \"op\"\n\
         [[play]]\nid = \"greeting\"\nprompt = \"greet\"\nnext = \"main\"\n\
         [[menu]]\nid = \"main\"\nprompt = \"menu\"\ntimeout = 5\nchoices = { 1 = \"benefits\" }\n\
         [[set]]\nid = \"benefits\"\ncategory = \"benefits\"\nnext = \"q\"\n\
         [[queue]]\nid = \"q\"\nqueue = \"benefits\"\nprompt = \"queued\"\n\
         [[queue]]\nid = \"op\"\nqueue = \"operators\"\n",
    )
    .unwrap();
    let cx = ivr::Context {
        start: "greeting",
        start_at: None,
        queues: None,
    };
    let menu = Arc::new(ivr::load(&[file], &cx).unwrap());
    let encoders = media::prompts::G711;
    let prompts = menu.prompts().values().map(|i| {
        Arc::new(
            Prompt::load(
                gateway::settings::menu_prompt_name(&i.path),
                &i.path,
                &encoders,
            )
            .unwrap(),
        )
    });
    let mut s = settings(free_range(4));
    s.prompts = Arc::new(PromptCache::from_prompts(prompts, &encoders));
    s.lines[0].menu = Some(menu);
    s.lines[0].start = "greeting".into();
    s
}

/// Which prompt a PCMU payload is a frame of (`silence` for silence).
fn classify(s: &Settings, payload: &[u8]) -> String {
    if payload.iter().all(|b| *b == Law::Ulaw.silence()) {
        return "silence".into();
    }
    let menu = s.lines[0].menu.as_ref().unwrap();
    for (name, info) in menu.prompts() {
        let p = s
            .prompts
            .get(&gateway::settings::menu_prompt_name(&info.path))
            .unwrap();
        if (0..p.frames()).any(|i| p.encoded_frame("PCMU", i) == Some(payload)) {
            return name.clone();
        }
    }
    "unknown".into()
}

const PCMU_OFFER: &[(u8, &str)] = &[(0, "PCMU/8000"), (101, "telephone-event/8000")];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_menu_plays_barges_in_on_a_digit_and_ends_in_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    let s = menu_settings(dir.path());
    let gw = Server::start(s.clone()).await;
    let mut c = Caller::new(gw.addr).await;
    assert_eq!(c.invite(&c.offer(PCMU_OFFER, "sendrecv")).await.status, 200);

    // the greeting's 20 frames, then (after at most a frame of silence) the menu prompt
    let mut heard = Vec::new();
    while heard.iter().filter(|h| *h == "menu").count() < 10 {
        heard.push(classify(&s, &c.rtp_packet().await.payload));
        assert!(heard.len() < 60, "no menu prompt: {heard:?}");
    }
    let greeting = heard.iter().filter(|h| *h == "greet").count();
    assert_eq!(greeting, 20, "{heard:?}");
    assert!(heard[..20].iter().all(|h| h == "greet"), "{heard:?}");
    assert!(
        heard[20..].iter().all(|h| h == "menu" || h == "silence"),
        "{heard:?}"
    );
    assert!(heard[20..].iter().filter(|h| *h == "silence").count() <= 1);

    // `1` during the menu prompt: it stops at once and the queue's prompt starts
    let mut seq = 1;
    c.press(&mut seq, 64_000, 1).await;
    let mut after = Vec::new();
    while !after.iter().any(|h| h == "queued") {
        after.push(classify(&s, &c.rtp_packet().await.payload));
        assert!(after.len() < 15, "no barge-in: {after:?}");
    }
    // then the queue prompt (15 frames) and silence: the caller waits in the queue
    let mut rest = Vec::new();
    for _ in 0..25 {
        rest.push(classify(&s, &c.rtp_packet().await.payload));
    }
    assert!(
        !rest.iter().any(|h| h == "menu" || h == "greet"),
        "{rest:?}"
    );
    assert_eq!(
        rest.iter().filter(|h| *h == "queued").count() + 1,
        15,
        "{rest:?}"
    );
    assert!(rest[20..].iter().all(|h| h == "silence"), "{rest:?}");

    let appeal = gw.log.arrived.lock().unwrap()[0].clone();
    let steps: Vec<IvrStep> = gw
        .log
        .steps
        .lock()
        .unwrap()
        .iter()
        .filter(|(a, _)| *a == appeal)
        .map(|(_, s)| s.clone())
        .collect();
    let path: Vec<&str> = steps
        .iter()
        .filter_map(|s| match s {
            IvrStep::Path { step, .. } => Some(step.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(path, ["greeting", "main", "main:1", "benefits", "q"]);
    assert!(steps.contains(&IvrStep::Path {
        step: "q".into(),
        path: "greeting>main>main:1>benefits>q".into()
    }));
    assert!(steps.contains(&IvrStep::Category("benefits".into())));
    assert_eq!(
        steps.last(),
        Some(&IvrStep::EnteredQueue {
            queue: "benefits".into(),
            priority: 0
        })
    );
    // the digit is still written as a key press
    assert_eq!(gw.log.digits.lock().unwrap().len(), 1);
    // the call stays up in the queue until the caller hangs up
    assert!(gw.log.ended.lock().unwrap().is_empty());
    c.bye().await;
    wait_for("the call's end", || {
        !gw.log.ended.lock().unwrap().is_empty()
    })
    .await;
    assert_eq!(*gw.log.ivr_ends.lock().unwrap(), vec![Some(IvrEnd::Queue)]);
    gw.stop().await;
}

/// A caller the menu takes to `benefits` hears the queue's music on hold once the queue
/// prompt has ended: every frame in order, 20 ms apart in sequence and timestamp, and the
/// loop starting again after its last frame.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_waiting_in_the_queue_hears_continuous_music_on_hold() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = menu_settings(dir.path());
    // 0.5 s of 800 Hz: 25 frames, so the test hears it loop
    let wav = dir.path().join("prompts/moh.wav");
    tone_wav(&wav, 800.0, 500);
    let encoders = media::prompts::G711;
    let name = gateway::settings::menu_prompt_name(&wav);
    let music = Arc::new(Prompt::load(name.clone(), &wav, &encoders).unwrap());
    let mut all: Vec<Arc<Prompt>> = s
        .prompts
        .names()
        .filter_map(|n| s.prompts.get(n).cloned())
        .collect();
    all.push(music.clone());
    s.prompts = Arc::new(PromptCache::from_prompts(all, &encoders));
    s.moh.insert("benefits".into(), name);
    let moh = media::moh::MohLoop::from_prompt(&music);
    let frames = moh.frames();
    assert!(frames >= 20, "{frames}");

    let gw = Server::start(s.clone()).await;
    let mut c = Caller::new(gw.addr).await;
    assert_eq!(c.invite(&c.offer(PCMU_OFFER, "sendrecv")).await.status, 200);
    let mut seq = 1;
    // wait for the menu prompt, then `1` takes the caller to the queue
    let mut n = 0;
    while classify(&s, &c.rtp_packet().await.payload) != "menu" {
        n += 1;
        assert!(n < 60, "no menu prompt");
    }
    c.press(&mut seq, 64_000, 1).await;
    let mut n = 0;
    while classify(&s, &c.rtp_packet().await.payload) != "queued" {
        n += 1;
        assert!(n < 15, "no queue prompt");
    }
    // the rest of the queue prompt (and at most a frame of silence), then the music
    let first = loop {
        let p = c.rtp_packet().await;
        if p.payload.as_slice() == moh.frame(Law::Ulaw, 0) {
            break p;
        }
        let h = classify(&s, &p.payload);
        assert!(h == "queued" || h == "silence", "{h} before the music");
        n += 1;
        assert!(n < 40, "no music on hold");
    };
    let mut prev = first;
    for k in 1..frames + 10 {
        let p = c.rtp_packet().await;
        assert_eq!(
            p.payload.as_slice(),
            moh.frame(Law::Ulaw, k % frames),
            "music frame {k}"
        );
        assert_eq!(p.seq, prev.seq.wrapping_add(1));
        assert_eq!(p.ts, prev.ts.wrapping_add(160));
        assert_eq!(p.ssrc, prev.ssrc);
        prev = p;
    }
    assert!(gw.log.ended.lock().unwrap().is_empty());
    c.bye().await;
    wait_for("the call's end", || {
        !gw.log.ended.lock().unwrap().is_empty()
    })
    .await;
    gw.stop().await;
}

/// The ACD of `benefits` with operator `op1` in it.
fn benefits_acd() -> acd::AcdConfig {
    acd::AcdConfig {
        queues: vec![acd::QueueConfig::new("benefits")],
        operators: vec![acd::OperatorConfig::new("op1", [("benefits", 1)])],
    }
}

/// Operator commands reach the ACD of the running gateway: a known operator logs in, pauses,
/// resumes and logs out; an unknown one and a gateway without an ACD are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_commands_reach_the_acd() {
    use gateway::{OperatorCommand as Cmd, OperatorControlError as E};
    let gw = Server::start(settings(free_range(2))).await;
    assert_eq!(
        gw.ops.apply("op1", Cmd::Login { queues: vec![] }).await,
        Err(E::NoAcd)
    );
    gw.stop().await;

    let mut s = settings(free_range(2));
    s.acd = Some(benefits_acd());
    let gw = Server::start(s).await;
    assert_eq!(
        gw.ops.apply("op1", Cmd::Login { queues: vec![] }).await,
        Ok(())
    );
    let pause = Cmd::Pause {
        reason: "lunch".into(),
    };
    assert_eq!(gw.ops.apply("op1", pause).await, Ok(()));
    assert_eq!(gw.ops.apply("op1", Cmd::Unpause).await, Ok(()));
    assert_eq!(gw.ops.apply("op1", Cmd::Logout).await, Ok(()));
    assert!(matches!(
        gw.ops.apply("op9", Cmd::Login { queues: vec![] }).await,
        Err(E::Acd(acd::AcdError::UnknownOperator(_)))
    ));
    let ops = gw.ops.clone();
    gw.stop().await;
    assert_eq!(
        ops.apply("op1", Cmd::Login { queues: vec![] }).await,
        Err(E::Stopped)
    );
}

/// Operator `op1`'s softphone: a SIP socket that registers with digest and answers, and an
/// RTP socket.
struct Phone {
    sip: UdpSocket,
    rtp: UdpSocket,
    server: SocketAddr,
}

impl Phone {
    async fn new(server: SocketAddr) -> Phone {
        Phone {
            sip: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
            rtp: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
            server,
        }
    }

    async fn send(&self, bytes: &[u8]) {
        self.sip.send_to(bytes, self.server).await.unwrap();
    }

    async fn recv(&self) -> Message {
        let mut buf = vec![0u8; 65_536];
        let (n, _) = tokio::time::timeout(WAIT, self.sip.recv_from(&mut buf))
            .await
            .expect("a SIP message for the operator")
            .unwrap();
        sip::parse_message(&buf[..n]).unwrap()
    }

    async fn final_response(&self) -> Response {
        loop {
            if let Message::Response(r) = self.recv().await {
                if r.status >= 200 {
                    return r;
                }
            }
        }
    }

    /// REGISTER, the 401 challenge, REGISTER with the digest, 200.
    async fn register_with_digest(&self) {
        let call_id = format!("reg-{}", unique());
        let reg = test_support::Register::udp("op1", self.sip.local_addr().unwrap(), &call_id);
        let branch = || format!("-r{}", unique());
        self.send(reg.text(1, &branch(), None).as_bytes()).await;
        let ch = self.final_response().await;
        assert_eq!(ch.status, 401);
        let auth = test_support::digest_for(&ch, "op1");
        self.send(reg.text(2, &branch(), Some(&auth)).as_bytes())
            .await;
        assert_eq!(self.final_response().await.status, 200);
    }

    /// The next request from the gateway (responses to our REGISTER skipped).
    async fn request(&self) -> sip::Request {
        loop {
            if let Message::Request(r) = self.recv().await {
                return r;
            }
        }
    }

    /// Answers `invite` 200 with PCMU on our RTP socket; returns where the gateway's RTP is.
    async fn answer(&self, invite: &sip::Request) -> SocketAddr {
        let body = String::from_utf8(invite.body.clone()).unwrap();
        let port: u16 = body
            .lines()
            .find_map(|l| l.strip_prefix("m=audio "))
            .and_then(|l| l.split(' ').next())
            .unwrap()
            .parse()
            .unwrap();
        let me = self.sip.local_addr().unwrap();
        let mut r = invite.response(200);
        let to = r.headers.get(&sip::HeaderName::To).unwrap().to_string();
        r.headers
            .set(sip::HeaderName::To, format!("{to};tag=op1tag"));
        r.headers
            .push(sip::HeaderName::Contact, format!("<sip:op1@{me}>"));
        r.headers
            .push(sip::HeaderName::ContentType, "application/sdp");
        let rtp = self.rtp.local_addr().unwrap().port();
        r.body = format!(
            "v=0\r\no=op 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio {rtp} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
        )
        .into_bytes();
        self.send(&r.to_bytes()).await;
        SocketAddr::new("127.0.0.1".parse().unwrap(), port)
    }

    async fn rtp_payload(&self) -> Vec<u8> {
        let mut buf = vec![0u8; 2048];
        let (n, _) = tokio::time::timeout(WAIT, self.rtp.recv_from(&mut buf))
            .await
            .expect("RTP for the operator")
            .unwrap();
        Rtp::parse(&buf[..n]).payload
    }
}

/// The whole path of a call to an operator: op1's phone registers with digest and logs in;
/// a caller walks the menu into `benefits`; the phone is sent an INVITE with our SDP offer,
/// answers 200 and gets the ACK; audio flows both ways through the bridge; the caller hangs
/// up and the phone gets BYE; the call log names the operator, the wait and the talk time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_caller_is_connected_to_a_registered_operator() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = menu_settings(dir.path());
    s.operators = vec![gateway::OperatorSettings {
        login: "op1".into(),
        secret: sip::auth::Secret::Plain("op1-secret".into()),
    }];
    s.acd = Some(benefits_acd());
    let gw = Server::start(s.clone()).await;
    let phone = Phone::new(gw.addr).await;
    phone.register_with_digest().await;
    gw.ops
        .apply("op1", gateway::OperatorCommand::Login { queues: vec![] })
        .await
        .unwrap();

    let mut c = Caller::new(gw.addr).await;
    assert_eq!(c.invite(&c.offer(PCMU_OFFER, "sendrecv")).await.status, 200);
    let mut n = 0;
    while classify(&s, &c.rtp_packet().await.payload) != "menu" {
        n += 1;
        assert!(n < 60, "no menu prompt");
    }
    let mut seq = 1;
    c.press(&mut seq, 64_000, 1).await;

    // the operator's phone rings, answers, and is ACKed
    let invite = phone.request().await;
    assert_eq!(invite.method, sip::Method::Invite);
    assert!(
        invite.uri.to_string().starts_with("sip:op1@127.0.0.1"),
        "{}",
        invite.uri
    );
    let gw_op_rtp = phone.answer(&invite).await;
    let ack = phone.request().await;
    assert_eq!(ack.method, sip::Method::Ack);
    assert_eq!(
        ack.headers.call_id().unwrap(),
        invite.headers.call_id().unwrap()
    );
    wait_for("the bridge", || !gw.log.answered.lock().unwrap().is_empty()).await;

    // caller → operator
    let from_caller = [0x42u8; 160];
    for k in 0..10u16 {
        c.send_rtp(
            0,
            k == 0,
            100 + k,
            16_000 + u32::from(k) * 160,
            &from_caller,
        )
        .await;
    }
    let mut n = 0;
    while phone.rtp_payload().await != from_caller {
        n += 1;
        assert!(n < 50, "the caller's audio never reached the operator");
    }
    // operator → caller
    let from_op = [0x24u8; 160];
    for k in 0..10u16 {
        let mut p = vec![0x80, if k == 0 { 0x80 } else { 0 }];
        p.extend_from_slice(&(500 + k).to_be_bytes());
        p.extend_from_slice(&(u32::from(k) * 160).to_be_bytes());
        p.extend_from_slice(&0x0102_0304u32.to_be_bytes());
        p.extend_from_slice(&from_op);
        phone.rtp.send_to(&p, gw_op_rtp).await.unwrap();
    }
    let mut n = 0;
    while c.rtp_packet().await.payload != from_op {
        n += 1;
        assert!(n < 50, "the operator's audio never reached the caller");
    }

    // the caller hangs up: the operator gets BYE
    c.bye().await;
    let bye = phone.request().await;
    assert_eq!(bye.method, sip::Method::Bye);
    phone.send(&bye.response(200).to_bytes()).await;
    wait_for("the call's end", || {
        !gw.log.ended.lock().unwrap().is_empty()
    })
    .await;
    let answered = gw.log.answered.lock().unwrap().clone();
    let appeal = gw.log.arrived.lock().unwrap()[0].clone();
    assert_eq!(answered.len(), 1);
    assert_eq!(answered[0].0, appeal);
    assert_eq!(answered[0].1, "op1");
    assert!(
        answered[0].2 < Duration::from_secs(2),
        "{:?}",
        answered[0].2
    );
    let ops = gw.log.operators.lock().unwrap().clone();
    let (op, talk) = ops[0].clone().unwrap();
    assert_eq!(op, "op1");
    assert!(talk > Duration::ZERO);
    gw.stop().await;
}

/// A busy operator is offered the caller again after the queue's retry delay; when the
/// operator hangs up, the caller gets BYE and the call ends as `operator_hung_up`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_operator_is_retried_and_their_hang_up_ends_the_call() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = menu_settings(dir.path());
    s.operators = vec![gateway::OperatorSettings {
        login: "op1".into(),
        secret: sip::auth::Secret::Plain("op1-secret".into()),
    }];
    let mut acd = benefits_acd();
    acd.queues[0].retry_delay = Duration::from_millis(300);
    s.acd = Some(acd);
    let gw = Server::start(s.clone()).await;
    let phone = Phone::new(gw.addr).await;
    phone.register_with_digest().await;
    gw.ops
        .apply("op1", gateway::OperatorCommand::Login { queues: vec![] })
        .await
        .unwrap();
    let mut c = Caller::new(gw.addr).await;
    assert_eq!(c.invite(&c.offer(PCMU_OFFER, "sendrecv")).await.status, 200);
    let mut seq = 1;
    let mut n = 0;
    while classify(&s, &c.rtp_packet().await.payload) != "menu" {
        n += 1;
        assert!(n < 60, "no menu prompt");
    }
    c.press(&mut seq, 64_000, 1).await;

    // busy: the transaction layer ACKs the 486, and the offer comes again later
    let first = phone.request().await;
    assert_eq!(first.method, sip::Method::Invite);
    let busy_at = Instant::now();
    let mut busy = first.response(486);
    let to = busy.headers.get(&sip::HeaderName::To).unwrap().to_string();
    busy.headers
        .set(sip::HeaderName::To, format!("{to};tag=busy"));
    phone.send(&busy.to_bytes()).await;
    let ack = phone.request().await;
    assert_eq!(ack.method, sip::Method::Ack);
    let second = phone.request().await;
    assert_eq!(second.method, sip::Method::Invite);
    assert!(busy_at.elapsed() >= Duration::from_millis(250));
    assert_ne!(
        second.headers.call_id().unwrap(),
        first.headers.call_id().unwrap()
    );
    phone.answer(&second).await;
    assert_eq!(phone.request().await.method, sip::Method::Ack);
    wait_for("the bridge", || !gw.log.answered.lock().unwrap().is_empty()).await;

    // the operator hangs up
    let me = phone.sip.local_addr().unwrap();
    let from = second.headers.get(&sip::HeaderName::From).unwrap();
    let contact = second.headers.contacts().unwrap().unwrap()[0]
        .uri
        .to_string();
    let bye = format!(
        "BYE {contact} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-b{}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:op1@hotline>;tag=op1tag\r\nTo: {from}\r\n\
         Call-ID: {}\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
        unique(),
        second.headers.call_id().unwrap(),
    );
    phone.send(bye.as_bytes()).await;
    assert_eq!(phone.final_response().await.status, 200);
    let to_caller = loop {
        if let Message::Request(r) = c.recv().await {
            break r;
        }
    };
    assert_eq!(to_caller.method, sip::Method::Bye);
    c.send(std::str::from_utf8(&to_caller.response(200).to_bytes()).unwrap())
        .await;
    wait_for("the call's end", || {
        !gw.log.ended.lock().unwrap().is_empty()
    })
    .await;
    assert_eq!(gw.log.ended.lock().unwrap()[0].1, EndReason::OperatorHungUp);
    let ops = gw.log.operators.lock().unwrap().clone();
    assert_eq!(ops[0].as_ref().map(|(o, _)| o.as_str()), Some("op1"));
    // the operator is free again: nobody else is rung
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut buf = [0u8; 2048];
    assert!(
        tokio::time::timeout(Duration::from_millis(100), phone.sip.recv_from(&mut buf))
            .await
            .is_err()
    );
    gw.stop().await;
}

fn steps_of(log: &Log, appeal: &str) -> Vec<IvrStep> {
    log.steps
        .lock()
        .unwrap()
        .iter()
        .filter(|(a, _)| a == appeal)
        .map(|(_, s)| s.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_changes_new_calls_only() {
    let dir = tempfile::tempdir().unwrap();
    let s = menu_settings(dir.path());
    let gw = Server::start(s.clone()).await;
    let mut first = Caller::new(gw.addr).await;
    assert_eq!(
        first
            .invite(&first.offer(PCMU_OFFER, "sendrecv"))
            .await
            .status,
        200
    );
    assert_eq!(
        classify(&s, &first.rtp_packet().await.payload),
        "greet",
        "the menu's greeting"
    );

    // the line loses its menu: new calls hear the plain 1 s greeting and nothing else
    let plain = settings(free_range(4));
    let ignored = gw.reloader.reload(plain).await.unwrap();
    assert_eq!(
        ignored,
        ["rtp.port_min/port_max"],
        "the port range needs a restart"
    );
    let mut second = Caller::new(gw.addr).await;
    assert_eq!(
        second
            .invite(&second.offer(PCMU_OFFER, "sendrecv"))
            .await
            .status,
        200
    );
    for i in 0..30 {
        // 400 Hz frames as the menu's greeting has, but 50 of them (the menu's has 20)
        assert_eq!(
            classify(&s, &second.rtp_packet().await.payload),
            "greet",
            "frame {i}"
        );
    }
    let appeals = gw.log.arrived.lock().unwrap().clone();
    assert!(steps_of(&gw.log, &appeals[1]).is_empty());

    // the first call is still in its menu: `1` takes it to the queue
    let mut heard = Vec::new();
    while !heard.iter().any(|h| h == "menu") {
        heard.push(classify(&s, &first.rtp_packet().await.payload));
        assert!(heard.len() < 60, "{heard:?}");
    }
    let mut seq = 1;
    first.press(&mut seq, 64_000, 1).await;
    wait_for("the first call in the queue", || {
        steps_of(&gw.log, &appeals[0]).contains(&IvrStep::EnteredQueue {
            queue: "benefits".into(),
            priority: 0,
        })
    })
    .await;
    first.bye().await;
    second.bye().await;
    gw.stop().await;
}

fn load(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

fn responses(stats: &Stats, code: u16) -> u64 {
    stats
        .responses()
        .into_iter()
        .find(|r| r.code == Some(code))
        .map(|r| r.count)
        .unwrap()
}

fn waiting(stats: &Stats, queue: &str) -> Option<(u64, bool)> {
    stats
        .queue_waits()
        .into_iter()
        .find(|q| q.queue == queue)
        .map(|q| (q.waiting, q.oldest.is_some()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_moves_the_metrics_counters() {
    let dir = tempfile::tempdir().unwrap();
    let s = menu_settings(dir.path());
    let gw = Server::start(s.clone()).await;
    let st = gw.stats.clone();
    assert_eq!(load(&st.rtp_legs_active), 0);
    let mut c = Caller::new(gw.addr).await;
    assert_eq!(c.invite(&c.offer(PCMU_OFFER, "sendrecv")).await.status, 200);
    // answered into the menu: in the IVR, one leg, 100 Trying, 180 and 200 sent
    assert_eq!(load(&st.calls_in_ivr), 1);
    wait_for("the leg on the tick", || load(&st.rtp_legs_active) == 1).await;
    assert_eq!(responses(&st, 100), 1);
    assert_eq!(responses(&st, 180), 1);
    assert!(responses(&st, 200) >= 1);
    assert_eq!(waiting(&st, "benefits"), None);

    // what the gateway sends is counted (the tick adds after sending)
    let mut heard = 0;
    while heard < 10 {
        c.rtp_packet().await;
        heard += 1;
    }
    wait_for("sent packets", || load(&st.rtp_packets_sent) >= heard).await;

    // 25 audio packets with 3 missing (sequence 10, 11, 12), then a key press (6 packets)
    // in the same sequence space
    for seq in (1..=25u16).filter(|n| !(10..=12).contains(n)) {
        c.send_rtp(0, seq == 1, seq, u32::from(seq) * 160, &[0xFF; 160])
            .await;
    }
    wait_for("the menu prompt", || {
        gw.log
            .steps
            .lock()
            .unwrap()
            .iter()
            .any(|(_, step)| matches!(step, IvrStep::Path { step, .. } if step == "main"))
    })
    .await;
    let mut seq = 26;
    c.press(&mut seq, 26 * 160, 1).await;
    wait_for("the digit", || gw.log.digits.lock().unwrap().len() == 1).await;
    wait_for("28 packets received", || {
        load(&st.rtp_packets_received) == 28
    })
    .await;
    wait_for("3 packets lost", || load(&st.rtp_packets_lost) == 3).await;
    assert_eq!(
        st.dtmf_digits().map(|(via, n)| (via.as_str(), n)),
        [("rfc4733", 1), ("info", 0), ("inband", 0)]
    );
    // `1` leads to the queue: out of the IVR, waiting in `benefits`
    wait_for("the queue", || waiting(&st, "benefits") == Some((1, true))).await;
    assert_eq!(load(&st.calls_in_ivr), 0);

    // an INFO digit is counted as received even though RFC 4733 won in `auto` mode
    let info = c.request(
        "INFO",
        &[],
        "application/dtmf-relay",
        "Signal=7\r\nDuration=160\r\n",
    );
    c.send(&info).await;
    assert_eq!(c.final_response().await.status, 200);
    assert_eq!(
        st.dtmf_digits().map(|(via, n)| (via.as_str(), n)),
        [("rfc4733", 1), ("info", 1), ("inband", 0)]
    );
    assert_eq!(gw.log.digits.lock().unwrap().len(), 1);

    c.bye().await;
    // INVITE, INFO and BYE were answered 200 (the INVITE's perhaps more than once)
    assert!(responses(&st, 200) >= 3);
    wait_for("the queue emptied", || {
        waiting(&st, "benefits") == Some((0, false))
    })
    .await;
    wait_for("the leg gone", || load(&st.rtp_legs_active) == 0).await;
    assert_eq!(load(&st.calls_in_ivr), 0);
    assert_eq!(load(&st.rtp_packets_received), 28);
    assert_eq!(load(&st.rtp_packets_lost), 3);
    assert_eq!(load(&st.rtp_timeouts), 0);
    let requests = st.requests();
    for m in ["INVITE", "ACK", "INFO", "BYE"] {
        assert_eq!(
            requests.iter().find(|(r, _)| r == m).map(|(_, n)| *n),
            Some(1),
            "{m}: {requests:?}"
        );
    }
    gw.stop().await;
}

// ---------------------------------------------------------------- waiting in a queue

/// `menu_settings` plus every prompt a waiting caller may hear (the Russian number pieces and
/// `gateway::WAITING_PROMPTS`), each a tone of its own `ms` long, and a 0.5 s music on hold
/// for `benefits`; `queue` is the ACD's `benefits` (op1 in it). Returns the settings and a
/// map from each PCMU frame to the prompt it belongs to (`moh` for the music).
fn waiting_settings(
    dir: &std::path::Path,
    queue: acd::QueueConfig,
    ms: usize,
) -> (Settings, std::collections::HashMap<Vec<u8>, String>) {
    let mut s = menu_settings(dir);
    let encoders = media::prompts::G711;
    let mut all: Vec<Arc<Prompt>> = s
        .prompts
        .names()
        .filter_map(|n| s.prompts.get(n).cloned())
        .collect();
    let names = media::numbers_ru::PIECES
        .iter()
        .map(|(n, _)| *n)
        .chain(gateway::WAITING_PROMPTS.iter().map(|(n, _)| *n))
        .chain(["moh"]);
    let mut frames = std::collections::HashMap::new();
    for (i, n) in names.enumerate() {
        let hz = 300.0 + 17.0 * i as f64;
        let len = if n == "moh" { 4000 } else { ms * 8 };
        let pcm: Vec<i16> = (0..len)
            .map(|k| (6000.0 * (2.0 * std::f64::consts::PI * hz * k as f64 / 8000.0).sin()) as i16)
            .collect();
        let p = Prompt::from_pcm(PromptName::new(n.to_string()), &pcm, &encoders);
        for f in 0..p.frames() {
            frames.insert(p.encoded_frame("PCMU", f).unwrap().to_vec(), n.to_string());
        }
        if n == "moh" {
            let l = media::moh::MohLoop::from_prompt(&p);
            for f in 0..l.frames() {
                frames.insert(l.frame(Law::Ulaw, f).to_vec(), "moh".into());
            }
        }
        all.push(Arc::new(p));
    }
    s.prompts = Arc::new(PromptCache::from_prompts(all, &encoders));
    s.moh.insert("benefits".into(), PromptName::new("moh"));
    s.operators = vec![gateway::OperatorSettings {
        login: "op1".into(),
        secret: sip::auth::Secret::Plain("op1-secret".into()),
    }];
    s.acd = Some(acd::AcdConfig {
        queues: vec![queue],
        operators: vec![acd::OperatorConfig::new("op1", [("benefits", 1)])],
    });
    (s, frames)
}

/// What a frame is: a waiting prompt, `moh`, a menu prompt or `silence`.
fn what(
    s: &Settings,
    frames: &std::collections::HashMap<Vec<u8>, String>,
    payload: &[u8],
) -> String {
    frames
        .get(payload)
        .cloned()
        .unwrap_or_else(|| classify(s, payload))
}

/// Calls in, walks the menu into `benefits` and returns once the queue prompt has played.
async fn into_the_queue(gw: &Server, s: &Settings) -> Caller {
    let mut c = Caller::new(gw.addr).await;
    assert_eq!(c.invite(&c.offer(PCMU_OFFER, "sendrecv")).await.status, 200);
    let mut n = 0;
    while classify(s, &c.rtp_packet().await.payload) != "menu" {
        n += 1;
        assert!(n < 60, "no menu prompt");
    }
    let mut seq = 1;
    c.press(&mut seq, 64_000, 1).await;
    c
}

/// Collapses a run of frames to the prompts heard, in order (`silence` dropped).
fn heard(frames: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for f in frames {
        if f != "silence" && out.last() != Some(f) {
            out.push(f.clone());
        }
    }
    out
}

/// A caller alone in the queue hears, after the queue prompt: «вы первый в очереди, примерное
/// время ожидания — более десяти минут» (nobody is ready, so no promise), then the music.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_place_and_wait_are_announced_then_the_music_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let (s, frames) = waiting_settings(dir.path(), acd::QueueConfig::new("benefits"), 100);
    let gw = Server::start(s.clone()).await;
    let mut c = into_the_queue(&gw, &s).await;
    let mut got = Vec::new();
    while got.iter().filter(|f| *f == "moh").count() < 10 {
        got.push(what(&s, &frames, &c.rtp_packet().await.payload));
        assert!(got.len() < 150, "{:?}", heard(&got));
    }
    let said: Vec<String> = heard(&got)
        .into_iter()
        .skip_while(|p| p == "queued")
        .collect();
    assert_eq!(
        said,
        [
            "numbers/vy",
            "numbers/ord1",
            "numbers/v-ocheredi",
            "queue/estimated-wait",
            "queue/more-than",
            "numbers/g10",
            "numbers/minut",
            "moh"
        ],
        "{got:?}"
    );
    c.bye().await;
    wait_for("the call's end", || {
        !gw.log.ended.lock().unwrap().is_empty()
    })
    .await;
    gw.stop().await;
}

/// An operator who answers while the caller hears the announcement is connected at once: the
/// announcement (4.2 s long here) stops within a few frames and the operator's audio follows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_who_answers_mid_announcement_is_connected_at_once() {
    let dir = tempfile::tempdir().unwrap();
    // long pieces: the announcement lasts 7 × 0.6 s
    let (s, frames) = waiting_settings(dir.path(), acd::QueueConfig::new("benefits"), 600);
    let gw = Server::start(s.clone()).await;
    let phone = Phone::new(gw.addr).await;
    phone.register_with_digest().await;
    let c = into_the_queue(&gw, &s).await;
    // the announcement is playing (nobody is logged in, so nobody rings)
    let mut n = 0;
    while what(&s, &frames, &c.rtp_packet().await.payload) != "numbers/vy" {
        n += 1;
        assert!(n < 60, "no announcement");
    }
    // now the operator logs in, is offered the caller and answers
    gw.ops
        .apply(
            "op1",
            gateway::OperatorCommand::Login { queues: Vec::new() },
        )
        .await
        .unwrap();
    let invite = phone.request().await;
    assert_eq!(invite.method, sip::Method::Invite);
    let gw_op_rtp = phone.answer(&invite).await;
    assert_eq!(phone.request().await.method, sip::Method::Ack);
    wait_for("the bridge", || !gw.log.answered.lock().unwrap().is_empty()).await;
    let from_op = [0x24u8; 160];
    let op = tokio::spawn({
        let rtp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        async move {
            for k in 0..100u16 {
                let mut p = vec![0x80, if k == 0 { 0x80 } else { 0 }];
                p.extend_from_slice(&(500 + k).to_be_bytes());
                p.extend_from_slice(&(u32::from(k) * 160).to_be_bytes());
                p.extend_from_slice(&0x0102_0304u32.to_be_bytes());
                p.extend_from_slice(&[0x24u8; 160]);
                rtp.send_to(&p, gw_op_rtp).unwrap();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    });
    // from the bridge on: at most a couple of frames already on their way, then the operator
    let mut after = Vec::new();
    loop {
        let p = c.rtp_packet().await.payload;
        if p == from_op {
            break;
        }
        after.push(what(&s, &frames, &p));
        assert!(
            after.len() < 25,
            "the operator's audio never came: {after:?}"
        );
    }
    let spoken = after
        .iter()
        .filter(|f| f.starts_with("numbers/") || f.starts_with("queue/"))
        .count();
    assert!(spoken <= 3, "the announcement went on: {after:?}");
    op.abort();
    gw.stop().await;
}

/// The callback flow: the queue offers it after 0.5 s; `1` reads the caller's number back,
/// `1` books it; the closing prompt plays and the gateway hangs up; the appeal has the
/// request and ends as a callback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_caller_books_a_callback_and_is_hung_up() {
    let dir = tempfile::tempdir().unwrap();
    let mut q = acd::QueueConfig::new("benefits");
    q.announce_every = None;
    q.callback = Some(acd::CallbackConfig {
        offer_after: Some(Duration::from_millis(500)),
        max_attempts: 3,
        retry_interval: Duration::from_secs(600),
    });
    let (s, frames) = waiting_settings(dir.path(), q, 100);
    let gw = Server::start(s.clone()).await;
    let c = into_the_queue(&gw, &s).await;
    let mut seq = 100;
    // the offer, then the music again
    let mut got = Vec::new();
    while !heard(&got).ends_with(&["queue/callback-offer".to_string(), "moh".to_string()]) {
        got.push(what(&s, &frames, &c.rtp_packet().await.payload));
        assert!(got.len() < 150, "{:?}", heard(&got));
    }
    c.press(&mut seq, 200_000, 1).await;
    // «мы перезвоним вам по номеру 7 9 1 3 1 2 3 4 5 6 7, если номер верный…»
    let mut got = Vec::new();
    while !heard(&got).contains(&"common/callback-confirm".to_string()) {
        got.push(what(&s, &frames, &c.rtp_packet().await.payload));
        assert!(got.len() < 200, "{:?}", heard(&got));
    }
    let read: Vec<String> = heard(&got)
        .into_iter()
        .skip_while(|p| p != "common/callback-intro")
        .collect();
    let digits: String = read[1..read.len() - 1]
        .iter()
        .map(|p| p.strip_prefix("numbers/").unwrap())
        .collect();
    // a repeated digit is one run of frames: the number has 7 9 1 3 1 2 3 4 5 6 7
    assert_eq!(digits, "79131234567");
    c.press(&mut seq, 210_000, 1).await;
    let mut got = Vec::new();
    let bye = loop {
        tokio::select! {
            p = c.rtp_packet() => {
                got.push(what(&s, &frames, &p.payload));
                assert!(got.len() < 200, "{:?}", heard(&got));
            }
            m = c.recv() => match m {
                Message::Request(r) => break r,
                Message::Response(_) => {}
            }
        }
    };
    assert_eq!(bye.method, sip::Method::Bye);
    assert!(
        heard(&got).contains(&"common/callback-done".to_string()),
        "{:?}",
        heard(&got)
    );
    c.send(std::str::from_utf8(&bye.response(200).to_bytes()).unwrap())
        .await;
    wait_for("the call's end", || {
        !gw.log.ended.lock().unwrap().is_empty()
    })
    .await;
    let appeal = gw.log.arrived.lock().unwrap()[0].clone();
    assert!(
        steps_of(&gw.log, &appeal).contains(&IvrStep::CallbackRequested {
            number: "79131234567".into(),
            queue: Some("benefits".into()),
        })
    );
    assert_eq!(gw.log.ended.lock().unwrap()[0].1, EndReason::IvrHangup);
    assert_eq!(
        *gw.log.ivr_ends.lock().unwrap(),
        vec![Some(IvrEnd::Callback)]
    );
    gw.stop().await;
}

/// A queue overflowing to a message after 0.5 s: «оставьте сообщение», then the message is
/// recorded exactly as the menu's message node records (a WAV named after the appeal).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overflow_to_a_message_records_the_caller() {
    let dir = tempfile::tempdir().unwrap();
    let mut q = acd::QueueConfig::new("benefits");
    q.announce_every = None;
    q.max_wait = Some(Duration::from_millis(500));
    q.overflow = acd::OverflowAction::Message;
    let (mut s, frames) = waiting_settings(dir.path(), q, 100);
    s.recordings_dir = dir.path().join("rec");
    std::fs::create_dir_all(&s.recordings_dir).unwrap();
    let gw = Server::start(s.clone()).await;
    let mut c = into_the_queue(&gw, &s).await;
    let mut got = Vec::new();
    while !heard(&got).contains(&"common/leave-message".to_string()) {
        got.push(what(&s, &frames, &c.rtp_packet().await.payload));
        assert!(got.len() < 150, "{:?}", heard(&got));
    }
    let appeal = gw.log.arrived.lock().unwrap()[0].clone();
    wait_for("the recording", || {
        steps_of(&gw.log, &appeal)
            .iter()
            .any(|s| matches!(s, IvrStep::Message { .. }))
    })
    .await;
    for k in 0..10u16 {
        c.send_rtp(
            0,
            k == 0,
            300 + k,
            90_000 + u32::from(k) * 160,
            &[0x42; 160],
        )
        .await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    c.bye().await;
    wait_for("the call's end", || {
        !gw.log.ended.lock().unwrap().is_empty()
    })
    .await;
    let file = steps_of(&gw.log, &appeal)
        .into_iter()
        .find_map(|s| match s {
            IvrStep::Message { file, max } => {
                assert_eq!(max, Duration::from_secs(120));
                Some(file)
            }
            _ => None,
        })
        .unwrap();
    assert!(file.ends_with(&format!("{appeal}-message.wav")), "{file}");
    assert_eq!(
        *gw.log.ivr_ends.lock().unwrap(),
        vec![Some(IvrEnd::Message)]
    );
    gw.stop().await;
    assert!(std::path::Path::new(&file).exists(), "{file}");
}

/// A queue with `returning_days` asks the call log who handled the caller's open appeal
/// before the caller joins, and a store that never answers delays the join by the short
/// timeout only: the operator is rung either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn returning_callers_are_looked_up_without_blocking_the_call() {
    for answer in [Some(Some("op1".to_string())), None] {
        let dir = tempfile::tempdir().unwrap();
        let mut q = acd::QueueConfig::new("benefits");
        q.announce_every = None;
        q.returning = Some(acd::ReturningConfig {
            lookback: Duration::from_secs(7 * 86_400),
            wait_for_operator: Duration::ZERO,
        });
        let (s, _) = waiting_settings(dir.path(), q, 100);
        let log = Arc::new(Log::default());
        *log.lookup_answer.lock().unwrap() = answer.clone();
        let stats = Arc::new(Stats::default());
        let gw = Gateway::bind(s.clone(), stats.clone(), log.clone())
            .await
            .unwrap();
        let addr = gw.local_addrs()[0];
        let ops = gw.operators();
        let stop = CancellationToken::new();
        let run = tokio::spawn(gw.run(stop.clone()));
        let phone = Phone::new(addr).await;
        phone.register_with_digest().await;
        ops.apply(
            "op1",
            gateway::OperatorCommand::Login { queues: Vec::new() },
        )
        .await
        .unwrap();
        let mut c = Caller::new(addr).await;
        assert_eq!(c.invite(&c.offer(PCMU_OFFER, "sendrecv")).await.status, 200);
        let mut n = 0;
        while classify(&s, &c.rtp_packet().await.payload) != "menu" {
            n += 1;
            assert!(n < 60, "no menu prompt");
        }
        let mut seq = 1;
        c.press(&mut seq, 64_000, 1).await;
        let pressed = Instant::now();
        let invite = phone.request().await;
        assert_eq!(invite.method, sip::Method::Invite);
        let took = pressed.elapsed();
        assert_eq!(
            *log.lookups.lock().unwrap(),
            vec![("79131234567".to_string(), Duration::from_secs(7 * 86_400))]
        );
        if answer.is_none() {
            // the join waited for the lookup's timeout (0.5 s), not longer
            assert!(took >= Duration::from_millis(400), "{took:?}");
        } else {
            // an answer is taken as soon as it comes
            assert!(took < Duration::from_millis(400), "{took:?}");
        }
        assert!(took < Duration::from_secs(2), "{took:?}");
        c.bye().await;
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(5), run)
            .await
            .unwrap()
            .unwrap();
    }
}
