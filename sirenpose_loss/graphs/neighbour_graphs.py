"""k-nearest-neighbour and radius graphs over points, in torch_geometric's conventions, without
torch-cluster or pyg-lib.

Convention (as ``torch_geometric.nn.knn_graph`` / ``radius_graph`` with the default
``flow="source_to_target"``): ``edge_index[1]`` is the centre point and ``edge_index[0]`` one of
its neighbours, so a message-passing layer aggregates each point's neighbours into it.
``flow="target_to_source"`` swaps the two rows.

Output order (deterministic): edges grouped by centre in increasing index; within a centre,
by increasing distance, ties by increasing neighbour index. Distances are Euclidean and
computed from coordinate differences (float64 on the kd-tree path, the points' dtype, at least
float32, on the torch path), so "exact" means exact up to that rounding; when several points
tie at exactly the k-th distance, which of them are kept is not specified.

Backends (``method``):

* ``"kdtree"``: scipy's cKDTree, CPU only; O(N log N). ``"auto"`` picks it for CPU tensors when
  scipy is installed.
* ``"torch"``: plain torch, any device (the path CUDA tensors take): kd-partition leaves with
  bounding-box pruning, exact, memory bounded by fixed-size distance tiles (see
  ``_blocked_search``). Also the CPU fallback without scipy, where it is 4-25x slower than the
  kd-tree (benchmarks/RESULTS_graphs.md). The CUDA code path has not been run yet (no GPU where it was written).
"""
from typing import Optional

import torch

from . import _blocked_search, _kdtree_search
from ._checks import (check_batch, check_count, check_flow, check_max_num_neighbors,
                      check_points, check_radius)

_METHODS = ("auto", "kdtree", "torch")


def _pick_method(method: str, points: torch.Tensor) -> str:
    if method not in _METHODS:
        raise ValueError(f"method must be one of {', '.join(map(repr, _METHODS))}, got {method!r}")
    if method == "kdtree":
        if points.device.type != "cpu":
            raise ValueError(f"method='kdtree' needs CPU points, got points on {points.device}; "
                             f"use method='torch' or 'auto'")
        if not _kdtree_search.available():
            raise ImportError("method='kdtree' needs scipy: pip install scipy")
        return method
    if method == "auto":
        return "kdtree" if points.device.type == "cpu" and _kdtree_search.available() else "torch"
    return method


@torch.no_grad()  # graph building is not differentiable; points may require grad
def _torch_search(points, batch, k: int, *, loop: bool, radius=None) -> torch.Tensor:
    device = points.device
    blocks = _blocked_search.sort_into_blocks(points, batch,
                                              _blocked_search.block_size_for(device, k))
    tile_elements = _blocked_search.tile_elements_for(device)
    return _blocked_search.nearest_neighbours(blocks, k, loop=loop, radius=radius,
                                              tile_elements=tile_elements)


def _edges_from_rows(neighbours: torch.Tensor, flow: str) -> torch.Tensor:
    """[N, k] neighbour table (-1 = none) -> [2, E] edge_index, row-major (centre order)."""
    n, k = neighbours.shape
    centre = torch.arange(n, device=neighbours.device).repeat_interleave(k)
    neighbours = neighbours.reshape(-1)
    if neighbours.numel() and bool((neighbours < 0).any()):  # small graphs: fewer than k
        valid = neighbours >= 0
        centre, neighbours = centre[valid], neighbours[valid]
    return _edge_index(centre, neighbours, flow)


def _edge_index(centre: torch.Tensor, neighbour: torch.Tensor, flow: str) -> torch.Tensor:
    rows = (neighbour, centre) if flow == "source_to_target" else (centre, neighbour)
    return torch.stack(rows).long()


def knn_graph(points: torch.Tensor, k: int, *, batch: Optional[torch.Tensor] = None,
              loop: bool = False, flow: str = "source_to_target",
              method: str = "auto") -> torch.Tensor:
    """Edges from every point's ``k`` nearest neighbours (exact).

    Args:
        points: ``[N, D]`` floating coordinates (D = 2 or 3 for keypoints and Gaussian centres;
            any D >= 1 works), finite.
        k: neighbours per point (>= 1). A point whose graph has fewer than ``k`` other points
            gets them all.
        batch: optional ``[N]`` graph id of every point, sorted (torch_geometric batching);
            neighbours are searched within each graph.
        loop: when True a point is its own neighbour (distance 0, so one of the ``k``); when
            False it is excluded and the ``k`` nearest *other* points are returned (a duplicate
            of the point still counts).
        flow: ``"source_to_target"`` (default: ``edge_index[1]`` = centre) or
            ``"target_to_source"``.
        method: ``"auto"``, ``"kdtree"`` (scipy, CPU) or ``"torch"`` (any device).

    Returns:
        ``[2, N * k]`` int64 edge_index (fewer edges where graphs are small), on ``points.device``,
        ordered by centre, then distance, then neighbour index. Each directed edge appears once;
        a mutual pair appears in both directions, as in torch_geometric.
    """
    check_points(points)
    k = check_count(k, "k")
    batch = check_batch(batch, points)
    check_flow(flow)
    if _pick_method(method, points) == "kdtree":
        table = _kdtree_search.nearest_neighbours(points, batch, k, loop=bool(loop),
                                                  workers=torch.get_num_threads())
    else:
        table = _torch_search(points, batch, k, loop=bool(loop))
    return _edges_from_rows(table.to(points.device), flow)


def radius_graph(points: torch.Tensor, r: float, *, batch: Optional[torch.Tensor] = None,
                 loop: bool = False, max_num_neighbors: Optional[int] = 32,
                 flow: str = "source_to_target", method: str = "auto") -> torch.Tensor:
    """Edges from every point to the points strictly closer than ``r`` (exact).

    Args:
        points, batch, loop, flow, method: as in :func:`knn_graph`.
        r: radius (> 0); a pair at distance exactly ``r`` is not an edge (torch-cluster's ``<``).
        max_num_neighbors: at most this many neighbours per centre, the *nearest* ones (ties by
            index), so the result does not depend on the memory layout; the point itself counts
            when ``loop=True``. None: no cap. torch_geometric's default is 32 too, but its CPU
            kernel keeps whichever neighbours it meets first, "biased towards certain quadrants"
            as its documentation warns.

    Returns:
        ``[2, E]`` int64 edge_index ordered by centre, then distance, then neighbour index.
    """
    check_points(points)
    r = check_radius(r)
    batch = check_batch(batch, points)
    max_num_neighbors = check_max_num_neighbors(max_num_neighbors)
    check_flow(flow)
    loop = bool(loop)
    use_kdtree = _pick_method(method, points) == "kdtree"
    if max_num_neighbors is not None:
        if use_kdtree:
            table = _kdtree_search.nearest_neighbours(points, batch, max_num_neighbors, loop=loop,
                                                      radius=r, workers=torch.get_num_threads())
        else:
            table = _torch_search(points, batch, max_num_neighbors, loop=loop, radius=r)
        return _edges_from_rows(table.to(points.device), flow)
    if use_kdtree:
        centre, neighbour = _kdtree_search.neighbours_within(points, batch, r, loop=loop)
    else:
        with torch.no_grad():
            blocks = _blocked_search.sort_into_blocks(
                points, batch, _blocked_search.block_size_for(points.device))
            centre, neighbour = _blocked_search.neighbours_within(
                blocks, r, loop=loop,
                tile_elements=_blocked_search.tile_elements_for(points.device))
    return _edge_index(centre.to(points.device), neighbour.to(points.device), flow)
