//! The ACD state machine: callers, operators, queues and timers.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::config::{
    AcdConfig, CallerId, ConfigError, EmptyRule, OperatorConfig, OperatorId, OverflowAction,
    QueueConfig, QueueId, Skill, Strategy,
};

/// Why an operator is paused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PauseReason {
    /// Paused by the ACD after this many consecutive missed offers.
    NoAnswer(u32),
    /// Paused by the operator (feature code) or an admin, with their reason ("lunch", …).
    Requested(String),
}

/// Why an offer to an operator ended without an answer (reported by the daemon).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfferFailure {
    /// Rang out or was declined; counts towards the operator's automatic pause.
    NoAnswer,
    /// The phone said busy; the caller moves on, no count.
    Busy,
    /// The leg failed (no contact, transport error); the caller moves on, no count.
    Error,
}

/// How an attempt to reach a callback caller ended (reported by the daemon).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallbackResult {
    Answered,
    NoAnswer,
    Busy,
    Failed,
}

/// Why a caller was overflowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverflowReason {
    MaxWait,
    /// The queue already had `max_len` callers on the line.
    Full,
    /// The queue's `join_empty` or `leave_empty` rule held.
    Empty,
}

/// How a caller left the ACD; every caller gets exactly one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Answered {
        operator: OperatorId,
    },
    /// Hung up while waiting, or the daemon withdrew the caller.
    Abandoned,
    /// Overflowed to a message.
    Overflowed,
    CalledBack {
        operator: OperatorId,
    },
    CallbackFailed {
        attempts: u32,
    },
}

/// An estimated wait as it may honestly be spoken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Estimate {
    /// About this many minutes (at least 1).
    Minutes(u32),
    /// More than this many minutes: too long to promise, or nothing to go on (nobody ready,
    /// no recent calls).
    MoreThan(u32),
}

/// What the daemon must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Ring these operators for the caller (several only for ring-all). Report each leg with
    /// `offer_answered` or `offer_failed`; the ACD sends `CancelOffer` on its own ring timeout.
    Offer {
        caller: CallerId,
        operators: Vec<OperatorId>,
    },
    /// Stop ringing this operator for the caller (another answered, timeout, caller gone, pause).
    CancelOffer {
        caller: CallerId,
        operator: OperatorId,
    },
    /// The operator answered: bridge the two. A `Left { Answered }` follows.
    Connect {
        caller: CallerId,
        operator: OperatorId,
    },
    /// The caller overflowed. For `Queue` the caller stays in the ACD, now in that queue; for
    /// `Message` a `Left { Overflowed }` follows; for `Callback` offer the callback now.
    Overflow {
        caller: CallerId,
        to: OverflowAction,
        reason: OverflowReason,
    },
    /// Offer the caller a callback (press a key, confirm the number, hang up keeping the place).
    OfferCallback { caller: CallerId },
    /// A callback's turn: ring the operator, and once `offer_answered` reports the operator
    /// answered, dial `number` and report with `callback_result`.
    StartCallback {
        caller: CallerId,
        number: String,
        operator: OperatorId,
    },
    /// Tell the caller their position (1 = next) and estimated wait.
    Announce {
        caller: CallerId,
        position: usize,
        estimated_wait: Estimate,
    },
    /// The ACD paused the operator.
    OperatorPaused {
        operator: OperatorId,
        reason: PauseReason,
    },
    /// The caller is gone from the ACD.
    Left { caller: CallerId, outcome: Outcome },
    /// A direct offer ([`Acd::direct_offer`]) rang out: stop ringing the operator and treat
    /// the transfer as not answered. The operator is free again.
    CancelDirect { operator: OperatorId },
}

/// An operator's state as shown to supervisors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OperatorState {
    LoggedOut,
    Available,
    Ringing {
        caller: CallerId,
    },
    OnCall {
        caller: CallerId,
    },
    WrapUp {
        until: Instant,
    },
    Paused(PauseReason),
    /// Rung for, or talking to, a caller handed to them directly (an operator's transfer),
    /// outside any queue's line.
    Direct {
        answered: bool,
    },
}

/// [`OperatorState`] plus what else decides whether the operator is offered calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorStatus {
    pub state: OperatorState,
    /// An unregistered operator (no contact) is not offered calls.
    pub registered: bool,
    /// Consecutive missed offers.
    pub missed: u32,
}

/// A queue's live figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueStatus {
    /// Callers on the line (ringing ones included).
    pub waiting: usize,
    /// Callback entries holding a place.
    pub callbacks: usize,
    pub logged_in: u32,
    /// Logged in, registered and not paused.
    pub ready: u32,
    /// Ready and idle right now.
    pub free: usize,
}

/// An input the ACD cannot apply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AcdError {
    #[error("unknown caller {0}")]
    UnknownCaller(CallerId),
    #[error("unknown operator {0}")]
    UnknownOperator(OperatorId),
    #[error("unknown queue {0}")]
    UnknownQueue(QueueId),
    #[error("caller {0} is already in the ACD")]
    CallerExists(CallerId),
    #[error("caller {caller} is not being offered to operator {operator}")]
    NotOffered {
        caller: CallerId,
        operator: OperatorId,
    },
    #[error("operator {0} is not on a call")]
    NotOnCall(OperatorId),
    #[error("queue {0} has no callback settings")]
    CallbackNotEnabled(QueueId),
    #[error("caller {0} already asked for a callback")]
    AlreadyCallback(CallerId),
    #[error("caller {0} is not being called back")]
    NotDialing(CallerId),
    /// A direct offer to an operator who is not ready and idle (logged out, paused,
    /// unregistered, ringing, on a call or wrapping up).
    #[error("operator {0} is not available")]
    NotAvailable(OperatorId),
    #[error("operator {0} has no direct offer ringing")]
    NotDirect(OperatorId),
    #[error("operator {0} already exists")]
    OperatorExists(OperatorId),
    /// Skills the ACD cannot take (unknown queue, a queue twice, a level outside 1–9).
    #[error(transparent)]
    BadSkills(ConfigError),
    /// A login named a queue the operator has no skill in.
    #[error("operator {operator} has no skill in queue {queue}")]
    NotSkilled {
        operator: OperatorId,
        queue: QueueId,
    },
}

type QIdx = usize;
type OIdx = u32;

/// Place in line: higher priority first (`rank = 255 - priority`), then arrival.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct OrderKey {
    rank: u8,
    seq: u64,
}

/// A free operator in a queue's per-level set; `(a, b)` depend on the strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct FreeKey {
    a: u64,
    b: u64,
    op: OIdx,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Ring = 0,
    MaxWait = 1,
    Announce = 2,
    CallbackOffer = 3,
    Escalate = 4,
    Hold = 5,
    /// A returning caller's hold for its previous operator ends.
    Prefer = 6,
    WrapUp = 7,
    /// A direct offer's ring timeout (keyed by operator).
    DirectRing = 8,
}
const CALLER_TIMERS: usize = 7;

/// All deadlines in one ordered set; each owner keeps the instant it armed so it can disarm.
#[derive(Debug, Default)]
struct Timers {
    set: BTreeSet<(Instant, Kind, u64)>,
}

impl Timers {
    fn arm(&mut self, slot: &mut Option<Instant>, at: Instant, kind: Kind, id: u64) {
        if let Some(old) = slot.replace(at) {
            self.set.remove(&(old, kind, id));
        }
        self.set.insert((at, kind, id));
    }
    fn disarm(&mut self, slot: &mut Option<Instant>, kind: Kind, id: u64) {
        if let Some(old) = slot.take() {
            self.set.remove(&(old, kind, id));
        }
    }
}

#[derive(Debug)]
enum CbPhase {
    /// Holding a place in line.
    Waiting,
    /// The operator answered; the daemon is dialing the caller on this operator's behalf.
    Dialing(OIdx),
}

#[derive(Debug)]
struct Callback {
    number: String,
    attempts: u32,
    phase: CbPhase,
}

