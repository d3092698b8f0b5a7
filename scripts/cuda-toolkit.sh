#!/usr/bin/env bash
# Fetches a CUDA 13 compiler toolkit (nvcc, nvvm, headers) from PyPI, pinned and sha256-checked,
# into $W2S_HOME/cuda/toolkit, for `cargo build --release --features cuda` on a machine without
# a system CUDA. Prints the environment to use; e.g.
#   eval "$(scripts/cuda-toolkit.sh)" && cargo build --release --features cuda
# No GPU is needed to build: candle's kernels are compiled to PTX for CUDA_COMPUTE_CAP (default 90,
# Hopper: H100/H200).
set -euo pipefail
home="${W2S_HOME:-$HOME/.cache/w2s}"
dl="$home/cuda/downloads"
root="$home/cuda/toolkit-13.0"
mkdir -p "$dl" "$root"
# name==version  sha256 of the wheel
# CUDA 13.0: the oldest CUDA 13, so its PTX loads on any CUDA 13 driver; cudarc 0.19 knows up to
# 13.4 (13.5's nvcc makes its build script panic: "Unsupported cuda toolkit version").
pins=(
  "nvidia-cuda-nvcc==13.0.88 56fe502eb77625a12f25172caa3cdddb4e4c8ba2c8c17dba44b164761b380f03"
  "nvidia-cuda-runtime==13.0.88 422a38f7c739ecbdd3a4b6ec7ed0a1d74db43d8e9bc26685f3d845638922b178"
  "nvidia-cuda-crt==13.0.88 2c8043c7c9e02492716426e9919fc78d2c5b3b2a7a768a88e952676b08aa55a4"
  "nvidia-nvvm==13.0.88 c5f41ffeb6466944a026dfa5317d7d85355c119bbec279205d22f1869d1054e0"
  "nvidia-cuda-cccl==13.0.85 e0da7ad981f3a8aff08241b5bfc1af868742a63e2762f53a5171c492ef242649"
)
if [ ! -x "$root/nvidia/cu13/bin/nvcc" ]; then
  for pin in "${pins[@]}"; do
    spec="${pin% *}"; sha="${pin#* }"
    python3 -m pip download --quiet --no-deps --dest "$dl" "$spec" >&2
    name="${spec%%==*}"; version="${spec#*==}"
    wheel=$(ls "$dl"/"${name//-/_}"-"$version"-*.whl | head -1)
    got=$(sha256sum "$wheel" | cut -d' ' -f1)
    if [ "$got" != "$sha" ]; then
      echo "cuda-toolkit: $wheel: expected sha256 $sha, found $got" >&2
      exit 1
    fi
    python3 -m zipfile -e "$wheel" "$root" >&2
  done
  chmod +x "$root"/nvidia/cu13/bin/* "$root"/nvidia/cu13/nvvm/bin/* 2>/dev/null || true
fi
cu="$root/nvidia/cu13"
# Link-time stand-ins for libcuda (the driver) and the CUDA libraries candle links against, in the
# lib/stubs folder cudarc's build script searches; the real ones are loaded at run time.
if [ ! -f "$cu/lib/stubs/libcuda.so" ]; then
  cargo fetch --quiet >&2
  cudarc=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-0.19.10/src | head -1)
  python3 "$(dirname "$0")/cuda-link-stubs.py" "$cudarc" "$cu/lib/stubs" >&2
  # The real runtime (from nvidia-cuda-runtime) replaces its stub: nvcc's host code in candle's
  # kernels calls cudart internals (__cudaRegisterFatBinary, __cudaLaunchKernel_ptsz, ...).
  ln -sf ../libcudart.so.13 "$cu/lib/stubs/libcudart.so"
fi
echo "export CUDA_ROOT='$cu' CUDA_PATH='$cu' CUDA_TOOLKIT_ROOT_DIR='$cu'"
echo "export PATH='$cu/bin':\"\$PATH\""
echo "export CUDA_COMPUTE_CAP=\"\${CUDA_COMPUTE_CAP:-90}\""
