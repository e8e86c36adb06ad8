"""A small differentiable 3-D Gaussian splatting renderer in plain PyTorch (CPU or GPU).

Same interface and (up to the tile-level culling) the same image formation as gsplat 1.5.3's
``rasterization`` in its "classic" mode, so the example trainer can swap one for the other:

1. project: camera-space mean ``(x, y, z)``; keep ``near_plane < z < far_plane``;
   2-D covariance ``J W Sigma W^T J^T + eps2d I`` (EWA), the Jacobian taken at ``x/z, y/z``
   clamped to 1.3x the field of view like gsplat; ``radius = ceil(3 sqrt(lambda_max))``;
2. per pixel (centre at integer + 0.5), ``alpha_i = min(0.999, o_i exp(-q_i/2))`` where ``q_i``
   is the Mahalanobis distance; contributions with ``alpha < 1/255`` are skipped;
3. front-to-back compositing by depth, ``C = sum_i c_i alpha_i T_i + T_final * background``,
   stopping before the Gaussian that would bring ``T`` to ``<= 1e-4``.

Instead of gsplat's 16x16 tiles it enumerates the (Gaussian, pixel) pairs inside each
Gaussian's ``3 sigma`` square, sorts them by (pixel, depth) and composites with a segmented
cumulative sum of ``log(1 - alpha)`` (float64), all vectorised, so autograd gives the exact
gradient of this image formation. gsplat also lets a Gaussian touch every pixel of the tiles
its square overlaps, so the two differ by at most a few ``~1/255``-sized contributions at
the edges of footprints.
"""
from typing import Optional

import torch

ALPHA_MIN = 1.0 / 255.0
ALPHA_MAX = 0.999
T_MIN = 1e-4


def quat_to_rotmat(quats: torch.Tensor) -> torch.Tensor:
    """``[N, 4]`` quaternions (w, x, y, z; need not be unit) -> rotation matrices ``[N, 3, 3]``."""
    q = quats / quats.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    w, x, y, z = q.unbind(-1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], dim=-1).reshape(q.shape[:-1] + (3, 3))


def project_gaussians(means, quats, scales, viewmat, K, width, height, *, near_plane=0.01,
                      far_plane=1e10, eps2d=0.3, max_radius: Optional[float] = None):
    """EWA projection of ``N`` Gaussians into one camera.

    Returns a dict with ``means2d [N, 2]``, ``depths [N]``, ``conics [N, 3]`` (a, b, c of the
    inverse 2-D covariance ``[[a, b], [b, c]]``), ``radii [N]`` (int, 0 = culled) and
    ``valid [N]`` (bool).
    """
    rot_w, t_w = viewmat[:3, :3], viewmat[:3, 3]
    mc = means @ rot_w.T + t_w
    z = mc[:, 2]
    valid = (z > near_plane) & (z < far_plane)
    zs = torch.where(valid, z, torch.ones_like(z))
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    tan_fovx, tan_fovy = 0.5 * width / fx, 0.5 * height / fy
    lim_x_pos, lim_x_neg = (width - cx) / fx + 0.3 * tan_fovx, cx / fx + 0.3 * tan_fovx
    lim_y_pos, lim_y_neg = (height - cy) / fy + 0.3 * tan_fovy, cy / fy + 0.3 * tan_fovy
    tx = zs * torch.minimum(torch.maximum(mc[:, 0] / zs, -lim_x_neg), lim_x_pos)
    ty = zs * torch.minimum(torch.maximum(mc[:, 1] / zs, -lim_y_neg), lim_y_pos)
    zero = torch.zeros_like(zs)
    jac = torch.stack([torch.stack([fx / zs, zero, -fx * tx / zs ** 2], -1),
                       torch.stack([zero, fy / zs, -fy * ty / zs ** 2], -1)], dim=-2)  # [N,2,3]
    rs = quat_to_rotmat(quats) * scales.unsqueeze(-2)  # R S
    cov3 = rs @ rs.transpose(-1, -2)
    jw = jac @ rot_w
    cov2 = jw @ cov3 @ jw.transpose(-1, -2)
    a = cov2[:, 0, 0] + eps2d
    b = cov2[:, 0, 1]
    c = cov2[:, 1, 1] + eps2d
    det = a * c - b * b
    valid = valid & (det > 0)
    det = torch.where(valid, det, torch.ones_like(det))
    conics = torch.stack([c / det, -b / det, a / det], dim=-1)
    means2d = torch.stack([fx * mc[:, 0] / zs + cx, fy * mc[:, 1] / zs + cy], dim=-1)
    with torch.no_grad():
        mid = 0.5 * (a + c)
        lam = mid + torch.sqrt((mid * mid - det).clamp_min(0.01))
        radii = torch.ceil(3.0 * torch.sqrt(lam))
        if max_radius is not None:
            radii = radii.clamp_max(max_radius)
        u, v = means2d[:, 0], means2d[:, 1]
        inside = (u + radii > 0) & (u - radii < width) & (v + radii > 0) & (v - radii < height)
        valid = valid & inside & (radii > 0)
        radii = torch.where(valid, radii, torch.zeros_like(radii)).long()
    return dict(means2d=means2d, depths=z, conics=conics, radii=radii, valid=valid)


