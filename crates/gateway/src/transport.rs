//! SIP over UDP and TCP (RFC 3261 §18): sockets, TCP framing, parsing off the core task.
//!
//! Receive tasks parse and validate each message where it arrives (so parsing runs on every
//! core), answer malformed requests with `400` themselves, and hand good messages to the core
//! over two channels ([`CoreTx`]): new INVITEs apart from everything else, so that the calls
//! already up come first under overload (`overload.rs`). The core sends through
//! [`Outbound`], which never blocks.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use sip::{Message, Peer, Response, Transport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::overload;
use crate::Stats;
use calls::ShedReason;

/// What the transports hand to the core.
#[derive(Debug)]
pub(crate) enum Inbound {
    Message {
        peer: Peer,
        /// Our address the message arrived on.
        local: SocketAddr,
        msg: Box<Message>,
        /// When the receive task queued it (the new calls queue's delay is measured from it).
        received: Instant,
    },
    TcpOpened {
        peer: SocketAddr,
        tx: mpsc::Sender<Vec<u8>>,
    },
    TcpClosed {
        peer: SocketAddr,
    },
}

/// Per-message limits and counters shared by the receive tasks.
#[derive(Debug)]
pub(crate) struct Limits {
    pub max_message_size: usize,
    /// `Retry-After` of the 503 a receive task sends when the new calls queue is full.
    pub retry_after: u32,
    pub stats: Arc<Stats>,
}

/// The two ways into the core task: new INVITEs, and everything else.
#[derive(Clone, Debug)]
pub(crate) struct CoreTx {
    /// Everything but new INVITEs; the receive task waits when it is full.
    pub established: mpsc::Sender<Inbound>,
    /// New INVITEs; never waited on: when it is full the INVITE is answered 503 here.
    pub new_calls: mpsc::Sender<Inbound>,
}

impl CoreTx {
    async fn send(&self, inbound: Inbound) -> bool {
        self.established.send(inbound).await.is_ok()
    }

    /// Hands a good message to the core. `Ok(Some(bytes))`: a 503 to send back to a new
    /// INVITE that found the new calls queue full; `Err(())`: the core is gone.
    async fn deliver(
        &self,
        peer: Peer,
        local: SocketAddr,
        msg: Message,
        limits: &Limits,
        user_agent: &str,
    ) -> Result<Option<Vec<u8>>, ()> {
        let received = Instant::now();
        if !overload::is_new_invite(&msg) {
            let inbound = Inbound::Message {
                peer,
                local,
                msg: Box::new(msg),
                received,
            };
            return self
                .established
                .send(inbound)
                .await
                .map(|()| None)
                .map_err(|_| ());
        }
        let inbound = Inbound::Message {
            peer,
            local,
            msg: Box::new(msg),
            received,
        };
        match self.new_calls.try_send(inbound) {
            Ok(()) => Ok(None),
            Err(TrySendError::Closed(_)) => Err(()),
            Err(TrySendError::Full(Inbound::Message { msg, .. })) => match *msg {
                Message::Request(req) => {
                    limits.stats.count_request(req.method.as_str());
                    limits.stats.count_shed(ShedReason::QueueFull);
                    let bytes = overload::busy_response(&req, user_agent, limits.retry_after);
                    limits.stats.count_sent(&bytes);
                    Ok(Some(bytes))
                }
                Message::Response(_) => Ok(None),
            },
            Err(TrySendError::Full(_)) => Ok(None),
        }
    }
}

/// Outcome of looking at one received buffer.
enum Parsed {
    Good(Message),
    /// A reply to send straight back (400/505/… to a malformed request).
    Reply(Vec<u8>),
    Drop,
}

