//! A sweep in progress: one worker, the model it holds, and what has failed.
//!
//! Every point ends as a [`Record`] — measured, or with the status and reason
//! it failed — except the one in flight when the user interrupts. A worker
//! that dies or hangs costs only its point: it is killed and the next point
//! starts a new one. Points that would fail the same way as an earlier one
//! (a model that did not load, a context that ran out of memory) are
//! recorded as skipped instead of run.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::bail;
use lmtune_backend::protocol::{Request, Response};
use lmtune_backend::BackendError;
use lmtune_core::fingerprint::Fingerprint;
use lmtune_core::knobs::{ContextParams, LoadParams};
use lmtune_core::llama_fit::{FitRequest, FitTarget, LlamaFit, LLAMA_SERVER_FIT_MARGIN};
use lmtune_core::record::{Measurement, Record, Status, VramUsage, RESULTS_SCHEMA_VERSION};
use lmtune_core::scenario::{LoadActivity, Plan, Point};
use lmtune_core::stats::{outliers, Summary};

use lmtune_gguf::ModelAnatomy;
use lmtune_model::{CpuBackend, ThroughputParams};

use crate::interrupt::INTERRUPTED;
use crate::output::Progress;
use crate::predict::{host_cpu_backend, predict_point};
use crate::runner::{Event, SpawnOptions, Wait, Worker};
use crate::vram::VramMonitor;

/// What measuring a point produced.
pub enum PointResult {
    Recorded(Box<Record>),
    /// The user interrupted; the point was stopped and is not recorded.
    Interrupted,
}

pub struct Sweep<'a> {
    plan: &'a Plan,
    run_id: String,
    options: SpawnOptions,
    worker: Option<Worker>,
    /// Load group of the model the worker holds.
    loaded_group: Option<usize>,
    /// Mixed into each point's seed: a repeated measurement of a point
    /// (the tuner's) gets fresh random tokens and fresh simulated noise.
    pub seed_salt: u64,
    /// Model loads so far in this run; records of one load group share one.
    load_seq: u64,
    load_ms: f64,
    pub fingerprint: Fingerprint,
    vram: Option<VramMonitor>,
    /// For the prediction recorded with each point.
    anatomy: Option<ModelAnatomy>,
    throughput: ThroughputParams,
    cpu_backend: CpuBackend,
    /// Load groups whose model did not load, with the point and reason.
    failed_loads: HashMap<usize, (usize, String)>,
    /// Contexts that ran out of memory: (load group, context, point index).
    oom_contexts: Vec<(usize, ContextParams, usize)>,
    /// `n_gpu_layers = "fit"`: the load llama.cpp's fit chose for a group.
    fitted: Option<(usize, LoadParams, Box<LlamaFit>)>,
}

/// How a point ended before it became a record.
struct Outcome {
    status: Status,
    error: Option<String>,
    measurement: Measurement,
    vram: Option<VramUsage>,
}

enum Reply {
    Fitted(Box<LlamaFit>),
    Loaded {
        load_ms: f64,
    },
    Measured(Box<Measurement>),
    Failed(BackendError),
    /// The worker died; `out_of_memory` from [`crate::runner::Death`].
    Died {
        message: String,
        out_of_memory: bool,
    },
    TimedOut(String),
    Interrupted,
}

