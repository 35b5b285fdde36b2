//! The caller's call, a part that owns its state: the table of calls ([`Calls`]) and each
//! [`Call`] — its dialog with the caller, the INVITE transaction while it rings, the SDP,
//! the RTP leg, the session timer and its timers. Its fields are its own: the other parts
//! reach a call through the methods here (the menu's and the queue's state through
//! [`Call::menu_mut`] / [`Call::queue_mut`], which those parts own), and the SIP it says goes
//! out through what the methods return or the [`Out`] sink they are given.

use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CallState {
    /// 180 sent; the 200 goes out at `answer_at`.
    Ringing,
    /// 200 sent.
    Answered,
}

/// What a new call starts from: the INVITE taken (by `Core::on_invite` or a feature code).
pub(super) struct Arrival {
    pub span: Span,
    /// The appeal the call is written down as (empty: a feature-code call, none).
    pub appeal: String,
    pub peer: Peer,
    pub local: SocketAddr,
    pub tx: TxKey,
    pub invite: Request,
    pub dialog: Dialog,
    pub neg: Option<Negotiated>,
    pub line: LineSettings,
    pub prompts: Arc<PromptCache>,
    pub caller: String,
    /// The RTP/RTCP pair taken for the call.
    pub rtp_port: u16,
    pub sdp_session: u64,
    pub session_expires: Option<u32>,
    /// When the 200 goes out.
    pub answer_at: Instant,
    /// When the call reaches its longest duration.
    pub end_at: Instant,
    /// When a message being recorded (or a feature code's confirmation) ends.
    pub message_end: Option<Instant>,
}

pub(super) struct Call {
    span: Span,
    /// The appeal this call is written down as.
    appeal: String,
    peer: Peer,
    local: SocketAddr,
    state: CallState,
    invite_tx: Option<TxKey>,
    invite: Request,
    /// Our UAS dialog with the caller (tags, route set, remote target, CSeqs).
    dialog: Dialog,
    neg: Option<Negotiated>,
    /// The line's settings (greeting, DTMF mode, recording, menu) as they were when the call
    /// arrived: a reload does not change them for this call.
    line: LineSettings,
    /// The prompts of the configuration the call arrived under.
    prompts: Arc<PromptCache>,
    /// The caller's number (From), offered back by callback nodes.
    caller: String,
    /// The caller's walk through the line's voice menu (the menu's part).
    menu: MenuState,
    /// Number of the current playback; a finish of an older one is ignored.
    play_gen: u64,
    /// The caller's part in the queues (the queue's part).
    queue: QueueState,
    /// The operator the caller is bridged to.
    operator: Option<Connected>,
    /// When a message being recorded ends.
    message_end: Option<Instant>,
    rtp_port: u16,
    /// The RTP/RTCP pair taken when the INVITE arrived and not started yet (until the answer).
    ports: Option<u16>,
    /// The running RTP leg (from the answer on).
    leg: Option<LegId>,
    /// The kind of DTMF that won in `auto` mode (the first to arrive).
    dtmf_via: Option<DtmfVia>,
    sdp_session: u64,
    sdp_version: u64,
    session_expires: Option<u32>,
    answer_at: Instant,
    expires_at: Option<Instant>,
    end_at: Instant,
}

/// A call's media as another part drives it (the menu, the waiting dialogue): its leg,
/// prompts, line and appeal, and its playback number — borrowed from the call beside that
/// part's own state ([`Call::menu_parts`]).
pub(super) struct Media<'a> {
    span: &'a Span,
    appeal: &'a str,
    line: &'a LineSettings,
    prompts: &'a Arc<PromptCache>,
    leg: Option<&'a LegId>,
    play_gen: &'a mut u64,
}