fn parse(buf: &[u8], user_agent: &str) -> Parsed {
    match sip::parse_message(buf) {
        Ok(Message::Request(req)) => match sip::validate_request(&req) {
            Ok(()) => Parsed::Good(Message::Request(req)),
            Err(e) => {
                if req.method == sip::Method::Ack {
                    return Parsed::Drop; // never answer an ACK
                }
                debug!(status = e.status, reason = %e.reason, "refusing request");
                let mut r = Response::to_headers(&req.headers, e.status, e.reason);
                r.headers.push(sip::HeaderName::Server, user_agent);
                Parsed::Reply(r.to_bytes())
            }
        },
        Ok(Message::Response(r)) => match sip::validate_response(&r) {
            Ok(()) => Parsed::Good(Message::Response(r)),
            Err(e) => {
                debug!(reason = %e.reason, "dropping malformed response");
                Parsed::Drop
            }
        },
        Err(e) => {
            debug!(reason = %e.reason, "malformed SIP message");
            match e.request_head {
                Some(head) if head.0 != sip::Method::Ack => {
                    let mut r = Response::to_headers(&head.1, e.status, e.reason);
                    r.headers.push(sip::HeaderName::Server, user_agent);
                    Parsed::Reply(r.to_bytes())
                }
                _ => Parsed::Drop,
            }
        }
    }
}

pub(crate) async fn udp_loop(
    socket: Arc<UdpSocket>,
    local: SocketAddr,
    core: CoreTx,
    limits: Arc<Limits>,
    user_agent: Arc<str>,
    stop: CancellationToken,
) {
    let mut buf = vec![0u8; limits.max_message_size.max(1500) + 1];
    loop {
        let (n, from) = tokio::select! {
            _ = stop.cancelled() => return,
            r = socket.recv_from(&mut buf) => match r {
                Ok(x) => x,
                Err(e) => {
                    // ICMP errors surface here on some systems; keep serving
                    debug!(error = %e, "udp receive error");
                    continue;
                }
            }
        };
        if n > limits.max_message_size {
            debug!(%from, size = n, "dropping oversized datagram");
            continue;
        }
        let data = &buf[..n];
        if data.iter().all(|b| *b == b'\r' || *b == b'\n') {
            continue; // keep-alive
        }
        let peer = Peer {
            transport: Transport::Udp,
            addr: from,
        };
        match parse(data, &user_agent) {
            Parsed::Good(msg) => match core.deliver(peer, local, msg, &limits, &user_agent).await {
                Ok(None) => {}
                Ok(Some(busy)) => {
                    let _ = socket.try_send_to(&busy, from);
                }
                Err(()) => return,
            },
            Parsed::Reply(bytes) => {
                let _ = socket.try_send_to(&bytes, from);
            }
            Parsed::Drop => {}
        }
    }
}

