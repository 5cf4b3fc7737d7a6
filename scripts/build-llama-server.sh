#!/usr/bin/env bash
# Builds llama.cpp's `llama-server` from source (CPU, native SIMD), for the
# `openai` backend's managed mode and its integration tests. Prints the path of
# the binary on stdout.
#
# Model hubs and GitHub are out of reach here, so the llama.cpp source comes
# from the PyPI sdist of llama-cpp-python, which vendors a whole llama.cpp tree
# (tools/server included; the crate llama-cpp-sys-2 strips it). The sdist's
# sha256 is pinned. The build is cached by version and by the CPU's flags (a
# native build must not run on a CPU without them):
#
#   ${LMTUNE_CACHE_DIR:-$HOME/.cache/lmtune}/llama-server/<version>-<cpu>/llama-server
#
#   scripts/build-llama-server.sh          # build once, then print the cached path
#   LMTUNE_LLAMA_SERVER=/path/llama-server  # use your own binary instead (printed as is)
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -n "${LMTUNE_LLAMA_SERVER:-}" ]; then
  if [ ! -x "$LMTUNE_LLAMA_SERVER" ]; then
    echo "error: LMTUNE_LLAMA_SERVER=$LMTUNE_LLAMA_SERVER is not an executable file" >&2
    exit 1
  fi
  echo "$LMTUNE_LLAMA_SERVER"
  exit 0
fi

PKG_VERSION="0.3.36"
SDIST="llama_cpp_python-${PKG_VERSION}.tar.gz"
SHA256="832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"

cpu_key="$(grep -m1 '^flags' /proc/cpuinfo | sha256sum | cut -c1-12)"
cache="${LMTUNE_CACHE_DIR:-$HOME/.cache/lmtune}/llama-server/${PKG_VERSION}-${cpu_key}"
bin="$cache/llama-server"
if [ -x "$bin" ] && "$bin" --version >/dev/null 2>&1; then
  echo "$bin"
  exit 0
fi

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
command -v cmake >/dev/null 2>&1 || { echo "error: cmake is missing (run scripts/setup.sh)" >&2; exit 1; }
command -v c++ >/dev/null 2>&1 || { echo "error: no C++ compiler (apt-get install g++)" >&2; exit 1; }

mkdir -p "$cache"
work="$cache/src"
if [ ! -f "$work/.extracted" ]; then
  rm -rf "$work"
  mkdir -p "$work"
  log "fetching the llama.cpp source (llama-cpp-python==$PKG_VERSION sdist, PyPI)"
  python3 -m pip download --quiet --no-deps --no-binary :all: --dest "$work" "llama-cpp-python==$PKG_VERSION"
  if ! echo "$SHA256  $work/$SDIST" | sha256sum -c --status; then
    echo "error: $SDIST does not have the expected sha256 $SHA256" >&2
    exit 1
  fi
  tar xzf "$work/$SDIST" -C "$work" "llama_cpp_python-${PKG_VERSION}/vendor/llama.cpp"
  rm -f "$work/$SDIST"
  touch "$work/.extracted"
fi
srcdir="$work/llama_cpp_python-${PKG_VERSION}/vendor/llama.cpp"

jobs="${LMTUNE_BUILD_JOBS:-$(nproc)}"
log "building llama-server (CPU, GGML_NATIVE, $jobs jobs; several minutes the first time)"
cmake -S "$srcdir" -B "$cache/build" -DCMAKE_BUILD_TYPE=Release \
  -DBUILD_SHARED_LIBS=OFF -DGGML_NATIVE=ON \
  -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
  -DLLAMA_BUILD_APP=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF \
  -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF >"$cache/cmake.log" 2>&1 \
  || { tail -30 "$cache/cmake.log" >&2; echo "error: cmake configure failed (full log: $cache/cmake.log)" >&2; exit 1; }
cmake --build "$cache/build" --target llama-server -j "$jobs" >"$cache/build.log" 2>&1 \
  || { tail -30 "$cache/build.log" >&2; echo "error: llama-server build failed (full log: $cache/build.log)" >&2; exit 1; }
cp "$cache/build/bin/llama-server" "$bin.tmp"
mv "$bin.tmp" "$bin"
# The object files are not needed again (the binary is static); keep the cache small.
rm -rf "$cache/build" "$work"
"$bin" --version >&2 || true
echo "$bin"
