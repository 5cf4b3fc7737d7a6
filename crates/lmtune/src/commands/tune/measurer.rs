//! The tuner's measurements through the sweep: every search point is
//! recorded like a sweep's (results.jsonl and results.csv), the check's
//! apart (check.jsonl).

use std::path::Path;
use std::sync::atomic::Ordering;

use anyhow::Context;
use lmtune_core::record::Record;
use lmtune_core::scenario::Point;
use lmtune_model::tuner::{Measurer, Purpose, Reading};
use lmtune_report::{JsonlSink, RecordSink};

use crate::interrupt::INTERRUPTED;
use crate::output::Progress;
use crate::sweep::{PointResult, Sweep};

/// What the tuner reads of a record.
pub(super) fn reading(r: &Record) -> Reading {
    Reading {
        status: r.status,
        samples_ts: r.measurement.samples_ts.clone(),
        tokens_per_s: r.tokens_per_s,
        duration_s: r.duration_s,
        vram_used_bytes: r.vram.as_ref().map(|v| v.used_bytes()),
        layers_offloaded: r.measurement.placement.as_ref().map(|p| p.layers_offloaded),
    }
}

pub(super) struct SweepMeasurer<'a> {
    pub sweep: Sweep<'a>,
    points: &'a [Point],
    sinks: Vec<Box<dyn RecordSink>>,
    /// check.jsonl, from the check's start.
    check_sink: Option<JsonlSink>,
    progress: &'a Progress,
    out_dir: &'a Path,
    /// The search's records, in order.
    pub records: Vec<Record>,
}

impl<'a> SweepMeasurer<'a> {
    pub fn new(
        sweep: Sweep<'a>,
        points: &'a [Point],
        sinks: Vec<Box<dyn RecordSink>>,
        progress: &'a Progress,
        out_dir: &'a Path,
    ) -> Self {
        SweepMeasurer {
            sweep,
            points,
            sinks,
            check_sink: None,
            progress,
            out_dir,
            records: Vec::new(),
        }
    }
}

impl Measurer for SweepMeasurer<'_> {
    type Error = anyhow::Error;

    fn stopped(&self) -> bool {
        INTERRUPTED.load(Ordering::SeqCst)
    }

    fn measure(
        &mut self,
        i: usize,
        seed_salt: u64,
        purpose: Purpose<'_>,
    ) -> anyhow::Result<Option<Reading>> {
        let p = &self.points[i];
        self.sweep.seed_salt = seed_salt;
        self.progress.set_message(&match purpose {
            // Every knob, as run's point lines print them (one label function).
            Purpose::Search { why } => format!(
                "{} {} ({why})",
                p.test.label(),
                lmtune_core::knobs::knob_label(&p.load, &p.ctx, true)
            ),
            Purpose::Check { round, rounds } => format!(
                "check {}/{rounds}: {} {}",
                round + 1,
                p.test.label(),
                lmtune_core::knobs::knob_label(&p.load, &p.ctx, true)
            ),
        });
        let record = match self.sweep.measure(p, self.progress)? {
            PointResult::Recorded(r) => *r,
            PointResult::Interrupted => return Ok(None),
        };
        let reading = reading(&record);
        match purpose {
            Purpose::Search { .. } => {
                for sink in &mut self.sinks {
                    sink.append(&record)?;
                }
                self.progress.point_done(&record);
                self.records.push(record);
            }
            Purpose::Check { .. } => {
                if let Some(sink) = &mut self.check_sink {
                    sink.append(&record)?;
                }
            }
        }
        Ok(Some(reading))
    }

    fn begin_check(&mut self) -> anyhow::Result<()> {
        let sink = JsonlSink::create(&self.out_dir.join("check.jsonl"))
            .with_context(|| format!("cannot write into {}", self.out_dir.display()))?;
        self.check_sink = Some(sink);
        Ok(())
    }
}
