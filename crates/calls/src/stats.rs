//! Live figures the admin API and metrics read, kept by call control and the media edge.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sip::registrar::Registrar;

use crate::{live, DtmfVia};

/// Live figures the admin API and metrics read.
#[derive(Debug, Default)]
pub struct Stats {
    pub ready: AtomicBool,
    pub draining: AtomicBool,
    pub calls: AtomicU64,
    pub calls_total: AtomicU64,
    pub calls_answered: AtomicU64,
    pub calls_cancelled: AtomicU64,
    pub registrations: AtomicU64,
    /// Answered calls walking their line's voice menu now (gauge): from the answer until
    /// they enter a queue or end.
    pub calls_in_ivr: AtomicU64,
    /// RTP packets sent on every leg (added by the media thread once per 1 ms sub-tick).
    pub rtp_packets_sent: AtomicU64,
    /// Datagrams that reached a leg's RTP port (added by the media thread).
    pub rtp_packets_received: AtomicU64,
    /// Packets the legs' receivers counted as lost (RFC 3550 A.3, per remote source; a
    /// packet counted lost that turns up late stays counted).
    pub rtp_packets_lost: AtomicU64,
    /// Calls hung up because no RTP arrived for the configured timeout.
    pub rtp_timeouts: AtomicU64,
    /// RTP legs the media thread serves now (gauge; a closed leg until its RTCP BYE is out).
    pub rtp_legs_active: AtomicU64,
    /// DTMF digits received, by [`DtmfVia`] (in the order of [`DTMF_KINDS`]).
    dtmf: [AtomicU64; 3],
    /// SIP responses sent, by [`SIP_RESPONSE_CODES`]; then one "other" slot per class 1xx–6xx.
    responses: [AtomicU64; SIP_RESPONSE_CODES.len() + 6],
    requests: Mutex<Vec<(String, u64)>>,
    contacts: Mutex<Vec<RegisteredContact>>,
    /// Callers waiting in each queue, by the time they entered it (see [`QueueWait`]).
    queues: Mutex<Vec<(String, Waiters)>>,
    /// Operators ringing, on a call or in wrap-up in the ACD now.
    pub activity: live::ActivityBoard,
    /// Call timers pending in call control (gauge): each call's answer, session expiry and
    /// maximum duration, menu and waiting timeouts. Falls back to zero when no call is up.
    pub call_timers: AtomicU64,
    /// New INVITEs answered 503 because the daemon was behind, by [`ShedReason::ALL`].
    invites_shed: [AtomicU64; 4],
    /// The media thread's average lateness on its 1 ms grid, in microseconds (the media
    /// edge stores it; the overload check reads it through [`Stats::media_late`]).
    pub media_late_us: AtomicU64,
}

/// Why a new INVITE was shed by the gateway's overload check (a `/metrics` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShedReason {
    /// It waited longer than `max_queue_delay`.
    QueueDelay,
    /// Too many waited before it.
    QueueDepth,
    /// The media thread is late.
    MediaLate,
    /// The new calls queue was full: answered by the receive task.
    QueueFull,
}

impl ShedReason {
    /// Every reason, in the order of [`Stats::invites_shed`].
    pub const ALL: [ShedReason; 4] = [
        ShedReason::QueueDelay,
        ShedReason::QueueDepth,
        ShedReason::MediaLate,
        ShedReason::QueueFull,
    ];

    /// The `reason` label.
    pub fn as_str(self) -> &'static str {
        match self {
            ShedReason::QueueDelay => "queue_delay",
            ShedReason::QueueDepth => "queue_depth",
            ShedReason::MediaLate => "media_late",
            ShedReason::QueueFull => "queue_full",
        }
    }
}

/// The calls waiting in one queue: when each entered it, and its Call-ID.
type Waiters = Vec<(Instant, Arc<str>)>;

