//! Validation against the model and the machine, and expansion into points.

use std::path::PathBuf;

use lmtune_gguf::{GgufFile, ModelSummary};
use serde::{Deserialize, Serialize};

use super::{BackendKind, MeasureSpec, Scenario, ScenarioError};
use crate::knobs::{ContextParams, FlashAttn, KvType, LoadParams, Test};

/// Facts about the machine that resolve keywords like `threads = "physical"`.
#[derive(Debug, Clone, Copy)]
pub struct MachineFacts {
    pub physical_cores: u32,
    pub logical_cores: u32,
}

/// One measured setting: load parameters, context parameters and a test.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Point {
    /// Position in the run order (0-based).
    pub index: usize,
    /// Points with the same load group share one loaded model.
    pub load_group: usize,
    pub load: LoadParams,
    pub ctx: ContextParams,
    pub test: Test,
}

/// A validated, expanded scenario.
#[derive(Debug, Clone)]
pub struct Plan {
    pub scenario_name: String,
    pub scenario_file: PathBuf,
    pub model_path: PathBuf,
    pub model: ModelSummary,
    pub backend: BackendKind,
    pub sim: Option<crate::sim::SimProfile>,
    /// The server settings of the `openai` backend.
    pub openai: Option<crate::openai::OpenAiConfig>,
    /// The settings of the `candle` backend.
    pub candle: Option<super::CandleConfig>,
    pub measure: MeasureSpec,
    pub points: Vec<Point>,
    /// Combinations dropped by `skip_invalid`, with the reason.
    pub dropped: Vec<String>,
}

impl Plan {
    pub fn load_groups(&self) -> usize {
        self.points
            .iter()
            .map(|p| p.load_group + 1)
            .max()
            .unwrap_or(0)
    }
}

impl Scenario {
    /// Reads the model header and checks every value against it and the
    /// machine, then expands the sweep. Nothing is loaded.
    pub fn plan(&self, machine: MachineFacts) -> Result<Plan, ScenarioError> {
        let model = self.read_model()?;
        let axes = self.plan_axes(&model, machine)?;
        let (points, dropped) = self.expand(&axes, &model)?;
        Ok(Plan {
            scenario_name: self.name.clone(),
            scenario_file: self.file.clone(),
            model_path: self.model_path.clone(),
            model,
            backend: self.backend,
            sim: self.sim,
            openai: self.openai.clone(),
            candle: self.candle.clone(),
            measure: self.measure,
            points,
            dropped,
        })
    }

    /// The model file's header.
    fn read_model(&self) -> Result<ModelSummary, ScenarioError> {
        let site = self.site();
        if !self.model_path.exists() {
            return Err(site.at(
                self.model_span.clone(),
                "model.path",
                format!("model file {} does not exist", self.model_path.display()),
                "fix the path (relative paths start at the scenario file's folder); for the test model run scripts/fetch-model.sh",
            ));
        }
        GgufFile::open(&self.model_path)
            .and_then(|f| f.summary())
            .map_err(|e| {
                site.at(
                    self.model_span.clone(),
                    "model.path",
                    e.to_string(),
                    "point model.path at a valid GGUF model file",
                )
            })
    }

