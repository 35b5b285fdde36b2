//! One call leg's RTP/RTCP session as a sans-IO state machine.
//!
//! The contract follows quinn's `Connection`: inputs are [`RtpLeg::handle_datagram`],
//! [`RtpLeg::handle_rtcp`] and [`RtpLeg::handle_timeout`]; commands change what is sent
//! ([`RtpLeg::set_source`], [`RtpLeg::set_sending`], [`RtpLeg::send_dtmf`], …); outputs are drained
//! after every input, in this order: [`RtpLeg::poll_transmit`] until `None`,
//! [`RtpLeg::poll_event`] until `None`, then [`RtpLeg::poll_timeout`] tells when to call
//! `handle_timeout` next. The owner (the gateway's UDP task or a shared pacing tick) holds the
//! sockets and the clock.
//!
//! Symmetric RTP: the first RTP packet's source address becomes the destination of our packets
//! (callers behind NAT advertise addresses they cannot be reached at). Packets from any other
//! address are dropped, except that the leg re-latches to a new address after
//! [`RELATCH_PACKETS`] consecutive packets of one stream from it, when that stream has a new SSRC
//! (the peer moved its media, e.g. to another media server) or the latched address has been silent
//! for [`RELATCH_SILENCE`] (a NAT binding changed). A new SSRC from the latched address is
//! simply followed.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rtp_rs::RtpReader;

use super::rtcp::{self, ReportBlock, RtcpPacket, SenderInfo};
use super::{FrameSource, NoAudio, ReceiverStats, RtpReceiver, RtpSender, SenderStats};
use crate::dtmf4733::{Digit, DtmfReceiver, DtmfSender, EventPacket};

/// Consecutive packets from a new address needed to re-latch to it.
pub const RELATCH_PACKETS: u8 = 3;
/// How long the latched address must be silent before the same SSRC may move to a new address.
pub const RELATCH_SILENCE: Duration = Duration::from_millis(500);
/// Packet buffers a leg keeps for reuse (a few cover a slot's audio, a digit and RTCP).
const MAX_SPARE: usize = 4;
/// Seconds between the NTP epoch (1900) and the Unix epoch (1970).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// How a leg is set up (from the negotiated SDP and the line's configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegConfig {
    /// Payload type of our audio (0 PCMU, 8 PCMA).
    pub payload_type: u8,
    /// Media clock rate.
    pub clock_rate: u32,
    /// Packet time.
    pub ptime: Duration,
    /// Negotiated telephone-event payload type, if any.
    pub telephone_event: Option<u8>,
    /// Where the SDP says to send RTP (until latching learns better).
    pub remote: Option<SocketAddr>,
    /// Learn the destination from incoming packets (symmetric RTP).
    pub symmetric: bool,
    /// End the call when no RTP arrives for this long (Asterisk's `rtptimeout`); `None` disables.
    pub inactivity_timeout: Option<Duration>,
    /// Mean RTCP report interval (randomised ±50 %, RFC 3550 §6.2).
    pub rtcp_interval: Duration,
}

impl Default for LegConfig {
    fn default() -> Self {
        LegConfig {
            payload_type: 0,
            clock_rate: 8000,
            ptime: Duration::from_millis(20),
            telephone_event: Some(101),
            remote: None,
            symmetric: true,
            inactivity_timeout: None,
            rtcp_interval: Duration::from_secs(5),
        }
    }
}

/// Which socket a datagram belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    /// The even RTP port.
    Rtp,
    /// The RTCP port (RTP + 1).
    Rtcp,
}

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Send from this component's socket.
    pub component: Component,
    /// To this address.
    pub destination: SocketAddr,
    /// The datagram.
    pub payload: Vec<u8>,
}

/// Something the owner of the leg must know about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// An audio packet (not a duplicate; in arrival order).
    Media {
        /// Payload type.
        payload_type: u8,
        /// Marker bit (start of a talk-spurt).
        marker: bool,
        /// Sequence number.
        sequence: u16,
        /// RTP timestamp.
        timestamp: u32,
        /// Encoded audio.
        payload: Vec<u8>,
    },
    /// A DTMF key press received as RFC 4733 events (one per press).
    Dtmf(Digit),
    /// Our packets now go to `addr`, whose stream has SSRC `ssrc`.
    Latched {
        /// The source address learned.
        addr: SocketAddr,
        /// The stream's SSRC.
        ssrc: u32,
    },
    /// No RTP arrived for the inactivity timeout: the call is dead. Reported once.
    Inactive,
    /// The peer sent an RTCP BYE.
    Bye,
}

