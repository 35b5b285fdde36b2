//! The router's side of operators' feature codes (`feature_codes.rs` has the codes and the
//! part, [`AwaitingBook`](super::feature_codes::AwaitingBook)), and the operators' state
//! restored at start.
//!
//! An INVITE whose Request-URI user starts with `*` comes here instead of the lines: it must
//! carry the digest credentials of an operator (as the operator's REGISTER does; no
//! credentials → `401` with a challenge, wrong or unknown ones → `403`). An unknown code or
//! reason gets `404`. A known one goes through [`Core::operator_command`] — the very code the
//! admin API's [`crate::OperatorControl`] reaches: the daemon's [`crate::OperatorBook`]
//! (checked, recorded, saved), then the ACD. The call is then answered, hears a short
//! confirmation (or "not done" when the book refused the command) and gets our BYE. Such a
//! call writes no appeal.

use std::time::{Duration, Instant};

use acd::OperatorId;
use sip::auth::AuthOutcome;
use sip::dialog::Dialog;
use sip::transaction::TxKey;
use sip::{HeaderName, Peer, Request};
use tracing::{debug, info, info_span, warn};

use super::feature_codes::Waiting;
use super::{answer_offer, with_to_tag, Arrival, Core, TimerKind};
use super::{OperatorCommand, OperatorControlError};
use crate::io::{BookAnswer, BookEntry, BookRequest, Output};
use crate::settings::{DtmfMode, LineSettings};

/// How long after the confirmation prompt ends we hang up (the last frames reach the phone).
const TAIL: Duration = Duration::from_millis(400);

impl Core {
    /// An INVITE to a feature code (see the module documentation).
    pub(super) fn on_feature_invite(
        &mut self,
        now: Instant,
        tx: TxKey,
        peer: Peer,
        req: Request,
        dialled: &str,
    ) {
        let Ok(call_id) = req.headers.call_id().map(str::to_string) else {
            return self.reply(now, &tx, &req, 400);
        };
        let settings = self.settings.clone();
        // The operator's own credentials, checked like a REGISTER's.
        let outcome = req.headers.get(&HeaderName::Authorization).map(|v| {
            self.registrar
                .digest_mut()
                .verify(now, &req.method, v, |user| {
                    settings
                        .operators
                        .iter()
                        .find(|o| o.login == user)
                        .map(|o| o.secret.clone())
                })
        });
        let operator = match outcome {
            Some(AuthOutcome::Ok { user }) => user,
            Some(AuthOutcome::Stale) | None => {
                let stale = matches!(outcome, Some(AuthOutcome::Stale));
                let mut r = with_to_tag(req.response(401), &req, &mut self.tokens);
                for c in self.registrar.digest_mut().challenge(now, stale) {
                    r.headers.push(HeaderName::WwwAuthenticate, c);
                }
                return self.respond(now, &tx, r);
            }
            Some(AuthOutcome::Failed(why)) => {
                info!(source = %peer.addr, code = dialled, ?why, "feature code without an operator's credentials");
                return self.reply(now, &tx, &req, 403);
            }
        };
        let Some(cmd) = settings.feature_codes.parse(dialled) else {
            info!(%operator, code = dialled, "unknown feature code");
            return self.reply(now, &tx, &req, 404);
        };
        // Everything the answer needs comes first, so a call we cannot answer changes nothing.
        let neg = match answer_offer(&req, &mut self.tokens) {
            Ok(n) => n,
            Err(r) => return self.respond(now, &tx, r),
        };
        let dialog = match Dialog::uas(&req, &self.tokens.lowercase(10), &mut self.tokens) {
            Ok(d) => d,
            Err(e) => {
                debug!(error = %e, "feature-code INVITE creates no dialog");
                return self.reply(now, &tx, &req, 400);
            }
        };
        let local = self.last_local.unwrap_or(peer.addr);
        let Some(ports) = self.ports.allocate(local.ip()) else {
            warn!("no free RTP port for a feature-code call");
            let mut r = with_to_tag(req.response(503), &req, &mut self.tokens);
            r.headers.push(HeaderName::RetryAfter, "5");
            return self.respond(now, &tx, r);
        };
        let span = info_span!("feature_code", call_id = %call_id, %operator, code = dialled);
        let waiting = Waiting {
            tx,
            peer,
            local,
            req,
            call_id,
            dialog,
            neg,
            ports,
            span,
            operator,
            cmd,
        };
        // the book checks and records the command first (its answer comes as an input);
        // a command the ACD cannot even resolve never reaches the book
        match self.resolve_operator_command(&waiting.operator, waiting.cmd.clone()) {
            Ok(cmd) => {
                let operator = waiting.operator.clone();
                let ticket = self.codes.hold(waiting);
                self.out.push(Output::Book(BookEntry::Apply(BookRequest {
                    operator,
                    cmd,
                    ticket,
                })));
            }
            Err(e) => self.feature_code_done(now, waiting, Err(e)),
        }
    }

