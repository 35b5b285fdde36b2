//! The router's side of callbacks (the bookings and runs are the `callbacks` part): the
//! ACD's `StartCallback` (the operator first, then the number), the legs' answers, failures
//! and hang-ups, each attempt's result for the ACD.

use super::callbacks::{callback_result, Booking, Origin, Run};
use super::operator_legs::LegFor;
use super::outbound::TrunkPurpose;
use super::*;
use acd::CallbackResult;

use crate::CallbackOutcome;

impl Core {
    /// Hands the caller of `call_id` (waiting in the ACD) over to a callback to `number`: the
    /// ACD keeps its place, the call may end without withdrawing it, and the attempts are
    /// written on this call's appeal. The booking side (a menu's or the queue's callback
    /// offer) calls this, then plays its closing prompt and hangs up.
    pub(super) fn book_callback(
        &mut self,
        now: Instant,
        call_id: &str,
        number: &str,
    ) -> Result<(), AcdError> {
        let at = self.wallclock(now);
        let Some(call) = self.calls.get_mut(call_id) else {
            return Ok(());
        };
        let Some(id) = call.queue().acd_caller() else {
            return Ok(());
        };
        let acd = self.acd.as_mut().ok_or(AcdError::UnknownCaller(id))?;
        acd.callback_requested(now, id, number)?;
        // the call may end now without `caller_left`: the callback keeps the place
        self.queues.leave_acd(call.queue_mut());
        let callback = crate::live::QueueExit::Callback;
        QueueFigures::new(&mut self.out, &self.stats, at, now).leave(call, call_id, callback);
        let from_user = call.line().from_user();
        self.callbacks.book(
            id,
            Booking {
                appeal: call.appeal().to_owned(),
                local: call.local(),
                from_user,
                prompts: call.prompts().clone(),
                attempts: 0,
            },
        );
        info!(caller = %id, "callback booked in the ACD");
        Ok(())
    }

    /// A menu's callback node with a queue: the caller joins it and books the callback at
    /// once, so the ACD calls back when that place comes up.
    pub(super) fn book_callback_in(
        &mut self,
        now: Instant,
        call_id: &str,
        queue: &str,
        priority: u8,
        number: &str,
    ) {
        if self.acd.is_none() {
            warn!(%queue, "no ACD runs: the callback is only written down");
            return;
        }
        if let Err(e) = self.join_acd(now, call_id, queue, priority, None) {
            warn!(error = %e, %queue, "the ACD did not take the callback");
            return;
        }
        let Some(id) = self.calls.get(call_id).and_then(|c| c.queue().acd_caller()) else {
            return;
        };
        if let Err(e) = self.book_callback(now, call_id, number) {
            warn!(error = %e, %queue, "the ACD did not take the callback");
            if let Some(call) = self.calls.get_mut(call_id) {
                self.queues.leave_acd(call.queue_mut());
            }
            if let Some(acd) = self.acd.as_mut() {
                let _ = acd.caller_left(now, id);
            }
        }
    }

    /// `StartCallback`: ring the operator first; their answer dials the number.
    pub(super) fn start_callback(
        &mut self,
        now: Instant,
        caller: CallerId,
        number: String,
        operator: OperatorId,
    ) {
        let Origin {
            near,
            from_user,
            appeal,
            prompts,
        } = self.callbacks.origin(caller, &self.settings.prompts);
        let contact = self
            .registrar
            .lookup(now, operator.as_str())
            .first()
            .map(|b| b.source);
        let local = contact.and_then(|p| self.local_towards(p, near));
        let placed = match local {
            Some(local) => {
                let ip = self.settings.rtp_address.unwrap_or(local.ip());
                let for_ = LegFor::Offer {
                    caller,
                    operator: operator.clone(),
                };
                self.ring_operator(now, for_, &operator, local, ip, from_user, appeal, prompts)
            }
            None => Err("no registered contact"),
        };
        match placed {
            Ok(op_leg) => {
                info!(%caller, %operator, "callback: ringing the operator first");
                self.callbacks.start_run(caller, operator, number, op_leg);
            }
            Err(why) => {
                info!(%caller, %operator, why, "callback: the operator cannot be rung");
                if let Some(acd) = self.acd.as_mut() {
                    if let Err(e) =
                        acd.offer_failed(now, caller, &operator, acd::OfferFailure::Error)
                    {
                        debug!(error = %e, "offer already over");
                    }
                }
            }
        }
    }

