"""Builds sirenpose_loss._C: the C++ CPU kernels always, the CUDA kernels when CUDA is available
(or FORCE_CUDA=1). Build with `pip install --no-build-isolation .` against the installed torch."""
import glob
import os
import shutil
import subprocess

import torch
from setuptools import find_packages, setup


def _nvcc_toolkit_root():
    """The toolkit folder of the nvcc on PATH, asked from nvcc itself: the nvcc on PATH may be a
    wrapper script or a symlink, so the folder it lies in proves nothing. None without nvcc."""
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        return None
    try:  # --dryrun prints nvcc's own settings (TOP=<toolkit>/bin/..) and runs nothing
        out = subprocess.run([nvcc, "--dryrun", "-E", "-x", "cu", os.devnull, "-o", os.devnull],
                             capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    for line in (out.stderr + out.stdout).splitlines():
        if line.startswith("#$ TOP="):
            return os.path.realpath(line[len("#$ TOP="):].strip())
    return None


def _has_headers(home):
    return bool(home) and os.path.isfile(os.path.join(home, "include", "cuda_runtime.h"))


# torch.utils.cpp_extension reads CUDA_HOME once, on import, and otherwise guesses it from the
# folder of the nvcc on PATH; a user's CUDA_HOME (or CUDA_PATH) always wins.
if not (os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")):
    _root = _nvcc_toolkit_root()
    if _has_headers(_root):
        os.environ["CUDA_HOME"] = _root

from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension  # noqa: E402

_SET_CUDA_HOME = ("set CUDA_HOME to the CUDA toolkit's folder, the one holding bin/nvcc and "
                  "include/cuda_runtime.h (for example CUDA_HOME=/usr/local/cuda-13.0)")


def use_cuda() -> bool:
    if os.environ.get("FORCE_CUDA", "0") == "1":
        if torch.version.cuda is None:
            raise RuntimeError(f"FORCE_CUDA=1 needs a CUDA build of torch (this is "
                               f"{torch.__version__})")
        if not _has_headers(CUDA_HOME):
            raise RuntimeError(f"FORCE_CUDA=1 but no CUDA toolkit was found (CUDA_HOME is "
                               f"{CUDA_HOME!r}, without include/cuda_runtime.h): {_SET_CUDA_HOME}")
        return True
    if not torch.cuda.is_available():
        return False
    if not _has_headers(CUDA_HOME):
        print(f"WARNING: building WITHOUT the CUDA kernels although a GPU is visible: no CUDA "
              f"toolkit found (CUDA_HOME is {CUDA_HOME!r}); {_SET_CUDA_HOME}", flush=True)
        return False
    return True


here = os.path.dirname(os.path.abspath(__file__))
cpp_sources = sorted(glob.glob("csrc/**/*.cpp", recursive=True))
cuda_glue = [s for s in cpp_sources if s.endswith("_cuda.cpp")]
cpu_sources = [s for s in cpp_sources if s not in cuda_glue]
debug = os.environ.get("DEBUG", "0") == "1"
# -g0: the default -g doubles compile time; -fopenmp: at::parallel_for is serial without it.
cxx_flags = ["-O0", "-g"] if debug else ["-O3", "-g0"]
# -fno-trapping-math lets the compiler vectorise branch-free selects (no FP-exception flags are read).
cxx_flags += ["-fopenmp", "-std=c++17", "-fno-math-errno", "-fno-trapping-math"]
include_dirs = [os.path.join(here, "csrc")]

if use_cuda():
    sources = cpu_sources + cuda_glue + sorted(glob.glob("csrc/**/*.cu", recursive=True))
    if not torch.cuda.is_available():
        # FORCE_CUDA=1 with no GPU to read the architecture from: Ampere, Ada and Hopper, plus
        # PTX for newer GPUs (TORCH_CUDA_ARCH_LIST, when set, decides instead).
        os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "8.0;8.6;8.9;9.0+PTX")
    # No --use_fast_math: it swaps sincosf for __sinf/__cosf, whose error grows with the
    # argument, and omega0 * (coordinate difference) can be tens of radians.
    ext = CUDAExtension(
        "sirenpose_loss._C", sources, include_dirs=include_dirs,
        define_macros=[("SIRENPOSE_WITH_CUDA", None)],
        extra_compile_args={"cxx": cxx_flags, "nvcc": ["-O3", "-std=c++17", "-lineinfo"]},
        extra_link_args=["-fopenmp"])
else:
    ext = CppExtension("sirenpose_loss._C", cpu_sources, include_dirs=include_dirs,
                       extra_compile_args={"cxx": cxx_flags}, extra_link_args=["-fopenmp"])

setup(
    name="sirenpose-loss",
    version="0.1.0",
    description="Fused, exact, differentiable keypoint and motion losses for 4D reconstruction",
    packages=find_packages(include=["sirenpose_loss", "sirenpose_loss.*"]),
    ext_modules=[ext],
    cmdclass={"build_ext": BuildExtension.with_options(no_python_abi_suffix=True)},
    python_requires=">=3.9",
    install_requires=["torch>=2.4", "numpy"],
    extras_require={"graphs": ["scipy", "torch-geometric"],
                    "examples": ["torchmetrics", "matplotlib", "tqdm", "imageio", "scipy",
                                 "torch-geometric", "pybullet==3.2.7"],
                    "test": ["pytest", "hypothesis", "scipy", "torch-geometric"],
                    "gpu": ["gsplat==1.5.3"]},  # the examples' CUDA renderer
)
