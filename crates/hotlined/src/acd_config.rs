//! The ACD's half of the configuration: queue settings (`queues.toml`) and operators' queue
//! memberships (`operators.toml`), checked key by key with `path:line:col` problems and mapped
//! onto [`acd::AcdConfig`].
//!
//! Every setting is optional in the file; the defaults are chosen for a social hotline (see
//! `config/queues.toml` for the list). Values are read as plain integers and strings so that a
//! zero timer, an unknown strategy or an overflow to an unknown queue is reported at the exact
//! value the admin wrote, with a message saying what is allowed, rather than as a serde type
//! error. Whatever [`acd::AcdConfig::validate`] still refuses is mapped back onto the file and
//! key it came from.

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use acd::{
    AcdConfig, CallbackConfig, ConfigError, EmptyRule, OperatorConfig, OverflowAction, QueueConfig,
    ReturningConfig, Skill, Strategy,
};
use serde::Deserialize;
use toml::Spanned;

use crate::config::{line_col, Operator, Problem};

/// Music on hold for queues without a `moh` key, relative to the configuration folder.
pub const DEFAULT_MOH: &str = "prompts/moh/default.wav";

/// The longest timer any `*_seconds` key accepts (a week): keeps `Instant + Duration` far from
/// overflow and catches minutes-for-seconds slips of several orders of magnitude.
const MAX_SECONDS: i64 = 7 * 24 * 3600;

/// `strategy = "…"` spellings, in the order the documentation lists them.
const STRATEGIES: [(&str, Strategy); 5] = [
    ("longest-idle", Strategy::LongestIdle),
    ("round-robin", Strategy::RoundRobin),
    ("ring-all", Strategy::RingAll),
    ("fewest-calls", Strategy::FewestCalls),
    ("skills", Strategy::Skills),
];

/// `join_empty` / `leave_empty` spellings.
const EMPTY_RULES: [(&str, EmptyRule); 3] = [
    ("never", EmptyRule::Never),
    ("none-logged-in", EmptyRule::NoneLoggedIn),
    ("none-ready", EmptyRule::NoneReady),
];

/// Default for `join_empty` and `leave_empty`: nobody waits for a queue no operator is logged
/// in to; such callers get the overflow action (a message by default) instead of silence.
const DEFAULT_EMPTY: EmptyRule = EmptyRule::NoneLoggedIn;

/// The name `strategy = "…"` uses for a strategy (`hotlined check` prints it).
pub fn strategy_name(s: Strategy) -> &'static str {
    STRATEGIES
        .iter()
        .find(|(_, v)| *v == s)
        .map_or("?", |(n, _)| n)
}

/// `queues.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueuesFile {
    pub queue: Vec<QueueDef>,
}

/// One `[[queue]]` as written. The settings stay private with their positions; the checked
/// form is [`crate::config::Config::acd`].
#[derive(Debug, Clone, Deserialize)]
#[serde(from = "RawQueue")]
pub struct QueueDef {
    pub name: String,
    pub title: String,
    raw: RawQueue,
}

impl QueueDef {
    /// Seconds of wrap-up after each call (the ACD's default when not written).
    pub fn wrap_up_seconds(&self) -> u64 {
        match &self.raw.wrap_up_seconds {
            Some(v) => u64::try_from(*v.get_ref()).unwrap_or(0),
            None => acd::QueueConfig::new(self.name.as_str()).wrap_up.as_secs(),
        }
    }

    /// `disposition_required = true`: an operator who took a call from this queue gets no
    /// other until the appeal has its disposition (`crate::disposition_hold`).
    pub fn disposition_required(&self) -> bool {
        self.raw
            .disposition_required
            .as_ref()
            .is_some_and(|v| *v.get_ref())
    }

    /// The queue's music on hold as written (relative to the configuration folder), or
    /// [`DEFAULT_MOH`]; `None` when the path is not a plain path under `prompts/` (a problem
    /// the checks report).
    pub fn moh_file(&self) -> Option<&Path> {
        let moh = self
            .raw
            .moh
            .as_ref()
            .map_or(DEFAULT_MOH, |m| m.get_ref().as_str());
        let rel = Path::new(moh);
        let plain = rel.starts_with("prompts")
            && rel
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_)));
        plain.then_some(rel)
    }
}

impl From<RawQueue> for QueueDef {
    fn from(raw: RawQueue) -> Self {
        QueueDef {
            name: raw.name.get_ref().clone(),
            title: raw.title.clone(),
            raw,
        }
    }
}

/// The file form of a queue: every value with its byte range for problems.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQueue {
    name: Spanned<String>,
    #[serde(default)]
    title: String,
    strategy: Option<Spanned<String>>,
    max_len: Option<Spanned<i64>>,
    join_empty: Option<Spanned<String>>,
    leave_empty: Option<Spanned<String>>,
    max_wait_seconds: Option<Spanned<i64>>,
    overflow: Option<Spanned<String>>,
    ring_timeout_seconds: Option<Spanned<i64>>,
    retry_seconds: Option<Spanned<i64>>,
    max_no_answer: Option<Spanned<i64>>,
    wrap_up_seconds: Option<Spanned<i64>>,
    escalation_seconds: Option<Spanned<i64>>,
    returning_days: Option<Spanned<i64>>,
    returning_wait_seconds: Option<Spanned<i64>>,
    callback_after_seconds: Option<Spanned<i64>>,
    callback_attempts: Option<Spanned<i64>>,
    callback_retry_seconds: Option<Spanned<i64>>,
    announce_every_seconds: Option<Spanned<i64>>,
    estimate_cap_minutes: Option<Spanned<i64>>,
    moh: Option<Spanned<String>>,
    disposition_required: Option<Spanned<bool>>,
}

