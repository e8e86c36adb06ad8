"""The neighbour graph of the rigidity losses: each Gaussian's k nearest other Gaussians, with
Dynamic 3D Gaussians' edge weights exp(-lambda d^2) and the rest lengths d.

When to rebuild: the graph indexes Gaussians by position in the parameter tensors, so it is
tied to one set of Gaussians.
* After pruning, ``graph.reindex(keep)`` drops the edges of removed Gaussians and renumbers the
  rest (centres that lost neighbours keep fewer than k; rebuild when many did).
* After densification (new Gaussians appended), rebuild: ``graph.rebuild(points)``. New
  Gaussians have no edges until then.
* A graph whose indices reach past the current number of Gaussians is stale: the losses raise
  an IndexError (never read out of bounds).
"""
from dataclasses import dataclass, field
from typing import Optional

import torch

from ._checks import check_count, check_points
from .neighbour_graphs import knn_graph

DEFAULT_K = 20
DEFAULT_LAMBDA = 2000.0


@dataclass
class RigidityGraph:
    """``edge_index [2, E]`` (row 0 the neighbour j, row 1 the centre i), ``edge_weight [E]``
    = exp(-lambda d^2), ``rest_length [E]`` = d at build time, over ``num_nodes`` Gaussians."""
    edge_index: torch.Tensor
    edge_weight: torch.Tensor
    rest_length: torch.Tensor
    num_nodes: int
    k: int = DEFAULT_K
    weight_lambda: float = DEFAULT_LAMBDA
    _incidence_cache: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def num_edges(self) -> int:
        return self.edge_index.shape[1]

    def graph_incidence(self, num_nodes: Optional[int] = None) -> torch.Tensor:
        """The per-node CSR of the edges that the kernels gather gradients over, built once."""
        from .._graph_ops import graph_incidence
        n = self.num_nodes if num_nodes is None else int(num_nodes)
        version = None if self.edge_index.is_inference() else self.edge_index._version
        key = (n, version)
        if key not in self._incidence_cache:
            self._incidence_cache = {key: graph_incidence(self.edge_index, n)}
        return self._incidence_cache[key]

    def reindex(self, keep: torch.Tensor) -> "RigidityGraph":
        """The graph after pruning with a boolean ``keep [num_nodes]`` mask (True = kept)."""
        if not isinstance(keep, torch.Tensor) or keep.dtype != torch.bool:
            raise TypeError(f"keep must be a bool tensor of shape [{self.num_nodes}], got "
                            f"{type(keep).__name__ if not isinstance(keep, torch.Tensor) else keep.dtype}")
        if keep.shape != (self.num_nodes,):
            raise ValueError(f"keep must have shape [{self.num_nodes}] (one flag per Gaussian of "
                             f"the graph), got {list(keep.shape)}")
        keep = keep.to(self.edge_index.device)
        new_id = torch.cumsum(keep.long(), 0) - 1
        kept = keep[self.edge_index[0]] & keep[self.edge_index[1]]
        return RigidityGraph(new_id[self.edge_index[:, kept]], self.edge_weight[kept],
                             self.rest_length[kept], int(keep.sum()), self.k, self.weight_lambda)

    def rebuild(self, points: torch.Tensor) -> "RigidityGraph":
        """A fresh graph over ``points`` with this graph's k and lambda (after densification)."""
        return rigidity_graph(points, self.k, weight_lambda=self.weight_lambda)

    def to(self, device) -> "RigidityGraph":
        return RigidityGraph(self.edge_index.to(device), self.edge_weight.to(device),
                             self.rest_length.to(device), self.num_nodes, self.k,
                             self.weight_lambda)


@torch.no_grad()
def rigidity_graph(points: torch.Tensor, k: int = DEFAULT_K, *,
                   weight_lambda: float = DEFAULT_LAMBDA, method: str = "auto") -> RigidityGraph:
    """The k nearest other Gaussians of every Gaussian (Dynamic 3D Gaussians' graph).

    Args:
        points: ``[M, 3]`` Gaussian centres at the rest frame (finite).
        k: neighbours per Gaussian (20 in Dynamic 3D Gaussians); the point itself is excluded.
        weight_lambda: edge weights are ``exp(-weight_lambda * d^2)`` (2000 there; it assumes
            their scene scale).
        method: the search backend of :func:`knn_graph`.

    Returns:
        A :class:`RigidityGraph`, edges grouped by centre, nearest first.
    """
    check_points(points)
    k = check_count(k, "k")
    if isinstance(weight_lambda, bool) or not isinstance(weight_lambda, (int, float)) \
            or not weight_lambda >= 0 or weight_lambda == float("inf"):
        raise ValueError(f"weight_lambda must be a non-negative finite number, got {weight_lambda!r}")
    edge_index = knn_graph(points, k, loop=False, method=method)
    offset = points[edge_index[0]].double() - points[edge_index[1]].double()
    sq = offset.pow(2).sum(-1)
    weight = torch.exp(-float(weight_lambda) * sq).to(points.dtype)
    return RigidityGraph(edge_index, weight, sq.sqrt().to(points.dtype), points.shape[0], k,
                         float(weight_lambda))
