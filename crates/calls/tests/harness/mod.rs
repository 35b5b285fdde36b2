//! An in-memory world for call control (quinn's `Pair::step`, str0m's `progress`): the core,
//! simulated phones and a trunk exchanging parsed SIP with it over "TCP" (no retransmissions
//! to filter), a media edge that only remembers what it was told, and a virtual clock that
//! jumps from one wake-up to the next. Nothing here sleeps or opens a socket.

#![allow(dead_code)] // each test file uses a part of it

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use calls::settings::menu_prompt_name;
use calls::{
    CallArrived, CallEnded, CallLog, CallbackAttempt, Core, DtmfMode, DtmfVia, Input, IvrStep,
    LegId, LineSettings, MediaCommand, MediaEvent, MediaPorts, NoOperatorBook, OperatorCommand,
    OperatorSettings, Output, Settings, Stats, TransferRecord, TrunkOutbound, TrunkSettings,
};
use media::g711::Law;
use media::prompts::{Encoder, Prompt, PromptCache, PromptName};
use sip::registrar::{Registrar, RegistrarConfig};
use sip::transaction::{Endpoint, TimerConfig};
use sip::{HeaderName, Message, Method, Peer, Request, Response, Transport};

/// Our SIP address.
pub const GW: SocketAddr = SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1)), 5060);
/// The outbound trunk's address.
pub const TRUNK: SocketAddr =
    SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 200)), 5060);
/// The hotline's number.
pub const CITY: &str = "3832000000";
/// The number callers call from.
pub const CALLER: &str = "79131234567";

/// A test address `192.0.2.n:5060`.
pub fn addr(n: u8) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, n)), 5060)
}

/// The feature codes' confirmations (in the prompt cache; tests name them in the settings).
pub const FEATURE_PROMPTS: [&str; 5] =
    ["op/in", "op/out", "op/paused", "op/unpaused", "op/refused"];

/// Every prompt the test menus name, each `ms` long (tones: only their length matters here).
const PROMPTS: [(&str, usize); 9] = [
    ("greet", 400),
    ("menu", 2000),
    ("queued", 300),
    ("hi", 100),
    ("done", 100),
    ("intro", 100),
    ("confirm", 100),
    ("enter", 100),
    ("music", 400),
];

fn tone_wav(path: &std::path::Path, ms: usize) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).expect("a WAV in the test folder");
    for i in 0..ms * 8 {
        let v = (i as f64 * 2.0 * std::f64::consts::PI * 500.0 / 8000.0).sin() * 8000.0;
        w.write_sample(v as i16).expect("a sample");
    }
    w.finalize().expect("the WAV's header");
}

fn encode(law: Law) -> impl Fn(&[i16]) -> Vec<u8> {
    move |pcm: &[i16]| pcm.iter().map(|s| law.encode(*s)).collect()
}

