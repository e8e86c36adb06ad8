"""The package's losses as global means over all ranks (one all-reduce per call).

Each function takes the same arguments as its single-process twin plus ``group`` and
``average_grads`` (see :mod:`.reduce` for the gradient convention), and returns the mean over
the terms of all ranks: the value a single process holding every rank's data would compute.
The graph losses also accept a :class:`HaloPlan` where an ``edge_index`` goes: the node tensors
(and the per-node ``weight``) are then this rank's shard of a partitioned graph, the halo rows
are exchanged, each edge is summed once (by the owner of its centre) and ``edge_weight`` is the
whole graph's ``[E]``.
"""
from typing import Optional

import torch

from .. import losses as _losses
from .counts import graph_edge_count, keypoint_match_count, spatiotemporal_consistency_count
from .halo import HaloPlan
from .reduce import global_means


def keypoint_match_loss(pred: torch.Tensor, target: torch.Tensor, *,
                        weight: Optional[torch.Tensor] = None, group=None,
                        average_grads: bool = True) -> torch.Tensor:
    """Global mean of the keypoint match loss: ``sum_r L_r / sum_r sum_n w_n``."""
    total = _losses.keypoint_match_loss(pred, target, weight=weight, reduction="sum")
    return global_means([total], [keypoint_match_count(pred, weight)], group=group,
                        average_grads=average_grads)[0]


def spatiotemporal_consistency_loss(positions: torch.Tensor, *,
                                    weight: Optional[torch.Tensor] = None, order: int = 1,
                                    group=None, average_grads: bool = True) -> torch.Tensor:
    """Global mean of the spatio-temporal consistency loss. Ranks may hold different Gaussians
    (sharded; use ``average_grads=False`` for rank-owned Gaussians) or different batch entries
    (for frames split across ranks: consecutive ranges overlapping by ``order`` frames)."""
    total = _losses.spatiotemporal_consistency_loss(positions, weight=weight, order=order,
                                                    reduction="sum")
    count = spatiotemporal_consistency_count(positions, weight, order)
    return global_means([total], [count], group=group, average_grads=average_grads)[0]


def _graph_inputs(pred, target, edge_index, weight, edge_weight):
    """Extended rows and local edges for a HaloPlan; the inputs as they are otherwise."""
    if not isinstance(edge_index, HaloPlan):
        return pred, target, edge_index, weight, edge_weight
    plan = edge_index
    weight = None if weight is None else plan.exchange(weight.to(pred.dtype), dim=-1)
    return (plan.exchange(pred), plan.exchange(target), plan.edge_index, weight,
            plan.edges(edge_weight))


def _graph_unpack(edge_index, edge_weight):
    if not isinstance(edge_index, (torch.Tensor, HaloPlan)) and hasattr(edge_index, "edge_index"):
        if edge_weight is None:
            edge_weight = getattr(edge_index, "edge_weight", None)
        edge_index = edge_index.edge_index
    return edge_index, edge_weight


def sin_graph_consistency_loss(pred: torch.Tensor, target: torch.Tensor, edge_index, *,
                               omega0: float = 30.0, weight: Optional[torch.Tensor] = None,
                               edge_weight: Optional[torch.Tensor] = None, group=None,
                               average_grads: bool = True) -> torch.Tensor:
    """Global mean of the sine graph consistency loss: ``sum_r L_r / sum_r sum_e w_e``.
    ``edge_index``: ``[2, E]``, a ``KeypointGraph`` or a :class:`HaloPlan`."""
    edge_index, edge_weight = _graph_unpack(edge_index, edge_weight)
    p, t, ei, w, ew = _graph_inputs(pred, target, edge_index, weight, edge_weight)
    total = _losses.sin_graph_consistency_loss(p, t, ei, omega0=omega0, weight=w, edge_weight=ew,
                                               reduction="sum")
    count = graph_edge_count(ei, p.shape[:-2], weight=w, edge_weight=ew, device=p.device)
    return global_means([total], [count], group=group, average_grads=average_grads)[0]


def sirenpose_loss(pred: torch.Tensor, target: torch.Tensor, edge_index, *,
                   omega0: float = 30.0, lambda_geo: float = 1.0,
                   weight: Optional[torch.Tensor] = None,
                   edge_weight: Optional[torch.Tensor] = None, group=None,
                   average_grads: bool = True) -> torch.Tensor:
    """Global SirenPose loss ``pos / sum w_n + lambda_geo * geo / sum w_e`` over all ranks' terms
    (one all-reduce of the four numbers). ``edge_index``: ``[2, E]``, a ``KeypointGraph`` or a
    :class:`HaloPlan` (the position term then counts each rank's own rows only)."""
    edge_index, edge_weight = _graph_unpack(edge_index, edge_weight)
    p, t, ei, w, ew = _graph_inputs(pred, target, edge_index, weight, edge_weight)
    terms = _losses.sirenpose_loss(p, t, ei, omega0=omega0, lambda_geo=lambda_geo, weight=w,
                                   edge_weight=ew, reduction="none")
    own = pred.shape[-2]   # the halo rows' position terms belong to their owners
    pos = terms.pos[..., :own].sum()
    geo = terms.geo.sum()
    counts = [keypoint_match_count(pred, weight),
              graph_edge_count(ei, p.shape[:-2], weight=w, edge_weight=ew, device=p.device)]
    pos_mean, geo_mean = global_means([pos, geo], counts, group=group, average_grads=average_grads)
    return pos_mean + lambda_geo * geo_mean
