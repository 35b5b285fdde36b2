//! What goes into call control and what comes out of it (see the crate's top comment for the
//! order): [`Input`], [`Output`], the media edge's [`MediaCommand`]s and [`MediaEvent`]s, and
//! the one synchronous question the core asks its driver, [`MediaPorts`].

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use media::prompts::{PromptCache, PromptName, PromptSequence};
use media::sdp::Negotiated;
use sip::transaction::Transmit;
use sip::{Message, Peer};

use crate::ReturningFound;

/// One RTP leg of the media edge: the Call-ID of the SIP call it carries (the caller's, or our
/// own for a leg we placed).
pub type LegId = Arc<str>;

/// Something that happened, for [`crate::Core::handle`].
#[derive(Debug)]
pub enum Input {
    /// A parsed, validated SIP message that arrived from `peer` on our address `local`.
    Sip {
        peer: Peer,
        local: SocketAddr,
        msg: Message,
    },
    /// What a call's media reported.
    Media(MediaEvent),
    /// A returning-caller lookup answered ([`Output::LookupReturning`]).
    Returning(ReturningFound),
    /// The operator book's verdict on a feature code's command ([`BookEntry::Apply`]).
    Booked(BookAnswer),
    /// The time reached [`crate::Core::poll_timeout`].
    Timeout,
}

/// What call control wants done, drained with [`crate::Core::poll_output`].
#[derive(Debug)]
pub enum Output {
    /// A SIP message for a peer (already serialized; the transport frames it).
    Transmit(Transmit),
    /// A command for the media edge.
    Media(MediaCommand),
    /// Who served this caller's latest open appeal? Answer with [`ReturningQuery::answer`]
    /// as [`Input::Returning`], within [`crate::RETURNING_TIMEOUT`] or with an error.
    LookupReturning(ReturningQuery),
    /// For the operator book (the daemon's operator table): a feature code's command to
    /// check and record, or queues a reload moved a logged-in operator to.
    Book(BookEntry),
    /// Something to write down about a call, for its appeal (the driver hands them to the
    /// appeal writer in this order; the writer never blocks the driver).
    Appeal(crate::AppealEvent),
    /// A change for the workspace's live pages (never waited on: a driver that cannot take
    /// it now drops it).
    Live(crate::live::LiveEvent),
}

/// What the operator book is asked or told. Every change of an operator's work state is
/// checked and recorded by the book first, then applied to the ACD: a feature code's comes
/// out as [`BookEntry::Apply`] and waits for the answer; the admin API's driver asks the book
/// itself between [`crate::Core::resolve_operator_command`] and
/// [`crate::Core::operator_command`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BookEntry {
    /// Check and record a command; answer with [`BookRequest::answer`] as [`Input::Booked`]
    /// (the feature-code call waits for it, unanswered).
    Apply(BookRequest),
    /// A reload (or the restore at start) has the ACD serve a logged-in operator from these
    /// queues: the book records them as the login's.
    QueuesChanged {
        operator: String,
        queues: Vec<String>,
    },
}

/// A command the operator book is asked to check and record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookRequest {
    pub operator: String,
    /// As the ACD will apply it (a login's queues resolved).
    pub cmd: crate::OperatorCommand,
    pub(crate) ticket: u64,
}

impl BookRequest {
    /// The book's verdict as the input the core expects.
    pub fn answer(self, verdict: Result<(), crate::OperatorRefusal>) -> BookAnswer {
        BookAnswer {
            ticket: self.ticket,
            verdict,
        }
    }
}

/// The operator book's verdict ([`Input::Booked`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookAnswer {
    pub(crate) ticket: u64,
    pub(crate) verdict: Result<(), crate::OperatorRefusal>,
}

/// A returning-caller lookup the core waits for (the caller hears the queue's music meanwhile).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturningQuery {
    /// The caller's number.
    pub number: String,
    /// How far back an appeal may have arrived.
    pub lookback: Duration,
    pub(crate) call_id: String,
    pub(crate) queue: String,
    pub(crate) priority: u8,
}

impl ReturningQuery {
    /// The lookup's result (the operator's login, none, or why there is no answer) as the
    /// input the core expects.
    pub fn answer(self, operator: Result<Option<String>, String>) -> ReturningFound {
        ReturningFound {
            call_id: self.call_id,
            queue: self.queue,
            priority: self.priority,
            operator,
        }
    }
}