#[derive(Debug)]
struct Caller {
    queue: QIdx,
    key: OrderKey,
    /// When it entered the current queue (escalation, max wait and hold count from here).
    entered: Instant,
    returning: Option<OIdx>,
    /// Operators that missed this caller in the current round.
    tried: Vec<OIdx>,
    /// Operators ringing for this caller now.
    ringing: Vec<OIdx>,
    callback: Option<Callback>,
    callback_offered: bool,
    visited: Vec<QIdx>,
    max_wait_expired: bool,
    timers: [Option<Instant>; CALLER_TIMERS],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Activity {
    Idle,
    Ringing(CallerId),
    OnCall {
        caller: CallerId,
        queue: QIdx,
        since: Instant,
    },
    WrapUp,
    /// A caller handed to the operator directly, not through a queue's line: ringing until
    /// answered, then talking. `queue` gives the wrap-up after it.
    Direct {
        queue: Option<QIdx>,
        answered: bool,
    },
}

#[derive(Debug)]
struct OpSkill {
    queue: QIdx,
    level: u8,
    /// Position among the queue's operators in configuration order (round-robin).
    position: u64,
    /// Calls answered from this queue (fewest-calls).
    calls: u64,
    /// Whether the operator's login covers this queue (see [`Acd::login_to`]); only active
    /// skills count towards a queue's staffing and free sets.
    active: bool,
}

#[derive(Debug)]
struct Operator {
    id: OperatorId,
    skills: Vec<OpSkill>,
    logged_in: bool,
    registered: bool,
    paused: Option<PauseReason>,
    activity: Activity,
    idle_seq: u64,
    missed: u32,
    /// Keys under which the operator sits in queues' free sets (empty when not free).
    free_keys: Vec<(QIdx, u8, FreeKey)>,
    in_free: bool,
    counted_logged_in: bool,
    counted_ready: bool,
    wrap_timer: Option<Instant>,
    direct_timer: Option<Instant>,
    /// Removed from the configuration while on a call: leaves when the call ends.
    removing: bool,
    /// Removed: the slot stays (indices never move) but nothing reaches it any more.
    retired: bool,
    /// In [`Acd::changed`] (told once per input however often it changed).
    changed: bool,
}

impl Operator {
    fn ready(&self) -> bool {
        self.logged_in && self.registered && self.paused.is_none()
    }
    fn offerable(&self) -> bool {
        self.ready() && self.activity == Activity::Idle
    }
}

#[derive(Debug)]
struct Queue {
    cfg: QueueConfig,
    order: Vec<(OrderKey, CallerId)>,
    /// Entries in `order` that are callers on the line (not callbacks).
    on_line: usize,
    free: [BTreeSet<FreeKey>; 9],
    ready_per_level: [u32; 9],
    logged_in: u32,
    rr_last: Option<u64>,
    handle_times: VecDeque<Duration>,
    handle_sum: Duration,
    open: bool,
}

impl Queue {
    fn free_count(&self) -> usize {
        self.free.iter().map(BTreeSet::len).sum()
    }
    fn ready(&self) -> u32 {
        self.ready_per_level.iter().sum()
    }
    fn is_empty_by(&self, rule: EmptyRule) -> bool {
        match rule {
            EmptyRule::Never => false,
            EmptyRule::NoneLoggedIn => self.logged_in == 0,
            EmptyRule::NoneReady => self.ready() == 0,
        }
    }
    fn position(&self, key: OrderKey) -> usize {
        self.order.partition_point(|(k, _)| *k < key) + 1
    }
    fn insert(&mut self, key: OrderKey, caller: CallerId) {
        let at = self.order.partition_point(|(k, _)| *k < key);
        self.order.insert(at, (key, caller));
    }
    fn remove(&mut self, key: OrderKey) -> bool {
        match self.order.binary_search_by(|(k, _)| k.cmp(&key)) {
            Ok(at) => {
                self.order.remove(at);
                true
            }
            Err(_) => false,
        }
    }
    fn contains(&self, key: OrderKey) -> bool {
        self.order.binary_search_by(|(k, _)| k.cmp(&key)).is_ok()
    }
    fn estimate(&self, position: usize) -> Estimate {
        let cap = self.cfg.estimate_cap_minutes;
        let ready = self.ready();
        let n = self.handle_times.len();
        if ready == 0 || n == 0 {
            return Estimate::MoreThan(cap);
        }
        let mean = self.handle_sum.as_secs_f64() / n as f64;
        let secs = mean * position as f64 / f64::from(ready);
        let minutes = (secs / 60.0).ceil().max(1.0);
        if minutes > f64::from(cap) {
            Estimate::MoreThan(cap)
        } else {
            Estimate::Minutes(minutes as u32)
        }
    }
    fn record_handle_time(&mut self, d: Duration) {
        self.handle_times.push_back(d);
        self.handle_sum += d;
        while self.handle_times.len() > self.cfg.handle_time_window {
            if let Some(old) = self.handle_times.pop_front() {
                self.handle_sum = self.handle_sum.saturating_sub(old);
            }
        }
    }
}

/// The ACD. See the crate documentation for the input/output contract.
#[derive(Debug)]
pub struct Acd {
    queues: Vec<Queue>,
    queue_ix: HashMap<QueueId, QIdx>,
    ops: Vec<Operator>,
    op_ix: HashMap<OperatorId, OIdx>,
    callers: HashMap<CallerId, Caller>,
    /// Waiting returning callers by the operator they prefer, in line order.
    returning: HashMap<OIdx, BTreeSet<(OrderKey, CallerId)>>,
    timers: Timers,
    actions: VecDeque<Action>,
    seq: u64,
    idle_seq: u64,
    /// Queues whose staffing dropped: check `leave_empty` before dispatching.
    empty_check: Vec<QIdx>,
    /// Callers that entered a queue during this input: announce after dispatching.
    announce_now: Vec<CallerId>,
    /// Operators whose status or queues may have changed since [`Acd::take_changed`].
    changed: Vec<OIdx>,
}

fn cid_of(id: u64) -> CallerId {
    CallerId(id)
}

impl Acd {
    /// Builds the ACD from a checked configuration. Every operator starts logged out and
    /// unregistered; every queue open for callbacks.
    pub fn new(config: AcdConfig) -> Result<Acd, ConfigError> {
        config.validate()?;
        let mut queue_ix = HashMap::new();
        let mut queues = Vec::new();
        for (i, q) in config.queues.into_iter().enumerate() {
            queue_ix.insert(q.id.clone(), i);
            queues.push(Queue {
                cfg: q,
                order: Vec::new(),
                on_line: 0,
                free: Default::default(),
                ready_per_level: [0; 9],
                logged_in: 0,
                rr_last: None,
                handle_times: VecDeque::new(),
                handle_sum: Duration::ZERO,
                open: true,
            });
        }
        let mut members = vec![0u64; queues.len()];
        let mut ops = Vec::new();
        let mut op_ix = HashMap::new();
        for (i, o) in config.operators.into_iter().enumerate() {
            let mut skills = Vec::new();
            for s in &o.skills {
                if let Some(&q) = queue_ix.get(&s.queue) {
                    let position = members.get(q).copied().unwrap_or(0);
                    if let Some(m) = members.get_mut(q) {
                        *m += 1;
                    }
                    skills.push(OpSkill {
                        queue: q,
                        level: s.level,
                        position,
                        calls: 0,
                        active: true,
                    });
                }
            }
            op_ix.insert(o.id.clone(), i as OIdx);
            ops.push(Operator {
                id: o.id,
                skills,
                logged_in: false,
                registered: false,
                paused: None,
                activity: Activity::Idle,
                idle_seq: 0,
                missed: 0,
                free_keys: Vec::new(),
                in_free: false,
                counted_logged_in: false,
                counted_ready: false,
                wrap_timer: None,
                direct_timer: None,
                removing: false,
                retired: false,
                changed: false,
            });
        }
        Ok(Acd {
            queues,
            queue_ix,
            ops,
            op_ix,
            callers: HashMap::new(),
            returning: HashMap::new(),
            timers: Timers::default(),
            actions: VecDeque::new(),
            seq: 0,
            idle_seq: 0,
            empty_check: Vec::new(),
            announce_now: Vec::new(),
            changed: Vec::new(),
        })
    }

    // ---------------------------------------------------------------- outputs

    /// The next thing to do, in the order the ACD decided it.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The operators whose [`OperatorStatus`] or logged-in queues may differ from when this
    /// was last asked (each once, in the order they first changed; at the start: none, so
    /// read every operator once). A removed operator is among them, unknown afterwards.
    /// This is how a watcher follows operators without reading all of them after every
    /// input.
    pub fn take_changed(&mut self) -> Vec<OperatorId> {
        let changed = std::mem::take(&mut self.changed);
        changed
            .into_iter()
            .filter_map(|o| {
                let op = self.ops.get_mut(o as usize)?;
                op.changed = false;
                Some(op.id.clone())
            })
            .collect()
    }

    /// When to call [`Acd::handle_timeout`] next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.set.first().map(|(at, _, _)| *at)
    }

    // ---------------------------------------------------------------- caller inputs

    /// A caller enters `queue`. `priority` 0 is normal, higher goes first. `returning_operator`
    /// is who handled the caller's open appeal, if the daemon found one; an operator the ACD
    /// does not know is ignored.
    pub fn caller_joined(
        &mut self,
        now: Instant,
        caller: CallerId,
        queue: &QueueId,
        priority: u8,
        returning_operator: Option<&OperatorId>,
    ) -> Result<(), AcdError> {
        if self.callers.contains_key(&caller) {
            return Err(AcdError::CallerExists(caller));
        }
        let q = self.queue(queue)?;
        let returning = returning_operator.and_then(|o| self.op_ix.get(o).copied());
        self.seq += 1;
        let key = OrderKey {
            rank: u8::MAX - priority,
            seq: self.seq,
        };
        self.callers.insert(
            caller,
            Caller {
                queue: q,
                key,
                entered: now,
                returning,
                tried: Vec::new(),
                ringing: Vec::new(),
                callback: None,
                callback_offered: false,
                visited: Vec::new(),
                max_wait_expired: false,
                timers: [None; CALLER_TIMERS],
            },
        );
        self.enter(now, caller, q);
        self.finish(now);
        Ok(())
    }

