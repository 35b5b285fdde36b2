//! Blind transfer by REFER (RFC 3515) from an operator's leg in a bridged call.
//!
//! The REFER is answered `202 Accepted` and reported on with NOTIFYs in the operator's dialog
//! (`message/sipfrag`: `SIP/2.0 100 Trying`, then the final status with the subscription
//! terminated). Its `Refer-To` user names the target:
//! - a **queue** of the ACD: the caller joins it again with the priority it had (music on
//!   hold), the operator is sent BYE and freed (wrap-up) — NOTIFY 200 at once;
//! - an **outside number** (digits): dialled through the trunk (`outbound`); the caller stays
//!   with the operator until it answers, is then bridged to it, and the operator is sent BYE;
//!   a failure is NOTIFYed and the caller stays with the operator;
//! - an **operator** of the ACD (`sip:op3@…`): the ACD must find them ready and idle
//!   ([`acd::Acd::direct_offer`], else NOTIFY 486) and holds them for this caller while their
//!   phones ring (the ordinary operator leg, `LegFor::Direct`); on the answer the caller is
//!   bridged to them, NOTIFY 200 and BYE go to the transferring operator; busy is NOTIFYed 486,
//!   no answer (declined, the queue's ring timeout) 480;
//! - anything else: NOTIFY 404, the caller stays with the operator.
//!
//! A transfer to a number or an operator that fails leaves the caller with the transferring
//! operator; if that operator hung up meanwhile, the caller (who heard the queue's music while
//! the target rang) goes back into the queue they were answered from, priority kept.
//!
//! A REFER outside a dialog gets 403, one in a dialog we do not know 481 (RFC 3515 §2.4.2),
//! one in an operator's leg with no caller bridged 403.

use super::operator_legs::LegFor;
use super::transfer::{direct_status, DirectTransfer, TransferError, TransferTarget};
use super::*;
use crate::TransferKind;

impl Core {
    /// A REFER that reached no leg of ours: without a To tag it is outside any dialog (403:
    /// we take transfers only from an operator in a call), with one an unknown dialog (481).
    pub(super) fn refer_outside_dialog(&mut self, now: Instant, tx: &TxKey, req: &Request) {
        let in_dialog = req
            .headers
            .to_addr()
            .ok()
            .is_some_and(|t| t.tag().is_some());
        let known_call = req
            .headers
            .call_id()
            .ok()
            .is_some_and(|id| self.calls.contains(id));
        // a caller's own REFER: we do not let callers transfer themselves
        let status = if !in_dialog || known_call { 403 } else { 481 };
        self.reply(now, tx, req, status);
    }

    /// A REFER in the operator's leg `leg_id` (its dialog already matched).
    pub(super) fn on_refer(&mut self, now: Instant, tx: &TxKey, leg_id: &str, req: &Request) {
        let call_id = self.calls.bridged_over(leg_id);
        let Some(call_id) = call_id else {
            debug!("REFER on a leg bridged to no caller");
            return self.reply(now, tx, req, 403);
        };
        if self.dialling.transferring(&call_id) || self.direct.under_way(&call_id) {
            return self.reply(now, tx, req, 491);
        }
        let target = match sip::refer::refer_to(req) {
            Ok(t) => t,
            Err(e) => {
                info!(error = %e, "REFER refused");
                return self.reply(now, tx, req, e.status());
            }
        };
        self.reply(now, tx, req, 202);
        self.op_legs.subscribe_refer(leg_id);
        self.refer_notify(now, leg_id, 100);
        let user = target.user;
        let target = if self.is_queue(&user) {
            TransferTarget::Queue(user)
        } else if self.is_operator(&user) {
            TransferTarget::Operator(user)
        } else {
            TransferTarget::Number(user)
        };
        if let Err(e) = self.transfer_call(now, &call_id, leg_id, target) {
            if let Some(call) = self.calls.get(&call_id) {
                let _e = call.span().clone().entered();
                info!(error = %e, "REFER to an unknown target; the caller stays with the operator");
            }
            self.refer_notify(now, leg_id, 404);
        }
    }

    fn is_queue(&self, name: &str) -> bool {
        self.acd
            .as_ref()
            .is_some_and(|a| a.queue_status(&QueueId::from(name)).is_some())
    }

    fn is_operator(&self, name: &str) -> bool {
        self.acd
            .as_ref()
            .is_some_and(|a| a.operator_status(&OperatorId::from(name)).is_some())
    }

