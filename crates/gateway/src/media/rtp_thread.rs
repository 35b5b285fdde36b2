//! The media thread: one OS thread that sends and receives the RTP and RTCP of every leg.
//!
//! It runs on a 1 ms grid of sub-ticks anchored at the media edge's epoch, always sleeping to
//! an absolute deadline (`epoch + k · 1 ms`), so it never drifts. Each leg has a *phase*
//! (0‥19, handed out round-robin by [`super::MediaEdge::start_leg`]) and is served on the
//! sub-ticks `phase + 20 n`, so its packets leave every 20 ms at the same point of the period
//! and 2 000 legs are 20 small batches instead of one burst.
//!
//! Each sub-tick:
//! 1. takes the legs the core started since the last one (a channel);
//! 2. **receives**: asks the kernel (epoll through `mio`, with a zero timeout) which sockets have
//!    datagrams and drains each of them with non-blocking `recv_from` — no task and no wake-up
//!    per packet, and at most 1 ms between a packet's arrival and its handling (latching, RTCP,
//!    RFC 4733 and in-band DTMF, bridging, recording);
//! 3. **sends**: for the legs of this phase, runs the leg's timers (its packet due, RTCP, the
//!    inactivity timeout) and sends what it queued from one reused buffer;
//! 4. adds the packet counts to [`Stats`] and hands media events to the core.
//!
//! With no leg at all the thread blocks on the channel instead of ticking. It asks for nice −10
//! ([`MEDIA_NICE`]) when allowed: the receivers its packets wake would otherwise preempt it.

use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use media::rtp::Component;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::{drain_events, LegShared, MediaEvent, TickCounts, PTIME};
use crate::Stats;

/// How many media threads the edge runs: one per two cores, at least one. On a 2-core machine
/// one, so that an overloaded media path can never take the core SIP needs (measured: two
/// threads there halved the 1 000-call jitter but the IVR call rate fell from 600/s to under
/// 400/s, docs/BENCHMARKS.md). Legs are spread over them round-robin; a bridge may join legs
/// of different threads (the inboxes are shared).
pub(crate) fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
}

/// Length of a sub-tick.
pub(crate) const SUB_TICK: Duration = Duration::from_millis(1);
/// Sub-ticks per packet time: the number of phases.
pub(crate) const PHASES: usize = 20;
/// How long the idle thread (no legs) waits for a leg before it looks at the stop token again.
const IDLE_WAIT: Duration = Duration::from_millis(50);
/// Receive errors in a row after which a socket is left alone until its next readiness.
const MAX_ERRORS: u32 = 8;
/// Readiness events taken from the kernel per `epoll_wait`.
const EVENTS: usize = 1024;

/// Starts the media thread. The receiver resolves when the thread has ended (after `stop`,
/// having flushed the RTCP BYEs of the legs closed by then).
pub(super) fn spawn(
    new_legs: Receiver<Arc<LegShared>>,
    epoch: Instant,
    events: mpsc::UnboundedSender<MediaEvent>,
    stop: CancellationToken,
    stats: Arc<Stats>,
) -> oneshot::Receiver<()> {
    let (done_tx, done_rx) = oneshot::channel();
    let poll = match Poll::new() {
        Ok(p) => p,
        Err(e) => {
            warn!(error = %e, "cannot create the media poller; calls will have no media");
            return done_rx;
        }
    };
    let mut m = MediaThread {
        poll,
        ready: Events::with_capacity(EVENTS),
        slots: Vec::new(),
        free: Vec::new(),
        groups: (0..PHASES).map(|_| Vec::new()).collect(),
        live: 0,
        new_legs,
        epoch,
        events,
        stop,
        stats,
        counts: TickCounts::default(),
        out: Vec::new(),
        buf: vec![0; 2048],
        packet: Vec::new(),
    };
    let spawned = std::thread::Builder::new()
        .name("media".into())
        .spawn(move || {
            raise_priority();
            m.run();
            let _ = done_tx.send(());
        });
    if let Err(e) = spawned {
        warn!(error = %e, "cannot start the media thread; calls will have no media");
    }
    done_rx
}

