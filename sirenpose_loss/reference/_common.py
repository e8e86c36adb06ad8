"""Shared helpers of the pure-PyTorch reference (readability over speed)."""
import torch


def reduce_terms(terms: torch.Tensor, weight_total: torch.Tensor, reduction: str) -> torch.Tensor:
    """Apply a reduction to per-term values; a mean over zero weight is 0, not NaN."""
    if reduction == "none":
        return terms
    total = terms.sum()
    if reduction == "sum":
        return total
    # where() keeps the zero-weight case at 0 with a zero gradient (no 0/0).
    safe = torch.where(weight_total > 0, weight_total, torch.ones_like(weight_total))
    return torch.where(weight_total > 0, total / safe, torch.zeros_like(total))
