"""Each loss's "mean" denominator (its weighted number of terms), computed from the shapes and
weights on this rank, for :func:`global_mean`. They match the README's definitions:

* keypoint match and the SirenPose position term: ``sum_n w_n`` (the number of keypoints when
  unweighted);
* spatio-temporal consistency: ``(T - order) * sum_i w_i`` per batch entry, summed;
* sine graph consistency and the SirenPose graph term: ``sum_e ew_e w_i w_j``.

Each returns a float64 scalar tensor (no host sync); weights are constants, so no gradient.
"""
import math
from typing import Optional

import torch


def _expanded_sum(weight: Optional[torch.Tensor], rows_shape, device) -> torch.Tensor:
    """Sum of a per-row weight of shape ``rows_shape`` (``[..., R]``), or ``[R]`` shared by the
    batch, as the losses accept it."""
    rows = math.prod(rows_shape)
    if weight is None:
        return torch.tensor(float(rows), dtype=torch.float64, device=device)
    total = weight.detach().to(torch.float64).sum()
    if tuple(weight.shape) == tuple(rows_shape):
        return total
    return total * (rows // rows_shape[-1] if rows_shape[-1] else 0)


def keypoint_match_count(pred: torch.Tensor, weight: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Denominator of the keypoint match loss (and of SirenPose's position term)."""
    return _expanded_sum(weight, pred.shape[:-1], pred.device)


def spatiotemporal_consistency_count(positions: torch.Tensor, weight: Optional[torch.Tensor] = None,
                                     order: int = 1) -> torch.Tensor:
    """Denominator of the spatio-temporal consistency loss over ``positions [..., T, M, D]``."""
    steps = max(positions.shape[-3] - order, 0)
    rows = (*positions.shape[:-3], positions.shape[-2])
    return steps * _expanded_sum(weight, rows, positions.device)


def graph_edge_count(edge_index: torch.Tensor, batch_shape, *, weight: Optional[torch.Tensor] = None,
                     edge_weight: Optional[torch.Tensor] = None,
                     device: Optional[torch.device] = None) -> torch.Tensor:
    """Denominator of an edge sum: ``sum over the batch of sum_e ew_e w_i w_j``.

    ``batch_shape`` is the shape of the leading dims of the node tensor (``pred.shape[:-2]``);
    ``weight`` is ``[..., K]`` or ``[K]``; unweighted edges count 1 each.
    """
    device = edge_index.device if device is None else device
    batch = math.prod(batch_shape)
    num_edges = edge_index.shape[1]
    ew = (torch.ones(num_edges, dtype=torch.float64, device=device) if edge_weight is None
          else edge_weight.detach().to(device=device, dtype=torch.float64))
    if weight is None:
        return ew.sum() * batch
    w = weight.detach().to(device=device, dtype=torch.float64)
    src, dst = edge_index[0].to(device), edge_index[1].to(device)
    total = (w.index_select(-1, src) * w.index_select(-1, dst) * ew).sum()
    shared = tuple(w.shape) != (*batch_shape, w.shape[-1])   # [K]: the same for every entry
    return total * batch if shared else total
