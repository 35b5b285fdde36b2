//! The tokio edge of Hotline: SIP sockets, the clock, and the task that drives the sans-IO
//! cores (`sip` transactions and registrar) and call control.
//!
//! Real time enters in exactly one place: [`Gateway::run`]'s loop, which sleeps until the
//! cores' next deadline and hands them `Instant::now()`.

mod core;
pub mod live;
mod media;
mod overload;
pub mod settings;
mod transport;

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use sip::auth::DigestServer;
use sip::registrar::{Registrar, RegistrarConfig};
use sip::transaction::{Endpoint, TimerConfig};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub use media::DtmfVia;
pub use overload::{OverloadSettings, ShedReason};
pub use settings::{
    DtmfMode, LineSettings, OperatorSettings, Settings, TrunkOutbound, TrunkSettings,
};

/// A new configuration for the running gateway, and where to say it was taken.
type ReloadRequest = (Settings, tokio::sync::oneshot::Sender<Vec<&'static str>>);

/// Hands a reloaded configuration to the running gateway (SIGHUP, `POST /api/v1/reload`).
/// Cheap to clone.
#[derive(Clone)]
pub struct Reloader {
    tx: mpsc::UnboundedSender<ReloadRequest>,
}

pub use core::feature_codes::{FeatureCodes, FeaturePrompts};
pub use core::waiting::WAITING_PROMPTS;
pub use core::{OperatorCommand, OperatorControlError};

/// What the admin API asks of the running gateway about operators.
enum OperatorRequest {
    Command(
        String,
        OperatorCommand,
        tokio::sync::oneshot::Sender<Result<(), OperatorControlError>>,
    ),
    Status(
        String,
        tokio::sync::oneshot::Sender<Option<acd::OperatorStatus>>,
    ),
}

/// Hands operators' login, logout, pause and unpause to the running gateway, where they go
/// through the same code as the softphones' feature codes (the [`OperatorBook`], then the
/// ACD). Cheap to clone.
#[derive(Clone)]
pub struct OperatorControl {
    tx: mpsc::UnboundedSender<OperatorRequest>,
}

impl OperatorControl {
    /// Applies `cmd` to `operator` (book, then ACD) and returns once it has, or why not.
    pub async fn apply(
        &self,
        operator: &str,
        cmd: OperatorCommand,
    ) -> Result<(), OperatorControlError> {
        let (done, applied) = tokio::sync::oneshot::channel();
        self.tx
            .send(OperatorRequest::Command(operator.to_string(), cmd, done))
            .map_err(|_| OperatorControlError::Stopped)?;
        applied.await.map_err(|_| OperatorControlError::Stopped)?
    }

    /// The operator's state in the ACD (`None`: the ACD does not know the operator, or none
    /// runs).
    pub async fn status(
        &self,
        operator: &str,
    ) -> Result<Option<acd::OperatorStatus>, OperatorControlError> {
        let (done, answer) = tokio::sync::oneshot::channel();
        self.tx
            .send(OperatorRequest::Status(operator.to_string(), done))
            .map_err(|_| OperatorControlError::Stopped)?;
        answer.await.map_err(|_| OperatorControlError::Stopped)
    }
}

/// Why the [`OperatorBook`] refused an operator command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OperatorRefusal {
    /// No configured operator has this login.
    #[error("no operator {0:?}")]
    Unknown(String),
    /// The command does not apply to the operator's state (`state` as the book names it:
    /// `logged_out`, `available`, `paused`).
    #[error("operator {operator:?} is {state}: cannot {action}")]
    WrongState {
        operator: String,
        state: &'static str,
        action: &'static str,
    },
}

/// Where operators' work state is kept (the daemon's operator table, saved to the database).
/// Every login, logout, pause and unpause — from the admin API through [`OperatorControl`] or
/// from a softphone's feature code — is checked and recorded here first, then applied to the
/// ACD: one path for both. Called on the core task: implementations must never block (the
/// daemon's appends to the appeal spool and takes a short lock).
pub trait OperatorBook: Send + Sync + 'static {
    /// Checks and records `cmd` for `operator`.
    fn apply(&self, operator: &str, cmd: &OperatorCommand) -> Result<(), OperatorRefusal>;
    /// The state restored at start, as commands for the ACD (`Login`, then `Pause` for a
    /// paused operator); the gateway applies them before it handles the first message.
    fn restored(&self) -> Vec<(String, OperatorCommand)> {
        Vec::new()
    }
    /// A reload changed the skills of a logged-in operator: these are the queues the ACD
    /// now serves them from (the book records them as the login's queues).
    fn queues_changed(&self, _operator: &str, _queues: &[String]) {}
}

/// An [`OperatorBook`] that keeps nothing and refuses nothing (tests, tools): the ACD alone
/// decides.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoOperatorBook;

impl OperatorBook for NoOperatorBook {
    fn apply(&self, _: &str, _: &OperatorCommand) -> Result<(), OperatorRefusal> {
        Ok(())
    }
}

/// The gateway is not running any more (shut down).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the SIP gateway is not running")]
pub struct GatewayStopped;

