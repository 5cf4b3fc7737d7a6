//! Stage 3: the axes of `[sweep]` and `[workload]`, each read by one generic
//! reader: the default when the key is absent, else the parsed value, with
//! errors pointing at it.

use toml::Value;

use super::axis::{self, AxisInt, NGpuLayers, Refused, Threads};
use super::error::ErrorSite;
use super::raw::{AxisValue, RawSweep, RawWorkload};
use super::{validate, Axis, BackendSpec, ScenarioError};
use crate::knobs::{FlashAttn, KvType};

/// `[sweep]`, read.
pub(super) struct Sweep {
    pub n_gpu_layers: Axis<NGpuLayers>,
    pub n_ctx: Option<Axis<u32>>,
    pub n_batch: Axis<u32>,
    pub n_ubatch: Axis<u32>,
    pub threads: Axis<Threads>,
    pub type_k: Axis<KvType>,
    pub type_v: Axis<KvType>,
    pub flash_attn: Axis<FlashAttn>,
    pub op_offload: Axis<bool>,
    pub swa_full: Axis<bool>,
    pub n_cpu_moe: Axis<NGpuLayers>,
    pub cpu_moe: Axis<bool>,
    /// Canonical `-ot` text per value; "" for none.
    pub override_tensor: Axis<String>,
    pub concurrency: Axis<u32>,
    pub skip_invalid: bool,
}

/// `[workload]`, read.
pub(super) struct Workload {
    pub n_prompt: Axis<u32>,
    pub n_gen: Axis<u32>,
    pub n_depth: Axis<u32>,
}

impl Sweep {
    /// Reads the axes in the order they are documented; an axis the backend
    /// does not have is rejected right after it is read.
    pub(super) fn read(
        site: &ErrorSite<'_>,
        raw: RawSweep,
        backend: &BackendSpec,
    ) -> Result<Sweep, ScenarioError> {
        let n_gpu_layers = read_axis(
            site,
            raw.n_gpu_layers,
            "sweep.n_gpu_layers",
            vec![NGpuLayers::All],
            ints(0),
        )?;
        let n_ctx = match raw.n_ctx {
            None => None,
            some => Some(read_axis(site, some, "sweep.n_ctx", vec![], ints(1))?),
        };
        let n_batch = read_axis(site, raw.n_batch, "sweep.n_batch", vec![2048], ints(1))?;
        let n_ubatch = read_axis(site, raw.n_ubatch, "sweep.n_ubatch", vec![512], ints(1))?;
        let threads = read_axis(
            site,
            raw.threads,
            "sweep.threads",
            vec![Threads::Physical],
            ints(1),
        )?;
        let type_k = read_axis(
            site,
            raw.type_k,
            "sweep.type_k",
            vec![KvType::F16],
            kv_types,
        )?;
        let type_v = read_axis(
            site,
            raw.type_v,
            "sweep.type_v",
            vec![KvType::F16],
            kv_types,
        )?;
        let flash_attn = read_axis(
            site,
            raw.flash_attn,
            "sweep.flash_attn",
            vec![FlashAttn::Auto],
            flash_attn_values,
        )?;
        let op_offload = read_axis(site, raw.op_offload, "sweep.op_offload", vec![true], bools)?;
        validate::op_offload(site, &op_offload, backend)?;
        let swa_full = read_axis(site, raw.swa_full, "sweep.swa_full", vec![false], bools)?;
        validate::swa_full(site, &swa_full, backend)?;
        let n_cpu_moe = read_axis(
            site,
            raw.n_cpu_moe,
            "sweep.n_cpu_moe",
            vec![NGpuLayers::N(0)],
            ints(0),
        )?;
        let cpu_moe = read_axis(site, raw.cpu_moe, "sweep.cpu_moe", vec![false], bools)?;
        let override_tensor = read_axis(
            site,
            raw.override_tensor,
            "sweep.override_tensor",
            vec![String::new()],
            override_tensors,
        )?;
        validate::tensor_placement(
            site,
            [&n_cpu_moe.span, &cpu_moe.span, &override_tensor.span],
            &override_tensor,
            backend,
        )?;
        let concurrency = read_axis(site, raw.concurrency, "sweep.concurrency", vec![1], ints(1))?;
        validate::concurrency(site, &concurrency, backend)?;
        Ok(Sweep {
            n_gpu_layers,
            n_ctx,
            n_batch,
            n_ubatch,
            threads,
            type_k,
            type_v,
            flash_attn,
            op_offload,
            swa_full,
            n_cpu_moe,
            cpu_moe,
            override_tensor,
            concurrency,
            skip_invalid: raw.skip_invalid.unwrap_or(false),
        })
    }
}

