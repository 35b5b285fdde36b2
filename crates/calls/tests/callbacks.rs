//! Callbacks, overflow to a message and feature codes on the harness: the flows whose timers
//! run for minutes take milliseconds here.

mod harness;

use std::time::Duration;

use acd::{OperatorState, PauseReason};
use calls::{BookEntry, OperatorCommand};
use harness::{addr, settings, Journal, World, CITY, QUEUE_MENU, TRUNK};
use media::prompts::PromptName;
use sip::Method;

/// A callback node booking a place in `benefits`.
const CALLBACK_MENU: &str = "[[callback]]\nid = \"main\"\nprompt = \"intro\"\n\
     confirm = \"confirm\"\nenter = \"enter\"\ndone = \"done\"\nqueue = \"benefits\"\n\
     fallback = \"bye\"\n[[hangup]]\nid = \"bye\"\n";

const TEN_MINUTES: Duration = Duration::from_secs(600);

fn callback_world() -> (World, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let s = settings(dir.path(), CALLBACK_MENU, "main", |q| {
        q.callback = Some(acd::CallbackConfig {
            offer_after: None,
            max_attempts: 3,
            retry_interval: TEN_MINUTES,
        });
    });
    (World::new(s), dir)
}

/// The caller books a callback (the number read back, `1` confirms) and is hung up after the
/// closing prompt.
fn book(w: &mut World, caller: std::net::SocketAddr) {
    let call = w.call(caller, CITY, "");
    w.advance(Duration::from_millis(1500));
    w.press(&call, '1');
    w.advance(Duration::from_millis(500));
    w.bye_answered(caller);
    assert!(w.leg(&call).heard.contains(&"done".to_string()));
}

/// One callback attempt whose number is busy: the operator answers, the number is dialled
/// and refuses (486), the operator is hung up.
fn busy_attempt(w: &mut World, phone: std::net::SocketAddr, n: u32) {
    let inv = w.expect(phone, Method::Invite);
    w.answer(phone, &inv, &format!("a{n}"));
    w.expect(phone, Method::Ack);
    let dial = w.expect(TRUNK, Method::Invite);
    assert_eq!(dial.uri.user(), Some(harness::CALLER));
    w.reply(TRUNK, &dial, 486, &format!("b{n}"));
    w.expect(TRUNK, Method::Ack);
    w.bye_answered(phone);
}

/// A callback busy on every attempt is tried three times, ten minutes apart, then given up:
/// each attempt on the booking call's appeal, the give-up once; nobody is rung again.
#[test]
fn a_callback_busy_three_times_ten_minutes_apart_is_given_up() {
    let (mut w, _dir) = callback_world();
    let (caller, phone) = (addr(10), addr(11));
    w.operator(phone, "op1");
    book(&mut w, caller);
    busy_attempt(&mut w, phone, 1);
    for n in [2, 3] {
        // nothing before the retry interval is over
        w.advance(TEN_MINUTES - Duration::from_secs(5));
        w.quiet(phone);
        w.quiet(TRUNK);
        w.advance(Duration::from_secs(10));
        busy_attempt(&mut w, phone, n);
    }
    w.advance(Duration::from_secs(3600));
    w.quiet(phone);
    w.quiet(TRUNK);
    assert_eq!(w.log.starting("gave-up"), ["gave-up A1 3"]);
    assert_eq!(
        w.log.starting("attempt"),
        [
            "attempt A1 1 busy",
            "attempt A1 2 busy",
            "attempt A1 3 busy"
        ]
    );
    assert_eq!(
        w.log.starting("dialling"),
        [
            "dialling A1 op1 1",
            "dialling A1 op1 2",
            "dialling A1 op1 3"
        ]
    );
    assert!(w.elapsed() > 2 * TEN_MINUTES);
}

/// The second attempt is answered: the operator and the number are bridged; the operator's
/// BYE hangs the number up and the talk is written on the booking appeal.
#[test]
fn a_callback_answered_on_the_retry_bridges_operator_and_number() {
    let (mut w, _dir) = callback_world();
    let (caller, phone) = (addr(10), addr(11));
    w.operator(phone, "op1");
    book(&mut w, caller);
    busy_attempt(&mut w, phone, 1);
    w.advance(TEN_MINUTES + Duration::from_secs(5));
    let inv = w.expect(phone, Method::Invite);
    w.answer(phone, &inv, "a2");
    w.expect(phone, Method::Ack);
    let dial = w.expect(TRUNK, Method::Invite);
    w.answer(TRUNK, &dial, "c");
    w.expect(TRUNK, Method::Ack);
    let callee = dial.headers.call_id().expect("a Call-ID").to_string();
    assert_eq!(w.leg_of(&inv).bridged.as_deref(), Some(callee.as_str()));
    let mut op = w.dialog_of(phone, &inv, "a2");
    w.advance(Duration::from_secs(90));
    w.hang_up(&mut op);
    w.bye_answered(TRUNK);
    assert_eq!(
        w.log.starting("attempt"),
        ["attempt A1 1 busy", "attempt A1 2 answered"]
    );
    assert_eq!(w.log.starting("talked"), ["talked A1 op1"]);
    assert!(w.log.starting("gave-up").is_empty());
    assert_eq!(
        w.log.starting("ended"),
        ["ended A1 ivr_hangup ivr=Some(Callback) operator=-"]
    );
}

