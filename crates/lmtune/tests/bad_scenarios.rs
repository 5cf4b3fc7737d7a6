//! Bad scenario files: each gets one line naming the file, the line, the key
//! and the fix, exit code 2, and nothing is measured. Never a panic.

mod common;

use std::path::Path;

use common::{lmtune, model_path};

struct Case {
    name: &'static str,
    /// Scenario text; `MODEL` is replaced by the test model's path.
    body: String,
    /// The key the error must name.
    key: &'static str,
    /// The line the error must point at (None: no line, e.g. a missing section).
    line: Option<usize>,
    /// A phrase the error must contain.
    says: &'static str,
}

fn case(
    name: &'static str,
    body: &str,
    key: &'static str,
    line: Option<usize>,
    says: &'static str,
) -> Case {
    Case {
        name,
        body: body.to_string(),
        key,
        line,
        says,
    }
}

const HEAD: &str = "[model]\npath = \"MODEL\"\n";

fn cases(dir: &Path) -> Vec<Case> {
    let truncated = dir.join("truncated.gguf");
    let bytes = std::fs::read(model_path()).unwrap();
    std::fs::write(&truncated, &bytes[..1 << 20]).unwrap();
    let not_gguf = dir.join("notes.gguf");
    std::fs::write(&not_gguf, "these are my notes, not a model\n").unwrap();
    vec![
        case(
            "syntax",
            &format!("{HEAD}[sweep\nthreads = 1\n"),
            "",
            Some(3),
            "TOML",
        ),
        case(
            "unknown-key",
            &format!("{HEAD}[sweep]\nthread = [1, 2]\n"),
            "sweep.thread",
            Some(4),
            "unknown field `thread`",
        ),
        case(
            "wrong-type",
            &format!("{HEAD}[sweep]\nn_ctx = \"big\"\n"),
            "sweep.n_ctx",
            Some(4),
            "not a number",
        ),
        case(
            "wrong-type-measure",
            &format!("{HEAD}[measure]\nwarmup = \"twice\"\n"),
            "measure.warmup",
            Some(4),
            "invalid type",
        ),
        case(
            "empty-axis",
            &format!("{HEAD}[sweep]\nthreads = []\n"),
            "sweep.threads",
            Some(4),
            "empty",
        ),
        case(
            "ubatch-over-batch",
            &format!("{HEAD}[sweep]\nn_batch = [64, 256]\nn_ubatch = [128]\n"),
            "sweep.n_ubatch",
            Some(5),
            "n_ubatch = 128 > n_batch = 64",
        ),
        case(
            "ctx-too-small",
            &format!("{HEAD}[sweep]\nn_ctx = 256\n[workload]\nn_prompt = [512]\nn_gen = [0]\n"),
            "sweep.n_ctx",
            Some(4),
            "does not fit",
        ),
        case(
            "too-many-layers",
            &format!("{HEAD}[sweep]\nn_gpu_layers = [0, 40]\n"),
            "sweep.n_gpu_layers",
            Some(4),
            "30 layers + the output layer = 31",
        ),
        case(
            "ctx-over-train",
            &format!("{HEAD}[sweep]\nn_ctx = 16384\n"),
            "sweep.n_ctx",
            Some(4),
            "trained on",
        ),
        case(
            "missing-model-file",
            "[model]\npath = \"/nonexistent/model.gguf\"\n",
            "model.path",
            Some(2),
            "does not exist",
        ),
        case(
            "no-model-section",
            "[sweep]\nthreads = 1\n",
            "model",
            None,
            "[model] section is missing",
        ),
        case(
            "unknown-backend",
            &format!("{HEAD}[backend]\nkind = \"tensorrt\"\n"),
            "backend.kind",
            Some(4),
            "unknown backend",
        ),
        case(
            "bad-cache-type",
            &format!("{HEAD}[sweep]\ntype_k = [\"f16\", \"q9_9\"]\n"),
            "sweep.type_k",
            Some(4),
            "unknown cache type",
        ),
        case(
            "quantized-v-without-fa",
            &format!("{HEAD}[sweep]\ntype_v = \"q8_0\"\nflash_attn = \"off\"\n"),
            "sweep.type_v",
            Some(4),
            "needs flash attention",
        ),
        case(
            "not-gguf",
            &format!("[model]\npath = {:?}\n", not_gguf.display().to_string()),
            "model.path",
            Some(2),
            "not a GGUF file",
        ),
        case(
            "truncated-gguf",
            &format!("[model]\npath = {:?}\n", truncated.display().to_string()),
            "model.path",
            Some(2),
            "truncated",
        ),
        case(
            "future-schema",
            &format!("schema = 2\n{HEAD}"),
            "schema",
            Some(1),
            "schema 2 is not supported",
        ),
        case(
            "zero-step",
            &format!("{HEAD}[sweep]\nn_gpu_layers = {{ from = 0, to = 8, step = 0 }}\n"),
            "sweep.n_gpu_layers",
            Some(4),
            "step",
        ),
        case(
            "zero-repetitions",
            &format!("{HEAD}[measure]\nrepetitions = 0\n"),
            "measure.repetitions",
            Some(4),
            "not a repetition count",
        ),
        case(
            "candle-n-ubatch",
            &format!("{HEAD}[backend]\nkind = \"candle\"\n[sweep]\nn_ubatch = [64, 128]\n"),
            "sweep.n_ubatch",
            Some(6),
            "no micro-batches",
        ),
        case(
            "candle-cache-type",
            &format!("{HEAD}[backend]\nkind = \"candle\"\n[sweep]\ntype_k = \"q8_0\"\n"),
            "sweep.type_k",
            Some(6),
            "keeps its KV cache in f32",
        ),
        case(
            "candle-flash-attn",
            &format!("{HEAD}[backend]\nkind = \"candle\"\n[sweep]\nflash_attn = [\"on\", \"off\"]\n"),
            "sweep.flash_attn",
            Some(6),
            "no flash-attention switch",
        ),
        case(
            "candle-mmap",
            "[model]\npath = \"MODEL\"\nuse_mmap = true\n[backend]\nkind = \"candle\"\n",
            "model.use_mmap",
            Some(3),
            "cannot mmap",
        ),
        case(
            "candle-offload-device",
            &format!("{HEAD}[backend]\nkind = \"candle\"\n[backend.candle]\noffload_device = \"gpu\"\n"),
            "backend.candle.offload_device",
            Some(6),
            "not a device",
        ),
        case(
            "candle-section-wrong-kind",
            &format!("{HEAD}[backend]\nkind = \"llama-cpp\"\n[backend.candle]\noffload_device = \"cpu\"\n"),
            "backend.candle",
            Some(5),
            "kind is not \"candle\"",
        ),
        case(
            "candle-concurrency",
            &format!("{HEAD}[backend]\nkind = \"candle\"\n[sweep]\nconcurrency = [1, 2]\n"),
            "sweep.concurrency",
            Some(6),
            "need a server",
        ),
        case(
            "nothing-timed",
            &format!("{HEAD}[workload]\nn_prompt = 0\nn_gen = 0\n"),
            "workload",
            Some(4),
            "nothing would be timed",
        ),
    ]
}

