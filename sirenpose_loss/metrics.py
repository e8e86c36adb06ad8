"""Evaluation metrics for keypoint-supervised 4D reconstruction, with their conventions spelled out.

Everything here is evaluation code: it runs under ``torch.no_grad()`` semantics (no gradients
are needed, none are promised), computes in float64 where accumulation matters, and returns
Python floats (or small NamedTuples of floats) so the numbers can go straight into a JSON file.

Conventions used throughout:

* Keypoints and tracks are ``[..., T, K, D]`` (or ``[..., K, D]``) tensors; ``D`` is 2 for image
  keypoints (pixels or normalised) and 3 for world points. Errors are in the units of the input.
* ``visible`` is an optional boolean (or 0/1) tensor of the keypoint shape without ``D``
  (``[..., K]``); entries that are not visible are ignored, and a metric over no visible entry
  is ``nan`` (there is nothing to measure; it is not silently 0).
* Images are ``[N, C, H, W]`` (or ``[C, H, W]``) floats in ``[0, data_range]``.
* Trajectory metrics (ATE, RPE) follow the evo / MonST3R convention: a Umeyama similarity
  (Sim(3)) alignment of the prediction onto the ground truth, then the RMSE.

Functions: :func:`psnr`, :func:`ssim` (torchmetrics underneath), :func:`keypoint_error`,
:func:`bbox_size`, :func:`pck`, :func:`jitter`, :func:`umeyama_alignment`, :func:`ate`,
:func:`rpe`.
"""
from typing import NamedTuple, Optional, Tuple, Union

import math

import torch

from ._validation import check_positive_number

__all__ = ["psnr", "ssim", "keypoint_error", "bbox_size", "pck", "jitter",
           "umeyama_alignment", "ate", "rpe", "RPEResult"]

Number = Union[float, int]


# --------------------------------------------------------------------------------------------
# images
# --------------------------------------------------------------------------------------------
def _shape_or_type(x) -> str:
    """What an error message says was given: a tensor's shape, or another object's type."""
    return f"shape {tuple(x.shape)}" if hasattr(x, "shape") else type(x).__name__


def _as_batch(img: torch.Tensor, name: str) -> torch.Tensor:
    if not isinstance(img, torch.Tensor) or img.dim() not in (3, 4):
        raise ValueError(f"{name} must be an image tensor [C, H, W] or [N, C, H, W], got "
                         f"{_shape_or_type(img)}")
    return img.unsqueeze(0) if img.dim() == 3 else img


def _check_images(pred, target):
    pred, target = _as_batch(pred, "pred"), _as_batch(target, "target")
    if pred.shape != target.shape:
        raise ValueError(f"pred and target must have the same shape, got {tuple(pred.shape)} "
                         f"and {tuple(target.shape)}")
    return pred.detach().double(), target.detach().double()


