//! The SIP message parser (RFC 3261 §7 and §25) and the checks a server makes before acting on
//! a request (§8.2, RFC 4475 §3).
//!
//! [`parse_message`] reads one complete message — a UDP datagram or one message cut out of a
//! TCP stream by [`crate::framing::StreamFramer`]. It is tolerant where RFC 4475 §3.1.1 says a
//! receiver must be (line folding, LWS around the colon, compact and oddly cased names, empty
//! values, leading CRLFs, bare LF line ends) and strict where a wrong guess would hurt
//! (start-line shape, SIP version, Content-Length). Header values are kept raw; the typed views
//! in [`crate::typed`] parse them on demand, and [`validate_request`] runs the ones a server must
//! check before it may act on a request.

use crate::message::{HeaderName, Headers, Message, Method, Request, Response, Uri};
use crate::typed::{is_token_char, parse_uri};

/// What kind of problem made a message unreadable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseErrorKind {
    /// Nothing but CR/LF (or nothing at all): a keep-alive, not a message.
    Empty,
    /// The Request-Line or Status-Line does not have the RFC 3261 §7.1/§7.2 shape.
    StartLine,
    /// The Request-URI could not be parsed.
    RequestUri,
    /// A SIP version other than 2.0.
    Version,
    /// A header line without a colon, with a bad name, or a folded line with nothing to fold.
    HeaderLine,
    /// The start line or header section is not UTF-8.
    Encoding,
    /// Content-Length is not a number, or several Content-Length values disagree.
    ContentLength,
    /// Content-Length promises more body than the datagram holds.
    Truncated,
}

/// A message that could not be parsed.
///
/// `status` and `reason` are what a server answers with when the message was a request whose
/// head could be read (`request_head`); responses and unreadable requests are dropped. `reason`
/// is one of our fixed phrases — it never contains bytes from the peer, so it is safe to put on
/// a status line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {reason}")]
pub struct ParseError {
    pub status: u16,
    pub reason: &'static str,
    pub kind: ParseErrorKind,
    /// The method and headers of a request whose start line began with a method token and whose
    /// header lines were readable, so that the caller can answer with
    /// [`Response::to_headers`](crate::message::Response::to_headers).
    pub request_head: Option<Box<(Method, Headers)>>,
}

impl ParseError {
    fn new(kind: ParseErrorKind, status: u16, reason: &'static str) -> ParseError {
        ParseError {
            status,
            reason,
            kind,
            request_head: None,
        }
    }
    fn bad(kind: ParseErrorKind, reason: &'static str) -> ParseError {
        ParseError::new(kind, 400, reason)
    }
}

/// A request that parsed but must not be acted on. `status` is 400 for a malformed or
/// inconsistent request and 416 for an unsupported Request-URI scheme; `reason` is a fixed
/// phrase usable on the status line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {reason}")]
pub struct RequestError {
    pub status: u16,
    pub reason: &'static str,
}

fn reject(reason: &'static str) -> RequestError {
    RequestError {
        status: 400,
        reason,
    }
}

