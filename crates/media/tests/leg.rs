//! RtpLeg on virtual time: latching, inactivity, RTCP between two legs, RFC 4733 end to end,
//! and the SIPp DTMF captures.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use media::dtmf4733::Digit;
use media::rtp::{Component, Event, LegConfig, RtpLeg, SilenceSource, Transmit};

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn rtp(seq: u16, ts: u32, ssrc: u32, pt: u8, marker: bool, payload: &[u8]) -> Vec<u8> {
    rtp_rs::RtpPacketBuilder::new()
        .payload_type(pt)
        .marked(marker)
        .sequence(rtp_rs::Seq::from(seq))
        .timestamp(ts)
        .ssrc(ssrc)
        .payload(payload)
        .build()
        .unwrap()
}

fn events(leg: &mut RtpLeg) -> Vec<Event> {
    std::iter::from_fn(|| leg.poll_event()).collect()
}

fn transmits(leg: &mut RtpLeg) -> Vec<Transmit> {
    std::iter::from_fn(|| leg.poll_transmit()).collect()
}

fn latched(evs: &[Event]) -> Vec<SocketAddr> {
    evs.iter()
        .filter_map(|e| match e {
            Event::Latched { addr, .. } => Some(*addr),
            _ => None,
        })
        .collect()
}

#[test]
fn latches_to_the_real_source_and_relatches_on_a_new_stream() {
    let t0 = Instant::now();
    let sdp = addr("192.168.1.10:4000"); // private address from the caller's SDP
    let nat = addr("203.0.113.5:31000");
    let mut leg = RtpLeg::new(
        LegConfig {
            remote: Some(sdp),
            ..LegConfig::default()
        },
        t0,
        SystemTime::now(),
    );
    leg.set_source(Box::new(SilenceSource::new(0xFF, 160)));
    leg.handle_timeout(t0);
    let first = transmits(&mut leg);
    assert_eq!(
        first[0].destination, sdp,
        "before latching we follow the SDP"
    );

    let ms = |n: u64| t0 + Duration::from_millis(n);
    leg.handle_datagram(ms(10), nat, &rtp(1, 0, 0xA, 0, true, &[0xFF; 160]));
    assert_eq!(latched(&events(&mut leg)), vec![nat]);
    assert_eq!(leg.destination(), Some(nat));
    leg.handle_timeout(ms(20));
    let tx = transmits(&mut leg);
    assert!(tx
        .iter()
        .all(|t| t.component == Component::Rtp && t.destination == nat));
    assert!(!tx.is_empty());

    // An intruder replaying the same SSRC while the caller keeps talking is ignored.
    let evil = addr("198.51.100.66:5000");
    for i in 0..10u16 {
        leg.handle_datagram(
            ms(30 + u64::from(i) * 20),
            nat,
            &rtp(2 + i, 0, 0xA, 0, false, &[0; 160]),
        );
        leg.handle_datagram(
            ms(31 + u64::from(i) * 20),
            evil,
            &rtp(100 + i, 0, 0xA, 0, false, &[0; 160]),
        );
    }
    let evs = events(&mut leg);
    assert!(latched(&evs).is_empty());
    assert_eq!(evs.len(), 10, "only the caller's audio comes through");
    assert_eq!(leg.stats().foreign, 10);
    assert_eq!(leg.destination(), Some(nat));

    // The peer moves its media to another server with a new SSRC: re-latch after 3 packets.
    let moved = addr("203.0.113.9:42000");
    for i in 0..3u16 {
        leg.handle_datagram(
            ms(300 + u64::from(i) * 20),
            moved,
            &rtp(500 + i, 0, 0xB, 0, false, &[0; 160]),
        );
    }
    assert_eq!(latched(&events(&mut leg)), vec![moved]);
    assert_eq!(leg.destination(), Some(moved));

    // NAT rebinding: same SSRC from a new port after the old one went silent.
    let rebound = addr("203.0.113.9:42002");
    for i in 0..3u16 {
        leg.handle_datagram(
            ms(1000 + u64::from(i) * 20),
            rebound,
            &rtp(503 + i, 0, 0xB, 0, false, &[0; 160]),
        );
    }
    assert_eq!(latched(&events(&mut leg)), vec![rebound]);

    // A new SSRC from the latched address is followed at once (the peer restarted its stream).
    leg.handle_datagram(ms(1100), rebound, &rtp(9, 0, 0xC, 0, false, &[0; 160]));
    let evs = events(&mut leg);
    assert_eq!(
        evs[0],
        Event::Latched {
            addr: rebound,
            ssrc: 0xC
        }
    );
    assert_eq!(leg.stats().received.ssrc, Some(0xC));
}

