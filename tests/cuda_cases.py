"""The loss calls of the CUDA tests, and the rounding-error bound each result is checked with.

A CUDA kernel computes a float32 input in float arithmetic; the truth is the float64 result on
the same (float32-rounded) arguments. Their difference is the kernel's rounding error alone, and
no fixed rtol/atol bounds it: the SirenPose gradient sums terms 2 w r omega0 cos(omega0 d) of
size ~omega0 that nearly cancel, and sin/cos of omega0 d carry an absolute error ~u omega0 |d|.

Every loss here is a weighted sum of squared norms, sum_t e_t ||delta_t||^2 over D coordinates
(e_t: the term's weight over the reduction's denominator). Standard forward-error analysis, with
u the unit roundoff of float (2^-24) and each operation rounding once, bounds
  * a coordinate of delta_t by |delta|, with absolute error delta_err * u;
  * its slope d(delta)/d(input) by `slope`, with absolute error slope_err * u;
  * a reduced loss by u [sum_t e_t D (2 |delta| delta_err + 3 |delta|^2)
                         + 2 depth(n) sum_t e_t D |delta|^2]      (depth: the longest chain of
    additions of a blocked tree sum, counted twice for the mean's denominator);
  * an input's gradient by u g touch max(e) 2 (slope delta_err + |delta| slope_err
                                                + (4 + touch) slope |delta|),
    where g bounds the incoming gradient and `touch` is the most terms one input enters.
The maxima are taken over the whole case (one bound per tensor), and everything is multiplied
by MARGIN. CUDA results must be within `atol + rtol |truth|` of the truth elementwise, with rtol
covering the final rounding of each stored value.
"""
import math
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

import torch

import sirenpose_loss as spl
from conftest import make_weight, rand_edge_index, rand_weight, randn, seed_of

UNIT_ROUNDOFF = {torch.float32: 2.0 ** -24, torch.float16: 2.0 ** -11, torch.bfloat16: 2.0 ** -8,
                 torch.float64: 2.0 ** -53}
MARGIN = 2.0
# float16 stores values below 2^-14 with a fixed spacing of 2^-24: a floor for its absolute error.
SUBNORMAL_SPACING = {torch.float16: 2.0 ** -24}
K, D, BATCH = 17, 3, (2, 3)


def sum_depth(n: int) -> int:
    """Longest chain of additions when n numbers are summed in a blocked tree: a tree over
    threads and blocks (log2 n), after serial runs of a few items per thread that lengthen once
    the grid stops growing (about 2^18 items)."""
    return math.ceil(math.log2(max(n, 2))) + 8 + math.ceil(n / 2 ** 18)


@dataclass
class SquaredNormTerms:
    """sum_t eff_w[t] ||delta_t||^2 (see the module docstring for the fields' meaning)."""
    eff_w: torch.Tensor   # weight / denominator of every term, float64, >= 0
    d: int
    delta: float
    delta_err: float
    slope: float
    slope_err: float
    touch: int

    def _max_w(self) -> float:
        return float(self.eff_w.max()) if self.eff_w.numel() else 0.0

    def reduced_err(self) -> float:
        total = float(self.eff_w.sum()) * self.d
        depth = sum_depth(self.eff_w.numel() * self.d)
        return total * (2 * self.delta * self.delta_err + (3 + 2 * depth) * self.delta ** 2)

    def per_term_err(self) -> float:
        depth = sum_depth(self.d)
        return self._max_w() * self.d * (2 * self.delta * self.delta_err + (3 + depth) * self.delta ** 2)

    def grad_err(self, g: float) -> float:
        return g * self.touch * self._max_w() * 2 * (
            self.slope * self.delta_err + self.delta * self.slope_err
            + (4 + self.touch) * self.slope * self.delta)


def _as_float(w: Optional[torch.Tensor], shape) -> torch.Tensor:
    if w is None:
        return torch.ones(shape, dtype=torch.float64)
    return w.to(torch.float64).expand(shape)


