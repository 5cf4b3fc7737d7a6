//! Splitting a plan across machines: `lmtune run --shard I/N` runs one of N
//! parts of a scenario's points, and `lmtune merge` joins the parts.
//!
//! Shards are numbered from 0, like Slurm array task ids and Kubernetes'
//! `JOB_COMPLETION_INDEX`: the shards of 4 are `0/4` … `3/4`.
//!
//! The partition keeps every load group on one shard (a model is loaded by
//! one machine only) and balances the predicted time: groups are placed by
//! longest processing time first, each into the shard with the least time so
//! far. The prediction ([`predicted_point_s`]) is a reference machine's, not
//! this machine's, so that every machine of a fleet computes the same
//! partition; it only has to rank groups, not to be right.
//!
//! ```
//! use lmtune_core::shard::{assign_groups, Shard};
//! let shard: Shard = "1/2".parse().unwrap();
//! // Three load groups costing 5, 3 and 3 ms: group 0 alone, groups 1 and 2 together.
//! let shards = assign_groups(&[(0, 5), (1, 3), (2, 3)], shard.count);
//! assert_eq!(shards[&0], 0);
//! assert_eq!((shards[&1], shards[&2]), (1, 1));
//! ```

mod env;
mod merge;

pub use env::shard_from_env;
pub use merge::{merge, MergeError, Merged, PlanFile, PlannedPoint, ShardRun, PLAN_FILE};

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::scenario::{Plan, Point};

