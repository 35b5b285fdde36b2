//! RFC 3261 §12 dialogs as a plain value: the state two user agents share between an INVITE
//! (or another dialog-creating request) and the BYE that ends it.
//!
//! A [`Dialog`] serves either side. As the UAS it is made from the request we answer
//! ([`Dialog::uas`]); as the UAC from the request we sent and a 1xx/2xx that carries a To tag
//! ([`Dialog::uac`]) — one forked INVITE may yield several early dialogs, each with its own
//! remote tag and so its own [`DialogId`]. After that:
//! - [`Dialog::request`] builds the next request inside the dialog (§12.2.1.1), including strict
//!   routing, and [`Dialog::ack_for_2xx`] the ACK for a 2xx to an INVITE (§13.2.2.4);
//! - [`Dialog::on_request`] takes a request the peer sent in the dialog (§12.2.2: CSeq ordering,
//!   target refresh) and [`Dialog::on_response`] a response to one of ours (§12.2.1.2, early →
//!   confirmed).
//!
//! Like everything in this crate it does no I/O: the caller hands the built request to the
//! transaction layer and decides where to send it.

use crate::message::{HeaderName, Method, Request, Response, Uri};
use crate::typed::{NameAddr, SyntaxError};
use crate::{Tokens, Transport};

/// What identifies a dialog (§12): the Call-ID and both tags, seen from our side.
///
/// A peer from before RFC 3261 may leave its tag out; that tag is then the empty string.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DialogId {
    pub call_id: String,
    /// Our tag.
    pub local_tag: String,
    /// The peer's tag.
    pub remote_tag: String,
}

impl DialogId {
    /// The dialog a request from the peer belongs to: our tag is the To tag, theirs the From
    /// tag. `None` when the request has no To tag (it is not inside a dialog) or its Call-ID,
    /// From or To cannot be read.
    pub fn for_incoming(req: &Request) -> Option<DialogId> {
        let local_tag = req.headers.to_addr().ok()?.tag()?.to_string();
        let remote_tag = req
            .headers
            .from_addr()
            .ok()?
            .tag()
            .unwrap_or("")
            .to_string();
        Some(DialogId {
            call_id: req.headers.call_id().ok()?.to_string(),
            local_tag,
            remote_tag,
        })
    }

    /// The dialog a response to one of our requests belongs to: our tag is the From tag, theirs
    /// the To tag. `None` when the response has no To tag (a 100, or a peer that creates no
    /// dialog) or its Call-ID, From or To cannot be read.
    pub fn for_response(resp: &Response) -> Option<DialogId> {
        let remote_tag = resp.headers.to_addr().ok()?.tag()?.to_string();
        let local_tag = resp.headers.from_addr().ok()?.tag()?.to_string();
        Some(DialogId {
            call_id: resp.headers.call_id().ok()?.to_string(),
            local_tag,
            remote_tag,
        })
    }
}

/// Where a dialog is in its life (§12, §13.2.2.4, §12.2.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialogState {
    /// Made by a provisional response; a 2xx confirms it, a final error ends it.
    Early,
    Confirmed,
    /// Ended by a final error to the initial INVITE, or a 481/408 to a request inside it. BYE
    /// does not move a dialog here: the caller drops the dialog when its BYE completes.
    Terminated,
}

/// Why a dialog could not be made or a request could not be taken into it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DialogError {
    /// A header the dialog needs is missing or malformed.
    #[error("bad {header} header: {source}")]
    Header {
        header: &'static str,
        source: SyntaxError,
    },
    /// The request or response that creates the dialog has no usable Contact.
    #[error("no Contact to send requests in the dialog to")]
    NoContact,
    /// Our request had no From tag, so there is no local tag.
    #[error("our request has no From tag")]
    NoLocalTag,
    /// The response has no To tag, so it creates no dialog.
    #[error("response without a To tag")]
    NoRemoteTag,
    /// The request already has a To tag: it belongs to an existing dialog.
    #[error("request already has a To tag")]
    AlreadyInDialog,
    /// Only 101–199 and 2xx responses to a request create a dialog.
    #[error("a {0} response creates no dialog")]
    NotDialogCreating(u16),
    /// The message belongs to another dialog (Call-ID or tags differ).
    #[error("message is not part of this dialog")]
    NotThisDialog,
    /// §12.2.2: a request whose CSeq is below the last one the peer used. Answer 500.
    #[error("CSeq {got} is lower than the last one ({last})")]
    OutOfOrder { last: u32, got: u32 },
}

fn header_err(header: &'static str) -> impl FnOnce(SyntaxError) -> DialogError {
    move |source| DialogError::Header { header, source }
}

