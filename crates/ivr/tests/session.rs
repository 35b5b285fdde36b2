//! `IvrSession` on virtual time: every node kind, and the rules for retries, timeouts, barge-in
//! and type-ahead. No test waits: time is `t0 + Duration`.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use ivr::{Action, IvrSession, Menu, Outcome, PromptRef};

const PROMPTS: &[&str] = &[
    "greet", "menu", "sub", "bad", "silence", "ask", "intro", "confirm", "enter", "done", "op",
    "msg", "bye", "xfer",
];

/// A menu from TOML text (plus the operator queue `op` when it has menus or collects), with a
/// prompt folder holding every name in `PROMPTS` and the digits.
fn menu(body: &str) -> (tempfile::TempDir, Arc<Menu>) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("prompts");
    std::fs::create_dir_all(p.join("numbers")).unwrap();
    let wav = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/prompts/hello.wav");
    let mut catalogue = String::new();
    for n in PROMPTS {
        catalogue.push_str(&format!("\"{n}\" = \"{n} text\"\n"));
        std::fs::copy(&wav, p.join(format!("{n}.wav"))).unwrap();
    }
    for d in 0..10 {
        std::fs::copy(&wav, p.join(format!("numbers/{d}.wav"))).unwrap();
    }
    std::fs::write(p.join("prompts.toml"), catalogue).unwrap();
    let file = dir.path().join("menu.toml");
    // The operator queue, for menus and collects (an unused node would be refused as unreachable).
    let operator =
        if body.contains("[[menu]]") || body.contains("[[collect]]") || body.contains("= \"op\"") {
            "operator = \"op\"\n[[queue]]\nid = \"op\"\nqueue = \"operators\"\n"
        } else {
            ""
        };
    std::fs::write(&file, format!("prompts = \"prompts\"\n{operator}\n{body}")).unwrap();
    let cx = ivr::Context {
        start: "main",
        start_at: None,
        queues: None,
    };
    let m = ivr::load(&[file], &cx).unwrap_or_else(|p| {
        panic!(
            "{}",
            p.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        )
    });
    (dir, Arc::new(m))
}

fn wall(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

const MONDAY_NOON: &str = "2026-11-23T12:00:00+07:00";

fn session(m: &Arc<Menu>, t0: Instant) -> IvrSession {
    IvrSession::new(m.clone(), "main", t0, wall(MONDAY_NOON))
}

fn drain(s: &mut IvrSession) -> Vec<Action> {
    std::iter::from_fn(|| s.poll_action()).collect()
}

/// Only the actions that are not path steps.
fn effects(actions: &[Action]) -> Vec<Action> {
    actions
        .iter()
        .filter(|a| !matches!(a, Action::AppendPath(_)))
        .cloned()
        .collect()
}

fn play(names: &[&str]) -> Action {
    Action::Play(names.iter().map(|n| PromptRef(n.to_string())).collect())
}

fn queue(q: &str) -> Action {
    Action::EnterQueue {
        queue: q.into(),
        priority: 0,
    }
}

const MAIN_MENU: &str = r#"
[[menu]]
id = "main"
prompt = "menu"
timeout = 5
retries = 2
invalid = "bad"
no_input = "silence"
choices = { 1 = "one", 2 = "sub" }

[[queue]]
id = "one"
queue = "first"

[[menu]]
id = "sub"
prompt = "sub"
choices = { 3 = "three" }

[[queue]]
id = "three"
queue = "third"
"#;

#[test]
fn menu_key_after_the_prompt_goes_to_the_choice() {
    let (_d, m) = menu(MAIN_MENU);
    let t0 = Instant::now();
    let mut s = session(&m, t0);
    assert_eq!(effects(&drain(&mut s)), vec![play(&["menu"])]);
    assert_eq!(s.poll_timeout(), None, "no timer while the prompt plays");
    s.handle_playback_finished(t0 + Duration::from_secs(10));
    assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(15)));
    s.handle_digit(t0 + Duration::from_secs(12), '1');
    let a = drain(&mut s);
    assert_eq!(
        a,
        vec![
            Action::AppendPath("main:1".into()),
            Action::AppendPath("one".into()),
            queue("first")
        ]
    );
    assert!(s.is_finished());
    assert_eq!(
        s.outcome(),
        Some(&Outcome::Queue {
            queue: "first".into(),
            priority: 0
        })
    );
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn menu_timeouts_replay_then_send_to_the_operator_never_hang_up() {
    let (_d, m) = menu(MAIN_MENU);
    let t0 = Instant::now();
    let mut s = session(&m, t0);
    drain(&mut s);
    let mut now = t0 + Duration::from_secs(10);
    s.handle_playback_finished(now);
    for _ in 0..2 {
        // An early call does nothing.
        s.handle_timeout(now + Duration::from_millis(4999));
        assert!(drain(&mut s).is_empty());
        now += Duration::from_secs(5);
        s.handle_timeout(now);
        assert_eq!(effects(&drain(&mut s)), vec![play(&["silence", "menu"])]);
        now += Duration::from_secs(10);
        s.handle_playback_finished(now);
        assert_eq!(s.poll_timeout(), Some(now + Duration::from_secs(5)));
    }
    now += Duration::from_secs(5);
    s.handle_timeout(now);
    let a = drain(&mut s);
    assert_eq!(effects(&a), vec![queue("operators")]);
    assert!(!a.contains(&Action::Hangup));
    assert_eq!(
        s.path(),
        [
            "main",
            "main:timeout",
            "main:timeout",
            "main:timeout",
            "main:no more tries",
            "op"
        ]
    );
}

