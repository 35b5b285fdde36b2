//! In-band DTMF detector on generated tones, noise, speech and music.
//!
//! Levels: 0 dBm0 is a sine of amplitude 32767 · 10^(−3.17/20) ≈ 22 772 (the G.711 digital
//! milliwatt; a full-scale 16-bit sine is +3.17 dBm0), see `media::goertzel::sine_amplitude`.
//! A "digit at L dBm0" below means the *pair* has a total power of L dBm0, split between the two
//! tones by the twist (equal split: each tone at L − 3 dB), so a 0 dBm0 digit does not clip.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use media::goertzel::{key_frequencies, sine_amplitude, DtmfDetector, DtmfEvent};

const FS: u32 = 8000;
const DIGITS: &str = "0123456789*#ABCD";

/// xorshift64* — deterministic noise and offsets without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn uniform(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn gauss(&mut self) -> f64 {
        let u1 = self.uniform().max(1e-12);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}

fn ms(n: u32) -> usize {
    (n * FS / 1000) as usize
}

/// A signal under construction, in floating point.
struct Signal {
    x: Vec<f64>,
    rng: Rng,
}

impl Signal {
    fn new(seed: u64) -> Self {
        Self {
            x: Vec::new(),
            rng: Rng(seed | 1),
        }
    }
    fn silence(&mut self, samples: usize) -> &mut Self {
        self.x.extend(std::iter::repeat_n(0.0, samples));
        self
    }
    /// A digit whose pair power is `level` dBm0; `twist_db` = column power − row power.
    fn digit(&mut self, d: char, level: f64, twist_db: f64, samples: usize) -> &mut Self {
        let (fr, fc) = key_frequencies(d).unwrap();
        let total = sine_amplitude(level).powi(2);
        let ratio = 10f64.powf(twist_db / 10.0);
        let ar = (total / (1.0 + ratio)).sqrt();
        let ac = (total * ratio / (1.0 + ratio)).sqrt();
        let (pr, pc) = (self.rng.uniform() * 6.3, self.rng.uniform() * 6.3);
        for n in 0..samples {
            let t = n as f64 / f64::from(FS);
            let w = std::f64::consts::TAU * t;
            self.x
                .push(ar * (w * fr + pr).sin() + ac * (w * fc + pc).sin());
        }
        self
    }
    /// White Gaussian noise over the whole signal, `snr_db` below a pair at `level` dBm0.
    fn noise(&mut self, level: f64, snr_db: f64) -> &mut Self {
        let sigma = sine_amplitude(level - snr_db) / 2f64.sqrt();
        for v in self.x.iter_mut() {
            *v += sigma * self.rng.gauss();
        }
        self
    }
    fn pcm(&self) -> Vec<i16> {
        self.x
            .iter()
            .map(|v| v.round().clamp(-32768.0, 32767.0) as i16)
            .collect()
    }
}

/// Runs the detector over `pcm` in 20 ms frames; returns all events.
fn detect(pcm: &[i16]) -> Vec<DtmfEvent> {
    let mut det = DtmfDetector::new(FS);
    let mut ev = Vec::new();
    for frame in pcm.chunks(160) {
        ev.extend(det.push(frame));
    }
    ev
}

fn pressed(ev: &[DtmfEvent]) -> String {
    ev.iter()
        .filter_map(|e| match e {
            DtmfEvent::Pressed { digit, .. } => Some(*digit),
            DtmfEvent::Released { .. } => None,
        })
        .collect()
}

#[test]
fn every_digit_of_40ms_at_0_to_minus_25_dbm0_in_noise() {
    let mut seed = 7;
    for d in DIGITS.chars() {
        for level in [0.0, -5.0, -10.0, -15.0, -20.0, -25.0] {
            seed += 1;
            let mut s = Signal::new(seed);
            let lead = 400 + s.rng.below(102);
            s.silence(lead)
                .digit(d, level, 0.0, ms(40))
                .silence(ms(100))
                .noise(level, 20.0);
            let ev = detect(&s.pcm());
            assert_eq!(pressed(&ev), d.to_string(), "digit {d} at {level} dBm0");
            assert_eq!(
                ev.len(),
                2,
                "{d} at {level}: one press, one release: {ev:?}"
            );
            let DtmfEvent::Pressed { start_sample, .. } = ev[0] else {
                panic!("first event is not a press: {ev:?}")
            };
            let lead = lead as u64;
            assert!(
                start_sample + 102 > lead && start_sample < lead + 102,
                "{d}: start {start_sample} vs real onset {lead}"
            );
        }
    }
}

