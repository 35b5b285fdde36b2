//! Micro-benchmarks of the SIP hot path: parsing and serializing the messages of one call, and
//! the transaction layer handling an INVITE, with an empty endpoint and with 10 000 live
//! transactions (the lookup cost a busy daemon pays on every message).
//!
//! Run: `cargo bench -p sip --bench parse` (the `make bench` target passes a short measurement
//! time). Every input is built before the timed part; time is virtual (no sleeping).

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use sip::message::{Message, Request};
use sip::transaction::{Endpoint, Event, TimerConfig};
use sip::{parse_message, Peer, Tokens, Transport};

const SDP: &str = "v=0\r\n\
o=- 1719000000 1719000000 IN IP4 192.0.2.10\r\n\
s=-\r\n\
c=IN IP4 192.0.2.10\r\n\
t=0 0\r\n\
m=audio 40000 RTP/AVP 0 8 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n";

/// An INVITE as a carrier trunk sends it: two Vias, Record-Route, session timer, SDP offer.
fn invite_text(branch: &str, call_id: &str) -> String {
    format!(
        "INVITE sip:3758787@192.0.2.1:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch={branch};rport\r\n\
Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK-upstream-77a1;received=198.51.100.7\r\n\
Record-Route: <sip:192.0.2.10;lr>\r\n\
Max-Forwards: 69\r\n\
From: \"+7 913 555-12-34\" <sip:+79135551234@192.0.2.10>;tag=a73kszlfl\r\n\
To: <sip:3758787@192.0.2.1>\r\n\
Call-ID: {call_id}\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:+79135551234@192.0.2.10:5060>\r\n\
Allow: INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE\r\n\
Supported: timer, replaces\r\n\
Session-Expires: 1800;refresher=uac\r\n\
Min-SE: 90\r\n\
User-Agent: CarrierSBC/4.2\r\n\
Content-Type: application/sdp\r\n\
Content-Length: {}\r\n\
\r\n\
{SDP}",
        SDP.len()
    )
}

const ANSWER_SDP: &str = "v=0\r\n\
o=- 42 1 IN IP4 192.0.2.1\r\n\
s=Hotline\r\n\
c=IN IP4 192.0.2.1\r\n\
t=0 0\r\n\
m=audio 10000 RTP/AVP 0 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n";

/// Our 200 OK to that INVITE, with the SDP answer.
fn ok_200_text() -> String {
    format!(
        "SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport=5060;received=192.0.2.10\r\n\
Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK-upstream-77a1;received=198.51.100.7\r\n\
Record-Route: <sip:192.0.2.10;lr>\r\n\
From: \"+7 913 555-12-34\" <sip:+79135551234@192.0.2.10>;tag=a73kszlfl\r\n\
To: <sip:3758787@192.0.2.1>;tag=8321234356\r\n\
Call-ID: 3848276298220188511@192.0.2.10\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:3758787@192.0.2.1:5060>\r\n\
Allow: INVITE, ACK, BYE, CANCEL, OPTIONS\r\n\
Supported: timer\r\n\
Require: timer\r\n\
Session-Expires: 1800;refresher=uac\r\n\
Server: Hotline/0.1.0\r\n\
Content-Type: application/sdp\r\n\
Content-Length: {}\r\n\
\r\n\
{ANSWER_SDP}",
        ANSWER_SDP.len()
    )
}

fn peer() -> Peer {
    Peer {
        transport: Transport::Udp,
        addr: SocketAddr::from(([192, 0, 2, 10], 5060)),
    }
}

fn invite(branch: &str, call_id: &str) -> Message {
    parse_message(invite_text(branch, call_id).as_bytes()).expect("the bench INVITE parses")
}

fn parse_serialize(c: &mut Criterion) {
    let inv = invite_text("z9hG4bK776asdhds", "3848276298220188511@192.0.2.10");
    let ok_200 = ok_200_text();

    let mut g = c.benchmark_group("sip");
    g.throughput(Throughput::Bytes(inv.len() as u64));
    g.bench_function("parse INVITE+SDP", |b| {
        b.iter(|| parse_message(black_box(inv.as_bytes())))
    });
    g.throughput(Throughput::Bytes(ok_200.len() as u64));
    g.bench_function("parse 200 OK+SDP", |b| {
        b.iter(|| parse_message(black_box(ok_200.as_bytes())))
    });
    let inv_msg = parse_message(inv.as_bytes()).expect("parses");
    let ok_msg = parse_message(ok_200.as_bytes()).expect("parses");
    g.throughput(Throughput::Bytes(inv.len() as u64));
    g.bench_function("serialize INVITE+SDP", |b| {
        b.iter(|| black_box(&inv_msg).to_bytes())
    });
    g.throughput(Throughput::Bytes(ok_200.len() as u64));
    g.bench_function("serialize 200 OK+SDP", |b| {
        b.iter(|| black_box(&ok_msg).to_bytes())
    });
    g.bench_function("parse+serialize INVITE, build+serialize 200", |b| {
        b.iter(|| {
            let Ok(Message::Request(req)) = parse_message(black_box(inv.as_bytes())) else {
                unreachable!("the bench INVITE is a request")
            };
            let bytes = req.to_bytes();
            (bytes, req.response(200).to_bytes())
        })
    });
    g.finish();
}

