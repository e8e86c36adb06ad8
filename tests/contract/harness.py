"""The types of the contract table (see ``cases.py``) and the helpers its checks share.

Low-precision bound (float32, float16, bfloat16 against the float64 reference)
------------------------------------------------------------------------------
The reference runs in float64 on the *same* rounded inputs (and the same rounded incoming
gradients), so input rounding is not part of the error. The CPU kernels read any floating dtype
exactly, compute in double and round each output element once: error <= u * |ref|, with u the
unit roundoff of the dtype (2^-24 float32, 2^-11 float16, 2^-8 bfloat16). One path computes in
float instead: the interior frames of the unweighted, reduced SCL backward (``scl_bwd_flat``)
evaluate their 2- or 3-tap stencil in float, with at most 6 roundings, each on a partial term
|c * tap * Delta|; for the standard-normal inputs used here no partial exceeds max|ref|
(measured), and the bound allows 4 times that: 6 * 4 * u * max|ref|.
Element-wise:

    |out - ref| <= 2 * u * |ref| + 24 * u * max|ref|        (LOW_PRECISION_BOUND)

(The largest error measured on these inputs is 0.97 u * max|ref| on the one-rounding paths and
1.6 u * max|ref| on the float stencil.) A sign error, a float accumulation over 10^7 terms or a
skipped half-precision path exceed it by orders of magnitude.
"""
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple

import pytest
import torch

from conftest import as_tuple, make_weight, randn

REDUCTIONS = ("none", "mean", "sum")
UNIT_ROUNDOFF = {torch.float32: 2.0 ** -24, torch.float16: 2.0 ** -11,
                 torch.bfloat16: 2.0 ** -8}
LOW_PRECISION_BOUND = (2.0, 24.0)   # (relative, times max|ref|) multiples of u, derived above
F64_BOUND = dict(rtol=1e-9, atol=1e-12)   # float64 kernel vs the float64 reference

# The message of csrc/autograd.cpp for a second derivative through any loss.
DOUBLE_BACKWARD = (r"sirenpose_loss: the losses are differentiable once \(analytic backward "
                   r"kernels\); a second derivative through them \(create_graph=True.*is not "
                   r"supported")


# ----------------------------------------------------------------------------- table types
@dataclass(frozen=True)
class Path:
    """One kernel path: plain options, and which optional weights are given and how.

    ``weights`` maps a weight name of the case to a kind: ``"shared"`` (``[R]``, batch stride 0
    in the kernels), ``"batch"`` (``[..., R]``) or ``"mask"`` (bool ``[..., R]``).
    """
    id: str
    options: Mapping[str, Any] = field(default_factory=dict)
    weights: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Bad:
    """One invalid call: ``change`` turns the valid keyword arguments (tensors and options of
    the case's ``tiny`` size) into invalid ones; the call must raise ``exc`` with a message
    matching ``match`` (which names the argument). ``got=False`` marks a message that does not
    yet say what was given: only the regex on the argument name is checked."""
    id: str
    change: Callable[[Dict[str, Any]], Dict[str, Any]]
    exc: type
    match: str
    got: bool = True


@dataclass(frozen=True)
class LossCase:
    """One loss of the contract table (see the module docstring of ``cases.py``)."""
    name: str
    fn: Callable                      # fused functional: fn(**inputs, **options, reduction=)
    reference: Callable               # sirenpose_loss.reference twin, called the same way
    build: Callable[..., Dict[str, torch.Tensor]]   # build(seed, **size) -> named tensors
    differentiable: Tuple[str, ...]   # inputs that get gradients
    weights: Mapping[str, Callable]   # weight name -> rows(inputs) -> (batch shape, rows)
    paths: Tuple[Path, ...]
    sizes: Mapping[str, Any]          # see cases.py: reference, tiny, threads, empty, 1e7
    perfect: Callable[[Dict[str, torch.Tensor]], Dict[str, torch.Tensor]]
    bad: Tuple[Bad, ...]
    module: Optional[type] = None     # nn.Module twin, if the loss has one
    module_inputs: Tuple[str, ...] = ()   # inputs given to the module's constructor
    reductions: Tuple[str, ...] = REDUCTIONS
    f64_bound: Mapping[str, float] = field(default_factory=lambda: dict(F64_BOUND))
    double_backward: str = DOUBLE_BACKWARD
    # Reductions whose gradient is the exact derivative of the output (gradcheck). A loss that
    # holds an inner minimiser fixed in its backward is exact for the reduced energy only.
    gradcheck_reductions: Tuple[str, ...] = REDUCTIONS
    # perfect_atol(options) -> (term, gradient): the largest loss term and gradient element at
    # a perfect input (0, 0: exactly 0). A square root over an eps keeps a floor; a rotation or
    # a length computed in floating point leaves rounding.
    perfect_atol: Callable[[Mapping[str, Any]], Tuple[float, float]] = lambda options: (0.0, 0.0)
    # The non-finite input values checked against the reference (whose own maths may refuse
    # them, e.g. an SVD).
    nonfinite: Tuple[str, ...] = ("nan", "inf", "-inf")


