//! Music on hold: a prompt played in a loop, shared by every waiting caller.
//!
//! A [`MohLoop`] is built once per music file from the prompt's 8 kHz PCM: the loop is cut to a
//! whole number of 20 ms frames and its first [`CROSSFADE`] samples are cross-faded with the
//! samples that follow the cut, so the sample after the loop's last one is what naturally came
//! next in the file. The jump back to the start therefore has no gap (nothing is padded) and no
//! click (no step in the waveform), whatever the file's length. Both G.711 encodings are made
//! at the same time; every [`MohSource`] borrows frames from that one `Arc` and keeps only its
//! own position, so a thousand waiting callers cost a thousand `usize`s.
//!
//! A [`MohSource`] is an ordinary [`FrameSource`]: replacing a leg's source with the bridge or a
//! prompt takes effect on the leg's next 20 ms slot.
//!
//! Files shorter than one frame plus the cross-fade cannot be cut that way; they are padded
//! with silence to whole frames and loop with a short pause.

use std::collections::HashMap;
use std::sync::Arc;

use crate::g711::Law;
use crate::prompts::{Prompt, PromptCache, PromptName, UnknownPrompt, FRAME_SAMPLES};
use crate::rtp::FrameSource;

/// Length of the cross-fade at the loop point: 10 ms at 8 kHz.
pub const CROSSFADE: usize = 80;

/// One piece of music on hold, ready to loop: frame-aligned PCM and both G.711 encodings.
#[derive(Debug)]
pub struct MohLoop {
    name: PromptName,
    pcm: Box<[i16]>,
    ulaw: Box<[u8]>,
    alaw: Box<[u8]>,
}

impl MohLoop {
    /// Builds the loop from 8 kHz PCM (see the module doc for the cut and the cross-fade).
    pub fn from_pcm(name: PromptName, pcm: &[i16]) -> MohLoop {
        let pcm = loop_pcm(pcm);
        let mut ulaw = Vec::with_capacity(pcm.len());
        let mut alaw = Vec::with_capacity(pcm.len());
        Law::Ulaw.encode_into(&pcm, &mut ulaw);
        Law::Alaw.encode_into(&pcm, &mut alaw);
        MohLoop {
            name,
            pcm: pcm.into(),
            ulaw: ulaw.into(),
            alaw: alaw.into(),
        }
    }

    /// Builds the loop from a loaded prompt (its real samples, without the prompt's padding).
    pub fn from_prompt(prompt: &Prompt) -> MohLoop {
        let pcm = prompt.pcm();
        let real = pcm.get(..prompt.len_samples()).unwrap_or(pcm);
        MohLoop::from_pcm(prompt.name().clone(), real)
    }

    /// The prompt this loop was made from.
    pub fn name(&self) -> &PromptName {
        &self.name
    }

    /// Frames in one pass of the loop (at least 1).
    pub fn frames(&self) -> usize {
        self.pcm.len() / FRAME_SAMPLES
    }

    /// The whole loop as 8 kHz PCM (a multiple of [`FRAME_SAMPLES`] samples).
    pub fn pcm(&self) -> &[i16] {
        &self.pcm
    }

    /// Frame `i` (taken modulo the loop length) encoded in `law`: a slice of the shared buffer.
    pub fn frame(&self, law: Law, i: usize) -> &[u8] {
        let buf = match law {
            Law::Ulaw => &self.ulaw,
            Law::Alaw => &self.alaw,
        };
        let start = (i % self.frames()) * FRAME_SAMPLES;
        buf.get(start..start + FRAME_SAMPLES).unwrap_or(&[])
    }
}

/// Cuts `s` to whole frames so that it loops seamlessly (module doc).
fn loop_pcm(s: &[i16]) -> Vec<i16> {
    let usable = s.len().saturating_sub(CROSSFADE);
    let m = usable / FRAME_SAMPLES * FRAME_SAMPLES;
    if m == 0 {
        let frames = s.len().div_ceil(FRAME_SAMPLES).max(1);
        let mut v = s.to_vec();
        v.resize(frames * FRAME_SAMPLES, 0);
        return v;
    }
    let mut v: Vec<i16> = s.get(..m).unwrap_or_default().to_vec();
    let tail = s.get(m..m + CROSSFADE).unwrap_or_default();
    for (i, (head, next)) in v.iter_mut().zip(tail).enumerate() {
        // the file's own start fades in while what followed the cut fades out
        let w = (i as f32 + 0.5) / CROSSFADE as f32;
        let mixed = f32::from(*head) * w + f32::from(*next) * (1.0 - w);
        *head = mixed
            .round()
            .clamp(f32::from(i16::MIN), f32::from(i16::MAX)) as i16;
    }
    v
}

