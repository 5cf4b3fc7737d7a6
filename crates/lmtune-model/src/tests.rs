//! Planner tests on a toy anatomy whose numbers are easy to check by hand.

use std::collections::BTreeMap;

use lmtune_gguf::{GgmlType, Layer, ModelAnatomy, TensorGroup};

use crate::*;

const MB: u64 = 1_000_000;

fn group(bytes: u64) -> TensorGroup {
    TensorGroup {
        n_tensors: 1,
        n_params: bytes,
        bytes,
        bytes_by_type: BTreeMap::new(),
        largest_bytes: bytes,
        largest_params: bytes,
    }
}

/// 10 layers of 100 MB, input 50 MB, output 60 MB, 4 KV heads × 128 dims.
fn toy(tied: bool) -> ModelAnatomy {
    ModelAnatomy {
        experts: None,
        latent_kv: false,
        architecture: "llama".into(),
        name: None,
        n_layer: 10,
        n_ctx_train: 8192,
        n_embd: 1024,
        n_ff: Some(4096),
        n_head: 8,
        n_head_kv: 4,
        head_dim_k: 128,
        head_dim_v: 128,
        n_vocab: 32000,
        sliding_window: None,
        layers: (0..10)
            .map(|i| Layer {
                index: i,
                n_head_kv: 4,
                is_swa: false,
                tensors: group(100 * MB),
                routed_experts: Default::default(),
            })
            .collect(),
        input: group(50 * MB),
        output: group(if tied { 0 } else { 60 * MB }),
        tied_embeddings: tied,
        other: TensorGroup::default(),
        n_params: 0,
        weights_bytes: 1000 * MB + 50 * MB + if tied { 0 } else { 60 * MB },
        quant: "Q4_0".into(),
        bytes_by_type: BTreeMap::new(),
        synthetic: true,
    }
}

fn ctx() -> ContextShape {
    ContextShape {
        n_ctx: 4096,
        n_ubatch: 512,
        type_k: GgmlType(1),
        type_v: GgmlType(1),
        flash_attn: true,
        swa_full: false,
        op_offload: true,
    }
}

#[test]
fn output_layer_is_offloaded_first_then_the_last_layers() {
    let a = toy(false);
    let p = |ngl| Placement::new(&a, ngl);
    assert_eq!((p(0).repeating_on_gpu, p(0).output_on_gpu), (0, false));
    assert_eq!((p(1).repeating_on_gpu, p(1).output_on_gpu), (0, true));
    assert_eq!((p(3).repeating_on_gpu, p(3).first_gpu_layer), (2, 8));
    assert_eq!((p(11).repeating_on_gpu, p(11).first_gpu_layer), (10, 0));
    assert_eq!(p(99), p(11), "more than n_layer + 1 is all");
    assert!(p(3).layer_on_gpu(9) && p(3).layer_on_gpu(8) && !p(3).layer_on_gpu(7));
}

#[test]
fn weights_and_kv_split_exactly_between_devices() {
    let a = toy(false);
    let kv_per_layer = 4096 * (4 * 128 * 2 * 2);
    for ngl in 0..=11 {
        let m = predict_memory(&a, ngl, &ctx(), &CpuBackend::default());
        assert_eq!(m.host.weights + m.gpu.weights, a.weights_bytes, "ngl {ngl}");
        assert_eq!(m.host.kv + m.gpu.kv, 10 * kv_per_layer);
        let on_gpu = ngl.saturating_sub(1);
        assert_eq!(
            m.gpu.weights,
            if ngl >= 1 { 60 * MB } else { 0 } + on_gpu * 100 * MB
        );
        assert_eq!(m.gpu.kv, on_gpu * kv_per_layer);
        assert_eq!(m.gpu.compute > 0, ngl > 0);
    }
}

#[test]
fn tied_embeddings_copy_token_embd_to_the_gpu_output_layer() {
    let a = toy(true);
    let m = predict_memory(&a, 1, &ctx(), &CpuBackend::default());
    assert_eq!(m.gpu.weights, 50 * MB);
    assert_eq!(
        m.host.weights,
        50 * MB + 1000 * MB,
        "the input layer stays on the host"
    );
}

#[test]
fn offload_time_is_additive_not_interpolated() {
    let a = toy(false);
    let p = ThroughputParams::with_bandwidths(50.0, 1000.0);
    let tg = |ngl| predict_tg(&a, &Placement::new(&a, ngl), &ctx(), 0, &p);
    // Offloading only the output layer saves less than the GPU's fixed cost;
    // from there on every layer moved to the faster device helps.
    for ngl in 1..11 {
        assert!(
            tg(ngl + 1) > tg(ngl),
            "more offload is faster on a faster device"
        );
    }
    // Half the layers on the GPU: the CPU half still dominates, far below the
    // midpoint of the two ends.
    let interpolated = (tg(0) + tg(11)) / 2.0;
    assert!(tg(6) < interpolated / 2.0, "{} vs {}", tg(6), interpolated);
    // By hand at ngl = 0: 1060 MB + one embedding row read at 0.7 × 50 GB/s, + 1 ms.
    let bytes = 1060.0 * MB as f64 + (50 * MB / 32000) as f64;
    let expected = 1.0 / (bytes / (0.7 * 50e9) + 1e-3);
    assert!((tg(0) - expected).abs() < 1e-9 * expected);
}

