//! The media edge: RTP ports, the sockets and tasks around each call's sans-IO
//! [`media::rtp::RtpLeg`], in-band DTMF detection and call recording.
//!
//! Threading (see docs/ARCHITECTURE.md, "Media edge"):
//! - **Sending and receiving** are done by one media thread for all legs ([`rtp_thread`]; one
//!   per two cores on bigger machines, legs spread round-robin): it
//!   wakes on an absolute 1 ms grid anchored at the edge's start; each leg has a phase (which
//!   millisecond of the 20 ms period it is served in), so each tick sends exactly the one packet
//!   each leg of that phase has due (RTCP reports and the inactivity timeout ride the same
//!   tick), and every tick drains the sockets the kernel reports readable with non-blocking
//!   reads. No task, timer or wake-up per leg or per packet.
//! - Each leg sits behind its own `std::sync::Mutex`, shared by exactly two parties: the media
//!   thread and the core (hold, close, play). Locks are held for one socket's or one tick's
//!   work of one leg, never across an `.await`.
//! - Packet counts for `/metrics` ride the same locks: the receive path bumps a plain counter
//!   in its leg, and the leg's tick gathers its received, sent and lost packets; they are
//!   added to [`Stats`] with one relaxed atomic add per counter per sub-tick.
//! - Recordings are written by one writer thread fed through a channel: the media thread
//!   never touches a file.
//!
//! What the legs tell the call control (digits, RTP timeout) goes to the core task over an
//! unbounded channel as [`MediaEvent`]s.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::BufWriter;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use media::g711::Law;
use media::goertzel::{DtmfDetector, DtmfEvent};
use media::prompts::{PromptCache, PromptSequence};
use media::rtp::{Component, Event, FrameSource, LegConfig, RtpLeg};
use media::sdp::Negotiated;
use media::wav::{Spec, WavWriter};
use std::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use calls::{DtmfVia, LegId, MediaCommand, MediaEvent, MediaPorts};

use crate::Stats;

// Child modules (media/), so that they reach a leg's state without widening its fields.
pub(crate) mod bridge;
pub(crate) mod rtp_thread;

/// Packet time of every leg and period of the pacing tick.
pub const PTIME: Duration = Duration::from_millis(20);

/// The RTP/RTCP port pairs of the configured range, handed out and taken back.
#[derive(Debug)]
pub(crate) struct PortPool {
    /// First and last even RTP port (RTCP is +1, within the range).
    first: u16,
    last: u16,
    next: u16,
    in_use: HashSet<u16>,
}

/// A bound RTP/RTCP socket pair not yet running.
#[derive(Debug)]
pub(crate) struct BoundPorts {
    pub port: u16,
    rtp: std::net::UdpSocket,
    rtcp: std::net::UdpSocket,
}

impl PortPool {
    /// Pairs `(p, p + 1)` with `p` even and both inside `min..=max`.
    pub fn new(min: u16, max: u16) -> PortPool {
        let first = min.saturating_add(min & 1);
        let last = max.saturating_sub(1) & !1;
        PortPool {
            first,
            last,
            next: first,
            in_use: HashSet::new(),
        }
    }

    fn pairs(&self) -> usize {
        if self.last < self.first {
            0
        } else {
            usize::from((self.last - self.first) / 2) + 1
        }
    }

    /// Binds the next free pair on `ip`, skipping ports in use by us or by anyone else;
    /// `None` when the whole range is taken.
    pub fn allocate(&mut self, ip: IpAddr) -> Option<BoundPorts> {
        for _ in 0..self.pairs() {
            let p = self.next;
            self.next = if p >= self.last { self.first } else { p + 2 };
            if self.in_use.contains(&p) {
                continue;
            }
            let Ok(rtp) = std::net::UdpSocket::bind(SocketAddr::new(ip, p)) else {
                continue;
            };
            let Ok(rtcp) = std::net::UdpSocket::bind(SocketAddr::new(ip, p + 1)) else {
                continue;
            };
            if rtp.set_nonblocking(true).is_err() || rtcp.set_nonblocking(true).is_err() {
                continue;
            }
            self.in_use.insert(p);
            return Some(BoundPorts { port: p, rtp, rtcp });
        }
        None
    }

    /// Gives a pair back (its sockets close when the media thread has dropped the leg).
    pub fn release(&mut self, port: u16) {
        self.in_use.remove(&port);
    }

