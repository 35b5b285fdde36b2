//! Transaction scenarios in virtual time, and a randomized client/server pair over a lossy
//! in-memory network.

use std::time::{Duration, Instant};

use super::*;
use crate::message::{Header, Headers, Response};
use crate::typed::parse_uri;

/// A fresh branch for a test's own requests.
fn new_branch() -> String {
    Tokens::from_seed(rand::random()).branch()
}

mod pair;

pub(super) const T1: Duration = Duration::from_millis(500);
pub(super) const T2: Duration = Duration::from_secs(4);
pub(super) const T4: Duration = Duration::from_secs(5);

pub(super) fn udp(addr: &str) -> Peer {
    Peer {
        transport: Transport::Udp,
        addr: addr.parse().unwrap(),
    }
}

fn tcp(addr: &str) -> Peer {
    Peer {
        transport: Transport::Tcp,
        addr: addr.parse().unwrap(),
    }
}

/// The phone that calls us: sends from 192.0.2.10:5060 with a matching sent-by.
fn phone() -> Peer {
    udp("192.0.2.10:5060")
}

/// A request as a phone would send it; `via_params` go after the sent-by.
pub(super) fn request(method: Method, sent_by: &str, via_params: &str, cseq: u32) -> Request {
    let mut r = Request::new(method.clone(), parse_uri("sip:hotline@192.0.2.1").unwrap());
    r.headers.push(
        HeaderName::Via,
        format!("SIP/2.0/UDP {sent_by}{via_params}"),
    );
    r.headers.push(HeaderName::MaxForwards, "70");
    r.headers.push(
        HeaderName::From,
        "\"Caller\" <sip:caller@example.com>;tag=from1",
    );
    r.headers.push(HeaderName::To, "<sip:hotline@192.0.2.1>");
    r.headers.push(HeaderName::CallId, "call-1@example.com");
    r.headers.push(HeaderName::CSeq, format!("{cseq} {method}"));
    r
}

fn invite(branch: &str) -> Request {
    request(
        Method::Invite,
        "192.0.2.10:5060",
        &format!(";branch={branch}"),
        1,
    )
}

/// The ACK a phone sends for our non-2xx final (§17.1.1.3): same branch, To tag of the response.
fn ack_for(invite: &Request, response: &Response) -> Request {
    let mut ack = Request::new(Method::Ack, invite.uri.clone());
    for h in invite.headers.iter() {
        match h.name {
            HeaderName::Via | HeaderName::From | HeaderName::CallId => {
                ack.headers.0.push(h.clone())
            }
            _ => {}
        }
    }
    ack.headers.push(
        HeaderName::To,
        response.headers.get(&HeaderName::To).unwrap(),
    );
    let seq = invite.headers.cseq().unwrap().seq;
    ack.headers.push(HeaderName::CSeq, format!("{seq} ACK"));
    ack
}

/// Test-only parser for what the endpoint writes: start line, `Name: value` lines, body.
pub(super) fn parse(bytes: &[u8]) -> Message {
    let text = std::str::from_utf8(bytes).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let mut lines = head.split("\r\n");
    let start = lines.next().unwrap();
    let mut headers = Headers::new();
    for line in lines {
        let (n, v) = line.split_once(':').unwrap();
        headers.0.push(Header {
            name: HeaderName::from_name(n.trim()),
            value: v.trim().to_string(),
        });
    }
    let body = body.as_bytes().to_vec();
    if let Some(rest) = start.strip_prefix("SIP/2.0 ") {
        let (code, reason) = rest.split_once(' ').unwrap();
        Message::Response(Response {
            status: code.parse().unwrap(),
            reason: reason.to_string(),
            headers,
            body,
        })
    } else {
        let mut parts = start.split(' ');
        let method = Method::from_token(parts.next().unwrap());
        let uri = parse_uri(parts.next().unwrap()).unwrap();
        Message::Request(Request {
            method,
            uri,
            headers,
            body,
        })
    }
}

fn status_of(t: &Transmit) -> u16 {
    match parse(&t.bytes) {
        Message::Response(r) => r.status,
        Message::Request(r) => panic!("expected a response, got {}", r.method),
    }
}

fn method_of(t: &Transmit) -> Method {
    match parse(&t.bytes) {
        Message::Request(r) => r.method,
        Message::Response(r) => panic!("expected a request, got {}", r.status),
    }
}

/// One endpoint on a virtual clock, recording what it sends and reports with the time offset.
struct Harness {
    t0: Instant,
    now: Instant,
    ep: Endpoint,
    sent: Vec<(Duration, Transmit)>,
    events: Vec<(Duration, Event)>,
}

