//! Blind transfer by REFER (RFC 3515): reading `Refer-To`, and the NOTIFYs with
//! `message/sipfrag` bodies (RFC 3420) that report how the referred call went.
//!
//! The REFER creates an implicit `refer` subscription in the dialog it arrived in. We answer it
//! `202 Accepted`, then send NOTIFYs in the same dialog: first `SIP/2.0 100 Trying`, then, once
//! the new call has a final answer, that status line with `Subscription-State: terminated`
//! (RFC 3515 §2.4.4–2.4.7). Nothing here sends anything: the daemon puts these requests on
//! its transactions.

use crate::dialog::Dialog;
use crate::message::{reason_phrase, HeaderName, Method, Request, Uri};
use crate::typed::NameAddr;
use crate::Transport;

/// Why a `Refer-To` cannot be acted on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferError {
    /// RFC 3515 §2.4.1: exactly one Refer-To; answered 400.
    #[error("a REFER needs exactly one Refer-To (found {0})")]
    Count(usize),
    /// The value is not a name-addr or addr-spec.
    #[error("unreadable Refer-To: {0}")]
    Syntax(String),
    /// Only `sip:`, `sips:` and `tel:` targets can be called.
    #[error("Refer-To scheme {0:?} cannot be called")]
    Scheme(String),
    /// A Refer-To with URI headers (`?Replaces=…`: an attended transfer, or a method other
    /// than INVITE) asks for more than a blind transfer.
    #[error("Refer-To with URI headers (attended transfer) is not supported")]
    Headers,
    /// No user part: nothing to tell a queue, an operator or a number by.
    #[error("Refer-To names no user")]
    NoUser,
}

impl ReferError {
    /// The status to answer the REFER with: 400 for a malformed request, 416 for a scheme we
    /// cannot call, 501 for an attended transfer, 404 for a target without a user.
    pub fn status(&self) -> u16 {
        match self {
            ReferError::Count(_) | ReferError::Syntax(_) => 400,
            ReferError::Scheme(_) => 416,
            ReferError::Headers => 501,
            ReferError::NoUser => 404,
        }
    }
}

/// The target of a blind transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferTo {
    /// The URI as received.
    pub uri: Uri,
    /// Its user part (unescaped): a queue name, an operator login or a number.
    pub user: String,
}

/// Reads the REFER's single `Refer-To` (compact form `r` included).
pub fn refer_to(req: &Request) -> Result<ReferTo, ReferError> {
    let values: Vec<&str> = req.headers.get_all(&HeaderName::ReferTo).collect();
    match values.as_slice() {
        [one] => parse_refer_to(one),
        other => Err(ReferError::Count(other.len())),
    }
}

/// Parses one `Refer-To` value (`<sip:benefits@hotline>`, `sip:88005553535@trunk`,
/// `<tel:+79131234567>`).
pub fn parse_refer_to(value: &str) -> Result<ReferTo, ReferError> {
    let addr = NameAddr::parse(value).map_err(|e| ReferError::Syntax(e.0))?;
    match &addr.uri {
        Uri::Sip(u) if !u.headers.is_empty() => return Err(ReferError::Headers),
        Uri::Sip(_) | Uri::Tel(_) => {}
        Uri::Other { scheme, .. } => return Err(ReferError::Scheme(scheme.clone())),
    }
    let user = addr
        .uri
        .user()
        .filter(|u| !u.is_empty())
        .ok_or(ReferError::NoUser)?
        .to_string();
    Ok(ReferTo {
        uri: addr.uri,
        user,
    })
}

/// A `message/sipfrag` body holding only a status line (`SIP/2.0 200 OK`), as RFC 3515 §2.4.5
/// asks the NOTIFYs of a refer subscription to carry at least.
pub fn sipfrag(status: u16) -> String {
    format!("SIP/2.0 {status} {}\r\n", reason_phrase(status))
}

/// The status line of a `message/sipfrag` body, `None` when it has none.
pub fn sipfrag_status(body: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(body).ok()?;
    let line = text.lines().next()?;
    let rest = line.strip_prefix("SIP/2.0 ")?;
    let code = rest.get(..3)?;
    let status: u16 = code.parse().ok()?;
    (100..700).contains(&status).then_some(status)
}

