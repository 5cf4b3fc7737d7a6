//! `lmtune hw`: what this machine is, as records will describe it.

use lmtune_core::bandwidth::measure_triad;
use lmtune_core::fingerprint::{detect_gpus, HostInfo};
use lmtune_report::human_bytes;

use crate::cli::HwArgs;
use crate::exit;

pub fn run(args: HwArgs) -> anyhow::Result<u8> {
    let host = HostInfo::detect();
    let gpus = detect_gpus();
    let bandwidth = (!args.no_bandwidth)
        .then(|| measure_triad(args.threads.unwrap_or(host.physical_cores), 256 << 20, 5));
    if args.json {
        let (list, note) = match &gpus {
            Ok(g) => (g.clone(), None),
            Err(note) => (Vec::new(), Some(note.to_string())),
        };
        let value = serde_json::json!({
            "host": host,
            "gpus": list,
            "gpu_note": note,
            "host_bandwidth": bandwidth,
            "lmtune_version": lmtune_core::LMTUNE_VERSION,
            "lmtune_commit": env!("LMTUNE_GIT_COMMIT"),
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(exit::OK);
    }
    println!("host:      {}", host.hostname);
    println!(
        "cpu:       {} ({} physical / {} logical cores, {})",
        host.cpu_model, host.physical_cores, host.logical_cores, host.arch
    );
    println!("ram:       {}", human_bytes(host.ram_bytes));
    println!("os:        {} (kernel {})", host.os, host.kernel);
    if let Some(bw) = bandwidth {
        println!(
            "memory:    {:.1} GB/s read, {:.1} GB/s triad best, {:.1} GB/s triad median ({} threads, 3 × {})",
            bw.read_ceiling_gb_per_s(),
            bw.best_gb_per_s,
            bw.median_gb_per_s,
            bw.threads,
            human_bytes(bw.array_bytes)
        );
    }
    println!(
        "lmtune:    {} ({})",
        lmtune_core::LMTUNE_VERSION,
        env!("LMTUNE_GIT_COMMIT")
    );
    match gpus {
        Ok(gpus) => {
            for g in gpus {
                println!(
                    "gpu {}:     {} — {} free of {} (driver {}){}",
                    g.index,
                    g.name,
                    human_bytes(g.vram_free_bytes),
                    human_bytes(g.vram_total_bytes),
                    g.driver_version,
                    g.theoretical_bandwidth_gb_per_s
                        .map(|b| format!(", {b:.0} GB/s theoretical"))
                        .unwrap_or_default()
                );
            }
        }
        Err(note) => println!("gpu:       {note}"),
    }
    Ok(exit::OK)
}
