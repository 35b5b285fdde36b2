//! Live events for the workspace (`Output::Live`) and the transfer command, on the harness in
//! virtual time: an operator's states, an offer from the INVITE to its end, a queue's joins
//! and leaves; the transfer command moving the caller exactly as the operator's REFER does.

mod harness;

use std::time::Duration;

use calls::live::{
    LiveEvent, OfferLive, OfferPhase, OperatorLive, OperatorPhase, QueueChange, QueueExit,
    QueueLive, Roster, RosterOperator, RosterQueue,
};
use calls::{OperatorCommand, TransferError, TransferTarget};
use harness::{addr, settings, Journal, World, CALLER, QUEUE_MENU, TRUNK};
use sip::Method;

fn world() -> (World, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let s = settings(dir.path(), QUEUE_MENU, "main", |q| {
        q.wrap_up = Duration::from_secs(30);
    });
    (World::new(s), dir)
}

fn operators(w: &World, id: &str) -> Vec<OperatorLive> {
    w.journal
        .iter()
        .filter_map(|(_, j)| match j {
            Journal::Live(LiveEvent::Operator(o)) if o.id == id => Some(o.clone()),
            _ => None,
        })
        .collect()
}

fn offers(w: &World) -> Vec<(u64, OfferLive)> {
    w.journal
        .iter()
        .filter_map(|(d, j)| match j {
            Journal::Live(LiveEvent::Offer(o)) => Some((*d, o.clone())),
            _ => None,
        })
        .collect()
}

fn queue_events(w: &World) -> Vec<QueueLive> {
    w.journal
        .iter()
        .filter_map(|(_, j)| match j {
            Journal::Live(LiveEvent::Queue(q)) => Some(q.clone()),
            _ => None,
        })
        .collect()
}

fn states(w: &World, id: &str) -> Vec<OperatorPhase> {
    operators(w, id).iter().map(|o| o.state).collect()
}

/// The drain our INVITE with `call_id` went to `phone` in.
fn invite_drain(w: &World, call_id: &str) -> u64 {
    w.journal
        .iter()
        .find_map(|(d, j)| match j {
            Journal::Sent(Method::Invite, id, _) if id == call_id => Some(*d),
            _ => None,
        })
        .expect("our INVITE was sent")
}

/// A caller waits, op1's phone rings (the offer in the same drain as our INVITE, with the
/// caller's number, appeal, queue, path and wait), op1 answers, the caller hangs up: op1 goes
/// available → ringing → on call → wrap-up → available, the queue sees the join and the answer.
#[test]
fn an_offer_goes_out_with_the_invite_and_follows_the_call() {
    let (mut w, _dir) = world();
    let (caller, phone) = (addr(10), addr(11));
    w.operator(phone, "op1");
    let first = operators(&w, "op1");
    assert_eq!(
        first.last().map(|o| o.state),
        Some(OperatorPhase::Available)
    );
    assert_eq!(
        first.last().map(|o| o.queues.clone()),
        Some(vec!["benefits".to_string()])
    );

    let mut call = w.call(caller, harness::CITY, "");
    let invite = w.expect(phone, Method::Invite);
    let leg = invite.headers.call_id().expect("a Call-ID").to_string();
    let offers_now = offers(&w);
    let (drain, ringing) = offers_now.first().expect("an offer event").clone();
    assert_eq!(
        drain,
        invite_drain(&w, &leg),
        "the offer goes out with our INVITE"
    );
    assert_eq!(ringing.phase, OfferPhase::Ringing);
    assert_eq!(ringing.operator, "op1");
    assert_eq!(ringing.call, leg);
    let a1 = w.log.id(1);
    assert_eq!(ringing.appeal, a1);
    assert_eq!(ringing.caller, CALLER);
    assert_eq!(ringing.queue.as_deref(), Some("benefits"));
    assert_eq!(ringing.path, ["main"]);
    let joined = queue_events(&w);
    assert!(
        matches!(
            &joined[..],
            [QueueLive { queue, appeal, change: QueueChange::Joined { caller, path, .. }, .. }]
                if queue == "benefits" && *appeal == a1 && caller == CALLER && path == &["main"]
        ),
        "{joined:?}"
    );

    w.advance(Duration::from_secs(3));
    w.answer(phone, &invite, "optag");
    w.expect(phone, Method::Ack);
    let phases: Vec<OfferPhase> = offers(&w).iter().map(|(_, o)| o.phase).collect();
    assert_eq!(phases, [OfferPhase::Ringing, OfferPhase::Answered]);
    match &queue_events(&w)[..] {
        [_, QueueLive {
            change: QueueChange::Left { exit, waited },
            ..
        }] => {
            assert_eq!(*exit, QueueExit::Answered);
            assert_eq!(*waited, Duration::from_secs(3));
        }
        other => panic!("no answer in the queue: {other:?}"),
    }

    w.advance(Duration::from_secs(10));
    w.hang_up(&mut call);
    w.bye_answered(phone);
    let phases: Vec<OfferPhase> = offers(&w).iter().map(|(_, o)| o.phase).collect();
    assert_eq!(
        phases,
        [OfferPhase::Ringing, OfferPhase::Answered, OfferPhase::Ended]
    );
    w.advance(Duration::from_secs(31));
    use OperatorPhase::*;
    assert_eq!(
        states(&w, "op1"),
        [LoggedOut, Available, Ringing, OnCall, WrapUp, Available]
    );
    let ops = operators(&w, "op1");
    assert_eq!(
        ops[4].since - ops[3].since,
        chrono::Duration::seconds(10),
        "since is the civil time of the change"
    );
}

