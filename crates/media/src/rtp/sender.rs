//! The sending half of an RTP stream: SSRC, sequence numbers, timestamps and pacing.

use std::time::{Duration, Instant};

use crate::pacing::Pacer;

/// Supplies one frame of encoded audio per pacing slot.
///
/// The sender calls [`FrameSource::next_frame`] once per slot with an empty `out`; the source
/// appends the payload for that slot (already encoded for the leg's payload type). Leaving `out`
/// empty means "nothing to send in this slot" (silence suppression, end of prompt): the RTP
/// timestamp still advances and the next packet carries the marker bit.
pub trait FrameSource: Send {
    /// Fills `out` with the next frame's payload, or leaves it empty for no packet.
    fn next_frame(&mut self, out: &mut Vec<u8>);
}

/// A source that sends nothing (every slot is silent, no packets).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoAudio;

impl FrameSource for NoAudio {
    fn next_frame(&mut self, _out: &mut Vec<u8>) {}
}

/// A source that sends a constant silence frame every slot, which keeps NAT bindings open and
/// keeps the far end's own RTP timeout from firing while there is nothing to say.
#[derive(Debug, Clone)]
pub struct SilenceSource {
    frame: Vec<u8>,
}

impl SilenceSource {
    /// `len` bytes of `code` per frame (e.g. 160 × `0xFF` for 20 ms of μ-law silence).
    pub fn new(code: u8, len: usize) -> Self {
        SilenceSource {
            frame: vec![code; len],
        }
    }
}

impl FrameSource for SilenceSource {
    fn next_frame(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.frame);
    }
}

/// Sender counters, as reported in RTCP sender reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SenderStats {
    /// RTP packets sent.
    pub packets: u64,
    /// Payload octets sent (headers excluded, RFC 3550 §6.4.1).
    pub octets: u64,
}

/// Paced RTP sender for one stream.
///
/// The timestamp of slot `n` is `initial_timestamp + n · samples_per_frame` and slot `n` is due
/// at `start + n · ptime`, so neither drifts however late the caller polls. A slot without a
/// frame sends nothing but still advances the timestamp; the next packet after such a gap, after
/// [`RtpSender::mark_next`] (hold, resume) or at the very start carries the marker bit.
#[derive(Debug)]
pub struct RtpSender {
    ssrc: u32,
    next_seq: u16,
    initial_timestamp: u32,
    samples_per_frame: u32,
    clock_rate: u32,
    payload_type: u8,
    pacer: Pacer,
    marker_pending: bool,
    stats: SenderStats,
    last_sent: Option<(Instant, u32)>,
    buf: Vec<u8>,
}

impl RtpSender {
    /// A sender with a random SSRC, initial sequence number and initial timestamp (RFC 3550
    /// §5.1), whose first slot is due at `start`.
    pub fn new(payload_type: u8, clock_rate: u32, ptime: Duration, start: Instant) -> Self {
        Self::with_initial(
            rand::random(),
            rand::random(),
            rand::random(),
            payload_type,
            clock_rate,
            ptime,
            start,
        )
    }

    /// A sender with the given SSRC, first sequence number and first timestamp (tests, or a
    /// sender that must continue an existing stream).
    pub fn with_initial(
        ssrc: u32,
        first_seq: u16,
        first_timestamp: u32,
        payload_type: u8,
        clock_rate: u32,
        ptime: Duration,
        start: Instant,
    ) -> Self {
        let samples =
            u64::from(clock_rate) * u64::try_from(ptime.as_micros()).unwrap_or(0) / 1_000_000;
        RtpSender {
            ssrc,
            next_seq: first_seq,
            initial_timestamp: first_timestamp,
            samples_per_frame: u32::try_from(samples).unwrap_or(u32::MAX),
            clock_rate,
            payload_type: payload_type & 0x7F,
            pacer: Pacer::new(start, ptime),
            marker_pending: true,
            stats: SenderStats::default(),
            last_sent: None,
            buf: Vec::with_capacity(320),
        }
    }

    /// Our SSRC.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// The sequence number the next packet will carry.
    pub fn next_sequence(&self) -> u16 {
        self.next_seq
    }

