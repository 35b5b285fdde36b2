//! The caller's voice menu, a part that owns its state ([`MenuState`], kept in each call):
//! the `IvrSession`, its timer, where the menu ended and whether the caller counts as in
//! the menu. It is driven with the call's media handle ([`Media`]) and the [`Out`] sink; what
//! needs another part (the queue, a transfer, a callback, a message, the hang-up) comes back
//! to the router as a [`MenuStep`].

use super::callers::Media;
use super::*;

/// A call's voice menu (from the answer on).
#[derive(Default)]
pub(super) struct MenuState {
    session: Option<ivr::IvrSession>,
    /// When the menu's timer is armed for (a timer entry for another time is stale).
    deadline: Option<Instant>,
    /// Where the menu ended, for the appeal's outcome.
    end: Option<IvrEnd>,
    /// Counted in [`Stats::calls_in_ivr`]: walking the menu, not (yet) in a queue.
    in_ivr: bool,
}

/// What the menu asks of the other parts (the router carries it out, then drives the menu
/// on).
pub(super) enum MenuStep {
    /// The caller enters `queue` (the menu has ended there).
    EnterQueue { queue: String, priority: i32 },
    /// Dial `number` through the trunk and hand the caller over (`outbound`).
    Transfer { number: String },
    /// The caller asked to be called back (in `queue`, when the menu names one).
    Callback {
        number: String,
        queue: Option<String>,
    },
    /// Record the caller's message, at most `max`.
    StartRecording { max: Duration },
    /// The menu hangs up.
    Hangup,
}

impl MenuState {
    /// The call was answered on `line`: its menu starts, if it has one.
    pub fn start(
        &mut self,
        line: &LineSettings,
        caller: &str,
        now: Instant,
        wall: chrono::DateTime<chrono::Utc>,
        stats: &Stats,
    ) {
        let Some(menu) = line.menu.clone() else {
            return;
        };
        self.in_ivr = true;
        stats.calls_in_ivr.fetch_add(1, Ordering::Relaxed);
        self.session =
            Some(ivr::IvrSession::new(menu, &line.start, now, wall).with_caller(caller.to_owned()));
    }

    /// The caller's steps through the menu so far (the appeal's `ivr_path`).
    pub fn path(&self) -> Vec<String> {
        self.session
            .as_ref()
            .map(|s| s.path().to_vec())
            .unwrap_or_default()
    }

    /// Where the menu ended, for the appeal's outcome.
    pub fn end(&self) -> Option<IvrEnd> {
        self.end
    }

    /// Where the call went from the menu (a transfer, a callback, a message); `None` when a
    /// failed transfer sends the caller back into the menu.
    pub fn set_end(&mut self, end: Option<IvrEnd>) {
        self.end = end;
    }

    /// The caller is no longer walking the menu (not counted in it any more).
    pub fn leave_ivr(&mut self, stats: &Stats) {
        if std::mem::take(&mut self.in_ivr) {
            stats.calls_in_ivr.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// When the menu's timer is armed for.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// A key for the menu; `false` when the call has no menu running.
    pub fn digit(&mut self, now: Instant, digit: char) -> bool {
        match self.session.as_mut() {
            Some(s) => {
                s.handle_digit(now, digit);
                true
            }
            None => false,
        }
    }

    /// A playback of the menu ended.
    pub fn playback_finished(&mut self, now: Instant) {
        if let Some(s) = self.session.as_mut() {
            s.handle_playback_finished(now);
        }
    }

    /// The menu's timer fired (the router checked it is current).
    pub fn timeout(&mut self, now: Instant) {
        self.deadline = None;
        if let Some(s) = self.session.as_mut() {
            s.handle_timeout(now);
        }
    }

    /// A transfer the menu asked for failed: whether the menu has a fallback (it goes on
    /// there; drive it again).
    pub fn transfer_failed(&mut self, now: Instant) -> bool {
        let fallback = self
            .session
            .as_mut()
            .is_some_and(|s| s.transfer_failed(now));
        if fallback {
            self.end = None;
        }
        fallback
    }

    /// Carries out what the menu asks for, in order — prompts on the call's media, the
    /// appeal's steps — until it asks for something of another part (returned) or waits (its
    /// timer armed, `None`). See `ivr::session` for the contract (drain `poll_action`, then
    /// `poll_timeout`).
    pub fn drive(
        &mut self,
        now: Instant,
        call_id: &str,
        media: &mut Media<'_>,
        out: &mut Out,
        stats: &Stats,
    ) -> Option<MenuStep> {
        loop {
            let session = self.session.as_mut()?;
            let Some(action) = session.poll_action() else {
                let next = session.poll_timeout();
                if next != self.deadline {
                    self.deadline = next;
                    if let Some(at) = next {
                        out.arm(at, call_id, TimerKind::Ivr);
                    }
                }
                return None;
            };
            let path = session.path().join(">");
            let _e = media.span().clone().entered();
            let appeal = media.appeal();
            use ivr::Action;
            match action {
                Action::Play(prompts) => {
                    media.new_playback();
                    let names: Vec<PromptName> = prompts
                        .iter()
                        .filter_map(|p| {
                            let info = media.line().menu.as_ref()?.prompt(p)?;
                            Some(menu_prompt_name(&info.path))
                        })
                        .collect();
                    match media.prompts().sequence(&names) {
                        Ok(seq) if media.has_leg() && names.len() == prompts.len() => {
                            debug!(prompts = ?prompts.iter().map(|p| p.name()).collect::<Vec<_>>(), "playing");
                            media.play(out, seq);
                        }
                        _ => {
                            // only a menu built around the checks (or a leg that failed to
                            // start) gets here: go on as if it had played
                            warn!(
                                ?prompts,
                                "prompts not in the cache or no media; skipping them"
                            );
                            self.playback_finished(now);
                        }
                    }
                }
                Action::StopPlayback => media.stop_playback(out),
                Action::AppendPath(step) => {
                    debug!(%step, "menu");
                    out.appeal(appeal, AppealRecord::IvrStep(IvrStep::Path { step, path }));
                }
                Action::SetCategory(c) => {
                    out.appeal(appeal, AppealRecord::IvrStep(IvrStep::Category(c)))
                }
                Action::SetPriority(p) => {
                    out.appeal(appeal, AppealRecord::IvrStep(IvrStep::Priority(p)))
                }
                Action::SetVariable { name, value } => out.appeal(
                    appeal,
                    AppealRecord::IvrStep(IvrStep::Variable { name, value }),
                ),
                Action::EnterQueue { queue, priority } => {
                    info!(%queue, priority, "caller entered the queue");
                    self.end = Some(IvrEnd::Queue);
                    self.leave_ivr(stats);
                    return Some(MenuStep::EnterQueue { queue, priority });
                }
                Action::Transfer { number } => {
                    // dialled through the trunk and bridged on the answer (`outbound`)
                    info!("transfer to an outside number");
                    self.end = Some(IvrEnd::Transferred);
                    self.leave_ivr(stats);
                    return Some(MenuStep::Transfer { number });
                }
                Action::Callback { number, queue } => {
                    info!("callback booked");
                    self.end = Some(IvrEnd::Callback);
                    return Some(MenuStep::Callback { number, queue });
                }
                Action::StartRecording { max } => return Some(MenuStep::StartRecording { max }),
                Action::Hangup => {
                    if self.end.is_none() {
                        self.end = Some(IvrEnd::Hangup);
                    }
                    return Some(MenuStep::Hangup);
                }
            }
        }
    }
}