#[test]
fn inactivity_timeout_fires_once_and_rearms_on_traffic() {
    let t0 = Instant::now();
    let mut leg = RtpLeg::new(
        LegConfig {
            inactivity_timeout: Some(Duration::from_secs(30)),
            rtcp_interval: Duration::from_secs(5),
            ..LegConfig::default()
        },
        t0,
        SystemTime::now(),
    );
    let from = addr("10.0.0.1:2000");
    leg.handle_datagram(
        t0 + Duration::from_secs(1),
        from,
        &rtp(1, 0, 1, 0, false, &[0; 160]),
    );
    events(&mut leg);
    // Drive the leg by its own wake-ups, as the gateway would.
    let mut now = t0;
    let mut fired = Vec::new();
    let mut resumed = false;
    while now < t0 + Duration::from_secs(100) {
        now = leg.poll_timeout().unwrap().max(now);
        leg.handle_timeout(now);
        transmits(&mut leg);
        if events(&mut leg).contains(&Event::Inactive) {
            fired.push(now - t0);
        }
        if now >= t0 + Duration::from_secs(60) && !resumed {
            resumed = true;
            leg.handle_datagram(now, from, &rtp(2, 160, 1, 0, false, &[0; 160]));
            events(&mut leg);
        }
        now += Duration::from_millis(1);
    }
    assert_eq!(fired.len(), 2, "{fired:?}");
    assert_eq!(fired[0], Duration::from_secs(31));
    assert!(
        fired[1] >= Duration::from_secs(90) && fired[1] < Duration::from_secs(96),
        "{fired:?}"
    );
}

/// Two legs wired back to back with 40 ms one-way delay and 1 packet in 50 lost on the way
/// from A to B, run for 30 virtual seconds.
#[test]
fn two_legs_exchange_audio_and_rtcp() {
    let t0 = Instant::now();
    let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let (a_addr, b_addr) = (addr("10.0.0.1:4000"), addr("10.0.0.2:6000"));
    let delay = Duration::from_millis(40);
    let mk = |remote| {
        RtpLeg::new(
            LegConfig {
                remote: Some(remote),
                ..LegConfig::default()
            },
            t0,
            wall,
        )
    };
    let mut a = mk(b_addr);
    let mut b = mk(a_addr);
    a.set_source(Box::new(SilenceSource::new(0xFF, 160)));
    b.set_source(Box::new(SilenceSource::new(0xFF, 160)));
    // In flight: (arrival, to_b, transmit).
    let mut wire: Vec<(Instant, bool, Transmit)> = Vec::new();
    let mut now = t0;
    let mut a_rtp = 0u64;
    let mut b_media = 0u64;
    let end = t0 + Duration::from_secs(30);
    while now < end {
        for (leg, to_b) in [(&mut a, true), (&mut b, false)] {
            leg.handle_timeout(now);
            while let Some(t) = leg.poll_transmit() {
                if to_b && t.component == Component::Rtp {
                    a_rtp += 1;
                    if a_rtp.is_multiple_of(50) {
                        continue;
                    }
                }
                wire.push((now + delay, to_b, t));
            }
        }
        wire.sort_by_key(|w| w.0);
        while wire.first().is_some_and(|w| w.0 <= now) {
            let (_, to_b, t) = wire.remove(0);
            let (leg, from) = if to_b {
                (&mut b, a_addr)
            } else {
                (&mut a, b_addr)
            };
            let from = match t.component {
                Component::Rtp => from,
                Component::Rtcp => SocketAddr::new(from.ip(), from.port() + 1),
            };
            match t.component {
                Component::Rtp => leg.handle_datagram(now, from, &t.payload),
                Component::Rtcp => leg.handle_rtcp(now, from, &t.payload),
            }
        }
        b_media += events(&mut b)
            .iter()
            .filter(|e| matches!(e, Event::Media { .. }))
            .count() as u64;
        events(&mut a);
        let next_leg = a.poll_timeout().unwrap().min(b.poll_timeout().unwrap());
        let next_wire = wire.first().map(|w| w.0).unwrap_or(next_leg);
        now = next_leg.min(next_wire).max(now + Duration::from_micros(1));
    }
    let sa = a.stats();
    let sb = b.stats();
    assert!(sa.sent.packets >= 1499, "{:?}", sa.sent);
    assert_eq!(sb.received.ssrc, Some(a.ssrc()));
    assert!(
        sb.received.lost >= 29 && sb.received.lost <= 30,
        "{:?}",
        sb.received
    );
    assert!(b_media + sb.received.lost as u64 + 2 >= sa.sent.packets);
    // B's receiver reports reached A: A knows B's view of its stream and the round trip.
    let report = sa
        .remote_report
        .expect("A got a report block about its stream");
    assert!(
        report.fraction_lost > 0 && report.fraction_lost < 16,
        "{report:?}"
    );
    assert!(report.cumulative_lost > 0);
    assert_ne!(report.last_sr, 0, "B echoes A's SR");
    let rtt = sa.round_trip.expect("rtt from LSR/DLSR");
    assert!(
        rtt >= Duration::from_millis(79) && rtt <= Duration::from_millis(81),
        "{rtt:?}"
    );
    let rtt_b = sb.round_trip.expect("B too");
    assert!(
        rtt_b >= Duration::from_millis(79) && rtt_b <= Duration::from_millis(81),
        "{rtt_b:?}"
    );
}

