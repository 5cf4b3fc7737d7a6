//! The handful of facts a sweep needs about a model, taken from its header.

use std::collections::HashMap;

use serde::Serialize;

use crate::reader::{GgufFile, MetadataValue};
use crate::types::file_type_name;
use crate::GgufError;

/// What lmtune records about a model file and validates scenarios against.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelSummary {
    /// `general.architecture`, e.g. `llama`.
    pub architecture: String,
    /// `general.name` when present.
    pub name: Option<String>,
    /// Number of repeating blocks (`{arch}.block_count`).
    pub n_layer: u64,
    /// Context length the model was trained with (`{arch}.context_length`).
    pub n_ctx_train: u64,
    pub n_embd: Option<u64>,
    pub n_head: Option<u64>,
    pub n_head_kv: Option<u64>,
    pub n_vocab: Option<u64>,
    /// Total elements of all tensors.
    pub n_params: u64,
    /// Total bytes of all tensors (what llama.cpp reports as model size).
    pub weights_bytes: u64,
    /// The quantization as llama.cpp names it (`Q4_1`, `Q4_K_M`), from
    /// `general.file_type`, else the most common tensor type by bytes.
    pub quant: String,
    /// Written by `lmtune synth` (random weights).
    pub synthetic: bool,
}

impl GgufFile {
    /// Summarizes the model. Fails with a typed error naming the missing key
    /// when the header lacks what a sweep needs.
    pub fn summary(&self) -> Result<ModelSummary, GgufError> {
        let hint_arch = "the file is not a llama.cpp model (re-convert it with llama.cpp's convert_hf_to_gguf.py)";
        let architecture = self
            .architecture()
            .ok_or_else(|| GgufError::MissingKey {
                path: self.path.clone(),
                key: "general.architecture".into(),
                hint: hint_arch.into(),
            })?
            .to_string();
        let arch_key = |suffix: &str| format!("{architecture}.{suffix}");
        let optional = |suffix: &str| self.get(&arch_key(suffix)).and_then(MetadataValue::as_u64);
        let n_layer = self.require_u64(&arch_key("block_count"), hint_arch)?;
        let n_ctx_train = self.require_u64(&arch_key("context_length"), hint_arch)?;
        let n_head_kv =
            optional("attention.head_count_kv").or_else(|| optional("attention.head_count"));
        let n_vocab = optional("vocab_size").or_else(|| match self.get("tokenizer.ggml.tokens") {
            Some(MetadataValue::StringArray(tokens)) => Some(tokens.len() as u64),
            _ => None,
        });

        let n_params = self
            .tensors
            .iter()
            .map(|t| t.n_elements)
            .fold(0u64, u64::saturating_add);
        let weights_bytes = self
            .tensors
            .iter()
            .map(|t| t.n_bytes)
            .fold(0u64, u64::saturating_add);
        let quant = self
            .get("general.file_type")
            .and_then(MetadataValue::as_u64)
            .and_then(|ft| u32::try_from(ft).ok())
            .and_then(file_type_name)
            .map(str::to_string)
            .unwrap_or_else(|| self.dominant_tensor_type());

        Ok(ModelSummary {
            name: self
                .get("general.name")
                .and_then(MetadataValue::as_str)
                .map(str::to_string),
            n_layer,
            n_ctx_train,
            n_embd: optional("embedding_length"),
            n_head: optional("attention.head_count"),
            n_head_kv,
            n_vocab,
            n_params,
            weights_bytes,
            quant,
            architecture,
            synthetic: matches!(
                self.get(crate::SYNTHETIC_KEY),
                Some(MetadataValue::Bool(true))
            ),
        })
    }

    fn dominant_tensor_type(&self) -> String {
        let mut by_type: HashMap<u32, u64> = HashMap::new();
        for t in &self.tensors {
            *by_type.entry(t.ggml_type.0).or_default() += t.n_bytes;
        }
        by_type
            .into_iter()
            .max_by_key(|&(id, bytes)| (bytes, std::cmp::Reverse(id)))
            .map(|(id, _)| crate::GgmlType(id).name().to_uppercase())
            .unwrap_or_else(|| "unknown".into())
    }
}

impl ModelSummary {
    /// llama-bench's model type string, e.g. `llama 135M Q4_1`.
    pub fn type_label(&self) -> String {
        format!(
            "{} {} {}",
            self.architecture,
            human_params(self.n_params),
            self.quant
        )
    }
}

fn human_params(n: u64) -> String {
    let n = n as f64;
    if n >= 1e9 {
        format!("{:.1}B", n / 1e9)
    } else {
        format!("{:.0}M", n / 1e6)
    }
}