impl Media<'_> {
    pub fn span(&self) -> &Span {
        self.span
    }

    pub fn appeal(&self) -> &str {
        self.appeal
    }

    pub fn line(&self) -> &LineSettings {
        self.line
    }

    pub fn prompts(&self) -> &PromptCache {
        self.prompts
    }

    pub fn has_leg(&self) -> bool {
        self.leg.is_some()
    }

    /// A new playback number: the end of whatever played before is not taken any more.
    pub fn new_playback(&mut self) {
        *self.play_gen += 1;
    }

    /// Plays `seq` on the call's leg under the current playback number (its end comes back
    /// as `PlaybackFinished` with it).
    pub fn play(&self, out: &mut Out, seq: PromptSequence) {
        if let Some(leg) = self.leg {
            out.media(MediaCommand::Play {
                leg: leg.clone(),
                seq,
                generation: *self.play_gen,
            });
        }
    }

    /// Silence from the next tick; the stopped playback's end is never taken (a new number).
    pub fn stop_playback(&mut self, out: &mut Out) {
        self.new_playback();
        if let Some(leg) = self.leg {
            out.media(MediaCommand::StopPlayback { leg: leg.clone() });
        }
    }

    /// Loops `music` (a queue's music on hold) on the call's leg; silence for `None`.
    pub fn music(&self, out: &mut Out, music: Option<&PromptName>) {
        let Some(leg) = self.leg.cloned() else {
            return;
        };
        out.media(match music {
            Some(music) => MediaCommand::PlayMoh {
                leg,
                prompts: self.prompts.clone(),
                music: music.clone(),
            },
            None => MediaCommand::StopPlayback { leg },
        });
    }
}

/// The calls by Call-ID.
#[derive(Default)]
pub(super) struct Calls {
    calls: HashMap<String, Call>,
}

impl Calls {
    /// Takes a new call in (ringing); the call's own timers are its caller's to arm
    /// ([`Call::arm_timers`]).
    pub fn insert(&mut self, call_id: &str, a: Arrival) -> &mut Call {
        let call = Call {
            span: a.span,
            appeal: a.appeal,
            peer: a.peer,
            local: a.local,
            state: CallState::Ringing,
            invite_tx: Some(a.tx),
            invite: a.invite,
            dialog: a.dialog,
            neg: a.neg,
            line: a.line,
            prompts: a.prompts,
            caller: a.caller,
            menu: MenuState::default(),
            play_gen: 0,
            queue: QueueState::default(),
            operator: None,
            message_end: a.message_end,
            rtp_port: a.rtp_port,
            ports: Some(a.rtp_port),
            leg: None,
            dtmf_via: None,
            sdp_session: a.sdp_session,
            sdp_version: 1,
            session_expires: a.session_expires,
            answer_at: a.answer_at,
            expires_at: None,
            end_at: a.end_at,
        };
        self.calls
            .entry(call_id.to_owned())
            .insert_entry(call)
            .into_mut()
    }

    pub fn get(&self, call_id: &str) -> Option<&Call> {
        self.calls.get(call_id)
    }

    pub fn get_mut(&mut self, call_id: &str) -> Option<&mut Call> {
        self.calls.get_mut(call_id)
    }

    pub fn contains(&self, call_id: &str) -> bool {
        self.calls.contains_key(call_id)
    }

    /// Takes the call out of the table (it is ending).
    pub fn remove(&mut self, call_id: &str) -> Option<Call> {
        self.calls.remove(call_id)
    }

    pub fn len(&self) -> usize {
        self.calls.len()
    }

    pub fn ids(&self) -> Vec<String> {
        self.calls.keys().cloned().collect()
    }

    /// The call whose INVITE is transaction `tx` (still ringing).
    pub fn by_invite(&self, tx: &TxKey) -> Option<String> {
        self.calls
            .iter()
            .find(|(_, c)| c.invite_tx.as_ref() == Some(tx))
            .map(|(id, _)| id.clone())
    }

    /// The call bridged to the operator on our leg `leg_id`.
    pub fn bridged_over(&self, leg_id: &str) -> Option<String> {
        self.calls
            .iter()
            .find(|(_, c)| c.operator.as_ref().is_some_and(|o| o.leg() == Some(leg_id)))
            .map(|(id, _)| id.clone())
    }

    /// The call bridged to `operator` (whose leg is still up): its Call-ID and our leg's.
    pub fn bridged_to(&self, operator: &str) -> Option<(String, String)> {
        self.calls.iter().find_map(|(id, c)| {
            let conn = c.operator.as_ref()?;
            let leg = conn
                .leg()
                .filter(|_| conn.operator().as_str() == operator)?;
            Some((id.clone(), leg.to_owned()))
        })
    }

    /// After a burst the table gives its room back (each `Call` is stored inline).
    pub fn give_back_room(&mut self) {
        shrink_if_sparse(&mut self.calls);
    }
}

impl Call {
    pub fn span(&self) -> &Span {
        &self.span
    }

    /// The appeal the call is written down as (empty for a feature-code call).
    pub fn appeal(&self) -> &str {
        &self.appeal
    }

    /// The caller's number (From).
    pub fn caller(&self) -> &str {
        &self.caller
    }

    pub fn line(&self) -> &LineSettings {
        &self.line
    }

    pub fn prompts(&self) -> &Arc<PromptCache> {
        &self.prompts
    }