impl Harness {
    fn new() -> Harness {
        Harness::with(TimerConfig::default())
    }
    fn with(cfg: TimerConfig) -> Harness {
        let t0 = Instant::now();
        Harness {
            t0,
            now: t0,
            ep: Endpoint::new(cfg, Tokens::from_seed([11; 32])),
            sent: Vec::new(),
            events: Vec::new(),
        }
    }
    fn drain(&mut self) {
        let at = self.now - self.t0;
        while let Some(t) = self.ep.poll_transmit() {
            self.sent.push((at, t));
        }
        while let Some(e) = self.ep.poll_event() {
            self.events.push((at, e));
        }
    }
    fn deliver(&mut self, peer: Peer, msg: impl IntoMessage) {
        self.ep.handle_message(self.now, peer, msg.into_message());
        self.drain();
    }
    /// Advance the clock to `t0 + at`, firing every timer on the way at its own deadline.
    fn run_to(&mut self, at: Duration) {
        let end = self.t0 + at;
        while let Some(d) = self.ep.poll_timeout() {
            if d > end {
                break;
            }
            assert!(d >= self.now, "timer in the past");
            self.now = d;
            self.ep.handle_timeout(d);
            self.drain();
        }
        self.now = end;
    }
    /// Run until no timer is left.
    fn run_out(&mut self) {
        self.run_to(Duration::from_secs(3600));
        assert_eq!(self.ep.poll_timeout(), None);
    }
    fn take_sent(&mut self) -> Vec<(Duration, Transmit)> {
        std::mem::take(&mut self.sent)
    }
    fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
            .into_iter()
            .map(|(_, e)| e)
            .collect()
    }
    fn assert_empty(&self) {
        assert_eq!(self.ep.len(), 0, "transactions leaked");
        assert!(self.ep.is_empty());
        assert_eq!(self.ep.timer_entries(), 0, "timers leaked");
        assert!(self.ep.index.is_empty(), "index leaked");
        assert!(self.ep.unacked_2xx.is_empty(), "2xx table leaked");
    }
    /// Deliver a request that must create a transaction; returns its key and the request as
    /// the core saw it.
    fn new_request(&mut self, peer: Peer, req: Request) -> (TxKey, Request) {
        self.deliver(peer, Message::Request(req));
        let events = self.take_events();
        match events.as_slice() {
            [Event::Request { tx, request, .. }] => (tx.clone(), request.clone()),
            other => panic!("expected one Request event, got {other:?}"),
        }
    }
}

/// Lets tests deliver a Request or a Response without wrapping it.
trait IntoMessage {
    fn into_message(self) -> Message;
}
impl IntoMessage for Request {
    fn into_message(self) -> Message {
        Message::Request(self)
    }
}
impl IntoMessage for Response {
    fn into_message(self) -> Message {
        Message::Response(self)
    }
}
impl IntoMessage for Message {
    fn into_message(self) -> Message {
        self
    }
}

fn with_tag(mut r: Response, tag: &str) -> Response {
    ensure_to_tag(&mut r.headers, tag);
    r
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Offsets at which a retransmission starting at T1 doubling up to `cap` fires before `until`.
fn schedule(cap: Duration, until: Duration) -> Vec<Duration> {
    let (mut at, mut step, mut out) = (Duration::ZERO, T1, Vec::new());
    loop {
        at += step;
        if at >= until {
            return out;
        }
        out.push(at);
        step = (step * 2).min(cap);
    }
}

// ---------------------------------------------------------------- INVITE server

#[test]
fn invite_gets_100_trying_at_once_and_retransmissions_get_the_last_response() {
    let mut h = Harness::new();
    let inv = invite("z9hG4bKa1");
    let (tx, _) = h.new_request(phone(), inv.clone());
    let sent = h.take_sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, Duration::ZERO);
    assert_eq!(status_of(&sent[0].1), 100);
    assert_eq!(sent[0].1.peer, phone());

    // retransmission: 100 again, no new transaction, no event
    h.deliver(phone(), inv.clone());
    assert!(h.take_events().is_empty());
    assert_eq!(h.ep.len(), 1);
    let sent = h.take_sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(status_of(&sent[0].1), 100);

    // after a 180, retransmissions get the 180
    let ringing = with_tag(inv.response(180), "totag");
    h.ep.respond(h.now, &tx, ringing).unwrap();
    h.drain();
    assert_eq!(status_of(&h.take_sent()[0].1), 180);
    h.deliver(phone(), inv.clone());
    let sent = h.take_sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(status_of(&sent[0].1), 180);
    assert!(h.take_events().is_empty());

    // clean up: final, ACK, Timer I
    let busy = with_tag(inv.response(486), "totag");
    h.ep.respond(h.now, &tx, busy.clone()).unwrap();
    h.deliver(phone(), ack_for(&inv, &busy));
    h.run_out();
    h.assert_empty();
}

#[test]
fn ack_for_non_2xx_is_absorbed_and_stops_timer_g() {
    let mut h = Harness::new();
    let inv = invite("z9hG4bKa2");
    let (tx, _) = h.new_request(phone(), inv.clone());
    let busy = with_tag(inv.response(486), "t1");
    h.ep.respond(h.now, &tx, busy.clone()).unwrap();
    h.drain();
    h.run_to(T1 + T1 / 2); // one Timer G retransmission
    h.take_sent();
    h.deliver(phone(), ack_for(&inv, &busy));
    assert!(
        h.take_events().is_empty(),
        "ACK for non-2xx reached the core"
    );
    // ACK retransmission absorbed too
    h.deliver(phone(), ack_for(&inv, &busy));
    assert!(h.take_events().is_empty());
    // Confirmed: only Timer I left, which ends the transaction T4 after the ACK
    let acked_at = h.now - h.t0;
    h.run_to(acked_at + T4 - ms(1));
    assert_eq!(h.ep.len(), 1);
    h.run_to(acked_at + T4);
    assert!(h.take_sent().is_empty(), "retransmitted after the ACK");
    assert!(
        h.take_events().is_empty(),
        "Timer I must not report a timeout"
    );
    h.assert_empty();
}

