//! Expansion: the cartesian product of the resolved axes, one check per
//! combination, and the load groups of the points that can run.

use lmtune_gguf::ModelSummary;

use super::plan::Point;
use super::{LoadGrouping, Scenario, ScenarioError};
use crate::knobs::{ContextParams, FlashAttn, KvType, LoadParams, Test};

impl Scenario {
    /// Every combination of the axes that can run, in run order, and the
    /// reasons for those `skip_invalid` dropped.
    pub(super) fn expand(
        &self,
        axes: &PlanAxes,
        model: &ModelSummary,
    ) -> Result<(Vec<Point>, Vec<String>), ScenarioError> {
        let mut groups = LoadGroups {
            grouping: self.backend.load_grouping(),
            launches: Vec::new(),
        };
        let mut dropped = Vec::new();
        let mut points = Vec::new();
        for c in axes.combinations() {
            match c.check(model) {
                Ok(()) => {}
                // A micro-batch larger than its batch is one problem of the
                // batch shape, reported once, not once per test of it.
                Err(invalid @ Invalid::MicroBatch { .. }) if self.skip_invalid => {
                    if c.first_of_shape {
                        dropped.push(invalid.reason());
                    }
                    continue;
                }
                Err(invalid @ Invalid::ContextTooSmall { .. }) if self.skip_invalid => {
                    dropped.push(invalid.reason());
                    continue;
                }
                Err(invalid) => return Err(self.invalid_error(&invalid, model)),
            }
            points.push(Point {
                index: points.len(),
                load_group: groups.group_of(&c),
                load: c.load,
                ctx: c.ctx,
                test: c.test,
            });
        }
        if self.backend.worker_per_thread_count() {
            // One worker per thread count: run each group's points together.
            points.sort_by_key(|p| p.load_group);
            for (i, p) in points.iter_mut().enumerate() {
                p.index = i;
            }
        }
        if points.is_empty() {
            return Err(self.site().at(
                None,
                "sweep",
                format!(
                    "every combination is invalid ({})",
                    dropped.first().map(String::as_str).unwrap_or("none")
                ),
                "adjust the axes so at least one combination fits",
            ));
        }
        Ok((points, dropped))
    }

    /// The error for a combination that cannot run, naming the axis to change.
    fn invalid_error(&self, invalid: &Invalid, model: &ModelSummary) -> ScenarioError {
        let site = self.site();
        let reason = invalid.reason();
        match *invalid {
            Invalid::MicroBatch { .. } => site.at(
                self.n_ubatch.span.clone().or(self.n_batch.span.clone()),
                "sweep.n_ubatch",
                format!("{reason}; a micro-batch cannot be larger than its batch"),
                "make every n_ubatch <= every n_batch, or set skip_invalid = true in [sweep] to drop such combinations",
            ),
            Invalid::ContextTooSmall { need, .. } => site.at(
                self.n_ctx.as_ref().and_then(|a| a.span.clone()),
                "sweep.n_ctx",
                format!("{reason}: the test does not fit in the context"),
                format!("raise n_ctx to at least {need} or shorten the workload"),
            ),
            Invalid::BeyondTraining { need, test } => site.at(
                self.n_prompt.span.clone().or(self.n_gen.span.clone()),
                "workload",
                format!("test {} needs {need} tokens of context, more than the {} the model was trained on", test.label(), model.n_ctx_train),
                "shorten n_prompt / n_gen / n_depth",
            ),
        }
    }
}

/// The values each axis takes in the plan, outermost (slowest) first.
pub(super) struct PlanAxes {
    /// (n_gpu_layers, tensor placement): one loaded model each.
    pub(super) loads: Vec<LoadParams>,
    /// `None`: as many as each test needs.
    pub(super) n_ctx: Vec<Option<u32>>,
    pub(super) n_batch: Vec<u32>,
    /// `None`: the micro-batch is the batch (candle).
    pub(super) n_ubatch: Vec<Option<u32>>,
    pub(super) type_k: Vec<KvType>,
    pub(super) type_v: Vec<KvType>,
    pub(super) flash_attn: Vec<FlashAttn>,
    pub(super) op_offload: Vec<bool>,
    pub(super) swa_full: Vec<bool>,
    pub(super) threads: Vec<u32>,
    pub(super) concurrency: Vec<u32>,
    pub(super) tests: Vec<Test>,
}

/// How many of the axes (from the outside) make a batch shape:
/// the load, n_ctx, n_batch, n_ubatch.
const SHAPE_AXES: usize = 4;

impl PlanAxes {
    /// The cartesian product, the last axis fastest.
    fn combinations(&self) -> impl Iterator<Item = Combination> + '_ {
        let lens = [
            self.loads.len(),
            self.n_ctx.len(),
            self.n_batch.len(),
            self.n_ubatch.len(),
            self.type_k.len(),
            self.type_v.len(),
            self.flash_attn.len(),
            self.op_offload.len(),
            self.swa_full.len(),
            self.threads.len(),
            self.concurrency.len(),
            self.tests.len(),
        ];
        Cartesian::new(lens).map(move |i| {
            let [load, n_ctx, n_batch, n_ubatch, type_k, type_v, fa, op, swa, threads, conc, test] =
                i;
            let test = Test {
                concurrency: self.concurrency[conc],
                ..self.tests[test]
            };
            let n_batch = self.n_batch[n_batch];
            let n_ctx = self.n_ctx[n_ctx]
                .unwrap_or_else(|| u32::try_from(test.tokens_in_context()).unwrap_or(u32::MAX));
            Combination {
                load_group: load,
                first_of_shape: i[SHAPE_AXES..].iter().all(|&j| j == 0),
                load: self.loads[load].clone(),
                ctx: ContextParams {
                    n_ctx,
                    n_batch,
                    n_ubatch: self.n_ubatch[n_ubatch].unwrap_or(n_batch),
                    threads: self.threads[threads],
                    type_k: self.type_k[type_k],
                    type_v: self.type_v[type_v],
                    flash_attn: self.flash_attn[fa],
                    op_offload: self.op_offload[op],
                    swa_full: self.swa_full[swa],
                },
                test,
            }
        })
    }
}

