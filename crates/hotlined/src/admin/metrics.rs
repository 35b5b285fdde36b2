//! `/metrics` in the Prometheus text exposition format (version 0.0.4): for every metric a
//! `# HELP` and a `# TYPE` line, then its samples `name{label="value"} number`.

use std::fmt::Write;
use std::sync::atomic::Ordering;

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
    let queues = s.queues.snapshot();
    m.family(
        "hotline_queue_waiting",
        "gauge",
        "Callers waiting per queue.",
    );
    for q in &queues {
        m.sample("hotline_queue_waiting", &[("queue", &q.name)], q.waiting);
    }
    m.family(
        "hotline_queue_longest_wait_seconds",
        "gauge",
        "How long the longest-waiting caller of each queue has waited.",
    );
    for q in &queues {
        m.sample(
            "hotline_queue_longest_wait_seconds",
            &[("queue", &q.name)],
            q.longest_wait_seconds,
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
