"""Which rank owns each node (Gaussian, keypoint) and at which row of its shard."""

import torch


class Partition:
    """A partition of ``num_nodes`` global nodes over ``world_size`` ranks.

    ``owner[g]`` is the rank holding node ``g`` and ``local[g]`` its row in that rank's shard.
    A shard holds its nodes in increasing global id, so ``shard(x, r)`` is
    ``x.index_select(dim, rows(r))``.
    """

    def __init__(self, owner: torch.Tensor, world_size: int):
        if not isinstance(owner, torch.Tensor) or owner.dim() != 1 or owner.is_floating_point():
            got = (f"shape {list(owner.shape)}, dtype {owner.dtype}" if isinstance(owner, torch.Tensor)
                   else type(owner).__name__)
            raise TypeError(f"owner must be an integer tensor of shape [N], got {got}")
        if isinstance(world_size, bool) or not isinstance(world_size, int) or world_size < 1:
            raise ValueError(f"world_size must be a positive int, got {world_size!r}")
        owner = owner.detach().to(device="cpu", dtype=torch.long)
        if owner.numel() and (int(owner.min()) < 0 or int(owner.max()) >= world_size):
            raise ValueError(f"owner values must be ranks in [0, {world_size}), got values in "
                             f"[{int(owner.min())}, {int(owner.max())}]")
        self.owner, self.world_size = owner, world_size
        order = torch.argsort(owner, stable=True)
        self.counts = torch.bincount(owner, minlength=world_size)
        starts = torch.cumsum(self.counts, 0) - self.counts
        self.local = torch.empty_like(owner)
        self.local[order] = torch.arange(owner.numel()) - starts[owner[order]]
        self._order, self._starts = order, starts

    @classmethod
    def strided(cls, num_nodes: int, world_size: int) -> "Partition":
        """gsplat's layout: rank ``r`` holds nodes ``r, r + W, r + 2W, ...`` (``x[r::W]``)."""
        if isinstance(num_nodes, bool) or not isinstance(num_nodes, int) or num_nodes < 0:
            raise ValueError(f"num_nodes must be a non-negative int, got {num_nodes!r}")
        if isinstance(world_size, bool) or not isinstance(world_size, int) or world_size < 1:
            raise ValueError(f"world_size must be a positive int, got {world_size!r}")
        return cls(torch.arange(num_nodes) % world_size, world_size)

    @property
    def num_nodes(self) -> int:
        return self.owner.numel()

    def rows(self, rank: int) -> torch.Tensor:
        """Global ids of the nodes ``rank`` holds, in shard order (increasing)."""
        start = int(self._starts[rank])
        return self._order[start:start + int(self.counts[rank])]

    def shard(self, x: torch.Tensor, rank: int, dim: int = -2) -> torch.Tensor:
        """Rank ``rank``'s rows of a global node tensor (node axis ``dim``)."""
        if x.shape[dim] != self.num_nodes:
            raise ValueError(f"x must have {self.num_nodes} nodes along dim {dim}, got shape "
                             f"{list(x.shape)}")
        return x.index_select(dim, self.rows(rank).to(x.device))

    def __repr__(self) -> str:
        return (f"Partition(num_nodes={self.num_nodes}, world_size={self.world_size}, "
                f"counts={self.counts.tolist()})")


def check_partition(partition: Partition, world_size: int, name: str = "partition") -> None:
    if not isinstance(partition, Partition):
        raise TypeError(f"{name} must be a sirenpose_loss.distributed.Partition, got "
                        f"{type(partition).__name__}")
    if partition.world_size != world_size:
        raise ValueError(f"{name} is over {partition.world_size} ranks but the process group "
                         f"has {world_size}")


__all__ = ["Partition", "check_partition"]
