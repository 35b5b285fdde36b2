//! The appeal record, its event timeline and the values they hold.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Identity of an appeal: a UUIDv7 made by the daemon, so creating an appeal never waits
/// for the database, and ids sort by creation time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AppealId(pub Uuid);

impl AppealId {
    /// A fresh time-ordered id.
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    /// When a time-ordered (v7) id was minted, to the millisecond; `None` for another
    /// version.
    pub fn minted_at(self) -> Option<DateTime<Utc>> {
        let (secs, nanos) = self.0.get_timestamp()?.to_unix();
        DateTime::from_timestamp(i64::try_from(secs).ok()?, nanos)
    }
}

impl Default for AppealId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for AppealId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl FromStr for AppealId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self)
    }
}

/// A value stored as text that did not name a known variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?}")]
pub struct UnknownValue {
    /// Which kind of value (`outcome`, `status`, …).
    pub what: &'static str,
    /// The text that was found.
    pub value: String,
}

/// Declares a closed enum stored as snake_case text, with `as_str`, `FromStr` and serde.
macro_rules! text_enum {
    ($(#[$m:meta])* $name:ident, $what:literal { $($(#[$vm:meta])* $var:ident = $s:literal $(| $alias:literal)*),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vm])* #[serde(rename = $s $(, alias = $alias)*)] $var),+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$var),+];

            /// The text stored in the database and used in JSON.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$var => $s),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownValue;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($s $(| $alias)* => Ok($name::$var),)+
                    _ => Err(UnknownValue { what: $what, value: s.to_owned() }),
                }
            }
        }
    };
}

text_enum!(
    /// How the call ended for the caller.
    Outcome, "outcome" {
        /// An operator talked to the caller.
        Answered = "answered",
        /// The caller hung up before an operator answered.
        Abandoned = "abandoned",
        /// The caller asked to be called back.
        Callback = "callback",
        /// The caller left a message.
        Message = "message",
        /// The call was passed to another queue or an outside service.
        Transferred = "transferred",
        /// The IVR's recorded information was all the caller needed.
        InfoOnly = "info_only",
        /// Refused (unknown line, trunk not allowed, …).
        Rejected = "rejected",
    }
);

text_enum!(
    /// Where the follow-up work on an appeal stands.
    Status, "status" {
        /// Nobody has worked on it yet.
        New = "new",
        /// An operator or supervisor is working on it.
        InProgress = "in_progress",
        /// Sent to another organisation or the partner centre.
        Forwarded = "forwarded",
        /// Waiting for something until a date (`pending_until`).
        Pending = "pending",
        /// Carried out (stored as `resolved` before the cases schema, migration 6).
        Done = "done" | "resolved",
        /// Refused: not eligible, not ours, withdrawn.
        Declined = "declined",
    }
);

impl Status {
    /// Whether the follow-up work is over (`done`, `declined`); a reopen brings it back.
    pub fn is_closed(self) -> bool {
        matches!(self, Status::Done | Status::Declined)
    }

    /// Whether the workflow lets an appeal go from `self` to `to`:
    ///
    /// ```text
    ///   new ──► in_progress ──► forwarded ──► done | declined
    ///    │          ▲ │  ▲          │  ▲
    ///    │          │ ▼  └──────────┘  │ (returned)
    ///    │          pending until ─────┘
    ///    └──► declined          done | declined ──► in_progress (reopened)
    /// ```
    ///
    /// `new → in_progress | declined`; `in_progress → forwarded | pending | done |
    /// declined`; `forwarded → in_progress | pending | done | declined`; `pending →
    /// in_progress | forwarded | done | declined`; `done | declined → in_progress` (reopen).
    pub fn can_become(self, to: Status) -> bool {
        use Status::*;
        matches!(
            (self, to),
            (New, InProgress | Declined)
                | (InProgress, Forwarded | Pending | Done | Declined)
                | (Forwarded, InProgress | Pending | Done | Declined)
                | (Pending, InProgress | Forwarded | Done | Declined)
                | (Done | Declined, InProgress)
        )
    }

    /// The statuses the workflow lets an appeal in `self` move to ([`Status::can_become`]),
    /// in declaration order: what a refusal names as allowed.
    pub fn moves(self) -> impl Iterator<Item = Status> {
        Status::ALL
            .iter()
            .copied()
            .filter(move |to| self.can_become(*to))
    }
}

