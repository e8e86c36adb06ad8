"""Fully connected keypoint graphs."""
import numbers

import torch

from .keypoint_graph import KeypointGraph


def fully_connected_graph(num_nodes: int, *, loop: bool = False, device=None) -> KeypointGraph:
    """Every pair of the ``num_nodes`` nodes joined once: ``(i, j)`` with ``i < j``, in
    row-major order (``(0, 1), (0, 2), ..., (1, 2), ...``), ``num_nodes * (num_nodes - 1) / 2``
    edges; with ``loop=True`` also ``(i, i)`` (placed before ``i``'s other edges).

    Each undirected edge is listed once, as the SirenPose loss expects; ``.undirected()`` gives
    both directions for message passing.
    """
    if isinstance(num_nodes, bool) or not isinstance(num_nodes, numbers.Integral):
        raise TypeError(f"num_nodes must be an int >= 0, got {type(num_nodes).__name__} "
                        f"{num_nodes!r}")
    if num_nodes < 0:
        raise ValueError(f"num_nodes must be >= 0, got {num_nodes}")
    num_nodes = int(num_nodes)
    offset = 0 if loop else 1
    edge_index = torch.triu_indices(num_nodes, num_nodes, offset=offset, device=device)
    return KeypointGraph._trusted(edge_index, num_nodes, None, None,
                                  "fully_connected" + ("_loop" if loop else ""))
