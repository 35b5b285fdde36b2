//! SDP (RFC 4566) and the offer/answer model (RFC 3264) for one G.711 audio stream.
//!
//! [`SessionDescription::parse`] reads any well-formed SDP into our own model (every media
//! section, its formats, `rtpmap`/`fmtp`/`ptime` and direction attributes); a malformed one is an
//! [`SdpError`] that the gateway turns into `400`. [`answer`] chooses what we use from an offer:
//! PCMU or PCMA in the offerer's order, telephone-event with the payload type the offerer chose,
//! ptime 20, and the direction that mirrors the offer's (hold: `sendonly` → `recvonly`,
//! `inactive` → `inactive`). No audio stream or no common codec is [`SdpError::NoCommonCodec`] /
//! [`SdpError::NoAudio`], which the gateway answers with `488`. [`Negotiated::render`] writes our
//! side, and [`offer`] describes what we take when we have to offer first (an INVITE without
//! SDP: we offer in the 200 and the caller answers in the ACK).

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::g711::Law;

/// Our packet time, milliseconds.
pub const PTIME_MS: u32 = 20;
/// The telephone-event payload type we use when we offer.
pub const DEFAULT_TELEPHONE_EVENT: u8 = 101;

/// Why an SDP body cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    /// The body is not UTF-8 (RFC 4566 text is UTF-8 or a declared charset we do not take).
    #[error("SDP is not UTF-8")]
    NotUtf8,
    /// The first line is not `v=0`.
    #[error("SDP must start with v=0")]
    Version,
    /// A line is not `<letter>=<value>`.
    #[error("SDP line {0} is not <type>=<value>")]
    Syntax(usize),
    /// A `c=` line that is not `IN IP4|IP6 <address>`.
    #[error("SDP line {0}: bad connection address")]
    Connection(usize),
    /// An `m=` line without a port, protocol and at least one format.
    #[error("SDP line {0}: bad media line")]
    Media(usize),
    /// An `a=rtpmap` that is not `<pt> <name>/<rate>[/<channels>]`.
    #[error("SDP line {0}: bad rtpmap")]
    RtpMap(usize),
    /// An audio stream with no connection address at either level (RFC 4566 §5.7).
    #[error("SDP audio stream without a connection address")]
    NoConnection,
    /// No usable audio stream (none, or every one rejected with port 0).
    #[error("SDP without an audio stream")]
    NoAudio,
    /// The offer has no codec we take.
    #[error("no common codec (we take PCMU and PCMA)")]
    NoCommonCodec,
}

impl SdpError {
    /// Whether this is a well-formed offer we cannot take (`488`) rather than a malformed body
    /// (`400`).
    pub fn is_not_acceptable(&self) -> bool {
        matches!(self, SdpError::NoAudio | SdpError::NoCommonCodec)
    }
}

/// A stream's direction attribute (RFC 3264 §5.1, §6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    /// Both ways (the default).
    #[default]
    SendRecv,
    /// The author only sends (puts the other side on hold).
    SendOnly,
    /// The author only receives.
    RecvOnly,
    /// Neither.
    Inactive,
}

impl Direction {
    /// The attribute name.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    fn parse(s: &str) -> Option<Direction> {
        match s {
            "sendrecv" => Some(Direction::SendRecv),
            "sendonly" => Some(Direction::SendOnly),
            "recvonly" => Some(Direction::RecvOnly),
            "inactive" => Some(Direction::Inactive),
            _ => None,
        }
    }

    /// What the answerer says to an offer with this direction (RFC 3264 §6.1).
    pub fn answer(self) -> Direction {
        match self {
            Direction::SendRecv => Direction::SendRecv,
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            Direction::Inactive => Direction::Inactive,
        }
    }

    /// Whether the author of this direction sends media.
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    /// Whether the author of this direction receives media.
    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }
}

/// An `a=rtpmap` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpMap {
    /// Payload type.
    pub payload_type: u8,
    /// Encoding name as written (compare case-insensitively).
    pub encoding: String,
    /// Clock rate.
    pub clock_rate: u32,
    /// Channels, when given.
    pub channels: Option<u8>,
}

