//! Where llama.cpp put a model: which device each group of layers runs on,
//! and the buffers it allocated there, read from its own log lines.
//!
//! llama.cpp has no C API for this (its memory breakdown is C++), but it
//! logs every buffer it allocates with the buffer type's name, to 0.01 MiB:
//!
//! ```text
//! load_tensors: offloaded 10/31 layers to GPU
//! load_tensors:        CUDA0 model buffer size =    41.25 MiB
//! llama_kv_cache:      CUDA0 KV buffer size =    18.00 MiB
//! llama_context:       CUDA0 compute buffer size =    96.00 MiB
//! ```
//!
//! The layer groups follow the rule in `llama-model.cpp` (`load_tensors`):
//! the token embeddings stay on the CPU; with `n_gpu_layers = k` and a GPU
//! device, the output layer is offloaded first, then the last k − 1 blocks;
//! with no GPU device nothing is offloaded, whatever k is.

use lmtune_core::record::{BufferKind, BufferSize, GraphSplits, OverriddenTensors, Placement};

const KINDS: [(&str, BufferKind); 4] = [
    (" model buffer size = ", BufferKind::Model),
    (" KV buffer size = ", BufferKind::Kv),
    (" compute buffer size = ", BufferKind::Compute),
    (" output buffer size = ", BufferKind::Output),
];

/// Whether a log line is one [`placement`] reads.
pub fn is_placement_line(line: &str) -> bool {
    line.contains(" layers to GPU")
        || line.contains(OVERRIDDEN)
        || line.contains(", splits = ")
        || KINDS.iter().any(|(k, _)| line.contains(k))
}

/// llama.cpp's graph line after reserving a context's buffers, e.g.
/// `sched_reserve: graph (pp bs=256, tg bs=1): nodes = 939 / 939, splits = 334 / 1, …`,
/// or `… graph: nodes = 939, splits = 1, …` when both graphs agree.
pub fn parse_graph_splits(line: &str) -> Option<GraphSplits> {
    let rest = line.split(", splits = ").nth(1)?;
    let value = rest.split(',').next()?.trim();
    let (pp, tg) = match value.split_once('/') {
        Some((pp, tg)) => (pp.trim().parse().ok()?, tg.trim().parse().ok()?),
        None => {
            let n = value.parse().ok()?;
            (n, n)
        }
    };
    Some(GraphSplits { pp, tg })
}

/// One buffer line, e.g. `llama_kv_cache:        CPU KV buffer size =     6.00 MiB`.
pub fn parse_buffer(line: &str) -> Option<BufferSize> {
    let (marker, kind) = KINDS.iter().find(|(k, _)| line.contains(k))?;
    let (head, tail) = line.split_once(marker)?;
    // The head is "function: NAME" (the name has no spaces).
    let device = head
        .trim_end()
        .rsplit(|c: char| c.is_whitespace() || c == ':')
        .next()?;
    let mib: f64 = tail.trim().strip_suffix("MiB")?.trim().parse().ok()?;
    if device.is_empty() || !mib.is_finite() || mib < 0.0 {
        return None;
    }
    Some(BufferSize {
        device: device.to_string(),
        kind: *kind,
        bytes: (mib * 1024.0 * 1024.0).round() as u64,
    })
}

/// What llama.cpp logs (at debug level) for each tensor an override placed.
const OVERRIDDEN: &str = " buffer type overridden to ";

/// `tensor blk.0.ffn_up_exps.weight (12 MiB q8_0) buffer type overridden to CPU`
/// → (tensor name, buffer type).
pub fn parse_override(line: &str) -> Option<(&str, &str)> {
    let (head, buft) = line.split_once(OVERRIDDEN)?;
    let name = head.split("tensor ").nth(1)?.split_whitespace().next()?;
    let buft = buft.trim();
    (!name.is_empty() && !buft.is_empty()).then_some((name, buft))
}

/// The overridden tensors of a load, per buffer type in the order llama.cpp
/// first named each; `bytes_of` gives a tensor's size (from the GGUF header;
/// the log rounds to whole MiB).
pub fn overridden(lines: &[String], bytes_of: impl Fn(&str) -> u64) -> Vec<OverriddenTensors> {
    let mut out: Vec<OverriddenTensors> = Vec::new();
    for (name, buft) in lines.iter().filter_map(|l| parse_override(l)) {
        let i = match out.iter().position(|o| o.buffer_type == buft) {
            Some(i) => i,
            None => {
                out.push(OverriddenTensors {
                    buffer_type: buft.to_string(),
                    tensors: 0,
                    bytes: 0,
                    expert_bytes: 0,
                });
                out.len() - 1
            }
        };
        let bytes = bytes_of(name);
        let o = &mut out[i];
        o.tensors += 1;
        o.bytes += bytes;
        if lmtune_gguf::is_routed_expert(name) {
            o.expert_bytes += bytes;
        }
    }
    out
}