impl Reloader {
    /// Switches the gateway to `settings` and returns once it has: every call that arrives
    /// afterwards gets the new lines, menus and prompts, while calls in progress finish on the
    /// ones they started with. Settings only a restart can change are kept; the names of those
    /// that differ are returned (see [`Settings::keep_restart_only`]).
    pub async fn reload(&self, settings: Settings) -> Result<Vec<&'static str>, GatewayStopped> {
        let (done, applied) = tokio::sync::oneshot::channel();
        self.tx.send((settings, done)).map_err(|_| GatewayStopped)?;
        applied.await.map_err(|_| GatewayStopped)
    }
}
use transport::{Inbound, Limits, Outbound};

/// A caller number as it may appear in logs: masked unless redaction is turned off.
pub struct Caller<'a> {
    number: &'a str,
    redact: bool,
}

impl<'a> Caller<'a> {
    pub fn new(number: &'a str, redact: bool) -> Caller<'a> {
        Caller { number, redact }
    }
}

impl fmt::Display for Caller<'_> {
    /// Redacted: every character but the last two becomes `*` (`*****87`), enough to tell
    /// calls apart in a log without exposing who called.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.redact {
            return f.write_str(self.number);
        }
        let n = self.number.chars().count();
        for (i, c) in self.number.chars().enumerate() {
            if i + 2 >= n && n > 4 {
                write!(f, "{c}")?;
            } else {
                f.write_str("*")?;
            }
        }
        Ok(())
    }
}

/// How a call ended, for its appeal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// The caller sent BYE.
    CallerHungUp,
    /// The caller cancelled before we answered.
    CallerCancelled,
    /// RFC 4028 session timer ran out without a refresh.
    SessionExpired,
    /// The call reached `calls.max_duration`.
    MaxDuration,
    /// The daemon's shutdown grace period ended.
    Shutdown,
    /// Our 200 OK was never acknowledged.
    NoAck,
    /// No RTP from the caller for `rtp.timeout_seconds` (a dead call).
    RtpTimeout,
    /// Every RTP port of the range was taken: the call got 503.
    NoMediaPort,
    /// The voice menu ended the call (a `hangup` node, a booked callback's closing prompt, a
    /// transfer, or a message that reached its longest length).
    IvrHangup,
    /// The operator the caller was bridged to hung up.
    OperatorHungUp,
    /// The outside number the caller was transferred to hung up.
    TransferEnded,
    /// A transfer to an outside number failed with nobody left to take the caller (the menu
    /// had no fallback, or the operator who transferred had hung up).
    TransferFailed,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::CallerHungUp => "caller_hung_up",
            EndReason::CallerCancelled => "caller_cancelled",
            EndReason::SessionExpired => "session_expired",
            EndReason::MaxDuration => "max_duration",
            EndReason::Shutdown => "shutdown",
            EndReason::NoAck => "no_ack",
            EndReason::RtpTimeout => "rtp_timeout",
            EndReason::NoMediaPort => "no_media_port",
            EndReason::IvrHangup => "ivr_hangup",
            EndReason::OperatorHungUp => "operator_hung_up",
            EndReason::TransferEnded => "transfer_ended",
            EndReason::TransferFailed => "transfer_failed",
        }
    }
}

/// A call that reached a line.
#[derive(Debug, Clone)]
pub struct CallArrived<'a> {
    pub call_id: &'a str,
    pub line: &'a str,
    pub caller: &'a str,
}

/// A call that ended.
#[derive(Debug, Clone)]
pub struct CallEnded {
    pub reason: EndReason,
    /// Whether the line had answered (200 OK sent).
    pub answered: bool,
    /// From answer to end (zero when never answered).
    pub talked: Duration,
    /// Where the voice menu left the caller, when the line has one and it got that far.
    pub ivr: Option<IvrEnd>,
    /// The operator the caller talked to and for how long (from the bridge to the end).
    pub operator: Option<(String, Duration)>,
}

/// Where a call's voice menu ended, for the appeal's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IvrEnd {
    /// The caller entered a queue (whether an operator answered is [`CallEnded::operator`]).
    Queue,
    /// Sent to an outside number (see [`IvrStep::Transferred`] and [`CallLog::transferred`]).
    Transferred,
    /// A callback was booked.
    Callback,
    /// The caller left a message.
    Message,
    /// A `hangup` node ended the call.
    Hangup,
}

/// One step of a call's voice menu, for its appeal (issue 4 item 7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IvrStep {
    /// A step of the path (`main`, `main:1`, `main:timeout`, `hours:closed`…) and the whole
    /// path so far joined with `>` (what the appeal's `ivr_path` becomes).
    Path { step: String, path: String },
    /// The appeal's category.
    Category(String),
    /// The queue priority from here on.
    Priority(i32),
    /// A variable the menu set or collected.
    Variable { name: String, value: String },
    /// The caller entered a queue; the call stays up hearing the queue's music on hold.
    EnteredQueue { queue: String, priority: i32 },
    /// The menu sends the caller to an outside number: it is dialled through the trunk and
    /// bridged on the answer ([`CallLog::transferred`] says how it went).
    Transferred { number: String },
    /// A callback was booked to `number`; the call ends after the closing prompt.
    CallbackRequested {
        number: String,
        /// The queue whose place the callback keeps (`None`: a menu callback node without one).
        queue: Option<String>,
    },
    /// A message is being recorded to `file` (at most `max`); the call ends after it.
    Message { file: String, max: Duration },
}

