"""Spatio-temporal consistency loss: what is particular to it (known answers, its mean's
denominator, exact symmetries and invariances, its ops called directly). The contract every
loss keeps (reference, gradients, precisions, determinism, compile, opcheck, bad input) is
checked in tests/contract/."""
import pytest
import torch
from hypothesis import given, strategies as st

import sirenpose_loss as spl

from conftest import (F64, assert_bitwise_equal, assert_close, draw_common, make_weight,
                      needs_compiled, op, rand_weight, randn)

def scl(reduction, weight=None, order=1):
    return lambda p: spl.spatiotemporal_consistency_loss(p, weight=weight, order=order,
                                                         reduction=reduction)


# ------------------------------------------------------------------------------- known answers
def test_known_answer_velocity(device):
    # Two Gaussians, D = 1: tracks 0 -> 1 -> 3 and 1 -> 1 -> 2.
    P = torch.tensor([[[0.0], [1.0]], [[1.0], [1.0]], [[3.0], [2.0]]], dtype=torch.float64,
                     device=device, requires_grad=True)
    none = spl.spatiotemporal_consistency_loss(P, reduction="none")
    assert none.tolist() == [[1.0, 0.0], [4.0, 1.0]]
    assert spl.spatiotemporal_consistency_loss(P, reduction="sum").item() == 6.0
    loss = spl.spatiotemporal_consistency_loss(P, reduction="mean")
    assert loss.item() == 1.5                            # 6 / ((T - 1) * M) = 6 / 4
    loss.backward()
    # dL/dP[t] = (2 (P[t] - P[t-1]) - 2 (P[t+1] - P[t])) / 4
    assert P.grad[..., 0].tolist() == [[-0.5, 0.0], [-0.5, -0.5], [1.0, 0.5]]
    w = torch.tensor([2.0, 0.0], dtype=torch.float64, device=device)
    assert spl.spatiotemporal_consistency_loss(P, weight=w, reduction="sum").item() == 10.0
    assert spl.spatiotemporal_consistency_loss(P, weight=w, reduction="mean").item() == 2.5


def test_known_answer_acceleration(device):
    P = torch.tensor([[[0.0], [1.0]], [[1.0], [1.0]], [[3.0], [2.0]]], dtype=torch.float64,
                     device=device, requires_grad=True)
    # a = P[2] - 2 P[1] + P[0] = (1, 1)
    none = spl.spatiotemporal_consistency_loss(P, order=2, reduction="none")
    assert none.tolist() == [[1.0, 1.0]]
    loss = spl.spatiotemporal_consistency_loss(P, order=2, reduction="mean")
    assert loss.item() == 1.0                            # 2 / ((T - 2) * M)
    loss.backward()
    # dL/dP = 2 a (1, -2, 1) / 2
    assert P.grad[..., 0].tolist() == [[1.0, 1.0], [-2.0, -2.0], [1.0, 1.0]]


def test_mean_denominator_sums_over_batch(device):
    """mean = sum / ((T - 1) * sum_i w_i per batch entry, summed over the batch)."""
    P = randn(2, 3, 4, 3, seed=31, device=device)
    w = rand_weight(4, seed=32, device=device)
    total = spl.spatiotemporal_consistency_loss(P, weight=w, reduction="sum")
    mean = spl.spatiotemporal_consistency_loss(P, weight=w, reduction="mean")
    assert_close(mean, total / (2 * 2 * w.sum()), **F64)


# -------------------------------------------------------------------------- property tests
@st.composite
def scl_case(draw):
    return dict(draw_common(draw), T=draw(st.integers(0, 7)), M=draw(st.integers(0, 9)),
                order=draw(st.sampled_from([1, 2])))


