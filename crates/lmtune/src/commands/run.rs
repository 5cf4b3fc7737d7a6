//! `lmtune run`: validate a scenario, sweep it through a worker, record
//! every point as it finishes, print the table.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use lmtune_backend::protocol::{Request, Response};
use lmtune_core::fingerprint::{detect_gpus, file_sha256, Fingerprint, HostInfo, ModelFingerprint};
use lmtune_core::record::{Measurement, Record, Status, RESULTS_SCHEMA_VERSION};
use lmtune_core::scenario::{MachineFacts, Plan, Point, Scenario};
use lmtune_core::stats::{outliers, Summary};
use lmtune_report::{markdown_table, CsvSink, JsonlSink, RecordSink};

use crate::cli::RunArgs;
use crate::exit;
use crate::output::{default_out_dir, Progress};
use crate::runner::{Event, Worker};

pub fn run(args: RunArgs) -> anyhow::Result<u8> {
    let mut scenario = Scenario::load(&args.scenario)?;
    if let Some(model) = &args.model {
        scenario.model_path = model.clone();
        scenario.model_span = None;
    }
    let host = HostInfo::detect();
    let plan = scenario.plan(MachineFacts { physical_cores: host.physical_cores, logical_cores: host.logical_cores })?;
    for reason in &plan.dropped {
        eprintln!("note: skipped a combination: {reason}");
    }

    if args.dry_run {
        print_plan(&plan);
        return Ok(exit::OK);
    }

    let out_dir = match &args.out {
        Some(dir) => dir.clone(),
        None => default_out_dir(Path::new("results"), &host.hostname, &plan.scenario_name),
    };
    std::fs::create_dir_all(&out_dir).with_context(|| format!("cannot create the results directory {}", out_dir.display()))?;
    let jsonl_path = out_dir.join("results.jsonl");
    if jsonl_path.exists() && std::fs::metadata(&jsonl_path).map(|m| m.len() > 0).unwrap_or(false) {
        bail!("{} already holds results; choose another --out directory (or delete it) so runs are not mixed", jsonl_path.display());
    }
    std::fs::write(out_dir.join("scenario.toml"), &scenario.source).with_context(|| format!("cannot write into {}", out_dir.display()))?;
    let mut sinks: Vec<Box<dyn RecordSink>> = vec![
        Box::new(JsonlSink::create(&jsonl_path).with_context(|| format!("cannot create {}", jsonl_path.display()))?),
        Box::new(CsvSink::create(&out_dir.join("results.csv")).with_context(|| format!("cannot create {}", out_dir.join("results.csv").display()))?),
    ];

    let progress = Progress::new(plan.points.len() as u64);
    progress.note(&format!(
        "{}: {} points in {} load group(s), {} → {}",
        plan.scenario_name,
        plan.points.len(),
        plan.load_groups(),
        file_name(&plan.model_path),
        out_dir.display()
    ));
    progress.set_message("hashing the model file");
    let model_fp = model_fingerprint(&plan)?;
    let (gpus, gpu_note) = match detect_gpus() {
        Ok(g) => (g, None),
        Err(note) => (Vec::new(), Some(note)),
    };

    let echo: Option<Arc<dyn Fn(&str) + Send + Sync>> = if args.verbose {
        let p = progress.clone();
        Some(Arc::new(move |line: &str| p.note(line)))
    } else {
        None
    };
    progress.set_message("starting the worker");
    let mut sweep = Sweep {
        plan: &plan,
        run_id: out_dir.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default(),
        worker: None,
        spawn: Box::new(move || Worker::spawn(plan.backend, args.verbose, echo.clone())),
        loaded_group: None,
        load_seq: 0,
        load_ms: 0.0,
        fingerprint: Fingerprint {
            host,
            gpus,
            gpu_note,
            backend: plan.backend.as_str().to_string(),
            backend_version: String::new(),
            backend_build: String::new(),
            lmtune_version: lmtune_core::LMTUNE_VERSION.to_string(),
            lmtune_commit: env!("LMTUNE_GIT_COMMIT").to_string(),
            model: model_fp,
        },
    };

    let mut records = Vec::with_capacity(plan.points.len());
    for point in &plan.points {
        progress.set_message(&format!("{} {}", point.test.label(), knob_summary(point)));
        let record = sweep.measure(point, &progress)?;
        for sink in &mut sinks {
            sink.append(&record).with_context(|| format!("cannot append to the results in {}", out_dir.display()))?;
        }
        progress.point_done(&record);
        records.push(record);
    }
    if let Some(worker) = sweep.worker.take() {
        worker.shutdown();
    }
    progress.finish();

    print!("{}", markdown_table(&records));
    let failed: Vec<&Record> = records.iter().filter(|r| r.status != Status::Ok).collect();
    for r in &failed {
        eprintln!("point {} ({} {}) {}: {}", r.point_index, r.test, knob_summary_record(r), r.status.as_str(), r.error.as_deref().unwrap_or(""));
    }
    eprintln!("results: {} and results.csv", jsonl_path.display());
    Ok(if failed.is_empty() { exit::OK } else { exit::SOME_FAILED })
}

