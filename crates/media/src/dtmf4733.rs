//! RFC 4733 telephone events (DTMF over RTP): a receiver that turns packets into exactly one
//! digit per key press, and a sender for passing digits on.
//!
//! An event is identified by its RTP timestamp (the instant the key went down); every packet of
//! one press repeats it, updates grow the duration, and the end packet (E bit) is sent three
//! times. The receiver reports a digit on the first packet it sees of an event, whichever one
//! that is, so a lost start packet still yields the digit, and ignores everything else about
//! the same event (updates, redundant ends, packets that arrive late).
//!
//! One case needs more: SIPp's `play_pcap_audio` replays a capture unchanged, so pressing the
//! same digit twice sends two events with the same SSRC, timestamp *and* sequence numbers. RFC
//! 4733 §2.5.1 lets a receiver tell a new event from the old one once the old one has ended:
//! after an end was seen, a non-end packet with the marker bit, a non-end packet whose sequence
//! number is past the end's, or any packet more than [`REPEAT_GAP`] after the event's last packet
//! starts a new press.

use std::time::{Duration, Instant};

/// After an event ended, a packet with the same timestamp arriving this long after the event's
/// last packet is a new press (redundant ends and late packets come within a few packet times).
pub const REPEAT_GAP: Duration = Duration::from_millis(300);
/// How many recent events are remembered, so that late packets of an older event arriving after
/// a newer one started are not taken for new presses.
const HISTORY: usize = 8;
/// A non-end packet this many sequence numbers behind the end packet still belongs to the event.
const LATE_WINDOW: u16 = 64;

/// A DTMF key (RFC 4733 events 0–15).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Digit {
    /// 0–9.
    Num(u8),
    /// `*` (event 10).
    Star,
    /// `#` (event 11).
    Pound,
    /// A–D (events 12–15).
    Letter(char),
}

impl Digit {
    /// The digit for an RFC 4733 event code, if it is a DTMF key.
    pub fn from_event(code: u8) -> Option<Digit> {
        match code {
            0..=9 => Some(Digit::Num(code)),
            10 => Some(Digit::Star),
            11 => Some(Digit::Pound),
            12..=15 => Some(Digit::Letter(char::from(b'A' + code - 12))),
            _ => None,
        }
    }

    /// The RFC 4733 event code.
    pub fn event_code(self) -> u8 {
        match self {
            Digit::Num(n) => n.min(9),
            Digit::Star => 10,
            Digit::Pound => 11,
            Digit::Letter(c) => match c.to_ascii_uppercase() {
                'A' => 12,
                'B' => 13,
                'C' => 14,
                _ => 15,
            },
        }
    }

    /// The key as a character: `0`–`9`, `*`, `#`, `A`–`D`.
    pub fn as_char(self) -> char {
        match self {
            Digit::Num(n) => char::from(b'0' + n.min(9)),
            Digit::Star => '*',
            Digit::Pound => '#',
            Digit::Letter(c) => c.to_ascii_uppercase(),
        }
    }

    /// The digit for a key character (as in SIP INFO bodies).
    pub fn from_char(c: char) -> Option<Digit> {
        match c {
            '0'..='9' => Some(Digit::Num(c as u8 - b'0')),
            '*' => Some(Digit::Star),
            '#' => Some(Digit::Pound),
            'A'..='D' | 'a'..='d' => Some(Digit::Letter(c.to_ascii_uppercase())),
            _ => None,
        }
    }
}

/// A parsed telephone-event payload (RFC 4733 §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventPayload {
    /// Event code.
    pub event: u8,
    /// E bit: this is an end packet.
    pub end: bool,
    /// Volume in -dBm0 (0–63).
    pub volume: u8,
    /// Duration so far, in timestamp units.
    pub duration: u16,
}

impl EventPayload {
    /// Parses the first four bytes of a telephone-event payload; `None` if shorter.
    pub fn parse(payload: &[u8]) -> Option<EventPayload> {
        let b = payload.get(..4)?;
        Some(EventPayload {
            event: b[0],
            end: b[1] & 0x80 != 0,
            volume: b[1] & 0x3F,
            duration: u16::from_be_bytes([b[2], b[3]]),
        })
    }