def _eff(w_terms: torch.Tensor, reduction: str) -> torch.Tensor:
    """Per-term weight over the denominator (a mean over zero total weight is 0: no error)."""
    if reduction != "mean":
        return w_terms
    den = float(w_terms.sum())
    return w_terms / den if den > 0 else torch.zeros_like(w_terms)


def _amax(*xs) -> float:
    return max((float(x.abs().max()) for x in xs if x.numel()), default=0.0)


def _match_terms(pred, target, weight, reduction) -> SquaredNormTerms:
    a = _amax(pred, target)
    return SquaredNormTerms(_eff(_as_float(weight, pred.shape[:-1]), reduction), pred.shape[-1],
                            delta=_amax(pred - target), delta_err=2 * a, slope=1.0, slope_err=0.0,
                            touch=1)


def _scl_terms(positions, weight, order, reduction) -> SquaredNormTerms:
    *batch, t, m, d = positions.shape
    steps = max(t - order, 0)
    w = _as_float(weight, (*batch, m)).unsqueeze(-2).expand(*batch, steps, m)
    x = positions
    delta = (x[..., 1:, :, :] - x[..., :-1, :, :] if order == 1 else
             x[..., 2:, :, :] - 2 * x[..., 1:-1, :, :] + x[..., :-2, :, :])
    return SquaredNormTerms(_eff(w, reduction), d, delta=_amax(delta),
                            delta_err=(order + 1) * 2 ** order * _amax(x), slope=float(order),
                            slope_err=0.0, touch=order + 1)


def _geo_terms(pred, target, edge_index, weight, edge_weight, omega0, lam, reduction):
    src, dst = edge_index[0].long(), edge_index[1].long()
    w = _as_float(weight, pred.shape[:-1])
    w_e = w[..., src] * w[..., dst]
    if edge_weight is not None:
        w_e = w_e * edge_weight.to(torch.float64)
    r = (torch.sin(omega0 * (pred[..., src, :] - pred[..., dst, :]))
         - torch.sin(omega0 * (target[..., src, :] - target[..., dst, :])))
    # omega0 (a - b): the difference rounds (<= 2A u) and is scaled, then the product rounds;
    # sin and cos carry that absolute error plus a few ulp of their own.
    angle_err = 4 * omega0 * _amax(pred, target) + 1
    degree = int(torch.bincount(edge_index.reshape(-1).long()).max()) if edge_index.numel() else 0
    scale = lam if reduction != "none" else 1.0
    return SquaredNormTerms(scale * _eff(w_e, reduction), pred.shape[-1], delta=_amax(r),
                            delta_err=2 * (angle_err + 4) + 1, slope=omega0,
                            slope_err=omega0 * (angle_err + 4), touch=degree)


@dataclass
class Bound:
    """Elementwise |got - truth| <= atol + rtol |truth|, one atol per output and per leaf."""
    out_atol: List[float]
    grad_atol: List[float]


class Case:
    """One loss call: the leaves that get gradients, the constants, the call, and the squared-norm
    terms the loss is made of (one group per term kind), for its error bound."""

    def __init__(self, fn, leaves, consts, terms: Callable[[], List[SquaredNormTerms]],
                 reduction: str):
        self.fn, self.leaves, self.consts = fn, leaves, consts
        self.terms, self.reduction = terms, reduction

    def rounded(self, dtype):
        """The same case with every floating tensor rounded to dtype (kept in its own dtype)."""
        rnd = lambda v: v.to(dtype).to(v.dtype) if _floating(v) else v  # noqa: E731
        return Case(self.fn, [rnd(x) for x in self.leaves],
                    {k: rnd(v) for k, v in self.consts.items()}, self.terms, self.reduction)

    def on(self, device, dtype=None):
        """(call, leaves) with every tensor on device and floating ones in dtype (if given)."""
        def move(v):
            if not isinstance(v, torch.Tensor):
                return v
            return v.to(device=device, dtype=dtype if dtype and _floating(v) else v.dtype)
        consts = {k: move(v) for k, v in self.consts.items()}
        return (lambda *xs: self.fn(*xs, **consts)), [move(x) for x in self.leaves]

    def bound(self, grads_in, dtype=torch.float32) -> Bound:
        """The bound of a run whose arithmetic is float (whatever dtype stores the values) on
        this case's values, given the incoming gradients of its outputs. rtol is not here: the
        caller adds the rounding of the stored results."""
        u = UNIT_ROUNDOFF[torch.float32]
        groups = self.terms()
        floor = SUBNORMAL_SPACING.get(dtype, 0.0)
        g = [_amax(x.double()) for x in grads_in]
        if self.reduction == "none":  # one output per group, each with its own incoming gradient
            outs = [MARGIN * u * t.per_term_err() + floor for t in groups]
            grad = sum(t.grad_err(gi) for t, gi in zip(groups, g))
        else:
            outs = [MARGIN * u * sum(t.reduced_err() for t in groups) + floor]
            grad = sum(t.grad_err(g[0]) for t in groups)
        return Bound(outs, [MARGIN * u * grad + floor] * len(self.leaves))