#[test]
fn timer_g_retransmits_then_h_times_out_under_total_loss() {
    let mut h = Harness::new();
    let inv = invite("z9hG4bKa3");
    let (tx, _) = h.new_request(phone(), inv.clone());
    h.take_sent();
    h.ep.respond(h.now, &tx, with_tag(inv.response(486), "t"))
        .unwrap();
    h.drain();
    assert_eq!(h.take_sent().len(), 1);
    h.run_out();
    let sent = h.take_sent();
    let times: Vec<Duration> = sent.iter().map(|(at, _)| *at).collect();
    assert_eq!(times, schedule(T2, T1 * 64));
    assert!(sent.iter().all(|(_, t)| status_of(t) == 486));
    let events = h.events.clone();
    assert_eq!(events, vec![(T1 * 64, Event::Timeout { tx })]);
    h.assert_empty();
}

#[test]
fn two_xx_is_retransmitted_until_64_t1_then_ack_timeout() {
    let mut h = Harness::new();
    let inv = invite("z9hG4bKa4");
    let (tx, _) = h.new_request(phone(), inv.clone());
    h.take_sent();
    h.ep.respond(h.now, &tx, with_tag(inv.response(200), "t"))
        .unwrap();
    h.drain();
    assert_eq!(h.take_sent().len(), 1);
    // INVITE retransmission in Accepted is absorbed (RFC 6026)
    h.deliver(phone(), inv.clone());
    assert!(h.take_sent().is_empty());
    h.run_out();
    let sent = h.take_sent();
    let times: Vec<Duration> = sent.iter().map(|(at, _)| *at).collect();
    // T1, 2T1, 4T1, T2, T2, … (offsets 0.5, 1.5, 3.5, 7.5, 11.5, …)
    assert_eq!(
        &times[..5],
        &[ms(500), ms(1500), ms(3500), ms(7500), ms(11500)]
    );
    assert_eq!(times, schedule(T2, T1 * 64));
    assert!(sent.iter().all(|(_, t)| status_of(t) == 200));
    assert_eq!(
        h.events,
        vec![(
            T1 * 64,
            Event::AckTimeout {
                call_id: "call-1@example.com".into(),
                cseq: 1
            }
        )]
    );
    h.assert_empty();
}

#[test]
fn ack_for_2xx_stops_retransmission_and_reaches_the_core() {
    let mut h = Harness::new();
    let inv = invite("z9hG4bKa5");
    let (tx, _) = h.new_request(phone(), inv.clone());
    h.ep.respond(h.now, &tx, with_tag(inv.response(200), "t"))
        .unwrap();
    h.drain();
    h.run_to(ms(1600)); // two retransmissions
    h.take_sent();
    // the 2xx ACK is its own transaction: new branch
    let mut ack = request(Method::Ack, "192.0.2.10:5060", ";branch=z9hG4bKack5", 1);
    ack.headers
        .set(HeaderName::To, "<sip:hotline@192.0.2.1>;tag=t");
    h.deliver(phone(), ack);
    let events = h.take_events();
    assert!(
        matches!(events.as_slice(), [Event::Ack { request, .. }] if request.method == Method::Ack)
    );
    h.run_out();
    assert!(h.take_sent().is_empty(), "2xx retransmitted after its ACK");
    assert!(h.take_events().is_empty(), "AckTimeout after an ACK");
    h.assert_empty();
}

#[test]
fn ack_reusing_the_invite_branch_still_acknowledges_the_2xx() {
    // Some phones (and every RFC 2543 one) send the 2xx ACK with the INVITE's top Via.
    for branch in ["z9hG4bKsame", "old-style"] {
        let mut h = Harness::new();
        let inv = invite(branch);
        let (tx, _) = h.new_request(phone(), inv.clone());
        let ok = with_tag(inv.response(200), "t");
        h.ep.respond(h.now, &tx, ok.clone()).unwrap();
        h.drain();
        h.take_sent();
        h.deliver(phone(), ack_for(&inv, &ok));
        let events = h.take_events();
        assert!(
            matches!(events.as_slice(), [Event::Ack { .. }]),
            "{branch}: {events:?}"
        );
        h.run_out();
        assert!(
            h.take_sent().is_empty(),
            "{branch}: 2xx retransmitted after its ACK"
        );
        assert!(
            h.take_events().is_empty(),
            "{branch}: AckTimeout after an ACK"
        );
        h.assert_empty();
    }
}

#[test]
fn cancel_answers_200_and_487_and_reports_cancelled() {
    let mut h = Harness::new();
    let inv = invite("z9hG4bKa6");
    let (tx, _) = h.new_request(phone(), inv.clone());
    h.ep.respond(h.now, &tx, with_tag(inv.response(180), "ring"))
        .unwrap();
    h.drain();
    h.take_sent();
    let cancel = request(Method::Cancel, "192.0.2.10:5060", ";branch=z9hG4bKa6", 1);
    h.deliver(phone(), cancel.clone());
    let sent = h.take_sent();
    let got: Vec<(u16, String)> = sent
        .iter()
        .map(|(_, t)| match parse(&t.bytes) {
            Message::Response(r) => (r.status, r.headers.cseq().unwrap().method.to_string()),
            _ => panic!(),
        })
        .collect();
    assert_eq!(
        got,
        vec![(200, "CANCEL".to_string()), (487, "INVITE".to_string())]
    );
    // both carry the tag of the 180
    for (_, t) in &sent {
        assert_eq!(
            tag_of(parse(&t.bytes).headers(), HeaderName::To).as_deref(),
            Some("ring")
        );
    }
    assert_eq!(h.take_events(), vec![Event::Cancelled { tx: tx.clone() }]);
    // the core answering afterwards is refused
    assert_eq!(
        h.ep.respond(h.now, &tx, inv.response(200)),
        Err(TxError::AlreadyFinal)
    );
    // CANCEL retransmission re-answered with 200
    h.deliver(phone(), cancel);
    let sent = h.take_sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(status_of(&sent[0].1), 200);
    // ACK for the 487 absorbed
    let r487 = match parse(&sent[0].1.bytes) {
        Message::Response(r) => r,
        _ => unreachable!(),
    };
    h.deliver(phone(), ack_for(&inv, &r487));
    assert!(h.take_events().is_empty());
    h.run_out();
    h.assert_empty();
}

