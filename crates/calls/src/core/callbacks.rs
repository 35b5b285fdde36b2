//! Callback dialling (the ACD's `StartCallback`): the operator is rung first (an ordinary
//! operator leg); when they answer the ACD hears `offer_answered`, the number is dialled
//! through the trunk (`outbound`), and its answer bridges the two (`callback_result(Answered)`);
//! no answer, busy or an error is reported as such and the operator's leg is hung up (the ACD
//! frees the operator and retries later). Every attempt is written on the appeal of the call
//! that booked the callback ([`Booking`]).

use super::operator_legs::LegFor;
use super::outbound::TrunkPurpose;
use super::*;
use acd::CallbackResult;

use crate::CallbackOutcome;

/// A callback the ACD holds: where its attempts are written, and how to place its calls.
#[derive(Debug, Clone)]
pub(super) struct Booking {
    /// The appeal of the call that booked it.
    pub appeal: String,
    /// Our address the booking call came in on (Via/Contact of the calls we place).
    pub local: SocketAddr,
    /// The line's number: the From of our calls, so the caller sees the hotline calling.
    pub from_user: String,
    pub prompts: Arc<PromptCache>,
    /// Attempts made so far.
    pub(super) attempts: u32,
}

/// A callback being dialled.
pub(super) struct Run {
    pub(super) operator: OperatorId,
    pub(super) number: String,
    /// The operator's leg.
    pub(super) op_leg: String,
    /// The leg to the number, once the operator answered.
    pub(super) callee: Option<String>,
    /// When the two were bridged.
    pub(super) bridged_at: Option<Instant>,
}

/// Callbacks the ACD holds and the ones being dialled (a field of [`Core`]).
#[derive(Default)]
pub(super) struct Callbacks {
    /// By the ACD's caller id (until its `Left`).
    bookings: HashMap<CallerId, Booking>,
    runs: HashMap<CallerId, Run>,
}

impl Callbacks {
    /// Whether `caller` is a callback being dialled (its operator leg answered means: dial).
    pub(super) fn is_callback(&self, caller: CallerId) -> bool {
        self.runs.contains_key(&caller)
    }

    /// Whether `caller` is a booked callback (its plain offers are not rung: only
    /// `StartCallback` calls it).
    pub(super) fn is_booked(&self, caller: CallerId) -> bool {
        self.bookings.contains_key(&caller)
    }

    /// The operator's leg of `caller`'s callback will not be answered (`leg` cancelled).
    pub(super) fn forget_run(&mut self, caller: CallerId, leg: &str) {
        if self.runs.get(&caller).is_some_and(|r| r.op_leg == leg) {
            self.runs.remove(&caller);
        }
    }

    /// The operator's leg of `caller`'s callback failed.
    pub(super) fn forget_caller(&mut self, caller: CallerId) {
        self.runs.remove(&caller);
    }
}

