"""Graph smoothness loss: a per-Gaussian feature (velocity, scene flow, colour) varies little
between neighbours."""
from typing import Optional

import torch

from .. import _graph_ops
from .. import reference as _reference
from .._backend import COMPILED
from .._ops import NONE
from .._validation import check_points, reduction_code
from ._graph_inputs import Graph, penalty_code
from ._graph_module import GraphLossModule


def graph_smoothness_loss(features: torch.Tensor, edge_index, *,
                          edge_weight: Optional[torch.Tensor] = None, penalty: str = "squared",
                          reduction: str = "mean") -> torch.Tensor:
    r"""Graph smoothness: :math:`r_e = f_j - f_i` over ``features [..., M, C]``.

    ``edge_index``, ``edge_weight``, ``penalty`` as in :func:`local_rigidity_loss`;
    ``"none"`` gives ``[..., E]``.
    """
    code = reduction_code(reduction)
    pen = penalty_code(penalty)
    check_points(features, "features", "[..., M, C]", 2)
    graph = Graph(edge_index, edge_weight, features.shape[-2], features)
    if not COMPILED:
        graph.check_values()
        return _reference.graph_smoothness_loss(features, graph.edge_index,
                                                edge_weight=graph.edge_weight, penalty=penalty,
                                                reduction=reduction)
    incidence = graph.incidence()
    loss, terms = _graph_ops.graph_smoothness(features, graph.edge_index, graph.edge_weight,
                                              incidence, pen, code)
    return terms if code == NONE else loss


class GraphSmoothnessLoss(GraphLossModule):
    """Module form of :func:`graph_smoothness_loss`:
    ``forward(features, edge_index, *, edge_weight=None)``."""

    def forward(self, features: torch.Tensor, edge_index, *,
                edge_weight: Optional[torch.Tensor] = None) -> torch.Tensor:
        return graph_smoothness_loss(features, edge_index, edge_weight=edge_weight,
                                     penalty=self.penalty, reduction=self.reduction)