@given(case=scl_case())
def test_property_exact_symmetries(device, case):
    """Bit-exact: scaling positions by 2 scales the loss by 4; scaling the weights by 2 keeps
    the mean and doubles the sum; a bool mask equals 0/1 weights; order 1 reversed in time gives
    the per-step terms reversed."""
    c = case
    P = randn(*c["batch"], c["T"], c["M"], c["D"], seed=c["seed"], device=device,
              scale=c["scale"])
    w = make_weight(c["weight_kind"], c["batch"], c["M"], seed=c["seed"] + 2, device=device)
    red, order = c["reduction"], c["order"]
    out = scl(red, w, order)(P)
    assert_bitwise_equal(scl(red, w, order)(2 * P), 4 * out, "scale")
    if w is not None:
        wf = w.to(torch.float64)
        assert_bitwise_equal(scl(red, wf, order)(P), out, "bool/float")
        assert_bitwise_equal(scl(red, 2 * wf, order)(P), out if red == "mean" else 2 * out,
                             "weight scale")
    if order == 1:
        terms = scl("none", w, 1)(P)
        assert_bitwise_equal(scl("none", w, 1)(P.flip(-3)), terms.flip(-2), "time reversal")


@given(case=scl_case())
def test_property_invariances(device, case):
    """Invariant to a global translation and to a per-Gaussian constant offset (any order);
    the reductions agree with the per-term values; a shared weight equals its expansion."""
    c = case
    b, T, M, D, red, order = c["batch"], c["T"], c["M"], c["D"], c["reduction"], c["order"]
    P = randn(*b, T, M, D, seed=c["seed"], device=device)
    w = rand_weight(M, seed=c["seed"] + 2, device=device)
    out = scl(red, w, order)(P)
    shift = randn(M, D, seed=c["seed"] + 4, device=device)       # constant in time
    assert_close(scl(red, w, order)(P + shift), out, rtol=1e-9, atol=1e-10)
    assert_close(scl(red, w.expand(*b, M).contiguous(), order)(P), out, **F64)
    terms = scl("none", w, order)(P)
    assert_close(scl("sum", w, order)(P), terms.sum(), **F64)
    denom = max(T - order, 0) * w.expand(*b, M).sum()
    mean = scl("mean", w, order)(P)
    assert_close(mean, terms.sum() / denom if denom > 0 else torch.zeros_like(mean), **F64)


def test_module_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"reduction must be one of"):
        spl.SpatioTemporalConsistencyLoss(reduction="avg")
    with pytest.raises(ValueError, match=r"order must be 1 .* got 3"):
        spl.SpatioTemporalConsistencyLoss(order=3)


@needs_compiled
def test_direct_op_calls_check_their_arguments():
    """The ops are public (torch.ops.sirenpose_loss.*): bad arguments raise, never crash."""
    fwd, bwd = op("spatiotemporal_consistency_fwd"), op("spatiotemporal_consistency_bwd")
    P = randn(2, 4, 3, 3, seed=1)
    with pytest.raises(ValueError, match=r"weight must be non-negative, got -1"):
        fwd(P, torch.tensor([1.0, -1.0, 1.0], dtype=torch.float64), 1, 1)
    with pytest.raises(ValueError, match=r"weight must have 3 or 6 elements, got"):
        fwd(P, torch.ones(4, dtype=torch.float64), 1, 1)
    with pytest.raises(TypeError, match=r"weight must have dtype Double, got Float"):
        fwd(P, torch.ones(3, dtype=torch.float32), 1, 1)
    with pytest.raises(TypeError, match=r"positions must be a floating-point tensor, got"):
        fwd(P.long(), None, 1, 1)
    with pytest.raises(ValueError, match=r"order must be 1 \(velocity\) or 2 \(acceleration\), got 3"):
        fwd(P, None, 3, 1)
    with pytest.raises(ValueError, match=r"reduction code must be .* got -1"):
        fwd(P, None, 1, -1)
    with pytest.raises(ValueError, match=r"positions must have shape \[\.\.\., T, M, D\], got"):
        fwd(P[0, 0], None, 1, 1)
    loss, denom = fwd(P, None, 1, 0)
    with pytest.raises(ValueError, match=r"per-term gradient must have shape \[2, 3, 3\], got"):
        bwd(torch.ones(2, 4, 3, dtype=torch.float64), P, None, denom, 1, 0)
