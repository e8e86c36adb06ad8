"""SirenPose loss and its sine graph consistency term (SPEC §3-4): fused kernels against the
pure-PyTorch reference and a loop-by-loop oracle of the SPEC formulas, known answers, the
modules (return_terms included), gradients, edge cases, determinism, torch.compile/opcheck and
bad input (SPEC §5)."""
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hypothesis import given, strategies as st

import sirenpose_loss as spl
from sirenpose_loss import reference as ref

from conftest import (F64, ThreadCount, assert_bitwise_equal, assert_close,
                      compare_with_reference, fresh_compile, needs_compiled, op, rand_edge_index,
                      rand_mask, rand_weight, randn, run_with_grads, seed_of)

REDUCTIONS = ["none", "mean", "sum"]
WEIGHT_KINDS = [None, "batch", "shared", "bool"]
BATCHES = [(), (3,), (2, 3)]
SCALE = 0.1          # normalised coordinates: the sine period at omega0 = 30 is ~0.21


def make_weight(kind, batch, K, *, seed, device="cpu", dtype=torch.float64):
    if kind is None:
        return None
    shape = (*batch, K) if kind in ("batch", "bool") else (K,)
    if kind == "bool":
        return rand_mask(*shape, seed=seed, device=device)
    return rand_weight(*shape, seed=seed, device=device, dtype=dtype)


def pair(*shape, seed, device="cpu", dtype=torch.float64, scale=SCALE):
    return (randn(*shape, seed=seed, device=device, dtype=dtype, scale=scale, requires_grad=True),
            randn(*shape, seed=seed + 1, device=device, dtype=dtype, scale=scale,
                  requires_grad=True))


def sgc(edge_index, reduction, *, omega0=30.0, weight=None, edge_weight=None, impl=spl):
    return lambda p, t: impl.sin_graph_consistency_loss(p, t, edge_index, omega0=omega0,
                                                        weight=weight, edge_weight=edge_weight,
                                                        reduction=reduction)


def sp(edge_index, reduction, *, omega0=30.0, lambda_geo=1.0, weight=None, edge_weight=None,
       impl=spl):
    return lambda p, t: impl.sirenpose_loss(p, t, edge_index, omega0=omega0,
                                            lambda_geo=lambda_geo, weight=weight,
                                            edge_weight=edge_weight, reduction=reduction)


