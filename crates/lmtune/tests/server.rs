//! The `openai` backend against a real OpenAI-compatible server: llama.cpp's
//! `llama-server`, built from source by scripts/build-llama-server.sh (cached),
//! serving the real test model on 127.0.0.1. The faults are real too: the
//! server is killed (SIGKILL) or frozen (SIGSTOP) mid-stream, a port has
//! nothing listening, a "server" never answers.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{lmtune, model_path, read_records, scenario};
use serde_json::Value;

/// The llama-server binary: `LMTUNE_LLAMA_SERVER`, or the cached build
/// (built on first use; scripts/test.sh builds it before the tests).
fn llama_server() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
        let out = Command::new(root.join("scripts/build-llama-server.sh"))
            .stderr(Stdio::inherit())
            .output()
            .expect("run scripts/build-llama-server.sh");
        assert!(
            out.status.success(),
            "scripts/build-llama-server.sh failed; see its output above"
        );
        let path = String::from_utf8(out.stdout).unwrap();
        PathBuf::from(
            path.lines()
                .last()
                .expect("the script prints the path")
                .trim(),
        )
    })
    .clone()
}

/// A managed llama-server command; `alias` marks the process for the tests.
fn managed(alias: &str, extra: &str) -> String {
    format!(
        r#"
[backend]
kind = "openai"
[backend.openai]
command = [{server:?}, "-m", "{{model}}", "--host", "{{host}}", "--port", "{{port}}",
  "-ngl", "{{n_gpu_layers}}", "-c", "{{n_ctx_total}}", "-np", "{{parallel}}",
  "-b", "{{n_batch}}", "-ub", "{{n_ubatch}}", "-t", "{{threads}}", "-tb", "{{threads}}",
  "--no-webui", "--no-warmup", "--alias", "{alias}"]
ready_timeout_s = 60
{extra}
"#,
        server = llama_server().display().to_string()
    )
}

