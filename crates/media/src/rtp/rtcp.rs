//! Basic RTCP (RFC 3550 §6): sender and receiver reports, SDES CNAME, BYE.
//!
//! Only what a telephony leg needs: we send one compound packet (SR or RR + SDES CNAME) every
//! few seconds and read the peer's SR/RR for loss, jitter and round-trip time.

use thiserror::Error;

/// RTCP packet type of a sender report.
pub const PT_SR: u8 = 200;
/// RTCP packet type of a receiver report.
pub const PT_RR: u8 = 201;
/// RTCP packet type of source description items.
pub const PT_SDES: u8 = 202;
/// RTCP packet type of a goodbye.
pub const PT_BYE: u8 = 203;

const REPORT_BLOCK_LEN: usize = 24;

/// Why an RTCP datagram was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RtcpError {
    /// Shorter than an RTCP header, or a packet's length runs past the datagram.
    #[error("RTCP packet truncated")]
    Truncated,
    /// Version field is not 2.
    #[error("unsupported RTCP version {0}")]
    Version(u8),
    /// A report claims more blocks than its length holds.
    #[error("RTCP report count does not fit its length")]
    BadCount,
}

/// One reception report block (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportBlock {
    /// The source this block reports on.
    pub ssrc: u32,
    /// Fraction lost since the previous report, in 1/256.
    pub fraction_lost: u8,
    /// Cumulative packets lost (24-bit signed).
    pub cumulative_lost: i32,
    /// Extended highest sequence number received.
    pub highest_sequence: u32,
    /// Interarrival jitter in timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the NTP timestamp of the last SR received from that source (0: none).
    pub last_sr: u32,
    /// Delay since that SR, in 1/65536 s.
    pub delay_since_last_sr: u32,
}

/// The sender-info section of an SR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SenderInfo {
    /// 64-bit NTP timestamp (seconds since 1900 in the high word, fraction in the low word).
    pub ntp: u64,
    /// RTP timestamp corresponding to `ntp`.
    pub rtp_timestamp: u32,
    /// Packets sent.
    pub packet_count: u32,
    /// Payload octets sent.
    pub octet_count: u32,
}

/// One packet of a compound RTCP datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RtcpPacket {
    /// Sender report.
    SenderReport {
        /// Sender's SSRC.
        ssrc: u32,
        /// Sender info.
        info: SenderInfo,
        /// Reception reports.
        reports: Vec<ReportBlock>,
    },
    /// Receiver report.
    ReceiverReport {
        /// Reporter's SSRC.
        ssrc: u32,
        /// Reception reports.
        reports: Vec<ReportBlock>,
    },
    /// Goodbye from these sources.
    Bye {
        /// The sources leaving.
        ssrcs: Vec<u32>,
    },
    /// SDES, APP or anything else we do not interpret.
    Other {
        /// Packet type.
        packet_type: u8,
    },
}