# ------------------------------------------------------------------------ against the reference
@pytest.mark.parametrize("batch", BATCHES, ids=str)
@pytest.mark.parametrize("D", [1, 2, 3, 4])
@pytest.mark.parametrize("edge_weighted", [False, True])
@pytest.mark.parametrize("weight_kind", WEIGHT_KINDS, ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_sin_graph_matches_reference(device, reduction, weight_kind, edge_weighted, D, batch):
    K, E = 6, 11
    s = seed_of("sgc", reduction, weight_kind, edge_weighted, D, batch)
    pred, target = pair(*batch, K, D, seed=s, device=device)
    ei = rand_edge_index(K, E, seed=s + 5, device=device)
    w = make_weight(weight_kind, batch, K, seed=s + 7, device=device)
    ew = rand_weight(E, seed=s + 8, device=device) if edge_weighted else None
    kw = dict(weight=w, edge_weight=ew)
    outs, _ = compare_with_reference(sgc(ei, reduction, **kw), sgc(ei, reduction, impl=ref, **kw),
                                     [pred, target], grad_seed=s + 3)
    assert outs[0].shape == ((*batch, E) if reduction == "none" else ())


@pytest.mark.parametrize("batch", BATCHES, ids=str)
@pytest.mark.parametrize("D", [1, 2, 3, 4])
@pytest.mark.parametrize("lambda_geo", [1.0, 0.37, 0.0])
@pytest.mark.parametrize("weight_kind", WEIGHT_KINDS, ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_sirenpose_matches_reference(device, reduction, weight_kind, lambda_geo, D, batch):
    K, E = 7, 9
    s = seed_of("sp", reduction, weight_kind, lambda_geo, D, batch)
    pred, target = pair(*batch, K, D, seed=s, device=device)
    ei = rand_edge_index(K, E, seed=s + 5, device=device)
    w = make_weight(weight_kind, batch, K, seed=s + 7, device=device)
    ew = rand_weight(E, seed=s + 8, device=device)
    kw = dict(weight=w, edge_weight=ew, lambda_geo=lambda_geo)
    outs, _ = compare_with_reference(sp(ei, reduction, **kw), sp(ei, reduction, impl=ref, **kw),
                                     [pred, target], grad_seed=s + 3)
    if reduction == "none":
        assert [o.shape for o in outs] == [(*batch, K), (*batch, E)]
    else:
        assert outs[0].shape == ()


@pytest.mark.parametrize("omega0", [0.5, 7.0, 30.0, 100.0])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_omega0_and_larger_graphs(device, reduction, omega0):
    """Larger graph (more work than one chunk), an odd batch, coordinates at several scales."""
    s = seed_of("sp-large", reduction, omega0)
    pred, target = pair(5, 61, 3, seed=s, device=device, scale=0.5)
    ei = rand_edge_index(61, 700, seed=s + 5, device=device)
    w = rand_weight(5, 61, seed=s + 7, device=device)
    ew = rand_weight(700, seed=s + 8, device=device)
    kw = dict(omega0=omega0, weight=w, edge_weight=ew)
    compare_with_reference(sp(ei, reduction, lambda_geo=0.8, **kw),
                           sp(ei, reduction, lambda_geo=0.8, impl=ref, **kw), [pred, target],
                           grad_seed=s + 3)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_many_small_batch_entries(device, reduction):
    """Many small graphs: several batch entries share a work chunk, several chunks."""
    s = seed_of("sp-many", reduction)
    pred, target = pair(300, 17, 2, seed=s, device=device)
    ei = rand_edge_index(17, 30, seed=s + 5, device=device)
    w = rand_weight(300, 17, seed=s + 7, device=device)
    compare_with_reference(sp(ei, reduction, weight=w, lambda_geo=0.5),
                           sp(ei, reduction, weight=w, lambda_geo=0.5, impl=ref),
                           [pred, target], grad_seed=s + 3)


def test_int32_edge_index_equals_int64(device):
    pred, target = pair(2, 8, 3, seed=12, device=device)
    ei = rand_edge_index(8, 20, seed=13, device=device)
    for reduction in REDUCTIONS:
        a = run_with_grads(sp(ei, reduction), [pred, target], grad_seed=14)
        b = run_with_grads(sp(ei.int(), reduction), [pred, target], grad_seed=14)
        assert_bitwise_equal(a[0], b[0], "loss")
        assert_bitwise_equal(a[1], b[1], "grads")


def test_self_loops_and_repeated_edges(device):
    """A self-loop has a zero term and no gradient; a repeated edge counts twice."""
    pred, target = pair(2, 4, 3, seed=15, device=device)
    loop = torch.tensor([[2], [2]], device=device)
    none = spl.sin_graph_consistency_loss(pred, target, loop, reduction="none")
    assert torch.equal(none, torch.zeros(2, 1, dtype=torch.float64, device=device))
    spl.sin_graph_consistency_loss(pred, target, loop, reduction="sum").backward()
    assert not pred.grad.any() and not target.grad.any()
    ei = torch.tensor([[0, 1], [1, 3]], device=device)
    twice = torch.cat([ei, ei], dim=1)
    p, t = pred.detach(), target.detach()
    assert_close(spl.sin_graph_consistency_loss(p, t, twice, reduction="sum"),
                 2 * spl.sin_graph_consistency_loss(p, t, ei, reduction="sum"), **F64)
    assert_close(spl.sin_graph_consistency_loss(p, t, twice, reduction="mean"),
                 spl.sin_graph_consistency_loss(p, t, ei, reduction="mean"), **F64)


@pytest.mark.parametrize("omega0", [1.0, 30.0])
def test_sine_accuracy_over_wide_arguments(device, omega0):
    """Edges (i, 0) with pred_0 = target = 0 make each graph term sin^2(omega0 * pred_i): the
    kernel's sine must stay accurate far from 0 (|omega0 x| up to 2e5, past any fast-path
    limit), next to multiples of pi/2, and for tiny arguments."""
    g = torch.Generator().manual_seed(101)
    limit = 2e5 / omega0
    x = torch.cat([
        (torch.rand(2000, generator=g, dtype=torch.float64) * 2 - 1) * limit,       # wide
        torch.arange(1, 2001, dtype=torch.float64) * 73 * (math.pi / 2) / omega0,    # ~ k pi/2
        torch.logspace(-300, 0, 200, dtype=torch.float64) / omega0,                  # tiny
        torch.tensor([0.0, -0.0, 1e5 / omega0, -1e5 / omega0, math.nextafter(1e5, 2e5) / omega0],
                     dtype=torch.float64),
    ])
    pred = torch.cat([torch.zeros(1, dtype=torch.float64), x])[:, None].to(device)
    pred.requires_grad_()
    target = torch.zeros_like(pred)
    n = x.numel()
    ei = torch.stack([torch.arange(1, n + 1), torch.zeros(n, dtype=torch.long)]).to(device)
    terms = spl.sin_graph_consistency_loss(pred, target, ei, omega0=omega0, reduction="none")
    with torch.no_grad():
        exact = torch.sin(omega0 * pred[1:, 0]) ** 2
    assert_close(terms, exact, rtol=1e-9, atol=1e-13)
    terms.sum().backward()
    with torch.no_grad():
        arg = omega0 * pred[1:, 0]
        expected = 2 * omega0 * torch.sin(arg) * torch.cos(arg)
    assert_close(pred.grad[1:, 0], expected, rtol=1e-9, atol=1e-12 * omega0)


# ----------------------------------------------------------------------- SPEC formula oracle
def spec_oracle(pred, target, edges, omega0, lambda_geo, weight, edge_weight):
    """SPEC §3-4 transcribed loop by loop (numpy, one batch entry): the 'sum' loss, its two
    parts and its analytic gradients with respect to pred and target."""
    K, D = pred.shape
    w = np.ones(K) if weight is None else weight
    pos = float(np.sum(w * np.sum((pred - target) ** 2, axis=1)))
    gp = 2 * w[:, None] * (pred - target)
    gt = -gp.copy()
    geo = 0.0
    for e, (i, j) in enumerate(edges.T):
        we = (1.0 if edge_weight is None else edge_weight[e]) * w[i] * w[j]
        a, b = pred[i] - pred[j], target[i] - target[j]
        r = np.sin(omega0 * a) - np.sin(omega0 * b)
        geo += we * float(r @ r)
        g = lambda_geo * 2 * we * omega0 * r * np.cos(omega0 * a)
        h = lambda_geo * -2 * we * omega0 * r * np.cos(omega0 * b)
        gp[i] += g
        gp[j] -= g
        gt[i] += h
        gt[j] -= h
    return pos + lambda_geo * geo, pos, geo, gp, gt


@pytest.mark.parametrize("omega0", [30.0, 3.0])
@pytest.mark.parametrize("weighted", [False, True])
def test_against_spec_formulas(device, omega0, weighted):
    s = seed_of("sp-oracle", omega0, weighted)
    K, D, E, lam = 7, 3, 15, 0.6
    pred, target = pair(K, D, seed=s, device=device)
    ei = rand_edge_index(K, E, seed=s + 5, device=device)
    w = rand_weight(K, seed=s + 7, device=device) if weighted else None
    ew = rand_weight(E, seed=s + 8, device=device) if weighted else None
    loss = spl.sirenpose_loss(pred, target, ei, omega0=omega0, lambda_geo=lam, weight=w,
                              edge_weight=ew, reduction="sum")
    loss.backward()
    np_ = lambda t: None if t is None else t.detach().cpu().numpy()  # noqa: E731
    total, pos, geo, gp, gt = spec_oracle(np_(pred), np_(target), np_(ei), omega0, lam, np_(w),
                                          np_(ew))
    np.testing.assert_allclose(loss.item(), total, rtol=1e-9)
    np.testing.assert_allclose(np_(pred.grad), gp, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(np_(target.grad), gt, rtol=1e-9, atol=1e-10)
    geo_api = spl.sin_graph_consistency_loss(pred, target, ei, omega0=omega0, weight=w,
                                             edge_weight=ew, reduction="sum")
    np.testing.assert_allclose(geo_api.item(), geo, rtol=1e-9)


# ------------------------------------------------------------------------------- known answers
def test_known_answer_triangle(device):
    # omega0 = pi/2 turns unit offsets into sin = +-1. pred: (1,0), (0,0), (0,1); target: 0.
    w0 = math.pi / 2
    pred = torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]], dtype=torch.float64, device=device)
    target = torch.zeros(3, 2, dtype=torch.float64, device=device)
    ei = torch.tensor([[0, 1, 0], [1, 2, 2]], device=device)
    tight = dict(rtol=1e-14, atol=1e-14)
    geo = spl.sin_graph_consistency_loss(pred, target, ei, omega0=w0, reduction="none")
    assert_close(geo, torch.tensor([1.0, 1.0, 2.0], dtype=torch.float64, device=device), **tight)
    assert_close(spl.sin_graph_consistency_loss(pred, target, ei, omega0=w0, reduction="mean"),
                 torch.tensor(4 / 3, dtype=torch.float64, device=device), **tight)
    terms = spl.sirenpose_loss(pred, target, ei, omega0=w0, reduction="none")
    assert terms.pos.tolist() == [1.0, 0.0, 1.0]
    total = spl.sirenpose_loss(pred, target, ei, omega0=w0, lambda_geo=0.5, reduction="sum")
    assert_close(total, torch.tensor(4.0, dtype=torch.float64, device=device), **tight)
    mean = spl.sirenpose_loss(pred, target, ei, omega0=w0, lambda_geo=0.5, reduction="mean")
    # 2/3 + 0.5 * 4/3
    assert_close(mean, torch.tensor(4 / 3, dtype=torch.float64, device=device), **tight)


def test_known_answer_gradient(device):
    # omega0 = pi/3, one edge, D = 1: a = 1, b = 0, r = sin(pi/3) = sqrt(3)/2, L = 3/4.
    # dL/dpred_0 = 2 w0 r cos(w0 a) = pi sqrt(3)/6; dL/dtarget_0 = -2 w0 r cos(0) = -pi sqrt(3)/3.
    w0 = math.pi / 3
    pred = torch.tensor([[1.0], [0.0]], dtype=torch.float64, device=device, requires_grad=True)
    target = torch.zeros(2, 1, dtype=torch.float64, device=device, requires_grad=True)
    ei = torch.tensor([[0], [1]], device=device)
    loss = spl.sin_graph_consistency_loss(pred, target, ei, omega0=w0, reduction="sum")
    loss.backward()
    g = math.pi * math.sqrt(3) / 6
    assert abs(loss.item() - 0.75) < 1e-14
    assert_close(pred.grad[:, 0], torch.tensor([g, -g], dtype=torch.float64, device=device),
                 rtol=1e-13, atol=1e-14)
    assert_close(target.grad[:, 0], torch.tensor([-2 * g, 2 * g], dtype=torch.float64,
                                                 device=device), rtol=1e-13, atol=1e-14)


