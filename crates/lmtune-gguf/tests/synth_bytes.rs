//! Synthetic files are byte-for-byte reproducible: the same shape, quant,
//! donor and seed always give the same file. The hashes below were recorded
//! with `write_synthetic` before it was split into smaller functions (issue
//! 19), so a refactor that changes a single byte — a metadata key's order, a
//! tensor's type, a fill value — fails here.

use lmtune_gguf::synth::{preset, quant_type, write_synthetic};
use lmtune_gguf::{write_gguf, GgufFile, MetadataValue};
use sha2::{Digest, Sha256};

/// A 256-token donor with all three per-token arrays, so padding extends each
/// of them; built in the test so the files stay small (a few MiB in all).
fn small_donor(dir: &std::path::Path) -> GgufFile {
    let path = dir.join("donor.gguf");
    let metadata = vec![
        (
            "general.architecture".to_string(),
            MetadataValue::String("llama".into()),
        ),
        (
            "tokenizer.ggml.model".to_string(),
            MetadataValue::String("gpt2".into()),
        ),
        (
            "tokenizer.ggml.tokens".to_string(),
            MetadataValue::StringArray((0..256).map(|i| format!("<t{i}>")).collect()),
        ),
        (
            "tokenizer.ggml.token_type".to_string(),
            MetadataValue::IntArray(vec![1; 256]),
        ),
        (
            "tokenizer.ggml.scores".to_string(),
            MetadataValue::FloatArray((0..256u16).map(|i| -f64::from(i)).collect()),
        ),
        (
            "tokenizer.ggml.bos_token_id".to_string(),
            MetadataValue::U32(1),
        ),
    ];
    write_gguf(&path, &metadata, &[], |_, _| Ok(())).unwrap();
    GgufFile::open(&path).unwrap()
}