# --------------------------------------------------------------------------- building calls
def case_inputs(case: LossCase, path: Path, size: Mapping[str, Any], *, seed: int,
                dtype=torch.float64) -> Dict[str, torch.Tensor]:
    """The case's tensors at `size` plus the path's weights, floating ones in `dtype`."""
    inputs = case.build(seed, **size)
    for k, (name, kind) in enumerate(sorted(path.weights.items())):
        batch, rows = case.weights[name](inputs)
        inputs[name] = make_weight(kind, tuple(batch), rows, seed=seed + 101 + k)
    return {k: to_dtype(v, dtype) for k, v in inputs.items()}


def to_dtype(v, dtype):
    return v.to(dtype) if isinstance(v, torch.Tensor) and v.is_floating_point() else v


def caller(fn, options: Mapping[str, Any], reduction: str):
    return lambda **inputs: fn(**inputs, **options, reduction=reduction)


def module_caller(case: LossCase, options: Mapping[str, Any], reduction: str):
    """The nn.Module twin: constructor inputs positionally, options as keywords; the other
    inputs go to forward() by keyword."""
    def call(**inputs):
        ctor = [inputs.pop(n) for n in case.module_inputs]
        return case.module(*ctor, **options, reduction=reduction)(**inputs)
    return call


# ---------------------------------------------------------------------------- running calls
def incoming_gradients(outs, *, seed: int, round_to=None):
    """A random incoming gradient per output (never zero), rounded to `round_to` first so that
    a low-precision run and its float64 reference see the same values."""
    grads = []
    for i, o in enumerate(outs):
        g = randn(*o.shape, seed=seed + i)
        grads.append(g.to(round_to or o.dtype).to(device=o.device, dtype=o.dtype))
    return grads


def forward_backward(call, inputs: Mapping[str, Any], grad_names: Sequence[str], *,
                     seed: int, round_to=None):
    """Call on fresh leaves (those in grad_names require grad), backpropagate random incoming
    gradients, return (detached outputs, {name: gradient})."""
    leaves = {k: (v.detach().clone().requires_grad_(k in grad_names)
                  if isinstance(v, torch.Tensor) else v) for k, v in inputs.items()}
    outs = as_tuple(call(**leaves))
    pairs = [(o, g) for o, g in zip(outs, incoming_gradients(outs, seed=seed, round_to=round_to))
             if o.requires_grad]
    if pairs:
        torch.autograd.backward([o for o, _ in pairs], [g for _, g in pairs])
    return [o.detach() for o in outs], {k: leaves[k].grad for k in grad_names}


def assert_matches(outs, grads, ref_outs, ref_grads, *, what: str, **bound):
    """Same structure, shapes and dtypes as expected; values within `bound` (see `close`)."""
    assert len(outs) == len(ref_outs), f"{what}: {len(outs)} outputs, reference {len(ref_outs)}"
    pairs = [(f"output {i}", o, r) for i, (o, r) in enumerate(zip(outs, ref_outs))]
    for name in ref_grads:
        assert (grads[name] is None) == (ref_grads[name] is None), f"{what}: gradient of {name}"
        if ref_grads[name] is not None:
            pairs.append((f"gradient of {name}", grads[name], ref_grads[name]))
    for label, x, r in pairs:
        assert x.shape == r.shape, f"{what}: {label}: shape {tuple(x.shape)} != {tuple(r.shape)}"
        close(x, r, what=f"{what}: {label}", **bound)


