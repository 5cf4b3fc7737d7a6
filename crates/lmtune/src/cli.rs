//! The command line, and nothing else.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

mod history;
mod report;
pub use history::*;
pub use report::*;

const AFTER_HELP: &str = "\
Exit codes: 0 every point ok, 1 some points failed (their records say why) or, for compare,
a regression, 2 could not run (bad input), 130 interrupted (Ctrl-C / SIGTERM; the results so
far are complete and the run can be resumed).

Examples:
  lmtune run scenarios/quickstart.toml          sweep the quickstart scenario
  lmtune run my.toml --dry-run                  validate and list the points
  lmtune hw                                     show this machine's fingerprint
  lmtune plan -m model.gguf --vram 8GiB         what to offload, predicted
  lmtune compare results/base results/current   the regression gate
  lmtune advise -m model.gguf                   test common tuning advice on this machine";

/// `lmtune --version`: the crate version and the git commit it was built from.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("LMTUNE_GIT_COMMIT"),
    ")"
);

#[derive(Debug, Parser)]
#[command(name = "lmtune", version = VERSION, about = "Auto-tuning benchmark and planner for local LLM inference", after_help = AFTER_HELP)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a scenario file: sweep its settings and record tokens/s and memory per point.
    #[command(after_help = "Examples:
  lmtune run scenarios/quickstart.toml              sweep, results in results/<date>-<host>-<name>/
  lmtune run -m model.gguf                          llama-bench's default test (pp512, tg128)
  lmtune run my.toml --dry-run                      validate and list the points, predicted memory
  lmtune run my.toml --resume results/DIR           finish an interrupted run
  lmtune run my.toml --save-baseline main           keep this run as the baseline \"main\"
  lmtune run my.toml --shard 0/4 -o results/s0      one of four parts (0-based), for `lmtune merge`")]
    Run(RunArgs),
    /// Join the results of a scenario's shards (`run --shard I/N`) into one set.
    #[command(after_help = "Examples:
  lmtune merge results/s0 results/s1 -o results/all    exit 1 when points are missing or twice
  lmtune merge results/s* -o results/all --allow-partial")]
    Merge(MergeArgs),
    /// Print this machine's fingerprint, GPUs and measured memory bandwidth.
    #[command(after_help = "Examples:
  lmtune hw                       CPU, RAM, GPUs, bandwidth, as text
  lmtune hw --json                the same for scripts")]
    Hw(HwArgs),
    /// Describe a GGUF model: shape, bytes per layer, KV cache per token.
    #[command(after_help = "Examples:
  lmtune inspect models/SmolLM2-135M-Instruct.Q4_1.gguf
  lmtune inspect model.gguf --json")]
    Inspect(InspectArgs),
    /// Predict memory and speed for every GPU offload, and recommend settings.
    #[command(after_help = "Examples:
  lmtune plan -m model.gguf --vram 8GiB --ctx 8192    what fits on an 8 GiB card, predicted
  lmtune plan -m model.gguf --vram 0                  CPU only, with llama.cpp's dry run
  lmtune plan -m model.gguf --llama-fit --ggml-backend libggml-cuda.so
                                                      beside llama.cpp's own fit (llama-server --fit)
  lmtune plan -m model.gguf --calibration cal.json    with a fit from `lmtune fit -o cal.json`")]
    Plan(PlanArgs),
    /// Write a synthetic GGUF model (random weights, real layout) of any size.
    #[command(after_help = "Examples:
  lmtune synth --like llama-7b --quant q4_K -o /tmp/7b.gguf
  lmtune synth --like gemma3-270m --quant q8_0 -o /tmp/gemma3.gguf
  lmtune synth --layers 4 --embd 512 --heads 8 -o /tmp/tiny.gguf")]
    Synth(SynthArgs),
    /// Regression gate: compare two result sets point by point (exit 1 on a regression).
    #[command(after_help = "Examples:
  lmtune compare results/base results/current               exit 1 on a regression
  lmtune compare --baseline main results/current            against a saved baseline
  lmtune compare base.json current --format junit > gate.xml   for CI")]
    Compare(CompareArgs),
    /// Convert results (lmtune or llama-bench files) to another format.
    #[command(after_help = "Examples:
  lmtune export results/DIR                       llama-bench CSV on standard output
  lmtune export results/DIR --format md           the Markdown table
  lmtune export bench.json --format jsonl -o results.jsonl   llama-bench output as lmtune records")]
    Export(ExportArgs),
    /// Draw charts and write index.html + summary.md from result files.
    #[command(after_help = "Examples:
  lmtune report results/DIR -o reports/NAME
  lmtune report results/a results/b -o reports/hw     two machines: a hardware comparison
  lmtune report results/DIR -o /tmp/r --charts tg_vs,memory")]
    Report(ReportArgs),
    /// Fit memory and throughput models to results (errors reported leave-one-out).
    #[command(after_help = "Examples:
  lmtune fit results/DIR                    coefficients with confidence intervals and held-out errors
  lmtune fit results/DIR -o cal.json        a calibration for `lmtune plan --calibration`")]
    Fit(FitArgs),
    /// Find the fastest setting of a scenario's space, measuring only what could win.
    #[command(after_help = "Examples:
  lmtune tune my.toml --objective tg                  fastest generation in the scenario's space
  lmtune tune --model model.gguf --time-budget 5m     the default space, within five minutes
  lmtune tune my.toml --vram 8GiB --objective balanced")]
    Tune(TuneArgs),
    /// Test common tuning advice (threads, batch, context, KV cache, offload,
    /// quantization) on this machine and model: holds, does not hold, or
    /// cannot be tested here, with the measured effect and what to set instead.
    #[command(after_help = "Examples:
  lmtune advise -m model.gguf                             5 minutes of experiments, report in reports/advise/<host>/
  lmtune advise -m model.gguf --time-budget 2m -o /tmp/a  a shorter plan
  lmtune advise -m model.gguf --vram 8GiB --json          the verdicts as JSON for scripts

