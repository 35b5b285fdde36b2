//! Virtual-time tests of each strategy, timeouts, wrap-up, overflow, callbacks, returning
//! callers, estimates and skills escalation.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use acd::{
    AcdConfig, AcdError, Action, CallbackConfig, CallbackResult, EmptyRule, Estimate, OfferFailure,
    OperatorConfig, OperatorState, Outcome, OverflowAction, OverflowReason, PauseReason,
    QueueConfig, ReturningConfig, Strategy,
};
use common::{c, offered_in, op, q, secs, Harness};

fn no_wrap(s: Strategy) -> impl FnOnce(&mut QueueConfig) {
    move |cfg| {
        cfg.strategy = s;
        cfg.wrap_up = secs(0);
    }
}

fn state(h: &Harness, name: &str) -> OperatorState {
    h.acd.operator_status(&op(name)).unwrap().state
}

#[test]
fn longest_idle_picks_the_operator_idle_longest() {
    let mut h = Harness::one_queue(
        no_wrap(Strategy::LongestIdle),
        &[("a", 1), ("b", 1), ("c", 1)],
    );
    h.ready(&["c", "a", "b"]); // c logged in first
    h.join(1, "q");
    assert_eq!(h.offered(1), ["c"]);
    h.answer(1, "c");
    h.join(2, "q");
    assert_eq!(h.offered(2), ["a"]);
    h.answer(2, "a");
    h.advance(secs(60));
    h.end("c"); // c is now the most recently idle
    h.join(3, "q");
    assert_eq!(h.offered(3), ["b"]);
    h.answer(3, "b");
    h.join(4, "q");
    assert_eq!(h.offered(4), ["c"]);
}

#[test]
fn round_robin_continues_after_the_last_one_picked() {
    let mut h = Harness::one_queue(
        no_wrap(Strategy::RoundRobin),
        &[("a", 1), ("b", 1), ("c", 1)],
    );
    h.ready(&["c", "b", "a"]); // idle order must not matter
    let mut got = Vec::new();
    for n in 1..=5 {
        h.join(n, "q");
        let o = h.offered(n);
        assert_eq!(o.len(), 1);
        h.answer(n, &o[0]);
        h.end(&o[0]);
        got.push(o[0].clone());
    }
    assert_eq!(got, ["a", "b", "c", "a", "b"]);
    // A busy operator is skipped and the memory moves past the one actually picked.
    h.join(6, "q");
    assert_eq!(h.offered(6), ["c"]);
    h.answer(6, "c");
    h.join(7, "q");
    assert_eq!(h.offered(7), ["a"]);
}

#[test]
fn fewest_calls_beats_idle_time() {
    for (strategy, expect) in [(Strategy::FewestCalls, "c"), (Strategy::LongestIdle, "a")] {
        let mut h = Harness::one_queue(no_wrap(strategy), &[("a", 1), ("b", 1), ("c", 1)]);
        h.ready(&["a"]);
        for n in 1..=2 {
            h.join(n, "q");
            assert_eq!(h.offered(n), ["a"]);
            h.answer(n, "a");
            h.end("a");
        }
        h.advance(secs(10));
        h.ready(&["c"]); // idle for less time than a, but no calls yet
        h.join(3, "q");
        assert_eq!(h.offered(3), [expect], "{strategy:?}");
    }
}

#[test]
fn ring_all_offers_everyone_and_cancels_the_rest_on_answer() {
    let mut h = Harness::one_queue(no_wrap(Strategy::RingAll), &[("a", 1), ("b", 1), ("c", 1)]);
    h.ready(&["a", "b", "c"]);
    h.join(1, "q");
    let mut o = h.offered(1);
    o.sort();
    assert_eq!(o, ["a", "b", "c"]);
    // Nobody ringing may be offered a second caller meanwhile.
    h.join(2, "q");
    assert!(h.take().is_empty());
    let acts = h.answer(1, "b");
    let cancelled: Vec<_> = acts
        .iter()
        .filter_map(|a| match a {
            Action::CancelOffer { caller, operator } if *caller == c(1) => {
                Some(operator.as_str().to_owned())
            }
            _ => None,
        })
        .collect();
    assert_eq!(cancelled, ["a", "c"]);
    let connect = acts.iter().position(|a| {
        *a == Action::Connect {
            caller: c(1),
            operator: op("b"),
        }
    });
    let left = acts.iter().position(|a| {
        *a == Action::Left {
            caller: c(1),
            outcome: Outcome::Answered { operator: op("b") },
        }
    });
    assert!(connect.unwrap() < left.unwrap());
    // The two released operators ring at once for the next caller.
    let mut o = offered_in(&acts, 2);
    o.sort();
    assert_eq!(o, ["a", "c"]);
}