def _floating(v):
    return isinstance(v, torch.Tensor) and v.is_floating_point()


def _weight(kind, batch_shape, rows, *, seed, dtype):
    """A per-row weight of the given kind on the CPU (moved by the caller); "none" is None."""
    return make_weight(None if kind == "none" else kind, batch_shape, rows, seed=seed, dtype=dtype)


def _f64(v):
    return v.double() if _floating(v) else v


def kml_case(reduction, weight, dtype=torch.float64, batch=BATCH, k=K, d=D, impl=spl):
    s = seed_of("kml", reduction, weight, batch, k, d)
    pred, target = randn(*batch, k, d, seed=s, dtype=dtype), randn(*batch, k, d, seed=s + 1, dtype=dtype)
    w = _weight(weight, batch, k, seed=s + 2, dtype=dtype)
    return Case(lambda p, t, **c: impl.keypoint_match_loss(p, t, **c), [pred, target],
                dict(weight=w, reduction=reduction),
                lambda: [_match_terms(_f64(pred), _f64(target), w, reduction)], reduction)


def scl_case(reduction, weight, order=1, dtype=torch.float64, batch=(2,), t=6, m=40, d=D,
             impl=spl):
    s = seed_of("scl", reduction, weight, order, batch, t, m, d)
    positions = randn(*batch, t, m, d, seed=s, dtype=dtype)
    w = _weight(weight, batch, m, seed=s + 1, dtype=dtype)
    return Case(lambda x, **c: impl.spatiotemporal_consistency_loss(x, **c), [positions],
                dict(weight=w, order=order, reduction=reduction),
                lambda: [_scl_terms(_f64(positions), w, order, reduction)], reduction)


def sirenpose_case(reduction, weight, edge_weight=False, with_pos=True, dtype=torch.float64,
                   batch=BATCH, k=K, d=D, num_edges=24, index_dtype=torch.int64, omega0=30.0,
                   impl=spl):
    s = seed_of("sirenpose", reduction, weight, edge_weight, with_pos, batch, k, d, num_edges)
    # Normalised coordinates: the sine period at omega0 = 30 is ~0.21 units.
    pred = randn(*batch, k, d, seed=s, dtype=dtype, scale=0.1)
    target = randn(*batch, k, d, seed=s + 1, dtype=dtype, scale=0.1)
    ei = rand_edge_index(k, num_edges, seed=s + 2, dtype=index_dtype)
    w = _weight(weight, batch, k, seed=s + 3, dtype=dtype)
    ew = rand_weight(num_edges, seed=s + 4, dtype=dtype) if edge_weight else None
    loss = impl.sirenpose_loss if with_pos else impl.sin_graph_consistency_loss

    def terms():
        p, t = _f64(pred), _f64(target)
        geo = _geo_terms(p, t, ei, w, ew, omega0, 1.0, reduction)
        return [_match_terms(p, t, w, reduction), geo] if with_pos else [geo]
    return Case(lambda p, t, edge_index, **c: loss(p, t, edge_index, **c), [pred, target],
                dict(edge_index=ei, weight=w, edge_weight=ew, reduction=reduction, omega0=omega0),
                terms, reduction)


REDUCTIONS = ["mean", "sum", "none"]
WEIGHTS = ["none", "shared", "batch", "mask", "zero"]


