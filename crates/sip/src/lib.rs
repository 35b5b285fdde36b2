//! Sans-IO SIP for Hotline.
//!
//! Nothing in this crate touches a socket, a task or the clock: callers feed bytes and the
//! current time in, and drain what to send and when to be woken up. The daemon (`gateway`)
//! owns the I/O.

pub mod auth;
pub mod dialog;
pub mod framing;
pub mod message;
pub mod parse;
pub mod refer;
pub mod registrar;
pub mod room;
pub mod tokens;
pub mod transaction;
pub mod typed;

pub use dialog::{Dialog, DialogError, DialogId, DialogState};
pub use framing::{Frame, FramingError, StreamFramer};
pub use message::{
    Header, HeaderName, Headers, Host, Message, Method, Params, Request, Response, SipUri, Uri,
};
pub use parse::{
    parse_message, validate_request, validate_response, ParseError, ParseErrorKind, RequestError,
};
pub use tokens::Tokens;
pub use typed::{CSeq, NameAddr, SyntaxError, Via};

use std::net::SocketAddr;

/// The transport a message came in on or must leave by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        }
    }
    /// Reliable transports need no retransmission timers (RFC 3261 §17).
    pub fn is_reliable(self) -> bool {
        matches!(self, Transport::Tcp)
    }
}

/// The far end of a hop: transport and address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Peer {
    pub transport: Transport,
    pub addr: SocketAddr,
}
