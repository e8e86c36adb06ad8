"""The contract table: one ``LossCase`` per loss. Every check in ``test_contract.py`` runs on
every entry, for every kernel path it lists and every reduction.

Adding a loss
-------------
Append ONE ``LossCase`` to ``CASES`` below; no test code changes. Its fields:

``name``
    the test-id prefix (``test_contract.py::...[<name>-<path>-<reduction>]``).
``fn``, ``reference``, ``module`` (optional), ``module_inputs``
    the fused functional, its ``sirenpose_loss.reference`` twin and its ``nn.Module``. All are
    called with keyword arguments: ``fn(**inputs, **path.options, reduction=...)``; the module
    is built as ``module(*[inputs[n] for n in module_inputs], **path.options, reduction=...)``
    and called with the remaining inputs by keyword.
``build(seed, **size)``
    returns the named tensors of one call in float64 on the CPU (any names: ``positions``,
    ``quaternions``, ``edge_index`` ...), random and never exactly zero (``conftest.randn``).
    Floating tensors are converted to the dtype under test; integer ones are left alone.
``differentiable``
    the input names that get gradients (each is also checked alone).
``weights``
    the optional constant per-row weights: name -> ``rows(inputs) -> (batch shape, R)``. A
    ``Path`` asks for them as ``"shared"`` (``[R]``), ``"batch"`` (``[..., R]``) or ``"mask"``
    (bool). A per-edge weight ``[E]`` is ``lambda x: ((), x["edge_index"].shape[1])`` with kind
    ``"shared"``.
``paths``
    one ``Path(id, options, weights)`` per kernel fast path: read ``csrc/<loss>/<loss>_cpu.cpp``
    and list every branch the kernels take (weighted or not, shared or per-batch weight, each
    plain option value that selects other code such as ``order`` or a ``penalty``).
``sizes``
    ``reference``: a list of at least three sizes (each a ``build`` keyword dict) for the
    float64 checks; cover no batch, several batch dims, each specialised coordinate count and
    more than one work chunk (the third one also serves the checks that take one size). ``low_precision``: sizes whose sums stay inside float16's range. ``tiny``: gradcheck,
    opcheck, torch.compile and the bad-input table. ``threads``: large enough that each thread
    count from 1 to 4 gets its own tasks (see the comment at each entry: chunk size and grain
    come from ``csrc/common/reduction.h`` and the kernel's ``k*PerChunk``). ``empty``: sizes with
    no terms at all. ``ten_million`` (optional): a float32 loss over 10^7 terms.
``perfect(inputs)``
    inputs with a zero loss and a zero gradient (prediction == target, or a static/rigid
    motion), built from the random ones.
``gradcheck_reductions`` (optional)
    the reductions whose gradient is the exact derivative of the output; ARAP holds its
    solved rotation fixed, which is exact for the reduced energy but not for one "none" term.
``perfect_atol`` (optional)
    ``perfect_atol(options) -> (term, gradient)``: the bounds at a ``perfect`` input when it
    cannot be exactly 0 (the norm penalty's 1e-10 floor, rounding of a rotation or a length).
``nonfinite`` (optional)
    the NaN/Inf values checked against the reference; () where the reference refuses them.
``bad``
    ``Bad(id, change, exception, regex)`` rows: ``change`` turns the valid keyword arguments of
    the ``tiny`` size into invalid ones. The regex names the argument and the message must say
    what was given ("got"). ``harness.points_bad``, ``harness.weight_bad`` and
    ``harness.REDUCTION_BAD`` give the shared rows.
"""
import re

import torch

import sirenpose_loss as spl
from sirenpose_loss import reference as ref

from conftest import rand_edge_index, rand_weight, randn
from contract.harness import (REDUCTION_BAD, Bad, LossCase, Path, points_bad, replaced,
                              weight_bad)


def _tensor(*rows, dtype=torch.int64):
    return torch.tensor(rows, dtype=dtype)