    /// The caller hung up (or the daemon withdrew it): it leaves `Abandoned`, and any operator
    /// ringing for it is cancelled. A callback entry is withdrawn the same way.
    pub fn caller_left(&mut self, now: Instant, caller: CallerId) -> Result<(), AcdError> {
        if !self.callers.contains_key(&caller) {
            return Err(AcdError::UnknownCaller(caller));
        }
        self.remove_caller(caller, Outcome::Abandoned);
        self.finish(now);
        Ok(())
    }

    /// Raises or lowers a waiting caller's priority (the IVR may); arrival order is kept.
    pub fn set_priority(
        &mut self,
        now: Instant,
        caller: CallerId,
        priority: u8,
    ) -> Result<(), AcdError> {
        let c = self
            .callers
            .get_mut(&caller)
            .ok_or(AcdError::UnknownCaller(caller))?;
        let old = c.key;
        let new = OrderKey {
            rank: u8::MAX - priority,
            seq: old.seq,
        };
        c.key = new;
        let (q, pref) = (c.queue, c.returning);
        if let Some(queue) = self.queues.get_mut(q) {
            if queue.remove(old) {
                queue.insert(new, caller);
            }
        }
        if let Some(set) = pref.and_then(|p| self.returning.get_mut(&p)) {
            if set.remove(&(old, caller)) {
                set.insert((new, caller));
            }
        }
        self.finish(now);
        Ok(())
    }

    /// The operator answered the offer. For a normal caller this yields `Connect` and
    /// `Left { Answered }` (and cancels the other ring-all legs); for a callback it means the
    /// operator is on the line and the daemon should now dial the caller.
    pub fn offer_answered(
        &mut self,
        now: Instant,
        caller: CallerId,
        operator: &OperatorId,
    ) -> Result<(), AcdError> {
        let o = self.op(operator)?;
        let c = ringing_leg(&mut self.callers, caller, o, operator)?;
        let others: Vec<OIdx> = c.ringing.drain(..).filter(|&x| x != o).collect();
        self.timers
            .disarm(&mut c.timers[Kind::Ring as usize], Kind::Ring, caller.0);
        let q = c.queue;
        let is_callback = if let Some(cb) = c.callback.as_mut() {
            cb.phase = CbPhase::Dialing(o);
            true
        } else {
            false
        };
        for x in others {
            self.cancel_leg(caller, x);
        }
        if let Some(op) = self.ops.get_mut(o as usize) {
            op.missed = 0;
            op.activity = Activity::OnCall {
                caller,
                queue: q,
                since: now,
            };
            if let Some(s) = op.skills.iter_mut().find(|s| s.queue == q) {
                s.calls += 1;
            }
        }
        self.refresh_op(o);
        if !is_callback {
            self.actions.push_back(Action::Connect {
                caller,
                operator: operator.clone(),
            });
            self.remove_caller(
                caller,
                Outcome::Answered {
                    operator: operator.clone(),
                },
            );
        }
        self.finish(now);
        Ok(())
    }

    /// One offered leg ended without an answer. When no leg is left ringing the caller goes on
    /// to the next operator.
    pub fn offer_failed(
        &mut self,
        now: Instant,
        caller: CallerId,
        operator: &OperatorId,
        reason: OfferFailure,
    ) -> Result<(), AcdError> {
        let o = self.op(operator)?;
        let c = ringing_leg(&mut self.callers, caller, o, operator)?;
        c.ringing.retain(|&x| x != o);
        c.tried.push(o);
        let q = c.queue;
        let done = c.ringing.is_empty();
        if done {
            self.timers
                .disarm(&mut c.timers[Kind::Ring as usize], Kind::Ring, caller.0);
        }
        if let Some(op) = self.ops.get_mut(o as usize) {
            op.activity = Activity::Idle;
        }
        if reason == OfferFailure::NoAnswer {
            self.missed(o, q);
        }
        self.refresh_op(o);
        if done {
            self.back_to_waiting(now, caller);
        }
        self.finish(now);
        Ok(())
    }

    /// The operator's call ended (either side hung up): wrap-up, then free again.
    pub fn call_ended(&mut self, now: Instant, operator: &OperatorId) -> Result<(), AcdError> {
        let o = self.op(operator)?;
        let activity = self.ops.get(o as usize).map(|op| op.activity);
        if let Some(Activity::Direct {
            queue,
            answered: true,
        }) = activity
        {
            self.end_busy(now, o, queue);
            self.finish(now);
            return Ok(());
        }
        let Some(Activity::OnCall {
            caller,
            queue,
            since,
        }) = activity
        else {
            return Err(AcdError::NotOnCall(operator.clone()));
        };
        let dialing = self.callers.get(&caller).is_some_and(
            |c| matches!(c.callback, Some(Callback { phase: CbPhase::Dialing(x), .. }) if x == o),
        );
        if dialing {
            // The operator gave up before the callback was answered: a failed attempt.
            self.callback_attempt_failed(now, caller, o);
            self.finish(now);
            return Ok(());
        }
        let wrap = self
            .queues
            .get(queue)
            .map_or(Duration::ZERO, |q| q.cfg.wrap_up);
        if let Some(q) = self.queues.get_mut(queue) {
            q.record_handle_time(now.saturating_duration_since(since) + wrap);
        }
        self.end_busy(now, o, Some(queue));
        self.finish(now);
        Ok(())
    }

    /// A caller is handed straight to `operator` (an operator's REFER naming them), outside
    /// any queue's line: the operator must be ready and idle, and from now on is offered
    /// nothing else until [`Acd::direct_failed`], an [`Action::CancelDirect`] (after
    /// `from_queue`'s ring timeout, or the operator's first queue's) or, once
    /// [`Acd::direct_answered`], [`Acd::call_ended`] (then `from_queue`'s wrap-up).
    /// `NotAvailable` when the operator cannot take it now.
    pub fn direct_offer(
        &mut self,
        now: Instant,
        operator: &OperatorId,
        from_queue: Option<&QueueId>,
    ) -> Result<(), AcdError> {
        let o = self.op(operator)?;
        let queue = match from_queue {
            Some(q) => Some(self.queue(q)?),
            None => None,
        };
        let Some(op) = self.ops.get_mut(o as usize) else {
            return Err(AcdError::UnknownOperator(operator.clone()));
        };
        if !op.offerable() {
            return Err(AcdError::NotAvailable(operator.clone()));
        }
        let ring_queue = queue.or_else(|| op.skills.first().map(|s| s.queue));
        let ring = ring_queue
            .and_then(|q| self.queues.get(q))
            .map_or(Duration::from_secs(20), |q| q.cfg.ring_timeout);
        op.activity = Activity::Direct {
            queue: ring_queue,
            answered: false,
        };
        self.timers.arm(
            &mut op.direct_timer,
            now + ring,
            Kind::DirectRing,
            u64::from(o),
        );
        self.refresh_op(o);
        self.finish(now);
        Ok(())
    }

    /// The operator answered a direct offer: on a call until [`Acd::call_ended`].
    pub fn direct_answered(&mut self, now: Instant, operator: &OperatorId) -> Result<(), AcdError> {
        let o = self.op(operator)?;
        let Some(op) = self.ops.get_mut(o as usize) else {
            return Err(AcdError::UnknownOperator(operator.clone()));
        };
        let Activity::Direct {
            queue,
            answered: false,
        } = op.activity
        else {
            return Err(AcdError::NotDirect(operator.clone()));
        };
        op.missed = 0;
        op.activity = Activity::Direct {
            queue,
            answered: true,
        };
        self.timers
            .disarm(&mut op.direct_timer, Kind::DirectRing, u64::from(o));
        self.touch(o);
        self.finish(now);
        Ok(())
    }

    /// A direct offer ended unanswered (declined, busy, failed, or withdrawn by the daemon):
    /// the operator is free again at once. Not counted as a missed queue offer.
    pub fn direct_failed(&mut self, now: Instant, operator: &OperatorId) -> Result<(), AcdError> {
        let o = self.op(operator)?;
        let ringing = self.ops.get(o as usize).is_some_and(|op| {
            matches!(
                op.activity,
                Activity::Direct {
                    answered: false,
                    ..
                }
            )
        });
        if !ringing {
            return Err(AcdError::NotDirect(operator.clone()));
        }
        self.direct_over(o);
        self.finish(now);
        Ok(())
    }

