//! Call control: the one place that owns the transaction endpoint, the registrar and every call.
//!
//! `Core` is driven like the sans-IO cores it holds: messages and the time go in, what to send
//! comes out through [`Outbound`]. It runs on one task (see `lib.rs`), so it needs no locks.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use acd::{Acd, AcdError, CallerId, OperatorId, QueueId};
use rand::Rng;
use sip::auth::{AuthOutcome, DigestServer};
use sip::dialog::{Dialog, DialogError};
use sip::registrar::Registrar;
use sip::transaction::{Endpoint, Event, TxKey};
use sip::{HeaderName, Message, Method, Peer, Request, Response};
use tracing::{debug, info, info_span, warn, Span};

use crate::media::{BoundPorts, DtmfVia, LegShared, LegStart, MediaEdge, MediaEvent};
use crate::settings::{menu_prompt_name, DtmfMode, LineSettings, Settings};
use crate::transport::Outbound;
use crate::{CallArrived, CallEnded, CallLog, Caller, EndReason, IvrEnd, IvrStep, Stats};
use media::prompts::{PromptCache, PromptName};
use media::sdp::{self, Negotiated};

#[path = "acd_reload.rs"]
mod acd_reload;
#[path = "feature_codes.rs"]
pub(crate) mod feature_codes;
#[path = "operator_legs.rs"]
mod operator_legs;
use operator_legs::{Connected, OpLeg};
#[path = "outbound.rs"]
mod outbound;
#[path = "transfer.rs"]
mod transfer;

#[path = "waiting.rs"]
pub mod waiting;
use waiting::Waiting;

/// Methods we answer (the Allow header).
const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, OPTIONS, REGISTER, INFO, UPDATE, REFER";
/// Extensions we support (RFC 4028 session timers).
const SUPPORTED: &[&str] = &["timer"];
/// Methods we know but do not take here: 405 rather than 501.
fn is_known_method(m: &Method) -> bool {
    !matches!(m, Method::Extension(_))
}
/// RFC 4028 minimum we accept.
const MIN_SE: u32 = 90;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CallState {
    /// 180 sent; the 200 goes out at `answer_at`.
    Ringing,
    /// 200 sent.
    Answered,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum TimerKind {
    Answer,
    SessionExpiry,
    MaxDuration,
    /// The voice menu's `poll_timeout` (a menu or collect waiting for a key).
    Ivr,
    /// A voice-menu message reached its longest length.
    MessageEnd,
    /// The waiting caller's callback dialogue waits for a key (`waiting.rs`).
    Waiting,
    /// A feature-code call's confirmation has played (its `message_end`): hang up.
    FeatureCodeDone,
}

struct Call {
    span: Span,
    /// The appeal this call is written down as.
    appeal: String,
    peer: Peer,
    local: SocketAddr,
    state: CallState,
    invite_tx: Option<TxKey>,
    invite: Request,
    /// Our UAS dialog with the caller (tags, route set, remote target, CSeqs).
    dialog: Dialog,
    neg: Option<Negotiated>,
    /// The line's settings (greeting, DTMF mode, recording, menu) as they were when the call
    /// arrived: a reload does not change them for this call.
    line: LineSettings,
    /// The prompts of the configuration the call arrived under.
    prompts: Arc<PromptCache>,
    /// The caller's number (From), offered back by callback nodes.
    caller: String,
    /// The caller's walk through the line's menu (from the answer on).
    ivr: Option<ivr::IvrSession>,
    /// When the menu's timer is armed for (a timer entry for another time is stale).
    ivr_deadline: Option<Instant>,
    /// Number of the current menu playback; a finish of an older one is ignored.
    play_gen: u64,
    /// Where the menu ended, for the appeal's outcome.
    ivr_end: Option<IvrEnd>,
    /// Counted in [`Stats::calls_in_ivr`]: walking the menu, not (yet) in a queue.
    in_ivr: bool,
    /// The queue the call waits in (counted in [`Stats::queue_waits`]).
    queued: Option<String>,
    /// The queue the caller last left in the ACD (answered there): where a failed transfer
    /// puts them back.
    last_queue: Option<String>,
    /// The call's id in the ACD while it is there (waiting or being offered).
    acd_caller: Option<CallerId>,
    /// When the caller entered the queue (the wait an operator's answer reports).
    queued_at: Option<Instant>,
    /// The caller's priority in the ACD (kept when a transfer puts it back in a queue).
    priority: u8,
    /// The operator the caller is bridged to.
    operator: Option<Connected>,
    /// What the caller hears and may do while in a queue (`waiting.rs`), from the queue on
    /// until an operator answers.
    waiting: Option<Waiting>,
    /// When a message being recorded ends.
    message_end: Option<Instant>,
    rtp_port: u16,
    /// The RTP/RTCP sockets, bound when the INVITE arrived, until the leg starts at answer.
    ports: Option<BoundPorts>,
    /// The running RTP leg (from the answer on).
    leg: Option<Arc<LegShared>>,
    /// The kind of DTMF that won in `auto` mode (the first to arrive).
    dtmf_via: Option<DtmfVia>,
    sdp_session: u64,
    sdp_version: u64,
    session_expires: Option<u32>,
    answer_at: Instant,
    expires_at: Option<Instant>,
    end_at: Instant,
}

pub(crate) struct Core {
    settings: Arc<Settings>,
    endpoint: Endpoint,
    registrar: Registrar,
    trunk_auth: DigestServer,
    calls: HashMap<String, Call>,
    timers: BTreeSet<(Instant, String, TimerKind)>,
    draining: bool,
    media: MediaEdge,
    stats: Arc<Stats>,
    log: Arc<dyn CallLog>,
    /// Client transactions we started and still wait on.
    our_requests: std::collections::HashSet<TxKey>,
    /// Our address the last message arrived on (for the Contact of a new call).
    last_local: Option<SocketAddr>,
    /// The civil time at an instant, as the driver last read it ([`Core::set_wallclock`]):
    /// voice-menu schedules run on it, and the core never reads the clock itself.
    wall: (Instant, SystemTime),
    /// The ACD, built once from [`Settings::acd`] (a reload keeps it); `None` without one.
    acd: Option<Acd>,
    /// Callers in the ACD: their id → the call's Call-ID.
    acd_callers: HashMap<CallerId, String>,
    /// The last [`CallerId`] given out.
    next_caller: u64,
    /// Our calls to operators by our Call-ID (see `operator_legs`).
    op_legs: HashMap<String, OpLeg>,
    /// Our INVITEs to operators: transaction → the leg's Call-ID.
    op_txs: HashMap<TxKey, String>,
    /// Where returning-caller lookups report (see `waiting.rs`); `None` joins at once.
    returning_tx: Option<tokio::sync::mpsc::UnboundedSender<waiting::ReturningFound>>,
    /// When the lines' working hours are next looked at for the queues (`waiting.rs`).
    hours_next: Instant,
    /// Each queue's open/closed as last told to the ACD.
    hours_applied: HashMap<String, bool>,
    /// Where operators' work state is checked and kept before the ACD hears of a change.
    book: Arc<dyn crate::OperatorBook>,
    /// Callbacks and transfers to numbers (see `outbound`).
    dialling: outbound::Dialling,
    pub out: Outbound,
}

/// What an admin or a softphone feature code asks of an operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OperatorCommand {
    /// Start work; `queues` as the admin named them (empty: every queue of the skills).
    Login {
        queues: Vec<String>,
    },
    Logout,
    Pause {
        reason: String,
    },
    Unpause,
}