    /// A transfer command (the workspace's transfer button): moves the caller talking to
    /// `operator` to `target` exactly as a REFER from the operator's phone would (the same
    /// code after the REFER's parsing; no NOTIFY, as there is no subscription). `Ok` once the
    /// transfer started; how it ends is the REFER's story (the appeal's `transferred`).
    pub fn transfer(
        &mut self,
        now: Instant,
        operator: &str,
        target: TransferTarget,
    ) -> Result<(), TransferError> {
        let found = self.calls.bridged_to(operator);
        let Some((call_id, leg_id)) = found else {
            return Err(TransferError::NoCall);
        };
        if self.dialling.transferring(&call_id) || self.direct.under_way(&call_id) {
            return Err(TransferError::InProgress);
        }
        let result = self.transfer_call(now, &call_id, &leg_id, target);
        self.drain(now);
        result
    }

    /// Starts moving the caller of `call_id`, bridged to the operator leg `leg_id`, to
    /// `target`: the one path of a REFER and of the transfer command.
    fn transfer_call(
        &mut self,
        now: Instant,
        call_id: &str,
        leg_id: &str,
        target: TransferTarget,
    ) -> Result<(), TransferError> {
        match target {
            TransferTarget::Queue(q) if self.is_queue(&q) => {
                self.transfer_to_queue(now, call_id, leg_id, &q)
            }
            TransferTarget::Queue(_) => return Err(TransferError::UnknownQueue),
            TransferTarget::Operator(op) if self.is_operator(&op) => {
                self.transfer_to_operator(now, call_id, leg_id, OperatorId::from(op.as_str()))
            }
            TransferTarget::Operator(_) => return Err(TransferError::UnknownOperator),
            TransferTarget::Number(n) => {
                let number = outbound::dialable(&n).ok_or(TransferError::NotANumber)?;
                let Some(call) = self.calls.get(call_id) else {
                    return Ok(());
                };
                let referrer = call.operator().map(|o| {
                    let leg = o.leg().unwrap_or_default().to_owned();
                    (o.operator().clone(), leg, o.talked(now))
                });
                let _e = call.span().clone().entered();
                info!("transferring the caller to an outside number");
                if let Err(why) = self.transfer_to_number(now, call_id, &number, referrer) {
                    warn!(why, "the transfer cannot be dialled");
                    self.refer_notify(now, leg_id, 503);
                }
            }
        }
        Ok(())
    }

    /// The caller of `call_id` goes back into the ACD, to `queue`, with the priority it had.
    fn transfer_to_queue(&mut self, now: Instant, call_id: &str, op_leg: &str, queue: &str) {
        if let Err(e) = self.enter_acd(now, call_id, queue) {
            info!(error = %e, %queue, "REFER: the queue did not take the caller");
            return self.refer_notify(now, op_leg, 480);
        }
        self.refer_notify(now, op_leg, 200);
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        let _e = call.span().clone().entered();
        info!(%queue, "REFER: the caller is back in a queue");
        let appeal = call.appeal().to_owned();
        let conn = call.disconnect();
        let talked = conn.as_ref().map(|c| c.talked(now));
        let operator = conn.as_ref().map(|c| c.operator().to_string());
        if let Some(conn) = &conn {
            self.caller_gone_from_operator(now, conn);
        }
        self.out.appeal(
            &appeal,
            AppealRecord::Transferred {
                operator: operator.map(|o| o.to_string()),
                target: queue.to_owned(),
                kind: TransferKind::Queue,
                status: 200,
                operator_talked: talked,
            },
        );
        self.entered_queue(now, call_id, queue);
    }

    /// Puts the caller of `call_id` into the ACD's `queue` with the priority it had: the
    /// music of that queue, the queue figures and the appeal's `entered_queue`.
    fn join_queue(&mut self, now: Instant, call_id: &str, queue: &str) -> Result<(), AcdError> {
        self.enter_acd(now, call_id, queue)?;
        self.entered_queue(now, call_id, queue);
        Ok(())
    }

    /// The ACD part of [`Core::join_queue`]: the caller waits in `queue` with its priority.
    fn enter_acd(&mut self, now: Instant, call_id: &str, queue: &str) -> Result<(), AcdError> {
        let Some(call) = self.calls.get(call_id) else {
            return Ok(());
        };
        let priority = call.queue().priority();
        self.join_acd(now, call_id, queue, priority, None)?;
        let at = self.wallclock(now);
        let Some(call) = self.calls.get_mut(call_id) else {
            return Ok(());
        };
        QueueFigures::new(&mut self.out, &self.stats, at, now).enter(call, call_id, queue);
        call.queue_mut().wait_anew(now);
        Ok(())
    }

    /// The rest of [`Core::join_queue`] once the ACD took the caller: the appeal's
    /// `entered_queue` and the queue's music.
    fn entered_queue(&mut self, now: Instant, call_id: &str, queue: &str) {
        let Some(call) = self.calls.get(call_id) else {
            return;
        };
        self.out.appeal(
            call.appeal(),
            AppealRecord::IvrStep(IvrStep::EnteredQueue {
                queue: queue.to_string(),
                priority: i32::from(call.queue().priority()),
            }),
        );
        self.hold_music(now, call_id);
    }

