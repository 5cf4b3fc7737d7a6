#!/usr/bin/env bash
# Builds llama.cpp's own `llama-bench` from the very llama.cpp source lmtune
# links (the tree the crate llama-cpp-sys-2 vendors, at the version pinned in
# Cargo.lock), with the build options llama-cpp-sys-2 uses for lmtune (CMake
# Release, static, GGML_NATIVE, OpenMP), for the side-by-side test
# (crates/lmtune/tests/llama_bench_parity.rs). Prints the binary's path.
#
# The crate strips llama-bench's two source files from its copy of the tree,
# so they come from the llama-cpp-python sdist on PyPI (sha256 pinned; the
# same archive scripts/build-llama-server.sh uses), whose llama.cpp differs
# from the crate's only in two version macros of llama.h. Everything else —
# ggml, llama, common — is the crate's.
#
#   scripts/build-llama-bench.sh            # build once, then print the cached path
#   LMTUNE_LLAMA_BENCH=/path/llama-bench    # use your own binary (printed as is)
#
# Cached in ${LMTUNE_CACHE_DIR:-$HOME/.cache/lmtune}/llama-bench/<crate version>-<cpu>/.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -n "${LMTUNE_LLAMA_BENCH:-}" ]; then
  if [ ! -x "$LMTUNE_LLAMA_BENCH" ]; then
    echo "error: LMTUNE_LLAMA_BENCH=$LMTUNE_LLAMA_BENCH is not an executable file" >&2
    exit 1
  fi
  echo "$LMTUNE_LLAMA_BENCH"
  exit 0
fi

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# The crate version lmtune links, from Cargo.lock.
version="$(awk '/^name = "llama-cpp-sys-2"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)"
[ -n "$version" ] || { echo "error: llama-cpp-sys-2 is not in Cargo.lock" >&2; exit 1; }
cpu_key="$(grep -m1 '^flags' /proc/cpuinfo | sha256sum | cut -c1-12)"
cache="${LMTUNE_CACHE_DIR:-$HOME/.cache/lmtune}/llama-bench/${version}-${cpu_key}"
bin="$cache/llama-bench"
if [ -x "$bin" ] && "$bin" --help >/dev/null 2>&1; then
  echo "$bin"
  exit 0
fi
command -v cmake >/dev/null 2>&1 || { echo "error: cmake is missing (run scripts/setup.sh)" >&2; exit 1; }
command -v c++ >/dev/null 2>&1 || { echo "error: no C++ compiler (apt-get install g++)" >&2; exit 1; }

# 1. The crate's llama.cpp tree (cargo fetch puts it in the registry).
export PATH="$HOME/.cargo/bin:$PATH"
cargo fetch --locked >/dev/null 2>&1 || true
crate_src=""
for d in "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/llama-cpp-sys-2-"$version"/llama.cpp; do
  [ -f "$d/include/llama.h" ] && crate_src="$d"
done
[ -n "$crate_src" ] || { echo "error: the source of llama-cpp-sys-2 $version is not in the cargo registry (run: cargo fetch --locked)" >&2; exit 1; }

mkdir -p "$cache"
work="$cache/src"
rm -rf "$work"
mkdir -p "$work"
cp -r "$crate_src" "$work/llama.cpp"
tree="$work/llama.cpp"

# 2. llama-bench's sources (tools/llama-bench: CMakeLists.txt, llama-bench.cpp, main.cpp).
PKG_VERSION="0.3.36"
SDIST="llama_cpp_python-${PKG_VERSION}.tar.gz"
SHA256="832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
log "fetching llama-bench's source (llama-cpp-python==$PKG_VERSION sdist, PyPI)"
python3 -m pip download --quiet --no-deps --no-binary :all: --dest "$work" "llama-cpp-python==$PKG_VERSION"
if ! echo "$SHA256  $work/$SDIST" | sha256sum -c --status; then
  echo "error: $SDIST does not have the expected sha256 $SHA256" >&2
  exit 1
fi
tar xzf "$work/$SDIST" -C "$work" "llama_cpp_python-${PKG_VERSION}/vendor/llama.cpp/tools/llama-bench"
cp "$work/llama_cpp_python-${PKG_VERSION}/vendor/llama.cpp/tools/llama-bench/"{CMakeLists.txt,llama-bench.cpp,main.cpp} "$tree/tools/llama-bench/"
rm -rf "$work/$SDIST" "$work/llama_cpp_python-${PKG_VERSION}"
# Only llama-bench: the crate's tree has no sources for the other tools.
echo 'add_subdirectory(llama-bench)' >"$tree/tools/CMakeLists.txt"

# 3. Build it as llama-cpp-sys-2 builds lmtune's llama.cpp (see its build.rs;
# lmtune's .cargo/config.toml sets target-cpu=native, hence GGML_NATIVE).
jobs="${LMTUNE_BUILD_JOBS:-$(nproc)}"
log "building llama-bench from llama-cpp-sys-2 $version's llama.cpp (CPU, GGML_NATIVE, $jobs jobs; a few minutes the first time)"
start=$(date +%s)
cmake -S "$tree" -B "$cache/build" -DCMAKE_BUILD_TYPE=Release \
  -DBUILD_SHARED_LIBS=OFF -DGGML_NATIVE=ON -DGGML_OPENMP=ON \
  -DLLAMA_BUILD_COMMON=ON -DLLAMA_BUILD_TOOLS=ON \
  -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
  -DLLAMA_BUILD_APP=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF >"$cache/cmake.log" 2>&1 \
  || { tail -30 "$cache/cmake.log" >&2; echo "error: cmake configure failed (full log: $cache/cmake.log)" >&2; exit 1; }
cmake --build "$cache/build" --target llama-bench -j "$jobs" >"$cache/build.log" 2>&1 \
  || { tail -30 "$cache/build.log" >&2; echo "error: llama-bench build failed (full log: $cache/build.log)" >&2; exit 1; }
cp "$cache/build/bin/llama-bench" "$bin.tmp"
mv "$bin.tmp" "$bin"
printf 'llama-bench from llama-cpp-sys-2 %s (llama-bench sources: llama-cpp-python %s); built in %ss with %s jobs\n' \
  "$version" "$PKG_VERSION" "$(($(date +%s) - start))" "$jobs" >"$cache/llama-bench.txt"
rm -rf "$cache/build" "$work"
echo "$bin"
