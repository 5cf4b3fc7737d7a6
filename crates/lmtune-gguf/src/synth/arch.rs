//! The architectures `synth` writes: each one's block tensors and metadata
//! keys, exactly as llama.cpp's `src/models/<arch>.cpp` loads them.

use crate::reader::MetadataValue;

use super::{SynthMla, SynthMoe};

/// The llama.cpp architectures `synth` writes: each one's tensor layout and
/// metadata keys, as `src/models/<arch>.cpp` loads them (llama.cpp refuses a
/// file with a tensor its loader does not ask for, so the lists are exact).
/// Adding one is a variant here, its name in [`SynthArch::as_str`], its
/// tensors in [`layer_tensors`], its keys in [`arch_metadata`] and a
/// `<arch>-tiny` preset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SynthArch {
    /// `llama`: attention + gated FFN, untied output.
    Llama,
    /// `gemma3`: Q/K norms, post-attention and post-FFN norms, tied
    /// embeddings, and every 6th layer global, the others sliding-window
    /// (llama.cpp's rule for gemma3; no pattern key in the file).
    Gemma3,
    /// `qwen2`: llama's layout with biases on Q, K and V.
    Qwen2,
    /// `qwen3`: llama's layout with per-head Q/K norms, no biases.
    Qwen3,
    /// `phi3`: fused `attn_qkv`, and `ffn_up` of 2 × n_ff (gate and up in one)
    /// with no `ffn_gate`; the query width must be n_embd.
    Phi3,
    /// `granite`: llama's layout plus its scales (embedding, residual,
    /// attention, logit).
    Granite,
    /// `gemma2`: post-attention and post-FFN norms, attention and final logit
    /// soft-capping, tied embeddings, a sliding window on every other layer
    /// (llama.cpp's rule for gemma2).
    Gemma2,
    /// `qwen3moe`: qwen3's attention, and routed experts only: a router
    /// `ffn_gate_inp` and `ffn_{gate,up,down}_exps` of [.., .., n_expert].
    Qwen3Moe,
    /// `gpt-oss` (llama.cpp's OpenAI MoE): biased attention with per-head
    /// sinks, a sliding window on every other layer, routed experts with
    /// biases, and `post_attention_norm` as the FFN's norm (no `ffn_norm`).
    GptOss,
    /// `deepseek2`: multi-head latent attention (MLA: low-rank Q and KV with
    /// a shared RoPE part, `attn_k_b`/`attn_v_b` per head), leading dense
    /// blocks, then routed experts plus shared experts (`_shexp`).
    Deepseek2,
    /// `olmoe`: full-width Q/K norms (`attn_{q,k}_norm` of n_embd), and routed
    /// experts only, each `n_ff` wide (no expert width key).
    Olmoe,
}

impl SynthArch {
    pub const ALL: [SynthArch; 11] = [
        SynthArch::Llama,
        SynthArch::Gemma3,
        SynthArch::Qwen2,
        SynthArch::Qwen3,
        SynthArch::Phi3,
        SynthArch::Granite,
        SynthArch::Gemma2,
        SynthArch::Qwen3Moe,
        SynthArch::GptOss,
        SynthArch::Deepseek2,
        SynthArch::Olmoe,
    ];

