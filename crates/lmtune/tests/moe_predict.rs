//! Generation on a mixture of experts, predicted before any fit: a
//! synthesized qwen3moe of ~1.3 GiB (12 blocks of 64 routed experts, 4 used:
//! 1/16 of the experts active per token) on this machine's CPU. A generated
//! token reads the dense part plus 4 of 64 experts per block; lmtune's
//! prediction (bytes read per token over the measured bandwidth) must be
//! within 25% of the measured tg t/s, and its peak RSS within 5%.
//!
//! A separate test binary, so it runs alone: generation speed is what the
//! machine's other work disturbs most.

mod common;

use common::{lmtune, model_path, read_records};

#[test]
fn moe_generation_is_predicted_from_the_active_experts() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("qwen3moe-test.gguf");
    let synth = lmtune()
        .args([
            "synth",
            "--like",
            "qwen3moe-test",
            "--quant",
            "q8_0",
            "--donor",
        ])
        .arg(model_path())
        .arg("-o")
        .arg(&model)
        .output()
        .unwrap();
    assert!(
        synth.status.success(),
        "{}",
        String::from_utf8_lossy(&synth.stderr)
    );
    let size = std::fs::metadata(&model).unwrap().len();
    assert!(size >= 1 << 30, "the model is {size} B, not >= 1 GiB");

    let scenario = dir.path().join("moe.toml");
    std::fs::write(
        &scenario,
        format!(
            "[model]\npath = {:?}\n[sweep]\nthreads = \"physical\"\n[workload]\nn_prompt = [0]\nn_gen = [32]\n[measure]\nrepetitions = 3\nwarmup = 1\n",
            model.display().to_string()
        ),
    )
    .unwrap();
    let out = dir.path().join("out");
    let run = lmtune()
        .arg("run")
        .arg(&scenario)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let r = &read_records(&out)[0];
    assert_eq!(r["status"], "ok", "{r}");
    let fp = &r["fingerprint"]["model"];
    let (active, total) = (
        fp["active_weights_bytes"].as_f64().unwrap(),
        fp["weights_bytes"].as_f64().unwrap(),
    );
    let measured = r["tokens_per_s"]["mean"].as_f64().unwrap();
    let predicted = r["prediction"]["tg_tokens_per_s"].as_f64().unwrap();
    let rss = r["rss_peak_bytes"].as_f64().unwrap();
    let rss_predicted = r["prediction"]["rss_bytes"].as_f64().unwrap();
    let tg_err = predicted / measured - 1.0;
    let rss_err = rss_predicted / rss - 1.0;
    eprintln!(
        "qwen3moe-test: {:.0} MiB, {:.0} MiB active per token; tg32 predicted {predicted:.1} t/s, measured {measured:.1} t/s ({:+.1}%); peak RSS predicted {:.0} MiB, measured {:.0} MiB ({:+.1}%)",
        total / 1048576.0,
        active / 1048576.0,
        tg_err * 100.0,
        rss_predicted / 1048576.0,
        rss / 1048576.0,
        rss_err * 100.0
    );
    assert!(active / total < 0.25, "{active} of {total} active");
    assert!(
        tg_err.abs() <= 0.25,
        "tg predicted {predicted:.1} vs measured {measured:.1} t/s"
    );
    assert!(
        rss_err.abs() <= 0.05,
        "peak RSS predicted {rss_predicted} vs measured {rss} B"
    );
}