/// The NOTIFY of the refer subscription in `dialog` reporting `status` (RFC 3515 §2.4.4):
/// `Event: refer`, `message/sipfrag` body, and `Subscription-State: active` for a provisional
/// status or `terminated;reason=noresource` for a final one (the last NOTIFY). `contact` is our
/// Contact (a NOTIFY is a target refresh request). The dialog's CSeq advances.
pub fn notify(
    dialog: &mut Dialog,
    via_sent_by: &str,
    transport: Transport,
    contact: &str,
    status: u16,
    tokens: &mut crate::Tokens,
) -> Request {
    let mut r = dialog.request(Method::Notify, via_sent_by, transport, tokens);
    r.headers.push(HeaderName::Contact, contact);
    r.headers.push(HeaderName::Event, "refer");
    let state = if status < 200 {
        "active;expires=60"
    } else {
        "terminated;reason=noresource"
    };
    r.headers.push(HeaderName::SubscriptionState, state);
    r.headers
        .push(HeaderName::ContentType, "message/sipfrag;version=2.0");
    r.body = sipfrag(status).into_bytes();
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;

    fn request(text: &str) -> Request {
        match crate::parse_message(text.as_bytes()).unwrap() {
            Message::Request(r) => r,
            Message::Response(_) => panic!("not a request"),
        }
    }

    fn refer(refer_to: &[&str]) -> Request {
        let mut t = String::from(
            "REFER sip:hotline@10.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.2;branch=z9hG4bK1\r\n\
             From: <sip:op1@hotline>;tag=a\r\nTo: <sip:5551@hotline>;tag=b\r\nCall-ID: c\r\n\
             CSeq: 2 REFER\r\nContact: <sip:op1@10.0.0.2>\r\n",
        );
        for r in refer_to {
            t.push_str(&format!("Refer-To: {r}\r\n"));
        }
        t.push_str("Content-Length: 0\r\n\r\n");
        request(&t)
    }

    #[test]
    fn refer_to_names_a_queue_an_operator_or_a_number() {
        let q = refer_to(&refer(&["<sip:benefits@hotline.local>"])).unwrap();
        assert_eq!(q.user, "benefits");
        assert_eq!(q.uri.scheme(), "sip");
        let n = parse_refer_to("sip:88005553535@10.0.0.9;user=phone").unwrap();
        assert_eq!(n.user, "88005553535");
        let t = parse_refer_to("<tel:+79131234567>").unwrap();
        assert_eq!(t.user, "+79131234567");
        let named = parse_refer_to("\"Anna\" <sip:op2@hotline>").unwrap();
        assert_eq!(named.user, "op2");
    }

    #[test]
    fn compact_refer_to_is_read() {
        let r = request(
            "REFER sip:h@10.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.2;branch=z9hG4bK1\r\n\
             f: <sip:op1@h>;tag=a\r\nt: <sip:h@h>;tag=b\r\ni: c\r\nCSeq: 2 REFER\r\n\
             r: <sip:rehab@h>\r\nl: 0\r\n\r\n",
        );
        assert_eq!(refer_to(&r).unwrap().user, "rehab");
    }

    #[test]
    fn unusable_refer_to_values_are_refused_with_their_status() {
        let none = refer_to(&refer(&[])).unwrap_err();
        assert_eq!(none, ReferError::Count(0));
        assert_eq!(none.status(), 400);
        let two = refer_to(&refer(&["<sip:a@h>", "<sip:b@h>"])).unwrap_err();
        assert_eq!(two, ReferError::Count(2));
        let attended =
            parse_refer_to("<sip:op2@h?Replaces=abc%3Bto-tag%3D1%3Bfrom-tag%3D2>").unwrap_err();
        assert_eq!(attended, ReferError::Headers);
        assert_eq!(attended.status(), 501);
        let mail = parse_refer_to("<mailto:a@b.c>").unwrap_err();
        assert_eq!(mail.status(), 416);
        assert_eq!(
            parse_refer_to("<sip:hotline.local>").unwrap_err().status(),
            404
        );
        assert!(matches!(
            parse_refer_to("<sip:a@").unwrap_err(),
            ReferError::Syntax(_)
        ));
    }

    #[test]
    fn sipfrag_bodies_carry_the_status_line() {
        assert_eq!(sipfrag(100), "SIP/2.0 100 Trying\r\n");
        assert_eq!(sipfrag(200), "SIP/2.0 200 OK\r\n");
        assert_eq!(sipfrag(486), "SIP/2.0 486 Busy Here\r\n");
        assert_eq!(sipfrag_status(sipfrag(603).as_bytes()), Some(603));
        assert_eq!(sipfrag_status(b"SIP/2.0 99 x\r\n"), None);
        assert_eq!(sipfrag_status(b"hello"), None);
        assert_eq!(sipfrag_status(&[0xff, 0xfe]), None);
    }

    #[test]
    fn notifies_report_progress_then_terminate_the_subscription() {
        // our UAS dialog with the operator, made from the INVITE they answered
        let invite = request(
            "INVITE sip:hotline@10.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.2;branch=z9hG4bK9\r\n\
             From: <sip:op1@hotline>;tag=a\r\nTo: <sip:5551@hotline>\r\nCall-ID: c\r\n\
             CSeq: 1 INVITE\r\nContact: <sip:op1@10.0.0.2:5062>\r\nContent-Length: 0\r\n\r\n",
        );
        let mut tokens = crate::Tokens::from_seed([5; 32]);
        let mut d = Dialog::uas(&invite, "b", &mut tokens).unwrap();
        d.confirm();
        let first = notify(
            &mut d,
            "10.0.0.1:5060",
            Transport::Udp,
            "<sip:hotline@10.0.0.1:5060>",
            100,
            &mut tokens,
        );
        assert_eq!(first.method, Method::Notify);
        assert_eq!(first.uri.to_string(), "sip:op1@10.0.0.2:5062");
        assert_eq!(first.headers.get(&HeaderName::Event), Some("refer"));
        assert_eq!(
            first.headers.get(&HeaderName::SubscriptionState),
            Some("active;expires=60")
        );
        assert_eq!(
            first.headers.get(&HeaderName::ContentType),
            Some("message/sipfrag;version=2.0")
        );
        assert_eq!(first.body, b"SIP/2.0 100 Trying\r\n");
        let last = notify(
            &mut d,
            "10.0.0.1:5060",
            Transport::Udp,
            "<sip:hotline@10.0.0.1:5060>",
            404,
            &mut tokens,
        );
        assert_eq!(
            last.headers.get(&HeaderName::SubscriptionState),
            Some("terminated;reason=noresource")
        );
        assert_eq!(sipfrag_status(&last.body), Some(404));
        let (a, b) = (
            first.headers.cseq().unwrap().seq,
            last.headers.cseq().unwrap().seq,
        );
        assert_eq!(b, a + 1);
        // the bytes parse back into the same request
        let again = request(std::str::from_utf8(&last.to_bytes()).unwrap());
        assert_eq!(again.body, last.body);
    }
}