#[test]
fn cancel_without_a_transaction_gets_481() {
    let mut h = Harness::new();
    let cancel = request(Method::Cancel, "192.0.2.10:5060", ";branch=z9hG4bKnone", 1);
    h.deliver(phone(), cancel);
    let sent = h.take_sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(status_of(&sent[0].1), 481);
    assert!(h.take_events().is_empty());
    h.run_out();
    h.assert_empty();
}

// ------------------------------------------------------------ non-INVITE server

#[test]
fn non_invite_retransmissions_are_re_answered_and_timer_j_cleans_up() {
    let mut h = Harness::new();
    let opt = request(Method::Options, "192.0.2.10:5060", ";branch=z9hG4bKo1", 7);
    let (tx, _) = h.new_request(phone(), opt.clone());
    assert!(h.take_sent().is_empty(), "no 100 for non-INVITE");
    // Trying: retransmission absorbed silently
    h.deliver(phone(), opt.clone());
    assert!(h.take_sent().is_empty());
    assert!(h.take_events().is_empty());
    h.run_to(ms(100));
    h.ep.respond(h.now, &tx, with_tag(opt.response(200), "x"))
        .unwrap();
    h.drain();
    assert_eq!(h.take_sent().len(), 1);
    h.deliver(phone(), opt.clone());
    let sent = h.take_sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(status_of(&sent[0].1), 200);
    assert_eq!(
        h.ep.respond(h.now, &tx, opt.response(500)),
        Err(TxError::AlreadyFinal)
    );
    h.run_to(ms(100) + T1 * 64 - ms(1));
    assert_eq!(h.ep.len(), 1);
    h.run_to(ms(100) + T1 * 64);
    assert!(
        h.take_sent().is_empty(),
        "a non-INVITE final is never retransmitted"
    );
    assert!(h.take_events().is_empty());
    h.assert_empty();
}

// ------------------------------------------------------------------- clients

fn our_invite(branch: &str) -> Request {
    request(
        Method::Invite,
        "192.0.2.1:5060",
        &format!(";branch={branch};rport"),
        10,
    )
}

fn trunk() -> Peer {
    udp("203.0.113.5:5060")
}

/// A response from the far end to a request we sent (headers copied, optional To tag).
fn answer(req: &Request, status: u16, tag: Option<&str>) -> Response {
    let r = req.response(status);
    match tag {
        Some(t) => with_tag(r, t),
        None => r,
    }
}

#[test]
fn client_invite_timer_a_doubles_and_timer_b_times_out() {
    let mut h = Harness::new();
    let tx =
        h.ep.send_request(h.now, trunk(), our_invite(&new_branch()))
            .unwrap();
    h.drain();
    h.run_out();
    let sent = h.take_sent();
    let times: Vec<Duration> = sent.iter().map(|(at, _)| *at).collect();
    // initial send, then T1, 3T1, 7T1, 15T1, 31T1 (Timer A, no cap), all before 64*T1
    let expected: Vec<Duration> = [0, 1, 3, 7, 15, 31, 63].iter().map(|k| T1 * *k).collect();
    assert_eq!(times, expected);
    assert!(sent
        .iter()
        .all(|(_, t)| t.peer == trunk() && method_of(t) == Method::Invite));
    assert_eq!(h.events, vec![(T1 * 64, Event::Timeout { tx })]);
    h.assert_empty();
}

