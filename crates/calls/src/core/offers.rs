//! The router's side of our calls out (the legs themselves are `operator_legs`): the ACD's
//! `Offer` and `CancelOffer` (an operator's registered contacts rung, an operator who cannot
//! be rung failing at once), what a leg's answer, failure or hang-up means for the ACD, the
//! caller, a callback, a transfer or the trunk (by its [`LegFor`]), and the operator's BYE
//! or REFER on a leg.

use super::operator_legs::{failure, Answer, LegFor, LegSpec};
use super::*;
use acd::OfferFailure;
use sip::Uri;

impl Core {
    /// `Offer`: ring each operator; an operator who cannot be rung fails at once (`Error`).
    pub(super) fn offer_operators(
        &mut self,
        now: Instant,
        caller: CallerId,
        operators: Vec<OperatorId>,
    ) {
        if self.callbacks.is_booked(caller) {
            // offered before the caller booked a callback: the ACD's CancelOffer follows
            debug!(%caller, "offer to a caller who booked a callback; not rung");
            return;
        }
        for op in operators {
            if let Err(why) = self.offer_one(now, caller, &op) {
                info!(%caller, operator = %op, why, "operator cannot be rung");
                if let Some(acd) = self.acd.as_mut() {
                    if let Err(e) = acd.offer_failed(now, caller, &op, OfferFailure::Error) {
                        debug!(error = %e, "offer already over");
                    }
                }
            }
        }
    }

