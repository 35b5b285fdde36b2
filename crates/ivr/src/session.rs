//! [`IvrSession`]: one caller's walk through a [`Menu`], as a sans-IO state machine.
//!
//! The contract follows quinn's `Connection`:
//! - inputs: [`IvrSession::handle_digit`] (a key, from RFC 4733 or in-band detection),
//!   [`IvrSession::handle_playback_finished`] (the last [`Action::Play`] ran to its end) and
//!   [`IvrSession::handle_timeout`] (the time from [`IvrSession::poll_timeout`] has come);
//! - outputs: after every input, drain [`IvrSession::poll_action`] until `None`, carry the actions
//!   out in order, then arm a timer for [`IvrSession::poll_timeout`].
//!
//! Rules the session keeps, for callers who are elderly or disabled:
//! - **Barge-in**: a digit stops the playing prompt at once ([`Action::StopPlayback`]) and is
//!   acted on. A stopped playback must not be reported as finished; a finish that arrives when
//!   nothing plays is ignored.
//! - **Type-ahead**: digits pressed before a menu or collect asks for them (during a greeting,
//!   say) are kept and used by the next node that takes keys, which then skips its prompt.
//!   An invalid key drops the rest of the type-ahead; a callback starts with none, so that a
//!   caller always hears the number that will be called.
//! - **Nobody is hung up on**: `0` reaches the operator from every menu and `*` repeats it;
//!   after the last retry of a menu or collect the caller goes to the operator (or the node's
//!   fallback). Only a `hangup` node ends a call from the menu.
//!
//! Every step is reported for the appeal: [`Action::AppendPath`] (node entered, key chosen,
//! timeout, schedule verdict), [`Action::SetCategory`], [`Action::SetPriority`],
//! [`Action::SetVariable`].

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::menu::{Menu, Node, PromptRef};

/// What the call path must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Play these prompts back to back (replacing nothing: the previous playback has ended or
    /// was stopped). Report the end with `handle_playback_finished`.
    Play(Vec<PromptRef>),
    /// Stop the playing prompt now (barge-in).
    StopPlayback,
    /// Record the caller for at most `max`, then end the call (a `message` node).
    StartRecording {
        /// Longest recording.
        max: Duration,
    },
    /// Hand the caller to the queue; the session is over.
    EnterQueue {
        /// Queue name.
        queue: String,
        /// Higher is served first.
        priority: i32,
    },
    /// Transfer the call to an outside number through the trunk; the session is over.
    Transfer {
        /// The number to dial.
        number: String,
    },
    /// Book a callback to this number (the call goes on to a closing prompt and a hang-up).
    Callback {
        /// The number to call back.
        number: String,
        /// The queue whose operator calls back (the node's `queue`), if any.
        queue: Option<String>,
    },
    /// End the call.
    Hangup,
    /// Append a step to the appeal's IVR path: `main` (node entered), `main:1` (key),
    /// `main:timeout`, `hours:after hours`…
    AppendPath(String),
    /// Set the appeal's category.
    SetCategory(String),
    /// Queue priority from here on.
    SetPriority(i32),
    /// Record a variable on the appeal (`set` vars, `collect` digits).
    SetVariable {
        /// The variable.
        name: String,
        /// Its value.
        value: String,
    },
}

/// Where the call ended up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Waiting in a queue.
    Queue {
        /// Queue name.
        queue: String,
        /// Its priority.
        priority: i32,
    },
    /// Transferred out.
    Transfer {
        /// The number.
        number: String,
    },
    /// A callback was booked.
    Callback {
        /// The number to call back.
        number: String,
    },
    /// A message is being recorded.
    Message {
        /// Longest recording.
        max: Duration,
    },
    /// Hung up by a `hangup` node.
    Hangup,
}

/// Where in the current node the session is.
#[derive(Debug, Clone)]
enum Phase {
    /// A `play` node's prompt; then `next`.
    Play { next: String, interruptible: bool },
    /// A menu: its prompt plays, or the session waits for a key.
    Menu,
    /// A `collect` node gathering digits.
    Collect { digits: String },
    /// A callback reading a number back and waiting for 1 (yes) or 2 (another number).
    Confirm { number: String },
    /// A callback gathering another number.
    Enter { digits: String },
    /// The prompt before a node that ends the session; then the outcome.
    Ending(Outcome),
    /// The callback's closing prompt; then hang up.
    Closing,
    /// Nothing more to do.
    Done,
}