#[test]
fn tones_of_20ms_are_not_digits() {
    let mut seed = 100;
    for d in DIGITS.chars() {
        for level in [0.0, -10.0, -25.0] {
            for _ in 0..4 {
                seed += 1;
                let mut s = Signal::new(seed);
                let lead = 400 + s.rng.below(102);
                s.silence(lead)
                    .digit(d, level, 0.0, ms(20))
                    .silence(ms(100))
                    .noise(level, 30.0);
                let ev = detect(&s.pcm());
                assert!(ev.is_empty(), "20 ms {d} at {level} dBm0 detected: {ev:?}");
            }
        }
    }
}

#[test]
fn twist_of_6_db_either_way_is_accepted() {
    let mut seed = 300;
    for d in DIGITS.chars() {
        for level in [0.0, -10.0, -20.0, -25.0] {
            for twist in [6.0, -6.0] {
                seed += 1;
                let mut s = Signal::new(seed);
                let lead = 200 + s.rng.below(102);
                s.silence(lead)
                    .digit(d, level, twist, ms(40))
                    .silence(ms(60))
                    .noise(level, 20.0);
                let ev = detect(&s.pcm());
                assert_eq!(
                    pressed(&ev),
                    d.to_string(),
                    "{d} at {level} dBm0, twist {twist}"
                );
            }
        }
    }
}

#[test]
fn twist_of_12_db_is_rejected() {
    for d in "159D".chars() {
        for twist in [12.0, -12.0] {
            let mut s = Signal::new(17);
            s.silence(200)
                .digit(d, -10.0, twist, ms(100))
                .silence(ms(60));
            assert!(detect(&s.pcm()).is_empty(), "{d} with twist {twist}");
        }
    }
}

#[test]
fn below_minus_40_dbm0_nothing_is_heard() {
    let mut s = Signal::new(5);
    s.silence(200)
        .digit('5', -42.0, 0.0, ms(200))
        .silence(ms(60));
    assert!(detect(&s.pcm()).is_empty());
}

#[test]
fn a_sequence_with_40ms_gaps_gives_every_digit_once() {
    for (seed, level, snr) in [
        (1, -10.0, 20.0),
        (2, -25.0, 15.0),
        (3, 0.0, 25.0),
        (4, -18.0, 12.0),
    ] {
        let mut s = Signal::new(seed);
        let lead = 100 + s.rng.below(200);
        s.silence(lead);
        for d in DIGITS.chars() {
            s.digit(d, level, 0.0, ms(40)).silence(ms(40));
        }
        s.silence(ms(60)).noise(level, snr);
        let ev = detect(&s.pcm());
        assert_eq!(pressed(&ev), DIGITS, "level {level}, SNR {snr}");
        // Every press is released before the next one.
        let kinds: Vec<bool> = ev
            .iter()
            .map(|e| matches!(e, DtmfEvent::Pressed { .. }))
            .collect();
        assert!(kinds.chunks(2).all(|c| c == [true, false]), "{ev:?}");
    }
}

#[test]
fn repeated_digit_with_gaps_is_counted_each_time() {
    let mut s = Signal::new(9);
    s.silence(300);
    for _ in 0..5 {
        s.digit('7', -12.0, 0.0, ms(45)).silence(ms(40));
    }
    s.noise(-12.0, 20.0);
    assert_eq!(pressed(&detect(&s.pcm())), "77777");
}

#[test]
fn a_long_press_is_one_digit() {
    let mut s = Signal::new(11);
    s.silence(100)
        .digit('#', -8.0, 2.0, ms(2000))
        .silence(ms(100))
        .noise(-8.0, 15.0);
    let ev = detect(&s.pcm());
    assert_eq!(pressed(&ev), "#");
    let Some(DtmfEvent::Released {
        start_sample,
        end_sample,
        ..
    }) = ev.last().copied()
    else {
        panic!("no release: {ev:?}")
    };
    let held = end_sample - start_sample;
    assert!((15_900..16_300).contains(&held), "held {held} samples");
}

#[test]
fn a_10ms_dropout_does_not_double_a_digit() {
    let mut s = Signal::new(12);
    s.silence(150)
        .digit('3', -10.0, 0.0, ms(60))
        .silence(ms(10))
        .digit('3', -10.0, 0.0, ms(60))
        .silence(ms(60));
    assert_eq!(pressed(&detect(&s.pcm())), "3");
}

