"""gsplat's CUDA ``rasterization`` behind the interface of :mod:`.render_torch`.

gsplat 1.5.3, ``packed=False``, ``rasterize_mode="classic"``, ``render_mode="RGB"``. Batched
calls pass straight through (``means [..., N, 3]``, ``viewmats [..., C, 4, 4]``). Imported
lazily, only when ``renderer="gsplat"`` is chosen, so the rest of the example never needs
gsplat or CUDA; :func:`.probes.require_gsplat` runs first and turns a missing gsplat, a missing
CUDA toolkit or a failed kernel compilation into one clear message.

What comes back is what :func:`.render_torch.rasterization` returns: ``render_colors
[..., C, H, W, D]``, ``render_alphas [..., C, H, W, 1]`` and ``meta`` with exactly the keys
``render_torch.META_KEYS``: ``radii [..., C, N, 2]`` int32 (per-axis, 0 = culled), ``means2d``,
``depths``, ``conics``, ``opacities`` ``[..., C, N(, *)]`` with culled entries set to zero
(gsplat leaves them uninitialised), ``width``, ``height``, ``n_batches``, ``n_cameras``.
gsplat's other metadata (tile intersections) is dropped.

What differs: gsplat needs CUDA float32 tensors (the torch renderer also runs float64 and on a
CPU); it evaluates ``exp`` with fast-math and keeps the transmittance in float32, where the
torch renderer sums ``log(1 - alpha)`` in float64. The image formation is the same, so the
two agree to float32 rounding (``tests/test_renderers.py``).
"""
from . import probes
from .render_torch import check_inputs, finish_meta


def rasterization(means, quats, scales, opacities, colors, viewmats, Ks, width, height, *,
                  near_plane=0.01, far_plane=1e10, eps2d=0.3, radius_clip=0.0, backgrounds=None,
                  **unused):  # pragma: no cover - needs CUDA and gsplat
    """See :func:`.render_torch.rasterization` (same arguments and outputs)."""
    check_inputs(means, quats, scales, opacities, colors, viewmats, Ks, backgrounds)
    if not means.is_cuda:
        raise RuntimeError("gsplat rasterization needs CUDA tensors (means is on "
                           f"{means.device}); use renderer='torch' on a CPU")
    probes.require_gsplat()
    from gsplat import rasterization as raster  # lazy on purpose
    colors_out, alphas, meta = raster(
        means=means, quats=quats, scales=scales, opacities=opacities, colors=colors,
        viewmats=viewmats, Ks=Ks, width=width, height=height, near_plane=near_plane,
        far_plane=far_plane, eps2d=eps2d, radius_clip=radius_clip, backgrounds=backgrounds,
        packed=False, rasterize_mode="classic", render_mode="RGB")
    return colors_out, alphas, finish_meta(meta["radii"], meta["means2d"], meta["depths"],
                                           meta["conics"], meta["opacities"], width, height)
