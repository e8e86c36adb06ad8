"""Up-front checks of what a GPU run needs, each failing with one message that says what to
install or set.

Run them before any scene is built (``--preset gpu`` builds a 48-frame, 256 px scene first):

* :func:`require_gsplat`: a CUDA GPU, gsplat 1.5.3, and its compiled kernels. gsplat 1.5.3
  ships CUDA sources only and compiles them with torch's C++-extension JIT the first time its
  backend is imported (a few minutes); when that finds no CUDA toolkit its backend is ``None``
  and the first render fails with an ``AttributeError`` on ``None``. So the probe imports the
  backend itself, which also does the one-time compilation up front.
* :func:`require_package_cuda`: sirenpose_loss built with its CUDA kernels (otherwise its
  losses raise ``NotImplementedError`` on CUDA tensors, only once a loss term is switched on).
* :func:`check_setup`: both, as a :class:`~.config.Config` needs them.
"""
import importlib
import os
import re
import shutil
import subprocess

import torch

GSPLAT_VERSION = "1.5.3"
INSTALL = ("pip install -r requirements-gpu.txt (or bash scripts/setup.sh on this machine); "
           "without network: bash tools/gpu_check_examples.sh path/to/gsplat-1.5.3-py3-none-any.whl")


class SetupError(RuntimeError):
    """Something a run needs is missing; the message says what to install or set."""


def _import(name: str):
    return importlib.import_module(name)


def _torch_cuda_version():
    return torch.version.cuda


def _toolkit_report() -> str:
    """Where CUDA_HOME points and which nvcc is found (with its release), for messages."""
    home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")
    nvcc = os.path.join(home, "bin", "nvcc") if home else None
    if not (nvcc and os.path.isfile(nvcc)):
        nvcc = shutil.which("nvcc")
    release = None
    if nvcc:
        try:
            out = subprocess.run([nvcc, "--version"], capture_output=True, text=True, timeout=20).stdout
            found = re.search(r"release (\d+\.\d+)", out)
            release = found.group(1) if found else None
        except (OSError, subprocess.SubprocessError):
            pass
    where = f"nvcc {nvcc} (release {release or 'unknown'})" if nvcc else "no nvcc found"
    return f"now CUDA_HOME={home or 'unset'}, {where}"


def _toolkit_advice() -> str:
    return (f"set CUDA_HOME to a CUDA toolkit whose nvcc matches torch's CUDA "
            f"{_torch_cuda_version()} ({_toolkit_report()})")


def require_cuda(what: str) -> None:
    if not torch.cuda.is_available():
        built = _torch_cuda_version() or "none (a CPU-only build of torch)"
        raise SetupError(f"{what} needs a CUDA GPU, but torch {torch.__version__} sees none "
                         f"(torch's CUDA: {built}). On a CPU use --preset cpu, or "
                         f"--device cpu --renderer torch.")


def require_gsplat() -> None:
    """A GPU, gsplat 1.5.3 and its compiled CUDA kernels (compiling them now if needed)."""
    require_cuda("renderer 'gsplat'")
    try:
        gsplat = _import("gsplat")
    except ImportError as err:
        raise SetupError(f"gsplat is not installed (renderer 'gsplat' needs gsplat=={GSPLAT_VERSION}): "
                         f"{INSTALL}") from err
    version = getattr(gsplat, "__version__", "unknown")
    if version != GSPLAT_VERSION:
        raise SetupError(f"gsplat {version} is installed; the examples follow gsplat "
                         f"{GSPLAT_VERSION}'s call and image formation: pip install "
                         f"gsplat=={GSPLAT_VERSION}")
    try:
        backend = _import("gsplat.cuda._backend")
    except ModuleNotFoundError as err:
        if err.name and not err.name.startswith("gsplat"):
            raise SetupError(f"gsplat's CUDA backend needs the Python package '{err.name}', which "
                             f"is not installed: {INSTALL} (offline: put its wheel next to "
                             f"gsplat's)") from err
        raise SetupError(f"gsplat {version} is incomplete ({err}): reinstall it: {INSTALL}") from err
    except Exception as err:  # noqa: BLE001 - the JIT compiler's failures have many types
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise SetupError(
            f"gsplat {version} could not compile its CUDA kernels ({type(err).__name__}: {first}). "
            f"It compiles them on first use with nvcc and a C++ compiler: {_toolkit_advice()}; "
            f"lower MAX_JOBS if the compiler runs out of memory; rerun with VERBOSE=1 to see "
            f"the compiler's output") from err
    if getattr(backend, "_C", None) is None:
        raise SetupError(f"gsplat {version} has no compiled CUDA kernels: it compiles them on first "
                         f"use and found no CUDA toolkit. Install one and {_toolkit_advice()}, "
                         f"then run again (the first run compiles for a few minutes)")


def require_package_cuda() -> None:
    """sirenpose_loss's CUDA kernels (its losses on CUDA tensors)."""
    require_cuda("running the losses on cuda")
    import sirenpose_loss
    if not sirenpose_loss.cuda_kernels_built():
        raise SetupError(
            f"sirenpose_loss was built without its CUDA kernels (backend: "
            f"{sirenpose_loss.backend()}), so its losses cannot run on cuda. Rebuild it on this "
            f"machine: FORCE_CUDA=1 pip install --no-build-isolation -e . ({_toolkit_advice()}), "
            f"or bash scripts/setup.sh")


def renderer_name(cfg) -> str:
    """The renderer ``cfg`` resolves to (``auto``: gsplat on CUDA, torch elsewhere)."""
    if cfg.renderer == "auto":
        return "gsplat" if str(cfg.device).startswith("cuda") else "torch"
    return cfg.renderer


def check_setup(cfg) -> None:
    """Everything ``cfg`` needs beyond the CPU path: gsplat for the gsplat renderer, the
    package's CUDA kernels for a CUDA device. A no-op for a CPU config."""
    if renderer_name(cfg) == "gsplat":
        require_gsplat()
    if str(cfg.device).startswith("cuda"):
        require_package_cuda()
