#!/usr/bin/env bash
# Prepares what scripts/gpu-check.sh needs on a GPU machine that has no cargo and no network:
# the w2s binary built here with `--features cuda`, xz-compressed (the 70 MB binary travels as
# about 20 MB; everything carried must stay under 64 MiB), and a stand-in libcurand.so.10.
#
# Why the stand-in: candle's binary links libcurand (cudarc's dynamic linking), which PyTorch's
# CUDA 13 wheels do not ship; candle only creates a generator when a device opens and w2s never
# draws random numbers on the GPU (LoRA's initial values are drawn on the host), so a library
# whose every function returns 0 (CURAND_STATUS_SUCCESS) serves when the real one is missing.
#
# Usage: scripts/gpu-bundle.sh [OUT_DIR]     (default target/gpu-bundle; about 10 min to build)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-target/gpu-bundle}"
mkdir -p "$out"
eval "$(scripts/cuda-toolkit.sh)"
cargo build --release --locked --features cuda --target-dir target/cuda >&2
xz -T2 -6 -c target/cuda/release/w2s > "$out/w2s.xz.tmp" && mv "$out/w2s.xz.tmp" "$out/w2s.xz"
cudarc=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-0.19.10/src | head -1)
names=$(grep -ohE '^\s+(pub )?fn [A-Za-z_][A-Za-z0-9_]*\(' "$cudarc/curand/sys/mod.rs" \
  | sed -E 's/.*fn ([A-Za-z0-9_]+)\(/\1/' | sort -u)
mkdir -p "$out/lib"
for n in $names; do echo "int $n(void) { return 0; }"; done > "$out/lib/curand-stub.c"
cc -shared -fPIC -Wl,-soname,libcurand.so.10 -o "$out/lib/libcurand.so.10" "$out/lib/curand-stub.c"
rm "$out/lib/curand-stub.c"
ls -l "$out" "$out/lib" >&2
du -sh "$out" >&2
