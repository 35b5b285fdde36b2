//! SIP message helpers of the core: what we allow and support, answers to SDP offers, To tags,
//! INFO digits.

use super::*;

/// Methods we answer (the Allow header).
pub(super) const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, OPTIONS, REGISTER, INFO, UPDATE, REFER";
/// Extensions we support (RFC 4028 session timers).
pub(super) const SUPPORTED: &[&str] = &["timer"];
/// Methods we know but do not take here: 405 rather than 501.
pub(super) fn is_known_method(m: &Method) -> bool {
    !matches!(m, Method::Extension(_))
}
/// RFC 4028 minimum we accept.
pub(super) const MIN_SE: u32 = 90;

/// Our answer to the SDP offer in an INVITE or re-INVITE (`None` when it has no body: we offer
/// in the 200 then), or the response refusing it: 415 for a body that is not SDP, 488 with a
/// Warning when no offered media is acceptable, 400 for malformed SDP (with a To tag from
/// `tokens`).
pub(super) fn answer_offer(
    req: &Request,
    tokens: &mut Tokens,
) -> Result<Option<Negotiated>, Response> {
    if req.body.is_empty() {
        return Ok(None);
    }
    let ct = req.headers.get(&HeaderName::ContentType).unwrap_or("");
    let r = if !ct
        .trim()
        .to_ascii_lowercase()
        .starts_with("application/sdp")
    {
        let mut r = req.response(415);
        r.headers.push(HeaderName::Accept, "application/sdp");
        r
    } else {
        match sdp::answer_body(&req.body) {
            Ok(n) => return Ok(Some(n)),
            Err(e) if e.is_not_acceptable() => {
                let mut r = req.response(488);
                r.headers.push(
                    HeaderName::Warning,
                    "304 hotline \"Media type not available\"",
                );
                r
            }
            Err(e) => {
                let mut r = req.response(400);
                r.reason = format!("Bad Request - {e}");
                r
            }
        }
    };
    Err(with_to_tag(r, req, tokens))
}

/// Add our To tag to a response (any final response creating no dialog still needs one,
/// RFC 3261 §8.2.6.2), drawn from `tokens`.
pub(super) fn with_to_tag(mut r: Response, req: &Request, tokens: &mut Tokens) -> Response {
    if let Ok(mut to) = req.headers.to_addr() {
        if to.tag().is_none() {
            to.params.set("tag", Some(tokens.lowercase(8)));
            r.headers.set(HeaderName::To, to.to_string());
        }
    }
    r
}

pub(super) fn host_port(a: SocketAddr) -> String {
    match a {
        SocketAddr::V4(v4) => format!("{}:{}", v4.ip(), v4.port()),
        SocketAddr::V6(v6) => format!("[{}]:{}", v6.ip(), v6.port()),
    }
}

/// The digit of a SIP INFO: `application/dtmf-relay` (`Signal=5`) or `application/dtmf`
/// (the key itself, or its event code `0`–`15`).
pub(super) fn info_digit(req: &Request) -> Option<char> {
    let ct = req.headers.get(&HeaderName::ContentType)?;
    let ct = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let body = std::str::from_utf8(&req.body).ok()?;
    let value = match ct.as_str() {
        "application/dtmf-relay" => body.lines().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            k.trim().eq_ignore_ascii_case("signal").then(|| v.trim())
        })?,
        "application/dtmf" => body.trim(),
        _ => return None,
    };
    let mut chars = value.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) => media::dtmf4733::Digit::from_char(c).map(|d| d.as_char()),
        _ => value
            .parse::<u8>()
            .ok()
            .and_then(media::dtmf4733::Digit::from_event)
            .map(|d| d.as_char()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(ct: &str, body: &str) -> Request {
        let text = format!(
            "INFO sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:c@d>;tag=1\r\nTo: <sip:a@b>;tag=2\r\nCall-ID: x\r\nCSeq: 2 INFO\r\nContent-Type: {ct}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        match sip::parse_message(text.as_bytes()).unwrap() {
            Message::Request(r) => r,
            Message::Response(_) => panic!("not a request"),
        }
    }

    #[test]
    fn info_bodies_give_their_digit() {
        assert_eq!(
            info_digit(&info(
                "application/dtmf-relay",
                "Signal=5\r\nDuration=160\r\n"
            )),
            Some('5')
        );
        assert_eq!(
            info_digit(&info(
                "application/dtmf-relay",
                "Signal= #\r\nDuration= 250\r\n"
            )),
            Some('#')
        );
        assert_eq!(
            info_digit(&info("Application/DTMF-Relay; x=y", "signal=*\r\n")),
            Some('*')
        );
        assert_eq!(info_digit(&info("application/dtmf", "7")), Some('7'));
        assert_eq!(info_digit(&info("application/dtmf", "11")), Some('#'));
        assert_eq!(
            info_digit(&info("application/dtmf-relay", "Signal=Z\r\n")),
            None
        );
        assert_eq!(
            info_digit(&info("application/dtmf-relay", "Duration=160\r\n")),
            None
        );
        assert_eq!(info_digit(&info("application/dtmf", "99")), None);
        assert_eq!(info_digit(&info("text/plain", "5")), None);
    }
}
