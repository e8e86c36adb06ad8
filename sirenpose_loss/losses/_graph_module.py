"""The options part of the graph losses' modules: a penalty and a reduction, checked once."""
import torch

from .._validation import reduction_code
from ._graph_inputs import penalty_code


class GraphLossModule(torch.nn.Module):
    def __init__(self, *, penalty: str = "squared", reduction: str = "mean"):
        super().__init__()
        reduction_code(reduction)
        if penalty is not None:
            penalty_code(penalty)
        self.penalty, self.reduction = penalty, reduction

    def extra_repr(self) -> str:
        head = "" if self.penalty is None else f"penalty={self.penalty!r}, "
        return head + f"reduction={self.reduction!r}"
