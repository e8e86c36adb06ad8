"""gsplat's CUDA ``rasterization`` behind the same interface as :mod:`.render_torch`.

UNTESTED: no GPU was available when this example was written, so this path has never run.
It follows gsplat 1.5.3's documented signature (``means, quats, scales, opacities, colors,
viewmats, Ks, width, height, near_plane, far_plane, eps2d, backgrounds, packed,
rasterize_mode``) and is imported lazily, only when ``renderer="gsplat"`` is chosen, so the
rest of the example never needs gsplat or CUDA. gsplat builds its CUDA kernels JIT on first
use (minutes; see gsplat#500 for MAX_JOBS). ``tests/test_examples.py`` compares this path
with the pure-PyTorch renderer when CUDA and gsplat are both present.
"""
from typing import Optional


def _import_gsplat():
    try:
        from gsplat import rasterization as _rasterization  # noqa: WPS433 (lazy on purpose)
    except ImportError as err:  # pragma: no cover - depends on the machine
        raise ImportError("renderer='gsplat' needs gsplat (pip install gsplat==1.5.3) and a CUDA "
                          "GPU; use renderer='torch' on a CPU") from err
    return _rasterization


def rasterization(means, quats, scales, opacities, colors, viewmats, Ks, width, height, *,
                  near_plane=0.01, far_plane=1e10, eps2d=0.3, backgrounds=None,
                  max_radius: Optional[float] = None, **unused):  # pragma: no cover - GPU only
    """See :func:`.render_torch.rasterization` (same arguments and outputs).

    ``max_radius`` has no gsplat counterpart and is ignored. gsplat needs CUDA tensors."""
    if not means.is_cuda:
        raise RuntimeError("gsplat rasterization needs CUDA tensors (means is on "
                           f"{means.device}); use renderer='torch' on a CPU")
    raster = _import_gsplat()
    colors_out, alphas, meta = raster(
        means=means, quats=quats, scales=scales, opacities=opacities, colors=colors,
        viewmats=viewmats, Ks=Ks, width=width, height=height, near_plane=near_plane,
        far_plane=far_plane, eps2d=eps2d, backgrounds=backgrounds, packed=False,
        rasterize_mode="classic", render_mode="RGB")
    return colors_out, alphas, meta
