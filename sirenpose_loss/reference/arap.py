"""As-rigid-as-possible (ARAP) energy: each centre's neighbourhood moves as a rigid body away from
its rest shape. Plain PyTorch; the per-centre rotation is the Kabsch solution, held fixed."""
from typing import Optional

import torch

from ._graph_terms import edge_offsets, endpoints, penalised


def kabsch_rotations(cov: torch.Tensor) -> torch.Tensor:
    """argmax over proper rotations R of tr(R S) for S = cov [..., 3, 3], in float64.

    R = V diag(1, 1, det(V U^T)) U^T for S = U Σ V^T; the identity where S = 0.
    """
    s = cov.detach().to(torch.float64)
    u, _, vh = torch.linalg.svd(s)
    v = vh.transpose(-1, -2)
    d = torch.det(v @ u.transpose(-1, -2))
    fix = torch.ones_like(s[..., 0, :])
    fix[..., 2] = d
    rot = (v * fix.unsqueeze(-2)) @ u.transpose(-1, -2)
    zero = (s == 0).flatten(-2).all(-1)[..., None, None]
    return torch.where(zero, torch.eye(3, dtype=rot.dtype, device=rot.device), rot)


def arap_loss(positions: torch.Tensor, edge_index: torch.Tensor, *,
              rest_positions: Optional[torch.Tensor] = None,
              edge_weight: Optional[torch.Tensor] = None, reduction: str = "mean") -> torch.Tensor:
    """r = o_e,t - R_i,t (X_j - X_i), R_i,t the Kabsch rotation of centre i; terms [..., T, E]."""
    _, i = endpoints(edge_index)
    rest = positions[..., :1, :, :] if rest_positions is None else rest_positions.unsqueeze(-3)
    rest_offset = edge_offsets(rest.detach().to(positions.dtype), edge_index)  # [..., 1, E, 3]
    o = edge_offsets(positions, edge_index)                                    # [..., T, E, 3]
    w = (torch.ones(o.shape[-2], dtype=o.dtype, device=o.device) if edge_weight is None
         else edge_weight.to(o.dtype))
    cov_e = (w[:, None, None] * rest_offset.unsqueeze(-1) * o.unsqueeze(-2)).detach()
    cov = cov_e.new_zeros((*cov_e.shape[:-3], positions.shape[-2], 3, 3)).index_add_(-3, i, cov_e)
    rot = kabsch_rotations(cov).to(o.dtype)[..., i, :, :]                      # [..., T, E, 3, 3]
    r = o - (rot @ rest_offset.unsqueeze(-1)).squeeze(-1)
    return penalised(r.pow(2).sum(-1), edge_weight, "squared", reduction)