    /// The callback's operator answered: dial the number.
    pub(super) fn callback_operator_answered(
        &mut self,
        now: Instant,
        caller: CallerId,
        op_leg: &str,
    ) {
        let Some(run) = self.callbacks.run(caller) else {
            return;
        };
        let number = run.number().to_owned();
        let Origin {
            from_user,
            appeal,
            prompts,
            ..
        } = self.callbacks.origin(caller, &self.settings.prompts);
        let near = self.op_legs.local(op_leg);
        match self.dial_number(
            now,
            &number,
            TrunkPurpose::Callback { caller },
            near,
            &from_user,
            &appeal,
            prompts,
        ) {
            Ok(leg) => {
                info!(%caller, "callback: the operator is on the line; dialling the number");
                self.callbacks.dialling(caller, leg, &mut self.out);
            }
            Err(why) => {
                warn!(%caller, why, "callback: the number cannot be dialled");
                self.callback_callee_failed(now, caller, Some(503));
            }
        }
    }

    /// The number of a callback answered: bridge it to the operator.
    pub(super) fn callback_callee_answered(
        &mut self,
        now: Instant,
        leg_id: &str,
        caller: CallerId,
    ) {
        let Some(op_leg) = self.callbacks.run(caller).map(|r| r.op_leg().to_owned()) else {
            self.hangup_op_leg(now, leg_id);
            return;
        };
        let op_media = self.op_legs.media(&op_leg);
        let callee_media = self.op_legs.media(leg_id);
        if !self.bridge(op_media, callee_media) {
            warn!(%caller, "callback: the operator and the number could not be bridged");
            self.hangup_op_leg(now, leg_id);
            self.callback_callee_failed(now, caller, Some(500));
            return;
        }
        let Some((operator, number)) = self.callbacks.bridged(caller, now) else {
            return;
        };
        info!(%caller, %operator, "callback answered; connected to the operator");
        if let Some(acd) = self.acd.as_mut() {
            if let Err(e) = acd.callback_result(now, caller, CallbackResult::Answered) {
                debug!(error = %e, "callback already over in the ACD");
            }
        }
        self.callbacks.log_attempt(
            caller,
            &number,
            &operator,
            CallbackOutcome::Answered,
            &mut self.out,
        );
    }

    /// Dialling the callback's number failed: report it, hang up the operator (the ACD frees
    /// them and retries later).
    pub(super) fn callback_callee_failed(
        &mut self,
        now: Instant,
        caller: CallerId,
        status: Option<u16>,
    ) {
        let Some(run) = self.callbacks.end_run(caller) else {
            return;
        };
        let result = callback_result(status);
        info!(%caller, ?status, ?result, "callback: the number was not reached");
        if let Some(acd) = self.acd.as_mut() {
            if let Err(e) = acd.callback_result(now, caller, result) {
                debug!(error = %e, "callback already over in the ACD");
            }
        }
        let outcome = match result {
            CallbackResult::Answered => CallbackOutcome::Answered,
            CallbackResult::NoAnswer => CallbackOutcome::NoAnswer,
            CallbackResult::Busy => CallbackOutcome::Busy,
            CallbackResult::Failed => CallbackOutcome::Failed,
        };
        self.callbacks
            .log_attempt(caller, run.number(), run.operator(), outcome, &mut self.out);
        self.hangup_op_leg(now, run.op_leg());
    }

    /// The operator of a callback hung up (their leg is gone): the number's leg is cancelled
    /// or hung up, and the ACD told. `false` when `op_leg` is no callback's.
    pub(super) fn callback_operator_hung_up(&mut self, now: Instant, op_leg: &str) -> bool {
        let Some((caller, run)) = self.callbacks.end_run_of_operator(op_leg) else {
            return false;
        };
        if let Some(callee) = run.callee() {
            if run.was_bridged() {
                self.hangup_op_leg(now, callee);
            } else {
                self.cancel_leg(now, callee);
                self.callbacks.log_attempt(
                    caller,
                    run.number(),
                    run.operator(),
                    CallbackOutcome::OperatorLeft,
                    &mut self.out,
                );
            }
        }
        self.callback_over(now, caller, &run);
        true
    }

    /// The callback's number hung up after the answer.
    pub(super) fn callback_callee_hung_up(&mut self, now: Instant, caller: CallerId) {
        let Some(run) = self.callbacks.end_run(caller) else {
            return;
        };
        info!(%caller, "callback: the caller hung up");
        self.hangup_op_leg(now, run.op_leg());
        self.callback_over(now, caller, &run);
    }

    /// A callback's operator is off the line: the ACD hears `call_ended` (wrap-up, or a failed
    /// attempt while still dialling) and a talk is written down (`Callbacks::over`).
    pub(super) fn callback_over(&mut self, now: Instant, caller: CallerId, run: &Run) {
        if let Some(acd) = self.acd.as_mut() {
            if let Err(e) = acd.call_ended(now, run.operator()) {
                debug!(error = %e, "operator was not on a call");
            }
        }
        self.callbacks.over(now, caller, run, &mut self.out);
    }

    /// The ACD's `Left` for a caller without a call (`Callbacks::left`).
    pub(super) fn callback_left(&mut self, caller: CallerId, outcome: &acd::Outcome) {
        self.callbacks.left(caller, outcome, &mut self.out);
    }
}
