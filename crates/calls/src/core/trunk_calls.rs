//! The router's side of the calls we place through the trunk (`outbound::Dialling` is the
//! part): the trunk's INVITE for a number (`dial_number`; the INVITE/ACK/CANCEL/BYE work is
//! `operator_legs`'s [`Core::place_call`]), a caller handed to a number (a menu's `transfer`
//! node with its fallback, an operator's REFER), bridging on the answer, failures and
//! hang-ups, and what is written down. Callbacks' trunk legs go on to `callback_calls.rs`.

use super::operator_legs::{LegFor, LegSpec};
use super::outbound::{LegLeft, ReferredBy, TrunkPurpose};
use super::*;
use sip::{SipUri, Uri};

use crate::TransferKind;

impl Core {
    /// The trunk we dial out through: the first with an `outbound` target.
    fn outbound_trunk(&self) -> Option<&crate::settings::TrunkSettings> {
        self.settings.trunks.iter().find(|t| t.outbound.is_some())
    }

    /// Our address towards `peer`: `preferred` (the address a related call came in on) when
    /// of the same family, else the address a message last arrived on, else a listen address.
    pub(super) fn local_towards(
        &self,
        peer: Peer,
        preferred: Option<SocketAddr>,
    ) -> Option<SocketAddr> {
        let same = |a: &SocketAddr| a.is_ipv4() == peer.addr.is_ipv4();
        preferred
            .filter(same)
            .or(self.last_local.filter(same))
            .or_else(|| {
                self.settings
                    .listen
                    .iter()
                    .copied()
                    .find(|a| same(a) && !a.ip().is_unspecified())
            })
    }

