//! Every architecture `synth` writes: its tiny preset round-trips through the
//! writer and the reader with exactly the tensors llama.cpp's loader creates
//! (whether llama.cpp loads and runs them is `crates/lmtune/tests/synth_corpus.rs`).

use std::path::PathBuf;

use lmtune_gguf::synth::{preset, quant_type, write_synthetic, SynthArch};
use lmtune_gguf::{GgufFile, MetadataValue};

fn donor() -> GgufFile {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(path.exists(), "run scripts/fetch-model.sh first");
    GgufFile::open(path).unwrap()
}

/// Tensors of blocks 0 and 1, and a few (name, dims) of block 0 that set the
/// architecture apart. The tiny presets: n_embd 256, 4 heads of 64, n_ff 512.
fn expected(arch: SynthArch) -> ([usize; 2], Vec<(&'static str, Vec<u64>)>) {
    match arch {
        SynthArch::Llama => ([9, 9], vec![("ffn_gate.weight", vec![256, 512])]),
        SynthArch::Gemma3 => ([13, 13], vec![("attn_q_norm.weight", vec![64])]),
        SynthArch::Qwen2 => (
            [12, 12],
            vec![
                ("attn_q.bias", vec![256]),
                ("attn_k.bias", vec![128]),
                ("attn_v.bias", vec![128]),
            ],
        ),
        SynthArch::Qwen3 => ([11, 11], vec![("attn_k_norm.weight", vec![64])]),
        SynthArch::Phi3 => (
            [6, 6],
            vec![
                ("attn_qkv.weight", vec![256, 768]),
                ("ffn_up.weight", vec![256, 1024]),
            ],
        ),
        SynthArch::Granite => ([9, 9], vec![("ffn_down.weight", vec![512, 256])]),
        SynthArch::Gemma2 => ([11, 11], vec![("post_ffw_norm.weight", vec![256])]),
        SynthArch::Qwen3Moe => (
            [12, 12],
            vec![
                ("ffn_gate_inp.weight", vec![256, 8]),
                ("ffn_gate_exps.weight", vec![256, 128, 8]),
                ("ffn_up_exps.weight", vec![256, 128, 8]),
                ("ffn_down_exps.weight", vec![128, 256, 8]),
            ],
        ),
        SynthArch::GptOss => (
            [19, 19],
            vec![
                ("attn_sinks.weight", vec![4]),
                ("attn_output.bias", vec![256]),
                ("ffn_gate_inp.bias", vec![8]),
                ("ffn_gate_exps.bias", vec![128, 8]),
                ("ffn_down_exps.bias", vec![256, 8]),
                ("ffn_up_exps.weight", vec![256, 128, 8]),
            ],
        ),
        // Full-width Q/K norms; experts n_ff wide (the tiny preset's 128).
        SynthArch::Olmoe => (
            [12, 12],
            vec![
                ("attn_q_norm.weight", vec![256]),
                ("attn_k_norm.weight", vec![256]),
                ("ffn_gate_exps.weight", vec![256, 128, 8]),
                ("ffn_down_exps.weight", vec![128, 256, 8]),
            ],
        ),
        // Block 0 dense (leading_dense_block_count = 1), block 1 experts.
        SynthArch::Deepseek2 => (
            [13, 17],
            vec![
                ("attn_q_a.weight", vec![256, 64]),
                ("attn_q_b.weight", vec![64, 256]),
                ("attn_kv_a_mqa.weight", vec![256, 96]),
                ("attn_k_b.weight", vec![32, 64, 4]),
                ("attn_v_b.weight", vec![64, 32, 4]),
                ("attn_output.weight", vec![128, 256]),
                ("ffn_gate.weight", vec![256, 512]),
            ],
        ),
    }
}

#[test]
fn every_tiny_preset_round_trips_with_its_architectures_tensors() {
    let donor = donor();
    let dir = tempfile::tempdir().unwrap();
    for arch in SynthArch::ALL {
        let shape = preset(&arch.tiny_preset()).unwrap();
        assert_eq!(shape.arch, arch);
        let path = dir.path().join(format!("{}.gguf", arch.as_str()));
        write_synthetic(&path, &shape, quant_type("q8_0").unwrap(), &donor, "t", 1).unwrap();
        let file = GgufFile::open(&path).unwrap();
        let a = file.anatomy().unwrap();
        assert_eq!(a.architecture, arch.as_str());
        assert_eq!((a.n_layer, a.n_embd), (2, 256), "{arch:?}");
        let (per_block, distinctive) = expected(arch);
        let per_layer: Vec<usize> = a.layers.iter().map(|l| l.tensors.n_tensors).collect();
        assert_eq!(per_layer, per_block, "{arch:?}");
        let tied = matches!(arch, SynthArch::Gemma2 | SynthArch::Gemma3);
        assert_eq!(a.tied_embeddings, tied, "{arch:?}");
        assert_eq!(
            file.tensors.len(),
            per_block.iter().sum::<usize>() + 2 + usize::from(!tied)
        );
        for (name, dims) in distinctive {
            let t = file
                .tensors
                .iter()
                .find(|t| t.name == format!("blk.0.{name}"))
                .unwrap_or_else(|| panic!("{arch:?}: no blk.0.{name}"));
            assert_eq!(t.dims, dims, "{arch:?} {name}");
            // Biases, norms and the router stay f32; matrices take the quant.
            let f32_expected =
                dims.len() == 1 || name.ends_with(".bias") || name.starts_with("ffn_gate_inp");
            assert_eq!(t.ggml_type.0 == 0, f32_expected, "{arch:?} {name}");
        }
        // File size: header + data, all of it written (no short tensor).
        let data_end = file
            .tensors
            .iter()
            .map(|t| t.offset + t.n_bytes)
            .max()
            .unwrap();
        assert!(std::fs::metadata(&path).unwrap().len() >= data_end);
        assert!(
            std::fs::metadata(&path).unwrap().len() < 50 << 20,
            "{arch:?} is not tiny"
        );
    }
}

#[test]
fn architecture_keys_are_written() {
    let donor = donor();
    let dir = tempfile::tempdir().unwrap();
    let q8 = quant_type("q8_0").unwrap();
    let keys = |arch: SynthArch| {
        let path = dir.path().join(format!("{}.gguf", arch.as_str()));
        write_synthetic(
            &path,
            &preset(&arch.tiny_preset()).unwrap(),
            q8,
            &donor,
            "t",
            1,
        )
        .unwrap();
        GgufFile::open(&path).unwrap()
    };
    let granite = keys(SynthArch::Granite);
    for k in [
        "embedding_scale",
        "residual_scale",
        "attention.scale",
        "logit_scale",
    ] {
        assert!(
            matches!(
                granite.get(&format!("granite.{k}")),
                Some(MetadataValue::F32(_))
            ),
            "{k}"
        );
    }
    let gemma2 = keys(SynthArch::Gemma2);
    for k in ["attn_logit_softcapping", "final_logit_softcapping"] {
        assert!(
            matches!(
                gemma2.get(&format!("gemma2.{k}")),
                Some(MetadataValue::F32(_))
            ),
            "{k}"
        );
    }
    assert_eq!(
        gemma2
            .get("gemma2.attention.sliding_window")
            .and_then(MetadataValue::as_u64),
        Some(4096)
    );
    let moe = keys(SynthArch::Qwen3Moe);
    let u = |k: &str| {
        moe.get(&format!("qwen3moe.{k}"))
            .and_then(MetadataValue::as_u64)
    };
    assert_eq!(
        (
            u("expert_count"),
            u("expert_used_count"),
            u("expert_feed_forward_length")
        ),
        (Some(8), Some(2), Some(128))
    );
    let oss = keys(SynthArch::GptOss);
    assert_eq!(
        oss.get("gpt-oss.attention.sliding_window")
            .and_then(MetadataValue::as_u64),
        Some(128)
    );
    assert!(oss.get("gpt-oss.expert_feed_forward_length").is_some());
    assert!(oss
        .tensors
        .iter()
        .all(|t| !t.name.ends_with("ffn_norm.weight")));
    let ds = keys(SynthArch::Deepseek2);
    let u = |k: &str| {
        ds.get(&format!("deepseek2.{k}"))
            .and_then(MetadataValue::as_u64)
    };
    // One KV "head" of the compressed KV + the RoPE part, as MLA files have.
    assert_eq!(
        (
            u("attention.head_count_kv"),
            u("attention.key_length"),
            u("attention.value_length"),
            u("attention.key_length_mla"),
            u("attention.value_length_mla"),
            u("rope.dimension_count"),
        ),
        (Some(1), Some(96), Some(64), Some(64), Some(32), Some(32))
    );
    assert_eq!(
        (
            u("leading_dense_block_count"),
            u("expert_shared_count"),
            u("attention.q_lora_rank")
        ),
        (Some(1), Some(1), Some(64))
    );
    // llama.cpp gives a name with "phi3" phi-3's token attributes, which the
    // donor's vocabulary lacks: the name is spelled apart.
    let path = dir.path().join("phi.gguf");
    let phi3 = preset("phi3-tiny").unwrap();
    write_synthetic(&path, &phi3, q8, &donor, "lmtune-synth-phi3-tiny", 1).unwrap();
    let name = GgufFile::open(&path).unwrap().get("general.name").cloned();
    assert!(matches!(name, Some(MetadataValue::String(n)) if !n.contains("phi3")));
}

#[test]
fn moe_without_experts_and_phi3_with_a_narrow_query_are_refused() {
    let donor = donor();
    let dir = tempfile::tempdir().unwrap();
    let q8 = quant_type("q8_0").unwrap();
    let mut moe = preset("qwen3moe-tiny").unwrap();
    moe.moe = None;
    let err = write_synthetic(&dir.path().join("a.gguf"), &moe, q8, &donor, "t", 1).unwrap_err();
    assert!(err.to_string().contains("needs experts"), "{err}");
    let mut phi3 = preset("phi3-tiny").unwrap();
    phi3.head_dim = Some(32);
    let err = write_synthetic(&dir.path().join("b.gguf"), &phi3, q8, &donor, "t", 1).unwrap_err();
    assert!(err.to_string().contains("n_embd"), "{err}");
}

#[test]
fn the_moe_test_preset_is_about_a_gibibyte_at_q8_0() {
    // Not written (1.3 GiB): its size from the shape alone.
    let s = preset("qwen3moe-test").unwrap();
    let m = s.moe.unwrap();
    assert_eq!((m.n_expert, m.n_expert_used), (64, 4));
    let head_dim = s.head_dim.unwrap();
    let attn = s.n_embd * head_dim * (2 * s.n_head + 2 * s.n_head_kv);
    let experts = 3 * s.n_embd * m.n_ff_exp * m.n_expert;
    let embeddings = 2 * s.n_embd * 49152;
    let params = s.n_layer * (attn + experts) + embeddings;
    let bytes = params / 32 * 34;
    assert!((1 << 30..3 << 29).contains(&bytes), "{bytes} bytes");
}
