//! In-band DTMF detection on linear PCM, for trunks that strip RFC 4733 events.
//!
//! The detector looks at overlapping blocks (102 samples at 8 kHz = 12.75 ms, advanced by half a
//! block) and runs the Goertzel algorithm at the eight ITU-T Q.23 frequencies
//! (697/770/852/941 Hz × 1209/1336/1477/1633 Hz). A block is a *hit* for a digit only if all the
//! checks a production detector makes pass:
//!
//! 1. **level** — the strongest row and column tone are each above [`MIN_TONE_DBM0`];
//! 2. **twist** — their powers differ by at most [`MAX_TWIST_DB`] in either direction (we accept
//!    the same twist both ways: Q.24 asks for 4 dB normal / 8 dB reverse at most for some
//!    administrations, we must accept 6 dB both ways, so 8 dB each way is the limit);
//! 3. **relative peak** — every other row (column) bin is at least [`RELATIVE_PEAK_DB`] below the
//!    winning row (column);
//! 4. **tone-to-total energy** — the two tones carry at least [`TONE_TO_TOTAL`] of the block's
//!    energy: speech and music spread theirs over many frequencies;
//! 5. **second harmonic** — the second harmonics of both tones are at least [`HARMONIC_DB`] below
//!    the fundamentals (voiced speech is rich in harmonics, a DTMF generator is not). The harmonic
//!    amplitudes come from a least-squares fit of both fundamentals and both harmonics to the
//!    block, so the leakage of a strong column tone into a nearby row harmonic (1336 Hz is only
//!    58 Hz away from 2 × 697 Hz) does not count as a harmonic.
//!
//! Digit validation: a digit is reported ([`DtmfEvent::Pressed`]) after [`ON_BLOCKS`] consecutive
//! hits of the same digit, and it ends ([`DtmfEvent::Released`]) after [`OFF_BLOCKS`] consecutive
//! blocks that are not hits of it. With a hop of 51 samples a tone of 40 ms (320 samples) always
//! contains at least 4 whole blocks, so it is always detected; a tone of 20 ms would need 4
//! consecutive hits from blocks at most half filled with tone, which the relative-peak and level
//! checks reject. A 40 ms pause contains at least 4 whole silent blocks, so it always separates two
//! presses, and a key held for a long time is still one press.
//!
//! The detector is sans-IO: it is fed samples and counts time in samples.

/// Row (low-group) frequencies, Hz.
pub const ROW_HZ: [f64; 4] = [697.0, 770.0, 852.0, 941.0];
/// Column (high-group) frequencies, Hz.
pub const COL_HZ: [f64; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
/// The keypad: `KEYS[row][col]`.
pub const KEYS: [[char; 4]; 4] = [
    ['1', '2', '3', 'A'],
    ['4', '5', '6', 'B'],
    ['7', '8', '9', 'C'],
    ['*', '0', '#', 'D'],
];

/// Level in dBm0 of a full-scale 16-bit sine: the G.711 digital milliwatt (0 dBm0) is a sine of
/// amplitude 32767 · 10^(−3.17/20) ≈ 22 772 in 16-bit linear terms, i.e. full scale is +3.17 dBm0.
pub const FULL_SCALE_DBM0: f64 = 3.17;
/// Weakest tone (each of the two) that is accepted, dBm0. The issue asks for detection down to
/// −25 dBm0 with 6 dB of twist, i.e. a weaker tone near −32 dBm0 for a −25 dBm0 pair.
pub const MIN_TONE_DBM0: f64 = -36.0;
/// Largest accepted power difference between the row and the column tone, dB, either way.
pub const MAX_TWIST_DB: f64 = 8.0;
/// How far every other bin of a group must stay below that group's winner, dB.
pub const RELATIVE_PEAK_DB: f64 = 6.0;
/// Fraction of the block's power the two tones must carry.
pub const TONE_TO_TOTAL: f64 = 0.6;
/// How far each second harmonic must stay below its fundamental, dB.
pub const HARMONIC_DB: f64 = 15.0;
/// Consecutive hits (half-block hops) before a digit is reported.
pub const ON_BLOCKS: u32 = 4;
/// Consecutive non-hits (half-block hops) before a digit is over.
pub const OFF_BLOCKS: u32 = 4;
/// Block length at 8 kHz; it scales with the sample rate.
const BLOCK_AT_8K: u32 = 102;

/// Amplitude of a 16-bit linear sine whose level is `dbm0`.
pub fn sine_amplitude(dbm0: f64) -> f64 {
    32767.0 * 10f64.powf((dbm0 - FULL_SCALE_DBM0) / 20.0)
}

/// Mean power (amplitude² / 2) of a sine whose level is `dbm0`.
fn sine_power(dbm0: f64) -> f64 {
    let a = sine_amplitude(dbm0);
    a * a / 2.0
}

fn db(ratio_db: f64) -> f64 {
    10f64.powf(ratio_db / 10.0)
}

/// What the detector reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtmfEvent {
    /// A digit has been validated; emitted exactly once per key press, about 32 ms after the
    /// tone starts. `start_sample` counts samples pushed since the detector was made and is the
    /// start of the first block that heard the tone (within half a block of the real onset).
    Pressed {
        /// `0`–`9`, `*`, `#`, `A`–`D`.
        digit: char,
        /// Sample index where the tone began.
        start_sample: u64,
    },
    /// The digit last reported as pressed has stopped.
    Released {
        /// The same digit as the matching `Pressed`.
        digit: char,
        /// The same start as the matching `Pressed`.
        start_sample: u64,
        /// Sample index just past the last block that heard the tone.
        end_sample: u64,
    },
}

