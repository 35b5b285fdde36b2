//! The core's side of a caller in a queue: the ACD's `Announce`, `OfferCallback` and
//! `Overflow` carried out through the caller's [`Waiting`] dialogue (see `crate::waiting`),
//! joining the ACD (with a returning-caller lookup first when the queue asks for one), and the
//! lines' working hours opening and closing the queues.

use super::*;
use crate::waiting::{callback_number, Do, OVERFLOW_MESSAGE_MAX};
use acd::Estimate;

impl Core {
    /// Carries out one of the ACD's actions for a waiting caller: `Announce`, `OfferCallback`
    /// and `Overflow` to a message or a callback (an overflow to another queue is the core's).
    pub(super) fn on_waiting_action(&mut self, now: Instant, action: acd::Action) {
        use acd::{Action, OverflowAction};
        let (caller, step) = match action {
            Action::Announce {
                caller,
                position,
                estimated_wait,
            } => (caller, Step::Announce(position, estimated_wait)),
            Action::OfferCallback { caller }
            | Action::Overflow {
                caller,
                to: OverflowAction::Callback,
                ..
            } => (caller, Step::Offer),
            Action::Overflow {
                caller,
                to: OverflowAction::Message,
                ..
            } => (caller, Step::Message),
            _ => return,
        };
        let Some(call_id) = self.queues.call_of(caller).map(str::to_owned) else {
            return;
        };
        let Some(call) = self.calls.get_mut(&call_id) else {
            return;
        };
        let _e = call.span().clone().entered();
        let Some(w) = call.queue_mut().waiting_mut() else {
            return;
        };
        let todo = match step {
            Step::Announce(position, wait) => {
                debug!(position, ?wait, "announcing the place in the queue");
                w.announce(position, wait)
            }
            Step::Offer => {
                info!("callback offered");
                w.offer_callback()
            }
            Step::Message => {
                info!("queue overflowed to a message");
                Some(w.leave_message())
            }
        };
        if let Some(todo) = todo {
            self.waiting_do(now, &call_id, todo);
        }
    }

    /// The waiting dialogue of `call_id`, while it waits in a queue.
    fn waiting_of(&mut self, call_id: &str) -> Option<&mut Waiting> {
        self.calls
            .get_mut(call_id)
            .and_then(|c| c.queue_mut().waiting_mut())
    }

    /// A key for a caller waiting in a queue; `false` when the queue does not take keys for
    /// this call (the voice menu gets it).
    pub(super) fn waiting_digit(&mut self, now: Instant, call_id: &str, digit: char) -> bool {
        let Some(w) = self.waiting_of(call_id) else {
            return false;
        };
        if !w.takes_keys() {
            return true;
        }
        if let Some(todo) = w.digit(now, digit) {
            self.waiting_do(now, call_id, todo);
        }
        self.arm_waiting_timer(call_id);
        true
    }

    /// A playback of the waiting caller's leg ended.
    pub(super) fn waiting_playback_finished(&mut self, now: Instant, call_id: &str) {
        let Some(w) = self.waiting_of(call_id) else {
            return;
        };
        if let Some(todo) = w.playback_finished(now) {
            self.waiting_do(now, call_id, todo);
        }
        self.arm_waiting_timer(call_id);
    }

    /// The waiting dialogue's timer (`TimerKind::Waiting`) fired for `at`.
    pub(super) fn waiting_timeout(&mut self, now: Instant, call_id: &str, at: Instant) {
        let Some(w) = self.waiting_of(call_id) else {
            return;
        };
        if w.deadline() != Some(at) {
            return; // re-armed or cleared since
        }
        if let Some(todo) = w.handle_timeout(now) {
            self.waiting_do(now, call_id, todo);
        }
    }

    /// The caller is connected to an operator (or gone from the queue): the dialogue ends
    /// and nothing of it plays any more (the bridge has replaced the leg's source).
    pub(super) fn waiting_over(&mut self, caller: CallerId) {
        if let Some(call) = self
            .queues
            .call_of(caller)
            .and_then(|id| self.calls.get_mut(id))
        {
            if call.queue_mut().end_waiting() {
                // a playback of the dialogue that ends now is not ours any more
                call.new_playback();
            }
        }
    }

    fn arm_waiting_timer(&mut self, call_id: &str) {
        if let Some(at) = self
            .calls
            .get(call_id)
            .and_then(|c| c.queue().waiting())
            .and_then(Waiting::deadline)
        {
            self.out.arm(at, call_id, TimerKind::Waiting);
        }
    }

    fn waiting_do(&mut self, now: Instant, call_id: &str, todo: Do) {
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        let _e = call.span().clone().entered();
        match todo {
            Do::Play(names) => {
                call.new_playback();
                let seq = call.prompts().sequence(&names);
                match (call.leg(), seq) {
                    (Some(_), Ok(seq)) => call.play(&mut self.out, seq),
                    (_, Err(e)) => {
                        warn!(error = %e, "a queue prompt is not loaded; skipping it");
                        if let Some(w) = call.queue_mut().waiting_mut() {
                            if let Some(next) = w.playback_finished(now) {
                                self.waiting_do(now, call_id, next);
                            }
                        }
                    }
                    (None, _) => {}
                }
            }
            Do::Stop => call.stop_playback(&mut self.out),
            Do::Music => {
                call.new_playback();
                let music = call.queue().queued().and_then(|q| self.settings.moh_for(q));
                call.music(&mut self.out, music);
            }
            Do::Book(number) => self.confirm_callback(now, call_id, number),
            Do::Record => self.start_message(now, call_id, OVERFLOW_MESSAGE_MAX),
            Do::Hangup => self.end_call(now, call_id, EndReason::IvrHangup),
        }
    }

