//! Result files and what is made of them: JSONL (the source of truth), CSV
//! (for spreadsheets), the llama-bench-style Markdown table, llama-bench
//! import and export, baselines, and the regression gate's output.
//!
//! Sinks append one record at a time and flush + fsync it, so a sweep that
//! dies later loses nothing already measured.
//!
//! ```no_run
//! use lmtune_report::{JsonlSink, RecordSink};
//! # fn get() -> lmtune_core::record::Record { unimplemented!() }
//! let mut sink = JsonlSink::create("results/run/results.jsonl".as_ref())?;
//! sink.append(&get())?;
//! # Ok::<(), std::io::Error>(())
//! ```

pub mod baseline;
pub mod compare;
mod csv_sink;
pub mod import;
mod jsonl;
mod llama_bench_csv;
mod markdown;
pub mod report;

pub use csv_sink::{CsvSink, CSV_COLUMNS};
pub use import::{load_results, SourceFormat};
pub use jsonl::{read_jsonl, JsonlSink, ReadError};
pub use llama_bench_csv::{export_llama_bench_csv, LLAMA_BENCH_COLUMNS};
pub use markdown::markdown_table;

use lmtune_core::record::Record;

/// One exporter per format, chosen in the runner's single list of sinks.
pub trait RecordSink {
    /// Appends a record and makes it durable before returning.
    fn append(&mut self, record: &Record) -> std::io::Result<()>;
}

/// `1.50 GiB`-style sizes, as llama-bench prints them.
pub fn human_bytes(bytes: u64) -> String {
    let b = bytes as f64;
    const KIB: f64 = 1024.0;
    if b >= KIB.powi(3) {
        format!("{:.2} GiB", b / KIB.powi(3))
    } else if b >= KIB.powi(2) {
        format!("{:.2} MiB", b / KIB.powi(2))
    } else if b >= KIB {
        format!("{:.2} KiB", b / KIB)
    } else {
        format!("{bytes} B")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn human_bytes_matches_llama_bench() {
        assert_eq!(super::human_bytes(96_576_768), "92.10 MiB");
        assert_eq!(super::human_bytes(512), "512 B");
    }
}

#[cfg(test)]
mod sink_tests {
    use super::*;

    #[test]
    fn a_line_cut_by_a_crash_is_dropped_before_appending() {
        let dir = std::env::temp_dir().join(format!("lmtune-sink-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let jsonl = dir.join("r.jsonl");
        std::fs::write(&jsonl, "{\"a\":1}\n{\"b\":").unwrap();
        drop(JsonlSink::create(&jsonl).unwrap());
        assert_eq!(std::fs::read_to_string(&jsonl).unwrap(), "{\"a\":1}\n");
        let csv = dir.join("r.csv");
        std::fs::write(&csv, "h1,h2\n1,\"two\nlines\"\n2,\"cut").unwrap();
        drop(CsvSink::create(&csv).unwrap());
        assert_eq!(
            std::fs::read_to_string(&csv).unwrap(),
            "h1,h2\n1,\"two\nlines\"\n"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
