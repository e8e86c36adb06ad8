"""The five graph losses of Gaussians as test specs: how to build their inputs and call the
fused function or the reference with the same arguments. Shared by the test_<loss>.py files."""
from dataclasses import dataclass
from typing import Callable, Tuple

import torch

import sirenpose_loss as spl
from sirenpose_loss import reference as ref
from sirenpose_loss.graphs import rigidity_graph

from conftest import randn


@dataclass
class Problem:
    """Gaussians near random rest points, a k-NN graph over them, per-edge constants."""
    positions: torch.Tensor     # [*batch, T, M, 3]
    quaternions: torch.Tensor   # [*batch, T, M, 4], raw (not normalised)
    features: torch.Tensor      # [*batch, M, C]
    edge_index: torch.Tensor
    edge_weight: torch.Tensor
    rest_length: torch.Tensor
    rest_points: torch.Tensor   # [M, 3]


def problem(*, batch=(), T=3, M=24, k=5, C=4, seed=0, dtype=torch.float64, device="cpu",
            motion=0.05) -> Problem:
    rest = 0.5 * randn(M, 3, seed=seed)
    graph = rigidity_graph(rest, k, weight_lambda=20.0)
    x = rest + randn(*batch, T, M, 3, seed=seed + 1, scale=motion)
    q = randn(*batch, T, M, 4, seed=seed + 2)
    f = randn(*batch, M, C, seed=seed + 3)
    to = dict(device=device, dtype=dtype)
    return Problem(x.to(**to).requires_grad_(), q.to(**to).requires_grad_(),
                   f.to(**to).requires_grad_(), graph.edge_index.to(device),
                   graph.edge_weight.to(**to), graph.rest_length.to(**to), rest.to(**to))


@dataclass
class Spec:
    name: str
    leaves: Callable[[Problem], Tuple[torch.Tensor, ...]]   # the differentiable inputs
    call: Callable                                           # (impl, p, leaves, **kw) -> loss
    penalties: Tuple[str, ...] = ("squared", "norm")


def _kw(kw):
    return {k: v for k, v in kw.items() if not (k == "penalty" and v is None)}


SPECS = {
    "local_rigidity": Spec(
        "local_rigidity", lambda p: (p.positions, p.quaternions),
        lambda impl, p, xs, **kw: impl.local_rigidity_loss(xs[0], xs[1], p.edge_index, **_kw(kw))),
    "rotation_similarity": Spec(
        "rotation_similarity", lambda p: (p.quaternions,),
        lambda impl, p, xs, **kw: impl.rotation_similarity_loss(xs[0], p.edge_index, **_kw(kw))),
    "isometry": Spec(
        "isometry", lambda p: (p.positions,),
        lambda impl, p, xs, **kw: impl.isometry_loss(xs[0], p.edge_index, p.rest_length,
                                                     **_kw(kw))),
    "arap": Spec(
        "arap", lambda p: (p.positions,),
        lambda impl, p, xs, penalty=None, **kw: impl.arap_loss(
            xs[0], p.edge_index, rest_positions=p.rest_points, **kw),
        penalties=(None,)),
    "graph_smoothness": Spec(
        "graph_smoothness", lambda p: (p.features,),
        lambda impl, p, xs, **kw: impl.graph_smoothness_loss(xs[0], p.edge_index, **_kw(kw))),
}

# (spec, penalty) pairs: every loss under each of its penalties.
CASES = [(name, pen) for name, spec in SPECS.items() for pen in spec.penalties]


def fns(spec: Spec, p: Problem, **kw):
    """(fused, reference) as functions of the leaves."""
    return (lambda *xs: spec.call(spl, p, xs, **kw), lambda *xs: spec.call(ref, p, xs, **kw))