    /// The axes with their keywords resolved for this model and machine,
    /// after the checks that need the model but no combination.
    fn plan_axes(
        &self,
        model: &ModelSummary,
        machine: MachineFacts,
    ) -> Result<PlanAxes, ScenarioError> {
        let site = self.site();
        let all_layers = u32::try_from(model.n_layer + 1).unwrap_or(u32::MAX);
        let n_gpu_layers: Vec<u32> = self
            .n_gpu_layers
            .values
            .iter()
            .map(|n| n.resolve(all_layers))
            .collect();
        if let Some(&bad) = n_gpu_layers.iter().find(|&&n| n > all_layers) {
            return Err(site.at(
                self.n_gpu_layers.span.clone(),
                "sweep.n_gpu_layers",
                format!("{bad} layers requested but the model has {} layers + the output layer = {all_layers}", model.n_layer),
                format!("use values up to {all_layers}, or \"all\""),
            ));
        }
        let threads = dedup(
            self.threads
                .values
                .iter()
                .map(|t| t.resolve(machine))
                .collect(),
        );

        if let Some(n_ctx) = &self.n_ctx {
            if let Some(&bad) = n_ctx
                .values
                .iter()
                .find(|&&n| u64::from(n) > model.n_ctx_train)
            {
                return Err(site.at(
                    n_ctx.span.clone(),
                    "sweep.n_ctx",
                    format!(
                        "n_ctx = {bad} is larger than the {} tokens {} was trained on",
                        model.n_ctx_train,
                        file_name(&self.model_path)
                    ),
                    format!("use n_ctx <= {}", model.n_ctx_train),
                ));
            }
        }

        if self.flash_attn.values.contains(&FlashAttn::Off) {
            if let Some(q) = self.type_v.values.iter().find(|t| t.is_quantized()) {
                return Err(site.at(
                    self.type_v.span.clone(),
                    "sweep.type_v",
                    format!("a quantized V cache ({q}) needs flash attention, but flash_attn includes \"off\""),
                    "use flash_attn = \"on\" (or \"auto\") with a quantized type_v, or type_v = \"f16\"",
                ));
            }
        }

        self.check_server_knobs()?;
        if self.backend == BackendKind::Candle && model.architecture != "llama" {
            return Err(site.at(
                self.model_span.clone(),
                "model.path",
                format!(
                    "the candle backend runs llama-architecture models; {} is {:?}",
                    file_name(&self.model_path),
                    model.architecture
                ),
                "use kind = \"llama-cpp\" for this model, or a llama-family GGUF (Llama, SmolLM, Mistral-style)",
            ));
        }

        let tests = self.tests();
        let n_ctx = match &self.n_ctx {
            Some(axis) => axis.values.iter().copied().map(Some).collect(),
            // A server is started with one context for all its tests: the
            // largest any test needs.
            None if self.backend == BackendKind::OpenAi => {
                let need = tests.iter().map(Test::tokens_in_context).max().unwrap_or(1);
                vec![Some(u32::try_from(need).unwrap_or(u32::MAX))]
            }
            None => vec![None],
        };
        Ok(PlanAxes {
            n_gpu_layers: dedup(n_gpu_layers),
            n_ctx,
            // candle has no micro-batches: its chunk is n_batch.
            n_ubatch: if self.backend == BackendKind::Candle {
                vec![None]
            } else {
                self.n_ubatch.values.iter().copied().map(Some).collect()
            },
            n_batch: self.n_batch.values.clone(),
            type_k: self.type_k.values.clone(),
            type_v: self.type_v.values.clone(),
            flash_attn: self.flash_attn.values.clone(),
            op_offload: self.op_offload.values.clone(),
            swa_full: self.swa_full.values.clone(),
            threads,
            concurrency: self.concurrency.values.clone(),
            tests,
        })
    }

