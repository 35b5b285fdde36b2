//! Identifiers and configuration of queues and operators.
//!
//! The ACD never invents identities: operators and queues are named by the configuration the
//! daemon loads, callers by whatever number the daemon gives each call (its appeal or call key).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// An operator's name as configured (`operators.toml`). Cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OperatorId(Arc<str>);

/// A queue's name as configured (`benefits`, `home-care`, …). Cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueId(Arc<str>);

/// One call waiting in (or being called back from) a queue, keyed by the daemon.
///
/// The daemon must not reuse an id while the ACD still knows the caller (until its `Left`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallerId(pub u64);

macro_rules! name_id {
    ($t:ident) => {
        impl $t {
            pub fn new(name: impl Into<Arc<str>>) -> Self {
                $t(name.into())
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl From<&str> for $t {
            fn from(s: &str) -> Self {
                $t(s.into())
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}
name_id!(OperatorId);
name_id!(QueueId);

impl fmt::Display for CallerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// How a queue chooses among the operators free to take its next caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// The operator whose last call (or login) ended longest ago (Asterisk `leastrecent`,
    /// FreeSWITCH `longest-idle-agent`). A missed offer does not reset the idle time.
    LongestIdle,
    /// The next operator after the one offered last, in configuration order, wrapping around
    /// (Asterisk `rrmemory`).
    RoundRobin,
    /// Every free operator at once; the first to answer wins and the others are cancelled.
    RingAll,
    /// The operator who has answered the fewest calls from this queue; ties go to the longest
    /// idle (Asterisk `fewestcalls`).
    FewestCalls,
    /// The most skilled first: the lowest level with a free operator, longest idle within it.
    /// Combine with [`QueueConfig::escalation_step`] to hold the less skilled back.
    Skills,
}

/// When a queue counts as having nobody to answer (Asterisk `joinempty` / `leavewhenempty`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmptyRule {
    /// Never: callers join and stay regardless of staffing.
    Never,
    /// When no operator of the queue is logged in.
    NoneLoggedIn,
    /// When no operator of the queue is logged in, registered and not paused.
    NoneReady,
}

/// What happens to a caller who waited too long, found the queue full, or found it empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OverflowAction {
    /// Move to another queue, keeping the original place in line by arrival time and priority.
    /// A queue the caller has already been in is not entered twice: that falls back to `Message`.
    Queue(QueueId),
    /// Leave the queue; the daemon takes a message (the caller leaves with `Overflowed`).
    Message,
    /// Offer a callback now; the caller stays in line until it accepts
    /// ([`crate::Acd::callback_requested`]) or hangs up. Needs [`QueueConfig::callback`].
    Callback,
}

/// Returning callers (an open appeal within `lookback`) are offered to their previous operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReturningConfig {
    /// How far back the daemon looks for the caller's open appeal; the ACD itself only stores it.
    pub lookback: Duration,
    /// How long the caller may be held for the previous operator while that operator is ready
    /// but busy; `0` means "only if free right now". Never held for a paused or absent operator.
    pub wait_for_operator: Duration,
}

/// Callback instead of waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallbackConfig {
    /// After this wait the ACD emits `OfferCallback` once; `None`: only on overflow or when the
    /// daemon asks by itself.
    pub offer_after: Option<Duration>,
    /// Attempts to reach the caller before giving up (at least 1).
    pub max_attempts: u32,
    /// Pause between attempts; the entry keeps its place in line meanwhile.
    pub retry_interval: Duration,
}

/// One queue. Build with [`QueueConfig::new`] and adjust the public fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueConfig {
    pub id: QueueId,
    pub strategy: Strategy,
    /// Callers on the line at most (callback entries are not on the line and do not count).
    pub max_len: Option<usize>,
    /// A caller arriving while this holds is overflowed at once (reason `Empty`).
    pub join_empty: EmptyRule,
    /// When this starts to hold, callers on the line are overflowed (reason `Empty`).
    pub leave_empty: EmptyRule,
    /// Longest wait in this queue before the overflow action (reason `MaxWait`).
    pub max_wait: Option<Duration>,
    pub overflow: OverflowAction,
    /// How long an offer rings before it goes to the next operator (must be > 0).
    pub ring_timeout: Duration,
    /// After a caller has been offered to every free operator without an answer, the pause
    /// before a new round (Asterisk `retry`).
    pub retry_delay: Duration,
    /// Consecutive missed offers after which the operator is paused; `0` never pauses.
    pub max_no_answer: u32,
    /// Time after each call before the operator is offered the next one.
    pub wrap_up: Duration,
    /// Operators of level `L` are offered a caller only after it waited `(k) × step`, where `k`
    /// counts the staffed levels better than `L` (empty levels are skipped). `None`: all levels
    /// at once.
    pub escalation_step: Option<Duration>,
    pub returning: Option<ReturningConfig>,
    pub callback: Option<CallbackConfig>,
    /// Announce position and estimated wait at entry and then this often (must be > 0).
    pub announce_every: Option<Duration>,
    /// Estimates above this many minutes, or made without enough to go on, are "more than".
    pub estimate_cap_minutes: u32,
    /// Handle times (talk + wrap-up) kept for the estimate's rolling mean.
    pub handle_time_window: usize,
}