def all_cases():
    for r in REDUCTIONS:
        for w in WEIGHTS:
            yield f"kml-{r}-{w}", lambda r=r, w=w, **kw: kml_case(r, w, **kw)
            for order in (1, 2):
                yield f"scl{order}-{r}-{w}", lambda r=r, w=w, o=order, **kw: scl_case(r, w, o, **kw)
            for ew in (False, True):
                for pos in (True, False):
                    yield (f"sirenpose-{r}-{w}-ew{int(ew)}-pos{int(pos)}",
                           lambda r=r, w=w, ew=ew, pos=pos, **kw: sirenpose_case(r, w, ew, pos, **kw))


CASES: Dict[str, Callable[..., Case]] = dict(all_cases())


def incoming_grads(outs, grad_dtype=None):
    """The seeded incoming gradient of each output, drawn in float64 and rounded to grad_dtype
    (default: the output's dtype), so runs in different dtypes can get equal ones."""
    return [randn(*o.shape, seed=7 + i, device=o.device).to(grad_dtype or o.dtype).to(o.dtype)
            for i, o in enumerate(outs)]


def outputs(fn, leaves, *, grad_dtype=None):
    """(detached outputs, gradients of the leaves, incoming gradients) after backpropagating
    the seeded incoming gradients through every output."""
    fresh = [x.detach().clone().requires_grad_(True) for x in leaves]
    out = fn(*fresh)
    outs = tuple(out) if isinstance(out, tuple) else (out,)
    grads_in = incoming_grads(outs, grad_dtype)
    pairs = [(o, g) for o, g in zip(outs, grads_in) if o.requires_grad]
    torch.autograd.backward([o for o, _ in pairs], [g for _, g in pairs])
    return [o.detach() for o in outs], [x.grad for x in fresh], grads_in


def assert_within(got, want, atol: float, rtol: float, what: str) -> None:
    """Elementwise |got - want| <= atol + rtol |want| (NaN only where want is NaN), compared in
    float64, with the worst element in the message."""
    assert got.shape == want.shape, f"{what}: shape {tuple(got.shape)} != {tuple(want.shape)}"
    g, w = got.detach().cpu().double(), want.detach().cpu().double()
    nan = w.isnan()
    assert torch.equal(g.isnan(), nan), f"{what}: NaN where the truth has none (or the reverse)"
    err = (g - w).abs().masked_fill(nan, 0)
    allowed = atol + rtol * w.abs().masked_fill(nan, 0)
    bad = err > allowed
    if bad.any():
        i = int((err - allowed).flatten().argmax())
        raise AssertionError(
            f"{what}: {int(bad.sum())} of {bad.numel()} elements outside the error bound; worst "
            f"at flat index {i}: got {g.flatten()[i].item():.9g}, truth {w.flatten()[i].item():.9g}, "
            f"|diff| {err.flatten()[i].item():.3g} > allowed {allowed.flatten()[i].item():.3g} "
            f"(atol {atol:.3g}, rtol {rtol:.3g})")


def check_against_truth(case: Case, got, truth, *, dtype, what: str) -> None:
    """got = outputs() of a run that stores values in dtype (with float arithmetic); truth =
    outputs() of the float64 run on the same rounded values and incoming gradients."""
    (outs, grads, _), (ref_outs, ref_grads, grads_in) = got, truth
    bound = case.bound(grads_in, dtype)
    rtol = 2 * UNIT_ROUNDOFF[dtype]  # the rounding of each stored result, with a margin
    assert len(outs) == len(ref_outs) == len(bound.out_atol), what
    for i, (o, r, atol) in enumerate(zip(outs, ref_outs, bound.out_atol)):
        assert o.dtype == dtype, f"{what} output {i}: dtype {o.dtype}, expected {dtype}"
        assert_within(o, r, atol, rtol, f"{what} output {i}")
    for i, (g, r, atol) in enumerate(zip(grads, ref_grads, bound.grad_atol)):
        assert g.dtype == dtype, f"{what} grad {i}: dtype {g.dtype}, expected {dtype}"
        assert_within(g, r, atol, rtol, f"{what} grad {i}")
