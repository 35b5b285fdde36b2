//! RFC 3261 §17 transactions as a sans-IO state machine.
//!
//! One [`Endpoint`] holds every client and server transaction of a SIP agent. It follows the
//! same contract as the other sans-IO cores of Hotline:
//!
//! - **Inputs** (`handle_*`): [`Endpoint::handle_message`] for every parsed message that arrived,
//!   [`Endpoint::handle_timeout`] when the deadline from [`Endpoint::poll_timeout`] has passed.
//! - **Commands** from the core above: [`Endpoint::respond`], [`Endpoint::send_request`],
//!   [`Endpoint::cancel`], [`Endpoint::send_stateless`].
//! - **Outputs** (`poll_*`): after any input or command, drain [`Endpoint::poll_transmit`] (bytes
//!   to put on the wire) and [`Endpoint::poll_event`] (what the core must act on) until both
//!   return `None`, then sleep until [`Endpoint::poll_timeout`].
//!
//! The endpoint never reads the clock: `now` comes in with every call that can arm a timer.
//!
//! What it does on its own, so the core never has to: 100 Trying for every INVITE, re-answering
//! retransmitted requests with the last response, retransmitting requests and non-2xx finals on
//! UDP (Timers A, E, G), retransmitting a 2xx to INVITE until its ACK (RFC 3261 §13.3.1.4),
//! ACKing non-2xx finals (§17.1.1.3), answering CANCEL (200 plus 487 for the INVITE, or 481),
//! stamping `received`/`rport` on the top Via of incoming requests (§18.2.1, RFC 3581) and
//! routing responses back accordingly (§18.2.2), and answering 503 once
//! [`TimerConfig::max_transactions`] transactions are alive.

mod client;
mod server;
mod timers;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::message::{split_list, HeaderName, Headers, Host, Message, Method, Request, Response};
use crate::room::{shrink_if_sparse, SHRINK_ABOVE};
use crate::typed::Via;
use crate::{Peer, Tokens, Transport};

use timers::{Armed, Slot, Timer, TimerTable};

/// The RFC 3261 branch prefix that marks a branch as globally unique (§8.1.1.7).
pub const MAGIC_COOKIE: &str = "z9hG4bK";

/// Timer D on UDP: RFC 3261 Table 4 asks for at least 32 s whatever T1 is.
const TIMER_D_UDP: Duration = Duration::from_secs(32);

/// Timer values (RFC 3261 §17, Table 4) and the bound on live transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerConfig {
    /// RTT estimate; base of Timers A, B, E, F, G, H, J, L, M and the 2xx retransmission.
    pub t1: Duration,
    /// Cap of the retransmission interval for non-INVITE requests and INVITE responses.
    pub t2: Duration,
    /// Maximum time a message stays in the network (Timers I and K).
    pub t4: Duration,
    /// Live transactions (client and server) beyond which new requests get a stateless 503
    /// and [`Endpoint::send_request`] fails, so a flood cannot grow memory without bound.
    pub max_transactions: usize,
    /// How long an INVITE client transaction waits for a final after its last provisional
    /// response before giving up with [`Event::Timeout`] (like a proxy's Timer C, RFC 3261
    /// §16.6). Without it a final lost for good would keep the transaction forever.
    pub proceeding_timeout: Duration,
}

impl Default for TimerConfig {
    fn default() -> Self {
        TimerConfig {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
            max_transactions: 100_000,
            proceeding_timeout: Duration::from_secs(180),
        }
    }
}

impl TimerConfig {
    fn t1x64(&self) -> Duration {
        self.t1 * 64
    }
}

/// Internal transaction id; never reused within one endpoint.
pub(crate) type TxId = u64;

/// Names one transaction of an [`Endpoint`]. Opaque; stays unique for the endpoint's life.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TxKey(TxId);

/// Bytes to send to a peer (over the connection to it, for TCP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub peer: Peer,
    pub bytes: Vec<u8>,
}