/// One combination of the axes, before it is checked.
pub(super) struct Combination {
    /// Index of its load: the load group of backends that load once per
    /// (n_gpu_layers, tensor placement).
    load_group: usize,
    /// The first combination of its batch shape (n_gpu_layers, n_ctx,
    /// n_batch, n_ubatch).
    first_of_shape: bool,
    load: LoadParams,
    ctx: ContextParams,
    test: Test,
}

/// Why a combination cannot run.
#[derive(Debug, Clone, Copy)]
pub(super) enum Invalid {
    /// llama.cpp would clamp it; a sweep that asks for it asks for nothing.
    MicroBatch {
        n_ubatch: u32,
        n_batch: u32,
    },
    ContextTooSmall {
        n_ctx: u32,
        need: u64,
        test: Test,
    },
    /// Not dropped by `skip_invalid`: the workload itself is wrong.
    BeyondTraining {
        need: u64,
        test: Test,
    },
}

impl Invalid {
    fn reason(&self) -> String {
        match *self {
            Invalid::MicroBatch { n_ubatch, n_batch } => {
                format!("n_ubatch = {n_ubatch} > n_batch = {n_batch}")
            }
            Invalid::ContextTooSmall { n_ctx, need, test } => format!(
                "n_ctx = {n_ctx} < n_prompt + n_gen + n_depth = {need} for test {}",
                test.label()
            ),
            Invalid::BeyondTraining { need, test } => {
                format!("test {} needs {need} tokens of context", test.label())
            }
        }
    }
}

impl Combination {
    /// The one check of a combination, in the order its problems are reported.
    fn check(&self, model: &ModelSummary) -> Result<(), Invalid> {
        let c = &self.ctx;
        if c.n_ubatch > c.n_batch {
            return Err(Invalid::MicroBatch {
                n_ubatch: c.n_ubatch,
                n_batch: c.n_batch,
            });
        }
        let need = self.test.tokens_in_context();
        if u64::from(c.n_ctx) < need {
            return Err(Invalid::ContextTooSmall {
                n_ctx: c.n_ctx,
                need,
                test: self.test,
            });
        }
        if need > model.n_ctx_train {
            return Err(Invalid::BeyondTraining {
                need,
                test: self.test,
            });
        }
        Ok(())
    }
}

/// Which points share a loaded model. Managed servers are started per (load,
/// context, concurrency): that is their load group. candle's worker runs one
/// thread count, so its groups are per (load, threads). Other backends load
/// once per load (n_gpu_layers and tensor placement).
pub(super) struct LoadGroups {
    grouping: LoadGrouping,
    launches: Vec<(LoadParams, ContextParams, u32)>,
}

impl LoadGroups {
    fn group_of(&mut self, c: &Combination) -> usize {
        let key = match self.grouping {
            LoadGrouping::ByLoad => return c.load_group,
            LoadGrouping::ByLoadAndThreads => {
                // Only the thread count matters (type_k/v and flash_attn are fixed).
                let threads_only = ContextParams {
                    n_ctx: 0,
                    n_batch: 0,
                    n_ubatch: 0,
                    ..c.ctx.clone()
                };
                (c.load.clone(), threads_only, 1)
            }
            LoadGrouping::ByServerLaunch => (c.load.clone(), c.ctx.clone(), c.test.concurrency),
        };
        match self.launches.iter().position(|k| *k == key) {
            Some(i) => i,
            None => {
                self.launches.push(key);
                self.launches.len() - 1
            }
        }
    }
}

/// Every index tuple of `N` axes with these lengths, in order, the last axis
/// fastest (an odometer); nothing when an axis is empty.
pub(super) struct Cartesian<const N: usize> {
    lens: [usize; N],
    next: Option<[usize; N]>,
}

impl<const N: usize> Cartesian<N> {
    fn new(lens: [usize; N]) -> Self {
        let next = lens.iter().all(|&n| n > 0).then_some([0; N]);
        Cartesian { lens, next }
    }
}

impl<const N: usize> Iterator for Cartesian<N> {
    type Item = [usize; N];

    fn next(&mut self) -> Option<[usize; N]> {
        let current = self.next?;
        let mut next = current;
        self.next = None;
        for axis in (0..N).rev() {
            next[axis] += 1;
            if next[axis] < self.lens[axis] {
                self.next = Some(next);
                break;
            }
            next[axis] = 0;
        }
        Some(current)
    }
}

#[cfg(test)]
mod tests {
    use super::Cartesian;

    #[test]
    fn cartesian_runs_the_last_axis_fastest() {
        let all: Vec<_> = Cartesian::new([2, 1, 3]).collect();
        assert_eq!(
            all,
            [
                [0, 0, 0],
                [0, 0, 1],
                [0, 0, 2],
                [1, 0, 0],
                [1, 0, 1],
                [1, 0, 2]
            ]
        );
        assert_eq!(Cartesian::new([2, 0, 3]).count(), 0);
    }
}
