//! Operator legs (B2BUA): what the core does with the ACD's `Offer`, `CancelOffer` and
//! `Connect`.
//!
//! An offer INVITEs every registered contact of the operator (each contact one client
//! transaction, all under one Call-ID of ours, our SDP offer on a fresh RTP port pair). 1xx go
//! to nobody: the caller keeps hearing the queue. The first 200 wins: it is ACKed, the other
//! forks are CANCELled, the operator's RTP leg starts and the ACD hears `offer_answered`; its
//! `Connect` bridges the two legs. A final error (or a transaction timeout) on the last fork is
//! `offer_failed`. A BYE from either side ends both legs and the operator's call in the ACD.

use super::*;
use acd::OfferFailure;
use sip::transaction::new_branch;
use sip::Uri;

/// One INVITE to one of the operator's contacts.
pub(super) struct OpFork {
    tx: TxKey,
    invite: Request,
    peer: Peer,
}

/// Our call to an operator, from the offer to its end.
pub(super) struct OpLeg {
    caller: CallerId,
    operator: OperatorId,
    /// The INVITEs still without a final response (all of them until one answers).
    forks: Vec<OpFork>,
    /// The ACD withdrew the offer: a late failure is not reported, a late 200 is hung up.
    cancelled: bool,
    /// Our UAC dialog with the phone that answered, and where it is.
    dialog: Option<(Dialog, Peer)>,
    local: SocketAddr,
    rtp_port: u16,
    ports: Option<BoundPorts>,
    leg: Option<Arc<LegShared>>,
}

/// The operator a caller talks to.
pub(super) struct Connected {
    pub operator: OperatorId,
    /// Our Call-ID towards the operator ([`Core::op_legs`]).
    pub leg: String,
    pub since: Instant,
}

/// How a failed INVITE counts for the ACD.
fn failure(status: Option<u16>) -> OfferFailure {
    match status {
        None | Some(408 | 480 | 487 | 603) => OfferFailure::NoAnswer,
        Some(486 | 600) => OfferFailure::Busy,
        Some(_) => OfferFailure::Error,
    }
}

impl Core {
    /// `Offer`: ring each operator; an operator who cannot be rung fails at once (`Error`).
    pub(super) fn offer_operators(
        &mut self,
        now: Instant,
        caller: CallerId,
        operators: Vec<OperatorId>,
    ) {
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
        let call_id = self.acd_callers.get(&caller).ok_or("the caller is gone")?;
        let call = self.calls.get(call_id).ok_or("the caller is gone")?;
        let contacts: Vec<(Uri, Peer)> = self
            .registrar
            .lookup(now, op.as_str())
            .iter()
            .map(|b| (b.uri.clone(), b.source))
            .collect();
        if contacts.is_empty() {
            return Err("no registered contact");
        }
        let local = call.local;
        let ip = self.local_ip(call);
        let line = call
            .line
            .numbers
            .first()
            .cloned()
            .unwrap_or_else(|| call.line.id.clone());
        let ports = self.media.ports.allocate(ip).ok_or("no free RTP port")?;
        let rtp_port = ports.port;
        let leg_id = random_token(24);
        let from = format!("<sip:{line}@{}>;tag={}", host_port(local), random_token(10));
        let to = format!("<sip:{op}@{}>", self.settings.realm);
        let session: u64 = rand::thread_rng().gen_range(1..1_000_000_000);
        let body = sdp::offer(ip, rtp_port, session, 1);
        let mut forks = Vec::new();
        for (uri, peer) in contacts {
            let mut r = Request::new(Method::Invite, uri);
            r.headers.push(
                HeaderName::Via,
                format!(
                    "SIP/2.0/{} {};branch={};rport",
                    peer.transport.as_str(),
                    host_port(local),
                    new_branch()
                ),
            );
            r.headers.push(HeaderName::MaxForwards, "70");
            r.headers.push(HeaderName::From, from.as_str());
            r.headers.push(HeaderName::To, to.as_str());
            r.headers.push(HeaderName::CallId, leg_id.as_str());
            r.headers.push(HeaderName::CSeq, "1 INVITE");
            r.headers.push(
                HeaderName::Contact,
                format!("<sip:hotline@{}>", host_port(local)),
            );
            r.headers.push(HeaderName::Allow, ALLOW);
            r.headers
                .push(HeaderName::UserAgent, self.settings.user_agent.as_str());
            r.headers.push(HeaderName::ContentType, "application/sdp");
            r.body = body.clone().into_bytes();
            match self.endpoint.send_request(now, peer, r.clone()) {
                Ok(tx) => {
                    self.op_txs.insert(tx.clone(), leg_id.clone());
                    forks.push(OpFork {
                        tx,
                        invite: r,
                        peer,
                    });
                }
                Err(e) => debug!(error = %e, "could not send the INVITE to a contact"),
            }
        }
        if forks.is_empty() {
            self.media.ports.release(rtp_port);
            return Err("no INVITE could be sent");
        }
        info!(%caller, operator = %op, contacts = forks.len(), "ringing the operator");
        self.op_legs.insert(
            leg_id,
            OpLeg {
                caller,
                operator: op.clone(),
                forks,
                cancelled: false,
                dialog: None,
                local,
                rtp_port,
                ports: Some(ports),
                leg: None,
            },
        );
        Ok(())
    }

