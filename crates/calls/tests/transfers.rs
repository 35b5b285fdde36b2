//! Blind transfers by REFER from an operator's leg, on the harness: to a number through the
//! trunk, back to a queue, to another operator; refusals and failures.

mod harness;

use calls::settings::normalize_number;
use harness::{addr, settings, World, QUEUE_MENU, TRUNK};
use sip::{HeaderName, Method};

fn world() -> (World, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let s = settings(dir.path(), QUEUE_MENU, "main", |_| {});
    (World::new(s), dir)
}

/// REFER to a number: 202, NOTIFY 100, the trunk gets an INVITE for the number from the line,
/// rings and answers; NOTIFY 200 ends the subscription, the operator gets BYE, the caller is
/// bridged to the trunk's leg, and the far end's BYE ends the caller's call as `transferred`.
#[test]
fn refer_to_a_number_bridges_the_caller_through_the_trunk() {
    let (mut w, _dir) = world();
    let (caller, phone) = (addr(10), addr(11));
    w.operator(phone, "op1");
    let (call, _, mut op) = w.connected(caller, phone);

    w.refer(&mut op, "8-800-555-35-35");
    assert_eq!(w.notify(phone), (100, "active;expires=60".into()));
    let dial = w.expect(TRUNK, Method::Invite);
    assert_eq!(dial.uri.user(), Some("88005553535"));
    assert!(dial
        .headers
        .get(&HeaderName::From)
        .is_some_and(|f| f.starts_with(&format!("<sip:{}@", harness::CITY))));
    w.reply(TRUNK, &dial, 180, "far");
    // while it rings the caller still talks to the operator
    assert_eq!(w.leg(&call).bridged.as_deref(), Some(op.call_id.as_str()));
    w.answer(TRUNK, &dial, "far");
    w.expect(TRUNK, Method::Ack);
    assert_eq!(
        w.notify(phone),
        (200, "terminated;reason=noresource".into())
    );
    w.bye_answered(phone);
    let far_leg = dial.headers.call_id().expect("a Call-ID").to_string();
    assert_eq!(w.leg(&call).bridged.as_deref(), Some(far_leg.as_str()));

    let mut far = w.dialog_of(TRUNK, &dial, "far");
    w.hang_up(&mut far);
    w.bye_answered(caller);
    assert_eq!(
        w.log.starting("transferred"),
        [format!(
            "transferred A1 number {} 200",
            normalize_number("8-800-555-35-35")
        )]
    );
    assert_eq!(
        w.log.starting("ended"),
        ["ended A1 transfer_ended ivr=Some(Transferred) operator=-"]
    );
    // the operator is free again: the next caller rings them at once (no wrap-up)
    w.call(addr(20), harness::CITY, "");
    w.expect(phone, Method::Invite);
}

/// REFER outside a dialog: 403; in an unknown dialog: 481. To nobody: NOTIFY 404 and the
/// caller stays with the operator. To a busy number: NOTIFY 486, the caller stays. Back to the
/// queue: NOTIFY 200, the operator gets BYE and is offered the caller anew.
#[test]
fn refer_to_unknown_targets_busy_numbers_and_queues() {
    let (mut w, _dir) = world();
    let (caller, phone) = (addr(10), addr(11));
    w.operator(phone, "op1");
    let (call, op_invite, mut op) = w.connected(caller, phone);

    for (to_tag, status) in [("", 403), (";tag=nope", 481)] {
        let id = w.token("stray-");
        let stray = format!(
            "REFER sip:hotline@{gw} SIP/2.0\r\nVia: SIP/2.0/TCP {phone};branch=z9hG4bK-{id}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:op1@hotline>;tag=x\r\nTo: <sip:hotline@hotline>{to_tag}\r\n\
             Call-ID: {id}\r\nCSeq: 1 REFER\r\nRefer-To: <sip:benefits@hotline>\r\n\
             Content-Length: 0\r\n\r\n",
            gw = harness::GW,
        );
        w.send_text(phone, &stray);
        assert_eq!(w.final_response(phone).status, status);
    }

    w.refer(&mut op, "nobody");
    assert_eq!(w.notify(phone).0, 100);
    assert_eq!(
        w.notify(phone),
        (404, "terminated;reason=noresource".into())
    );
    assert_eq!(w.leg(&call).bridged.as_deref(), Some(op.call_id.as_str()));

    w.refer(&mut op, "112");
    assert_eq!(w.notify(phone).0, 100);
    let dial = w.expect(TRUNK, Method::Invite);
    w.reply(TRUNK, &dial, 486, "busy");
    w.expect(TRUNK, Method::Ack);
    assert_eq!(w.notify(phone).0, 486);
    assert_eq!(w.leg(&call).bridged.as_deref(), Some(op.call_id.as_str()));

    w.refer(&mut op, "benefits");
    assert_eq!(w.notify(phone).0, 100);
    assert_eq!(w.notify(phone).0, 200);
    w.bye_answered(phone);
    let again = w.expect(phone, Method::Invite);
    assert_ne!(
        again.headers.call_id().ok(),
        op_invite.headers.call_id().ok()
    );
    assert_eq!(
        w.log.starting("transferred"),
        [
            "transferred A1 number 112 486",
            "transferred A1 queue benefits 200"
        ]
    );
    assert_eq!(
        w.log.starting("step A1 queue").len(),
        2,
        "the appeal notes the second time in the queue"
    );
}

/// REFER to another operator: they are rung directly; busy (486) leaves the caller with the
/// first operator; the second time they answer and the caller is bridged to them, the first
/// operator is hung up and free for the next caller.
#[test]
fn refer_to_an_operator_rings_them_and_bridges_the_caller() {
    let (mut w, _dir) = world();
    let (caller, phone, phone2) = (addr(10), addr(11), addr(12));
    w.operator(phone, "op1");
    let (call, _, mut op) = w.connected(caller, phone);
    w.operator(phone2, "op2");

    w.refer(&mut op, "op2");
    assert_eq!(w.notify(phone).0, 100);
    let inv = w.expect(phone2, Method::Invite);
    assert!(inv
        .headers
        .get(&HeaderName::To)
        .is_some_and(|t| t.contains("op2@")));
    w.reply(phone2, &inv, 486, "busy");
    w.expect(phone2, Method::Ack);
    assert_eq!(
        w.notify(phone),
        (486, "terminated;reason=noresource".into())
    );
    assert_eq!(w.leg(&call).bridged.as_deref(), Some(op.call_id.as_str()));

    w.refer(&mut op, "op2");
    assert_eq!(w.notify(phone).0, 100);
    let inv = w.expect(phone2, Method::Invite);
    w.reply(phone2, &inv, 180, "op2tag");
    // op2 is held for the transfer: a new caller is not offered to them
    w.call(addr(20), harness::CITY, "");
    w.quiet(phone2);
    w.answer(phone2, &inv, "op2tag");
    w.expect(phone2, Method::Ack);
    assert_eq!(
        w.notify(phone),
        (200, "terminated;reason=noresource".into())
    );
    w.bye_answered(phone);
    // op1 is free: the waiting caller is offered to them
    w.expect(phone, Method::Invite);
    let op2_leg = inv.headers.call_id().expect("a Call-ID").to_string();
    assert_eq!(w.leg(&call).bridged.as_deref(), Some(op2_leg.as_str()));
    let mut op2 = w.dialog_of(phone2, &inv, "op2tag");
    w.hang_up(&mut op2);
    w.bye_answered(caller);
    assert_eq!(
        w.log.starting("transferred"),
        [
            "transferred A1 operator op2 486",
            "transferred A1 operator op2 200"
        ]
    );
}