    /// The four payload bytes.
    pub fn to_bytes(self) -> [u8; 4] {
        let d = self.duration.to_be_bytes();
        [
            self.event,
            (u8::from(self.end) << 7) | (self.volume & 0x3F),
            d[0],
            d[1],
        ]
    }
}

/// The RTP header fields of a telephone-event packet that the receiver needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventPacket {
    /// Sender SSRC.
    pub ssrc: u32,
    /// RTP sequence number.
    pub sequence: u16,
    /// RTP timestamp: identifies the event.
    pub timestamp: u32,
    /// Marker bit: set on the first packet of an event.
    pub marker: bool,
}

#[derive(Debug, Clone, Copy)]
struct Seen {
    ssrc: u32,
    timestamp: u32,
    event: u8,
    ended: bool,
    end_seq: u16,
    duration: u16,
    last_at: Instant,
}

/// Turns received telephone-event packets into digits, one per key press.
#[derive(Debug, Default)]
pub struct DtmfReceiver {
    /// Most recent event last.
    history: Vec<Seen>,
}

impl DtmfReceiver {
    /// An empty receiver.
    pub fn new() -> Self {
        Self::default()
    }

    /// Handles one telephone-event packet that arrived at `now`; returns the digit when this
    /// packet is the first seen of a new key press. Malformed payloads and non-DTMF events
    /// (flash, tones) return `None`.
    pub fn handle(&mut self, now: Instant, header: EventPacket, payload: &[u8]) -> Option<Digit> {
        let ev = EventPayload::parse(payload)?;
        let digit = Digit::from_event(ev.event)?;
        let found = self
            .history
            .iter()
            .rposition(|s| s.ssrc == header.ssrc && s.timestamp == header.timestamp);
        if let Some(i) = found {
            let is_last = i + 1 == self.history.len();
            let s = self.history.get_mut(i)?;
            let repeat = s.ended
                && (now.saturating_duration_since(s.last_at) >= REPEAT_GAP
                    || (!ev.end
                        && is_last
                        && header.marker
                        && !is_late(header.sequence, s.end_seq))
                    || (!ev.end && is_last && is_after(header.sequence, s.end_seq)));
            if !repeat {
                s.last_at = now;
                s.duration = s.duration.max(ev.duration);
                if ev.end && !s.ended {
                    s.ended = true;
                    s.end_seq = header.sequence;
                }
                return None;
            }
            self.history.remove(i);
        } else if let Some(last) = self.history.last_mut() {
            // RFC 4733 §2.5.1.5: an event longer than the 16-bit duration continues in a new
            // segment whose timestamp is the previous one plus its duration, without a marker.
            let continues = last.ssrc == header.ssrc
                && !last.ended
                && !header.marker
                && last.event == ev.event
                && header.timestamp.wrapping_sub(last.timestamp) == u32::from(last.duration)
                && last.duration > 0;
            if continues {
                last.timestamp = header.timestamp;
                last.duration = ev.duration;
                last.last_at = now;
                if ev.end {
                    last.ended = true;
                    last.end_seq = header.sequence;
                }
                return None;
            }
        }
        if self.history.len() == HISTORY {
            self.history.remove(0);
        }
        self.history.push(Seen {
            ssrc: header.ssrc,
            timestamp: header.timestamp,
            event: ev.event,
            ended: ev.end,
            end_seq: header.sequence,
            duration: ev.duration,
            last_at: now,
        });
        Some(digit)
    }

    /// The digit currently held down (the latest event has not ended), with its duration so far
    /// in timestamp units.
    pub fn current(&self) -> Option<(Digit, u16)> {
        let s = self.history.last().filter(|s| !s.ended)?;
        Some((Digit::from_event(s.event)?, s.duration))
    }
}

/// `seq` is a little before `end` (a late packet of the same event).
fn is_late(seq: u16, end: u16) -> bool {
    let back = end.wrapping_sub(seq);
    back > 0 && back <= LATE_WINDOW
}

/// `seq` comes after `end` in sequence order.
fn is_after(seq: u16, end: u16) -> bool {
    let fwd = seq.wrapping_sub(end);
    fwd > 0 && fwd < 0x8000
}

/// One telephone-event packet to send: the caller puts it in its RTP stream with the event
/// payload type, its next sequence number, this timestamp and marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutgoingEvent {
    /// RTP timestamp (the event's start, the same in every packet of the event).
    pub timestamp: u32,
    /// Marker bit (first packet only).
    pub marker: bool,
    /// The payload.
    pub payload: EventPayload,
}