Experiments that do not fit the budget, or need what this machine lacks (a GPU, SMT,
llama-server), are listed with the reason; without a GPU the offload figures come from the
sim backend and are labelled SIMULATED.")]
    Advise(AdviseArgs),
    /// Greedy-decode a prompt on one backend and print the tokens: checks that
    /// two backends compute the same model (same weights, same first tokens).
    #[command(after_help = "Examples:
  lmtune generate -m model.gguf --prompt \"The capital of France is\"
  lmtune generate -m model.gguf --backend candle --prompt \"Hello\"")]
    Generate(GenerateArgs),
    /// Performance history: store runs per commit, gate a commit against its branch's last runs, find change points.
    #[command(after_help = "Examples:
  lmtune history add results/DIR                         file a run under git's HEAD, branch and commit time
  lmtune history add bench.json --commit abc123 --branch main --time 2026-12-01T09:00:00Z
  lmtune history check                                   HEAD's runs against the last 10 of its branch (exit 1 on a regression)
  lmtune history check --commit abc123 --window 20 --format md
  lmtune history check --format junit > gate.xml         a branch without runs is judged against main up to its merge base
  lmtune history changes --branch main --last 50         the commits where a point's level shifted (E-Divisive means)
  lmtune history export --format bencher                 the newest commit as Bencher Metric Format JSON
  lmtune history list --db ci/history.sqlite             the series and their runs