/// How a failed dial counts for the ACD's callback retries.
pub(super) fn callback_result(status: Option<u16>) -> CallbackResult {
    match status {
        None | Some(408 | 480 | 487 | 603) => CallbackResult::NoAnswer,
        Some(486 | 600) => CallbackResult::Busy,
        Some(_) => CallbackResult::Failed,
    }
}

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
        queue_figures!(self, at, now).leave(call, call_id, callback);
        let from_user = call.line().from_user();
        self.callbacks.bookings.insert(
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
        let booking = self.callbacks.bookings.get(&caller).cloned();
        let (near, from_user, appeal, prompts) = match &booking {
            Some(b) => (
                Some(b.local),
                b.from_user.clone(),
                b.appeal.clone(),
                b.prompts.clone(),
            ),
            None => (
                None,
                "hotline".to_string(),
                String::new(),
                self.settings.prompts.clone(),
            ),
        };
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
                self.callbacks.runs.insert(
                    caller,
                    Run {
                        operator,
                        number,
                        op_leg,
                        callee: None,
                        bridged_at: None,
                    },
                );
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
        let Some(run) = self.callbacks.runs.get(&caller) else {
            return;
        };
        let number = run.number.clone();
        let booking = self.callbacks.bookings.get(&caller);
        let (from_user, appeal, prompts) = match booking {
            Some(b) => (b.from_user.clone(), b.appeal.clone(), b.prompts.clone()),
            None => (
                "hotline".to_string(),
                String::new(),
                self.settings.prompts.clone(),
            ),
        };
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
                if let Some(run) = self.callbacks.runs.get_mut(&caller) {
                    run.callee = Some(leg);
                    if let Some(b) = self.callbacks.bookings.get(&caller) {
                        self.out.appeal(
                            &b.appeal,
                            AppealRecord::CallbackDialling {
                                operator: run.operator.as_str().to_owned(),
                                attempt: b.attempts + 1,
                            },
                        );
                    }
                }
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
        let Some(op_leg) = self.callbacks.runs.get(&caller).map(|r| r.op_leg.clone()) else {
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
        let Some(run) = self.callbacks.runs.get_mut(&caller) else {
            return;
        };
        run.bridged_at = Some(now);
        let (operator, number) = (run.operator.clone(), run.number.clone());
        info!(%caller, %operator, "callback answered; connected to the operator");
        if let Some(acd) = self.acd.as_mut() {
            if let Err(e) = acd.callback_result(now, caller, CallbackResult::Answered) {
                debug!(error = %e, "callback already over in the ACD");
            }
        }
        self.log_attempt(caller, &number, &operator, CallbackOutcome::Answered);
    }

    /// Dialling the callback's number failed: report it, hang up the operator (the ACD frees
    /// them and retries later).
    pub(super) fn callback_callee_failed(
        &mut self,
        now: Instant,
        caller: CallerId,
        status: Option<u16>,
    ) {
        let Some(run) = self.callbacks.runs.remove(&caller) else {
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
        self.log_attempt(caller, &run.number, &run.operator, outcome);
        self.hangup_op_leg(now, &run.op_leg);
    }

    /// The operator of a callback hung up (their leg is gone): the number's leg is cancelled
    /// or hung up, and the ACD told. `false` when `op_leg` is no callback's.
    pub(super) fn callback_operator_hung_up(&mut self, now: Instant, op_leg: &str) -> bool {
        let Some(caller) = self
            .callbacks
            .runs
            .iter()
            .find(|(_, r)| r.op_leg == op_leg)
            .map(|(c, _)| *c)
        else {
            return false;
        };
        let Some(run) = self.callbacks.runs.remove(&caller) else {
            return false;
        };
        if let Some(callee) = &run.callee {
            if run.bridged_at.is_some() {
                self.hangup_op_leg(now, callee);
            } else {
                self.cancel_leg(now, callee);
                self.log_attempt(
                    caller,
                    &run.number,
                    &run.operator,
                    CallbackOutcome::OperatorLeft,
                );
            }
        }
        self.callback_over(now, caller, &run);
        true
    }

    /// The callback's number hung up after the answer.
    pub(super) fn callback_callee_hung_up(&mut self, now: Instant, caller: CallerId) {
        let Some(run) = self.callbacks.runs.remove(&caller) else {
            return;
        };
        info!(%caller, "callback: the caller hung up");
        self.hangup_op_leg(now, &run.op_leg);
        self.callback_over(now, caller, &run);
    }

    /// A callback's operator is off the line: the ACD hears `call_ended` (wrap-up, or a failed
    /// attempt while still dialling) and a talk is written down.
    pub(super) fn callback_over(&mut self, now: Instant, caller: CallerId, run: &Run) {
        if let Some(acd) = self.acd.as_mut() {
            if let Err(e) = acd.call_ended(now, &run.operator) {
                debug!(error = %e, "operator was not on a call");
            }
        }
        if let (Some(at), Some(b)) = (run.bridged_at, self.callbacks.bookings.get(&caller)) {
            self.out.appeal(
                &b.appeal,
                AppealRecord::CallbackTalked {
                    operator: run.operator.as_str().to_owned(),
                    talked: now.saturating_duration_since(at),
                },
            );
        } else if let (Some(at), None) = (run.bridged_at, self.callbacks.bookings.get(&caller)) {
            debug!(%caller, talked_s = now.saturating_duration_since(at).as_secs(), "callback without an appeal ended");
        }
        // the ACD said `Left` for an answered callback already; forget the booking then
        if run.bridged_at.is_some() {
            self.callbacks.bookings.remove(&caller);
        }
    }

    pub(super) fn log_attempt(
        &mut self,
        caller: CallerId,
        number: &str,
        operator: &OperatorId,
        result: CallbackOutcome,
    ) {
        let Some(b) = self.callbacks.bookings.get_mut(&caller) else {
            return;
        };
        b.attempts += 1;
        self.out.appeal(
            &b.appeal,
            AppealRecord::CallbackAttempt {
                number: number.to_owned(),
                operator: operator.as_str().to_owned(),
                attempt: b.attempts,
                result,
            },
        );
    }

    /// The ACD's `Left` for a caller without a call: a callback that was answered or given up.
    pub(super) fn callback_left(&mut self, caller: CallerId, outcome: &acd::Outcome) {
        if !self.callbacks.bookings.contains_key(&caller) {
            return;
        }
        info!(%caller, ?outcome, "callback over");
        if let (acd::Outcome::CallbackFailed { attempts }, Some(b)) =
            (outcome, self.callbacks.bookings.get(&caller))
        {
            self.out.appeal(
                &b.appeal,
                AppealRecord::CallbackFailed {
                    attempts: *attempts,
                },
            );
        }
        // an answered one keeps its booking until the talk ends (its appeal gets the talk)
        if !self.callbacks.runs.contains_key(&caller) {
            self.callbacks.bookings.remove(&caller);
        }
    }
}
