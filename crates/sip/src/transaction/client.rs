//! Client transactions: INVITE (RFC 3261 §17.1.1 with RFC 6026's Accepted state) and
//! non-INVITE (§17.1.2), response matching (§17.1.3), and CANCEL (§9.1).

use std::time::{Duration, Instant};

use crate::message::{HeaderName, Headers, Method, Request, Response};
use crate::Peer;

use super::{
    Endpoint, Event, MatchKey, Slot, State, Timer, TxError, TxId, TxKey, MAGIC_COOKIE, TIMER_D_UDP,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum InviteClientState {
    /// Nothing heard yet: Timer A retransmits (UDP), Timer B gives up.
    Calling,
    /// A provisional arrived: waiting for the final, under the Proceeding guard.
    Proceeding,
    /// A non-2xx final arrived and was ACKed: Timer D absorbs its retransmissions.
    Completed,
    /// A 2xx arrived (RFC 6026): its retransmissions go up to the core until Timer M.
    Accepted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CancelState {
    None,
    /// `cancel` was called before any provisional response: send on the first one.
    Queued,
    Sent,
}

#[derive(Debug)]
pub(super) struct InviteClient {
    state: InviteClientState,
    /// The INVITE as sent: the ACK and CANCEL are built from it.
    request: Request,
    bytes: Vec<u8>,
    interval: Duration,
    /// The ACK sent for the non-2xx final, re-sent for each retransmission of that final.
    ack: Vec<u8>,
    cancel: CancelState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NonInviteClientState {
    Trying,
    Proceeding,
    Completed,
}

#[derive(Debug)]
pub(super) struct NonInviteClient {
    state: NonInviteClientState,
    bytes: Vec<u8>,
    interval: Duration,
    /// A CANCEL the endpoint sent on its own: its outcome is not reported to the core.
    internal: bool,
}

/// Headers a request built by the transaction layer (ACK, CANCEL) copies from the INVITE.
fn copy_headers(from: &Headers, names: &[HeaderName], to: &mut Headers) {
    for h in from.iter() {
        if names.contains(&h.name) {
            to.0.push(h.clone());
        }
    }
}

/// The top Via line of a request, alone (the first value of the first Via line).
fn top_via_value(headers: &Headers) -> Option<String> {
    headers.values(&HeaderName::Via).next().map(str::to_owned)
}

/// §17.1.1.3: the ACK for a non-2xx final response to `invite`.
fn build_ack(invite: &Request, response: &Response) -> Request {
    let mut ack = Request::new(Method::Ack, invite.uri.clone());
    if let Some(v) = top_via_value(&invite.headers) {
        ack.headers.push(HeaderName::Via, v);
    }
    ack.headers.push(HeaderName::MaxForwards, "70");
    copy_headers(&invite.headers, &[HeaderName::From], &mut ack.headers);
    copy_headers(&response.headers, &[HeaderName::To], &mut ack.headers);
    copy_headers(&invite.headers, &[HeaderName::CallId], &mut ack.headers);
    if let Ok(c) = invite.headers.cseq() {
        ack.headers
            .push(HeaderName::CSeq, format!("{} {}", c.seq, Method::Ack));
    }
    copy_headers(&invite.headers, &[HeaderName::Route], &mut ack.headers);
    ack
}

/// §9.1: the CANCEL for `invite`.
fn build_cancel(invite: &Request) -> Request {
    let mut cancel = Request::new(Method::Cancel, invite.uri.clone());
    if let Some(v) = top_via_value(&invite.headers) {
        cancel.headers.push(HeaderName::Via, v);
    }
    cancel.headers.push(HeaderName::MaxForwards, "70");
    copy_headers(
        &invite.headers,
        &[HeaderName::From, HeaderName::To, HeaderName::CallId],
        &mut cancel.headers,
    );
    if let Ok(c) = invite.headers.cseq() {
        cancel
            .headers
            .push(HeaderName::CSeq, format!("{} {}", c.seq, Method::Cancel));
    }
    copy_headers(&invite.headers, &[HeaderName::Route], &mut cancel.headers);
    cancel
}

impl Endpoint {
    pub(super) fn start_client(
        &mut self,
        now: Instant,
        peer: Peer,
        request: Request,
        internal: bool,
    ) -> Result<TxId, TxError> {
        if request.method == Method::Ack {
            return Err(TxError::AckNotTransaction);
        }
        let via = request
            .headers
            .top_via()
            .map_err(|_| TxError::MissingBranch)?;
        let branch = match via.branch() {
            Some(b) if b.starts_with(MAGIC_COOKIE) && b.len() > MAGIC_COOKIE.len() => b.to_owned(),
            _ => return Err(TxError::MissingBranch),
        };
        match (request.headers.cseq(), request.headers.call_id()) {
            (Ok(c), Ok(_)) if c.method == request.method => {}
            _ => return Err(TxError::BadRequest),
        }
        let key = MatchKey::Client {
            branch,
            method: request.method.clone(),
        };
        if self.index.contains_key(&key) {
            return Err(TxError::DuplicateTransaction);
        }
        let bytes = request.to_bytes();
        Self::transmit(&mut self.transmits, peer, bytes.clone());
        let invite = request.method == Method::Invite;
        let state = if invite {
            State::InviteClient(InviteClient {
                state: InviteClientState::Calling,
                request,
                bytes,
                interval: self.cfg.t1,
                ack: Vec::new(),
                cancel: CancelState::None,
            })
        } else {
            State::NonInviteClient(NonInviteClient {
                state: NonInviteClientState::Trying,
                bytes,
                interval: self.cfg.t1,
                internal,
            })
        };
        let id = self.insert(key, peer, state);
        let (retransmit, give_up) = if invite {
            (Timer::A, Timer::B)
        } else {
            (Timer::E, Timer::F)
        };
        if let Some(tx) = self.txs.get_mut(&id) {
            if !peer.transport.is_reliable() {
                self.timers
                    .set(&mut tx.armed, id, retransmit, now + self.cfg.t1);
            }
            self.timers
                .set(&mut tx.armed, id, give_up, now + self.cfg.t1x64());
        }
        Ok(id)
    }

    pub(super) fn cancel_id(&mut self, now: Instant, id: TxId) -> Result<(), TxError> {
        let tx = self.txs.get_mut(&id).ok_or(TxError::UnknownTransaction)?;
        let State::InviteClient(c) = &mut tx.state else {
            return Err(TxError::WrongKind);
        };
        match (c.state, c.cancel) {
            (_, CancelState::Queued | CancelState::Sent) => Ok(()),
            (InviteClientState::Completed | InviteClientState::Accepted, _) => {
                Err(TxError::AlreadyFinal)
            }
            (InviteClientState::Calling, CancelState::None) => {
                c.cancel = CancelState::Queued;
                Ok(())
            }
            (InviteClientState::Proceeding, CancelState::None) => {
                c.cancel = CancelState::Sent;
                let cancel = build_cancel(&c.request);
                let peer = tx.peer;
                // A CANCEL for a transaction we already hold is not refused for lack of room.
                let _ = self.start_client(now, peer, cancel, true);
                Ok(())
            }
        }
    }

    pub(super) fn handle_response(&mut self, now: Instant, response: Response) {
        let (Ok(via), Ok(cseq)) = (response.headers.top_via(), response.headers.cseq()) else {
            return;
        };
        let Some(branch) = via.branch() else {
            return;
        };
        let key = MatchKey::Client {
            branch: branch.to_owned(),
            method: cseq.method,
        };
        let Some(&id) = self.index.get(&key) else {
            return; // §17.1.3: no match, discard
        };
        let Some(tx) = self.txs.get_mut(&id) else {
            return;
        };
        let reliable = tx.reliable();
        let peer = tx.peer;
        let status = response.status;
        let mut end = false;
        let mut send_cancel = None;
        match &mut tx.state {
            State::InviteClient(c) => match (c.state, status) {
                (InviteClientState::Calling | InviteClientState::Proceeding, 100..=199) => {
                    c.state = InviteClientState::Proceeding;
                    self.timers.stop(&mut tx.armed, id, Slot::Retransmit);
                    self.timers.set(
                        &mut tx.armed,
                        id,
                        Timer::C,
                        now + self.cfg.proceeding_timeout,
                    );
                    if c.cancel == CancelState::Queued {
                        c.cancel = CancelState::Sent;
                        send_cancel = Some(build_cancel(&c.request));
                    }
                    self.events.push_back(Event::Response {
                        tx: TxKey(id),
                        response,
                    });
                }
                (InviteClientState::Calling | InviteClientState::Proceeding, 200..=299) => {
                    c.state = InviteClientState::Accepted;
                    self.timers.stop(&mut tx.armed, id, Slot::Retransmit);
                    self.timers
                        .set(&mut tx.armed, id, Timer::M, now + self.cfg.t1x64());
                    self.events.push_back(Event::Response {
                        tx: TxKey(id),
                        response,
                    });
                }
                (InviteClientState::Calling | InviteClientState::Proceeding, _) => {
                    c.state = InviteClientState::Completed;
                    c.ack = build_ack(&c.request, &response).to_bytes();
                    Self::transmit(&mut self.transmits, peer, c.ack.clone());
                    self.timers.stop(&mut tx.armed, id, Slot::Retransmit);
                    if reliable {
                        end = true;
                    } else {
                        self.timers
                            .set(&mut tx.armed, id, Timer::D, now + TIMER_D_UDP);
                    }
                    self.events.push_back(Event::Response {
                        tx: TxKey(id),
                        response,
                    });
                }
                (InviteClientState::Completed, 300..=699) => {
                    Self::transmit(&mut self.transmits, peer, c.ack.clone());
                }
                (InviteClientState::Accepted, 200..=299) => {
                    self.events.push_back(Event::Response {
                        tx: TxKey(id),
                        response,
                    });
                }
                _ => {}
            },
            State::NonInviteClient(c) => match (c.state, status) {
                (NonInviteClientState::Completed, _) => {}
                (_, 100..=199) => {
                    c.state = NonInviteClientState::Proceeding;
                    if !c.internal {
                        self.events.push_back(Event::Response {
                            tx: TxKey(id),
                            response,
                        });
                    }
                }
                _ => {
                    c.state = NonInviteClientState::Completed;
                    self.timers.stop(&mut tx.armed, id, Slot::Retransmit);
                    if reliable {
                        end = true;
                    } else {
                        self.timers
                            .set(&mut tx.armed, id, Timer::K, now + self.cfg.t4);
                    }
                    if !c.internal {
                        self.events.push_back(Event::Response {
                            tx: TxKey(id),
                            response,
                        });
                    }
                }
            },
            State::InviteServer(_) | State::NonInviteServer(_) => {}
        }
        if let Some(cancel) = send_cancel {
            let _ = self.start_client(now, peer, cancel, true);
        }
        if end {
            self.destroy(id);
        }
    }

    /// A client transaction's timer fired. Returns true when the transaction ends.
    pub(super) fn client_timer(&mut self, now: Instant, id: TxId, timer: Timer) -> bool {
        let Some(tx) = self.txs.get_mut(&id) else {
            return false;
        };
        let peer = tx.peer;
        match (&mut tx.state, timer) {
            (State::InviteClient(c), Timer::A) => {
                Self::transmit(&mut self.transmits, peer, c.bytes.clone());
                c.interval *= 2;
                self.timers
                    .set(&mut tx.armed, id, Timer::A, now + c.interval);
                false
            }
            (State::NonInviteClient(c), Timer::E) => {
                Self::transmit(&mut self.transmits, peer, c.bytes.clone());
                c.interval = if c.state == NonInviteClientState::Proceeding {
                    self.cfg.t2
                } else {
                    (c.interval * 2).min(self.cfg.t2)
                };
                self.timers
                    .set(&mut tx.armed, id, Timer::E, now + c.interval);
                false
            }
            (State::InviteClient(_), Timer::B | Timer::C) => {
                self.events.push_back(Event::Timeout { tx: TxKey(id) });
                true
            }
            (State::NonInviteClient(c), Timer::F) => {
                if !c.internal {
                    self.events.push_back(Event::Timeout { tx: TxKey(id) });
                }
                true
            }
            (State::InviteClient(_), Timer::D | Timer::M)
            | (State::NonInviteClient(_), Timer::K) => true,
            _ => false,
        }
    }
}
