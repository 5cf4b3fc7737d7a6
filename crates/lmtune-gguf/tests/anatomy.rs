//! Model anatomy: the real test model against values computed by hand, and
//! synthetic files round-tripping through the writer and the reader.

use std::path::PathBuf;

use lmtune_gguf::synth::{preset, quant_type, write_synthetic, SynthArch, SynthShape};
use lmtune_gguf::{write_gguf, GgmlType, GgufFile, MetadataValue};

const F16: GgmlType = GgmlType(1);
const Q8_0: GgmlType = GgmlType(8);

fn smollm2() -> GgufFile {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(path.exists(), "run scripts/fetch-model.sh first");
    GgufFile::open(path).unwrap()
}

/// By hand from the file's tensor list: each block has two f32 norms of
/// 576 × 4 B, q/output 576×576 and k/v 576×192 and three FFN 576×1536
/// matrices in q4_1 (20 B per 32 weights); token_embd is q8_0 (34 B per 32)
/// and the output layer is only its norm (embeddings are tied).
#[test]
fn smollm2_anatomy_matches_hand_computed_values() {
    let a = smollm2().anatomy().unwrap();
    assert_eq!(
        (
            a.n_layer,
            a.n_embd,
            a.n_head,
            a.n_head_kv,
            a.head_dim_k,
            a.head_dim_v
        ),
        (30, 576, 9, 3, 64, 64)
    );
    assert_eq!(
        (a.n_ff, a.n_vocab, a.n_ctx_train),
        (Some(1536), 49152, 8192)
    );
    let q4_1 = |n: u64| n / 32 * 20;
    let per_layer = 2 * 576 * 4 + 2 * q4_1(576 * 576) + 2 * q4_1(576 * 192) + 3 * q4_1(576 * 1536);
    assert_eq!(per_layer, 2_216_448);
    assert!(a
        .layers
        .iter()
        .all(|l| l.tensors.bytes == per_layer && l.tensors.n_tensors == 9));
    assert_eq!(a.input.bytes, 576 * 49152 / 32 * 34);
    assert!(a.tied_embeddings);
    assert_eq!(a.output.bytes, 576 * 4);
    assert_eq!(a.other.n_tensors, 0);
    assert_eq!(
        a.weights_bytes,
        30 * per_layer + a.input.bytes + a.output.bytes
    );
    // KV per token per layer: 3 KV heads × 64 dims, K and V.
    assert_eq!(a.kv_bytes_per_token_layer(0, F16, F16), 3 * 64 * 2 * 2);
    assert_eq!(
        a.kv_bytes_per_token_layer(0, Q8_0, Q8_0),
        2 * (192 / 32 * 34)
    );
    assert_eq!(
        a.kv_bytes(8192, 512, false, F16, F16, |_| true),
        8192 * 30 * 768
    );
    assert_eq!(
        a.kv_bytes(8192, 512, false, F16, F16, |il| il >= 20),
        8192 * 10 * 768
    );
    assert!(!a.synthetic);
}

fn donor_with_small_vocab() -> (tempfile::TempDir, GgufFile) {
    // A tiny donor: a real tokenizer is not needed to test the layout.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("donor.gguf");
    let tokens: Vec<String> = (0..256).map(|i| format!("<t{i}>")).collect();
    let metadata = vec![
        (
            "general.architecture".to_string(),
            MetadataValue::String("llama".into()),
        ),
        ("llama.block_count".to_string(), MetadataValue::U32(1)),
        ("llama.context_length".to_string(), MetadataValue::U32(128)),
        (
            "tokenizer.ggml.model".to_string(),
            MetadataValue::String("gpt2".into()),
        ),
        (
            "tokenizer.ggml.tokens".to_string(),
            MetadataValue::StringArray(tokens),
        ),
        (
            "tokenizer.ggml.token_type".to_string(),
            MetadataValue::IntArray(vec![1; 256]),
        ),
    ];
    write_gguf(&path, &metadata, &[], |_, _| Ok(())).unwrap();
    let donor = GgufFile::open(&path).unwrap();
    (dir, donor)
}

