"""Spatio-temporal consistency loss (SPEC §2): fused kernels against the pure-PyTorch
reference, known answers, gradients, edge cases, determinism, torch.compile/opcheck and bad
input (SPEC §5)."""
import pytest
import torch
from hypothesis import given, strategies as st

import sirenpose_loss as spl
from sirenpose_loss import reference as ref

from conftest import (F64, ThreadCount, assert_bitwise_equal, assert_close,
                      compare_with_reference, fresh_compile, needs_compiled, op, rand_mask,
                      rand_weight, randn, run_with_grads, seed_of)

REDUCTIONS = ["none", "mean", "sum"]
WEIGHT_KINDS = [None, "batch", "shared", "bool", "bool_shared"]
BATCHES = [(), (3,), (2, 3)]


def make_weight(kind, batch, M, *, seed, device="cpu", dtype=torch.float64):
    if kind is None:
        return None
    shape = (*batch, M) if kind in ("batch", "bool") else (M,)
    if kind.startswith("bool"):
        return rand_mask(*shape, seed=seed, device=device)
    return rand_weight(*shape, seed=seed, device=device, dtype=dtype)


def scl(reduction, weight=None, order=1):
    return lambda p: spl.spatiotemporal_consistency_loss(p, weight=weight, order=order,
                                                         reduction=reduction)


def scl_ref(reduction, weight=None, order=1):
    return lambda p: ref.spatiotemporal_consistency_loss(p, weight=weight, order=order,
                                                         reduction=reduction)


def positions(*shape, seed, device="cpu", dtype=torch.float64, scale=1.0):
    return randn(*shape, seed=seed, device=device, dtype=dtype, scale=scale, requires_grad=True)