/// A configuration with one line (`CITY`) whose menu is `menu` (TOML after the `prompts` key,
/// starting at `start`), the queue `benefits` (`queue` adjusts it) served by `op1`…`op3`, and
/// the trunk at [`TRUNK`].
pub fn settings(
    dir: &std::path::Path,
    menu: &str,
    start: &str,
    queue: impl FnOnce(&mut acd::QueueConfig),
) -> Settings {
    let p = dir.join("prompts");
    std::fs::create_dir_all(p.join("numbers")).expect("the prompts folder");
    let mut catalogue = String::new();
    for (n, ms) in PROMPTS {
        tone_wav(&p.join(format!("{n}.wav")), ms);
        catalogue.push_str(&format!("{n} = \"{n}\"\n"));
    }
    for d in 0..10 {
        tone_wav(&p.join(format!("numbers/{d}.wav")), 60);
    }
    std::fs::write(p.join("prompts.toml"), catalogue).expect("the catalogue");
    let file = dir.join("menu.toml");
    std::fs::write(&file, format!("prompts = \"prompts\"\n{menu}")).expect("the menu");
    let cx = ivr::Context {
        start,
        start_at: None,
        queues: None,
    };
    let menu = Arc::new(ivr::load(&[file], &cx).expect("a valid test menu"));
    let (u, a) = (encode(Law::Ulaw), encode(Law::Alaw));
    let encoders: [(&str, &dyn Encoder); 2] = [("PCMU", &u), ("PCMA", &a)];
    let mut prompts: Vec<_> = menu
        .prompts()
        .values()
        .map(|i| {
            Arc::new(
                Prompt::load(menu_prompt_name(&i.path), &i.path, &encoders).expect("a test prompt"),
            )
        })
        .collect();
    let wav = p.join("music.wav");
    let music =
        Arc::new(Prompt::load(menu_prompt_name(&wav), &wav, &encoders).expect("the music on hold"));
    // what a waiting caller may hear: the number pieces and the queue's prompts, 200 ms each
    let pcm: Vec<i16> = (0..1600).map(|k| ((k % 16) as i16 - 8) * 500).collect();
    let names = media::numbers_ru::PIECES
        .iter()
        .map(|(n, _)| *n)
        .chain(calls::WAITING_PROMPTS.iter().map(|(n, _)| *n))
        .chain(FEATURE_PROMPTS);
    for n in names {
        prompts.push(Arc::new(Prompt::from_pcm(
            PromptName::new(n.to_string()),
            &pcm,
            &encoders,
        )));
    }
    let mut moh = HashMap::new();
    moh.insert("benefits".to_string(), music.name().clone());
    prompts.push(music);
    let mut q = acd::QueueConfig::new("benefits");
    q.wrap_up = Duration::ZERO;
    q.announce_every = None;
    queue(&mut q);
    let mut uri = sip::SipUri::new(None, sip::Host::V4([192, 0, 2, 200].into()), None);
    uri.port = Some(TRUNK.port());
    uri.params.set("transport", Some("tcp".into()));
    Settings {
        listen: vec![GW],
        user_agent: "Hotline-test".into(),
        realm: "hotline".into(),
        max_message_size: 65_535,
        t1: Duration::from_millis(500),
        lockout_failures: 10,
        lockout: Duration::from_secs(60),
        digest_algorithms: vec![sip::auth::Algorithm::Md5],
        lines: vec![LineSettings {
            id: "city".into(),
            numbers: vec![CITY.into()],
            name: "City".into(),
            ring: Duration::ZERO,
            greeting: None,
            dtmf: DtmfMode::Auto,
            record: false,
            menu: Some(menu),
            start: start.into(),
        }],
        trunks: vec![TrunkSettings {
            name: "carrier".into(),
            allow: vec!["192.0.2.0/24".parse().expect("a network")],
            credentials: None,
            outbound: Some(TrunkOutbound {
                uri,
                peer: Peer {
                    transport: Transport::Tcp,
                    addr: TRUNK,
                },
            }),
        }],
        operators: ["op1", "op2", "op3"]
            .into_iter()
            .map(|op| OperatorSettings {
                login: op.into(),
                secret: sip::auth::Secret::Plain(format!("{op}-secret")),
            })
            .collect(),
        rtp_ports: (20_000, 20_099),
        rtp_address: None,
        rtp_timeout: Some(Duration::from_secs(60)),
        prompts: Arc::new(PromptCache::from_prompts(prompts, &encoders)),
        recordings_dir: dir.join("rec"),
        session_expires: 1800,
        max_call: Duration::from_secs(4 * 3600),
        shutdown_grace: Duration::from_secs(10),
        redact_callers: false,
        moh,
        acd: Some(acd::AcdConfig {
            queues: vec![q],
            operators: ["op1", "op2", "op3"]
                .into_iter()
                .map(|op| acd::OperatorConfig::new(op, [("benefits", 1)]))
                .collect(),
        }),
        feature_codes: Default::default(),
    }
}

/// What call control wrote down, one line per call-log call, in order.
#[derive(Default)]
pub struct Log {
    lines: Mutex<Vec<String>>,
    next: Mutex<u32>,
}

impl Log {
    fn push(&self, line: String) {
        self.lines.lock().expect("the log").push(line);
    }

    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().expect("the log").clone()
    }

    /// The lines that start with `prefix`.
    pub fn starting(&self, prefix: &str) -> Vec<String> {
        self.lines()
            .into_iter()
            .filter(|l| l.starts_with(prefix))
            .collect()
    }
}

