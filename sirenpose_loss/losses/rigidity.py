"""The Dynamic 3D Gaussians motion trio (local rigidity, rotation similarity, isometry) on one
fused kernel, and ``RigidityLoss``, their weighted sum with the terms returned for logging."""
from typing import NamedTuple, Optional

import torch

from .. import _graph_ops
from .. import reference as _reference
from .._backend import COMPILED
from .._ops import NONE
from .._validation import check_nonnegative, check_nonnegative_number, reduction_code
from ._graph_inputs import Graph, check_frames, penalty_code

TERM_NAMES = ("rigid", "rotation", "isometry")


class RigidityOutput(NamedTuple):
    """``RigidityLoss(..., return_terms=True)``: the loss and its detached reduced terms."""
    loss: torch.Tensor
    rigid: torch.Tensor
    rotation: torch.Tensor
    isometry: torch.Tensor


class RigidityTerms(NamedTuple):
    """``RigidityLoss`` with reduction "none": per-term values of each term."""
    rigid: torch.Tensor      # [..., T-1, E]
    rotation: torch.Tensor   # [..., T-1, E]
    isometry: torch.Tensor   # [..., T, E]


def _reference_terms(positions, quaternions, graph, rest_length, penalty, reduction, terms):
    edge_index, ew = graph.edge_index, graph.edge_weight
    out = [None, None, None]
    if terms & _graph_ops.RIGID:
        out[0] = _reference.local_rigidity_loss(positions, quaternions, edge_index, edge_weight=ew,
                                                penalty=penalty, reduction=reduction)
    if terms & _graph_ops.ROTATION:
        out[1] = _reference.rotation_similarity_loss(quaternions, edge_index, edge_weight=ew,
                                                     penalty=penalty, reduction=reduction)
    if terms & _graph_ops.ISOMETRY:
        out[2] = _reference.isometry_loss(positions, edge_index, rest_length, edge_weight=ew,
                                          penalty=penalty, reduction=reduction)
    return out


def rigidity_terms(positions, quaternions, edge_index, rest_length, edge_weight, penalty,
                   reduction, terms: int, lambdas=(1.0, 1.0, 1.0)):
    """Checks the inputs and runs the fused trio. Returns (loss, [rigid, rotation, isometry]):
    reduced terms (mean/sum; ``loss = sum lambda_k term_k``) or per-term tensors (none, loss
    None); terms not asked for are None."""
    code = reduction_code(reduction)
    pen = penalty_code(penalty)
    like = None
    if positions is not None or terms & (_graph_ops.RIGID | _graph_ops.ISOMETRY):
        like = check_frames(positions, "positions", 3)
    if quaternions is not None or terms & (_graph_ops.RIGID | _graph_ops.ROTATION):
        quaternions = check_frames(quaternions, "quaternions", 4, like)
        like = quaternions if like is None else like
    graph = Graph(edge_index, edge_weight, like.shape[-2], like)
    rest = graph.rest_length(rest_length, like) if terms & _graph_ops.ISOMETRY else None
    if not COMPILED:
        graph.check_values()
        check_nonnegative(graph.edge_weight, "edge_weight")
        out = _reference_terms(positions, quaternions, graph, rest, penalty, reduction, terms)
        if code == NONE:
            return None, out
        loss = sum(lam * t for lam, t in zip(lambdas, out) if t is not None)
        return loss, out
    incidence = graph.incidence()
    loss, *out = _graph_ops.rigidity(positions, quaternions, graph.edge_index, rest,
                                     graph.edge_weight, incidence, [float(x) for x in lambdas],
                                     terms, pen, code)
    out = [t if terms >> k & 1 else None for k, t in enumerate(out)]
    return (None if code == NONE else loss), out


class RigidityLoss(torch.nn.Module):
    r"""Dynamic 3D Gaussians' motion regulariser on one fused kernel:
    ``lambda_rigid * L_rigid + lambda_rotation * L_rotation + lambda_isometry * L_isometry``
    (defaults 4, 4, 2, theirs), each term reduced over its own terms first.

    ``forward(positions, quaternions, edge_index, rest_length=None, *, edge_weight=None,
    return_terms=False)``: ``edge_index`` may be a :class:`~sirenpose_loss.graphs.RigidityGraph`
    (its weights and rest lengths are then the defaults). Returns the loss, or with
    ``return_terms=True`` a :class:`RigidityOutput` with the detached reduced terms for logging.
    With reduction ``"none"`` it returns :class:`RigidityTerms`. ``penalty="norm"`` gives
    Dynamic 3D Gaussians' numbers (see :func:`local_rigidity_loss`).
    """

    def __init__(self, *, lambda_rigid: float = 4.0, lambda_rotation: float = 4.0,
                 lambda_isometry: float = 2.0, penalty: str = "squared", reduction: str = "mean"):
        super().__init__()
        reduction_code(reduction)
        penalty_code(penalty)
        self.lambdas = tuple(check_nonnegative_number(v, n) for v, n in (
            (lambda_rigid, "lambda_rigid"), (lambda_rotation, "lambda_rotation"),
            (lambda_isometry, "lambda_isometry")))
        self.penalty, self.reduction = penalty, reduction

    def forward(self, positions: torch.Tensor, quaternions: torch.Tensor, edge_index,
                rest_length: Optional[torch.Tensor] = None, *,
                edge_weight: Optional[torch.Tensor] = None, return_terms: bool = False):
        loss, terms = rigidity_terms(positions, quaternions, edge_index, rest_length, edge_weight,
                                     self.penalty, self.reduction, 7, self.lambdas)
        if self.reduction == "none":
            return RigidityTerms(*terms)
        if not return_terms:
            return loss
        return RigidityOutput(loss, *(t.detach() for t in terms))

    def extra_repr(self) -> str:
        return (f"lambda_rigid={self.lambdas[0]}, lambda_rotation={self.lambdas[1]}, "
                f"lambda_isometry={self.lambdas[2]}, penalty={self.penalty!r}, "
                f"reduction={self.reduction!r}")
