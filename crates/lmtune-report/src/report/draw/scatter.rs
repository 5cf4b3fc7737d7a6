//! Predicted against measured, with the y = x line.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{human, DrawResult, PALETTE};

pub(crate) fn draw_scatter<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    x_label: &str,
    y_label: &str,
    points: &[(f64, f64)],
    note: &str,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let max = points.iter().flat_map(|p| [p.0, p.1]).fold(0.0, f64::max) * 1.1;
    let max = if max > 0.0 { max } else { 1.0 };
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 22))
        .margin(18)
        .x_label_area_size(48)
        .y_label_area_size(78)
        .build_cartesian_2d(0.0..max, 0.0..max)?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .x_label_formatter(&|v| human(*v))
        .y_label_formatter(&|v| human(*v))
        .axis_desc_style(("sans-serif", 16))
        .label_style(("sans-serif", 14))
        .light_line_style(RGBColor(238, 238, 238))
        .draw()?;
    let grey = RGBColor(120, 120, 120);
    chart
        .draw_series(DashedLineSeries::new(
            vec![(0.0, 0.0), (max, max)],
            8,
            5,
            grey.stroke_width(1),
        ))?
        .label("prediction = measurement")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], grey));
    chart
        .draw_series(
            points
                .iter()
                .map(|&(x, y)| Circle::new((x, y), 5, PALETTE[0].filled())),
        )?
        .label(note.to_string())
        .legend(|(x, y)| Circle::new((x + 10, y), 4, PALETTE[0].filled()));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .label_font(("sans-serif", 14))
        .draw()?;
    Ok(())
}