    /// The caller of `call_id` hears the music of the queue they are in or came from (the
    /// default music without one; silence when none is loaded).
    pub(super) fn hold_music(&mut self, _now: Instant, call_id: &str) {
        let Some(call) = self.calls.get(call_id) else {
            return;
        };
        let queue = call.queue().queued_or_last();
        let music = match queue {
            Some(q) => self.settings.moh_for(q),
            None => self.settings.moh_for(crate::settings::MOH_DEFAULT),
        };
        let Some(leg) = call.leg().cloned() else {
            return;
        };
        let cmd = match music {
            Some(music) => MediaCommand::PlayMoh {
                leg,
                prompts: call.prompts().clone(),
                music: music.clone(),
            },
            None => MediaCommand::Unbridge { leg },
        };
        self.media(cmd);
    }

    /// A transfer failed after the transferring operator hung up: the caller goes back into
    /// the queue they were answered from (priority kept); without one the call ends.
    pub(super) fn back_to_queue(&mut self, now: Instant, call_id: &str) {
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        let _e = call.span().clone().entered();
        // the operator who referred is gone (their leg cleared, the ACD told)
        call.disconnect();
        let Some(queue) = call.queue().last().map(str::to_owned) else {
            info!("the transfer failed and the caller came from no queue; hanging up");
            return self.end_call(now, call_id, EndReason::TransferFailed);
        };
        match self.join_queue(now, call_id, &queue) {
            Ok(()) => info!(%queue, "the transfer failed; the caller is back in the queue"),
            Err(e) => {
                info!(error = %e, %queue, "the transfer failed and the queue did not take the caller");
                self.end_call(now, call_id, EndReason::TransferFailed);
            }
        }
    }

    /// REFER naming an operator: the ACD holds them for this caller, then their phones ring.
    fn transfer_to_operator(
        &mut self,
        now: Instant,
        call_id: &str,
        op_leg: &str,
        target: OperatorId,
    ) {
        let Some(call) = self.calls.get(call_id) else {
            return;
        };
        let _e = call.span().clone().entered();
        let from_queue = call.queue().last().map(QueueId::from);
        let (referrer, talked) = match call.operator() {
            Some(c) => (c.operator().clone(), c.talked(now)),
            None => return self.refer_notify(now, op_leg, 403),
        };
        let from_user = call.line().from_user();
        let (local, ip) = (call.local(), call.media_ip(&self.settings));
        let (appeal, prompts) = (call.appeal().to_owned(), call.prompts().clone());
        let offered = self
            .acd
            .as_mut()
            .map(|a| a.direct_offer(now, &target, from_queue.as_ref()));
        if let Some(Err(e)) = offered {
            info!(error = %e, operator = %target, "REFER: the operator cannot take the caller");
            self.log_direct(call_id, &referrer, &target, 486, talked);
            return self.refer_notify(now, op_leg, 486);
        }
        let for_ = LegFor::Direct {
            call_id: call_id.to_string(),
            operator: target.clone(),
        };
        match self.ring_operator(now, for_, &target, local, ip, from_user, appeal, prompts) {
            Ok(leg) => {
                info!(operator = %target, "REFER: ringing the operator for the caller");
                let t = DirectTransfer::new(leg, target, referrer, op_leg, talked);
                self.direct.start(call_id, t);
            }
            Err(why) => {
                info!(operator = %target, why, "REFER: the operator cannot be rung");
                if let Some(acd) = self.acd.as_mut() {
                    let _ = acd.direct_failed(now, &target);
                }
                self.log_direct(call_id, &referrer, &target, 480, talked);
                self.refer_notify(now, op_leg, 480);
            }
        }
    }

    fn log_direct(
        &mut self,
        call_id: &str,
        referrer: &OperatorId,
        target: &OperatorId,
        status: u16,
        talked: Duration,
    ) {
        let Some(call) = self.calls.get(call_id) else {
            return;
        };
        self.out.appeal(
            call.appeal(),
            AppealRecord::Transferred {
                operator: Some(referrer.as_str().to_owned()),
                target: target.as_str().to_owned(),
                kind: TransferKind::Operator,
                status,
                operator_talked: Some(talked),
            },
        );
    }

