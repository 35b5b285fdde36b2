//! Server transactions: INVITE (RFC 3261 §17.2.1 with RFC 6026's Accepted state) and
//! non-INVITE (§17.2.2), plus matching of incoming requests (§17.2.3) and CANCEL (§9.2).

use std::time::{Duration, Instant};

use crate::message::{HeaderName, Method, Request, Response};
use crate::typed::{CSeq, Via};
use crate::Peer;

use super::{
    ensure_to_tag, host_key, response_peer, stamp_via, tag_of, Endpoint, Event, MatchKey, Slot,
    State, Timer, TxError, TxId, TxKey, MAGIC_COOKIE,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum InviteServerState {
    /// No final yet; the last provisional (at least our 100 Trying) answers retransmissions.
    Proceeding,
    /// A non-2xx final was sent: Timer G retransmits it until the ACK, Timer H gives up.
    Completed,
    /// The ACK for the non-2xx arrived: Timer I absorbs ACK retransmissions.
    Confirmed,
    /// A 2xx was sent (RFC 6026): INVITE retransmissions are absorbed, the 2xx itself is
    /// retransmitted until its ACK, Timer L ends it all at 64·T1.
    Accepted { acked: bool },
}

#[derive(Debug)]
pub(super) struct InviteServer {
    pub(super) state: InviteServerState,
    /// The request's headers, Via already stamped: what the 487 after a CANCEL is built from.
    /// Only a transaction without a final response can be cancelled, so the headers are
    /// dropped at the final response: a call's INVITE transaction then lingers 64·T1 (Timer L)
    /// holding its match key and the 2xx, not the parsed request (RSS under churn).
    request_headers: Option<crate::message::Headers>,
    /// Last response sent, serialized; freed once the ACK of a 2xx came (nothing resends it).
    last: Vec<u8>,
    /// Current retransmission interval of Timer G or of the 2xx.
    interval: Duration,
    req_to_tag: Option<String>,
    resp_to_tag: Option<String>,
    pub(super) call_id: String,
    pub(super) cseq: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum NonInviteServerState {
    Trying,
    Proceeding,
    Completed,
}

impl InviteServer {
    /// Heap bytes this transaction keeps for later (the request's headers, the last response).
    #[cfg(test)]
    pub(super) fn retained_bytes(&self) -> usize {
        let headers = self.request_headers.as_ref().map_or(0, |h| {
            h.0.iter()
                .map(|h| h.name.as_str().len() + h.value.len())
                .sum()
        });
        headers + self.last.len()
    }
}

#[derive(Debug)]
pub(super) struct NonInviteServer {
    state: NonInviteServerState,
    last: Vec<u8>,
    req_to_tag: Option<String>,
    resp_to_tag: Option<String>,
}

/// The ACK is matched like an INVITE, everything else by its own method.
fn match_method(m: &Method) -> Method {
    match m {
        Method::Ack => Method::Invite,
        other => other.clone(),
    }
}

/// The §17.2.3 key of a request, computed from its top Via as received.
fn server_key(req: &Request, via: &Via, cseq: &CSeq, call_id: &str, method: Method) -> MatchKey {
    match via.branch() {
        Some(b) if b.starts_with(MAGIC_COOKIE) && b.len() > MAGIC_COOKIE.len() => {
            MatchKey::Server3261 {
                branch: b.to_owned(),
                host: host_key(&via.host),
                port: via.port,
                method,
            }
        }
        _ => MatchKey::Server2543 {
            uri: req.uri.to_string(),
            from_tag: tag_of(&req.headers, HeaderName::From),
            call_id: call_id.to_owned(),
            cseq: cseq.seq,
            method,
            via: via.to_string(),
        },
    }
}

/// What a matched request is to the transaction it matched.
enum Matched {
    Retransmission,
    Ack,
}

impl Endpoint {
    /// Find the server transaction for `key`; for RFC 2543 keys the To tag must also agree
    /// (an ACK carries the tag of our final response, anything else the request's own).
    fn find_server(&self, key: &MatchKey, is_ack: bool, to_tag: &Option<String>) -> Option<TxId> {
        let id = *self.index.get(key)?;
        if matches!(key, MatchKey::Server3261 { .. }) {
            return Some(id);
        }
        let tx = self.txs.get(&id)?;
        let (req_tag, resp_tag) = match &tx.state {
            State::InviteServer(s) => (&s.req_to_tag, &s.resp_to_tag),
            State::NonInviteServer(s) => (&s.req_to_tag, &s.resp_to_tag),
            _ => return None,
        };
        let ok = if is_ack {
            to_tag == resp_tag || (resp_tag.is_none() && to_tag == req_tag)
        } else {
            to_tag == req_tag
        };
        ok.then_some(id)
    }

    pub(super) fn handle_request(&mut self, now: Instant, peer: Peer, mut req: Request) {
        // The request was validated before it got here; one without these cannot be answered.
        let (Ok(via), Ok(cseq), Ok(call_id)) = (
            req.headers.top_via(),
            req.headers.cseq(),
            req.headers.call_id().map(str::to_owned),
        ) else {
            return;
        };
        let is_ack = req.method == Method::Ack;
        let key = server_key(&req, &via, &cseq, &call_id, match_method(&req.method));
        let Some(stamped) = stamp_via(&mut req.headers, peer.addr) else {
            return;
        };
        let resp_peer = response_peer(&stamped, peer);
        let to_tag = tag_of(&req.headers, HeaderName::To);

        if let Some(id) = self.find_server(&key, is_ack, &to_tag) {
            let how = if is_ack {
                Matched::Ack
            } else {
                Matched::Retransmission
            };
            self.server_matched(now, id, how, peer, req);
            return;
        }
        if is_ack {
            self.ack_2xx(&call_id, cseq.seq);
            self.events.push_back(Event::Ack { peer, request: req });
            return;
        }
        if self.index.contains_key(&key) {
            // Same RFC 2543 key as a live transaction but another To tag: a request we cannot
            // tell apart from that one, so it gets no transaction of its own.
            return;
        }
        if self.txs.len() >= self.cfg.max_transactions {
            let mut resp = req.response(503);
            ensure_to_tag(&mut resp.headers, &self.tokens.tag());
            Self::transmit(&mut self.transmits, resp_peer, resp.to_bytes());
            return;
        }
        if req.method == Method::Cancel {
            self.handle_cancel(now, key, resp_peer, req, via, cseq, call_id, to_tag);
            return;
        }
        let state = if req.method == Method::Invite {
            let trying = req.response(100).to_bytes();
            Self::transmit(&mut self.transmits, resp_peer, trying.clone());
            State::InviteServer(InviteServer {
                state: InviteServerState::Proceeding,
                request_headers: Some(req.headers.clone()),
                last: trying,
                interval: self.cfg.t1,
                req_to_tag: to_tag,
                resp_to_tag: None,
                call_id,
                cseq: cseq.seq,
            })
        } else {
            State::NonInviteServer(NonInviteServer {
                state: NonInviteServerState::Trying,
                last: Vec::new(),
                req_to_tag: to_tag,
                resp_to_tag: None,
            })
        };
        let id = self.insert(key, resp_peer, state);
        self.events.push_back(Event::Request {
            tx: TxKey(id),
            peer,
            request: req,
        });
    }

    /// §9.2: a CANCEL is its own non-INVITE transaction, answered here; it cancels the INVITE
    /// transaction with the same key (method INVITE) if that one has no final response yet.
    #[allow(clippy::too_many_arguments)]
    fn handle_cancel(
        &mut self,
        now: Instant,
        key: MatchKey,
        resp_peer: Peer,
        req: Request,
        via: Via,
        cseq: CSeq,
        call_id: String,
        to_tag: Option<String>,
    ) {
        let invite_key = server_key(&req, &via, &cseq, &call_id, Method::Invite);
        let invite = self.find_server(&invite_key, false, &to_tag).filter(|id| {
            matches!(
                self.txs.get(id).map(|t| &t.state),
                Some(State::InviteServer(_))
            )
        });
        let id = self.insert(
            key,
            resp_peer,
            State::NonInviteServer(NonInviteServer {
                state: NonInviteServerState::Trying,
                last: Vec::new(),
                req_to_tag: to_tag,
                resp_to_tag: None,
            }),
        );
        let Some(invite) = invite else {
            let mut resp = req.response(481);
            ensure_to_tag(&mut resp.headers, &self.tokens.tag());
            let _ = self.respond_id(now, id, resp);
            return;
        };
        let (proceeding, tag) = match self.txs.get(&invite).map(|t| &t.state) {
            Some(State::InviteServer(s)) => (
                s.state == InviteServerState::Proceeding,
                s.resp_to_tag.clone().unwrap_or_else(|| self.tokens.tag()),
            ),
            _ => (false, self.tokens.tag()),
        };
        let mut ok = req.response(200);
        ensure_to_tag(&mut ok.headers, &tag);
        let _ = self.respond_id(now, id, ok);
        if proceeding {
            let terminated = match self.txs.get(&invite).map(|t| &t.state) {
                Some(State::InviteServer(s)) => s.request_headers.as_ref().map(|headers| {
                    let mut r = crate::message::Response::to_headers(
                        headers,
                        487,
                        crate::message::reason_phrase(487),
                    );
                    ensure_to_tag(&mut r.headers, &tag);
                    r
                }),
                _ => None,
            };
            if let Some(r) = terminated {
                if self.respond_id(now, invite, r).is_ok() {
                    self.events
                        .push_back(Event::Cancelled { tx: TxKey(invite) });
                }
            }
        }
    }

    /// An ACK outside any transaction: if it acknowledges a 2xx we are retransmitting, stop.
    fn ack_2xx(&mut self, call_id: &str, cseq: u32) {
        let Some(id) = self.unacked_2xx.remove(&(call_id.to_owned(), cseq)) else {
            return;
        };
        if let Some(tx) = self.txs.get_mut(&id) {
            if let State::InviteServer(s) = &mut tx.state {
                s.state = InviteServerState::Accepted { acked: true };
                s.last = Vec::new();
            }
            self.timers.stop(&mut tx.armed, id, Slot::Retransmit);
        }
    }

    fn server_matched(&mut self, now: Instant, id: TxId, how: Matched, peer: Peer, req: Request) {
        let Some(tx) = self.txs.get_mut(&id) else {
            return;
        };
        let reliable = tx.reliable();
        let to = tx.peer;
        let mut end = false;
        match (&mut tx.state, how) {
            (State::InviteServer(s), Matched::Retransmission) => match s.state {
                InviteServerState::Proceeding | InviteServerState::Completed => {
                    Self::transmit(&mut self.transmits, to, s.last.clone());
                }
                InviteServerState::Confirmed | InviteServerState::Accepted { .. } => {}
            },
            (State::InviteServer(s), Matched::Ack) => match s.state {
                InviteServerState::Completed => {
                    s.state = InviteServerState::Confirmed;
                    s.last = Vec::new();
                    self.timers.stop(&mut tx.armed, id, Slot::Retransmit);
                    if reliable {
                        end = true;
                    } else {
                        self.timers
                            .set(&mut tx.armed, id, Timer::I, now + self.cfg.t4);
                    }
                }
                InviteServerState::Accepted { .. } => {
                    // An ACK for our 2xx that reused the INVITE's branch (or an RFC 2543 one).
                    let (call_id, cseq) = (s.call_id.clone(), s.cseq);
                    self.ack_2xx(&call_id, cseq);
                    self.events.push_back(Event::Ack { peer, request: req });
                }
                InviteServerState::Proceeding | InviteServerState::Confirmed => {}
            },
            (State::NonInviteServer(s), _) => match s.state {
                NonInviteServerState::Trying => {}
                NonInviteServerState::Proceeding | NonInviteServerState::Completed => {
                    Self::transmit(&mut self.transmits, to, s.last.clone());
                }
            },
            _ => {}
        }
        if end {
            self.destroy(id);
        }
    }

    pub(super) fn respond_id(
        &mut self,
        now: Instant,
        id: TxId,
        response: Response,
    ) -> Result<(), TxError> {
        if !(100..=699).contains(&response.status) {
            return Err(TxError::InvalidStatus(response.status));
        }
        let tx = self.txs.get_mut(&id).ok_or(TxError::UnknownTransaction)?;
        let reliable = tx.reliable();
        let to = tx.peer;
        let status = response.status;
        let tag = tag_of(&response.headers, HeaderName::To);
        let mut end = false;
        match &mut tx.state {
            State::InviteServer(s) => {
                if s.state != InviteServerState::Proceeding {
                    return Err(TxError::AlreadyFinal);
                }
                s.last = response.to_bytes();
                if tag.is_some() {
                    s.resp_to_tag = tag;
                }
                Self::transmit(&mut self.transmits, to, s.last.clone());
                s.interval = self.cfg.t1;
                if status >= 200 {
                    s.request_headers = None;
                }
                match status {
                    100..=199 => {}
                    200..=299 => {
                        s.state = InviteServerState::Accepted { acked: false };
                        if !reliable {
                            self.timers.set(
                                &mut tx.armed,
                                id,
                                Timer::Retransmit2xx,
                                now + self.cfg.t1,
                            );
                        }
                        self.timers
                            .set(&mut tx.armed, id, Timer::L, now + self.cfg.t1x64());
                        self.unacked_2xx.insert((s.call_id.clone(), s.cseq), id);
                    }
                    _ => {
                        s.state = InviteServerState::Completed;
                        if !reliable {
                            self.timers
                                .set(&mut tx.armed, id, Timer::G, now + self.cfg.t1);
                        }
                        self.timers
                            .set(&mut tx.armed, id, Timer::H, now + self.cfg.t1x64());
                    }
                }
            }
            State::NonInviteServer(s) => {
                if s.state == NonInviteServerState::Completed {
                    return Err(TxError::AlreadyFinal);
                }
                s.last = response.to_bytes();
                if tag.is_some() {
                    s.resp_to_tag = tag;
                }
                Self::transmit(&mut self.transmits, to, s.last.clone());
                if status < 200 {
                    s.state = NonInviteServerState::Proceeding;
                } else {
                    s.state = NonInviteServerState::Completed;
                    if reliable {
                        end = true;
                    } else {
                        self.timers
                            .set(&mut tx.armed, id, Timer::J, now + self.cfg.t1x64());
                    }
                }
            }
            State::InviteClient(_) | State::NonInviteClient(_) => return Err(TxError::WrongKind),
        }
        if end {
            self.destroy(id);
        }
        Ok(())
    }

    /// A server transaction's timer fired. Returns true when the transaction ends.
    pub(super) fn server_timer(&mut self, now: Instant, id: TxId, timer: Timer) -> bool {
        let Some(tx) = self.txs.get_mut(&id) else {
            return false;
        };
        let to = tx.peer;
        match (&mut tx.state, timer) {
            (State::InviteServer(s), Timer::G | Timer::Retransmit2xx) => {
                Self::transmit(&mut self.transmits, to, s.last.clone());
                s.interval = (s.interval * 2).min(self.cfg.t2);
                self.timers.set(&mut tx.armed, id, timer, now + s.interval);
                false
            }
            (State::InviteServer(_), Timer::H) => {
                self.events.push_back(Event::Timeout { tx: TxKey(id) });
                true
            }
            (State::InviteServer(s), Timer::L) => {
                if s.state == (InviteServerState::Accepted { acked: false }) {
                    self.events.push_back(Event::AckTimeout {
                        call_id: s.call_id.clone(),
                        cseq: s.cseq,
                    });
                }
                true
            }
            (State::InviteServer(_), Timer::I) | (State::NonInviteServer(_), Timer::J) => true,
            _ => false,
        }
    }
}