    /// `CancelOffer`: CANCEL the operator's INVITEs still ringing for the caller.
    pub(super) fn cancel_offer(&mut self, now: Instant, caller: CallerId, operator: &OperatorId) {
        let Some(leg) = self.op_legs.values_mut().find(|l| {
            l.caller == caller && l.operator == *operator && l.dialog.is_none() && !l.cancelled
        }) else {
            return;
        };
        leg.cancelled = true;
        for f in &leg.forks {
            if let Err(e) = self.endpoint.cancel(now, &f.tx) {
                debug!(error = %e, "could not CANCEL a fork");
            }
        }
    }

    /// A response to one of our INVITEs to an operator; `false` when `tx` is not one.
    pub(super) fn on_op_response(&mut self, now: Instant, tx: &TxKey, response: Response) -> bool {
        let Some(leg_id) = self.op_txs.get(tx).cloned() else {
            return false;
        };
        match response.status {
            // the caller keeps hearing the queue
            100..=199 => {}
            200..=299 => self.op_answered(now, &leg_id, tx, &response),
            s => self.op_fork_failed(now, &leg_id, tx, Some(s)),
        }
        true
    }

    /// Our INVITE to an operator timed out; `false` when `tx` is not one.
    pub(super) fn on_op_timeout(&mut self, now: Instant, tx: &TxKey) -> bool {
        let Some(leg_id) = self.op_txs.get(tx).cloned() else {
            return false;
        };
        self.op_fork_failed(now, &leg_id, tx, None);
        true
    }

    fn op_fork_failed(&mut self, now: Instant, leg_id: &str, tx: &TxKey, status: Option<u16>) {
        self.op_txs.remove(tx);
        let Some(leg) = self.op_legs.get_mut(leg_id) else {
            return;
        };
        leg.forks.retain(|f| f.tx != *tx);
        if leg.dialog.is_some() || !leg.forks.is_empty() {
            return; // another fork answered or still rings
        }
        let (caller, op, cancelled) = (leg.caller, leg.operator.clone(), leg.cancelled);
        self.drop_op_leg(now, leg_id);
        if cancelled {
            return;
        }
        let reason = failure(status);
        info!(%caller, operator = %op, ?status, ?reason, "the operator did not answer");
        if let Some(acd) = self.acd.as_mut() {
            if let Err(e) = acd.offer_failed(now, caller, &op, reason) {
                debug!(error = %e, "offer already over");
            }
        }
    }