#[test]
fn invalid_keys_count_as_tries() {
    let (_d, m) = menu(MAIN_MENU);
    let t0 = Instant::now();
    let mut s = session(&m, t0);
    drain(&mut s);
    s.handle_playback_finished(t0);
    s.handle_digit(t0 + Duration::from_secs(1), '9');
    assert_eq!(effects(&drain(&mut s)), vec![play(&["bad", "menu"])]);
    assert_eq!(
        s.poll_timeout(),
        None,
        "the timer starts when the prompt ends"
    );
    s.handle_digit(t0 + Duration::from_secs(2), '#');
    assert_eq!(
        effects(&drain(&mut s)),
        vec![Action::StopPlayback, play(&["bad", "menu"])]
    );
    s.handle_digit(t0 + Duration::from_secs(3), '7');
    assert_eq!(
        effects(&drain(&mut s)),
        vec![Action::StopPlayback, queue("operators")]
    );
}

#[test]
fn zero_and_star_in_every_menu_unless_turned_off() {
    let (_d, m) = menu(MAIN_MENU);
    let t0 = Instant::now();
    let mut s = session(&m, t0);
    drain(&mut s);
    // * repeats and does not use up a try.
    for i in 0..5 {
        s.handle_digit(t0 + Duration::from_secs(i), '*');
        assert_eq!(
            effects(&drain(&mut s)),
            vec![Action::StopPlayback, play(&["menu"])]
        );
    }
    s.handle_digit(t0 + Duration::from_secs(9), '0');
    assert_eq!(
        effects(&drain(&mut s)),
        vec![Action::StopPlayback, queue("operators")]
    );

    let (_d, m) = menu(
        r#"
[[menu]]
id = "main"
prompt = "menu"
zero = false
star = false
retries = 0
choices = { 1 = "op" }
"#,
    );
    let mut s = session(&m, t0);
    drain(&mut s);
    s.handle_digit(t0, '0');
    assert_eq!(
        s.path().last().unwrap(),
        "op",
        "0 is invalid; with no retries left, the operator"
    );
    assert!(s.path().contains(&"main:0 invalid".to_string()));
}

