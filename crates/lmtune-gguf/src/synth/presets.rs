//! Known shapes (`synth --like NAME`) and one tiny test shape per architecture.

use super::{SynthArch, SynthShape};

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
            moe: None,
            mla: None,
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
            moe: None,
            mla: None,
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
            moe: None,
            mla: None,
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
            moe: None,
            mla: None,
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
            moe: None,
            mla: None,
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
            moe: None,
            mla: None,
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
            moe: None,
            mla: None,
        },
    ),
    // Published shapes of other families (the vocabulary is the donor's).
    (
        "qwen2.5-0.5b",
        SynthShape::dense(SynthArch::Qwen2, 24, 896, 14, 2, 4864, None, 32768),
    ),
    (
        "qwen3-0.6b",
        SynthShape::dense(SynthArch::Qwen3, 28, 1024, 16, 8, 3072, Some(128), 40960),
    ),
    (
        "phi3-mini",
        SynthShape::dense(SynthArch::Phi3, 32, 3072, 32, 32, 8192, None, 4096),
    ),
    (
        "granite3-2b",
        SynthShape::dense(SynthArch::Granite, 40, 2048, 32, 8, 8192, None, 4096),
    ),
    (
        "gemma2-2b",
        SynthShape::dense(SynthArch::Gemma2, 26, 2304, 8, 4, 9216, Some(256), 8192)
            .with_window(4096, 2),
    ),
    (
        // Qwen3-30B-A3B: 48 layers of 128 experts, 8 used (~17 GiB at q4_0).
        "qwen3moe-30b-a3b",
        SynthShape::dense(SynthArch::Qwen3Moe, 48, 2048, 32, 4, 6144, Some(128), 40960)
            .with_experts(128, 8, 768),
    ),
    (
        // The same shape under the name people search for.
        "qwen3-30b-a3b",
        SynthShape::dense(SynthArch::Qwen3Moe, 48, 2048, 32, 4, 6144, Some(128), 40960)
            .with_experts(128, 8, 768),
    ),
    (
        // Mixtral-8x7B: a llama of 32 layers whose FFN is 8 experts of
        // 14336 (2 used) (~24 GiB at q4_0).
        "mixtral-8x7b",
        SynthShape::dense(SynthArch::Llama, 32, 4096, 32, 8, 14336, None, 32768)
            .with_experts(8, 2, 14336),
    ),
    (
        // OLMoE-1B-7B: 16 layers of 64 experts of 1024, 8 used (~3.7 GiB at q4_0).
        "olmoe-1b-7b",
        SynthShape::dense(SynthArch::Olmoe, 16, 2048, 16, 16, 1024, None, 4096)
            .with_experts(64, 8, 1024),
    ),
    (
        // gpt-oss-20b: 24 layers of 32 experts, 4 used, head_dim 64 (real
        // files keep experts in MXFP4; here they take --quant).
        "gpt-oss-20b",
        SynthShape::dense(SynthArch::GptOss, 24, 2880, 64, 8, 2880, Some(64), 131072)
            .with_window(128, 2)
            .with_experts(32, 4, 2880),
    ),
    (
        // DeepSeek-V2-Lite: 27 layers (the first dense), MLA with no query
        // compression (kv rank 512, heads of 128 + 64 RoPE, values 128),
        // 64 routed experts (6 used) and 2 shared of 1408.
        "deepseek2-lite",
        SynthShape::dense(
            SynthArch::Deepseek2,
            27,
            2048,
            16,
            16,
            10944,
            Some(192),
            163840,
        )
        .with_experts(64, 6, 1408)
        .with_shared_experts(2, 1)
        .with_mla(0, 512, 64, 128),
    ),
    (
        // A ~1.3 GiB (q8_0) MoE to measure expert routing on: 64 experts, 4 used.
        "qwen3moe-test",
        SynthShape::dense(SynthArch::Qwen3Moe, 12, 1024, 16, 4, 2048, Some(64), 32768)
            .with_experts(64, 4, 512),
    ),
    // Tiny test models, one per architecture: 2 layers, n_embd 256 (a few
    // tens of MiB, mostly the donor's vocabulary), loaded in tests.
    (
        "llama-tiny",
        SynthShape::dense(SynthArch::Llama, 2, 256, 4, 2, 512, None, 4096),
    ),
    (
        "gemma3-tiny",
        SynthShape::dense(SynthArch::Gemma3, 2, 256, 4, 1, 512, Some(64), 4096).with_window(512, 6),
    ),
    (
        "qwen2-tiny",
        SynthShape::dense(SynthArch::Qwen2, 2, 256, 4, 2, 512, None, 4096),
    ),
    (
        "qwen3-tiny",
        SynthShape::dense(SynthArch::Qwen3, 2, 256, 4, 2, 512, Some(64), 4096),
    ),
    (
        "phi3-tiny",
        SynthShape::dense(SynthArch::Phi3, 2, 256, 4, 4, 512, None, 4096),
    ),
    (
        "granite-tiny",
        SynthShape::dense(SynthArch::Granite, 2, 256, 4, 2, 512, None, 4096),
    ),
    (
        "gemma2-tiny",
        SynthShape::dense(SynthArch::Gemma2, 2, 256, 4, 2, 512, Some(64), 4096)
            .with_window(4096, 2),
    ),
    (
        "qwen3moe-tiny",
        SynthShape::dense(SynthArch::Qwen3Moe, 2, 256, 4, 2, 512, Some(64), 4096)
            .with_experts(8, 2, 128),
    ),
    (
        "gpt-oss-tiny",
        SynthShape::dense(SynthArch::GptOss, 2, 256, 4, 2, 512, Some(64), 4096)
            .with_window(128, 2)
            .with_experts(8, 2, 128),
    ),
    (
        "mixtral-tiny",
        SynthShape::dense(SynthArch::Llama, 2, 256, 4, 2, 128, None, 4096).with_experts(8, 2, 128),
    ),
    (
        "olmoe-tiny",
        SynthShape::dense(SynthArch::Olmoe, 2, 256, 4, 4, 128, None, 4096).with_experts(8, 2, 128),
    ),
    (
        "deepseek2-tiny",
        SynthShape::dense(SynthArch::Deepseek2, 2, 256, 4, 4, 512, Some(64), 4096)
            .with_experts(8, 2, 128)
            .with_shared_experts(1, 1)
            .with_mla(64, 64, 32, 32),
    ),
];

pub fn preset(name: &str) -> Option<SynthShape> {
    PRESETS
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, s)| s.clone())
}