/// One `m=` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaDescription {
    /// `audio`, `video`, …
    pub media: String,
    /// Transport port; 0 rejects or disables the stream.
    pub port: u16,
    /// `RTP/AVP`, …
    pub proto: String,
    /// Formats in the offerer's order of preference (payload type numbers for RTP).
    pub formats: Vec<String>,
    /// The media-level `c=` address.
    pub connection: Option<IpAddr>,
    /// `a=rtpmap` entries.
    pub rtpmaps: Vec<RtpMap>,
    /// `a=fmtp` entries: payload type and parameters.
    pub fmtps: Vec<(u8, String)>,
    /// `a=ptime`, milliseconds.
    pub ptime: Option<u32>,
    /// Media-level direction attribute.
    pub direction: Option<Direction>,
}

impl MediaDescription {
    /// The `rtpmap` of `pt`, if any.
    pub fn rtpmap(&self, pt: u8) -> Option<&RtpMap> {
        self.rtpmaps.iter().find(|m| m.payload_type == pt)
    }
}

/// A parsed session description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    /// The `o=` line's session id and version, when present and numeric.
    pub origin: Option<(u64, u64)>,
    /// Session-level `c=` address.
    pub connection: Option<IpAddr>,
    /// Session-level direction attribute (applies to media that have none).
    pub direction: Option<Direction>,
    /// The `m=` sections in order.
    pub media: Vec<MediaDescription>,
}

fn parse_connection(value: &str, line: usize) -> Result<IpAddr, SdpError> {
    let mut it = value.split_whitespace();
    let (Some("IN"), Some(kind), Some(addr)) = (it.next(), it.next(), it.next()) else {
        return Err(SdpError::Connection(line));
    };
    // multicast TTL / count suffixes (`/127`) are allowed by the grammar
    let addr = addr.split('/').next().unwrap_or(addr);
    let ip = match kind {
        "IP4" => addr.parse::<Ipv4Addr>().map(IpAddr::V4),
        "IP6" => addr.parse::<Ipv6Addr>().map(IpAddr::V6),
        _ => return Err(SdpError::Connection(line)),
    };
    ip.map_err(|_| SdpError::Connection(line))
}

fn parse_media(value: &str, line: usize) -> Result<MediaDescription, SdpError> {
    let mut it = value.split_whitespace();
    let media = it.next().ok_or(SdpError::Media(line))?;
    let port = it
        .next()
        .and_then(|p| p.split('/').next())
        .and_then(|p| p.parse::<u16>().ok())
        .ok_or(SdpError::Media(line))?;
    let proto = it.next().ok_or(SdpError::Media(line))?;
    let formats: Vec<String> = it.map(str::to_string).collect();
    if formats.is_empty() {
        return Err(SdpError::Media(line));
    }
    Ok(MediaDescription {
        media: media.to_string(),
        port,
        proto: proto.to_string(),
        formats,
        connection: None,
        rtpmaps: Vec::new(),
        fmtps: Vec::new(),
        ptime: None,
        direction: None,
    })
}

fn parse_rtpmap(value: &str, line: usize) -> Result<RtpMap, SdpError> {
    let err = || SdpError::RtpMap(line);
    let (pt, enc) = value.split_once(' ').ok_or_else(err)?;
    let payload_type = pt.trim().parse::<u8>().map_err(|_| err())?;
    let mut parts = enc.trim().split('/');
    let encoding = parts.next().filter(|e| !e.is_empty()).ok_or_else(err)?;
    let clock_rate = parts
        .next()
        .and_then(|r| r.parse::<u32>().ok())
        .ok_or_else(err)?;
    let channels = match parts.next() {
        Some(c) => Some(c.parse::<u8>().map_err(|_| err())?),
        None => None,
    };
    Ok(RtpMap {
        payload_type,
        encoding: encoding.to_string(),
        clock_rate,
        channels,
    })
}