text_enum!(
    /// What happened, on an appeal's timeline (like Asterisk's queue_log verbs).
    EventKind, "event kind" {
        /// The appeal was created when the INVITE arrived.
        Created = "created",
        /// The caller pressed a key in a menu.
        IvrChoice = "ivr_choice",
        /// The caller joined a queue.
        EnteredQueue = "entered_queue",
        /// An operator's phone was rung.
        Offered = "offered",
        /// The operator did not answer in time.
        NoAnswer = "no_answer",
        /// An operator answered.
        Answered = "answered",
        /// The call was transferred.
        Transferred = "transferred",
        /// The caller left the queue by hanging up.
        Abandoned = "abandoned",
        /// A callback was booked.
        CallbackRequested = "callback_requested",
        /// The hotline called a booked callback's number (one event per attempt, with its
        /// result; the appeal is the one of the call that booked it).
        CallbackAttempt = "callback_attempt",
        /// The caller left a message.
        MessageRecorded = "message_recorded",
        /// Recording of the call started.
        RecordingStarted = "recording_started",
        /// The call ended.
        Ended = "ended",
        /// The follow-up status changed.
        StatusChanged = "status_changed",
        /// Notes were written.
        NoteAdded = "note_added",
        /// The destination organisation was set.
        DestinationSet = "destination_set",
        /// The appeal was forwarded to the partner centre.
        Forwarded = "forwarded",
        /// The partner centre reported a change.
        PartnerUpdate = "partner_update",
        /// A field of the case record changed (`{ "field", "from", "to" }`): citizen,
        /// service, address, district, organisation, assignee, due date, pending date,
        /// disposition, resolution.
        CaseUpdated = "case_updated",
        /// The call was linked to the citizen whose card has the caller's number.
        CitizenLinked = "citizen_linked",
    }
);

/// What the call path knows when the INVITE arrives.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewAppeal {
    /// SIP Call-ID of the incoming call.
    pub call_id: String,
    /// The line (dialled number) it came in on.
    pub line: String,
    /// The caller's number as the trunk gave it.
    pub caller_number: String,
    /// When the INVITE arrived.
    pub arrived_at: DateTime<Utc>,
}

/// Facts about a call learnt as it moves on; `None` leaves a field as it is.
///
/// Every field replaces the stored value (rather than appending), so applying the same
/// update twice — as a spool replay may — gives the same row.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppealUpdate {
    /// When an operator answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answered_at: Option<DateTime<Utc>>,
    /// When the call ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<DateTime<Utc>>,
    /// The whole IVR path so far, e.g. `"main:1>benefits:2"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ivr_path: Option<String>,
    /// What the caller called about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// The queue the caller waited in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// Seconds spent waiting in the queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_seconds: Option<i64>,
    /// Seconds talking to an operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub talk_seconds: Option<i64>,
    /// The operator who took the call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
    /// How the call ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    /// Path of the recording file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording: Option<String>,
    /// The partner centre's reference for this appeal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partner_ref: Option<String>,
}

/// One appeal as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Appeal {
    /// Identity.
    pub id: AppealId,
    /// SIP Call-ID.
    pub call_id: String,
    /// Line (dialled number).
    pub line: String,
    /// Caller's number.
    pub caller_number: String,
    /// When the INVITE arrived.
    pub arrived_at: DateTime<Utc>,
    /// When an operator answered.
    pub answered_at: Option<DateTime<Utc>>,
    /// When the call ended.
    pub ended_at: Option<DateTime<Utc>>,
    /// IVR path.
    pub ivr_path: Option<String>,
    /// Category.
    pub category: Option<String>,
    /// Queue.
    pub queue: Option<String>,
    /// Seconds waited in the queue.
    pub wait_seconds: Option<i64>,
    /// Seconds talked.
    pub talk_seconds: Option<i64>,
    /// Operator who took the call.
    pub operator: Option<String>,
    /// How the call ended.
    pub outcome: Option<Outcome>,
    /// Recording file.
    pub recording: Option<String>,
    /// Follow-up status.
    pub status: Status,
    /// Organisation the appeal is for.
    pub destination_org: Option<String>,
    /// Operator's or supervisor's notes.
    pub notes: Option<String>,
    /// The partner centre's reference.
    pub partner_ref: Option<String>,
    /// Last change to the row.
    pub updated_at: DateTime<Utc>,
    /// The case record: who, what, where, to whom, by when.
    #[serde(flatten)]
    pub case: AppealCase,
}

