//! Random operation sequences against the ACD (quinn's `fuzz_targets` idea, with a
//! deterministic generator so a failure names the seed that reproduces it).
//!
//! A model beside the ACD follows only what the actions say and checks, after every input:
//! - no operator ever holds two calls (ringing offers and connected calls together);
//! - every caller that joined leaves exactly once, and nothing refers to it afterwards;
//! - no action names an unknown caller or operator; a caller's legs are cancelled before it
//!   leaves unless it was answered;
//! - the ACD agrees with the model: answering a leg the model thinks rings always succeeds;
//! - in "order" runs (no misses, no preferences, no escalation) nobody is offered while a caller
//!   of the same queue with a better place (priority, then arrival) waits un-offered;
//! - operators added, removed and given new skills on the way (a reload): a removed operator
//!   is never offered a call, keeps a call in progress until it ends, and is unknown after;
//! - when every caller is gone and time has passed, the ACD's tables and timers are empty.
//!
//! `ACD_FUZZ_CASES` and `ACD_FUZZ_SEED` widen or replay the search.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use acd::{
    Acd, AcdConfig, Action, CallbackConfig, CallbackResult, CallerId, EmptyRule, OfferFailure,
    OperatorConfig, OperatorId, OperatorStatus, Outcome, OverflowAction, PauseReason, QueueConfig,
    QueueId, ReturningConfig, Strategy,
};

/// SplitMix64: tiny, deterministic, good enough to shuffle operations.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        if items.is_empty() {
            None
        } else {
            items.get(self.below(items.len() as u64) as usize)
        }
    }
}

const QUEUES: [&str; 3] = ["q0", "q1", "q2"];
const OPS: [&str; 6] = ["o0", "o1", "o2", "o3", "o4", "o5"];
const STRATEGIES: [Strategy; 5] = [
    Strategy::LongestIdle,
    Strategy::RoundRobin,
    Strategy::RingAll,
    Strategy::FewestCalls,
    Strategy::Skills,
];

