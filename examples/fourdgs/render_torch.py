"""A small differentiable 3-D Gaussian splatting renderer in plain PyTorch (CPU or GPU).

The image formation of gsplat 1.5.3's ``rasterization`` (``rasterize_mode="classic"``), so the
example trainer can swap one for the other and the two agree to float rounding:

1. **project**, per image: camera-space mean ``(x, y, z)``; culled unless
   ``near_plane <= z <= far_plane``. 2-D covariance ``S = J W Sigma W^T J^T + eps2d I`` (EWA;
   the blur ``eps2d = 0.3`` is added to both diagonal entries), the Jacobian taken at
   ``x/z, y/z`` clamped to the field of view widened by ``0.3 tan(fov/2)`` on each side.
   Culled when ``det S <= 0`` or the opacity ``o < 1/255``. Radius per axis
   ``r_x = ceil(e sqrt(S_xx))``, ``r_y = ceil(e sqrt(S_yy))`` with
   ``e = min(3.33, sqrt(2 ln(255 o)))``: the bounding box of the ellipse where
   ``o exp(-q/2) >= 1/255``. Culled when the box lies outside the image.
2. **per pixel** (centre at integer + 0.5): ``sigma = q/2`` (``q`` the Mahalanobis distance
   under ``S``), ``alpha = min(0.999, o exp(-sigma))``; pairs with ``alpha < 1/255`` are
   skipped.
3. **composite** front to back by depth: ``C = sum_i c_i alpha_i T_i + T_final * background``,
   stopping before the Gaussian that would bring ``T`` to ``<= 1e-4`` (it and everything
   behind it are left out).

The cap ``e <= 3.33`` binds only for ``o > 256/255``, so for any opacity up to 1 the box holds
every pixel with ``alpha >= 1/255``: the image equals a dense evaluation of every (Gaussian,
pixel) pair under the alpha threshold. gsplat tests every pixel of the 16x16 tiles the box
overlaps; we list the pixels of the box itself. Both look at a superset of the pixels that
count and skip the same ``alpha < 1/255`` pairs, so neither drops a contribution.

We list the (image, Gaussian, pixel) pairs of every box, sort them by (pixel, depth) and
composite with a segmented cumulative sum of ``log(1 - alpha)`` (float64), all vectorised, so
autograd gives the exact gradient of this image formation.

Calls are batched like gsplat 1.5.3's: ``means [..., N, 3]`` with ``viewmats [..., C, 4, 4]``
render ``C`` cameras of each of the ``...`` scenes in one call (a 4-D trainer passes the
centres of several frames as ``[F, N, 3]`` with one camera each, ``viewmats [F, 1, 4, 4]``).
"""
import math
from typing import Dict, Optional

import torch

ALPHA_MIN = 1.0 / 255.0   # contributions below it are skipped; Gaussians below it are culled
ALPHA_MAX = 0.999         # gsplat 1.5.3's clamp of a single contribution
T_MIN = 1e-4              # a pixel stops before its transmittance would fall to this
EXTENT_MAX = 3.33         # box half-size cap, in standard deviations
FOV_MARGIN = 0.3          # the Jacobian's clamp: the field of view widened by this x tan(fov/2)
META_KEYS = ("radii", "means2d", "depths", "conics", "opacities", "width", "height",
             "n_batches", "n_cameras")


def quat_to_rotmat(quats: torch.Tensor) -> torch.Tensor:
    """``[..., 4]`` quaternions (w, x, y, z; need not be unit) -> rotation matrices ``[..., 3, 3]``."""
    q = quats / quats.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    w, x, y, z = q.unbind(-1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], dim=-1).reshape(q.shape[:-1] + (3, 3))