fn be32(b: &[u8], at: usize) -> Result<u32, RtcpError> {
    let s = b.get(at..at + 4).ok_or(RtcpError::Truncated)?;
    Ok(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

fn parse_blocks(body: &[u8], count: usize) -> Result<Vec<ReportBlock>, RtcpError> {
    if body.len() < count * REPORT_BLOCK_LEN {
        return Err(RtcpError::BadCount);
    }
    (0..count)
        .map(|i| {
            let o = i * REPORT_BLOCK_LEN;
            let lost_word = be32(body, o + 4)?;
            // Sign-extend the 24-bit cumulative loss.
            let cumulative_lost = ((lost_word << 8) as i32) >> 8;
            Ok(ReportBlock {
                ssrc: be32(body, o)?,
                fraction_lost: (lost_word >> 24) as u8,
                cumulative_lost,
                highest_sequence: be32(body, o + 8)?,
                jitter: be32(body, o + 12)?,
                last_sr: be32(body, o + 16)?,
                delay_since_last_sr: be32(body, o + 20)?,
            })
        })
        .collect()
}

/// Parses a compound RTCP datagram.
pub fn parse(data: &[u8]) -> Result<Vec<RtcpPacket>, RtcpError> {
    let mut out = Vec::new();
    let mut rest = data;
    if rest.is_empty() {
        return Err(RtcpError::Truncated);
    }
    while !rest.is_empty() {
        if rest.len() < 4 {
            return Err(RtcpError::Truncated);
        }
        let version = rest[0] >> 6;
        if version != 2 {
            return Err(RtcpError::Version(version));
        }
        let count = usize::from(rest[0] & 0x1F);
        let packet_type = rest[1];
        let len = (usize::from(u16::from_be_bytes([rest[2], rest[3]])) + 1) * 4;
        let packet = rest.get(..len).ok_or(RtcpError::Truncated)?;
        rest = &rest[len..];
        let body = &packet[4..];
        out.push(match packet_type {
            PT_SR => {
                let ssrc = be32(body, 0)?;
                let info = SenderInfo {
                    ntp: (u64::from(be32(body, 4)?) << 32) | u64::from(be32(body, 8)?),
                    rtp_timestamp: be32(body, 12)?,
                    packet_count: be32(body, 16)?,
                    octet_count: be32(body, 20)?,
                };
                let reports = parse_blocks(body.get(24..).unwrap_or(&[]), count)?;
                RtcpPacket::SenderReport {
                    ssrc,
                    info,
                    reports,
                }
            }
            PT_RR => {
                let ssrc = be32(body, 0)?;
                let reports = parse_blocks(body.get(4..).unwrap_or(&[]), count)?;
                RtcpPacket::ReceiverReport { ssrc, reports }
            }
            PT_BYE => {
                let ssrcs = (0..count)
                    .map(|i| be32(body, i * 4))
                    .collect::<Result<_, _>>()?;
                RtcpPacket::Bye { ssrcs }
            }
            other => RtcpPacket::Other { packet_type: other },
        });
    }
    Ok(out)
}

fn header(out: &mut Vec<u8>, count: usize, packet_type: u8, body_words: usize) {
    out.push(0x80 | (count.min(31) as u8));
    out.push(packet_type);
    out.extend_from_slice(&(body_words as u16).to_be_bytes());
}

fn write_blocks(out: &mut Vec<u8>, reports: &[ReportBlock]) {
    for r in reports {
        out.extend_from_slice(&r.ssrc.to_be_bytes());
        let lost = (r.cumulative_lost.clamp(-0x80_0000, 0x7F_FFFF) as u32) & 0x00FF_FFFF;
        out.extend_from_slice(&((u32::from(r.fraction_lost) << 24) | lost).to_be_bytes());
        out.extend_from_slice(&r.highest_sequence.to_be_bytes());
        out.extend_from_slice(&r.jitter.to_be_bytes());
        out.extend_from_slice(&r.last_sr.to_be_bytes());
        out.extend_from_slice(&r.delay_since_last_sr.to_be_bytes());
    }
}

/// Appends a sender report (at most 31 report blocks are written).
pub fn write_sr(out: &mut Vec<u8>, ssrc: u32, info: &SenderInfo, reports: &[ReportBlock]) {
    let reports = &reports[..reports.len().min(31)];
    header(out, reports.len(), PT_SR, 6 + 6 * reports.len());
    out.extend_from_slice(&ssrc.to_be_bytes());
    out.extend_from_slice(&info.ntp.to_be_bytes());
    out.extend_from_slice(&info.rtp_timestamp.to_be_bytes());
    out.extend_from_slice(&info.packet_count.to_be_bytes());
    out.extend_from_slice(&info.octet_count.to_be_bytes());
    write_blocks(out, reports);
}

/// Appends a receiver report (at most 31 report blocks are written).
pub fn write_rr(out: &mut Vec<u8>, ssrc: u32, reports: &[ReportBlock]) {
    let reports = &reports[..reports.len().min(31)];
    header(out, reports.len(), PT_RR, 1 + 6 * reports.len());
    out.extend_from_slice(&ssrc.to_be_bytes());
    write_blocks(out, reports);
}

/// Appends an SDES packet with one CNAME item (required in every compound packet, §6.1).
pub fn write_sdes_cname(out: &mut Vec<u8>, ssrc: u32, cname: &str) {
    let name = &cname.as_bytes()[..cname.len().min(255)];
    // ssrc + type + len + text + at least one zero octet, padded to 32 bits.
    let chunk = 4 + 2 + name.len() + 1;
    let padded = chunk.div_ceil(4) * 4;
    header(out, 1, PT_SDES, padded / 4);
    out.extend_from_slice(&ssrc.to_be_bytes());
    out.push(1); // CNAME
    out.push(name.len() as u8);
    out.extend_from_slice(name);
    out.resize(out.len() + (padded - chunk) + 1, 0);
}

/// Appends a BYE for `ssrc`.
pub fn write_bye(out: &mut Vec<u8>, ssrc: u32) {
    header(out, 1, PT_BYE, 1);
    out.extend_from_slice(&ssrc.to_be_bytes());
}

/// The middle 32 bits of an NTP timestamp, as used in LSR and for round-trip time.
pub fn ntp_middle(ntp: u64) -> u32 {
    (ntp >> 16) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compound_round_trip() {
        let block = ReportBlock {
            ssrc: 0x1111_2222,
            fraction_lost: 25,
            cumulative_lost: -3,
            highest_sequence: 70_000,
            jitter: 80,
            last_sr: 0xDEAD_BEEF,
            delay_since_last_sr: 65536 * 2,
        };
        let info = SenderInfo {
            ntp: 0xE000_0000_8000_0000,
            rtp_timestamp: 12345,
            packet_count: 250,
            octet_count: 40_000,
        };
        let mut buf = Vec::new();
        write_sr(&mut buf, 0xAAAA_BBBB, &info, &[block]);
        write_sdes_cname(&mut buf, 0xAAAA_BBBB, "hotline");
        write_rr(&mut buf, 0xAAAA_BBBB, &[]);
        write_bye(&mut buf, 0xAAAA_BBBB);
        assert_eq!(buf.len() % 4, 0);
        let parsed = parse(&buf).unwrap();
        assert_eq!(
            parsed,
            vec![
                RtcpPacket::SenderReport {
                    ssrc: 0xAAAA_BBBB,
                    info,
                    reports: vec![block]
                },
                RtcpPacket::Other {
                    packet_type: PT_SDES
                },
                RtcpPacket::ReceiverReport {
                    ssrc: 0xAAAA_BBBB,
                    reports: vec![]
                },
                RtcpPacket::Bye {
                    ssrcs: vec![0xAAAA_BBBB]
                },
            ]
        );
    }

    #[test]
    fn sdes_padding_for_every_name_length() {
        for n in 0..12 {
            let name = "x".repeat(n);
            let mut buf = Vec::new();
            write_sdes_cname(&mut buf, 1, &name);
            assert_eq!(buf.len() % 4, 0, "len {n}");
            let words = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
            assert_eq!((words + 1) * 4, buf.len());
            assert_eq!(buf[9], n as u8);
            assert_eq!(*buf.last().unwrap(), 0);
        }
    }

    #[test]
    fn malformed_is_an_error() {
        assert_eq!(parse(&[]), Err(RtcpError::Truncated));
        assert_eq!(parse(&[0x80, 200, 0, 6]), Err(RtcpError::Truncated));
        assert_eq!(parse(&[0x40, 200, 0, 0]), Err(RtcpError::Version(1)));
        // RR claiming 2 blocks with room for none.
        assert_eq!(
            parse(&[0x82, 201, 0, 1, 0, 0, 0, 1]),
            Err(RtcpError::BadCount)
        );
        // SR too short for its sender info.
        assert_eq!(
            parse(&[0x80, 200, 0, 1, 0, 0, 0, 1]),
            Err(RtcpError::Truncated)
        );
    }
}
