"""Argument handling shared by the graph losses of Gaussians: the graph (a tensor or a
``RigidityGraph``), its per-node incidence, per-edge constants and the penalty."""
from typing import Optional

import torch

from .._graph_ops import PENALTY_CODES, graph_incidence
from .._incidence import cached_incidence
from .._value_checks import tracing
from .._validation import check_edge_index, check_edge_range, check_nonnegative, check_points, \
    check_weight


def penalty_code(penalty) -> int:
    code = PENALTY_CODES.get(penalty) if isinstance(penalty, str) else None
    if code is None:
        raise ValueError(f"penalty must be 'squared' or 'norm', got {penalty!r}")
    return code


def check_frames(t, name: str, channels: int, like: Optional[torch.Tensor] = None) -> torch.Tensor:
    """t: [..., T, M, channels], with like's leading shape, dtype and device when given."""
    layout = f"[..., T, M, {channels}]"
    check_points(t, name, layout, 3)
    if t.shape[-1] != channels:
        raise ValueError(f"{name} must have shape {layout}, got shape {list(t.shape)}")
    if like is not None:
        if t.shape[:-1] != like.shape[:-1]:
            raise ValueError(f"{name} must have the leading shape [..., T, M] = "
                             f"{list(like.shape[:-1])} of positions, got shape {list(t.shape)}")
        if t.dtype != like.dtype:
            raise TypeError(f"{name} must have the dtype of positions ({like.dtype}), got {t.dtype}")
        if t.device != like.device:
            raise ValueError(f"{name} must be on the device of positions ({like.device}), got {t.device}")
    return t


class Graph:
    """The edges of a loss call, checked against M nodes: edge_index (int64), the edge weight
    and rest lengths (the graph's unless given) and, for the kernels, the incidence."""

    def __init__(self, edge_index, edge_weight, num_nodes: int, like: torch.Tensor):
        self.graph = None
        if not isinstance(edge_index, torch.Tensor) and hasattr(edge_index, "edge_index"):
            self.graph = edge_index
            graph_nodes = getattr(edge_index, "num_nodes", num_nodes)
            if graph_nodes != num_nodes:
                raise ValueError(f"the graph was built for {graph_nodes} Gaussians but the inputs "
                                 f"have M = {num_nodes}: it is stale; re-index it after pruning "
                                 f"(graph.reindex(keep)) or rebuild it after densification")
            if edge_weight is None:
                edge_weight = getattr(edge_index, "edge_weight", None)
            edge_index = edge_index.edge_index
        check_edge_index(edge_index, num_nodes, like)
        self.edge_index = edge_index if edge_index.dtype == torch.int64 else edge_index.long()
        self.num_nodes = num_nodes
        self.edge_weight = self.constant(edge_weight, "edge_weight", like)

    @property
    def num_edges(self) -> int:
        return self.edge_index.shape[1]

    def constant(self, t, name: str, like: torch.Tensor) -> Optional[torch.Tensor]:
        return check_weight(t, name, (self.num_edges,), "[E]", like)

    def rest_length(self, rest_length, like: torch.Tensor) -> torch.Tensor:
        if rest_length is None and self.graph is not None:
            rest_length = getattr(self.graph, "rest_length", None)
        if rest_length is None:
            raise ValueError("rest_length must be a tensor of shape [E] (or the graph must carry "
                             "rest lengths), got None")
        return self.constant(rest_length, "rest_length", like)

    def incidence(self):
        try:
            if hasattr(self.graph, "graph_incidence") and not tracing():
                return self.graph.graph_incidence(self.num_nodes)
            return cached_incidence(self.edge_index, self.num_nodes, build=graph_incidence)
        except IndexError as exc:
            raise IndexError(f"{exc}; a graph built for other Gaussians is stale: rebuild it, or "
                             f"re-index it after pruning") from None

    def check_values(self) -> None:
        """For the reference fallback, which has no kernel to check them."""
        check_edge_range(self.edge_index, self.num_nodes)
        check_nonnegative(self.edge_weight, "edge_weight")