/// `offloaded N/M layers to GPU` → (N, M).
pub fn parse_offloaded(line: &str) -> Option<(u32, u32)> {
    let rest = line.split("offloaded ").nth(1)?;
    let counts = rest.strip_suffix(" layers to GPU")?;
    let (n, m) = counts.split_once('/')?;
    Some((n.trim().parse().ok()?, m.trim().parse().ok()?))
}

/// The layer groups and their devices, by llama.cpp's rule, for a model of
/// `n_layer` blocks loaded with `n_gpu_layers` when the GPU devices are
/// `gpus` (ggml device names, e.g. `CUDA0`; empty on a CPU-only build).
pub fn groups(n_layer: u32, n_gpu_layers: u32, gpus: &[String]) -> Vec<String> {
    let offloaded = if gpus.is_empty() {
        0
    } else {
        n_gpu_layers.min(n_layer + 1)
    };
    let gpu = match gpus {
        [one] => one.clone(),
        many => format!("{} (split by llama.cpp's tensor_split)", many.join(", ")),
    };
    let first_gpu_block = (n_layer + 1).saturating_sub(offloaded);
    let mut out = vec!["token embeddings: CPU".to_string()];
    let range = |a: u32, b: u32| {
        if a == b {
            format!("block {a}")
        } else {
            format!("blocks {a}-{b}")
        }
    };
    if n_layer > 0 {
        if first_gpu_block > 0 {
            out.push(format!(
                "{}: CPU",
                range(0, first_gpu_block.min(n_layer) - 1)
            ));
        }
        if first_gpu_block < n_layer {
            out.push(format!("{}: {gpu}", range(first_gpu_block, n_layer - 1)));
        }
    }
    out.push(format!(
        "output: {}",
        if offloaded > 0 { gpu.as_str() } else { "CPU" }
    ));
    out
}

