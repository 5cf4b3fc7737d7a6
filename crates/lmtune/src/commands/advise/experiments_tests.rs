use super::*;

fn machine() -> MachineSide {
    MachineSide {
        physical_cores: 4,
        logical_cores: 8,
        gpu: false,
        vram_bytes: 8 << 30,
        ram_bytes: 16 << 30,
        llama_server: None,
    }
}

fn model() -> ModelSide {
    ModelSide {
        path: PathBuf::from("/m/model.gguf"),
        n_layer: 30,
        n_ctx_train: 8192,
        weights_bytes: 100 << 20,
        kv_bytes_per_token_f16: 30 * 2 * 192 * 2,
        k_quant_rows: false,
        synth_shape: Some("llama 30 layers".into()),
    }
}

const SPEED: ProbeSpeeds = ProbeSpeeds {
    pp_tokens_per_s: 500.0,
    tg_tokens_per_s: 50.0,
    load_s: 0.5,
    part_overhead_s: 2.0,
};

#[test]
fn thread_counts_are_one_physical_minus_one_physical_logical() {
    assert_eq!(thread_counts(4, 8), vec![1, 3, 4, 8]);
    assert_eq!(thread_counts(2, 2), vec![1, 2]);
    assert_eq!(thread_counts(1, 1), vec![1]);
}

#[test]
fn every_generated_scenario_parses() {
    let mut m = machine();
    m.llama_server = Some(PathBuf::from("/usr/bin/llama-server"));
    for p in plan_all(&m, &model(), &SPEED, Path::new("/tmp")) {
        let Planned::Run(e) = p else { continue };
        for part in e.parts {
            let parsed =
                lmtune_core::scenario::Scenario::parse(Path::new("advise.toml"), &part.scenario);
            assert!(
                parsed.is_ok(),
                "{}: {:?}\n{}",
                part.name,
                parsed.err(),
                part.scenario
            );
        }
    }
}

#[test]
fn contexts_beyond_training_or_memory_are_not_measured() {
    let mut m = machine();
    assert_eq!(measurable_contexts(&m, &model()), vec![2048, 4096, 8192]);
    m.ram_bytes = 400 << 20;
    assert_eq!(measurable_contexts(&m, &model()), vec![2048, 4096]);
}

#[test]
fn budget_skips_what_does_not_fit_and_says_so() {
    let planned = plan_all(&machine(), &model(), &SPEED, Path::new("/tmp"));
    let fitted = fit_budget(planned, 1.0);
    assert!(fitted.iter().all(|p| matches!(p, Planned::NotHere { .. })));
    let Planned::NotHere { reason, .. } = &fitted[0] else {
        unreachable!()
    };
    assert!(reason.contains("time budget"), "{reason}");
}

#[test]
fn no_gpu_means_a_simulated_offload() {
    let planned = plan_all(&machine(), &model(), &SPEED, Path::new("/tmp"));
    let sim = planned.iter().any(|p| {
        matches!(p, Planned::Run(e) if e.id == ExperimentId::Offload && e.simulated
            && e.parts[0].scenario.contains("kind = \"sim\""))
    });
    assert!(sim);
    assert_eq!(offload_steps(30), vec![0, 7, 15, 23, 27, 31]);
}