/// Counters of a leg.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LegStats {
    /// What we sent.
    pub sent: SenderStats,
    /// What we received from the current remote source.
    pub received: ReceiverStats,
    /// The peer's last report about our stream.
    pub remote_report: Option<ReportBlock>,
    /// Round-trip time computed from the peer's LSR/DLSR.
    pub round_trip: Option<Duration>,
    /// RTP packets dropped because they came from an address we are not latched to.
    pub foreign: u64,
    /// Datagrams that did not parse.
    pub malformed: u64,
}

#[derive(Debug, Clone, Copy)]
struct Candidate {
    addr: SocketAddr,
    ssrc: u32,
    next_seq: u16,
    count: u8,
}

/// One RTP leg: sender, receiver, RFC 4733 in both directions, latching, RTCP, timeouts.
pub struct RtpLeg {
    config: LegConfig,
    sender: RtpSender,
    receiver: RtpReceiver,
    source: Box<dyn FrameSource>,
    dtmf_rx: DtmfReceiver,
    dtmf_tx: DtmfSender,
    sending: bool,
    target: Option<SocketAddr>,
    rtcp_target: Option<SocketAddr>,
    latched: Option<(SocketAddr, u32)>,
    latched_last_rx: Option<Instant>,
    candidate: Option<Candidate>,
    last_rx: Instant,
    inactive_reported: bool,
    next_rtcp: Instant,
    last_sr: Option<(u32, Instant)>,
    ntp_base: (Instant, SystemTime),
    cname: String,
    stats: LegStats,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    /// Emptied packet buffers, reused for the next datagrams and media payloads so that a leg
    /// in steady state allocates nothing per packet (see [`RtpLeg::poll_transmit_into`] and
    /// [`RtpLeg::recycle`]).
    spare: Vec<Vec<u8>>,
}

impl std::fmt::Debug for RtpLeg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RtpLeg")
            .field("ssrc", &self.sender.ssrc())
            .field("target", &self.target)
            .field("latched", &self.latched)
            .field("sending", &self.sending)
            .finish_non_exhaustive()
    }
}

fn rtcp_addr_for(rtp: SocketAddr) -> SocketAddr {
    let mut a = rtp;
    a.set_port(rtp.port().wrapping_add(1));
    a
}