/// A caller who hangs up while op1's phone rings: the offer is cancelled, the queue sees an
/// abandoned caller; a pause carries its reason.
#[test]
fn an_abandoned_caller_and_a_pause_with_its_reason() {
    let (mut w, _dir) = world();
    let (caller, phone) = (addr(10), addr(11));
    w.operator(phone, "op1");
    let mut call = w.call(caller, harness::CITY, "");
    let invite = w.expect(phone, Method::Invite);
    w.reply(phone, &invite, 180, "optag");
    w.advance(Duration::from_secs(2));
    w.hang_up(&mut call);
    let cancel = w.expect(phone, Method::Cancel);
    w.reply(phone, &cancel, 200, "");
    w.reply(phone, &invite, 487, "optag");
    w.expect(phone, Method::Ack);
    let phases: Vec<OfferPhase> = offers(&w).iter().map(|(_, o)| o.phase).collect();
    assert_eq!(phases, [OfferPhase::Ringing, OfferPhase::Cancelled]);
    assert!(queue_events(&w).iter().any(|q| matches!(
        q.change,
        QueueChange::Left { exit: QueueExit::Abandoned, waited } if waited == Duration::from_secs(2)
    )));

    w.command(|c, now| {
        c.operator_command(
            now,
            "op1",
            OperatorCommand::Pause {
                reason: "lunch".into(),
            },
        )
    })
    .expect("paused");
    let last = operators(&w, "op1").pop().expect("an event");
    assert_eq!(last.state, OperatorPhase::Paused);
    assert_eq!(last.reason.as_deref(), Some("lunch"));
}

/// The transfer command to a queue: no NOTIFY (no REFER), op1 gets BYE, the caller waits in
/// the queue again and is offered anew; the appeal says `transferred … queue`. Refusals: no
/// call, unknown queue and operator, not a number.
#[test]
fn the_transfer_command_moves_the_caller_like_a_refer() {
    let (mut w, _dir) = world();
    let (caller, phone) = (addr(10), addr(11));
    w.operator(phone, "op1");
    assert_eq!(
        w.command(|c, now| c.transfer(now, "op1", TransferTarget::Queue("benefits".into()))),
        Err(TransferError::NoCall)
    );
    let (call, _, _op) = w.connected(caller, phone);
    for (target, err) in [
        (
            TransferTarget::Queue("nope".into()),
            TransferError::UnknownQueue,
        ),
        (
            TransferTarget::Operator("nobody".into()),
            TransferError::UnknownOperator,
        ),
        (
            TransferTarget::Number("abc".into()),
            TransferError::NotANumber,
        ),
    ] {
        assert_eq!(w.command(|c, now| c.transfer(now, "op1", target)), Err(err));
    }
    w.quiet(phone);

    w.command(|c, now| c.transfer(now, "op1", TransferTarget::Queue("benefits".into())))
        .expect("the transfer starts");
    // no NOTIFY: the BYE is the first thing the phone gets
    w.bye_answered(phone);
    assert_eq!(
        w.log.starting("transferred"),
        ["transferred A1 queue benefits 200"]
    );
    assert!(
        w.leg(&call).moh.is_some(),
        "the caller hears the queue's music"
    );
    let joins = queue_events(&w)
        .into_iter()
        .filter(|q| matches!(q.change, QueueChange::Joined { .. }))
        .count();
    assert_eq!(joins, 2, "the caller joined the queue again");
    // op1 is in wrap-up for 30 s, then the caller is offered to them again
    w.advance(Duration::from_secs(31));
    w.expect(phone, Method::Invite);
}