    /// The `general.architecture` name.
    pub fn as_str(self) -> &'static str {
        match self {
            SynthArch::Llama => "llama",
            SynthArch::Gemma3 => "gemma3",
            SynthArch::Qwen2 => "qwen2",
            SynthArch::Qwen3 => "qwen3",
            SynthArch::Phi3 => "phi3",
            SynthArch::Granite => "granite",
            SynthArch::Gemma2 => "gemma2",
            SynthArch::Qwen3Moe => "qwen3moe",
            SynthArch::GptOss => "gpt-oss",
            SynthArch::Deepseek2 => "deepseek2",
            SynthArch::Olmoe => "olmoe",
        }
    }

    pub fn parse(name: &str) -> Option<SynthArch> {
        SynthArch::ALL
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(name))
    }

    /// The name of its small test preset (a few layers, tens of MiB).
    pub fn tiny_preset(self) -> String {
        format!("{}-tiny", self.as_str())
    }

    /// Whether its FFN is routed experts (and [`SynthShape::moe`] is required).
    pub fn is_moe(self) -> bool {
        matches!(
            self,
            SynthArch::Qwen3Moe | SynthArch::GptOss | SynthArch::Deepseek2 | SynthArch::Olmoe
        )
    }

    /// Whether its FFN may be routed experts: the MoE architectures, and
    /// llama (Mixtral is a llama with experts).
    pub fn accepts_experts(self) -> bool {
        self.is_moe() || self == SynthArch::Llama
    }

    /// Whether its experts are `feed_forward_length` wide (llama.cpp's
    /// llama and olmoe loaders), with no `expert_feed_forward_length` key.
    pub fn experts_use_n_ff(self) -> bool {
        matches!(self, SynthArch::Llama | SynthArch::Olmoe)
    }

    /// Whether the output projection is the token embedding (no `output.weight`).
    pub(super) fn tied_output(self) -> bool {
        matches!(self, SynthArch::Gemma2 | SynthArch::Gemma3)
    }

    /// The sliding window (and every-n-th-layer-dense pattern) llama.cpp
    /// applies to this architecture when the file gives none.
    pub fn default_sliding_window(self) -> Option<(u64, u64)> {
        match self {
            SynthArch::Gemma3 => Some((512, 6)),
            SynthArch::Gemma2 => Some((4096, 2)),
            SynthArch::GptOss => Some((128, 2)),
            _ => None,
        }
    }
}

/// The keys an architecture's `load_arch_hparams` reads beyond the common
/// ones, with the values its published models use.
pub(super) fn arch_metadata(
    arch: SynthArch,
    head_dim: u64,
    moe: Option<SynthMoe>,
    mla: Option<SynthMla>,
) -> Vec<(String, MetadataValue)> {
    let a = arch.as_str();
    let f32_key = |k: &str, v: f32| (format!("{a}.{k}"), MetadataValue::F32(v));
    let u32_key = |k: &str, v: u64| (format!("{a}.{k}"), MetadataValue::U32(v as u32));
    let mut keys = match arch {
        // Granite 3.0's multipliers (embedding, residual, attention, logits).
        SynthArch::Granite => vec![
            f32_key("embedding_scale", 12.0),
            f32_key("residual_scale", 0.22),
            f32_key("attention.scale", 0.015625),
            f32_key("logit_scale", 8.0),
        ],
        SynthArch::Gemma2 => vec![
            f32_key("attn_logit_softcapping", 50.0),
            f32_key("final_logit_softcapping", 30.0),
        ],
        _ => Vec::new(),
    };
    if let Some(m) = moe {
        keys.extend([
            u32_key("expert_count", m.n_expert),
            u32_key("expert_used_count", m.n_expert_used),
        ]);
        if !arch.experts_use_n_ff() {
            keys.push(u32_key("expert_feed_forward_length", m.n_ff_exp));
        }
    }
    if let (Some(m), Some(e)) = (mla, moe) {
        // As converted MLA files are: one KV "head" holding the compressed
        // KV and the RoPE part; the per-head sizes as *_mla keys.
        keys.extend([
            u32_key("attention.head_count_kv", 1),
            u32_key("attention.key_length", m.kv_lora_rank + m.rope_dim),
            u32_key("attention.value_length", m.kv_lora_rank),
            u32_key("rope.dimension_count", m.rope_dim),
            u32_key("attention.q_lora_rank", m.q_lora_rank),
            u32_key("attention.kv_lora_rank", m.kv_lora_rank),
            u32_key("attention.key_length_mla", head_dim),
            u32_key("attention.value_length_mla", m.v_head_dim),
            u32_key("leading_dense_block_count", e.n_layer_dense_lead),
            u32_key("expert_shared_count", e.n_expert_shared),
            f32_key("expert_weights_scale", 1.0),
            (
                format!("{a}.expert_weights_norm"),
                MetadataValue::Bool(false),
            ),
            // llama.cpp's LLAMA_EXPERT_GATING_FUNC_TYPE_SOFTMAX.
            u32_key("expert_gating_func", 1),
        ]);
    }
    keys
}

