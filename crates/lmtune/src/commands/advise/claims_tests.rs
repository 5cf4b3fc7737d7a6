use super::*;
use crate::commands::advise::offload::{
    full_gpu, hybrid_threads, offload_models, offload_proportional,
};
use crate::commands::advise::test_records::record;

fn outcomes(id: ExperimentId, records: Vec<Record>, simulated: bool) -> Outcomes {
    let mut o = Outcomes::new();
    o.insert(id, Outcome::Ran { records, simulated });
    o
}

const FAST: [f64; 3] = [100.0, 101.0, 99.0];
const SLOW: [f64; 3] = [80.0, 81.0, 79.0];
const NOISY: [f64; 3] = [60.0, 140.0, 100.0];

#[test]
fn physical_threads_hold_when_they_are_the_fastest() {
    let o = outcomes(
        ExperimentId::Threads,
        vec![
            record("tg32", 1, &SLOW),
            record("tg32", 4, &FAST),
            record("pp256", 4, &FAST),
            record("pp256", 8, &SLOW),
        ],
        false,
    );
    let v = threads_physical(&o, 4);
    assert_eq!(v.verdict, Verdict::Holds, "{}", v.reason);
    assert_eq!(v.instead, "threads = 4");
}

#[test]
fn physical_threads_do_not_hold_when_another_count_is_faster() {
    let o = outcomes(
        ExperimentId::Threads,
        vec![record("tg32", 3, &FAST), record("tg32", 4, &SLOW)],
        false,
    );
    let v = threads_physical(&o, 4);
    assert_eq!(v.verdict, Verdict::DoesNotHold, "{}", v.reason);
    assert!(v.instead.starts_with("threads = 3"), "{}", v.instead);
    let e = &v.effects[0];
    assert!(e.value > 20.0 && e.low.unwrap() > 0.0, "{e:?}");
}

#[test]
fn noisy_threads_cannot_be_told_apart() {
    let o = outcomes(
        ExperimentId::Threads,
        vec![
            record("tg32", 3, &NOISY),
            record("tg32", 4, &[95.0, 96.0, 94.0]),
        ],
        false,
    );
    assert_eq!(threads_physical(&o, 4).verdict, Verdict::CannotTest);
}

#[test]
fn smt_needs_more_logical_than_physical_cores() {
    let v = smt_slower(&Outcomes::new(), 2, 2);
    assert_eq!(v.verdict, Verdict::CannotTest);
    assert!(v.reason.contains("no SMT"), "{}", v.reason);
    let o = outcomes(
        ExperimentId::Threads,
        vec![
            record("tg32", 4, &FAST),
            record("tg32", 8, &SLOW),
            record("pp256", 4, &FAST),
            record("pp256", 8, &SLOW),
        ],
        false,
    );
    assert_eq!(smt_slower(&o, 4, 8).verdict, Verdict::Holds);
    let o = outcomes(
        ExperimentId::Threads,
        vec![record("tg32", 4, &FAST), record("tg32", 8, &FAST)],
        false,
    );
    assert_eq!(smt_slower(&o, 4, 8).verdict, Verdict::DoesNotHold);
}

#[test]
fn an_experiment_that_did_not_run_gives_its_reason() {
    let mut o = Outcomes::new();
    o.insert(
        ExperimentId::Concurrency,
        Outcome::NotHere("llama-server is not built here".into()),
    );
    let v = batch_server(&o);
    assert_eq!(v.verdict, Verdict::CannotTest);
    assert_eq!(v.reason, "llama-server is not built here");
}

#[test]
fn the_additive_model_is_the_harmonic_mix() {
    let (p, a) = offload_models(10.0, 100.0, 0.5);
    assert!((p - 55.0).abs() < 1e-9);
    assert!((a - 1.0 / (0.05 + 0.005)).abs() < 1e-9);
}

fn offload_record(ngl: u32, samples: &[f64]) -> Record {
    let mut r = record("tg32", 4, samples);
    r.load.n_gpu_layers = ngl;
    r
}

#[test]
fn offload_prefers_the_model_closer_to_the_measurements() {
    // 31 offloadable layers; CPU 10 t/s, GPU 100 t/s, the middle additive.
    let mid = |f: f64| offload_models(10.0, 100.0, f).1;
    let f = 15.0 / 31.0;
    let records = vec![
        offload_record(0, &[10.0, 10.1, 9.9]),
        offload_record(15, &[mid(f), mid(f) * 1.01, mid(f) * 0.99]),
        offload_record(31, &[100.0, 101.0, 99.0]),
    ];
    let o = outcomes(ExperimentId::Offload, records.clone(), false);
    assert_eq!(offload_proportional(&o).verdict, Verdict::DoesNotHold);
    let g = full_gpu(&o);
    assert_eq!(g.verdict, Verdict::Holds, "{}", g.reason);
    assert!((g.effects[0].value - 10.0).abs() < 0.2);
    // The same numbers simulated: labelled, never a verdict.
    let o = outcomes(ExperimentId::Offload, records, true);
    for v in [full_gpu(&o), offload_proportional(&o)] {
        assert_eq!(v.verdict, Verdict::CannotTest);
        assert!(
            v.simulated && v.reason.contains("SIMULATED"),
            "{}",
            v.reason
        );
    }
}

#[test]
fn hybrid_threads_need_a_gpu() {
    let v = hybrid_threads(&Outcomes::new(), 2);
    assert_eq!(v.verdict, Verdict::CannotTest);
    assert!(
        v.reason.contains("no GPU") && v.reason.contains("2 physical cores"),
        "{}",
        v.reason
    );
}

#[test]
fn effects_print_with_their_interval() {
    let e = Effect {
        what: "tg".into(),
        value: 12.34,
        low: Some(2.0),
        high: Some(20.0),
        unit: "%",
    };
    assert_eq!(e.text(), "tg: +12.3% (95% CI +2.0…+20.0%)");
    assert_eq!(Effect::exact("kv", 2.147, "GB").text(), "kv: 2.15 GB");
}
