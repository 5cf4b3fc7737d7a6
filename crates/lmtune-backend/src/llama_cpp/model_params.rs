//! A load's `llama_model_params`, with what llama.cpp keeps pointers into:
//! the tensor buffer-type overrides of llama.cpp's `--n-cpu-moe N` (the
//! routed experts of blocks 0..N in host memory), whose pattern strings
//! must outlive the model.

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
        let patterns = cpu_moe_patterns(load.n_cpu_moe);
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

/// llama.cpp's `--n-cpu-moe N`: one override per block, `blk\.I\.ffn_(up|down|gate|gate_up)_(ch|)exps`
/// to the CPU buffer type (common.h's `llm_ffn_block_regex` with
/// `LLM_FFN_EXPS_REGEX`, as llama-bench's `-ncmoe` builds them).
pub fn cpu_moe_patterns(n: u32) -> Vec<CString> {
    (0..n)
        .map(|i| {
            CString::new(format!("blk\\.{i}\\.ffn_(up|down|gate|gate_up)_(ch|)exps"))
                .expect("no NUL in the pattern")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_are_llama_bench_s() {
        let p = cpu_moe_patterns(2);
        assert_eq!(p.len(), 2);
        assert_eq!(
            p[1].to_str().unwrap(),
            "blk\\.1\\.ffn_(up|down|gate|gate_up)_(ch|)exps"
        );
        assert!(cpu_moe_patterns(0).is_empty());
    }
}
