"""Halo exchange for graph losses over nodes sharded across ranks.

Every edge is evaluated by exactly one rank: the owner of its centre ``edge_index[1]`` (the
torch-geometric convention for neighbour graphs). That rank needs the rows of the edges' other
endpoints that live elsewhere, its *halo*. :class:`HaloPlan` works out once per graph which rows
each rank sends to which (an index plan, two small all-to-alls at build time), and
:meth:`HaloPlan.exchange` brings the halo rows in with one all-to-all per call. The exchange is
differentiable: the backward sends the halo rows' gradients back to their owners, which add them
to their own rows (peer by peer, in rank order: deterministic, no atomics on repeated rows).

Any loss that takes per-node tensors ``[..., M, C]`` (or ``[..., T, M, C]``) and an edge list
then runs unchanged on the extended rows ``[own rows | halo rows]`` with ``plan.edge_index``.
"""
from typing import List, Optional

import torch
import torch.distributed as dist

from ._group import comm_device, is_active, rank as group_rank, world_size as group_world_size
from .partition import Partition, check_partition


def _all_to_all(x: torch.Tensor, out_splits: List[int], in_splits: List[int], group) -> torch.Tensor:
    """``dist.all_to_all_single`` along dim 0 with uneven splits (gloo and NCCL both have it)."""
    out = x.new_empty((sum(out_splits), *x.shape[1:]))
    dist.all_to_all_single(out, x.contiguous(), out_splits, in_splits, group=group)
    return out


class _Exchange(torch.autograd.Function):
    """Own rows ``x`` -> the halo rows from the other ranks, along axis ``dim``."""

    @staticmethod
    def forward(ctx, x, dim, plan):
        ctx.dim, ctx.plan, ctx.shape = dim, plan, x.shape
        send = x.index_select(dim, plan.send_index.to(x.device)).movedim(dim, 0)
        halo = _all_to_all(send, plan.recv_counts, plan.send_counts, plan.group)
        return halo.movedim(0, dim)

    @staticmethod
    def backward(ctx, grad_halo):
        dim, plan = ctx.dim, ctx.plan
        back = _all_to_all(grad_halo.movedim(dim, 0), plan.send_counts, plan.recv_counts, plan.group)
        back = back.movedim(0, dim)
        grad = grad_halo.new_zeros(ctx.shape)
        index = plan.send_index.to(grad.device)
        offset = 0
        # One peer at a time: within a peer the rows are distinct, so each index_add_ has no
        # repeated destination, and rows sent to several peers are summed in rank order.
        for count in plan.send_counts:
            if count:
                grad.index_add_(dim, index[offset:offset + count], back.narrow(dim, offset, count))
            offset += count
        return grad, None, None


class HaloPlan:
    """The exchange plan of one graph over one partition, for this rank.

    Build it once per graph, on every rank of ``group`` (it is a collective):
    ``plan = HaloPlan(edge_index, partition)``. ``edge_index`` ``[2, E]`` holds global node ids;
    pass the whole graph or any part holding every edge whose centre this rank owns (the others
    are ignored).

    Attributes:
        edge_index: ``[2, E_local]`` this rank's edges, numbered in the extended rows
            ``[own rows (partition order) | halo rows]``.
        edge_ids: ``[E_local]`` their positions in the given ``edge_index`` (for per-edge data:
            :meth:`edges`).
        halo_nodes: global ids of the halo rows, grouped by owner rank, increasing within one.
        num_local, num_halo: row counts; the extended tensors have ``num_local + num_halo`` rows.
        send_index, send_counts, recv_counts: the index plan (own rows sent to each rank in
            rank order; rows received from each rank).
    """

    def __init__(self, edge_index: torch.Tensor, partition: Partition, *, group=None):
        if not isinstance(edge_index, torch.Tensor) or edge_index.dim() != 2 \
                or edge_index.shape[0] != 2 or edge_index.is_floating_point():
            got = (f"shape {list(edge_index.shape)}, dtype {edge_index.dtype}"
                   if isinstance(edge_index, torch.Tensor) else type(edge_index).__name__)
            raise ValueError(f"edge_index must be an integer tensor of shape [2, E], got {got}")
        world = group_world_size(group)
        check_partition(partition, world)
        self.group, self.partition = group, partition
        me = group_rank(group)
        device = edge_index.device
        ei = edge_index.detach().to(device="cpu", dtype=torch.long)
        n = partition.num_nodes
        if ei.numel() and (int(ei.min()) < 0 or int(ei.max()) >= n):
            raise IndexError(f"edge_index values must be node ids in [0, {n}), got values in "
                             f"[{int(ei.min())}, {int(ei.max())}]")
        owner = partition.owner
        self.edge_ids = torch.nonzero(owner[ei[1]] == me).flatten()
        mine = ei[:, self.edge_ids]
        touched = torch.unique(mine.flatten())
        remote = touched[owner[touched] != me]
        remote = remote[torch.argsort(owner[remote], stable=True)]
        self.halo_nodes = remote
        self.num_local, self.num_halo = int(partition.counts[me]), remote.numel()
        self.recv_counts = torch.bincount(owner[remote], minlength=world).tolist()
        self.send_counts, send_index = self._exchange_requests(partition.local[remote])
        ext = torch.full((n,), -1, dtype=torch.long)
        ext[partition.rows(me)] = torch.arange(self.num_local)
        ext[remote] = self.num_local + torch.arange(self.num_halo)
        self.edge_index = ext[mine].to(device)
        self.edge_ids = self.edge_ids.to(device)
        self.send_index = send_index.to(device)

    def _exchange_requests(self, wanted_local: torch.Tensor):
        """Tell each owner which of its rows we need; learn which of ours each rank needs."""
        if not is_active(self.group):
            return [0] * len(self.recv_counts), torch.zeros(0, dtype=torch.long)
        cdev = comm_device(self.group)
        recv = torch.tensor(self.recv_counts, dtype=torch.long, device=cdev)
        send = _all_to_all(recv, [1] * recv.numel(), [1] * recv.numel(), self.group)
        send_counts = send.tolist()
        send_index = _all_to_all(wanted_local.to(cdev), send_counts, self.recv_counts, self.group)
        return send_counts, send_index.cpu()

    @property
    def num_rows(self) -> int:
        return self.num_local + self.num_halo

    def exchange(self, x: torch.Tensor, dim: int = -2) -> torch.Tensor:
        """``[own rows | halo rows]`` of a per-node tensor whose node axis ``dim`` holds this
        rank's ``num_local`` rows (``[..., M, C]`` and ``[..., T, M, C]``: ``dim=-2``; a
        per-node weight ``[..., M]``: ``dim=-1``). Every rank must call it (a collective), with
        the same leading dims. Differentiable: halo gradients return to their owners."""
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() == 0 or x.shape[dim] != self.num_local:
            raise ValueError(f"x must hold this rank's {self.num_local} rows along dim {dim}, got "
                             f"shape {list(x.shape)}")
        if not is_active(self.group):
            return x
        dim = dim % x.dim()
        return torch.cat([x, _Exchange.apply(x, dim, self)], dim)

    def edges(self, values: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
        """This rank's entries of a per-edge tensor ``[E, ...]`` of the given graph (None stays
        None)."""
        if values is None:
            return None
        return values.index_select(0, self.edge_ids.to(values.device))

    def __repr__(self) -> str:
        return (f"HaloPlan(num_local={self.num_local}, num_halo={self.num_halo}, "
                f"num_edges={self.edge_index.shape[1]}, send={self.send_counts}, "
                f"recv={self.recv_counts})")
