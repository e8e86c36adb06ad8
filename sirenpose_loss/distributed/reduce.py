"""Global means over all ranks with one all-reduce of (sums, denominators) per call.

Convention. On every rank the returned value is the global mean ``S / D`` (``S`` and ``D`` the
sums over ranks of the local sums and denominators), identical on all ranks. Its gradient with
respect to rank ``r``'s inputs is ``grad_scale / D`` times the gradient of rank ``r``'s local sum,
with ``grad_scale = world_size`` when ``average_grads=True`` (the default) and 1 otherwise:

* ``average_grads=True``: for parameters that DistributedDataParallel (or any mean all-reduce
  of gradients) averages over ranks. DDP divides the sum of the ranks' gradients by
  ``world_size``, so after its averaging every rank holds exactly the gradient of the global mean.
* ``average_grads=False``: for inputs owned by one rank and never averaged (Gaussians sharded
  across ranks): each rank's gradient is then the gradient of the global mean with respect to
  its own rows.

The denominator is a constant of the loss (as in the single-process "mean"): it carries no
gradient. A global mean over zero terms or zero total weight is 0 with a zero gradient. When
torch.distributed is not initialised (or the group has one rank) no collective runs and the
result is ``sum / denominator``.
"""
from typing import List, Sequence, Union

import torch
import torch.distributed._functional_collectives as funcol

from ._group import comm_device, is_active, world_size

Number = Union[float, int, torch.Tensor]


def _as_float64(value: Number, name: str, device) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"{name} must be a scalar (one element), got shape {list(value.shape)}")
        return value.detach().reshape(()).to(device=device, dtype=torch.float64)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number or a scalar tensor, got {type(value).__name__}")
    return torch.tensor(float(value), dtype=torch.float64, device=device)


def _check_sums(sums: Sequence[torch.Tensor], counts: Sequence[Number]) -> None:
    if len(sums) != len(counts):
        raise ValueError(f"sums and counts must have the same length, got {len(sums)} and "
                         f"{len(counts)}")
    for i, s in enumerate(sums):
        if not isinstance(s, torch.Tensor) or s.numel() != 1 or not s.is_floating_point():
            got = (f"shape {list(s.shape)}, dtype {s.dtype}" if isinstance(s, torch.Tensor)
                   else type(s).__name__)
            raise ValueError(f"sums[{i}] must be a floating-point scalar tensor (a loss with "
                             f"reduction='sum'), got {got}")


def _mean(local: torch.Tensor, total: torch.Tensor, count: torch.Tensor, scale: float):
    """Value ``total / count``; gradient ``scale / count`` times that of ``local``."""
    inv = torch.where(count > 0, 1.0 / count.clamp_min(torch.finfo(torch.float64).tiny),
                      torch.zeros_like(count))
    local = local.reshape(())
    value = (total * inv).to(local.dtype)
    # local - local.detach() is exactly 0 for finite values (NaN/Inf propagate, as in the
    # single-process losses) and carries local's gradient.
    return value + (local - local.detach()) * (scale * inv).to(local.dtype)


def global_means(sums: Sequence[torch.Tensor], counts: Sequence[Number], *, group=None,
                 average_grads: bool = True) -> List[torch.Tensor]:
    """The global means ``[S_0 / D_0, S_1 / D_1, ...]`` of several losses with ONE all-reduce.

    Args:
        sums: this rank's local sums (scalar tensors, e.g. losses with ``reduction="sum"``).
        counts: this rank's denominators (the weighted numbers of terms of its sums; numbers
            or scalar tensors; see the ``*_count`` helpers).
        group: the process group (default: the world).
        average_grads: scale gradients by the world size for DDP's averaging (see the module
            documentation for the convention).

    The all-reduce is a functional collective, so ``torch.compile(fullgraph=True)`` traces it.
    """
    _check_sums(sums, counts)
    if not sums:
        return []
    device = sums[0].device
    if not is_active(group):
        return [_mean(s, s.detach().to(torch.float64).reshape(()),
                      _as_float64(c, f"counts[{i}]", device), 1.0)
                for i, (s, c) in enumerate(zip(sums, counts))]
    n = len(sums)
    cdev = comm_device(group, sums[0])
    packed = torch.stack([s.detach().reshape(()).to(device=cdev, dtype=torch.float64)
                          for s in sums]
                         + [_as_float64(c, f"counts[{i}]", cdev) for i, c in enumerate(counts)])
    packed = funcol.all_reduce(packed, "sum", group if group is not None else
                               torch.distributed.group.WORLD)
    packed = funcol.wait_tensor(packed).to(device)
    scale = float(world_size(group)) if average_grads else 1.0
    return [_mean(s, packed[i], packed[n + i], scale) for i, s in enumerate(sums)]


def global_mean(total: torch.Tensor, count: Number, *, group=None,
                average_grads: bool = True) -> torch.Tensor:
    """The mean over all ranks' terms, ``sum_r total_r / sum_r count_r``, with one all-reduce.

    ``total`` is this rank's sum of terms (a loss with ``reduction="sum"``), ``count`` its
    denominator. See the module documentation for the gradient convention.
    """
    return global_means([total], [count], group=group, average_grads=average_grads)[0]