    /// The payload type of audio packets.
    pub fn payload_type(&self) -> u8 {
        self.payload_type
    }

    /// Changes the audio payload type (after a re-INVITE picked another codec); marks the next
    /// packet.
    pub fn set_payload_type(&mut self, payload_type: u8) {
        self.payload_type = payload_type & 0x7F;
        self.marker_pending = true;
    }

    /// Samples per frame (160 for 20 ms at 8 kHz).
    pub fn samples_per_frame(&self) -> u32 {
        self.samples_per_frame
    }

    /// Sets the marker bit on the next packet (start of a talk-spurt, after hold).
    pub fn mark_next(&mut self) {
        self.marker_pending = true;
    }

    /// The instant the next slot is due.
    pub fn next_send_at(&self) -> Instant {
        self.pacer.next_at()
    }

    /// The RTP timestamp of the next slot.
    pub fn next_timestamp(&self) -> u32 {
        self.slot_timestamp(self.pacer.slot())
    }

    fn slot_timestamp(&self, slot: u64) -> u32 {
        // Wrapping arithmetic modulo 2^32 is exactly RTP timestamp arithmetic.
        self.initial_timestamp
            .wrapping_add((slot as u32).wrapping_mul(self.samples_per_frame))
    }

    /// The RTP timestamp that corresponds to wall-clock instant `now` (for RTCP SR, which must
    /// relate the NTP time of the report to the media clock, RFC 3550 §6.4.1).
    pub fn timestamp_at(&self, now: Instant) -> u32 {
        match self.last_sent {
            Some((at, ts)) if now >= at => {
                let elapsed = u64::try_from((now - at).as_micros()).unwrap_or(u64::MAX);
                let ticks = elapsed.saturating_mul(u64::from(self.clock_rate)) / 1_000_000;
                ts.wrapping_add(ticks as u32)
            }
            Some((at, ts)) => {
                let back = u64::try_from((at - now).as_micros()).unwrap_or(u64::MAX);
                let ticks = back.saturating_mul(u64::from(self.clock_rate)) / 1_000_000;
                ts.wrapping_sub(ticks as u32)
            }
            None => self.next_timestamp(),
        }
    }

    /// Counters for RTCP.
    pub fn stats(&self) -> SenderStats {
        self.stats
    }

    /// Whether any packet has been sent since creation (an SR is only sent by active senders).
    pub fn has_sent(&self) -> bool {
        self.stats.packets > 0
    }

    /// Consumes every slot due at `now` without sending (hold, a DTMF event occupying the
    /// stream, no destination yet); the next audio packet is marked.
    pub fn skip_due(&mut self, now: Instant) {
        self.pacer.skip_if_far_behind(now);
        while self.pacer.is_due(now) {
            self.pacer.advance();
            self.marker_pending = true;
        }
    }

    /// Sends the audio for every slot due at `now`: pulls one frame from `source` per slot and
    /// returns the first packet built, or `None` when no slot is due or every due slot was
    /// silent. Call it again until it returns `None`. When the caller is more than
    /// [`crate::pacing::MAX_CATCH_UP`] late, the missed slots are dropped (timestamp jumps,
    /// marker set) rather than sent in a burst.
    pub fn poll_transmit(&mut self, now: Instant, source: &mut dyn FrameSource) -> Option<Vec<u8>> {
        let mut pkt = Vec::new();
        self.poll_transmit_into(now, source, &mut pkt)
            .then_some(pkt)
    }

    /// [`RtpSender::poll_transmit`] into a caller's buffer (replacing its contents), so that a
    /// stream sends without allocating: returns whether a packet was written.
    pub fn poll_transmit_into(
        &mut self,
        now: Instant,
        source: &mut dyn FrameSource,
        out: &mut Vec<u8>,
    ) -> bool {
        if self.pacer.skip_if_far_behind(now) > 0 {
            self.marker_pending = true;
        }
        while self.pacer.is_due(now) {
            let slot = self.pacer.slot();
            let due = self.pacer.next_at();
            self.pacer.advance();
            let mut frame = std::mem::take(&mut self.buf);
            frame.clear();
            source.next_frame(&mut frame);
            if frame.is_empty() {
                self.buf = frame;
                self.marker_pending = true;
                continue;
            }
            let ts = self.slot_timestamp(slot);
            let marker = std::mem::replace(&mut self.marker_pending, false);
            self.build_into(self.payload_type, marker, ts, &frame, out);
            self.buf = frame;
            self.last_sent = Some((due, ts));
            return true;
        }
        false
    }