#[test]
fn each_bad_scenario_gets_one_clear_line_and_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let model = model_path().display().to_string();
    let cases = cases(dir.path());
    assert!(cases.len() >= 10);
    for c in cases {
        let file = dir.path().join(format!("{}.toml", c.name));
        std::fs::write(&file, c.body.replace("MODEL", &model)).unwrap();
        let out = dir.path().join(format!("out-{}", c.name));
        let output = lmtune()
            .arg("run")
            .arg(&file)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        let what = format!("case {}: stderr was:\n{stderr}", c.name);
        assert_eq!(output.status.code(), Some(2), "{what}");
        assert!(output.stdout.is_empty(), "{what}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{what}");
        assert!(!stderr.contains("panicked"), "{what}");
        let line = stderr.trim_end();
        let location = match c.line {
            Some(n) => format!("error: {}:{n}: ", file.display()),
            None => format!("error: {}: ", file.display()),
        };
        assert!(
            line.starts_with(&location),
            "expected to start with {location:?}; {what}"
        );
        assert!(
            line.contains(&format!("`{}`", c.key)) || c.key.is_empty(),
            "key {}; {what}",
            c.key
        );
        assert!(line.contains(c.says), "expected {:?}; {what}", c.says);
        assert!(line.contains("fix:"), "{what}");
        assert!(
            !out.exists(),
            "nothing may be written for an invalid scenario; {what}"
        );
    }
}

#[test]
fn missing_scenario_file_is_an_error_not_a_panic() {
    let output = lmtune()
        .args(["run", "/nonexistent/scenario.toml"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with("error: /nonexistent/scenario.toml: cannot read the scenario file"),
        "{stderr}"
    );
}

#[test]
fn unknown_subcommand_and_flag_exit_2_with_usage() {
    let output = lmtune().args(["run", "--frobnicate"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--frobnicate"));
}
