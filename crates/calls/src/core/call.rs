//! The caller's call: the INVITE taken (line, trunk admission, SDP, session timer, RTP
//! ports, the appeal), ringing and the answer, re-INVITE and UPDATE, and the call's end.

use super::*;

impl Core {
    pub(super) fn on_invite(&mut self, now: Instant, tx: TxKey, peer: Peer, req: Request) {
        let Ok(call_id) = req.headers.call_id().map(str::to_string) else {
            return self.reply(now, &tx, &req, 400);
        };
        if self.calls.contains_key(&call_id) {
            // same Call-ID, no To tag, new transaction: a merged/looped request (§8.2.2.2)
            return self.reply(now, &tx, &req, 482);
        }
        if self.draining {
            let mut r = with_to_tag(req.response(503), &req, &mut self.tokens);
            r.headers.push(HeaderName::RetryAfter, "60");
            return self.respond(now, &tx, r);
        }
        let dialled = req.uri.user().unwrap_or("").to_string();
        if feature_codes::FeatureCodes::is_code(&dialled) {
            return self.on_feature_invite(now, tx, peer, req, &dialled);
        }
        let Some(line) = self.settings.line_for(&dialled).cloned() else {
            info!(dialled = %dialled, "no line for the dialled number");
            return self.reply(now, &tx, &req, 404);
        };
        // Trunk admission: by source address, or by digest when the trunk has credentials.
        if self.settings.trunk_for(peer.addr.ip()).is_none() {
            let creds: Vec<(String, String)> = self
                .settings
                .trunks
                .iter()
                .filter_map(|t| t.credentials.clone())
                .collect();
            if creds.is_empty() {
                info!(source = %peer.addr.ip(), "INVITE from an address no trunk allows");
                return self.reply(now, &tx, &req, 403);
            }
            let outcome = req.headers.get(&HeaderName::Authorization).map(|v| {
                self.trunk_auth.verify(now, &req.method, v, |user| {
                    creds
                        .iter()
                        .find(|(u, _)| u == user)
                        .map(|(_, p)| sip::auth::Secret::Plain(p.clone()))
                })
            });
            match outcome {
                Some(AuthOutcome::Ok { .. }) => {}
                Some(AuthOutcome::Stale) | None => {
                    let stale = matches!(outcome, Some(AuthOutcome::Stale));
                    let mut r = with_to_tag(req.response(401), &req, &mut self.tokens);
                    for c in self.trunk_auth.challenge(now, stale) {
                        r.headers.push(HeaderName::WwwAuthenticate, c);
                    }
                    return self.respond(now, &tx, r);
                }
                Some(AuthOutcome::Failed(_)) => return self.reply(now, &tx, &req, 403),
            }
        }
        // Offer: in the INVITE (usual) or none (we offer in the 200, the answer comes in ACK).
        let neg = match answer_offer(&req, &mut self.tokens) {
            Ok(n) => n,
            Err(r) => return self.respond(now, &tx, r),
        };
        // RFC 4028: too small a session interval is refused with our minimum.
        let se = req
            .headers
            .get(&HeaderName::SessionExpires)
            .and_then(|v| v.split(';').next())
            .and_then(|v| v.trim().parse::<u32>().ok());
        if let Some(se) = se {
            if se < MIN_SE {
                let mut r = with_to_tag(req.response(422), &req, &mut self.tokens);
                r.headers.push(HeaderName::MinSe, MIN_SE.to_string());
                return self.respond(now, &tx, r);
            }
        }
        let Ok(from) = req.headers.from_addr() else {
            return self.reply(now, &tx, &req, 400);
        };
        let dialog = match Dialog::uas(&req, &self.tokens.lowercase(10), &mut self.tokens) {
            Ok(d) => d,
            Err(DialogError::NoContact) => {
                let mut r = with_to_tag(req.response(400), &req, &mut self.tokens);
                r.reason = "Bad Request - INVITE without Contact".into();
                return self.respond(now, &tx, r);
            }
            Err(e) => {
                debug!(error = %e, "INVITE creates no dialog");
                return self.reply(now, &tx, &req, 400);
            }
        };
        let caller = from.uri.user().unwrap_or("anonymous").to_string();
        // The appeal is written at once, before the call is answered (PRODUCT.md step 2).
        let appeal = self.mint_appeal(now);
        self.out.appeal(
            &appeal,
            AppealRecord::Arrived {
                call_id: call_id.clone(),
                line: line.id.clone(),
                caller: caller.clone(),
            },
        );
        let span = info_span!(
            "call",
            call_id = %call_id,
            appeal = %appeal,
            line = %line.id,
            caller = %Caller::new(&caller, self.settings.redact_callers),
        );
        let bind_ip = self.last_local.unwrap_or(peer.addr).ip();
        let Some(ports) = self.ports.allocate(bind_ip) else {
            {
                let _e = span.enter();
                warn!("no free RTP port in the configured range; refusing the call");
            }
            let mut r = with_to_tag(req.response(503), &req, &mut self.tokens);
            r.headers.push(HeaderName::RetryAfter, "5");
            self.respond(now, &tx, r);
            self.out.appeal(
                &appeal,
                AppealRecord::Ended(CallEnded {
                    reason: EndReason::NoMediaPort,
                    answered: false,
                    talked: Duration::ZERO,
                    ivr: None,
                    operator: None,
                }),
            );
            return;
        };
        let rtp_port = ports;
        let session_expires = se.map(|s| s.min(self.settings.session_expires).max(MIN_SE));
        let call = Call {
            span: span.clone(),
            appeal,
            peer,
            local: self.last_local.unwrap_or(peer.addr),
            state: CallState::Ringing,
            invite_tx: Some(tx.clone()),
            dialog,
            neg,
            line: line.clone(),
            prompts: self.settings.prompts.clone(),
            caller: caller.clone(),
            menu: MenuState::default(),
            play_gen: 0,
            queue: QueueState::default(),
            operator: None,
            message_end: None,
            rtp_port,
            ports: Some(ports),
            leg: None,
            dtmf_via: None,
            sdp_session: self.tokens.number(1..u32::MAX as u64),
            sdp_version: 1,
            session_expires,
            answer_at: now + line.ring,
            expires_at: None,
            end_at: now + self.settings.max_call,
            invite: req,
        };
        {
            let _e = span.enter();
            info!(dialled = %dialled, transport = peer.transport.as_str(), "call arrived");
        }
        self.stats.calls_total.fetch_add(1, Ordering::Relaxed);
        let ringing = self.call_response(&call, 180);
        self.out.arm(call.answer_at, &call_id, TimerKind::Answer);
        self.out.arm(call.end_at, &call_id, TimerKind::MaxDuration);
        self.calls.insert(call_id.clone(), call);
        self.respond(now, &tx, ringing);
        if line.ring.is_zero() {
            self.answer(now, &call_id);
        }
    }

