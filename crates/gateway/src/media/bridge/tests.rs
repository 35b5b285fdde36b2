//! Two legs started on a real media edge (real sockets, the real pacing task; no SIP): a
//! "caller" peer on a PCMU leg and an "operator" peer on a PCMA leg.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ::media::g711::Law;
use ::media::goertzel::DtmfDetector;
use ::media::moh::MohLoop;
use ::media::prompts::{Prompt, PromptCache, PromptName};
use ::media::rtp::{FrameSource, LegConfig, RtpLeg};
use ::media::sdp::{Direction, Negotiated};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::super::{LegShared, LegStart, MediaEdge, MediaEvent, PortPool, SharedPorts};
use super::*;

const WAIT: Duration = Duration::from_secs(2);

fn tone(hz: f64, len: usize, amp: f64, phase0: usize) -> Vec<i16> {
    (0..len)
        .map(|n| {
            let t = (n + phase0) as f64 / 8000.0;
            (amp * (2.0 * std::f64::consts::PI * hz * t).sin()) as i16
        })
        .collect()
}

fn music_name() -> PromptName {
    PromptName::new("moh/test")
}

struct Rig {
    edge: Option<MediaEdge>,
    events: mpsc::UnboundedReceiver<MediaEvent>,
    stop: CancellationToken,
    dir: PathBuf,
    prompts: Arc<PromptCache>,
    n: u32,
    /// Whether the next legs listen for in-band DTMF.
    inband: bool,
}