    /// The caller accepted a callback to `number` and may hang up: the entry keeps its place
    /// in line. Operators ringing for it are cancelled. After this the caller's hang-up is
    /// not `caller_left` (that would withdraw the callback).
    pub fn callback_requested(
        &mut self,
        now: Instant,
        caller: CallerId,
        number: &str,
    ) -> Result<(), AcdError> {
        let c = self
            .callers
            .get_mut(&caller)
            .ok_or(AcdError::UnknownCaller(caller))?;
        let q = c.queue;
        let Some(queue) = self.queues.get_mut(q) else {
            return Err(AcdError::UnknownCaller(caller));
        };
        if queue.cfg.callback.is_none() {
            return Err(AcdError::CallbackNotEnabled(queue.cfg.id.clone()));
        }
        if c.callback.is_some() {
            return Err(AcdError::AlreadyCallback(caller));
        }
        if queue.contains(c.key) {
            queue.on_line = queue.on_line.saturating_sub(1);
        } else {
            // Overflowed on arrival (full/empty) and offered a callback: take a place now.
            queue.insert(c.key, caller);
        }
        c.callback = Some(Callback {
            number: number.to_owned(),
            attempts: 0,
            phase: CbPhase::Waiting,
        });
        c.callback_offered = true;
        c.max_wait_expired = false;
        c.tried.clear();
        for kind in [
            Kind::Ring,
            Kind::MaxWait,
            Kind::Announce,
            Kind::CallbackOffer,
        ] {
            self.timers
                .disarm(&mut c.timers[kind as usize], kind, caller.0);
        }
        let ringing: Vec<OIdx> = c.ringing.drain(..).collect();
        for o in ringing {
            self.cancel_leg(caller, o);
        }
        self.finish(now);
        Ok(())
    }

    /// How dialing a callback caller ended. `Answered` completes the callback (`CalledBack`;
    /// the operator stays on the call until `call_ended`); anything else frees the operator at
    /// once and retries after the queue's interval, up to its attempt limit.
    pub fn callback_result(
        &mut self,
        now: Instant,
        caller: CallerId,
        result: CallbackResult,
    ) -> Result<(), AcdError> {
        let c = self
            .callers
            .get(&caller)
            .ok_or(AcdError::UnknownCaller(caller))?;
        let Some(Callback {
            phase: CbPhase::Dialing(o),
            ..
        }) = c.callback
        else {
            return Err(AcdError::NotDialing(caller));
        };
        if result == CallbackResult::Answered {
            let operator = self.op_id(o);
            self.remove_caller(caller, Outcome::CalledBack { operator });
        } else {
            self.callback_attempt_failed(now, caller, o);
        }
        self.finish(now);
        Ok(())
    }

    /// Opens or closes a queue's hours for callbacks (the daemon owns calendars and time zones
    /// and calls this when the schedule turns). Waiting callers are not affected.
    pub fn set_open(&mut self, now: Instant, queue: &QueueId, open: bool) -> Result<(), AcdError> {
        let q = self.queue(queue)?;
        if let Some(queue) = self.queues.get_mut(q) {
            queue.open = open;
        }
        self.finish(now);
        Ok(())
    }

    // ---------------------------------------------------------------- operator commands

    /// The operator logs in (feature code or admin API) to every queue of their skills:
    /// available, pause cleared. Same as [`Acd::login_to`] with no queues.
    pub fn login(&mut self, now: Instant, operator: &OperatorId) -> Result<(), AcdError> {
        self.login_to(now, operator, &[]).map(|_| ())
    }

    /// The queues a login naming `queues` covers: those queues (each must be one of the
    /// operator's skills), or every skill queue when `queues` is empty — the one rule for
    /// "a login without queues". In skill (configuration) order; nothing changes.
    pub fn login_queues(
        &self,
        operator: &OperatorId,
        queues: &[QueueId],
    ) -> Result<Vec<QueueId>, AcdError> {
        let o = self.op(operator)?;
        if self.ops.get(o as usize).is_some_and(|op| op.removing) {
            // removed from the configuration, only waiting for their call to end
            return Err(AcdError::UnknownOperator(operator.clone()));
        }
        let mut wanted = Vec::with_capacity(queues.len());
        for q in queues {
            wanted.push(self.queue(q)?);
        }
        let skills = self
            .ops
            .get(o as usize)
            .map_or(&[][..], |op| &op.skills[..]);
        if let Some(&missing) = wanted
            .iter()
            .find(|&&q| !skills.iter().any(|s| s.queue == q))
        {
            return Err(AcdError::NotSkilled {
                operator: operator.clone(),
                queue: self.queue_id(missing),
            });
        }
        Ok(skills
            .iter()
            .filter(|s| wanted.is_empty() || wanted.contains(&s.queue))
            .map(|s| self.queue_id(s.queue))
            .collect())
    }

    /// The operator logs in to `queues` as [`Acd::login_queues`] resolves them (empty: every
    /// skill queue): available, pause cleared; offered callers of those queues only, and
    /// counted in their staffing only. Returns the queues logged in to. A logged-in operator
    /// logging in again changes the queues.
    pub fn login_to(
        &mut self,
        now: Instant,
        operator: &OperatorId,
        queues: &[QueueId],
    ) -> Result<Vec<QueueId>, AcdError> {
        let covered = self.login_queues(operator, queues)?;
        let o = self.op(operator)?;
        let active: Vec<QIdx> = covered
            .iter()
            .filter_map(|q| self.queue_ix.get(q).copied())
            .collect();
        self.reshape(o, |op| {
            for s in &mut op.skills {
                s.active = active.contains(&s.queue);
            }
        });
        self.idle_seq += 1;
        let seq = self.idle_seq;
        if let Some(op) = self.ops.get_mut(o as usize) {
            if !op.logged_in && op.activity == Activity::Idle {
                op.idle_seq = seq;
            }
            op.logged_in = true;
            op.paused = None;
            op.missed = 0;
        }
        self.refresh_op(o);
        self.finish(now);
        Ok(covered)
    }

    /// The queues the operator is logged in to now (empty when logged out), in skill order.
    pub fn logged_in_queues(&self, operator: &OperatorId) -> Vec<QueueId> {
        let Some(op) = self
            .op_ix
            .get(operator)
            .and_then(|&o| self.ops.get(o as usize))
        else {
            return Vec::new();
        };
        if !op.logged_in {
            return Vec::new();
        }
        op.skills
            .iter()
            .filter(|s| s.active)
            .map(|s| self.queue_id(s.queue))
            .collect()
    }

    /// The operator logs out. A ringing offer is cancelled; a call in progress goes on.
    pub fn logout(&mut self, now: Instant, operator: &OperatorId) -> Result<(), AcdError> {
        let o = self.op(operator)?;
        if let Some(op) = self.ops.get_mut(o as usize) {
            op.logged_in = false;
            op.paused = None;
        }
        self.withdraw_offer(now, o);
        self.refresh_op(o);
        self.finish(now);
        Ok(())
    }

    /// The operator pauses. A ringing offer is cancelled; a call in progress goes on.
    pub fn pause(
        &mut self,
        now: Instant,
        operator: &OperatorId,
        reason: PauseReason,
    ) -> Result<(), AcdError> {
        let o = self.op(operator)?;
        if let Some(op) = self.ops.get_mut(o as usize) {
            op.paused = Some(reason);
        }
        self.withdraw_offer(now, o);
        self.refresh_op(o);
        self.finish(now);
        Ok(())
    }

    /// The operator resumes; the missed-offer count starts again from zero.
    pub fn unpause(&mut self, now: Instant, operator: &OperatorId) -> Result<(), AcdError> {
        let o = self.op(operator)?;
        if let Some(op) = self.ops.get_mut(o as usize) {
            op.paused = None;
            op.missed = 0;
        }
        self.refresh_op(o);
        self.finish(now);
        Ok(())
    }

    /// Whether the operator has a registered contact (from the registrar). Without one the
    /// operator is not offered calls; an offer already ringing is left to fail on its own.
    pub fn set_registered(
        &mut self,
        now: Instant,
        operator: &OperatorId,
        registered: bool,
    ) -> Result<(), AcdError> {
        let o = self.op(operator)?;
        if let Some(op) = self.ops.get_mut(o as usize) {
            op.registered = registered;
        }
        self.refresh_op(o);
        self.finish(now);
        Ok(())
    }

    // ---------------------------------------------------------------- configuration changes