impl QueueConfig {
    /// A queue with the defaults: longest idle, no limits, 15 s ring, 5 s retry, pause after 3
    /// missed offers, 10 s wrap-up, announcements every 60 s capped at 10 minutes.
    pub fn new(id: impl Into<QueueId>) -> Self {
        QueueConfig {
            id: id.into(),
            strategy: Strategy::LongestIdle,
            max_len: None,
            join_empty: EmptyRule::Never,
            leave_empty: EmptyRule::Never,
            max_wait: None,
            overflow: OverflowAction::Message,
            ring_timeout: Duration::from_secs(15),
            retry_delay: Duration::from_secs(5),
            max_no_answer: 3,
            wrap_up: Duration::from_secs(10),
            escalation_step: None,
            returning: None,
            callback: None,
            announce_every: Some(Duration::from_secs(60)),
            estimate_cap_minutes: 10,
            handle_time_window: 20,
        }
    }
}

/// An operator's membership of one queue. Level 1 is the most skilled / first tier, 9 the last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skill {
    pub queue: QueueId,
    pub level: u8,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorConfig {
    pub id: OperatorId,
    /// Queue memberships; the order of operators in the configuration is the round-robin order.
    pub skills: Vec<Skill>,
}

impl OperatorConfig {
    /// An operator in the given queues, each with its level.
    pub fn new<Q: Into<QueueId>>(
        id: impl Into<OperatorId>,
        skills: impl IntoIterator<Item = (Q, u8)>,
    ) -> Self {
        OperatorConfig {
            id: id.into(),
            skills: skills
                .into_iter()
                .map(|(queue, level)| Skill {
                    queue: queue.into(),
                    level,
                })
                .collect(),
        }
    }
}

/// Everything the ACD is built from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AcdConfig {
    pub queues: Vec<QueueConfig>,
    pub operators: Vec<OperatorConfig>,
}

/// A configuration the ACD refuses, with what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("queue {0} is defined twice")]
    DuplicateQueue(QueueId),
    #[error("operator {0} is defined twice")]
    DuplicateOperator(OperatorId),
    #[error("operator {operator} names unknown queue {queue}")]
    UnknownSkillQueue {
        operator: OperatorId,
        queue: QueueId,
    },
    #[error("operator {operator} is in queue {queue} twice")]
    DuplicateSkill {
        operator: OperatorId,
        queue: QueueId,
    },
    #[error("operator {operator} has level {level} in queue {queue}; levels are 1 to 9")]
    BadLevel {
        operator: OperatorId,
        queue: QueueId,
        level: u8,
    },
    #[error("queue {queue} overflows to unknown queue {target}")]
    UnknownOverflowQueue { queue: QueueId, target: QueueId },
    #[error("queue {0} overflows to a callback but has no callback settings")]
    CallbackOverflowWithoutCallback(QueueId),
    #[error("queue {queue}: {field} must be greater than zero")]
    Zero { queue: QueueId, field: &'static str },
}

impl AcdConfig {
    /// Checks everything the ACD relies on; [`crate::Acd::new`] calls it.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut seen = std::collections::HashSet::new();
        for q in &self.queues {
            if !seen.insert(&q.id) {
                return Err(ConfigError::DuplicateQueue(q.id.clone()));
            }
        }
        for q in &self.queues {
            let zero = |field| ConfigError::Zero {
                queue: q.id.clone(),
                field,
            };
            if q.ring_timeout.is_zero() {
                return Err(zero("ring_timeout"));
            }
            if q.announce_every.is_some_and(|d| d.is_zero()) {
                return Err(zero("announce_every"));
            }
            if q.escalation_step.is_some_and(|d| d.is_zero()) {
                return Err(zero("escalation_step"));
            }
            if q.handle_time_window == 0 {
                return Err(zero("handle_time_window"));
            }
            if let Some(cb) = &q.callback {
                if cb.max_attempts == 0 {
                    return Err(zero("callback.max_attempts"));
                }
            }
            match &q.overflow {
                OverflowAction::Queue(t) if !seen.contains(t) => {
                    return Err(ConfigError::UnknownOverflowQueue {
                        queue: q.id.clone(),
                        target: t.clone(),
                    })
                }
                OverflowAction::Callback if q.callback.is_none() => {
                    return Err(ConfigError::CallbackOverflowWithoutCallback(q.id.clone()))
                }
                _ => {}
            }
        }
        let mut ops = std::collections::HashSet::new();
        for o in &self.operators {
            if !ops.insert(&o.id) {
                return Err(ConfigError::DuplicateOperator(o.id.clone()));
            }
            let mut qs = std::collections::HashSet::new();
            for s in &o.skills {
                if !seen.contains(&s.queue) {
                    return Err(ConfigError::UnknownSkillQueue {
                        operator: o.id.clone(),
                        queue: s.queue.clone(),
                    });
                }
                if !qs.insert(&s.queue) {
                    return Err(ConfigError::DuplicateSkill {
                        operator: o.id.clone(),
                        queue: s.queue.clone(),
                    });
                }
                if !(1..=9).contains(&s.level) {
                    return Err(ConfigError::BadLevel {
                        operator: o.id.clone(),
                        queue: s.queue.clone(),
                        level: s.level,
                    });
                }
            }
        }
        Ok(())
    }
}
