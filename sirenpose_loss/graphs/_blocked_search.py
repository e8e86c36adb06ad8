"""Exact k-nearest and radius neighbour search in plain torch: the path CUDA tensors take (and
CPU tensors when scipy is missing or ``method="torch"``).

Points are cut into compact blocks (the leaves of a balanced kd partition, see
``_spatial_partition``), stored leaf after leaf. For one block of query points, only the
candidate blocks whose bounding box can hold a neighbour are read: a box is skipped when its
smallest possible distance to the query block's box exceeds the search radius, which is ``r``
for a radius search and, for k-NN, the largest k-th distance that the query block finds among
itself and the two blocks beside it in leaf order (an upper bound on every one of its true k-th
distances).

Exactness: distances come from ``torch.cdist`` without its matmul shortcut (coordinate
differences, accurate to a few ulps); a box is skipped only when its gap exceeds the radius by
a relative ``PRUNE_MARGIN`` (1e-4), far above the rounding of either computation, so skipping
never loses a neighbour. The result is brute force's, up to ties at exactly the k-th distance.

Memory: one ``[block, chunk]`` distance tile at a time (``TILE_ELEMENTS`` floats), merged into
a running top-k; the output itself is ``[N, k]``.
"""
import math
from dataclasses import dataclass
from typing import List, Optional, Tuple

import torch

from ._spatial_partition import kd_leaves, segment_extremes

# Leaf sizes: small leaves waste fewer distance evaluations, large ones run fewer (Python-level)
# iterations; a GPU is bound by kernel launches long before it is bound by arithmetic.
BLOCK_SIZE_CPU = 64
BLOCK_SIZE_CUDA = 512
TILE_ELEMENTS_CPU = 1 << 22      # 16 MB of float32 per distance tile
TILE_ELEMENTS_CUDA = 1 << 25     # 128 MB
PRUNE_MARGIN = 1e-4              # relative; float32 rounding of a distance is ~1e-7


@dataclass
class SortedBlocks:
    order: torch.Tensor                  # [N] sorted position -> original index
    points: torch.Tensor                 # [N, D] in sorted order, compute dtype
    batch: Optional[torch.Tensor]        # [N] in sorted order
    ptr: List[int]                       # block b = sorted positions ptr[b]:ptr[b + 1]
    low: torch.Tensor                    # [num_blocks, D] bounding boxes
    high: torch.Tensor
    batch_low: Optional[torch.Tensor]    # [num_blocks] range of graph ids in each block
    batch_high: Optional[torch.Tensor]

    @property
    def num_points(self) -> int:
        return self.points.shape[0]

    @property
    def num_blocks(self) -> int:
        return len(self.ptr) - 1

    def positions(self, blocks: torch.Tensor) -> torch.Tensor:
        """Sorted positions of the points of the given blocks, block after block."""
        ptr = self._ptr_tensor
        starts, lengths = ptr[blocks], ptr[blocks + 1] - ptr[blocks]
        block_offsets = torch.cumsum(lengths, 0) - lengths
        total = int(lengths.sum())
        return torch.repeat_interleave(starts - block_offsets, lengths, output_size=total) + \
            torch.arange(total, device=blocks.device)

    def __post_init__(self):
        self._ptr_tensor = torch.tensor(self.ptr, dtype=torch.long, device=self.points.device)


def block_size_for(device: torch.device, k: int = 0) -> int:
    """Leaf size: the device's default, and at least 2 (k + 1) so that a query block and its
    two neighbours in leaf order usually hold k candidates (a tight first bound)."""
    base = BLOCK_SIZE_CPU if device.type == "cpu" else BLOCK_SIZE_CUDA
    return max(base, 2 * (k + 1))


def tile_elements_for(device: torch.device) -> int:
    return TILE_ELEMENTS_CPU if device.type == "cpu" else TILE_ELEMENTS_CUDA