#[test]
fn synthetic_shapes_round_trip_through_writer_and_reader() {
    let (dir, donor) = donor_with_small_vocab();
    let cases = [
        // (what, shape, quant)
        (
            "gqa",
            SynthShape {
                arch: SynthArch::Llama,
                n_layer: 3,
                n_embd: 256,
                n_head: 8,
                n_head_kv: 2,
                n_ff: 512,
                head_dim: None,
                n_ctx_train: 4096,
                sliding_window: None,
                n_vocab: None,
                moe: None,
                mla: None,
            },
            "q4_0",
        ),
        (
            "head-dim",
            SynthShape {
                arch: SynthArch::Llama,
                n_layer: 2,
                n_embd: 256,
                n_head: 4,
                n_head_kv: 4,
                n_ff: 256,
                head_dim: Some(128),
                n_ctx_train: 1024,
                sliding_window: None,
                n_vocab: None,
                moe: None,
                mla: None,
            },
            "q8_0",
        ),
        (
            "k-quant",
            SynthShape {
                arch: SynthArch::Llama,
                n_layer: 2,
                n_embd: 512,
                n_head: 8,
                n_head_kv: 4,
                n_ff: 768,
                head_dim: None,
                n_ctx_train: 2048,
                sliding_window: None,
                n_vocab: None,
                moe: None,
                mla: None,
            },
            "q4_K",
        ),
        (
            "f16",
            SynthShape {
                arch: SynthArch::Llama,
                n_layer: 1,
                n_embd: 64,
                n_head: 2,
                n_head_kv: 1,
                n_ff: 128,
                head_dim: None,
                n_ctx_train: 512,
                sliding_window: None,
                n_vocab: None,
                moe: None,
                mla: None,
            },
            "f16",
        ),
        (
            "swa",
            SynthShape {
                arch: SynthArch::Llama,
                n_layer: 6,
                n_embd: 128,
                n_head: 4,
                n_head_kv: 2,
                n_ff: 256,
                head_dim: None,
                n_ctx_train: 8192,
                sliding_window: Some((512, 3)),
                n_vocab: Some(300),
                moe: None,
                mla: None,
            },
            "q6_K",
        ),
    ];
    for (what, shape, quant) in cases {
        let path = dir.path().join(format!("{what}.gguf"));
        let q = quant_type(quant).unwrap();
        write_synthetic(&path, &shape, q, &donor, what, 7).unwrap();
        let file = GgufFile::open(&path).unwrap();
        let a = file.anatomy().unwrap();
        let head_dim = shape.head_dim.unwrap_or(shape.n_embd / shape.n_head);
        assert_eq!(
            (a.n_layer, a.n_embd, a.n_head, a.n_head_kv, a.n_ff),
            (
                shape.n_layer,
                shape.n_embd,
                shape.n_head,
                shape.n_head_kv,
                Some(shape.n_ff)
            ),
            "{what}"
        );
        assert_eq!(
            (a.head_dim_k, a.head_dim_v, a.n_vocab, a.n_ctx_train),
            (
                head_dim,
                head_dim,
                shape.n_vocab.unwrap_or(256),
                shape.n_ctx_train
            ),
            "{what}"
        );
        assert!(a.synthetic && !a.tied_embeddings, "{what}");
        // Every byte is accounted for, and the data section ends the file exactly.
        let end = file
            .tensors
            .iter()
            .map(|t| file.data_offset + t.offset + t.n_bytes)
            .max()
            .unwrap();
        assert!(
            file.file_len - end < 32,
            "{what}: only alignment padding after the last tensor"
        );
        assert_eq!(
            a.weights_bytes,
            a.layers.iter().map(|l| l.tensors.bytes).sum::<u64>() + a.input.bytes + a.output.bytes,
            "{what}"
        );
        // Rows that do not fit the K-quant's 256 blocks fall back to q8_0.
        let q_name = q.name();
        assert!(
            a.bytes_by_type.contains_key(&q_name)
                || quant == "q6_K" && a.bytes_by_type.contains_key("q8_0"),
            "{what}: {:?}",
            a.bytes_by_type
        );
        let expected_kv = shape.n_head_kv * head_dim * 2 * 2;
        assert_eq!(
            a.kv_bytes_per_token_layer(0, F16, F16),
            expected_kv,
            "{what}"
        );
        if what == "swa" {
            let swa: Vec<bool> = a.layers.iter().map(|l| l.is_swa).collect();
            assert_eq!(swa, [true, true, false, true, true, false]);
            assert_eq!(a.sliding_window, Some(512));
            // SWA layers keep window + ubatch cells, the dense ones n_ctx.
            assert_eq!(
                a.kv_bytes(8192, 512, false, F16, F16, |_| true),
                (4 * 1024 + 2 * 8192) * expected_kv
            );
        } else {
            assert!(a.layers.iter().all(|l| !l.is_swa));
        }
    }
}

#[test]
fn presets_have_their_published_shapes() {
    let p = preset("llama-7b").unwrap();
    assert_eq!(
        (p.n_layer, p.n_embd, p.n_head, p.n_ff),
        (32, 4096, 32, 11008)
    );
    assert_eq!(preset("LLAMA-70B").unwrap().n_head_kv, 8);
    assert!(preset("gpt-5").is_none());
}