    /// Pairs handed out now.
    #[cfg(test)]
    fn used(&self) -> usize {
        self.in_use.len()
    }
}

/// What the media thread and the core share for one call.
pub(crate) struct LegShared {
    call_id: Arc<str>,
    /// Non-blocking sockets, read and written by the media thread only.
    rtp: UdpSocket,
    rtcp: UdpSocket,
    /// The millisecond of the 20 ms period the leg is served in (0‥[`rtp_thread::PHASES`]).
    phase: usize,
    state: Mutex<LegState>,
    /// Where a playback reports its end.
    events: mpsc::UnboundedSender<MediaEvent>,
}

struct LegState {
    leg: RtpLeg,
    law: Law,
    audio_pt: u8,
    inband: Option<DtmfDetector>,
    /// Whether anything reads the keys now: the detector is paused while the leg is bridged
    /// (the caller talks to an operator; tones pass with the audio).
    inband_on: bool,
    record: Option<RecordTap>,
    /// A voice-menu message being recorded (`<appeal>-message.wav`).
    message: Option<RecordTap>,
    closed: bool,
    pcm: Vec<i16>,
    /// The leg's end of a bridge, while it is bridged.
    bridge: Option<bridge::BridgeEnd>,
    /// RTP datagrams received since the leg's tick last took them for [`Stats`].
    rx_packets: u64,
    /// The remote source whose loss count [`Stats::rtp_packets_lost`] has taken, and how
    /// much of it.
    loss_counted: (Option<u32>, i64),
}

impl LegShared {
    fn lock(&self) -> MutexGuard<'_, LegState> {
        // a panic while holding the lock cannot leave a leg half-updated in a way that matters
        // more than losing the call's media: keep going with the data as it is
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies a new offer/answer (re-INVITE, or the answer in an ACK): destination, codec,
    /// whether we send (hold), and the inactivity timeout (off while the peer does not send).
    pub fn update(&self, now: Instant, neg: &Negotiated, timeout: Option<Duration>) {
        let mut st = self.lock();
        if st.leg.destination() != neg.remote && neg.remote.is_some() {
            st.leg.set_remote(neg.remote);
        }
        if st.audio_pt != neg.audio_pt {
            st.leg.set_payload_type(neg.audio_pt);
            st.audio_pt = neg.audio_pt;
            st.law = neg.law;
            bridge::law_changed(&mut st);
        }
        st.leg.set_sending(now, neg.direction.sends());
        let timeout = if neg.direction.receives() {
            timeout
        } else {
            None
        };
        st.leg.set_inactivity_timeout(now, timeout);
    }

    /// Plays `seq` from the next tick on, replacing what was playing; when its last frame has
    /// gone out, [`MediaEvent::PlaybackFinished`] with `generation` is sent to the core.
    pub fn play(&self, seq: PromptSequence, generation: u64) {
        let mut st = self.lock();
        let source = Playback {
            seq: Some(seq),
            codec: codec_name(st.law),
            silence: vec![st.law.silence(); 160],
            done: Some(PlaybackDone {
                events: self.events.clone(),
                call_id: self.call_id.clone(),
                generation,
            }),
        };
        st.leg.set_source(Box::new(source));
    }

    /// Stops the playing prompt at once (barge-in): silence from the next tick on. A stopped
    /// playback never reports its end.
    pub fn stop_playback(&self) {
        let mut st = self.lock();
        let silence = Playback {
            seq: None,
            codec: codec_name(st.law),
            silence: vec![st.law.silence(); 160],
            done: None,
        };
        st.leg.set_source(Box::new(silence));
    }

    /// Stops in-band detection (another kind of DTMF won for this call).
    pub fn stop_inband(&self) {
        self.lock().inband = None;
    }

    /// Ends the leg: an RTCP BYE goes out on the next tick, then the media thread drops the leg
    /// (closing its sockets) and the recording is finished.
    pub fn close(&self, now: Instant) {
        let mut st = self.lock();
        if !st.closed {
            st.closed = true;
            st.leg.close(now);
            if let Some(tap) = st.record.take() {
                tap.close();
            }
            if let Some(tap) = st.message.take() {
                tap.close();
            }
        }
    }
}

/// Plays a prompt sequence once, then silence (keeps NAT bindings and the far end's RTP
/// timeout alive).
struct Playback {
    seq: Option<PromptSequence>,
    codec: &'static str,
    silence: Vec<u8>,
    /// Who to tell when `seq` has played out (voice-menu prompts; not the plain greeting).
    done: Option<PlaybackDone>,
}