    /// Places a call to `number` through the outbound trunk.
    // what the leg needs besides the number; a struct would only rename them
    #[allow(clippy::too_many_arguments)]
    pub(super) fn dial_number(
        &mut self,
        now: Instant,
        number: &str,
        purpose: TrunkPurpose,
        near: Option<SocketAddr>,
        from_user: &str,
        appeal: &str,
        prompts: Arc<PromptCache>,
    ) -> Result<String, &'static str> {
        let trunk = self
            .outbound_trunk()
            .ok_or("no trunk has an outbound target")?;
        let target = trunk.outbound.clone().ok_or("no outbound target")?;
        let credentials = trunk.credentials.clone();
        let mut uri = target.uri.clone();
        uri.user = Some(number.to_string());
        let uri = Uri::Sip(uri);
        let to_uri = match &uri {
            Uri::Sip(u) => {
                let mut bare = SipUri::new(Some(number), u.host.clone(), u.port);
                bare.secure = u.secure;
                Uri::Sip(bare)
            }
            other => other.clone(),
        };
        let local = self
            .local_towards(target.peer, near)
            .ok_or("no local address towards the trunk")?;
        let ip = self.settings.rtp_address.unwrap_or(local.ip());
        let leg = self.place_call(
            now,
            LegSpec {
                for_: LegFor::Trunk(purpose),
                targets: vec![(uri, target.peer)],
                local,
                ip,
                from_user: from_user.to_string(),
                to: format!("<{to_uri}>"),
                appeal: appeal.to_string(),
                prompts,
                credentials,
            },
        )?;
        info!(trunk = %trunk_name(&self.settings), "dialling a number through the trunk");
        Ok(leg)
    }

    // ------------------------------------------------------------------ transfers

    /// A menu's `transfer` node: dial `number` and bridge the caller when it answers.
    pub(super) fn ivr_transfer(&mut self, now: Instant, call_id: &str, number: &str) -> bool {
        self.transfer_to_number(now, call_id, number, None).is_ok()
    }

    /// Hands `call_id`'s caller to `number` through the trunk; on the answer they are bridged.
    /// `referrer`: the operator whose REFER asked for it (they stay with the caller until then).
    pub(super) fn transfer_to_number(
        &mut self,
        now: Instant,
        call_id: &str,
        number: &str,
        referrer: Option<ReferredBy>,
    ) -> Result<(), &'static str> {
        let call = self.calls.get(call_id).ok_or("the call is gone")?;
        let from_user = call.line().from_user();
        let (near, appeal, prompts) = (
            call.local(),
            call.appeal().to_owned(),
            call.prompts().clone(),
        );
        let leg = self.dial_number(
            now,
            number,
            TrunkPurpose::Transfer {
                call_id: call_id.to_string(),
            },
            Some(near),
            &from_user,
            &appeal,
            prompts,
        )?;
        self.dialling.start(call_id, leg, number, referrer);
        Ok(())
    }

    /// A trunk leg answered.
    pub(super) fn trunk_answered(&mut self, now: Instant, leg_id: &str, purpose: TrunkPurpose) {
        let call_id = match purpose {
            TrunkPurpose::Callback { caller } => {
                return self.callback_callee_answered(now, leg_id, caller)
            }
            TrunkPurpose::Transfer { call_id } => call_id,
        };
        let target_media = self.op_legs.media(leg_id);
        let caller_media = self.calls.get(&call_id).and_then(|c| c.leg().cloned());
        let bridged = self.bridge(caller_media, target_media);
        if !self.dialling.transferring(&call_id) {
            self.hangup_op_leg(now, leg_id);
            return;
        }
        if !bridged {
            warn!("the transfer target answered but could not be bridged");
            self.hangup_op_leg(now, leg_id);
            self.trunk_failed(now, TrunkPurpose::Transfer { call_id }, Some(500));
            return;
        }
        let Some((number, referrer)) = self.dialling.bridged(&call_id) else {
            return;
        };
        if let Some((_, op_leg, _)) = &referrer {
            if !op_leg.is_empty() {
                self.refer_notify(now, op_leg, 200);
            }
        }
        let Some(call) = self.calls.get_mut(&call_id) else {
            return;
        };
        let _e = call.span().clone().entered();
        info!("transferred: the caller is connected to the number");
        call.menu_mut().set_end(Some(IvrEnd::Transferred));
        let appeal = call.appeal().to_owned();
        let conn = call.disconnect();
        if let Some(conn) = &conn {
            self.caller_gone_from_operator(now, conn);
        }
        self.out.appeal(
            &appeal,
            AppealRecord::Transferred {
                operator: referrer.as_ref().map(|(o, _, _)| o.as_str().to_owned()),
                target: number.to_string(),
                kind: TransferKind::Number,
                status: 200,
                operator_talked: referrer.as_ref().map(|(_, _, t)| *t),
            },
        );
    }

    /// A trunk leg got no answer (`status` `None`: timeout or no media).
    pub(super) fn trunk_failed(
        &mut self,
        now: Instant,
        purpose: TrunkPurpose,
        status: Option<u16>,
    ) {
        let call_id = match purpose {
            TrunkPurpose::Callback { caller } => {
                return self.callback_callee_failed(now, caller, status)
            }
            TrunkPurpose::Transfer { call_id } => call_id,
        };
        let Some((number, referrer)) = self.dialling.failed(&call_id) else {
            return;
        };
        let code = status.unwrap_or(408);
        let Some(call) = self.calls.get(&call_id) else {
            return;
        };
        let appeal = call.appeal().to_owned();
        {
            let _e = call.span().clone().entered();
            info!(status = code, "the transfer target was not reached");
        }
        self.out.appeal(
            &appeal,
            AppealRecord::Transferred {
                operator: referrer.as_ref().map(|(op, _)| op.as_str().to_owned()),
                target: number,
                kind: TransferKind::Number,
                status: code,
                operator_talked: None,
            },
        );
        match referrer {
            // the operator is still with the caller: they hear why, the caller stays
            Some((_, leg)) if !leg.is_empty() => self.refer_notify(now, &leg, code),
            // the operator hung up meanwhile: back to the queue the caller came from
            Some(_) => self.back_to_queue(now, &call_id),
            None => self.ivr_transfer_failed(now, &call_id),
        }
    }

    /// The menu's transfer failed: the menu's fallback if it has one, else the call ends.
    pub(super) fn ivr_transfer_failed(&mut self, now: Instant, call_id: &str) {
        let fallback = self
            .calls
            .get_mut(call_id)
            .is_some_and(|c| c.menu_mut().transfer_failed(now));
        if fallback {
            self.drive_ivr(now, call_id);
        } else {
            self.end_call(now, call_id, EndReason::TransferFailed);
        }
    }

    /// The far end of a trunk leg hung up (the leg is already dropped).
    pub(super) fn trunk_hung_up(&mut self, now: Instant, _leg_id: &str, purpose: TrunkPurpose) {
        match purpose {
            TrunkPurpose::Callback { caller } => self.callback_callee_hung_up(now, caller),
            TrunkPurpose::Transfer { call_id } => {
                self.dialling.forget(&call_id);
                self.end_call(now, &call_id, EndReason::TransferEnded);
            }
        }
    }

    /// The caller's call ended: its leg to a number is hung up or cancelled.
    pub(super) fn caller_gone_from_trunk(&mut self, now: Instant, call_id: &str) {
        self.caller_gone_from_direct(now, call_id);
        match self.dialling.caller_gone(call_id) {
            None => {}
            Some(LegLeft::Bridged { leg }) => self.hangup_op_leg(now, &leg),
            Some(LegLeft::Ringing { leg, referrer_leg }) => {
                self.cancel_leg(now, &leg);
                if let Some(referrer_leg) = referrer_leg {
                    self.refer_notify(now, &referrer_leg, 487);
                }
            }
        }
    }

    /// The operator who referred `call_id` to a number or another operator hung up before it
    /// answered: the caller waits for the target alone, hearing the music of the queue they
    /// came from. `false` when no such transfer is under way.
    pub(super) fn transferor_left(&mut self, now: Instant, call_id: &str) -> bool {
        if !self.direct.transferor_left(call_id) && !self.dialling.referrer_left(call_id) {
            return false;
        }
        self.hold_music(now, call_id);
        true
    }
}

fn trunk_name(s: &Settings) -> String {
    s.trunks
        .iter()
        .find(|t| t.outbound.is_some())
        .map(|t| t.name.clone())
        .unwrap_or_default()
}
