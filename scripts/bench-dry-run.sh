#!/usr/bin/env bash
# Benchmark of llama.cpp's dry run (README, "Memory from llama.cpp itself"):
# how long a dry run takes per setting, and how far lmtune's analytic memory
# model is from it, over n_ctx 512…32768 × n_ubatch 64…2048 on the test model
# and on a synthetic Gemma 3 270M shape (sliding window). Each point also
# runs for real (one generated token), so the dry run is checked against the
# buffers llama.cpp then allocates.
#
#   scripts/bench-dry-run.sh [OUT]     # default: results/<date>-dry-run-bench
#
# Writes OUT/<model>/results.jsonl and OUT/summary.txt (also printed).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-results/$(date +%F)-vm-dry-run-bench}"
mkdir -p "$out"
bin=target/release/lmtune
[ -x "$bin" ] || cargo build --release --locked
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$bin" synth --like gemma3-270m --quant q8_0 -o "$tmp/gemma3-270m.gguf" >/dev/null 2>&1
model_test="$(pwd)/models/SmolLM2-135M-Instruct.Q4_1.gguf"
# Each model up to the context it was trained on.
for spec in "$model_test:512, 2048, 8192" "$tmp/gemma3-270m.gguf:512, 2048, 8192, 32768"; do
  m="${spec%%:*}"
  ctxs="${spec#*:}"
  name="$(basename "$m" .gguf)"
  cat >"$tmp/$name.toml" <<EOF
name = "dry-run-bench-$name"
[model]
path = "$m"
[sweep]
n_ctx = [$ctxs]
n_ubatch = [64, 512, 2048]
n_batch = 2048
threads = 2
[workload]
n_prompt = [0]
n_gen = [1]
[measure]
repetitions = 1
warmup = 0
EOF
  rm -rf "$out/$name"
  "$bin" run "$tmp/$name.toml" --out "$out/$name" >"$tmp/run.log" 2>&1 ||
    { cat "$tmp/run.log" >&2; exit 1; }
done
python3 - "$out" <<'EOF' | tee "$out/summary.txt"
import json, statistics, sys, pathlib
out = pathlib.Path(sys.argv[1])
print("llama.cpp dry run (no_alloc) vs allocated buffers and vs lmtune's analytic model")
print("measured by scripts/bench-dry-run.sh; n_ctx 512..32768 x n_ubatch 64..2048, CPU")
for d in sorted(p for p in out.iterdir() if p.is_dir()):
    recs = [json.loads(l) for l in open(d / "results.jsonl")]
    ms, worst_alloc, total_err = [], 0.0, []
    for r in recs:
        dry = r["dry_run"]
        assert not dry.get("error"), dry
        ms.append(dry["ms"])
        tot = lambda f: sum(b[f] for b in dry["buffers"])
        dry_total = tot("model_bytes") + tot("context_bytes") + tot("compute_bytes")
        alloc = sum(b["bytes"] for b in r["placement"]["buffers"] if b["kind"] != "output")
        worst_alloc = max(worst_alloc, abs(dry_total - alloc) / alloc)
        analytic = r["prediction"]["host_buffers_bytes"]
        total_err.append((analytic - dry_total) / dry_total)
    print(f"\n{d.name}: {len(recs)} settings")
    print(f"  dry run time per setting: median {statistics.median(ms):.1f} ms, max {max(ms):.1f} ms")
    print(f"  dry run vs buffers llama.cpp allocated: worst {100*worst_alloc:.3f}%")
    print(f"  analytic host buffers vs dry run: median {100*statistics.median(total_err):+.1f}%, "
          f"range {100*min(total_err):+.1f}% .. {100*max(total_err):+.1f}%")
EOF
