//! A leg in steady state (sending a frame every slot, receiving one, the owner recycling the
//! received payloads) allocates nothing per packet: every packet and payload it hands out is one
//! of a few buffers handed to it at the start, recognised by their unusual capacity (a fresh
//! allocation would be packet-sized).
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use media::rtp::{Component, Event, LegConfig, RtpLeg, RtpSender, SilenceSource};

/// Capacity of the buffers handed in; far more than a packet needs.
const MARK: usize = 1000;

const PT: Duration = Duration::from_millis(20);

#[test]
fn a_leg_in_steady_state_allocates_nothing_per_packet() {
    let t0 = Instant::now();
    let peer: SocketAddr = "127.0.0.1:4000".parse().unwrap();
    let mut leg = RtpLeg::new(
        LegConfig {
            remote: Some(peer),
            rtcp_interval: Duration::from_secs(3600),
            ..LegConfig::default()
        },
        t0,
        SystemTime::now(),
    );
    leg.set_source(Box::new(SilenceSource::new(0xFF, 160)));
    let mut far = RtpSender::with_initial(7, 100, 1000, 0, 8000, PT, t0);
    let mut far_src = SilenceSource::new(0x7F, 160);
    let mut buf = Vec::with_capacity(MARK);
    for _ in 0..3 {
        leg.recycle(Vec::with_capacity(MARK));
    }
    let mut inbound = Vec::new();
    let (mut sent, mut media) = (0u32, 0u32);
    for n in 0..500 {
        let now = t0 + PT * n;
        assert!(far.poll_transmit_into(now, &mut far_src, &mut inbound));
        leg.handle_datagram(now, peer, &inbound);
        while let Some(ev) = leg.poll_event() {
            if let Event::Media { payload, .. } = ev {
                assert_eq!(payload.len(), 160);
                assert!(payload.capacity() >= MARK, "payload {n} in a fresh buffer");
                media += 1;
                leg.recycle(payload);
            }
        }
        leg.handle_timeout(now);
        while let Some((c, to)) = leg.poll_transmit_into(&mut buf) {
            assert_eq!((c, to), (Component::Rtp, peer));
            assert_eq!(buf.len(), 12 + 160);
            assert!(buf.capacity() >= MARK, "packet {n} in a fresh buffer");
            sent += 1;
        }
    }
    assert_eq!((sent, media), (500, 500));
}

#[test]
fn built_packets_parse_as_rtp() {
    let t0 = Instant::now();
    let mut s = RtpSender::with_initial(0xDEAD_BEEF, 65_535, 77, 8, 8000, PT, t0);
    let mut buf = vec![1, 2, 3];
    s.build_into(101, true, 1234, &[9, 8, 7], &mut buf);
    let r = rtp_rs::RtpReader::new(&buf).unwrap();
    assert_eq!(r.ssrc(), 0xDEAD_BEEF);
    assert_eq!(r.payload_type(), 101);
    assert!(r.mark());
    assert_eq!(u16::from(r.sequence_number()), 65_535);
    assert_eq!(r.timestamp(), 1234);
    assert_eq!(r.payload(), &[9, 8, 7]);
    assert!(s.poll_transmit_into(t0, &mut SilenceSource::new(0xD5, 160), &mut buf));
    let r = rtp_rs::RtpReader::new(&buf).unwrap();
    assert_eq!((r.payload_type(), r.mark()), (8, true));
    assert_eq!(u16::from(r.sequence_number()), 0, "wrapped");
    assert_eq!(r.timestamp(), 77);
    assert_eq!(r.payload(), &[0xD5; 160]);
}