struct PlaybackDone {
    events: mpsc::UnboundedSender<MediaEvent>,
    call_id: Arc<str>,
    generation: u64,
}

fn codec_name(law: Law) -> &'static str {
    match law {
        Law::Ulaw => "PCMU",
        Law::Alaw => "PCMA",
    }
}

impl FrameSource for Playback {
    fn next_frame(&mut self, out: &mut Vec<u8>) {
        if let Some(seq) = &mut self.seq {
            if let Some(b) = seq.next_frame().and_then(|f| f.encoded(self.codec)) {
                out.extend_from_slice(b);
                return;
            }
            self.seq = None;
            if let Some(d) = self.done.take() {
                // the core may be gone at shutdown; nothing to tell then
                let _ = d.events.send(MediaEvent::PlaybackFinished {
                    call_id: d.call_id,
                    generation: d.generation,
                });
            }
        }
        out.extend_from_slice(&self.silence);
    }
}

/// How a leg is started.
pub(crate) struct LegStart<'a> {
    pub call_id: &'a str,
    pub appeal: &'a str,
    pub ports: BoundPorts,
    pub neg: Negotiated,
    /// The prompt cache of the configuration the call started with.
    pub prompts: &'a PromptCache,
    pub greeting: Option<&'a media::prompts::PromptName>,
    pub inband: bool,
    pub record: bool,
    pub timeout: Option<Duration>,
}

/// The port pool as call control sees it ([`MediaPorts`]): a pair is bound when the core takes
/// it and its sockets wait here until [`MediaCommand::Start`] hands them to a leg.
#[derive(Clone)]
pub(crate) struct SharedPorts(Arc<Mutex<PortsInner>>);

struct PortsInner {
    pool: PortPool,
    bound: HashMap<u16, BoundPorts>,
}

impl SharedPorts {
    pub fn new(pool: PortPool) -> SharedPorts {
        SharedPorts(Arc::new(Mutex::new(PortsInner {
            pool,
            bound: HashMap::new(),
        })))
    }

    fn lock(&self) -> MutexGuard<'_, PortsInner> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Binds a pair outside of call control (tests of the media edge).
    #[cfg(test)]
    pub fn bind(&self, ip: IpAddr) -> Option<BoundPorts> {
        self.lock().pool.allocate(ip)
    }

    /// The sockets of a pair taken and not started yet.
    fn take(&self, port: u16) -> Option<BoundPorts> {
        self.lock().bound.remove(&port)
    }
}

impl MediaPorts for SharedPorts {
    fn allocate(&mut self, ip: IpAddr) -> Option<u16> {
        let mut inner = self.lock();
        let ports = inner.pool.allocate(ip)?;
        let port = ports.port;
        inner.bound.insert(port, ports);
        Some(port)
    }

    fn release(&mut self, port: u16) {
        let mut inner = self.lock();
        inner.bound.remove(&port);
        inner.pool.release(port);
    }
}

/// The media side of the gateway: carries out the core's [`MediaCommand`]s.
pub(crate) struct MediaEdge {
    ports: SharedPorts,
    /// The running legs, by the Call-ID of the call each carries.
    legs: HashMap<LegId, Arc<LegShared>>,
    /// One channel per media thread.
    to_tick: Vec<std::sync::mpsc::Sender<Arc<LegShared>>>,
    /// The phase and the media thread of the next leg (both round-robin).
    next_phase: usize,
    next_thread: usize,
    events: mpsc::UnboundedSender<MediaEvent>,
    recorder: Recorder,
    /// Music-on-hold loops, built on first use and shared by every caller.
    moh: ::media::moh::MohLibrary,
    /// A fresh in-band detector to clone per leg (its tables take a while to build).
    detector: DtmfDetector,
    /// Start of the tick grid.
    epoch: Instant,
}