def _pixel_pairs(means2d, radii, valid, width, height):
    """Enumerate (gaussian, pixel) pairs in each valid Gaussian's clipped square (no grad)."""
    with torch.no_grad():
        idx = torch.nonzero(valid, as_tuple=False).squeeze(-1)
        m = means2d.index_select(0, idx)
        u, v, r = m[:, 0], m[:, 1], radii.index_select(0, idx).to(means2d.dtype)
        x0 = torch.floor(u - r).clamp(0, width - 1).long()
        x1 = torch.ceil(u + r).clamp(0, width - 1).long()
        y0 = torch.floor(v - r).clamp(0, height - 1).long()
        y1 = torch.ceil(v + r).clamp(0, height - 1).long()
        nx, ny = x1 - x0 + 1, y1 - y0 + 1
        counts = nx * ny
        gid = torch.repeat_interleave(torch.arange(idx.numel(), device=idx.device), counts)
        start = torch.cumsum(counts, 0) - counts
        local = torch.arange(gid.numel(), device=idx.device) - start.index_select(0, gid)
        nxg = nx.index_select(0, gid)
        py_local = torch.div(local, nxg, rounding_mode="floor")
        px = x0.index_select(0, gid) + local - py_local * nxg
        py = y0.index_select(0, gid) + py_local
        return idx.index_select(0, gid), px, py


def _composite(proj, opacities, colors, width, height, background):
    """Alpha-composite one camera; returns ``image [H, W, D]``, ``alpha [H, W, 1]``."""
    means2d, conics, depths = proj["means2d"], proj["conics"], proj["depths"]
    d = colors.shape[-1]
    with torch.no_grad():  # which pairs count, and in which order (no gradient needed)
        gid, px, py = _pixel_pairs(means2d, proj["radii"], proj["valid"], width, height)
        sigma, alpha = _pair_alpha(means2d.detach(), conics.detach(), opacities.detach(), gid, px, py)
        keep = torch.nonzero((sigma >= 0) & (alpha >= ALPHA_MIN)).squeeze(-1)
        gid, px, py = gid.index_select(0, keep), px.index_select(0, keep), py.index_select(0, keep)
        pix = py * width + px
        rank = torch.empty_like(depths, dtype=torch.long)
        rank[torch.argsort(depths.detach())] = torch.arange(depths.numel(), device=depths.device)
        order = torch.argsort(pix * depths.numel() + rank.index_select(0, gid))
        gid, px, py, pix = (x.index_select(0, order) for x in (gid, px, py, pix))
    if gid.numel() == 0:
        image = background.expand(height, width, d).clone() if background is not None else \
            colors.new_zeros(height, width, d)
        return image, colors.new_zeros(height, width, 1)
    _, alpha = _pair_alpha(means2d, conics, opacities, gid, px, py)  # differentiable
    log_t = torch.log1p(-alpha.double())
    csum = torch.cumsum(log_t, 0)
    excl = csum - log_t
    with torch.no_grad():
        first = torch.ones_like(pix, dtype=torch.bool)
        first[1:] = pix[1:] != pix[:-1]
        seg = torch.cumsum(first.long(), 0) - 1
        first_idx = torch.nonzero(first).squeeze(-1)
    start_excl = excl.index_select(0, first_idx).index_select(0, seg)
    trans = torch.exp(excl - start_excl).to(alpha.dtype)
    with torch.no_grad():
        alive = (trans * (1 - alpha) > T_MIN).to(alpha.dtype)
    w = alpha * trans * alive
    num_pix = width * height
    img = colors.new_zeros(num_pix, d).index_add(0, pix, w.unsqueeze(-1) * colors.index_select(0, gid))
    acc = alpha.new_zeros(num_pix).index_add(0, pix, w)
    if background is not None:
        img = img + (1 - acc).unsqueeze(-1) * background
    return img.view(height, width, d), acc.view(height, width, 1)