/// Why an [`OperatorCommand`] was not applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OperatorControlError {
    #[error("the SIP gateway is not running")]
    Stopped,
    #[error("no ACD runs (no queues configured)")]
    NoAcd,
    #[error(transparent)]
    Acd(#[from] AcdError),
    /// The operator book refused it (unknown operator, or not in a state it applies to).
    #[error(transparent)]
    Refused(crate::OperatorRefusal),
}

fn random_token(n: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..n)
        .map(|_| {
            let v = rng.gen_range(0..36u8);
            char::from_digit(v as u32, 36).unwrap_or('0')
        })
        .collect()
}

impl Core {
    // the parts are built in `Gateway::run`; a builder would only rename the arguments
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        settings: Arc<Settings>,
        endpoint: Endpoint,
        registrar: Registrar,
        trunk_auth: DigestServer,
        stats: Arc<Stats>,
        log: Arc<dyn CallLog>,
        out: Outbound,
        media: MediaEdge,
        book: Arc<dyn crate::OperatorBook>,
    ) -> Core {
        let acd = settings.acd.clone().and_then(|c| match Acd::new(c) {
            Ok(a) => Some(a),
            Err(e) => {
                warn!(error = %e, "the ACD configuration is unusable; queues get no operators");
                None
            }
        });
        Core {
            book,
            acd,
            acd_callers: HashMap::new(),
            next_caller: 0,
            op_legs: HashMap::new(),
            op_txs: HashMap::new(),
            returning_tx: None,
            hours_next: Instant::now(),
            hours_applied: HashMap::new(),
            dialling: Default::default(),
            settings,
            endpoint,
            registrar,
            trunk_auth,
            calls: HashMap::new(),
            timers: BTreeSet::new(),
            draining: false,
            media,
            stats,
            log,
            our_requests: Default::default(),
            last_local: None,
            wall: (Instant::now(), SystemTime::now()),
            out,
        }
    }

    /// The driver's reading of the civil time at `now` (taken once per input, by the driver).
    pub fn set_wallclock(&mut self, now: Instant, wall: SystemTime) {
        self.wall = (now, wall);
    }

    fn wallclock(&self, now: Instant) -> chrono::DateTime<chrono::Utc> {
        let (at, wall) = self.wall;
        let t = if now >= at {
            wall.checked_add(now - at)
        } else {
            wall.checked_sub(at - now)
        };
        chrono::DateTime::from(t.unwrap_or(wall))
    }

    /// A reloaded configuration: calls that arrive from now on get its lines, menus, prompts,
    /// trunks and operators; calls in progress keep what they started with. Settings only a
    /// restart can change stay as they are; their names are returned when they differ.
    pub fn reload(&mut self, now: Instant, mut settings: Settings) -> Vec<&'static str> {
        let ignored = settings.keep_restart_only(&self.settings);
        let old = self.settings.clone();
        self.settings = Arc::new(settings);
        self.reload_operators(now, &old);
        ignored
    }

    pub fn calls(&self) -> usize {
        self.calls.len()
    }

    /// Lines of the configuration new calls get.
    pub fn lines(&self) -> usize {
        self.settings.lines.len()
    }

    /// Requests we sent (BYEs) still waiting for their final response.
    pub fn outstanding_requests(&self) -> usize {
        self.our_requests.len()
    }

    /// The earliest moment something has to happen.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let call = self.timers.iter().next().map(|(t, _, _)| *t);
        [
            call,
            self.endpoint.poll_timeout(),
            self.registrar.poll_timeout(),
            self.acd.as_ref().and_then(Acd::poll_timeout),
            self.acd.as_ref().map(|_| self.hours_next),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    pub fn handle_message(&mut self, now: Instant, peer: Peer, local: SocketAddr, msg: Message) {
        if let Message::Request(r) = &msg {
            self.stats.count_request(r.method.as_str());
            // remember where requests for this transaction came in, for our answers' Contact
            if let Ok(id) = r.headers.call_id() {
                if let Some(call) = self.calls.get_mut(id) {
                    call.local = local;
                }
            }
        }
        self.last_local = Some(local);
        self.endpoint.handle_message(now, peer, msg);
        self.drain(now);
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.endpoint.handle_timeout(now);
        let expired = self.registrar.expire(now);
        for change in &expired {
            debug!(?change, "registration expired");
        }
        if !expired.is_empty() {
            self.stats.publish_registrations(&self.registrar);
            self.registrations_changed(now, &expired);
        }
        self.check_hours(now);
        if let Some(acd) = self.acd.as_mut() {
            if acd.poll_timeout().is_some_and(|at| at <= now) {
                acd.handle_timeout(now);
            }
        }
        while let Some((at, _, _)) = self.timers.iter().next() {
            if *at > now {
                break;
            }
            let Some((at, call_id, kind)) = self.timers.pop_first() else {
                break;
            };
            self.fire(now, at, &call_id, kind);
        }
        self.drain(now);
    }

    /// What the RTP legs report: digits and dead calls.
    pub fn handle_media(&mut self, now: Instant, ev: MediaEvent) {
        match ev {
            MediaEvent::Digit {
                call_id,
                digit,
                via,
            } => self.digit(now, &call_id, digit, via),
            MediaEvent::PlaybackFinished {
                call_id,
                generation,
            } => {
                let Some(call) = self.calls.get_mut(&*call_id) else {
                    return;
                };
                if call.play_gen != generation {
                    return; // a playback replaced or stopped since
                }
                if let Some(s) = call.ivr.as_mut() {
                    s.handle_playback_finished(now);
                }
                self.drive_ivr(now, &call_id);
                self.waiting_playback_finished(now, &call_id);
                self.drain(now);
            }
            MediaEvent::Inactive { call_id } => {
                if let Some(call) = self.calls.get(&*call_id) {
                    self.stats.rtp_timeouts.fetch_add(1, Ordering::Relaxed);
                    let _e = call.span.clone().entered();
                    warn!(
                        timeout_s = self.settings.rtp_timeout.unwrap_or_default().as_secs(),
                        "no RTP from the caller; hanging up"
                    );
                    self.end_call(now, &call_id, EndReason::RtpTimeout);
                    self.drain(now);
                }
            }
        }
    }

    /// A key press: kept when the line's DTMF mode takes this kind (in `auto`, the kind that
    /// came first in the call), handed to the call's voice menu, then written to the appeal.
    fn digit(&mut self, now: Instant, call_id: &str, digit: char, via: DtmfVia) {
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        self.stats.count_digit(via);
        let _e = call.span.clone().entered();
        let wanted = match call.line.dtmf {
            DtmfMode::Auto => *call.dtmf_via.get_or_insert(via),
            DtmfMode::Rfc4733 => DtmfVia::Rfc4733,
            DtmfMode::Info => DtmfVia::Info,
            DtmfMode::Inband => DtmfVia::Inband,
        };
        if via != wanted {
            debug!(%digit, via = via.as_str(), kept = wanted.as_str(), "digit of another DTMF kind ignored");
            return;
        }
        if via != DtmfVia::Inband {
            // no need to listen for tones any more
            if let Some(leg) = &call.leg {
                leg.stop_inband();
            }
        }
        info!(%digit, via = via.as_str(), "DTMF");
        let appeal = call.appeal.clone();
        if self.waiting_digit(now, call_id, digit) {
            self.log.digit(&appeal, digit, via.as_str());
            self.drain(now);
            return;
        }
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        let in_menu = match call.ivr.as_mut() {
            Some(s) => {
                s.handle_digit(now, digit);
                true
            }
            None => false,
        };
        if in_menu {
            self.drive_ivr(now, call_id);
        }
        self.log.digit(&appeal, digit, via.as_str());
        if in_menu {
            self.drain(now);
        }
    }

    /// Carries out what the call's voice menu asks for, in order, then arms its timer.
    /// See `ivr::session` for the contract (drain `poll_action`, then `poll_timeout`).
    fn drive_ivr(&mut self, now: Instant, call_id: &str) {
        loop {
            let Some(call) = self.calls.get_mut(call_id) else {
                return;
            };
            let Some(session) = call.ivr.as_mut() else {
                return;
            };
            let Some(action) = session.poll_action() else {
                let next = session.poll_timeout();
                if next != call.ivr_deadline {
                    call.ivr_deadline = next;
                    if let Some(at) = next {
                        self.timers
                            .insert((at, call_id.to_string(), TimerKind::Ivr));
                    }
                }
                return;
            };
            let path = session.path().join(">");
            let _e = call.span.clone().entered();
            let appeal = call.appeal.clone();
            use ivr::Action;
            match action {
                Action::Play(prompts) => {
                    call.play_gen += 1;
                    let names: Vec<PromptName> = prompts
                        .iter()
                        .filter_map(|p| {
                            let info = call.line.menu.as_ref()?.prompt(p)?;
                            Some(menu_prompt_name(&info.path))
                        })
                        .collect();
                    let seq = call.prompts.sequence(&names);
                    match (&call.leg, seq) {
                        (Some(leg), Ok(seq)) if names.len() == prompts.len() => {
                            debug!(prompts = ?prompts.iter().map(|p| p.name()).collect::<Vec<_>>(), "playing");
                            leg.play(seq, call.play_gen);
                        }
                        _ => {
                            // only a menu built around the checks (or a leg that failed to
                            // start) gets here: go on as if it had played
                            warn!(
                                ?prompts,
                                "prompts not in the cache or no media; skipping them"
                            );
                            if let Some(s) = call.ivr.as_mut() {
                                s.handle_playback_finished(now);
                            }
                        }
                    }
                }
                Action::StopPlayback => {
                    call.play_gen += 1;
                    if let Some(leg) = &call.leg {
                        leg.stop_playback();
                    }
                }
                Action::AppendPath(step) => {
                    debug!(%step, "menu");
                    self.log.ivr_step(&appeal, &IvrStep::Path { step, path });
                }
                Action::SetCategory(c) => self.log.ivr_step(&appeal, &IvrStep::Category(c)),
                Action::SetPriority(p) => self.log.ivr_step(&appeal, &IvrStep::Priority(p)),
                Action::SetVariable { name, value } => self
                    .log
                    .ivr_step(&appeal, &IvrStep::Variable { name, value }),
                Action::EnterQueue { queue, priority } => {
                    info!(%queue, priority, "caller entered the queue");
                    call.ivr_end = Some(IvrEnd::Queue);
                    if std::mem::take(&mut call.in_ivr) {
                        self.stats.calls_in_ivr.fetch_sub(1, Ordering::Relaxed);
                    }
                    if let Some(old) = call.queued.replace(queue.clone()) {
                        self.stats.queue_leave(&old, call_id);
                    }
                    self.stats.queue_enter(&queue, call_id, now);
                    call.queued_at.get_or_insert(now);
                    call.waiting
                        .get_or_insert_with(|| Waiting::new(&call.caller));
                    let join = call.acd_caller.is_none().then(|| {
                        let prio =
                            u8::try_from(priority.clamp(0, i32::from(u8::MAX))).unwrap_or(u8::MAX);
                        (queue.clone(), prio)
                    });
                    // The call stays up and waits: music on hold from the next tick (the
                    // queue node's prompt has ended), or silence when the queue has none.
                    if let (Some(leg), Some(music)) = (&call.leg, self.settings.moh_for(&queue)) {
                        if let Err(e) = self.media.play_moh(leg, &call.prompts, music) {
                            warn!(%e, "music on hold not loaded; the caller waits in silence");
                        }
                    }
                    self.log
                        .ivr_step(&appeal, &IvrStep::EnteredQueue { queue, priority });
                    if let Some((queue, prio)) = join {
                        self.queue_join(now, call_id, &queue, prio);
                    }
                }
                Action::Transfer { number } => {
                    // dialled through the trunk and bridged on the answer (`outbound`)
                    info!("transfer to an outside number");
                    call.ivr_end = Some(IvrEnd::Transferred);
                    if std::mem::take(&mut call.in_ivr) {
                        self.stats.calls_in_ivr.fetch_sub(1, Ordering::Relaxed);
                    }
                    self.log.ivr_step(
                        &appeal,
                        &IvrStep::Transferred {
                            number: number.clone(),
                        },
                    );
                    if !self.ivr_transfer(now, call_id, &number) {
                        warn!("the transfer cannot be dialled");
                        self.ivr_transfer_failed(now, call_id);
                    }
                }
                Action::Callback { number, queue } => {
                    info!("callback booked");
                    call.ivr_end = Some(IvrEnd::Callback);
                    self.log.ivr_step(
                        &appeal,
                        &IvrStep::CallbackRequested {
                            number: number.clone(),
                            queue: queue.clone(),
                        },
                    );
                    if let Some(queue) = queue {
                        let prio = call.priority;
                        self.book_callback_in(now, call_id, &queue, prio, &number);
                    }
                    // the session plays its closing prompt, then asks for the hang-up
                }
                Action::StartRecording { max } => self.start_message(now, call_id, max),
                Action::Hangup => {
                    if call.ivr_end.is_none() {
                        call.ivr_end = Some(IvrEnd::Hangup);
                    }
                    self.end_call(now, call_id, EndReason::IvrHangup);
                }
            }
        }
    }

    /// Records the caller's message (at most `max`, then the call ends) and writes it on the
    /// appeal (outcome `message`): the menu's `message` node and a queue's overflow to a
    /// message both come here.
    fn start_message(&mut self, now: Instant, call_id: &str, max: Duration) {
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        call.ivr_end = Some(IvrEnd::Message);
        let appeal = call.appeal.clone();
        let file = match &call.leg {
            Some(leg) => self.media.record_message(leg, &appeal, now),
            None => None,
        };
        let Some(file) = file else {
            warn!("cannot record the message; ending the call");
            self.end_call(now, call_id, EndReason::IvrHangup);
            return;
        };
        info!(file = %file.display(), max_s = max.as_secs(), "recording a message");
        let at = now + max;
        call.message_end = Some(at);
        self.timers
            .insert((at, call_id.to_string(), TimerKind::MessageEnd));
        self.log.ivr_step(
            &appeal,
            &IvrStep::Message {
                file: file.display().to_string(),
                max,
            },
        );
    }

    /// The recording writer, to wait for at shutdown (every leg is closed by then).
    pub fn finish_media(self) -> Option<std::thread::JoinHandle<()>> {
        self.media.finish()
    }

    /// Stop taking new calls; calls in progress go on.
    /// Whether a call with this Call-ID is up or being set up (overload shedding asks).
    pub fn has_call(&self, call_id: &str) -> bool {
        self.calls.contains_key(call_id)
    }

    pub fn begin_drain(&mut self) {
        self.draining = true;
    }

    /// Hang up every call (end of the shutdown grace period).
    pub fn hangup_all(&mut self, now: Instant) {
        let ids: Vec<String> = self.calls.keys().cloned().collect();
        for id in ids {
            self.end_call(now, &id, EndReason::Shutdown);
        }
        self.drain(now);
    }

    /// Drain the endpoint's outputs after every input.
    fn drain(&mut self, now: Instant) {
        loop {
            self.drive_acd(now);
            while let Some(t) = self.endpoint.poll_transmit() {
                self.stats.count_sent(&t.bytes);
                self.out.send(t.peer, t.bytes);
            }
            let Some(ev) = self.endpoint.poll_event() else {
                break;
            };
            self.on_event(now, ev);
        }
        self.stats
            .calls
            .store(self.calls.len() as u64, Ordering::Relaxed);
        self.stats
            .call_timers
            .store(self.timers.len() as u64, Ordering::Relaxed);
        // after a burst, the calls table (each `Call` is stored inline) gives its room back
        if self.calls.capacity() > 256 && self.calls.len() * 4 < self.calls.capacity() {
            self.calls.shrink_to(self.calls.len() * 2);
        }
        if let Some(acd) = &self.acd {
            self.stats.activity.publish(acd);
        }
    }

    fn on_event(&mut self, now: Instant, ev: Event) {
        match ev {
            Event::Request { tx, peer, request } => self.on_request(now, tx, peer, request),
            Event::Ack { request, .. } => {
                if let Ok(id) = request.headers.call_id() {
                    if let Some(call) = self.calls.get_mut(id) {
                        let _e = call.span.clone().entered();
                        debug!("ACK received");
                        // the answer to the offer we made in the 200 (INVITE without SDP)
                        if call.neg.is_none() && !request.body.is_empty() {
                            match sdp::answer_body(&request.body) {
                                Ok(n) => {
                                    call.neg = Some(n);
                                    if let Some(leg) = &call.leg {
                                        leg.update(now, &n, self.settings.rtp_timeout);
                                    }
                                }
                                Err(e) => debug!(error = %e, "unusable SDP answer in the ACK"),
                            }
                        }
                    }
                }
            }
            Event::Cancelled { tx } => {
                let id = self
                    .calls
                    .iter()
                    .find(|(_, c)| c.invite_tx.as_ref() == Some(&tx))
                    .map(|(id, _)| id.clone());
                if let Some(id) = id {
                    if let Some(mut call) = self.calls.remove(&id) {
                        let _e = call.span.clone().entered();
                        info!("caller hung up before answer (CANCEL)");
                        self.stats.calls_cancelled.fetch_add(1, Ordering::Relaxed);
                        self.ended(now, &mut call, EndReason::CallerCancelled);
                    }
                }
            }
            Event::Response { tx, response } if self.op_txs.contains_key(&tx) => {
                self.on_op_response(now, &tx, response);
            }
            Event::Timeout { tx } if self.op_txs.contains_key(&tx) => {
                self.on_op_timeout(now, &tx);
            }
            Event::Response { tx, response } => {
                debug!(status = response.status, "response to our request");
                if response.status >= 200 {
                    self.our_requests.remove(&tx);
                }
            }
            Event::Timeout { tx } => {
                debug!(?tx, "transaction timed out");
                self.our_requests.remove(&tx);
            }
            Event::AckTimeout { call_id, .. } => {
                if let Some(call) = self.calls.get(&call_id) {
                    let _e = call.span.enter();
                    warn!("our 200 OK was never acknowledged; hanging up");
                }
                self.end_call(now, &call_id, EndReason::NoAck);
            }
        }
    }

    fn respond(&mut self, now: Instant, tx: &TxKey, mut r: Response) {
        r.headers
            .push(HeaderName::Server, self.settings.user_agent.as_str());
        if let Err(e) = self.endpoint.respond(now, tx, r) {
            debug!(error = %e, "could not respond");
        }
    }

    fn reply(&mut self, now: Instant, tx: &TxKey, req: &Request, status: u16) {
        let r = req.response(status);
        let r = with_to_tag(r, req, None);
        self.respond(now, tx, r);
    }

    fn on_request(&mut self, now: Instant, tx: TxKey, peer: Peer, req: Request) {
        // RFC 3261 §16.3 / issue: a request that ran out of hops is refused.
        if let Ok(Some(0)) = req.headers.max_forwards() {
            if req.method != Method::Ack {
                return self.reply(now, &tx, &req, 483);
            }
        }
        // §8.2.2.3: option tags we do not support.
        if req.method != Method::Ack && req.method != Method::Cancel {
            let unsupported: Vec<&str> = req
                .headers
                .tokens(&HeaderName::Require)
                .filter(|t| !SUPPORTED.iter().any(|s| s.eq_ignore_ascii_case(t)))
                .collect();
            if !unsupported.is_empty() {
                let mut r = with_to_tag(req.response(420), &req, None);
                r.headers
                    .push(HeaderName::Unsupported, unsupported.join(", "));
                return self.respond(now, &tx, r);
            }
        }
        // our calls to operators: their BYE ends the bridged call
        let Some(req) = self.on_op_request(now, &tx, req) else {
            return;
        };
        match &req.method {
            Method::Register => self.on_register(now, tx, peer, req),
            Method::Options => {
                let mut r = with_to_tag(req.response(200), &req, None);
                r.headers.push(HeaderName::Allow, ALLOW);
                r.headers.push(HeaderName::Accept, "application/sdp");
                r.headers.push(HeaderName::AcceptLanguage, "ru, en");
                r.headers.push(HeaderName::Supported, SUPPORTED.join(", "));
                self.respond(now, &tx, r);
            }
            Method::Invite => {
                if req
                    .headers
                    .to_addr()
                    .ok()
                    .and_then(|t| t.tag().map(str::to_string))
                    .is_some()
                {
                    self.on_reinvite(now, tx, req);
                } else {
                    self.on_invite(now, tx, peer, req);
                }
            }
            Method::Bye => {
                if let Some(id) = self.in_dialog(now, &tx, &req) {
                    self.reply(now, &tx, &req, 200);
                    if let Some(mut call) = self.calls.remove(&id) {
                        let _e = call.span.clone().entered();
                        // a BYE in the early dialog ends the INVITE too (RFC 3261 §15.1.2)
                        if let Some(invite_tx) = call.invite_tx.take() {
                            let mut r = call.invite.response(487);
                            r.headers
                                .set(HeaderName::To, call.dialog.local_uri.to_string());
                            self.respond(now, &invite_tx, r);
                        }
                        info!(
                            talked_ms =
                                now.saturating_duration_since(call.answer_at).as_millis() as u64,
                            "caller hung up"
                        );
                        self.ended(now, &mut call, EndReason::CallerHungUp);
                    }
                }
            }
            Method::Refer => self.refer_outside_dialog(now, &tx, &req),
            Method::Info | Method::Update => {
                if let Some(id) = self.in_dialog(now, &tx, &req) {
                    if req.method == Method::Update {
                        self.refresh_session(now, &id);
                    } else if let Some(digit) = info_digit(&req) {
                        self.digit(now, &id, digit, DtmfVia::Info);
                    }
                    self.reply(now, &tx, &req, 200)
                }
            }
            Method::Ack | Method::Cancel => {
                // ACK never gets a response; a CANCEL reaching us matched nothing.
                if req.method == Method::Cancel {
                    self.reply(now, &tx, &req, 481);
                }
            }
            m if is_known_method(m) => {
                let mut r = with_to_tag(req.response(405), &req, None);
                r.headers.push(HeaderName::Allow, ALLOW);
                self.respond(now, &tx, r);
            }
            _ => {
                let mut r = with_to_tag(req.response(501), &req, None);
                r.headers.push(HeaderName::Allow, ALLOW);
                self.respond(now, &tx, r);
            }
        }
    }

    fn on_register(&mut self, now: Instant, tx: TxKey, peer: Peer, req: Request) {
        let operators = &self.settings.operators;
        let result = self.registrar.handle_register(now, peer, &req, |user| {
            operators
                .iter()
                .find(|o| o.login == user)
                .map(|o| o.secret.clone())
        });
        for change in &result.changes {
            info!(?change, "registration");
        }
        self.stats.publish_registrations(&self.registrar);
        self.registrations_changed(now, &result.changes);
        self.respond(now, &tx, result.response);
    }

    /// Take a mid-dialog request into its call's dialog (RFC 3261 §12.2.2) and return the
    /// call's id. When it fits no call it is answered here — 481 for an unknown dialog, 500
    /// for a CSeq lower than the caller's last, 400 for an unreadable CSeq or Contact — and
    /// `None` is returned.
    fn in_dialog(&mut self, now: Instant, tx: &TxKey, req: &Request) -> Option<String> {
        let id = req.headers.call_id().ok().map(str::to_string);
        let result = match id.as_deref().and_then(|id| self.calls.get_mut(id)) {
            Some(call) if call.dialog.matches(req) => call.dialog.on_request(req),
            _ => Err(DialogError::NotThisDialog),
        };
        match result {
            Ok(()) => id,
            Err(e) => {
                let status = match e {
                    DialogError::OutOfOrder { .. } => 500,
                    DialogError::NotThisDialog => 481,
                    _ => 400,
                };
                debug!(error = %e, status, "mid-dialog request refused");
                self.reply(now, tx, req, status);
                None
            }
        }
    }

    fn on_invite(&mut self, now: Instant, tx: TxKey, peer: Peer, req: Request) {
        let Ok(call_id) = req.headers.call_id().map(str::to_string) else {
            return self.reply(now, &tx, &req, 400);
        };
        if self.calls.contains_key(&call_id) {
            // same Call-ID, no To tag, new transaction: a merged/looped request (§8.2.2.2)
            return self.reply(now, &tx, &req, 482);
        }
        if self.draining {
            let mut r = with_to_tag(req.response(503), &req, None);
            r.headers.push(HeaderName::RetryAfter, "60");
            return self.respond(now, &tx, r);
        }
        let dialled = req.uri.user().unwrap_or("").to_string();
        if feature_codes::FeatureCodes::is_code(&dialled) {
            return self.on_feature_invite(now, tx, peer, req, &dialled);
        }
        let Some(line) = self.settings.line_for(&dialled).cloned() else {
            info!(dialled = %dialled, "no line for the dialled number");
            return self.reply(now, &tx, &req, 404);
        };
        // Trunk admission: by source address, or by digest when the trunk has credentials.
        if self.settings.trunk_for(peer.addr.ip()).is_none() {
            let creds: Vec<(String, String)> = self
                .settings
                .trunks
                .iter()
                .filter_map(|t| t.credentials.clone())
                .collect();
            if creds.is_empty() {
                info!(source = %peer.addr.ip(), "INVITE from an address no trunk allows");
                return self.reply(now, &tx, &req, 403);
            }
            let outcome = req.headers.get(&HeaderName::Authorization).map(|v| {
                self.trunk_auth.verify(now, &req.method, v, |user| {
                    creds
                        .iter()
                        .find(|(u, _)| u == user)
                        .map(|(_, p)| sip::auth::Secret::Plain(p.clone()))
                })
            });
            match outcome {
                Some(AuthOutcome::Ok { .. }) => {}
                Some(AuthOutcome::Stale) | None => {
                    let stale = matches!(outcome, Some(AuthOutcome::Stale));
                    let mut r = with_to_tag(req.response(401), &req, None);
                    for c in self.trunk_auth.challenge(now, stale) {
                        r.headers.push(HeaderName::WwwAuthenticate, c);
                    }
                    return self.respond(now, &tx, r);
                }
                Some(AuthOutcome::Failed(_)) => return self.reply(now, &tx, &req, 403),
            }
        }
        // Offer: in the INVITE (usual) or none (we offer in the 200, the answer comes in ACK).
        let neg = match answer_offer(&req) {
            Ok(n) => n,
            Err(r) => return self.respond(now, &tx, r),
        };
        // RFC 4028: too small a session interval is refused with our minimum.
        let se = req
            .headers
            .get(&HeaderName::SessionExpires)
            .and_then(|v| v.split(';').next())
            .and_then(|v| v.trim().parse::<u32>().ok());
        if let Some(se) = se {
            if se < MIN_SE {
                let mut r = with_to_tag(req.response(422), &req, None);
                r.headers.push(HeaderName::MinSe, MIN_SE.to_string());
                return self.respond(now, &tx, r);
            }
        }
        let Ok(from) = req.headers.from_addr() else {
            return self.reply(now, &tx, &req, 400);
        };
        let dialog = match Dialog::uas(&req, &random_token(10)) {
            Ok(d) => d,
            Err(DialogError::NoContact) => {
                let mut r = with_to_tag(req.response(400), &req, None);
                r.reason = "Bad Request - INVITE without Contact".into();
                return self.respond(now, &tx, r);
            }
            Err(e) => {
                debug!(error = %e, "INVITE creates no dialog");
                return self.reply(now, &tx, &req, 400);
            }
        };
        let caller = from.uri.user().unwrap_or("anonymous").to_string();
        // The appeal is written at once, before the call is answered (PRODUCT.md step 2).
        let appeal = self.log.call_arrived(&CallArrived {
            call_id: &call_id,
            line: &line.id,
            caller: &caller,
        });
        let span = info_span!(
            "call",
            call_id = %call_id,
            appeal = %appeal,
            line = %line.id,
            caller = %Caller::new(&caller, self.settings.redact_callers),
        );
        let bind_ip = self.last_local.unwrap_or(peer.addr).ip();
        let Some(ports) = self.media.ports.allocate(bind_ip) else {
            {
                let _e = span.enter();
                warn!("no free RTP port in the configured range; refusing the call");
            }
            let mut r = with_to_tag(req.response(503), &req, None);
            r.headers.push(HeaderName::RetryAfter, "5");
            self.respond(now, &tx, r);
            self.log.call_ended(
                &appeal,
                &CallEnded {
                    reason: EndReason::NoMediaPort,
                    answered: false,
                    talked: Duration::ZERO,
                    ivr: None,
                    operator: None,
                },
            );
            return;
        };
        let rtp_port = ports.port;
        let session_expires = se.map(|s| s.min(self.settings.session_expires).max(MIN_SE));
        let call = Call {
            span: span.clone(),
            appeal,
            peer,
            local: self.last_local.unwrap_or(peer.addr),
            state: CallState::Ringing,
            invite_tx: Some(tx.clone()),
            dialog,
            neg,
            line: line.clone(),
            prompts: self.settings.prompts.clone(),
            caller: caller.clone(),
            ivr: None,
            ivr_deadline: None,
            play_gen: 0,
            ivr_end: None,
            in_ivr: false,
            queued: None,
            last_queue: None,
            acd_caller: None,
            queued_at: None,
            priority: 0,
            operator: None,
            waiting: None,
            message_end: None,
            rtp_port,
            ports: Some(ports),
            leg: None,
            dtmf_via: None,
            sdp_session: rand::thread_rng().gen_range(1..u32::MAX as u64),
            sdp_version: 1,
            session_expires,
            answer_at: now + line.ring,
            expires_at: None,
            end_at: now + self.settings.max_call,
            invite: req,
        };
        {
            let _e = span.enter();
            info!(dialled = %dialled, transport = peer.transport.as_str(), "call arrived");
        }
        self.stats.calls_total.fetch_add(1, Ordering::Relaxed);
        let ringing = self.call_response(&call, 180);
        self.timers
            .insert((call.answer_at, call_id.clone(), TimerKind::Answer));
        self.timers
            .insert((call.end_at, call_id.clone(), TimerKind::MaxDuration));
        self.calls.insert(call_id.clone(), call);
        self.respond(now, &tx, ringing);
        if line.ring.is_zero() {
            self.answer(now, &call_id);
        }
    }

    /// A response to the call's INVITE, in its dialog (our To tag, Contact).
    fn call_response(&self, call: &Call, status: u16) -> Response {
        let mut r = call.invite.response(status);
        r.headers
            .set(HeaderName::To, call.dialog.local_uri.to_string());
        // §12.1.1: the Record-Route of the INVITE goes back in dialog-creating responses
        for rr in call.invite.headers.values(&HeaderName::RecordRoute) {
            r.headers.push(HeaderName::RecordRoute, rr);
        }
        r.headers.push(HeaderName::Contact, self.contact(call));
        r
    }

    fn contact(&self, call: &Call) -> String {
        let user = call.invite.uri.user().unwrap_or("hotline");
        let transport = match call.peer.transport {
            sip::Transport::Udp => "",
            sip::Transport::Tcp => ";transport=tcp",
        };
        format!(
            "<sip:{}@{}{transport}>",
            sip::message::escape(user, |c| c.is_ascii_alphanumeric() || "-_.+".contains(c)),
            host_port(call.local)
        )
    }

    fn local_ip(&self, call: &Call) -> IpAddr {
        self.settings.rtp_address.unwrap_or(call.local.ip())
    }

    fn answer(&mut self, now: Instant, call_id: &str) {
        let Some(call) = self.calls.get(call_id) else {
            return;
        };
        if call.state != CallState::Ringing {
            return;
        }
        let Some(tx) = call.invite_tx.clone() else {
            return;
        };
        let mut r = self.call_response(call, 200);
        let body = match call.neg {
            Some(neg) => neg.render(
                self.local_ip(call),
                call.rtp_port,
                call.sdp_session,
                call.sdp_version,
            ),
            // no offer in the INVITE: we offer, the caller answers in the ACK
            None => sdp::offer(
                self.local_ip(call),
                call.rtp_port,
                call.sdp_session,
                call.sdp_version,
            ),
        };
        r.headers.push(HeaderName::Allow, ALLOW);
        r.headers.push(HeaderName::Supported, SUPPORTED.join(", "));
        if let Some(se) = call.session_expires {
            r.headers
                .push(HeaderName::SessionExpires, format!("{se};refresher=uac"));
            r.headers.push(HeaderName::Require, "timer");
        }
        r.headers.push(HeaderName::ContentType, "application/sdp");
        r.body = body.into_bytes();
        let span = call.span.clone();
        let se = call.session_expires;
        let wall = self.wallclock(now);
        if let Some(call) = self.calls.get_mut(call_id) {
            if let Some(ports) = call.ports.take() {
                let _e = span.enter();
                // in `auto`, tones are only listened for when the peer cannot send RFC 4733
                let inband = match call.line.dtmf {
                    DtmfMode::Inband => true,
                    DtmfMode::Auto => call.neg.is_none_or(|n| n.telephone_event.is_none()),
                    DtmfMode::Rfc4733 | DtmfMode::Info => false,
                };
                call.leg = self.media.start_leg(
                    now,
                    LegStart {
                        call_id,
                        appeal: &call.appeal,
                        ports,
                        neg: call.neg.unwrap_or_else(Negotiated::our_offer),
                        prompts: &call.prompts,
                        greeting: call
                            .line
                            .greeting
                            .as_ref()
                            .filter(|_| call.line.menu.is_none()),
                        inband,
                        record: call.line.record,
                        timeout: self.settings.rtp_timeout,
                    },
                );
                if call.leg.is_none() {
                    warn!("could not start RTP for the call");
                }
            }
            call.state = CallState::Answered;
            call.dialog.confirm();
            call.invite_tx = None;
            call.answer_at = now;
            if let Some(menu) = call.line.menu.clone() {
                call.in_ivr = true;
                self.stats.calls_in_ivr.fetch_add(1, Ordering::Relaxed);
                call.ivr = Some(
                    ivr::IvrSession::new(menu, &call.line.start, now, wall)
                        .with_caller(call.caller.clone()),
                );
            }
            if let Some(se) = se {
                let at = now + Duration::from_secs(se as u64);
                call.expires_at = Some(at);
                self.timers
                    .insert((at, call_id.to_string(), TimerKind::SessionExpiry));
            }
        }
        {
            let _e = span.enter();
            info!("answered");
        }

        self.stats.calls_answered.fetch_add(1, Ordering::Relaxed);
        self.respond(now, &tx, r);
        self.drive_ivr(now, call_id);
    }

    fn on_reinvite(&mut self, now: Instant, tx: TxKey, req: Request) {
        let Some(id) = self.in_dialog(now, &tx, &req) else {
            return;
        };
        let offer = match answer_offer(&req) {
            Ok(n) => n,
            Err(r) => return self.respond(now, &tx, r),
        };
        self.refresh_session(now, &id);
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if let Some(n) = offer {
            call.neg = Some(n);
            if let Some(leg) = &call.leg {
                leg.update(now, &n, self.settings.rtp_timeout);
            }
        }
        call.sdp_version += 1;
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        let _e = call.span.clone().entered();
        let neg = call.neg.unwrap_or_else(Negotiated::our_offer);
        info!(direction = neg.direction.as_str(), "re-INVITE");
        let mut r = req.response(200);
        let body = neg.render(
            self.local_ip(call),
            call.rtp_port,
            call.sdp_session,
            call.sdp_version,
        );
        r.headers.push(HeaderName::Contact, self.contact(call));
        if let Some(se) = call.session_expires {
            r.headers
                .push(HeaderName::SessionExpires, format!("{se};refresher=uac"));
            r.headers.push(HeaderName::Require, "timer");
        }
        r.headers.push(HeaderName::ContentType, "application/sdp");
        r.body = body.into_bytes();
        self.respond(now, &tx, r);
    }

    /// A re-INVITE or UPDATE refreshed the session (RFC 4028).
    fn refresh_session(&mut self, now: Instant, id: &str) {
        if let Some(call) = self.calls.get_mut(id) {
            if let Some(se) = call.session_expires {
                let at = now + Duration::from_secs(se as u64);
                call.expires_at = Some(at);
                self.timers
                    .insert((at, id.to_string(), TimerKind::SessionExpiry));
            }
        }
    }

    fn fire(&mut self, now: Instant, at: Instant, call_id: &str, kind: TimerKind) {
        let Some(call) = self.calls.get(call_id) else {
            return;
        };
        match kind {
            TimerKind::Answer if call.answer_at == at => self.answer(now, call_id),
            TimerKind::SessionExpiry if call.expires_at == Some(at) => {
                let _e = call.span.clone().entered();
                warn!("session timer expired without a refresh; hanging up");
                self.end_call(now, call_id, EndReason::SessionExpired);
            }
            TimerKind::MaxDuration if call.end_at == at => {
                let _e = call.span.clone().entered();
                warn!("call reached the maximum duration; hanging up");
                self.end_call(now, call_id, EndReason::MaxDuration);
            }
            TimerKind::Ivr if call.ivr_deadline == Some(at) => {
                if let Some(call) = self.calls.get_mut(call_id) {
                    call.ivr_deadline = None;
                    if let Some(s) = call.ivr.as_mut() {
                        s.handle_timeout(now);
                    }
                }
                self.drive_ivr(now, call_id);
            }
            TimerKind::Waiting => self.waiting_timeout(now, call_id, at),
            TimerKind::MessageEnd if call.message_end == Some(at) => {
                let _e = call.span.clone().entered();
                info!("message reached its longest length; hanging up");
                self.end_call(now, call_id, EndReason::IvrHangup);
            }
            TimerKind::FeatureCodeDone if call.message_end == Some(at) => {
                self.end_call(now, call_id, EndReason::IvrHangup);
            }
            _ => {}
        }
    }

    /// Applies an operator's login, logout, pause or unpause: first to the operator book
    /// (checked, recorded), then to the ACD. The admin API and the feature codes both come
    /// here. A login's queues are resolved by the ACD first (`Acd::login_queues`: none named
    /// means every skill queue; a queue outside the skills is refused before the book hears
    /// of it), so the book records the queues the ACD serves the operator from.
    pub fn operator_command(
        &mut self,
        now: Instant,
        operator: &str,
        cmd: OperatorCommand,
    ) -> Result<(), OperatorControlError> {
        let op = OperatorId::from(operator);
        let cmd = match (cmd, self.acd.as_ref()) {
            (OperatorCommand::Login { queues }, Some(acd)) => {
                let named: Vec<acd::QueueId> = queues
                    .iter()
                    .map(|q| acd::QueueId::from(q.as_str()))
                    .collect();
                OperatorCommand::Login {
                    queues: acd
                        .login_queues(&op, &named)?
                        .iter()
                        .map(|q| q.as_str().to_owned())
                        .collect(),
                }
            }
            (cmd, _) => cmd,
        };
        self.book
            .apply(operator, &cmd)
            .map_err(OperatorControlError::Refused)?;
        let acd = self.acd.as_mut().ok_or(OperatorControlError::NoAcd)?;
        let registered = !self.registrar.lookup(now, operator).is_empty();
        let what = format!("{cmd:?}");
        match cmd {
            OperatorCommand::Login { queues } => {
                // the phone may have registered before the operator logged in
                acd.set_registered(now, &op, registered)?;
                let queues: Vec<acd::QueueId> = queues
                    .iter()
                    .map(|q| acd::QueueId::from(q.as_str()))
                    .collect();
                acd.login_to(now, &op, &queues)?;
            }
            OperatorCommand::Logout => acd.logout(now, &op)?,
            OperatorCommand::Pause { reason } => {
                acd.pause(now, &op, acd::PauseReason::Requested(reason))?
            }
            OperatorCommand::Unpause => acd.unpause(now, &op)?,
        }
        info!(operator, command = %what, "operator state changed in the ACD");
        self.drain(now);
        Ok(())
    }

    /// Tells the ACD which of the users whose bindings changed still have a live contact.
    fn registrations_changed(&mut self, now: Instant, changes: &[sip::registrar::BindingChange]) {
        let Some(acd) = self.acd.as_mut() else {
            return;
        };
        let users: BTreeSet<&str> = changes.iter().map(|c| c.user.as_str()).collect();
        for user in users {
            let registered = !self.registrar.lookup(now, user).is_empty();
            match acd.set_registered(now, &OperatorId::from(user), registered) {
                Ok(()) | Err(AcdError::UnknownOperator(_)) => {}
                Err(e) => debug!(error = %e, "registration not taken by the ACD"),
            }
        }
    }

    /// Carries out what the ACD asks for, until it has nothing more.
    fn drive_acd(&mut self, now: Instant) {
        while let Some(action) = self.acd.as_mut().and_then(Acd::poll_action) {
            self.on_acd_action(now, action);
        }
    }

    fn on_acd_action(&mut self, now: Instant, action: acd::Action) {
        use acd::Action;
        match action {
            Action::Offer { caller, operators } => self.offer_operators(now, caller, operators),
            Action::CancelOffer { caller, operator } => self.cancel_offer(now, caller, &operator),
            Action::Connect { caller, operator } => {
                self.waiting_over(caller);
                self.connect(now, caller, operator)
            }
            Action::Left { caller, outcome } => {
                self.callback_left(caller, &outcome);
                let Some(call_id) = self.acd_callers.remove(&caller) else {
                    return;
                };
                let Some(call) = self.calls.get_mut(&call_id) else {
                    return;
                };
                call.acd_caller = None;
                let _e = call.span.clone().entered();
                info!(?outcome, "caller left the ACD");
                if let Some(queue) = call.queued.take() {
                    self.stats.queue_leave(&queue, &call_id);
                    call.last_queue = Some(queue);
                }
            }
            Action::CancelDirect { operator } => self.direct_rang_out(now, &operator),
            Action::Overflow {
                caller,
                to: acd::OverflowAction::Queue(q),
                reason,
            } => {
                let Some(call_id) = self.acd_callers.get(&caller).cloned() else {
                    return;
                };
                let Some(call) = self.calls.get_mut(&call_id) else {
                    return;
                };
                let _e = call.span.clone().entered();
                info!(to = %q, ?reason, "caller overflowed to another queue");
                if let Some(old) = call.queued.replace(q.to_string()) {
                    self.stats.queue_leave(&old, &call_id);
                }
                self.stats.queue_enter(q.as_str(), &call_id, now);
                if let (Some(leg), Some(music)) = (&call.leg, self.settings.moh_for(q.as_str())) {
                    if let Err(e) = self.media.play_moh(leg, &call.prompts, music) {
                        warn!(%e, "music on hold not loaded; the caller waits in silence");
                    }
                }
            }
            a @ (Action::Announce { .. }
            | Action::OfferCallback { .. }
            | Action::Overflow { .. }) => self.on_waiting_action(now, a),
            Action::StartCallback {
                caller,
                number,
                operator,
            } => self.start_callback(now, caller, number, operator),
            other => debug!(action = ?other, "ACD action not carried out yet"),
        }
    }

    /// End a call from our side: BYE when answered, a final error while ringing.
    fn end_call(&mut self, now: Instant, call_id: &str, why: EndReason) {
        let Some(mut call) = self.calls.remove(call_id) else {
            return;
        };
        let _e = call.span.clone().entered();
        info!(reason = why.as_str(), "hanging up");
        self.ended(now, &mut call, why);
        match call.state {
            CallState::Ringing => {
                if let Some(tx) = call.invite_tx.take() {
                    let mut r = call.invite.response(480);
                    r.headers
                        .set(HeaderName::To, call.dialog.local_uri.to_string());
                    self.respond(now, &tx, r);
                }
            }
            CallState::Answered => {
                let bye = self.build_bye(&mut call);
                match self.endpoint.send_request(now, call.peer, bye) {
                    Ok(tx) => {
                        self.our_requests.insert(tx);
                    }
                    Err(e) => debug!(error = %e, "could not send BYE"),
                }
            }
        }
    }

    /// Write the end of a call to its appeal and release its media.
    fn ended(&mut self, now: Instant, call: &mut Call, reason: EndReason) {
        // Its long timers go with it: left in the set, they would stay until they fire (the
        // maximum duration's after four hours by default), about 130 bytes a call.
        let id = &call.dialog.id.call_id;
        for key in [
            (call.answer_at, TimerKind::Answer),
            (call.end_at, TimerKind::MaxDuration),
        ]
        .into_iter()
        .chain(call.expires_at.map(|at| (at, TimerKind::SessionExpiry)))
        {
            self.timers.remove(&(key.0, id.clone(), key.1));
        }
        if let Some(leg) = call.leg.take() {
            leg.close(now);
        }
        call.ports = None;
        self.media.ports.release(call.rtp_port);
        if std::mem::take(&mut call.in_ivr) {
            self.stats.calls_in_ivr.fetch_sub(1, Ordering::Relaxed);
        }
        if let Some(queue) = call.queued.take() {
            self.stats.queue_leave(&queue, &call.dialog.id.call_id);
        }
        if let Some(id) = call.acd_caller.take() {
            self.acd_callers.remove(&id);
            if let Some(acd) = self.acd.as_mut() {
                if let Err(e) = acd.caller_left(now, id) {
                    debug!(error = %e, "caller already out of the ACD");
                }
            }
        }
        let answered = call.state == CallState::Answered;
        let talked = if answered {
            now.saturating_duration_since(call.answer_at)
        } else {
            Duration::ZERO
        };
        self.caller_gone_from_trunk(now, &call.dialog.id.call_id);
        let operator = call.operator.take().map(|conn| {
            self.caller_gone_from_operator(now, &conn);
            (
                conn.operator.to_string(),
                now.saturating_duration_since(conn.since),
            )
        });
        if call.appeal.is_empty() {
            return; // a feature-code call writes no appeal
        }
        self.log.call_ended(
            &call.appeal,
            &CallEnded {
                reason,
                answered,
                talked,
                ivr: call.ivr_end,
                operator,
            },
        );
    }

    /// A BYE in the call's dialog (RFC 3261 §12.2.1.1, §15.1.1).
    fn build_bye(&self, call: &mut Call) -> Request {
        let mut bye = call
            .dialog
            .request(Method::Bye, &host_port(call.local), call.peer.transport);
        bye.headers
            .push(HeaderName::UserAgent, self.settings.user_agent.as_str());
        bye
    }
}

