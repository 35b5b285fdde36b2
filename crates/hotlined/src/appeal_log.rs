//! The gateway's call log backed by the appeals store: every call that reaches a line becomes
//! an appeal at once, and its end is written to it. It also counts finished calls by line and
//! outcome for `/metrics`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use appeals::{
    AppealId, AppealUpdate, AppealWriter, CallbackStatus, EventKind, NewAppeal, NewCallback,
    Outcome,
};
use chrono::Utc;
use gateway::{
    CallArrived, CallEnded, CallLog, CallbackAttempt, CallbackOutcome, EndReason, IvrEnd, IvrStep,
    LookupError, ReturningLookup, TransferKind, TransferRecord,
};
use serde_json::json;

/// Calls by line and outcome since the daemon started (Prometheus counters). A call is
/// counted when it ends; calls in progress are the gateway's `hotline_calls_active`.
#[derive(Debug, Default)]
pub struct CallCounters {
    /// (line id, outcome) → calls.
    ended: Mutex<BTreeMap<(String, Outcome), u64>>,
    /// Calls in progress: appeal id → line id, to know the line when the call ends.
    open: Mutex<HashMap<String, String>>,
    /// Calls in progress whose voice menu has taken a step (they are in the menu until it
    /// ends, which [`CallEnded::ivr`] then says).
    in_menu: Mutex<HashSet<String>>,
}

impl CallCounters {
    pub(crate) fn arrived(&self, appeal: &str, line: &str) {
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(appeal.to_owned(), line.to_owned());
    }

    /// The call's voice menu took a step.
    pub(crate) fn menu_step(&self, appeal: &str) {
        self.in_menu
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(appeal.to_owned());
    }

    /// Whether the call's menu took a step; forgets it (the call is ending).
    pub(crate) fn was_in_menu(&self, appeal: &str) -> bool {
        self.in_menu
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(appeal)
    }

    pub(crate) fn ended(&self, appeal: &str, outcome: Outcome) {
        let line = self
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(appeal)
            .unwrap_or_else(|| "unknown".to_owned());
        *self
            .ended
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry((line, outcome))
            .or_default() += 1;
    }

    /// Finished calls by (line, outcome), sorted.
    pub fn snapshot(&self) -> Vec<(String, Outcome, u64)> {
        self.ended
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|((l, o), n)| (l.clone(), *o, *n))
            .collect()
    }
}

pub struct AppealLog {
    pub writer: AppealWriter,
    pub counters: Arc<CallCounters>,
    /// The store once connected (the admin API's slot): returning-caller lookups read it.
    pub store: crate::admin::StoreSlot,
    /// Calls an operator answered and then transferred: appeal id → seconds that operator
    /// talked. The call's end counts them (answered, with that talk time) even when nobody
    /// answered after the transfer.
    pub talked_before_transfer: Mutex<HashMap<String, i64>>,
}

impl AppealLog {
    /// The log writing through `writer`, counting into `counters`, looking returning callers
    /// up in the store once `store` has one.
    pub fn new(
        writer: AppealWriter,
        counters: Arc<CallCounters>,
        store: crate::admin::StoreSlot,
    ) -> Self {
        AppealLog {
            writer,
            counters,
            store,
            talked_before_transfer: Mutex::default(),
        }
    }
}

/// A call's outcome and talk time from its end and what operators talked before a transfer
/// (`earlier`, seconds): a caller an operator answered was answered, whatever came after.
fn outcome_and_talk(
    end: &CallEnded,
    earlier: Option<i64>,
    in_menu: bool,
) -> (Outcome, Option<i64>) {
    let talk = end
        .operator
        .as_ref()
        .map(|(_, t)| i64::try_from(t.as_secs()).unwrap_or(i64::MAX));
    let talk = match (earlier, talk) {
        (Some(a), Some(b)) => Some(a.saturating_add(b)),
        (a, b) => a.or(b),
    };
    // A caller bridged to an operator (now, or before a transfer) was answered. Otherwise
    // where the menu left the caller decides; a caller still in a queue when the call ended
    // never reached an operator: abandoned. A caller who hung up in the menu before it ended
    // (while choosing, or during its prompts) did not get what they called for: abandoned,
    // so they are on the `missed` worklist; one whose menu ended with a `hangup` node heard
    // an information leaf to its end: information only. A call answered by a line without a
    // menu heard only information; one that ended before the answer was abandoned.
    let caller_left = matches!(
        end.reason,
        EndReason::CallerCancelled | EndReason::CallerHungUp
    );
    let outcome = if end.operator.is_some() || earlier.is_some() {
        Outcome::Answered
    } else if let Some(ivr) = end.ivr {
        match ivr {
            IvrEnd::Queue => Outcome::Abandoned,
            IvrEnd::Transferred => Outcome::Transferred,
            IvrEnd::Callback => Outcome::Callback,
            IvrEnd::Message => Outcome::Message,
            IvrEnd::Hangup => Outcome::InfoOnly,
        }
    } else if end.answered && in_menu && caller_left {
        Outcome::Abandoned
    } else if end.answered {
        Outcome::InfoOnly
    } else if caller_left {
        Outcome::Abandoned
    } else {
        Outcome::Rejected
    };
    (outcome, talk)
}

