//! `plan --llama-fit`: llama.cpp's own fit (`common_fit_params`, what
//! `llama-server --fit` runs) for the plan's context and budget, printed
//! beside lmtune's recommendation, with the dry run of its choice.

use lmtune_core::knobs::ContextParams;
use lmtune_core::llama_fit::{FitRequest, FitTarget, LLAMA_SERVER_FIT_MARGIN};
use lmtune_model::Plan;
use lmtune_report::human_bytes;

use crate::cli::PlanArgs;
use crate::dry_run::FitAnswer;

/// llama-server's `--fit-ctx`: the smallest context the fit may shrink to.
const LLAMA_SERVER_FIT_CTX: u32 = 4096;

/// The fit's target: lmtune's usable VRAM when `--vram` names a size, else
/// llama-server's default margin.
pub fn request(args: &PlanArgs, p: &Plan) -> FitRequest {
    let target = match args.vram.as_str() {
        "auto" | "0" | "none" => FitTarget::Margin(LLAMA_SERVER_FIT_MARGIN),
        _ => FitTarget::Budget(p.budgets.usable_vram()),
    };
    FitRequest {
        target,
        n_ctx_min: LLAMA_SERVER_FIT_CTX,
    }
}

/// Asks a worker; the answer or the one line saying why there is none.
pub fn ask(
    args: &PlanArgs,
    p: &Plan,
    ctx: &ContextParams,
) -> (FitRequest, Result<FitAnswer, String>) {
    let request = request(args, p);
    let all =
        u32::try_from(p.rows.iter().map(|r| r.n_gpu_layers).max().unwrap_or(0)).unwrap_or(u32::MAX);
    let answer = crate::dry_run::ask_fit(&args.model, ctx, request, all, &args.ggml_backend);
    (request, answer)
}

/// lmtune's recommended `n_gpu_layers` and its predicted GPU bytes.
fn lmtune_pick(p: &Plan) -> Option<(u64, u64, u64)> {
    p.recommended.map(|i| {
        let r = &p.rows[i];
        (r.n_gpu_layers, r.n_cpu_moe, r.vram_bytes())
    })
}

/// The `llama_fit` key of `plan --json`.
pub fn json(
    request: &FitRequest,
    answer: &Result<FitAnswer, String>,
    p: &Plan,
) -> serde_json::Value {
    let lmtune = lmtune_pick(p).map(|(ngl, n_cpu_moe, gpu)| {
        serde_json::json!({ "n_gpu_layers": ngl, "n_cpu_moe": n_cpu_moe, "gpu_bytes_predicted": gpu })
    });
    match answer {
        Ok(a) => serde_json::json!({
            "source": "llama.cpp common_fit_params",
            "request": request,
            "result": a.fit,
            "dry_run": match &a.dry_run {
                Some(Ok(d)) => serde_json::json!(d),
                Some(Err(e)) => serde_json::json!({ "error": e }),
                None => serde_json::Value::Null,
            },
            "lmtune": lmtune,
        }),
        Err(e) => {
            serde_json::json!({ "source": "llama.cpp common_fit_params", "request": request, "error": e, "lmtune": lmtune })
        }
    }
}

/// The text section: fit's choice, its devices, the dry run of the choice,
/// and whether it agrees with lmtune's pick.
pub fn print(
    model: &std::path::Path,
    request: &FitRequest,
    answer: &Result<FitAnswer, String>,
    p: &Plan,
) {
    println!();
    let a = match answer {
        Ok(a) => a,
        Err(e) => {
            println!(
                "note: llama.cpp's fit of {} failed: {e} — lmtune's plan above stands alone",
                model.display()
            );
            return;
        }
    };
    let f = &a.fit;
    let target = match request.target {
        FitTarget::Margin(m) => format!("leave {} free per device", human_bytes(m)),
        FitTarget::Budget(b) => format!(
            "use at most {} per GPU (--vram less --headroom)",
            human_bytes(b)
        ),
    };
    println!(
        "llama.cpp's own fit (common_fit_params, as llama-server --fit; {:.0} ms) to {target}:",
        f.ms
    );
    if !f.fits {
        println!("  llama.cpp found no allocation projected to fit; the parameters below are where it gave up");
    }
    println!(
        "  n_gpu_layers = {}, n_ctx = {}",
        f.n_gpu_layers_label(),
        f.n_ctx
    );
    if !f.tensor_split.is_empty() {
        let split: Vec<String> = f.tensor_split.iter().map(|s| format!("{s:.2}")).collect();
        println!("  tensor split = {}", split.join(","));
    }
    for o in &f.overrides {
        println!("  override  {}={}", o.pattern, o.buffer_type);
    }
    if f.devices.is_empty() {
        println!("  no GPU device: llama.cpp only checks that the host keeps its margin, and changes nothing");
    }
    for d in &f.devices {
        println!(
            "  {} ({}): {} free of {}, margin given {}{}",
            d.name,
            d.description,
            human_bytes(d.free_bytes),
            human_bytes(d.total_bytes),
            human_bytes(d.margin_bytes),
            if matches!(request.target, FitTarget::Budget(b) if b > d.free_bytes) {
                " (the budget is more than is free: the fit uses what is free)"
            } else {
                ""
            }
        );
    }
    match &a.dry_run {
        Some(Ok(d)) if f.devices.is_empty() => {
            let (m, c, k) = d.sum(|b| b.host);
            println!("  its dry run: {} in host buffers", human_bytes(m + c + k));
        }
        Some(Ok(d)) => {
            let (m, c, k) = d.sum(|b| !b.host);
            println!(
                "  its dry run: {} on the GPU(s) (weights {}, KV {}, compute {}), {} in host buffers",
                human_bytes(m + c + k),
                human_bytes(m),
                human_bytes(c),
                human_bytes(k),
                {
                    let (m, c, k) = d.sum(|b| b.host);
                    human_bytes(m + c + k)
                }
            );
        }
        Some(Err(e)) => println!("  the dry run of its choice failed: {e}"),
        None => println!("  its choice splits layers over several devices, which lmtune's load parameters do not say: no dry run"),
    }
    if let (Some((ngl, n_cpu_moe, gpu)), false) = (lmtune_pick(p), f.devices.is_empty()) {
        let fit_ngl = u64::try_from(f.n_gpu_layers).ok();
        let verdict = match fit_ngl {
            Some(n) if n == ngl && f.overrides.is_empty() && n_cpu_moe == 0 => {
                "the same layers".to_string()
            }
            Some(n) => format!("{:+} layer(s) against lmtune", n as i64 - ngl as i64),
            None => "every layer".into(),
        };
        println!(
            "  lmtune recommends n_gpu_layers = {ngl}{} (predicted {} on the GPU); llama.cpp's fit: {verdict}",
            if n_cpu_moe > 0 { format!(", n_cpu_moe = {n_cpu_moe}") } else { String::new() },
            human_bytes(gpu)
        );
    }
}
