"""SirenPose loss (SirenPose eqs. 5-7): keypoint L2 plus a sine-space consistency term over
the edges of a keypoint graph. The graph term alone is the sine graph consistency loss."""
from typing import NamedTuple, Optional, Union

import torch

from .. import _ops
from .._backend import COMPILED
from .._incidence import cached_incidence
from .._validation import (check_edge_index, check_edge_range, check_nonnegative,
                           check_nonnegative_number, check_pair, check_positive_number,
                           check_weight, reduction_code)
from .. import reference as _reference
from ..reference.sirenpose import SirenPoseTerms, edge_term_weight
from .keypoint_match import keypoint_match_loss
from .sirenpose_schedules import SirenPoseSchedule, check_schedule

_LAYOUT = "[..., K, D]"


class SirenPoseOutput(NamedTuple):
    """What ``SirenPoseLoss(..., return_terms=True)`` returns: the loss and, for logging,
    its detached reduced components (``loss = pos + lambda_geo * geo``)."""
    loss: torch.Tensor
    pos: torch.Tensor
    geo: torch.Tensor


def _unpack_graph(edge_index, edge_weight):
    """Accept a KeypointGraph (anything with .edge_index) or a plain [2, E] tensor."""
    graph = None
    if not isinstance(edge_index, torch.Tensor) and hasattr(edge_index, "edge_index"):
        graph = edge_index
        if edge_weight is None:
            edge_weight = getattr(graph, "edge_weight", None)
        edge_index = graph.edge_index
    return edge_index, edge_weight, graph


def _prepare(pred, target, edge_index, omega0, weight, edge_weight, reduction):
    code = reduction_code(reduction)
    check_pair(pred, target, _LAYOUT)
    omega0 = check_positive_number(omega0, "omega0", device=pred.device)
    edge_index, edge_weight, graph = _unpack_graph(edge_index, edge_weight)
    num_nodes = pred.shape[-2]
    check_edge_index(edge_index, num_nodes, pred)
    weight = check_weight(weight, "weight", pred.shape[:-1], "[..., K]", pred)
    edge_weight = check_weight(edge_weight, "edge_weight", (edge_index.shape[1],), "[E]", pred)
    return code, omega0, edge_index, weight, edge_weight, graph


def _run(pred, target, edge_index, weight, edge_weight, graph, omega0, lambda_geo, with_pos, code):
    inc_ptr = inc_slot = None
    if pred.is_cuda:
        # The CUDA backward gathers per keypoint over a CSR of the graph (deterministic, no
        # atomics); built and range-checked once per graph.
        inc_ptr, inc_slot = cached_incidence(edge_index, pred.shape[-2], graph)
    return _ops.sirenpose(pred, target, edge_index, weight, edge_weight, inc_ptr, inc_slot,
                          omega0, lambda_geo, with_pos, code)


def _check_values_for_reference(edge_index, num_nodes, weight, edge_weight):
    check_edge_range(edge_index, num_nodes)
    check_nonnegative(weight, "weight")
    check_nonnegative(edge_weight, "edge_weight")


def sin_graph_consistency_loss(pred: torch.Tensor, target: torch.Tensor, edge_index, *,
                               omega0: float = 30.0,
                               weight: Optional[torch.Tensor] = None,
                               edge_weight: Optional[torch.Tensor] = None,
                               reduction: str = "mean") -> torch.Tensor:
    r"""Sine-space geometric consistency over graph edges (SirenPose eq. 6).

    .. math:: L_{geo} = \sum_{e=(i,j)} w_e \lVert \sin(\omega_0(\hat k_i - \hat k_j))
              - \sin(\omega_0(k_i - k_j)) \rVert^2, \quad w_e = ew_e\, w_i\, w_j

    Args:
        pred, target: keypoints ``[..., K, D]`` in normalised coordinates (the sine period is
            ``2 pi / omega0``, about 0.21 units for omega0 = 30: see ``graphs.normalize_keypoints``).
        edge_index: ``[2, E]`` int64/int32 tensor with values in ``[0, K)`` (torch-geometric
            convention, shared by the batch), or a ``KeypointGraph``. Edges count as given.
        omega0: sine frequency (the paper's 30).
        weight: optional per-keypoint visibility ``[..., K]`` or ``[K]``, ``>= 0``.
        edge_weight: optional per-edge weight ``[E]``, ``>= 0``.
        reduction: ``"mean"`` (divide by ``sum w_e``), ``"sum"`` or ``"none"`` (``[..., E]``).
    """
    code, omega0, edge_index, weight, edge_weight, graph = _prepare(
        pred, target, edge_index, omega0, weight, edge_weight, reduction)
    if not COMPILED:
        _check_values_for_reference(edge_index, pred.shape[-2], weight, edge_weight)
        return _reference.sin_graph_consistency_loss(pred, target, edge_index, omega0=omega0,
                                                     weight=weight, edge_weight=edge_weight,
                                                     reduction=reduction)
    loss, _, geo = _run(pred, target, edge_index, weight, edge_weight, graph, omega0, 1.0,
                           False, code)
    return geo if code == _ops.NONE else loss


