//! Bridging two legs (a caller and an operator) and music on hold, on the media edge.
//!
//! We are a B2BUA, not a proxy: what one leg receives is played on the other leg as that leg's
//! own stream (its SSRC, sequence numbers and timestamps, paced by the shared 20 ms tick), in
//! that leg's G.711 law. The relay costs no task and no timer:
//!
//! - The **receive path** of leg A (the media thread, already holding A's lock for the packet)
//!   transcodes the payload byte by byte with the G.711 tables into B's law and appends it to B's
//!   [`Inbox`] — a small queue behind its own mutex, a leaf lock nobody holds while taking
//!   another.
//! - The **leg's tick** pulls one 20 ms frame per slot from B's inbox through B's
//!   [`BridgeSource`], exactly as it pulls a prompt, so the stream stays continuous: silence
//!   when the caller's packet is late (the queue then keeps one frame of slack), the oldest audio
//!   dropped when more than [`MAX_QUEUED`] waits (clock drift, a burst after a stall).
//! - RFC 4733 digits received on A go to B's inbox too and B's tick regenerates them with B's
//!   own telephone-event payload type ([`DTMF_DURATION`] long); a leg that negotiated no
//!   telephone-event gets none (logged). In-band tones pass with the audio. The digit is still
//!   reported to the core as usual.
//! - In-band DTMF detection is paused on both legs while they are bridged (nobody reads keys
//!   then) and resumes when they are taken apart.
//! - Recording needs nothing extra: the caller leg's tap already records what the caller sends
//!   (left) and what we send to the caller (right) — while bridged, that is the operator.
//!
//! Switching a leg between music on hold, a bridge and a prompt replaces the leg's frame
//! source under its lock, so the change is heard on the leg's next 20 ms slot.

// The ACD's operator legs call these; until that is wired only the tests do.
#![cfg_attr(not(test), allow(dead_code))]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use ::media::dtmf4733::Digit;
use ::media::g711::{Law, ALAW_TO_ULAW, ULAW_TO_ALAW};
use ::media::moh::MohSource;
use ::media::prompts::{PromptCache, PromptName, UnknownPrompt, FRAME_SAMPLES};
use ::media::rtp::{FrameSource, SilenceSource};
use tracing::{debug, info};

use super::{LegShared, LegState, MediaEdge};

/// Most audio waiting in a leg's inbox (120 ms); beyond it the oldest is dropped down to
/// [`KEEP_QUEUED`].
pub(crate) const MAX_QUEUED: usize = 6 * FRAME_SAMPLES;
/// What is kept when the inbox overflows (40 ms).
pub(crate) const KEEP_QUEUED: usize = 2 * FRAME_SAMPLES;
/// Length of a digit regenerated on the other leg (what phones send for a short press).
pub(crate) const DTMF_DURATION: Duration = Duration::from_millis(100);
/// Digits waiting to be regenerated, at most (a leg busy sending one queues the next).
const MAX_DIGITS: usize = 16;

/// Why two legs cannot be bridged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BridgeError {
    /// Both ends are the same leg.
    #[error("a leg cannot be bridged to itself")]
    SameLeg,
    /// One of the legs has ended.
    #[error("the leg has ended")]
    Closed,
}

/// What one leg of a bridge is to play: audio and digits its peer received, already in this
/// leg's law.
#[derive(Debug)]
pub(crate) struct Inbox {
    state: Mutex<InboxState>,
}

#[derive(Debug)]
struct InboxState {
    law: Law,
    audio: VecDeque<u8>,
    digits: VecDeque<Digit>,
    /// Slots played as silence because nothing had arrived.
    underruns: u64,
    /// Samples dropped on overflow.
    dropped: u64,
}

