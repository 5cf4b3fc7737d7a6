//! Validation against the model and the machine (keywords resolved, values
//! checked), then expansion into points (`expand.rs`).

use std::path::PathBuf;

use lmtune_gguf::{is_routed_expert, GgufFile, ModelSummary};
use serde::{Deserialize, Serialize};

use super::expand::PlanAxes;
use super::{BackendSpec, MeasureSpec, NGpuLayers, Scenario, ScenarioError};
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
    /// The backend and its settings.
    pub backend: BackendSpec,
    pub measure: MeasureSpec,
    pub points: Vec<Point>,
    /// Combinations dropped by `skip_invalid`, with the reason.
    pub dropped: Vec<String>,
    /// sha256 of the scenario file's text: shards of one scenario share it.
    pub scenario_sha256: String,
    /// The part of the points this run keeps ([`Plan::keep_shard`]); `None`: all.
    pub shard: Option<crate::shard::Shard>,
}

impl Plan {
    /// Keeps only `shard`'s points (their indices and load groups stay those
    /// of the whole plan, so the shards' records merge back into it).
    pub fn keep_shard(&mut self, shard: crate::shard::Shard) {
        let keep: std::collections::HashSet<usize> = crate::shard::shard_points(self, shard)
            .iter()
            .map(|p| p.index)
            .collect();
        self.points.retain(|p| keep.contains(&p.index));
        self.shard = Some(shard);
    }

