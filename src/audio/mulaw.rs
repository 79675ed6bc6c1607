//! G.711 μ-law encoding and decoding, as used by Twilio Media Streams (8 kHz mono).
//!
//! Both directions are single table look-ups; the tables are built at compile time by
//! `const fn`s that implement the G.711 algorithm (bias 0x84, clip 32635), so the values are
//! bit-exact with the ITU G.191 / Sun `g711.c` reference.
//!
//! What this module must not do: allocate, perform I/O, or panic. The slice helpers process
//! `min(src.len(), dst.len())` samples into caller-provided buffers.

/// The μ-law code for digital silence (decodes to 0).
pub const SILENCE: u8 = 0xFF;

/// Largest decoded magnitude: the value of codes 0x80 (positive) and 0x00 (negative).
pub const PEAK: i16 = 32124;

/// Bias added to the magnitude before segment search (G.711).
const BIAS: i32 = 0x84;
/// Magnitudes above this are clipped so that `magnitude + BIAS` fits in 15 bits.
const CLIP: i32 = 32635;

/// Linear value of every μ-law code.
static DECODE_TABLE: [i16; 256] = build_decode_table();
/// Decoded values scaled to [-1, 1) by 1/32768.
static DECODE_F32_TABLE: [f32; 256] = build_decode_f32_table();
/// μ-law code of every 16-bit linear value, indexed by `sample as u16`.
static ENCODE_TABLE: [u8; 65536] = build_encode_table();

/// G.711 expansion of one code (Sun `ulaw2linear` formulation).
const fn decode_code(code: u8) -> i16 {
    let u = !code;
    let t = (((u & 0x0F) as i32) << 3) + BIAS;
    let t = t << ((u & 0x70) >> 4);
    let value = if u & 0x80 != 0 { BIAS - t } else { t - BIAS };
    value as i16
}

/// G.711 compression of one linear sample.
const fn encode_sample(sample: i16) -> u8 {
    let s = sample as i32;
    let sign = if s < 0 { 0x80 } else { 0 };
    let mut magnitude = if s < 0 { -s } else { s };
    if magnitude > CLIP {
        magnitude = CLIP;
    }
    magnitude += BIAS; // 132..=32767: the highest set bit is between bit 7 and bit 14.
    let exponent = 24 - magnitude.leading_zeros() as i32; // (31 - lz) - 7
    let mantissa = (magnitude >> (exponent + 3)) & 0x0F;
    !((sign | (exponent << 4) | mantissa) as u8)
}

const fn build_decode_table() -> [i16; 256] {
    let mut table = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = decode_code(i as u8);
        i += 1;
    }
    table
}

const fn build_decode_f32_table() -> [f32; 256] {
    let mut table = [0f32; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = decode_code(i as u8) as f32 / 32768.0;
        i += 1;
    }
    table
}

const fn build_encode_table() -> [u8; 65536] {
    let mut table = [0u8; 65536];
    let mut i = 0;
    while i < 65536 {
        table[i] = encode_sample(i as u16 as i16);
        i += 1;
    }
    table
}

/// Decodes one μ-law code to a 16-bit linear sample.
#[inline]
pub fn decode(code: u8) -> i16 {
    DECODE_TABLE[code as usize]
}

/// Encodes one 16-bit linear sample to μ-law (values beyond ±32635 clip to the peak code).
#[inline]
pub fn encode(sample: i16) -> u8 {
    ENCODE_TABLE[sample as u16 as usize]
}

/// Decodes one μ-law code to a float in [-1, 1) (linear value / 32768).
#[inline]
pub fn decode_to_f32(code: u8) -> f32 {
    DECODE_F32_TABLE[code as usize]
}

/// Decodes `min(src.len(), dst.len())` codes from `src` into the start of `dst`.
pub fn decode_into(src: &[u8], dst: &mut [i16]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = decode(s);
    }
}