/// Where call control writes down each call: the daemon backs it with the appeals store.
/// Implementations must never block (the core task calls them inline).
pub trait CallLog: Send + Sync + 'static {
    /// A call reached a line; returns the appeal id (made locally, never waits for a database).
    fn call_arrived(&self, call: &CallArrived<'_>) -> String;
    /// The call ended.
    fn call_ended(&self, appeal: &str, end: &CallEnded);
    /// The caller pressed `digit` (`0`–`9`, `*`, `#`, `A`–`D`), received `via` `rfc4733`,
    /// `info` or `inband`. Only digits the line's DTMF mode takes are reported, each once.
    fn digit(&self, appeal: &str, digit: char, via: &str) {
        let _ = (appeal, digit, via);
    }
    /// The call's voice menu took a step (path, category, variables, where it ended).
    fn ivr_step(&self, appeal: &str, step: &IvrStep) {
        let _ = (appeal, step);
    }
    /// An operator answered the waiting caller after `waited` in the queue; they are bridged.
    fn operator_answered(&self, appeal: &str, operator: &str, waited: Duration) {
        let _ = (appeal, operator, waited);
    }
    /// Returning callers: the operator who handled `caller`'s latest open (not resolved)
    /// appeal that arrived within `lookback`, if any. Called when a caller with a number
    /// enters a queue with `returning_days`; the gateway awaits the answer on a task of its
    /// own, bounded by a short timeout, and the caller joins the queue without a preference
    /// when it fails or is late (the call never waits for a database). The default finds none.
    fn returning_operator(&self, caller: &str, lookback: Duration) -> ReturningLookup {
        let _ = (caller, lookback);
        Box::pin(std::future::ready(Ok(None)))
    }
    /// A transfer of the caller (by an operator's REFER or a menu's transfer node) reached its
    /// target (`status` 200) or failed with `status`.
    fn transferred(&self, appeal: &str, transfer: &TransferRecord<'_>) {
        let _ = (appeal, transfer);
    }
    /// The operator of a booked callback is on the line and its number is being dialled:
    /// attempt `attempt` (1 for the first); `appeal` is the booking call's.
    fn callback_dialling(&self, appeal: &str, operator: &str, attempt: u32) {
        let _ = (appeal, operator, attempt);
    }
    /// One attempt to call a booked callback's number ended; `appeal` is the booking call's.
    /// Unless it was answered the ACD tries again later, or gives up ([`CallLog::callback_failed`]).
    fn callback_attempt(&self, appeal: &str, attempt: &CallbackAttempt<'_>) {
        let _ = (appeal, attempt);
    }
    /// The ACD gave a booked callback up after `attempts` attempts (or with none, when it
    /// could not be placed before the queue's limits).
    fn callback_failed(&self, appeal: &str, attempts: u32) {
        let _ = (appeal, attempts);
    }
    /// A callback's talk ended: the caller talked to `operator` for `talked` (from the
    /// bridge). The appeal's outcome stays `callback`, now with the operator and talk time.
    fn callback_talked(&self, appeal: &str, operator: &str, talked: Duration) {
        let _ = (appeal, operator, talked);
    }
}

/// The answer to [`CallLog::returning_operator`]: the operator's login, or none.
pub type ReturningLookup = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Option<String>, LookupError>> + Send + 'static>,
>;

/// Why [`CallLog::returning_operator`] could not answer.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// The appeal store is not connected (yet, or any more).
    #[error("the appeal store is not connected")]
    NotConnected,
    /// The query failed.
    #[error("the appeal store query failed: {0}")]
    Query(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// What a caller was transferred to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferKind {
    /// A queue of the ACD (the caller waits there again).
    Queue,
    /// An outside number dialled through the trunk.
    Number,
    /// Another operator, rung directly (an operator's REFER naming them).
    Operator,
}

impl TransferKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TransferKind::Queue => "queue",
            TransferKind::Number => "number",
            TransferKind::Operator => "operator",
        }
    }
}

/// A transfer of a caller, for its appeal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferRecord<'a> {
    /// The operator whose REFER asked for it (`None`: the voice menu).
    pub operator: Option<&'a str>,
    /// The queue name, the number or the operator.
    pub target: &'a str,
    pub kind: TransferKind,
    /// 200 when the caller reached the target, else the failure (the SIP status).
    pub status: u16,
    /// How long the caller talked to that operator before the transfer.
    pub operator_talked: Option<Duration>,
}

/// How one callback attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallbackOutcome {
    Answered,
    NoAnswer,
    Busy,
    /// The number could not be reached (a trunk error, no trunk).
    Failed,
    /// The operator hung up before the number answered.
    OperatorLeft,
}

impl CallbackOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            CallbackOutcome::Answered => "answered",
            CallbackOutcome::NoAnswer => "no_answer",
            CallbackOutcome::Busy => "busy",
            CallbackOutcome::Failed => "failed",
            CallbackOutcome::OperatorLeft => "operator_left",
        }
    }
}

/// One attempt to call a callback's number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackAttempt<'a> {
    pub number: &'a str,
    /// The operator who waited on the line.
    pub operator: &'a str,
    /// 1 for the first attempt.
    pub attempt: u32,
    pub result: CallbackOutcome,
}

/// A `CallLog` that writes nothing (tests, tools).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoCallLog;

impl CallLog for NoCallLog {
    fn call_arrived(&self, _: &CallArrived<'_>) -> String {
        String::new()
    }
    fn call_ended(&self, _: &str, _: &CallEnded) {}
}

