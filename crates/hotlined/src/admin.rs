//! The admin HTTP API (INTERFACE.md). This issue serves `/health` and `/metrics`; the appeals,
//! queues and operators routes arrive with their issues.

use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use gateway::Stats;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

#[derive(Clone)]
pub struct AdminState {
    pub stats: Arc<Stats>,
    /// Bearer token for `/api/v1` (used by the routes that arrive with later issues).
    #[allow(dead_code)]
    pub token: Arc<str>,
}

pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .with_state(state)
}

pub async fn serve(listener: TcpListener, state: AdminState, stop: CancellationToken) {
    let app = router(state);
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await
    {
        tracing::error!(error = %e, "admin HTTP failed");
    }
}

/// 200 when SIP is up and taking calls; 503 while starting or draining.
async fn health(State(s): State<AdminState>) -> impl IntoResponse {
    let ready = s.stats.ready.load(Ordering::Relaxed) && !s.stats.draining.load(Ordering::Relaxed);
    if ready {
        (StatusCode::OK, "ok\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

/// Prometheus text format.
async fn metrics(State(s): State<AdminState>) -> impl IntoResponse {
    let st = &s.stats;
    let mut out = String::new();
    let gauge = |out: &mut String, name: &str, help: &str, kind: &str, v: u64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
        );
    };
    gauge(
        &mut out,
        "hotline_calls_active",
        "Calls in progress.",
        "gauge",
        st.calls.load(Ordering::Relaxed),
    );
    gauge(
        &mut out,
        "hotline_calls_total",
        "Calls that reached a line.",
        "counter",
        st.calls_total.load(Ordering::Relaxed),
    );
    gauge(
        &mut out,
        "hotline_calls_answered_total",
        "Calls answered.",
        "counter",
        st.calls_answered.load(Ordering::Relaxed),
    );
    gauge(
        &mut out,
        "hotline_calls_cancelled_total",
        "Calls the caller abandoned while ringing.",
        "counter",
        st.calls_cancelled.load(Ordering::Relaxed),
    );
    gauge(
        &mut out,
        "hotline_registrations",
        "Operator contacts registered.",
        "gauge",
        st.registrations.load(Ordering::Relaxed),
    );
    let _ = writeln!(out, "# HELP hotline_sip_requests_total SIP requests received by method.\n# TYPE hotline_sip_requests_total counter");
    for (m, n) in st.requests() {
        let _ = writeln!(out, "hotline_sip_requests_total{{method=\"{m}\"}} {n}");
    }
    ([("content-type", "text/plain; version=0.0.4")], out)
}