impl CallLog for Log {
    fn call_arrived(&self, call: &CallArrived<'_>) -> String {
        let mut n = self.next.lock().expect("the counter");
        *n += 1;
        let appeal = format!("A{n}");
        self.push(format!("arrived {appeal} {} {}", call.line, call.caller));
        appeal
    }
    fn call_ended(&self, appeal: &str, end: &CallEnded) {
        let op = end
            .operator
            .as_ref()
            .map(|(o, _)| o.as_str())
            .unwrap_or("-");
        self.push(format!(
            "ended {appeal} {} ivr={:?} operator={op}",
            end.reason.as_str(),
            end.ivr
        ));
    }
    fn digit(&self, appeal: &str, digit: char, via: &str) {
        self.push(format!("digit {appeal} {digit} {via}"));
    }
    fn ivr_step(&self, appeal: &str, step: &IvrStep) {
        let s = match step {
            IvrStep::Path { step, .. } => format!("path {step}"),
            IvrStep::EnteredQueue { queue, .. } => format!("queue {queue}"),
            IvrStep::CallbackRequested { number, .. } => format!("callback {number}"),
            IvrStep::Message { .. } => "message".into(),
            other => format!("{other:?}"),
        };
        self.push(format!("step {appeal} {s}"));
    }
    fn operator_answered(&self, appeal: &str, operator: &str, _waited: Duration) {
        self.push(format!("answered {appeal} {operator}"));
    }
    fn transferred(&self, appeal: &str, t: &TransferRecord<'_>) {
        self.push(format!(
            "transferred {appeal} {} {} {}",
            t.kind.as_str(),
            t.target,
            t.status
        ));
    }
    fn callback_dialling(&self, appeal: &str, operator: &str, attempt: u32) {
        self.push(format!("dialling {appeal} {operator} {attempt}"));
    }
    fn callback_attempt(&self, appeal: &str, a: &CallbackAttempt<'_>) {
        self.push(format!(
            "attempt {appeal} {} {}",
            a.attempt,
            a.result.as_str()
        ));
    }
    fn callback_failed(&self, appeal: &str, attempts: u32) {
        self.push(format!("gave-up {appeal} {attempts}"));
    }
    fn callback_talked(&self, appeal: &str, operator: &str, _talked: Duration) {
        self.push(format!("talked {appeal} {operator}"));
    }
}

/// Even ports from 20 000 on; a released pair is used again.
#[derive(Default)]
struct Ports {
    used: HashSet<u16>,
}

impl MediaPorts for Ports {
    fn allocate(&mut self, _ip: IpAddr) -> Option<u16> {
        let p = (20_000..20_100)
            .step_by(2)
            .find(|p| !self.used.contains(p))?;
        self.used.insert(p);
        Some(p)
    }
    fn release(&mut self, port: u16) {
        self.used.remove(&port);
    }
}

/// One leg as the fake media edge knows it.
#[derive(Debug, Default, Clone)]
pub struct Leg {
    /// Every prompt played on it, in order (greeting included).
    pub heard: Vec<String>,
    /// The playback running: its number and when its last frame goes out.
    pub playing: Option<(u64, Instant)>,
    /// The music on hold looping now.
    pub moh: Option<String>,
    pub bridged: Option<LegId>,
    pub recording: Option<String>,
    pub closed: bool,
}

/// The media edge: remembers what it was told and reports playbacks' ends on time.
#[derive(Default)]
pub struct Media {
    pub legs: HashMap<LegId, Leg>,
    /// Events due now (a playback on a leg that is not running ends at once).
    due: VecDeque<MediaEvent>,
}

