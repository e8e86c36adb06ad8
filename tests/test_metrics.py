"""Known-answer tests for sirenpose_loss.metrics."""
import math

import pytest
import torch

from sirenpose_loss import metrics as M


def _rotation(axis, angle):
    axis = torch.as_tensor(axis, dtype=torch.float64)
    axis = axis / axis.norm()
    k = torch.tensor([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]],
                     dtype=torch.float64)
    return torch.eye(3, dtype=torch.float64) + math.sin(angle) * k + (1 - math.cos(angle)) * k @ k


# ---------------------------------------------------------------------------------- Umeyama
def test_umeyama_recovers_a_known_similarity_exactly():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(50, 3, generator=g, dtype=torch.float64)
    rot = _rotation([1.0, 2.0, -0.5], 0.9)
    y = 2.5 * x @ rot.T + torch.tensor([0.3, -1.0, 4.0], dtype=torch.float64)
    s, r, t = M.umeyama_alignment(x, y)
    assert s == pytest.approx(2.5, abs=1e-12)
    assert torch.allclose(r, rot, atol=1e-12)
    assert torch.allclose(t, torch.tensor([0.3, -1.0, 4.0], dtype=torch.float64), atol=1e-12)
    assert torch.allclose(s * x @ r.T + t, y, atol=1e-12)


def test_umeyama_returns_a_proper_rotation_for_a_reflection():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(30, 3, generator=g, dtype=torch.float64)
    y = x * torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64)  # a mirror image
    _, r, _ = M.umeyama_alignment(x, y)
    assert torch.det(r) == pytest.approx(1.0, abs=1e-12)


def test_umeyama_without_scale_is_rigid():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(20, 3, generator=g, dtype=torch.float64)
    rot = _rotation([0.0, 0.0, 1.0], 0.4)
    s, r, _ = M.umeyama_alignment(x, 3.0 * x @ rot.T, with_scale=False)
    assert s == 1.0
    assert torch.allclose(r, rot, atol=1e-10)


def test_umeyama_rejects_bad_shapes():
    with pytest.raises(ValueError, match="N >= 2"):
        M.umeyama_alignment(torch.zeros(1, 3), torch.zeros(1, 3))
    with pytest.raises(ValueError):
        M.umeyama_alignment(torch.zeros(4, 3), torch.zeros(5, 3))


# ------------------------------------------------------------------------------- ATE / RPE
def _poses(positions, rotations):
    p = torch.eye(4, dtype=torch.float64).repeat(len(positions), 1, 1)
    p[:, :3, :3] = rotations
    p[:, :3, 3] = positions
    return p


def test_ate_is_zero_for_a_similar_trajectory_and_rmse_otherwise():
    g = torch.Generator().manual_seed(3)
    gt = torch.randn(40, 3, generator=g, dtype=torch.float64).cumsum(0)
    rot = _rotation([0.3, 1.0, 0.2], -1.2)
    pred = (gt - 2.0) @ rot / 0.5  # gt = 0.5 R pred + 2, any similarity
    assert M.ate(pred, gt) == pytest.approx(0.0, abs=1e-9)
    assert M.ate(pred, gt, align="se3") > 0.1  # the scale is wrong without Sim(3)
    # no alignment: a constant offset of (3, 4, 0) is an RMSE of 5
    assert M.ate(gt + torch.tensor([3.0, 4.0, 0.0], dtype=torch.float64), gt,
                 align="none") == pytest.approx(5.0)


def test_ate_accepts_poses():
    g = torch.Generator().manual_seed(4)
    pos = torch.randn(10, 3, generator=g, dtype=torch.float64)
    rots = torch.stack([_rotation([0, 1, 0], 0.1 * i) for i in range(10)])
    assert M.ate(_poses(pos, rots), _poses(pos, rots)) == pytest.approx(0.0, abs=1e-9)


def test_rpe_known_answers():
    t = 6
    pos = torch.zeros(t, 3, dtype=torch.float64)
    pos[:, 0] = torch.arange(t, dtype=torch.float64)  # unit steps along x
    gt = _poses(pos, torch.eye(3, dtype=torch.float64).expand(t, 3, 3))
    # prediction: same translations, but each frame rotated 2 deg more about z
    rots = torch.stack([_rotation([0, 0, 1], math.radians(2.0 * i)) for i in range(t)])
    pred = _poses(pos, rots)
    res = M.rpe(pred, gt, align="none")
    assert res.rot_deg == pytest.approx(2.0, abs=1e-9)
    # relative translation of pred in frame i: R_i^T (1, 0, 0); error vs (1, 0, 0)
    expected = torch.stack([rots[i].T @ torch.tensor([1.0, 0, 0], dtype=torch.float64)
                            - torch.tensor([1.0, 0, 0], dtype=torch.float64) for i in range(t - 1)])
    assert res.trans == pytest.approx(float(expected.norm(dim=-1).pow(2).mean().sqrt()), abs=1e-12)
    exact = M.rpe(gt, gt)
    assert exact.trans == pytest.approx(0.0, abs=1e-9) and exact.rot_deg == pytest.approx(0.0, abs=1e-6)