#[test]
fn ring_timeout_moves_on_and_pauses_after_n_misses() {
    let mut h = Harness::one_queue(
        |cfg| {
            cfg.ring_timeout = secs(15);
            cfg.max_no_answer = 2;
        },
        &[("a", 1), ("b", 1)],
    );
    h.ready(&["a", "b"]);
    h.join(1, "q");
    assert_eq!(h.offered(1), ["a"]);
    h.advance(secs(14));
    assert!(h.take().is_empty());
    h.advance(secs(1));
    let acts = h.take();
    assert_eq!(
        acts[0],
        Action::CancelOffer {
            caller: c(1),
            operator: op("a")
        }
    );
    assert_eq!(offered_in(&acts, 1), ["b"]);
    assert_eq!(h.acd.operator_status(&op("a")).unwrap().missed, 1);
    // A late answer from a is refused: the daemon must hang that leg up.
    assert_eq!(
        h.acd.offer_answered(h.now, c(1), &op("a")),
        Err(AcdError::NotOffered {
            caller: c(1),
            operator: op("a")
        })
    );
    h.answer(1, "b");
    h.join(2, "q");
    assert_eq!(h.offered(2), ["a"]);
    h.acd
        .offer_failed(h.now, c(2), &op("a"), OfferFailure::NoAnswer)
        .unwrap();
    let acts = h.take();
    assert!(acts.contains(&Action::OperatorPaused {
        operator: op("a"),
        reason: PauseReason::NoAnswer(2)
    }));
    assert_eq!(
        state(&h, "a"),
        OperatorState::Paused(PauseReason::NoAnswer(2))
    );
    assert!(offered_in(&acts, 2).is_empty(), "b is busy, a is paused");
    h.acd.unpause(h.now, &op("a")).unwrap();
    assert_eq!(h.acd.operator_status(&op("a")).unwrap().missed, 0);
    // a already missed caller 2: it is tried again only after the queue's retry delay.
    assert!(h.take().is_empty());
    h.advance(secs(5));
    assert_eq!(h.offered(2), ["a"]);
}

#[test]
fn busy_moves_on_without_counting_a_miss() {
    let mut h = Harness::one_queue(|cfg| cfg.max_no_answer = 1, &[("a", 1), ("b", 1)]);
    h.ready(&["a", "b"]);
    h.join(1, "q");
    assert_eq!(h.offered(1), ["a"]);
    h.acd
        .offer_failed(h.now, c(1), &op("a"), OfferFailure::Busy)
        .unwrap();
    assert_eq!(h.offered(1), ["b"]);
    assert_eq!(state(&h, "a"), OperatorState::Available);
}

#[test]
fn a_lone_operator_is_retried_after_the_retry_delay() {
    let mut h = Harness::one_queue(
        |cfg| {
            cfg.ring_timeout = secs(10);
            cfg.retry_delay = secs(5);
            cfg.max_no_answer = 0;
        },
        &[("a", 1)],
    );
    h.ready(&["a"]);
    h.join(1, "q");
    assert_eq!(h.offered(1), ["a"]);
    h.advance(secs(10));
    assert!(offered_in(&h.take(), 1).is_empty());
    h.advance(secs(4));
    assert!(h.take().is_empty());
    h.advance(secs(1));
    assert_eq!(h.offered(1), ["a"]);
}

