#!/usr/bin/env bash
# The GPU runs of the offload work in one call on a lent GPU machine (no Rust,
# no network there), from the bundle scripts/gpu-bundle.sh made here:
#
#   here:   scripts/gpu-bundle.sh                  # .gpu/bundle, ≤ 56 MiB
#   device: run  command="bash scripts/gpu-session.sh"  carry=[".gpu/bundle"]  timeout_s=590
#
# With libggml-cuda.so built here beforehand (CUDA_HOME="$(scripts/cuda-toolkit-pypi.sh)"
# scripts/build-cuda-backend.sh, ~1 CPU-hour; then gpu-bundle.sh packs it into
# .gpu/cuda-lib), a first short call brings it, and the session call must
# follow within the machine's 30 s warm time to find it:
#   device: run  command="bash scripts/gpu-session.sh --unpack-cuda"  carry=[".gpu/cuda-lib"]
#
# In order, each step only if the time left allows it (LMTUNE_GPU_BUDGET_S,
# default 540 s, counted from the start):
#   1. the GPU as nvidia-smi sees it;
#   2. libggml-cuda.so: the bundle's, one built by an earlier call on the same
#      (still warm) machine, or built now from the bundled source (~minutes);
#   3. the models, made there with `lmtune synth` (SmolLM2's shape, 7B, 13B);
#   4. the offload sweeps (gpu-quick-smollm2-shape, gpu-quick-7b) and the
#      tuner under an 8 GiB budget on the 13B model (gpu-budget-8gib), each
#      stopped with SIGINT when its share of the time is up (the results so
#      far stay valid and resumable);
#   5. the results directories into $OUT/gpu-results.tgz (reports and fits
#      are drawn back here, at no device time).
#
# LMTUNE_GPU_REHEARSAL=1 runs the same steps with no GPU and short caps, on
# the CPU (the CUDA library is neither built nor loaded): the check that this
# script works before device time is spent on it.
set -uo pipefail
cd "$(dirname "$0")/.."
START=$(date +%s)
BUDGET="${LMTUNE_GPU_BUDGET_S:-540}"
REHEARSAL="${LMTUNE_GPU_REHEARSAL:-}"
OUT="${OUT:-/tmp/lmtune-gpu-out}"
WORK="${LMTUNE_GPU_WORK:-/tmp/lmtune-gpu}"
B=.gpu/bundle
LM="$B/lmtune"
DAY="$(date +%F)"
TAG="${LMTUNE_GPU_TAG:-h200}"
# Models live outside the checkout; a rehearsal's results too.
MODELS="$WORK/models"
RES=results
[ -n "$REHEARSAL" ] && RES="$WORK/results"
mkdir -p "$OUT" "$WORK" "$MODELS" "$RES"
exec > >(tee -a "$OUT/session.log") 2>&1

left() { echo $(( BUDGET - ($(date +%s) - START) )); }
step() { printf '\n=== [%4ds] %s\n' "$(( $(date +%s) - START ))" "$*"; }
# run_capped SECONDS CMD…: stops CMD with SIGINT (lmtune keeps what it has)
# at the cap or when the budget runs out, whichever is first.
run_capped() {
  local cap=$1; shift
  local l; l=$(left)
  [ "$cap" -gt $(( l - 40 )) ] && cap=$(( l - 40 ))
  if [ "$cap" -lt 20 ]; then echo "skipped (time left: ${l}s): $*"; return 0; fi
  echo "+ (cap ${cap}s) $*"
  timeout -s INT -k 20 "$cap" "$@"
  local code=$?
  echo "exit $code"
  return $code
}

if [ "${1:-}" = "--unpack-cuda" ]; then
  xz -dc .gpu/cuda-lib/libggml-cuda.so.xz >"$WORK/libggml-cuda.so.part" &&
    mv "$WORK/libggml-cuda.so.part" "$WORK/libggml-cuda.so" &&
    cp .gpu/cuda-lib/libggml-cuda.txt "$WORK/" 2>/dev/null
  ls -la "$WORK"
  exit 0
fi
[ -x "$LM" ] || { echo "error: no $LM; make the bundle here first (scripts/gpu-bundle.sh) and carry .gpu/bundle"; exit 2; }

step "1. machine"
if [ -z "$REHEARSAL" ]; then
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem,pcie.link.gen.max,pcie.link.width.max --format=csv
  { command -v nvcc || ls /usr/local/cuda/bin/nvcc; } 2>/dev/null && { nvcc --version 2>/dev/null || /usr/local/cuda/bin/nvcc --version; } | tail -n 2
else
  echo "rehearsal: no GPU is used"
fi
nproc; free -g | head -n 2; ldd --version | head -n 1
"$LM" --version || { echo "error: the bundled lmtune does not start on this machine (see above; scripts/gpu-bundle.sh prints the glibc it needs)"; exit 1; }

