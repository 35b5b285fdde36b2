//! The queues as a part of call control ([`Queues`]): which call each ACD caller is (the ids
//! it gives out), whether returning callers are looked up, and the lines' working hours told
//! to the ACD; and [`QueueState`], a caller's part in the queues, kept in each call. The
//! waiting dialogue itself is `crate::waiting`; the router's side of a waiting caller (the
//! ACD's actions, joins, the returning-caller lookup) is `queue.rs`.

use super::*;

/// The ACD's callers and the queues' hours (a field of [`Core`]).
pub(super) struct Queues {
    /// Callers in the ACD: their id → the call's Call-ID.
    callers: HashMap<CallerId, String>,
    /// The last [`CallerId`] given out.
    next_caller: u64,
    /// Whether returning-caller lookups are answered; without, callers join their queue at
    /// once.
    returning: bool,
    /// When the lines' working hours are next looked at for the queues.
    hours_next: Instant,
    /// Each queue's open/closed as last told to the ACD.
    hours_applied: HashMap<String, bool>,
}

/// A caller's part in the queues.
#[derive(Default)]
pub(super) struct QueueState {
    /// The queue the call waits in (counted in [`Stats::queue_waits`]).
    queued: Option<String>,
    /// The queue the caller last left in the ACD (answered there): where a failed transfer
    /// puts them back.
    last: Option<String>,
    /// The call's id in the ACD while it is there (waiting or being offered).
    acd_caller: Option<CallerId>,
    /// When the caller entered the queue (the wait an operator's answer reports).
    since: Option<Instant>,
    /// The caller's priority in the ACD (kept when a transfer puts it back in a queue).
    priority: u8,
    /// What the caller hears and may do while in a queue (`crate::waiting`), from the queue
    /// on until an operator answers.
    waiting: Option<Waiting>,
}

impl QueueState {
    /// The queue the caller waits in.
    pub fn queued(&self) -> Option<&str> {
        self.queued.as_deref()
    }

    /// The queue the caller waits in, or else the one they last left in the ACD.
    pub fn queued_or_last(&self) -> Option<&str> {
        self.queued.as_deref().or(self.last.as_deref())
    }

    /// The queue the caller last left in the ACD (answered there).
    pub fn last(&self) -> Option<&str> {
        self.last.as_deref()
    }

    /// The caller now waits in `queue`: the queue they were in, if any.
    pub fn wait_in(&mut self, queue: &str) -> Option<String> {
        self.queued.replace(queue.to_owned())
    }

    /// The caller no longer waits in a queue: the one they were in.
    pub fn stop_waiting(&mut self) -> Option<String> {
        self.queued.take()
    }

    /// The caller left `queue` in the ACD (an operator answered there, or a callback…).
    pub fn left_acd_from(&mut self, queue: String) {
        self.last = Some(queue);
    }

    /// The call's id in the ACD while it is there.
    pub fn acd_caller(&self) -> Option<CallerId> {
        self.acd_caller
    }

    /// The ACD told that the caller left it.
    pub fn out_of_acd(&mut self) {
        self.acd_caller = None;
    }

    /// The caller's priority in the ACD.
    pub fn priority(&self) -> u8 {
        self.priority
    }

    /// How long the caller has waited at `now` (zero outside a queue).
    pub fn waited(&self, now: Instant) -> Duration {
        self.since
            .map(|s| now.saturating_duration_since(s))
            .unwrap_or_default()
    }

    /// When the caller entered the queue.
    pub fn since(&self) -> Option<Instant> {
        self.since
    }

    /// The wait starts at `now` unless it runs already (the menu's queue node).
    pub fn wait_from(&mut self, now: Instant) {
        self.since.get_or_insert(now);
    }

    /// The wait starts afresh at `now` (a transfer into a queue).
    pub fn wait_anew(&mut self, now: Instant) {
        self.since = Some(now);
    }

    /// The caller's waiting dialogue, while in a queue.
    pub fn waiting(&self) -> Option<&Waiting> {
        self.waiting.as_ref()
    }