impl SessionDescription {
    /// Parses an SDP body. Unknown line types and attributes are skipped (RFC 4566 §5); lines
    /// we rely on must be well formed.
    pub fn parse(body: &[u8]) -> Result<SessionDescription, SdpError> {
        let text = std::str::from_utf8(body).map_err(|_| SdpError::NotUtf8)?;
        let mut sd = SessionDescription {
            origin: None,
            connection: None,
            direction: None,
            media: Vec::new(),
        };
        let mut first = true;
        for (i, raw) in text.split('\n').enumerate() {
            let n = i + 1;
            let line = raw.strip_suffix('\r').unwrap_or(raw);
            if line.is_empty() {
                continue;
            }
            let Some((kind, value)) = line.split_once('=') else {
                return Err(SdpError::Syntax(n));
            };
            if kind.len() != 1 || !kind.bytes().all(|b| b.is_ascii_lowercase()) {
                return Err(SdpError::Syntax(n));
            }
            if first {
                if kind != "v" || value.trim() != "0" {
                    return Err(SdpError::Version);
                }
                first = false;
                continue;
            }
            match (kind, sd.media.last_mut()) {
                ("o", None) => {
                    let f: Vec<&str> = value.split_whitespace().collect();
                    if let (Some(id), Some(ver)) = (f.get(1), f.get(2)) {
                        if let (Ok(id), Ok(ver)) = (id.parse(), ver.parse()) {
                            sd.origin = Some((id, ver));
                        }
                    }
                }
                ("c", None) => sd.connection = Some(parse_connection(value, n)?),
                ("c", Some(m)) => m.connection = Some(parse_connection(value, n)?),
                ("m", _) => sd.media.push(parse_media(value, n)?),
                ("a", m) => {
                    let (name, arg) = match value.split_once(':') {
                        Some((a, b)) => (a, Some(b)),
                        None => (value, None),
                    };
                    match (name, arg, m) {
                        (d, None, m) if Direction::parse(d).is_some() => {
                            let d = Direction::parse(d);
                            match m {
                                Some(m) => m.direction = d,
                                None => sd.direction = d,
                            }
                        }
                        ("rtpmap", Some(v), Some(m)) => m.rtpmaps.push(parse_rtpmap(v, n)?),
                        ("fmtp", Some(v), Some(m)) => {
                            if let Some((pt, params)) = v.split_once(' ') {
                                if let Ok(pt) = pt.parse::<u8>() {
                                    m.fmtps.push((pt, params.trim().to_string()));
                                }
                            }
                        }
                        ("ptime", Some(v), Some(m)) => m.ptime = v.trim().parse().ok(),
                        _ => {}
                    }
                }
                _ => {}
            }
        }
        if first {
            return Err(SdpError::Version);
        }
        Ok(sd)
    }

    /// The first audio stream that is not rejected (port ≠ 0), with its index.
    pub fn audio(&self) -> Option<(usize, &MediaDescription)> {
        self.media
            .iter()
            .enumerate()
            .find(|(_, m)| m.media.eq_ignore_ascii_case("audio") && m.port != 0)
    }
}

/// What a call uses, as agreed in offer/answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    /// The audio codec.
    pub law: Law,
    /// Its payload type in this session (the static 0 or 8 unless the offer mapped another).
    pub audio_pt: u8,
    /// The telephone-event payload type the offerer chose, if it offered one.
    pub telephone_event: Option<u8>,
    /// Our direction (what we put in our SDP).
    pub direction: Direction,
    /// Where the peer wants our RTP; `None` for a held stream (`c=0.0.0.0`).
    pub remote: Option<SocketAddr>,
    /// Index of the audio `m=` line in the offer (our answer keeps the others rejected).
    pub audio_index: usize,
    /// Number of `m=` lines in the offer.
    pub media_count: usize,
}

impl Negotiated {
    /// What we assume before any SDP came from the peer: our own offer's first choices.
    pub fn our_offer() -> Negotiated {
        Negotiated {
            law: Law::Ulaw,
            audio_pt: 0,
            telephone_event: Some(DEFAULT_TELEPHONE_EVENT),
            direction: Direction::SendRecv,
            remote: None,
            audio_index: 0,
            media_count: 1,
        }
    }

