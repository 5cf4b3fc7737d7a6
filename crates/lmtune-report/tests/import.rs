//! llama-bench output imported as records, pinned byte for byte: the real
//! fixtures (`tests/data/llama-bench/smollm2-cpu.*`, copied from
//! `/work/shared/fixtures/llama-bench`) and hand-written edge cases (GPUs,
//! override lists, flash attention and op offload as bools and numbers,
//! missing columns). The expected records in `tests/data/expected/import-*`
//! were written before `from_llama_bench` was split (issue 19); to accept a
//! deliberate change, run with `LMTUNE_BLESS=1` and review the diff.

use std::path::{Path, PathBuf};

use lmtune_report::{load_results, SourceFormat};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
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

#[test]
fn llama_bench_files_import_as_the_recorded_records() {
    let cases = [
        ("smollm2-cpu.json", SourceFormat::LlamaBenchJson, 8),
        ("smollm2-cpu.jsonl", SourceFormat::LlamaBenchJsonl, 8),
        ("smollm2-cpu.csv", SourceFormat::LlamaBenchCsv, 8),
        ("edge-cases.jsonl", SourceFormat::LlamaBenchJsonl, 5),
    ];
    for (file, format, n) in cases {
        let (got_format, records) = load_results(&data("llama-bench").join(file)).unwrap();
        assert_eq!(got_format, format, "{file}");
        assert_eq!(records.len(), n, "{file}");
        let jsonl: String = records
            .iter()
            .map(|r| serde_json::to_string(r).unwrap() + "\n")
            .collect();
        check(&format!("import-{file}.jsonl"), &jsonl);
    }
}

/// Columns set, columns removed, and the start of the error message.
type BadRecord<'a> = (&'a [(&'a str, serde_json::Value)], &'a [&'a str], &'a str);

/// Each bad record gets its message; with several faults, the first of
/// n_prompt, n_gen, n_depth, n_gpu_layers, avg_ts, n_batch, n_ubatch,
/// n_threads, type_k, type_v is the one reported.
#[test]
fn bad_llama_bench_records_get_the_recorded_errors_in_the_recorded_order() {
    let good: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(data("llama-bench/edge-cases.jsonl"))
            .unwrap()
            .lines()
            .nth(1)
            .unwrap(),
    )
    .unwrap();
    let dir = std::env::temp_dir().join(format!("lmtune-import-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cases: &[BadRecord] = &[
        (&[], &["n_prompt"], "`n_prompt` is missing"),
        (&[("n_gen", "x".into())], &[], "`n_gen` is missing"),
        (
            &[("n_depth", 1.5.into())],
            &[],
            "`n_depth` is not an integer",
        ),
        (
            &[("n_prompt", (-1).into())],
            &["n_gen"],
            "`n_prompt` is out of range",
        ),
        (
            &[],
            &["n_gpu_layers", "n_batch"],
            "`n_gpu_layers` is missing",
        ),
        (&[], &["avg_ts", "n_batch"], "`avg_ts` is missing"),
        (
            &[("n_batch", (1i64 << 40).into())],
            &["n_ubatch"],
            "`n_batch` is out of range",
        ),
        (
            &[("n_ubatch", true.into())],
            &["n_threads"],
            "`n_threads` is missing",
        ),
        (
            &[("type_k", "q3".into()), ("type_v", "x".into())],
            &[],
            "`type_k`: ",
        ),
        (&[("type_v", "x".into())], &[], "`type_v`: "),
    ];
    for (i, (set, remove, expected)) in cases.iter().enumerate() {
        let mut v = good.clone();
        for (k, x) in set.iter() {
            v[*k] = x.clone();
        }
        for k in remove.iter() {
            v.as_object_mut().unwrap().remove(*k);
        }
        // A good first line, so the file is detected as llama-bench JSONL.
        let path = dir.join(format!("bad{i}.jsonl"));
        std::fs::write(&path, format!("{good}\n{v}\n")).unwrap();
        let err = load_results(&path).unwrap_err().to_string();
        let prefix = format!("{}: llama-bench record 2: {expected}", path.display());
        assert!(err.starts_with(&prefix), "case {i}: {err}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
