"""Balanced kd partition of points into compact leaves, in plain torch (vectorised per level).

The torch neighbour search reads candidates block by block and skips blocks by bounding box,
so it needs blocks that are small in space. A fixed-size cut of a Z-order curve is not enough
(a block that crosses a jump of the curve spans two distant cells); median splits along the
widest axis give boxy leaves of between ``leaf_size / 2`` and ``leaf_size`` points.

With a batch, segments holding several graphs are first split at graph boundaries, so a leaf
never mixes a large graph with others, while many small graphs still share a leaf.
"""
from typing import List, Optional, Tuple

import torch


def segment_extremes(values: torch.Tensor, seg: torch.Tensor, num_segs: int):
    shape = (num_segs,) + values.shape[1:]
    index = seg.view(-1, *([1] * (values.dim() - 1))).expand_as(values)
    low = values.new_full(shape, float("inf") if values.is_floating_point() else 2 ** 62)
    high = values.new_full(shape, float("-inf") if values.is_floating_point() else -2 ** 62)
    return (low.scatter_reduce_(0, index, values, "amin"),
            high.scatter_reduce_(0, index, values, "amax"))


def kd_leaves(points: torch.Tensor, batch: Optional[torch.Tensor],
              leaf_size: int) -> Tuple[torch.Tensor, List[int]]:
    """Returns ``(order, ptr)``: ``points[order]`` lists the leaves one after the other, leaf
    ``b`` being positions ``ptr[b]:ptr[b + 1]`` (``ptr`` a host list). Deterministic."""
    n, dims = points.shape
    device = points.device
    if n == 0:
        return torch.zeros(0, dtype=torch.long, device=device), [0]
    # Rank of every point along every axis: splitting a segment at its median is then one
    # integer sort per level (key = segment * n + rank), whatever the axis each segment uses.
    ranks = torch.empty((dims, n), dtype=torch.long, device=device)
    arange = torch.arange(n, device=device)
    for d in range(dims):
        ranks[d, torch.argsort(points[:, d], stable=True)] = arange
    graph_ptr = None
    if batch is not None:
        graph_ptr = torch.zeros(int(batch[-1]) + 2, dtype=torch.long, device=device)
        graph_ptr[1:] = torch.cumsum(torch.bincount(batch, minlength=graph_ptr.numel() - 1), 0)

    order = arange.clone()
    seg = torch.zeros(n, dtype=torch.long, device=device)        # segment of each position
    seg_start = torch.zeros(1, dtype=torch.long, device=device)
    seg_len = torch.full((1,), n, dtype=torch.long, device=device)
    while int(seg_len.max()) > leaf_size:
        num_segs = seg_start.numel()
        splittable = seg_len > leaf_size
        low, high = segment_extremes(points[order], seg, num_segs)
        axis = (high - low).argmax(1)                                # widest axis
        split = seg_start + seg_len // 2                             # median
        spatial = splittable
        if batch is not None:
            graph_low, graph_high = segment_extremes(batch[order], seg, num_segs)
            by_graph = graph_low != graph_high
            split = torch.where(by_graph, _graph_cut(batch, order, graph_ptr, seg_start,
                                                     seg_len, split), split)
            spatial = splittable & ~by_graph
        # Sort spatially split segments along their axis; the others keep their order
        # (segments of several graphs are whole graphs in index order).
        position_in = arange - seg_start[seg]
        rank = torch.where(spatial[seg], ranks[axis[seg], order], position_in)
        order = order[torch.argsort(seg * n + rank)]
        child = (position_in >= (split - seg_start)[seg]) & splittable[seg]
        seg = torch.unique_consecutive(seg * 2 + child, return_inverse=True)[1]
        seg_len = torch.bincount(seg)
        seg_start = torch.cumsum(seg_len, 0) - seg_len
    ptr = [0] + torch.cumsum(seg_len, 0).tolist()
    return order, ptr


def _graph_cut(batch, order, graph_ptr, seg_start, seg_len, middle):
    """Split position of a segment of whole graphs: the graph boundary nearest its middle,
    strictly inside the segment (both halves non-empty)."""
    graph = batch[order[middle]]
    before, after = graph_ptr[graph], graph_ptr[graph + 1]
    seg_end = seg_start + seg_len
    use_before = (before > seg_start) & (((middle - before) <= (after - middle))
                                         | (after >= seg_end))
    return torch.where(use_before, before, after)