/// Our answer to the SDP offer in an INVITE or re-INVITE (`None` when it has no body: we offer
/// in the 200 then), or the response refusing it: 415 for a body that is not SDP, 488 with a
/// Warning when no offered media is acceptable, 400 for malformed SDP.
fn answer_offer(req: &Request) -> Result<Option<Negotiated>, Response> {
    if req.body.is_empty() {
        return Ok(None);
    }
    let ct = req.headers.get(&HeaderName::ContentType).unwrap_or("");
    let r = if !ct
        .trim()
        .to_ascii_lowercase()
        .starts_with("application/sdp")
    {
        let mut r = req.response(415);
        r.headers.push(HeaderName::Accept, "application/sdp");
        r
    } else {
        match sdp::answer_body(&req.body) {
            Ok(n) => return Ok(Some(n)),
            Err(e) if e.is_not_acceptable() => {
                let mut r = req.response(488);
                r.headers.push(
                    HeaderName::Warning,
                    "304 hotline \"Media type not available\"",
                );
                r
            }
            Err(e) => {
                let mut r = req.response(400);
                r.reason = format!("Bad Request - {e}");
                r
            }
        }
    };
    Err(with_to_tag(r, req, None))
}

/// Add our To tag to a response (any final response creating no dialog still needs one,
/// RFC 3261 §8.2.6.2).
fn with_to_tag(mut r: Response, req: &Request, tag: Option<&str>) -> Response {
    if let Ok(mut to) = req.headers.to_addr() {
        if to.tag().is_none() {
            let t = tag.map(str::to_string).unwrap_or_else(|| random_token(8));
            to.params.set("tag", Some(t));
            r.headers.set(HeaderName::To, to.to_string());
        }
    }
    r
}

