//! 16 kHz → 8 kHz conversion for prompts: a windowed-sinc low-pass FIR, then keep every second
//! sample.
//!
//! Dropping every other sample without filtering would fold everything between 4 and 8 kHz back
//! into the telephone band (a 6 kHz hiss becomes a 2 kHz whistle). The filter is a 127-tap sinc
//! with its cut-off at 3.85 kHz under a Blackman window (side lobes below −74 dB, transition about
//! 5.5 · 16000 / 127 ≈ 700 Hz wide), so the voice band up to 3.4 kHz passes flat and everything
//! that would alias (≥ 4.2 kHz) is attenuated by well over 40 dB. It runs once, when a prompt is
//! loaded, so its cost does not matter.

/// Taps of the anti-aliasing filter (odd: a symmetric filter with an integer delay).
const TAPS: usize = 127;
/// Cut-off as a fraction of the input rate (3850 Hz / 16000 Hz).
const CUTOFF: f64 = 3850.0 / 16000.0;

/// The low-pass filter, normalised to unity gain at DC.
fn lowpass() -> Vec<f64> {
    let m = (TAPS - 1) as f64;
    let mut h: Vec<f64> = (0..TAPS)
        .map(|n| {
            let k = n as f64 - m / 2.0;
            let sinc = if k == 0.0 {
                2.0 * CUTOFF
            } else {
                (2.0 * std::f64::consts::PI * CUTOFF * k).sin() / (std::f64::consts::PI * k)
            };
            let w = 2.0 * std::f64::consts::PI * n as f64 / m;
            let blackman = 0.42 - 0.5 * w.cos() + 0.08 * (2.0 * w).cos();
            sinc * blackman
        })
        .collect();
    let sum: f64 = h.iter().sum();
    for v in &mut h {
        *v /= sum;
    }
    h
}

/// Converts 16 kHz linear PCM to 8 kHz: low-pass, then decimate by 2. The output has
/// `ceil(input.len() / 2)` samples and no delay (the filter's delay is compensated; the signal is
/// taken as silent before its start and after its end).
pub fn downsample_16k_to_8k(input: &[i16]) -> Vec<i16> {
    let h = lowpass();
    let half = (TAPS / 2) as isize;
    let len = input.len() as isize;
    (0..input.len().div_ceil(2))
        .map(|m| {
            let centre = 2 * m as isize;
            let mut acc = 0.0;
            for (k, hk) in h.iter().enumerate() {
                let i = centre + half - k as isize;
                if (0..len).contains(&i) {
                    acc += hk * f64::from(input.get(i as usize).copied().unwrap_or(0));
                }
            }
            acc.round().clamp(f64::from(i16::MIN), f64::from(i16::MAX)) as i16
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(freq: f64, rate: f64, amplitude: f64, samples: usize) -> Vec<i16> {
        (0..samples)
            .map(|n| {
                (amplitude * (2.0 * std::f64::consts::PI * freq * n as f64 / rate).sin()) as i16
            })
            .collect()
    }

    /// RMS of the middle of a signal (away from the edges).
    fn rms(x: &[i16]) -> f64 {
        let mid = &x[x.len() / 4..x.len() * 3 / 4];
        (mid.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / mid.len() as f64).sqrt()
    }

    fn gain_db(freq: f64) -> f64 {
        let input = tone(freq, 16000.0, 20000.0, 16000);
        let out = downsample_16k_to_8k(&input);
        assert_eq!(out.len(), 8000);
        20.0 * (rms(&out) / rms(&input)).log10()
    }

    #[test]
    fn voice_band_passes_flat() {
        for f in [300.0, 1000.0, 2000.0, 3000.0, 3400.0] {
            let g = gain_db(f);
            assert!(g.abs() < 0.5, "{f} Hz: {g:.2} dB");
        }
    }

    #[test]
    fn what_would_alias_is_attenuated_by_more_than_40_db() {
        for f in [4300.0, 5000.0, 6000.0, 7000.0, 7900.0] {
            let g = gain_db(f);
            assert!(g < -40.0, "{f} Hz: {g:.2} dB");
        }
    }

    #[test]
    fn no_delay_and_odd_lengths() {
        // A 1 kHz tone keeps its phase: output sample m equals input sample 2m (within filter
        // ripple and rounding).
        let input = tone(1000.0, 16000.0, 10000.0, 1601);
        let out = downsample_16k_to_8k(&input);
        assert_eq!(out.len(), 801);
        for m in 100..700 {
            let d = (i32::from(out[m]) - i32::from(input[2 * m])).abs();
            assert!(d < 60, "sample {m}: {} vs {}", out[m], input[2 * m]);
        }
        assert!(downsample_16k_to_8k(&[]).is_empty());
        assert_eq!(downsample_16k_to_8k(&[1000]).len(), 1);
    }

    #[test]
    fn full_scale_does_not_wrap() {
        let input = vec![i16::MAX; 400];
        let out = downsample_16k_to_8k(&input);
        assert!(out[50..150].iter().all(|&v| v > 32000));
    }
}