    /// Builds a packet in this stream with an explicit payload type, marker and timestamp
    /// (telephone events), consuming one sequence number.
    pub fn build(
        &mut self,
        payload_type: u8,
        marker: bool,
        timestamp: u32,
        payload: &[u8],
    ) -> Vec<u8> {
        let mut v = Vec::with_capacity(RTP_HEADER + payload.len());
        self.build_into(payload_type, marker, timestamp, payload, &mut v);
        v
    }

    /// [`RtpSender::build`] into `out` (replacing its contents): the 12-byte fixed header (no
    /// CSRC, no extension, no padding) and the payload.
    pub fn build_into(
        &mut self,
        payload_type: u8,
        marker: bool,
        timestamp: u32,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) {
        let seq = self.next_seq;
        self.next_seq = seq.wrapping_add(1);
        self.stats.packets += 1;
        self.stats.octets += payload.len() as u64;
        out.clear();
        out.reserve(RTP_HEADER + payload.len());
        out.push(0x80); // version 2
        out.push((payload_type & 0x7F) | if marker { 0x80 } else { 0 });
        out.extend_from_slice(&seq.to_be_bytes());
        out.extend_from_slice(&timestamp.to_be_bytes());
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        out.extend_from_slice(payload);
    }
}

/// Length of the fixed RTP header we write.
const RTP_HEADER: usize = 12;

#[cfg(test)]
mod tests {
    use super::*;
    use rtp_rs::RtpReader;

    struct Counter(u8);
    impl FrameSource for Counter {
        fn next_frame(&mut self, out: &mut Vec<u8>) {
            self.0 = self.0.wrapping_add(1);
            out.extend_from_slice(&[self.0; 160]);
        }
    }

    /// Talks for `talk` slots, then is silent for `silent` slots, repeatedly.
    struct Spurts {
        n: u32,
        talk: u32,
        silent: u32,
    }
    impl FrameSource for Spurts {
        fn next_frame(&mut self, out: &mut Vec<u8>) {
            let phase = self.n % (self.talk + self.silent);
            self.n += 1;
            if phase < self.talk {
                out.extend_from_slice(&[0xFF; 160]);
            }
        }
    }

    const PT: Duration = Duration::from_millis(20);

    /// 30 000 packets (10 minutes): every packet is sent exactly at start + n·20 ms, timestamps
    /// step by 160 across the 32-bit wrap, sequence numbers step by one across the 16-bit wrap.
    #[test]
    fn pacing_over_30000_packets_has_no_drift() {
        let t0 = Instant::now();
        let first_ts = u32::MAX - 160 * 1000;
        let mut s = RtpSender::with_initial(0xABCD, 65_000, first_ts, 0, 8000, PT, t0);
        let mut src = Counter(0);
        let mut now = t0;
        let mut seen = 0u32;
        let mut prev: Option<(u16, u32)> = None;
        while seen < 30_000 {
            // Wake up a little late each time, by a varying amount, like a real timer.
            let due = s.next_send_at();
            assert_eq!(due, t0 + PT * seen);
            now = now.max(due + Duration::from_micros(u64::from(seen % 7) * 300));
            let pkt = s.poll_transmit(now, &mut src).expect("slot due");
            assert!(
                s.poll_transmit(now, &mut src).is_none(),
                "one packet per slot"
            );
            let r = RtpReader::new(&pkt).unwrap();
            assert_eq!(r.ssrc(), 0xABCD);
            assert_eq!(r.payload_type(), 0);
            assert_eq!(r.payload().len(), 160);
            assert_eq!(r.mark(), seen == 0);
            let seq = u16::from(r.sequence_number());
            if let Some((pseq, pts)) = prev {
                assert_eq!(seq, pseq.wrapping_add(1));
                assert_eq!(r.timestamp(), pts.wrapping_add(160));
            } else {
                assert_eq!(seq, 65_000);
                assert_eq!(r.timestamp(), first_ts);
            }
            prev = Some((seq, r.timestamp()));
            seen += 1;
        }
        assert_eq!(s.next_send_at(), t0 + Duration::from_secs(600));
        assert_eq!(prev.unwrap().1, first_ts.wrapping_add(160 * 29_999));
        assert!(prev.unwrap().1 < first_ts, "timestamp wrapped");
        assert_eq!(s.stats().packets, 30_000);
        assert_eq!(s.stats().octets, 30_000 * 160);
    }