fn run(path: &Path, out: &Path) -> std::process::Output {
    lmtune()
        .arg("run")
        .arg(path)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// Pids of live server processes (argv[0] is llama-server or python3, not
/// the lmtune worker, whose settings hold the marker too) whose command
/// line contains `marker`.
fn pids_with(marker: &str) -> Vec<i32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let argv0 = cmdline.split(|&b| b == 0).next().unwrap_or_default();
        let argv0 = String::from_utf8_lossy(argv0);
        if !(argv0.ends_with("llama-server") || argv0.ends_with("python3")) {
            continue;
        }
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let zombie = state
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'));
        if cmdline.contains(marker) && !zombie {
            pids.push(pid);
        }
    }
    pids
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn managed_server_sweep_records_latency_tokens_and_server_memory() {
    let dir = tempfile::tempdir().unwrap();
    let alias = format!("lmtune-test-sweep-{}", std::process::id());
    let body = format!(
        "{}\n[sweep]\nn_ctx = 256\nn_batch = 64\nn_ubatch = 64\nthreads = 1\nconcurrency = [1, 2]\n\
         [workload]\nn_prompt = [32]\nn_gen = [16]\n[measure]\nrepetitions = 2\nwarmup = 1\n",
        managed(&alias, "")
    );
    let path = scenario(dir.path(), "server.toml", &body);
    let out = dir.path().join("out");
    let o = run(&path, &out);
    assert!(o.status.success(), "{}", stderr(&o));
    let records = read_records(&out);
    assert_eq!(records.len(), 4);
    // One server per concurrency (it sets the slots): two load groups.
    let groups: Vec<u64> = records
        .iter()
        .map(|r| r["load_group"].as_u64().unwrap())
        .collect();
    assert_eq!(groups, [0, 0, 1, 1]);
    let mut server_pids = Vec::new();
    for r in &records {
        assert_eq!(r["status"], "ok", "{r}");
        assert_eq!(r["backend"], "openai");
        let s = &r["server"];
        assert_eq!(s["mode"], "managed");
        assert_eq!(s["prompt_mode"], "tokens");
        assert!(s["base_url"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1:"));
        let clients = r["concurrency"].as_u64().unwrap_or(1);
        assert_eq!(s["concurrency"].as_u64().unwrap(), clients);
        let requests = s["requests"].as_array().unwrap();
        assert_eq!(
            requests.len() as u64,
            2 * clients,
            "every timed request is kept"
        );
        // The server's process tree holds the model: its RSS, not the worker's.
        let peak = r["rss_peak_bytes"].as_u64().unwrap();
        assert!(
            peak > 60 << 20,
            "server peak RSS {peak} is too small to hold the model"
        );
        server_pids.push(s["server_pid"].as_u64().unwrap());
        let tg = r["n_gen"].as_u64().unwrap() > 0;
        for q in requests {
            assert!(f(&q["ttft_ms"]) > 0.0 && f(&q["ttft_ms"]) <= f(&q["total_ms"]));
            if tg {
                // ignore_eos: exactly n_gen tokens, one streamed event each.
                assert_eq!(q["gen_tokens"], 16, "{q}");
                assert_eq!(q["chunks"], 16, "{q}");
                assert!(f(&q["gen_tps"]) > 0.0);
            } else {
                assert_eq!(q["prompt_tokens"], 32, "{q}");
                assert_eq!(q["server_prompt_n"], 32, "no prompt cache reuse: {q}");
            }
        }
        if tg {
            assert!(f(&s["itl_ms_p50"]) > 0.0);
            assert!(f(&s["itl_ms_p99"]) >= f(&s["itl_ms_p50"]));
        }
        // One client: the server's own timings next to the wall-clock figure.
        // Wall time includes HTTP and (pp) one sampled token, so it is slower,
        // but not by much on loopback.
        if clients == 1 {
            let wall = r["samples_ts"].as_array().unwrap();
            let own = r["backend_perf_ts"].as_array().unwrap();
            assert_eq!(wall.len(), own.len());
            for (w, s) in wall.iter().zip(own) {
                let ratio = f(w) / f(s);
                assert!(
                    (0.5..=1.05).contains(&ratio),
                    "wall {w} vs server {s} t/s: ratio {ratio}"
                );
            }
        } else {
            // Aggregate over two clients: both clients' tokens count, so it
            // is at least what one client saw on average.
            let agg = f(&r["tokens_per_s"]["mean"]);
            let per_client = if tg {
                f(&s["per_client_gen_tps"]["mean"])
            } else {
                let pp: Vec<f64> = requests
                    .iter()
                    .map(|q| f(&q["prompt_tokens"]) / (f(&q["ttft_ms"]) / 1e3))
                    .collect();
                pp.iter().sum::<f64>() / pp.len() as f64
            };
            assert!(
                agg >= per_client * 0.9,
                "aggregate {agg} < per client {per_client}"
            );
        }
    }
    assert_ne!(
        server_pids[0], server_pids[2],
        "a new server per concurrency"
    );
    // Every server was stopped when the sweep ended.
    assert!(
        pids_with(&alias).is_empty(),
        "a llama-server was left running"
    );
}

/// Starts llama-server on `port` (an external server, as a user runs it).
fn start_external(port: u16, args: &[&str]) -> Child {
    let mut child = Command::new(llama_server())
        .args(["-m", &model_path().display().to_string()])
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["-c", "256", "-t", "1", "--no-webui", "--no-warmup"])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Ok(r)) = std::panic::catch_unwind(|| {
            std::net::TcpStream::connect(("127.0.0.1", port)).map(|mut s| {
                use std::io::{Read, Write};
                let _ = s.write_all(b"GET /health HTTP/1.0\r\n\r\n");
                let mut buf = String::new();
                let _ = s.read_to_string(&mut buf);
                buf
            })
        }) {
            if r.starts_with("HTTP/1.1 200") || r.starts_with("HTTP/1.0 200") {
                return child;
            }
        }
        assert!(Instant::now() < deadline, "llama-server did not start");
        assert!(child.try_wait().unwrap().is_none(), "llama-server exited");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn external_server_with_api_key_and_a_port_where_nothing_listens() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let key = "lmtune-secret-key-4711";
    let mut server = start_external(port, &["--api-key", key]);

    let body = format!(
        "[backend]\nkind = \"openai\"\n[backend.openai]\nbase_url = \"http://127.0.0.1:{port}/v1\"\n\
         api_key_env = \"LMTUNE_TEST_API_KEY\"\n[workload]\nn_prompt = [16]\nn_gen = [8]\n\
         [measure]\nrepetitions = 2\nwarmup = 0\n"
    );
    let path = scenario(dir.path(), "external.toml", &body);
    let out = dir.path().join("out");
    let o = lmtune()
        .env("LMTUNE_TEST_API_KEY", key)
        .arg("run")
        .arg(&path)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let records = read_records(&out);
    assert_eq!(records.len(), 2);
    for r in &records {
        assert_eq!(r["status"], "ok", "{r}");
        assert_eq!(r["server"]["mode"], "external");
        assert!(r["server"]["server_pid"].is_null());
    }
    // The key is sent, never stored.
    for entry in std::fs::read_dir(&out).unwrap().flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        assert!(
            !text.contains(key),
            "{} holds the API key",
            entry.path().display()
        );
    }
    assert!(!stderr(&o).contains(key));

    // A wrong key: the server's 401 is the reason, per point.
    let wrong = dir.path().join("wrong");
    let o = lmtune()
        .env("LMTUNE_TEST_API_KEY", "not-the-key")
        .arg("run")
        .arg(&path)
        .arg("--out")
        .arg(&wrong)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let r = &read_records(&wrong)[0];
    assert_eq!(r["status"], "load_failed");
    assert!(r["error"].as_str().unwrap().contains("HTTP 401"), "{r}");
    let _ = server.kill();
    let _ = server.wait();

    // Nothing listens on the port any more: a clear reason, fast, no hang.
    let gone = dir.path().join("gone");
    let start = Instant::now();
    let o = lmtune()
        .env("LMTUNE_TEST_API_KEY", key)
        .arg("run")
        .arg(&path)
        .arg("--out")
        .arg(&gone)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(start.elapsed() < Duration::from_secs(30));
    let records = read_records(&gone);
    assert_eq!(records.len(), 2, "both points are recorded");
    assert_eq!(records[0]["status"], "load_failed");
    let error = records[0]["error"].as_str().unwrap();
    assert!(
        error.contains("cannot reach the server") && error.contains("refused"),
        "{error}"
    );
    assert_eq!(records[1]["status"], "skipped");
}