/// The placement of one point: the model's lines from its load, the
/// context's from the point's context creation.
pub fn placement(
    n_layer: u32,
    n_gpu_layers: u32,
    gpus: &[String],
    model_lines: &[String],
    context_lines: &[String],
) -> Placement {
    let layers_offloaded = model_lines
        .iter()
        .find_map(|l| parse_offloaded(l))
        .map_or(0, |(n, _)| n);
    Placement {
        layers_offloaded,
        layers_total: n_layer + 1,
        groups: groups(n_layer, n_gpu_layers, gpus),
        buffers: model_lines
            .iter()
            .chain(context_lines)
            .filter_map(|l| parse_buffer(l))
            .collect(),
        graph_splits: context_lines
            .iter()
            .rev()
            .find_map(|l| parse_graph_splits(l)),
        kv_caches: super::applied::kv_caches(context_lines),
        overridden: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffer_lines_as_llama_cpp_prints_them() {
        let b =
            parse_buffer("load_tensors:   CPU_Mapped model buffer size =    85.99 MiB").unwrap();
        assert_eq!(b.device, "CPU_Mapped");
        assert_eq!(b.kind, BufferKind::Model);
        assert_eq!(b.bytes, (85.99f64 * 1048576.0).round() as u64);
        let kv = parse_buffer("llama_kv_cache:      CUDA0 KV buffer size =    18.00 MiB").unwrap();
        assert_eq!(
            (kv.device.as_str(), kv.kind, kv.bytes),
            ("CUDA0", BufferKind::Kv, 18 << 20)
        );
        let c =
            parse_buffer("llama_context:  CUDA_Host compute buffer size =     5.01 MiB").unwrap();
        assert_eq!(
            (c.device.as_str(), c.kind),
            ("CUDA_Host", BufferKind::Compute)
        );
        let o =
            parse_buffer("llama_context:        CPU  output buffer size =     0.19 MiB").unwrap();
        assert_eq!((o.device.as_str(), o.kind), ("CPU", BufferKind::Output));
        assert!(parse_buffer("llama_context: n_ctx = 512").is_none());
        assert!(parse_buffer("load_tensors: CPU model buffer size = lots").is_none());
        assert!(is_placement_line(
            "load_tensors: offloaded 10/31 layers to GPU"
        ));
        assert!(!is_placement_line("llama_context: n_batch = 512"));
    }

    #[test]
    fn override_lines_as_llama_cpp_logs_them() {
        let lines: Vec<String> = [
            "tensor blk.0.ffn_up_exps.weight (12 MiB q8_0) buffer type overridden to CPU",
            "tensor blk.0.ffn_down_exps.weight (12 MiB q8_0) buffer type overridden to CPU",
            "tensor token_embd.weight (1 MiB q8_0) buffer type overridden to CPU_REPACK",
            "load_tensors: offloaded 3/3 layers to GPU",
        ]
        .map(String::from)
        .to_vec();
        assert!(lines.iter().all(|l| is_placement_line(l)));
        assert_eq!(
            parse_override(&lines[0]),
            Some(("blk.0.ffn_up_exps.weight", "CPU"))
        );
        let o = overridden(&lines, |name| if name.starts_with("blk") { 100 } else { 7 });
        assert_eq!(
            o,
            vec![
                OverriddenTensors {
                    buffer_type: "CPU".into(),
                    tensors: 2,
                    bytes: 200,
                    expert_bytes: 200
                },
                OverriddenTensors {
                    buffer_type: "CPU_REPACK".into(),
                    tensors: 1,
                    bytes: 7,
                    expert_bytes: 0
                },
            ]
        );
    }

    /// The graph line as llama.cpp 0.1.160's `sched_reserve` prints it
    /// (from a run with the Vulkan backend at n_gpu_layers 0, op offload on),
    /// and its short form when the prompt and generation graphs agree.
    #[test]
    fn graph_splits_lines_as_llama_cpp_prints_them() {
        let line = "sched_reserve: graph (pp bs=256, tg bs=1): nodes = 939 / 939, splits = 334 / 1, input objects = 4 / 4, input tensors = 9 / 9";
        assert!(is_placement_line(line));
        assert_eq!(
            parse_graph_splits(line),
            Some(GraphSplits { pp: 334, tg: 1 })
        );
        assert_eq!(
            parse_graph_splits("sched_reserve: graph: nodes = 939, splits = 1, input objects = 4, input tensors = 9"),
            Some(GraphSplits { pp: 1, tg: 1 })
        );
        assert_eq!(
            parse_graph_splits("sched_reserve: graph: nodes = 939, splits = many, x"),
            None
        );
    }

    #[test]
    fn offload_count() {
        assert_eq!(
            parse_offloaded("load_tensors: offloaded 10/31 layers to GPU"),
            Some((10, 31))
        );
        assert_eq!(
            parse_offloaded("load_tensors: offloading 9 repeating layers to GPU"),
            None
        );
    }

    #[test]
    fn groups_follow_llama_cpps_rule() {
        let cuda = vec!["CUDA0".to_string()];
        // SmolLM2: 30 blocks + output = 31 offloadable layers.
        assert_eq!(
            groups(30, 10, &cuda),
            [
                "token embeddings: CPU",
                "blocks 0-20: CPU",
                "blocks 21-29: CUDA0",
                "output: CUDA0"
            ]
        );
        // k = 1 offloads the output layer alone.
        assert_eq!(
            groups(30, 1, &cuda),
            ["token embeddings: CPU", "blocks 0-29: CPU", "output: CUDA0"]
        );
        // k = n_layer: the output layer and the last n_layer - 1 blocks.
        assert_eq!(
            groups(30, 30, &cuda),
            [
                "token embeddings: CPU",
                "block 0: CPU",
                "blocks 1-29: CUDA0",
                "output: CUDA0"
            ]
        );
        for k in [31, 99] {
            assert_eq!(
                groups(30, k, &cuda),
                [
                    "token embeddings: CPU",
                    "blocks 0-29: CUDA0",
                    "output: CUDA0"
                ]
            );
        }
        // No GPU device: all on the CPU whatever k is.
        assert_eq!(
            groups(30, 10, &[]),
            ["token embeddings: CPU", "blocks 0-29: CPU", "output: CPU"]
        );
        assert_eq!(groups(30, 0, &cuda), groups(30, 5, &[]));
        let two = vec!["CUDA0".to_string(), "CUDA1".to_string()];
        assert_eq!(
            groups(30, 31, &two)[1],
            "blocks 0-29: CUDA0, CUDA1 (split by llama.cpp's tensor_split)"
        );
    }

    #[test]
    fn a_placement_from_log_lines() {
        let model = [
            "load_tensors: offloading output layer to GPU".to_string(),
            "load_tensors: offloaded 10/31 layers to GPU".to_string(),
            "load_tensors:   CPU_Mapped model buffer size =    60.00 MiB".to_string(),
            "load_tensors:        CUDA0 model buffer size =    30.00 MiB".to_string(),
        ];
        let ctx = ["llama_kv_cache:      CUDA0 KV buffer size =     3.00 MiB".to_string()];
        let p = placement(30, 10, &["CUDA0".to_string()], &model, &ctx);
        assert_eq!((p.layers_offloaded, p.layers_total), (10, 31));
        assert_eq!(p.buffers.len(), 3);
        assert_eq!(p.device_bytes(), 33 << 20);
        let cpu_model = p
            .buffers
            .iter()
            .find(|b| b.device == "CPU_Mapped" && b.kind == BufferKind::Model)
            .unwrap();
        assert_eq!(cpu_model.bytes, 60 << 20);
    }
}