/// What the core above the transaction layer must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A request that matched no transaction: a new server transaction `tx` exists for it
    /// (not for ACK). Its top Via already carries `received`/`rport` (RFC 3261 §18.2.1, RFC 3581).
    Request {
        tx: TxKey,
        peer: Peer,
        request: Request,
    },
    /// An ACK outside any transaction (the ACK for a 2xx). Stops our 2xx retransmission.
    Ack { peer: Peer, request: Request },
    /// CANCEL matched an INVITE server transaction still without a final response: the endpoint
    /// already answered the CANCEL 200 and the INVITE 487.
    Cancelled { tx: TxKey },
    /// A response for one of our client transactions (1xx and the final; absorbed retransmissions
    /// are not repeated, except 2xx to INVITE which are passed up each time so the core re-ACKs).
    Response { tx: TxKey, response: Response },
    /// Timer B/F fired (or H for a server INVITE never ACKed after a non-2xx, or the Proceeding
    /// guard of an INVITE client, see [`TimerConfig::proceeding_timeout`]): the transaction is gone.
    Timeout { tx: TxKey },
    /// A 2xx to INVITE that we sent was retransmitted for 64*T1 and never ACKed (RFC 3261 §13.3.1.4):
    /// the core should send BYE.
    AckTimeout { call_id: String, cseq: u32 },
}

/// Why a command was refused. Nothing was sent when one of these is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    #[error("no such transaction (it ended or never existed)")]
    UnknownTransaction,
    #[error("the transaction is not one that this command applies to")]
    WrongKind,
    #[error("the transaction already has a final response")]
    AlreadyFinal,
    #[error("status code {0} is outside 100..=699")]
    InvalidStatus(u16),
    #[error("the request has no top Via with an RFC 3261 branch (z9hG4bK…)")]
    MissingBranch,
    #[error("the request has no usable CSeq or Call-ID, or its CSeq method differs")]
    BadRequest,
    #[error("ACK is not sent in a transaction; use send_stateless")]
    AckNotTransaction,
    #[error("a client transaction with this branch and method already exists")]
    DuplicateTransaction,
    #[error("too many live transactions")]
    TooManyTransactions,
}

/// How an incoming request or response is matched to a transaction.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum MatchKey {
    /// §17.2.3 with the magic cookie: branch, sent-by and method (ACK counted as INVITE).
    Server3261 {
        branch: String,
        host: String,
        port: Option<u16>,
        method: Method,
    },
    /// §17.2.3 fallback for RFC 2543 requests. The To tag is checked after the lookup, since an
    /// ACK carries the tag of our response rather than the INVITE's.
    Server2543 {
        uri: String,
        from_tag: Option<String>,
        call_id: String,
        cseq: u32,
        method: Method,
        via: String,
    },
    /// §17.1.3: branch of the top Via and the CSeq method.
    Client { branch: String, method: Method },
}

/// What a transaction is doing, per kind.
#[derive(Debug)]
enum State {
    InviteServer(server::InviteServer),
    NonInviteServer(server::NonInviteServer),
    InviteClient(client::InviteClient),
    NonInviteClient(client::NonInviteClient),
}

#[derive(Debug)]
struct Tx {
    key: MatchKey,
    /// Where this transaction's messages go: the request's target for a client, the response
    /// destination of §18.2.2 for a server.
    peer: Peer,
    armed: Armed,
    state: State,
}

impl Tx {
    fn reliable(&self) -> bool {
        self.peer.transport.is_reliable()
    }
}

/// Every transaction of one SIP agent. See the module documentation for the call contract.
#[derive(Debug)]
pub struct Endpoint {
    cfg: TimerConfig,
    next_id: TxId,
    txs: HashMap<TxId, Tx>,
    index: HashMap<MatchKey, TxId>,
    /// 2xx to INVITE we are retransmitting, by (Call-ID, CSeq number), until their ACK.
    unacked_2xx: HashMap<(String, u32), TxId>,
    timers: TimerTable,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    /// The To tags of the responses the endpoint builds itself (487, 200 to CANCEL, 481, 503).
    tokens: Tokens,
}