fn sha256_hex(path: &std::path::Path) -> String {
    let digest = Sha256::digest(std::fs::read(path).unwrap());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// (preset, quant, padded vocabulary, sha256 of the file written with seed 42
/// and name "Synth-Phi3-Test"). Together they cover every architecture, the
/// sliding-window keys, experts (routed, shared, n_ff-wide), latent attention,
/// biases and sinks (filled with 0), K-quant rows falling back to q8_0, and
/// vocabulary padding.
const CASES: &[(&str, &str, Option<u64>, &str)] = &[
    (
        "llama-tiny",
        "q4_K",
        Some(300),
        "2db31d883015ca7e6064249ac5eed3205ce1437cb83a5fe52c6f0d748b4744af",
    ),
    (
        "gemma3-tiny",
        "q8_0",
        None,
        "fa12909977c1f84500f3420a9923b6b26bd7b17f1e2fa01bc55724e651d6d518",
    ),
    (
        "qwen2-tiny",
        "q4_0",
        None,
        "62cde46472f5c695fda56c8ad84d919cb76585bbce6dc2c21bfa768d22e0c2ce",
    ),
    (
        "qwen3-tiny",
        "q5_1",
        None,
        "b8d974e006e0939d93fb886b0dbf7307b108eb179a07ef3938d735270d334a92",
    ),
    (
        "phi3-tiny",
        "f16",
        Some(257),
        "a83f83d9f3e9282cf3c43dafc8b90c6cead906b91fdc6af993f3c46d49d7b283",
    ),
    (
        "granite-tiny",
        "q2_K",
        None,
        "29bcf0b3cc85775339bb6f2d8ff0341f71320024b197892e55d0b22cef79364d",
    ),
    (
        "gemma2-tiny",
        "q5_K",
        None,
        "637962abfd253c8f70dc9f07bb8866755a3757eb3a0eb9352099dfcaba4fa73e",
    ),
    (
        "qwen3moe-tiny",
        "q4_1",
        None,
        "87d6dbd3f67f52bb6f41bdeea620cd92697e19bec78c49e029a8bf08f7055319",
    ),
    (
        "gpt-oss-tiny",
        "q8_0",
        None,
        "9a994266b9eeb00539d55c1bacbe5896cefa8333dfa9c819cdf428f48bc79c2e",
    ),
    (
        "mixtral-tiny",
        "q3_K",
        None,
        "914234e907fe839a5258a91808e51cdd4d1dba004f6819ef1a5ede3fb8fd2eba",
    ),
    (
        "olmoe-tiny",
        "q5_0",
        None,
        "48e4d9802bb0c2bf5d44c04c7bd7bb435af1db8a3ede59d5757cf42b1d6ccc43",
    ),
    (
        "deepseek2-tiny",
        "q6_K",
        Some(320),
        "b786d2964cd5c2f515aff80185285a4096132a70741e7c07c4c1f61881e759af",
    ),
];

#[test]
fn synthetic_files_are_byte_identical_to_the_recorded_ones() {
    let dir = tempfile::tempdir().unwrap();
    let donor = small_donor(dir.path());
    let mut mismatches = Vec::new();
    for &(name, quant, n_vocab, expected) in CASES {
        let mut shape = preset(name).unwrap();
        shape.n_vocab = n_vocab;
        let path = dir.path().join(format!("{name}.gguf"));
        let q = quant_type(quant).unwrap();
        write_synthetic(&path, &shape, q, &donor, "Synth-Phi3-Test", 42).unwrap();
        let got = sha256_hex(&path);
        if got != expected {
            mismatches.push(format!("{name} {quant}: {got} != {expected}"));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

/// Each invalid shape gets the same message as before the split, the first
/// failing check wins (vocabulary, heads, experts, phi3's projection, latent
/// attention), and nothing is written.
#[test]
fn invalid_shapes_get_the_recorded_errors_in_the_recorded_order() {
    let dir = tempfile::tempdir().unwrap();
    let donor = small_donor(dir.path());
    let q8 = quant_type("q8_0").unwrap();
    let shape = |name: &str, edit: &dyn Fn(&mut lmtune_gguf::synth::SynthShape)| {
        let mut s = preset(name).unwrap();
        edit(&mut s);
        s
    };
    let cases = [
        (
            shape("llama-tiny", &|s| s.n_vocab = Some(100)),
            "invalid shape: a vocabulary of 100 is smaller than the donor's 256; only padding is supported",
        ),
        (
            shape("llama-tiny", &|s| s.n_vocab = Some(5 << 20)),
            "invalid shape: a vocabulary of 5242880 tokens is implausible",
        ),
        (
            // The vocabulary is checked before the heads.
            shape("llama-tiny", &|s| {
                s.n_vocab = Some(100);
                s.n_head_kv = 3;
            }),
            "invalid shape: a vocabulary of 100 is smaller than the donor's 256; only padding is supported",
        ),
        (
            shape("llama-tiny", &|s| s.n_head_kv = 3),
            "invalid shape: n_head = 4 must be a multiple of n_head_kv = 3 and head_dim > 0",
        ),
        (
            shape("qwen3moe-tiny", &|s| s.moe = None),
            "invalid shape: qwen3moe needs experts: n_expert > 0, 1 <= n_expert_used <= n_expert, n_ff_exp > 0 (start from --like qwen3moe-tiny)",
        ),
        (
            shape("mixtral-tiny", &|s| s.moe.as_mut().unwrap().n_expert_used = 9),
            "invalid shape: llama needs experts: n_expert > 0, 1 <= n_expert_used <= n_expert, n_ff_exp > 0 (start from --like llama-tiny)",
        ),
        (
            shape("phi3-tiny", &|s| s.head_dim = Some(32)),
            "invalid shape: phi3's output projection is n_embd × n_embd: n_head × head_dim = 128 must be n_embd = 256",
        ),
        (
            shape("deepseek2-tiny", &|s| s.mla.as_mut().unwrap().rope_dim = 64),
            "invalid shape: deepseek2 needs latent attention: kv_lora_rank > 0, v_head_dim > 0, 0 < rope_dim < head_dim (start from --like deepseek2-tiny)",
        ),
        (
            // Experts are checked before latent attention.
            shape("deepseek2-tiny", &|s| {
                s.moe = None;
                s.mla = None;
            }),
            "invalid shape: deepseek2 needs experts: n_expert > 0, 1 <= n_expert_used <= n_expert, n_ff_exp > 0 (start from --like deepseek2-tiny)",
        ),
    ];
    for (i, (shape, expected)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("bad{i}.gguf"));
        let err = write_synthetic(&path, shape, q8, &donor, "t", 1).unwrap_err();
        assert_eq!(err.to_string(), *expected, "case {i}");
        assert!(!path.exists(), "case {i} wrote a file");
    }
}
