//! Model anatomy: the shape of a model and where its bytes are, exactly, from
//! the GGUF header. This is the structural half of every memory prediction:
//! weights per layer from the tensor sizes, KV cache bytes per token from the
//! attention shape.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::reader::{GgufFile, MetadataValue};
use crate::types::GgmlType;
use crate::GgufError;

/// Metadata key lmtune's writer sets on synthetic models.
pub const SYNTHETIC_KEY: &str = "lmtune.synthetic";

/// Bytes and parameters of a group of tensors.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TensorGroup {
    pub n_tensors: usize,
    pub n_params: u64,
    pub bytes: u64,
    /// Bytes per tensor type name (`q4_0` → …).
    pub bytes_by_type: BTreeMap<String, u64>,
    /// The largest tensor's bytes and parameters (what llama.cpp's scheduler
    /// copies to a device at once when it offloads an op on it).
    #[serde(skip)]
    pub largest_bytes: u64,
    #[serde(skip)]
    pub largest_params: u64,
}

impl TensorGroup {
    pub fn is_empty(&self) -> bool {
        self.n_tensors == 0
    }

    fn add(&mut self, ggml_type: GgmlType, n_params: u64, bytes: u64) {
        self.n_tensors += 1;
        self.n_params += n_params;
        self.bytes += bytes;
        if bytes > self.largest_bytes {
            self.largest_bytes = bytes;
            self.largest_params = n_params;
        }
        *self.bytes_by_type.entry(ggml_type.name()).or_default() += bytes;
    }
}

/// One repeating block (`blk.N.*`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Layer {
    pub index: u64,
    pub n_head_kv: u64,
    /// Sliding-window attention layer (its KV cache is bounded by the window).
    pub is_swa: bool,
    /// Every tensor of the block (routed experts included).
    pub tensors: TensorGroup,
    /// The routed experts among them (`ffn_{gate,up,down,gate_up}_exps`,
    /// chunked `_chexps`, their biases): a generated token reads
    /// `expert_used_count` of `expert_count` of these. Shared experts
    /// (`_shexp`) and the router run for every token and are not here.
    #[serde(skip_serializing_if = "TensorGroup::is_empty")]
    pub routed_experts: TensorGroup,
}

impl Layer {
    /// Bytes a generated token reads from this block: everything but the
    /// routed experts, plus `used / count` of them.
    pub fn active_bytes(&self, experts: Option<(u64, u64)>) -> u64 {
        let dense = self.tensors.bytes - self.routed_experts.bytes;
        match experts {
            Some((used, count)) if count > 0 && self.routed_experts.bytes > 0 => {
                dense
                    + (self.routed_experts.bytes as u128 * used.min(count) as u128 / count as u128)
                        as u64
            }
            _ => self.tensors.bytes,
        }
    }
}

/// Whether a tensor of a block is a routed expert's.
pub fn is_routed_expert(name: &str) -> bool {
    name.contains("_exps.") || name.contains("_chexps.")
}

/// Everything lmtune knows about a model's structure.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelAnatomy {
    pub architecture: String,
    pub name: Option<String>,
    pub n_layer: u64,
    pub n_ctx_train: u64,
    pub n_embd: u64,
    pub n_ff: Option<u64>,
    pub n_head: u64,
    /// KV heads of the first layer (see [`Layer::n_head_kv`] for each).
    pub n_head_kv: u64,
    pub head_dim_k: u64,
    pub head_dim_v: u64,
    pub n_vocab: u64,
    /// Sliding window size in tokens, for models with SWA layers.
    pub sliding_window: Option<u64>,
    /// Mixture of experts: routed experts per layer (`expert_count`) and
    /// how many each token uses (`expert_used_count`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub experts: Option<Experts>,
    /// Multi-head latent attention as llama.cpp runs it (the file has
    /// `attention.key_length_mla` and `value_length_mla`): the cache holds
    /// only the compressed latent and the RoPE part as K (`key_length` per
    /// KV head), no V (llama.cpp's `llama_kv_cache`: `has_v = !is_mla`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub latent_kv: bool,
    pub layers: Vec<Layer>,
    /// `token_embd`: the input layer, which llama.cpp keeps on the CPU.
    pub input: TensorGroup,
    /// `output` and `output_norm` (the output layer); `output` is absent when
    /// the embeddings are tied, and then llama.cpp reuses `token_embd`.
    pub output: TensorGroup,
    pub tied_embeddings: bool,
    /// Tensors that are neither repeating, input nor output (rope factors, …).
    pub other: TensorGroup,
    pub n_params: u64,
    pub weights_bytes: u64,
    pub quant: String,
    /// Bytes per tensor type over the whole model.
    pub bytes_by_type: BTreeMap<String, u64>,
    /// Written by `lmtune synth`: random weights in a real layout. Timings
    /// are real, generated text is noise.
    pub synthetic: bool,
}