def close(x, ref, *, what: str, rtol: float = 0.0, atol: float = 0.0, scaled_atol: float = 0.0):
    """|x - ref| <= atol + scaled_atol * max|ref| + rtol * |ref|, element-wise (NaN == NaN)."""
    ref = ref.double()
    scale = ref[torch.isfinite(ref)].abs().max().item() if torch.isfinite(ref).any() else 0.0
    torch.testing.assert_close(x.double(), ref, rtol=rtol, atol=atol + scaled_atol * scale,
                               equal_nan=True, msg=lambda m: f"{what}: {m}")


def low_precision_bound(dtype) -> Dict[str, float]:
    u = UNIT_ROUNDOFF[dtype]
    rel, scaled = LOW_PRECISION_BOUND
    return dict(rtol=rel * u, scaled_atol=scaled * u)


def assert_raises(call, exc: type, match: str, *, got: bool = True):
    with pytest.raises(exc) as info:
        call()
    message = str(info.value)
    assert re.search(match, message), f"message {message!r} does not match {match!r}"
    if got:
        assert re.search(r"\bgot\b", message), f"message {message!r} does not say what was given"


# ------------------------------------------------------------------------ bad-input builders
def replaced(name: str, make: Callable[[Any], Any]) -> Callable[[dict], dict]:
    """A Bad.change that replaces argument `name` by make(its valid value)."""
    return lambda kw: {**kw, name: make(kw.get(name))}


def weight_bad(name: str, layout: str, rows: int, *, rows_regex: Optional[str] = None):
    """The invalid-weight rows every per-row weight shares. `rows`: R of the tiny size."""
    arg = rf"(?<!\w){name}\b"
    return (
        Bad(f"{name}-list", replaced(name, lambda _: [1.0] * rows), TypeError,
            rf"{arg} must be a torch\.Tensor of shape {re.escape(layout)} or None, got list"),
        Bad(f"{name}-int", replaced(name, lambda _: torch.ones(rows, dtype=torch.long)),
            TypeError, rf"{arg} must be a floating-point or bool tensor, got dtype torch\.int64"),
        Bad(f"{name}-rows", replaced(name, lambda _: torch.ones(rows + 1)), ValueError,
            rf"{arg} must have shape .*got \[{rows + 1}\]"),
        Bad(f"{name}-device", replaced(name, lambda _: torch.ones(rows, device="meta")),
            ValueError, rf"{arg} must be on the same device .*got meta"),
        Bad(f"{name}-requires-grad",
            replaced(name, lambda _: torch.ones(rows, dtype=torch.float64, requires_grad=True)),
            ValueError, rf"{arg} is a constant of the loss and must not require grad"),
        Bad(f"{name}-negative",
            replaced(name, lambda _: torch.linspace(1.0, -0.5, rows, dtype=torch.float64)),
            ValueError, rf"{arg} must be non-negative, got"),
    )


def points_bad(name: str, layout: str, min_dim: int):
    """Type, dtype, rank and empty-coordinate errors of a floating point-set argument."""
    arg = rf"(?<!\w){name}\b"
    lay = re.escape(layout)
    return (
        Bad(f"{name}-list", replaced(name, lambda t: t.tolist()), TypeError,
            rf"{arg} must be a torch\.Tensor of shape {lay}, got list"),
        Bad(f"{name}-int", replaced(name, lambda t: t.long()), TypeError,
            rf"{arg} must be a floating-point tensor, got dtype torch\.int64"),
        Bad(f"{name}-rank", replaced(name, lambda t: t[(0,) * (t.dim() - min_dim + 1)]),
            ValueError, rf"{arg} must have shape {lay} \(at least {min_dim} dims\), got shape"),
        Bad(f"{name}-D0", replaced(name, lambda t: t[..., :0]), ValueError,
            rf"{arg} must have a coordinate dimension D >= 1.*got shape"),
    )


REDUCTION_BAD = (
    Bad("reduction-unknown", replaced("reduction", lambda _: "avg"), ValueError,
        r"reduction must be one of 'none', 'mean' or 'sum', got 'avg'"),
    Bad("reduction-none-object", replaced("reduction", lambda _: None), ValueError,
        r"reduction must be one of 'none', 'mean' or 'sum', got None"),
)
