//! `lmtune export` to standard output.

mod common;

use common::lmtune;

fn committed(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../results")
        .join(name)
}

/// Issue 22 #22: `export --format csv` refused to run without `--output`;
/// every format now goes to standard output when no file is given, so it
/// pipes.
#[test]
fn export_csv_and_jsonl_write_to_stdout_without_output() {
    let results = committed("2026-11-21-vm-quickstart");
    for (format, first) in [
        ("csv", "schema_version,run_id"),
        ("jsonl", "{\"schema_version\":"),
    ] {
        let out = lmtune()
            .args(["export", "--format", format])
            .arg(&results)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert!(stdout.starts_with(first), "{format}: {stdout}");
        let rows = stdout.lines().count();
        assert_eq!(rows, if format == "csv" { 9 } else { 8 }, "{format}");
    }
}

fn export(format: &str, results: &std::path::Path) -> String {
    let out = lmtune()
        .args(["export", "--format", format])
        .arg(results)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The first row's `build_commit` and `build_number` of a llama-bench CSV.
fn csv_build(text: &str) -> (String, String) {
    let mut rows = csv::Reader::from_reader(text.as_bytes());
    let row = rows.records().next().unwrap().unwrap();
    (row[0].to_string(), row[1].to_string())
}

/// Issue 22 #25: the llama-bench exports put lmtune's commit in
/// `build_commit`; it is llama.cpp's build (number and commit), as llama.cpp
/// reports it in the record's backend_version: kept through a llama-bench
/// round trip, "unknown"/0 where no llama.cpp build is known (older records),
/// and what the worker's llama.cpp says for a fresh run.
#[test]
fn llama_bench_export_names_llama_cpp_build_not_lmtune_commit() {
    let dir = tempfile::tempdir().unwrap();
    // A llama-bench CSV (as llama-bench writes it) round-trips its build.
    let quickstart = committed("2026-11-21-vm-quickstart");
    let ours = export("llama-bench-csv", &quickstart);
    let bench = dir.path().join("bench.csv");
    std::fs::write(
        &bench,
        ours.replacen("\n\"unknown\",0,", "\n\"b5f3e1a\",6123,", 1),
    )
    .unwrap();
    let back = export("llama-bench-csv", &bench);
    assert_eq!(csv_build(&back), ("b5f3e1a".into(), "6123".into()));
    let json = export("llama-bench-json", &bench);
    assert!(json.contains("\"build_commit\": \"b5f3e1a\","), "{json}");
    assert!(json.contains("\"build_number\": 6123,"), "{json}");

    // An older record carries only the llama-cpp-2 crate version: no
    // llama.cpp build is known, and lmtune's commit is not one.
    let (commit, number) = csv_build(&ours);
    assert_eq!((commit.as_str(), number.as_str()), ("unknown", "0"));
    assert!(!ours.contains("75afbe37418c"), "{ours}");

    // A fresh run: the record says which llama.cpp build measured it, and the
    // export repeats it.
    let body = "name = \"build\"\n[sweep]\nn_ctx = 128\nthreads = 1\n[workload]\nn_prompt = [0]\nn_gen = [2]\n[measure]\nrepetitions = 1\nwarmup = 0\n";
    let path = common::scenario(dir.path(), "s.toml", body);
    let results = dir.path().join("results");
    let run = lmtune()
        .arg("run")
        .arg(&path)
        .arg("--out")
        .arg(&results)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let records = common::read_records(&results);
    let fp = &records[0]["fingerprint"];
    let version = fp["backend_version"].as_str().unwrap();
    assert!(version.contains("llama.cpp build "), "{version}");
    let (commit, number) = csv_build(&export("llama-bench-csv", &results));
    assert_eq!(format!("llama.cpp build {number} ({commit})"), {
        let at = version.find("llama.cpp build ").unwrap();
        version[at..=at + version[at..].find(')').unwrap()].to_string()
    });
    assert_ne!(commit, fp["lmtune_commit"].as_str().unwrap());
}