impl Endpoint {
    /// An endpoint with timers `cfg` drawing its tags from `tokens` (seeded by its owner).
    pub fn new(cfg: TimerConfig, tokens: Tokens) -> Endpoint {
        Endpoint {
            tokens,
            cfg,
            next_id: 0,
            txs: HashMap::new(),
            index: HashMap::new(),
            unacked_2xx: HashMap::new(),
            timers: TimerTable::default(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// Feed one message that arrived from `peer` (already parsed and validated).
    pub fn handle_message(&mut self, now: Instant, peer: Peer, msg: Message) {
        match msg {
            Message::Request(r) => self.handle_request(now, peer, r),
            Message::Response(r) => self.handle_response(now, r),
        }
    }

    /// Answer a server transaction. 2xx to INVITE: retransmitted on T1,2T1..T2 until the matching ACK
    /// (same Call-ID and CSeq number) arrives, RFC 6026 Accepted state absorbs INVITE retransmissions.
    pub fn respond(&mut self, now: Instant, tx: &TxKey, response: Response) -> Result<(), TxError> {
        self.respond_id(now, tx.0, response)
    }

    /// Start a client transaction. The request must already carry a top Via with an RFC 3261 branch
    /// (use [`Tokens::branch`]). Returns its key.
    pub fn send_request(
        &mut self,
        now: Instant,
        peer: Peer,
        request: Request,
    ) -> Result<TxKey, TxError> {
        if self.txs.len() >= self.cfg.max_transactions {
            return Err(TxError::TooManyTransactions);
        }
        self.start_client(now, peer, request, false).map(TxKey)
    }

    /// CANCEL a client INVITE transaction (RFC 3261 §9.1): only after a provisional response was
    /// received (queued until then). Cancelling twice is harmless.
    pub fn cancel(&mut self, now: Instant, tx: &TxKey) -> Result<(), TxError> {
        self.cancel_id(now, tx.0)
    }

    /// Send without a transaction (ACK for 2xx, stateless replies such as 400 to malformed requests).
    pub fn send_stateless(&mut self, peer: Peer, msg: Message) {
        self.transmits.push_back(Transmit {
            peer,
            bytes: msg.to_bytes(),
        });
    }

    /// Fire every timer due at or before `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some((id, timer)) = self.timers.pop_due(now) {
            let Some(tx) = self.txs.get_mut(&id) else {
                continue;
            };
            tx.armed.fired(timer);
            let end = match tx.state {
                State::InviteServer(_) | State::NonInviteServer(_) => {
                    self.server_timer(now, id, timer)
                }
                State::InviteClient(_) | State::NonInviteClient(_) => {
                    self.client_timer(now, id, timer)
                }
            };
            if end {
                self.destroy(id);
            }
        }
    }

    /// When [`Endpoint::handle_timeout`] must be called next, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next_deadline()
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        let t = self.transmits.pop_front();
        if t.is_none() && self.transmits.capacity() > SHRINK_ABOVE {
            // a burst of retransmissions due at once left a large queue behind
            self.transmits.shrink_to(SHRINK_ABOVE);
        }
        t
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        let e = self.events.pop_front();
        if e.is_none() && self.events.capacity() > SHRINK_ABOVE {
            self.events.shrink_to(SHRINK_ABOVE);
        }
        e
    }

    /// Live transactions, client and server.
    pub fn len(&self) -> usize {
        self.txs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.txs.is_empty()
    }

    fn insert(&mut self, key: MatchKey, peer: Peer, state: State) -> TxId {
        let id = self.next_id;
        self.next_id += 1;
        self.index.insert(key.clone(), id);
        self.txs.insert(
            id,
            Tx {
                key,
                peer,
                armed: Armed::default(),
                state,
            },
        );
        id
    }

    /// Forget a transaction and everything that points at it.
    fn destroy(&mut self, id: TxId) {
        let Some(mut tx) = self.txs.remove(&id) else {
            return;
        };
        self.timers.stop_all(&mut tx.armed, id);
        if self.index.get(&tx.key) == Some(&id) {
            self.index.remove(&tx.key);
        }
        if let State::InviteServer(s) = &tx.state {
            let k = (s.call_id.clone(), s.cseq);
            if self.unacked_2xx.get(&k) == Some(&id) {
                self.unacked_2xx.remove(&k);
            }
        }
        // after a burst the tables would keep the capacity of its peak for the daemon's life
        shrink_if_sparse(&mut self.txs);
        shrink_if_sparse(&mut self.index);
        shrink_if_sparse(&mut self.unacked_2xx);
    }

