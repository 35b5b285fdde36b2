//! The tokio edge of Hotline: SIP sockets, the media thread and the recorder, and the task
//! that drives the sans-IO call control ([`calls::Core`]) with real time.
//!
//! Real time enters in exactly one place: [`Gateway::run`]'s loop, which sleeps until the
//! core's next deadline, hands it `Instant::now()` with each input, and carries out every
//! [`calls::Output`] it drains (SIP to the transport, media commands to the media edge, appeal
//! events to the [`CallLog`], returning-caller lookups to a task, live events into a
//! `tokio::sync::broadcast` that never blocks the loop).

mod call_log;
mod media;
mod overload;
mod transport;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use sip::auth::DigestServer;
use sip::registrar::{Registrar, RegistrarConfig};
use sip::transaction::TimerConfig;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub use call_log::{
    CallLog, LookupError, NoCallLog, NoOperatorBook, OperatorBook, ReturningLookup,
};
pub use calls::{
    live, settings, AppealEvent, AppealIds, AppealRecord, CallArrived, CallEnded, CallbackAttempt,
    CallbackOutcome, Caller, DtmfMode, DtmfVia, EndReason, FeatureCodes, FeaturePrompts, IvrEnd,
    IvrStep, LineSettings, OperatorCommand, OperatorControlError, OperatorRefusal,
    OperatorSettings, QueueWait, RegisteredContact, ResponseCount, Settings, ShedReason, Stats,
    TransferError, TransferKind, TransferRecord, TransferTarget, TrunkOutbound, TrunkSettings,
    DTMF_KINDS, SIP_RESPONSE_CODES, WAITING_PROMPTS,
};
use calls::{BookEntry, Core, Input, Output};
pub use overload::OverloadSettings;
use tokio::sync::broadcast;

