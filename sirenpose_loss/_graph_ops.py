"""Handles and fake kernels of the graph losses of Gaussians (the rigidity family).

Each loss ``name`` is three ops whose schemas csrc/rigidity_ops.cpp generates from one table:
``name`` (differentiable), ``name_fwd`` (-> loss, per-term outputs, state) and ``name_bwd``
(-> the gradients of the first arguments). This module's table gives, per loss, the shapes
of those outputs; the fake kernels of all of them are derived from it, so a new loss is one
row here and one row there.
"""
import math
from typing import Callable, Dict, NamedTuple

import torch

from ._backend import COMPILED
from ._value_checks import tracing
from ._ops import NONE

PENALTY_CODES = {"squared": 0, "norm": 1}


def graph_incidence(edge_index: torch.Tensor, num_nodes: int) -> torch.Tensor:
    """The per-node edge lists the kernels gather gradients over, packed in one int64 tensor:
    ``in_ptr [M+1], in_edge [E], in_other [E]`` (each node's edges as the centre, in edge order,
    and their neighbours), ``out_ptr [M+1], out_other [E]`` (each node's edges as the
    neighbour, and their centres) and ``out_pos [E]`` (edge e's place in the outgoing lists).

    Raises IndexError when an index is outside [0, num_nodes) (one host sync on CUDA, so the
    result is cached per graph); while tracing, the kernels' own range checks stand instead.
    """
    if edge_index.dim() != 2 or edge_index.shape[0] != 2:
        raise ValueError(f"edge_index must have shape [2, E], got {list(edge_index.shape)}")
    src, dst = edge_index[0].long(), edge_index[1].long()
    if not tracing() and edge_index.numel() and \
            bool(((edge_index < 0) | (edge_index >= num_nodes)).any()):
        raise IndexError(f"edge_index values must be in [0, {num_nodes}) (M = {num_nodes} "
                         f"Gaussians), got values in [{int(edge_index.min())}, "
                         f"{int(edge_index.max())}]")
    nodes = torch.arange(num_nodes + 1, dtype=torch.long, device=src.device)
    parts = []
    for mine, theirs in ((dst, src), (src, dst)):
        ordered, edge = torch.sort(mine, stable=True)
        parts += [torch.searchsorted(ordered, nodes), edge, theirs[edge]]
    out_edge = parts.pop(4)
    out_pos = torch.empty_like(out_edge)
    out_pos[out_edge] = torch.arange(out_edge.numel(), device=src.device)
    return torch.cat(parts + [out_pos])


RIGID, ROTATION, ISOMETRY = 1, 2, 4   # term bits of the rigidity op


class GraphLoss(NamedTuple):
    num_grads: int
    # args -> (tensor giving dtype/device, per-term output shapes under "none", state shape)
    shapes: Callable


def _trio_shapes(positions, quaternions, edge_index, *rest):
    terms = rest[-3]
    like = positions if positions is not None else quaternions
    lead, frames, edges = tuple(like.shape[:-3]), like.shape[-3], edge_index.shape[1]
    pairs = frames - 1 if frames > 1 else 0
    steps = (pairs, pairs, frames)
    return like, [(*lead, steps[k], edges) if terms >> k & 1 else (*lead, 0, 0)
                  for k in range(3)], (3,)


def _arap_shapes(positions, edge_index, *rest):
    lead, frames, nodes = tuple(positions.shape[:-3]), positions.shape[-3], positions.shape[-2]
    rotations = math.prod(lead) * frames * nodes * 9
    return positions, [(*lead, frames, edge_index.shape[1])], (1 + rotations,)


def _smoothness_shapes(features, edge_index, *rest):
    return features, [(*features.shape[:-2], edge_index.shape[1])], (1,)


TABLE: Dict[str, GraphLoss] = {
    "rigidity": GraphLoss(2, _trio_shapes),
    "arap": GraphLoss(1, _arap_shapes),
    "graph_smoothness": GraphLoss(1, _smoothness_shapes),
}


def _register_fakes(name: str, row: GraphLoss) -> None:
    @torch.library.register_fake(f"sirenpose_loss::{name}_fwd")
    def _fwd(*args):
        like, shapes, state = row.shapes(*args)
        state = like.new_empty(state, dtype=torch.float64)
        if args[-1] == NONE:
            return (like.new_empty((0,)), *[like.new_empty(s) for s in shapes], state)
        return (like.new_empty(()), *[like.new_empty(()) for _ in shapes], state)

    @torch.library.register_fake(f"sirenpose_loss::{name}_bwd")
    def _bwd(grads, *rest):
        args, mask = rest[:-2], rest[-1]
        like = row.shapes(*args)[0]
        out = tuple(args[k].new_empty(args[k].shape) if mask[k] and args[k] is not None
                    else like.new_empty((0,)) for k in range(row.num_grads))
        return out if row.num_grads > 1 else out[0]


if COMPILED:
    _ns = torch.ops.sirenpose_loss
    rigidity = _ns.rigidity.default
    arap = _ns.arap.default
    graph_smoothness = _ns.graph_smoothness.default
    for _name, _row in TABLE.items():
        _register_fakes(_name, _row)