/// One dialog, from our side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialog {
    pub id: DialogId,
    /// Our URI with our tag: From of the requests we send in the dialog.
    pub local_uri: NameAddr,
    /// The peer's URI with its tag: To of the requests we send in the dialog.
    pub remote_uri: NameAddr,
    /// Where requests in the dialog go: the peer's Contact, replaced by target refreshes.
    pub remote_target: Uri,
    /// The Record-Route set, in the order our requests carry it as Route headers.
    pub route_set: Vec<NameAddr>,
    /// The CSeq number of the last request we sent in the dialog.
    pub local_cseq: u32,
    /// The CSeq number of the last request the peer sent in the dialog (`None` until one came).
    pub remote_cseq: Option<u32>,
    /// A `sips:` dialog over TLS (§12.1.1); we have no TLS yet, so only a UAC `sips:` INVITE.
    pub secure: bool,
    pub state: DialogState,
}

/// Requests whose Contact replaces the remote target (RFC 3261 §12.2, RFC 3311 UPDATE,
/// RFC 6665 SUBSCRIBE/NOTIFY, RFC 3515 REFER).
fn is_target_refresh(m: &Method) -> bool {
    matches!(
        m,
        Method::Invite | Method::Update | Method::Subscribe | Method::Notify | Method::Refer
    )
}

/// The first Contact URI, `None` when there is none (or `Contact: *`).
fn contact_uri(headers: &crate::message::Headers) -> Result<Option<Uri>, DialogError> {
    Ok(headers
        .contacts()
        .map_err(header_err("Contact"))?
        .and_then(|c| c.into_iter().next())
        .map(|c| c.uri))
}

/// The Record-Route values, top first.
fn record_routes(headers: &crate::message::Headers) -> Result<Vec<NameAddr>, DialogError> {
    headers
        .values(&HeaderName::RecordRoute)
        .map(NameAddr::parse)
        .collect::<Result<_, _>>()
        .map_err(header_err("Record-Route"))
}

/// True when a route entry is a loose router (`;lr` on its URI).
fn is_loose(route: &NameAddr) -> bool {
    match &route.uri {
        Uri::Sip(u) => u.params.contains("lr"),
        _ => false,
    }
}

impl Dialog {
    /// The dialog we enter as the UAS by answering `request` (an INVITE, usually) with a 1xx or
    /// 2xx carrying `local_tag` in its To (§12.1.1): the route set is the Record-Route in order,
    /// the remote target the Contact, the remote CSeq the request's. The dialog starts
    /// [`Early`](DialogState::Early); call [`Dialog::confirm`] when the 2xx goes out. Our own
    /// CSeq starts at a random number below 10 000, drawn from `tokens`.
    pub fn uas(
        request: &Request,
        local_tag: &str,
        tokens: &mut Tokens,
    ) -> Result<Dialog, DialogError> {
        let call_id = request
            .headers
            .call_id()
            .map_err(header_err("Call-ID"))?
            .to_string();
        let remote_uri = request.headers.from_addr().map_err(header_err("From"))?;
        let mut local_uri = request.headers.to_addr().map_err(header_err("To"))?;
        if local_uri.tag().is_some() {
            return Err(DialogError::AlreadyInDialog);
        }
        local_uri.params.set("tag", Some(local_tag.to_string()));
        let cseq = request.headers.cseq().map_err(header_err("CSeq"))?;
        let remote_target = contact_uri(&request.headers)?.ok_or(DialogError::NoContact)?;
        let route_set = record_routes(&request.headers)?;
        // §12.1.1: secure when the request came over TLS to a sips: Request-URI.
        let over_tls = request
            .headers
            .top_via()
            .is_ok_and(|v| v.transport == "TLS");
        let secure = over_tls && request.uri.scheme() == "sips";
        Ok(Dialog {
            id: DialogId {
                call_id,
                local_tag: local_tag.to_string(),
                remote_tag: remote_uri.tag().unwrap_or("").to_string(),
            },
            local_uri,
            remote_uri,
            remote_target,
            route_set,
            local_cseq: tokens.number(1..10_000) as u32,
            remote_cseq: Some(cseq.seq),
            secure,
            state: DialogState::Early,
        })
    }

    /// The dialog a 1xx (with a To tag) or 2xx `response` to our `request` creates on our UAC
    /// side (§12.1.2): the route set is the response's Record-Route reversed, the remote target
    /// its Contact, our CSeq the request's. A 1xx gives an [`Early`](DialogState::Early) dialog,
    /// a 2xx a confirmed one. Responses from different forks of one INVITE carry different To
    /// tags and so give different dialogs.
    pub fn uac(request: &Request, response: &Response) -> Result<Dialog, DialogError> {
        let state = match response.status {
            101..=199 => DialogState::Early,
            200..=299 => DialogState::Confirmed,
            s => return Err(DialogError::NotDialogCreating(s)),
        };
        let call_id = request
            .headers
            .call_id()
            .map_err(header_err("Call-ID"))?
            .to_string();
        if response.headers.call_id().map_err(header_err("Call-ID"))? != call_id {
            return Err(DialogError::NotThisDialog);
        }
        let local_uri = request.headers.from_addr().map_err(header_err("From"))?;
        let local_tag = local_uri.tag().ok_or(DialogError::NoLocalTag)?.to_string();
        let resp_from = response.headers.from_addr().map_err(header_err("From"))?;
        if resp_from.tag() != Some(local_tag.as_str()) {
            return Err(DialogError::NotThisDialog);
        }
        let remote_uri = response.headers.to_addr().map_err(header_err("To"))?;
        let remote_tag = remote_uri
            .tag()
            .ok_or(DialogError::NoRemoteTag)?
            .to_string();
        let cseq = request.headers.cseq().map_err(header_err("CSeq"))?;
        let remote_target = contact_uri(&response.headers)?.ok_or(DialogError::NoContact)?;
        let mut route_set = record_routes(&response.headers)?;
        route_set.reverse();
        Ok(Dialog {
            id: DialogId {
                call_id,
                local_tag,
                remote_tag,
            },
            local_uri,
            remote_uri,
            remote_target,
            route_set,
            local_cseq: cseq.seq,
            remote_cseq: None,
            secure: request.uri.scheme() == "sips",
            state,
        })
    }

