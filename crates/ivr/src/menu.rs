//! Menu files: what admins write, how it is read and checked, and the [`Menu`] a session runs.
//!
//! A line's menu is one or more TOML files. Each node is an array-of-tables entry named after
//! its kind, so every kind has its own fields and a typo is an error with its line and column:
//!
//! ```toml
//! prompts = "../prompts/ru"   # prompt folder: prompts.toml (name = text) and name.wav files
//! operator = "operator"       # where `0` and exhausted retries go, in every menu
//!
//! [[play]]
//! id = "greeting"
//! prompt = "city/greeting"
//! next = "main"
//!
//! [[menu]]
//! id = "main"
//! prompt = "city/main-menu"
//! choices = { 1 = "benefits", 2 = "home-care" }
//! ```
//!
//! Kinds: `play`, `menu`, `collect`, `schedule`, `set`, `queue`, `transfer`, `message`,
//! `callback`, `hangup`, `goto`, plus `calendar` (holiday data a `schedule` names). The checks
//! ([`load`], [`check`]) report unknown nodes, queues and prompts, missing or invalid WAV files,
//! nodes never reached from the start, dead ends, loops that wait for no key, bad or overlapping
//! hours; every problem is located in the file where it is fixed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::schedule::{Calendar, Hours, Timetable, DAY_NAMES};
use crate::{line_col, Problem};

/// A prompt by name, e.g. `city/greeting`; its file is `<prompt folder>/<name>.wav`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PromptRef(pub String);

impl PromptRef {
    /// The prompt's name.
    pub fn name(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PromptRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What is known about a prompt the menu uses: its file, its text (the transcript from
/// `prompts.toml`, or the number piece's word) and how long it plays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptInfo {
    /// The WAV file.
    pub path: PathBuf,
    /// What it says, when known.
    pub text: Option<String>,
    /// Its length.
    pub duration: Duration,
}

/// `play`: one prompt or a sequence, then `next`.
#[derive(Debug, Clone, PartialEq)]
pub struct PlayNode {
    /// Played in order.
    pub prompts: Vec<PromptRef>,
    /// Where the caller goes afterwards.
    pub next: String,
    /// A digit stops the prompt and is kept for the next node (default on).
    pub interruptible: bool,
}

/// `menu`: a prompt, then a key chooses where to go.
#[derive(Debug, Clone, PartialEq)]
pub struct MenuNode {
    /// The menu prompt.
    pub prompts: Vec<PromptRef>,
    /// Key → node.
    pub choices: BTreeMap<char, String>,
    /// How long to wait for a key after the prompt ends.
    pub timeout: Duration,
    /// Further tries after the first; after the last one the caller goes to `operator`.
    pub retries: u32,
    /// Played before the menu again after a key that is not a choice.
    pub invalid: Vec<PromptRef>,
    /// Played before the menu again after a timeout.
    pub no_input: Vec<PromptRef>,
    /// Where `0` and exhausted retries go.
    pub operator: String,
    /// `0` goes to the operator (unless a choice takes `0`).
    pub zero: bool,
    /// `*` repeats the menu (unless a choice takes `*`).
    pub star: bool,
}

/// `collect`: digits into a named variable.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectNode {
    /// Asks for the digits.
    pub prompts: Vec<PromptRef>,
    /// The variable set to the digits.
    pub variable: String,
    /// Fewest digits accepted.
    pub min_digits: usize,
    /// Most digits; reaching it ends the entry.
    pub max_digits: usize,
    /// `#` ends the entry.
    pub terminator: bool,
    /// Wait for the first digit after the prompt.
    pub timeout: Duration,
    /// Wait between digits; running out ends the entry.
    pub digit_timeout: Duration,
    /// Further tries after the first.
    pub retries: u32,
    /// Played before asking again.
    pub invalid: Vec<PromptRef>,
    /// Where the caller goes with the digits.
    pub next: String,
    /// Where the caller goes when all tries failed (the operator by default).
    pub fallback: String,
}

/// `schedule`: open or closed now.
#[derive(Debug, Clone)]
pub struct ScheduleNode {
    /// Hours, calendar and override.
    pub timetable: Timetable,
    /// Where the caller goes while open.
    pub open: String,
    /// Where the caller goes while closed.
    pub closed: String,
}

/// `set`: facts for the appeal and the queue.
#[derive(Debug, Clone, PartialEq)]
pub struct SetNode {
    /// The appeal's category.
    pub category: Option<String>,
    /// Queue priority from here on (higher is served first).
    pub priority: Option<i32>,
    /// Variables recorded on the appeal.
    pub vars: BTreeMap<String, String>,
    /// Where the caller goes.
    pub next: String,
}

/// `queue`: wait for an operator.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueNode {
    /// Played before the caller enters the queue.
    pub prompts: Vec<PromptRef>,
    /// The queue's name.
    pub queue: String,
    /// Overrides the priority a `set` gave.
    pub priority: Option<i32>,
}

/// `transfer`: to an outside number through the trunk.
#[derive(Debug, Clone, PartialEq)]
pub struct TransferNode {
    /// Played before the transfer.
    pub prompts: Vec<PromptRef>,
    /// The number dialled.
    pub number: String,
    /// Where the caller goes when the number cannot be reached: the node's `fallback`, else
    /// the file's `operator` node; `None` ends the call.
    pub fallback: Option<String>,
}

