//! A value over two knobs, the best cell marked.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{DrawResult, FAIL};

#[allow(clippy::too_many_arguments)]
pub(crate) fn draw_heatmap<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    x_label: &str,
    y_label: &str,
    xs: &[String],
    ys: &[String],
    cells: &[(usize, usize, f64)],
    best: Option<(usize, usize)>,
    unit: &str,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let (nx, ny) = (xs.len().max(1) as f64, ys.len().max(1) as f64);
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 22))
        .margin(18)
        .x_label_area_size(48)
        .y_label_area_size(78)
        .build_cartesian_2d(0.0..nx, 0.0..ny)?;
    let lx = |v: &f64| {
        xs.get((*v - 0.5).round() as usize)
            .filter(|_| (v.fract() - 0.5).abs() < 1e-6)
            .cloned()
            .unwrap_or_default()
    };
    let ly = |v: &f64| {
        ys.get((*v - 0.5).round() as usize)
            .filter(|_| (v.fract() - 0.5).abs() < 1e-6)
            .cloned()
            .unwrap_or_default()
    };
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .x_labels(xs.len() * 2 + 1)
        .y_labels(ys.len() * 2 + 1)
        .x_label_formatter(&lx)
        .y_label_formatter(&ly)
        .axis_desc_style(("sans-serif", 16))
        .label_style(("sans-serif", 14))
        .light_line_style(RGBColor(238, 238, 238))
        .draw()?;
    let (vmin, vmax) = cells
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), c| {
            (a.min(c.2), b.max(c.2))
        });
    let shade = |v: f64| {
        let t = if vmax > vmin {
            (v - vmin) / (vmax - vmin)
        } else {
            1.0
        };
        // Light yellow (low) to dark blue (high).
        let lerp = |a: f64, b: f64| (a + (b - a) * t) as u8;
        RGBColor(lerp(255.0, 8.0), lerp(247.0, 64.0), lerp(188.0, 129.0))
    };
    for &(ix, iy, v) in cells {
        let (x, y) = (ix as f64, iy as f64);
        chart.draw_series(std::iter::once(Rectangle::new(
            [(x, y), (x + 1.0, y + 1.0)],
            shade(v).filled(),
        )))?;
        let t = if vmax > vmin {
            (v - vmin) / (vmax - vmin)
        } else {
            1.0
        };
        let text_color = if t > 0.55 { WHITE } else { BLACK };
        chart.draw_series(std::iter::once(Text::new(
            format!("{v:.1}"),
            (x + 0.38, y + 0.45),
            ("sans-serif", 15).into_font().color(&text_color),
        )))?;
    }
    if let Some((bx, by)) = best {
        let (x, y) = (bx as f64, by as f64);
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(x + 0.03, y + 0.03), (x + 0.97, y + 0.97)],
                FAIL.stroke_width(4),
            )))?
            .label(format!("best ({unit})"))
            .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], FAIL.stroke_width(2)));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .label_font(("sans-serif", 13))
            .draw()?;
    }
    Ok(())
}