    /// The operator a caller was transferred to answered (their leg's media runs): bridge the
    /// caller to them; the transferring operator gets NOTIFY 200 and BYE.
    pub(super) fn direct_answered(
        &mut self,
        now: Instant,
        leg_id: &str,
        call_id: &str,
        operator: OperatorId,
    ) {
        let Some(t) = self.direct.take(call_id) else {
            self.hangup_op_leg(now, leg_id);
            if let Some(acd) = self.acd.as_mut() {
                let _ = acd.direct_failed(now, &operator);
            }
            return;
        };
        if let Some(acd) = self.acd.as_mut() {
            if let Err(e) = acd.direct_answered(now, &operator) {
                debug!(error = %e, "direct offer already over in the ACD");
            }
        }
        let op_media = self.op_legs.media(leg_id);
        let caller_media = self.calls.get(call_id).and_then(|c| c.leg().cloned());
        let bridged = self.bridge(caller_media, op_media);
        if !bridged {
            warn!("the operator answered the transfer but could not be bridged");
            self.hangup_op_leg(now, leg_id);
            if let Some(acd) = self.acd.as_mut() {
                let _ = acd.call_ended(now, &operator);
            }
            return self.direct_over(now, call_id, t, 500);
        }
        if let Some(referrer_leg) = t.referrer_leg() {
            self.refer_notify(now, referrer_leg, 200);
        }
        self.log_direct(call_id, t.referrer(), t.operator(), 200, t.talked());
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        let _e = call.span().clone().entered();
        info!(%operator, "transferred: the caller is connected to the operator");
        let old = call.connect(Connected::new(operator, leg_id.to_string(), now));
        if let Some(old) = &old {
            self.caller_gone_from_operator(now, old);
        }
    }

    /// The target operator's leg failed (`status` `None`: a timeout).
    pub(super) fn direct_failed(
        &mut self,
        now: Instant,
        call_id: &str,
        operator: &OperatorId,
        status: Option<u16>,
    ) {
        if let Some(acd) = self.acd.as_mut() {
            if let Err(e) = acd.direct_failed(now, operator) {
                debug!(error = %e, "direct offer already over in the ACD");
            }
        }
        let Some(t) = self.direct.take(call_id) else {
            return;
        };
        self.direct_over(now, call_id, t, direct_status(status));
    }

    /// The ACD's ring timeout for a direct offer: stop ringing, a no-answer (480).
    pub(super) fn direct_rang_out(&mut self, now: Instant, operator: &OperatorId) {
        let Some((call_id, t)) = self.direct.take_ringing(operator) else {
            return;
        };
        self.cancel_leg(now, t.leg());
        self.direct_over(now, &call_id, t, 480);
    }

    /// A direct transfer failed with `status`: NOTIFY the transferring operator (the caller
    /// stays with them) or, when they hung up, the caller goes back to the queue.
    fn direct_over(&mut self, now: Instant, call_id: &str, t: DirectTransfer, status: u16) {
        if let Some(call) = self.calls.get(call_id) {
            let _e = call.span().clone().entered();
            info!(operator = %t.operator(), status, "the transfer to the operator failed");
        }
        self.log_direct(call_id, t.referrer(), t.operator(), status, t.talked());
        match t.referrer_leg() {
            Some(referrer_leg) => self.refer_notify(now, referrer_leg, status),
            None => self.back_to_queue(now, call_id),
        }
    }

    /// The caller hung up while an operator rang for them: CANCEL, the ACD frees the operator,
    /// the transferring operator hears 487.
    pub(super) fn caller_gone_from_direct(&mut self, now: Instant, call_id: &str) {
        let Some(t) = self.direct.take(call_id) else {
            return;
        };
        self.cancel_leg(now, t.leg());
        if let Some(acd) = self.acd.as_mut() {
            let _ = acd.direct_failed(now, t.operator());
        }
        if let Some(referrer_leg) = t.referrer_leg() {
            self.refer_notify(now, referrer_leg, 487);
        }
    }

    /// Sends the refer subscription's NOTIFY with `status` on our leg `leg_id` (final statuses
    /// terminate the subscription).
    /// Nothing is sent when the operator's phone did not REFER (a transfer command).
    pub(super) fn refer_notify(&mut self, now: Instant, leg_id: &str, status: u16) {
        if !self.op_legs.refer_subscribed(leg_id, status >= 200) {
            return;
        }
        let Some((mut n, peer)) = self.op_legs.request(leg_id, |d, local, transport| {
            let contact = format!("<sip:hotline@{local}>");
            sip::refer::notify(d, local, transport, &contact, status, &mut self.tokens)
        }) else {
            return;
        };
        n.headers
            .push(HeaderName::UserAgent, self.settings.user_agent.as_str());
        match self.endpoint.send_request(now, peer, n) {
            Ok(t) => {
                self.our_requests.insert(t);
            }
            Err(e) => debug!(error = %e, "could not send the NOTIFY"),
        }
    }
}