impl RtpLeg {
    /// A leg created at `now`; `wallclock` is the wall-clock time at `now` (only used for the
    /// NTP timestamps of RTCP sender reports). It sends nothing until [`RtpLeg::set_source`].
    pub fn new(config: LegConfig, now: Instant, wallclock: SystemTime) -> Self {
        let sender = RtpSender::new(config.payload_type, config.clock_rate, config.ptime, now);
        let mut receiver = RtpReceiver::new(config.clock_rate, now);
        receiver.exclude_from_jitter(config.telephone_event);
        let cname = format!("hotline-{:08x}", sender.ssrc());
        let first_rtcp = now + jittered(config.rtcp_interval / 2);
        RtpLeg {
            dtmf_tx: DtmfSender::new(config.clock_rate),
            target: config.remote,
            rtcp_target: config.remote.map(rtcp_addr_for),
            config,
            sender,
            receiver,
            source: Box::new(NoAudio),
            dtmf_rx: DtmfReceiver::new(),
            sending: true,
            latched: None,
            latched_last_rx: None,
            candidate: None,
            last_rx: now,
            inactive_reported: false,
            next_rtcp: first_rtcp,
            last_sr: None,
            ntp_base: (now, wallclock),
            cname,
            stats: LegStats::default(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            spare: Vec::new(),
        }
    }

    /// Our SSRC.
    pub fn ssrc(&self) -> u32 {
        self.sender.ssrc()
    }

    /// Where our RTP currently goes.
    pub fn destination(&self) -> Option<SocketAddr> {
        self.target
    }

    /// The negotiated telephone-event payload type (`None`: the peer takes no RFC 4733).
    pub fn telephone_event(&self) -> Option<u8> {
        self.config.telephone_event
    }

    /// Counters.
    pub fn stats(&self) -> LegStats {
        LegStats {
            sent: self.sender.stats(),
            received: self.receiver.stats(),
            ..self.stats
        }
    }

    /// Replaces what we play (a prompt, music on hold, the other leg of a bridge). The next
    /// packet starts a talk-spurt.
    pub fn set_source(&mut self, source: Box<dyn FrameSource>) {
        self.source = source;
        self.sender.mark_next();
    }

    /// Starts or stops sending audio (hold). Stopped slots still advance the RTP timestamp.
    pub fn set_sending(&mut self, now: Instant, sending: bool) {
        if sending && !self.sending {
            self.sender.skip_due(now);
            self.sender.mark_next();
        }
        self.sending = sending;
    }

    /// New remote address from a re-INVITE's SDP; latching starts over.
    pub fn set_remote(&mut self, remote: Option<SocketAddr>) {
        self.target = remote;
        self.rtcp_target = remote.map(rtcp_addr_for);
        self.latched = None;
        self.candidate = None;
    }

    /// New audio payload type (codec change in a re-INVITE).
    pub fn set_payload_type(&mut self, payload_type: u8) {
        self.config.payload_type = payload_type;
        self.sender.set_payload_type(payload_type);
    }

    /// Changes the inactivity timeout (e.g. a longer one or none while on hold), counting from
    /// `now`.
    pub fn set_inactivity_timeout(&mut self, now: Instant, timeout: Option<Duration>) {
        self.config.inactivity_timeout = timeout;
        self.last_rx = now;
        self.inactive_reported = false;
    }

    /// Sends `digit` as RFC 4733 events for `duration`; audio pauses meanwhile. Returns false
    /// when no telephone-event payload type was negotiated or another digit is still going out.
    pub fn send_dtmf(&mut self, now: Instant, digit: Digit, duration: Duration) -> bool {
        if self.config.telephone_event.is_none() {
            return false;
        }
        let ts = self.sender.next_timestamp();
        self.dtmf_tx.start(now, digit, duration, ts)
    }

    /// Queues an RTCP BYE (when the call ends).
    pub fn close(&mut self, now: Instant) {
        if let Some(dest) = self.rtcp_target {
            let mut buf = self.report(now);
            rtcp::write_bye(&mut buf, self.sender.ssrc());
            self.transmits.push_back(Transmit {
                component: Component::Rtcp,
                destination: dest,
                payload: buf,
            });
        }
    }

    /// An RTP datagram from `from` arrived at `now`.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        let Ok(header) = RtpReader::new(data) else {
            self.stats.malformed += 1;
            return;
        };
        let ssrc = header.ssrc();
        let seq = u16::from(header.sequence_number());
        if self.config.symmetric && !self.accept_source(now, from, ssrc, seq) {
            self.stats.foreign += 1;
            return;
        }
        self.last_rx = now;
        self.inactive_reported = false;
        let Ok(rx) = self.receiver.handle(now, data) else {
            self.stats.malformed += 1;
            return;
        };
        if Some(rx.payload_type) == self.config.telephone_event {
            let h = EventPacket {
                ssrc: rx.ssrc,
                sequence: rx.sequence,
                timestamp: rx.timestamp,
                marker: rx.marker,
            };
            if let Some(d) = self.dtmf_rx.handle(now, h, rx.payload) {
                self.events.push_back(Event::Dtmf(d));
            }
            return;
        }
        if rx.duplicate || rx.sequence_jump {
            return;
        }
        let mut payload = self.spare.pop().unwrap_or_default();
        payload.clear();
        payload.extend_from_slice(rx.payload);
        self.events.push_back(Event::Media {
            payload_type: rx.payload_type,
            marker: rx.marker,
            sequence: rx.sequence,
            timestamp: rx.timestamp,
            payload,
        });
    }

    /// Latching rules (see the module doc). Returns whether the packet is accepted.
    fn accept_source(&mut self, now: Instant, from: SocketAddr, ssrc: u32, seq: u16) -> bool {
        match self.latched {
            None => {
                self.latch(now, from, ssrc);
                true
            }
            Some((addr, latched_ssrc)) if addr == from => {
                self.candidate = None;
                self.latched_last_rx = Some(now);
                if latched_ssrc != ssrc {
                    self.latch(now, from, ssrc);
                }
                true
            }
            Some((_, latched_ssrc)) => {
                let c = match self.candidate {
                    Some(c) if c.addr == from && c.ssrc == ssrc && c.next_seq == seq => Candidate {
                        next_seq: seq.wrapping_add(1),
                        count: c.count.saturating_add(1),
                        ..c
                    },
                    _ => Candidate {
                        addr: from,
                        ssrc,
                        next_seq: seq.wrapping_add(1),
                        count: 1,
                    },
                };
                self.candidate = Some(c);
                let old_silent = self
                    .latched_last_rx
                    .is_none_or(|t| now.saturating_duration_since(t) >= RELATCH_SILENCE);
                if c.count >= RELATCH_PACKETS && (ssrc != latched_ssrc || old_silent) {
                    self.candidate = None;
                    self.latch(now, from, ssrc);
                    true
                } else {
                    false
                }
            }
        }
    }

    fn latch(&mut self, now: Instant, addr: SocketAddr, ssrc: u32) {
        let moved = self.latched.is_none_or(|(a, _)| a != addr);
        self.latched = Some((addr, ssrc));
        self.latched_last_rx = Some(now);
        if moved {
            self.target = Some(addr);
            self.rtcp_target = Some(rtcp_addr_for(addr));
        }
        self.events.push_back(Event::Latched { addr, ssrc });
    }

    /// An RTCP datagram from `from` arrived at `now`.
    pub fn handle_rtcp(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        if self.config.symmetric {
            match self.latched {
                Some((addr, _)) if addr.ip() != from.ip() => {
                    self.stats.foreign += 1;
                    return;
                }
                _ => self.rtcp_target = Some(from),
            }
        }
        let Ok(packets) = rtcp::parse(data) else {
            self.stats.malformed += 1;
            return;
        };
        for p in packets {
            let reports = match p {
                RtcpPacket::SenderReport { info, reports, .. } => {
                    self.last_sr = Some((rtcp::ntp_middle(info.ntp), now));
                    reports
                }
                RtcpPacket::ReceiverReport { reports, .. } => reports,
                RtcpPacket::Bye { .. } => {
                    self.events.push_back(Event::Bye);
                    continue;
                }
                RtcpPacket::Other { .. } => continue,
            };
            if let Some(b) = reports.into_iter().find(|b| b.ssrc == self.sender.ssrc()) {
                self.stats.remote_report = Some(b);
                if b.last_sr != 0 {
                    let now_mid = rtcp::ntp_middle(self.ntp(now));
                    let rtt = now_mid
                        .wrapping_sub(b.last_sr)
                        .wrapping_sub(b.delay_since_last_sr);
                    if rtt < 0x8000_0000 {
                        self.stats.round_trip = Some(Duration::from_nanos(
                            u64::from(rtt) * 1_000_000_000 / 65_536,
                        ));
                    }
                }
            }
        }
    }

    /// Sends what is due at `now` and fires timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(ev) = self.dtmf_tx.poll(now) {
            let pt = self.config.telephone_event.unwrap_or(101);
            let mut pkt = self.spare.pop().unwrap_or_default();
            self.sender.build_into(
                pt,
                ev.marker,
                ev.timestamp,
                &ev.payload.to_bytes(),
                &mut pkt,
            );
            self.push_rtp(pkt);
        }
        if self.sending && self.target.is_some() && !self.dtmf_tx.is_active() {
            loop {
                let mut pkt = self.spare.pop().unwrap_or_default();
                if !self
                    .sender
                    .poll_transmit_into(now, self.source.as_mut(), &mut pkt)
                {
                    self.recycle(pkt);
                    break;
                }
                self.push_rtp(pkt);
            }
        } else if self.sending {
            self.sender.skip_due(now);
        }
        if let Some(timeout) = self.config.inactivity_timeout {
            if !self.inactive_reported && now >= self.last_rx + timeout {
                self.inactive_reported = true;
                self.events.push_back(Event::Inactive);
            }
        }
        if now >= self.next_rtcp {
            self.next_rtcp = now + jittered(self.config.rtcp_interval);
            if let Some(dest) = self.rtcp_target {
                let payload = self.report(now);
                self.transmits.push_back(Transmit {
                    component: Component::Rtcp,
                    destination: dest,
                    payload,
                });
            }
        }
    }

    fn push_rtp(&mut self, payload: Vec<u8>) {
        match self.target {
            Some(dest) => self.transmits.push_back(Transmit {
                component: Component::Rtp,
                destination: dest,
                payload,
            }),
            None => self.recycle(payload),
        }
    }

    /// Gives a buffer back to the leg for its next packets: the payload of an
    /// [`Event::Media`] once the owner is done with it. Optional (a dropped buffer is simply
    /// allocated anew), and only a few are kept.
    pub fn recycle(&mut self, buf: Vec<u8>) {
        if self.spare.len() < MAX_SPARE && buf.capacity() > 0 {
            self.spare.push(buf);
        }
    }

    fn ntp(&self, now: Instant) -> u64 {
        let (base, wall) = self.ntp_base;
        let wall = if now >= base {
            wall.checked_add(now - base)
        } else {
            wall.checked_sub(base - now)
        }
        .unwrap_or(wall);
        let since_unix = wall.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = since_unix.as_secs() + NTP_UNIX_OFFSET;
        let frac = (u64::from(since_unix.subsec_nanos()) << 32) / 1_000_000_000;
        (secs << 32) | frac
    }

    /// A compound SR or RR + SDES CNAME for `now` (RFC 3550 §6.4).
    fn report(&mut self, now: Instant) -> Vec<u8> {
        let mut blocks = Vec::new();
        if let (Some(loss), Some(ssrc)) = (
            self.receiver.take_interval_loss(),
            self.receiver.remote_ssrc(),
        ) {
            let st = self.receiver.stats();
            let (last_sr, dlsr) = match self.last_sr {
                Some((mid, at)) => {
                    let d = now.saturating_duration_since(at);
                    (mid, (d.as_nanos() * 65_536 / 1_000_000_000) as u32)
                }
                None => (0, 0),
            };
            blocks.push(ReportBlock {
                ssrc,
                fraction_lost: loss.fraction_lost,
                cumulative_lost: loss.cumulative_lost,
                highest_sequence: st.highest_sequence as u32,
                jitter: st.jitter as u32,
                last_sr,
                delay_since_last_sr: dlsr,
            });
        }
        let mut buf = Vec::with_capacity(100);
        let ssrc = self.sender.ssrc();
        if self.sender.has_sent() {
            let s = self.sender.stats();
            let info = SenderInfo {
                ntp: self.ntp(now),
                rtp_timestamp: self.sender.timestamp_at(now),
                packet_count: s.packets as u32,
                octet_count: s.octets as u32,
            };
            rtcp::write_sr(&mut buf, ssrc, &info, &blocks);
        } else {
            rtcp::write_rr(&mut buf, ssrc, &blocks);
        }
        rtcp::write_sdes_cname(&mut buf, ssrc, &self.cname);
        buf
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next datagram to send, swapped into `buf` (its old contents are dropped and its
    /// allocation kept by the leg for a later packet): the sending loop keeps one buffer and
    /// the leg a few, so steady-state sending allocates nothing. Returns where to send it.
    pub fn poll_transmit_into(&mut self, buf: &mut Vec<u8>) -> Option<(Component, SocketAddr)> {
        let t = self.transmits.pop_front()?;
        let old = std::mem::replace(buf, t.payload);
        self.recycle(old);
        Some((t.component, t.destination))
    }

    /// The next event for the owner.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`RtpLeg::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t = self.next_rtcp;
        if self.sending {
            t = t.min(self.sender.next_send_at());
        }
        if let Some(d) = self.dtmf_tx.poll_timeout() {
            t = t.min(d);
        }
        if let (Some(timeout), false) = (self.config.inactivity_timeout, self.inactive_reported) {
            t = t.min(self.last_rx + timeout);
        }
        Some(t)
    }
}

/// `interval` scaled by a random factor in [0.5, 1.5) (RFC 3550 §6.3.1).
fn jittered(interval: Duration) -> Duration {
    interval.mul_f64(0.5 + rand::random::<f64>())
}