/// The sizes a block's tensors are made of.
pub(super) struct Dims {
    pub(super) n_embd: u64,
    /// Query width (`n_head × head_dim`).
    pub(super) q: u64,
    /// Key/value width (`n_head_kv × head_dim`).
    pub(super) kv: u64,
    pub(super) head_dim: u64,
    pub(super) n_head: u64,
    pub(super) mla: Option<SynthMla>,
    pub(super) n_ff: u64,
    pub(super) moe: Option<SynthMoe>,
}

/// One tensor of a block: its name without `blk.N.` (with `.weight` or
/// `.bias`), and its dimensions in ggml's order (`ne0` first: the row).
pub(super) struct LayerTensor {
    pub(super) name: &'static str,
    pub(super) dims: Vec<u64>,
}

fn lt(name: &'static str, dims: &[u64]) -> LayerTensor {
    LayerTensor {
        name,
        dims: dims.to_vec(),
    }
}

/// One block's tensors in llama.cpp's names and shapes, exactly those the
/// architecture's `load_arch_tensors` creates.
pub(super) fn layer_tensors(arch: SynthArch, d: &Dims, il: u64) -> Vec<LayerTensor> {
    use SynthArch::*;
    if let (Deepseek2, Some(mla), Some(moe)) = (arch, d.mla, d.moe) {
        return deepseek2_layer_tensors(d, mla, moe, il);
    }
    let mut t = vec![lt("attn_norm.weight", &[d.n_embd])];
    if arch == Phi3 {
        t.push(lt("attn_qkv.weight", &[d.n_embd, d.q + 2 * d.kv]));
    } else {
        t.extend([
            lt("attn_q.weight", &[d.n_embd, d.q]),
            lt("attn_k.weight", &[d.n_embd, d.kv]),
            lt("attn_v.weight", &[d.n_embd, d.kv]),
        ]);
    }
    if matches!(arch, Qwen2 | GptOss) {
        t.extend([
            lt("attn_q.bias", &[d.q]),
            lt("attn_k.bias", &[d.kv]),
            lt("attn_v.bias", &[d.kv]),
        ]);
    }
    t.push(lt("attn_output.weight", &[d.q, d.n_embd]));
    if arch == GptOss {
        t.extend([
            lt("attn_output.bias", &[d.n_embd]),
            lt("attn_sinks.weight", &[d.n_head]),
        ]);
    }
    if matches!(arch, Gemma3 | Qwen3 | Qwen3Moe) {
        t.extend([
            lt("attn_q_norm.weight", &[d.head_dim]),
            lt("attn_k_norm.weight", &[d.head_dim]),
        ]);
    }
    if arch == Olmoe {
        t.extend([
            lt("attn_q_norm.weight", &[d.n_embd]),
            lt("attn_k_norm.weight", &[d.n_embd]),
        ]);
    }
    if matches!(arch, Gemma2 | Gemma3 | GptOss) {
        t.push(lt("post_attention_norm.weight", &[d.n_embd]));
    }
    // gpt-oss normalizes the FFN's input with post_attention_norm.
    if arch != GptOss {
        t.push(lt("ffn_norm.weight", &[d.n_embd]));
    }
    match (arch, d.moe) {
        (Phi3, _) => t.extend([
            lt("ffn_up.weight", &[d.n_embd, 2 * d.n_ff]),
            lt("ffn_down.weight", &[d.n_ff, d.n_embd]),
        ]),
        (_, Some(m)) => t.extend([
            lt("ffn_gate_inp.weight", &[d.n_embd, m.n_expert]),
            lt("ffn_gate_exps.weight", &[d.n_embd, m.n_ff_exp, m.n_expert]),
            lt("ffn_up_exps.weight", &[d.n_embd, m.n_ff_exp, m.n_expert]),
            lt("ffn_down_exps.weight", &[m.n_ff_exp, d.n_embd, m.n_expert]),
        ]),
        _ => t.extend([
            lt("ffn_gate.weight", &[d.n_embd, d.n_ff]),
            lt("ffn_up.weight", &[d.n_embd, d.n_ff]),
            lt("ffn_down.weight", &[d.n_ff, d.n_embd]),
        ]),
    }
    if let (GptOss, Some(m)) = (arch, d.moe) {
        t.extend([
            lt("ffn_gate_inp.bias", &[m.n_expert]),
            lt("ffn_gate_exps.bias", &[m.n_ff_exp, m.n_expert]),
            lt("ffn_up_exps.bias", &[m.n_ff_exp, m.n_expert]),
            lt("ffn_down_exps.bias", &[d.n_embd, m.n_expert]),
        ]);
    }
    if matches!(arch, Gemma2 | Gemma3) {
        t.push(lt("post_ffw_norm.weight", &[d.n_embd]));
    }
    t
}