def sort_into_blocks(points: torch.Tensor, batch: Optional[torch.Tensor],
                     block_size: int) -> SortedBlocks:
    exact_dtypes = (torch.float32, torch.float64)
    compute_dtype = points.dtype if points.dtype in exact_dtypes else torch.float32
    order, ptr = kd_leaves(points, batch, block_size)
    pts = points[order].to(compute_dtype)
    bat = None if batch is None else batch[order]
    lengths = torch.tensor(ptr, dtype=torch.long, device=points.device).diff()
    block_of = torch.repeat_interleave(torch.arange(len(ptr) - 1, device=points.device), lengths)
    low, high = segment_extremes(pts, block_of, len(ptr) - 1)
    batch_low = batch_high = None
    if bat is not None:
        batch_low, batch_high = segment_extremes(bat, block_of, len(ptr) - 1)
    return SortedBlocks(order, pts, bat, ptr, low, high, batch_low, batch_high)


def _distance_tile(queries: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """Euclidean distances [Q, C] from coordinate differences, in one kernel. (cdist's default
    |a|^2 - 2ab + |b|^2 matmul form cancels badly for close points, the ones that matter.)"""
    return torch.cdist(queries, candidates, compute_mode="donot_use_mm_for_euclid_dist")


def _box_gap(blocks: SortedBlocks, query_block: int) -> torch.Tensor:
    """Smallest possible distance between the query block's box and every box [B]."""
    low_q, high_q = blocks.low[query_block], blocks.high[query_block]
    gap = torch.maximum(blocks.low - high_q, low_q - blocks.high).clamp_min(0)
    return gap.square().sum(1).sqrt()


def _candidate_blocks(blocks: SortedBlocks, query_block: int, bound):
    """Blocks that may hold a point within ``bound`` of a query of the block (with a relative
    margin far above the rounding of distances and box gaps, so none is lost to rounding)."""
    near = _box_gap(blocks, query_block) <= bound * (1 + PRUNE_MARGIN)
    if blocks.batch is not None:  # a block can only hold neighbours from the same graphs
        near &= (blocks.batch_low <= blocks.batch_high[query_block]) & \
                (blocks.batch_high >= blocks.batch_low[query_block])
    return near.nonzero().squeeze(1)


def _masked_tile(blocks: SortedBlocks, q_start: int, q_end: int, cand_pos: torch.Tensor,
                 loop: bool) -> torch.Tensor:
    tile = _distance_tile(blocks.points[q_start:q_end], blocks.points[cand_pos])
    if not loop:  # a query's own column: O(candidates), not a full [Q, C] comparison
        offset = cand_pos - q_start
        own = ((offset >= 0) & (offset < q_end - q_start)).nonzero().squeeze(1)
        tile[offset[own], own] = math.inf
    if blocks.batch is not None:
        tile.masked_fill_(blocks.batch[q_start:q_end, None] != blocks.batch[None, cand_pos],
                          math.inf)
    return tile


def _window(blocks: SortedBlocks, query_block: int) -> Tuple[int, int]:
    """The query block and the blocks beside it in leaf order (near it in space)."""
    return max(query_block - 1, 0), min(query_block + 1, blocks.num_blocks - 1)


def nearest_neighbours(blocks: SortedBlocks, k: int, *, loop: bool,
                       radius: Optional[float] = None,
                       tile_elements: int) -> torch.Tensor:
    """[N, k] original indices of each point's k nearest neighbours (rows by original index),
    ordered by (distance, index), -1 where there are fewer. With ``radius``, only neighbours
    strictly closer than the radius (a radius graph capped at k neighbours)."""
    n = blocks.num_points
    device = blocks.points.device
    out = torch.full((n, k), -1, dtype=torch.long, device=device)
    for qb in range(blocks.num_blocks):
        q_start, q_end = blocks.ptr[qb], blocks.ptr[qb + 1]
        first, last = _window(blocks, qb)
        window = torch.arange(blocks.ptr[first], blocks.ptr[last + 1], device=device)
        best_dist, best_pos = _merge_top_k(blocks, q_start, q_end, window, k, loop, radius,
                                         tile_elements, None, None)
        if radius is not None:
            bound = radius
        elif best_dist.shape[1] < k:
            bound = math.inf
        else:  # every query's k-th distance is at most this: farther boxes cannot matter
            bound = best_dist.amax()
        near = _candidate_blocks(blocks, qb, bound)
        near = near[(near < first) | (near > last)]
        best_dist, best_pos = _merge_top_k(blocks, q_start, q_end, blocks.positions(near), k, loop,
                                         radius, tile_elements, best_dist, best_pos)
        neighbours, found = _order_rows(best_dist, blocks.order[best_pos])
        out[blocks.order[q_start:q_end], :found] = neighbours
    return out


def _merge_top_k(blocks, q_start, q_end, cand, k, loop, radius, tile_elements, best_dist,
                 best_pos):
    """Running k smallest squared distances (and sorted positions) of the queries over the
    candidates, read in tiles of at most ``tile_elements``."""
    rows = q_end - q_start
    if best_dist is None:
        best_dist = blocks.points.new_empty((rows, 0))
        best_pos = torch.empty((rows, 0), dtype=torch.long, device=cand.device)
    chunk = max(k, tile_elements // rows)
    for s in range(0, cand.numel(), chunk):
        pos = cand[s:s + chunk]
        tile = _masked_tile(blocks, q_start, q_end, pos, loop)
        if radius is not None:
            tile.masked_fill_(tile >= radius, math.inf)
        tile_dist, pick = tile.topk(min(k, tile.shape[1]), dim=1, largest=False, sorted=False)
        merged_dist = torch.cat([best_dist, tile_dist], 1)
        merged_pos = torch.cat([best_pos, pos[pick]], 1)
        best_dist, pick = merged_dist.topk(min(k, merged_dist.shape[1]), dim=1, largest=False,
                                       sorted=False)
        best_pos = merged_pos.gather(1, pick)
    return best_dist, best_pos


def _order_rows(dist: torch.Tensor, neighbours: torch.Tensor) -> Tuple[torch.Tensor, int]:
    """Sort each row by (distance, neighbour index); entries at inf distance become -1."""
    neighbours, perm = neighbours.sort(dim=1)
    dist = dist.gather(1, perm)
    dist, perm = dist.sort(dim=1, stable=True)
    neighbours = neighbours.gather(1, perm)
    neighbours.masked_fill_(torch.isinf(dist), -1)
    return neighbours, neighbours.shape[1]


def neighbours_within(blocks: SortedBlocks, radius: float, *, loop: bool,
                      tile_elements: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """All pairs strictly closer than the radius: (centre, neighbour) original indices, sorted
    by centre, then distance, then neighbour index."""
    centres, neighbours, dists = [], [], []
    for qb in range(blocks.num_blocks):
        q_start, q_end = blocks.ptr[qb], blocks.ptr[qb + 1]
        cand = blocks.positions(_candidate_blocks(blocks, qb, radius))
        chunk = max(1, tile_elements // (q_end - q_start))
        for s in range(0, cand.numel(), chunk):
            pos = cand[s:s + chunk]
            tile = _masked_tile(blocks, q_start, q_end, pos, loop)
            row, col = (tile < radius).nonzero(as_tuple=True)
            centres.append(blocks.order[q_start + row])
            neighbours.append(blocks.order[pos[col]])
            dists.append(tile[row, col])
    device = blocks.points.device
    if not centres:
        empty = torch.empty(0, dtype=torch.long, device=device)
        return empty, empty
    centre, neighbour, dist = torch.cat(centres), torch.cat(neighbours), torch.cat(dists)
    perm = _lexsort(neighbour, dist, centre)
    return centre[perm], neighbour[perm]


def _lexsort(*keys: torch.Tensor) -> torch.Tensor:
    """Permutation sorting by the last key, then the one before, ... (as numpy.lexsort)."""
    perm = torch.arange(keys[0].numel(), device=keys[0].device)
    for key in keys:  # least significant first; every sort stable
        perm = perm[torch.sort(key[perm], stable=True).indices]
    return perm