    /// Every combination of the axes that can run, in run order, and the
    /// reasons for those `skip_invalid` dropped.
    fn expand(
        &self,
        axes: &PlanAxes,
        model: &ModelSummary,
    ) -> Result<(Vec<Point>, Vec<String>), ScenarioError> {
        let candle = self.backend == BackendKind::Candle;
        let mut groups = LoadGroups {
            managed: self.openai.as_ref().is_some_and(|o| o.command.is_some()),
            candle,
            launches: Vec::new(),
        };
        let mut dropped = Vec::new();
        let mut points = Vec::new();
        for c in axes.combinations(self.use_mmap) {
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
        if candle {
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

    /// The tests of the workload, as llama-bench forms them: a pp test for
    /// every non-zero `n_prompt` and a tg test for every non-zero `n_gen`,
    /// each at every depth.
    pub fn tests(&self) -> Vec<Test> {
        let mut tests = Vec::new();
        for &n_depth in &self.n_depth.values {
            tests.extend(
                self.n_prompt
                    .values
                    .iter()
                    .filter(|&&n| n > 0)
                    .map(|&n_prompt| Test {
                        n_prompt,
                        n_gen: 0,
                        n_depth,
                        concurrency: 1,
                    }),
            );
            tests.extend(
                self.n_gen
                    .values
                    .iter()
                    .filter(|&&n| n > 0)
                    .map(|&n_gen| Test {
                        n_prompt: 0,
                        n_gen,
                        n_depth,
                        concurrency: 1,
                    }),
            );
        }
        dedup(tests)
    }
}

/// The values each axis takes in the plan, outermost (slowest) first.
struct PlanAxes {
    n_gpu_layers: Vec<u32>,
    /// `None`: as many as each test needs.
    n_ctx: Vec<Option<u32>>,
    n_batch: Vec<u32>,
    /// `None`: the micro-batch is the batch (candle).
    n_ubatch: Vec<Option<u32>>,
    type_k: Vec<KvType>,
    type_v: Vec<KvType>,
    flash_attn: Vec<FlashAttn>,
    op_offload: Vec<bool>,
    swa_full: Vec<bool>,
    threads: Vec<u32>,
    concurrency: Vec<u32>,
    tests: Vec<Test>,
}

/// How many of the axes (from the outside) make a batch shape:
/// n_gpu_layers, n_ctx, n_batch, n_ubatch.
const SHAPE_AXES: usize = 4;

impl PlanAxes {
    /// The cartesian product, the last axis fastest.
    fn combinations(&self, use_mmap: bool) -> impl Iterator<Item = Combination> + '_ {
        let lens = [
            self.n_gpu_layers.len(),
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
            let [ngl, n_ctx, n_batch, n_ubatch, type_k, type_v, fa, op, swa, threads, conc, test] =
                i;
            let test = Test {
                concurrency: self.concurrency[conc],
                ..self.tests[test]
            };
            let n_batch = self.n_batch[n_batch];
            let n_ctx = self.n_ctx[n_ctx]
                .unwrap_or_else(|| u32::try_from(test.tokens_in_context()).unwrap_or(u32::MAX));
            Combination {
                ngl_group: ngl,
                first_of_shape: i[SHAPE_AXES..].iter().all(|&j| j == 0),
                load: LoadParams {
                    n_gpu_layers: self.n_gpu_layers[ngl],
                    use_mmap,
                },
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
struct Combination {
    /// Index of its n_gpu_layers value: the load group of backends that load
    /// once per n_gpu_layers.
    ngl_group: usize,
    /// The first combination of its batch shape (n_gpu_layers, n_ctx,
    /// n_batch, n_ubatch).
    first_of_shape: bool,
    load: LoadParams,
    ctx: ContextParams,
    test: Test,
}

/// Why a combination cannot run.
#[derive(Debug, Clone, Copy)]
enum Invalid {
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
/// once per n_gpu_layers.
struct LoadGroups {
    managed: bool,
    candle: bool,
    launches: Vec<(LoadParams, ContextParams, u32)>,
}

impl LoadGroups {
    fn group_of(&mut self, c: &Combination) -> usize {
        if !self.managed && !self.candle {
            return c.ngl_group;
        }
        let key = if self.candle {
            // Only the thread count matters (type_k/v and flash_attn are fixed).
            let threads_only = ContextParams {
                n_ctx: 0,
                n_batch: 0,
                n_ubatch: 0,
                ..c.ctx.clone()
            };
            (c.load.clone(), threads_only, 1)
        } else {
            (c.load.clone(), c.ctx.clone(), c.test.concurrency)
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
struct Cartesian<const N: usize> {
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

/// Removes repeats, keeping the first occurrence's position.
fn dedup<T: PartialEq + Clone>(values: Vec<T>) -> Vec<T> {
    let mut out: Vec<T> = Vec::with_capacity(values.len());
    for v in values {
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

fn file_name(path: &std::path::Path) -> String {
    path.file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default()
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