/// The operator of `caller`'s latest appeal that arrived at or after `since`, is not
/// resolved, and was answered by an operator (the call in progress has none yet, so it is
/// never its own answer). The number must match exactly, not just contain the digits.
pub async fn returning_operator(
    store: &appeals::Store,
    caller: &str,
    since: chrono::DateTime<Utc>,
) -> Result<Option<String>, LookupError> {
    let digits: String = caller.chars().filter(char::is_ascii_digit).collect();
    let filter = appeals::SearchFilter {
        from: Some(since),
        caller: Some(digits),
        ..Default::default()
    };
    // newest first; a caller has few appeals in a week or two
    let page = appeals::Page {
        offset: 0,
        limit: 50,
    };
    let found = store
        .search(&filter, page)
        .await
        .map_err(|e| LookupError::Query(Box::new(e)))?;
    Ok(found
        .into_iter()
        .filter(|a| a.caller_number == caller && !a.status.is_closed())
        .find_map(|a| a.operator))
}

fn parse_id(appeal: &str) -> Option<AppealId> {
    uuid::Uuid::parse_str(appeal).ok().map(AppealId)
}

impl CallLog for AppealLog {
    fn returning_operator(&self, caller: &str, lookback: std::time::Duration) -> ReturningLookup {
        let store = self.store.get().cloned();
        let caller = caller.to_owned();
        let since = chrono::Duration::from_std(lookback)
            .ok()
            .and_then(|d| Utc::now().checked_sub_signed(d))
            .unwrap_or(chrono::DateTime::<Utc>::MIN_UTC);
        Box::pin(async move {
            let store = store.ok_or(LookupError::NotConnected)?;
            returning_operator(&store, &caller, since).await
        })
    }

