//! The sender half of the partner-centre exchange: a task that delivers the store's
//! `partner_outbox` to the partner Hotline over HTTP (the receiving half is
//! `admin::partner_api`; the tables and the exactly-once argument are in
//! `appeals::partner`).
//!
//! Each due message is POSTed to `<partner url><path>` with `Authorization: Bearer <partner
//! token>` and `Idempotency-Key: <the row's UUID>`, its JSON body with `"centre": <our
//! name>` added. Then:
//! - 2xx: the row is marked sent (for a forward, the partner's answer becomes our appeal's
//!   `partner_ref`) — only now, so a crash before this sends it again under the same key,
//!   which the partner recognises;
//! - connection errors, timeouts, 5xx, 401/403 (a token being fixed), 408, 429: tried again
//!   after a pause that doubles from `retry_min_ms` up to `retry_max_ms`, for as long as it
//!   takes — the outbox is in the database, so restarts lose nothing;
//! - any other 4xx: the partner will never take it; the row is given up and the appeal's
//!   timeline says so. That includes an update the partner's copy cannot take (409: e.g. a
//!   reopen of a copy that is not closed) and one about an appeal it does not have (404):
//!   sending it again would get the same answer. A refused forward gives up the updates
//!   queued behind it too.
//!
//! Messages about one appeal go one at a time, oldest first (`Store::outbox_due`): an update
//! waits while the forward before it is being retried.
//!
//! - a partner certificate that does not verify (unknown CA, wrong name, expired): a
//!   [`SendError::Certificate`], retried like a connection error (the certificate may be
//!   fixed on either side), and logged as such.
//!
//! HTTP client: `hyper-util`'s pooled HTTP/1.1 client (already in the tree under axum) with
//! `hyper-rustls`: `https://` partners are verified against the system's CAs plus
//! `partner.ca` (see `tls::client_config`); `http://` still works, with a warning at start
//! unless the partner is on a loopback address.

use std::sync::Arc;
use std::time::Duration;

use appeals::{ForwardAccepted, OutboxKind, OutboxMessage, Store};
use chrono::Utc;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::CertificateDer;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::admin::StoreSlot;
use crate::config::PartnerSection;

/// How long one delivery attempt may take, connection included.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest partner answer read.
const MAX_ANSWER: usize = 64 * 1024;
/// Messages taken from the outbox per pass.
const BATCH: u32 = 20;
/// Longest sleep between passes when nothing is due (a forward wakes the task at once).
const IDLE: Duration = Duration::from_secs(5);

/// The partner and how to reach it.
#[derive(Clone, Debug)]
pub struct PartnerLink {
    /// Our centre's name.
    pub name: Arc<str>,
    /// The partner's base URL, without a trailing `/`.
    pub url: Arc<str>,
    /// The shared token.
    pub token: Arc<str>,
    /// First pause after a failure.
    pub retry_min: Duration,
    /// Longest pause.
    pub retry_max: Duration,
    /// Wakes the sender when something is queued.
    pub wake: Arc<Notify>,
    /// Extra CA certificates trusted for an `https://` partner (`partner.ca`).
    pub ca: Arc<[CertificateDer<'static>]>,
}

impl PartnerLink {
    /// From the checked `[partner]` section and the certificates of its `ca` file.
    pub fn from_config(p: &PartnerSection, ca: &[CertificateDer<'static>]) -> Self {
        PartnerLink {
            name: Arc::from(p.name.as_str()),
            url: Arc::from(p.url.trim_end_matches('/')),
            token: Arc::from(p.token.as_str()),
            retry_min: Duration::from_millis(p.retry_min_ms),
            retry_max: Duration::from_millis(p.retry_max_ms),
            wake: Arc::new(Notify::new()),
            ca: Arc::from(ca),
        }
    }

    /// True when the link is plain `http://` to a host other than a loopback address.
    pub fn unencrypted_off_host(&self) -> bool {
        let Ok(uri) = self.url.parse::<Uri>() else {
            return false;
        };
        if uri.scheme_str() != Some("http") {
            return false;
        }
        let host = uri.host().unwrap_or("").trim_matches(['[', ']']);
        !(host.eq_ignore_ascii_case("localhost")
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback()))
    }
}

/// Why one delivery attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The URL made from the partner's base URL and the path is not valid.
    #[error("bad partner URL {0:?}")]
    Url(String),
    /// Could not connect, or the connection broke.
    #[error("partner unreachable: {0}")]
    Connect(String),
    /// The partner's TLS certificate did not verify.
    #[error("partner's certificate refused ({0}); is its CA in partner.ca?")]
    Certificate(String),
    /// No answer in time.
    #[error("partner did not answer within {0:?}")]
    Timeout(Duration),
    /// The partner answered with an error status.
    #[error("partner answered {status}: {body}")]
    Status {
        /// Its status.
        status: StatusCode,
        /// The start of its answer.
        body: String,
    },
    /// The partner's answer to a forward could not be read.
    #[error("partner's answer is not a forward acceptance: {0}")]
    BadAnswer(String),
}

