//! A llama-family GGUF model assembled from candle-transformers' quantized
//! building blocks, with a device per transformer block.
//!
//! candle-transformers' own `quantized_llama` puts the whole model on one
//! device. Layer placement needs each block on its own device, so this
//! loader builds the same graph from the same parts (`QMatMul`, the
//! quantized `RmsNorm`, `rope_i`, `repeat_kv`) and moves the hidden state
//! where one block's device differs from the next. Each block's KV cache
//! lives on the block's device. The placement rule is llama.cpp's: with
//! `n_gpu_layers = k` the output layer goes to the offload device first
//! (k >= 1), then the last `k - 1` blocks; token embeddings stay on the host.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use candle_core::quantized::{gguf_file, QMatMul, QTensor};
use candle_core::{DType, Device, IndexOp, Module, Tensor};
use candle_nn::kv_cache::KvCache;
use candle_nn::Embedding;
use candle_transformers::quantized_nn::RmsNorm;

pub use super::error::CandleError;
pub use super::placement::{Placement, Slot};

/// The shape of the model, from its GGUF metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct Hparams {
    pub n_layer: usize,
    pub n_embd: usize,
    pub n_head: usize,
    pub n_kv_head: usize,
    pub head_dim: usize,
    pub n_vocab: usize,
    pub rope_base: f32,
    pub rms_eps: f64,
    /// The BOS token, when the tokenizer adds one (`tokenizer.ggml.add_bos_token`).
    pub bos: Option<u32>,
}

struct Block {
    device: usize,
    attn_norm: RmsNorm,
    wq: QMatMul,
    wk: QMatMul,
    wv: QMatMul,
    wo: QMatMul,
    ffn_norm: RmsNorm,
    w_gate: QMatMul,
    w_up: QMatMul,
    w_down: QMatMul,
}

/// The loaded weights.
pub struct Model {
    pub hp: Hparams,
    pub placement: Placement,
    embedding: Embedding,
    blocks: Vec<Block>,
    norm: RmsNorm,
    output: QMatMul,
}

/// The state of one sequence (one point): a KV cache per block, bounded by
/// `n_ctx` like a llama.cpp context, and the RoPE tables per device.
pub struct Context {
    pub n_ctx: usize,
    /// Tokens in the cache.
    pub pos: usize,
    kv: Vec<KvCache>,
    rope: Vec<Option<(Tensor, Tensor)>>,
    /// Times the hidden state moved to another device, since creation.
    pub device_moves: usize,
}

impl Context {
    /// Empties the cache (the next token is at position 0).
    pub fn clear(&mut self) {
        for kv in &mut self.kv {
            kv.reset();
        }
        self.pos = 0;
    }

    /// The device of block `i`'s KV cache, once it holds something.
    pub fn kv_device(&self, i: usize) -> Option<Device> {
        self.kv
            .get(i)
            .and_then(|kv| kv.k_cache().all_data().as_ref())
            .map(|t| t.device().clone())
    }
}

fn md<'a>(ct: &'a gguf_file::Content, key: &str) -> Result<&'a gguf_file::Value, CandleError> {
    ct.metadata
        .get(key)
        .ok_or_else(|| CandleError::MissingKey(key.to_string()))
}

fn md_u32(ct: &gguf_file::Content, key: &str) -> Result<usize, CandleError> {
    md(ct, key)?
        .to_u32()
        .map(|v| v as usize)
        .map_err(|source| bad_value(key, source))
}

fn bad_value(key: &str, source: candle_core::Error) -> CandleError {
    CandleError::BadValue {
        key: key.to_string(),
        source,
    }
}