/// `message`: record the caller.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageNode {
    /// Played before recording starts.
    pub prompts: Vec<PromptRef>,
    /// Longest recording.
    pub max: Duration,
}

/// `callback`: book a call back to the caller's number or one keyed in.
#[derive(Debug, Clone, PartialEq)]
pub struct CallbackNode {
    /// Said before the number is read back («Мы перезвоним вам по номеру»).
    pub intro: Vec<PromptRef>,
    /// After the number: «1 — верно, 2 — другой номер».
    pub confirm: Vec<PromptRef>,
    /// Asks for another number, ended by `#`.
    pub enter: Vec<PromptRef>,
    /// Said when the callback is booked, before the call ends.
    pub done: Vec<PromptRef>,
    /// Wait for a key (and for the first digit of a number).
    pub timeout: Duration,
    /// Wait between digits of a number.
    pub digit_timeout: Duration,
    /// Further tries after the first.
    pub retries: u32,
    /// Fewest digits of a keyed-in number.
    pub min_digits: usize,
    /// The ACD queue that calls back: the caller takes a place there and the operator who
    /// gets it dials the number (`None`: the callback is only written down).
    pub queue: Option<String>,
    /// Most digits of a keyed-in number.
    pub max_digits: usize,
    /// Where the caller goes when no number could be had (the operator by default).
    pub fallback: String,
}

/// One menu node.
#[derive(Debug, Clone)]
pub enum Node {
    /// See [`PlayNode`].
    Play(PlayNode),
    /// See [`MenuNode`].
    Menu(MenuNode),
    /// See [`CollectNode`].
    Collect(CollectNode),
    /// See [`ScheduleNode`].
    Schedule(ScheduleNode),
    /// See [`SetNode`].
    Set(SetNode),
    /// See [`QueueNode`].
    Queue(QueueNode),
    /// See [`TransferNode`].
    Transfer(TransferNode),
    /// See [`MessageNode`].
    Message(MessageNode),
    /// See [`CallbackNode`].
    Callback(CallbackNode),
    /// Say the prompts (if any) and hang up.
    Hangup(Vec<PromptRef>),
    /// Go on at another node.
    Goto(String),
}

impl Node {
    /// The kind as written in the files.
    pub fn kind(&self) -> &'static str {
        match self {
            Node::Play(_) => "play",
            Node::Menu(_) => "menu",
            Node::Collect(_) => "collect",
            Node::Schedule(_) => "schedule",
            Node::Set(_) => "set",
            Node::Queue(_) => "queue",
            Node::Transfer(_) => "transfer",
            Node::Message(_) => "message",
            Node::Callback(_) => "callback",
            Node::Hangup(_) => "hangup",
            Node::Goto(_) => "goto",
        }
    }

    /// Every node the caller can go to from here.
    pub fn successors(&self) -> Vec<&str> {
        match self {
            Node::Play(p) => vec![&p.next],
            Node::Menu(m) => m
                .choices
                .values()
                .map(String::as_str)
                .chain([m.operator.as_str()])
                .collect(),
            Node::Collect(c) => vec![&c.next, &c.fallback],
            Node::Schedule(s) => vec![&s.open, &s.closed],
            Node::Set(s) => vec![&s.next],
            Node::Callback(c) => vec![&c.fallback],
            Node::Goto(to) => vec![to],
            Node::Transfer(t) => t.fallback.as_deref().into_iter().collect(),
            Node::Queue(_) | Node::Message(_) | Node::Hangup(_) => vec![],
        }
    }

    /// Whether the node stops to wait for the caller's keys (breaks a loop).
    pub fn waits_for_input(&self) -> bool {
        matches!(self, Node::Menu(_) | Node::Collect(_) | Node::Callback(_))
    }
}

/// A checked menu: nodes by id and the prompts they use.
#[derive(Debug, Clone)]
pub struct Menu {
    nodes: BTreeMap<String, Node>,
    prompts: BTreeMap<String, PromptInfo>,
    files: Vec<PathBuf>,
}

impl Menu {
    /// A node by id.
    pub fn node(&self, id: &str) -> Option<&Node> {
        self.nodes.get(id)
    }
    /// All nodes by id.
    pub fn nodes(&self) -> &BTreeMap<String, Node> {
        &self.nodes
    }
    /// A prompt the menu uses (file, text, length).
    pub fn prompt(&self, p: &PromptRef) -> Option<&PromptInfo> {
        self.prompts.get(&p.0)
    }
    /// Every prompt the menu uses, by name: what the call path loads into its prompt cache.
    pub fn prompts(&self) -> &BTreeMap<String, PromptInfo> {
        &self.prompts
    }
    /// The files the menu was read from.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }
}

/// What the line knows that the menu files do not.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The node calls start at.
    pub start: &'a str,
    /// Where `start` is written (path, line, col), for the problem when it is unknown.
    pub start_at: Option<(&'a str, usize, usize)>,
    /// The queues that exist; `None` skips the queue check.
    pub queues: Option<&'a [String]>,
}

/// Only the problems of [`load`].
pub fn check(files: &[PathBuf], cx: &Context<'_>) -> Vec<Problem> {
    load(files, cx).err().unwrap_or_default()
}

