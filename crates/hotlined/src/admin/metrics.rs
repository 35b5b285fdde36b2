//! `/metrics` in the Prometheus text exposition format (version 0.0.4): for every metric a
//! `# HELP` and a `# TYPE` line, then its samples `name{label="value"} number`.

use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::AdminState;

/// Escapes a label value: backslash, double quote and newline.
fn label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Writes metric families.
struct Exposition(String);

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: u64) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{}\"", label(v));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }

    fn single(&mut self, name: &str, kind: &str, help: &str, value: u64) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }
}

/// Per queue: name, callers waiting, longest wait in seconds at `now`. The configured queues
/// (the board) and every queue a call has entered (the gateway), the gateway's figures first.
pub(crate) fn queue_figures(s: &AdminState, now: Instant) -> Vec<(String, u64, u64)> {
    let mut out: Vec<(String, u64, u64)> = s
        .stats
        .queue_waits()
        .into_iter()
        .map(|q| {
            let longest = q.longest_wait(now).as_secs();
            (q.queue, q.waiting, longest)
        })
        .collect();
    for q in s.queues.snapshot() {
        if !out.iter().any(|(name, _, _)| *name == q.name) {
            out.push((q.name, q.waiting, q.longest_wait_seconds));
        }
    }
    out
}

/// Renders every metric.
pub fn render(s: &AdminState) -> String {
    let st = &s.stats;
    let mut m = Exposition(String::new());
    m.single(
        "hotline_calls_active",
        "gauge",
        "Calls in progress.",
        st.calls.load(Ordering::Relaxed),
    );
    m.single(
        "hotline_calls_total",
        "counter",
        "Calls that reached a line.",
        st.calls_total.load(Ordering::Relaxed),
    );
    m.single(
        "hotline_calls_answered_total",
        "counter",
        "Calls answered.",
        st.calls_answered.load(Ordering::Relaxed),
    );
    m.single(
        "hotline_calls_cancelled_total",
        "counter",
        "Calls the caller abandoned while ringing.",
        st.calls_cancelled.load(Ordering::Relaxed),
    );
    m.family(
        "hotline_calls_ended_total",
        "counter",
        "Finished calls by line and outcome.",
    );
    for (line, outcome, n) in s.calls.snapshot() {
        m.sample(
            "hotline_calls_ended_total",
            &[("line", &line), ("outcome", outcome.as_str())],
            n,
        );
    }
    m.single(
        "hotline_registrations",
        "gauge",
        "Operator contacts registered.",
        st.registrations.load(Ordering::Relaxed),
    );
    m.family(
        "hotline_operators",
        "gauge",
        "Configured operators by work state.",
    );
    for (state, n) in s.operators.counts() {
        m.sample("hotline_operators", &[("state", state.as_str())], n);
    }
    m.single(
        "hotline_calls_in_ivr",
        "gauge",
        "Answered calls walking their line's voice menu now (not yet in a queue).",
        st.calls_in_ivr.load(Ordering::Relaxed),
    );
    m.single(
        "hotline_live_pages",
        "gauge",
        "Workspace pages with a live event stream open (GET /events).",
        s.live.pages() as u64,
    );
    let queues = queue_figures(s, Instant::now());
    m.family(
        "hotline_queue_waiting",
        "gauge",
        "Callers waiting per queue: from the voice menu's queue node until the ACD lets \
         them go (an operator answered, they hung up, overflowed or were called back).",
    );
    for (name, waiting, _) in &queues {
        m.sample("hotline_queue_waiting", &[("queue", name)], *waiting);
    }
    m.family(
        "hotline_queue_longest_wait_seconds",
        "gauge",
        "How long the longest-waiting caller of each queue has waited, from entering the \
         queue node.",
    );
    for (name, _, longest) in &queues {
        m.sample(
            "hotline_queue_longest_wait_seconds",
            &[("queue", name)],
            *longest,
        );
    }
    m.family(
        "hotline_sip_requests_total",
        "counter",
        "SIP requests received by method.",
    );
    for (method, n) in st.requests() {
        m.sample("hotline_sip_requests_total", &[("method", &method)], n);
    }
    m.family(
        "hotline_sip_responses_total",
        "counter",
        "SIP responses sent by status class and code, retransmissions included; code=\"other\" \
         counts the class's less common codes. Malformed requests the transport refuses \
         itself are not counted.",
    );
    for r in st.responses() {
        let code = r.code.map(|c| c.to_string());
        m.sample(
            "hotline_sip_responses_total",
            &[
                ("class", r.class),
                ("code", code.as_deref().unwrap_or("other")),
            ],
            r.count,
        );
    }
    m.single(
        "hotline_rtp_legs_active",
        "gauge",
        "RTP legs being served now (one per answered call).",
        st.rtp_legs_active.load(Ordering::Relaxed),
    );
    m.single(
        "hotline_rtp_packets_sent_total",
        "counter",
        "RTP packets sent to callers.",
        st.rtp_packets_sent.load(Ordering::Relaxed),
    );
    m.single(
        "hotline_rtp_packets_received_total",
        "counter",
        "Datagrams received on the calls' RTP ports.",
        st.rtp_packets_received.load(Ordering::Relaxed),
    );
    m.single(
        "hotline_rtp_packets_lost_total",
        "counter",
        "RTP packets the receivers counted as lost (expected minus received, per remote source).",
        st.rtp_packets_lost.load(Ordering::Relaxed),
    );
    m.single(
        "hotline_rtp_timeouts_total",
        "counter",
        "Calls hung up because no RTP arrived for the configured timeout.",
        st.rtp_timeouts.load(Ordering::Relaxed),
    );
    m.single(
        "hotline_call_timers",
        "gauge",
        "Timers pending in call control (answer, session expiry, maximum duration, menu and waiting timeouts of the calls up).",
        st.call_timers.load(Ordering::Relaxed),
    );
    m.family(
        "hotline_sip_invites_shed_total",
        "counter",
        "New INVITEs answered 503 + Retry-After because the daemon was behind, by reason (queue_delay, queue_depth, media_late, queue_full).",
    );
    for (reason, n) in st.invites_shed() {
        m.sample(
            "hotline_sip_invites_shed_total",
            &[("reason", reason.as_str())],
            n,
        );
    }
    m.single(
        "hotline_media_late_microseconds",
        "gauge",
        "How late the media thread is on its 1 ms grid (a moving average over about 64 ms).",
        u64::try_from(st.media_late().as_micros()).unwrap_or(u64::MAX),
    );
    m.family(
        "hotline_dtmf_digits_total",
        "counter",
        "DTMF digits received by kind (rfc4733, info, inband), whether the line's DTMF mode kept them or not.",
    );
    for (via, n) in st.dtmf_digits() {
        m.sample("hotline_dtmf_digits_total", &[("kind", via.as_str())], n);
    }
    let w = s.writer.stats();
    m.single(
        "hotline_appeal_writer_backlog",
        "gauge",
        "Appeal operations in the spool not yet committed to the database.",
        w.backlog,
    );
    m.single(
        "hotline_appeal_spool_bytes",
        "gauge",
        "Size of the appeal spool file.",
        w.spool_bytes,
    );
    m.single(
        "hotline_appeal_writer_committed_total",
        "counter",
        "Appeal operations committed to the database.",
        w.committed,
    );
    m.single(
        "hotline_appeal_writer_rejected_total",
        "counter",
        "Appeal operations the database refused as invalid (logged and skipped).",
        w.rejected,
    );
    m.single(
        "hotline_appeal_database_up",
        "gauge",
        "1 when the appeal writer's last database attempt succeeded.",
        u64::from(w.db_available),
    );
    m.single(
        "hotline_admin_store_connected",
        "gauge",
        "1 once the admin API has reached the database.",
        u64::from(s.store.get().is_some()),
    );
    m.0
}

/// `GET /metrics`.
pub async fn metrics(State(s): State<AdminState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        render(&s),
    )
}
