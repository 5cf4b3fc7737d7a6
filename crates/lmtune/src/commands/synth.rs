//! `lmtune synth`: write a synthetic model of any llama shape.

use anyhow::{anyhow, bail, Context};
use lmtune_gguf::synth::{
    preset, quant_type, write_synthetic, SynthArch, SynthMoe, SynthShape, PRESETS, SUPPORTED_QUANTS,
};
use lmtune_gguf::GgufFile;
use lmtune_report::human_bytes;

use crate::cli::SynthArgs;
use crate::exit;

pub fn run(args: SynthArgs) -> anyhow::Result<u8> {
    let names: Vec<&str> = PRESETS.iter().map(|(n, _)| *n).collect();
    let arch = match &args.arch {
        Some(name) => Some(SynthArch::parse(name).ok_or_else(|| {
            let known: Vec<&str> = SynthArch::ALL.iter().map(|a| a.as_str()).collect();
            anyhow!(
                "--arch {name}: synth does not write that architecture; use one of {}",
                known.join(", ")
            )
        })?),
        None => None,
    };
    let mut shape = match (&args.like, arch) {
        (Some(name), _) => preset(name).ok_or_else(|| {
            anyhow!(
                "--like {name}: unknown shape; use one of {}",
                names.join(", ")
            )
        })?,
        // --arch alone: that architecture's tiny preset, which the other
        // flags reshape.
        (None, Some(arch)) => preset(&arch.tiny_preset())
            .with_context(|| format!("no preset {}", arch.tiny_preset()))?,
        (None, None) => {
            if args.layers.is_none() || args.embd.is_none() || args.heads.is_none() {
                bail!(
                    "give a shape: --like NAME ({}), --arch ARCH, or at least --layers, --embd and --heads",
                    names.join(", ")
                );
            }
            SynthShape::dense(SynthArch::Llama, 0, 0, 0, 0, 0, None, 4096)
        }
    };
    if let Some(arch) = arch {
        shape.arch = arch;
    }
    if shape.sliding_window.is_none() {
        shape.sliding_window = shape.arch.default_sliding_window();
    }
    if let Some(ref mut moe) = shape.moe {
        moe.n_expert = args.experts.unwrap_or(moe.n_expert);
        moe.n_expert_used = args.experts_used.unwrap_or(moe.n_expert_used);
        moe.n_ff_exp = args.expert_ff.unwrap_or(moe.n_ff_exp);
    } else if let (Some(n_expert), Some(n_expert_used)) = (args.experts, args.experts_used) {
        shape.moe = Some(SynthMoe {
            n_expert,
            n_expert_used,
            n_ff_exp: args.expert_ff.unwrap_or(shape.n_ff / n_expert_used.max(1)),
            n_expert_shared: 0,
            n_layer_dense_lead: 0,
        });
    }
    shape.n_layer = args.layers.unwrap_or(shape.n_layer);
    shape.n_embd = args.embd.unwrap_or(shape.n_embd);
    shape.n_head = args.heads.unwrap_or(shape.n_head);
    shape.n_head_kv = args.kv_heads.unwrap_or(if shape.n_head_kv == 0 {
        shape.n_head
    } else {
        shape.n_head_kv
    });
    shape.n_ff = args.ff.unwrap_or(if shape.n_ff == 0 {
        4 * shape.n_embd
    } else {
        shape.n_ff
    });
    shape.head_dim = args.head_dim.or(shape.head_dim);
    shape.n_ctx_train = args.ctx_train.unwrap_or(shape.n_ctx_train);
    shape.n_vocab = args.vocab;
    if shape.n_layer == 0 || shape.n_embd == 0 {
        bail!("--layers and --embd must be at least 1");
    }
    let quant = quant_type(&args.quant).ok_or_else(|| {
        anyhow!(
            "--quant {}: unsupported; use one of {}",
            args.quant,
            SUPPORTED_QUANTS.join(", ")
        )
    })?;
    let donor = GgufFile::open(&args.donor).with_context(|| format!("--donor {}: a real model is needed for its tokenizer (run scripts/fetch-model.sh for the test model)", args.donor.display()))?;
    let name = format!(
        "lmtune-synth-{}-{}",
        args.like
            .clone()
            .unwrap_or_else(|| args.arch.clone().unwrap_or("custom".into())),
        args.quant
    );
    eprintln!(
        "writing {} ({} layers, n_embd {}, {} heads / {} KV, n_ff {}, {})…",
        args.output.display(),
        shape.n_layer,
        shape.n_embd,
        shape.n_head,
        shape.n_head_kv,
        shape.n_ff,
        args.quant
    );
    write_synthetic(&args.output, &shape, quant, &donor, &name, args.seed)?;
    let a = GgufFile::open(&args.output)?.anatomy()?;
    println!(
        "{}: {} params, {} of weights, vocabulary {} (from {}); synthetic — timings are real, text is noise",
        args.output.display(),
        format_params(a.n_params),
        human_bytes(a.weights_bytes),
        a.n_vocab,
        args.donor.display()
    );
    Ok(exit::OK)
}

fn format_params(n: u64) -> String {
    if n >= 1_000_000_000 {
        format!("{:.2} B", n as f64 / 1e9)
    } else {
        format!("{:.1} M", n as f64 / 1e6)
    }
}
