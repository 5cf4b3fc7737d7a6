//! GPU offload through a real ggml GPU backend on a machine without a GPU:
//! llama.cpp's Vulkan backend, built from the vendored source and loaded at
//! run time (`--ggml-backend`) into the dynamic-link lmtune, on Mesa's
//! llvmpipe — a conformant Vulkan device that runs on the CPU. llama.cpp
//! offloads layers to it, allocates its weights, KV cache and compute
//! buffers there, and logs them, exactly as it does for a discrete GPU; only
//! the speed means nothing. The same path (dynamic-link lmtune + a backend
//! library) is the one scripts/gpu-session.sh takes with CUDA on the H200.
//!
//! The parts come from scripts/test.sh: `LMTUNE_TEST_DYNAMIC_LMTUNE` (the
//! wrapper scripts/build-dynamic.sh writes) and `LMTUNE_TEST_VULKAN_BACKEND`
//! (scripts/build-ggml-backend.sh vulkan). Without the backend's variable at
//! build time these tests are `#[ignore]`d with the reason (crates/lmtune's
//! build.rs); with it, missing or broken parts fail them — never a silent pass.

mod common;

use std::path::{Path, PathBuf};

use common::{read_records, scenario, test_model_anatomy};

const MIB: f64 = 1048576.0;

/// The dynamic-link lmtune and the Vulkan backend; a test that runs without
/// them fails, naming what is missing.
fn parts() -> (PathBuf, PathBuf) {
    let var = |name: &str| {
        let path = std::env::var_os(name)
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                panic!("{name} is not set (scripts/test.sh builds the parts and sets it)")
            });
        assert!(path.is_file(), "{name}={} is missing", path.display());
        path
    };
    (
        var("LMTUNE_TEST_DYNAMIC_LMTUNE"),
        var("LMTUNE_TEST_VULKAN_BACKEND"),
    )
}

/// `lmtune run SCENARIO --ggml-backend BACKEND --out OUT` with the
/// dynamic-link binary; `device` is GGML_VK_VISIBLE_DEVICES (None: unset).
fn run(
    lmtune: &Path,
    backend: &Path,
    scenario: &Path,
    out: &Path,
    device: Option<&str>,
) -> std::process::Output {
    let mut cmd = std::process::Command::new(lmtune);
    cmd.env(
        "XDG_CACHE_HOME",
        std::env::temp_dir().join("lmtune-test-cache"),
    )
    .env_remove("GGML_VK_VISIBLE_DEVICES")
    // Only Mesa's llvmpipe is visible, on machines with real GPUs too, so
    // the tests mean the same everywhere (they used to skip where /dev/dri
    // existed).
    .env("VK_DRIVER_FILES", llvmpipe_icd())
    .env("VK_ICD_FILENAMES", llvmpipe_icd())
    .arg("run")
    .arg(scenario)
    .arg("--out")
    .arg(out)
    .arg("--ggml-backend")
    .arg(backend);
    if let Some(device) = device {
        cmd.env("GGML_VK_VISIBLE_DEVICES", device);
    }
    cmd.output().unwrap()
}

/// Mesa's llvmpipe Vulkan driver manifest (mesa-vulkan-drivers).
fn llvmpipe_icd() -> PathBuf {
    std::fs::read_dir("/usr/share/vulkan/icd.d")
        .expect("/usr/share/vulkan/icd.d: install mesa-vulkan-drivers (scripts/setup.sh does)")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("lvp_icd"))
        })
        .expect("no lvp_icd*.json: install mesa-vulkan-drivers (scripts/setup.sh does)")
}

