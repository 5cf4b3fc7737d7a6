//! A load's `llama_model_params`, with what llama.cpp keeps pointers into:
//! the tensor buffer-type overrides (`-ot`, `--cpu-moe`, `--n-cpu-moe N`:
//! tensors kept in host memory), whose pattern strings must outlive the
//! model.

use std::ffi::CString;
use std::pin::Pin;

use llama_cpp_2::model::params::LlamaModelParams;
use lmtune_core::knobs::LoadParams;

/// Drop it after the model it loaded.
pub struct ModelParams {
    params: Pin<Box<LlamaModelParams>>,
    _patterns: Vec<CString>,
}

impl ModelParams {
    /// `no_alloc`: metadata and placement only (llama.cpp's dry run).
    pub fn new(load: &LoadParams, no_alloc: bool) -> ModelParams {
        let mut base = LlamaModelParams::default().with_n_gpu_layers(load.n_gpu_layers);
        // llama-bench and llama-server keep llama.cpp's LLAMA_LOAD_MODE_AUTO
        // (mmap where the device allows it); llama-cpp-2's with_use_mmap(true)
        // would force LLAMA_LOAD_MODE_MMAP, so only "off" is passed.
        if !load.use_mmap {
            base = base.with_use_mmap(false);
        }
        if no_alloc {
            base = base.with_no_alloc(true);
        }
        let patterns = cpu_patterns(load);
        let mut params = Box::pin(base);
        for p in &patterns {
            params.as_mut().add_cpu_buft_override(p);
        }
        ModelParams {
            params,
            _patterns: patterns,
        }
    }

    pub fn get(&self) -> &LlamaModelParams {
        &self.params
    }
}

/// The load's overrides as C strings, in llama-bench's order (see
/// [`LoadParams::tensor_overrides`]): `--n-cpu-moe N` is one override per
/// block, `blk\.I\.ffn_(up|down|gate|gate_up)_(ch|)exps` (common.h's
/// `llm_ffn_block_regex` with `LLM_FFN_EXPS_REGEX`, as llama-bench's
/// `-ncmoe` builds them). Every override goes to the CPU buffer type: the
/// scenario refuses device names in process.
pub fn cpu_patterns(load: &LoadParams) -> Vec<CString> {
    load.tensor_overrides()
        .into_iter()
        .filter(|o| o.is_cpu())
        .filter_map(|o| CString::new(o.pattern).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_are_llama_bench_s() {
        let load = LoadParams::new(99, true).with_n_cpu_moe(2);
        let p = cpu_patterns(&load);
        assert_eq!(p.len(), 2);
        assert_eq!(
            p[1].to_str().unwrap(),
            "blk\\.1\\.ffn_(up|down|gate|gate_up)_(ch|)exps"
        );
        assert!(cpu_patterns(&LoadParams::new(99, true)).is_empty());
        let all = LoadParams {
            cpu_moe: true,
            override_tensor: "token_embd=CPU".into(),
            ..LoadParams::new(99, true)
        };
        let p: Vec<_> = cpu_patterns(&all)
            .into_iter()
            .map(|c| c.into_string().unwrap())
            .collect();
        assert_eq!(p, ["token_embd", "\\.ffn_(up|down|gate|gate_up)_(ch|)exps"]);
    }
}
