//! RTP streams: a paced [`RtpSender`], a statistics-keeping [`RtpReceiver`], basic [`rtcp`], and
//! the [`RtpLeg`] that combines them with symmetric-RTP latching and an inactivity timeout.

use thiserror::Error;

pub mod rtcp;

mod leg;
mod receiver;
mod sender;

pub use leg::{
    Component, Event, LegConfig, LegStats, RtpLeg, Transmit, RELATCH_PACKETS, RELATCH_SILENCE,
};
pub use receiver::{IntervalLoss, Received, ReceiverStats, RtpReceiver};
pub use sender::{FrameSource, NoAudio, RtpSender, SenderStats, SilenceSource};

/// Why an RTP datagram was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RtpError {
    /// Shorter than the 12-byte fixed header.
    #[error("RTP packet too short ({0} bytes)")]
    TooShort(usize),
    /// Version field is not 2.
    #[error("unsupported RTP version {0}")]
    Version(u8),
    /// CSRC list, header extension or padding runs past the datagram.
    #[error("RTP headers or padding truncated")]
    Truncated,
}

impl From<rtp_rs::RtpReaderError> for RtpError {
    fn from(e: rtp_rs::RtpReaderError) -> Self {
        match e {
            rtp_rs::RtpReaderError::BufferTooShort(n) => RtpError::TooShort(n),
            rtp_rs::RtpReaderError::UnsupportedVersion(v) => RtpError::Version(v),
            _ => RtpError::Truncated,
        }
    }
}