impl Inbox {
    fn new(law: Law) -> Arc<Inbox> {
        Arc::new(Inbox {
            state: Mutex::new(InboxState {
                law,
                audio: VecDeque::with_capacity(MAX_QUEUED + FRAME_SAMPLES),
                digits: VecDeque::new(),
                underruns: 0,
                dropped: 0,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, InboxState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends a payload of `from` law, transcoded to the inbox's law.
    fn push_audio(&self, from: Law, payload: &[u8]) {
        let mut q = self.lock();
        match transcode_table(from, q.law) {
            None => q.audio.extend(payload),
            Some(t) => {
                // through a stack buffer: a slice extend is a copy, a mapped iterator is not
                let mut buf = [0u8; FRAME_SAMPLES];
                for chunk in payload.chunks(FRAME_SAMPLES) {
                    let out = buf.get_mut(..chunk.len()).unwrap_or_default();
                    for (o, &b) in out.iter_mut().zip(chunk) {
                        *o = t[usize::from(b)];
                    }
                    q.audio.extend(&*out);
                }
            }
        }
        if q.audio.len() > MAX_QUEUED {
            let drop = q.audio.len() - KEEP_QUEUED;
            q.audio.drain(..drop);
            q.dropped += drop as u64;
        }
    }

    fn push_digit(&self, d: Digit) {
        let mut q = self.lock();
        if q.digits.len() < MAX_DIGITS {
            q.digits.push_back(d);
        }
    }

    /// (underruns, samples dropped, samples queued), for tests and diagnostics.
    #[cfg(test)]
    pub(crate) fn counters(&self) -> (u64, u64, usize) {
        let q = self.lock();
        (q.underruns, q.dropped, q.audio.len())
    }
}

/// The G.711 table from `from` to `to`, or `None` when they are the same law.
fn transcode_table(from: Law, to: Law) -> Option<&'static [u8; 256]> {
    match (from, to) {
        (Law::Ulaw, Law::Alaw) => Some(&ULAW_TO_ALAW),
        (Law::Alaw, Law::Ulaw) => Some(&ALAW_TO_ULAW),
        _ => None,
    }
}

/// A bridged leg's frame source: one frame per slot from its inbox, silence when empty.
struct BridgeSource {
    inbox: Arc<Inbox>,
}

impl FrameSource for BridgeSource {
    fn next_frame(&mut self, out: &mut Vec<u8>) {
        let mut q = self.inbox.lock();
        if q.audio.len() >= FRAME_SAMPLES {
            let (a, b) = q.audio.as_slices();
            let from_a = a.len().min(FRAME_SAMPLES);
            out.extend_from_slice(a.get(..from_a).unwrap_or_default());
            out.extend_from_slice(b.get(..FRAME_SAMPLES - from_a).unwrap_or_default());
            q.audio.drain(..FRAME_SAMPLES);
        } else {
            q.underruns += 1;
            let silence = q.law.silence();
            out.resize(FRAME_SAMPLES, silence);
        }
    }
}

/// One leg's end of a bridge (in its `LegState`).
pub(crate) struct BridgeEnd {
    /// What this leg plays (its peer's receive path fills it).
    inbox: Arc<Inbox>,
    /// Where what this leg receives goes.
    peer_inbox: Arc<Inbox>,
    /// The other leg, to detach it too when this one is unbridged.
    peer: Weak<LegShared>,
}

impl BridgeEnd {
    /// This leg's inbox (tests look at its counters).
    #[cfg(test)]
    pub(crate) fn inbox(&self) -> &Arc<Inbox> {
        &self.inbox
    }
}

/// Receive path hook: an audio payload in the leg's law arrived; pass it to the peer.
pub(super) fn relay_audio(st: &LegState, payload: &[u8]) {
    if let Some(b) = &st.bridge {
        b.peer_inbox.push_audio(st.law, payload);
    }
}

/// Receive path hook: an RFC 4733 digit arrived; the peer regenerates it on its next tick.
pub(super) fn relay_digit(st: &LegState, d: Digit) {
    if let Some(b) = &st.bridge {
        b.peer_inbox.push_digit(d);
    }
}

/// Tick hook, before the leg sends: start the digits the peer received.
pub(super) fn before_tick(st: &mut LegState, now: Instant) {
    let Some(b) = &st.bridge else {
        return;
    };
    let mut q = b.inbox.lock();
    while let Some(&d) = q.digits.front() {
        if st.leg.telephone_event().is_none() {
            info!(digit = %d.as_char(), "DTMF not passed on: the other leg has no telephone-event");
            q.digits.pop_front();
        } else if st.leg.send_dtmf(now, d, DTMF_DURATION) {
            q.digits.pop_front();
        } else {
            break; // still sending the previous digit: next tick
        }
    }
}

/// Re-INVITE hook: the leg's law changed; what waits in its inbox is in the old law.
pub(super) fn law_changed(st: &mut LegState) {
    if let Some(b) = &st.bridge {
        let mut q = b.inbox.lock();
        q.law = st.law;
        q.audio.clear();
    }
    // the bridge source reads the law from the inbox; other sources are the core's to redo
}

impl LegShared {
    /// Takes the leg out of its bridge (if any), playing silence; returns the peer's handle.
    fn detach(&self) -> Option<(Weak<LegShared>, Arc<Inbox>)> {
        let mut st = self.lock();
        let end = st.bridge.take()?;
        st.inband_on = true;
        let silence = st.law.silence();
        st.leg
            .set_source(Box::new(SilenceSource::new(silence, FRAME_SAMPLES)));
        Some((end.peer, end.inbox))
    }

    /// The leg's bridge end (tests).
    #[cfg(test)]
    pub(crate) fn bridge_inbox(&self) -> Option<Arc<Inbox>> {
        self.lock().bridge.as_ref().map(|b| b.inbox().clone())
    }
}

impl MediaEdge {
    /// Connects two legs: from the next tick on each plays what the other receives (see the
    /// module doc). Whatever either leg played before (music, a prompt) stops; a leg that was
    /// bridged to a third one is taken out of that bridge first.
    pub(crate) fn bridge(&self, a: &Arc<LegShared>, b: &Arc<LegShared>) -> Result<(), BridgeError> {
        if Arc::ptr_eq(a, b) {
            return Err(BridgeError::SameLeg);
        }
        if a.lock().closed || b.lock().closed {
            return Err(BridgeError::Closed);
        }
        self.unbridge(a);
        self.unbridge(b);
        let law_a = a.lock().law;
        let law_b = b.lock().law;
        let (inbox_a, inbox_b) = (Inbox::new(law_a), Inbox::new(law_b));
        for (leg, inbox, peer_inbox, peer) in [
            (a, inbox_a.clone(), inbox_b.clone(), b),
            (b, inbox_b, inbox_a, a),
        ] {
            let mut st = leg.lock();
            st.leg.set_source(Box::new(BridgeSource {
                inbox: inbox.clone(),
            }));
            st.bridge = Some(BridgeEnd {
                inbox,
                peer_inbox,
                peer: Arc::downgrade(peer),
            });
            st.inband_on = false;
        }
        debug!(a = %a.call_id, b = %b.call_id, ?law_a, ?law_b, "legs bridged");
        Ok(())
    }

    /// Takes `leg` and its peer out of their bridge; both play silence from the next tick
    /// (the caller of this decides what comes next: music, a prompt, or closing the leg).
    /// Nothing happens to a leg that is not bridged.
    pub(crate) fn unbridge(&self, leg: &LegShared) {
        let Some((peer, inbox)) = leg.detach() else {
            return;
        };
        if let Some(peer) = peer.upgrade() {
            let ours = peer
                .lock()
                .bridge
                .as_ref()
                .is_some_and(|e| Arc::ptr_eq(&e.peer_inbox, &inbox));
            if ours {
                peer.detach();
            }
        }
    }

    /// Plays the music-on-hold prompt `music` on `leg` in a loop, from the next tick (taking
    /// the leg out of a bridge first). The loop is built once per prompt and shared.
    pub(crate) fn play_moh(
        &mut self,
        leg: &LegShared,
        prompts: &PromptCache,
        music: &PromptName,
    ) -> Result<(), UnknownPrompt> {
        let music = self.moh.get(prompts, music)?;
        self.unbridge(leg);
        let mut st = leg.lock();
        let law = st.law;
        st.leg.set_source(Box::new(MohSource::new(music, law)));
        Ok(())
    }
}

#[cfg(test)]
mod tests;