#[derive(Debug, Clone, Copy)]
struct Active {
    digit: Digit,
    started: Instant,
    timestamp: u32,
    duration: Duration,
    next_at: Instant,
    sent: u32,
    ends_sent: u8,
}

/// Sends one RFC 4733 event at a time: a start packet with the marker, an update every
/// [`DtmfSender::UPDATE_INTERVAL`], then three end packets [`DtmfSender::END_SPACING`] apart.
#[derive(Debug)]
pub struct DtmfSender {
    clock_rate: u32,
    volume: u8,
    active: Option<Active>,
}

impl DtmfSender {
    /// Time between updates of a held key (RFC 4733 §2.5.1.2 suggests 50 ms).
    pub const UPDATE_INTERVAL: Duration = Duration::from_millis(50);
    /// Time between the redundant end packets.
    pub const END_SPACING: Duration = Duration::from_millis(20);
    /// How many end packets are sent.
    pub const END_PACKETS: u8 = 3;

    /// A sender for a stream with this clock rate, sending at a volume of -10 dBm0.
    pub fn new(clock_rate: u32) -> Self {
        DtmfSender {
            clock_rate,
            volume: 10,
            active: None,
        }
    }

    /// Whether an event is being sent (audio should pause meanwhile).
    pub fn is_active(&self) -> bool {
        self.active.is_some()
    }

    /// Starts sending `digit` for `duration` at `now`; `timestamp` is the RTP timestamp of the
    /// stream at `now`. Returns false (and does nothing) while another event is being sent.
    pub fn start(
        &mut self,
        now: Instant,
        digit: Digit,
        duration: Duration,
        timestamp: u32,
    ) -> bool {
        if self.active.is_some() {
            return false;
        }
        self.active = Some(Active {
            digit,
            started: now,
            timestamp,
            duration,
            next_at: now,
            sent: 0,
            ends_sent: 0,
        });
        true
    }

