//! Parsing and validation tests that need no model file.

use std::path::Path;

use super::*;

fn parse(src: &str) -> Result<Scenario, ScenarioError> {
    Scenario::parse(Path::new("s.toml"), src)
}

const MINIMAL: &str = "[model]\npath = \"m.gguf\"\n";

#[test]
fn minimal_scenario_gets_llama_bench_defaults() {
    let s = parse(MINIMAL).unwrap();
    assert_eq!(s.backend, BackendSpec::default());
    assert_eq!(s.n_batch.values, vec![2048]);
    assert_eq!(s.n_ubatch.values, vec![512]);
    assert!(s.n_ctx.is_none());
    assert_eq!(s.measure.repetitions, Repetitions::Fixed { count: 5 });
    let labels: Vec<_> = s.tests().iter().map(|t| t.label()).collect();
    assert_eq!(labels, ["pp512", "tg128"]);
    assert_eq!(s.model_path, Path::new("m.gguf"));
    assert_eq!(s.name, "s");
}

#[test]
fn model_path_is_relative_to_the_scenario_file() {
    let s = Scenario::parse(Path::new("scenarios/x.toml"), MINIMAL).unwrap();
    assert_eq!(s.model_path, Path::new("scenarios/m.gguf"));
}

#[test]
fn errors_name_the_line_and_key() {
    let src = format!("{MINIMAL}\n[sweep]\nthreads = []\n");
    let e = parse(&src).unwrap_err();
    assert_eq!(e.line, Some(5));
    assert_eq!(e.key, "sweep.threads");
    let line = e.to_string();
    assert!(
        line.starts_with("s.toml:5: `sweep.threads`: the axis is empty"),
        "{line}"
    );
    assert!(line.contains("fix:"), "{line}");
    assert!(!line.contains('\n'));
}

#[test]
fn unknown_key_is_reported_with_its_line() {
    let e = parse(&format!("{MINIMAL}[sweep]\nthread = [1]\n")).unwrap_err();
    assert_eq!(e.line, Some(4));
    assert!(e.problem.contains("unknown field `thread`"), "{e}");
    assert_eq!(e.key, "sweep.thread");
}

#[test]
fn auto_repetitions() {
    let s = parse(&format!(
        "{MINIMAL}[measure]\nrepetitions = \"auto\"\nmax_repetitions = 9\n"
    ))
    .unwrap();
    assert_eq!(
        s.measure.repetitions,
        Repetitions::Auto {
            min: 3,
            max: 9,
            ci_target: 0.02
        }
    );
}

#[test]
fn flash_attn_accepts_bools_and_words() {
    let s = parse(&format!(
        "{MINIMAL}[sweep]\nflash_attn = [true, \"off\", \"auto\"]\n"
    ))
    .unwrap();
    assert_eq!(
        s.flash_attn.values,
        vec![FlashAttn::On, FlashAttn::Off, FlashAttn::Auto]
    );
}

#[test]
fn a_declared_vram_budget_is_parsed_and_checked() {
    let s = parse(&format!("{MINIMAL}[budget]\nvram = \"8GiB\"\n")).unwrap();
    assert_eq!(s.vram_budget_bytes, Some(8 << 30));
    assert_eq!(parse(MINIMAL).unwrap().vram_budget_bytes, None);
    let e = parse(&format!("{MINIMAL}[budget]\nvram = \"eight\"\n")).unwrap_err();
    assert_eq!((e.line, e.key.as_str()), (Some(4), "budget.vram"));
    assert!(e.fix.contains("8GiB"), "{e}");
    let e = parse(&format!("{MINIMAL}[budget]\nvram = \"0GiB\"\n")).unwrap_err();
    assert_eq!(e.key, "budget.vram");
    let e = parse(&format!("{MINIMAL}[budget]\nram = \"8GiB\"\n")).unwrap_err();
    assert!(e.problem.contains("unknown field `ram`"), "{e}");
}

#[test]
fn op_offload_is_an_axis_of_the_llama_cpp_backend_only() {
    assert_eq!(parse(MINIMAL).unwrap().op_offload.values, vec![true]);
    let s = parse(&format!("{MINIMAL}[sweep]\nop_offload = [true, \"off\"]\n")).unwrap();
    assert_eq!(s.op_offload.values, vec![true, false]);
    let e = parse(&format!("{MINIMAL}[sweep]\nop_offload = [\"sometimes\"]\n")).unwrap_err();
    assert_eq!((e.line, e.key.as_str()), (Some(4), "sweep.op_offload"));
    let e = parse(&format!(
        "[backend]\nkind = \"candle\"\n{MINIMAL}[sweep]\nop_offload = false\n"
    ))
    .unwrap_err();
    assert_eq!(e.key, "sweep.op_offload");
    assert!(e.problem.contains("\"candle\" backend has none"), "{e}");
}