/// An INVITE through a server transaction: the new request event, a 180 and a 200 sent, the
/// ACK matched, and the transaction reaped by its timer. Returns how many datagrams were sent.
fn invite_cycle(ep: &mut Endpoint, now: Instant, msg: Message, ack: Message) -> usize {
    ep.handle_message(now, peer(), msg);
    let Some(Event::Request { tx, request, .. }) = ep.poll_event() else {
        unreachable!("a new INVITE makes a Request event")
    };
    let ok = ep.respond(now, &tx, request.response(180)).is_ok()
        && ep.respond(now, &tx, request.response(200)).is_ok();
    assert!(ok, "responses accepted");
    ep.handle_message(now, peer(), ack);
    while ep.poll_event().is_some() {}
    let mut sent = 0;
    while ep.poll_transmit().is_some() {
        sent += 1;
    }
    ep.handle_timeout(now + Duration::from_secs(64));
    sent
}

fn ack_for(call_id: &str) -> Message {
    let branch: String = call_id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    let text = format!(
        "ACK sip:3758787@192.0.2.1:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKack{branch}\r\n\
Max-Forwards: 70\r\n\
From: <sip:+79135551234@192.0.2.10>;tag=a73kszlfl\r\n\
To: <sip:3758787@192.0.2.1>;tag=x\r\n\
Call-ID: {call_id}\r\n\
CSeq: 1 ACK\r\n\
Content-Length: 0\r\n\r\n"
    );
    parse_message(text.as_bytes()).expect("the bench ACK parses")
}

/// An endpoint holding `n` INVITE server transactions, each answered with 180 only (so they stay
/// in Proceeding, as while a line rings), and the INVITE of transaction `n / 2` for lookups.
fn loaded_endpoint(n: usize, t0: Instant) -> (Endpoint, Request) {
    let mut ep = Endpoint::new(TimerConfig::default(), Tokens::from_seed([1; 32]));
    let mut middle = None;
    for i in 0..n {
        let msg = invite(
            &format!("z9hG4bKload{i:08}"),
            &format!("load-{i}@192.0.2.10"),
        );
        if i == n / 2 {
            if let Message::Request(r) = &msg {
                middle = Some(r.clone());
            }
        }
        ep.handle_message(t0, peer(), msg);
        let Some(Event::Request { tx, request, .. }) = ep.poll_event() else {
            unreachable!("a new INVITE makes a Request event")
        };
        ep.respond(t0, &tx, request.response(180))
            .expect("180 accepted");
        while ep.poll_transmit().is_some() {}
    }
    assert_eq!(ep.len(), n, "every INVITE is a live transaction");
    (ep, middle.expect("n > 0"))
}

fn transactions(c: &mut Criterion) {
    let t0 = Instant::now();
    let mut g = c.benchmark_group("transaction");
    let mut seq = 0u64;
    let mut ep = Endpoint::new(TimerConfig::default(), Tokens::from_seed([1; 32]));
    g.bench_function("INVITE 180 200 ACK, empty endpoint", |b| {
        b.iter_batched(
            || {
                seq += 1;
                let id = format!("cycle-{seq}@192.0.2.10");
                let now = t0 + Duration::from_secs(100 * seq);
                (
                    invite(&format!("z9hG4bKc{seq:012}"), &id),
                    ack_for(&id),
                    now,
                )
            },
            |(msg, ack, now)| invite_cycle(&mut ep, now, msg, ack),
            BatchSize::SmallInput,
        )
    });
    assert!(ep.len() <= 1, "the cycle leaves no transaction behind");

    let (mut loaded, middle) = loaded_endpoint(10_000, t0);
    g.bench_function("INVITE 180 200 ACK, 10000 live", |b| {
        b.iter_batched(
            || {
                seq += 1;
                let id = format!("cycle-{seq}@192.0.2.10");
                // the loaded transactions (Proceeding, after a 180) arm no timer, so the clock
                // can run: each cycle's transaction is reaped and the endpoint stays at 10 000
                let now = t0 + Duration::from_secs(100 * seq);
                (
                    invite(&format!("z9hG4bKc{seq:012}"), &id),
                    ack_for(&id),
                    now,
                )
            },
            |(msg, ack, now)| invite_cycle(&mut loaded, now, msg, ack),
            BatchSize::SmallInput,
        )
    });
    assert!(
        loaded.len() <= 10_001,
        "the cycles leave no transaction behind"
    );
    let late = t0 + Duration::from_secs(100 * (seq + 1));
    g.bench_function("retransmitted INVITE lookup, 10000 live", |b| {
        b.iter_batched(
            || Message::Request(middle.clone()),
            |msg| {
                loaded.handle_message(late, peer(), msg);
                // absorbed: the last provisional goes out again, no event
                let again = loaded.poll_transmit();
                assert!(loaded.poll_event().is_none());
                again
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, parse_serialize, transactions);
criterion_main!(benches);
