//! Synthetic models: a real architecture's tensor layout with random weights,
//! so sweeps can use 1B/7B/13B/70B shapes with no download.
//!
//! Timings on them are real — the same kernels run over the same number of
//! bytes — but the generated text is noise. Quantized blocks get small, sane
//! scales (random bits would make NaNs and change the timing), and the
//! tokenizer is copied from a real model so llama.cpp loads the file; the
//! vocabulary size is therefore the donor's.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use crate::reader::{GgufFile, MetadataValue};
use crate::types::GgmlType;
use crate::writer::{write_gguf, TensorSpec, WriteError};
use crate::{GgufError, SYNTHETIC_KEY};

mod arch;
mod presets;
mod weights;

pub use arch::SynthArch;
use arch::{arch_metadata, layer_tensors, Dims, LayerTensor};
pub use presets::{preset, PRESETS};
use weights::block_pool;

/// Routed experts of a mixture-of-experts model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SynthMoe {
    /// Experts per layer (`expert_count`).
    pub n_expert: u64,
    /// Experts each token goes through (`expert_used_count`).
    pub n_expert_used: u64,
    /// Hidden width of one expert (`expert_feed_forward_length`).
    pub n_ff_exp: u64,
    /// Shared experts every token goes through (`expert_shared_count`;
    /// deepseek2).
    pub n_expert_shared: u64,
    /// Leading blocks with a dense FFN of n_ff instead of experts
    /// (`leading_dense_block_count`; deepseek2).
    pub n_layer_dense_lead: u64,
}

/// Multi-head latent attention (deepseek2): the head dimension of the shape
/// is the query/key head (`key_length_mla`, no-RoPE part + RoPE part).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SynthMla {
    /// Rank of the query compression; 0: a full `attn_q` instead.
    pub q_lora_rank: u64,
    /// Rank of the joint KV compression (what the cache holds per token).
    pub kv_lora_rank: u64,
    /// The RoPE part of each query/key head (`rope.dimension_count`).
    pub rope_dim: u64,
    /// Value head dimension (`value_length_mla`).
    pub v_head_dim: u64,
}

/// The shape of a synthetic model.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthShape {
    pub arch: SynthArch,
    pub n_layer: u64,
    pub n_embd: u64,
    pub n_head: u64,
    pub n_head_kv: u64,
    pub n_ff: u64,
    /// Head dimension; default `n_embd / n_head`.
    pub head_dim: Option<u64>,
    pub n_ctx_train: u64,
    /// Sliding window and pattern (every n-th layer dense), written as
    /// metadata; llama.cpp's `llama` architecture itself ignores them, and
    /// for gemma3 only the window is written (llama.cpp's pattern is 6).
    pub sliding_window: Option<(u64, u64)>,
    /// Vocabulary size; `None`: the donor's. Larger than the donor's pads the
    /// tokenizer with unused tokens (smaller would break its merges).
    pub n_vocab: Option<u64>,
    /// Routed experts; required by (and only used by) MoE architectures.
    pub moe: Option<SynthMoe>,
    /// Latent attention; required by (and only used by) deepseek2.
    pub mla: Option<SynthMla>,
}

impl SynthShape {
    /// A shape with no sliding window, no experts and the donor's vocabulary.
    #[allow(clippy::too_many_arguments)]
    pub const fn dense(
        arch: SynthArch,
        n_layer: u64,
        n_embd: u64,
        n_head: u64,
        n_head_kv: u64,
        n_ff: u64,
        head_dim: Option<u64>,
        n_ctx_train: u64,
    ) -> SynthShape {
        SynthShape {
            arch,
            n_layer,
            n_embd,
            n_head,
            n_head_kv,
            n_ff,
            head_dim,
            n_ctx_train,
            sliding_window: None,
            n_vocab: None,
            moe: None,
            mla: None,
        }
    }

    pub const fn with_window(mut self, window: u64, pattern: u64) -> SynthShape {
        self.sliding_window = Some((window, pattern));
        self
    }

    pub const fn with_experts(
        mut self,
        n_expert: u64,
        n_expert_used: u64,
        n_ff_exp: u64,
    ) -> SynthShape {
        self.moe = Some(SynthMoe {
            n_expert,
            n_expert_used,
            n_ff_exp,
            n_expert_shared: 0,
            n_layer_dense_lead: 0,
        });
        self
    }