#[test]
fn client_invite_acks_a_486_itself_but_not_a_200() {
    // 486: the transaction ACKs, and re-ACKs the retransmitted 486 without a second event
    let mut h = Harness::new();
    let inv = our_invite("z9hG4bKc1");
    let tx = h.ep.send_request(h.now, trunk(), inv.clone()).unwrap();
    h.drain();
    h.take_sent();
    let busy = answer(&inv, 486, Some("far"));
    h.deliver(trunk(), busy.clone());
    let sent = h.take_sent();
    assert_eq!(sent.len(), 1);
    let Message::Request(ack) = parse(&sent[0].1.bytes) else {
        panic!()
    };
    assert_eq!(ack.method, Method::Ack);
    assert_eq!(ack.uri, inv.uri);
    assert_eq!(ack.headers.top_via().unwrap().branch(), Some("z9hG4bKc1"));
    assert_eq!(ack.headers.cseq().unwrap().to_string(), "10 ACK");
    assert_eq!(tag_of(&ack.headers, HeaderName::To).as_deref(), Some("far"));
    assert_eq!(
        h.take_events(),
        vec![Event::Response {
            tx: tx.clone(),
            response: busy.clone()
        }]
    );
    h.deliver(trunk(), busy.clone());
    let sent = h.take_sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(method_of(&sent[0].1), Method::Ack);
    assert!(h.take_events().is_empty());
    assert_eq!(h.ep.cancel(h.now, &tx), Err(TxError::AlreadyFinal));
    h.run_to(Duration::from_secs(32) - ms(1));
    assert_eq!(h.ep.len(), 1, "Timer D keeps the transaction 32 s on UDP");
    h.run_out();
    h.assert_empty();

    // 200: no ACK from the transaction; each retransmitted 200 goes up so the core re-ACKs
    let mut h = Harness::new();
    let inv = our_invite("z9hG4bKc2");
    let tx = h.ep.send_request(h.now, trunk(), inv.clone()).unwrap();
    h.drain();
    h.take_sent();
    let ok = answer(&inv, 200, Some("far"));
    h.deliver(trunk(), ok.clone());
    h.deliver(trunk(), ok.clone());
    assert!(
        h.take_sent().is_empty(),
        "the transaction must not ACK a 2xx"
    );
    assert_eq!(
        h.take_events(),
        vec![
            Event::Response {
                tx: tx.clone(),
                response: ok.clone()
            },
            Event::Response { tx, response: ok }
        ]
    );
    h.run_to(T1 * 64 - ms(1));
    assert_eq!(h.ep.len(), 1, "Timer M");
    h.run_out();
    assert!(
        h.take_sent().is_empty(),
        "no INVITE retransmission after a 2xx"
    );
    h.assert_empty();
}

#[test]
fn client_invite_without_a_final_gives_up_after_the_proceeding_guard() {
    let mut h = Harness::new();
    let inv = our_invite("z9hG4bKc4");
    let tx = h.ep.send_request(h.now, trunk(), inv.clone()).unwrap();
    h.drain();
    h.take_sent();
    h.deliver(trunk(), answer(&inv, 100, None));
    h.take_events();
    h.run_to(Duration::from_secs(100));
    h.deliver(trunk(), answer(&inv, 180, Some("far")));
    h.take_events();
    // Timer B no longer applies once a provisional arrived; the guard restarts with each one
    h.run_to(Duration::from_secs(279));
    assert_eq!(h.ep.len(), 1);
    assert!(h.take_sent().is_empty(), "no retransmission in Proceeding");
    h.run_out();
    assert_eq!(
        h.events,
        vec![(Duration::from_secs(280), Event::Timeout { tx })]
    );
    h.assert_empty();
}

#[test]
fn client_cancel_waits_for_a_provisional_response() {
    let mut h = Harness::new();
    let inv = our_invite("z9hG4bKc3");
    let tx = h.ep.send_request(h.now, trunk(), inv.clone()).unwrap();
    h.drain();
    h.take_sent();
    h.ep.cancel(h.now, &tx).unwrap();
    h.drain();
    assert!(
        h.take_sent().is_empty(),
        "CANCEL sent before any provisional"
    );
    h.deliver(trunk(), answer(&inv, 180, Some("far")));
    let sent = h.take_sent();
    assert_eq!(sent.len(), 1);
    let Message::Request(cancel) = parse(&sent[0].1.bytes) else {
        panic!()
    };
    assert_eq!(cancel.method, Method::Cancel);
    assert_eq!(
        cancel.headers.top_via().unwrap().branch(),
        Some("z9hG4bKc3")
    );
    assert_eq!(cancel.headers.cseq().unwrap().to_string(), "10 CANCEL");
    assert_eq!(tag_of(&cancel.headers, HeaderName::To), None);
    assert_eq!(h.ep.len(), 2);
    // cancelling again does nothing
    h.ep.cancel(h.now, &tx).unwrap();
    h.drain();
    assert!(h.take_sent().is_empty());
    // the 200 to the CANCEL is not reported; the 487 is, and is ACKed
    h.deliver(trunk(), answer(&cancel, 200, Some("far")));
    let events = h.take_events();
    assert_eq!(events.len(), 1, "{events:?}");
    h.deliver(trunk(), answer(&inv, 487, Some("far")));
    let events = h.take_events();
    assert!(
        matches!(&events[..], [Event::Response { tx: t, response }] if *t == tx && response.status == 487)
    );
    assert_eq!(method_of(&h.take_sent()[0].1), Method::Ack);
    h.run_out();
    h.assert_empty();
}

#[test]
fn non_invite_client_timer_e_is_capped_at_t2_and_timer_f_times_out() {
    let mut h = Harness::new();
    let opt = request(
        Method::Options,
        "192.0.2.1:5060",
        &format!(";branch={}", new_branch()),
        3,
    );
    let tx = h.ep.send_request(h.now, trunk(), opt).unwrap();
    h.drain();
    h.run_out();
    let times: Vec<Duration> = h.take_sent().iter().map(|(at, _)| *at).collect();
    let mut expected = vec![Duration::ZERO];
    expected.extend(schedule(T2, T1 * 64));
    assert_eq!(times, expected);
    assert_eq!(h.events, vec![(T1 * 64, Event::Timeout { tx })]);
    h.assert_empty();
}