/// A mixture-of-experts model's routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Experts {
    pub count: u64,
    pub used: u64,
}

/// An architecture whose cache lmtune's analytic KV rule does not describe.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{architecture}'s cache is not modelled by lmtune ({why}): using llama.cpp's dry run")]
pub struct KvNotModelled {
    pub architecture: String,
    /// What the cache is instead (a recurrent state, a compressed cache, …).
    pub why: &'static str,
}

impl ModelAnatomy {
    /// `Err(why)` when lmtune's analytic KV-cache rule does not describe this
    /// architecture (recurrent state, MLA, chunked or shared-KV layers): its
    /// KV figures are then not to be trusted, and llama.cpp's dry run
    /// (`Measurement::dry_run`, `lmtune plan`) is the answer.
    pub fn kv_modelled(&self) -> Result<(), KvNotModelled> {
        match kv_not_modelled(&self.architecture) {
            None => Ok(()),
            Some(why) => Err(KvNotModelled {
                architecture: self.architecture.clone(),
                why,
            }),
        }
    }

    /// (used, count) of the routed experts, for [`Layer::active_bytes`].
    pub fn expert_routing(&self) -> Option<(u64, u64)> {
        self.experts.map(|e| (e.used, e.count))
    }

    /// Weight bytes a generated token reads: every block's active bytes and
    /// the output layer (one row of the token embeddings aside).
    pub fn active_weights_bytes(&self) -> u64 {
        let routing = self.expert_routing();
        let blocks: u64 = self.layers.iter().map(|l| l.active_bytes(routing)).sum();
        blocks
            + if self.tied_embeddings {
                self.input.bytes + self.output.bytes
            } else {
                self.output.bytes
            }
    }

    /// KV cache bytes per token for layer `il`, with K and V stored as the
    /// given ggml types (f16 = `GgmlType(1)`, q8_0 = `GgmlType(8)`, …).
    /// Quantized types are stored in blocks per row, as llama.cpp does.
    pub fn kv_bytes_per_token_layer(&self, il: usize, type_k: GgmlType, type_v: GgmlType) -> u64 {
        let n_head_kv = self.layers.get(il).map_or(self.n_head_kv, |l| l.n_head_kv);
        let k = row_bytes(type_k, n_head_kv * self.head_dim_k);
        if self.latent_kv {
            return k;
        }
        let v = row_bytes(type_v, n_head_kv * self.head_dim_v);
        k + v
    }

    /// Cells of a sliding-window layer's cache: `sliding_window + n_ubatch`
    /// padded to 256, at most `n_ctx` (llama.cpp's `llama_kv_cache_iswa`
    /// with one sequence), or `n_ctx` with `swa_full`.
    pub fn swa_cells(&self, n_ctx: u64, n_ubatch: u64, swa_full: bool) -> u64 {
        match self.sliding_window {
            Some(w) if !swa_full => n_ctx.min(w + n_ubatch).div_ceil(256) * 256,
            _ => n_ctx,
        }
    }