/// Nobody answers within the queue's longest wait: the caller is asked to leave a message,
/// which is recorded until its longest length, then the call ends with the outcome `message`.
#[test]
fn an_overflow_to_a_message_records_the_caller() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let s = settings(dir.path(), QUEUE_MENU, "main", |q| {
        q.max_wait = Some(Duration::from_secs(30));
        q.overflow = acd::OverflowAction::Message;
    });
    let mut w = World::new(s);
    let caller = addr(10);
    let call = w.call(caller, CITY, "");
    w.advance(Duration::from_secs(29));
    assert_eq!(w.leg(&call).moh.as_deref(), Some("music"));
    assert!(w.log.starting("step A1 message").is_empty());
    w.advance(Duration::from_secs(2));
    assert!(w
        .leg(&call)
        .heard
        .contains(&"common/leave-message".to_string()));
    let recording = format!("{}-message", w.log.id(1));
    assert_eq!(w.leg(&call).recording.as_deref(), Some(recording.as_str()));
    assert_eq!(w.log.starting("step A1 message"), ["step A1 message"]);
    // the message's longest length (120 s) ends the call
    w.advance(Duration::from_secs(110));
    w.quiet(caller);
    w.advance(Duration::from_secs(15));
    w.bye_answered(caller);
    assert_eq!(
        w.log.starting("ended"),
        ["ended A1 ivr_hangup ivr=Some(Message) operator=-"]
    );
}

/// An operator logs in, pauses with a reason, resumes and logs out from the phone: every
/// code needs the operator's credentials (403 without), an unknown one is 404, each plays
/// its confirmation and is hung up; a refused one plays "not done".
#[test]
fn feature_codes_log_in_pause_resume_and_log_out() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let mut s = settings(dir.path(), QUEUE_MENU, "main", |_| {});
    s.feature_codes.pause_reasons = vec![("1".into(), "break".into())];
    let p = |n: &str| Some(PromptName::new(n));
    s.feature_codes.prompts = calls::FeaturePrompts {
        logged_in: p("op/in"),
        logged_out: p("op/out"),
        paused: p("op/paused"),
        unpaused: p("op/unpaused"),
        refused: p("op/refused"),
    };
    let mut w = World::new(s);
    let phone = addr(11);
    w.register(phone, "op1");
    let state = |w: &mut World| {
        w.command(|c, _| c.operator_status("op1"))
            .expect("op1 is known")
            .state
    };
    assert_eq!(state(&mut w), OperatorState::LoggedOut);
    assert_eq!(
        w.dial_code(phone, "*1", "op1", "op1-secret"),
        (200, vec!["op/in".into()])
    );
    assert_eq!(state(&mut w), OperatorState::Available);
    assert_eq!(
        w.dial_code(phone, "*31", "op1", "op1-secret"),
        (200, vec!["op/paused".into()])
    );
    assert_eq!(
        state(&mut w),
        OperatorState::Paused(PauseReason::Requested("break".into()))
    );
    assert_eq!(w.dial_code(phone, "*9", "op1", "op1-secret").0, 404);
    assert_eq!(w.dial_code(phone, "*2", "op1", "guess").0, 403);
    assert_eq!(
        w.dial_code(phone, "*4", "op1", "op1-secret"),
        (200, vec!["op/unpaused".into()])
    );
    assert_eq!(state(&mut w), OperatorState::Available);
    assert_eq!(
        w.dial_code(phone, "*2", "op1", "op1-secret"),
        (200, vec!["op/out".into()])
    );
    assert_eq!(state(&mut w), OperatorState::LoggedOut);
    // feature-code calls write no appeal
    assert!(w.log.lines().is_empty(), "{:?}", w.log.lines());
    // the book was asked first, each time, with the login's queues as the ACD serves them
    let asked: Vec<(String, OperatorCommand)> = w
        .journal
        .iter()
        .filter_map(|(_, j)| match j {
            Journal::Book(BookEntry::Apply(r)) => Some((r.operator.clone(), r.cmd.clone())),
            _ => None,
        })
        .collect();
    let op1 = |cmd| ("op1".to_string(), cmd);
    assert_eq!(
        asked,
        [
            op1(OperatorCommand::Login {
                queues: vec!["benefits".into()]
            }),
            op1(OperatorCommand::Pause {
                reason: "break".into()
            }),
            op1(OperatorCommand::Unpause),
            op1(OperatorCommand::Logout),
        ]
    );
    // a book that refuses: "not done", and the ACD never hears of it
    w.book_refuses = Some(calls::OperatorRefusal::WrongState {
        operator: "op1".into(),
        state: "logged_out",
        action: "log in",
    });
    assert_eq!(
        w.dial_code(phone, "*1", "op1", "op1-secret"),
        (200, vec!["op/refused".into()])
    );
    assert_eq!(state(&mut w), OperatorState::LoggedOut);
}