    /// We sent the 2xx that confirms a dialog we made as the UAS.
    pub fn confirm(&mut self) {
        if self.state == DialogState::Early {
            self.state = DialogState::Confirmed;
        }
    }

    /// True when `req` (from the peer) belongs to this dialog: same Call-ID, its To tag ours,
    /// its From tag theirs.
    pub fn matches(&self, req: &Request) -> bool {
        DialogId::for_incoming(req).is_some_and(|id| id == self.id)
    }

    /// Build the next request of ours in the dialog (§12.2.1.1).
    ///
    /// The CSeq number is one more than the last one we used, except for ACK and CANCEL, which
    /// reuse it (for the ACK to a 2xx prefer [`Dialog::ack_for_2xx`], which names the INVITE's
    /// number). Route headers come from the route set: with a loose router first (`;lr`), or no
    /// route set, the Request-URI is the remote target; with a strict router first, the
    /// Request-URI is that router's URI and the remote target goes last in the Route list.
    /// Via gets `via_sent_by` (our `host:port`), `transport`, a fresh branch from `tokens` and
    /// `;rport`. The caller adds Contact (needed on target refresh requests), a body and
    /// anything else.
    pub fn request(
        &mut self,
        method: Method,
        via_sent_by: &str,
        transport: Transport,
        tokens: &mut Tokens,
    ) -> Request {
        if !matches!(method, Method::Ack | Method::Cancel) {
            self.local_cseq = self.local_cseq.wrapping_add(1);
        }
        let cseq = self.local_cseq;
        self.build(method, cseq, via_sent_by, transport, tokens.branch())
    }

    /// The ACK for a 2xx to our INVITE whose CSeq number was `invite_cseq` (§13.2.2.4): built
    /// like any request in the dialog, with a new branch (it is a transaction of its own) and
    /// the INVITE's CSeq number.
    pub fn ack_for_2xx(
        &self,
        invite_cseq: u32,
        via_sent_by: &str,
        transport: Transport,
        tokens: &mut Tokens,
    ) -> Request {
        self.build(
            Method::Ack,
            invite_cseq,
            via_sent_by,
            transport,
            tokens.branch(),
        )
    }

    fn build(
        &self,
        method: Method,
        cseq: u32,
        via_sent_by: &str,
        transport: Transport,
        branch: String,
    ) -> Request {
        let (uri, routes) = match self.route_set.split_first() {
            Some((first, rest)) if !is_loose(first) => {
                // Strict routing: the first route becomes the Request-URI (without parameters
                // a Request-URI may not carry), the remote target the last Route.
                let mut uri = first.uri.clone();
                if let Uri::Sip(u) = &mut uri {
                    u.params.remove("method");
                    u.headers.clear();
                }
                let mut routes: Vec<String> = rest.iter().map(NameAddr::to_string).collect();
                routes.push(NameAddr::new(self.remote_target.clone()).to_string());
                (uri, routes)
            }
            _ => (
                self.remote_target.clone(),
                self.route_set.iter().map(NameAddr::to_string).collect(),
            ),
        };
        let mut r = Request::new(method.clone(), uri);
        r.headers.push(
            HeaderName::Via,
            format!(
                "SIP/2.0/{} {via_sent_by};branch={branch};rport",
                transport.as_str(),
            ),
        );
        r.headers.push(HeaderName::MaxForwards, "70");
        for route in routes {
            r.headers.push(HeaderName::Route, route);
        }
        r.headers.push(HeaderName::From, self.local_uri.to_string());
        r.headers.push(HeaderName::To, self.remote_uri.to_string());
        r.headers.push(HeaderName::CallId, self.id.call_id.as_str());
        r.headers
            .push(HeaderName::CSeq, format!("{cseq} {}", method.as_str()));
        r
    }

