//! `hotlined`: the Hotline daemon.

mod accounts;
mod acd_config;
mod admin;
mod appeal_log;
mod config;
mod data_dirs;
mod directory;
mod disposition_hold;
mod labels;
mod live;
mod partner;
mod reload;
mod report;
mod retention;
mod tls;
mod user_cli;
mod web;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use gateway::{Gateway, LineSettings, OperatorSettings, Settings, Stats, TrunkSettings};
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use crate::config::Config;

/// mimalloc, not the system's malloc: it returns the pages a burst of calls used to the system
/// within moments of their being freed, where glibc's arenas kept the peak (25 MB idle grew to
/// 229 MB after three 15 s bursts at 3 000 calls/s, and stayed); docs/BENCHMARKS.md, soak.
/// The `system-alloc` feature leaves it out, for a heap profile under heaptrack.
#[cfg(not(feature = "system-alloc"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "hotlined",
    version,
    about = "Hotline: a social-services telephone hotline daemon"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// The main configuration file.
    #[arg(long, global = true, default_value = "config/hotline.toml")]
    config: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon (the default).
    Run,
    /// Validate every configuration file; exit 1 with `path:line:col: problem` lines.
    Check,
    /// Call and appeal statistics from the database, per day and for the period.
    Report {
        /// First day, YYYY-MM-DD (default: today at `reports.timezone`).
        #[arg(long)]
        from: Option<chrono::NaiveDate>,
        /// Last day, included (default: the first day).
        #[arg(long)]
        to: Option<chrono::NaiveDate>,
        #[arg(long, value_enum, default_value = "table")]
        format: report::Format,
        /// The language of the table, CSV and HTML (Russian unless `en`).
        #[arg(long, value_enum, default_value = "ru")]
        lang: report::Lang,
    },
    /// Walk a line's voice menu as a caller would, on virtual time, without the network:
    /// prompts played, keys taken, timeouts, and where the call ends.
    Simulate {
        /// The line: its number (any spelling: 8-800-201-53-88) or its id.
        #[arg(long)]
        line: String,
        /// Civil time of the call (RFC 3339, e.g. 2026-11-23T10:00:00+07:00); default now.
        #[arg(long)]
        at: Option<String>,
        /// Keys the caller presses in turn, e.g. "1 * 0"; when they run out, waits time out.
        #[arg(long, default_value = "")]
        digits: String,
        /// The caller's number, offered back by callback nodes ("" for a hidden number).
        #[arg(long, default_value = "+79130000000")]
        caller: String,
    },
    /// Ask the running daemon to load its configuration again (as SIGHUP does), through
    /// `POST /api/v1/reload` on the admin address with the admin token of --config; prints
    /// the problems and exits 1 when the new configuration is refused.
    Reload,
    /// The appeal spool (`database.spool_dir`) while no daemon has it open.
    Spool {
        #[command(subcommand)]
        command: SpoolCommand,
    },
    /// Personal accounts in the database: add, passwd, disable, enable, list.
    User {
        #[command(subcommand)]
        command: user_cli::UserCommand,
    },
}