/// One of `count` parts of a plan; `index` is 0-based (`0 <= index < count`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    /// A shard, checked: `count >= 1` and `index < count`.
    pub fn new(index: u32, count: u32) -> Result<Shard, ShardError> {
        if count == 0 {
            return Err(ShardError::ZeroCount { index });
        }
        if index >= count {
            return Err(ShardError::IndexTooLarge { index, count });
        }
        Ok(Shard { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = ShardError;

    /// `I/N`, 0-based: `0/4` … `3/4`.
    fn from_str(text: &str) -> Result<Shard, ShardError> {
        let syntax = || ShardError::Syntax {
            text: text.to_string(),
        };
        let (i, n) = text.trim().split_once('/').ok_or_else(syntax)?;
        let index = i.trim().parse::<u32>().map_err(|_| syntax())?;
        let count = n.trim().parse::<u32>().map_err(|_| syntax())?;
        Shard::new(index, count)
    }
}

/// Why no shard could be chosen; each message is one line naming the flag
/// or variable and the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardError {
    #[error("--shard {text:?}: expected I/N, two whole numbers with I < N (0-based, like Slurm array task ids): e.g. --shard 0/4 … --shard 3/4")]
    Syntax { text: String },
    #[error("--shard {index}/0: a run has at least one shard; write e.g. --shard 0/1, or leave --shard out")]
    ZeroCount { index: u32 },
    #[error("--shard {index}/{count}: shards are numbered from 0, so the last of {count} is {last}/{count}; use an index below {count}", last = count.saturating_sub(1))]
    IndexTooLarge { index: u32, count: u32 },
    #[error("--shard-count 0: a run has at least one shard; pass --shard-count N with N >= 1")]
    ZeroShardCount,
    #[error("--shard and --shard-count are both given: use --shard I/N alone, or --shard-count N with SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX set")]
    Both,
    #[error("--shard-count {count} needs SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX in the environment; outside a scheduler, use --shard I/N")]
    CountWithoutIndex { count: u32 },
    #[error("SLURM_ARRAY_TASK_ID={id} is set but not SLURM_ARRAY_TASK_COUNT (or SLURM_ARRAY_TASK_MIN and _MAX): pass --shard-count N, or --shard I/N")]
    SlurmWithoutCount { id: String },
    #[error("JOB_COMPLETION_INDEX={index} is set but --shard-count is not: pass --shard-count N with N the Job's completions (or --shard I/N)")]
    IndexedJobWithoutCount { index: String },
    #[error("{var}={value:?} is not a whole number: fix the variable, or pass --shard I/N")]
    BadVariable { var: &'static str, value: String },
    #[error("{from} gives shard {index} of {count}, past the last ({last}): check the array range against --shard-count, or pass --shard I/N", last = count.saturating_sub(1))]
    OutOfRange {
        from: String,
        index: u32,
        count: u32,
    },
}

/// The shard each load group goes to: longest processing time first (ties:
/// the lower group id), each into the shard with the least time so far
/// (ties: the lower shard index). `groups` is (load group, cost), costs in
/// any unit; integers keep the partition identical on every machine.
pub fn assign_groups(groups: &[(usize, u64)], count: u32) -> BTreeMap<usize, u32> {
    let count = count.max(1);
    let mut order: Vec<(usize, u64)> = groups.to_vec();
    order.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut bins = vec![0u64; count as usize];
    let mut out = BTreeMap::new();
    for (group, cost) in order {
        let (bin, _) = bins
            .iter()
            .enumerate()
            .min_by_key(|&(i, &t)| (t, i))
            .expect("at least one shard");
        bins[bin] = bins[bin].saturating_add(cost);
        out.insert(group, bin as u32);
    }
    out
}

/// Each load group's predicted time in milliseconds: one model load plus
/// its points.
pub fn group_costs_ms(plan: &Plan) -> Vec<(usize, u64)> {
    let mut costs: BTreeMap<usize, f64> = BTreeMap::new();
    for p in &plan.points {
        *costs
            .entry(p.load_group)
            .or_insert_with(|| predicted_load_s(plan)) += predicted_point_s(plan, p);
    }
    costs
        .into_iter()
        .map(|(g, s)| (g, (s * 1e3).round() as u64))
        .collect()
}

/// The points of `plan` that `shard` runs, in run order.
pub fn shard_points(plan: &Plan, shard: Shard) -> Vec<&Point> {
    let groups = assign_groups(&group_costs_ms(plan), shard.count);
    plan.points
        .iter()
        .filter(|p| groups.get(&p.load_group) == Some(&shard.index))
        .collect()
}

/// Reference throughputs for the partition: a modest machine, the same
/// everywhere (prompt FLOP/s per thread, memory bandwidth, disk).
const REF_FLOPS_PER_THREAD: f64 = 20e9;
const REF_BANDWIDTH_BYTES_PER_S: f64 = 20e9;
const REF_DISK_BYTES_PER_S: f64 = 1e9;
/// Fixed cost of every repetition (context, sampling, bookkeeping), s.
const REF_RUN_OVERHEAD_S: f64 = 0.05;

/// Predicted seconds to load the plan's model once.
pub fn predicted_load_s(plan: &Plan) -> f64 {
    1.0 + plan.model.weights_bytes as f64 / REF_DISK_BYTES_PER_S
}

/// Predicted seconds for one point on the reference machine: warm-up and
/// the most repetitions, each prefilling the depth and the prompt (compute:
/// 2 FLOP per parameter and token, over the point's threads) and generating
/// (bandwidth: the weights read once per token, shared by parallel clients).
pub fn predicted_point_s(plan: &Plan, p: &Point) -> f64 {
    let runs = f64::from(plan.measure.repetitions.max() + plan.measure.warmup);
    let clients = f64::from(p.test.concurrency.max(1));
    let threads = f64::from(p.ctx.threads.max(1));
    let prefill_tokens = f64::from(p.test.n_prompt + p.test.n_depth) * clients;
    let prefill_s =
        prefill_tokens * 2.0 * plan.model.n_params as f64 / (REF_FLOPS_PER_THREAD * threads);
    let gen_s = f64::from(p.test.n_gen) * plan.model.weights_bytes as f64
        / (REF_BANDWIDTH_BYTES_PER_S * threads.min(4.0) / 4.0);
    runs * (REF_RUN_OVERHEAD_S + prefill_s + gen_s)
}

#[cfg(test)]
mod tests;