/// deepseek2's block (`src/models/deepseek2.cpp`, the MLA layout of current
/// conversions: `attn_k_b` and `attn_v_b` split per head).
fn deepseek2_layer_tensors(d: &Dims, mla: SynthMla, moe: SynthMoe, il: u64) -> Vec<LayerTensor> {
    let n_head = d.n_head;
    let nope = d.head_dim - mla.rope_dim;
    let mut t = vec![lt("attn_norm.weight", &[d.n_embd])];
    if mla.q_lora_rank > 0 {
        t.extend([
            lt("attn_q_a_norm.weight", &[mla.q_lora_rank]),
            lt("attn_q_a.weight", &[d.n_embd, mla.q_lora_rank]),
            lt("attn_q_b.weight", &[mla.q_lora_rank, n_head * d.head_dim]),
        ]);
    } else {
        t.push(lt("attn_q.weight", &[d.n_embd, n_head * d.head_dim]));
    }
    t.extend([
        lt("attn_kv_a_norm.weight", &[mla.kv_lora_rank]),
        lt(
            "attn_kv_a_mqa.weight",
            &[d.n_embd, mla.kv_lora_rank + mla.rope_dim],
        ),
        lt("attn_k_b.weight", &[nope, mla.kv_lora_rank, n_head]),
        lt(
            "attn_v_b.weight",
            &[mla.kv_lora_rank, mla.v_head_dim, n_head],
        ),
        lt("attn_output.weight", &[n_head * mla.v_head_dim, d.n_embd]),
        lt("ffn_norm.weight", &[d.n_embd]),
    ]);
    if il < moe.n_layer_dense_lead {
        t.extend([
            lt("ffn_gate.weight", &[d.n_embd, d.n_ff]),
            lt("ffn_up.weight", &[d.n_embd, d.n_ff]),
            lt("ffn_down.weight", &[d.n_ff, d.n_embd]),
        ]);
    } else {
        let shared = moe.n_ff_exp * moe.n_expert_shared;
        t.extend([
            lt("ffn_gate_inp.weight", &[d.n_embd, moe.n_expert]),
            lt(
                "ffn_gate_exps.weight",
                &[d.n_embd, moe.n_ff_exp, moe.n_expert],
            ),
            lt(
                "ffn_up_exps.weight",
                &[d.n_embd, moe.n_ff_exp, moe.n_expert],
            ),
            lt(
                "ffn_down_exps.weight",
                &[moe.n_ff_exp, d.n_embd, moe.n_expert],
            ),
            lt("ffn_gate_shexp.weight", &[d.n_embd, shared]),
            lt("ffn_up_shexp.weight", &[d.n_embd, shared]),
            lt("ffn_down_shexp.weight", &[shared, d.n_embd]),
        ]);
    }
    t
}
