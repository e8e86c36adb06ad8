"""Shared pieces of the rigidity-family references: quaternion algebra and the two penalties."""
from typing import Optional

import torch

from ._common import reduce_terms

NORM_EPS = 1e-20  # inside sqrt(w ||r||^2 + eps) and sqrt(||o||^2 + eps): finite gradient at 0


def normalize_quaternion(q: torch.Tensor) -> torch.Tensor:
    """q / ||q|| over the last axis (w, x, y, z)."""
    return q / q.norm(dim=-1, keepdim=True)


def quaternion_conjugate(q: torch.Tensor) -> torch.Tensor:
    return torch.cat([q[..., :1], -q[..., 1:]], dim=-1)


def quaternion_multiply(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Hamilton product a ⊗ b of (w, x, y, z) quaternions."""
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack([aw * bw - ax * bx - ay * by - az * bz,
                        aw * bx + ax * bw + ay * bz - az * by,
                        aw * by - ax * bz + ay * bw + az * bx,
                        aw * bz + ax * by - ay * bx + az * bw], dim=-1)


def rotation_matrix(q: torch.Tensor) -> torch.Tensor:
    """R(q) of a unit quaternion (w, x, y, z): [..., 4] -> [..., 3, 3]."""
    w, x, y, z = q.unbind(-1)
    rows = [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]
    return torch.stack(rows, dim=-1).unflatten(-1, (3, 3))


def relative_rotations(quaternions: torch.Tensor) -> torch.Tensor:
    """q_{t+1} ⊗ q_t^-1 of the normalised quaternions: [..., T, M, 4] -> [..., T-1, M, 4]."""
    q = normalize_quaternion(quaternions)
    return quaternion_multiply(q[..., 1:, :, :], quaternion_conjugate(q[..., :-1, :, :]))


def endpoints(edge_index: torch.Tensor):
    """(neighbour j, centre i) of every edge, as int64."""
    return edge_index[0].long(), edge_index[1].long()


def edge_offsets(points: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
    """o_e = x_j - x_i: [..., M, C] -> [..., E, C]."""
    j, i = endpoints(edge_index)
    return points[..., j, :] - points[..., i, :]


def penalised(sq: torch.Tensor, edge_weight: Optional[torch.Tensor], penalty: str,
              reduction: str) -> torch.Tensor:
    """Terms of squared residual norms sq [..., E] under a penalty, reduced.

    "squared": w ||r||^2, mean over the total weight; "norm": sqrt(w ||r||^2 + 1e-20), mean over
    the number of terms.
    """
    w = None if edge_weight is None else edge_weight.to(sq.dtype).expand(sq.shape)
    weighted = sq if w is None else w * sq
    if penalty == "norm":
        terms = torch.sqrt(weighted + NORM_EPS)
        count = torch.tensor(float(terms.numel()), dtype=sq.dtype, device=sq.device)
        return reduce_terms(terms, count, reduction)
    if penalty != "squared":
        raise ValueError(f"penalty must be 'squared' or 'norm', got {penalty!r}")
    total = (torch.tensor(float(sq.numel()), dtype=sq.dtype, device=sq.device) if w is None
             else w.sum())
    return reduce_terms(weighted, total, reduction)