The store is one SQLite file, .lmtune/history.sqlite unless --db says otherwise. A series is one
branch in one environment (machine, GPUs, backend build, model file): runs from different
environments are never compared. The run is the unit: each run's mean t/s is one sample, and a
point with fewer than 3 earlier runs is Inconclusive.")]
    History(HistoryArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(after_help = "Examples:
  lmtune completions bash > ~/.local/share/bash-completion/completions/lmtune
  lmtune completions zsh > ~/.zfunc/_lmtune
  lmtune completions fish > ~/.config/fish/completions/lmtune.fish")]
    Completions(CompletionsArgs),
    /// Worker mode (internal): hosts one backend, speaks JSON lines on stdin/stdout.
    #[command(name = "__worker", hide = true)]
    Worker(WorkerArgs),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Scenario file (TOML, schema 1; see README.md "Scenario files").
    /// Without one, --model runs llama-bench's default test: pp512 and
    /// tg128, all layers offloaded, the physical cores.
    #[arg(required_unless_present = "model")]
    pub scenario: Option<PathBuf>,
    /// Directory for results.jsonl / results.csv
    /// [default: results/<date>-<host>-<scenario>/]
    #[arg(long, short, conflicts_with = "resume")]
    pub out: Option<PathBuf>,
    /// Continue an interrupted run in DIR: only points without an `ok`
    /// record are run. The scenario and the machine must be the same.
    #[arg(long, value_name = "DIR")]
    pub resume: Option<PathBuf>,
    /// Load a ggml backend library (libggml-cuda.so, …) at run time, before
    /// the model; repeatable. Also from LMTUNE_GGML_BACKENDS (':'-separated).
    #[arg(long, value_name = "PATH")]
    pub ggml_backend: Vec<PathBuf>,
    /// After the run, save its records as the named baseline (in
    /// $LMTUNE_BASELINE_DIR, default baselines/) for `lmtune compare --baseline NAME`.
    #[arg(long, value_name = "NAME")]
    pub save_baseline: Option<String>,
    /// With --save-baseline: keep this many runs in the baseline (the
    /// newest replace the oldest); the gate pools them, so run-to-run noise
    /// is part of the comparison.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub baseline_keep: usize,
    /// Limit the worker's address space (RLIMIT_AS), e.g. 2GiB; overrides
    /// [measure] worker_memory_limit. A point that needs more is recorded as `oom`.
    #[arg(long, value_name = "SIZE")]
    pub worker_memory_limit: Option<String>,
    /// Use this model file instead of the scenario's [model] path (or,
    /// without a scenario, measure it as llama-bench does by default).
    #[arg(long, short)]
    pub model: Option<PathBuf>,
    /// Validate the scenario and list its points without measuring.
    #[arg(long)]
    pub dry_run: bool,
    /// Show the backend's own logs (llama.cpp's loading and context messages).
    #[arg(long, short)]
    pub verbose: bool,
    /// Measure shard I of N (0-based, like Slurm array ids: 0/4 … 3/4); load groups stay whole.
    /// Without it: SLURM_ARRAY_TASK_ID, or JOB_COMPLETION_INDEX with --shard-count.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<String>,
    /// N, with the shard index from SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX.
    #[arg(long, value_name = "N")]
    pub shard_count: Option<u32>,
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The shards' results directories (each with plan.json and results.jsonl).
    #[arg(required = true)]
    pub dirs: Vec<PathBuf>,
    /// The merged results directory; it must not exist yet.
    #[arg(long, short)]
    pub out: PathBuf,
    /// Write the merge even with points missing or recorded twice (exit 0).
    #[arg(long)]
    pub allow_partial: bool,
}

#[derive(Debug, Args)]
pub struct HwArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Threads for the memory bandwidth test [default: physical cores].
    #[arg(long)]
    pub threads: Option<u32>,
    /// Skip the memory bandwidth test (about a second).
    #[arg(long)]
    pub no_bandwidth: bool,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// The GGUF model file.
    #[arg(long, short)]
    pub model: PathBuf,
    /// Backend to decode with: llama-cpp or candle.
    #[arg(long, default_value = "llama-cpp")]
    pub backend: String,
    /// The prompt, tokenized by the model's own tokenizer (llama.cpp's, for
    /// every backend, so all of them see the same token ids).
    #[arg(long, default_value = "The capital of France is")]
    pub prompt: String,
    /// Tokens to generate (greedy: the most likely one each time).
    #[arg(long, short, default_value_t = 16)]
    pub n: u32,
    /// Prompt chunk size (n_batch).
    #[arg(long, default_value_t = 512)]
    pub n_batch: u32,
    /// Layers on the GPU (candle: blocks on --offload-device).
    #[arg(long, default_value_t = 0)]
    pub n_gpu_layers: u32,
    /// candle: where offloaded blocks go: cuda:0, or cpu (a second CPU
    /// device, to check the split gives the same tokens without a GPU).
    #[arg(long)]
    pub offload_device: Option<String>,
    /// candle's thread pool size [default: physical cores].
    #[arg(long)]
    pub threads: Option<u32>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The GGUF model file.
    pub model: PathBuf,
    /// Print JSON (the full anatomy) instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The GGUF model file.
    #[arg(long, short)]
    pub model: PathBuf,
    /// GPU memory budget, e.g. 8GiB or 24GB; 0 for CPU only; "auto": free VRAM of GPU 0 (0 without one).
    #[arg(long, default_value = "auto")]
    pub vram: String,
    /// Host memory budget; "auto": available memory (MemAvailable).
    #[arg(long, default_value = "auto")]
    pub ram: String,
    /// Context length to plan for [default: 4096, or the trained context if smaller].
    #[arg(long)]
    pub ctx: Option<u64>,
    /// K cache type (f16, q8_0, q4_0, …).
    #[arg(long, default_value = "f16")]
    pub type_k: String,
    /// V cache type (a quantized one needs flash attention).
    #[arg(long, default_value = "f16")]
    pub type_v: String,
    /// Micro-batch size (llama.cpp's n_ubatch).
    #[arg(long, default_value_t = 512)]
    pub ubatch: u64,
    /// Plan without flash attention (larger compute buffers).
    #[arg(long)]
    pub no_flash_attn: bool,
    /// Plan with llama.cpp's full-size sliding-window cache (llama-server's
    /// --swa-full); off by default, as llama-bench and llama-server run.
    #[arg(long)]
    pub swa_full: bool,
    /// Plan without op offload (llama-server's --no-op-offload, llama-bench
    /// -nopo 1): with nothing offloaded, the GPU then gets no compute buffer
    /// for the prompt's matrix products.
    #[arg(long)]
    pub no_op_offload: bool,
    /// Skip llama.cpp's own dry run of the recommended setting (a model
    /// and context created with no_alloc, in a worker process): print the
    /// analytic model's figures only.
    #[arg(long)]
    pub no_dry_run: bool,
    /// Also run llama.cpp's own fit (common_fit_params, what
    /// `llama-server --fit` does) for the same context and print its choice
    /// (n_gpu_layers, tensor split, tensor overrides, n_ctx) and its dry run
    /// beside lmtune's. Its target: --vram less --headroom per GPU when
    /// --vram is given, else llama-server's 1 GiB left free.
    #[arg(long)]
    pub llama_fit: bool,
    /// Load a ggml backend library (libggml-cuda.so, …) into the dry run
    /// and fit workers; repeatable. Also from LMTUNE_GGML_BACKENDS.
    #[arg(long, value_name = "PATH")]
    pub ggml_backend: Vec<PathBuf>,
    /// Fraction of each budget kept free.
    #[arg(long, default_value_t = 0.1)]
    pub headroom: f64,
    /// GPU memory bandwidth in GB/s [default: from NVML, else 500 (assumed)].
    #[arg(long)]
    pub gpu_bandwidth: Option<f64>,
    /// Host memory bandwidth in GB/s [default: measured now].
    #[arg(long)]
    pub cpu_bandwidth: Option<f64>,
    /// A calibration from `lmtune fit -o FILE`: fitted memory and speed
    /// replace the defaults for the model it was fitted on.
    #[arg(long)]
    pub calibration: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SynthArgs {
    /// Start from a known shape: llama-1b, llama-3b, llama-7b, llama3-8b,
    /// llama-13b, llama-70b, gemma3-270m, qwen2.5-0.5b, qwen3-0.6b,
    /// phi3-mini, granite3-2b, gemma2-2b; mixtures of experts qwen3-30b-a3b
    /// (= qwen3moe-30b-a3b), gpt-oss-20b, mixtral-8x7b, olmoe-1b-7b,
    /// deepseek2-lite, qwen3moe-test (~1.3 GiB at q8_0); or ARCH-tiny (a
    /// 2-layer test model per --arch) and mixtral-tiny.
    #[arg(long)]
    pub like: Option<String>,
    /// llama.cpp architecture to write: llama (default), gemma3 (sliding
    /// window of 512 on 5 of every 6 layers), qwen2 (Q/K/V biases), qwen3
    /// (Q/K norms), phi3 (fused QKV and gate-up), granite (llama + scales),
    /// gemma2 (soft-capping, window on every other layer), qwen3moe (routed
    /// experts), gpt-oss (biased experts, attention sinks), deepseek2 (latent
    /// attention, shared experts), olmoe (full-width Q/K norms, experts).
    /// llama takes experts too (--experts/--experts-used: Mixtral's shape).
    /// Without --like, starts from ARCH-tiny.
    #[arg(long)]
    pub arch: Option<String>,
    /// Weight type: f32 f16 q4_0 q4_1 q5_0 q5_1 q8_0 q2_K q3_K q4_K q5_K q6_K.
    #[arg(long, default_value = "q4_0")]
    pub quant: String,
    /// Output file.
    #[arg(long, short)]
    pub output: PathBuf,
    /// A real model whose tokenizer is copied (so llama.cpp loads the file).
    #[arg(long, default_value = "models/SmolLM2-135M-Instruct.Q4_1.gguf")]
    pub donor: PathBuf,
    #[arg(long)]
    pub layers: Option<u64>,
    #[arg(long)]
    pub embd: Option<u64>,
    #[arg(long)]
    pub heads: Option<u64>,
    #[arg(long)]
    pub kv_heads: Option<u64>,
    #[arg(long)]
    pub ff: Option<u64>,
    #[arg(long)]
    pub head_dim: Option<u64>,
    /// Experts per layer (MoE architectures).
    #[arg(long)]
    pub experts: Option<u64>,
    /// Experts each token is routed to (MoE architectures).
    #[arg(long)]
    pub experts_used: Option<u64>,
    /// Hidden width of one expert (MoE architectures).
    #[arg(long)]
    pub expert_ff: Option<u64>,
    /// Vocabulary size (at least the donor's; padded with unused tokens).
    #[arg(long)]
    pub vocab: Option<u64>,
    /// Trained context length written into the metadata.
    #[arg(long)]
    pub ctx_train: Option<u64>,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// The backend and its settings as JSON (a `BackendSpec`).
    #[arg(long)]
    pub backend: String,
    #[arg(long)]
    pub verbose: bool,
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// BASE... CURRENT: result sets (results directories, results.jsonl, or
    /// llama-bench output from -o json, jsonl or csv); the last one is the
    /// current run, the others the base — several base runs are pooled per
    /// point, which captures run-to-run noise. With --baseline: CURRENT only.
    #[arg(value_name = "RESULTS", required = true)]
    pub paths: Vec<PathBuf>,
    /// Compare against a saved baseline instead of BASE.
    #[arg(long, value_name = "NAME")]
    pub baseline: Option<String>,
    /// Smallest relative change that counts, e.g. 5% or 0.05.
    #[arg(long, default_value = "5%")]
    pub threshold: String,
    /// Significance level of Welch's t-test.
    #[arg(long, default_value_t = 0.05)]
    pub alpha: f64,
    /// Metrics to judge: tg, pp, ttft (comma-separated).
    #[arg(long, default_value = "tg,pp")]
    pub metric: String,
    /// Output: table, md (for a PR comment), json, junit.
    #[arg(long, default_value = "table")]
    pub format: String,
    /// Compare results from different machines/backends/builds/models anyway
    /// (every row is labelled).
    #[arg(long)]
    pub allow_different_environment: bool,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Results: a results directory, results.jsonl, or llama-bench output.
    pub results: PathBuf,
    /// Output format: llama-bench-csv, llama-bench-json, csv, jsonl, md (the Markdown table).
    #[arg(long, default_value = "llama-bench-csv")]
    pub format: String,
    /// Write here instead of standard output (csv and jsonl: a new file,
    /// never overwritten).
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct FitArgs {
    /// Result sets: results directories, results.jsonl, or llama-bench output.
    #[arg(required = true)]
    pub results: Vec<PathBuf>,
    /// The model file, for the memory model's structural terms
    /// [default: models/NAME or models/synth/NAME, by the records' file name].
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Save the calibration as JSON.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct AdviseArgs {
    /// The GGUF model to test the advice on.
    #[arg(long, short)]
    pub model: PathBuf,
    /// GPU memory to plan offload for, e.g. 8GiB [default: the GPU's, or
    /// 8GiB for the simulated one when there is no GPU].
    #[arg(long, value_name = "SIZE")]
    pub vram: Option<String>,
    /// Time for the experiments, e.g. 90s, 5m; those that would not fit are
    /// skipped and listed.
    #[arg(long, default_value = "5m", value_name = "DURATION")]
    pub time_budget: String,
    /// Report directory (created; must not exist) [default: reports/advise/<host>/].
    #[arg(long, short)]
    pub out: Option<PathBuf>,
    /// Print advise.json on standard output instead of the summary.
    #[arg(long)]
    pub json: bool,
    /// Show the backend's own logs.
    #[arg(long, short)]
    pub verbose: bool,
}

#[derive(Debug, Args)]
pub struct TuneArgs {
    /// The scenario whose sweep axes are the search space. Without one,
    /// --model is tuned over a default CPU space: thread counts up to the
    /// logical cores, n_batch {256, 512, 2048}, n_ubatch {64, 128, 256, 512}
    /// (valid combinations), at --ctx.
    #[arg(required_unless_present = "model")]
    pub scenario: Option<PathBuf>,
    /// What to maximize: tg (generation t/s), pp (prompt processing t/s), or
    /// balanced: t/s of a whole request, its prompt (the pp test) then its
    /// generation (the tg test), at one setting.
    #[arg(long, default_value = "tg")]
    pub objective: String,
    /// The model to tune (replaces the scenario's [model] path when both are given).
    #[arg(long, short)]
    pub model: Option<PathBuf>,
    /// Without a scenario: the context to tune for [default: 4096, or the
    /// trained context if smaller].
    #[arg(long, conflicts_with = "scenario")]
    pub ctx: Option<u32>,
    /// Without a scenario: the backend (llama-cpp or candle).
    #[arg(long, default_value = "llama-cpp", conflicts_with = "scenario")]
    pub backend: String,
    /// GPU memory budget, e.g. 8GiB: with several n_gpu_layers in the space,
    /// the tuner looks for the largest that stays within it (and within the
    /// device: a point that runs out of memory does not fit), starting where
    /// the memory model predicts the boundary, then tunes at that offload.
    /// Default: the scenario's `[budget] vram`.
    #[arg(long, value_name = "SIZE")]
    pub vram: Option<String>,
    /// Stop measuring new points once this much measuring time is spent,
    /// e.g. 90s, 10m, 1h; the best so far is recommended.
    #[arg(long, value_name = "DURATION")]
    pub time_budget: Option<String>,
    /// Results directory [default: results/<date>-<host>-<scenario>-tune-<objective>/].
    #[arg(long, short)]
    pub out: Option<PathBuf>,
    /// Measure at most this many points.
    #[arg(long)]
    pub max_points: Option<usize>,
    /// How close to the best is good enough, e.g. 3%: a runner-up is
    /// measured again only while it could still beat the recommendation by
    /// more than this (its 95% interval and the recommendation's combined);
    /// back to back, it is settled once the chance that it is faster by more
    /// than this is under 10%.
    #[arg(long, default_value = "3%", value_name = "PERCENT")]
    pub tolerance: String,
    /// Check the recommendation against a full grid of the same space (a
    /// results directory or file from `lmtune run`): the grid's best setting
    /// and the recommendation are measured again back to back (alternating,
    /// --check-rounds times) so the ratio is not the drift between two runs.
    /// These measurements go to check.jsonl, not to the tuner's results.
    #[arg(long, value_name = "RESULTS")]
    pub against: Option<PathBuf>,
    /// Load a ggml backend library (libggml-cuda.so, …) at run time, before
    /// the model; repeatable. Also from LMTUNE_GGML_BACKENDS (':'-separated)
    #[arg(long, value_name = "PATH")]
    pub ggml_backend: Vec<PathBuf>,
    /// With --against: back-to-back rounds (each measures both settings).
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub check_rounds: usize,
    /// Show the backend's own logs.
    #[arg(long, short)]
    pub verbose: bool,
}

#[cfg(test)]
#[path = "cli_tests.rs"]
mod tests;
