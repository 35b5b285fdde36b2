//! Our calls out (B2BUA UAC legs): one piece of code places every call we make — an operator's
//! registered contacts for the ACD's `Offer` (and a callback's operator), or a number through
//! the trunk (`outbound`) — and handles its INVITE transactions: 1xx, the first 2xx (ACK, the
//! other forks CANCELled, RTP started), final errors and timeouts, 401/407 answered once with
//! the trunk's digest credentials, CANCEL on give-up, BYE either way. What an answer, a failure
//! or a hang-up means is decided by the leg's [`LegFor`].
//!
//! For the ACD's `Offer`, `CancelOffer` and `Connect`:
//! An offer INVITEs every registered contact of the operator (each contact one client
//! transaction, all under one Call-ID of ours, our SDP offer on a fresh RTP port pair). 1xx go
//! to nobody: the caller keeps hearing the queue. The first 200 wins: it is ACKed, the other
//! forks are CANCELled, the operator's RTP leg starts and the ACD hears `offer_answered`; its
//! `Connect` bridges the two legs. A final error (or a transaction timeout) on the last fork is
//! `offer_failed`. A BYE from either side ends both legs and the operator's call in the ACD.

use super::live_out::offer_event;
use super::outbound::TrunkPurpose;
use super::*;
use crate::live::OfferPhase;
use acd::OfferFailure;
use sip::Uri;

/// One INVITE to one of the leg's targets.
pub(super) struct OpFork {
    tx: TxKey,
    invite: Request,
    peer: Peer,
}

/// Who a leg of ours calls, and so what its answer, failure and hang-up mean.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum LegFor {
    /// An operator rung for a caller of the ACD (a waiting caller, or a callback whose number
    /// is dialled once the operator answers).
    Offer {
        caller: CallerId,
        operator: OperatorId,
    },
    /// A number dialled through the trunk (see `outbound`).
    Trunk(TrunkPurpose),
    /// An operator rung for the caller of `call_id` whom another operator transferred to them
    /// by REFER (see `transfer`); the ACD holds them with a direct offer.
    Direct {
        call_id: String,
        operator: OperatorId,
    },
}

/// Our call out, from the INVITE to its end.
pub(super) struct OpLeg {
    pub(super) for_: LegFor,
    /// The INVITEs still without a final response (all of them until one answers).
    forks: Vec<OpFork>,
    /// We gave up (the ACD withdrew the offer, the caller left): a late failure is not
    /// reported, a late 200 is hung up.
    pub(super) cancelled: bool,
    /// Our UAC dialog with the phone that answered, and where it is.
    pub(super) dialog: Option<(Dialog, Peer)>,
    pub(super) local: SocketAddr,
    rtp_port: u16,
    /// The port pair taken for the leg, until its media starts at the answer.
    ports: Option<u16>,
    pub(super) leg: Option<LegId>,
    /// The appeal the leg's media belongs to (recording names) and the prompts it may play.
    appeal: String,
    prompts: Arc<PromptCache>,
    /// Digest credentials for a 401/407 (the trunk's), and whether they were sent already:
    /// a second challenge after ours is a failure, not a loop.
    credentials: Option<(String, String)>,
    authenticated: bool,
    /// The CSeq number of the INVITE that was answered (the ACK names it).
    invite_cseq: u32,
    /// The operator's phone sent a REFER whose subscription is not terminated yet.
    refer_subscribed: bool,
    /// The offer's live event, for a leg ringing an operator for a caller on the line: its
    /// phases (answered, ended, cancelled) go out as the leg moves.
    offer: Option<crate::live::OfferLive>,
}

/// What [`Core::place_call`] needs.
pub(super) struct LegSpec {
    pub for_: LegFor,
    /// Request-URI and where to send it, one INVITE (fork) each.
    pub targets: Vec<(Uri, Peer)>,
    /// Our address for Via and Contact, and the address for our RTP.
    pub local: SocketAddr,
    pub ip: IpAddr,
    /// The From user (the line's number, so the far end sees who calls).
    pub from_user: String,
    /// The To header value.
    pub to: String,
    pub appeal: String,
    pub prompts: Arc<PromptCache>,
    pub credentials: Option<(String, String)>,
}