/// The transfer command to a colleague rings op2 (an offer event for op2 with our INVITE) and
/// bridges the caller on the answer; to a number, the trunk is dialled.
#[test]
fn the_transfer_command_to_an_operator_and_a_number() {
    let (mut w, _dir) = world();
    let (caller, phone, phone2) = (addr(10), addr(11), addr(12));
    w.operator(phone, "op1");
    let (call, _, _op) = w.connected(caller, phone);
    w.operator(phone2, "op2");
    w.command(|c, now| c.transfer(now, "op1", TransferTarget::Operator("op2".into())))
        .expect("the transfer starts");
    let inv = w.expect(phone2, Method::Invite);
    let leg = inv.headers.call_id().expect("a Call-ID").to_string();
    let (drain, offer) = offers(&w).pop().expect("an offer to op2");
    assert_eq!(
        (offer.operator.as_str(), offer.phase),
        ("op2", OfferPhase::Ringing)
    );
    assert_eq!(drain, invite_drain(&w, &leg));
    assert_eq!(
        w.command(|c, now| c.transfer(now, "op1", TransferTarget::Queue("benefits".into()))),
        Err(TransferError::InProgress)
    );
    w.answer(phone2, &inv, "op2tag");
    w.expect(phone2, Method::Ack);
    w.bye_answered(phone);
    assert_eq!(w.leg(&call).bridged.as_deref(), Some(leg.as_str()));
    assert_eq!(
        w.log.starting("transferred"),
        ["transferred A1 operator op2 200"]
    );

    w.command(|c, now| c.transfer(now, "op2", TransferTarget::Number("112".into())))
        .expect("the transfer starts");
    let dial = w.expect(TRUNK, Method::Invite);
    assert_eq!(dial.uri.user(), Some("112"));
}

/// A reload puts out the new roster (names, skills, titles) and then every operator of the
/// ACD again, in the same drain: the pages no longer show the names and skills of the
/// configuration the daemon started with. An operator whose state did not change keeps the
/// time it began; one removed from the configuration is no longer put out.
#[test]
fn a_reload_puts_out_the_roster_then_every_operator_again() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let s = settings(dir.path(), QUEUE_MENU, "main", |_| {});
    let mut w = World::new(s.clone());
    w.operator(addr(11), "op1");
    let before = operators(&w, "op1")
        .last()
        .cloned()
        .expect("op1 was put out");
    w.advance(Duration::from_secs(90));

    let mut new = s;
    new.roster = Roster {
        operators: ["op1", "op2"]
            .into_iter()
            .map(|op| RosterOperator {
                login: op.into(),
                name: format!("Оператор {op}"),
                skills: vec!["benefits".into()],
            })
            .collect(),
        queues: vec![RosterQueue {
            name: "benefits".into(),
            title: "Пособия".into(),
        }],
    };
    if let Some(acd) = new.acd.as_mut() {
        acd.operators.retain(|o| o.id.as_str() != "op3");
    }
    let roster = new.roster.clone();
    let mark = w.journal.len();
    let ignored = w.command(|c, now| c.reload(now, new));
    assert!(ignored.is_empty(), "{ignored:?}");

    let after: Vec<(u64, LiveEvent)> = w.journal[mark..]
        .iter()
        .filter_map(|(d, j)| match j {
            Journal::Live(ev) => Some((*d, ev.clone())),
            _ => None,
        })
        .collect();
    let drain = after
        .first()
        .map(|(d, _)| *d)
        .expect("events after the reload");
    assert!(
        after.iter().all(|(d, _)| *d == drain),
        "one drain: {after:?}"
    );
    assert!(
        matches!(&after[0].1, LiveEvent::Roster { roster: r, .. } if *r == roster),
        "the roster first: {after:?}"
    );
    let ops: Vec<&OperatorLive> = after[1..]
        .iter()
        .filter_map(|(_, ev)| match ev {
            LiveEvent::Operator(o) => Some(o),
            _ => None,
        })
        .collect();
    let ids: Vec<&str> = ops.iter().map(|o| o.id.as_str()).collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert!(ids.contains(&"op1") && ids.contains(&"op2"), "{ids:?}");
    let op1 = ops.iter().find(|o| o.id == "op1").expect("op1");
    assert_eq!(op1.state, OperatorPhase::Available);
    assert_eq!(op1.queues, ["benefits"]);
    assert_eq!(op1.since, before.since, "still available since the login");
    let op2 = ops.iter().find(|o| o.id == "op2").expect("op2");
    assert_eq!(op2.state, OperatorPhase::LoggedOut);

    // nothing changed since: the next input puts out no operator again
    let mark = w.journal.len();
    w.advance(Duration::from_secs(1));
    assert!(!w.journal[mark..]
        .iter()
        .any(|(_, j)| matches!(j, Journal::Live(LiveEvent::Operator(_)))));
}
