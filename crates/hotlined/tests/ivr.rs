//! The voice menus through the built binary: `hotlined check` refuses a broken menu with its
//! `path:line:col`, and `hotlined simulate` walks the shipped lines to where PRODUCT.md says.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::Output;

use common::{copy_tree, repo};

fn hotlined(args: &[&str]) -> Output {
    common::hotlined()
        .current_dir(repo())
        .args(args)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn check_passes_the_shipped_menus() {
    let o = hotlined(&["check", "--config", "config/hotline.toml"]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("ivr       city:"), "{t}");
    assert!(t.contains("ivr       regional:"), "{t}");
}

#[test]
fn check_exits_1_on_a_broken_menu() {
    // The shipped config with the city line's menu replaced by the unknown-queue fixture.
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&repo().join("config"), dir.path());
    let fixture =
        std::fs::read_to_string(repo().join("crates/ivr/tests/fixtures/unknown_queue.toml"))
            .unwrap()
            .replace("prompts = \"prompts\"", "prompts = \"../prompts/ru\"");
    std::fs::write(dir.path().join("ivr/city.toml"), fixture).unwrap();
    let lines = std::fs::read_to_string(dir.path().join("lines.toml"))
        .unwrap()
        .replace("start = \"greeting\"", "start = \"main\"");
    std::fs::write(dir.path().join("lines.toml"), lines).unwrap();
    let main = dir.path().join("hotline.toml");
    let o = hotlined(&["check", "--config", main.to_str().unwrap()]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    let expected = format!(
        "{}:6:9: unknown queue \"benefit\" (queues: benefits, home-care, rehab, volunteers, psychologists, regional)",
        dir.path().join("ivr/city.toml").display()
    );
    assert_eq!(t.trim(), expected);
}

#[test]
fn check_reports_an_unknown_start_at_the_line() {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&repo().join("config"), dir.path());
    let lines = std::fs::read_to_string(dir.path().join("lines.toml")).unwrap();
    let line = lines
        .lines()
        .position(|l| l.starts_with("start = \"greeting\""))
        .unwrap()
        + 1;
    std::fs::write(
        dir.path().join("lines.toml"),
        lines.replace("start = \"greeting\"", "start = \"greting\""),
    )
    .unwrap();
    let main = dir.path().join("hotline.toml");
    let o = hotlined(&["check", "--config", main.to_str().unwrap()]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(
        t.contains(&format!(
            "lines.toml:{line}:1: start node \"greting\" is not defined in the menu files"
        )),
        "{t}"
    );
}

#[test]
fn simulate_city_key_1_ends_in_the_benefits_queue() {
    let o = hotlined(&[
        "simulate",
        "--line",
        "3758787",
        "--at",
        "2026-11-23T10:00:00+07:00",
        "--digits",
        "1",
    ]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("play  city/greeting"), "{t}");
    assert!(
        t.contains("«Здравствуйте! Вы позвонили в городскую социальную справочную службу.»"),
        "{t}"
    );
    assert!(t.contains("key   1"), "{t}");
    assert!(
        t.contains("ends: queue \"benefits\" (priority 0), category \"benefits\""),
        "{t}"
    );
}

#[test]
fn simulate_regional_sunday_night_ends_in_the_callback_branch() {
    let o = hotlined(&[
        "simulate",
        "--line",
        "8-800-201-53-88",
        "--at",
        "2026-11-22T23:00:00+07:00",
    ]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("step  hours:after hours"), "{t}");
    assert!(t.contains("play  regional/closed"), "{t}");
    // No keys: the caller's own number is booked after the last try.
    assert!(t.contains("ends: callback to +79130000000"), "{t}");
    assert!(
        t.contains("path: hours > hours:after hours > after-hours > callback"),
        "{t}"
    );
}

#[test]
fn simulate_refuses_an_unknown_line() {
    let o = hotlined(&["simulate", "--line", "123"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("no line \"123\""));
}