# ------------------------------------------------------------------ modules and return_terms
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_modules_match_functional(device, reduction):
    pred, target = pair(2, 6, 3, seed=21, device=device)
    ei = rand_edge_index(6, 10, seed=22, device=device)
    w = rand_weight(2, 6, seed=23, device=device)
    ew = rand_weight(10, seed=24, device=device)
    m = spl.SirenPoseLoss(ei, omega0=12.0, lambda_geo=0.4, reduction=reduction)
    assert dict(m.named_buffers())["edge_index"] is ei
    assert reduction in repr(m) and "num_edges=10" in repr(m)
    assert_bitwise_equal(m(pred, target, weight=w, edge_weight=ew),
                         sp(ei, reduction, omega0=12.0, lambda_geo=0.4, weight=w,
                            edge_weight=ew)(pred, target))
    g = spl.SinGraphConsistencyLoss(ei, omega0=12.0, reduction=reduction)
    assert dict(g.named_buffers())["edge_index"] is ei
    assert_bitwise_equal(g(pred, target, weight=w, edge_weight=ew),
                         sgc(ei, reduction, omega0=12.0, weight=w, edge_weight=ew)(pred, target))
    # gradients flow through the modules like through the functions
    compare_with_reference(lambda p, t: m(p, t, weight=w),
                           sp(ei, reduction, omega0=12.0, lambda_geo=0.4, weight=w, impl=ref),
                           [pred, target], grad_seed=25)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_module_return_terms(device, reduction):
    pred, target = pair(3, 5, 2, seed=31, device=device)
    ei = rand_edge_index(5, 8, seed=32, device=device)
    w = rand_weight(3, 5, seed=33, device=device)
    m = spl.SirenPoseLoss(ei, lambda_geo=0.3, reduction=reduction)
    out = m(pred, target, weight=w, return_terms=True)
    assert isinstance(out, spl.SirenPoseOutput)
    assert out.loss.requires_grad and not out.pos.requires_grad and not out.geo.requires_grad
    assert_close(out.pos, ref.keypoint_match_loss(pred, target, weight=w, reduction=reduction),
                 **F64)
    assert_close(out.geo, ref.sin_graph_consistency_loss(pred, target, ei, weight=w,
                                                         reduction=reduction), **F64)
    assert_close(out.loss, out.pos + 0.3 * out.geo, **F64)
    assert_bitwise_equal(out.loss, m(pred, target, weight=w))
    out.loss.backward()
    leaf = pred.detach().requires_grad_()
    expected = ref.sirenpose_loss(leaf, target, ei, lambda_geo=0.3, weight=w, reduction=reduction)
    ref_grad, = torch.autograd.grad(expected, [leaf])
    assert_close(pred.grad, ref_grad, **F64)


def test_module_return_terms_refused_with_none(device):
    m = spl.SirenPoseLoss(torch.tensor([[0], [1]], device=device), reduction="none")
    pred, target = pair(2, 3, seed=35, device=device)
    with pytest.raises(ValueError, match=r"return_terms=True needs reduction 'mean' or 'sum'"):
        m(pred, target, return_terms=True)


def test_graph_objects_are_accepted(device):
    """Anything with .edge_index (and optional .edge_weight), e.g. a KeypointGraph."""
    pred, target = pair(2, 5, 3, seed=36, device=device)
    ei = rand_edge_index(5, 7, seed=37, device=device)
    ew = rand_weight(7, seed=38, device=device)
    graph = SimpleNamespace(edge_index=ei, edge_weight=ew)
    p, t = pred.detach(), target.detach()
    for reduction in REDUCTIONS:
        expected = spl.sirenpose_loss(p, t, ei, edge_weight=ew, reduction=reduction)
        assert_bitwise_equal(spl.sirenpose_loss(p, t, graph, reduction=reduction), expected)
        assert_bitwise_equal(spl.SirenPoseLoss(graph, reduction=reduction)(p, t), expected)
    ew2 = rand_weight(7, seed=39, device=device)          # an explicit edge_weight wins
    assert_bitwise_equal(spl.sin_graph_consistency_loss(p, t, graph, edge_weight=ew2),
                         spl.sin_graph_consistency_loss(p, t, ei, edge_weight=ew2))
    assert_bitwise_equal(spl.SinGraphConsistencyLoss(graph)(p, t, edge_weight=ew2),
                         spl.sin_graph_consistency_loss(p, t, ei, edge_weight=ew2))
    assert_bitwise_equal(spl.SinGraphConsistencyLoss(graph)(p, t),
                         spl.sin_graph_consistency_loss(p, t, ei, edge_weight=ew))


def test_module_constructor_rejects_bad_arguments():
    ei = torch.tensor([[0], [1]])
    with pytest.raises(ValueError, match=r"omega0 must be a positive finite number, got 0"):
        spl.SirenPoseLoss(ei, omega0=0)
    with pytest.raises(ValueError, match=r"omega0 must be a positive finite number, got nan"):
        spl.SinGraphConsistencyLoss(ei, omega0=float("nan"))
    with pytest.raises(ValueError, match=r"lambda_geo must be a non-negative finite number, "
                                         r"got -1"):
        spl.SirenPoseLoss(ei, lambda_geo=-1)
    with pytest.raises(ValueError, match=r"reduction must be one of"):
        spl.SirenPoseLoss(ei, reduction="avg")
    with pytest.raises(TypeError, match=r"edge_index must be a torch\.Tensor of shape \[2, E\]"):
        spl.SinGraphConsistencyLoss([[0], [1]])


