//! Calls the gateway places, over real UDP on 127.0.0.1: an operator's REFER sends the caller
//! to an outside number through a fake trunk (which challenges with digest), back to a queue,
//! or nowhere (404); a menu's callback is dialled after its operator answers; a menu's transfer
//! node bridges the caller to the number.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gateway::{
    CallArrived, CallEnded, CallLog, CallbackAttempt, CallbackOutcome, EndReason, Gateway, IvrEnd,
    IvrStep, LineSettings, Settings, Stats, TransferKind, TransferRecord, TrunkOutbound,
    TrunkSettings,
};
use media::g711::Law;
use media::prompts::{Prompt, PromptCache};
use sip::{HeaderName, Message, Method, Request, Response};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

const CITY: &str = "3758787";
const WAIT: Duration = Duration::from_secs(3);

static NEXT: AtomicU64 = AtomicU64::new(1);
fn unique() -> u64 {
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// appeal, operator, target, kind, status
type Transfer = (String, Option<String>, String, TransferKind, u16);
/// appeal, number, operator, attempt, result
type Attempt = (String, String, String, u32, CallbackOutcome);

#[derive(Default)]
struct Log {
    arrived: Mutex<Vec<String>>,
    ended: Mutex<Vec<(String, EndReason, Option<IvrEnd>)>>,
    answered: Mutex<Vec<(String, String)>>,
    transfers: Mutex<Vec<Transfer>>,
    attempts: Mutex<Vec<Attempt>>,
    talks: Mutex<Vec<(String, String, Duration)>>,
    steps: Mutex<Vec<(String, IvrStep)>>,
    /// callback_dialling: appeal, operator, attempt
    dialling: Mutex<Vec<(String, String, u32)>>,
    /// callback_failed: appeal, attempts
    gave_up: Mutex<Vec<(String, u32)>>,
}

impl CallLog for Log {
    fn call_arrived(&self, appeal: &str, _call: &CallArrived<'_>) {
        self.arrived.lock().unwrap().push(appeal.to_string());
    }
    fn call_ended(&self, appeal: &str, end: &CallEnded) {
        self.ended
            .lock()
            .unwrap()
            .push((appeal.into(), end.reason, end.ivr));
    }
    fn operator_answered(&self, appeal: &str, operator: &str, _waited: Duration) {
        self.answered
            .lock()
            .unwrap()
            .push((appeal.into(), operator.into()));
    }
    fn ivr_step(&self, appeal: &str, step: &IvrStep) {
        self.steps
            .lock()
            .unwrap()
            .push((appeal.into(), step.clone()));
    }
    fn transferred(&self, appeal: &str, t: &TransferRecord<'_>) {
        self.transfers.lock().unwrap().push((
            appeal.into(),
            t.operator.map(str::to_string),
            t.target.into(),
            t.kind,
            t.status,
        ));
    }
    fn callback_attempt(&self, appeal: &str, a: &CallbackAttempt<'_>) {
        self.attempts.lock().unwrap().push((
            appeal.into(),
            a.number.into(),
            a.operator.into(),
            a.attempt,
            a.result,
        ));
    }
    fn callback_dialling(&self, appeal: &str, operator: &str, attempt: u32) {
        self.dialling
            .lock()
            .unwrap()
            .push((appeal.into(), operator.into(), attempt));
    }
    fn callback_failed(&self, appeal: &str, attempts: u32) {
        self.gave_up.lock().unwrap().push((appeal.into(), attempts));
    }
    fn callback_talked(&self, appeal: &str, operator: &str, talked: Duration) {
        self.talks
            .lock()
            .unwrap()
            .push((appeal.into(), operator.into(), talked));
    }
}

/// A range of `pairs` RTP port pairs that were free a moment ago.
fn free_range(pairs: u16) -> (u16, u16) {
    static N: AtomicU64 = AtomicU64::new(0);
    loop {
        let base = 40_000
            + (std::process::id() as u16 % 50) * 200
            + (N.fetch_add(1, Ordering::Relaxed) as u16 % 100) * 2 * pairs;
        let base = base & !1;
        if (base..base + 2 * pairs).all(|p| std::net::UdpSocket::bind(("127.0.0.1", p)).is_ok()) {
            return (base, base + 2 * pairs - 1);
        }
    }
}

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

/// The city line running the menu in `body` (prompts `hi`, `done`, `intro`, `confirm`,
/// `enter` and the digits, each 0.1 s), the ACD of `benefits` with `op1` and `op2` (music on
/// hold [`music`]), and a trunk whose outbound target is `trunk` with digest credentials.
fn settings(dir: &std::path::Path, body: &str, trunk: SocketAddr) -> Settings {
    let p = dir.join("prompts");
    std::fs::create_dir_all(p.join("numbers")).unwrap();
    let names = ["hi", "done", "intro", "confirm", "enter"];
    let mut catalogue = String::new();
    for n in names {
        tone_wav(&p.join(format!("{n}.wav")), 500.0, 100);
        catalogue.push_str(&format!("{n} = \"{n}\"\n"));
    }
    for d in 0..10 {
        tone_wav(&p.join(format!("numbers/{d}.wav")), 700.0, 60);
    }
    std::fs::write(p.join("prompts.toml"), catalogue).unwrap();
    let file = dir.join("menu.toml");
    std::fs::write(&file, format!("prompts = \"prompts\"\n{body}")).unwrap();
    let cx = ivr::Context {
        start: "main",
        start_at: None,
        queues: None,
    };
    let menu = Arc::new(ivr::load(&[file], &cx).unwrap());
    let encoders = media::prompts::G711;
    let mut prompts: Vec<_> = menu
        .prompts()
        .values()
        .map(|i| {
            Arc::new(
                Prompt::load(
                    gateway::settings::menu_prompt_name(&i.path),
                    &i.path,
                    &encoders,
                )
                .unwrap(),
            )
        })
        .collect();
    let wav = dir.join("music.wav");
    tone_wav(&wav, 900.0, 400);
    let music =
        Arc::new(Prompt::load(gateway::settings::menu_prompt_name(&wav), &wav, &encoders).unwrap());
    let mut moh = std::collections::HashMap::new();
    moh.insert("benefits".to_string(), music.name().clone());
    prompts.push(music);
    let mut q = acd::QueueConfig::new("benefits");
    q.wrap_up = Duration::ZERO;
    q.retry_delay = Duration::from_millis(200);
    q.callback = Some(acd::CallbackConfig {
        offer_after: None,
        max_attempts: 3,
        retry_interval: Duration::from_millis(300),
    });
    let mut uri = sip::SipUri::new(None, sip::Host::V4("127.0.0.1".parse().unwrap()), None);
    uri.port = Some(trunk.port());
    Settings {
        t1: Duration::from_millis(50),
        lines: vec![LineSettings {
            name: "City".into(),
            menu: Some(menu),
            start: "main".into(),
            ..test_support::line("city", &[CITY], Duration::ZERO)
        }],
        trunks: vec![TrunkSettings {
            name: "carrier".into(),
            allow: vec!["127.0.0.1/32".parse().unwrap()],
            credentials: Some(("hotline".into(), "trunk-pw".into())),
            outbound: Some(TrunkOutbound {
                uri,
                peer: sip::Peer {
                    transport: sip::Transport::Udp,
                    addr: trunk,
                },
            }),
        }],
        operators: test_support::operators(&["op1", "op2"]),
        rtp_ports: free_range(8),
        prompts: Arc::new(PromptCache::from_prompts(prompts, &encoders)),
        recordings_dir: dir.join("rec"),
        max_call: Duration::from_secs(3600),
        redact_callers: false,
        moh,
        acd: Some(acd::AcdConfig {
            queues: vec![q],
            operators: vec![
                acd::OperatorConfig::new("op1", [("benefits", 1)]),
                acd::OperatorConfig::new("op2", [("benefits", 1)]),
            ],
        }),
        ..test_support::settings()
    }
}

struct Server {
    addr: SocketAddr,
    log: Arc<Log>,
    stop: CancellationToken,
    run: tokio::task::JoinHandle<()>,
    ops: gateway::OperatorControl,
}

impl Server {
    async fn start(s: Settings) -> Server {
        let log = Arc::new(Log::default());
        let gw = Gateway::bind(s, Arc::new(Stats::default()), log.clone())
            .await
            .unwrap();
        let addr = gw.local_addrs()[0];
        let ops = gw.operators();
        let stop = CancellationToken::new();
        let run = tokio::spawn(gw.run(stop.clone()));
        Server {
            addr,
            log,
            stop,
            run,
            ops,
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

/// A SIP endpoint of the test (a caller, the operator's phone, the trunk) with an RTP socket.
struct Peer {
    sip: UdpSocket,
    rtp: UdpSocket,
    server: SocketAddr,
}

fn sdp(port: u16) -> String {
    format!(
        "v=0\r\no=t 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"
    )
}

fn media_port(body: &[u8]) -> SocketAddr {
    media::sdp::answer_body(body).unwrap().remote.unwrap()
}

impl Peer {
    async fn new(server: SocketAddr) -> Peer {
        Peer {
            sip: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
            rtp: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
            server,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.sip.local_addr().unwrap()
    }

    async fn send(&self, bytes: &[u8]) {
        self.sip.send_to(bytes, self.server).await.unwrap();
    }

    async fn recv(&self) -> Message {
        let mut buf = vec![0u8; 65_536];
        let (n, _) = tokio::time::timeout(WAIT, self.sip.recv_from(&mut buf))
            .await
            .expect("a SIP message from the gateway")
            .unwrap();
        sip::parse_message(&buf[..n]).unwrap()
    }

    async fn request(&self) -> Request {
        loop {
            if let Message::Request(r) = self.recv().await {
                return r;
            }
        }
    }

    /// The next request that is not a retransmission of `seen` (an INVITE the test read late
    /// may have been sent again meanwhile).
    async fn request_after(&self, seen: &Request) -> Request {
        loop {
            let r = self.request().await;
            let same = r.method == seen.method
                && r.headers.call_id().ok() == seen.headers.call_id().ok()
                && r.headers.cseq().ok() == seen.headers.cseq().ok();
            if !same {
                return r;
            }
        }
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

    /// Nothing arrives for a while.
    async fn quiet(&self, for_: Duration) {
        let mut buf = [0u8; 4096];
        if let Ok(r) = tokio::time::timeout(for_, self.sip.recv_from(&mut buf)).await {
            let (n, _) = r.unwrap();
            panic!(
                "unexpected: {}",
                String::from_utf8_lossy(&buf[..n]).lines().next().unwrap()
            );
        }
    }

    /// Answers an INVITE 200 with our RTP port; `tag` becomes our To tag.
    async fn answer(&self, invite: &Request, tag: &str) {
        let mut r = invite.response(200);
        let to = r.headers.get(&HeaderName::To).unwrap().to_string();
        r.headers.set(HeaderName::To, format!("{to};tag={tag}"));
        r.headers
            .push(HeaderName::Contact, format!("<sip:peer@{}>", self.addr()));
        r.headers.push(HeaderName::ContentType, "application/sdp");
        r.body = sdp(self.rtp.local_addr().unwrap().port()).into_bytes();
        self.send(&r.to_bytes()).await;
    }

    /// Answers a request with `status` (a To tag added when it has none).
    async fn reply(&self, req: &Request, status: u16, tag: &str) {
        let mut r = req.response(status);
        let to = r.headers.get(&HeaderName::To).unwrap().to_string();
        if !to.contains("tag=") {
            r.headers.set(HeaderName::To, format!("{to};tag={tag}"));
        }
        self.send(&r.to_bytes()).await;
    }

    /// A request in the dialog an INVITE of the gateway's made with us (`tag` ours).
    fn in_dialog(
        &self,
        invite: &Request,
        tag: &str,
        method: &str,
        cseq: u32,
        extra: &str,
    ) -> String {
        let from = invite.headers.get(&HeaderName::From).unwrap();
        let to = invite.headers.get(&HeaderName::To).unwrap();
        let contact = invite.headers.contacts().unwrap().unwrap()[0]
            .uri
            .to_string();
        format!(
            "{method} {contact} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bK-o{}\r\n\
             Max-Forwards: 70\r\nFrom: {to};tag={tag}\r\nTo: {from}\r\nCall-ID: {}\r\n\
             CSeq: {cseq} {method}\r\nContact: <sip:peer@{}>\r\n{extra}Content-Length: 0\r\n\r\n",
            self.addr(),
            unique(),
            invite.headers.call_id().unwrap(),
            self.addr(),
        )
    }

    async fn send_rtp(&self, to: SocketAddr, payload: &[u8], n: u16) {
        for k in 0..n {
            let mut p = vec![0x80, if k == 0 { 0x80 } else { 0 }];
            p.extend_from_slice(&(100 + k).to_be_bytes());
            p.extend_from_slice(&(u32::from(k) * 160).to_be_bytes());
            p.extend_from_slice(&0x0102_0304u32.to_be_bytes());
            p.extend_from_slice(payload);
            self.rtp.send_to(&p, to).await.unwrap();
        }
    }

    /// Waits for an RTP payload equal to `want` (other audio skipped).
    async fn hears(&self, want: &[u8]) {
        let mut buf = vec![0u8; 2048];
        for _ in 0..100 {
            let (n, _) = tokio::time::timeout(WAIT, self.rtp.recv_from(&mut buf))
                .await
                .expect("RTP")
                .unwrap();
            if &buf[12..n] == want {
                return;
            }
        }
        panic!("the audio never arrived");
    }

    /// Waits for a few RTP payloads that are frames of `music` (the queue's music on hold).
    async fn hears_music(&self, music: &[Vec<u8>]) {
        let mut buf = vec![0u8; 2048];
        let mut got = 0;
        for _ in 0..200 {
            let (n, _) = tokio::time::timeout(WAIT, self.rtp.recv_from(&mut buf))
                .await
                .expect("RTP")
                .unwrap();
            if music.iter().any(|f| f.as_slice() == &buf[12..n]) {
                got += 1;
                if got == 5 {
                    return;
                }
            }
        }
        panic!("no music on hold");
    }
}

/// The caller's side of one call: INVITE, 200, ACK.
struct Call {
    peer: Peer,
    gw_rtp: SocketAddr,
}

impl Call {
    async fn place(server: SocketAddr) -> Call {
        let peer = Peer::new(server).await;
        let me = peer.addr();
        let call_id = format!("out-call-{}", unique());
        let body = sdp(peer.rtp.local_addr().unwrap().port());
        let head = |method: &str, cseq: u32, to_tag: &str, uri: &str| {
            format!(
                "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-c{}\r\n\
                 Max-Forwards: 70\r\nFrom: <sip:79131234567@127.0.0.1>;tag=caller\r\n\
                 To: <sip:{CITY}@{server}>{to_tag}\r\nCall-ID: {call_id}\r\n\
                 CSeq: {cseq} {method}\r\nContact: <sip:79131234567@{me}>\r\n",
                unique()
            )
        };
        let invite = format!(
            "{}Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
            head("INVITE", 1, "", &format!("sip:{CITY}@{server}")),
            body.len()
        );
        peer.send(invite.as_bytes()).await;
        let ok = peer.final_response().await;
        assert_eq!(ok.status, 200);
        let to_tag = ok.headers.to_addr().unwrap().tag().unwrap().to_string();
        let target = ok.headers.contacts().unwrap().unwrap()[0].uri.to_string();
        let ack = format!(
            "{}Content-Length: 0\r\n\r\n",
            head("ACK", 1, &format!(";tag={to_tag}"), &target)
        );
        peer.send(ack.as_bytes()).await;
        Call {
            gw_rtp: media_port(&ok.body),
            peer,
        }
    }

    async fn press(&self, digit: u8) {
        for (i, end) in [false, false, true, true, true].into_iter().enumerate() {
            let payload = [digit, if end { 0x8a } else { 0x0a }, 0x02, 0x80];
            let mut p = vec![0x80, 101 | if i == 0 { 0x80 } else { 0 }];
            p.extend_from_slice(&(900 + i as u16).to_be_bytes());
            p.extend_from_slice(&64_000u32.to_be_bytes());
            p.extend_from_slice(&0x5555_0000u32.to_be_bytes());
            p.extend_from_slice(&payload);
            self.peer.rtp.send_to(&p, self.gw_rtp).await.unwrap();
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// op1's phone registers with digest; op1 logs in.
async fn operator(gw: &Server) -> Peer {
    operator_named(gw, "op1").await
}

/// The frames of the queue's music as the caller hears them (PCMU).
fn music_frames(dir: &std::path::Path) -> Vec<Vec<u8>> {
    let encoders = media::prompts::G711;
    let wav = dir.join("music.wav");
    let p = Prompt::load(gateway::settings::menu_prompt_name(&wav), &wav, &encoders).unwrap();
    let l = media::moh::MohLoop::from_prompt(&p);
    (0..l.frames())
        .map(|k| l.frame(Law::Ulaw, k).to_vec())
        .collect()
}

/// `op`'s phone (password `<op>-secret`) registers with digest; `op` logs in.
async fn operator_named(gw: &Server, op: &str) -> Peer {
    let phone = Peer::new(gw.addr).await;
    let me = phone.addr();
    let call_id = format!("reg-{}", unique());
    let reg = test_support::Register::udp(op, me, &call_id);
    let branch = || format!("-r{}", unique());
    phone.send(reg.text(1, &branch(), None).as_bytes()).await;
    let ch = phone.final_response().await;
    assert_eq!(ch.status, 401);
    let auth = test_support::digest_for(&ch, op);
    phone
        .send(reg.text(2, &branch(), Some(&auth)).as_bytes())
        .await;
    assert_eq!(phone.final_response().await.status, 200);
    gw.ops
        .apply(op, gateway::OperatorCommand::Login { queues: Vec::new() })
        .await
        .unwrap();
    phone
}

/// The trunk's digest server: challenges the first INVITE, checks the second.
struct TrunkAuth(sip::auth::DigestServer);

impl TrunkAuth {
    fn new() -> TrunkAuth {
        TrunkAuth(sip::auth::DigestServer::new(
            "carrier".into(),
            [3u8; 32],
            Duration::from_secs(60),
            Instant::now(),
        ))
    }

    /// Challenges `invite` with 407 and returns the INVITE sent again with credentials.
    async fn challenge(&mut self, trunk: &Peer, invite: &Request) -> Request {
        assert!(invite
            .headers
            .get(&HeaderName::ProxyAuthorization)
            .is_none());
        let mut r = invite.response(407);
        let to = r.headers.get(&HeaderName::To).unwrap().to_string();
        r.headers.set(HeaderName::To, format!("{to};tag=ch"));
        for c in self.0.challenge(Instant::now(), false) {
            r.headers.push(HeaderName::ProxyAuthenticate, c);
        }
        trunk.send(&r.to_bytes()).await;
        let ack = trunk.request_after(invite).await;
        assert_eq!(ack.method, Method::Ack);
        let again = trunk.request_after(invite).await;
        assert_eq!(again.method, Method::Invite);
        assert_eq!(
            again.headers.call_id().unwrap(),
            invite.headers.call_id().unwrap()
        );
        assert_eq!(again.headers.cseq().unwrap().seq, 2);
        let creds = again
            .headers
            .get(&HeaderName::ProxyAuthorization)
            .expect("credentials on the second INVITE");
        let outcome = self.0.verify(Instant::now(), &Method::Invite, creds, |u| {
            (u == "hotline").then(|| sip::auth::Secret::Plain("trunk-pw".into()))
        });
        assert!(
            matches!(outcome, sip::auth::AuthOutcome::Ok { .. }),
            "{outcome:?}"
        );
        again
    }
}

const QUEUE_MENU: &str = "[[queue]]\nid = \"main\"\nqueue = \"benefits\"\n";

/// The caller walks into `benefits`, op1's phone answers: returns the caller, the operator's
/// INVITE and where the gateway's RTP for the operator is.
async fn connected(gw: &Server, phone: &Peer) -> (Call, Request, SocketAddr) {
    let call = Call::place(gw.addr).await;
    let invite = phone.request().await;
    assert_eq!(invite.method, Method::Invite);
    phone.answer(&invite, "op1tag").await;
    assert_eq!(phone.request_after(&invite).await.method, Method::Ack);
    let log = gw.log.clone();
    wait_for("the bridge", || !log.answered.lock().unwrap().is_empty()).await;
    let op_rtp = media_port(&invite.body);
    (call, invite, op_rtp)
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let until = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The next NOTIFY on the operator's phone, answered 200; returns its sipfrag status and
/// Subscription-State.
async fn notify(phone: &Peer) -> (u16, String) {
    let n = phone.request().await;
    assert_eq!(n.method, Method::Notify, "{n:?}");
    assert_eq!(n.headers.get(&HeaderName::Event), Some("refer"));
    let state = n
        .headers
        .get(&HeaderName::SubscriptionState)
        .unwrap()
        .to_string();
    phone.send(&n.response(200).to_bytes()).await;
    (sip::refer::sipfrag_status(&n.body).unwrap(), state)
}

/// The operator REFERs the caller to an outside number: 202, NOTIFY 100; the trunk is sent an
/// INVITE for the number, challenges it (407) and gets it again with our digest, rings and
/// answers; the operator gets NOTIFY 200 (subscription terminated) and BYE; the caller's audio
/// reaches the trunk and back; the trunk's BYE ends the caller's call; the appeal has the
/// transfer and the outcome `transferred`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refer_to_a_number_bridges_the_caller_through_the_trunk() {
    let dir = tempfile::tempdir().unwrap();
    let trunk = Peer::new("127.0.0.1:9".parse().unwrap()).await;
    let gw = Server::start(settings(dir.path(), QUEUE_MENU, trunk.addr())).await;
    let trunk = Peer {
        server: gw.addr,
        ..trunk
    };
    let phone = operator(&gw).await;
    let (call, op_invite, _) = connected(&gw, &phone).await;

    let refer = phone.in_dialog(
        &op_invite,
        "op1tag",
        "REFER",
        2,
        "Refer-To: <sip:8-800-555-35-35@hotline>\r\nReferred-By: <sip:op1@hotline>\r\n",
    );
    phone.send(refer.as_bytes()).await;
    assert_eq!(phone.final_response().await.status, 202);
    assert_eq!(notify(&phone).await, (100, "active;expires=60".into()));

    let invite = trunk.request().await;
    assert_eq!(invite.method, Method::Invite);
    assert_eq!(
        invite.uri.to_string(),
        format!("sip:88005553535@{}", trunk.addr())
    );
    assert!(invite
        .headers
        .get(&HeaderName::From)
        .unwrap()
        .starts_with(&format!("<sip:{CITY}@")));
    let mut auth = TrunkAuth::new();
    let invite = auth.challenge(&trunk, &invite).await;
    trunk.reply(&invite, 180, "far").await;
    // while it rings the caller still talks to the operator
    call.peer.send_rtp(call.gw_rtp, &[0x11; 160], 5).await;
    phone.hears(&[0x11; 160]).await;
    trunk.answer(&invite, "far").await;
    let ack = trunk.request_after(&invite).await;
    assert_eq!(ack.method, Method::Ack);
    assert_eq!(ack.headers.cseq().unwrap().seq, 2);

    assert_eq!(
        notify(&phone).await,
        (200, "terminated;reason=noresource".into())
    );
    let bye = phone.request().await;
    assert_eq!(bye.method, Method::Bye);
    phone.send(&bye.response(200).to_bytes()).await;

    // caller ↔ trunk
    let trunk_rtp = media_port(&invite.body);
    call.peer.send_rtp(call.gw_rtp, &[0x42; 160], 10).await;
    trunk.hears(&[0x42; 160]).await;
    trunk.send_rtp(trunk_rtp, &[0x24; 160], 10).await;
    call.peer.hears(&[0x24; 160]).await;

    // the far end hangs up: so does the caller's call
    trunk
        .send(trunk.in_dialog(&invite, "far", "BYE", 1, "").as_bytes())
        .await;
    assert_eq!(trunk.final_response().await.status, 200);
    let to_caller = call.peer.request().await;
    assert_eq!(to_caller.method, Method::Bye);
    call.peer.send(&to_caller.response(200).to_bytes()).await;
    let log = gw.log.clone();
    wait_for("the end", || !log.ended.lock().unwrap().is_empty()).await;
    let appeal = gw.log.arrived.lock().unwrap()[0].clone();
    assert_eq!(
        gw.log.ended.lock().unwrap()[0],
        (
            appeal.clone(),
            EndReason::TransferEnded,
            Some(IvrEnd::Transferred)
        )
    );
    assert_eq!(
        gw.log.transfers.lock().unwrap().clone(),
        vec![(
            appeal,
            Some("op1".into()),
            "8-800-555-35-35".replace('-', ""),
            TransferKind::Number,
            200
        )]
    );
    // the operator is free again: a new caller is offered to them at once (no wrap-up)
    let _second = Call::place(gw.addr).await;
    assert_eq!(phone.request().await.method, Method::Invite);
    gw.stop().await;
}

/// REFER to a target nobody knows: 202, NOTIFY 100 then 404, and the caller stays with the
/// operator. REFER to the queue: NOTIFY 200, BYE to the operator, and the caller waits in
/// `benefits` again — offered to op1 anew. A busy trunk is NOTIFYed as 486 and the caller
/// stays. A REFER outside any dialog gets 403, one in an unknown dialog 481.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refer_to_unknown_targets_busy_numbers_and_queues() {
    let dir = tempfile::tempdir().unwrap();
    let trunk = Peer::new("127.0.0.1:9".parse().unwrap()).await;
    let gw = Server::start(settings(dir.path(), QUEUE_MENU, trunk.addr())).await;
    let trunk = Peer {
        server: gw.addr,
        ..trunk
    };
    let phone = operator(&gw).await;
    let (call, op_invite, op_rtp) = connected(&gw, &phone).await;

    // outside any dialog, and in a dialog we do not know
    let me = phone.addr();
    let stray = |to_tag: &str| {
        format!(
            "REFER sip:hotline@{} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-s{}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:op1@hotline>;tag=x\r\nTo: <sip:hotline@hotline>{to_tag}\r\n\
             Call-ID: stray-{}\r\nCSeq: 1 REFER\r\nRefer-To: <sip:benefits@hotline>\r\n\
             Content-Length: 0\r\n\r\n",
            gw.addr,
            unique(),
            unique()
        )
    };
    phone.send(stray("").as_bytes()).await;
    assert_eq!(phone.final_response().await.status, 403);
    phone.send(stray(";tag=nope").as_bytes()).await;
    assert_eq!(phone.final_response().await.status, 481);

    // nobody by that name
    let refer = |cseq: u32, to: &str| {
        phone.in_dialog(
            &op_invite,
            "op1tag",
            "REFER",
            cseq,
            &format!("Refer-To: <sip:{to}@hotline>\r\n"),
        )
    };
    phone.send(refer(2, "nobody").as_bytes()).await;
    assert_eq!(phone.final_response().await.status, 202);
    assert_eq!(notify(&phone).await.0, 100);
    assert_eq!(
        notify(&phone).await,
        (404, "terminated;reason=noresource".into())
    );
    call.peer.send_rtp(call.gw_rtp, &[0x31; 160], 5).await;
    phone.hears(&[0x31; 160]).await;

    // a busy number
    phone.send(refer(3, "112").as_bytes()).await;
    assert_eq!(phone.final_response().await.status, 202);
    assert_eq!(notify(&phone).await.0, 100);
    let invite = trunk.request().await;
    trunk.reply(&invite, 486, "busy").await;
    assert_eq!(trunk.request_after(&invite).await.method, Method::Ack);
    assert_eq!(notify(&phone).await.0, 486);
    phone.send_rtp(op_rtp, &[0x32; 160], 5).await;
    call.peer.hears(&[0x32; 160]).await;

    // back to the queue
    phone.send(refer(4, "benefits").as_bytes()).await;
    assert_eq!(phone.final_response().await.status, 202);
    assert_eq!(notify(&phone).await.0, 100);
    assert_eq!(notify(&phone).await.0, 200);
    let bye = phone.request().await;
    assert_eq!(bye.method, Method::Bye);
    phone.send(&bye.response(200).to_bytes()).await;
    // offered to op1 again (the only operator; no wrap-up in this queue)
    let again = phone.request().await;
    assert_eq!(again.method, Method::Invite);
    assert_ne!(
        again.headers.call_id().unwrap(),
        op_invite.headers.call_id().unwrap()
    );
    let appeal = gw.log.arrived.lock().unwrap()[0].clone();
    let transfers = gw.log.transfers.lock().unwrap().clone();
    assert_eq!(
        transfers,
        vec![
            (
                appeal.clone(),
                Some("op1".into()),
                "112".into(),
                TransferKind::Number,
                486
            ),
            (
                appeal.clone(),
                Some("op1".into()),
                "benefits".into(),
                TransferKind::Queue,
                200
            ),
        ]
    );
    let entered = gw
        .log
        .steps
        .lock()
        .unwrap()
        .iter()
        .filter(|(a, s)| a == &appeal && matches!(s, IvrStep::EnteredQueue { .. }))
        .count();
    assert_eq!(entered, 2, "the appeal notes the second time in the queue");
    gw.stop().await;
}

/// A menu's callback node books a callback in `benefits`; the caller hangs up. The ACD rings
/// op1 first; once op1 answers, the number goes to the trunk: busy the first time (the
/// operator is hung up, the attempt written as busy), answered the second (bridged, audio
/// both ways); op1 hangs up and the trunk leg is sent BYE. Every attempt is on the booking
/// call's appeal, and the talk with op1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_booked_callback_rings_the_operator_then_dials_the_number() {
    let dir = tempfile::tempdir().unwrap();
    let trunk = Peer::new("127.0.0.1:9".parse().unwrap()).await;
    let menu = "[[callback]]\nid = \"main\"\nprompt = \"intro\"\nconfirm = \"confirm\"\n\
                enter = \"enter\"\ndone = \"done\"\nqueue = \"benefits\"\nfallback = \"bye\"\n\
                [[hangup]]\nid = \"bye\"\n";
    let gw = Server::start(settings(dir.path(), menu, trunk.addr())).await;
    let trunk = Peer {
        server: gw.addr,
        ..trunk
    };
    let phone = operator(&gw).await;
    // the number is read back (about 0.9 s of prompts), then 1 confirms it
    let call = Call::place(gw.addr).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    call.press(1).await;
    let bye = call.peer.request().await;
    assert_eq!(bye.method, Method::Bye);
    call.peer.send(&bye.response(200).to_bytes()).await;
    let appeal = gw.log.arrived.lock().unwrap()[0].clone();

    // attempt 1: the operator answers, the number is busy
    let op1 = phone.request().await;
    assert_eq!(op1.method, Method::Invite);
    phone.answer(&op1, "a1").await;
    assert_eq!(phone.request_after(&op1).await.method, Method::Ack);
    let dial = trunk.request().await;
    assert_eq!(dial.uri.user(), Some("79131234567"));
    trunk.reply(&dial, 486, "b").await;
    assert_eq!(trunk.request_after(&dial).await.method, Method::Ack);
    let bye = phone.request().await;
    assert_eq!(bye.method, Method::Bye);
    phone.send(&bye.response(200).to_bytes()).await;

    // attempt 2 after the retry interval: answered and bridged
    let op2 = phone.request().await;
    assert_eq!(op2.method, Method::Invite);
    phone.answer(&op2, "a2").await;
    assert_eq!(phone.request_after(&op2).await.method, Method::Ack);
    let dial = trunk.request().await;
    assert_eq!(dial.method, Method::Invite);
    trunk.answer(&dial, "c").await;
    assert_eq!(trunk.request_after(&dial).await.method, Method::Ack);
    let (op_rtp, callee_rtp) = (media_port(&op2.body), media_port(&dial.body));
    phone.send_rtp(op_rtp, &[0x51; 160], 10).await;
    trunk.hears(&[0x51; 160]).await;
    trunk.send_rtp(callee_rtp, &[0x15; 160], 10).await;
    phone.hears(&[0x15; 160]).await;

    // the operator hangs up: the number is sent BYE
    phone
        .send(phone.in_dialog(&op2, "a2", "BYE", 2, "").as_bytes())
        .await;
    assert_eq!(phone.final_response().await.status, 200);
    let bye = trunk.request().await;
    assert_eq!(bye.method, Method::Bye);
    trunk.send(&bye.response(200).to_bytes()).await;
    let log = gw.log.clone();
    wait_for("the talk", || !log.talks.lock().unwrap().is_empty()).await;

    let attempts = gw.log.attempts.lock().unwrap().clone();
    let number = "79131234567".to_string();
    assert_eq!(
        attempts,
        vec![
            (
                appeal.clone(),
                number.clone(),
                "op1".into(),
                1,
                CallbackOutcome::Busy
            ),
            (
                appeal.clone(),
                number,
                "op1".into(),
                2,
                CallbackOutcome::Answered
            ),
        ]
    );
    assert_eq!(
        *gw.log.dialling.lock().unwrap(),
        [
            (appeal.clone(), "op1".to_owned(), 1),
            (appeal.clone(), "op1".to_owned(), 2)
        ]
    );
    assert!(gw.log.gave_up.lock().unwrap().is_empty());
    let talks = gw.log.talks.lock().unwrap().clone();
    assert_eq!(talks[0].0, appeal);
    assert_eq!(talks[0].1, "op1");
    assert_eq!(
        gw.log.ended.lock().unwrap()[0].2,
        Some(IvrEnd::Callback),
        "the booking call's outcome is callback"
    );
    // done: nobody is rung again
    phone.quiet(Duration::from_millis(500)).await;
    gw.stop().await;
}

/// A callback whose number is busy on every attempt: each attempt is dialled and reported,
/// and after the queue's `max_attempts` (3) the ACD gives up and the call log hears it once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_busy_on_every_attempt_is_given_up() {
    let dir = tempfile::tempdir().unwrap();
    let trunk = Peer::new("127.0.0.1:9".parse().unwrap()).await;
    let menu = "[[callback]]\nid = \"main\"\nprompt = \"intro\"\nconfirm = \"confirm\"\n\
                enter = \"enter\"\ndone = \"done\"\nqueue = \"benefits\"\nfallback = \"bye\"\n\
                [[hangup]]\nid = \"bye\"\n";
    let gw = Server::start(settings(dir.path(), menu, trunk.addr())).await;
    let trunk = Peer {
        server: gw.addr,
        ..trunk
    };
    let phone = operator(&gw).await;
    let call = Call::place(gw.addr).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    call.press(1).await;
    let bye = call.peer.request().await;
    assert_eq!(bye.method, Method::Bye);
    call.peer.send(&bye.response(200).to_bytes()).await;
    let appeal = gw.log.arrived.lock().unwrap()[0].clone();

    for (n, tag) in [(1, "a1"), (2, "a2"), (3, "a3")] {
        let inv = phone.request().await;
        assert_eq!(inv.method, Method::Invite, "attempt {n}");
        phone.answer(&inv, tag).await;
        assert_eq!(phone.request_after(&inv).await.method, Method::Ack);
        let dial = trunk.request().await;
        assert_eq!(dial.method, Method::Invite);
        trunk.reply(&dial, 486, &format!("b{n}")).await;
        assert_eq!(trunk.request_after(&dial).await.method, Method::Ack);
        let bye = phone.request().await;
        assert_eq!(bye.method, Method::Bye);
        phone.send(&bye.response(200).to_bytes()).await;
    }
    let log = gw.log.clone();
    wait_for("the give-up", || !log.gave_up.lock().unwrap().is_empty()).await;
    assert_eq!(*gw.log.gave_up.lock().unwrap(), [(appeal.clone(), 3)]);
    assert_eq!(
        gw.log
            .dialling
            .lock()
            .unwrap()
            .iter()
            .map(|d| d.2)
            .collect::<Vec<_>>(),
        [1, 2, 3]
    );
    let results: Vec<CallbackOutcome> = gw
        .log
        .attempts
        .lock()
        .unwrap()
        .iter()
        .map(|a| a.4)
        .collect();
    assert_eq!(results, [CallbackOutcome::Busy; 3]);
    // given up: nobody is rung again
    phone.quiet(Duration::from_millis(800)).await;
    gw.stop().await;
}

/// A menu's transfer node dials the number through the trunk and bridges the caller; when the
/// number fails the caller goes to the node's fallback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_menu_transfer_is_dialled_and_falls_back_when_it_fails() {
    let dir = tempfile::tempdir().unwrap();
    let trunk = Peer::new("127.0.0.1:9".parse().unwrap()).await;
    let menu = "[[transfer]]\nid = \"main\"\nprompt = \"hi\"\nnumber = \"88001002030\"\n\
                fallback = \"q\"\n[[queue]]\nid = \"q\"\nqueue = \"benefits\"\n";
    let gw = Server::start(settings(dir.path(), menu, trunk.addr())).await;
    let trunk = Peer {
        server: gw.addr,
        ..trunk
    };
    // first call: answered and bridged
    let call = Call::place(gw.addr).await;
    let invite = trunk.request().await;
    assert_eq!(invite.uri.user(), Some("88001002030"));
    let invite = TrunkAuth::new().challenge(&trunk, &invite).await;
    trunk.answer(&invite, "t").await;
    assert_eq!(trunk.request_after(&invite).await.method, Method::Ack);
    call.peer.send_rtp(call.gw_rtp, &[0x61; 160], 10).await;
    trunk.hears(&[0x61; 160]).await;
    trunk
        .send_rtp(media_port(&invite.body), &[0x16; 160], 10)
        .await;
    call.peer.hears(&[0x16; 160]).await;
    let appeal = gw.log.arrived.lock().unwrap()[0].clone();
    let log = gw.log.clone();
    wait_for("the transfer", || !log.transfers.lock().unwrap().is_empty()).await;
    assert_eq!(
        gw.log.transfers.lock().unwrap()[0],
        (
            appeal,
            None,
            "88001002030".into(),
            TransferKind::Number,
            200
        )
    );

    // second call: no answer (480) → the fallback queue
    let second = Call::place(gw.addr).await;
    let invite = trunk.request().await;
    let invite = TrunkAuth::new().challenge(&trunk, &invite).await;
    trunk.reply(&invite, 480, "n").await;
    assert_eq!(trunk.request_after(&invite).await.method, Method::Ack);
    let appeal2 = gw.log.arrived.lock().unwrap()[1].clone();
    let log = gw.log.clone();
    let queued = |log: &Log| {
        log.steps
            .lock()
            .unwrap()
            .iter()
            .any(|(a, s)| a == &appeal2 && matches!(s, IvrStep::EnteredQueue { .. }))
    };
    wait_for("the fallback queue", || queued(&log)).await;
    assert!(gw
        .log
        .steps
        .lock()
        .unwrap()
        .iter()
        .any(|(a, s)| a == &appeal2
            && matches!(s, IvrStep::Path { step, .. } if step == "main:failed")));
    let _ = second;
    gw.stop().await;
}

/// op1 REFERs the caller to op2 (`sip:op2@…`): 202 and NOTIFY 100; op2's phone rings. Busy
/// (486) is NOTIFYed 486 and the caller stays with op1. The second time op2 rings, a new
/// caller is not offered to op2 (the ACD holds op2 for the transfer) nor to op1 (on a call);
/// op2 answers: NOTIFY 200 and BYE to op1, the caller talks to op2, and op1 — free again —
/// is offered the waiting caller. op2's BYE ends the caller's call. The appeal has both
/// transfer attempts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refer_to_an_operator_rings_them_and_bridges_the_caller() {
    let dir = tempfile::tempdir().unwrap();
    let trunk = Peer::new("127.0.0.1:9".parse().unwrap()).await;
    let gw = Server::start(settings(dir.path(), QUEUE_MENU, trunk.addr())).await;
    let phone = operator(&gw).await;
    let (call, op_invite, op_rtp) = connected(&gw, &phone).await;
    let phone2 = operator_named(&gw, "op2").await;

    let refer = |cseq: u32| {
        phone.in_dialog(
            &op_invite,
            "op1tag",
            "REFER",
            cseq,
            "Refer-To: <sip:op2@hotline>\r\n",
        )
    };
    phone.send(refer(2).as_bytes()).await;
    assert_eq!(phone.final_response().await.status, 202);
    assert_eq!(notify(&phone).await.0, 100);
    let inv = phone2.request().await;
    assert_eq!(inv.method, Method::Invite);
    assert!(inv.headers.get(&HeaderName::To).unwrap().contains("op2@"));
    phone2.reply(&inv, 486, "busy").await;
    assert_eq!(phone2.request_after(&inv).await.method, Method::Ack);
    assert_eq!(
        notify(&phone).await,
        (486, "terminated;reason=noresource".into())
    );
    phone.send_rtp(op_rtp, &[0x51; 160], 5).await;
    call.peer.hears(&[0x51; 160]).await;

    // again; this time op2 answers
    phone.send(refer(3).as_bytes()).await;
    assert_eq!(phone.final_response().await.status, 202);
    assert_eq!(notify(&phone).await.0, 100);
    let inv = phone2.request().await;
    assert_eq!(inv.method, Method::Invite);
    phone2.reply(&inv, 180, "op2tag").await;
    let _second = Call::place(gw.addr).await;
    phone2.quiet(Duration::from_millis(300)).await;
    phone2.answer(&inv, "op2tag").await;
    assert_eq!(phone2.request_after(&inv).await.method, Method::Ack);
    assert_eq!(
        notify(&phone).await,
        (200, "terminated;reason=noresource".into())
    );
    let bye = phone.request().await;
    assert_eq!(bye.method, Method::Bye);
    phone.send(&bye.response(200).to_bytes()).await;
    // op1 is free: the waiting caller is offered to them
    let offer = phone.request().await;
    assert_eq!(offer.method, Method::Invite);
    // caller ↔ op2
    let op2_rtp = media_port(&inv.body);
    call.peer.send_rtp(call.gw_rtp, &[0x52; 160], 10).await;
    phone2.hears(&[0x52; 160]).await;
    phone2.send_rtp(op2_rtp, &[0x53; 160], 10).await;
    call.peer.hears(&[0x53; 160]).await;
    // op2 hangs up: the caller's call ends
    phone2
        .send(phone2.in_dialog(&inv, "op2tag", "BYE", 1, "").as_bytes())
        .await;
    assert_eq!(phone2.final_response().await.status, 200);
    let to_caller = call.peer.request().await;
    assert_eq!(to_caller.method, Method::Bye);
    call.peer.send(&to_caller.response(200).to_bytes()).await;
    let appeal = gw.log.arrived.lock().unwrap()[0].clone();
    assert_eq!(
        gw.log.transfers.lock().unwrap().clone(),
        vec![
            (
                appeal.clone(),
                Some("op1".into()),
                "op2".into(),
                TransferKind::Operator,
                486
            ),
            (
                appeal,
                Some("op1".into()),
                "op2".into(),
                TransferKind::Operator,
                200
            ),
        ]
    );
    gw.stop().await;
}

/// op1 REFERs the caller to op2 who is not logged in: NOTIFY 486 at once, nothing rings.
/// Then op1 REFERs to a number and hangs up while it rings: the caller hears the queue's
/// music; the number is busy, so the caller goes back into `benefits` and is offered to op1
/// again rather than hung up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_transfer_after_the_operator_left_returns_the_caller_to_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    let trunk = Peer::new("127.0.0.1:9".parse().unwrap()).await;
    let gw = Server::start(settings(dir.path(), QUEUE_MENU, trunk.addr())).await;
    let trunk = Peer {
        server: gw.addr,
        ..trunk
    };
    let phone = operator(&gw).await;
    let (call, op_invite, _) = connected(&gw, &phone).await;
    let refer = |cseq: u32, to: &str| {
        phone.in_dialog(
            &op_invite,
            "op1tag",
            "REFER",
            cseq,
            &format!("Refer-To: <sip:{to}@hotline>\r\n"),
        )
    };
    phone.send(refer(2, "op2").as_bytes()).await;
    assert_eq!(phone.final_response().await.status, 202);
    assert_eq!(notify(&phone).await.0, 100);
    assert_eq!(notify(&phone).await.0, 486);

    phone.send(refer(3, "88005553535").as_bytes()).await;
    assert_eq!(phone.final_response().await.status, 202);
    assert_eq!(notify(&phone).await.0, 100);
    let invite = trunk.request().await;
    assert_eq!(invite.method, Method::Invite);
    let mut auth = TrunkAuth::new();
    let invite = auth.challenge(&trunk, &invite).await;
    trunk.reply(&invite, 180, "busy").await;
    // op1 hangs up while the number rings
    phone
        .send(
            phone
                .in_dialog(&op_invite, "op1tag", "BYE", 4, "")
                .as_bytes(),
        )
        .await;
    assert_eq!(phone.final_response().await.status, 200);
    call.peer.hears_music(&music_frames(dir.path())).await;
    trunk.reply(&invite, 486, "busy").await;
    assert_eq!(trunk.request_after(&invite).await.method, Method::Ack);
    // back in the queue: offered to op1 again, the call still up
    let again = phone.request().await;
    assert_eq!(again.method, Method::Invite);
    assert!(gw.log.ended.lock().unwrap().is_empty());
    call.peer.hears_music(&music_frames(dir.path())).await;
    let appeal = gw.log.arrived.lock().unwrap()[0].clone();
    let entered = gw
        .log
        .steps
        .lock()
        .unwrap()
        .iter()
        .filter(|(a, s)| a == &appeal && matches!(s, IvrStep::EnteredQueue { .. }))
        .count();
    assert_eq!(entered, 2, "the appeal notes the second time in the queue");
    gw.stop().await;
}