# ------------------------------------------------------------------------ shared pieces
def _pair(seed, batch, K, D, scale=1.0):
    return dict(pred=randn(*batch, K, D, seed=seed, scale=scale),
                target=randn(*batch, K, D, seed=seed + 1, scale=scale))


def _keypoint_rows(x):
    return x["pred"].shape[:-2], x["pred"].shape[-2]


def _prediction_is_target(x):
    return {**x, "target": x["pred"].detach().clone()}


PAIR_LAYOUT = "[..., K, D]"
PAIR_BAD = (
    *points_bad("pred", PAIR_LAYOUT, 2), *points_bad("target", PAIR_LAYOUT, 2),
    Bad("pair-shape", replaced("target", lambda t: t[..., :-1, :]), ValueError,
        r"pred and target must have the same shape \[\.\.\., K, D\], got \[\d+(, \d+)*\] and"),
    Bad("pair-dtype", replaced("target", lambda t: t.float()), TypeError,
        r"pred and target must have the same dtype, got torch\.float64 and torch\.float32"),
    Bad("pair-device", replaced("target", lambda t: t.to("meta")), ValueError,
        r"pred and target must be on the same device, got cpu and meta"),
)


# ------------------------------------------------------------------------ keypoint match
KML_TINY = dict(batch=(2,), K=3, D=2)
KEYPOINT_MATCH = LossCase(
    name="kml",
    fn=spl.keypoint_match_loss, reference=ref.keypoint_match_loss,
    module=spl.KeypointMatchLoss,
    build=_pair,
    differentiable=("pred", "target"),
    weights={"weight": _keypoint_rows},
    # kml_fwd_rows / kml_bwd_rows: a flat loop when unweighted and reduced, the per-row loop
    # otherwise; a shared weight has batch stride 0.
    paths=(Path("plain"), Path("weight-batch", weights={"weight": "batch"}),
           Path("weight-shared", weights={"weight": "shared"}),
           Path("mask", weights={"weight": "mask"})),
    sizes=dict(
        reference=[dict(batch=(), K=5, D=1), dict(batch=(3,), K=5, D=2),
                   dict(batch=(2, 3), K=7, D=3), dict(batch=(7,), K=1001, D=4, scale=3.0)],
        low_precision=[dict(batch=(4,), K=17, D=3), dict(batch=(), K=33, D=2)],
        tiny=KML_TINY,
        # 4096 rows per chunk; grain 2^18 / (4096 * 3) = 21 chunks per task: 96 chunks.
        threads=dict(batch=(96,), K=4096, D=3),
        empty=[dict(batch=(), K=0, D=3), dict(batch=(4,), K=0, D=3),
               dict(batch=(0,), K=5, D=2)],
        ten_million=dict(batch=(10,), K=1_000_000, D=1),
    ),
    perfect=_prediction_is_target,
    bad=(*PAIR_BAD, *weight_bad("weight", "[..., K]", KML_TINY["K"]), *REDUCTION_BAD),
)


# ------------------------------------------------------------ spatio-temporal consistency
def _tracks(seed, batch, T, M, D, scale=1.0):
    return dict(positions=randn(*batch, T, M, D, seed=seed, scale=scale))


def _static(x):
    p = x["positions"].detach()
    return {**x, "positions": p[..., :1, :, :].expand_as(p).clone()}


