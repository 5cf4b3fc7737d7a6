//! What `lmtune fit` prints: each fit's points, R², leave-one-out error
//! and coefficients (held ones said so), and the notes.

use lmtune_model::{Calibration, Held, LinearFit, MachineCalibration};

pub(super) fn print_fit_machine(c: &MachineCalibration) {
    let range = |ci: Option<[f64; 2]>, digits: usize| {
        ci.map_or(String::new(), |[l, h]| {
            format!(" (95% {l:.digits$}–{h:.digits$})")
        })
    };
    for t in &c.threads {
        println!(
            "  {} thread(s): effective {:.1} GB/s{}{}; t_fixed {:.2} ms{}",
            t.threads,
            t.effective_gb_per_s,
            range(t.effective_gb_per_s_ci95, 1),
            match (t.eta, t.read_gb_per_s) {
                (Some(eta), Some(read)) =>
                    format!(" = η {eta:.2} of the measured read bandwidth {read:.1} GB/s"),
                _ => String::new(),
            },
            t.t_fixed_ms,
            range(t.t_fixed_ms_ci95, 2),
        );
    }
    let f = &c.fit;
    println!(
        "  {} rows (a model at a thread count, its mean time), R² {:.3}, leave-one-out error {}",
        f.n,
        f.r_squared,
        loo_text(f)
    );
    if let Some(e) = c.leave_one_model_out_mape {
        let each: Vec<String> = c
            .leave_one_model_out
            .iter()
            .map(|m| format!("{} {:.1}%", m.model, m.mape * 100.0))
            .collect();
        println!(
            "  each model predicted from the others: {:.1}% mean |error| of t/s ({})",
            e * 100.0,
            each.join(", ")
        );
    }
    for n in &c.notes {
        println!("  note: {n}");
    }
}

fn print_fit(label: &str, f: &LinearFit) {
    let set_aside = if f.outliers.is_empty() {
        String::new()
    } else {
        format!(
            " ({} set aside as outliers, see the notes)",
            f.outliers.len()
        )
    };
    println!(
        "  {label}: {} points{set_aside}, R² {:.3}, leave-one-out error {}",
        f.n,
        f.r_squared,
        loo_text(f)
    );
    for c in &f.coefficients {
        match c.held {
            Some(Held::AtZero { free_value }) => println!(
                "    {:<34} {:>12}  held at 0: the free fit gave {free_value:.4}, a negative time (impossible); the other terms are refitted without it",
                c.name, 0
            ),
            Some(Held::Undetermined) => println!(
                "    {:<34} {:>12}  not determined: no point tells it apart from the other terms (measure more settings)",
                c.name, "n/a"
            ),
            None => {
                let ci = match (c.ci95_low, c.ci95_high) {
                    (Some(lo), Some(hi)) => format!("[{lo:.4}, {hi:.4}]"),
                    _ => "n/a (no residual degrees of freedom)".into(),
                };
                println!("    {:<34} {:>12.4}  95% CI {ci}", c.name, c.value);
            }
        }
    }
}

/// The leave-one-out error, over the points the others predict; "n/a" with
/// the reason when there are none.
fn loo_text(f: &LinearFit) -> String {
    match (f.loo_mape, f.loo_max_abs_pct) {
        (Some(mean), Some(worst)) => {
            let over = if f.loo_n < f.n {
                format!(
                    " over {} of {} points (the others alone measured a term)",
                    f.loo_n, f.n
                )
            } else {
                String::new()
            };
            format!(
                "{:.1}% (mean |%|), worst {:.1}%{over}",
                mean * 100.0,
                worst * 100.0
            )
        }
        _ => "n/a (no point is predicted by the others: each alone measured a term; measure each setting at two or more values of the others)".into(),
    }
}

pub(super) fn print_calibration(c: &Calibration) {
    if let Some(f) = &c.memory {
        print_fit("memory (peak RSS, MiB)", f);
    }
    if let Some(f) = &c.vram {
        print_fit("VRAM (MiB over the offloaded weights and KV cache)", f);
    }
    if let Some(f) = &c.tg {
        print_fit("generation (ms per token)", f);
    }
    if let Some(f) = &c.pp {
        print_fit("prompt processing (ms per token)", f);
    }
    for n in &c.notes {
        println!("  note: {n}");
    }
}