impl Hparams {
    pub fn read(ct: &gguf_file::Content) -> Result<Hparams, CandleError> {
        let arch = md(ct, "general.architecture")?
            .to_string()
            .map_err(|source| bad_value("general.architecture", source))?
            .clone();
        if arch != "llama" {
            return Err(CandleError::NotLlama(arch));
        }
        let experts = md_u32(ct, "llama.expert_count").unwrap_or(0);
        if experts > 1 {
            return Err(CandleError::MixtureOfExperts(experts));
        }
        let n_embd = md_u32(ct, "llama.embedding_length")?;
        let n_head = md_u32(ct, "llama.attention.head_count")?;
        let n_kv_head = md_u32(ct, "llama.attention.head_count_kv").unwrap_or(n_head);
        if n_head == 0 || n_kv_head == 0 || n_head % n_kv_head != 0 || n_embd % n_head != 0 {
            return Err(CandleError::AttentionShape {
                n_head,
                n_kv_head,
                n_embd,
            });
        }
        let head_dim = n_embd / n_head;
        let rope_dim = md_u32(ct, "llama.rope.dimension_count").unwrap_or(head_dim);
        if rope_dim != head_dim {
            return Err(CandleError::PartialRope { rope_dim, head_dim });
        }
        let n_vocab = ct
            .tensor_infos
            .get("token_embd.weight")
            .map(|t| t.shape.dims()[0])
            .ok_or(CandleError::NoTokenEmbeddings)?;
        let adds_bos = md(ct, "tokenizer.ggml.add_bos_token")
            .ok()
            .and_then(|v| v.to_bool().ok())
            .unwrap_or(false);
        Ok(Hparams {
            bos: adds_bos
                .then(|| md_u32(ct, "tokenizer.ggml.bos_token_id").ok())
                .flatten()
                .map(|b| b as u32),
            n_layer: md_u32(ct, "llama.block_count")?,
            n_embd,
            n_head,
            n_kv_head,
            head_dim,
            n_vocab,
            rope_base: md(ct, "llama.rope.freq_base")
                .ok()
                .and_then(|v| v.to_f32().ok())
                .unwrap_or(10_000.0),
            rms_eps: f64::from(
                md(ct, "llama.attention.layer_norm_rms_epsilon")?
                    .to_f32()
                    .map_err(|e| bad_value("llama.attention.layer_norm_rms_epsilon", e))?,
            ),
        })
    }
}

impl Model {
    /// Loads `path` with each part on the device `place` says, given the
    /// model's shape (read once, from the header).
    pub fn load(
        path: &Path,
        place: impl FnOnce(&Hparams) -> Result<Placement, CandleError>,
    ) -> Result<Model, CandleError> {
        let mut reader = BufReader::new(File::open(path)?);
        let ct = gguf_file::Content::read(&mut reader)?;
        let hp = Hparams::read(&ct)?;
        let placement = place(&hp)?;
        if placement.blocks.len() != hp.n_layer {
            return Err(CandleError::PlacementMismatch {
                placement: placement.blocks.len(),
                model: hp.n_layer,
            });
        }
        let mut tensor = |name: &str, slot: usize| -> Result<QTensor, CandleError> {
            ct.tensor(&mut reader, name, &placement.devices[slot].device)
                .map_err(|source| CandleError::Tensor {
                    name: name.to_string(),
                    source,
                })
        };
        let qmm = |t: QTensor| QMatMul::from_qtensor(t).map_err(CandleError::from);
        let norm = |t: QTensor| RmsNorm::from_qtensor(t, hp.rms_eps).map_err(CandleError::from);

        let embd = tensor("token_embd.weight", placement.embedding)?;
        let embd_device = &placement.devices[placement.embedding].device;
        let embedding = Embedding::new(embd.dequantize(embd_device)?, hp.n_embd);
        let mut blocks = Vec::with_capacity(hp.n_layer);
        for (i, &slot) in placement.blocks.iter().enumerate() {
            let p = format!("blk.{i}");
            blocks.push(Block {
                device: slot,
                attn_norm: norm(tensor(&format!("{p}.attn_norm.weight"), slot)?)?,
                wq: qmm(tensor(&format!("{p}.attn_q.weight"), slot)?)?,
                wk: qmm(tensor(&format!("{p}.attn_k.weight"), slot)?)?,
                wv: qmm(tensor(&format!("{p}.attn_v.weight"), slot)?)?,
                wo: qmm(tensor(&format!("{p}.attn_output.weight"), slot)?)?,
                ffn_norm: norm(tensor(&format!("{p}.ffn_norm.weight"), slot)?)?,
                w_gate: qmm(tensor(&format!("{p}.ffn_gate.weight"), slot)?)?,
                w_up: qmm(tensor(&format!("{p}.ffn_up.weight"), slot)?)?,
                w_down: qmm(tensor(&format!("{p}.ffn_down.weight"), slot)?)?,
            });
        }
        let out = placement.output;
        let norm_out = norm(tensor("output_norm.weight", out)?)?;
        // Tied embeddings (SmolLM2): the output layer is token_embd.
        let output_name = if ct.tensor_infos.contains_key("output.weight") {
            "output.weight"
        } else {
            "token_embd.weight"
        };
        let output = qmm(tensor(output_name, out)?)?;
        Ok(Model {
            hp,
            placement,
            embedding,
            blocks,
            norm: norm_out,
            output,
        })
    }

