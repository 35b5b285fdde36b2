//! The session cookie, in one place: its name and attributes (HttpOnly, SameSite=Strict,
//! Path=/, Secure when the admin address serves HTTPS), reading it back, and clearing it.

use axum::http::{header, HeaderMap, HeaderValue};
use cookie::{Cookie, SameSite};

/// The session cookie's name.
pub const SESSION: &str = "hotline_session";

/// The session cookie's value, when the request carries one.
pub fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == SESSION)
        .map(|c| c.value().to_owned())
        .filter(|v| !v.is_empty())
}

fn build(value: String, secure: bool, clear: bool) -> HeaderValue {
    let mut c = Cookie::build((SESSION, value))
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .path("/");
    if clear {
        c = c.max_age(cookie::time::Duration::ZERO);
    }
    // the value is our own base64url text: always a valid header value
    HeaderValue::from_str(&c.build().to_string()).unwrap_or(HeaderValue::from_static(""))
}

/// `Set-Cookie` for a new session (a browser-session cookie: the server enforces the idle
/// timeout and the lifetime).
pub fn set_session(value: &str, secure: bool) -> HeaderValue {
    build(value.to_owned(), secure, false)
}

/// `Set-Cookie` that removes the session cookie.
pub fn clear_session(secure: bool) -> HeaderValue {
    build(String::new(), secure, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_and_parsing() {
        let v = set_session("abc", false);
        let s = v.to_str().unwrap();
        assert!(s.starts_with("hotline_session=abc"), "{s}");
        assert!(s.contains("HttpOnly") && s.contains("SameSite=Strict") && s.contains("Path=/"));
        assert!(!s.contains("Secure"));
        assert!(set_session("abc", true)
            .to_str()
            .unwrap()
            .contains("Secure"));
        assert!(clear_session(false).to_str().unwrap().contains("Max-Age=0"));
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; hotline_session=xyz; b=2"),
        );
        assert_eq!(session_cookie(&h).as_deref(), Some("xyz"));
        h.insert(header::COOKIE, HeaderValue::from_static("a=1"));
        assert_eq!(session_cookie(&h), None);
    }
}