    fn op_answered(&mut self, now: Instant, leg_id: &str, tx: &TxKey, response: &Response) {
        let Some(leg) = self.op_legs.get_mut(leg_id) else {
            return;
        };
        let Some(fork) = leg.forks.iter().find(|f| f.tx == *tx) else {
            // a 2xx retransmission after the fork was settled: ACK it again
            if let Some((d, peer)) = &leg.dialog {
                let ack = d.ack_for_2xx(1, &host_port(leg.local), peer.transport);
                self.endpoint.send_stateless(*peer, Message::Request(ack));
            }
            return;
        };
        let peer = fork.peer;
        let dialog = match Dialog::uac(&fork.invite, response) {
            Ok(d) => d,
            Err(e) => {
                warn!(error = %e, "unusable 200 from the operator's phone");
                return;
            }
        };
        let via = host_port(leg.local);
        let ack = dialog.ack_for_2xx(1, &via, peer.transport);
        self.endpoint
            .send_stateless(peer, Message::Request(ack.clone()));
        if leg.dialog.is_some() || leg.cancelled {
            // another fork was first, or the offer was withdrawn: hang this one up
            leg.forks.retain(|f| f.tx != *tx);
            let mut late = dialog;
            let bye = late.request(Method::Bye, &via, peer.transport);
            if let Ok(t) = self.endpoint.send_request(now, peer, bye) {
                self.our_requests.insert(t);
            }
            if leg.cancelled && leg.dialog.is_none() {
                self.drop_op_leg(now, leg_id);
            }
            return;
        }
        let others: Vec<TxKey> = leg
            .forks
            .iter()
            .filter(|f| f.tx != *tx)
            .map(|f| f.tx.clone())
            .collect();
        for t in &others {
            if let Err(e) = self.endpoint.cancel(now, t) {
                debug!(error = %e, "could not CANCEL a fork");
            }
        }
        leg.forks.retain(|f| f.tx != *tx);
        leg.dialog = Some((dialog, peer));
        let (caller, op) = (leg.caller, leg.operator.clone());
        let ports = leg.ports.take();
        let neg = sdp::answer_body(&response.body);
        let from_call = self
            .acd_callers
            .get(&caller)
            .and_then(|id| self.calls.get(id))
            .map(|c| (c.appeal.clone(), c.prompts.clone()));
        let started = match (neg, ports, &from_call) {
            (Ok(neg), Some(ports), Some((appeal, prompts))) => self.media.start_leg(
                now,
                LegStart {
                    call_id: leg_id,
                    appeal,
                    ports,
                    neg,
                    prompts,
                    greeting: None,
                    inband: false,
                    record: false,
                    timeout: None,
                },
            ),
            (Err(e), _, _) => {
                warn!(error = %e, "the operator's SDP answer is unusable");
                None
            }
            _ => None,
        };
        let Some(started) = started else {
            self.hangup_op_leg(now, leg_id);
            if let Some(acd) = self.acd.as_mut() {
                let _ = acd.offer_failed(now, caller, &op, OfferFailure::Error);
            }
            return;
        };
        if let Some(leg) = self.op_legs.get_mut(leg_id) {
            leg.leg = Some(started);
        }
        info!(%caller, operator = %op, "the operator answered");
        let answered = self
            .acd
            .as_mut()
            .map(|acd| acd.offer_answered(now, caller, &op));
        if let Some(Err(e)) = answered {
            info!(error = %e, "the caller is no longer waiting; hanging up the operator");
            self.hangup_op_leg(now, leg_id);
        }
    }

    /// `Connect`: bridge the caller and the operator who answered.
    pub(super) fn connect(&mut self, now: Instant, caller: CallerId, operator: OperatorId) {
        let leg_id = self
            .op_legs
            .iter()
            .find(|(_, l)| l.caller == caller && l.operator == operator && l.dialog.is_some())
            .map(|(id, _)| id.clone());
        let Some(leg_id) = leg_id else {
            return;
        };
        let call = self
            .acd_callers
            .get(&caller)
            .and_then(|id| self.calls.get_mut(id));
        let op_media = self.op_legs.get(&leg_id).and_then(|l| l.leg.clone());
        let (Some(call), Some(op_media)) = (call, op_media) else {
            self.hangup_op_leg(now, &leg_id);
            if let Some(acd) = self.acd.as_mut() {
                let _ = acd.call_ended(now, &operator);
            }
            return;
        };
        let _e = call.span.clone().entered();
        if let Some(caller_media) = &call.leg {
            if let Err(e) = self.media.bridge(caller_media, &op_media) {
                warn!(error = %e, "could not bridge the caller and the operator");
            }
        }
        let waited = now.saturating_duration_since(call.queued_at.unwrap_or(call.answer_at));
        info!(operator = %operator, waited_s = waited.as_secs(), "connected to the operator");
        self.log
            .operator_answered(&call.appeal, operator.as_str(), waited);
        call.operator = Some(Connected {
            operator,
            leg: leg_id,
            since: now,
        });
    }