pub(crate) async fn tcp_accept_loop(
    listener: TcpListener,
    core: CoreTx,
    limits: Arc<Limits>,
    user_agent: Arc<str>,
    stop: CancellationToken,
) {
    loop {
        let (stream, from) = tokio::select! {
            _ = stop.cancelled() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    warn!(error = %e, "tcp accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            }
        };
        tokio::spawn(tcp_connection(
            stream,
            from,
            core.clone(),
            limits.clone(),
            user_agent.clone(),
            stop.clone(),
        ));
    }
}

/// Open a TCP connection to a peer we must send to (e.g. a BYE after the caller's connection
/// closed), then serve it like an accepted one.
pub(crate) async fn tcp_connect(
    to: SocketAddr,
    first: Vec<u8>,
    core: CoreTx,
    limits: Arc<Limits>,
    user_agent: Arc<str>,
    stop: CancellationToken,
) {
    let connect = tokio::time::timeout(std::time::Duration::from_secs(5), TcpStream::connect(to));
    match connect.await {
        Ok(Ok(stream)) => {
            let mut stream = stream;
            if stream.write_all(&first).await.is_err() {
                return;
            }
            tcp_connection(stream, to, core, limits, user_agent, stop).await;
        }
        _ => debug!(%to, "tcp connect failed"),
    }
}

async fn tcp_connection(
    stream: TcpStream,
    from: SocketAddr,
    core: CoreTx,
    limits: Arc<Limits>,
    user_agent: Arc<str>,
    stop: CancellationToken,
) {
    let local = match stream.local_addr() {
        Ok(a) => a,
        Err(_) => return,
    };
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(256);
    if !core
        .send(Inbound::TcpOpened {
            peer: from,
            tx: tx.clone(),
        })
        .await
    {
        return;
    }
    let writer_stop = stop.clone();
    let writer = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = writer_stop.cancelled() => break,
                m = rx.recv() => match m {
                    Some(bytes) => if wr.write_all(&bytes).await.is_err() { break },
                    None => break,
                }
            }
        }
    });
    let mut framer = sip::StreamFramer::new(limits.max_message_size);
    let mut buf = vec![0u8; 16 * 1024];
    let peer = Peer {
        transport: Transport::Tcp,
        addr: from,
    };
    // An idle connection is closed after a while (RFC 5626 keep-alives keep it open).
    let idle = std::time::Duration::from_secs(600);
    'conn: loop {
        let n = tokio::select! {
            _ = stop.cancelled() => break,
            r = tokio::time::timeout(idle, rd.read(&mut buf)) => match r {
                Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
                Ok(Ok(n)) => n,
            }
        };
        framer.push(&buf[..n]);
        loop {
            match framer.next_message() {
                None => break,
                Some(Ok(sip::Frame::Ping)) => {
                    // RFC 5626 §4.4.1: a double-CRLF ping is answered with a single CRLF
                    let _ = tx.try_send(b"\r\n".to_vec());
                }
                Some(Ok(sip::Frame::Pong)) => {}
                Some(Ok(sip::Frame::Message(bytes))) => match parse(&bytes, &user_agent) {
                    Parsed::Good(msg) => {
                        match core.deliver(peer, local, msg, &limits, &user_agent).await {
                            Ok(None) => {}
                            Ok(Some(busy)) => {
                                let _ = tx.try_send(busy);
                            }
                            Err(()) => break 'conn,
                        }
                    }
                    Parsed::Reply(bytes) => {
                        let _ = tx.try_send(bytes);
                    }
                    Parsed::Drop => {}
                },
                Some(Err(e)) => {
                    debug!(%from, error = %e, "closing tcp connection: bad framing");
                    break 'conn;
                }
            }
        }
    }
    drop(tx);
    let _ = core.send(Inbound::TcpClosed { peer: from }).await;
    writer.abort();
}

/// The core's way out: UDP sockets by address family, TCP connections by peer.
pub(crate) struct Outbound {
    pub udp_v4: Option<Arc<UdpSocket>>,
    pub udp_v6: Option<Arc<UdpSocket>>,
    pub tcp: HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>,
    pub core: CoreTx,
    pub limits: Arc<Limits>,
    pub user_agent: Arc<str>,
    pub stop: CancellationToken,
}

impl Outbound {
    pub fn send(&mut self, peer: Peer, bytes: Vec<u8>) {
        match peer.transport {
            Transport::Udp => {
                let sock = if peer.addr.is_ipv4() {
                    self.udp_v4.as_ref()
                } else {
                    self.udp_v6.as_ref()
                };
                match sock {
                    Some(s) => {
                        if let Err(e) = s.try_send_to(&bytes, peer.addr) {
                            debug!(to = %peer.addr, error = %e, "udp send failed");
                        }
                    }
                    None => debug!(to = %peer.addr, "no UDP socket for that address family"),
                }
            }
            Transport::Tcp => match self.tcp.get(&peer.addr) {
                Some(tx) => {
                    if tx.try_send(bytes).is_err() {
                        debug!(to = %peer.addr, "tcp connection congested or closed; message dropped");
                    }
                }
                None => {
                    tokio::spawn(tcp_connect(
                        peer.addr,
                        bytes,
                        self.core.clone(),
                        self.limits.clone(),
                        self.user_agent.clone(),
                        self.stop.clone(),
                    ));
                }
            },
        }
    }
}
