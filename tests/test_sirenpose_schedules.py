"""SirenPose schedules (GeoWarmup, OmegaCoarseToFine, AliasGate) inside SirenPoseLoss."""
import math

import pytest
import torch

import sirenpose_loss as spl
from sirenpose_loss import reference as ref

EDGES = torch.tensor([[0, 1, 2, 1], [1, 2, 3, 4]])


def _pair(scale=0.1, noise=0.05, seed=0, batch=(6,)):
    g = torch.Generator().manual_seed(seed)
    pred = scale * torch.randn(*batch, 5, 2, generator=g, dtype=torch.float64)
    target = pred + noise * torch.randn(pred.shape, generator=g, dtype=torch.float64)
    weight = torch.rand(*batch, 5, generator=g, dtype=torch.float64) + 0.1
    edge_weight = torch.rand(EDGES.shape[1], generator=g, dtype=torch.float64) + 0.1
    return pred, target, weight, edge_weight


def _gated_reference(pred, target, gate, weight, edge_weight, reduction, omega0=30.0, lam=1.0):
    """Written out from the definition: the sine terms of gated-out limbs are dropped, and
    "mean" divides by the remaining edge weight."""
    src, dst = EDGES
    pos = ref.keypoint_match_loss(pred, target, weight=weight, reduction=reduction)
    r = torch.sin(omega0 * (pred[..., src, :] - pred[..., dst, :])) - \
        torch.sin(omega0 * (target[..., src, :] - target[..., dst, :]))
    w_e = gate * weight[..., src] * weight[..., dst] * edge_weight
    terms = w_e * r.pow(2).sum(-1)
    if reduction == "none":
        return pos, terms
    geo = terms.sum() / (w_e.sum() if reduction == "mean" else 1.0)
    return pos + lam * geo


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_alias_gate_drops_exactly_the_aliased_limbs(reduction):
    pred, target, weight, edge_weight = _pair(noise=0.08)
    loss_fn = spl.SirenPoseLoss(EDGES, lambda_geo=0.7, reduction=reduction, schedule=spl.AliasGate())
    pred = pred.requires_grad_()
    loss = loss_fn(pred, target, weight=weight, edge_weight=edge_weight)
    src, dst = EDGES
    resid = (pred[..., src, :] - pred[..., dst, :]) - (target[..., src, :] - target[..., dst, :])
    gate = (resid.detach().abs() < math.pi / 30).all(-1).double()
    assert 0 < gate.sum() < gate.numel()          # the case has aliased and unaliased limbs
    assert torch.equal(loss_fn.last_settings.gate, gate)
    want = _gated_reference(pred, target, gate, weight, edge_weight, reduction, lam=0.7)
    torch.testing.assert_close(loss, want, rtol=1e-12, atol=0)
    g, = torch.autograd.grad(loss, pred)
    g_want, = torch.autograd.grad(want, pred)
    torch.testing.assert_close(g, g_want, rtol=1e-10, atol=1e-14)


def test_alias_gate_none_reduction_and_all_gated_out():
    pred, target, weight, edge_weight = _pair(noise=0.08)
    loss_fn = spl.SirenPoseLoss(EDGES, reduction="none", schedule=spl.AliasGate())
    pos, geo = loss_fn(pred, target, weight=weight, edge_weight=edge_weight)
    want_pos, want_geo = _gated_reference(pred, target, loss_fn.last_settings.gate, weight,
                                          edge_weight, "none")
    torch.testing.assert_close(pos, want_pos, rtol=1e-12, atol=0)
    torch.testing.assert_close(geo, want_geo, rtol=1e-12, atol=0)
    # every limb aliased: the sine part of the mean is 0 (not NaN), the position term remains
    far = target.clone()
    far[..., 0::2, :] += 1.0              # every edge joins an even and an odd keypoint
    mean_fn = spl.SirenPoseLoss(EDGES, schedule=spl.AliasGate())
    loss = mean_fn(far, target, weight=weight)
    assert mean_fn.last_settings.gate.sum() == 0
    torch.testing.assert_close(loss, ref.keypoint_match_loss(far, target, weight=weight))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_a_gate_of_ones_is_the_fused_op(reduction):
    """Where nothing aliases, the gated path and the fused op agree."""
    pred, target, weight, edge_weight = _pair(noise=0.005)
    gated = spl.SirenPoseLoss(EDGES, reduction=reduction, schedule=spl.AliasGate())
    plain = spl.SirenPoseLoss(EDGES, reduction=reduction)
    a = gated(pred, target, weight=weight, edge_weight=edge_weight)
    assert bool(gated.last_settings.gate.all())
    b = plain(pred, target, weight=weight, edge_weight=edge_weight)
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-15)


