//! Files that grow one record at a time: a results directory's
//! `results.jsonl` and `results.csv`, `lmtune export`'s output, the tuner's
//! check file.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use lmtune_core::record::Record;

use super::{Exporter, RecordFormat};

/// Where finished records go, one at a time.
pub trait RecordSink {
    /// Appends a record and makes it durable before returning.
    fn append(&mut self, record: &Record) -> std::io::Result<()>;
}

/// The source of truth in a results directory.
pub const RESULTS_JSONL: &str = "results.jsonl";
/// The same records for spreadsheets.
pub const RESULTS_CSV: &str = "results.csv";

/// A results file the sink could not open.
#[derive(Debug, thiserror::Error)]
#[error("cannot open {}", .path.display())]
pub struct OpenError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// The sinks of a results directory, in the order they are written:
/// `results.jsonl`, then `results.csv`. Existing files are appended to
/// (`--resume`).
pub fn results_sinks(dir: &Path) -> Result<Vec<Box<dyn RecordSink>>, OpenError> {
    [
        (RESULTS_JSONL, RecordFormat::Jsonl),
        (RESULTS_CSV, RecordFormat::Csv),
    ]
    .into_iter()
    .map(|(name, format)| {
        let path = dir.join(name);
        match FileSink::create(&path, format) {
            Ok(sink) => Ok(Box::new(sink) as Box<dyn RecordSink>),
            Err(source) => Err(OpenError { path, source }),
        }
    })
    .collect()
}

/// A file in one [`RecordFormat`], appended to and fsync'd record by record.
pub struct FileSink {
    file: File,
    exporter: Box<dyn Exporter<[Record]>>,
}

impl FileSink {
    /// Opens `path` for appending (creating it). A last record cut short by
    /// a crash is removed first, so the next one starts whole; a new or
    /// empty file gets the format's header.
    pub fn create(path: &Path, format: RecordFormat) -> std::io::Result<FileSink> {
        if !format.appendable() {
            return Err(std::io::Error::other(format!(
                "a {} file cannot grow one record at a time",
                format.name()
            )));
        }
        let exporter = format.exporter();
        if let Ok(bytes) = std::fs::read(path) {
            if !bytes.is_empty() && bytes.last() != Some(&b'\n') {
                let keep = exporter.whole_records_len(&bytes);
                OpenOptions::new()
                    .write(true)
                    .open(path)?
                    .set_len(keep as u64)?;
            }
        }
        let mut file = OpenOptions::new().create(true).append(true).open(path)?;
        let header = exporter.header()?;
        if !header.is_empty() && file.metadata()?.len() == 0 {
            file.write_all(&header)?;
            file.sync_data()?;
        }
        Ok(FileSink { file, exporter })
    }
}

impl RecordSink for FileSink {
    fn append(&mut self, record: &Record) -> std::io::Result<()> {
        let bytes = self.exporter.body(std::slice::from_ref(record))?;
        // One write per record keeps it whole even if the process dies mid-way.
        self.file.write_all(&bytes)?;
        self.file.sync_data()
    }
}

/// `results.jsonl`'s sink: [`FileSink`] in [`RecordFormat::Jsonl`].
pub struct JsonlSink(FileSink);

impl JsonlSink {
    /// Opens `path` for appending (creating it). A last line cut short by a
    /// crash is removed first, so the next record starts on a line of its own.
    pub fn create(path: &Path) -> std::io::Result<JsonlSink> {
        FileSink::create(path, RecordFormat::Jsonl).map(JsonlSink)
    }
}

impl RecordSink for JsonlSink {
    fn append(&mut self, record: &Record) -> std::io::Result<()> {
        self.0.append(record)
    }
}

/// `results.csv`'s sink: [`FileSink`] in [`RecordFormat::Csv`].
pub struct CsvSink(FileSink);

impl CsvSink {
    /// Opens `path` for appending; writes the header when the file is new or
    /// empty. A row cut short by a crash is removed first.
    pub fn create(path: &Path) -> std::io::Result<CsvSink> {
        FileSink::create(path, RecordFormat::Csv).map(CsvSink)
    }
}

impl RecordSink for CsvSink {
    fn append(&mut self, record: &Record) -> std::io::Result<()> {
        self.0.append(record)
    }
}

#[cfg(test)]
mod tests {
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

    #[test]
    fn a_table_is_not_a_file_to_append_to() {
        let path = std::env::temp_dir().join(format!("lmtune-sink-md-{}", std::process::id()));
        assert!(FileSink::create(&path, RecordFormat::Markdown).is_err());
        assert!(!path.exists());
    }

    #[test]
    fn a_results_directory_has_jsonl_and_csv() {
        let dir = std::env::temp_dir().join(format!("lmtune-sinks-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(results_sinks(&dir).unwrap().len(), 2);
        assert_eq!(std::fs::read(dir.join(RESULTS_JSONL)).unwrap(), b"");
        let csv = std::fs::read_to_string(dir.join(RESULTS_CSV)).unwrap();
        assert!(csv.starts_with("schema_version,run_id,"), "{csv}");
        let missing = dir.join("not-there");
        let e = results_sinks(&missing).err().unwrap();
        assert_eq!(e.path, missing.join(RESULTS_JSONL));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
