//! Each broken menu under `tests/fixtures/` gives exactly one problem, located where the admin
//! fixes it (`path:line:col: message`).

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

fn problems(name: &str) -> Vec<String> {
    // Integration tests run in the crate folder, so paths stay short and stable.
    let files = vec![PathBuf::from(format!("tests/fixtures/{name}.toml"))];
    let queues = vec!["help".to_string()];
    let cx = ivr::Context {
        start: "main",
        start_at: None,
        queues: Some(&queues),
    };
    ivr::check(&files, &cx)
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn assert_only(name: &str, expected: &str) {
    let p = problems(name);
    assert_eq!(p, vec![expected.to_string()], "{name}");
}

#[test]
fn unknown_node() {
    assert_only(
        "unknown_node",
        r#"tests/fixtures/unknown_node.toml:7:6: unknown node "nowhere""#,
    );
}

#[test]
fn unknown_queue() {
    assert_only(
        "unknown_queue",
        r#"tests/fixtures/unknown_queue.toml:6:9: unknown queue "benefit" (queues: help)"#,
    );
}

#[test]
fn unknown_prompt_in_a_list() {
    assert_only(
        "unknown_prompt",
        r#"tests/fixtures/unknown_prompt.toml:7:20: unknown prompt "helo": not in tests/fixtures/prompts/prompts.toml"#,
    );
}

#[test]
fn missing_wav() {
    assert_only(
        "missing_wav",
        r#"tests/fixtures/missing_wav.toml:6:10: prompt "gone": tests/fixtures/prompts/gone.wav: prompt file not found"#,
    );
}

#[test]
fn invalid_wav() {
    assert_only(
        "invalid_wav",
        r#"tests/fixtures/invalid_wav.toml:6:10: prompt "stereo": tests/fixtures/prompts/stereo.wav: 2 channels; prompts must be mono"#,
    );
}

#[test]
fn unreachable_node() {
    assert_only(
        "unreachable",
        r#"tests/fixtures/unreachable.toml:15:6: hangup node "orphan" is never reached from the start "main""#,
    );
}

#[test]
fn dead_end() {
    assert_only(
        "dead_end",
        "tests/fixtures/dead_end.toml:5:6: play node \"main\" is a dead end: it needs `next` (only hangup, queue, transfer, callback and message end a call)",
    );
}

#[test]
fn loop_without_input() {
    assert_only(
        "loop",
        r#"tests/fixtures/loop.toml:5:6: loop without waiting for a key: "main" → "again" → "main" (add a menu or collect, or end the call)"#,
    );
}

#[test]
fn overlapping_schedule() {
    assert_only(
        "overlap",
        r#"tests/fixtures/overlap.toml:7:33: schedule "main": "sat,sun 10:00-14:00" overlaps "mon-sat 09:00-18:00" on Saturday"#,
    );
}

#[test]
fn unknown_field() {
    assert_only(
        "typo",
        "tests/fixtures/typo.toml:8:1: unknown field `retry`, expected one of `id`, `prompt`, `choices`, `timeout`, `retries`, `invalid`, `no_input`, `operator`, `zero`, `star`",
    );
}

#[test]
fn bad_time_zone() {
    assert_only(
        "bad_timezone",
        r#"tests/fixtures/bad_timezone.toml:6:12: unknown time zone "Novosibirsk" (an IANA name such as "Asia/Novosibirsk")"#,
    );
}

#[test]
fn menu_without_operator() {
    assert_only(
        "no_operator",
        "tests/fixtures/no_operator.toml:5:6: node \"main\" has nowhere to send the caller on 0 and after the last try: set `operator = \"…\"` at the top of the file",
    );
}

#[test]
fn unknown_start_is_reported_where_the_line_names_it() {
    let files = vec![PathBuf::from("tests/fixtures/dead_end.toml")];
    let cx = ivr::Context {
        start: "begin",
        start_at: Some(("lines.toml", 9, 1)),
        queues: None,
    };
    let p: Vec<String> = ivr::check(&files, &cx)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert!(
        p.contains(
            &r#"lines.toml:9:1: start node "begin" is not defined in the menu files"#.to_string()
        ),
        "{p:#?}"
    );
}

#[test]
fn shipped_menus_have_no_problems() {
    let config = PathBuf::from("../../config");
    let queues: Vec<String> = [
        "benefits",
        "home-care",
        "rehab",
        "volunteers",
        "psychologists",
        "regional",
    ]
    .map(String::from)
    .to_vec();
    for (files, start) in [
        (vec!["ivr/city.toml"], "greeting"),
        (vec!["ivr/regional.toml", "ivr/calendar-ru.toml"], "hours"),
    ] {
        let files: Vec<PathBuf> = files.iter().map(|f| config.join(f)).collect();
        let cx = ivr::Context {
            start,
            start_at: None,
            queues: Some(&queues),
        };
        assert_eq!(ivr::check(&files, &cx), vec![], "{files:?}");
    }
}
