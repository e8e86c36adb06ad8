"""Data-parallel training under ``torchrun``: the ranks split the frames.

Rank ``r`` of ``W`` owns a contiguous block of frames. It renders its photometric frames from
that block, evaluates the keypoint losses (KML, SirenPose) on the block's keypoints and the SCL
on the block extended by ``order`` frames (so every consecutive-frame term is evaluated by
exactly one rank), and every loss is a global mean over all ranks' terms
(:mod:`sirenpose_loss.distributed`). The model is wrapped in DistributedDataParallel, whose
gradient averaging then yields the gradient of the global losses. Each rank renders
``frames_per_iter`` frames per step, so a step sees ``W * frames_per_iter`` frames; every rank
renders the same number of pixels, so DDP's average of the ranks' photometric means is the
global mean.
"""
import dataclasses
import datetime
import gc
import os

import torch
import torch.distributed as dist

import sirenpose_loss.distributed as sd

from .shard import Shard


def frame_block(num_frames: int, world: int, rank: int, extra: int = 0):
    """``[lo, hi)`` of rank ``rank``'s frames: ``num_frames - extra`` split evenly, plus
    ``extra`` frames of overlap with the next block."""
    steps = max(num_frames - extra, 0)
    lo, hi = (round(steps * r / world) for r in (rank, rank + 1))
    return lo, min(hi + extra, num_frames)


class DistributedShard(Shard):
    """This rank's block of frames, DDP and global means."""

    def __init__(self, num_frames: int, device: torch.device, seed: int, group=None):
        super().__init__(num_frames, device)
        self.group = group
        self.rank, self.world_size = dist.get_rank(group), dist.get_world_size(group)
        self.is_main = self.rank == 0
        lo, hi = frame_block(num_frames, self.world_size, self.rank)
        if hi <= lo:
            raise ValueError(f"{self.world_size} ranks need at least {self.world_size} frames, "
                             f"got {num_frames}")
        self.own = torch.arange(lo, hi, device=device)
        # Each rank draws its own frames; the trainer's stream (the SCL's Gaussians) stays shared.
        self.frame_gen = torch.Generator().manual_seed(seed + 7919 * (self.rank + 1))

    def photo_frames(self, gen, count):
        pick = torch.randint(self.own.numel(), (count,), generator=self.frame_gen)
        return self.own[pick.to(self.device)]

    def scl_frames(self, order):
        lo, hi = frame_block(self.num_frames, self.world_size, self.rank, order)
        return torch.arange(lo, hi, device=self.device)

    def keypoint_frames(self):
        return self.own

    def wrap(self, module, find_unused_parameters=False):
        ids = [self.device.index] if self.device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(
            module, device_ids=ids, find_unused_parameters=find_unused_parameters)

    def losses(self, cfg, graph):
        group = self.group
        if cfg.sp_schedule != "constant":
            raise ValueError(f"sp_schedule {cfg.sp_schedule!r} is single-process only (its "
                             f"decisions would need the global residuals), got world_size="
                             f"{self.world_size}")
        return (lambda x: sd.spatiotemporal_consistency_loss(x, order=cfg.scl_order, group=group),
                lambda p, t, weight: sd.keypoint_match_loss(p, t, weight=weight, group=group),
                None if graph is None else
                (lambda p, t, weight: sd.sirenpose_loss(p, t, graph, omega0=cfg.omega0,
                                                        lambda_geo=cfg.lambda_geo, weight=weight,
                                                        group=group)))


def init(cfg, timeout_s: float = 600.0):
    """Join the torchrun job (gloo on CPU, NCCL on CUDA); returns the config with this rank's
    device (``cuda:LOCAL_RANK``)."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        raise RuntimeError("--distributed needs torchrun's environment (RANK, WORLD_SIZE, ...): "
                           "launch with torchrun --nproc_per_node=N examples/train_4dgs.py "
                           "--distributed ...")
    cuda = str(cfg.device).startswith("cuda")
    if cuda:  # pragma: no cover - needs GPUs
        local = int(os.environ.get("LOCAL_RANK", 0))
        torch.cuda.set_device(local)
        cfg = dataclasses.replace(cfg, device=f"cuda:{local}")
    dist.init_process_group("nccl" if cuda else "gloo",
                            timeout=datetime.timedelta(seconds=timeout_s))
    return cfg


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def shutdown():
    """Leave the job together: without the barrier a rank that finished training tore its group
    down while rank 0 was still evaluating, and aborted ("terminate called without an active
    exception") in about 1 of 12 runs."""
    if dist.is_initialized():
        gc.collect()        # DDP's reducer, in reference cycles, still holds the group
        dist.barrier()
        dist.destroy_process_group()
