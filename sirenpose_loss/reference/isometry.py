"""Isometry (Dynamic 3D Gaussians): distances to neighbours keep their rest length. Plain PyTorch."""
from typing import Optional

import torch

from ._graph_terms import NORM_EPS, edge_offsets, penalised


def isometry_loss(positions: torch.Tensor, edge_index: torch.Tensor, rest_length: torch.Tensor, *,
                  edge_weight: Optional[torch.Tensor] = None, penalty: str = "squared",
                  reduction: str = "mean") -> torch.Tensor:
    """r = sqrt(||o_e,t||^2 + 1e-20) - d_e; terms [..., T, E]."""
    o = edge_offsets(positions, edge_index)
    r = torch.sqrt(o.pow(2).sum(-1) + NORM_EPS) - rest_length.to(o.dtype)
    return penalised(r * r, edge_weight, penalty, reduction)
