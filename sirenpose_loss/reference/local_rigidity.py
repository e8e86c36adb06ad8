"""Local rigidity (Dynamic 3D Gaussians): a neighbour's offset, seen in the centre's rotating
frame, stays the same between consecutive frames. Plain PyTorch."""
from typing import Optional

import torch

from ._graph_terms import edge_offsets, endpoints, penalised, relative_rotations, rotation_matrix


def local_rigidity_loss(positions: torch.Tensor, quaternions: torch.Tensor,
                        edge_index: torch.Tensor, *, edge_weight: Optional[torch.Tensor] = None,
                        penalty: str = "squared", reduction: str = "mean") -> torch.Tensor:
    """r = R(q_i,t+1 ⊗ q_i,t^-1)^T o_e,t+1 - o_e,t; terms [..., T-1, E]."""
    _, i = endpoints(edge_index)
    rot = rotation_matrix(relative_rotations(quaternions))[..., i, :, :]  # [..., T-1, E, 3, 3]
    o = edge_offsets(positions, edge_index)                               # [..., T, E, 3]
    r = torch.einsum("...ba,...b->...a", rot, o[..., 1:, :, :]) - o[..., :-1, :, :]
    return penalised(r.pow(2).sum(-1), edge_weight, penalty, reduction)
