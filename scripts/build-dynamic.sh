#!/usr/bin/env bash
# Builds lmtune with llama.cpp as shared libraries (--features dynamic-link)
# and lays it out so that it runs anywhere: the one lmtune that can load a GPU
# backend library at run time (scripts/build-ggml-backend.sh), since such a
# library links libggml-base.so and must find the very one the process runs.
# Prints DIR on stdout.
#
#   DIR/bin/lmtune, DIR/lib/lib*.so.N   the binary and its llama.cpp libraries
#   DIR/lmtune                          a wrapper that sets LD_LIBRARY_PATH
#                                       (the sweep's workers inherit it)
#
#   scripts/build-dynamic.sh [DIR]      # default: target/dynamic-link
#
# Environment:
#   LMTUNE_DYNAMIC_TARGET_DIR   cargo's target dir (default: target, shared
#                               with the default build: only llama.cpp and the
#                               crates that link it compile again)
#   LMTUNE_DYNAMIC_CPU          a -C target-cpu (default: none, cargo's default)
#   LMTUNE_DYNAMIC_FALLBACK=1   also copy the system libraries it uses into
#                               DIR/lib/fallback, used only where a machine
#                               lacks them (scripts/gpu-bundle.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
D="${1:-target/dynamic-link}"
TARGET="${LMTUNE_DYNAMIC_TARGET_DIR:-target}"
log() { printf '==> %s\n' "$*" >&2; }

# RUSTFLAGS is left alone unless a CPU is asked for: a change would rebuild
# every crate, not just those that link llama.cpp.
if [ -n "${LMTUNE_DYNAMIC_CPU:-}" ]; then
  export RUSTFLAGS="${RUSTFLAGS:-} -C target-cpu=$LMTUNE_DYNAMIC_CPU"
fi
log "building lmtune --features dynamic-link${LMTUNE_DYNAMIC_CPU:+ for $LMTUNE_DYNAMIC_CPU} in $TARGET"
# It is copied out at once, from the path cargo reports.
mkdir -p "$TARGET"
# cargo puts this binary where the default build's is ($TARGET/release/lmtune):
# that one is put back afterwards (or this one removed, as it cannot run
# from there without its libraries).
default_bin="$TARGET/release/lmtune"
had_default=""
if [ -f "$default_bin" ] && ! ldd "$default_bin" 2>/dev/null | grep -q 'libllama'; then
  had_default=1
fi
CARGO_TARGET_DIR="$TARGET" cargo build --release --locked -p lmtune --features dynamic-link --message-format=json-render-diagnostics >"$TARGET/dynamic-link-build.json"
exe="$(grep '"executable":"' "$TARGET/dynamic-link-build.json" | grep '"name":"lmtune"' | tail -n 1 |
  sed 's/.*"executable":"\([^"]*\)".*/\1/')"
[ -n "$exe" ] && [ -f "$exe" ] || { echo "error: cargo reported no lmtune executable" >&2; exit 1; }

rm -rf "$D"
mkdir -p "$D/bin" "$D/lib"
cp "$exe" "$D/bin/lmtune"
strip "$D/bin/lmtune" 2>/dev/null || true
# llama-cpp-sys-2 leaves dangling links next to the binary; the real
# libraries are in the output of the build script this build ran.
out_dir="$(grep '"reason":"build-script-executed"' "$TARGET/dynamic-link-build.json" | grep 'llama-cpp-sys-2' |
  tail -n 1 | sed 's/.*"out_dir":"\([^"]*\)".*/\1/')"
libllama="$(find "$out_dir" -name 'libllama.so.[0-9]' 2>/dev/null | head -n 1 || true)"
[ -n "$libllama" ] || { echo "error: no libllama.so in llama-cpp-sys-2's build output ($out_dir)" >&2; exit 1; }
# Only the names the loader asks for (the sonames, lib*.so.N); libllama-common
# (llama.cpp's common_fit_params, for plan --llama-fit and n_gpu_layers =
# "fit") links OpenSSL, which the fallback below copies where asked.
for f in "$(dirname "$libllama")"/lib*.so.[0-9]; do
  cp -L "$f" "$D/lib/$(basename "$f")"
done
if [ -n "${LMTUNE_DYNAMIC_FALLBACK:-}" ]; then
  # Never glibc, libgcc_s or libstdc++, which a GPU machine's own CUDA
  # libraries need in their own versions.
  mkdir -p "$D/lib/fallback"
  LD_LIBRARY_PATH="$D/lib" ldd "$D/bin/lmtune" "$D"/lib/*.so.[0-9] | awk '$3 ~ /^\// {print $3}' | sort -u |
    grep -Ev '/(libc|libm|libdl|libpthread|librt|libgcc_s|libstdc\+\+|ld-linux[^/]*)\.so' |
    grep -v "^$(cd "$D/lib" && pwd)/" | while read -r f; do cp -L "$f" "$D/lib/fallback/"; done
fi
strip --strip-unneeded "$D"/lib/*.so* 2>/dev/null || true
[ -d "$D/lib/fallback" ] && { strip --strip-unneeded "$D"/lib/fallback/*.so* 2>/dev/null || true; }
cat >"$D/lmtune" <<'EOF'
#!/bin/sh
# lmtune with its llama.cpp shared libraries (the workers inherit the path);
# lib/fallback only for system libraries this machine lacks.
here="$(cd "$(dirname "$0")" && pwd)"
path="$here/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
if [ -d "$here/lib/fallback" ] && LD_LIBRARY_PATH="$path" ldd "$here/bin/lmtune" | grep -q 'not found'; then
  path="$path:$here/lib/fallback"
fi
LD_LIBRARY_PATH="$path" exec "$here/bin/lmtune" "$@"
EOF
chmod +x "$D/lmtune"
# Every library the binary needs must be here or on the system.
if LD_LIBRARY_PATH="$D/lib" ldd "$D/bin/lmtune" | grep -q 'not found'; then
  LD_LIBRARY_PATH="$D/lib" ldd "$D/bin/lmtune" | grep 'not found' >&2
  echo "error: the dynamic-link lmtune misses the libraries above" >&2
  exit 1
fi
"$D/lmtune" --version >&2
if [ -n "$had_default" ] && [ -z "${LMTUNE_DYNAMIC_CPU:-}" ]; then
  CARGO_TARGET_DIR="$TARGET" cargo build --release --locked -p lmtune >&2
else
  rm -f "$default_bin"
fi
# An absolute path: callers (the tests) run elsewhere.
cd "$D" && pwd
