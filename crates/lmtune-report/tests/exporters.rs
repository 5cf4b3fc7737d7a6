//! Every output format, byte for byte, on committed records
//! (`tests/data/*.jsonl`, cut from `results/`). The expected files in
//! `tests/data/expected/` are the output as it stands; to accept a deliberate
//! change, run with `LMTUNE_BLESS=1` and review the diff.

use std::path::{Path, PathBuf};

use lmtune_core::compare::GateParams;
use lmtune_core::record::Record;
use lmtune_report::compare::{compare_records, Comparison, Metric};
use lmtune_report::{read_jsonl, CompareFormat, FileSink, RecordFormat, RecordSink};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn records(name: &str) -> Vec<Record> {
    read_jsonl(&data(name)).unwrap()
}

/// Compares `actual` with `tests/data/expected/NAME` (or writes it, blessing).
fn check(name: &str, actual: &str) {
    let path = data("expected").join(name);
    if std::env::var_os("LMTUNE_BLESS").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (LMTUNE_BLESS=1 writes it)", path.display()));
    assert!(
        expected == actual,
        "{name} differs from {}:\n--- expected\n{expected}\n--- actual\n{actual}",
        path.display()
    );
}

/// A fresh directory under the system temp dir.
fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lmtune-exporters-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The expected file of a record format.
fn expected_name(set: &str, format: RecordFormat) -> String {
    let ext = match format {
        RecordFormat::Jsonl => "jsonl",
        RecordFormat::Csv => "csv",
        RecordFormat::Markdown => "md",
        RecordFormat::LlamaBenchCsv => "llama-bench.csv",
        RecordFormat::LlamaBenchJson => "llama-bench.json",
    };
    format!("{set}.{ext}")
}

#[test]
fn every_record_format() {
    for format in RecordFormat::ALL {
        for set in ["cpu", "gpu"] {
            let out = format
                .exporter()
                .serialize(&records(&format!("{set}.jsonl")))
                .unwrap();
            check(
                &expected_name(set, format),
                &String::from_utf8(out).unwrap(),
            );
        }
    }
}

/// A file that grows a record at a time ends up as the whole output.
#[test]
fn appending_record_by_record() {
    let dir = scratch("append");
    for format in RecordFormat::ALL.into_iter().filter(|f| f.appendable()) {
        for set in ["cpu", "gpu"] {
            let path = dir.join(expected_name(set, format));
            let mut sink = FileSink::create(&path, format).unwrap();
            for r in records(&format!("{set}.jsonl")) {
                sink.append(&r).unwrap();
            }
            drop(sink);
            check(
                &expected_name(set, format),
                &std::fs::read_to_string(&path).unwrap(),
            );
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

fn comparison() -> Comparison {
    compare_records(
        &records("compare-base.jsonl"),
        &records("compare-current.jsonl"),
        &[Metric::Tg, Metric::Pp],
        GateParams {
            threshold: 0.05,
            alpha: 0.05,
        },
        // The two runs were recorded at different lmtune commits: rows are labelled.
        true,
    )
    .unwrap()
}

#[test]
fn every_compare_format() {
    let c = comparison();
    for format in CompareFormat::ALL {
        let ext = match format {
            CompareFormat::Table => "txt",
            CompareFormat::Markdown => "md",
            CompareFormat::Json => "json",
            CompareFormat::Junit => "xml",
        };
        let out = format.exporter().serialize(&c).unwrap();
        check(&format!("compare.{ext}"), &String::from_utf8(out).unwrap());
    }
}
