//! The test configuration and the call log that writes lines.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use calls::settings::menu_prompt_name;
use calls::{
    AppealEvent, AppealRecord, IvrStep, LineSettings, Settings, TrunkOutbound, TrunkSettings,
};
use media::prompts::{Prompt, PromptCache, PromptName};
use sip::{Peer, Transport};

use super::{CITY, GW, TRUNK};

/// The feature codes' confirmations (in the prompt cache; tests name them in the settings).
pub const FEATURE_PROMPTS: [&str; 5] =
    ["op/in", "op/out", "op/paused", "op/unpaused", "op/refused"];

/// Every prompt the test menus name, each `ms` long (tones: only their length matters here).
const PROMPTS: [(&str, usize); 9] = [
    ("greet", 400),
    ("menu", 2000),
    ("queued", 300),
    ("hi", 100),
    ("done", 100),
    ("intro", 100),
    ("confirm", 100),
    ("enter", 100),
    ("music", 400),
];

fn tone_wav(path: &std::path::Path, ms: usize) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).expect("a WAV in the test folder");
    for i in 0..ms * 8 {
        let v = (i as f64 * 2.0 * std::f64::consts::PI * 500.0 / 8000.0).sin() * 8000.0;
        w.write_sample(v as i16).expect("a sample");
    }
    w.finalize().expect("the WAV's header");
}

/// A configuration with one line (`CITY`) whose menu is `menu` (TOML after the `prompts` key,
/// starting at `start`), the queue `benefits` (`queue` adjusts it) served by `op1`…`op3`, and
/// the trunk at [`TRUNK`].
pub fn settings(
    dir: &std::path::Path,
    menu: &str,
    start: &str,
    queue: impl FnOnce(&mut acd::QueueConfig),
) -> Settings {
    let p = dir.join("prompts");
    std::fs::create_dir_all(p.join("numbers")).expect("the prompts folder");
    let mut catalogue = String::new();
    for (n, ms) in PROMPTS {
        tone_wav(&p.join(format!("{n}.wav")), ms);
        catalogue.push_str(&format!("{n} = \"{n}\"\n"));
    }
    for d in 0..10 {
        tone_wav(&p.join(format!("numbers/{d}.wav")), 60);
    }
    std::fs::write(p.join("prompts.toml"), catalogue).expect("the catalogue");
    let file = dir.join("menu.toml");
    std::fs::write(&file, format!("prompts = \"prompts\"\n{menu}")).expect("the menu");
    let cx = ivr::Context {
        start,
        start_at: None,
        queues: None,
    };
    let menu = Arc::new(ivr::load(&[file], &cx).expect("a valid test menu"));
    let encoders = media::prompts::G711;
    let mut prompts: Vec<_> = menu
        .prompts()
        .values()
        .map(|i| {
            Arc::new(
                Prompt::load(menu_prompt_name(&i.path), &i.path, &encoders).expect("a test prompt"),
            )
        })
        .collect();
    let wav = p.join("music.wav");
    let music =
        Arc::new(Prompt::load(menu_prompt_name(&wav), &wav, &encoders).expect("the music on hold"));
    // what a waiting caller may hear: the number pieces and the queue's prompts, 200 ms each
    let pcm: Vec<i16> = (0..1600).map(|k| ((k % 16) as i16 - 8) * 500).collect();
    let names = media::numbers_ru::PIECES
        .iter()
        .map(|(n, _)| *n)
        .chain(calls::WAITING_PROMPTS.iter().map(|(n, _)| *n))
        .chain(FEATURE_PROMPTS);
    for n in names {
        prompts.push(Arc::new(Prompt::from_pcm(
            PromptName::new(n.to_string()),
            &pcm,
            &encoders,
        )));
    }
    let mut moh = HashMap::new();
    moh.insert("benefits".to_string(), music.name().clone());
    prompts.push(music);
    let mut q = acd::QueueConfig::new("benefits");
    q.wrap_up = Duration::ZERO;
    q.announce_every = None;
    queue(&mut q);
    let mut uri = sip::SipUri::new(None, sip::Host::V4([192, 0, 2, 200].into()), None);
    uri.port = Some(TRUNK.port());
    uri.params.set("transport", Some("tcp".into()));
    Settings {
        listen: vec![GW],
        lines: vec![LineSettings {
            name: "City".into(),
            ring: Duration::ZERO,
            menu: Some(menu),
            start: start.into(),
            ..test_support::line("city", &[CITY], Duration::ZERO)
        }],
        trunks: vec![TrunkSettings {
            name: "carrier".into(),
            allow: vec!["192.0.2.0/24".parse().expect("a network")],
            credentials: None,
            outbound: Some(TrunkOutbound {
                uri,
                peer: Peer {
                    transport: Transport::Tcp,
                    addr: TRUNK,
                },
            }),
        }],
        operators: test_support::operators(&["op1", "op2", "op3"]),
        prompts: Arc::new(PromptCache::from_prompts(prompts, &encoders)),
        recordings_dir: dir.join("rec"),
        shutdown_grace: Duration::from_secs(10),
        redact_callers: false,
        moh,
        acd: Some(acd::AcdConfig {
            queues: vec![q],
            operators: ["op1", "op2", "op3"]
                .into_iter()
                .map(|op| acd::OperatorConfig::new(op, [("benefits", 1)]))
                .collect(),
        }),
        ..test_support::settings()
    }
}