/// The state of a sweep in progress: the worker and what it has loaded.
struct Sweep<'a> {
    plan: &'a Plan,
    run_id: String,
    worker: Option<Worker>,
    spawn: Box<dyn Fn() -> anyhow::Result<Worker> + 'a>,
    /// Load group of the model the worker holds.
    loaded_group: Option<usize>,
    /// Model loads so far in this run; records of one load group share one.
    load_seq: u64,
    load_ms: f64,
    fingerprint: Fingerprint,
}

/// How a point ended before it became a record.
struct Outcome {
    status: Status,
    error: Option<String>,
    measurement: Measurement,
}

impl Sweep<'_> {
    fn measure(&mut self, point: &Point, progress: &Progress) -> anyhow::Result<Record> {
        let started_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let start = Instant::now();
        let outcome = self.try_measure(point, progress)?;
        Ok(self.record(point, outcome, started_at, start.elapsed().as_secs_f64()))
    }

    fn try_measure(&mut self, point: &Point, progress: &Progress) -> anyhow::Result<Outcome> {
        if self.worker.is_none() {
            let worker = (self.spawn)()?;
            self.fingerprint.backend_version = worker.info.version.clone();
            self.fingerprint.backend_build = worker.info.build.clone();
            self.worker = Some(worker);
            self.loaded_group = None;
        }
        if self.loaded_group != Some(point.load_group) {
            progress.set_message(&format!("loading the model (n_gpu_layers = {})", point.load.n_gpu_layers));
            let request = Request::Load { model: self.plan.model_path.clone(), load: point.load.clone() };
            match self.exchange(&request, progress)? {
                Reply::Loaded { load_ms } => {
                    self.load_seq += 1;
                    self.load_ms = load_ms;
                    self.loaded_group = Some(point.load_group);
                }
                Reply::Failed(message) => return Ok(Outcome::failed(Status::LoadFailed, message)),
                Reply::Died(message) => return Ok(Outcome::failed(Status::Crashed, message)),
                Reply::Measured(_) => bail!("the worker answered a load with a measurement"),
            }
        }
        let seed = 0x6c6d_7475_6e65 ^ point.index as u64;
        let request = Request::Run { point: point.clone(), measure: self.plan.measure, seed };
        Ok(match self.exchange(&request, progress)? {
            Reply::Measured(measurement) => Outcome { status: Status::Ok, error: None, measurement },
            Reply::Failed(message) => Outcome::failed(Status::Failed, message),
            Reply::Died(message) => Outcome::failed(Status::Crashed, message),
            Reply::Loaded { .. } => bail!("the worker answered a run with a load"),
        })
    }

    /// Sends one request and waits for its final answer. A dead worker is a
    /// reply too: it is reaped here, and the next point starts a new one.
    fn exchange(&mut self, request: &Request, progress: &Progress) -> anyhow::Result<Reply> {
        let worker = self.worker.as_mut().expect("worker started");
        // A write error means the worker is gone; its stream will end too.
        let _ = worker.send(request);
        loop {
            match worker.next() {
                Event::Response(Response::Progress { rep }) => progress.set_rep(rep, self.plan.measure.repetitions.max()),
                Event::Response(Response::Loaded { load_ms, .. }) => return Ok(Reply::Loaded { load_ms }),
                Event::Response(Response::Done { measurement }) => return Ok(Reply::Measured(measurement)),
                Event::Response(Response::Error { error }) => return Ok(Reply::Failed(error.to_string())),
                Event::Response(Response::Hello { .. }) => bail!("the worker said hello twice"),
                Event::Exited => {
                    let mut worker = self.worker.take().expect("worker started");
                    let death = worker.death();
                    self.loaded_group = None;
                    let tail = death.stderr_tail.join("\n");
                    return Ok(Reply::Died(format!("worker {}; last stderr lines:\n{tail}", death.description)));
                }
            }
        }
    }

    fn record(&self, point: &Point, outcome: Outcome, started_at: String, duration_s: f64) -> Record {
        let m = outcome.measurement;
        let ok = outcome.status == Status::Ok;
        Record {
            schema_version: RESULTS_SCHEMA_VERSION,
            run_id: self.run_id.clone(),
            scenario: self.plan.scenario_name.clone(),
            point_index: point.index,
            load_group: point.load_group,
            status: outcome.status,
            error: outcome.error,
            backend: self.plan.backend.as_str().to_string(),
            model: file_name(&self.plan.model_path),
            load: point.load.clone(),
            ctx: point.ctx.clone(),
            test: point.test.label(),
            workload: point.test,
            warmup: self.plan.measure.warmup,
            repetitions: m.samples_ns.len(),
            tokens_per_s: if ok { Summary::of(&m.samples_ts) } else { None },
            backend_perf_tokens_per_s: Summary::of(&m.backend_perf_ts),
            outliers: outliers(&m.samples_ts),
            model_load_seq: if self.loaded_group == Some(point.load_group) { self.load_seq } else { 0 },
            model_load_ms: if self.loaded_group == Some(point.load_group) { self.load_ms } else { 0.0 },
            started_at,
            duration_s,
            measurement: m,
            fingerprint: self.fingerprint.clone(),
        }
    }
}