    /// A request in one of our operator dialogs (BYE ends the call); `Some(req)` back when the
    /// Call-ID is not an operator leg's.
    pub(super) fn on_op_request(
        &mut self,
        now: Instant,
        tx: &TxKey,
        req: Request,
    ) -> Option<Request> {
        let Some(leg_id) = req
            .headers
            .call_id()
            .ok()
            .filter(|id| self.op_legs.contains_key(*id))
            .map(str::to_string)
        else {
            return Some(req);
        };
        let ours = self
            .op_legs
            .get(&leg_id)
            .and_then(|l| l.dialog.as_ref())
            .is_some_and(|(d, _)| d.matches(&req));
        if !ours {
            self.reply(now, tx, &req, 481);
            return None;
        }
        match req.method {
            Method::Bye => {
                self.reply(now, tx, &req, 200);
                let call_id = self
                    .calls
                    .iter()
                    .find(|(_, c)| c.operator.as_ref().is_some_and(|o| o.leg == leg_id))
                    .map(|(id, _)| id.clone());
                let op = self.op_legs.get(&leg_id).map(|l| l.operator.clone());
                self.drop_op_leg(now, &leg_id);
                if let Some(op) = op {
                    info!(operator = %op, "the operator hung up");
                    if let Some(acd) = self.acd.as_mut() {
                        if let Err(e) = acd.call_ended(now, &op) {
                            debug!(error = %e, "operator was not on a call");
                        }
                    }
                }
                if let Some(call_id) = call_id {
                    if let Some(call) = self.calls.get_mut(&call_id) {
                        // already told the ACD above
                        if let Some(c) = call.operator.as_mut() {
                            c.leg.clear();
                        }
                    }
                    self.end_call(now, &call_id, EndReason::OperatorHungUp);
                }
            }
            Method::Ack => {}
            _ => self.reply(now, tx, &req, 200),
        }
        None
    }

    /// The caller's call ended while connected: BYE the operator and tell the ACD.
    pub(super) fn caller_gone_from_operator(&mut self, now: Instant, conn: &Connected) {
        if conn.leg.is_empty() {
            return; // the operator hung up first
        }
        self.hangup_op_leg(now, &conn.leg);
        if let Some(acd) = self.acd.as_mut() {
            if let Err(e) = acd.call_ended(now, &conn.operator) {
                debug!(error = %e, "operator was not on a call");
            }
        }
    }

    /// Sends BYE on the operator's dialog (when it has one) and drops the leg.
    fn hangup_op_leg(&mut self, now: Instant, leg_id: &str) {
        if let Some(leg) = self.op_legs.get_mut(leg_id) {
            if let Some((d, peer)) = leg.dialog.as_mut() {
                let bye = d.request(Method::Bye, &host_port(leg.local), peer.transport);
                match self.endpoint.send_request(now, *peer, bye) {
                    Ok(t) => {
                        self.our_requests.insert(t);
                    }
                    Err(e) => debug!(error = %e, "could not send BYE to the operator"),
                }
            }
        }
        self.drop_op_leg(now, leg_id);
    }

    /// Forgets the leg: media closed, ports back, transactions unmapped.
    fn drop_op_leg(&mut self, now: Instant, leg_id: &str) {
        let Some(leg) = self.op_legs.remove(leg_id) else {
            return;
        };
        if let Some(m) = &leg.leg {
            self.media.unbridge(m);
            m.close(now);
        }
        drop(leg.ports);
        self.media.ports.release(leg.rtp_port);
        self.op_txs.retain(|_, id| id != leg_id);
    }
}
