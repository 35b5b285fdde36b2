//! The workspace's live picture, fed by call control's live events (never by polling the
//! database): each operator's state and current offer, each queue's waiting callers and
//! today's answered / abandoned / service level. `GET /events` (admin/events.rs) sends a
//! snapshot of it, then the changes.
//!
//! The gateway's driver sends [`gateway::live::LiveEvent`]s into a `tokio::sync::broadcast`
//! (never blocking the driver); [`spawn`] applies them to [`Live`] and puts out
//! [`PageEvent`]s — JSON rendered once for every page — on a second broadcast the pages
//! subscribe to. A queue's changes are put out at most every [`QUEUE_FLUSH`] (one event with
//! the whole queue, timestamped with its oldest change), so a burst of joins costs one event.
//! Subscribing and taking the snapshot happen under the state's lock, so a page misses no
//! change and gets none twice; a page that lags behind the broadcast gets a fresh snapshot.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use gateway::live::{
    LiveEvent, OfferLive, OfferPhase, OperatorLive, QueueChange, QueueExit, Roster, RosterOperator,
    RosterQueue,
};
use serde_json::json;
use tokio::sync::broadcast;

use crate::labels::Labels;

/// How often a queue's changes are put out at most.
pub const QUEUE_FLUSH: Duration = Duration::from_millis(100);

/// Events kept for pages that read slowly before they lag (then get a snapshot).
const PAGE_CAPACITY: usize = 4096;

/// One change for the pages, rendered once.
#[derive(Debug)]
pub struct PageEvent {
    /// `operator`, `queue` or `offer` (the SSE event name).
    pub kind: &'static str,
    /// The JSON supervisors and admins get.
    pub full: String,
    /// The JSON operators get, when it differs (a queue without callers' numbers).
    pub masked: Option<String>,
    /// The operator an `operator` or `offer` event is about.
    pub operator: Option<String>,
    /// The queue a `queue` event is about.
    pub queue: Option<String>,
}

/// Who a stream is for.
#[derive(Debug, Clone)]
pub enum Audience {
    /// Supervisors and admins: everything, callers' numbers included.
    All,
    /// An operator: their own `operator` and `offer` events and their skill queues' events.
    Operator { id: String, queues: Vec<String> },
}

impl Audience {
    /// The event's JSON for this audience, `None` when it is not theirs.
    pub fn render<'a>(&self, ev: &'a PageEvent) -> Option<&'a str> {
        match self {
            Audience::All => Some(&ev.full),
            Audience::Operator { id, queues } => {
                let theirs = match ev.kind {
                    "queue" => ev.queue.as_ref().is_some_and(|q| queues.contains(q)),
                    _ => ev.operator.as_deref() == Some(id.as_str()),
                };
                theirs.then(|| ev.masked.as_deref().unwrap_or(&ev.full))
            }
        }
    }
}

/// What the picture starts from: the configuration's operators and queues.
#[derive(Debug, Clone)]
pub struct LiveSetup {
    /// (login, display name, skill queues).
    pub operators: Vec<(String, String, Vec<String>)>,
    /// (name, title).
    pub queues: Vec<(String, String)>,
    /// `[reports] service_level_seconds`.
    pub service_level_seconds: i64,
    /// `[reports] timezone`: where "today" begins.
    pub tz: FixedOffset,
    /// Queue titles and the voice menus: the callers' paths in words.
    pub labels: Arc<Labels>,
}

impl Default for LiveSetup {
    fn default() -> Self {
        LiveSetup {
            operators: Vec::new(),
            queues: Vec::new(),
            service_level_seconds: 20,
            tz: chrono::Offset::fix(&Utc),
            labels: Arc::default(),
        }
    }
}

struct OperatorView {
    name: String,
    skills: Vec<String>,
    last: Option<OperatorLive>,
    /// The offer ringing or answered now.
    offer: Option<OfferLive>,
}

struct Waiter {
    appeal: String,
    call: String,
    since: DateTime<Utc>,
    path: Vec<String>,
    caller: String,
}

#[derive(Default)]
struct QueueView {
    title: String,
    waiting: Vec<Waiter>,
    answered: u64,
    abandoned: u64,
    within: u64,
}