/// Nodes entered without a key or timeout in between before the session gives up. The checker
/// refuses loops that wait for no key, so only a menu built around the checks could reach this.
const MAX_HOPS: u32 = 64;
/// Digits kept for type-ahead; more are dropped (a flood of events cannot grow memory).
const MAX_TYPEAHEAD: usize = 32;

/// One caller in a menu. See the module documentation for the contract.
#[derive(Debug)]
pub struct IvrSession {
    menu: Arc<Menu>,
    pending_start: Option<String>,
    t0: Instant,
    wall0: DateTime<Utc>,
    caller: Option<String>,
    node: String,
    phase: Phase,
    playing: bool,
    deadline: Option<Instant>,
    attempt: u32,
    typeahead: VecDeque<char>,
    actions: VecDeque<Action>,
    hops: u32,
    generation: u64,
    path: Vec<String>,
    category: Option<String>,
    priority: i32,
    variables: BTreeMap<String, String>,
    outcome: Option<Outcome>,
}

fn is_key(d: char) -> bool {
    matches!(d, '0'..='9' | '*' | '#' | 'A'..='D')
}

impl IvrSession {
    /// A session that starts at node `start` at `now`; `wallclock` is the civil time at `now`
    /// (for schedules; it advances with `now`). The start node is entered on the first call of
    /// any other method, so [`IvrSession::with_caller`] can come first.
    pub fn new(menu: Arc<Menu>, start: &str, now: Instant, wallclock: DateTime<Utc>) -> Self {
        IvrSession {
            menu,
            pending_start: Some(start.to_owned()),
            t0: now,
            wall0: wallclock,
            caller: None,
            node: start.to_owned(),
            phase: Phase::Done,
            playing: false,
            deadline: None,
            attempt: 0,
            typeahead: VecDeque::new(),
            actions: VecDeque::new(),
            hops: 0,
            generation: 0,
            path: Vec::new(),
            category: None,
            priority: 0,
            variables: BTreeMap::new(),
            outcome: None,
        }
    }

    /// The caller's number (From / P-Asserted-Identity), offered by callback nodes.
    pub fn with_caller(mut self, number: impl Into<String>) -> Self {
        self.caller = Some(number.into());
        self
    }

    /// A key pressed by the caller (`0`-`9`, `*`, `#`, `A`-`D`; anything else is ignored).
    pub fn handle_digit(&mut self, now: Instant, digit: char) {
        self.begin();
        if !is_key(digit) {
            return;
        }
        self.hops = 0;
        match self.phase.clone() {
            Phase::Play {
                next,
                interruptible,
            } => {
                if self.typeahead.len() < MAX_TYPEAHEAD {
                    self.typeahead.push_back(digit);
                }
                if interruptible {
                    self.stop();
                    self.enter(now, next);
                }
            }
            Phase::Menu => {
                self.stop();
                self.menu_key(now, digit);
            }
            Phase::Collect { .. } | Phase::Enter { .. } => {
                self.stop();
                self.digit(now, digit);
            }
            Phase::Confirm { number } => {
                self.stop();
                self.confirm_key(now, number, digit);
            }
            Phase::Ending(outcome) => {
                self.stop();
                self.finish(outcome);
            }
            Phase::Closing | Phase::Done => {}
        }
    }

    /// The last [`Action::Play`] has played to its end.
    pub fn handle_playback_finished(&mut self, now: Instant) {
        self.begin();
        if !self.playing {
            return;
        }
        self.playing = false;
        self.after_playback(now);
    }

