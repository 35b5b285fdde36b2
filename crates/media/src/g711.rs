//! G.711 μ-law (PCMU) and A-law (PCMA) as in ITU-T G.711, on 16-bit linear samples.
//!
//! Decoding is a lookup in a 256-entry table; encoding is a branch-light segment computation
//! (`leading_zeros` finds the segment, a shift finds the mantissa), so neither needs a table
//! built at run time. All tables are `const`, computed by the compiler. The transcoding tables
//! (`ULAW_TO_ALAW`, `ALAW_TO_ULAW`) let a bridge between a PCMU leg and a PCMA leg convert a
//! frame byte by byte without going through linear samples.
//!
//! Linear values use the full 16-bit scale: the largest μ-law magnitude is 32124, the largest
//! A-law magnitude 32256, and A-law `0xD5` is +8 (the smallest positive step).

/// Bias added to the μ-law magnitude so that every segment starts at a power of two.
const ULAW_BIAS: i32 = 0x84;
/// Largest magnitude μ-law can encode before the bias would overflow the top segment.
const ULAW_CLIP: i32 = 32635;

/// The two G.711 companding laws, with their static RTP payload types (RFC 3551).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Law {
    /// μ-law, RTP payload type 0 (`PCMU/8000`).
    Ulaw,
    /// A-law, RTP payload type 8 (`PCMA/8000`).
    Alaw,
}

impl Law {
    /// The static RTP payload type of this codec.
    pub fn payload_type(self) -> u8 {
        match self {
            Law::Ulaw => 0,
            Law::Alaw => 8,
        }
    }

    /// The codec that uses static payload type `pt`, if any.
    pub fn from_payload_type(pt: u8) -> Option<Law> {
        match pt {
            0 => Some(Law::Ulaw),
            8 => Some(Law::Alaw),
            _ => None,
        }
    }

    /// The code word for digital silence (linear 0) in this law.
    pub fn silence(self) -> u8 {
        match self {
            Law::Ulaw => 0xFF,
            Law::Alaw => 0xD5,
        }
    }

    /// Decodes one code word.
    #[inline]
    pub fn decode(self, code: u8) -> i16 {
        match self {
            Law::Ulaw => ulaw_decode(code),
            Law::Alaw => alaw_decode(code),
        }
    }

    /// Encodes one linear sample.
    #[inline]
    pub fn encode(self, sample: i16) -> u8 {
        match self {
            Law::Ulaw => ulaw_encode(sample),
            Law::Alaw => alaw_encode(sample),
        }
    }

    /// Decodes a whole payload, appending the samples to `out`.
    pub fn decode_into(self, codes: &[u8], out: &mut Vec<i16>) {
        let table = match self {
            Law::Ulaw => &ULAW_DECODE,
            Law::Alaw => &ALAW_DECODE,
        };
        out.extend(codes.iter().map(|&c| table[usize::from(c)]));
    }

    /// Encodes a block of samples, appending the code words to `out`.
    pub fn encode_into(self, samples: &[i16], out: &mut Vec<u8>) {
        match self {
            Law::Ulaw => out.extend(samples.iter().map(|&s| ulaw_encode(s))),
            Law::Alaw => out.extend(samples.iter().map(|&s| alaw_encode(s))),
        }
    }

    /// Converts a payload of this law to `to` in place, byte by byte (no-op when equal).
    pub fn transcode_in_place(self, to: Law, payload: &mut [u8]) {
        let table = match (self, to) {
            (Law::Ulaw, Law::Alaw) => &ULAW_TO_ALAW,
            (Law::Alaw, Law::Ulaw) => &ALAW_TO_ULAW,
            _ => return,
        };
        for b in payload.iter_mut() {
            *b = table[usize::from(*b)];
        }
    }
}

const fn ulaw_decode_const(code: u8) -> i16 {
    let u = !code;
    let exponent = (u >> 4) & 0x07;
    let mantissa = (u & 0x0F) as i32;
    let magnitude = (((mantissa << 3) + ULAW_BIAS) << exponent) - ULAW_BIAS;
    if u & 0x80 != 0 {
        -magnitude as i16
    } else {
        magnitude as i16
    }
}

