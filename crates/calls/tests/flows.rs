//! The call flows of the gateway's socket tests, on the in-memory harness and virtual time:
//! every flow runs in milliseconds, including the ones whose timers run for minutes.

mod harness;

use std::time::Duration;

use calls::OperatorCommand;
use harness::{addr, settings, World, CITY};
use sip::{HeaderName, Method};

/// A menu: a greeting, a one-key menu, the `benefits` queue.
const MENU: &str =
    "operator = \"q\"\n[[play]]\nid = \"greeting\"\nprompt = \"greet\"\nnext = \"main\"\n\
     [[menu]]\nid = \"main\"\nprompt = \"menu\"\ntimeout = 5\nchoices = { 1 = \"benefits\" }\n\
     [[set]]\nid = \"benefits\"\ncategory = \"benefits\"\nnext = \"q\"\n\
     [[queue]]\nid = \"q\"\nqueue = \"benefits\"\nprompt = \"queued\"\n";

fn world(
    menu: &str,
    start: &str,
    queue: impl FnOnce(&mut acd::QueueConfig),
) -> (World, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let s = settings(dir.path(), menu, start, queue);
    (World::new(s), dir)
}

/// The caller walks the menu into the queue; the operator has two phones registered: both
/// ring (one Call-ID, two forks), the first to answer is bridged to the caller and the other
/// fork is CANCELled; the operator's BYE ends the caller's call.
#[test]
fn the_menu_leads_to_an_operator_whose_other_phone_is_cancelled() {
    let (mut w, _dir) = world(MENU, "greeting", |_| {});
    forked_offer_answered(&mut w);
}

/// The flow of [`the_menu_leads_to_an_operator_whose_other_phone_is_cancelled`] in `w`.
fn forked_offer_answered(w: &mut World) {
    let (desk, mobile, caller) = (addr(11), addr(12), addr(10));
    w.operator(desk, "op1");
    w.register(mobile, "op1");
    let mut call = w.call(caller, CITY, "");
    assert_eq!(w.leg(&call).heard, ["greet"]);
    w.advance(Duration::from_millis(500));
    assert_eq!(w.leg(&call).heard, ["greet", "menu"]);
    // barge-in: `1` during the menu prompt stops it, the queue's prompt plays
    w.press(&call, '1');
    assert_eq!(w.leg(&call).heard, ["greet", "menu", "queued"]);
    // the queue node's prompt (300 ms) ends before the caller joins the queue
    w.advance(Duration::from_millis(200));
    w.quiet(desk);
    w.advance(Duration::from_millis(200));
    let ring_desk = w.expect(desk, Method::Invite);
    let ring_mobile = w.expect(mobile, Method::Invite);
    // both phones ring (a CANCEL may only follow a provisional response)
    w.reply(desk, &ring_desk, 180, "d1");
    w.reply(mobile, &ring_mobile, 180, "m1");
    assert_eq!(
        ring_desk.headers.call_id().ok(),
        ring_mobile.headers.call_id().ok(),
        "one call, two forks"
    );
    w.advance(Duration::from_secs(1));
    assert_eq!(
        w.leg(&call).moh.as_deref(),
        Some("music"),
        "music while it rings"
    );

    w.answer(desk, &ring_desk, "d1");
    w.expect(desk, Method::Ack);
    let cancel = w.expect(mobile, Method::Cancel);
    w.reply(mobile, &cancel, 200, "m1");
    w.reply(mobile, &ring_mobile, 487, "m1");
    w.expect(mobile, Method::Ack);
    let op_leg = ring_desk.headers.call_id().expect("a Call-ID");
    assert_eq!(w.leg(&call).bridged.as_deref(), Some(op_leg));
    assert!(w.log.lines().contains(&"answered A1 op1".to_string()));

    // the operator hangs up: the caller gets our BYE
    let mut op = w.dialog_of(desk, &ring_desk, "d1");
    w.advance(Duration::from_secs(30));
    w.hang_up(&mut op);
    let bye = w.expect(caller, Method::Bye);
    w.reply(caller, &bye, 200, "x");
    assert!(w.leg(&call).closed && w.leg_of(&ring_desk).closed);
    assert_eq!(
        w.log.starting("ended"),
        ["ended A1 operator_hung_up ivr=Some(Queue) operator=op1"]
    );
    w.quiet(caller);
    w.quiet(desk);
    w.quiet(mobile);
    let _ = &mut call;
}

