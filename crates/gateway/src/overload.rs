//! Overload control at the edge: calls already up come before new ones.
//!
//! The receive tasks sort what they parse into two queues to the core task: everything that
//! belongs to something already running (responses, ACK, BYE, CANCEL, re-INVITE and every
//! other request — REGISTER and OPTIONS too, they are cheap) goes to the *established*
//! queue, and only new INVITEs (no To tag) to the *new calls* queue. The driver loop serves
//! the clock, the established queue and the media events before it looks at the new calls
//! queue at all, so a flood of INVITEs can delay a BYE by at most one message.
//!
//! New INVITEs are shed with `503 Service Unavailable` and `Retry-After` as soon as the
//! daemon falls behind, measured, not configured as a rate ([`Admission::check`]):
//! - the INVITE waited in the new calls queue longer than `max_queue_delay` (the core is
//!   slower than the arrivals, whatever the reason: CPU, the machine, a slow disk);
//! - more than `max_queue` INVITEs wait behind it;
//! - the media thread is late on its 1 ms grid by more than `max_media_late` on average (the
//!   calls already up would start to hear it);
//! - the new calls queue is full (the receive task answers itself and never waits).
//!
//! Shedding costs a parse and one small response — no appeal, no port, no transaction — so
//! the queue empties fast and the calls already up keep the CPU. A shed INVITE is answered
//! statelessly: its retransmission gets another `503`, its ACK is absorbed like a stray one.
//! A retransmission of an INVITE the core already took is handed to the core.

use std::time::{Duration, Instant};

use calls::ShedReason;
use sip::{HeaderName, Message, Request, Response};

/// When new INVITEs are shed, and what they are told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverloadSettings {
    /// Longest time a new INVITE may wait for the core before it is shed.
    pub max_queue_delay: Duration,
    /// Most new INVITEs waiting for the core; one more is shed.
    pub max_queue: usize,
    /// Media thread lateness (a moving average over about 64 ms) above which new calls are
    /// shed.
    pub max_media_late: Duration,
    /// Seconds in the `Retry-After` of a shed INVITE's 503.
    pub retry_after: u32,
}

impl Default for OverloadSettings {
    /// 200 ms of queueing (well before the caller's first retransmission at T1 = 500 ms, and
    /// above the stalls a busy shared machine gives any process now and then), 500 waiting
    /// INVITEs, 5 ms of media lateness, retry after 2 s.
    fn default() -> Self {
        OverloadSettings {
            max_queue_delay: Duration::from_millis(200),
            max_queue: 500,
            max_media_late: Duration::from_millis(5),
            retry_after: 2,
        }
    }
}

/// The admission decision for a new INVITE taken off the new calls queue.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Admission {
    pub settings: OverloadSettings,
}

impl Admission {
    /// `None` to take the call; the reason to shed it otherwise. `received` is when the
    /// receive task queued it, `waiting` how many new INVITEs are still queued behind it,
    /// `media_late` the media thread's current average lateness.
    pub fn check(
        &self,
        now: Instant,
        received: Instant,
        waiting: usize,
        media_late: Duration,
    ) -> Option<ShedReason> {
        let s = &self.settings;
        if now.saturating_duration_since(received) > s.max_queue_delay {
            Some(ShedReason::QueueDelay)
        } else if waiting > s.max_queue {
            Some(ShedReason::QueueDepth)
        } else if media_late > s.max_media_late {
            Some(ShedReason::MediaLate)
        } else {
            None
        }
    }
}

/// An INVITE outside any dialog (no To tag): a new call, the only thing ever shed.
pub(crate) fn is_new_invite(msg: &Message) -> bool {
    match msg {
        Message::Request(r) => {
            r.method == sip::Method::Invite
                && r.headers.to_addr().is_ok_and(|to| to.tag().is_none())
        }
        Message::Response(_) => false,
    }
}

