"""As-rigid-as-possible (ARAP) loss (SC-GS, MoSca): each centre's neighbourhood moves as a
rigid body away from its rest shape."""
from typing import Optional

import torch

from .. import _graph_ops
from .. import reference as _reference
from .._backend import COMPILED
from .._ops import NONE
from .._validation import reduction_code
from ._graph_inputs import Graph, check_frames
from ._graph_module import GraphLossModule


def _check_rest(rest, positions):
    if rest is None:
        return None
    if not isinstance(rest, torch.Tensor) or not rest.is_floating_point():
        raise TypeError(f"rest_positions must be a floating-point tensor of shape [..., M, 3] or "
                        f"[M, 3], got {type(rest).__name__ if not isinstance(rest, torch.Tensor) else rest.dtype}")
    batch_shape = (*positions.shape[:-3], *positions.shape[-2:])
    if tuple(rest.shape) not in (tuple(positions.shape[-2:]), batch_shape):
        raise ValueError(f"rest_positions must have shape {list(batch_shape)} or "
                         f"{list(positions.shape[-2:])}, got {list(rest.shape)}")
    if rest.device != positions.device:
        raise ValueError(f"rest_positions must be on the device of positions ({positions.device}), "
                         f"got {rest.device}")
    if rest.requires_grad:
        raise ValueError("rest_positions is a constant of the loss and must not require grad, got "
                         "a tensor that requires grad; pass rest_positions.detach()")
    return rest.to(positions.dtype)


def arap_loss(positions: torch.Tensor, edge_index, *,
              rest_positions: Optional[torch.Tensor] = None,
              edge_weight: Optional[torch.Tensor] = None, reduction: str = "mean") -> torch.Tensor:
    r"""ARAP energy over a neighbour graph.

    .. math:: r_{e,t} = o_{e,t} - R_{i,t} (X_j - X_i), \quad
              R_{i,t} = \arg\min_{R \in SO(3)} \sum_{e \ni i} w_e \lVert o_{e,t} - R (X_j - X_i) \rVert^2

    Terms ``w_e ||r||^2`` (``[..., T, E]`` with ``"none"``), mean over the total weight.

    Args:
        positions: ``[..., T, M, 3]``.
        edge_index, edge_weight: as in :func:`local_rigidity_loss`.
        rest_positions: the rest shape ``X``, ``[..., M, 3]`` or ``[M, 3]``, a constant; the
            first frame of ``positions`` (detached) when None.

    The rotation is solved per (frame, centre) in float64 (Horn's quaternion method: always a
    proper rotation) and held fixed in the backward, which is exact at the optimum. A centre
    with no weighted neighbours (S = 0) gets the identity; one whose neighbours are collinear
    gets one of its optimal rotations, chosen deterministically (the energy is the same for all).
    """
    code = reduction_code(reduction)
    check_frames(positions, "positions", 3)
    rest = _check_rest(rest_positions, positions)
    graph = Graph(edge_index, edge_weight, positions.shape[-2], positions)
    if not COMPILED:
        graph.check_values()
        return _reference.arap_loss(positions, graph.edge_index, rest_positions=rest,
                                    edge_weight=graph.edge_weight, reduction=reduction)
    incidence = graph.incidence()
    loss, terms = _graph_ops.arap(positions, graph.edge_index, rest, graph.edge_weight,
                                  incidence, code)
    return terms if code == NONE else loss


class ARAPLoss(GraphLossModule):
    """Module form of :func:`arap_loss`:
    ``forward(positions, edge_index, *, rest_positions=None, edge_weight=None)``."""

    def __init__(self, *, reduction: str = "mean"):
        super().__init__(penalty=None, reduction=reduction)

    def forward(self, positions: torch.Tensor, edge_index, *,
                rest_positions: Optional[torch.Tensor] = None,
                edge_weight: Optional[torch.Tensor] = None) -> torch.Tensor:
        return arap_loss(positions, edge_index, rest_positions=rest_positions,
                         edge_weight=edge_weight, reduction=self.reduction)