struct State {
    operators: BTreeMap<String, OperatorView>,
    queues: BTreeMap<String, QueueView>,
    target_s: i64,
    tz: FixedOffset,
    day: Option<NaiveDate>,
    /// Queues changed since the last flush, with their oldest change.
    dirty: BTreeMap<String, DateTime<Utc>>,
    labels: Arc<Labels>,
}

/// The live picture and the pages' broadcast. Cheap to share (`Arc`).
pub struct Live {
    state: Mutex<State>,
    pages: broadcast::Sender<Arc<PageEvent>>,
    /// Cancelled at shutdown: every page's stream ends (so the admin server can stop).
    closed: tokio_util::sync::CancellationToken,
}

impl Live {
    pub fn new(setup: LiveSetup) -> Arc<Live> {
        let (pages, _) = broadcast::channel(PAGE_CAPACITY);
        let operators = setup
            .operators
            .into_iter()
            .map(|(id, name, skills)| {
                let view = OperatorView {
                    name,
                    skills,
                    last: None,
                    offer: None,
                };
                (id, view)
            })
            .collect();
        let queues = setup
            .queues
            .into_iter()
            .map(|(id, title)| {
                let view = QueueView {
                    title,
                    ..QueueView::default()
                };
                (id, view)
            })
            .collect();
        Arc::new(Live {
            state: Mutex::new(State {
                operators,
                queues,
                target_s: setup.service_level_seconds,
                tz: setup.tz,
                day: None,
                dirty: BTreeMap::new(),
                labels: setup.labels,
            }),
            pages,
            closed: Default::default(),
        })
    }

    /// The names of the configuration now (queue titles, the voice menus' choices).
    pub fn labels(&self) -> Arc<Labels> {
        Arc::clone(&self.lock().labels)
    }

    /// A reloaded configuration: the service level target and the menus' words follow it,
    /// and every page gets the queues again at once with them. Operators' names and skills
    /// and queues' titles come from call control's [`LiveEvent::Roster`] after the same
    /// reload (one way in for them).
    pub fn reconfigure(&self, setup: LiveSetup) {
        let mut st = self.lock();
        st.target_s = setup.service_level_seconds;
        st.labels = setup.labels;
        let now = Utc::now();
        for (id, q) in &st.queues {
            let _ = self.pages.send(Arc::new(queue_event(&st, id, q, now, now)));
        }
    }

    /// Ends every page's stream (shutdown).
    pub fn close(&self) {
        self.closed.cancel();
    }