/// The bytes of one kind of buffer on devices whose name starts with `device`.
fn buffer_bytes(record: &serde_json::Value, device: &str, kind: &str) -> f64 {
    record["placement"]["buffers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["kind"] == kind && b["device"].as_str().unwrap().starts_with(device))
        .map(|b| b["bytes"].as_f64().unwrap())
        .sum()
}

/// Offload 0 → all on the Vulkan device, with op offload on and off:
/// n_gpu_layers goes through unchanged, llama.cpp applies it as lmtune
/// records (groups, layer counts), and the device's weight and KV buffers
/// grow per layer exactly as the GGUF's anatomy says; the planner's VRAM
/// prediction, less its fixed GPU context overhead, is within 5% of the
/// device buffers at every offload. With nothing offloaded, op offload still
/// cuts the prompt graph into pieces that run on the device (micro-batches
/// of 32 tokens and more); switched off, the graph stays whole on the CPU.
#[test]
#[cfg_attr(
    not(lmtune_vulkan),
    ignore = "needs llama.cpp's Vulkan backend and the dynamic-link lmtune: scripts/test.sh builds them and sets LMTUNE_TEST_VULKAN_BACKEND / LMTUNE_TEST_DYNAMIC_LMTUNE"
)]
fn offload_to_a_vulkan_device_places_layers_and_memory_as_the_anatomy_predicts() {
    let (lmtune, backend) = parts();
    let dir = tempfile::tempdir().unwrap();
    let path = scenario(
        dir.path(),
        "offload.toml",
        "[sweep]\nn_gpu_layers = [0, 4, 16, \"all\"]\nop_offload = [true, false]\nn_ctx = 256\nn_ubatch = 64\nthreads = 2\n[workload]\nn_prompt = [16]\nn_gen = [0]\n[measure]\nrepetitions = 1\nwarmup = 0\n",
    );
    let out = dir.path().join("out");
    let run = run(&lmtune, &backend, &path, &out, Some("0"));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("ran entirely on the CPU"), "{stderr}");

    let anatomy = test_model_anatomy();
    let layers = anatomy["anatomy"]["layers"].as_array().unwrap();
    let block = layers[0]["tensors"]["bytes"].as_f64().unwrap();
    assert!(layers
        .iter()
        .all(|l| l["tensors"]["bytes"].as_f64() == Some(block)));
    let n_layer = layers.len() as f64;
    // SmolLM2 ties its output projection to the token embeddings: with the
    // output layer offloaded, llama.cpp puts a copy of them on the device.
    assert_eq!(anatomy["anatomy"]["tied_embeddings"], true);
    let output = anatomy["anatomy"]["output"]["bytes"].as_f64().unwrap()
        + anatomy["anatomy"]["input"]["bytes"].as_f64().unwrap();
    let kv_per_layer_token = anatomy["kv_bytes_per_token"]["f16"].as_f64().unwrap() / n_layer;

    let records = read_records(&out);
    let ngl: Vec<u64> = records
        .iter()
        .map(|r| r["n_gpu_layers"].as_u64().unwrap())
        .collect();
    assert_eq!(ngl, vec![0, 0, 4, 4, 16, 16, 31, 31]);
    for r in &records {
        assert_eq!(r["status"], "ok", "{r}");
        // Records leave op_offload out when on (llama.cpp's default).
        let op_offload = r.get("op_offload").is_none_or(|v| v == true);
        let splits = &r["placement"]["graph_splits"];
        if r["n_gpu_layers"] == 0 {
            let pp = splits["pp"].as_u64().unwrap();
            if op_offload {
                assert!(pp > 1, "op offload on: {splits}");
            } else {
                assert_eq!((pp, splits["tg"].as_u64()), (1, Some(1)), "op offload off");
            }
        }
        let p = &r["placement"];
        let offloaded = r["n_gpu_layers"].as_u64().unwrap();
        assert_eq!(p["layers_offloaded"].as_u64(), Some(offloaded), "{p}");
        assert_eq!(p["layers_total"], 31, "{p}");
        // The output layer goes first, then the last blocks.
        let on_device = offloaded.saturating_sub(1);
        let expected_groups = match offloaded {
            0 => serde_json::json!(["token embeddings: CPU", "blocks 0-29: CPU", "output: CPU"]),
            31 => serde_json::json!([
                "token embeddings: CPU",
                "blocks 0-29: Vulkan0",
                "output: Vulkan0"
            ]),
            _ => serde_json::json!([
                "token embeddings: CPU",
                format!("blocks 0-{}: CPU", 29 - on_device),
                format!("blocks {}-29: Vulkan0", 30 - on_device),
                "output: Vulkan0"
            ]),
        };
        assert_eq!(p["groups"], expected_groups);

        // llama.cpp prints buffer sizes to 0.01 MiB.
        let model = buffer_bytes(r, "Vulkan0", "model");
        let expected_model = if offloaded == 0 {
            0.0
        } else {
            on_device as f64 * block + output
        };
        assert!(
            (model - expected_model).abs() <= 0.01 * MIB,
            "ngl {offloaded}: Vulkan0 weights {model} B, anatomy {expected_model} B"
        );
        let cells = r["n_ctx_actual"].as_f64().unwrap();
        let kv = buffer_bytes(r, "Vulkan0", "kv");
        let expected_kv = on_device as f64 * kv_per_layer_token * cells;
        assert!(
            (kv - expected_kv).abs() <= 0.01 * MIB,
            "ngl {offloaded}: Vulkan0 KV {kv} B, anatomy {expected_kv} B"
        );
        let cpu_kv = buffer_bytes(r, "CPU", "kv");
        assert!(
            (cpu_kv + kv - n_layer * kv_per_layer_token * cells).abs() <= 0.02 * MIB,
            "ngl {offloaded}: the KV cache is split, not duplicated: CPU {cpu_kv} + device {kv}"
        );

        // The planner's prediction of the device's buffers (its VRAM less
        // the fixed CUDA context overhead, which llvmpipe does not have)
        // against every buffer llama.cpp allocated on the device. With
        // nothing offloaded, op offload's compute buffer is the only one,
        // and there is none without op offload.
        let device = model + kv + buffer_bytes(r, "Vulkan0", "compute");
        // llama.cpp's own dry run (no_alloc) of the same point, on the device.
        let dry: f64 = r["dry_run"]["buffers"]
            .as_array()
            .unwrap_or_else(|| panic!("no dry run: {r}"))
            .iter()
            .filter(|b| b["device"] == "Vulkan0" && b["host"] == false)
            .map(|b| {
                ["model_bytes", "context_bytes", "compute_bytes"]
                    .iter()
                    .map(|f| b[*f].as_f64().unwrap())
                    .sum::<f64>()
            })
            .sum();
        assert!(
            (dry - device).abs() <= 0.01 * device.max(MIB),
            "ngl {offloaded}, op offload {op_offload}: dry run {dry} B vs {device} B on Vulkan0"
        );
        let predicted = r["prediction"]["vram_buffers_bytes"].as_f64();
        if offloaded == 0 && !op_offload {
            assert_eq!((device, predicted), (0.0, None), "ngl 0, op offload off");
        } else {
            let predicted = predicted.unwrap();
            assert!(
                (predicted - device).abs() / device < 0.05,
                "ngl {offloaded}, op offload {op_offload}: predicted {predicted} B vs {device} B on Vulkan0"
            );
        }
    }
}