#[derive(Subcommand)]
enum SpoolCommand {
    /// Give the spool, with whatever operations wait in it, to the database of --config: they
    /// are written there at the next start. For moving a spool on purpose; a daemon refuses a
    /// spool written for another database.
    Adopt,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Run);
    if !matches!(command, Command::Run) {
        // A command whose output goes to `head` ends there, quietly, as every Unix tool does
        // (Rust ignores SIGPIPE, and `println!` then panics on the closed pipe). The daemon
        // keeps ignoring it: a peer closing a socket must never end it.
        sigpipe::reset();
    }
    match command {
        Command::Check => check(&cli.config),
        Command::Report {
            from,
            to,
            format,
            lang,
        } => match run_report(&cli.config, from, to, format, lang) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("hotlined report: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Simulate {
            line,
            at,
            digits,
            caller,
        } => simulate(&cli.config, &line, at.as_deref(), &digits, &caller),
        Command::Reload => reload_cli(&cli.config),
        Command::Spool {
            command: SpoolCommand::Adopt,
        } => match adopt_spool(&cli.config) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("hotlined spool adopt: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::User { command } => {
            let c = match Config::load(&cli.config) {
                Ok(c) => c,
                Err(errors) => {
                    eprintln!("hotlined user: invalid configuration:\n{errors}");
                    return ExitCode::FAILURE;
                }
            };
            match user_cli::run(&c, command) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("hotlined user: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Run => match run(&cli.config) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("hotlined: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

fn check(path: &std::path::Path) -> ExitCode {
    match Config::load(path) {
        Ok(c) => {
            println!("{}: OK", path.display());
            println!(
                "  SIP       {} (UDP+TCP){}",
                c.main.sip.listen,
                c.main
                    .sip
                    .listen_v6
                    .map(|a| format!(", {a}"))
                    .unwrap_or_default()
            );
            println!(
                "  admin     {}://{}",
                c.main.admin.scheme(),
                c.main.admin.listen
            );
            let admin_leaf = c.admin_tls.as_ref().and_then(|k| k.cert.first());
            if let Some(leaf) = admin_leaf {
                let until = tls::not_after(leaf)
                    .map(|t| format!(", valid until {}", t.format("%Y-%m-%d")))
                    .unwrap_or_default();
                println!(
                    "  tls       certificate sha256 {}{until}",
                    tls::fingerprint(leaf)
                );
            }
            let now = chrono::Utc::now();
            let ends = admin_leaf
                .and_then(|leaf| tls::expiry_problem("admin.tls_cert", leaf, now))
                .into_iter()
                .chain(
                    c.partner_ca
                        .iter()
                        .filter_map(|ca| tls::expiry_problem("partner.ca", ca, now)),
                );
            for problem in ends {
                println!("  warning   {problem}");
            }
            if !c.main.admin.token.is_empty() {
                println!("  warning   admin.token is set: the shared legacy token acts as an admin; give people accounts and API tokens instead");
            }
            println!(
                "  database  {}",
                appeals::db::redact_url(&c.main.database.url)
            );
            println!("  spool     {}", c.main.database.spool_dir);
            println!("  recordings {}", c.main.recording.dir);
            if let Some(p) = &c.main.partner {
                println!("  partner   {} -> {}", p.name, p.url);
            }
            for l in &c.lines {
                println!("  line      {} {:<12} {}", l.id, l.number, l.name);
                if let Some(m) = c.menus.get(&l.id) {
                    println!(
                        "  ivr       {}: {} nodes, {} prompts, start {:?}",
                        l.id,
                        m.nodes().len(),
                        m.prompts().len(),
                        l.start_node()
                    );
                }
            }
            for (def, q) in c.queues.iter().zip(&c.acd.queues) {
                println!(
                    "  queue     {} ({})",
                    acd_config::summary(&c.acd, q),
                    def.title
                );
            }
            for o in &c.operators {
                println!("  operator  {:<12} {}", o.login, o.name);
            }
            println!(
                "  trunks    {}",
                c.main
                    .trunk
                    .iter()
                    .map(|t| t.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let d = &c.directory;
            println!(
                "  directory {} districts, {} organisations, {} services; {} social categories, {} flags, {} dispositions",
                d.districts.len(),
                d.organisations.len(),
                d.services.len(),
                d.social_categories.len(),
                d.flags.len(),
                d.dispositions.len()
            );
            for line in unknown_organisations(&c) {
                println!("  {line}");
            }
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for p in &errors.0 {
                println!("{p}");
            }
            ExitCode::FAILURE
        }
    }
}

/// `hotlined check`: a warning for each existing organisation account whose organisation
/// `organisations.toml` does not have (it would see no applications). Reads the accounts
/// only: an SQLite database that is not there yet is not made, migrations are not run; a
/// database that does not answer within a few seconds is a note, not a failure.
fn unknown_organisations(c: &Config) -> Vec<String> {
    let url = &c.main.database.url;
    if let Some(path) = url
        .strip_prefix("sqlite://")
        .or(url.strip_prefix("sqlite:"))
    {
        let file = path.split('?').next().unwrap_or(path);
        if !std::path::Path::new(file).exists() {
            return Vec::new();
        }
    }
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return Vec::new();
    };
    let read = rt.block_on(async {
        let wait = std::time::Duration::from_secs(3);
        let pool = tokio::time::timeout(wait, appeals::db::connect(url, 1, wait))
            .await
            .map_err(|_| "the database did not answer".to_owned())?
            .map_err(|e| e.to_string())?;
        let rows: Result<Vec<(String, String)>, _> = sqlx::query_as(
            "SELECT id, organisation_id FROM users WHERE organisation_id IS NOT NULL ORDER BY id",
        )
        .fetch_all(&pool)
        .await;
        pool.close().await;
        // no accounts table yet: nothing to check
        Ok::<_, String>(rows.unwrap_or_default())
    });
    match read {
        Ok(rows) => rows
            .into_iter()
            .filter(|(_, org)| c.directory.organisation(org).is_none())
            .map(|(id, org)| {
                format!(
                    "warning   account {id:?} names organisation {org:?}, which organisations.toml does not have: it sees no applications until one of them is corrected"
                )
            })
            .collect(),
        Err(e) => vec![format!("note      organisation accounts not checked: {e}")],
    }
}

/// `hotlined simulate`: exit 0 with the caller's walk, 1 on a bad configuration or line.
fn simulate(
    path: &std::path::Path,
    line: &str,
    at: Option<&str>,
    digits: &str,
    caller: &str,
) -> ExitCode {
    let c = match Config::load(path) {
        Ok(c) => c,
        Err(errors) => {
            for p in &errors.0 {
                println!("{p}");
            }
            return ExitCode::FAILURE;
        }
    };
    let wanted = gateway::settings::normalize_number(line);
    let Some(l) = c.lines.iter().find(|l| {
        l.id == line
            || std::iter::once(&l.number)
                .chain(&l.aliases)
                .any(|n| !wanted.is_empty() && gateway::settings::normalize_number(n) == wanted)
    }) else {
        eprintln!("hotlined: no line {line:?} in the configuration");
        return ExitCode::FAILURE;
    };
    let Some(menu) = c.menus.get(&l.id) else {
        eprintln!(
            "hotlined: line {:?} has no voice menu (`ivr` in the lines file)",
            l.id
        );
        return ExitCode::FAILURE;
    };
    let at = match at {
        None => chrono::Utc::now().fixed_offset(),
        Some(s) => match chrono::DateTime::parse_from_rfc3339(s) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("hotlined: --at {s:?} is not an RFC 3339 time ({e}); e.g. 2026-11-23T10:00:00+07:00");
                return ExitCode::FAILURE;
            }
        },
    };
    let caller = (!caller.is_empty()).then_some(caller);
    println!(
        "line {} ({}), start {:?}, at {}, caller {}, keys {:?}",
        l.number,
        l.id,
        l.start_node(),
        at.to_rfc3339(),
        caller.unwrap_or("hidden"),
        digits
    );
    let sim = ivr::simulate::simulate(
        menu.clone(),
        l.start_node(),
        at.to_utc(),
        caller,
        digits,
        std::time::Instant::now(),
    );
    for t in &sim.transcript {
        println!("{t}");
    }
    println!("ends: {}", sim.ending());
    println!("path: {}", sim.path.join(" > "));
    if !sim.variables.is_empty() {
        let vars: Vec<String> = sim
            .variables
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        println!("variables: {}", vars.join(", "));
    }
    if !sim.unused_keys.is_empty() {
        println!("keys not used: {}", sim.unused_keys);
    }
    ExitCode::SUCCESS
}

fn init_tracing(c: &Config) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("HOTLINE_LOG")
        .or_else(|_| EnvFilter::try_new(&c.main.log.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if c.main.log.format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Turn the checked file configuration into what the gateway runs on.
pub(crate) fn gateway_settings(c: &Config) -> Settings {
    let m = &c.main;
    let mut listen = vec![m.sip.listen];
    listen.extend(m.sip.listen_v6);
    Settings {
        listen,
        user_agent: m.sip.user_agent.clone(),
        realm: m.sip.realm.clone(),
        max_message_size: m.sip.max_message_size,
        t1: c.t1(),
        lockout_failures: m.sip.lockout_failures,
        lockout: Duration::from_secs(m.sip.lockout_seconds),
        digest_algorithms: m
            .sip
            .digest_algorithms
            .iter()
            .filter_map(|a| sip::auth::Algorithm::parse(a))
            .collect(),
        lines: c
            .lines
            .iter()
            .map(|l| LineSettings {
                id: l.id.clone(),
                numbers: std::iter::once(&l.number)
                    .chain(&l.aliases)
                    .map(|n| gateway::settings::normalize_number(n))
                    .collect(),
                name: l.name.clone(),
                ring: Duration::from_secs_f64(l.ring_seconds),
                greeting: config::greeting_name(l),
                dtmf: gateway::DtmfMode::parse(&l.dtmf).unwrap_or_default(),
                record: l.record,
                menu: c.menus.get(&l.id).cloned(),
                start: l.start_node().to_owned(),
            })
            .collect(),
        trunks: m
            .trunk
            .iter()
            .zip(&c.trunk_nets)
            .zip(&c.trunk_outbound)
            .map(|((t, nets), outbound)| TrunkSettings {
                name: t.name.clone(),
                allow: nets.clone(),
                credentials: t.username.clone().zip(t.password.clone()),
                outbound: outbound.clone(),
            })
            .collect(),
        operators: c
            .operators
            .iter()
            .map(|o| OperatorSettings {
                login: o.login.clone(),
                secret: match &o.password {
                    Some(p) => sip::auth::Secret::Plain(p.clone()),
                    None => sip::auth::Secret::Ha1 {
                        md5: o.ha1_md5.clone(),
                        sha256: o.ha1_sha256.clone(),
                    },
                },
            })
            .collect(),
        rtp_ports: (m.rtp.port_min, m.rtp.port_max),
        rtp_address: m.rtp.address,
        rtp_timeout: (m.rtp.timeout_seconds > 0)
            .then(|| Duration::from_secs(m.rtp.timeout_seconds)),
        prompts: c.prompts.clone(),
        recordings_dir: m.recording.dir.clone().into(),
        session_expires: m.calls.session_expires,
        max_call: Duration::from_secs(m.calls.max_duration),
        shutdown_grace: Duration::from_secs(m.calls.shutdown_grace),
        redact_callers: m.log.redact_callers,
        moh: c.moh.clone(),
        acd: Some(c.acd.clone()),
        feature_codes: c.feature_codes.clone(),
        roster: live::roster(c),
    }
}

/// `hotlined spool adopt`: the spool of --config now belongs to its database.
fn adopt_spool(path: &std::path::Path) -> anyhow::Result<()> {
    let m = Config::load_main(path).map_err(|e| anyhow::anyhow!("invalid configuration:\n{e}"))?;
    let dir = std::path::Path::new(&m.database.spool_dir);
    // never under a running daemon's feet
    let _lock = data_dirs::lock(dir)?;
    let (previous, waiting) = appeals::spool::adopt(dir, &m.database.url)?;
    println!(
        "the appeal spool {} ({waiting} operations waiting, written for {}) now belongs to {}; they are written there at the next start",
        dir.display(),
        previous.as_deref().unwrap_or("no recorded database"),
        appeals::spool::database_identity(&m.database.url)?
    );
    Ok(())
}

fn run(path: &std::path::Path) -> anyhow::Result<()> {
    // Bad config exits with its problems before any port is bound.
    let c =
        Arc::new(Config::load(path).map_err(|e| anyhow::anyhow!("invalid configuration:\n{e}"))?);
    init_tracing(&c);
    // So does a data folder another daemon holds, or a spool written for another database.
    let data_locks = data_dirs::lock_all([
        std::path::Path::new(&c.main.database.spool_dir),
        std::path::Path::new(&c.main.recording.dir),
    ])?;
    appeals::spool::claim(
        std::path::Path::new(&c.main.database.spool_dir),
        &c.main.database.url,
    )?;
    info!(folders = ?data_locks.iter().map(|l| l.dir()).collect::<Vec<_>>(), "data folders locked for this daemon");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(async move {
        // Before any port is bound: a non-loopback admin address needs a real admin.
        let loopback = c.main.admin.listen.ip().is_loopback();
        if !loopback {
            access_preflight(&c).await?;
        }
        if !c.main.admin.token.is_empty() {
            tracing::warn!("admin.token is set: the shared legacy bearer token acts as an admin (actor admin-token); give people accounts and API tokens and remove it");
        }
        let stats = Arc::new(Stats::default());
        // Operators' saved work state, before the writer takes over the spool and before the
        // SIP port is served: a database that does not answer within a few seconds costs the
        // state only it held (the spool's part is read all the same).
        let saved = appeals::operator_state::load(
            &c.main.database.url,
            std::path::Path::new(&c.main.database.spool_dir),
            Duration::from_secs(5),
        )
        .await;
        if let Some(e) = &saved.database_error {
            tracing::warn!(error = %e, "operators' saved state not read from the database; those only it knew start logged out");
        }
        // The writer starts even when the database is down: appeals wait in the spool.
        let writer = appeals::AppealWriter::start(appeals::WriterConfig::new(
            c.main.database.url.clone(),
            c.main.database.spool_dir.clone(),
        ))
        .with_context(|| format!("cannot open the appeal spool in {}", c.main.database.spool_dir))?;
        let calls = Arc::new(appeal_log::CallCounters::default());
        // the store the admin API connects in the background; returning-caller lookups use it
        let store_slot = admin::StoreSlot::default();
        let log = Arc::new(appeal_log::AppealLog::new(
            writer.clone(),
            calls.clone(),
            store_slot.clone(),
        ));
        let operators = Arc::new(admin::OperatorTable::new(
            c.operators.iter().map(|o| (o.login.clone(), o.name.clone())),
        ));
        let restored = operators.restore(&saved.states, &writer);
        if restored > 0 {
            info!(operators = restored, "operators' logins and pauses restored");
        }
        // the workspace's live picture, fed by the gateway's live events
        let live = live::Live::new(live::setup(&c));
        let (live_tx, live_rx) = live::channel();
        let live_hold_rx = live_tx.subscribe();
        let live_task = live::spawn(live.clone(), live_rx);
        let gw = Gateway::bind(gateway_settings(&c), stats.clone(), log)
            .await?
            .with_operator_book(Arc::new(admin::TableBook {
                table: operators.clone(),
                writer: writer.clone(),
            }))
            .with_live_events(live_tx)
            .with_overload(c.main.overload.settings());
        let directory = directory::DirectorySlot::new(Arc::clone(&c.directory));
        let admin_certs = c.admin_tls.clone().map(tls::CertSwitch::new);
        let mut reloader = reload::ConfigReloader::new(path.to_path_buf(), c.clone(), gw.reloader())
            .with_operators(operators.clone(), writer.clone())
            .with_directory(directory.clone())
            .with_live(live.clone());
        if let Some(certs) = &admin_certs {
            reloader = reloader.with_admin_certs(certs.clone());
        }
        let reloader = Arc::new(reloader);
        // before anything says we are up: SIGHUP's default action would end the process
        let signals = Signals::install()?;
        let tcp = tokio::net::TcpListener::bind(c.main.admin.listen)
            .await
            .with_context(|| format!("cannot bind admin HTTP on {}", c.main.admin.listen))?;
        let admin_listener = match &admin_certs {
            None => {
                if !c.main.admin.listen.ip().is_loopback() {
                    tracing::warn!(admin = %c.main.admin.listen, "the admin HTTP is plain http:// on an address other hosts reach: tokens, passwords and appeals cross the network unencrypted; set admin.tls_cert and admin.tls_key");
                }
                admin::AdminListener::Plain(tcp)
            }
            Some(certs) => {
                if let Some(leaf) = certs.current().cert.first() {
                    info!(sha256 = %tls::fingerprint(leaf), "admin HTTPS certificate");
                }
                admin::AdminListener::Tls(tls::TlsListener::new(tcp, certs.clone()))
            }
        };
        let shutdown = CancellationToken::new();
        let admin_stop = CancellationToken::new();
        let a = &c.main.admin;
        let access = Arc::new(admin::AccessSettings {
            session_idle: chrono::Duration::minutes(i64::from(a.session_idle_minutes)),
            session_max: chrono::Duration::hours(i64::from(a.session_max_hours)),
            lockout_failures: a.lockout_failures,
            address_lockout_failures: a.address_lockout_failures,
            lockout_minutes: a.lockout_minutes,
            recordings_days: c.main.retention.recordings_days,
            mask_callers_days: c.main.retention.mask_callers_days,
            recordings_dir: c.main.recording.dir.clone().into(),
        });
        let admin_state = admin::AdminState {
            stats: stats.clone(),
            token: Arc::from(c.main.admin.token.as_str()),
            access: access.clone(),
            store: store_slot,
            writer: writer.clone(),
            operators,
            // every configured queue is listed, waiting or not; the gateway adds live figures
            queues: Arc::new(admin::QueueBoard::described(
                c.queues
                    .iter()
                    .map(|q| (q.name.clone(), q.title.clone(), q.wrap_up_seconds())),
            )),
            calls,
            reports: admin::ReportSettings {
                tz: c.report_tz(),
                options: c.report_options(),
                board: c.board_thresholds(),
            },
            patch_lock: Default::default(),
            partner: c
                .main
                .partner
                .as_ref()
                .map(|p| partner::PartnerLink::from_config(p, &c.partner_ca)),
            reloader: Some(reloader.clone()),
            acd: Some(gw.operators()),
            directory,
            live,
            holds: Default::default(),
            tls: admin_certs.is_some(),
        };
        // operators held until their call's disposition is saved (queues that require one)
        let hold_task = disposition_hold::spawn(
            admin_state.clone(),
            admin_state.holds.clone(),
            live_hold_rx,
        );
        // a first start on a loopback address gets the demo accounts
        let demo = loopback.then(|| {
            c.operators
                .iter()
                .map(|o| (o.login.clone(), o.name.clone(), o.password.clone()))
                .collect()
        });
        let store_task = admin::connect_store(
            c.main.database.url.clone(),
            admin_state.store.clone(),
            admin_stop.clone(),
            demo,
        );
        let retention_task =
            retention::spawn(admin_state.store.clone(), access, admin_stop.clone());
        // certificates near their end are said at start and once a day
        let expiry_task =
            tls::spawn_expiry_watch(admin_certs.clone(), c.partner_ca.clone(), admin_stop.clone());
        // The partner outbox is delivered for as long as the daemon runs (and resumes after a
        // restart: it lives in the database).
        let sender = admin_state.partner.clone().map(|link| {
            partner::spawn_sender(link, admin_state.store.clone(), admin_stop.clone())
        });
        let admin = tokio::spawn(admin::serve(
            admin_listener,
            admin_state.clone(),
            admin_stop.clone(),
        ));
        info!(config = %path.display(), sip = ?gw.local_addrs(), admin = %format!("{}://{}", c.main.admin.scheme(), c.main.admin.listen), "hotlined started");
        let signals = tokio::spawn(signals.wait(
            shutdown.clone(),
            reloader,
            admin_state.store.clone(),
        ));
        gw.run(shutdown.clone()).await;
        // open live pages end their streams, so the admin server's graceful stop can finish
        admin_state.live.close();
        let _ = live_task.await;
        hold_task.abort();
        admin_stop.cancel();
        let _ = admin.await;
        let _ = store_task.await;
        if let Some(t) = retention_task {
            let _ = t.await;
        }
        if let Some(t) = expiry_task {
            let _ = t.await;
        }
        if let Some(sender) = sender {
            let _ = sender.await;
        }
        // The sessions end with the daemon; the saved state stays for the next start.
        admin_state
            .operators
            .logout_all(&admin_state.writer, "shutdown");
        signals.abort();
        let left = writer.shutdown().await;
        info!(backlog = left.backlog, "appeal writer stopped");
        info!("hotlined stopped");
        Ok::<(), anyhow::Error>(())
    })
}

/// A non-loopback admin address: refuses the shared token's example value and a database
/// without an enabled admin account (the demo accounts are made on loopback only).
async fn access_preflight(c: &Config) -> anyhow::Result<()> {
    let listen = c.main.admin.listen;
    if c.main.admin.token == "change-me" {
        anyhow::bail!(
            "admin.listen is {listen}, not a loopback address, and admin.token is still the example \"change-me\": \
             set a long random token, or an empty one (\"\") to use personal accounts only"
        );
    }
    let store = tokio::time::timeout(
        Duration::from_secs(15),
        appeals::Store::connect(&c.main.database.url),
    )
    .await
    .map_err(|_| anyhow::anyhow!("admin.listen is {listen}, not a loopback address: the database must be reachable at start to check that an admin account exists (no answer in 15 s)"))?
    .with_context(|| format!("admin.listen is {listen}, not a loopback address: the database must be reachable at start to check that an admin account exists"))?;
    let admins = store.user_counts().await.map(|(_, a)| a);
    store.close().await;
    if admins? == 0 {
        anyhow::bail!(
            "admin.listen is {listen}, not a loopback address, and there is no enabled admin account: \
             make one first with `hotlined user add NAME --role admin --config …` (demo accounts are made on a loopback address only)"
        );
    }
    Ok(())
}

/// `hotlined report`: reads the database named in the configuration (it must be reachable).
fn run_report(
    path: &std::path::Path,
    from: Option<chrono::NaiveDate>,
    to: Option<chrono::NaiveDate>,
    format: report::Format,
    lang: report::Lang,
) -> anyhow::Result<()> {
    let c = Config::load(path).map_err(|e| anyhow::anyhow!("invalid configuration:\n{e}"))?;
    let tz = c.report_tz();
    let from = from.unwrap_or_else(|| chrono::Utc::now().with_timezone(&tz).date_naive());
    let to = to.unwrap_or(from);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let text = rt.block_on(async {
        let store = appeals::Store::connect(&c.main.database.url)
            .await
            .context("cannot open the database")?;
        let r = report::build(&store, from, to, tz, &c.report_options()).await;
        store.close().await;
        anyhow::Ok(report::render(
            &r?,
            format,
            lang,
            &web::names::Names::of_config(&c),
        ))
    })?;
    use std::io::Write as _;
    std::io::stdout()
        .write_all(text.as_bytes())
        .context("writing the report")?;
    Ok(())
}

/// The signals the daemon takes, installed before it reports being up.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
            hup: signal(SignalKind::hangup()).context("installing the SIGHUP handler")?,
        })
    }

    /// SIGTERM / SIGINT start the graceful shutdown; a second one is not needed (the grace
    /// period is bounded), but is logged. SIGHUP reloads the configuration (its outcome is
    /// logged: see `reload`, and in the audit log as `config_reloaded` by `sighup`).
    async fn wait(
        mut self,
        shutdown: CancellationToken,
        reloader: Arc<reload::ConfigReloader>,
        store: admin::StoreSlot,
    ) {
        loop {
            tokio::select! {
                _ = self.term.recv() => info!("SIGTERM"),
                _ = self.int.recv() => info!("SIGINT"),
                _ = self.hup.recv() => {
                    info!("SIGHUP");
                    let r = reloader.clone();
                    let store = store.clone();
                    tokio::spawn(async move {
                        let outcome = r.reload("SIGHUP").await;
                        let details = match &outcome {
                            Ok(done) => serde_json::json!({ "reloaded": true, "restart_needed": done.restart_needed }),
                            Err(e) => serde_json::json!({ "reloaded": false, "error": e.to_string() }),
                        };
                        if let Err(e) = outcome {
                            if !matches!(e, reload::ReloadError::Invalid(_)) {
                                error!(error = %e, "reload failed");
                            }
                        }
                        if let Some(store) = store.get() {
                            let line = appeals::AuditEntry {
                                at: chrono::Utc::now(),
                                actor: "sighup".into(),
                                role: None,
                                address: None,
                                action: "config_reloaded".into(),
                                target: None,
                                details,
                            };
                            if let Err(e) = store.audit(&line).await {
                                error!(error = %e, "audit line not written");
                            }
                        }
                    });
                    continue;
                }
            }
            shutdown.cancel();
        }
    }
}

