"""KeypointGraph: an edge list over a fixed set of keypoints, ready for the losses and for
torch-geometric layers."""
from typing import Optional, Sequence, Tuple, Union

import torch

from .._incidence import build_incidence
from ._checks import check_float_tensor

Nodes = Union[torch.Tensor, Sequence[int], Sequence[bool]]


def _as_edge_index(edge_index) -> torch.Tensor:
    """A [2, E] integer tensor, or a sequence of (i, j) pairs, as an int64 [2, E] tensor."""
    if not isinstance(edge_index, torch.Tensor):
        pairs = torch.as_tensor(list(edge_index), dtype=torch.long)
        if pairs.numel() and (pairs.dim() != 2 or pairs.shape[1] != 2):
            raise ValueError(f"edge_index given as a sequence must hold (i, j) pairs, got shape "
                             f"{list(pairs.shape)}")
        return pairs.reshape(-1, 2).t().contiguous()
    if edge_index.is_floating_point() or edge_index.is_complex() or edge_index.dtype == torch.bool:
        raise TypeError(f"edge_index must be an integer tensor, got dtype {edge_index.dtype}")
    if edge_index.dim() != 2 or edge_index.shape[0] != 2:
        raise ValueError(f"edge_index must have shape [2, E], got {list(edge_index.shape)}")
    return edge_index.long()


def _check_edge_weight(edge_weight, num_edges: int, device) -> Optional[torch.Tensor]:
    if edge_weight is None:
        return None
    check_float_tensor(edge_weight, "edge_weight", "[E] (or None)")
    if tuple(edge_weight.shape) != (num_edges,):
        raise ValueError(f"edge_weight must have shape [E] = [{num_edges}], got "
                         f"{list(edge_weight.shape)}")
    if edge_weight.device != device:
        raise ValueError(f"edge_weight must be on the same device as edge_index ({device}), got "
                         f"{edge_weight.device}")
    if edge_weight.requires_grad:
        raise ValueError("edge_weight is a constant of the graph and must not require grad, got "
                         "a tensor that requires grad; pass edge_weight.detach()")
    if edge_weight.numel() and bool((edge_weight < 0).any()):
        raise ValueError(f"edge_weight must be non-negative, got a minimum of "
                         f"{float(edge_weight.min())}")
    return edge_weight