    /// KV cache bytes for `n_ctx` tokens over the layers `il` selects; SWA
    /// layers hold [`Self::swa_cells`].
    pub fn kv_bytes(
        &self,
        n_ctx: u64,
        n_ubatch: u64,
        swa_full: bool,
        type_k: GgmlType,
        type_v: GgmlType,
        mut on: impl FnMut(usize) -> bool,
    ) -> u64 {
        (0..self.layers.len())
            .filter(|&il| on(il))
            .map(|il| {
                let cells = if self.layers[il].is_swa {
                    self.swa_cells(n_ctx, n_ubatch, swa_full)
                } else {
                    n_ctx
                };
                cells * self.kv_bytes_per_token_layer(il, type_k, type_v)
            })
            .sum()
    }
}

/// Architectures whose cache lmtune's per-layer K/V rule does not describe,
/// and why: llama.cpp's own dry run is the answer for them.
fn kv_not_modelled(arch: &str) -> Option<&'static str> {
    Some(match arch {
        // llm_arch_is_recurrent / llm_arch_is_hybrid in llama-arch.cpp.
        "mamba" | "mamba2" | "rwkv6" | "rwkv6qwen2" | "rwkv7" | "arwkv7" => {
            "a recurrent state, not a KV cache"
        }
        "jamba" | "falcon-h1" | "plamo2" | "granitehybrid" | "lfm2" | "lfm2moe" | "nemotron_h"
        | "nemotron_h_moe" | "qwen3next" | "kimi-linear" | "bailingmoe3" | "kimi-k3"
        | "glm5-next" | "qwen35" | "qwen35moe" | "qwen4exp" | "minimax-01" => {
            "hybrid attention and recurrent layers"
        }
        // Latent caches with more than deepseek2's K-only rule (indexer
        // caches, their own KV cache classes), or unchecked against
        // llama.cpp's dry run. deepseek2 is modelled: `latent_kv`.
        "deepseek2-ocr" | "deepseek32" | "deepseek4" | "glm-dsa" | "minicpm3" | "plm"
        | "mistral4" => "multi-head latent attention (a compressed cache)",
        "llama4" => "chunked attention layers",
        "gemma3n" | "gemma4" => "layers that share another layer's KV cache",
        _ => return None,
    })
}

/// Every n-th layer is global, the others sliding-window, for architectures
/// whose GGUF files carry no pattern (llama.cpp hard-codes it per
/// architecture in `src/models/<arch>.cpp`). One row per architecture.
fn default_swa_pattern(arch: &str) -> Option<u64> {
    Some(match arch {
        "gemma2" | "gpt-oss" => 2,
        "gemma3" | "gemma-embedding" => 6,
        "gemma3n" => 5,
        "cohere2" | "exaone4" | "llama4" | "olmo2" => 4,
        _ => return None,
    })
}

fn row_bytes(t: GgmlType, n_elements: u64) -> u64 {
    // A row that is not a whole number of blocks cannot be stored in that type;
    // llama.cpp refuses such a cache, so count it as f16 for estimates.
    t.bytes_for(n_elements).unwrap_or(n_elements * 2)
}

