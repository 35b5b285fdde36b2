//! Call control: the one place that owns the transaction endpoint, the registrar and every call.
//!
//! `Core` is driven like the sans-IO cores it holds: [`Input`]s and the time go in, [`Output`]s
//! come out (see the crate's top comment). One driver owns it, so it needs no locks.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use acd::{Acd, AcdError, CallerId, OperatorId, QueueId};
use sip::auth::{AuthOutcome, DigestServer};
use sip::dialog::{Dialog, DialogError};
use sip::registrar::Registrar;
use sip::room::shrink_if_sparse;
use sip::transaction::{Endpoint, Event, TimerConfig, TxKey};
use sip::{HeaderName, Message, Method, Peer, Request, Response, Tokens};
use tracing::{debug, info, info_span, warn, Span};

use crate::io::{DtmfVia, Input, LegId, MediaCommand, MediaEvent, MediaPorts, Output};
use crate::settings::{menu_prompt_name, DtmfMode, LineSettings, Settings};
use crate::{AppealIds, AppealRecord, CallEnded, Caller, EndReason, IvrEnd, IvrStep, Stats};
use media::prompts::{PromptCache, PromptName, PromptSequence};
use media::sdp::{self, Negotiated};

mod acd_reload;
mod feature_code_calls;
pub(crate) mod feature_codes;
mod offers;
mod operator_legs;
use operator_legs::{Connected, OpLegs, SipOut};
mod callback_calls;
mod callbacks;
mod outbound;
pub(crate) mod transfer;
mod transfer_calls;
mod trunk_calls;

pub(crate) mod queue;
mod queues;
use crate::waiting::Waiting;
use queues::{QueueState, Queues};

mod acd_link;
mod call;
mod callers;
use callers::{Arrival, Call, Calls};
mod dispatch;
mod live_out;
use live_out::QueueFigures;

/// The [`SipOut`] of `$core` (a `Core`): its endpoint, tokens and our requests.
macro_rules! sip_out {
    ($core:ident) => {
        SipOut {
            endpoint: &mut $core.endpoint,
            tokens: &mut $core.tokens,
            requests: &mut $core.our_requests,
        }
    };
}
use sip_out;
mod menu;
use menu::{MenuState, MenuStep};
mod out;
use out::Out;
mod sip_msg;
use sip_msg::*;

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