impl MediaEdge {
    /// Starts the media thread (and, on first use, the recording writer thread). The media
    /// thread adds the legs' packet counts to `stats`; the receiver resolves when it has ended
    /// after `stop`.
    pub fn start(
        ports: SharedPorts,
        recordings: PathBuf,
        detector: DtmfDetector,
        events: mpsc::UnboundedSender<MediaEvent>,
        stop: CancellationToken,
        stats: Arc<Stats>,
    ) -> (
        MediaEdge,
        impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        let epoch = Instant::now();
        let mut to_tick = Vec::new();
        let mut done = Vec::new();
        for _ in 0..rtp_thread::threads() {
            let (tx, from_core) = std::sync::mpsc::channel();
            to_tick.push(tx);
            done.push(rtp_thread::spawn(
                from_core,
                epoch,
                events.clone(),
                stop.clone(),
                stats.clone(),
            ));
        }
        let done = async move {
            for d in done {
                let _ = d.await;
            }
        };
        (
            MediaEdge {
                ports,
                legs: HashMap::new(),
                to_tick,
                next_phase: 0,
                next_thread: 0,
                events,
                recorder: Recorder::new(recordings),
                moh: ::media::moh::MohLibrary::new(),
                detector,
                epoch,
            },
            done,
        )
    }

    /// The first point at or after `now` of the grid of `phase`: a leg of that phase started
    /// there has a packet due on every tick that serves it.
    fn aligned(&self, now: Instant, phase: usize) -> Instant {
        let base = self.epoch + rtp_thread::SUB_TICK * u32::try_from(phase).unwrap_or(0);
        let since = now.saturating_duration_since(base).as_nanos();
        let p = PTIME.as_nanos();
        let slots = since.div_ceil(p);
        base + Duration::from_nanos(u64::try_from(slots * p).unwrap_or(u64::MAX))
    }

    /// Starts a call's RTP: the leg and its sockets go to the media thread.
    pub fn start_leg(&mut self, now: Instant, s: LegStart<'_>) -> Option<Arc<LegShared>> {
        let rtp = s.ports.rtp;
        let rtcp = s.ports.rtcp;
        let phase = self.next_phase;
        self.next_phase = (phase + 1) % rtp_thread::PHASES;
        let thread = self.next_thread;
        self.next_thread = (thread + 1) % self.to_tick.len().max(1);
        let start = self.aligned(now, phase);
        let wall = SystemTime::now() + start.saturating_duration_since(now);
        let config = LegConfig {
            payload_type: s.neg.audio_pt,
            telephone_event: s.neg.telephone_event,
            remote: s.neg.remote,
            symmetric: true,
            inactivity_timeout: if s.neg.direction.receives() {
                s.timeout
            } else {
                None
            },
            ..LegConfig::default()
        };
        let mut leg = RtpLeg::new(config, start, wall);
        let seq = s.greeting.and_then(|g| s.prompts.sequence([g]).ok());
        leg.set_source(Box::new(Playback {
            seq,
            codec: codec_name(s.neg.law),
            silence: vec![s.neg.law.silence(); 160],
            done: None,
        }));
        leg.set_sending(start, s.neg.direction.sends());
        let record = if s.record {
            self.recorder.open(s.appeal, now)
        } else {
            None
        };
        let shared = Arc::new(LegShared {
            call_id: Arc::from(s.call_id),
            rtp,
            rtcp,
            phase,
            state: Mutex::new(LegState {
                leg,
                law: s.neg.law,
                audio_pt: s.neg.audio_pt,
                inband: s.inband.then(|| self.detector.clone()),
                inband_on: true,
                record,
                message: None,
                closed: false,
                pcm: Vec::with_capacity(320),
                bridge: None,
                rx_packets: 0,
                loss_counted: (None, 0),
            }),
            events: self.events.clone(),
        });
        let sent = self
            .to_tick
            .get(thread)
            .is_some_and(|t| t.send(shared.clone()).is_ok());
        if !sent {
            warn!("the media thread is gone; the call has no media");
        }
        Some(shared)
    }

    /// Starts recording a voice-menu message on `leg` to `<recordings>/<name>.wav` (the same
    /// stereo layout as call recordings: caller left, what we play right); it ends when the
    /// leg is closed. Returns the file.
    pub fn record_message(&mut self, leg: &LegShared, name: &str, now: Instant) -> Option<PathBuf> {
        let tap = self.recorder.open(name, now)?;
        let path = self.recorder.path_for(name);
        let mut st = leg.lock();
        if st.closed {
            tap.close();
            return None;
        }
        if let Some(old) = st.message.replace(tap) {
            old.close();
        }
        Some(path)
    }

