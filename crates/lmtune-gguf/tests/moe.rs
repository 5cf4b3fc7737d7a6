//! A mixture-of-experts model's anatomy: routed experts apart from the rest
//! of each block, and the bytes a generated token reads.

use lmtune_gguf::{write_gguf, GgmlType, GgufFile, MetadataValue, TensorSpec};

const F32: GgmlType = GgmlType(0);

fn spec(name: &str, dims: &[u64]) -> TensorSpec {
    TensorSpec {
        name: name.into(),
        dims: dims.to_vec(),
        ggml_type: F32,
    }
}

#[test]
fn routed_experts_are_counted_apart_and_a_token_reads_used_of_count() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("moe.gguf");
    let a = "qwen3moe";
    let u32v = |k: &str, v: u32| (format!("{a}.{k}"), MetadataValue::U32(v));
    let metadata = vec![
        (
            "general.architecture".to_string(),
            MetadataValue::String(a.into()),
        ),
        u32v("block_count", 2),
        u32v("context_length", 4096),
        u32v("embedding_length", 64),
        u32v("attention.head_count", 4),
        u32v("attention.head_count_kv", 2),
        u32v("expert_count", 8),
        u32v("expert_used_count", 2),
        u32v("expert_feed_forward_length", 32),
    ];
    let mut tensors = vec![spec("token_embd.weight", &[64, 100])];
    for il in 0..2 {
        let b = |s: &str| format!("blk.{il}.{s}.weight");
        tensors.extend([
            spec(&b("attn_q"), &[64, 64]),
            spec(&b("ffn_gate_inp"), &[64, 8]),
            spec(&b("ffn_gate_exps"), &[64, 32, 8]),
            spec(&b("ffn_up_exps"), &[64, 32, 8]),
            spec(&b("ffn_down_exps"), &[32, 64, 8]),
            spec(&b("ffn_up_shexp"), &[64, 32]),
        ]);
    }
    tensors.push(spec("output_norm.weight", &[64]));
    tensors.push(spec("output.weight", &[64, 100]));
    write_gguf(&path, &metadata, &tensors, |t, out| {
        out.write_all(&vec![0u8; t.n_bytes().unwrap() as usize])
    })
    .unwrap();

    let m = GgufFile::open(&path).unwrap().anatomy().unwrap();
    let e = m.experts.expect("expert_count and expert_used_count");
    assert_eq!((e.count, e.used), (8, 2));
    let routed = 3 * 64 * 32 * 8 * 4;
    let dense = (64 * 64 + 64 * 8 + 64 * 32) * 4;
    for layer in &m.layers {
        assert_eq!(layer.routed_experts.bytes, routed);
        assert_eq!(layer.routed_experts.n_tensors, 3);
        assert_eq!(layer.tensors.bytes, routed + dense);
        // The router and the shared expert run for every token.
        assert_eq!(
            layer.active_bytes(m.expert_routing()),
            dense + routed * 2 / 8
        );
    }
    let output = 64 * 100 * 4 + 64 * 4;
    assert_eq!(m.active_weights_bytes(), 2 * (dense + routed / 4) + output);
}
