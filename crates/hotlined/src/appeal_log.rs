//! The gateway's call log backed by the appeals store: every call that reaches a line becomes
//! an appeal at once, and its end is written to it.

use appeals::{AppealId, AppealUpdate, AppealWriter, EventKind, NewAppeal, Outcome};
use chrono::Utc;
use gateway::{CallArrived, CallEnded, CallLog, EndReason};
use serde_json::json;

pub struct AppealLog {
    pub writer: AppealWriter,
}

fn parse_id(appeal: &str) -> Option<AppealId> {
    uuid::Uuid::parse_str(appeal).ok().map(AppealId)
}

impl CallLog for AppealLog {
    fn call_arrived(&self, call: &CallArrived<'_>) -> String {
        self.writer
            .create(NewAppeal {
                call_id: call.call_id.to_string(),
                line: call.line.to_string(),
                caller_number: call.caller.to_string(),
                arrived_at: Utc::now(),
            })
            .0
            .to_string()
    }

    /// A key press becomes an `ivr_choice` event `{digit, via}`.
    fn digit(&self, appeal: &str, digit: char, via: &str) {
        if let Some(id) = parse_id(appeal) {
            self.writer.event(
                id,
                EventKind::IvrChoice,
                json!({ "digit": digit.to_string(), "via": via }),
            );
        }
    }

    fn call_ended(&self, appeal: &str, end: &CallEnded) {
        let Some(id) = parse_id(appeal) else {
            return;
        };
        // Until the IVR and queues land, a call answered by the line heard only information;
        // one that ended before the answer was abandoned.
        let outcome = if end.answered {
            Outcome::InfoOnly
        } else if matches!(
            end.reason,
            EndReason::CallerCancelled | EndReason::CallerHungUp
        ) {
            Outcome::Abandoned
        } else {
            Outcome::Rejected
        };
        self.writer.event(
            id,
            EventKind::Ended,
            json!({ "reason": end.reason.as_str(), "in_call_seconds": end.talked.as_secs() }),
        );
        self.writer.update(
            id,
            AppealUpdate {
                ended_at: Some(Utc::now()),
                outcome: Some(outcome),
                ..AppealUpdate::default()
            },
        );
    }
}
