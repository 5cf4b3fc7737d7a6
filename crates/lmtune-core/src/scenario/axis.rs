//! Sweep axes: a scalar, a list, an inclusive range table, or a keyword.
//!
//! ```toml
//! threads = [1, 2]                            # list
//! n_ctx = 4096                                # scalar
//! n_gpu_layers = { from = 0, to = 32, step = 8 }  # inclusive range
//! n_gpu_layers = "all"                        # keyword
//! ```

use toml::Value;

/// A value of an integer axis: a number, or (for some axes) a keyword the
/// plan resolves against the model or the machine.
pub trait AxisInt: Copy + 'static {
    /// The keywords accepted in place of a number, in the order hints list them.
    const KEYWORDS: &'static [(&'static str, Self)];
    fn from_int(n: u32) -> Self;
    /// The number, when the value is one (not a keyword).
    fn as_int(self) -> Option<u32>;
}

impl AxisInt for u32 {
    const KEYWORDS: &'static [(&'static str, u32)] = &[];
    fn from_int(n: u32) -> u32 {
        n
    }
    fn as_int(self) -> Option<u32> {
        Some(self)
    }
}

/// How many layers to offload: a number, every layer (`"all"`), or what
/// llama.cpp's own fit picks at load time (`"fit"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NGpuLayers {
    /// Every repeating layer plus the output layer (`n_layer + 1`).
    All,
    /// llama.cpp's `common_fit_params` decides (llama-server's `--fit`).
    Fit,
    N(u32),
}

impl NGpuLayers {
    /// The layer count for a model with `all_layers` offloadable layers.
    pub fn resolve(self, all_layers: u32) -> u32 {
        match self {
            NGpuLayers::All | NGpuLayers::Fit => all_layers,
            NGpuLayers::N(n) => n,
        }
    }
}

impl AxisInt for NGpuLayers {
    const KEYWORDS: &'static [(&'static str, NGpuLayers)] =
        &[("all", NGpuLayers::All), ("fit", NGpuLayers::Fit)];
    fn from_int(n: u32) -> NGpuLayers {
        NGpuLayers::N(n)
    }
    fn as_int(self) -> Option<u32> {
        match self {
            NGpuLayers::N(n) => Some(n),
            NGpuLayers::All | NGpuLayers::Fit => None,
        }
    }
}

/// How many CPU threads: a number, or one per physical or logical core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Threads {
    Physical,
    Logical,
    N(u32),
}

impl Threads {
    /// The thread count on a machine with these cores (at least 1).
    pub fn resolve(self, machine: super::MachineFacts) -> u32 {
        match self {
            Threads::Physical => machine.physical_cores.max(1),
            Threads::Logical => machine.logical_cores.max(1),
            Threads::N(n) => n,
        }
    }
}

impl AxisInt for Threads {
    const KEYWORDS: &'static [(&'static str, Threads)] = &[
        ("physical", Threads::Physical),
        ("logical", Threads::Logical),
    ];
    fn from_int(n: u32) -> Threads {
        Threads::N(n)
    }
    fn as_int(self) -> Option<u32> {
        match self {
            Threads::N(n) => Some(n),
            Threads::Physical | Threads::Logical => None,
        }
    }
}

/// Most points a single axis may expand to; a typo like `step = 0` or a
/// range to 10^9 is caught here instead of planning a billion points.
const MAX_AXIS_LEN: usize = 10_000;

