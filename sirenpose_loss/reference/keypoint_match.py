"""Keypoint match loss (DynaPose4D eq. 4), plain PyTorch; autograd does the backward."""
from typing import Optional

import torch

from ._common import reduce_terms


def keypoint_match_loss(pred: torch.Tensor, target: torch.Tensor, *,
                        weight: Optional[torch.Tensor] = None,
                        reduction: str = "mean") -> torch.Tensor:
    """sum_n w_n ||pred_n - target_n||^2 over keypoints n; pred, target: [..., K, D]."""
    terms = (pred - target).pow(2).sum(-1)                      # [..., K]
    if weight is None:
        count = torch.tensor(float(terms.numel()), dtype=terms.dtype, device=terms.device)
        return reduce_terms(terms, count, reduction)
    w = weight.to(terms.dtype).expand_as(terms)
    return reduce_terms(w * terms, w.sum(), reduction)
