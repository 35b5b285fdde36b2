//! CSRF protection for the pages, in one place. A session has a random CSRF token (kept in
//! the database next to it); every form that changes something carries it as the hidden
//! field `csrf`, and API calls made with the cookie repeat it in `X-CSRF-Token` (checked by
//! `admin::access::guard`). The login form has no session yet: it is refused when the
//! browser says the request comes from another site (`Sec-Fetch-Site`, `Origin`), and the
//! SameSite=Strict cookie is never sent along with such a request anyway.

use axum::http::{header, HeaderMap};

use crate::admin::constant_time_eq;

/// Whether the form's token is the session's.
pub fn form_token_matches(session_csrf: &str, given: &str) -> bool {
    !given.is_empty() && constant_time_eq(session_csrf.as_bytes(), given.as_bytes())
}

/// False when the browser tells us the request was sent by another site.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = text("sec-fetch-site") {
        if site.eq_ignore_ascii_case("cross-site") || site.eq_ignore_ascii_case("same-site") {
            return false;
        }
    }
    match (text(header::ORIGIN.as_str()), text(header::HOST.as_str())) {
        (Some("null"), _) => false,
        (Some(origin), Some(host)) => origin
            .split_once("://")
            .is_some_and(|(_, h)| h.trim_end_matches('/').eq_ignore_ascii_case(host)),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn origins() {
        let mut h = HeaderMap::new();
        assert!(same_origin(&h));
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8080"),
        );
        assert!(same_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(!same_origin(&h));
        h.remove(header::ORIGIN);
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(!same_origin(&h));
        assert!(form_token_matches("t", "t"));
        assert!(!form_token_matches("t", ""));
        assert!(!form_token_matches("t", "u"));
    }
}
