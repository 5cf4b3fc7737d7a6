//! `lmtune export`: results in another format (llama-bench CSV for the tools
//! built around llama-bench; lmtune's own CSV/JSONL, e.g. from llama-bench
//! input; the Markdown table).

use std::io::Write;

use anyhow::{bail, Context};
use lmtune_report::{load_results, FileSink, RecordFormat, RecordSink};

use crate::cli::ExportArgs;
use crate::exit;

pub fn run(args: ExportArgs) -> anyhow::Result<u8> {
    let Some(format) = RecordFormat::parse(&args.format) else {
        bail!(
            "--format {}: use llama-bench-csv, llama-bench-json, csv, jsonl or md",
            args.format
        )
    };
    let (_, records) = load_results(&args.results)
        .with_context(|| format!("cannot read {}", args.results.display()))?;
    match (format, &args.output) {
        // lmtune's own results files: new files only, grown as a run grows them.
        (RecordFormat::Csv | RecordFormat::Jsonl, Some(path)) => {
            if path.exists() {
                bail!(
                    "{} exists; lmtune does not overwrite results",
                    path.display()
                );
            }
            let mut sink = FileSink::create(path, format)?;
            for r in &records {
                sink.append(r)?;
            }
        }
        (_, Some(path)) => {
            let bytes = format.exporter().serialize(&records)?;
            std::fs::write(path, bytes)
                .with_context(|| format!("cannot write {}", path.display()))?
        }
        // Every format to standard output without --output (a pipe).
        (_, None) => {
            let bytes = format.exporter().serialize(&records)?;
            std::io::stdout().write_all(&bytes)?
        }
    }
    eprintln!("exported {} records", records.len());
    Ok(exit::OK)
}
