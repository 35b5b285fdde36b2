//! The phones' and the trunk's side: SIP sent to the core and read from what it sent.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use sip::{HeaderName, Message, Method, Peer, Request, Response, Transport};

use super::{World, CALLER, CITY, GW};
use calls::{Input, OperatorCommand};

impl World {
    /// `from` sends `msg` to us over TCP.
    pub fn send(&mut self, from: SocketAddr, msg: Message) {
        self.input(Input::Sip {
            peer: Peer {
                transport: Transport::Tcp,
                addr: from,
            },
            local: GW,
            msg,
        });
    }

    /// Sends SIP text (built by a test) from `from`.
    pub fn send_text(&mut self, from: SocketAddr, text: &str) {
        let msg = sip::parse_message(text.as_bytes()).expect("the test's SIP parses");
        self.send(from, msg);
    }

    /// Everything the core has sent to `to` and nobody has read yet.
    pub fn take_all(&mut self, to: SocketAddr) -> Vec<Message> {
        self.inbox
            .get_mut(&to)
            .map(|q| q.drain(..).collect())
            .unwrap_or_default()
    }

    /// Nothing waits for `to`.
    pub fn quiet(&mut self, to: SocketAddr) {
        let left = self.take_all(to);
        assert!(
            left.is_empty(),
            "unexpected for {to}: {}",
            first_lines(&left)
        );
    }

    /// The next message to `to`.
    pub fn next(&mut self, to: SocketAddr) -> Message {
        self.inbox
            .get_mut(&to)
            .and_then(VecDeque::pop_front)
            .unwrap_or_else(|| panic!("nothing was sent to {to} (at {:?})", self.elapsed()))
    }

    /// The next request to `to`, skipping provisional responses.
    pub fn request(&mut self, to: SocketAddr) -> Request {
        loop {
            match self.next(to) {
                Message::Request(r) => return r,
                Message::Response(r) if r.status < 200 => {}
                Message::Response(r) => panic!("{to} got {} where a request was due", r.status),
            }
        }
    }

    /// The next request to `to`, which must be a `method`.
    pub fn expect(&mut self, to: SocketAddr, method: Method) -> Request {
        let r = self.request(to);
        assert_eq!(r.method, method, "{to} got {} {}", r.method.as_str(), r.uri);
        r
    }

    /// The next final response to `to` (provisional ones skipped).
    pub fn final_response(&mut self, to: SocketAddr) -> Response {
        loop {
            match self.next(to) {
                Message::Response(r) if r.status >= 200 => return r,
                Message::Response(_) => {}
                Message::Request(r) => {
                    panic!("{to} got {} where a response was due", r.method.as_str())
                }
            }
        }
    }

    /// `from` answers `req` with `status` (its To tag `tag` when the request had none).
    pub fn reply(&mut self, from: SocketAddr, req: &Request, status: u16, tag: &str) {
        let mut r = req.response(status);
        let to = r.headers.get(&HeaderName::To).unwrap_or("").to_string();
        if !to.contains("tag=") {
            r.headers.set(HeaderName::To, format!("{to};tag={tag}"));
        }
        self.send(from, Message::Response(r));
    }

    /// `from` answers an INVITE 200 with its SDP and Contact; To tag `tag`.
    pub fn answer(&mut self, from: SocketAddr, invite: &Request, tag: &str) {
        let mut r = invite.response(200);
        let to = r.headers.get(&HeaderName::To).unwrap_or("").to_string();
        r.headers.set(HeaderName::To, format!("{to};tag={tag}"));
        r.headers.push(
            HeaderName::Contact,
            format!("<sip:peer@{from};transport=tcp>"),
        );
        r.headers.push(HeaderName::ContentType, "application/sdp");
        r.body = sdp(from).into_bytes();
        self.send(from, Message::Response(r));
    }

    /// `phone` registers as `op` (answering the digest challenge) and the operator logs in.
    pub fn operator(&mut self, phone: SocketAddr, op: &str) {
        self.register(phone, op);
        self.command(|c, now| {
            c.operator_command(now, op, OperatorCommand::Login { queues: Vec::new() })
        })
        .expect("the operator logs in");
    }

    /// `phone` registers as `op` for an hour.
    pub fn register(&mut self, phone: SocketAddr, op: &str) {
        let call_id = self.token("reg-");
        let reg = test_support::Register {
            transport: "TCP",
            expires: 3600,
            contact_params: ";transport=tcp",
            ..test_support::Register::udp(op, phone, &call_id)
        };
        let b = self.token("r");
        self.send_text(phone, &reg.text(1, &b, None));
        let ch = self.final_response(phone);
        assert_eq!(ch.status, 401);
        let auth = test_support::digest_for(&ch, op);
        let b = self.token("r");
        self.send_text(phone, &reg.text(2, &b, Some(&auth)));
        assert_eq!(self.final_response(phone).status, 200);
    }