/// The nice value the media thread asks for: above the SIP and appeal threads and anything
/// else on the machine, so that a busy machine delays its ticks (jitter on every call) less.
const MEDIA_NICE: i32 = -10;

/// Gives the calling thread (the media thread) [`MEDIA_NICE`] when the daemon may (root or
/// `CAP_SYS_NICE`); otherwise it keeps the process's nice value.
fn raise_priority() {
    let tid = rustix::thread::gettid();
    match rustix::process::setpriority_process(Some(tid), MEDIA_NICE) {
        Ok(()) => debug!(nice = MEDIA_NICE, "media thread priority raised"),
        Err(e) => debug!(error = %e, "media thread keeps the normal priority"),
    }
}

struct MediaThread {
    poll: Poll,
    ready: Events,
    /// Legs by slot; a slot's tokens are `2 · slot` (RTP) and `2 · slot + 1` (RTCP).
    slots: Vec<Option<Arc<LegShared>>>,
    free: Vec<usize>,
    /// Slots per phase, in the order they are served.
    groups: Vec<Vec<usize>>,
    live: usize,
    new_legs: Receiver<Arc<LegShared>>,
    epoch: Instant,
    events: mpsc::UnboundedSender<MediaEvent>,
    stop: CancellationToken,
    stats: Arc<Stats>,
    counts: TickCounts,
    out: Vec<MediaEvent>,
    /// Receive buffer.
    buf: Vec<u8>,
    /// Send buffer, swapped with the legs' queued packets.
    packet: Vec<u8>,
}

impl MediaThread {
    fn run(&mut self) {
        // the next sub-tick to serve, counted from the epoch
        let mut next = 0u64;
        loop {
            if self.stop.is_cancelled() {
                break;
            }
            if self.live == 0 {
                self.stats.media_late_us.store(0, Ordering::Relaxed);
                match self.new_legs.recv_timeout(IDLE_WAIT) {
                    Ok(l) => self.add(l),
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => break,
                }
                next = self.sub_tick_at(Instant::now());
            }
            let deadline = self.epoch + SUB_TICK * u32::try_from(next).unwrap_or(u32::MAX);
            let now = Instant::now();
            if now < deadline {
                std::thread::sleep(deadline - now);
            }
            let now = Instant::now();
            // how late this sub-tick is, averaged: new calls are shed while it is high
            let late = crate::overload::media_late_average(
                self.stats.media_late_us.load(Ordering::Relaxed),
                now.saturating_duration_since(deadline),
            );
            self.stats.media_late_us.store(late, Ordering::Relaxed);
            let current = self.sub_tick_at(now).max(next);
            if self.take_new_legs() {
                break;
            }
            self.receive(now);
            // late by more than a period: every phase once, not the same phase twice
            let first = next.max(current.saturating_sub(PHASES as u64 - 1));
            for k in first..=current {
                self.serve_phase((k % PHASES as u64) as usize, now);
            }
            next = current + 1;
            self.flush();
        }
        let now = Instant::now();
        // last RTCP BYEs of legs closed at shutdown
        for phase in 0..PHASES {
            self.serve_phase(phase, now);
        }
        self.flush();
        self.stats
            .rtp_legs_active
            .fetch_sub(self.live as u64, Ordering::Relaxed);
    }

    /// The number of the sub-tick `now` is in.
    fn sub_tick_at(&self, now: Instant) -> u64 {
        let since = now.saturating_duration_since(self.epoch).as_nanos();
        u64::try_from(since / SUB_TICK.as_nanos()).unwrap_or(u64::MAX)
    }

    /// Takes the legs started since the last sub-tick; true when the media edge is gone.
    fn take_new_legs(&mut self) -> bool {
        loop {
            match self.new_legs.try_recv() {
                Ok(l) => self.add(l),
                Err(TryRecvError::Empty) => return false,
                Err(TryRecvError::Disconnected) => return self.live == 0,
            }
        }
    }