impl Media {
    fn execute(&mut self, now: Instant, cmd: MediaCommand) {
        match cmd {
            MediaCommand::Start { leg, greeting, .. } => {
                let mut l = Leg::default();
                if let Some(g) = greeting {
                    l.heard.push(short(g.as_str()));
                }
                self.legs.insert(leg, l);
            }
            MediaCommand::Update { .. } | MediaCommand::StopInband { .. } => {}
            MediaCommand::Play {
                leg,
                seq,
                generation,
            } => match self.legs.get_mut(&leg).filter(|l| !l.closed) {
                Some(l) => {
                    let mut s = seq.clone();
                    while let Some(f) = s.next_frame() {
                        let name = short(f.prompt().as_str());
                        if name != "(silence)" && l.heard.last() != Some(&name) {
                            l.heard.push(name);
                        }
                    }
                    let frames = u32::try_from(seq.total_frames()).unwrap_or(u32::MAX);
                    l.playing = Some((generation, now + Duration::from_millis(20) * frames));
                    l.moh = None;
                    l.bridged = None;
                }
                None => self.due.push_back(MediaEvent::PlaybackFinished {
                    call_id: leg,
                    generation,
                }),
            },
            MediaCommand::PlayMoh { leg, music, .. } => {
                self.unbridge(&leg);
                if let Some(l) = self.legs.get_mut(&leg) {
                    l.playing = None;
                    l.moh = Some(short(music.as_str()));
                }
            }
            MediaCommand::StopPlayback { leg } => {
                if let Some(l) = self.legs.get_mut(&leg) {
                    l.playing = None;
                    l.moh = None;
                }
            }
            MediaCommand::RecordMessage { leg, name } => match self.legs.get_mut(&leg) {
                Some(l) if !l.closed => l.recording = Some(name),
                _ => self
                    .due
                    .push_back(MediaEvent::RecordFailed { call_id: leg }),
            },
            MediaCommand::Bridge { a, b } => {
                // a leg bridged to a third one is taken out of that bridge first
                self.unbridge(&a);
                self.unbridge(&b);
                for (x, y) in [(&a, &b), (&b, &a)] {
                    if let Some(l) = self.legs.get_mut(x) {
                        l.bridged = Some(y.clone());
                        l.playing = None;
                        l.moh = None;
                    }
                }
            }
            MediaCommand::Unbridge { leg } => self.unbridge(&leg),
            MediaCommand::Close { leg } => {
                if let Some(l) = self.legs.get_mut(&leg) {
                    l.closed = true;
                    l.playing = None;
                }
            }
        }
    }

    fn unbridge(&mut self, leg: &LegId) {
        let other = self.legs.get_mut(leg).and_then(|l| l.bridged.take());
        if let Some(o) = other.and_then(|o| self.legs.get_mut(&o)) {
            if o.bridged.as_ref() == Some(leg) {
                o.bridged = None;
            }
        }
    }

    /// When the next playback ends.
    fn next_end(&self) -> Option<Instant> {
        self.legs
            .values()
            .filter_map(|l| l.playing.map(|(_, at)| at))
            .min()
    }

    /// Playbacks that have ended by `now`, as the media thread reports them.
    fn ended(&mut self, now: Instant) -> Vec<MediaEvent> {
        let mut out: Vec<MediaEvent> = self.due.drain(..).collect();
        for (id, l) in self.legs.iter_mut() {
            if let Some((generation, at)) = l.playing {
                if at <= now {
                    l.playing = None;
                    out.push(MediaEvent::PlaybackFinished {
                        call_id: id.clone(),
                        generation,
                    });
                }
            }
        }
        out
    }
}

/// The call control and everything around it.
pub struct World {
    pub core: Core,
    pub now: Instant,
    pub start: Instant,
    pub log: Arc<Log>,
    pub stats: Arc<Stats>,
    pub media: Media,
    /// What the core sent to each address, oldest first.
    inbox: HashMap<SocketAddr, VecDeque<Message>>,
    /// Returning-caller lookups: the operator each number's open appeal names.
    pub returning: HashMap<String, String>,
    n: u32,
}