/// A two-point managed sweep whose first point streams for several seconds;
/// `fault` is applied to the server once that point is under way.
fn fault_mid_stream(signal: i32, stall_timeout_s: u32) -> (Vec<Value>, Duration, String) {
    let dir = tempfile::tempdir().unwrap();
    let alias = format!("lmtune-test-fault-{signal}-{}", std::process::id());
    let body = format!(
        "{}\n[sweep]\nn_ctx = 2048\nn_batch = 64\nn_ubatch = 64\nthreads = 1\n[workload]\nn_prompt = [0]\nn_gen = [1500, 8]\n\
         [measure]\nrepetitions = 1\nwarmup = 0\n",
        managed(&alias, &format!("stall_timeout_s = {stall_timeout_s}"))
    );
    let path = scenario(dir.path(), "fault.toml", &body);
    let out = dir.path().join("out");
    let start = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_lmtune"))
        .arg("run")
        .arg(&path)
        .arg("--out")
        .arg(&out)
        .env(
            "XDG_CACHE_HOME",
            std::env::temp_dir().join("lmtune-test-cache"),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the server, then for the long stream to be under way.
    let deadline = Instant::now() + Duration::from_secs(60);
    let pid = loop {
        if let Some(&pid) = pids_with(&alias).first() {
            break pid;
        }
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            use std::io::Read;
            let _ = child.stderr.take().unwrap().read_to_string(&mut err);
            panic!("lmtune ended ({status}) before the server started: {err}");
        }
        assert!(
            Instant::now() < deadline,
            "the managed server never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    std::thread::sleep(Duration::from_secs(3));
    // SAFETY: signalling the test's own grandchild.
    unsafe { libc::kill(pid, signal) };
    let output = child.wait_with_output().unwrap();
    let elapsed = start.elapsed();
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        pids_with(&alias).is_empty(),
        "a llama-server was left running"
    );
    (read_records(&out), elapsed, stderr(&output))
}

#[test]
fn server_killed_mid_stream_is_a_crash_and_the_sweep_goes_on() {
    let (records, _, err) = fault_mid_stream(libc::SIGKILL, 30);
    assert_eq!(records.len(), 2, "{err}");
    let error = records[0]["error"].as_str().unwrap();
    assert_eq!(records[0]["status"], "crashed", "{error}");
    assert!(
        error.contains("the server died") && error.contains("SIGKILL"),
        "{error}"
    );
    // The next point started a new server and measured.
    assert_eq!(records[1]["status"], "ok", "{}", records[1]);
    assert_eq!(records[1]["server"]["server_restarts"], 1);
}

#[test]
fn stalled_stream_times_out_within_the_stall_limit() {
    let (records, elapsed, err) = fault_mid_stream(libc::SIGSTOP, 3);
    assert_eq!(records.len(), 2, "{err}");
    let error = records[0]["error"].as_str().unwrap();
    assert_eq!(records[0]["status"], "timeout", "{error}");
    assert!(
        error.contains("stalled") && error.contains("3 s"),
        "{error}"
    );
    assert_eq!(records[1]["status"], "ok", "{}", records[1]);
    assert!(elapsed < Duration::from_secs(90), "took {elapsed:?}");
}

#[test]
fn a_server_that_never_becomes_ready_or_exits_at_start() {
    let dir = tempfile::tempdir().unwrap();
    // A real process that never listens: ready_timeout_s bounds the wait.
    let marker = format!("lmtune-never-ready-{}", std::process::id());
    let body = format!(
        "[backend]\nkind = \"openai\"\n[backend.openai]\n\
         command = [\"python3\", \"-c\", \"import time; time.sleep(120)\", \"{{port}}\", \"{marker}\"]\n\
         ready_timeout_s = 2\n[workload]\nn_prompt = [16]\nn_gen = [8]\n[measure]\nrepetitions = 1\n"
    );
    let path = scenario(dir.path(), "never.toml", &body);
    let out = dir.path().join("out");
    let start = Instant::now();
    let o = run(&path, &out);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "{:?}",
        start.elapsed()
    );
    let records = read_records(&out);
    assert_eq!(records[0]["status"], "timeout");
    assert!(
        records[0]["error"]
            .as_str()
            .unwrap()
            .contains("did not become ready within 2 s"),
        "{}",
        records[0]
    );
    assert_eq!(records[1]["status"], "skipped");
    assert!(
        pids_with(&marker).is_empty(),
        "the unready server was not stopped"
    );

    // llama-server with a model that does not exist exits at once: its own
    // last lines say why.
    let body = format!(
        "[backend]\nkind = \"openai\"\n[backend.openai]\n\
         command = [{:?}, \"-m\", \"/nonexistent/model.gguf\", \"--port\", \"{{port}}\"]\n\
         [workload]\nn_prompt = [16]\n[measure]\nrepetitions = 1\n",
        llama_server().display().to_string()
    );
    let path = scenario(dir.path(), "exits.toml", &body);
    let out = dir.path().join("out2");
    let o = run(&path, &out);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let r = &read_records(&out)[0];
    assert_eq!(r["status"], "load_failed");
    let error = r["error"].as_str().unwrap();
    assert!(error.contains("exited while starting"), "{error}");
    assert!(error.contains("/nonexistent/model.gguf"), "{error}");
}