/// Live figures the admin API and metrics read.
#[derive(Debug, Default)]
pub struct Stats {
    pub ready: AtomicBool,
    pub draining: AtomicBool,
    pub calls: AtomicU64,
    pub calls_total: AtomicU64,
    pub calls_answered: AtomicU64,
    pub calls_cancelled: AtomicU64,
    pub registrations: AtomicU64,
    /// Answered calls walking their line's voice menu now (gauge): from the answer until
    /// they enter a queue or end.
    pub calls_in_ivr: AtomicU64,
    /// RTP packets sent on every leg (added by the media thread once per 1 ms sub-tick).
    pub rtp_packets_sent: AtomicU64,
    /// Datagrams that reached a leg's RTP port (added by the media thread).
    pub rtp_packets_received: AtomicU64,
    /// Packets the legs' receivers counted as lost (RFC 3550 A.3, per remote source; a
    /// packet counted lost that turns up late stays counted).
    pub rtp_packets_lost: AtomicU64,
    /// Calls hung up because no RTP arrived for the configured timeout.
    pub rtp_timeouts: AtomicU64,
    /// RTP legs the media thread serves now (gauge; a closed leg until its RTCP BYE is out).
    pub rtp_legs_active: AtomicU64,
    /// DTMF digits received, by [`DtmfVia`] (in the order of [`DTMF_KINDS`]).
    dtmf: [AtomicU64; 3],
    /// SIP responses sent, by [`SIP_RESPONSE_CODES`]; then one "other" slot per class 1xx–6xx.
    responses: [AtomicU64; SIP_RESPONSE_CODES.len() + 6],
    requests: Mutex<Vec<(String, u64)>>,
    contacts: Mutex<Vec<RegisteredContact>>,
    /// Callers waiting in each queue, by the time they entered it (see [`QueueWait`]).
    queues: Mutex<Vec<(String, Waiters)>>,
    /// Operators ringing, on a call or in wrap-up in the ACD now.
    pub activity: live::ActivityBoard,
    /// Call timers pending in call control (gauge): each call's answer, session expiry and
    /// maximum duration, menu and waiting timeouts. Falls back to zero when no call is up.
    pub call_timers: AtomicU64,
    /// New INVITEs answered 503 because the daemon was behind, by [`ShedReason::ALL`].
    invites_shed: [AtomicU64; 4],
    /// The media thread's average lateness on its 1 ms grid, in microseconds.
    media_late_us: AtomicU64,
}

/// The calls waiting in one queue: when each entered it, and its Call-ID.
type Waiters = Vec<(Instant, Arc<str>)>;

/// The DTMF kinds [`Stats::dtmf_digits`] reports, in its order.
pub const DTMF_KINDS: [DtmfVia; 3] = [DtmfVia::Rfc4733, DtmfVia::Info, DtmfVia::Inband];

/// Status codes [`Stats::responses`] counts one by one; any other is counted as `other` in
/// its class.
pub const SIP_RESPONSE_CODES: [u16; 26] = [
    100, 180, 183, 200, 400, 401, 403, 404, 405, 407, 408, 415, 420, 422, 480, 481, 482, 483, 486,
    487, 488, 491, 500, 501, 503, 603,
];

/// SIP responses sent with one status code (or the uncommon codes of one class).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseCount {
    /// `1xx` … `6xx`.
    pub class: &'static str,
    /// The code, or `None` for the class's codes not in [`SIP_RESPONSE_CODES`].
    pub code: Option<u16>,
    pub count: u64,
}

/// Callers waiting in one queue now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueWait {
    pub queue: String,
    /// Callers in the queue now.
    pub waiting: u64,
    /// When the longest-waiting of them entered it (`None` when nobody waits).
    pub oldest: Option<Instant>,
}

impl QueueWait {
    /// How long the longest-waiting caller has waited at `now` (zero when nobody waits).
    pub fn longest_wait(&self, now: Instant) -> Duration {
        self.oldest
            .map(|t| now.saturating_duration_since(t))
            .unwrap_or_default()
    }
}

const CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "6xx"];

/// One registered contact of an operator, as the registrar holds it now: a read-only copy
/// the core publishes after every REGISTER and expiry, for the admin API.
#[derive(Debug, Clone, PartialEq)]
pub struct RegisteredContact {
    /// The operator's login (the registered user).
    pub operator: String,
    /// The contact URI the phone registered.
    pub contact: String,
    /// Where the REGISTER came from (the address that reaches the phone).
    pub source: SocketAddr,
    /// `UDP` or `TCP`.
    pub transport: &'static str,
    /// When the binding runs out unless refreshed.
    pub expires_at: Instant,
}