#[test]
fn swa_full_is_an_axis_off_by_default_as_llama_bench_runs() {
    assert_eq!(parse(MINIMAL).unwrap().swa_full.values, vec![false]);
    let s = parse(&format!("{MINIMAL}[sweep]\nswa_full = [false, \"on\"]\n")).unwrap();
    assert_eq!(s.swa_full.values, vec![false, true]);
    let e = parse(&format!("{MINIMAL}[sweep]\nswa_full = [\"full\"]\n")).unwrap_err();
    assert_eq!((e.line, e.key.as_str()), (Some(4), "sweep.swa_full"));
    let e = parse(&format!(
        "[backend]\nkind = \"candle\"\n{MINIMAL}[sweep]\nswa_full = true\n"
    ))
    .unwrap_err();
    assert_eq!(e.key, "sweep.swa_full");
    assert!(e.problem.contains("\"candle\" backend has none"), "{e}");
}

#[test]
fn expert_placement_axes_default_to_none_and_read_llama_cpp_s_syntax() {
    let s = parse(MINIMAL).unwrap();
    assert_eq!(s.n_cpu_moe.values, vec![NGpuLayers::N(0)]);
    assert_eq!(s.cpu_moe.values, vec![false]);
    assert_eq!(s.override_tensor.values, vec![String::new()]);
    let s = parse(&format!(
        "{MINIMAL}[sweep]\nn_cpu_moe = [0, 4, \"all\"]\ncpu_moe = [false, true]\noverride_tensor = [\"none\", ' blk\\.0\\.ffn_up_exps = CPU ; token_embd=CPU', 'blk\\.0\\.ffn_up_exps=CPU;token_embd=CPU']\n"
    ))
    .unwrap();
    assert_eq!(
        s.n_cpu_moe.values,
        vec![NGpuLayers::N(0), NGpuLayers::N(4), NGpuLayers::All]
    );
    assert_eq!(s.cpu_moe.values, vec![false, true]);
    // Two spellings of one placement are one value.
    assert_eq!(
        s.override_tensor.values,
        vec![
            String::new(),
            "blk\\.0\\.ffn_up_exps=CPU;token_embd=CPU".to_string()
        ]
    );
}

#[test]
fn bad_expert_placements_name_their_key() {
    for (sweep, key, needle) in [
        (
            "override_tensor = ['blk\\.(0=CPU']",
            "sweep.override_tensor",
            "does not compile",
        ),
        (
            "override_tensor = ['blk\\.0']",
            "sweep.override_tensor",
            "no buffer type",
        ),
        (
            "override_tensor = ['=CPU']",
            "sweep.override_tensor",
            "both a pattern",
        ),
        (
            "override_tensor = [3]",
            "sweep.override_tensor",
            "not a string",
        ),
        (
            "override_tensor = ['x=Vulkan0']",
            "sweep.override_tensor",
            "host memory (CPU) only",
        ),
        ("n_cpu_moe = [-1]", "sweep.n_cpu_moe", "out of range"),
        ("cpu_moe = [\"maybe\"]", "sweep.cpu_moe", "not allowed"),
    ] {
        let e = parse(&format!("{MINIMAL}[sweep]\n{sweep}\n")).unwrap_err();
        assert_eq!(e.key, key, "{sweep}: {e}");
        assert!(e.to_string().contains(needle), "{sweep}: {e}");
    }
    let e = parse(&format!(
        "[backend]\nkind = \"candle\"\n{MINIMAL}[sweep]\nn_cpu_moe = 2\n"
    ))
    .unwrap_err();
    assert_eq!(e.key, "sweep.n_cpu_moe");
    assert!(e.problem.contains("whole layers"), "{e}");
    let e = parse(&format!(
        "[backend]\nkind = \"sim\"\n{MINIMAL}[sweep]\noverride_tensor = 'x=CPU'\n"
    ))
    .unwrap_err();
    assert_eq!(e.key, "sweep.override_tensor");
}
