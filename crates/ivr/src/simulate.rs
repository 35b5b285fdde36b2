//! A caller walked through a menu on virtual time, for `hotlined simulate` and tests.
//!
//! The simulated caller listens to every prompt to its end (prompts last as long as their WAV
//! files), presses the next of the given keys one second after the session starts waiting, and
//! once the keys run out lets every wait time out. The walk is bounded, so a menu that the checks
//! did not see through cannot make it run forever.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::menu::Menu;
use crate::session::{Action, IvrSession, Outcome};

/// What a simulated call did.
#[derive(Debug, Clone)]
pub struct Simulation {
    /// One line per event: `  12.3s  play city/greeting …`.
    pub transcript: Vec<String>,
    /// Where the call ended up (`None` if the walk was cut off).
    pub outcome: Option<Outcome>,
    /// The appeal's category.
    pub category: Option<String>,
    /// The appeal's IVR path.
    pub path: Vec<String>,
    /// Variables set on the appeal.
    pub variables: BTreeMap<String, String>,
    /// Keys given but never pressed (the call ended first).
    pub unused_keys: String,
}

impl Simulation {
    /// How the call ends, in one line: `queue "benefits" (priority 0), category "benefits"`.
    pub fn ending(&self) -> String {
        let end = match &self.outcome {
            Some(Outcome::Queue { queue, priority }) => {
                format!("queue {queue:?} (priority {priority})")
            }
            Some(Outcome::Transfer { number }) => format!("transfer to {number}"),
            Some(Outcome::Callback { number }) => format!("callback to {number}"),
            Some(Outcome::Message { max }) => {
                format!("message (recorded up to {} s)", max.as_secs())
            }
            Some(Outcome::Hangup) => "hangup".to_owned(),
            None => "nowhere (the walk was cut off)".to_owned(),
        };
        match &self.category {
            Some(c) => format!("{end}, category {c:?}"),
            None => format!("{end}, no category"),
        }
    }
}

/// Events before the walk is cut off.
const MAX_EVENTS: usize = 1000;
/// How long a prompt whose length is unknown is taken to play.
const UNKNOWN_PROMPT: Duration = Duration::from_secs(1);
/// The caller presses a key this long after the session starts waiting.
const THINK: Duration = Duration::from_secs(1);

/// Walks a caller through `menu` from `start`, at civil time `at`, pressing `keys` (whitespace
/// ignored: `"1 * 0"` is three presses). `t0` is any instant; all times are relative to it.
pub fn simulate(
    menu: Arc<Menu>,
    start: &str,
    at: DateTime<Utc>,
    caller: Option<&str>,
    keys: &str,
    t0: Instant,
) -> Simulation {
    let mut s = IvrSession::new(menu.clone(), start, t0, at);
    if let Some(c) = caller {
        s = s.with_caller(c);
    }
    let mut keys: VecDeque<char> = keys.chars().filter(|c| !c.is_whitespace()).collect();
    let mut now = t0;
    let mut playing_for = Duration::ZERO;
    let mut out = Vec::new();
    let stamp = |now: Instant| format!("{:7.1}s  ", now.duration_since(t0).as_secs_f64());
    for _ in 0..MAX_EVENTS {
        while let Some(a) = s.poll_action() {
            let mut line = stamp(now);
            match a {
                Action::Play(prompts) => {
                    playing_for = Duration::ZERO;
                    for (i, p) in prompts.iter().enumerate() {
                        let info = menu.prompt(p);
                        playing_for += info.map_or(UNKNOWN_PROMPT, |i| i.duration);
                        if i > 0 {
                            out.push(line);
                            line = stamp(now);
                        }
                        let _ = write!(line, "play  {p}");
                        if let Some(info) = info {
                            let _ = write!(line, "  [{}]", info.path.display());
                            if let Some(t) = &info.text {
                                let _ = write!(line, "  «{t}»");
                            }
                        }
                    }
                }
                Action::StopPlayback => line.push_str("stop  (barge-in)"),
                Action::AppendPath(step) => {
                    let _ = write!(line, "step  {step}");
                }
                Action::SetCategory(c) => {
                    let _ = write!(line, "set   category = {c}");
                }
                Action::SetPriority(p) => {
                    let _ = write!(line, "set   priority = {p}");
                }
                Action::SetVariable { name, value } => {
                    let _ = write!(line, "set   {name} = {value}");
                }
                Action::EnterQueue { queue, priority } => {
                    let _ = write!(line, "END   queue {queue} (priority {priority})");
                }
                Action::Transfer { number } => {
                    let _ = write!(line, "END   transfer to {number}");
                }
                Action::Callback { number, .. } => {
                    let _ = write!(line, "END   callback booked to {number}");
                }
                Action::StartRecording { max } => {
                    let _ = write!(line, "END   recording a message, up to {} s", max.as_secs());
                }
                Action::Hangup => line.push_str("      hang up"),
            }
            out.push(line);
        }
        if s.is_finished() {
            break;
        }
        if s.is_playing() {
            now += playing_for;
            s.handle_playback_finished(now);
            continue;
        }
        let Some(deadline) = s.poll_timeout() else {
            break;
        };
        match keys.pop_front() {
            Some(k) => {
                now = (now + THINK).min(deadline);
                out.push(format!("{}key   {k}", stamp(now)));
                s.handle_digit(now, k);
            }
            None => {
                now = now.max(deadline);
                out.push(format!("{}wait  timed out", stamp(now)));
                s.handle_timeout(now);
            }
        }
    }
    Simulation {
        transcript: out,
        outcome: s.outcome().cloned(),
        category: s.category().map(str::to_owned),
        path: s.path().to_vec(),
        variables: s.variables().clone(),
        unused_keys: keys.into_iter().collect(),
    }
}