/// The stateless `503` + `Retry-After` for a shed INVITE (with a To tag of ours, §8.2.6.2).
pub(crate) fn busy_response(req: &Request, user_agent: &str, retry_after: u32) -> Vec<u8> {
    let mut r = Response::to_headers(&req.headers, 503, "Service Unavailable");
    if let Ok(mut to) = req.headers.to_addr() {
        let tag: String = {
            use rand::Rng;
            let mut rng = rand::thread_rng();
            (0..8)
                .map(|_| char::from_digit(rng.gen_range(0..36u32), 36).unwrap_or('0'))
                .collect()
        };
        to.params.set("tag", Some(tag));
        r.headers.set(HeaderName::To, to.to_string());
    }
    r.headers
        .push(HeaderName::RetryAfter, retry_after.to_string());
    r.headers.push(HeaderName::Server, user_agent);
    r.to_bytes()
}

/// The media thread's lateness as a moving average: each 1 ms sub-tick adds 1/64 of its own
/// lateness (a time constant of about 64 ms, so one stall of a few tens of milliseconds does
/// not shed calls, a lasting lateness does), kept in microseconds.
pub(crate) fn media_late_average(previous_us: u64, late: Duration) -> u64 {
    let late_us = u64::try_from(late.as_micros()).unwrap_or(u64::MAX);
    previous_us - previous_us / 64 + late_us / 64
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn invite(to_tag: bool) -> Message {
        let tag = if to_tag { ";tag=abc" } else { "" };
        sip::parse_message(
            format!(
                "INVITE sip:3758787@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK-1\r\n\
                 Max-Forwards: 70\r\nFrom: <sip:c@127.0.0.1>;tag=c1\r\nTo: <sip:3758787@127.0.0.1>{tag}\r\n\
                 Call-ID: x1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
            )
            .as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn only_invites_outside_a_dialog_are_new_calls() {
        assert!(is_new_invite(&invite(false)));
        assert!(!is_new_invite(&invite(true)));
        let bye = sip::parse_message(
            b"BYE sip:3758787@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK-2\r\n\
              Max-Forwards: 70\r\nFrom: <sip:c@127.0.0.1>;tag=c1\r\nTo: <sip:3758787@127.0.0.1>\r\n\
              Call-ID: x1\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
        )
        .unwrap();
        assert!(!is_new_invite(&bye));
    }

    #[test]
    fn shed_answer_is_a_503_with_retry_after_and_a_to_tag() {
        let Message::Request(req) = invite(false) else {
            panic!()
        };
        let bytes = busy_response(&req, "hotline-test", 2);
        let Message::Response(r) = sip::parse_message(&bytes).unwrap() else {
            panic!()
        };
        assert_eq!(r.status, 503);
        assert_eq!(r.headers.get(&HeaderName::RetryAfter), Some("2"));
        assert!(r.headers.to_addr().unwrap().tag().is_some());
        assert_eq!(r.headers.call_id().unwrap(), "x1");
    }

    #[test]
    fn admission_sheds_on_delay_depth_and_media_lateness() {
        let a = Admission {
            settings: OverloadSettings::default(),
        };
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        assert_eq!(a.check(t0 + ms(150), t0, 3, ms(1)), None);
        assert_eq!(
            a.check(t0 + ms(201), t0, 3, ms(1)),
            Some(ShedReason::QueueDelay)
        );
        assert_eq!(
            a.check(t0 + ms(1), t0, 501, ms(1)),
            Some(ShedReason::QueueDepth)
        );
        assert_eq!(
            a.check(t0 + ms(1), t0, 0, ms(6)),
            Some(ShedReason::MediaLate)
        );
    }

    #[test]
    fn media_lateness_average_follows_and_forgets() {
        // one stall of 40 ms moves it well under the 5 ms default
        assert!(media_late_average(0, Duration::from_millis(40)) < 1_000);
        let mut avg = 0;
        for _ in 0..600 {
            avg = media_late_average(avg, Duration::from_millis(8));
        }
        assert!((7_900..=8_000).contains(&avg), "{avg}");
        for _ in 0..1000 {
            avg = media_late_average(avg, Duration::ZERO);
        }
        assert!(avg < 100, "{avg}");
    }
}