#[test]
fn detection_does_not_depend_on_frame_size() {
    let mut s = Signal::new(13);
    s.silence(77);
    for d in "2580".chars() {
        s.digit(d, -15.0, 0.0, ms(50)).silence(ms(50));
    }
    s.noise(-15.0, 20.0);
    let pcm = s.pcm();
    for frame in [1, 7, 80, 160, 1000, pcm.len()] {
        let mut det = DtmfDetector::new(FS);
        let ev: Vec<DtmfEvent> = pcm.chunks(frame).flat_map(|f| det.push(f)).collect();
        assert_eq!(ev, detect(&pcm), "frame size {frame}");
        assert_eq!(pressed(&ev), "2580");
        assert_eq!(det.samples_seen(), pcm.len() as u64);
    }
}

#[test]
fn works_at_16_khz() {
    // Same generator at 16 kHz: resample by repeating the construction with t over 16 kHz.
    let fs = 16_000.0;
    let mut pcm = vec![0i16; 500];
    for d in "19#".chars() {
        let (fr, fc) = key_frequencies(d).unwrap();
        let a = sine_amplitude(-13.0);
        for n in 0..640 {
            let t = n as f64 / fs;
            let v = a
                * ((std::f64::consts::TAU * fr * t).sin() + (std::f64::consts::TAU * fc * t).sin());
            pcm.push(v as i16);
        }
        pcm.extend(std::iter::repeat_n(0, 640));
    }
    let mut det = DtmfDetector::new(16_000);
    let ev = det.push(&pcm);
    assert_eq!(pressed(&ev), "19#");
}

fn read_fixture(name: &str) -> Vec<i16> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    let mut r = hound::WavReader::open(&path).unwrap();
    assert_eq!(r.spec().sample_rate, FS);
    r.samples::<i16>().map(Result::unwrap).collect()
}

#[test]
fn no_digit_in_a_minute_of_russian_and_english_speech() {
    let speech = read_fixture("speech-ru-en-8k.wav");
    assert!(speech.len() > 60 * 8000, "fixture shorter than a minute");
    for gain in [1.0, 0.5, 0.1, 0.03] {
        let pcm: Vec<i16> = speech
            .iter()
            .map(|&v| (f64::from(v) * gain) as i16)
            .collect();
        let ev = detect(&pcm);
        assert!(ev.is_empty(), "gain {gain}: false digits {ev:?}");
    }
}

#[test]
fn digits_are_still_found_over_speech_pauses() {
    // Speech, then a digit, then speech: the detector recovers after speech.
    let speech = read_fixture("speech-ru-en-8k.wav");
    let mut s = Signal::new(21);
    s.x.extend(speech[..40_000].iter().map(|&v| f64::from(v)));
    s.silence(ms(50))
        .digit('8', -10.0, 0.0, ms(60))
        .silence(ms(50));
    s.x.extend(speech[40_000..80_000].iter().map(|&v| f64::from(v)));
    assert_eq!(pressed(&detect(&s.pcm())), "8");
}

#[test]
fn no_digit_in_music_like_chords() {
    // Notes (equal temperament, A4 = 440 Hz) with a few harmonics, as chords and intervals.
    let note = |semitones_from_a4: i32| 440.0 * 2f64.powf(f64::from(semitones_from_a4) / 12.0);
    let chords: Vec<Vec<f64>> = vec![
        vec![note(-9), note(-5), note(-2)], // C major (C4 E4 G4)
        vec![note(0), note(3), note(7)],    // A minor (A4 C5 E5)
        vec![note(3), note(7), note(10)],   // C major higher (C5 E5 G5)
        vec![note(-2), note(2), note(5)],   // G major (G4 B4 D5)
        vec![note(5), note(12)],            // D5 + A5 (fifth)
        vec![note(8), note(15), note(20)],  // F5 C6 F6
        vec![note(-12), note(7), note(14)], // A3 E5 B5
    ];
    let mut s = Signal::new(31);
    let mut rng = Rng(99);
    for (i, chord) in chords.iter().enumerate() {
        for level in [-5.0, -15.0, -25.0] {
            let a = sine_amplitude(level) / chord.len() as f64;
            let harmonics = if i % 2 == 0 { 1 } else { 3 };
            let phases: Vec<f64> = (0..chord.len() * 3).map(|_| rng.uniform() * 6.3).collect();
            for n in 0..ms(400) {
                let t = n as f64 / f64::from(FS);
                let mut v = 0.0;
                for (k, f) in chord.iter().enumerate() {
                    for h in 1..=harmonics {
                        v += a / f64::from(h * h)
                            * (std::f64::consts::TAU * f * f64::from(h) * t
                                + phases[k * 3 + h as usize - 1])
                                .sin();
                    }
                }
                s.x.push(v);
            }
            s.silence(ms(30));
        }
    }
    s.noise(-25.0, 30.0);
    let ev = detect(&s.pcm());
    assert!(ev.is_empty(), "false digits on music: {ev:?}");
}