    /// When the next packet is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.active.map(|a| a.next_at)
    }

    fn ticks(&self, d: Duration) -> u16 {
        let t = d.as_micros() * u128::from(self.clock_rate) / 1_000_000;
        u16::try_from(t).unwrap_or(u16::MAX)
    }

    /// The next packet if one is due at `now`.
    pub fn poll(&mut self, now: Instant) -> Option<OutgoingEvent> {
        let a = self.active?;
        if now < a.next_at {
            return None;
        }
        let elapsed = a.next_at.saturating_duration_since(a.started);
        let code = a.digit.event_code();
        let mut next = a;
        let out = if elapsed < a.duration && a.ends_sent == 0 {
            next.sent += 1;
            next.next_at = a.started + Self::UPDATE_INTERVAL * next.sent;
            if next.next_at > a.started + a.duration {
                next.next_at = a.started + a.duration;
            }
            OutgoingEvent {
                timestamp: a.timestamp,
                marker: a.sent == 0,
                payload: EventPayload {
                    event: code,
                    end: false,
                    volume: self.volume,
                    duration: self.ticks(elapsed),
                },
            }
        } else {
            next.ends_sent += 1;
            next.next_at = a.next_at + Self::END_SPACING;
            OutgoingEvent {
                timestamp: a.timestamp,
                marker: false,
                payload: EventPayload {
                    event: code,
                    end: true,
                    volume: self.volume,
                    duration: self.ticks(a.duration),
                },
            }
        };
        self.active = if next.ends_sent >= Self::END_PACKETS {
            None
        } else {
            Some(next)
        };
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SSRC: u32 = 0x0E05_384E;

    fn hdr(seq: u16, ts: u32, marker: bool) -> EventPacket {
        EventPacket {
            ssrc: SSRC,
            sequence: seq,
            timestamp: ts,
            marker,
        }
    }

    fn pl(event: u8, end: bool, duration: u16) -> [u8; 4] {
        EventPayload {
            event,
            end,
            volume: 10,
            duration,
        }
        .to_bytes()
    }

    /// A complete press as a sender emits it: start (marker), updates every 20 ms, three ends.
    fn press(seq0: u16, ts: u32, event: u8, updates: u16) -> Vec<(EventPacket, [u8; 4])> {
        let mut v = vec![(hdr(seq0, ts, true), pl(event, false, 0))];
        for i in 1..=updates {
            v.push((hdr(seq0 + i, ts, false), pl(event, false, i * 160)));
        }
        for k in 0..3 {
            v.push((
                hdr(seq0 + updates + 1 + k, ts, false),
                pl(event, true, (updates + 1) * 160),
            ));
        }
        v
    }

    fn feed(rx: &mut DtmfReceiver, t: &mut Instant, pkts: &[(EventPacket, [u8; 4])]) -> String {
        let mut s = String::new();
        for (h, p) in pkts {
            *t += Duration::from_millis(20);
            if let Some(d) = rx.handle(*t, *h, p) {
                s.push(d.as_char());
            }
        }
        s
    }

    #[test]
    fn redundant_ends_count_once() {
        let mut rx = DtmfReceiver::new();
        let mut t = Instant::now();
        assert_eq!(feed(&mut rx, &mut t, &press(100, 8000, 5, 4)), "5");
        assert_eq!(rx.current(), None);
    }

    #[test]
    fn consecutive_digits_including_the_same_key() {
        let mut rx = DtmfReceiver::new();
        let mut t = Instant::now();
        let mut all = press(100, 8000, 1, 3);
        all.extend(press(110, 16000, 1, 3));
        all.extend(press(120, 24000, 11, 3));
        all.extend(press(130, 1000, 10, 3)); // a timestamp going backwards is still new
        assert_eq!(feed(&mut rx, &mut t, &all), "11#*");
    }

    #[test]
    fn lost_start_still_yields_one_digit() {
        let mut rx = DtmfReceiver::new();
        let mut t = Instant::now();
        let p = press(100, 8000, 7, 4);
        assert_eq!(feed(&mut rx, &mut t, &p[2..]), "7");
        // Only the end packets made it.
        let p = press(200, 16000, 8, 4);
        assert_eq!(feed(&mut rx, &mut t, &p[5..]), "8");
        // Only one end packet.
        let p = press(300, 24000, 9, 4);
        assert_eq!(feed(&mut rx, &mut t, &p[6..]), "9");
    }

    #[test]
    fn reordering_and_late_packets_do_not_add_digits() {
        let mut rx = DtmfReceiver::new();
        let mut t = Instant::now();
        let p = press(100, 8000, 3, 4);
        // The start arrives after the first end; an update arrives after all ends.
        let order = [1, 2, 5, 0, 3, 6, 7, 4];
        let shuffled: Vec<_> = order.iter().map(|&i| p[i]).collect();
        assert_eq!(feed(&mut rx, &mut t, &shuffled), "3");
        // A late packet of digit 3 after digit 4 began does not count again.
        let q = press(110, 16000, 4, 2);
        let mut mixed = vec![q[0], p[2], q[1]];
        mixed.extend_from_slice(&q[2..]);
        assert_eq!(feed(&mut rx, &mut t, &mixed), "4");
    }

    #[test]
    fn long_press_is_one_digit_with_growing_duration() {
        let mut rx = DtmfReceiver::new();
        let mut t = Instant::now();
        let p = press(100, 8000, 0, 150); // 3 seconds
        assert_eq!(feed(&mut rx, &mut t, &p[..50]), "0");
        assert_eq!(rx.current(), Some((Digit::Num(0), 49 * 160)));
        assert_eq!(feed(&mut rx, &mut t, &p[50..]), "");
        assert_eq!(rx.current(), None);
    }

    #[test]
    fn event_longer_than_the_duration_field_continues_in_segments() {
        let mut rx = DtmfReceiver::new();
        let t = Instant::now();
        assert_eq!(
            rx.handle(t, hdr(1, 1000, true), &pl(2, false, 0)),
            Some(Digit::Num(2))
        );
        assert_eq!(
            rx.handle(t, hdr(2, 1000, false), &pl(2, false, 65535)),
            None
        );
        // Next segment: timestamp + 65535, no marker.
        assert_eq!(
            rx.handle(t, hdr(3, 1000 + 65535, false), &pl(2, false, 800)),
            None
        );
        assert_eq!(
            rx.handle(t, hdr(4, 1000 + 65535, false), &pl(2, true, 1600)),
            None
        );
        assert_eq!(rx.current(), None);
    }

    /// SIPp replays the same capture twice: same SSRC, timestamp and sequence numbers.
    #[test]
    fn same_timestamp_replayed_after_end_counts_twice() {
        let mut rx = DtmfReceiver::new();
        let mut t = Instant::now();
        let p = press(7984, 13280, 1, 6);
        assert_eq!(feed(&mut rx, &mut t, &p), "1");
        t += Duration::from_secs(2);
        assert_eq!(feed(&mut rx, &mut t, &p), "1");
        // Replayed right away (no pause) with the very same sequence numbers, the start packet
        // looks exactly like a late start of the previous press: one digit, by design.
        assert_eq!(feed(&mut rx, &mut t, &p), "");
        // A sender that reuses the timestamp but moves its sequence numbers on: the marker on a
        // start packet after the end tells at once.
        assert_eq!(feed(&mut rx, &mut t, &press(8100, 13280, 1, 6)), "1");
        // A replay whose start packet is lost, after a pause: the time gap tells.
        t += Duration::from_secs(1);
        assert_eq!(feed(&mut rx, &mut t, &p[1..]), "1");
        // The end packets repeated closely are not a new press.
        assert_eq!(feed(&mut rx, &mut t, &p[7..]), "");
    }

    #[test]
    fn non_end_packet_after_the_end_in_sequence_is_a_new_press() {
        let mut rx = DtmfReceiver::new();
        let mut t = Instant::now();
        let p = press(10, 500, 6, 2);
        assert_eq!(feed(&mut rx, &mut t, &p), "6");
        t += Duration::from_millis(20);
        assert_eq!(
            rx.handle(t, hdr(20, 500, false), &pl(6, false, 320)),
            Some(Digit::Num(6))
        );
    }

    #[test]
    fn malformed_and_non_dtmf_events_are_ignored() {
        let mut rx = DtmfReceiver::new();
        let t = Instant::now();
        assert_eq!(rx.handle(t, hdr(1, 1, true), &[1, 2]), None);
        assert_eq!(rx.handle(t, hdr(2, 2, true), &pl(16, false, 0)), None); // flash
        assert_eq!(
            rx.handle(t, hdr(3, 3, true), &pl(12, false, 0)),
            Some(Digit::Letter('A'))
        );
    }

    #[test]
    fn digit_conversions() {
        for code in 0..16u8 {
            let d = Digit::from_event(code).unwrap();
            assert_eq!(d.event_code(), code);
            assert_eq!(Digit::from_char(d.as_char()), Some(d));
        }
        assert_eq!(Digit::from_char('x'), None);
        assert_eq!(Digit::from_char('d'), Some(Digit::Letter('D')));
    }

    #[test]
    fn sender_start_updates_and_three_ends() {
        let t0 = Instant::now();
        let mut tx = DtmfSender::new(8000);
        assert!(tx.start(t0, Digit::Pound, Duration::from_millis(120), 4242));
        assert!(!tx.start(t0, Digit::Num(1), Duration::from_millis(100), 0));
        let mut out = Vec::new();
        let mut now = t0;
        while let Some(at) = tx.poll_timeout() {
            now = now.max(at);
            while let Some(p) = tx.poll(now) {
                out.push((now - t0, p));
            }
        }
        let summary: Vec<_> = out
            .iter()
            .map(|(at, p)| (at.as_millis(), p.marker, p.payload.end, p.payload.duration))
            .collect();
        assert_eq!(
            summary,
            vec![
                (0, true, false, 0),
                (50, false, false, 400),
                (100, false, false, 800),
                (120, false, true, 960),
                (140, false, true, 960),
                (160, false, true, 960),
            ]
        );
        assert!(out
            .iter()
            .all(|(_, p)| p.timestamp == 4242 && p.payload.event == 11));
        assert!(!tx.is_active());
        // What we send, our receiver reads as exactly one digit.
        let mut rx = DtmfReceiver::new();
        let digits: Vec<_> = out
            .iter()
            .enumerate()
            .filter_map(|(i, (at, p))| {
                rx.handle(
                    t0 + *at,
                    hdr(i as u16, p.timestamp, p.marker),
                    &p.payload.to_bytes(),
                )
            })
            .collect();
        assert_eq!(digits, vec![Digit::Pound]);
    }
}
