"""DynaPose4D pose alignment loss: lambda_kml * KML + lambda_scl * SCL,
both with reduction "mean", as one module."""
import pytest
import torch

import sirenpose_loss as spl
from sirenpose_loss import reference as ref

from conftest import (F64, assert_bitwise_equal, assert_close, compare_with_reference,
                      fresh_compile, needs_compiled, rand_weight, randn, run_with_grads, seed_of)


def inputs(*, seed, device="cpu", dtype=torch.float64, batch=(2,), K=6, T=5, M=7):
    pk = randn(*batch, K, 2, seed=seed, device=device, dtype=dtype, requires_grad=True)
    tk = randn(*batch, K, 2, seed=seed + 1, device=device, dtype=dtype, requires_grad=True)
    P = randn(*batch, T, M, 3, seed=seed + 2, device=device, dtype=dtype, requires_grad=True)
    return pk, tk, P


def reference_loss(lambda_kml, lambda_scl, order, kw=None, gw=None):
    def fn(pk, tk, P):
        return (lambda_kml * ref.keypoint_match_loss(pk, tk, weight=kw)
                + lambda_scl * ref.spatiotemporal_consistency_loss(P, weight=gw, order=order))
    return fn


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("lambdas", [(1.0, 1.0), (0.3, 2.5)], ids=str)
def test_matches_reference(device, lambdas, order, weighted):
    s = seed_of("pal", lambdas, order, weighted)
    leaves = inputs(seed=s, device=device)
    kw = rand_weight(2, 6, seed=s + 5, device=device) if weighted else None
    gw = rand_weight(7, seed=s + 6, device=device) if weighted else None
    module = spl.PoseAlignmentLoss(lambda_kml=lambdas[0], lambda_scl=lambdas[1], order=order)
    outs, grads = compare_with_reference(
        lambda pk, tk, P: module(pk, tk, P, keypoint_weight=kw, gaussian_weight=gw),
        reference_loss(*lambdas, order, kw, gw), list(leaves), grad_seed=s + 3)
    assert outs[0].shape == () and all(g is not None for g in grads)


def test_defaults_are_one_and_velocity(device):
    pk, tk, P = (x.detach() for x in inputs(seed=11, device=device))
    m = spl.PoseAlignmentLoss()
    assert (m.lambda_kml, m.lambda_scl, m.order) == (1.0, 1.0, 1)
    assert "lambda_kml=1.0" in repr(m) and "order=1" in repr(m)
    expected = spl.keypoint_match_loss(pk, tk) + spl.spatiotemporal_consistency_loss(P)
    assert_close(m(pk, tk, P), expected, **F64)


def test_return_terms(device):
    pk, tk, P = inputs(seed=21, device=device)
    kw = rand_weight(2, 6, seed=22, device=device)
    m = spl.PoseAlignmentLoss(lambda_kml=0.7, lambda_scl=1.9, order=2)
    out = m(pk, tk, P, keypoint_weight=kw, return_terms=True)
    assert isinstance(out, spl.PoseAlignmentOutput)
    assert out.loss.requires_grad and not out.kml.requires_grad and not out.scl.requires_grad
    assert_close(out.kml, ref.keypoint_match_loss(pk, tk, weight=kw), **F64)
    assert_close(out.scl, ref.spatiotemporal_consistency_loss(P, order=2), **F64)
    assert_close(out.loss, 0.7 * out.kml + 1.9 * out.scl, **F64)
    assert_bitwise_equal(out.loss, m(pk, tk, P, keypoint_weight=kw))


