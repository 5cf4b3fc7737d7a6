//! The experiments `advise` plans: one scenario (TOML text, as a user would
//! write it) per part, each part run by the same sweep `lmtune run` uses.
//! Pure: the text, the time each would take, and which fit the budget.

use std::path::{Path, PathBuf};

use serde::Serialize;

/// What an experiment tests; also the order they run in (most useful first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExperimentId {
    Threads,
    Context,
    KvType,
    Batch,
    Quant,
    Offload,
    Concurrency,
}

impl ExperimentId {
    pub fn as_str(self) -> &'static str {
        match self {
            ExperimentId::Threads => "threads",
            ExperimentId::Context => "context",
            ExperimentId::KvType => "kv_type",
            ExperimentId::Batch => "batch",
            ExperimentId::Quant => "quant",
            ExperimentId::Offload => "offload",
            ExperimentId::Concurrency => "concurrency",
        }
    }
}

/// The facts about this machine the plan depends on.
#[derive(Debug, Clone)]
pub struct MachineSide {
    pub physical_cores: u32,
    pub logical_cores: u32,
    /// An NVIDIA GPU was detected (NVML).
    pub gpu: bool,
    /// The VRAM to plan offload for (`--vram`, else the GPU's, else 8 GiB
    /// for the simulated one).
    pub vram_bytes: u64,
    /// Host memory available for the context experiment, bytes.
    pub ram_bytes: u64,
    /// llama-server, where it is built.
    pub llama_server: Option<PathBuf>,
}

/// The facts about the model the plan depends on.
#[derive(Debug, Clone)]
pub struct ModelSide {
    pub path: PathBuf,
    pub n_layer: u64,
    pub n_ctx_train: u64,
    pub weights_bytes: u64,
    /// KV bytes per token at f16 (the exact rule, every layer).
    pub kv_bytes_per_token_f16: u64,
    /// Rows a K-quant can store (n_embd a multiple of 256).
    pub k_quant_rows: bool,
    /// A dense architecture `synth` writes (the quantization experiment).
    pub synth_shape: Option<String>,
}

/// Speeds from the probe (pp64 + tg16 at the physical cores), what every
/// estimate scales.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProbeSpeeds {
    pub pp_tokens_per_s: f64,
    pub tg_tokens_per_s: f64,
    /// One model load, seconds.
    pub load_s: f64,
    /// A part's fixed cost (worker start, bandwidth probe, hashing), seconds.
    pub part_overhead_s: f64,
}

/// A model `synth` writes before a part runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SynthModel {
    /// Weight type as `synth --quant` takes it.
    pub quant: String,
    /// The claim's name for it (Q4_K even when the shape needs Q4_0).
    pub label: String,
    pub path: PathBuf,
}

