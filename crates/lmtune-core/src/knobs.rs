//! The settings a user picks (knobs) and the test run at each point.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Element type of the K or V cache, as llama.cpp's `--cache-type-k/-v` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KvType {
    F32,
    F16,
    Bf16,
    Q8_0,
    Q4_0,
    Q4_1,
    #[serde(rename = "iq4_nl")]
    Iq4Nl,
    Q5_0,
    Q5_1,
}

impl KvType {
    pub const ALL: [KvType; 9] = [
        KvType::F32,
        KvType::F16,
        KvType::Bf16,
        KvType::Q8_0,
        KvType::Q4_0,
        KvType::Q4_1,
        KvType::Iq4Nl,
        KvType::Q5_0,
        KvType::Q5_1,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            KvType::F32 => "f32",
            KvType::F16 => "f16",
            KvType::Bf16 => "bf16",
            KvType::Q8_0 => "q8_0",
            KvType::Q4_0 => "q4_0",
            KvType::Q4_1 => "q4_1",
            KvType::Iq4Nl => "iq4_nl",
            KvType::Q5_0 => "q5_0",
            KvType::Q5_1 => "q5_1",
        }
    }

    /// The ggml tensor type the cache is stored as.
    pub fn ggml_type(self) -> lmtune_gguf::GgmlType {
        lmtune_gguf::GgmlType(match self {
            KvType::F32 => 0,
            KvType::F16 => 1,
            KvType::Bf16 => 30,
            KvType::Q8_0 => 8,
            KvType::Q4_0 => 2,
            KvType::Q4_1 => 3,
            KvType::Iq4Nl => 20,
            KvType::Q5_0 => 6,
            KvType::Q5_1 => 7,
        })
    }

    /// Quantized types need flash attention for the V cache in llama.cpp.
    pub fn is_quantized(self) -> bool {
        !matches!(self, KvType::F32 | KvType::F16 | KvType::Bf16)
    }
}