impl Stats {
    /// One DTMF digit received (the call control counts every digit that reaches a call,
    /// kept or not).
    pub fn count_digit(&self, via: DtmfVia) {
        if let Some(i) = DTMF_KINDS.iter().position(|k| *k == via) {
            if let Some(n) = self.dtmf.get(i) {
                n.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// DTMF digits received so far, by kind.
    pub fn dtmf_digits(&self) -> [(DtmfVia, u64); 3] {
        let mut out = DTMF_KINDS.map(|k| (k, 0));
        for ((_, n), a) in out.iter_mut().zip(&self.dtmf) {
            *n = a.load(Ordering::Relaxed);
        }
        out
    }

    /// Counts one outgoing SIP message when it is a response (`SIP/2.0 NNN …`); the call
    /// control calls it for everything it sends.
    pub fn count_sent(&self, bytes: &[u8]) {
        if bytes.get(..8) != Some(b"SIP/2.0 ") {
            return;
        }
        let Some(&[a, b, c]) = bytes.get(8..11) else {
            return;
        };
        if ![a, b, c].iter().all(u8::is_ascii_digit) {
            return;
        }
        let code = u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0');
        let slot = match SIP_RESPONSE_CODES.binary_search(&code) {
            Ok(i) => i,
            Err(_) if (1..=6).contains(&(code / 100)) => {
                SIP_RESPONSE_CODES.len() + usize::from(code / 100) - 1
            }
            Err(_) => return,
        };
        if let Some(n) = self.responses.get(slot) {
            n.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// SIP responses sent (retransmissions included), for every code counted one by one
    /// and every class's `other`, zeros included.
    pub fn responses(&self) -> Vec<ResponseCount> {
        let codes = SIP_RESPONSE_CODES.iter().map(|&c| (Some(c), c / 100));
        let others = (1..=6u16).map(|class| (None, class));
        codes
            .chain(others)
            .zip(&self.responses)
            .map(|((code, class), n)| ResponseCount {
                class: CLASSES
                    .get(usize::from(class).saturating_sub(1))
                    .copied()
                    .unwrap_or("other"),
                code,
                count: n.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// A call entered `queue` at `since` (the voice menu's queue node; the ACD later).
    pub fn queue_enter(&self, queue: &str, call_id: &str, since: Instant) {
        let mut qs = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        if !qs.iter().any(|(q, _)| q == queue) {
            qs.push((queue.to_string(), Vec::new()));
        }
        if let Some((_, w)) = qs.iter_mut().find(|(q, _)| q == queue) {
            w.push((since, Arc::from(call_id)));
        }
    }

    /// A call left `queue` (it ended, or, later, an operator took it).
    pub fn queue_leave(&self, queue: &str, call_id: &str) {
        let mut qs = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, w)) = qs.iter_mut().find(|(q, _)| q == queue) {
            w.retain(|(_, c)| &**c != call_id);
        }
    }

    /// Every queue a call has entered since the start, with its callers waiting now.
    pub fn queue_waits(&self) -> Vec<QueueWait> {
        let qs = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        qs.iter()
            .map(|(q, w)| QueueWait {
                queue: q.clone(),
                waiting: w.len() as u64,
                oldest: w.iter().map(|(t, _)| *t).min(),
            })
            .collect()
    }

    fn count_shed(&self, reason: ShedReason) {
        if let Some(n) = self.invites_shed.get(reason.index()) {
            n.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// New INVITEs shed with 503 since start, by reason (see `overload.rs`).
    pub fn invites_shed(&self) -> [(ShedReason, u64); 4] {
        ShedReason::ALL.map(|r| {
            (
                r,
                self.invites_shed
                    .get(r.index())
                    .map_or(0, |n| n.load(Ordering::Relaxed)),
            )
        })
    }

    /// How late the media thread is on its 1 ms grid (a moving average; zero without legs).
    pub fn media_late(&self) -> Duration {
        Duration::from_micros(self.media_late_us.load(Ordering::Relaxed))
    }

    fn count_request(&self, method: &str) {
        if let Ok(mut v) = self.requests.lock() {
            if let Some((_, n)) = v.iter_mut().find(|(m, _)| m == method) {
                *n += 1;
            } else if v.len() < 64 {
                v.push((method.to_string(), 1));
            }
        }
    }
    /// Replaces the contact snapshot with the registrar's bindings and updates the
    /// `registrations` count.
    pub(crate) fn publish_registrations(&self, registrar: &Registrar) {
        let contacts: Vec<RegisteredContact> = registrar
            .users()
            .into_iter()
            .flat_map(|(user, bindings)| {
                bindings.iter().map(move |b| RegisteredContact {
                    operator: user.to_string(),
                    contact: b.uri.to_string(),
                    source: b.source.addr,
                    transport: b.source.transport.as_str(),
                    expires_at: b.expires_at,
                })
            })
            .collect();
        self.publish_contacts(contacts);
    }

    /// Replaces the contact snapshot (and the `registrations` count) with `contacts`.
    pub fn publish_contacts(&self, contacts: Vec<RegisteredContact>) {
        self.registrations
            .store(contacts.len() as u64, Ordering::Relaxed);
        if let Ok(mut c) = self.contacts.lock() {
            *c = contacts;
        }
    }

    /// The operators' registered contacts as of the last REGISTER or expiry, by operator.
    pub fn registered_contacts(&self) -> Vec<RegisteredContact> {
        self.contacts.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// SIP requests received, by method.
    pub fn requests(&self) -> Vec<(String, u64)> {
        self.requests.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("cannot bind SIP {transport} on {addr}: {source}")]
    Bind {
        transport: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A bound but not yet running gateway: binding happens first so that a daemon with a busy
/// port fails before it claims to be up.
pub struct Gateway {
    settings: Arc<Settings>,
    stats: Arc<Stats>,
    log: Arc<dyn CallLog>,
    udp: Vec<(SocketAddr, Arc<UdpSocket>)>,
    tcp: Vec<(SocketAddr, TcpListener)>,
    /// The in-band DTMF detector every call clones (its tables are built once, here).
    detector: ::media::goertzel::DtmfDetector,
    reload_tx: mpsc::UnboundedSender<ReloadRequest>,
    reload_rx: mpsc::UnboundedReceiver<ReloadRequest>,
    ops_tx: mpsc::UnboundedSender<OperatorRequest>,
    ops_rx: mpsc::UnboundedReceiver<OperatorRequest>,
    book: Arc<dyn OperatorBook>,
    overload: OverloadSettings,
}

impl Gateway {
    pub async fn bind(
        settings: Settings,
        stats: Arc<Stats>,
        log: Arc<dyn CallLog>,
    ) -> Result<Gateway, GatewayError> {
        let mut udp = Vec::new();
        let mut tcp = Vec::new();
        for &addr in &settings.listen {
            let (u, t) = bind_pair(addr).await?;
            let local = u.local_addr().unwrap_or(addr);
            udp.push((local, Arc::new(u)));
            tcp.push((t.local_addr().unwrap_or(local), t));
        }
        // recordings cut short by a crash become playable again before anything else runs
        media::repair_recordings(&settings.recordings_dir);
        let (reload_tx, reload_rx) = mpsc::unbounded_channel();
        let (ops_tx, ops_rx) = mpsc::unbounded_channel();
        Ok(Gateway {
            book: Arc::new(NoOperatorBook),
            overload: OverloadSettings::default(),
            ops_tx,
            ops_rx,
            reload_tx,
            reload_rx,
            detector: ::media::goertzel::DtmfDetector::new(8000),
            settings: Arc::new(settings),
            stats,
            log,
            udp,
            tcp,
        })
    }

    /// A handle to reload the configuration of this gateway once it runs.
    pub fn reloader(&self) -> Reloader {
        Reloader {
            tx: self.reload_tx.clone(),
        }
    }

    /// Where operators' work state is kept and restored from (see [`OperatorBook`]); without
    /// one, the ACD alone keeps it and every operator starts logged out.
    pub fn with_operator_book(mut self, book: Arc<dyn OperatorBook>) -> Self {
        self.book = book;
        self
    }

    /// When new INVITEs are shed under overload (default [`OverloadSettings::default`]).
    pub fn with_overload(mut self, overload: OverloadSettings) -> Self {
        self.overload = overload;
        self
    }

    /// A handle to log operators in and out of the ACD (and pause them) once it runs.
    pub fn operators(&self) -> OperatorControl {
        OperatorControl {
            tx: self.ops_tx.clone(),
        }
    }

    /// The addresses actually bound (port 0 resolved); each serves UDP and TCP.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.udp.iter().map(|(a, _)| *a).collect()
    }

    /// Serve until `shutdown` is cancelled, then drain: new calls get 503, calls in progress
    /// have `shutdown_grace` to finish, the rest get BYE.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let settings = self.settings.clone();
        let stop_io = CancellationToken::new();
        // calls already up first: new INVITEs wait in their own queue (overload.rs)
        let (established_tx, mut established_rx) = mpsc::channel::<Inbound>(4096);
        let (new_calls_tx, mut new_calls_rx) =
            mpsc::channel::<Inbound>(self.overload.max_queue.saturating_mul(2).max(64));
        let core_tx = transport::CoreTx {
            established: established_tx,
            new_calls: new_calls_tx,
        };
        let admission = overload::Admission {
            settings: self.overload,
        };
        let limits = Arc::new(Limits {
            max_message_size: settings.max_message_size,
            retry_after: self.overload.retry_after,
            stats: self.stats.clone(),
        });
        let ua: Arc<str> = Arc::from(settings.user_agent.as_str());
        let mut tasks = tokio::task::JoinSet::new();
        let (mut udp_v4, mut udp_v6) = (None, None);
        for (local, sock) in self.udp {
            if local.is_ipv4() {
                udp_v4.get_or_insert_with(|| sock.clone());
            } else {
                udp_v6.get_or_insert_with(|| sock.clone());
            }
            tasks.spawn(transport::udp_loop(
                sock,
                local,
                core_tx.clone(),
                limits.clone(),
                ua.clone(),
                stop_io.clone(),
            ));
            info!(%local, "SIP over UDP");
        }
        for (local, listener) in self.tcp {
            tasks.spawn(transport::tcp_accept_loop(
                listener,
                core_tx.clone(),
                limits.clone(),
                ua.clone(),
                stop_io.clone(),
            ));
            info!(%local, "SIP over TCP");
        }
        let out = Outbound {
            udp_v4,
            udp_v6,
            tcp: Default::default(),
            core: core_tx.clone(),
            limits,
            user_agent: ua,
            stop: stop_io.clone(),
        };
        let start = Instant::now();
        let mut key = [0u8; 32];
        rand::Rng::fill(&mut rand::thread_rng(), &mut key);
        let timers = TimerConfig {
            t1: settings.t1,
            ..TimerConfig::default()
        };
        let registrar = Registrar::new(
            RegistrarConfig {
                lockout_threshold: settings.lockout_failures,
                lockout_duration: settings.lockout,
                ..RegistrarConfig::new(&settings.realm)
            },
            key,
            start,
        );
        let mut registrar = registrar;
        registrar
            .digest_mut()
            .set_algorithms(&settings.digest_algorithms);
        rand::Rng::fill(&mut rand::thread_rng(), &mut key);
        let mut trunk_auth =
            DigestServer::new(settings.realm.clone(), key, Duration::from_secs(300), start);
        trunk_auth.set_algorithms(&settings.digest_algorithms);
        let (media_tx, mut media_rx) = mpsc::unbounded_channel();
        let (edge, pacing) = media::MediaEdge::start(
            media::PortPool::new(settings.rtp_ports.0, settings.rtp_ports.1),
            settings.recordings_dir.clone(),
            self.detector,
            media_tx,
            stop_io.clone(),
            self.stats.clone(),
        );
        let mut core = core::Core::new(
            settings.clone(),
            Endpoint::new(timers),
            registrar,
            trunk_auth,
            self.stats.clone(),
            self.log.clone(),
            out,
            edge,
            self.book.clone(),
        );
        let (returning_tx, mut returning_rx) = mpsc::unbounded_channel();
        core.set_returning_channel(returning_tx);
        // operators' saved state, before the first message is handled
        core.restore_operators(start, self.book.restored());
        self.stats.ready.store(true, Ordering::Relaxed);

        // Shutdown runs in two steps: the grace period (calls may end by themselves), then a
        // short wait for the answers to our BYEs.
        let mut grace_deadline: Option<tokio::time::Instant> = None;
        let mut final_deadline: Option<tokio::time::Instant> = None;
        loop {
            let wake = core.poll_timeout();
            let sleep = async {
                match wake {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending::<()>().await,
                }
            };
            let deadline = final_deadline.or(grace_deadline);
            let shutdown_step = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                // in this order: the clock, the calls already up, the media, and new calls last
                biased;
                _ = sleep => {
                    let now = clock(&mut core);
                    core.handle_timeout(now);
                }
                m = established_rx.recv() => match m {
                    Some(Inbound::Message { peer, local, msg, .. }) => {
                        let now = clock(&mut core);
                        core.handle_message(now, peer, local, *msg);
                    }
                    Some(Inbound::TcpOpened { peer, tx }) => {
                        core.out.tcp.insert(peer, tx);
                    }
                    Some(Inbound::TcpClosed { peer }) => {
                        core.out.tcp.remove(&peer);
                    }
                    None => break,
                },
                Some(ev) = media_rx.recv() => {
                    let now = clock(&mut core);
                    core.handle_media(now, ev);
                }
                Some(found) = returning_rx.recv() => {
                    let now = clock(&mut core);
                    core.returning_found(now, found);
                }
                Some(req) = self.ops_rx.recv() => match req {
                    OperatorRequest::Command(op, cmd, done) => {
                        let now = clock(&mut core);
                        let _ = done.send(core.operator_command(now, &op, cmd));
                    }
                    OperatorRequest::Status(op, done) => {
                        let _ = done.send(core.operator_status(&op));
                    }
                },
                Some((new, done)) = self.reload_rx.recv() => {
                    let now = clock(&mut core);
                    let ignored = core.reload(now, new);
                    info!(lines = core.lines(), "configuration reloaded: new calls get it, calls in progress keep theirs");
                    let _ = done.send(ignored);
                }
                _ = shutdown.cancelled(), if grace_deadline.is_none() => {
                    info!(calls = core.calls(), grace_s = settings.shutdown_grace.as_secs(), "shutting down: new calls get 503, calls in progress may finish");
                    self.stats.draining.store(true, Ordering::Relaxed);
                    core.begin_drain();
                    grace_deadline = Some(tokio::time::Instant::now() + settings.shutdown_grace);
                }
                _ = shutdown_step => {
                    if final_deadline.is_some() {
                        warn!(waiting = core.outstanding_requests(), "stopping without the last answers");
                        break;
                    }
                    if core.calls() > 0 {
                        warn!(calls = core.calls(), "grace period over: hanging up the remaining calls");
                    }
                    core.hangup_all(Instant::now());
                    final_deadline = Some(tokio::time::Instant::now() + Duration::from_secs(5));
                }
                Some(m) = new_calls_rx.recv() => {
                    if let Inbound::Message { peer, local, msg, received } = m {
                        let now = clock(&mut core);
                        let shed = admission.check(now, received, new_calls_rx.len(), self.stats.media_late());
                        match (shed, &*msg) {
                            (Some(reason), sip::Message::Request(req))
                                if !req.headers.call_id().is_ok_and(|id| core.has_call(id)) =>
                            {
                                self.stats.count_request(req.method.as_str());
                                self.stats.count_shed(reason);
                                let busy = overload::busy_response(req, &settings.user_agent, admission.settings.retry_after);
                                self.stats.count_sent(&busy);
                                core.out.send(peer, busy);
                            }
                            // a retransmission of an INVITE the core has taken goes to it
                            _ => core.handle_message(now, peer, local, *msg),
                        }
                    }
                }
            }
            if grace_deadline.is_some() && core.calls() == 0 {
                if core.outstanding_requests() == 0 {
                    break;
                }
                final_deadline
                    .get_or_insert_with(|| tokio::time::Instant::now() + Duration::from_secs(5));
            }
        }
        self.stats.ready.store(false, Ordering::Relaxed);
        stop_io.cancel();
        let _ = pacing.await;
        // every recording gets its final header before we say we stopped
        if let Some(writer) = core.finish_media() {
            let _ = tokio::task::spawn_blocking(move || writer.join()).await;
        }
        while tasks.join_next().await.is_some() {}
        info!("SIP stopped");
    }
}

/// The time for one input to the core: the monotonic clock, and the civil time read with it
/// (the only place the wall clock is read; voice-menu schedules run on it).
fn clock(core: &mut core::Core) -> Instant {
    let now = Instant::now();
    core.set_wallclock(now, SystemTime::now());
    now
}

/// Bind UDP and TCP on one address. With port 0, TCP takes the port the OS gave UDP so a single
/// address (Via, Contact, `local_addrs`) names both; if that TCP port is taken, try another.
async fn bind_pair(addr: SocketAddr) -> Result<(UdpSocket, TcpListener), GatewayError> {
    let attempts = if addr.port() == 0 { 20 } else { 1 };
    let mut last = None;
    for _ in 0..attempts {
        let u = UdpSocket::bind(addr)
            .await
            .map_err(|source| GatewayError::Bind {
                transport: "UDP",
                addr,
                source,
            })?;
        let local = u.local_addr().unwrap_or(addr);
        match TcpListener::bind(local).await {
            Ok(t) => return Ok((u, t)),
            Err(source) => {
                last = Some(GatewayError::Bind {
                    transport: "TCP",
                    addr: local,
                    source,
                })
            }
        }
    }
    Err(last.unwrap_or(GatewayError::Bind {
        transport: "TCP",
        addr,
        source: std::io::Error::from(std::io::ErrorKind::AddrInUse),
    }))
}

#[cfg(test)]
mod tests {
    use super::{Caller, DtmfVia, ResponseCount, Stats};
    use std::time::{Duration, Instant};

    fn count(s: &Stats, class: &str, code: Option<u16>) -> u64 {
        s.responses()
            .into_iter()
            .find(|r| r.class == class && r.code == code)
            .map(|r| r.count)
            .unwrap()
    }

    #[test]
    fn responses_are_counted_by_code_and_class() {
        let s = Stats::default();
        s.count_sent(b"SIP/2.0 200 OK\r\nVia: x\r\n\r\n");
        s.count_sent(b"SIP/2.0 200 OK\r\n\r\n");
        s.count_sent(b"SIP/2.0 100 Trying\r\n\r\n");
        s.count_sent(b"SIP/2.0 486 Busy Here\r\n\r\n");
        s.count_sent(b"SIP/2.0 499 Odd\r\n\r\n");
        s.count_sent(b"SIP/2.0 699 Odd\r\n\r\n");
        // requests, garbage and codes outside 1xx-6xx are not responses
        s.count_sent(b"BYE sip:a@b SIP/2.0\r\n\r\n");
        s.count_sent(b"SIP/2.0 2x0 OK\r\n\r\n");
        s.count_sent(b"SIP/2.0 20");
        s.count_sent(b"SIP/2.0 700 Nope\r\n\r\n");
        s.count_sent(b"");
        assert_eq!(count(&s, "2xx", Some(200)), 2);
        assert_eq!(count(&s, "1xx", Some(100)), 1);
        assert_eq!(count(&s, "4xx", Some(486)), 1);
        assert_eq!(count(&s, "4xx", None), 1);
        assert_eq!(count(&s, "6xx", None), 1);
        let all = s.responses();
        assert_eq!(all.iter().map(|r| r.count).sum::<u64>(), 6);
        // every code sits in its own class, and each class has one `other`
        assert!(all.iter().all(|r: &ResponseCount| r.code.is_none_or(|c| r
            .class
            .starts_with(char::from_digit(u32::from(c / 100), 10).unwrap()))));
        assert_eq!(all.iter().filter(|r| r.code.is_none()).count(), 6);
    }

    #[test]
    fn digits_and_queue_waits_are_counted() {
        let s = Stats::default();
        s.count_digit(DtmfVia::Info);
        s.count_digit(DtmfVia::Inband);
        s.count_digit(DtmfVia::Inband);
        assert_eq!(
            s.dtmf_digits(),
            [
                (DtmfVia::Rfc4733, 0),
                (DtmfVia::Info, 1),
                (DtmfVia::Inband, 2)
            ]
        );
        let t0 = Instant::now();
        s.queue_enter("benefits", "c1", t0);
        s.queue_enter("benefits", "c2", t0 + Duration::from_secs(5));
        s.queue_enter("general", "c3", t0 + Duration::from_secs(1));
        let w = s.queue_waits();
        assert_eq!(w.len(), 2);
        assert_eq!((w[0].queue.as_str(), w[0].waiting), ("benefits", 2));
        assert_eq!(
            w[0].longest_wait(t0 + Duration::from_secs(10)),
            Duration::from_secs(10)
        );
        s.queue_leave("benefits", "c1");
        s.queue_leave("general", "c3");
        let w = s.queue_waits();
        assert_eq!(w[0].waiting, 1);
        assert_eq!(
            w[0].longest_wait(t0 + Duration::from_secs(10)),
            Duration::from_secs(5)
        );
        // an empty queue stays listed, with no wait
        assert_eq!((w[1].waiting, w[1].oldest), (0, None));
        assert_eq!(w[1].longest_wait(t0), Duration::ZERO);
    }

    #[test]
    fn caller_numbers_are_masked() {
        assert_eq!(
            Caller::new("+79131234567", true).to_string(),
            "**********67"
        );
        assert_eq!(
            Caller::new("+79131234567", false).to_string(),
            "+79131234567"
        );
        assert_eq!(Caller::new("101", true).to_string(), "***");
    }
}
