//! Verdicts on the memory knobs: KV cache size (exact, from the model's
//! shape, checked against llama.cpp's dry run), the KV cache type, the
//! batch, the weight quantization. Pure: records and shapes in.

use lmtune_core::knobs::{KvType, TestKind};
use lmtune_core::record::Record;
use serde::Serialize;

use super::claims::{
    compare, kind, mean, ran, ClaimId, ClaimVerdict, Difference, Effect, Outcomes, Verdict,
};

const GB: f64 = 1e9;
const MIB: f64 = 1024.0 * 1024.0;

/// A model shape's KV cache, for the 7B claims.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KvShape {
    pub name: String,
    /// MHA (as many KV heads as query heads) or GQA.
    pub attention: String,
    pub n_layer: u64,
    pub n_head: u64,
    pub n_head_kv: u64,
    /// f16 K and V, every layer, per token.
    pub kv_bytes_per_token_f16: u64,
}

impl KvShape {
    /// A dense shape's f16 cache: K and V rows of n_head_kv × head_dim per layer.
    pub fn dense(name: &str, n_layer: u64, n_head: u64, n_head_kv: u64, head_dim: u64) -> KvShape {
        KvShape {
            name: name.to_string(),
            attention: if n_head_kv == n_head {
                "MHA".into()
            } else {
                "GQA".into()
            },
            n_layer,
            n_head,
            n_head_kv,
            kv_bytes_per_token_f16: n_layer * 2 * n_head_kv * head_dim * 2,
        }
    }

    /// A shape `synth` knows (llama-7b, llama3-8b).
    pub fn preset(name: &str) -> Option<KvShape> {
        let s = lmtune_gguf::synth::preset(name)?;
        let head_dim = s.head_dim.unwrap_or(s.n_embd / s.n_head.max(1));
        Some(KvShape::dense(
            name,
            s.n_layer,
            s.n_head,
            s.n_head_kv,
            head_dim,
        ))
    }

    pub fn bytes_at(&self, n_ctx: u64) -> u64 {
        self.kv_bytes_per_token_f16 * n_ctx
    }
}

/// The KV cache at one context size: lmtune's exact figure and what
/// llama.cpp's dry run said for the same setting, where it was measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KvRow {
    pub n_ctx: u64,
    pub exact_bytes: u64,
    pub llama_cpp_bytes: Option<u64>,
    /// (exact − llama.cpp) / llama.cpp, percent.
    pub difference_pct: Option<f64>,
    pub rss_peak_bytes: Option<u64>,
    /// Why it was not measured (beyond the trained context, memory).
    pub not_measured: Option<String>,
}

/// llama.cpp's dry-run context bytes (KV cache) of a record, every buffer.
pub fn dry_run_context_bytes(r: &Record) -> Option<u64> {
    let d = r.measurement.dry_run.as_ref()?;
    if d.error.is_some() || d.buffers.is_empty() {
        return None;
    }
    Some(d.sum(|_| true).1)
}

/// llama.cpp's dry-run total (weights, context, compute) of a record.
pub fn dry_run_total_bytes(r: &Record) -> Option<u64> {
    let d = r.measurement.dry_run.as_ref()?;
    if d.error.is_some() || d.buffers.is_empty() {
        return None;
    }
    let (m, c, k) = d.sum(|_| true);
    Some(m + c + k)
}

/// One row per context size: `exact` gives lmtune's bytes, the context
/// experiment's records llama.cpp's.
pub fn kv_rows(
    sizes: &[u64],
    exact: impl Fn(u64) -> u64,
    records: &[Record],
    n_ctx_train: u64,
) -> Vec<KvRow> {
    sizes
        .iter()
        .map(|&n| {
            let r = records
                .iter()
                .find(|r| u64::from(r.ctx.n_ctx) == n && r.ctx.type_k == KvType::F16);
            let exact_bytes = exact(n);
            let llama_cpp_bytes = r.and_then(dry_run_context_bytes);
            let not_measured = match (r, llama_cpp_bytes) {
                (Some(_), Some(_)) => None,
                (Some(_), None) => Some("the record has no dry run".to_string()),
                (None, _) if n > n_ctx_train => Some(format!(
                    "beyond the model's trained context ({n_ctx_train})"
                )),
                (None, _) => Some("not run (memory or time budget)".to_string()),
            };
            KvRow {
                n_ctx: n,
                exact_bytes,
                llama_cpp_bytes,
                difference_pct: llama_cpp_bytes
                    .filter(|&b| b > 0)
                    .map(|b| 100.0 * (exact_bytes as f64 - b as f64) / b as f64),
                rss_peak_bytes: r.and_then(|r| r.measurement.rss_peak_bytes),
                not_measured,
            }
        })
        .collect()
}