    /// Shared experts and leading dense blocks, after [`Self::with_experts`].
    pub const fn with_shared_experts(
        mut self,
        n_expert_shared: u64,
        n_layer_dense_lead: u64,
    ) -> SynthShape {
        if let Some(m) = &mut self.moe {
            m.n_expert_shared = n_expert_shared;
            m.n_layer_dense_lead = n_layer_dense_lead;
        }
        self
    }

    pub const fn with_mla(
        mut self,
        q_lora_rank: u64,
        kv_lora_rank: u64,
        rope_dim: u64,
        v_head_dim: u64,
    ) -> SynthShape {
        self.mla = Some(SynthMla {
            q_lora_rank,
            kv_lora_rank,
            rope_dim,
            v_head_dim,
        });
        self
    }
}

/// llama.cpp's `general.file_type` for a model quantized to `t`.
fn file_type_of(t: GgmlType) -> u32 {
    match t.0 {
        0 => 0,
        1 => 1,
        2 => 2,
        3 => 3,
        6 => 8,
        7 => 9,
        8 => 7,
        10 => 10,
        11 => 12,
        12 => 15,
        13 => 17,
        14 => 18,
        30 => 32,
        _ => 2,
    }
}

/// Weight types the generator can fill with valid blocks.
pub const SUPPORTED_QUANTS: &[&str] = &[
    "f32", "f16", "q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q2_K", "q3_K", "q4_K", "q5_K", "q6_K",
];

pub fn quant_type(name: &str) -> Option<GgmlType> {
    let id = match name.to_ascii_lowercase().as_str() {
        "f32" => 0,
        "f16" => 1,
        "q4_0" => 2,
        "q4_1" => 3,
        "q5_0" => 6,
        "q5_1" => 7,
        "q8_0" => 8,
        "q2_k" => 10,
        "q3_k" => 11,
        "q4_k" | "q4_k_m" => 12,
        "q5_k" | "q5_k_m" => 13,
        "q6_k" => 14,
        _ => return None,
    };
    Some(GgmlType(id))
}

/// Writes a synthetic llama model of `shape` with 2-D weights in `quant`
/// (tensors whose rows do not fit a K-quant's 256-blocks fall back to q8_0,
/// as llama.cpp's quantizer does), tokenizer metadata from `donor`.
///
/// Every check runs before anything is written, in this order: the donor's
/// tokenizer and the vocabulary, the heads, the experts, phi3's output
/// projection, latent attention.
pub fn write_synthetic(
    path: &Path,
    shape: &SynthShape,
    quant: GgmlType,
    donor: &GgufFile,
    name: &str,
    seed: u64,
) -> Result<(), SynthError> {
    let (tokenizer, n_vocab) = padded_tokenizer(donor, shape.n_vocab)?;
    let head_dim = checked_head_dim(shape)?;
    let moe = checked_experts(shape)?;
    check_phi3_output(shape, head_dim)?;
    let mla = checked_mla(shape, head_dim)?;

    let mut metadata = common_metadata(shape, quant, name, head_dim, n_vocab);
    // Keys the architecture sets differently replace the common ones.
    let own = arch_metadata(shape.arch, head_dim, moe, mla);
    metadata.retain(|(k, _)| !own.iter().any(|(o, _)| o == k));
    metadata.extend(own);
    metadata.extend(tokenizer);

    let dims = Dims {
        n_embd: shape.n_embd,
        q: shape.n_head * head_dim,
        kv: shape.n_head_kv * head_dim,
        head_dim,
        n_head: shape.n_head,
        mla,
        n_ff: shape.n_ff,
        moe,
    };
    let tensors = tensor_specs(shape, quant, &dims, n_vocab);
    let mut pools = HashMap::new();
    write_gguf(path, &metadata, &tensors, |t, out| {
        fill_tensor(t, out, &mut pools, seed)
    })?;
    Ok(())
}

