//! What call control writes down (`Output::Appeal`), on the harness: the events of one call
//! in the order they happened, under an appeal id the core minted itself.

mod harness;

use std::collections::HashSet;
use std::time::Duration;

use calls::settings::normalize_number;
use calls::AppealRecord;
use harness::{addr, settings, World, CITY, TRUNK};
use sip::Method;

/// A greeting, a one-key menu, a category, the `benefits` queue.
const MENU: &str =
    "operator = \"q\"\n[[play]]\nid = \"greeting\"\nprompt = \"greet\"\nnext = \"main\"\n\
     [[menu]]\nid = \"main\"\nprompt = \"menu\"\ntimeout = 5\nchoices = { 1 = \"benefits\" }\n\
     [[set]]\nid = \"benefits\"\ncategory = \"benefits\"\nnext = \"q\"\n\
     [[queue]]\nid = \"q\"\nqueue = \"benefits\"\nprompt = \"queued\"\n";

/// The whole life of a call, IVR → queue → operator → transfer to a number: the appeal's
/// events come out in that order, first the arrival, last the end, all under one id.
#[test]
fn a_call_through_the_menu_queue_and_a_transfer_is_written_down_in_order() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let mut w = World::new(settings(dir.path(), MENU, "greeting", |_| {}));
    let (caller, phone) = (addr(10), addr(11));
    w.operator(phone, "op1");
    let call = w.call(caller, CITY, "");
    w.advance(Duration::from_millis(500));
    w.press(&call, '1');
    w.advance(Duration::from_millis(400));
    let ring = w.expect(phone, Method::Invite);
    w.advance(Duration::from_secs(3));
    w.answer(phone, &ring, "op");
    w.expect(phone, Method::Ack);
    let mut op = w.dialog_of(phone, &ring, "op");
    w.advance(Duration::from_secs(60));

    w.refer(&mut op, "8-800-555-35-35");
    assert_eq!(w.notify(phone).0, 100);
    let dial = w.expect(TRUNK, Method::Invite);
    w.answer(TRUNK, &dial, "far");
    w.expect(TRUNK, Method::Ack);
    assert_eq!(w.notify(phone).0, 200);
    w.bye_answered(phone);
    let mut far = w.dialog_of(TRUNK, &dial, "far");
    w.hang_up(&mut far);
    w.bye_answered(caller);

    let number = normalize_number("8-800-555-35-35");
    assert_eq!(
        w.log.lines(),
        [
            format!("arrived A1 city {}", harness::CALLER),
            "step A1 path greeting".into(),
            "step A1 path main".into(),
            "step A1 path main:1".into(),
            "step A1 path benefits".into(),
            "step A1 Category(\"benefits\")".into(),
            "step A1 path q".into(),
            // a key is written after the steps it took (as before the events were outputs)
            "digit A1 1 rfc4733".into(),
            "step A1 queue benefits".into(),
            "answered A1 op1".into(),
            format!("transferred A1 number {number} 200"),
            "ended A1 transfer_ended ivr=Some(Transferred) operator=-".into(),
        ]
    );
    let events = w.log.events();
    let id = w.log.id(1);
    assert!(events.iter().all(|e| e.appeal == id), "one appeal");
    // what the appeal gets in detail: the wait in the queue, who transferred and after what
    assert!(events.iter().any(|e| matches!(
        &e.record,
        AppealRecord::OperatorAnswered { operator, waited }
            if operator == "op1" && *waited >= Duration::from_secs(3)
    )));
    assert!(events.iter().any(|e| matches!(
        &e.record,
        AppealRecord::Transferred { operator: Some(o), operator_talked: Some(t), .. }
            if o == "op1" && *t >= Duration::from_secs(60)
    )));
}

/// Every call that reaches a line gets an appeal id of its own at once, even many in the same
/// millisecond of the driver's clock: UUIDv7s carrying that millisecond, in the order the
/// calls arrived. Each call's events open with its arrival and close with its end.
#[test]
fn appeal_ids_are_minted_unique_uuid_v7_in_arrival_order() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let mut w = World::new(settings(dir.path(), harness::QUEUE_MENU, "main", |_| {}));
    let callers: Vec<_> = (0..40u8).map(|n| addr(100 + n)).collect();
    let mut calls = Vec::new();
    for &c in &callers {
        calls.push((c, w.call(c, CITY, "")));
    }
    for (c, mut d) in calls {
        w.hang_up(&mut d);
        w.quiet(c);
    }
    let ids: Vec<String> = (1..=callers.len()).map(|n| w.log.id(n)).collect();
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), callers.len(), "{ids:?}");
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(sorted, ids, "ids sort in the order the calls arrived");
    // the harness's civil clock starts at 1 760 000 000 s and virtual time barely moved
    for id in &ids {
        let u = uuid::Uuid::parse_str(id).expect("a UUID");
        assert_eq!(u.get_version_num(), 7);
        let (secs, _) = u.get_timestamp().expect("a v7 time").to_unix();
        assert!(
            (1_760_000_000..1_760_000_010).contains(&secs),
            "{id}: {secs}"
        );
    }
    let events = w.log.events();
    for id in &ids {
        let mine: Vec<&AppealRecord> = events
            .iter()
            .filter(|e| &e.appeal == id)
            .map(|e| &e.record)
            .collect();
        assert!(matches!(mine.first(), Some(AppealRecord::Arrived { .. })));
        assert!(matches!(mine.last(), Some(AppealRecord::Ended(_))));
    }
}
