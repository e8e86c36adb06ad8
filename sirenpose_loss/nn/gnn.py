"""A small message-passing network over a keypoint graph (torch-geometric layers)."""
import math
from typing import Optional

import torch
from torch import nn

from ..graphs.keypoint_graph import KeypointGraph

_CONVS = ("graph", "gcn")


def _make_conv(kind: str, in_features: int, out_features: int) -> nn.Module:
    try:
        from torch_geometric.nn import GCNConv, GraphConv
    except ImportError as exc:  # optional dependency
        raise ImportError("KeypointGNN needs torch-geometric: pip install torch-geometric") from exc
    if kind == "graph":
        # x_i' = W1 x_i + W2 mean_{j->i} w_ji x_j: a keypoint keeps its own identity (separate
        # root weight) and averages its neighbours, whatever its degree.
        return GraphConv(in_features, out_features, aggr="mean")
    return GCNConv(in_features, out_features)  # symmetric-normalised A + I (Kipf & Welling)


def _as_graph(graph, num_nodes: Optional[int]) -> KeypointGraph:
    if isinstance(graph, KeypointGraph):
        if num_nodes is not None and num_nodes != graph.num_nodes:
            raise ValueError(f"num_nodes must match the graph's {graph.num_nodes} keypoints, got "
                             f"{num_nodes}")
        return graph
    if isinstance(graph, torch.Tensor):
        if num_nodes is None:
            raise ValueError("num_nodes is needed when graph is an edge_index tensor, got None")
        return KeypointGraph(graph, num_nodes)
    raise TypeError(f"graph must be a KeypointGraph or a [2, E] edge_index tensor, got "
                    f"{type(graph).__name__}")


class KeypointGNN(nn.Module):
    """Message passing over the keypoints of a pose, batched over poses (or frames).

    ``x: [..., K, F]`` (e.g. ``[B, K, F]`` or ``[K, F]``) -> ``[..., K, out_features]``.
    The leading dims are flattened into a batch of copies of the graph, torch_geometric style
    (node ``b * K + k``), so one layer call processes every pose at once.

    Layers: ``conv(F -> H)``, then ``num_layers - 1`` times ``conv(H -> H)`` with a residual
    connection, each followed by the activation, then a per-keypoint ``Linear(H -> out)``.

    Args:
        graph: a :class:`~sirenpose_loss.graphs.KeypointGraph` (its edge weights are used) or a
            ``[2, E]`` edge_index with ``num_nodes``.
        conv: ``"graph"`` (``GraphConv``, mean aggregation, default) or ``"gcn"`` (``GCNConv``).
            Both run on CPU and CUDA with plain torch (no torch-scatter / torch-sparse needed).
        undirected: message passing uses both directions of every edge (default True, since
            skeletons list each bone once); False keeps the edges as given (source -> target).
    """

    def __init__(self, graph, in_features: int, hidden_features: int, out_features: int, *,
                 num_nodes: Optional[int] = None, num_layers: int = 2, conv: str = "graph",
                 activation: type = nn.SiLU, undirected: bool = True):
        super().__init__()
        if conv not in _CONVS:
            raise ValueError(f"conv must be one of {', '.join(map(repr, _CONVS))}, got {conv!r}")
        if isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers < 1:
            raise ValueError(f"num_layers must be an int >= 1, got {num_layers!r}")
        graph = _as_graph(graph, num_nodes)
        if undirected:
            graph = graph.undirected()
        self.num_nodes = graph.num_nodes
        self.in_features = in_features
        self.register_buffer("edge_index", graph.edge_index, persistent=False)
        self.register_buffer("edge_weight", graph.edge_weight, persistent=False)
        self.convs = nn.ModuleList(
            [_make_conv(conv, in_features if i == 0 else hidden_features, hidden_features)
             for i in range(num_layers)])
        self.activation = activation()
        self.readout = nn.Linear(hidden_features, out_features)

    def _batched_edges(self, copies: int):
        """The graph repeated ``copies`` times, copy b on nodes b*K .. b*K + K - 1."""
        offsets = torch.arange(copies, device=self.edge_index.device) * self.num_nodes
        edge_index = (self.edge_index[:, None, :] + offsets[None, :, None]).reshape(2, -1)
        weight = None if self.edge_weight is None else self.edge_weight.repeat(copies)
        return edge_index, weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 2 or x.shape[-2] != self.num_nodes or x.shape[-1] != self.in_features:
            raise ValueError(f"x must have shape [..., K, F] = [..., {self.num_nodes}, "
                             f"{self.in_features}], got {list(x.shape)}")
        lead = x.shape[:-2]
        copies = math.prod(lead)
        h = x.reshape(copies * self.num_nodes, self.in_features)
        edge_index, weight = self._batched_edges(copies)
        for i, conv in enumerate(self.convs):
            out = conv(h, edge_index, weight)
            h = self.activation(out if i == 0 else out + h)
        return self.readout(h).reshape(*lead, self.num_nodes, -1)