/// One scenario of an experiment.
#[derive(Debug, Clone, Serialize)]
pub struct Part {
    /// Unique in the whole run: the results land in `runs/<name>/`.
    pub name: String,
    pub scenario: String,
    pub synth: Option<SynthModel>,
    pub estimate_s: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Experiment {
    pub id: ExperimentId,
    pub parts: Vec<Part>,
    /// Numbers from the sim backend, not measurements.
    pub simulated: bool,
    /// Notes on how the plan departs from the ideal (shape, quant fallback).
    pub notes: Vec<String>,
}

impl Experiment {
    pub fn estimate_s(&self) -> f64 {
        self.parts.iter().map(|p| p.estimate_s).sum()
    }
}

/// Either an experiment to run, or why it is not run here.
#[derive(Debug, Clone)]
pub enum Planned {
    Run(Experiment),
    NotHere { id: ExperimentId, reason: String },
}

const REPS: u32 = 3;
const WARMUP: u32 = 1;
/// pp and tg of the speed experiments.
const PP: u32 = 256;
const TG: u32 = 32;
/// Context sizes the claims speak of.
pub const CONTEXTS: [u64; 4] = [2048, 4096, 8192, 32768];

/// Thread counts of the threads experiment: 1, physical − 1, physical, logical.
pub fn thread_counts(physical: u32, logical: u32) -> Vec<u32> {
    let physical = physical.max(1);
    let mut t = vec![
        1,
        physical.saturating_sub(1).max(1),
        physical,
        logical.max(1),
    ];
    t.sort_unstable();
    t.dedup();
    t
}

fn list<T: ToString>(v: &[T]) -> String {
    v.iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn quoted(p: &Path) -> String {
    serde_json::to_string(&p.display().to_string()).expect("a string serializes")
}

/// A llama-cpp scenario of `sweep` and `workload` lines over `model`.
fn scenario(name: &str, model: &Path, sweep: &str, workload: &str, reps: u32) -> String {
    format!(
        "# Written by `lmtune advise`.\nschema = 1\nname = \"advise-{name}\"\n\n[model]\npath = {model}\n\n\
         [sweep]\n{sweep}\n[workload]\n{workload}\n[measure]\nrepetitions = {reps}\nwarmup = {WARMUP}\n",
        model = quoted(model)
    )
}

impl ProbeSpeeds {
    /// Seconds one point takes: warm-up and repetitions of its tokens at a
    /// rate scaled by the threads it gets (conservatively linear), plus depth.
    pub fn point_s(&self, threads: u32, physical: u32, t: (u32, u32, u32), reps: u32) -> f64 {
        let (n_prompt, n_gen, n_depth) = t;
        let share =
            (f64::from(threads.min(physical.max(1))) / f64::from(physical.max(1))).max(0.05);
        let pp = self.pp_tokens_per_s.max(1e-3) * share;
        let tg = self.tg_tokens_per_s.max(1e-3) * share;
        let once = f64::from(n_prompt + n_depth) / pp + f64::from(n_gen) / tg;
        f64::from(reps + WARMUP) * once + 0.2
    }
}

/// Every experiment for this machine and model, with its estimate, or why
/// it cannot run here.
pub fn plan_all(
    m: &MachineSide,
    model: &ModelSide,
    speed: &ProbeSpeeds,
    scratch: &Path,
) -> Vec<Planned> {
    vec![
        Planned::Run(threads(m, model, speed)),
        context(m, model, speed),
        Planned::Run(kv_type(m, model, speed)),
        Planned::Run(batch(m, model, speed)),
        quant(m, model, speed, scratch),
        Planned::Run(offload(m, model, speed)),
        concurrency(m, model, speed),
    ]
}

fn part(name: &str, scenario: String, estimate_s: f64) -> Part {
    Part {
        name: name.to_string(),
        scenario,
        synth: None,
        estimate_s,
    }
}

fn threads(m: &MachineSide, model: &ModelSide, s: &ProbeSpeeds) -> Experiment {
    let counts = thread_counts(m.physical_cores, m.logical_cores);
    let text = scenario(
        "threads",
        &model.path,
        &format!("n_gpu_layers = 0\nthreads = [{}]\n", list(&counts)),
        &format!("n_prompt = [{PP}]\nn_gen = [{TG}]\n"),
        REPS,
    );
    let est: f64 = counts
        .iter()
        .map(|&t| {
            s.point_s(t, m.physical_cores, (PP, 0, 0), REPS)
                + s.point_s(t, m.physical_cores, (0, TG, 0), REPS)
        })
        .sum();
    Experiment {
        id: ExperimentId::Threads,
        parts: vec![part("threads", text, est + s.load_s + s.part_overhead_s)],
        simulated: false,
        notes: Vec::new(),
    }
}

/// The context sizes measured: those the model was trained for whose KV
/// cache and weights take under half the host memory.
pub fn measurable_contexts(m: &MachineSide, model: &ModelSide) -> Vec<u64> {
    CONTEXTS
        .iter()
        .copied()
        .filter(|&c| c <= model.n_ctx_train)
        .filter(|&c| model.weights_bytes + c * model.kv_bytes_per_token_f16 < m.ram_bytes / 2)
        .collect()
}

fn context(m: &MachineSide, model: &ModelSide, s: &ProbeSpeeds) -> Planned {
    let sizes = measurable_contexts(m, model);
    if sizes.is_empty() {
        return Planned::NotHere {
            id: ExperimentId::Context,
            reason: format!(
                "no context of {} tokens fits: the model was trained on {} and host memory is {}",
                list(&CONTEXTS),
                model.n_ctx_train,
                lmtune_report::human_bytes(m.ram_bytes)
            ),
        };
    }
    // Memory is the point: one short generation per size, llama.cpp's dry
    // run and the peak RSS come with every record.
    let text = scenario(
        "context",
        &model.path,
        &format!(
            "n_gpu_layers = 0\nn_ctx = [{}]\nthreads = \"physical\"\n",
            list(&sizes)
        ),
        "n_prompt = [0]\nn_gen = [16]\n",
        1,
    );
    let est =
        sizes.len() as f64 * (s.point_s(m.physical_cores, m.physical_cores, (0, 16, 0), 1) + 0.5);
    Planned::Run(Experiment {
        id: ExperimentId::Context,
        parts: vec![part("context", text, est + s.load_s + s.part_overhead_s)],
        simulated: false,
        notes: Vec::new(),
    })
}

fn kv_type(m: &MachineSide, model: &ModelSide, s: &ProbeSpeeds) -> Experiment {
    let n_ctx = 4096.min(model.n_ctx_train);
    let depth = 512.min(n_ctx / 4) as u32;
    let parts = ["f16", "q8_0"]
        .iter()
        .map(|t| {
            let text = scenario(
                &format!("kv-{t}"),
                &model.path,
                &format!(
                    "n_gpu_layers = 0\nn_ctx = {n_ctx}\nthreads = \"physical\"\nflash_attn = \"on\"\ntype_k = \"{t}\"\ntype_v = \"{t}\"\n"
                ),
                &format!("n_prompt = [{PP}]\nn_gen = [{TG}]\nn_depth = [{depth}]\n"),
                REPS,
            );
            let est = s.point_s(m.physical_cores, m.physical_cores, (PP, 0, depth), REPS)
                + s.point_s(m.physical_cores, m.physical_cores, (0, TG, depth), REPS);
            part(&format!("kv-{t}"), text, est + s.load_s + s.part_overhead_s)
        })
        .collect();
    Experiment {
        id: ExperimentId::KvType,
        parts,
        simulated: false,
        notes: vec![format!(
            "n_ctx {n_ctx}, flash attention on for both (a quantized V cache needs it), {depth} tokens already in the cache"
        )],
    }
}

fn batch(m: &MachineSide, model: &ModelSide, s: &ProbeSpeeds) -> Experiment {
    let n_prompt = 2048.min(model.n_ctx_train) as u32;
    let parts = [512u32, 2048]
        .iter()
        .map(|&b| {
            let text = scenario(
                &format!("batch-{b}"),
                &model.path,
                &format!(
                    "n_gpu_layers = 0\nthreads = \"physical\"\nn_batch = {b}\nn_ubatch = {b}\n"
                ),
                &format!("n_prompt = [{n_prompt}]\nn_gen = [0]\n"),
                REPS,
            );
            let est = s.point_s(m.physical_cores, m.physical_cores, (n_prompt, 0, 0), REPS);
            part(
                &format!("batch-{b}"),
                text,
                est + s.load_s + s.part_overhead_s,
            )
        })
        .collect();
    Experiment {
        id: ExperimentId::Batch,
        parts,
        simulated: false,
        notes: vec![format!("pp{n_prompt}, one client, n_ubatch = n_batch")],
    }
}

/// The weight types of the quantization experiment: Q4_K, Q5_K, Q8_0, or
/// Q4_0/Q5_0 where the shape's rows are not whole 256-blocks (synth, like
/// llama.cpp's quantizer, would store most tensors as q8_0 instead).
pub fn quant_types(k_quant_rows: bool) -> [(&'static str, &'static str); 3] {
    if k_quant_rows {
        [("q4_K", "Q4_K"), ("q5_K", "Q5_K"), ("q8_0", "Q8_0")]
    } else {
        [("q4_0", "Q4_0"), ("q5_0", "Q5_0"), ("q8_0", "Q8_0")]
    }
}

fn quant(m: &MachineSide, model: &ModelSide, s: &ProbeSpeeds, scratch: &Path) -> Planned {
    let Some(shape) = &model.synth_shape else {
        return Planned::NotHere {
            id: ExperimentId::Quant,
            reason: "synth does not write this model's architecture (dense llama-like shapes only), so its shape cannot be quantized three ways".into(),
        };
    };
    let weights = model.weights_bytes as f64;
    let mut notes = vec![format!(
        "{shape}, random weights (synth), the model's tokenizer"
    )];
    if !model.k_quant_rows {
        notes.push(
            "Q4_0 and Q5_0 stand in for Q4_K and Q5_K: this shape's rows are not whole 256-element blocks".into(),
        );
    }
    let parts = quant_types(model.k_quant_rows)
        .iter()
        .map(|(quant, label)| {
            let path = scratch.join(format!("advise-{quant}.gguf"));
            let text = scenario(
                &format!("quant-{quant}"),
                &path,
                "n_gpu_layers = 0\nthreads = \"physical\"\n",
                &format!("n_prompt = [0]\nn_gen = [{TG}]\n"),
                REPS,
            );
            // Writing the file (~200 MB/s) and a tg as fast as its bytes allow.
            let bits = match *quant {
                "q8_0" => 8.5,
                "q5_K" | "q5_0" => 5.5,
                _ => 4.5,
            };
            let write_s = weights * bits / 4.5 / 200e6;
            let est = s.point_s(m.physical_cores, m.physical_cores, (0, TG, 0), REPS) * bits / 4.5;
            Part {
                name: format!("quant-{quant}"),
                scenario: text,
                synth: Some(SynthModel {
                    quant: quant.to_string(),
                    label: label.to_string(),
                    path,
                }),
                estimate_s: write_s + est + s.load_s + s.part_overhead_s,
            }
        })
        .collect();
    Planned::Run(Experiment {
        id: ExperimentId::Quant,
        parts,
        simulated: false,
        notes,
    })
}

/// n_gpu_layers of the offload experiment: 0, about a quarter, half, three
/// quarters, seven eighths, and all (n_layer + 1, the output layer too).
pub fn offload_steps(n_layer: u64) -> Vec<u64> {
    let all = n_layer + 1;
    let mut v = vec![0, all / 4, all / 2, 3 * all / 4, 7 * all / 8, all];
    v.dedup();
    v
}

fn offload(m: &MachineSide, model: &ModelSide, s: &ProbeSpeeds) -> Experiment {
    let steps = offload_steps(model.n_layer);
    let sweep = format!(
        "n_gpu_layers = [{}]\nthreads = \"physical\"\n",
        list(&steps)
    );
    let workload = format!("n_prompt = [0]\nn_gen = [{TG}]\n");
    if m.gpu {
        let text = scenario("offload", &model.path, &sweep, &workload, REPS);
        let est = steps.len() as f64
            * (s.load_s + s.point_s(m.physical_cores, m.physical_cores, (0, TG, 0), REPS));
        return Experiment {
            id: ExperimentId::Offload,
            parts: vec![part("offload", text, est + s.part_overhead_s)],
            simulated: false,
            notes: Vec::new(),
        };
    }
    // No GPU: the sim backend over the model's real anatomy, a GPU of the
    // planned VRAM at 500 GB/s, this machine's bandwidth per thread
    // guessed from the probe. SIMULATED, and labelled so everywhere.
    let text = format!(
        "# Written by `lmtune advise`: SIMULATED numbers (no GPU on this machine).\n\
         schema = 1\nname = \"advise-offload-simulated\"\n\n[model]\npath = {model}\n\n\
         [backend]\nkind = \"sim\"\n\n[backend.sim]\ngpu_vram_mib = {vram}\ngpu_bandwidth_gb_per_s = 500.0\nseed = 1\n\n\
         [sweep]\n{sweep}\n[workload]\n{workload}\n[measure]\nrepetitions = {REPS}\nwarmup = 0\n",
        model = quoted(&model.path),
        vram = m.vram_bytes >> 20,
    );
    Experiment {
        id: ExperimentId::Offload,
        parts: vec![part("offload-simulated", text, 2.0 + s.part_overhead_s)],
        simulated: true,
        notes: vec![
            "SIMULATED: no GPU on this machine; the sim backend's declared GPU (500 GB/s) over this model's real layers".into(),
        ],
    }
}

fn concurrency(m: &MachineSide, model: &ModelSide, s: &ProbeSpeeds) -> Planned {
    let Some(server) = &m.llama_server else {
        return Planned::NotHere {
            id: ExperimentId::Concurrency,
            reason: "llama-server is not built here (not on PATH, no LMTUNE_LLAMA_SERVER, nothing in ~/.cache/lmtune/llama-server; build it with scripts/build-llama-server.sh)".into(),
        };
    };
    let parts = [512u32, 2048]
        .iter()
        .map(|&b| {
            let text = format!(
                "# Written by `lmtune advise`: concurrent clients through llama-server.\n\
                 schema = 1\nname = \"advise-concurrency-{b}\"\n\n[model]\npath = {model}\n\n\
                 [backend]\nkind = \"openai\"\n\n[backend.openai]\ncommand = [{server}, \"-m\", \"{{model}}\", \"--host\", \"{{host}}\", \"--port\", \"{{port}}\", \
                 \"-ngl\", \"{{n_gpu_layers}}\", \"-c\", \"{{n_ctx_total}}\", \"-np\", \"{{parallel}}\", \"-b\", \"{{n_batch}}\", \"-ub\", \"{{n_ubatch}}\", \
                 \"-t\", \"{{threads}}\", \"-tb\", \"{{threads}}\", \"--no-webui\", \"--no-warmup\"]\nready_timeout_s = 120\nstall_timeout_s = 30\n\n\
                 [sweep]\nn_gpu_layers = 0\nn_ctx = 1024\nn_batch = {b}\nn_ubatch = {b}\nthreads = \"physical\"\nconcurrency = [1, 4]\n\n\
                 [workload]\nn_prompt = [{PP}]\nn_gen = [{TG}]\n\n[measure]\nrepetitions = {REPS}\nwarmup = {WARMUP}\n",
                model = quoted(&model.path),
                server = quoted(server),
            );
            let one = s.point_s(m.physical_cores, m.physical_cores, (PP, 0, 0), REPS)
                + s.point_s(m.physical_cores, m.physical_cores, (0, TG, 0), REPS);
            part(&format!("concurrency-{b}"), text, 5.0 * one + 5.0 + s.part_overhead_s)
        })
        .collect();
    Planned::Run(Experiment {
        id: ExperimentId::Concurrency,
        parts,
        simulated: false,
        notes: vec![format!(
            "{} with 1 and 4 slots, n_ubatch = n_batch",
            server.display()
        )],
    })
}

/// Keeps the experiments that fit `budget_s` in order (a skipped one leaves
/// its time to the next); the rest become `NotHere` with their estimate.
pub fn fit_budget(planned: Vec<Planned>, budget_s: f64) -> Vec<Planned> {
    let mut left = budget_s;
    planned
        .into_iter()
        .map(|p| match p {
            Planned::Run(e) if e.estimate_s() <= left => {
                left -= e.estimate_s();
                Planned::Run(e)
            }
            Planned::Run(e) => Planned::NotHere {
                id: e.id,
                reason: format!(
                    "would take about {:.0} s, more than the {:.0} s left of the time budget (give a larger --time-budget)",
                    e.estimate_s(),
                    left.max(0.0)
                ),
            },
            other => other,
        })
        .collect()
}

#[cfg(test)]
#[path = "experiments_tests.rs"]
mod tests;
