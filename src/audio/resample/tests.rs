use super::*;
use std::f32::consts::TAU;

const RATES: [u32; 5] = [16_000, 22_050, 24_000, 44_100, 48_000];

fn tone(freq: f32, rate: u32, len: usize, amp: f32) -> Vec<f32> {
    (0..len)
        .map(|n| amp * (TAU * freq * n as f32 / rate as f32).sin())
        .collect()
}

fn rms(x: &[f32]) -> f32 {
    (x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32).sqrt()
}

fn chunked(input: &[f32], from: u32, to: u32, chunk: usize) -> Vec<f32> {
    let mut r = StreamResampler::new(from, to).unwrap();
    let mut out = Vec::new();
    for c in input.chunks(chunk) {
        r.process(c, &mut out).unwrap();
    }
    r.flush(&mut out).unwrap();
    out
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn chunking_does_not_change_output() {
    for (from, to) in [(8_000, 16_000), (24_000, 8_000), (8_000, 22_050)] {
        for freq in [440.0, 1000.0] {
            let input = tone(freq, from, from as usize / 2, 0.8);
            let whole = resample_all(&input, from, to).unwrap();
            for chunk in [from as usize / 50, 37, 1] {
                let diff = max_abs_diff(&chunked(&input, from, to, chunk), &whole);
                assert!(diff < 1e-4, "{from}->{to} {freq} Hz chunk {chunk}: {diff}");
            }
        }
    }
}

#[test]
fn tone_keeps_frequency_amplitude_and_timing() {
    let pairs = RATES.iter().flat_map(|&r| [(8_000, r), (r, 8_000)]);
    // 1 kHz is blind to a 10 ms misalignment (a whole number of periods); 730 Hz is not.
    for ((from, to), freq) in pairs.flat_map(|p| [(p, 1000.0), (p, 730.0)]) {
        let amp = 0.5;
        let len = from as usize * 3 / 10;
        let out = resample_all(&tone(freq, from, len, amp), from, to).unwrap();
        let expected_len = (len * to as usize).div_ceil(from as usize);
        assert_eq!(out.len(), expected_len, "{from}->{to} length");

        // Skip the onset/offset transients (30 ms each side), compare with the ideal tone.
        let edge = to as usize * 3 / 100;
        let body = &out[edge..out.len() - edge];
        let ideal = &tone(freq, to, out.len(), amp)[edge..out.len() - edge];
        let gain_db = 20.0 * (rms(body) / rms(ideal)).log10();
        assert!(
            gain_db.abs() < 0.5,
            "{from}->{to} {freq} Hz gain {gain_db} dB"
        );
        let err = max_abs_diff(body, ideal);
        assert!(
            err < 2e-3,
            "{from}->{to} {freq} Hz max error vs ideal {err}"
        );
    }
}

#[test]
fn impulse_lands_at_the_same_time() {
    for (from, to, at_in, at_out) in [(8_000, 16_000, 400, 800), (24_000, 8_000, 1_200, 400)] {
        let mut input = vec![0.0; from as usize / 4];
        input[at_in] = 1.0;
        let out = resample_all(&input, from, to).unwrap();
        let peak = (0..out.len())
            .max_by(|&a, &b| out[a].abs().total_cmp(&out[b].abs()))
            .unwrap();
        assert_eq!(peak, at_out, "{from}->{to}");
    }
}

#[test]
fn downsampling_rejects_aliases() {
    for from in [48_000, 24_000] {
        let input = tone(6000.0, from, from as usize / 5, 0.8);
        let out = resample_all(&input, from, 8_000).unwrap();
        let body = &out[240..out.len() - 240];
        let rejection_db = 20.0 * (rms(&input) / rms(body)).log10();
        assert!(rejection_db > 40.0, "{from}->8000: only {rejection_db} dB");
    }
}

#[test]
fn identity_passes_through() {
    let input = tone(440.0, 16_000, 1000, 0.3);
    let mut r = StreamResampler::new(16_000, 16_000).unwrap();
    let mut out = vec![9.0];
    r.process(&input[..10], &mut out).unwrap();
    r.process(&input[10..], &mut out).unwrap();
    r.flush(&mut out).unwrap();
    assert_eq!(out[0], 9.0);
    assert_eq!(&out[1..], &input[..]);
    assert_eq!((r.from_hz(), r.to_hz()), (16_000, 16_000));
}

#[test]
fn output_is_delay_compensated_and_streams_per_frame() {
    let mut r = StreamResampler::new(8_000, 16_000).unwrap();
    let frame = tone(1000.0, 8_000, 160, 0.5);
    let mut out = Vec::new();
    r.process(&[], &mut out).unwrap();
    assert!(out.is_empty());
    r.process(&frame, &mut out).unwrap();
    // One 20 ms frame in gives one frame out, minus the dropped filter delay.
    assert_eq!(out.len(), 320 - 160);
    r.process(&frame, &mut out).unwrap();
    assert_eq!(out.len(), 640 - 160);
    r.flush(&mut out).unwrap();
    assert_eq!(out.len(), 640);
}

#[test]
fn flush_resets_for_a_new_stream() {
    let input = tone(440.0, 24_000, 2_000, 0.5);
    let first = resample_all(&input, 24_000, 8_000).unwrap();
    let mut r = StreamResampler::new(24_000, 8_000).unwrap();
    let mut out = Vec::new();
    r.process(&tone(1000.0, 24_000, 777, 0.9), &mut out)
        .unwrap();
    r.flush(&mut out).unwrap();
    assert_eq!(out.len(), 259);
    out.clear();
    r.process(&input, &mut out).unwrap();
    r.flush(&mut out).unwrap();
    assert!(out == first, "second stream differs from a fresh resampler");
    out.clear();
    r.flush(&mut out).unwrap();
    assert!(out.is_empty());
}

#[test]
fn resampler_can_move_between_threads() {
    fn is_send<T: Send>() {}
    is_send::<StreamResampler>();
}

#[test]
fn rejects_unsupported_rates() {
    for (from, to) in [(0, 8_000), (8_000, 0), (44_100, 44_101), (8_000, 1_000_000)] {
        let err = StreamResampler::new(from, to).unwrap_err();
        assert!(
            matches!(err, AudioError::UnsupportedRate { .. }),
            "{from}->{to}"
        );
    }
    assert!(StreamResampler::new(11_025, 8_000).is_ok());
}

#[test]
fn block_sizes_are_even_and_about_20_ms() {
    assert_eq!(block_sizes(8_000, 16_000), Some((160, 320)));
    assert_eq!(block_sizes(24_000, 8_000), Some((480, 160)));
    assert_eq!(block_sizes(8_000, 44_100), Some((160, 882)));
    assert_eq!(block_sizes(8_000, 22_050), Some((320, 882)));
    assert_eq!(block_sizes(48_000, 8_000), Some((960, 160)));
}

#[test]
fn sample_format_helpers_round_and_saturate() {
    let mut f = vec![0.25];
    i16_to_f32(&[i16::MIN, 0, 16_384, i16::MAX], &mut f);
    assert_eq!(f, [0.25, -1.0, 0.0, 0.5, 32767.0 / 32768.0]);
    let mut i = vec![7];
    f32_to_i16(
        &[
            1.0,
            -1.0,
            2.0,
            -2.0,
            f32::NAN,
            0.5,
            1.4 / 32768.0,
            1.6 / 32768.0,
        ],
        &mut i,
    );
    assert_eq!(i, [7, 32767, -32768, 32767, -32768, 0, 16_384, 1, 2]);
}