    /// Carries out one command of the call control at `now`.
    pub fn execute(&mut self, now: Instant, cmd: MediaCommand) {
        match cmd {
            MediaCommand::Start {
                leg,
                appeal,
                port,
                neg,
                prompts,
                greeting,
                inband,
                record,
                timeout,
            } => {
                let Some(ports) = self.ports.take(port) else {
                    warn!(port, "no bound ports for a new leg; it has no media");
                    return;
                };
                let started = self.start_leg(
                    now,
                    LegStart {
                        call_id: &leg,
                        appeal: &appeal,
                        ports,
                        neg,
                        prompts: &prompts,
                        greeting: greeting.as_ref(),
                        inband,
                        record,
                        timeout,
                    },
                );
                if let Some(started) = started {
                    self.legs.insert(leg, started);
                }
            }
            MediaCommand::Update { leg, neg, timeout } => {
                if let Some(l) = self.legs.get(&leg) {
                    l.update(now, &neg, timeout);
                }
            }
            MediaCommand::Play {
                leg,
                seq,
                generation,
            } => match self.legs.get(&leg) {
                Some(l) => l.play(seq, generation),
                // no media: go on as if it had played
                None => {
                    let _ = self.events.send(MediaEvent::PlaybackFinished {
                        call_id: leg,
                        generation,
                    });
                }
            },
            MediaCommand::PlayMoh {
                leg,
                prompts,
                music,
            } => {
                if let Some(l) = self.legs.get(&leg).cloned() {
                    if let Err(e) = self.play_moh(&l, &prompts, &music) {
                        warn!(%e, "music on hold not loaded; the caller waits in silence");
                    }
                }
            }
            MediaCommand::StopPlayback { leg } => {
                if let Some(l) = self.legs.get(&leg) {
                    l.stop_playback();
                }
            }
            MediaCommand::StopInband { leg } => {
                if let Some(l) = self.legs.get(&leg) {
                    l.stop_inband();
                }
            }
            MediaCommand::RecordMessage { leg, name } => {
                let recording = self
                    .legs
                    .get(&leg)
                    .cloned()
                    .and_then(|l| self.record_message(&l, &name, now));
                if recording.is_none() {
                    let _ = self.events.send(MediaEvent::RecordFailed { call_id: leg });
                }
            }
            MediaCommand::Bridge { a, b } => {
                if let (Some(a), Some(b)) = (self.legs.get(&a), self.legs.get(&b)) {
                    if let Err(e) = self.bridge(a, b) {
                        warn!(error = %e, "could not bridge two legs");
                    }
                }
            }
            MediaCommand::Unbridge { leg } => {
                if let Some(l) = self.legs.get(&leg) {
                    self.unbridge(l);
                }
            }
            MediaCommand::Close { leg } => {
                if let Some(l) = self.legs.remove(&leg) {
                    l.close(now);
                }
            }
        }
    }

    /// Waits for the recording writer to finish every file (at shutdown).
    pub fn finish(self) -> Option<std::thread::JoinHandle<()>> {
        self.recorder.finish()
    }
}

/// Packet counts of the legs served in one tick, added to [`Stats`] together.
#[derive(Debug, Default)]
struct TickCounts {
    sent: u64,
    received: u64,
    lost: u64,
}

impl TickCounts {
    /// Adds the counts to `stats` (a relaxed add per non-zero counter) and starts over.
    fn flush(&mut self, stats: &Stats) {
        let c = std::mem::take(self);
        for (n, a) in [
            (c.sent, &stats.rtp_packets_sent),
            (c.received, &stats.rtp_packets_received),
            (c.lost, &stats.rtp_packets_lost),
        ] {
            if n > 0 {
                a.fetch_add(n, Ordering::Relaxed);
            }
        }
    }
}

