//! Prompts: WAV files loaded and checked once when the configuration loads, kept in memory as
//! 8 kHz linear PCM plus one encoded copy per codec, and played as 20 ms frames.
//!
//! Accepted files are mono 16-bit integer PCM WAV at 8 kHz, or at 16 kHz (converted with
//! [`crate::resample`]). Anything else is a [`PromptError`] that names the file and says why, so
//! `hotlined check` can report it before a call ever needs the prompt.
//!
//! Playing is zero-copy: a [`PromptCache`] hands out `Arc<Prompt>`, a [`PromptSequence`] walks
//! frames by index, and a frame is a borrowed slice of the shared buffers. No file I/O and no
//! encoding happen per call. The codec itself is not written here: whoever builds the cache passes
//! an [`Encoder`] per codec (the G.711 encoders of this crate, or any closure).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::resample::downsample_16k_to_8k;

/// Sample rate of every cached prompt.
pub const SAMPLE_RATE: u32 = 8000;
/// Samples in one 20 ms frame at 8 kHz.
pub const FRAME_SAMPLES: usize = 160;
/// Duration of one frame.
pub const FRAME: Duration = Duration::from_millis(20);

/// Name of a prompt in a [`PromptCache`], e.g. `greeting-city` or `numbers/21`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PromptName(Cow<'static, str>);

impl PromptName {
    /// A name known at compile time (no allocation).
    pub const fn from_static(name: &'static str) -> Self {
        Self(Cow::Borrowed(name))
    }
    /// A name from configuration.
    pub fn new(name: impl Into<String>) -> Self {
        Self(Cow::Owned(name.into()))
    }
    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PromptName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&'static str> for PromptName {
    fn from(s: &'static str) -> Self {
        Self::from_static(s)
    }
}

/// Why a prompt file cannot be used. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    /// The file does not exist.
    #[error("{}: prompt file not found", path.display())]
    Missing {
        /// The file.
        path: PathBuf,
    },
    /// The file exists but cannot be read.
    #[error("{}: cannot read prompt file: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// Not a WAV file, or a damaged one.
    #[error("{}: not a valid WAV file: {reason}", path.display())]
    NotWav {
        /// The file.
        path: PathBuf,
        /// What the WAV reader said.
        reason: String,
    },
    /// Floating-point samples.
    #[error("{}: floating-point samples; prompts must be 16-bit integer PCM", path.display())]
    Float {
        /// The file.
        path: PathBuf,
    },
    /// Not 16 bits per sample.
    #[error("{}: {bits}-bit samples; prompts must be 16-bit PCM", path.display())]
    Bits {
        /// The file.
        path: PathBuf,
        /// Bits per sample in the file.
        bits: u16,
    },
    /// More than one channel.
    #[error("{}: {channels} channels; prompts must be mono", path.display())]
    Channels {
        /// The file.
        path: PathBuf,
        /// Channels in the file.
        channels: u16,
    },
    /// A sample rate other than 8 or 16 kHz.
    #[error("{}: sample rate {rate} Hz; prompts must be 8000 or 16000 Hz", path.display())]
    SampleRate {
        /// The file.
        path: PathBuf,
        /// Rate in the file.
        rate: u32,
    },
    /// A valid WAV with no audio.
    #[error("{}: no samples", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
}

/// Why a sequence cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no prompt named {0} is loaded")]
pub struct UnknownPrompt(pub PromptName);

/// Turns one frame of 8 kHz linear PCM into a codec's payload (e.g. G.711 μ-law, 160 bytes).
pub trait Encoder {
    /// Encodes `pcm` (one frame, [`FRAME_SAMPLES`] samples).
    fn encode(&self, pcm: &[i16]) -> Vec<u8>;
}

impl<F: Fn(&[i16]) -> Vec<u8>> Encoder for F {
    fn encode(&self, pcm: &[i16]) -> Vec<u8> {
        self(pcm)
    }
}