SCL_TINY = dict(batch=(2,), T=5, M=3, D=2)
SCL_LAYOUT = "[..., T, M, D]"
SPATIOTEMPORAL_CONSISTENCY = LossCase(
    name="scl",
    fn=spl.spatiotemporal_consistency_loss, reference=ref.spatiotemporal_consistency_loss,
    module=spl.SpatioTemporalConsistencyLoss,
    build=_tracks,
    differentiable=("positions",),
    weights={"weight": lambda x: (x["positions"].shape[:-3], x["positions"].shape[-2])},
    # scl_fwd_flat / scl_bwd_flat (float arithmetic for float32 and half) when unweighted and
    # reduced; scl_fwd_chunk / scl_bwd_chunk otherwise, specialised for D = 2, 3 and generic D;
    # each for order 1 and order 2.
    paths=tuple(Path(f"order{o}-{w or 'plain'}", {"order": o}, {"weight": w} if w else {})
                for o in (1, 2) for w in (None, "batch", "shared")),
    sizes=dict(
        reference=[dict(batch=(), T=6, M=7, D=1), dict(batch=(3,), T=7, M=5, D=2),
                   dict(batch=(2, 3), T=6, M=4, D=3), dict(batch=(2,), T=8, M=6, D=4),
                   dict(batch=(), T=3, M=1, D=3), dict(batch=(3,), T=9, M=2500, D=3)],
        low_precision=[dict(batch=(2,), T=6, M=17, D=3), dict(batch=(), T=7, M=9, D=2)],
        tiny=SCL_TINY,
        # 1024 Gaussians per chunk; grain 2^18 / (15 * 1024 * 3) = 5 chunks per task (6 for
        # order 2, backward 5): 4 * 5 = 20 chunks.
        threads=dict(batch=(4,), T=16, M=5000, D=3),
        empty=[dict(batch=(), T=0, M=4, D=3), dict(batch=(), T=1, M=4, D=3),
               dict(batch=(), T=5, M=0, D=3), dict(batch=(0,), T=5, M=4, D=3)],
        ten_million=dict(batch=(), T=11, M=1_000_000, D=1),
    ),
    perfect=_static,
    bad=(*points_bad("positions", SCL_LAYOUT, 3),
         *weight_bad("weight", "[..., M]", SCL_TINY["M"]),
         *(Bad(f"order-{v!r}", replaced("order", lambda _, v=v: v), ValueError,
               rf"order must be 1 \(velocity\) or 2 \(acceleration\), got {re.escape(repr(v))}")
           for v in (0, 3, True, 1.5)),
         *REDUCTION_BAD),
)


# ------------------------------------------------------------------ sine graph / SirenPose
def _graph_pair(seed, batch, K, E, D, scale=0.1):
    # Normalised coordinates: the sine period at omega0 = 30 is about 0.21.
    return {**_pair(seed, batch, K, D, scale), "edge_index": rand_edge_index(K, E, seed=seed + 2)}


GRAPH_TINY = dict(batch=(2,), K=4, E=6, D=2)
EDGE_RANGE = r"edge_index values must be in \[0, 4\) \(K = 4 keypoints\), got"
GRAPH_BAD = (
    *PAIR_BAD,
    Bad("edge_index-list", replaced("edge_index", lambda e: e.tolist()), TypeError,
        r"edge_index must be a torch\.Tensor of shape \[2, E\] or a KeypointGraph, got list"),
    *(Bad(f"edge_index-{dt}", replaced("edge_index", lambda e, dt=dt: e.to(getattr(torch, dt))),
          TypeError, rf"edge_index must be an int64 \(or int32\) tensor, got dtype torch\.{dt}")
      for dt in ("float32", "bool", "int16")),
    *(Bad(f"edge_index-shape{i}", replaced("edge_index", f), ValueError,
          r"edge_index must have shape \[2, E\], got \[")
      for i, f in enumerate((lambda e: e[0], lambda e: e.t().contiguous(), lambda e: e[None],
                             lambda e: torch.cat([e, e[:1]])))),
    Bad("edge_index-device", replaced("edge_index", lambda e: e.to("meta")), ValueError,
        r"edge_index must be on the same device as pred \(cpu\), got meta"),
    *(Bad(f"edge_index-range{i}", replaced("edge_index", lambda _, e=e: e), IndexError, EDGE_RANGE)
      for i, e in enumerate((_tensor([0, 1, 4], [1, 2, 3]), _tensor([0, 1], [1, -1]),
                             _tensor([0, 2**40], [1, 2]),
                             _tensor([0, 1], [7, 2], dtype=torch.int32)))),
    *weight_bad("weight", "[..., K]", GRAPH_TINY["K"]),
    *weight_bad("edge_weight", "[E]", GRAPH_TINY["E"]),
    *(Bad(f"omega0-{v!r}", replaced("omega0", lambda _, v=v: v), ValueError,
          rf"omega0 must be a positive finite number, got {re.escape(repr(v))}")
      for v in (0.0, -30, float("nan"), float("inf"), "30", True)),
    *REDUCTION_BAD,
)
GRAPH_WEIGHTS = {"weight": _keypoint_rows,
                 "edge_weight": lambda x: ((), x["edge_index"].shape[1])}
