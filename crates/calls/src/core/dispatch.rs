//! The request dispatch: what the transaction endpoint reports, each request to its handler
//! (or answered here: OPTIONS, REGISTER, 405/501/483/420/481), responses built and sent.

use super::*;

impl Core {
    pub(super) fn on_event(&mut self, now: Instant, ev: Event) {
        match ev {
            Event::Request { tx, peer, request } => self.on_request(now, tx, peer, request),
            Event::Ack { request, .. } => {
                if let Ok(id) = request.headers.call_id() {
                    if let Some(call) = self.calls.get_mut(id) {
                        call.acked(&request, &mut self.out, &self.settings);
                    }
                }
            }
            Event::Cancelled { tx } => {
                if let Some(id) = self.calls.by_invite(&tx) {
                    if let Some(mut call) = self.calls.remove(&id) {
                        let _e = call.span().clone().entered();
                        info!("caller hung up before answer (CANCEL)");
                        self.stats.calls_cancelled.fetch_add(1, Ordering::Relaxed);
                        self.ended(now, &id, &mut call, EndReason::CallerCancelled);
                    }
                }
            }
            Event::Response { tx, response } if self.op_legs.owns(&tx) => {
                self.on_op_response(now, &tx, response);
            }
            Event::Timeout { tx } if self.op_legs.owns(&tx) => {
                self.on_op_timeout(now, &tx);
            }
            Event::Response { tx, response } => {
                debug!(status = response.status, "response to our request");
                if response.status >= 200 {
                    self.our_requests.remove(&tx);
                }
            }
            Event::Timeout { tx } => {
                debug!(?tx, "transaction timed out");
                self.our_requests.remove(&tx);
            }
            Event::AckTimeout { call_id, .. } => {
                if let Some(call) = self.calls.get(&call_id) {
                    let _e = call.span().enter();
                    warn!("our 200 OK was never acknowledged; hanging up");
                }
                self.end_call(now, &call_id, EndReason::NoAck);
            }
        }
    }

    pub(super) fn respond(&mut self, now: Instant, tx: &TxKey, mut r: Response) {
        r.headers
            .push(HeaderName::Server, self.settings.user_agent.as_str());
        if let Err(e) = self.endpoint.respond(now, tx, r) {
            debug!(error = %e, "could not respond");
        }
    }

    pub(super) fn reply(&mut self, now: Instant, tx: &TxKey, req: &Request, status: u16) {
        let r = req.response(status);
        let r = with_to_tag(r, req, &mut self.tokens);
        self.respond(now, tx, r);
    }

