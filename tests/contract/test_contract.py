"""The contract every loss keeps, checked on every entry of ``cases.CASES``, for every kernel
path it lists and every reduction (test ids: ``<loss>-<path>-<reduction>``).

CPU only: the CUDA kernels are checked against these CPU kernels in ``test_cuda.py``.
"""
import pytest
import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

from conftest import (ThreadCount, as_tuple, assert_bitwise_equal, fresh_compile, needs_compiled,
                      seed_of)
from contract.cases import CASES
from contract.harness import (UNIT_ROUNDOFF, assert_matches, assert_raises, caller,
                              case_inputs, close, forward_backward, low_precision_bound,
                              module_caller, to_dtype)

LOW_PRECISION = [torch.float32, torch.float16, torch.bfloat16]


def _params(reductions=lambda case: case.reductions, paths=lambda case: case.paths):
    return [pytest.param(case, path, red, id=f"{case.name}-{path.id}-{red}")
            for case in CASES for path in paths(case) or () for red in reductions(case)]


def _ten_million_paths(case):
    """The unweighted path and the first weighted one (each has its own accumulation)."""
    if "ten_million" not in case.sizes:
        return []
    return [case.paths[0], next(p for p in case.paths if p.weights)]


EVERY_PATH = pytest.mark.parametrize("case,path,reduction", _params())
WEIGHTED_PATHS = pytest.mark.parametrize(
    "case,path,reduction", _params(paths=lambda c: [p for p in c.paths if p.weights]))


def _seed(case, path, reduction, *extra):
    return seed_of(case.name, path.id, reduction, *extra)


def _run(case, path, reduction, inputs, *, seed, impl=None, grads=None, round_to=None):
    call = caller(impl or case.fn, path.options, reduction)
    return forward_backward(call, inputs, case.differentiable if grads is None else grads,
                            seed=seed, round_to=round_to)


def _against_reference(case, path, reduction, inputs, *, seed, what, grads=None, dtype=None,
                       **bound):
    outs, g = _run(case, path, reduction, inputs, seed=seed, grads=grads, round_to=dtype)
    ref64 = {k: to_dtype(v, torch.float64) for k, v in inputs.items()}
    ref_outs, ref_g = _run(case, path, reduction, ref64, seed=seed, impl=case.reference,
                           grads=grads, round_to=dtype)
    if dtype is not None:
        assert all(o.dtype == dtype for o in outs), f"{what}: output dtype"
        assert all(v.dtype == dtype for v in g.values() if v is not None), f"{what}: grad dtype"
    assert_matches(outs, g, ref_outs, ref_g, what=what, **bound)
    return outs, g


# ---------------------------------------------------------------- the maths, in float64
@EVERY_PATH
def test_value_and_gradient_match_reference(case, path, reduction):
    for i, size in enumerate(case.sizes["reference"]):
        seed = _seed(case, path, reduction, i)
        inputs = case_inputs(case, path, size, seed=seed)
        _against_reference(case, path, reduction, inputs, seed=seed + 7, what=f"size {size}",
                           **case.f64_bound)


@EVERY_PATH
def test_gradient_of_each_input_alone(case, path, reduction):
    """The backward kernels skip the gradients nobody asked for (output_mask)."""
    seed = _seed(case, path, reduction)
    inputs = case_inputs(case, path, case.sizes["reference"][2], seed=seed)
    for name in case.differentiable:
        _, grads = _against_reference(case, path, reduction, inputs, seed=seed + 7,
                                      what=f"only {name}", grads=(name,), **case.f64_bound)
        assert grads[name] is not None


@EVERY_PATH
def test_empty_inputs_give_zero_loss_and_gradient(case, path, reduction):
    """No terms at all: the value matches the reference, a reduced loss is exactly 0 (a mean
    over nothing is 0, never NaN) and every gradient is exactly 0."""
    for i, size in enumerate(case.sizes["empty"]):
        seed = _seed(case, path, reduction, "empty", i)
        inputs = case_inputs(case, path, size, seed=seed)
        outs, grads = _against_reference(case, path, reduction, inputs, seed=seed,
                                         what=f"size {size}", rtol=0.0, atol=0.0)
        if reduction != "none":
            assert all(o.item() == 0.0 for o in outs), f"size {size}: {outs}"
        assert all(not g.any() for g in grads.values()), f"size {size}: non-zero gradient"


@pytest.mark.parametrize("case,path,reduction,special", [
    pytest.param(*p.values, special, id=f"{special}-{p.id}")
    for p in _params() for special in p.values[0].nonfinite])