/// The DTMF kinds [`Stats::dtmf_digits`] reports, in its order.
pub const DTMF_KINDS: [DtmfVia; 3] = [DtmfVia::Rfc4733, DtmfVia::Info, DtmfVia::Inband];

/// Status codes [`Stats::responses`] counts one by one; any other is counted as `other` in
/// its class.
pub const SIP_RESPONSE_CODES: [u16; 26] = [
    100, 180, 183, 200, 400, 401, 403, 404, 405, 407, 408, 415, 420, 422, 480, 481, 482, 483, 486,
    487, 488, 491, 500, 501, 503, 603,
];

/// SIP responses sent with one status code (or the uncommon codes of one class).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseCount {
    /// `1xx` … `6xx`.
    pub class: &'static str,
    /// The code, or `None` for the class's codes not in [`SIP_RESPONSE_CODES`].
    pub code: Option<u16>,
    pub count: u64,
}

/// Callers waiting in one queue now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueWait {
    pub queue: String,
    /// Callers in the queue now.
    pub waiting: u64,
    /// When the longest-waiting of them entered it (`None` when nobody waits).
    pub oldest: Option<Instant>,
}

impl QueueWait {
    /// How long the longest-waiting caller has waited at `now` (zero when nobody waits).
    pub fn longest_wait(&self, now: Instant) -> Duration {
        self.oldest
            .map(|t| now.saturating_duration_since(t))
            .unwrap_or_default()
    }
}

const CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "6xx"];

/// One registered contact of an operator, as the registrar holds it now: a read-only copy
/// the core publishes after every REGISTER and expiry, for the admin API.
#[derive(Debug, Clone, PartialEq)]
pub struct RegisteredContact {
    /// The operator's login (the registered user).
    pub operator: String,
    /// The contact URI the phone registered.
    pub contact: String,
    /// Where the REGISTER came from (the address that reaches the phone).
    pub source: SocketAddr,
    /// `UDP` or `TCP`.
    pub transport: &'static str,
    /// When the binding runs out unless refreshed.
    pub expires_at: Instant,
}

