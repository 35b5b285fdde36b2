//! Virtual-time tests of what happens to operators outside the queues' lines: a caller handed
//! straight to an operator (an operator's transfer), and operators added, removed or given
//! other skills while the ACD runs (a configuration reload).

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use acd::{AcdError, Action, OperatorState, QueueConfig, Strategy};
use common::{offered_in, op, q, secs, Harness};

fn no_wrap(cfg: &mut QueueConfig) {
    cfg.strategy = Strategy::LongestIdle;
    cfg.wrap_up = secs(0);
}

fn state(h: &Harness, name: &str) -> OperatorState {
    h.acd.operator_status(&op(name)).unwrap().state
}

#[test]
fn a_direct_offer_keeps_queue_callers_away_until_the_call_ends() {
    let mut h = Harness::one_queue(
        |cfg| {
            no_wrap(cfg);
            cfg.wrap_up = secs(10);
        },
        &[("a", 1), ("b", 1)],
    );
    h.ready(&["a", "b"]);
    let now = h.now;
    h.acd.direct_offer(now, &op("a"), Some(&q("q"))).unwrap();
    assert_eq!(state(&h, "a"), OperatorState::Direct { answered: false });
    assert_eq!(h.acd.queue_status(&q("q")).unwrap().free, 1);
    // a queue caller goes to b, although a has been idle longer
    h.join(1, "q");
    assert_eq!(h.offered(1), ["b"]);
    h.answer(1, "b");
    h.join(2, "q");
    assert!(offered_in(&h.take(), 2).is_empty(), "a is taken");
    let now = h.now;
    h.acd.direct_answered(now, &op("a")).unwrap();
    assert_eq!(state(&h, "a"), OperatorState::Direct { answered: true });
    // a second direct offer to a busy operator is refused
    assert_eq!(
        h.acd.direct_offer(now, &op("a"), None),
        Err(AcdError::NotAvailable(op("a")))
    );
    h.advance(secs(300)); // no ring timeout once answered
    assert!(offered_in(&h.take(), 2).is_empty());
    h.end("a");
    assert!(matches!(state(&h, "a"), OperatorState::WrapUp { .. }));
    h.advance(secs(10));
    assert_eq!(h.offered(2), ["a"]);
}

#[test]
fn a_direct_offer_rings_out_after_the_ring_timeout() {
    let mut h = Harness::one_queue(
        |cfg| {
            no_wrap(cfg);
            cfg.ring_timeout = secs(15);
        },
        &[("a", 1)],
    );
    h.ready(&["a"]);
    let now = h.now;
    h.acd.direct_offer(now, &op("a"), None).unwrap();
    h.advance(secs(14));
    assert!(h.take().is_empty());
    h.advance(secs(1));
    assert_eq!(h.take(), [Action::CancelDirect { operator: op("a") }]);
    assert_eq!(state(&h, "a"), OperatorState::Available);
    assert_eq!(h.acd.timer_count(), 0);
    // answering after the timeout is refused; a failed one frees at once
    let now = h.now;
    assert_eq!(
        h.acd.direct_answered(now, &op("a")),
        Err(AcdError::NotDirect(op("a")))
    );
    h.acd.direct_offer(now, &op("a"), None).unwrap();
    h.acd.direct_failed(now, &op("a")).unwrap();
    assert_eq!(state(&h, "a"), OperatorState::Available);
    assert_eq!(h.acd.timer_count(), 0);
    h.join(1, "q");
    assert_eq!(h.offered(1), ["a"]);
}

#[test]
fn a_direct_offer_needs_a_ready_idle_operator() {
    let mut h = Harness::one_queue(no_wrap, &[("a", 1), ("b", 1)]);
    h.ready(&["a"]);
    let now = h.now;
    // b is logged out
    assert_eq!(
        h.acd.direct_offer(now, &op("b"), None),
        Err(AcdError::NotAvailable(op("b")))
    );
    assert_eq!(
        h.acd.direct_offer(now, &op("zz"), None),
        Err(AcdError::UnknownOperator(op("zz")))
    );
    h.join(1, "q");
    h.take();
    // a is ringing for a queue caller
    assert_eq!(
        h.acd.direct_offer(h.now, &op("a"), None),
        Err(AcdError::NotAvailable(op("a")))
    );
    assert_eq!(
        h.acd.direct_failed(h.now, &op("a")),
        Err(AcdError::NotDirect(op("a")))
    );
}

fn two_queues(ops: &[(&str, &[&str])]) -> Harness {
    let mut cfg = acd::AcdConfig {
        queues: vec![QueueConfig::new("a"), QueueConfig::new("b")],
        operators: ops
            .iter()
            .map(|(n, qs)| acd::OperatorConfig::new(*n, qs.iter().map(|q| (*q, 1))))
            .collect(),
    };
    for qc in &mut cfg.queues {
        qc.announce_every = None;
        no_wrap(qc);
    }
    Harness::new(cfg)
}

#[test]
fn a_login_without_queues_covers_every_skill_queue_and_a_named_one_only_those() {
    let mut h = two_queues(&[("x", &["a", "b"]), ("y", &["b"])]);
    let now = h.now;
    // no queues named: every skill queue, in skill order
    assert_eq!(h.acd.login_queues(&op("x"), &[]).unwrap(), [q("a"), q("b")]);
    assert_eq!(h.acd.logged_in_queues(&op("x")), Vec::<acd::QueueId>::new());
    h.acd.set_registered(now, &op("x"), true).unwrap();
    assert_eq!(
        h.acd.login_to(now, &op("x"), &[]).unwrap(),
        [q("a"), q("b")]
    );
    assert_eq!(h.acd.logged_in_queues(&op("x")), [q("a"), q("b")]);
    assert_eq!(h.acd.queue_status(&q("a")).unwrap().logged_in, 1);
    assert_eq!(h.acd.queue_status(&q("b")).unwrap().logged_in, 1);
    // a queue outside the skills, or no queue at all, is refused and changes nothing
    assert_eq!(
        h.acd.login_to(now, &op("y"), &[q("a")]),
        Err(AcdError::NotSkilled {
            operator: op("y"),
            queue: q("a")
        })
    );
    assert_eq!(
        h.acd.login_queues(&op("y"), &[q("zz")]),
        Err(AcdError::UnknownQueue(q("zz")))
    );
    assert_eq!(h.acd.logged_in_queues(&op("y")), Vec::<acd::QueueId>::new());
    // logging in again to queue b alone: x leaves a's staffing and is offered b's callers only
    assert_eq!(h.acd.login_to(now, &op("x"), &[q("b")]).unwrap(), [q("b")]);
    assert_eq!(h.acd.queue_status(&q("a")).unwrap().logged_in, 0);
    assert_eq!(h.acd.queue_status(&q("a")).unwrap().free, 0);
    assert_eq!(h.acd.queue_status(&q("b")).unwrap().free, 1);
    h.join(1, "a");
    assert!(offered_in(&h.take(), 1).is_empty(), "x is not in queue a");
    h.join(2, "b");
    assert_eq!(h.offered(2), ["x"]);
    // logout and a plain login: both queues again
    let now = h.now;
    h.acd.caller_left(now, common::c(2)).unwrap();
    h.acd.logout(now, &op("x")).unwrap();
    assert_eq!(h.acd.queue_status(&q("b")).unwrap().logged_in, 0);
    h.acd.login(now, &op("x")).unwrap();
    assert_eq!(h.acd.logged_in_queues(&op("x")), [q("a"), q("b")]);
    assert_eq!(h.offered(1), ["x"]);
}