/// With nothing offloaded, op offload's buffers on the device grow with
/// n_ubatch (the prompt's activations and logits, and the staged output
/// projection): at n_ubatch 32, 128 and 512 the record's prediction is within
/// 5% of what llama.cpp allocated on Vulkan0, and `plan` (given a GPU
/// budget) puts the same bytes in its n_gpu_layers 0 row; it used to say 0.
#[test]
#[cfg_attr(
    not(lmtune_vulkan),
    ignore = "needs llama.cpp's Vulkan backend and the dynamic-link lmtune: scripts/test.sh builds them and sets LMTUNE_TEST_VULKAN_BACKEND / LMTUNE_TEST_DYNAMIC_LMTUNE"
)]
fn op_offload_buffers_at_zero_layers_are_planned_as_allocated() {
    let (lmtune, backend) = parts();
    let dir = tempfile::tempdir().unwrap();
    let path = scenario(
        dir.path(),
        "op-offload.toml",
        "[sweep]\nn_gpu_layers = 0\nn_ctx = 512\nn_batch = 512\nn_ubatch = [32, 128, 512]\nthreads = 2\n[workload]\nn_prompt = [32]\nn_gen = [0]\n[measure]\nrepetitions = 1\nwarmup = 0\n",
    );
    let out = dir.path().join("out");
    let run = run(&lmtune, &backend, &path, &out, Some("0"));
    assert_eq!(
        run.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let records = read_records(&out);
    assert_eq!(records.len(), 3);
    let mut previous = 0.0;
    for r in &records {
        assert_eq!(r["status"], "ok", "{r}");
        let n_ubatch = r["n_ubatch"].as_u64().unwrap();
        let device = buffer_bytes(r, "Vulkan0", "compute");
        assert!(device > previous, "n_ubatch {n_ubatch}: {device} B");
        previous = device;
        let predicted = r["prediction"]["vram_buffers_bytes"].as_f64().unwrap();
        eprintln!(
            "n_ubatch {n_ubatch}: Vulkan0 {:.2} MiB allocated, {:.2} MiB predicted",
            device / MIB,
            predicted / MIB
        );
        assert!(
            (predicted / device - 1.0).abs() < 0.05,
            "n_ubatch {n_ubatch}: predicted {predicted} B vs {device} B on Vulkan0"
        );
        let plan = std::process::Command::new(&lmtune)
            .args(["plan", "--vram", "8GiB", "--ctx", "512", "--no-dry-run"])
            .args(["--cpu-bandwidth", "20", "--json", "--ubatch"])
            .arg(n_ubatch.to_string())
            .arg("-m")
            .arg(common::model_path())
            .output()
            .unwrap();
        assert!(plan.status.success());
        let plan: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
        let row0 = &plan["plan"]["rows"][0];
        assert_eq!(row0["n_gpu_layers"], 0);
        assert_eq!(row0["memory"]["gpu"]["compute"].as_f64(), Some(predicted));
    }
}

/// `tune` with a VRAM budget on the Vulkan device: the offload search takes
/// each placement's VRAM from llama.cpp's dry run on that device (and says
/// so), and — with no NVML to measure the device — holds the measured
/// placements to it: 64 MiB takes n_gpu_layers 8 (59 MiB in the dry run),
/// not 16 (79 MiB).
#[test]
#[cfg_attr(
    not(lmtune_vulkan),
    ignore = "needs llama.cpp's Vulkan backend and the dynamic-link lmtune: scripts/test.sh builds them and sets LMTUNE_TEST_VULKAN_BACKEND / LMTUNE_TEST_DYNAMIC_LMTUNE"
)]
fn tune_s_offload_search_asks_llama_cpp_s_dry_run_on_the_device() {
    let (lmtune, backend) = parts();
    let dir = tempfile::tempdir().unwrap();
    let path = scenario(
        dir.path(),
        "tune.toml",
        "name = \"vk-tune\"\n[sweep]\nn_gpu_layers = [0, 8, 16, 24, \"all\"]\nn_ctx = 512\nn_ubatch = 64\nthreads = 2\n[workload]\nn_prompt = 0\nn_gen = [4]\n[measure]\nrepetitions = 2\n",
    );
    let out = std::process::Command::new(&lmtune)
        .env("VK_DRIVER_FILES", llvmpipe_icd())
        .env("VK_ICD_FILENAMES", llvmpipe_icd())
        .env("GGML_VK_VISIBLE_DEVICES", "0")
        .arg("tune")
        .arg(&path)
        .args(["--objective", "tg", "--vram", "64MiB", "--ggml-backend"])
        .arg(&backend)
        .arg("--out")
        .arg(dir.path().join("out"))
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("offload search: VRAM from llama.cpp's dry run (no_alloc) on Vulkan0"),
        "{text}"
    );
    assert!(
        text.contains("offload settled: n_gpu_layers = 8, the largest that fits"),
        "{text}"
    );
}

