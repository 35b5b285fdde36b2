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
//! - anything else: NOTIFY 404, the caller stays with the operator.
//!
//! A REFER outside a dialog gets 403, one in a dialog we do not know 481 (RFC 3515 §2.4.2),
//! one in an operator's leg with no caller bridged 403.

use super::*;
use crate::{TransferKind, TransferRecord};

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
            .is_some_and(|id| self.calls.contains_key(id));
        // a caller's own REFER: we do not let callers transfer themselves
        let status = if !in_dialog || known_call { 403 } else { 481 };
        self.reply(now, tx, req, status);
    }

    /// A REFER in the operator's leg `leg_id` (its dialog already matched).
    pub(super) fn on_refer(&mut self, now: Instant, tx: &TxKey, leg_id: &str, req: &Request) {
        let call_id = self
            .calls
            .iter()
            .find(|(_, c)| c.operator.as_ref().is_some_and(|o| o.leg == leg_id))
            .map(|(id, _)| id.clone());
        let Some(call_id) = call_id else {
            debug!("REFER on a leg bridged to no caller");
            return self.reply(now, tx, req, 403);
        };
        if self.dialling.transferring(&call_id) {
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
        self.refer_notify(now, leg_id, 100);
        let user = target.user;
        let is_queue = self
            .acd
            .as_ref()
            .is_some_and(|a| a.queue_status(&QueueId::from(user.as_str())).is_some());
        if is_queue {
            return self.transfer_to_queue(now, &call_id, leg_id, &user);
        }
        if let Some(number) = outbound::dialable(&user) {
            let Some(call) = self.calls.get(&call_id) else {
                return;
            };
            let referrer = call.operator.as_ref().map(|o| {
                (
                    o.operator.clone(),
                    o.leg.clone(),
                    now.saturating_duration_since(o.since),
                )
            });
            let _e = call.span.clone().entered();
            info!("REFER: transferring the caller to an outside number");
            if let Err(why) = self.transfer_to_number(now, &call_id, &number, referrer) {
                warn!(why, "the transfer cannot be dialled");
                self.refer_notify(now, leg_id, 503);
            }
            return;
        }
        if let Some(call) = self.calls.get(&call_id) {
            let _e = call.span.clone().entered();
            info!("REFER to an unknown target; the caller stays with the operator");
        }
        self.refer_notify(now, leg_id, 404);
    }

    /// The caller of `call_id` goes back into the ACD, to `queue`, with the priority it had.
    fn transfer_to_queue(&mut self, now: Instant, call_id: &str, op_leg: &str, queue: &str) {
        let Some(call) = self.calls.get(call_id) else {
            return;
        };
        let priority = call.priority;
        self.next_caller += 1;
        let id = CallerId(self.next_caller);
        let joined = self
            .acd
            .as_mut()
            .map(|a| a.caller_joined(now, id, &QueueId::from(queue), priority, None));
        if let Some(Err(e)) = joined {
            info!(error = %e, %queue, "REFER: the queue did not take the caller");
            return self.refer_notify(now, op_leg, 480);
        }
        self.refer_notify(now, op_leg, 200);
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        let _e = call.span.clone().entered();
        info!(%queue, "REFER: the caller is back in a queue");
        let conn = call.operator.take();
        call.acd_caller = Some(id);
        self.acd_callers.insert(id, call_id.to_string());
        call.queued_at = Some(now);
        if let Some(old) = call.queued.replace(queue.to_string()) {
            self.stats.queue_leave(&old, call_id);
        }
        self.stats.queue_enter(queue, call_id, now);
        let appeal = call.appeal.clone();
        if let (Some(leg), Some(music)) = (&call.leg, self.settings.moh_for(queue)) {
            if let Err(e) = self.media.play_moh(leg, &call.prompts, music) {
                warn!(%e, "music on hold not loaded; the caller waits in silence");
            }
        } else if let Some(leg) = &call.leg {
            self.media.unbridge(leg);
        }
        let talked = conn
            .as_ref()
            .map(|c| now.saturating_duration_since(c.since));
        let operator = conn.as_ref().map(|c| c.operator.to_string());
        if let Some(conn) = &conn {
            self.caller_gone_from_operator(now, conn);
        }
        self.log.transferred(
            &appeal,
            &TransferRecord {
                operator: operator.as_deref(),
                target: queue,
                kind: TransferKind::Queue,
                status: 200,
                operator_talked: talked,
            },
        );
        self.log.ivr_step(
            &appeal,
            &IvrStep::EnteredQueue {
                queue: queue.to_string(),
                priority: i32::from(priority),
            },
        );
    }

    /// Sends the refer subscription's NOTIFY with `status` on our leg `leg_id` (final statuses
    /// terminate the subscription).
    pub(super) fn refer_notify(&mut self, now: Instant, leg_id: &str, status: u16) {
        let Some(leg) = self.op_legs.get_mut(leg_id) else {
            return;
        };
        let Some((d, peer)) = leg.dialog.as_mut() else {
            return;
        };
        let local = host_port(leg.local);
        let contact = format!("<sip:hotline@{local}>");
        let mut n = sip::refer::notify(d, &local, peer.transport, &contact, status);
        n.headers
            .push(HeaderName::UserAgent, self.settings.user_agent.as_str());
        match self.endpoint.send_request(now, *peer, n) {
            Ok(t) => {
                self.our_requests.insert(t);
            }
            Err(e) => debug!(error = %e, "could not send the NOTIFY"),
        }
    }
}
