#!/usr/bin/env bash
# A CUDA toolkit good enough to *compile* llama.cpp's CUDA backend, from
# NVIDIA's PyPI wheels, on a machine with no GPU and no CUDA install (the
# wheels hold nvcc, the headers, cudart and cuBLAS; ~850 MB installed).
# Prints the toolkit root on stdout, for CUDA_HOME:
#
#   CUDA_HOME="$(scripts/cuda-toolkit-pypi.sh)" scripts/build-cuda-backend.sh
#
#   scripts/cuda-toolkit-pypi.sh [DIR]     # default: ~/.cache/lmtune/cuda-pypi
#
# The versions are pinned to CUDA 13.0 to match the lent GPU machines'
# driver 580 (a library built by a newer nvcc needs a newer driver). The
# wheels carry no libcuda (the driver's library); the build links against a
# stub made here (the soname libcuda.so.1 and the functions ggml calls), as NVIDIA's own
# toolkit stubs do, and the real driver's library is used at run time.
set -euo pipefail
DIR="${1:-$HOME/.cache/lmtune/cuda-pypi}"
ROOT="$DIR/site/nvidia/cu13"
log() { printf '==> %s\n' "$*" >&2; }

if [ ! -x "$ROOT/bin/nvcc" ]; then
  log "fetching the CUDA 13.0 toolkit wheels from PyPI into $DIR (~600 MB download)"
  mkdir -p "$DIR/whl"
  python3 -m pip download -q --no-deps --only-binary=:all: -d "$DIR/whl" \
    --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    nvidia-cuda-nvcc==13.0.88 nvidia-nvvm==13.0.88 nvidia-cuda-crt==13.0.88 \
    nvidia-cuda-runtime==13.0.96 nvidia-cublas==13.0.2.14 nvidia-cuda-cccl==13.0.85 \
    nvidia-cuda-culibos==13.0.85 >&2
  python3 -m pip install -q --no-deps --no-index --target "$DIR/site" "$DIR"/whl/*.whl >&2
fi
[ -x "$ROOT/bin/nvcc" ] || { echo "error: no nvcc in $ROOT after installing the wheels" >&2; exit 1; }

# nvcc.profile links from lib64; CMake's FindCUDAToolkit looks for the
# unversioned names a toolkit install has.
[ -e "$ROOT/lib64" ] || ln -s lib "$ROOT/lib64"
for lib in cudart cublas cublasLt; do
  [ -e "$ROOT/lib/lib$lib.so" ] || ln -s "lib$lib.so.13" "$ROOT/lib/lib$lib.so"
done
# The driver API stub (CUDA::cuda_driver, for ggml's virtual-memory pool).
if [ ! -e "$ROOT/lib/stubs/libcuda.so" ]; then
  mkdir -p "$ROOT/lib/stubs"
  # The driver functions ggml-cuda calls (ggml/src/ggml-cuda); never run.
  for f in cuDeviceGet cuDeviceGetAttribute cuGetErrorString cuMemAddressFree \
    cuMemAddressReserve cuMemCreate cuMemGetAllocationGranularity cuMemMap \
    cuMemRelease cuMemSetAccess cuMemUnmap; do
    echo "int $f(void) { return 999; }"
  done >"$ROOT/lib/stubs/stub.c"
  cc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$ROOT/lib/stubs/libcuda.so" "$ROOT/lib/stubs/stub.c"
fi
echo "$ROOT"