def test_rpe_positions_only_and_scale_alignment():
    pos = torch.tensor([[0.0, 0, 0], [1, 0, 0], [3, 0, 0], [4, 1, 0]], dtype=torch.float64)
    res = M.rpe(2.0 * pos, pos)  # Sim(3) removes the factor 2
    assert res.rot_deg is None
    assert res.trans == pytest.approx(0.0, abs=1e-9)
    raw = M.rpe(2.0 * pos, pos, align="none")
    steps = (pos[1:] - pos[:-1]).norm(dim=-1)
    assert raw.trans == pytest.approx(float(steps.pow(2).mean().sqrt()))
    with pytest.raises(ValueError, match="delta"):
        M.rpe(pos, pos, delta=0)


# ------------------------------------------------------------------------------ keypoints
def test_keypoint_error_pck_and_bbox_on_hand_made_points():
    target = torch.tensor([[[0.0, 0.0], [10.0, 0.0], [0.0, 20.0], [5.0, 5.0]]])
    pred = target + torch.tensor([[[3.0, 4.0], [0.0, 1.0], [0.0, 0.0], [6.0, 8.0]]])
    assert M.keypoint_error(pred, target) == pytest.approx((5 + 1 + 0 + 10) / 4)
    assert M.bbox_size(target).tolist() == [20.0]
    # threshold 5 is inclusive: 5, 1, 0 are correct, 10 is not
    assert M.pck(pred, target, 5.0) == pytest.approx(0.75)
    assert M.pck(pred, target, 0.25 * M.bbox_size(target)) == pytest.approx(0.75)
    assert M.pck(pred, target, 0.5) == pytest.approx(0.25)
    vis = torch.tensor([[True, True, False, False]])
    assert M.keypoint_error(pred, target, vis) == pytest.approx(3.0)
    assert M.pck(pred, target, 2.0, vis) == pytest.approx(0.5)
    assert math.isnan(M.pck(pred, target, 2.0, torch.zeros(1, 4, dtype=torch.bool)))
    with pytest.raises(ValueError, match="threshold"):
        M.pck(pred, target, torch.ones(3))


def test_jitter_on_hand_made_tracks():
    t = torch.arange(6, dtype=torch.float64)
    still = torch.zeros(6, 2, 3, dtype=torch.float64)
    assert M.jitter(still) == 0.0
    linear = torch.stack([t, 2 * t, -t], -1)[:, None, :].expand(6, 2, 3)
    assert M.jitter(linear) == pytest.approx(0.0, abs=1e-12)
    # x = t^2: acceleration 2 everywhere
    quad = torch.stack([t ** 2, 0 * t, 0 * t], -1)[:, None, :]
    assert M.jitter(quad) == pytest.approx(2.0)
    assert M.jitter(quad, dt=2.0) == pytest.approx(0.5)
    # alternating +-1 in y: |x[t+1] - 2x[t] + x[t-1]| = 4
    zig = torch.zeros(6, 1, 2, dtype=torch.float64)
    zig[:, 0, 1] = torch.tensor([1.0, -1, 1, -1, 1, -1])
    assert M.jitter(zig) == pytest.approx(4.0)
    # visibility: frame 2 hidden -> only t=3,4 accelerations count (those with t-1, t, t+1 seen)
    vis = torch.ones(6, 1, dtype=torch.bool)
    vis[2] = False
    mixed = zig.clone()
    mixed[:4] = 0.0
    # accelerations at t=3: x4 - 2x3 + x2 = 1, t=4: x5 - 2x4 + x3 = -3
    assert M.jitter(mixed, vis) == pytest.approx(3.0)
    assert math.isnan(M.jitter(still[:2]))


# --------------------------------------------------------------------------------- images
def test_psnr_is_a_mean_over_images_and_ssim_is_one_for_equal_images():
    a = torch.zeros(2, 3, 16, 16, dtype=torch.float64)
    b = a.clone()
    b[0] += 0.1   # MSE 0.01 -> 20 dB
    b[1] += 0.01  # MSE 1e-4 -> 40 dB
    assert M.psnr(b, a) == pytest.approx(30.0, abs=1e-4)  # torchmetrics: float32 log10
    g = torch.Generator().manual_seed(0)
    img = torch.rand(3, 24, 24, generator=g)
    assert M.ssim(img, img) == pytest.approx(1.0, abs=1e-6)
    assert M.ssim(img, (img + 0.3 * torch.rand(3, 24, 24, generator=g)).clamp(0, 1)) < 0.95
    with pytest.raises(ValueError):
        M.psnr(torch.zeros(3, 4, 4), torch.zeros(3, 4, 5))