impl Encoder for crate::g711::Law {
    fn encode(&self, pcm: &[i16]) -> Vec<u8> {
        let mut out = Vec::with_capacity(pcm.len());
        self.encode_into(pcm, &mut out);
        out
    }
}

/// The G.711 laws by their RTP names: what every prompt is encoded to.
pub const G711: [(&str, &dyn Encoder); 2] = [
    ("PCMU", &crate::g711::Law::Ulaw),
    ("PCMA", &crate::g711::Law::Alaw),
];

/// Reads a prompt file: checks its format and returns 8 kHz linear PCM.
pub fn read_wav(path: &Path) -> Result<Vec<i16>, PromptError> {
    let p = || path.to_path_buf();
    let reader = hound::WavReader::open(path).map_err(|e| match e {
        hound::Error::IoError(io) if io.kind() == std::io::ErrorKind::NotFound => {
            PromptError::Missing { path: p() }
        }
        hound::Error::IoError(io) if io.kind() != std::io::ErrorKind::UnexpectedEof => {
            PromptError::Io {
                path: p(),
                source: io,
            }
        }
        other => PromptError::NotWav {
            path: p(),
            reason: other.to_string(),
        },
    })?;
    let spec = reader.spec();
    if spec.sample_format == hound::SampleFormat::Float {
        return Err(PromptError::Float { path: p() });
    }
    if spec.bits_per_sample != 16 {
        return Err(PromptError::Bits {
            path: p(),
            bits: spec.bits_per_sample,
        });
    }
    if spec.channels != 1 {
        return Err(PromptError::Channels {
            path: p(),
            channels: spec.channels,
        });
    }
    if spec.sample_rate != 8000 && spec.sample_rate != 16000 {
        return Err(PromptError::SampleRate {
            path: p(),
            rate: spec.sample_rate,
        });
    }
    let samples: Vec<i16> = reader
        .into_samples::<i16>()
        .collect::<Result<_, _>>()
        .map_err(|e| PromptError::NotWav {
            path: p(),
            reason: e.to_string(),
        })?;
    if samples.is_empty() {
        return Err(PromptError::Empty { path: p() });
    }
    Ok(if spec.sample_rate == 16000 {
        downsample_16k_to_8k(&samples)
    } else {
        samples
    })
}

/// One codec's copy of a prompt: all frames encoded back to back.
#[derive(Debug)]
struct Encoded {
    codec: Cow<'static, str>,
    bytes: Arc<[u8]>,
    /// `offsets[i]..offsets[i + 1]` is frame `i`.
    offsets: Arc<[usize]>,
}

/// A loaded prompt: 8 kHz PCM padded with silence to whole 20 ms frames, and its encodings.
#[derive(Debug)]
pub struct Prompt {
    name: PromptName,
    pcm: Arc<[i16]>,
    samples: usize,
    encoded: Vec<Encoded>,
}

impl Prompt {
    /// Makes a prompt from 8 kHz PCM, encoding it with every `(codec, encoder)` given.
    pub fn from_pcm(name: PromptName, pcm: &[i16], encoders: &[(&str, &dyn Encoder)]) -> Self {
        let frames = pcm.len().div_ceil(FRAME_SAMPLES).max(1);
        let mut padded = Vec::with_capacity(frames * FRAME_SAMPLES);
        padded.extend_from_slice(pcm);
        padded.resize(frames * FRAME_SAMPLES, 0);
        let encoded = encoders
            .iter()
            .map(|(codec, enc)| {
                let mut bytes = Vec::new();
                let mut offsets = Vec::with_capacity(frames + 1);
                offsets.push(0);
                for frame in padded.chunks(FRAME_SAMPLES) {
                    bytes.extend(enc.encode(frame));
                    offsets.push(bytes.len());
                }
                Encoded {
                    codec: Cow::Owned((*codec).to_owned()),
                    bytes: bytes.into(),
                    offsets: offsets.into(),
                }
            })
            .collect();
        Self {
            name,
            pcm: padded.into(),
            samples: pcm.len(),
            encoded,
        }
    }

