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
            "--format {}: use llama-bench-csv, csv, jsonl or md",
            args.format
        )
    };
    let (_, records) = load_results(&args.results)
        .with_context(|| format!("cannot read {}", args.results.display()))?;
    match format {
        // lmtune's own results files: new files only, grown as a run grows them.
        RecordFormat::Csv | RecordFormat::Jsonl => {
            let Some(path) = &args.output else {
                bail!("--format {} needs --output FILE", args.format)
            };
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
        RecordFormat::LlamaBenchCsv | RecordFormat::Markdown => {
            let bytes = format.exporter().serialize(&records)?;
            match &args.output {
                Some(path) => std::fs::write(path, bytes)
                    .with_context(|| format!("cannot write {}", path.display()))?,
                None => std::io::stdout().write_all(&bytes)?,
            }
        }
    }
    eprintln!("exported {} records", records.len());
    Ok(exit::OK)
}
