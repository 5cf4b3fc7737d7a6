//! Which shard this process runs: `--shard I/N`, else a scheduler's
//! variables (Slurm job arrays, Kubernetes Indexed Jobs).

use std::collections::BTreeMap;

use super::{Shard, ShardError};

/// The shard from the flags and the environment, `None` for an unsharded
/// run. In order:
///
/// 1. `--shard I/N` (`shard`), explicit (CI matrices);
/// 2. `SLURM_ARRAY_TASK_ID`, with `--shard-count N`, else
///    `SLURM_ARRAY_TASK_COUNT`, else `SLURM_ARRAY_TASK_MIN`/`_MAX`; the index
///    counts from `SLURM_ARRAY_TASK_MIN` in steps of `SLURM_ARRAY_TASK_STEP`
///    (so `--array=1-4` and `--array=0-6:2` work too);
/// 3. `JOB_COMPLETION_INDEX` with `--shard-count N` (Kubernetes does not
///    tell a pod the Job's completions).
pub fn shard_from_env(
    shard: Option<&str>,
    shard_count: Option<u32>,
    env: &BTreeMap<String, String>,
) -> Result<Option<Shard>, ShardError> {
    if shard_count == Some(0) {
        return Err(ShardError::ZeroShardCount);
    }
    if let Some(text) = shard {
        if shard_count.is_some() {
            return Err(ShardError::Both);
        }
        return text.parse().map(Some);
    }
    let var = |name: &'static str| -> Result<Option<u32>, ShardError> {
        env.get(name)
            .filter(|v| !v.trim().is_empty())
            .map(|v| {
                v.trim()
                    .parse::<u32>()
                    .map_err(|_| ShardError::BadVariable {
                        var: name,
                        value: v.clone(),
                    })
            })
            .transpose()
    };
    if let Some(id) = var("SLURM_ARRAY_TASK_ID")? {
        let min = var("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
        let step = var("SLURM_ARRAY_TASK_STEP")?.unwrap_or(1).max(1);
        let count = match (
            shard_count,
            var("SLURM_ARRAY_TASK_COUNT")?,
            var("SLURM_ARRAY_TASK_MAX")?,
        ) {
            (Some(n), _, _) | (None, Some(n), _) => n,
            (None, None, Some(max)) if env.contains_key("SLURM_ARRAY_TASK_MIN") => {
                max.saturating_sub(min) / step + 1
            }
            _ => return Err(ShardError::SlurmWithoutCount { id: id.to_string() }),
        };
        let from = format!("SLURM_ARRAY_TASK_ID={id}");
        let Some(offset) = id.checked_sub(min) else {
            return Err(ShardError::BadVariable {
                var: "SLURM_ARRAY_TASK_ID",
                value: format!("{id} (below SLURM_ARRAY_TASK_MIN={min})"),
            });
        };
        return in_range(from, offset / step, count);
    }
    if let Some(index) = var("JOB_COMPLETION_INDEX")? {
        let Some(count) = shard_count else {
            return Err(ShardError::IndexedJobWithoutCount {
                index: index.to_string(),
            });
        };
        return in_range(format!("JOB_COMPLETION_INDEX={index}"), index, count);
    }
    match shard_count {
        Some(count) => Err(ShardError::CountWithoutIndex { count }),
        None => Ok(None),
    }
}

fn in_range(from: String, index: u32, count: u32) -> Result<Option<Shard>, ShardError> {
    if count == 0 || index >= count {
        return Err(ShardError::OutOfRange { from, index, count });
    }
    Ok(Some(Shard { index, count }))
}