# ------------------------------------------------------------------------ against the reference
@pytest.mark.parametrize("batch", BATCHES, ids=str)
@pytest.mark.parametrize("D", [1, 2, 3, 4])
@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("weight_kind", WEIGHT_KINDS, ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_matches_reference(device, reduction, weight_kind, order, D, batch):
    T, M = 5, 7
    s = seed_of("scl", reduction, weight_kind, order, D, batch)
    P = positions(*batch, T, M, D, seed=s, device=device)
    w = make_weight(weight_kind, batch, M, seed=s + 7, device=device)
    outs, _ = compare_with_reference(scl(reduction, w, order), scl_ref(reduction, w, order), [P],
                                     grad_seed=s + 3)
    expected_shape = (*batch, T - order, M) if reduction == "none" else ()
    assert outs[0].shape == expected_shape


@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_matches_reference_larger_odd_sizes(device, reduction, order):
    """More Gaussians than one work chunk, an odd count, per-batch weights."""
    s = seed_of("scl-large", reduction, order)
    P = positions(3, 9, 2500, 3, seed=s, device=device)
    w = rand_weight(3, 2500, seed=s + 2, device=device)
    compare_with_reference(scl(reduction, w, order), scl_ref(reduction, w, order), [P],
                           grad_seed=s + 5)


def test_float32_weight_with_float64_positions(device):
    P = positions(2, 4, 5, 3, seed=11, device=device)
    w32 = rand_weight(5, seed=12, device=device, dtype=torch.float32)
    out = spl.spatiotemporal_consistency_loss(P, weight=w32)
    assert out.dtype == torch.float64
    assert_close(out, ref.spatiotemporal_consistency_loss(P, weight=w32.double()), **F64)


@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_module_matches_functional(device, reduction, order):
    P = positions(2, 6, 4, 3, seed=21, device=device)
    w = rand_weight(2, 4, seed=22, device=device)
    module = spl.SpatioTemporalConsistencyLoss(order=order, reduction=reduction)
    assert reduction in repr(module) and f"order={order}" in repr(module)
    assert_bitwise_equal(module(P, weight=w), scl(reduction, w, order)(P))
    assert_bitwise_equal(module(P), scl(reduction, None, order)(P))


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
    """mean = sum / ((T - 1) * sum_i w_i per batch entry, summed over the batch) (SPEC §2)."""
    P = positions(2, 3, 4, 3, seed=31, device=device).detach()
    w = rand_weight(4, seed=32, device=device)
    total = spl.spatiotemporal_consistency_loss(P, weight=w, reduction="sum")
    mean = spl.spatiotemporal_consistency_loss(P, weight=w, reduction="mean")
    assert_close(mean, total / (2 * 2 * w.sum()), **F64)


# ------------------------------------------------------------------------------ gradient paths
@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gradcheck(device, reduction, weighted, order):
    s = seed_of("scl-gradcheck", reduction, weighted, order)
    P = positions(2, 4, 3, 2, seed=s, device=device)
    w = rand_weight(3, seed=s + 2, device=device) if weighted else None
    assert torch.autograd.gradcheck(scl(reduction, w, order), (P,))


def test_no_input_requires_grad(device):
    P = positions(2, 4, 3, 2, seed=41, device=device).detach()
    out = spl.spatiotemporal_consistency_loss(P)
    assert not out.requires_grad
    assert_close(out, ref.spatiotemporal_consistency_loss(P), **F64)


def test_no_grad_and_inference_mode(device):
    P = positions(2, 4, 3, 2, seed=43, device=device)
    expected = ref.spatiotemporal_consistency_loss(P.detach(), order=2)
    with torch.no_grad():
        out = spl.spatiotemporal_consistency_loss(P, order=2)
    assert not out.requires_grad
    assert_close(out, expected, **F64)
    with torch.inference_mode():
        assert_close(spl.spatiotemporal_consistency_loss(P, order=2), expected, **F64)


def test_double_backward_is_correct_or_refused(device):
    """Second derivatives (a gradient penalty): match the reference or raise, never silently
    drop the second-order term."""
    def penalised_grad(impl):
        P = positions(2, 4, 3, 2, seed=45, device=device)
        loss = impl.spatiotemporal_consistency_loss(P, reduction="sum")
        g, = torch.autograd.grad(loss, P, create_graph=True)
        (loss + g.pow(2).sum()).backward()
        return P.grad

    expected = penalised_grad(ref)
    try:
        got = penalised_grad(spl)
    except RuntimeError:
        return
    assert_close(got, expected, **F64)


# ----------------------------------------------------------------------------- memory layouts
@pytest.mark.parametrize("layout", ["transposed", "strided", "expanded", "weight_strided"])
@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_non_contiguous_inputs(device, reduction, order, layout):
    s = seed_of("scl-layout", reduction, order, layout)
    B, T, M, D = 2, 5, 6, 3
    w = rand_weight(B, M, seed=s + 9, device=device)
    if layout == "transposed":          # stored [B, M, T, D], seen as [B, T, M, D]
        leaf = positions(B, M, T, D, seed=s, device=device)
        view = lambda p: p.transpose(1, 2)  # noqa: E731
    elif layout == "strided":
        leaf = positions(B, 2 * T, M, 2 * D, seed=s, device=device)
        view = lambda p: p[:, ::2, :, 1::2]  # noqa: E731
    elif layout == "expanded":          # the same tracks in every batch entry (stride 0)
        leaf = positions(T, M, D, seed=s, device=device)
        view = lambda p: p.expand(B, T, M, D)  # noqa: E731
    else:
        leaf = positions(B, T, M, D, seed=s, device=device)
        view = lambda p: p  # noqa: E731
        w = rand_weight(M, B, seed=s + 9, device=device).t()
        assert not w.is_contiguous()
    compare_with_reference(lambda p: scl(reduction, w, order)(view(p)),
                           lambda p: scl_ref(reduction, w, order)(view(p)), [leaf],
                           grad_seed=s + 3)


# -------------------------------------------------------------------------------- empty inputs
EMPTY_CASES = [  # (shape [..., T, M, D], order)
    ((0, 4, 3), 1), ((1, 4, 3), 1), ((2, 4, 3), 2), ((1, 4, 3), 2), ((0, 4, 3), 2),
    ((5, 0, 3), 1), ((0, 5, 4, 3), 1), ((2, 0, 5, 4, 2), 2), ((3, 1, 6, 2), 1),
]


@pytest.mark.parametrize("shape,order", EMPTY_CASES, ids=str)
@pytest.mark.parametrize("weight_kind", [None, "batch", "shared"], ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_empty_or_too_short(device, shape, order, weight_kind, reduction):
    """Zero terms (T <= order, M = 0, an empty batch): the mean is 0 with a zero gradient."""
    P = positions(*shape, seed=51, device=device)
    w = make_weight(weight_kind, shape[:-3], shape[-2], seed=52, device=device)
    out = spl.spatiotemporal_consistency_loss(P, weight=w, order=order, reduction=reduction)
    T = shape[-3]
    if reduction == "none":
        assert out.shape == (*shape[:-3], max(T - order, 0), shape[-2])
        out.sum().backward()
    else:
        assert out.shape == () and out.item() == 0.0
        out.backward()
    assert P.grad is not None and P.grad.shape == P.shape and not P.grad.any()


@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_minimal_frames(device, reduction, order):
    """The fewest frames that give terms: T = order + 1, a single Gaussian."""
    P = positions(order + 1, 1, 3, seed=53, device=device)
    compare_with_reference(scl(reduction, None, order), scl_ref(reduction, None, order), [P],
                           grad_seed=54)


@pytest.mark.parametrize("weight_kind", ["batch", "shared", "bool"])
def test_zero_total_weight_mean_is_zero(device, weight_kind):
    P = positions(2, 4, 3, 3, seed=55, device=device)
    shape = (2, 3) if weight_kind != "shared" else (3,)
    dtype = torch.bool if weight_kind == "bool" else torch.float64
    w = torch.zeros(shape, dtype=dtype, device=device)
    out = spl.spatiotemporal_consistency_loss(P, weight=w, reduction="mean")
    assert out.item() == 0.0
    out.backward(torch.tensor(2.5, dtype=torch.float64, device=device))
    assert torch.equal(P.grad, torch.zeros_like(P))


def test_zero_weighted_gaussians_get_zero_gradient(device):
    P = positions(2, 4, 5, 3, seed=57, device=device)
    w = rand_weight(2, 5, seed=58, device=device)
    w[0, 1] = 0
    w[1, 4] = 0
    spl.spatiotemporal_consistency_loss(P, weight=w).backward()
    assert not P.grad[0, :, 1].any() and not P.grad[1, :, 4].any()
    assert P.grad[0, :, 0].all()


# --------------------------------------------------------------------------------- precisions
@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_float32_against_float64_reference(device, reduction, order):
    s = seed_of("scl-f32", reduction, order)
    P = positions(3, 6, 40, 3, seed=s, device=device, dtype=torch.float32)
    w = rand_weight(40, seed=s + 2, device=device, dtype=torch.float32)
    outs, grads = run_with_grads(scl(reduction, w, order), [P], grad_seed=s + 3)
    ref_outs, ref_grads = run_with_grads(scl_ref(reduction, w.double(), order), [P.double()],
                                         grad_seed=s + 3)
    assert outs[0].dtype == torch.float32 and grads[0].dtype == torch.float32
    assert_close(outs[0].double(), ref_outs[0], rtol=1e-5, atol=1e-5)
    assert_close(grads[0].double(), ref_grads[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("reduction,weighted", [("sum", False), ("mean", True)])
def test_float32_sum_of_1e7_terms(reduction, weighted):
    """Issue requirement: a float32 loss over 1e7 terms is within 1e-5 (relative) of float64."""
    g = torch.Generator().manual_seed(61)
    P = torch.rand(11, 1_000_000, 1, generator=g)          # (T - 1) * M = 1e7 terms
    w = torch.rand(1_000_000, generator=g) if weighted else None
    out = spl.spatiotemporal_consistency_loss(P, weight=w, reduction=reduction)
    assert out.dtype == torch.float32
    expected = ref.spatiotemporal_consistency_loss(
        P.double(), weight=None if w is None else w.double(), reduction=reduction)
    rel = abs(out.double().item() - expected.item()) / expected.item()
    assert rel <= 1e-5, f"relative error {rel:.3g} of the float32 {reduction} over 1e7 terms"


@needs_compiled  # float32 accumulation of half inputs is a property of our kernels
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_half_precision(device, dtype, reduction, order):
    s = seed_of("scl-half", str(dtype), reduction, order)
    P = positions(2, 6, 17, 3, seed=s, device=device, dtype=dtype)
    w = rand_weight(17, seed=s + 2, device=device, dtype=dtype)
    try:
        outs, grads = run_with_grads(scl(reduction, w, order), [P], grad_seed=s + 3)
    except (TypeError, RuntimeError, NotImplementedError) as exc:
        if device.type == "cpu":
            pytest.skip(f"{dtype} is not accepted on CPU: {exc}")
        raise
    ref_outs, ref_grads = run_with_grads(scl_ref(reduction, w.double(), order), [P.double()],
                                         grad_seed=s + 3)
    tol = 1e-2 if dtype == torch.bfloat16 else 2e-3
    assert outs[0].dtype == dtype and grads[0].dtype == dtype
    assert_close(outs[0].double(), ref_outs[0], rtol=tol,
                 atol=tol * ref_outs[0].abs().max().item())
    assert_close(grads[0].double(), ref_grads[0], rtol=tol,
                 atol=tol * ref_grads[0].abs().max().item())


# ------------------------------------------------------------------------------ NaN and Inf
@pytest.mark.parametrize("special", ["nan", "inf", "-inf", "nan_zero_weight", "inf_zero_weight"])
@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_nan_inf_propagate_like_reference(device, reduction, order, special):
    P = positions(2, 5, 4, 3, seed=71, device=device)
    w = rand_weight(2, 4, seed=72, device=device)
    with torch.no_grad():
        P[1, 2, 3, 1] = float(special.split("_")[0])
        if special.endswith("zero_weight"):
            w[1, 3] = 0.0          # a zero weight does not mask a NaN (SPEC: no silent masking)
    outs, _ = compare_with_reference(scl(reduction, w, order), scl_ref(reduction, w, order), [P],
                                     grad_seed=73, equal_nan=True)
    assert not torch.isfinite(outs[0]).all()


# ---------------------------------------------------------------------------------- determinism
@needs_compiled  # the reference fallback uses torch reductions, which depend on threads
@pytest.mark.parametrize("reduction,order", [("mean", 1), ("sum", 1), ("mean", 2)])
def test_deterministic_across_runs_and_threads(device, reduction, order):
    s = seed_of("scl-det", reduction, order)
    P = positions(4, 16, 20000, 3, seed=s, device=device)
    w = rand_weight(4, 20000, seed=s + 2, device=device)
    results = []
    for threads in (2, 2, 2, 1):
        with ThreadCount(threads):
            results.append(run_with_grads(scl(reduction, w, order), [P], grad_seed=s + 3))
    for outs, grads in results[1:]:
        assert_bitwise_equal(outs, results[0][0], "loss")
        assert_bitwise_equal(grads, results[0][1], "grads")


# ------------------------------------------------------------------------------- compile, ops
@needs_compiled
@pytest.mark.parametrize("reduction,order", [("mean", 1), ("none", 2)])
def test_torch_compile_fullgraph(device, reduction, order):
    P = positions(2, 5, 6, 3, seed=81, device=device)
    w = rand_weight(6, seed=82, device=device)
    fn = lambda p, w: spl.spatiotemporal_consistency_loss(p, weight=w, order=order,  # noqa
                                                          reduction=reduction)
    compiled = fresh_compile(fn)
    outs, grads = run_with_grads(lambda p: compiled(p, w), [P], grad_seed=83)
    eager_outs, eager_grads = run_with_grads(lambda p: fn(p, w), [P], grad_seed=83)
    assert_close(outs[0], eager_outs[0], rtol=1e-12, atol=1e-14)
    assert_close(grads[0], eager_grads[0], rtol=1e-12, atol=1e-14)


@needs_compiled
def test_torch_compile_dynamic_shapes(device):
    """One dynamic-shape graph serves several T (including T <= order) and M."""
    fn = lambda p: (spl.spatiotemporal_consistency_loss(p)  # noqa: E731
                    + spl.spatiotemporal_consistency_loss(p, order=2, reduction="none").sum())
    compiled = fresh_compile(fn, dynamic=True, backend="aot_eager")
    for T, M in [(5, 4), (7, 9), (2, 3), (1, 5)]:
        P = positions(2, T, M, 3, seed=T * 100 + M, device=device)
        outs, grads = run_with_grads(compiled, [P], grad_seed=7)
        eager_outs, eager_grads = run_with_grads(fn, [P], grad_seed=7)
        for a, b in zip(outs + grads, eager_outs + eager_grads):
            assert_close(a, b, rtol=1e-12, atol=1e-14)


@needs_compiled
@pytest.mark.parametrize("reduction,order,weight_kind", [(0, 2, "batch"), (1, 1, "shared"),
                                                         (2, 2, None)], ids=str)
def test_opcheck(device, reduction, order, weight_kind):
    """Schema, fake kernel, autograd registration and AOT dispatch of every op, on a few
    representative argument sets (opcheck is slow)."""
    P = positions(2, 4, 3, 2, seed=91, device=device)
    w = make_weight(weight_kind, (2,), 3, seed=92, device=device)
    # The differentiable op (C++ autograd), with and without an input that requires grad.
    torch.library.opcheck(op("spatiotemporal_consistency"), (P, w, order, reduction))
    Pd = P.detach()
    torch.library.opcheck(op("spatiotemporal_consistency"), (Pd, w, order, reduction))
    torch.library.opcheck(op("spatiotemporal_consistency_fwd"), (Pd, w, order, reduction))
    loss, denom = op("spatiotemporal_consistency_fwd")(Pd, w, order, reduction)
    grad = randn(*loss.shape, seed=93, device=device)
    torch.library.opcheck(op("spatiotemporal_consistency_bwd"),
                          (grad, Pd, w, denom, order, reduction))


# -------------------------------------------------------------------------- property tests
@st.composite
def scl_case(draw):
    return dict(batch=tuple(draw(st.lists(st.integers(0, 3), max_size=2))),
                T=draw(st.integers(0, 7)), M=draw(st.integers(0, 9)), D=draw(st.integers(1, 6)),
                order=draw(st.sampled_from([1, 2])),
                reduction=draw(st.sampled_from(REDUCTIONS)),
                weight_kind=draw(st.sampled_from([None, "batch", "shared", "bool"])),
                scale=draw(st.sampled_from([1e-3, 1.0, 1e3])),
                seed=draw(st.integers(0, 2**30)))


@given(case=scl_case())
def test_property_matches_reference(device, case):
    c = case
    P = positions(*c["batch"], c["T"], c["M"], c["D"], seed=c["seed"], device=device,
                  scale=c["scale"])
    w = make_weight(c["weight_kind"], c["batch"], c["M"], seed=c["seed"] + 2, device=device)
    compare_with_reference(scl(c["reduction"], w, c["order"]),
                           scl_ref(c["reduction"], w, c["order"]), [P], grad_seed=c["seed"] + 3)


@given(case=scl_case())
def test_property_exact_symmetries(device, case):
    """Bit-exact: scaling positions by 2 scales the loss by 4; scaling the weights by 2 keeps
    the mean and doubles the sum; a bool mask equals 0/1 weights; order 1 reversed in time gives
    the per-step terms reversed."""
    c = case
    P = positions(*c["batch"], c["T"], c["M"], c["D"], seed=c["seed"], device=device,
                  scale=c["scale"]).detach()
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
    P = positions(*b, T, M, D, seed=c["seed"], device=device).detach()
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


# ------------------------------------------------------------------------------- bad input
def _P():
    return randn(2, 4, 3, 3, seed=1)


BAD_INPUTS = {
    # name: (kwargs for spatiotemporal_consistency_loss given good positions P, exception, regex)
    "positions_list": (lambda P: dict(positions=P.tolist()), TypeError,
                       r"positions must be a torch\.Tensor of shape \[\.\.\., T, M, D\], got list"),
    "positions_int": (lambda P: dict(positions=P.long()), TypeError,
                      r"positions must be a floating-point tensor, got dtype torch\.int64"),
    "positions_bool": (lambda P: dict(positions=P > 0), TypeError,
                       r"positions must be a floating-point tensor, got dtype torch\.bool"),
    "two_dims": (lambda P: dict(positions=P[0, 0]), ValueError,
                 r"positions must have shape \[\.\.\., T, M, D\] \(at least 3 dims\), got shape "
                 r"\[3, 3\]"),
    "D_zero": (lambda P: dict(positions=P[..., :0]), ValueError,
               r"positions must have a coordinate dimension D >= 1"),
    "weight_list": (lambda P: dict(positions=P, weight=[1.0, 1.0, 1.0]), TypeError,
                    r"weight must be a torch\.Tensor of shape \[\.\.\., M\] or None, got list"),
    "weight_int": (lambda P: dict(positions=P, weight=torch.ones(3, dtype=torch.int32)), TypeError,
                   r"weight must be a floating-point or bool tensor, got dtype torch\.int32"),
    "weight_shape": (lambda P: dict(positions=P, weight=torch.ones(4)), ValueError,
                     r"weight must have shape \[\.\.\., M\] = \[2, 3\] or \[3\], got \[4\]"),
    "weight_per_frame": (lambda P: dict(positions=P, weight=torch.ones(2, 4, 3)), ValueError,
                         r"weight must have shape \[\.\.\., M\] = \[2, 3\] or \[3\], got "
                         r"\[2, 4, 3\]"),
    "weight_requires_grad": (lambda P: dict(positions=P, weight=torch.ones(3, requires_grad=True)),
                             ValueError, r"weight is a constant of the loss and must not require "
                                         r"grad"),
    "weight_device": (lambda P: dict(positions=P, weight=torch.ones(3, device="meta")), ValueError,
                      r"weight must be on the same device as the points \(cpu\), got meta"),
    "weight_negative": (lambda P: dict(positions=P, weight=torch.tensor([[1.0, 1.0, 1.0],
                                                                        [1.0, -3.0, 1.0]])),
                        ValueError, r"weight must be non-negative"),
    "weight_negative_shared": (lambda P: dict(positions=P, weight=torch.tensor([0.0, -1e-9, 1.0])),
                               ValueError, r"weight must be non-negative"),
    "order_3": (lambda P: dict(positions=P, order=3), ValueError,
                r"order must be 1 \(velocity\) or 2 \(acceleration\), got 3"),
    "order_0": (lambda P: dict(positions=P, order=0), ValueError, r"order must be 1 .* got 0"),
    "order_true": (lambda P: dict(positions=P, order=True), ValueError,
                   r"order must be 1 .* got True"),
    "order_float": (lambda P: dict(positions=P, order=1.5), ValueError,
                    r"order must be 1 .* got 1\.5"),
    "reduction_unknown": (lambda P: dict(positions=P, reduction="average"), ValueError,
                          r"reduction must be one of 'none', 'mean' or 'sum', got 'average'"),
}


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_input(name):
    build, exc, match = BAD_INPUTS[name]
    kwargs = build(_P())
    with pytest.raises(exc, match=match):
        spl.spatiotemporal_consistency_loss(kwargs.pop("positions"), **kwargs)


def test_module_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"reduction must be one of"):
        spl.SpatioTemporalConsistencyLoss(reduction="avg")
    with pytest.raises(ValueError, match=r"order must be 1 .* got 3"):
        spl.SpatioTemporalConsistencyLoss(order=3)


@needs_compiled
def test_direct_op_calls_check_their_arguments():
    fwd, bwd = op("spatiotemporal_consistency_fwd"), op("spatiotemporal_consistency_bwd")
    P = _P()
    with pytest.raises(ValueError, match=r"weight must be non-negative"):
        fwd(P, torch.tensor([1.0, -1.0, 1.0], dtype=torch.float64), 1, 1)
    with pytest.raises(ValueError, match=r"weight"):
        fwd(P, torch.ones(4, dtype=torch.float64), 1, 1)
    with pytest.raises(TypeError):
        fwd(P, torch.ones(3, dtype=torch.float32), 1, 1)
    with pytest.raises(TypeError):
        fwd(P.long(), None, 1, 1)
    with pytest.raises(ValueError, match=r"order"):
        fwd(P, None, 3, 1)
    with pytest.raises(ValueError, match=r"reduction"):
        fwd(P, None, 1, -1)
    with pytest.raises((ValueError, RuntimeError, IndexError)):
        fwd(P[0, 0], None, 1, 1)
    loss, denom = fwd(P, None, 1, 0)
    with pytest.raises((ValueError, RuntimeError)):     # per-term gradient of the wrong shape
        bwd(torch.ones(2, 4, 3, dtype=torch.float64), P, None, denom, 1, 0)
