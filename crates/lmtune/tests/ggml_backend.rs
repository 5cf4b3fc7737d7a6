//! Loading ggml backend libraries at run time (`--ggml-backend`,
//! `LMTUNE_GGML_BACKENDS`): the error paths that can be exercised without a
//! GPU, and n_gpu_layers passing through unchanged.

mod common;

use std::path::Path;
use std::process::Command;

use common::{lmtune, scenario};

const TINY: &str = "[sweep]\nn_ctx = 64\nthreads = 1\n[workload]\nn_prompt = [8]\nn_gen = [0]\n[measure]\nrepetitions = 1\n";

/// A ggml backend registration with API version 999, which no ggml has.
const OLD_API_STUB: &str = "struct reg { int api_version; void *iface[8]; void *context; };\nstatic struct reg r = { 999, {0}, 0 };\nvoid *ggml_backend_init(void) { return &r; }\n";

fn run_with_backend(dir: &Path, backend: &Path) -> (i32, String) {
    let path = scenario(dir, "tiny.toml", TINY);
    let out = lmtune()
        .arg("run")
        .arg(&path)
        .arg("--out")
        .arg(dir.join(format!(
            "out-{}",
            backend.file_name().unwrap().to_string_lossy()
        )))
        .arg("--ggml-backend")
        .arg(backend)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_missing_backend_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stderr) = run_with_backend(dir.path(), Path::new("/nonexistent/libggml-cuda.so"));
    assert_eq!(code, 2);
    assert!(
        stderr.contains("ggml backend /nonexistent/libggml-cuda.so does not exist"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"));
}

/// A real shared library that is not a ggml backend.
#[test]
fn a_library_that_is_not_a_ggml_backend_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let lib = build_stub(
        dir.path(),
        "libnotabackend.so",
        "int lmtune_not_a_backend(void) { return 1; }\n",
        &[],
    );
    let (code, stderr) = run_with_backend(dir.path(), &lib);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("failed to find ggml_backend_init")
            && stderr.contains("not a ggml backend library"),
        "{stderr}"
    );
}

/// A backend built against another ggml: its registration has another API
/// version, which ggml refuses; lmtune says to rebuild from the vendored source.
#[test]
fn a_backend_of_another_ggml_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let lib = build_stub(dir.path(), "libggml-old.so", OLD_API_STUB, &[]);
    let (code, stderr) = run_with_backend(dir.path(), &lib);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("incompatible API version") && stderr.contains("another llama.cpp version"),
        "{stderr}"
    );
}

/// A backend library whose own dependencies are missing, as a CUDA build is
/// on a machine without the NVIDIA driver: dlopen's reason, and what it
/// means. The library is a stand-in that links a driver library removed
/// after linking; it is named `libcuda.so.0`, a soname no driver installs,
/// so that the test runs the same on machines that have the real
/// `libcuda.so.1` (it used to skip exactly there).
#[test]
fn a_backend_whose_driver_library_is_missing_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let lib = build_linked_stub(
        dir.path(),
        "libggml-needs-driver.so",
        "cuda",
        "libcuda.so.0",
    );
    let (code, stderr) = run_with_backend(dir.path(), &lib);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("libcuda.so.0: cannot open shared object file")
            && stderr.contains("the NVIDIA driver's library is not on this machine"),
        "{stderr}"
    );
}

/// A backend library built by llama.cpp's CMake links libggml-base.so; a
/// statically linked lmtune has none to share, and says which build can.
#[cfg(not(feature = "dynamic-link"))]
#[test]
fn a_backend_needing_shared_ggml_points_to_the_dynamic_link_build() {
    let dir = tempfile::tempdir().unwrap();
    let lib = build_linked_stub(
        dir.path(),
        "libggml-shared.so",
        "ggml-base",
        "libggml-base.so.0",
    );
    let (code, stderr) = run_with_backend(dir.path(), &lib);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("libggml-base.so.0: cannot open shared object file")
            && stderr.contains("--features dynamic-link"),
        "{stderr}"
    );
}

/// A backend that registers but finds no device (what the CUDA backend does
/// on a machine without a GPU) is refused: the sweep would otherwise run
/// every point on the CPU. The stand-in registers with this ggml's API
/// version, read from ggml's own refusal of version 999.
#[test]
fn a_backend_with_no_device_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let old = build_stub(dir.path(), "libggml-old.so", OLD_API_STUB, &[]);
    let (_, stderr) = run_with_backend(dir.path(), &old);
    let current: u32 = stderr
        .split("current: ")
        .nth(1)
        .and_then(|t| t.split(')').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no API version in: {stderr}"));
    let source = format!(
        "#include <stddef.h>\nstatic const char *name(void *r) {{ return \"NoDeviceStandIn\"; }}\nstatic size_t count(void *r) {{ return 0; }}\nstatic void *dev(void *r, size_t i) {{ return 0; }}\nstruct reg {{ int api_version; void *iface[4]; void *context; }};\nstatic struct reg r = {{ {current}, {{ (void *)name, (void *)count, (void *)dev, 0 }}, 0 }};\nvoid *ggml_backend_init(void) {{ return &r; }}\n"
    );
    let lib = build_stub(dir.path(), "libggml-nodevice.so", &source, &[]);
    let (code, stderr) = run_with_backend(dir.path(), &lib);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("(NoDeviceStandIn) loaded but found no device")
            && stderr.contains("every point would run on the CPU"),
        "{stderr}"
    );
}

