"""Graph smoothness: a per-Gaussian feature varies little between neighbours. Plain PyTorch."""
from typing import Optional

import torch

from ._graph_terms import edge_offsets, penalised


def graph_smoothness_loss(features: torch.Tensor, edge_index: torch.Tensor, *,
                          edge_weight: Optional[torch.Tensor] = None, penalty: str = "squared",
                          reduction: str = "mean") -> torch.Tensor:
    """r = f_j - f_i over features [..., M, C]; terms [..., E]."""
    r = edge_offsets(features, edge_index)
    return penalised(r.pow(2).sum(-1), edge_weight, penalty, reduction)
