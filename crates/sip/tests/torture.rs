//! RFC 4475 (SIP torture test messages) and RFC 5118 (IPv6 torture tests) against our parser.
//!
//! Every file of `tests/data/rfc4475` has a row below with its RFC 4475 section and the verdict
//! that section asks for; the files themselves come byte-exact from resiprocate/sipsorcery (see
//! `tests/data/rfc4475/SOURCE.txt`). Verdicts:
//!
//! * `Accept` — parses, and `validate_request` / `validate_response` pass. Anything further
//!   (501 for an unknown method, 420, 415, 401, 406, 483) is the daemon's decision, not the
//!   parser's, and is noted in the row's comment.
//! * `ParseErr` — `parse_message` refuses it with that status; `head` says whether the request
//!   head was readable so that the daemon can answer (a response or unreadable request is
//!   dropped).
//! * `Refuse` — parses, but `validate_request` gives that status and reason.
//! * `Discard` — a response that parses but fails `validate_response`, so a client drops it.

// A test file: helpers outside #[test] fns may unwrap too.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::{Path, PathBuf};

use sip::framing::{Frame, StreamFramer};
use sip::message::{Header, HeaderName, Headers, Host, Message, Method, Request, Response, Uri};
use sip::parse::{parse_message, validate_request, validate_response, ParseErrorKind};