def _shape(name, t, tail, batch=None):
    """Check ``t.shape == batch + tail`` (a str in ``tail`` names a dim of any size); returns
    the leading dims (``batch`` when given)."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a tensor, got {type(t).__name__}")
    lead = tuple(t.shape[:t.dim() - len(tail)])
    ok = t.dim() >= len(tail) and (batch is None or lead == tuple(batch)) and all(
        isinstance(want, str) or got == want for got, want in zip(t.shape[len(lead):], tail))
    if not ok:
        dims = ["..."] if batch is None else [str(b) for b in batch]
        dims += [str(x) for x in tail]
        raise ValueError(f"{name} must have shape [{', '.join(dims)}], got {list(t.shape)}")
    return lead


def check_inputs(means, quats, scales, opacities, colors, viewmats, Ks, backgrounds=None):
    """Validate a (batched) call; returns ``(batch_dims, N, C)``. Errors name the argument."""
    batch = _shape("means", means, ("N", 3))
    n = means.shape[-2]
    _shape("quats", quats, (n, 4), batch)
    _shape("scales", scales, (n, 3), batch)
    _shape("opacities", opacities, (n,), batch)
    _shape("viewmats", viewmats, ("C", 4, 4), batch)
    c = viewmats.shape[-3]
    _shape("Ks", Ks, (c, 3, 3), batch)
    per_camera = isinstance(colors, torch.Tensor) and colors.dim() == len(batch) + 3
    _shape("colors", colors, (c, n, "D") if per_camera else (n, "D"), batch)
    if backgrounds is not None:
        _shape("backgrounds", backgrounds, (c, colors.shape[-1]), batch)
    return batch, n, c


def finish_meta(radii, means2d, depths, conics, opacities, width, height) -> Dict:
    """The metadata both renderers return: ``radii [..., C, N, 2]`` int32 and ``means2d
    [..., C, N, 2]``, ``depths [..., C, N]``, ``conics [..., C, N, 3]``, ``opacities
    [..., C, N]`` with the entries of culled Gaussians (``radii == 0``) set to zero."""
    valid = (radii > 0).all(-1)
    zero = lambda x: torch.where(valid.view(valid.shape + (1,) * (x.dim() - valid.dim())),  # noqa: E731
                                 x, torch.zeros((), dtype=x.dtype, device=x.device))
    shape = radii.shape[:-1]
    return dict(radii=radii.to(torch.int32), means2d=zero(means2d), depths=zero(depths),
                conics=zero(conics), opacities=zero(opacities.expand(shape)), width=width,
                height=height, n_batches=math.prod(shape[:-2]), n_cameras=shape[-2])


def project_gaussians(means, quats, scales, opacities, viewmats, Ks, width, height, *,
                      near_plane=0.01, far_plane=1e10, eps2d=0.3, radius_clip=0.0):
    """EWA projection of ``N`` Gaussians ``[..., N, *]`` into ``C`` cameras ``[..., C, *, *]``.

    Returns a dict of ``[..., C, N, *]`` tensors: ``means2d``, ``depths``, ``conics`` (a, b, c of
    the inverse 2-D covariance ``[[a, b], [b, c]]``), ``radii`` (int, ``[..., C, N, 2]``, 0 =
    culled) and ``valid`` (bool). Culled entries are left as computed (not zeroed)."""
    rot_w, t_w = viewmats[..., :3, :3], viewmats[..., :3, 3]                 # [..., C, 3(, 3)]
    mc = means.unsqueeze(-3) @ rot_w.transpose(-1, -2) + t_w.unsqueeze(-2)   # [..., C, N, 3]
    z = mc[..., 2]
    valid = (z >= near_plane) & (z <= far_plane)
    zs = torch.where(valid, z, torch.ones_like(z))
    k = lambda i, j: Ks[..., i, j].unsqueeze(-1)  # noqa: E731  [..., C, 1]
    fx, fy, cx, cy = k(0, 0), k(1, 1), k(0, 2), k(1, 2)
    tan_fovx, tan_fovy = 0.5 * width / fx, 0.5 * height / fy
    lim_x_pos, lim_x_neg = (width - cx) / fx + FOV_MARGIN * tan_fovx, cx / fx + FOV_MARGIN * tan_fovx
    lim_y_pos, lim_y_neg = (height - cy) / fy + FOV_MARGIN * tan_fovy, cy / fy + FOV_MARGIN * tan_fovy
    tx = zs * torch.minimum(torch.maximum(mc[..., 0] / zs, -lim_x_neg), lim_x_pos)
    ty = zs * torch.minimum(torch.maximum(mc[..., 1] / zs, -lim_y_neg), lim_y_pos)
    zero = torch.zeros_like(zs)
    jac = torch.stack([torch.stack([fx / zs, zero, -fx * tx / zs ** 2], -1),
                       torch.stack([zero, fy / zs, -fy * ty / zs ** 2], -1)], dim=-2)  # [...,C,N,2,3]
    rs = quat_to_rotmat(quats) * scales.unsqueeze(-2)  # R S, [..., N, 3, 3]
    cov3 = (rs @ rs.transpose(-1, -2)).unsqueeze(-4)   # [..., 1, N, 3, 3]
    jw = jac @ rot_w.unsqueeze(-3)
    cov2 = jw @ cov3 @ jw.transpose(-1, -2)
    a = cov2[..., 0, 0] + eps2d
    b = cov2[..., 0, 1]
    c = cov2[..., 1, 1] + eps2d
    det = a * c - b * b
    opac = opacities.unsqueeze(-2).expand(z.shape)
    valid = valid & (det > 0) & (opac >= ALPHA_MIN)
    det = torch.where(valid, det, torch.ones_like(det))
    conics = torch.stack([c / det, -b / det, a / det], dim=-1)
    means2d = torch.stack([fx * mc[..., 0] / zs + cx, fy * mc[..., 1] / zs + cy], dim=-1)
    with torch.no_grad():
        ratio = torch.where(valid, opac / ALPHA_MIN, torch.ones_like(opac))
        extent = torch.sqrt(2 * torch.log(ratio)).clamp_max(EXTENT_MAX)
        rx = torch.ceil(extent * torch.sqrt(a.clamp_min(0)))
        ry = torch.ceil(extent * torch.sqrt(c.clamp_min(0)))
        u, v = means2d[..., 0], means2d[..., 1]
        inside = (u + rx > 0) & (u - rx < width) & (v + ry > 0) & (v - ry < height)
        valid = valid & inside & ~((rx <= radius_clip) & (ry <= radius_clip))
        radii = torch.where(valid.unsqueeze(-1), torch.stack([rx, ry], -1), 0).to(torch.int32)
    return dict(means2d=means2d, depths=z, conics=conics, radii=radii, valid=valid)


def _pixel_pairs(means2d, radii, valid, width, height):
    """(flat Gaussian index, px, py) of every pixel centre inside each valid box (no grad).
    ``means2d [I*N, 2]``, ``radii [I*N, 2]``, ``valid [I*N]``."""
    idx = torch.nonzero(valid, as_tuple=False).squeeze(-1)
    m = means2d.index_select(0, idx)
    r = radii.index_select(0, idx).to(means2d.dtype)
    # pixel j's centre j + 0.5 lies in [u - r, u + r]
    x0 = torch.ceil(m[:, 0] - r[:, 0] - 0.5).clamp(0, width - 1).long()
    x1 = torch.floor(m[:, 0] + r[:, 0] - 0.5).clamp(0, width - 1).long()
    y0 = torch.ceil(m[:, 1] - r[:, 1] - 0.5).clamp(0, height - 1).long()
    y1 = torch.floor(m[:, 1] + r[:, 1] - 0.5).clamp(0, height - 1).long()
    nx, ny = (x1 - x0 + 1).clamp_min(0), (y1 - y0 + 1).clamp_min(0)
    counts = nx * ny
    gid = torch.repeat_interleave(torch.arange(idx.numel(), device=idx.device), counts)
    start = torch.cumsum(counts, 0) - counts
    local = torch.arange(gid.numel(), device=idx.device) - start.index_select(0, gid)
    nxg = nx.index_select(0, gid)
    py_local = torch.div(local, nxg, rounding_mode="floor")
    px = x0.index_select(0, gid) + local - py_local * nxg
    py = y0.index_select(0, gid) + py_local
    return idx.index_select(0, gid), px, py


def _pair_alpha(means2d, conics, opacities, gid, px, py):
    """``sigma`` and ``alpha = min(0.999, o exp(-sigma))`` of (Gaussian, pixel) pairs."""
    m = means2d.index_select(0, gid)
    cn = conics.index_select(0, gid)
    dx = px.to(m.dtype) + 0.5 - m[:, 0]
    dy = py.to(m.dtype) + 0.5 - m[:, 1]
    sigma = 0.5 * (cn[:, 0] * dx * dx + cn[:, 2] * dy * dy) + cn[:, 1] * dx * dy
    alpha = torch.clamp_max(opacities.index_select(0, gid) * torch.exp(-sigma), ALPHA_MAX)
    return sigma, alpha


def _composite(means2d, conics, depths, radii, valid, opacities, colors, width, height):
    """Alpha-composite ``I`` images at once. Inputs are flat over (image, Gaussian): ``[I*N, *]``.
    Returns ``colour [I*H*W, D]`` and ``alpha [I*H*W]`` (no background)."""
    n_flat, d = colors.shape
    n = depths.shape[-1]
    num_img = n_flat // n
    with torch.no_grad():  # which pairs count, and in which order (no gradient needed)
        gid, px, py = _pixel_pairs(means2d.detach(), radii, valid.reshape(-1), width, height)
        sigma, alpha = _pair_alpha(means2d.detach(), conics.detach(), opacities.detach(), gid, px, py)
        keep = torch.nonzero((sigma >= 0) & (alpha >= ALPHA_MIN)).squeeze(-1)
        gid, px, py = gid.index_select(0, keep), px.index_select(0, keep), py.index_select(0, keep)
        img = torch.div(gid, n, rounding_mode="floor")
        pix = (img * height + py) * width + px                      # global pixel index
        rank = torch.argsort(torch.argsort(depths.detach(), dim=-1), dim=-1).reshape(-1)
        order = torch.argsort(pix * n + rank.index_select(0, gid))  # by pixel, then depth
        gid, px, py, pix = (x.index_select(0, order) for x in (gid, px, py, pix))
        first = torch.ones_like(pix, dtype=torch.bool)
        first[1:] = pix[1:] != pix[:-1]
        seg = torch.cumsum(first.long(), 0) - 1
        first_idx = torch.nonzero(first).squeeze(-1)
    _, alpha = _pair_alpha(means2d, conics, opacities, gid, px, py)  # differentiable
    log_t = torch.log1p(-alpha.double())
    csum = torch.cumsum(log_t, 0)
    excl = csum - log_t
    start = excl.index_select(0, first_idx).index_select(0, seg)
    trans = torch.exp(excl - start)  # transmittance in front of each pair
    with torch.no_grad():  # stop before T would fall to T_MIN (and after: T only falls)
        alive = torch.exp(csum - start) > T_MIN
    w = torch.where(alive, alpha * trans.to(alpha.dtype), torch.zeros_like(alpha))
    num_pix = num_img * width * height
    out = colors.new_zeros(num_pix, d).index_add(0, pix, w.unsqueeze(-1) * colors.index_select(0, gid))
    acc = alpha.new_zeros(num_pix).index_add(0, pix, w)
    return out, acc


def rasterization(means, quats, scales, opacities, colors, viewmats, Ks, width, height, *,
                  near_plane=0.01, far_plane=1e10, eps2d=0.3, radius_clip=0.0, backgrounds=None,
                  **unused):
    """gsplat-1.5.3-style call, batched: ``means [..., N, 3]``, ``quats [..., N, 4]`` (wxyz),
    ``scales [..., N, 3]``, ``opacities [..., N]``, ``colors [..., N, D]`` or ``[..., C, N, D]``
    (post-activation), ``viewmats [..., C, 4, 4]``, ``Ks [..., C, 3, 3]``, ``backgrounds
    [..., C, D]`` (optional). Returns ``(render_colors [..., C, H, W, D], render_alphas
    [..., C, H, W, 1], meta)``; ``meta`` has the keys :data:`META_KEYS` (see
    :func:`finish_meta`). gsplat arguments this renderer has no use for are ignored, except
    modes it does not implement, which raise."""
    for key, only in (("rasterize_mode", "classic"), ("render_mode", "RGB"), ("sh_degree", None)):
        if unused.get(key, only) != only:
            raise ValueError(f"{key} must be {only!r} (the only mode this renderer implements), "
                             f"got {unused[key]!r}")
    batch, n, c = check_inputs(means, quats, scales, opacities, colors, viewmats, Ks, backgrounds)
    proj = project_gaussians(means, quats, scales, opacities, viewmats, Ks, width, height,
                             near_plane=near_plane, far_plane=far_plane, eps2d=eps2d,
                             radius_clip=radius_clip)
    lead = batch + (c, n)
    d = colors.shape[-1]
    cols = colors if colors.dim() == len(batch) + 3 else colors.unsqueeze(-3)
    opac = opacities.unsqueeze(-2).expand(lead)
    out, acc = _composite(proj["means2d"].reshape(-1, 2), proj["conics"].reshape(-1, 3),
                          proj["depths"].reshape(-1, n), proj["radii"].reshape(-1, 2),
                          proj["valid"], opac.reshape(-1), cols.expand(lead + (d,)).reshape(-1, d),
                          width, height)
    image = out.view(batch + (c, height, width, d))
    alpha = acc.view(batch + (c, height, width, 1))
    if backgrounds is not None:
        image = image + (1 - alpha) * backgrounds[..., None, None, :]
    meta = finish_meta(proj["radii"], proj["means2d"], proj["depths"], proj["conics"], opac,
                       width, height)
    return image, alpha, meta


@torch.no_grad()
def contributions_at(points2d, means, quats, scales, opacities, viewmat, K, width, height, *,
                     eps2d=0.3):
    """Blending weight ``alpha_i T_i`` of every Gaussian at a few image points.

    ``points2d [Q, 2]`` in pixels -> ``weights [Q, N]``: how much each Gaussian contributes to
    the colour seen at each point (the visible surface there). Dense; meant for a handful of
    points (e.g. binding keypoints to the Gaussians they sit on)."""
    proj = project_gaussians(means, quats, scales, opacities, viewmat[None], K[None], width,
                             height, eps2d=eps2d)
    m2d, cn, depth, valid = (proj[k][0] for k in ("means2d", "conics", "depths", "valid"))
    d = points2d.unsqueeze(1) - m2d.unsqueeze(0)  # [Q, N, 2]
    sigma = 0.5 * (cn[:, 0] * d[..., 0] ** 2 + cn[:, 2] * d[..., 1] ** 2) + cn[:, 1] * d[..., 0] * d[..., 1]
    alpha = torch.clamp_max(opacities * torch.exp(-sigma), ALPHA_MAX)
    alpha = torch.where((sigma >= 0) & (alpha >= ALPHA_MIN) & valid, alpha, torch.zeros_like(alpha))
    order = torch.argsort(depth)
    a = alpha[:, order]
    trans = torch.cumprod(torch.cat([torch.ones_like(a[:, :1]), 1 - a[:, :-1]], 1), 1)
    w_sorted = a * trans
    w = torch.zeros_like(w_sorted)
    w[:, order] = w_sorted
    return w
