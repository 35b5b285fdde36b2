//! Cost per event with 1 000 operators and 10 000 waiting callers (ignored by default; run
//! `cargo test -p acd --release --test scale -- --ignored --nocapture`). The proper
//! micro-benchmark is issue 7; this guards against per-event work growing as callers × operators.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::time::{Duration, Instant};

use acd::{Acd, AcdConfig, Action, CallerId, OperatorConfig, OperatorId, QueueConfig, QueueId};

#[test]
#[ignore]
fn thousand_operators_ten_thousand_callers() {
    let mut q = QueueConfig::new("q");
    q.wrap_up = Duration::ZERO;
    let ops: Vec<OperatorId> = (0..1000)
        .map(|i| OperatorId::new(format!("o{i}")))
        .collect();
    let mut acd = Acd::new(AcdConfig {
        queues: vec![q],
        operators: ops
            .iter()
            .map(|o| OperatorConfig::new(o.clone(), [("q", 1 + (o.as_str().len() % 3) as u8)]))
            .collect(),
    })
    .unwrap();
    let mut now = Instant::now();
    for o in &ops {
        acd.set_registered(now, o, true).unwrap();
        acd.login(now, o).unwrap();
    }
    let queue = QueueId::from("q");
    let mut ringing = Vec::new();
    let started = Instant::now();
    for i in 0..11_000u64 {
        acd.caller_joined(now, CallerId(i), &queue, (i % 3) as u8, None)
            .unwrap();
        while let Some(a) = acd.poll_action() {
            if let Action::Offer { caller, operators } = a {
                ringing.push((caller, operators[0].clone()));
            }
        }
    }
    let joined = started.elapsed();
    for (c, o) in ringing.drain(..) {
        acd.offer_answered(now, c, &o).unwrap();
    }
    while acd.poll_action().is_some() {}
    assert_eq!(acd.caller_count(), 10_000);
    // Each call end frees one operator who takes the head of a 10 000-long line.
    let started = Instant::now();
    let rounds = 5_000;
    for i in 0..rounds {
        now += Duration::from_millis(10);
        let o = &ops[i % ops.len()];
        acd.call_ended(now, o).unwrap();
        while let Some(a) = acd.poll_action() {
            if let Action::Offer { caller, operators } = a {
                acd.offer_answered(now, caller, &operators[0]).unwrap();
            }
        }
    }
    let per_event = started.elapsed() / rounds as u32;
    eprintln!("11 000 joins: {joined:?}; per call end with 10 000 waiting: {per_event:?}");
    assert!(per_event < Duration::from_millis(5), "{per_event:?}");
}
