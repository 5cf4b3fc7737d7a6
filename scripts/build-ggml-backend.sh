#!/usr/bin/env bash
# Builds one of llama.cpp's GPU backends as a loadable library
# (libggml-cuda.so, libggml-vulkan.so) from the very llama.cpp source the
# pinned llama-cpp-sys-2 crate vendors, so that `lmtune run --ggml-backend
# PATH` (or LMTUNE_GGML_BACKENDS) can load it at run time — the way LM Studio
# ships its CUDA/Vulkan "runtime packs". ggml refuses a backend built from
# another version ("incompatible API version"). Prints the library's path on
# stdout; everything else goes to stderr.
#
#   scripts/build-ggml-backend.sh cuda   [OUT_DIR]   # default OUT_DIR: .gpu/
#   scripts/build-ggml-backend.sh vulkan [OUT_DIR]   # default: the cache below
#
# The library needs libggml-base.so from the same source at run time, which
# only the dynamic-link build of lmtune has (scripts/build-dynamic.sh): a
# statically linked lmtune cannot host it.
#
# cuda: needs nvcc (no GPU: it compiles; the GPU is needed to run it).
#   CUDA_HOME                  toolkit root (default: nvcc on PATH); a toolkit
#                              from PyPI works: CUDA_HOME="$(scripts/cuda-toolkit-pypi.sh)"
#   CMAKE_CUDA_ARCHITECTURES   default 90 (H100/H200); e.g. "86;89" for RTX 30/40
#   From scratch for one architecture: ~1 CPU-hour (59 CPU-min measured on a
#   2-vCPU VM).
#
# vulkan: needs glslc, SPIRV-Headers and Vulkan headers new enough for this
#   llama.cpp (VK_EXT_layer_settings, Vulkan-Headers ≥ 1.3.261; Debian 12's
#   1.3.239 is too old, so then Debian 13's headers are fetched into the
#   cache — headers only, nothing is installed). On Debian:
#     apt-get install cmake g++ glslc libvulkan-dev spirv-headers
#   and, to run it without a GPU, Mesa's software Vulkan device (llvmpipe):
#     apt-get install mesa-vulkan-drivers; export GGML_VK_VISIBLE_DEVICES=0
#   Cached by source version in ${LMTUNE_CACHE_DIR:-~/.cache/lmtune}/ggml-vulkan/
#   and reused when present. ~4 min on 2 cores.
#
# Environment for both:
#   LLAMA_CPP_SRC   the vendored source, where cargo's registry is absent
#                   (the GPU machine: scripts/gpu-bundle.sh packs it)
#   JOBS            parallel compile jobs (default: all cores)
set -euo pipefail
cd "$(dirname "$0")/.."
SYS_VERSION="0.1.160"
JOBS="${JOBS:-$(nproc)}"
CACHE="${LMTUNE_CACHE_DIR:-$HOME/.cache/lmtune}"
log() { printf '==> %s\n' "$*" >&2; }
die() { echo "error: $*" >&2; exit 2; }

kind="${1:-}"
case "$kind" in
  cuda) OUT="${2:-.gpu}" ;;
  vulkan) OUT="${2:-$CACHE/ggml-vulkan/$SYS_VERSION}" ;;
  *) die "usage: scripts/build-ggml-backend.sh cuda|vulkan [OUT_DIR]" ;;
esac
lib_name="libggml-$kind.so"

if [ "$kind" = vulkan ] && [ -z "${2:-}" ] && [ -f "$OUT/$lib_name" ] && [ -f "$OUT/libggml-$kind.txt" ]; then
  log "using the cached $OUT/$lib_name ($(sed -n 1p "$OUT/libggml-$kind.txt"))"
  echo "$OUT/$lib_name"
  exit 0
fi

src="${LLAMA_CPP_SRC:-}"
if [ -z "$src" ] && [ -f Cargo.lock ] && command -v cargo >/dev/null 2>&1; then
  # A fresh clone has no registry yet: fetch the locked crates (the vendored
  # llama.cpp among them) before looking.
  cargo fetch --locked >/dev/null 2>&1 || true
fi
if [ -z "$src" ]; then
  src="$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/llama-cpp-sys-2-"$SYS_VERSION"/llama.cpp 2>/dev/null | head -n 1 || true)"
fi
if [ -z "$src" ] || [ ! -f "$src/CMakeLists.txt" ]; then
  die "the llama.cpp source vendored by llama-cpp-sys-2 $SYS_VERSION was not found; run 'cargo fetch' here, or set LLAMA_CPP_SRC (e.g. to an unpacked copy carried to the GPU machine)"
fi
command -v cmake >/dev/null 2>&1 || die "cmake not found (Debian: apt-get install cmake)"