impl DtmfEvent {
    /// The digit this event is about.
    pub fn digit(&self) -> char {
        match *self {
            DtmfEvent::Pressed { digit, .. } | DtmfEvent::Released { digit, .. } => digit,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum State {
    Idle,
    Candidate {
        digit: usize,
        hits: u32,
        start: u64,
    },
    Active {
        digit: usize,
        start: u64,
        last_end: u64,
        misses: u32,
        /// Another digit heard while this one fades: its run of hits, kept so that a press that
        /// follows with a short gap is not delayed.
        next: Option<(usize, u32, u64)>,
    },
}

/// Least-squares projection rows giving the cos/sin amplitudes of the two second harmonics of one
/// digit, with both fundamentals fitted at the same time.
#[derive(Debug, Clone)]
struct HarmonicProjector {
    /// Rows: row-harmonic cos, row-harmonic sin, col-harmonic cos, col-harmonic sin.
    rows: [Vec<f64>; 4],
}

impl HarmonicProjector {
    fn new(sample_rate: f64, block: usize, row_hz: f64, col_hz: f64) -> Option<Self> {
        let freqs = [row_hz, col_hz, 2.0 * row_hz, 2.0 * col_hz];
        // Basis: 8 columns (cos, sin per frequency), `block` rows.
        let basis: Vec<[f64; 8]> = (0..block)
            .map(|n| {
                let mut b = [0.0; 8];
                for (k, f) in freqs.iter().enumerate() {
                    let w = 2.0 * std::f64::consts::PI * f / sample_rate * n as f64;
                    b[2 * k] = w.cos();
                    b[2 * k + 1] = w.sin();
                }
                b
            })
            .collect();
        let mut gram = [[0.0f64; 8]; 8];
        for b in &basis {
            for i in 0..8 {
                for j in 0..8 {
                    gram[i][j] += b[i] * b[j];
                }
            }
        }
        let inv = invert8(gram)?;
        let mut rows: [Vec<f64>; 4] = Default::default();
        for (r, row) in rows.iter_mut().enumerate() {
            let coef = inv[4 + r];
            *row = basis
                .iter()
                .map(|b| coef.iter().zip(b.iter()).map(|(c, v)| c * v).sum())
                .collect();
        }
        Some(Self { rows })
    }

    /// Powers (amplitude² / 2) of the row and column second harmonics in `x`.
    fn powers(&self, x: &[f64]) -> (f64, f64) {
        let dot = |r: &[f64]| -> f64 { r.iter().zip(x).map(|(a, b)| a * b).sum() };
        let [rc, rs, cc, cs] = &self.rows;
        let (a, b, c, d) = (dot(rc), dot(rs), dot(cc), dot(cs));
        ((a * a + b * b) / 2.0, (c * c + d * d) / 2.0)
    }
}

/// Gauss–Jordan inverse with partial pivoting; `None` if singular.
fn invert8(mut m: [[f64; 8]; 8]) -> Option<[[f64; 8]; 8]> {
    let mut inv = [[0.0f64; 8]; 8];
    for (i, row) in inv.iter_mut().enumerate() {
        row[i] = 1.0;
    }
    for col in 0..8 {
        let pivot = (col..8).max_by(|&a, &b| m[a][col].abs().total_cmp(&m[b][col].abs()))?;
        if m[pivot][col].abs() < 1e-9 {
            return None;
        }
        m.swap(col, pivot);
        inv.swap(col, pivot);
        let p = m[col][col];
        for j in 0..8 {
            m[col][j] /= p;
            inv[col][j] /= p;
        }
        for r in 0..8 {
            if r != col {
                let f = m[r][col];
                if f != 0.0 {
                    for j in 0..8 {
                        m[r][j] -= f * m[col][j];
                        inv[r][j] -= f * inv[col][j];
                    }
                }
            }
        }
    }
    Some(inv)
}

/// Streaming in-band DTMF detector for one audio direction of one call.
#[derive(Debug, Clone)]
pub struct DtmfDetector {
    block: usize,
    hop: usize,
    /// Goertzel coefficients 2·cos(2πf/fs): rows then columns.
    coeffs: [f64; 8],
    /// Harmonic projectors, index `row * 4 + col`; `None` when the sample rate is too low to
    /// represent the harmonics (the check is then skipped). Shared by clones: a gateway builds
    /// one detector (about 50 kB of tables) and clones it for every call.
    harmonics: std::sync::Arc<[Option<HarmonicProjector>]>,
    /// Samples not yet consumed; `buf[0]` is sample `buf_start`.
    buf: Vec<f64>,
    buf_start: u64,
    state: State,
    min_tone_power: f64,
}

impl DtmfDetector {
    /// A detector for linear PCM at `sample_rate` Hz (8000 for G.711; 16000 works too).
    pub fn new(sample_rate: u32) -> Self {
        let sample_rate = sample_rate.max(4000);
        let block = ((u64::from(BLOCK_AT_8K) * u64::from(sample_rate) + 4000) / 8000) as usize;
        let fs = f64::from(sample_rate);
        let mut coeffs = [0.0; 8];
        for (c, f) in coeffs.iter_mut().zip(ROW_HZ.iter().chain(COL_HZ.iter())) {
            *c = 2.0 * (2.0 * std::f64::consts::PI * f / fs).cos();
        }
        let mut harmonics = Vec::with_capacity(16);
        for r in ROW_HZ {
            for c in COL_HZ {
                harmonics.push(if 2.0 * c < fs / 2.0 {
                    HarmonicProjector::new(fs, block, r, c)
                } else {
                    None
                });
            }
        }
        Self {
            block,
            hop: block / 2,
            coeffs,
            harmonics: harmonics.into(),
            buf: Vec::with_capacity(block * 2),
            buf_start: 0,
            state: State::Idle,
            min_tone_power: sine_power(MIN_TONE_DBM0),
        }
    }

    /// Feeds samples; returns the events they complete, in order.
    pub fn push(&mut self, samples: &[i16]) -> Vec<DtmfEvent> {
        let mut events = Vec::new();
        self.buf.extend(samples.iter().map(|&s| f64::from(s)));
        let mut head = 0;
        while self.buf.len() - head >= self.block {
            let start = self.buf_start + head as u64;
            let hit = self
                .buf
                .get(head..head + self.block)
                .and_then(|w| self.classify(w));
            self.step(hit, start, start + self.block as u64, &mut events);
            head += self.hop;
        }
        self.buf.drain(..head);
        self.buf_start += head as u64;
        events
    }

    /// The digit currently held down (reported as pressed and not yet released).
    pub fn pressed(&self) -> Option<char> {
        match self.state {
            State::Active { digit, .. } => Some(key(digit)),
            _ => None,
        }
    }

    /// Samples pushed so far.
    pub fn samples_seen(&self) -> u64 {
        self.buf_start + self.buf.len() as u64
    }

    fn step(&mut self, hit: Option<usize>, start: u64, end: u64, events: &mut Vec<DtmfEvent>) {
        self.state = match (self.state, hit) {
            (State::Idle, None) => State::Idle,
            (State::Idle, Some(d)) => self.candidate(d, 1, start, end, events),
            (
                State::Candidate {
                    digit,
                    hits,
                    start: s,
                },
                Some(d),
            ) if d == digit => self.candidate(d, hits + 1, s, end, events),
            (State::Candidate { .. }, Some(d)) => self.candidate(d, 1, start, end, events),
            (State::Candidate { .. }, None) => State::Idle,
            (
                State::Active {
                    digit, start: s, ..
                },
                Some(d),
            ) if d == digit => State::Active {
                digit,
                start: s,
                last_end: end,
                misses: 0,
                next: None,
            },
            (
                State::Active {
                    digit,
                    start: s,
                    last_end,
                    misses,
                    next,
                },
                other,
            ) => {
                let next = match (other, next) {
                    (Some(d), Some((n, hits, ns))) if d == n => Some((n, hits + 1, ns)),
                    (Some(d), _) => Some((d, 1, start)),
                    (None, _) => None,
                };
                if misses + 1 >= OFF_BLOCKS {
                    events.push(DtmfEvent::Released {
                        digit: key(digit),
                        start_sample: s,
                        end_sample: last_end,
                    });
                    match next {
                        Some((n, hits, ns)) => self.candidate(n, hits, ns, end, events),
                        None => State::Idle,
                    }
                } else {
                    State::Active {
                        digit,
                        start: s,
                        last_end,
                        misses: misses + 1,
                        next,
                    }
                }
            }
        };
    }

    /// A run of `hits` consecutive hits of `digit` starting at `start`; promotes it to a press
    /// once long enough.
    fn candidate(
        &self,
        digit: usize,
        hits: u32,
        start: u64,
        end: u64,
        events: &mut Vec<DtmfEvent>,
    ) -> State {
        if hits >= ON_BLOCKS {
            events.push(DtmfEvent::Pressed {
                digit: key(digit),
                start_sample: start,
            });
            State::Active {
                digit,
                start,
                last_end: end,
                misses: 0,
                next: None,
            }
        } else {
            State::Candidate { digit, hits, start }
        }
    }

    /// Runs every check on one block; returns the digit index (`row * 4 + col`) on a hit.
    fn classify(&self, x: &[f64]) -> Option<usize> {
        let n = x.len() as f64;
        let total = x.iter().map(|v| v * v).sum::<f64>() / n;
        // Cheap reject of silence and quiet noise before any Goertzel.
        if total < 2.0 * self.min_tone_power {
            return None;
        }
        let mut p = [0.0f64; 8];
        for (pw, &c) in p.iter_mut().zip(self.coeffs.iter()) {
            let (mut s1, mut s2) = (0.0f64, 0.0f64);
            for &v in x {
                let s0 = v + c * s1 - s2;
                s2 = s1;
                s1 = s0;
            }
            // |X|² · 2 / N² is the mean power of a sine at that frequency.
            *pw = (s1 * s1 + s2 * s2 - c * s1 * s2) * 2.0 / (n * n);
        }
        let (rows, cols) = p.split_at(4);
        let row = argmax(rows)?;
        let col = argmax(cols)?;
        let pr = *rows.get(row)?;
        let pc = *cols.get(col)?;
        if pr < self.min_tone_power || pc < self.min_tone_power {
            return None;
        }
        let twist = db(MAX_TWIST_DB);
        if pr > pc * twist || pc > pr * twist {
            return None;
        }
        let rel = db(RELATIVE_PEAK_DB);
        let stands_out = |group: &[f64], best: usize, peak: f64| {
            group
                .iter()
                .enumerate()
                .all(|(i, &v)| i == best || v * rel <= peak)
        };
        if !stands_out(rows, row, pr) || !stands_out(cols, col, pc) {
            return None;
        }
        if pr + pc < TONE_TO_TOTAL * total {
            return None;
        }
        let digit = row * 4 + col;
        if let Some(Some(h)) = self.harmonics.get(digit) {
            let (hr, hc) = h.powers(x);
            let lim = db(HARMONIC_DB);
            if hr * lim > pr || hc * lim > pc {
                return None;
            }
        }
        Some(digit)
    }
}

fn argmax(v: &[f64]) -> Option<usize> {
    v.iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(i, _)| i)
}

fn key(digit: usize) -> char {
    KEYS.get(digit / 4)
        .and_then(|r| r.get(digit % 4))
        .copied()
        .unwrap_or('?')
}

/// Row and column frequency of a key, for generators and tests.
pub fn key_frequencies(digit: char) -> Option<(f64, f64)> {
    KEYS.iter().enumerate().find_map(|(r, row)| {
        row.iter()
            .position(|&k| k == digit.to_ascii_uppercase())
            .and_then(|c| Some((*ROW_HZ.get(r)?, *COL_HZ.get(c)?)))
    })
}