impl GgufFile {
    /// The model's anatomy. Needs the keys llama.cpp needs; a missing one is
    /// a typed error naming it.
    pub fn anatomy(&self) -> Result<ModelAnatomy, GgufError> {
        let summary = self.summary()?;
        let arch = summary.architecture.clone();
        let key = |suffix: &str| format!("{arch}.{suffix}");
        let hint = "the file is not a complete llama.cpp model (re-convert it)";
        let n_embd = self.require_u64(&key("embedding_length"), hint)?;
        let n_head = self.require_u64(&key("attention.head_count"), hint)?;
        if n_head == 0 {
            return Err(GgufError::Corrupt {
                path: self.path.clone(),
                what: format!("{} is 0", key("attention.head_count")),
                offset: 0,
            });
        }
        let n_layer = summary.n_layer;
        let per_layer_kv: Vec<u64> = match self.get(&key("attention.head_count_kv")) {
            Some(MetadataValue::IntArray(v)) => v.iter().map(|&x| x.max(0) as u64).collect(),
            Some(v) => vec![v.as_u64().unwrap_or(n_head); n_layer as usize],
            None => vec![n_head; n_layer as usize],
        };
        let optional = |suffix: &str| self.get(&key(suffix)).and_then(MetadataValue::as_u64);
        let head_dim_k = optional("attention.key_length").unwrap_or(n_embd / n_head);
        let head_dim_v = optional("attention.value_length").unwrap_or(n_embd / n_head);
        let sliding_window = optional("attention.sliding_window").filter(|&w| w > 0);
        let swa: Vec<bool> = match self.get(&key("attention.sliding_window_pattern")) {
            Some(MetadataValue::BoolArray(v)) => v.clone(),
            Some(MetadataValue::IntArray(v)) => v.iter().map(|&x| x != 0).collect(),
            // llama.cpp's set_swa_pattern(n): every n-th layer is dense, the others SWA.
            Some(v) => match v.as_u64() {
                Some(n) if n > 0 => (0..n_layer).map(|il| il % n < n - 1).collect(),
                _ => Vec::new(),
            },
            // No pattern in the file: the architecture's own rule
            // (`load_swa_pattern(ml, n)` in llama.cpp's src/models/).
            None if sliding_window.is_some() => match default_swa_pattern(&arch) {
                Some(n) => (0..n_layer).map(|il| il % n < n - 1).collect(),
                None => vec![true; n_layer as usize],
            },
            None => Vec::new(),
        };

        let mut layers: Vec<Layer> = (0..n_layer)
            .map(|il| Layer {
                index: il,
                n_head_kv: per_layer_kv.get(il as usize).copied().unwrap_or(n_head),
                is_swa: sliding_window.is_some() && swa.get(il as usize).copied().unwrap_or(false),
                tensors: TensorGroup::default(),
                routed_experts: TensorGroup::default(),
            })
            .collect();
        let (mut input, mut output, mut other) = (
            TensorGroup::default(),
            TensorGroup::default(),
            TensorGroup::default(),
        );
        let mut bytes_by_type: BTreeMap<String, u64> = BTreeMap::new();
        let mut has_output = false;
        for t in &self.tensors {
            *bytes_by_type.entry(t.ggml_type.name()).or_default() += t.n_bytes;
            let group = if let Some(rest) = t.name.strip_prefix("blk.") {
                let il: Option<u64> = rest.split('.').next().and_then(|n| n.parse().ok());
                match il.and_then(|il| layers.get_mut(il as usize)) {
                    Some(layer) => {
                        if is_routed_expert(&t.name) {
                            layer
                                .routed_experts
                                .add(t.ggml_type, t.n_elements, t.n_bytes);
                        }
                        &mut layer.tensors
                    }
                    None => &mut other,
                }
            } else if t.name.starts_with("token_embd") {
                &mut input
            } else if t.name == "output.weight"
                || t.name.starts_with("output_norm")
                || t.name.starts_with("output.")
            {
                has_output |= t.name == "output.weight";
                &mut output
            } else {
                &mut other
            };
            group.add(t.ggml_type, t.n_elements, t.n_bytes);
        }

        let experts = match (optional("expert_count"), optional("expert_used_count")) {
            (Some(count), Some(used)) if count > 0 => Some(Experts { count, used }),
            _ => None,
        };
        let latent_kv = optional("attention.key_length_mla").is_some_and(|k| k > 0)
            && optional("attention.value_length_mla").is_some_and(|v| v > 0);
        Ok(ModelAnatomy {
            experts,
            latent_kv,
            name: summary.name.clone(),
            n_layer,
            n_ctx_train: summary.n_ctx_train,
            n_embd,
            n_ff: optional("feed_forward_length"),
            n_head,
            n_head_kv: per_layer_kv.first().copied().unwrap_or(n_head),
            head_dim_k,
            head_dim_v,
            n_vocab: summary.n_vocab.unwrap_or(0),
            sliding_window,
            layers,
            input,
            output,
            tied_embeddings: !has_output,
            other,
            n_params: summary.n_params,
            weights_bytes: summary.weights_bytes,
            quant: summary.quant.clone(),
            bytes_by_type,
            synthetic: matches!(self.get(SYNTHETIC_KEY), Some(MetadataValue::Bool(true))),
            architecture: arch,
        })
    }
}
