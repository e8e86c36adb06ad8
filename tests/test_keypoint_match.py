"""Keypoint match loss (SPEC §1): fused kernels against the pure-PyTorch reference, known
answers, gradients, edge cases, determinism, torch.compile/opcheck and bad input (SPEC §5)."""
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, strategies as st

import sirenpose_loss as spl
from sirenpose_loss import reference as ref

from conftest import (F64, ThreadCount, assert_bitwise_equal, assert_close,
                      compare_with_reference, fresh_compile, needs_compiled, op, rand_mask,
                      rand_weight, randn, run_with_grads, seed_of)

REDUCTIONS = ["none", "mean", "sum"]
WEIGHT_KINDS = [None, "batch", "shared", "bool", "bool_shared"]
BATCHES = [(), (3,), (2, 3)]


def make_weight(kind, batch, K, *, seed, device="cpu", dtype=torch.float64):
    if kind is None:
        return None
    shape = (*batch, K) if kind in ("batch", "bool") else (K,)
    if kind.startswith("bool"):
        return rand_mask(*shape, seed=seed, device=device)
    return rand_weight(*shape, seed=seed, device=device, dtype=dtype)


def kml(reduction, weight=None):
    return lambda p, t: spl.keypoint_match_loss(p, t, weight=weight, reduction=reduction)


def kml_ref(reduction, weight=None):
    return lambda p, t: ref.keypoint_match_loss(p, t, weight=weight, reduction=reduction)


def pair(*shape, seed, device="cpu", dtype=torch.float64, scale=1.0):
    return (randn(*shape, seed=seed, device=device, dtype=dtype, scale=scale, requires_grad=True),
            randn(*shape, seed=seed + 1, device=device, dtype=dtype, scale=scale,
                  requires_grad=True))