    /// Resolves once [`Live::close`] was called.
    pub async fn closed(&self) {
        self.closed.cancelled().await
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The skill queues of an operator (what their stream's queue events are).
    pub fn skills(&self, operator: &str) -> Vec<String> {
        self.lock()
            .operators
            .get(operator)
            .map(|o| o.skills.clone())
            .unwrap_or_default()
    }

    /// Subscribes to the changes and takes the snapshot at the same moment (under the lock):
    /// every `operator` and `queue` event as of now, and each operator's current offer.
    pub fn subscribe(&self) -> (Vec<Arc<PageEvent>>, broadcast::Receiver<Arc<PageEvent>>) {
        let st = self.lock();
        let rx = self.pages.subscribe();
        let now = Utc::now();
        let mut snap = Vec::new();
        for (id, o) in &st.operators {
            snap.push(Arc::new(operator_event(id, o, now)));
            if let Some(offer) = &o.offer {
                snap.push(Arc::new(offer_event(offer, &st.labels)));
            }
        }
        for (id, q) in &st.queues {
            snap.push(Arc::new(queue_event(&st, id, q, now, now)));
        }
        (snap, rx)
    }

    /// Pages subscribed now.
    pub fn pages(&self) -> usize {
        self.pages.receiver_count()
    }

    /// Applies one call-control event; operator and offer changes go out at once, queue
    /// changes at the next [`Live::flush`].
    pub fn apply(&self, ev: LiveEvent) {
        let mut st = self.lock();
        st.roll_day(ev.at());
        match ev {
            LiveEvent::Operator(o) => {
                let id = o.id.clone();
                let view = st
                    .operators
                    .entry(id.clone())
                    .or_insert_with(|| OperatorView {
                        name: id.clone(),
                        skills: Vec::new(),
                        last: None,
                        offer: None,
                    });
                view.last = Some(o);
                let page = operator_event(&id, view, Utc::now());
                let _ = self.pages.send(Arc::new(page));
            }
            LiveEvent::Offer(offer) => {
                if let Some(view) = st.operators.get_mut(&offer.operator) {
                    view.offer = match offer.phase {
                        OfferPhase::Ringing | OfferPhase::Answered => Some(offer.clone()),
                        OfferPhase::Ended | OfferPhase::Cancelled => None,
                    };
                }
                let _ = self.pages.send(Arc::new(offer_event(&offer, &st.labels)));
            }
            LiveEvent::Queue(q) => {
                let target = st.target_s;
                let view = st.queues.entry(q.queue.clone()).or_default();
                match q.change {
                    QueueChange::Joined {
                        since,
                        path,
                        caller,
                    } => {
                        view.waiting.retain(|w| w.call != q.call);
                        view.waiting.push(Waiter {
                            appeal: q.appeal,
                            call: q.call,
                            since,
                            path,
                            caller,
                        });
                    }
                    QueueChange::Left { exit, waited } => {
                        view.waiting.retain(|w| w.call != q.call);
                        match exit {
                            QueueExit::Answered => {
                                view.answered += 1;
                                if waited.as_secs_f64() <= target as f64 {
                                    view.within += 1;
                                }
                            }
                            QueueExit::Abandoned => view.abandoned += 1,
                            _ => {}
                        }
                    }
                }
                st.dirty.entry(q.queue).or_insert(q.at);
            }
            // a reload: new names, skills and titles; call control puts out every operator's
            // state right after, and each queue goes out at the next flush with its title
            // (an operator removed from the file leaves the picture; one added joins it)
            LiveEvent::Roster { roster, at } => {
                let keep: Vec<&str> = roster.operators.iter().map(|o| o.login.as_str()).collect();
                st.operators.retain(|id, _| keep.contains(&id.as_str()));
                for o in roster.operators {
                    let view = st.operators.entry(o.login).or_insert_with(|| OperatorView {
                        name: String::new(),
                        skills: Vec::new(),
                        last: None,
                        offer: None,
                    });
                    view.name = o.name;
                    view.skills = o.skills;
                }
                for q in roster.queues {
                    st.queues.entry(q.name.clone()).or_default().title = q.title;
                    st.dirty.entry(q.name).or_insert(at);
                }
            }
        }
    }

    /// Puts out one `queue` event per queue changed since the last flush.
    pub fn flush(&self) {
        let mut st = self.lock();
        if st.dirty.is_empty() {
            return;
        }
        let now = Utc::now();
        st.roll_day(now);
        let dirty = std::mem::take(&mut st.dirty);
        for (id, at) in dirty {
            if let Some(q) = st.queues.get(&id) {
                let _ = self.pages.send(Arc::new(queue_event(&st, &id, q, at, now)));
            }
        }
    }
}

impl State {
    /// A new local day: today's counts start again.
    fn roll_day(&mut self, at: DateTime<Utc>) {
        let day = at.with_timezone(&self.tz).date_naive();
        if self.day.is_some_and(|d| d >= day) {
            return;
        }
        if self.day.is_some() {
            for q in self.queues.values_mut() {
                (q.answered, q.abandoned, q.within) = (0, 0, 0);
            }
            let ids: Vec<String> = self.queues.keys().cloned().collect();
            for id in ids {
                self.dirty.entry(id).or_insert(at);
            }
        }
        self.day = Some(day);
    }
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn operator_event(id: &str, o: &OperatorView, now: DateTime<Utc>) -> PageEvent {
    let (state, since, reason, queues) = match &o.last {
        Some(l) => (
            l.state.as_str(),
            l.since,
            l.reason.clone(),
            l.queues.clone(),
        ),
        None => ("logged_out", now, None, Vec::new()),
    };
    let v = json!({
        "id": id,
        "name": o.name,
        "state": state,
        "since": rfc3339(since),
        "reason": reason,
        "queues": queues,
    });
    PageEvent {
        kind: "operator",
        full: v.to_string(),
        masked: None,
        operator: Some(id.to_owned()),
        queue: None,
    }
}

/// A path in words, both languages (`{"ru": [...], "en": [...]}`): the JSON is rendered once
/// for every page.
fn path_words(labels: &Labels, path: &[String]) -> serde_json::Value {
    json!({ "ru": labels.path(false, path), "en": labels.path(true, path) })
}

fn offer_event(o: &OfferLive, labels: &Labels) -> PageEvent {
    let v = json!({
        "operator": o.operator,
        "appeal": o.appeal,
        "call": o.call,
        "queue": o.queue,
        "caller": o.caller,
        "path": o.path,
        "path_words": path_words(labels, &o.path),
        "waited_s": o.waited.as_secs(),
        "phase": o.phase.as_str(),
        "at": o.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    });
    PageEvent {
        kind: "offer",
        full: v.to_string(),
        masked: None,
        operator: Some(o.operator.clone()),
        queue: None,
    }
}

/// The whole queue as of `now`; `at` is its oldest change not yet put out.
fn queue_event(
    st: &State,
    id: &str,
    q: &QueueView,
    at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> PageEvent {
    let mut waiting: Vec<&Waiter> = q.waiting.iter().collect();
    waiting.sort_by_key(|w| w.since);
    let longest = waiting
        .first()
        .map(|w| (now - w.since).num_seconds().max(0))
        .unwrap_or(0);
    let served = q.answered + q.abandoned;
    let level = (served > 0).then(|| q.within as f64 / served as f64);
    let render = |with_caller: bool| {
        let list: Vec<serde_json::Value> = waiting
            .iter()
            .map(|w| {
                let mut v = json!({
                    "appeal": w.appeal,
                    "since": rfc3339(w.since),
                    "path": w.path,
                    "path_words": path_words(&st.labels, &w.path),
                });
                if with_caller {
                    v["caller"] = json!(w.caller);
                }
                v
            })
            .collect();
        json!({
            "id": id,
            "name": q.title,
            "waiting": list,
            "longest_wait_s": longest,
            "answered_today": q.answered,
            "abandoned_today": q.abandoned,
            "service_level": level,
            "service_level_target_s": st.target_s,
            "at": at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        })
        .to_string()
    };
    PageEvent {
        kind: "queue",
        full: render(true),
        masked: Some(render(false)),
        operator: None,
        queue: Some(id.to_owned()),
    }
}

/// The task that feeds [`Live`] from the gateway's broadcast and flushes queue changes,
/// until the gateway is gone.
pub fn spawn(
    live: Arc<Live>,
    mut events: broadcast::Receiver<LiveEvent>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(QUEUE_FLUSH);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                ev = events.recv() => match ev {
                    Ok(ev) => live.apply(ev),
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "live events fell behind the calls; the picture may be stale until the next changes");
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                _ = tick.tick() => live.flush(),
            }
        }
    })
}

