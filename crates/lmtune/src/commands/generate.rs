//! `lmtune generate`: greedy decoding on one backend, to check that two
//! backends compute the same model. The prompt is tokenized by llama.cpp's
//! tokenizer for every backend, so they all see the same token ids.

use anyhow::bail;
use lmtune_backend::Backend;
use lmtune_core::knobs::LoadParams;
use lmtune_core::scenario::{BackendKind, BackendSpec};

use crate::cli::GenerateArgs;
use crate::exit;

pub fn run(args: GenerateArgs) -> anyhow::Result<u8> {
    let in_process = BackendKind::from_name(&args.backend)
        .filter(|k| k.is_in_process())
        .and_then(BackendSpec::default_of);
    let Some(spec) = in_process else {
        bail!(
            "--backend {:?}: generate runs the in-process backends; use llama-cpp or candle",
            args.backend
        );
    };
    if args.n == 0 {
        bail!("--n 0: nothing to generate; ask for at least 1 token");
    }
    if !args.model.is_file() {
        bail!(
            "model file {} does not exist (for the test model run scripts/fetch-model.sh)",
            args.model.display()
        );
    }
    if let Some(threads) = args.threads {
        if threads == 0 {
            bail!("--threads 0: use at least 1");
        }
        // candle sizes its pools from these once, at first use; nothing has
        // started a thread pool yet.
        std::env::set_var("CANDLE_NUM_THREADS", threads.to_string());
        std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
    }
    let backend_error = |what: &str| {
        let what = what.to_string();
        move |e: lmtune_backend::BackendError| anyhow::anyhow!("{what}: {e}")
    };

    // llama.cpp's tokenizer, for every backend.
    let tokenizer_spec = BackendSpec::default();
    let mut tokenizer = lmtune_backend::create(tokenizer_spec.clone(), false)
        .map_err(backend_error("generate needs llama.cpp's tokenizer"))?;
    let cpu_only = LoadParams::new(0, true);
    tokenizer
        .load(&args.model, &cpu_only, None)
        .map_err(backend_error("cannot load the tokenizer"))?;
    let prompt = tokenizer
        .tokenize(&args.prompt)
        .map_err(backend_error("cannot tokenize the prompt"))?;
    if prompt.is_empty() {
        bail!("--prompt is empty after tokenization; give some text");
    }

    let spec = spec.with_offload_device(args.offload_device.clone());
    if let Err((problem, fix)) = spec.check() {
        bail!("--offload-device: {problem}; {fix}");
    }
    let load = LoadParams::new(args.n_gpu_layers, spec.can_mmap());
    let spec_name = spec.name();
    let tokens = match spec {
        // The tokenizer already holds this model on the CPU.
        spec if spec == tokenizer_spec && args.n_gpu_layers == 0 => {
            tokenizer.greedy(&prompt, args.n, args.n_batch)
        }
        spec => {
            let mut backend: Box<dyn Backend> = lmtune_backend::create(spec, false)
                .map_err(backend_error("cannot start the backend"))?;
            backend
                .load(&args.model, &load, None)
                .map_err(backend_error("cannot load the model"))?;
            backend.greedy(&prompt, args.n, args.n_batch)
        }
    }
    .map_err(backend_error("generation failed"))?;
    let pieces = tokenizer
        .detokenize(&tokens)
        .map_err(backend_error("cannot detokenize"))?;
    let text: String = pieces.concat();

    if args.json {
        let out = serde_json::json!({
            "backend": spec_name,
            "model": args.model,
            "prompt": args.prompt,
            "prompt_tokens": prompt,
            "n_gpu_layers": args.n_gpu_layers,
            "tokens": tokens,
            "pieces": pieces,
            "text": text,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!("backend:       {spec_name}");
        println!("prompt tokens: {prompt:?}");
        println!("tokens:        {tokens:?}");
        println!("text:          {}{text}", args.prompt);
    }
    Ok(exit::OK)
}
