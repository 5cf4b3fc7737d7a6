//! Embeds the git commit into the binary for fingerprints.
use std::process::Command;

fn main() {
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into());
    let dirty = Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .output()
        .ok()
        .is_some_and(|o| o.status.success() && !o.stdout.is_empty());
    let commit = if dirty && commit != "unknown" {
        format!("{commit}-dirty")
    } else {
        commit
    };
    println!("cargo:rustc-env=LMTUNE_GIT_COMMIT={commit}");
    // Rebuild when HEAD moves: HEAD itself names a branch, whose ref file
    // changes on every commit (paths are relative to this crate).
    let git = std::path::Path::new("../../.git");
    let mut watch = vec![git.join("HEAD"), git.join("index"), git.join("packed-refs")];
    if let Ok(head) = std::fs::read_to_string(git.join("HEAD")) {
        if let Some(reference) = head.trim().strip_prefix("ref: ") {
            watch.push(git.join(reference));
        }
    }
    for path in watch.iter().filter(|p| p.exists()) {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    // Integration tests whose parts scripts/test.sh builds (and exports) are
    // `#[ignore]`d with the reason when their variable is unset at build
    // time, and run — failing loudly if the parts are broken — when it is set.
    for (var, cfg) in [
        ("LMTUNE_LLAMA_BENCH", "lmtune_llama_bench"),
        ("LMTUNE_TEST_VULKAN_BACKEND", "lmtune_vulkan"),
        // tests/slurm.rs: root and Slurm's packages (scripts/slurm-local.sh).
        ("LMTUNE_TEST_SLURM", "lmtune_slurm"),
    ] {
        println!("cargo:rustc-check-cfg=cfg({cfg})");
        println!("cargo:rerun-if-env-changed={var}");
        if std::env::var_os(var).is_some_and(|v| !v.is_empty()) {
            println!("cargo:rustc-cfg={cfg}");
        }
    }
}