/// An operator's queues and levels as written: `skills = { benefits = 1, rehab = 2 }`, in the
/// file's order (level 1 is offered first, 9 last). A queue named twice is a TOML error.
#[derive(Debug, Clone, Default)]
pub struct Skills(pub Vec<(Spanned<String>, Spanned<i64>)>);

impl<'de> Deserialize<'de> for Skills {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Skills;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a table of queue = level, like { benefits = 1, rehab = 2 }")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<Skills, A::Error> {
                let mut v = Vec::new();
                while let Some(e) = m.next_entry()? {
                    v.push(e);
                }
                Ok(Skills(v))
            }
        }
        d.deserialize_map(V)
    }
}

/// Byte offset of the `nth` (0-based) line that starts with `header`, or 0.
fn nth_header(text: &str, header: &str, nth: usize) -> usize {
    text.match_indices(header)
        .filter(|(o, _)| *o == 0 || text.get(o - 1..*o) == Some("\n"))
        .nth(nth)
        .map_or(0, |(o, _)| o)
}

/// One file's problems, located in its text.
struct File<'a> {
    path: String,
    text: String,
    problems: &'a mut Vec<Problem>,
}

impl File<'_> {
    fn at(&mut self, offset: usize, message: String) {
        let (line, col) = line_col(&self.text, offset);
        self.problems.push(Problem {
            path: self.path.clone(),
            line,
            col,
            message,
        });
    }

    /// A whole number in `min..=max`, or `None` (reported) when out of range.
    fn int(&mut self, v: &Spanned<i64>, q: &str, key: &str, min: i64, max: i64) -> Option<u64> {
        let n = *v.get_ref();
        let why = if n < min {
            if min == 1 {
                "must be greater than zero".to_string()
            } else {
                format!("must be at least {min}")
            }
        } else if n > max {
            format!("must be at most {max}")
        } else {
            return u64::try_from(n).ok();
        };
        self.at(v.span().start, format!("queue {q:?}: {key} {why}, not {n}"));
        None
    }

    /// Optional seconds (`min` 1 unless zero means something), as a duration.
    fn secs(&mut self, v: &Option<Spanned<i64>>, q: &str, key: &str, min: i64) -> Option<Duration> {
        let v = v.as_ref()?;
        self.int(v, q, key, min, MAX_SECONDS)
            .map(Duration::from_secs)
    }

    /// One of `choices` by name, or `None` (reported).
    fn choice<T: Copy>(
        &mut self,
        v: &Spanned<String>,
        q: &str,
        key: &str,
        choices: &[(&str, T)],
    ) -> Option<T> {
        if let Some((_, t)) = choices.iter().find(|(n, _)| *n == v.get_ref()) {
            return Some(*t);
        }
        let names: Vec<String> = choices.iter().map(|(n, _)| format!("{n:?}")).collect();
        self.at(
            v.span().start,
            format!(
                "queue {q:?}: {key} must be one of {}, not {:?}",
                names.join(", "),
                v.get_ref()
            ),
        );
        None
    }
}

