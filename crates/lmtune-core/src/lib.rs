//! Core types of lmtune: knobs, scenarios, points, records, statistics and
//! fingerprints. No backend code and no terminal output live here.
//!
//! ```no_run
//! use lmtune_core::scenario::{MachineFacts, Scenario};
//! let scenario = Scenario::load("scenarios/quickstart.toml".as_ref())?;
//! let plan = scenario.plan(MachineFacts { physical_cores: 2, logical_cores: 2 })?;
//! println!("{} points in {} load groups", plan.points.len(), plan.load_groups());
//! # Ok::<(), lmtune_core::scenario::ScenarioError>(())
//! ```

pub mod bandwidth;
pub mod compare;
pub mod fingerprint;
pub mod knobs;
pub mod llama_fit;
pub mod openai;
pub mod record;
pub mod scenario;
pub mod shard;
pub mod sim;
pub mod stats;
pub mod units;

/// lmtune's version, for fingerprints.
pub const LMTUNE_VERSION: &str = env!("CARGO_PKG_VERSION");