#[test]
fn barge_in_stops_the_prompt_at_once_and_acts_on_the_key() {
    let (_d, m) = menu(MAIN_MENU);
    let t0 = Instant::now();
    let mut s = session(&m, t0);
    drain(&mut s);
    assert!(s.is_playing());
    s.handle_digit(t0 + Duration::from_millis(300), '2');
    let a = drain(&mut s);
    assert_eq!(a.first(), Some(&Action::StopPlayback));
    assert_eq!(effects(&a), vec![Action::StopPlayback, play(&["sub"])]);
    // A late "finished" for the stopped menu prompt is not taken for the new one... only one
    // finish comes per Play, so the next finish ends "sub".
    s.handle_playback_finished(t0 + Duration::from_secs(2));
    assert!(s.poll_timeout().is_some());
    // A finish when nothing plays is ignored.
    s.handle_playback_finished(t0 + Duration::from_secs(3));
    assert!(drain(&mut s).is_empty());
}

#[test]
fn type_ahead_digits_are_kept_for_the_next_menus() {
    let (_d, m) = menu(&format!(
        r#"
[[play]]
id = "main"
prompt = "greet"
next = "first"
interruptible = false
{}"#,
        MAIN_MENU.replace("id = \"main\"", "id = \"first\"")
    ));
    let t0 = Instant::now();
    let mut s = session(&m, t0);
    assert_eq!(effects(&drain(&mut s)), vec![play(&["greet"])]);
    // Pressed during a greeting that cannot be interrupted: kept, the greeting goes on.
    s.handle_digit(t0 + Duration::from_secs(1), '2');
    s.handle_digit(t0 + Duration::from_secs(2), '3');
    assert!(drain(&mut s).is_empty());
    assert!(s.is_playing());
    s.handle_playback_finished(t0 + Duration::from_secs(4));
    // Both menus take their keys without playing their prompts.
    assert_eq!(effects(&drain(&mut s)), vec![queue("third")]);
    assert_eq!(
        s.path(),
        ["main", "first", "first:2", "sub", "sub:3", "three"]
    );
}

#[test]
fn interruptible_play_is_cut_short_and_the_key_kept() {
    let (_d, m) = menu(&format!(
        "[[play]]\nid = \"main\"\nprompt = \"greet\"\nnext = \"first\"\n{}",
        MAIN_MENU.replace("id = \"main\"", "id = \"first\"")
    ));
    let t0 = Instant::now();
    let mut s = session(&m, t0);
    drain(&mut s);
    s.handle_digit(t0 + Duration::from_millis(500), '1');
    assert_eq!(
        effects(&drain(&mut s)),
        vec![Action::StopPlayback, queue("first")]
    );
}

#[test]
fn invalid_key_drops_the_rest_of_the_type_ahead() {
    let (_d, m) = menu(&format!(
        "[[play]]\nid = \"main\"\nprompt = \"greet\"\nnext = \"first\"\ninterruptible = false\n{}",
        MAIN_MENU.replace("id = \"main\"", "id = \"first\"")
    ));
    let t0 = Instant::now();
    let mut s = session(&m, t0);
    drain(&mut s);
    s.handle_digit(t0, '9');
    s.handle_digit(t0, '1');
    s.handle_playback_finished(t0 + Duration::from_secs(1));
    assert_eq!(effects(&drain(&mut s)), vec![play(&["bad", "menu"])]);
    s.handle_playback_finished(t0 + Duration::from_secs(2));
    assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(7)));
}

const COLLECT: &str = r#"
[[collect]]
id = "main"
prompt = "ask"
variable = "account"
min_digits = 3
max_digits = 5
timeout = 10
digit_timeout = 4
retries = 1
invalid = "bad"
next = "done"

[[hangup]]
id = "done"
prompt = "bye"
"#;

