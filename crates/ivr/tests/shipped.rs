//! The menus shipped in `config/ivr/`: they pass every check, and callers walked through them on
//! virtual time end where PRODUCT.md says.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use ivr::simulate::simulate;
use ivr::{Context, Menu, Outcome};

fn config(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../config")
        .join(rel)
}

fn queues() -> Vec<String> {
    [
        "benefits",
        "home-care",
        "rehab",
        "volunteers",
        "psychologists",
        "regional",
    ]
    .map(String::from)
    .to_vec()
}

fn load(files: &[&str], start: &str) -> Arc<Menu> {
    let files: Vec<PathBuf> = files.iter().map(|f| config(f)).collect();
    let q = queues();
    let cx = Context {
        start,
        start_at: None,
        queues: Some(&q),
    };
    match ivr::load(&files, &cx) {
        Ok(m) => Arc::new(m),
        Err(problems) => panic!(
            "{}",
            problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        ),
    }
}

fn city() -> Arc<Menu> {
    load(&["ivr/city.toml"], "greeting")
}

fn regional() -> Arc<Menu> {
    load(&["ivr/regional.toml", "ivr/calendar-ru.toml"], "hours")
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

const MONDAY_10: &str = "2026-11-23T10:00:00+07:00";

#[test]
fn city_menu_choices_reach_their_queues_with_categories() {
    let m = city();
    for (key, queue, category) in [
        ("1", "benefits", "benefits"),
        ("2", "home-care", "home-care"),
        ("3", "rehab", "rehab"),
        ("4", "volunteers", "volunteers"),
        ("5", "psychologists", "psychologists"),
        ("0", "benefits", "general"),
    ] {
        let s = simulate(
            m.clone(),
            "greeting",
            at(MONDAY_10),
            None,
            key,
            Instant::now(),
        );
        match &s.outcome {
            Some(Outcome::Queue { queue: q, .. }) => assert_eq!(q, queue, "key {key}"),
            other => panic!("key {key}: {other:?}"),
        }
        assert_eq!(s.category.as_deref(), Some(category), "key {key}");
        assert!(s.path.contains(&format!("main:{key}")), "{:?}", s.path);
    }
}

#[test]
fn city_psychologists_are_answered_first() {
    let s = simulate(city(), "greeting", at(MONDAY_10), None, "5", Instant::now());
    assert_eq!(
        s.outcome,
        Some(Outcome::Queue {
            queue: "psychologists".into(),
            priority: 1
        })
    );
}

#[test]
fn city_silent_caller_reaches_an_operator_after_three_tries() {
    let s = simulate(city(), "greeting", at(MONDAY_10), None, "", Instant::now());
    assert_eq!(
        s.path.iter().filter(|p| *p == "main:timeout").count(),
        3,
        "{:?}",
        s.path
    );
    assert!(matches!(&s.outcome, Some(Outcome::Queue { queue, .. }) if queue == "benefits"));
    assert_eq!(s.category.as_deref(), Some("general"));
}

#[test]
fn city_star_repeats_and_then_a_choice_counts() {
    let s = simulate(
        city(),
        "greeting",
        at(MONDAY_10),
        None,
        "* 3",
        Instant::now(),
    );
    assert!(s.path.contains(&"main:*".to_string()));
    assert_eq!(s.category.as_deref(), Some("rehab"));
}

#[test]
fn regional_in_working_hours_offers_its_menu() {
    let s = simulate(
        regional(),
        "hours",
        at(MONDAY_10),
        None,
        "1",
        Instant::now(),
    );
    assert!(s.path.contains(&"hours:open".to_string()), "{:?}", s.path);
    assert_eq!(
        s.outcome,
        Some(Outcome::Queue {
            queue: "regional".into(),
            priority: 0
        })
    );
    assert_eq!(s.category.as_deref(), Some("long-term-care"));
    let s = simulate(
        regional(),
        "hours",
        at(MONDAY_10),
        None,
        "2",
        Instant::now(),
    );
    assert_eq!(s.category.as_deref(), Some("information"));
}

#[test]
fn regional_sunday_night_books_a_callback() {
    // Sunday 22 November 2026, 23:00 in Novosibirsk.
    let sunday = at("2026-11-22T23:00:00+07:00");
    let s = simulate(
        regional(),
        "hours",
        sunday,
        Some("+79131234567"),
        "1",
        Instant::now(),
    );
    assert!(
        s.path.contains(&"hours:after hours".to_string()),
        "{:?}",
        s.path
    );
    assert!(s.path.contains(&"after-hours".to_string()));
    assert_eq!(
        s.outcome,
        Some(Outcome::Callback {
            number: "+79131234567".into()
        })
    );
    // The number was read back digit by digit before the caller confirmed it.
    let text = s.transcript.join("\n");
    assert!(text.contains("play  numbers/9"), "{text}");
    assert!(text.contains("«Мы перезвоним вам по номеру»"), "{text}");
}

#[test]
fn regional_hidden_number_keys_one_in_or_leaves_a_message() {
    let sunday = at("2026-11-22T23:00:00+07:00");
    let s = simulate(
        regional(),
        "hours",
        sunday,
        None,
        "3 8 3 1 2 3 4 5 6 7 # 1",
        Instant::now(),
    );
    assert_eq!(
        s.outcome,
        Some(Outcome::Callback {
            number: "3831234567".into()
        })
    );
    let s = simulate(regional(), "hours", sunday, None, "", Instant::now());
    assert!(
        matches!(s.outcome, Some(Outcome::Message { .. })),
        "{:?}",
        s.outcome
    );
}

#[test]
fn regional_holidays_and_short_days_follow_the_calendar() {
    // 4 November 2026 (Wednesday) is a public holiday.
    let s = simulate(
        regional(),
        "hours",
        at("2026-11-04T12:00:00+07:00"),
        None,
        "",
        Instant::now(),
    );
    assert!(
        s.path.contains(&"hours:holiday".to_string()),
        "{:?}",
        s.path
    );
    // 3 November is a pre-holiday day: closed at 17:30.
    let s = simulate(
        regional(),
        "hours",
        at("2026-11-03T17:30:00+07:00"),
        None,
        "",
        Instant::now(),
    );
    assert!(
        s.path.contains(&"hours:after hours".to_string()),
        "{:?}",
        s.path
    );
    let s = simulate(
        regional(),
        "hours",
        at("2026-11-03T16:30:00+07:00"),
        None,
        "",
        Instant::now(),
    );
    assert!(s.path.contains(&"hours:open".to_string()), "{:?}", s.path);
}

#[test]
fn prompts_know_their_texts_and_lengths() {
    let m = city();
    let g = m.prompt(&ivr::PromptRef("city/greeting".into())).unwrap();
    assert!(g.text.as_deref().unwrap().starts_with("Здравствуйте"));
    assert!(g.duration.as_secs_f64() > 2.0, "{:?}", g.duration);
}