    pub fn waiting_mut(&mut self) -> Option<&mut Waiting> {
        self.waiting.as_mut()
    }

    /// The waiting dialogue starts for `caller`'s number, unless it runs already.
    pub fn start_waiting(&mut self, caller: &str) {
        if self.waiting.is_none() {
            self.waiting = Some(Waiting::new(caller));
        }
    }

    /// The waiting dialogue ends (an operator answered): whether there was one.
    pub fn end_waiting(&mut self) -> bool {
        self.waiting.take().is_some()
    }
}

impl Queues {
    pub fn new(now: Instant) -> Queues {
        Queues {
            callers: HashMap::new(),
            next_caller: 0,
            returning: false,
            hours_next: now,
            hours_applied: HashMap::new(),
        }
    }

    /// The call the ACD's `caller` is.
    pub fn call_of(&self, caller: CallerId) -> Option<&str> {
        self.callers.get(&caller).map(String::as_str)
    }

    /// The ACD's `caller` left it: the call it was (forgotten here).
    pub fn left(&mut self, caller: CallerId) -> Option<String> {
        self.callers.remove(&caller)
    }

    /// The call whose part in the queues is `state` is no longer an ACD caller (it left, or
    /// a callback keeps its place): its id, forgotten here and on the call.
    pub fn leave_acd(&mut self, state: &mut QueueState) -> Option<CallerId> {
        let id = state.acd_caller.take()?;
        self.callers.remove(&id);
        Some(id)
    }

    pub fn set_returning_lookups(&mut self, on: bool) {
        self.returning = on;
    }

    /// Whether the driver answers returning-caller lookups.
    pub fn looks_up_returning(&self) -> bool {
        self.returning
    }

    /// The one place a call becomes an ACD caller: `caller_joined` with a fresh [`CallerId`],
    /// and the call's `state` and the id map told.
    #[allow(clippy::too_many_arguments)] // the ACD's arguments, and whom to tell
    pub fn join(
        &mut self,
        acd: &mut Acd,
        now: Instant,
        call_id: &str,
        state: &mut QueueState,
        queue: &str,
        priority: u8,
        returning: Option<&OperatorId>,
    ) -> Result<(), AcdError> {
        self.next_caller += 1;
        let id = CallerId(self.next_caller);
        acd.caller_joined(now, id, &QueueId::from(queue), priority, returning)?;
        state.priority = priority;
        state.acd_caller = Some(id);
        self.callers.insert(id, call_id.to_string());
        Ok(())
    }

    /// When the working hours are next looked at.
    pub fn hours_due(&self) -> Instant {
        self.hours_next
    }

    /// Every [`HOURS_EVERY`]: tells the ACD which queues are within their lines' working hours
    /// (`Acd::set_open`, when it changes), so callbacks are dialled only then.
    pub fn check_hours(
        &mut self,
        now: Instant,
        wall: chrono::DateTime<chrono::Utc>,
        acd: &mut Acd,
        lines: &[LineSettings],
    ) {
        if now < self.hours_next {
            return;
        }
        self.hours_next = now + HOURS_EVERY;
        for (queue, open) in queue_hours(lines, wall) {
            if self.hours_applied.get(&queue) == Some(&open) {
                continue;
            }
            match acd.set_open(now, &QueueId::from(queue.as_str()), open) {
                Ok(()) => {
                    info!(%queue, open, "queue hours for callbacks");
                    self.hours_applied.insert(queue, open);
                }
                Err(e) => debug!(error = %e, %queue, "queue hours not taken by the ACD"),
            }
        }
    }

    /// After a burst the id map gives its room back.
    pub fn give_back_room(&mut self) {
        shrink_if_sparse(&mut self.callers);
    }
}

/// How often the lines' working hours are looked at for the queues' callback hours.
pub(crate) const HOURS_EVERY: Duration = Duration::from_secs(30);