fn host_port(a: SocketAddr) -> String {
    match a {
        SocketAddr::V4(v4) => format!("{}:{}", v4.ip(), v4.port()),
        SocketAddr::V6(v6) => format!("[{}]:{}", v6.ip(), v6.port()),
    }
}

/// The digit of a SIP INFO: `application/dtmf-relay` (`Signal=5`) or `application/dtmf`
/// (the key itself, or its event code `0`–`15`).
fn info_digit(req: &Request) -> Option<char> {
    let ct = req.headers.get(&HeaderName::ContentType)?;
    let ct = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let body = std::str::from_utf8(&req.body).ok()?;
    let value = match ct.as_str() {
        "application/dtmf-relay" => body.lines().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            k.trim().eq_ignore_ascii_case("signal").then(|| v.trim())
        })?,
        "application/dtmf" => body.trim(),
        _ => return None,
    };
    let mut chars = value.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) => media::dtmf4733::Digit::from_char(c).map(|d| d.as_char()),
        _ => value
            .parse::<u8>()
            .ok()
            .and_then(media::dtmf4733::Digit::from_event)
            .map(|d| d.as_char()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(ct: &str, body: &str) -> Request {
        let text = format!(
            "INFO sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:c@d>;tag=1\r\nTo: <sip:a@b>;tag=2\r\nCall-ID: x\r\nCSeq: 2 INFO\r\nContent-Type: {ct}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        match sip::parse_message(text.as_bytes()).unwrap() {
            Message::Request(r) => r,
            Message::Response(_) => panic!("not a request"),
        }
    }

    #[test]
    fn info_bodies_give_their_digit() {
        assert_eq!(
            info_digit(&info(
                "application/dtmf-relay",
                "Signal=5\r\nDuration=160\r\n"
            )),
            Some('5')
        );
        assert_eq!(
            info_digit(&info(
                "application/dtmf-relay",
                "Signal= #\r\nDuration= 250\r\n"
            )),
            Some('#')
        );
        assert_eq!(
            info_digit(&info("Application/DTMF-Relay; x=y", "signal=*\r\n")),
            Some('*')
        );
        assert_eq!(info_digit(&info("application/dtmf", "7")), Some('7'));
        assert_eq!(info_digit(&info("application/dtmf", "11")), Some('#'));
        assert_eq!(
            info_digit(&info("application/dtmf-relay", "Signal=Z\r\n")),
            None
        );
        assert_eq!(
            info_digit(&info("application/dtmf-relay", "Duration=160\r\n")),
            None
        );
        assert_eq!(info_digit(&info("application/dtmf", "99")), None);
        assert_eq!(info_digit(&info("text/plain", "5")), None);
    }
}