def psnr(pred: torch.Tensor, target: torch.Tensor, *, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB, **averaged over images** (the NeRF / 3DGS convention).

    ``PSNR_n = 10 log10(data_range^2 / MSE_n)`` with the MSE over all channels and pixels of
    image ``n``; the result is the mean of ``PSNR_n`` over the batch (not the PSNR of the
    pooled MSE, which is what torchmetrics computes when no ``dim`` is given). Images are
    ``[N, C, H, W]`` or ``[C, H, W]`` in ``[0, data_range]``; computed with
    ``torchmetrics.functional.peak_signal_noise_ratio(..., dim=(1, 2, 3))`` in float64.
    Identical images give ``inf``.
    """
    from torchmetrics.functional.image import peak_signal_noise_ratio
    data_range = check_positive_number(data_range, "data_range")
    pred, target = _check_images(pred, target)
    value = peak_signal_noise_ratio(pred, target, data_range=data_range, dim=(1, 2, 3),
                                    reduction="elementwise_mean")
    return float(value)


def ssim(pred: torch.Tensor, target: torch.Tensor, *, data_range: float = 1.0) -> float:
    """Structural similarity, averaged over images (torchmetrics' defaults otherwise).

    ``torchmetrics.functional.structural_similarity_index_measure`` with a Gaussian window of
    size 11 and sigma 1.5, ``k1 = 0.01``, ``k2 = 0.03``, the given ``data_range``, computed per
    channel on the valid (unpadded) region and averaged over channels, pixels and images.
    Images are ``[N, C, H, W]`` or ``[C, H, W]`` and must be at least 11 pixels on each side.
    """
    from torchmetrics.functional.image import structural_similarity_index_measure
    data_range = check_positive_number(data_range, "data_range")
    pred, target = _check_images(pred, target)
    return float(structural_similarity_index_measure(pred, target, data_range=data_range))


# --------------------------------------------------------------------------------------------
# keypoints
# --------------------------------------------------------------------------------------------
def _check_points(pred, target, visible, layout="[..., K, D]"):
    if not isinstance(pred, torch.Tensor) or not isinstance(target, torch.Tensor):
        raise TypeError(f"pred and target must be torch.Tensors {layout}, got "
                        f"{type(pred).__name__} and {type(target).__name__}")
    if pred.dim() < 2 or pred.shape != target.shape:
        raise ValueError(f"pred and target must both be {layout} with the same shape, got "
                         f"{tuple(pred.shape)} and {tuple(target.shape)}")
    if visible is not None:
        visible = torch.as_tensor(visible, device=pred.device)
        if visible.shape != pred.shape[:-1]:
            raise ValueError(f"visible must have shape {tuple(pred.shape[:-1])} (the keypoint "
                             f"shape without D), got {tuple(visible.shape)}")
        visible = visible.bool()
    return pred.detach().double(), target.detach().double(), visible


def keypoint_error(pred: torch.Tensor, target: torch.Tensor,
                   visible: Optional[torch.Tensor] = None) -> float:
    """Mean Euclidean distance between matching keypoints (EPE; MPJPE for 3-D joints).

    ``mean_n ||pred_n - target_n||_2`` over all (visible) keypoints of ``[..., K, D]``, in the
    units of the input, with no alignment of any kind (both must live in the same frame).
    """
    pred, target, visible = _check_points(pred, target, visible)
    dist = (pred - target).norm(dim=-1)
    if visible is not None:
        dist = dist[visible]
    return float(dist.mean()) if dist.numel() else math.nan


def bbox_size(keypoints: torch.Tensor, visible: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``max(width, height)`` of the axis-aligned bounding box of each keypoint set.

    ``keypoints [..., K, D]`` -> ``[...]``: the largest extent over the ``D`` axes of the
    (visible) keypoints of each set; 0 for a set with fewer than one visible keypoint.
    Used as the PCK reference length (``PCK@alpha`` = threshold ``alpha * bbox_size``).
    """
    if not isinstance(keypoints, torch.Tensor) or keypoints.dim() < 2:
        raise ValueError(f"keypoints must be a tensor [..., K, D], got "
                         f"{_shape_or_type(keypoints)}")
    kp = keypoints.detach().double()
    if visible is None:
        lo, hi = kp.amin(dim=-2), kp.amax(dim=-2)
    else:
        vis = torch.as_tensor(visible, device=kp.device).bool().unsqueeze(-1)
        lo = torch.where(vis, kp, torch.full_like(kp, math.inf)).amin(dim=-2)
        hi = torch.where(vis, kp, torch.full_like(kp, -math.inf)).amax(dim=-2)
    size = (hi - lo).amax(dim=-1)
    return torch.where(torch.isfinite(size), size, torch.zeros_like(size))


def pck(pred: torch.Tensor, target: torch.Tensor, threshold: Union[Number, torch.Tensor],
        visible: Optional[torch.Tensor] = None) -> float:
    """Percentage of correct keypoints, as a fraction in ``[0, 1]``.

    A keypoint is correct when ``||pred_n - target_n||_2 <= threshold`` (inclusive). ``pred``,
    ``target``: ``[..., K, D]``. ``threshold`` is a number in the keypoints' units, or a tensor
    of shape ``[...]`` (one threshold per keypoint set, e.g. ``0.1 * bbox_size(target)`` for
    PCK@0.1 of the bounding box, the CAPE/MP-100 convention with ``alpha = 0.2``). Only visible
    keypoints count; the result is the fraction over all of them (not a mean of per-set
    fractions). ``nan`` when nothing is visible.
    """
    pred, target, visible = _check_points(pred, target, visible)
    dist = (pred - target).norm(dim=-1)
    thr = torch.as_tensor(threshold, dtype=torch.float64, device=dist.device)
    if thr.dim() > 0:
        if thr.shape != dist.shape[:-1]:
            raise ValueError(f"threshold must be a number or have shape {tuple(dist.shape[:-1])} "
                             f"(one per keypoint set), got {tuple(thr.shape)}")
        thr = thr.unsqueeze(-1)
    correct = dist <= thr
    if visible is not None:
        correct = correct[visible]
    return float(correct.double().mean()) if correct.numel() else math.nan


def jitter(tracks: torch.Tensor, visible: Optional[torch.Tensor] = None, *,
           dt: float = 1.0) -> float:
    """Jitter: the mean acceleration magnitude of keypoint tracks.

    ``tracks [..., T, K, D]``: ``mean_{t, k} || x[t+1] - 2 x[t] + x[t-1] || / dt^2`` over
    ``t = 1 .. T-2`` (second-order central difference, one value per interior frame and
    keypoint). With the default ``dt = 1`` the unit is "coordinate units per frame^2".
    ``visible [..., T, K]``: an acceleration counts only when the keypoint is visible in all
    three frames. A smooth true motion has a non-zero jitter too, so compare against the
    ground-truth tracks' own value. ``nan`` for ``T < 3``.
    """
    if not isinstance(tracks, torch.Tensor) or tracks.dim() < 3:
        raise ValueError(f"tracks must be a tensor [..., T, K, D], got {_shape_or_type(tracks)}")
    dt = check_positive_number(dt, "dt")
    x = tracks.detach().double()
    if x.shape[-3] < 3:
        return math.nan
    acc = (x[..., 2:, :, :] - 2 * x[..., 1:-1, :, :] + x[..., :-2, :, :]).norm(dim=-1) / dt ** 2
    if visible is not None:
        vis = torch.as_tensor(visible, device=x.device).bool()
        if vis.shape != x.shape[:-1]:
            raise ValueError(f"visible must have shape {tuple(x.shape[:-1])}, got "
                             f"{tuple(vis.shape)}")
        ok = vis[..., 2:, :] & vis[..., 1:-1, :] & vis[..., :-2, :]
        acc = acc[ok]
    return float(acc.mean()) if acc.numel() else math.nan


# --------------------------------------------------------------------------------------------
# trajectories
# --------------------------------------------------------------------------------------------
def umeyama_alignment(source: torch.Tensor, target: torch.Tensor, *,
                      with_scale: bool = True) -> Tuple[float, torch.Tensor, torch.Tensor]:
    """Least-squares similarity transform mapping ``source`` onto ``target`` (Umeyama 1991).

    Finds ``s, R, t`` minimising ``sum_i ||target_i - (s R source_i + t)||^2`` for point sets
    ``[N, D]`` (``N >= 2``; ``D`` usually 3). As in evo's ``umeyama_alignment``:
    ``mu_x, mu_y`` the means, ``sigma_x^2 = mean ||x - mu_x||^2``,
    ``Sigma_xy = mean (y - mu_y)(x - mu_x)^T = U D V^T``, ``S = diag(1, .., 1, -1)`` when
    ``det(U) det(V) < 0`` (so ``R`` is a proper rotation), ``R = U S V^T``,
    ``s = tr(D S) / sigma_x^2`` (1 with ``with_scale=False``, i.e. SE(3)), ``t = mu_y - s R mu_x``.

    Returns ``(s, R [D, D], t [D])`` in float64. Apply as ``s * x @ R.T + t``.
    """
    x = torch.as_tensor(source).detach().double().cpu()
    y = torch.as_tensor(target).detach().double().cpu()
    if x.dim() != 2 or x.shape != y.shape or x.shape[0] < 2:
        raise ValueError(f"source and target must both be [N, D] with N >= 2, got "
                         f"{tuple(x.shape)} and {tuple(y.shape)}")
    n, d = x.shape
    mu_x, mu_y = x.mean(0), y.mean(0)
    xc, yc = x - mu_x, y - mu_y
    sigma_x = (xc ** 2).sum() / n
    cov = yc.T @ xc / n
    u, dvals, vh = torch.linalg.svd(cov)
    s_mat = torch.eye(d, dtype=torch.float64)
    if torch.det(u) * torch.det(vh) < 0:
        s_mat[-1, -1] = -1.0
    rot = u @ s_mat @ vh
    if with_scale:
        if sigma_x <= 0:
            raise ValueError(f"source must hold at least two distinct points when with_scale=True "
                             f"(the scale is undefined otherwise), got {n} identical points")
        scale = float(torch.trace(torch.diag(dvals) @ s_mat) / sigma_x)
    else:
        scale = 1.0
    trans = mu_y - scale * rot @ mu_x
    return scale, rot, trans


def _split_trajectory(traj: torch.Tensor, name: str):
    """``[T, 3]`` positions -> (positions, None); ``[T, 4, 4]`` poses -> (positions, rotations)."""
    traj = torch.as_tensor(traj).detach().double().cpu()
    if traj.dim() == 2:
        return traj, None
    if traj.dim() == 3 and traj.shape[-2:] == (4, 4):
        return traj[:, :3, 3], traj[:, :3, :3]
    raise ValueError(f"{name} must be positions [T, D] or poses [T, 4, 4], got {tuple(traj.shape)}")


def _align(pos_p, pos_g, align: str):
    if align not in ("sim3", "se3", "none"):
        raise ValueError(f"align must be 'sim3', 'se3' or 'none', got {align!r}")
    d = pos_p.shape[-1]
    if align == "none":
        return 1.0, torch.eye(d, dtype=torch.float64), torch.zeros(d, dtype=torch.float64)
    return umeyama_alignment(pos_p, pos_g, with_scale=(align == "sim3"))


def ate(pred: torch.Tensor, target: torch.Tensor, *, align: str = "sim3") -> float:
    """Absolute trajectory error: RMSE of positions after alignment (evo ``ape`` convention).

    ``pred``, ``target``: positions ``[T, D]`` or camera-to-world poses ``[T, 4, 4]`` (only the
    translations are used). ``align``: ``"sim3"`` (Umeyama with scale, MonST3R / evo
    ``correct_scale=True``; the default), ``"se3"`` (rotation and translation) or ``"none"``.
    ``ATE = sqrt(mean_i ||target_i - (s R pred_i + t)||^2)``.
    """
    pos_p, _ = _split_trajectory(pred, "pred")
    pos_g, _ = _split_trajectory(target, "target")
    if pos_p.shape != pos_g.shape:
        raise ValueError(f"pred and target must have the same shape, got {tuple(pos_p.shape)} "
                         f"and {tuple(pos_g.shape)}")
    s, rot, t = _align(pos_p, pos_g, align)
    aligned = s * pos_p @ rot.T + t
    return float(((aligned - pos_g) ** 2).sum(-1).mean().sqrt())


class RPEResult(NamedTuple):
    """Relative pose error: ``trans`` RMSE in trajectory units; ``rot_deg`` RMSE in degrees
    (``None`` for position-only trajectories, which carry no rotation)."""
    trans: float
    rot_deg: Optional[float]


def rpe(pred: torch.Tensor, target: torch.Tensor, *, delta: int = 1,
        align: str = "sim3") -> RPEResult:
    """Relative pose error over frame pairs ``(i, i + delta)`` (evo ``rpe`` / MonST3R convention).

    ``pred``, ``target``: camera-to-world poses ``[T, 4, 4]`` (or positions ``[T, D]``). The
    prediction is first aligned with :func:`umeyama_alignment` on the positions (``align`` as in
    :func:`ate`; with poses the rotation ``R`` also left-multiplies the predicted rotations and
    ``s`` scales the translations). Then for every pair, with ``P`` the aligned prediction and
    ``Q`` the ground truth, the error pose is ``E_i = (Q_i^{-1} Q_{i+delta})^{-1}
    (P_i^{-1} P_{i+delta})``; ``trans = sqrt(mean_i ||t(E_i)||^2)`` and
    ``rot_deg = sqrt(mean_i angle(R(E_i))^2)`` with ``angle = arccos((tr R - 1) / 2)`` in
    degrees. For positions only, ``t(E_i) = (p_{i+delta} - p_i) - (q_{i+delta} - q_i)`` and
    ``rot_deg`` is ``None``. (The NoPe-NeRF convention instead reports the *mean* and
    ``100 x`` the translation; convert if you compare with such tables.)
    """
    if not isinstance(delta, int) or delta < 1:
        raise ValueError(f"delta must be a positive int, got {delta!r}")
    pos_p, rot_p = _split_trajectory(pred, "pred")
    pos_g, rot_g = _split_trajectory(target, "target")
    if pos_p.shape != pos_g.shape or (rot_p is None) != (rot_g is None):
        raise ValueError(f"pred and target must have the same shape, got "
                         f"{_shape_or_type(pred)} and {_shape_or_type(target)}")
    if pos_p.shape[0] <= delta:
        raise ValueError(f"pred and target must have more than delta = {delta} frames, got "
                         f"{pos_p.shape[0]}")
    s, rot, t = _align(pos_p, pos_g, align)
    pos_p = s * pos_p @ rot.T + t
    if rot_p is None:
        err = (pos_p[delta:] - pos_p[:-delta]) - (pos_g[delta:] - pos_g[:-delta])
        return RPEResult(float((err ** 2).sum(-1).mean().sqrt()), None)
    rot_p = rot @ rot_p

    def rel(r, p):  # X_i^{-1} X_{i+delta} -> rotation, translation
        r_rel = r[:-delta].transpose(-1, -2) @ r[delta:]
        t_rel = (r[:-delta].transpose(-1, -2) @ (p[delta:] - p[:-delta]).unsqueeze(-1))[..., 0]
        return r_rel, t_rel

    r_q, t_q = rel(rot_g, pos_g)
    r_p, t_p = rel(rot_p, pos_p)
    # E = (Rq, tq)^{-1} (Rp, tp) = (Rq^T Rp, Rq^T (tp - tq))
    r_e = r_q.transpose(-1, -2) @ r_p
    t_e = (r_q.transpose(-1, -2) @ (t_p - t_q).unsqueeze(-1))[..., 0]
    cos = ((r_e.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2).clamp(-1.0, 1.0)
    angle = torch.rad2deg(torch.arccos(cos))
    return RPEResult(float((t_e ** 2).sum(-1).mean().sqrt()), float((angle ** 2).mean().sqrt()))