# Vulkan headers with VK_EXT_layer_settings: the system's, or Debian 13's
# libvulkan-dev unpacked into the cache (checked against the archive index's
# SHA256).
vulkan_headers() {
  local sys=/usr/include/vulkan/vulkan_core.h
  if [ -f "$sys" ] && grep -q VK_EXT_layer_settings "$sys"; then
    return 0
  fi
  local dir="$CACHE/vulkan-headers"
  if [ ! -f "$dir/usr/include/vulkan/vulkan_core.h" ]; then
    log "the system's Vulkan headers are older than this llama.cpp needs; fetching Debian 13's libvulkan-dev headers into $dir"
    local mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}" entry file sum tmp
    tmp="$(mktemp -d)"
    curl -fsS -o "$tmp/Packages.xz" "$mirror/dists/trixie/main/binary-amd64/Packages.xz" ||
      die "cannot read $mirror's package index (set DEBIAN_MIRROR, or install Vulkan-Headers ≥ 1.3.261)"
    entry="$(xz -dc "$tmp/Packages.xz" |
      awk '/^Package: libvulkan-dev$/{p=1} p&&/^(Filename|SHA256):/{print $2} p&&/^$/{p=0}')"
    file="$(echo "$entry" | sed -n 1p)"
    sum="$(echo "$entry" | sed -n 2p)"
    [ -n "$file" ] && [ -n "$sum" ] || die "no libvulkan-dev in Debian 13's package index"
    curl -fsS -o "$tmp/dev.deb" "$mirror/$file" || die "cannot download $mirror/$file"
    echo "$sum  $tmp/dev.deb" | sha256sum -c --status || die "$file does not match the index's SHA256"
    rm -rf "$dir"
    mkdir -p "$dir"
    dpkg-deb -x "$tmp/dev.deb" "$dir"
    rm -rf "$tmp"
  fi
  echo "$dir/usr/include"
}

extra=()
case "$kind" in
  cuda)
    if [ -n "${CUDA_HOME:-}" ]; then
      [ -x "$CUDA_HOME/bin/nvcc" ] || die "CUDA_HOME=$CUDA_HOME has no bin/nvcc"
      extra=(-DCMAKE_CUDA_COMPILER="$CUDA_HOME/bin/nvcc" -DCUDAToolkit_ROOT="$CUDA_HOME")
      compiler="$CUDA_HOME/bin/nvcc"
    else
      compiler="$(command -v nvcc || true)"
      [ -n "$compiler" ] || die "nvcc not found (install the CUDA toolkit, or set CUDA_HOME=\"\$(scripts/cuda-toolkit-pypi.sh)\")"
    fi
    archs="${CMAKE_CUDA_ARCHITECTURES:-90}"
    extra+=(-DGGML_CUDA=ON -DGGML_CUDA_NCCL=OFF -DCMAKE_CUDA_ARCHITECTURES="$archs")
    about="architectures: $archs
nvcc: $("$compiler" --version | tail -n 1)"
    ;;
  vulkan)
    compiler="$(command -v glslc || true)"
    [ -n "$compiler" ] || die "glslc not found (Debian: apt-get install glslc libvulkan-dev spirv-headers)"
    [ -f /usr/share/cmake/SPIRV-Headers/SPIRV-HeadersConfig.cmake ] || [ -n "${VULKAN_SDK:-}" ] ||
      die "SPIRV-Headers not found (Debian: apt-get install spirv-headers)"
    headers="$(vulkan_headers)" || exit 2
    [ -z "$headers" ] || extra=(-DVulkan_INCLUDE_DIR="$headers")
    extra+=(-DGGML_VULKAN=ON)
    # sed, not head: head would close the pipe early, and glslc's SIGPIPE
    # would fail this line under pipefail.
    about="glslc: $("$compiler" --version | sed -n 1p)
vulkan headers: ${headers:-system}"
    ;;
esac

generator=()
command -v ninja >/dev/null 2>&1 && generator=(-G Ninja)
build="$OUT/build-$kind"
mkdir -p "$build"
start=$(date +%s)
# Only the backend (and the ggml-base it links) is built; everything else of
# llama.cpp is switched off so that configuring needs nothing more. No
# RUNPATH into the build tree: the library must take the libggml-base.so of
# the process that loads it, never a second copy from here.
cmake -S "$src" -B "$build" "${generator[@]}" "${extra[@]}" \
  -DCMAKE_BUILD_TYPE=Release \
  -DGGML_BACKEND_DL=ON -DBUILD_SHARED_LIBS=ON \
  -DGGML_NATIVE=OFF -DCMAKE_SKIP_BUILD_RPATH=ON \
  -DLLAMA_BUILD_COMMON=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_TOOLS=OFF \
  -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF \
  -DLLAMA_OPENSSL=OFF >&2
cmake --build "$build" --target "ggml-$kind" -j "$JOBS" >&2
lib="$(find "$build" -name "$lib_name" -print -quit)"
[ -n "$lib" ] || { echo "error: the build produced no $lib_name" >&2; exit 1; }
cp "$lib" "$OUT/"
{
  echo "$lib_name from llama-cpp-sys-2 $SYS_VERSION's llama.cpp"
  echo "source: $src"
  echo "$about"
  echo "built: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname), $(($(date +%s) - start)) s with $JOBS jobs"
} >"$OUT/libggml-$kind.txt"
cat "$OUT/libggml-$kind.txt" >&2
# The build tree of a cached library is not needed again.
if [ "$kind" = vulkan ] && [ -z "${2:-}" ]; then rm -rf "$build"; fi
log "built $OUT/$lib_name — use it with the dynamic-link lmtune: lmtune run SCENARIO --ggml-backend $OUT/$lib_name"
echo "$OUT/$lib_name"
