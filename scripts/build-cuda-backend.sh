#!/usr/bin/env bash
# Builds llama.cpp's CUDA backend as a loadable library (libggml-cuda.so; by
# default into .gpu/): scripts/build-ggml-backend.sh cuda [OUT_DIR]. See that
# script for CUDA_HOME, CMAKE_CUDA_ARCHITECTURES, LLAMA_CPP_SRC and JOBS.
exec "$(dirname "$0")/build-ggml-backend.sh" cuda "$@"