#[test]
fn the_environment_variable_is_read_too() {
    let dir = tempfile::tempdir().unwrap();
    let path = scenario(dir.path(), "tiny.toml", TINY);
    let out = lmtune()
        .env("LMTUNE_GGML_BACKENDS", "/nonexistent/a.so")
        .arg("run")
        .arg(&path)
        .arg("--out")
        .arg(dir.path().join("o"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/a.so does not exist"));
}

/// n_gpu_layers is recorded exactly as requested (and passed to llama.cpp as
/// is); next to it, where llama.cpp put the layers and what it allocated,
/// from its own log. With no GPU device (this build, no backend loaded)
/// llama.cpp offloads nothing whatever n_gpu_layers says, and lmtune says so.
#[test]
fn n_gpu_layers_is_recorded_unchanged_with_the_placement_llama_cpp_applied() {
    let dir = tempfile::tempdir().unwrap();
    let path = scenario(
        dir.path(),
        "ngl.toml",
        &format!(
            "[sweep]\nn_gpu_layers = [0, 7, \"all\"]\n{}",
            &TINY["[sweep]\n".len()..]
        ),
    );
    let out = dir.path().join("out");
    let run = lmtune()
        .arg("run")
        .arg(&path)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("2 point(s) asked for n_gpu_layers > 0 but ran entirely on the CPU"),
        "{stderr}"
    );
    let records = common::read_records(&out);
    let ngl: Vec<u64> = records
        .iter()
        .map(|r| r["n_gpu_layers"].as_u64().unwrap())
        .collect();
    assert_eq!(
        ngl,
        vec![0, 7, 31],
        "\"all\" is n_layer + 1 = 31 for SmolLM2"
    );

    // The model's anatomy, read from the GGUF by lmtune itself.
    let anatomy = common::test_model_anatomy();
    let weights = anatomy["anatomy"]["weights_bytes"].as_f64().unwrap();
    let kv_per_token = anatomy["kv_bytes_per_token"]["f16"].as_f64().unwrap();

    for r in &records {
        let p = &r["placement"];
        assert_eq!(p["layers_offloaded"], 0, "{p}");
        assert_eq!(p["layers_total"], 31, "{p}");
        assert_eq!(
            p["groups"],
            serde_json::json!(["token embeddings: CPU", "blocks 0-29: CPU", "output: CPU"])
        );
        let buffers = p["buffers"].as_array().unwrap();
        let sum = |kind: &str| -> f64 {
            buffers
                .iter()
                .filter(|b| b["kind"] == kind)
                .inspect(|b| assert!(b["device"].as_str().unwrap().starts_with("CPU"), "{b}"))
                .map(|b| b["bytes"].as_f64().unwrap())
                .sum()
        };
        // llama.cpp's weight buffers hold the GGUF's tensors (padded per
        // tensor for alignment), and its KV cache is the anatomy's bytes per
        // token times the cells it allocated (n_ctx as applied).
        let model = sum("model");
        assert!(
            (model - weights).abs() / weights < 0.02,
            "model buffers {model} vs weights {weights}"
        );
        let cells = r["n_ctx_actual"].as_f64().unwrap();
        let kv = sum("kv");
        assert!(
            (kv - kv_per_token * cells).abs() <= 0.01 * 1048576.0,
            "KV buffers {kv} vs {kv_per_token} B/token x {cells}"
        );
        assert!(sum("compute") > 0.0, "{p}");
    }
}

/// A library with `ggml_backend_init` that links `-l<link>` (a dummy with
/// soname `soname`, deleted after linking, so that loading fails on it).
fn build_linked_stub(dir: &Path, name: &str, link: &str, soname: &str) -> std::path::PathBuf {
    let deps = dir.join("deps");
    std::fs::create_dir_all(&deps).unwrap();
    build_stub(
        &deps,
        &format!("lib{link}.so"),
        "int lmtune_dummy_dependency(void) { return 1; }\n",
        &[&format!("-Wl,-soname,{soname}")],
    );
    let lib = build_stub(
        dir,
        name,
        "int lmtune_dummy_dependency(void);\nvoid *ggml_backend_init(void) { lmtune_dummy_dependency(); return 0; }\n",
        &[
            "-Wl,--no-as-needed",
            "-L",
            deps.to_str().unwrap(),
            &format!("-l{link}"),
        ],
    );
    std::fs::remove_dir_all(&deps).unwrap();
    lib
}

/// A shared library compiled from `source` by cc; `link` goes after the
/// source file (linker flags, libraries).
fn build_stub(dir: &Path, name: &str, source: &str, link: &[&str]) -> std::path::PathBuf {
    let c = dir.join(format!("{name}.c"));
    std::fs::write(&c, source).unwrap();
    let lib = dir.join(name);
    let status = Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&lib)
        .arg(&c)
        .args(link)
        .status()
        .expect("a C compiler (cc) builds the stub library");
    assert!(status.success());
    lib
}
