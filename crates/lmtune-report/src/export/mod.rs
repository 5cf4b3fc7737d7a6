//! Every output format behind one trait, [`Exporter`], one file per format
//! (as hyperfine's `export/`). Each kind of thing exported has its format
//! enum and one factory `match`: [`RecordFormat::exporter`] for records
//! (JSONL, CSV, the Markdown table, llama-bench CSV), [`CompareFormat::exporter`]
//! for the regression gate's verdicts (table, Markdown, JSON, JUnit).
//!
//! Results files grow a record at a time through a [`FileSink`]: one write
//! and an fsync per finished point, so Ctrl-C or a crash loses nothing
//! already measured. [`results_sinks`] opens the standard pair of a results
//! directory.
//!
//! ```
//! use lmtune_report::export::{Exporter, RecordFormat};
//! let table = RecordFormat::Markdown.exporter().serialize(&[])?;
//! assert!(table.starts_with(b"| model "));
//! # Ok::<(), std::io::Error>(())
//! ```

mod compare_json;
mod compare_junit;
mod compare_markdown;
mod compare_table;
mod csv;
mod jsonl;
mod llama_bench_csv;
mod llama_bench_json;
mod markdown;
mod sink;

use std::io;

use lmtune_core::record::Record;

use crate::compare::Comparison;

pub use self::csv::CSV_COLUMNS;
pub use llama_bench_csv::LLAMA_BENCH_COLUMNS;
pub use markdown::markdown_table;
pub use sink::{
    results_sinks, CsvSink, FileSink, JsonlSink, OpenError, RecordSink, RESULTS_CSV, RESULTS_JSONL,
};

/// One output format: the bytes it writes for `T` (records, or a comparison).
pub trait Exporter<T: ?Sized> {
    /// Written once, at the top of a new file (a CSV header). Most formats
    /// have none.
    fn header(&self) -> io::Result<Vec<u8>> {
        Ok(Vec::new())
    }

    /// Everything after the header. For the formats a file grows in
    /// ([`RecordFormat::appendable`]), the body of several records is the
    /// bodies of each one after the other.
    fn body(&self, data: &T) -> io::Result<Vec<u8>>;

    /// The whole output: header, then body.
    fn serialize(&self, data: &T) -> io::Result<Vec<u8>> {
        let mut out = self.header()?;
        out.extend(self.body(data)?);
        Ok(out)
    }

    /// How many leading bytes of an existing file are whole records; what
    /// follows was cut short by a crash. Line-based formats end a record
    /// with its newline.
    fn whole_records_len(&self, bytes: &[u8]) -> usize {
        bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1)
    }
}

/// The formats records are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordFormat {
    /// `results.jsonl`: one record per line, the source of truth.
    Jsonl,
    /// `results.csv`: one flattened row per record.
    Csv,
    /// llama-bench's Markdown table (the end-of-run table).
    Markdown,
    /// llama-bench's CSV (`llama-bench -o csv`).
    LlamaBenchCsv,
    /// llama-bench's JSON (`llama-bench -o json`).
    LlamaBenchJson,
}

impl RecordFormat {
    pub const ALL: [RecordFormat; 5] = [
        RecordFormat::LlamaBenchCsv,
        RecordFormat::LlamaBenchJson,
        RecordFormat::Csv,
        RecordFormat::Jsonl,
        RecordFormat::Markdown,
    ];

    /// The one place a format becomes an exporter.
    pub fn exporter(self) -> Box<dyn Exporter<[Record]>> {
        match self {
            RecordFormat::Jsonl => Box::new(jsonl::Jsonl),
            RecordFormat::Csv => Box::new(csv::Csv),
            RecordFormat::Markdown => Box::new(markdown::MarkdownTable),
            RecordFormat::LlamaBenchCsv => Box::new(llama_bench_csv::LlamaBenchCsv),
            RecordFormat::LlamaBenchJson => Box::new(llama_bench_json::LlamaBenchJson),
        }
    }

    /// The name on the command line (`--format`).
    pub fn name(self) -> &'static str {
        match self {
            RecordFormat::Jsonl => "jsonl",
            RecordFormat::Csv => "csv",
            RecordFormat::Markdown => "md",
            RecordFormat::LlamaBenchCsv => "llama-bench-csv",
            RecordFormat::LlamaBenchJson => "llama-bench-json",
        }
    }

    pub fn parse(name: &str) -> Option<RecordFormat> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }

    /// Whether a file in this format can grow one record at a time (a
    /// table's column widths depend on every row, so it cannot).
    pub fn appendable(self) -> bool {
        !matches!(self, RecordFormat::Markdown | RecordFormat::LlamaBenchJson)
    }
}

/// The formats of the regression gate's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareFormat {
    /// Plain text for a terminal.
    Table,
    /// Markdown for a pull-request comment.
    Markdown,
    /// JSON for scripts.
    Json,
    /// JUnit XML for CI test reports.
    Junit,
}

impl CompareFormat {
    pub const ALL: [CompareFormat; 4] = [
        CompareFormat::Table,
        CompareFormat::Markdown,
        CompareFormat::Json,
        CompareFormat::Junit,
    ];

    /// The one place a format becomes an exporter.
    pub fn exporter(self) -> Box<dyn Exporter<Comparison>> {
        match self {
            CompareFormat::Table => Box::new(compare_table::CompareTable),
            CompareFormat::Markdown => Box::new(compare_markdown::CompareMarkdown),
            CompareFormat::Json => Box::new(compare_json::CompareJson),
            CompareFormat::Junit => Box::new(compare_junit::CompareJunit),
        }
    }

    /// The name on the command line (`--format`).
    pub fn name(self) -> &'static str {
        match self {
            CompareFormat::Table => "table",
            CompareFormat::Markdown => "md",
            CompareFormat::Json => "json",
            CompareFormat::Junit => "junit",
        }
    }

    pub fn parse(name: &str) -> Option<CompareFormat> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }
}

/// llama-bench's model size label: `135M`, `7.2B`.
fn params_label(n: u64) -> String {
    if n >= 1_000_000_000 {
        format!("{:.1}B", n as f64 / 1e9)
    } else {
        format!("{}M", n / 1_000_000)
    }
}

/// A text exporter's output as bytes.
fn text(s: String) -> io::Result<Vec<u8>> {
    Ok(s.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_format_name_parses_back() {
        for f in RecordFormat::ALL {
            assert_eq!(RecordFormat::parse(f.name()), Some(f));
        }
        for f in CompareFormat::ALL {
            assert_eq!(CompareFormat::parse(f.name()), Some(f));
        }
        assert_eq!(RecordFormat::parse("pdf"), None);
    }
}