    /// A response to the call's INVITE, in its dialog (our To tag, Contact).
    pub(super) fn call_response(&self, call: &Call, status: u16) -> Response {
        let mut r = call.invite.response(status);
        r.headers
            .set(HeaderName::To, call.dialog.local_uri.to_string());
        // §12.1.1: the Record-Route of the INVITE goes back in dialog-creating responses
        for rr in call.invite.headers.values(&HeaderName::RecordRoute) {
            r.headers.push(HeaderName::RecordRoute, rr);
        }
        r.headers.push(HeaderName::Contact, self.contact(call));
        r
    }

    pub(super) fn contact(&self, call: &Call) -> String {
        let user = call.invite.uri.user().unwrap_or("hotline");
        let transport = match call.peer.transport {
            sip::Transport::Udp => "",
            sip::Transport::Tcp => ";transport=tcp",
        };
        format!(
            "<sip:{}@{}{transport}>",
            sip::message::escape(user, |c| c.is_ascii_alphanumeric() || "-_.+".contains(c)),
            host_port(call.local)
        )
    }

    pub(super) fn local_ip(&self, call: &Call) -> IpAddr {
        self.settings.rtp_address.unwrap_or(call.local.ip())
    }

    pub(super) fn answer(&mut self, now: Instant, call_id: &str) {
        let Some(call) = self.calls.get(call_id) else {
            return;
        };
        if call.state != CallState::Ringing {
            return;
        }
        let Some(tx) = call.invite_tx.clone() else {
            return;
        };
        let mut r = self.call_response(call, 200);
        let body = match call.neg {
            Some(neg) => neg.render(
                self.local_ip(call),
                call.rtp_port,
                call.sdp_session,
                call.sdp_version,
            ),
            // no offer in the INVITE: we offer, the caller answers in the ACK
            None => sdp::offer(
                self.local_ip(call),
                call.rtp_port,
                call.sdp_session,
                call.sdp_version,
            ),
        };
        r.headers.push(HeaderName::Allow, ALLOW);
        r.headers.push(HeaderName::Supported, SUPPORTED.join(", "));
        with_sdp(&mut r, body, call.session_expires);
        let span = call.span.clone();
        let se = call.session_expires;
        let wall = self.wallclock(now);
        if let Some(call) = self.calls.get_mut(call_id) {
            if let Some(ports) = call.ports.take() {
                let _e = span.enter();
                // in `auto`, tones are only listened for when the peer cannot send RFC 4733
                let inband = match call.line.dtmf {
                    DtmfMode::Inband => true,
                    DtmfMode::Auto => call.neg.is_none_or(|n| n.telephone_event.is_none()),
                    DtmfMode::Rfc4733 | DtmfMode::Info => false,
                };
                let leg = LegId::from(call_id);
                self.out.media(MediaCommand::Start {
                    leg: leg.clone(),
                    appeal: call.appeal.clone(),
                    port: ports,
                    neg: call.neg.unwrap_or_else(Negotiated::our_offer),
                    prompts: call.prompts.clone(),
                    greeting: call
                        .line
                        .greeting
                        .clone()
                        .filter(|_| call.line.menu.is_none()),
                    inband,
                    record: call.line.record,
                    timeout: self.settings.rtp_timeout,
                });
                call.leg = Some(leg);
            }
            call.state = CallState::Answered;
            call.dialog.confirm();
            call.invite_tx = None;
            call.answer_at = now;
            if let Some(menu) = call.line.menu.clone() {
                call.menu.in_ivr = true;
                self.stats.calls_in_ivr.fetch_add(1, Ordering::Relaxed);
                call.menu.session = Some(
                    ivr::IvrSession::new(menu, &call.line.start, now, wall)
                        .with_caller(call.caller.clone()),
                );
            }
            if let Some(se) = se {
                let at = now + Duration::from_secs(se as u64);
                call.expires_at = Some(at);
                self.out.arm(at, call_id, TimerKind::SessionExpiry);
            }
        }
        {
            let _e = span.enter();
            info!("answered");
        }

        self.stats.calls_answered.fetch_add(1, Ordering::Relaxed);
        self.respond(now, &tx, r);
        self.drive_ivr(now, call_id);
    }