    /// Our address the caller's requests arrive on.
    pub fn local(&self) -> SocketAddr {
        self.local
    }

    pub fn set_local(&mut self, local: SocketAddr) {
        self.local = local;
    }

    /// The call's running RTP leg.
    pub fn leg(&self) -> Option<&LegId> {
        self.leg.as_ref()
    }

    /// When the call was answered (until then: when it will be).
    pub fn answered_at(&self) -> Instant {
        self.answer_at
    }

    /// Arms the answer's and the longest duration's timers.
    pub fn arm_timers(&self, out: &mut Out, call_id: &str) {
        out.arm(self.answer_at, call_id, TimerKind::Answer);
        out.arm(self.end_at, call_id, TimerKind::MaxDuration);
    }

    pub fn menu(&self) -> &MenuState {
        &self.menu
    }

    pub fn menu_mut(&mut self) -> &mut MenuState {
        &mut self.menu
    }

    pub fn queue(&self) -> &QueueState {
        &self.queue
    }

    pub fn queue_mut(&mut self) -> &mut QueueState {
        &mut self.queue
    }

    /// The operator the caller is bridged to.
    pub fn operator(&self) -> Option<&Connected> {
        self.operator.as_ref()
    }

    /// The caller is bridged to `conn`; the operator they were bridged to before, if any.
    pub fn connect(&mut self, conn: Connected) -> Option<Connected> {
        self.operator.replace(conn)
    }

    /// The caller is no longer bridged to an operator: the one they were.
    pub fn disconnect(&mut self) -> Option<Connected> {
        self.operator.take()
    }

    /// The operator the caller is bridged to hung up (their leg is gone; the caller stays
    /// for a transfer's target or ends).
    pub fn operator_hung_up(&mut self) {
        if let Some(c) = self.operator.as_mut() {
            c.hung_up();
        }
    }

    /// A message being recorded ends at `at` (its timer armed).
    pub fn end_message_at(&mut self, out: &mut Out, call_id: &str, at: Instant, kind: TimerKind) {
        self.message_end = Some(at);
        out.arm(at, call_id, kind);
    }

    /// Whether a timer of `kind` for `at` is still the call's (not re-armed or cleared).
    pub fn timer_is_current(&self, kind: TimerKind, at: Instant) -> bool {
        match kind {
            TimerKind::Answer => self.answer_at == at,
            TimerKind::SessionExpiry => self.expires_at == Some(at),
            TimerKind::MaxDuration => self.end_at == at,
            TimerKind::Ivr => self.menu.deadline() == Some(at),
            TimerKind::MessageEnd | TimerKind::FeatureCodeDone => self.message_end == Some(at),
            // the waiting dialogue checks its own deadline
            TimerKind::Waiting => true,
        }
    }

    /// Whether a digit of kind `via` counts on this line (in `auto`, the kind that came first
    /// in the call); the kind kept otherwise.
    pub fn takes_digit(&mut self, via: DtmfVia) -> Result<(), DtmfVia> {
        let wanted = match self.line.dtmf {
            DtmfMode::Auto => *self.dtmf_via.get_or_insert(via),
            DtmfMode::Rfc4733 => DtmfVia::Rfc4733,
            DtmfMode::Info => DtmfVia::Info,
            DtmfMode::Inband => DtmfVia::Inband,
        };
        if via == wanted {
            Ok(())
        } else {
            Err(wanted)
        }
    }

    /// A new playback number: the end of whatever played before is not taken any more.
    pub fn new_playback(&mut self) {
        self.play_gen += 1;
    }

    /// Whether a playback's end with `generation` is the current playback's.
    pub fn is_current_playback(&self, generation: u64) -> bool {
        self.play_gen == generation
    }

    /// The caller's steps through the voice menu so far (the appeal's `ivr_path`).
    pub fn ivr_path(&self) -> Vec<String> {
        self.menu.path()
    }

