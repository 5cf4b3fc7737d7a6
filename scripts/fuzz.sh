#!/usr/bin/env bash
# Fuzzes the GGUF header reader (fuzz target `gguf_header`, see fuzz/) for a
# number of seconds, default 60:
#
#   scripts/fuzz.sh            # 60 s
#   scripts/fuzz.sh 600        # 10 min
#   scripts/fuzz.sh 60 -max_len=16384   # extra arguments go to libFuzzer
#
# Works from a clean clone on the stable toolchain: installs cargo-fuzz when
# missing and sets RUSTC_BOOTSTRAP=1 for the sanitizer flags it needs. Seeds
# come from fuzz/make_seeds.py (plus a 4 KiB prefix of the test model when
# scripts/fetch-model.sh has fetched it). Exits non-zero when the fuzzer finds
# a crash, timeout or out-of-memory input; the input is left in
# fuzz/artifacts/gguf_header/ (reproduce with `RUSTC_BOOTSTRAP=1 cargo fuzz
# run gguf_header fuzz/artifacts/gguf_header/<file>`).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

SECS="${1:-60}"
shift || true
TARGET=gguf_header
CARGO_FUZZ_VERSION="${CARGO_FUZZ_VERSION:-0.13.2}"
CORPUS="fuzz/corpus/$TARGET"
ARTIFACTS="fuzz/artifacts/$TARGET"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

case "$SECS" in
  '' | *[!0-9]*) echo "usage: $0 [SECONDS] [LIBFUZZER_ARGS...]" >&2; exit 2 ;;
esac

if ! cargo fuzz --version >/dev/null 2>&1; then
  log "installing cargo-fuzz $CARGO_FUZZ_VERSION"
  cargo install --locked cargo-fuzz --version "$CARGO_FUZZ_VERSION"
fi

# cargo-fuzz passes -Zsanitizer=address etc.; let the stable compiler accept them.
export RUSTC_BOOTSTRAP=1

log "generating seeds in $CORPUS"
python3 fuzz/make_seeds.py "$CORPUS"
mkdir -p "$ARTIFACTS"

log "building the fuzz target"
cargo fuzz build "$TARGET"

stamp="$(mktemp)"
trap 'rm -f "$stamp"' EXIT
log "fuzzing $TARGET for ${SECS}s"
status=0
# No -jobs/-workers: they make libFuzzer write fuzz-N.log files into the
# current directory and hide the final statistics.
# libFuzzer prints a line per corpus change; keep them in a log and show the
# summary (the whole log on failure).
fuzz_log="fuzz/last-run.log"
cargo fuzz run "$TARGET" "$CORPUS" -- \
  -max_total_time="$SECS" \
  -rss_limit_mb=2048 \
  -timeout=10 \
  -print_final_stats=1 \
  "$@" > "$fuzz_log" 2>&1 || status=$?
if [ "$status" -ne 0 ]; then cat "$fuzz_log" >&2; else grep -E '^(stat::|Done|#[0-9]+\s+DONE)' "$fuzz_log" >&2 || tail -n 15 "$fuzz_log" >&2; fi

found="$(find "$ARTIFACTS" -type f -newer "$stamp" | sort)"
if [ "$status" -ne 0 ] || [ -n "$found" ]; then
  echo "fuzz: FAILED (exit status $status)" >&2
  [ -n "$found" ] && printf 'fuzz: new artifact %s\n' $found >&2
  exit 1
fi
log "no crash, timeout or OOM in ${SECS}s"