#[test]
fn non_invite_client_reports_final_once_and_timer_k_cleans_up() {
    let mut h = Harness::new();
    let opt = request(Method::Options, "192.0.2.1:5060", ";branch=z9hG4bKn1", 3);
    let tx = h.ep.send_request(h.now, trunk(), opt.clone()).unwrap();
    h.drain();
    h.take_sent();
    let ok = answer(&opt, 200, Some("far"));
    h.deliver(trunk(), ok.clone());
    h.deliver(trunk(), ok.clone());
    assert_eq!(h.take_events(), vec![Event::Response { tx, response: ok }]);
    h.run_to(T4 - ms(1));
    assert_eq!(h.ep.len(), 1);
    h.run_to(T4);
    assert!(h.take_sent().is_empty());
    h.assert_empty();
}

#[test]
fn send_request_refuses_bad_requests() {
    let mut h = Harness::new();
    let no_branch = request(Method::Options, "192.0.2.1", ";branch=1234", 1);
    assert_eq!(
        h.ep.send_request(h.now, trunk(), no_branch),
        Err(TxError::MissingBranch)
    );
    let ack = request(Method::Ack, "192.0.2.1", ";branch=z9hG4bKx", 1);
    assert_eq!(
        h.ep.send_request(h.now, trunk(), ack),
        Err(TxError::AckNotTransaction)
    );
    let opt = request(Method::Options, "192.0.2.1", ";branch=z9hG4bKdup", 1);
    h.ep.send_request(h.now, trunk(), opt.clone()).unwrap();
    assert_eq!(
        h.ep.send_request(h.now, trunk(), opt),
        Err(TxError::DuplicateTransaction)
    );
    h.drain();
    assert_eq!(h.take_sent().len(), 1);
    h.run_out();
    h.assert_empty();
}

// ---------------------------------------------------------------------- TCP

#[test]
fn tcp_has_no_retransmissions_and_zero_wait_timers() {
    let far = tcp("203.0.113.5:40123");
    // client INVITE: no Timer A, Timer B still
    let mut h = Harness::new();
    let mut inv = our_invite("z9hG4bKt1");
    inv.headers
        .set(HeaderName::Via, "SIP/2.0/TCP 192.0.2.1;branch=z9hG4bKt1");
    let tx = h.ep.send_request(h.now, far, inv).unwrap();
    h.drain();
    h.run_out();
    assert_eq!(h.take_sent().len(), 1);
    assert_eq!(h.events, vec![(T1 * 64, Event::Timeout { tx })]);
    h.assert_empty();

    // client non-INVITE: no Timer E; Timer K is zero
    let mut h = Harness::new();
    let opt = request(Method::Options, "192.0.2.1", ";branch=z9hG4bKt2", 1);
    h.ep.send_request(h.now, far, opt.clone()).unwrap();
    h.drain();
    h.deliver(far, answer(&opt, 200, None));
    assert_eq!(h.ep.len(), 0);
    h.assert_empty();

    // server non-2xx: no Timer G; ACK ends it at once (Timer I zero)
    let mut h = Harness::new();
    let inv = invite("z9hG4bKt3");
    let (tx, _) = h.new_request(far, inv.clone());
    let busy = with_tag(inv.response(486), "t");
    h.ep.respond(h.now, &tx, busy.clone()).unwrap();
    h.drain();
    h.run_to(T1 * 10);
    let sent = h.take_sent();
    assert_eq!(sent.len(), 2, "100 and 486 only");
    assert!(
        sent.iter().all(|(_, t)| t.peer == far),
        "TCP answers go back on the connection"
    );
    h.deliver(far, ack_for(&inv, &busy));
    h.assert_empty();

    // server 2xx: not retransmitted over TCP, but an ACK is still awaited for 64*T1
    let mut h = Harness::new();
    let inv = invite("z9hG4bKt5");
    let (tx, _) = h.new_request(far, inv.clone());
    h.ep.respond(h.now, &tx, with_tag(inv.response(200), "t"))
        .unwrap();
    h.drain();
    h.run_out();
    assert_eq!(h.take_sent().len(), 2, "100 and 200 only");
    assert_eq!(
        h.events,
        vec![(
            T1 * 64,
            Event::AckTimeout {
                call_id: "call-1@example.com".into(),
                cseq: 1
            }
        )]
    );
    h.assert_empty();

    // server non-INVITE: Timer J zero
    let mut h = Harness::new();
    let opt = request(Method::Options, "192.0.2.10", ";branch=z9hG4bKt4", 1);
    let (tx, _) = h.new_request(far, opt.clone());
    h.ep.respond(h.now, &tx, opt.response(200)).unwrap();
    h.drain();
    h.assert_empty();
}

// ------------------------------------------------------------ Via and routing

