//! The search space of `lmtune tune --model M` without a scenario.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use lmtune_core::fingerprint::HostInfo;
use lmtune_core::scenario::{BackendKind, BackendSpec, Scenario};

/// CPU only, thread counts 1, 2, 4, … up to the physical cores plus the
/// physical and logical counts, n_batch {256, 512, 2048}, n_ubatch {64, 128,
/// 256, 512} (candle: none, it has no micro-batch), valid combinations, at
/// `ctx`; pp512 (or the context, if smaller) and tg128, 3 repetitions.
pub(super) fn default_space(
    model: &Path,
    ctx: Option<u32>,
    backend: &str,
    host: &HostInfo,
) -> anyhow::Result<Scenario> {
    let in_process = BackendKind::from_name(backend)
        .filter(|k| k.is_in_process())
        .and_then(BackendSpec::default_of);
    let Some(spec) = in_process else {
        bail!(
            "--backend {backend}: tune runs llama-cpp or candle (for a server, write a scenario)"
        );
    };
    let summary = lmtune_gguf::GgufFile::open(model)
        .and_then(|f| f.summary())
        .with_context(|| format!("{} is not a model lmtune can read", model.display()))?;
    let trained = u32::try_from(summary.n_ctx_train)
        .unwrap_or(u32::MAX)
        .max(1);
    let ctx = match ctx {
        Some(0) => bail!("--ctx 0: use at least 1"),
        Some(c) if c > trained => bail!(
            "--ctx {c} is larger than the {trained} tokens the model was trained on; use --ctx {trained} or less"
        ),
        Some(c) => c,
        None => 4096.min(trained),
    };
    let mut threads = vec![];
    let mut t = 1;
    while t < host.physical_cores {
        threads.push(t);
        t *= 2;
    }
    threads.extend([host.physical_cores.max(1), host.logical_cores.max(1)]);
    threads.sort_unstable();
    threads.dedup();
    let list = |v: &[u32]| {
        v.iter()
            .map(|x| x.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let path = serde_json::to_string(&model.display().to_string())?;
    let ubatch = if spec.has_micro_batches() {
        "n_ubatch = [64, 128, 256, 512]\n".to_string()
    } else {
        String::new()
    };
    let stem = model
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    let source = format!(
        "# Written by `lmtune tune --model`: the default CPU search space.\n\
         schema = 1\nname = {name}\n\n[model]\npath = {path}\n\n[backend]\nkind = \"{kind}\"\n\n\
         [sweep]\nn_gpu_layers = 0\nn_ctx = {ctx}\nn_batch = [256, 512, 2048]\n{ubatch}threads = [{threads}]\nskip_invalid = true\n\n\
         [workload]\nn_prompt = [{pp}]\nn_gen = [{tg}]\n\n[measure]\nrepetitions = 3\nwarmup = 1\n",
        name = serde_json::to_string(&stem)?,
        kind = spec.name(),
        threads = list(&threads),
        pp = 512.min(ctx),
        tg = 128.min(ctx),
    );
    Ok(Scenario::parse(
        &PathBuf::from(format!("{stem}.toml")),
        &source,
    )?)
}