# sirenpose_fwd_cpu / sirenpose_bwd_cpu: keypoint weights absent, per batch or shared (batch
# stride 0), edge weights absent or given, per-term (none) or reduced incoming gradients; the
# graph term alone is the same kernels with with_pos = False.
GRAPH_PATHS = (
    Path("plain"),
    Path("weight-batch", {"omega0": 7.0}, {"weight": "batch"}),
    Path("weight-shared-edge", {"omega0": 30.0}, {"weight": "shared", "edge_weight": "shared"}),
    Path("edge-weight", {}, {"edge_weight": "shared"}),
    Path("mask", {"omega0": 100.0}, {"weight": "mask"}),
)
GRAPH_SIZES = dict(
    reference=[dict(batch=(), K=6, E=11, D=1), dict(batch=(3,), K=6, E=11, D=2),
               dict(batch=(2, 3), K=7, E=9, D=4), dict(batch=(5,), K=61, E=700, D=3, scale=0.5),
               dict(batch=(300,), K=17, E=30, D=2)],
    low_precision=[dict(batch=(3,), K=9, E=20, D=2), dict(batch=(), K=20, E=300, D=3)],
    tiny=GRAPH_TINY,
    # 4096 keypoints + edges per chunk, here one batch entry each; grain
    # 2^18 / (8000 * 3) = 10 chunks per task: 40 chunks.
    threads=dict(batch=(40,), K=2000, E=6000, D=3),
    empty=[dict(batch=(), K=0, E=0, D=3), dict(batch=(0,), K=5, E=4, D=2),
           dict(batch=(2, 0), K=5, E=3, D=2)],
)


def _graph_case(name, fn, reference, module, *, paths, sizes, bad):
    return LossCase(name=name, fn=fn, reference=reference, module=module, build=_graph_pair,
                    differentiable=("pred", "target"), weights=GRAPH_WEIGHTS, paths=paths,
                    sizes=sizes, perfect=_prediction_is_target, bad=bad,
                    module_inputs=("edge_index",))


SIN_GRAPH_CONSISTENCY = _graph_case(
    "sgc", spl.sin_graph_consistency_loss, ref.sin_graph_consistency_loss,
    spl.SinGraphConsistencyLoss, paths=GRAPH_PATHS, bad=GRAPH_BAD,
    sizes={**GRAPH_SIZES, "empty": [*GRAPH_SIZES["empty"], dict(batch=(3,), K=5, E=0, D=3)],
           "ten_million": dict(batch=(10,), K=100, E=1_000_000, D=1)})

SIRENPOSE = _graph_case(
    "sirenpose", spl.sirenpose_loss, ref.sirenpose_loss, spl.SirenPoseLoss,
    paths=tuple(Path(p.id, {**p.options, "lambda_geo": lam}, p.weights)
                for p, lam in zip(GRAPH_PATHS, (1.0, 0.37, 0.0, 2.5, 1.0))),
    sizes=GRAPH_SIZES,
    bad=(*GRAPH_BAD,
         *(Bad(f"lambda_geo-{v!r}", replaced("lambda_geo", lambda _, v=v: v), ValueError,
               rf"lambda_geo must be a non-negative finite number, got {re.escape(repr(v))}")
           for v in (-0.5, float("nan"), float("inf")))),
)