    /// How many load groups the points (of this shard) span.
    pub fn load_groups(&self) -> usize {
        let mut groups: Vec<usize> = self.points.iter().map(|p| p.load_group).collect();
        groups.sort_unstable();
        groups.dedup();
        groups.len()
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
            backend: self.backend.clone(),
            measure: self.measure,
            points,
            dropped,
            scenario_sha256: self.sha256(),
            shard: None,
        })
    }

    /// sha256 of the scenario file's text (hex).
    pub fn sha256(&self) -> String {
        use sha2::{Digest, Sha256};
        Sha256::digest(self.source.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
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
        let n_gpu_layers: Vec<(u32, bool)> = self
            .n_gpu_layers
            .values
            .iter()
            .map(|n| (n.resolve(all_layers), *n == NGpuLayers::Fit))
            .collect();
        if let Some(&(bad, _)) = n_gpu_layers.iter().find(|&&(n, _)| n > all_layers) {
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
        if self
            .backend
            .architectures()
            .is_some_and(|a| !a.contains(&model.architecture.as_str()))
        {
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
            None if self.backend.is_server() => {
                let need = tests.iter().map(Test::tokens_in_context).max().unwrap_or(1);
                vec![Some(u32::try_from(need).unwrap_or(u32::MAX))]
            }
            None => vec![None],
        };
        let loads = self.loads(model, dedup(n_gpu_layers))?;
        Ok(PlanAxes {
            loads,
            n_ctx,
            // candle has no micro-batches: its chunk is n_batch.
            n_ubatch: if self.backend.has_micro_batches() {
                self.n_ubatch.values.iter().copied().map(Some).collect()
            } else {
                vec![None]
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

    /// One load per (n_gpu_layers, n_cpu_moe, cpu_moe, override_tensor),
    /// after checking the tensor placement against the model: expert knobs
    /// need routed experts, `n_cpu_moe` at most the model's blocks, and
    /// every `-ot` pattern must name at least one tensor.
    fn loads(
        &self,
        model: &ModelSummary,
        n_gpu_layers: Vec<(u32, bool)>,
    ) -> Result<Vec<LoadParams>, ScenarioError> {
        let site = self.site();
        let asks_experts = self.n_cpu_moe.values.iter().any(|n| *n != NGpuLayers::N(0))
            || self.cpu_moe.values.contains(&true);
        let has_patterns = self.override_tensor.values.iter().any(|o| !o.is_empty());
        self.check_fit(
            n_gpu_layers.iter().any(|&(_, fit)| fit),
            asks_experts || has_patterns,
        )?;
        let names: Vec<String> = if asks_experts || has_patterns {
            GgufFile::open(&self.model_path)
                .map(|f| f.tensors.into_iter().map(|t| t.name).collect())
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        if asks_experts && !names.iter().any(|n| is_routed_expert(n)) {
            let (key, span) = if self.n_cpu_moe.explicit {
                ("sweep.n_cpu_moe", self.n_cpu_moe.span.clone())
            } else {
                ("sweep.cpu_moe", self.cpu_moe.span.clone())
            };
            return Err(site.at(
                span,
                key,
                format!(
                    "{} has no routed experts (a dense {} model), so there are no expert tensors to keep on the CPU",
                    file_name(&self.model_path),
                    model.architecture
                ),
                format!("remove {key}; for a dense model, sweep n_gpu_layers"),
            ));
        }
        let n_layer = u32::try_from(model.n_layer).unwrap_or(u32::MAX);
        let n_cpu_moe: Vec<u32> = dedup(
            self.n_cpu_moe
                .values
                .iter()
                .map(|n| n.resolve(n_layer))
                .collect(),
        );
        if let Some(&bad) = n_cpu_moe.iter().find(|&&n| n > n_layer) {
            return Err(site.at(
                self.n_cpu_moe.span.clone(),
                "sweep.n_cpu_moe",
                format!(
                    "n_cpu_moe = {bad} but {} has {n_layer} blocks",
                    file_name(&self.model_path)
                ),
                format!("use values up to {n_layer}, or \"all\" (= cpu_moe)"),
            ));
        }
        for text in &self.override_tensor.values {
            for o in crate::knobs::parse_override_tensor(text).unwrap_or_default() {
                let Ok(re) = regex::Regex::new(&o.pattern) else {
                    continue;
                };
                if !names.iter().any(|n| re.is_match(n)) {
                    let example = names
                        .iter()
                        .find(|n| is_routed_expert(n))
                        .or(names.iter().find(|n| n.starts_with("blk.")))
                        .cloned()
                        .unwrap_or_default();
                    return Err(site.at(
                        self.override_tensor.span.clone(),
                        "sweep.override_tensor",
                        format!(
                            "the pattern {:?} matches no tensor of {}",
                            o.pattern,
                            file_name(&self.model_path)
                        ),
                        format!("fix the pattern (tensors are named like {example:?}; `lmtune inspect --json` lists the layers)"),
                    ));
                }
            }
        }
        let mut loads = Vec::new();
        for &(ngl, fit) in &n_gpu_layers {
            for &ncm in &n_cpu_moe {
                for &cpu_moe in &self.cpu_moe.values {
                    for ot in &self.override_tensor.values {
                        loads.push(LoadParams {
                            // --cpu-moe already keeps every block's experts.
                            n_cpu_moe: if cpu_moe { 0 } else { ncm },
                            cpu_moe,
                            override_tensor: ot.clone(),
                            fit,
                            ..LoadParams::new(ngl, self.use_mmap)
                        });
                    }
                }
            }
        }
        Ok(dedup(loads))
    }

    /// `n_gpu_layers = "fit"` hands the offload and the tensor overrides to
    /// llama.cpp's own fit: the llama-cpp backend only, and no placement by
    /// hand beside it; `n_cpu_moe` takes no "fit".
    fn check_fit(&self, fit: bool, placed_by_hand: bool) -> Result<(), ScenarioError> {
        let site = self.site();
        if self.n_cpu_moe.values.contains(&NGpuLayers::Fit) {
            return Err(site.at(
                self.n_cpu_moe.span.clone(),
                "sweep.n_cpu_moe",
                "\"fit\" is a value of n_gpu_layers (llama.cpp's fit places the experts too)",
                "write n_gpu_layers = \"fit\" and leave n_cpu_moe out, or give n_cpu_moe numbers or \"all\"",
            ));
        }
        if !fit {
            return Ok(());
        }
        if !self.backend.has_llama_fit() {
            return Err(site.at(
                self.n_gpu_layers.span.clone(),
                "sweep.n_gpu_layers",
                format!("\"fit\" runs llama.cpp's own fit (common_fit_params), which the {} backend does not have", self.backend.name()),
                "give n_gpu_layers numbers or \"all\", or use backend = \"llama-cpp\"",
            ));
        }
        if placed_by_hand {
            return Err(site.at(
                self.n_gpu_layers.span.clone(),
                "sweep.n_gpu_layers",
                "\"fit\" lets llama.cpp choose the tensor overrides, so n_cpu_moe, cpu_moe and override_tensor cannot be set beside it",
                "remove n_cpu_moe / cpu_moe / override_tensor, or give n_gpu_layers numbers",
            ));
        }
        Ok(())
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

/// Removes repeats, keeping the first occurrence's position.
pub(super) fn dedup<T: PartialEq + Clone>(values: Vec<T>) -> Vec<T> {
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