#[test]
fn single_tones_and_dial_tone_are_not_digits() {
    let mut s = Signal::new(41);
    for f in [697.0, 941.0, 1209.0, 1633.0, 425.0, 1000.0] {
        let a = sine_amplitude(-10.0);
        for n in 0..ms(300) {
            s.x.push(a * (std::f64::consts::TAU * f * n as f64 / f64::from(FS)).sin());
        }
        s.silence(ms(50));
    }
    // North American dial tone 350 + 440 Hz: a clean pair, but not on DTMF frequencies.
    for n in 0..ms(500) {
        let t = std::f64::consts::TAU * n as f64 / f64::from(FS);
        s.x.push(sine_amplitude(-13.0) * ((350.0 * t).sin() + (440.0 * t).sin()));
    }
    assert!(detect(&s.pcm()).is_empty());
}

#[test]
fn strong_second_harmonics_are_rejected_as_speech_like() {
    // A clean pair plus the row tone's 2nd harmonic 5 dB down: still 75 % of the energy is in
    // the pair, so only the harmonic check rejects it.
    let (fr, fc) = key_frequencies('1').unwrap();
    let a = sine_amplitude(-12.0);
    let h = a * 10f64.powf(-5.0 / 20.0);
    let mut s = Signal::new(51);
    s.silence(100);
    for n in 0..ms(200) {
        let w = std::f64::consts::TAU * n as f64 / f64::from(FS);
        s.x.push(a * ((fr * w).sin() + (fc * w).sin()) + h * (2.0 * fr * w + 0.3).sin());
    }
    s.silence(ms(50));
    assert!(detect(&s.pcm()).is_empty());
    // The same pair without the harmonic is a digit (the check is what rejected it).
    let mut clean = Signal::new(51);
    clean
        .silence(100)
        .digit('1', -9.0, 0.0, ms(200))
        .silence(ms(50));
    assert_eq!(pressed(&detect(&clean.pcm())), "1");
}

#[test]
fn frequencies_off_by_1_5_percent_are_accepted() {
    for d in "159#".chars() {
        for dev in [-0.015, 0.015] {
            let (fr, fc) = key_frequencies(d).unwrap();
            let a = sine_amplitude(-13.0);
            let mut s = Signal::new(61);
            s.silence(130);
            for n in 0..ms(45) {
                let w = std::f64::consts::TAU * n as f64 / f64::from(FS) * (1.0 + dev);
                s.x.push(a * ((fr * w).sin() + (fc * w + 1.0).sin()));
            }
            s.silence(ms(50)).noise(-10.0, 20.0);
            assert_eq!(
                pressed(&detect(&s.pcm())),
                d.to_string(),
                "{d} off by {dev}"
            );
        }
    }
}

#[test]
#[ignore = "timing, run with --release --ignored --nocapture"]
fn cost_per_second_of_audio() {
    let speech = read_fixture("speech-ru-en-8k.wav");
    let t = std::time::Instant::now();
    let ev = detect(&speech);
    let secs = speech.len() as f64 / 8000.0;
    eprintln!(
        "{:.1} µs per second of speech",
        t.elapsed().as_secs_f64() * 1e6 / secs
    );
    let mut s = Signal::new(1);
    s.digit('5', -10.0, 0.0, 8000 * 60);
    let pcm = s.pcm();
    let t = std::time::Instant::now();
    let ev2 = detect(&pcm);
    eprintln!(
        "{:.1} µs per second of tone",
        t.elapsed().as_secs_f64() * 1e6 / 60.0
    );
    assert!(ev.is_empty() && pressed(&ev2) == "5");
}