impl World {
    pub fn new(settings: Settings) -> World {
        let start = Instant::now();
        let log = Arc::new(Log::default());
        let stats = Arc::new(Stats::default());
        let registrar = Registrar::new(RegistrarConfig::new("hotline"), [7; 32], start);
        let trunk_auth = sip::auth::DigestServer::new(
            "hotline".into(),
            [8; 32],
            Duration::from_secs(300),
            start,
        );
        let mut core = Core::new(
            start,
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_760_000_000),
            Arc::new(settings),
            Endpoint::new(TimerConfig::default()),
            registrar,
            trunk_auth,
            stats.clone(),
            log.clone(),
            Box::new(Ports::default()),
            Arc::new(NoOperatorBook),
        );
        core.set_returning_lookups(true);
        World {
            core,
            now: start,
            start,
            log,
            stats,
            media: Media::default(),
            inbox: HashMap::new(),
            returning: HashMap::new(),
            n: 0,
        }
    }

    /// A fresh token for tags, branches and Call-IDs.
    pub fn token(&mut self, what: &str) -> String {
        self.n += 1;
        format!("{what}{}", self.n)
    }

    /// Virtual time since the world began.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    fn input(&mut self, input: Input) {
        self.core.handle(self.now, input);
        self.carry_out();
    }

    /// Drains the core's outputs (and what they cause at once) as the gateway's driver does.
    fn carry_out(&mut self) {
        loop {
            while let Some(out) = self.core.poll_output() {
                match out {
                    Output::Transmit(t) => {
                        let msg = sip::parse_message(&t.bytes).expect("the core sends valid SIP");
                        self.inbox.entry(t.peer.addr).or_default().push_back(msg);
                    }
                    Output::Media(cmd) => self.media.execute(self.now, cmd),
                    Output::LookupReturning(q) => {
                        let op = self.returning.get(&q.number).cloned();
                        let found = q.answer(Ok(op));
                        self.core.handle(self.now, Input::Returning(found));
                    }
                }
            }
            let due = self.media.ended(self.now);
            if due.is_empty() {
                return;
            }
            for ev in due {
                self.core.handle(self.now, Input::Media(ev));
            }
        }
    }

    /// Lets `d` of virtual time pass: every wake-up of the core and every playback's end on
    /// the way is handled at its own instant.
    pub fn advance(&mut self, d: Duration) {
        let until = self.now + d;
        loop {
            let next = [self.core.poll_timeout(), self.media.next_end()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(at) if at <= until => {
                    self.now = self.now.max(at);
                    self.carry_out();
                    if self.core.poll_timeout().is_some_and(|t| t <= self.now) {
                        self.input(Input::Timeout);
                    }
                }
                _ => break,
            }
        }
        self.now = until;
        self.carry_out();
    }

    /// Runs a command on the core at the current time and carries out what it asks for.
    pub fn command<T>(&mut self, f: impl FnOnce(&mut Core, Instant) -> T) -> T {
        let t = f(&mut self.core, self.now);
        self.carry_out();
        t
    }

    /// `from` sends `msg` to us over TCP.
    pub fn send(&mut self, from: SocketAddr, msg: Message) {
        self.input(Input::Sip {
            peer: Peer {
                transport: Transport::Tcp,
                addr: from,
            },
            local: GW,
            msg,
        });
    }

    /// Sends SIP text (built by a test) from `from`.
    pub fn send_text(&mut self, from: SocketAddr, text: &str) {
        let msg = sip::parse_message(text.as_bytes()).expect("the test's SIP parses");
        self.send(from, msg);
    }

    /// Everything the core has sent to `to` and nobody has read yet.
    pub fn take_all(&mut self, to: SocketAddr) -> Vec<Message> {
        self.inbox
            .get_mut(&to)
            .map(|q| q.drain(..).collect())
            .unwrap_or_default()
    }

    /// Nothing waits for `to`.
    pub fn quiet(&mut self, to: SocketAddr) {
        let left = self.take_all(to);
        assert!(
            left.is_empty(),
            "unexpected for {to}: {}",
            first_lines(&left)
        );
    }

    /// The next message to `to`.
    pub fn next(&mut self, to: SocketAddr) -> Message {
        self.inbox
            .get_mut(&to)
            .and_then(VecDeque::pop_front)
            .unwrap_or_else(|| panic!("nothing was sent to {to} (at {:?})", self.elapsed()))
    }

    /// The next request to `to`, skipping provisional responses.
    pub fn request(&mut self, to: SocketAddr) -> Request {
        loop {
            match self.next(to) {
                Message::Request(r) => return r,
                Message::Response(r) if r.status < 200 => {}
                Message::Response(r) => panic!("{to} got {} where a request was due", r.status),
            }
        }
    }

    /// The next request to `to`, which must be a `method`.
    pub fn expect(&mut self, to: SocketAddr, method: Method) -> Request {
        let r = self.request(to);
        assert_eq!(r.method, method, "{to} got {} {}", r.method.as_str(), r.uri);
        r
    }

    /// The next final response to `to` (provisional ones skipped).
    pub fn final_response(&mut self, to: SocketAddr) -> Response {
        loop {
            match self.next(to) {
                Message::Response(r) if r.status >= 200 => return r,
                Message::Response(_) => {}
                Message::Request(r) => {
                    panic!("{to} got {} where a response was due", r.method.as_str())
                }
            }
        }
    }

    /// `from` answers `req` with `status` (its To tag `tag` when the request had none).
    pub fn reply(&mut self, from: SocketAddr, req: &Request, status: u16, tag: &str) {
        let mut r = req.response(status);
        let to = r.headers.get(&HeaderName::To).unwrap_or("").to_string();
        if !to.contains("tag=") {
            r.headers.set(HeaderName::To, format!("{to};tag={tag}"));
        }
        self.send(from, Message::Response(r));
    }

    /// `from` answers an INVITE 200 with its SDP and Contact; To tag `tag`.
    pub fn answer(&mut self, from: SocketAddr, invite: &Request, tag: &str) {
        let mut r = invite.response(200);
        let to = r.headers.get(&HeaderName::To).unwrap_or("").to_string();
        r.headers.set(HeaderName::To, format!("{to};tag={tag}"));
        r.headers.push(
            HeaderName::Contact,
            format!("<sip:peer@{from};transport=tcp>"),
        );
        r.headers.push(HeaderName::ContentType, "application/sdp");
        r.body = sdp(from).into_bytes();
        self.send(from, Message::Response(r));
    }

    /// `phone` registers as `op` (answering the digest challenge) and the operator logs in.
    pub fn operator(&mut self, phone: SocketAddr, op: &str) {
        self.register(phone, op);
        self.command(|c, now| {
            c.operator_command(now, op, OperatorCommand::Login { queues: Vec::new() })
        })
        .expect("the operator logs in");
    }

    /// `phone` registers as `op` for an hour.
    pub fn register(&mut self, phone: SocketAddr, op: &str) {
        let call_id = self.token("reg-");
        let register = |cseq: u32, auth: &str, branch: &str| {
            format!(
                "REGISTER sip:hotline SIP/2.0\r\nVia: SIP/2.0/TCP {phone};branch=z9hG4bK{branch}\r\n\
                 Max-Forwards: 70\r\nFrom: <sip:{op}@hotline>;tag=reg\r\nTo: <sip:{op}@hotline>\r\n\
                 Call-ID: {call_id}\r\nCSeq: {cseq} REGISTER\r\n\
                 Contact: <sip:{op}@{phone};transport=tcp>\r\nExpires: 3600\r\n{auth}\
                 Content-Length: 0\r\n\r\n"
            )
        };
        let b = self.token("r");
        self.send_text(phone, &register(1, "", &b));
        let ch = self.final_response(phone);
        assert_eq!(ch.status, 401);
        let (name, value) = sip::auth::answer_challenge(
            &ch,
            &Method::Register,
            "sip:hotline",
            op,
            &format!("{op}-secret"),
            "c1",
            1,
        )
        .expect("a challenge we can answer");
        let auth = format!("{}: {value}\r\n", name.as_str());
        let b = self.token("r");
        self.send_text(phone, &register(2, &auth, &b));
        assert_eq!(self.final_response(phone).status, 200);
    }

    /// A caller at `from` calls `number`: INVITE (with `extra` headers), 200, ACK.
    pub fn call(&mut self, from: SocketAddr, number: &str, extra: &str) -> Dialog {
        let call_id = self.token("call-");
        let mut d = Dialog {
            addr: from,
            call_id,
            local: format!("<sip:{CALLER}@{from}>;tag=c{}", self.n),
            remote: format!("<sip:{number}@{GW}>"),
            target: format!("sip:{number}@{GW}"),
            cseq: 1,
        };
        let body = sdp(from);
        let invite = d.request_cseq(
            self,
            "INVITE",
            1,
            &format!("{extra}Content-Type: application/sdp\r\n"),
            &body,
        );
        self.send_text(from, &invite);
        let ok = self.final_response(from);
        assert_eq!(ok.status, 200, "the call is answered");
        d.remote = ok.headers.get(&HeaderName::To).unwrap_or("").to_string();
        d.target = ok
            .headers
            .contacts()
            .ok()
            .flatten()
            .map_or(d.target.clone(), |c| {
                c.first().map_or(d.target.clone(), |c| c.uri.to_string())
            });
        let ack = d.request_cseq(self, "ACK", 1, "", "");
        self.send_text(from, &ack);
        d
    }

    /// The caller's leg of the call `d`.
    pub fn leg(&self, d: &Dialog) -> Leg {
        self.media
            .legs
            .get(d.call_id.as_str())
            .cloned()
            .unwrap_or_else(|| panic!("no media for {}", d.call_id))
    }

    /// The media leg of our call whose INVITE was `invite`.
    pub fn leg_of(&self, invite: &Request) -> Leg {
        let id = invite.headers.call_id().expect("a Call-ID");
        self.media
            .legs
            .get(id)
            .cloned()
            .unwrap_or_else(|| panic!("no media for {id}"))
    }

    /// The caller of `d` presses `digit` (RFC 4733).
    pub fn press(&mut self, d: &Dialog, digit: char) {
        self.input(Input::Media(MediaEvent::Digit {
            call_id: d.call_id.as_str().into(),
            digit,
            via: DtmfVia::Rfc4733,
        }));
    }

    /// The far end of a call `d` hangs up: BYE, and our 200.
    pub fn hang_up(&mut self, d: &mut Dialog) {
        let bye = d.request(self, "BYE", "", "");
        self.send_text(d.addr, &bye);
        assert_eq!(self.final_response(d.addr).status, 200);
    }

    /// A request in the dialog our INVITE `invite` made with the phone at `from` (its To tag
    /// `tag`): the phone's side of a call we placed.
    pub fn dialog_of(&mut self, from: SocketAddr, invite: &Request, tag: &str) -> Dialog {
        let to = invite.headers.get(&HeaderName::To).unwrap_or("");
        let contact = invite
            .headers
            .contacts()
            .ok()
            .flatten()
            .and_then(|c| c.first().map(|c| c.uri.to_string()))
            .unwrap_or_default();
        Dialog {
            addr: from,
            call_id: invite.headers.call_id().unwrap_or("").to_string(),
            local: format!("{to};tag={tag}"),
            remote: invite.headers.get(&HeaderName::From).unwrap_or("").into(),
            target: contact,
            cseq: 1,
        }
    }
}