/// Level of μ-law audio in dBFS (full scale 32768, as [`crate::audio::frame_dbfs`] of its
/// decoded samples); silence gives -96.
pub fn level_dbfs(codes: &[u8]) -> f32 {
    if codes.is_empty() {
        return -96.0;
    }
    let energy: i64 = codes
        .iter()
        .map(|&c| {
            let s = i64::from(decode(c));
            s * s
        })
        .sum();
    let mean = energy as f64 / codes.len() as f64;
    if mean < 1.0 {
        return -96.0;
    }
    (10.0 * (mean / (32768.0 * 32768.0)).log10()).max(-96.0) as f32
}

/// Encodes `min(src.len(), dst.len())` samples from `src` into the start of `dst`.
pub fn encode_into(src: &[i16], dst: &mut [u8]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = encode(s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference expansion, ITU-T G.191 `ulaw_expand` formulation.
    fn ulaw2linear(code: u8) -> i32 {
        let sign = if code < 0x80 { -1 } else { 1 };
        let inverted = !code as i32;
        let exponent = (inverted >> 4) & 0x07;
        let mantissa = inverted & 0x0F;
        let step = 4 << (exponent + 1);
        sign * ((0x80 << exponent) + step * mantissa + step / 2 - 4 * 33)
    }

    /// Reference compression, classic bit-manipulation `linear2ulaw` (no zero trap).
    fn linear2ulaw(sample: i32) -> u8 {
        const REF_BIAS: i32 = 0x84;
        const REF_CLIP: i32 = 32635;
        let sign = (sample >> 8) & 0x80;
        let mut s = if sign != 0 { -sample } else { sample };
        if s > REF_CLIP {
            s = REF_CLIP;
        }
        s += REF_BIAS;
        let mut exponent = 7;
        let mut exp_mask = 0x4000;
        while s & exp_mask == 0 && exponent > 0 {
            exponent -= 1;
            exp_mask >>= 1;
        }
        let mantissa = (s >> (exponent + 3)) & 0x0F;
        !((sign | (exponent << 4) | mantissa) as u8)
    }

    #[test]
    fn decode_matches_reference_for_all_codes() {
        for code in 0..=255u8 {
            assert_eq!(decode(code) as i32, ulaw2linear(code), "code {code:#04x}");
        }
    }

    #[test]
    fn encode_matches_reference_for_all_inputs() {
        for sample in i16::MIN..=i16::MAX {
            assert_eq!(
                encode(sample),
                linear2ulaw(sample as i32),
                "sample {sample}"
            );
        }
    }

    #[test]
    fn round_trip_is_stable() {
        for code in 0..=255u8 {
            let linear = decode(code);
            assert_eq!(decode(encode(linear)), linear, "code {code:#04x}");
        }
    }

    #[test]
    fn known_values() {
        assert_eq!(decode(SILENCE), 0);
        assert_eq!(decode(0x7F), 0);
        assert_eq!(encode(0), SILENCE);
        assert_eq!(decode(0x80), PEAK);
        assert_eq!(decode(0x00), -PEAK);
        assert_eq!(encode(i16::MAX), 0x80);
        assert_eq!(encode(i16::MIN), 0x00);
        assert_eq!(decode(0xFE), 8);
        assert_eq!(decode(0x7E), -8);
    }

    #[test]
    fn decode_to_f32_is_scaled_decode() {
        for code in 0..=255u8 {
            assert_eq!(decode_to_f32(code), decode(code) as f32 / 32768.0);
        }
        assert!(decode_to_f32(0x80) < 1.0);
        assert!(decode_to_f32(0x00) >= -1.0);
    }

    #[test]
    fn slice_helpers_process_min_len() {
        let codes = [0x80u8, 0xFF, 0x00, 0x7F];
        let mut linear = [1i16; 3];
        decode_into(&codes, &mut linear);
        assert_eq!(linear, [PEAK, 0, -PEAK]);

        let mut longer = [7i16; 6];
        decode_into(&codes, &mut longer);
        assert_eq!(longer, [PEAK, 0, -PEAK, 0, 7, 7]);

        let mut encoded = [0u8; 5];
        encode_into(&longer[..3], &mut encoded);
        assert_eq!(encoded, [0x80, 0xFF, 0x00, 0, 0]);

        let mut short = [0u8; 2];
        encode_into(&longer, &mut short);
        assert_eq!(short, [0x80, 0xFF]);
        decode_into(&[], &mut longer);
        encode_into(&[], &mut short);
    }
}