#[derive(Debug, Clone, Copy)]
enum Verdict {
    Accept,
    ParseErr {
        status: u16,
        kind: ParseErrorKind,
        head: bool,
    },
    Refuse(u16, &'static str),
    Discard(&'static str),
}
use Verdict::*;

const fn parse_err(status: u16, kind: ParseErrorKind, head: bool) -> Verdict {
    ParseErr { status, kind, head }
}
const fn bad(reason: &'static str) -> Verdict {
    Refuse(400, reason)
}

/// (file, RFC 4475 section, verdict)
const RFC4475: &[(&str, &str, Verdict)] = &[
    // 3.1.1 Valid messages: every element must take these.
    ("wsinv.dat", "3.1.1.1", Accept),       // short tortuous INVITE
    ("intmeth.dat", "3.1.1.2", Accept),     // wide range of valid characters; daemon: 501
    ("esc01.dat", "3.1.1.3", Accept),       // valid use of % escaping
    ("escnull.dat", "3.1.1.4", Accept),     // escaped NULs in URIs
    ("esc02.dat", "3.1.1.5", Accept),       // % that is not an escape; daemon: 501 (unknown method)
    ("lwsdisp.dat", "3.1.1.6", Accept),     // no LWS between display name and <
    ("longreq.dat", "3.1.1.7", Accept),     // long values in header fields
    ("dblreq.dat", "3.1.1.8", Accept),      // extra trailing octets in a UDP datagram
    ("semiuri.dat", "3.1.1.9", Accept),     // semicolon-separated parameters in URI user part
    ("transports.dat", "3.1.1.10", Accept), // varied and unknown transport types
    ("mpart01.dat", "3.1.1.11", Accept),    // multipart MIME message
    ("unreason.dat", "3.1.1.12", Accept),   // unusual reason phrase
    ("noreason.dat", "3.1.1.13", Accept),   // empty reason phrase
    // 3.1.2 Invalid messages.
    (
        "badinv01.dat",
        "3.1.2.1",
        bad("Bad Request - malformed Via"),
    ), // extra separators
    (
        "clerr.dat",
        "3.1.2.2", // Content-Length larger than message (UDP): 400
        parse_err(400, ParseErrorKind::Truncated, true),
    ),
    (
        "ncl.dat",
        "3.1.2.3", // negative Content-Length: 400
        parse_err(400, ParseErrorKind::ContentLength, true),
    ),
    (
        "scalar02.dat",
        "3.1.2.4",
        bad("Bad Request - malformed CSeq"),
    ), // overlarge CSeq: 400
    (
        "scalarlg.dat",
        "3.1.2.5",
        Discard("Bad Request - malformed CSeq"),
    ), // response: discard
    ("quotbal.dat", "3.1.2.6", bad("Bad Request - malformed To")), // unterminated quote: 400
    (
        "ltgtruri.dat",
        "3.1.2.7", // <> around Request-URI: 400
        parse_err(400, ParseErrorKind::RequestUri, true),
    ),
    (
        "lwsruri.dat",
        "3.1.2.8", // LWS inside the Request-URI: 400 (acceptable to reject)
        parse_err(400, ParseErrorKind::StartLine, true),
    ),
    (
        "lwsstart.dat",
        "3.1.2.9", // several SP between Request-Line elements: acceptable to reject
        parse_err(400, ParseErrorKind::StartLine, true),
    ),
    (
        "trws.dat",
        "3.1.2.10", // SP after SIP-Version: acceptable to reject
        parse_err(400, ParseErrorKind::StartLine, true),
    ),
    (
        "escruri.dat",
        "3.1.2.11",
        bad("Bad Request - headers in Request-URI"),
    ), // 400
    (
        "baddate.dat",
        "3.1.2.12",
        bad("Bad Request - malformed Date"),
    ), // non-GMT Date: 400
    (
        "regbadct.dat",
        "3.1.2.13",
        bad("Bad Request - malformed Contact"),
    ), // URI with ? unbracketed
    (
        "badaspec.dat",
        "3.1.2.14",
        bad("Bad Request - malformed To"),
    ), // spaces inside <>
    ("baddn.dat", "3.1.2.15", bad("Bad Request - malformed From")), // unquoted non-token name
    (
        "badvers.dat",
        "3.1.2.16", // SIP/7.0: 505
        parse_err(505, ParseErrorKind::Version, true),
    ),
    (
        "mismatch01.dat",
        "3.1.2.17",
        bad("Bad Request - CSeq method does not match"),
    ), // 400
    ("mismatch02.dat", "3.1.2.18", Accept), // unknown method, CSeq mismatch: daemon answers 501
    (
        "bigcode.dat",
        "3.1.2.19", // status code 4294967301: response dropped
        parse_err(400, ParseErrorKind::StartLine, false),
    ),
    // 3.2 Transaction layer semantics.
    ("badbranch.dat", "3.2.1", Accept), // branch=z9hG4bK with no id: parser must not break
    // 3.3 Application layer semantics.
    ("insuf.dat", "3.3.1", bad("Bad Request - missing From")), // missing To/From/Call-ID: 400
    ("unkscm.dat", "3.3.2", Refuse(416, "Unsupported URI Scheme")), // unknown scheme: 416
    (
        "novelsc.dat",
        "3.3.3",
        Refuse(416, "Unsupported URI Scheme"),
    ), // soap.beep: 416
    (
        "unksm2.dat",
        "3.3.4", // non-SIP schemes in To/From/Contact: a registrar answers 400 (To is no AOR)
        bad("Bad Request - To is not a SIP address of record"),
    ),
    ("bext01.dat", "3.3.5", Accept), // unknown Require/Proxy-Require: daemon answers 420
    ("invut.dat", "3.3.6", Accept),  // unknown body type: daemon answers 415
    ("regaut01.dat", "3.3.7", Accept), // unknown auth scheme: registrar answers 401
    (
        "multi01.dat",
        "3.3.8",
        bad("Bad Request - more than one From"),
    ), // multiple values: 400
    (
        "mcl01.dat",
        "3.3.9", // conflicting Content-Length: 400 (UDP), close (TCP)
        parse_err(400, ParseErrorKind::ContentLength, true),
    ),
    ("bcast.dat", "3.3.10", Accept), // 200 with broadcast Via: well formed (client drops it)
    ("zeromf.dat", "3.3.11", Accept), // Max-Forwards 0: legal; daemon answers OPTIONS or 483
    ("cparam01.dat", "3.3.12", Accept), // REGISTER, Contact header parameter
    ("cparam02.dat", "3.3.13", Accept), // REGISTER, Contact URI parameter
    ("regescrt.dat", "3.3.14", Accept), // REGISTER, Contact URI with escaped header
    ("sdp01.dat", "3.3.15", Accept), // unacceptable Accept: daemon answers 406
    // 3.4 Backward compatibility.
    ("inv2543.dat", "3.4.1", Accept), // RFC 2543 INVITE: no branch, tag, Content-Length, M-F
    // Not from RFC 4475: a resiprocate sample. Its Request-Line has no SIP-Version and one
    // header line has no colon, so it is malformed and its header section unreadable.
    (
        "test.dat",
        "-",
        parse_err(400, ParseErrorKind::StartLine, false),
    ),
];

fn data(dir: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(dir)
}

fn read(dir: &str, name: &str) -> Vec<u8> {
    fs::read(data(dir).join(name)).unwrap_or_else(|e| panic!("{dir}/{name}: {e}"))
}

fn req(dir: &str, name: &str) -> Request {
    match parse_message(&read(dir, name)) {
        Ok(Message::Request(r)) => r,
        other => panic!("{name}: expected a request, got {other:?}"),
    }
}

fn resp(name: &str) -> Response {
    match parse_message(&read("rfc4475", name)) {
        Ok(Message::Response(r)) => r,
        other => panic!("{name}: expected a response, got {other:?}"),
    }
}

/// Check one message against its verdict; `Err(description)` when it does not match.
fn check(bytes: &[u8], verdict: Verdict) -> Result<(), String> {
    let parsed = parse_message(bytes);
    match (verdict, parsed) {
        (ParseErr { status, kind, head }, Err(e)) => {
            if (e.status, e.kind, e.request_head.is_some()) == (status, kind, head) {
                Ok(())
            } else {
                Err(format!("refused with {e:?}"))
            }
        }
        (ParseErr { .. }, Ok(m)) => Err(format!("parsed: {m:?}")),
        (_, Err(e)) => Err(format!("parse error {} {}", e.status, e.reason)),
        (Accept, Ok(Message::Request(r))) => validate_request(&r).map_err(|e| e.to_string()),
        (Accept, Ok(Message::Response(r))) => validate_response(&r).map_err(|e| e.to_string()),
        (Refuse(status, reason), Ok(Message::Request(r))) => match validate_request(&r) {
            Err(e) if (e.status, e.reason) == (status, reason) => Ok(()),
            other => Err(format!("validate_request gave {other:?}")),
        },
        (Discard(reason), Ok(Message::Response(r))) => match validate_response(&r) {
            Err(e) if e.reason == reason => Ok(()),
            other => Err(format!("validate_response gave {other:?}")),
        },
        (v, Ok(m)) => Err(format!("verdict {v:?} does not fit {m:?}")),
    }
}

#[test]
fn rfc4475_table_covers_every_file() {
    let mut files: Vec<String> = fs::read_dir(data("rfc4475"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".dat"))
        .collect();
    files.sort();
    let mut named: Vec<String> = RFC4475.iter().map(|(f, _, _)| f.to_string()).collect();
    named.sort();
    assert_eq!(files, named);
    assert_eq!(RFC4475.iter().filter(|(_, s, _)| *s != "-").count(), 49);
}

#[test]
fn rfc4475_verdicts() {
    let mut failures = Vec::new();
    for (file, section, verdict) in RFC4475 {
        if let Err(why) = check(&read("rfc4475", file), *verdict) {
            failures.push(format!("{section} {file}: expected {verdict:?}, {why}"));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn baddn_variant_without_final_blank_line_gets_the_same_verdict() {
    // The resiprocate copy lacks the blank line ending the header section; ersip's has it.
    let variant = read("rfc4475/variants", "baddn.dat.ersip");
    check(&variant, bad("Bad Request - malformed From")).unwrap();
    assert_eq!(
        &variant[..variant.len() - 2],
        &read("rfc4475", "baddn.dat")[..]
    );
}

fn sip_uri(u: &Uri) -> &sip::SipUri {
    u.as_sip().expect("a SIP URI")
}

#[test]
fn wsinv_values() {
    let r = req("rfc4475", "wsinv.dat");
    let h = &r.headers;
    assert_eq!(r.method, Method::Invite);
    assert!(sip_uri(&r.uri).params.get("unknownparam") == Some(None));
    let to = h.to_addr().unwrap();
    assert_eq!(to.tag(), Some("1918181833n"));
    assert_eq!(to.uri.user(), Some("vivekg"));
    let from = h.from_addr().unwrap();
    assert_eq!(from.display.as_deref(), Some(r#"J Rosenberg \""#));
    assert_eq!(from.tag(), Some("98asjd8"));
    assert_eq!(h.max_forwards().unwrap(), Some(68));
    let cseq = h.cseq().unwrap();
    assert_eq!((cseq.seq, cseq.method), (9, Method::Invite));
    let vias = h.vias().unwrap();
    let summary: Vec<(&str, String, Option<&str>)> = vias
        .iter()
        .map(|v| (v.transport.as_str(), v.host.to_string(), v.branch()))
        .collect();
    assert_eq!(
        summary,
        [
            ("UDP", "192.0.2.2".to_string(), Some("390skdjuw")),
            (
                "TCP",
                "spindle.example.com".to_string(),
                Some("z9hG4bK9ikj8")
            ),
            ("UDP", "192.168.255.111".to_string(), Some("z9hG4bK30239")),
        ]
    );
    assert_eq!(h.get(&HeaderName::Subject), Some(""));
    assert_eq!(
        h.get(&HeaderName::from_name("NewFangledHeader")),
        Some("newfangled value continued newfangled value")
    );
    assert_eq!(
        h.get(&HeaderName::from_name("UnknownHeaderWithUnusualValue")),
        Some(";;,,;;,;")
    );
    assert_eq!(
        h.get(&HeaderName::Route),
        Some("<sip:services.example.com;lr;unknownwith=value;unknown-no-value>")
    );
    let contacts = h.contacts().unwrap().unwrap();
    assert_eq!(contacts.len(), 1);
    let c = &contacts[0];
    assert_eq!(c.display.as_deref(), Some(r#"Quoted string """#));
    assert_eq!(c.params.value("newparam"), Some("newvalue"));
    assert_eq!(c.params.get("secondparam"), Some(None));
    assert_eq!(c.params.value("q"), Some("0.33"));
    assert_eq!(r.body.len(), 150);
    assert!(r.body.starts_with(b"v=0\r\n"));
}

#[test]
fn intmeth_values() {
    const METHOD: &str = "!interesting-Method0123456789_*+`.%indeed'~";
    let r = req("rfc4475", "intmeth.dat");
    let h = &r.headers;
    assert_eq!(r.method, Method::Extension(METHOD.into()));
    let u = sip_uri(&r.uri);
    assert_eq!(
        u.user.as_deref(),
        Some("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
    );
    assert_eq!(
        u.password.as_deref(),
        Some("&it+has=1,weird!*pas$wo~d_too.(doesn't-it)")
    );
    assert_eq!(u.host, Host::Domain("example.com".into()));
    assert_eq!(h.top_via().unwrap().branch(), Some("z9hG4bK-.!%66*_+`'~"));
    // quoted-pairs in the display name, including a quoted NUL
    let to = h.to_addr().unwrap();
    assert_eq!(to.display.as_deref(), Some("BEL:\x07 NUL:\x00 DEL:\x7f"));
    assert_eq!(
        to.uri.user(),
        Some("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
    );
    let from = h.from_addr().unwrap();
    assert_eq!(
        from.display.as_deref(),
        Some("token1~` token2'+_ token3*%!.-")
    );
    assert_eq!(from.tag(), Some("_token~1'+`*%!-."));
    assert_eq!(
        from.params.value("fromParam''~+*_!.-%"),
        Some(
            "\"\u{0440}\u{0430}\u{0431}\u{043e}\u{0442}\u{0430}\u{044e}\u{0449}\u{0438}\u{0439}\""
        )
    );
    assert_eq!(
        h.call_id().unwrap(),
        "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    );
    assert_eq!(h.cseq().unwrap().method, Method::Extension(METHOD.into()));
    assert_eq!(h.max_forwards().unwrap(), Some(255));
    assert_eq!(
        h.get(&HeaderName::from_name("extensionHeader-!.%*+_`'~")),
        Some("\u{feff}\u{5927}\u{505c}\u{96fb}")
    );
}

#[test]
fn escaping_values() {
    // 3.1.1.3 esc01
    let r = req("rfc4475", "esc01.dat");
    assert_eq!(r.uri.user(), Some("sips:user@example.com"));
    assert_eq!(
        r.uri.as_sip().unwrap().host,
        Host::Domain("example.net".into())
    );
    assert_eq!(r.headers.to_addr().unwrap().uri.user(), Some("user"));
    assert_eq!(
        r.headers.from_addr().unwrap().uri.user(),
        Some("I have spaces")
    );
    let c = r.headers.contacts().unwrap().unwrap();
    assert_eq!(c[0].uri.user(), Some("caller"));
    assert_eq!(r.body.len(), 150);

    // 3.1.1.4 escnull
    let r = req("rfc4475", "escnull.dat");
    assert_eq!(
        r.headers.to_addr().unwrap().uri.user(),
        Some("null-\0-null")
    );
    let users: Vec<String> = r
        .headers
        .contacts()
        .unwrap()
        .unwrap()
        .iter()
        .map(|c| c.uri.user().unwrap().to_string())
        .collect();
    assert_eq!(users, ["\0", "\0\0"]);

    // 3.1.1.5 esc02: % is no escape in a method or header name
    let r = req("rfc4475", "esc02.dat");
    assert_eq!(r.method, Method::Extension("RE%47IST%45R".into()));
    assert_eq!(
        r.headers.to_addr().unwrap().display.as_deref(),
        Some("%Z%45")
    );
    assert_eq!(r.headers.get_all(&HeaderName::Contact).count(), 2);
    assert_eq!(
        r.headers.get(&HeaderName::from_name("C%6Fntact")),
        Some("<sip:alias2@host2.example.com>")
    );
    assert_eq!(
        r.headers.top_via().unwrap().branch(),
        Some("z9hG4bK209%fzsnel234")
    );

    // 3.3.14 regescrt: an escaped header in a bracketed Contact URI is kept as received
    let r = req("rfc4475", "regescrt.dat");
    let c = r.headers.contacts().unwrap().unwrap();
    let u = sip_uri(&c[0].uri);
    assert_eq!(
        u.headers,
        [("Route".to_string(), "%3Csip:sip.example.com%3E".to_string())]
    );
}

#[test]
fn long_and_odd_values() {
    // 3.1.1.7 longreq
    let r = req("rfc4475", "longreq.dat");
    let h = &r.headers;
    let to = h.to_addr().unwrap();
    assert!(to
        .display
        .as_deref()
        .unwrap()
        .starts_with("I have a user name of extremeextreme"));
    let tu = sip_uri(&to.uri);
    assert_eq!(tu.port, Some(6000));
    assert_eq!(tu.params.0.len(), 3);
    assert!(tu.params.0[2].0.ends_with("ParameterNameWithNoValue") && tu.params.0[2].1.is_none());
    let from = h.from_addr().unwrap();
    assert_eq!(from.tag().unwrap().len(), 155);
    assert!(from.tag().unwrap().ends_with("982982424"));
    assert_eq!(from.params.0.len(), 3);
    assert!(h.call_id().unwrap().ends_with("reallylongcallid"));
    let vias = h.vias().unwrap();
    assert_eq!(vias.len(), 34);
    assert_eq!(vias[0].host.to_string(), "sip33.example.com");
    assert_eq!(vias[33].params.value("received"), Some("192.0.2.5"));
    assert!(vias[33].branch().unwrap().ends_with("longbranchvalue"));
    let unknown = h
        .iter()
        .find(|Header { name, .. }| name.as_str().starts_with("Unknown-LongLong"))
        .unwrap();
    assert!(unknown.value.ends_with("-parameter-value"));
    assert_eq!(r.body.len(), 150);

    // 3.1.1.6 lwsdisp
    let r = req("rfc4475", "lwsdisp.dat");
    assert_eq!(
        r.headers.from_addr().unwrap().display.as_deref(),
        Some("caller")
    );

    // 3.1.1.9 semiuri
    let r = req("rfc4475", "semiuri.dat");
    assert_eq!(r.uri.user(), Some("user;par=u@example.net"));
    assert_eq!(sip_uri(&r.uri).host, Host::Domain("example.com".into()));
    assert!(sip_uri(&r.uri).params.0.is_empty());
    assert_eq!(r.headers.values(&HeaderName::Accept).count(), 6);

    // 3.1.1.10 transports
    let r = req("rfc4475", "transports.dat");
    let t: Vec<String> = r
        .headers
        .vias()
        .unwrap()
        .into_iter()
        .map(|v| v.transport)
        .collect();
    assert_eq!(t, ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]);
}

#[test]
fn framing_and_body_values() {
    // 3.1.1.8 dblreq: only the first request, trailing INVITE discarded
    let r = req("rfc4475", "dblreq.dat");
    assert_eq!(r.method, Method::Register);
    assert!(r.body.is_empty());
    assert_eq!(
        r.headers.call_id().unwrap(),
        "dblreq.0ha0isndaksdj99sdfafnl3lk233412"
    );

    // 3.1.1.11 mpart01: binary body taken whole
    let r = req("rfc4475", "mpart01.dat");
    assert_eq!(r.body.len(), 553);
    assert!(r.body.ends_with(b"--7a9cbec02ceef655--\r\n"));

    // 3.4.1 inv2543: no Content-Length on UDP, body is the rest of the datagram
    let bytes = read("rfc4475", "inv2543.dat");
    let r = req("rfc4475", "inv2543.dat");
    let pos = bytes.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    assert_eq!(r.body, &bytes[pos + 4..]);
    assert_eq!(r.headers.top_via().unwrap().branch(), None);
    assert_eq!(r.headers.from_addr().unwrap().tag(), None);
    assert_eq!(r.headers.max_forwards().unwrap(), None);

    // 3.1.2.2 clerr and 3.3.9 mcl01: the head is there to answer 400 with
    for (file, method) in [
        ("clerr.dat", Method::Invite),
        ("mcl01.dat", Method::Options),
    ] {
        let e = parse_message(&read("rfc4475", file)).unwrap_err();
        let (m, h) = *e.request_head.unwrap();
        assert_eq!(m, method);
        let answer = Response::to_headers(&h, e.status, e.reason);
        assert_eq!(answer.headers.get_all(&HeaderName::Via).count(), 1);
        assert!(answer.headers.call_id().is_ok());
    }
}

#[test]
fn responses_and_semantic_cases() {
    // 3.1.1.12 unreason
    let r = resp("unreason.dat");
    assert_eq!(r.status, 200);
    assert!(r.reason.starts_with("= 2**3 * 5**2 \u{043d}\u{043e}"));
    assert_eq!(r.body.len(), 154);
    // 3.1.1.13 noreason
    let r = resp("noreason.dat");
    assert_eq!((r.status, r.reason.as_str()), (100, ""));
    // 3.3.10 bcast
    let r = resp("bcast.dat");
    let vias = r.headers.vias().unwrap();
    assert_eq!(vias[1].host, Host::V4("255.255.255.255".parse().unwrap()));

    // 3.1.2.18 mismatch02: extension method kept for the daemon's 501
    let r = req("rfc4475", "mismatch02.dat");
    assert_eq!(r.method, Method::Extension("NEWMETHOD".into()));
    assert_eq!(r.headers.cseq().unwrap().method, Method::Invite);
    // 3.3.2 unkscm: opaque URI kept
    let r = req("rfc4475", "unkscm.dat");
    assert_eq!(r.uri.scheme(), "nobodyknowsthisscheme");
    // 3.2.1 badbranch
    let r = req("rfc4475", "badbranch.dat");
    assert_eq!(r.headers.top_via().unwrap().branch(), Some("z9hG4bK"));
    // 3.3.11 zeromf
    let r = req("rfc4475", "zeromf.dat");
    assert_eq!(r.headers.max_forwards().unwrap(), Some(0));
    // 3.3.12 / 3.3.13: header parameter versus URI parameter
    let c = req("rfc4475", "cparam01.dat")
        .headers
        .contacts()
        .unwrap()
        .unwrap();
    assert!(c[0].params.contains("unknownparam") && sip_uri(&c[0].uri).params.0.is_empty());
    let c = req("rfc4475", "cparam02.dat")
        .headers
        .contacts()
        .unwrap()
        .unwrap();
    assert!(
        !c[0].params.contains("unknownparam") && sip_uri(&c[0].uri).params.contains("unknownparam")
    );
    // 3.3.5 bext01: option tags readable for the 420
    let r = req("rfc4475", "bext01.dat");
    let tags: Vec<&str> = r.headers.tokens(&HeaderName::Require).collect();
    assert_eq!(tags, ["nothingSupportsThis", "nothingSupportsThisEither"]);
}

/// (file, expected verdict) per RFC 5118 §4 (and ersip's verdicts in SOURCE.txt).
const RFC5118: &[(&str, bool)] = &[
    ("ipv6-good", true),                     // 4.1
    ("ipv6-bad", false),                     // 4.2: no brackets in R-URI
    ("port-ambiguous", true),                // 4.3: syntactically valid, port is part of addr
    ("port-unambiguous", true),              // 4.3
    ("via-received-param-with-delim", true), // 4.4/4.5
    ("via-received-param-no-delim", true),   // 4.5
    ("ipv6-in-sdp", true),                   // 4.6
    ("mult-ip-in-header", true),             // 4.7
    ("mult-ip-in-sdp", true),                // 4.8
    ("ipv4-mapped-ipv6", true),              // 4.9
    ("ipv6-correct-abnf-2-colons", true),    // 4.10
    ("ipv6-bug-abnf-3-colons", false),       // 4.10: ":::" is not an IPv6 address
];

fn v6(s: &str) -> Host {
    Host::V6(s.parse().unwrap())
}

#[test]
fn rfc5118_verdicts_and_hosts() {
    let mut files: Vec<String> = fs::read_dir(data("rfc5118"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n != "SOURCE.txt")
        .collect();
    files.sort();
    let mut named: Vec<&str> = RFC5118.iter().map(|(f, _)| *f).collect();
    named.sort();
    assert_eq!(files, named);
    for (file, good) in RFC5118 {
        let verdict = if *good {
            Accept
        } else {
            parse_err(400, ParseErrorKind::RequestUri, true)
        };
        check(&read("rfc5118", file), verdict).unwrap_or_else(|e| panic!("{file}: {e}"));
    }

    let host_port = |file: &str| {
        let u = req("rfc5118", file).uri;
        let u = sip_uri(&u);
        (u.host.clone(), u.port)
    };
    assert_eq!(host_port("ipv6-good"), (v6("2001:db8::10"), None));
    assert_eq!(host_port("port-ambiguous"), (v6("2001:db8::10:5070"), None));
    assert_eq!(
        host_port("port-unambiguous"),
        (v6("2001:db8::10"), Some(5070))
    );
    assert_eq!(
        host_port("ipv6-correct-abnf-2-colons"),
        (v6("2001:db8::c000:201"), None)
    );

    let r = req("rfc5118", "ipv6-good");
    assert_eq!(r.headers.top_via().unwrap().host, v6("2001:db8::9:1"));
    let c = r.headers.contacts().unwrap().unwrap();
    assert_eq!(sip_uri(&c[0].uri).host, v6("2001:db8::1"));

    let r = req("rfc5118", "ipv4-mapped-ipv6");
    let vias = r.headers.vias().unwrap();
    assert_eq!(
        (vias[0].host.clone(), vias[0].port),
        (v6("::ffff:192.0.2.10"), Some(19823))
    );
    assert_eq!(vias[1].host, v6("::ffff:192.0.2.2"));

    let r = req("rfc5118", "mult-ip-in-header");
    let vias = r.headers.vias().unwrap();
    assert_eq!(
        (vias[0].host.clone(), vias[0].port),
        (v6("2001:db8::9:1"), Some(6050))
    );
    assert_eq!(vias[1].host, Host::V4("192.0.2.1".parse().unwrap()));
    assert_eq!(vias[2].host, v6("2001:db8::9:255"));
    assert_eq!(vias[2].params.value("received"), Some("192.0.2.200"));

    for (file, received) in [
        ("via-received-param-no-delim", "2001:db8::9:255"),
        ("via-received-param-with-delim", "[2001:db8::9:255]"),
    ] {
        let r = req("rfc5118", file);
        assert_eq!(
            r.headers.top_via().unwrap().params.value("received"),
            Some(received)
        );
    }

    let r = req("rfc5118", "ipv6-in-sdp");
    assert!(r.body.windows(3).any(|w| w == b"IP6"));
}

fn all_corpus_files() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for dir in ["rfc4475", "rfc4475/variants", "rfc5118"] {
        let mut names: Vec<String> = fs::read_dir(data(dir))
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|e| e.file_type().unwrap().is_file())
            .map(|e| e.file_name().into_string().unwrap())
            .filter(|n| n != "SOURCE.txt")
            .collect();
        names.sort();
        for n in names {
            out.push((format!("{dir}/{n}"), read(dir, &n)));
        }
    }
    out
}

/// `to_bytes` always writes one Content-Length with the body's real length, at the end of the
/// headers; compare header sections with Content-Length set aside.
fn without_content_length(h: &Headers) -> Headers {
    Headers(
        h.iter()
            .filter(|x| x.name != HeaderName::ContentLength)
            .cloned()
            .collect(),
    )
}

#[test]
fn serialize_then_parse_gives_the_same_message() {
    let mut checked = 0;
    for (name, bytes) in all_corpus_files() {
        let Ok(first) = parse_message(&bytes) else {
            continue;
        };
        let again = parse_message(&first.to_bytes())
            .unwrap_or_else(|e| panic!("{name}: reparse failed: {e}"));
        assert_eq!(
            again.headers().get(&HeaderName::ContentLength),
            Some(first.body().len().to_string().as_str()),
            "{name}"
        );
        let strip = |m: &Message| -> Message {
            let mut m = m.clone();
            *m.headers_mut() = without_content_length(m.headers());
            m
        };
        assert_eq!(strip(&again), strip(&first), "{name}");
        // and serialization is a fixed point
        assert_eq!(again.to_bytes(), first.to_bytes(), "{name}");
        checked += 1;
    }
    assert!(checked >= 45, "only {checked} corpus messages parsed");
}

#[test]
fn every_corpus_message_frames_on_a_stream_when_it_has_content_length() {
    // Fed whole and in 7-byte pieces, each message with a Content-Length comes out as exactly
    // its header section plus Content-Length bytes; one without is a framing error.
    for (name, bytes) in all_corpus_files() {
        for chunk in [bytes.len().max(1), 7] {
            let mut f = StreamFramer::default();
            let mut frames = Vec::new();
            for piece in bytes.chunks(chunk) {
                f.push(piece);
                frames.extend(std::iter::from_fn(|| f.next_message()));
            }
            let Some(first) = frames.first() else {
                // still waiting: no blank line ending the header section (baddn.dat), or a
                // Content-Length beyond the bytes sent (clerr.dat)
                let truncated =
                    parse_message(&bytes).is_err_and(|e| e.kind == ParseErrorKind::Truncated);
                assert!(
                    truncated || !bytes.windows(4).any(|w| w == b"\r\n\r\n"),
                    "{name}"
                );
                continue;
            };
            match (first, parse_message(&bytes)) {
                (Ok(Frame::Message(m)), Ok(parsed)) => {
                    let reparsed = parse_message(m).unwrap();
                    assert_eq!(reparsed, parsed, "{name}");
                }
                (Ok(Frame::Message(m)), Err(e)) => {
                    assert_eq!(parse_message(m).unwrap_err().status, e.status, "{name}")
                }
                (Err(_), _) => assert!(
                    name.contains("inv2543")
                        || name.contains("mcl01")
                        || name.contains("ncl")
                        || name.contains("test.dat"),
                    "{name}: {first:?}"
                ),
                (other, _) => panic!("{name}: {other:?}"),
            }
        }
    }
}

/// xorshift64*: small, deterministic, good enough to pick mutations.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Exercise everything a daemon would run on a message from the network.
fn exercise(bytes: &[u8]) {
    match parse_message(bytes) {
        Ok(m) => {
            let h = m.headers();
            let _ = h.vias();
            let _ = h.top_via();
            let _ = h.from_addr();
            let _ = h.to_addr();
            let _ = h.call_id();
            let _ = h.cseq();
            let _ = h.max_forwards();
            let _ = h.expires();
            let _ = h.contacts();
            let _ = h.tokens(&HeaderName::Require).count();
            match &m {
                Message::Request(r) => {
                    let _ = validate_request(r);
                    let _ = r.response(400).to_bytes();
                }
                Message::Response(r) => {
                    let _ = validate_response(r);
                }
            }
            let _ = parse_message(&m.to_bytes());
        }
        Err(e) => {
            if let Some(head) = e.request_head {
                let _ = Response::to_headers(&head.1, e.status, e.reason).to_bytes();
            }
        }
    }
}

#[test]
fn mutations_and_truncations_never_panic() {
    const INTERESTING: &[u8] = b"\r\n \t:;,<>\"\\%[]@=?&/0\xff\x00";
    let files = all_corpus_files();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut cases = 0;
    for (_, original) in &files {
        for _ in 0..80 {
            let mut b = original.clone();
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(b.len());
                match rng.below(6) {
                    0 => b.truncate(at),
                    1 => {
                        if at < b.len() {
                            b[at] = rng.next() as u8;
                        }
                    }
                    2 => b.insert(at, INTERESTING[rng.below(INTERESTING.len())]),
                    3 => {
                        if at < b.len() {
                            b.remove(at);
                        }
                    }
                    4 => {
                        let end = (at + rng.below(40)).min(b.len());
                        let piece = b[at..end].to_vec();
                        b.splice(at..at, piece);
                    }
                    _ => {
                        if at < b.len() {
                            b[at] = INTERESTING[rng.below(INTERESTING.len())];
                        }
                    }
                }
            }
            exercise(&b);
            // and through the stream framer in random-sized reads
            let mut f = StreamFramer::new(4096);
            let mut rest = &b[..];
            while !rest.is_empty() {
                let n = 1 + rng.below(64).min(rest.len() - 1);
                f.push(&rest[..n]);
                rest = &rest[n..];
                while let Some(frame) = f.next_message() {
                    if let Ok(Frame::Message(m)) = frame {
                        exercise(&m);
                    }
                }
                assert!(f.buffered() <= 4096 + 64);
            }
            cases += 1;
        }
    }
    assert!(cases > 4000, "{cases}");
}
