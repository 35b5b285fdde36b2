//! The core's side of the ACD: operators' commands (the book's, then the ACD), registrations, and the
//! ACD's actions carried out.

use super::*;
use crate::live::QueueExit;

impl Core {
    /// The command as the operator book must check and record it: a login's queues resolved
    /// by the ACD (`Acd::login_queues`: none named means every skill queue; a queue outside
    /// the skills is refused here, before the book hears of it), so the book records the
    /// queues the ACD serves the operator from. Other commands come back as they are.
    pub fn resolve_operator_command(
        &self,
        operator: &str,
        cmd: OperatorCommand,
    ) -> Result<OperatorCommand, OperatorControlError> {
        let op = OperatorId::from(operator);
        Ok(match (cmd, self.acd.as_ref()) {
            (OperatorCommand::Login { queues }, Some(acd)) => {
                let named: Vec<acd::QueueId> = queues
                    .iter()
                    .map(|q| acd::QueueId::from(q.as_str()))
                    .collect();
                OperatorCommand::Login {
                    queues: acd
                        .login_queues(&op, &named)?
                        .iter()
                        .map(|q| q.as_str().to_owned())
                        .collect(),
                }
            }
            (cmd, _) => cmd,
        })
    }

    /// Applies an operator's login, logout, pause or unpause to the ACD, once the operator
    /// book has checked and recorded it (the admin API's driver asks the book between
    /// [`Core::resolve_operator_command`] and this; a feature code asks it through
    /// [`crate::BookEntry::Apply`]). A login's queues are resolved again (the same result).
    pub fn operator_command(
        &mut self,
        now: Instant,
        operator: &str,
        cmd: OperatorCommand,
    ) -> Result<(), OperatorControlError> {
        let op = OperatorId::from(operator);
        let cmd = self.resolve_operator_command(operator, cmd)?;
        let acd = self.acd.as_mut().ok_or(OperatorControlError::NoAcd)?;
        let registered = !self.registrar.lookup(now, operator).is_empty();
        let what = format!("{cmd:?}");
        match cmd {
            OperatorCommand::Login { queues } => {
                // the phone may have registered before the operator logged in
                acd.set_registered(now, &op, registered)?;
                let queues: Vec<acd::QueueId> = queues
                    .iter()
                    .map(|q| acd::QueueId::from(q.as_str()))
                    .collect();
                acd.login_to(now, &op, &queues)?;
            }
            OperatorCommand::Logout => acd.logout(now, &op)?,
            OperatorCommand::Pause { reason } => {
                acd.pause(now, &op, acd::PauseReason::Requested(reason))?
            }
            OperatorCommand::Unpause => acd.unpause(now, &op)?,
        }
        info!(operator, command = %what, "operator state changed in the ACD");
        self.drain(now);
        Ok(())
    }

    /// Tells the ACD which of the users whose bindings changed still have a live contact.
    pub(super) fn registrations_changed(
        &mut self,
        now: Instant,
        changes: &[sip::registrar::BindingChange],
    ) {
        let Some(acd) = self.acd.as_mut() else {
            return;
        };
        let users: BTreeSet<&str> = changes.iter().map(|c| c.user.as_str()).collect();
        for user in users {
            let registered = !self.registrar.lookup(now, user).is_empty();
            match acd.set_registered(now, &OperatorId::from(user), registered) {
                Ok(()) | Err(AcdError::UnknownOperator(_)) => {}
                Err(e) => debug!(error = %e, "registration not taken by the ACD"),
            }
        }
    }

    /// Carries out what the ACD asks for, until it has nothing more.
    pub(super) fn drive_acd(&mut self, now: Instant) {
        while let Some(action) = self.acd.as_mut().and_then(Acd::poll_action) {
            self.on_acd_action(now, action);
        }
    }

    pub(super) fn on_acd_action(&mut self, now: Instant, action: acd::Action) {
        use acd::Action;
        match action {
            Action::Offer { caller, operators } => self.offer_operators(now, caller, operators),
            Action::CancelOffer { caller, operator } => self.cancel_offer(now, caller, &operator),
            Action::Connect { caller, operator } => {
                self.waiting_over(caller);
                self.connect(now, caller, operator)
            }
            Action::Left { caller, outcome } => {
                self.callback_left(caller, &outcome);
                let at = self.wallclock(now);
                let Some(call_id) = self.queues.left(caller) else {
                    return;
                };
                let Some(call) = self.calls.get_mut(&call_id) else {
                    return;
                };
                call.queue_mut().out_of_acd();
                let _e = call.span().clone().entered();
                info!(?outcome, "caller left the ACD");
                let exit = match outcome {
                    acd::Outcome::Answered { .. } => QueueExit::Answered,
                    acd::Outcome::Abandoned => QueueExit::Abandoned,
                    acd::Outcome::Overflowed => QueueExit::Overflowed,
                    acd::Outcome::CalledBack { .. } | acd::Outcome::CallbackFailed { .. } => {
                        QueueExit::Callback
                    }
                };
                if let Some(queue) = QueueFigures::new(&mut self.out, &self.stats, at, now)
                    .leave(call, &call_id, exit)
                {
                    call.queue_mut().left_acd_from(queue);
                }
            }
            Action::CancelDirect { operator } => self.direct_rang_out(now, &operator),
            Action::Overflow {
                caller,
                to: acd::OverflowAction::Queue(q),
                reason,
            } => {
                let Some(call_id) = self.queues.call_of(caller).map(str::to_owned) else {
                    return;
                };
                let at = self.wallclock(now);
                let Some(call) = self.calls.get_mut(&call_id) else {
                    return;
                };
                let _e = call.span().clone().entered();
                info!(to = %q, ?reason, "caller overflowed to another queue");
                // the caller's wait goes on from their arrival (the ACD keeps it too)
                QueueFigures::new(&mut self.out, &self.stats, at, now).enter(
                    call,
                    &call_id,
                    q.as_str(),
                );
                if let Some(music) = self.settings.moh_for(q.as_str()) {
                    call.music(&mut self.out, Some(music));
                }
            }
            a @ (Action::Announce { .. }
            | Action::OfferCallback { .. }
            | Action::Overflow { .. }) => self.on_waiting_action(now, a),
            Action::StartCallback {
                caller,
                number,
                operator,
            } => self.start_callback(now, caller, number, operator),
            other => debug!(action = ?other, "ACD action not carried out yet"),
        }
    }

    /// `Connect`: bridge the caller and the operator who answered.
    pub(super) fn connect(&mut self, now: Instant, caller: CallerId, operator: OperatorId) {
        let Some((leg_id, op_media)) = self.op_legs.answered_offer(caller, &operator) else {
            return;
        };
        let call = self
            .queues
            .call_of(caller)
            .and_then(|id| self.calls.get_mut(id));
        let (Some(call), Some(op_media)) = (call, op_media) else {
            self.hangup_op_leg(now, &leg_id);
            if let Some(acd) = self.acd.as_mut() {
                let _ = acd.call_ended(now, &operator);
            }
            return;
        };
        let _e = call.span().clone().entered();
        if let Some(caller_media) = call.leg() {
            self.out.media(MediaCommand::Bridge {
                a: caller_media.clone(),
                b: op_media,
            });
        }
        let waited =
            now.saturating_duration_since(call.queue().since().unwrap_or(call.answered_at()));
        info!(operator = %operator, waited_s = waited.as_secs(), "connected to the operator");
        self.out.appeal(
            call.appeal(),
            AppealRecord::OperatorAnswered {
                operator: operator.as_str().to_owned(),
                waited,
            },
        );
        call.connect(Connected::new(operator, leg_id, now));
    }
}
