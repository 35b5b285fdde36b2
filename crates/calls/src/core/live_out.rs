//! The live events call control puts out ([`crate::live::LiveEvent`]): operators' states
//! (those the ACD says changed, compared after every input), offers (our legs to operators)
//! and queue joins and leaves. Every event goes out in the same drain as the SIP and media
//! outputs of the input that caused it.

use super::operator_legs::LegFor;
use super::*;
use crate::live::{
    LiveEvent, OfferLive, OfferPhase, OperatorLive, OperatorPhase, QueueChange, QueueExit,
    QueueLive,
};

/// The operators' states last put out, by login (a field of [`Core`]).
pub(super) struct LiveOperators {
    last: HashMap<String, OperatorLive>,
    /// Put out every operator at the next publish, changed or not (at the start, and
    /// [`Self::republish`]).
    everyone: bool,
}

impl Default for LiveOperators {
    fn default() -> Self {
        LiveOperators {
            last: HashMap::new(),
            everyone: true,
        }
    }
}

impl LiveOperators {
    /// Every operator is put out again at the next publish (after a reload: the pages may
    /// have new names and skills for them).
    pub(super) fn republish(&mut self) {
        self.everyone = true;
    }

    /// Puts out an `Operator` event for every operator of `changed` (the ACD's
    /// [`Acd::take_changed`] since the last publish) whose state, pause reason or queues
    /// differ from the last one put out, and for every operator after [`Self::republish`];
    /// `at` the civil time of the input. Runs after every input; an input that changed no
    /// operator reads none.
    pub(super) fn publish(
        &mut self,
        acd: &Acd,
        changed: &[acd::OperatorId],
        at: chrono::DateTime<chrono::Utc>,
        out: &mut Out,
    ) {
        if std::mem::take(&mut self.everyone) {
            // every operator once; of the changed ones only the removed need forgetting
            for id in changed {
                if acd.operator_status(id).is_none() {
                    self.last.remove(id.as_str());
                }
            }
            for id in acd.operators() {
                self.one(acd, id, true, at, out);
            }
        } else {
            for id in changed {
                self.one(acd, id, false, at, out);
            }
        }
    }

    /// The event for operator `id` if it changed (or `everyone`); a removed operator is
    /// forgotten.
    fn one(
        &mut self,
        acd: &Acd,
        id: &acd::OperatorId,
        everyone: bool,
        at: chrono::DateTime<chrono::Utc>,
        out: &mut Out,
    ) {
        let Some(status) = acd.operator_status(id) else {
            self.last.remove(id.as_str());
            return;
        };
        let (state, reason) = OperatorPhase::of(&status.state);
        let queues: Vec<String> = acd
            .logged_in_queues(id)
            .iter()
            .map(|q| q.as_str().to_owned())
            .collect();
        let prev = self.last.get(id.as_str());
        let unchanged = prev.is_some_and(|o| o.state == state && o.reason.as_deref() == reason);
        if unchanged && prev.is_some_and(|o| o.queues == queues) && !everyone {
            return;
        }
        // put out again unchanged (a reload): the state still runs since it began
        let since = match prev {
            Some(o) if everyone && unchanged => o.since,
            _ => at,
        };
        let ev = OperatorLive {
            id: id.as_str().to_owned(),
            state,
            since,
            reason: reason.map(str::to_owned),
            queues,
        };
        self.last.insert(ev.id.clone(), ev.clone());
        out.live(LiveEvent::Operator(ev));
    }
}

impl Core {
    /// The operators the ACD changed since the last input, to the activity board and the
    /// live pages (`LiveOperators::publish`).
    pub(super) fn publish_operators(&mut self, now: Instant) {
        let at = self.wallclock(now);
        if let Some(acd) = self.acd.as_mut() {
            let changed = acd.take_changed();
            self.stats.activity.update(acd, &changed);
            self.live_ops.publish(acd, &changed, at, &mut self.out);
        }
    }

