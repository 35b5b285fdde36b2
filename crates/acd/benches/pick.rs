//! Micro-benchmarks of the ACD's hot inputs at the scale: one queue, 1 000 operators,
//! 10 000 callers waiting (issue #7). Each measures one input and the actions it queues,
//! drained as the daemon drains them:
//! - `caller_joined` (and `caller_left`) while 10 000 wait and every operator is busy: the sorted
//!   insert and the position announcement;
//! - the next pick: an operator's call ends while 10 000 wait; the ACD offers it the head caller;
//! - `offer_answered` for that offer (`Connect` + `Left`);
//! - the pick among 1 000 free operators for a caller arriving at an empty queue.
//!
//! Run: `cargo bench -p acd --bench pick`. Time is virtual: every input gets the same `Instant`
//! (wrap-up 0, so no timer has to run between a call's end and the next offer).

use std::hint::black_box;
use std::time::{Duration, Instant};

use acd::{Acd, AcdConfig, Action, CallerId, OperatorConfig, OperatorId, QueueConfig, QueueId};
use criterion::{criterion_group, criterion_main, Criterion};

const OPERATORS: usize = 1_000;
const WAITING: u64 = 10_000;

fn op(i: usize) -> OperatorId {
    OperatorId::from(format!("op{i:04}").as_str())
}

/// An ACD with one queue (longest idle, wrap-up 0) and `OPERATORS` operators logged in and
/// registered, all free.
fn acd(now: Instant) -> (Acd, QueueId) {
    let q = QueueId::from("benefits");
    let mut cfg = QueueConfig::new(q.clone());
    cfg.wrap_up = Duration::ZERO;
    let operators = (0..OPERATORS)
        .map(|i| OperatorConfig::new(op(i), [(q.clone(), 1)]))
        .collect();
    let mut a = Acd::new(AcdConfig {
        queues: vec![cfg],
        operators,
    })
    .expect("bench config is valid");
    for i in 0..OPERATORS {
        a.set_registered(now, &op(i), true).expect("known operator");
        a.login(now, &op(i)).expect("known operator");
    }
    drain(&mut a);
    (a, q)
}

/// Runs the timers already due (a zero wrap-up may be one).
fn settle(a: &mut Acd, now: Instant) {
    if a.poll_timeout().is_some_and(|t| t <= now) {
        a.handle_timeout(now);
    }
}

/// Drains the queued actions; returns the (caller, operator) of the last offer.
fn drain(a: &mut Acd) -> Option<(CallerId, OperatorId)> {
    let mut offer = None;
    while let Some(action) = a.poll_action() {
        if let Action::Offer { caller, operators } = action {
            offer = operators.first().map(|o| (caller, o.clone()));
        }
    }
    offer
}

/// Every operator on a call (each offered a caller and answered), then `WAITING` more callers
/// waiting. Returns the ACD, the queue and the next caller id.
fn busy_with_waiting(now: Instant) -> (Acd, QueueId, u64) {
    let (mut a, q) = acd(now);
    let mut next = 0u64;
    for _ in 0..OPERATORS {
        a.caller_joined(now, CallerId(next), &q, 0, None)
            .expect("new caller");
        next += 1;
        let (caller, operator) = drain(&mut a).expect("a free operator is offered");
        a.offer_answered(now, caller, &operator)
            .expect("offer rings");
        drain(&mut a);
    }
    for _ in 0..WAITING {
        a.caller_joined(now, CallerId(next), &q, 0, None)
            .expect("new caller");
        next += 1;
    }
    drain(&mut a);
    assert_eq!(a.caller_count(), WAITING as usize);
    (a, q, next)
}

fn bench(c: &mut Criterion) {
    let now = Instant::now();
    let mut g = c.benchmark_group("acd");

    // caller_joined + caller_left with 10 000 waiting and nobody free.
    {
        let (mut a, q, mut next) = busy_with_waiting(now);
        g.bench_function("caller_joined+caller_left, 10000 waiting, 1000 busy", |b| {
            b.iter(|| {
                let c = CallerId(next);
                next += 1;
                a.caller_joined(now, c, &q, 0, None).expect("new caller");
                drain(&mut a);
                a.caller_left(now, c).expect("caller waits");
                drain(&mut a);
            })
        });
    }

    // The next pick: a call ends, the head of 10 000 is offered to that operator; then the
    // answer. Each iteration also lets a new caller join so 10 000 keep waiting; the three
    // inputs are timed apart with iter_custom.
    {
        let (mut a, q, mut next) = busy_with_waiting(now);
        let mut ops: Vec<OperatorId> = (0..OPERATORS).map(op).collect();
        let mut turn = 0usize;
        let mut cycle = |a: &mut Acd, part: usize| -> Duration {
            let o = ops[turn % OPERATORS].clone();
            turn += 1;
            let t = Instant::now();
            a.call_ended(now, &o).expect("operator on a call");
            settle(a, now);
            let offer = drain(a);
            let pick = t.elapsed();
            let (caller, to) = offer.expect("the head caller is offered");
            assert_eq!(to, o);
            let t = Instant::now();
            a.offer_answered(now, caller, &to).expect("offer rings");
            drain(a);
            let answer = t.elapsed();
            let t = Instant::now();
            a.caller_joined(now, CallerId(next), &q, 0, None)
                .expect("new caller");
            drain(a);
            let join = t.elapsed();
            next += 1;
            black_box(&mut ops);
            [pick, answer, join][part]
        };
        g.bench_function("next pick (call_ended -> Offer), 10000 waiting", |b| {
            b.iter_custom(|n| (0..n).map(|_| cycle(&mut a, 0)).sum())
        });
        g.bench_function("offer_answered -> Connect, 10000 waiting", |b| {
            b.iter_custom(|n| (0..n).map(|_| cycle(&mut a, 1)).sum())
        });
        g.bench_function("caller_joined behind 10000 waiting", |b| {
            b.iter_custom(|n| (0..n).map(|_| cycle(&mut a, 2)).sum())
        });
        assert_eq!(a.caller_count(), WAITING as usize);
    }

    // A caller arrives at an empty queue with 1 000 free operators: the pick, the answer and
    // the call's end (so the operator is free again).
    {
        let (mut a, q) = acd(now);
        let mut next = 0u64;
        g.bench_function("pick among 1000 free (caller_joined -> Offer)", |b| {
            b.iter_custom(|n| {
                let mut spent = Duration::ZERO;
                for _ in 0..n {
                    let t = Instant::now();
                    a.caller_joined(now, CallerId(next), &q, 0, None)
                        .expect("new caller");
                    let offer = drain(&mut a);
                    spent += t.elapsed();
                    next += 1;
                    let (caller, o) = offer.expect("a free operator is offered");
                    a.offer_answered(now, caller, &o).expect("offer rings");
                    drain(&mut a);
                    a.call_ended(now, &o).expect("on call");
                    settle(&mut a, now);
                    drain(&mut a);
                }
                spent
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