# ------------------------------------------------------------- neighbour graphs of Gaussians
def gaussian_graph(*names):
    """build(seed, batch, T, M, E, C, rest) returning the inputs `names` of: Gaussians near
    random rest points (positions [..., T, M, 3]), raw quaternions [..., T, M, 4], features
    [..., M, C], random edges, rest lengths and the rest shape ``rest``: "shared" ([M, 3]),
    "batch" ([..., M, 3]) or None (absent: the first frame)."""
    def build(seed, batch, T, M, E, C=3, rest="shared"):
        X = 0.5 * randn(M, 3, seed=seed)
        rest_positions = {"shared": X, None: None,
                          "batch": X + randn(*batch, M, 3, seed=seed + 6, scale=0.01)}[rest]
        x = dict(positions=X + randn(*batch, T, M, 3, seed=seed + 1, scale=0.05),
                 quaternions=randn(*batch, T, M, 4, seed=seed + 2),
                 features=randn(*batch, M, C, seed=seed + 3),
                 edge_index=rand_edge_index(M, E, seed=seed + 4),
                 rest_length=0.5 * rand_weight(E, seed=seed + 5),
                 rest_positions=rest_positions)
        return {n: x[n] for n in names if x[n] is not None}
    return build


def _still(x):
    """Every residual exactly 0: static Gaussians at the same dyadic points (exact offsets) in
    every batch entry, all sharing one rotation; rest lengths and rest shape their own."""
    out = dict(x)
    if "positions" in x:
        p = x["positions"].detach()
        base = torch.round(p.reshape(-1, *p.shape[-2:])[0] * 64) / 64
        out["positions"] = base.expand_as(p).clone()
        j, i = x["edge_index"]
        if "rest_length" in x:   # the loss's own edge length, sqrt(||o||^2 + 1e-20)
            out["rest_length"] = torch.sqrt((base[j] - base[i]).pow(2).sum(-1) + 1e-20)
        if "rest_positions" in x:
            out["rest_positions"] = base.expand_as(x["rest_positions"]).clone()
    for name in ("quaternions", "features"):
        if name in x:
            t = x[name].detach()
            out[name] = t.reshape(-1, t.shape[-1])[:1].expand_as(t).clone()
    return out


def _exact_zero(options):
    """Residuals exactly 0; the norm penalty keeps sqrt(w * 0 + 1e-20) per term."""
    return (1.000001e-10, 0.0) if options.get("penalty") == "norm" else (0.0, 0.0)


def _rounded_zero(options):
    """Residuals of one rounding (~1e-16, from a normalised relative rotation or an edge
    length): squared terms ~1e-32; the norm penalty's gradient divides them by its 1e-10
    floor."""
    return (1.000001e-10, 1e-4) if options.get("penalty") == "norm" else (1e-28, 1e-12)


GAUSSIAN_TINY = dict(batch=(2,), T=3, M=5, E=8, C=2)
GAUSSIAN_EDGE_WEIGHT = {"edge_weight": lambda x: ((), x["edge_index"].shape[1])}
# Each kernel (rigidity, graph_smoothness) branches on the penalty and on whether an edge
# weight is given; ARAP has no penalty.
GAUSSIAN_PATHS = tuple(Path(f"{pen}-{'weighted' if w else 'plain'}", {"penalty": pen},
                            {"edge_weight": "shared"} if w else {})
                       for pen in ("squared", "norm") for w in (False, True))
