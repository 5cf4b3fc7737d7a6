//! What llama.cpp says it applied when it created a context, read from its
//! own log, and every parameter lmtune passed it.
//!
//! The two sides pin the audit of lmtune's parameters against llama-bench's
//! (README, "llama.cpp parameters"): `passed` is what lmtune handed to
//! `llama_init_from_model`, `applied` what llama.cpp logged back:
//!
//! ```text
//! llama_context: n_seq_max             = 1
//! llama_context: kv_unified            = false
//! llama_kv_cache_iswa: creating non-SWA KV cache, size = 32768 cells
//! llama_kv_cache: size =   96.00 MiB ( 32768 cells,   3 layers,  1/1 seqs), K (f16):   48.00 MiB, V (f16):   48.00 MiB
//! llama_kv_cache_iswa: creating     SWA KV cache, size = 1024 cells
//! llama_kv_cache: size =   15.00 MiB (  1024 cells,  15 layers,  1/1 seqs), K (f16):    7.50 MiB, V (f16):    7.50 MiB
//! ```

use std::collections::BTreeMap;

use llama_cpp_2::context::params::LlamaContextParams;
use lmtune_core::record::{KvCache, KvCacheKind};

/// The `llama_context:` settings llama.cpp logs at creation (vendored
/// `llama-context.cpp`), in its own names.
const CONTEXT_KEYS: [&str; 9] = [
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

/// Whether a log line is one [`applied`] or [`kv_caches`] reads.
pub fn is_applied_line(line: &str) -> bool {
    context_setting(line).is_some()
        || line.contains("llama_kv_cache: size = ")
        || line.contains(" KV cache, size = ")
        || line.contains("using full-size SWA cache")
}

/// `llama_context: n_seq_max             = 1` → ("n_seq_max", "1").
fn context_setting(line: &str) -> Option<(&'static str, &str)> {
    let rest = line.trim_start().strip_prefix("llama_context: ")?;
    let (key, value) = rest.split_once('=')?;
    let key = CONTEXT_KEYS.into_iter().find(|k| *k == key.trim())?;
    Some((key, value.trim()))
}

/// The context settings llama.cpp logged, plus `swa_full = true` when it
/// said it made the sliding-window cache full size.
pub fn applied(lines: &[String]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in lines {
        if let Some((k, v)) = context_setting(line) {
            out.insert(k.to_string(), v.to_string());
        }
        if line.contains("using full-size SWA cache") {
            out.insert("swa_full".into(), "true".into());
        }
    }
    out
}

/// The KV caches llama.cpp created, in order: one for most models; for a
/// model with sliding-window layers (and `swa_full` off or on), a non-SWA
/// cache for the global layers and a SWA cache for the others.
pub fn kv_caches(lines: &[String]) -> Vec<KvCache> {
    let mut out = Vec::new();
    let mut next = KvCacheKind::Unified;
    for line in lines {
        if line.contains("creating non-SWA KV cache") {
            next = KvCacheKind::Global;
        } else if line.contains("creating     SWA KV cache")
            || line.contains("creating SWA KV cache")
        {
            next = KvCacheKind::SlidingWindow;
        } else if let Some(cache) = parse_kv_size(line, next) {
            out.push(cache);
            next = KvCacheKind::Unified;
        }
    }
    out
}

/// `llama_kv_cache: size =   15.00 MiB (  1024 cells,  15 layers,  1/1 seqs), …`.
fn parse_kv_size(line: &str, kind: KvCacheKind) -> Option<KvCache> {
    let rest = line.split("llama_kv_cache: size = ").nth(1)?;
    let (mib, rest) = rest.split_once("MiB")?;
    let mib: f64 = mib.trim().parse().ok()?;
    let inner = rest.split_once('(')?.1.split_once(')')?.0;
    let mut cells = None;
    let mut layers = None;
    for part in inner.split(',') {
        let part = part.trim();
        if let Some(n) = part.strip_suffix(" cells") {
            cells = n.trim().parse().ok();
        } else if let Some(n) = part.strip_suffix(" layers") {
            layers = n.trim().parse().ok();
        }
    }
    Some(KvCache {
        kind,
        cells: cells?,
        layers: layers?,
        bytes: (mib * 1024.0 * 1024.0).round() as u64,
    })
}

/// Every model and context parameter lmtune passes llama.cpp, by its
/// `llama.h` field name. Fields lmtune leaves alone are read from
/// llama.cpp's own defaults, so the record says what ran either way.
pub fn passed(
    load: &lmtune_core::knobs::LoadParams,
    c: &LlamaContextParams,
) -> BTreeMap<String, String> {
    // SAFETY: plain constructors of C structs by value.
    let (md, cd) = unsafe {
        (
            llama_cpp_sys_2::llama_model_default_params(),
            llama_cpp_sys_2::llama_context_default_params(),
        )
    };
    let flash_attn = match c.flash_attention_policy() {
        llama_cpp_sys_2::LLAMA_FLASH_ATTN_TYPE_ENABLED => "enabled",
        llama_cpp_sys_2::LLAMA_FLASH_ATTN_TYPE_DISABLED => "disabled",
        _ => "auto",
    };
    let entries: Vec<(&str, String)> = vec![
        // llama_model_params
        ("n_gpu_layers", load.n_gpu_layers.to_string()),
        (
            "split_mode",
            match md.split_mode {
                llama_cpp_sys_2::LLAMA_SPLIT_MODE_NONE => "none".to_string(),
                llama_cpp_sys_2::LLAMA_SPLIT_MODE_LAYER => "layer".to_string(),
                llama_cpp_sys_2::LLAMA_SPLIT_MODE_ROW => "row".to_string(),
                other => other.to_string(),
            },
        ),
        ("main_gpu", md.main_gpu.to_string()),
        // LLAMA_LOAD_MODE_AUTO (mmap where the device allows it), as
        // llama-bench and llama-server load; NONE when use_mmap is off.
        (
            "load_mode",
            if load.use_mmap { "auto" } else { "none" }.into(),
        ),
        ("check_tensors", md.check_tensors.to_string()),
        ("use_extra_bufts", md.use_extra_bufts.to_string()),
        ("no_host", md.no_host.to_string()),
        (
            "tensor_buft_overrides",
            if load.has_overrides() {
                load.overrides_label().trim().to_string()
            } else {
                "none".into()
            },
        ),
        // llama_context_params
        ("n_ctx", c.n_ctx().map_or(0, |n| n.get()).to_string()),
        ("n_batch", c.n_batch().to_string()),
        ("n_ubatch", c.n_ubatch().to_string()),
        ("n_seq_max", c.n_seq_max().to_string()),
        ("n_threads", c.n_threads().to_string()),
        ("n_threads_batch", c.n_threads_batch().to_string()),
        ("flash_attn_type", flash_attn.into()),
        ("type_k", format!("{:?}", c.type_k()).to_lowercase()),
        ("type_v", format!("{:?}", c.type_v()).to_lowercase()),
        ("embeddings", c.embeddings().to_string()),
        ("offload_kqv", c.offload_kqv().to_string()),
        ("no_perf", c.no_perf().to_string()),
        ("op_offload", c.op_offload().to_string()),
        ("swa_full", c.swa_full().to_string()),
        ("kv_unified", c.kv_unified().to_string()),
        ("n_outputs_max", cd.n_outputs_max.to_string()),
        ("rope_freq_base", "model".into()),
        ("defrag_thold", cd.defrag_thold.to_string()),
    ];
    entries
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(s: &str) -> Vec<String> {
        s.lines().map(String::from).collect()
    }

    #[test]
    fn reads_the_settings_llama_cpp_logged() {
        let log = lines(
            "llama_context: n_seq_max             = 1\n\
             llama_context: n_ctx                 = 32768\n\
             llama_context: flash_attn            = auto\n\
             llama_context: kv_unified            = false\n\
             llama_context: freq_base             = 10000.0\n\
             llama_kv_cache_iswa: using full-size SWA cache (ref: x)",
        );
        let a = applied(&log);
        assert_eq!(a["n_seq_max"], "1");
        assert_eq!(a["n_ctx"], "32768");
        assert_eq!(a["kv_unified"], "false");
        assert_eq!(a["swa_full"], "true");
        assert!(!a.contains_key("freq_base"));
        assert!(log
            .iter()
            .all(|l| is_applied_line(l) || l.contains("freq_base")));
    }

    #[test]
    fn reads_the_global_and_sliding_window_caches() {
        let log = lines(
            "llama_kv_cache_iswa: creating non-SWA KV cache, size = 32768 cells\n\
             llama_kv_cache: size =   96.00 MiB ( 32768 cells,   3 layers,  1/1 seqs), K (f16):   48.00 MiB, V (f16):   48.00 MiB\n\
             llama_kv_cache_iswa: creating     SWA KV cache, size = 1024 cells\n\
             llama_kv_cache: size =   15.00 MiB (  1024 cells,  15 layers,  1/1 seqs), K (f16):    7.50 MiB, V (f16):    7.50 MiB\n\
             llama_kv_cache: size =    6.00 MiB (   256 cells,  30 layers,  1/1 seqs), K (f16):    3.00 MiB, V (f16):    3.00 MiB",
        );
        let caches = kv_caches(&log);
        assert_eq!(caches.len(), 3);
        assert_eq!(
            (caches[0].kind, caches[0].cells, caches[0].layers),
            (KvCacheKind::Global, 32768, 3)
        );
        assert_eq!(caches[0].bytes, 96 << 20);
        assert_eq!(
            (caches[1].kind, caches[1].cells, caches[1].layers),
            (KvCacheKind::SlidingWindow, 1024, 15)
        );
        assert_eq!(caches[2].kind, KvCacheKind::Unified);
    }
}