def test_nan_and_inf_propagate_like_the_reference(case, path, reduction, special):
    """Nothing is masked: a NaN or Inf input gives what the reference gives, zero weights
    included."""
    seed = _seed(case, path, reduction, special)
    inputs = case_inputs(case, path, case.sizes["reference"][2], seed=seed)
    zeroed = {**inputs, **{n: torch.zeros_like(inputs[n]) for n in path.weights}}
    for name in case.differentiable:
        for weights, label in ((inputs, ""), (zeroed, ", zero weights")):
            bad = inputs[name].clone()
            bad.view(-1)[bad.numel() // 2] = float(special)
            _against_reference(case, path, reduction, {**weights, name: bad}, seed=seed,
                               what=f"{special} in {name}{label}", **case.f64_bound)


@WEIGHTED_PATHS
def test_zero_weights(case, path, reduction):
    """All weights 0: matches the reference (a mean over zero total weight is 0), no NaN."""
    seed = _seed(case, path, reduction)
    inputs = case_inputs(case, path, case.sizes["reference"][2], seed=seed)
    inputs.update({n: torch.zeros_like(inputs[n]) for n in path.weights})
    outs, grads = _against_reference(case, path, reduction, inputs, seed=seed, what="zero weights",
                                     **case.f64_bound)
    assert all(torch.isfinite(t).all() for t in [*outs, *grads.values()])


@WEIGHTED_PATHS
def test_weights_of_other_dtypes_are_converted(case, path, reduction):
    """A float32 weight with float64 points, and a bool mask, give the bits of the same values
    passed as float64 weights."""
    seed = _seed(case, path, reduction)
    inputs = case_inputs(case, path, case.sizes["reference"][2], seed=seed)
    for name in path.weights:
        given = inputs[name] if inputs[name].dtype == torch.bool else inputs[name].float()
        a = _run(case, path, reduction, {**inputs, name: given}, seed=seed)
        b = _run(case, path, reduction, {**inputs, name: given.double()}, seed=seed)
        assert a[0][0].dtype == torch.float64
        assert_bitwise_equal(a[0], b[0], f"outputs, {name} as {given.dtype}")
        assert_bitwise_equal(list(a[1].values()), list(b[1].values()), f"gradients, {name}")


@EVERY_PATH
def test_perfect_prediction_gives_zero_loss_and_gradient(case, path, reduction):
    for i, size in enumerate(case.sizes["reference"]):
        seed = _seed(case, path, reduction, "perfect", i)
        inputs = case.perfect(case_inputs(case, path, size, seed=seed))
        outs, grads = _run(case, path, reduction, inputs, seed=seed)
        term_atol, grad_atol = case.perfect_atol(path.options)
        terms = sum(t.numel() for t in as_tuple(caller(case.reference, path.options, "none")(
            **inputs))) if reduction == "sum" else 1
        for j, o in enumerate(outs):
            assert o.abs().max() <= term_atol * terms, f"size {size}: output {j} is {o}"
        for name, g in grads.items():
            assert g.abs().max() <= grad_atol, f"size {size}: gradient of {name} is not 0"


# --------------------------------------------------------------------- other precisions
@needs_compiled  # the bound is the kernels' (double accumulation); the reference's is wider
@EVERY_PATH
@pytest.mark.parametrize("dtype", LOW_PRECISION, ids=str)
def test_low_precision_within_the_derived_bound(case, path, reduction, dtype):
    """float32, float16 and bfloat16 against the float64 reference on the same rounded inputs,
    within LOW_PRECISION_BOUND (harness.py). Output and gradients keep the input's dtype."""
    for i, size in enumerate(case.sizes["low_precision"] + case.sizes["reference"][:2]):
        seed = _seed(case, path, reduction, str(dtype), i)
        inputs = case_inputs(case, path, size, seed=seed, dtype=dtype)
        _against_reference(case, path, reduction, inputs, seed=seed + 7, dtype=dtype,
                           what=f"{dtype} size {size}", **low_precision_bound(dtype))


@needs_compiled
@pytest.mark.parametrize("case,path,reduction",
                         _params(reductions=lambda _: ("sum", "mean"), paths=_ten_million_paths))
def test_float32_over_ten_million_terms(case, path, reduction):
    """Sums are accumulated in double: a float32 loss over 10^7 terms keeps the one-rounding
    bound (float accumulation would be off by ~1e-4)."""
    seed = _seed(case, path, reduction)
    inputs = case_inputs(case, path, case.sizes["ten_million"], seed=seed, dtype=torch.float32)
    with torch.no_grad():
        out = caller(case.fn, path.options, reduction)(**inputs)
        expected = caller(case.reference, path.options, reduction)(
            **{k: to_dtype(v, torch.float64) for k, v in inputs.items()})
    assert out.dtype == torch.float32
    close(out, expected, what="float32 over 1e7 terms", rtol=2 * UNIT_ROUNDOFF[torch.float32])


# ---------------------------------------------------------------------- autograd contract
@pytest.mark.parametrize("case,path,reduction",
                         _params(reductions=lambda c: c.gradcheck_reductions))
def test_gradcheck(case, path, reduction):
    inputs = case_inputs(case, path, case.sizes["tiny"], seed=_seed(case, path, reduction))
    names = case.differentiable
    call = caller(case.fn, path.options, reduction)
    consts = {k: v for k, v in inputs.items() if k not in names}
    leaves = tuple(inputs[n].clone().requires_grad_() for n in names)
    assert torch.autograd.gradcheck(lambda *xs: call(**dict(zip(names, xs)), **consts), leaves)


@needs_compiled
@EVERY_PATH
def test_double_backward_is_refused_with_the_documented_message(case, path, reduction):
    inputs = case_inputs(case, path, case.sizes["tiny"], seed=_seed(case, path, reduction))
    leaves = {k: (v.clone().requires_grad_() if k in case.differentiable else v)
              for k, v in inputs.items()}
    total = sum(o.sum() for o in as_tuple(caller(case.fn, path.options, reduction)(**leaves)))
    grads = torch.autograd.grad(total, [leaves[n] for n in case.differentiable],
                                create_graph=True)

    def second():
        sum(g.pow(2).sum() for g in grads).backward()

    assert_raises(second, RuntimeError, case.double_backward, got=False)


@pytest.mark.parametrize("case,path,reduction", _params(paths=lambda c: c.module and c.paths))
def test_module_matches_functional(case, path, reduction):
    seed = _seed(case, path, reduction)
    inputs = case_inputs(case, path, case.sizes["reference"][2], seed=seed)
    a = forward_backward(module_caller(case, path.options, reduction), inputs,
                         case.differentiable, seed=seed)
    b = _run(case, path, reduction, inputs, seed=seed)
    assert_bitwise_equal(a[0], b[0], "outputs")
    assert_bitwise_equal(list(a[1].values()), list(b[1].values()), "gradients")


@EVERY_PATH
def test_no_grad_inference_mode_and_non_contiguous_inputs(case, path, reduction):
    """The same bits without autograd (no_grad, inference_mode, or no input requiring grad),
    and from strided views of every tensor input."""
    seed = _seed(case, path, reduction)
    inputs = case_inputs(case, path, case.sizes["reference"][2], seed=seed)
    outs, grads = _run(case, path, reduction, inputs, seed=seed)
    call = caller(case.fn, path.options, reduction)
    for mode in (torch.no_grad, torch.inference_mode):
        with mode():
            assert_bitwise_equal(call(**inputs), outs, f"outputs under {mode.__name__}")
    detached = as_tuple(call(**inputs))          # no input requires grad
    assert not any(o.requires_grad for o in detached)
    assert_bitwise_equal(detached, outs, "outputs without any input requiring grad")
    strided = {k: torch.stack([v, v], dim=-1)[..., 1] if isinstance(v, torch.Tensor) else v
               for k, v in inputs.items()}
    assert not any(v.is_contiguous() for v in strided.values() if v.numel() > 1)
    s_outs, s_grads = _run(case, path, reduction, strided, seed=seed)
    assert_bitwise_equal(s_outs, outs, "outputs of strided inputs")
    assert_bitwise_equal(list(s_grads.values()), list(grads.values()), "strided gradients")


# ------------------------------------------------------------------------- determinism
@needs_compiled
@EVERY_PATH
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
def test_bit_identical_at_1_2_and_4_threads(case, path, reduction, dtype):
    """Chunk boundaries depend on the problem size only: loss and gradients are the same bits
    whatever the thread count (sizes large enough for several tasks at each count)."""
    seed = _seed(case, path, reduction)
    inputs = case_inputs(case, path, case.sizes["threads"], seed=seed, dtype=dtype)
    first = None
    for threads in (1, 2, 4, 4):
        with ThreadCount(threads):
            outs, grads = _run(case, path, reduction, inputs, seed=seed)
        if first is None:
            first = outs, list(grads.values())
            continue
        assert_bitwise_equal(outs, first[0], f"outputs at {threads} threads vs 1")
        assert_bitwise_equal(list(grads.values()), first[1], f"gradients at {threads} threads vs 1")


# -------------------------------------------------------------- registration and tracing
class _Calls:
    """Keeps every sirenpose_loss op that passes through the mode, with its arguments."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def _record(self, func, args, kwargs):
        if str(func).startswith("sirenpose_loss."):
            self.calls.append((func, args, kwargs or {}))
        return func(*args, **(kwargs or {}))


class _RecordOps(_Calls, TorchFunctionMode):
    """The differentiable ops, as the functional calls them."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        return self._record(func, args, kwargs)


class _RecordKernels(_Calls, TorchDispatchMode):
    """The fused fwd/bwd kernels, dispatched below autograd."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        return self._record(func, args, kwargs)


@needs_compiled
@EVERY_PATH
def test_opcheck(case, path, reduction):
    """Schema, fake kernel, autograd registration and AOT dispatch of every op the loss calls,
    with the arguments it calls them with."""
    seed = _seed(case, path, reduction)
    inputs = case_inputs(case, path, case.sizes["tiny"], seed=seed)
    with _RecordOps() as ops, _RecordKernels() as kernels:
        _run(case, path, reduction, inputs, seed=seed)
    names = [str(f) for f, _, _ in ops.calls + kernels.calls]
    assert ops.calls and any(n.endswith("_fwd.default") for n in names), names
    assert any(n.endswith("_bwd.default") for n in names), names
    for func, args, kwargs in ops.calls + kernels.calls:
        torch.library.opcheck(func, args, kwargs)


@needs_compiled
@EVERY_PATH
def test_torch_compile_fullgraph(case, path, reduction):
    """No graph break; compiled forward and backward give eager's bits."""
    seed = _seed(case, path, reduction)
    inputs = case_inputs(case, path, case.sizes["tiny"], seed=seed)
    call = caller(case.fn, path.options, reduction)
    compiled = fresh_compile(call)
    outs, grads = forward_backward(compiled, inputs, case.differentiable, seed=seed)
    e_outs, e_grads = forward_backward(call, inputs, case.differentiable, seed=seed)
    assert_bitwise_equal(outs, e_outs, "compiled outputs")
    assert_bitwise_equal(list(grads.values()), list(e_grads.values()), "compiled gradients")


@needs_compiled
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_torch_compile_dynamic_shapes(case):
    """torch.compile(dynamic=True, fullgraph=True): one graph per reduction serves the first
    reference sizes (every path is compiled at a fixed size in test_torch_compile_fullgraph)
    and gives eager's bits."""
    seed = seed_of(case.name, "dynamic")
    for path in case.paths[:1]:
        for reduction in case.reductions:
            call = caller(case.fn, path.options, reduction)
            compiled = fresh_compile(call, dynamic=True, backend="aot_eager")
            for size in case.sizes["reference"][:3]:
                inputs = case_inputs(case, path, size, seed=seed)
                outs, grads = forward_backward(compiled, inputs, case.differentiable, seed=seed)
                e_outs, e_grads = forward_backward(call, inputs, case.differentiable, seed=seed)
                what = f"{path.id}-{reduction} size {size}"
                assert_bitwise_equal(outs, e_outs, f"compiled outputs, {what}")
                assert_bitwise_equal(list(grads.values()), list(e_grads.values()),
                                     f"compiled gradients, {what}")


# ------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("case,bad", [pytest.param(c, b, id=f"{c.name}-{b.id}")
                                      for c in CASES for b in c.bad])
def test_bad_input_is_refused_with_a_clear_message(case, bad):
    path = case.paths[0]
    valid = {**case_inputs(case, path, case.sizes["tiny"], seed=1), **path.options,
             "reduction": "mean"}
    kwargs = bad.change(valid)
    assert_raises(lambda: case.fn(**kwargs), bad.exc, bad.match, got=bad.got)


@pytest.mark.parametrize("case", [c for c in CASES if c.module], ids=lambda c: c.name)
def test_module_refuses_an_unknown_reduction_when_built(case):
    inputs = case_inputs(case, case.paths[0], case.sizes["tiny"], seed=1)
    ctor = [inputs[n] for n in case.module_inputs]
    assert_raises(lambda: case.module(*ctor, reduction="avg"), ValueError,
                  r"reduction must be one of 'none', 'mean' or 'sum', got 'avg'")
