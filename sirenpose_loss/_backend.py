"""Loads the compiled kernels; falls back to the pure-PyTorch reference with one loud warning."""
import os
import warnings

import torch  # noqa: F401  (loads libc10/libtorch, which _C links against, before _C)

try:
    from . import _C  # noqa: F401  (loading the library registers the torch.ops.sirenpose_loss ops)
    if not hasattr(_C, "REDUCTION_NONE"):  # what _ops.py reads from it
        raise ImportError(f"{_C.__file__} was built from older sources")
    _LOAD_ERROR = None
except ImportError as exc:  # not built, built from older sources, or against another torch
    _LOAD_ERROR = exc

COMPILED = _LOAD_ERROR is None

if not COMPILED:
    warnings.warn(
        "sirenpose_loss: the compiled kernels could not be loaded "
        f"({_LOAD_ERROR}); every loss now runs the slow pure-PyTorch reference. Rebuild with "
        "`pip install --no-build-isolation .` against the torch you have installed.",
        RuntimeWarning, stacklevel=2)


def backend() -> str:
    """Which implementation the losses run: ``"compiled"`` (our C++/CUDA kernels) or ``"reference"``."""
    return "compiled" if COMPILED else "reference"


def cuda_kernels_built() -> bool:
    """True when the extension was built with its CUDA kernels (a CUDA build of torch is needed too)."""
    if not COMPILED:
        return False
    return torch._C._dispatch_has_kernel_for_dispatch_key("sirenpose_loss::keypoint_match_fwd", "CUDA")


def _require_compiled_if_asked() -> None:
    # Test suites set SIRENPOSE_REQUIRE_COMPILED=1 so a silent fallback fails loudly there.
    if os.environ.get("SIRENPOSE_REQUIRE_COMPILED") == "1" and not COMPILED:
        raise ImportError(f"SIRENPOSE_REQUIRE_COMPILED=1 but the compiled kernels failed to load: "
                          f"{_LOAD_ERROR}")


_require_compiled_if_asked()
