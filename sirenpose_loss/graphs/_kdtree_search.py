"""k-nearest and radius neighbours with scipy's cKDTree: the CPU path when scipy is installed.

Graphs of a batch share one tree: each point gets an extra coordinate ``graph_id * SEP`` with
``SEP`` larger than any in-graph distance (and radius), and searches are cut off below ``SEP``,
so no cross-graph pair is ever returned. In-graph distances are unchanged: the extra
coordinates of two points of the same graph are equal, their difference exactly 0.

Queries run in the tree's own leaf order (``tree.indices``), which keeps consecutive queries
close in space and is several times faster than querying in input order.
"""
import math
from typing import Optional, Tuple

import numpy as np
import torch

QUERY_ELEMENTS = 1 << 22   # neighbours per query chunk (distance + index: 64 MB)


def available() -> bool:
    try:
        import scipy.spatial  # noqa: F401
    except ImportError:
        return False
    return True


def _tree_data(points: torch.Tensor, batch: Optional[torch.Tensor],
               reach: float) -> Tuple[np.ndarray, float]:
    """float64 coordinates (plus the graph-id coordinate) and the cut-off that keeps searches
    inside one graph (inf without a batch)."""
    data = points.detach().to(torch.float64).numpy()
    if batch is None or data.shape[0] == 0:
        return data, math.inf
    diameter = float(np.sqrt((np.ptp(data, axis=0) ** 2).sum()))
    sep = 2.0 * (diameter + reach) + 1.0
    graph_coord = batch.numpy().astype(np.float64)[:, None] * sep
    return np.concatenate([data, graph_coord], axis=1), 0.5 * (diameter + reach + sep)


def _select(dist, index, rows, k: int, loop: bool, n: int, radius: Optional[float]):
    """First k neighbours of each row, ordered by (distance, index); -1 where there are fewer."""
    missing = index >= n                          # cKDTree's "no neighbour": index n, distance inf
    if not loop:
        is_self = index == rows[:, None]
        if is_self[:, 0].all():                   # the usual case: self is the nearest
            dist, index, missing = dist[:, 1:], index[:, 1:], missing[:, 1:]
        else:                                     # duplicates of a point can come before it
            missing |= is_self
    if radius is not None:
        missing |= dist >= radius
    if missing.any():
        dist = np.where(missing, np.inf, dist)
        index = np.where(missing, n, index)
    unordered = ((dist[:, 1:] < dist[:, :-1])
                 | ((dist[:, 1:] == dist[:, :-1]) & (index[:, 1:] < index[:, :-1]))).any(axis=1)
    if unordered.any():
        sub_d, sub_i = dist[unordered], index[unordered]
        perm = np.lexsort((sub_i, sub_d), axis=1)
        index[unordered] = np.take_along_axis(sub_i, perm, axis=1)
    index = index[:, :k]
    return np.where(index >= n, -1, index) if missing.any() else index


def nearest_neighbours(points: torch.Tensor, batch: Optional[torch.Tensor], k: int, *,
                       loop: bool, radius: Optional[float] = None,
                       workers: int = 1) -> torch.Tensor:
    """[N, k] int64 neighbour indices (rows by point index), ordered by (distance, index), -1
    where fewer exist; with ``radius``, only neighbours strictly closer than it."""
    from scipy.spatial import cKDTree
    n = points.shape[0]
    data, cutoff = _tree_data(points, batch, 0.0 if radius is None else radius)
    if radius is not None:
        cutoff = min(cutoff, radius)
    out = np.full((n, k), -1, dtype=np.int64)
    if n == 0:
        return torch.from_numpy(out)
    tree = cKDTree(data)
    k_query = k if loop else k + 1
    rows_per_chunk = max(1, QUERY_ELEMENTS // k_query)
    tree_order = tree.indices
    for start in range(0, n, rows_per_chunk):
        rows = tree_order[start:start + rows_per_chunk]
        dist, index = tree.query(data[rows], k=k_query, distance_upper_bound=cutoff,
                                 workers=workers)
        dist = dist.reshape(len(rows), k_query)
        index = index.reshape(len(rows), k_query)
        out[rows] = _select(dist, index, rows, k, loop, n, radius)
    return torch.from_numpy(out)


def neighbours_within(points: torch.Tensor, batch: Optional[torch.Tensor], radius: float, *,
                      loop: bool) -> Tuple[torch.Tensor, torch.Tensor]:
    """All pairs strictly closer than ``radius``: (centre, neighbour) int64, sorted by centre,
    then distance, then neighbour index."""
    from scipy.spatial import cKDTree
    data, _ = _tree_data(points, batch, radius)
    if data.shape[0] == 0:
        empty = torch.empty(0, dtype=torch.long)
        return empty, empty
    tree = cKDTree(data)
    pairs = tree.sparse_distance_matrix(tree, radius, output_type="ndarray")  # d <= radius
    centre, neighbour, dist = pairs["i"], pairs["j"], pairs["v"]
    keep = dist < radius
    if not loop:
        keep &= centre != neighbour
    centre, neighbour, dist = centre[keep], neighbour[keep], dist[keep]
    perm = np.lexsort((neighbour, dist, centre))
    return torch.from_numpy(centre[perm].astype(np.int64)), \
        torch.from_numpy(neighbour[perm].astype(np.int64))
