//! Property test: a client `Endpoint` and a server `Endpoint` over an in-memory UDP network
//! that drops, duplicates and reorders, on a virtual clock that jumps to the next thing due.
//! Whatever the network does, both ends must end with no transaction left and the client must
//! see exactly one final outcome per transaction.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::new_branch;
use super::{parse, udp};
use crate::message::{HeaderName, Method, Request, Response};
use crate::transaction::{ensure_to_tag, Endpoint, Event, TimerConfig, TxError, TxKey};
use crate::typed::parse_uri;
use crate::{Peer, Tokens};

const CLIENT: &str = "192.0.2.10:5060";
const SERVER: &str = "192.0.2.20:5060";

#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Final(u16),
    Timeout,
}

struct InFlight {
    at: Instant,
    to_server: bool,
    bytes: Vec<u8>,
}

enum ClientAction {
    Start(usize),
    Cancel(usize),
}

struct Pair {
    rng: StdRng,
    t0: Instant,
    now: Instant,
    client: Endpoint,
    server: Endpoint,
    net: Vec<InFlight>,
    drop: f64,
    dup: f64,
    /// The server core's answers, due at some time.
    server_todo: Vec<(Instant, TxKey, Response)>,
    client_todo: Vec<(Instant, ClientAction)>,
    requests: Vec<Request>,
    keys: Vec<Option<TxKey>>,
    outcomes: HashMap<TxKey, Vec<Outcome>>,
    server_tags: u32,
}

fn client_request(method: Method, i: usize) -> Request {
    let mut r = Request::new(method.clone(), parse_uri("sip:hotline@192.0.2.20").unwrap());
    r.headers.push(
        HeaderName::Via,
        format!("SIP/2.0/UDP {CLIENT};branch={};rport", new_branch()),
    );
    r.headers.push(HeaderName::MaxForwards, "70");
    r.headers
        .push(HeaderName::From, format!("<sip:agent@192.0.2.10>;tag=c{i}"));
    r.headers.push(HeaderName::To, "<sip:hotline@192.0.2.20>");
    r.headers
        .push(HeaderName::CallId, format!("call-{i}@192.0.2.10"));
    r.headers.push(HeaderName::CSeq, format!("1 {method}"));
    r
}

impl Pair {
    fn new(seed: u64) -> Pair {
        let mut rng = StdRng::seed_from_u64(seed);
        let t0 = Instant::now();
        let drop = [0.0, 0.1, 0.3, 0.6][rng.gen_range(0..4)];
        let dup = [0.0, 0.2][rng.gen_range(0..2)];
        let mut requests = Vec::new();
        let mut client_todo = Vec::new();
        for i in 0..rng.gen_range(1..=6) {
            let method = match rng.gen_range(0..5) {
                0 => Method::Options,
                1 => Method::Bye,
                _ => Method::Invite,
            };
            let start = t0 + Duration::from_millis(rng.gen_range(0..2000));
            client_todo.push((start, ClientAction::Start(i)));
            if method == Method::Invite && rng.gen_bool(0.4) {
                let at = start + Duration::from_millis(rng.gen_range(0..3000));
                client_todo.push((at, ClientAction::Cancel(i)));
            }
            requests.push(client_request(method, i));
        }
        let client = Endpoint::new(TimerConfig::default(), Tokens::from_seed(rng.gen()));
        let server = Endpoint::new(TimerConfig::default(), Tokens::from_seed(rng.gen()));
        Pair {
            rng,
            t0,
            now: t0,
            client,
            server,
            net: Vec::new(),
            drop,
            dup,
            server_todo: Vec::new(),
            client_todo,
            keys: vec![None; requests.len()],
            requests,
            outcomes: HashMap::new(),
            server_tags: 0,
        }
    }

    fn server_peer() -> Peer {
        udp(SERVER)
    }

