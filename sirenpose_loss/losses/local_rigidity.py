"""Local rigidity loss (Dynamic 3D Gaussians): a neighbour's offset, seen in the centre's own
rotating frame, stays the same between consecutive frames."""
from typing import Optional

import torch

from .. import _graph_ops
from ._graph_module import GraphLossModule
from .rigidity import rigidity_terms


def local_rigidity_loss(positions: torch.Tensor, quaternions: torch.Tensor, edge_index, *,
                        edge_weight: Optional[torch.Tensor] = None, penalty: str = "squared",
                        reduction: str = "mean") -> torch.Tensor:
    r"""Local rigidity over a neighbour graph of Gaussians.

    .. math:: r_{e,t} = R(q_{i,t+1} \otimes q_{i,t}^{-1})^\top o_{e,t+1} - o_{e,t},
              \quad o_{e,t} = x_{j,t} - x_{i,t}

    Args:
        positions: centres ``[..., T, M, 3]`` (T >= 2 for any term).
        quaternions: rotations ``[..., T, M, 4]`` (w, x, y, z), normalised inside the loss.
        edge_index: ``[2, E]`` (row 0 the neighbour j, row 1 the centre i, as ``knn_graph``
            returns) or a :class:`~sirenpose_loss.graphs.RigidityGraph` (its weights are then
            the default ``edge_weight``).
        edge_weight: optional ``[E]``, ``>= 0``.
        penalty: ``"squared"`` (``w ||r||^2``, mean over the total weight) or ``"norm"``
            (``sqrt(w ||r||^2 + 1e-20)``, mean over the number of terms: Dynamic 3D Gaussians'
            numbers with T = 2 and the previous frame detached).
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``[..., T-1, E]``).

    Gradients flow to positions and quaternions at both frames of every pair.
    """
    loss, terms = rigidity_terms(positions, quaternions, edge_index, None, edge_weight, penalty,
                                 reduction, _graph_ops.RIGID)
    return terms[0] if loss is None else loss


class LocalRigidityLoss(GraphLossModule):
    """Module form of :func:`local_rigidity_loss`:
    ``forward(positions, quaternions, edge_index, *, edge_weight=None)``."""

    def forward(self, positions: torch.Tensor, quaternions: torch.Tensor, edge_index, *,
                edge_weight: Optional[torch.Tensor] = None) -> torch.Tensor:
        return local_rigidity_loss(positions, quaternions, edge_index, edge_weight=edge_weight,
                                   penalty=self.penalty, reduction=self.reduction)
