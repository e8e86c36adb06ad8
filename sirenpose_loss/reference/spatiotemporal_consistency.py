"""Spatio-temporal consistency loss (DynaPose4D eq. 5), plain PyTorch."""
from typing import Optional

import torch

from ._common import reduce_terms


def spatiotemporal_consistency_loss(positions: torch.Tensor, *,
                                    weight: Optional[torch.Tensor] = None,
                                    order: int = 1,
                                    reduction: str = "mean") -> torch.Tensor:
    """sum_{tau,i} w_i ||Delta^order P[tau, i]||^2; positions: [..., T, M, D].

    order=1: P[t+1] - P[t] (t = 0..T-2); order=2: P[t+1] - 2P[t] + P[t-1] (t = 1..T-2).
    The mean divides by the weighted number of terms: sum over the batch of (T - order) * sum_i w_i.
    """
    if order == 1:
        delta = positions[..., 1:, :, :] - positions[..., :-1, :, :]
    else:
        delta = positions[..., 2:, :, :] - 2 * positions[..., 1:-1, :, :] + positions[..., :-2, :, :]
    terms = delta.pow(2).sum(-1)                                # [..., T-order, M]
    steps = terms.shape[-2]
    if weight is None:
        count = torch.tensor(float(terms.numel()), dtype=terms.dtype, device=terms.device)
        return reduce_terms(terms, count, reduction)
    w = weight.to(terms.dtype).unsqueeze(-2)                    # [..., 1, M]
    # Denominator: (T - order) * sum_i w_i for every batch entry, summed over the batch.
    w_full = w.expand(*positions.shape[:-3], 1, positions.shape[-2])
    return reduce_terms(w * terms, steps * w_full.sum(), reduction)