# ------------------------------------------------------------------------ against the reference
@pytest.mark.parametrize("batch", BATCHES, ids=str)
@pytest.mark.parametrize("D", [1, 2, 3, 4])
@pytest.mark.parametrize("weight_kind", WEIGHT_KINDS, ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_matches_reference(device, reduction, weight_kind, D, batch):
    K = 5
    s = seed_of("kml", reduction, weight_kind, D, batch)
    pred, target = pair(*batch, K, D, seed=s, device=device)
    w = make_weight(weight_kind, batch, K, seed=s + 7, device=device)
    outs, _ = compare_with_reference(kml(reduction, w), kml_ref(reduction, w), [pred, target],
                                     grad_seed=s + 3)
    assert outs[0].shape == (tuple(batch) + (K,) if reduction == "none" else ())


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_matches_reference_larger_odd_sizes(device, reduction):
    s = seed_of("kml-large", reduction)
    pred, target = pair(7, 13, 1001, 3, seed=s, device=device)
    w = rand_weight(7, 13, 1001, seed=s + 2, device=device)
    compare_with_reference(kml(reduction, w), kml_ref(reduction, w), [pred, target],
                           grad_seed=s + 5)


def test_float32_weight_with_float64_points(device):
    """The weight is converted to the points' dtype (output dtype = input dtype)."""
    pred, target = pair(3, 5, 2, seed=11, device=device)
    w32 = rand_weight(3, 5, seed=12, device=device, dtype=torch.float32)
    out = spl.keypoint_match_loss(pred, target, weight=w32)
    assert out.dtype == torch.float64
    expected = ref.keypoint_match_loss(pred, target, weight=w32.double())
    assert_close(out, expected, **F64)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_module_matches_functional(device, reduction):
    pred, target = pair(2, 6, 3, seed=21, device=device)
    w = rand_weight(2, 6, seed=22, device=device)
    module = spl.KeypointMatchLoss(reduction=reduction)
    assert reduction in repr(module)
    assert_bitwise_equal(module(pred, target, weight=w),
                         spl.keypoint_match_loss(pred, target, weight=w, reduction=reduction))
    assert_bitwise_equal(module(pred, target),
                         spl.keypoint_match_loss(pred, target, reduction=reduction))


# ------------------------------------------------------------------------------- known answers
def test_known_answer_two_keypoints(device):
    # d0 = (0,0)-(3,4) -> 25, d1 = (1,1)-(1,2) -> 1.
    pred = torch.tensor([[0.0, 0.0], [1.0, 1.0]], dtype=torch.float64, device=device,
                        requires_grad=True)
    target = torch.tensor([[3.0, 4.0], [1.0, 2.0]], dtype=torch.float64, device=device)
    none = spl.keypoint_match_loss(pred, target, reduction="none")
    assert none.tolist() == [25.0, 1.0]
    assert spl.keypoint_match_loss(pred, target, reduction="sum").item() == 26.0
    assert spl.keypoint_match_loss(pred, target, reduction="mean").item() == 13.0
    w = torch.tensor([1.0, 3.0], dtype=torch.float64, device=device)
    assert spl.keypoint_match_loss(pred, target, weight=w, reduction="sum").item() == 28.0
    loss = spl.keypoint_match_loss(pred, target, weight=w, reduction="mean")
    assert loss.item() == 7.0                       # 28 / (1 + 3)
    loss.backward()
    # d/dpred = 2 w (pred - target) / sum(w)
    assert pred.grad.tolist() == [[-1.5, -2.0], [0.0, -1.5]]


def test_mean_is_D_times_mse(device):
    pred, target = pair(4, 9, 3, seed=31, device=device)
    out = spl.keypoint_match_loss(pred, target)
    assert_close(out, 3 * F.mse_loss(pred, target), **F64)


# ------------------------------------------------------------------------------ gradient paths
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("wants", ["pred", "target", "both"])
def test_gradient_to_pred_target_or_both(device, reduction, wants):
    s = seed_of("kml-wants", reduction, wants)
    pred, target = pair(2, 5, 3, seed=s, device=device)
    pred.requires_grad_(wants in ("pred", "both"))
    target.requires_grad_(wants in ("target", "both"))
    w = rand_weight(2, 5, seed=s + 2, device=device)
    _, grads = compare_with_reference(kml(reduction, w), kml_ref(reduction, w), [pred, target],
                                      grad_seed=s + 4)
    assert (grads[0] is not None) == (wants in ("pred", "both"))
    assert (grads[1] is not None) == (wants in ("target", "both"))


def test_no_input_requires_grad(device):
    pred, target = pair(2, 5, 3, seed=41, device=device)
    out = spl.keypoint_match_loss(pred.detach(), target.detach())
    assert not out.requires_grad
    assert_close(out, ref.keypoint_match_loss(pred.detach(), target.detach()), **F64)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("target_grad", [True, False])
def test_gradcheck(device, reduction, weighted, target_grad):
    s = seed_of("kml-gradcheck", reduction, weighted)
    pred, target = pair(2, 3, 2, seed=s, device=device)
    target.requires_grad_(target_grad)
    w = rand_weight(2, 3, seed=s + 2, device=device) if weighted else None
    assert torch.autograd.gradcheck(kml(reduction, w), (pred, target))


def test_no_grad_and_inference_mode(device):
    pred, target = pair(2, 5, 3, seed=43, device=device)
    expected = ref.keypoint_match_loss(pred.detach(), target.detach())
    with torch.no_grad():
        out = spl.keypoint_match_loss(pred, target)
    assert not out.requires_grad
    assert_close(out, expected, **F64)
    with torch.inference_mode():
        assert_close(spl.keypoint_match_loss(pred, target), expected, **F64)


def test_double_backward_is_correct_or_refused(device):
    """A gradient penalty differentiates the gradient again. The SPEC does not promise second
    derivatives, but it forbids silent wrong answers: either match the reference or raise."""
    def penalised_grad(impl):
        pred, target = pair(2, 5, 3, seed=45, device=device)
        loss = impl.keypoint_match_loss(pred, target, reduction="sum")
        g, = torch.autograd.grad(loss, pred, create_graph=True)
        (loss + g.pow(2).sum()).backward()
        return pred.grad

    expected = penalised_grad(ref)
    try:
        got = penalised_grad(spl)
    except RuntimeError:
        return                                   # refused loudly: acceptable
    assert_close(got, expected, **F64)


# ----------------------------------------------------------------------------- memory layouts
LAYOUTS = ["transposed", "strided", "expanded", "weight_strided"]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_non_contiguous_inputs(device, reduction, layout):
    s = seed_of("kml-layout", reduction, layout)
    B, K, D = 3, 7, 3
    w = rand_weight(B, K, seed=s + 9, device=device)
    if layout == "transposed":      # [B, D, K] storage seen as [B, K, D]
        leaves = [randn(B, D, K, seed=s, device=device, requires_grad=True),
                  randn(B, D, K, seed=s + 1, device=device, requires_grad=True)]
        view = lambda p, t: (p.transpose(-1, -2), t.transpose(-1, -2))  # noqa: E731
    elif layout == "strided":       # every other keypoint and coordinate
        leaves = [randn(B, 2 * K, 2 * D, seed=s, device=device, requires_grad=True),
                  randn(B, 2 * K, 2 * D, seed=s + 1, device=device, requires_grad=True)]
        view = lambda p, t: (p[:, ::2, 1::2], t[:, 1::2, ::2])  # noqa: E731
    elif layout == "expanded":      # target shared by the batch: batch stride 0
        leaves = [randn(B, K, D, seed=s, device=device, requires_grad=True),
                  randn(K, D, seed=s + 1, device=device, requires_grad=True)]
        view = lambda p, t: (p, t.expand(B, K, D))  # noqa: E731
    else:                           # a non-contiguous weight view
        leaves = [randn(B, K, D, seed=s, device=device, requires_grad=True),
                  randn(B, K, D, seed=s + 1, device=device, requires_grad=True)]
        view = lambda p, t: (p, t)  # noqa: E731
        w = rand_weight(K, B, seed=s + 9, device=device).t()
        assert not w.is_contiguous()
    compare_with_reference(lambda p, t: spl.keypoint_match_loss(*view(p, t), weight=w,
                                                                reduction=reduction),
                           lambda p, t: ref.keypoint_match_loss(*view(p, t), weight=w,
                                                                reduction=reduction),
                           leaves, grad_seed=s + 3)


# -------------------------------------------------------------------------------- empty inputs
EMPTY_SHAPES = [(0, 3), (4, 0, 3), (0, 5, 2), (2, 0, 5, 1)]


@pytest.mark.parametrize("shape", EMPTY_SHAPES, ids=str)
@pytest.mark.parametrize("weight_kind", [None, "batch", "shared"], ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_empty_inputs(device, shape, weight_kind, reduction):
    pred, target = pair(*shape, seed=51, device=device)
    w = make_weight(weight_kind, shape[:-2], shape[-2], seed=52, device=device)
    out = spl.keypoint_match_loss(pred, target, weight=w, reduction=reduction)
    if reduction == "none":
        assert out.shape == shape[:-1]
        if out.requires_grad:
            out.sum().backward()
    else:
        assert out.shape == () and out.item() == 0.0     # never NaN
        out.backward()
    if pred.grad is not None:
        assert pred.grad.shape == pred.shape and not pred.grad.any()
    if reduction != "none":
        assert pred.grad is not None and target.grad is not None


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_single_keypoint(device, reduction):
    pred, target = pair(1, 3, seed=53, device=device)
    w = torch.tensor([0.5], dtype=torch.float64, device=device)
    compare_with_reference(kml(reduction, w), kml_ref(reduction, w), [pred, target],
                           grad_seed=54)


@pytest.mark.parametrize("weight_kind", ["batch", "shared", "bool"])
def test_zero_total_weight_mean_is_zero(device, weight_kind):
    pred, target = pair(2, 4, 3, seed=55, device=device)
    shape = (2, 4) if weight_kind != "shared" else (4,)
    dtype = torch.bool if weight_kind == "bool" else torch.float64
    w = torch.zeros(shape, dtype=dtype, device=device)
    out = spl.keypoint_match_loss(pred, target, weight=w, reduction="mean")
    assert out.item() == 0.0
    out.backward(torch.tensor(1.7, dtype=torch.float64, device=device))
    assert torch.equal(pred.grad, torch.zeros_like(pred))
    assert torch.equal(target.grad, torch.zeros_like(target))
    assert spl.keypoint_match_loss(pred, target, weight=w, reduction="sum").item() == 0.0


def test_zero_weighted_keypoints_get_zero_gradient(device):
    pred, target = pair(2, 6, 3, seed=57, device=device)
    w = rand_weight(2, 6, seed=58, device=device)
    w[0, 2] = 0
    w[1, 5] = 0
    spl.keypoint_match_loss(pred, target, weight=w).backward()
    assert not pred.grad[0, 2].any() and not pred.grad[1, 5].any()
    assert pred.grad[0, 1].all()


# --------------------------------------------------------------------------------- precisions
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
def test_float32_against_float64_reference(device, reduction, weighted):
    s = seed_of("kml-f32", reduction, weighted)
    pred, target = pair(4, 33, 3, seed=s, device=device, dtype=torch.float32)
    w = rand_weight(4, 33, seed=s + 2, device=device, dtype=torch.float32) if weighted else None
    outs, grads = run_with_grads(kml(reduction, w), [pred, target], grad_seed=s + 3)
    w64 = None if w is None else w.double()
    ref_outs, ref_grads = run_with_grads(kml_ref(reduction, w64), [pred.double(), target.double()],
                                         grad_seed=s + 3)
    assert outs[0].dtype == torch.float32
    assert_close(outs[0].double(), ref_outs[0], rtol=1e-5, atol=1e-5)
    for g, r in zip(grads, ref_grads):
        assert g.dtype == torch.float32
        assert_close(g.double(), r, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("reduction,weighted", [("sum", False), ("mean", True)])
def test_float32_sum_of_1e7_terms(reduction, weighted):
    """Issue requirement: a float32 loss over 1e7 terms is within 1e-5 (relative) of float64."""
    g = torch.Generator().manual_seed(61)
    pred = torch.rand(10, 1_000_000, 1, generator=g)
    target = torch.rand(10, 1_000_000, 1, generator=g) - 0.5
    w = torch.rand(1_000_000, generator=g) if weighted else None
    out = spl.keypoint_match_loss(pred, target, weight=w, reduction=reduction)
    assert out.dtype == torch.float32
    expected = ref.keypoint_match_loss(pred.double(), target.double(),
                                       weight=None if w is None else w.double(),
                                       reduction=reduction)
    rel = abs(out.double().item() - expected.item()) / expected.item()
    assert rel <= 1e-5, f"relative error {rel:.3g} of the float32 {reduction} over 1e7 terms"


@needs_compiled  # float32 accumulation of half inputs is a property of our kernels
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_half_precision(device, dtype, reduction):
    s = seed_of("kml-half", str(dtype), reduction)
    pred, target = pair(4, 17, 3, seed=s, device=device, dtype=dtype)
    w = rand_weight(4, 17, seed=s + 2, device=device, dtype=dtype)
    try:
        outs, grads = run_with_grads(kml(reduction, w), [pred, target], grad_seed=s + 3)
    except (TypeError, RuntimeError, NotImplementedError) as exc:
        if device.type == "cpu":
            pytest.skip(f"{dtype} is not accepted on CPU: {exc}")
        raise
    ref_outs, ref_grads = run_with_grads(kml_ref(reduction, w.double()),
                                         [pred.double(), target.double()], grad_seed=s + 3)
    tol = 1e-2 if dtype == torch.bfloat16 else 2e-3
    assert outs[0].dtype == dtype
    scale = ref_outs[0].abs().max().item()
    assert_close(outs[0].double(), ref_outs[0], rtol=tol, atol=tol * scale)
    for g, r in zip(grads, ref_grads):
        assert g.dtype == dtype
        assert_close(g.double(), r, rtol=tol, atol=tol * r.abs().max().item())


# ------------------------------------------------------------------------------ NaN and Inf
SPECIALS = ["nan", "inf", "-inf", "inf-inf", "nan_zero_weight", "inf_zero_weight"]


@pytest.mark.parametrize("special", SPECIALS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_nan_inf_propagate_like_reference(device, reduction, special):
    pred, target = pair(2, 5, 3, seed=71, device=device)
    w = rand_weight(2, 5, seed=72, device=device)
    with torch.no_grad():
        value = {"nan": float("nan"), "-inf": float("-inf")}.get(special.split("_")[0],
                                                                   float("inf"))
        pred[1, 3, 0] = value
        if special == "inf-inf":
            target[1, 3, 0] = float("inf")
        if special.endswith("zero_weight"):
            w[1, 3] = 0.0          # a zero weight does not mask a NaN (SPEC: no silent masking)
    outs, _ = compare_with_reference(kml(reduction, w), kml_ref(reduction, w), [pred, target],
                                     grad_seed=73, equal_nan=True)
    assert not torch.isfinite(outs[0]).all()


# ---------------------------------------------------------------------------------- determinism
@needs_compiled  # the reference fallback uses torch reductions, which depend on threads
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_deterministic_across_runs_and_threads(device, reduction):
    s = seed_of("kml-det", reduction)
    pred, target = pair(64, 20000, 3, seed=s, device=device)
    w = rand_weight(64, 20000, seed=s + 2, device=device)
    results = []
    for threads in (2, 2, 2, 1):
        with ThreadCount(threads):
            results.append(run_with_grads(kml(reduction, w), [pred, target], grad_seed=s + 3))
    for outs, grads in results[1:]:
        assert_bitwise_equal(outs, results[0][0], "loss")
        assert_bitwise_equal(grads, results[0][1], "grads")


# ------------------------------------------------------------------------------- compile, ops
@needs_compiled
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_torch_compile_fullgraph(device, reduction):
    pred, target = pair(3, 8, 3, seed=81, device=device)
    w = rand_weight(3, 8, seed=82, device=device)
    fn = lambda p, t, w: spl.keypoint_match_loss(p, t, weight=w, reduction=reduction)  # noqa
    compiled = fresh_compile(fn)
    outs, grads = run_with_grads(lambda p, t: compiled(p, t, w), [pred, target], grad_seed=83)
    eager_outs, eager_grads = run_with_grads(lambda p, t: fn(p, t, w), [pred, target],
                                             grad_seed=83)
    assert_close(outs[0], eager_outs[0], rtol=1e-12, atol=1e-14)
    for g, e in zip(grads, eager_grads):
        assert_close(g, e, rtol=1e-12, atol=1e-14)


@needs_compiled
def test_torch_compile_dynamic_shapes(device):
    """One dynamic-shape graph serves several batch sizes and keypoint counts."""
    fn = lambda p, t, w: (spl.keypoint_match_loss(p, t, weight=w)  # noqa: E731
                          + spl.keypoint_match_loss(p, t, reduction="none").sum())
    compiled = fresh_compile(fn, dynamic=True, backend="aot_eager")
    for B, K in [(2, 5), (3, 9), (1, 2)]:
        pred, target = pair(B, K, 3, seed=B * 100 + K, device=device)
        w = rand_weight(K, seed=K, device=device)
        outs, grads = run_with_grads(lambda p, t: compiled(p, t, w), [pred, target], grad_seed=7)
        eager_outs, eager_grads = run_with_grads(lambda p, t: fn(p, t, w), [pred, target],
                                                 grad_seed=7)
        for a, b in zip(outs + grads, eager_outs + eager_grads):
            assert_close(a, b, rtol=1e-12, atol=1e-14)


@needs_compiled
@pytest.mark.parametrize("reduction,weight_kind", [(0, "batch"), (1, "shared"), (2, None)],
                         ids=str)
def test_opcheck(device, reduction, weight_kind):
    """Schema, fake kernel, autograd registration and AOT dispatch of every op, on a few
    representative argument sets (opcheck is slow)."""
    pred, target = pair(2, 5, 3, seed=91, device=device)
    w = make_weight(weight_kind, (2,), 5, seed=92, device=device)
    # The differentiable op (C++ autograd), with and without inputs that require grad.
    torch.library.opcheck(op("keypoint_match"), (pred, target, w, reduction))
    pred, target = pred.detach(), target.detach()
    torch.library.opcheck(op("keypoint_match"), (pred, target, w, reduction))
    torch.library.opcheck(op("keypoint_match_fwd"), (pred, target, w, reduction))
    loss, denom = op("keypoint_match_fwd")(pred, target, w, reduction)
    grad = randn(*loss.shape, seed=93, device=device)
    masks = [[True, True], [True, False], [False, True]] if reduction == 0 else [[True, True]]
    for mask in masks:
        torch.library.opcheck(op("keypoint_match_bwd"),
                              (grad, pred, target, w, denom, reduction, mask))


# -------------------------------------------------------------------------- property tests
@st.composite
def kml_case(draw):
    batch = tuple(draw(st.lists(st.integers(0, 3), max_size=2)))
    K = draw(st.integers(0, 9))
    D = draw(st.integers(1, 6))
    return dict(batch=batch, K=K, D=D,
                reduction=draw(st.sampled_from(REDUCTIONS)),
                weight_kind=draw(st.sampled_from([None, "batch", "shared", "bool"])),
                scale=draw(st.sampled_from([1e-3, 1.0, 1e3])),
                seed=draw(st.integers(0, 2**30)))


@given(case=kml_case())
def test_property_matches_reference(device, case):
    b, K, D, s = case["batch"], case["K"], case["D"], case["seed"]
    pred, target = pair(*b, K, D, seed=s, device=device, scale=case["scale"])
    w = make_weight(case["weight_kind"], b, K, seed=s + 2, device=device)
    compare_with_reference(kml(case["reduction"], w), kml_ref(case["reduction"], w),
                           [pred, target], grad_seed=s + 3)


@given(case=kml_case())
def test_property_exact_symmetries(device, case):
    """Bit-exact: symmetric in pred/target; scaling the points by 2 scales the loss by 4;
    scaling the weights by 2 leaves the mean unchanged and doubles the sum; a bool mask is the
    same as 0/1 weights."""
    b, K, D, s, red = case["batch"], case["K"], case["D"], case["seed"], case["reduction"]
    pred, target = pair(*b, K, D, seed=s, device=device, scale=case["scale"])
    pred, target = pred.detach(), target.detach()
    w = make_weight(case["weight_kind"], b, K, seed=s + 2, device=device)
    out = spl.keypoint_match_loss(pred, target, weight=w, reduction=red)
    assert_bitwise_equal(spl.keypoint_match_loss(target, pred, weight=w, reduction=red), out,
                         "swap")
    assert_bitwise_equal(spl.keypoint_match_loss(2 * pred, 2 * target, weight=w, reduction=red),
                         4 * out, "scale")
    if w is not None:
        wf = w.to(torch.float64)
        assert_bitwise_equal(spl.keypoint_match_loss(pred, target, weight=wf, reduction=red),
                             out, "bool/float")
        doubled = spl.keypoint_match_loss(pred, target, weight=2 * wf, reduction=red)
        assert_bitwise_equal(doubled, out if red == "mean" else 2 * out, "weight scale")


@given(case=kml_case())
def test_property_consistency(device, case):
    """Translation invariance, shared weight == expanded weight, and the reductions agree with
    the per-term values."""
    b, K, D, s, red = case["batch"], case["K"], case["D"], case["seed"], case["reduction"]
    pred, target = pair(*b, K, D, seed=s, device=device)
    pred, target = pred.detach(), target.detach()
    shift = randn(D, seed=s + 5, device=device)
    w = rand_weight(K, seed=s + 2, device=device)
    out = spl.keypoint_match_loss(pred, target, weight=w, reduction=red)
    assert_close(spl.keypoint_match_loss(pred + shift, target + shift, weight=w, reduction=red),
                 out, rtol=1e-9, atol=1e-11)
    assert_close(spl.keypoint_match_loss(pred, target, weight=w.expand(*b, K).contiguous(),
                                         reduction=red), out, **F64)
    terms = spl.keypoint_match_loss(pred, target, weight=w, reduction="none")
    total = spl.keypoint_match_loss(pred, target, weight=w, reduction="sum")
    mean = spl.keypoint_match_loss(pred, target, weight=w, reduction="mean")
    assert_close(total, terms.sum(), **F64)
    denom = w.expand(*b, K).sum()
    assert_close(mean, terms.sum() / denom if denom > 0 else torch.zeros_like(mean), **F64)


# ------------------------------------------------------------------------------- bad input
K, D = 4, 3


def _good(device="cpu"):
    return randn(2, K, D, seed=1, device=device), randn(2, K, D, seed=2, device=device)


BAD_INPUTS = {
    # name: (builder(pred, target) -> kwargs for keypoint_match_loss, exception, message regex)
    "pred_list": (lambda p, t: dict(pred=p.tolist(), target=t), TypeError,
                  r"pred must be a torch\.Tensor of shape \[\.\.\., K, D\], got list"),
    "target_ndarray": (lambda p, t: dict(pred=p, target=t.numpy()), TypeError,
                       r"target must be a torch\.Tensor of shape \[\.\.\., K, D\], got ndarray"),
    "pred_int": (lambda p, t: dict(pred=p.long(), target=t.long()), TypeError,
                 r"pred must be a floating-point tensor, got dtype torch\.int64"),
    "target_int": (lambda p, t: dict(pred=p, target=t.int()), TypeError,
                   r"target must be a floating-point tensor, got dtype torch\.int32"),
    "shape_K": (lambda p, t: dict(pred=p, target=t[:, :3]), ValueError,
                r"pred and target must have the same shape \[\.\.\., K, D\], got \[2, 4, 3\] "
                r"and \[2, 3, 3\]"),
    "shape_D": (lambda p, t: dict(pred=p, target=t[..., :2]), ValueError,
                r"pred and target must have the same shape .*\[2, 4, 3\] and \[2, 4, 2\]"),
    "shape_batch": (lambda p, t: dict(pred=p, target=t[:1]), ValueError,
                    r"pred and target must have the same shape"),
    "dtype": (lambda p, t: dict(pred=p, target=t.float()), TypeError,
              r"pred and target must have the same dtype, got torch\.float64 and torch\.float32"),
    "one_dim": (lambda p, t: dict(pred=p[0, 0], target=t[0, 0]), ValueError,
                r"pred must have shape \[\.\.\., K, D\] \(at least 2 dims\), got shape \[3\]"),
    "zero_dim": (lambda p, t: dict(pred=p[0, 0, 0], target=t[0, 0, 0]), ValueError,
                 r"pred must have shape \[\.\.\., K, D\] \(at least 2 dims\), got shape \[\]"),
    "D_zero": (lambda p, t: dict(pred=p[..., :0], target=t[..., :0]), ValueError,
               r"pred must have a coordinate dimension D >= 1"),
    "device": (lambda p, t: dict(pred=p, target=t.to("meta")), ValueError,
               r"pred and target must be on the same device, got cpu and meta"),
    "weight_list": (lambda p, t: dict(pred=p, target=t, weight=[1.0] * K), TypeError,
                    r"weight must be a torch\.Tensor of shape \[\.\.\., K\] or None, got list"),
    "weight_int": (lambda p, t: dict(pred=p, target=t, weight=torch.ones(2, K, dtype=torch.long)),
                   TypeError, r"weight must be a floating-point or bool tensor, got dtype "
                              r"torch\.int64"),
    "weight_shape": (lambda p, t: dict(pred=p, target=t, weight=torch.ones(K + 1)), ValueError,
                     r"weight must have shape \[\.\.\., K\] = \[2, 4\] or \[4\], got \[5\]"),
    "weight_batch_shape": (lambda p, t: dict(pred=p, target=t, weight=torch.ones(3, K)),
                           ValueError, r"weight must have shape .* got \[3, 4\]"),
    "weight_broadcast": (lambda p, t: dict(pred=p, target=t, weight=torch.ones(1, K)),
                         ValueError, r"weight must have shape .* got \[1, 4\]"),
    "weight_requires_grad": (lambda p, t: dict(pred=p, target=t,
                                               weight=torch.ones(2, K, requires_grad=True)),
                             ValueError, r"weight is a constant of the loss and must not "
                                         r"require grad"),
    "weight_device": (lambda p, t: dict(pred=p, target=t, weight=torch.ones(2, K, device="meta")),
                      ValueError, r"weight must be on the same device as the points \(cpu\), "
                                  r"got meta"),
    "weight_negative": (lambda p, t: dict(pred=p, target=t,
                                          weight=torch.tensor([[1.0, 0.5, 0.0, 2.0],
                                                               [1.0, 1.0, -0.25, 1.0]])),
                        ValueError, r"(?<!edge_)weight.*(non-negative|negative|>= ?0)"),
    "weight_negative_shared": (lambda p, t: dict(pred=p, target=t,
                                                 weight=torch.tensor([1.0, -1e-6, 1.0, 1.0])),
                               ValueError, r"(?<!edge_)weight.*(non-negative|negative|>= ?0)"),
    "reduction_unknown": (lambda p, t: dict(pred=p, target=t, reduction="avg"), ValueError,
                          r"reduction must be one of 'none', 'mean' or 'sum', got 'avg'"),
    "reduction_case": (lambda p, t: dict(pred=p, target=t, reduction="Mean"), ValueError,
                       r"reduction must be one of 'none', 'mean' or 'sum', got 'Mean'"),
    "reduction_none_object": (lambda p, t: dict(pred=p, target=t, reduction=None), ValueError,
                              r"reduction must be one of 'none', 'mean' or 'sum', got None"),
}


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_input(name):
    build, exc, match = BAD_INPUTS[name]
    kwargs = build(*_good())
    with pytest.raises(exc, match=match):
        spl.keypoint_match_loss(kwargs.pop("pred"), kwargs.pop("target"), **kwargs)


def test_module_rejects_unknown_reduction():
    with pytest.raises(ValueError, match=r"reduction must be one of 'none', 'mean' or 'sum'"):
        spl.KeypointMatchLoss(reduction="avg")


@needs_compiled
def test_direct_op_calls_check_their_arguments():
    """The ops are public (torch.ops.sirenpose_loss.*): bad arguments raise, never crash."""
    fwd, bwd = op("keypoint_match_fwd"), op("keypoint_match_bwd")
    p, t = _good()
    with pytest.raises(ValueError, match=r"(?<!edge_)weight"):
        fwd(p, t, torch.tensor([1.0, -1.0, 1.0, 1.0], dtype=torch.float64), 1)
    with pytest.raises(ValueError, match=r"same shape"):
        fwd(p, t[:, :3], None, 1)
    with pytest.raises(TypeError):
        fwd(p.long(), t.long(), None, 1)
    with pytest.raises(TypeError):
        fwd(p, t.float(), None, 1)
    with pytest.raises(ValueError, match=r"weight"):
        fwd(p, t, torch.ones(K + 1, dtype=torch.float64), 1)
    with pytest.raises(ValueError, match=r"reduction"):
        fwd(p, t, None, 3)
    with pytest.raises((ValueError, RuntimeError, IndexError)):
        fwd(p[0, 0], t[0, 0], None, 1)
    loss, denom = fwd(p, t, None, 0)
    with pytest.raises((ValueError, RuntimeError)):     # incoming grad of the wrong shape
        bwd(torch.ones(2, K + 3, dtype=torch.float64), p, t, None, denom, 0, [True, True])
