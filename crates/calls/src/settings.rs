//! What the gateway needs to run, as plain values (the daemon reads files and builds this).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use media::prompts::{PromptCache, PromptName};

use ipnet::IpNet;
use sip::auth::Secret;

#[derive(Debug, Clone)]
pub struct LineSettings {
    pub id: String,
    /// Normalised numbers (main number and aliases) that reach this line.
    pub numbers: Vec<String>,
    pub name: String,
    /// How long we send 180 before answering.
    pub ring: Duration,
    /// Played once when the call is answered (a prompt of [`Settings::prompts`]) on a line
    /// without a voice menu; a line with a menu plays what its start node says instead.
    pub greeting: Option<PromptName>,
    /// Which kinds of DTMF the line takes.
    pub dtmf: DtmfMode,
    /// Record every call (stereo WAV in [`Settings::recordings_dir`]).
    pub record: bool,
    /// The line's voice menu: every answered call walks it from `start`. Its prompts are in
    /// [`Settings::prompts`] under [`menu_prompt_name`]. A call keeps the `Arc` it started
    /// with, so a reload never changes the menu under a caller.
    pub menu: Option<Arc<ivr::Menu>>,
    /// The node calls start at (meaningful with `menu`).
    pub start: String,
}

impl LineSettings {
    /// The user part our calls for this line go out with (callbacks, transfers, operator
    /// legs): its main number, or its id when it has none.
    pub fn from_user(&self) -> String {
        self.numbers.first().unwrap_or(&self.id).clone()
    }
}

/// The name a menu prompt has in the [`PromptCache`]: its WAV file. Two menus naming the same
/// file share one decoded copy; two prompt folders with the same prompt names never clash.
pub fn menu_prompt_name(file: &Path) -> PromptName {
    PromptName::new(format!("file:{}", file.display()))
}

/// Which DTMF a line listens to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DtmfMode {
    /// Whichever kind arrives first in a call wins; the others are ignored for that call (no
    /// digit is counted twice when a phone sends RFC 4733 and tones, or INFO and RFC 4733).
    #[default]
    Auto,
    /// RTP telephone-events only.
    Rfc4733,
    /// SIP INFO only.
    Info,
    /// Tones in the audio only (trunks that strip RFC 4733).
    Inband,
}