/// Parse one complete SIP message (one datagram, or one message framed from a stream).
///
/// The body is what follows the blank line, cut to Content-Length; bytes beyond it are
/// discarded (RFC 3261 §18.3, RFC 4475 §3.1.1.8 `dblreq`), a Content-Length larger than what is
/// present is an error (§3.1.2.2 `clerr`), and without Content-Length the body is the rest of
/// the buffer (allowed on UDP only; the stream framer insists on Content-Length). A header
/// section that runs to the end of the buffer without a blank line is accepted with an empty
/// body.
pub fn parse_message(buf: &[u8]) -> Result<Message, ParseError> {
    use ParseErrorKind as K;
    // RFC 3261 §7.5: ignore CRLFs before the start line.
    let Some(first) = buf.iter().position(|&b| b != b'\r' && b != b'\n') else {
        return Err(ParseError::bad(K::Empty, "Bad Request - empty message"));
    };
    let buf = buf.get(first..).unwrap_or_default();

    // Cut the head into lines (CRLF or bare LF) up to the blank line.
    let mut lines: Vec<&[u8]> = Vec::with_capacity(24);
    let mut pos = 0;
    let mut body_start = buf.len();
    while pos < buf.len() {
        let rest = buf.get(pos..).unwrap_or_default();
        let (line, next) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (rest.get(..i).unwrap_or_default(), pos + i + 1),
            None => (rest, buf.len()),
        };
        pos = next;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            body_start = pos;
            break;
        }
        lines.push(line);
    }
    let (start_line, header_lines) = match lines.split_first() {
        Some((s, h)) => (*s, h),
        None => return Err(ParseError::bad(K::Empty, "Bad Request - empty message")),
    };

    let headers = parse_header_lines(header_lines);
    let start = parse_start_line(start_line);

    // A request whose method token and header lines were readable gets a head to answer with.
    let head_method = match &start {
        StartLine::Request { method, .. } | StartLine::BadRequest { method, .. } => {
            Some(method.clone())
        }
        _ => None,
    };
    // Without a Via there is nowhere to send an answer to (RFC 3261 §18.2.2): no head then.
    let with_head = |mut e: ParseError, headers: &Headers| -> ParseError {
        let routable = headers.get(&HeaderName::Via).is_some();
        if let Some(method) = head_method.as_ref().filter(|_| routable) {
            e.request_head = Some(Box::new((method.clone(), headers.clone())));
        }
        e
    };

    let (headers, header_error) = headers;
    if let Some(e) = header_error {
        // The start line's own error, if any, is the more useful one to report.
        return Err(match start {
            StartLine::BadRequest { error, .. } => with_head(error, &headers),
            StartLine::Bad(error) => error,
            _ => with_head(e, &headers),
        });
    }
    let start = match start {
        StartLine::BadRequest { error, .. } => return Err(with_head(error, &headers)),
        StartLine::Bad(error) => return Err(error),
        ok => ok,
    };

    // Body, delimited by Content-Length when present.
    let available = buf.get(body_start..).unwrap_or_default();
    let body = match content_length(&headers) {
        Err(reason) => {
            return Err(with_head(
                ParseError::bad(K::ContentLength, reason),
                &headers,
            ))
        }
        Ok(None) => available,
        Ok(Some(n)) => match available.get(..n) {
            Some(b) => b,
            None => {
                return Err(with_head(
                    ParseError::bad(
                        K::Truncated,
                        "Bad Request - Content-Length larger than message",
                    ),
                    &headers,
                ))
            }
        },
    };

    Ok(match start {
        StartLine::Request { method, uri } => Message::Request(Request {
            method,
            uri,
            headers,
            body: body.to_vec(),
        }),
        StartLine::Response { status, reason } => Message::Response(Response {
            status,
            reason,
            headers,
            body: body.to_vec(),
        }),
        // handled above
        StartLine::BadRequest { error, .. } | StartLine::Bad(error) => return Err(error),
    })
}

/// The single Content-Length value: `Ok(None)` when absent, an error phrase when it is not a
/// plain decimal number or when several values disagree (RFC 4475 §3.1.2.3 `ncl`,
/// §3.3.9 `mcl01`).
pub fn content_length(headers: &Headers) -> Result<Option<usize>, &'static str> {
    let mut found = None;
    for v in headers.get_all(&HeaderName::ContentLength) {
        let n = parse_decimal(v).ok_or("Bad Request - malformed Content-Length")?;
        match found {
            Some(prev) if prev != n => return Err("Bad Request - conflicting Content-Length"),
            _ => found = Some(n),
        }
    }
    Ok(found)
}

