"""ARAP loss: rigid motions cost nothing, the rest shape defaults to the first frame (held
fixed), the per-centre rotation is proper and finite for degenerate neighbourhoods, and the
batched rest shapes match the reference."""
import pytest
import torch

import sirenpose_loss as spl
from sirenpose_loss import reference as ref
from sirenpose_loss.reference._graph_terms import normalize_quaternion, rotation_matrix

from conftest import assert_close, compare_with_reference, randn
from graph_loss_specs import problem


def test_rigid_motion_has_zero_energy_and_gradient():
    p = problem(T=4, seed=1)
    rot = rotation_matrix(normalize_quaternion(randn(4, 4, seed=2)))           # one per frame
    moved = (p.rest_points @ rot.transpose(-1, -2)) + randn(4, 1, 3, seed=3)  # [T, M, 3]
    moved.requires_grad_()
    loss = spl.arap_loss(moved, p.edge_index, rest_positions=p.rest_points, edge_weight=p.edge_weight)
    loss.backward()
    assert float(loss.detach()) < 1e-20
    assert float(moved.grad.abs().max()) < 1e-10


def test_default_rest_is_the_first_frame_detached():
    p = problem(batch=(2,), seed=4)
    x = p.positions
    got = spl.arap_loss(x, p.edge_index)
    want = spl.arap_loss(x, p.edge_index, rest_positions=x[..., 0, :, :].detach())
    (g_got,) = torch.autograd.grad(got, x)
    (g_want,) = torch.autograd.grad(want, x)
    assert_close(got, want, rtol=1e-14, atol=0)
    assert_close(g_got, g_want, rtol=1e-12, atol=1e-15)
    compare_with_reference(lambda y: spl.arap_loss(y, p.edge_index),
                           lambda y: ref.arap_loss(y, p.edge_index), (x,), grad_seed=1)


def test_per_batch_rest_shapes():
    p = problem(batch=(3,), seed=5)
    rest = p.rest_points + randn(3, 24, 3, seed=6, scale=0.01)
    for reduction in ("none", "mean"):
        compare_with_reference(
            lambda y: spl.arap_loss(y, p.edge_index, rest_positions=rest, reduction=reduction),
            lambda y: ref.arap_loss(y, p.edge_index, rest_positions=rest, reduction=reduction),
            (p.positions,), grad_seed=2)


def test_reflection_gets_a_proper_rotation():
    """A mirrored neighbourhood: the best rotation is proper (det = +1), not the reflection,
    so the energy is positive and equals the reference's (Kabsch with the determinant fix)."""
    p = problem(T=2, seed=7)
    mirrored = p.rest_points * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)
    x = torch.stack([p.rest_points, mirrored]).requires_grad_()
    got = spl.arap_loss(x, p.edge_index, rest_positions=p.rest_points, reduction="none")
    want = ref.arap_loss(x, p.edge_index, rest_positions=p.rest_points, reduction="none")
    assert float(got[1].sum()) > 1e-3
    assert_close(got, want, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("case", ["collinear", "single", "zero_weight", "coincident"])
def test_degenerate_neighbourhoods_are_finite_and_optimal(case):
    """Centres whose rotation is not unique or undefined: the energy is still the minimum
    (the reference's, any optimal rotation gives it) and everything is finite."""
    rest = torch.tensor([[0.0, 0, 0], [1, 0, 0], [2, 0, 0], [3, 0, 0]], dtype=torch.float64)
    edges = torch.tensor([[1, 2, 3, 0], [0, 0, 0, 3]])   # centre 0: three collinear neighbours
    weight = torch.ones(4, dtype=torch.float64)
    if case == "single":
        edges, weight = edges[:, :1], weight[:1]
    elif case == "zero_weight":
        weight[:3] = 0
    elif case == "coincident":
        rest = torch.zeros(4, 3, dtype=torch.float64)
    x = torch.stack([rest, rest @ rotation_matrix(normalize_quaternion(randn(4, seed=8))).T
                     + 0.01 * randn(4, 3, seed=9)]).requires_grad_()
    got = spl.arap_loss(x, edges, rest_positions=rest, edge_weight=weight, reduction="none")
    want = ref.arap_loss(x, edges, rest_positions=rest, edge_weight=weight, reduction="none")
    assert_close(got, want, rtol=1e-9, atol=1e-12)
    got.sum().backward()
    assert bool(torch.isfinite(x.grad).all())
