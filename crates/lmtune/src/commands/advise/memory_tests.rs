use lmtune_core::knobs::KvType;

use super::*;
use crate::commands::advise::claims::Outcome;
use crate::commands::advise::experiments::ExperimentId;
use crate::commands::advise::test_records::{record, with_dry_run, with_kv};

fn outcomes(id: ExperimentId, records: Vec<Record>) -> Outcomes {
    let mut o = Outcomes::new();
    o.insert(
        id,
        Outcome::Ran {
            records,
            simulated: false,
        },
    );
    o
}

#[test]
fn seven_b_kv_figures_are_exact() {
    let mha = KvShape::preset("llama-7b").unwrap();
    let gqa = KvShape::preset("llama3-8b").unwrap();
    // 32 layers × K and V × 32 (8) heads × 128 × 2 bytes.
    assert_eq!(mha.kv_bytes_per_token_f16, 524_288);
    assert_eq!(gqa.kv_bytes_per_token_f16, 131_072);
    assert_eq!(mha.bytes_at(4096), 2 << 30);
    assert_eq!(mha.attention, "MHA");
    assert_eq!(gqa.attention, "GQA");
}

#[test]
fn the_7b_rule_holds_for_mha_only() {
    let sevens = [
        KvShape::preset("llama-7b").unwrap(),
        KvShape::preset("llama3-8b").unwrap(),
    ];
    let own = KvShape::dense("smol", 30, 9, 3, 64);
    let v = kv_7b(ClaimId::Kv4k7b, 4096, (1.0, 2.0), &sevens, &own);
    assert_eq!(v.verdict, Verdict::DoesNotHold);
    assert!(v.reason.contains("llama3-8b"), "{}", v.reason);
    let v = kv_7b(ClaimId::Kv4k7b, 4096, (1.0, 2.0), &sevens[..1], &own);
    assert_eq!(v.verdict, Verdict::Holds, "{}", v.reason);
    let v = kv_7b(ClaimId::Kv32k7b, 32768, (8.0, 16.0), &sevens[..1], &own);
    assert_eq!(
        v.verdict,
        Verdict::Holds,
        "16 GiB is roughly 16 GB: {}",
        v.reason
    );
}

#[test]
fn kv_rows_compare_with_llama_cpp_and_say_why_not_measured() {
    let r = with_dry_run(record("tg16", 2, &[1.0]), 100, 1000, 10);
    let mut r2 = r.clone();
    r2.ctx.n_ctx = 2048;
    let rows = kv_rows(&[2048, 4096, 32768], |n| n / 2 + 5, &[r, r2], 8192);
    assert_eq!(rows[0].llama_cpp_bytes, Some(1000));
    assert!((rows[1].difference_pct.unwrap() - 105.3).abs() < 0.1);
    assert!(rows[2]
        .not_measured
        .as_deref()
        .unwrap()
        .contains("trained context"));
}

#[test]
fn q8_cache_halves_memory_and_a_slowdown_breaks_the_claim() {
    let f16 = with_kv(
        with_dry_run(record("tg32", 2, &[100.0, 101.0, 99.0]), 1, 1000, 1),
        KvType::F16,
    );
    let q8 = with_kv(
        with_dry_run(record("tg32", 2, &[99.0, 100.5, 99.5]), 1, 531, 1),
        KvType::Q8_0,
    );
    let v = kv_q8(&outcomes(ExperimentId::KvType, vec![f16.clone(), q8]));
    assert_eq!(v.verdict, Verdict::Holds, "{}", v.reason);
    let slow = with_kv(
        with_dry_run(record("tg32", 2, &[70.0, 71.0, 69.0]), 1, 531, 1),
        KvType::Q8_0,
    );
    let v = kv_q8(&outcomes(ExperimentId::KvType, vec![f16, slow]));
    assert_eq!(v.verdict, Verdict::DoesNotHold, "{}", v.reason);
}

fn batch(b: u32, samples: &[f64], compute: u64) -> Record {
    let mut r = with_dry_run(record("pp2048", 2, samples), 1000, 100, compute);
    r.ctx.n_batch = b;
    r.ctx.n_ubatch = b;
    r
}

#[test]
fn batch_claims() {
    let o = outcomes(
        ExperimentId::Batch,
        vec![
            batch(512, &[100.0, 101.0, 99.0], 50),
            batch(2048, &[130.0, 131.0, 129.0], 400),
        ],
    );
    assert_eq!(batch_512(&o).verdict, Verdict::DoesNotHold);
    let m = batch_memory(&o);
    assert_eq!(m.verdict, Verdict::DoesNotHold, "{}", m.reason);
    let o = outcomes(
        ExperimentId::Batch,
        vec![
            batch(512, &[100.0, 101.0, 99.0], 50),
            batch(2048, &[100.5, 100.0, 99.5], 60),
        ],
    );
    assert_eq!(batch_512(&o).verdict, Verdict::Holds);
    assert_eq!(batch_memory(&o).verdict, Verdict::Holds);
}

fn quant(file: &str, bytes: u64, samples: &[f64]) -> Record {
    let mut r = record("tg32", 2, samples);
    r.fingerprint.model.file_name = file.into();
    r.fingerprint.model.weights_bytes = bytes;
    r.fingerprint.model.n_params = 1000;
    r
}

#[test]
fn quant_claims() {
    let labels: Vec<(String, String)> = [
        ("a-q4.gguf", "Q4_K"),
        ("a-q5.gguf", "Q5_K"),
        ("a-q8.gguf", "Q8_0"),
    ]
    .iter()
    .map(|(f, l)| (f.to_string(), l.to_string()))
    .collect();
    let o = outcomes(
        ExperimentId::Quant,
        vec![
            quant("a-q8.gguf", 1060, &[50.0, 51.0, 49.0]),
            quant("a-q4.gguf", 560, &[80.0, 81.0, 79.0]),
            quant("a-q5.gguf", 690, &[70.0, 71.0, 69.0]),
        ],
    );
    assert_eq!(quant_memory(&o, &labels).verdict, Verdict::Holds);
    let v = quant_faster(&o, &labels);
    assert_eq!(v.verdict, Verdict::Holds, "{}", v.reason);
    assert_eq!(v.instead, "Q4_K was the fastest here");
}
