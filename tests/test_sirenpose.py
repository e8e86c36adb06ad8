"""SirenPose loss and its sine graph consistency term: what is particular to them (a
loop-by-loop oracle of the formulas, known answers, the sine's accuracy, graph conventions, the
modules and return_terms, schedules of omega0/lambda_geo under torch.compile, their ops called
directly). The contract every loss keeps (reference, gradients, precisions, determinism,
compile, opcheck, bad input) is checked in tests/contract/."""
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hypothesis import given, strategies as st

import sirenpose_loss as spl
from sirenpose_loss import reference as ref

from conftest import (F64, assert_bitwise_equal, assert_close, compare_with_reference,
                      draw_common, fresh_compile, make_weight, needs_compiled, op,
                      rand_edge_index, rand_weight, randn, run_with_grads, seed_of)

REDUCTIONS = ["none", "mean", "sum"]
SCALE = 0.1          # normalised coordinates: the sine period at omega0 = 30 is ~0.21
EDGE_RANGE = r"edge_index values must be in \[0, 5\) \(K = 5 keypoints\), got"


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


def formula_oracle(pred, target, edges, omega0, lambda_geo, weight, edge_weight):
    """The README's formulas transcribed loop by loop (numpy, one batch entry): the 'sum' loss,
    its two parts and its analytic gradients with respect to pred and target."""
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
def test_against_the_formulas_loop_by_loop(device, omega0, weighted):
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
    total, pos, geo, gp, gt = formula_oracle(np_(pred), np_(target), np_(ei), omega0, lam, np_(w),
                                          np_(ew))
    np.testing.assert_allclose(loss.item(), total, rtol=1e-9)
    np.testing.assert_allclose(np_(pred.grad), gp, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(np_(target.grad), gt, rtol=1e-9, atol=1e-10)
    geo_api = spl.sin_graph_consistency_loss(pred, target, ei, omega0=omega0, weight=w,
                                             edge_weight=ew, reduction="sum")
    np.testing.assert_allclose(geo_api.item(), geo, rtol=1e-9)


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


def test_modules_keep_their_graph_as_buffers():
    ei = rand_edge_index(6, 10, seed=22)
    for module in (spl.SirenPoseLoss(ei, omega0=12.0, lambda_geo=0.4, reduction="sum"),
                   spl.SinGraphConsistencyLoss(ei, omega0=12.0, reduction="sum")):
        assert dict(module.named_buffers())["edge_index"] is ei
        assert "reduction='sum'" in repr(module) and "num_edges=10" in repr(module)
        assert dict(module.to(torch.float32).named_buffers())["edge_index"].dtype == torch.int64


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


@pytest.mark.parametrize("part", ["pos", "geo"])
def test_none_backward_through_one_part(device, part):
    """reduction='none': backpropagating through pos only (or geo only) works."""
    pred, target = pair(2, 5, 3, seed=41, device=device)
    ei = rand_edge_index(5, 9, seed=42, device=device)
    w = rand_weight(2, 5, seed=43, device=device)

    def pick(impl):
        return lambda p, t: getattr(sp(ei, "none", weight=w, impl=impl)(p, t), part)

    compare_with_reference(pick(spl), pick(ref), [pred, target], grad_seed=44)


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


@needs_compiled
def test_torch_compile_module_return_terms(device):
    """SirenPoseLoss(..., return_terms=True) traces whole: loss and its detached parts."""
    pred, target = pair(3, 6, 3, seed=81, device=device)
    ei = rand_edge_index(6, 10, seed=82, device=device)
    w = rand_weight(3, 6, seed=83, device=device)
    module = spl.SirenPoseLoss(ei, lambda_geo=0.5, reduction="sum")

    def fn(p, t):
        return tuple(module(p, t, weight=w, return_terms=True))

    outs, grads = run_with_grads(fresh_compile(fn), [pred, target], grad_seed=85)
    eager_outs, eager_grads = run_with_grads(fn, [pred, target], grad_seed=85)
    assert_bitwise_equal(outs + grads, eager_outs + eager_grads, "compiled vs eager")


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


@st.composite
def graph_case(draw):
    K = draw(st.integers(0, 8))
    E = draw(st.integers(0, 16)) if K else 0
    return dict(draw_common(draw, scales=(1e-3, 0.1, 1.0)), K=K, E=E,
                edge_weighted=draw(st.booleans()), int32=draw(st.booleans()),
                omega0=draw(st.sampled_from([30.0, 1.0, 250.0])),
                lambda_geo=draw(st.sampled_from([1.0, 0.25, 0.0])))


def _build(c, device):
    pred, target = pair(*c["batch"], c["K"], c["D"], seed=c["seed"], device=device,
                        scale=c["scale"])
    ei = rand_edge_index(c["K"], c["E"], seed=c["seed"] + 5, device=device,
                         dtype=torch.int32 if c["int32"] else torch.int64)
    w = make_weight(c["weight_kind"], c["batch"], c["K"], seed=c["seed"] + 7, device=device)
    ew = rand_weight(c["E"], seed=c["seed"] + 8, device=device) if c["edge_weighted"] else None
    return pred, target, ei, w, ew


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


def _good():
    """A valid call over K = 5 keypoints."""
    return (randn(2, 5, 3, seed=1, scale=SCALE), randn(2, 5, 3, seed=2, scale=SCALE),
            torch.tensor([[0, 1, 2, 3], [1, 2, 3, 4]]))


def _edges(*rows, dtype=torch.int64):
    return torch.tensor(rows, dtype=dtype)


@pytest.mark.parametrize("bad,exc,match", [
    (_edges([0, 1, 5], [1, 2, 3]), IndexError, EDGE_RANGE),
    (_edges([0, 1], [1, -1]), IndexError, EDGE_RANGE),
    (_edges([0, 1], [1, 2]).float(), TypeError,
     r"edge_index must be an int64 \(or int32\) tensor, got"),
    (_edges([0, 1], [1, 2], [2, 3]), ValueError,
     r"edge_index must have shape \[2, E\], got \[3, 2\]"),
], ids=["above-K", "negative", "float", "3xE"])
def test_bad_graph_in_modules(bad, exc, match):
    """A module built over a bad graph refuses it on the first call."""
    pred, target, _ = _good()
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
    """The ops are public (torch.ops.sirenpose_loss.*): bad arguments raise, never crash."""
    fwd, bwd = op("sirenpose_fwd"), op("sirenpose_bwd")
    pred, target, ei = _good()
    ew = torch.ones(4, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"edge_weight must be non-negative, got -1"):
        fwd(pred, target, ei, None, torch.tensor([1.0, -1.0, 1.0, 1.0], dtype=torch.float64),
            30.0, 1.0, True, 1)
    with pytest.raises(ValueError, match=r"(?<!edge_)weight must be non-negative, got -1"):
        fwd(pred, target, ei, -torch.ones(5, dtype=torch.float64), None, 30.0, 1.0, True, 1)
    with pytest.raises(ValueError, match=r"edge_weight must have 4 or 4 elements, got"):
        fwd(pred, target, ei, None, torch.ones(5, dtype=torch.float64), 30.0, 1.0, True, 1)
    with pytest.raises(ValueError, match=r"(?<!edge_)weight must have 5 or 10 elements, got"):
        fwd(pred, target, ei, torch.ones(3, dtype=torch.float64), None, 30.0, 1.0, True, 1)
    with pytest.raises(TypeError, match=r"edge_index must be an int64 \(or int32\) tensor, got"):
        fwd(pred, target, ei.float(), None, None, 30.0, 1.0, True, 1)
    with pytest.raises(ValueError, match=r"edge_index must have shape \[2, E\], got \[4\]"):
        fwd(pred, target, ei[0], None, None, 30.0, 1.0, True, 1)
    with pytest.raises(ValueError, match=r"pred and target must have the same shape, got"):
        fwd(pred, target[:, :4], ei, None, None, 30.0, 1.0, True, 1)
    with pytest.raises(ValueError, match=r"reduction code must be .* got 9"):
        fwd(pred, target, ei, None, ew, 30.0, 1.0, True, 9)
    loss, pos, geo, denom = fwd(pred, target, ei, None, None, 30.0, 1.0, True, 0)
    with pytest.raises(ValueError, match=r"per-term gradient must have shape \[2, 5\], got"):
        bwd(torch.ones(2, 4, dtype=torch.float64), torch.ones(2, 3, dtype=torch.float64), pred,
            target, ei, None, None, denom, None, None, 30.0, 1.0, True, 0, [True, True])
    with pytest.raises(ValueError, match=r"denom must have at least 2 elements, got 1"):
        bwd(torch.ones((), dtype=torch.float64), torch.ones((), dtype=torch.float64), pred,
            target, ei, None, None, torch.ones(1, dtype=torch.float64), None, None, 30.0, 1.0,
            True, 1, [True, True])
