//! Configuration: `config/hotline.toml` plus the files it names, layered with `HOTLINE__…`
//! environment overrides. Every problem is reported as `path:line:col: message`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use gateway::settings::normalize_number;
use ipnet::IpNet;
use serde::Deserialize;

/// One problem found in the configuration, located in a file where possible (the same type
/// the menu checks report).
pub use ivr::{line_col, Problem};

/// All problems found; loading stops at the first file that cannot be read at all but reports
/// every file it could.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n"))]
pub struct ConfigErrors(pub Vec<Problem>);

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MainFile {
    #[serde(default)]
    pub sip: SipSection,
    #[serde(default)]
    pub rtp: RtpSection,
    #[serde(default)]
    pub admin: AdminSection,
    #[serde(default)]
    pub database: DatabaseSection,
    #[serde(default)]
    pub log: LogSection,
    #[serde(default)]
    pub calls: CallsSection,
    #[serde(default)]
    pub reports: ReportsSection,
    #[serde(default)]
    pub recording: RecordingSection,
    #[serde(default)]
    pub overload: OverloadSection,
    /// How long recordings and caller numbers are kept (off by default).
    #[serde(default)]
    pub retention: RetentionSection,
    /// The partner centre appeals are exchanged with; none when absent.
    #[serde(default)]
    pub partner: Option<PartnerSection>,
    /// The lines file, relative to the main file's folder.
    pub lines: String,
    /// The operators file, relative to the main file's folder.
    pub operators: String,
    /// The queues file, relative to the main file's folder; menus may only use queues it lists.
    #[serde(default)]
    pub queues: Option<String>,
    /// Carrier trunks allowed to send calls.
    #[serde(default)]
    pub trunk: Vec<Trunk>,
    /// The codes operators dial from their softphones.
    #[serde(default)]
    pub feature_codes: FeatureCodesSection,
    /// The case directory (see `directory.rs`): city districts…
    #[serde(default)]
    pub districts: Option<String>,
    /// …the organisations requests are passed to…
    #[serde(default)]
    pub organisations: Option<String>,
    /// …the services citizens ask for…
    #[serde(default)]
    pub services: Option<String>,
    /// …and the case records' code lists (social categories, flags, dispositions).
    #[serde(default)]
    pub cases: Option<String>,
}

/// `[feature_codes]`: what an operator dials to log in, log out, pause (with a reason's
/// digits after the code: `*31`) and resume.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FeatureCodesSection {
    pub login: String,
    pub logout: String,
    pub pause: String,
    pub unpause: String,
    /// Digits after the pause code → the reason recorded: `{ 1 = "break", 2 = "paperwork" }`.
    pub pause_reasons: std::collections::BTreeMap<String, String>,
    /// Folder of the confirmation prompts (`logged-in.wav`, `logged-out.wav`, `paused.wav`,
    /// `unpaused.wav`, `refused.wav`), relative to the main file's folder. When the key is
    /// absent, missing files leave the feature-code calls silent; when set, they are problems.
    pub prompts: Option<String>,
}

impl Default for FeatureCodesSection {
    fn default() -> Self {
        FeatureCodesSection {
            login: "*1".into(),
            logout: "*2".into(),
            pause: "*3".into(),
            unpause: "*4".into(),
            pause_reasons: Default::default(),
            prompts: None,
        }
    }
}

/// The confirmation prompts' files in the `[feature_codes] prompts` folder.
pub const FEATURE_PROMPTS: [&str; 5] = ["logged-in", "logged-out", "paused", "unpaused", "refused"];

/// Where the confirmation prompts are when `[feature_codes] prompts` is not set.
pub const FEATURE_PROMPTS_DEFAULT: &str = "prompts/ru/operator";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SipSection {
    /// UDP and TCP on this address.
    pub listen: SocketAddr,
    /// Optional second listener, typically IPv6 (`[::1]:5060`).
    pub listen_v6: Option<SocketAddr>,
    /// Digest realm and the domain operators register in.
    pub realm: String,
    pub user_agent: String,
    pub max_message_size: usize,
    pub t1_ms: u64,
    /// Failed REGISTER attempts from one address before it is locked out.
    pub lockout_failures: u32,
    pub lockout_seconds: u64,
    /// Digest challenges offered, most preferred first: `MD5`, `SHA-256`. MD5 alone by
    /// default: baresip 1.0.0 (Debian) gives up on a 401 that also offers SHA-256.
    pub digest_algorithms: Vec<String>,
}

