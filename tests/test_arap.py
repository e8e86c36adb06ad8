"""ARAP loss: rigid motions cost nothing, the rest shape defaults to the first frame (held
fixed), and the per-centre rotation is proper and finite for degenerate neighbourhoods. The
contract (reference, precisions, autograd, rest shapes [M, 3], [..., M, 3] and absent) is in
tests/contract."""
import pytest
import torch

import sirenpose_loss as spl
from sirenpose_loss import reference as ref
from sirenpose_loss.reference._graph_terms import normalize_quaternion, rotation_matrix

from conftest import assert_close, randn


def problem(seed, batch=(), T=3, M=24):
    """Rest points, positions moving near them and the k-NN graph of the rest points."""
    rest = 0.5 * randn(M, 3, seed=seed)
    graph = spl.graphs.rigidity_graph(rest, 5, weight_lambda=20.0)
    positions = rest + randn(*batch, T, M, 3, seed=seed + 1, scale=0.05)
    return rest, positions.requires_grad_(), graph


def test_rigid_motion_has_zero_energy_and_gradient():
    rest, _, graph = problem(1, T=4)
    rot = rotation_matrix(normalize_quaternion(randn(4, 4, seed=2)))           # one per frame
    moved = (rest @ rot.transpose(-1, -2)) + randn(4, 1, 3, seed=3)  # [T, M, 3]
    moved.requires_grad_()
    loss = spl.arap_loss(moved, graph.edge_index, rest_positions=rest, edge_weight=graph.edge_weight)
    loss.backward()
    assert float(loss.detach()) < 1e-20
    assert float(moved.grad.abs().max()) < 1e-10


def test_default_rest_is_the_first_frame_detached():
    _, x, graph = problem(4, batch=(2,))
    got = spl.arap_loss(x, graph.edge_index)
    want = spl.arap_loss(x, graph.edge_index, rest_positions=x[..., 0, :, :].detach())
    (g_got,) = torch.autograd.grad(got, x)
    (g_want,) = torch.autograd.grad(want, x)
    assert_close(got, want, rtol=1e-14, atol=0)
    assert_close(g_got, g_want, rtol=1e-12, atol=1e-15)


def test_reflection_gets_a_proper_rotation():
    """A mirrored neighbourhood: the best rotation is proper (det = +1), not the reflection,
    so the energy is positive and equals the reference's (Kabsch with the determinant fix)."""
    rest, _, graph = problem(7, T=2)
    mirrored = rest * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)
    x = torch.stack([rest, mirrored]).requires_grad_()
    got = spl.arap_loss(x, graph.edge_index, rest_positions=rest, reduction="none")
    want = ref.arap_loss(x, graph.edge_index, rest_positions=rest, reduction="none")
    assert float(got[1].sum().detach()) > 1e-3
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


@pytest.mark.parametrize("flatness", [1e-1, 1e-3, 1e-5, 1e-7, 1e-9, 0.0])
def test_nearly_degenerate_neighbourhoods_get_the_optimal_rotation(flatness):
    """Neighbourhoods that flatten towards a plane or a line: the kernel's fast eigenvector (the
    characteristic polynomial's adjugate) gives way to the Jacobi sweeps as the largest
    eigenvalue of Horn's matrix nears a repeat. On both sides of that switch the energy is the
    minimum (the reference's SVD) and the gradient is the reference's."""
    g = torch.Generator().manual_seed(11)
    M, k = 400, 6
    rest = torch.randn(M, 3, generator=g, dtype=torch.float64)
    rest[:M // 2, 2] *= flatness                       # half planar, half collinear
    rest[M // 2:, 1:] *= flatness
    src = torch.randint(0, M, (M * k,), generator=g)
    dst = torch.arange(M).repeat_interleave(k)
    edges = torch.stack([src, dst])
    rot = rotation_matrix(normalize_quaternion(torch.randn(M, 4, generator=g, dtype=torch.float64)))
    x = torch.stack([rest, rest @ rot[0].T + 0.02 * torch.randn(M, 3, generator=g, dtype=torch.float64)])
    x = x.requires_grad_()
    got = spl.arap_loss(x, edges, rest_positions=rest, reduction="none")
    want = ref.arap_loss(x, edges, rest_positions=rest, reduction="none")
    assert_close(got, want, rtol=1e-9, atol=1e-13)
    (g_got,) = torch.autograd.grad(got.sum(), x)
    (g_want,) = torch.autograd.grad(want.sum(), x)
    assert_close(g_got, g_want, rtol=1e-7, atol=1e-11)