fn config(rng: &mut Rng, ordered: bool) -> AcdConfig {
    let secs = Duration::from_secs;
    let mut queues = Vec::new();
    for (i, name) in QUEUES.iter().enumerate() {
        let mut q = QueueConfig::new(*name);
        q.strategy = *rng.pick(&STRATEGIES).unwrap();
        q.wrap_up = secs(rng.below(3) * 10);
        q.announce_every = rng.chance(50).then(|| secs(30));
        q.max_len = rng.chance(30).then(|| 1 + rng.below(4) as usize);
        q.max_wait = rng.chance(50).then(|| secs(60 + rng.below(120)));
        q.join_empty = *rng
            .pick(&[
                EmptyRule::Never,
                EmptyRule::NoneLoggedIn,
                EmptyRule::NoneReady,
            ])
            .unwrap();
        q.leave_empty = *rng
            .pick(&[
                EmptyRule::Never,
                EmptyRule::NoneLoggedIn,
                EmptyRule::NoneReady,
            ])
            .unwrap();
        q.callback = rng.chance(60).then(|| CallbackConfig {
            offer_after: rng.chance(50).then(|| secs(20)),
            max_attempts: 1 + rng.below(3) as u32,
            retry_interval: secs(rng.below(2) * 30),
        });
        q.overflow = match (i, rng.below(3)) {
            (0 | 1, 0) => OverflowAction::Queue(QueueId::from(QUEUES[i + 1])),
            (2, 0) => OverflowAction::Queue(QueueId::from(QUEUES[0])),
            (_, 1) if q.callback.is_some() && !ordered => OverflowAction::Callback,
            _ => OverflowAction::Message,
        };
        if ordered {
            q.ring_timeout = secs(100_000_000);
        } else {
            q.ring_timeout = secs(5 + rng.below(20));
            q.retry_delay = secs(rng.below(2) * 5);
            q.max_no_answer = rng.below(4) as u32;
            q.escalation_step = rng.chance(40).then(|| secs(15));
            q.returning = rng.chance(50).then(|| ReturningConfig {
                lookback: secs(86400),
                wait_for_operator: secs(rng.below(2) * 20),
            });
        }
        queues.push(q);
    }
    let operators = OPS
        .iter()
        .map(|name| {
            let mut skills: Vec<(&str, u8)> = Vec::new();
            for q in QUEUES {
                if rng.chance(60) {
                    skills.push((q, 1 + rng.below(3) as u8));
                }
            }
            OperatorConfig::new(*name, skills)
        })
        .collect();
    AcdConfig { queues, operators }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hold {
    Ringing(CallerId),
    OnCall(CallerId),
    /// A direct offer (an operator's transfer), ringing or answered.
    Direct {
        answered: bool,
    },
}

#[derive(Debug, Default)]
struct CallerModel {
    queue: String,
    priority: u8,
    order: u64,
    ringing: Vec<String>,
    callback: bool,
    dialing: Option<String>,
}

struct Model {
    /// How often each kind of action was seen (to show the generator reaches everything).
    seen: HashMap<&'static str, u64>,
    ordered: bool,
    joined: HashSet<CallerId>,
    left: HashSet<CallerId>,
    callers: HashMap<CallerId, CallerModel>,
    ops: HashMap<String, Option<Hold>>,
    callback_queues: HashSet<String>,
    next_order: u64,
    /// Operators removed from the configuration (some may still finish a call).
    gone: HashSet<String>,
}

impl Model {
    fn caller(&self, c: CallerId, what: &Action) -> &CallerModel {
        assert!(!self.left.contains(&c), "{what:?} after the caller left");
        self.callers
            .get(&c)
            .unwrap_or_else(|| panic!("{what:?} names unknown caller"))
    }

    fn check_op(&self, o: &OperatorId, what: &Action) {
        assert!(
            self.ops.contains_key(o.as_str()),
            "{what:?}: unknown operator"
        );
    }

    fn take_offer(&mut self, caller: CallerId, o: &OperatorId, what: &Action) {
        self.check_op(o, what);
        assert!(
            !self.gone.contains(o.as_str()),
            "{what:?}: operator {o} was removed"
        );
        let slot = self.ops.get_mut(o.as_str()).unwrap();
        assert!(
            slot.is_none(),
            "{what:?}: operator {o} already holds {slot:?}"
        );
        *slot = Some(Hold::Ringing(caller));
        self.callers
            .get_mut(&caller)
            .unwrap()
            .ringing
            .push(o.as_str().to_owned());
    }

    /// Nobody in the same queue with a better place waits un-offered.
    fn check_order(&self, d: CallerId, what: &Action) {
        let dm = &self.callers[&d];
        let key = |m: &CallerModel| (u8::MAX - m.priority, m.order);
        for (c, cm) in &self.callers {
            if *c != d
                && cm.queue == dm.queue
                && key(cm) < key(dm)
                && cm.ringing.is_empty()
                && cm.dialing.is_none()
            {
                panic!("{what:?} passes over {c:?} {cm:?} (offered {dm:?})");
            }
        }
    }

    fn apply(&mut self, a: &Action) {
        let kind = match a {
            Action::Offer { operators, .. } if operators.len() > 1 => "offer-many",
            Action::Offer { .. } => "offer",
            Action::CancelOffer { .. } => "cancel",
            Action::Connect { .. } => "connect",
            Action::Overflow {
                to: OverflowAction::Queue(_),
                ..
            } => "overflow-queue",
            Action::Overflow {
                to: OverflowAction::Callback,
                ..
            } => "overflow-callback",
            Action::Overflow { .. } => "overflow-message",
            Action::OfferCallback { .. } => "offer-callback",
            Action::StartCallback { .. } => "start-callback",
            Action::Announce { .. } => "announce",
            Action::OperatorPaused { .. } => "paused",
            Action::CancelDirect { .. } => "cancel-direct",
            Action::Left {
                outcome: Outcome::Answered { .. },
                ..
            } => "left-answered",
            Action::Left {
                outcome: Outcome::Abandoned,
                ..
            } => "left-abandoned",
            Action::Left {
                outcome: Outcome::Overflowed,
                ..
            } => "left-overflowed",
            Action::Left {
                outcome: Outcome::CalledBack { .. },
                ..
            } => "left-called-back",
            Action::Left {
                outcome: Outcome::CallbackFailed { .. },
                ..
            } => "left-callback-failed",
        };
        *self.seen.entry(kind).or_default() += 1;
        match a {
            Action::Offer { caller, operators } => {
                self.caller(*caller, a);
                assert!(!operators.is_empty(), "{a:?}");
                assert!(!self.callers[caller].callback, "{a:?} for a callback entry");
                if self.ordered {
                    self.check_order(*caller, a);
                }
                for o in operators {
                    self.take_offer(*caller, o, a);
                }
            }
            Action::StartCallback {
                caller, operator, ..
            } => {
                assert!(
                    self.caller(*caller, a).callback,
                    "{a:?} for a caller on the line"
                );
                if self.ordered {
                    self.check_order(*caller, a);
                }
                self.take_offer(*caller, operator, a);
            }
            Action::CancelOffer { caller, operator } => {
                self.caller(*caller, a);
                self.check_op(operator, a);
                assert_eq!(
                    self.ops[operator.as_str()],
                    Some(Hold::Ringing(*caller)),
                    "{a:?}"
                );
                self.ops.insert(operator.as_str().to_owned(), None);
                let cm = self.callers.get_mut(caller).unwrap();
                cm.ringing.retain(|o| o != operator.as_str());
            }
            Action::Connect { caller, operator } => {
                self.caller(*caller, a);
                self.check_op(operator, a);
                assert_eq!(
                    self.ops[operator.as_str()],
                    Some(Hold::OnCall(*caller)),
                    "{a:?}"
                );
            }
            Action::Overflow { caller, to, .. } => {
                self.caller(*caller, a);
                if let OverflowAction::Queue(q) = to {
                    self.callers.get_mut(caller).unwrap().queue = q.as_str().to_owned();
                }
            }
            Action::OfferCallback { caller } => {
                self.caller(*caller, a);
            }
            Action::Announce {
                caller, position, ..
            } => {
                self.caller(*caller, a);
                assert!(*position >= 1, "{a:?}");
            }
            Action::OperatorPaused { operator, .. } => self.check_op(operator, a),
            Action::CancelDirect { operator } => {
                self.check_op(operator, a);
                assert_eq!(
                    self.ops[operator.as_str()],
                    Some(Hold::Direct { answered: false }),
                    "{a:?}"
                );
                self.ops.insert(operator.as_str().to_owned(), None);
            }
            Action::Left { caller, outcome } => {
                let cm = self.caller(*caller, a);
                match outcome {
                    Outcome::Answered { operator } | Outcome::CalledBack { operator } => {
                        assert_eq!(
                            self.ops[operator.as_str()],
                            Some(Hold::OnCall(*caller)),
                            "{a:?}"
                        );
                    }
                    _ => assert!(cm.ringing.is_empty(), "{a:?} with legs ringing {cm:?}"),
                }
                assert!(self.joined.contains(caller));
                self.left.insert(*caller);
                self.callers.remove(caller);
            }
        }
    }
}

struct Run {
    acd: Acd,
    model: Model,
    rng: Rng,
    now: Instant,
    next_id: u64,
    /// Every operator's status and logged-in queues as last read (`None`: unknown).
    statuses: Statuses,
}

type Statuses = HashMap<&'static str, Option<(OperatorStatus, Vec<QueueId>)>>;

fn statuses(acd: &Acd) -> Statuses {
    OPS.iter()
        .map(|&o| {
            let id = OperatorId::from(o);
            let status = acd.operator_status(&id);
            (o, status.map(|s| (s, acd.logged_in_queues(&id))))
        })
        .collect()
}

impl Run {
    fn drain(&mut self) {
        while let Some(a) = self.acd.poll_action() {
            self.model.apply(&a);
        }
        self.check_changed();
    }

    /// Every operator whose status or queues differ from the last drain is among the ACD's
    /// changed operators (a watcher reading only those misses nothing).
    fn check_changed(&mut self) {
        let changed = self.acd.take_changed();
        let now = statuses(&self.acd);
        for (o, status) in &now {
            if self.statuses.get(o) != Some(status) {
                assert!(
                    changed.iter().any(|c| c.as_str() == *o),
                    "operator {o} changed ({:?} -> {status:?}) but is not in take_changed {changed:?}",
                    self.statuses.get(o)
                );
            }
        }
        let mut seen = HashSet::new();
        assert!(
            changed.iter().all(|c| seen.insert(c.clone())),
            "an operator told twice in one take_changed: {changed:?}"
        );
        self.statuses = now;
    }

    fn ringing_legs(&self) -> Vec<(CallerId, String)> {
        let mut v: Vec<_> = self
            .model
            .ops
            .iter()
            .filter_map(|(o, h)| match h {
                Some(Hold::Ringing(c)) => Some((*c, o.clone())),
                _ => None,
            })
            .collect();
        v.sort();
        v
    }

    fn on_call(&self) -> Vec<String> {
        let mut v: Vec<_> = self
            .model
            .ops
            .iter()
            .filter(|(_, h)| matches!(h, Some(Hold::OnCall(_) | Hold::Direct { answered: true })))
            .map(|(o, _)| o.clone())
            .collect();
        v.sort();
        v
    }

    fn present(&self) -> Vec<CallerId> {
        let mut v: Vec<_> = self.model.callers.keys().copied().collect();
        v.sort();
        v
    }

    fn advance(&mut self, d: Duration) {
        let target = self.now + d;
        while let Some(t) = self.acd.poll_timeout() {
            if t > target {
                break;
            }
            assert!(t >= self.now || t + Duration::from_secs(1) > self.now);
            self.now = self.now.max(t);
            self.acd.handle_timeout(self.now);
            self.drain();
        }
        self.now = target;
    }

    fn step(&mut self) {
        let ordered = self.model.ordered;
        let now = self.now;
        let op = |rng: &mut Rng| OperatorId::from(*rng.pick(&OPS).unwrap());
        match self.rng.below(100) {
            0..=19 => {
                self.next_id += 1;
                let id = CallerId(self.next_id);
                let queue = *self.rng.pick(&QUEUES).unwrap();
                let priority = if self.rng.chance(20) { 1 } else { 0 };
                let returning = (!ordered && self.rng.chance(30)).then(|| op(&mut self.rng));
                self.model.next_order += 1;
                self.model.joined.insert(id);
                self.model.callers.insert(
                    id,
                    CallerModel {
                        queue: queue.to_owned(),
                        priority,
                        order: self.model.next_order,
                        ..Default::default()
                    },
                );
                self.acd
                    .caller_joined(now, id, &QueueId::from(queue), priority, returning.as_ref())
                    .unwrap();
            }
            20..=27 => {
                if let Some(&c) = self.rng.pick(&self.present()) {
                    self.acd.caller_left(now, c).unwrap();
                }
            }
            28..=42 => {
                if let Some((c, o)) = self.rng.pick(&self.ringing_legs()).cloned() {
                    // The model moves the operator to "on call" before the actions arrive.
                    self.model.ops.insert(o.clone(), Some(Hold::OnCall(c)));
                    let cm = self.model.callers.get_mut(&c).unwrap();
                    cm.ringing.retain(|x| *x != o);
                    let others = std::mem::take(&mut cm.ringing);
                    if cm.callback {
                        cm.dialing = Some(o.clone());
                    }
                    cm.ringing = others;
                    let r = self
                        .acd
                        .offer_answered(now, c, &OperatorId::from(o.as_str()));
                    assert_eq!(r, Ok(()), "answering a ringing leg");
                }
            }
            43..=49 if !ordered => {
                if let Some((c, o)) = self.rng.pick(&self.ringing_legs()).cloned() {
                    self.model.ops.insert(o.clone(), None);
                    let cm = self.model.callers.get_mut(&c).unwrap();
                    cm.ringing.retain(|x| *x != o);
                    let reason = *self
                        .rng
                        .pick(&[
                            OfferFailure::NoAnswer,
                            OfferFailure::Busy,
                            OfferFailure::Error,
                        ])
                        .unwrap();
                    let r = self
                        .acd
                        .offer_failed(now, c, &OperatorId::from(o.as_str()), reason);
                    assert_eq!(r, Ok(()), "failing a ringing leg");
                }
            }
            50..=59 => {
                if let Some(o) = self.rng.pick(&self.on_call()).cloned() {
                    let Some(Hold::OnCall(c)) = self.model.ops[&o] else {
                        // a direct call ends like any other
                        self.model.ops.insert(o.clone(), None);
                        self.acd
                            .call_ended(now, &OperatorId::from(o.as_str()))
                            .unwrap();
                        self.drain();
                        return;
                    };
                    let dialing = self
                        .model
                        .callers
                        .get(&c)
                        .is_some_and(|cm| cm.dialing.as_deref() == Some(o.as_str()));
                    if dialing && ordered {
                        return; // a failed callback attempt would be a miss
                    }
                    self.model.ops.insert(o.clone(), None);
                    if dialing {
                        self.model.callers.get_mut(&c).unwrap().dialing = None;
                    }
                    self.acd
                        .call_ended(now, &OperatorId::from(o.as_str()))
                        .unwrap();
                }
            }
            60..=64 => {
                let candidates: Vec<CallerId> = self
                    .present()
                    .into_iter()
                    .filter(|c| {
                        let cm = &self.model.callers[c];
                        !cm.callback && self.model.callback_queues.contains(&cm.queue)
                    })
                    .collect();
                if let Some(&c) = self.rng.pick(&candidates) {
                    self.model.callers.get_mut(&c).unwrap().callback = true;
                    self.acd.callback_requested(now, c, "+70000000000").unwrap();
                }
            }
            65..=69 => {
                let dialing: Vec<CallerId> = self
                    .present()
                    .into_iter()
                    .filter(|c| self.model.callers[c].dialing.is_some())
                    .collect();
                if let Some(&c) = self.rng.pick(&dialing) {
                    let result = if ordered || self.rng.chance(50) {
                        CallbackResult::Answered
                    } else {
                        *self
                            .rng
                            .pick(&[CallbackResult::NoAnswer, CallbackResult::Busy])
                            .unwrap()
                    };
                    let cm = self.model.callers.get_mut(&c).unwrap();
                    let o = cm.dialing.take().unwrap();
                    if result != CallbackResult::Answered {
                        self.model.ops.insert(o, None);
                    }
                    self.acd.callback_result(now, c, result).unwrap();
                }
            }
            70..=79 => {
                let o = op(&mut self.rng);
                let r = match self.rng.below(6) {
                    0 | 1 => self.acd.login(now, &o),
                    2 => self.acd.logout(now, &o),
                    3 => self
                        .acd
                        .pause(now, &o, PauseReason::Requested("break".into())),
                    4 => self.acd.unpause(now, &o),
                    _ => self.acd.set_registered(now, &o, self.rng.chance(80)),
                };
                if !self.model.gone.contains(o.as_str()) {
                    r.unwrap();
                } else if let Err(e) = r {
                    // a removed operator finishing a call is still known, but never logs in
                    assert_eq!(e, acd::AcdError::UnknownOperator(o));
                }
            }
            89..=91 if !ordered => self.reconfigure(),
            80..=81 => {
                if let Some(&c) = self.rng.pick(&self.present()) {
                    let p = self.rng.below(3) as u8;
                    self.model.callers.get_mut(&c).unwrap().priority = p;
                    self.acd.set_priority(now, c, p).unwrap();
                }
            }
            84..=86 if !ordered => {
                // a direct offer (an operator's transfer): taken only by a free operator
                let o = op(&mut self.rng);
                let from = self
                    .rng
                    .chance(50)
                    .then(|| QueueId::from(*self.rng.pick(&QUEUES).unwrap()));
                match self.acd.direct_offer(now, &o, from.as_ref()) {
                    Ok(()) => {
                        assert!(!self.model.gone.contains(o.as_str()), "{o} was removed");
                        let slot = self.model.ops.get_mut(o.as_str()).unwrap();
                        assert_eq!(*slot, None, "direct offer to {o} holding {slot:?}");
                        *slot = Some(Hold::Direct { answered: false });
                        *self.model.seen.entry("direct").or_default() += 1;
                    }
                    Err(acd::AcdError::NotAvailable(_)) => {}
                    Err(acd::AcdError::UnknownOperator(_))
                        if self.model.gone.contains(o.as_str()) => {}
                    Err(e) => panic!("direct offer: {e}"),
                }
            }
            87..=88 if !ordered => {
                let ringing: Vec<String> = OPS
                    .iter()
                    .filter(|o| self.model.ops[**o] == Some(Hold::Direct { answered: false }))
                    .map(|o| (*o).to_owned())
                    .collect();
                if let Some(o) = self.rng.pick(&ringing).cloned() {
                    let id = OperatorId::from(o.as_str());
                    if self.rng.chance(60) {
                        self.model
                            .ops
                            .insert(o, Some(Hold::Direct { answered: true }));
                        self.acd.direct_answered(now, &id).unwrap();
                    } else {
                        self.model.ops.insert(o, None);
                        self.acd.direct_failed(now, &id).unwrap();
                    }
                }
            }
            82 if !ordered => {
                let q = QueueId::from(*self.rng.pick(&QUEUES).unwrap());
                self.acd.set_open(now, &q, self.rng.chance(70)).unwrap();
            }
            83 => {
                // Nonsense from a confused daemon must be refused, not acted on.
                let ghost = CallerId(u64::MAX - self.rng.below(10));
                assert!(self.acd.caller_left(now, ghost).is_err());
                assert!(self
                    .acd
                    .offer_answered(now, ghost, &op(&mut self.rng))
                    .is_err());
                assert!(self.acd.login(now, &OperatorId::from("nobody")).is_err());
                let idle: Vec<&str> = OPS
                    .iter()
                    .copied()
                    .filter(|o| self.model.ops[*o].is_none())
                    .collect();
                if let Some(o) = self.rng.pick(&idle) {
                    assert!(self.acd.call_ended(now, &OperatorId::from(*o)).is_err());
                }
            }
            _ => {
                let d = Duration::from_millis(self.rng.below(40_000));
                self.advance(d);
            }
        }
        self.drain();
    }

    /// A reload's changes to the operators: one added back, removed or given new skills.
    fn reconfigure(&mut self) {
        let now = self.now;
        let name = *self.rng.pick(&OPS).unwrap();
        let o = OperatorId::from(name);
        let mut skills: Vec<(&str, u8)> = Vec::new();
        for q in QUEUES {
            if self.rng.chance(60) {
                skills.push((q, 1 + self.rng.below(3) as u8));
            }
        }
        let cfg = OperatorConfig::new(name, skills);
        let gone = self.model.gone.contains(name);
        match self.rng.below(3) {
            0 => {
                let r = self.acd.add_operator(now, cfg);
                if gone {
                    assert_eq!(r, Ok(()), "adding {name} back");
                    self.model.gone.remove(name);
                    *self.model.seen.entry("op-added").or_default() += 1;
                } else {
                    assert_eq!(r, Err(acd::AcdError::OperatorExists(o)));
                }
            }
            1 => {
                let r = self.acd.remove_operator(now, &o);
                if r.is_ok() {
                    if !gone {
                        let on_call = matches!(
                            self.model.ops[name],
                            Some(Hold::OnCall(_) | Hold::Direct { answered: true })
                        );
                        let kind = if on_call {
                            "op-removed-on-call"
                        } else {
                            "op-removed"
                        };
                        *self.model.seen.entry(kind).or_default() += 1;
                    }
                    self.model.gone.insert(name.to_owned());
                } else {
                    assert!(gone, "removing {name}: {r:?}");
                    assert_eq!(r, Err(acd::AcdError::UnknownOperator(o)));
                }
            }
            _ => {
                let r = self.acd.set_skills(now, &o, cfg.skills);
                if !gone {
                    assert_eq!(r, Ok(()));
                    *self.model.seen.entry("skills-set").or_default() += 1;
                } else if let Err(e) = r {
                    assert_eq!(e, acd::AcdError::UnknownOperator(o));
                }
            }
        }
    }

    /// Everyone hangs up, every call ends, time passes: nothing may remain.
    fn wind_down(&mut self) {
        for c in self.present() {
            self.acd.caller_left(self.now, c).unwrap();
            self.drain();
        }
        for o in OPS {
            if self.model.ops[o] == Some(Hold::Direct { answered: false }) {
                self.model.ops.insert(o.to_owned(), None);
                self.acd
                    .direct_failed(self.now, &OperatorId::from(o))
                    .unwrap();
                self.drain();
            }
        }
        for o in self.on_call() {
            self.model.ops.insert(o.clone(), None);
            self.acd
                .call_ended(self.now, &OperatorId::from(o.as_str()))
                .unwrap();
            self.drain();
        }
        self.advance(Duration::from_secs(86_400));
        self.drain();
        assert_eq!(self.model.joined, self.model.left, "every caller leaves");
        assert_eq!(self.acd.caller_count(), 0);
        assert_eq!(self.acd.returning_index_len(), 0);
        assert_eq!(self.acd.timer_count(), 0, "timers drain");
        for q in QUEUES {
            let st = self.acd.queue_status(&QueueId::from(q)).unwrap();
            assert_eq!((st.waiting, st.callbacks), (0, 0), "{q}");
        }
        for o in OPS {
            let status = self.acd.operator_status(&OperatorId::from(o));
            if self.model.gone.contains(o) {
                assert_eq!(status, None, "{o} was removed and its call is over");
                continue;
            }
            let s = status.unwrap();
            assert!(
                !matches!(
                    s.state,
                    acd::OperatorState::Ringing { .. }
                        | acd::OperatorState::OnCall { .. }
                        | acd::OperatorState::Direct { .. }
                ),
                "{o}: {s:?}"
            );
        }
    }
}

fn run_case(seed: u64, ordered: bool, steps: usize) -> HashMap<&'static str, u64> {
    let mut rng = Rng(seed);
    let cfg = config(&mut rng, ordered);
    let callback_queues = cfg
        .queues
        .iter()
        .filter(|q| q.callback.is_some())
        .map(|q| q.id.as_str().to_owned())
        .collect();
    let acd = Acd::new(cfg).unwrap();
    let mut run = Run {
        statuses: statuses(&acd),
        acd,
        model: Model {
            seen: HashMap::new(),
            ordered,
            joined: HashSet::new(),
            left: HashSet::new(),
            callers: HashMap::new(),
            ops: OPS.iter().map(|o| ((*o).to_owned(), None)).collect(),
            callback_queues,
            next_order: 0,
            gone: HashSet::new(),
        },
        rng,
        now: Instant::now(),
        next_id: 0,
    };
    // Most operators start logged in, so that calls flow as well as overflow.
    for o in OPS {
        if run.rng.chance(70) {
            let o = OperatorId::from(o);
            run.acd.set_registered(run.now, &o, true).unwrap();
            run.acd.login(run.now, &o).unwrap();
        }
    }
    run.drain();
    for _ in 0..steps {
        run.step();
    }
    run.wind_down();
    run.model.seen
}