impl SendError {
    /// True when trying again later may work; false when the partner refused the message
    /// for good.
    pub fn retryable(&self) -> bool {
        match self {
            SendError::Status { status, .. } => {
                !status.is_client_error()
                    || matches!(
                        *status,
                        StatusCode::UNAUTHORIZED
                            | StatusCode::FORBIDDEN
                            | StatusCode::REQUEST_TIMEOUT
                            | StatusCode::TOO_MANY_REQUESTS
                    )
            }
            // A 2xx whose body we cannot read: the partner may be mid-upgrade; its dedup makes
            // trying again safe.
            SendError::BadAnswer(_) => true,
            SendError::Url(_) => false,
            SendError::Connect(_) | SendError::Certificate(_) | SendError::Timeout(_) => true,
        }
    }
}

/// The pause before attempt `attempts + 1`, after `attempts` failures (1, 2, …): `min`
/// doubled per failure, never above `max`.
pub fn backoff(attempts: i64, min: Duration, max: Duration) -> Duration {
    let doublings = u32::try_from(attempts.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
    min.saturating_mul(1u32 << doublings).min(max)
}

/// The HTTP client the sender posts with.
#[derive(Clone)]
pub struct PartnerClient {
    link: PartnerLink,
    http: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl PartnerClient {
    /// A pooled HTTP/1.1 client for `link`, `https://` or `http://` (reads the system's CA
    /// certificates: file I/O).
    pub fn new(link: PartnerLink) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(ATTEMPT_TIMEOUT));
        connector.set_nodelay(true);
        // the TLS layer takes https:// URLs to it
        connector.enforce_http(false);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(crate::tls::client_config(&link.ca))
            .https_or_http()
            .enable_http1()
            .wrap_connector(connector);
        PartnerClient {
            link,
            http: Client::builder(TokioExecutor::new()).build(https),
        }
    }

    /// POSTs `body` to `path` under idempotency `key`; the answer's body on 2xx.
    pub async fn post(
        &self,
        path: &str,
        key: &str,
        body: &serde_json::Value,
    ) -> Result<Bytes, SendError> {
        let url = format!("{}{path}", self.link.url);
        let uri: Uri = url.parse().map_err(|_| SendError::Url(url.clone()))?;
        let req = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header("authorization", format!("Bearer {}", self.link.token))
            .header("idempotency-key", key)
            .header("content-type", "application/json")
            .header("x-hotline-centre", &*self.link.name)
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|_| SendError::Url(url.clone()))?;
        let attempt = async {
            let res =
                self.http.request(req).await.map_err(
                    |e| match crate::tls::certificate_refusal(&e) {
                        Some(why) => SendError::Certificate(why),
                        None => SendError::Connect(error_chain(&e)),
                    },
                )?;
            let status = res.status();
            let body = http_body_util::Limited::new(res.into_body(), MAX_ANSWER)
                .collect()
                .await
                .map_err(|e| SendError::Connect(e.to_string()))?
                .to_bytes();
            if status.is_success() {
                Ok(body)
            } else {
                Err(SendError::Status {
                    status,
                    body: String::from_utf8_lossy(&body).chars().take(300).collect(),
                })
            }
        };
        tokio::time::timeout(ATTEMPT_TIMEOUT, attempt)
            .await
            .map_err(|_| SendError::Timeout(ATTEMPT_TIMEOUT))?
    }

    /// Sends one outbox message; for a forward, the partner's acceptance.
    pub async fn send(&self, m: &OutboxMessage) -> Result<Option<ForwardAccepted>, SendError> {
        let mut body = m.payload.clone();
        if let Some(o) = body.as_object_mut() {
            o.insert("centre".into(), serde_json::Value::from(&*self.link.name));
        }
        let answer = self.post(&m.path, &m.key.to_string(), &body).await?;
        match m.kind {
            OutboxKind::Forward => serde_json::from_slice::<ForwardAccepted>(&answer)
                .map(Some)
                .map_err(|e| SendError::BadAnswer(e.to_string())),
            OutboxKind::Status | OutboxKind::Update => Ok(None),
        }
    }
}

/// `e` and its sources, `: `-joined (hyper's top-level message alone says little).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

