//! Every output format, byte for byte, on committed records
//! (`tests/data/*.jsonl`, cut from `results/`). The expected files in
//! `tests/data/expected/` are the output as it stands; to accept a deliberate
//! change, run with `LMTUNE_BLESS=1` and review the diff.

use std::path::{Path, PathBuf};

use lmtune_core::compare::GateParams;
use lmtune_core::record::Record;
use lmtune_report::compare::{
    compare_records, render_json, render_junit, render_markdown, render_text, Comparison, Metric,
};
use lmtune_report::{
    export_llama_bench_csv, markdown_table, read_jsonl, CsvSink, JsonlSink, RecordSink,
};

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

/// What a sink leaves in a new file after appending `records` one by one.
fn appended(mut sink: Box<dyn RecordSink>, path: &Path, records: &[Record]) -> String {
    for r in records {
        sink.append(r).unwrap();
    }
    drop(sink);
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn jsonl_sink() {
    let dir = scratch("jsonl");
    for set in ["cpu", "gpu"] {
        let path = dir.join(format!("{set}.jsonl"));
        let sink = Box::new(JsonlSink::create(&path).unwrap());
        check(
            &format!("{set}.jsonl"),
            &appended(sink, &path, &records(&format!("{set}.jsonl"))),
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn csv_sink() {
    let dir = scratch("csv");
    for set in ["cpu", "gpu"] {
        let path = dir.join(format!("{set}.csv"));
        let sink = Box::new(CsvSink::create(&path).unwrap());
        check(
            &format!("{set}.csv"),
            &appended(sink, &path, &records(&format!("{set}.jsonl"))),
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn markdown_table_format() {
    for set in ["cpu", "gpu"] {
        check(
            &format!("{set}.md"),
            &markdown_table(&records(&format!("{set}.jsonl"))),
        );
    }
}

#[test]
fn llama_bench_csv_format() {
    for set in ["cpu", "gpu"] {
        check(
            &format!("{set}.llama-bench.csv"),
            &export_llama_bench_csv(&records(&format!("{set}.jsonl"))),
        );
    }
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
fn compare_formats() {
    let c = comparison();
    check("compare.txt", &render_text(&c));
    check("compare.md", &render_markdown(&c));
    check("compare.json", &render_json(&c));
    check("compare.xml", &render_junit(&c));
}