def _pair_alpha(means2d, conics, opacities, gid, px, py):
    """Mahalanobis ``sigma`` and ``alpha = min(0.999, o exp(-sigma))`` of (Gaussian, pixel) pairs."""
    m = means2d.index_select(0, gid)
    cn = conics.index_select(0, gid)
    dx = px.to(m.dtype) + 0.5 - m[:, 0]
    dy = py.to(m.dtype) + 0.5 - m[:, 1]
    sigma = 0.5 * (cn[:, 0] * dx * dx + cn[:, 2] * dy * dy) + cn[:, 1] * dx * dy
    alpha = torch.clamp_max(opacities.index_select(0, gid) * torch.exp(-sigma), ALPHA_MAX)
    return sigma, alpha


def rasterization(means, quats, scales, opacities, colors, viewmats, Ks, width, height, *,
                  near_plane=0.01, far_plane=1e10, eps2d=0.3, backgrounds=None,
                  max_radius: Optional[float] = None, **unused):
    """gsplat-style call: ``means [N,3]``, ``quats [N,4]`` (wxyz), ``scales [N,3]``,
    ``opacities [N]``, ``colors [N,D]`` (post-activation), ``viewmats [C,4,4]``, ``Ks [C,3,3]``,
    ``backgrounds [C,D]`` (optional). Returns ``(render_colors [C,H,W,D],
    render_alphas [C,H,W,1], meta)`` with ``meta["means2d"] [C,N,2]``, ``meta["radii"] [C,N]``
    and ``meta["depths"] [C,N]``. Unsupported gsplat arguments are ignored."""
    cols, alphas, m2d, radii, depths = [], [], [], [], []
    for c in range(viewmats.shape[0]):
        proj = project_gaussians(means, quats, scales, viewmats[c], Ks[c], width, height,
                                 near_plane=near_plane, far_plane=far_plane, eps2d=eps2d,
                                 max_radius=max_radius)
        bg = None if backgrounds is None else backgrounds[c]
        img, acc = _composite(proj, opacities, colors, width, height, bg)
        cols.append(img)
        alphas.append(acc)
        m2d.append(proj["means2d"])
        radii.append(proj["radii"])
        depths.append(proj["depths"])
    meta = dict(means2d=torch.stack(m2d), radii=torch.stack(radii), depths=torch.stack(depths),
                width=width, height=height)
    return torch.stack(cols), torch.stack(alphas), meta


@torch.no_grad()
def contributions_at(points2d, means, quats, scales, opacities, viewmat, K, width, height, *,
                     eps2d=0.3):
    """Blending weight ``alpha_i T_i`` of every Gaussian at a few image points.

    ``points2d [Q, 2]`` in pixels -> ``weights [Q, N]``: how much each Gaussian contributes to
    the colour seen at each point (the visible surface there). Dense; meant for a handful of
    points (e.g. binding keypoints to the Gaussians they sit on)."""
    proj = project_gaussians(means, quats, scales, viewmat, K, width, height, eps2d=eps2d)
    d = points2d.unsqueeze(1) - proj["means2d"].unsqueeze(0)  # [Q, N, 2]
    cn = proj["conics"]
    sigma = 0.5 * (cn[:, 0] * d[..., 0] ** 2 + cn[:, 2] * d[..., 1] ** 2) + cn[:, 1] * d[..., 0] * d[..., 1]
    alpha = torch.clamp_max(opacities * torch.exp(-sigma), ALPHA_MAX)
    alpha = torch.where((sigma >= 0) & (alpha >= ALPHA_MIN) & proj["depths"].gt(0.01),
                        alpha, torch.zeros_like(alpha))
    order = torch.argsort(proj["depths"])
    a = alpha[:, order]
    trans = torch.cumprod(torch.cat([torch.ones_like(a[:, :1]), 1 - a[:, :-1]], 1), 1)
    w_sorted = a * trans
    w = torch.zeros_like(w_sorted)
    w[:, order] = w_sorted
    return w