    pub(super) fn on_reinvite(&mut self, now: Instant, tx: TxKey, req: Request) {
        let Some(id) = self.in_dialog(now, &tx, &req) else {
            return;
        };
        let offer = match answer_offer(&req, &mut self.tokens) {
            Ok(n) => n,
            Err(r) => return self.respond(now, &tx, r),
        };
        self.refresh_session(now, &id);
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if let Some(n) = offer {
            call.neg = Some(n);
            if let Some(leg) = &call.leg {
                self.out.media(MediaCommand::Update {
                    leg: leg.clone(),
                    neg: n,
                    timeout: self.settings.rtp_timeout,
                });
            }
        }
        call.sdp_version += 1;
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        let _e = call.span.clone().entered();
        let neg = call.neg.unwrap_or_else(Negotiated::our_offer);
        info!(direction = neg.direction.as_str(), "re-INVITE");
        let mut r = req.response(200);
        let body = neg.render(
            self.local_ip(call),
            call.rtp_port,
            call.sdp_session,
            call.sdp_version,
        );
        r.headers.push(HeaderName::Contact, self.contact(call));
        with_sdp(&mut r, body, call.session_expires);
        self.respond(now, &tx, r);
    }

    /// A re-INVITE or UPDATE refreshed the session (RFC 4028).
    pub(super) fn refresh_session(&mut self, now: Instant, id: &str) {
        if let Some(call) = self.calls.get_mut(id) {
            if let Some(se) = call.session_expires {
                let at = now + Duration::from_secs(se as u64);
                call.expires_at = Some(at);
                self.out.arm(at, id, TimerKind::SessionExpiry);
            }
        }
    }
    /// End a call from our side: BYE when answered, a final error while ringing.
    pub(super) fn end_call(&mut self, now: Instant, call_id: &str, why: EndReason) {
        let Some(mut call) = self.calls.remove(call_id) else {
            return;
        };
        let _e = call.span.clone().entered();
        info!(reason = why.as_str(), "hanging up");
        self.ended(now, &mut call, why);
        match call.state {
            CallState::Ringing => {
                if let Some(tx) = call.invite_tx.take() {
                    let mut r = call.invite.response(480);
                    r.headers
                        .set(HeaderName::To, call.dialog.local_uri.to_string());
                    self.respond(now, &tx, r);
                }
            }
            CallState::Answered => {
                let bye = self.build_bye(&mut call);
                match self.endpoint.send_request(now, call.peer, bye) {
                    Ok(tx) => {
                        self.our_requests.insert(tx);
                    }
                    Err(e) => debug!(error = %e, "could not send BYE"),
                }
            }
        }
    }