    /// A caller at `from` calls `number`: INVITE (with `extra` headers), 200, ACK.
    pub fn call(&mut self, from: SocketAddr, number: &str, extra: &str) -> Dialog {
        let call_id = self.token("call-");
        let mut d = Dialog {
            addr: from,
            call_id,
            local: format!("<sip:{CALLER}@{from}>;tag=c{}", self.n),
            remote: format!("<sip:{number}@{GW}>"),
            target: format!("sip:{number}@{GW}"),
            cseq: 1,
        };
        let body = sdp(from);
        let invite = d.request_cseq(
            self,
            "INVITE",
            1,
            &format!("{extra}Content-Type: application/sdp\r\n"),
            &body,
        );
        self.send_text(from, &invite);
        let ok = self.final_response(from);
        assert_eq!(ok.status, 200, "the call is answered");
        d.remote = ok.headers.get(&HeaderName::To).unwrap_or("").to_string();
        d.target = ok
            .headers
            .contacts()
            .ok()
            .flatten()
            .map_or(d.target.clone(), |c| {
                c.first().map_or(d.target.clone(), |c| c.uri.to_string())
            });
        let ack = d.request_cseq(self, "ACK", 1, "", "");
        self.send_text(from, &ack);
        d
    }

    /// The far end of a call `d` hangs up: BYE, and our 200.
    pub fn hang_up(&mut self, d: &mut Dialog) {
        let bye = d.request(self, "BYE", "", "");
        self.send_text(d.addr, &bye);
        assert_eq!(self.final_response(d.addr).status, 200);
    }

    /// A request in the dialog our INVITE `invite` made with the phone at `from` (its To tag
    /// `tag`): the phone's side of a call we placed.
    pub fn dialog_of(&mut self, from: SocketAddr, invite: &Request, tag: &str) -> Dialog {
        let to = invite.headers.get(&HeaderName::To).unwrap_or("");
        let contact = invite
            .headers
            .contacts()
            .ok()
            .flatten()
            .and_then(|c| c.first().map(|c| c.uri.to_string()))
            .unwrap_or_default();
        Dialog {
            addr: from,
            call_id: invite.headers.call_id().unwrap_or("").to_string(),
            local: format!("{to};tag={tag}"),
            remote: invite.headers.get(&HeaderName::From).unwrap_or("").into(),
            target: contact,
            cseq: 1,
        }
    }
}

/// The far end's side of one dialog with us.
#[derive(Debug, Clone)]
pub struct Dialog {
    pub addr: SocketAddr,
    pub call_id: String,
    /// Our From (the far end's own address, with its tag) and To (ours, tag once known).
    pub local: String,
    pub remote: String,
    pub target: String,
    pub cseq: u32,
}

impl Dialog {
    /// The next request of the dialog (`extra` header lines, then `body`).
    pub fn request(&mut self, w: &mut World, method: &str, extra: &str, body: &str) -> String {
        if method != "ACK" {
            self.cseq += 1;
        }
        self.request_cseq(w, method, self.cseq, extra, body)
    }

    fn request_cseq(
        &self,
        w: &mut World,
        method: &str,
        cseq: u32,
        extra: &str,
        body: &str,
    ) -> String {
        let branch = w.token("z9hG4bK-t");
        format!(
            "{method} {} SIP/2.0\r\nVia: SIP/2.0/TCP {};branch={branch}\r\nMax-Forwards: 70\r\n\
             From: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {cseq} {method}\r\n\
             Contact: <sip:peer@{};transport=tcp>\r\n{extra}Content-Length: {}\r\n\r\n{body}",
            self.target,
            self.addr,
            self.local,
            self.remote,
            self.call_id,
            self.addr,
            body.len()
        )
    }
}

/// An SDP offer or answer for a phone at `at` (PCMU and telephone-event).
pub fn sdp(at: SocketAddr) -> String {
    format!(
        "v=0\r\no=t 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
         m=audio 4000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n",
        ip = at.ip()
    )
}

