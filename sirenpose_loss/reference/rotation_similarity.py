"""Rotation similarity (Dynamic 3D Gaussians): neighbours turn alike. Plain PyTorch."""
from typing import Optional

import torch

from ._graph_terms import edge_offsets, penalised, relative_rotations


def rotation_similarity_loss(quaternions: torch.Tensor, edge_index: torch.Tensor, *,
                             edge_weight: Optional[torch.Tensor] = None,
                             penalty: str = "squared", reduction: str = "mean") -> torch.Tensor:
    """r = q_j,t+1 ⊗ q_j,t^-1 - q_i,t+1 ⊗ q_i,t^-1 (4-vectors); terms [..., T-1, E]."""
    r = edge_offsets(relative_rotations(quaternions), edge_index)
    return penalised(r.pow(2).sum(-1), edge_weight, penalty, reduction)
