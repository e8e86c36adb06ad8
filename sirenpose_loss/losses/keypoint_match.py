"""Keypoint match loss (KML, DynaPose4D eq. 4): sum_n w_n ||pred_n - target_n||^2."""
from typing import Optional

import torch

from .. import _ops
from .._backend import COMPILED
from .._validation import (call_naming, check_nonnegative, check_pair, check_weight,
                           reduction_code)
from ..reference import keypoint_match as _reference

_LAYOUT = "[..., K, D]"


def keypoint_match_loss(pred: torch.Tensor, target: torch.Tensor, *,
                        weight: Optional[torch.Tensor] = None,
                        reduction: str = "mean") -> torch.Tensor:
    r"""Keypoint match loss of DynaPose4D (eq. 4).

    .. math:: L = \sum_n w_n \lVert \hat k_n - k_n \rVert^2

    Args:
        pred: predicted keypoints ``[..., K, D]`` (e.g. found on rendered frames).
        target: reference keypoints, same shape and dtype.
        weight: optional per-keypoint visibility/confidence ``[..., K]`` or ``[K]``, ``>= 0``
            (bool masks are accepted). A constant: it must not require grad.
        reduction: ``"mean"`` (divide by ``sum(weight)``, or by the number of keypoints),
            ``"sum"`` or ``"none"`` (per-keypoint values ``[..., K]``).

    With no weight, ``"mean"`` equals ``D * F.mse_loss(pred, target)``. A mean over zero weight
    is 0 with a zero gradient.
    """
    return _keypoint_match(pred, target, weight, reduction)


def _keypoint_match(pred, target, weight, reduction, names=("pred", "target", "weight")):
    """The loss; ``names``: the caller's names of pred, target and weight, for its errors."""
    code = reduction_code(reduction)
    check_pair(pred, target, _LAYOUT, names[:2])
    weight = check_weight(weight, names[2], pred.shape[:-1], "[..., K]", pred)
    if not COMPILED:
        check_nonnegative(weight, names[2])
        return _reference.keypoint_match_loss(pred, target, weight=weight, reduction=reduction)
    return call_naming(_ops.keypoint_match, (pred, target, weight, code), "weight", names[2])


class KeypointMatchLoss(torch.nn.Module):
    """Module form of :func:`keypoint_match_loss`; ``forward(pred, target, *, weight=None)``."""

    def __init__(self, *, reduction: str = "mean"):
        super().__init__()
        reduction_code(reduction)
        self.reduction = reduction

    def forward(self, pred: torch.Tensor, target: torch.Tensor, *,
                weight: Optional[torch.Tensor] = None) -> torch.Tensor:
        return keypoint_match_loss(pred, target, weight=weight, reduction=self.reduction)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"
