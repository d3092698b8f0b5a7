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
root="$home/cuda/toolkit"
mkdir -p "$dl" "$root"
# name==version  sha256 of the wheel
pins=(
  "nvidia-cuda-nvcc==13.5.37 f5c4f7ead5d964fb4af42bbf1e6d3ec3c1e6e9d83b53749f691d387e7fcaa3a7"
  "nvidia-cuda-runtime==13.5.37 df2b79a8852f10d1fef8c848489c49eebb5754051bf870202a862831412b179d"
  "nvidia-cuda-crt==13.5.37 e898b7f73d3035fa89915a3f7bf3b54a73e90249746111aed295822c4729bb29"
  "nvidia-nvvm==13.5.37 c41bfa362e407405163f103c2229f0765f8cc2ed7d148b754dc77f228bf7e070"
  "nvidia-cuda-cccl==13.3.5.0.6 d5230098fa2df5021e1a00c0c4eee41797671a91119d31e892463e5ccf3ee326"
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
echo "export CUDA_ROOT='$cu' CUDA_PATH='$cu' CUDA_TOOLKIT_ROOT_DIR='$cu'"
echo "export PATH='$cu/bin':\"\$PATH\""
echo "export CUDA_COMPUTE_CAP=\"\${CUDA_COMPUTE_CAP:-90}\""