    /// Take a request the peer sent in this dialog (§12.2.2).
    ///
    /// A CSeq number lower than the last one is refused with [`DialogError::OutOfOrder`] (the
    /// caller answers 500); ACK and CANCEL carry the number of the INVITE they belong to and
    /// are not ordered. A target refresh request (re-INVITE, UPDATE, SUBSCRIBE, NOTIFY, REFER)
    /// with a Contact replaces the remote target. Nothing changes when an error is returned.
    pub fn on_request(&mut self, req: &Request) -> Result<(), DialogError> {
        if !self.matches(req) {
            return Err(DialogError::NotThisDialog);
        }
        let cseq = req.headers.cseq().map_err(header_err("CSeq"))?;
        if matches!(req.method, Method::Ack | Method::Cancel) {
            return Ok(());
        }
        if let Some(last) = self.remote_cseq {
            if cseq.seq < last {
                return Err(DialogError::OutOfOrder {
                    last,
                    got: cseq.seq,
                });
            }
        }
        let target = if is_target_refresh(&req.method) {
            contact_uri(&req.headers)?
        } else {
            None
        };
        self.remote_cseq = Some(cseq.seq);
        if let Some(t) = target {
            self.remote_target = t;
        }
        Ok(())
    }

    /// Take a response to a request we sent in this dialog (§12.1.2, §12.2.1.2, §13.2.2.4).
    ///
    /// Responses of other dialogs (another fork's To tag) are ignored. A 2xx to a target refresh
    /// request replaces the remote target with its Contact. A 2xx to the INVITE of an early
    /// dialog confirms it, and its Record-Route (reversed) becomes the route set. While early,
    /// a provisional response with a Contact updates the remote target; a final error to the
    /// INVITE ends the early dialog. A 481 or 408 to any request ends the dialog.
    pub fn on_response(&mut self, resp: &Response) {
        if DialogId::for_response(resp).as_ref() != Some(&self.id) {
            return;
        }
        let Ok(cseq) = resp.headers.cseq() else {
            return;
        };
        let contact = contact_uri(&resp.headers).ok().flatten();
        match resp.status {
            101..=199 if self.state == DialogState::Early && cseq.method == Method::Invite => {
                if let Some(c) = contact {
                    self.remote_target = c;
                }
            }
            200..=299 => {
                if self.state == DialogState::Early && cseq.method == Method::Invite {
                    self.state = DialogState::Confirmed;
                    if let Ok(mut routes) = record_routes(&resp.headers) {
                        routes.reverse();
                        self.route_set = routes;
                    }
                }
                if is_target_refresh(&cseq.method) {
                    if let Some(c) = contact {
                        self.remote_target = c;
                    }
                }
            }
            408 | 481 => self.state = DialogState::Terminated,
            300..=699 if self.state == DialogState::Early && cseq.method == Method::Invite => {
                self.state = DialogState::Terminated;
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A generator for the tests' dialogs (any seed will do).
    fn tokens() -> Tokens {
        Tokens::from_seed(rand::random())
    }
    use crate::parse::test_text::{req, resp};

    fn routes(r: &Request) -> Vec<&str> {
        r.headers.get_all(&HeaderName::Route).collect()
    }

    /// An INVITE from the trunk that passed two record-routing proxies.
    const INVITE_IN: &str = "INVITE sip:112@hotline.example.org SIP/2.0\r\n\
        Via: SIP/2.0/UDP p2.carrier.net;branch=z9hG4bKp2\r\n\
        Via: SIP/2.0/UDP p1.carrier.net;branch=z9hG4bKp1\r\n\
        Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bKua\r\n\
        Max-Forwards: 68\r\n\
        Record-Route: <sip:p2.carrier.net;lr>\r\n\
        Record-Route: <sip:p1.carrier.net;lr>\r\n\
        From: \"Caller\" <sip:+79161234567@carrier.net>;tag=c4ll3r\r\n\
        To: <sip:112@hotline.example.org>\r\n\
        Call-ID: a84b4c76e66710@198.51.100.7\r\n\
        CSeq: 314159 INVITE\r\n\
        Contact: <sip:+79161234567@198.51.100.7:5060>\r\n\
        Content-Length: 0\r\n\r\n";

    /// The INVITE we send to an operator's phone.
    const INVITE_OUT: &str = "INVITE sip:op1@192.0.2.50:5062 SIP/2.0\r\n\
        Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKour1;rport\r\n\
        Max-Forwards: 70\r\n\
        From: <sip:hotline@192.0.2.1>;tag=ourtag\r\n\
        To: <sip:op1@hotline.example.org>\r\n\
        Call-ID: leg-b-1@192.0.2.1\r\n\
        CSeq: 20 INVITE\r\n\
        Contact: <sip:hotline@192.0.2.1:5060>\r\n\
        Content-Length: 0\r\n\r\n";

    fn response_to_out(status: &str, to_tag: &str, contact: &str, extra: &str) -> Response {
        resp(&format!(
            "SIP/2.0 {status}\r\n\
            Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKour1;rport=5060\r\n\
            {extra}\
            From: <sip:hotline@192.0.2.1>;tag=ourtag\r\n\
            To: <sip:op1@hotline.example.org>;tag={to_tag}\r\n\
            Call-ID: leg-b-1@192.0.2.1\r\n\
            CSeq: 20 INVITE\r\n\
            Contact: <{contact}>\r\n\
            Content-Length: 0\r\n\r\n"
        ))
    }

    /// A request from the trunk in the dialog of `INVITE_IN` (our tag `ours`).
    fn in_dialog(method: &str, cseq: u32, extra: &str) -> Request {
        req(&format!(
            "{method} sip:112@192.0.2.1:5060 SIP/2.0\r\n\
            Via: SIP/2.0/UDP p2.carrier.net;branch=z9hG4bKx{cseq}\r\n\
            Max-Forwards: 69\r\n\
            From: \"Caller\" <sip:+79161234567@carrier.net>;tag=c4ll3r\r\n\
            To: <sip:112@hotline.example.org>;tag=ours\r\n\
            Call-ID: a84b4c76e66710@198.51.100.7\r\n\
            CSeq: {cseq} {method}\r\n\
            {extra}\
            Content-Length: 0\r\n\r\n"
        ))
    }

    #[test]
    fn uas_dialog_bye_carries_record_routes_in_order() {
        let invite = req(INVITE_IN);
        let mut d = Dialog::uas(&invite, "ours", &mut tokens()).unwrap();
        assert_eq!(
            d.id,
            DialogId {
                call_id: "a84b4c76e66710@198.51.100.7".into(),
                local_tag: "ours".into(),
                remote_tag: "c4ll3r".into(),
            }
        );
        assert_eq!(d.state, DialogState::Early);
        assert_eq!(d.remote_cseq, Some(314159));
        d.confirm();
        assert_eq!(d.state, DialogState::Confirmed);
        let start = d.local_cseq;
        let bye = d.request(Method::Bye, "192.0.2.1:5060", Transport::Udp, &mut tokens());
        // loose routing: the Request-URI is the caller's Contact
        assert_eq!(bye.uri.to_string(), "sip:+79161234567@198.51.100.7:5060");
        assert_eq!(
            routes(&bye),
            ["<sip:p2.carrier.net;lr>", "<sip:p1.carrier.net;lr>"]
        );
        let from = bye.headers.from_addr().unwrap();
        let to = bye.headers.to_addr().unwrap();
        assert_eq!(from.tag(), Some("ours"));
        assert_eq!(from.uri.to_string(), "sip:112@hotline.example.org");
        assert_eq!(to.tag(), Some("c4ll3r"));
        assert_eq!(to.display.as_deref(), Some("Caller"));
        assert_eq!(
            bye.headers.call_id().unwrap(),
            "a84b4c76e66710@198.51.100.7"
        );
        let cseq = bye.headers.cseq().unwrap();
        assert_eq!((cseq.seq, cseq.method), (start + 1, Method::Bye));
        let via = bye.headers.top_via().unwrap();
        assert_eq!(via.transport, "UDP");
        assert!(via.is_rfc3261());
        assert!(via.params.contains("rport"));
        assert_eq!(bye.headers.max_forwards().unwrap(), Some(70));
        // the built request is a valid request and the peer sees it as in our dialog
        crate::parse::validate_request(&bye).unwrap();
        let mut reparsed = req(&String::from_utf8(bye.to_bytes()).unwrap());
        reparsed.headers.remove(&HeaderName::ContentLength);
        assert_eq!(reparsed, bye);
    }

    #[test]
    fn uac_dialog_from_200_reverses_record_routes() {
        let invite = req(INVITE_OUT);
        let ok = response_to_out(
            "200 OK",
            "phone1",
            "sip:op1@192.0.2.50:5062;transport=udp",
            "Record-Route: <sip:edge2.example.org;lr>, <sip:edge1.example.org;lr>\r\n",
        );
        let mut d = Dialog::uac(&invite, &ok).unwrap();
        assert_eq!(d.state, DialogState::Confirmed);
        assert_eq!(d.id, DialogId::for_response(&ok).unwrap());
        assert_eq!(d.id.local_tag, "ourtag");
        assert_eq!(d.id.remote_tag, "phone1");
        assert_eq!(d.local_cseq, 20);
        assert_eq!(d.remote_cseq, None);
        let bye = d.request(Method::Bye, "192.0.2.1:5060", Transport::Tcp, &mut tokens());
        assert_eq!(bye.uri.to_string(), "sip:op1@192.0.2.50:5062;transport=udp");
        assert_eq!(
            routes(&bye),
            ["<sip:edge1.example.org;lr>", "<sip:edge2.example.org;lr>"]
        );
        assert_eq!(bye.headers.cseq().unwrap().seq, 21);
        assert_eq!(bye.headers.top_via().unwrap().transport, "TCP");
        assert_eq!(bye.headers.from_addr().unwrap().tag(), Some("ourtag"));
        assert_eq!(bye.headers.to_addr().unwrap().tag(), Some("phone1"));
    }

    #[test]
    fn strict_router_becomes_request_uri_and_target_goes_last() {
        let invite = req(&INVITE_IN.replace(
            "<sip:p2.carrier.net;lr>",
            "<sip:p2.carrier.net;transport=udp>",
        ));
        let mut d = Dialog::uas(&invite, "ours", &mut tokens()).unwrap();
        let bye = d.request(Method::Bye, "192.0.2.1:5060", Transport::Udp, &mut tokens());
        assert_eq!(bye.uri.to_string(), "sip:p2.carrier.net;transport=udp");
        assert_eq!(
            routes(&bye),
            [
                "<sip:p1.carrier.net;lr>",
                "<sip:+79161234567@198.51.100.7:5060>"
            ]
        );
    }

    #[test]
    fn strict_router_request_uri_drops_method_param_and_headers() {
        let invite = req(&INVITE_IN
            .replace(
                "Record-Route: <sip:p2.carrier.net;lr>\r\n",
                "Record-Route: <sip:p2.carrier.net;maddr=203.0.113.9;method=INVITE?X=y>\r\n",
            )
            .replace("Record-Route: <sip:p1.carrier.net;lr>\r\n", ""));
        let mut d = Dialog::uas(&invite, "ours", &mut tokens()).unwrap();
        let bye = d.request(Method::Bye, "192.0.2.1:5060", Transport::Udp, &mut tokens());
        assert_eq!(bye.uri.to_string(), "sip:p2.carrier.net;maddr=203.0.113.9");
        assert_eq!(routes(&bye), ["<sip:+79161234567@198.51.100.7:5060>"]);
    }

    #[test]
    fn no_route_set_means_no_route_headers() {
        let invite = req(&INVITE_IN
            .replace("Record-Route: <sip:p2.carrier.net;lr>\r\n", "")
            .replace("Record-Route: <sip:p1.carrier.net;lr>\r\n", ""));
        let mut d = Dialog::uas(&invite, "ours", &mut tokens()).unwrap();
        let info = d.request(
            Method::Info,
            "192.0.2.1:5060",
            Transport::Udp,
            &mut tokens(),
        );
        assert!(routes(&info).is_empty());
        assert_eq!(info.uri.to_string(), "sip:+79161234567@198.51.100.7:5060");
    }

    #[test]
    fn local_cseq_increases_but_ack_and_cancel_reuse_it() {
        let mut d = Dialog::uac(
            &req(INVITE_OUT),
            &response_to_out("200 OK", "phone1", "sip:op1@192.0.2.50:5062", ""),
        )
        .unwrap();
        let seqs: Vec<(u32, Method)> = [Method::Info, Method::Invite, Method::Ack, Method::Bye]
            .into_iter()
            .map(|m| {
                let c = d
                    .request(m, "192.0.2.1", Transport::Udp, &mut tokens())
                    .headers
                    .cseq()
                    .unwrap();
                (c.seq, c.method)
            })
            .collect();
        assert_eq!(
            seqs,
            [
                (21, Method::Info),
                (22, Method::Invite),
                (22, Method::Ack),
                (23, Method::Bye)
            ]
        );
        assert_eq!(d.local_cseq, 23);
    }

    #[test]
    fn ack_for_2xx_carries_the_invite_cseq_and_a_new_branch() {
        let invite = req(INVITE_OUT);
        let ok = response_to_out(
            "200 OK",
            "phone1",
            "sip:op1@192.0.2.50:5062",
            "Record-Route: <sip:edge.example.org;lr>\r\n",
        );
        let mut d = Dialog::uac(&invite, &ok).unwrap();
        // an INFO went out before the ACK: the ACK still names the INVITE's number
        let _ = d.request(
            Method::Info,
            "192.0.2.1:5060",
            Transport::Udp,
            &mut tokens(),
        );
        let ack = d.ack_for_2xx(20, "192.0.2.1:5060", Transport::Udp, &mut tokens());
        let cseq = ack.headers.cseq().unwrap();
        assert_eq!((cseq.seq, cseq.method), (20, Method::Ack));
        assert_eq!(ack.method, Method::Ack);
        assert_eq!(ack.uri.to_string(), "sip:op1@192.0.2.50:5062");
        assert_eq!(routes(&ack), ["<sip:edge.example.org;lr>"]);
        let branch = ack.headers.top_via().unwrap().branch().unwrap().to_string();
        assert_ne!(branch, "z9hG4bKour1");
        assert!(branch.starts_with("z9hG4bK"));
        assert_eq!(d.local_cseq, 21, "ack_for_2xx does not use up a number");
    }

    #[test]
    fn out_of_order_remote_cseq_is_refused() {
        let mut d = Dialog::uas(&req(INVITE_IN), "ours", &mut tokens()).unwrap();
        d.confirm();
        d.on_request(&in_dialog("INFO", 314160, "")).unwrap();
        assert_eq!(d.remote_cseq, Some(314160));
        let err = d.on_request(&in_dialog("INFO", 314158, "")).unwrap_err();
        assert_eq!(
            err,
            DialogError::OutOfOrder {
                last: 314160,
                got: 314158
            }
        );
        assert_eq!(
            d.remote_cseq,
            Some(314160),
            "a refused request changes nothing"
        );
        // the ACK for the initial INVITE carries its (lower) number and is fine
        d.on_request(&in_dialog("ACK", 314159, "")).unwrap();
        assert_eq!(d.remote_cseq, Some(314160));
        // equal is not out of order (§12.2.2 only refuses lower)
        d.on_request(&in_dialog("BYE", 314160, "")).unwrap();
    }

    #[test]
    fn request_of_another_dialog_is_refused() {
        let mut d = Dialog::uas(&req(INVITE_IN), "ours", &mut tokens()).unwrap();
        let mut other = in_dialog("BYE", 314160, "");
        other
            .headers
            .set(HeaderName::To, "<sip:112@hotline.example.org>;tag=theirs");
        assert!(!d.matches(&other));
        assert_eq!(d.on_request(&other), Err(DialogError::NotThisDialog));
        assert!(d.matches(&in_dialog("BYE", 1, "")));
    }

    #[test]
    fn reinvite_and_update_refresh_the_remote_target_but_info_does_not() {
        let mut d = Dialog::uas(&req(INVITE_IN), "ours", &mut tokens()).unwrap();
        d.confirm();
        d.on_request(&in_dialog(
            "INFO",
            314160,
            "Contact: <sip:elsewhere@203.0.113.1>\r\n",
        ))
        .unwrap();
        assert_eq!(
            d.remote_target.to_string(),
            "sip:+79161234567@198.51.100.7:5060"
        );
        d.on_request(&in_dialog(
            "INVITE",
            314161,
            "Contact: <sip:+79161234567@198.51.100.8:5070>\r\n",
        ))
        .unwrap();
        assert_eq!(
            d.remote_target.to_string(),
            "sip:+79161234567@198.51.100.8:5070"
        );
        d.on_request(&in_dialog(
            "UPDATE",
            314162,
            "Contact: <sip:+79161234567@[2001:db8::7]:5060>\r\n",
        ))
        .unwrap();
        assert_eq!(
            d.remote_target.to_string(),
            "sip:+79161234567@[2001:db8::7]:5060"
        );
        // a re-INVITE without Contact keeps the target
        d.on_request(&in_dialog("INVITE", 314163, "")).unwrap();
        assert_eq!(
            d.remote_target.to_string(),
            "sip:+79161234567@[2001:db8::7]:5060"
        );
        let bye = d.request(Method::Bye, "192.0.2.1:5060", Transport::Udp, &mut tokens());
        assert_eq!(bye.uri.to_string(), "sip:+79161234567@[2001:db8::7]:5060");
        // the route set is not changed by target refreshes
        assert_eq!(routes(&bye).len(), 2);
    }

    #[test]
    fn two_hundred_to_our_reinvite_refreshes_the_target() {
        let mut d = Dialog::uac(
            &req(INVITE_OUT),
            &response_to_out(
                "200 OK",
                "phone1",
                "sip:op1@192.0.2.50:5062",
                "Record-Route: <sip:edge.example.org;lr>\r\n",
            ),
        )
        .unwrap();
        let reinvite = d.request(
            Method::Invite,
            "192.0.2.1:5060",
            Transport::Udp,
            &mut tokens(),
        );
        let mut ok = reinvite.response(200);
        ok.headers.set(HeaderName::To, d.remote_uri.to_string());
        ok.headers
            .push(HeaderName::Contact, "<sip:op1@192.0.2.51:5062>");
        // a different Record-Route in a re-INVITE's 2xx does not change the route set
        ok.headers
            .push(HeaderName::RecordRoute, "<sip:other.example.org;lr>");
        d.on_response(&ok);
        assert_eq!(d.remote_target.to_string(), "sip:op1@192.0.2.51:5062");
        assert_eq!(d.route_set.len(), 1);
        assert_eq!(d.route_set[0].to_string(), "<sip:edge.example.org;lr>");
        // a 2xx to INFO is not a target refresh
        let info = d.request(
            Method::Info,
            "192.0.2.1:5060",
            Transport::Udp,
            &mut tokens(),
        );
        let mut ok = info.response(200);
        ok.headers.set(HeaderName::To, d.remote_uri.to_string());
        ok.headers.push(HeaderName::Contact, "<sip:op1@192.0.2.99>");
        d.on_response(&ok);
        assert_eq!(d.remote_target.to_string(), "sip:op1@192.0.2.51:5062");
        // 481 to a request in the dialog ends it
        let bye = d.request(Method::Bye, "192.0.2.1:5060", Transport::Udp, &mut tokens());
        let mut gone = bye.response(481);
        gone.headers.set(HeaderName::To, d.remote_uri.to_string());
        d.on_response(&gone);
        assert_eq!(d.state, DialogState::Terminated);
    }

    #[test]
    fn forked_early_dialogs_are_distinct_and_200_confirms_one() {
        let invite = req(INVITE_OUT);
        let ring_a = response_to_out(
            "180 Ringing",
            "forkA",
            "sip:op1@192.0.2.50:5062",
            "Record-Route: <sip:edge.example.org;lr>\r\n",
        );
        let ring_b = response_to_out("180 Ringing", "forkB", "sip:op1@192.0.2.60:5062", "");
        let mut a = Dialog::uac(&invite, &ring_a).unwrap();
        let mut b = Dialog::uac(&invite, &ring_b).unwrap();
        assert_eq!(a.state, DialogState::Early);
        assert_eq!(b.state, DialogState::Early);
        assert_ne!(a.id, b.id);
        assert_eq!(a.id.call_id, b.id.call_id);
        assert_eq!(a.id.local_tag, b.id.local_tag);
        let mut by_id = std::collections::HashMap::new();
        by_id.insert(a.id.clone(), "a");
        by_id.insert(b.id.clone(), "b");
        assert_eq!(by_id.len(), 2);

        // fork A answers: its 200 has a new Contact and now two Record-Routes
        let ok_a = response_to_out(
            "200 OK",
            "forkA",
            "sip:op1@192.0.2.50:5064",
            "Record-Route: <sip:edge2.example.org;lr>\r\nRecord-Route: <sip:edge.example.org;lr>\r\n",
        );
        assert_eq!(
            by_id.get(&DialogId::for_response(&ok_a).unwrap()),
            Some(&"a")
        );
        a.on_response(&ok_a);
        b.on_response(&ok_a);
        assert_eq!(a.state, DialogState::Confirmed);
        assert_eq!(a.remote_target.to_string(), "sip:op1@192.0.2.50:5064");
        let routes_a: Vec<String> = a.route_set.iter().map(|r| r.to_string()).collect();
        assert_eq!(
            routes_a,
            ["<sip:edge.example.org;lr>", "<sip:edge2.example.org;lr>"]
        );
        // fork B's dialog is untouched by A's 200
        assert_eq!(b.state, DialogState::Early);
        assert_eq!(b.remote_target.to_string(), "sip:op1@192.0.2.60:5062");
        // fork B then fails (we CANCELled it): its early dialog ends
        b.on_response(&response_to_out(
            "487 Request Terminated",
            "forkB",
            "sip:op1@192.0.2.60:5062",
            "",
        ));
        assert_eq!(b.state, DialogState::Terminated);
    }

    #[test]
    fn responses_that_create_no_dialog_are_refused() {
        let invite = req(INVITE_OUT);
        let trying = resp(
            "SIP/2.0 100 Trying\r\n\
            Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKour1;rport=5060\r\n\
            From: <sip:hotline@192.0.2.1>;tag=ourtag\r\n\
            To: <sip:op1@hotline.example.org>\r\n\
            Call-ID: leg-b-1@192.0.2.1\r\n\
            CSeq: 20 INVITE\r\n\
            Content-Length: 0\r\n\r\n",
        );
        assert_eq!(
            Dialog::uac(&invite, &trying),
            Err(DialogError::NotDialogCreating(100))
        );
        assert_eq!(DialogId::for_response(&trying), None);
        let mut untagged = trying.clone();
        untagged.status = 180;
        assert_eq!(
            Dialog::uac(&invite, &untagged),
            Err(DialogError::NoRemoteTag)
        );
        let busy = response_to_out("486 Busy Here", "x", "sip:op1@192.0.2.50", "");
        assert_eq!(
            Dialog::uac(&invite, &busy),
            Err(DialogError::NotDialogCreating(486))
        );
        let mut no_contact = response_to_out("200 OK", "x", "sip:op1@192.0.2.50", "");
        no_contact.headers.remove(&HeaderName::Contact);
        assert_eq!(
            Dialog::uac(&invite, &no_contact),
            Err(DialogError::NoContact)
        );
    }

    #[test]
    fn uas_needs_a_contact_and_no_to_tag() {
        let no_contact =
            req(&INVITE_IN.replace("Contact: <sip:+79161234567@198.51.100.7:5060>\r\n", ""));
        assert_eq!(
            Dialog::uas(&no_contact, "t", &mut tokens()),
            Err(DialogError::NoContact)
        );
        let tagged = req(&INVITE_IN.replace(
            "To: <sip:112@hotline.example.org>",
            "To: <sip:112@hotline.example.org>;tag=old",
        ));
        assert_eq!(
            Dialog::uas(&tagged, "t", &mut tokens()),
            Err(DialogError::AlreadyInDialog)
        );
        let bad_rr = req(&INVITE_IN.replace("<sip:p1.carrier.net;lr>", "<sip:p1.carrier.net;lr"));
        assert!(matches!(
            Dialog::uas(&bad_rr, "t", &mut tokens()),
            Err(DialogError::Header {
                header: "Record-Route",
                ..
            })
        ));
    }

    #[test]
    fn incoming_request_id_takes_our_tag_from_to() {
        let bye = in_dialog("BYE", 314160, "");
        let id = DialogId::for_incoming(&bye).unwrap();
        assert_eq!(id.local_tag, "ours");
        assert_eq!(id.remote_tag, "c4ll3r");
        // the initial INVITE is in no dialog yet
        assert_eq!(DialogId::for_incoming(&req(INVITE_IN)), None);
    }
}
