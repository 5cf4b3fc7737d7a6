//! Chart specifications and their one renderer (plotters), to SVG and PNG.
//!
//! A [`Chart`] is plain data built from records; [`Chart::draw`] is the one
//! match that turns each kind into a picture (drawn in `draw/`, one file
//! per kind), for any plotters backend.

use plotters::coord::Shift;
use plotters::prelude::*;
use serde::Serialize;

use super::draw::{draw_bars, draw_heatmap, draw_lines, draw_scatter, DrawResult};

/// What the drawing library (plotters) said when a chart could not be drawn.
/// Its errors are not `Send`, so only their text is kept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DrawError(pub String);

impl DrawError {
    fn of(e: impl std::fmt::Display) -> DrawError {
        DrawError(e.to_string())
    }
}

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

pub const WIDTH: u32 = 960;
pub const HEIGHT: u32 = 560;

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

    /// Pixel size: bar charts are as wide as their group labels need (about
    /// 8 px a character, and a gap), so neighbouring labels never run together.
    pub fn size(&self) -> (u32, u32) {
        match self {
            Chart::Bars { groups, .. } => {
                let longest = groups.iter().map(|g| g.chars().count()).max().unwrap_or(0) as u32;
                let per_group = (8 * longest + 24).max(if groups.len() > 6 { 200 } else { 0 });
                (WIDTH.max(per_group * groups.len() as u32 + 120), HEIGHT)
            }
            _ => (WIDTH, HEIGHT),
        }
    }

    pub fn to_svg(&self) -> Result<String, DrawError> {
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, self.size()).into_drawing_area();
            self.draw(&root).map_err(DrawError::of)?;
            root.present().map_err(DrawError::of)?;
        }
        Ok(svg)
    }

    pub fn to_png(&self, path: &std::path::Path) -> Result<(), DrawError> {
        let root = BitMapBackend::new(path, self.size()).into_drawing_area();
        self.draw(&root).map_err(DrawError::of)?;
        root.present().map_err(DrawError::of)
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
