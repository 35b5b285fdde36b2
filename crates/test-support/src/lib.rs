//! What the call-control harness (`crates/calls/tests/harness`) and the gateway's socket tests
//! (`crates/gateway/tests`) share, so that neither builds it again: the settings every test
//! starts from ([`settings`], [`line`], [`operators`]) and the digest REGISTER an operator's
//! phone sends ([`Register`], [`digest_for`]), and an RTP packet as a test peer reads it
//! ([`RtpPacket`]). Only for tests: nothing here is checked the
//! way the daemon's configuration is.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use calls::{DtmfMode, LineSettings, OperatorSettings, Settings};
use media::prompts::PromptCache;
use sip::{Method, Response};

/// The password of every test operator: `<login>-secret`.
pub fn password(login: &str) -> String {
    format!("{login}-secret")
}

/// Operators with these logins and their test passwords ([`password`]).
pub fn operators(logins: &[&str]) -> Vec<OperatorSettings> {
    logins
        .iter()
        .map(|op| OperatorSettings {
            login: (*op).into(),
            secret: sip::auth::Secret::Plain(password(op)),
        })
        .collect()
}

/// A line `id` for `numbers` that answers after `ring`: no greeting, no menu, DTMF `auto`,
/// not recorded (tests set what they need on it).
pub fn line(id: &str, numbers: &[&str], ring: Duration) -> LineSettings {
    LineSettings {
        id: id.into(),
        numbers: numbers.iter().map(|n| (*n).into()).collect(),
        name: id.into(),
        ring,
        greeting: None,
        dtmf: DtmfMode::Auto,
        record: false,
        menu: None,
        start: String::new(),
    }
}

/// The settings a test starts from: listening on 127.0.0.1 (port 0), realm `hotline`, MD5
/// digests, no lines, trunks, operators, prompts, music or ACD, RTP ports 20000–20099, a
/// 60 s RTP timeout, 30-minute session timer, calls up to 4 hours, 1 s shutdown grace,
/// callers' numbers redacted. Each test sets what it is about with `..settings()`.
pub fn settings() -> Settings {
    Settings {
        listen: vec![SocketAddr::from(([127, 0, 0, 1], 0))],
        user_agent: "Hotline-test".into(),
        realm: "hotline".into(),
        max_message_size: 65_535,
        t1: Duration::from_millis(500),
        lockout_failures: 10,
        lockout: Duration::from_secs(60),
        digest_algorithms: vec![sip::auth::Algorithm::Md5],
        lines: Vec::new(),
        trunks: Vec::new(),
        operators: Vec::new(),
        rtp_ports: (20_000, 20_099),
        rtp_timeout: Some(Duration::from_secs(60)),
        prompts: Arc::new(PromptCache::from_prompts([], &[])),
        recordings_dir: std::env::temp_dir().join("hotline-tests"),
        rtp_address: None,
        session_expires: 1800,
        max_call: Duration::from_secs(4 * 3600),
        shutdown_grace: Duration::from_secs(1),
        redact_callers: true,
        moh: Default::default(),
        acd: None,
        feature_codes: Default::default(),
        roster: Default::default(),
    }
}

/// An operator's phone registering: `op` at `phone` over `transport` (`UDP` or `TCP`).
#[derive(Debug, Clone)]
pub struct Register<'a> {
    pub op: &'a str,
    pub phone: SocketAddr,
    pub transport: &'a str,
    pub call_id: &'a str,
    /// `Expires`, seconds.
    pub expires: u32,
    /// Parameters of the Contact URI (`;transport=tcp`), or none.
    pub contact_params: &'a str,
}

impl<'a> Register<'a> {
    /// `op`'s phone at `phone` over UDP for 300 s, its Contact without parameters.
    pub fn udp(op: &'a str, phone: SocketAddr, call_id: &'a str) -> Register<'a> {
        Register {
            op,
            phone,
            transport: "UDP",
            call_id,
            expires: 300,
            contact_params: "",
        }
    }

    /// The REGISTER with `cseq` and Via branch `branch`, carrying `auth` (a whole header line,
    /// as [`digest_for`] gives it) when there is one.
    pub fn text(&self, cseq: u32, branch: &str, auth: Option<&str>) -> String {
        let Register {
            op,
            phone,
            transport,
            call_id,
            expires,
            contact_params,
        } = self;
        format!(
            "REGISTER sip:hotline SIP/2.0\r\nVia: SIP/2.0/{transport} {phone};branch=z9hG4bK{branch};rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:{op}@hotline>;tag=reg\r\nTo: <sip:{op}@hotline>\r\n\
             Call-ID: {call_id}\r\nCSeq: {cseq} REGISTER\r\n\
             Contact: <sip:{op}@{phone}{contact_params}>\r\nExpires: {expires}\r\n{}\
             Content-Length: 0\r\n\r\n",
            auth.unwrap_or_default()
        )
    }
}

/// The header line (`Authorization: …\r\n`) that answers the REGISTER's `challenge` (a 401)
/// for `op` with its test password.
pub fn digest_for(challenge: &Response, op: &str) -> String {
    let (name, value) = sip::auth::answer_challenge(
        challenge,
        &Method::Register,
        "sip:hotline",
        op,
        &password(op),
        "c1",
        1,
    )
    .expect("a challenge the test operator can answer");
    format!("{}: {value}\r\n", name.as_str())
}

/// An RTP packet as a test peer reads it (RFC 3550's fixed header and the payload), read
/// with `rtp-rs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpPacket {
    pub pt: u8,
    pub marker: bool,
    pub seq: u16,
    pub ts: u32,
    pub ssrc: u32,
    pub payload: Vec<u8>,
}

impl RtpPacket {
    /// The packet in `b`; panics (a failed test) when `b` is not RTP version 2.
    pub fn parse(b: &[u8]) -> RtpPacket {
        let r = match rtp_rs::RtpReader::new(b) {
            Ok(r) => r,
            Err(e) => panic!("not an RTP packet ({e:?}): {b:02x?}"),
        };
        assert_eq!(r.version(), 2, "RTP version 2");
        RtpPacket {
            pt: r.payload_type(),
            marker: r.mark(),
            seq: u16::from(r.sequence_number()),
            ts: r.timestamp(),
            ssrc: r.ssrc(),
            payload: r.payload().to_vec(),
        }
    }
}
