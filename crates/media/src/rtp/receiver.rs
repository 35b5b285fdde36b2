//! The receiving half of an RTP stream: parsing, the remote SSRC, extended sequence numbers,
//! loss/duplicate/reorder counters and interarrival jitter (RFC 3550 A.1, A.3, A.8).

use std::time::Instant;

use rtp_rs::RtpReader;

use super::RtpError;

/// A sequence jump larger than this (forward) is not taken as loss but as a possible restart
/// (RFC 3550 A.1 `MAX_DROPOUT`).
const MAX_DROPOUT: u16 = 3000;
/// A packet up to this far behind the highest sequence is a late or duplicate packet, not a
/// restart (RFC 3550 A.1 `MAX_MISORDER`).
const MAX_MISORDER: u16 = 100;
/// How many recent sequence numbers are remembered to recognise duplicates.
const WINDOW: u64 = 128;

/// One parsed RTP packet, borrowed from the datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received<'a> {
    /// Sender's SSRC.
    pub ssrc: u32,
    /// Sequence number as sent.
    pub sequence: u16,
    /// Sequence number extended with the wrap-around count.
    pub extended_sequence: u64,
    /// RTP timestamp.
    pub timestamp: u32,
    /// Payload type.
    pub payload_type: u8,
    /// Marker bit.
    pub marker: bool,
    /// Payload without header and padding.
    pub payload: &'a [u8],
    /// Whether this exact sequence number was already received.
    pub duplicate: bool,
    /// Whether this packet arrived after a later one.
    pub reordered: bool,
    /// Whether the sequence number jumped so far that the stream looks restarted; such a packet
    /// is not counted and the stream resynchronises on the next in-order packet (RFC 3550 A.1).
    pub sequence_jump: bool,
    /// Whether this packet started tracking a new SSRC.
    pub new_source: bool,
}

/// Receiver statistics for the current remote source.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ReceiverStats {
    /// The remote SSRC, once a packet has arrived.
    pub ssrc: Option<u32>,
    /// Distinct packets received (duplicates excluded).
    pub received: u64,
    /// Packets expected from the first to the highest extended sequence number.
    pub expected: u64,
    /// `expected - received`; negative only if the sender repeats itself oddly.
    pub lost: i64,
    /// Duplicate packets seen.
    pub duplicates: u64,
    /// Packets that arrived after a packet with a higher sequence number.
    pub reordered: u64,
    /// Highest extended sequence number received.
    pub highest_sequence: u64,
    /// Interarrival jitter in timestamp units (RFC 3550 A.8).
    pub jitter: f64,
}

#[derive(Debug, Clone)]
struct Source {
    ssrc: u32,
    base_ext: u64,
    max_seq: u16,
    cycles: u64,
    bad_seq: Option<u16>,
    received: u64,
    duplicates: u64,
    reordered: u64,
    /// Bit k set: extended sequence `max_ext - k` has been received.
    window: u128,
    transit: Option<i64>,
    jitter: f64,
    expected_prior: u64,
    received_prior: u64,
}

impl Source {
    fn new(ssrc: u32, seq: u16) -> Self {
        Source {
            ssrc,
            base_ext: u64::from(seq),
            max_seq: seq,
            cycles: 0,
            bad_seq: None,
            received: 0,
            duplicates: 0,
            reordered: 0,
            window: 0,
            transit: None,
            jitter: 0.0,
            expected_prior: 0,
            received_prior: 0,
        }
    }

    fn max_ext(&self) -> u64 {
        self.cycles + u64::from(self.max_seq)
    }

    fn expected(&self) -> u64 {
        (self.max_ext() + 1).saturating_sub(self.base_ext)
    }
}

/// Fraction lost and cumulative loss for one RTCP report interval (RFC 3550 A.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntervalLoss {
    /// Fraction lost since the previous report, in 1/256 units.
    pub fraction_lost: u8,
    /// Cumulative packets lost, clamped to the 24-bit signed RTCP field.
    pub cumulative_lost: i32,
}

/// Receives one remote RTP stream.
#[derive(Debug)]
pub struct RtpReceiver {
    clock_rate: u32,
    epoch: Instant,
    exclude_from_jitter: Option<u8>,
    source: Option<Source>,
}