/// Reads, checks and builds a line's menu from its files. Every problem found is returned; a
/// menu is only given when there are none, so a session never meets an unknown node or prompt.
pub fn load(files: &[PathBuf], cx: &Context<'_>) -> Result<Menu, Vec<Problem>> {
    let mut l = Loader {
        texts: Vec::new(),
        problems: Vec::new(),
    };
    let mut raws = Vec::new();
    for (i, path) in files.iter().enumerate() {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                l.problems.push(Problem {
                    path: path.display().to_string(),
                    line: 0,
                    col: 0,
                    message: format!("cannot read: {e}"),
                });
                l.texts.push((path.clone(), String::new()));
                continue;
            }
        };
        l.texts.push((path.clone(), text));
        match toml::from_str::<RawFile>(&l.texts[i].1) {
            Ok(f) => raws.push((i, f)),
            Err(e) => {
                let span = e.span().unwrap_or(0..0);
                l.say(i, span, e.message().to_owned());
            }
        }
    }
    let all_parsed = raws.len() == files.len();
    l.build(raws, cx, all_parsed)
}

// ---------------------------------------------------------------------------------------------
// The files as written.

type S = Spanned<String>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    prompts: Option<S>,
    operator: Option<S>,
    #[serde(default)]
    play: Vec<RawPlay>,
    #[serde(default)]
    menu: Vec<RawMenu>,
    #[serde(default)]
    collect: Vec<RawCollect>,
    #[serde(default)]
    schedule: Vec<RawSchedule>,
    #[serde(default)]
    set: Vec<RawSet>,
    #[serde(default)]
    queue: Vec<RawQueue>,
    #[serde(default)]
    transfer: Vec<RawTransfer>,
    #[serde(default)]
    message: Vec<RawMessage>,
    #[serde(default)]
    callback: Vec<RawCallback>,
    #[serde(default)]
    hangup: Vec<RawHangup>,
    #[serde(default)]
    goto: Vec<RawGoto>,
    #[serde(default)]
    calendar: Vec<RawCalendar>,
}

/// `prompt = "a"` or `prompt = ["a", "b"]`.
#[derive(Deserialize, Clone)]
#[serde(untagged)]
enum PromptList {
    One(String),
    Many(Vec<String>),
}

