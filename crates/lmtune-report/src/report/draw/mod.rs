//! Drawing each kind of [`Chart`](super::chart::Chart) with plotters, one
//! file per kind, and what they share: palette, axis ranges, number labels.

mod bars;
mod heatmap;
mod lines;
mod scatter;

use plotters::prelude::*;

pub(crate) use bars::draw_bars;
pub(crate) use heatmap::draw_heatmap;
pub(crate) use lines::draw_lines;
pub(crate) use scatter::draw_scatter;

pub(crate) type DrawResult = Result<(), Box<dyn std::error::Error>>;

pub(crate) const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(23, 190, 207),
];
pub(crate) const FAIL: RGBColor = RGBColor(214, 39, 40);

pub(crate) fn padded(lo: f64, hi: f64, from_zero: bool) -> (f64, f64) {
    let (lo, hi) = if from_zero {
        (0.0f64.min(lo), hi)
    } else {
        (lo, hi)
    };
    let span = (hi - lo).abs().max(hi.abs() * 0.1).max(1e-9);
    (
        if from_zero && lo >= 0.0 {
            0.0
        } else {
            lo - span * 0.08
        },
        hi + span * 0.12,
    )
}

/// Two significant digits, for log-scale ticks (158.5 → 160).
pub(crate) fn significant(v: f64) -> String {
    if v <= 0.0 {
        return "0".into();
    }
    let magnitude = 10f64.powf(v.log10().floor() - 1.0);
    human((v / magnitude).round() * magnitude)
}

pub(crate) fn human(v: f64) -> String {
    if v.abs() >= 10_000.0 || (v != 0.0 && v.abs() < 0.01) {
        format!("{v:.2e}")
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}