    /// An operator added to the configuration while the ACD runs (a reload): logged out and
    /// unregistered like every operator at start, last in the round-robin order of each of
    /// their queues. An operator whose removal waits for their call to end stays instead,
    /// with these skills. `OperatorExists` for an operator already there.
    pub fn add_operator(&mut self, now: Instant, config: OperatorConfig) -> Result<(), AcdError> {
        let skills = self.check_skills(&config)?;
        if let Some(&o) = self.op_ix.get(&config.id) {
            let pending = self.ops.get(o as usize).is_some_and(|op| op.removing);
            if !pending {
                return Err(AcdError::OperatorExists(config.id));
            }
            if let Some(op) = self.ops.get_mut(o as usize) {
                op.removing = false;
            }
            return self.set_skills(now, &config.id, config.skills);
        }
        let skills = skills
            .into_iter()
            .map(|(q, level)| OpSkill {
                queue: q,
                level,
                position: self.next_position(q),
                calls: 0,
                active: true,
            })
            .collect();
        let o = OIdx::try_from(self.ops.len())
            .map_err(|_| AcdError::OperatorExists(config.id.clone()))?;
        self.op_ix.insert(config.id.clone(), o);
        self.ops.push(Operator {
            id: config.id,
            skills,
            logged_in: false,
            registered: false,
            paused: None,
            activity: Activity::Idle,
            idle_seq: 0,
            missed: 0,
            free_keys: Vec::new(),
            in_free: false,
            counted_logged_in: false,
            counted_ready: false,
            wrap_timer: None,
            direct_timer: None,
            removing: false,
            retired: false,
            changed: false,
        });
        self.touch(o);
        self.finish(now);
        Ok(())
    }

    /// An operator removed from the configuration (a reload): logged out at once, a ringing
    /// offer cancelled (`CancelOffer`, or `CancelDirect` for a direct one). One on a call
    /// keeps it: [`Acd::call_ended`] (or the callback's result) still applies, and the
    /// operator leaves when it ends, without wrap-up. Afterwards the ACD knows no such
    /// operator (`UnknownOperator`; [`Acd::add_operator`] may bring them back).
    pub fn remove_operator(&mut self, now: Instant, operator: &OperatorId) -> Result<(), AcdError> {
        let o = self.op(operator)?;
        if let Some(op) = self.ops.get_mut(o as usize) {
            op.logged_in = false;
            op.paused = None;
            op.removing = true;
        }
        self.withdraw_offer(now, o);
        let direct_ringing = self.ops.get(o as usize).is_some_and(|op| {
            matches!(
                op.activity,
                Activity::Direct {
                    answered: false,
                    ..
                }
            )
        });
        if direct_ringing {
            self.direct_over(o);
            self.actions.push_back(Action::CancelDirect {
                operator: operator.clone(),
            });
        }
        self.refresh_op(o);
        self.finish(now);
        Ok(())
    }

    /// The operator's skills changed (a reload): queues and levels as given, kept queues
    /// keep their round-robin place and call counts, new ones come last in round-robin order.
    /// A logged-in operator is logged in to the new queues too when their login covered every
    /// skill queue, else only to the kept ones they had named. A call or offer in progress
    /// goes on.
    pub fn set_skills(
        &mut self,
        now: Instant,
        operator: &OperatorId,
        skills: Vec<Skill>,
    ) -> Result<(), AcdError> {
        let o = self.op(operator)?;
        let wanted = self.check_skills(&OperatorConfig {
            id: operator.clone(),
            skills,
        })?;
        let Some(op) = self.ops.get(o as usize) else {
            return Err(AcdError::UnknownOperator(operator.clone()));
        };
        let all_active = op.skills.iter().all(|s| s.active);
        let mut new = Vec::with_capacity(wanted.len());
        for (q, level) in wanted {
            let old = op.skills.iter().find(|s| s.queue == q);
            new.push(OpSkill {
                queue: q,
                level,
                position: match old {
                    Some(s) => s.position,
                    None => self.next_position(q),
                },
                calls: old.map_or(0, |s| s.calls),
                active: old.map_or(all_active, |s| s.active),
            });
        }
        self.reshape(o, move |op| op.skills = new);
        self.finish(now);
        Ok(())
    }

    /// The queue indices and levels of `config`'s skills, checked as a configuration would be.
    fn check_skills(&self, config: &OperatorConfig) -> Result<Vec<(QIdx, u8)>, AcdError> {
        let mut out: Vec<(QIdx, u8)> = Vec::with_capacity(config.skills.len());
        for s in &config.skills {
            let Some(&q) = self.queue_ix.get(&s.queue) else {
                return Err(AcdError::BadSkills(ConfigError::UnknownSkillQueue {
                    operator: config.id.clone(),
                    queue: s.queue.clone(),
                }));
            };
            if out.iter().any(|&(x, _)| x == q) {
                return Err(AcdError::BadSkills(ConfigError::DuplicateSkill {
                    operator: config.id.clone(),
                    queue: s.queue.clone(),
                }));
            }
            if !(1..=9).contains(&s.level) {
                return Err(AcdError::BadSkills(ConfigError::BadLevel {
                    operator: config.id.clone(),
                    queue: s.queue.clone(),
                    level: s.level,
                }));
            }
            out.push((q, s.level));
        }
        Ok(out)
    }

    /// The round-robin place after every operator of queue `q`.
    fn next_position(&self, q: QIdx) -> u64 {
        self.ops
            .iter()
            .flat_map(|op| op.skills.iter())
            .filter(|s| s.queue == q)
            .map(|s| s.position + 1)
            .max()
            .unwrap_or(0)
    }

    /// A removed operator whose call is over leaves for good: no timers, no index entry.
    fn retire(&mut self, o: OIdx) {
        self.touch(o);
        let Some(op) = self.ops.get_mut(o as usize) else {
            return;
        };
        self.timers
            .disarm(&mut op.wrap_timer, Kind::WrapUp, u64::from(o));
        self.timers
            .disarm(&mut op.direct_timer, Kind::DirectRing, u64::from(o));
        op.activity = Activity::Idle;
        op.removing = false;
        op.retired = true;
        if self.op_ix.get(&op.id) == Some(&o) {
            self.op_ix.remove(&op.id);
        }
    }

    // ---------------------------------------------------------------- time

