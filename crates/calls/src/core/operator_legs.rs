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

    /// Places a call: one INVITE per target (one Call-ID of ours, our SDP offer on a fresh
    /// RTP port pair from `ports`). Returns the leg's id (its Call-ID).
    pub(super) fn place(
        &mut self,
        now: Instant,
        spec: LegSpec,
        sip: &mut SipOut<'_>,
        ports: &mut dyn MediaPorts,
        user_agent: &str,
    ) -> Result<String, &'static str> {
        let rtp_port = ports.allocate(spec.ip).ok_or("no free RTP port")?;
        let leg_id = sip.tokens.lowercase(24);
        let from_user = sip::message::escape(&spec.from_user, |c| {
            c.is_ascii_alphanumeric() || "-_.+".contains(c)
        });
        let from = format!(
            "<sip:{from_user}@{}>;tag={}",
            host_port(spec.local),
            sip.tokens.lowercase(10)
        );
        let session: u64 = sip.tokens.number(1..1_000_000_000);
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
                    sip.tokens.branch()
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
            r.headers.push(HeaderName::UserAgent, user_agent);
            r.headers.push(HeaderName::ContentType, "application/sdp");
            r.body = body.clone().into_bytes();
            match sip.endpoint.send_request(now, peer, r.clone()) {
                Ok(tx) => {
                    self.txs.insert(tx.clone(), leg_id.clone());
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
            ports.release(rtp_port);
            return Err("no INVITE could be sent");
        }
        self.legs.insert(
            leg_id.clone(),
            OpLeg {
                for_: spec.for_,
                forks,
                cancelled: false,
                dialog: None,
                local: spec.local,
                rtp_port,
                ports: Some(rtp_port),
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

    /// The live event of the offer the leg rings for (its later phases go out with it).
    pub(super) fn set_offer(&mut self, leg_id: &str, offer: Option<crate::live::OfferLive>) {
        if let Some(leg) = self.legs.get_mut(leg_id) {
            leg.offer = offer;
        }
    }

    /// Gives up on a leg that has not been answered: CANCEL every fork (a late 200 is hung
    /// up, a late failure not reported). `false` when the leg is unknown or already answered.
    pub(super) fn cancel(&mut self, now: Instant, leg_id: &str, endpoint: &mut Endpoint) -> bool {
        let Some(leg) = self.legs.get_mut(leg_id) else {
            return false;
        };
        if leg.dialog.is_some() || leg.cancelled {
            return false;
        }
        leg.cancelled = true;
        for f in &leg.forks {
            if let Err(e) = endpoint.cancel(now, &f.tx) {
                debug!(error = %e, "could not CANCEL a fork");
            }
        }
        true
    }

    /// The leg still ringing `operator` for `caller`.
    pub(super) fn ringing_offer(&self, caller: CallerId, operator: &OperatorId) -> Option<String> {
        let offer = LegFor::Offer {
            caller,
            operator: operator.clone(),
        };
        self.legs
            .iter()
            .find(|(_, l)| l.for_ == offer && l.dialog.is_none() && !l.cancelled)
            .map(|(id, _)| id.clone())
    }

    /// The leg whose INVITE is `tx`.
    pub(super) fn leg_of(&self, tx: &TxKey) -> Option<String> {
        self.txs.get(tx).cloned()
    }

    /// Who the leg calls.
    pub(super) fn for_of(&self, leg_id: &str) -> Option<LegFor> {
        self.legs.get(leg_id).map(|l| l.for_.clone())
    }

    /// For a request whose Call-ID is one of our legs': the leg, and whether the request is
    /// in its dialog. `None` when the Call-ID is not a leg's.
    pub(super) fn in_dialog(&self, req: &Request) -> Option<(String, bool)> {
        let id = req.headers.call_id().ok()?;
        let leg = self.legs.get(id)?;
        let ours = leg.dialog.as_ref().is_some_and(|(d, _)| d.matches(req));
        Some((id.to_owned(), ours))
    }

    /// Answers a 401/407 on a fork with the leg's credentials: the INVITE again with a new
    /// branch, the next CSeq and the digest. Once per leg; `false` when not retried.
    pub(super) fn retry_with_credentials(
        &mut self,
        now: Instant,
        leg_id: &str,
        tx: &TxKey,
        response: &Response,
        sip: &mut SipOut<'_>,
    ) -> bool {
        let Some(leg) = self.legs.get_mut(leg_id) else {
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
        let cnonce = sip.tokens.lowercase(16);
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
                sip.tokens.branch()
            ),
        );
        r.headers.push(header.0, header.1);
        match sip.endpoint.send_request(now, fork.peer, r.clone()) {
            Ok(new_tx) => {
                self.txs.remove(tx);
                self.txs.insert(new_tx.clone(), leg_id.to_string());
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

    /// A fork of the leg failed (`tx` had a final error or timed out): when it was the
    /// leg's last and nothing answered, who the leg called and whether we had given up on
    /// it (the router drops the leg then).
    pub(super) fn fork_failed(&mut self, leg_id: &str, tx: &TxKey) -> Option<(LegFor, bool)> {
        self.txs.remove(tx);
        let leg = self.legs.get_mut(leg_id)?;
        leg.forks.retain(|f| f.tx != *tx);
        if leg.dialog.is_some() || !leg.forks.is_empty() {
            return None; // another fork answered or still rings
        }
        Some((leg.for_.clone(), leg.cancelled))
    }

    /// A 2xx to the leg's fork `tx`: ACKed; the first one wins (the other forks CANCELled,
    /// the leg's media started, the offer's `answered` out at `at`), a later one or one to a
    /// leg we gave up on is hung up.
    #[allow(clippy::too_many_arguments)] // the answer, and where what it causes goes
    pub(super) fn answered(
        &mut self,
        now: Instant,
        at: chrono::DateTime<chrono::Utc>,
        leg_id: &str,
        tx: &TxKey,
        response: &Response,
        sip: &mut SipOut<'_>,
        out: &mut Out,
    ) -> Answer {
        let Some(leg) = self.legs.get_mut(leg_id) else {
            return Answer::Settled;
        };
        let Some(fork) = leg.forks.iter().find(|f| f.tx == *tx) else {
            // a 2xx retransmission after the fork was settled: ACK it again
            if let Some((d, peer)) = &leg.dialog {
                let ack = d.ack_for_2xx(
                    leg.invite_cseq,
                    &host_port(leg.local),
                    peer.transport,
                    sip.tokens,
                );
                sip.endpoint.send_stateless(*peer, Message::Request(ack));
            }
            return Answer::Settled;
        };
        let peer = fork.peer;
        let cseq = fork.invite.headers.cseq().map(|c| c.seq).unwrap_or(1);
        let dialog = match Dialog::uac(&fork.invite, response) {
            Ok(d) => d,
            Err(e) => {
                warn!(error = %e, "unusable 200 to our INVITE");
                return Answer::Settled;
            }
        };
        let via = host_port(leg.local);
        let ack = dialog.ack_for_2xx(cseq, &via, peer.transport, sip.tokens);
        sip.endpoint
            .send_stateless(peer, Message::Request(ack.clone()));
        if leg.dialog.is_some() || leg.cancelled {
            // another fork was first, or the offer was withdrawn: hang this one up
            leg.forks.retain(|f| f.tx != *tx);
            let mut late = dialog;
            let bye = late.request(Method::Bye, &via, peer.transport, sip.tokens);
            if let Ok(t) = sip.endpoint.send_request(now, peer, bye) {
                sip.requests.insert(t);
            }
            return if leg.cancelled && leg.dialog.is_none() {
                Answer::Withdrawn
            } else {
                Answer::Settled
            };
        }
        let others: Vec<TxKey> = leg
            .forks
            .iter()
            .filter(|f| f.tx != *tx)
            .map(|f| f.tx.clone())
            .collect();
        for t in &others {
            if let Err(e) = sip.endpoint.cancel(now, t) {
                debug!(error = %e, "could not CANCEL a fork");
            }
        }
        leg.forks.retain(|f| f.tx != *tx);
        leg.dialog = Some((dialog, peer));
        leg.invite_cseq = cseq;
        let for_ = leg.for_.clone();
        let ports = leg.ports.take();
        let neg = sdp::answer_body(&response.body);
        let started = match (neg, ports) {
            (Ok(neg), Some(port)) => {
                let media = LegId::from(leg_id);
                out.media(MediaCommand::Start {
                    leg: media.clone(),
                    appeal: leg.appeal.clone(),
                    port,
                    neg,
                    prompts: leg.prompts.clone(),
                    greeting: None,
                    inband: false,
                    record: false,
                    timeout: None,
                });
                Some(media)
            }
            (Err(e), _) => {
                warn!(error = %e, "the SDP answer to our INVITE is unusable");
                None
            }
            _ => None,
        };
        let Some(started) = started else {
            return Answer::NoMedia(for_);
        };
        leg.leg = Some(started);
        if let Some(offer) = &leg.offer {
            offer_event(out, offer, OfferPhase::Answered, at);
        }
        Answer::Up(for_)
    }

    /// Sends BYE on the leg's dialog, when it has one (the router drops the leg after).
    pub(super) fn bye(&mut self, now: Instant, leg_id: &str, sip: &mut SipOut<'_>) {
        let Some(leg) = self.legs.get_mut(leg_id) else {
            return;
        };
        let Some((d, peer)) = leg.dialog.as_mut() else {
            return;
        };
        let bye = d.request(
            Method::Bye,
            &host_port(leg.local),
            peer.transport,
            sip.tokens,
        );
        match sip.endpoint.send_request(now, *peer, bye) {
            Ok(t) => {
                sip.requests.insert(t);
            }
            Err(e) => debug!(error = %e, "could not send BYE on our leg"),
        }
    }

    /// Forgets the leg: the offer's end out at `at`, media closed, ports back, transactions
    /// unmapped.
    pub(super) fn drop_leg(
        &mut self,
        leg_id: &str,
        at: chrono::DateTime<chrono::Utc>,
        out: &mut Out,
        ports: &mut dyn MediaPorts,
    ) {
        let Some(leg) = self.legs.remove(leg_id) else {
            return;
        };
        if let Some(offer) = &leg.offer {
            let phase = match leg.dialog {
                Some(_) => OfferPhase::Ended,
                None => OfferPhase::Cancelled,
            };
            offer_event(out, offer, phase, at);
        }
        if let Some(m) = leg.leg {
            out.media(MediaCommand::Unbridge { leg: m.clone() });
            out.media(MediaCommand::Close { leg: m });
        }
        ports.release(leg.rtp_port);
        self.txs.retain(|_, id| id != leg_id);
    }
}

/// What a 2xx to one of our INVITEs came to ([`OpLegs::answered`]).
pub(super) enum Answer {
    /// Nothing more to do (a retransmission, a late fork hung up, an unusable 200).
    Settled,
    /// A 200 to a leg we had given up on: hung up; the router drops the leg.
    Withdrawn,
    /// The leg answered but its media cannot start: the router hangs it up as failed.
    NoMedia(LegFor),
    /// The leg is up, its media started.
    Up(LegFor),
}

/// What our legs' SIP goes out through: the transaction endpoint, the core's seeded tokens
/// and the requests whose final response we wait for (built by the router, `sip_out!`).
pub(super) struct SipOut<'a> {
    pub endpoint: &'a mut Endpoint,
    pub tokens: &'a mut Tokens,
    pub requests: &'a mut std::collections::HashSet<TxKey>,
}

/// The operator a caller talks to.
pub(super) struct Connected {
    operator: OperatorId,
    /// Our Call-ID towards the operator (a leg of [`OpLegs`]); empty once they hung up.
    leg: String,
    since: Instant,
}

impl Connected {
    /// `operator` on our leg `leg`, bridged since `since`.
    pub fn new(operator: OperatorId, leg: String, since: Instant) -> Self {
        Connected {
            operator,
            leg,
            since,
        }
    }

    pub fn operator(&self) -> &OperatorId {
        &self.operator
    }

    /// Our leg to the operator; `None` once they hung up.
    pub fn leg(&self) -> Option<&str> {
        Some(self.leg.as_str()).filter(|l| !l.is_empty())
    }

    /// How long they have talked by `now`.
    pub fn talked(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.since)
    }

    /// The operator hung up (the caller may go on to a transfer's target).
    pub fn hung_up(&mut self) {
        self.leg.clear();
    }
}

/// How a failed INVITE counts for the ACD.
pub(super) fn failure(status: Option<u16>) -> OfferFailure {
    match status {
        None | Some(408 | 480 | 487 | 603) => OfferFailure::NoAnswer,
        Some(486 | 600) => OfferFailure::Busy,
        Some(_) => OfferFailure::Error,
    }
}