const fn alaw_decode_const(code: u8) -> i16 {
    let a = code ^ 0x55;
    let exponent = (a >> 4) & 0x07;
    let mantissa = (a & 0x0F) as i32;
    let magnitude = if exponent == 0 {
        (mantissa << 4) + 8
    } else {
        ((mantissa << 4) + 0x108) << (exponent - 1)
    };
    // In A-law the sign bit set means positive.
    if a & 0x80 != 0 {
        magnitude as i16
    } else {
        -magnitude as i16
    }
}

/// Encodes one sample to μ-law.
#[inline]
pub const fn ulaw_encode(sample: i16) -> u8 {
    let s = sample as i32;
    let sign: u8 = if s < 0 { 0x80 } else { 0 };
    let mut magnitude = if s < 0 { -s } else { s };
    if magnitude > ULAW_CLIP {
        magnitude = ULAW_CLIP;
    }
    magnitude += ULAW_BIAS;
    // magnitude is in 132..=32767, so magnitude >> 7 is in 1..=255 and its top bit is the segment.
    let segment = 7 - ((magnitude >> 7) as u8).leading_zeros() as u8;
    let mantissa = ((magnitude >> (segment + 3)) & 0x0F) as u8;
    !(sign | (segment << 4) | mantissa)
}

/// Encodes one sample to A-law.
#[inline]
pub const fn alaw_encode(sample: i16) -> u8 {
    // A-law works on 13-bit magnitudes; negative values map to one's complement so that
    // -1..-8 share the first step with 0..7 mirrored.
    let mut v = (sample as i32) >> 3;
    let mask: u8 = if v >= 0 { 0xD5 } else { 0x55 };
    if v < 0 {
        v = !v;
    }
    // v in 0..=4095; v >> 5 is in 0..=127, its top bit position + 1 is the segment (0 below 32).
    let segment = 8 - ((v >> 5) as u8).leading_zeros() as u8;
    let shift = if segment == 0 { 1 } else { segment };
    let mantissa = ((v >> shift) & 0x0F) as u8;
    ((segment << 4) | mantissa) ^ mask
}

/// Decodes one μ-law code word.
#[inline]
pub fn ulaw_decode(code: u8) -> i16 {
    ULAW_DECODE[usize::from(code)]
}

/// Decodes one A-law code word.
#[inline]
pub fn alaw_decode(code: u8) -> i16 {
    ALAW_DECODE[usize::from(code)]
}

/// μ-law code word → linear sample.
pub static ULAW_DECODE: [i16; 256] = {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = ulaw_decode_const(i as u8);
        i += 1;
    }
    t
};

/// A-law code word → linear sample.
pub static ALAW_DECODE: [i16; 256] = {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = alaw_decode_const(i as u8);
        i += 1;
    }
    t
};

/// μ-law code word → the A-law code word nearest to the same linear value.
pub static ULAW_TO_ALAW: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = alaw_encode(ulaw_decode_const(i as u8));
        i += 1;
    }
    t
};

/// A-law code word → the μ-law code word nearest to the same linear value.
pub static ALAW_TO_ULAW: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = ulaw_encode(alaw_decode_const(i as u8));
        i += 1;
    }
    t
};

/// Converts a μ-law payload to A-law (for a PCMU leg bridged to a PCMA leg).
pub fn transcode_ulaw_to_alaw(payload: &[u8]) -> Vec<u8> {
    payload
        .iter()
        .map(|&b| ULAW_TO_ALAW[usize::from(b)])
        .collect()
}