/// `hotlined reload`: `POST /api/v1/reload` to the admin address of the configuration (with
/// its `HOTLINE__…` overrides) and its token. Exit 0 when the daemon took the new
/// configuration, 1 with its problems when it refused it or could not be reached.
/// A byte stream, plain or TLS.
trait ReadWrite: std::io::Read + std::io::Write {}
impl<T: std::io::Read + std::io::Write> ReadWrite for T {}

fn reload_cli(path: &std::path::Path) -> ExitCode {
    use std::io::{Read, Write};
    let main = match Config::load_main(path) {
        Ok(m) => m,
        Err(errors) => {
            for p in &errors.0 {
                println!("{p}");
            }
            return ExitCode::FAILURE;
        }
    };
    let mut addr = main.admin.listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    let scheme = main.admin.scheme();
    // HTTPS: trust the configured certificate file (see `tls::reload_client_config`)
    let tls = match &main.admin.tls_cert {
        None => None,
        Some(cert) => {
            let file = path
                .parent()
                .unwrap_or(std::path::Path::new("."))
                .join(cert);
            match tls::load_certs(&file) {
                Ok(certs) => Some(Arc::new(tls::reload_client_config(certs))),
                Err(e) => {
                    eprintln!("hotlined reload: admin.tls_cert: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
    };
    let answer = (|| -> std::io::Result<String> {
        let s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(3))?;
        // loading a configuration decodes every prompt: allow it time
        s.set_read_timeout(Some(Duration::from_secs(120)))?;
        // an admin's personal API token, else the shared legacy token of the configuration
        let token = std::env::var("HOTLINE_TOKEN")
            .ok()
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| main.admin.token.clone());
        let request = format!(
            "POST /api/v1/reload HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
             Content-Length: 0\r\nConnection: close\r\n\r\n"
        );
        let exchange = |mut s: Box<dyn ReadWrite>| -> std::io::Result<String> {
            s.write_all(request.as_bytes())?;
            s.flush()?;
            let mut raw = Vec::new();
            // a server closing TLS without close_notify after a complete answer is fine
            match s.read_to_end(&mut raw) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
                Err(e) => return Err(e),
            }
            Ok(String::from_utf8_lossy(&raw).into_owned())
        };
        match &tls {
            None => exchange(Box::new(s)),
            Some(config) => {
                let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
                let conn = rustls::ClientConnection::new(config.clone(), name)
                    .map_err(std::io::Error::other)?;
                exchange(Box::new(rustls::StreamOwned::new(conn, s)))
            }
        }
    })();
    let text = match answer {
        Ok(t) => t,
        Err(e) => {
            if let Some(why) = tls::certificate_refusal(&e) {
                eprintln!("hotlined reload: the daemon on {scheme}://{addr} presented a certificate that is not the one of admin.tls_cert nor verified by it ({why}); if the certificate was replaced, keep its CA in the file or send SIGHUP to the daemon");
            } else {
                eprintln!("hotlined reload: no daemon answers on {scheme}://{addr} ({e}); is it running with this configuration?");
            }
            return ExitCode::FAILURE;
        }
    };
    let status: u16 = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body: serde_json::Value = text
        .split_once("\r\n\r\n")
        .and_then(|(_, b)| serde_json::from_str(b).ok())
        .unwrap_or_default();
    let field = |k: &str| {
        body.get(k)
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_owned()
    };
    match status {
        200 => {
            println!("{}", field("message"));
            ExitCode::SUCCESS
        }
        422 => {
            println!("{}", field("error"));
            for p in body
                .get("problems")
                .and_then(|v| v.as_array())
                .into_iter()
                .flatten()
            {
                println!("{}", p.as_str().unwrap_or(""));
            }
            ExitCode::FAILURE
        }
        other => {
            eprintln!(
                "hotlined reload: the daemon answered {other}: {}",
                field("error")
            );
            ExitCode::FAILURE
        }
    }
}