impl Rig {
    fn new(name: &str) -> Rig {
        let encoders = ::media::prompts::G711;
        let music = Prompt::from_pcm(music_name(), &tone(300.0, 16_000, 6000.0, 0), &encoders);
        let prompts = Arc::new(PromptCache::from_prompts([Arc::new(music)], &encoders));
        let dir =
            std::env::temp_dir().join(format!("hotline-bridge-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (tx, events) = mpsc::unbounded_channel();
        let stop = CancellationToken::new();
        let base = 42_000 + (std::process::id() % 500) as u16 * 20;
        let (edge, _tick) = MediaEdge::start(
            SharedPorts::new(PortPool::new(base, base + 1999)),
            dir.clone(),
            DtmfDetector::new(8000),
            tx,
            stop.clone(),
            Default::default(),
        );
        Rig {
            edge: Some(edge),
            events,
            stop,
            dir,
            prompts,
            n: 0,
            inband: false,
        }
    }

    fn edge(&mut self) -> &mut MediaEdge {
        self.edge.as_mut().unwrap()
    }

    /// Stops the recording writer and waits until it has finished every file.
    async fn finish_recordings(&mut self) {
        if let Some(t) = self.edge.take().and_then(MediaEdge::finish) {
            tokio::task::spawn_blocking(move || t.join().unwrap())
                .await
                .unwrap();
        }
    }

    /// A leg in `law` whose RTP goes to `peer`.
    fn leg(&mut self, law: Law, te: Option<u8>, peer: SocketAddr, record: bool) -> Arc<LegShared> {
        self.n += 1;
        let ports = self
            .edge()
            .ports
            .bind("127.0.0.1".parse().unwrap())
            .unwrap();
        let neg = Negotiated {
            law,
            audio_pt: law.payload_type(),
            telephone_event: te,
            direction: Direction::SendRecv,
            remote: Some(peer),
            audio_index: 0,
            media_count: 1,
        };
        let call_id = format!("call-{}", self.n);
        let appeal = format!("appeal-{}", self.n);
        let prompts = self.prompts.clone();
        let inband = self.inband;
        self.edge()
            .start_leg(
                Instant::now(),
                LegStart {
                    call_id: &call_id,
                    appeal: &appeal,
                    ports,
                    neg,
                    prompts: &prompts,
                    greeting: None,
                    inband,
                    record,
                    timeout: None,
                },
            )
            .unwrap()
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.stop.cancel();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An RTP packet as a peer sees it, and when it arrived.
#[derive(Debug, Clone)]
struct Pkt {
    rtp: test_support::RtpPacket,
    at: Instant,
}

impl std::ops::Deref for Pkt {
    type Target = test_support::RtpPacket;
    fn deref(&self) -> &Self::Target {
        &self.rtp
    }
}

fn parse(b: &[u8]) -> Pkt {
    Pkt {
        rtp: test_support::RtpPacket::parse(b),
        at: Instant::now(),
    }
}

fn build(pt: u8, marker: bool, seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![0x80, pt | if marker { 0x80 } else { 0 }];
    v.extend_from_slice(&seq.to_be_bytes());
    v.extend_from_slice(&ts.to_be_bytes());
    v.extend_from_slice(&ssrc.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

async fn peer() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").await.unwrap()
}

async fn recv(sock: &UdpSocket) -> Pkt {
    let mut buf = [0u8; 1500];
    let (n, _) = tokio::time::timeout(WAIT, sock.recv_from(&mut buf))
        .await
        .expect("an RTP packet")
        .unwrap();
    parse(&buf[..n])
}

fn flush(sock: &UdpSocket) {
    let mut buf = [0u8; 1500];
    while sock.try_recv_from(&mut buf).is_ok() {}
}

/// The address our leg sends from (where the peer must send to).
fn leg_addr(l: &LegShared) -> SocketAddr {
    l.rtp.local_addr().unwrap()
}

/// Sends `frames` (one per 20 ms, in `law` as `pt`) to `to` while collecting what arrives,
/// until `total` has passed.
async fn talk(
    sock: &UdpSocket,
    to: SocketAddr,
    law: Law,
    ssrc: u32,
    frames: &[Vec<i16>],
    total: Duration,
) -> Vec<Pkt> {
    let end = tokio::time::Instant::now() + total;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut got = Vec::new();
    let mut sent = 0usize;
    let mut buf = [0u8; 1500];
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(end) => return got,
            _ = tick.tick(), if sent < frames.len() => {
                let mut payload = Vec::new();
                law.encode_into(&frames[sent], &mut payload);
                let pkt = build(law.payload_type(), sent == 0, 1000 + sent as u16,
                    50_000 + 160 * sent as u32, ssrc, &payload);
                sock.send_to(&pkt, to).await.unwrap();
                sent += 1;
            }
            r = sock.recv_from(&mut buf) => {
                let (n, _) = r.unwrap();
                got.push(parse(&buf[..n]));
            }
        }
    }
}

fn frames_of(pcm: &[i16]) -> Vec<Vec<i16>> {
    pcm.chunks(160).map(<[i16]>::to_vec).collect()
}

/// Every received frame that is not silence must be one of `sent` (within the error of two
/// G.711 quantisations), in order; returns how many matched.
fn matched_in_order(received: &[Pkt], law: Law, sent: &[Vec<i16>]) -> usize {
    let mut next = 0;
    let mut matched = 0;
    for p in received {
        let mut pcm = Vec::new();
        law.decode_into(&p.payload, &mut pcm);
        if pcm.iter().all(|&x| x.abs() < 100) {
            continue; // silence (nothing had arrived for that slot)
        }
        let close = |s: &Vec<i16>| {
            s.len() == pcm.len()
                && s.iter().zip(&pcm).all(|(&a, &b)| {
                    (i32::from(a) - i32::from(b)).abs() <= i32::from(a).abs() / 10 + 40
                })
        };
        let k = (next..sent.len())
            .find(|&k| close(&sent[k]))
            .unwrap_or_else(|| panic!("frame seq {} matches no frame sent after #{next}", p.seq));
        next = k + 1;
        matched += 1;
    }
    matched
}

/// Sequence numbers +1 and timestamps +160 from packet to packet (one continuous stream).
fn assert_continuous(pkts: &[Pkt]) {
    for w in pkts.windows(2) {
        assert_eq!(w[1].ssrc, w[0].ssrc);
        assert_eq!(w[1].seq, w[0].seq.wrapping_add(1), "seq after {}", w[0].seq);
        assert_eq!(
            w[1].ts,
            w[0].ts.wrapping_add(160),
            "ts after seq {}",
            w[0].seq
        );
    }
}

fn goertzel_power(x: &[i16], hz: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * hz / 8000.0;
    let c = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for &v in x {
        let s = f64::from(v) + c * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    s1 * s1 + s2 * s2 - c * s1 * s2
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn music_until_bridged_then_pcmu_and_pcma_flow_both_ways_and_are_recorded() {
    let mut rig = Rig::new("flow");
    let (caller, operator) = (peer().await, peer().await);
    let a = rig.leg(Law::Ulaw, Some(101), caller.local_addr().unwrap(), true);
    let b = rig.leg(Law::Alaw, Some(101), operator.local_addr().unwrap(), false);
    let music = Arc::new(MohLoop::from_prompt(
        rig.prompts.get(&music_name()).unwrap(),
    ));

    // music on hold: consecutive frames of the loop, one stream
    let prompts = rig.prompts.clone();
    rig.edge().play_moh(&a, &prompts, &music_name()).unwrap();
    let mut moh = Vec::new();
    while moh.len() < 8 {
        let p = recv(&caller).await;
        if p.payload.as_slice() == music.frame(Law::Ulaw, 0) || !moh.is_empty() {
            moh.push(p);
        }
    }
    assert_continuous(&moh);
    for (k, p) in moh.iter().enumerate() {
        assert_eq!(p.pt, 0);
        assert_eq!(p.payload, music.frame(Law::Ulaw, k), "MOH frame {k}");
    }
    assert!(moh[0].marker, "the music starts a talk-spurt");

    // bridge right after a tick: the next packet already comes from the bridge
    flush(&caller);
    let last_moh = recv(&caller).await;
    let k = moh.len() + usize::from(last_moh.seq.wrapping_sub(moh[7].seq)) - 1;
    assert_eq!(last_moh.payload, music.frame(Law::Ulaw, k));
    rig.edge().bridge(&a, &b).unwrap();
    let bridged_after = last_moh.at.elapsed();
    let mut first = recv(&caller).await;
    if first.payload.as_slice() == music.frame(Law::Ulaw, k + 1) {
        // only possible when this test ran so late that the next tick beat bridge()
        assert!(
            bridged_after > Duration::from_millis(10),
            "MOH after the bridge"
        );
        first = recv(&caller).await;
    }
    assert_eq!(first.seq, last_moh.seq.wrapping_add(1));
    assert!(first.marker, "the bridge starts a talk-spurt");
    assert_eq!(
        first.payload,
        vec![0xFF; 160],
        "nothing relayed yet: silence"
    );

    // both ways, 0.5 s each, different codecs
    let a_ssrc = a.lock().leg.ssrc();
    let b_ssrc = b.lock().leg.ssrc();
    let caller_frames = frames_of(&tone(700.0, 4000, 8000.0, 0));
    let operator_frames = frames_of(&tone(1100.0, 4000, 5000.0, 0));
    let (to_a, to_b) = (leg_addr(&a), leg_addr(&b));
    let total = Duration::from_millis(800);
    let (at_caller, at_operator) = tokio::join!(
        talk(&caller, to_a, Law::Ulaw, 0xCA11, &caller_frames, total),
        talk(&operator, to_b, Law::Alaw, 0x0BE2, &operator_frames, total),
    );
    // re-packetised: our SSRCs, one continuous stream each, in each leg's own codec
    assert!(at_operator.iter().all(|p| p.pt == 8 && p.ssrc == b_ssrc));
    assert!(at_caller.iter().all(|p| p.pt == 0 && p.ssrc == a_ssrc));
    assert_ne!(b_ssrc, 0xCA11);
    assert_continuous(&at_operator);
    assert_continuous(&at_caller);
    let to_operator = matched_in_order(&at_operator, Law::Alaw, &caller_frames);
    let to_caller = matched_in_order(&at_caller, Law::Ulaw, &operator_frames);
    assert!(
        to_operator >= 23,
        "caller → operator: {to_operator}/25 frames"
    );
    assert!(to_caller >= 23, "operator → caller: {to_caller}/25 frames");
    let (_, dropped, _) = a.bridge_inbox().unwrap().counters();
    assert_eq!(dropped, 0);

    // the caller's recording: caller left, operator right
    let now = Instant::now();
    a.close(now);
    b.close(now);
    let path = rig.dir.join("appeal-1.wav");
    rig.finish_recordings().await;
    let samples: Vec<i16> = hound::WavReader::open(&path)
        .unwrap()
        .into_samples()
        .map(Result::unwrap)
        .collect();
    let left: Vec<i16> = samples.iter().step_by(2).copied().collect();
    let right: Vec<i16> = samples.iter().skip(1).step_by(2).copied().collect();
    let (l700, l1100) = (goertzel_power(&left, 700.0), goertzel_power(&left, 1100.0));
    let (r700, r1100) = (
        goertzel_power(&right, 700.0),
        goertzel_power(&right, 1100.0),
    );
    assert!(
        l700 > 100.0 * l1100,
        "left is the caller: {l700:e} vs {l1100:e}"
    );
    assert!(
        r1100 > 100.0 * r700,
        "right is the operator: {r1100:e} vs {r700:e}"
    );
}

/// RFC 4733 packets of one press of `digit` as a phone sends them.
fn dtmf_packets(pt: u8, ssrc: u32, digit: u8, press: u16) -> Vec<Vec<u8>> {
    let mut v = Vec::new();
    let ts = 90_000 + 8000 * u32::from(press);
    let seq0 = 2000 + 10 * press;
    for (i, dur) in [160u16, 480, 800].into_iter().enumerate() {
        let payload = [digit, 10, (dur >> 8) as u8, dur as u8];
        v.push(build(pt, i == 0, seq0 + i as u16, ts, ssrc, &payload));
    }
    for i in 0..3u16 {
        let payload = [digit, 0x80 | 10, 0x03, 0x20];
        v.push(build(pt, false, seq0 + 3 + i, ts, ssrc, &payload));
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc4733_digits_are_regenerated_on_the_other_leg_with_its_payload_type() {
    let mut rig = Rig::new("dtmf");
    let (caller, operator, mute) = (peer().await, peer().await, peer().await);
    let a = rig.leg(Law::Ulaw, Some(101), caller.local_addr().unwrap(), false);
    // the operator's phone chose payload type 96 for telephone-event
    let b = rig.leg(Law::Alaw, Some(96), operator.local_addr().unwrap(), false);
    rig.edge().bridge(&a, &b).unwrap();
    let b_ssrc = b.lock().leg.ssrc();
    flush(&operator);
    for p in dtmf_packets(101, 0xCA11, 7, 0) {
        caller.send_to(&p, leg_addr(&a)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut events = Vec::new();
    let deadline = Instant::now() + WAIT;
    while events.last().is_none_or(|p: &Pkt| p.payload[1] & 0x80 == 0) {
        assert!(Instant::now() < deadline, "no end of event: {events:?}");
        let p = recv(&operator).await;
        assert_eq!(p.ssrc, b_ssrc);
        if p.pt == 96 {
            events.push(p);
        } else {
            assert_eq!(p.pt, 8);
        }
    }
    assert!(events[0].marker);
    assert!(events
        .iter()
        .all(|p| p.payload[0] == 7 && p.ts == events[0].ts));
    // 100 ms at 8 kHz
    let end = events.last().unwrap();
    assert_eq!(u16::from_be_bytes([end.payload[2], end.payload[3]]), 800);
    // and the core still hears the digit from the caller's leg
    let ev = tokio::time::timeout(WAIT, rig.events.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        ev,
        MediaEvent::Digit {
            call_id: Arc::from("call-1"),
            digit: '7',
            via: super::super::DtmfVia::Rfc4733,
        }
    );

    // a leg without telephone-event gets no events, only audio
    let c = rig.leg(Law::Alaw, None, mute.local_addr().unwrap(), false);
    rig.edge().bridge(&a, &c).unwrap();
    assert!(b.bridge_inbox().is_none(), "bridging a again took b out");
    flush(&mute);
    for p in dtmf_packets(101, 0xCA11, 3, 1) {
        caller.send_to(&p, leg_addr(&a)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ev = tokio::time::timeout(WAIT, rig.events.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(ev, MediaEvent::Digit { digit: '3', .. }));
    for _ in 0..10 {
        assert_eq!(recv(&mute).await.pt, 8);
    }
    assert!(c.bridge_inbox().unwrap().lock().digits.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbridging_or_music_takes_both_legs_out_and_stops_the_relay() {
    let mut rig = Rig::new("unbridge");
    let (caller, operator) = (peer().await, peer().await);
    let a = rig.leg(Law::Ulaw, Some(101), caller.local_addr().unwrap(), false);
    let b = rig.leg(Law::Alaw, Some(101), operator.local_addr().unwrap(), false);
    assert_eq!(rig.edge().bridge(&a, &a), Err(BridgeError::SameLeg));
    rig.edge().bridge(&a, &b).unwrap();
    assert!(a.bridge_inbox().is_some() && b.bridge_inbox().is_some());
    rig.edge().unbridge(&b);
    assert!(a.bridge_inbox().is_none() && b.bridge_inbox().is_none());
    // what the caller says no longer reaches the operator
    flush(&operator);
    let loud = frames_of(&tone(700.0, 1600, 8000.0, 0));
    let heard = talk(
        &caller,
        leg_addr(&a),
        Law::Ulaw,
        0xCA11,
        &loud,
        Duration::from_millis(300),
    )
    .await;
    assert!(!heard.is_empty());
    flush(&operator);
    for _ in 0..5 {
        assert_eq!(recv(&operator).await.payload, vec![0xD5; 160]);
    }
    // music on a bridged leg ends the bridge for both
    rig.edge().bridge(&a, &b).unwrap();
    let prompts = rig.prompts.clone();
    rig.edge().play_moh(&b, &prompts, &music_name()).unwrap();
    assert!(a.bridge_inbox().is_none() && b.bridge_inbox().is_none());
    assert!(rig
        .edge()
        .play_moh(&b, &prompts, &PromptName::new("nope"))
        .is_err());
    a.close(Instant::now());
    assert_eq!(rig.edge().bridge(&a, &b), Err(BridgeError::Closed));
}

/// Relay cost without sockets: N bridges, one second of audio each way through the sans-IO
/// parts the edge runs per packet (receive: parse + transcode into the inbox; tick: one frame
/// out of the inbox into a packet). `cargo test -p gateway --release relay_cost -- --ignored
/// --nocapture` prints the cost per relayed packet.
#[test]
#[ignore = "a measurement, not a check"]
fn relay_cost() {
    let t0 = Instant::now();
    let n = 1000;
    let remote: SocketAddr = "127.0.0.1:4000".parse().unwrap();
    let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
    let config = |pt| LegConfig {
        payload_type: pt,
        remote: Some(remote),
        ..LegConfig::default()
    };
    let mut legs: Vec<(RtpLeg, RtpLeg, Arc<Inbox>)> = (0..n)
        .map(|_| {
            let inbox = Inbox::new(Law::Alaw);
            let mut out = RtpLeg::new(config(8), t0, std::time::SystemTime::now());
            out.set_source(Box::new(BridgeSource {
                inbox: inbox.clone(),
            }));
            (
                RtpLeg::new(config(0), t0, std::time::SystemTime::now()),
                out,
                inbox,
            )
        })
        .collect();
    let payload = vec![0x55u8; 160];
    let started = std::time::Instant::now();
    let mut sent = 0u64;
    for slot in 0..50u32 {
        let now = t0 + Duration::from_millis(20) * slot;
        for (i, (rx, tx, inbox)) in legs.iter_mut().enumerate() {
            let pkt = build(0, slot == 0, slot as u16, slot * 160, i as u32, &payload);
            rx.handle_datagram(now, peer, &pkt);
            while let Some(ev) = rx.poll_event() {
                if let ::media::rtp::Event::Media { payload, .. } = ev {
                    inbox.push_audio(Law::Ulaw, &payload);
                }
            }
            tx.handle_timeout(now);
            while let Some(t) = tx.poll_transmit() {
                sent += u64::from(t.component == ::media::rtp::Component::Rtp);
            }
        }
    }
    let per = started.elapsed() / u32::try_from(sent).unwrap();
    println!("{sent} packets relayed, {per:?} per packet (receive, relay, send)");
    assert!(sent >= 49 * n as u64);
    // the relay alone: transcode into the inbox, one frame out
    let started = std::time::Instant::now();
    let mut frame = Vec::with_capacity(160);
    for _ in 0..50 {
        for (_, _, inbox) in &legs {
            inbox.push_audio(Law::Ulaw, &payload);
            frame.clear();
            BridgeSource {
                inbox: inbox.clone(),
            }
            .next_frame(&mut frame);
        }
    }
    let per = started.elapsed() / (50 * n);
    println!("relay alone: {per:?} per packet");
    let mut f = Vec::new();
    BridgeSource {
        inbox: Inbox::new(Law::Ulaw),
    }
    .next_frame(&mut f);
    assert_eq!(f, vec![0xFF; 160]);
}

/// In-band digits heard on a leg while it is bridged are not detected (nobody reads keys then;
/// the tones reach the operator with the audio); once unbridged, the same tones are a digit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inband_detection_pauses_while_bridged() {
    let mut rig = Rig::new("inband");
    rig.inband = true;
    let (caller, operator) = (peer().await, peer().await);
    let a = rig.leg(Law::Ulaw, None, caller.local_addr().unwrap(), false);
    let b = rig.leg(Law::Ulaw, None, operator.local_addr().unwrap(), false);
    // '5': 770 Hz + 1336 Hz, 100 ms, then 100 ms of silence
    let mut pcm: Vec<i16> = tone(770.0, 800, 5000.0, 0)
        .iter()
        .zip(tone(1336.0, 800, 5000.0, 0))
        .map(|(x, y)| x + y)
        .collect();
    pcm.resize(1600, 0);
    let frames = frames_of(&pcm);
    // the caller keys '5' (its packets under `ssrc`), 400 ms
    let key_five = |ssrc| {
        talk(
            &caller,
            leg_addr(&a),
            Law::Ulaw,
            ssrc,
            &frames,
            Duration::from_millis(400),
        )
    };
    rig.edge().bridge(&a, &b).unwrap();
    let heard = key_five(7).await;
    assert!(!heard.is_empty(), "the leg kept sending");
    let relayed = talk(
        &operator,
        leg_addr(&b),
        Law::Ulaw,
        8,
        &[],
        Duration::from_millis(100),
    )
    .await;
    assert!(!relayed.is_empty(), "the bridge relays to the operator");
    while let Ok(e) = rig.events.try_recv() {
        assert!(
            !matches!(e, MediaEvent::Digit { .. }),
            "digit while bridged: {e:?}"
        );
    }
    rig.edge().unbridge(&a);
    let _ = key_five(9).await;
    let e = tokio::time::timeout(WAIT, async {
        loop {
            match rig.events.recv().await {
                Some(e @ MediaEvent::Digit { .. }) => return e,
                Some(_) => {}
                None => panic!("events closed"),
            }
        }
    })
    .await
    .expect("a digit once unbridged");
    assert_eq!(
        e,
        MediaEvent::Digit {
            call_id: a.call_id.clone(),
            digit: '5',
            via: crate::media::DtmfVia::Inband
        }
    );
}