/// The donor's `tokenizer.*` keys, padded to `n_vocab` tokens (`None`: the
/// donor's own count), and that count. Padding only: fewer tokens than the
/// donor's would break its merges.
fn padded_tokenizer(
    donor: &GgufFile,
    n_vocab: Option<u64>,
) -> Result<(Vec<(String, MetadataValue)>, u64), SynthError> {
    let mut tokenizer: Vec<(String, MetadataValue)> = donor
        .metadata
        .iter()
        .filter(|(k, _)| k.starts_with("tokenizer."))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let donor_vocab = match donor.get("tokenizer.ggml.tokens") {
        Some(MetadataValue::StringArray(tokens)) if !tokens.is_empty() => tokens.len() as u64,
        _ => return Err(SynthError::NoTokenizer(donor.path.display().to_string())),
    };
    let n_vocab = n_vocab.unwrap_or(donor_vocab);
    if n_vocab < donor_vocab {
        return Err(SynthError::BadShape(format!("a vocabulary of {n_vocab} is smaller than the donor's {donor_vocab}; only padding is supported")));
    }
    if n_vocab > 4 << 20 {
        return Err(SynthError::BadShape(format!(
            "a vocabulary of {n_vocab} tokens is implausible"
        )));
    }
    // Pad with unused tokens (llama.cpp's token type 5); scores 0.
    let extra = (n_vocab - donor_vocab) as usize;
    for (key, value) in &mut tokenizer {
        match (key.as_str(), value) {
            ("tokenizer.ggml.tokens", MetadataValue::StringArray(v)) => {
                v.extend((0..extra).map(|i| format!("<lmtune_pad_{i}>")))
            }
            ("tokenizer.ggml.token_type", MetadataValue::IntArray(v)) => {
                v.extend(std::iter::repeat_n(5, extra))
            }
            ("tokenizer.ggml.scores", MetadataValue::FloatArray(v)) => {
                v.extend(std::iter::repeat_n(0.0, extra))
            }
            _ => {}
        }
    }
    Ok((tokenizer, n_vocab))
}

/// The head dimension (`n_embd / n_head` unless the shape sets one), once
/// the heads are known to divide into key/value groups.
fn checked_head_dim(shape: &SynthShape) -> Result<u64, SynthError> {
    let head_dim = shape.head_dim.unwrap_or(shape.n_embd / shape.n_head.max(1));
    if shape.n_head == 0
        || shape.n_head_kv == 0
        || head_dim == 0
        || shape.n_head % shape.n_head_kv != 0
    {
        return Err(SynthError::BadShape(format!(
            "n_head = {} must be a multiple of n_head_kv = {} and head_dim > 0",
            shape.n_head, shape.n_head_kv
        )));
    }
    Ok(head_dim)
}

/// The routed experts the architecture uses: `None` for a dense model, an
/// error for a MoE architecture without valid experts (or a llama with
/// invalid ones). llama's and olmoe's experts are n_ff wide.
fn checked_experts(shape: &SynthShape) -> Result<Option<SynthMoe>, SynthError> {
    let moe = shape.moe.map(|mut m| {
        if shape.arch.experts_use_n_ff() {
            m.n_ff_exp = shape.n_ff;
        }
        m
    });
    match moe {
        Some(m) if shape.arch.accepts_experts() && m.n_expert > 0 && m.n_ff_exp > 0 && (1..=m.n_expert).contains(&m.n_expert_used) => Ok(Some(m)),
        _ if shape.arch.is_moe() || (moe.is_some() && shape.arch.accepts_experts()) => {
            Err(SynthError::BadShape(format!(
                "{} needs experts: n_expert > 0, 1 <= n_expert_used <= n_expert, n_ff_exp > 0 (start from --like {})",
                shape.arch.as_str(),
                shape.arch.tiny_preset()
            )))
        }
        _ => Ok(None),
    }
}

/// phi3's attention output projection is square (n_embd × n_embd), so its
/// query width must be n_embd.
fn check_phi3_output(shape: &SynthShape, head_dim: u64) -> Result<(), SynthError> {
    if shape.arch == SynthArch::Phi3 && shape.n_head * head_dim != shape.n_embd {
        return Err(SynthError::BadShape(format!(
            "phi3's output projection is n_embd × n_embd: n_head × head_dim = {} must be n_embd = {}",
            shape.n_head * head_dim,
            shape.n_embd
        )));
    }
    Ok(())
}