/// The line's working hours: its menu's `schedule` node (the start node when it is one, else
/// the first), or none for a line without a menu or a schedule.
fn line_hours(line: &LineSettings) -> Option<&ivr::schedule::Timetable> {
    let menu = line.menu.as_ref()?;
    let start = match menu.node(&line.start) {
        Some(ivr::Node::Schedule(s)) => Some(&s.timetable),
        _ => None,
    };
    start.or_else(|| {
        menu.nodes().values().find_map(|n| match n {
            ivr::Node::Schedule(s) => Some(&s.timetable),
            _ => None,
        })
    })
}

/// Whether each queue is within working hours at `at`: a queue is open when any line with
/// hours whose menu sends callers to it is open. Queues only lines without hours reach are
/// not listed (they stay open).
pub(crate) fn queue_hours(
    lines: &[LineSettings],
    at: chrono::DateTime<chrono::Utc>,
) -> std::collections::BTreeMap<String, bool> {
    let mut out = std::collections::BTreeMap::new();
    for line in lines {
        let (Some(hours), Some(menu)) = (line_hours(line), line.menu.as_ref()) else {
            continue;
        };
        let open = hours.verdict(at) == ivr::schedule::Verdict::Open;
        for node in menu.nodes().values() {
            if let ivr::Node::Queue(q) = node {
                *out.entry(q.queue.clone()).or_insert(false) |= open;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A line whose menu starts with `mon-fri 09:00-18:00` (Novosibirsk) and sends callers to
    /// `q1` or `q2`; a second line without hours reaches `q3`.
    fn lines(dir: &std::path::Path) -> Vec<LineSettings> {
        std::fs::create_dir_all(dir.join("p")).unwrap();
        std::fs::write(dir.join("p/prompts.toml"), "").unwrap();
        let load = |name: &str, text: &str, start: &str| {
            let file = dir.join(name);
            std::fs::write(&file, text).unwrap();
            let cx = ivr::Context {
                start,
                start_at: None,
                queues: None,
            };
            LineSettings {
                id: name.into(),
                numbers: vec![],
                name: name.into(),
                ring: Duration::ZERO,
                greeting: None,
                dtmf: crate::DtmfMode::Auto,
                record: false,
                menu: Some(Arc::new(ivr::load(&[file], &cx).unwrap())),
                start: start.into(),
            }
        };
        vec![
            load(
                "hours.toml",
                "prompts = \"p\"\noperator = \"q1\"\n\
                 [[schedule]]\nid = \"hours\"\ntimezone = \"Asia/Novosibirsk\"\n\
                 hours = [\"mon-fri 09:00-18:00\"]\nopen = \"q1\"\nclosed = \"q2\"\n\
                 [[queue]]\nid = \"q1\"\nqueue = \"q1\"\n\
                 [[queue]]\nid = \"q2\"\nqueue = \"q2\"\n",
                "hours",
            ),
            load(
                "always.toml",
                "prompts = \"p\"\noperator = \"q3\"\n\
                 [[queue]]\nid = \"q3\"\nqueue = \"q3\"\n",
                "q3",
            ),
        ]
    }

    #[test]
    fn queues_follow_the_hours_of_the_lines_that_reach_them() {
        let dir = tempfile::tempdir().unwrap();
        let lines = lines(dir.path());
        let at = |s: &str| {
            chrono::DateTime::parse_from_rfc3339(s)
                .unwrap()
                .with_timezone(&chrono::Utc)
        };
        // Monday 10:00 in Novosibirsk (UTC+7): open
        let open = queue_hours(&lines, at("2026-11-23T10:00:00+07:00"));
        assert_eq!(open.get("q1"), Some(&true));
        assert_eq!(open.get("q2"), Some(&true));
        // Monday 20:00 and Sunday noon: closed; q3 only a line without hours reaches
        for closed in ["2026-11-23T20:00:00+07:00", "2026-11-22T12:00:00+07:00"] {
            let h = queue_hours(&lines, at(closed));
            assert_eq!(h.get("q1"), Some(&false), "{closed}");
            assert_eq!(h.get("q2"), Some(&false), "{closed}");
            assert_eq!(h.get("q3"), None, "{closed}");
        }
    }
}
