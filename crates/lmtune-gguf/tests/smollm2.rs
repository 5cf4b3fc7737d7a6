//! The reader on the real test model (fetched by scripts/fetch-model.sh).

use std::path::PathBuf;

use lmtune_gguf::{GgufError, GgufFile, Limits};

fn model_path() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        path.exists(),
        "{} is missing: run scripts/fetch-model.sh first",
        path.display()
    );
    path
}

#[test]
fn smollm2_summary_matches_its_file() {
    let file = GgufFile::open(model_path()).unwrap();
    let s = file.summary().unwrap();
    assert_eq!(s.architecture, "llama");
    assert_eq!(s.n_layer, 30);
    assert_eq!(s.n_ctx_train, 8192);
    assert_eq!(s.n_embd, Some(576));
    assert_eq!(s.n_head, Some(9));
    assert_eq!(s.n_head_kv, Some(3));
    assert_eq!(s.n_vocab, Some(49152));
    assert_eq!(s.quant, "Q4_1");
    // llama-bench on the same file (shared/fixtures/llama-bench) reports
    // model_size 96576768 and model_n_params 134515008.
    assert_eq!(s.weights_bytes, 96_576_768);
    assert_eq!(s.n_params, 134_515_008);
    // The tensors end exactly at the end of the file.
    let end = file
        .tensors
        .iter()
        .map(|t| file.data_offset + t.offset + t.n_bytes)
        .max()
        .unwrap();
    assert_eq!(end, file.file_len);
}

#[test]
fn every_truncation_of_the_header_is_an_error_not_a_panic() {
    let bytes = std::fs::read(model_path()).unwrap();
    let header_end = GgufFile::open(model_path()).unwrap().data_offset as usize;
    // Every cut inside the first 4 KiB, then a stride through the rest of the header and the data.
    let cuts = (0..4096)
        .chain((4096..header_end).step_by(9973))
        .chain((header_end..bytes.len()).step_by(1 << 20));
    for cut in cuts {
        match GgufFile::from_bytes(&bytes[..cut], Limits::default()) {
            Err(GgufError::Truncated { .. }) | Err(GgufError::BadMagic { .. }) => {}
            other => panic!("cut at {cut}: expected a truncation error, got {other:?}"),
        }
    }
}