/// One caller's place in a shared [`MohLoop`].
#[derive(Debug, Clone)]
pub struct MohSource {
    music: Arc<MohLoop>,
    law: Law,
    pos: usize,
}

impl MohSource {
    /// Plays `music` in `law` from its first frame.
    pub fn new(music: Arc<MohLoop>, law: Law) -> MohSource {
        MohSource { music, law, pos: 0 }
    }

    /// The frame that will be played next.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// The loop played.
    pub fn music(&self) -> &Arc<MohLoop> {
        &self.music
    }
}

impl FrameSource for MohSource {
    fn next_frame(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.music.frame(self.law, self.pos));
        self.pos = (self.pos + 1) % self.music.frames();
    }
}

/// The loops built so far, by prompt name: each file is cut and encoded once, the first time a
/// caller needs it, and then shared.
#[derive(Debug, Default)]
pub struct MohLibrary {
    loops: HashMap<PromptName, Arc<MohLoop>>,
}

impl MohLibrary {
    /// An empty library.
    pub fn new() -> MohLibrary {
        MohLibrary::default()
    }

    /// The loop for the prompt `name` of `cache`, built on first use.
    pub fn get(
        &mut self,
        cache: &PromptCache,
        name: &PromptName,
    ) -> Result<Arc<MohLoop>, UnknownPrompt> {
        if let Some(l) = self.loops.get(name) {
            return Ok(l.clone());
        }
        let prompt = cache.get(name).ok_or_else(|| UnknownPrompt(name.clone()))?;
        let l = Arc::new(MohLoop::from_prompt(prompt));
        self.loops.insert(name.clone(), l.clone());
        Ok(l)
    }

    /// Loops built.
    pub fn len(&self) -> usize {
        self.loops.len()
    }

    /// Whether no loop was built yet.
    pub fn is_empty(&self) -> bool {
        self.loops.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtp::{LegConfig, RtpLeg, SilenceSource};
    use std::time::{Duration, Instant, SystemTime};

    /// A sine of `len` samples at `hz`.
    fn tone(hz: f64, len: usize, amp: f64) -> Vec<i16> {
        (0..len)
            .map(|n| (amp * (2.0 * std::f64::consts::PI * hz * n as f64 / 8000.0).sin()) as i16)
            .collect()
    }

    /// A 437 Hz sine of `len` samples (not periodic in any frame count).
    fn sine(len: usize, amp: f64) -> Vec<i16> {
        tone(437.0, len, amp)
    }

    fn max_step(s: &[i16]) -> i32 {
        s.windows(2)
            .map(|w| (i32::from(w[1]) - i32::from(w[0])).abs())
            .max()
            .unwrap()
    }

    #[test]
    fn the_loop_is_frame_aligned_and_its_wrap_is_as_smooth_as_the_music() {
        // 110 Hz, 8018 samples: not a whole number of frames nor of periods, and the file
        // ends near a peak of the wave
        let s = tone(110.0, 8018, 12_000.0);
        let l = MohLoop::from_pcm(PromptName::new("m"), &s);
        assert_eq!(l.pcm().len() % FRAME_SAMPLES, 0);
        // cut to whole frames before the cross-fade tail: 8018 - 80 → 49 frames
        assert_eq!(l.frames(), 49);
        // two passes back to back: every step, the loop point included, stays near the
        // sine's own largest step (a click is a jump of thousands)
        let music_step = max_step(&s);
        let twice: Vec<i16> = l.pcm().iter().chain(l.pcm()).copied().collect();
        let wrap = (i32::from(l.pcm()[0]) - i32::from(*l.pcm().last().unwrap())).abs();
        assert!(wrap <= music_step, "wrap {wrap} vs music {music_step}");
        assert!(
            max_step(&twice) * 4 <= music_step * 5,
            "max step {} vs music {music_step}",
            max_step(&twice)
        );
        // the same file padded with silence (the naive loop) clicks at the wrap
        let naive = Prompt::from_pcm(PromptName::new("m"), &s, &[]);
        let mut naive_twice = naive.pcm().to_vec();
        naive_twice.extend_from_slice(naive.pcm());
        assert!(max_step(&naive_twice) > 10 * music_step);
        // after the cross-fade the loop is the file itself
        assert_eq!(&l.pcm()[CROSSFADE..], &s[CROSSFADE..l.pcm().len()]);
    }

    #[test]
    fn the_shipped_music_loads_and_loops_without_a_click() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../config/prompts/moh/default.wav");
        let pcm = crate::prompts::read_wav(&path).unwrap();
        assert!(
            (19 * 8000..=21 * 8000).contains(&pcm.len()),
            "{} samples",
            pcm.len()
        );
        let l = MohLoop::from_pcm(PromptName::new("moh/default"), &pcm);
        let wrap = (i32::from(l.pcm()[0]) - i32::from(*l.pcm().last().unwrap())).abs();
        assert!(wrap < 500, "loop point jumps by {wrap}");
    }