/// "On a 7B model, n_ctx tokens cost lo–hi GB": checked on the MHA and GQA
/// 7–8B shapes (within 10% of the range counts as "roughly"); the model's
/// own shape is shown beside them.
pub fn kv_7b(
    id: ClaimId,
    n_ctx: u64,
    range_gb: (f64, f64),
    sevens: &[KvShape],
    own: &KvShape,
) -> ClaimVerdict {
    let (lo, hi) = range_gb;
    let inside = |b: u64| {
        let gb = b as f64 / GB;
        gb >= 0.9 * lo && gb <= 1.1 * hi
    };
    let mut effects = Vec::new();
    let mut words = Vec::new();
    let mut outside = Vec::new();
    for s in sevens {
        let b = s.bytes_at(n_ctx);
        effects.push(Effect::exact(
            format!("{} ({}, {} KV heads)", s.name, s.attention, s.n_head_kv),
            b as f64 / GB,
            "GB",
        ));
        words.push(format!(
            "{} ({}, {}/{} KV heads): {:.2} GB",
            s.name,
            s.attention,
            s.n_head_kv,
            s.n_head,
            b as f64 / GB
        ));
        if !inside(b) {
            outside.push(s.name.clone());
        }
    }
    let own_b = own.bytes_at(n_ctx);
    effects.push(Effect::exact(
        format!("this model ({})", own.name),
        own_b as f64 / GB,
        "GB",
    ));
    words.push(format!(
        "this model ({}, {} layers, {} KV heads): {:.3} GB",
        own.name,
        own.n_layer,
        own.n_head_kv,
        own_b as f64 / GB
    ));
    let verdict = if outside.is_empty() {
        Verdict::Holds
    } else {
        Verdict::DoesNotHold
    };
    let reason = format!(
        "f16 K and V at {n_ctx} tokens: {}{}",
        words.join("; "),
        if outside.is_empty() {
            String::new()
        } else {
            format!(" — outside the range: {}", outside.join(", "))
        }
    );
    ClaimVerdict::new(
        id,
        verdict,
        reason,
        "compute it for the model: n_layer × 2 × n_head_kv × head_dim × bytes per element × n_ctx (lmtune inspect prints it per token)",
    )
    .with(effects)
}

/// q8_0 against f16 K and V: the cache's bytes (llama.cpp's dry run) and speed.
pub fn kv_q8(o: &Outcomes) -> ClaimVerdict {
    let id = ClaimId::KvQ8;
    let (records, _) = match ran(o, id) {
        Ok(r) => r,
        Err(v) => return v,
    };
    let pick = |k: TestKind, t: KvType| kind(&records, k).into_iter().find(|r| r.ctx.type_k == t);
    let mut effects = Vec::new();
    let mut words = Vec::new();
    let mem = |t: KvType| {
        records
            .iter()
            .find(|r| r.ctx.type_k == t)
            .and_then(|r| dry_run_context_bytes(r))
    };
    let ratio = match (mem(KvType::F16), mem(KvType::Q8_0)) {
        (Some(f), Some(q)) if f > 0 => {
            let ratio = q as f64 / f as f64;
            effects.push(Effect::exact(
                "q8_0 / f16 KV bytes (llama.cpp dry run)",
                ratio,
                "x",
            ));
            words.push(format!(
                "KV cache {} (q8_0) vs {} (f16): {ratio:.3}x",
                lmtune_report::human_bytes(q),
                lmtune_report::human_bytes(f)
            ));
            Some(ratio)
        }
        _ => None,
    };
    let mut diffs = Vec::new();
    for k in [TestKind::Pp, TestKind::Tg] {
        let (Some(f), Some(q)) = (pick(k, KvType::F16), pick(k, KvType::Q8_0)) else {
            continue;
        };
        let (c, d) = compare(f, q);
        let e = Effect::change(format!("{}: q8_0 vs f16", f.test), &c);
        words.push(e.text());
        effects.push(e);
        diffs.push((k, d));
    }
    let slower: Vec<TestKind> = diffs
        .iter()
        .filter(|(_, d)| *d == Difference::Slower)
        .map(|(k, _)| *k)
        .collect();
    let verdict = match ratio {
        None => Verdict::CannotTest,
        Some(r) if r > 0.6 => Verdict::DoesNotHold,
        _ if !slower.is_empty() => Verdict::DoesNotHold,
        _ if diffs.is_empty() || diffs.iter().any(|(_, d)| *d == Difference::TooNoisy) => {
            Verdict::CannotTest
        }
        _ => Verdict::Holds,
    };
    let instead = if slower.is_empty() {
        "type_k = type_v = q8_0 (with flash attention) when memory is short"
    } else {
        "keep f16 unless the memory is needed: q8_0 costs speed here"
    };
    ClaimVerdict::new(id, verdict, words.join("; "), instead).with(effects)
}