@pytest.mark.parametrize("zero", ["kml", "scl"])
def test_zero_lambda_skips_its_term(device, zero):
    pk, tk, P = inputs(seed=31, device=device)
    lambdas = dict(lambda_kml=0.0 if zero == "kml" else 1.3,
                   lambda_scl=0.0 if zero == "scl" else 0.4)
    out = spl.PoseAlignmentLoss(**lambdas)(pk, tk, P, return_terms=True)
    assert getattr(out, zero).item() == 0.0
    out.loss.backward()
    if zero == "kml":
        assert pk.grad is None and tk.grad is None and P.grad is not None
        assert_close(out.loss, 0.4 * ref.spatiotemporal_consistency_loss(P), **F64)
    else:
        assert P.grad is None and pk.grad is not None and tk.grad is not None
        assert_close(out.loss, 1.3 * ref.keypoint_match_loss(pk, tk), **F64)


def test_float32_keeps_dtype(device):
    pk, tk, P = inputs(seed=41, device=device, dtype=torch.float32)
    out = spl.PoseAlignmentLoss(lambda_scl=0.5)(pk, tk, P)
    assert out.dtype == torch.float32
    expected = reference_loss(1.0, 0.5, 1)(pk.double(), tk.double(), P.double())
    assert_close(out.double(), expected, rtol=1e-5, atol=1e-6)


def test_independent_batch_shapes(device):
    """Keypoints and Gaussian tracks need not share batch dimensions."""
    pk = randn(4, 3, 17, 2, seed=51, device=device, requires_grad=True)
    tk = randn(4, 3, 17, 2, seed=52, device=device)
    P = randn(10, 100, 3, seed=53, device=device, requires_grad=True)
    compare_with_reference(lambda pk, P: spl.PoseAlignmentLoss(lambda_kml=2.0)(pk, tk, P),
                           lambda pk, P: reference_loss(2.0, 1.0, 1)(pk, tk, P), [pk, P],
                           grad_seed=54)


@pytest.mark.parametrize("arg", ["lambda_kml", "lambda_scl"])
@pytest.mark.parametrize("value", [-1.0, float("nan"), float("inf"), "1"], ids=str)
def test_bad_lambdas(arg, value):
    with pytest.raises(ValueError, match=rf"{arg} must be a non-negative finite number, got "):
        spl.PoseAlignmentLoss(**{arg: value})


def test_bad_order():
    """An order other than 1 or 2 is refused (at construction or, at the latest, on the first
    call)."""
    pk, tk, P = (x.detach() for x in inputs(seed=61))
    with pytest.raises(ValueError, match=r"order must be 1 \(velocity\) or 2 \(acceleration\), "
                                         r"got 3"):
        spl.PoseAlignmentLoss(order=3)(pk, tk, P)


def test_bad_inputs_reach_the_user():
    pk, tk, P = (x.detach() for x in inputs(seed=62))
    m = spl.PoseAlignmentLoss()
    with pytest.raises(ValueError, match=r"pred_keypoints and target_keypoints must have the same shape .*, got "):
        m(pk, tk[:, :5], P)
    with pytest.raises(ValueError, match=r"gaussian_weight must have shape \[\.\.\., M\].*, got "):
        m(pk, tk, P, gaussian_weight=torch.ones(8, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"keypoint_weight must be non-negative, got "):
        m(pk, tk, P, keypoint_weight=-torch.ones(6, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"positions must have shape \[\.\.\., T, M, D\]"):
        m(pk, tk, P[0, 0])


@needs_compiled
def test_torch_compile_fullgraph(device):
    pk, tk, P = inputs(seed=71, device=device)
    gw = rand_weight(7, seed=72, device=device)
    m = spl.PoseAlignmentLoss(lambda_kml=0.5, lambda_scl=2.0)
    fn = lambda pk, tk, P: m(pk, tk, P, gaussian_weight=gw)  # noqa: E731
    compiled = fresh_compile(fn)
    outs, grads = run_with_grads(compiled, [pk, tk, P], grad_seed=73)
    eager_outs, eager_grads = run_with_grads(fn, [pk, tk, P], grad_seed=73)
    for a, b in zip(outs + grads, eager_outs + eager_grads):
        assert_close(a, b, rtol=1e-12, atol=1e-14)
