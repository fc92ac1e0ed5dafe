//! Inline SVG charts for the report: a KPI's trend line against its
//! target line, and a diagnostic metric's small line chart.
//!
//! In: labelled values (None = no value, drawn as a gap). Out: an `<svg>`
//! element as text, sized by its viewBox so CSS scales it. Every text
//! that reaches the SVG goes through [`super::html::esc`].

use std::fmt::Write as _;

use super::MetricPoint;
use super::html::{esc, format_value};
use crate::model::Format;

/// One period of a trend chart.
pub struct TrendPoint<'a> {
    pub label: &'a str,
    pub actual: Option<f64>,
    pub target: Option<f64>,
    /// The projection of an incomplete period (drawn as a dashed segment
    /// from the previous actual).
    pub projected: Option<f64>,
    pub complete: bool,
}

const TREND_W: f64 = 320.0;
const TREND_H: f64 = 110.0;
const METRIC_W: f64 = 240.0;
const METRIC_H: f64 = 70.0;
/// Room for the value labels on the left and the period labels below.
const PAD_L: f64 = 4.0;
const PAD_R: f64 = 4.0;
const PAD_T: f64 = 14.0;
const PAD_B: f64 = 16.0;

/// The y range of the values, padded (not below zero when no value is
/// negative); a flat series gets a band around it.
fn range(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if !lo.is_finite() {
        return None;
    }
    let span = if hi > lo { hi - lo } else { lo.abs().max(1.0) };
    let bottom = lo - span * 0.08;
    let bottom = if lo >= 0.0 { bottom.max(0.0) } else { bottom };
    Some((bottom, hi + span * 0.08))
}

struct Scale {
    n: usize,
    lo: f64,
    hi: f64,
    w: f64,
    h: f64,
}

impl Scale {
    fn x(&self, i: usize) -> f64 {
        let inner = self.w - PAD_L - PAD_R;
        if self.n <= 1 {
            PAD_L + inner / 2.0
        } else {
            PAD_L + inner * i as f64 / (self.n - 1) as f64
        }
    }
    fn y(&self, v: f64) -> f64 {
        let inner = self.h - PAD_T - PAD_B;
        PAD_T + inner * (1.0 - (v - self.lo) / (self.hi - self.lo))
    }
}

/// Polylines through consecutive present values (a missing value breaks
/// the line).
fn polylines(out: &mut String, s: &Scale, values: &[Option<f64>], class: &str) {
    let mut run: Vec<String> = Vec::new();
    let flush = |run: &mut Vec<String>, out: &mut String| {
        match run.len() {
            0 => {}
            1 => {
                // A lone value: a dot, so it is not invisible.
                let (x, y) = run[0].split_once(',').unwrap_or(("0", "0"));
                let _ = write!(
                    out,
                    r#"<circle class="{class} dot" cx="{x}" cy="{y}" r="2"/>"#
                );
            }
            _ => {
                let _ = write!(
                    out,
                    r#"<polyline class="{class}" fill="none" points="{}"/>"#,
                    run.join(" ")
                );
            }
        }
        run.clear();
    };
    for (i, v) in values.iter().enumerate() {
        match v.filter(|v| v.is_finite()) {
            Some(v) => run.push(format!("{:.1},{:.1}", s.x(i), s.y(v))),
            None => flush(&mut run, out),
        }
    }
    flush(&mut run, out);
}

fn empty_chart(class: &str, w: f64, h: f64, what: &str) -> String {
    format!(
        r#"<svg class="{class} empty" viewBox="0 0 {w} {h}" role="img" aria-label="no data"><text x="{}" y="{}" text-anchor="middle" class="axis">no data {}</text></svg>"#,
        w / 2.0,
        h / 2.0,
        esc(what)
    )
}

