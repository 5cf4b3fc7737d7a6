//! Synthetic models: a real architecture's tensor layout with random weights,
//! so sweeps can use 1B/7B/13B/70B shapes with no download.
//!
//! Timings on them are real — the same kernels run over the same number of
//! bytes — but the generated text is noise. Quantized blocks get small, sane
//! scales (random bits would make NaNs and change the timing), and the
//! tokenizer is copied from a real model so llama.cpp loads the file; the
//! vocabulary size is therefore the donor's.

use std::path::Path;

use crate::reader::{GgufFile, MetadataValue};
use crate::types::GgmlType;
use crate::writer::{write_gguf, TensorSpec, WriteError};
use crate::{GgufError, SYNTHETIC_KEY};

/// The llama.cpp architectures `synth` writes: each one's tensor layout and
/// metadata keys, as `llama-model.cpp` loads them. Adding one is a row here,
/// a name in [`SynthArch::parse`] and its tensors in [`layer_tensors`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SynthArch {
    /// `llama`: attention + gated FFN, untied output.
    Llama,
    /// `gemma3`: Q/K norms, post-attention and post-FFN norms, tied
    /// embeddings, and every 6th layer global, the others sliding-window
    /// (llama.cpp's rule for gemma3; no pattern key in the file).
    Gemma3,
}

impl SynthArch {
    pub const ALL: [SynthArch; 2] = [SynthArch::Llama, SynthArch::Gemma3];

    /// The `general.architecture` name.
    pub fn as_str(self) -> &'static str {
        match self {
            SynthArch::Llama => "llama",
            SynthArch::Gemma3 => "gemma3",
        }
    }

    pub fn parse(name: &str) -> Option<SynthArch> {
        SynthArch::ALL
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(name))
    }
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
}

/// Known shapes (`--like`), from the published configs of those models.
pub const PRESETS: &[(&str, SynthShape)] = &[
    (
        "llama-1b",
        SynthShape {
            arch: SynthArch::Llama,
            n_layer: 22,
            n_embd: 2048,
            n_head: 32,
            n_head_kv: 4,
            n_ff: 5632,
            head_dim: None,
            n_ctx_train: 2048,
            sliding_window: None,
            n_vocab: None,
        },
    ),
    (
        "llama-3b",
        SynthShape {
            arch: SynthArch::Llama,
            n_layer: 26,
            n_embd: 3200,
            n_head: 32,
            n_head_kv: 32,
            n_ff: 8640,
            head_dim: None,
            n_ctx_train: 2048,
            sliding_window: None,
            n_vocab: None,
        },
    ),
    (
        "llama-7b",
        SynthShape {
            arch: SynthArch::Llama,
            n_layer: 32,
            n_embd: 4096,
            n_head: 32,
            n_head_kv: 32,
            n_ff: 11008,
            head_dim: None,
            n_ctx_train: 4096,
            sliding_window: None,
            n_vocab: None,
        },
    ),
    (
        "llama3-8b",
        SynthShape {
            arch: SynthArch::Llama,
            n_layer: 32,
            n_embd: 4096,
            n_head: 32,
            n_head_kv: 8,
            n_ff: 14336,
            head_dim: None,
            n_ctx_train: 8192,
            sliding_window: None,
            n_vocab: None,
        },
    ),
    (
        "llama-13b",
        SynthShape {
            arch: SynthArch::Llama,
            n_layer: 40,
            n_embd: 5120,
            n_head: 40,
            n_head_kv: 40,
            n_ff: 13824,
            head_dim: None,
            n_ctx_train: 4096,
            sliding_window: None,
            n_vocab: None,
        },
    ),
    (
        "llama-70b",
        SynthShape {
            arch: SynthArch::Llama,
            n_layer: 80,
            n_embd: 8192,
            n_head: 64,
            n_head_kv: 8,
            n_ff: 28672,
            head_dim: None,
            n_ctx_train: 4096,
            sliding_window: None,
            n_vocab: None,
        },
    ),
    (
        // Gemma 3 270M's blocks (the vocabulary is the donor's, not 262k).
        "gemma3-270m",
        SynthShape {
            arch: SynthArch::Gemma3,
            n_layer: 18,
            n_embd: 640,
            n_head: 4,
            n_head_kv: 1,
            n_ff: 2048,
            head_dim: Some(256),
            n_ctx_train: 32768,
            sliding_window: Some((512, 6)),
            n_vocab: None,
        },
    ),
];