GAUSSIAN_SIZES = dict(
    reference=[dict(batch=(), T=2, M=7, E=15), dict(batch=(3,), T=4, M=9, E=20),
               dict(batch=(2, 2), T=3, M=12, E=30), dict(batch=(2,), T=3, M=400, E=2100)],
    low_precision=[dict(batch=(2,), T=3, M=20, E=60), dict(batch=(), T=2, M=9, E=25)],
    tiny=GAUSSIAN_TINY,
    # 2048 edges per chunk, grain 2^18 / (2048 * 16) = 8 chunks per task (graph smoothness:
    # 2^18 / (2048 * 3 * 4) = 10): 32 chunks of edges per frame.
    threads=dict(batch=(), T=2, M=4000, E=65536),
    empty=[dict(batch=(), T=3, M=6, E=0), dict(batch=(2,), T=2, M=0, E=0),
           dict(batch=(0,), T=3, M=6, E=5), dict(batch=(), T=0, M=6, E=5)],
)
GAUSSIAN_EDGE_RANGE = r"values must be in \[0, 5\).*stale"


def _frames_bad(name, channels):
    layout = f"[..., T, M, {channels}]"
    return (*points_bad(name, layout, 3)[:3],
            Bad(f"{name}-channels", replaced(name, lambda t: t[..., :-1]), ValueError,
                rf"{name} must have shape {re.escape(layout)}, got shape"))


GAUSSIAN_GRAPH_BAD = (
    Bad("edge_index-float", replaced("edge_index", lambda e: e.double()), TypeError,
        r"edge_index must be an int64 .*got dtype torch\.float64"),
    Bad("edge_index-shape", replaced("edge_index", lambda e: e[0]), ValueError,
        r"edge_index must have shape \[2, E\], got"),
    Bad("edge_index-stale", replaced("edge_index", lambda e: e + 5), IndexError,
        GAUSSIAN_EDGE_RANGE),
    Bad("edge_index-negative", replaced("edge_index", lambda e: e - 5), IndexError,
        GAUSSIAN_EDGE_RANGE),
    *weight_bad("edge_weight", "[E]", GAUSSIAN_TINY["E"]),
    *REDUCTION_BAD,
)
PENALTY_BAD = (Bad("penalty", replaced("penalty", lambda _: "l1"), ValueError,
                   r"penalty must be 'squared' or 'norm', got 'l1'"),)
QUATERNIONS_BAD = (
    *_frames_bad("quaternions", 4),
    Bad("quaternions-M", replaced("quaternions", lambda q: q[..., :4, :]), ValueError,
        r"quaternions must have the leading shape .* got"),
    Bad("quaternions-dtype", replaced("quaternions", lambda q: q.float()), TypeError,
        r"quaternions must have the dtype of positions .* got"),
)


def _gaussian_case(name, fn, reference, module, inputs, differentiable, *, bad, **kw):
    kw.setdefault("paths", GAUSSIAN_PATHS)
    kw.setdefault("perfect_atol", _exact_zero)
    return LossCase(name=name, fn=fn, reference=reference, module=module,
                    build=gaussian_graph(*inputs), differentiable=differentiable,
                    weights=GAUSSIAN_EDGE_WEIGHT, sizes=kw.pop("sizes", GAUSSIAN_SIZES),
                    perfect=_still, bad=(*bad, *GAUSSIAN_GRAPH_BAD), **kw)


LOCAL_RIGIDITY = _gaussian_case(
    "local_rigidity", spl.local_rigidity_loss, ref.local_rigidity_loss, spl.LocalRigidityLoss,
    ("positions", "quaternions", "edge_index"), ("positions", "quaternions"),
    sizes={**GAUSSIAN_SIZES, "empty": [*GAUSSIAN_SIZES["empty"], dict(batch=(2,), T=1, M=6, E=5)]},
    perfect_atol=_rounded_zero,
    bad=(*_frames_bad("positions", 3), *QUATERNIONS_BAD, *PENALTY_BAD))