/// On a machine whose only Vulkan device is a CPU one, ggml's Vulkan
/// backend registers no device unless one is named; lmtune refuses to sweep
/// (every point would run on the CPU) and says how to name it.
#[test]
#[cfg_attr(
    not(lmtune_vulkan),
    ignore = "needs llama.cpp's Vulkan backend and the dynamic-link lmtune: scripts/test.sh builds them and sets LMTUNE_TEST_VULKAN_BACKEND / LMTUNE_TEST_DYNAMIC_LMTUNE"
)]
fn the_vulkan_backend_without_a_gpu_is_refused_and_says_how_to_select_llvmpipe() {
    let (lmtune, backend) = parts();
    let dir = tempfile::tempdir().unwrap();
    let path = scenario(
        dir.path(),
        "tiny.toml",
        "[sweep]\nn_ctx = 64\nthreads = 1\n[workload]\nn_prompt = [8]\nn_gen = [0]\n[measure]\nrepetitions = 1\n",
    );
    let run = run(&lmtune, &backend, &path, &dir.path().join("out"), None);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("(Vulkan) loaded but found no device")
            && stderr.contains("GGML_VK_VISIBLE_DEVICES=0"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// Expert offload on the Vulkan device: every layer offloaded, the routed
/// experts of blocks 0..n kept in host memory by `n_cpu_moe` ∈ {0, half,
/// all} of a synthesized qwen3moe (4 blocks of 8 experts, 2 used). The
/// device's weights shrink by exactly those blocks' expert bytes (from the
/// GGUF), llama.cpp's log names them as overridden to host memory, its dry
/// run agrees with the buffers it then allocated, and the planner's
/// prediction of the device's buffers is within 2%.
#[test]
#[cfg_attr(
    not(lmtune_vulkan),
    ignore = "needs llama.cpp's Vulkan backend and the dynamic-link lmtune: scripts/test.sh builds them and sets LMTUNE_TEST_VULKAN_BACKEND / LMTUNE_TEST_DYNAMIC_LMTUNE"
)]
fn expert_offload_keeps_exactly_the_named_blocks_experts_in_host_memory() {
    let (lmtune, backend) = parts();
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("moe.gguf");
    let synth = common::lmtune()
        .args([
            "synth",
            "--like",
            "qwen3moe-tiny",
            "--layers",
            "4",
            "--quant",
            "q8_0",
            "--donor",
        ])
        .arg(common::model_path())
        .arg("-o")
        .arg(&model)
        .output()
        .unwrap();
    assert!(
        synth.status.success(),
        "{}",
        String::from_utf8_lossy(&synth.stderr)
    );
    let path = dir.path().join("moe.toml");
    std::fs::write(
        &path,
        format!(
            "[model]\npath = {:?}\n[sweep]\nn_gpu_layers = \"all\"\nn_cpu_moe = [0, 2, \"all\"]\nn_ctx = 256\nn_ubatch = 64\nthreads = 2\n[workload]\nn_prompt = [0]\nn_gen = [4]\n[measure]\nrepetitions = 1\nwarmup = 0\n",
            model.display().to_string()
        ),
    )
    .unwrap();
    let out = dir.path().join("out");
    let run = run(&lmtune, &backend, &path, &out, Some("0"));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(0), "{stderr}");

    let inspect = common::lmtune()
        .args(["inspect", "--json"])
        .arg(&model)
        .output()
        .unwrap();
    let anatomy: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    let experts: Vec<f64> = anatomy["anatomy"]["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["routed_experts"]["bytes"].as_f64().unwrap())
        .collect();
    assert_eq!(experts.len(), 4);

    let records = read_records(&out);
    assert_eq!(records.len(), 3);
    let full = buffer_bytes(&records[0], "Vulkan0", "model");
    for r in &records {
        assert_eq!(r["status"], "ok", "{r}");
        let n = r["n_cpu_moe"].as_u64().unwrap_or(0) as usize;
        let on_host: f64 = experts[..n].iter().sum();
        let model_bytes = buffer_bytes(r, "Vulkan0", "model");
        assert!(
            (full - model_bytes - on_host).abs() <= 0.02 * MIB,
            "n_cpu_moe {n}: Vulkan0 weights {model_bytes} B, {full} B with every expert there, experts of blocks 0..{n}: {on_host} B"
        );
        let overridden: f64 = r["placement"]["overridden"]
            .as_array()
            .map(|o| o.iter().map(|o| o["expert_bytes"].as_f64().unwrap()).sum())
            .unwrap_or(0.0);
        assert_eq!(overridden, on_host, "n_cpu_moe {n}: {}", r["placement"]);
        // Host memory: the CPU buffer type, or with a GPU backend its pinned
        // host buffer type (Vulkan_Host here, CUDA_Host with CUDA).
        let host = |b: &str| b.starts_with("CPU") || b.ends_with("_Host");
        assert!(
            r["placement"]["overridden"]
                .as_array()
                .is_none_or(|o| o.iter().all(|o| host(o["buffer_type"].as_str().unwrap()))),
            "overridden to host memory: {}",
            r["placement"]
        );
        let device =
            model_bytes + buffer_bytes(r, "Vulkan0", "kv") + buffer_bytes(r, "Vulkan0", "compute");
        let dry: f64 = r["dry_run"]["buffers"]
            .as_array()
            .unwrap_or_else(|| panic!("no dry run: {r}"))
            .iter()
            .filter(|b| b["device"] == "Vulkan0" && b["host"] == false)
            .map(|b| {
                ["model_bytes", "context_bytes", "compute_bytes"]
                    .iter()
                    .map(|f| b[*f].as_f64().unwrap())
                    .sum::<f64>()
            })
            .sum();
        assert!(
            (dry - device).abs() <= 0.01 * device,
            "n_cpu_moe {n}: dry run {dry} B vs {device} B on Vulkan0"
        );
        let predicted = r["prediction"]["vram_buffers_bytes"].as_f64().unwrap();
        eprintln!(
            "n_cpu_moe {n}: Vulkan0 {:.2} MiB allocated, {:.2} MiB planned ({:+.2}%), experts in host memory {:.2} MiB",
            device / MIB,
            predicted / MIB,
            (predicted / device - 1.0) * 100.0,
            on_host / MIB + 0.0
        );
        assert!(
            (predicted - device).abs() / device < 0.02,
            "n_cpu_moe {n}: planned {predicted} B vs {device} B on Vulkan0"
        );
    }
}