impl Workload {
    pub(super) fn read(site: &ErrorSite<'_>, raw: RawWorkload) -> Result<Workload, ScenarioError> {
        let workload = Workload {
            n_prompt: read_axis(site, raw.n_prompt, "workload.n_prompt", vec![512], ints(0))?,
            n_gen: read_axis(site, raw.n_gen, "workload.n_gen", vec![128], ints(0))?,
            n_depth: read_axis(site, raw.n_depth, "workload.n_depth", vec![0], ints(0))?,
        };
        validate::workload_times_something(site, &workload)?;
        Ok(workload)
    }
}

/// One axis: `default` when the key is absent (not explicit), else its
/// value through `parse`, whose (problem, fix) errors point at the value.
fn read_axis<T>(
    site: &ErrorSite<'_>,
    raw: AxisValue,
    key: &str,
    default: Vec<T>,
    parse: impl FnOnce(&Value) -> Result<Vec<T>, (String, String)>,
) -> Result<Axis<T>, ScenarioError> {
    let Some(v) = raw else {
        return Ok(Axis {
            values: default,
            span: None,
            explicit: false,
        });
    };
    let span = v.span();
    let values = parse(v.get_ref()).map_err(|(p, f)| site.at(Some(span.clone()), key, p, f))?;
    Ok(Axis {
        values,
        span: Some(span),
        explicit: true,
    })
}

/// An integer axis of at least `min` (with `T`'s keywords).
fn ints<T: AxisInt>(min: u32) -> impl FnOnce(&Value) -> Result<Vec<T>, (String, String)> {
    move |v| axis::int_axis::<T>(v, min)
}

fn kv_types(v: &Value) -> Result<Vec<KvType>, (String, String)> {
    axis::choice_axis(v, |x| match x {
        Value::String(s) => s.parse::<KvType>().map_err(Refused::fix),
        _ => Err(Refused::fix(
            "write cache types as strings, e.g. [\"f16\", \"q8_0\"]",
        )),
    })
}

fn flash_attn_values(v: &Value) -> Result<Vec<FlashAttn>, (String, String)> {
    axis::choice_axis(v, |x| match x {
        Value::Boolean(true) => Ok(FlashAttn::On),
        Value::Boolean(false) => Ok(FlashAttn::Off),
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(FlashAttn::Auto),
            "on" | "true" | "1" => Ok(FlashAttn::On),
            "off" | "false" | "0" => Ok(FlashAttn::Off),
            _ => Err(Refused::fix(
                "use \"auto\", \"on\" or \"off\" (or true / false)",
            )),
        },
        _ => Err(Refused::fix(
            "use \"auto\", \"on\" or \"off\" (or true / false)",
        )),
    })
}

/// A true/false axis (`true`, `false`, "on", "off").
fn bools(v: &Value) -> Result<Vec<bool>, (String, String)> {
    axis::choice_axis(v, |x| match x {
        Value::Boolean(b) => Ok(*b),
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "on" | "true" | "1" => Ok(true),
            "off" | "false" | "0" => Ok(false),
            _ => Err(Refused::fix("use true / false (or \"on\" / \"off\")")),
        },
        _ => Err(Refused::fix("use true / false (or \"on\" / \"off\")")),
    })
}

/// `override_tensor`: strings in llama-bench's `-ot` syntax
/// (`"regex=BUFT;regex=BUFT"`), each checked and written one way; `""` or
/// `"none"` for no override.
fn override_tensors(v: &Value) -> Result<Vec<String>, (String, String)> {
    let items: Vec<&Value> = match v {
        Value::Array(items) => items.iter().collect(),
        scalar => vec![scalar],
    };
    let usage = "write llama-bench's -ot syntax as strings, e.g. ['blk\\.[0-9]\\.ffn_.*_exps=CPU', \"none\"] (TOML literal strings keep the backslashes)";
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let Value::String(s) = item else {
            return Err((format!("{item} is not a string"), usage.into()));
        };
        let text = if s.trim().eq_ignore_ascii_case("none") {
            String::new()
        } else {
            crate::knobs::canonical_override_tensor(s)
                .map_err(|e| (e.to_string(), usage.to_string()))?
        };
        if !out.contains(&text) {
            out.push(text);
        }
    }
    if out.is_empty() {
        return Err((
            "the axis is empty, so the sweep would have no points".into(),
            "give it at least one value, or remove the key to use the default".into(),
        ));
    }
    Ok(out)
}