/// A non-empty run of ASCII digits that fits a usize.
fn parse_decimal(v: &str) -> Option<usize> {
    let v = v.trim();
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

enum StartLine {
    Request {
        method: Method,
        uri: Uri,
    },
    Response {
        status: u16,
        reason: String,
    },
    /// Looked like a request (began with a method token) but is malformed.
    BadRequest {
        method: Method,
        error: ParseError,
    },
    /// Not readable at all.
    Bad(ParseError),
}

fn parse_start_line(line: &[u8]) -> StartLine {
    use ParseErrorKind as K;
    let Ok(line) = std::str::from_utf8(line) else {
        return StartLine::Bad(ParseError::bad(
            K::Encoding,
            "Bad Request - start line is not UTF-8",
        ));
    };
    let first = line.split(' ').next().unwrap_or_default();
    if first.len() >= 4
        && first
            .get(..4)
            .is_some_and(|p| p.eq_ignore_ascii_case("SIP/"))
    {
        return parse_status_line(line);
    }
    // Request-Line = Method SP Request-URI SP SIP-Version, single SPs (RFC 4475 §3.1.2.9,
    // §3.1.2.10 allow refusing extra SP; we do, so that what we forward is never ambiguous).
    if first.is_empty() || !first.chars().all(is_token_char) {
        return StartLine::Bad(ParseError::bad(
            K::StartLine,
            "Bad Request - malformed Request-Line",
        ));
    }
    let method = Method::from_token(first);
    let bad = |kind, status, reason| StartLine::BadRequest {
        method: method.clone(),
        error: ParseError::new(kind, status, reason),
    };
    let after_method = line.get(first.len() + 1..).unwrap_or_default();
    let Some((uri, version)) = after_method.rsplit_once(' ') else {
        return bad(K::StartLine, 400, "Bad Request - malformed Request-Line");
    };
    if !version.eq_ignore_ascii_case("SIP/2.0") {
        return if version.len() > 4
            && version
                .get(..4)
                .is_some_and(|p| p.eq_ignore_ascii_case("SIP/"))
            && !version.contains(char::is_whitespace)
        {
            bad(K::Version, 505, "Version Not Supported")
        } else {
            bad(K::StartLine, 400, "Bad Request - malformed Request-Line")
        };
    }
    if uri.is_empty() || uri.contains(char::is_whitespace) {
        // lwsstart, lwsruri: extra or embedded whitespace
        return bad(K::StartLine, 400, "Bad Request - malformed Request-Line");
    }
    match parse_uri(uri) {
        Ok(uri) => StartLine::Request { method, uri },
        Err(_) => bad(K::RequestUri, 400, "Bad Request - malformed Request-URI"),
    }
}

/// Status-Line = SIP-Version SP 3DIGIT SP Reason-Phrase; the reason may be empty (RFC 4475
/// §3.1.1.13 `noreason`) or UTF-8 (§3.1.1.12 `unreason`); more than 3 digits is refused
/// (§3.1.2.19 `bigcode`).
fn parse_status_line(line: &str) -> StartLine {
    use ParseErrorKind as K;
    let (version, rest) = line.split_once(' ').unwrap_or((line, ""));
    if !version.eq_ignore_ascii_case("SIP/2.0") {
        return StartLine::Bad(ParseError::new(K::Version, 505, "Version Not Supported"));
    }
    let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
    let status = match code.parse::<u16>() {
        Ok(s) if code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit()) && s >= 100 => s,
        _ => {
            return StartLine::Bad(ParseError::bad(
                K::StartLine,
                "Bad Request - malformed Status-Line",
            ))
        }
    };
    StartLine::Response {
        status,
        reason: reason.to_string(),
    }
}

