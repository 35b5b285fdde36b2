//! The sink every part of call control writes into ([`Out`]): the outputs for the driver, in
//! order, and the calls' timers. Parts take it as `&mut Out` instead of reaching into `Core`.

use std::collections::{BTreeSet, VecDeque};
use std::time::Instant;

use sip::room::shrink_if_sparse;

use super::TimerKind;
use crate::io::{MediaCommand, Output};
use crate::live::LiveEvent;
use crate::{AppealEvent, AppealRecord};

/// What the driver has still to carry out, in order ([`crate::Core::poll_output`]), and the
/// calls' timers: (when, the call's Call-ID, what for). A timer entry whose time the call no
/// longer holds is stale and does nothing when it fires.
#[derive(Default)]
pub(super) struct Out {
    outputs: VecDeque<Output>,
    timers: BTreeSet<(Instant, String, TimerKind)>,
}

impl Out {
    pub fn push(&mut self, out: Output) {
        self.outputs.push_back(out);
    }

    /// Asks the driver to carry out a media command.
    pub fn media(&mut self, cmd: MediaCommand) {
        self.outputs.push_back(Output::Media(cmd));
    }

    /// Writes down `record` for `appeal`, after what came out before it.
    pub fn appeal(&mut self, appeal: &str, record: AppealRecord) {
        self.outputs.push_back(Output::Appeal(AppealEvent {
            appeal: appeal.to_owned(),
            record,
        }));
    }

    /// An event for the workspace's live pages.
    pub fn live(&mut self, ev: LiveEvent) {
        self.outputs.push_back(Output::Live(ev));
    }

    /// The next output; `None` when drained (a burst's worth of room is given back then).
    pub fn poll(&mut self) -> Option<Output> {
        let out = self.outputs.pop_front();
        if out.is_none() {
            shrink_if_sparse(&mut self.outputs);
        }
        out
    }

    /// Wakes the core at `at` for `call_id`'s `kind`.
    pub fn arm(&mut self, at: Instant, call_id: &str, kind: TimerKind) {
        self.timers.insert((at, call_id.to_owned(), kind));
    }

    /// Takes back a timer armed for exactly `at`.
    pub fn disarm(&mut self, at: Instant, call_id: &str, kind: TimerKind) {
        self.timers.remove(&(at, call_id.to_owned(), kind));
    }

    /// The earliest timer.
    pub fn next_timer(&self) -> Option<Instant> {
        self.timers.first().map(|(t, _, _)| *t)
    }

    /// The earliest timer due at `now`, taken out.
    pub fn pop_due(&mut self, now: Instant) -> Option<(Instant, String, TimerKind)> {
        if self.next_timer()? > now {
            return None;
        }
        self.timers.pop_first()
    }

    pub fn timers(&self) -> usize {
        self.timers.len()
    }
}
