//! `lmtune export`: results in another format (llama-bench CSV for the tools
//! built around llama-bench; lmtune's own CSV/JSONL, e.g. from llama-bench input).

use anyhow::{bail, Context};
use lmtune_report::{export_llama_bench_csv, load_results, CsvSink, JsonlSink, RecordSink};

use crate::cli::ExportArgs;
use crate::exit;

pub fn run(args: ExportArgs) -> anyhow::Result<u8> {
    let (_, records) = load_results(&args.results)
        .with_context(|| format!("cannot read {}", args.results.display()))?;
    match args.format.as_str() {
        "llama-bench-csv" => {
            let text = export_llama_bench_csv(&records);
            match &args.output {
                Some(path) => std::fs::write(path, text)
                    .with_context(|| format!("cannot write {}", path.display()))?,
                None => print!("{text}"),
            }
        }
        "csv" | "jsonl" => {
            let Some(path) = &args.output else {
                bail!("--format {} needs --output FILE", args.format)
            };
            if path.exists() {
                bail!(
                    "{} exists; lmtune does not overwrite results",
                    path.display()
                );
            }
            let mut sink: Box<dyn RecordSink> = if args.format == "csv" {
                Box::new(CsvSink::create(path)?)
            } else {
                Box::new(JsonlSink::create(path)?)
            };
            for r in &records {
                sink.append(r)?;
            }
        }
        other => bail!("--format {other}: use llama-bench-csv, csv or jsonl"),
    }
    eprintln!("exported {} records", records.len());
    Ok(exit::OK)
}
