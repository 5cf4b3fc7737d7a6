//! llama.cpp's own fit (`common_fit_params`, what `llama-server --fit`
//! runs): the offload, tensor overrides and context it picks for a memory
//! target, as data. lmtune's planner is checked against it (`plan
//! --llama-fit`); the worker asks llama.cpp, this crate only describes the
//! question and the answer.

use serde::{Deserialize, Serialize};

use crate::knobs::LoadParams;

/// llama-server's default `--fit-target`: 1 GiB left free on every device.
pub const LLAMA_SERVER_FIT_MARGIN: u64 = 1 << 30;

/// What the fit aims for on every GPU it places layers on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FitTarget {
    /// Leave this many bytes free on each device (llama-server's
    /// `--fit-target`; the host's memory when there is no GPU).
    Margin(u64),
    /// Use at most this many bytes on each device (lmtune's `--vram`): the
    /// margin given to llama.cpp is the device's free memory minus it.
    Budget(u64),
}

/// The question: a memory target and the smallest context the fit may
/// shrink to (it shrinks only a context left at 0, "the model's own").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FitRequest {
    pub target: FitTarget,
    pub n_ctx_min: u32,
}

/// One device the fit placed against, as llama.cpp saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FitDevice {
    /// ggml's name (`CUDA0`, `Vulkan0`, …) and description.
    pub name: String,
    pub description: String,
    pub free_bytes: u64,
    pub total_bytes: u64,
    /// The margin llama.cpp was given for it.
    pub margin_bytes: u64,
}

/// A tensor-to-buffer-type override the fit chose (`-ot PATTERN=BUFT`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FitOverride {
    pub pattern: String,
    pub buffer_type: String,
}

/// llama.cpp's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlamaFit {
    /// False when llama.cpp found no allocation projected to fit (its
    /// parameters are then the ones it gave up at).
    pub fits: bool,
    /// As llama.cpp holds it: -1 is its default, every layer.
    pub n_gpu_layers: i32,
    /// The share of layers per device (empty with one device or none).
    pub tensor_split: Vec<f32>,
    pub overrides: Vec<FitOverride>,
    pub n_ctx: u32,
    pub devices: Vec<FitDevice>,
    /// How long the fit took, ms.
    pub ms: f64,
}

impl LlamaFit {
    /// The choice as a load lmtune runs, or `None` where lmtune's load
    /// parameters cannot say it (a split over several devices).
    pub fn load_params(&self, all_layers: u32, use_mmap: bool) -> Option<LoadParams> {
        if self.tensor_split.iter().filter(|s| **s > 0.0).count() > 1 {
            return None;
        }
        let n_gpu_layers = u32::try_from(self.n_gpu_layers).unwrap_or(all_layers);
        let override_tensor = self
            .overrides
            .iter()
            .map(|o| format!("{}={}", o.pattern, o.buffer_type))
            .collect::<Vec<_>>()
            .join(";");
        Some(LoadParams {
            override_tensor,
            ..LoadParams::new(n_gpu_layers, use_mmap)
        })
    }

    /// `n_gpu_layers` in words: "all" for llama.cpp's default.
    pub fn n_gpu_layers_label(&self) -> String {
        match u32::try_from(self.n_gpu_layers) {
            Ok(n) => n.to_string(),
            Err(_) => "all (llama.cpp's default)".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fit(n_gpu_layers: i32, split: Vec<f32>, overrides: Vec<FitOverride>) -> LlamaFit {
        LlamaFit {
            fits: true,
            n_gpu_layers,
            tensor_split: split,
            overrides,
            n_ctx: 4096,
            devices: Vec::new(),
            ms: 1.0,
        }
    }

    #[test]
    fn load_params_carry_offload_and_overrides() {
        let f = fit(
            12,
            vec![1.0, 0.0],
            vec![FitOverride {
                pattern: "blk\\.11\\.ffn_(up|gate|down).*".into(),
                buffer_type: "CPU".into(),
            }],
        );
        let l = f.load_params(31, true).unwrap();
        assert_eq!(l.n_gpu_layers, 12);
        assert_eq!(l.override_tensor, "blk\\.11\\.ffn_(up|gate|down).*=CPU");
        assert_eq!(l.tensor_overrides().len(), 1);
        assert_eq!(f.n_gpu_layers_label(), "12");
    }

    #[test]
    fn default_offload_is_every_layer_and_splits_are_not_a_load() {
        let all = fit(-1, Vec::new(), Vec::new());
        assert_eq!(all.load_params(31, false).unwrap().n_gpu_layers, 31);
        assert!(all.n_gpu_layers_label().starts_with("all"));
        assert!(fit(20, vec![0.5, 0.5], Vec::new())
            .load_params(31, true)
            .is_none());
    }
}