fn first_lines(msgs: &[Message]) -> String {
    msgs.iter()
        .map(|m| match m {
            Message::Request(r) => format!("{} {}", r.method.as_str(), r.uri),
            Message::Response(r) => format!("{} {}", r.status, r.reason),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

impl World {
    /// A caller at `caller` reaches the operator whose phone is `phone` (logged in, the only
    /// one free): returns the caller's dialog, our INVITE to the phone and the phone's dialog.
    pub fn connected(
        &mut self,
        caller: SocketAddr,
        phone: SocketAddr,
    ) -> (Dialog, Request, Dialog) {
        let call = self.call(caller, CITY, "");
        let invite = self.expect(phone, Method::Invite);
        self.answer(phone, &invite, "optag");
        self.expect(phone, Method::Ack);
        let op = self.dialog_of(phone, &invite, "optag");
        let op_leg = invite.headers.call_id().unwrap_or("").to_string();
        assert_eq!(self.leg(&call).bridged.as_deref(), Some(op_leg.as_str()));
        (call, invite, op)
    }

    /// The next NOTIFY to `phone`, answered 200: its sipfrag status and Subscription-State.
    pub fn notify(&mut self, phone: SocketAddr) -> (u16, String) {
        let n = self.expect(phone, Method::Notify);
        assert_eq!(n.headers.get(&HeaderName::Event), Some("refer"));
        let state = n
            .headers
            .get(&HeaderName::SubscriptionState)
            .unwrap_or("")
            .to_string();
        self.reply(phone, &n, 200, "");
        (sip::refer::sipfrag_status(&n.body).unwrap_or(0), state)
    }

    /// The operator's phone sends REFER to `target` in its dialog `op`; it must get 202.
    pub fn refer(&mut self, op: &mut Dialog, target: &str) {
        let refer = op.request(
            self,
            "REFER",
            &format!("Refer-To: <sip:{target}@hotline>\r\n"),
            "",
        );
        self.send_text(op.addr, &refer);
        assert_eq!(self.final_response(op.addr).status, 202);
    }

    /// `to` gets a BYE and answers it 200.
    pub fn bye_answered(&mut self, to: SocketAddr) {
        let bye = self.expect(to, Method::Bye);
        self.reply(to, &bye, 200, "");
    }
}

impl World {
    /// An operator's phone at `phone` dials the feature code `code` as `user` with
    /// `password`: challenged (401), then sent again with credentials. Returns the final
    /// status; a 200 call is ACKed, plays its confirmation and gets our BYE, which is answered
    /// (the prompt heard is returned with it).
    pub fn dial_code(
        &mut self,
        phone: SocketAddr,
        code: &str,
        user: &str,
        password: &str,
    ) -> (u16, Vec<String>) {
        let call_id = self.token("fc-");
        let uri = format!("sip:{code}@{GW}");
        let body = sdp(phone);
        let msg = |method: &str, cseq: u32, branch: &str, to: &str, extra: &str, body: &str| {
            format!(
                "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/TCP {phone};branch={branch}\r\n\
                 Max-Forwards: 70\r\nFrom: <sip:{user}@hotline>;tag=f{call_id}\r\n\
                 To: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\n\
                 Contact: <sip:{user}@{phone};transport=tcp>\r\n{extra}\
                 Content-Length: {}\r\n\r\n{body}",
                body.len()
            )
        };
        let sdp_type = "Content-Type: application/sdp\r\n";
        let b1 = self.token("z9hG4bK-a");
        let to = format!("<{uri}>");
        self.send_text(phone, &msg("INVITE", 1, &b1, &to, sdp_type, &body));
        let ch = self.final_response(phone);
        assert_eq!(ch.status, 401, "a feature code needs credentials");
        let to1 = ch.headers.get(&HeaderName::To).unwrap_or("").to_string();
        self.send_text(phone, &msg("ACK", 1, &b1, &to1, "", ""));
        let challenge = ch
            .headers
            .get(&HeaderName::WwwAuthenticate)
            .unwrap_or("")
            .to_string();
        let auth = sip::auth::authorization_for(
            &challenge,
            &Method::Invite,
            &uri,
            user,
            password,
            "c2",
            1,
        )
        .expect("credentials for the challenge");
        let b2 = self.token("z9hG4bK-b");
        let extra = format!("Authorization: {auth}\r\n{sdp_type}");
        self.send_text(phone, &msg("INVITE", 2, &b2, &to, &extra, &body));
        let r = self.final_response(phone);
        let to2 = r.headers.get(&HeaderName::To).unwrap_or("").to_string();
        if r.status != 200 {
            self.send_text(phone, &msg("ACK", 2, &b2, &to2, "", ""));
            return (r.status, Vec::new());
        }
        let b3 = self.token("z9hG4bK-c");
        self.send_text(phone, &msg("ACK", 2, &b3, &to2, "", ""));
        let heard = self
            .media
            .legs
            .get(call_id.as_str())
            .map(|l| l.heard.clone())
            .unwrap_or_default();
        self.advance(Duration::from_secs(2));
        self.bye_answered(phone);
        (200, heard)
    }
}

impl World {
    /// The media edge reports no RTP from the caller of `d` for the timeout.
    pub fn rtp_dead(&mut self, d: &Dialog) {
        self.input(Input::Media(calls::MediaEvent::Inactive {
            call_id: d.call_id.as_str().into(),
        }));
    }
}