#[test]
fn wrap_up_holds_the_operator_back() {
    let mut h = Harness::one_queue(|cfg| cfg.wrap_up = secs(30), &[("a", 1)]);
    h.ready(&["a"]);
    h.join(1, "q");
    h.take();
    h.answer(1, "a");
    h.join(2, "q");
    h.advance(secs(100));
    h.end("a");
    assert_eq!(
        state(&h, "a"),
        OperatorState::WrapUp {
            until: h.now + secs(30)
        }
    );
    h.advance(secs(29));
    assert!(h.take().is_empty());
    h.advance(secs(1));
    assert_eq!(h.offered(2), ["a"]);
}

#[test]
fn unregistered_or_logged_out_operators_are_not_offered() {
    let mut h = Harness::one_queue(|_| {}, &[("a", 1)]);
    h.acd.login(h.now, &op("a")).unwrap();
    h.join(1, "q");
    assert!(h.take().is_empty(), "no registered contact");
    h.acd.set_registered(h.now, &op("a"), true).unwrap();
    assert_eq!(h.offered(1), ["a"]);
    h.acd.logout(h.now, &op("a")).unwrap();
    let acts = h.take();
    assert_eq!(
        acts,
        [Action::CancelOffer {
            caller: c(1),
            operator: op("a")
        }]
    );
    assert_eq!(state(&h, "a"), OperatorState::LoggedOut);
}

#[test]
fn higher_priority_first_then_arrival_order() {
    let mut h = Harness::one_queue(no_wrap(Strategy::LongestIdle), &[("a", 1)]);
    h.join_full(1, "q", 0, None);
    h.join_full(2, "q", 0, None);
    h.join_full(3, "q", 5, None);
    h.join_full(4, "q", 0, None);
    h.ready(&["a"]);
    let mut order = Vec::new();
    let mut acts = h.take();
    for _ in 0..4 {
        let n = (1..=4).find(|&n| !offered_in(&acts, n).is_empty()).unwrap();
        order.push(n);
        h.answer(n, "a");
        acts = h.end("a");
    }
    assert_eq!(order, [3, 1, 2, 4]);
}

#[test]
fn caller_hanging_up_while_ringing_cancels_the_offer() {
    let mut h = Harness::one_queue(|_| {}, &[("a", 1)]);
    h.ready(&["a"]);
    h.join(1, "q");
    h.take();
    h.acd.caller_left(h.now, c(1)).unwrap();
    assert_eq!(
        h.take(),
        [
            Action::CancelOffer {
                caller: c(1),
                operator: op("a")
            },
            Action::Left {
                caller: c(1),
                outcome: Outcome::Abandoned
            }
        ]
    );
    assert_eq!(state(&h, "a"), OperatorState::Available);
    assert_eq!(h.acd.caller_count(), 0);
    assert_eq!(h.acd.timer_count(), 0);
}

fn two_queues(
    first: impl FnOnce(&mut QueueConfig),
    second: impl FnOnce(&mut QueueConfig),
) -> Harness {
    let mut a = QueueConfig::new("q");
    a.announce_every = None;
    first(&mut a);
    let mut b = QueueConfig::new("q2");
    b.announce_every = None;
    second(&mut b);
    Harness::new(AcdConfig {
        queues: vec![a, b],
        operators: vec![
            OperatorConfig::new("a", [("q", 1)]),
            OperatorConfig::new("b", [("q2", 1)]),
        ],
    })
}

#[test]
fn max_wait_overflows_to_another_queue_then_to_a_message() {
    let mut h = two_queues(
        |cfg| {
            cfg.max_wait = Some(secs(60));
            cfg.overflow = OverflowAction::Queue(q("q2"));
        },
        |cfg| {
            cfg.max_wait = Some(secs(30));
            cfg.overflow = OverflowAction::Queue(q("q")); // back: already visited → message
        },
    );
    h.join(1, "q");
    h.advance(secs(59));
    assert!(h.take().is_empty());
    h.advance(secs(1));
    assert_eq!(
        h.take(),
        [Action::Overflow {
            caller: c(1),
            to: OverflowAction::Queue(q("q2")),
            reason: OverflowReason::MaxWait
        }]
    );
    assert_eq!(h.acd.queue_status(&q("q2")).unwrap().waiting, 1);
    assert_eq!(h.acd.queue_status(&q("q")).unwrap().waiting, 0);
    h.advance(secs(30));
    assert_eq!(
        h.take(),
        [
            Action::Overflow {
                caller: c(1),
                to: OverflowAction::Message,
                reason: OverflowReason::MaxWait
            },
            Action::Left {
                caller: c(1),
                outcome: Outcome::Overflowed
            }
        ]
    );
    assert_eq!(h.acd.caller_count(), 0);
    assert_eq!(h.acd.timer_count(), 0);
}

