#!/usr/bin/env bash
# Builds llama.cpp's CUDA backend as a loadable library (libggml-cuda.so) from
# the very llama.cpp source the pinned llama-cpp-sys-2 crate vendors, so that
# `lmtune run --ggml-backend PATH` (or LMTUNE_GGML_BACKENDS) can load it at run
# time — the way LM Studio ships its CUDA "runtime packs". ggml refuses a
# backend built from another version ("incompatible API version").
#
#   scripts/build-cuda-backend.sh [OUT_DIR]     # default: .gpu/
#
# Environment:
#   CUDA_HOME                  toolkit root (default: nvcc on PATH); a toolkit
#                              from PyPI works: CUDA_HOME="$(scripts/cuda-toolkit-pypi.sh)"
#   CMAKE_CUDA_ARCHITECTURES   default 90 (H100/H200); e.g. "86;89" for RTX 30/40
#   LLAMA_CPP_SRC              the vendored source, where cargo's registry is absent
#                              (the GPU machine: scripts/gpu-bundle.sh packs it)
#   JOBS                       parallel compile jobs (default: all cores)
#
# The library needs libggml-base.so from the same source at run time, which
# only the dynamic-link build of lmtune has (scripts/gpu-bundle.sh): a
# statically linked lmtune cannot host it. Needs cmake, a C++ compiler and
# nvcc; no GPU (it compiles; the GPU is needed to run it). From scratch for
# one architecture: ~25 min on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-.gpu}"
SYS_VERSION="0.1.160"
ARCHS="${CMAKE_CUDA_ARCHITECTURES:-90}"
JOBS="${JOBS:-$(nproc)}"

src="${LLAMA_CPP_SRC:-}"
if [ -z "$src" ]; then
  src="$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/llama-cpp-sys-2-"$SYS_VERSION"/llama.cpp 2>/dev/null | head -n 1 || true)"
fi
if [ -z "$src" ] || [ ! -f "$src/CMakeLists.txt" ]; then
  echo "error: the llama.cpp source vendored by llama-cpp-sys-2 $SYS_VERSION was not found; run 'cargo fetch' here, or set LLAMA_CPP_SRC (e.g. to an unpacked copy carried to the GPU machine)" >&2
  exit 2
fi

cuda=()
if [ -n "${CUDA_HOME:-}" ]; then
  [ -x "$CUDA_HOME/bin/nvcc" ] || { echo "error: CUDA_HOME=$CUDA_HOME has no bin/nvcc" >&2; exit 2; }
  cuda=(-DCMAKE_CUDA_COMPILER="$CUDA_HOME/bin/nvcc" -DCUDAToolkit_ROOT="$CUDA_HOME")
  nvcc="$CUDA_HOME/bin/nvcc"
else
  nvcc="$(command -v nvcc || true)"
  [ -n "$nvcc" ] || { echo "error: nvcc not found (install the CUDA toolkit, or set CUDA_HOME=\"\$(scripts/cuda-toolkit-pypi.sh)\")" >&2; exit 2; }
fi
command -v cmake >/dev/null 2>&1 || { echo "error: cmake not found (Debian: apt-get install cmake)" >&2; exit 2; }

generator=()
command -v ninja >/dev/null 2>&1 && generator=(-G Ninja)
build="$OUT/build-cuda"
mkdir -p "$build"
start=$(date +%s)
# Only ggml-cuda (and the ggml-base it links) is built; everything else of
# llama.cpp is switched off so that configuring needs nothing more. No
# RUNPATH into the build tree: the library must take the libggml-base.so of
# the process that loads it, never a second copy from here.
cmake -S "$src" -B "$build" "${generator[@]}" "${cuda[@]}" \
  -DCMAKE_BUILD_TYPE=Release \
  -DGGML_CUDA=ON -DGGML_BACKEND_DL=ON -DBUILD_SHARED_LIBS=ON \
  -DGGML_NATIVE=OFF -DGGML_CUDA_NCCL=OFF -DCMAKE_SKIP_BUILD_RPATH=ON \
  -DCMAKE_CUDA_ARCHITECTURES="$ARCHS" \
  -DLLAMA_BUILD_COMMON=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_TOOLS=OFF \
  -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF \
  -DLLAMA_OPENSSL=OFF >&2
cmake --build "$build" --target ggml-cuda -j "$JOBS" >&2
lib="$(find "$build" -name 'libggml-cuda.so' | head -n 1)"
[ -n "$lib" ] || { echo "error: the build produced no libggml-cuda.so" >&2; exit 1; }
cp "$lib" "$OUT/"
{
  echo "libggml-cuda.so from llama-cpp-sys-2 $SYS_VERSION's llama.cpp"
  echo "source: $src"
  echo "architectures: $ARCHS"
  echo "nvcc: $("$nvcc" --version | tail -n 1)"
  echo "built: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname), $(( $(date +%s) - start )) s with $JOBS jobs"
} >"$OUT/libggml-cuda.txt"
cat "$OUT/libggml-cuda.txt" >&2
echo "built $OUT/libggml-cuda.so — use it with the dynamic-link lmtune: lmtune run SCENARIO --ggml-backend $OUT/libggml-cuda.so" >&2
