"""Writes link-time stand-ins for the CUDA libraries candle links against (libcuda, libcudart,
libnvrtc, libcublas, libcublasLt, libcurand), so `cargo build --features cuda` links on a machine
without a GPU driver or those libraries. Each stub is an empty-bodied shared library with the real
SONAME that defines every function cudarc declares; the built binary records the SONAMEs and the
real libraries (driver, PyTorch's nvidia-* wheels) are loaded in their place at run time.

Usage: python3 scripts/cuda-link-stubs.py CUDARC_SRC_DIR OUT_DIR
"""
import pathlib
import re
import subprocess
import sys

LIBS = {
    # cudarc module: (link name, SONAME)
    "driver": ("cuda", "libcuda.so.1"),
    "runtime": ("cudart", "libcudart.so.13"),
    "nvrtc": ("nvrtc", "libnvrtc.so.13"),
    "cublas": ("cublas", "libcublas.so.13"),
    "cublaslt": ("cublasLt", "libcublasLt.so.13"),
    "curand": ("curand", "libcurand.so.10"),
}

src, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
out.mkdir(parents=True, exist_ok=True)
for module, (name, soname) in LIBS.items():
    text = (src / module / "sys" / "mod.rs").read_text()
    names = sorted(set(re.findall(r"^\s+(?:pub )?fn ([A-Za-z_][A-Za-z0-9_]*)\(", text, re.M)))
    c = out / f"{name}.c"
    c.write_text("".join(f"void {n}(void) {{}}\n" for n in names))
    lib = out / f"lib{name}.so"
    subprocess.run(["cc", "-shared", "-fPIC", f"-Wl,-soname,{soname}", "-o", str(lib), str(c)], check=True)
    print(f"{lib.name}: {len(names)} symbols, SONAME {soname}")