/// What the case work adds to an appeal (issue 12): the citizen, the service asked for,
/// where (for deliveries), the organisation it goes to, who works on it, by when, and how
/// it was closed. Ids are the directory's (districts, services, organisations, dispositions).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppealCase {
    /// The citizen (заявитель).
    pub citizen_id: Option<Uuid>,
    /// The service asked for.
    pub service: Option<String>,
    /// The address to deliver to or visit.
    pub address: Option<String>,
    /// Its district.
    pub district: Option<String>,
    /// The destination organisation.
    pub organisation: Option<String>,
    /// Who works on it (an operator's or supervisor's login).
    pub assignee: Option<String>,
    /// By when it must be done.
    pub due_at: Option<DateTime<Utc>>,
    /// While `pending`: until when.
    pub pending_until: Option<DateTime<Utc>>,
    /// The wrap-up code it was closed with.
    pub disposition: Option<String>,
    /// What was done.
    pub resolution: Option<String>,
    /// Bumped by every change made through the admin API; an edit names the version it was
    /// made on, and a stale one is refused.
    pub version: i64,
}

/// One entry on an appeal's timeline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AppealEvent {
    /// Identity (UUIDv7 made when the event happened; replays are recognised by it).
    pub id: Uuid,
    /// 1, 2, 3… within the appeal, in the order the events were written.
    pub seq: i64,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// What happened.
    pub kind: EventKind,
    /// Details (queue name, operator, key pressed, old and new status…).
    pub data: serde_json::Value,
    /// Who did it, for changes made through the admin API.
    pub actor: Option<String>,
}

/// An appeal with its whole timeline, oldest event first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AppealWithEvents {
    /// The appeal.
    #[serde(flatten)]
    pub appeal: Appeal,
    /// Its events ordered by `seq`.
    pub events: Vec<AppealEvent>,
}

text_enum!(
    /// Where a booked callback stands.
    CallbackStatus, "callback status" {
        /// Waiting to be dialled.
        Pending = "pending",
        /// Being dialled now.
        Dialling = "dialling",
        /// The caller was reached.
        Done = "done",
        /// Given up after the attempts allowed.
        Failed = "failed",
        /// Cancelled by an operator or the caller.
        Cancelled = "cancelled",
    }
);

/// A callback the caller asked for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewCallback {
    /// The appeal it belongs to.
    pub appeal_id: AppealId,
    /// Number to call back.
    pub number: String,
    /// Queue whose operators should call.
    pub queue: Option<String>,
    /// When the caller asked.
    pub requested_at: DateTime<Utc>,
    /// Not before this time (e.g. the next working morning).
    pub due_at: Option<DateTime<Utc>>,
}

/// A callback as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Callback {
    /// Identity (UUIDv7).
    pub id: Uuid,
    /// The appeal it belongs to.
    pub appeal_id: AppealId,
    /// Number to call back.
    pub number: String,
    /// Queue whose operators should call.
    pub queue: Option<String>,
    /// When the caller asked.
    pub requested_at: DateTime<Utc>,
    /// Not before this time.
    pub due_at: Option<DateTime<Utc>>,
    /// Where it stands.
    pub status: CallbackStatus,
    /// Dialling attempts so far.
    pub attempts: i64,
    /// Operator who made the last attempt.
    pub operator: Option<String>,
    /// When it was done, failed or cancelled.
    pub completed_at: Option<DateTime<Utc>>,
    /// How the last attempt ended (`answered`, `no_answer`, `busy`, `failed`,
    /// `operator_left`); none before the first.
    pub last_result: Option<String>,
}

/// A booked callback's progress, reported by the call side, which knows the booking's appeal
/// but not the callback row's id (see `AppealWriter::callback_progress`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallbackProgress {
    pub status: CallbackStatus,
    /// Attempts made so far (absolute).
    pub attempts: i64,
    /// The operator on the line for the attempt; `None` keeps the one recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
    /// How the attempt ended; `None` keeps the one recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_result: Option<String>,
}

/// An operator's login to logout.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorSession {
    /// Identity (UUIDv7).
    pub id: Uuid,
    /// The operator's username.
    pub operator: String,
    /// Login.
    pub started_at: DateTime<Utc>,
    /// Logout; `None` while logged in.
    pub ended_at: Option<DateTime<Utc>>,
    /// Queues logged in to.
    pub queues: Vec<String>,
    /// Why it ended (`logout`, `unregistered`, `shutdown`…).
    pub end_reason: Option<String>,
}

/// An operator's work state as saved for the next start: logged in (to which queues, since
/// when) and paused (since when, why). Ringing, on-call and wrap-up are never saved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorStateRow {
    /// The operator's username.
    pub operator: String,
    /// Whether the operator is logged in.
    pub logged_in: bool,
    /// Queues logged in to (empty when logged out).
    pub queues: Vec<String>,
    /// Login time; `None` when logged out.
    pub since: Option<DateTime<Utc>>,
    /// When the pause began; `None` when not paused.
    pub paused_since: Option<DateTime<Utc>>,
    /// The pause's reason, when one was given.
    pub pause_reason: Option<String>,
    /// When this state was taken; a row never goes back to an earlier one.
    pub updated_at: DateTime<Utc>,
}