#[test]
fn rport_and_received_are_stamped_and_used_for_routing() {
    let mut h = Harness::new();
    // behind a NAT: says 10.0.0.7:5060, arrives from 198.51.100.7:40000
    let natted = udp("198.51.100.7:40000");
    let inv = request(
        Method::Invite,
        "10.0.0.7:5060",
        ";branch=z9hG4bKr1;rport",
        1,
    );
    let (tx, seen) = h.new_request(natted, inv);
    let via = seen.headers.top_via().unwrap();
    assert_eq!(via.params.value("received"), Some("198.51.100.7"));
    assert_eq!(via.params.value("rport"), Some("40000"));
    let sent = h.take_sent();
    assert_eq!(sent[0].1.peer, natted, "100 Trying goes to the rport");
    h.ep.respond(h.now, &tx, with_tag(seen.response(486), "t"))
        .unwrap();
    h.drain();
    let sent = h.take_sent();
    assert_eq!(sent[0].1.peer, natted);
    // the response carries the stamped Via back
    let Message::Response(r) = parse(&sent[0].1.bytes) else {
        panic!()
    };
    assert_eq!(
        r.headers.top_via().unwrap().params.value("rport"),
        Some("40000")
    );

    // no rport: received added (sent-by differs), response to received at the Via port
    let mut h = Harness::new();
    let opt = request(
        Method::Options,
        "pbx.example.com:5070",
        ";branch=z9hG4bKr2",
        1,
    );
    let (tx, seen) = h.new_request(udp("198.51.100.8:33333"), opt);
    let via = seen.headers.top_via().unwrap();
    assert_eq!(via.params.value("received"), Some("198.51.100.8"));
    assert!(!via.params.contains("rport"));
    h.ep.respond(h.now, &tx, seen.response(200)).unwrap();
    h.drain();
    assert_eq!(h.take_sent()[0].1.peer, udp("198.51.100.8:5070"));

    // sent-by equals the source and no port: no received, default port 5060
    let mut h = Harness::new();
    let opt = request(Method::Options, "192.0.2.10", ";branch=z9hG4bKr3", 1);
    let (tx, seen) = h.new_request(udp("192.0.2.10:6000"), opt);
    assert!(!seen.headers.top_via().unwrap().params.contains("received"));
    h.ep.respond(h.now, &tx, seen.response(200)).unwrap();
    h.drain();
    assert_eq!(h.take_sent()[0].1.peer, udp("192.0.2.10:5060"));
}

#[test]
fn a_multi_value_via_line_is_split_when_stamped() {
    let mut h = Harness::new();
    let mut opt = request(Method::Options, "10.0.0.1", ";branch=z9hG4bKm1;rport", 1);
    opt.headers.set(
        HeaderName::Via,
        "SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKm1;rport, SIP/2.0/UDP 10.0.0.2;branch=z9hG4bKm0",
    );
    let (_, seen) = h.new_request(udp("198.51.100.1:1024"), opt);
    let vias = seen.headers.vias().unwrap();
    assert_eq!(vias.len(), 2);
    assert_eq!(vias[0].params.value("rport"), Some("1024"));
    assert_eq!(vias[1].branch(), Some("z9hG4bKm0"));
    assert_eq!(seen.headers.get_all(&HeaderName::Via).count(), 2);
}

// ----------------------------------------------------------- RFC 2543 matching

#[test]
fn rfc2543_requests_are_matched_by_the_fallback() {
    let mut h = Harness::new();
    let inv = request(Method::Invite, "192.0.2.10", ";branch=old-style-1", 5);
    let (tx, _) = h.new_request(phone(), inv.clone());
    h.take_sent();
    // retransmission: same everything → 100 again, no second transaction
    h.deliver(phone(), inv.clone());
    assert!(h.take_events().is_empty());
    assert_eq!(h.ep.len(), 1);
    assert_eq!(status_of(&h.take_sent()[0].1), 100);
    // a different CSeq is a different request
    let other = request(Method::Invite, "192.0.2.10", ";branch=old-style-1", 6);
    let (tx2, _) = h.new_request(phone(), other.clone());
    assert_ne!(tx, tx2);
    h.take_sent();
    // the ACK for our 486 carries our To tag and matches the INVITE transaction
    let busy = with_tag(inv.response(486), "ours");
    h.ep.respond(h.now, &tx, busy.clone()).unwrap();
    h.drain();
    h.deliver(phone(), ack_for(&inv, &busy));
    assert!(
        h.take_events().is_empty(),
        "2543 ACK for non-2xx reached the core"
    );
    // a CANCEL matches the other INVITE by the fallback too
    let cancel = request(Method::Cancel, "192.0.2.10", ";branch=old-style-1", 6);
    h.deliver(phone(), cancel);
    assert_eq!(h.take_events(), vec![Event::Cancelled { tx: tx2 }]);
    h.run_out();
    h.assert_empty();
}

#[test]
fn beyond_the_limit_new_requests_get_a_stateless_503() {
    let cfg = TimerConfig {
        max_transactions: 2,
        ..TimerConfig::default()
    };
    let mut h = Harness::with(cfg);
    for i in 0..2 {
        let opt = request(
            Method::Options,
            "192.0.2.10",
            &format!(";branch=z9hG4bKl{i}"),
            1,
        );
        h.new_request(phone(), opt);
    }
    let opt = request(Method::Options, "192.0.2.10", ";branch=z9hG4bKl9", 1);
    h.deliver(phone(), opt.clone());
    assert!(h.take_events().is_empty());
    assert_eq!(h.ep.len(), 2);
    let sent = h.take_sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(status_of(&sent[0].1), 503);
    let ours = request(Method::Options, "192.0.2.1", ";branch=z9hG4bKl8", 1);
    assert_eq!(
        h.ep.send_request(h.now, trunk(), ours),
        Err(TxError::TooManyTransactions)
    );
}