    fn offer_one(
        &mut self,
        now: Instant,
        caller: CallerId,
        op: &OperatorId,
    ) -> Result<(), &'static str> {
        let call_id = self.queues.call_of(caller).ok_or("the caller is gone")?;
        let call = self.calls.get(call_id).ok_or("the caller is gone")?;
        let from_user = call.line().from_user();
        let (local, ip) = (call.local(), call.media_ip(&self.settings));
        let (appeal, prompts) = (call.appeal().to_owned(), call.prompts().clone());
        let for_ = LegFor::Offer {
            caller,
            operator: op.clone(),
        };
        self.ring_operator(now, for_, op, local, ip, from_user, appeal, prompts)
            .map(drop)
    }

    /// INVITEs every registered contact of `op`, for the ACD's offer or a direct transfer.
    // one value per part of the INVITE; a struct would only rename them
    #[allow(clippy::too_many_arguments)]
    pub(super) fn ring_operator(
        &mut self,
        now: Instant,
        for_: LegFor,
        op: &OperatorId,
        local: SocketAddr,
        ip: IpAddr,
        from_user: String,
        appeal: String,
        prompts: Arc<PromptCache>,
    ) -> Result<String, &'static str> {
        let targets: Vec<(Uri, Peer)> = self
            .registrar
            .lookup(now, op.as_str())
            .iter()
            .map(|b| (b.uri.clone(), b.source))
            .collect();
        if targets.is_empty() {
            return Err("no registered contact");
        }
        let contacts = targets.len();
        let to = format!("<sip:{op}@{}>", self.settings.realm);
        let live_for = for_.clone();
        let leg_id = self.place_call(
            now,
            LegSpec {
                for_,
                targets,
                local,
                ip,
                from_user,
                to,
                appeal,
                prompts,
                credentials: None,
            },
        )?;
        info!(operator = %op, contacts, "ringing the operator");
        // the offer's event goes out in the same drain as the INVITEs just sent
        let offer = self.offer_live(now, &live_for, &leg_id);
        if let Some(offer) = &offer {
            self.out.live(crate::live::LiveEvent::Offer(offer.clone()));
        }
        self.op_legs.set_offer(&leg_id, offer);
        Ok(leg_id)
    }

    /// Places a call (`OpLegs::place`). Returns the leg's id (its Call-ID).
    pub(super) fn place_call(
        &mut self,
        now: Instant,
        spec: LegSpec,
    ) -> Result<String, &'static str> {
        self.op_legs.place(
            now,
            spec,
            &mut sip_out!(self),
            self.ports.as_mut(),
            &self.settings.user_agent,
        )
    }

    /// Gives up on a leg that has not been answered (`OpLegs::cancel`).
    pub(super) fn cancel_leg(&mut self, now: Instant, leg_id: &str) -> bool {
        self.op_legs.cancel(now, leg_id, &mut self.endpoint)
    }

    /// `CancelOffer`: CANCEL the operator's INVITEs still ringing for the caller.
    pub(super) fn cancel_offer(&mut self, now: Instant, caller: CallerId, operator: &OperatorId) {
        let Some(leg_id) = self.op_legs.ringing_offer(caller, operator) else {
            return;
        };
        self.cancel_leg(now, &leg_id);
        self.callbacks.forget_run(caller, &leg_id);
    }

    /// A response to one of our INVITEs; `false` when `tx` is not one.
    pub(super) fn on_op_response(&mut self, now: Instant, tx: &TxKey, response: Response) -> bool {
        let Some(leg_id) = self.op_legs.leg_of(tx) else {
            return false;
        };
        match response.status {
            // an operator's ringing goes to nobody: the caller keeps hearing the queue
            100..=199 => {}
            200..=299 => self.op_answered(now, &leg_id, tx, &response),
            401 | 407 if self.retry_with_credentials(now, &leg_id, tx, &response) => {}
            s => self.op_fork_failed(now, &leg_id, tx, Some(s)),
        }
        true
    }

    /// A 401/407 on a fork answered with the leg's credentials (`OpLegs`); `false` when not
    /// retried.
    fn retry_with_credentials(
        &mut self,
        now: Instant,
        leg_id: &str,
        tx: &TxKey,
        response: &Response,
    ) -> bool {
        self.op_legs
            .retry_with_credentials(now, leg_id, tx, response, &mut sip_out!(self))
    }

    /// Our INVITE to an operator timed out; `false` when `tx` is not one.
    pub(super) fn on_op_timeout(&mut self, now: Instant, tx: &TxKey) -> bool {
        let Some(leg_id) = self.op_legs.leg_of(tx) else {
            return false;
        };
        self.op_fork_failed(now, &leg_id, tx, None);
        true
    }

    fn op_fork_failed(&mut self, now: Instant, leg_id: &str, tx: &TxKey, status: Option<u16>) {
        let Some((for_, cancelled)) = self.op_legs.fork_failed(leg_id, tx) else {
            return;
        };
        self.drop_op_leg(now, leg_id);
        if cancelled {
            return;
        }
        self.leg_failed(now, for_, status);
    }

    /// No fork of a leg answered (`status` `None` for a timeout or a leg that could not start).
    fn leg_failed(&mut self, now: Instant, for_: LegFor, status: Option<u16>) {
        match for_ {
            LegFor::Offer { caller, operator } => {
                self.callbacks.forget_caller(caller);
                let reason = failure(status);
                info!(%caller, %operator, ?status, ?reason, "the operator did not answer");
                if let Some(acd) = self.acd.as_mut() {
                    if let Err(e) = acd.offer_failed(now, caller, &operator, reason) {
                        debug!(error = %e, "offer already over");
                    }
                }
            }
            LegFor::Trunk(purpose) => self.trunk_failed(now, purpose, status),
            LegFor::Direct { call_id, operator } => {
                self.direct_failed(now, &call_id, &operator, status)
            }
        }
    }

    /// A 2xx to one of our INVITEs (`OpLegs::answered`), then what the leg's answer means.
    fn op_answered(&mut self, now: Instant, leg_id: &str, tx: &TxKey, response: &Response) {
        let at = self.wallclock(now);
        let answer = self.op_legs.answered(
            now,
            at,
            leg_id,
            tx,
            response,
            &mut sip_out!(self),
            &mut self.out,
        );
        let for_ = match answer {
            Answer::Settled => return,
            Answer::Withdrawn => return self.drop_op_leg(now, leg_id),
            Answer::NoMedia(for_) => {
                self.hangup_op_leg(now, leg_id);
                return self.leg_failed(now, for_, None);
            }
            Answer::Up(for_) => for_,
        };
        let (caller, op) = match for_ {
            LegFor::Offer { caller, operator } => (caller, operator),
            LegFor::Trunk(purpose) => return self.trunk_answered(now, leg_id, purpose),
            LegFor::Direct { call_id, operator } => {
                return self.direct_answered(now, leg_id, &call_id, operator)
            }
        };
        info!(%caller, operator = %op, "the operator answered");
        let answered = self
            .acd
            .as_mut()
            .map(|acd| acd.offer_answered(now, caller, &op));
        match answered {
            Some(Err(e)) => {
                info!(error = %e, "the caller is no longer waiting; hanging up the operator");
                self.hangup_op_leg(now, leg_id);
            }
            // a callback: the operator is on the line, now dial the caller's number
            Some(Ok(())) if self.callbacks.is_callback(caller) => {
                self.callback_operator_answered(now, caller, leg_id)
            }
            _ => {}
        }
    }

    /// A request in one of our legs' dialogs (BYE ends the leg, REFER transfers the caller);
    /// `Some(req)` back when the Call-ID is not a leg's.
    pub(super) fn on_op_request(
        &mut self,
        now: Instant,
        tx: &TxKey,
        req: Request,
    ) -> Option<Request> {
        let Some((leg_id, ours)) = self.op_legs.in_dialog(&req) else {
            return Some(req);
        };
        if !ours {
            self.reply(now, tx, &req, 481);
            return None;
        }
        match req.method {
            Method::Bye => {
                self.reply(now, tx, &req, 200);
                let for_ = self.op_legs.for_of(&leg_id);
                match for_ {
                    Some(LegFor::Offer { operator, .. } | LegFor::Direct { operator, .. }) => {
                        self.operator_hung_up(now, &leg_id, operator)
                    }
                    Some(LegFor::Trunk(purpose)) => {
                        self.drop_op_leg(now, &leg_id);
                        self.trunk_hung_up(now, &leg_id, purpose);
                    }
                    None => {}
                }
            }
            Method::Refer => self.on_refer(now, tx, &leg_id, &req),
            Method::Ack => {}
            _ => self.reply(now, tx, &req, 200),
        }
        None
    }

    /// The operator hung up their leg: the ACD frees them; the caller they talked to is hung up
    /// (unless a transfer took the caller elsewhere, or the leg was a callback's).
    fn operator_hung_up(&mut self, now: Instant, leg_id: &str, op: OperatorId) {
        let call_id = self.calls.bridged_over(leg_id);
        self.drop_op_leg(now, leg_id);
        info!(operator = %op, "the operator hung up");
        if self.callback_operator_hung_up(now, leg_id) {
            return; // the callback told the ACD
        }
        if let Some(acd) = self.acd.as_mut() {
            if let Err(e) = acd.call_ended(now, &op) {
                debug!(error = %e, "operator was not on a call");
            }
        }
        let Some(call_id) = call_id else {
            return;
        };
        if let Some(call) = self.calls.get_mut(&call_id) {
            // already told the ACD above
            call.operator_hung_up();
        }
        if self.transferor_left(now, &call_id) {
            return; // the caller goes on to the transfer target
        }
        self.end_call(now, &call_id, EndReason::OperatorHungUp);
    }

    /// The caller's call ended while connected: BYE the operator and tell the ACD.
    pub(super) fn caller_gone_from_operator(&mut self, now: Instant, conn: &Connected) {
        let Some(leg) = conn.leg() else {
            return; // the operator hung up first
        };
        self.hangup_op_leg(now, leg);
        if let Some(acd) = self.acd.as_mut() {
            if let Err(e) = acd.call_ended(now, conn.operator()) {
                debug!(error = %e, "operator was not on a call");
            }
        }
    }

    /// Sends BYE on the leg's dialog (when it has one) and drops the leg.
    pub(super) fn hangup_op_leg(&mut self, now: Instant, leg_id: &str) {
        self.op_legs.bye(now, leg_id, &mut sip_out!(self));
        self.drop_op_leg(now, leg_id);
    }

    /// Forgets the leg (`OpLegs::drop_leg`).
    pub(super) fn drop_op_leg(&mut self, now: Instant, leg_id: &str) {
        let at = self.wallclock(now);
        self.op_legs
            .drop_leg(leg_id, at, &mut self.out, self.ports.as_mut());
    }
}
