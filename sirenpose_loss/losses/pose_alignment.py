"""DynaPose4D's pose alignment loss: lambda_kml * KML(keypoints) + lambda_scl * SCL(centres)."""
from typing import NamedTuple, Optional

import torch

from .._validation import check_nonnegative_number, check_order
from .keypoint_match import _keypoint_match
from .spatiotemporal_consistency import _spatiotemporal_consistency


# Errors name this module's own arguments.
_KML_NAMES = ("pred_keypoints", "target_keypoints", "keypoint_weight")


class PoseAlignmentOutput(NamedTuple):
    """The total and its two detached parts, for logging."""
    loss: torch.Tensor
    kml: torch.Tensor
    scl: torch.Tensor


class PoseAlignmentLoss(torch.nn.Module):
    """``lambda_kml * KML(pred_keypoints, target_keypoints) + lambda_scl * SCL(positions)``.

    ``forward(pred_keypoints, target_keypoints, positions, *, keypoint_weight=None,
    gaussian_weight=None, return_terms=False)``: keypoints ``[..., K, D]`` (rendered vs reference
    frames), Gaussian centres ``[..., T, M, 3]``. Both terms use ``reduction="mean"``. A weight of
    0 skips its term entirely (no kernel runs).
    """

    def __init__(self, *, lambda_kml: float = 1.0, lambda_scl: float = 1.0, order: int = 1):
        super().__init__()
        self.lambda_kml = check_nonnegative_number(lambda_kml, "lambda_kml")
        self.lambda_scl = check_nonnegative_number(lambda_scl, "lambda_scl")
        if not (self.lambda_kml or self.lambda_scl):
            raise ValueError("lambda_kml and lambda_scl must not both be 0 (at least one term must "
                             "be on), got 0.0 and 0.0")
        self.order = check_order(order)

    def forward(self, pred_keypoints: torch.Tensor, target_keypoints: torch.Tensor,
                positions: torch.Tensor, *, keypoint_weight: Optional[torch.Tensor] = None,
                gaussian_weight: Optional[torch.Tensor] = None, return_terms: bool = False):
        zero = positions.new_zeros(())
        kml = (_keypoint_match(pred_keypoints, target_keypoints, keypoint_weight, "mean",
                               _KML_NAMES) if self.lambda_kml else zero)
        scl = (_spatiotemporal_consistency(positions, gaussian_weight, self.order, "mean",
                                           "gaussian_weight") if self.lambda_scl else zero)
        loss = self.lambda_kml * kml + self.lambda_scl * scl
        if return_terms:
            return PoseAlignmentOutput(loss, kml.detach(), scl.detach())
        return loss

    def extra_repr(self) -> str:
        return f"lambda_kml={self.lambda_kml}, lambda_scl={self.lambda_scl}, order={self.order}"