impl<'a> Sweep<'a> {
    pub fn new(
        plan: &'a Plan,
        run_id: String,
        options: SpawnOptions,
        fingerprint: Fingerprint,
        anatomy: Option<ModelAnatomy>,
        throughput: ThroughputParams,
    ) -> Sweep<'a> {
        Sweep {
            anatomy,
            throughput,
            cpu_backend: host_cpu_backend(),
            plan,
            run_id,
            options,
            worker: None,
            loaded_group: None,
            seed_salt: 0,
            load_seq: 0,
            load_ms: 0.0,
            fingerprint,
            vram: VramMonitor::start(),
            failed_loads: HashMap::new(),
            oom_contexts: Vec::new(),
            fitted: None,
        }
    }

    /// Starts a worker if none runs; fills the backend part of the fingerprint.
    pub fn ensure_worker(&mut self) -> anyhow::Result<()> {
        self.ensure_worker_for(None)
    }

    /// Starts a worker able to run `point`: candle's worker runs one thread
    /// count, so another count means a new worker.
    fn ensure_worker_for(&mut self, point: Option<&Point>) -> anyhow::Result<()> {
        if self.plan.backend.worker_per_thread_count() {
            let wanted = match point {
                Some(p) => Some(p.ctx.threads),
                None => self
                    .options
                    .threads
                    .or(self.plan.points.first().map(|p| p.ctx.threads)),
            };
            if wanted != self.options.threads {
                self.shutdown();
                self.options.threads = wanted;
            }
        }
        if self.worker.is_none() {
            let worker = Worker::spawn(&self.options)?;
            self.fingerprint.backend_version = worker.info.version.clone();
            self.fingerprint.backend_build = worker.info.build.clone();
            self.fingerprint.backend_devices = worker.info.devices.clone();
            self.worker = Some(worker);
            self.loaded_group = None;
        }
        Ok(())
    }

    pub fn shutdown(&mut self) {
        if let Some(worker) = self.worker.take() {
            worker.shutdown();
        }
    }

    pub fn measure(&mut self, point: &Point, progress: &Progress) -> anyhow::Result<PointResult> {
        let started_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let start = Instant::now();
        let outcome = match self.skip_reason(point) {
            Some(reason) => Outcome::failed(Status::Skipped, reason),
            None => match self.try_measure(point, progress)? {
                Some(outcome) => outcome,
                None => return Ok(PointResult::Interrupted),
            },
        };
        if outcome.status == Status::Oom && !self.failed_loads.contains_key(&point.load_group) {
            self.oom_contexts
                .push((point.load_group, point.ctx.clone(), point.index));
        }
        Ok(PointResult::Recorded(Box::new(self.record(
            point,
            outcome,
            started_at,
            start.elapsed().as_secs_f64(),
        ))))
    }

    /// Why `point` would fail like an earlier one, if it would.
    fn skip_reason(&self, point: &Point) -> Option<String> {
        if let Some((index, reason)) = self.failed_loads.get(&point.load_group) {
            return Some(format!(
                "the model did not load with n_gpu_layers = {} (point {index}: {reason})",
                point.load.n_gpu_layers
            ));
        }
        let c = &point.ctx;
        self.oom_contexts
            .iter()
            .find(|(group, o, _)| {
                *group == point.load_group
                    && o.n_ctx <= c.n_ctx
                    && o.n_batch <= c.n_batch
                    && o.n_ubatch <= c.n_ubatch
                    && (o.type_k, o.type_v, o.flash_attn, o.op_offload)
                        == (c.type_k, c.type_v, c.flash_attn, c.op_offload)
                    // A full-size sliding-window cache needs more, never less.
                    && (!o.swa_full || c.swa_full)
            })
            .map(|(_, o, index)| format!("needs at least the memory of point {index} (n_ctx = {}), which ran out of memory", o.n_ctx))
    }

    /// `None` when interrupted.
    fn try_measure(
        &mut self,
        point: &Point,
        progress: &Progress,
    ) -> anyhow::Result<Option<Outcome>> {
        self.ensure_worker_for(Some(point))?;
        if self.loaded_group != Some(point.load_group) {
            progress.set_message(&match self.plan.backend.load_activity() {
                LoadActivity::StartServer => format!(
                    "starting the server (n_gpu_layers = {}, n_ctx = {}, threads = {})",
                    point.load.n_gpu_layers, point.ctx.n_ctx, point.ctx.threads
                ),
                LoadActivity::ConnectServer => "connecting to the server".to_string(),
                LoadActivity::LoadModel => format!(
                    "loading the model (n_gpu_layers = {})",
                    point.load.n_gpu_layers
                ),
            });
            let launch =
                self.plan
                    .backend
                    .manages_server()
                    .then(|| lmtune_core::openai::ServerLaunch {
                        load: point.load.clone(),
                        ctx: point.ctx.clone(),
                        parallel: point.test.concurrency.max(1),
                    });
            let load = if point.load.fit {
                match self.fitted_load(point, progress)? {
                    None => return Ok(None),
                    Some(Err(outcome)) => return Ok(Some(outcome)),
                    Some(Ok(load)) => load,
                }
            } else {
                point.load.clone()
            };
            let request = Request::Load {
                model: self.plan.model_path.clone(),
                load,
                launch,
            };
            let timeout = Duration::from_secs_f64(self.plan.measure.load_timeout_s);
            let failure = match self.exchange(&request, timeout, progress)? {
                Reply::Loaded { load_ms } => {
                    self.load_seq += 1;
                    self.load_ms = load_ms;
                    self.loaded_group = Some(point.load_group);
                    None
                }
                Reply::Failed(error) => Some(Outcome::failed(status_of(&error), error.to_string())),
                Reply::Died { message, .. } => Some(Outcome::failed(
                    Status::Crashed,
                    format!("while loading the model: {message}"),
                )),
                Reply::TimedOut(message) => Some(Outcome::failed(
                    Status::Timeout,
                    format!("while loading the model: {message}"),
                )),
                Reply::Interrupted => return Ok(None),
                Reply::Measured(_) | Reply::Fitted(_) => {
                    bail!("the worker answered a load with something else")
                }
            };
            if let Some(outcome) = failure {
                let reason = outcome.error.clone().unwrap_or_default();
                let first_line = reason.lines().next().unwrap_or("").to_string();
                self.failed_loads
                    .insert(point.load_group, (point.index, first_line));
                return Ok(Some(outcome));
            }
        }
        let seed = 0x6c6d_7475_6e65 ^ point.index as u64 ^ (self.seed_salt << 32);
        let request = Request::Run {
            point: self.as_loaded(point),
            measure: self.plan.measure,
            seed,
        };
        let timeout = Duration::from_secs_f64(self.plan.measure.point_timeout_s(&point.test));
        let sampling = match (&self.vram, &self.worker) {
            (Some(monitor), Some(worker)) => Some(monitor.sample(worker.pid())),
            _ => None,
        };
        let reply = self.exchange(&request, timeout, progress)?;
        let vram = sampling.map(|s| s.finish());
        let mut outcome = match reply {
            Reply::Measured(measurement) => Outcome {
                status: Status::Ok,
                error: None,
                measurement: *measurement,
                vram: None,
            },
            Reply::Failed(error) => Outcome::failed(status_of(&error), error.to_string()),
            Reply::Died {
                message,
                out_of_memory: true,
            } => Outcome::failed(Status::Oom, message),
            Reply::Died { message, .. } => Outcome::failed(Status::Crashed, message),
            Reply::TimedOut(message) => Outcome::failed(Status::Timeout, message),
            Reply::Interrupted => return Ok(None),
            Reply::Loaded { .. } | Reply::Fitted(_) => {
                bail!("the worker answered a run with something else")
            }
        };
        outcome.vram = vram.or_else(|| {
            // A simulated GPU (the sim backend) reports its memory itself.
            outcome
                .measurement
                .simulated_vram_bytes
                .map(|bytes| VramUsage {
                    worker_peak_bytes: Some(bytes),
                    device_used_before_bytes: 0,
                    device_used_after_bytes: bytes,
                    samples: 0,
                })
        });
        Ok(Some(outcome))
    }

    /// `n_gpu_layers = "fit"`: llama.cpp's own fit for `point`'s load group
    /// (llama-server's default target, 1 GiB left free per device; the
    /// largest context the group runs), asked of the worker before the
    /// load. The load it chose, the outcome that ends the point, or `None`
    /// when interrupted.
    fn fitted_load(
        &mut self,
        point: &Point,
        progress: &Progress,
    ) -> anyhow::Result<Option<Result<LoadParams, Outcome>>> {
        progress.set_message("llama.cpp's fit is choosing the offload (n_gpu_layers = \"fit\")");
        let ctx = self
            .plan
            .points
            .iter()
            .filter(|p| p.load_group == point.load_group)
            .max_by_key(|p| p.ctx.n_ctx)
            .map_or_else(|| point.ctx.clone(), |p| p.ctx.clone());
        let request = Request::LlamaFit {
            model: self.plan.model_path.clone(),
            ctx,
            request: FitRequest {
                target: FitTarget::Margin(LLAMA_SERVER_FIT_MARGIN),
                n_ctx_min: 4096,
            },
        };
        let timeout = Duration::from_secs_f64(self.plan.measure.load_timeout_s);
        let during = |m: String| format!("during llama.cpp's fit: {m}");
        Ok(Some(match self.exchange(&request, timeout, progress)? {
            // A "fit" point's n_gpu_layers is the model's every layer.
            Reply::Fitted(fit) => match fit.load_params(point.load.n_gpu_layers, point.load.use_mmap) {
                Some(load) => {
                    let load = LoadParams { fit: true, ..load };
                    self.fitted = Some((point.load_group, load.clone(), fit));
                    Ok(load)
                }
                None => Err(Outcome::failed(
                    Status::Failed,
                    format!(
                        "llama.cpp's fit split the layers over several devices (tensor split {:?}), which lmtune's load parameters cannot say yet; give n_gpu_layers numbers",
                        fit.tensor_split
                    ),
                )),
            },
            Reply::Failed(e) => Err(Outcome::failed(status_of(&e), during(e.to_string()))),
            Reply::Died { message, .. } => {
                Err(Outcome::failed(Status::Crashed, during(message)))
            }
            Reply::TimedOut(m) => Err(Outcome::failed(Status::Timeout, during(m))),
            Reply::Interrupted => return Ok(None),
            Reply::Loaded { .. } | Reply::Measured(_) => {
                bail!("the worker answered a fit with something else")
            }
        }))
    }

    /// `point` with the load its group was loaded with: a "fit" point's
    /// is llama.cpp's choice once the fit has run.
    fn as_loaded(&self, point: &Point) -> Point {
        match &self.fitted {
            Some((group, load, _)) if point.load.fit && *group == point.load_group => Point {
                load: load.clone(),
                ..point.clone()
            },
            _ => point.clone(),
        }
    }

    /// Sends one request and waits for its final answer. A dead, hung or
    /// interrupted worker is an answer too: it is killed and reaped here,
    /// and the next point starts a new one.
    fn exchange(
        &mut self,
        request: &Request,
        timeout: Duration,
        progress: &Progress,
    ) -> anyhow::Result<Reply> {
        let deadline = Instant::now() + timeout;
        let worker = self.worker.as_mut().expect("worker started");
        // A write error means the worker is gone; its stream ends too.
        let _ = worker.send(request);
        loop {
            let wait = worker.next_before(deadline, &INTERRUPTED);
            let reply = match wait {
                Wait::Event(Event::Response(Response::Progress { rep })) => {
                    progress.set_rep(rep, self.plan.measure.repetitions.max());
                    continue;
                }
                Wait::Event(Event::Response(Response::Loaded { load_ms, .. })) => {
                    return Ok(Reply::Loaded { load_ms })
                }
                Wait::Event(Event::Response(Response::Done { measurement })) => {
                    return Ok(Reply::Measured(measurement))
                }
                Wait::Event(Event::Response(Response::Error { error })) => {
                    return Ok(Reply::Failed(error))
                }
                Wait::Event(Event::Response(Response::Hello { .. })) => {
                    bail!("the worker said hello twice")
                }
                Wait::Event(Event::Response(Response::LlamaFit { fit })) => {
                    return Ok(Reply::Fitted(fit))
                }
                Wait::Event(Event::Response(Response::DryRun { .. })) => {
                    bail!("the worker answered a dry run nobody asked for")
                }
                Wait::Event(Event::Exited) => {
                    let death = worker.death();
                    Reply::Died {
                        message: format!(
                            "worker {}; last stderr lines:\n{}",
                            death.description,
                            death.stderr_tail.join("\n")
                        ),
                        out_of_memory: death.out_of_memory,
                    }
                }
                Wait::TimedOut => {
                    let death = worker.kill();
                    Reply::TimedOut(format!(
                        "no answer within {:.0} s; the worker was killed; last stderr lines:\n{}",
                        timeout.as_secs_f64(),
                        death.stderr_tail.join("\n")
                    ))
                }
                Wait::Interrupted => {
                    worker.kill();
                    Reply::Interrupted
                }
            };
            self.worker = None;
            self.loaded_group = None;
            return Ok(reply);
        }
    }

    fn record(
        &self,
        point: &Point,
        outcome: Outcome,
        started_at: String,
        duration_s: f64,
    ) -> Record {
        let mut m = outcome.measurement;
        let point = &self.as_loaded(point);
        if let Some((_, _, fit)) = self.fitted.as_ref().filter(|f| f.0 == point.load_group) {
            m.llama_fit = Some(fit.clone());
        }
        let ok = outcome.status == Status::Ok;
        let loaded = self.loaded_group == Some(point.load_group);
        Record {
            schema_version: RESULTS_SCHEMA_VERSION,
            run_id: self.run_id.clone(),
            scenario: self.plan.scenario_name.clone(),
            scenario_sha256: Some(self.plan.scenario_sha256.clone()),
            shard: self.plan.shard,
            point_index: point.index,
            load_group: point.load_group,
            status: outcome.status,
            error: outcome.error,
            backend: self.plan.backend.name().to_string(),
            model: self.fingerprint.model.file_name.clone(),
            load: point.load.clone(),
            ctx: point.ctx.clone(),
            test: point.test.label(),
            workload: point.test,
            warmup: self.plan.measure.warmup,
            repetitions: m.samples_ns.len(),
            tokens_per_s: if ok { Summary::of(&m.samples_ts) } else { None },
            backend_perf_tokens_per_s: Summary::of(&m.backend_perf_ts),
            outliers: outliers(&m.samples_ts),
            model_load_seq: if loaded { self.load_seq } else { 0 },
            model_load_ms: if loaded { self.load_ms } else { 0.0 },
            started_at,
            duration_s,
            vram: outcome.vram,
            prediction: self.anatomy.as_ref().map(|a| {
                let mut throughput = self.throughput;
                if let Some(bw) = self.fingerprint.host_bandwidth_at(point.ctx.threads) {
                    throughput.cpu_bandwidth_gb_per_s = bw;
                }
                predict_point(
                    a,
                    point,
                    self.fingerprint.backend_devices.iter().any(|d| d.is_gpu()),
                    &throughput,
                    &self.cpu_backend,
                )
            }),
            measurement: m,
            fingerprint: self.fingerprint.clone(),
        }
    }
}

impl Outcome {
    fn failed(status: Status, message: String) -> Outcome {
        Outcome {
            status,
            error: Some(message),
            measurement: Measurement::default(),
            vram: None,
        }
    }
}

fn status_of(error: &BackendError) -> Status {
    match error {
        BackendError::LoadFailed { .. } => Status::LoadFailed,
        BackendError::OutOfMemory { .. } => Status::Oom,
        BackendError::ServerDied { .. } => Status::Crashed,
        BackendError::TimedOut { .. } => Status::Timeout,
        BackendError::PointFailed { .. }
        | BackendError::Setup { .. }
        | BackendError::NotLoaded
        | BackendError::NotCompiled(_) => Status::Failed,
    }
}
