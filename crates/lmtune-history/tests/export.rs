//! `history export`, exact output: a store of fake runs made of two points
//! of the committed quickstart (pp64 and tg32, 1 thread, n_batch 512) with
//! fake round t/s: commit 1 one run, commit 2 two runs.

use std::path::Path;

use lmtune_core::record::Record;
use lmtune_history::{export, ExportFilter, ExportFormat, RunMeta, Store};

const KNOBS: &str =
    "ngl=0 n_ctx=512 n_batch=512 n_ubatch=64 threads=1 type_k=f16 type_v=f16 fa=auto";

fn two_points() -> Vec<Record> {
    let results =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../results/2026-11-21-vm-quickstart");
    let all = lmtune_report::load_results(&results).unwrap().1;
    let two: Vec<Record> = all
        .into_iter()
        .filter(|r| r.ctx.threads == 1 && r.ctx.n_batch == 512)
        .collect();
    assert_eq!(two.len(), 2);
    two
}

/// Adds a fake run: (pp, tg) means with sds 10 and 2.
fn add(store: &mut Store, commit: u8, run_id: &str, (pp, tg): (f64, f64), host: Option<&str>) {
    let mut run = two_points();
    for r in &mut run {
        r.run_id = run_id.into();
        if let Some(h) = host {
            r.fingerprint.host.hostname = h.into();
        }
        let s = r.tokens_per_s.as_mut().unwrap();
        (s.mean, s.sd) = if r.test.starts_with("pp") {
            (pp, 10.0)
        } else {
            (tg, 2.0)
        };
    }
    let meta = RunMeta {
        commit: commit.to_string().repeat(40),
        branch: "main".into(),
        commit_time: format!("2026-12-0{commit}T09:00:00Z"),
    };
    store
        .add_run(&meta, &run.iter().collect::<Vec<_>>())
        .unwrap();
}

fn store(dir: &Path) -> Store {
    let mut store = Store::open(&dir.join("h.sqlite")).unwrap();
    add(&mut store, 1, "fake-1", (200.0, 100.0), None);
    add(&mut store, 2, "fake-2a", (180.0, 90.0), None);
    add(&mut store, 2, "fake-2b", (190.0, 94.0), None);
    store
}

fn out(format: ExportFormat, filter: ExportFilter) -> String {
    let dir = tempfile::tempdir().unwrap();
    export(&store(dir.path()), &filter, format).unwrap()
}

fn commit(c: u8) -> ExportFilter {
    ExportFilter {
        commit: Some(c.to_string().repeat(40)),
        ..Default::default()
    }
}

#[test]
fn csv_is_one_row_per_run_point_and_metric() {
    let c1 = "1".repeat(40);
    let c2 = "2".repeat(40);
    let m = "SmolLM2-135M-Instruct.Q4_1.gguf";
    let expected = format!(
        "commit,branch,commit_time,environment,run_id,model,test,knobs,metric,mean,sd,repetitions
{c1},main,2026-12-01T09:00:00Z,1,fake-1,{m},pp64,{KNOBS},pp,200,10,5
{c1},main,2026-12-01T09:00:00Z,1,fake-1,{m},tg32,{KNOBS},tg,100,2,5
{c2},main,2026-12-02T09:00:00Z,1,fake-2a,{m},pp64,{KNOBS},pp,180,10,5
{c2},main,2026-12-02T09:00:00Z,1,fake-2a,{m},tg32,{KNOBS},tg,90,2,5
{c2},main,2026-12-02T09:00:00Z,1,fake-2b,{m},pp64,{KNOBS},pp,190,10,5
{c2},main,2026-12-02T09:00:00Z,1,fake-2b,{m},tg32,{KNOBS},tg,94,2,5
"
    );
    assert_eq!(out(ExportFormat::Csv, ExportFilter::default()), expected);
}

#[test]
fn jsonl_is_one_object_per_line() {
    let c1 = "1".repeat(40);
    let expected = format!(
        r#"{{"commit":"{c1}","branch":"main","commit_time":"2026-12-01T09:00:00Z","environment":1,"run_id":"fake-1","model":"SmolLM2-135M-Instruct.Q4_1.gguf","test":"pp64","knobs":"{KNOBS}","metric":"pp","mean":200.0,"sd":10.0,"repetitions":5}}
{{"commit":"{c1}","branch":"main","commit_time":"2026-12-01T09:00:00Z","environment":1,"run_id":"fake-1","model":"SmolLM2-135M-Instruct.Q4_1.gguf","test":"tg32","knobs":"{KNOBS}","metric":"tg","mean":100.0,"sd":2.0,"repetitions":5}}
"#
    );
    assert_eq!(out(ExportFormat::Jsonl, commit(1)), expected);
    assert_eq!(
        out(ExportFormat::Jsonl, ExportFilter::default())
            .lines()
            .count(),
        6
    );
}

fn bencher(pp: (f64, f64, f64), tg: (f64, f64, f64)) -> String {
    let m = "SmolLM2-135M-Instruct.Q4_1.gguf";
    format!(
        r#"{{
  "{m} pp64 {KNOBS}": {{
    "pp_tokens_per_s": {{
      "value": {:?},
      "lower_value": {:?},
      "upper_value": {:?}
    }}
  }},
  "{m} tg32 {KNOBS}": {{
    "tg_tokens_per_s": {{
      "value": {:?},
      "lower_value": {:?},
      "upper_value": {:?}
    }}
  }}
}}
"#,
        pp.0, pp.1, pp.2, tg.0, tg.1, tg.2
    )
}

#[test]
fn bencher_is_the_newest_commit_with_its_runs_lowest_and_highest() {
    assert_eq!(
        out(ExportFormat::Bencher, ExportFilter::default()),
        bencher((185.0, 180.0, 190.0), (92.0, 90.0, 94.0))
    );
}

#[test]
fn bencher_of_a_one_run_commit_is_its_mean_plus_minus_its_sd() {
    assert_eq!(
        out(ExportFormat::Bencher, commit(1)),
        bencher((200.0, 190.0, 210.0), (100.0, 98.0, 102.0))
    );
}

#[test]
fn bencher_over_two_environments_is_refused_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = store(dir.path());
    add(
        &mut store,
        2,
        "fake-other-host",
        (1.0, 1.0),
        Some("fake-other-host"),
    );
    let err = export(&store, &ExportFilter::default(), ExportFormat::Bencher)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(
            "span 1 commit(s) in 2 environment(s); give --commit SHA and --environment ID"
        ),
        "{err}"
    );
    let one = ExportFilter {
        environment: Some(2),
        ..Default::default()
    };
    assert!(export(&store, &one, ExportFormat::Bencher)
        .unwrap()
        .contains("\"value\": 1.0"));
}