/// One tick of one leg; false when the leg is closed and flushed. Its packet counts since
/// the last tick go into `counts`.
fn service(
    l: &LegShared,
    now: Instant,
    out: &mut Vec<MediaEvent>,
    counts: &mut TickCounts,
    packet: &mut Vec<u8>,
) -> bool {
    let mut st = l.lock();
    if !st.closed {
        bridge::before_tick(&mut st, now);
        st.leg.handle_timeout(now);
    }
    counts.received += std::mem::take(&mut st.rx_packets);
    let rx = st.leg.stats().received;
    let (ssrc, counted) = &mut st.loss_counted;
    if *ssrc != rx.ssrc {
        *ssrc = rx.ssrc;
        *counted = 0;
    }
    if rx.lost > *counted {
        counts.lost += rx.lost.abs_diff(*counted);
        *counted = rx.lost;
    }
    while let Some((component, destination)) = st.leg.poll_transmit_into(packet) {
        let sock = match component {
            Component::Rtp => &l.rtp,
            Component::Rtcp => &l.rtcp,
        };
        match sock.send_to(packet, destination) {
            Ok(_) if component == Component::Rtp => counts.sent += 1,
            Ok(_) => {}
            Err(e) => debug!(to = %destination, error = %e, "RTP send failed"),
        }
        if component == Component::Rtp && (st.record.is_some() || st.message.is_some()) {
            if let (Some(pt), Some(ts), Some(payload)) = rtp_fields(packet) {
                if pt == st.audio_pt {
                    let law = st.law;
                    if let Some(tap) = &mut st.record {
                        tap.frame(Channel::Ours, now, ts, law, payload);
                    }
                    if let Some(tap) = &mut st.message {
                        tap.frame(Channel::Ours, now, ts, law, payload);
                    }
                }
            }
        }
    }
    drain_events(l, &mut st, now, out);
    !st.closed
}

/// Payload type, timestamp and payload of a packet we built (no CSRC, no extension).
fn rtp_fields(p: &[u8]) -> (Option<u8>, Option<u32>, Option<&[u8]>) {
    let pt = p.get(1).map(|b| b & 0x7F);
    let ts = p
        .get(4..8)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_be_bytes);
    (pt, ts, p.get(12..))
}

/// Turns the leg's events into media events (digits, inactivity) and handles the audio that
/// arrived (bridge relay, in-band DTMF, recording), giving its buffer back to the leg.
fn drain_events(l: &LegShared, st: &mut LegState, now: Instant, out: &mut Vec<MediaEvent>) {
    while let Some(ev) = st.leg.poll_event() {
        match ev {
            Event::Dtmf(d) => {
                bridge::relay_digit(st, d);
                out.push(MediaEvent::Digit {
                    call_id: l.call_id.clone(),
                    digit: d.as_char(),
                    via: DtmfVia::Rfc4733,
                })
            }
            Event::Inactive => out.push(MediaEvent::Inactive {
                call_id: l.call_id.clone(),
            }),
            Event::Latched { addr, ssrc } => {
                debug!(call_id = %l.call_id, %addr, ssrc, "RTP latched")
            }
            Event::Bye => debug!(call_id = %l.call_id, "RTCP BYE from the peer"),
            Event::Media {
                payload_type,
                timestamp,
                payload,
                ..
            } => {
                if payload_type != st.audio_pt {
                    st.leg.recycle(payload);
                    continue; // comfort noise and the like
                }
                let law = st.law;
                bridge::relay_audio(st, &payload);
                if let Some(det) = st.inband.as_mut().filter(|_| st.inband_on) {
                    let mut pcm = std::mem::take(&mut st.pcm);
                    pcm.clear();
                    law.decode_into(&payload, &mut pcm);
                    for e in det.push(&pcm) {
                        if let DtmfEvent::Pressed { digit, .. } = e {
                            out.push(MediaEvent::Digit {
                                call_id: l.call_id.clone(),
                                digit,
                                via: DtmfVia::Inband,
                            });
                        }
                    }
                    st.pcm = pcm;
                }
                if let Some(tap) = &mut st.record {
                    tap.frame(Channel::Caller, now, timestamp, law, &payload);
                }
                if let Some(tap) = &mut st.message {
                    tap.frame(Channel::Caller, now, timestamp, law, &payload);
                }
                st.leg.recycle(payload);
            }
        }
    }
}

// --- recording -----------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Channel {
    /// Left: what the caller sent.
    Caller = 0,
    /// Right: what we played.
    Ours = 1,
}

enum RecMsg {
    Open {
        id: u64,
        path: PathBuf,
    },
    Frame {
        id: u64,
        channel: Channel,
        /// Sample position from the start of the recording.
        pos: u64,
        law: Law,
        payload: Vec<u8>,
    },
    Close {
        id: u64,
    },
}

/// Places each direction's frames on the recording's sample timeline: the first packet of a
/// stream goes where the wall clock says, the following ones by their RTP timestamps (so
/// jitter does not smear the audio and loss leaves silence). A stream whose timestamps stray
/// more than two seconds from the wall clock (new SSRC, peer restart) is placed anew.
struct RecordTap {
    id: u64,
    tx: std::sync::mpsc::Sender<RecMsg>,
    started: Instant,
    bases: [Option<(u32, u64)>; 2],
}

