#!/usr/bin/env bash
# The test command (README command 2, and what CI runs): sets up a fresh
# machine (packages + test model, see scripts/setup.sh), builds llama-server
# for the server tests (scripts/build-llama-server.sh), the Vulkan backend and
# the dynamic-link lmtune for the offload tests, runs every test in
# the release profile (so llama.cpp is compiled once for both), after fuzzing
# the GGUF reader for a minute. Tests whose parts are built here (the
# Vulkan backend, llama-bench) are compiled in only when their variables are
# set, and are #[ignore]d with the reason otherwise.
#
#   scripts/test.sh                      # everything
#   LMTUNE_FUZZ_SECONDS=0 scripts/test.sh   # skip the fuzzing
#   scripts/test.sh -p lmtune-gguf       # arguments go to cargo test
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
# A real scheduler for tests/slurm.rs (issue 25): Slurm and munge from
# Debian on localhost, as root (~20 s of packages the first time, the test
# ~20 s); elsewhere the test is #[ignore]d with the reason.
if [ "$(id -u)" -eq 0 ]; then
  LMTUNE_SETUP_SLURM=1
  LMTUNE_TEST_SLURM=1
  export LMTUNE_SETUP_SLURM LMTUNE_TEST_SLURM
fi
LMTUNE_SKIP_BUILD=1 LMTUNE_SETUP_VULKAN=1 scripts/setup.sh
# GPU offload without a GPU (tests/vulkan.rs): llama.cpp's Vulkan backend
# (cached after the first build, ~4 min) loaded into the dynamic-link lmtune
# (llama.cpp again, as shared libraries), run on Mesa's llvmpipe. Built
# before `cargo test`, which then puts the default binary back in place.
LMTUNE_TEST_VULKAN_BACKEND="$(scripts/build-ggml-backend.sh vulkan)"
LMTUNE_TEST_DYNAMIC_LMTUNE="$(scripts/build-dynamic.sh)/lmtune"
export LMTUNE_TEST_VULKAN_BACKEND LMTUNE_TEST_DYNAMIC_LMTUNE
# The openai backend's tests run a real llama-server (built from source once,
# then cached in ~/.cache/lmtune; several minutes the first time).
LMTUNE_LLAMA_SERVER="$(scripts/build-llama-server.sh)"
export LMTUNE_LLAMA_SERVER
# llama.cpp's own llama-bench, from the source lmtune links, for the
# side-by-side test (tests/llama_bench_parity.rs; cached, ~4 min the first time).
LMTUNE_LLAMA_BENCH="$(scripts/build-llama-bench.sh)"
export LMTUNE_LLAMA_BENCH
# Fuzz first, so the test runner's summary is the last thing printed.
fuzz_seconds="${LMTUNE_FUZZ_SECONDS:-60}"
if [ "$fuzz_seconds" -gt 0 ]; then
  scripts/fuzz.sh "$fuzz_seconds"
fi
cargo test --release --locked --workspace "$@"