    /// A fresh sequence state holding at most `n_ctx` tokens.
    pub fn new_context(&self, n_ctx: usize) -> Result<Context, CandleError> {
        let half = self.hp.head_dim / 2;
        let theta: Vec<f32> = (0..half)
            .map(|i| {
                1.0 / self
                    .hp
                    .rope_base
                    .powf(2.0 * i as f32 / self.hp.head_dim as f32)
            })
            .collect();
        let angles: Vec<f32> = (0..n_ctx)
            .flat_map(|p| theta.iter().map(move |t| p as f32 * t))
            .collect();
        let mut rope = vec![None; self.placement.devices.len()];
        for &d in &self.placement.blocks {
            if rope[d].is_none() {
                let device = &self.placement.devices[d].device;
                let a = Tensor::from_slice(&angles, (n_ctx, half), device)?;
                rope[d] = Some((a.cos()?, a.sin()?));
            }
        }
        Ok(Context {
            n_ctx,
            pos: 0,
            kv: (0..self.hp.n_layer)
                .map(|_| KvCache::new(2, n_ctx))
                .collect(),
            rope,
            device_moves: 0,
        })
    }

    /// Runs `tokens` at the context's position and returns the logits of
    /// the last one (as llama.cpp does for a batch without output flags).
    pub fn forward(&self, ctx: &mut Context, tokens: &[u32]) -> candle_core::Result<Tensor> {
        let seq = tokens.len();
        if seq == 0 {
            candle_core::bail!("no tokens to decode");
        }
        if ctx.pos + seq > ctx.n_ctx {
            candle_core::bail!(
                "the context is full: {} tokens in the cache + {seq} new > n_ctx = {}",
                ctx.pos,
                ctx.n_ctx
            );
        }
        let devices = &self.placement.devices;
        let mut at = self.placement.embedding;
        let ids = Tensor::new(tokens, &devices[at].device)?.unsqueeze(0)?;
        let mut x = self.embedding.forward(&ids)?;
        let mut mask: Option<(usize, Tensor)> = None;
        for (i, block) in self.blocks.iter().enumerate() {
            if block.device != at {
                at = block.device;
                x = x.to_device(&devices[at].device)?;
                ctx.device_moves += 1;
            }
            let device = &devices[at].device;
            let mask = if seq > 1 {
                if mask.as_ref().is_none_or(|(d, _)| *d != at) {
                    mask = Some((at, causal_mask(seq, ctx.pos, device)?));
                }
                mask.as_ref().map(|(_, m)| m)
            } else {
                None
            };
            let (cos, sin) = ctx.rope[at]
                .as_ref()
                .expect("rope tables exist for every block device");
            let h = block.attn_norm.forward(&x)?;
            let h = self.attention(block, &h, &mut ctx.kv[i], cos, sin, mask, ctx.pos)?;
            let x_mid = (h + &x)?;
            let h = block.ffn_norm.forward(&x_mid)?;
            let gate = candle_nn::ops::silu(&block.w_gate.forward(&h)?)?;
            let h = block.w_down.forward(&(gate * block.w_up.forward(&h)?)?)?;
            x = (h + x_mid)?;
        }
        let mut last = x.i((.., seq - 1.., ..))?;
        if self.placement.output != at {
            last = last.to_device(&devices[self.placement.output].device)?;
            ctx.device_moves += 1;
        }
        let logits = self.output.forward(&self.norm.forward(&last)?)?;
        ctx.pos += seq;
        logits.squeeze(0)?.squeeze(0)
    }

    #[allow(clippy::too_many_arguments)]
    fn attention(
        &self,
        b: &Block,
        x: &Tensor,
        kv: &mut KvCache,
        cos: &Tensor,
        sin: &Tensor,
        mask: Option<&Tensor>,
        pos: usize,
    ) -> candle_core::Result<Tensor> {
        let hp = &self.hp;
        let (b_sz, seq, n_embd) = x.dims3()?;
        let split = |t: Tensor, heads: usize| {
            t.reshape((b_sz, seq, heads, hp.head_dim))?
                .transpose(1, 2)?
                .contiguous()
        };
        let q = split(b.wq.forward(x)?, hp.n_head)?;
        let k = split(b.wk.forward(x)?, hp.n_kv_head)?;
        let v = split(b.wv.forward(x)?, hp.n_kv_head)?;
        let cos = cos.narrow(0, pos, seq)?;
        let sin = sin.narrow(0, pos, seq)?;
        // GGUF llama weights are permuted for the interleaved (NORM) RoPE.
        let q = candle_nn::rotary_emb::rope_i(&q, &cos, &sin)?;
        let k = candle_nn::rotary_emb::rope_i(&k, &cos, &sin)?;
        let (k, v) = kv.append(&k, &v)?;
        let n_rep = hp.n_head / hp.n_kv_head;
        let k = candle_transformers::utils::repeat_kv(k, n_rep)?.contiguous()?;
        let v = candle_transformers::utils::repeat_kv(v, n_rep)?.contiguous()?;
        let scores = (q.matmul(&k.t()?)? * (1.0 / (hp.head_dim as f64).sqrt()))?;
        let scores = match mask {
            Some(m) => scores.broadcast_add(m)?,
            None => scores,
        };
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        let y = probs.matmul(&v)?;
        let y = y.transpose(1, 2)?.reshape((b_sz, seq, n_embd))?;
        b.wo.forward(&y)
    }

