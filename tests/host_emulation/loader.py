"""Builds and loads the host emulation of the CUDA kernels (emulate.cpp) with ctypes.

The kernels' per-item work and their block/grid reduction logic are host+device code
(csrc/<loss>/<loss>_items.cuh, csrc/common/block_reduce.cuh, two_pass.cuh). g++ compiles them
here against stand-ins of the CUDA headers (shim/), with no torch library and no CUDA toolkit:
a few seconds, cached by a hash of every source it reads, so only a change rebuilds.
"""
import ctypes
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import torch.utils.cpp_extension as cpp_extension

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
CSRC = ROOT / "csrc"
# -ffp-contract=off: no fused multiply-adds, so the double sums of the bit-exact tests are
# plain IEEE additions on any host.
FLAGS = ["-std=c++17", "-O2", "-ffp-contract=off", "-Wall", "-Wextra", "-Werror", "-shared",
         "-fPIC"]


def _sources():
    # every header under csrc/: the kernels' items include shared maths such as rigid_math.h
    headers = sorted(CSRC.glob("**/*.cuh")) + sorted(CSRC.glob("**/*.h"))
    return [HERE / "emulate.cpp", HERE / "exec.h"] + sorted(HERE.glob("shim/*.h")) + headers


def _cache_dir() -> Path:
    base = os.environ.get("SIRENPOSE_EMULATION_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")),
        "sirenpose-host-emulation")
    return Path(base)


def compiler():
    """The host compiler (CXX or g++), or None when there is none."""
    return shutil.which(os.environ.get("CXX", "g++"))


def build() -> Path:
    """The path of the emulation library, compiled unless an identical build is cached."""
    cxx = compiler()
    includes = []
    for d in cpp_extension.include_paths():
        includes += ["-isystem", d]
    cmd = [cxx, *FLAGS, f"-I{CSRC}", f"-I{HERE / 'shim'}", f"-I{HERE}", *includes]
    digest = hashlib.sha256(" ".join(cmd + [sys.version]).encode())
    for f in _sources():
        digest.update(f.name.encode() + f.read_bytes())
    out = _cache_dir() / f"emulate-{digest.hexdigest()[:20]}.so"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(f".{os.getpid()}.tmp")
        result = subprocess.run(cmd + [str(HERE / "emulate.cpp"), "-o", str(tmp)],
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError("building the host emulation failed:\n" + result.stderr[-4000:])
        os.replace(tmp, out)  # atomic: a concurrent run sees the old state or the full library
    return out


_I64, _INT, _DBL, _PTR = ctypes.c_int64, ctypes.c_int, ctypes.c_double, ctypes.c_void_p
_SIGNATURES = {
    "emu_sum": [_PTR, _I64, _I64, _PTR],
    "emu_reduce_blocks": [_I64, _I64],
    "emu_kml_blocks": [_I64, _I64],
    "emu_kml_fwd": [_INT, _PTR, _PTR, _PTR, _INT, _I64, _I64, _I64, _INT, _PTR, _PTR, _I64],
    "emu_kml_bwd": [_INT, _PTR, _PTR, _PTR, _INT, _I64, _I64, _I64, _INT, _PTR, _PTR, _PTR,
                    _PTR],
    "emu_scl_plan": [_I64, _I64, _I64, _I64, _INT, _PTR],
    "emu_scl_fwd": [_INT, _PTR, _PTR, _INT, _I64, _I64, _I64, _I64, _INT, _INT, _PTR, _PTR,
                    _I64, _I64],
    "emu_scl_bwd": [_INT, _PTR, _PTR, _INT, _I64, _I64, _I64, _I64, _INT, _INT, _PTR, _PTR,
                    _PTR, _I64],
    "emu_siren_fwd": [_INT, _INT, _PTR, _PTR, _PTR, _PTR, _INT, _PTR, _I64, _I64, _I64, _I64,
                      _DBL, _DBL, _INT, _INT, _PTR, _PTR, _PTR, _PTR, _I64],
    "emu_siren_bwd": [_INT, _INT, _PTR, _PTR, _PTR, _PTR, _INT, _PTR, _I64, _I64, _I64, _I64,
                      _DBL, _DBL, _INT, _INT, _PTR, _PTR, _PTR, _PTR, _PTR, _PTR, _PTR],
    "emu_smooth_blocks": [_I64, _I64, _I64],
    "emu_smooth_fwd": [_INT, _PTR, _PTR, _PTR, _PTR, _I64, _I64, _I64, _I64, _INT, _INT, _PTR,
                       _PTR, _PTR, _I64],
    "emu_smooth_bwd": [_INT, _PTR, _PTR, _PTR, _PTR, _I64, _I64, _I64, _I64, _INT, _INT, _PTR,
                       _PTR, _PTR],
    "emu_arap_blocks": [_I64, _I64],
    "emu_arap_fwd": [_INT, _PTR, _PTR, _I64, _PTR, _PTR, _PTR, _I64, _I64, _I64, _I64, _INT, _PTR,
                     _PTR, _PTR, _I64],
    "emu_arap_bwd": [_INT, _PTR, _PTR, _I64, _PTR, _PTR, _PTR, _I64, _I64, _I64, _I64, _INT, _PTR,
                     _PTR, _PTR],
    "emu_trio_blocks": [_I64, _I64],
    "emu_trio_fwd": [_INT, _PTR, _PTR, _PTR, _PTR, _PTR, _PTR, _I64, _I64, _I64, _I64, _INT, _INT,
                     _PTR, _INT, _PTR, _PTR, _PTR, _PTR, _PTR, _I64],
    "emu_trio_bwd": [_INT, _PTR, _PTR, _PTR, _PTR, _PTR, _PTR, _I64, _I64, _I64, _I64, _INT, _INT,
                     _PTR, _INT, _PTR, _PTR, _PTR, _PTR, _PTR, _PTR],
}


def load():
    lib = ctypes.CDLL(str(build()))
    for name, args in _SIGNATURES.items():
        fn = getattr(lib, name)
        fn.argtypes = args
        fn.restype = _I64 if name.endswith("blocks") else _INT
    return lib