    /// Write the end of a call to its appeal and release its media.
    pub(super) fn ended(&mut self, now: Instant, call: &mut Call, reason: EndReason) {
        // Its long timers go with it: left in the set, they would stay until they fire (the
        // maximum duration's after four hours by default), about 130 bytes a call.
        let id = &call.dialog.id.call_id;
        for (at, kind) in [
            (call.answer_at, TimerKind::Answer),
            (call.end_at, TimerKind::MaxDuration),
        ]
        .into_iter()
        .chain(call.expires_at.map(|at| (at, TimerKind::SessionExpiry)))
        {
            self.out.disarm(at, id, kind);
        }
        if let Some(leg) = call.leg.take() {
            self.out.media(MediaCommand::Close { leg });
        }
        call.ports = None;
        self.ports.release(call.rtp_port);
        if std::mem::take(&mut call.menu.in_ivr) {
            self.stats.calls_in_ivr.fetch_sub(1, Ordering::Relaxed);
        }
        let (at, id) = (self.wallclock(now), call.dialog.id.call_id.clone());
        let abandoned = crate::live::QueueExit::Abandoned;
        queue_figures!(self, at, now).leave(call, &id, abandoned);
        if let Some(id) = call.queue.acd_caller.take() {
            self.acd_callers.remove(&id);
            if let Some(acd) = self.acd.as_mut() {
                if let Err(e) = acd.caller_left(now, id) {
                    debug!(error = %e, "caller already out of the ACD");
                }
            }
        }
        let answered = call.state == CallState::Answered;
        let talked = if answered {
            now.saturating_duration_since(call.answer_at)
        } else {
            Duration::ZERO
        };
        self.caller_gone_from_trunk(now, &call.dialog.id.call_id);
        let operator = call.operator.take().map(|conn| {
            self.caller_gone_from_operator(now, &conn);
            (
                conn.operator.to_string(),
                now.saturating_duration_since(conn.since),
            )
        });
        if call.appeal.is_empty() {
            return; // a feature-code call writes no appeal
        }
        self.out.appeal(
            &call.appeal,
            AppealRecord::Ended(CallEnded {
                reason,
                answered,
                talked,
                ivr: call.menu.end,
                operator,
            }),
        );
    }

    /// A BYE in the call's dialog (RFC 3261 §12.2.1.1, §15.1.1).
    pub(super) fn build_bye(&mut self, call: &mut Call) -> Request {
        let mut bye = call.dialog.request(
            Method::Bye,
            &host_port(call.local),
            call.peer.transport,
            &mut self.tokens,
        );
        bye.headers
            .push(HeaderName::UserAgent, self.settings.user_agent.as_str());
        bye
    }
}

/// Our SDP as the body of `r`, with the session timer we granted (RFC 4028: the caller is
/// the refresher).
fn with_sdp(r: &mut Response, body: String, session_expires: Option<u32>) {
    if let Some(se) = session_expires {
        r.headers
            .push(HeaderName::SessionExpires, format!("{se};refresher=uac"));
        r.headers.push(HeaderName::Require, "timer");
    }
    r.headers.push(HeaderName::ContentType, "application/sdp");
    r.body = body.into_bytes();
}