impl RtpReceiver {
    /// A receiver for a stream with the given media clock rate; `epoch` is any instant at or
    /// before the first arrival (arrival times are measured from it).
    pub fn new(clock_rate: u32, epoch: Instant) -> Self {
        RtpReceiver {
            clock_rate,
            epoch,
            exclude_from_jitter: None,
            source: None,
        }
    }

    /// Packets of this payload type do not update the jitter estimate: telephone events keep
    /// one timestamp for a whole event, so their transit time is meaningless.
    pub fn exclude_from_jitter(&mut self, payload_type: Option<u8>) {
        self.exclude_from_jitter = payload_type;
    }

    /// The SSRC currently tracked.
    pub fn remote_ssrc(&self) -> Option<u32> {
        self.source.as_ref().map(|s| s.ssrc)
    }

    /// Parses and accounts for one datagram that arrived at `now`.
    pub fn handle<'a>(&mut self, now: Instant, data: &'a [u8]) -> Result<Received<'a>, RtpError> {
        let r = RtpReader::new(data).map_err(RtpError::from)?;
        let ssrc = r.ssrc();
        let seq = u16::from(r.sequence_number());
        let timestamp = r.timestamp();
        let payload_type = r.payload_type();
        let mut new_source = false;
        let src = match self.source.take() {
            Some(s) if s.ssrc == ssrc => self.source.insert(s),
            // A new SSRC (first packet, or the peer restarted its stream): start over.
            _ => {
                new_source = true;
                self.source.insert(Source::new(ssrc, seq))
            }
        };
        let mut duplicate = false;
        let mut reordered = false;
        let mut sequence_jump = false;
        let ext;
        if new_source {
            src.window = 1;
            src.received = 1;
            ext = src.max_ext();
        } else {
            let udelta = seq.wrapping_sub(src.max_seq);
            if udelta == 0 {
                duplicate = true;
                src.duplicates += 1;
                ext = src.max_ext();
            } else if udelta < MAX_DROPOUT {
                if seq < src.max_seq {
                    src.cycles += 1 << 16;
                }
                src.max_seq = seq;
                let shift = u64::from(udelta);
                src.window = if shift >= WINDOW {
                    1
                } else {
                    (src.window << shift) | 1
                };
                src.received += 1;
                src.bad_seq = None;
                ext = src.max_ext();
            } else if udelta <= u16::MAX - MAX_MISORDER + 1 {
                // A big jump: accept it only if the next packet continues from it.
                if src.bad_seq == Some(seq) {
                    let fresh = Source {
                        transit: None,
                        jitter: src.jitter,
                        ..Source::new(ssrc, seq)
                    };
                    *src = fresh;
                    src.window = 1;
                    src.received = 1;
                    ext = src.max_ext();
                } else {
                    src.bad_seq = Some(seq.wrapping_add(1));
                    sequence_jump = true;
                    ext = src.max_ext() + u64::from(udelta);
                }
            } else {
                // Behind the highest sequence number: duplicate or late.
                let back = u64::from(src.max_seq.wrapping_sub(seq));
                let max_ext = src.max_ext();
                ext = max_ext.saturating_sub(back);
                if back < WINDOW {
                    let bit = 1u128 << back;
                    if src.window & bit != 0 {
                        duplicate = true;
                        src.duplicates += 1;
                    } else {
                        src.window |= bit;
                        reordered = true;
                        src.reordered += 1;
                        src.received += 1;
                    }
                } else {
                    reordered = true;
                    src.reordered += 1;
                    src.received += 1;
                }
                if ext < src.base_ext {
                    // Late packet from before the first one we saw: extend the base.
                    src.base_ext = ext;
                }
            }
        }
        if !duplicate && !sequence_jump && Some(payload_type) != self.exclude_from_jitter {
            // RFC 3550 A.8: J += (|D| - J) / 16 with transit = arrival - timestamp.
            let elapsed = now.saturating_duration_since(self.epoch).as_nanos();
            let arrival = (elapsed * u128::from(self.clock_rate) / 1_000_000_000) as i64;
            let transit = arrival.wrapping_sub(i64::from(timestamp));
            if let Some(prev) = src.transit {
                // Timestamps are modulo 2^32: take the difference in that ring.
                let d = (transit.wrapping_sub(prev) as i32).unsigned_abs();
                src.jitter += (f64::from(d) - src.jitter) / 16.0;
            }
            src.transit = Some(transit);
        }
        Ok(Received {
            ssrc,
            sequence: seq,
            extended_sequence: ext,
            timestamp,
            payload_type,
            marker: r.mark(),
            payload: r.payload(),
            duplicate,
            reordered,
            sequence_jump,
            new_source,
        })
    }

    /// Statistics for the current source.
    pub fn stats(&self) -> ReceiverStats {
        match &self.source {
            None => ReceiverStats::default(),
            Some(s) => ReceiverStats {
                ssrc: Some(s.ssrc),
                received: s.received,
                expected: s.expected(),
                lost: s.expected() as i64 - s.received as i64,
                duplicates: s.duplicates,
                reordered: s.reordered,
                highest_sequence: s.max_ext(),
                jitter: s.jitter,
            },
        }
    }

    /// Loss since the previous call and in total, for an RTCP report block (RFC 3550 A.3);
    /// resets the interval counters. `None` before any packet.
    pub fn take_interval_loss(&mut self) -> Option<IntervalLoss> {
        let s = self.source.as_mut()?;
        let expected = s.expected();
        let expected_interval = expected.saturating_sub(s.expected_prior);
        let received_interval = s.received.saturating_sub(s.received_prior);
        s.expected_prior = expected;
        s.received_prior = s.received;
        let lost_interval = expected_interval.saturating_sub(received_interval);
        let fraction_lost = if expected_interval == 0 || lost_interval == 0 {
            0
        } else {
            ((lost_interval << 8) / expected_interval).min(255) as u8
        };
        let cumulative = expected as i64 - s.received as i64;
        Some(IntervalLoss {
            fraction_lost,
            cumulative_lost: cumulative.clamp(-0x80_0000, 0x7F_FFFF) as i32,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn pkt(seq: u16, ts: u32, ssrc: u32) -> Vec<u8> {
        rtp_rs::RtpPacketBuilder::new()
            .payload_type(0)
            .sequence(rtp_rs::Seq::from(seq))
            .timestamp(ts)
            .ssrc(ssrc)
            .payload(&[0xFF; 160])
            .build()
            .unwrap()
    }

    #[test]
    fn counts_loss_duplicates_and_reordering() {
        let t0 = Instant::now();
        let mut r = RtpReceiver::new(8000, t0);
        // Sequence 65530..65545 across the wrap, with 65533 lost, 2 arriving late,
        // 65535 duplicated.
        let order: Vec<u16> = vec![
            65530, 65531, 65532, 65534, 65535, 65535, 0, 1, 3, 2, 4, 5, 6, 7, 8, 9,
        ];
        let mut flags = Vec::new();
        for (i, &seq) in order.iter().enumerate() {
            let ts = u32::from(seq.wrapping_sub(65530)) * 160;
            let p = pkt(seq, ts, 7);
            let rx = r
                .handle(t0 + Duration::from_millis(20 * i as u64), &p)
                .unwrap();
            flags.push((rx.duplicate, rx.reordered));
            assert_eq!(rx.ssrc, 7);
        }
        assert_eq!(flags[5], (true, false));
        assert_eq!(flags[9], (false, true));
        let s = r.stats();
        assert_eq!(s.ssrc, Some(7));
        assert_eq!(s.expected, 16);
        assert_eq!(s.received, 15);
        assert_eq!(s.lost, 1);
        assert_eq!(s.duplicates, 1);
        assert_eq!(s.reordered, 1);
        assert_eq!(s.highest_sequence, 65536 + 9);
        let loss = r.take_interval_loss().unwrap();
        assert_eq!(loss.cumulative_lost, 1);
        assert_eq!(loss.fraction_lost, (256 / 16) as u8);
        // Next interval without loss.
        for seq in 10..20u16 {
            r.handle(t0, &pkt(seq, 0, 7)).unwrap();
        }
        let loss = r.take_interval_loss().unwrap();
        assert_eq!((loss.fraction_lost, loss.cumulative_lost), (0, 1));
    }

    #[test]
    fn extended_sequence_survives_many_wraps() {
        let t0 = Instant::now();
        let mut r = RtpReceiver::new(8000, t0);
        let mut seq = 60_000u16;
        for _ in 0..200_000u32 {
            r.handle(t0, &pkt(seq, 0, 1)).unwrap();
            seq = seq.wrapping_add(1);
        }
        let s = r.stats();
        assert_eq!(s.expected, 200_000);
        assert_eq!(s.lost, 0);
        assert_eq!(s.highest_sequence, 60_000 + 199_999);
    }

    #[test]
    fn big_jump_resyncs_after_two_sequential_packets() {
        let t0 = Instant::now();
        let mut r = RtpReceiver::new(8000, t0);
        r.handle(t0, &pkt(100, 0, 1)).unwrap();
        r.handle(t0, &pkt(101, 0, 1)).unwrap();
        let p = pkt(30_000, 0, 1);
        let rx = r.handle(t0, &p).unwrap();
        assert!(rx.sequence_jump);
        let p = pkt(30_001, 0, 1);
        let rx = r.handle(t0, &p).unwrap();
        assert!(!rx.sequence_jump);
        let s = r.stats();
        assert_eq!((s.received, s.expected, s.lost), (1, 1, 0));
    }

    #[test]
    fn new_ssrc_resets_the_source() {
        let t0 = Instant::now();
        let mut r = RtpReceiver::new(8000, t0);
        assert!(r.handle(t0, &pkt(1, 0, 1)).unwrap().new_source);
        assert!(!r.handle(t0, &pkt(2, 0, 1)).unwrap().new_source);
        assert!(r.handle(t0, &pkt(9000, 0, 2)).unwrap().new_source);
        assert_eq!(r.remote_ssrc(), Some(2));
        assert_eq!(r.stats().received, 1);
    }

    /// Packets sent every 20 ms (160 ticks) arrive alternately 0 and 10 ms late: each transit
    /// difference is 80 ticks, so the jitter estimate converges to 80.
    #[test]
    fn jitter_follows_rfc3550_estimator() {
        let t0 = Instant::now();
        let mut r = RtpReceiver::new(8000, t0);
        let mut expected = 0.0f64;
        for i in 0..400u32 {
            let late = if i % 2 == 1 { 10 } else { 0 };
            let at = t0 + Duration::from_millis(u64::from(i) * 20 + late);
            r.handle(at, &pkt(i as u16, 5000 + i * 160, 3)).unwrap();
            if i > 0 {
                expected += (80.0 - expected) / 16.0;
            }
            assert!((r.stats().jitter - expected).abs() < 1e-9, "packet {i}");
        }
        assert!((r.stats().jitter - 80.0).abs() < 0.01);
        // A perfectly regular stream has zero jitter.
        let mut r = RtpReceiver::new(8000, t0);
        for i in 0..50u32 {
            r.handle(
                t0 + Duration::from_millis(u64::from(i) * 20),
                &pkt(i as u16, i * 160, 3),
            )
            .unwrap();
        }
        assert_eq!(r.stats().jitter, 0.0);
    }

    #[test]
    fn excluded_payload_type_does_not_move_jitter() {
        let t0 = Instant::now();
        let mut r = RtpReceiver::new(8000, t0);
        r.exclude_from_jitter(Some(101));
        for i in 0..20u32 {
            let p = rtp_rs::RtpPacketBuilder::new()
                .payload_type(101)
                .sequence(rtp_rs::Seq::from(i as u16))
                .timestamp(1234)
                .ssrc(1)
                .payload(&[1, 0x0a, 0, 0])
                .build()
                .unwrap();
            r.handle(t0 + Duration::from_millis(u64::from(i) * 20), &p)
                .unwrap();
        }
        assert_eq!(r.stats().jitter, 0.0);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let t0 = Instant::now();
        let mut r = RtpReceiver::new(8000, t0);
        for data in [
            &[][..],
            &[0x80][..],
            &[0x40; 12][..],
            &[0x9F; 12][..],
            &[0xB0; 20][..],
        ] {
            assert!(r.handle(t0, data).is_err());
        }
    }
}