    fn transmit(transmits: &mut VecDeque<Transmit>, peer: Peer, bytes: Vec<u8>) {
        transmits.push_back(Transmit { peer, bytes });
    }

    #[cfg(test)]
    fn timer_entries(&self) -> usize {
        self.timers.len()
    }

    /// Capacities of the transaction, match-key and unACKed-2xx tables.
    #[cfg(test)]
    fn table_capacities(&self) -> [usize; 3] {
        [
            self.txs.capacity(),
            self.index.capacity(),
            self.unacked_2xx.capacity(),
        ]
    }
}

/// The tag parameter of a From or To header, if it has one.
fn tag_of(headers: &Headers, name: HeaderName) -> Option<String> {
    let addr = match name {
        HeaderName::From => headers.from_addr(),
        _ => headers.to_addr(),
    };
    addr.ok().and_then(|a| a.tag().map(str::to_owned))
}

/// Add `;tag=` to the To header unless it already has one.
fn ensure_to_tag(headers: &mut Headers, tag: &str) {
    if tag_of(headers, HeaderName::To).is_some() {
        return;
    }
    if let Some(h) = headers.0.iter_mut().find(|h| h.name == HeaderName::To) {
        h.value.push_str(";tag=");
        h.value.push_str(tag);
    }
}

/// Host of a sent-by, normalised for comparison.
fn host_key(host: &Host) -> String {
    match host {
        Host::Domain(d) => d.to_ascii_lowercase(),
        other => other.to_string(),
    }
}

fn host_ip(host: &Host) -> Option<IpAddr> {
    match host {
        Host::V4(a) => Some(IpAddr::V4(*a)),
        Host::V6(a) => Some(IpAddr::V6(*a)),
        Host::Domain(_) => None,
    }
}

/// RFC 3261 §18.2.1 and RFC 3581 §4: record where the request really came from in its top Via.
/// `received` is added when the sent-by host is not the source address (always when `rport`
/// is present), and an `rport` parameter gets the source port. A top Via line holding several
/// comma-separated values is split into one line per value. Returns the stamped top Via.
fn stamp_via(headers: &mut Headers, source: SocketAddr) -> Option<Via> {
    let pos = headers.0.iter().position(|h| h.name == HeaderName::Via)?;
    let values: Vec<String> = split_list(&headers.0[pos].value)
        .map(str::to_owned)
        .collect();
    let mut via = Via::parse(values.first()?).ok()?;
    let rport = via.params.contains("rport");
    if rport {
        via.params.set("rport", Some(source.port().to_string()));
    }
    if rport || host_ip(&via.host) != Some(source.ip()) {
        via.params.set("received", Some(source.ip().to_string()));
    }
    headers.0[pos].value = via.to_string();
    for (i, rest) in values.into_iter().skip(1).enumerate() {
        headers.0.insert(
            pos + 1 + i,
            crate::message::Header {
                name: HeaderName::Via,
                value: rest,
            },
        );
    }
    Some(via)
}

/// RFC 3261 §18.2.2 and RFC 3581 §4: where responses to a request with this (stamped) top Via
/// go. Over TCP back over the connection it came on; over UDP to `received` (or the sent-by
/// address, or the source) at the `rport` port, or else the sent-by port (default 5060).
fn response_peer(via: &Via, source: Peer) -> Peer {
    if source.transport == Transport::Tcp {
        return source;
    }
    let ip = via
        .params
        .value("received")
        .and_then(|r| r.trim_matches(['[', ']']).parse::<IpAddr>().ok())
        .or_else(|| host_ip(&via.host))
        .unwrap_or(source.addr.ip());
    let port = via
        .params
        .value("rport")
        .and_then(|p| p.parse::<u16>().ok())
        .or(via.port)
        .unwrap_or(5060);
    Peer {
        transport: source.transport,
        addr: SocketAddr::new(ip, port),
    }
}
