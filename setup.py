"""Builds sirenpose_loss._C: the C++ CPU kernels always, the CUDA kernels when CUDA is available
(or FORCE_CUDA=1). Build with `pip install --no-build-isolation .` against the installed torch."""
import glob
import os

from setuptools import find_packages, setup
from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension


def use_cuda() -> bool:
    if os.environ.get("FORCE_CUDA", "0") == "1":
        return True
    import torch
    return torch.cuda.is_available() and CUDA_HOME is not None


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
    import torch
    if CUDA_HOME is None:
        raise RuntimeError(f"FORCE_CUDA=1 needs a CUDA build of torch (this is {torch.__version__}) "
                           "and the CUDA toolkit (CUDA_HOME)")
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
                                 "torch-geometric"],
                    "test": ["pytest", "hypothesis", "scipy", "torch-geometric"],
                    "gpu": ["gsplat==1.5.3"]},  # the examples' CUDA renderer
)