# ------------------------------------------------------------------------------ gradient paths
@pytest.mark.parametrize("loss", ["sgc", "sp"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("wants", ["pred", "target", "both"])
def test_gradient_to_pred_target_or_both(device, loss, reduction, wants):
    s = seed_of("sp-wants", loss, reduction, wants)
    pred, target = pair(2, 5, 3, seed=s, device=device)
    pred.requires_grad_(wants in ("pred", "both"))
    target.requires_grad_(wants in ("target", "both"))
    ei = rand_edge_index(5, 9, seed=s + 5, device=device)
    w = rand_weight(2, 5, seed=s + 7, device=device)
    make = sgc if loss == "sgc" else sp
    _, grads = compare_with_reference(make(ei, reduction, weight=w),
                                      make(ei, reduction, weight=w, impl=ref), [pred, target],
                                      grad_seed=s + 3)
    assert (grads[0] is not None) == (wants in ("pred", "both"))
    assert (grads[1] is not None) == (wants in ("target", "both"))


@pytest.mark.parametrize("part", ["pos", "geo"])
def test_none_backward_through_one_part(device, part):
    """reduction='none': backpropagating through pos only (or geo only) works."""
    pred, target = pair(2, 5, 3, seed=41, device=device)
    ei = rand_edge_index(5, 9, seed=42, device=device)
    w = rand_weight(2, 5, seed=43, device=device)

    def pick(impl):
        return lambda p, t: getattr(sp(ei, "none", weight=w, impl=impl)(p, t), part)

    compare_with_reference(pick(spl), pick(ref), [pred, target], grad_seed=44)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("loss", ["sgc", "sp"])
def test_gradcheck(device, loss, reduction, weighted):
    s = seed_of("sp-gradcheck", loss, reduction, weighted)
    pred, target = pair(2, 4, 2, seed=s, device=device)
    ei = rand_edge_index(4, 6, seed=s + 5, device=device)
    w = rand_weight(2, 4, seed=s + 7, device=device) if weighted else None
    ew = rand_weight(6, seed=s + 8, device=device) if weighted else None
    kw = dict(weight=w, edge_weight=ew)
    fn = sgc(ei, reduction, **kw) if loss == "sgc" else sp(ei, reduction, lambda_geo=0.7, **kw)
    assert torch.autograd.gradcheck(fn, (pred, target))
    assert torch.autograd.gradcheck(fn, (pred, target.detach()))
    assert torch.autograd.gradcheck(lambda t: fn(pred.detach(), t), (target,))


def test_no_grad_and_inference_mode(device):
    pred, target = pair(2, 5, 3, seed=46, device=device)
    ei = rand_edge_index(5, 9, seed=47, device=device)
    expected = ref.sirenpose_loss(pred.detach(), target.detach(), ei)
    with torch.no_grad():
        out = spl.sirenpose_loss(pred, target, ei)
    assert not out.requires_grad
    assert_close(out, expected, **F64)
    with torch.inference_mode():
        assert_close(spl.sirenpose_loss(pred, target, ei), expected, **F64)
        terms = spl.sirenpose_loss(pred, target, ei, reduction="none")
        assert_close(terms.geo, ref.sin_graph_consistency_loss(pred.detach(), target.detach(), ei,
                                                               reduction="none"), **F64)


def test_double_backward_is_correct_or_refused(device):
    """Second derivatives (a gradient penalty): match the reference or raise, never silently
    drop the second-order term."""
    ei = torch.tensor([[0, 1, 2], [1, 2, 4]], device=device)

    def penalised_grad(impl):
        pred, target = pair(2, 5, 3, seed=48, device=device)
        loss = impl.sirenpose_loss(pred, target, ei, reduction="sum")
        g, = torch.autograd.grad(loss, pred, create_graph=True)
        (loss + g.pow(2).sum()).backward()
        return pred.grad

    expected = penalised_grad(ref)
    try:
        got = penalised_grad(spl)
    except RuntimeError:
        return
    assert_close(got, expected, **F64)


# ----------------------------------------------------------------------------- memory layouts
@pytest.mark.parametrize("layout", ["transposed", "strided", "expanded", "edges_transposed",
                                    "weights_strided"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_non_contiguous_inputs(device, reduction, layout):
    s = seed_of("sp-layout", reduction, layout)
    B, K, D, E = 3, 6, 3, 10
    ei = rand_edge_index(K, E, seed=s + 5, device=device)
    w = rand_weight(B, K, seed=s + 7, device=device)
    ew = rand_weight(E, seed=s + 8, device=device)
    view = lambda p, t: (p, t)  # noqa: E731
    leaves = list(pair(B, K, D, seed=s, device=device))
    if layout == "transposed":
        leaves = list(pair(B, D, K, seed=s, device=device))
        view = lambda p, t: (p.transpose(-1, -2), t.transpose(-1, -2))  # noqa: E731
    elif layout == "strided":
        leaves = list(pair(B, 2 * K, 2 * D, seed=s, device=device))
        view = lambda p, t: (p[:, 1::2, ::2], t[:, ::2, 1::2])  # noqa: E731
    elif layout == "expanded":
        leaves[1] = randn(K, D, seed=s + 1, device=device, scale=SCALE, requires_grad=True)
        view = lambda p, t: (p, t.expand(B, K, D))  # noqa: E731
    elif layout == "edges_transposed":       # [E, 2] storage seen as [2, E]
        ei = ei.t().contiguous().t()
        assert not ei.is_contiguous()
    else:
        w = rand_weight(K, B, seed=s + 7, device=device).t()
        ew = rand_weight(2 * E, seed=s + 8, device=device)[::2]
        assert not w.is_contiguous() and not ew.is_contiguous()

    def run(impl):
        return lambda p, t: impl.sirenpose_loss(*view(p, t), ei, weight=w, edge_weight=ew,
                                                lambda_geo=0.9, reduction=reduction)

    compare_with_reference(run(spl), run(ref), leaves, grad_seed=s + 3)


# -------------------------------------------------------------------------------- empty inputs
EMPTY_CASES = [  # (shape [..., K, D], E)
    ((0, 3), 0), ((5, 3), 0), ((0, 5, 2), 4), ((2, 0, 5, 2), 3), ((3, 0, 2), 0), ((1, 2), 2),
]


@pytest.mark.parametrize("shape,E", EMPTY_CASES, ids=str)
@pytest.mark.parametrize("weight_kind", [None, "batch", "shared"], ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_empty_inputs(device, shape, E, weight_kind, reduction):
    """K = 0, E = 0, an empty batch, a single keypoint with self-loops: means are 0 (not NaN)
    with zero gradients wherever there are no terms, and match the reference otherwise."""
    pred, target = pair(*shape, seed=51, device=device)
    K = shape[-2]
    ei = rand_edge_index(K, E, seed=52, device=device)
    w = make_weight(weight_kind, shape[:-2], K, seed=53, device=device)
    ew = rand_weight(E, seed=54, device=device)
    for make in (sgc, sp):
        outs, grads = compare_with_reference(make(ei, reduction, weight=w, edge_weight=ew),
                                             make(ei, reduction, weight=w, edge_weight=ew,
                                                  impl=ref), [pred, target], grad_seed=55)
        assert all(torch.isfinite(o).all() for o in outs)
        assert all(torch.isfinite(g).all() for g in grads)
    # the graph term alone, over no terms: exactly 0 and a zero gradient
    if E == 0 or pred.numel() == 0 or K == 1:
        p, t = pred.detach().requires_grad_(), target.detach().requires_grad_()
        geo = spl.sin_graph_consistency_loss(p, t, ei, weight=w, edge_weight=ew,
                                             reduction="sum" if reduction == "none" else reduction)
        assert geo.item() == 0.0
        geo.backward()
        assert not p.grad.any() and not t.grad.any()


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_zero_total_weight(device, reduction):
    """Zero edge weight total: the graph mean is 0 with zero gradient, the pos term survives.
    Zero keypoint weights: everything is 0 with zero gradient."""
    pred, target = pair(2, 5, 3, seed=56, device=device)
    ei = rand_edge_index(5, 8, seed=57, device=device)
    ew0 = torch.zeros(8, dtype=torch.float64, device=device)
    geo = spl.sin_graph_consistency_loss(pred, target, ei, edge_weight=ew0, reduction=reduction)
    assert geo.item() == 0.0
    geo.backward(torch.tensor(3.0, dtype=torch.float64, device=device))
    assert not pred.grad.any() and not target.grad.any()
    compare_with_reference(sp(ei, reduction, edge_weight=ew0),
                           sp(ei, reduction, edge_weight=ew0, impl=ref), [pred, target],
                           grad_seed=58)
    w0 = torch.zeros(2, 5, dtype=torch.bool, device=device)
    pred.grad = target.grad = None
    loss = spl.sirenpose_loss(pred, target, ei, weight=w0, reduction=reduction)
    assert loss.item() == 0.0
    loss.backward()
    assert not pred.grad.any() and not target.grad.any()


def test_zero_weight_keypoint_cuts_its_edges(device):
    """w_e = edge_weight_e * w_i * w_j: a keypoint of weight 0 removes its edges."""
    pred, target = pair(4, 3, seed=59, device=device)
    ei = torch.tensor([[0, 1, 2], [1, 2, 3]], device=device)
    w = torch.tensor([1.0, 1.0, 0.0, 1.0], dtype=torch.float64, device=device)
    none = spl.sin_graph_consistency_loss(pred, target, ei, weight=w, reduction="none")
    assert none[0] > 0 and none[1] == 0 and none[2] == 0
    mean = spl.sin_graph_consistency_loss(pred, target, ei, weight=w, reduction="mean")
    assert_close(mean, none[0], **F64)                   # denominator: sum w_e = 1
    mean.backward()
    assert not pred.grad[2:].any() and pred.grad[:2].all()


# --------------------------------------------------------------------------------- precisions
@pytest.mark.parametrize("loss", ["sgc", "sp"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_float32_against_float64_reference(device, loss, reduction):
    """Many edges per keypoint (gradients accumulate ~100 contributions each)."""
    s = seed_of("sp-f32", loss, reduction)
    pred, target = pair(3, 20, 3, seed=s, device=device, dtype=torch.float32)
    ei = rand_edge_index(20, 1000, seed=s + 5, device=device)
    w = rand_weight(3, 20, seed=s + 7, device=device, dtype=torch.float32)
    make = sgc if loss == "sgc" else sp
    outs, grads = run_with_grads(make(ei, reduction, weight=w), [pred, target], grad_seed=s + 3)
    ref_outs, ref_grads = run_with_grads(make(ei, reduction, weight=w.double(), impl=ref),
                                         [pred.double(), target.double()], grad_seed=s + 3)
    for o, r in zip(outs, ref_outs):
        assert o.dtype == torch.float32
        assert_close(o.double(), r, rtol=1e-5, atol=1e-5 * r.abs().max().item())
    for g, r in zip(grads, ref_grads):
        assert g.dtype == torch.float32
        assert_close(g.double(), r, rtol=1e-4, atol=1e-5 * r.abs().max().item())


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_float32_sum_of_1e7_terms(reduction):
    """Issue requirement: a float32 loss over 1e7 terms is within 1e-5 (relative) of float64."""
    g = torch.Generator().manual_seed(61)
    pred = torch.rand(10, 100, 1, generator=g)
    target = torch.rand(10, 100, 1, generator=g)
    ei = torch.randint(0, 100, (2, 1_000_000), generator=g)          # 10 * 1e6 edge terms
    out = spl.sin_graph_consistency_loss(pred, target, ei, reduction=reduction)
    assert out.dtype == torch.float32
    expected = ref.sin_graph_consistency_loss(pred.double(), target.double(), ei,
                                              reduction=reduction)
    rel = abs(out.double().item() - expected.item()) / expected.item()
    assert rel <= 1e-5, f"relative error {rel:.3g} of the float32 {reduction} over 1e7 terms"


@needs_compiled  # float32 accumulation of half inputs is a property of our kernels
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_half_precision(device, dtype, reduction):
    s = seed_of("sp-half", str(dtype), reduction)
    pred, target = pair(3, 9, 2, seed=s, device=device, dtype=dtype)
    ei = rand_edge_index(9, 20, seed=s + 5, device=device)
    w = rand_weight(3, 9, seed=s + 7, device=device, dtype=dtype)
    try:
        outs, grads = run_with_grads(sp(ei, reduction, weight=w), [pred, target],
                                     grad_seed=s + 3)
    except (TypeError, RuntimeError, NotImplementedError) as exc:
        if device.type == "cpu":
            pytest.skip(f"{dtype} is not accepted on CPU: {exc}")
        raise
    ref_outs, ref_grads = run_with_grads(sp(ei, reduction, weight=w.double(), impl=ref),
                                         [pred.double(), target.double()], grad_seed=s + 3)
    tol = 2e-2 if dtype == torch.bfloat16 else 4e-3
    for o, r in zip(outs, ref_outs):
        assert o.dtype == dtype
        assert_close(o.double(), r, rtol=tol, atol=tol * r.abs().max().item())
    for g, r in zip(grads, ref_grads):
        assert g.dtype == dtype
        assert_close(g.double(), r, rtol=tol, atol=tol * r.abs().max().item())


# ------------------------------------------------------------------------------ NaN and Inf
@pytest.mark.parametrize("special", ["nan", "inf", "-inf", "nan_zero_weight", "inf_target"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("loss", ["sgc", "sp"])
def test_nan_inf_propagate_like_reference(device, loss, reduction, special):
    pred, target = pair(2, 5, 3, seed=71, device=device)
    ei = torch.tensor([[0, 3, 1, 2, 4], [3, 1, 2, 0, 4]], device=device)   # edges 0, 1 touch 3
    w = rand_weight(2, 5, seed=72, device=device)
    with torch.no_grad():
        (target if special == "inf_target" else pred)[1, 3, 0] = float(special.split("_")[0])
        if special.endswith("zero_weight"):
            w[1, 3] = 0.0          # a zero weight does not mask a NaN (SPEC: no silent masking)
    make = sgc if loss == "sgc" else sp
    outs, _ = compare_with_reference(make(ei, reduction, weight=w),
                                     make(ei, reduction, weight=w, impl=ref), [pred, target],
                                     grad_seed=73, equal_nan=True)
    assert not all(torch.isfinite(o).all() for o in outs)


# ---------------------------------------------------------------------------------- determinism
@needs_compiled  # the reference fallback uses torch reductions, which depend on threads
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_deterministic_across_runs_and_threads(device, reduction):
    s = seed_of("sp-det", reduction)
    pred, target = pair(16, 2000, 3, seed=s, device=device)
    ei = rand_edge_index(2000, 6000, seed=s + 5, device=device)
    w = rand_weight(16, 2000, seed=s + 7, device=device)
    ew = rand_weight(6000, seed=s + 8, device=device)
    fn = sp(ei, reduction, lambda_geo=0.5, weight=w, edge_weight=ew)
    results = []
    for threads in (2, 2, 2, 1):
        with ThreadCount(threads):
            results.append(run_with_grads(fn, [pred, target], grad_seed=s + 3))
    for outs, grads in results[1:]:
        assert_bitwise_equal(outs, results[0][0], "loss")
        assert_bitwise_equal(grads, results[0][1], "grads")


# ------------------------------------------------------------------------------- compile, ops
@needs_compiled
@pytest.mark.parametrize("case", ["sgc-mean", "sp-none", "module-sum-terms"])
def test_torch_compile_fullgraph(device, case):
    pred, target = pair(3, 6, 3, seed=81, device=device)
    ei = rand_edge_index(6, 10, seed=82, device=device)
    w = rand_weight(3, 6, seed=83, device=device)
    ew = rand_weight(10, seed=84, device=device)
    if case == "sgc-mean":
        def fn(p, t, w, ew):
            return spl.sin_graph_consistency_loss(p, t, ei, weight=w, edge_weight=ew)
    elif case == "sp-none":
        def fn(p, t, w, ew):
            return tuple(spl.sirenpose_loss(p, t, ei, weight=w, edge_weight=ew, lambda_geo=0.5,
                                            reduction="none"))
    else:
        module = spl.SirenPoseLoss(ei, lambda_geo=0.5, reduction="sum")

        def fn(p, t, w, ew):
            return tuple(module(p, t, weight=w, edge_weight=ew, return_terms=True))
    compiled = fresh_compile(fn)
    outs, grads = run_with_grads(lambda p, t: compiled(p, t, w, ew), [pred, target],
                                 grad_seed=85)
    eager_outs, eager_grads = run_with_grads(lambda p, t: fn(p, t, w, ew), [pred, target],
                                             grad_seed=85)
    for a, b in zip(outs + grads, eager_outs + eager_grads):
        assert_close(a, b, rtol=1e-12, atol=1e-14)


@needs_compiled
def test_torch_compile_dynamic_shapes(device):
    """torch.compile(dynamic=True): one graph for several K and E, no graph break."""
    def fn(p, t, ei):
        return (spl.sirenpose_loss(p, t, ei, lambda_geo=0.5)
                + spl.sin_graph_consistency_loss(p, t, ei, reduction="none").sum())
    compiled = fresh_compile(fn, dynamic=True, backend="aot_eager")
    for K, E in [(5, 7), (9, 11), (3, 0)]:
        pred, target = pair(2, K, 3, seed=K * 100 + E, device=device)
        ei = rand_edge_index(K, E, seed=E, device=device)
        outs, grads = run_with_grads(lambda p, t: compiled(p, t, ei), [pred, target], grad_seed=7)
        eager_outs, eager_grads = run_with_grads(lambda p, t: fn(p, t, ei), [pred, target],
                                                 grad_seed=7)
        for a, b in zip(outs + grads, eager_outs + eager_grads):
            assert_close(a, b, rtol=1e-12, atol=1e-14)


@needs_compiled
@pytest.mark.parametrize("varying", ["omega0", "lambda_geo", "module_lambda_geo"])
def test_torch_compile_varying_float_arguments(device, varying):
    """A schedule on omega0 or lambda_geo (e.g. a lambda_geo warm-up) changes a Python float
    between calls; after the first change torch.compile makes it a symbolic float. The loss must
    still compile without a graph break and match eager."""
    pred, target = pair(2, 5, 3, seed=86, device=device)
    ei = rand_edge_index(5, 8, seed=87, device=device)
    module = spl.SirenPoseLoss(ei)

    def fn(p, t, x):
        if varying == "omega0":
            return spl.sirenpose_loss(p, t, ei, omega0=x)
        if varying == "lambda_geo":
            return spl.sirenpose_loss(p, t, ei, lambda_geo=x)
        module.lambda_geo = x
        return module(p, t)

    compiled = fresh_compile(fn, backend="aot_eager")
    for x in (30.0, 20.0, 10.0, 5.0):
        outs, grads = run_with_grads(lambda p, t: compiled(p, t, x), [pred, target], grad_seed=8)
        eager_outs, eager_grads = run_with_grads(lambda p, t: fn(p, t, x), [pred, target],
                                                 grad_seed=8)
        for a, b in zip(outs + grads, eager_outs + eager_grads):
            assert_close(a, b, rtol=1e-12, atol=1e-14)


@needs_compiled
@pytest.mark.parametrize("reduction,with_pos,weighted", [(0, True, True), (0, False, False),
                                                         (1, True, False), (2, False, True)],
                         ids=str)
def test_opcheck(device, reduction, with_pos, weighted):
    """Schema, fake kernel, autograd registration and AOT dispatch of every op."""
    pred, target = pair(2, 5, 3, seed=91, device=device)
    ei = rand_edge_index(5, 8, seed=92, device=device)
    w = rand_weight(2, 5, seed=93, device=device) if weighted else None
    ew = rand_weight(8, seed=94, device=device) if weighted else None
    args = (ei, w, ew, None, None, 30.0, 0.7, with_pos, reduction)
    torch.library.opcheck(op("sirenpose"), (pred, target, *args))
    pred, target = pred.detach(), target.detach()
    torch.library.opcheck(op("sirenpose"), (pred, target, *args))
    fwd_args = (pred, target, ei, w, ew, 30.0, 0.7, with_pos, reduction)
    torch.library.opcheck(op("sirenpose_fwd"), fwd_args)
    loss, pos, geo, denom = op("sirenpose_fwd")(*fwd_args)
    if reduction == 0:
        g_pos = randn(*pos.shape, seed=95, device=device)
        g_geo = randn(*geo.shape, seed=96, device=device)
    else:
        g_pos = g_geo = randn(seed=95, device=device)
    masks = [[True, True], [False, True]] if reduction == 0 else [[True, False]]
    for mask in masks:
        torch.library.opcheck(op("sirenpose_bwd"),
                              (g_pos, g_geo, pred, target, ei, w, ew, denom, None, None, 30.0,
                               0.7, with_pos, reduction, mask))


# -------------------------------------------------------------------------- property tests
@st.composite
def graph_case(draw):
    K = draw(st.integers(0, 8))
    E = draw(st.integers(0, 16)) if K else 0
    return dict(batch=tuple(draw(st.lists(st.integers(0, 3), max_size=2))), K=K, E=E,
                D=draw(st.integers(1, 6)), reduction=draw(st.sampled_from(REDUCTIONS)),
                weight_kind=draw(st.sampled_from(WEIGHT_KINDS)),
                edge_weighted=draw(st.booleans()),
                int32=draw(st.booleans()),
                omega0=draw(st.sampled_from([30.0, 1.0, 250.0])),
                lambda_geo=draw(st.sampled_from([1.0, 0.25, 0.0])),
                scale=draw(st.sampled_from([1e-3, 0.1, 1.0])),
                seed=draw(st.integers(0, 2**30)))


def _build(c, device):
    pred, target = pair(*c["batch"], c["K"], c["D"], seed=c["seed"], device=device,
                        scale=c["scale"])
    ei = rand_edge_index(c["K"], c["E"], seed=c["seed"] + 5, device=device,
                         dtype=torch.int32 if c["int32"] else torch.int64)
    w = make_weight(c["weight_kind"], c["batch"], c["K"], seed=c["seed"] + 7, device=device)
    ew = rand_weight(c["E"], seed=c["seed"] + 8, device=device) if c["edge_weighted"] else None
    return pred, target, ei, w, ew


@given(case=graph_case())
def test_property_matches_reference(device, case):
    """Random graphs (repeated edges and self-loops included) agree with the reference."""
    pred, target, ei, w, ew = _build(case, device)
    kw = dict(omega0=case["omega0"], weight=w, edge_weight=ew)
    red = case["reduction"]
    compare_with_reference(sgc(ei, red, **kw), sgc(ei, red, impl=ref, **kw), [pred, target],
                           grad_seed=case["seed"] + 3)
    compare_with_reference(sp(ei, red, lambda_geo=case["lambda_geo"], **kw),
                           sp(ei, red, lambda_geo=case["lambda_geo"], impl=ref, **kw),
                           [pred, target], grad_seed=case["seed"] + 3)


@given(case=graph_case())
def test_property_structure(device, case):
    """'sum' = pos.sum() + lambda_geo * geo.sum() of 'none'; 'mean' = KML mean + lambda_geo *
    graph mean; the graph term is invariant to translating pred (or target) and to reversing
    the edges; pred == target gives exactly 0 and a zero gradient."""
    pred, target, ei, w, ew = _build(case, device)
    pred, target = pred.detach(), target.detach()
    lam, om, D = case["lambda_geo"], case["omega0"], case["D"]
    kw = dict(omega0=om, weight=w, edge_weight=ew)
    terms = sp(ei, "none", **kw)(pred, target)
    assert isinstance(terms, spl.SirenPoseTerms)
    total = sp(ei, "sum", lambda_geo=lam, **kw)(pred, target)
    assert_close(total, terms.pos.sum() + lam * terms.geo.sum(), **F64)
    assert_close(terms.geo, sgc(ei, "none", **kw)(pred, target), **F64)
    mean = sp(ei, "mean", lambda_geo=lam, **kw)(pred, target)
    kml_mean = spl.keypoint_match_loss(pred, target, weight=w, reduction="mean")
    assert_close(mean, kml_mean + lam * sgc(ei, "mean", **kw)(pred, target), **F64)
    red = case["reduction"]
    geo = sgc(ei, red, **kw)(pred, target)
    shift = randn(D, seed=case["seed"] + 11, device=device, scale=0.3)
    # sin(w0 (x + c)) is evaluated at another argument: allow for its rounding (~ulp * w0 |x|)
    tol = dict(rtol=1e-9, atol=1e-12 * om * max(1.0, case["scale"]) * max(1, ei.shape[1]))
    assert_close(sgc(ei, red, **kw)(pred + shift, target), geo, **tol)
    assert_close(sgc(ei, red, **kw)(pred, target - shift), geo, **tol)
    assert_close(sgc(ei.flip(0), red, **kw)(pred, target), geo, **tol)
    p = pred.clone().requires_grad_()
    t = pred.clone().requires_grad_()
    zero = sp(ei, "sum", lambda_geo=lam, **kw)(p, t)
    assert zero.item() == 0.0
    zero.backward()
    assert not p.grad.any() and not t.grad.any()


# ------------------------------------------------------------------------------- bad input
K = 5


def _good():
    return (randn(2, K, 3, seed=1, scale=SCALE), randn(2, K, 3, seed=2, scale=SCALE),
            torch.tensor([[0, 1, 2, 3], [1, 2, 3, 4]]))


def _edges(*rows, dtype=torch.int64):
    return torch.tensor(rows, dtype=dtype)


EDGE_RANGE = r"edge_index values must be in \[0, 5\) \(K = 5 keypoints\)"
BAD_INPUTS = {
    # name: (kwargs update given (pred, target, edge_index), exception, message regex)
    "pred_list": (lambda p, t, e: dict(pred=p.tolist()), TypeError,
                  r"pred must be a torch\.Tensor of shape \[\.\.\., K, D\], got list"),
    "target_none": (lambda p, t, e: dict(target=None), TypeError,
                    r"target must be a torch\.Tensor of shape \[\.\.\., K, D\], got NoneType"),
    "pred_int": (lambda p, t, e: dict(pred=p.long(), target=t.long()), TypeError,
                 r"pred must be a floating-point tensor, got dtype torch\.int64"),
    "shape": (lambda p, t, e: dict(target=t[:, :4]), ValueError,
              r"pred and target must have the same shape \[\.\.\., K, D\], got \[2, 5, 3\] and "
              r"\[2, 4, 3\]"),
    "shape_D": (lambda p, t, e: dict(target=t[..., :2]), ValueError,
                r"pred and target must have the same shape"),
    "dtype": (lambda p, t, e: dict(target=t.float()), TypeError,
              r"pred and target must have the same dtype, got torch\.float64 and torch\.float32"),
    "one_dim": (lambda p, t, e: dict(pred=p[0, 0], target=t[0, 0]), ValueError,
                r"pred must have shape \[\.\.\., K, D\] \(at least 2 dims\), got shape \[3\]"),
    "D_zero": (lambda p, t, e: dict(pred=p[..., :0], target=t[..., :0]), ValueError,
               r"pred must have a coordinate dimension D >= 1"),
    "device": (lambda p, t, e: dict(target=t.to("meta")), ValueError,
               r"pred and target must be on the same device, got cpu and meta"),
    "edge_index_list": (lambda p, t, e: dict(edge_index=e.tolist()), TypeError,
                        r"edge_index must be a torch\.Tensor of shape \[2, E\] or a "
                        r"KeypointGraph, got list"),
    "edge_index_float": (lambda p, t, e: dict(edge_index=e.float()), TypeError,
                         r"edge_index must be an int64 \(or int32\) tensor, got dtype "
                         r"torch\.float32"),
    "edge_index_bool": (lambda p, t, e: dict(edge_index=e > 1), TypeError,
                        r"edge_index must be an int64 \(or int32\) tensor, got dtype torch\.bool"),
    "edge_index_int16": (lambda p, t, e: dict(edge_index=e.short()), TypeError,
                         r"edge_index must be an int64 \(or int32\) tensor, got dtype "
                         r"torch\.int16"),
    "edge_index_3xE": (lambda p, t, e: dict(edge_index=torch.cat([e, e[:1]])), ValueError,
                       r"edge_index must have shape \[2, E\], got \[3, 4\]"),
    "edge_index_E": (lambda p, t, e: dict(edge_index=e[0]), ValueError,
                     r"edge_index must have shape \[2, E\], got \[4\]"),
    "edge_index_Ex2": (lambda p, t, e: dict(edge_index=e.t().contiguous()), ValueError,
                       r"edge_index must have shape \[2, E\], got \[4, 2\]"),
    "edge_index_3d": (lambda p, t, e: dict(edge_index=e[None]), ValueError,
                      r"edge_index must have shape \[2, E\], got \[1, 2, 4\]"),
    "edge_index_K": (lambda p, t, e: dict(edge_index=_edges([0, 1, 5], [1, 2, 3])), IndexError,
                     EDGE_RANGE),
    "edge_index_negative": (lambda p, t, e: dict(edge_index=_edges([0, 1], [1, -1])),
                            IndexError, EDGE_RANGE),
    "edge_index_huge": (lambda p, t, e: dict(edge_index=_edges([0, 2**40], [1, 2])), IndexError,
                        EDGE_RANGE),
    "edge_index_int32_K": (lambda p, t, e: dict(edge_index=_edges([0, 1], [7, 2],
                                                                 dtype=torch.int32)),
                           IndexError, EDGE_RANGE),
    "edge_index_device": (lambda p, t, e: dict(edge_index=e.to("meta")), ValueError,
                          r"edge_index must be on the same device as pred \(cpu\), got meta"),
    "weight_shape": (lambda p, t, e: dict(weight=torch.ones(4)), ValueError,
                     r"(?<!edge_)weight must have shape \[\.\.\., K\] = \[2, 5\] or \[5\], "
                     r"got \[4\]"),
    "weight_int": (lambda p, t, e: dict(weight=torch.ones(5, dtype=torch.long)), TypeError,
                   r"(?<!edge_)weight must be a floating-point or bool tensor"),
    "weight_requires_grad": (lambda p, t, e: dict(weight=torch.ones(5, requires_grad=True)),
                             ValueError, r"(?<!edge_)weight is a constant of the loss and must "
                                         r"not require grad"),
    "weight_device": (lambda p, t, e: dict(weight=torch.ones(5, device="meta")), ValueError,
                      r"(?<!edge_)weight must be on the same device as the points"),
    "weight_negative": (lambda p, t, e: dict(weight=torch.tensor([1.0, 1.0, -0.5, 1.0, 1.0])),
                        ValueError, r"(?<!edge_)weight must be non-negative"),
    "weight_negative_unused": (lambda p, t, e: dict(weight=torch.tensor([[1.0] * 5,
                                                                         [1.0] * 4 + [-2.0]]),
                                                    edge_index=_edges([0], [1])),
                               ValueError, r"(?<!edge_)weight must be non-negative"),
    "edge_weight_list": (lambda p, t, e: dict(edge_weight=[1.0] * 4), TypeError,
                         r"edge_weight must be a torch\.Tensor of shape \[E\] or None, got list"),
    "edge_weight_shape": (lambda p, t, e: dict(edge_weight=torch.ones(5)), ValueError,
                          r"edge_weight must have shape \[E\] = \[4\] or \[4\], got \[5\]"),
    "edge_weight_batched": (lambda p, t, e: dict(edge_weight=torch.ones(2, 4)), ValueError,
                            r"edge_weight must have shape \[E\] = \[4\] or \[4\], got \[2, 4\]"),
    "edge_weight_int": (lambda p, t, e: dict(edge_weight=torch.ones(4, dtype=torch.int32)),
                        TypeError, r"edge_weight must be a floating-point or bool tensor"),
    "edge_weight_requires_grad": (lambda p, t, e: dict(edge_weight=torch.ones(4,
                                                                              requires_grad=True)),
                                  ValueError, r"edge_weight is a constant of the loss and must "
                                              r"not require grad"),
    "edge_weight_device": (lambda p, t, e: dict(edge_weight=torch.ones(4, device="meta")),
                           ValueError, r"edge_weight must be on the same device as the points"),
    "edge_weight_negative": (lambda p, t, e: dict(edge_weight=torch.tensor([1.0, 0.0, -1.0, 1.0])),
                             ValueError, r"edge_weight must be non-negative"),
    "omega0_zero": (lambda p, t, e: dict(omega0=0.0), ValueError,
                    r"omega0 must be a positive finite number, got 0\.0"),
    "omega0_negative": (lambda p, t, e: dict(omega0=-30), ValueError,
                        r"omega0 must be a positive finite number, got -30"),
    "omega0_nan": (lambda p, t, e: dict(omega0=float("nan")), ValueError,
                   r"omega0 must be a positive finite number, got nan"),
    "omega0_inf": (lambda p, t, e: dict(omega0=float("inf")), ValueError,
                   r"omega0 must be a positive finite number, got inf"),
    "omega0_str": (lambda p, t, e: dict(omega0="30"), ValueError,
                   r"omega0 must be a positive finite number, got '30'"),
    "omega0_bool": (lambda p, t, e: dict(omega0=True), ValueError,
                    r"omega0 must be a positive finite number, got True"),
    "reduction": (lambda p, t, e: dict(reduction="max"), ValueError,
                  r"reduction must be one of 'none', 'mean' or 'sum', got 'max'"),
}
LAMBDA_BAD = {
    "lambda_negative": (lambda p, t, e: dict(lambda_geo=-0.5), ValueError,
                        r"lambda_geo must be a non-negative finite number, got -0\.5"),
    "lambda_nan": (lambda p, t, e: dict(lambda_geo=float("nan")), ValueError,
                   r"lambda_geo must be a non-negative finite number, got nan"),
    "lambda_inf": (lambda p, t, e: dict(lambda_geo=float("inf")), ValueError,
                   r"lambda_geo must be a non-negative finite number, got inf"),
}


def _call(fn, name, table):
    build, exc, match = table[name]
    pred, target, ei = _good()
    kwargs = dict(pred=pred, target=target, edge_index=ei)
    kwargs.update(build(pred, target, ei))
    with pytest.raises(exc, match=match):
        fn(kwargs.pop("pred"), kwargs.pop("target"), kwargs.pop("edge_index"), **kwargs)


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_input_sin_graph(name):
    _call(spl.sin_graph_consistency_loss, name, BAD_INPUTS)


@pytest.mark.parametrize("name", list(BAD_INPUTS) + list(LAMBDA_BAD))
def test_bad_input_sirenpose(name):
    _call(spl.sirenpose_loss, name, {**BAD_INPUTS, **LAMBDA_BAD})


@pytest.mark.parametrize("name", ["edge_index_K", "edge_index_negative", "edge_index_float",
                                  "edge_index_3xE"])
def test_bad_graph_in_modules(name):
    build, exc, match = BAD_INPUTS[name]
    pred, target, ei = _good()
    bad = build(pred, target, ei)["edge_index"]
    for module in (spl.SirenPoseLoss(bad), spl.SinGraphConsistencyLoss(bad)):
        with pytest.raises(exc, match=match):
            module(pred, target)


@needs_compiled
@pytest.mark.parametrize("dtype", [torch.int64, torch.int32], ids=str)
@pytest.mark.parametrize("bad", [5, -1, 2**31 - 1, -(2**31)], ids=str)
def test_direct_op_calls_refuse_out_of_range_edges(dtype, bad):
    """Calling the ops directly with an out-of-range edge index raises IndexError (no crash,
    no out-of-bounds read), forward and backward, through the autograd op too."""
    pred, target, _ = _good()
    ei = torch.tensor([[0, 1, 2], [1, bad, 3]], dtype=dtype)
    for with_pos in (True, False):
        for reduction in (0, 1):
            with pytest.raises(IndexError, match=EDGE_RANGE):
                op("sirenpose_fwd")(pred, target, ei, None, None, 30.0, 1.0, with_pos, reduction)
            with pytest.raises(IndexError, match=EDGE_RANGE):
                op("sirenpose")(pred.requires_grad_(), target, ei, None, None, None, None, 30.0,
                                1.0, with_pos, reduction)
            pred = pred.detach()
    good = torch.tensor([[0, 1, 2], [1, 2, 3]], dtype=dtype)
    loss, pos, geo, denom = op("sirenpose_fwd")(pred, target, good, None, None, 30.0, 1.0,
                                                True, 1)
    g = torch.ones((), dtype=torch.float64)
    with pytest.raises(IndexError, match=EDGE_RANGE):
        op("sirenpose_bwd")(g, g, pred, target, ei, None, None, denom, None, None, 30.0, 1.0,
                            True, 1, [True, True])


@needs_compiled
def test_direct_op_calls_check_their_arguments():
    fwd, bwd = op("sirenpose_fwd"), op("sirenpose_bwd")
    pred, target, ei = _good()
    ew = torch.ones(4, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"edge_weight must be non-negative"):
        fwd(pred, target, ei, None, torch.tensor([1.0, -1.0, 1.0, 1.0], dtype=torch.float64),
            30.0, 1.0, True, 1)
    with pytest.raises(ValueError, match=r"(?<!edge_)weight must be non-negative"):
        fwd(pred, target, ei, -torch.ones(5, dtype=torch.float64), None, 30.0, 1.0, True, 1)
    with pytest.raises(ValueError, match=r"edge_weight"):
        fwd(pred, target, ei, None, torch.ones(5, dtype=torch.float64), 30.0, 1.0, True, 1)
    with pytest.raises(ValueError, match=r"(?<!edge_)weight"):
        fwd(pred, target, ei, torch.ones(3, dtype=torch.float64), None, 30.0, 1.0, True, 1)
    with pytest.raises(TypeError, match=r"edge_index"):
        fwd(pred, target, ei.float(), None, None, 30.0, 1.0, True, 1)
    with pytest.raises(ValueError, match=r"edge_index"):
        fwd(pred, target, ei[0], None, None, 30.0, 1.0, True, 1)
    with pytest.raises(ValueError, match=r"same shape"):
        fwd(pred, target[:, :4], ei, None, None, 30.0, 1.0, True, 1)
    with pytest.raises(ValueError, match=r"reduction"):
        fwd(pred, target, ei, None, ew, 30.0, 1.0, True, 9)
    loss, pos, geo, denom = fwd(pred, target, ei, None, None, 30.0, 1.0, True, 0)
    with pytest.raises((ValueError, RuntimeError)):     # per-term gradients of the wrong shape
        bwd(torch.ones(2, 4, dtype=torch.float64), torch.ones(2, 3, dtype=torch.float64), pred,
            target, ei, None, None, denom, None, None, 30.0, 1.0, True, 0, [True, True])
    with pytest.raises((ValueError, RuntimeError)):     # a denom that is too short
        bwd(torch.ones((), dtype=torch.float64), torch.ones((), dtype=torch.float64), pred,
            target, ei, None, None, torch.ones(1, dtype=torch.float64), None, None, 30.0, 1.0,
            True, 1, [True, True])