#[test]
fn dtmf_sent_by_one_leg_is_one_digit_at_the_other() {
    let t0 = Instant::now();
    let a_addr = addr("10.0.0.1:4000");
    let b_addr = addr("10.0.0.2:6000");
    let mut a = RtpLeg::new(
        LegConfig {
            remote: Some(b_addr),
            ..LegConfig::default()
        },
        t0,
        SystemTime::now(),
    );
    let mut b = RtpLeg::new(LegConfig::default(), t0, SystemTime::now());
    a.set_source(Box::new(SilenceSource::new(0xFF, 160)));
    let mut digits = Vec::new();
    let mut audio_during_event = 0;
    let mut now = t0;
    for step in 0..200u32 {
        if step == 10 {
            assert!(a.send_dtmf(now, Digit::Num(4), Duration::from_millis(100)));
        }
        if step == 40 {
            assert!(a.send_dtmf(now, Digit::Num(4), Duration::from_millis(100)));
        }
        a.handle_timeout(now);
        while let Some(t) = a.poll_transmit() {
            if t.component == Component::Rtp {
                let pt = t.payload[1] & 0x7F;
                if pt == 0 && ((10..16).contains(&step) || (40..46).contains(&step)) {
                    audio_during_event += 1;
                }
                b.handle_datagram(now, a_addr, &t.payload);
            }
        }
        for e in events(&mut b) {
            if let Event::Dtmf(d) = e {
                digits.push(d);
            }
        }
        now = a.poll_timeout().unwrap();
    }
    assert_eq!(digits, vec![Digit::Num(4), Digit::Num(4)]);
    assert_eq!(audio_during_event, 0, "audio pauses while a digit is sent");
}

/// Reads the RTP payloads of a classic pcap (Ethernet, IPv4, UDP): a test-only reader.
fn pcap_rtp(path: &str) -> Option<Vec<(Duration, Vec<u8>)>> {
    let d = std::fs::read(path).ok()?;
    assert_eq!(&d[..4], &[0xd4, 0xc3, 0xb2, 0xa1], "little-endian pcap");
    let mut out = Vec::new();
    let mut o = 24;
    let mut first = None;
    while o + 16 <= d.len() {
        let le = |i: usize| u32::from_le_bytes(d[i..i + 4].try_into().unwrap());
        let at =
            Duration::from_secs(u64::from(le(o))) + Duration::from_micros(u64::from(le(o + 4)));
        let incl = le(o + 8) as usize;
        let frame = &d[o + 16..o + 16 + incl];
        o += 16 + incl;
        assert_eq!(&frame[12..14], &[0x08, 0x00], "IPv4");
        let ihl = usize::from(frame[14] & 0x0F) * 4;
        assert_eq!(frame[14 + 9], 17, "UDP");
        let udp = &frame[14 + ihl..];
        let first = *first.get_or_insert(at);
        out.push((at - first, udp[8..].to_vec()));
    }
    Some(out)
}

fn play_pcap(leg: &mut RtpLeg, start: Instant, pkts: &[(Duration, Vec<u8>)]) -> String {
    let from = addr("127.0.0.1:6000");
    let mut s = String::new();
    for (at, p) in pkts {
        leg.handle_datagram(start + *at, from, p);
        for e in events(leg) {
            if let Event::Dtmf(d) = e {
                s.push(d.as_char());
            }
        }
    }
    s
}

#[test]
fn sipp_dtmf_pcaps_give_one_digit_each_even_when_replayed() {
    let dir = "/usr/share/sip-tester";
    let Some(one) = pcap_rtp(&format!("{dir}/dtmf_2833_1.pcap")) else {
        // The captures come with Debian's sip-tester; CI installs it.
        assert!(
            std::env::var_os("CI").is_none(),
            "sip-tester pcaps missing on CI"
        );
        eprintln!("skipping: {dir} not installed");
        return;
    };
    assert_eq!(one.len(), 10);
    let t0 = Instant::now();
    let mut leg = RtpLeg::new(LegConfig::default(), t0, SystemTime::now());
    assert_eq!(play_pcap(&mut leg, t0, &one), "1");
    // The same capture again a second later: identical SSRC, timestamp and sequence numbers.
    assert_eq!(play_pcap(&mut leg, t0 + Duration::from_secs(1), &one), "1");
    // Every digit's capture, in an order where timestamps go backwards.
    let mut all = String::new();
    for (i, name) in ["9", "0", "star", "5", "pound", "1", "1"]
        .iter()
        .enumerate()
    {
        let pkts = pcap_rtp(&format!("{dir}/dtmf_2833_{name}.pcap")).unwrap();
        all += &play_pcap(&mut leg, t0 + Duration::from_secs(3 + i as u64), &pkts);
    }
    assert_eq!(all, "90*5#11");
}