/// What call control wrote down ([`Output::Appeal`](calls::Output::Appeal)), one line per
/// event, in order; appeal ids read `A1`, `A2`… in the order the appeals arrived.
#[derive(Default)]
pub struct Log {
    lines: Mutex<Vec<String>>,
    /// Every event as it came out, with the core's own ids.
    events: Mutex<Vec<AppealEvent>>,
    /// The core's appeal ids, in the order they arrived.
    ids: Mutex<Vec<String>>,
}

impl Log {
    fn push(&self, line: String) {
        self.lines.lock().expect("the log").push(line);
    }

    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().expect("the log").clone()
    }

    /// The events as the core put them out.
    pub fn events(&self) -> Vec<AppealEvent> {
        self.events.lock().expect("the log").clone()
    }

    /// The lines that start with `prefix`.
    pub fn starting(&self, prefix: &str) -> Vec<String> {
        self.lines()
            .into_iter()
            .filter(|l| l.starts_with(prefix))
            .collect()
    }

    /// The core's id of appeal `A<n>` (1 for the first).
    pub fn id(&self, n: usize) -> String {
        let ids = self.ids.lock().expect("the ids");
        n.checked_sub(1)
            .and_then(|i| ids.get(i).cloned())
            .unwrap_or_default()
    }

    /// `A<n>` for the core's id (`A?` for an id no `Arrived` announced).
    fn short(&self, id: &str) -> String {
        let ids = self.ids.lock().expect("the ids");
        match ids.iter().position(|i| i == id) {
            Some(n) => format!("A{}", n + 1),
            None => "A?".into(),
        }
    }

    /// Writes down one event.
    pub fn record(&self, ev: &AppealEvent) {
        self.events.lock().expect("the log").push(ev.clone());
        if let AppealRecord::Arrived { .. } = ev.record {
            self.ids.lock().expect("the ids").push(ev.appeal.clone());
        }
        let appeal = self.short(&ev.appeal);
        let line = match &ev.record {
            AppealRecord::Arrived { line, caller, .. } => {
                format!("arrived {appeal} {line} {caller}")
            }
            AppealRecord::Ended(end) => {
                let op = end
                    .operator
                    .as_ref()
                    .map(|(o, _)| o.as_str())
                    .unwrap_or("-");
                format!(
                    "ended {appeal} {} ivr={:?} operator={op}",
                    end.reason.as_str(),
                    end.ivr
                )
            }
            AppealRecord::Digit { digit, via } => {
                format!("digit {appeal} {digit} {}", via.as_str())
            }
            AppealRecord::IvrStep(step) => {
                let s = match step {
                    IvrStep::Path { step, .. } => format!("path {step}"),
                    IvrStep::EnteredQueue { queue, .. } => format!("queue {queue}"),
                    IvrStep::CallbackRequested { number, .. } => format!("callback {number}"),
                    IvrStep::Message { .. } => "message".into(),
                    other => format!("{other:?}"),
                };
                format!("step {appeal} {s}")
            }
            AppealRecord::OperatorAnswered { operator, .. } => {
                format!("answered {appeal} {operator}")
            }
            AppealRecord::Transferred {
                kind,
                target,
                status,
                ..
            } => format!("transferred {appeal} {} {target} {status}", kind.as_str()),
            AppealRecord::CallbackDialling { operator, attempt } => {
                format!("dialling {appeal} {operator} {attempt}")
            }
            AppealRecord::CallbackAttempt {
                attempt, result, ..
            } => format!("attempt {appeal} {attempt} {}", result.as_str()),
            AppealRecord::CallbackFailed { attempts } => format!("gave-up {appeal} {attempts}"),
            AppealRecord::CallbackTalked { operator, .. } => format!("talked {appeal} {operator}"),
        };
        self.push(line);
    }
}

/// A menu that takes every caller straight into `benefits`.
pub const QUEUE_MENU: &str = "[[queue]]\nid = \"main\"\nqueue = \"benefits\"\n";