    #[test]
    fn short_files_are_padded_to_a_frame() {
        let l = MohLoop::from_pcm(PromptName::new("beep"), &[1000; 100]);
        assert_eq!(l.frames(), 1);
        assert_eq!(&l.pcm()[..100], &[1000; 100]);
        assert!(l.pcm()[100..].iter().all(|&x| x == 0));
        // exactly one frame plus the cross-fade is enough to cut
        let l = MohLoop::from_pcm(
            PromptName::new("m"),
            &sine(FRAME_SAMPLES + CROSSFADE, 9000.0),
        );
        assert_eq!(l.frames(), 1);
    }

    #[test]
    fn callers_share_one_buffer_and_keep_their_own_places() {
        let music = Arc::new(MohLoop::from_pcm(PromptName::new("m"), &sine(1680, 9000.0)));
        assert_eq!(music.frames(), 10);
        let mut a = MohSource::new(music.clone(), Law::Ulaw);
        let mut b = MohSource::new(music.clone(), Law::Alaw);
        let mut c = MohSource::new(music.clone(), Law::Ulaw);
        assert_eq!(Arc::strong_count(&music), 4);
        let (mut fa, mut fb, mut fc) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..3 {
            fa.clear();
            a.next_frame(&mut fa);
        }
        b.next_frame(&mut fb);
        c.next_frame(&mut fc);
        assert_eq!((a.position(), b.position(), c.position()), (3, 1, 1));
        assert_eq!(fa, music.frame(Law::Ulaw, 2));
        assert_eq!(fc, music.frame(Law::Ulaw, 0));
        assert_eq!(fb, music.frame(Law::Alaw, 0));
        // the frames handed out are slices of the one shared encoding
        let base = music.frame(Law::Ulaw, 0).as_ptr();
        assert_eq!(music.frame(Law::Ulaw, 2).as_ptr(), base.wrapping_add(320));
        assert_eq!(music.frame(Law::Ulaw, 12).as_ptr(), base.wrapping_add(320));
        // the encodings are G.711 of the loop's PCM
        let mut enc = Vec::new();
        Law::Alaw.encode_into(&music.pcm()[..160], &mut enc);
        assert_eq!(fb, enc);
        // position wraps after a whole pass
        for _ in 0..10 {
            fa.clear();
            a.next_frame(&mut fa);
        }
        assert_eq!(a.position(), 3);
        assert_eq!(fa, music.frame(Law::Ulaw, 2));
    }

    #[test]
    fn the_library_builds_each_loop_once() {
        let p = Prompt::from_pcm(PromptName::new("moh/default"), &sine(4000, 8000.0), &[]);
        let cache = PromptCache::from_prompts([Arc::new(p)], &[]);
        let mut lib = MohLibrary::new();
        let a = lib.get(&cache, &PromptName::new("moh/default")).unwrap();
        let b = lib.get(&cache, &PromptName::new("moh/default")).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(lib.len(), 1);
        assert_eq!(a.frames(), (4000 - CROSSFADE) / FRAME_SAMPLES);
        assert_eq!(
            lib.get(&cache, &PromptName::new("nope")).unwrap_err(),
            UnknownPrompt(PromptName::new("nope"))
        );
    }

    #[test]
    fn a_leg_switches_from_music_to_another_source_on_the_next_slot() {
        let t0 = Instant::now();
        let music = Arc::new(MohLoop::from_pcm(
            PromptName::new("m"),
            &sine(16_000, 9000.0),
        ));
        let config = LegConfig {
            remote: Some("127.0.0.1:4000".parse().unwrap()),
            ..LegConfig::default()
        };
        let mut leg = RtpLeg::new(config, t0, SystemTime::now());
        leg.set_source(Box::new(MohSource::new(music.clone(), Law::Ulaw)));
        let payloads = |leg: &mut RtpLeg, at: Instant| {
            leg.handle_timeout(at);
            let mut v = Vec::new();
            while let Some(t) = leg.poll_transmit() {
                if t.component == crate::rtp::Component::Rtp {
                    v.push(t.payload);
                }
            }
            v
        };
        for n in 0..5u32 {
            let p = payloads(&mut leg, t0 + Duration::from_millis(20) * n);
            assert_eq!(p.len(), 1);
            assert_eq!(&p[0][12..], music.frame(Law::Ulaw, n as usize));
        }
        // switched between two ticks: the very next packet is the new source's, marked
        leg.set_source(Box::new(SilenceSource::new(0xFF, 160)));
        let p = payloads(&mut leg, t0 + Duration::from_millis(100));
        assert_eq!(p.len(), 1);
        assert_eq!(&p[0][12..], &[0xFF; 160]);
        assert_eq!(p[0][1] & 0x80, 0x80, "marker at the switch");
    }
}