class KeypointGraph:
    """A graph over ``num_nodes`` keypoints in torch-geometric's convention.

    Attributes (read-only):
        edge_index: ``[2, E]`` int64; edge ``e`` joins ``edge_index[0, e]`` (source) and
            ``edge_index[1, e]`` (target). Builders list each undirected edge once, because the
            SirenPose loss sums edges as given (an edge listed both ways counts twice); call
            :meth:`undirected` for message passing, where both directions are needed.
        num_nodes: number of keypoints ``K`` (isolated keypoints allowed).
        names: optional keypoint names (length ``K``).
        edge_weight: optional ``[E]`` non-negative weights, kept aligned with the edges.
        name: optional label (e.g. ``"coco17"``).

    Pass it wherever a loss takes ``edge_index``: its edge weights are used and the per-node
    incidence the CUDA backward needs is built once per graph and cached here.

    Args:
        edge_index: ``[2, E]`` integer tensor, or a sequence of ``(i, j)`` pairs.
        num_nodes: ``K``; inferred as ``len(names)`` or ``max(edge_index) + 1`` when None.
    """

    def __init__(self, edge_index, num_nodes: Optional[int] = None, *,
                 names: Optional[Sequence[str]] = None,
                 edge_weight: Optional[torch.Tensor] = None, name: Optional[str] = None):
        edge_index = _as_edge_index(edge_index)
        if names is not None:
            names = tuple(names)
            if not all(isinstance(n, str) for n in names):
                raise TypeError(f"names must be a sequence of str, got "
                                f"{[type(n).__name__ for n in names]}")
        if num_nodes is None:
            num_nodes = len(names) if names is not None else (
                int(edge_index.max()) + 1 if edge_index.numel() else 0)
        if isinstance(num_nodes, bool) or not isinstance(num_nodes, int) or num_nodes < 0:
            raise ValueError(f"num_nodes must be an int >= 0, got {num_nodes!r}")
        if names is not None and len(names) != num_nodes:
            raise ValueError(f"names must have num_nodes = {num_nodes} entries, got {len(names)}")
        if edge_index.numel() and (bool((edge_index < 0).any())
                                   or bool((edge_index >= num_nodes).any())):
            raise IndexError(f"edge_index values must be in [0, {num_nodes}) (num_nodes = "
                             f"{num_nodes}), got values in [{int(edge_index.min())}, "
                             f"{int(edge_index.max())}]")
        edge_weight = _check_edge_weight(edge_weight, edge_index.shape[1], edge_index.device)
        self._set(edge_index, num_nodes, names, edge_weight, name)

    def _set(self, edge_index, num_nodes, names, edge_weight, name):
        self._edge_index = edge_index
        self._num_nodes = num_nodes
        self._names = names
        self._edge_weight = edge_weight
        self._name = name
        self._incidence_cache = {}

    @classmethod
    def _trusted(cls, edge_index, num_nodes, names, edge_weight, name) -> "KeypointGraph":
        """Build from parts already checked (no second range check, which syncs on CUDA)."""
        graph = cls.__new__(cls)
        graph._set(edge_index, num_nodes, names, edge_weight, name)
        return graph

    # ------------------------------------------------------------------------------ attributes
    @property
    def edge_index(self) -> torch.Tensor:
        return self._edge_index

    @property
    def num_nodes(self) -> int:
        return self._num_nodes

    @property
    def names(self) -> Optional[Tuple[str, ...]]:
        return self._names

    @property
    def edge_weight(self) -> Optional[torch.Tensor]:
        return self._edge_weight

    @property
    def name(self) -> Optional[str]:
        return self._name

    @property
    def num_edges(self) -> int:
        return self._edge_index.shape[1]

    @property
    def device(self) -> torch.device:
        return self._edge_index.device

    # ------------------------------------------------------------------------------ conversions
    def to(self, device) -> "KeypointGraph":
        """The graph on ``device`` (self when already there; a new graph, with an empty
        incidence cache, otherwise)."""
        device = torch.device(device)
        if device == self.device:
            return self
        weight = None if self._edge_weight is None else self._edge_weight.to(device)
        return KeypointGraph._trusted(self._edge_index.to(device), self._num_nodes, self._names,
                                      weight, self._name)

    def cpu(self) -> "KeypointGraph":
        return self.to("cpu")

    def cuda(self) -> "KeypointGraph":
        return self.to("cuda")

    def undirected(self) -> "KeypointGraph":
        """Every edge in both directions, for message passing (GNN layers aggregate over
        incoming edges only). Duplicates are merged, keeping the weight of the first occurrence
        (an edge given in both directions keeps each direction's own weight); edges come out
        sorted by (source, target), as torch_geometric.utils.to_undirected returns them.
        Do not pass the result to the SirenPose loss unless you mean each edge to count twice.
        """
        ei = self._edge_index
        both = torch.cat([ei, ei.flip(0)], dim=1)
        key = both[0] * max(self._num_nodes, 1) + both[1]
        unique_keys, inverse = torch.unique(key, sorted=True, return_inverse=True)
        position = torch.arange(key.numel(), device=ei.device)
        first = torch.full_like(unique_keys, key.numel()).scatter_reduce_(
            0, inverse, position, reduce="amin")
        weight = None
        if self._edge_weight is not None:
            weight = torch.cat([self._edge_weight, self._edge_weight])[first]
        return KeypointGraph._trusted(both[:, first], self._num_nodes, self._names, weight,
                                      self._name)

    def to_pyg(self):
        """A ``torch_geometric.data.Data`` with ``edge_index``, ``num_nodes`` and (when set)
        ``edge_weight``: the edges as stored here (use ``.undirected().to_pyg()`` for GNNs)."""
        try:
            from torch_geometric.data import Data
        except ImportError as exc:  # optional dependency
            raise ImportError("KeypointGraph.to_pyg() needs torch-geometric: "
                              "pip install torch-geometric") from exc
        extra = {} if self._edge_weight is None else {"edge_weight": self._edge_weight}
        return Data(edge_index=self._edge_index, num_nodes=self._num_nodes, **extra)

    def subgraph(self, nodes: Nodes) -> "KeypointGraph":
        """The graph on the kept nodes, re-indexed 0..K'-1 in their original order (as
        ``torch_geometric.utils.subgraph(..., relabel_nodes=True)``): after keypoints or
        Gaussians are pruned. Edges touching a dropped node are removed; the others keep their
        order and their weights.

        Args:
            nodes: a bool mask ``[num_nodes]`` (True = keep), or the indices of the kept nodes
                (distinct, any order; the new numbering follows the original order).
        """
        keep = self._node_mask(nodes)
        new_id = torch.cumsum(keep.long(), 0) - 1
        src, dst = self._edge_index
        edge_kept = keep[src] & keep[dst]
        edge_index = new_id[self._edge_index[:, edge_kept]]
        weight = None if self._edge_weight is None else self._edge_weight[edge_kept]
        keep_list = keep.tolist()
        names = None if self._names is None else tuple(
            n for n, k in zip(self._names, keep_list) if k)
        return KeypointGraph._trusted(edge_index, sum(keep_list), names, weight, self._name)

    def _node_mask(self, nodes: Nodes) -> torch.Tensor:
        n = self._num_nodes
        nodes = torch.as_tensor(nodes, device=self.device) if not isinstance(
            nodes, torch.Tensor) else nodes.to(self.device)
        if nodes.dtype == torch.bool:
            if tuple(nodes.shape) != (n,):
                raise ValueError(f"nodes given as a bool mask must have shape [num_nodes] = [{n}], "
                                 f"got {list(nodes.shape)}")
            return nodes
        if nodes.is_floating_point() or nodes.dim() != 1:
            raise TypeError(f"nodes must be a bool mask [num_nodes] or a 1-D integer index, got "
                            f"dtype {nodes.dtype} and shape {list(nodes.shape)}")
        nodes = nodes.long()
        if nodes.numel() and (bool((nodes < 0).any()) or bool((nodes >= n).any())):
            raise IndexError(f"nodes must be indices in [0, {n}), got values in "
                             f"[{int(nodes.min())}, {int(nodes.max())}]")
        keep = torch.zeros(n, dtype=torch.bool, device=self.device)
        keep[nodes] = True
        if int(keep.sum()) != nodes.numel():
            counts = torch.bincount(nodes, minlength=n)
            raise ValueError(f"nodes must not repeat an index, got "
                             f"{int(torch.nonzero(counts > 1)[0])} more than once")
        return keep

    # ------------------------------------------------------------------------------- incidence
    def incidence(self, num_nodes: Optional[int] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """``sirenpose_loss._incidence.build_incidence(edge_index, num_nodes)``, cached.

        The losses call it with ``num_nodes = K`` of the keypoints they get. The cache key holds
        the edge tensor's version counter, so an in-place edit of ``edge_index`` rebuilds.
        """
        n = self._num_nodes if num_nodes is None else int(num_nodes)
        # inference tensors have no version counter (and are rarely edited in place)
        version = None if self._edge_index.is_inference() else self._edge_index._version
        key = (n, version)
        hit = self._incidence_cache.get(key)
        if hit is None:
            hit = build_incidence(self._edge_index, n)
            self._incidence_cache = {key: hit}
        return hit

    def __repr__(self) -> str:
        parts = [f"name={self._name!r}"] if self._name else []
        parts += [f"num_nodes={self._num_nodes}", f"num_edges={self.num_edges}"]
        if self._names is not None:
            shown = ", ".join(self._names[:3]) + (", ..." if self._num_nodes > 3 else "")
            parts.append(f"names=[{shown}]")
        parts.append("edge_weight=None" if self._edge_weight is None
                     else f"edge_weight={self._edge_weight.dtype}")
        parts.append(f"device={self.device}")
        return f"KeypointGraph({', '.join(parts)})"