/// Header lines, with folding undone (a continuation line's leading whitespace and the line
/// break before it become one SP), names mapped through [`HeaderName::from_name`] and values
/// trimmed.
fn parse_header_lines(lines: &[&[u8]]) -> (Headers, Option<ParseError>) {
    use ParseErrorKind as K;
    let bad = |reason| ParseError::bad(K::HeaderLine, reason);
    let mut headers = Headers(Vec::with_capacity(lines.len()));
    let mut first_error = None;
    // A bad line is skipped, not the end of reading: the lines after it may hold the Via,
    // Call-ID and CSeq a 400 needs (otherwise the sender retransmits for 32 s).
    let mut fail = |e: ParseError| {
        first_error.get_or_insert(e);
    };
    let mut folding = false;
    for raw in lines {
        if raw.contains(&b'\r') {
            fail(bad("Bad Request - stray CR in header"));
            folding = false;
            continue;
        }
        let Ok(line) = std::str::from_utf8(raw) else {
            fail(ParseError::bad(
                K::Encoding,
                "Bad Request - header is not UTF-8",
            ));
            folding = false;
            continue;
        };
        if line.starts_with([' ', '\t']) {
            let last = headers.0.last_mut().filter(|_| folding);
            let Some(last) = last else {
                fail(bad("Bad Request - folded line without a header"));
                continue;
            };
            let more = line.trim_matches([' ', '\t']);
            if !more.is_empty() {
                let keep = last.value.trim_end_matches([' ', '\t']).len();
                last.value.truncate(keep);
                if !last.value.is_empty() {
                    last.value.push(' ');
                }
                last.value.push_str(more);
            }
            continue;
        }
        folding = false;
        let Some((name, value)) = line.split_once(':') else {
            fail(bad("Bad Request - header line without a colon"));
            continue;
        };
        let name = name.trim_end_matches([' ', '\t']);
        if name.is_empty() || !name.chars().all(is_token_char) {
            fail(bad("Bad Request - malformed header name"));
            continue;
        }
        headers.push(HeaderName::from_name(name), value.trim_matches([' ', '\t']));
        folding = true;
    }
    (headers, first_error)
}

/// What a server must check before acting on a parsed request (RFC 3261 §8.2, RFC 4475 §3):
///
/// * exactly one parseable From, To, Call-ID and CSeq; the CSeq number fits 32 bits and its
///   method matches the request's (§3.1.2.17 `mismatch01`) — except for an extension method,
///   which the caller refuses with 501 anyway (§3.1.2.18 `mismatch02` prefers 501 to 400);
/// * at least one Via, and every Via value parseable;
/// * Max-Forwards, when present, a single number 0–255; Expires, when present, a number;
///   Contact, when present, well-formed (`regbadct`, `badinv01`); Date, when present, an
///   RFC 1123 date in GMT (§3.1.2.12 `baddate`);
/// * Content-Length consistent with the body;
/// * a REGISTER's To is a SIP or SIPS address of record (§3.3.4 `unksm2`);
/// * no headers in a SIP Request-URI (§3.1.2.11 `escruri`);
/// * the Request-URI scheme is sip, sips or tel, otherwise 416 (§3.3.2 `unkscm`,
///   §3.3.3 `novelsc`).
pub fn validate_request(req: &Request) -> Result<(), RequestError> {
    let h = &req.headers;

    match content_length(h) {
        Err(reason) => return Err(reject(reason)),
        Ok(Some(n)) if n != req.body.len() => {
            return Err(reject("Bad Request - Content-Length does not match body"))
        }
        Ok(_) => {}
    }

    let single = |name: &HeaderName, missing, several| match h.get_all(name).count() {
        0 => Err(reject(missing)),
        1 => Ok(()),
        _ => Err(reject(several)),
    };

    let vias = h
        .vias()
        .map_err(|_| reject("Bad Request - malformed Via"))?;
    if vias.is_empty() {
        return Err(reject("Bad Request - missing Via"));
    }

    single(
        &HeaderName::From,
        "Bad Request - missing From",
        "Bad Request - more than one From",
    )?;
    h.from_addr()
        .map_err(|_| reject("Bad Request - malformed From"))?;
    single(
        &HeaderName::To,
        "Bad Request - missing To",
        "Bad Request - more than one To",
    )?;
    let to = h
        .to_addr()
        .map_err(|_| reject("Bad Request - malformed To"))?;
    single(
        &HeaderName::CallId,
        "Bad Request - missing Call-ID",
        "Bad Request - more than one Call-ID",
    )?;
    h.call_id()
        .map_err(|_| reject("Bad Request - malformed Call-ID"))?;
    single(
        &HeaderName::CSeq,
        "Bad Request - missing CSeq",
        "Bad Request - more than one CSeq",
    )?;
    let cseq = h
        .cseq()
        .map_err(|_| reject("Bad Request - malformed CSeq"))?;
    if cseq.method != req.method && !matches!(req.method, Method::Extension(_)) {
        return Err(reject("Bad Request - CSeq method does not match"));
    }

    if h.get_all(&HeaderName::MaxForwards).count() > 1 {
        return Err(reject("Bad Request - more than one Max-Forwards"));
    }
    h.max_forwards()
        .map_err(|_| reject("Bad Request - malformed Max-Forwards"))?;
    if h.get_all(&HeaderName::Expires).count() > 1 {
        return Err(reject("Bad Request - more than one Expires"));
    }
    h.expires()
        .map_err(|_| reject("Bad Request - malformed Expires"))?;
    if h.get(&HeaderName::Contact).is_some() {
        h.contacts()
            .map_err(|_| reject("Bad Request - malformed Contact"))?;
    }
    if let Some(date) = h.get(&HeaderName::Date) {
        if !is_rfc1123_gmt(date) {
            return Err(reject("Bad Request - malformed Date"));
        }
    }

    if req.method == Method::Register && !matches!(to.uri, Uri::Sip(_)) {
        return Err(reject("Bad Request - To is not a SIP address of record"));
    }

    match &req.uri {
        Uri::Sip(u) if !u.headers.is_empty() => Err(reject("Bad Request - headers in Request-URI")),
        Uri::Sip(_) | Uri::Tel(_) => Ok(()),
        Uri::Other { .. } => Err(RequestError {
            status: 416,
            reason: "Unsupported URI Scheme",
        }),
    }
}