#[test]
fn bad_server_scenarios_name_the_key_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let server = llama_server().display().to_string();
    let cases: Vec<(String, &str, &str)> = vec![
        ("[backend]\nkind = \"openai\"\n".into(), "`backend.openai`", "base_url"),
        (
            "[backend]\nkind = \"openai\"\n[backend.openai]\nbase_url = \"http://127.0.0.1:1/v1\"\ncommand = [\"x\", \"{port}\"]\n".into(),
            "`backend.openai.command`",
            "keep one",
        ),
        (
            "[backend]\nkind = \"openai\"\n[backend.openai]\nbase_url = \"https://example.com/v1\"\n".into(),
            "`backend.openai.base_url`",
            "http://",
        ),
        (
            format!("[backend]\nkind = \"openai\"\n[backend.openai]\ncommand = [{server:?}, \"-m\", \"{{model}}\"]\n"),
            "`backend.openai.command`",
            "{port}",
        ),
        (
            format!("[backend]\nkind = \"openai\"\n[backend.openai]\ncommand = [{server:?}, \"--port\", \"{{port}}\", \"-t\", \"{{thread}}\"]\n"),
            "`backend.openai.command`",
            "unknown placeholder {thread}",
        ),
        (
            "[backend]\nkind = \"openai\"\n[backend.openai]\nbase_url = \"http://127.0.0.1:1/v1\"\n[sweep]\nthreads = [1, 2]\n".into(),
            "`sweep.threads`",
            "start the server with the value",
        ),
        (
            format!("[backend]\nkind = \"openai\"\n[backend.openai]\ncommand = [{server:?}, \"--port\", \"{{port}}\"]\n[sweep]\nn_batch = [64, 128]\n"),
            "`sweep.n_batch`",
            "{n_batch}",
        ),
        (
            format!("[backend]\nkind = \"openai\"\n[backend.openai]\ncommand = [{server:?}, \"--port\", \"{{port}}\"]\n[sweep]\nconcurrency = [1, 4]\n"),
            "`sweep.concurrency`",
            "{parallel}",
        ),
        (
            "[sweep]\nconcurrency = [2]\n".into(),
            "`sweep.concurrency`",
            "kind = \"openai\"",
        ),
        (
            "[backend]\nkind = \"openai\"\n[backend.openai]\ncommand = [\"no-such-server-lmtune\", \"--port\", \"{port}\"]\n".into(),
            "`backend.openai.command`",
            "scripts/build-llama-server.sh",
        ),
        (
            "[backend]\nkind = \"openai\"\n[backend.openai]\nbase_url = \"http://127.0.0.1:1/v1\"\napi_key_env = \"LMTUNE_UNSET_KEY_VAR\"\n".into(),
            "`backend.openai.api_key_env`",
            "export LMTUNE_UNSET_KEY_VAR",
        ),
        (
            "[backend]\nkind = \"openai\"\n[backend.openai]\nbase_url = \"http://127.0.0.1:1/v1\"\nprompt = \"words\"\n".into(),
            "`backend.openai.prompt`",
            "\"tokens\"",
        ),
    ];
    for (i, (body, key, fix)) in cases.iter().enumerate() {
        let path = scenario(dir.path(), &format!("bad{i}.toml"), body);
        let out = dir.path().join(format!("out{i}"));
        let o = lmtune()
            .env_remove("LMTUNE_UNSET_KEY_VAR")
            .arg("run")
            .arg(&path)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "case {i}: {err}");
        assert!(err.contains(key), "case {i}: no {key} in: {err}");
        assert!(
            err.contains("fix:") && err.contains(fix),
            "case {i}: no {fix:?} in: {err}"
        );
        assert!(!err.contains("panicked"), "case {i}: {err}");
        assert!(!out.exists(), "case {i}: wrote results");
    }
}