    /// The book's verdict on a feature code's command: applied to the ACD when the book took
    /// it, then the call is answered with the confirmation (or "not done").
    pub(super) fn feature_code_booked(&mut self, now: Instant, answer: BookAnswer) {
        let Some(w) = self.codes.take(answer.ticket) else {
            return;
        };
        let done = match answer.verdict {
            Ok(()) => self.operator_command(now, &w.operator, w.cmd.clone()),
            Err(why) => Err(OperatorControlError::Refused(why)),
        };
        self.feature_code_done(now, w, done);
        self.drain(now);
    }

    /// Answers the feature-code call `w` with the prompt `done` calls for, then our BYE.
    fn feature_code_done(
        &mut self,
        now: Instant,
        w: Waiting,
        done: Result<(), OperatorControlError>,
    ) {
        let settings = self.settings.clone();
        let cmd = &w.cmd;
        let prompt = {
            let _e = w.span.enter();
            match done {
                Ok(()) => {
                    info!(command = ?cmd, "feature code carried out");
                    settings.feature_codes.confirmation(cmd)
                }
                Err(OperatorControlError::Refused(why)) => {
                    info!(%why, "feature code refused");
                    settings.feature_codes.prompts.refused.as_ref()
                }
                // Recorded, but the ACD could not take it (no queues, or an operator added
                // by a reload that the ACD learns of at the next restart).
                Err(e) => {
                    warn!(error = %e, "feature code recorded; the ACD did not take it");
                    settings.feature_codes.confirmation(cmd)
                }
            }
        };
        let length = prompt
            .and_then(|p| settings.prompts.get(p))
            .map(|p| p.duration())
            .unwrap_or_default();
        let call_id = w.call_id;
        let done = now + length + TAIL;
        let arrival = Arrival {
            span: w.span,
            appeal: String::new(),
            peer: w.peer,
            local: w.local,
            tx: w.tx,
            invite: w.req,
            dialog: w.dialog,
            neg: w.neg,
            line: LineSettings {
                id: "feature-code".into(),
                numbers: Vec::new(),
                name: "feature code".into(),
                ring: Duration::ZERO,
                greeting: prompt.cloned(),
                // digits mean nothing here: no in-band detector
                dtmf: DtmfMode::Rfc4733,
                record: false,
                menu: None,
                start: String::new(),
            },
            prompts: settings.prompts.clone(),
            caller: w.operator,
            rtp_port: w.ports,
            sdp_session: self.tokens.number(1..u32::MAX as u64),
            session_expires: None,
            answer_at: now,
            end_at: now + settings.max_call,
            message_end: Some(done),
        };
        self.calls.insert(&call_id, arrival);
        self.out.arm(done, &call_id, TimerKind::FeatureCodeDone);
        self.answer(now, &call_id);
    }

    /// Applies the operators' state restored at start to the ACD (the book has it already).
    pub fn restore_operators(&mut self, now: Instant, restored: Vec<(String, OperatorCommand)>) {
        let Some(acd) = self.acd.as_mut() else {
            return;
        };
        for (operator, cmd) in restored {
            let id = OperatorId::from(operator.as_str());
            let done = match &cmd {
                // the queues saved with the login; ones no longer among the skills (the
                // configuration changed meanwhile): every skill queue
                // (an older `*1` login saved none): the book is told the queues served
                OperatorCommand::Login { queues: saved } => {
                    let queues: Vec<acd::QueueId> = saved
                        .iter()
                        .map(|q| acd::QueueId::from(q.as_str()))
                        .collect();
                    acd.login_to(now, &id, &queues)
                        .or_else(|e| {
                            warn!(%operator, error = %e, "saved queues not all served: logged in to every skill queue");
                            acd.login_to(now, &id, &[])
                        })
                        .map(|served| {
                            let served: Vec<String> =
                                served.iter().map(|q| q.as_str().to_owned()).collect();
                            if served != *saved {
                                self.out.push(Output::Book(BookEntry::QueuesChanged {
                                    operator: operator.clone(),
                                    queues: served,
                                }));
                            }
                        })
                }
                OperatorCommand::Logout => acd.logout(now, &id),
                OperatorCommand::Pause { reason } => {
                    acd.pause(now, &id, acd::PauseReason::Requested(reason.clone()))
                }
                OperatorCommand::Unpause => acd.unpause(now, &id),
            };
            match done {
                Ok(()) => info!(%operator, command = ?cmd, "operator state restored"),
                Err(e) => warn!(%operator, error = %e, "operator state not restored in the ACD"),
            }
        }
        self.drain(now);
    }

    /// The operator's state in the ACD, for the admin side and tests.
    pub fn operator_status(&self, operator: &str) -> Option<acd::OperatorStatus> {
        self.acd
            .as_ref()?
            .operator_status(&OperatorId::from(operator))
    }
}
