"""Argument checks of the graph builders. Messages name the argument, what was expected and
what was given."""
import math
import numbers
from typing import Optional

import torch


def check_float_tensor(value, name: str, layout: str) -> None:
    """A floating-point torch.Tensor (its shape is the caller's to check)."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape {layout}, got "
                        f"{type(value).__name__}")
    if not value.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor of shape {layout}, got dtype "
                        f"{value.dtype}")


def check_points(points, name: str = "points") -> None:
    check_float_tensor(points, name, "[N, D]")
    if points.dim() != 2 or points.shape[1] < 1:
        raise ValueError(f"{name} must have shape [N, D] (D = 2 or 3 for keypoints and Gaussian "
                         f"centres), got shape {list(points.shape)}")
    if points.numel() and not bool(torch.isfinite(points).all()):
        bad = int((~torch.isfinite(points)).sum())
        raise ValueError(f"{name} must be finite (no NaN or Inf): a neighbour of a NaN point is "
                         f"undefined, got {bad} non-finite values")


def check_count(value, name: str) -> int:
    """A positive int (bool refused: True is not a neighbour count)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int >= 1, got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return int(value)


def check_radius(r) -> float:
    if isinstance(r, bool) or not isinstance(r, numbers.Real):
        raise TypeError(f"r must be a positive finite number, got {type(r).__name__} {r!r}")
    if not math.isfinite(r) or r <= 0:
        raise ValueError(f"r must be a positive finite number, got {r!r}")
    return float(r)


def check_max_num_neighbors(value) -> Optional[int]:
    return None if value is None else check_count(value, "max_num_neighbors")


def check_flow(flow) -> None:
    if flow not in ("source_to_target", "target_to_source"):
        raise ValueError(f"flow must be 'source_to_target' or 'target_to_source', got {flow!r}")


def check_batch(batch, points: torch.Tensor) -> Optional[torch.Tensor]:
    """batch: None or a sorted [N] integer vector on the points' device; returned as int64."""
    if batch is None:
        return None
    if not isinstance(batch, torch.Tensor):
        raise TypeError(f"batch must be None or a torch.Tensor of shape [N], got "
                        f"{type(batch).__name__}")
    if batch.is_floating_point() or batch.is_complex() or batch.dtype == torch.bool:
        raise TypeError(f"batch must be an integer tensor (graph id of every point), got dtype "
                        f"{batch.dtype}")
    if batch.dim() != 1 or batch.shape[0] != points.shape[0]:
        raise ValueError(f"batch must have shape [N] = [{points.shape[0]}] (one graph id per "
                         f"point), got shape {list(batch.shape)}")
    if batch.device != points.device:
        raise ValueError(f"batch must be on the same device as points ({points.device}), got "
                         f"{batch.device}")
    batch = batch.long()
    if batch.numel():
        if bool((batch < 0).any()):
            raise ValueError(f"batch must hold graph ids >= 0, got a minimum of {int(batch.min())}")
        drops = torch.nonzero(batch[1:] < batch[:-1])
        if drops.numel():
            i = int(drops[0]) + 1
            raise ValueError(f"batch must be sorted in non-decreasing order (the points of each "
                             f"graph stored together, as torch_geometric batches them), got "
                             f"batch[{i}] = {int(batch[i])} after {int(batch[i - 1])}; sort the "
                             f"points by graph id first")
    return batch