#[test]
fn overflowed_caller_is_answered_in_the_new_queue() {
    let mut h = two_queues(
        |cfg| {
            cfg.max_wait = Some(secs(60));
            cfg.overflow = OverflowAction::Queue(q("q2"));
        },
        |_| {},
    );
    h.ready(&["b"]);
    h.join(1, "q");
    h.advance(secs(60));
    assert_eq!(h.offered(1), ["b"]);
}

#[test]
fn max_wait_does_not_cut_a_ringing_offer() {
    let mut h = Harness::one_queue(
        |cfg| {
            cfg.max_wait = Some(secs(20));
            cfg.ring_timeout = secs(30);
        },
        &[("a", 1), ("b", 1)],
    );
    h.ready(&["a", "b"]);
    h.join(1, "q");
    h.join(2, "q");
    h.take();
    h.advance(secs(25));
    assert!(h.take().is_empty());
    h.answer(1, "a");
    h.acd
        .offer_failed(h.now, c(2), &op("b"), OfferFailure::NoAnswer)
        .unwrap();
    let acts = h.take();
    assert_eq!(
        acts[0],
        Action::Overflow {
            caller: c(2),
            to: OverflowAction::Message,
            reason: OverflowReason::MaxWait
        }
    );
}

#[test]
fn a_full_queue_overflows_newcomers() {
    let mut h = Harness::one_queue(|cfg| cfg.max_len = Some(1), &[("a", 1)]);
    h.join(1, "q");
    h.join(2, "q");
    assert_eq!(
        h.take(),
        [
            Action::Overflow {
                caller: c(2),
                to: OverflowAction::Message,
                reason: OverflowReason::Full
            },
            Action::Left {
                caller: c(2),
                outcome: Outcome::Overflowed
            }
        ]
    );
    assert_eq!(h.acd.queue_status(&q("q")).unwrap().waiting, 1);
}

#[test]
fn leave_when_empty_and_join_when_empty() {
    let mut h = Harness::one_queue(
        |cfg| {
            cfg.leave_empty = EmptyRule::NoneLoggedIn;
            cfg.join_empty = EmptyRule::NoneReady;
        },
        &[("a", 1)],
    );
    h.ready(&["a"]);
    h.acd
        .pause(h.now, &op("a"), PauseReason::Requested("lunch".into()))
        .unwrap();
    // Paused: nobody ready, so a newcomer is refused…
    h.join(1, "q");
    let acts = h.take();
    assert_eq!(
        acts[0],
        Action::Overflow {
            caller: c(1),
            to: OverflowAction::Message,
            reason: OverflowReason::Empty
        }
    );
    // …but someone who joined while a was ready stays while a is logged in.
    h.acd.unpause(h.now, &op("a")).unwrap();
    h.join(2, "q");
    h.take();
    h.answer(2, "a");
    h.join(3, "q");
    h.acd
        .pause(h.now, &op("a"), PauseReason::Requested("x".into()))
        .unwrap();
    assert!(h.take().is_empty());
    h.acd.logout(h.now, &op("a")).unwrap();
    assert_eq!(
        h.take(),
        [
            Action::Overflow {
                caller: c(3),
                to: OverflowAction::Message,
                reason: OverflowReason::Empty
            },
            Action::Left {
                caller: c(3),
                outcome: Outcome::Overflowed
            }
        ]
    );
}