    fn add(&mut self, l: Arc<LegShared>) {
        let slot = self.free.pop().unwrap_or_else(|| {
            self.slots.push(None);
            self.slots.len() - 1
        });
        let reg = self.poll.registry();
        let rtp = reg.register(
            &mut SourceFd(&l.rtp.as_raw_fd()),
            Token(2 * slot),
            Interest::READABLE,
        );
        let rtcp = reg.register(
            &mut SourceFd(&l.rtcp.as_raw_fd()),
            Token(2 * slot + 1),
            Interest::READABLE,
        );
        if let Err(e) = rtp.and(rtcp) {
            // the leg still sends; what it receives is lost, and its RTP timeout will end it
            warn!(call_id = %l.call_id, error = %e, "cannot watch the RTP sockets");
        }
        if let Some(g) = self.groups.get_mut(l.phase % PHASES) {
            g.push(slot);
        }
        if let Some(s) = self.slots.get_mut(slot) {
            *s = Some(l);
        }
        self.live += 1;
        self.stats.rtp_legs_active.fetch_add(1, Ordering::Relaxed);
    }

    /// Drains every socket the kernel says is readable.
    fn receive(&mut self, now: Instant) {
        loop {
            if let Err(e) = self.poll.poll(&mut self.ready, Some(Duration::ZERO)) {
                if e.kind() != std::io::ErrorKind::Interrupted {
                    warn!(error = %e, "media poll failed");
                }
                return;
            }
            let mut n = 0;
            for ev in self.ready.iter() {
                n += 1;
                let Token(t) = ev.token();
                let Some(Some(l)) = self.slots.get(t / 2) else {
                    continue;
                };
                let component = if t % 2 == 0 {
                    Component::Rtp
                } else {
                    Component::Rtcp
                };
                drain_socket(l, component, now, &mut self.buf, &mut self.out);
            }
            // a full batch may have left sockets out: ask again
            if n < EVENTS {
                return;
            }
        }
    }

    /// Runs the timers of the legs of `phase` and sends what they have; drops closed legs.
    fn serve_phase(&mut self, phase: usize, now: Instant) {
        let Some(group) = self.groups.get_mut(phase) else {
            return;
        };
        let mut gone = Vec::new();
        group.retain(|&slot| {
            let Some(Some(l)) = self.slots.get(slot) else {
                return false;
            };
            let keep = super::service(l, now, &mut self.out, &mut self.counts, &mut self.packet);
            if !keep {
                gone.push(slot);
            }
            keep
        });
        for slot in gone {
            if let Some(l) = self.slots.get_mut(slot).and_then(Option::take) {
                let reg = self.poll.registry();
                let _ = reg.deregister(&mut SourceFd(&l.rtp.as_raw_fd()));
                let _ = reg.deregister(&mut SourceFd(&l.rtcp.as_raw_fd()));
                self.free.push(slot);
                self.live -= 1;
                self.stats.rtp_legs_active.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    /// Counts into [`Stats`], events to the core.
    fn flush(&mut self) {
        self.counts.flush(&self.stats);
        for e in self.out.drain(..) {
            // the core may be gone at shutdown
            let _ = self.events.send(e);
        }
    }
}

/// Reads every datagram waiting on one of a leg's sockets (the poller is edge-triggered, so
/// the socket must be drained until it would block).
fn drain_socket(
    l: &LegShared,
    component: Component,
    now: Instant,
    buf: &mut [u8],
    out: &mut Vec<MediaEvent>,
) {
    let sock = match component {
        Component::Rtp => &l.rtp,
        Component::Rtcp => &l.rtcp,
    };
    let mut st = l.lock();
    let mut errors = 0;
    loop {
        let (n, from) = match sock.recv_from(buf) {
            Ok(x) => x,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => {
                // ICMP port unreachable from a peer that is not listening yet, and the like:
                // reported once each; a socket that keeps failing is left for the next event
                debug!(error = %e, "RTP receive error");
                errors += 1;
                if errors > MAX_ERRORS {
                    break;
                }
                continue;
            }
        };
        if st.closed {
            continue; // drained and dropped
        }
        let Some(data) = buf.get(..n) else {
            continue;
        };
        match component {
            Component::Rtp => {
                st.rx_packets += 1;
                st.leg.handle_datagram(now, from, data);
            }
            Component::Rtcp => st.leg.handle_rtcp(now, from, data),
        }
        drain_events(l, &mut st, now, out);
    }
}

const _: () = assert!(PTIME.as_nanos() == SUB_TICK.as_nanos() * PHASES as u128);