#[test]
fn collect_ends_on_hash_max_digits_or_the_inter_digit_timeout() {
    let (_d, m) = menu(COLLECT);
    let t0 = Instant::now();
    // `#` after enough digits.
    let mut s = session(&m, t0);
    assert_eq!(effects(&drain(&mut s)), vec![play(&["ask"])]);
    s.handle_digit(t0 + Duration::from_secs(1), '4');
    assert_eq!(effects(&drain(&mut s)), vec![Action::StopPlayback]);
    assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(5)));
    s.handle_digit(t0 + Duration::from_secs(2), '5');
    s.handle_digit(t0 + Duration::from_secs(3), '6');
    s.handle_digit(t0 + Duration::from_secs(4), '#');
    let a = drain(&mut s);
    assert!(a.contains(&Action::SetVariable {
        name: "account".into(),
        value: "456".into()
    }));
    assert_eq!(effects(&a).last(), Some(&play(&["bye"])));
    s.handle_playback_finished(t0 + Duration::from_secs(5));
    assert_eq!(drain(&mut s), vec![Action::Hangup]);
    assert_eq!(s.outcome(), Some(&Outcome::Hangup));

    // Max digits end the entry at once.
    let mut s = session(&m, t0);
    drain(&mut s);
    for (i, d) in "12345".chars().enumerate() {
        s.handle_digit(t0 + Duration::from_secs(i as u64), d);
    }
    assert_eq!(
        s.variables().get("account").map(String::as_str),
        Some("12345")
    );

    // The inter-digit timeout ends it with what was typed.
    let mut s = session(&m, t0);
    drain(&mut s);
    s.handle_playback_finished(t0 + Duration::from_secs(2));
    assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(12)));
    for (i, d) in "7777".chars().enumerate() {
        s.handle_digit(t0 + Duration::from_secs(3 + i as u64), d);
    }
    let deadline = s.poll_timeout().unwrap();
    assert_eq!(deadline, t0 + Duration::from_secs(6 + 4));
    s.handle_timeout(deadline);
    assert_eq!(
        s.variables().get("account").map(String::as_str),
        Some("7777")
    );
}

#[test]
fn collect_too_short_retries_then_falls_back_to_the_operator() {
    let (_d, m) = menu(COLLECT);
    let t0 = Instant::now();
    let mut s = session(&m, t0);
    drain(&mut s);
    s.handle_digit(t0, '1');
    s.handle_digit(t0, '#');
    assert_eq!(
        effects(&drain(&mut s)),
        vec![Action::StopPlayback, play(&["bad", "ask"])]
    );
    s.handle_playback_finished(t0 + Duration::from_secs(3));
    // No digit at all: the last try is used up; the operator, not a hang-up.
    s.handle_timeout(t0 + Duration::from_secs(13));
    assert_eq!(effects(&drain(&mut s)), vec![queue("operators")]);
    assert!(s.variables().is_empty());
}

#[test]
fn collect_star_starts_over_without_using_a_try() {
    let (_d, m) = menu(COLLECT);
    let t0 = Instant::now();
    let mut s = session(&m, t0);
    drain(&mut s);
    s.handle_playback_finished(t0);
    for d in ['1', '2', '*', '8', '8', '8', '#'] {
        s.handle_digit(t0, d);
    }
    assert_eq!(
        s.variables().get("account").map(String::as_str),
        Some("888")
    );
}

const HOURS: &str = r#"
[[play]]
id = "main"
prompt = "greet"
next = "hours"

[[schedule]]
id = "hours"
timezone = "Asia/Novosibirsk"
hours = ["mon-fri 09:00-18:00"]
calendar = "c"
open = "op"
closed = "closed"

[[calendar]]
id = "c"
holidays = [2026-11-04]

[[message]]
id = "closed"
prompt = "msg"
max_seconds = 60
"#;