/// Checks one queue's settings and maps them; problems go to `f`.
fn queue_config(
    f: &mut File<'_>,
    dir: &Path,
    q: &RawQueue,
    names: &[&str],
    moh_checked: &mut HashMap<String, Result<(), String>>,
) -> QueueConfig {
    let name = q.name.get_ref().as_str();
    let mut c = QueueConfig::new(name);
    c.join_empty = DEFAULT_EMPTY;
    c.leave_empty = DEFAULT_EMPTY;
    if let Some(v) = &q.strategy {
        c.strategy = f
            .choice(v, name, "strategy", &STRATEGIES)
            .unwrap_or(c.strategy);
    }
    if let Some(v) = &q.max_len {
        c.max_len = f
            .int(v, name, "max_len", 1, 100_000)
            .and_then(|n| usize::try_from(n).ok());
    }
    if let Some(v) = &q.join_empty {
        c.join_empty = f
            .choice(v, name, "join_empty", &EMPTY_RULES)
            .unwrap_or(c.join_empty);
    }
    if let Some(v) = &q.leave_empty {
        c.leave_empty = f
            .choice(v, name, "leave_empty", &EMPTY_RULES)
            .unwrap_or(c.leave_empty);
    }
    c.max_wait = f.secs(&q.max_wait_seconds, name, "max_wait_seconds", 1);
    if let Some(v) = &q.ring_timeout_seconds {
        c.ring_timeout = f
            .int(v, name, "ring_timeout_seconds", 1, 600)
            .map_or(c.ring_timeout, Duration::from_secs);
    }
    if let Some(d) = f.secs(&q.retry_seconds, name, "retry_seconds", 1) {
        c.retry_delay = d;
    }
    if let Some(v) = &q.max_no_answer {
        c.max_no_answer = f
            .int(v, name, "max_no_answer", 0, 100)
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(c.max_no_answer);
    }
    if let Some(d) = f.secs(&q.wrap_up_seconds, name, "wrap_up_seconds", 0) {
        c.wrap_up = d;
    }
    c.escalation_step = f.secs(&q.escalation_seconds, name, "escalation_seconds", 1);
    if let Some(v) = &q.announce_every_seconds {
        c.announce_every = f
            .int(v, name, "announce_every_seconds", 1, 3600)
            .map(Duration::from_secs)
            .or(c.announce_every);
    }
    if let Some(v) = &q.estimate_cap_minutes {
        c.estimate_cap_minutes = f
            .int(v, name, "estimate_cap_minutes", 1, 24 * 60)
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(c.estimate_cap_minutes);
    }

    // Returning callers: on with `returning_days`.
    let days = q
        .returning_days
        .as_ref()
        .and_then(|v| f.int(v, name, "returning_days", 1, 365));
    let hold = f.secs(&q.returning_wait_seconds, name, "returning_wait_seconds", 0);
    match (&q.returning_days, &q.returning_wait_seconds) {
        (None, Some(v)) => f.at(
            v.span().start,
            format!("queue {name:?}: returning_wait_seconds needs returning_days"),
        ),
        _ => {
            c.returning = days.map(|d| ReturningConfig {
                lookback: Duration::from_secs(d * 24 * 3600),
                wait_for_operator: hold.unwrap_or(Duration::ZERO),
            })
        }
    }

    // Overflow: `message`, `callback` or `queue:<name>`.
    if let Some(v) = &q.overflow {
        let s = v.get_ref().as_str();
        let at = v.span().start;
        match s {
            "message" => c.overflow = OverflowAction::Message,
            "callback" => c.overflow = OverflowAction::Callback,
            _ => match s.strip_prefix("queue:").map(str::trim) {
                Some(t) if t == name => f.at(
                    at,
                    format!("queue {name:?}: overflow to itself; name another queue"),
                ),
                Some(t) if names.contains(&t) => c.overflow = OverflowAction::Queue(t.into()),
                Some(t) => f.at(
                    at,
                    format!(
                        "queue {name:?}: overflow to unknown queue {t:?} (queues: {})",
                        names.join(", ")
                    ),
                ),
                None => f.at(
                    at,
                    format!(
                        "queue {name:?}: overflow must be \"message\", \"callback\" or \
                         \"queue:<name>\", not {s:?}"
                    ),
                ),
            },
        }
    }

    // Callback: on with `callback_after_seconds` or `overflow = "callback"`.
    let offer_after = f.secs(&q.callback_after_seconds, name, "callback_after_seconds", 1);
    let attempts = q
        .callback_attempts
        .as_ref()
        .and_then(|v| f.int(v, name, "callback_attempts", 1, 20))
        .and_then(|n| u32::try_from(n).ok());
    let retry = f.secs(&q.callback_retry_seconds, name, "callback_retry_seconds", 1);
    let wanted = q.callback_after_seconds.is_some()
        || q.overflow
            .as_ref()
            .is_some_and(|o| o.get_ref() == "callback");
    if wanted {
        c.callback = Some(CallbackConfig {
            offer_after,
            max_attempts: attempts.unwrap_or(3),
            retry_interval: retry.unwrap_or(Duration::from_secs(600)),
        });
    } else {
        for (key, v) in [
            ("callback_attempts", &q.callback_attempts),
            ("callback_retry_seconds", &q.callback_retry_seconds),
        ] {
            if let Some(v) = v {
                f.at(
                    v.span().start,
                    format!(
                        "queue {name:?}: {key} has no effect without callback_after_seconds \
                         or overflow = \"callback\""
                    ),
                );
            }
        }
    }

    // Music on hold: a loadable WAV under prompts/.
    let moh = q.moh.as_ref().map_or(DEFAULT_MOH, |m| m.get_ref().as_str());
    let at = q
        .moh
        .as_ref()
        .map_or(q.name.span().start, |m| m.span().start);
    let rel = Path::new(moh);
    if !rel.starts_with("prompts")
        || rel
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        f.at(
            at,
            format!("queue {name:?}: moh {moh:?} must be a WAV file under prompts/"),
        );
    } else {
        let known = moh_checked.get(moh).cloned();
        let result = known.clone().unwrap_or_else(|| {
            let r = media::prompts::read_wav(&dir.join(rel))
                .map(|_| ())
                .map_err(|e| e.to_string());
            moh_checked.insert(moh.to_string(), r.clone());
            r
        });
        // A bad default is reported once; a bad `moh` key wherever it is written.
        if let (Err(e), true) = (result, known.is_none() || q.moh.is_some()) {
            f.at(at, format!("queue {name:?}: moh: {e}"));
        }
    }
    c
}

/// `disposition_required = true` needs dispositions to choose from: a problem at the key of
/// every queue that sets it when the case directory has none. `cases` is the cases file
/// (`None` when `hotline.toml` names none); `queues_file` as for [`build`].
pub fn check_disposition_required(
    dir: &Path,
    queues_file: Option<&str>,
    queues: &[QueueDef],
    cases: Option<&Path>,
    dispositions: usize,
    problems: &mut Vec<Problem>,
) {
    if dispositions > 0 {
        return;
    }
    let Some(qpath) = queues_file.map(|q| dir.join(q)) else {
        return;
    };
    let mut qf = File {
        path: qpath.display().to_string(),
        text: std::fs::read_to_string(&qpath).unwrap_or_default(),
        problems,
    };
    let lacking = match cases {
        Some(c) => format!("{} has no [[disposition]]", c.display()),
        None => "hotline.toml names no cases file (cases = \"cases.toml\")".to_owned(),
    };
    for q in queues {
        if let Some(v) = q.raw.disposition_required.as_ref().filter(|v| *v.get_ref()) {
            qf.at(
                v.span().start,
                format!(
                    "queue {:?}: disposition_required = true needs the dispositions an \
                     operator chooses from, and {lacking}",
                    q.name
                ),
            );
        }
    }
}