impl Default for SipSection {
    fn default() -> Self {
        SipSection {
            listen: SocketAddr::from(([127, 0, 0, 1], 5060)),
            listen_v6: None,
            realm: "hotline".into(),
            user_agent: concat!("Hotline/", env!("CARGO_PKG_VERSION")).into(),
            max_message_size: 65_535,
            t1_ms: 500,
            lockout_failures: 10,
            lockout_seconds: 300,
            digest_algorithms: vec!["MD5".into()],
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RtpSection {
    pub port_min: u16,
    pub port_max: u16,
    /// The address put in our SDP; defaults to the SIP listen address.
    pub address: Option<std::net::IpAddr>,
    /// Hang up a call after this many seconds without RTP from the caller; 0 = never.
    pub timeout_seconds: u64,
}

impl Default for RtpSection {
    fn default() -> Self {
        RtpSection {
            port_min: 10_000,
            port_max: 20_000,
            address: None,
            timeout_seconds: 60,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecordingSection {
    /// Where recordings of lines with `record = true` go, as `<appeal id>.wav`; a relative
    /// path is taken from the main file's folder.
    pub dir: String,
}

impl Default for RecordingSection {
    fn default() -> Self {
        RecordingSection {
            dir: "data/recordings".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminSection {
    pub listen: SocketAddr,
    /// The shared legacy bearer token: works as an admin while set (a warning at start);
    /// empty = none. Personal accounts and their API tokens replace it.
    pub token: String,
    /// HTTPS: the certificate chain (PEM, leaf first), relative to the main file's folder.
    /// With `tls_key`, or neither (plain HTTP). Reloaded with the configuration.
    pub tls_cert: Option<String>,
    /// The certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub tls_key: Option<String>,
    /// A browser session ends after this many minutes without a request.
    pub session_idle_minutes: u32,
    /// …and this many hours after the login, whatever happens.
    pub session_max_hours: u32,
    /// Failed logins to one account before it is locked.
    pub lockout_failures: u32,
    /// Failed logins from one address before it is locked (an office behind one NAT shares
    /// an address: higher than the account's).
    pub address_lockout_failures: u32,
    /// How long a lock lasts, minutes.
    pub lockout_minutes: u32,
}

impl Default for AdminSection {
    fn default() -> Self {
        AdminSection {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            token: String::new(),
            tls_cert: None,
            tls_key: None,
            session_idle_minutes: 30,
            session_max_hours: 12,
            lockout_failures: 5,
            address_lockout_failures: 20,
            lockout_minutes: 15,
        }
    }
}

impl AdminSection {
    /// `https` when a certificate is configured, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls_cert.is_some() {
            "https"
        } else {
            "http"
        }
    }
}

/// `[retention]`: personal data is kept only as long as configured. 0 = kept (the default).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionSection {
    /// Recordings (call recordings and messages) are deleted this many days after the call.
    pub recordings_days: u32,
    /// Caller numbers in appeals (and their callbacks) are masked this many days after the
    /// call, all but the last two digits.
    pub mask_callers_days: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSection {
    /// `sqlite://data/hotline.db` (created on first run; a relative path is taken from the
    /// main file's folder) or `postgres://user:pass@host/db`.
    pub url: String,
    /// Every appeal write goes to this append-only spool first, so that nothing is lost while
    /// the database is down or the daemon is killed. Relative to the main file's folder; one
    /// daemon at a time (it holds a lock on the folder).
    pub spool_dir: String,
}

impl Default for DatabaseSection {
    fn default() -> Self {
        DatabaseSection {
            url: "sqlite://data/hotline.db".into(),
            spool_dir: "data/spool".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSection {
    /// A tracing filter: `info`, `hotlined=debug,gateway=debug`…
    pub level: String,
    /// Mask caller numbers in logs (on by default: they are personal data).
    pub redact_callers: bool,
    /// `text` or `json`.
    pub format: String,
}

impl Default for LogSection {
    fn default() -> Self {
        LogSection {
            level: "info".into(),
            redact_callers: true,
            format: "text".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CallsSection {
    /// Session-Expires we ask for / accept (RFC 4028), seconds.
    pub session_expires: u32,
    /// Hard limit on any call's length, seconds.
    pub max_duration: u64,
    /// SIGTERM: how long calls may go on before they are hung up, seconds.
    pub shutdown_grace: u64,
}

impl Default for CallsSection {
    fn default() -> Self {
        CallsSection {
            session_expires: 1800,
            max_duration: 4 * 3600,
            shutdown_grace: 30,
        }
    }
}

/// `[overload]`: when new INVITEs are shed with 503 + `Retry-After` (calls already up are
/// never shed; see the gateway's `overload.rs`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OverloadSection {
    /// A new INVITE that waited longer than this for call control is shed, milliseconds.
    pub queue_delay_ms: u64,
    /// A new INVITE with more than this many waiting behind it is shed.
    pub queue_max: usize,
    /// New INVITEs are shed while the media thread is late by more than this on average,
    /// milliseconds.
    pub media_late_ms: u64,
    /// The shed 503's `Retry-After`, seconds.
    pub retry_after: u32,
}

impl Default for OverloadSection {
    fn default() -> Self {
        let d = gateway::OverloadSettings::default();
        OverloadSection {
            queue_delay_ms: u64::try_from(d.max_queue_delay.as_millis()).unwrap_or(200),
            queue_max: d.max_queue,
            media_late_ms: u64::try_from(d.max_media_late.as_millis()).unwrap_or(5),
            retry_after: d.retry_after,
        }
    }
}

impl OverloadSection {
    pub fn settings(&self) -> gateway::OverloadSettings {
        gateway::OverloadSettings {
            max_queue_delay: Duration::from_millis(self.queue_delay_ms),
            max_queue: self.queue_max,
            max_media_late: Duration::from_millis(self.media_late_ms),
            retry_after: self.retry_after,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReportsSection {
    /// A call answered within this many seconds of waiting counts towards the service level.
    pub service_level_seconds: i64,
    /// The UTC offset report days and hours are taken at, `+HH:MM` (a fixed offset, not a
    /// zone name: Novosibirsk has kept +07:00 all year since 2016).
    pub timezone: String,
    /// The board colours a queue amber when its longest wait reaches this many seconds…
    pub wait_warn_seconds: i64,
    /// …and red at this many.
    pub wait_alarm_seconds: i64,
    /// The service level aimed at, percent: below it the board colours the queue amber,
    /// and red below it by more than 15 points.
    pub service_level_target_percent: i64,
}

impl Default for ReportsSection {
    fn default() -> Self {
        ReportsSection {
            service_level_seconds: 20,
            timezone: "+07:00".into(),
            wait_warn_seconds: 30,
            wait_alarm_seconds: 60,
            service_level_target_percent: 80,
        }
    }
}

/// `[partner]`: the other Hotline (city ↔ region) appeals are forwarded to and received from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartnerSection {
    /// Our centre's name, sent with every message and used in the partner's `partner_ref`
    /// (letters, digits, `-`, `_`, `.`).
    pub name: String,
    /// The partner's admin base URL, `https://host:port` (its certificate verified against
    /// the system's CAs and `ca`) or `http://host:port` (unencrypted: a warning at start
    /// unless the host is a loopback address).
    pub url: String,
    /// Extra CA certificates (PEM) to trust for the partner's certificate, e.g. the partner's
    /// own self-signed one; relative to the main file's folder.
    #[serde(default)]
    pub ca: Option<String>,
    /// Shared token: sent to the partner, and the only token our `/api/v1/partner/…` routes
    /// accept (never the admin token).
    pub token: String,
    /// First pause after a failed delivery, milliseconds; doubles up to `retry_max_ms`.
    #[serde(default = "default_retry_min_ms")]
    pub retry_min_ms: u64,
    /// Longest pause between delivery attempts, milliseconds.
    #[serde(default = "default_retry_max_ms")]
    pub retry_max_ms: u64,
}

fn default_retry_min_ms() -> u64 {
    500
}

fn default_retry_max_ms() -> u64 {
    60_000
}

/// Reads `+HH:MM`, `-HH:MM`, `+HHMM`, `+HH`, `Z` or `UTC` as a fixed UTC offset.
pub fn parse_utc_offset(s: &str) -> Option<chrono::FixedOffset> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("z") || s.eq_ignore_ascii_case("utc") {
        return chrono::FixedOffset::east_opt(0);
    }
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, s.get(1..)?),
        b'-' => (-1, s.get(1..)?),
        _ => return None,
    };
    let digits: String = rest.chars().filter(|c| *c != ':').collect();
    if !digits.chars().all(|c| c.is_ascii_digit()) || rest.matches(':').count() > 1 {
        return None;
    }
    let (h, m) = match digits.len() {
        2 => (digits.parse::<i32>().ok()?, 0),
        4 => (
            digits.get(..2)?.parse::<i32>().ok()?,
            digits.get(2..)?.parse::<i32>().ok()?,
        ),
        _ => return None,
    };
    if h > 14 || m > 59 {
        return None;
    }
    chrono::FixedOffset::east_opt(sign * (h * 3600 + m * 60))
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trunk {
    pub name: String,
    /// Source addresses or networks allowed (`192.0.2.10`, `198.51.100.0/24`, `::1`).
    #[serde(default)]
    pub allow: Vec<String>,
    /// Optional digest credentials a trunk may authenticate with instead of its address; we
    /// answer the trunk's 401/407 with them when we call out through it.
    pub username: Option<String>,
    pub password: Option<String>,
    /// Where calls we place go (callbacks, transfers to numbers): `sip:host[:port]`, with
    /// `;transport=tcp` for TCP. The dialled number becomes the URI's user part.
    pub outbound: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinesFile {
    pub line: Vec<Line>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Line {
    pub id: String,
    pub number: String,
    pub name: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Seconds of ringing (180) before the line answers.
    #[serde(default)]
    pub ring_seconds: f64,
    /// Prompt played when the line answers: a WAV (8 or 16 kHz mono 16-bit) relative to the
    /// configuration folder.
    #[serde(default)]
    pub greeting: Option<String>,
    /// DTMF the line takes: `auto` (the first kind heard in a call), `rfc4733`, `info`, `inband`.
    #[serde(default = "default_dtmf")]
    pub dtmf: String,
    /// Record every call of the line (stereo WAV: caller left, what we played right).
    #[serde(default)]
    pub record: bool,
    /// The line's voice menu: one file or a list (`ivr/regional.toml` plus a calendar), relative
    /// to the lines file's folder.
    #[serde(default)]
    pub ivr: Option<IvrFiles>,
    /// The menu node calls start at (default `main`).
    #[serde(default)]
    pub start: Option<String>,
}

fn default_dtmf() -> String {
    "auto".into()
}

/// `ivr = "ivr/city.toml"` or `ivr = ["ivr/regional.toml", "ivr/calendar-ru.toml"]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum IvrFiles {
    One(String),
    Many(Vec<String>),
}

impl IvrFiles {
    pub fn list(&self) -> Vec<&str> {
        match self {
            IvrFiles::One(f) => vec![f],
            IvrFiles::Many(v) => v.iter().map(String::as_str).collect(),
        }
    }
}

impl Line {
    /// The node calls to this line start at.
    pub fn start_node(&self) -> &str {
        self.start.as_deref().unwrap_or("main")
    }
}

pub use crate::acd_config::{QueueDef, QueuesFile};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorsFile {
    pub operator: Vec<Operator>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Operator {
    pub login: String,
    pub name: String,
    pub password: Option<String>,
    /// HA1 = MD5(login:realm:password), hex, instead of a plain password.
    pub ha1_md5: Option<String>,
    /// HA1 = SHA-256(login:realm:password), hex.
    pub ha1_sha256: Option<String>,
    /// Queues and levels: `skills = { benefits = 1, rehab = 2 }` (see `acd_config`).
    #[serde(default)]
    pub skills: crate::acd_config::Skills,
}

/// The whole configuration after loading and checking.
#[derive(Debug, Clone)]
pub struct Config {
    pub main: MainFile,
    pub lines: Vec<Line>,
    pub operators: Vec<Operator>,
    pub queues: Vec<QueueDef>,
    /// Each line's checked voice menu, by line id (lines without `ivr` have none).
    pub menus: std::collections::BTreeMap<String, std::sync::Arc<ivr::Menu>>,
    pub trunk_nets: Vec<Vec<IpNet>>,
    /// Each trunk's checked outbound target (same order as `main.trunk`).
    pub trunk_outbound: Vec<Option<gateway::TrunkOutbound>>,
    /// Every prompt the lines use, checked, decoded and encoded to G.711 once.
    pub prompts: Arc<media::prompts::PromptCache>,
    /// Queues and operators as the ACD takes them, checked (`acd_config::build`).
    pub acd: acd::AcdConfig,
    /// The operators' feature codes with their prompts (in [`Config::prompts`]).
    pub feature_codes: gateway::FeatureCodes,
    /// Music on hold by queue name: a prompt of [`Config::prompts`] (named by
    /// [`gateway::settings::menu_prompt_name`] of the WAV file, so queues sharing a file share
    /// one decoded copy).
    pub moh: std::collections::HashMap<String, media::prompts::PromptName>,
    /// Districts, organisations, services and the case code lists, checked.
    pub directory: Arc<crate::directory::Directory>,
    /// The admin HTTPS certificate and key (`admin.tls_cert`/`tls_key`), read and checked.
    pub admin_tls: Option<Arc<rustls::sign::CertifiedKey>>,
    /// The CA certificates of `partner.ca`, checked.
    pub partner_ca: Vec<rustls::pki_types::CertificateDer<'static>>,
}

/// The name a line's greeting has in the prompt cache.
pub fn greeting_name(line: &Line) -> Option<media::prompts::PromptName> {
    line.greeting
        .as_ref()
        .map(|_| media::prompts::PromptName::new(format!("greeting/{}", line.id)))
}

/// Loads every prompt the calls play, once, into the shared cache: the lines' greetings and
/// every prompt of every menu ([`ivr::Menu::prompts`], named by
/// [`gateway::settings::menu_prompt_name`]; a file two menus share is loaded once). Calls
/// never read a file. A bad greeting is a problem located at its `greeting` key whose message
/// names the WAV file and what is wrong with it; menu prompts were checked by `ivr::load`,
/// so a problem with one here (the file changed in between) names the file.
#[allow(clippy::too_many_arguments)] // one list of what the prompt cache is built from
fn load_prompts(
    dir: &Path,
    lines_path: &Path,
    lines_text: &str,
    lines: &[Line],
    menus: &std::collections::BTreeMap<String, Arc<ivr::Menu>>,
    queues: &[QueueDef],
    extra: Vec<Arc<media::prompts::Prompt>>,
    problems: &mut Vec<Problem>,
) -> media::prompts::PromptCache {
    let encoders = media::prompts::G711;
    let mut prompts = extra;
    for l in lines {
        let (Some(name), Some(file)) = (greeting_name(l), l.greeting.as_ref()) else {
            continue;
        };
        match media::prompts::Prompt::load(name, &dir.join(file), &encoders) {
            Ok(p) => prompts.push(Arc::new(p)),
            Err(e) => {
                let (line, col) = locate(lines_text, &format!("\"{file}\""), 0);
                problems.push(Problem {
                    path: lines_path.display().to_string(),
                    line,
                    col,
                    message: e.to_string(),
                });
            }
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for menu in menus.values() {
        for info in menu.prompts().values() {
            let name = gateway::settings::menu_prompt_name(&info.path);
            if !seen.insert(name.clone()) {
                continue;
            }
            match media::prompts::Prompt::load(name, &info.path, &encoders) {
                Ok(p) => prompts.push(Arc::new(p)),
                Err(e) => problems.push(Problem {
                    path: info.path.display().to_string(),
                    line: 0,
                    col: 0,
                    message: e.to_string(),
                }),
            }
        }
    }
    // Music on hold: every queue's WAV once. A bad file is reported by the queue checks
    // (`acd_config`), located at the queue's `moh` key, so it is only skipped here.
    for q in queues {
        let Some(rel) = q.moh_file() else {
            continue;
        };
        let path = dir.join(rel);
        let name = gateway::settings::menu_prompt_name(&path);
        if !seen.insert(name.clone()) {
            continue;
        }
        if let Ok(p) = media::prompts::Prompt::load(name, &path, &encoders) {
            prompts.push(Arc::new(p));
        }
    }
    if !queues.is_empty() {
        prompts.extend(load_waiting_prompts(dir, &encoders));
    }
    media::prompts::PromptCache::from_prompts(prompts, &encoders)
}

/// The folder of the prompts a waiting caller hears, relative to the configuration folder.
pub const WAITING_PROMPT_DIR: &str = "prompts/ru";

/// What callers waiting in a queue hear besides the music: the Russian number pieces
/// (`prompts/ru/numbers`, [`media::numbers_ru::prompt_files`]) and
/// [`gateway::WAITING_PROMPTS`], under the names the gateway plays them by. A missing or
/// unreadable file is logged and left out: the gateway then skips what needs it (an
/// announcement, the callback offer) rather than refusing calls.
fn load_waiting_prompts(
    dir: &Path,
    encoders: &[(&str, &dyn media::prompts::Encoder)],
) -> Vec<Arc<media::prompts::Prompt>> {
    let base = dir.join(WAITING_PROMPT_DIR);
    let files = media::numbers_ru::prompt_files(&base.join("numbers"))
        .into_iter()
        .chain(
            gateway::WAITING_PROMPTS
                .iter()
                .map(|(name, file)| (media::prompts::PromptName::new(*name), base.join(file))),
        );
    let mut out = Vec::new();
    for (name, path) in files {
        match media::prompts::Prompt::load(name, &path, encoders) {
            Ok(p) => out.push(Arc::new(p)),
            Err(e) => tracing::warn!(
                file = %path.display(),
                error = %e,
                "queue prompt not loaded; waiting callers will not hear what needs it"
            ),
        }
    }
    out
}

/// Music on hold by queue name, as [`load_prompts`] named the files.
fn moh_names(
    dir: &Path,
    queues: &[QueueDef],
) -> std::collections::HashMap<String, media::prompts::PromptName> {
    queues
        .iter()
        .filter_map(|q| {
            let path = dir.join(q.moh_file()?);
            Some((q.name.clone(), gateway::settings::menu_prompt_name(&path)))
        })
        .collect()
}

/// Where `[[table]]` number `index` of `key` (or a key inside it) starts, for semantic errors.
/// A trunk's `outbound` URI checked and resolved: `sip:` (no TLS yet), a host, UDP or
/// `;transport=tcp`, no user part (the dialled number goes there). The error says why not.
fn outbound_target(value: &str) -> Result<gateway::TrunkOutbound, String> {
    use std::net::ToSocketAddrs;
    let uri = sip::typed::parse_uri(value).map_err(|e| format!("is not a SIP URI ({})", e.0))?;
    let sip::Uri::Sip(u) = uri else {
        return Err("must be a sip: URI".into());
    };
    if u.secure {
        return Err("cannot be sips: (no TLS yet)".into());
    }
    if u.user.is_some() {
        return Err("must not have a user part (the dialled number goes there)".into());
    }
    let transport = match u.params.value("transport").map(str::to_ascii_lowercase) {
        None => sip::Transport::Udp,
        Some(t) if t == "udp" => sip::Transport::Udp,
        Some(t) if t == "tcp" => sip::Transport::Tcp,
        Some(t) => return Err(format!("has transport {t:?} (udp or tcp)")),
    };
    let host = match &u.host {
        sip::Host::Domain(d) => d.clone(),
        sip::Host::V4(a) => a.to_string(),
        sip::Host::V6(a) => a.to_string(),
    };
    let port = u.port.unwrap_or(5060);
    let addr = (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| format!("does not resolve ({e})"))?
        .next()
        .ok_or_else(|| "does not resolve".to_string())?;
    Ok(gateway::TrunkOutbound {
        uri: u,
        peer: sip::Peer { transport, addr },
    })
}

fn locate(text: &str, needle: &str, nth: usize) -> (usize, usize) {
    text.match_indices(needle)
        .nth(nth)
        .map(|(off, _)| line_col(text, off))
        .unwrap_or((1, 1))
}

/// Where `key = …` is set (not in a comment); (1, 1) when only the environment sets it.
fn locate_key(text: &str, key: &str) -> (usize, usize) {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed.strip_prefix(key) {
            if rest.trim_start().starts_with('=') {
                return line_col(text, offset + (line.len() - trimmed.len()));
            }
        }
        offset += line.len();
    }
    (1, 1)
}

fn parse_toml<T: serde::de::DeserializeOwned>(path: &Path, text: &str) -> Result<T, Problem> {
    toml::from_str::<T>(text).map_err(|e| {
        let (line, col) = e.span().map_or((1, 1), |s| line_col(text, s.start));
        Problem {
            path: path.display().to_string(),
            line,
            col,
            message: e.message().to_string(),
        }
    })
}

fn read(path: &Path) -> Result<String, Problem> {
    std::fs::read_to_string(path).map_err(|e| Problem {
        path: path.display().to_string(),
        line: 0,
        col: 0,
        message: format!("cannot read: {e}"),
    })
}

/// The main file layered with the `HOTLINE__…` variables of `env`, and its text.
fn main_with_env(
    main_path: &Path,
    env: impl Iterator<Item = (String, String)>,
) -> Result<(MainFile, String), ConfigErrors> {
    let text = read(main_path).map_err(|p| ConfigErrors(vec![p]))?;
    // First pass: the file alone, for errors with line and column.
    parse_toml::<MainFile>(main_path, &text).map_err(|p| ConfigErrors(vec![p]))?;
    // Second pass: the file layered with the environment.
    let env: std::collections::HashMap<String, String> =
        env.filter(|(k, _)| k.starts_with("HOTLINE__")).collect();
    let layered = config::Config::builder()
        .add_source(config::File::from_str(&text, config::FileFormat::Toml))
        .add_source(
            config::Environment::with_prefix("HOTLINE")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                .source(Some(env.clone())),
        )
        .build()
        .and_then(|c| c.try_deserialize::<MainFile>());
    match layered {
        Ok(mut m) => {
            resolve_data_paths(&mut m, main_path);
            Ok((m, text))
        }
        Err(e) => {
            let vars: Vec<_> = env.keys().cloned().collect();
            Err(ConfigErrors(vec![Problem {
                path: format!("environment ({})", vars.join(", ")),
                line: 0,
                col: 0,
                message: e.to_string(),
            }]))
        }
    }
}

/// The folder relative paths in `main_path` are taken from: the file's own folder, made
/// absolute (never the working directory the daemon happens to start in).
pub fn config_folder(main_path: &Path) -> PathBuf {
    let dir = main_path.parent().unwrap_or(Path::new("."));
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    std::fs::canonicalize(dir)
        .or_else(|_| std::path::absolute(dir))
        .unwrap_or_else(|_| dir.to_path_buf())
}

/// `base` joined with `rel`, with `.` and `..` taken out (`config/../data` → `data`).
fn join_clean(base: &Path, rel: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in base.join(rel).components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                if !out.pop() {
                    out.push(c);
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// `database.spool_dir`, `recording.dir` and a SQLite `database.url` given as relative paths
/// (in the file, by default or from the environment) are made absolute against the main
/// file's folder, like every file the configuration names.
fn resolve_data_paths(m: &mut MainFile, main_path: &Path) {
    let base = config_folder(main_path);
    let resolve = |p: &str| -> String {
        let path = Path::new(p);
        if path.is_absolute() {
            p.to_owned()
        } else {
            join_clean(&base, path).display().to_string()
        }
    };
    m.database.spool_dir = resolve(&m.database.spool_dir);
    m.recording.dir = resolve(&m.recording.dir);
    let url = &m.database.url;
    if let Some(rest) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    {
        let (file, query) = match rest.split_once('?') {
            Some((f, q)) => (f, Some(q)),
            None => (rest, None),
        };
        if !file.is_empty() && file != ":memory:" && !Path::new(file).is_absolute() {
            let mut resolved = format!("sqlite://{}", resolve(file));
            if let Some(q) = query {
                resolved.push('?');
                resolved.push_str(q);
            }
            m.database.url = resolved;
        }
    }
}

impl Config {
    /// Load the main file, the files it names, and environment overrides (`HOTLINE__SIP__LISTEN`…).
    pub fn load(main_path: &Path) -> Result<Config, ConfigErrors> {
        Self::load_with_env(main_path, std::env::vars())
    }

    /// Only the main file with the environment overrides, not the files it names (what
    /// `hotlined reload` needs to reach the running daemon, even when a menu is broken).
    pub fn load_main(main_path: &Path) -> Result<MainFile, ConfigErrors> {
        main_with_env(main_path, std::env::vars()).map(|(m, _)| m)
    }

    pub fn load_with_env(
        main_path: &Path,
        env: impl Iterator<Item = (String, String)>,
    ) -> Result<Config, ConfigErrors> {
        let mut problems = Vec::new();
        let (main, text) = main_with_env(main_path, env)?;
        let dir = main_path.parent().unwrap_or(Path::new("."));
        let mut trunk_nets = Vec::new();
        let mut trunk_outbound = Vec::new();
        for (i, t) in main.trunk.iter().enumerate() {
            let mut nets = Vec::new();
            for a in &t.allow {
                let parsed = a
                    .parse::<IpNet>()
                    .or_else(|_| a.parse::<std::net::IpAddr>().map(IpNet::from));
                match parsed {
                    Ok(n) => nets.push(n),
                    Err(_) => {
                        let (line, col) = locate(&text, &format!("\"{a}\""), 0);
                        problems.push(Problem {
                            path: main_path.display().to_string(),
                            line,
                            col,
                            message: format!(
                                "trunk {:?}: {a:?} is not an address or network",
                                t.name
                            ),
                        });
                    }
                }
            }
            if t.allow.is_empty() && t.username.is_none() {
                let (line, col) = locate(&text, "[[trunk]]", i);
                problems.push(Problem {
                    path: main_path.display().to_string(),
                    line,
                    col,
                    message: format!("trunk {:?} has neither `allow` nor `username`", t.name),
                });
            }
            trunk_nets.push(nets);
            let outbound = t
                .outbound
                .as_deref()
                .and_then(|o| match outbound_target(o) {
                    Ok(target) => Some(target),
                    Err(why) => {
                        let (line, col) = locate(&text, &format!("\"{o}\""), 0);
                        problems.push(Problem {
                            path: main_path.display().to_string(),
                            line,
                            col,
                            message: format!("trunk {:?}: outbound {o:?} {why}", t.name),
                        });
                        None
                    }
                });
            if t.username.is_some() != t.password.is_some() {
                let (line, col) = locate(&text, "[[trunk]]", i);
                problems.push(Problem {
                    path: main_path.display().to_string(),
                    line,
                    col,
                    message: format!("trunk {:?}: `username` and `password` go together", t.name),
                });
            }
            trunk_outbound.push(outbound);
        }
        for a in &main.sip.digest_algorithms {
            if sip::auth::Algorithm::parse(a).is_none() {
                let (line, col) = locate(&text, "digest_algorithms", 0);
                problems.push(Problem {
                    path: main_path.display().to_string(),
                    line,
                    col,
                    message: format!("sip.digest_algorithms: {a:?} is not MD5 or SHA-256"),
                });
            }
        }
        if parse_utc_offset(&main.reports.timezone).is_none() {
            let (line, col) = locate(&text, "timezone", 0);
            problems.push(Problem {
                path: main_path.display().to_string(),
                line,
                col,
                message: format!(
                    "reports.timezone {:?} is not a UTC offset like \"+07:00\"",
                    main.reports.timezone
                ),
            });
        }
        {
            let r = &main.reports;
            let bad = if !(1..=3600).contains(&r.wait_warn_seconds) {
                Some((
                    "wait_warn_seconds",
                    "reports.wait_warn_seconds must be 1..3600",
                ))
            } else if !(r.wait_warn_seconds..=3600).contains(&r.wait_alarm_seconds) {
                Some((
                    "wait_alarm_seconds",
                    "reports.wait_alarm_seconds must be wait_warn_seconds..3600",
                ))
            } else if !(1..=100).contains(&r.service_level_target_percent) {
                Some((
                    "service_level_target_percent",
                    "reports.service_level_target_percent must be 1..100",
                ))
            } else {
                None
            };
            if let Some((key, message)) = bad {
                let (line, col) = locate(&text, key, 0);
                problems.push(Problem {
                    path: main_path.display().to_string(),
                    line,
                    col,
                    message: message.into(),
                });
            }
        }
        if !(0..=3600).contains(&main.reports.service_level_seconds) {
            let (line, col) = locate(&text, "service_level_seconds", 0);
            problems.push(Problem {
                path: main_path.display().to_string(),
                line,
                col,
                message: "reports.service_level_seconds must be 0..3600".into(),
            });
        }
        {
            let a = &main.admin;
            let (line, col) = locate(&text, "[admin]", 0);
            for (key, v) in [
                ("session_idle_minutes", a.session_idle_minutes),
                ("session_max_hours", a.session_max_hours),
                ("lockout_failures", a.lockout_failures),
                ("address_lockout_failures", a.address_lockout_failures),
                ("lockout_minutes", a.lockout_minutes),
            ] {
                if v == 0 {
                    problems.push(Problem {
                        path: main_path.display().to_string(),
                        line,
                        col,
                        message: format!("admin.{key} must be at least 1"),
                    });
                }
            }
        }
        if let Some(p) = &main.partner {
            let (line, col) = locate(&text, "[partner]", 0);
            let mut say = |message: String| {
                problems.push(Problem {
                    path: main_path.display().to_string(),
                    line,
                    col,
                    message,
                })
            };
            if p.name.is_empty()
                || !p
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            {
                say(format!(
                    "partner.name {:?} must be letters, digits, - _ .",
                    p.name
                ));
            }
            let uri = p.url.parse::<hyper::Uri>().ok();
            if uri.as_ref().is_none_or(|u| {
                !matches!(u.scheme_str(), Some("http" | "https"))
                    || u.host().is_none()
                    || u.query().is_some()
            }) {
                say(format!(
                    "partner.url {:?} must be an https://host:port (or http://) base URL",
                    p.url
                ));
            }
            if p.ca.is_some() && uri.as_ref().and_then(|u| u.scheme_str()) == Some("http") {
                say(format!(
                    "partner.ca is set but partner.url {:?} is plain http://: use https://",
                    p.url
                ));
            }
            if p.token.is_empty() {
                say("partner.token must not be empty".into());
            }
            if p.retry_min_ms == 0 || p.retry_min_ms > p.retry_max_ms {
                say("partner.retry_min_ms must be 1..=retry_max_ms".into());
            }
        }
        if main.overload.queue_delay_ms == 0 || main.overload.queue_max == 0 {
            let (line, col) = locate(&text, "[overload]", 0);
            problems.push(Problem {
                path: main_path.display().to_string(),
                line,
                col,
                message: "overload.queue_delay_ms and overload.queue_max must be above 0".into(),
            });
        }
        let (admin_tls, partner_ca) = check_tls_files(main_path, &text, dir, &main, &mut problems);
        if main.rtp.port_min >= main.rtp.port_max {
            let (line, col) = locate(&text, "port_min", 0);
            problems.push(Problem {
                path: main_path.display().to_string(),
                line,
                col,
                message: "rtp.port_min must be below rtp.port_max".into(),
            });
        }

        let queues = match &main.queues {
            None => Vec::new(),
            Some(q) => {
                let path = dir.join(q);
                match read(&path).and_then(|t| parse_toml::<QueuesFile>(&path, &t)) {
                    Ok(f) => f.queue,
                    Err(p) => {
                        problems.push(p);
                        Vec::new()
                    }
                }
            }
        };
        let (feature_codes, mut feature_prompts) =
            feature_codes(main_path, &text, dir, &main.feature_codes, &mut problems);
        let lines_path = dir.join(&main.lines);
        let mut menus = std::collections::BTreeMap::new();
        let (lines, prompts) = match read(&lines_path)
            .and_then(|t| parse_toml::<LinesFile>(&lines_path, &t).map(|f| (t, f)))
        {
            Ok((t, f)) => {
                check_lines(&lines_path, &t, &f.line, &mut problems);
                let names: Vec<String> = queues.iter().map(|q| q.name.clone()).collect();
                menus = load_menus(&lines_path, &t, &f.line, &names, &mut problems);
                let prompts = load_prompts(
                    dir,
                    &lines_path,
                    &t,
                    &f.line,
                    &menus,
                    &queues,
                    std::mem::take(&mut feature_prompts),
                    &mut problems,
                );
                (f.line, prompts)
            }
            Err(p) => {
                problems.push(p);
                (
                    Vec::new(),
                    media::prompts::PromptCache::from_prompts([], &[]),
                )
            }
        };
        let ops_path = dir.join(&main.operators);
        let operators = match read(&ops_path)
            .and_then(|t| parse_toml::<OperatorsFile>(&ops_path, &t).map(|f| (t, f)))
        {
            Ok((t, f)) => {
                check_operators(&ops_path, &t, &f.operator, &mut problems);
                f.operator
            }
            Err(p) => {
                problems.push(p);
                Vec::new()
            }
        };
        let acd = crate::acd_config::build(
            dir,
            main.queues.as_deref(),
            &queues,
            &main.operators,
            &operators,
            &mut problems,
        );
        let directory = crate::directory::load(
            dir,
            crate::directory::Files {
                districts: main.districts.as_deref(),
                organisations: main.organisations.as_deref(),
                services: main.services.as_deref(),
                cases: main.cases.as_deref(),
            },
            &mut problems,
        );
        crate::acd_config::check_disposition_required(
            dir,
            main.queues.as_deref(),
            &queues,
            main.cases.as_deref().map(|c| dir.join(c)).as_deref(),
            directory.dispositions.len(),
            &mut problems,
        );
        if !problems.is_empty() {
            return Err(ConfigErrors(problems));
        }
        Ok(Config {
            directory: Arc::new(directory),
            feature_codes,
            acd,
            moh: moh_names(dir, &queues),
            main,
            lines,
            operators,
            queues,
            menus,
            trunk_nets,
            trunk_outbound,
            prompts: Arc::new(prompts),
            admin_tls,
            partner_ca,
        })
    }

    pub fn t1(&self) -> Duration {
        Duration::from_millis(self.main.sip.t1_ms)
    }

    /// The offset reports are taken at (checked when loading; UTC if somehow unreadable).
    pub fn report_tz(&self) -> chrono::FixedOffset {
        parse_utc_offset(&self.main.reports.timezone)
            .unwrap_or_else(|| chrono::Offset::fix(&chrono::Utc))
    }

    /// The report settings.
    /// The board's colour thresholds (`[reports]`).
    pub fn board_thresholds(&self) -> crate::admin::BoardThresholds {
        let r = &self.main.reports;
        crate::admin::BoardThresholds {
            wait_warn_seconds: u64::try_from(r.wait_warn_seconds).unwrap_or(30),
            wait_alarm_seconds: u64::try_from(r.wait_alarm_seconds).unwrap_or(60),
            service_level_target: r.service_level_target_percent as f64 / 100.0,
        }
    }

    pub fn report_options(&self) -> appeals::ReportOptions {
        appeals::ReportOptions {
            service_level_seconds: self.main.reports.service_level_seconds,
        }
    }
}

/// Reads and checks the admin HTTPS certificate and key (both or neither) and the partner's
/// CA file; a problem is located at the key naming the file.
fn check_tls_files(
    path: &Path,
    text: &str,
    dir: &Path,
    main: &MainFile,
    problems: &mut Vec<Problem>,
) -> (
    Option<Arc<rustls::sign::CertifiedKey>>,
    Vec<rustls::pki_types::CertificateDer<'static>>,
) {
    let mut say = |key: &str, message: String| {
        let (line, col) = locate_key(text, key);
        problems.push(Problem {
            path: path.display().to_string(),
            line,
            col,
            message,
        });
    };
    let a = &main.admin;
    let admin_tls = match (&a.tls_cert, &a.tls_key) {
        (None, None) => None,
        (Some(_), None) => {
            say(
                "tls_cert",
                "admin.tls_cert needs admin.tls_key (both or neither)".into(),
            );
            None
        }
        (None, Some(_)) => {
            say(
                "tls_key",
                "admin.tls_key needs admin.tls_cert (both or neither)".into(),
            );
            None
        }
        (Some(cert), Some(key)) => {
            match crate::tls::load_certified_key(&dir.join(cert), &dir.join(key)) {
                Ok(k) => Some(k),
                Err(e) => {
                    // the key file's problems at `tls_key`, the rest at `tls_cert`
                    let at = match &e {
                        crate::tls::PemError::Read { path, .. }
                        | crate::tls::PemError::NotPem { path, .. }
                        | crate::tls::PemError::Missing { path, .. }
                            if *path == dir.join(key).display().to_string() =>
                        {
                            "tls_key"
                        }
                        _ => "tls_cert",
                    };
                    say(at, format!("admin.{at}: {e}"));
                    None
                }
            }
        }
    };
    let partner_ca = match main.partner.as_ref().and_then(|p| p.ca.as_ref()) {
        None => Vec::new(),
        Some(ca) => match crate::tls::load_ca(&dir.join(ca)) {
            Ok(certs) => certs,
            Err(e) => {
                say("ca", format!("partner.ca: {e}"));
                Vec::new()
            }
        },
    };
    (admin_tls, partner_ca)
}

/// Checks `[feature_codes]` and loads its prompts: every code is `*` and 1 to 6 digits, no
/// code is another's beginning (the pause code's reasons follow it), reasons are 1 or 2 digits
/// with a one-line text.
fn feature_codes(
    path: &Path,
    text: &str,
    dir: &Path,
    fc: &FeatureCodesSection,
    problems: &mut Vec<Problem>,
) -> (gateway::FeatureCodes, Vec<Arc<media::prompts::Prompt>>) {
    let mut say = |needle: &str, message: String| {
        let (line, col) = text
            .find("[feature_codes]")
            .and_then(|start| {
                // `needle` may start with a newline so that `pause =` is not found in `unpause =`
                let skip = usize::from(needle.starts_with('\n'));
                let off = text.get(start..)?.find(needle)? + start + skip;
                Some(line_col(text, off))
            })
            .unwrap_or_else(|| locate(text, "[feature_codes]", 0));
        problems.push(Problem {
            path: path.display().to_string(),
            line,
            col,
            message,
        });
    };
    let codes = [
        ("login", &fc.login),
        ("logout", &fc.logout),
        ("pause", &fc.pause),
        ("unpause", &fc.unpause),
    ];
    for (key, code) in codes {
        let digits = code.strip_prefix('*').unwrap_or("");
        if digits.is_empty() || digits.len() > 6 || !digits.chars().all(|c| c.is_ascii_digit()) {
            say(
                &format!("\n{key} ="),
                format!("feature_codes.{key} {code:?} must be `*` and 1 to 6 digits"),
            );
        }
    }
    for (i, (ka, a)) in codes.iter().enumerate() {
        for (kb, b) in codes.iter().skip(i + 1) {
            if a.starts_with(b.as_str()) || b.starts_with(a.as_str()) {
                say(
                    &format!("\n{kb} ="),
                    format!("feature_codes.{kb} {b:?} and {ka} {a:?}: one begins the other"),
                );
            }
        }
    }
    for (digits, reason) in &fc.pause_reasons {
        if digits.is_empty() || digits.len() > 2 || !digits.chars().all(|c| c.is_ascii_digit()) {
            say(
                "pause_reasons",
                format!("feature_codes.pause_reasons: {digits:?} must be 1 or 2 digits"),
            );
        }
        if reason.trim().is_empty()
            || reason.chars().count() > 64
            || reason.chars().any(char::is_control)
        {
            say(
                "pause_reasons",
                format!("feature_codes.pause_reasons.{digits}: the reason must be 1 to 64 characters on one line"),
            );
        }
    }
    let encoders = media::prompts::G711;
    let folder = dir.join(fc.prompts.as_deref().unwrap_or(FEATURE_PROMPTS_DEFAULT));
    let mut loaded = Vec::new();
    let mut names: [Option<media::prompts::PromptName>; 5] = Default::default();
    for (slot, file) in names.iter_mut().zip(FEATURE_PROMPTS) {
        let wav = folder.join(format!("{file}.wav"));
        let name = media::prompts::PromptName::new(format!("feature/{file}"));
        match media::prompts::Prompt::load(name.clone(), &wav, &encoders) {
            Ok(p) => {
                loaded.push(Arc::new(p));
                *slot = Some(name);
            }
            Err(e) if fc.prompts.is_some() => say(
                "prompts",
                format!("feature_codes.prompts: {}: {e}", wav.display()),
            ),
            Err(_) => {}
        }
    }
    let [logged_in, logged_out, paused, unpaused, refused] = names;
    let codes = gateway::FeatureCodes {
        login: fc.login.clone(),
        logout: fc.logout.clone(),
        pause: fc.pause.clone(),
        unpause: fc.unpause.clone(),
        pause_reasons: fc
            .pause_reasons
            .iter()
            .map(|(d, r)| (d.clone(), r.clone()))
            .collect(),
        prompts: gateway::FeaturePrompts {
            logged_in,
            logged_out,
            paused,
            unpaused,
            refused,
        },
    };
    (codes, loaded)
}

fn check_lines(path: &Path, text: &str, lines: &[Line], problems: &mut Vec<Problem>) {
    let mut seen = std::collections::HashMap::new();
    for (i, l) in lines.iter().enumerate() {
        for n in std::iter::once(&l.number).chain(&l.aliases) {
            let norm = normalize_number(n);
            let (line, col) = locate(text, &format!("\"{n}\""), 0);
            if norm.is_empty() {
                problems.push(Problem {
                    path: path.display().to_string(),
                    line,
                    col,
                    message: format!("line {:?}: {n:?} has no digits", l.id),
                });
            } else if let Some(other) = seen.insert(norm.clone(), l.id.clone()) {
                problems.push(Problem {
                    path: path.display().to_string(),
                    line,
                    col,
                    message: format!(
                        "number {n:?} of line {:?} is already line {other:?}'s",
                        l.id
                    ),
                });
            }
        }
        if gateway::DtmfMode::parse(&l.dtmf).is_none() {
            let (line, col) = locate(text, &format!("\"{}\"", l.dtmf), 0);
            problems.push(Problem {
                path: path.display().to_string(),
                line,
                col,
                message: format!(
                    "line {:?}: dtmf must be \"auto\", \"rfc4733\", \"info\" or \"inband\", not {:?}",
                    l.id, l.dtmf
                ),
            });
        }
        if !(0.0..=120.0).contains(&l.ring_seconds) {
            let (line, col) = locate(text, "ring_seconds", i);
            problems.push(Problem {
                path: path.display().to_string(),
                line,
                col,
                message: format!("line {:?}: ring_seconds must be 0..120", l.id),
            });
        }
    }
}

/// Loads and checks every line's voice menu (see `ivr::load`); the menus' problems are located
/// in their own files, an unknown start node at the line's `start` key.
fn load_menus(
    path: &Path,
    text: &str,
    lines: &[Line],
    queues: &[String],
    problems: &mut Vec<Problem>,
) -> std::collections::BTreeMap<String, std::sync::Arc<ivr::Menu>> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut menus = std::collections::BTreeMap::new();
    let shown = path.display().to_string();
    for (i, l) in lines.iter().enumerate() {
        let Some(files) = &l.ivr else {
            if l.start.is_some() {
                let (line, col) = locate(text, "[[line]]", i);
                problems.push(Problem {
                    path: shown.clone(),
                    line,
                    col,
                    message: format!("line {:?} has `start` but no `ivr` menu files", l.id),
                });
            }
            continue;
        };
        let files: Vec<std::path::PathBuf> = files.list().iter().map(|f| dir.join(f)).collect();
        // Where this line's `start` is written, else its [[line]] header.
        let table = text
            .match_indices("[[line]]")
            .nth(i)
            .map_or(0, |(off, _)| off);
        let table_end = text
            .get(table + 1..)
            .and_then(|t| t.find("[[line]]"))
            .map_or(text.len(), |e| table + 1 + e);
        let start_off = text
            .get(table..table_end)
            .and_then(|t| t.find("\nstart"))
            .map_or(table, |o| table + o + 1);
        let (line, col) = line_col(text, start_off);
        let cx = ivr::Context {
            start: l.start_node(),
            start_at: Some((&shown, line, col)),
            queues: Some(queues),
        };
        match ivr::load(&files, &cx) {
            Ok(menu) => {
                menus.insert(l.id.clone(), std::sync::Arc::new(menu));
            }
            Err(found) => problems.extend(found.into_iter().map(|p| Problem {
                path: p.path,
                line: p.line,
                col: p.col,
                message: p.message,
            })),
        }
    }
    menus
}

fn check_operators(path: &Path, text: &str, ops: &[Operator], problems: &mut Vec<Problem>) {
    let mut seen = std::collections::HashSet::new();
    for (i, o) in ops.iter().enumerate() {
        let (line, col) = locate(text, "[[operator]]", i);
        let mut say = |message: String| {
            problems.push(Problem {
                path: path.display().to_string(),
                line,
                col,
                message,
            })
        };
        if o.login.is_empty()
            || !o
                .login
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            say(format!(
                "operator login {:?} must be letters, digits, - _ .",
                o.login
            ));
        }
        if !seen.insert(o.login.clone()) {
            say(format!("operator {:?} is listed twice", o.login));
        }
        if o.password.is_none() && o.ha1_md5.is_none() && o.ha1_sha256.is_none() {
            say(format!(
                "operator {:?} needs `password`, `ha1_md5` or `ha1_sha256`",
                o.login
            ));
        }
        for (name, h, len) in [
            ("ha1_md5", &o.ha1_md5, 32),
            ("ha1_sha256", &o.ha1_sha256, 64),
        ] {
            if let Some(h) = h {
                if h.len() != len || !h.chars().all(|c| c.is_ascii_hexdigit()) {
                    say(format!(
                        "operator {:?}: {name} must be {len} hex digits",
                        o.login
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo_config() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/hotline.toml")
    }

    #[test]
    fn shipped_config_loads() {
        let c = Config::load_with_env(&repo_config(), std::iter::empty()).unwrap();
        assert_eq!(c.lines.len(), 2);
        assert!(c.operators.len() >= 6);
        assert_eq!(c.main.sip.listen, SocketAddr::from(([127, 0, 0, 1], 5060)));
        let d = &c.directory;
        assert_eq!(d.districts.len(), 10);
        // every district has its social service centre, and home care goes to it
        for district in &d.districts {
            let centre = d.suggest("home-care", Some(&district.id)).unwrap();
            assert_eq!(centre.districts, std::slice::from_ref(&district.id));
            assert!(centre
                .name
                .contains("Комплексный центр социального обслуживания"));
        }
    }

    #[test]
    fn minsk_example_loads_with_a_centre_per_district() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../config/examples/minsk-139/hotline.toml");
        let c = Config::load_with_env(&path, std::iter::empty()).unwrap();
        assert_eq!(c.lines.len(), 1);
        let d = &c.directory;
        let names: Vec<&str> = d.districts.iter().map(|x| x.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "Заводской",
                "Ленинский",
                "Московский",
                "Октябрьский",
                "Партизанский",
                "Первомайский",
                "Советский",
                "Фрунзенский",
                "Центральный"
            ]
        );
        for district in &d.districts {
            let centre = d.suggest("home-care", Some(&district.id)).unwrap();
            assert_eq!(centre.districts, std::slice::from_ref(&district.id));
            assert!(centre
                .name
                .contains("Территориальный центр социального обслуживания"));
        }
    }

    #[test]
    fn shipped_feature_codes_and_their_prompts_load() {
        let c = Config::load_with_env(&repo_config(), std::iter::empty()).unwrap();
        let f = &c.feature_codes;
        assert_eq!(
            (&*f.login, &*f.logout, &*f.pause, &*f.unpause),
            ("*1", "*2", "*3", "*4")
        );
        assert_eq!(
            f.parse("*31"),
            Some(gateway::OperatorCommand::Pause {
                reason: "break".into()
            })
        );
        for p in [
            &f.prompts.logged_in,
            &f.prompts.logged_out,
            &f.prompts.paused,
            &f.prompts.unpaused,
            &f.prompts.refused,
        ] {
            let name = p.as_ref().expect("every confirmation prompt is shipped");
            let prompt = c.prompts.get(name).expect("in the prompt cache");
            assert!(prompt.duration() > std::time::Duration::from_millis(500));
        }
    }

    #[test]
    fn bad_feature_codes_are_located() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("hotline.toml");
        std::fs::write(
            &p,
            "lines = \"l.toml\"\noperators = \"o.toml\"\n[feature_codes]\nlogin = \"#1\"\n\
             pause = \"*1\"\nunpause = \"*12\"\npause_reasons = { 123 = \"long\", 5 = \"\" }\n\
             prompts = \"nowhere\"\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("l.toml"),
            "[[line]]\nid = \"a\"\nnumber = \"375\"\nname = \"A\"\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("o.toml"),
            "[[operator]]\nlogin = \"op1\"\nname = \"x\"\npassword = \"p\"\n",
        )
        .unwrap();
        let s = Config::load_with_env(&p, std::iter::empty())
            .unwrap_err()
            .to_string();
        let at = |line: usize, col: usize| format!("{}:{line}:{col}: ", p.display());
        for want in [
            format!(
                "{}feature_codes.login \"#1\" must be `*` and 1 to 6 digits",
                at(4, 1)
            ),
            format!(
                "{}feature_codes.unpause \"*12\" and pause \"*1\": one begins the other",
                at(6, 1)
            ),
            format!(
                "{}feature_codes.pause_reasons: \"123\" must be 1 or 2 digits",
                at(7, 1)
            ),
            format!(
                "{}feature_codes.pause_reasons.5: the reason must be 1 to 64 characters on one line",
                at(7, 1)
            ),
            format!("{}feature_codes.prompts: ", at(8, 1)),
        ] {
            assert!(s.contains(&want), "no {want:?} in\n{s}");
        }
    }

    #[test]
    fn env_overrides_file() {
        let env = vec![
            (
                "HOTLINE__SIP__LISTEN".to_string(),
                "127.0.0.1:5080".to_string(),
            ),
            (
                "HOTLINE__ADMIN__LISTEN".to_string(),
                "127.0.0.1:18080".to_string(),
            ),
            ("OTHER".to_string(), "x".to_string()),
        ];
        let c = Config::load_with_env(&repo_config(), env.into_iter()).unwrap();
        assert_eq!(c.main.sip.listen.port(), 5080);
        assert_eq!(c.main.admin.listen.port(), 18080);
    }

    #[test]
    fn typo_is_reported_with_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("hotline.toml");
        std::fs::write(&p, "lines = \"l.toml\"\noperators = \"o.toml\"\n[sip]\nlisten = \"127.0.0.1:5060\"\nlisen_v6 = \"[::1]:5060\"\n").unwrap();
        let e = Config::load_with_env(&p, std::iter::empty()).unwrap_err();
        let s = e.to_string();
        assert!(
            s.starts_with(&format!("{}:5:1: unknown field `lisen_v6`", p.display())),
            "{s}"
        );
    }

    #[test]
    fn semantic_problems_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("hotline.toml");
        std::fs::write(&p, "lines = \"l.toml\"\noperators = \"o.toml\"\n").unwrap();
        std::fs::write(dir.path().join("l.toml"), "[[line]]\nid = \"a\"\nnumber = \"375\"\nname = \"A\"\n[[line]]\nid = \"b\"\nnumber = \"3-7-5\"\nname = \"B\"\n").unwrap();
        std::fs::write(
            dir.path().join("o.toml"),
            "[[operator]]\nlogin = \"op1\"\nname = \"x\"\n",
        )
        .unwrap();
        let e = Config::load_with_env(&p, std::iter::empty()).unwrap_err();
        let s = e.to_string();
        assert!(
            s.contains("l.toml:7:10: number \"3-7-5\" of line \"b\" is already line \"a\"'s"),
            "{s}"
        );
        assert!(s.contains("o.toml:1:1: operator \"op1\" needs"), "{s}");
    }

    #[test]
    fn trunk_outbound_targets_are_checked_and_resolved() {
        let t = outbound_target("sip:127.0.0.1:5080").unwrap();
        assert_eq!(t.peer.addr, SocketAddr::from(([127, 0, 0, 1], 5080)));
        assert_eq!(t.peer.transport, sip::Transport::Udp);
        let t = outbound_target("sip:[::1];transport=TCP").unwrap();
        assert_eq!(t.peer.addr.port(), 5060);
        assert_eq!(t.peer.transport, sip::Transport::Tcp);
        for (bad, why) in [
            ("127.0.0.1:5080", "is not a SIP URI"),
            ("tel:+7913", "must be a sip: URI"),
            ("sips:127.0.0.1", "no TLS"),
            ("sip:88005553535@127.0.0.1", "user part"),
            ("sip:127.0.0.1;transport=sctp", "transport"),
            ("sip:no-such-host.invalid", "does not resolve"),
        ] {
            let e = outbound_target(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn a_bad_trunk_outbound_is_reported_at_its_value() {
        let text = std::fs::read_to_string(repo_config()).unwrap();
        let text = text.replace(
            "allow = [\"127.0.0.1\", \"::1\"]",
            "allow = [\"127.0.0.1\", \"::1\"]\noutbound = \"sips:10.0.0.1\"\nusername = \"u\"",
        );
        // the main file next to the shipped ones, so the files it names are found
        let shipped = repo_config().parent().unwrap().to_path_buf();
        let p = shipped.join(format!(".test-outbound-{}.toml", std::process::id()));
        std::fs::write(&p, &text).unwrap();
        let result = Config::load_with_env(&p, std::iter::empty());
        std::fs::remove_file(&p).unwrap();
        let s = result.unwrap_err().to_string();
        let line = text
            .lines()
            .position(|l| l.starts_with("outbound = "))
            .unwrap()
            + 1;
        assert!(
            s.contains(&format!(
                ":{line}:12: trunk \"local-test\": outbound \"sips:10.0.0.1\""
            )),
            "{s}"
        );
        assert!(s.contains("`username` and `password` go together"), "{s}");
    }

    #[test]
    fn reports_section_defaults_and_checks() {
        let c = Config::load_with_env(&repo_config(), std::iter::empty()).unwrap();
        assert_eq!(c.main.reports.service_level_seconds, 20);
        assert_eq!(c.report_tz().local_minus_utc(), 7 * 3600);
        let env = vec![(
            "HOTLINE__REPORTS__TIMEZONE".to_string(),
            "Asia/Novosibirsk".to_string(),
        )];
        let e = Config::load_with_env(&repo_config(), env.into_iter()).unwrap_err();
        assert!(e.to_string().contains("reports.timezone"), "{e}");
        assert_eq!(
            parse_utc_offset("-03:30").unwrap().local_minus_utc(),
            -(3 * 3600 + 1800)
        );
        assert_eq!(
            parse_utc_offset("+0530").unwrap().local_minus_utc(),
            5 * 3600 + 1800
        );
        assert_eq!(parse_utc_offset("Z").unwrap().local_minus_utc(), 0);
        for bad in ["07:00", "+7", "+07:60", "+15:00", "+07:00:00", "", "+"] {
            assert!(parse_utc_offset(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn shipped_greetings_are_loaded_and_encoded() {
        let c = Config::load_with_env(&repo_config(), std::iter::empty()).unwrap();
        for l in &c.lines {
            let name = greeting_name(l).expect("every shipped line has a greeting");
            let p = c.prompts.get(&name).expect("loaded");
            assert!(
                p.duration() > Duration::from_secs(2),
                "{name}: {:?}",
                p.duration()
            );
            assert_eq!(p.encoded_frame("PCMU", 0).map(<[u8]>::len), Some(160));
            assert_eq!(p.encoded_frame("PCMA", 0).map(<[u8]>::len), Some(160));
        }
    }

    /// Every prompt a waiting caller may hear is in the shipped configuration's cache, under
    /// the name the gateway plays it by: a whole announcement and the callback dialogue can
    /// be built from it.
    #[test]
    fn shipped_queue_prompts_are_loaded() {
        let c = Config::load_with_env(&repo_config(), std::iter::empty()).unwrap();
        let names = media::numbers_ru::PIECES
            .iter()
            .map(|(n, _)| *n)
            .chain(gateway::WAITING_PROMPTS.iter().map(|(n, _)| *n));
        for n in names {
            let p = c.prompts.get(&media::prompts::PromptName::new(n));
            assert!(p.is_some_and(|p| p.duration() > Duration::ZERO), "{n}");
        }
    }

    #[test]
    fn partner_section_from_the_environment_and_checked() {
        let c = Config::load_with_env(&repo_config(), std::iter::empty()).unwrap();
        assert!(c.main.partner.is_none());
        let env = |url: &str| {
            vec![
                ("HOTLINE__PARTNER__NAME".to_string(), "city".to_string()),
                ("HOTLINE__PARTNER__URL".to_string(), url.to_string()),
                ("HOTLINE__PARTNER__TOKEN".to_string(), "shared".to_string()),
            ]
            .into_iter()
        };
        let c = Config::load_with_env(&repo_config(), env("http://127.0.0.1:18081")).unwrap();
        let p = c.main.partner.unwrap();
        assert_eq!(
            (p.name.as_str(), p.url.as_str(), p.token.as_str()),
            ("city", "http://127.0.0.1:18081", "shared")
        );
        assert_eq!((p.retry_min_ms, p.retry_max_ms), (500, 60_000));
        let c = Config::load_with_env(&repo_config(), env("https://region.example")).unwrap();
        assert_eq!(c.main.partner.unwrap().url, "https://region.example");
        for bad in ["ftp://region.example", "127.0.0.1:18081", "http://h/?x=1"] {
            let e = Config::load_with_env(&repo_config(), env(bad)).unwrap_err();
            assert!(e.to_string().contains("partner.url"), "{bad}: {e}");
        }
    }

    #[test]
    fn bad_greetings_and_dtmf_modes_are_reported_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("hotline.toml");
        std::fs::write(&p, "lines = \"l.toml\"\noperators = \"o.toml\"\n").unwrap();
        std::fs::write(dir.path().join("stereo.wav"), {
            let mut c = std::io::Cursor::new(Vec::new());
            let spec = hound::WavSpec {
                channels: 2,
                sample_rate: 8000,
                bits_per_sample: 16,
                sample_format: hound::SampleFormat::Int,
            };
            let mut w = hound::WavWriter::new(&mut c, spec).unwrap();
            w.write_sample(0i16).unwrap();
            w.write_sample(0i16).unwrap();
            w.finalize().unwrap();
            c.into_inner()
        })
        .unwrap();
        std::fs::write(
            dir.path().join("l.toml"),
            "[[line]]\nid = \"a\"\nnumber = \"375\"\nname = \"A\"\ngreeting = \"missing.wav\"\n\
             [[line]]\nid = \"b\"\nnumber = \"376\"\nname = \"B\"\ngreeting = \"stereo.wav\"\ndtmf = \"tones\"\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("o.toml"),
            "[[operator]]\nlogin = \"op1\"\nname = \"x\"\npassword = \"p\"\n",
        )
        .unwrap();
        let s = Config::load_with_env(&p, std::iter::empty())
            .unwrap_err()
            .to_string();
        let missing = dir.path().join("missing.wav");
        let stereo = dir.path().join("stereo.wav");
        assert!(
            s.contains(&format!(
                "l.toml:5:12: {}: prompt file not found",
                missing.display()
            )),
            "{s}"
        );
        assert!(
            s.contains(&format!(
                "l.toml:10:12: {}: 2 channels; prompts must be mono",
                stereo.display()
            )),
            "{s}"
        );
        assert!(s.contains("l.toml:11:8: line \"b\": dtmf must be"), "{s}");
    }

    #[test]
    fn numbers_normalise() {
        assert_eq!(normalize_number("8-800-201-53-88"), "88002015388");
        assert_eq!(normalize_number("+78002015388"), "88002015388");
        assert_eq!(normalize_number("+73833758787"), "83833758787");
        assert_eq!(normalize_number("375-87-87"), "3758787");
    }
}