    /// Our SDP for this session from `local` (`o=` id and version, RTP on `port`). Media
    /// sections of the offer we do not take are answered with port 0 (RFC 3264 §6).
    pub fn render(&self, local: IpAddr, port: u16, session_id: u64, version: u64) -> String {
        let ip = match local {
            IpAddr::V4(_) => "IP4",
            IpAddr::V6(_) => "IP6",
        };
        let mut s = format!(
            "v=0\r\no=hotline {session_id} {version} IN {ip} {local}\r\ns=Hotline\r\nc=IN {ip} {local}\r\nt=0 0\r\n"
        );
        for i in 0..self.media_count.max(1) {
            if i != self.audio_index {
                // RFC 3264 §6: a declined stream keeps its place with port 0
                let _ = write!(s, "m=audio 0 RTP/AVP {}\r\n", self.audio_pt);
                continue;
            }
            let _ = write!(s, "m=audio {port} RTP/AVP {}", self.audio_pt);
            if let Some(d) = self.telephone_event {
                let _ = write!(s, " {d}");
            }
            let name = match self.law {
                Law::Ulaw => "PCMU",
                Law::Alaw => "PCMA",
            };
            let _ = write!(s, "\r\na=rtpmap:{} {name}/8000\r\n", self.audio_pt);
            if let Some(d) = self.telephone_event {
                let _ = write!(
                    s,
                    "a=rtpmap:{d} telephone-event/8000\r\na=fmtp:{d} 0-16\r\n"
                );
            }
            let _ = write!(s, "a=ptime:{PTIME_MS}\r\na={}\r\n", self.direction.as_str());
        }
        s
    }
}

/// Our offer (when the INVITE had none): PCMU, PCMA and telephone-event, sendrecv.
pub fn offer(local: IpAddr, port: u16, session_id: u64, version: u64) -> String {
    let ip = match local {
        IpAddr::V4(_) => "IP4",
        IpAddr::V6(_) => "IP6",
    };
    let te = DEFAULT_TELEPHONE_EVENT;
    format!(
        "v=0\r\no=hotline {session_id} {version} IN {ip} {local}\r\ns=Hotline\r\nc=IN {ip} {local}\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0 8 {te}\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
         a=rtpmap:{te} telephone-event/8000\r\na=fmtp:{te} 0-16\r\na=ptime:{PTIME_MS}\r\na=sendrecv\r\n"
    )
}

/// The codec a format of `m` stands for, if it is one we take.
fn law_of(m: &MediaDescription, pt: u8) -> Option<Law> {
    match m.rtpmap(pt) {
        Some(map) if map.clock_rate == 8000 && map.channels.unwrap_or(1) == 1 => {
            if map.encoding.eq_ignore_ascii_case("PCMU") {
                Some(Law::Ulaw)
            } else if map.encoding.eq_ignore_ascii_case("PCMA") {
                Some(Law::Alaw)
            } else {
                None
            }
        }
        Some(_) => None,
        // static payload types need no rtpmap (RFC 3551)
        None => Law::from_payload_type(pt),
    }
}

/// Chooses what we use from an offer (RFC 3264 §6). Also reads an answer to our own offer
/// (the ACK after an INVITE without SDP): the same choice, with the direction mirrored.
pub fn answer(offer: &SessionDescription) -> Result<Negotiated, SdpError> {
    let (index, m) = offer.audio().ok_or(SdpError::NoAudio)?;
    if !m.proto.to_ascii_uppercase().starts_with("RTP/") {
        return Err(SdpError::NoCommonCodec);
    }
    let pts = || m.formats.iter().filter_map(|f| f.parse::<u8>().ok());
    let (audio_pt, law) = pts()
        .find_map(|pt| law_of(m, pt).map(|l| (pt, l)))
        .ok_or(SdpError::NoCommonCodec)?;
    let telephone_event = pts().find(|&pt| {
        m.rtpmap(pt).is_some_and(|map| {
            map.encoding.eq_ignore_ascii_case("telephone-event") && map.clock_rate == 8000
        })
    });
    let addr = m
        .connection
        .or(offer.connection)
        .ok_or(SdpError::NoConnection)?;
    let direction = m.direction.or(offer.direction).unwrap_or_default();
    // RFC 2543 hold: c=0.0.0.0 means "do not send to me"
    let held = addr.is_unspecified();
    let direction = match (held, direction) {
        (true, Direction::SendRecv) => Direction::SendOnly,
        (true, Direction::RecvOnly) => Direction::Inactive,
        (_, d) => d,
    };
    Ok(Negotiated {
        law,
        audio_pt,
        telephone_event,
        direction: direction.answer(),
        remote: (!held).then(|| SocketAddr::new(addr, m.port)),
        audio_index: index,
        media_count: offer.media.len(),
    })
}