/// The checks a response must pass before a client transaction may match it: one parseable
/// Via at least, From, To, Call-ID and a CSeq that fits 32 bits. A response that fails is
/// discarded (RFC 4475 §3.1.2.5 `scalarlg`); `status` is then meaningless.
pub fn validate_response(resp: &Response) -> Result<(), RequestError> {
    let h = &resp.headers;
    match h.vias() {
        Ok(v) if !v.is_empty() => {}
        _ => return Err(reject("Bad Request - malformed Via")),
    }
    h.from_addr()
        .map_err(|_| reject("Bad Request - malformed From"))?;
    h.to_addr()
        .map_err(|_| reject("Bad Request - malformed To"))?;
    h.call_id()
        .map_err(|_| reject("Bad Request - malformed Call-ID"))?;
    h.cseq()
        .map_err(|_| reject("Bad Request - malformed CSeq"))?;
    match content_length(h) {
        Err(reason) => Err(reject(reason)),
        Ok(Some(n)) if n != resp.body.len() => {
            Err(reject("Bad Request - Content-Length does not match body"))
        }
        Ok(_) => Ok(()),
    }
}

/// RFC 3261 §25.1 `rfc1123-date`: `Sun, 06 Nov 1994 08:49:37 GMT` — the zone must be GMT.
fn is_rfc1123_gmt(v: &str) -> bool {
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    let parts: Vec<&str> = v.split_whitespace().collect();
    let [wkday, day, month, year, time, zone] = parts.as_slice() else {
        return false;
    };
    let time_ok = {
        let t: Vec<&str> = time.split(':').collect();
        t.len() == 3 && t.iter().all(|p| digits(p, 2))
    };
    wkday.strip_suffix(',').is_some_and(|d| DAYS.contains(&d))
        && digits(day, 2)
        && MONTHS.contains(month)
        && digits(year, 4)
        && time_ok
        && *zone == "GMT"
}

