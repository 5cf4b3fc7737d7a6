//! Chart specifications and their one renderer (plotters), to SVG and PNG.
//!
//! A [`Chart`] is plain data built from records; [`Chart::draw`] is the one
//! match that turns each kind into a picture, for any plotters backend.

use plotters::coord::Shift;
use plotters::prelude::*;
use serde::Serialize;

/// A point with its 95% confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct XyPoint {
    pub x: f64,
    pub y: f64,
    pub lo: f64,
    pub hi: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Series {
    pub label: String,
    pub points: Vec<XyPoint>,
    /// Drawn dashed, without markers (model predictions).
    pub predicted: bool,
}

/// A point that did not produce a measurement, drawn as a red cross.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailedPoint {
    pub x: f64,
    pub label: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bar {
    pub group: usize,
    pub series: String,
    pub value: f64,
    pub lo: f64,
    pub hi: f64,
}

/// A reference range drawn beside the bars (community-reported figures).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Range {
    pub group: usize,
    pub label: String,
    pub lo: f64,
    pub hi: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Chart {
    /// Values against a knob, with error bars; optional horizontal line (a budget).
    Lines {
        stem: String,
        title: String,
        x_label: String,
        y_label: String,
        log2_x: bool,
        series: Vec<Series>,
        failed: Vec<FailedPoint>,
        hline: Option<(f64, String)>,
    },
    /// A value over two knobs, best cell marked.
    Heatmap {
        stem: String,
        title: String,
        x_label: String,
        y_label: String,
        xs: Vec<String>,
        ys: Vec<String>,
        cells: Vec<(usize, usize, f64)>,
        best: Option<(usize, usize)>,
        unit: String,
    },
    /// Predicted (x) against measured (y), with the y = x line.
    Scatter {
        stem: String,
        title: String,
        x_label: String,
        y_label: String,
        points: Vec<(f64, f64)>,
        note: String,
    },
    /// Grouped bars with error bars, and reference ranges.
    Bars {
        stem: String,
        title: String,
        y_label: String,
        groups: Vec<String>,
        bars: Vec<Bar>,
        ranges: Vec<Range>,
        log_y: bool,
    },
}

const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(23, 190, 207),
];
const FAIL: RGBColor = RGBColor(214, 39, 40);
pub const WIDTH: u32 = 960;
pub const HEIGHT: u32 = 560;

type DrawResult = Result<(), Box<dyn std::error::Error>>;

impl Chart {
    pub fn stem(&self) -> &str {
        match self {
            Chart::Lines { stem, .. }
            | Chart::Heatmap { stem, .. }
            | Chart::Scatter { stem, .. }
            | Chart::Bars { stem, .. } => stem,
        }
    }

    pub fn title(&self) -> &str {
        match self {
            Chart::Lines { title, .. }
            | Chart::Heatmap { title, .. }
            | Chart::Scatter { title, .. }
            | Chart::Bars { title, .. } => title,
        }
    }

    /// Pixel size: wider for bar charts with many groups, so labels fit.
    pub fn size(&self) -> (u32, u32) {
        match self {
            Chart::Bars { groups, .. } if groups.len() > 6 => {
                (WIDTH.max(200 * groups.len() as u32 + 120), HEIGHT)
            }
            _ => (WIDTH, HEIGHT),
        }
    }

    pub fn to_svg(&self) -> Result<String, String> {
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, self.size()).into_drawing_area();
            self.draw(&root).map_err(|e| e.to_string())?;
            root.present().map_err(|e| e.to_string())?;
        }
        Ok(svg)
    }

    pub fn to_png(&self, path: &std::path::Path) -> Result<(), String> {
        let root = BitMapBackend::new(path, self.size()).into_drawing_area();
        self.draw(&root).map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        root.fill(&WHITE)?;
        match self {
            Chart::Lines {
                title,
                x_label,
                y_label,
                log2_x,
                series,
                failed,
                hline,
                ..
            } => draw_lines(
                root,
                title,
                x_label,
                y_label,
                *log2_x,
                series,
                failed,
                hline.as_ref(),
            ),
            Chart::Heatmap {
                title,
                x_label,
                y_label,
                xs,
                ys,
                cells,
                best,
                unit,
                ..
            } => draw_heatmap(root, title, x_label, y_label, xs, ys, cells, *best, unit),
            Chart::Scatter {
                title,
                x_label,
                y_label,
                points,
                note,
                ..
            } => draw_scatter(root, title, x_label, y_label, points, note),
            Chart::Bars {
                title,
                y_label,
                groups,
                bars,
                ranges,
                log_y,
                ..
            } => draw_bars(root, title, y_label, groups, bars, ranges, *log_y),
        }
    }
}

fn padded(lo: f64, hi: f64, from_zero: bool) -> (f64, f64) {
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
fn significant(v: f64) -> String {
    if v <= 0.0 {
        return "0".into();
    }
    let magnitude = 10f64.powf(v.log10().floor() - 1.0);
    human((v / magnitude).round() * magnitude)
}

fn human(v: f64) -> String {
    if v.abs() >= 10_000.0 || (v != 0.0 && v.abs() < 0.01) {
        format!("{v:.2e}")
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

#[allow(clippy::too_many_arguments)]
fn draw_lines<DB: DrawingBackend>(
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

#[allow(clippy::too_many_arguments)]
fn draw_heatmap<DB: DrawingBackend>(
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

fn draw_scatter<DB: DrawingBackend>(
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

fn draw_bars<DB: DrawingBackend>(
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
    let (y0, y1) = if log_y {
        (ty(bottom) - 0.3, ty(top) + 0.3)
    } else {
        (0.0, top * 1.15 + 1e-9)
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
    let mut names: Vec<String> = Vec::new();
    for b in bars {
        if !names.contains(&b.series) {
            names.push(b.series.clone());
        }
    }
    let mut hardware: Vec<String> = Vec::new();
    for r in ranges {
        if !hardware.contains(&r.label) {
            hardware.push(r.label.clone());
        }
    }
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
