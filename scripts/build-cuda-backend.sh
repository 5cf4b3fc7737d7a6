#!/usr/bin/env bash
# Builds llama.cpp's CUDA backend as a loadable library (libggml-cuda.so) from
# the very llama.cpp source the pinned llama-cpp-sys-2 crate vendors, so that
# `lmtune run --ggml-backend PATH` (or LMTUNE_GGML_BACKENDS) can load it at run
# time — the way LM Studio ships its CUDA "runtime packs". ggml refuses a
# backend built from another version ("incompatible API version").
#
#   scripts/build-cuda-backend.sh [OUT_DIR]     # default: .gpu/
#
# Needs nvcc (CUDA 12/13), cmake and ninja or make, on the machine with the GPU.
# Status: written from ../shared/GPU.md; not yet run on a GPU machine (no
# device was lent to the session that wrote it). Run it there and record the
# outcome in the GPU issue.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-.gpu}"
SYS_VERSION="0.1.160"
ARCHS="${CMAKE_CUDA_ARCHITECTURES:-90}"

src="${LLAMA_CPP_SRC:-}"
if [ -z "$src" ]; then
  src="$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/llama-cpp-sys-2-"$SYS_VERSION"/llama.cpp 2>/dev/null | head -n 1 || true)"
fi
if [ -z "$src" ] || [ ! -f "$src/CMakeLists.txt" ]; then
  echo "error: the llama.cpp source vendored by llama-cpp-sys-2 $SYS_VERSION was not found; run 'cargo fetch' here, or set LLAMA_CPP_SRC (e.g. to an unpacked copy carried to the GPU machine)" >&2
  exit 2
fi
command -v nvcc >/dev/null 2>&1 || { echo "error: nvcc not found (install the CUDA toolkit, or see ../shared/GPU.md for the PyPI wheels)" >&2; exit 2; }

generator=()
command -v ninja >/dev/null 2>&1 && generator=(-G Ninja)
build="$OUT/build-cuda"
mkdir -p "$build"
cmake -S "$src" -B "$build" "${generator[@]}" \
  -DCMAKE_BUILD_TYPE=Release \
  -DGGML_CUDA=ON -DGGML_BACKEND_DL=ON -DBUILD_SHARED_LIBS=ON \
  -DCMAKE_CUDA_ARCHITECTURES="$ARCHS" \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF
cmake --build "$build" --target ggml-cuda -j "$(nproc)"
lib="$(find "$build" -name 'libggml-cuda.so' | head -n 1)"
[ -n "$lib" ] || { echo "error: the build produced no libggml-cuda.so" >&2; exit 1; }
cp "$lib" "$OUT/"
echo "built $OUT/libggml-cuda.so — use: lmtune run SCENARIO --ggml-backend $OUT/libggml-cuda.so" >&2