/// An operator who does not answer within the ring timeout is CANCELled and the next one is
/// rung; after `max_no_answer` missed offers the ACD pauses them.
#[test]
fn no_answer_rings_the_next_operator_and_pauses_the_first() {
    let (mut w, _dir) = world(MENU, "greeting", |q| q.max_no_answer = 1);
    let (p1, p2, caller) = (addr(11), addr(12), addr(10));
    w.operator(p1, "op1");
    w.operator(p2, "op2");
    let call = w.call(caller, CITY, "");
    w.advance(Duration::from_millis(500));
    w.press(&call, '1');
    w.advance(Duration::from_millis(400));
    // one of them rings first
    let mut rung = w.take_all(p1);
    let (first, first_op, second, second_op) = if rung.is_empty() {
        rung = w.take_all(p2);
        (p2, "op2", p1, "op1")
    } else {
        (p1, "op1", p2, "op2")
    };
    let Some(sip::Message::Request(offer)) = rung.pop() else {
        panic!("nobody rang")
    };
    assert_eq!(offer.method, Method::Invite);
    w.reply(first, &offer, 180, "f");
    w.quiet(second);
    w.advance(Duration::from_secs(14));
    w.quiet(first);
    w.quiet(second);
    w.advance(Duration::from_secs(2));
    let cancel = w.expect(first, Method::Cancel);
    w.reply(first, &cancel, 200, "f");
    w.reply(first, &offer, 487, "f");
    w.expect(first, Method::Ack);
    let ring = w.expect(second, Method::Invite);
    let status = w
        .command(|c, _| c.operator_status(first_op))
        .expect("known");
    assert_eq!(
        status.state,
        acd::OperatorState::Paused(acd::PauseReason::NoAnswer(1)),
        "{first_op} missed the offer"
    );
    w.answer(second, &ring, "s");
    w.expect(second, Method::Ack);
    assert!(w.log.lines().contains(&format!("answered A1 {second_op}")));
}

/// RFC 4028: a call whose session is never refreshed ends when the interval runs out.
#[test]
fn a_session_never_refreshed_ends_after_thirty_minutes() {
    let (mut w, _dir) = world(MENU, "greeting", |_| {});
    let caller = addr(10);
    let call = w.call(
        caller,
        CITY,
        "Session-Expires: 1800\r\nSupported: timer\r\n",
    );
    // no operator: the caller waits in the queue with the music
    w.advance(Duration::from_millis(500));
    w.press(&call, '1');
    w.advance(Duration::from_secs(29 * 60));
    w.quiet(caller);
    assert!(w.log.starting("ended").is_empty());
    w.advance(Duration::from_secs(61));
    let bye = w.expect(caller, Method::Bye);
    w.reply(caller, &bye, 200, "x");
    assert_eq!(
        w.log.starting("ended"),
        ["ended A1 session_expired ivr=Some(Queue) operator=-"]
    );
    assert!(w.elapsed() >= Duration::from_secs(1800));
}