    /// Greedy decoding: the `n` most likely next tokens after `prompt`,
    /// the prompt decoded in chunks of `n_batch`.
    pub fn greedy(
        &self,
        prompt: &[u32],
        n: usize,
        n_batch: usize,
    ) -> Result<Vec<u32>, CandleError> {
        let mut ctx = self.new_context(prompt.len() + n)?;
        let mut logits = None;
        for chunk in prompt.chunks(n_batch.max(1)) {
            logits = Some(self.forward(&mut ctx, chunk)?);
        }
        let mut logits = logits.ok_or(CandleError::EmptyPrompt)?;
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let values = logits
                .to_dtype(DType::F32)
                .and_then(|l| l.to_vec1::<f32>())?;
            let next = crate::repeat::argmax(&values);
            out.push(next);
            if i + 1 < n {
                logits = self.forward(&mut ctx, &[next])?;
            }
        }
        Ok(out)
    }
}

/// Additive causal mask (1, 1, seq, pos + seq): query `i` sees keys up to `pos + i`.
fn causal_mask(seq: usize, pos: usize, device: &Device) -> candle_core::Result<Tensor> {
    candle_transformers::utils::build_additive_causal_mask(seq, pos, None, device, DType::F32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cpu(label: &str) -> Slot {
        Slot {
            label: label.into(),
            device: Device::Cpu,
        }
    }

    fn test_model() -> std::path::PathBuf {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../models/SmolLM2-135M-Instruct.Q4_1.gguf");
        assert!(
            path.exists(),
            "{} is missing: run scripts/fetch-model.sh",
            path.display()
        );
        path
    }

    fn logits(model: &Model, ctx: &mut Context, tokens: &[u32]) -> Vec<f32> {
        model.forward(ctx, tokens).unwrap().to_vec1().unwrap()
    }

    #[test]
    fn a_split_over_two_cpu_devices_computes_the_same_logits() {
        let path = test_model();
        let whole = Model::load(&path, |hp| Ok(Placement::single(hp.n_layer, cpu("cpu")))).unwrap();
        let split = Model::load(&path, |hp| {
            Ok(Placement::offload(hp.n_layer, 12, cpu("cpu"), cpu("cpu:1")))
        })
        .unwrap();
        let hp = whole.hp.clone();
        let prompt = [504, 3575, 282, 4649, 314];
        let (mut a, mut b) = (
            whole.new_context(16).unwrap(),
            split.new_context(16).unwrap(),
        );
        let (la, lb) = (
            logits(&whole, &mut a, &prompt),
            logits(&split, &mut b, &prompt),
        );
        assert_eq!(la.len(), hp.n_vocab);
        let diff = la
            .iter()
            .zip(&lb)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max);
        assert!(diff < 1e-4, "max |logit difference| {diff}");
        // One more token through the cache of both.
        let (la, lb) = (
            logits(&whole, &mut a, &[7042]),
            logits(&split, &mut b, &[7042]),
        );
        assert_eq!(argmax_of(&la), argmax_of(&lb));
        // The hidden state crossed to the offload device once per forward
        // (blocks 19-29 and the output there); none for the single device.
        assert_eq!(a.device_moves, 0);
        assert_eq!(b.device_moves, 2);
        // Every block's cache holds the tokens, on its block's device.
        for i in 0..hp.n_layer {
            assert!(b.kv_device(i).is_some_and(|d| d.is_cpu()), "block {i}");
        }
        assert_eq!(b.pos, prompt.len() + 1);
    }

    fn argmax_of(v: &[f32]) -> u32 {
        crate::repeat::argmax(v)
    }

    #[test]
    fn n_ctx_bounds_the_cache() {
        let path = test_model();
        let model = Model::load(&path, |hp| Ok(Placement::single(hp.n_layer, cpu("cpu")))).unwrap();
        let mut ctx = model.new_context(4).unwrap();
        model.forward(&mut ctx, &[1, 2, 3]).unwrap();
        let err = model.forward(&mut ctx, &[4, 5]).unwrap_err().to_string();
        assert!(err.contains("n_ctx = 4"), "{err}");
        ctx.clear();
        model.forward(&mut ctx, &[1, 2, 3, 4]).unwrap();
    }
}