/// Live events the gateway may be ahead of the picture's task before it lags (a warning, and
/// a stale picture until the next changes): ~4 s of a 600 calls/s queue load. A broadcast
/// allocates every slot up front and keeps each event until its slot is reused, so the depth
/// is memory for the daemon's whole life: 1 << 16 was 13 MB of the 31 MB heap of an idle
/// daemon (bench/heap.py, docs/BENCHMARKS.md).
const GATEWAY_CAPACITY: usize = 1 << 13;

/// The gateway's side: a broadcast deep enough for bursts of a busy hotline.
pub fn channel() -> (broadcast::Sender<LiveEvent>, broadcast::Receiver<LiveEvent>) {
    broadcast::channel(GATEWAY_CAPACITY)
}

/// Operators' display names and skills, queues' titles, from the configuration (what call
/// control puts out again after a reload, [`LiveEvent::Roster`]).
pub fn roster(c: &crate::config::Config) -> Roster {
    let skills: HashMap<&str, Vec<String>> = c
        .acd
        .operators
        .iter()
        .map(|o| {
            let queues = o.skills.iter().map(|s| s.queue.as_str().to_owned());
            (o.id.as_str(), queues.collect())
        })
        .collect();
    Roster {
        operators: c
            .operators
            .iter()
            .map(|o| RosterOperator {
                login: o.login.clone(),
                name: o.name.clone(),
                skills: skills.get(o.login.as_str()).cloned().unwrap_or_default(),
            })
            .collect(),
        queues: c
            .queues
            .iter()
            .map(|q| RosterQueue {
                name: q.name.clone(),
                title: q.title.clone(),
            })
            .collect(),
    }
}

