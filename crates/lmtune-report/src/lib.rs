//! Result files and what is made of them: JSONL (the source of truth), CSV
//! (for spreadsheets), the llama-bench-style Markdown table, llama-bench
//! import and export, baselines, the regression gate and its output, and
//! the HTML report.
//!
//! Every output format is an [`export::Exporter`], chosen by one `match` on
//! its format enum ([`RecordFormat`], [`CompareFormat`]). Results files
//! are appended one record at a time and each record is flushed + fsync'd,
//! so a sweep that dies later loses nothing already measured.
//!
//! ```no_run
//! use lmtune_report::{results_sinks, RecordSink};
//! # fn get() -> lmtune_core::record::Record { unimplemented!() }
//! let mut sinks = results_sinks("results/run".as_ref())?;
//! for sink in &mut sinks {
//!     sink.append(&get())?;
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod baseline;
pub mod compare;
pub mod export;
pub mod import;
mod jsonl;
pub mod paste;
pub mod report;

pub use export::{
    markdown_table, results_sinks, CompareFormat, CsvSink, Exporter, FileSink, JsonlSink,
    RecordFormat, RecordSink, CSV_COLUMNS, LLAMA_BENCH_COLUMNS, RESULTS_CSV, RESULTS_JSONL,
};
pub use import::{load_results, SourceFormat};
pub use jsonl::{read_jsonl, ReadError};

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
