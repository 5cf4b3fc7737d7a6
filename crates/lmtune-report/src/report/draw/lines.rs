//! Values against a knob, with error bars, failed points and a budget line.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{human, padded, DrawResult, FAIL, PALETTE};
use crate::report::chart::{FailedPoint, Series};

#[allow(clippy::too_many_arguments)]
pub(crate) fn draw_lines<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    x_label: &str,
    y_label: &str,
    log2_x: bool,
    series: &[Series],
    failed: &[FailedPoint],
    hline: Option<&(f64, String)>,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let tx = |x: f64| if log2_x { x.max(1e-9).log2() } else { x };
    let xs: Vec<f64> = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| tx(p.x)))
        .chain(failed.iter().map(|f| tx(f.x)))
        .collect();
    let ys: Vec<f64> = series
        .iter()
        .flat_map(|s| s.points.iter().flat_map(|p| [p.hi, p.y]))
        .chain(hline.map(|h| h.0))
        .collect();
    let (x0, x1) = (
        xs.iter().cloned().fold(f64::INFINITY, f64::min),
        xs.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
    );
    let (x0, x1) = if x0 == x1 {
        (x0 - 1.0, x1 + 1.0)
    } else {
        let pad = (x1 - x0) * 0.05;
        (x0 - pad, x1 + pad)
    };
    let (y0, y1) = padded(0.0, ys.iter().cloned().fold(0.0, f64::max), true);
    // Head room for the legend (upper left) so it does not cover the data.
    let legend_rows = series.len() + usize::from(!failed.is_empty()) + usize::from(hline.is_some());
    let y1 = y1 * (1.0 + 0.065 * legend_rows as f64);
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 22))
        .margin(18)
        .x_label_area_size(48)
        .y_label_area_size(78)
        .build_cartesian_2d(x0..x1, y0..y1)?;
    let fmt_x = |v: &f64| {
        if log2_x {
            human(2f64.powf(*v))
        } else {
            human(*v)
        }
    };
    let distinct: Vec<f64> = {
        let mut d: Vec<f64> = xs.clone();
        d.sort_by(f64::total_cmp);
        d.dedup();
        d
    };
    let mut mesh = chart.configure_mesh();
    mesh.x_desc(x_label)
        .y_desc(y_label)
        .x_label_formatter(&fmt_x)
        .y_label_formatter(&|v| human(*v))
        .axis_desc_style(("sans-serif", 16))
        .label_style(("sans-serif", 14))
        .light_line_style(RGBColor(238, 238, 238));
    if log2_x {
        // One tick per power of two across the range (the knob's values are
        // usually powers of two: 64, 512, 4096).
        mesh.x_labels(((x1 - x0).ceil() as usize + 1).max(2));
    } else if distinct.len() <= 12 {
        mesh.x_labels(distinct.len().max(2));
    }
    mesh.draw()?;
    for (i, s) in series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let pts: Vec<(f64, f64)> = s.points.iter().map(|p| (tx(p.x), p.y)).collect();
        if s.predicted {
            chart
                .draw_series(DashedLineSeries::new(
                    pts.clone(),
                    8,
                    5,
                    color.stroke_width(2),
                ))?
                .label(s.label.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
            continue;
        }
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))?
            .label(s.label.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3))
            });
        chart.draw_series(
            pts.iter()
                .map(|&(x, y)| Circle::new((x, y), 4, color.filled())),
        )?;
        chart.draw_series(s.points.iter().filter(|p| p.hi > p.lo).map(|p| {
            ErrorBar::new_vertical(tx(p.x), p.lo, p.y, p.hi, color.stroke_width(2), 10)
        }))?;
    }
    if !failed.is_empty() {
        chart
            .draw_series(
                failed
                    .iter()
                    .map(|f| Cross::new((tx(f.x), y0 + (y1 - y0) * 0.03), 7, FAIL.stroke_width(3))),
            )?
            .label("failed point (status in the summary)")
            .legend(|(x, y)| Cross::new((x + 10, y), 5, FAIL.stroke_width(2)));
        chart.draw_series(failed.iter().map(|f| {
            Text::new(
                f.label.clone(),
                (tx(f.x), y0 + (y1 - y0) * 0.08),
                ("sans-serif", 13).into_font().color(&FAIL),
            )
        }))?;
    }
    if let Some((value, label)) = hline {
        let v = *value;
        chart
            .draw_series(DashedLineSeries::new(
                vec![(x0, v), (x1, v)],
                10,
                6,
                FAIL.stroke_width(2),
            ))?
            .label(label.clone())
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], FAIL.stroke_width(2)));
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