/// The far end's side of one dialog with us.
#[derive(Debug, Clone)]
pub struct Dialog {
    pub addr: SocketAddr,
    pub call_id: String,
    /// Our From (the far end's own address, with its tag) and To (ours, tag once known).
    pub local: String,
    pub remote: String,
    pub target: String,
    pub cseq: u32,
}

impl Dialog {
    /// The next request of the dialog (`extra` header lines, then `body`).
    pub fn request(&mut self, w: &mut World, method: &str, extra: &str, body: &str) -> String {
        if method != "ACK" {
            self.cseq += 1;
        }
        self.request_cseq(w, method, self.cseq, extra, body)
    }

    fn request_cseq(
        &self,
        w: &mut World,
        method: &str,
        cseq: u32,
        extra: &str,
        body: &str,
    ) -> String {
        let branch = w.token("z9hG4bK-t");
        format!(
            "{method} {} SIP/2.0\r\nVia: SIP/2.0/TCP {};branch={branch}\r\nMax-Forwards: 70\r\n\
             From: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {cseq} {method}\r\n\
             Contact: <sip:peer@{};transport=tcp>\r\n{extra}Content-Length: {}\r\n\r\n{body}",
            self.target,
            self.addr,
            self.local,
            self.remote,
            self.call_id,
            self.addr,
            body.len()
        )
    }
}