/// pp at n_batch 2048 against 512 (n_ubatch = n_batch), one client.
pub fn batch_512(o: &Outcomes) -> ClaimVerdict {
    let id = ClaimId::Batch512;
    let (records, _) = match ran(o, id) {
        Ok(r) => r,
        Err(v) => return v,
    };
    let pp = kind(&records, TestKind::Pp);
    let at = |b: u32| pp.iter().find(|r| r.ctx.n_batch == b).copied();
    let (Some(small), Some(large)) = (at(512), at(2048)) else {
        return ClaimVerdict::new(
            id,
            Verdict::CannotTest,
            "n_batch 512 and 2048 were not both measured",
            "",
        );
    };
    let (c, d) = compare(small, large);
    let e = Effect::change(format!("{}: n_batch 2048 vs 512", small.test), &c);
    let reason = format!(
        "{:.1} t/s at 512, {:.1} t/s at 2048; {}",
        mean(small),
        mean(large),
        e.text()
    );
    let (verdict, instead) = match d {
        Difference::Faster => (
            Verdict::DoesNotHold,
            "n_batch = n_ubatch = 2048 for long prompts",
        ),
        Difference::TooNoisy => (Verdict::CannotTest, "measure again on a quiet machine"),
        _ => (Verdict::Holds, "n_batch = n_ubatch = 512"),
    };
    ClaimVerdict::new(id, verdict, reason, instead).with(vec![e])
}

/// Peak memory at n_batch 2048 against 512: llama.cpp's dry run (exact) and
/// the worker's peak RSS. "Marginal" is taken as under 10%.
pub fn batch_memory(o: &Outcomes) -> ClaimVerdict {
    let id = ClaimId::BatchMemory;
    let (records, _) = match ran(o, id) {
        Ok(r) => r,
        Err(v) => return v,
    };
    let at = |b: u32| records.iter().find(|r| r.ctx.n_batch == b).copied();
    let (Some(small), Some(large)) = (at(512), at(2048)) else {
        return ClaimVerdict::new(
            id,
            Verdict::CannotTest,
            "n_batch 512 and 2048 were not both measured",
            "",
        );
    };
    let (Some(a), Some(b)) = (dry_run_total_bytes(small), dry_run_total_bytes(large)) else {
        return ClaimVerdict::new(
            id,
            Verdict::CannotTest,
            "the records carry no llama.cpp dry run",
            "",
        );
    };
    let growth = (b as f64 - a as f64) / a as f64;
    let mut effects = vec![Effect::exact(
        "dry-run total at 2048 vs 512",
        100.0 * growth,
        "% more",
    )];
    let mut reason = format!(
        "llama.cpp's dry run: {} at 512, {} at 2048 ({:+.1}%)",
        lmtune_report::human_bytes(a),
        lmtune_report::human_bytes(b),
        100.0 * growth
    );
    if let (Some(ra), Some(rb)) = (
        small.measurement.rss_peak_bytes,
        large.measurement.rss_peak_bytes,
    ) {
        let g = (rb as f64 - ra as f64) / ra as f64;
        effects.push(Effect::exact(
            "peak RSS at 2048 vs 512",
            100.0 * g,
            "% more",
        ));
        reason.push_str(&format!(
            "; peak RSS {} → {} ({:+.1}%)",
            lmtune_report::human_bytes(ra),
            lmtune_report::human_bytes(rb),
            100.0 * g
        ));
    }
    let verdict = if growth < 0.10 {
        Verdict::Holds
    } else {
        Verdict::DoesNotHold
    };
    let instead = if verdict == Verdict::Holds {
        "the batch size can be chosen for speed"
    } else {
        "n_batch 512 when memory is tight: the compute buffers grow with n_ubatch"
    };
    ClaimVerdict::new(id, verdict, reason, instead).with(effects)
}

