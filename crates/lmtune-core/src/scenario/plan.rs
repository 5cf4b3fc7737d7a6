//! Validation against the model and the machine, and expansion into points.

use std::path::PathBuf;

use lmtune_gguf::{GgufFile, ModelSummary};
use serde::{Deserialize, Serialize};

use super::{Axis, BackendKind, IntOrKeyword, MeasureSpec, Scenario, ScenarioError};
use crate::knobs::{ContextParams, FlashAttn, LoadParams, Test};

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
        let site = self.site();
        let model_span = self.model_span.clone();
        if !self.model_path.exists() {
            return Err(site.at(
                model_span,
                "model.path",
                format!("model file {} does not exist", self.model_path.display()),
                "fix the path (relative paths start at the scenario file's folder); for the test model run scripts/fetch-model.sh",
            ));
        }
        let model = GgufFile::open(&self.model_path)
            .and_then(|f| f.summary())
            .map_err(|e| {
                site.at(
                    model_span.clone(),
                    "model.path",
                    e.to_string(),
                    "point model.path at a valid GGUF model file",
                )
            })?;

        let all_layers = u32::try_from(model.n_layer + 1).unwrap_or(u32::MAX);
        let n_gpu_layers = resolve(&self.n_gpu_layers, |kw| match kw {
            "all" => all_layers,
            _ => unreachable!(),
        });
        if let Some(&bad) = n_gpu_layers.iter().find(|&&n| n > all_layers) {
            return Err(site.at(
                self.n_gpu_layers.span.clone(),
                "sweep.n_gpu_layers",
                format!("{bad} layers requested but the model has {} layers + the output layer = {all_layers}", model.n_layer),
                format!("use values up to {all_layers}, or \"all\""),
            ));
        }

        let threads = dedup(resolve(&self.threads, |kw| match kw {
            "physical" => machine.physical_cores.max(1),
            "logical" => machine.logical_cores.max(1),
            _ => unreachable!(),
        }));

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

        let tests = self.tests();
        let mut dropped = Vec::new();
        let mut points = Vec::new();
        let n_ctx_values: Vec<Option<u32>> = match &self.n_ctx {
            Some(axis) => axis.values.iter().copied().map(Some).collect(),
            None => vec![None],
        };
        for (group, &ngl) in dedup(n_gpu_layers).iter().enumerate() {
            let load = LoadParams {
                n_gpu_layers: ngl,
                use_mmap: self.use_mmap,
            };
            for &n_ctx in &n_ctx_values {
                for &n_batch in &self.n_batch.values {
                    for &n_ubatch in &self.n_ubatch.values {
                        if n_ubatch > n_batch {
                            let reason = format!("n_ubatch = {n_ubatch} > n_batch = {n_batch}");
                            if self.skip_invalid {
                                dropped.push(reason);
                                continue;
                            }
                            return Err(site.at(
                                self.n_ubatch.span.clone().or(self.n_batch.span.clone()),
                                "sweep.n_ubatch",
                                format!("{reason}; a micro-batch cannot be larger than its batch"),
                                "make every n_ubatch <= every n_batch, or set skip_invalid = true in [sweep] to drop such combinations",
                            ));
                        }
                        for &type_k in &self.type_k.values {
                            for &type_v in &self.type_v.values {
                                for &flash_attn in &self.flash_attn.values {
                                    for &threads in &threads {
                                        for test in &tests {
                                            let need = test.tokens_in_context();
                                            let n_ctx = match n_ctx {
                                                Some(n) => n,
                                                None => u32::try_from(need).unwrap_or(u32::MAX),
                                            };
                                            if u64::from(n_ctx) < need {
                                                let reason = format!("n_ctx = {n_ctx} < n_prompt + n_gen + n_depth = {need} for test {}", test.label());
                                                if self.skip_invalid {
                                                    dropped.push(reason);
                                                    continue;
                                                }
                                                let span = self
                                                    .n_ctx
                                                    .as_ref()
                                                    .and_then(|a| a.span.clone());
                                                return Err(site.at(
                                                    span,
                                                    "sweep.n_ctx",
                                                    format!("{reason}: the test does not fit in the context"),
                                                    format!("raise n_ctx to at least {need} or shorten the workload"),
                                                ));
                                            }
                                            if need > model.n_ctx_train {
                                                return Err(site.at(
                                                    self.n_prompt.span.clone().or(self.n_gen.span.clone()),
                                                    "workload",
                                                    format!("test {} needs {need} tokens of context, more than the {} the model was trained on", test.label(), model.n_ctx_train),
                                                    "shorten n_prompt / n_gen / n_depth",
                                                ));
                                            }
                                            points.push(Point {
                                                index: points.len(),
                                                load_group: group,
                                                load: load.clone(),
                                                ctx: ContextParams {
                                                    n_ctx,
                                                    n_batch,
                                                    n_ubatch,
                                                    threads,
                                                    type_k,
                                                    type_v,
                                                    flash_attn,
                                                },
                                                test: *test,
                                            });
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        if points.is_empty() {
            return Err(site.at(
                None,
                "sweep",
                format!(
                    "every combination is invalid ({})",
                    dropped.first().map(String::as_str).unwrap_or("none")
                ),
                "adjust the axes so at least one combination fits",
            ));
        }
        Ok(Plan {
            scenario_name: self.name.clone(),
            scenario_file: self.file.clone(),
            model_path: self.model_path.clone(),
            model,
            backend: self.backend,
            sim: self.sim,
            measure: self.measure,
            points,
            dropped,
        })
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
                    }),
            );
        }
        dedup(tests)
    }
}

fn resolve(axis: &Axis<IntOrKeyword>, keyword: impl Fn(&str) -> u32) -> Vec<u32> {
    axis.values
        .iter()
        .map(|v| match v {
            IntOrKeyword::Int(n) => *n,
            IntOrKeyword::Keyword(k) => keyword(k),
        })
        .collect()
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
