//! An in-memory world for call control (quinn's `Pair::step`, str0m's `progress`): the core,
//! simulated phones and a trunk exchanging parsed SIP with it over "TCP" (no retransmissions
//! to filter), a media edge that only remembers what it was told, and a virtual clock that
//! jumps from one wake-up to the next. Nothing here sleeps or opens a socket.

#![allow(dead_code)] // each test file uses a part of it

mod phones;
mod setup;
pub use phones::*;
pub use setup::*;

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use calls::{
    BookEntry, Core, DtmfVia, Input, LegId, MediaCommand, MediaEvent, MediaPorts, Output, Settings,
    Stats,
};
use media::prompts::PromptName;
use sip::registrar::{Registrar, RegistrarConfig};
use sip::transaction::TimerConfig;
use sip::{Message, Request};

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
    /// The operator book's answer to every command while set (otherwise it takes them all).
    pub book_refuses: Option<calls::OperatorRefusal>,
    /// Every live event and every request sent, with the number of the drain it came out of
    /// (one drain: one input or command carried out).
    pub journal: Vec<(u64, Journal)>,
    /// Every SIP message the core sent, as bytes, with where to, in order.
    pub wire: Vec<(SocketAddr, Vec<u8>)>,
    drains: u64,
    n: u32,
}

/// What [`World::journal`] keeps.
#[derive(Debug, Clone)]
pub enum Journal {
    /// A request the core sent: its method, Call-ID and where to.
    Sent(sip::Method, String, SocketAddr),
    Live(calls::live::LiveEvent),
    /// What the operator book was asked or told.
    Book(BookEntry),
}

impl World {
    /// The harness's seed for the core's random values (tags, branches, Call-IDs, SDP ids).
    pub const SEED: [u8; 32] = [9; 32];

    pub fn new(settings: Settings) -> World {
        World::with_seed(settings, World::SEED)
    }

    /// A world whose core draws its random values from `seed`.
    pub fn with_seed(settings: Settings, seed: [u8; 32]) -> World {
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
            TimerConfig::default(),
            registrar,
            trunk_auth,
            stats.clone(),
            seed,
            Box::new(Ports::default()),
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
            book_refuses: None,
            journal: Vec::new(),
            wire: Vec::new(),
            drains: 0,
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

    pub(crate) fn input(&mut self, input: Input) {
        self.core.handle(self.now, input);
        self.carry_out();
    }

    /// Drains the core's outputs (and what they cause at once) as the gateway's driver does.
    fn carry_out(&mut self) {
        self.drains += 1;
        loop {
            while let Some(out) = self.core.poll_output() {
                match out {
                    Output::Transmit(t) => {
                        self.wire.push((t.peer.addr, t.bytes.to_vec()));
                        let msg = sip::parse_message(&t.bytes).expect("the core sends valid SIP");
                        if let Message::Request(r) = &msg {
                            let id = r.headers.call_id().unwrap_or_default().to_string();
                            let sent = Journal::Sent(r.method.clone(), id, t.peer.addr);
                            self.journal.push((self.drains, sent));
                        }
                        self.inbox.entry(t.peer.addr).or_default().push_back(msg);
                    }
                    Output::Live(ev) => self.journal.push((self.drains, Journal::Live(ev))),
                    Output::Appeal(ev) => self.log.record(&ev),
                    // a book that keeps nothing and refuses only what `book_refuses` says
                    Output::Book(entry) => {
                        self.journal
                            .push((self.drains, Journal::Book(entry.clone())));
                        if let BookEntry::Apply(req) = entry {
                            let verdict = self.book_refuses.clone().map_or(Ok(()), Err);
                            self.core
                                .handle(self.now, Input::Booked(req.answer(verdict)));
                        }
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