impl fmt::Display for KvType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A cache type name that is none of [`KvType::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown cache type {0:?}; use one of {names}", names = KvType::ALL.map(KvType::as_str).join(", "))]
pub struct UnknownKvType(pub String);

impl FromStr for KvType {
    type Err = UnknownKvType;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        KvType::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownKvType(s.to_string()))
    }
}

/// llama.cpp's flash attention setting (`-fa on|off|auto`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FlashAttn {
    Auto,
    On,
    Off,
}

impl FlashAttn {
    pub fn as_str(self) -> &'static str {
        match self {
            FlashAttn::Auto => "auto",
            FlashAttn::On => "on",
            FlashAttn::Off => "off",
        }
    }
}

impl fmt::Display for FlashAttn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parameters fixed when the model is loaded. Points sharing them share one
/// loaded model.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LoadParams {
    /// Layers offloaded to the GPU, exactly as passed to llama.cpp
    /// (`n_layer + 1` offloads everything, output layer included).
    pub n_gpu_layers: u32,
    pub use_mmap: bool,
    /// llama.cpp's `--n-cpu-moe N` (llama-bench `-ncmoe`): the routed
    /// experts of blocks 0..N stay in host memory wherever their block runs.
    /// Left out of records when 0, so older files read the same.
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub n_cpu_moe: u32,
    /// llama.cpp's `--cpu-moe`: the routed experts of every block stay in
    /// host memory. Left out of records when off.
    #[serde(default, skip_serializing_if = "is_no")]
    pub cpu_moe: bool,
    /// llama-bench's `-ot` (llama.cpp's `--override-tensor`) in its syntax,
    /// `"regex=BUFT;regex=BUFT"`, BUFT = `CPU` or a device name: tensors whose
    /// name matches go to that buffer type. Empty (left out of records) for
    /// none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub override_tensor: String,
    /// `n_gpu_layers = "fit"`: llama.cpp's own fit (`common_fit_params`)
    /// chose the offload and overrides at load time; a record keeps what it
    /// chose in the fields above. Left out of records when off.
    #[serde(default, skip_serializing_if = "is_no")]
    pub fit: bool,
}

impl LoadParams {
    /// `n_gpu_layers` and mmap, everything else at llama.cpp's default (no
    /// tensor placed by hand).
    pub fn new(n_gpu_layers: u32, use_mmap: bool) -> LoadParams {
        LoadParams {
            n_gpu_layers,
            use_mmap,
            n_cpu_moe: 0,
            cpu_moe: false,
            override_tensor: String::new(),
            fit: false,
        }
    }

    /// The same load with the routed experts of blocks `0..n` in host memory.
    pub fn with_n_cpu_moe(mut self, n: u32) -> LoadParams {
        self.n_cpu_moe = n;
        self
    }

    /// Blocks whose routed experts stay in host memory through `n_cpu_moe`
    /// or `cpu_moe` (a model with `n_layer` blocks). `override_tensor` is
    /// not counted: its patterns are the user's.
    pub fn experts_on_host(&self, n_layer: u64) -> u64 {
        if self.cpu_moe {
            n_layer
        } else {
            u64::from(self.n_cpu_moe).min(n_layer)
        }
    }

    /// Whether any tensor is placed by hand.
    pub fn has_overrides(&self) -> bool {
        self.n_cpu_moe > 0 || self.cpu_moe || !self.override_tensor.is_empty()
    }

    /// The buffer-type overrides llama.cpp gets, in llama-bench's order: the
    /// `-ot` patterns, then `--cpu-moe`'s, then one per block of
    /// `--n-cpu-moe` (llama.cpp takes the first pattern a tensor matches).
    /// `override_tensor` was checked when the scenario was read.
    pub fn tensor_overrides(&self) -> Vec<TensorOverride> {
        let mut out = parse_override_tensor(&self.override_tensor).unwrap_or_default();
        if self.cpu_moe {
            out.push(TensorOverride::cpu(EXPS.to_string()));
        }
        out.extend((0..self.n_cpu_moe).map(|i| TensorOverride::cpu(format!("blk\\.{i}{EXPS}"))));
        out
    }

    /// The `-ot` entries alone (no `--cpu-moe` / `--n-cpu-moe` patterns).
    pub fn tensor_overrides_of_text(&self) -> Vec<TensorOverride> {
        parse_override_tensor(&self.override_tensor).unwrap_or_default()
    }

    /// ` n_cpu_moe=N`, ` cpu_moe`, ` ot=…` for the overrides that are set,
    /// else nothing: labels of dense points stay as they were.
    pub fn overrides_label(&self) -> String {
        let mut s = String::new();
        if self.n_cpu_moe > 0 {
            s.push_str(&format!(" n_cpu_moe={}", self.n_cpu_moe));
        }
        if self.cpu_moe {
            s.push_str(" cpu_moe");
        }
        if !self.override_tensor.is_empty() {
            s.push_str(&format!(" ot={}", self.override_tensor));
        }
        if self.fit {
            s.push_str(" fit");
        }
        s
    }
}

/// llama.cpp's pattern of the routed-expert tensors (common.h's
/// `LLM_FFN_EXPS_REGEX`), as `--cpu-moe` passes it; `--n-cpu-moe N` prefixes
/// `blk\.I` for each block I < N.
pub const EXPS: &str = "\\.ffn_(up|down|gate|gate_up)_(ch|)exps";

/// One `-ot` entry: tensors whose name matches `pattern` (a regex searched
/// anywhere in the name, as llama.cpp's `std::regex_search`) go to the
/// buffer type `buft` (`CPU`, or a device name such as `CUDA0`, `Vulkan0`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorOverride {
    pub pattern: String,
    pub buft: String,
}

impl TensorOverride {
    fn cpu(pattern: String) -> TensorOverride {
        TensorOverride {
            pattern,
            buft: "CPU".into(),
        }
    }

    /// Whether the buffer type is host memory.
    pub fn is_cpu(&self) -> bool {
        self.buft.eq_ignore_ascii_case("cpu")
    }
}

/// What is wrong with one entry of an `override_tensor` text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OverrideTensorError {
    #[error("{entry:?} has no buffer type: write PATTERN=BUFT, e.g. 'blk\\.[0-9]+\\.ffn_.*_exps=CPU' (a TOML literal string)")]
    NoBufferType { entry: String },
    #[error("{entry:?} needs both a pattern and a buffer type (PATTERN=BUFT)")]
    Incomplete { entry: String },
    #[error("the pattern {pattern:?} does not compile: {why}")]
    BadPattern { pattern: String, why: String },
}

/// Parses llama-bench's `-ot` syntax, `"regex=BUFT;regex=BUFT"` (a `,` may
/// be part of a regex, so llama-server's `,` separator is not read here).
/// Empty text is no override.
/// Errors say what is wrong with which entry.
pub fn parse_override_tensor(text: &str) -> Result<Vec<TensorOverride>, OverrideTensorError> {
    let mut out = Vec::new();
    for entry in text.split(';').map(str::trim).filter(|e| !e.is_empty()) {
        let Some((pattern, buft)) = entry.rsplit_once('=') else {
            return Err(OverrideTensorError::NoBufferType {
                entry: entry.to_string(),
            });
        };
        let (pattern, buft) = (pattern.trim(), buft.trim());
        if pattern.is_empty() || buft.is_empty() {
            return Err(OverrideTensorError::Incomplete {
                entry: entry.to_string(),
            });
        }
        if let Err(e) = regex::Regex::new(pattern) {
            let first = e.to_string();
            let why = first.lines().last().unwrap_or("").trim();
            return Err(OverrideTensorError::BadPattern {
                pattern: pattern.to_string(),
                why: why.to_string(),
            });
        }
        out.push(TensorOverride {
            pattern: pattern.to_string(),
            buft: buft.to_string(),
        });
    }
    Ok(out)
}

/// `override_tensor` text in one spelling (`;` between entries, no spaces),
/// so two spellings of one placement are one knob value.
pub fn canonical_override_tensor(text: &str) -> Result<String, OverrideTensorError> {
    Ok(parse_override_tensor(text)?
        .iter()
        .map(|o| format!("{}={}", o.pattern, o.buft))
        .collect::<Vec<_>>()
        .join(";"))
}

fn is_zero_u32(n: &u32) -> bool {
    *n == 0
}

/// Parameters of one llama.cpp context (one point creates one context).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ContextParams {
    pub n_ctx: u32,
    pub n_batch: u32,
    pub n_ubatch: u32,
    pub threads: u32,
    pub type_k: KvType,
    pub type_v: KvType,
    pub flash_attn: FlashAttn,
    /// llama.cpp's op offload (on by default; llama-bench `-nopo 1` turns it
    /// off): with a GPU, the large-batch matrix products of layers kept on
    /// the CPU run on the GPU, their weights copied over for each batch.
    /// Left out of records when on, so older result files read the same.
    #[serde(default = "yes", skip_serializing_if = "is_yes")]
    pub op_offload: bool,
    /// llama.cpp's full-size sliding-window cache (`swa_full`). Off, as
    /// llama-bench and llama-server run (`llama_context_default_params`
    /// turns it on): the sliding-window layers of Gemma 2/3, gpt-oss,
    /// Cohere2, … then keep `window + n_ubatch` cells, not `n_ctx`. No effect
    /// on models without such layers. Left out of records when off; records
    /// written before lmtune set it have no field and read as off, though
    /// they ran with llama.cpp's default (on): re-run sliding-window models.
    #[serde(default, skip_serializing_if = "is_no")]
    pub swa_full: bool,
}

impl ContextParams {
    /// The micro-batch llama.cpp really runs with: it clamps `n_ubatch` to
    /// `n_batch` and `n_batch` to `n_ctx`.
    pub fn effective_ubatch(&self) -> u32 {
        self.n_ubatch.min(self.n_batch).min(self.n_ctx)
    }

    /// " op_offload=off" when op offload is off, else nothing: labels of
    /// points stay as they were for the default.
    pub fn op_offload_label(&self) -> &'static str {
        if self.op_offload {
            ""
        } else {
            " op_offload=off"
        }
    }

    /// " swa_full=on" when the full-size sliding-window cache is on, else
    /// nothing (the default, as llama-bench runs).
    pub fn swa_full_label(&self) -> &'static str {
        if self.swa_full {
            " swa_full=on"
        } else {
            ""
        }
    }

    /// The knobs that are only part of a label when they differ from
    /// llama.cpp's measuring default: ` op_offload=off`, ` swa_full=on`.
    pub fn non_default_label(&self) -> String {
        format!("{}{}", self.op_offload_label(), self.swa_full_label())
    }
}

/// The knobs of a point in one line, as the progress line and `compare`
/// print them: `ngl=… [n_ctx=…] n_batch=… n_ubatch=… threads=… type_k=…
/// type_v=… fa=…`, plus ` op_offload=off` / ` swa_full=on` when they are
/// not the default.
pub fn knob_label(load: &LoadParams, ctx: &ContextParams, with_n_ctx: bool) -> String {
    let n_ctx = if with_n_ctx {
        format!(" n_ctx={}", ctx.n_ctx)
    } else {
        String::new()
    };
    let moe = load.overrides_label();
    format!(
        "ngl={}{moe}{n_ctx} n_batch={} n_ubatch={} threads={} type_k={} type_v={} fa={}{}",
        load.n_gpu_layers,
        ctx.n_batch,
        ctx.n_ubatch,
        ctx.threads,
        ctx.type_k,
        ctx.type_v,
        ctx.flash_attn,
        ctx.non_default_label()
    )
}

fn yes() -> bool {
    true
}

fn is_yes(b: &bool) -> bool {
    *b
}

fn is_no(b: &bool) -> bool {
    !*b
}

/// What is timed at a point, as in llama-bench: prompt processing of
/// `n_prompt` tokens, or generation of `n_gen` tokens, after `n_depth` tokens
/// already in the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Test {
    pub n_prompt: u32,
    pub n_gen: u32,
    pub n_depth: u32,
    /// Clients sending the request at once (servers only; 1 in-process).
    /// Left out of records when 1, so older result files read the same.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub concurrency: u32,
}

