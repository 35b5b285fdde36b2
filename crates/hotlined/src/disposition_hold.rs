//! "A required disposition before the next call when the queue says so" (issue 13): when a
//! call from a queue with `disposition_required = true` ends for the operator who took it and
//! its appeal has no disposition yet, the operator is paused with the reason [`REASON`]
//! through the same command path as the API's pause (the table, then the ACD) — so the ACD
//! offers them nothing. Saving the disposition (`PATCH /api/v1/appeals/{id}`) resumes them,
//! unless they have paused for another reason meanwhile. Call control (crates/calls) knows
//! nothing of it: the hold is an ordinary pause.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use appeals::AppealId;
use gateway::live::{LiveEvent, OfferPhase};
use tokio::sync::broadcast;

use crate::admin::{AdminState, OperatorAction};

/// The pause reason of a hold (shown on the desk and the board as it is).
pub const REASON: &str = "Поствызывная обработка";

/// Operators held now: login → the appeal that needs its disposition.
#[derive(Debug, Default)]
pub struct Holds(Mutex<HashMap<String, AppealId>>);

impl Holds {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, AppealId>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The appeal an operator is held for, if any.
    pub fn of(&self, operator: &str) -> Option<AppealId> {
        self.lock().get(operator).copied()
    }
}

/// The task that holds operators, fed by call control's live events.
pub fn spawn(
    s: AdminState,
    holds: Arc<Holds>,
    mut events: broadcast::Receiver<LiveEvent>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(LiveEvent::Offer(o)) if o.phase == OfferPhase::Ended => {
                    let Some(queue) = o.queue.as_deref() else {
                        continue;
                    };
                    if !s.live.labels().disposition_required(queue) {
                        continue;
                    }
                    let Ok(id) = o.appeal.parse::<AppealId>() else {
                        continue;
                    };
                    hold(&s, &holds, &o.operator, id).await;
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "the disposition hold missed call events");
                }
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
    })
}

/// Holds `operator` for appeal `id` unless it already has its disposition.
pub(crate) async fn hold(s: &AdminState, holds: &Holds, operator: &str, id: AppealId) {
    let Ok(store) = s.store() else {
        return;
    };
    match store.get(id).await {
        Ok(Some(a)) if a.appeal.case.disposition.is_some() => return,
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(error = %e, "the disposition hold could not read the appeal; no hold");
            return;
        }
    }
    holds.lock().insert(operator.to_owned(), id);
    let action = OperatorAction::Pause {
        reason: Some(REASON.to_owned()),
    };
    if let Err(e) = crate::admin::operator_command(s, operator, action).await {
        holds.lock().remove(operator);
        tracing::warn!(operator, error = ?e, "could not hold the operator for the disposition");
    } else {
        tracing::info!(
            operator,
            "operator held until the call's disposition is saved"
        );
    }
}

/// The appeal `id` has its disposition now: the operator held for it takes calls again
/// (unless they paused for another reason meanwhile).
pub async fn release(s: &AdminState, holds: &Holds, id: AppealId) {
    let held: Vec<String> = {
        let mut h = holds.lock();
        let ops: Vec<String> = h
            .iter()
            .filter(|(_, a)| **a == id)
            .map(|(o, _)| o.clone())
            .collect();
        for o in &ops {
            h.remove(o);
        }
        ops
    };
    for operator in held {
        let contacts = s.stats.registered_contacts();
        let still = s
            .operators
            .view_of(&operator, &contacts, std::time::Instant::now())
            .is_some_and(|v| v.pause_reason.as_deref() == Some(REASON));
        if !still {
            continue;
        }
        if let Err(e) = crate::admin::operator_command(s, &operator, OperatorAction::Unpause).await
        {
            tracing::warn!(operator, error = ?e, "could not resume the operator after the disposition");
        }
    }
}