/// `plan --llama-fit` on the Vulkan device with a 64 MiB budget: llama.cpp's
/// own fit (common_fit_params) sees the device, is given its free memory
/// less the budget as margin, offloads part of the model, and the dry run of
/// its choice stays in the budget; that choice then loads, and the buffers
/// llama.cpp allocates on the device are the dry run's within 1%.
#[test]
#[cfg_attr(
    not(lmtune_vulkan),
    ignore = "needs llama.cpp's Vulkan backend and the dynamic-link lmtune: scripts/test.sh builds them and sets LMTUNE_TEST_VULKAN_BACKEND / LMTUNE_TEST_DYNAMIC_LMTUNE"
)]
fn llama_cpp_s_fit_stays_in_the_budget_and_its_choice_loads() {
    let (lmtune, backend) = parts();
    let budget = 64.0 * MIB;
    let plan = std::process::Command::new(&lmtune)
        .env("VK_DRIVER_FILES", llvmpipe_icd())
        .env("VK_ICD_FILENAMES", llvmpipe_icd())
        .env("GGML_VK_VISIBLE_DEVICES", "0")
        // n_ubatch 64: at 512 the compute buffer llama.cpp puts on the device
        // (op offload; 49152-token vocabulary) alone is over the budget.
        .args([
            "plan",
            "--ctx",
            "512",
            "--ubatch",
            "64",
            "--vram",
            "64MiB",
            "--headroom",
            "0",
        ])
        .args([
            "--cpu-bandwidth",
            "20",
            "--gpu-bandwidth",
            "100",
            "--llama-fit",
            "--json",
        ])
        .arg("--ggml-backend")
        .arg(&backend)
        .arg("--model")
        .arg(common::model_path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&plan.stderr);
    let v: serde_json::Value = serde_json::from_slice(&plan.stdout)
        .unwrap_or_else(|e| panic!("plan --json: {e}\n{stderr}"));
    assert_eq!(plan.status.code(), Some(0), "{stderr}");
    let fit = &v["llama_fit"];
    let r = &fit["result"];
    assert_eq!(r["fits"], true, "{fit}");
    let devices = r["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 1, "{fit}");
    assert!(
        devices[0]["name"].as_str().unwrap().starts_with("Vulkan"),
        "{fit}"
    );
    let free = devices[0]["free_bytes"].as_f64().unwrap();
    assert_eq!(
        devices[0]["margin_bytes"].as_f64(),
        Some(free - budget),
        "{fit}"
    );
    let ngl = r["n_gpu_layers"].as_u64().unwrap();
    assert!(ngl > 0 && ngl < 31, "a part of the 31 layers: {fit}");
    // lmtune's own plan dry-runs every row on the device (no CUDA-sized
    // context on llvmpipe) and picks what llama.cpp's fit picks.
    let rows = v["plan"]["rows"].as_array().unwrap();
    assert!(rows.iter().all(|r| r["dry_run_vram_bytes"].is_u64()), "{v}");
    let pick = &rows[v["plan"]["recommended"].as_u64().unwrap() as usize];
    assert_eq!(pick["n_gpu_layers"].as_u64(), Some(ngl), "{v}");
    let on_device = |buffers: &[serde_json::Value]| -> f64 {
        buffers
            .iter()
            .filter(|b| b["host"] == false)
            .map(|b| {
                ["model_bytes", "context_bytes", "compute_bytes"]
                    .iter()
                    .map(|f| b[f].as_f64().unwrap())
                    .sum::<f64>()
            })
            .sum()
    };
    let dry = on_device(fit["dry_run"]["buffers"].as_array().unwrap());
    assert!(
        dry > 0.0 && dry <= budget,
        "dry run of fit's choice {dry} B: {fit}"
    );
    eprintln!(
        "llama.cpp's fit: n_gpu_layers {ngl}, {:.1} MiB on the device; lmtune: {}",
        dry / MIB,
        fit["lmtune"]
    );

    // The choice loads, and allocates what its dry run said.
    let overrides: Vec<String> = r["overrides"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            format!(
                "{}={}",
                o["pattern"].as_str().unwrap(),
                o["buffer_type"].as_str().unwrap()
            )
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let ot = if overrides.is_empty() {
        String::new()
    } else {
        format!("override_tensor = '{}'\n", overrides.join(";"))
    };
    let path = scenario(
        dir.path(),
        "fit.toml",
        &format!("[sweep]\nn_gpu_layers = {ngl}\n{ot}n_ctx = 512\nn_ubatch = 64\nthreads = 2\n[workload]\nn_prompt = [16]\nn_gen = [0]\n[measure]\nrepetitions = 1\nwarmup = 0\n"),
    );
    let out = dir.path().join("out");
    let run = run(&lmtune, &backend, &path, &out, Some("0"));
    assert_eq!(
        run.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let records = read_records(&out);
    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert_eq!(r["status"], "ok", "{r}");
    let allocated: f64 = ["model", "kv", "compute"]
        .iter()
        .map(|k| buffer_bytes(r, "Vulkan", k))
        .sum();
    assert!(
        (allocated - dry).abs() <= dry * 0.01,
        "allocated {allocated} B on the device, fit's dry run {dry} B"
    );
}