/// A new configuration for the running gateway, and where to say it was taken.
type ReloadRequest = (Settings, tokio::sync::oneshot::Sender<Vec<&'static str>>);

/// Hands a reloaded configuration to the running gateway (SIGHUP, `POST /api/v1/reload`).
/// Cheap to clone.
#[derive(Clone)]
pub struct Reloader {
    tx: mpsc::UnboundedSender<ReloadRequest>,
}

/// What the admin API asks of the running gateway about operators.
enum OperatorRequest {
    Command(
        String,
        OperatorCommand,
        tokio::sync::oneshot::Sender<Result<(), OperatorControlError>>,
    ),
    Status(
        String,
        tokio::sync::oneshot::Sender<Option<acd::OperatorStatus>>,
    ),
    Transfer(
        String,
        TransferTarget,
        tokio::sync::oneshot::Sender<Result<(), TransferError>>,
    ),
}

/// Hands operators' login, logout, pause and unpause to the running gateway, where they go
/// through the same code as the softphones' feature codes (the [`OperatorBook`], then the
/// ACD). Cheap to clone.
#[derive(Clone)]
pub struct OperatorControl {
    tx: mpsc::UnboundedSender<OperatorRequest>,
}

impl OperatorControl {
    /// Applies `cmd` to `operator` (book, then ACD) and returns once it has, or why not.
    pub async fn apply(
        &self,
        operator: &str,
        cmd: OperatorCommand,
    ) -> Result<(), OperatorControlError> {
        let (done, applied) = tokio::sync::oneshot::channel();
        self.tx
            .send(OperatorRequest::Command(operator.to_string(), cmd, done))
            .map_err(|_| OperatorControlError::Stopped)?;
        applied.await.map_err(|_| OperatorControlError::Stopped)?
    }

    /// The operator's state in the ACD (`None`: the ACD does not know the operator, or none
    /// runs).
    pub async fn status(
        &self,
        operator: &str,
    ) -> Result<Option<acd::OperatorStatus>, OperatorControlError> {
        let (done, answer) = tokio::sync::oneshot::channel();
        self.tx
            .send(OperatorRequest::Status(operator.to_string(), done))
            .map_err(|_| OperatorControlError::Stopped)?;
        answer.await.map_err(|_| OperatorControlError::Stopped)
    }

    /// Moves the caller talking to `operator` to `target`, as the operator's REFER would;
    /// returns once the transfer started, or why not.
    pub async fn transfer(
        &self,
        operator: &str,
        target: TransferTarget,
    ) -> Result<(), TransferError> {
        let (done, answer) = tokio::sync::oneshot::channel();
        self.tx
            .send(OperatorRequest::Transfer(
                operator.to_string(),
                target,
                done,
            ))
            .map_err(|_| TransferError::Stopped)?;
        answer.await.map_err(|_| TransferError::Stopped)?
    }
}

/// The gateway is not running any more (shut down).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the SIP gateway is not running")]
pub struct GatewayStopped;

impl Reloader {
    /// Switches the gateway to `settings` and returns once it has: every call that arrives
    /// afterwards gets the new lines, menus and prompts, while calls in progress finish on the
    /// ones they started with. Settings only a restart can change are kept; the names of those
    /// that differ are returned (see [`Settings::keep_restart_only`]).
    pub async fn reload(&self, settings: Settings) -> Result<Vec<&'static str>, GatewayStopped> {
        let (done, applied) = tokio::sync::oneshot::channel();
        self.tx.send((settings, done)).map_err(|_| GatewayStopped)?;
        applied.await.map_err(|_| GatewayStopped)
    }
}
use transport::{Inbound, Limits, Outbound};

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("cannot bind SIP {transport} on {addr}: {source}")]
    Bind {
        transport: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A bound but not yet running gateway: binding happens first so that a daemon with a busy
/// port fails before it claims to be up.
pub struct Gateway {
    settings: Arc<Settings>,
    stats: Arc<Stats>,
    log: Arc<dyn CallLog>,
    udp: Vec<(SocketAddr, Arc<UdpSocket>)>,
    tcp: Vec<(SocketAddr, TcpListener)>,
    /// The in-band DTMF detector every call clones (its tables are built once, here).
    detector: ::media::goertzel::DtmfDetector,
    reload_tx: mpsc::UnboundedSender<ReloadRequest>,
    reload_rx: mpsc::UnboundedReceiver<ReloadRequest>,
    ops_tx: mpsc::UnboundedSender<OperatorRequest>,
    ops_rx: mpsc::UnboundedReceiver<OperatorRequest>,
    book: Arc<dyn OperatorBook>,
    live: Option<broadcast::Sender<calls::live::LiveEvent>>,
    overload: OverloadSettings,
}

impl Gateway {
    pub async fn bind(
        settings: Settings,
        stats: Arc<Stats>,
        log: Arc<dyn CallLog>,
    ) -> Result<Gateway, GatewayError> {
        let mut udp = Vec::new();
        let mut tcp = Vec::new();
        for &addr in &settings.listen {
            let (u, t) = bind_pair(addr).await?;
            let local = u.local_addr().unwrap_or(addr);
            udp.push((local, Arc::new(u)));
            tcp.push((t.local_addr().unwrap_or(local), t));
        }
        // recordings cut short by a crash become playable again before anything else runs
        media::repair_recordings(&settings.recordings_dir);
        let (reload_tx, reload_rx) = mpsc::unbounded_channel();
        let (ops_tx, ops_rx) = mpsc::unbounded_channel();
        Ok(Gateway {
            live: None,
            book: Arc::new(NoOperatorBook),
            overload: OverloadSettings::default(),
            ops_tx,
            ops_rx,
            reload_tx,
            reload_rx,
            detector: ::media::goertzel::DtmfDetector::new(8000),
            settings: Arc::new(settings),
            stats,
            log,
            udp,
            tcp,
        })
    }

    /// A handle to reload the configuration of this gateway once it runs.
    pub fn reloader(&self) -> Reloader {
        Reloader {
            tx: self.reload_tx.clone(),
        }
    }

    /// Where operators' work state is kept and restored from (see [`OperatorBook`]); without
    /// one, the ACD alone keeps it and every operator starts logged out.
    pub fn with_operator_book(mut self, book: Arc<dyn OperatorBook>) -> Self {
        self.book = book;
        self
    }

    /// Where call control's live events go (`send` never blocks; with no receiver, or a
    /// receiver that lags, events are dropped or overwritten, never waited for).
    pub fn with_live_events(mut self, tx: broadcast::Sender<calls::live::LiveEvent>) -> Self {
        self.live = Some(tx);
        self
    }

    /// When new INVITEs are shed under overload (default [`OverloadSettings::default`]).
    pub fn with_overload(mut self, overload: OverloadSettings) -> Self {
        self.overload = overload;
        self
    }

    /// A handle to log operators in and out of the ACD (and pause them) once it runs.
    pub fn operators(&self) -> OperatorControl {
        OperatorControl {
            tx: self.ops_tx.clone(),
        }
    }

    /// The addresses actually bound (port 0 resolved); each serves UDP and TCP.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.udp.iter().map(|(a, _)| *a).collect()
    }

    /// Serve until `shutdown` is cancelled, then drain: new calls get 503, calls in progress
    /// have `shutdown_grace` to finish, the rest get BYE.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let settings = self.settings.clone();
        let stop_io = CancellationToken::new();
        // calls already up first: new INVITEs wait in their own queue (overload.rs)
        let (established_tx, mut established_rx) = mpsc::channel::<Inbound>(4096);
        let (new_calls_tx, mut new_calls_rx) =
            mpsc::channel::<Inbound>(self.overload.max_queue.saturating_mul(2).max(64));
        let core_tx = transport::CoreTx {
            established: established_tx,
            new_calls: new_calls_tx,
        };
        let admission = overload::Admission {
            settings: self.overload,
        };
        let limits = Arc::new(Limits {
            max_message_size: settings.max_message_size,
            retry_after: self.overload.retry_after,
            stats: self.stats.clone(),
        });
        let ua: Arc<str> = Arc::from(settings.user_agent.as_str());
        let mut tasks = tokio::task::JoinSet::new();
        let (mut udp_v4, mut udp_v6) = (None, None);
        for (local, sock) in self.udp {
            if local.is_ipv4() {
                udp_v4.get_or_insert_with(|| sock.clone());
            } else {
                udp_v6.get_or_insert_with(|| sock.clone());
            }
            tasks.spawn(transport::udp_loop(
                sock,
                local,
                core_tx.clone(),
                limits.clone(),
                ua.clone(),
                stop_io.clone(),
            ));
            info!(%local, "SIP over UDP");
        }
        for (local, listener) in self.tcp {
            tasks.spawn(transport::tcp_accept_loop(
                listener,
                core_tx.clone(),
                limits.clone(),
                ua.clone(),
                stop_io.clone(),
            ));
            info!(%local, "SIP over TCP");
        }
        let out = Outbound {
            udp_v4,
            udp_v6,
            tcp: Default::default(),
            core: core_tx.clone(),
            limits,
            user_agent: ua,
            stop: stop_io.clone(),
        };
        let start = Instant::now();
        let mut key = [0u8; 32];
        rand::Rng::fill(&mut rand::thread_rng(), &mut key);
        let timers = TimerConfig {
            t1: settings.t1,
            ..TimerConfig::default()
        };
        let registrar = Registrar::new(
            RegistrarConfig {
                lockout_threshold: settings.lockout_failures,
                lockout_duration: settings.lockout,
                ..RegistrarConfig::new(&settings.realm)
            },
            key,
            start,
        );
        let mut registrar = registrar;
        registrar
            .digest_mut()
            .set_algorithms(&settings.digest_algorithms);
        rand::Rng::fill(&mut rand::thread_rng(), &mut key);
        let mut trunk_auth =
            DigestServer::new(settings.realm.clone(), key, Duration::from_secs(300), start);
        trunk_auth.set_algorithms(&settings.digest_algorithms);
        let (media_tx, mut media_rx) = mpsc::unbounded_channel();
        let ports = media::SharedPorts::new(media::PortPool::new(
            settings.rtp_ports.0,
            settings.rtp_ports.1,
        ));
        let (edge, pacing) = media::MediaEdge::start(
            ports.clone(),
            settings.recordings_dir.clone(),
            self.detector,
            media_tx,
            stop_io.clone(),
            self.stats.clone(),
        );
        // call control's one seed (appeal ids, tags, branches, Call-IDs, SDP ids): this start's
        // own, so that no restart and no other daemon repeats them
        let mut seed = [0u8; 32];
        rand::Rng::fill(&mut rand::thread_rng(), &mut seed);
        let mut core = Core::new(
            start,
            SystemTime::now(),
            settings.clone(),
            timers,
            registrar,
            trunk_auth,
            self.stats.clone(),
            seed,
            Box::new(ports),
        );
        let (returning_tx, mut returning_rx) = mpsc::unbounded_channel();
        core.set_returning_lookups(true);
        let mut io = Edge {
            out,
            media: edge,
            returning: returning_tx,
            log: self.log.clone(),
            book: self.book.clone(),
            live: self.live.clone(),
        };
        // operators' saved state, before the first message is handled
        core.restore_operators(start, self.book.restored());
        io.carry_out(start, &mut core);
        self.stats.ready.store(true, Ordering::Relaxed);

        // Shutdown runs in two steps: the grace period (calls may end by themselves), then a
        // short wait for the answers to our BYEs.
        let mut grace_deadline: Option<tokio::time::Instant> = None;
        let mut final_deadline: Option<tokio::time::Instant> = None;
        loop {
            let wake = core.poll_timeout();
            let sleep = async {
                match wake {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending::<()>().await,
                }
            };
            let deadline = final_deadline.or(grace_deadline);
            let shutdown_step = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending::<()>().await,
                }
            };
            let input = tokio::select! {
                // in this order: the clock, the calls already up, the media, and new calls last
                biased;
                _ = sleep => Some(Input::Timeout),
                m = established_rx.recv() => match m {
                    Some(Inbound::Message { peer, local, msg, .. }) => {
                        Some(Input::Sip { peer, local, msg: *msg })
                    }
                    Some(Inbound::TcpOpened { peer, tx }) => {
                        io.out.tcp.insert(peer, tx);
                        None
                    }
                    Some(Inbound::TcpClosed { peer }) => {
                        io.out.tcp.remove(&peer);
                        None
                    }
                    None => break,
                },
                Some(ev) = media_rx.recv() => Some(Input::Media(ev)),
                Some(found) = returning_rx.recv() => Some(Input::Returning(found)),
                Some(req) = self.ops_rx.recv() => {
                    match req {
                        OperatorRequest::Command(op, cmd, done) => {
                            let now = clock(&mut core);
                            let _ = done.send(io.operator_command(now, &mut core, &op, cmd));
                            io.carry_out(now, &mut core);
                        }
                        OperatorRequest::Status(op, done) => {
                            let _ = done.send(core.operator_status(&op));
                        }
                        OperatorRequest::Transfer(op, target, done) => {
                            let now = clock(&mut core);
                            let _ = done.send(core.transfer(now, &op, target));
                            io.carry_out(now, &mut core);
                        }
                    }
                    None
                }
                Some((new, done)) = self.reload_rx.recv() => {
                    let now = clock(&mut core);
                    let ignored = core.reload(now, new);
                    io.carry_out(now, &mut core);
                    info!(lines = core.lines(), "configuration reloaded: new calls get it, calls in progress keep theirs");
                    let _ = done.send(ignored);
                    None
                }
                _ = shutdown.cancelled(), if grace_deadline.is_none() => {
                    info!(calls = core.calls(), grace_s = settings.shutdown_grace.as_secs(), "shutting down: new calls get 503, calls in progress may finish");
                    self.stats.draining.store(true, Ordering::Relaxed);
                    core.begin_drain();
                    grace_deadline = Some(tokio::time::Instant::now() + settings.shutdown_grace);
                    None
                }
                _ = shutdown_step => {
                    if final_deadline.is_some() {
                        warn!(waiting = core.outstanding_requests(), "stopping without the last answers");
                        break;
                    }
                    if core.calls() > 0 {
                        warn!(calls = core.calls(), "grace period over: hanging up the remaining calls");
                    }
                    let now = clock(&mut core);
                    core.hangup_all(now);
                    io.carry_out(now, &mut core);
                    final_deadline = Some(tokio::time::Instant::now() + Duration::from_secs(5));
                    None
                }
                Some(m) = new_calls_rx.recv() => match m {
                    Inbound::Message { peer, local, msg, received } => {
                        let now = clock(&mut core);
                        let shed = admission.check(now, received, new_calls_rx.len(), self.stats.media_late());
                        match (shed, &*msg) {
                            (Some(reason), sip::Message::Request(req))
                                if !req.headers.call_id().is_ok_and(|id| core.has_call(id)) =>
                            {
                                self.stats.count_request(req.method.as_str());
                                self.stats.count_shed(reason);
                                let busy = overload::busy_response(req, &settings.user_agent, admission.settings.retry_after);
                                self.stats.count_sent(&busy);
                                io.out.send(peer, busy);
                                None
                            }
                            // a retransmission of an INVITE the core has taken goes to it
                            _ => Some(Input::Sip { peer, local, msg: *msg }),
                        }
                    }
                    _ => None,
                },
            };
            if let Some(input) = input {
                let now = clock(&mut core);
                core.handle(now, input);
                io.carry_out(now, &mut core);
            }
            if grace_deadline.is_some() && core.calls() == 0 {
                if core.outstanding_requests() == 0 {
                    break;
                }
                final_deadline
                    .get_or_insert_with(|| tokio::time::Instant::now() + Duration::from_secs(5));
            }
        }
        self.stats.ready.store(false, Ordering::Relaxed);
        stop_io.cancel();
        let _ = pacing.await;
        // every recording gets its final header before we say we stopped
        if let Some(writer) = io.media.finish() {
            let _ = tokio::task::spawn_blocking(move || writer.join()).await;
        }
        while tasks.join_next().await.is_some() {}
        info!("SIP stopped");
    }
}