/// Checks the ACD settings of the queues and operators files and builds the ACD's
/// configuration. `queues_file` and `operators_file` are the paths `hotline.toml` names
/// (relative to `dir`); their texts are read again only to place problems. Returns an empty
/// configuration when there are problems (the load fails anyway).
pub fn build(
    dir: &Path,
    queues_file: Option<&str>,
    queues: &[QueueDef],
    operators_file: &str,
    operators: &[Operator],
    problems: &mut Vec<Problem>,
) -> AcdConfig {
    let before = problems.len();
    let names: Vec<&str> = queues.iter().map(|q| q.name.as_str()).collect();
    let mut acd = AcdConfig::default();

    let qpath = queues_file.map(|q| dir.join(q));
    let mut qf = File {
        path: qpath
            .as_ref()
            .map_or_else(String::new, |p| p.display().to_string()),
        text: qpath
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default(),
        problems,
    };
    let mut moh_checked = HashMap::new();
    for (i, q) in queues.iter().enumerate() {
        let name = q.name.as_str();
        let at = q.raw.name.span().start;
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            qf.at(
                at,
                format!("queue name {name:?} must be letters, digits, - and _"),
            );
        }
        if names.get(..i).is_some_and(|b| b.contains(&name)) {
            qf.at(at, format!("queue {name:?} is defined twice"));
        }
        acd.queues
            .push(queue_config(&mut qf, dir, &q.raw, &names, &mut moh_checked));
    }
    let queues_text = std::mem::take(&mut qf.text);
    let queues_path = qf.path.clone();

    let opath = dir.join(operators_file);
    let mut of = File {
        path: opath.display().to_string(),
        text: std::fs::read_to_string(&opath).unwrap_or_default(),
        problems: qf.problems,
    };
    for o in operators {
        let mut skills = Vec::new();
        for (q, level) in &o.skills.0 {
            let queue = q.get_ref().as_str();
            if queues_file.is_none() {
                of.at(
                    q.span().start,
                    format!(
                        "operator {:?} is in queue {queue:?} but hotline.toml names no \
                         `queues` file",
                        o.login
                    ),
                );
            } else if !names.is_empty() && !names.contains(&queue) {
                of.at(
                    q.span().start,
                    format!(
                        "operator {:?}: unknown queue {queue:?} (queues: {})",
                        o.login,
                        names.join(", ")
                    ),
                );
            }
            let l = *level.get_ref();
            match u8::try_from(l) {
                Ok(l @ 1..=9) => skills.push(Skill {
                    queue: queue.into(),
                    level: l,
                }),
                _ => of.at(
                    level.span().start,
                    format!(
                        "operator {:?}: level {l} in queue {queue:?}; levels are 1 (offered \
                         first) to 9",
                        o.login
                    ),
                ),
            }
        }
        acd.operators.push(OperatorConfig {
            id: o.login.as_str().into(),
            skills,
        });
    }
    let problems = of.problems;

    if problems.len() != before {
        // In file order: the queues file first, each file top to bottom.
        if let Some(mine) = problems.get_mut(before..) {
            mine.sort_by_key(|p| (p.path != queues_path, p.line, p.col));
        }
        return AcdConfig::default();
    }
    if !problems.is_empty() {
        // Another file is broken (e.g. an operator listed twice): the load fails anyway and
        // the ACD's own check would only repeat it.
        return acd;
    }
    if let Err(e) = acd.validate() {
        let queues_file = File {
            path: queues_path,
            text: queues_text,
            problems,
        };
        locate_error(&e, queues_file, of.text, of.path, queues, operators);
        return AcdConfig::default();
    }
    acd
}

/// Places an error of [`AcdConfig::validate`] at the key it is about.
fn locate_error(
    e: &ConfigError,
    mut qf: File<'_>,
    ops_text: String,
    ops_path: String,
    queues: &[QueueDef],
    operators: &[Operator],
) {
    let msg = e.to_string();
    // A queue's key by its file name, else the queue's name; the last queue of that name.
    let queue_at = |id: &acd::QueueId, key: &str| -> usize {
        let q = queues.iter().rev().find(|q| q.name == id.as_str());
        q.map_or(0, |q| {
            let r = &q.raw;
            let span: Option<Range<usize>> = match key {
                "ring_timeout" => r.ring_timeout_seconds.as_ref().map(Spanned::span),
                "announce_every" => r.announce_every_seconds.as_ref().map(Spanned::span),
                "escalation_step" => r.escalation_seconds.as_ref().map(Spanned::span),
                "callback.max_attempts" => r.callback_attempts.as_ref().map(Spanned::span),
                "overflow" => r.overflow.as_ref().map(Spanned::span),
                _ => None,
            };
            span.unwrap_or_else(|| r.name.span()).start
        })
    };
    let in_queues = match e {
        ConfigError::DuplicateQueue(q) => Some(queue_at(q, "name")),
        ConfigError::UnknownOverflowQueue { queue, .. }
        | ConfigError::CallbackOverflowWithoutCallback(queue) => Some(queue_at(queue, "overflow")),
        ConfigError::Zero { queue, field } => Some(queue_at(queue, field)),
        _ => None,
    };
    if let Some(at) = in_queues {
        qf.at(at, msg);
        return;
    }
    let mut of = File {
        path: ops_path,
        text: ops_text,
        problems: qf.problems,
    };
    let skill_at = |op: &acd::OperatorId, queue: &acd::QueueId, level: bool| -> Option<usize> {
        let o = operators.iter().rev().find(|o| o.login == op.as_str())?;
        let (q, l) = o
            .skills
            .0
            .iter()
            .rev()
            .find(|(q, _)| q.get_ref() == queue.as_str())?;
        Some(if level {
            l.span().start
        } else {
            q.span().start
        })
    };
    let at = match e {
        ConfigError::UnknownSkillQueue { operator, queue }
        | ConfigError::DuplicateSkill { operator, queue } => skill_at(operator, queue, false),
        ConfigError::BadLevel {
            operator, queue, ..
        } => skill_at(operator, queue, true),
        _ => None,
    };
    let at = at.unwrap_or_else(|| {
        // The operator's [[operator]] header (the last one for a duplicate).
        let op = match e {
            ConfigError::DuplicateOperator(o)
            | ConfigError::UnknownSkillQueue { operator: o, .. }
            | ConfigError::DuplicateSkill { operator: o, .. }
            | ConfigError::BadLevel { operator: o, .. } => Some(o.as_str()),
            _ => None,
        };
        operators
            .iter()
            .rposition(|o| Some(o.login.as_str()) == op)
            .map_or(0, |i| nth_header(&of.text, "[[operator]]", i))
    });
    of.at(at, msg);
}