/// Shutdown: new calls get 503 while calls in progress go on; at the end of the grace period
/// the rest get our BYE.
#[test]
fn shutdown_refuses_new_calls_then_hangs_up_the_rest() {
    let (mut w, _dir) = world(MENU, "greeting", |_| {});
    let call = w.call(addr(10), CITY, "");
    w.press(&call, '1');
    w.command(|c, _| c.begin_drain());
    let late = w.token("late-");
    let invite = format!(
        "INVITE sip:{CITY}@{gw} SIP/2.0\r\nVia: SIP/2.0/TCP {me};branch=z9hG4bK-{late}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:1@{me}>;tag=l\r\nTo: <sip:{CITY}@{gw}>\r\n\
         Call-ID: {late}\r\nCSeq: 1 INVITE\r\nContact: <sip:1@{me};transport=tcp>\r\n\
         Content-Length: 0\r\n\r\n",
        gw = harness::GW,
        me = addr(20),
    );
    w.send_text(addr(20), &invite);
    let refused = w.final_response(addr(20));
    assert_eq!(refused.status, 503);
    assert_eq!(refused.headers.get(&HeaderName::RetryAfter), Some("60"));
    w.advance(Duration::from_secs(10));
    assert_eq!(
        w.core.calls(),
        1,
        "the call goes on during the grace period"
    );
    w.command(|c, now| c.hangup_all(now));
    let bye = w.expect(addr(10), Method::Bye);
    assert_eq!(w.core.outstanding_requests(), 1);
    w.reply(addr(10), &bye, 200, "x");
    assert_eq!(w.core.calls(), 0);
    assert_eq!(w.core.outstanding_requests(), 0);
    assert_eq!(
        w.log.starting("ended"),
        ["ended A1 shutdown ivr=Some(Queue) operator=-"]
    );
    let _ = OperatorCommand::Logout;
}

/// RFC 4028 the other way: a caller who refreshes the session (UPDATE every 15 minutes) keeps
/// the call for as long as it likes.
#[test]
fn a_refreshed_session_stays_up() {
    let (mut w, _dir) = world(MENU, "greeting", |_| {});
    let caller = addr(10);
    let mut call = w.call(
        caller,
        CITY,
        "Session-Expires: 1800\r\nSupported: timer\r\n",
    );
    w.press(&call, '1');
    for _ in 0..8 {
        w.advance(Duration::from_secs(15 * 60));
        let update = call.request(&mut w, "UPDATE", "Session-Expires: 1800\r\n", "");
        w.send_text(caller, &update);
        assert_eq!(w.final_response(caller).status, 200);
    }
    w.quiet(caller);
    assert!(w.log.starting("ended").is_empty());
    assert_eq!(w.elapsed().as_secs() / 3600, 2, "two hours on the line");
}

/// A call that reaches the line's maximum duration (4 h here) gets our BYE.
#[test]
fn a_call_reaching_the_maximum_duration_gets_a_bye() {
    let (mut w, _dir) = world(MENU, "greeting", |_| {});
    let caller = addr(10);
    let call = w.call(caller, CITY, "");
    w.press(&call, '1');
    w.advance(Duration::from_secs(4 * 3600 - 60));
    w.quiet(caller);
    w.advance(Duration::from_secs(120));
    w.bye_answered(caller);
    assert_eq!(
        w.log.starting("ended"),
        ["ended A1 max_duration ivr=Some(Queue) operator=-"]
    );
}

/// No RTP from the caller for the timeout (the media edge says so): the call is hung up and
/// counted.
#[test]
fn a_call_without_rtp_is_hung_up() {
    let (mut w, _dir) = world(MENU, "greeting", |_| {});
    let caller = addr(10);
    let call = w.call(caller, CITY, "");
    w.rtp_dead(&call);
    w.bye_answered(caller);
    assert!(w.leg(&call).closed);
    assert_eq!(
        w.stats
            .rtp_timeouts
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    assert_eq!(
        w.log.starting("ended"),
        ["ended A1 rtp_timeout ivr=None operator=-"]
    );
}

/// Every random value the core puts on the wire (tags, branches, Call-IDs, first CSeqs, SDP
/// session ids) comes from the seed it was built with: the same flow under the same seed
/// sends the same bytes, under another seed other bytes.
#[test]
fn the_same_seed_sends_the_same_bytes() {
    fn run(seed: [u8; 32]) -> Vec<(std::net::SocketAddr, Vec<u8>)> {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let mut w = World::with_seed(settings(dir.path(), MENU, "greeting", |_| {}), seed);
        forked_offer_answered(&mut w);
        w.wire.clone()
    }
    let first = run(World::SEED);
    assert!(first.len() >= 10, "the flow sent {} messages", first.len());
    assert_eq!(first, run(World::SEED), "the same seed, the same bytes");
    let other = run([42; 32]);
    assert_eq!(first.len(), other.len(), "the same flow");
    assert_ne!(first, other, "another seed, other tags and branches");
}