/// Latent attention for deepseek2 (required, with the RoPE part inside the
/// head); `None` for every other architecture.
fn checked_mla(shape: &SynthShape, head_dim: u64) -> Result<Option<SynthMla>, SynthError> {
    match (shape.arch == SynthArch::Deepseek2, shape.mla) {
        (true, Some(m)) if m.kv_lora_rank > 0 && m.v_head_dim > 0 && m.rope_dim > 0 && m.rope_dim < head_dim => Ok(Some(m)),
        (true, _) => {
            Err(SynthError::BadShape(format!(
                "{} needs latent attention: kv_lora_rank > 0, v_head_dim > 0, 0 < rope_dim < head_dim (start from --like {})",
                shape.arch.as_str(),
                shape.arch.tiny_preset()
            )))
        }
        (false, _) => Ok(None),
    }
}

/// The `general.*` keys and the hyperparameters every architecture shares,
/// under the architecture's prefix; [`arch_metadata`] then replaces the ones
/// an architecture sets differently.
fn common_metadata(
    shape: &SynthShape,
    quant: GgmlType,
    name: &str,
    head_dim: u64,
    n_vocab: u64,
) -> Vec<(String, MetadataValue)> {
    let a = shape.arch.as_str();
    let mut metadata: Vec<(String, MetadataValue)> = vec![
        (
            "general.architecture".into(),
            MetadataValue::String(a.into()),
        ),
        (
            "general.name".into(),
            MetadataValue::String(name_without_vocab_quirks(name)),
        ),
        (
            "general.file_type".into(),
            MetadataValue::U32(file_type_of(quant)),
        ),
        ("general.quantization_version".into(), MetadataValue::U32(2)),
        (SYNTHETIC_KEY.into(), MetadataValue::Bool(true)),
        (
            "lmtune.synthetic_note".into(),
            MetadataValue::String(
                "random weights in a real layout: timings are real, text is noise".into(),
            ),
        ),
        (
            format!("{a}.block_count"),
            MetadataValue::U32(shape.n_layer as u32),
        ),
        (
            format!("{a}.context_length"),
            MetadataValue::U32(shape.n_ctx_train as u32),
        ),
        (
            format!("{a}.embedding_length"),
            MetadataValue::U32(shape.n_embd as u32),
        ),
        (
            format!("{a}.feed_forward_length"),
            MetadataValue::U32(shape.n_ff as u32),
        ),
        (
            format!("{a}.attention.head_count"),
            MetadataValue::U32(shape.n_head as u32),
        ),
        (
            format!("{a}.attention.head_count_kv"),
            MetadataValue::U32(shape.n_head_kv as u32),
        ),
        (
            format!("{a}.attention.key_length"),
            MetadataValue::U32(head_dim as u32),
        ),
        (
            format!("{a}.attention.value_length"),
            MetadataValue::U32(head_dim as u32),
        ),
        (
            format!("{a}.rope.dimension_count"),
            MetadataValue::U32(head_dim as u32),
        ),
        (format!("{a}.rope.freq_base"), MetadataValue::F32(10000.0)),
        (
            format!("{a}.attention.layer_norm_rms_epsilon"),
            MetadataValue::F32(1e-6),
        ),
        (
            format!("{a}.vocab_size"),
            MetadataValue::U32(n_vocab as u32),
        ),
    ];
    metadata.extend(sliding_window_metadata(shape));
    metadata
}

/// The sliding window's keys, if the shape has one.
fn sliding_window_metadata(shape: &SynthShape) -> Vec<(String, MetadataValue)> {
    let Some((window, pattern)) = shape.sliding_window else {
        return Vec::new();
    };
    let a = shape.arch.as_str();
    let mut metadata = vec![(
        format!("{a}.attention.sliding_window"),
        MetadataValue::U32(window as u32),
    )];
    // gemma files carry no pattern: llama.cpp reads it as an array if
    // present, and its own rule (gemma2: every 2nd layer global, gemma3:
    // every 6th) otherwise.
    if shape.arch == SynthArch::Llama {
        metadata.push((
            format!("{a}.attention.sliding_window_pattern"),
            MetadataValue::U32(pattern as u32),
        ));
    }
    metadata
}