def _sirenpose(pred, target, edge_index, omega0, lambda_geo, weight, edge_weight, reduction):
    code, omega0, edge_index, weight, edge_weight, graph = _prepare(
        pred, target, edge_index, omega0, weight, edge_weight, reduction)
    lambda_geo = check_nonnegative_number(lambda_geo, "lambda_geo", device=pred.device)
    if not COMPILED:
        _check_values_for_reference(edge_index, pred.shape[-2], weight, edge_weight)
        pos = _reference.keypoint_match_loss(pred, target, weight=weight, reduction=reduction)
        geo = _reference.sin_graph_consistency_loss(pred, target, edge_index, omega0=omega0,
                                                    weight=weight, edge_weight=edge_weight,
                                                    reduction=reduction)
        if code == _ops.NONE:
            return SirenPoseTerms(pos, geo), None, None
        return pos + lambda_geo * geo, pos, geo
    loss, pos, geo = _run(pred, target, edge_index, weight, edge_weight, graph, omega0,
                             lambda_geo, True, code)
    if code == _ops.NONE:
        return SirenPoseTerms(pos, geo), None, None
    return loss, pos, geo


def _gated_sirenpose(pred, target, edge_index, omega0, lambda_geo, weight, edge_weight, reduction,
                     gate):
    """The SirenPose loss with each sine term ``[..., E]`` multiplied by a constant 0/1 ``gate``;
    "mean" divides the sine part by the gated total edge weight."""
    pos = keypoint_match_loss(pred, target, weight=weight, reduction=reduction)
    terms = sin_graph_consistency_loss(pred, target, edge_index, omega0=omega0, weight=weight,
                                       edge_weight=edge_weight, reduction="none") * gate
    if reduction == "none":
        return SirenPoseTerms(pos, terms), None, None
    geo = terms.sum()
    if reduction == "mean":
        w_e = edge_term_weight(pred.shape[:-1], edge_index[0].long(), edge_index[1].long(),
                               weight, edge_weight, gate.dtype)
        total = (gate if w_e is None else gate * w_e).sum()
        geo = torch.where(total > 0, geo / torch.where(total > 0, total, 1.0), 0.0)
    return pos + lambda_geo * geo, pos, geo


def sirenpose_loss(pred: torch.Tensor, target: torch.Tensor, edge_index, *,
                   omega0: float = 30.0, lambda_geo: float = 1.0,
                   weight: Optional[torch.Tensor] = None,
                   edge_weight: Optional[torch.Tensor] = None,
                   reduction: str = "mean") -> Union[torch.Tensor, SirenPoseTerms]:
    r"""SirenPose loss (eq. 7): :math:`L = L_{pos} + \lambda_{geo} L_{geo}`.

    :math:`L_{pos} = \sum_n w_n \lVert \hat k_n - k_n \rVert^2` (eq. 5) and :math:`L_{geo}` is
    :func:`sin_graph_consistency_loss` (eq. 6). With ``"mean"`` each term is divided by its own
    total weight (``sum w_n`` and ``sum w_e``) before they are added. With ``"none"`` it returns
    ``SirenPoseTerms(pos [..., K], geo [..., E])`` such that the ``"sum"`` loss is
    ``pos.sum() + lambda_geo * geo.sum()``. Arguments as in :func:`sin_graph_consistency_loss`.
    """
    return _sirenpose(pred, target, edge_index, omega0, lambda_geo, weight, edge_weight,
                      reduction)[0]


def _graph_buffer(module: torch.nn.Module, edge_index):
    edge_index, edge_weight, _ = _unpack_graph(edge_index, None)
    if not isinstance(edge_index, torch.Tensor):
        raise TypeError(f"edge_index must be a torch.Tensor of shape [2, E] or a KeypointGraph, "
                        f"got {type(edge_index).__name__}")
    module.register_buffer("edge_index", edge_index, persistent=False)
    module.register_buffer("edge_weight", edge_weight, persistent=False)