#[test]
fn text_prompts_are_calibrated_to_the_token_count() {
    let dir = tempfile::tempdir().unwrap();
    let alias = format!("lmtune-test-text-{}", std::process::id());
    let body = format!(
        "{}\n[sweep]\nn_ctx = 256\nthreads = 1\n[workload]\nn_prompt = [48]\nn_gen = [0]\n\
         [measure]\nrepetitions = 3\nwarmup = 0\n",
        managed(&alias, "prompt = \"text\"")
    );
    let path = scenario(dir.path(), "text.toml", &body);
    let out = dir.path().join("out");
    let o = run(&path, &out);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = &read_records(&out)[0];
    assert_eq!(r["status"], "ok", "{r}");
    let s = &r["server"];
    assert_eq!(s["prompt_mode"], "text");
    assert!(s["token_counts"][0]
        .as_str()
        .unwrap()
        .contains("usage.prompt_tokens"));
    for q in s["requests"].as_array().unwrap() {
        // Calibrated with the server's /tokenize; the count recorded is the server's.
        let n = q["prompt_tokens"].as_u64().unwrap();
        assert!(
            (44..=52).contains(&n),
            "text prompt of {n} tokens for n_prompt = 48: {q}"
        );
        assert_eq!(q["server_prompt_n"].as_u64().unwrap(), n, "{q}");
    }
    // t/s counts the tokens actually sent.
    let q = &s["requests"][0];
    let expected = f(&q["prompt_tokens"]) / (f(&r["samples_ns"][0]) / 1e9);
    let got = f(&r["samples_ts"][0]);
    assert!((got / expected - 1.0).abs() < 1e-6, "{got} vs {expected}");
}
