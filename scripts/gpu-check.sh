#!/usr/bin/env bash
# The GPU check of issue 10, for a machine with an NVIDIA GPU, PyTorch and transformers, but no
# network and no cargo. Takes the bundle that scripts/gpu-bundle.sh makes here (the cuda build
# of w2s, xz-compressed, and a stand-in libcurand), then runs scripts/gpu_check.py: models of
# real shape (GPT-2-medium, Pythia-410m, Qwen2-0.5B configurations, random weights), CPU-vs-GPU
# parity, w2s bench against PyTorch in f32 and bf16, and a bf16 LoRA step. Prints one table;
# every number also goes to WORK/gpu-check.json (WORK defaults to $OUT/gpu-check, else
# /tmp/gpu-check).
#
# Usage: scripts/gpu-check.sh BUNDLE_DIR [WORK_DIR] [gpu_check.py options: --only NAME, --skip-bench]
set -euo pipefail
cd "$(dirname "$0")/.."
bundle="${1:?usage: scripts/gpu-check.sh BUNDLE_DIR [WORK_DIR] [options]}"
shift
work="${OUT:-/tmp}/gpu-check"
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
  work="$1"
  shift
fi
python="${PYTHON:-python3}"
mkdir -p "$work"
xz -dc "$bundle/w2s.xz" > "$work/w2s"
chmod +x "$work/w2s"

# CUDA libraries: the driver's libcuda from the system, cuBLAS and the runtime from PyTorch's
# nvidia-* wheels, libcurand from wherever it is, else the bundle's stand-in.
libs=$("$python" - <<'PY'
import glob, os, site
dirs = set()
for sp in site.getsitepackages() + [site.getusersitepackages()]:
    for f in glob.glob(os.path.join(sp, "nvidia", "**", "lib", "lib*.so*"), recursive=True):
        dirs.add(os.path.dirname(f))
print(":".join(sorted(dirs)))
PY
)
export LD_LIBRARY_PATH="${libs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
if ! { ldconfig -p 2>/dev/null | grep -q 'libcurand.so.10'; } && \
   ! ls ${libs//:/ } 2>/dev/null | grep -q '^libcurand.so.10$'; then
  export LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$(cd "$bundle/lib" && pwd)"
  echo "gpu-check: no libcurand.so.10 here; using the bundle's stand-in" >&2
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
"$work/w2s" --version
"$python" scripts/gpu_check.py --w2s "$work/w2s" --work "$work" --python "$python" "$@"
