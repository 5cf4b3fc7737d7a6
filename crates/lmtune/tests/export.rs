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