    /// Fires every timer due at `now`: ring timeouts, wrap-ups, announcements, max waits,
    /// callback offers and retries, escalation steps.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&(at, kind, id)) = self.timers.set.first() {
            if at > now {
                break;
            }
            self.timers.set.pop_first();
            self.fire(now, kind, id);
        }
        self.finish(now);
    }

    // ---------------------------------------------------------------- queries

    pub fn operator_status(&self, operator: &OperatorId) -> Option<OperatorStatus> {
        let op = self.ops.get(*self.op_ix.get(operator)? as usize)?;
        let state = match op.activity {
            Activity::Ringing(caller) => OperatorState::Ringing { caller },
            Activity::OnCall { caller, .. } => OperatorState::OnCall { caller },
            Activity::WrapUp => OperatorState::WrapUp {
                until: op.wrap_timer?,
            },
            Activity::Direct { answered, .. } => OperatorState::Direct { answered },
            Activity::Idle if !op.logged_in => OperatorState::LoggedOut,
            Activity::Idle => match &op.paused {
                Some(r) => OperatorState::Paused(r.clone()),
                None => OperatorState::Available,
            },
        };
        Some(OperatorStatus {
            state,
            registered: op.registered,
            missed: op.missed,
        })
    }

    /// Operators in configuration order.
    pub fn operators(&self) -> impl Iterator<Item = &OperatorId> {
        self.ops.iter().filter(|o| !o.retired).map(|o| &o.id)
    }

    /// Queues in configuration order.
    pub fn queues(&self) -> impl Iterator<Item = &QueueId> {
        self.queues.iter().map(|q| &q.cfg.id)
    }

    pub fn queue_status(&self, queue: &QueueId) -> Option<QueueStatus> {
        let q = self.queues.get(*self.queue_ix.get(queue)?)?;
        Some(QueueStatus {
            waiting: q.on_line,
            callbacks: q.order.len() - q.on_line.min(q.order.len()),
            logged_in: q.logged_in,
            ready: q.ready(),
            free: q.free_count(),
        })
    }

    /// Callers the ACD knows (waiting, ringing, or holding a callback place).
    pub fn caller_count(&self) -> usize {
        self.callers.len()
    }

    /// Armed timers (for tests and metrics: with no callers and no wrap-up it is zero).
    pub fn timer_count(&self) -> usize {
        self.timers.set.len()
    }

    /// Entries in the per-operator index of returning callers (drains with the callers).
    pub fn returning_index_len(&self) -> usize {
        self.returning.values().map(BTreeSet::len).sum()
    }

    // ---------------------------------------------------------------- internals

    fn queue(&self, id: &QueueId) -> Result<QIdx, AcdError> {
        self.queue_ix
            .get(id)
            .copied()
            .ok_or_else(|| AcdError::UnknownQueue(id.clone()))
    }

    fn op(&self, id: &OperatorId) -> Result<OIdx, AcdError> {
        self.op_ix
            .get(id)
            .copied()
            .ok_or_else(|| AcdError::UnknownOperator(id.clone()))
    }

    fn queue_id(&self, q: QIdx) -> QueueId {
        self.queues
            .get(q)
            .map(|q| q.cfg.id.clone())
            .unwrap_or_else(|| QueueId::new("?"))
    }

    /// Changes what decides an operator's place in queues (their skills or which of them are
    /// active) with `f`: the operator leaves every queue's staffing and free sets under the
    /// old skills and is put back under the new ones, so the counts stay exact.
    fn reshape(&mut self, o: OIdx, f: impl FnOnce(&mut Operator)) {
        let Some(logged_in) = self.ops.get(o as usize).map(|op| op.logged_in) else {
            return;
        };
        if let Some(op) = self.ops.get_mut(o as usize) {
            op.logged_in = false;
        }
        self.refresh_op(o);
        if let Some(op) = self.ops.get_mut(o as usize) {
            f(op);
            op.logged_in = logged_in;
        }
        self.refresh_op(o);
    }

    fn op_id(&self, o: OIdx) -> OperatorId {
        self.ops
            .get(o as usize)
            .map(|op| op.id.clone())
            .unwrap_or_else(|| OperatorId::new("?"))
    }

    /// After every input: leave-when-empty checks, then hand out operators, then the entry
    /// announcements of callers still waiting.
    fn finish(&mut self, now: Instant) {
        while let Some(q) = self.empty_check.pop() {
            if !self
                .queues
                .get(q)
                .is_some_and(|queue| queue.is_empty_by(queue.cfg.leave_empty))
            {
                continue;
            }
            let victims: Vec<CallerId> = self.queues[q]
                .order
                .iter()
                .map(|(_, c)| *c)
                .filter(|c| {
                    self.callers.get(c).is_some_and(|c| {
                        c.callback.is_none() && c.ringing.is_empty() && !c.callback_offered
                    })
                })
                .collect();
            for c in victims {
                self.overflow(now, c, OverflowReason::Empty);
            }
        }
        self.dispatch(now);
        for caller in std::mem::take(&mut self.announce_now) {
            let Some(c) = self.callers.get(&caller) else {
                continue;
            };
            if c.ringing.is_empty() && c.callback.is_none() {
                self.announce(caller);
            }
        }
    }

    fn announce(&mut self, caller: CallerId) {
        let Some(c) = self.callers.get(&caller) else {
            return;
        };
        let Some(q) = self.queues.get(c.queue) else {
            return;
        };
        let position = q.position(c.key);
        self.actions.push_back(Action::Announce {
            caller,
            position,
            estimated_wait: q.estimate(position),
        });
    }

    /// Puts the caller into queue `q` (on joining or overflowing), or overflows it at once
    /// when the queue is full or empty.
    fn enter(&mut self, now: Instant, caller: CallerId, q: QIdx) {
        let Some(queue) = self.queues.get(q) else {
            return;
        };
        let full = queue.cfg.max_len.is_some_and(|m| queue.on_line >= m);
        let empty =
            queue.is_empty_by(queue.cfg.join_empty) || queue.is_empty_by(queue.cfg.leave_empty);
        let cfg = queue.cfg.clone();
        let Some(c) = self.callers.get_mut(&caller) else {
            return;
        };
        c.queue = q;
        c.entered = now;
        c.tried.clear();
        c.max_wait_expired = false;
        c.visited.push(q);
        if full || empty {
            let reason = if full {
                OverflowReason::Full
            } else {
                OverflowReason::Empty
            };
            self.overflow(now, caller, reason);
            return;
        }
        let key = c.key;
        if let Some(d) = cfg.max_wait {
            self.timers.arm(
                &mut c.timers[Kind::MaxWait as usize],
                now + d,
                Kind::MaxWait,
                caller.0,
            );
        }
        if let Some(d) = cfg.announce_every {
            self.announce_now.push(caller);
            self.timers.arm(
                &mut c.timers[Kind::Announce as usize],
                now + d,
                Kind::Announce,
                caller.0,
            );
        }
        if let Some(d) = cfg.callback.and_then(|cb| cb.offer_after) {
            if !c.callback_offered {
                self.timers.arm(
                    &mut c.timers[Kind::CallbackOffer as usize],
                    now + d,
                    Kind::CallbackOffer,
                    caller.0,
                );
            }
        }
        if let Some(step) = cfg.escalation_step {
            self.timers.arm(
                &mut c.timers[Kind::Escalate as usize],
                now + step,
                Kind::Escalate,
                caller.0,
            );
        }
        if let (Some(ret), Some(p)) = (cfg.returning, c.returning) {
            self.returning.entry(p).or_default().insert((key, caller));
            if !ret.wait_for_operator.is_zero() {
                self.timers.arm(
                    &mut c.timers[Kind::Prefer as usize],
                    now + ret.wait_for_operator,
                    Kind::Prefer,
                    caller.0,
                );
            }
        }
        if let Some(queue) = self.queues.get_mut(q) {
            queue.insert(key, caller);
            queue.on_line += 1;
        }
    }

    /// Takes the caller out of its queue's line and indexes, disarming its timers.
    fn unqueue(&mut self, caller: CallerId) {
        let Some(c) = self.callers.get_mut(&caller) else {
            return;
        };
        for (i, slot) in c.timers.iter_mut().enumerate() {
            if let Some(at) = slot.take() {
                let kind = [
                    Kind::Ring,
                    Kind::MaxWait,
                    Kind::Announce,
                    Kind::CallbackOffer,
                    Kind::Escalate,
                    Kind::Hold,
                    Kind::Prefer,
                ][i];
                self.timers.set.remove(&(at, kind, caller.0));
            }
        }
        if let Some(queue) = self.queues.get_mut(c.queue) {
            if queue.remove(c.key) && c.callback.is_none() {
                queue.on_line = queue.on_line.saturating_sub(1);
            }
        }
        if let Some(p) = c.returning {
            if let Some(set) = self.returning.get_mut(&p) {
                set.remove(&(c.key, caller));
                if set.is_empty() {
                    self.returning.remove(&p);
                }
            }
        }
    }

    /// The caller leaves the ACD: ringing legs cancelled, `Left` emitted, all traces removed.
    fn remove_caller(&mut self, caller: CallerId, outcome: Outcome) {
        self.unqueue(caller);
        let Some(c) = self.callers.remove(&caller) else {
            return;
        };
        for o in c.ringing {
            self.cancel_leg(caller, o);
        }
        self.actions.push_back(Action::Left { caller, outcome });
    }

    /// Emits `CancelOffer` for one leg and frees the operator (not counted as a miss).
    fn cancel_leg(&mut self, caller: CallerId, o: OIdx) {
        let Some(op) = self.ops.get_mut(o as usize) else {
            return;
        };
        if op.activity == Activity::Ringing(caller) {
            op.activity = Activity::Idle;
        }
        self.actions.push_back(Action::CancelOffer {
            caller,
            operator: op.id.clone(),
        });
        self.refresh_op(o);
    }

    /// The operator stops being available while ringing (logout, pause): cancel that leg.
    fn withdraw_offer(&mut self, now: Instant, o: OIdx) {
        let Some(Activity::Ringing(caller)) = self.ops.get(o as usize).map(|op| op.activity) else {
            return;
        };
        let Some(c) = self.callers.get_mut(&caller) else {
            return;
        };
        c.ringing.retain(|&x| x != o);
        let done = c.ringing.is_empty();
        if done {
            self.timers
                .disarm(&mut c.timers[Kind::Ring as usize], Kind::Ring, caller.0);
        }
        self.cancel_leg(caller, o);
        if done {
            self.back_to_waiting(now, caller);
        }
    }

    /// The operator's call (a queue's or a direct one) is over: wrap-up after `queue`'s
    /// `wrap_up` when logged in, else idle at once.
    fn end_busy(&mut self, now: Instant, o: OIdx, queue: Option<QIdx>) {
        let wrap = queue
            .and_then(|q| self.queues.get(q))
            .map_or(Duration::ZERO, |q| q.cfg.wrap_up);
        self.idle_seq += 1;
        let idle_seq = self.idle_seq;
        if let Some(op) = self.ops.get_mut(o as usize) {
            op.idle_seq = idle_seq;
            if op.logged_in && !wrap.is_zero() {
                op.activity = Activity::WrapUp;
                self.timers
                    .arm(&mut op.wrap_timer, now + wrap, Kind::WrapUp, u64::from(o));
            } else {
                op.activity = Activity::Idle;
            }
        }
        self.refresh_op(o);
    }

    /// A direct offer that was not answered ends: timer disarmed, the operator idle.
    fn direct_over(&mut self, o: OIdx) {
        if let Some(op) = self.ops.get_mut(o as usize) {
            self.timers
                .disarm(&mut op.direct_timer, Kind::DirectRing, u64::from(o));
            op.activity = Activity::Idle;
        }
        self.refresh_op(o);
    }

    /// A missed offer: count it and pause the operator at the queue's limit.
    fn missed(&mut self, o: OIdx, q: QIdx) {
        let max = self.queues.get(q).map_or(0, |q| q.cfg.max_no_answer);
        self.touch(o);
        let Some(op) = self.ops.get_mut(o as usize) else {
            return;
        };
        op.missed += 1;
        if max > 0 && op.missed >= max && op.paused.is_none() && op.logged_in {
            let reason = PauseReason::NoAnswer(op.missed);
            op.paused = Some(reason.clone());
            self.actions.push_back(Action::OperatorPaused {
                operator: op.id.clone(),
                reason,
            });
        }
    }

    /// The caller has no leg ringing any more: apply a max wait that expired meanwhile or an
    /// empty queue; otherwise it simply waits for the next dispatch.
    fn back_to_waiting(&mut self, now: Instant, caller: CallerId) {
        let Some(c) = self.callers.get(&caller) else {
            return;
        };
        if c.callback.is_some() {
            return;
        }
        if c.max_wait_expired {
            self.overflow(now, caller, OverflowReason::MaxWait);
            return;
        }
        let empty = self
            .queues
            .get(c.queue)
            .is_some_and(|q| q.is_empty_by(q.cfg.leave_empty));
        if empty && !c.callback_offered {
            self.overflow(now, caller, OverflowReason::Empty);
        }
    }

    fn callback_attempt_failed(&mut self, now: Instant, caller: CallerId, o: OIdx) {
        if let Some(op) = self.ops.get_mut(o as usize) {
            if matches!(op.activity, Activity::OnCall { caller: c, .. } if c == caller) {
                op.activity = Activity::Idle;
            }
        }
        self.refresh_op(o);
        let Some(c) = self.callers.get_mut(&caller) else {
            return;
        };
        let Some(cb) = c.callback.as_mut() else {
            return;
        };
        cb.attempts += 1;
        cb.phase = CbPhase::Waiting;
        let attempts = cb.attempts;
        let cfg = self.queues.get(c.queue).and_then(|q| q.cfg.callback);
        let max = cfg.map_or(1, |cb| cb.max_attempts);
        if attempts >= max {
            self.remove_caller(caller, Outcome::CallbackFailed { attempts });
            return;
        }
        let retry = cfg.map_or(Duration::ZERO, |cb| cb.retry_interval);
        if !retry.is_zero() {
            self.timers.arm(
                &mut c.timers[Kind::Hold as usize],
                now + retry,
                Kind::Hold,
                caller.0,
            );
        }
    }

    fn overflow(&mut self, now: Instant, caller: CallerId, reason: OverflowReason) {
        let Some(c) = self.callers.get(&caller) else {
            return;
        };
        let Some(queue) = self.queues.get(c.queue) else {
            return;
        };
        let mut to = queue.cfg.overflow.clone();
        let target = match &to {
            OverflowAction::Queue(t) => self.queue_ix.get(t).copied(),
            _ => None,
        };
        if matches!(to, OverflowAction::Queue(_)) && target.is_none_or(|t| c.visited.contains(&t)) {
            to = OverflowAction::Message;
        }
        self.actions.push_back(Action::Overflow {
            caller,
            to: to.clone(),
            reason,
        });
        match (to, target) {
            (OverflowAction::Queue(_), Some(t)) => {
                self.unqueue(caller);
                self.enter(now, caller, t);
            }
            (OverflowAction::Callback, _) => {
                let Some(c) = self.callers.get_mut(&caller) else {
                    return;
                };
                c.callback_offered = true;
                c.max_wait_expired = false;
                for kind in [Kind::MaxWait, Kind::CallbackOffer] {
                    self.timers
                        .disarm(&mut c.timers[kind as usize], kind, caller.0);
                }
            }
            _ => self.remove_caller(caller, Outcome::Overflowed),
        }
    }

    fn fire(&mut self, now: Instant, kind: Kind, id: u64) {
        if kind == Kind::DirectRing {
            let Ok(o) = OIdx::try_from(id) else {
                return;
            };
            let Some(op) = self.ops.get_mut(o as usize) else {
                return;
            };
            op.direct_timer = None;
            if matches!(
                op.activity,
                Activity::Direct {
                    answered: false,
                    ..
                }
            ) {
                let operator = op.id.clone();
                self.direct_over(o);
                self.actions.push_back(Action::CancelDirect { operator });
            }
            return;
        }
        if kind == Kind::WrapUp {
            let Ok(o) = OIdx::try_from(id) else {
                return;
            };
            if let Some(op) = self.ops.get_mut(o as usize) {
                op.wrap_timer = None;
                if op.activity == Activity::WrapUp {
                    op.activity = Activity::Idle;
                }
            }
            self.refresh_op(o);
            return;
        }
        let caller = cid_of(id);
        let Some(c) = self.callers.get_mut(&caller) else {
            return;
        };
        c.timers[kind as usize] = None;
        let q = c.queue;
        let Some(cfg) = self.queues.get(q).map(|q| &q.cfg) else {
            return;
        };
        match kind {
            Kind::Ring => {
                let legs: Vec<OIdx> = c.ringing.drain(..).collect();
                c.tried.extend(legs.iter().copied());
                for o in legs {
                    self.cancel_leg(caller, o);
                    self.missed(o, q);
                    self.refresh_op(o);
                }
                self.back_to_waiting(now, caller);
            }
            Kind::MaxWait => {
                if c.ringing.is_empty() {
                    self.overflow(now, caller, OverflowReason::MaxWait);
                } else {
                    c.max_wait_expired = true;
                }
            }
            Kind::Announce => {
                if let Some(every) = cfg.announce_every {
                    self.timers.arm(
                        &mut c.timers[Kind::Announce as usize],
                        now + every,
                        Kind::Announce,
                        caller.0,
                    );
                }
                if c.ringing.is_empty() && c.callback.is_none() {
                    self.announce(caller);
                }
            }
            Kind::CallbackOffer => {
                if c.callback.is_some() || c.callback_offered {
                    return;
                }
                if let Some(ring_end) = c.timers[Kind::Ring as usize] {
                    self.timers.arm(
                        &mut c.timers[Kind::CallbackOffer as usize],
                        ring_end,
                        Kind::CallbackOffer,
                        caller.0,
                    );
                    return;
                }
                c.callback_offered = true;
                self.actions.push_back(Action::OfferCallback { caller });
            }
            Kind::Escalate => {
                if let Some(step) = cfg.escalation_step {
                    let steps = now.saturating_duration_since(c.entered).as_nanos()
                        / step.as_nanos().max(1);
                    if steps < 8 {
                        let next = c.entered + step * (steps as u32 + 1);
                        self.timers.arm(
                            &mut c.timers[Kind::Escalate as usize],
                            next,
                            Kind::Escalate,
                            caller.0,
                        );
                    }
                }
            }
            Kind::Hold | Kind::Prefer | Kind::WrapUp | Kind::DirectRing => {}
        }
    }

    /// The operator's status or queues may have changed ([`Acd::take_changed`]).
    fn touch(&mut self, o: OIdx) {
        if let Some(op) = self.ops.get_mut(o as usize) {
            if !op.changed {
                op.changed = true;
                self.changed.push(o);
            }
        }
    }

    /// Re-derives an operator's place in the free sets and the queues' staffing counts. Every
    /// change of an operator's state passes here, so here it is marked changed.
    fn refresh_op(&mut self, o: OIdx) {
        self.touch(o);
        let Some(op) = self.ops.get_mut(o as usize) else {
            return;
        };
        let logged = op.logged_in;
        let ready = op.ready();
        if op.counted_logged_in != logged || op.counted_ready != ready {
            for s in op.skills.iter().filter(|s| s.active) {
                let Some(q) = self.queues.get_mut(s.queue) else {
                    continue;
                };
                let lvl = usize::from(s.level.clamp(1, 9) - 1);
                match (op.counted_logged_in, logged) {
                    (false, true) => q.logged_in += 1,
                    (true, false) => q.logged_in = q.logged_in.saturating_sub(1),
                    _ => {}
                }
                match (op.counted_ready, ready) {
                    (false, true) => q.ready_per_level[lvl] += 1,
                    (true, false) => {
                        q.ready_per_level[lvl] = q.ready_per_level[lvl].saturating_sub(1)
                    }
                    _ => {}
                }
                if !ready || !logged {
                    self.empty_check.push(s.queue);
                }
            }
            op.counted_logged_in = logged;
            op.counted_ready = ready;
        }
        let offerable = op.offerable();
        if op.in_free && !offerable {
            for (q, lvl, key) in op.free_keys.drain(..) {
                if let Some(set) = self
                    .queues
                    .get_mut(q)
                    .and_then(|q| q.free.get_mut(usize::from(lvl - 1)))
                {
                    set.remove(&key);
                }
            }
            op.in_free = false;
        } else if !op.in_free && offerable {
            for s in op.skills.iter().filter(|s| s.active) {
                let Some(q) = self.queues.get_mut(s.queue) else {
                    continue;
                };
                let (a, b) = match q.cfg.strategy {
                    Strategy::RoundRobin => (s.position, 0),
                    Strategy::FewestCalls => (s.calls, op.idle_seq),
                    Strategy::LongestIdle | Strategy::RingAll | Strategy::Skills => {
                        (op.idle_seq, 0)
                    }
                };
                let key = FreeKey { a, b, op: o };
                let lvl = s.level.clamp(1, 9);
                if let Some(set) = q.free.get_mut(usize::from(lvl - 1)) {
                    set.insert(key);
                }
                op.free_keys.push((s.queue, lvl, key));
            }
            op.in_free = true;
        }
        let settle = self.ops.get(o as usize).is_some_and(|op| {
            op.removing && matches!(op.activity, Activity::Idle | Activity::WrapUp) && !op.in_free
        });
        if settle {
            self.retire(o);
        }
    }

    /// Matches waiting callers with free operators: returning callers to their previous
    /// operator first, then each queue in line order while it has free operators.
    fn dispatch(&mut self, now: Instant) {
        if !self.returning.is_empty() {
            let mut wanted: Vec<OIdx> = self
                .returning
                .keys()
                .copied()
                .filter(|&p| self.ops.get(p as usize).is_some_and(Operator::offerable))
                .collect();
            wanted.sort_unstable();
            for p in wanted {
                let candidate = self.returning.get(&p).and_then(|set| {
                    set.iter().map(|(_, c)| *c).find(|c| {
                        self.callers
                            .get(c)
                            .is_some_and(|c| self.dispatchable(c) && !c.tried.contains(&p))
                    })
                });
                if let Some(caller) = candidate {
                    self.offer(now, caller, vec![p]);
                }
            }
        }
        let mut queues: Vec<(OrderKey, QIdx)> = self
            .queues
            .iter()
            .enumerate()
            .filter(|(_, q)| q.free_count() > 0)
            .filter_map(|(i, q)| q.order.first().map(|(k, _)| (*k, i)))
            .collect();
        queues.sort_unstable();
        for (_, q) in queues {
            let mut i = 0;
            while self.queues.get(q).is_some_and(|q| q.free_count() > 0) {
                let Some(&(_, caller)) = self.queues.get(q).and_then(|q| q.order.get(i)) else {
                    break;
                };
                i += 1;
                self.try_offer(now, caller);
            }
        }
    }

    fn dispatchable(&self, c: &Caller) -> bool {
        if !c.ringing.is_empty() || c.timers[Kind::Hold as usize].is_some() {
            return false;
        }
        match &c.callback {
            None => true,
            Some(cb) => {
                matches!(cb.phase, CbPhase::Waiting)
                    && self.queues.get(c.queue).is_some_and(|q| q.open)
            }
        }
    }

    fn try_offer(&mut self, now: Instant, caller: CallerId) {
        let Some(c) = self.callers.get(&caller) else {
            return;
        };
        if !self.dispatchable(c) {
            return;
        }
        let mut chosen = self.pick(now, c);
        if chosen.is_empty() && !c.tried.is_empty() {
            // Every free eligible operator has missed this caller: start a new round.
            let all = self.choose(c.queue, self.max_level(now, c), &[]);
            if all.is_empty() {
                return;
            }
            let delay = self
                .queues
                .get(c.queue)
                .map_or(Duration::ZERO, |q| q.cfg.retry_delay);
            let Some(c) = self.callers.get_mut(&caller) else {
                return;
            };
            c.tried.clear();
            if !delay.is_zero() {
                self.timers.arm(
                    &mut c.timers[Kind::Hold as usize],
                    now + delay,
                    Kind::Hold,
                    caller.0,
                );
                return;
            }
            chosen = all;
        }
        if !chosen.is_empty() {
            self.offer(now, caller, chosen);
        }
    }

    /// The operators to offer this caller now, by the returning preference and the strategy.
    fn pick(&self, now: Instant, c: &Caller) -> Vec<OIdx> {
        let Some(q) = self.queues.get(c.queue) else {
            return Vec::new();
        };
        if let (Some(ret), Some(p)) = (q.cfg.returning, c.returning) {
            if let Some(op) = self.ops.get(p as usize) {
                if !c.tried.contains(&p) {
                    if op.offerable() {
                        return vec![p];
                    }
                    if op.ready() && now < c.entered + ret.wait_for_operator {
                        return Vec::new();
                    }
                }
            }
        }
        self.choose(c.queue, self.max_level(now, c), &c.tried)
    }

    /// The deepest level the caller may be offered to by now (1..=9).
    fn max_level(&self, now: Instant, c: &Caller) -> u8 {
        let Some(q) = self.queues.get(c.queue) else {
            return 9;
        };
        let Some(step) = q.cfg.escalation_step else {
            return 9;
        };
        let mut remaining =
            now.saturating_duration_since(c.entered).as_nanos() / step.as_nanos().max(1);
        for (lvl, &ready) in q.ready_per_level.iter().enumerate() {
            if ready > 0 {
                if remaining == 0 {
                    return lvl as u8 + 1;
                }
                remaining -= 1;
            }
        }
        9
    }

    fn choose(&self, q: QIdx, max_level: u8, skip: &[OIdx]) -> Vec<OIdx> {
        let Some(queue) = self.queues.get(q) else {
            return Vec::new();
        };
        let levels = &queue.free[..usize::from(max_level.clamp(1, 9))];
        let ok = |k: &&FreeKey| !skip.contains(&k.op);
        match queue.cfg.strategy {
            Strategy::RingAll => levels
                .iter()
                .flat_map(|s| s.iter().filter(ok))
                .map(|k| k.op)
                .collect(),
            Strategy::Skills => levels
                .iter()
                .find_map(|s| s.iter().find(ok))
                .map(|k| vec![k.op])
                .unwrap_or_default(),
            Strategy::LongestIdle | Strategy::FewestCalls => levels
                .iter()
                .filter_map(|s| s.iter().find(ok))
                .min()
                .map(|k| vec![k.op])
                .unwrap_or_default(),
            Strategy::RoundRobin => {
                let from = queue.rr_last.map_or(0, |l| l + 1);
                let after = FreeKey {
                    a: from,
                    b: 0,
                    op: 0,
                };
                levels
                    .iter()
                    .filter_map(|s| s.range(after..).find(ok))
                    .min()
                    .or_else(|| levels.iter().filter_map(|s| s.iter().find(ok)).min())
                    .map(|k| vec![k.op])
                    .unwrap_or_default()
            }
        }
    }

    fn offer(&mut self, now: Instant, caller: CallerId, mut ops: Vec<OIdx>) {
        let Some(c) = self.callers.get_mut(&caller) else {
            return;
        };
        let Some(queue) = self.queues.get_mut(c.queue) else {
            return;
        };
        if c.callback.is_some() {
            ops.truncate(1);
        }
        let Some(&first) = ops.first() else {
            return;
        };
        if queue.cfg.strategy == Strategy::RoundRobin {
            if let Some(s) = self
                .ops
                .get(first as usize)
                .and_then(|op| op.skills.iter().find(|s| s.queue == c.queue))
            {
                queue.rr_last = Some(s.position);
            }
        }
        self.timers.arm(
            &mut c.timers[Kind::Ring as usize],
            now + queue.cfg.ring_timeout,
            Kind::Ring,
            caller.0,
        );
        c.ringing = ops.clone();
        let callback_number = c.callback.as_ref().map(|cb| cb.number.clone());
        for &o in &ops {
            if let Some(op) = self.ops.get_mut(o as usize) {
                op.activity = Activity::Ringing(caller);
            }
            self.refresh_op(o);
        }
        let action = match callback_number {
            Some(number) => Action::StartCallback {
                caller,
                number,
                operator: self.op_id(first),
            },
            None => Action::Offer {
                caller,
                operators: ops.iter().map(|&o| self.op_id(o)).collect(),
            },
        };
        self.actions.push_back(action);
    }
}

/// The caller whose offer to operator `o` is ringing (what an answer or a failure of that leg
/// refers to).
fn ringing_leg<'a>(
    callers: &'a mut HashMap<CallerId, Caller>,
    caller: CallerId,
    o: OIdx,
    operator: &OperatorId,
) -> Result<&'a mut Caller, AcdError> {
    let c = callers
        .get_mut(&caller)
        .ok_or(AcdError::UnknownCaller(caller))?;
    if !c.ringing.contains(&o) {
        return Err(AcdError::NotOffered {
            caller,
            operator: operator.clone(),
        });
    }
    Ok(c)
}