class SinGraphConsistencyLoss(torch.nn.Module):
    """Module form of :func:`sin_graph_consistency_loss` over a fixed graph (moved with .to())."""

    def __init__(self, edge_index, *, omega0: float = 30.0, reduction: str = "mean"):
        super().__init__()
        reduction_code(reduction)
        self.omega0 = check_positive_number(omega0, "omega0")
        self.reduction = reduction
        _graph_buffer(self, edge_index)

    def forward(self, pred: torch.Tensor, target: torch.Tensor, *,
                weight: Optional[torch.Tensor] = None,
                edge_weight: Optional[torch.Tensor] = None) -> torch.Tensor:
        ew = self.edge_weight if edge_weight is None else edge_weight
        return sin_graph_consistency_loss(pred, target, self.edge_index, omega0=self.omega0,
                                          weight=weight, edge_weight=ew, reduction=self.reduction)

    def extra_repr(self) -> str:
        return f"num_edges={self.edge_index.shape[1]}, omega0={self.omega0}, reduction={self.reduction!r}"


class SirenPoseLoss(torch.nn.Module):
    """The SirenPose loss over a fixed keypoint graph (a ``KeypointGraph`` or ``[2, E]`` tensor).

    ``forward(pred, target, *, weight=None, edge_weight=None, return_terms=False)`` returns the
    loss, or with ``return_terms=True`` a ``SirenPoseOutput(loss, pos, geo)`` whose ``pos`` and
    ``geo`` are the detached reduced components, for logging (not available with "none").

    ``schedule`` (optional, :mod:`.sirenpose_schedules`: ``GeoWarmup``, ``OmegaCoarseToFine``,
    ``AliasGate``) sets ``omega0``, ``lambda_geo`` or a per-limb gate from the residuals at every
    training forward; ``omega0`` and ``lambda_geo`` are then its final values. In ``eval()``
    mode the schedule is applied without advancing. Its state is in the module's ``state_dict``.
    """

    def __init__(self, edge_index, *, omega0: float = 30.0, lambda_geo: float = 1.0,
                 reduction: str = "mean", schedule: Optional[SirenPoseSchedule] = None):
        super().__init__()
        reduction_code(reduction)
        self.omega0 = check_positive_number(omega0, "omega0")
        self.lambda_geo = check_nonnegative_number(lambda_geo, "lambda_geo")
        self.reduction = reduction
        self.schedule = check_schedule(schedule)
        self.last_settings = None
        _graph_buffer(self, edge_index)

    def forward(self, pred: torch.Tensor, target: torch.Tensor, *,
                weight: Optional[torch.Tensor] = None,
                edge_weight: Optional[torch.Tensor] = None,
                return_terms: bool = False):
        ew = self.edge_weight if edge_weight is None else edge_weight
        omega0, lambda_geo, gate = self.omega0, self.lambda_geo, None
        if self.schedule is not None:
            self.last_settings = self.schedule(pred, target, self.edge_index, weight, ew, omega0,
                                               lambda_geo, advance=self.training)
            omega0, lambda_geo, gate = self.last_settings
        if gate is None:
            loss, pos, geo = _sirenpose(pred, target, self.edge_index, omega0, lambda_geo,
                                        weight, ew, self.reduction)
        else:
            loss, pos, geo = _gated_sirenpose(pred, target, self.edge_index, omega0, lambda_geo,
                                              weight, ew, self.reduction, gate)
        if not return_terms:
            return loss
        if self.reduction == "none":
            raise ValueError("return_terms=True needs reduction 'mean' or 'sum', got 'none' (with "
                             "'none' the loss already is the per-term SirenPoseTerms(pos, geo))")
        return SirenPoseOutput(loss, pos.detach(), geo.detach())

    def get_extra_state(self):
        return dict(schedule=None if self.schedule is None else self.schedule.state_dict())

    def set_extra_state(self, state) -> None:
        saved = (state or {}).get("schedule")
        if (saved is None) != (self.schedule is None):
            raise ValueError(f"the saved SirenPoseLoss state {'has' if saved else 'has no'} "
                             f"schedule state, but this module's schedule is {self.schedule!r}")
        if saved is not None:
            self.schedule.load_state_dict(saved)

    def extra_repr(self) -> str:
        return (f"num_edges={self.edge_index.shape[1]}, omega0={self.omega0}, "
                f"lambda_geo={self.lambda_geo}, reduction={self.reduction!r}"
                + ("" if self.schedule is None else f", schedule={self.schedule!r}"))