    /// The appeal is created under call control's id (a UUIDv7 it minted); an id that is
    /// not a UUID is a bug upstream and writes nothing. The appeal arrived when call control
    /// says: the millisecond in its id (the driver's civil time of the INVITE's input).
    fn call_arrived(&self, appeal: &str, call: &CallArrived<'_>) {
        let Some(id) = parse_id(appeal) else {
            tracing::error!(appeal, "call control gave an appeal id that is not a UUID");
            return;
        };
        self.writer.create_with_id(
            id,
            NewAppeal {
                call_id: call.call_id.to_string(),
                line: call.line.to_string(),
                caller_number: call.caller.to_string(),
                arrived_at: id.minted_at().unwrap_or_else(Utc::now),
            },
        );
        self.counters.arrived(appeal, call.line);
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

    /// The voice menu's steps: every path step is an `ivr_choice` event `{step}` and sets the
    /// appeal's `ivr_path`; category, priority and variables are events too (category also
    /// on the appeal); the menu's end is `entered_queue`, `transferred`, `callback_requested`
    /// (plus the callback row) or `message_recorded` (plus the recording file).
    fn ivr_step(&self, appeal: &str, step: &IvrStep) {
        self.counters.menu_step(appeal);
        let Some(id) = parse_id(appeal) else {
            return;
        };
        let w = &self.writer;
        match step {
            IvrStep::Path { step, path } => {
                w.event(id, EventKind::IvrChoice, json!({ "step": step }));
                w.update(
                    id,
                    AppealUpdate {
                        ivr_path: Some(path.clone()),
                        ..AppealUpdate::default()
                    },
                );
            }
            IvrStep::Category(c) => {
                w.event(id, EventKind::IvrChoice, json!({ "category": c }));
                w.update(
                    id,
                    AppealUpdate {
                        category: Some(c.clone()),
                        ..AppealUpdate::default()
                    },
                );
            }
            IvrStep::Priority(p) => w.event(id, EventKind::IvrChoice, json!({ "priority": p })),
            IvrStep::Variable { name, value } => w.event(
                id,
                EventKind::IvrChoice,
                json!({ "variable": name, "value": value }),
            ),
            IvrStep::EnteredQueue { queue, priority } => {
                w.event(
                    id,
                    EventKind::EnteredQueue,
                    json!({ "queue": queue, "priority": priority }),
                );
                w.update(
                    id,
                    AppealUpdate {
                        queue: Some(queue.clone()),
                        ..AppealUpdate::default()
                    },
                );
            }
            IvrStep::Transferred { number } => w.event(
                id,
                EventKind::Transferred,
                json!({ "number": number, "trunk": false }),
            ),
            IvrStep::CallbackRequested { number, queue } => {
                w.event(
                    id,
                    EventKind::CallbackRequested,
                    json!({ "number": number, "queue": queue }),
                );
                w.callback(NewCallback {
                    appeal_id: id,
                    number: number.clone(),
                    queue: queue.clone(),
                    requested_at: Utc::now(),
                    due_at: None,
                });
            }
            IvrStep::Message { file, max } => {
                w.event(
                    id,
                    EventKind::MessageRecorded,
                    json!({ "file": file, "max_seconds": max.as_secs() }),
                );
                w.update(
                    id,
                    AppealUpdate {
                        recording: Some(file.clone()),
                        ..AppealUpdate::default()
                    },
                );
            }
        }
    }

    /// The `answered` event names the operator and the wait; the appeal gets `answered_at`,
    /// `operator` and `wait_seconds`.
    fn operator_answered(&self, appeal: &str, operator: &str, waited: std::time::Duration) {
        let Some(id) = parse_id(appeal) else {
            return;
        };
        let wait = i64::try_from(waited.as_secs()).unwrap_or(i64::MAX);
        self.writer.event(
            id,
            EventKind::Answered,
            json!({ "operator": operator, "wait_seconds": wait }),
        );
        self.writer.update(
            id,
            AppealUpdate {
                answered_at: Some(Utc::now()),
                operator: Some(operator.to_owned()),
                wait_seconds: Some(wait),
                ..AppealUpdate::default()
            },
        );
    }

    /// A `transferred` event with the target, its kind (`queue` or `number`), the operator who
    /// asked (REFER) and how long they had talked, and the result (`status`, 200 = reached).
    fn transferred(&self, appeal: &str, t: &TransferRecord<'_>) {
        if let (Some(_), Some(talked), 200) = (t.operator, t.operator_talked, t.status) {
            let secs = i64::try_from(talked.as_secs()).unwrap_or(i64::MAX);
            *self
                .talked_before_transfer
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(appeal.to_owned())
                .or_default() += secs;
        }
        let Some(id) = parse_id(appeal) else {
            return;
        };
        self.writer.event(
            id,
            EventKind::Transferred,
            json!({
                "target": t.target,
                "kind": t.kind.as_str(),
                "operator": t.operator,
                "operator_talk_seconds": t.operator_talked.map(|d| d.as_secs()),
                "status": t.status,
                "trunk": t.kind == TransferKind::Number,
            }),
        );
    }

    /// The booked callback's row says `dialling`, with the operator on the line.
    fn callback_dialling(&self, appeal: &str, operator: &str, attempt: u32) {
        let Some(id) = parse_id(appeal) else {
            return;
        };
        self.writer.callback_progress(
            id,
            appeals::CallbackProgress {
                status: CallbackStatus::Dialling,
                attempts: i64::from(attempt.saturating_sub(1)),
                operator: Some(operator.to_owned()),
                last_result: None,
            },
        );
    }

    /// A `callback_attempt` event on the booking call's appeal: attempt number, number dialled,
    /// the operator on the line and the result. The callback's row follows: `done` when
    /// answered, else `pending` again (the ACD retries, or gives up: `callback_failed`), with
    /// the attempts so far and the result.
    fn callback_attempt(&self, appeal: &str, a: &CallbackAttempt<'_>) {
        let Some(id) = parse_id(appeal) else {
            return;
        };
        self.writer.callback_progress(
            id,
            appeals::CallbackProgress {
                status: if a.result == CallbackOutcome::Answered {
                    CallbackStatus::Done
                } else {
                    CallbackStatus::Pending
                },
                attempts: i64::from(a.attempt),
                operator: Some(a.operator.to_owned()),
                last_result: Some(a.result.as_str().to_owned()),
            },
        );
        self.writer.event(
            id,
            EventKind::CallbackAttempt,
            json!({
                "attempt": a.attempt,
                "number": a.number,
                "operator": a.operator,
                "result": a.result.as_str(),
            }),
        );
    }

    /// The ACD gave the callback up: its row is `failed` (attempts and last result kept).
    fn callback_failed(&self, appeal: &str, attempts: u32) {
        let Some(id) = parse_id(appeal) else {
            return;
        };
        self.writer.callback_progress(
            id,
            appeals::CallbackProgress {
                status: CallbackStatus::Failed,
                attempts: i64::from(attempts),
                operator: None,
                last_result: None,
            },
        );
    }

    /// The callback's talk: the appeal's outcome is `callback` with the operator and the talk
    /// time (an `ended` event with reason `callback_ended`).
    fn callback_talked(&self, appeal: &str, operator: &str, talked: std::time::Duration) {
        let Some(id) = parse_id(appeal) else {
            return;
        };
        let talk = i64::try_from(talked.as_secs()).unwrap_or(i64::MAX);
        self.writer.event(
            id,
            EventKind::Ended,
            json!({ "reason": "callback_ended", "operator": operator, "talk_seconds": talk }),
        );
        self.writer.update(
            id,
            AppealUpdate {
                outcome: Some(Outcome::Callback),
                operator: Some(operator.to_owned()),
                talk_seconds: Some(talk),
                ..AppealUpdate::default()
            },
        );
    }

    fn call_ended(&self, appeal: &str, end: &CallEnded) {
        let earlier = self
            .talked_before_transfer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(appeal);
        let in_menu = self.counters.was_in_menu(appeal);
        let (outcome, talk) = outcome_and_talk(end, earlier, in_menu);
        self.counters.ended(appeal, outcome);
        let Some(id) = parse_id(appeal) else {
            return;
        };
        self.writer.event(
            id,
            EventKind::Ended,
            json!({
                "reason": end.reason.as_str(),
                "in_call_seconds": end.talked.as_secs(),
                "talk_seconds": talk,
            }),
        );
        self.writer.update(
            id,
            AppealUpdate {
                ended_at: Some(Utc::now()),
                outcome: Some(outcome),
                talk_seconds: talk,
                ..AppealUpdate::default()
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store and a writer on a fresh SQLite file (kept while the folder lives).
    async fn sqlite() -> (tempfile::TempDir, appeals::Store, AppealWriter) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("hotline.db").display());
        let store = appeals::Store::connect(&url).await.unwrap();
        let writer = AppealWriter::start(appeals::WriterConfig::new(
            url.clone(),
            dir.path().join("spool"),
        ))
        .unwrap();
        (dir, store, writer)
    }

    #[test]
    fn counters_follow_a_call_from_arrival_to_end() {
        let c = CallCounters::default();
        c.arrived("a1", "city");
        c.arrived("a2", "city");
        c.arrived("a3", "regional");
        c.ended("a1", Outcome::Abandoned);
        c.ended("a2", Outcome::Abandoned);
        c.ended("a3", Outcome::InfoOnly);
        c.ended("never-arrived", Outcome::Rejected);
        assert_eq!(
            c.snapshot(),
            vec![
                ("city".into(), Outcome::Abandoned, 2),
                ("regional".into(), Outcome::InfoOnly, 1),
                ("unknown".into(), Outcome::Rejected, 1),
            ]
        );
        assert!(c.open.lock().unwrap().is_empty());
    }

    /// The lookup finds the operator of the caller's newest open appeal within the window:
    /// not a resolved one, not one without an operator, not an older one, not one of another
    /// number that merely contains the digits; without a store it says so.
    #[tokio::test]
    async fn returning_caller_finds_the_operator_of_the_open_appeal() {
        use appeals::{AppealUpdate, NewAppeal, Status};
        let (_dir, store, writer) = sqlite().await;
        let now = Utc::now();
        let caller = "+79131234567";
        let appeal = |days_ago: i64, number: &str, operator: Option<&str>| {
            let id = writer.create(NewAppeal {
                call_id: format!("c-{}", uuid::Uuid::now_v7()),
                line: "city".into(),
                caller_number: number.into(),
                arrived_at: now - chrono::Duration::days(days_ago),
            });
            writer.update(
                id,
                AppealUpdate {
                    operator: operator.map(str::to_owned),
                    ..Default::default()
                },
            );
            id
        };
        appeal(20, caller, Some("old"));
        appeal(3, caller, Some("op2"));
        let resolved = appeal(2, caller, Some("op3"));
        appeal(1, "+791312345670", Some("other-number"));
        appeal(0, caller, None); // the call in progress
        assert!(writer.flushed(std::time::Duration::from_secs(10)).await);
        for to in [Status::InProgress, Status::Done] {
            store.set_status(resolved, to, "test").await.unwrap();
        }
        let week = now - chrono::Duration::days(7);
        let found = returning_operator(&store, caller, week).await.unwrap();
        assert_eq!(found.as_deref(), Some("op2"));
        let found = returning_operator(&store, caller, now - chrono::Duration::hours(36))
            .await
            .unwrap();
        assert_eq!(found, None);
        assert_eq!(
            returning_operator(&store, "+79990000000", week)
                .await
                .unwrap(),
            None
        );

        let log = AppealLog::new(writer.clone(), Default::default(), Default::default());
        let lookback = std::time::Duration::from_secs(7 * 86_400);
        assert!(matches!(
            log.returning_operator(caller, lookback).await,
            Err(LookupError::NotConnected)
        ));
        log.store.set(store).unwrap();
        assert_eq!(
            log.returning_operator(caller, lookback)
                .await
                .unwrap()
                .as_deref(),
            Some("op2")
        );
    }

    /// The appeal arrived when call control minted its id (the driver's time of the INVITE),
    /// not when the writer got the event.
    #[tokio::test]
    async fn arrived_at_is_call_controls_time() {
        let (_dir, store, writer) = sqlite().await;
        let log = AppealLog::new(writer.clone(), Default::default(), Default::default());
        let at = chrono::DateTime::parse_from_rfc3339("2026-11-23T10:15:30.250+07:00")
            .unwrap()
            .with_timezone(&Utc);
        let ms = u64::try_from(at.timestamp_millis()).unwrap();
        let appeal = gateway::AppealIds::new([7; 32]).mint(ms);
        log.call_arrived(
            &appeal,
            &CallArrived {
                call_id: "c-arrived",
                line: "city",
                caller: "+79131234567",
            },
        );
        assert!(writer.flushed(std::time::Duration::from_secs(10)).await);
        let a = store
            .get(parse_id(&appeal).unwrap())
            .await
            .unwrap()
            .unwrap()
            .appeal;
        assert_eq!(a.arrived_at, at);
        // an id that is a UUID but not a v7 (none is minted so) falls back to the clock
        assert_eq!(AppealId(uuid::Uuid::nil()).minted_at(), None);
    }

    /// An operator answers, then transfers the caller to a queue where nobody answers before
    /// the caller hangs up: the appeal was answered, and its talk time is the operator's.
    #[tokio::test]
    async fn answered_then_transferred_is_answered_with_the_operators_talk() {
        let (_dir, store, writer) = sqlite().await;
        let log = AppealLog::new(writer.clone(), Default::default(), Default::default());
        let id = writer.create(NewAppeal {
            call_id: "c-transfer".into(),
            line: "city".into(),
            caller_number: "+79131234567".into(),
            arrived_at: Utc::now(),
        });
        let appeal = id.to_string();
        log.operator_answered(&appeal, "op1", std::time::Duration::from_secs(3));
        log.transferred(
            &appeal,
            &TransferRecord {
                operator: Some("op1"),
                target: "home-care",
                kind: TransferKind::Queue,
                status: 200,
                operator_talked: Some(std::time::Duration::from_secs(17)),
            },
        );
        // the caller hangs up in the queue it was moved to, nobody answered there
        let hung_up_in_queue = CallEnded {
            reason: EndReason::CallerHungUp,
            answered: true,
            talked: std::time::Duration::from_secs(40),
            ivr: Some(IvrEnd::Queue),
            operator: None,
        };
        log.call_ended(&appeal, &hung_up_in_queue);
        // a caller nobody answered stays abandoned
        let other = writer.create(NewAppeal {
            call_id: "c-abandoned".into(),
            line: "city".into(),
            caller_number: "+79131234567".into(),
            arrived_at: Utc::now(),
        });
        log.call_ended(&other.to_string(), &hung_up_in_queue);
        assert!(writer.flushed(std::time::Duration::from_secs(10)).await);
        let a = store.get(id).await.unwrap().unwrap().appeal;
        assert_eq!(a.outcome, Some(Outcome::Answered));
        assert_eq!(a.talk_seconds, Some(17));
        let b = store.get(other).await.unwrap().unwrap().appeal;
        assert_eq!(b.outcome, Some(Outcome::Abandoned));
        assert_eq!(b.talk_seconds, None);
        assert!(log.talked_before_transfer.lock().unwrap().is_empty());
    }
}
