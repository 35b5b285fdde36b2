//! The test configuration and the call log that writes lines.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use calls::settings::menu_prompt_name;
use calls::{
    CallArrived, CallEnded, CallLog, CallbackAttempt, DtmfMode, IvrStep, LineSettings,
    OperatorSettings, Settings, TransferRecord, TrunkOutbound, TrunkSettings,
};
use media::g711::Law;
use media::prompts::{Encoder, Prompt, PromptCache, PromptName};
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

fn encode(law: Law) -> impl Fn(&[i16]) -> Vec<u8> {
    move |pcm: &[i16]| pcm.iter().map(|s| law.encode(*s)).collect()
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
    let (u, a) = (encode(Law::Ulaw), encode(Law::Alaw));
    let encoders: [(&str, &dyn Encoder); 2] = [("PCMU", &u), ("PCMA", &a)];
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
        user_agent: "Hotline-test".into(),
        realm: "hotline".into(),
        max_message_size: 65_535,
        t1: Duration::from_millis(500),
        lockout_failures: 10,
        lockout: Duration::from_secs(60),
        digest_algorithms: vec![sip::auth::Algorithm::Md5],
        lines: vec![LineSettings {
            id: "city".into(),
            numbers: vec![CITY.into()],
            name: "City".into(),
            ring: Duration::ZERO,
            greeting: None,
            dtmf: DtmfMode::Auto,
            record: false,
            menu: Some(menu),
            start: start.into(),
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
        operators: ["op1", "op2", "op3"]
            .into_iter()
            .map(|op| OperatorSettings {
                login: op.into(),
                secret: sip::auth::Secret::Plain(format!("{op}-secret")),
            })
            .collect(),
        rtp_ports: (20_000, 20_099),
        rtp_address: None,
        rtp_timeout: Some(Duration::from_secs(60)),
        prompts: Arc::new(PromptCache::from_prompts(prompts, &encoders)),
        recordings_dir: dir.join("rec"),
        session_expires: 1800,
        max_call: Duration::from_secs(4 * 3600),
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
        feature_codes: Default::default(),
    }
}

/// What call control wrote down, one line per call-log call, in order.
#[derive(Default)]
pub struct Log {
    lines: Mutex<Vec<String>>,
    next: Mutex<u32>,
}

impl Log {
    fn push(&self, line: String) {
        self.lines.lock().expect("the log").push(line);
    }

    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().expect("the log").clone()
    }

    /// The lines that start with `prefix`.
    pub fn starting(&self, prefix: &str) -> Vec<String> {
        self.lines()
            .into_iter()
            .filter(|l| l.starts_with(prefix))
            .collect()
    }
}

impl CallLog for Log {
    fn call_arrived(&self, call: &CallArrived<'_>) -> String {
        let mut n = self.next.lock().expect("the counter");
        *n += 1;
        let appeal = format!("A{n}");
        self.push(format!("arrived {appeal} {} {}", call.line, call.caller));
        appeal
    }
    fn call_ended(&self, appeal: &str, end: &CallEnded) {
        let op = end
            .operator
            .as_ref()
            .map(|(o, _)| o.as_str())
            .unwrap_or("-");
        self.push(format!(
            "ended {appeal} {} ivr={:?} operator={op}",
            end.reason.as_str(),
            end.ivr
        ));
    }
    fn digit(&self, appeal: &str, digit: char, via: &str) {
        self.push(format!("digit {appeal} {digit} {via}"));
    }
    fn ivr_step(&self, appeal: &str, step: &IvrStep) {
        let s = match step {
            IvrStep::Path { step, .. } => format!("path {step}"),
            IvrStep::EnteredQueue { queue, .. } => format!("queue {queue}"),
            IvrStep::CallbackRequested { number, .. } => format!("callback {number}"),
            IvrStep::Message { .. } => "message".into(),
            other => format!("{other:?}"),
        };
        self.push(format!("step {appeal} {s}"));
    }
    fn operator_answered(&self, appeal: &str, operator: &str, _waited: Duration) {
        self.push(format!("answered {appeal} {operator}"));
    }
    fn transferred(&self, appeal: &str, t: &TransferRecord<'_>) {
        self.push(format!(
            "transferred {appeal} {} {} {}",
            t.kind.as_str(),
            t.target,
            t.status
        ));
    }
    fn callback_dialling(&self, appeal: &str, operator: &str, attempt: u32) {
        self.push(format!("dialling {appeal} {operator} {attempt}"));
    }
    fn callback_attempt(&self, appeal: &str, a: &CallbackAttempt<'_>) {
        self.push(format!(
            "attempt {appeal} {} {}",
            a.attempt,
            a.result.as_str()
        ));
    }
    fn callback_failed(&self, appeal: &str, attempts: u32) {
        self.push(format!("gave-up {appeal} {attempts}"));
    }
    fn callback_talked(&self, appeal: &str, operator: &str, _talked: Duration) {
        self.push(format!("talked {appeal} {operator}"));
    }
}

/// A menu that takes every caller straight into `benefits`.
pub const QUEUE_MENU: &str = "[[queue]]\nid = \"main\"\nqueue = \"benefits\"\n";