type P = Spanned<PromptList>;

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlay {
    id: S,
    prompt: P,
    next: Option<S>,
    #[serde(default = "yes")]
    interruptible: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMenu {
    id: S,
    prompt: P,
    #[serde(default)]
    choices: BTreeMap<S, S>,
    timeout: Option<Spanned<f64>>,
    retries: Option<u32>,
    invalid: Option<P>,
    no_input: Option<P>,
    operator: Option<S>,
    #[serde(default = "yes")]
    zero: bool,
    #[serde(default = "yes")]
    star: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCollect {
    id: S,
    prompt: P,
    variable: S,
    min_digits: Option<usize>,
    max_digits: Option<usize>,
    #[serde(default = "yes")]
    terminator: bool,
    timeout: Option<Spanned<f64>>,
    digit_timeout: Option<Spanned<f64>>,
    retries: Option<u32>,
    invalid: Option<P>,
    next: Option<S>,
    fallback: Option<S>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSchedule {
    id: S,
    timezone: S,
    hours: Vec<S>,
    calendar: Option<S>,
    #[serde(default)]
    closed_now: bool,
    open: Option<S>,
    closed: Option<S>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSet {
    id: S,
    category: Option<String>,
    priority: Option<i32>,
    #[serde(default)]
    vars: BTreeMap<String, String>,
    next: Option<S>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQueue {
    id: S,
    queue: S,
    priority: Option<i32>,
    prompt: Option<P>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTransfer {
    id: S,
    number: S,
    prompt: Option<P>,
    fallback: Option<S>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMessage {
    id: S,
    prompt: Option<P>,
    max_seconds: Option<Spanned<f64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCallback {
    id: S,
    prompt: P,
    confirm: P,
    enter: P,
    done: Option<P>,
    timeout: Option<Spanned<f64>>,
    digit_timeout: Option<Spanned<f64>>,
    retries: Option<u32>,
    min_digits: Option<usize>,
    max_digits: Option<usize>,
    fallback: Option<S>,
    queue: Option<S>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHangup {
    id: S,
    prompt: Option<P>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGoto {
    id: S,
    to: Option<S>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCalendar {
    id: S,
    #[serde(default)]
    holidays: Vec<Spanned<toml::value::Datetime>>,
    #[serde(default)]
    workdays: Vec<Spanned<toml::value::Datetime>>,
    #[serde(default)]
    short_days: Vec<Spanned<toml::value::Datetime>>,
}

enum RawNode {
    Play(RawPlay),
    Menu(RawMenu),
    Collect(RawCollect),
    Schedule(RawSchedule),
    Set(RawSet),
    Queue(RawQueue),
    Transfer(RawTransfer),
    Message(RawMessage),
    Callback(RawCallback),
    Hangup(RawHangup),
    Goto(RawGoto),
}

impl RawNode {
    fn id(&self) -> &S {
        match self {
            RawNode::Play(n) => &n.id,
            RawNode::Menu(n) => &n.id,
            RawNode::Collect(n) => &n.id,
            RawNode::Schedule(n) => &n.id,
            RawNode::Set(n) => &n.id,
            RawNode::Queue(n) => &n.id,
            RawNode::Transfer(n) => &n.id,
            RawNode::Message(n) => &n.id,
            RawNode::Callback(n) => &n.id,
            RawNode::Hangup(n) => &n.id,
            RawNode::Goto(n) => &n.id,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Loading and checking.

/// A place in one of the files: (file index, byte span).
#[derive(Debug, Clone)]
struct Loc(usize, Range<usize>);

struct Loader {
    texts: Vec<(PathBuf, String)>,
    problems: Vec<Problem>,
}

/// Default waits and limits, chosen for elderly callers: long timeouts, several tries.
const MENU_TIMEOUT: f64 = 7.0;
const RETRIES: u32 = 2;
const COLLECT_TIMEOUT: f64 = 10.0;
const DIGIT_TIMEOUT: f64 = 5.0;
const MESSAGE_SECONDS: f64 = 120.0;

impl Loader {
    fn problem(&self, file: usize, span: Range<usize>, message: String) -> Problem {
        let (path, text) = match self.texts.get(file) {
            Some((p, t)) => (p.display().to_string(), t.as_str()),
            None => (String::new(), ""),
        };
        let (line, col) = line_col(text, span.start);
        Problem {
            path,
            line,
            col,
            message,
        }
    }

    fn say(&mut self, file: usize, span: Range<usize>, message: String) {
        let p = self.problem(file, span, message);
        self.problems.push(p);
    }

    fn at(&mut self, loc: &Loc, message: String) {
        self.say(loc.0, loc.1.clone(), message);
    }

    fn seconds(&mut self, file: usize, v: &Option<Spanned<f64>>, default: f64) -> Duration {
        let Some(v) = v else {
            return Duration::from_secs_f64(default);
        };
        let s = *v.get_ref();
        if !(0.5..=600.0).contains(&s) {
            self.say(
                file,
                v.span(),
                format!("{s} seconds is out of range (0.5 to 600)"),
            );
            return Duration::from_secs_f64(default);
        }
        Duration::from_secs_f64(s)
    }

    fn build(
        mut self,
        raws: Vec<(usize, RawFile)>,
        cx: &Context<'_>,
        all_parsed: bool,
    ) -> Result<Menu, Vec<Problem>> {
        // File-level settings: one prompt folder and one operator node for the whole line.
        let mut prompt_dir: Option<(PathBuf, Loc)> = None;
        let mut operator: Option<(String, Loc)> = None;
        let mut nodes_raw: Vec<(usize, RawNode)> = Vec::new();
        let mut calendars_raw = Vec::new();
        for (fi, f) in raws {
            if let Some(p) = f.prompts {
                let base = self.texts[fi]
                    .0
                    .parent()
                    .unwrap_or(Path::new("."))
                    .to_owned();
                let dir = tidy(&base.join(p.get_ref()));
                let loc = Loc(fi, p.span());
                match &prompt_dir {
                    Some((d, _)) if *d != dir => self.at(
                        &loc,
                        format!(
                            "prompt folder {} differs from {} named before; a line has one",
                            dir.display(),
                            d.display()
                        ),
                    ),
                    Some(_) => {}
                    None => prompt_dir = Some((dir, loc)),
                }
            }
            if let Some(o) = f.operator {
                let loc = Loc(fi, o.span());
                match &operator {
                    Some((id, _)) if id != o.get_ref() => self.at(
                        &loc,
                        format!(
                            "operator {:?} differs from {id:?} named before",
                            o.get_ref()
                        ),
                    ),
                    Some(_) => {}
                    None => operator = Some((o.into_inner(), loc)),
                }
            }
            nodes_raw.extend(f.play.into_iter().map(|n| (fi, RawNode::Play(n))));
            nodes_raw.extend(f.menu.into_iter().map(|n| (fi, RawNode::Menu(n))));
            nodes_raw.extend(f.collect.into_iter().map(|n| (fi, RawNode::Collect(n))));
            nodes_raw.extend(f.schedule.into_iter().map(|n| (fi, RawNode::Schedule(n))));
            nodes_raw.extend(f.set.into_iter().map(|n| (fi, RawNode::Set(n))));
            nodes_raw.extend(f.queue.into_iter().map(|n| (fi, RawNode::Queue(n))));
            nodes_raw.extend(f.transfer.into_iter().map(|n| (fi, RawNode::Transfer(n))));
            nodes_raw.extend(f.message.into_iter().map(|n| (fi, RawNode::Message(n))));
            nodes_raw.extend(f.callback.into_iter().map(|n| (fi, RawNode::Callback(n))));
            nodes_raw.extend(f.hangup.into_iter().map(|n| (fi, RawNode::Hangup(n))));
            nodes_raw.extend(f.goto.into_iter().map(|n| (fi, RawNode::Goto(n))));
            calendars_raw.extend(f.calendar.into_iter().map(|c| (fi, c)));
        }
        // File order, so that problems come out in reading order.
        nodes_raw.sort_by_key(|(fi, n)| (*fi, n.id().span().start));

        let mut calendars: HashMap<String, Calendar> = HashMap::new();
        for (fi, c) in calendars_raw {
            let mut cal = Calendar::default();
            let mut seen: HashMap<chrono::NaiveDate, &'static str> = HashMap::new();
            for (list, set, name) in [
                (&c.holidays, &mut cal.holidays, "holidays"),
                (&c.workdays, &mut cal.workdays, "workdays"),
                (&c.short_days, &mut cal.short_days, "short_days"),
            ] {
                for d in list {
                    let date = d.get_ref().date.as_ref().and_then(|x| {
                        chrono::NaiveDate::from_ymd_opt(
                            i32::from(x.year),
                            u32::from(x.month),
                            u32::from(x.day),
                        )
                    });
                    let date = match (date, d.get_ref().time.is_none()) {
                        (Some(date), true) => date,
                        _ => {
                            self.say(
                                fi,
                                d.span(),
                                format!("{}: {name} take dates like 2026-01-01", d.get_ref()),
                            );
                            continue;
                        }
                    };
                    if let Some(other) = seen.insert(date, name) {
                        self.say(
                            fi,
                            d.span(),
                            format!(
                                "calendar {:?}: {date} is in both {other} and {name}",
                                c.id.get_ref()
                            ),
                        );
                    }
                    set.insert(date);
                }
            }
            if calendars.insert(c.id.get_ref().clone(), cal).is_some() {
                self.say(
                    fi,
                    c.id.span(),
                    format!("calendar {:?} is defined twice", c.id.get_ref()),
                );
            }
        }

        // Ids first, so references can be checked as nodes are built.
        let mut ids: BTreeMap<String, Loc> = BTreeMap::new();
        let mut order = Vec::new();
        for (fi, n) in &nodes_raw {
            let id = n.id();
            let loc = Loc(*fi, id.span());
            if let Some(first) = ids.get(id.get_ref()) {
                let first = self.problem(first.0, first.1.clone(), String::new());
                self.at(
                    &loc,
                    format!(
                        "node {:?} is defined twice (first at {}:{}:{})",
                        id.get_ref(),
                        first.path,
                        first.line,
                        first.col
                    ),
                );
                continue;
            }
            ids.insert(id.get_ref().clone(), loc);
            order.push(id.get_ref().clone());
        }

        let mut b = Builder {
            operator: operator.as_ref().map(|(o, _)| o.as_str()),
            refs: Vec::new(),
            prompt_refs: Vec::new(),
            queue_refs: Vec::new(),
            needs_numbers: None,
        };
        let mut nodes = BTreeMap::new();
        for (fi, raw) in nodes_raw {
            let id = raw.id().get_ref().clone();
            if nodes.contains_key(&id) {
                continue;
            }
            if let Some(node) = b.node(&mut self, fi, raw, &calendars) {
                nodes.insert(id, node);
            }
        }
        let Builder {
            refs,
            prompt_refs,
            queue_refs,
            needs_numbers,
            ..
        } = b;
        if let Some((o, loc)) = &operator {
            if !ids.contains_key(o) {
                self.at(loc, format!("unknown node {o:?}"));
            }
        }
        for (target, loc) in &refs {
            if !ids.contains_key(target) {
                self.at(loc, format!("unknown node {target:?}"));
            }
        }
        if let Some(known) = cx.queues {
            for (q, loc) in &queue_refs {
                if !known.iter().any(|k| k == q) {
                    self.at(
                        loc,
                        format!("unknown queue {q:?} (queues: {})", known.join(", ")),
                    );
                }
            }
        }

        // Prompts: known by name, and each file a usable WAV.
        let prompts = self.prompts(prompt_dir, prompt_refs, needs_numbers);

        // The graph: start known, every node reached, no loop that waits for no key.
        // A file that could not be read may hold the start node: say nothing about it then.
        if !ids.contains_key(cx.start) && all_parsed {
            let message = format!("start node {:?} is not defined in the menu files", cx.start);
            match cx.start_at {
                Some((path, line, col)) => self.problems.push(Problem {
                    path: path.to_owned(),
                    line,
                    col,
                    message,
                }),
                None => self.say(0, 0..0, message),
            }
        } else if self.problems.is_empty() {
            self.graph(&nodes, &ids, &order, cx.start);
        }

        if self.problems.is_empty() {
            Ok(Menu {
                nodes,
                prompts,
                files: self.texts.into_iter().map(|(p, _)| p).collect(),
            })
        } else {
            Err(self.problems)
        }
    }

    fn prompts(
        &mut self,
        dir: Option<(PathBuf, Loc)>,
        refs: Vec<(String, Loc)>,
        needs_numbers: Option<Loc>,
    ) -> BTreeMap<String, PromptInfo> {
        let mut out = BTreeMap::new();
        if refs.is_empty() && needs_numbers.is_none() {
            return out;
        }
        let Some((dir, dir_loc)) = dir else {
            if let Some((_, loc)) = refs.first() {
                self.at(
                    loc,
                    "prompts are used but no file names the prompt folder (`prompts = \"…\"`)"
                        .into(),
                );
            }
            return out;
        };
        let catalogue_path = dir.join("prompts.toml");
        let catalogue: BTreeMap<String, String> = match std::fs::read_to_string(&catalogue_path) {
            Ok(text) => match toml::from_str(&text) {
                Ok(c) => c,
                Err(e) => {
                    let (line, col) = line_col(&text, e.span().map_or(0, |s| s.start));
                    self.problems.push(Problem {
                        path: catalogue_path.display().to_string(),
                        line,
                        col,
                        message: e.message().to_owned(),
                    });
                    return out;
                }
            },
            Err(e) => {
                self.at(
                    &dir_loc,
                    format!("cannot read {}: {e}", catalogue_path.display()),
                );
                return out;
            }
        };
        let numbers: BTreeMap<&str, &str> = media::numbers_ru::PIECES.iter().copied().collect();
        let mut all = refs;
        if let Some(loc) = needs_numbers {
            // A callback reads the number back digit by digit.
            for d in 0..10 {
                all.push((format!("numbers/{d}"), loc.clone()));
            }
        }
        let mut done = BTreeSet::new();
        for (name, loc) in all {
            if !done.insert(name.clone()) {
                continue;
            }
            let text = match (catalogue.get(&name), numbers.get(name.as_str())) {
                (Some(t), _) => t.clone(),
                (None, Some(t)) => (*t).to_owned(),
                (None, None) => {
                    self.at(
                        &loc,
                        format!(
                            "unknown prompt {name:?}: not in {}",
                            catalogue_path.display()
                        ),
                    );
                    continue;
                }
            };
            let path = dir.join(format!("{name}.wav"));
            match media::prompts::read_wav(&path) {
                Ok(pcm) => {
                    out.insert(
                        name,
                        PromptInfo {
                            path,
                            text: Some(text),
                            duration: Duration::from_secs_f64(
                                pcm.len() as f64 / f64::from(media::prompts::SAMPLE_RATE),
                            ),
                        },
                    );
                }
                Err(e) => {
                    self.at(&loc, format!("prompt {name:?}: {e}"));
                    out.insert(
                        name,
                        PromptInfo {
                            path,
                            text: Some(text),
                            duration: Duration::ZERO,
                        },
                    );
                }
            }
        }
        out
    }

    fn graph(
        &mut self,
        nodes: &BTreeMap<String, Node>,
        ids: &BTreeMap<String, Loc>,
        order: &[String],
        start: &str,
    ) {
        // Reached from the start.
        let mut seen = BTreeSet::new();
        let mut stack = vec![start];
        while let Some(id) = stack.pop() {
            if !seen.insert(id) {
                continue;
            }
            if let Some(n) = nodes.get(id) {
                stack.extend(n.successors());
            }
        }
        for id in order {
            if !seen.contains(id.as_str()) {
                if let Some(loc) = ids.get(id) {
                    let kind = nodes.get(id).map_or("node", Node::kind);
                    self.at(
                        loc,
                        format!("{kind} node {id:?} is never reached from the start {start:?}"),
                    );
                }
            }
        }
        // Loops through nodes that never wait for a key: depth-first search over them.
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            Open,
            Done,
        }
        let mut mark: HashMap<&str, Mark> =
            order.iter().map(|id| (id.as_str(), Mark::New)).collect();
        for root in order {
            if mark.get(root.as_str()) != Some(&Mark::New) {
                continue;
            }
            // (node, index of the next successor to visit)
            let mut path: Vec<(&str, usize)> = vec![(root.as_str(), 0)];
            mark.insert(root, Mark::Open);
            while let Some((id, next)) = path.last().copied() {
                let succ: Vec<&str> = match nodes.get(id) {
                    Some(n) if !n.waits_for_input() => n.successors(),
                    _ => Vec::new(),
                };
                if let Some(&s) = succ.get(next) {
                    if let Some(top) = path.last_mut() {
                        top.1 += 1;
                    }
                    match mark.get(s) {
                        Some(Mark::New) => {
                            mark.insert(s, Mark::Open);
                            path.push((s, 0));
                        }
                        Some(Mark::Open) => {
                            let from = path.iter().position(|(n, _)| *n == s).unwrap_or(0);
                            let cycle: Vec<String> = path[from..]
                                .iter()
                                .map(|(n, _)| format!("{n:?}"))
                                .chain([format!("{s:?}")])
                                .collect();
                            if let Some(loc) = ids.get(s) {
                                self.at(
                                    loc,
                                    format!(
                                        "loop without waiting for a key: {} (add a menu or collect, or end the call)",
                                        cycle.join(" → ")
                                    ),
                                );
                            }
                        }
                        _ => {}
                    }
                } else {
                    mark.insert(id, Mark::Done);
                    path.pop();
                }
            }
        }
    }
}

struct Builder<'a> {
    operator: Option<&'a str>,
    refs: Vec<(String, Loc)>,
    prompt_refs: Vec<(String, Loc)>,
    queue_refs: Vec<(String, Loc)>,
    needs_numbers: Option<Loc>,
}

impl Builder<'_> {
    /// A node reference that must exist.
    fn target(&mut self, fi: usize, s: &S) -> String {
        self.refs.push((s.get_ref().clone(), Loc(fi, s.span())));
        s.get_ref().clone()
    }

    /// `next` of a node that must go on, or a dead-end problem.
    fn next(
        &mut self,
        l: &mut Loader,
        fi: usize,
        id: &S,
        kind: &str,
        field: &str,
        s: &Option<S>,
    ) -> Option<String> {
        match s {
            Some(s) => Some(self.target(fi, s)),
            None => {
                l.say(
                    fi,
                    id.span(),
                    format!(
                        "{kind} node {:?} is a dead end: it needs `{field}` (only hangup, queue, transfer, callback and message end a call)",
                        id.get_ref()
                    ),
                );
                None
            }
        }
    }

    /// The prompts of a `prompt`-like field, each recorded with its place for the checks.
    fn prompts(&mut self, l: &Loader, fi: usize, p: &Option<P>) -> Vec<PromptRef> {
        let Some(p) = p else { return Vec::new() };
        let names = match p.get_ref() {
            PromptList::One(n) => vec![n.clone()],
            PromptList::Many(v) => v.clone(),
        };
        let span = p.span();
        let text = l.texts.get(fi).map_or("", |(_, t)| t.as_str());
        let mut from = span.start;
        for n in &names {
            // Point at the name itself inside a list.
            let quoted = format!("\"{n}\"");
            let here = text
                .get(from..span.end)
                .and_then(|t| t.find(&quoted))
                .map_or(span.start, |i| from + i);
            from = (here + quoted.len()).min(span.end);
            self.prompt_refs
                .push((n.clone(), Loc(fi, here..here + quoted.len())));
        }
        names.into_iter().map(PromptRef).collect()
    }

    fn operator(
        &mut self,
        l: &mut Loader,
        fi: usize,
        id: &S,
        own: &Option<S>,
        what: &str,
    ) -> Option<String> {
        match (own, self.operator) {
            (Some(s), _) => Some(self.target(fi, s)),
            (None, Some(o)) => Some(o.to_owned()),
            (None, None) => {
                l.say(
                    fi,
                    id.span(),
                    format!(
                        "node {:?} has nowhere to send the caller {what}: set `operator = \"…\"` at the top of the file",
                        id.get_ref()
                    ),
                );
                None
            }
        }
    }

    fn digits_range(
        l: &mut Loader,
        fi: usize,
        id: &S,
        min: Option<usize>,
        max: Option<usize>,
        defaults: (usize, usize),
    ) -> (usize, usize) {
        let (min, max) = (min.unwrap_or(defaults.0), max.unwrap_or(defaults.1));
        if min == 0 || max < min || max > 32 {
            l.say(
                fi,
                id.span(),
                format!(
                    "node {:?}: digits must be 1 ≤ min_digits ≤ max_digits ≤ 32 (got {min}..{max})",
                    id.get_ref()
                ),
            );
        }
        (min, max)
    }

    fn node(
        &mut self,
        l: &mut Loader,
        fi: usize,
        raw: RawNode,
        calendars: &HashMap<String, Calendar>,
    ) -> Option<Node> {
        Some(match raw {
            RawNode::Play(n) => {
                let prompts = self.prompts(l, fi, &Some(n.prompt.clone()));
                let next = self.next(l, fi, &n.id, "play", "next", &n.next)?;
                Node::Play(PlayNode {
                    prompts,
                    next,
                    interruptible: n.interruptible,
                })
            }
            RawNode::Menu(n) => {
                let prompts = self.prompts(l, fi, &Some(n.prompt.clone()));
                let invalid = self.prompts(l, fi, &n.invalid);
                let no_input = self.prompts(l, fi, &n.no_input);
                let mut choices = BTreeMap::new();
                for (k, v) in &n.choices {
                    let mut chars = k.get_ref().chars();
                    match (chars.next(), chars.next()) {
                        (Some(c), None) if "0123456789*#ABCD".contains(c) => {
                            choices.insert(c, self.target(fi, v));
                        }
                        _ => l.say(
                            fi,
                            k.span(),
                            format!(
                                "menu {:?}: choice {:?} must be one key: 0-9, * or #",
                                n.id.get_ref(),
                                k.get_ref()
                            ),
                        ),
                    }
                }
                let timeout = l.seconds(fi, &n.timeout, MENU_TIMEOUT);
                let operator =
                    self.operator(l, fi, &n.id, &n.operator, "on 0 and after the last try")?;
                Node::Menu(MenuNode {
                    prompts,
                    timeout,
                    retries: n.retries.unwrap_or(RETRIES),
                    invalid,
                    no_input,
                    operator,
                    zero: n.zero && !choices.contains_key(&'0'),
                    star: n.star && !choices.contains_key(&'*'),
                    choices,
                })
            }
            RawNode::Collect(n) => {
                let prompts = self.prompts(l, fi, &Some(n.prompt.clone()));
                let invalid = self.prompts(l, fi, &n.invalid);
                let (min_digits, max_digits) =
                    Self::digits_range(l, fi, &n.id, n.min_digits, n.max_digits, (1, 20));
                let timeout = l.seconds(fi, &n.timeout, COLLECT_TIMEOUT);
                let digit_timeout = l.seconds(fi, &n.digit_timeout, DIGIT_TIMEOUT);
                let next = self.next(l, fi, &n.id, "collect", "next", &n.next)?;
                let fallback = self.operator(l, fi, &n.id, &n.fallback, "after the last try")?;
                Node::Collect(CollectNode {
                    prompts,
                    variable: n.variable.into_inner(),
                    min_digits,
                    max_digits,
                    terminator: n.terminator,
                    timeout,
                    digit_timeout,
                    retries: n.retries.unwrap_or(RETRIES),
                    invalid,
                    next,
                    fallback,
                })
            }
            RawNode::Schedule(n) => {
                let tz = match n.timezone.get_ref().parse::<chrono_tz::Tz>() {
                    Ok(tz) => tz,
                    Err(_) => {
                        l.say(
                            fi,
                            n.timezone.span(),
                            format!(
                                "unknown time zone {:?} (an IANA name such as \"Asia/Novosibirsk\")",
                                n.timezone.get_ref()
                            ),
                        );
                        chrono_tz::UTC
                    }
                };
                let mut hours: Vec<Hours> = Vec::new();
                for h in &n.hours {
                    match Hours::parse(h.get_ref()) {
                        Ok(parsed) => {
                            if let Some((other, day)) = hours
                                .iter()
                                .find_map(|o| o.overlap(&parsed).map(|d| (o, d)))
                            {
                                l.say(
                                    fi,
                                    h.span(),
                                    format!(
                                        "schedule {:?}: {:?} overlaps {:?} on {}",
                                        n.id.get_ref(),
                                        parsed.text,
                                        other.text,
                                        DAY_NAMES.get(day).copied().unwrap_or("?")
                                    ),
                                );
                            }
                            hours.push(parsed);
                        }
                        Err(e) => {
                            l.say(fi, h.span(), format!("schedule {:?}: {e}", n.id.get_ref()))
                        }
                    }
                }
                let calendar = match &n.calendar {
                    None => Calendar::default(),
                    Some(c) => match calendars.get(c.get_ref()) {
                        Some(cal) => cal.clone(),
                        None => {
                            l.say(fi, c.span(), format!("unknown calendar {:?}", c.get_ref()));
                            Calendar::default()
                        }
                    },
                };
                let open = self.next(l, fi, &n.id, "schedule", "open", &n.open);
                let closed = self.next(l, fi, &n.id, "schedule", "closed", &n.closed);
                Node::Schedule(ScheduleNode {
                    timetable: Timetable {
                        tz,
                        hours,
                        calendar,
                        closed_now: n.closed_now,
                    },
                    open: open?,
                    closed: closed?,
                })
            }
            RawNode::Set(n) => {
                let next = self.next(l, fi, &n.id, "set", "next", &n.next)?;
                Node::Set(SetNode {
                    category: n.category,
                    priority: n.priority,
                    vars: n.vars,
                    next,
                })
            }
            RawNode::Queue(n) => {
                self.queue_refs
                    .push((n.queue.get_ref().clone(), Loc(fi, n.queue.span())));
                Node::Queue(QueueNode {
                    prompts: self.prompts(l, fi, &n.prompt),
                    queue: n.queue.into_inner(),
                    priority: n.priority,
                })
            }
            RawNode::Transfer(n) => {
                let number = n.number.get_ref();
                if number.is_empty()
                    || !number
                        .chars()
                        .all(|c| c.is_ascii_digit() || (c == '+' && number.starts_with(c)))
                {
                    l.say(
                        fi,
                        n.number.span(),
                        format!("transfer number {number:?} must be digits (a leading + allowed)"),
                    );
                }
                let fallback = match (&n.fallback, self.operator) {
                    (Some(f), _) => Some(self.target(fi, f)),
                    (None, Some(o)) => Some(o.to_owned()),
                    (None, None) => None,
                };
                Node::Transfer(TransferNode {
                    prompts: self.prompts(l, fi, &n.prompt),
                    number: n.number.into_inner(),
                    fallback,
                })
            }
            RawNode::Message(n) => Node::Message(MessageNode {
                prompts: self.prompts(l, fi, &n.prompt),
                max: l.seconds(fi, &n.max_seconds, MESSAGE_SECONDS),
            }),
            RawNode::Callback(n) => {
                self.needs_numbers = Some(Loc(fi, n.id.span()));
                let intro = self.prompts(l, fi, &Some(n.prompt.clone()));
                let confirm = self.prompts(l, fi, &Some(n.confirm.clone()));
                let enter = self.prompts(l, fi, &Some(n.enter.clone()));
                let done = self.prompts(l, fi, &n.done);
                let (min_digits, max_digits) =
                    Self::digits_range(l, fi, &n.id, n.min_digits, n.max_digits, (5, 15));
                let timeout = l.seconds(fi, &n.timeout, COLLECT_TIMEOUT);
                let digit_timeout = l.seconds(fi, &n.digit_timeout, DIGIT_TIMEOUT);
                let fallback =
                    self.operator(l, fi, &n.id, &n.fallback, "when no number could be had")?;
                if let Some(q) = &n.queue {
                    self.queue_refs
                        .push((q.get_ref().clone(), Loc(fi, q.span())));
                }
                Node::Callback(CallbackNode {
                    queue: n.queue.map(Spanned::into_inner),
                    intro,
                    confirm,
                    enter,
                    done,
                    timeout,
                    digit_timeout,
                    retries: n.retries.unwrap_or(RETRIES),
                    min_digits,
                    max_digits,
                    fallback,
                })
            }
            RawNode::Hangup(n) => Node::Hangup(self.prompts(l, fi, &n.prompt)),
            RawNode::Goto(n) => Node::Goto(self.next(l, fi, &n.id, "goto", "to", &n.to)?),
        })
    }
}

/// `config/ivr/../prompts/ru` → `config/prompts/ru`, without touching the file system (so a
/// missing folder is still reported by name).
fn tidy(p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out: Vec<Component<'_>> = Vec::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir if matches!(out.last(), Some(Component::Normal(_))) => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    if out.is_empty() {
        PathBuf::from(".")
    } else {
        out.iter().collect()
    }
}