    /// The call's media, for a part that plays on it.
    pub fn media(&mut self) -> Media<'_> {
        self.menu_parts().1
    }

    /// The menu's state beside the call's media (the menu part drives both).
    pub fn menu_parts(&mut self) -> (&mut MenuState, Media<'_>) {
        let media = Media {
            span: &self.span,
            appeal: &self.appeal,
            line: &self.line,
            prompts: &self.prompts,
            leg: self.leg.as_ref(),
            play_gen: &mut self.play_gen,
        };
        (&mut self.menu, media)
    }

    /// Plays `seq` on the call's leg (see [`Media::play`]).
    pub fn play(&mut self, out: &mut Out, seq: PromptSequence) {
        self.media().play(out, seq);
    }

    /// See [`Media::stop_playback`].
    pub fn stop_playback(&mut self, out: &mut Out) {
        self.media().stop_playback(out);
    }

    /// See [`Media::music`].
    pub fn music(&mut self, out: &mut Out, music: Option<&PromptName>) {
        self.media().music(out, music);
    }

    /// A response to the call's INVITE, in its dialog (our To tag, Contact).
    pub fn response(&self, status: u16) -> Response {
        let mut r = self.invite.response(status);
        r.headers
            .set(HeaderName::To, self.dialog.local_uri.to_string());
        // §12.1.1: the Record-Route of the INVITE goes back in dialog-creating responses
        for rr in self.invite.headers.values(&HeaderName::RecordRoute) {
            r.headers.push(HeaderName::RecordRoute, rr);
        }
        r.headers.push(HeaderName::Contact, self.contact());
        r
    }

    fn contact(&self) -> String {
        let user = self.invite.uri.user().unwrap_or("hotline");
        let transport = match self.peer.transport {
            sip::Transport::Udp => "",
            sip::Transport::Tcp => ";transport=tcp",
        };
        format!(
            "<sip:{}@{}{transport}>",
            sip::message::escape(user, |c| c.is_ascii_alphanumeric() || "-_.+".contains(c)),
            host_port(self.local)
        )
    }

    /// The address our RTP for this call is on.
    pub fn media_ip(&self, settings: &Settings) -> IpAddr {
        settings.rtp_address.unwrap_or(self.local.ip())
    }

    /// Answers a ringing call: the 200 with our SDP (for the router to send on the returned
    /// transaction), the leg's `Start`, the voice menu's session, the session timer. `None`
    /// when the call is not ringing.
    pub fn answer(
        &mut self,
        now: Instant,
        wall: chrono::DateTime<chrono::Utc>,
        call_id: &str,
        out: &mut Out,
        settings: &Settings,
        stats: &Stats,
    ) -> Option<(TxKey, Response)> {
        if self.state != CallState::Ringing {
            return None;
        }
        let tx = self.invite_tx.take()?;
        let mut r = self.response(200);
        let ip = self.media_ip(settings);
        let body = match self.neg {
            Some(neg) => neg.render(ip, self.rtp_port, self.sdp_session, self.sdp_version),
            // no offer in the INVITE: we offer, the caller answers in the ACK
            None => sdp::offer(ip, self.rtp_port, self.sdp_session, self.sdp_version),
        };
        r.headers.push(HeaderName::Allow, ALLOW);
        r.headers.push(HeaderName::Supported, SUPPORTED.join(", "));
        with_sdp(&mut r, body, self.session_expires);
        if let Some(ports) = self.ports.take() {
            let _e = self.span.enter();
            // in `auto`, tones are only listened for when the peer cannot send RFC 4733
            let inband = match self.line.dtmf {
                DtmfMode::Inband => true,
                DtmfMode::Auto => self.neg.is_none_or(|n| n.telephone_event.is_none()),
                DtmfMode::Rfc4733 | DtmfMode::Info => false,
            };
            let leg = LegId::from(call_id);
            out.media(MediaCommand::Start {
                leg: leg.clone(),
                appeal: self.appeal.clone(),
                port: ports,
                neg: self.neg.unwrap_or_else(Negotiated::our_offer),
                prompts: self.prompts.clone(),
                greeting: self
                    .line
                    .greeting
                    .clone()
                    .filter(|_| self.line.menu.is_none()),
                inband,
                record: self.line.record,
                timeout: settings.rtp_timeout,
            });
            self.leg = Some(leg);
        }
        self.state = CallState::Answered;
        self.dialog.confirm();
        self.answer_at = now;
        self.menu.start(&self.line, &self.caller, now, wall, stats);
        self.refresh_session(now, call_id, out);
        {
            let _e = self.span.enter();
            info!("answered");
        }
        stats.calls_answered.fetch_add(1, Ordering::Relaxed);
        Some((tx, r))
    }

    /// A re-INVITE with `offer` (or none) in the dialog: the leg updated, our 200 with the
    /// SDP's next version; the session refreshed (RFC 4028).
    pub fn reinvite(
        &mut self,
        now: Instant,
        call_id: &str,
        req: &Request,
        offer: Option<Negotiated>,
        out: &mut Out,
        settings: &Settings,
    ) -> Response {
        self.refresh_session(now, call_id, out);
        if let Some(n) = offer {
            self.negotiated(n, out, settings);
        }
        self.sdp_version += 1;
        let _e = self.span.clone().entered();
        let neg = self.neg.unwrap_or_else(Negotiated::our_offer);
        info!(direction = neg.direction.as_str(), "re-INVITE");
        let mut r = req.response(200);
        let body = neg.render(
            self.media_ip(settings),
            self.rtp_port,
            self.sdp_session,
            self.sdp_version,
        );
        r.headers.push(HeaderName::Contact, self.contact());
        with_sdp(&mut r, body, self.session_expires);
        r
    }

    /// A re-INVITE or UPDATE refreshed the session (RFC 4028), or the call was answered.
    pub fn refresh_session(&mut self, now: Instant, call_id: &str, out: &mut Out) {
        if let Some(se) = self.session_expires {
            let at = now + Duration::from_secs(se as u64);
            self.expires_at = Some(at);
            out.arm(at, call_id, TimerKind::SessionExpiry);
        }
    }

    /// The ACK of our 200: the answer to the offer we made in it (an INVITE without SDP).
    pub fn acked(&mut self, ack: &Request, out: &mut Out, settings: &Settings) {
        let _e = self.span.clone().entered();
        debug!("ACK received");
        if self.neg.is_some() || ack.body.is_empty() {
            return;
        }
        match sdp::answer_body(&ack.body) {
            Ok(n) => self.negotiated(n, out, settings),
            Err(e) => debug!(error = %e, "unusable SDP answer in the ACK"),
        }
    }

    /// The media now agreed with the caller: the running leg follows.
    fn negotiated(&mut self, n: Negotiated, out: &mut Out, settings: &Settings) {
        self.neg = Some(n);
        if let Some(leg) = &self.leg {
            out.media(MediaCommand::Update {
                leg: leg.clone(),
                neg: n,
                timeout: settings.rtp_timeout,
            });
        }
    }

    /// Takes a mid-dialog request into the call's dialog (RFC 3261 §12.2.2).
    pub fn in_dialog(&mut self, req: &Request) -> Result<(), DialogError> {
        if !self.dialog.matches(req) {
            return Err(DialogError::NotThisDialog);
        }
        self.dialog.on_request(req)
    }

    /// The final response that ends a call still ringing (`status`: 480 from our side, 487
    /// for a BYE in the early dialog), and its transaction; `None` once answered.
    pub fn refuse_ringing(&mut self, status: u16) -> Option<(TxKey, Response)> {
        let tx = self.invite_tx.take()?;
        let mut r = self.invite.response(status);
        r.headers
            .set(HeaderName::To, self.dialog.local_uri.to_string());
        Some((tx, r))
    }

    /// Our BYE to the caller (RFC 3261 §12.2.1.1, §15.1.1) and where it goes; `None` while
    /// the call still rings.
    pub fn bye(&mut self, settings: &Settings, tokens: &mut Tokens) -> Option<(Peer, Request)> {
        if self.state != CallState::Answered {
            return None;
        }
        let mut bye = self.dialog.request(
            Method::Bye,
            &host_port(self.local),
            self.peer.transport,
            tokens,
        );
        bye.headers
            .push(HeaderName::UserAgent, settings.user_agent.as_str());
        Some((self.peer, bye))
    }

    /// The call's own things released as it ends: its timers, its leg (closed), its RTP
    /// ports, its count in the voice menu. Returns whether it was answered and how long
    /// the caller talked.
    pub fn release(
        &mut self,
        now: Instant,
        out: &mut Out,
        ports: &mut dyn MediaPorts,
        stats: &Stats,
    ) -> (bool, Duration) {
        // Its long timers go with it: left in the set, they would stay until they fire (the
        // maximum duration's after four hours by default), about 130 bytes a call.
        let id = &self.dialog.id.call_id;
        for (at, kind) in [
            (self.answer_at, TimerKind::Answer),
            (self.end_at, TimerKind::MaxDuration),
        ]
        .into_iter()
        .chain(self.expires_at.map(|at| (at, TimerKind::SessionExpiry)))
        {
            out.disarm(at, id, kind);
        }
        if let Some(leg) = self.leg.take() {
            out.media(MediaCommand::Close { leg });
        }
        self.ports = None;
        ports.release(self.rtp_port);
        self.menu.leave_ivr(stats);
        let answered = self.state == CallState::Answered;
        let talked = if answered {
            now.saturating_duration_since(self.answer_at)
        } else {
            Duration::ZERO
        };
        (answered, talked)
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