/// What the media edge is asked to do with a leg. Commands for a leg that is not (or no
/// longer) running are ignored, except [`MediaCommand::Play`], whose end is reported at once.
#[derive(Debug)]
pub enum MediaCommand {
    /// Start RTP on the ports [`MediaPorts::allocate`] gave, paced from the next slot;
    /// `greeting` plays once (a line without a menu), then silence.
    Start {
        leg: LegId,
        /// The appeal the leg's recordings are named after.
        appeal: String,
        port: u16,
        neg: Negotiated,
        prompts: Arc<PromptCache>,
        greeting: Option<PromptName>,
        /// Listen for in-band DTMF tones.
        inband: bool,
        /// Record the whole call (stereo WAV).
        record: bool,
        /// Hang up (report [`MediaEvent::Inactive`]) after this long without RTP.
        timeout: Option<Duration>,
    },
    /// A new offer/answer: destination, codec, direction, timeout.
    Update {
        leg: LegId,
        neg: Negotiated,
        timeout: Option<Duration>,
    },
    /// Play `seq` from the next tick, replacing what plays; its end is reported as
    /// [`MediaEvent::PlaybackFinished`] with `generation`.
    Play {
        leg: LegId,
        seq: PromptSequence,
        generation: u64,
    },
    /// Loop a queue's music on hold (silence when it is not in `prompts`); ends a bridge.
    PlayMoh {
        leg: LegId,
        prompts: Arc<PromptCache>,
        music: PromptName,
    },
    /// Silence from the next tick (barge-in); the stopped playback is never reported.
    StopPlayback { leg: LegId },
    /// Stop listening for in-band tones (another kind of DTMF won for the call).
    StopInband { leg: LegId },
    /// Record the call into the recording `name` ([`recording_file`] in the recordings
    /// directory) until the leg closes ([`MediaEvent::RecordFailed`] when it cannot).
    RecordMessage { leg: LegId, name: String },
    /// Relay audio between two running legs.
    Bridge { a: LegId, b: LegId },
    /// End the leg's bridge, if any: it plays silence.
    Unbridge { leg: LegId },
    /// End the leg (RTCP BYE, recordings finished); its ports were given back already.
    Close { leg: LegId },
}

/// How a DTMF digit reached us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtmfVia {
    /// RTP telephone-event (RFC 4733).
    Rfc4733,
    /// SIP INFO.
    Info,
    /// Tones in the audio.
    Inband,
}

impl DtmfVia {
    /// The name written to the appeal (`via` of an `ivr_choice` event).
    pub fn as_str(self) -> &'static str {
        match self {
            DtmfVia::Rfc4733 => "rfc4733",
            DtmfVia::Info => "info",
            DtmfVia::Inband => "inband",
        }
    }
}

/// Something a leg tells the call control.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaEvent {
    /// A key press.
    Digit {
        call_id: Arc<str>,
        digit: char,
        via: DtmfVia,
    },
    /// No RTP for the configured timeout.
    Inactive { call_id: Arc<str> },
    /// The prompts of [`MediaCommand::Play`] number `generation` have all been sent.
    PlaybackFinished { call_id: Arc<str>, generation: u64 },
    /// A [`MediaCommand::RecordMessage`] could not start (no file, or the leg closed).
    RecordFailed { call_id: Arc<str> },
}

/// RTP/RTCP port pairs for new legs, answered at once: the one question whose answer the core
/// needs before it replies to an INVITE (503 when the range is exhausted). The daemon binds
/// the pair here and keeps the sockets for [`MediaCommand::Start`].
pub trait MediaPorts: Send {
    /// An even RTP port (RTCP is the next one) on `ip`, or `None` when the range is taken.
    fn allocate(&mut self, ip: IpAddr) -> Option<u16>;
    /// The pair is not used any more (sockets not yet started are dropped).
    fn release(&mut self, port: u16);
}

/// The file a recording named `name` is written to in `dir` (only ASCII letters, digits, `-`
/// and `_` kept; `call` when nothing is left).
pub fn recording_file(dir: &Path, name: &str) -> PathBuf {
    let name: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    let name = if name.is_empty() { "call".into() } else { name };
    dir.join(format!("{name}.wav"))
}