/// Our calls out and their INVITE transactions (a field of [`Core`]): the rest of the core
/// reaches a leg only through these methods.
#[derive(Default)]
pub(super) struct OpLegs {
    /// By our Call-ID.
    legs: HashMap<String, OpLeg>,
    /// Our INVITEs: transaction → the leg's Call-ID.
    txs: HashMap<TxKey, String>,
}

impl OpLegs {
    /// After a burst, the legs' tables give their room back ([`sip::room`]).
    pub(super) fn give_back_room(&mut self) {
        sip::room::shrink_if_sparse(&mut self.legs);
        sip::room::shrink_if_sparse(&mut self.txs);
    }

    /// The answered leg of `caller`'s offer to `operator`, and its media when it runs.
    pub(super) fn answered_offer(
        &self,
        caller: CallerId,
        operator: &OperatorId,
    ) -> Option<(String, Option<LegId>)> {
        let offer = LegFor::Offer {
            caller,
            operator: operator.clone(),
        };
        self.legs
            .iter()
            .find(|(_, l)| l.dialog.is_some() && l.for_ == offer)
            .map(|(id, l)| (id.clone(), l.leg.clone()))
    }

    /// Whether `tx` is one of our INVITEs (its responses and timeout are the legs').
    pub(super) fn owns(&self, tx: &TxKey) -> bool {
        self.txs.contains_key(tx)
    }

    /// The leg's media, once it was answered.
    pub(super) fn media(&self, leg_id: &str) -> Option<LegId> {
        self.legs.get(leg_id).and_then(|l| l.leg.clone())
    }

    /// Our address on the leg (its Via and Contact).
    pub(super) fn local(&self, leg_id: &str) -> Option<SocketAddr> {
        self.legs.get(leg_id).map(|l| l.local)
    }

    /// The leg's phone REFERred: its subscription's NOTIFYs go out from now on.
    pub(super) fn subscribe_refer(&mut self, leg_id: &str) {
        if let Some(leg) = self.legs.get_mut(leg_id) {
            leg.refer_subscribed = true;
        }
    }

    /// Whether the leg has a refer subscription to NOTIFY; `last` ends it.
    pub(super) fn refer_subscribed(&mut self, leg_id: &str, last: bool) -> bool {
        let Some(leg) = self.legs.get_mut(leg_id) else {
            return false;
        };
        let subscribed = leg.refer_subscribed;
        if last {
            leg.refer_subscribed = false;
        }
        subscribed
    }

    /// A request in the answered leg's dialog, built by `build` from the dialog, our
    /// `host:port` and the transport; with where to send it. `None` before the answer.
    pub(super) fn request(
        &mut self,
        leg_id: &str,
        build: impl FnOnce(&mut Dialog, &str, sip::Transport) -> Request,
    ) -> Option<(Request, Peer)> {
        let leg = self.legs.get_mut(leg_id)?;
        let local = host_port(leg.local);
        let (d, peer) = leg.dialog.as_mut()?;
        Some((build(d, &local, peer.transport), *peer))
    }
}