/// The picture's start: the configuration's roster, service level and day boundary.
pub fn setup(c: &crate::config::Config) -> LiveSetup {
    let r = roster(c);
    LiveSetup {
        operators: r
            .operators
            .into_iter()
            .map(|o| (o.login, o.name, o.skills))
            .collect(),
        queues: r.queues.into_iter().map(|q| (q.name, q.title)).collect(),
        service_level_seconds: c.main.reports.service_level_seconds,
        tz: c.report_tz(),
        labels: Arc::new(crate::labels::Labels::of(c)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gateway::live::OperatorPhase;

    fn setup(op_name: &str, queue_title: &str) -> LiveSetup {
        LiveSetup {
            operators: vec![("op1".into(), op_name.into(), vec!["general".into()])],
            queues: vec![("general".into(), queue_title.into())],
            ..LiveSetup::default()
        }
    }

    /// A reload's words reach open pages at once (the queues go out again), and the roster
    /// call control puts out after it adds and removes operators from the picture.
    #[tokio::test]
    async fn a_reload_reaches_open_pages_and_the_roster_adds_and_removes_operators() {
        let live = Live::new(setup("Старое имя", "Старая очередь"));
        let (snap, mut rx) = live.subscribe();
        assert!(snap.iter().any(|e| e.full.contains("Старое имя")));
        live.reconfigure(setup("Старое имя", "Старая очередь"));
        let got: Vec<String> = std::iter::from_fn(|| rx.try_recv().ok())
            .map(|e| e.full.clone())
            .collect();
        assert!(got.iter().any(|e| e.contains("Старая очередь")), "{got:?}");
        let roster = |extra: bool| {
            let mut operators = vec![RosterOperator {
                login: "op1".into(),
                name: "Новое имя".into(),
                skills: vec!["general".into()],
            }];
            if extra {
                operators.push(RosterOperator {
                    login: "op9".into(),
                    name: "Оператор 9".into(),
                    skills: Vec::new(),
                });
            }
            LiveEvent::Roster {
                roster: Roster {
                    operators,
                    queues: vec![RosterQueue {
                        name: "general".into(),
                        title: "Новая очередь".into(),
                    }],
                },
                at: Utc::now(),
            }
        };
        live.apply(roster(true));
        let (snap, _) = live.subscribe();
        let all: String = snap.iter().map(|e| e.full.clone()).collect();
        assert!(
            all.contains("Новое имя") && !all.contains("Старое имя"),
            "{all}"
        );
        assert!(all.contains("\"id\":\"op9\""), "{all}");
        assert!(all.contains("Новая очередь"), "{all}");
        live.apply(roster(false));
        let (snap, _) = live.subscribe();
        assert!(!snap.iter().any(|e| e.full.contains("\"id\":\"op9\"")));
    }

    /// A reload's roster renames operators, gives them their new skills and retitles queues:
    /// the operator event call control puts out next and the queue's next flush carry them,
    /// and so does a new page's snapshot.
    #[test]
    fn a_roster_after_a_reload_renames_and_retitles() {
        let live = Live::new(LiveSetup {
            operators: vec![("op1".into(), "Old name".into(), vec!["benefits".into()])],
            queues: vec![("benefits".into(), "Old title".into())],
            ..LiveSetup::default()
        });
        let (_, mut rx) = live.subscribe();
        let now = Utc::now();
        live.apply(LiveEvent::Roster {
            roster: Roster {
                operators: vec![RosterOperator {
                    login: "op1".into(),
                    name: "Анна Петрова".into(),
                    skills: vec!["benefits".into(), "rehab".into()],
                }],
                queues: vec![RosterQueue {
                    name: "benefits".into(),
                    title: "Пособия".into(),
                }],
            },
            at: now,
        });
        assert_eq!(live.skills("op1"), ["benefits", "rehab"]);
        live.apply(LiveEvent::Operator(OperatorLive {
            id: "op1".into(),
            state: OperatorPhase::Available,
            since: now,
            reason: None,
            queues: vec!["benefits".into()],
        }));
        let op = rx.try_recv().expect("the operator event");
        assert_eq!(op.kind, "operator");
        assert!(op.full.contains("Анна Петрова"), "{}", op.full);
        live.flush();
        let q = rx.try_recv().expect("the queue event");
        assert_eq!(q.kind, "queue");
        assert!(q.full.contains("Пособия"), "{}", q.full);
        let (snap, _) = live.subscribe();
        assert!(snap.iter().any(|e| e.full.contains("Анна Петрова")));
        assert!(!snap.iter().any(|e| e.full.contains("Old")));
    }
}