    /// The caller confirmed `number`: the ACD keeps the place in line (`book_callback`, which
    /// also keeps what dialling needs), the appeal gets the request, and the call ends after
    /// the closing prompt without leaving the queue.
    fn confirm_callback(&mut self, now: Instant, call_id: &str, number: String) {
        // the queue the place is kept in (booking takes the call out of it)
        let queue = self
            .calls
            .get(call_id)
            .and_then(|c| c.queue().queued().map(str::to_owned));
        let result = self.book_callback(now, call_id, &number);
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        let todo = match result {
            Ok(()) => {
                info!("callback booked; the caller keeps the place in the queue");
                call.menu_mut().set_end(Some(IvrEnd::Callback));
                self.out.appeal(
                    call.appeal(),
                    AppealRecord::IvrStep(IvrStep::CallbackRequested { number, queue }),
                );
                call.queue_mut().waiting_mut().map(Waiting::booked)
            }
            Err(e) => {
                warn!(error = %e, "the ACD did not take the callback; the caller keeps waiting");
                call.queue_mut().waiting_mut().map(Waiting::refused)
            }
        };
        if let Some(todo) = todo {
            self.waiting_do(now, call_id, todo);
        }
    }
}

/// How long a returning-caller lookup may take before the caller joins without a preference.
pub const RETURNING_TIMEOUT: Duration = Duration::from_millis(500);

/// The answer of a returning-caller lookup ([`crate::ReturningQuery::answer`]).
#[derive(Debug)]
pub struct ReturningFound {
    pub(crate) call_id: String,
    pub(crate) queue: String,
    pub(crate) priority: u8,
    /// The operator, none, or why there is no answer (an error or the timeout).
    pub(crate) operator: Result<Option<String>, String>,
}

impl Core {
    /// Whether the driver answers [`Output::LookupReturning`]. Without, callers join their
    /// queue at once, without a preference.
    pub fn set_returning_lookups(&mut self, on: bool) {
        self.queues.set_returning_lookups(on);
    }

    /// The lines' working hours to the ACD (`Queues::check_hours`).
    pub(super) fn check_hours(&mut self, now: Instant) {
        let wall = self.wallclock(now);
        if let Some(acd) = self.acd.as_mut() {
            self.queues
                .check_hours(now, wall, acd, &self.settings.lines);
        }
    }

    /// The caller reached `queue`: it joins the ACD now, or — when the queue looks for
    /// returning callers and the caller has a number — once the store said who handled the
    /// caller's open appeal (at most [`RETURNING_TIMEOUT`] later; the music plays meanwhile).
    pub(super) fn queue_join(&mut self, now: Instant, call_id: &str, queue: &str, priority: u8) {
        let lookback = self
            .settings
            .acd
            .as_ref()
            .and_then(|a| a.queues.iter().find(|q| q.id.as_str() == queue))
            .and_then(|q| q.returning)
            .map(|r| r.lookback);
        let number = self
            .calls
            .get(call_id)
            .and_then(|c| callback_number(c.caller()))
            .map(str::to_owned);
        let (Some(lookback), Some(number), true) =
            (lookback, number, self.queues.looks_up_returning())
        else {
            return self.acd_join(now, call_id, queue, priority, None);
        };
        self.out
            .push(Output::LookupReturning(crate::io::ReturningQuery {
                number,
                lookback,
                call_id: call_id.to_owned(),
                queue: queue.to_owned(),
                priority,
            }));
    }

    /// A returning-caller lookup answered (or gave up): the caller joins its queue, with the
    /// operator found as its preference. A caller that hung up or moved on meanwhile is left
    /// alone.
    pub(crate) fn returning_found(&mut self, now: Instant, found: ReturningFound) {
        let Some(call) = self.calls.get(&found.call_id) else {
            return;
        };
        if call.queue().acd_caller().is_some()
            || call.queue().queued() != Some(found.queue.as_str())
        {
            return;
        }
        let _e = call.span().clone().entered();
        let operator = match found.operator {
            Ok(Some(op)) => {
                info!(operator = %op, "returning caller: their operator goes first");
                Some(OperatorId::from(op.as_str()))
            }
            Ok(None) => None,
            Err(e) => {
                warn!(error = %e, "returning-caller lookup failed; the caller joins without a preference");
                None
            }
        };
        self.acd_join(
            now,
            &found.call_id,
            &found.queue,
            found.priority,
            operator.as_ref(),
        );
        self.drain(now);
    }

    /// The caller joins the ACD's `queue` (when there is an ACD), logging a refusal.
    fn acd_join(
        &mut self,
        now: Instant,
        call_id: &str,
        queue: &str,
        priority: u8,
        returning: Option<&OperatorId>,
    ) {
        if self.acd.is_none() {
            return;
        }
        if let Err(e) = self.join_acd(now, call_id, queue, priority, returning) {
            warn!(error = %e, "the ACD did not take the caller");
        }
    }

    /// The one place a call becomes an ACD caller: `caller_joined` with a fresh [`CallerId`],
    /// and the call and the id map told. A call that is gone joins nothing (`Ok`).
    pub(super) fn join_acd(
        &mut self,
        now: Instant,
        call_id: &str,
        queue: &str,
        priority: u8,
        returning: Option<&OperatorId>,
    ) -> Result<(), AcdError> {
        let acd = self
            .acd
            .as_mut()
            .ok_or_else(|| AcdError::UnknownQueue(QueueId::from(queue)))?;
        let Some(call) = self.calls.get_mut(call_id) else {
            return Ok(());
        };
        self.queues.join(
            acd,
            now,
            call_id,
            call.queue_mut(),
            queue,
            priority,
            returning,
        )
    }
}

/// What an ACD action asks of the waiting caller.
enum Step {
    Announce(usize, Estimate),
    Offer,
    Message,
}