#[test]
fn callback_flow_end_to_end() {
    let mut h = Harness::one_queue(
        |cfg| {
            cfg.wrap_up = secs(0);
            cfg.callback = Some(CallbackConfig {
                offer_after: Some(secs(60)),
                max_attempts: 3,
                retry_interval: secs(120),
            });
        },
        &[("a", 1)],
    );
    h.ready(&["a"]);
    h.join(100, "q");
    h.take();
    h.answer(100, "a"); // a is busy from here
    h.join(1, "q");
    h.advance(secs(1));
    h.join(2, "q");
    h.advance(secs(59));
    assert_eq!(h.take(), [Action::OfferCallback { caller: c(1) }]);
    h.acd
        .callback_requested(h.now, c(1), "+73830000001")
        .unwrap();
    let st = h.acd.queue_status(&q("q")).unwrap();
    assert_eq!((st.waiting, st.callbacks), (1, 1));
    h.advance(secs(1));
    assert_eq!(h.take(), [Action::OfferCallback { caller: c(2) }]);
    // Caller 1 kept its place: it comes before caller 2 still on the line.
    assert_eq!(
        h.end("a"),
        [Action::StartCallback {
            caller: c(1),
            number: "+73830000001".into(),
            operator: op("a")
        }]
    );
    assert!(
        h.answer(1, "a").is_empty(),
        "no Connect: the daemon dials the caller now"
    );
    assert_eq!(state(&h, "a"), OperatorState::OnCall { caller: c(1) });
    h.acd
        .callback_result(h.now, c(1), CallbackResult::NoAnswer)
        .unwrap();
    // The operator is free at once and takes caller 2 from the line.
    assert_eq!(h.offered(2), ["a"]);
    h.answer(2, "a");
    h.end("a");
    // Outside working hours the retry waits for the queue to open.
    h.acd.set_open(h.now, &q("q"), false).unwrap();
    h.advance(secs(300));
    assert!(h.take().is_empty());
    h.acd.set_open(h.now, &q("q"), true).unwrap();
    assert!(matches!(
        h.take()[..],
        [Action::StartCallback { caller, .. }] if caller == c(1)
    ));
    h.answer(1, "a");
    h.acd
        .callback_result(h.now, c(1), CallbackResult::Answered)
        .unwrap();
    assert_eq!(
        h.take(),
        [Action::Left {
            caller: c(1),
            outcome: Outcome::CalledBack { operator: op("a") }
        }]
    );
    h.end("a");
    assert_eq!(h.acd.caller_count(), 0);
    assert_eq!(h.acd.timer_count(), 0);
}

#[test]
fn callback_gives_up_after_max_attempts() {
    let mut h = Harness::one_queue(
        |cfg| {
            cfg.wrap_up = secs(0);
            cfg.callback = Some(CallbackConfig {
                offer_after: None,
                max_attempts: 2,
                retry_interval: secs(60),
            });
        },
        &[("a", 1)],
    );
    h.join(1, "q");
    h.acd.callback_requested(h.now, c(1), "+7383").unwrap();
    h.ready(&["a"]);
    for attempt in 1..=2 {
        assert!(
            matches!(h.take()[..], [Action::StartCallback { .. }]),
            "attempt {attempt}"
        );
        h.answer(1, "a");
        h.acd
            .callback_result(h.now, c(1), CallbackResult::Busy)
            .unwrap();
        h.advance(secs(60));
    }
    let log: Vec<_> = h.log.iter().map(|(_, a)| a.clone()).collect();
    assert!(log.contains(&Action::Left {
        caller: c(1),
        outcome: Outcome::CallbackFailed { attempts: 2 }
    }));
    assert_eq!(state(&h, "a"), OperatorState::Available);
    assert_eq!(h.acd.timer_count(), 0);
}

#[test]
fn returning_caller_goes_to_the_previous_operator() {
    let mut h = Harness::one_queue(
        |cfg| {
            cfg.returning = Some(ReturningConfig {
                lookback: secs(7 * 86400),
                wait_for_operator: secs(30),
            });
        },
        &[("a", 1), ("b", 1), ("c", 1)],
    );
    h.ready(&["a", "b", "c"]);
    h.join_full(1, "q", 0, Some("b"));
    assert_eq!(h.offered(1), ["b"], "b, although a is idle longer");
    h.answer(1, "b");
    // b is busy: caller 2 is held for b, caller 3 (no preference) is served meanwhile.
    h.join_full(2, "q", 0, Some("b"));
    h.join(3, "q");
    let acts = h.take();
    assert!(offered_in(&acts, 2).is_empty());
    assert_eq!(offered_in(&acts, 3), ["a"]);
    h.answer(3, "a");
    h.advance(secs(29));
    assert!(h.take().is_empty());
    h.advance(secs(1));
    assert_eq!(h.offered(2), ["c"], "the hold ran out");
}