enum Reply {
    Loaded { load_ms: f64 },
    Measured(Measurement),
    Failed(String),
    Died(String),
}

impl Outcome {
    fn failed(status: Status, message: String) -> Outcome {
        Outcome { status, error: Some(message), measurement: Measurement::default() }
    }
}

fn model_fingerprint(plan: &Plan) -> anyhow::Result<ModelFingerprint> {
    let file_size_bytes = std::fs::metadata(&plan.model_path).with_context(|| format!("cannot read {}", plan.model_path.display()))?.len();
    let sha256 = file_sha256(&plan.model_path).with_context(|| format!("cannot hash {}", plan.model_path.display()))?;
    let m = &plan.model;
    Ok(ModelFingerprint {
        file_name: file_name(&plan.model_path),
        file_size_bytes,
        weights_bytes: m.weights_bytes,
        sha256,
        architecture: m.architecture.clone(),
        n_params: m.n_params,
        quant: m.quant.clone(),
        n_layer: m.n_layer,
        n_ctx_train: m.n_ctx_train,
    })
}

fn print_plan(plan: &Plan) {
    println!(
        "{}: {} points in {} load group(s); model {} ({}, {} layers, trained on {} tokens)",
        plan.scenario_name,
        plan.points.len(),
        plan.load_groups(),
        file_name(&plan.model_path),
        plan.model.type_label(),
        plan.model.n_layer,
        plan.model.n_ctx_train
    );
    for p in &plan.points {
        println!("  #{:<4} group {:<3} {:<16} {}", p.index, p.load_group, p.test.label(), knob_summary(p));
    }
}

fn knob_summary(p: &Point) -> String {
    let c = &p.ctx;
    format!(
        "ngl={} n_ctx={} n_batch={} n_ubatch={} threads={} type_k={} type_v={} fa={}",
        p.load.n_gpu_layers, c.n_ctx, c.n_batch, c.n_ubatch, c.threads, c.type_k, c.type_v, c.flash_attn
    )
}

fn knob_summary_record(r: &Record) -> String {
    let c = &r.ctx;
    format!("ngl={} n_ctx={} n_batch={} n_ubatch={} threads={}", r.load.n_gpu_layers, c.n_ctx, c.n_batch, c.n_ubatch, c.threads)
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_else(|| PathBuf::from(path).display().to_string())
}