ROTATION_SIMILARITY = _gaussian_case(
    "rotation_similarity", spl.rotation_similarity_loss, ref.rotation_similarity_loss,
    spl.RotationSimilarityLoss, ("quaternions", "edge_index"), ("quaternions",),
    sizes={**GAUSSIAN_SIZES, "empty": [*GAUSSIAN_SIZES["empty"], dict(batch=(2,), T=1, M=6, E=5)]},
    bad=(*_frames_bad("quaternions", 4), *PENALTY_BAD))

ISOMETRY = _gaussian_case(
    "isometry", spl.isometry_loss, ref.isometry_loss, spl.IsometryLoss,
    ("positions", "edge_index", "rest_length"), ("positions",), perfect_atol=_rounded_zero,
    bad=(*_frames_bad("positions", 3), *PENALTY_BAD,
         Bad("rest_length-missing", replaced("rest_length", lambda _: None), ValueError,
             r"rest_length must be a tensor .* got None"),
         Bad("rest_length-shape", replaced("rest_length", lambda d: d[:3]), ValueError,
             rf"rest_length must have shape \[E\] = \[{GAUSSIAN_TINY['E']}\].* got")))

ARAP = _gaussian_case(
    "arap", spl.arap_loss, ref.arap_loss, spl.ARAPLoss,
    ("positions", "edge_index", "rest_positions"), ("positions",),
    paths=(Path("plain"), Path("weighted", weights={"edge_weight": "shared"})),
    # The rest shape is an input: given [M, 3] or [..., M, 3], or absent (the first frame).
    sizes={**GAUSSIAN_SIZES,
           "reference": [dict(batch=(), T=2, M=7, E=15, rest=None),
                         dict(batch=(3,), T=4, M=9, E=20, rest="batch"),
                         dict(batch=(2, 2), T=3, M=12, E=30),
                         dict(batch=(2,), T=3, M=400, E=2100, rest=None)],
           "tiny": {**GAUSSIAN_TINY, "rest": "batch"}},
    # The rotation is solved in floating point (and held fixed in the backward: exact for the
    # reduced energy, which is stationary in it, not for a single "none" term).
    gradcheck_reductions=("mean", "sum"),
    perfect_atol=_rounded_zero,
    nonfinite=(),   # the reference's SVD refuses non-finite input
    bad=(*_frames_bad("positions", 3),
         Bad("rest_positions-shape", replaced("rest_positions", lambda _: torch.zeros(4, 3)),
             ValueError, r"rest_positions must have shape .* got"),
         Bad("rest_positions-grad",
             replaced("rest_positions",
                      lambda _: torch.zeros(5, 3, dtype=torch.float64, requires_grad=True)),
             ValueError, r"rest_positions is a constant of the loss and must not require grad")))

GRAPH_SMOOTHNESS = _gaussian_case(
    "graph_smoothness", spl.graph_smoothness_loss, ref.graph_smoothness_loss,
    spl.GraphSmoothnessLoss, ("features", "edge_index"), ("features",),
    sizes={**GAUSSIAN_SIZES,
           "reference": [dict(batch=(), T=1, M=7, E=15, C=1), dict(batch=(3,), T=1, M=9, E=20),
                         dict(batch=(2, 2), T=1, M=12, E=30, C=16),
                         dict(batch=(2,), T=1, M=400, E=2100, C=4)],
           "empty": [dict(batch=(), T=1, M=6, E=0), dict(batch=(2,), T=1, M=0, E=0),
                     dict(batch=(0,), T=1, M=6, E=5)]},
    bad=(*points_bad("features", "[..., M, C]", 2), *PENALTY_BAD))

GAUSSIAN_CASES = (LOCAL_RIGIDITY, ROTATION_SIMILARITY, ISOMETRY, ARAP, GRAPH_SMOOTHNESS)
CASES = (KEYPOINT_MATCH, SPATIOTEMPORAL_CONSISTENCY, SIN_GRAPH_CONSISTENCY, SIRENPOSE,
         *GAUSSIAN_CASES)