/// Parses an integer axis; `T::KEYWORDS` are the strings accepted in place
/// of a number. Errors are (problem, fix).
pub fn int_axis<T: AxisInt>(value: &Value, min: u32) -> Result<Vec<T>, (String, String)> {
    let keywords: Vec<&str> = T::KEYWORDS.iter().map(|(k, _)| *k).collect();
    let kw_hint = if keywords.is_empty() {
        String::new()
    } else {
        format!(
            ", or {}",
            keywords
                .iter()
                .map(|k| format!("\"{k}\""))
                .collect::<Vec<_>>()
                .join(" / ")
        )
    };
    let usage = format!("write a number, a list like [1, 2], a range like {{ from = 1, to = 8, step = 1 }}{kw_hint}");
    let one = |v: &Value| -> Result<T, (String, String)> {
        match v {
            Value::Integer(i) => {
                let n = u32::try_from(*i).map_err(|_| {
                    (
                        format!("{i} is out of range"),
                        format!("use a whole number from {min} to {}", u32::MAX),
                    )
                })?;
                if n < min {
                    return Err((
                        format!("{n} is below the smallest allowed value {min}"),
                        format!("use values of at least {min}"),
                    ));
                }
                Ok(T::from_int(n))
            }
            Value::String(s) => T::KEYWORDS
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(s))
                .map(|(_, value)| *value)
                .ok_or_else(|| {
                    (
                        format!(
                            "\"{s}\" is not a number{}",
                            if keywords.is_empty() {
                                String::new()
                            } else {
                                " or a known keyword".into()
                            }
                        ),
                        usage.clone(),
                    )
                }),
            other => Err((
                format!("expected a whole number, found {}", other.type_str()),
                usage.clone(),
            )),
        }
    };
    let values = match value {
        Value::Array(items) => items.iter().map(one).collect::<Result<Vec<_>, _>>()?,
        Value::Table(t) => {
            for key in t.keys() {
                if !["from", "to", "step"].contains(&key.as_str()) {
                    return Err((
                        format!("unknown range key `{key}`"),
                        "a range has only `from`, `to` and `step` (step defaults to 1)".into(),
                    ));
                }
            }
            let get = |k: &str| -> Result<Option<u32>, (String, String)> {
                match t.get(k) {
                    None => Ok(None),
                    Some(v) => match one(v)?.as_int() {
                        Some(n) => Ok(Some(n)),
                        None => Err((format!("range `{k}` must be a number"), usage.clone())),
                    },
                }
            };
            let (Some(from), Some(to)) = (get("from")?, get("to")?) else {
                return Err((
                    "a range needs both `from` and `to`".into(),
                    "write { from = 1, to = 8, step = 1 }".into(),
                ));
            };
            let step = get("step")?.unwrap_or(1);
            if step == 0 {
                return Err((
                    "range `step` is 0".into(),
                    "use a step of at least 1".into(),
                ));
            }
            if from > to {
                return Err((
                    format!("range `from` ({from}) is larger than `to` ({to})"),
                    "swap them: a range counts upwards".into(),
                ));
            }
            let len = (to - from) / step + 1;
            if len as usize > MAX_AXIS_LEN {
                return Err((
                    format!("range expands to {len} values"),
                    format!("use a larger step; one axis may have at most {MAX_AXIS_LEN} values"),
                ));
            }
            (0..len).map(|i| T::from_int(from + i * step)).collect()
        }
        scalar => vec![one(scalar)?],
    };
    check_len(values)
}

/// A value outside an axis's fixed set, with how to write one inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub fix: String,
}

impl Refused {
    pub fn fix(fix: impl std::fmt::Display) -> Refused {
        Refused {
            fix: fix.to_string(),
        }
    }
}

/// Parses an axis of strings from a fixed set (also accepting booleans when
/// `bools` maps them).
pub fn choice_axis<T: Copy>(
    value: &Value,
    parse: impl Fn(&Value) -> Result<T, Refused>,
) -> Result<Vec<T>, (String, String)> {
    let items: Vec<&Value> = match value {
        Value::Array(items) => items.iter().collect(),
        scalar => vec![scalar],
    };
    let values = items
        .into_iter()
        .map(|v| parse(v).map_err(|r| (format!("{v} is not allowed here"), r.fix)))
        .collect::<Result<Vec<_>, _>>()?;
    check_len(values)
}

fn check_len<T>(values: Vec<T>) -> Result<Vec<T>, (String, String)> {
    if values.is_empty() {
        return Err((
            "the axis is empty, so the sweep would have no points".into(),
            "give it at least one value, or remove the key to use the default".into(),
        ));
    }
    if values.len() > MAX_AXIS_LEN {
        return Err((
            format!("the axis has {} values", values.len()),
            format!("one axis may have at most {MAX_AXIS_LEN} values"),
        ));
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(src: &str) -> Value {
        let t: toml::Table = toml::from_str(&format!("v = {src}")).unwrap();
        t["v"].clone()
    }

    #[test]
    fn range_is_inclusive() {
        let v = int_axis::<u32>(&parse("{ from = 0, to = 30, step = 10 }"), 0).unwrap();
        assert_eq!(v, [0, 10, 20, 30]);
    }

    #[test]
    fn keyword_and_numbers_mix() {
        let v = int_axis::<NGpuLayers>(&parse("[0, \"ALL\"]"), 0).unwrap();
        assert_eq!(v, vec![NGpuLayers::N(0), NGpuLayers::All]);
        let v = int_axis::<Threads>(&parse("[\"Logical\", 2, \"physical\"]"), 1).unwrap();
        assert_eq!(v, vec![Threads::Logical, Threads::N(2), Threads::Physical]);
    }

    #[test]
    fn bad_axes_are_rejected_with_a_fix() {
        for (src, needle) in [
            ("[]", "empty"),
            ("{ from = 4, to = 1 }", "larger than"),
            ("{ from = 1, to = 4, step = 0 }", "step"),
            ("\"lots\"", "not a number"),
            ("1.5", "whole number"),
            ("-3", "out of range"),
            ("{ from = 0, to = 4000000000 }", "expands"),
        ] {
            let (problem, fix) = int_axis::<u32>(&parse(src), 0).unwrap_err();
            assert!(problem.contains(needle), "{src}: {problem}");
            assert!(!fix.is_empty());
        }
    }

    #[test]
    fn minimum_is_enforced() {
        let (problem, _) = int_axis::<u32>(&parse("[0, 2]"), 1).unwrap_err();
        assert!(problem.contains("below"));
    }
}