    fn put_on_wire(&mut self, peer: Peer, bytes: Vec<u8>) {
        let to_server = peer.addr == Self::server_peer().addr;
        assert!(
            to_server || peer == udp(CLIENT),
            "sent to an address nobody has: {peer:?}"
        );
        if self.rng.gen_bool(self.drop) {
            return;
        }
        let copies = if self.rng.gen_bool(self.dup) { 2 } else { 1 };
        for _ in 0..copies {
            let at = self.now + Duration::from_millis(self.rng.gen_range(0..=80));
            self.net.push(InFlight {
                at,
                to_server,
                bytes: bytes.clone(),
            });
        }
    }

    fn client_event(&mut self, e: Event) {
        match e {
            Event::Response { tx, response } => {
                if response.status < 200 {
                    return;
                }
                self.outcomes
                    .entry(tx.clone())
                    .or_default()
                    .push(Outcome::Final(response.status));
                let is_invite = response.headers.cseq().unwrap().method == Method::Invite;
                if is_invite && response.status < 300 {
                    // the core ACKs every 2xx it is shown, outside any transaction
                    let i = self
                        .keys
                        .iter()
                        .position(|k| k.as_ref() == Some(&tx))
                        .unwrap();
                    let inv = &self.requests[i];
                    let mut ack = Request::new(Method::Ack, inv.uri.clone());
                    ack.headers.push(
                        HeaderName::Via,
                        format!("SIP/2.0/UDP {CLIENT};branch={};rport", new_branch()),
                    );
                    for name in [HeaderName::From, HeaderName::CallId] {
                        ack.headers
                            .push(name.clone(), inv.headers.get(&name).unwrap());
                    }
                    ack.headers.push(
                        HeaderName::To,
                        response.headers.get(&HeaderName::To).unwrap(),
                    );
                    ack.headers.push(HeaderName::CSeq, "1 ACK");
                    self.client
                        .send_stateless(Self::server_peer(), crate::Message::Request(ack));
                }
            }
            Event::Timeout { tx } => self.outcomes.entry(tx).or_default().push(Outcome::Timeout),
            other => panic!("client got {other:?}"),
        }
    }

    fn server_event(&mut self, e: Event) {
        match e {
            Event::Request { tx, request, .. } => {
                self.server_tags += 1;
                let tag = format!("s{}", self.server_tags);
                let answer = |status: u16| {
                    let mut r = request.response(status);
                    ensure_to_tag(&mut r.headers, &tag);
                    r
                };
                if request.method == Method::Invite {
                    if self.rng.gen_bool(0.5) {
                        self.server.respond(self.now, &tx, answer(180)).unwrap();
                    }
                    let status = [200, 200, 486, 603][self.rng.gen_range(0..4)];
                    let at = self.now + Duration::from_millis(self.rng.gen_range(0..4000));
                    self.server_todo.push((at, tx, answer(status)));
                } else {
                    let at = self.now + Duration::from_millis(self.rng.gen_range(0..300));
                    self.server_todo.push((at, tx, answer(200)));
                }
            }
            Event::Ack { .. }
            | Event::Cancelled { .. }
            | Event::Timeout { .. }
            | Event::AckTimeout { .. } => {}
            Event::Response { .. } => panic!("server got a response event"),
        }
    }

    /// Drain both endpoints, letting each core react, until neither has anything more.
    fn flush(&mut self) {
        loop {
            let mut busy = false;
            while let Some(t) = self.client.poll_transmit() {
                self.put_on_wire(t.peer, t.bytes);
                busy = true;
            }
            while let Some(t) = self.server.poll_transmit() {
                self.put_on_wire(t.peer, t.bytes);
                busy = true;
            }
            while let Some(e) = self.client.poll_event() {
                self.client_event(e);
                busy = true;
            }
            while let Some(e) = self.server.poll_event() {
                self.server_event(e);
                busy = true;
            }
            if !busy {
                return;
            }
        }
    }

