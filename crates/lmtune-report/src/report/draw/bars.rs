//! Grouped bars with error bars, and reference ranges beside them.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{human, significant, DrawResult, PALETTE};
use crate::report::chart::{Bar, Range};

pub(crate) fn draw_bars<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    y_label: &str,
    groups: &[String],
    bars: &[Bar],
    ranges: &[Range],
    log_y: bool,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let ty = |v: f64| if log_y { v.max(0.05).log10() } else { v };
    let top = bars
        .iter()
        .map(|b| b.hi.max(b.value))
        .chain(ranges.iter().map(|r| r.hi))
        .fold(0.0, f64::max);
    let bottom = if log_y {
        bars.iter()
            .map(|b| b.value)
            .chain(ranges.iter().map(|r| r.lo))
            .fold(f64::INFINITY, f64::min)
            .max(0.05)
    } else {
        0.0
    };
    // Headroom above the tallest bar for its value label and the legend
    // (upper left, ~20 px a row over a plot ~450 px high), so neither lands
    // on a bar.
    let legend_rows =
        first_appearances(bars.iter().map(|b| &b.series)).len() + usize::from(!ranges.is_empty());
    let free = 1.0 - ((legend_rows as f64 * 20.0 + 40.0) / 450.0).min(0.6);
    let (y0, y1) = if log_y {
        let y0 = ty(bottom) - 0.3;
        (y0, y0 + (ty(top) + 0.15 - y0) / free)
    } else {
        (0.0, top * 1.08 / free + 1e-9)
    };
    let n = groups.len().max(1) as f64;
    // Many groups: the chart is made wider (see Chart::size) and labels smaller.
    let rotate = groups.len() > 6;
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 22))
        .margin(18)
        .x_label_area_size(48)
        .y_label_area_size(78)
        .build_cartesian_2d(0.0..n, y0..y1)?;
    let gl = |v: &f64| {
        groups
            .get((*v - 0.5).round() as usize)
            .filter(|_| (v.fract() - 0.5).abs() < 1e-6)
            .cloned()
            .unwrap_or_default()
    };
    let fy = |v: &f64| {
        if log_y {
            significant(10f64.powf(*v))
        } else {
            human(*v)
        }
    };
    let x_font = ("sans-serif", if rotate { 12 } else { 14 }).into_font();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(groups.len() * 2 + 1)
        .x_label_formatter(&gl)
        .x_label_style(x_font)
        .y_desc(if log_y {
            format!("{y_label} (log scale)")
        } else {
            y_label.to_string()
        })
        .y_label_formatter(&fy)
        .axis_desc_style(("sans-serif", 16))
        .label_style(("sans-serif", 14))
        .light_line_style(RGBColor(238, 238, 238))
        .draw()?;
    // One slot per bar series, then one per reference hardware, in order of appearance.
    let names = first_appearances(bars.iter().map(|b| &b.series));
    let hardware = first_appearances(ranges.iter().map(|r| &r.label));
    let slots = names.len() + hardware.len();
    let width = 0.8 / slots.max(1) as f64;
    for (si, name) in names.iter().enumerate() {
        let color = PALETTE[si % PALETTE.len()];
        let mine: Vec<&Bar> = bars.iter().filter(|b| &b.series == name).collect();
        let x = |b: &Bar| b.group as f64 + 0.1 + width * si as f64;
        chart
            .draw_series(mine.iter().map(|b| {
                Rectangle::new(
                    [
                        (x(b), y0.max(ty(0.0).min(y0))),
                        (x(b) + width * 0.9, ty(b.value)),
                    ],
                    color.filled(),
                )
            }))?
            .label(name.clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], color.filled()));
        chart.draw_series(mine.iter().filter(|b| b.hi > b.lo).map(|b| {
            ErrorBar::new_vertical(
                x(b) + width * 0.45,
                ty(b.lo),
                ty(b.value),
                ty(b.hi),
                BLACK.stroke_width(1),
                8,
            )
        }))?;
        chart.draw_series(mine.iter().map(|b| {
            Text::new(
                human(b.value),
                (x(b), ty(b.hi.max(b.value)) + (y1 - y0) * 0.04),
                ("sans-serif", 12),
            )
        }))?;
    }
    if !ranges.is_empty() {
        let grey = RGBColor(150, 150, 150);
        let x = |r: &Range| {
            let slot = names.len() + hardware.iter().position(|h| *h == r.label).unwrap_or(0);
            r.group as f64 + 0.1 + width * slot as f64
        };
        chart
            .draw_series(ranges.iter().map(|r| {
                Rectangle::new(
                    [(x(r), ty(r.lo)), (x(r) + width * 0.9, ty(r.hi))],
                    grey.mix(0.55).filled(),
                )
            }))?
            .label("community-reported range (not measured by lmtune)")
            .legend(move |(x, y)| {
                Rectangle::new([(x, y - 5), (x + 14, y + 5)], grey.mix(0.55).filled())
            });
        chart.draw_series(ranges.iter().map(|r| {
            Text::new(
                r.label.clone(),
                (x(r), ty(r.hi) + (y1 - y0) * 0.035),
                ("sans-serif", 11),
            )
        }))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .label_font(("sans-serif", 13))
        .draw()?;
    Ok(())
}

fn first_appearances<'a>(labels: impl Iterator<Item = &'a String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for label in labels {
        if !out.contains(label) {
            out.push(label.clone());
        }
    }
    out
}