    /// The offer an operator leg for `for_` carries: the caller's appeal, number, path, queue
    /// and wait (`None` for a leg with no caller on the line: a callback's operator).
    pub(super) fn offer_live(
        &self,
        now: Instant,
        for_: &LegFor,
        leg_id: &str,
    ) -> Option<OfferLive> {
        let (call_id, operator) = match for_ {
            LegFor::Offer { caller, operator } => {
                (self.queues.call_of(*caller)?, operator.as_str())
            }
            LegFor::Direct { call_id, operator } => (call_id.as_str(), operator.as_str()),
            LegFor::Trunk(_) => return None,
        };
        let call = self.calls.get(call_id)?;
        let queue = call.queue().queued_or_last().map(str::to_owned);
        let waited = call.queue().waited(now);
        Some(OfferLive {
            operator: operator.to_owned(),
            appeal: call.appeal().to_owned(),
            call: leg_id.to_owned(),
            queue,
            caller: call.caller().to_owned(),
            path: call.ivr_path(),
            waited,
            phase: OfferPhase::Ringing,
            at: self.wallclock(now),
        })
    }
}

/// Puts out an offer's new phase.
pub(super) fn offer_event(
    out: &mut Out,
    offer: &OfferLive,
    phase: OfferPhase,
    at: chrono::DateTime<chrono::Utc>,
) {
    out.live(LiveEvent::Offer(OfferLive {
        phase,
        at,
        ..offer.clone()
    }));
}

/// Where a caller's queue moves are counted ([`Stats`]' queue figures) and told (`Queue`
/// events): the one place a caller enters or leaves a queue's figures. Borrows only `Core`'s
/// outputs and stats for one input, so a call of `Core::calls` may be borrowed alongside.
pub(super) struct QueueFigures<'a> {
    out: &'a mut Out,
    stats: &'a Stats,
    /// The civil time of the input.
    at: chrono::DateTime<chrono::Utc>,
    now: Instant,
}

impl<'a> QueueFigures<'a> {
    /// The figures told through `out` and counted in `stats` for an input at `at` / `now`.
    pub fn new(
        out: &'a mut Out,
        stats: &'a Stats,
        at: chrono::DateTime<chrono::Utc>,
        now: Instant,
    ) -> Self {
        QueueFigures {
            out,
            stats,
            at,
            now,
        }
    }

    /// The caller of `call_id` waits in `queue` (left the one it was in, if any: `Moved`).
    /// The call's `queue.since` is the caller's business.
    pub fn enter(&mut self, call: &mut Call, call_id: &str, queue: &str) {
        if let Some(old) = call.queue_mut().wait_in(queue) {
            self.left(call, call_id, &old, QueueExit::Moved);
        }
        self.stats.queue_enter(queue, call_id, self.now);
        let change = QueueChange::Joined {
            since: self.at,
            path: call.ivr_path(),
            caller: call.caller().to_owned(),
        };
        self.event(call, call_id, queue, change);
    }

    /// The caller of `call_id` left the queue it waited in (`exit` says why); the queue, or
    /// `None` when it was in none.
    pub fn leave(&mut self, call: &mut Call, call_id: &str, exit: QueueExit) -> Option<String> {
        let queue = call.queue_mut().stop_waiting()?;
        self.left(call, call_id, &queue, exit);
        Some(queue)
    }

    fn left(&mut self, call: &Call, call_id: &str, queue: &str, exit: QueueExit) {
        self.stats.queue_leave(queue, call_id);
        let waited = call.queue().waited(self.now);
        self.event(call, call_id, queue, QueueChange::Left { exit, waited });
    }

    fn event(&mut self, call: &Call, call_id: &str, queue: &str, change: QueueChange) {
        self.out.live(LiveEvent::Queue(QueueLive {
            queue: queue.to_owned(),
            appeal: call.appeal().to_owned(),
            call: call_id.to_owned(),
            change,
            at: self.at,
        }));
    }
}
