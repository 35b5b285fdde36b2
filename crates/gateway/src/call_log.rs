//! Where the driver hands call control's appeal events ([`calls::Output::Appeal`]): the
//! [`CallLog`] the gateway was built with (the daemon's appends a line to the appeal spool),
//! and the returning-caller lookups it answers on a task of its own; and the
//! [`OperatorBook`] it asks and tells about operators ([`calls::Output::Book`]).

use std::time::Duration;

use calls::{
    AppealEvent, AppealRecord, CallArrived, CallEnded, CallbackAttempt, IvrStep, OperatorCommand,
    OperatorRefusal, TransferRecord,
};

/// Where each call is written down: the daemon backs it with the appeals store. The driver
/// calls it for every [`AppealEvent`], in the order call control put them out
/// ([`CallLog::record`]); implementations must never block (the driver's loop calls them
/// inline). The appeal ids are call control's ([`calls::AppealIds`]).
pub trait CallLog: Send + Sync + 'static {
    /// A call reached a line: create `appeal`.
    fn call_arrived(&self, appeal: &str, call: &CallArrived<'_>);
    /// The call ended.
    fn call_ended(&self, appeal: &str, end: &CallEnded);
    /// The caller pressed `digit`, received `via` `rfc4733`, `info` or `inband`.
    fn digit(&self, appeal: &str, digit: char, via: &str) {
        let _ = (appeal, digit, via);
    }
    /// The call's voice menu took a step (path, category, variables, where it ended).
    fn ivr_step(&self, appeal: &str, step: &IvrStep) {
        let _ = (appeal, step);
    }
    /// An operator answered the waiting caller after `waited` in the queue; they are bridged.
    fn operator_answered(&self, appeal: &str, operator: &str, waited: Duration) {
        let _ = (appeal, operator, waited);
    }
    /// A transfer of the caller reached its target (`status` 200) or failed with `status`.
    fn transferred(&self, appeal: &str, transfer: &TransferRecord<'_>) {
        let _ = (appeal, transfer);
    }
    /// A booked callback's number is being dialled: attempt `attempt` (1 for the first).
    fn callback_dialling(&self, appeal: &str, operator: &str, attempt: u32) {
        let _ = (appeal, operator, attempt);
    }
    /// One attempt to call a booked callback's number ended.
    fn callback_attempt(&self, appeal: &str, attempt: &CallbackAttempt<'_>) {
        let _ = (appeal, attempt);
    }
    /// The ACD gave a booked callback up after `attempts` attempts.
    fn callback_failed(&self, appeal: &str, attempts: u32) {
        let _ = (appeal, attempts);
    }
    /// A callback's talk ended: the caller talked to `operator` for `talked`.
    fn callback_talked(&self, appeal: &str, operator: &str, talked: Duration) {
        let _ = (appeal, operator, talked);
    }
    /// Returning callers: the operator who handled `caller`'s latest open (not resolved)
    /// appeal that arrived within `lookback`, if any ([`calls::Output::LookupReturning`]).
    /// The gateway awaits it on a task of its own, bounded by [`calls::RETURNING_TIMEOUT`].
    /// The default finds none.
    fn returning_operator(&self, caller: &str, lookback: Duration) -> ReturningLookup {
        let _ = (caller, lookback);
        Box::pin(std::future::ready(Ok(None)))
    }

    /// Writes down one event: the method for its kind.
    fn record(&self, ev: &AppealEvent) {
        let appeal = ev.appeal.as_str();
        match &ev.record {
            AppealRecord::Arrived {
                call_id,
                line,
                caller,
            } => self.call_arrived(
                appeal,
                &CallArrived {
                    call_id,
                    line,
                    caller,
                },
            ),
            AppealRecord::Ended(end) => self.call_ended(appeal, end),
            AppealRecord::Digit { digit, via } => self.digit(appeal, *digit, via.as_str()),
            AppealRecord::IvrStep(step) => self.ivr_step(appeal, step),
            AppealRecord::OperatorAnswered { operator, waited } => {
                self.operator_answered(appeal, operator, *waited)
            }
            AppealRecord::Transferred { .. } => {
                if let Some(t) = ev.record.transfer() {
                    self.transferred(appeal, &t);
                }
            }
            AppealRecord::CallbackDialling { operator, attempt } => {
                self.callback_dialling(appeal, operator, *attempt)
            }
            AppealRecord::CallbackAttempt { .. } => {
                if let Some(a) = ev.record.callback_attempt() {
                    self.callback_attempt(appeal, &a);
                }
            }
            AppealRecord::CallbackFailed { attempts } => self.callback_failed(appeal, *attempts),
            AppealRecord::CallbackTalked { operator, talked } => {
                self.callback_talked(appeal, operator, *talked)
            }
        }
    }
}

/// The answer to [`CallLog::returning_operator`]: the operator's login, or none.
pub type ReturningLookup = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Option<String>, LookupError>> + Send + 'static>,
>;

/// Why [`CallLog::returning_operator`] could not answer.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// The appeal store is not connected (yet, or any more).
    #[error("the appeal store is not connected")]
    NotConnected,
    /// The query failed.
    #[error("the appeal store query failed: {0}")]
    Query(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// A `CallLog` that writes nothing (tests, tools).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoCallLog;

impl CallLog for NoCallLog {
    fn call_arrived(&self, _: &str, _: &CallArrived<'_>) {}
    fn call_ended(&self, _: &str, _: &CallEnded) {}
}

/// Where operators' work state is kept (the daemon's operator table, saved to the database).
/// Every login, logout, pause and unpause — from the admin API through
/// [`crate::OperatorControl`] or from a softphone's feature code
/// ([`calls::BookEntry::Apply`]) — is checked and recorded here first, then applied to the
/// ACD: one path for both. Called on the driver's loop: implementations must never block
/// (the daemon's appends to the appeal spool and takes a short lock).
pub trait OperatorBook: Send + Sync + 'static {
    /// Checks and records `cmd` for `operator`.
    fn apply(&self, operator: &str, cmd: &OperatorCommand) -> Result<(), OperatorRefusal>;
    /// The state restored at start, as commands for the ACD (`Login`, then `Pause` for a
    /// paused operator); the gateway applies them before it handles the first message.
    fn restored(&self) -> Vec<(String, OperatorCommand)> {
        Vec::new()
    }
    /// A reload changed the skills of a logged-in operator: these are the queues the ACD
    /// now serves them from (the book records them as the login's queues).
    fn queues_changed(&self, _operator: &str, _queues: &[String]) {}
}

/// An [`OperatorBook`] that keeps nothing and refuses nothing (tests, tools): the ACD alone
/// decides.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoOperatorBook;

impl OperatorBook for NoOperatorBook {
    fn apply(&self, _: &str, _: &OperatorCommand) -> Result<(), OperatorRefusal> {
        Ok(())
    }
}