/// Literal SIP text to messages, for tests across the crate.
#[cfg(test)]
pub(crate) mod test_text {
    use super::parse_message;
    use crate::message::{Message, Request, Response};

    pub(crate) fn req(text: &str) -> Request {
        match parse_message(text.as_bytes()).unwrap() {
            Message::Request(r) => r,
            Message::Response(_) => panic!("expected a request"),
        }
    }

    pub(crate) fn resp(text: &str) -> Response {
        match parse_message(text.as_bytes()).unwrap() {
            Message::Response(r) => r,
            Message::Request(_) => panic!("expected a response"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_text::req;
    use super::*;

    const OPTIONS: &str = "OPTIONS sip:bob@example.com SIP/2.0\r\n\
        Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
        Max-Forwards: 70\r\n\
        From: <sip:alice@example.com>;tag=1\r\n\
        To: <sip:bob@example.com>\r\n\
        Call-ID: abc\r\n\
        CSeq: 1 OPTIONS\r\n\
        Content-Length: 0\r\n\r\n";

    #[test]
    fn plain_request_parses_and_validates() {
        let r = req(OPTIONS);
        assert_eq!(r.method, Method::Options);
        assert_eq!(r.headers.get(&HeaderName::CallId), Some("abc"));
        assert!(r.body.is_empty());
        validate_request(&r).unwrap();
    }

    #[test]
    fn bare_lf_and_leading_crlf_are_accepted() {
        let text = format!("\r\n\r\n{}", OPTIONS.replace("\r\n", "\n"));
        let r = req(&text);
        assert_eq!(r.headers.cseq().unwrap().seq, 1);
        validate_request(&r).unwrap();
    }

    #[test]
    fn missing_content_length_takes_rest_of_datagram() {
        let text = OPTIONS.replace("Content-Length: 0\r\n", "") + "hello";
        assert_eq!(req(&text).body, b"hello");
    }

    #[test]
    fn content_length_cuts_extra_bytes_and_refuses_short_bodies() {
        let text = OPTIONS.replace("Content-Length: 0", "Content-Length: 3") + "abcdef";
        assert_eq!(req(&text).body, b"abc");
        let text = OPTIONS.replace("Content-Length: 0", "Content-Length: 9") + "abc";
        let e = parse_message(text.as_bytes()).unwrap_err();
        assert_eq!((e.status, e.kind), (400, ParseErrorKind::Truncated));
        let (method, headers) = *e.request_head.unwrap();
        assert_eq!(method, Method::Options);
        assert_eq!(headers.get(&HeaderName::CallId), Some("abc"));
    }

    #[test]
    fn a_request_without_via_has_no_head_to_answer_with() {
        let text = OPTIONS.replace("Via: SIP", "Via SIP");
        let e = parse_message(text.as_bytes()).unwrap_err();
        assert_eq!(e.kind, ParseErrorKind::HeaderLine);
        assert!(e.request_head.is_none());
    }

    #[test]
    fn folded_line_before_any_header_is_refused() {
        let e = parse_message(b"OPTIONS sip:a@b SIP/2.0\r\n folded: x\r\n\r\n").unwrap_err();
        assert_eq!(e.kind, ParseErrorKind::HeaderLine);
        assert!(e.request_head.is_none());
    }

    #[test]
    fn status_line_forms() {
        let Message::Response(r) = parse_message(b"SIP/2.0 180\r\nl: 0\r\n\r\n").unwrap() else {
            panic!("expected a response")
        };
        assert_eq!((r.status, r.reason.as_str()), (180, ""));
        for bad in ["SIP/2.0 1800 x", "SIP/2.0 abc x", "SIP/2.0 099 x"] {
            let e = parse_message(format!("{bad}\r\n\r\n").as_bytes()).unwrap_err();
            assert_eq!(e.kind, ParseErrorKind::StartLine, "{bad}");
        }
        let e = parse_message(b"SIP/3.0 200 OK\r\n\r\n").unwrap_err();
        assert_eq!(e.status, 505);
    }

    #[test]
    fn empty_and_keepalive_buffers() {
        for b in [&b""[..], b"\r\n\r\n", b"\n"] {
            assert_eq!(parse_message(b).unwrap_err().kind, ParseErrorKind::Empty);
        }
    }

    #[test]
    fn non_utf8_header_is_refused_with_the_other_headers() {
        let mut text = OPTIONS.as_bytes().to_vec();
        let at = OPTIONS.find("Max-Forwards").unwrap() + 3;
        text.splice(at..at, [0xff, 0xfe]);
        let e = parse_message(&text).unwrap_err();
        assert_eq!(e.kind, ParseErrorKind::Encoding);
        let (_, headers) = *e.request_head.unwrap();
        assert_eq!(headers.get(&HeaderName::CallId), Some("abc"));
    }

    #[test]
    fn a_line_without_colon_still_leaves_a_head_to_answer_400_with() {
        let text = OPTIONS.replace("Max-Forwards: 70", "Max-Forwards 70");
        assert_ne!(text, OPTIONS, "the fixture must have the line");
        let e = parse_message(text.as_bytes()).unwrap_err();
        assert_eq!((e.status, e.kind), (400, ParseErrorKind::HeaderLine));
        let (method, headers) = *e.request_head.unwrap();
        assert_eq!(method, Method::Options);
        assert_eq!(headers.get(&HeaderName::CallId), Some("abc"));
        assert!(headers.top_via().is_ok());
        assert_eq!(headers.get(&HeaderName::MaxForwards), None);
    }

    #[test]
    fn a_continuation_of_a_skipped_line_is_not_glued_to_the_header_before() {
        let text = OPTIONS.replace("Max-Forwards: 70", "Max-Forwards 70\r\n more");
        let e = parse_message(text.as_bytes()).unwrap_err();
        let (_, headers) = *e.request_head.unwrap();
        assert!(
            headers.0.iter().all(|h| !h.value.contains("more")),
            "{headers:?}"
        );
    }

    #[test]
    fn validate_catches_inconsistent_requests() {
        let cases = [
            (
                "CSeq: 1 OPTIONS",
                "CSeq: 1 INVITE",
                "Bad Request - CSeq method does not match",
            ),
            ("Call-ID: abc\r\n", "", "Bad Request - missing Call-ID"),
            (
                "Max-Forwards: 70",
                "Max-Forwards: 256",
                "Bad Request - malformed Max-Forwards",
            ),
            (
                "Max-Forwards: 70",
                "Max-Forwards: +7",
                "Bad Request - malformed Max-Forwards",
            ),
            (
                "Content-Length: 0\r\n",
                "Expires: soon\r\n",
                "Bad Request - malformed Expires",
            ),
            (
                "Content-Length: 0\r\n",
                "Date: Sat, 13 Nov 2010 23:29:00 GMT\r\n",
                "",
            ),
        ];
        for (from, to, reason) in cases {
            let r = req(&OPTIONS.replace(from, to));
            match validate_request(&r) {
                Ok(()) => assert_eq!(reason, "", "{to}"),
                Err(e) => assert_eq!((e.status, e.reason), (400, reason), "{to}"),
            }
        }
        let r = req(&OPTIONS.replace(
            "Content-Length: 0\r\n",
            "Date: Sat, 13 Nov 2010 23:29:00 PST\r\n",
        ));
        assert_eq!(
            validate_request(&r).unwrap_err().reason,
            "Bad Request - malformed Date"
        );
    }

    #[test]
    fn tel_uri_is_supported_other_schemes_get_416() {
        let r = req(&OPTIONS.replacen("sip:bob@example.com", "tel:+15551234", 1));
        validate_request(&r).unwrap();
        let r = req(&OPTIONS.replacen("sip:bob@example.com", "mailto:bob@example.com", 1));
        assert_eq!(validate_request(&r).unwrap_err().status, 416);
    }
}