/// The operator a caller talks to.
pub(super) struct Connected {
    pub operator: OperatorId,
    /// Our Call-ID towards the operator (a leg of [`OpLegs`]).
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
        if let Some(leg) = self.op_legs.legs.get_mut(&leg_id) {
            leg.offer = offer;
        }
        Ok(leg_id)
    }

    /// Places a call: one INVITE per target (one Call-ID of ours, our SDP offer on a fresh
    /// RTP port pair). Returns the leg's id (its Call-ID).
    pub(super) fn place_call(
        &mut self,
        now: Instant,
        spec: LegSpec,
    ) -> Result<String, &'static str> {
        let ports = self.ports.allocate(spec.ip).ok_or("no free RTP port")?;
        let rtp_port = ports;
        let leg_id = self.tokens.lowercase(24);
        let from_user = sip::message::escape(&spec.from_user, |c| {
            c.is_ascii_alphanumeric() || "-_.+".contains(c)
        });
        let from = format!(
            "<sip:{from_user}@{}>;tag={}",
            host_port(spec.local),
            self.tokens.lowercase(10)
        );
        let session: u64 = self.tokens.number(1..1_000_000_000);
        let body = sdp::offer(spec.ip, rtp_port, session, 1);
        let mut forks = Vec::new();
        for (uri, peer) in spec.targets {
            let mut r = Request::new(Method::Invite, uri);
            r.headers.push(
                HeaderName::Via,
                format!(
                    "SIP/2.0/{} {};branch={};rport",
                    peer.transport.as_str(),
                    host_port(spec.local),
                    self.tokens.branch()
                ),
            );
            r.headers.push(HeaderName::MaxForwards, "70");
            r.headers.push(HeaderName::From, from.as_str());
            r.headers.push(HeaderName::To, spec.to.as_str());
            r.headers.push(HeaderName::CallId, leg_id.as_str());
            r.headers.push(HeaderName::CSeq, "1 INVITE");
            r.headers.push(
                HeaderName::Contact,
                format!("<sip:hotline@{}>", host_port(spec.local)),
            );
            r.headers.push(HeaderName::Allow, ALLOW);
            r.headers
                .push(HeaderName::UserAgent, self.settings.user_agent.as_str());
            r.headers.push(HeaderName::ContentType, "application/sdp");
            r.body = body.clone().into_bytes();
            match self.endpoint.send_request(now, peer, r.clone()) {
                Ok(tx) => {
                    self.op_legs.txs.insert(tx.clone(), leg_id.clone());
                    forks.push(OpFork {
                        tx,
                        invite: r,
                        peer,
                    });
                }
                Err(e) => debug!(error = %e, "could not send an INVITE"),
            }
        }
        if forks.is_empty() {
            self.ports.release(rtp_port);
            return Err("no INVITE could be sent");
        }
        self.op_legs.legs.insert(
            leg_id.clone(),
            OpLeg {
                for_: spec.for_,
                forks,
                cancelled: false,
                dialog: None,
                local: spec.local,
                rtp_port,
                ports: Some(ports),
                leg: None,
                appeal: spec.appeal,
                prompts: spec.prompts,
                credentials: spec.credentials,
                authenticated: false,
                invite_cseq: 1,
                offer: None,
                refer_subscribed: false,
            },
        );
        Ok(leg_id)
    }

    /// Gives up on a leg that has not been answered: CANCEL every fork (a late 200 is hung
    /// up, a late failure not reported). `false` when the leg is unknown or already answered.
    pub(super) fn cancel_leg(&mut self, now: Instant, leg_id: &str) -> bool {
        let Some(leg) = self.op_legs.legs.get_mut(leg_id) else {
            return false;
        };
        if leg.dialog.is_some() || leg.cancelled {
            return false;
        }
        leg.cancelled = true;
        for f in &leg.forks {
            if let Err(e) = self.endpoint.cancel(now, &f.tx) {
                debug!(error = %e, "could not CANCEL a fork");
            }
        }
        true
    }

    /// `CancelOffer`: CANCEL the operator's INVITEs still ringing for the caller.
    pub(super) fn cancel_offer(&mut self, now: Instant, caller: CallerId, operator: &OperatorId) {
        let offer = LegFor::Offer {
            caller,
            operator: operator.clone(),
        };
        let Some(leg_id) = self
            .op_legs
            .legs
            .iter()
            .find(|(_, l)| l.for_ == offer && l.dialog.is_none() && !l.cancelled)
            .map(|(id, _)| id.clone())
        else {
            return;
        };
        self.cancel_leg(now, &leg_id);
        self.callbacks.forget_run(caller, &leg_id);
    }

    /// A response to one of our INVITEs; `false` when `tx` is not one.
    pub(super) fn on_op_response(&mut self, now: Instant, tx: &TxKey, response: Response) -> bool {
        let Some(leg_id) = self.op_legs.txs.get(tx).cloned() else {
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

    /// Answers a 401/407 on a fork with the leg's credentials: the INVITE again with a new
    /// branch, the next CSeq and the digest. Once per leg; `false` when not retried.
    fn retry_with_credentials(
        &mut self,
        now: Instant,
        leg_id: &str,
        tx: &TxKey,
        response: &Response,
    ) -> bool {
        let Some(leg) = self.op_legs.legs.get_mut(leg_id) else {
            return false;
        };
        let Some((user, password)) = leg.credentials.clone() else {
            return false;
        };
        if leg.authenticated || leg.cancelled {
            return false;
        }
        let Some(fork) = leg.forks.iter_mut().find(|f| f.tx == *tx) else {
            return false;
        };
        let uri = fork.invite.uri.to_string();
        let cnonce = self.tokens.lowercase(16);
        let header = match sip::auth::answer_challenge(
            response,
            &Method::Invite,
            &uri,
            &user,
            &password,
            &cnonce,
            1,
        ) {
            Ok(h) => h,
            Err(e) => {
                warn!(error = %e, status = response.status, "cannot answer the trunk's challenge");
                return false;
            }
        };
        let mut r = fork.invite.clone();
        let cseq = r.headers.cseq().map(|c| c.seq).unwrap_or(1).wrapping_add(1);
        r.headers.set(HeaderName::CSeq, format!("{cseq} INVITE"));
        r.headers.set(
            HeaderName::Via,
            format!(
                "SIP/2.0/{} {};branch={};rport",
                fork.peer.transport.as_str(),
                host_port(leg.local),
                self.tokens.branch()
            ),
        );
        r.headers.push(header.0, header.1);
        match self.endpoint.send_request(now, fork.peer, r.clone()) {
            Ok(new_tx) => {
                self.op_legs.txs.remove(tx);
                self.op_legs.txs.insert(new_tx.clone(), leg_id.to_string());
                fork.tx = new_tx;
                fork.invite = r;
                leg.authenticated = true;
                debug!(
                    status = response.status,
                    "INVITE sent again with credentials"
                );
                true
            }
            Err(e) => {
                debug!(error = %e, "could not send the INVITE with credentials");
                false
            }
        }
    }

    /// Our INVITE to an operator timed out; `false` when `tx` is not one.
    pub(super) fn on_op_timeout(&mut self, now: Instant, tx: &TxKey) -> bool {
        let Some(leg_id) = self.op_legs.txs.get(tx).cloned() else {
            return false;
        };
        self.op_fork_failed(now, &leg_id, tx, None);
        true
    }

    fn op_fork_failed(&mut self, now: Instant, leg_id: &str, tx: &TxKey, status: Option<u16>) {
        self.op_legs.txs.remove(tx);
        let Some(leg) = self.op_legs.legs.get_mut(leg_id) else {
            return;
        };
        leg.forks.retain(|f| f.tx != *tx);
        if leg.dialog.is_some() || !leg.forks.is_empty() {
            return; // another fork answered or still rings
        }
        let (for_, cancelled) = (leg.for_.clone(), leg.cancelled);
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

    fn op_answered(&mut self, now: Instant, leg_id: &str, tx: &TxKey, response: &Response) {
        let Some(leg) = self.op_legs.legs.get_mut(leg_id) else {
            return;
        };
        let Some(fork) = leg.forks.iter().find(|f| f.tx == *tx) else {
            // a 2xx retransmission after the fork was settled: ACK it again
            if let Some((d, peer)) = &leg.dialog {
                let ack = d.ack_for_2xx(
                    leg.invite_cseq,
                    &host_port(leg.local),
                    peer.transport,
                    &mut self.tokens,
                );
                self.endpoint.send_stateless(*peer, Message::Request(ack));
            }
            return;
        };
        let peer = fork.peer;
        let cseq = fork.invite.headers.cseq().map(|c| c.seq).unwrap_or(1);
        let dialog = match Dialog::uac(&fork.invite, response) {
            Ok(d) => d,
            Err(e) => {
                warn!(error = %e, "unusable 200 to our INVITE");
                return;
            }
        };
        let via = host_port(leg.local);
        let ack = dialog.ack_for_2xx(cseq, &via, peer.transport, &mut self.tokens);
        self.endpoint
            .send_stateless(peer, Message::Request(ack.clone()));
        if leg.dialog.is_some() || leg.cancelled {
            // another fork was first, or the offer was withdrawn: hang this one up
            leg.forks.retain(|f| f.tx != *tx);
            let mut late = dialog;
            let bye = late.request(Method::Bye, &via, peer.transport, &mut self.tokens);
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
        leg.invite_cseq = cseq;
        let for_ = leg.for_.clone();
        let (appeal, prompts) = (leg.appeal.clone(), leg.prompts.clone());
        let ports = leg.ports.take();
        let neg = sdp::answer_body(&response.body);
        let started = match (neg, ports) {
            (Ok(neg), Some(port)) => {
                let leg = LegId::from(leg_id);
                self.out.media(MediaCommand::Start {
                    leg: leg.clone(),
                    appeal,
                    port,
                    neg,
                    prompts,
                    greeting: None,
                    inband: false,
                    record: false,
                    timeout: None,
                });
                Some(leg)
            }
            (Err(e), _) => {
                warn!(error = %e, "the SDP answer to our INVITE is unusable");
                None
            }
            _ => None,
        };
        let Some(started) = started else {
            self.hangup_op_leg(now, leg_id);
            self.leg_failed(now, for_, None);
            return;
        };
        let at = self.wallclock(now);
        if let Some(leg) = self.op_legs.legs.get_mut(leg_id) {
            leg.leg = Some(started);
            if let Some(offer) = &leg.offer {
                offer_event(&mut self.out, offer, OfferPhase::Answered, at);
            }
        }
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
        let Some(leg_id) = req
            .headers
            .call_id()
            .ok()
            .filter(|id| self.op_legs.legs.contains_key(*id))
            .map(str::to_string)
        else {
            return Some(req);
        };
        let ours = self
            .op_legs
            .legs
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
                let for_ = self.op_legs.legs.get(&leg_id).map(|l| l.for_.clone());
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
            if let Some(c) = call.operator_mut().as_mut() {
                c.leg.clear();
            }
        }
        if self.transferor_left(now, &call_id) {
            return; // the caller goes on to the transfer target
        }
        self.end_call(now, &call_id, EndReason::OperatorHungUp);
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

    /// Sends BYE on the leg's dialog (when it has one) and drops the leg.
    pub(super) fn hangup_op_leg(&mut self, now: Instant, leg_id: &str) {
        if let Some(leg) = self.op_legs.legs.get_mut(leg_id) {
            if let Some((d, peer)) = leg.dialog.as_mut() {
                let bye = d.request(
                    Method::Bye,
                    &host_port(leg.local),
                    peer.transport,
                    &mut self.tokens,
                );
                match self.endpoint.send_request(now, *peer, bye) {
                    Ok(t) => {
                        self.our_requests.insert(t);
                    }
                    Err(e) => debug!(error = %e, "could not send BYE on our leg"),
                }
            }
        }
        self.drop_op_leg(now, leg_id);
    }

    /// Forgets the leg: media closed, ports back, transactions unmapped.
    pub(super) fn drop_op_leg(&mut self, now: Instant, leg_id: &str) {
        let Some(leg) = self.op_legs.legs.remove(leg_id) else {
            return;
        };
        if let Some(offer) = &leg.offer {
            let phase = match leg.dialog {
                Some(_) => OfferPhase::Ended,
                None => OfferPhase::Cancelled,
            };
            let at = self.wallclock(now);
            offer_event(&mut self.out, offer, phase, at);
        }
        if let Some(m) = leg.leg {
            self.out.media(MediaCommand::Unbridge { leg: m.clone() });
            self.out.media(MediaCommand::Close { leg: m });
        }
        self.ports.release(leg.rtp_port);
        self.op_legs.txs.retain(|_, id| id != leg_id);
    }
}