pub fn preset(name: &str) -> Option<SynthShape> {
    PRESETS
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, s)| s.clone())
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
pub fn write_synthetic(
    path: &Path,
    shape: &SynthShape,
    quant: GgmlType,
    donor: &GgufFile,
    name: &str,
    seed: u64,
) -> Result<(), SynthError> {
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
    let n_vocab = shape.n_vocab.unwrap_or(donor_vocab);
    if n_vocab < donor_vocab {
        return Err(SynthError::BadShape(format!("a vocabulary of {n_vocab} is smaller than the donor's {donor_vocab}; only padding is supported")));
    }
    if n_vocab > 4 << 20 {
        return Err(SynthError::BadShape(format!(
            "a vocabulary of {n_vocab} tokens is implausible"
        )));
    }
    for (key, value) in &mut tokenizer {
        // Pad with unused tokens (llama.cpp's token type 5); scores 0.
        let extra = (n_vocab - donor_vocab) as usize;
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

    let a = shape.arch.as_str();
    let mut metadata: Vec<(String, MetadataValue)> = vec![
        (
            "general.architecture".into(),
            MetadataValue::String(a.into()),
        ),
        ("general.name".into(), MetadataValue::String(name.into())),
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
    if let Some((window, pattern)) = shape.sliding_window {
        metadata.push((
            format!("{a}.attention.sliding_window"),
            MetadataValue::U32(window as u32),
        ));
        // gemma3 files carry no pattern: llama.cpp reads it as an array if
        // present, and its own rule (every 6th layer global) otherwise.
        if shape.arch == SynthArch::Llama {
            metadata.push((
                format!("{a}.attention.sliding_window_pattern"),
                MetadataValue::U32(pattern as u32),
            ));
        }
    }
    metadata.extend(tokenizer);

    let weight = |name: String, ne0: u64, ne1: u64| {
        let t = if quant.bytes_for(ne0).is_some() {
            quant
        } else {
            GgmlType(8)
        };
        TensorSpec {
            name,
            dims: vec![ne0, ne1],
            ggml_type: t,
        }
    };
    let dims = Dims {
        n_embd: shape.n_embd,
        q: shape.n_head * head_dim,
        kv: shape.n_head_kv * head_dim,
        head_dim,
        n_ff: shape.n_ff,
    };
    let norm = |name: String, n: u64| TensorSpec {
        name,
        dims: vec![n],
        ggml_type: GgmlType(0),
    };
    let mut tensors = vec![weight("token_embd.weight".into(), shape.n_embd, n_vocab)];
    for il in 0..shape.n_layer {
        for (name, shape2) in layer_tensors(shape.arch, &dims) {
            let name = format!("blk.{il}.{name}.weight");
            tensors.push(match shape2 {
                [n, 0] => norm(name, n),
                [ne0, ne1] => weight(name, ne0, ne1),
            });
        }
    }
    tensors.push(norm("output_norm.weight".into(), shape.n_embd));
    // gemma3 ties its output to the token embeddings, as the real files do.
    if shape.arch != SynthArch::Gemma3 {
        tensors.push(weight("output.weight".into(), shape.n_embd, n_vocab));
    }

    let mut pools = std::collections::HashMap::new();
    write_gguf(path, &metadata, &tensors, |t, out| {
        if t.dims.len() == 1 {
            // Norm weights: 1.0, as a trained model's are near.
            let one = 1.0f32.to_le_bytes();
            for _ in 0..t.n_elements() {
                out.write_all(&one)?;
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
    })?;
    Ok(())
}

/// The sizes a block's tensors are made of.
struct Dims {
    n_embd: u64,
    /// Query width (`n_head × head_dim`).
    q: u64,
    /// Key/value width (`n_head_kv × head_dim`).
    kv: u64,
    head_dim: u64,
    n_ff: u64,
}

/// One block's tensors (name without `blk.N.` and `.weight`, `[ne0, ne1]`;
/// `[n, 0]` is a 1-D norm of `n` values), in llama.cpp's names.
fn layer_tensors(arch: SynthArch, d: &Dims) -> Vec<(&'static str, [u64; 2])> {
    let mut t = vec![
        ("attn_norm", [d.n_embd, 0]),
        ("attn_q", [d.n_embd, d.q]),
        ("attn_k", [d.n_embd, d.kv]),
        ("attn_v", [d.n_embd, d.kv]),
        ("attn_output", [d.q, d.n_embd]),
    ];
    if arch == SynthArch::Gemma3 {
        t.extend([
            ("attn_q_norm", [d.head_dim, 0]),
            ("attn_k_norm", [d.head_dim, 0]),
            ("post_attention_norm", [d.n_embd, 0]),
        ]);
    }
    t.extend([
        ("ffn_norm", [d.n_embd, 0]),
        ("ffn_gate", [d.n_embd, d.n_ff]),
        ("ffn_up", [d.n_embd, d.n_ff]),
        ("ffn_down", [d.n_ff, d.n_embd]),
    ]);
    if arch == SynthArch::Gemma3 {
        t.push(("post_ffw_norm", [d.n_embd, 0]));
    }
    t
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

/// 1 MiB of valid random blocks of type `t` (a whole number of blocks).
fn block_pool(t: GgmlType, seed: u64) -> Vec<u8> {
    let block_bytes = t
        .bytes_for(if matches!(t.0, 0 | 1 | 30) {
            1
        } else if matches!(t.0, 10..=15) {
            256
        } else {
            32
        })
        .unwrap_or(1) as usize;
    let n_blocks = ((1 << 20) / block_bytes).max(1);
    let mut rng = seed ^ 0x9E37_79B9_7F4A_7C15 ^ u64::from(t.0);
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut pool = vec![0u8; n_blocks * block_bytes];
    for chunk in pool.chunks_mut(8) {
        let r = next().to_le_bytes();
        chunk.copy_from_slice(&r[..chunk.len()]);
    }
    // Small weights around ±0.02, like a trained model's.
    let small = |r: u64| ((r % 2000) as f32 / 1000.0 - 1.0) * 0.02;
    match t.0 {
        0 => {
            for c in pool.chunks_mut(4) {
                c.copy_from_slice(&small(next()).to_le_bytes());
            }
        }
        1 | 30 => {
            for c in pool.chunks_mut(2) {
                let v = small(next());
                let bits = if t.0 == 1 {
                    f16_bits(v)
                } else {
                    (v.to_bits() >> 16) as u16
                };
                c.copy_from_slice(&bits.to_le_bytes());
            }
        }
        _ => {
            // Offsets of the f16 scale fields within a block.
            let scales: &[usize] = match t.0 {
                2 | 6 | 8 => &[0],
                3 | 7 | 12 | 13 => &[0, 2],
                10 => &[80, 82],
                11 => &[108],
                14 => &[208],
                _ => &[],
            };
            for block in pool.chunks_mut(block_bytes) {
                for &off in scales {
                    let scale = 0.001 + (next() % 1000) as f32 * 1e-6;
                    block[off..off + 2].copy_from_slice(&f16_bits(scale).to_le_bytes());
                }
            }
        }
    }
    pool
}

/// IEEE half-precision bits of a small finite `f32` (round toward zero;
/// subnormals flushed), enough for weights and scales.
fn f16_bits(v: f32) -> u16 {
    let bits = v.to_bits();
    let sign = ((bits >> 16) & 0x8000) as u16;
    let exp = ((bits >> 23) & 0xff) as i32 - 127 + 15;
    let mantissa = ((bits >> 13) & 0x3ff) as u16;
    if exp <= 0 {
        sign
    } else if exp >= 31 {
        sign | 0x7bff
    } else {
        sign | ((exp as u16) << 10) | mantissa
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_of_known_values() {
        assert_eq!(f16_bits(1.0), 0x3c00);
        assert_eq!(f16_bits(-2.0), 0xc000);
        assert_eq!(f16_bits(0.0), 0);
        assert_eq!(f16_bits(1e9), 0x7bff);
    }

    #[test]
    fn pools_are_whole_blocks_with_finite_scales() {
        for name in SUPPORTED_QUANTS {
            let t = quant_type(name).unwrap();
            let pool = block_pool(t, 1);
            assert!(!pool.is_empty());
            if t.0 == 2 {
                for block in pool.chunks(18) {
                    let d = u16::from_le_bytes([block[0], block[1]]);
                    assert_ne!(d & 0x7c00, 0x7c00, "scale is not inf/nan");
                }
            }
        }
    }
}
