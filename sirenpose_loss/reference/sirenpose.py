"""SirenPose loss (SirenPose eqs. 5-7) and its sine-space graph term, plain PyTorch."""
from typing import NamedTuple, Optional, Union

import torch

from ._common import reduce_terms


class SirenPoseTerms(NamedTuple):
    """Per-term components returned with reduction="none": L = pos.sum() + lambda_geo * geo.sum()."""
    pos: torch.Tensor   # [..., K]  w_n ||pred_n - target_n||^2
    geo: torch.Tensor   # [..., E]  w_e ||sin(w0 dpred_e) - sin(w0 dtarget_e)||^2


def _edge_index_of(edge_index) -> torch.Tensor:
    return edge_index.edge_index if hasattr(edge_index, "edge_index") else edge_index


def edge_term_weight(nodes_shape, src, dst, weight, edge_weight, dtype):
    """``w_e = w_src * w_dst * edge_weight_e`` of every term ``[..., E]`` for keypoint weights
    over ``nodes_shape`` (``[..., K]``), or None when there are no weights."""
    w_e = None
    if weight is not None:
        w = weight.to(dtype).expand(nodes_shape)
        w_e = w[..., src] * w[..., dst]
    if edge_weight is not None:
        ew = edge_weight.to(dtype)
        w_e = ew.expand(*nodes_shape[:-1], src.shape[0]) if w_e is None else w_e * ew
    return w_e


def _geo_terms(pred, target, edge_index, omega0, weight, edge_weight):
    src, dst = edge_index[0].long(), edge_index[1].long()
    d_pred = pred[..., src, :] - pred[..., dst, :]             # [..., E, D]
    d_true = target[..., src, :] - target[..., dst, :]
    r = torch.sin(omega0 * d_pred) - torch.sin(omega0 * d_true)
    terms = r.pow(2).sum(-1)                                    # [..., E]
    w_e = edge_term_weight(pred.shape[:-1], src, dst, weight, edge_weight, terms.dtype)
    if w_e is None:
        count = torch.tensor(float(terms.numel()), dtype=terms.dtype, device=terms.device)
        return terms, count
    return w_e * terms, w_e.sum()


def sin_graph_consistency_loss(pred: torch.Tensor, target: torch.Tensor, edge_index, *,
                               omega0: float = 30.0,
                               weight: Optional[torch.Tensor] = None,
                               edge_weight: Optional[torch.Tensor] = None,
                               reduction: str = "mean") -> torch.Tensor:
    """L_geo of SirenPose eq. 6 alone."""
    terms, total_w = _geo_terms(pred, target, _edge_index_of(edge_index), omega0, weight, edge_weight)
    return reduce_terms(terms, total_w, reduction)


def sirenpose_loss(pred: torch.Tensor, target: torch.Tensor, edge_index, *,
                   omega0: float = 30.0, lambda_geo: float = 1.0,
                   weight: Optional[torch.Tensor] = None,
                   edge_weight: Optional[torch.Tensor] = None,
                   reduction: str = "mean") -> Union[torch.Tensor, SirenPoseTerms]:
    """L = L_pos + lambda_geo * L_geo (SirenPose eq. 7); "mean" normalises each term by its weight."""
    from .keypoint_match import keypoint_match_loss
    edge_index = _edge_index_of(edge_index)
    pos = keypoint_match_loss(pred, target, weight=weight, reduction=reduction)
    geo = sin_graph_consistency_loss(pred, target, edge_index, omega0=omega0, weight=weight,
                                     edge_weight=edge_weight, reduction=reduction)
    if reduction == "none":
        return SirenPoseTerms(pos, geo)
    return pos + lambda_geo * geo