impl DtmfMode {
    /// `auto`, `rfc4733`, `info`, `inband`.
    pub fn parse(s: &str) -> Option<DtmfMode> {
        match s {
            "auto" => Some(DtmfMode::Auto),
            "rfc4733" => Some(DtmfMode::Rfc4733),
            "info" => Some(DtmfMode::Info),
            "inband" => Some(DtmfMode::Inband),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct TrunkSettings {
    pub name: String,
    pub allow: Vec<IpNet>,
    /// Digest credentials: the trunk may use them when its address is not in `allow`, and we
    /// answer its 401/407 challenges with them when we call out through it.
    pub credentials: Option<(String, String)>,
    /// Where calls we place through this trunk go (callbacks, transfers to numbers); `None`
    /// for a trunk that only brings calls in.
    pub outbound: Option<TrunkOutbound>,
}

/// A trunk's outbound target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrunkOutbound {
    /// The configured URI (`sip:127.0.0.1:5080`): its host, port and parameters make the
    /// Request-URI, the dialled number its user part.
    pub uri: sip::SipUri,
    /// Where the INVITEs go (resolved when the configuration is loaded; UDP, or TCP with
    /// `;transport=tcp`).
    pub peer: sip::Peer,
}

#[derive(Debug, Clone)]
pub struct OperatorSettings {
    pub login: String,
    pub secret: Secret,
}

#[derive(Debug, Clone)]
pub struct Settings {
    /// Each address gets a UDP socket and a TCP listener.
    pub listen: Vec<SocketAddr>,
    pub user_agent: String,
    pub realm: String,
    pub max_message_size: usize,
    pub t1: Duration,
    pub lockout_failures: u32,
    pub lockout: Duration,
    /// Digest challenges offered, most preferred first.
    pub digest_algorithms: Vec<sip::auth::Algorithm>,
    pub lines: Vec<LineSettings>,
    pub trunks: Vec<TrunkSettings>,
    pub operators: Vec<OperatorSettings>,
    /// RTP ports: even RTP port and RTCP = +1, both within `min..=max`.
    pub rtp_ports: (u16, u16),
    /// End a call after this long without RTP from the caller; `None` = never.
    pub rtp_timeout: Option<Duration>,
    /// Every prompt, loaded and encoded once (greetings, later menus and numbers).
    pub prompts: Arc<PromptCache>,
    /// Where call recordings go (`<appeal>.wav`); files cut short are repaired at start-up.
    pub recordings_dir: PathBuf,
    /// Address we put in SDP; `None` = the address the call came in on.
    pub rtp_address: Option<IpAddr>,
    pub session_expires: u32,
    pub max_call: Duration,
    pub shutdown_grace: Duration,
    pub redact_callers: bool,
    /// Music on hold by queue name (a prompt of [`Settings::prompts`], e.g. the queue file's
    /// `moh = "prompts/moh/default.wav"` once loaded); queues not listed play the entry
    /// [`MOH_DEFAULT`], and with no entry at all waiting callers hear silence.
    pub moh: HashMap<String, PromptName>,
    /// Queues and operators for the ACD; `None` runs no ACD (callers who reach a queue wait
    /// there until they hang up). Only a restart changes it.
    pub acd: Option<acd::AcdConfig>,
    /// The codes operators dial from their softphones (`*1` login…), with their pause reasons
    /// and confirmation prompts; a reload changes them for the next call.
    pub feature_codes: crate::FeatureCodes,
    /// Operators' names and skills and queues' titles for the live pages (put out as
    /// [`crate::live::LiveEvent::Roster`] after a reload).
    pub roster: crate::live::Roster,
}

/// The key of [`Settings::moh`] that every queue without its own music uses.
pub const MOH_DEFAULT: &str = "default";

/// Normalise a dialled number: drop visual separators, `+7…` → `8…`.
pub fn normalize_number(n: &str) -> String {
    let digits: String = n
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == '+')
        .collect();
    match digits.strip_prefix("+7") {
        Some(rest) => format!("8{rest}"),
        None => digits.trim_start_matches('+').to_string(),
    }
}

impl Settings {
    /// Takes over from `running` what only a restart changes (sockets, the RTP port range,
    /// the recordings folder, the registrar's realm, timers and lock-out, digest algorithms);
    /// returns the names of those that differ, so a reload can say they were not applied.
    /// Everything else (lines, menus, prompts, trunks, operators, RTP timeout, call limits,
    /// redaction) is taken from `self` for the calls that arrive from now on. Of the ACD's
    /// settings only the queues are restart-only: operators and their skills are taken (the
    /// core applies them to the running ACD), skills in queues it does not run dropped.
    pub fn keep_restart_only(&mut self, running: &Settings) -> Vec<&'static str> {
        let mut differ = Vec::new();
        if self.listen != running.listen {
            differ.push("sip.listen");
        }
        if self.rtp_ports != running.rtp_ports {
            differ.push("rtp.port_min/port_max");
        }
        if self.recordings_dir != running.recordings_dir {
            differ.push("recording.dir");
        }
        if self.realm != running.realm {
            differ.push("sip.realm");
        }
        if self.t1 != running.t1 {
            differ.push("sip.t1_ms");
        }
        if self.lockout_failures != running.lockout_failures || self.lockout != running.lockout {
            differ.push("sip.lockout_failures/lockout_seconds");
        }
        if self.digest_algorithms != running.digest_algorithms {
            differ.push("sip.digest_algorithms");
        }
        if self.max_message_size != running.max_message_size {
            differ.push("sip.max_message_size");
        }
        if self.user_agent != running.user_agent {
            differ.push("sip.user_agent");
        }
        if self.shutdown_grace != running.shutdown_grace {
            differ.push("calls.shutdown_grace");
        }
        // The ACD's queues are restart-only; its operators follow the reload (the core adds,
        // removes and re-skills them), minus skills in queues the running ACD does not have.
        match (&mut self.acd, &running.acd) {
            (Some(new), Some(old)) => {
                if new.queues != old.queues {
                    differ.push("queues (ACD)");
                    new.queues = old.queues.clone();
                    let known: Vec<&acd::QueueId> = old.queues.iter().map(|q| &q.id).collect();
                    for o in &mut new.operators {
                        o.skills.retain(|s| known.contains(&&s.queue));
                    }
                }
            }
            (new, old) => {
                if *new != *old {
                    differ.push("queues and operators (ACD)");
                }
                new.clone_from(old);
            }
        }
        self.listen = running.listen.clone();
        self.rtp_ports = running.rtp_ports;
        self.recordings_dir = running.recordings_dir.clone();
        self.realm = running.realm.clone();
        self.t1 = running.t1;
        self.lockout_failures = running.lockout_failures;
        self.lockout = running.lockout;
        self.digest_algorithms = running.digest_algorithms.clone();
        self.max_message_size = running.max_message_size;
        self.user_agent = running.user_agent.clone();
        self.shutdown_grace = running.shutdown_grace;
        differ
    }

    /// The line a dialled Request-URI user reaches.
    pub fn line_for(&self, dialled: &str) -> Option<&LineSettings> {
        let n = normalize_number(dialled);
        if n.is_empty() {
            return None;
        }
        self.lines.iter().find(|l| l.numbers.contains(&n))
    }

    /// The music a caller waiting in `queue` hears: the queue's own, else the default.
    pub fn moh_for(&self, queue: &str) -> Option<&PromptName> {
        self.moh.get(queue).or_else(|| self.moh.get(MOH_DEFAULT))
    }

    /// Whether a source address belongs to an allowed trunk.
    pub fn trunk_for(&self, ip: IpAddr) -> Option<&TrunkSettings> {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        self.trunks
            .iter()
            .find(|t| t.allow.iter().any(|n| n.contains(&ip)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queue_without_its_own_music_gets_the_default() {
        let mut s = Settings {
            listen: vec![],
            user_agent: String::new(),
            realm: String::new(),
            max_message_size: 0,
            t1: Duration::ZERO,
            lockout_failures: 0,
            lockout: Duration::ZERO,
            digest_algorithms: vec![],
            lines: vec![],
            trunks: vec![],
            operators: vec![],
            rtp_ports: (0, 0),
            rtp_timeout: None,
            prompts: Arc::new(PromptCache::from_prompts([], &[])),
            recordings_dir: PathBuf::new(),
            rtp_address: None,
            session_expires: 0,
            max_call: Duration::ZERO,
            shutdown_grace: Duration::ZERO,
            redact_callers: true,
            moh: HashMap::new(),
            acd: None,
            feature_codes: Default::default(),
            roster: Default::default(),
        };
        assert_eq!(s.moh_for("benefits"), None);
        s.moh.insert("rehab".into(), PromptName::new("moh/calm"));
        assert_eq!(s.moh_for("benefits"), None);
        s.moh
            .insert(MOH_DEFAULT.into(), PromptName::new("moh/default"));
        assert_eq!(s.moh_for("rehab"), Some(&PromptName::new("moh/calm")));
        assert_eq!(s.moh_for("benefits"), Some(&PromptName::new("moh/default")));
    }
}
