//! `lmtune inspect`: a model's anatomy, from its GGUF header alone.

use anyhow::Context;
use lmtune_core::knobs::KvType;
use lmtune_gguf::{GgufFile, ModelAnatomy};
use lmtune_report::human_bytes;

use crate::cli::InspectArgs;
use crate::exit;

pub fn run(args: InspectArgs) -> anyhow::Result<u8> {
    let file = GgufFile::open(&args.model)?;
    let a = file
        .anatomy()
        .with_context(|| format!("cannot describe {}", args.model.display()))?;
    let kv: Vec<(String, u64)> = KvType::ALL
        .iter()
        .map(|t| {
            (
                t.to_string(),
                (0..a.layers.len())
                    .map(|il| a.kv_bytes_per_token_layer(il, t.ggml_type(), t.ggml_type()))
                    .sum(),
            )
        })
        .collect();
    if args.json {
        let value = serde_json::json!({
            "file": args.model.display().to_string(),
            "file_size_bytes": file.file_len,
            "gguf_version": file.version,
            "anatomy": a,
            "active_weights_bytes": a.active_weights_bytes(),
            "kv_not_modelled": a.kv_modelled().err().map(|e| e.to_string()),
            "kv_bytes_per_token": kv.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(exit::OK);
    }
    print_text(&args, &file, &a, &kv);
    Ok(exit::OK)
}

/// Prints the text form: the summary, the table of parts, then the KV cache.
fn print_text(args: &InspectArgs, file: &GgufFile, a: &ModelAnatomy, kv: &[(String, u64)]) {
    print_summary(args, file, a);
    println!();
    print_parts_table(a);
    println!();
    print_kv_cache(a, kv);
}

/// Prints the header lines: file, architecture, attention, experts, sliding
/// window, context and weights.
fn print_summary(args: &InspectArgs, file: &GgufFile, a: &ModelAnatomy) {
    let name = a
        .name
        .as_deref()
        .map(|n| format!(" ({n})"))
        .unwrap_or_default();
    println!("model         {}{name}", args.model.display());
    if a.synthetic {
        println!("              SYNTHETIC: random weights in a real layout (lmtune synth) — timings are real, generated text is noise");
    }
    println!(
        "file          {} (GGUF v{}, {} tensors)",
        human_bytes(file.file_len),
        file.version,
        file.tensors.len()
    );
    println!(
        "architecture  {}, {} layers, n_embd {}, n_ff {}",
        a.architecture,
        a.n_layer,
        a.n_embd,
        a.n_ff.map_or("?".into(), |f| f.to_string())
    );
    println!(
        "attention     {} heads, {} KV heads (GQA {}:1), head dim K {} / V {}",
        a.n_head,
        a.n_head_kv,
        a.n_head / a.n_head_kv.max(1),
        a.head_dim_k,
        a.head_dim_v
    );
    if let Some(e) = a.experts {
        let routed: u64 = a.layers.iter().map(|l| l.routed_experts.bytes).sum();
        let moe_layers = a
            .layers
            .iter()
            .filter(|l| !l.routed_experts.is_empty())
            .count();
        println!(
            "experts       {} routed per layer, {} used per token, on {moe_layers} of {} layers: {} of routed experts, {} read per generated token (of {} weights)",
            e.count,
            e.used,
            a.n_layer,
            human_bytes(routed),
            human_bytes(a.active_weights_bytes()),
            human_bytes(a.weights_bytes)
        );
    }
    if let Some(w) = a.sliding_window {
        let swa = a.layers.iter().filter(|l| l.is_swa).count();
        println!("sliding win.  {w} tokens on {swa} of {} layers", a.n_layer);
    }
    println!(
        "context       trained on {} tokens; vocabulary {}",
        a.n_ctx_train, a.n_vocab
    );
    let types: Vec<String> = a
        .bytes_by_type
        .iter()
        .rev()
        .map(|(t, b)| format!("{t} {}", human_bytes(*b)))
        .collect();
    println!(
        "weights       {}, {:.2} M params, {} ({})",
        human_bytes(a.weights_bytes),
        a.n_params as f64 / 1e6,
        a.quant,
        types.join(", ")
    );
}

/// Prints one row of the parts table, so every row keeps the same widths.
fn print_part_row(label: &str, bytes: u64, n_params: u64, placement: &str) {
    println!(
        "| {:<25} | {:>10} | {:>11} | {:<38} |",
        label,
        human_bytes(bytes),
        n_params,
        placement
    );
}

/// Prints the Markdown table of the model's parts (input, layers, output,
/// other) with their sizes and where `n_gpu_layers = k` places them.
fn print_parts_table(a: &ModelAnatomy) {
    println!(
        "| {:<25} | {:>10} | {:>11} | {:<38} |",
        "part", "bytes", "params", "placement with n_gpu_layers = k"
    );
    println!(
        "| {} | {}: | {}: | {} |",
        "-".repeat(25),
        "-".repeat(9),
        "-".repeat(10),
        "-".repeat(38)
    );
    print_part_row(
        "input (token_embd)",
        a.input.bytes,
        a.input.n_params,
        "always CPU",
    );
    print_layer_rows(a);
    let out_label = if a.tied_embeddings {
        "output (norm; tied embd)"
    } else {
        "output + output_norm"
    };
    print_part_row(
        out_label,
        a.output.bytes,
        a.output.n_params,
        "GPU if k >= 1 (offloaded first)",
    );
    if a.other.n_tensors > 0 {
        print_part_row("other", a.other.bytes, a.other.n_params, "CPU");
    }
}

/// Prints the layer rows of the parts table; runs of identical layers (same
/// bytes, same sliding-window flag) print as one row.
fn print_layer_rows(a: &ModelAnatomy) {
    let mut i = 0;
    while i < a.layers.len() {
        let mut j = i;
        while j + 1 < a.layers.len()
            && a.layers[j + 1].tensors.bytes == a.layers[i].tensors.bytes
            && a.layers[j + 1].is_swa == a.layers[i].is_swa
        {
            j += 1;
        }
        let label = if i == j {
            format!("blk.{i}")
        } else {
            format!("blk.{i}..{j} (each)")
        };
        let swa = if a.layers[i].is_swa { ", SWA" } else { "" };
        let gpu_at = |il: usize| a.n_layer + 1 - il as u64;
        let placement = if i == j {
            format!("GPU if k >= {}{swa}", gpu_at(i))
        } else {
            format!(
                "GPU if k >= {} (blk.{j}) .. {} (blk.{i}){swa}",
                gpu_at(j),
                gpu_at(i)
            )
        };
        print_part_row(
            &label,
            a.layers[i].tensors.bytes,
            a.layers[i].tensors.n_params,
            &placement,
        );
        i = j + 1;
    }
}

/// Prints the KV cache per token for each cache type, and its f16 size at a
/// few context lengths.
fn print_kv_cache(a: &ModelAnatomy, kv: &[(String, u64)]) {
    let per: Vec<String> = kv
        .iter()
        .map(|(t, b)| format!("{t} {}", human_bytes(*b)))
        .collect();
    if let Err(why) = a.kv_modelled() {
        println!("KV cache:          {why} (lmtune plan -m MODEL prints it); the figures below are a plain per-layer estimate only");
    }
    println!("KV cache per token: {}", per.join(", "));
    let mut sizes = vec![2048, 8192, a.n_ctx_train];
    sizes.sort_unstable();
    sizes.dedup();
    let f16 = lmtune_gguf::GgmlType(1);
    // As llama-bench and llama-server allocate it: n_ubatch 512, the
    // sliding-window layers windowed (swa_full off).
    let at: Vec<String> = sizes
        .iter()
        .map(|&n| {
            let bytes = a.kv_bytes(n, 512, false, f16, f16, |_| true);
            format!("{} at n_ctx {n}", human_bytes(bytes))
        })
        .collect();
    let note = if a.layers.iter().any(|l| l.is_swa) {
        " (sliding-window layers windowed, n_ubatch 512; swa_full makes them full size)"
    } else {
        ""
    };
    println!("KV cache (f16):     {}{note}", at.join(", "));
}