#[test]
fn schedule_uses_the_civil_time_when_the_caller_reaches_it() {
    let (_d, m) = menu(HOURS);
    let t0 = Instant::now();
    // 17:59:58 when the call starts; the greeting takes 3 s, so the schedule is met at 18:00:01.
    let mut s = IvrSession::new(m.clone(), "main", t0, wall("2026-11-23T17:59:58+07:00"));
    drain(&mut s);
    s.handle_playback_finished(t0 + Duration::from_secs(3));
    let a = drain(&mut s);
    assert!(
        a.contains(&Action::AppendPath("hours:after hours".into())),
        "{a:?}"
    );
    assert_eq!(effects(&a), vec![play(&["msg"])]);
    s.handle_playback_finished(t0 + Duration::from_secs(5));
    assert_eq!(
        drain(&mut s),
        vec![Action::StartRecording {
            max: Duration::from_secs(60)
        }]
    );
    assert_eq!(
        s.outcome(),
        Some(&Outcome::Message {
            max: Duration::from_secs(60)
        })
    );

    let mut s = IvrSession::new(m.clone(), "main", t0, wall("2026-11-23T17:59:00+07:00"));
    drain(&mut s);
    s.handle_playback_finished(t0 + Duration::from_secs(3));
    assert_eq!(effects(&drain(&mut s)), vec![queue("operators")]);

    let mut s = IvrSession::new(m, "main", t0, wall("2026-11-04T12:00:00+07:00"));
    drain(&mut s);
    s.handle_playback_finished(t0 + Duration::from_secs(3));
    assert!(s.path().contains(&"hours:holiday".to_string()));
}

#[test]
fn set_records_category_priority_and_variables_and_the_queue_inherits_the_priority() {
    let (_d, m) = menu(
        r#"
[[set]]
id = "main"
category = "benefits"
priority = 3
vars = { source = "ivr" }
next = "go"

[[goto]]
id = "go"
to = "q"

[[queue]]
id = "q"
queue = "benefits"
"#,
    );
    let mut s = session(&m, Instant::now());
    assert_eq!(
        drain(&mut s),
        vec![
            Action::AppendPath("main".into()),
            Action::SetCategory("benefits".into()),
            Action::SetPriority(3),
            Action::SetVariable {
                name: "source".into(),
                value: "ivr".into()
            },
            Action::AppendPath("go".into()),
            Action::AppendPath("q".into()),
            Action::EnterQueue {
                queue: "benefits".into(),
                priority: 3
            },
        ]
    );
    assert_eq!(s.category(), Some("benefits"));
}

#[test]
fn transfer_after_its_prompt_or_at_a_key() {
    let (_d, m) = menu(
        r#"
[[transfer]]
id = "main"
prompt = "xfer"
number = "+73832000000"
"#,
    );
    let t0 = Instant::now();
    let mut s = session(&m, t0);
    assert_eq!(effects(&drain(&mut s)), vec![play(&["xfer"])]);
    assert!(!s.is_finished());
    s.handle_playback_finished(t0 + Duration::from_secs(2));
    let end = Action::Transfer {
        number: "+73832000000".into(),
    };
    assert_eq!(drain(&mut s), vec![end.clone()]);
    assert!(s.is_finished());
    // A key during the prompt skips it.
    let mut s = session(&m, t0);
    drain(&mut s);
    s.handle_digit(t0, '5');
    assert_eq!(drain(&mut s), vec![Action::StopPlayback, end]);
    // Keys after the end do nothing.
    s.handle_digit(t0, '1');
    s.handle_timeout(t0 + Duration::from_secs(100));
    assert!(drain(&mut s).is_empty());
}

