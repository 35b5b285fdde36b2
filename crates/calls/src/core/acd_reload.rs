//! A reload's operators reach the running ACD: an operator added to the operators file
//! joins it (logged out, registered if a phone already is), a removed one leaves it (at once,
//! or when the call in progress ends; a ringing offer is cancelled), one whose skills changed
//! gets them (`Acd::set_skills`), and the operator book hears of the queues a logged-in
//! operator now works in. The queues themselves are restart-only
//! (`Settings::keep_restart_only`).

use std::time::Instant;

use acd::{OperatorConfig, OperatorId};
use tracing::{info, warn};

use acd::Acd;
use sip::registrar::Registrar;

use super::Out;
use crate::io::{BookEntry, Output};
use crate::settings::Settings;

/// Applies the difference between `old`'s operators and `new`'s to the ACD (an operator
/// added is registered when `registrar` has a phone for them); the book hears of the queues
/// of operators whose skills changed. The router carries out what the ACD asks next.
pub(super) fn reload_operators(
    now: Instant,
    acd: &mut Acd,
    registrar: &Registrar,
    old: &Settings,
    new: &Settings,
    out: &mut Out,
) {
    let empty = Vec::new();
    let before: &Vec<OperatorConfig> = old.acd.as_ref().map_or(&empty, |a| &a.operators);
    let after: &Vec<OperatorConfig> = new.acd.as_ref().map_or(&empty, |a| &a.operators);
    for o in before {
        if !after.iter().any(|n| n.id == o.id) {
            match acd.remove_operator(now, &o.id) {
                Ok(()) => info!(operator = %o.id, "operator removed from the ACD"),
                Err(e) => {
                    warn!(operator = %o.id, error = %e, "operator not removed from the ACD")
                }
            }
        }
    }
    let mut reskilled: Vec<OperatorId> = Vec::new();
    for n in after {
        match before.iter().find(|o| o.id == n.id) {
            None => {
                let registered = !registrar.lookup(now, n.id.as_str()).is_empty();
                let added = acd
                    .add_operator(now, n.clone())
                    .and_then(|()| acd.set_registered(now, &n.id, registered));
                match added {
                    Ok(()) => info!(operator = %n.id, "operator added to the ACD"),
                    Err(e) => {
                        warn!(operator = %n.id, error = %e, "operator not added to the ACD")
                    }
                }
            }
            Some(o) if o.skills != n.skills => match acd.set_skills(now, &n.id, n.skills.clone()) {
                Ok(()) => {
                    info!(operator = %n.id, "operator's skills changed in the ACD");
                    reskilled.push(n.id.clone());
                }
                Err(e) => {
                    warn!(operator = %n.id, error = %e, "skills not changed in the ACD")
                }
            },
            Some(_) => {}
        }
    }
    for id in reskilled {
        let queues: Vec<String> = acd
            .logged_in_queues(&id)
            .iter()
            .map(|q| q.as_str().to_owned())
            .collect();
        if !queues.is_empty() {
            out.push(Output::Book(BookEntry::QueuesChanged {
                operator: id.as_str().to_owned(),
                queues,
            }));
        }
    }
}