/// The quantization experiment's records with their label (Q4_K, …).
pub fn quant_records<'a>(
    records: &[&'a Record],
    labels: &[(String, String)],
) -> Vec<(String, &'a Record)> {
    labels
        .iter()
        .filter_map(|(file, label)| {
            let r = records
                .iter()
                .find(|r| &r.fingerprint.model.file_name == file)?;
            Some((label.clone(), *r))
        })
        .collect()
}

/// Weight bytes by quantization, against F16 (2 bytes a parameter).
pub fn quant_memory(o: &Outcomes, labels: &[(String, String)]) -> ClaimVerdict {
    let id = ClaimId::QuantMemory;
    let (records, _) = match ran(o, id) {
        Ok(r) => r,
        Err(v) => return v,
    };
    let qs = quant_records(&records, labels);
    if qs.len() < 2 {
        return ClaimVerdict::new(
            id,
            Verdict::CannotTest,
            "fewer than two quantizations were measured",
            "",
        );
    }
    let f16 = qs[0].1.fingerprint.model.n_params * 2;
    let mut effects = vec![Effect::exact(
        "F16 (2 bytes a parameter)",
        f16 as f64 / MIB,
        "MiB",
    )];
    let mut words = vec![format!("F16 {}", lmtune_report::human_bytes(f16))];
    let sizes: Vec<u64> = qs
        .iter()
        .map(|(_, r)| r.fingerprint.model.weights_bytes)
        .collect();
    for ((label, r), b) in qs.iter().zip(&sizes) {
        effects.push(Effect::exact(
            format!("{label} weights"),
            *b as f64 / MIB,
            "MiB",
        ));
        let rss = r.measurement.rss_peak_bytes.map_or(String::new(), |x| {
            format!(", peak RSS {}", lmtune_report::human_bytes(x))
        });
        words.push(format!("{label} {}{rss}", lmtune_report::human_bytes(*b)));
    }
    let ordered = sizes.windows(2).all(|w| w[0] < w[1]) && sizes.last().is_some_and(|&b| b < f16);
    let verdict = if ordered {
        Verdict::Holds
    } else {
        Verdict::DoesNotHold
    };
    ClaimVerdict::new(
        id,
        verdict,
        words.join(", "),
        "the smallest quantization whose quality is acceptable",
    )
    .with(effects)
}

/// tg of the smaller quantizations against the largest (Q8_0).
pub fn quant_faster(o: &Outcomes, labels: &[(String, String)]) -> ClaimVerdict {
    let id = ClaimId::QuantFaster;
    let (records, _) = match ran(o, id) {
        Ok(r) => r,
        Err(v) => return v,
    };
    let tg: Vec<&Record> = kind(&records, TestKind::Tg);
    let qs = quant_records(&tg, labels);
    let Some((top_label, top)) = qs.last() else {
        return ClaimVerdict::new(id, Verdict::CannotTest, "no quantization was measured", "");
    };
    let mut effects = Vec::new();
    let mut diffs = Vec::new();
    let mut words = vec![qs
        .iter()
        .map(|(l, r)| format!("{l} {:.1} t/s", mean(r)))
        .collect::<Vec<_>>()
        .join(", ")];
    for (label, r) in &qs[..qs.len() - 1] {
        let (c, d) = compare(top, r);
        let e = Effect::change(format!("tg: {label} vs {top_label}"), &c);
        words.push(e.text());
        effects.push(e);
        diffs.push(d);
    }
    let verdict = if diffs.is_empty() || diffs.contains(&Difference::TooNoisy) {
        Verdict::CannotTest
    } else if diffs.iter().all(|d| *d == Difference::Faster) {
        Verdict::Holds
    } else {
        Verdict::DoesNotHold
    };
    let best = qs
        .iter()
        .max_by(|a, b| mean(a.1).total_cmp(&mean(b.1)))
        .map(|(l, _)| l.clone())
        .unwrap_or_default();
    ClaimVerdict::new(
        id,
        verdict,
        words.join("; "),
        format!("{best} was the fastest here"),
    )
    .with(effects)
}

#[cfg(test)]
#[path = "memory_tests.rs"]
mod tests;