def test_warmup_switches_on_once_and_stays_on():
    pred, target, weight, _ = _pair(noise=0.2)        # most residuals beyond half a period
    warm = spl.GeoWarmup(fraction=0.9)
    loss_fn = spl.SirenPoseLoss(EDGES, lambda_geo=2.0, schedule=warm)
    kml = ref.keypoint_match_loss(pred, target, weight=weight)
    torch.testing.assert_close(loss_fn(pred, target, weight=weight), kml)   # off: position only
    assert not warm.on and warm.step == 1
    close = target + 0.001 * torch.randn(target.shape, dtype=torch.float64)
    loss_fn.eval()                                    # eval: applied, never advanced
    loss_fn(close, target, weight=weight)
    assert not warm.on and warm.step == 1
    loss_fn.train()
    loss_fn(close, target, weight=weight)
    assert warm.on and warm.step == 2
    on = loss_fn(pred, target, weight=weight)         # far again: stays on
    torch.testing.assert_close(on, ref.sirenpose_loss(pred, target, EDGES, lambda_geo=2.0,
                                                      weight=weight))


def test_warmup_counts_only_visible_limbs():
    pred, target, _, _ = _pair(noise=0.001)
    weight = torch.ones(6, 5, dtype=torch.float64)
    pred = pred.clone()
    pred[..., 4, :] += 1.0                 # keypoint 4 far off, but never visible
    weight[..., 4] = 0
    warm = spl.GeoWarmup(fraction=1.0)
    spl.SirenPoseLoss(EDGES, schedule=warm)(pred, target, weight=weight)
    assert warm.on


def test_coarse_to_fine_starts_monotone_and_anneals_geometrically():
    pred, target, weight, _ = _pair(scale=0.3)
    sched = spl.OmegaCoarseToFine(anneal_steps=10, quantile=0.99)
    loss_fn = spl.SirenPoseLoss(EDGES, omega0=30.0, schedule=sched)
    src, dst = EDGES
    comps = torch.cat([(pred[..., src, :] - pred[..., dst, :]).abs().flatten(),
                       (target[..., src, :] - target[..., dst, :]).abs().flatten()])
    start = (math.pi / 2) / float(torch.quantile(comps, 0.99))
    assert start < 30
    seen = []
    for _ in range(13):
        loss = loss_fn(pred, target, weight=weight)
        seen.append(loss_fn.last_settings.omega0)
    assert seen[0] == pytest.approx(start, rel=1e-12)
    assert seen[5] == pytest.approx(math.sqrt(start * 30.0), rel=1e-12)
    assert seen[10:] == [30.0] * 3
    torch.testing.assert_close(loss, ref.sirenpose_loss(pred, target, EDGES, omega0=30.0,
                                                        weight=weight))
    loss_fn.eval()
    loss_fn(pred, target)
    assert sched.step == 13


def test_coarse_to_fine_is_capped_at_the_modules_omega0():
    pred, target, _, _ = _pair(scale=1e-3, noise=1e-4)   # tiny limbs: (pi/2)/q far above 30
    sched = spl.OmegaCoarseToFine(anneal_steps=4)
    loss_fn = spl.SirenPoseLoss(EDGES, omega0=30.0, schedule=sched)
    loss_fn(pred, target)
    assert loss_fn.last_settings.omega0 == 30.0


def test_schedule_state_travels_with_the_state_dict():
    pred, target, _, _ = _pair(scale=0.3)
    a = spl.SirenPoseLoss(EDGES, schedule=spl.OmegaCoarseToFine(anneal_steps=10))
    for _ in range(3):
        a(pred, target)
    b = spl.SirenPoseLoss(EDGES, schedule=spl.OmegaCoarseToFine(anneal_steps=10))
    b.load_state_dict(a.state_dict())
    assert vars(b.schedule) == vars(a.schedule)
    a(pred, target), b(pred, target)
    assert a.last_settings.omega0 == b.last_settings.omega0
    with pytest.raises(ValueError, match="schedule"):
        spl.SirenPoseLoss(EDGES).load_state_dict(a.state_dict())
    with pytest.raises(KeyError, match="unknown keys"):
        spl.AliasGate().load_state_dict(dict(on=True))


@pytest.mark.parametrize("make, match", [
    (lambda: spl.GeoWarmup(fraction=0.0), r"fraction must be in \(0, 1\], got 0.0"),
    (lambda: spl.OmegaCoarseToFine(anneal_steps=0), "anneal_steps must be an int >= 1, got 0"),
    (lambda: spl.OmegaCoarseToFine(anneal_steps=2.5), "anneal_steps must be an int >= 1, got 2.5"),
    (lambda: spl.OmegaCoarseToFine(anneal_steps=5, quantile=1.5), r"quantile must be in \(0, 1\], got 1.5"),
])
def test_bad_schedule_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_schedule_must_be_a_schedule():
    with pytest.raises(TypeError, match="schedule must be a SirenPoseSchedule .* got str"):
        spl.SirenPoseLoss(EDGES, schedule="warmup")


def test_no_schedule_keeps_the_module_compilable():
    pred, target, weight, _ = _pair()
    loss_fn = spl.SirenPoseLoss(EDGES)
    compiled = torch.compile(loss_fn, fullgraph=True, backend="eager")
    torch.testing.assert_close(compiled(pred, target, weight=weight),
                               loss_fn(pred, target, weight=weight))