/// Converts an A-law payload to μ-law.
pub fn transcode_alaw_to_ulaw(payload: &[u8]) -> Vec<u8> {
    payload
        .iter()
        .map(|&b| ALAW_TO_ULAW[usize::from(b)])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulaw_every_code_round_trips() {
        for code in 0..=255u8 {
            let back = ulaw_encode(ulaw_decode(code));
            if code == 0x7F {
                // "-0" decodes to 0, which encodes as the "+0" code.
                assert_eq!(back, 0xFF);
            } else {
                assert_eq!(back, code, "code {code:#04x}");
            }
        }
    }

    #[test]
    fn alaw_every_code_round_trips() {
        for code in 0..=255u8 {
            assert_eq!(alaw_encode(alaw_decode(code)), code, "code {code:#04x}");
        }
    }

    #[test]
    fn known_values_from_the_standard() {
        assert_eq!(alaw_decode(0xD5), 8);
        assert_eq!(alaw_decode(0x55), -8);
        assert_eq!(alaw_decode(0xAA), 32256);
        assert_eq!(alaw_decode(0x2A), -32256);
        assert_eq!(ulaw_decode(0xFF), 0);
        assert_eq!(ulaw_decode(0x7F), 0);
        assert_eq!(ulaw_decode(0x80), 32124);
        assert_eq!(ulaw_decode(0x00), -32124);
        assert_eq!(ulaw_decode(0xFE), 8);
        assert_eq!(ulaw_encode(0), 0xFF);
        assert_eq!(alaw_encode(0), 0xD5);
        assert_eq!(ulaw_encode(i16::MAX), 0x80);
        assert_eq!(ulaw_encode(i16::MIN), 0x00);
        assert_eq!(alaw_encode(i16::MAX), 0xAA);
        assert_eq!(alaw_encode(i16::MIN), 0x2A);
        assert_eq!(Law::Ulaw.decode(Law::Ulaw.silence()), 0);
        assert_eq!(Law::Alaw.decode(Law::Alaw.silence()), 8);
    }

    /// Encoding is monotonic over the whole 16-bit range and decoding preserves that order, so
    /// the quantiser never inverts two samples.
    #[test]
    fn encode_is_monotonic() {
        for law in [Law::Ulaw, Law::Alaw] {
            let mut prev = law.decode(law.encode(i16::MIN));
            for s in i16::MIN..=i16::MAX {
                let d = law.decode(law.encode(s));
                assert!(d >= prev, "{law:?}: {s} decoded {d} < {prev}");
                prev = d;
            }
        }
    }

    /// Quantisation error stays within half a step of the segment the sample falls in.
    #[test]
    fn quantisation_error_is_bounded() {
        for law in [Law::Ulaw, Law::Alaw] {
            for s in (i16::MIN..=i16::MAX).step_by(7) {
                let d = i32::from(law.decode(law.encode(s)));
                let s = i32::from(s).clamp(-32256, 32256);
                let err = (d - s).abs();
                // Top segment step is 1024 (A-law) / 1024 (μ-law); allow half of it, plus clipping.
                let limit = (s.abs() / 32).max(16) + 8;
                assert!(err <= limit, "{law:?}: {s} -> {d}");
            }
        }
    }

    #[test]
    fn transcoding_tables_preserve_value() {
        for code in 0..=255u8 {
            let a = ULAW_TO_ALAW[usize::from(code)];
            let lin = i32::from(ulaw_decode(code));
            let via = i32::from(alaw_decode(a));
            assert!((lin - via).abs() <= (lin.abs() / 16).max(16), "{code:#04x}");
            // Going back lands on the same or the neighbouring μ-law code.
            let back = ALAW_TO_ULAW[usize::from(a)];
            let diff = (i32::from(ulaw_decode(back)) - lin).abs();
            assert!(
                diff <= (lin.abs() / 16).max(16),
                "{code:#04x} -> {a:#04x} -> {back:#04x}"
            );
        }
        let mut p = vec![0xFF, 0x80, 0x00];
        Law::Ulaw.transcode_in_place(Law::Alaw, &mut p);
        assert_eq!(p, transcode_ulaw_to_alaw(&[0xFF, 0x80, 0x00]));
        assert_eq!(transcode_alaw_to_ulaw(&[0xD5, 0x55]), vec![0xFE, 0x7E]);
    }

    #[test]
    fn block_helpers_match_scalar() {
        let samples: Vec<i16> = (0..160)
            .map(|i| ((i * 397) % 65536 - 32768) as i16)
            .collect();
        for law in [Law::Ulaw, Law::Alaw] {
            let mut enc = Vec::new();
            law.encode_into(&samples, &mut enc);
            assert_eq!(enc.len(), 160);
            let mut dec = Vec::new();
            law.decode_into(&enc, &mut dec);
            for (i, &s) in samples.iter().enumerate() {
                assert_eq!(dec[i], law.decode(law.encode(s)));
            }
            assert_eq!(Law::from_payload_type(law.payload_type()), Some(law));
        }
    }
}