#[test]
fn returning_caller_gets_the_operator_as_soon_as_free() {
    let mut h = Harness::one_queue(
        |cfg| {
            cfg.wrap_up = secs(0);
            cfg.returning = Some(ReturningConfig {
                lookback: secs(86400),
                wait_for_operator: secs(30),
            });
        },
        &[("a", 1), ("b", 1)],
    );
    h.ready(&["a", "b"]);
    h.join(1, "q");
    h.take();
    h.answer(1, "a");
    h.join(2, "q"); // ahead in line, no preference
    h.join_full(3, "q", 0, Some("a"));
    assert_eq!(h.offered(2), ["b"]);
    h.answer(2, "b");
    h.advance(secs(10));
    assert!(offered_in(&h.end("b"), 3).is_empty(), "held for a");
    // The returning caller goes to a, not to b whom the strategy would pick.
    assert_eq!(offered_in(&h.end("a"), 3), ["a"]);
}

#[test]
fn estimates_are_honest() {
    let mut h = Harness::one_queue(
        |cfg| {
            cfg.wrap_up = secs(0);
            cfg.announce_every = Some(secs(60));
            cfg.estimate_cap_minutes = 3;
        },
        &[("a", 1), ("b", 1)],
    );
    let announce = |acts: &[Action], n: u64| {
        acts.iter().find_map(|a| match a {
            Action::Announce {
                caller,
                position,
                estimated_wait,
            } if *caller == c(n) => Some((*position, *estimated_wait)),
            _ => None,
        })
    };
    // Nobody logged in.
    h.join(1, "q");
    assert_eq!(announce(&h.take(), 1), Some((1, Estimate::MoreThan(3))));
    h.acd.caller_left(h.now, c(1)).unwrap();
    // Operators but no history.
    h.ready(&["a", "b"]);
    h.join(2, "q");
    h.answer(2, "a");
    h.join(3, "q");
    h.answer(3, "b");
    h.join(4, "q");
    assert_eq!(announce(&h.take(), 4), Some((1, Estimate::MoreThan(3))));
    h.acd.caller_left(h.now, c(4)).unwrap();
    // Two 4-minute calls: mean handle time 240 s over 2 ready operators = 2 min per place.
    h.advance(secs(240));
    h.end("a");
    h.end("b");
    h.join(5, "q");
    h.answer(5, "a");
    h.join(6, "q");
    h.answer(6, "b");
    h.join(7, "q");
    assert_eq!(announce(&h.take(), 7), Some((1, Estimate::Minutes(2))));
    h.join(8, "q");
    assert_eq!(announce(&h.take(), 8), Some((2, Estimate::MoreThan(3))));
    // Periodic: when the operators pause, nobody is ready any more.
    h.acd
        .pause(h.now, &op("a"), PauseReason::Requested("x".into()))
        .unwrap();
    h.acd
        .pause(h.now, &op("b"), PauseReason::Requested("x".into()))
        .unwrap();
    h.advance(secs(60));
    assert_eq!(announce(&h.take(), 7), Some((1, Estimate::MoreThan(3))));
}

#[test]
fn skills_escalate_by_level_as_the_wait_grows() {
    let mut h = Harness::one_queue(
        |cfg| {
            cfg.escalation_step = Some(secs(30));
        },
        &[("l1", 1), ("l2", 2), ("l3", 3)],
    );
    h.ready(&["l3", "l2", "l1"]); // the less skilled have been idle longest
    h.join(1, "q");
    assert_eq!(h.offered(1), ["l1"]);
    h.answer(1, "l1");
    h.join(2, "q");
    h.advance(secs(29));
    assert!(h.take().is_empty());
    h.advance(secs(1));
    assert_eq!(h.offered(2), ["l2"]);
    h.answer(2, "l2");
    h.join(3, "q");
    h.advance(secs(59));
    assert!(h.take().is_empty());
    h.advance(secs(1));
    assert_eq!(h.offered(3), ["l3"]);
}