    /// Loads and checks a WAV file (see [`read_wav`]) and encodes it.
    pub fn load(
        name: PromptName,
        path: &Path,
        encoders: &[(&str, &dyn Encoder)],
    ) -> Result<Self, PromptError> {
        Ok(Self::from_pcm(name, &read_wav(path)?, encoders))
    }

    /// The prompt's name.
    pub fn name(&self) -> &PromptName {
        &self.name
    }
    /// Samples of real audio (without the padding of the last frame).
    pub fn len_samples(&self) -> usize {
        self.samples
    }
    /// Number of 20 ms frames (at least 1).
    pub fn frames(&self) -> usize {
        self.pcm.len() / FRAME_SAMPLES
    }
    /// Playing time, whole frames.
    pub fn duration(&self) -> Duration {
        FRAME * u32::try_from(self.frames()).unwrap_or(u32::MAX)
    }
    /// All samples, padded to whole frames.
    pub fn pcm(&self) -> &Arc<[i16]> {
        &self.pcm
    }
    /// Frame `i` as linear PCM (160 samples).
    pub fn frame(&self, i: usize) -> Option<&[i16]> {
        self.pcm
            .get(i.checked_mul(FRAME_SAMPLES)?..(i + 1).checked_mul(FRAME_SAMPLES)?)
    }
    /// Frame `i` encoded for `codec`; `None` for an unknown codec or index.
    pub fn encoded_frame(&self, codec: &str, i: usize) -> Option<&[u8]> {
        let e = self.encoded.iter().find(|e| e.codec == codec)?;
        let start = *e.offsets.get(i)?;
        let end = *e.offsets.get(i.checked_add(1)?)?;
        e.bytes.get(start..end)
    }
}

/// Every prompt of a configuration, loaded once and shared by all calls.
#[derive(Debug)]
pub struct PromptCache {
    prompts: BTreeMap<PromptName, Arc<Prompt>>,
    silence: Arc<Prompt>,
}

impl PromptCache {
    /// Loads every `(name, file)`; on failure returns *all* the errors, so `check` can list every
    /// bad file at once. `encoders` are `(codec name, encoder)` pairs, e.g. `("PCMU", &ulaw)`.
    pub fn load<'a>(
        files: impl IntoIterator<Item = (PromptName, &'a Path)>,
        encoders: &[(&str, &dyn Encoder)],
    ) -> Result<Self, Vec<PromptError>> {
        let mut prompts = BTreeMap::new();
        let mut errors = Vec::new();
        for (name, path) in files {
            match Prompt::load(name.clone(), path, encoders) {
                Ok(p) => {
                    prompts.insert(name, Arc::new(p));
                }
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            Ok(Self::from_prompts(prompts.into_values(), encoders))
        } else {
            Err(errors)
        }
    }

    /// A cache of already built prompts (tests, generated audio).
    pub fn from_prompts(
        prompts: impl IntoIterator<Item = Arc<Prompt>>,
        encoders: &[(&str, &dyn Encoder)],
    ) -> Self {
        Self {
            prompts: prompts.into_iter().map(|p| (p.name().clone(), p)).collect(),
            silence: Arc::new(Prompt::from_pcm(
                PromptName::from_static("(silence)"),
                &[0; FRAME_SAMPLES],
                encoders,
            )),
        }
    }

    /// The prompt called `name`.
    pub fn get(&self, name: &PromptName) -> Option<&Arc<Prompt>> {
        self.prompts.get(name)
    }

    /// Names of all loaded prompts, sorted.
    pub fn names(&self) -> impl Iterator<Item = &PromptName> {
        self.prompts.keys()
    }

    /// One frame of silence, encoded for every codec.
    pub fn silence(&self) -> &Arc<Prompt> {
        &self.silence
    }

    /// A sequence playing the named prompts one after another.
    pub fn sequence<'n>(
        &self,
        names: impl IntoIterator<Item = &'n PromptName>,
    ) -> Result<PromptSequence, UnknownPrompt> {
        let mut seq = PromptSequence::new(self.silence.clone());
        for n in names {
            seq.push_prompt(self.get(n).ok_or_else(|| UnknownPrompt(n.clone()))?.clone());
        }
        Ok(seq)
    }
}