fn one() -> u32 {
    1
}

fn is_one(n: &u32) -> bool {
    *n == 1
}

impl Test {
    pub fn kind(&self) -> TestKind {
        if self.n_gen == 0 {
            TestKind::Pp
        } else if self.n_prompt == 0 {
            TestKind::Tg
        } else {
            TestKind::PpTg
        }
    }

    /// Tokens the test puts in the context: it must fit in `n_ctx`.
    pub fn tokens_in_context(&self) -> u64 {
        u64::from(self.n_prompt) + u64::from(self.n_gen) + u64::from(self.n_depth)
    }

    /// Tokens that count for throughput (t/s = tokens / time).
    pub fn timed_tokens(&self) -> u32 {
        self.n_prompt + self.n_gen
    }

    /// llama-bench's label: `pp512`, `tg128`, `pp512+tg128`, with `@ d4096`
    /// for depth and ` x4` for four concurrent clients.
    pub fn label(&self) -> String {
        let mut label = match self.kind() {
            TestKind::Pp => format!("pp{}", self.n_prompt),
            TestKind::Tg => format!("tg{}", self.n_gen),
            TestKind::PpTg => format!("pp{}+tg{}", self.n_prompt, self.n_gen),
        };
        if self.n_depth > 0 {
            label.push_str(&format!(" @ d{}", self.n_depth));
        }
        if self.concurrency > 1 {
            label.push_str(&format!(" x{}", self.concurrency));
        }
        label
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TestKind {
    Pp,
    Tg,
    #[serde(rename = "pp+tg")]
    PpTg,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_match_llama_bench() {
        let pp = Test {
            n_prompt: 512,
            n_gen: 0,
            n_depth: 0,
            concurrency: 1,
        };
        let tg = Test {
            n_prompt: 0,
            n_gen: 128,
            n_depth: 4096,
            concurrency: 4,
        };
        assert_eq!(pp.label(), "pp512");
        assert_eq!(tg.label(), "tg128 @ d4096 x4");
        // Concurrency 1 is left out, so records keep their old shape and keys.
        assert!(!serde_json::to_string(&pp).unwrap().contains("concurrency"));
        let old: Test = serde_json::from_str(r#"{"n_prompt":1,"n_gen":0,"n_depth":0}"#).unwrap();
        assert_eq!(old.concurrency, 1);
        assert_eq!(tg.tokens_in_context(), 4224);
    }

    #[test]
    fn kv_type_parses_case_insensitively_and_rejects_unknown() {
        assert_eq!("Q8_0".parse::<KvType>(), Ok(KvType::Q8_0));
        assert!("q9_9"
            .parse::<KvType>()
            .unwrap_err()
            .to_string()
            .contains("q8_0"));
    }
}