#[test]
fn recommends_the_fastest_setting_that_fits() {
    let a = toy(false);
    let p = ThroughputParams::with_bandwidths(50.0, 1000.0);
    // 1200 MB of VRAM, 1080 MB usable: the output layer (60 MB), the GPU
    // overhead (419 MB) and compute buffer (~95 MB) leave room for 4 layers of
    // 100 MB + 8.4 MB KV each, so n_gpu_layers = 5.
    let budgets = Budgets {
        vram_bytes: 1_200 * MB,
        ram_bytes: 64_000 * MB,
        headroom: 0.1,
    };
    let plan = plan(&a, ctx(), budgets, p, &CpuBackend::default());
    let best = &plan.rows[plan.recommended.unwrap()];
    assert!(best.fits());
    assert!(plan
        .rows
        .iter()
        .filter(|r| r.fits())
        .all(|r| r.tg_tokens_per_s <= best.tg_tokens_per_s));
    assert!(
        !plan.rows[best.n_gpu_layers as usize + 1].fits_vram,
        "the next layer would not fit"
    );
    assert_eq!(best.n_gpu_layers, 5);

    let none = Budgets {
        vram_bytes: 0,
        ram_bytes: 64_000 * MB,
        headroom: 0.1,
    };
    assert_eq!(plan_for(&a, none), Some(0), "no GPU: CPU only");
    let tiny = Budgets {
        vram_bytes: 0,
        ram_bytes: 100 * MB,
        headroom: 0.1,
    };
    assert_eq!(plan_for(&a, tiny), None, "nothing fits");
}

/// With a GPU budget the n_gpu_layers 0 row holds what llama.cpp puts on
/// the GPU with nothing offloaded: op offload's compute buffer, the staged
/// output projection and the GPU context; without op offload, or without a
/// GPU, nothing.
#[test]
fn a_gpu_at_zero_layers_still_holds_op_offloads_compute_buffer() {
    let a = toy(false);
    let budgets = |vram_bytes| Budgets {
        vram_bytes,
        ram_bytes: 64_000 * MB,
        headroom: 0.1,
    };
    let row0 = |c: ContextShape, b: Budgets| {
        let p = plan(
            &a,
            c,
            b,
            ThroughputParams::with_bandwidths(50.0, 1000.0),
            &CpuBackend::default(),
        );
        p.rows[0].clone()
    };
    let r = row0(ctx(), budgets(24_000 * MB));
    assert_eq!(r.n_gpu_layers, 0);
    assert_eq!(r.memory.gpu.weights + r.memory.gpu.kv, 0);
    assert_eq!(r.memory.gpu.compute, op_offload_device_bytes(&a, &ctx()));
    assert_eq!(
        r.memory.gpu.compute,
        compute_buffer_bytes(&a, &ctx()) + 60 * MB
    );
    assert_eq!(r.memory.gpu.overhead, GPU_OVERHEAD_BYTES);
    // The host's buffers do not change: the CPU still has its own.
    assert_eq!(r.memory.host, row0(ctx(), budgets(0)).memory.host);
    // A GPU too small for that buffer cannot run even n_gpu_layers 0 with
    // op offload on; with it off it can.
    assert!(!row0(ctx(), budgets(200 * MB)).fits_vram);
    let off = ContextShape {
        op_offload: false,
        ..ctx()
    };
    let r = row0(off, budgets(200 * MB));
    assert_eq!((r.memory.gpu.total(), r.fits_vram), (0, true));
    // Micro-batches under 32 tokens are not op-offloaded.
    let small = ContextShape {
        n_ubatch: 16,
        ..ctx()
    };
    assert_eq!(row0(small, budgets(24_000 * MB)).memory.gpu.total(), 0);
    // No GPU: nothing there.
    assert_eq!(row0(ctx(), budgets(0)).memory.gpu.total(), 0);
}

fn plan_for(a: &ModelAnatomy, budgets: Budgets) -> Option<u64> {
    let p = plan(
        a,
        ctx(),
        budgets,
        ThroughputParams::with_bandwidths(50.0, 1000.0),
        &CpuBackend::default(),
    );
    p.recommended.map(|i| p.rows[i].n_gpu_layers)
}

#[test]
fn compute_buffer_matches_llama_cpp_for_smollm2() {
    // llama.cpp reported "CPU compute buffer size = 102.14 MiB" for SmolLM2
    // (n_vocab 49152, n_embd 576, n_ff 1536) at n_ubatch 512, n_ctx 512, flash attention.
    let mut a = toy(true);
    (a.n_vocab, a.n_embd, a.n_ff, a.n_head) = (49152, 576, Some(1536), 9);
    let c = ContextShape {
        n_ctx: 512,
        n_ubatch: 512,
        ..ctx()
    };
    let mib = compute_buffer_bytes(&a, &c) as f64 / (1 << 20) as f64;
    assert!((mib / 102.14 - 1.0).abs() < 0.06, "{mib} MiB");
}

#[test]
fn repacked_weights_count_twice_on_the_host_only() {
    let mut a = toy(false);
    for l in &mut a.layers {
        l.tensors.bytes_by_type.insert("q4_0".into(), 90 * MB);
        l.tensors.bytes_by_type.insert("f32".into(), 10 * MB);
    }
    let avx2 = CpuBackend::from_cpu_flags("x86_64", "fpu sse2 avx avx2 fma");
    assert_eq!(avx2.repack_types, ["q4_0", "q4_K", "iq4_nl"]);
    assert!(CpuBackend::from_cpu_flags("x86_64", "avx2 avx512f")
        .repack_types
        .contains(&"q2_K".to_string()));
    assert!(CpuBackend::from_cpu_flags("x86_64", "sse2")
        .repack_types
        .is_empty());
    let m = predict_memory(&a, 3, &ctx(), &avx2);
    assert_eq!(m.host.repacked, 8 * 90 * MB, "the 8 layers left on the CPU");
    assert_eq!(m.gpu.repacked, 0);
}
