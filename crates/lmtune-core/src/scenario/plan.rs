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

        self.check_server_knobs()?;
        if self.backend == BackendKind::Candle && model.architecture != "llama" {
            return Err(site.at(
                model_span.clone(),
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
        let mut dropped = Vec::new();
        let mut points = Vec::new();
        let n_ctx_values: Vec<Option<u32>> = match &self.n_ctx {
            Some(axis) => axis.values.iter().copied().map(Some).collect(),
            // A server is started with one context for all its tests: the
            // largest any test needs.
            None if self.backend == BackendKind::OpenAi => {
                let need = tests.iter().map(Test::tokens_in_context).max().unwrap_or(1);
                vec![Some(u32::try_from(need).unwrap_or(u32::MAX))]
            }
            None => vec![None],
        };
        // Managed servers are started per (load, context, concurrency): that
        // is their load group. candle's worker runs one thread count, so its
        // groups are per (load, threads). Other backends load once per n_gpu_layers.
        let managed = self.openai.as_ref().is_some_and(|o| o.command.is_some());
        let candle = self.backend == BackendKind::Candle;
        let mut launches: Vec<(LoadParams, ContextParams, u32)> = Vec::new();
        let mut group_of =
            |load: &LoadParams, ctx: &ContextParams, concurrency: u32, ngl_group: usize| {
                if !managed && !candle {
                    return ngl_group;
                }
                let key = if candle {
                    // Only the thread count matters (type_k/v and flash_attn are fixed).
                    let threads_only = ContextParams {
                        n_ctx: 0,
                        n_batch: 0,
                        n_ubatch: 0,
                        ..ctx.clone()
                    };
                    (load.clone(), threads_only, 1)
                } else {
                    (load.clone(), ctx.clone(), concurrency)
                };
                match launches.iter().position(|k| *k == key) {
                    Some(i) => i,
                    None => {
                        launches.push(key);
                        launches.len() - 1
                    }
                }
            };
        for (ngl_group, &ngl) in dedup(n_gpu_layers).iter().enumerate() {
            let load = LoadParams {
                n_cpu_moe: 0,
                n_gpu_layers: ngl,
                use_mmap: self.use_mmap,
            };
            for &n_ctx in &n_ctx_values {
                for &n_batch in &self.n_batch.values {
                    // candle has no micro-batches: its chunk is n_batch.
                    let ubatches = if candle {
                        vec![n_batch]
                    } else {
                        self.n_ubatch.values.clone()
                    };
                    for &n_ubatch in &ubatches {
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
                                for ((flash_attn, op_offload), swa_full) in pairs(
                                    &pairs(&self.flash_attn.values, &self.op_offload.values),
                                    &self.swa_full.values,
                                ) {
                                    for &threads in &threads {
                                        for &concurrency in &self.concurrency.values {
                                            for test in &tests {
                                                let test = &Test {
                                                    concurrency,
                                                    ..*test
                                                };
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
                                                let ctx = ContextParams {
                                                    n_ctx,
                                                    n_batch,
                                                    n_ubatch,
                                                    threads,
                                                    type_k,
                                                    type_v,
                                                    flash_attn,
                                                    op_offload,
                                                    swa_full,
                                                };
                                                points.push(Point {
                                                    index: points.len(),
                                                    load_group: group_of(
                                                        &load,
                                                        &ctx,
                                                        concurrency,
                                                        ngl_group,
                                                    ),
                                                    load: load.clone(),
                                                    ctx,
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
        }
        if candle {
            // One worker per thread count: run each group's points together.
            points.sort_by_key(|p| p.load_group);
            for (i, p) in points.iter_mut().enumerate() {
                p.index = i;
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
            openai: self.openai.clone(),
            candle: self.candle.clone(),
            measure: self.measure,
            points,
            dropped,
        })
    }

    /// An external server's knobs are set when it starts, not per request:
    /// a sweep axis for them would be silently ignored, so it is rejected.
    /// A managed server gets them through its command's placeholders, so an
    /// axis needs its placeholder there.
    fn check_server_knobs(&self) -> Result<(), ScenarioError> {
        let Some(openai) = &self.openai else {
            return Ok(());
        };
        let site = self.site();
        if let Some(var) = &openai.api_key_env {
            if std::env::var(var).map_or(true, |v| v.is_empty()) {
                return Err(site.at(
                    None,
                    "backend.openai.api_key_env",
                    format!("the environment variable {var} is not set, so there is no API key to send"),
                    format!("export {var}=<the server's key> before running (lmtune never writes the key anywhere)"),
                ));
            }
        }
        let axes: [(&str, bool, Option<std::ops::Range<usize>>); 10] = [
            (
                "n_gpu_layers",
                self.n_gpu_layers.explicit,
                self.n_gpu_layers.span.clone(),
            ),
            (
                "n_ctx",
                self.n_ctx.as_ref().is_some_and(|a| a.explicit),
                self.n_ctx.as_ref().and_then(|a| a.span.clone()),
            ),
            ("n_batch", self.n_batch.explicit, self.n_batch.span.clone()),
            (
                "n_ubatch",
                self.n_ubatch.explicit,
                self.n_ubatch.span.clone(),
            ),
            ("threads", self.threads.explicit, self.threads.span.clone()),
            ("type_k", self.type_k.explicit, self.type_k.span.clone()),
            ("type_v", self.type_v.explicit, self.type_v.span.clone()),
            (
                "flash_attn",
                self.flash_attn.explicit,
                self.flash_attn.span.clone(),
            ),
            (
                "swa_full",
                self.swa_full.explicit,
                self.swa_full.span.clone(),
            ),
            ("concurrency", false, None),
        ];
        match &openai.command {
            None => {
                if let Some((name, _, span)) = axes.iter().find(|(_, explicit, _)| *explicit) {
                    return Err(site.at(
                        span.clone(),
                        &format!("sweep.{name}"),
                        format!("{name} of a server you run (base_url) is set when you start it, not per request, so lmtune cannot sweep it"),
                        format!("remove sweep.{name} and start the server with the value you want, or let lmtune start the server: [backend.openai] command = [\"llama-server\", …, \"{{{name}}}\"]"),
                    ));
                }
            }
            Some(command) => {
                let used = crate::openai::used_placeholders(command);
                for (name, explicit, span) in &axes {
                    let carriers = crate::openai::placeholders_of_axis(name);
                    if *explicit && !carriers.iter().any(|c| used.iter().any(|u| u == c)) {
                        return Err(site.at(
                            span.clone(),
                            &format!("sweep.{name}"),
                            format!("sweep.{name} is set but the server command has no {} placeholder, so the server would never see it", carriers.iter().map(|c| format!("{{{c}}}")).collect::<Vec<_>>().join(" or ")),
                            format!("add the server's flag with {{{}}} to [backend.openai] command (llama-server: see README.md, section \"Servers\"), or remove sweep.{name}", carriers[0]),
                        ));
                    }
                }
                if self.concurrency.values.iter().any(|&c| c > 1)
                    && !used.iter().any(|u| u == "parallel")
                {
                    return Err(site.at(
                        self.concurrency.span.clone(),
                        "sweep.concurrency",
                        "concurrent clients need as many server slots, but the command has no {parallel}",
                        "add the server's slot flag, e.g. \"-np\", \"{parallel}\" with \"-c\", \"{n_ctx_total}\" (llama-server)",
                    ));
                }
                let program = &command[0];
                if find_program(program).is_none() {
                    return Err(site.at(
                        self.openai_command_span.clone(),
                        "backend.openai.command",
                        format!("the server program {program:?} was not found (not an executable file, and not on PATH)"),
                        "give its absolute path, or put its folder on PATH; to build llama-server from source run scripts/build-llama-server.sh (it prints the path)",
                    ));
                }
            }
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

/// `program` as an executable file: a path as given, or a bare name looked
/// up on PATH.
pub fn find_program(program: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &std::path::Path| {
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        let p = PathBuf::from(program);
        return executable(&p).then_some(p);
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|p| executable(p))
}

fn file_name(path: &std::path::Path) -> String {
    path.file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Every (a, b) of two axes, a outer.
fn pairs<A: Copy, B: Copy>(a: &[A], b: &[B]) -> Vec<(A, B)> {
    a.iter()
        .flat_map(|&x| b.iter().map(move |&y| (x, y)))
        .collect()
}