/// Parses and answers an offer in one step.
pub fn answer_body(body: &[u8]) -> Result<Negotiated, SdpError> {
    answer(&SessionDescription::parse(body)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIPP_OFFER: &str = "v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

    #[test]
    fn answers_sipp_offer_with_pcmu_and_no_dtmf() {
        let o = SessionDescription::parse(SIPP_OFFER.as_bytes()).unwrap();
        assert_eq!(o.origin, Some((53655765, 2353687637)));
        let n = answer(&o).unwrap();
        assert_eq!((n.law, n.audio_pt, n.telephone_event), (Law::Ulaw, 0, None));
        assert_eq!(n.remote, Some("127.0.0.1:6000".parse().unwrap()));
        let s = n.render("127.0.0.1".parse().unwrap(), 10000, 1, 1);
        assert_eq!(
            s,
            "v=0\r\no=hotline 1 1 IN IP4 127.0.0.1\r\ns=Hotline\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio 10000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\na=sendrecv\r\n"
        );
        // our answer parses as SDP again and answers to the same codec
        let back = answer_body(s.as_bytes()).unwrap();
        assert_eq!((back.law, back.audio_pt), (Law::Ulaw, 0));
    }

    #[test]
    fn offerers_order_and_its_telephone_event_number_are_kept() {
        let offer = "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP 9 8 0 96\r\na=rtpmap:9 G722/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:96 telephone-event/8000\r\na=fmtp:96 0-15\r\n";
        let n = answer_body(offer.as_bytes()).unwrap();
        assert_eq!(
            (n.law, n.audio_pt, n.telephone_event, n.direction),
            (Law::Alaw, 8, Some(96), Direction::SendRecv)
        );
        let s = n.render("10.0.0.2".parse().unwrap(), 20000, 5, 6);
        assert!(s.contains("m=audio 20000 RTP/AVP 8 96\r\n"), "{s}");
        assert!(s.contains("a=rtpmap:96 telephone-event/8000\r\na=fmtp:96 0-16\r\n"));
    }

    #[test]
    fn dynamic_payload_type_for_pcmu_is_honoured() {
        let offer =
            "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP 112\r\na=rtpmap:112 pcmu/8000/1\r\n";
        let n = answer_body(offer.as_bytes()).unwrap();
        assert_eq!((n.law, n.audio_pt), (Law::Ulaw, 112));
        assert!(n
            .render("10.0.0.2".parse().unwrap(), 1, 1, 1)
            .contains("a=rtpmap:112 PCMU/8000"));
    }

    #[test]
    fn hold_directions_are_mirrored() {
        for (offered, answered) in [
            ("sendonly", Direction::RecvOnly),
            ("inactive", Direction::Inactive),
            ("recvonly", Direction::SendOnly),
            ("sendrecv", Direction::SendRecv),
        ] {
            let media =
                format!("v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP 0\r\na={offered}\r\n");
            assert_eq!(answer_body(media.as_bytes()).unwrap().direction, answered);
            // session-level attribute applies to a stream that has none
            let session =
                format!("v=0\r\nc=IN IP4 10.0.0.1\r\na={offered}\r\nm=audio 4000 RTP/AVP 0\r\n");
            assert_eq!(answer_body(session.as_bytes()).unwrap().direction, answered);
        }
        // RFC 2543 hold
        let old = "v=0\r\nc=IN IP4 0.0.0.0\r\nm=audio 4000 RTP/AVP 0\r\n";
        let n = answer_body(old.as_bytes()).unwrap();
        assert_eq!((n.direction, n.remote), (Direction::RecvOnly, None));
    }

    #[test]
    fn ipv6_and_media_level_connection() {
        let offer = "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP 0\r\nc=IN IP6 ::1\r\n";
        let n = answer_body(offer.as_bytes()).unwrap();
        assert_eq!(n.remote, Some("[::1]:4000".parse().unwrap()));
        let s = n.render("::1".parse().unwrap(), 30000, 1, 1);
        assert!(s.contains("c=IN IP6 ::1\r\n"), "{s}");
    }

    #[test]
    fn video_is_declined_and_audio_answered_in_its_place() {
        let offer = "v=0\r\nc=IN IP4 10.0.0.1\r\nm=video 5000 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\nm=audio 4000 RTP/AVP 8\r\n";
        let n = answer_body(offer.as_bytes()).unwrap();
        assert_eq!((n.audio_index, n.media_count), (1, 2));
        let s = n.render("10.0.0.2".parse().unwrap(), 20000, 1, 1);
        let m: Vec<&str> = s.lines().filter(|l| l.starts_with("m=")).collect();
        assert_eq!(m, ["m=audio 0 RTP/AVP 8", "m=audio 20000 RTP/AVP 8"]);
    }

    #[test]
    fn nothing_in_common_is_not_acceptable() {
        let g722 = "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP 9\r\na=rtpmap:9 G722/8000\r\n";
        let e = answer_body(g722.as_bytes()).unwrap_err();
        assert_eq!(e, SdpError::NoCommonCodec);
        assert!(e.is_not_acceptable());
        // PCMU at 16 kHz is not our PCMU
        let wide =
            "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP 97\r\na=rtpmap:97 PCMU/16000\r\n";
        assert_eq!(answer_body(wide.as_bytes()), Err(SdpError::NoCommonCodec));
        let video = "v=0\r\nc=IN IP4 10.0.0.1\r\nm=video 4000 RTP/AVP 96\r\n";
        assert_eq!(answer_body(video.as_bytes()), Err(SdpError::NoAudio));
        let rejected = "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 0 RTP/AVP 0\r\n";
        assert_eq!(answer_body(rejected.as_bytes()), Err(SdpError::NoAudio));
    }

    #[test]
    fn malformed_sdp_is_an_error_not_a_panic() {
        let cases: &[(&[u8], SdpError)] = &[
            (b"\xff\xfe", SdpError::NotUtf8),
            (b"hello", SdpError::Syntax(1)),
            (b"", SdpError::Version),
            (b"v=1\r\n", SdpError::Version),
            (b"o=x 1 1 IN IP4 1.2.3.4\r\nv=0\r\n", SdpError::Version),
            (b"v=0\r\nm=audio x RTP/AVP 0\r\n", SdpError::Media(2)),
            (b"v=0\r\nm=audio 4000 RTP/AVP\r\n", SdpError::Media(2)),
            (b"v=0\r\nc=IN IP4 999.1.1.1\r\n", SdpError::Connection(2)),
            (b"v=0\r\nc=IN IP4\r\n", SdpError::Connection(2)),
            (b"v=0\r\nc=IN IP6 10.0.0.1\r\n", SdpError::Connection(2)),
            (b"v=0\r\nab=c\r\n", SdpError::Syntax(2)),
            (
                b"v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 1 RTP/AVP 0\r\na=rtpmap:x PCMU/8000\r\n",
                SdpError::RtpMap(4),
            ),
            (
                b"v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 1 RTP/AVP 0\r\na=rtpmap:0 PCMU\r\n",
                SdpError::RtpMap(4),
            ),
        ];
        for (body, want) in cases {
            assert_eq!(
                SessionDescription::parse(body).as_ref().err(),
                Some(want),
                "{:?}",
                String::from_utf8_lossy(body)
            );
            assert!(!want.is_not_acceptable());
        }
        let no_c = b"v=0\r\nm=audio 4000 RTP/AVP 0\r\n";
        assert_eq!(answer_body(no_c), Err(SdpError::NoConnection));
        // bare LF line ends and unknown lines/attributes are fine
        let lf = b"v=0\nc=IN IP4 1.2.3.4\nz=0 0\nm=audio 4000 RTP/AVP 0\na=rtcp-mux\na=x-foo:bar\n";
        assert_eq!(answer_body(lf).unwrap().audio_pt, 0);
    }

    #[test]
    fn our_offer_is_answerable() {
        let s = offer("127.0.0.1".parse().unwrap(), 10002, 7, 1);
        let n = answer_body(s.as_bytes()).unwrap();
        assert_eq!(
            (n.law, n.telephone_event, n.remote),
            (
                Law::Ulaw,
                Some(DEFAULT_TELEPHONE_EVENT),
                Some("127.0.0.1:10002".parse().unwrap())
            )
        );
    }
}