pub struct Core {
    settings: Arc<Settings>,
    endpoint: Endpoint,
    registrar: Registrar,
    trunk_auth: DigestServer,
    /// The callers' calls (see `callers`).
    calls: Calls,
    draining: bool,
    /// RTP ports for new legs (the media edge binds them).
    ports: Box<dyn MediaPorts>,
    /// What the driver has still to carry out, in order ([`Core::poll_output`]), and the
    /// calls' timers.
    out: Out,
    stats: Arc<Stats>,
    /// Where new calls' appeal ids come from (see [`AppealIds`]).
    appeal_ids: AppealIds,
    /// Every tag, branch, Call-ID, first CSeq, cnonce and SDP session id the core makes (the
    /// crate's top comment: one seed, the same bytes).
    tokens: Tokens,
    /// Client transactions we started and still wait on.
    our_requests: std::collections::HashSet<TxKey>,
    /// Our address the last message arrived on (for the Contact of a new call).
    last_local: Option<SocketAddr>,
    /// The civil time at an instant, as the driver last read it ([`Core::set_wallclock`]):
    /// voice-menu schedules run on it, and the core never reads the clock itself.
    wall: (Instant, SystemTime),
    /// The ACD, built once from [`Settings::acd`] (a reload keeps it); `None` without one.
    acd: Option<Acd>,
    /// The ACD's callers and the queues' hours (see `queues`).
    queues: Queues,
    /// Our calls out: to operators and through the trunk (see `operator_legs`).
    op_legs: OpLegs,
    /// Feature-code calls waiting for the operator book's verdict (see `feature_codes`).
    codes: feature_codes::AwaitingBook,
    /// Callbacks booked and being dialled (see `callbacks`).
    callbacks: callbacks::Callbacks,
    /// Transfers to numbers (see `outbound`).
    dialling: outbound::Dialling,
    /// Transfers to operators (see `transfer`).
    direct: transfer::DirectTransfers,
    /// Operators' states as last put out in live events (see `live_out`).
    live_ops: live_out::LiveOperators,
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

impl Core {
    /// A core for `settings`, the SIP timers of its transaction endpoint, the registrar and
    /// trunk digest server the driver made, its statistics, the seed every random value of
    /// the core comes from (fresh randomness at every start; see the crate's top comment) and
    /// the RTP ports of the media edge.
    // the parts are built in `Gateway::run`; a builder would only rename the arguments
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        now: Instant,
        wall: SystemTime,
        settings: Arc<Settings>,
        sip_timers: TimerConfig,
        registrar: Registrar,
        trunk_auth: DigestServer,
        stats: Arc<Stats>,
        seed: [u8; 32],
        ports: Box<dyn MediaPorts>,
    ) -> Core {
        let acd = settings.acd.clone().and_then(|c| match Acd::new(c) {
            Ok(a) => Some(a),
            Err(e) => {
                warn!(error = %e, "the ACD configuration is unusable; queues get no operators");
                None
            }
        });
        // one seed: the core's own draws, and one seed each for the appeal ids and the
        // endpoint's tags taken from them
        let mut tokens = Tokens::from_seed(seed);
        let appeal_ids = AppealIds::new(tokens.seed());
        let endpoint = Endpoint::new(sip_timers, Tokens::from_seed(tokens.seed()));
        Core {
            tokens,
            codes: Default::default(),
            acd,
            queues: Queues::new(now),
            op_legs: OpLegs::default(),
            callbacks: Default::default(),
            dialling: Default::default(),
            direct: Default::default(),
            live_ops: Default::default(),
            settings,
            endpoint,
            registrar,
            trunk_auth,
            calls: Calls::default(),
            draining: false,
            ports,
            out: Out::default(),
            stats,
            appeal_ids,
            our_requests: Default::default(),
            last_local: None,
            wall: (now, wall),
        }
    }

    /// Takes one input (see the crate's top comment); drain [`Core::poll_output`] after it.
    pub fn handle(&mut self, now: Instant, input: Input) {
        match input {
            Input::Sip { peer, local, msg } => self.handle_message(now, peer, local, msg),
            Input::Media(ev) => self.handle_media(now, ev),
            Input::Returning(found) => self.returning_found(now, found),
            Input::Booked(answer) => self.feature_code_booked(now, answer),
            Input::Timeout => self.handle_timeout(now),
        }
    }