#[test]
fn escalation_skips_levels_nobody_staffs() {
    let mut h = Harness::one_queue(
        |cfg| cfg.escalation_step = Some(secs(30)),
        &[("l1", 1), ("l5", 5)],
    );
    h.ready(&["l5"]);
    h.join(1, "q");
    assert_eq!(
        h.offered(1),
        ["l5"],
        "no level 1 operator is ready: no waiting for one"
    );
}

#[test]
fn skills_strategy_prefers_the_lowest_level() {
    let mut h = Harness::one_queue(no_wrap(Strategy::Skills), &[("l1", 1), ("l2", 2)]);
    h.ready(&["l2", "l1"]);
    h.join(1, "q");
    assert_eq!(h.offered(1), ["l1"]);
    h.join(2, "q");
    assert_eq!(h.offered(2), ["l2"]);
}

#[test]
fn errors_name_what_is_wrong() {
    let mut h = Harness::one_queue(|_| {}, &[("a", 1)]);
    let now = h.now;
    assert_eq!(
        h.acd.caller_joined(now, c(1), &q("nope"), 0, None),
        Err(AcdError::UnknownQueue(q("nope")))
    );
    h.join(1, "q");
    assert_eq!(
        h.acd.caller_joined(now, c(1), &q("q"), 0, None),
        Err(AcdError::CallerExists(c(1)))
    );
    assert_eq!(
        h.acd.call_ended(now, &op("a")),
        Err(AcdError::NotOnCall(op("a")))
    );
    assert_eq!(
        h.acd.login(now, &op("zz")),
        Err(AcdError::UnknownOperator(op("zz")))
    );
    assert_eq!(
        h.acd.callback_requested(now, c(1), "1"),
        Err(AcdError::CallbackNotEnabled(q("q")))
    );
    assert_eq!(
        h.acd.caller_left(now, c(9)),
        Err(AcdError::UnknownCaller(c(9)))
    );
}

#[test]
fn bad_configuration_is_refused() {
    let mut cfg = AcdConfig {
        queues: vec![QueueConfig::new("q")],
        operators: vec![OperatorConfig::new("a", [("q", 10)])],
    };
    assert!(matches!(
        acd::Acd::new(cfg.clone()),
        Err(acd::ConfigError::BadLevel { level: 10, .. })
    ));
    cfg.operators = vec![OperatorConfig::new("a", [("x", 1)])];
    assert!(matches!(
        acd::Acd::new(cfg.clone()),
        Err(acd::ConfigError::UnknownSkillQueue { .. })
    ));
    cfg.operators.clear();
    cfg.queues[0].overflow = OverflowAction::Callback;
    assert!(matches!(
        acd::Acd::new(cfg.clone()),
        Err(acd::ConfigError::CallbackOverflowWithoutCallback(_))
    ));
    cfg.queues[0].overflow = OverflowAction::Message;
    cfg.queues[0].ring_timeout = secs(0);
    assert!(matches!(
        acd::Acd::new(cfg),
        Err(acd::ConfigError::Zero {
            field: "ring_timeout",
            ..
        })
    ));
}

#[test]
fn pausing_while_ringing_hands_the_caller_on() {
    let mut h = Harness::one_queue(|_| {}, &[("a", 1), ("b", 1)]);
    h.ready(&["a", "b"]);
    h.join(1, "q");
    assert_eq!(h.offered(1), ["a"]);
    h.acd
        .pause(h.now, &op("a"), PauseReason::Requested("tea".into()))
        .unwrap();
    let acts = h.take();
    assert_eq!(
        acts[0],
        Action::CancelOffer {
            caller: c(1),
            operator: op("a")
        }
    );
    assert_eq!(offered_in(&acts, 1), ["b"]);
    assert_eq!(
        h.acd.operator_status(&op("a")).unwrap().missed,
        0,
        "a pause is not a miss"
    );
}