/// One line about a queue for `hotlined check`: name, strategy, operators with their levels,
/// and what happens to a caller who waits too long.
pub fn summary(acd: &AcdConfig, q: &QueueConfig) -> String {
    let ops: Vec<String> = acd
        .operators
        .iter()
        .filter_map(|o| {
            let s = o.skills.iter().find(|s| s.queue == q.id)?;
            Some(format!("{}/{}", o.id, s.level))
        })
        .collect();
    let mut line = format!(
        "{:<14} {:<12} operators {}",
        q.id.as_str(),
        strategy_name(q.strategy),
        if ops.is_empty() {
            "none".to_string()
        } else {
            ops.join(" ")
        }
    );
    if let Some(w) = q.max_wait {
        let to = match &q.overflow {
            OverflowAction::Queue(t) => format!("queue {t}"),
            OverflowAction::Message => "message".into(),
            OverflowAction::Callback => "callback".into(),
        };
        line.push_str(&format!("; after {} s: {to}", w.as_secs()));
    }
    if let Some(after) = q.callback.and_then(|c| c.offer_after) {
        line.push_str(&format!("; callback offered after {} s", after.as_secs()));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, OperatorsFile};

    fn shipped() -> Config {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/hotline.toml");
        Config::load_with_env(&p, std::iter::empty()).unwrap()
    }

    fn queue<'a>(acd: &'a AcdConfig, name: &str) -> &'a QueueConfig {
        acd.queues.iter().find(|q| q.id.as_str() == name).unwrap()
    }

    fn skills(acd: &AcdConfig, op: &str) -> Vec<(String, u8)> {
        let o = acd.operators.iter().find(|o| o.id.as_str() == op).unwrap();
        o.skills
            .iter()
            .map(|s| (s.queue.to_string(), s.level))
            .collect()
    }

    #[test]
    fn every_shipped_queue_has_its_music_on_hold_loaded() {
        let c = shipped();
        for q in &c.queues {
            let name = c.moh.get(&q.name).unwrap();
            let p = c.prompts.get(name).unwrap();
            assert!(p.frames() > 0, "{}", q.name);
        }
        assert_eq!(c.moh.len(), c.queues.len());
    }

    #[test]
    fn shipped_config_maps_to_the_acd() {
        let acd = shipped().acd;
        acd.validate().unwrap();
        let names: Vec<&str> = acd.queues.iter().map(|q| q.id.as_str()).collect();
        assert_eq!(
            names,
            [
                "benefits",
                "home-care",
                "rehab",
                "volunteers",
                "psychologists",
                "regional"
            ]
        );
        let b = queue(&acd, "benefits");
        assert_eq!(b.strategy, Strategy::LongestIdle);
        assert_eq!(b.max_len, Some(30));
        assert_eq!(b.max_wait, Some(Duration::from_secs(900)));
        assert_eq!(b.overflow, OverflowAction::Callback);
        // Defaults where the file says nothing.
        assert_eq!(b.ring_timeout, Duration::from_secs(15));
        assert_eq!(b.join_empty, EmptyRule::NoneLoggedIn);
        assert_eq!(b.leave_empty, EmptyRule::NoneLoggedIn);
        assert_eq!(b.announce_every, Some(Duration::from_secs(60)));
        assert_eq!(
            b.returning,
            Some(ReturningConfig {
                lookback: Duration::from_secs(7 * 86_400),
                wait_for_operator: Duration::from_secs(30),
            })
        );
        assert_eq!(
            queue(&acd, "rehab").overflow,
            OverflowAction::Queue("benefits".into())
        );
        assert_eq!(queue(&acd, "volunteers").strategy, Strategy::RingAll);
        assert_eq!(queue(&acd, "volunteers").callback, None);
        let p = queue(&acd, "psychologists");
        assert_eq!(p.strategy, Strategy::Skills);
        assert_eq!(p.escalation_step, Some(Duration::from_secs(60)));
        assert_eq!(p.overflow, OverflowAction::Callback);
        assert_eq!(
            p.callback,
            Some(CallbackConfig {
                offer_after: Some(Duration::from_secs(60)),
                max_attempts: 5,
                retry_interval: Duration::from_secs(300),
            })
        );
        // Only psychologists answer the psychologists' queue, and they answer nothing else.
        let in_psy: Vec<&str> = acd
            .operators
            .iter()
            .filter(|o| o.skills.iter().any(|s| s.queue.as_str() == "psychologists"))
            .map(|o| o.id.as_str())
            .collect();
        assert_eq!(in_psy, ["op5", "op6"]);
        assert_eq!(skills(&acd, "op6"), [("psychologists".to_string(), 2)]);
        // Skills keep the file's order.
        assert_eq!(
            skills(&acd, "op3"),
            [
                ("home-care".to_string(), 1),
                ("rehab".to_string(), 1),
                ("benefits".to_string(), 2),
                ("volunteers".to_string(), 2)
            ]
        );
        // Every queue has someone to answer it.
        for q in &acd.queues {
            assert!(
                acd.operators
                    .iter()
                    .any(|o| o.skills.iter().any(|s| s.queue == q.id)),
                "{}",
                q.id
            );
        }
    }

    #[test]
    fn summary_names_strategy_operators_and_overflow() {
        let acd = shipped().acd;
        assert_eq!(
            summary(&acd, queue(&acd, "psychologists")),
            "psychologists  skills       operators op5/1 op6/2; after 300 s: callback; \
             callback offered after 60 s"
        );
        assert_eq!(
            summary(&acd, queue(&acd, "rehab")),
            "rehab          round-robin  operators op2/1 op3/1 op4/2; after 600 s: queue benefits"
        );
    }

    /// A folder with a main file, one line, the given queues and operators files, and a
    /// default music-on-hold WAV. Returns the folder and the load's problems, one per line.
    fn problems(queues: &str, operators: &str) -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(
            d.join("hotline.toml"),
            "lines = \"l.toml\"\noperators = \"o.toml\"\nqueues = \"q.toml\"\n",
        )
        .unwrap();
        std::fs::write(
            d.join("l.toml"),
            "[[line]]\nid = \"a\"\nnumber = \"375\"\nname = \"A\"\n",
        )
        .unwrap();
        std::fs::write(d.join("q.toml"), queues).unwrap();
        std::fs::write(d.join("o.toml"), operators).unwrap();
        std::fs::create_dir_all(d.join("prompts/moh")).unwrap();
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 8000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(d.join(DEFAULT_MOH), spec).unwrap();
        for i in 0..8000i32 {
            w.write_sample(((i % 40) * 500 - 10_000) as i16).unwrap();
        }
        w.finalize().unwrap();
        let s = match Config::load_with_env(&d.join("hotline.toml"), std::iter::empty()) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        };
        (dir, s)
    }

    const OP: &str = "[[operator]]\nlogin = \"op1\"\nname = \"x\"\npassword = \"p\"\n";

    /// Asserts the problems are exactly `want` (as `q.toml:L:C: message`, folder stripped).
    fn assert_problems(dir: &tempfile::TempDir, got: &str, want: &[&str]) {
        let prefix = format!("{}/", dir.path().display());
        let got: Vec<String> = got.lines().map(|l| l.replace(&prefix, "")).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn each_bad_queue_value_is_a_problem_at_its_value() {
        let q = "\
[[queue]]
name = \"a\"
strategy = \"leastrecent\"
max_len = 0
join_empty = \"yes\"
ring_timeout_seconds = 0
retry_seconds = 0
wrap_up_seconds = -5
max_wait_seconds = 999999999
overflow = \"queue:nowhere\"

[[queue]]
name = \"b\"
overflow = \"queue:b\"
returning_wait_seconds = 10
callback_attempts = 2
escalation_seconds = 0
announce_every_seconds = 0

[[queue]]
name = \"c\"
overflow = \"voicemail\"
callback_after_seconds = 0
estimate_cap_minutes = 0
moh = \"../secret.wav\"

[[queue]]
name = \"a\"
moh = \"prompts/moh/missing.wav\"

[[queue]]
name = \"bad name\"
";
        let (dir, got) = problems(q, OP);
        let missing = dir.path().join("prompts/moh/missing.wav");
        let missing = format!(
            "q.toml:29:7: queue \"a\": moh: {}: prompt file not found",
            missing.display()
        )
        .replace(&format!("{}/", dir.path().display()), "");
        assert_problems(
            &dir,
            &got,
            &[
                "q.toml:3:12: queue \"a\": strategy must be one of \"longest-idle\", \
                 \"round-robin\", \"ring-all\", \"fewest-calls\", \"skills\", not \"leastrecent\"",
                "q.toml:4:11: queue \"a\": max_len must be greater than zero, not 0",
                "q.toml:5:14: queue \"a\": join_empty must be one of \"never\", \
                 \"none-logged-in\", \"none-ready\", not \"yes\"",
                "q.toml:6:24: queue \"a\": ring_timeout_seconds must be greater than zero, not 0",
                "q.toml:7:17: queue \"a\": retry_seconds must be greater than zero, not 0",
                "q.toml:8:19: queue \"a\": wrap_up_seconds must be at least 0, not -5",
                "q.toml:9:20: queue \"a\": max_wait_seconds must be at most 604800, not 999999999",
                "q.toml:10:12: queue \"a\": overflow to unknown queue \"nowhere\" \
                 (queues: a, b, c, a, bad name)",
                "q.toml:14:12: queue \"b\": overflow to itself; name another queue",
                "q.toml:15:26: queue \"b\": returning_wait_seconds needs returning_days",
                "q.toml:16:21: queue \"b\": callback_attempts has no effect without \
                 callback_after_seconds or overflow = \"callback\"",
                "q.toml:17:22: queue \"b\": escalation_seconds must be greater than zero, not 0",
                "q.toml:18:26: queue \"b\": announce_every_seconds must be greater than zero, \
                 not 0",
                "q.toml:22:12: queue \"c\": overflow must be \"message\", \"callback\" or \
                 \"queue:<name>\", not \"voicemail\"",
                "q.toml:23:26: queue \"c\": callback_after_seconds must be greater than zero, \
                 not 0",
                "q.toml:24:24: queue \"c\": estimate_cap_minutes must be greater than zero, not 0",
                "q.toml:25:7: queue \"c\": moh \"../secret.wav\" must be a WAV file under prompts/",
                "q.toml:28:8: queue \"a\" is defined twice",
                &missing,
                "q.toml:32:8: queue name \"bad name\" must be letters, digits, - and _",
            ],
        );
    }

    #[test]
    fn typos_and_wrong_types_are_reported_by_the_parser() {
        let (dir, got) = problems("[[queue]]\nname = \"a\"\nstrategi = \"skills\"\n", OP);
        assert!(
            got.starts_with(&format!(
                "{}:3:1: unknown field `strategi`",
                dir.path().join("q.toml").display()
            )),
            "{got}"
        );
        let (dir, got) = problems("[[queue]]\nname = \"a\"\nmax_len = \"ten\"\n", OP);
        assert!(
            got.starts_with(&format!(
                "{}:3:11: invalid type: string \"ten\", expected i64",
                dir.path().join("q.toml").display()
            )),
            "{got}"
        );
    }

    #[test]
    fn operator_skills_are_checked_against_the_queues_file() {
        let q = "[[queue]]\nname = \"benefits\"\n\n[[queue]]\nname = \"rehab\"\n";
        let ops = format!(
            "{OP}skills = {{ benefits = 1, rehab = 0 }}\n\n\
             [[operator]]\nlogin = \"op2\"\nname = \"y\"\npassword = \"p\"\n\
             skills = {{ benefit = 1, rehab = 10 }}\n"
        );
        let (dir, got) = problems(q, &ops);
        assert_problems(
            &dir,
            &got,
            &[
                "o.toml:5:34: operator \"op1\": level 0 in queue \"rehab\"; levels are 1 \
                 (offered first) to 9",
                "o.toml:11:12: operator \"op2\": unknown queue \"benefit\" (queues: benefits, \
                 rehab)",
                "o.toml:11:33: operator \"op2\": level 10 in queue \"rehab\"; levels are 1 \
                 (offered first) to 9",
            ],
        );
        // Skills written as a list are a type error at the list.
        let (dir, got) = problems(q, &format!("{OP}skills = [\"benefits\"]\n"));
        assert!(
            got.starts_with(&format!(
                "{}:5:10: invalid type: sequence, expected a table of queue = level",
                dir.path().join("o.toml").display()
            )),
            "{got}"
        );
        // A queue named twice is TOML's own error.
        let (_dir, got) = problems(q, &format!("{OP}skills = {{ rehab = 1, rehab = 2 }}\n"));
        assert!(got.contains("o.toml:5:"), "{got}");
    }

    #[test]
    fn skills_without_a_queues_file_are_a_problem() {
        let (dir, _) = problems("[[queue]]\nname = \"benefits\"\n", OP);
        let d = dir.path();
        std::fs::write(
            d.join("hotline.toml"),
            "lines = \"l.toml\"\noperators = \"o.toml\"\n",
        )
        .unwrap();
        std::fs::write(
            d.join("o.toml"),
            format!("{OP}skills = {{ benefits = 1 }}\n"),
        )
        .unwrap();
        let got = Config::load_with_env(&d.join("hotline.toml"), std::iter::empty())
            .unwrap_err()
            .to_string();
        assert_problems(
            &dir,
            &got,
            &[
                "o.toml:5:12: operator \"op1\" is in queue \"benefits\" but hotline.toml names \
               no `queues` file",
            ],
        );
        // Without skills, no queues file is fine and the ACD has no queues.
        std::fs::write(d.join("o.toml"), OP).unwrap();
        let c = Config::load_with_env(&d.join("hotline.toml"), std::iter::empty()).unwrap();
        assert_eq!(c.acd, AcdConfig::default().with_operator("op1"));
    }

    trait WithOp {
        fn with_operator(self, id: &str) -> Self;
    }
    impl WithOp for AcdConfig {
        fn with_operator(mut self, id: &str) -> Self {
            self.operators.push(OperatorConfig {
                id: id.into(),
                skills: Vec::new(),
            });
            self
        }
    }

    #[test]
    fn a_good_file_with_every_key_maps_each_one() {
        let q = "\
[[queue]]
name = \"a\"
title = \"A\"
strategy = \"fewest-calls\"
max_len = 7
join_empty = \"never\"
leave_empty = \"none-ready\"
max_wait_seconds = 300
overflow = \"queue:b\"
ring_timeout_seconds = 25
retry_seconds = 3
max_no_answer = 0
wrap_up_seconds = 0
escalation_seconds = 45
returning_days = 2
returning_wait_seconds = 0
callback_after_seconds = 90
callback_attempts = 4
callback_retry_seconds = 120
announce_every_seconds = 30
estimate_cap_minutes = 15
moh = \"prompts/moh/default.wav\"

[[queue]]
name = \"b\"
";
        let (dir, got) = problems(q, &format!("{OP}skills = {{ b = 3, a = 1 }}\n"));
        assert_eq!(got, "");
        let c =
            Config::load_with_env(&dir.path().join("hotline.toml"), std::iter::empty()).unwrap();
        let mut want = QueueConfig::new("a");
        want.strategy = Strategy::FewestCalls;
        want.max_len = Some(7);
        want.join_empty = EmptyRule::Never;
        want.leave_empty = EmptyRule::NoneReady;
        want.max_wait = Some(Duration::from_secs(300));
        want.overflow = OverflowAction::Queue("b".into());
        want.ring_timeout = Duration::from_secs(25);
        want.retry_delay = Duration::from_secs(3);
        want.max_no_answer = 0;
        want.wrap_up = Duration::ZERO;
        want.escalation_step = Some(Duration::from_secs(45));
        want.returning = Some(ReturningConfig {
            lookback: Duration::from_secs(2 * 86_400),
            wait_for_operator: Duration::ZERO,
        });
        want.callback = Some(CallbackConfig {
            offer_after: Some(Duration::from_secs(90)),
            max_attempts: 4,
            retry_interval: Duration::from_secs(120),
        });
        want.announce_every = Some(Duration::from_secs(30));
        want.estimate_cap_minutes = 15;
        assert_eq!(c.acd.queues[0], want);
        let mut b = QueueConfig::new("b");
        b.join_empty = EmptyRule::NoneLoggedIn;
        b.leave_empty = EmptyRule::NoneLoggedIn;
        assert_eq!(c.acd.queues[1], b);
        assert_eq!(
            c.acd.operators,
            [OperatorConfig::new("op1", [("b", 3), ("a", 1)])]
        );
    }

    #[test]
    fn acd_validate_errors_land_on_their_key() {
        let qtext = "\
[[queue]]
name = \"a\"
ring_timeout_seconds = 0
overflow = \"callback\"

[[queue]]
name = \"a\"
";
        let otext = "\
[[operator]]
login = \"op1\"
name = \"x\"
skills = { a = 1, zz = 12 }

[[operator]]
login = \"op1\"
name = \"y\"
";
        let queues: QueuesFile = toml::from_str(qtext).unwrap();
        let ops: OperatorsFile = toml::from_str(otext).unwrap();
        let place = |e: ConfigError| -> String {
            let mut problems = Vec::new();
            let qf = File {
                path: "q.toml".into(),
                text: qtext.into(),
                problems: &mut problems,
            };
            locate_error(
                &e,
                qf,
                otext.into(),
                "o.toml".into(),
                &queues.queue,
                &ops.operator,
            );
            assert_eq!(problems.len(), 1);
            problems[0].to_string()
        };
        let (a, op1, zz) = (
            acd::QueueId::from("a"),
            acd::OperatorId::from("op1"),
            acd::QueueId::from("zz"),
        );
        assert_eq!(
            place(ConfigError::DuplicateQueue(a.clone())),
            "q.toml:7:8: queue a is defined twice"
        );
        assert_eq!(
            place(ConfigError::Zero {
                queue: a.clone(),
                field: "ring_timeout"
            }),
            // The last queue named `a` has no such key: its name.
            "q.toml:7:8: queue a: ring_timeout must be greater than zero"
        );
        assert_eq!(
            place(ConfigError::UnknownOverflowQueue {
                queue: a.clone(),
                target: zz.clone()
            }),
            "q.toml:7:8: queue a overflows to unknown queue zz"
        );
        assert_eq!(
            place(ConfigError::DuplicateOperator(op1.clone())),
            "o.toml:6:1: operator op1 is defined twice"
        );
        let ops_first: OperatorsFile =
            toml::from_str(&otext[..otext.find("\n\n").unwrap()]).unwrap();
        let mut problems = Vec::new();
        let qf = File {
            path: "q.toml".into(),
            text: qtext.into(),
            problems: &mut problems,
        };
        locate_error(
            &ConfigError::BadLevel {
                operator: op1.clone(),
                queue: zz.clone(),
                level: 12,
            },
            qf,
            otext.into(),
            "o.toml".into(),
            &queues.queue,
            &ops_first.operator,
        );
        assert_eq!(
            problems[0].to_string(),
            "o.toml:4:24: operator op1 has level 12 in queue zz; levels are 1 to 9"
        );
        let mut problems = Vec::new();
        let qf = File {
            path: "q.toml".into(),
            text: qtext.into(),
            problems: &mut problems,
        };
        locate_error(
            &ConfigError::UnknownSkillQueue {
                operator: op1,
                queue: zz,
            },
            qf,
            otext.into(),
            "o.toml".into(),
            &queues.queue[..1],
            &ops_first.operator,
        );
        assert_eq!(
            problems[0].to_string(),
            "o.toml:4:19: operator op1 names unknown queue zz"
        );
        // With only the first queue `a`, a zero ring timeout points at its key.
        let mut problems = Vec::new();
        let qf = File {
            path: "q.toml".into(),
            text: qtext.into(),
            problems: &mut problems,
        };
        locate_error(
            &ConfigError::Zero {
                queue: a,
                field: "ring_timeout",
            },
            qf,
            otext.into(),
            "o.toml".into(),
            &queues.queue[..1],
            &ops.operator,
        );
        assert_eq!(
            problems[0].to_string(),
            "q.toml:3:24: queue a: ring_timeout must be greater than zero"
        );
    }

    #[test]
    fn line_col_never_panics() {
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
        assert_eq!(line_col("ая", 1), (1, 1));
        assert_eq!(line_col("x", 99), (1, 2));
        assert_eq!(nth_header("[[a]]\nx = \"[[a]]\"\n[[a]]\n", "[[a]]", 1), 18);
    }
}