const SLACK_SAMPLES: i64 = 16_000;

impl RecordTap {
    fn frame(&mut self, channel: Channel, now: Instant, ts: u32, law: Law, payload: &[u8]) {
        let wall = (now.saturating_duration_since(self.started).as_micros() * 8 / 1000) as i64;
        let base = &mut self.bases[channel as usize];
        let (b_ts, b_pos) = *base.get_or_insert((ts, wall as u64));
        let mut pos = b_pos as i64 + i64::from(ts.wrapping_sub(b_ts) as i32);
        if (pos - wall).abs() > SLACK_SAMPLES {
            *base = Some((ts, wall as u64));
            pos = wall;
        }
        let _ = self.tx.send(RecMsg::Frame {
            id: self.id,
            channel,
            pos: pos.max(0) as u64,
            law,
            payload: payload.to_vec(),
        });
    }

    fn close(self) {
        let _ = self.tx.send(RecMsg::Close { id: self.id });
    }
}

/// The writer thread's handle.
struct Recorder {
    dir: PathBuf,
    tx: Option<std::sync::mpsc::Sender<RecMsg>>,
    thread: Option<std::thread::JoinHandle<()>>,
    next_id: u64,
}

impl Recorder {
    fn new(dir: PathBuf) -> Recorder {
        Recorder {
            dir,
            tx: None,
            thread: None,
            next_id: 1,
        }
    }

    fn open(&mut self, appeal: &str, now: Instant) -> Option<RecordTap> {
        if self.tx.is_none() {
            let (tx, rx) = std::sync::mpsc::channel();
            let t = std::thread::Builder::new()
                .name("recordings".into())
                .spawn(move || writer_thread(rx));
            match t {
                Ok(t) => {
                    self.thread = Some(t);
                    self.tx = Some(tx);
                }
                Err(e) => {
                    warn!(error = %e, "cannot start the recording writer");
                    return None;
                }
            }
        }
        let tx = self.tx.clone()?;
        let path = self.path_for(appeal);
        let id = self.next_id;
        self.next_id += 1;
        tx.send(RecMsg::Open { id, path }).ok()?;
        Some(RecordTap {
            id,
            tx,
            started: now,
            bases: [None, None],
        })
    }

    /// `<dir>/<name>.wav`, with anything but letters, digits, `-` and `_` left out of the name.
    fn path_for(&self, name: &str) -> PathBuf {
        calls::recording_file(&self.dir, name)
    }

    fn finish(mut self) -> Option<std::thread::JoinHandle<()>> {
        self.tx = None;
        self.thread.take()
    }
}

/// One open recording: stereo frames not yet written, from sample `written` on.
struct Recording {
    path: PathBuf,
    wav: WavWriter<BufWriter<std::fs::File>>,
    written: u64,
    pending: VecDeque<[i16; 2]>,
}

/// Frames stay this long in memory for late packets before they are written.
const HOLD_SAMPLES: usize = 8_000;

impl Recording {
    fn put(&mut self, channel: Channel, pos: u64, law: Law, payload: &[u8]) {
        let skip = self.written.saturating_sub(pos) as usize;
        let start = pos.saturating_sub(self.written) as usize;
        for (i, code) in payload.iter().skip(skip).enumerate() {
            let idx = start + i;
            while self.pending.len() <= idx {
                self.pending.push_back([0, 0]);
            }
            if let Some(f) = self.pending.get_mut(idx) {
                f[channel as usize] = law.decode(*code);
            }
        }
    }

    fn flush(&mut self, keep: usize) -> std::io::Result<()> {
        if self.pending.len() <= keep {
            return Ok(());
        }
        let n = self.pending.len() - keep;
        let mut buf = Vec::with_capacity(n * 2);
        for f in self.pending.drain(..n) {
            buf.extend_from_slice(&f);
        }
        self.written += n as u64;
        self.wav.write_samples(&buf)
    }
}