    /// The time given by [`IvrSession::poll_timeout`] has come (earlier calls do nothing).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.begin();
        match self.deadline {
            Some(t) if now >= t => {}
            _ => return,
        }
        self.deadline = None;
        self.hops = 0;
        let id = self.node.clone();
        match self.phase.clone() {
            Phase::Menu | Phase::Confirm { .. } => {
                self.step(format!("{id}:timeout"));
                let extra = match self.menu.node(&id) {
                    Some(Node::Menu(m)) => m.no_input.clone(),
                    _ => Vec::new(),
                };
                self.retry(now, extra);
            }
            Phase::Collect { digits } | Phase::Enter { digits } => {
                let (min, _, _) = self.digit_rules();
                if !digits.is_empty() && digits.len() >= min {
                    self.accept(now, digits);
                } else if digits.is_empty() {
                    self.step(format!("{id}:timeout"));
                    self.retry(now, Vec::new());
                } else {
                    self.step(format!("{id}:too short"));
                    let extra = self.invalid_prompts();
                    self.retry(now, extra);
                }
            }
            _ => {}
        }
    }

    /// The next thing to do, or `None` when everything so far has been handed out.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.begin();
        self.actions.pop_front()
    }

    /// When to call [`IvrSession::handle_timeout`], if the session waits for a key.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        self.begin();
        self.deadline
    }

    /// Whether the session is over (queue, transfer, recording, hang-up); a booked callback's
    /// session is over once its closing prompt has played.
    /// The number of the `transfer` node the session ended at could not be reached: the
    /// caller goes to the node's fallback (its own, or the file's `operator`). `false` when the
    /// session did not end at a transfer or it has no fallback (the call should end).
    pub fn transfer_failed(&mut self, now: Instant) -> bool {
        self.begin();
        if !matches!(self.outcome, Some(Outcome::Transfer { .. })) {
            return false;
        }
        let menu = self.menu.clone();
        let Some(Node::Transfer(t)) = menu.node(&self.node) else {
            return false;
        };
        let Some(next) = t.fallback.clone() else {
            return false;
        };
        self.step(format!("{}:failed", self.node));
        self.outcome = None;
        self.enter(now, next);
        true
    }

    pub fn is_finished(&self) -> bool {
        matches!(self.phase, Phase::Done) && self.pending_start.is_none()
    }

    /// Where the call ended up, once it has.
    pub fn outcome(&self) -> Option<&Outcome> {
        self.outcome.as_ref()
    }

    /// The steps so far (as in [`Action::AppendPath`]).
    pub fn path(&self) -> &[String] {
        &self.path
    }

    /// The appeal's category so far.
    pub fn category(&self) -> Option<&str> {
        self.category.as_deref()
    }

    /// The queue priority so far.
    pub fn priority(&self) -> i32 {
        self.priority
    }

    /// Variables set so far.
    pub fn variables(&self) -> &BTreeMap<String, String> {
        &self.variables
    }

    /// The node the caller is in.
    pub fn current_node(&self) -> &str {
        &self.node
    }

    /// Whether a prompt is playing (an [`Action::Play`] was handed out and has not ended).
    pub fn is_playing(&self) -> bool {
        self.playing
    }

    /// Civil time at `now`.
    pub fn wallclock(&self, now: Instant) -> DateTime<Utc> {
        let since = now.saturating_duration_since(self.t0);
        self.wall0 + chrono::Duration::from_std(since).unwrap_or(chrono::TimeDelta::zero())
    }

    // -- inside -------------------------------------------------------------------------------

    fn begin(&mut self) {
        if let Some(start) = self.pending_start.take() {
            self.enter(self.t0, start);
        }
    }

    fn step(&mut self, s: String) {
        self.path.push(s.clone());
        self.actions.push_back(Action::AppendPath(s));
    }

    fn stop(&mut self) {
        if self.playing {
            self.playing = false;
            self.actions.push_back(Action::StopPlayback);
        }
    }

    fn play(&mut self, now: Instant, prompts: Vec<PromptRef>) {
        self.deadline = None;
        if prompts.is_empty() {
            self.after_playback(now);
        } else {
            self.playing = true;
            self.actions.push_back(Action::Play(prompts));
        }
    }

    fn end(&mut self, outcome: Option<Outcome>) {
        self.deadline = None;
        self.typeahead.clear();
        if outcome.is_some() {
            self.outcome = outcome;
        }
        self.phase = Phase::Done;
    }

    fn enter(&mut self, now: Instant, id: String) {
        self.hops += 1;
        if self.hops > MAX_HOPS {
            self.actions.push_back(Action::Hangup);
            self.end(Some(Outcome::Hangup));
            return;
        }
        self.generation += 1;
        self.attempt = 0;
        self.deadline = None;
        self.node = id.clone();
        self.step(id.clone());
        let menu = self.menu.clone();
        let Some(node) = menu.node(&id) else {
            // `load` refuses unknown nodes; this is only reached by a menu it did not make.
            self.actions.push_back(Action::Hangup);
            self.end(Some(Outcome::Hangup));
            return;
        };
        match node {
            Node::Play(p) => {
                self.phase = Phase::Play {
                    next: p.next.clone(),
                    interruptible: p.interruptible,
                };
                if p.interruptible && !self.typeahead.is_empty() {
                    self.enter(now, p.next.clone());
                } else {
                    self.play(now, p.prompts.clone());
                }
            }
            Node::Menu(m) => {
                self.phase = Phase::Menu;
                match self.typeahead.pop_front() {
                    Some(d) => self.menu_key(now, d),
                    None => self.play(now, m.prompts.clone()),
                }
            }
            Node::Collect(c) => {
                self.phase = Phase::Collect {
                    digits: String::new(),
                };
                self.feed(now, c.prompts.clone());
            }
            Node::Schedule(s) => {
                let verdict = s.timetable.verdict(self.wallclock(now));
                self.step(format!("{id}:{verdict}"));
                let to = if verdict == crate::schedule::Verdict::Open {
                    &s.open
                } else {
                    &s.closed
                };
                self.enter(now, to.clone());
            }
            Node::Set(s) => {
                if let Some(c) = &s.category {
                    self.category = Some(c.clone());
                    self.actions.push_back(Action::SetCategory(c.clone()));
                }
                if let Some(p) = s.priority {
                    self.priority = p;
                    self.actions.push_back(Action::SetPriority(p));
                }
                for (k, v) in &s.vars {
                    self.set_var(k.clone(), v.clone());
                }
                self.enter(now, s.next.clone());
            }
            Node::Queue(q) => {
                self.phase = Phase::Ending(Outcome::Queue {
                    queue: q.queue.clone(),
                    priority: q.priority.unwrap_or(self.priority),
                });
                self.play(now, q.prompts.clone());
            }
            Node::Transfer(t) => {
                self.phase = Phase::Ending(Outcome::Transfer {
                    number: t.number.clone(),
                });
                self.play(now, t.prompts.clone());
            }
            Node::Message(m) => {
                self.phase = Phase::Ending(Outcome::Message { max: m.max });
                self.play(now, m.prompts.clone());
            }
            Node::Hangup(prompts) => {
                self.phase = Phase::Ending(Outcome::Hangup);
                self.play(now, prompts.clone());
            }
            Node::Callback(_) => {
                self.typeahead.clear();
                match self.caller_number() {
                    Some(n) => self.confirm(now, n),
                    None => self.enter_number(now),
                }
            }
            Node::Goto(to) => self.enter(now, to.clone()),
        }
    }

    fn set_var(&mut self, name: String, value: String) {
        self.variables.insert(name.clone(), value.clone());
        self.actions.push_back(Action::SetVariable { name, value });
    }

    fn after_playback(&mut self, now: Instant) {
        let menu = self.menu.clone();
        let node = menu.node(&self.node);
        match (self.phase.clone(), node) {
            (Phase::Play { next, .. }, _) => self.enter(now, next),
            (Phase::Menu, Some(Node::Menu(m))) => self.deadline = Some(now + m.timeout),
            (Phase::Collect { digits }, Some(Node::Collect(c))) => {
                self.deadline = Some(
                    now + if digits.is_empty() {
                        c.timeout
                    } else {
                        c.digit_timeout
                    },
                );
            }
            (Phase::Confirm { .. }, Some(Node::Callback(c))) => {
                self.deadline = Some(now + c.timeout)
            }
            (Phase::Enter { digits }, Some(Node::Callback(c))) => {
                self.deadline = Some(
                    now + if digits.is_empty() {
                        c.timeout
                    } else {
                        c.digit_timeout
                    },
                );
            }
            (Phase::Ending(o), _) => self.finish(o),
            (Phase::Closing, _) => {
                self.actions.push_back(Action::Hangup);
                self.end(None);
            }
            _ => {}
        }
    }

    fn finish(&mut self, outcome: Outcome) {
        self.actions.push_back(match &outcome {
            Outcome::Queue { queue, priority } => Action::EnterQueue {
                queue: queue.clone(),
                priority: *priority,
            },
            Outcome::Transfer { number } => Action::Transfer {
                number: number.clone(),
            },
            Outcome::Message { max } => Action::StartRecording { max: *max },
            Outcome::Callback { number } => Action::Callback {
                number: number.clone(),
                queue: None,
            },
            Outcome::Hangup => Action::Hangup,
        });
        self.end(Some(outcome));
    }

    fn menu_key(&mut self, now: Instant, d: char) {
        let menu = self.menu.clone();
        let Some(Node::Menu(m)) = menu.node(&self.node) else {
            return;
        };
        let id = self.node.clone();
        self.deadline = None;
        if let Some(to) = m.choices.get(&d) {
            self.step(format!("{id}:{d}"));
            self.enter(now, to.clone());
        } else if d == '0' && m.zero {
            self.step(format!("{id}:0"));
            self.enter(now, m.operator.clone());
        } else if d == '*' && m.star {
            self.step(format!("{id}:*"));
            self.play(now, m.prompts.clone());
        } else {
            self.step(format!("{id}:{d} invalid"));
            self.typeahead.clear();
            self.retry(now, m.invalid.clone());
        }
    }

    /// Another try after a timeout or a wrong key, or the way out after the last one.
    fn retry(&mut self, now: Instant, extra: Vec<PromptRef>) {
        let menu = self.menu.clone();
        let id = self.node.clone();
        let retries = match menu.node(&id) {
            Some(Node::Menu(m)) => m.retries,
            Some(Node::Collect(c)) => c.retries,
            Some(Node::Callback(c)) => c.retries,
            _ => 0,
        };
        self.attempt += 1;
        if self.attempt <= retries {
            self.replay(now, extra);
            return;
        }
        self.step(format!("{id}:no more tries"));
        match (menu.node(&id), self.phase.clone()) {
            (Some(Node::Menu(m)), _) => self.enter(now, m.operator.clone()),
            (Some(Node::Collect(c)), _) => self.enter(now, c.fallback.clone()),
            (Some(Node::Callback(_)), Phase::Confirm { number }) => self.booked(now, number),
            (Some(Node::Callback(c)), _) => match self.caller_number() {
                Some(n) => self.booked(now, n),
                None => self.enter(now, c.fallback.clone()),
            },
            _ => {}
        }
    }

    /// The current node's question again, after `extra`.
    fn replay(&mut self, now: Instant, mut extra: Vec<PromptRef>) {
        let menu = self.menu.clone();
        match (menu.node(&self.node), self.phase.clone()) {
            (Some(Node::Menu(m)), _) => extra.extend(m.prompts.iter().cloned()),
            (Some(Node::Collect(c)), _) => {
                self.phase = Phase::Collect {
                    digits: String::new(),
                };
                extra.extend(c.prompts.iter().cloned());
            }
            (Some(Node::Callback(c)), Phase::Confirm { number }) => {
                extra.extend(self.read_back(c, &number));
            }
            (Some(Node::Callback(c)), _) => {
                self.phase = Phase::Enter {
                    digits: String::new(),
                };
                extra.extend(c.enter.iter().cloned());
            }
            _ => {}
        }
        self.play(now, extra);
    }

    /// (min digits, max digits, `#` ends) for the collect or callback entry in progress.
    fn digit_rules(&self) -> (usize, usize, bool) {
        match self.menu.node(&self.node) {
            Some(Node::Collect(c)) => (c.min_digits, c.max_digits, c.terminator),
            Some(Node::Callback(c)) => (c.min_digits, c.max_digits, true),
            _ => (1, 1, true),
        }
    }

    fn invalid_prompts(&self) -> Vec<PromptRef> {
        match self.menu.node(&self.node) {
            Some(Node::Collect(c)) => c.invalid.clone(),
            _ => Vec::new(),
        }
    }

    fn digit_timeout(&self) -> Duration {
        match self.menu.node(&self.node) {
            Some(Node::Collect(c)) => c.digit_timeout,
            Some(Node::Callback(c)) => c.digit_timeout,
            _ => Duration::from_secs(5),
        }
    }

    /// Type-ahead digits into a collect node, or its prompt when there are none.
    fn feed(&mut self, now: Instant, prompts: Vec<PromptRef>) {
        let generation = self.generation;
        while self.generation == generation {
            let Some(d) = self.typeahead.pop_front() else {
                break;
            };
            self.digit(now, d);
        }
        if self.generation == generation
            && !self.playing
            && self.deadline.is_none()
            && matches!(&self.phase, Phase::Collect { digits } if digits.is_empty())
        {
            self.play(now, prompts);
        }
    }

    /// One digit of a collect or a keyed-in callback number.
    fn digit(&mut self, now: Instant, d: char) {
        let (min, max, terminator) = self.digit_rules();
        let mut digits = match &self.phase {
            Phase::Collect { digits } | Phase::Enter { digits } => digits.clone(),
            _ => return,
        };
        let id = self.node.clone();
        self.deadline = None;
        if d == '#' && terminator {
            if !digits.is_empty() && digits.len() >= min {
                self.accept(now, digits);
            } else {
                self.step(format!("{id}:too short"));
                self.typeahead.clear();
                let extra = self.invalid_prompts();
                self.retry(now, extra);
            }
        } else if d == '*' {
            self.step(format!("{id}:*"));
            self.replay(now, Vec::new());
        } else if d.is_ascii_digit() {
            digits.push(d);
            if digits.len() >= max {
                self.accept(now, digits);
            } else {
                self.set_digits(digits);
                self.deadline = Some(now + self.digit_timeout());
            }
        } else {
            // A-D or an unused #: not part of a number; keep waiting.
            self.set_digits(digits);
            self.deadline = Some(now + self.digit_timeout());
        }
    }

    fn set_digits(&mut self, d: String) {
        match &mut self.phase {
            Phase::Collect { digits } | Phase::Enter { digits } => *digits = d,
            _ => {}
        }
    }

    fn accept(&mut self, now: Instant, digits: String) {
        let menu = self.menu.clone();
        let id = self.node.clone();
        match (menu.node(&id), self.phase.clone()) {
            (Some(Node::Collect(c)), _) => {
                self.step(format!("{id}:entered"));
                self.set_var(c.variable.clone(), digits);
                self.enter(now, c.next.clone());
            }
            (Some(Node::Callback(_)), Phase::Enter { .. }) => {
                self.step(format!("{id}:entered"));
                self.attempt = 0;
                self.confirm(now, digits);
            }
            _ => {}
        }
    }

    fn caller_number(&self) -> Option<String> {
        let n = self.caller.as_deref()?;
        let digits = n.strip_prefix('+').unwrap_or(n);
        (digits.len() >= 5 && digits.chars().all(|c| c.is_ascii_digit())).then(|| n.to_owned())
    }

    fn read_back(&self, c: &crate::menu::CallbackNode, number: &str) -> Vec<PromptRef> {
        c.intro
            .iter()
            .cloned()
            .chain(
                number
                    .chars()
                    .filter(char::is_ascii_digit)
                    .map(|d| PromptRef(format!("numbers/{d}"))),
            )
            .chain(c.confirm.iter().cloned())
            .collect()
    }

    fn confirm(&mut self, now: Instant, number: String) {
        let menu = self.menu.clone();
        let Some(Node::Callback(c)) = menu.node(&self.node) else {
            return;
        };
        let prompts = self.read_back(c, &number);
        self.phase = Phase::Confirm { number };
        self.play(now, prompts);
    }

    fn enter_number(&mut self, now: Instant) {
        let menu = self.menu.clone();
        let Some(Node::Callback(c)) = menu.node(&self.node) else {
            return;
        };
        self.phase = Phase::Enter {
            digits: String::new(),
        };
        self.play(now, c.enter.clone());
    }

    fn confirm_key(&mut self, now: Instant, number: String, d: char) {
        let id = self.node.clone();
        self.deadline = None;
        match d {
            '1' => {
                self.step(format!("{id}:1"));
                self.booked(now, number);
            }
            '2' => {
                self.step(format!("{id}:2"));
                self.attempt = 0;
                self.enter_number(now);
            }
            '*' => {
                self.step(format!("{id}:*"));
                self.replay(now, Vec::new());
            }
            _ => {
                self.step(format!("{id}:{d} invalid"));
                self.retry(now, Vec::new());
            }
        }
    }

    fn booked(&mut self, now: Instant, number: String) {
        let menu = self.menu.clone();
        let (done, queue) = match menu.node(&self.node) {
            Some(Node::Callback(c)) => (c.done.clone(), c.queue.clone()),
            _ => (Vec::new(), None),
        };
        self.actions.push_back(Action::Callback {
            number: number.clone(),
            queue,
        });
        self.outcome = Some(Outcome::Callback { number });
        self.phase = Phase::Closing;
        self.play(now, done);
    }
}
