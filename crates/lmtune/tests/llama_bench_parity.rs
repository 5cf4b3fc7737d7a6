//! lmtune and llama.cpp's own `llama-bench`, side by side on the same models
//! with the same settings: the same contexts (every setting llama.cpp logs
//! at creation), the same KV caches and buffers to the byte, and tokens/s
//! within a tolerance wide enough for a shared 2-core machine.
//!
//! llama-bench is built from the very llama.cpp source lmtune links by
//! scripts/build-llama-bench.sh; scripts/test.sh builds it and exports
//! `LMTUNE_LLAMA_BENCH`. Without that variable at build time these tests are
//! ignored, with the reason; with it, a missing or broken binary fails them.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{lmtune, model_path, read_records, synth_gemma3};

/// One llama.cpp context as a tool's log shows it.
#[derive(Debug, Default, PartialEq)]
struct Context {
    /// `llama_context: KEY = VALUE` settings.
    settings: BTreeMap<String, String>,
    /// (device, kind, MiB as printed) of its KV, compute and output buffers.
    buffers: Vec<(String, String, String)>,
    /// (cells, layers, MiB as printed) of each KV cache.
    kv_caches: Vec<(u64, u64, String)>,
}

const SETTINGS: [&str; 9] = [
    "n_seq_max",
    "n_ctx",
    "n_ctx_seq",
    "n_batch",
    "n_ubatch",
    "causal_attn",
    "flash_attn",
    "kv_unified",
    "n_outputs_max",
];

/// The contexts in a llama.cpp log, in order.
fn contexts(log: &str) -> Vec<Context> {
    let mut out: Vec<Context> = Vec::new();
    for line in log.lines() {
        let line = line.trim();
        if line.starts_with("llama_context: n_seq_max") {
            out.push(Context::default());
        }
        let Some(ctx) = out.last_mut() else { continue };
        if let Some(rest) = line.strip_prefix("llama_context: ") {
            if let Some((k, v)) = rest.split_once('=') {
                if SETTINGS.contains(&k.trim()) {
                    ctx.settings.insert(k.trim().into(), v.trim().into());
                }
            }
        }
        for kind in ["KV", "compute", "output"] {
            let marker = format!(" {kind} buffer size = ");
            if let Some((head, mib)) = line.split_once(&marker) {
                let device = head.rsplit([' ', ':']).next().unwrap_or("").to_string();
                ctx.buffers.push((device, kind.into(), mib.trim().into()));
            }
        }
        if let Some(rest) = line.strip_prefix("llama_kv_cache: size = ") {
            let (mib, rest) = rest.split_once("MiB").unwrap();
            let inner = rest.split_once('(').unwrap().1;
            let num = |suffix: &str| -> u64 {
                inner
                    .split(',')
                    .find_map(|p| p.trim().strip_suffix(suffix))
                    .unwrap()
                    .trim()
                    .parse()
                    .unwrap()
            };
            ctx.kv_caches
                .push((num(" cells"), num(" layers"), mib.trim().into()));
        }
    }
    out
}

/// The fastest repetition's t/s per test label (`pp512`, `tg32`), and the
/// log, of one tool run. On a shared machine noise only ever slows a
/// repetition down, so the fastest one is what each tool can do.
struct Run {
    ts: BTreeMap<String, f64>,
    log: String,
}

fn fastest(samples: &serde_json::Value) -> f64 {
    samples
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_f64().unwrap())
        .fold(0.0, f64::max)
}

fn llama_bench(bin: &Path, model: &Path, s: &Settings) -> Run {
    let out = Command::new(bin)
        .arg("-m")
        .arg(model)
        .args(["-p", &s.n_prompt.to_string(), "-n", &s.n_gen.to_string()])
        .args(["-t", "2", "-b", "2048", "-ub", "512"])
        .args(["-r", &s.reps.to_string(), "-o", "json", "-v"])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "llama-bench failed: {log}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "llama-bench -o json: {e}: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    let ts = json
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let (p, g) = (
                t["n_prompt"].as_u64().unwrap(),
                t["n_gen"].as_u64().unwrap(),
            );
            let label = if g == 0 {
                format!("pp{p}")
            } else {
                format!("tg{g}")
            };
            (label, fastest(&t["samples_ts"]))
        })
        .collect();
    Run { ts, log }
}

fn lmtune_run(dir: &Path, model: &Path, s: &Settings, i: usize) -> (Run, Vec<serde_json::Value>) {
    let scenario = dir.join(format!("parity-{i}.toml"));
    std::fs::write(
        &scenario,
        format!(
            "[model]\npath = {:?}\n[sweep]\nthreads = 2\nn_batch = 2048\nn_ubatch = 512\n[workload]\nn_prompt = [{}]\nn_gen = [{}]\n[measure]\nrepetitions = {}\nwarmup = 1\n",
            model.display().to_string(),
            s.n_prompt,
            s.n_gen,
            s.reps
        ),
    )
    .unwrap();
    let out_dir = dir.join(format!("out-{i}"));
    // --verbose passes llama.cpp's log through, as llama-bench -v does.
    let out = lmtune()
        .arg("run")
        .arg(&scenario)
        .arg("--out")
        .arg(&out_dir)
        .arg("--verbose")
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "lmtune failed: {log}");
    let records = read_records(&out_dir);
    let ts = records
        .iter()
        .map(|r| {
            (
                r["test"].as_str().unwrap().to_string(),
                fastest(&r["samples_ts"]),
            )
        })
        .collect();
    (Run { ts, log }, records)
}