    #[test]
    fn nothing_before_the_slot_is_due() {
        let t0 = Instant::now();
        let mut s = RtpSender::with_initial(1, 0, 0, 8, 8000, PT, t0 + PT);
        assert!(s.poll_transmit(t0, &mut Counter(0)).is_none());
        assert!(s.poll_transmit(t0 + PT, &mut Counter(0)).is_some());
    }

    #[test]
    fn silence_gap_advances_timestamp_and_marks_next_packet() {
        let t0 = Instant::now();
        let mut s = RtpSender::with_initial(1, 100, 1000, 0, 8000, PT, t0);
        let mut src = Spurts {
            n: 0,
            talk: 3,
            silent: 2,
        };
        let mut pkts = Vec::new();
        for i in 0..10u32 {
            if let Some(p) = s.poll_transmit(t0 + PT * i, &mut src) {
                let r = RtpReader::new(&p).unwrap();
                pkts.push((u16::from(r.sequence_number()), r.timestamp(), r.mark()));
            }
        }
        assert_eq!(
            pkts,
            vec![
                (100, 1000, true),
                (101, 1160, false),
                (102, 1320, false),
                (103, 1800, true),
                (104, 1960, false),
                (105, 2120, false),
            ]
        );
    }

    #[test]
    fn late_poll_sends_due_slots_then_skips_when_far_behind() {
        let t0 = Instant::now();
        let mut s = RtpSender::with_initial(1, 0, 0, 0, 8000, PT, t0);
        let mut src = Counter(0);
        // 60 ms late: slots 0..=3 are due and all sent (catch-up within the limit).
        let now = t0 + Duration::from_millis(60);
        let mut n = 0;
        while s.poll_transmit(now, &mut src).is_some() {
            n += 1;
        }
        assert_eq!(n, 4);
        // A 2-second stall: the backlog is dropped, one packet for the current slot, marked.
        let now = t0 + Duration::from_millis(2070);
        let p = s.poll_transmit(now, &mut src).unwrap();
        let r = RtpReader::new(&p).unwrap();
        assert!(r.mark());
        assert_eq!(r.timestamp(), 103 * 160);
        assert!(s.poll_transmit(now, &mut src).is_none());
        assert_eq!(s.next_send_at(), t0 + PT * 104);
    }

    #[test]
    fn payload_type_change_and_mark_next() {
        let t0 = Instant::now();
        let mut s = RtpSender::with_initial(1, 0, 0, 0, 8000, PT, t0);
        let mut src = Counter(0);
        s.poll_transmit(t0, &mut src).unwrap();
        s.set_payload_type(8);
        let p = s.poll_transmit(t0 + PT, &mut src).unwrap();
        let r = RtpReader::new(&p).unwrap();
        assert_eq!((r.payload_type(), r.mark()), (8, true));
        let p = s.poll_transmit(t0 + PT * 2, &mut src).unwrap();
        assert!(!RtpReader::new(&p).unwrap().mark());
        assert_eq!(s.timestamp_at(t0 + PT * 3), 3 * 160);
    }

    #[test]
    fn random_senders_differ() {
        let t0 = Instant::now();
        let a = RtpSender::new(0, 8000, PT, t0);
        let b = RtpSender::new(0, 8000, PT, t0);
        assert_ne!(
            (a.ssrc(), a.next_sequence(), a.next_timestamp()),
            (b.ssrc(), b.next_sequence(), b.next_timestamp())
        );
        assert_eq!(a.samples_per_frame(), 160);
    }
}