step "2. the CUDA backend library"
cuda_lib=""
if [ -z "$REHEARSAL" ]; then
  for c in "$B/lib/libggml-cuda.so" "$WORK/libggml-cuda.so"; do
    [ -f "$c" ] && { cuda_lib="$c"; break; }
  done
  if [ -z "$cuda_lib" ]; then
    if ! command -v nvcc >/dev/null && [ -z "${CUDA_HOME:-}" ] && [ -x /usr/local/cuda/bin/nvcc ]; then
      export CUDA_HOME=/usr/local/cuda
    fi
    tar xzf "$B/llama.cpp.tgz" -C "$WORK"
    t0=$(date +%s)
    LLAMA_CPP_SRC="$WORK/llama.cpp" JOBS="$(nproc)" scripts/build-cuda-backend.sh "$WORK" 2>&1 | tail -n 5
    echo "built in $(( $(date +%s) - t0 )) s"
    cuda_lib="$WORK/libggml-cuda.so"
    # Bring it back (compressed) so a later call can carry it in the bundle.
    gzip -c "$cuda_lib" >"$OUT/libggml-cuda.so.gz" && cp "$WORK/libggml-cuda.txt" "$OUT/" 2>/dev/null
  fi
  [ -f "$cuda_lib" ] || { echo "error: no libggml-cuda.so; stopping"; exit 1; }
  # Its CUDA runtime and cuBLAS (and the driver's libcuda) must be on the
  # library path: the toolkit's folders, else the pip wheels PyTorch brought.
  for soname in libcudart.so.13 libcublas.so.13 libcublasLt.so.13 libcuda.so.1; do
    /sbin/ldconfig -p | grep -q "$soname" && continue
    found="$(find /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/local/nvidia/lib64 \
      /usr/lib/x86_64-linux-gnu "$(python3 -c 'import site; print(site.getsitepackages()[0])' 2>/dev/null)/nvidia" \
      -name "$soname" 2>/dev/null | head -n 1)"
    if [ -n "$found" ]; then
      export LD_LIBRARY_PATH="$(dirname "$found")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
      echo "$soname: $found"
    else
      echo "warning: $soname not found; loading libggml-cuda.so will say so"
    fi
  done
  ldd "$cuda_lib" | grep -E 'cuda|cublas|ggml|not found'
  export LMTUNE_GGML_BACKENDS="$(cd "$(dirname "$cuda_lib")" && pwd)/$(basename "$cuda_lib")"
  echo "LMTUNE_GGML_BACKENDS=$LMTUNE_GGML_BACKENDS"
fi
"$LM" hw --no-bandwidth 2>&1 | head -n 30

step "3. models"
synth() {
  local out=$1; shift
  [ -f "$out" ] && return 0
  local t0; t0=$(date +%s)
  "$LM" synth --donor "$B/donor.gguf" "$@" -o "$out" && echo "made $out in $(( $(date +%s) - t0 )) s"
}
synth "$MODELS/smollm2-shape-q4_1.gguf" --layers 30 --embd 576 --heads 9 --kv-heads 3 --ff 1536 --ctx-train 8192 --quant q4_1
if [ -z "$REHEARSAL" ]; then
  synth "$MODELS/llama-7b-q4_K.gguf" --like llama-7b --quant q4_K
  [ "$(left)" -gt 300 ] && synth "$MODELS/llama-13b-q4_K.gguf" --like llama-13b --quant q4_K
else
  # A small stand-in for the 7B model, so the rehearsal's sweep is quick.
  synth "$MODELS/llama-7b-q4_K.gguf" --layers 32 --embd 256 --heads 4 --kv-heads 4 --ff 512 --ctx-train 4096 --quant q4_K
  synth "$MODELS/llama-13b-q4_K.gguf" --layers 40 --embd 256 --heads 4 --kv-heads 4 --ff 512 --ctx-train 4096 --quant q4_K
fi

step "4. sweeps"
dirs=()
sweep() {
  local cap=$1 scen=$2 model=$3 dir=$4
  dirs+=("$dir")
  if [ -f "$dir/results.jsonl" ]; then
    run_capped "$cap" "$LM" run "$scen" --model "$model" --resume "$dir"
  else
    run_capped "$cap" "$LM" run "$scen" --model "$model" --out "$dir"
  fi
}
if [ -z "$REHEARSAL" ]; then caps=(90 200 150); else caps=(60 60 40); fi
sweep "${caps[0]}" scenarios/gpu-quick-smollm2-shape.toml "$MODELS/smollm2-shape-q4_1.gguf" "$RES/$DAY-$TAG-gpu-quick-smollm2-shape"
# Exit 2 is an error before any point ran (the backend could not start, e.g.
# the CUDA library did not load): the rest would fail the same way.
if [ $? -eq 2 ]; then
  echo "error: the first sweep could not start (see above); stopping here to spare device time"
  [ -s "${dirs[0]}/results.jsonl" ] || rm -rf "${dirs[0]}"
  exit 1
fi
sweep "${caps[1]}" scenarios/gpu-quick-7b.toml "$MODELS/llama-7b-q4_K.gguf" "$RES/$DAY-$TAG-gpu-quick-7b"
if [ -f "$MODELS/llama-13b-q4_K.gguf" ]; then
  d="$RES/$DAY-$TAG-gpu-budget-8gib-tune-tg"
  dirs+=("$d")
  run_capped "${caps[2]}" "$LM" tune scenarios/gpu-budget-8gib.toml --model "$MODELS/llama-13b-q4_K.gguf" \
    --objective tg --time-budget "$(( caps[2] - 30 ))s" --out "$d"
fi

step "5. pack"
# Reports and fits are drawn afterwards on the machine that made the bundle
# (lmtune report / lmtune fit on these directories): no device time, and no
# fonts needed here.
kept=()
for d in "${dirs[@]}"; do
  [ -s "$d/results.jsonl" ] && kept+=("$d")
done
[ ${#kept[@]} -gt 0 ] && tar czf "$OUT/gpu-results.tgz" "${kept[@]}"
ls -la "$OUT"
step "done"
