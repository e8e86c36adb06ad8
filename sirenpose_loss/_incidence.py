"""Per-node incidence (CSR) of a keypoint graph, for the deterministic CUDA backward.

The graph term's gradient of keypoint n is a sum over the edges touching n. Gathering it in a
fixed order (instead of scattering with float atomics) needs, for every node, the list of its
edge endpoints: ``slot = 2 * e + role`` with role 0 when n is the source of edge e and 1 when it
is the target. Slots of a node are sorted ascending, so the order is fixed by the graph alone.
"""
from typing import Tuple

import torch

from ._value_checks import tracing as _tracing


def build_incidence(edge_index: torch.Tensor, num_nodes: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Return ``(ptr [num_nodes + 1], slot [2E])`` (int64, on edge_index's device).

    Node n's incident slots are ``slot[ptr[n]:ptr[n + 1]]``. Raises IndexError when an index is
    outside [0, num_nodes); this check reads the data once (one device sync on CUDA), which is
    why callers cache the result per graph. While torch.compile traces (or a CUDA graph is
    captured) the check is skipped and nothing syncs: an out-of-range index then falls outside
    every node's slots, ``ptr[0] != 0`` or ``ptr[-1] != 2E`` shows it, and the CUDA kernels
    return NaN instead of reading out of bounds.
    """
    if edge_index.dim() != 2 or edge_index.shape[0] != 2:
        raise ValueError(f"edge_index must have shape [2, E], got {list(edge_index.shape)}")
    nodes = edge_index.t().reshape(-1).long()              # [src0, dst0, src1, dst1, ...]
    if not _tracing() and nodes.numel() and bool(((nodes < 0) | (nodes >= num_nodes)).any()):
        lo, hi = int(nodes.min()), int(nodes.max())
        raise IndexError(f"edge_index values must be in [0, {num_nodes}) (K = {num_nodes} "
                         f"keypoints), got values in [{lo}, {hi}]")
    # A stable sort keeps edge order within a node; each node's first slot is found by binary
    # search, which (unlike bincount) needs no data-dependent output size.
    sorted_nodes, slot = torch.sort(nodes, stable=True)
    ptr = torch.searchsorted(sorted_nodes, torch.arange(num_nodes + 1, dtype=torch.long,
                                                        device=nodes.device))
    _mark_built((ptr, slot))
    return ptr, slot


def _tensors(built) -> tuple:
    """A cached structure: one tensor (a packed edge list) or a tuple of them (ptr, slot)."""
    return (built,) if isinstance(built, torch.Tensor) else tuple(built)


def _mark_built(built) -> None:
    """Note the stream a cached structure was built on (CUDA): a read on another stream waits."""
    first = _tensors(built)[0]
    if first.is_cuda and not _tracing() and not hasattr(first, "_sirenpose_built"):
        stream = torch.cuda.current_stream(first.device)
        first._sirenpose_built = (stream.record_event(), stream)


def _ready_on_current_stream(built) -> None:
    """Make a cached incidence safe to read on the current CUDA stream.

    When it was built on another stream, the current stream waits for the build (an event, no
    host sync), and the caching allocator is told that the tensors are in use on this stream, so
    their memory is not reused while a kernel here may still read them (e.g. after the cache
    drops them).
    """
    tensors = _tensors(built)
    mark = getattr(tensors[0], "_sirenpose_built", None)
    if mark is None:
        return
    event, stream = mark
    current = torch.cuda.current_stream(tensors[0].device)
    if current == stream:
        return
    current.wait_event(event)
    for t in tensors:
        t.record_stream(current)


_CACHE: "dict" = {}
_CACHE_SIZE = 32


def cached_incidence(edge_index: torch.Tensor, num_nodes: int, graph=None, build=build_incidence):
    """build_incidence once per graph: on the KeypointGraph when given, else keyed on the tensor.

    The key includes the tensor's version counter, so an in-place edit of edge_index rebuilds.
    On CUDA a cached incidence may be read on another stream than the one that built it: that
    stream then waits for the build (see _ready_on_current_stream).
    Under torch.compile (and CUDA-graph capture) the incidence is built inside the traced graph
    on every call instead (a sort of 2E indices on the device, no host sync, no cache).
    ``build`` replaces build_incidence (a graph's own cache then is not used).
    """
    if _tracing():
        return build(edge_index, num_nodes)
    if graph is not None and hasattr(graph, "incidence") and build is build_incidence:
        hit = graph.incidence(num_nodes)
        _ready_on_current_stream(hit)
        return hit
    if edge_index.is_inference():  # no version counter: an in-place edit would go unseen
        return build(edge_index, num_nodes)
    key = (edge_index.data_ptr(), edge_index._version, edge_index.device, tuple(edge_index.shape),
           edge_index.stride(), edge_index.dtype, num_nodes, build)
    hit = _CACHE.get(key)
    if hit is None:
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
        # Keep edge_index alive with the entry so its data_ptr cannot be reused by another tensor.
        hit = _CACHE[key] = (build(edge_index, num_nodes), edge_index)
        _mark_built(hit[0])
    _ready_on_current_stream(hit[0])
    return hit[0]
