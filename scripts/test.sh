#!/usr/bin/env bash
# The test command (README command 2, and what CI runs): sets up a fresh
# machine (packages + test model, see scripts/setup.sh), then runs every test
# in the release profile, so llama.cpp is compiled once for both.
set -euo pipefail
cd "$(dirname "$0")/.."
LMTUNE_SKIP_BUILD=1 scripts/setup.sh
cargo test --release --locked --workspace "$@"