/// The time for one input to the core: the monotonic clock, and the civil time read with it
/// (the only place the wall clock is read; voice-menu schedules run on it).
fn clock(core: &mut Core) -> Instant {
    let now = Instant::now();
    core.set_wallclock(now, SystemTime::now());
    now
}

/// What carries out the core's outputs: the transport, the media edge, and the tasks that
/// answer returning-caller lookups.
struct Edge {
    out: Outbound,
    media: media::MediaEdge,
    returning: mpsc::UnboundedSender<calls::ReturningFound>,
    log: Arc<dyn CallLog>,
    book: Arc<dyn OperatorBook>,
    live: Option<broadcast::Sender<calls::live::LiveEvent>>,
}

impl Edge {
    /// An admin's operator command: the book checks and records it (a login's queues as the
    /// ACD resolves them), then the ACD takes it — the path of a feature code's
    /// [`calls::BookEntry::Apply`].
    fn operator_command(
        &self,
        now: Instant,
        core: &mut Core,
        operator: &str,
        cmd: OperatorCommand,
    ) -> Result<(), OperatorControlError> {
        let cmd = core.resolve_operator_command(operator, cmd)?;
        self.book
            .apply(operator, &cmd)
            .map_err(OperatorControlError::Refused)?;
        core.operator_command(now, operator, cmd)
    }