impl Stats {
    /// One new INVITE shed with 503 (the gateway's overload check).
    pub fn count_shed(&self, reason: ShedReason) {
        if let Some(n) = self.invites_shed.get(reason as usize) {
            n.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// New INVITEs shed with 503 since start, by reason.
    pub fn invites_shed(&self) -> [(ShedReason, u64); 4] {
        ShedReason::ALL.map(|r| {
            (
                r,
                self.invites_shed
                    .get(r as usize)
                    .map_or(0, |n| n.load(Ordering::Relaxed)),
            )
        })
    }

    /// How late the media thread is on its 1 ms grid (a moving average; zero without legs).
    pub fn media_late(&self) -> Duration {
        Duration::from_micros(self.media_late_us.load(Ordering::Relaxed))
    }

    /// One DTMF digit received (the call control counts every digit that reaches a call,
    /// kept or not).
    pub fn count_digit(&self, via: DtmfVia) {
        if let Some(i) = DTMF_KINDS.iter().position(|k| *k == via) {
            if let Some(n) = self.dtmf.get(i) {
                n.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// DTMF digits received so far, by kind.
    pub fn dtmf_digits(&self) -> [(DtmfVia, u64); 3] {
        let mut out = DTMF_KINDS.map(|k| (k, 0));
        for ((_, n), a) in out.iter_mut().zip(&self.dtmf) {
            *n = a.load(Ordering::Relaxed);
        }
        out
    }

    /// Counts one outgoing SIP message when it is a response (`SIP/2.0 NNN …`); the call
    /// control calls it for everything it sends.
    pub fn count_sent(&self, bytes: &[u8]) {
        if bytes.get(..8) != Some(b"SIP/2.0 ") {
            return;
        }
        let Some(&[a, b, c]) = bytes.get(8..11) else {
            return;
        };
        if ![a, b, c].iter().all(u8::is_ascii_digit) {
            return;
        }
        let code = u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0');
        let slot = match SIP_RESPONSE_CODES.binary_search(&code) {
            Ok(i) => i,
            Err(_) if (1..=6).contains(&(code / 100)) => {
                SIP_RESPONSE_CODES.len() + usize::from(code / 100) - 1
            }
            Err(_) => return,
        };
        if let Some(n) = self.responses.get(slot) {
            n.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// SIP responses sent (retransmissions included), for every code counted one by one
    /// and every class's `other`, zeros included.
    pub fn responses(&self) -> Vec<ResponseCount> {
        let codes = SIP_RESPONSE_CODES.iter().map(|&c| (Some(c), c / 100));
        let others = (1..=6u16).map(|class| (None, class));
        codes
            .chain(others)
            .zip(&self.responses)
            .map(|((code, class), n)| ResponseCount {
                class: CLASSES
                    .get(usize::from(class).saturating_sub(1))
                    .copied()
                    .unwrap_or("other"),
                code,
                count: n.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// A call entered `queue` at `since` (the voice menu's queue node; the ACD later).
    pub fn queue_enter(&self, queue: &str, call_id: &str, since: Instant) {
        let mut qs = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        if !qs.iter().any(|(q, _)| q == queue) {
            qs.push((queue.to_string(), Vec::new()));
        }
        if let Some((_, w)) = qs.iter_mut().find(|(q, _)| q == queue) {
            w.push((since, Arc::from(call_id)));
        }
    }

    /// A call left `queue` (it ended, or, later, an operator took it).
    pub fn queue_leave(&self, queue: &str, call_id: &str) {
        let mut qs = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, w)) = qs.iter_mut().find(|(q, _)| q == queue) {
            w.retain(|(_, c)| &**c != call_id);
        }
    }

    /// Every queue a call has entered since the start, with its callers waiting now.
    pub fn queue_waits(&self) -> Vec<QueueWait> {
        let qs = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        qs.iter()
            .map(|(q, w)| QueueWait {
                queue: q.clone(),
                waiting: w.len() as u64,
                oldest: w.iter().map(|(t, _)| *t).min(),
            })
            .collect()
    }

    pub fn count_request(&self, method: &str) {
        if let Ok(mut v) = self.requests.lock() {
            if let Some((_, n)) = v.iter_mut().find(|(m, _)| m == method) {
                *n += 1;
            } else if v.len() < 64 {
                v.push((method.to_string(), 1));
            }
        }
    }
    /// Replaces the contact snapshot with the registrar's bindings and updates the
    /// `registrations` count.
    pub fn publish_registrations(&self, registrar: &Registrar) {
        let contacts: Vec<RegisteredContact> = registrar
            .users()
            .into_iter()
            .flat_map(|(user, bindings)| {
                bindings.iter().map(move |b| RegisteredContact {
                    operator: user.to_string(),
                    contact: b.uri.to_string(),
                    source: b.source.addr,
                    transport: b.source.transport.as_str(),
                    expires_at: b.expires_at,
                })
            })
            .collect();
        self.publish_contacts(contacts);
    }

    /// Replaces the contact snapshot (and the `registrations` count) with `contacts`.
    pub fn publish_contacts(&self, contacts: Vec<RegisteredContact>) {
        self.registrations
            .store(contacts.len() as u64, Ordering::Relaxed);
        if let Ok(mut c) = self.contacts.lock() {
            *c = contacts;
        }
    }

    /// The operators' registered contacts as of the last REGISTER or expiry, by operator.
    pub fn registered_contacts(&self) -> Vec<RegisteredContact> {
        self.contacts.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// SIP requests received, by method.
    pub fn requests(&self) -> Vec<(String, u64)> {
        self.requests.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::{ResponseCount, Stats};
    use crate::{Caller, DtmfVia};
    use std::time::{Duration, Instant};

    fn count(s: &Stats, class: &str, code: Option<u16>) -> u64 {
        s.responses()
            .into_iter()
            .find(|r| r.class == class && r.code == code)
            .map(|r| r.count)
            .unwrap()
    }

    #[test]
    fn responses_are_counted_by_code_and_class() {
        let s = Stats::default();
        s.count_sent(b"SIP/2.0 200 OK\r\nVia: x\r\n\r\n");
        s.count_sent(b"SIP/2.0 200 OK\r\n\r\n");
        s.count_sent(b"SIP/2.0 100 Trying\r\n\r\n");
        s.count_sent(b"SIP/2.0 486 Busy Here\r\n\r\n");
        s.count_sent(b"SIP/2.0 499 Odd\r\n\r\n");
        s.count_sent(b"SIP/2.0 699 Odd\r\n\r\n");
        // requests, garbage and codes outside 1xx-6xx are not responses
        s.count_sent(b"BYE sip:a@b SIP/2.0\r\n\r\n");
        s.count_sent(b"SIP/2.0 2x0 OK\r\n\r\n");
        s.count_sent(b"SIP/2.0 20");
        s.count_sent(b"SIP/2.0 700 Nope\r\n\r\n");
        s.count_sent(b"");
        assert_eq!(count(&s, "2xx", Some(200)), 2);
        assert_eq!(count(&s, "1xx", Some(100)), 1);
        assert_eq!(count(&s, "4xx", Some(486)), 1);
        assert_eq!(count(&s, "4xx", None), 1);
        assert_eq!(count(&s, "6xx", None), 1);
        let all = s.responses();
        assert_eq!(all.iter().map(|r| r.count).sum::<u64>(), 6);
        // every code sits in its own class, and each class has one `other`
        assert!(all.iter().all(|r: &ResponseCount| r.code.is_none_or(|c| r
            .class
            .starts_with(char::from_digit(u32::from(c / 100), 10).unwrap()))));
        assert_eq!(all.iter().filter(|r| r.code.is_none()).count(), 6);
    }

    #[test]
    fn digits_and_queue_waits_are_counted() {
        let s = Stats::default();
        s.count_digit(DtmfVia::Info);
        s.count_digit(DtmfVia::Inband);
        s.count_digit(DtmfVia::Inband);
        assert_eq!(
            s.dtmf_digits(),
            [
                (DtmfVia::Rfc4733, 0),
                (DtmfVia::Info, 1),
                (DtmfVia::Inband, 2)
            ]
        );
        let t0 = Instant::now();
        s.queue_enter("benefits", "c1", t0);
        s.queue_enter("benefits", "c2", t0 + Duration::from_secs(5));
        s.queue_enter("general", "c3", t0 + Duration::from_secs(1));
        let w = s.queue_waits();
        assert_eq!(w.len(), 2);
        assert_eq!((w[0].queue.as_str(), w[0].waiting), ("benefits", 2));
        assert_eq!(
            w[0].longest_wait(t0 + Duration::from_secs(10)),
            Duration::from_secs(10)
        );
        s.queue_leave("benefits", "c1");
        s.queue_leave("general", "c3");
        let w = s.queue_waits();
        assert_eq!(w[0].waiting, 1);
        assert_eq!(
            w[0].longest_wait(t0 + Duration::from_secs(10)),
            Duration::from_secs(5)
        );
        // an empty queue stays listed, with no wait
        assert_eq!((w[1].waiting, w[1].oldest), (0, None));
        assert_eq!(w[1].longest_wait(t0), Duration::ZERO);
    }

    #[test]
    fn caller_numbers_are_masked() {
        assert_eq!(
            Caller::new("+79131234567", true).to_string(),
            "**********67"
        );
        assert_eq!(
            Caller::new("+79131234567", false).to_string(),
            "+79131234567"
        );
        assert_eq!(Caller::new("101", true).to_string(), "***");
    }
}
