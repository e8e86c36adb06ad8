"""Rotation similarity loss (Dynamic 3D Gaussians): neighbouring Gaussians turn alike."""
from typing import Optional

import torch

from .. import _graph_ops
from ._graph_module import GraphLossModule
from .rigidity import rigidity_terms


def rotation_similarity_loss(quaternions: torch.Tensor, edge_index, *,
                             edge_weight: Optional[torch.Tensor] = None, penalty: str = "squared",
                             reduction: str = "mean") -> torch.Tensor:
    r"""Rotation similarity over a neighbour graph of Gaussians.

    .. math:: r_{e,t} = q_{j,t+1} \otimes q_{j,t}^{-1} - q_{i,t+1} \otimes q_{i,t}^{-1}

    4-vectors of the normalised quaternions, no sign fixing. ``quaternions [..., T, M, 4]``;
    other arguments as in :func:`local_rigidity_loss`; ``"none"`` gives ``[..., T-1, E]``.
    """
    loss, terms = rigidity_terms(None, quaternions, edge_index, None, edge_weight, penalty,
                                 reduction, _graph_ops.ROTATION)
    return terms[1] if loss is None else loss


class RotationSimilarityLoss(GraphLossModule):
    """Module form of :func:`rotation_similarity_loss`:
    ``forward(quaternions, edge_index, *, edge_weight=None)``."""

    def forward(self, quaternions: torch.Tensor, edge_index, *,
                edge_weight: Optional[torch.Tensor] = None) -> torch.Tensor:
        return rotation_similarity_loss(quaternions, edge_index, edge_weight=edge_weight,
                                        penalty=self.penalty, reduction=self.reduction)