/// A KPI's actual over the periods (solid), its target (dashed) and the
/// projection of the current period; status colours are set by CSS.
pub fn trend(points: &[TrendPoint], format: Format, title: &str) -> String {
    let values = points
        .iter()
        .flat_map(|p| [p.actual, p.target, p.projected])
        .flatten();
    let Some((lo, hi)) = range(values) else {
        return empty_chart("trend", TREND_W, TREND_H, "yet");
    };
    let s = Scale {
        n: points.len(),
        lo,
        hi,
        w: TREND_W,
        h: TREND_H,
    };
    let mut out = format!(
        r#"<svg class="trend" viewBox="0 0 {TREND_W} {TREND_H}" role="img" aria-label="{}">"#,
        esc(title)
    );
    let _ = write!(out, "<title>{}</title>", esc(title));
    // Guides at the top and bottom of the value range.
    for (v, y) in [(hi, PAD_T), (lo, TREND_H - PAD_B)] {
        let _ = write!(
            out,
            r#"<line class="grid" x1="{PAD_L}" x2="{}" y1="{y}" y2="{y}"/><text class="axis" x="{PAD_L}" y="{}">{}</text>"#,
            TREND_W - PAD_R,
            y - 3.0,
            esc(&format_value(Some(v), format))
        );
    }
    let targets: Vec<Option<f64>> = points.iter().map(|p| p.target).collect();
    polylines(&mut out, &s, &targets, "target-line");
    // The actual line stops at the last complete period; an incomplete
    // period's partial actual would look like a collapse.
    let actuals: Vec<Option<f64>> = points
        .iter()
        .map(|p| p.actual.filter(|_| p.complete))
        .collect();
    polylines(&mut out, &s, &actuals, "actual-line");
    if let Some(last) = points.last().filter(|p| !p.complete) {
        let i = points.len() - 1;
        if let (Some(prev), Some(proj)) = (
            points.len().checked_sub(2).and_then(|j| points[j].actual),
            last.projected,
        ) {
            let _ = write!(
                out,
                r#"<line class="projected-line" x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}"/>"#,
                s.x(i - 1),
                s.y(prev),
                s.x(i),
                s.y(proj)
            );
        }
        if let Some(proj) = last.projected {
            let _ = write!(
                out,
                r#"<circle class="projected-dot" cx="{:.1}" cy="{:.1}" r="3"><title>{}: projected {}</title></circle>"#,
                s.x(i),
                s.y(proj),
                esc(last.label),
                esc(&format_value(Some(proj), format))
            );
        }
    }
    // One dot per complete period, with its numbers as a tooltip.
    for (i, p) in points.iter().enumerate() {
        if let (true, Some(a)) = (p.complete, p.actual) {
            let _ = write!(
                out,
                r#"<circle class="actual-dot" cx="{:.1}" cy="{:.1}" r="2"><title>{}: {} (target {})</title></circle>"#,
                s.x(i),
                s.y(a),
                esc(p.label),
                esc(&format_value(Some(a), format)),
                esc(&format_value(p.target, format))
            );
        }
    }
    if let (Some(first), Some(last)) = (points.first(), points.last()) {
        let _ = write!(
            out,
            r#"<text class="axis" x="{PAD_L}" y="{}">{}</text><text class="axis" x="{}" y="{}" text-anchor="end">{}</text>"#,
            TREND_H - 3.0,
            esc(first.label),
            TREND_W - PAD_R,
            TREND_H - 3.0,
            esc(last.label)
        );
    }
    out.push_str("</svg>");
    out
}

/// A small line chart of one metric's values.
/// The value of an incomplete period (partial) is a hollow dot off the line.
pub fn metric_line(points: &[MetricPoint], format: Format, title: &str) -> String {
    let Some((lo, hi)) = range(points.iter().filter_map(|p| p.value)) else {
        return empty_chart("spark", METRIC_W, METRIC_H, "");
    };
    let s = Scale {
        n: points.len(),
        lo,
        hi,
        w: METRIC_W,
        h: METRIC_H,
    };
    let mut out = format!(
        r#"<svg class="spark" viewBox="0 0 {METRIC_W} {METRIC_H}" role="img" aria-label="{}"><title>{}</title>"#,
        esc(title),
        esc(title)
    );
    let values: Vec<Option<f64>> = points
        .iter()
        .map(|p| p.value.filter(|_| p.complete))
        .collect();
    polylines(&mut out, &s, &values, "metric-line");
    for (i, p) in points.iter().enumerate() {
        if let Some(v) = p.value.filter(|v| v.is_finite()) {
            let (class, r, note) = if p.complete {
                ("metric-dot", 1.5, "")
            } else {
                ("projected-dot", 2.5, " (in progress)")
            };
            let _ = write!(
                out,
                r#"<circle class="{class}" cx="{:.1}" cy="{:.1}" r="{r}"><title>{}: {}{note}</title></circle>"#,
                s.x(i),
                s.y(v),
                esc(&p.label),
                esc(&format_value(Some(v), format))
            );
        }
    }
    if let (Some(first), Some(last)) = (points.first(), points.last()) {
        let _ = write!(
            out,
            r#"<text class="axis" x="{PAD_L}" y="{}">{}</text><text class="axis" x="{}" y="{}" text-anchor="end">{}</text>"#,
            METRIC_H - 3.0,
            esc(&first.label),
            METRIC_W - PAD_R,
            METRIC_H - 3.0,
            esc(&last.label)
        );
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_break_the_line_and_lone_values_are_dots() {
        let s = Scale {
            n: 4,
            lo: 0.0,
            hi: 10.0,
            w: 100.0,
            h: 50.0,
        };
        let mut out = String::new();
        polylines(&mut out, &s, &[Some(1.0), Some(2.0), None, Some(3.0)], "l");
        assert_eq!(out.matches("<polyline").count(), 1);
        assert_eq!(out.matches("<circle").count(), 1);
    }

    #[test]
    fn no_values_give_an_explicit_empty_chart() {
        let point = MetricPoint {
            label: "2024-01".into(),
            value: None,
            complete: true,
        };
        let svg = metric_line(&[point], Format::Number, "m");
        assert!(svg.contains("no data"), "{svg}");
        let svg = trend(&[], Format::Number, "k");
        assert!(svg.contains("no data"), "{svg}");
    }

    #[test]
    fn a_flat_series_has_a_nonempty_range() {
        let (lo, hi) = range([5.0, 5.0].into_iter()).unwrap();
        assert!(lo < 5.0 && hi > 5.0);
        let (lo, hi) = range([-1.0, -1.0].into_iter()).unwrap();
        assert!(lo < -1.0 && hi > -1.0);
        // Non-negative values keep a zero floor.
        let (lo, _) = range([0.0, 10.0].into_iter()).unwrap();
        assert_eq!(lo, 0.0);
    }
}