#[test]
fn a_failed_transfer_goes_to_its_fallback_or_ends() {
    let (_d, m) = menu(
        r#"
[[transfer]]
id = "main"
number = "88005553535"
fallback = "sorry"

[[message]]
id = "sorry"
prompt = "msg"
"#,
    );
    let t0 = Instant::now();
    let mut s = session(&m, t0);
    assert_eq!(
        effects(&drain(&mut s)),
        vec![Action::Transfer {
            number: "88005553535".into()
        }]
    );
    assert!(s.is_finished());
    assert!(s.transfer_failed(t0 + Duration::from_secs(30)));
    let after = drain(&mut s);
    assert!(
        after.contains(&Action::AppendPath("main:failed".into())),
        "{after:?}"
    );
    assert_eq!(effects(&after), vec![play(&["msg"])]);
    assert_eq!(s.current_node(), "sorry");
    // once past the transfer, a second report changes nothing
    assert!(!s.transfer_failed(t0 + Duration::from_secs(31)));

    // without a fallback (and no `operator` in the file) the call is to end
    let (_d, m) = menu("[[transfer]]\nid = \"main\"\nnumber = \"112\"\n");
    let mut s = session(&m, t0);
    drain(&mut s);
    assert!(!s.transfer_failed(t0));
    assert!(drain(&mut s).is_empty());

    // the file's operator queue is the fallback when the node names none
    let (_d, m) = menu("[[transfer]]\nid = \"main\"\nnumber = \"112\"\nprompt = \"xfer\"\n# the helper adds operator = \"op\"\n");
    let mut s = session(&m, t0);
    drain(&mut s);
    s.handle_playback_finished(t0 + Duration::from_secs(1));
    drain(&mut s);
    assert!(s.transfer_failed(t0 + Duration::from_secs(20)));
    assert_eq!(effects(&drain(&mut s)), vec![queue("operators")]);
}

#[test]
fn a_callback_node_names_the_queue_that_calls_back() {
    let body = CALLBACK.replace(
        "fallback = \"message\"",
        "fallback = \"message\"\nqueue = \"benefits\"",
    );
    let (_d, m) = menu(&body);
    let t0 = Instant::now();
    let mut s = session(&m, t0).with_caller("+79131234567");
    drain(&mut s);
    s.handle_playback_finished(t0 + Duration::from_secs(9));
    s.handle_digit(t0 + Duration::from_secs(10), '1');
    assert!(drain(&mut s).contains(&Action::Callback {
        number: "+79131234567".into(),
        queue: Some("benefits".into()),
    }));
}

#[test]
fn hangup_without_a_prompt_ends_at_once() {
    let (_d, m) = menu("[[hangup]]\nid = \"main\"\n");
    let mut s = session(&m, Instant::now());
    assert_eq!(
        drain(&mut s),
        vec![Action::AppendPath("main".into()), Action::Hangup]
    );
    assert_eq!(s.outcome(), Some(&Outcome::Hangup));
}

const CALLBACK: &str = r#"
[[callback]]
id = "main"
prompt = "intro"
confirm = "confirm"
enter = "enter"
done = "done"
timeout = 6
retries = 1
min_digits = 5
max_digits = 11
fallback = "message"

[[message]]
id = "message"
prompt = "msg"
"#;

fn read_back(number: &str) -> Action {
    let mut names = vec!["intro".to_string()];
    names.extend(number.chars().map(|d| format!("numbers/{d}")));
    names.push("confirm".into());
    Action::Play(names.into_iter().map(PromptRef).collect())
}

#[test]
fn callback_reads_the_number_back_and_books_it_on_1() {
    let (_d, m) = menu(CALLBACK);
    let t0 = Instant::now();
    let mut s = session(&m, t0).with_caller("+79131234567");
    assert_eq!(effects(&drain(&mut s)), vec![read_back("79131234567")]);
    s.handle_playback_finished(t0 + Duration::from_secs(9));
    s.handle_digit(t0 + Duration::from_secs(10), '1');
    assert_eq!(
        effects(&drain(&mut s)),
        vec![
            Action::Callback {
                number: "+79131234567".into(),
                queue: None,
            },
            play(&["done"])
        ]
    );
    assert!(!s.is_finished(), "the closing prompt plays first");
    s.handle_playback_finished(t0 + Duration::from_secs(12));
    assert_eq!(drain(&mut s), vec![Action::Hangup]);
    assert!(s.is_finished());
    assert_eq!(
        s.outcome(),
        Some(&Outcome::Callback {
            number: "+79131234567".into()
        })
    );
}