fn writer_thread(rx: std::sync::mpsc::Receiver<RecMsg>) {
    let mut open: HashMap<u64, Recording> = HashMap::new();
    let spec = Spec {
        channels: 2,
        sample_rate: 8000,
    };
    let finish = |mut r: Recording| {
        let res = r.flush(0).and_then(|()| r.wav.finish().map(drop));
        match res {
            Ok(()) => {
                info!(file = %r.path.display(), seconds = r.written / 8000, "recording finished")
            }
            Err(e) => {
                warn!(file = %r.path.display(), error = %e, "recording could not be finished")
            }
        }
    };
    for msg in rx {
        match msg {
            RecMsg::Open { id, path } => {
                if let Some(dir) = path.parent() {
                    let _ = std::fs::create_dir_all(dir);
                }
                match std::fs::File::create(&path)
                    .and_then(|f| WavWriter::new(BufWriter::new(f), spec))
                {
                    Ok(wav) => {
                        open.insert(
                            id,
                            Recording {
                                path,
                                wav,
                                written: 0,
                                pending: VecDeque::new(),
                            },
                        );
                    }
                    Err(e) => warn!(file = %path.display(), error = %e, "cannot record the call"),
                }
            }
            RecMsg::Frame {
                id,
                channel,
                pos,
                law,
                payload,
            } => {
                if let Some(r) = open.get_mut(&id) {
                    r.put(channel, pos, law, &payload);
                    if r.pending.len() > 2 * HOLD_SAMPLES {
                        if let Err(e) = r.flush(HOLD_SAMPLES) {
                            warn!(file = %r.path.display(), error = %e, "recording write failed; recording stopped");
                            open.remove(&id);
                        }
                    }
                }
            }
            RecMsg::Close { id } => {
                if let Some(r) = open.remove(&id) {
                    finish(r);
                }
            }
        }
    }
    for (_, r) in open.drain() {
        finish(r);
    }
}

/// Rewrites the header sizes of recordings cut short by a crash (at start-up).
pub(crate) fn repair_recordings(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        if path.extension().and_then(|x| x.to_str()) != Some("wav") {
            continue;
        }
        let res = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(media::wav::WavError::from)
            .and_then(|mut f| media::wav::repair(&mut f));
        match res {
            Ok(media::wav::Repair::Intact) => {}
            Ok(media::wav::Repair::Fixed { data_len }) => {
                info!(file = %path.display(), seconds = data_len / 32_000, "repaired a recording cut short")
            }
            Err(err) => warn!(file = %path.display(), error = %err, "cannot repair recording"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_hands_out_even_pairs_inside_the_range_and_reuses_freed_ones() {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        // find a free even pair to build a range of one pair (plus an odd start)
        let probe = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let p = probe.local_addr().unwrap().port() & !1;
        drop(probe);
        let mut pool = PortPool::new(p - 1, p + 1);
        assert_eq!(pool.pairs(), 1);
        let a = pool.allocate(ip);
        let Some(a) = a else {
            return; // someone else grabbed the port meanwhile; nothing to show
        };
        assert_eq!(a.port, p);
        assert_eq!(a.rtcp.local_addr().unwrap().port(), p + 1);
        assert!(pool.allocate(ip).is_none(), "range exhausted");
        pool.release(a.port);
        drop(a);
        assert_eq!(pool.used(), 0);
        assert_eq!(pool.allocate(ip).map(|b| b.port), Some(p));
        assert_eq!(PortPool::new(10_001, 10_002).pairs(), 0);
        assert_eq!(PortPool::new(10_000, 10_003).pairs(), 2);
    }

    #[test]
    fn recording_places_frames_by_timestamp() {
        let dir = std::env::temp_dir().join(format!("hotline-rec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.wav");
        let f = std::fs::File::create(&path).unwrap();
        let mut r = Recording {
            path: path.clone(),
            wav: WavWriter::new(
                BufWriter::new(f),
                Spec {
                    channels: 2,
                    sample_rate: 8000,
                },
            )
            .unwrap(),
            written: 0,
            pending: VecDeque::new(),
        };
        // μ-law 0x00 is -32124; 0x80 is +32124
        r.put(Channel::Caller, 160, Law::Ulaw, &[0x00; 160]);
        r.put(Channel::Ours, 0, Law::Ulaw, &[0x80; 320]);
        r.flush(0).unwrap();
        r.wav.finish().unwrap();
        let samples: Vec<i16> = hound::WavReader::open(&path)
            .unwrap()
            .into_samples()
            .map(Result::unwrap)
            .collect();
        assert_eq!(samples.len(), 640);
        assert_eq!(&samples[0..2], &[0, 32124]);
        assert_eq!(&samples[320..322], &[-32124, 32124]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
