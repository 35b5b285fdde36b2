//! The headers every answer of the admin HTTP carries (OWASP ASVS V14.4): what the pages may
//! load and who may frame them (`Content-Security-Policy`: everything from our own origin, no
//! inline script or style, no framing), no MIME sniffing, no referrer outside our origin, and
//! `Strict-Transport-Security` when the address serves HTTPS. Every asset is in the binary
//! and the pages carry no inline script, handler or style, so the policy is the strict one.
//! A handler that sets its own policy keeps it: the self-contained HTML report
//! (`report::render`, downloaded and opened on its own) sets [`REPORT_CSP`].

use axum::extract::{Request, State};
use axum::http::{header, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

use super::AdminState;

/// The pages' policy: our own origin only, nothing inline, never framed.
pub const PAGE_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

/// The self-contained HTML report's policy: its own inline stylesheet and nothing else.
pub const REPORT_CSP: &str =
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'";

/// A year, with subdomains: once a browser has seen HTTPS here it never tries plain HTTP.
const HSTS: &str = "max-age=31536000; includeSubDomains";

/// Adds the headers to every answer (those a handler set are kept).
pub async fn security(State(s): State<AdminState>, req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    let mut set = |name: HeaderName, value: &'static str| {
        if !h.contains_key(&name) {
            h.insert(name, HeaderValue::from_static(value));
        }
    };
    set(header::CONTENT_SECURITY_POLICY, PAGE_CSP);
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(header::X_FRAME_OPTIONS, "DENY");
    set(header::REFERRER_POLICY, "same-origin");
    if s.tls {
        set(header::STRICT_TRANSPORT_SECURITY, HSTS);
    }
    res
}