#[test]
fn callback_takes_another_number_on_2() {
    let (_d, m) = menu(CALLBACK);
    let t0 = Instant::now();
    let mut s = session(&m, t0).with_caller("+79131234567");
    drain(&mut s);
    s.handle_digit(t0, '2');
    assert_eq!(
        effects(&drain(&mut s)),
        vec![Action::StopPlayback, play(&["enter"])]
    );
    for d in "3832123456#".chars() {
        s.handle_digit(t0 + Duration::from_secs(1), d);
    }
    assert_eq!(
        effects(&drain(&mut s)),
        vec![Action::StopPlayback, read_back("3832123456")]
    );
    s.handle_playback_finished(t0 + Duration::from_secs(9));
    s.handle_digit(t0 + Duration::from_secs(10), '1');
    assert_eq!(
        s.outcome(),
        Some(&Outcome::Callback {
            number: "3832123456".into()
        })
    );
}

#[test]
fn callback_silent_caller_gets_their_own_number_booked() {
    let (_d, m) = menu(CALLBACK);
    let t0 = Instant::now();
    let mut s = session(&m, t0).with_caller("+79131234567");
    drain(&mut s);
    s.handle_playback_finished(t0 + Duration::from_secs(9));
    s.handle_timeout(t0 + Duration::from_secs(15));
    assert_eq!(effects(&drain(&mut s)), vec![read_back("79131234567")]);
    s.handle_playback_finished(t0 + Duration::from_secs(24));
    s.handle_timeout(t0 + Duration::from_secs(30));
    assert!(matches!(s.outcome(), Some(Outcome::Callback { .. })));
}

#[test]
fn callback_hidden_number_asks_for_one_then_falls_back() {
    let (_d, m) = menu(CALLBACK);
    let t0 = Instant::now();
    let mut s = session(&m, t0);
    assert_eq!(effects(&drain(&mut s)), vec![play(&["enter"])]);
    s.handle_playback_finished(t0 + Duration::from_secs(2));
    s.handle_timeout(t0 + Duration::from_secs(8));
    assert_eq!(effects(&drain(&mut s)), vec![play(&["enter"])]);
    s.handle_playback_finished(t0 + Duration::from_secs(10));
    // Too short a number on the last try: the fallback, a message.
    s.handle_digit(t0 + Duration::from_secs(11), '1');
    s.handle_digit(t0 + Duration::from_secs(12), '#');
    assert_eq!(effects(&drain(&mut s)), vec![play(&["msg"])]);
    assert_eq!(s.current_node(), "message");
}

#[test]
fn digits_before_a_callback_are_not_taken_as_consent() {
    let (_d, m) = menu(&format!(
        "[[play]]\nid = \"main\"\nprompt = \"greet\"\nnext = \"cb\"\ninterruptible = false\n{}",
        CALLBACK.replace("id = \"main\"", "id = \"cb\"")
    ));
    let t0 = Instant::now();
    let mut s = session(&m, t0).with_caller("+79131234567");
    drain(&mut s);
    s.handle_digit(t0, '1');
    s.handle_playback_finished(t0 + Duration::from_secs(1));
    assert_eq!(effects(&drain(&mut s)), vec![read_back("79131234567")]);
    assert_eq!(s.outcome(), None);
}

#[test]
fn keys_that_are_not_dtmf_are_ignored() {
    let (_d, m) = menu(MAIN_MENU);
    let t0 = Instant::now();
    let mut s = session(&m, t0);
    drain(&mut s);
    for c in ['x', 'a', ' ', 'Ж'] {
        s.handle_digit(t0, c);
    }
    assert!(drain(&mut s).is_empty());
    assert!(s.is_playing());
}
