//! The caller's walk through the line's voice menu: digits in (as the line's DTMF mode
//! takes them), the `IvrSession`'s actions carried out, a message recorded.

use super::*;

impl Core {
    /// A key press: kept when the line's DTMF mode takes this kind (in `auto`, the kind that
    /// came first in the call), handed to the call's voice menu, then written to the appeal.
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
        let in_menu = match call.menu_mut().session.as_mut() {
            Some(s) => {
                s.handle_digit(now, digit);
                true
            }
            None => false,
        };
        if in_menu {
            self.drive_ivr(now, call_id);
        }
        self.out.appeal(&appeal, AppealRecord::Digit { digit, via });
        if in_menu {
            self.drain(now);
        }
    }

    /// Carries out what the call's voice menu asks for, in order, then arms its timer.
    /// See `ivr::session` for the contract (drain `poll_action`, then `poll_timeout`).
    pub(super) fn drive_ivr(&mut self, now: Instant, call_id: &str) {
        let at = self.wallclock(now);
        loop {
            let Some(call) = self.calls.get_mut(call_id) else {
                return;
            };
            let Some(session) = call.menu_mut().session.as_mut() else {
                return;
            };
            let Some(action) = session.poll_action() else {
                let next = session.poll_timeout();
                if next != call.menu().deadline {
                    call.menu_mut().deadline = next;
                    if let Some(at) = next {
                        self.out.arm(at, call_id, TimerKind::Ivr);
                    }
                }
                return;
            };
            let path = session.path().join(">");
            let _e = call.span().clone().entered();
            let appeal = call.appeal().to_owned();
            use ivr::Action;
            match action {
                Action::Play(prompts) => {
                    call.new_playback();
                    let names: Vec<PromptName> = prompts
                        .iter()
                        .filter_map(|p| {
                            let info = call.line().menu.as_ref()?.prompt(p)?;
                            Some(menu_prompt_name(&info.path))
                        })
                        .collect();
                    let seq = call.prompts().sequence(&names);
                    match (call.leg(), seq) {
                        (Some(_), Ok(seq)) if names.len() == prompts.len() => {
                            debug!(prompts = ?prompts.iter().map(|p| p.name()).collect::<Vec<_>>(), "playing");
                            call.play(&mut self.out, seq);
                        }
                        _ => {
                            // only a menu built around the checks (or a leg that failed to
                            // start) gets here: go on as if it had played
                            warn!(
                                ?prompts,
                                "prompts not in the cache or no media; skipping them"
                            );
                            if let Some(s) = call.menu_mut().session.as_mut() {
                                s.handle_playback_finished(now);
                            }
                        }
                    }
                }
                Action::StopPlayback => call.stop_playback(&mut self.out),
                Action::AppendPath(step) => {
                    debug!(%step, "menu");
                    self.out
                        .appeal(&appeal, AppealRecord::IvrStep(IvrStep::Path { step, path }));
                }
                Action::SetCategory(c) => self
                    .out
                    .appeal(&appeal, AppealRecord::IvrStep(IvrStep::Category(c))),
                Action::SetPriority(p) => self
                    .out
                    .appeal(&appeal, AppealRecord::IvrStep(IvrStep::Priority(p))),
                Action::SetVariable { name, value } => self.out.appeal(
                    &appeal,
                    AppealRecord::IvrStep(IvrStep::Variable { name, value }),
                ),
                Action::EnterQueue { queue, priority } => {
                    info!(%queue, priority, "caller entered the queue");
                    call.menu_mut().end = Some(IvrEnd::Queue);
                    if std::mem::take(&mut call.menu_mut().in_ivr) {
                        self.stats.calls_in_ivr.fetch_sub(1, Ordering::Relaxed);
                    }
                    queue_figures!(self, at, now).enter(call, call_id, &queue);
                    call.queue_mut().since.get_or_insert(now);
                    if call.queue().waiting.is_none() {
                        let waiting = Waiting::new(call.caller());
                        call.queue_mut().waiting = Some(waiting);
                    }
                    let join = call.queue().acd_caller.is_none().then(|| {
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
                Action::Transfer { number } => {
                    // dialled through the trunk and bridged on the answer (`outbound`)
                    info!("transfer to an outside number");
                    call.menu_mut().end = Some(IvrEnd::Transferred);
                    if std::mem::take(&mut call.menu_mut().in_ivr) {
                        self.stats.calls_in_ivr.fetch_sub(1, Ordering::Relaxed);
                    }
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
                Action::Callback { number, queue } => {
                    info!("callback booked");
                    call.menu_mut().end = Some(IvrEnd::Callback);
                    self.out.appeal(
                        &appeal,
                        AppealRecord::IvrStep(IvrStep::CallbackRequested {
                            number: number.clone(),
                            queue: queue.clone(),
                        }),
                    );
                    if let Some(queue) = queue {
                        let prio = call.queue().priority;
                        self.book_callback_in(now, call_id, &queue, prio, &number);
                    }
                    // the session plays its closing prompt, then asks for the hang-up
                }
                Action::StartRecording { max } => self.start_message(now, call_id, max),
                Action::Hangup => {
                    if call.menu().end.is_none() {
                        call.menu_mut().end = Some(IvrEnd::Hangup);
                    }
                    self.end_call(now, call_id, EndReason::IvrHangup);
                }
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
        call.menu_mut().end = Some(IvrEnd::Message);
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
