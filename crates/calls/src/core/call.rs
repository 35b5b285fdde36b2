//! The router's side of the caller's call (the call itself is `callers`): the INVITE taken
//! (line, trunk admission, SDP, session timer, RTP ports, the appeal), the answer, re-INVITE
//! and UPDATE, and the call's end — where the call meets the other parts (the menu, the
//! queue, the operator's and the trunk's legs).

use super::*;

impl Core {
    pub(super) fn on_invite(&mut self, now: Instant, tx: TxKey, peer: Peer, req: Request) {
        let Ok(call_id) = req.headers.call_id().map(str::to_string) else {
            return self.reply(now, &tx, &req, 400);
        };
        if self.calls.contains(&call_id) {
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
        let session_expires = se.map(|s| s.min(self.settings.session_expires).max(MIN_SE));
        {
            let _e = span.enter();
            info!(dialled = %dialled, transport = peer.transport.as_str(), "call arrived");
        }
        self.stats.calls_total.fetch_add(1, Ordering::Relaxed);
        let arrival = Arrival {
            span,
            appeal,
            peer,
            local: self.last_local.unwrap_or(peer.addr),
            tx: tx.clone(),
            invite: req,
            dialog,
            neg,
            line: line.clone(),
            prompts: self.settings.prompts.clone(),
            caller,
            rtp_port: ports,
            sdp_session: self.tokens.number(1..u32::MAX as u64),
            session_expires,
            answer_at: now + line.ring,
            end_at: now + self.settings.max_call,
            message_end: None,
        };
        let call = self.calls.insert(&call_id, arrival);
        call.arm_timers(&mut self.out, &call_id);
        let ringing = call.response(180);
        self.respond(now, &tx, ringing);
        if line.ring.is_zero() {
            self.answer(now, &call_id);
        }
    }

    /// Answers a ringing call (its 200, media and menu: `Call::answer`), then drives its menu.
    pub(super) fn answer(&mut self, now: Instant, call_id: &str) {
        let wall = self.wallclock(now);
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        let Some((tx, ok)) = call.answer(
            now,
            wall,
            call_id,
            &mut self.out,
            &self.settings,
            &self.stats,
        ) else {
            return;
        };
        self.respond(now, &tx, ok);
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
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let ok = call.reinvite(now, &id, &req, offer, &mut self.out, &self.settings);
        self.respond(now, &tx, ok);
    }

    /// A re-INVITE or UPDATE refreshed the session (RFC 4028).
    pub(super) fn refresh_session(&mut self, now: Instant, id: &str) {
        if let Some(call) = self.calls.get_mut(id) {
            call.refresh_session(now, id, &mut self.out);
        }
    }

    /// End a call from our side: BYE when answered, a final error while ringing.
    pub(super) fn end_call(&mut self, now: Instant, call_id: &str, why: EndReason) {
        let Some(mut call) = self.calls.remove(call_id) else {
            return;
        };
        let _e = call.span().clone().entered();
        info!(reason = why.as_str(), "hanging up");
        self.ended(now, call_id, &mut call, why);
        if let Some((tx, r)) = call.refuse_ringing(480) {
            self.respond(now, &tx, r);
        }
        if let Some((peer, bye)) = call.bye(&self.settings, &mut self.tokens) {
            match self.endpoint.send_request(now, peer, bye) {
                Ok(tx) => {
                    self.our_requests.insert(tx);
                }
                Err(e) => debug!(error = %e, "could not send BYE"),
            }
        }
    }

    /// Write the end of a call to its appeal and release its media.
    pub(super) fn ended(
        &mut self,
        now: Instant,
        call_id: &str,
        call: &mut Call,
        reason: EndReason,
    ) {
        let (answered, talked) = call.release(now, &mut self.out, self.ports.as_mut(), &self.stats);
        let (at, id) = (self.wallclock(now), call_id.to_owned());
        let abandoned = crate::live::QueueExit::Abandoned;
        QueueFigures::new(&mut self.out, &self.stats, at, now).leave(call, &id, abandoned);
        if let Some(id) = self.queues.leave_acd(call.queue_mut()) {
            if let Some(acd) = self.acd.as_mut() {
                if let Err(e) = acd.caller_left(now, id) {
                    debug!(error = %e, "caller already out of the ACD");
                }
            }
        }
        self.caller_gone_from_trunk(now, call_id);
        let operator = call.disconnect().map(|conn| {
            self.caller_gone_from_operator(now, &conn);
            (conn.operator().to_string(), conn.talked(now))
        });
        if call.appeal().is_empty() {
            return; // a feature-code call writes no appeal
        }
        self.out.appeal(
            call.appeal(),
            AppealRecord::Ended(CallEnded {
                reason,
                answered,
                talked,
                ivr: call.menu().end(),
                operator,
            }),
        );
    }

    /// A key press: kept when the line's DTMF mode takes this kind (in `auto`, the kind that
    /// came first in the call), handed to the waiting dialogue or else the call's voice menu,
    /// then written to the appeal.
    pub(super) fn digit(&mut self, now: Instant, call_id: &str, digit: char, via: DtmfVia) {
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        self.stats.count_digit(via);
        let _e = call.span().clone().entered();
        if let Err(wanted) = call.takes_digit(via) {
            debug!(%digit, via = via.as_str(), kept = wanted.as_str(), "digit of another DTMF kind ignored");
            return;
        }
        if via != DtmfVia::Inband {
            // no need to listen for tones any more
            if let Some(leg) = call.leg() {
                self.out
                    .media(MediaCommand::StopInband { leg: leg.clone() });
            }
        }
        info!(%digit, via = via.as_str(), "DTMF");
        let appeal = call.appeal().to_owned();
        if self.waiting_digit(now, call_id, digit) {
            self.out.appeal(&appeal, AppealRecord::Digit { digit, via });
            self.drain(now);
            return;
        }
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        let in_menu = call.menu_mut().digit(now, digit);
        if in_menu {
            self.drive_ivr(now, call_id);
        }
        self.out.appeal(&appeal, AppealRecord::Digit { digit, via });
        if in_menu {
            self.drain(now);
        }
    }

    /// Drives the call's voice menu (`MenuState::drive`) and carries out each step it asks
    /// of the other parts, until it waits.
    pub(super) fn drive_ivr(&mut self, now: Instant, call_id: &str) {
        let at = self.wallclock(now);
        loop {
            let Some(call) = self.calls.get_mut(call_id) else {
                return;
            };
            let (menu, mut media) = call.menu_parts();
            let Some(step) = menu.drive(now, call_id, &mut media, &mut self.out, &self.stats)
            else {
                return;
            };
            let _e = call.span().clone().entered();
            let appeal = call.appeal().to_owned();
            match step {
                MenuStep::EnterQueue { queue, priority } => {
                    QueueFigures::new(&mut self.out, &self.stats, at, now)
                        .enter(call, call_id, &queue);
                    call.queue_mut().wait_from(now);
                    let caller = call.caller().to_owned();
                    call.queue_mut().start_waiting(&caller);
                    let join = call.queue().acd_caller().is_none().then(|| {
                        let prio =
                            u8::try_from(priority.clamp(0, i32::from(u8::MAX))).unwrap_or(u8::MAX);
                        (queue.clone(), prio)
                    });
                    // The call stays up and waits: music on hold from the next tick (the
                    // queue node's prompt has ended), or silence when the queue has none.
                    if let Some(music) = self.settings.moh_for(&queue) {
                        call.music(&mut self.out, Some(music));
                    }
                    self.out.appeal(
                        &appeal,
                        AppealRecord::IvrStep(IvrStep::EnteredQueue { queue, priority }),
                    );
                    if let Some((queue, prio)) = join {
                        self.queue_join(now, call_id, &queue, prio);
                    }
                }
                MenuStep::Transfer { number } => {
                    self.out.appeal(
                        &appeal,
                        AppealRecord::IvrStep(IvrStep::Transferred {
                            number: number.clone(),
                        }),
                    );
                    if !self.ivr_transfer(now, call_id, &number) {
                        warn!("the transfer cannot be dialled");
                        self.ivr_transfer_failed(now, call_id);
                    }
                }
                MenuStep::Callback { number, queue } => {
                    self.out.appeal(
                        &appeal,
                        AppealRecord::IvrStep(IvrStep::CallbackRequested {
                            number: number.clone(),
                            queue: queue.clone(),
                        }),
                    );
                    if let Some(queue) = queue {
                        let prio = call.queue().priority();
                        self.book_callback_in(now, call_id, &queue, prio, &number);
                    }
                    // the session plays its closing prompt, then asks for the hang-up
                }
                MenuStep::StartRecording { max } => self.start_message(now, call_id, max),
                MenuStep::Hangup => self.end_call(now, call_id, EndReason::IvrHangup),
            }
        }
    }

    /// Records the caller's message (at most `max`, then the call ends) and writes it on the
    /// appeal (outcome `message`): the menu's `message` node and a queue's overflow to a
    /// message both come here.
    pub(super) fn start_message(&mut self, now: Instant, call_id: &str, max: Duration) {
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        call.menu_mut().set_end(Some(IvrEnd::Message));
        let appeal = call.appeal().to_owned();
        let file = call.leg().cloned().map(|leg| {
            let name = format!("{appeal}-message");
            let file = crate::io::recording_file(&self.settings.recordings_dir, &name);
            self.out.media(MediaCommand::RecordMessage { leg, name });
            file
        });
        let Some(file) = file else {
            warn!("cannot record the message; ending the call");
            self.end_call(now, call_id, EndReason::IvrHangup);
            return;
        };
        info!(file = %file.display(), max_s = max.as_secs(), "recording a message");
        call.end_message_at(&mut self.out, call_id, now + max, TimerKind::MessageEnd);
        self.out.appeal(
            &appeal,
            AppealRecord::IvrStep(IvrStep::Message {
                file: file.display().to_string(),
                max,
            }),
        );
    }
}