/// Every tensor of the file, in llama.cpp's order: token embeddings, each
/// block's tensors, the output norm and (unless tied) the output layer.
fn tensor_specs(shape: &SynthShape, quant: GgmlType, dims: &Dims, n_vocab: u64) -> Vec<TensorSpec> {
    let mut tensors = vec![weight_spec(
        quant,
        "token_embd.weight".into(),
        vec![shape.n_embd, n_vocab],
    )];
    for il in 0..shape.n_layer {
        for LayerTensor { name, dims } in layer_tensors(shape.arch, dims, il) {
            let name = format!("blk.{il}.{name}");
            // Norms, biases, sinks and the router stay f32, as in converted files.
            tensors.push(
                if dims.len() == 1
                    || name.ends_with(".bias")
                    || name.ends_with("ffn_gate_inp.weight")
                {
                    f32_spec(name, dims)
                } else {
                    weight_spec(quant, name, dims)
                },
            );
        }
    }
    tensors.push(f32_spec("output_norm.weight".into(), vec![shape.n_embd]));
    // gemma ties its output to the token embeddings, as the real files do
    // (and llama.cpp's gemma loaders refuse an `output.weight`).
    if !shape.arch.tied_output() {
        tensors.push(weight_spec(
            quant,
            "output.weight".into(),
            vec![shape.n_embd, n_vocab],
        ));
    }
    tensors
}

/// A weight matrix in `quant`. Rows are dims[0]; a row that is not a whole
/// number of the type's blocks falls back to q8_0, as llama.cpp's quantizer
/// does.
fn weight_spec(quant: GgmlType, name: String, dims: Vec<u64>) -> TensorSpec {
    let t = if quant.bytes_for(dims[0]).is_some() {
        quant
    } else {
        GgmlType(8)
    };
    TensorSpec {
        name,
        dims,
        ggml_type: t,
    }
}

/// A tensor kept in f32 (norms, biases, sinks, the router).
fn f32_spec(name: String, dims: Vec<u64>) -> TensorSpec {
    TensorSpec {
        name,
        dims,
        ggml_type: GgmlType(0),
    }
}

/// Writes `t`'s data: constants for norms, biases and sinks, and for
/// matrices valid blocks from a random pool of their type, made once per
/// type from `seed` and kept in `pools`.
fn fill_tensor(
    t: &TensorSpec,
    out: &mut dyn Write,
    pools: &mut HashMap<u32, Vec<u8>>,
    seed: u64,
) -> std::io::Result<()> {
    let is_bias = t.name.ends_with(".bias");
    if t.dims.len() == 1 || is_bias {
        // Norm weights: 1.0, as a trained model's are near; biases (and
        // attention sinks, logits beside the softmax): 0.
        let value = if is_bias || t.name.ends_with("attn_sinks.weight") {
            0.0f32
        } else {
            1.0
        };
        let bytes = value.to_le_bytes();
        for _ in 0..t.n_elements() {
            out.write_all(&bytes)?;
        }
        return Ok(());
    }
    let pool = pools
        .entry(t.ggml_type.0)
        .or_insert_with(|| block_pool(t.ggml_type, seed));
    let mut left = t.n_bytes().unwrap_or(0) as usize;
    // Start each tensor at a different place in the pool.
    let mut at = (t.name.len() * 7919) % pool.len();
    while left > 0 {
        let n = left.min(pool.len() - at);
        out.write_all(&pool[at..at + n])?;
        left -= n;
        at = 0;
    }
    Ok(())
}

/// `name` with the words llama.cpp's vocabulary loader keys per-model token
/// attributes on (`llama-vocab.cpp`: a name containing "phi3" or "phi-3"
/// looks up phi-3's `</s>`) spelled apart: the tokenizer is the donor's, not
/// that model's, and the lookup would fail the load.
fn name_without_vocab_quirks(name: &str) -> String {
    name.to_ascii_lowercase()
        .replace("phi-3", "phi_3")
        .replace("phi3", "phi_3")
}

#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    #[error("{0} has no tokenizer (tokenizer.ggml.tokens) to copy; use a real llama.cpp model as the donor")]
    NoTokenizer(String),
    #[error("invalid shape: {0}")]
    BadShape(String),
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error(transparent)]
    Read(#[from] GgufError),
}
