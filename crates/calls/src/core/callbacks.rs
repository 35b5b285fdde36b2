//! Callback dialling (the ACD's `StartCallback`): the operator is rung first (an ordinary
//! operator leg); when they answer the ACD hears `offer_answered`, the number is dialled
//! through the trunk (`outbound`), and its answer bridges the two (`callback_result(Answered)`);
//! no answer, busy or an error is reported as such and the operator's leg is hung up (the ACD
//! frees the operator and retries later). Every attempt is written on the appeal of the call
//! that booked the callback ([`Booking`]).

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
    operator: OperatorId,
    number: String,
    /// The operator's leg.
    op_leg: String,
    /// The leg to the number, once the operator answered.
    callee: Option<String>,
    /// When the two were bridged.
    bridged_at: Option<Instant>,
}

impl Run {
    pub(super) fn operator(&self) -> &OperatorId {
        &self.operator
    }

    pub(super) fn number(&self) -> &str {
        &self.number
    }

    /// The operator's leg.
    pub(super) fn op_leg(&self) -> &str {
        &self.op_leg
    }

    /// The leg to the number, once the operator answered.
    pub(super) fn callee(&self) -> Option<&str> {
        self.callee.as_deref()
    }

    /// Whether the operator and the number were bridged.
    pub(super) fn was_bridged(&self) -> bool {
        self.bridged_at.is_some()
    }
}

/// Where a callback's calls come from: our address the booking call came in on, the line's
/// number for their From, the booking appeal and the prompts.
pub(super) struct Origin {
    pub near: Option<SocketAddr>,
    pub from_user: String,
    pub appeal: String,
    pub prompts: Arc<PromptCache>,
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

    /// The ACD keeps `caller`'s place for a callback booked by a call: its attempts are
    /// written on that call's appeal.
    pub(super) fn book(&mut self, caller: CallerId, booking: Booking) {
        self.bookings.insert(caller, booking);
    }

    /// Where `caller`'s callback calls come from (without a booking: the hotline, no
    /// appeal, `prompts`).
    pub(super) fn origin(&self, caller: CallerId, prompts: &Arc<PromptCache>) -> Origin {
        match self.bookings.get(&caller) {
            Some(b) => Origin {
                near: Some(b.local),
                from_user: b.from_user.clone(),
                appeal: b.appeal.clone(),
                prompts: b.prompts.clone(),
            },
            None => Origin {
                near: None,
                from_user: "hotline".to_string(),
                appeal: String::new(),
                prompts: prompts.clone(),
            },
        }
    }

    /// `caller`'s callback rings `operator` on our leg `op_leg`, for `number`.
    pub(super) fn start_run(
        &mut self,
        caller: CallerId,
        operator: OperatorId,
        number: String,
        op_leg: String,
    ) {
        self.runs.insert(
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

    /// The callback being dialled for `caller`.
    pub(super) fn run(&self, caller: CallerId) -> Option<&Run> {
        self.runs.get(&caller)
    }

    /// The number is being dialled on our leg `callee` (the attempt written down).
    pub(super) fn dialling(&mut self, caller: CallerId, callee: String, out: &mut Out) {
        let Some(run) = self.runs.get_mut(&caller) else {
            return;
        };
        run.callee = Some(callee);
        if let Some(b) = self.bookings.get(&caller) {
            out.appeal(
                &b.appeal,
                AppealRecord::CallbackDialling {
                    operator: run.operator.as_str().to_owned(),
                    attempt: b.attempts + 1,
                },
            );
        }
    }

    /// The operator and the number were bridged at `now`: the operator and the number.
    pub(super) fn bridged(
        &mut self,
        caller: CallerId,
        now: Instant,
    ) -> Option<(OperatorId, String)> {
        let run = self.runs.get_mut(&caller)?;
        run.bridged_at = Some(now);
        Some((run.operator.clone(), run.number.clone()))
    }

    /// The callback's dialling is over: its run.
    pub(super) fn end_run(&mut self, caller: CallerId) -> Option<Run> {
        self.runs.remove(&caller)
    }

    /// The run whose operator is on our leg `op_leg`, ended.
    pub(super) fn end_run_of_operator(&mut self, op_leg: &str) -> Option<(CallerId, Run)> {
        let caller = self
            .runs
            .iter()
            .find(|(_, r)| r.op_leg == op_leg)
            .map(|(c, _)| *c)?;
        self.runs.remove(&caller).map(|r| (caller, r))
    }

    /// Writes an attempt on the booking appeal (counted).
    pub(super) fn log_attempt(
        &mut self,
        caller: CallerId,
        number: &str,
        operator: &OperatorId,
        result: CallbackOutcome,
        out: &mut Out,
    ) {
        let Some(b) = self.bookings.get_mut(&caller) else {
            return;
        };
        b.attempts += 1;
        out.appeal(
            &b.appeal,
            AppealRecord::CallbackAttempt {
                number: number.to_owned(),
                operator: operator.as_str().to_owned(),
                attempt: b.attempts,
                result,
            },
        );
    }

    /// A callback's operator is off the line at `now`: a talk is written down, and an
    /// answered callback's booking forgotten (the ACD said `Left` already).
    pub(super) fn over(&mut self, now: Instant, caller: CallerId, run: &Run, out: &mut Out) {
        if let (Some(at), Some(b)) = (run.bridged_at, self.bookings.get(&caller)) {
            out.appeal(
                &b.appeal,
                AppealRecord::CallbackTalked {
                    operator: run.operator.as_str().to_owned(),
                    talked: now.saturating_duration_since(at),
                },
            );
        } else if let (Some(at), None) = (run.bridged_at, self.bookings.get(&caller)) {
            debug!(%caller, talked_s = now.saturating_duration_since(at).as_secs(), "callback without an appeal ended");
        }
        if run.bridged_at.is_some() {
            self.bookings.remove(&caller);
        }
    }

    /// The ACD's `Left` for a caller without a call: a callback that was answered or given up.
    pub(super) fn left(&mut self, caller: CallerId, outcome: &acd::Outcome, out: &mut Out) {
        if !self.bookings.contains_key(&caller) {
            return;
        }
        info!(%caller, ?outcome, "callback over");
        if let (acd::Outcome::CallbackFailed { attempts }, Some(b)) =
            (outcome, self.bookings.get(&caller))
        {
            out.appeal(
                &b.appeal,
                AppealRecord::CallbackFailed {
                    attempts: *attempts,
                },
            );
        }
        // an answered one keeps its booking until the talk ends (its appeal gets the talk)
        if !self.runs.contains_key(&caller) {
            self.bookings.remove(&caller);
        }
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
