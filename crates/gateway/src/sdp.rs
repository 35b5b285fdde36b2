//! Just enough SDP (RFC 4566) offer/answer (RFC 3264) to answer a call with G.711 and
//! telephone-event. The media issue replaces this with the `media` crate's full model.

use std::net::IpAddr;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SdpError {
    #[error("SDP is not UTF-8")]
    NotUtf8,
    #[error("malformed SDP line {0}")]
    BadLine(usize),
    #[error("SDP without an audio stream")]
    NoAudio,
    #[error("no common codec (we take PCMU and PCMA)")]
    NoCommonCodec,
}

/// Stream direction attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }
    /// What we answer to a peer's direction (RFC 3264 §6.1).
    pub fn answer(self) -> Direction {
        match self {
            Direction::SendRecv => Direction::SendRecv,
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            Direction::Inactive => Direction::Inactive,
        }
    }
}

/// The audio part of an offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioOffer {
    pub address: Option<IpAddr>,
    pub port: u16,
    pub formats: Vec<u8>,
    /// `a=rtpmap` entries: payload type, encoding name (upper-case), clock rate.
    pub rtpmap: Vec<(u8, String, u32)>,
    pub direction: Direction,
}

/// The codec chosen for a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    /// 0 = PCMU, 8 = PCMA.
    pub audio_pt: u8,
    /// The offered telephone-event payload type, if any.
    pub dtmf_pt: Option<u8>,
    pub direction: Direction,
}