    pub(super) fn on_request(&mut self, now: Instant, tx: TxKey, peer: Peer, req: Request) {
        // RFC 3261 §16.3 / issue: a request that ran out of hops is refused.
        if let Ok(Some(0)) = req.headers.max_forwards() {
            if req.method != Method::Ack {
                return self.reply(now, &tx, &req, 483);
            }
        }
        // §8.2.2.3: option tags we do not support.
        if req.method != Method::Ack && req.method != Method::Cancel {
            let unsupported: Vec<&str> = req
                .headers
                .tokens(&HeaderName::Require)
                .filter(|t| !SUPPORTED.iter().any(|s| s.eq_ignore_ascii_case(t)))
                .collect();
            if !unsupported.is_empty() {
                let mut r = with_to_tag(req.response(420), &req, &mut self.tokens);
                r.headers
                    .push(HeaderName::Unsupported, unsupported.join(", "));
                return self.respond(now, &tx, r);
            }
        }
        // our calls to operators: their BYE ends the bridged call
        let Some(req) = self.on_op_request(now, &tx, req) else {
            return;
        };
        match &req.method {
            Method::Register => self.on_register(now, tx, peer, req),
            Method::Options => {
                let mut r = with_to_tag(req.response(200), &req, &mut self.tokens);
                r.headers.push(HeaderName::Allow, ALLOW);
                r.headers.push(HeaderName::Accept, "application/sdp");
                r.headers.push(HeaderName::AcceptLanguage, "ru, en");
                r.headers.push(HeaderName::Supported, SUPPORTED.join(", "));
                self.respond(now, &tx, r);
            }
            Method::Invite => {
                if req
                    .headers
                    .to_addr()
                    .ok()
                    .and_then(|t| t.tag().map(str::to_string))
                    .is_some()
                {
                    self.on_reinvite(now, tx, req);
                } else {
                    self.on_invite(now, tx, peer, req);
                }
            }
            Method::Bye => {
                if let Some(id) = self.in_dialog(now, &tx, &req) {
                    self.reply(now, &tx, &req, 200);
                    if let Some(mut call) = self.calls.remove(&id) {
                        let _e = call.span().clone().entered();
                        // a BYE in the early dialog ends the INVITE too (RFC 3261 §15.1.2)
                        if let Some((invite_tx, r)) = call.refuse_ringing(487) {
                            self.respond(now, &invite_tx, r);
                        }
                        info!(
                            talked_ms = now
                                .saturating_duration_since(call.answered_at())
                                .as_millis() as u64,
                            "caller hung up"
                        );
                        self.ended(now, &id, &mut call, EndReason::CallerHungUp);
                    }
                }
            }
            Method::Refer => self.refer_outside_dialog(now, &tx, &req),
            Method::Info | Method::Update => {
                if let Some(id) = self.in_dialog(now, &tx, &req) {
                    if req.method == Method::Update {
                        self.refresh_session(now, &id);
                    } else if let Some(digit) = info_digit(&req) {
                        self.digit(now, &id, digit, DtmfVia::Info);
                    }
                    self.reply(now, &tx, &req, 200)
                }
            }
            Method::Ack | Method::Cancel => {
                // ACK never gets a response; a CANCEL reaching us matched nothing.
                if req.method == Method::Cancel {
                    self.reply(now, &tx, &req, 481);
                }
            }
            m if is_known_method(m) => {
                let mut r = with_to_tag(req.response(405), &req, &mut self.tokens);
                r.headers.push(HeaderName::Allow, ALLOW);
                self.respond(now, &tx, r);
            }
            _ => {
                let mut r = with_to_tag(req.response(501), &req, &mut self.tokens);
                r.headers.push(HeaderName::Allow, ALLOW);
                self.respond(now, &tx, r);
            }
        }
    }

    pub(super) fn on_register(&mut self, now: Instant, tx: TxKey, peer: Peer, req: Request) {
        let operators = &self.settings.operators;
        let result = self.registrar.handle_register(now, peer, &req, |user| {
            operators
                .iter()
                .find(|o| o.login == user)
                .map(|o| o.secret.clone())
        });
        for change in &result.changes {
            info!(?change, "registration");
        }
        self.stats.publish_registrations(&self.registrar);
        self.registrations_changed(now, &result.changes);
        self.respond(now, &tx, result.response);
    }

    /// Take a mid-dialog request into its call's dialog (RFC 3261 §12.2.2) and return the
    /// call's id. When it fits no call it is answered here — 481 for an unknown dialog, 500
    /// for a CSeq lower than the caller's last, 400 for an unreadable CSeq or Contact — and
    /// `None` is returned.
    pub(super) fn in_dialog(&mut self, now: Instant, tx: &TxKey, req: &Request) -> Option<String> {
        let id = req.headers.call_id().ok().map(str::to_string);
        let result = match id.as_deref().and_then(|id| self.calls.get_mut(id)) {
            Some(call) => call.in_dialog(req),
            None => Err(DialogError::NotThisDialog),
        };
        match result {
            Ok(()) => id,
            Err(e) => {
                let status = match e {
                    DialogError::OutOfOrder { .. } => 500,
                    DialogError::NotThisDialog => 481,
                    _ => 400,
                };
                debug!(error = %e, status, "mid-dialog request refused");
                self.reply(now, tx, req, status);
                None
            }
        }
    }
}
