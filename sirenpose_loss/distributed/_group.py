"""Which process group a call reduces over, and whether there is one at all."""
from typing import Optional

import torch
import torch.distributed as dist


def is_active(group=None) -> bool:
    """True when torch.distributed is initialised and ``group`` has more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size(group) > 1


def world_size(group=None) -> int:
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(group)
    return 1


def rank(group=None) -> int:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(group)
    return 0


def comm_device(group=None, like: Optional[torch.Tensor] = None) -> torch.device:
    """The device collectives of ``group`` run on: the current CUDA device for NCCL, else CPU
    (gloo), unless ``like`` already lives on a device the backend accepts."""
    if dist.get_backend(group) == "nccl":
        if like is not None and like.is_cuda:
            return like.device
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")
