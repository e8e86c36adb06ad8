"""Spatio-temporal consistency loss (SCL, DynaPose4D eq. 5) over Gaussian centre tracks."""
from typing import Optional

import torch

from .. import _ops
from .._backend import COMPILED
from .._validation import (call_naming, check_nonnegative, check_order, check_points,
                           check_weight, reduction_code)
from ..reference import spatiotemporal_consistency as _reference

_LAYOUT = "[..., T, M, D]"


def spatiotemporal_consistency_loss(positions: torch.Tensor, *,
                                    weight: Optional[torch.Tensor] = None,
                                    order: int = 1,
                                    reduction: str = "mean") -> torch.Tensor:
    r"""Spatio-temporal consistency loss of DynaPose4D (eq. 5).

    .. math:: L = \sum_{\tau} \sum_i w_i \lVert P_{\tau+1,i} - P_{\tau,i} \rVert^2

    Args:
        positions: Gaussian centres over time ``[..., T, M, D]``.
        weight: optional per-Gaussian weight ``[M]`` (shared) or ``[..., M]``, ``>= 0``.
        order: 1 penalises velocity (the paper's loss); 2 penalises acceleration
            ``P[t+1] - 2 P[t] + P[t-1]``, a smoothness prior the papers do not ship.
        reduction: ``"mean"`` divides by the weighted number of terms,
            ``(T - order) * sum_i w_i`` per batch entry, summed over the batch; ``"sum"``;
            ``"none"`` returns ``[..., T - order, M]``.

    ``T <= order`` means zero terms: the mean is 0 with a zero gradient.
    """
    return _spatiotemporal_consistency(positions, weight, order, reduction)


def _spatiotemporal_consistency(positions, weight, order, reduction, weight_name="weight"):
    """The loss; ``weight_name``: the caller's name of the weight, for its errors."""
    code = reduction_code(reduction)
    check_points(positions, "positions", _LAYOUT, 3)
    order = check_order(order, device=positions.device)
    weight = check_weight(weight, weight_name, (*positions.shape[:-3], positions.shape[-2]),
                          "[..., M]", positions)
    if not COMPILED:
        check_nonnegative(weight, weight_name)
        return _reference.spatiotemporal_consistency_loss(positions, weight=weight, order=order,
                                                          reduction=reduction)
    return call_naming(_ops.spatiotemporal_consistency, (positions, weight, order, code), "weight",
                       weight_name)


class SpatioTemporalConsistencyLoss(torch.nn.Module):
    """Module form of :func:`spatiotemporal_consistency_loss`; ``forward(positions, *, weight=None)``."""

    def __init__(self, *, order: int = 1, reduction: str = "mean"):
        super().__init__()
        reduction_code(reduction)
        self.order, self.reduction = check_order(order), reduction

    def forward(self, positions: torch.Tensor, *, weight: Optional[torch.Tensor] = None) -> torch.Tensor:
        return spatiotemporal_consistency_loss(positions, weight=weight, order=self.order,
                                               reduction=self.reduction)

    def extra_repr(self) -> str:
        return f"order={self.order}, reduction={self.reduction!r}"