struct Settings {
    n_prompt: u32,
    n_gen: u32,
    reps: u32,
}

fn bench_binary() -> PathBuf {
    let path = std::env::var_os("LMTUNE_LLAMA_BENCH")
        .map(PathBuf::from)
        .expect("LMTUNE_LLAMA_BENCH is not set: LMTUNE_LLAMA_BENCH=$(scripts/build-llama-bench.sh) (scripts/test.sh sets it)");
    assert!(
        path.is_file(),
        "LMTUNE_LLAMA_BENCH={} is not a file",
        path.display()
    );
    path
}

/// One side-by-side at a time: two at once on a 2-core machine would
/// measure OpenMP threads waiting for each other, not the tools.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Both tools, in the order llama-bench, lmtune, lmtune, llama-bench (so a
/// drift of the machine's speed falls on both alike); the contexts must be
/// identical and the t/s ratio within 0.67–1.5. Returns llama-bench's contexts.
fn side_by_side(model: &Path, s: &Settings, dir: &Path) -> Vec<Context> {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let bin = bench_binary();
    let b1 = llama_bench(&bin, model, s);
    let (l1, records) = lmtune_run(dir, model, s, 1);
    let (l2, _) = lmtune_run(dir, model, s, 2);
    let b2 = llama_bench(&bin, model, s);

    let bench_ctx = contexts(&b1.log);
    let lmtune_ctx = contexts(&l1.log);
    assert_eq!(
        bench_ctx.len(),
        2,
        "llama-bench made {} contexts: {}",
        bench_ctx.len(),
        b1.log
    );
    assert_eq!(
        lmtune_ctx.len(),
        2,
        "lmtune made {} contexts",
        lmtune_ctx.len()
    );
    for (b, l) in bench_ctx.iter().zip(&lmtune_ctx) {
        assert_eq!(b.settings.len(), SETTINGS.len(), "{b:?}");
        assert_eq!(
            b,
            l,
            "{}: llama-bench's context vs lmtune's",
            model.display()
        );
    }
    // The records carry the same, from the same log lines.
    for (r, b) in records.iter().zip(&bench_ctx) {
        for (k, v) in &b.settings {
            assert_eq!(r["backend_applied"][k].as_str(), Some(v.as_str()), "{k}");
        }
        assert_eq!(
            r["placement"]["kv_caches"].as_array().unwrap().len(),
            b.kv_caches.len()
        );
    }
    // Model buffers too (same load: mmap, repacking).
    let model_lines = |log: &str| -> Vec<String> {
        log.lines()
            .filter(|l| l.contains(" model buffer size = "))
            .map(|l| l.trim().to_string())
            .collect()
    };
    assert_eq!(model_lines(&b1.log), model_lines(&l1.log));

    for test in b1.ts.keys() {
        let bench = b1.ts[test].max(b2.ts[test]);
        let ours = l1.ts[test].max(l2.ts[test]);
        let ratio = ours / bench;
        eprintln!(
            "{} {test}: fastest repetition of each run: llama-bench {:.2} / {:.2} t/s, lmtune {:.2} / {:.2} t/s; ratio lmtune/llama-bench {ratio:.3}",
            model.file_name().unwrap().to_string_lossy(),
            b1.ts[test],
            b2.ts[test],
            l1.ts[test],
            l2.ts[test],
        );
        assert!(
            (0.67..=1.5).contains(&ratio),
            "{test}: lmtune {ours:.2} t/s vs llama-bench {bench:.2} t/s (ratio {ratio:.3})"
        );
    }
    bench_ctx
}

#[test]
#[cfg_attr(
    not(lmtune_llama_bench),
    ignore = "needs llama.cpp's llama-bench: LMTUNE_LLAMA_BENCH=$(scripts/build-llama-bench.sh) (scripts/test.sh builds and sets it)"
)]
fn the_test_model_runs_as_llama_bench_runs_it() {
    let dir = tempfile::tempdir().unwrap();
    let bench = side_by_side(
        &model_path(),
        &Settings {
            n_prompt: 512,
            n_gen: 32,
            reps: 3,
        },
        dir.path(),
    );
    // No sliding window: one cache for every layer.
    assert_eq!(bench[0].kv_caches.len(), 1);
}

/// A Gemma 3-shaped model with a prompt longer than its window + micro-batch:
/// both tools window the 15 sliding-window layers (swa_full off).
#[test]
#[cfg_attr(
    not(lmtune_llama_bench),
    ignore = "needs llama.cpp's llama-bench: LMTUNE_LLAMA_BENCH=$(scripts/build-llama-bench.sh) (scripts/test.sh builds and sets it)"
)]
fn a_sliding_window_model_runs_as_llama_bench_runs_it() {
    let dir = tempfile::tempdir().unwrap();
    let model = synth_gemma3(dir.path());
    let s = Settings {
        n_prompt: 1536,
        n_gen: 16,
        reps: 2,
    };
    let bench = side_by_side(&model, &s, dir.path());
    // pp1536: the global layers hold the context, the others 512 + 512.
    let cells: Vec<(u64, u64)> = bench[0].kv_caches.iter().map(|c| (c.0, c.1)).collect();
    assert_eq!(cells, vec![(1536, 3), (1024, 15)]);
}