pub fn parse_offer(body: &[u8]) -> Result<AudioOffer, SdpError> {
    let text = std::str::from_utf8(body).map_err(|_| SdpError::NotUtf8)?;
    let mut session_addr = None;
    let mut session_dir = Direction::SendRecv;
    let mut audio: Option<AudioOffer> = None;
    let mut in_other_media = false;
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            continue;
        }
        let Some((kind, value)) = line.split_once('=') else {
            return Err(SdpError::BadLine(i + 1));
        };
        match kind {
            "c" => {
                // c=IN IP4 192.0.2.1
                let addr = value
                    .split_whitespace()
                    .nth(2)
                    .and_then(|a| a.split('/').next())
                    .and_then(|a| a.parse::<IpAddr>().ok());
                match (&mut audio, in_other_media) {
                    (Some(a), false) => a.address = addr.or(a.address),
                    (None, false) => session_addr = addr,
                    _ => {}
                }
            }
            "m" => {
                let mut parts = value.split_whitespace();
                let media = parts.next().unwrap_or("");
                if media == "audio" && audio.is_none() {
                    let port = parts
                        .next()
                        .and_then(|p| p.split('/').next())
                        .and_then(|p| p.parse::<u16>().ok())
                        .ok_or(SdpError::BadLine(i + 1))?;
                    let _proto = parts.next();
                    let formats = parts.filter_map(|f| f.parse::<u8>().ok()).collect();
                    audio = Some(AudioOffer {
                        address: session_addr,
                        port,
                        formats,
                        rtpmap: Vec::new(),
                        direction: session_dir,
                    });
                    in_other_media = false;
                } else {
                    in_other_media = true;
                }
            }
            "a" => {
                let dir = match value {
                    "sendrecv" => Some(Direction::SendRecv),
                    "sendonly" => Some(Direction::SendOnly),
                    "recvonly" => Some(Direction::RecvOnly),
                    "inactive" => Some(Direction::Inactive),
                    _ => None,
                };
                match (&mut audio, in_other_media, dir) {
                    (None, false, Some(d)) => session_dir = d,
                    (Some(a), false, Some(d)) => a.direction = d,
                    (Some(a), false, None) => {
                        if let Some(map) = value.strip_prefix("rtpmap:") {
                            let mut it = map.splitn(2, ' ');
                            let pt = it.next().and_then(|p| p.parse::<u8>().ok());
                            let enc = it.next().unwrap_or("");
                            let mut e = enc.split('/');
                            let name = e.next().unwrap_or("").to_ascii_uppercase();
                            let rate = e.next().and_then(|r| r.parse::<u32>().ok()).unwrap_or(8000);
                            if let Some(pt) = pt {
                                a.rtpmap.push((pt, name, rate));
                            }
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
    let mut audio = audio.ok_or(SdpError::NoAudio)?;
    if audio.address.is_none() {
        audio.address = session_addr;
    }
    // a=sendonly on the session applies to media that say nothing
    Ok(audio)
}

/// Pick our codec from the offer: the first of PCMU/PCMA in the offerer's order.
pub fn negotiate(offer: &AudioOffer) -> Result<Negotiated, SdpError> {
    let name_of = |pt: u8| {
        offer
            .rtpmap
            .iter()
            .find(|(p, _, _)| *p == pt)
            .map(|(_, n, r)| (n.as_str(), *r))
    };
    let audio_pt = offer
        .formats
        .iter()
        .copied()
        .find(|&pt| match name_of(pt) {
            Some((n, 8000)) => n == "PCMU" || n == "PCMA",
            Some(_) => false,
            None => pt == 0 || pt == 8,
        })
        .ok_or(SdpError::NoCommonCodec)?;
    let audio_pt = match name_of(audio_pt) {
        Some(("PCMA", _)) => 8,
        Some(("PCMU", _)) => 0,
        _ => audio_pt,
    };
    let dtmf_pt = offer
        .formats
        .iter()
        .copied()
        .find(|&pt| matches!(name_of(pt), Some((n, 8000)) if n == "TELEPHONE-EVENT"));
    Ok(Negotiated {
        audio_pt,
        dtmf_pt,
        direction: offer.direction.answer(),
    })
}

/// Our SDP (answer or offer) for one audio stream.
pub fn render(local: IpAddr, port: u16, session_id: u64, version: u64, neg: &Negotiated) -> String {
    let ip = match local {
        IpAddr::V4(_) => "IP4",
        IpAddr::V6(_) => "IP6",
    };
    let codec = if neg.audio_pt == 8 { "PCMA" } else { "PCMU" };
    let mut s = format!(
        "v=0\r\no=hotline {session_id} {version} IN {ip} {local}\r\ns=Hotline\r\nc=IN {ip} {local}\r\nt=0 0\r\nm=audio {port} RTP/AVP {}",
        neg.audio_pt
    );
    if let Some(d) = neg.dtmf_pt {
        s.push_str(&format!(" {d}"));
    }
    s.push_str(&format!("\r\na=rtpmap:{} {codec}/8000\r\n", neg.audio_pt));
    if let Some(d) = neg.dtmf_pt {
        s.push_str(&format!(
            "a=rtpmap:{d} telephone-event/8000\r\na=fmtp:{d} 0-16\r\n"
        ));
    }
    s.push_str(&format!("a=ptime:20\r\na={}\r\n", neg.direction.as_str()));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIPP_OFFER: &str = "v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

    #[test]
    fn answers_sipp_offer_with_pcmu() {
        let o = parse_offer(SIPP_OFFER.as_bytes()).unwrap();
        assert_eq!(o.port, 6000);
        let n = negotiate(&o).unwrap();
        assert_eq!(n.audio_pt, 0);
        assert_eq!(n.dtmf_pt, None);
        let s = render("127.0.0.1".parse().unwrap(), 10000, 1, 1, &n);
        assert!(s.contains("m=audio 10000 RTP/AVP 0\r\n"), "{s}");
    }

    #[test]
    fn prefers_offerers_order_and_keeps_dtmf_pt() {
        let offer = "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP 9 8 0 96\r\na=rtpmap:9 G722/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:96 telephone-event/8000\r\na=sendonly\r\n";
        let n = negotiate(&parse_offer(offer.as_bytes()).unwrap()).unwrap();
        assert_eq!(
            (n.audio_pt, n.dtmf_pt, n.direction),
            (8, Some(96), Direction::RecvOnly)
        );
    }

    #[test]
    fn no_common_codec() {
        let offer =
            "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP 9\r\na=rtpmap:9 G722/8000\r\n";
        assert_eq!(
            negotiate(&parse_offer(offer.as_bytes()).unwrap()),
            Err(SdpError::NoCommonCodec)
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(parse_offer(b"\xff\xfe").is_err());
        assert!(parse_offer(b"v=0\r\nm=audio x RTP/AVP 0\r\n").is_err());
        assert!(parse_offer(b"hello").is_err());
    }
}
