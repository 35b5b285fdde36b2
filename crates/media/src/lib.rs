//! Sans-IO media core: G.711 codecs, RTP/RTCP legs with drift-free pacing and symmetric-RTP
//! latching, RFC 4733 telephone events, in-band DTMF detection, prompts (WAV loading,
//! resampling, caching, sequences), music on hold, Russian number phrases, SDP offer/answer and WAV
//! recording helpers.
//!
//! Nothing here owns a socket, a task or a clock: every input carries the current `Instant`
//! and every output is polled, so the gateway's tokio edge decides when things happen and the
//! tests run on virtual time.

pub mod dtmf4733;
pub mod g711;
pub mod goertzel;
pub mod moh;
pub mod numbers_ru;
pub mod pacing;
pub mod prompts;
pub mod resample;
pub mod rtp;
pub mod sdp;
pub mod wav;
