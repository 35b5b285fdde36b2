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