/// One pass over the due messages, oldest first: send each, then record what happened.
/// Returns how many were delivered. A database error ends the pass (the messages stay due).
pub async fn deliver_due(store: &Store, client: &PartnerClient) -> Result<usize, appeals::Error> {
    let due = store.outbox_due(Utc::now(), BATCH).await?;
    let mut delivered = 0;
    for m in &due {
        match client.send(m).await {
            Ok(accepted) => {
                store.outbox_sent(m, accepted.as_ref()).await?;
                delivered += 1;
                tracing::info!(appeal = %m.appeal_id, key = %m.key, kind = ?m.kind, "partner accepted");
            }
            Err(e) if e.retryable() => {
                let pause = backoff(
                    m.attempts.saturating_add(1),
                    client.link.retry_min,
                    client.link.retry_max,
                );
                let next = Utc::now()
                    + chrono::Duration::from_std(pause).unwrap_or(chrono::Duration::seconds(60));
                tracing::warn!(appeal = %m.appeal_id, key = %m.key, attempts = m.attempts + 1, retry_ms = pause.as_millis() as u64, error = %e, "partner delivery failed; will retry");
                store.outbox_retry(m.key, next, &e.to_string()).await?;
            }
            Err(e) => {
                tracing::error!(appeal = %m.appeal_id, key = %m.key, error = %e, "partner refused the message; giving up");
                store.outbox_failed(m, &e.to_string()).await?;
            }
        }
    }
    Ok(delivered)
}

/// Runs the sender until `stop`: waits for the database, then delivers whatever is due,
/// sleeping until the next message is due, a forward wakes it, or [`IDLE`] passes.
pub fn spawn_sender(
    link: PartnerLink,
    slot: StoreSlot,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if link.unencrypted_off_host() {
            tracing::warn!(url = %link.url, "the partner link is plain http:// to another host: appeals cross the network unencrypted; use https://");
        }
        let client = match tokio::task::spawn_blocking({
            let link = link.clone();
            move || PartnerClient::new(link)
        })
        .await
        {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "partner sender: the HTTP client could not be made");
                return;
            }
        };
        loop {
            let pause = match slot.get() {
                None => Duration::from_millis(200),
                Some(store) => match deliver_due(store, &client).await {
                    Err(e) => {
                        tracing::warn!(error = %e, "partner sender: database error");
                        link.retry_min
                    }
                    Ok(_) => match store.outbox_next_due().await {
                        Ok(Some(at)) => (at - Utc::now())
                            .to_std()
                            .unwrap_or(Duration::ZERO)
                            .min(IDLE),
                        Ok(None) => IDLE,
                        Err(_) => link.retry_min,
                    },
                },
            };
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = link.wake.notified() => {}
                _ = tokio::time::sleep(pause) => {}
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let (min, max) = (Duration::from_millis(500), Duration::from_secs(60));
        let got: Vec<u128> = (1..=10).map(|a| backoff(a, min, max).as_millis()).collect();
        assert_eq!(
            got,
            [500, 1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000]
        );
        assert_eq!(backoff(0, min, max), min);
        assert_eq!(backoff(i64::MAX, min, max), max);
    }

    #[test]
    fn plain_http_is_flagged_only_off_the_host() {
        let link = |url: &str| {
            let p = PartnerSection {
                name: "city".into(),
                url: url.into(),
                token: "t".into(),
                ca: None,
                retry_min_ms: 1,
                retry_max_ms: 2,
            };
            PartnerLink::from_config(&p, &[]).unencrypted_off_host()
        };
        for quiet in [
            "http://127.0.0.1:8080",
            "http://[::1]:8080",
            "http://localhost:8080",
            "https://region.example",
            "https://192.0.2.1:8443",
        ] {
            assert!(!link(quiet), "{quiet}");
        }
        for loud in ["http://192.0.2.1:8080", "http://region.example"] {
            assert!(link(loud), "{loud}");
        }
    }

    #[test]
    fn which_failures_are_retried() {
        let st = |s: u16| SendError::Status {
            status: StatusCode::from_u16(s).unwrap(),
            body: String::new(),
        };
        for s in [500, 502, 503, 401, 403, 408, 429] {
            assert!(st(s).retryable(), "{s}");
        }
        for s in [400, 404, 409, 422] {
            assert!(!st(s).retryable(), "{s}");
        }
        assert!(SendError::Connect("refused".into()).retryable());
        assert!(SendError::Certificate("UnknownIssuer".into()).retryable());
        assert!(SendError::Timeout(ATTEMPT_TIMEOUT).retryable());
        assert!(!SendError::Url("x".into()).retryable());
    }
}
