//! A virtual clock around an `Acd`: inputs at `now`, `advance` jumps from wake-up to wake-up.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use acd::{Acd, AcdConfig, Action, CallerId, OperatorConfig, OperatorId, QueueConfig, QueueId};

pub struct Harness {
    pub acd: Acd,
    pub t0: Instant,
    pub now: Instant,
    /// Every action so far, with the time it was drained.
    pub log: Vec<(Duration, Action)>,
    drained: usize,
}

pub fn op(name: &str) -> OperatorId {
    OperatorId::from(name)
}
pub fn q(name: &str) -> QueueId {
    QueueId::from(name)
}
pub fn c(n: u64) -> CallerId {
    CallerId(n)
}
pub fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

impl Harness {
    /// One queue `q` built by `f`, operators `(name, level)` in that queue.
    pub fn one_queue(f: impl FnOnce(&mut QueueConfig), ops: &[(&str, u8)]) -> Harness {
        let mut cfg = QueueConfig::new("q");
        cfg.announce_every = None;
        f(&mut cfg);
        Harness::new(AcdConfig {
            queues: vec![cfg],
            operators: ops
                .iter()
                .map(|(n, l)| OperatorConfig::new(*n, [("q", *l)]))
                .collect(),
        })
    }

    pub fn new(cfg: AcdConfig) -> Harness {
        let t0 = Instant::now();
        Harness {
            acd: Acd::new(cfg).unwrap(),
            t0,
            now: t0,
            log: Vec::new(),
            drained: 0,
        }
    }

    fn drain(&mut self) {
        while let Some(a) = self.acd.poll_action() {
            self.log.push((self.now - self.t0, a));
        }
    }

    /// Actions produced since the last call.
    pub fn take(&mut self) -> Vec<Action> {
        self.drain();
        let new = self.log[self.drained..]
            .iter()
            .map(|(_, a)| a.clone())
            .collect();
        self.drained = self.log.len();
        new
    }

    /// Logs in and registers each operator, one second apart (so the first is idle longest).
    pub fn ready(&mut self, names: &[&str]) {
        for n in names {
            self.acd.set_registered(self.now, &op(n), true).unwrap();
            self.acd.login(self.now, &op(n)).unwrap();
            self.advance(secs(1));
        }
        self.drain();
    }

    pub fn join(&mut self, n: u64, queue: &str) {
        self.join_full(n, queue, 0, None);
    }

    pub fn join_full(&mut self, n: u64, queue: &str, prio: u8, returning: Option<&str>) {
        let r = returning.map(op);
        self.acd
            .caller_joined(self.now, c(n), &q(queue), prio, r.as_ref())
            .unwrap();
        self.drain();
    }

    /// The operator answers; returns the actions that caused (and marks them taken).
    pub fn answer(&mut self, n: u64, name: &str) -> Vec<Action> {
        self.take();
        self.acd.offer_answered(self.now, c(n), &op(name)).unwrap();
        self.take()
    }

    /// The operator's call ends; returns the actions that caused (and marks them taken).
    pub fn end(&mut self, name: &str) -> Vec<Action> {
        self.take();
        self.acd.call_ended(self.now, &op(name)).unwrap();
        self.take()
    }

    /// Moves the clock forward by `d`, firing every timer on the way at its own instant.
    pub fn advance(&mut self, d: Duration) {
        let target = self.now + d;
        while let Some(t) = self.acd.poll_timeout() {
            if t > target {
                break;
            }
            self.now = self.now.max(t);
            self.acd.handle_timeout(self.now);
            self.drain();
        }
        self.now = target;
        self.drain();
    }

    /// The operators offered in the latest `Offer` for caller `n` among the new actions.
    pub fn offered(&mut self, n: u64) -> Vec<String> {
        let acts = self.take();
        offered_in(&acts, n)
    }
}

pub fn offered_in(acts: &[Action], n: u64) -> Vec<String> {
    acts.iter()
        .rev()
        .find_map(|a| match a {
            Action::Offer { caller, operators } if *caller == c(n) => Some(
                operators
                    .iter()
                    .map(|o| o.as_str().to_owned())
                    .collect::<Vec<_>>(),
            ),
            _ => None,
        })
        .unwrap_or_default()
}