    /// The next thing to carry out, in order; `None` when there is nothing more until the
    /// next input.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.poll()
    }

    /// A new appeal id for a call that arrives at `now` (on the driver's civil time).
    fn mint_appeal(&mut self, now: Instant) -> String {
        let ms = u64::try_from(self.wallclock(now).timestamp_millis()).unwrap_or(0);
        self.appeal_ids.mint(ms)
    }

    /// Asks the driver to carry out a media command.
    fn media(&mut self, cmd: MediaCommand) {
        self.out.media(cmd);
    }

    /// Bridges two legs when both run (a leg the core holds has not been closed); `false`
    /// when one of them has no media.
    fn bridge(&mut self, a: Option<LegId>, b: Option<LegId>) -> bool {
        match (a, b) {
            (Some(a), Some(b)) => {
                self.out.media(MediaCommand::Bridge { a, b });
                true
            }
            _ => false,
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
        // the pages get the new names and titles first, then every operator afresh
        self.out.live(crate::live::LiveEvent::Roster {
            roster: self.settings.roster.clone(),
            at: self.wallclock(now),
        });
        self.live_ops.republish();
        if let Some(acd) = self.acd.as_mut() {
            acd_reload::reload_operators(
                now,
                acd,
                &self.registrar,
                &old,
                &self.settings,
                &mut self.out,
            );
            self.drain(now);
        }
        ignored
    }

    pub fn calls(&self) -> usize {
        self.calls.len()
    }

    /// Whether a call with this Call-ID is up or being set up (overload shedding asks).
    pub fn has_call(&self, call_id: &str) -> bool {
        self.calls.contains(call_id)
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
        let call = self.out.next_timer();
        [
            call,
            self.endpoint.poll_timeout(),
            self.registrar.poll_timeout(),
            self.acd.as_ref().and_then(Acd::poll_timeout),
            self.acd.as_ref().map(|_| self.queues.hours_due()),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn handle_message(&mut self, now: Instant, peer: Peer, local: SocketAddr, msg: Message) {
        if let Message::Request(r) = &msg {
            self.stats.count_request(r.method.as_str());
            // remember where requests for this transaction came in, for our answers' Contact
            if let Ok(id) = r.headers.call_id() {
                if let Some(call) = self.calls.get_mut(id) {
                    call.set_local(local);
                }
            }
        }
        self.last_local = Some(local);
        self.endpoint.handle_message(now, peer, msg);
        self.drain(now);
    }

    fn handle_timeout(&mut self, now: Instant) {
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
        while let Some((at, call_id, kind)) = self.out.pop_due(now) {
            self.fire(now, at, &call_id, kind);
        }
        self.drain(now);
    }

    /// What the RTP legs report: digits and dead calls.
    fn handle_media(&mut self, now: Instant, ev: MediaEvent) {
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
                let Some(call) = self.calls.get_mut(&call_id) else {
                    return;
                };
                if !call.is_current_playback(generation) {
                    return; // a playback replaced or stopped since
                }
                call.menu_mut().playback_finished(now);
                self.drive_ivr(now, &call_id);
                self.waiting_playback_finished(now, &call_id);
                self.drain(now);
            }
            MediaEvent::RecordFailed { call_id } => {
                if let Some(call) = self.calls.get(&call_id) {
                    let _e = call.span().clone().entered();
                    warn!("cannot record the message; ending the call");
                    self.end_call(now, &call_id, EndReason::IvrHangup);
                    self.drain(now);
                }
            }
            MediaEvent::Inactive { call_id } => {
                if let Some(call) = self.calls.get(&call_id) {
                    self.stats.rtp_timeouts.fetch_add(1, Ordering::Relaxed);
                    let _e = call.span().clone().entered();
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

    /// Stop taking new calls; calls in progress go on.
    pub fn begin_drain(&mut self) {
        self.draining = true;
    }

    /// Hang up every call (end of the shutdown grace period).
    pub fn hangup_all(&mut self, now: Instant) {
        for id in self.calls.ids() {
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
                self.out.push(Output::Transmit(t));
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
            .store(self.out.timers() as u64, Ordering::Relaxed);
        // after a burst, the tables sized by calls in progress give their room back
        self.calls.give_back_room();
        shrink_if_sparse(&mut self.our_requests);
        self.queues.give_back_room();
        self.op_legs.give_back_room();
        self.dialling.give_back_room();
        self.publish_operators(now);
    }

    fn fire(&mut self, now: Instant, at: Instant, call_id: &str, kind: TimerKind) {
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        if !call.timer_is_current(kind, at) {
            return; // re-armed or cleared since
        }
        let _e = call.span().clone().entered();
        match kind {
            TimerKind::Answer => self.answer(now, call_id),
            TimerKind::SessionExpiry => {
                warn!("session timer expired without a refresh; hanging up");
                self.end_call(now, call_id, EndReason::SessionExpired);
            }
            TimerKind::MaxDuration => {
                warn!("call reached the maximum duration; hanging up");
                self.end_call(now, call_id, EndReason::MaxDuration);
            }
            TimerKind::Ivr => {
                call.menu_mut().timeout(now);
                self.drive_ivr(now, call_id);
            }
            TimerKind::Waiting => self.waiting_timeout(now, call_id, at),
            TimerKind::MessageEnd => {
                info!("message reached its longest length; hanging up");
                self.end_call(now, call_id, EndReason::IvrHangup);
            }
            TimerKind::FeatureCodeDone => self.end_call(now, call_id, EndReason::IvrHangup),
        }
    }
}
