//! Inline SVG line charts of a call's per-second quality timeline (level, jitter, loss) with
//! the seconds that had a live alert shaded. Pure: numbers in, markup out (every value is a
//! number we format, so nothing needs escaping).

use std::fmt::Write as _;

use crate::store::events::TimelinePoint;

const W: f64 = 720.0;
const H: f64 = 120.0;
const PAD: f64 = 28.0;

/// One chart: a title, its axis range, and which figure of a point it plots.
pub struct Chart {
    pub title: &'static str,
    pub unit: &'static str,
    pub svg: String,
}

fn chart(
    points: &[TimelinePoint],
    title: &'static str,
    unit: &'static str,
    value: impl Fn(&TimelinePoint) -> Option<f64>,
    fixed: Option<(f64, f64)>,
) -> Chart {
    let values: Vec<Option<f64>> = points.iter().map(&value).collect();
    let (lo, hi) = fixed.unwrap_or_else(|| {
        let max = values.iter().flatten().copied().fold(0.0_f64, f64::max);
        (0.0, if max > 0.0 { max * 1.1 } else { 1.0 })
    });
    let span_t = points.last().map_or(1.0, |p| f64::from(p.t_s.max(1)));
    let x = |t: u32| PAD + (f64::from(t) / span_t) * (W - PAD - 4.0);
    let y = |v: f64| {
        let v = v.clamp(lo, hi);
        H - 16.0 - (v - lo) / (hi - lo).max(1e-9) * (H - 24.0)
    };
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart" viewBox="0 0 {W} {H}" role="img" aria-label="{title} over the call, {lo:.0} to {hi:.0} {unit}">"#
    );
    // Alert seconds, shaded.
    for p in points.iter().filter(|p| !p.alerts.is_empty()) {
        let x0 = x(p.t_s);
        let w = ((W - PAD) / span_t).max(1.0);
        let _ = write!(
            svg,
            r#"<rect class="alert" x="{x0:.1}" y="4" width="{w:.1}" height="{:.1}"><title>alert at {}s</title></rect>"#,
            H - 20.0,
            p.t_s
        );
    }
    let _ = write!(
        svg,
        r#"<line class="axis" x1="{PAD}" y1="{:.1}" x2="{:.1}" y2="{:.1}"/><text x="2" y="12">{hi:.0}</text><text x="2" y="{:.1}">{lo:.0}</text><text x="{:.1}" y="{:.1}">{}s</text>"#,
        H - 16.0,
        W - 4.0,
        H - 16.0,
        H - 16.0,
        W - 40.0,
        H - 2.0,
        points.last().map_or(0, |p| p.t_s)
    );
    let mut path = String::new();
    let mut pen_down = false;
    for (p, v) in points.iter().zip(&values) {
        match v {
            Some(v) => {
                let _ = write!(
                    path,
                    "{}{:.1},{:.1} ",
                    if pen_down { "L" } else { "M" },
                    x(p.t_s),
                    y(*v)
                );
                pen_down = true;
            }
            None => pen_down = false,
        }
    }
    if !path.is_empty() {
        let _ = write!(svg, r#"<path class="line" d="{}"/>"#, path.trim_end());
    }
    svg.push_str("</svg>");
    Chart { title, unit, svg }
}

/// The call's charts: inbound level, jitter, loss (alerts shaded on each).
pub fn timeline_charts(points: &[TimelinePoint]) -> Vec<Chart> {
    vec![
        chart(
            points,
            "Inbound level",
            "dBFS",
            |p| p.level_dbfs,
            Some((-60.0, 0.0)),
        ),
        chart(points, "Jitter", "ms", |p| Some(p.jitter_ms), None),
        chart(points, "Packet loss", "%", |p| Some(p.loss_pct), None),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quality::report::Reason;

    #[test]
    fn charts_plot_each_second_and_shade_alerts() {
        let points: Vec<TimelinePoint> = (0..10)
            .map(|t| TimelinePoint {
                t_s: t,
                level_dbfs: (t != 3).then_some(-20.0),
                jitter_ms: f64::from(t),
                loss_pct: 0.0,
                mos: Some(4.3),
                alerts: if t >= 8 {
                    vec![Reason::HighJitter]
                } else {
                    vec![]
                },
            })
            .collect();
        let charts = timeline_charts(&points);
        assert_eq!(charts.len(), 3);
        let level = &charts[0].svg;
        assert_eq!(level.matches("<rect").count(), 2);
        assert_eq!(
            level.matches('M').count(),
            2,
            "a gap where the level is absent"
        );
        assert!(charts[1].svg.contains("<path"));
        assert!(timeline_charts(&[])[0].svg.ends_with("</svg>"));
    }
}