#[test]
fn respond_refuses_nonsense() {
    let mut h = Harness::new();
    let opt = request(Method::Options, "192.0.2.10", ";branch=z9hG4bKq1", 1);
    let (tx, _) = h.new_request(phone(), opt.clone());
    assert_eq!(
        h.ep.respond(h.now, &tx, opt.response(99)),
        Err(TxError::InvalidStatus(99))
    );
    assert_eq!(
        h.ep.respond(h.now, &TxKey(999), opt.response(200)),
        Err(TxError::UnknownTransaction)
    );
    let ours =
        h.ep.send_request(
            h.now,
            trunk(),
            request(Method::Options, "192.0.2.1", ";branch=z9hG4bKq2", 1),
        )
        .unwrap();
    assert_eq!(
        h.ep.respond(h.now, &ours, opt.response(200)),
        Err(TxError::WrongKind)
    );
    assert_eq!(h.ep.cancel(h.now, &ours), Err(TxError::WrongKind));
    assert_eq!(h.ep.cancel(h.now, &tx), Err(TxError::WrongKind));
}

/// What the INVITE server transactions of `h` keep on the heap, summed.
fn invite_server_retained(h: &Harness) -> usize {
    h.ep.txs
        .values()
        .map(|tx| match &tx.state {
            State::InviteServer(s) => s.retained_bytes(),
            _ => 0,
        })
        .sum()
}

#[test]
fn an_answered_invite_lingers_without_its_request_and_an_acked_2xx_without_its_bytes() {
    // Under churn every call's INVITE transaction lives 64·T1 after the 2xx (Timer L): it must
    // not hold the parsed request (only a CANCEL before the final needs it) nor, once ACKed,
    // the 2xx.
    let mut h = Harness::new();
    let inv = invite("z9hG4bKmem1");
    let (tx, _) = h.new_request(phone(), inv.clone());
    let proceeding = invite_server_retained(&h);
    assert!(
        proceeding > 300,
        "the headers are kept while a CANCEL may come: {proceeding}"
    );
    let ok = with_tag(inv.response(200), "t");
    h.ep.respond(h.now, &tx, ok.clone()).unwrap();
    h.drain();
    let accepted = invite_server_retained(&h);
    assert_eq!(
        accepted,
        ok.to_bytes().len(),
        "after the 2xx only the 2xx (for its retransmissions) is kept"
    );
    h.deliver(phone(), ack_for(&inv, &ok));
    assert_eq!(
        invite_server_retained(&h),
        0,
        "nothing is kept after the ACK"
    );
    assert_eq!(
        h.ep.len(),
        1,
        "the transaction itself lingers until Timer L"
    );
    // a retransmitted INVITE is still absorbed, not passed on
    h.take_sent();
    h.take_events();
    h.deliver(phone(), inv.clone());
    assert!(h.take_sent().is_empty());
    assert!(h.take_events().is_empty());
    h.run_out();
    h.assert_empty();
}

#[test]
fn a_rejected_invite_frees_its_response_once_acked() {
    let mut h = Harness::new();
    let inv = invite("z9hG4bKmem2");
    let (tx, _) = h.new_request(phone(), inv.clone());
    let busy = with_tag(inv.response(486), "t");
    h.ep.respond(h.now, &tx, busy.clone()).unwrap();
    h.drain();
    assert_eq!(invite_server_retained(&h), busy.to_bytes().len());
    h.deliver(phone(), ack_for(&inv, &busy));
    assert_eq!(invite_server_retained(&h), 0);
    h.run_out();
    h.assert_empty();
}

#[test]
fn tables_give_their_room_back_after_a_burst() {
    // A burst: 3 000 BYEs answered 200 (Completed, Timer J), 1 000 INVITEs answered 200 and
    // never ACKed (Accepted, the 2xx table), and 100 INVITEs still ringing when it is over.
    let mut h = Harness::new();
    let mut ringing = Vec::new();
    for i in 0..4100 {
        let method = if i < 3000 {
            Method::Bye
        } else {
            Method::Invite
        };
        let mut r = request(
            method,
            "192.0.2.10:5060",
            &format!(";branch=z9hG4bKb{i}"),
            1,
        );
        r.headers.set(HeaderName::CallId, format!("burst-{i}"));
        let (tx, req) = h.new_request(phone(), r);
        if i < 4000 {
            h.ep.respond(h.now, &tx, with_tag(req.response(200), "t"))
                .unwrap();
        } else {
            ringing.push((tx, req));
        }
        h.drain();
    }
    h.take_sent();
    let peak = h.ep.table_capacities();
    assert!(peak[0] >= 4100 && peak[1] >= 4100, "{peak:?}");
    assert!(peak[2] >= 1000, "{peak:?}");

    // 64·T1 later everything but the ringing INVITEs is gone, and so is the tables' room
    h.run_to(T1 * 64 + ms(1));
    h.take_sent();
    assert_eq!(h.ep.len(), 100);
    let after = h.ep.table_capacities();
    assert!(
        after[0] >= 100 && after[0] <= 4 * 100 && after[1] <= 4 * 100,
        "{after:?}"
    );
    assert!(after[2] <= SHRINK_ABOVE, "{after:?}");
    assert!(h.ep.transmits.capacity() <= SHRINK_ABOVE);

    // and the ringing ones still work: answered, ACKed, gone after Timer L
    for (tx, req) in &ringing {
        h.ep.respond(h.now, tx, with_tag(req.response(486), "t"))
            .unwrap();
    }
    h.drain();
    h.run_out();
    h.assert_empty();
    assert!(h.ep.table_capacities().iter().all(|&c| c <= SHRINK_ABOVE));
}
