//! The ITU-T G.107 E-model, simplified for G.711 media streams: R-factor and estimated MOS
//! from packet loss and one-way delay (formulas and worked values in
//! shared/reference/call-quality.md).
//!
//! `R = Ro − Idd − Ie_eff` with `Ro = 93.2`, the simultaneous (`Is`) and advantage (`A`) terms
//! taken as 0. Pure arithmetic: no state, no clocks.

/// Basic signal-to-noise ratio term for default G.107 parameters.
pub const R0: f64 = 93.2;
/// Equipment impairment of G.711.
pub const IE_G711: f64 = 0.0;
/// Packet-loss robustness of G.711 without / with packet loss concealment (G.113 App. I).
pub const BPL_NO_PLC: f64 = 4.3;
pub const BPL_PLC: f64 = 25.1;

/// Delay impairment `Idd` for a one-way mouth-to-ear delay `ta_ms`.
pub fn delay_impairment(ta_ms: f64) -> f64 {
    if ta_ms <= 100.0 {
        return 0.0;
    }
    let x = (ta_ms / 100.0).log2();
    let sixth = |v: f64| v.powf(1.0 / 6.0);
    25.0 * (sixth(1.0 + x.powi(6)) - 3.0 * sixth(1.0 + (x / 3.0).powi(6)) + 2.0)
}

/// Effective equipment impairment `Ie_eff` for `ppl_pct` percent random loss (`BurstR = 1`).
pub fn loss_impairment(ppl_pct: f64, plc: bool) -> f64 {
    let bpl = if plc { BPL_PLC } else { BPL_NO_PLC };
    let ppl = ppl_pct.clamp(0.0, 100.0);
    let burst_r = 1.0;
    IE_G711 + (95.0 - IE_G711) * ppl / (ppl / burst_r + bpl)
}

/// The transmission rating factor R.
pub fn r_factor(ppl_pct: f64, ta_ms: f64, plc: bool) -> f64 {
    R0 - delay_impairment(ta_ms) - loss_impairment(ppl_pct, plc)
}

/// Estimated MOS (1 – 4.5) from R.
pub fn mos_from_r(r: f64) -> f64 {
    if r < 0.0 {
        1.0
    } else if r > 100.0 {
        4.5
    } else {
        1.0 + 0.035 * r + r * (r - 60.0) * (100.0 - r) * 7e-6
    }
}

/// Estimated MOS for a G.711 stream.
pub fn mos(ppl_pct: f64, ta_ms: f64, plc: bool) -> f64 {
    mos_from_r(r_factor(ppl_pct, ta_ms, plc))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn delay_impairment_worked_values() {
        assert_eq!(delay_impairment(80.0), 0.0);
        assert_eq!(delay_impairment(100.0), 0.0);
        for (ta, idd) in [(150.0, 0.16), (200.0, 3.0), (300.0, 14.8), (400.0, 24.1)] {
            let got = delay_impairment(ta);
            assert!(
                close(got, idd, 0.06),
                "Ta {ta}: Idd {got:.3}, expected {idd}"
            );
        }
    }

    #[test]
    fn mos_worked_values() {
        assert!(close(r_factor(0.0, 0.0, false), 93.2, 1e-9));
        assert!(close(mos(0.0, 0.0, false), 4.41, 0.005));
        for (loss, no_plc, plc) in [(1.0, 3.83, 4.33), (2.0, 3.26, 4.23), (5.0, 2.17, 3.92)] {
            let (a, b) = (mos(loss, 0.0, false), mos(loss, 0.0, true));
            assert!(close(a, no_plc, 0.006), "{loss}% no PLC: {a:.3}");
            assert!(close(b, plc, 0.006), "{loss}% PLC: {b:.3}");
        }
    }

    #[test]
    fn satisfaction_bands() {
        // G.109 (values as quoted, rounded): R 90 → 4.34, 80 → 4.03, 70 → 3.60, 60 → 3.10, 50 → 2.58.
        for (r, m) in [
            (90.0, 4.34),
            (80.0, 4.03),
            (70.0, 3.60),
            (60.0, 3.10),
            (50.0, 2.58),
        ] {
            assert!(close(mos_from_r(r), m, 0.01), "R {r}: {}", mos_from_r(r));
        }
        assert_eq!(mos_from_r(-5.0), 1.0);
        assert_eq!(mos_from_r(120.0), 4.5);
        assert!(mos(100.0, 1000.0, false) >= 1.0);
    }
}
