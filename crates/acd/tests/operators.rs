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

#[test]
fn an_added_operator_starts_logged_out_and_then_takes_calls() {
    let mut h = Harness::one_queue(no_wrap, &[("a", 1)]);
    h.join(1, "q");
    let now = h.now;
    h.acd
        .add_operator(now, acd::OperatorConfig::new("n", [("q", 1)]))
        .unwrap();
    assert_eq!(state(&h, "n"), OperatorState::LoggedOut);
    assert!(h.acd.operators().any(|o| *o == op("n")));
    assert_eq!(
        h.acd
            .add_operator(now, acd::OperatorConfig::new("n", [("q", 1)])),
        Err(AcdError::OperatorExists(op("n")))
    );
    assert!(matches!(
        h.acd
            .add_operator(now, acd::OperatorConfig::new("m", [("nowhere", 1)])),
        Err(AcdError::BadSkills(_))
    ));
    assert!(matches!(
        h.acd
            .add_operator(now, acd::OperatorConfig::new("m", [("q", 10)])),
        Err(AcdError::BadSkills(_))
    ));
    assert_eq!(h.acd.operator_status(&op("m")), None);
    h.ready(&["n"]);
    assert_eq!(h.offered(1), ["n"]);
}

#[test]
fn a_removed_operator_keeps_the_call_and_is_gone_when_it_ends() {
    let mut h = Harness::one_queue(no_wrap, &[("a", 1), ("b", 1)]);
    h.ready(&["a", "b"]);
    h.join(1, "q");
    assert_eq!(h.offered(1), ["a"]);
    h.answer(1, "a");
    let now = h.now;
    h.acd.remove_operator(now, &op("a")).unwrap();
    assert_eq!(h.acd.queue_status(&q("q")).unwrap().logged_in, 1);
    assert_eq!(
        state(&h, "a"),
        OperatorState::OnCall {
            caller: common::c(1)
        }
    );
    // no login while leaving; nothing offered to a
    assert_eq!(
        h.acd.login(now, &op("a")),
        Err(AcdError::UnknownOperator(op("a")))
    );
    h.end("a");
    assert_eq!(h.acd.operator_status(&op("a")), None);
    assert!(!h.acd.operators().any(|o| *o == op("a")));
    assert_eq!(
        h.acd.call_ended(h.now, &op("a")),
        Err(AcdError::UnknownOperator(op("a")))
    );
    h.join(2, "q");
    assert_eq!(h.offered(2), ["b"]);
    // added back: a new, logged-out operator
    let now = h.now;
    h.acd
        .add_operator(now, acd::OperatorConfig::new("a", [("q", 1)]))
        .unwrap();
    assert_eq!(state(&h, "a"), OperatorState::LoggedOut);
}

#[test]
fn removing_a_ringing_operator_cancels_the_offer_and_rings_the_next() {
    let mut h = Harness::one_queue(
        |cfg| {
            no_wrap(cfg);
            cfg.wrap_up = secs(30);
        },
        &[("a", 1), ("b", 1)],
    );
    h.ready(&["a", "b"]);
    h.join(1, "q");
    assert_eq!(h.offered(1), ["a"]);
    let now = h.now;
    h.acd.remove_operator(now, &op("a")).unwrap();
    let acts = h.take();
    assert!(
        acts.contains(&Action::CancelOffer {
            caller: common::c(1),
            operator: op("a")
        }),
        "{acts:?}"
    );
    assert_eq!(offered_in(&acts, 1), ["b"]);
    assert_eq!(h.acd.operator_status(&op("a")), None);
    assert_eq!(h.acd.queue_status(&q("q")).unwrap().logged_in, 1);
    // a removed operator in wrap-up leaves at once, its timer with it
    h.answer(1, "b");
    h.end("b");
    assert!(matches!(state(&h, "b"), OperatorState::WrapUp { .. }));
    let now = h.now;
    h.acd.remove_operator(now, &op("b")).unwrap();
    assert_eq!(h.acd.operator_status(&op("b")), None);
    assert_eq!(h.acd.timer_count(), 0);
}

#[test]
fn new_skills_move_a_logged_in_operator_to_other_queues() {
    let mut h = two_queues(&[("x", &["a"])]);
    h.ready(&["x"]);
    assert_eq!(h.acd.logged_in_queues(&op("x")), [q("a")]);
    h.join(1, "b");
    assert!(offered_in(&h.take(), 1).is_empty());
    let now = h.now;
    h.acd
        .set_skills(
            now,
            &op("x"),
            vec![acd::Skill {
                queue: q("b"),
                level: 2,
            }],
        )
        .unwrap();
    assert_eq!(h.acd.logged_in_queues(&op("x")), [q("b")]);
    assert_eq!(h.acd.queue_status(&q("a")).unwrap().logged_in, 0);
    assert_eq!(h.acd.queue_status(&q("b")).unwrap().logged_in, 1);
    assert_eq!(h.offered(1), ["x"]);
    assert!(matches!(
        h.acd.set_skills(
            now,
            &op("x"),
            vec![acd::Skill {
                queue: q("zz"),
                level: 1
            }]
        ),
        Err(AcdError::BadSkills(_))
    ));
    assert_eq!(
        h.acd.set_skills(now, &op("nobody"), vec![]),
        Err(AcdError::UnknownOperator(op("nobody")))
    );
}
