"""Isometry loss (Dynamic 3D Gaussians): distances to neighbours keep their rest length."""
from typing import Optional

import torch

from .. import _graph_ops
from ._graph_module import GraphLossModule
from .rigidity import rigidity_terms


def isometry_loss(positions: torch.Tensor, edge_index, rest_length: Optional[torch.Tensor] = None,
                  *, edge_weight: Optional[torch.Tensor] = None, penalty: str = "squared",
                  reduction: str = "mean") -> torch.Tensor:
    r"""Isometry over a neighbour graph of Gaussians.

    .. math:: r_{e,t} = \sqrt{\lVert o_{e,t} \rVert^2 + 10^{-20}} - d_e

    ``positions [..., T, M, 3]``; ``rest_length`` ``[E]`` (the graph's when ``edge_index`` is a
    :class:`~sirenpose_loss.graphs.RigidityGraph` and it is None); other arguments as in
    :func:`local_rigidity_loss`; ``"none"`` gives ``[..., T, E]``.
    """
    loss, terms = rigidity_terms(positions, None, edge_index, rest_length, edge_weight, penalty,
                                 reduction, _graph_ops.ISOMETRY)
    return terms[2] if loss is None else loss


class IsometryLoss(GraphLossModule):
    """Module form of :func:`isometry_loss`:
    ``forward(positions, edge_index, rest_length=None, *, edge_weight=None)``."""

    def forward(self, positions: torch.Tensor, edge_index,
                rest_length: Optional[torch.Tensor] = None, *,
                edge_weight: Optional[torch.Tensor] = None) -> torch.Tensor:
        return isometry_loss(positions, edge_index, rest_length, edge_weight=edge_weight,
                             penalty=self.penalty, reduction=self.reduction)