/// An SDP offer or answer for a phone at `at` (PCMU and telephone-event).
pub fn sdp(at: SocketAddr) -> String {
    format!(
        "v=0\r\no=t 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
         m=audio 4000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n",
        ip = at.ip()
    )
}

fn first_lines(msgs: &[Message]) -> String {
    msgs.iter()
        .map(|m| match m {
            Message::Request(r) => format!("{} {}", r.method.as_str(), r.uri),
            Message::Response(r) => format!("{} {}", r.status, r.reason),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The prompt name a menu prompt file gets in the cache.
pub fn prompt(s: &str) -> PromptName {
    PromptName::new(s)
}

/// A prompt's name as tests write it: a menu file's stem (`menu` for `file:…/menu.wav`), the
/// name itself otherwise.
fn short(name: &str) -> String {
    match name.strip_prefix("file:") {
        Some(path) => std::path::Path::new(path)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
        None => name.to_owned(),
    }
}

/// A menu that takes every caller straight into `benefits`.
pub const QUEUE_MENU: &str = "[[queue]]\nid = \"main\"\nqueue = \"benefits\"\n";

impl World {
    /// A caller at `caller` reaches the operator whose phone is `phone` (logged in, the only
    /// one free): returns the caller's dialog, our INVITE to the phone and the phone's dialog.
    pub fn connected(
        &mut self,
        caller: SocketAddr,
        phone: SocketAddr,
    ) -> (Dialog, Request, Dialog) {
        let call = self.call(caller, CITY, "");
        let invite = self.expect(phone, Method::Invite);
        self.answer(phone, &invite, "optag");
        self.expect(phone, Method::Ack);
        let op = self.dialog_of(phone, &invite, "optag");
        let op_leg = invite.headers.call_id().unwrap_or("").to_string();
        assert_eq!(self.leg(&call).bridged.as_deref(), Some(op_leg.as_str()));
        (call, invite, op)
    }

    /// The next NOTIFY to `phone`, answered 200: its sipfrag status and Subscription-State.
    pub fn notify(&mut self, phone: SocketAddr) -> (u16, String) {
        let n = self.expect(phone, Method::Notify);
        assert_eq!(n.headers.get(&HeaderName::Event), Some("refer"));
        let state = n
            .headers
            .get(&HeaderName::SubscriptionState)
            .unwrap_or("")
            .to_string();
        self.reply(phone, &n, 200, "");
        (sip::refer::sipfrag_status(&n.body).unwrap_or(0), state)
    }

    /// The operator's phone sends REFER to `target` in its dialog `op`; it must get 202.
    pub fn refer(&mut self, op: &mut Dialog, target: &str) {
        let refer = op.request(
            self,
            "REFER",
            &format!("Refer-To: <sip:{target}@hotline>\r\n"),
            "",
        );
        self.send_text(op.addr, &refer);
        assert_eq!(self.final_response(op.addr).status, 202);
    }

    /// `to` gets a BYE and answers it 200.
    pub fn bye_answered(&mut self, to: SocketAddr) {
        let bye = self.expect(to, Method::Bye);
        self.reply(to, &bye, 200, "");
    }
}

impl World {
    /// An operator's phone at `phone` dials the feature code `code` as `user` with
    /// `password`: challenged (401), then sent again with credentials. Returns the final
    /// status; a 200 call is ACKed, plays its confirmation and gets our BYE, which is answered
    /// (the prompt heard is returned with it).
    pub fn dial_code(
        &mut self,
        phone: SocketAddr,
        code: &str,
        user: &str,
        password: &str,
    ) -> (u16, Vec<String>) {
        let call_id = self.token("fc-");
        let uri = format!("sip:{code}@{GW}");
        let body = sdp(phone);
        let msg = |method: &str, cseq: u32, branch: &str, to: &str, extra: &str, body: &str| {
            format!(
                "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/TCP {phone};branch={branch}\r\n\
                 Max-Forwards: 70\r\nFrom: <sip:{user}@hotline>;tag=f{call_id}\r\n\
                 To: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\n\
                 Contact: <sip:{user}@{phone};transport=tcp>\r\n{extra}\
                 Content-Length: {}\r\n\r\n{body}",
                body.len()
            )
        };
        let sdp_type = "Content-Type: application/sdp\r\n";
        let b1 = self.token("z9hG4bK-a");
        let to = format!("<{uri}>");
        self.send_text(phone, &msg("INVITE", 1, &b1, &to, sdp_type, &body));
        let ch = self.final_response(phone);
        assert_eq!(ch.status, 401, "a feature code needs credentials");
        let to1 = ch.headers.get(&HeaderName::To).unwrap_or("").to_string();
        self.send_text(phone, &msg("ACK", 1, &b1, &to1, "", ""));
        let challenge = ch
            .headers
            .get(&HeaderName::WwwAuthenticate)
            .unwrap_or("")
            .to_string();
        let auth = sip::auth::authorization_for(
            &challenge,
            &Method::Invite,
            &uri,
            user,
            password,
            "c2",
            1,
        )
        .expect("credentials for the challenge");
        let b2 = self.token("z9hG4bK-b");
        let extra = format!("Authorization: {auth}\r\n{sdp_type}");
        self.send_text(phone, &msg("INVITE", 2, &b2, &to, &extra, &body));
        let r = self.final_response(phone);
        let to2 = r.headers.get(&HeaderName::To).unwrap_or("").to_string();
        if r.status != 200 {
            self.send_text(phone, &msg("ACK", 2, &b2, &to2, "", ""));
            return (r.status, Vec::new());
        }
        let b3 = self.token("z9hG4bK-c");
        self.send_text(phone, &msg("ACK", 2, &b3, &to2, "", ""));
        let heard = self
            .media
            .legs
            .get(call_id.as_str())
            .map(|l| l.heard.clone())
            .unwrap_or_default();
        self.advance(Duration::from_secs(2));
        self.bye_answered(phone);
        (200, heard)
    }
}