/// One item of a playlist.
#[derive(Debug, Clone)]
enum Item {
    Prompt(Arc<Prompt>),
    /// This many frames of silence.
    Silence(usize),
}

/// A playlist of prompts and silences that yields 20 ms frames one after another.
#[derive(Debug, Clone)]
pub struct PromptSequence {
    items: Vec<Item>,
    silence: Arc<Prompt>,
    /// Current item and frame within it.
    item: usize,
    frame: usize,
}

/// One frame of a sequence, borrowed from the shared prompt buffers.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    prompt: &'a Prompt,
    index: usize,
}

impl<'a> Frame<'a> {
    /// The frame as 160 samples of 8 kHz linear PCM.
    pub fn pcm(&self) -> &'a [i16] {
        self.prompt.frame(self.index).unwrap_or(&[])
    }
    /// The frame encoded for `codec`, if the cache was built with that codec.
    pub fn encoded(&self, codec: &str) -> Option<&'a [u8]> {
        self.prompt.encoded_frame(codec, self.index)
    }
    /// Name of the prompt the frame comes from (`(silence)` in gaps).
    pub fn prompt(&self) -> &'a PromptName {
        self.prompt.name()
    }
}

impl PromptSequence {
    /// An empty sequence; `silence` is the one-frame prompt played in gaps
    /// (see [`PromptCache::silence`]).
    pub fn new(silence: Arc<Prompt>) -> Self {
        Self {
            items: Vec::new(),
            silence,
            item: 0,
            frame: 0,
        }
    }

    /// Appends a prompt.
    pub fn push_prompt(&mut self, prompt: Arc<Prompt>) -> &mut Self {
        self.items.push(Item::Prompt(prompt));
        self
    }

    /// Appends silence, rounded up to whole frames.
    pub fn push_silence(&mut self, length: Duration) -> &mut Self {
        let frames = length.as_micros().div_ceil(FRAME.as_micros());
        let frames = usize::try_from(frames).unwrap_or(usize::MAX);
        if frames > 0 {
            self.items.push(Item::Silence(frames));
        }
        self
    }

    fn item_frames(&self, item: &Item) -> usize {
        match item {
            Item::Prompt(p) => p.frames(),
            Item::Silence(n) => *n,
        }
    }

    /// The next frame, or `None` when the sequence is over.
    pub fn next_frame(&mut self) -> Option<Frame<'_>> {
        loop {
            let item = self.items.get(self.item)?;
            if self.frame < self.item_frames(item) {
                let index = self.frame;
                self.frame += 1;
                let item = self.items.get(self.item)?;
                return Some(match item {
                    Item::Prompt(p) => Frame { prompt: p, index },
                    Item::Silence(_) => Frame {
                        prompt: &self.silence,
                        index: 0,
                    },
                });
            }
            self.item += 1;
            self.frame = 0;
        }
    }

    /// Frames not yet played.
    pub fn remaining_frames(&self) -> usize {
        let current = self
            .items
            .get(self.item)
            .map_or(0, |i| self.item_frames(i).saturating_sub(self.frame));
        current
            + self
                .items
                .iter()
                .skip(self.item + 1)
                .map(|i| self.item_frames(i))
                .sum::<usize>()
    }

    /// Total frames of the whole sequence.
    pub fn total_frames(&self) -> usize {
        self.items.iter().map(|i| self.item_frames(i)).sum()
    }

    /// Whether every frame has been played.
    pub fn is_finished(&self) -> bool {
        self.remaining_frames() == 0
    }

    /// Starts again from the first frame (the caller pressed `*` to repeat).
    pub fn rewind(&mut self) {
        self.item = 0;
        self.frame = 0;
    }
}
