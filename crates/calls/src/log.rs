//! The data of what call control writes down about each call (the records of
//! [`crate::AppealEvent`]), the operator book's refusals, and how caller numbers appear in
//! logs.

use std::fmt;
use std::time::Duration;

/// Why the operator book refused an operator command ([`crate::BookEntry::Apply`]).
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
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// Sent to an outside number (see [`IvrStep::Transferred`] and [`crate::AppealRecord::Transferred`]).
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
    /// bridged on the answer ([`crate::AppealRecord::Transferred`] says how it went).
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
