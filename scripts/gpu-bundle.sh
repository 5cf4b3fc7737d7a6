#!/usr/bin/env bash
# Packs what a GPU machine without Rust needs to run lmtune with llama.cpp's
# CUDA backend into one folder (default .gpu/bundle, git-ignored):
#
#   bin/lmtune, lib/*.so   lmtune built with llama.cpp as shared libraries
#                          (--features dynamic-link), for x86-64-v3 (AVX2) so
#                          it runs on any recent x86 server; `./lmtune` is a
#                          wrapper that sets LD_LIBRARY_PATH
#   llama.cpp.tgz          the llama.cpp source llama-cpp-sys-2 vendors,
#                          trimmed, for building libggml-cuda.so there
#                          (scripts/build-cuda-backend.sh)
#   (.gpu/cuda-lib)        a libggml-cuda.so built here already (.gpu/libggml-cuda.so),
#                          stripped and xz'd, to carry in a call of its own
#   donor.gguf             a tiny model that carries SmolLM2's tokenizer, the
#                          donor for `lmtune synth` there
#
#   scripts/gpu-bundle.sh [DIR]
#
# The dynamic-link build matters: a libggml-cuda.so loaded at run time links
# libggml-base.so, and must find the very one the process runs (a statically
# linked lmtune has none to share). Then scripts/gpu-session.sh runs there.
set -euo pipefail
cd "$(dirname "$0")/.."
B="${1:-.gpu/bundle}"
TARGET="${LMTUNE_BUNDLE_TARGET_DIR:-target/dynamic}"
CPU="${LMTUNE_BUNDLE_CPU:-x86-64-v3}"
SYS_VERSION="0.1.160"
LIMIT_MIB=56
log() { printf '==> %s\n' "$*" >&2; }

LMTUNE_DYNAMIC_TARGET_DIR="$TARGET" LMTUNE_DYNAMIC_CPU="$CPU" LMTUNE_DYNAMIC_FALLBACK=1 \
  scripts/build-dynamic.sh "$B" >/dev/null

# The GPU machine's system libraries are not this machine's: say what the
# bundle needs (gpu-session.sh checks that it starts there).
need="$(objdump -T "$B/bin/lmtune" "$B"/lib/*.so.[0-9] 2>/dev/null | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -n 1)"
log "the bundle needs glibc ${need#GLIBC_} or newer (this machine: $(ldd --version | head -n 1 | grep -o '[0-9.]*$'); lib/fallback's libraries may need this machine's)"

src="$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/llama-cpp-sys-2-"$SYS_VERSION"/llama.cpp | head -n 1)"
log "packing the vendored llama.cpp source ($src)"
# What configuring llama.cpp and building ggml-cuda need; the rest stays.
tar czf "$B/llama.cpp.tgz" -C "$(dirname "$src")" \
  --exclude='llama.cpp/models' --exclude='llama.cpp/docs' --exclude='llama.cpp/examples' \
  --exclude='llama.cpp/tools' --exclude='llama.cpp/tests' --exclude='llama.cpp/gguf-py' \
  --exclude='llama.cpp/media' --exclude='llama.cpp/scripts' --exclude='llama.cpp/.github' \
  --exclude='llama.cpp/ggml/src/ggml-vulkan' --exclude='llama.cpp/ggml/src/ggml-sycl' \
  --exclude='llama.cpp/ggml/src/ggml-opencl' --exclude='llama.cpp/ggml/src/ggml-cann' \
  --exclude='llama.cpp/ggml/src/ggml-metal' --exclude='llama.cpp/ggml/src/ggml-webgpu' \
  --exclude='llama.cpp/ggml/src/ggml-hexagon' --exclude='llama.cpp/ggml/src/ggml-zdnn' \
  llama.cpp

# A prebuilt libggml-cuda.so (58 MiB stripped for sm_90, 37 MiB as xz) does
# not fit beside the bundle in one call's 64 MiB: it travels in a first,
# short call of its own (scripts/gpu-session.sh --unpack-cuda), which leaves
# it on the warm machine for the session call right after.
if [ -f .gpu/libggml-cuda.so ]; then
  log "packing the prebuilt .gpu/libggml-cuda.so into .gpu/cuda-lib (for its own device call)"
  rm -rf .gpu/cuda-lib
  mkdir -p .gpu/cuda-lib
  strip --strip-unneeded -o .gpu/cuda-lib/libggml-cuda.so .gpu/libggml-cuda.so
  xz -T0 -6 .gpu/cuda-lib/libggml-cuda.so
  [ -f .gpu/libggml-cuda.txt ] && cp .gpu/libggml-cuda.txt .gpu/cuda-lib/
  du -sh .gpu/cuda-lib >&2
fi

model=models/SmolLM2-135M-Instruct.Q4_1.gguf
[ -f "$model" ] || scripts/fetch-model.sh
log "making the tokenizer donor (a 1-block model with SmolLM2's tokenizer)"
"$B/lmtune" synth --donor "$model" --layers 1 --embd 64 --heads 1 --kv-heads 1 --ff 64 \
  --quant q8_0 -o "$B/donor.gguf" >&2

size_mib=$(( $(du -sb "$B" | cut -f1) / 1048576 ))
log "bundle: $B, $size_mib MiB"
du -sh "$B"/* "$B"/lib/* >&2
if [ "$size_mib" -gt "$LIMIT_MIB" ]; then
  echo "error: the bundle is $size_mib MiB, over $LIMIT_MIB MiB (the device tool carries 64 MiB with the working tree)" >&2
  exit 1
fi
echo "$B"
