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

/// An axis or bar number a reader takes in at a glance: 16.4k, 2.1M,
/// 0.0012; never an exponent.
pub(crate) fn human(v: f64) -> String {
    let a = v.abs();
    let trim = |s: String| {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    };
    if a >= 1e9 {
        format!("{}G", trim(format!("{:.2}", v / 1e9)))
    } else if a >= 1e6 {
        format!("{}M", trim(format!("{:.2}", v / 1e6)))
    } else if a >= 10_000.0 {
        format!("{}k", trim(format!("{:.1}", v / 1e3)))
    } else if v != 0.0 && a < 0.01 {
        // Two significant digits.
        let decimals = (-a.log10().floor()) as usize + 1;
        trim(format!("{v:.decimals$}"))
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::human;

    #[test]
    fn numbers_print_without_exponents() {
        assert_eq!(human(16384.0), "16.4k");
        assert_eq!(human(20000.0), "20k");
        assert_eq!(human(2_100_000.0), "2.1M");
        assert_eq!(human(0.0012), "0.0012");
        assert_eq!(human(512.0), "512");
        assert_eq!(human(12.34), "12.3");
        assert_eq!(human(0.0), "0");
    }
}