    /// Jump to the next thing due and do it. False when nothing is left to happen.
    fn step(&mut self) -> bool {
        self.flush();
        let next = [
            self.net.iter().map(|m| m.at).min(),
            self.client.poll_timeout(),
            self.server.poll_timeout(),
            self.server_todo.iter().map(|(at, _, _)| *at).min(),
            self.client_todo.iter().map(|(at, _)| *at).min(),
        ]
        .into_iter()
        .flatten()
        .min();
        let Some(next) = next else {
            return false;
        };
        self.now = self.now.max(next);
        let now = self.now;

        // network first, in delivery order
        self.net.sort_by_key(|m| m.at);
        let due = self.net.iter().take_while(|m| m.at <= now).count();
        for m in self.net.drain(..due).collect::<Vec<_>>() {
            let msg = parse(&m.bytes);
            if m.to_server {
                self.server.handle_message(now, udp(CLIENT), msg);
            } else {
                self.client.handle_message(now, Self::server_peer(), msg);
            }
            self.flush();
        }
        self.client.handle_timeout(now);
        self.server.handle_timeout(now);
        self.flush();

        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.server_todo)
            .into_iter()
            .partition(|(at, _, _)| *at <= now);
        self.server_todo = later;
        for (_, tx, response) in due {
            match self.server.respond(now, &tx, response) {
                Ok(()) | Err(TxError::AlreadyFinal) => {}
                Err(e) => panic!("server core could not answer: {e}"),
            }
            self.flush();
        }
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.client_todo)
            .into_iter()
            .partition(|(at, _)| *at <= now);
        self.client_todo = later;
        for (_, action) in due {
            match action {
                ClientAction::Start(i) => {
                    let key = self
                        .client
                        .send_request(now, Self::server_peer(), self.requests[i].clone())
                        .unwrap();
                    self.keys[i] = Some(key);
                }
                ClientAction::Cancel(i) => {
                    let key = self.keys[i].clone().unwrap();
                    match self.client.cancel(now, &key) {
                        Ok(()) | Err(TxError::AlreadyFinal | TxError::UnknownTransaction) => {}
                        Err(e) => panic!("cancel: {e}"),
                    }
                }
            }
            self.flush();
        }
        true
    }
}

fn run(seed: u64) {
    let mut p = Pair::new(seed);
    let mut steps = 0;
    while p.step() {
        steps += 1;
        assert!(steps < 100_000, "seed {seed}: no end in sight");
    }
    let ctx = format!(
        "seed {seed} (drop {}, dup {}, ended at {:?})",
        p.drop,
        p.dup,
        p.now - p.t0
    );
    assert!(p.client.is_empty(), "{ctx}: client left {}", p.client.len());
    assert!(p.server.is_empty(), "{ctx}: server left {}", p.server.len());
    assert!(p.net.is_empty());
    assert_eq!(p.client.timer_entries(), 0, "{ctx}");
    assert_eq!(p.server.timer_entries(), 0, "{ctx}");
    for (i, key) in p.keys.iter().enumerate() {
        let key = key.as_ref().unwrap();
        let outcomes = p.outcomes.get(key).cloned().unwrap_or_default();
        let method = &p.requests[i].method;
        let Some(first) = outcomes.first() else {
            panic!("{ctx}: {method} #{i} never ended");
        };
        // repeats are only the retransmitted 2xx to INVITE, shown again for re-ACKing
        let repeats_ok = outcomes.iter().all(|o| o == first)
            && (outcomes.len() == 1
                || (*method == Method::Invite && matches!(first, Outcome::Final(200..=299))));
        assert!(repeats_ok, "{ctx}: {method} #{i} ended as {outcomes:?}");
        if p.drop == 0.0 {
            assert_ne!(
                *first,
                Outcome::Timeout,
                "{ctx}: {method} #{i} timed out without loss"
            );
        }
    }
}

#[test]
fn lossy_pair_always_ends_clean_with_one_outcome_per_transaction() {
    for seed in 0..400 {
        run(seed);
    }
}