    /// Drains the core's outputs (after every input and command) and carries each out.
    fn carry_out(&mut self, now: Instant, core: &mut Core) {
        while let Some(output) = core.poll_output() {
            match output {
                Output::Transmit(t) => self.out.send(t.peer, t.bytes),
                Output::Media(cmd) => self.media.execute(now, cmd),
                Output::Appeal(ev) => self.log.record(&ev),
                Output::Book(BookEntry::Apply(req)) => {
                    let verdict = self.book.apply(&req.operator, &req.cmd);
                    core.handle(now, Input::Booked(req.answer(verdict)));
                }
                Output::Book(BookEntry::QueuesChanged { operator, queues }) => {
                    self.book.queues_changed(&operator, &queues)
                }
                Output::Live(ev) => {
                    if let Some(tx) = &self.live {
                        // no receiver yet is not an error; a full channel overwrites its oldest
                        let _ = tx.send(ev);
                    }
                }
                Output::LookupReturning(query) => {
                    let lookup = self.log.returning_operator(&query.number, query.lookback);
                    let tx = self.returning.clone();
                    tokio::spawn(async move {
                        let timeout = calls::RETURNING_TIMEOUT;
                        let operator = match tokio::time::timeout(timeout, lookup).await {
                            Ok(Ok(found)) => Ok(found),
                            Ok(Err(e)) => Err(e.to_string()),
                            Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
                        };
                        let _ = tx.send(query.answer(operator));
                    });
                }
            }
        }
    }
}

/// Bind UDP and TCP on one address. With port 0, TCP takes the port the OS gave UDP so a single
/// address (Via, Contact, `local_addrs`) names both; if that TCP port is taken, try another.
async fn bind_pair(addr: SocketAddr) -> Result<(UdpSocket, TcpListener), GatewayError> {
    let attempts = if addr.port() == 0 { 20 } else { 1 };
    let mut last = None;
    for _ in 0..attempts {
        let u = UdpSocket::bind(addr)
            .await
            .map_err(|source| GatewayError::Bind {
                transport: "UDP",
                addr,
                source,
            })?;
        let local = u.local_addr().unwrap_or(addr);
        match TcpListener::bind(local).await {
            Ok(t) => return Ok((u, t)),
            Err(source) => {
                last = Some(GatewayError::Bind {
                    transport: "TCP",
                    addr: local,
                    source,
                })
            }
        }
    }
    Err(last.unwrap_or(GatewayError::Bind {
        transport: "TCP",
        addr,
        source: std::io::Error::from(std::io::ErrorKind::AddrInUse),
    }))
}