fn cases() -> u64 {
    std::env::var("ACD_FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000)
}

/// Runs every seed (or the one in `ACD_FUZZ_SEED`) and sums what the runs saw.
fn each_seed(
    base: u64,
    f: impl Fn(u64) -> HashMap<&'static str, u64>,
) -> HashMap<&'static str, u64> {
    let mut total: HashMap<&'static str, u64> = HashMap::new();
    let seeds: Vec<u64> = match std::env::var("ACD_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        Some(seed) => vec![seed],
        None => (0..cases()).map(|i| base.wrapping_add(i)).collect(),
    };
    for seed in seeds {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(seed))) {
            Ok(seen) => {
                for (k, v) in seen {
                    *total.entry(k).or_default() += v;
                }
            }
            Err(e) => {
                eprintln!("failing seed: ACD_FUZZ_SEED={seed}");
                std::panic::resume_unwind(e);
            }
        }
    }
    eprintln!("{total:?}");
    total
}

fn assert_reached(seen: &HashMap<&'static str, u64>, kinds: &[&str]) {
    if std::env::var("ACD_FUZZ_SEED").is_ok() {
        return;
    }
    for k in kinds {
        assert!(
            seen.get(k).copied().unwrap_or(0) > 0,
            "the generator never produced {k}"
        );
    }
}

#[test]
fn random_sequences_keep_the_invariants() {
    let seen = each_seed(0x5EED_0000, |seed| run_case(seed, false, 300));
    assert_reached(
        &seen,
        &[
            "offer",
            "offer-many",
            "cancel",
            "connect",
            "overflow-queue",
            "overflow-callback",
            "overflow-message",
            "offer-callback",
            "start-callback",
            "announce",
            "paused",
            "left-answered",
            "left-abandoned",
            "left-overflowed",
            "left-called-back",
            "left-callback-failed",
            "direct",
            "cancel-direct",
            "op-added",
            "op-removed",
            "op-removed-on-call",
            "skills-set",
        ],
    );
}

#[test]
fn random_sequences_serve_each_queue_in_order() {
    let seen = each_seed(0x0DE2_0000, |seed| run_case(seed, true, 300));
    assert_reached(&seen, &["offer", "offer-many", "connect", "start-callback"]);
}
