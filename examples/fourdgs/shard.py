"""What one training process works on: its frames, its model wrapper and its loss reductions.

:class:`Shard` is the single-process trainer (all frames, the package's losses with local
means); :class:`fourdgs.distributed.DistributedShard` splits the frames across ranks, wraps the
model in DistributedDataParallel and takes global means.
"""
import torch

import sirenpose_loss as spl

from .config import sp_schedule


class Shard:
    """The whole problem in one process."""
    rank, world_size, is_main = 0, 1, True

    def __init__(self, num_frames: int, device: torch.device):
        self.device = device
        self.num_frames = num_frames

    def photo_frames(self, gen: torch.Generator, count: int) -> torch.Tensor:
        """The training frames rendered this step, drawn from ``gen`` (the trainer's stream)."""
        return torch.randint(self.num_frames, (count,), generator=gen).to(self.device)

    def scl_frames(self, order: int) -> torch.Tensor:
        """The frames whose centres enter this process's SCL terms."""
        return torch.arange(self.num_frames, device=self.device)

    def keypoint_frames(self) -> torch.Tensor:
        """The frames whose keypoints enter this process's KML and SirenPose terms."""
        return torch.arange(self.num_frames, device=self.device)

    def wrap(self, module: torch.nn.Module, **kwargs) -> torch.nn.Module:
        return module

    def losses(self, cfg, graph):
        """``(scl(x), kml(pred, target, weight), sp(pred, target, weight))``, each a mean."""
        kml = spl.KeypointMatchLoss()
        sp = (spl.SirenPoseLoss(graph, omega0=cfg.omega0, lambda_geo=cfg.lambda_geo,
                                schedule=sp_schedule(cfg))
              if graph is not None else None)
        return (lambda x: spl.spatiotemporal_consistency_loss(x, order=cfg.scl_order),
                lambda p, t, weight: kml(p, t, weight=weight),
                None if sp is None else (lambda p, t, weight: sp(p, t, weight=weight)))


class StepForward(torch.nn.Module):
    """Everything a training step takes from the model, in one ``forward`` (DDP prepares its
    gradient all-reduce in ``forward``): the centres of the rendered frames, the SCL centres,
    the 3-D keypoints and the centres of the rigidity frames. ``None`` skips a part."""

    def __init__(self, model, binding):
        super().__init__()
        self.model, self.binding = model, binding

    def forward(self, photo_frames, scl_frames, scl_index, keypoint_frames, rigid_frames=None):
        means = None if photo_frames is None else self.model.means(photo_frames)
        centres = None if scl_frames is None else self.model.means(scl_frames, scl_index)
        kp3 = None if keypoint_frames is None else self.binding.points3d(self.model, keypoint_frames)
        rigid = None if rigid_frames is None else self.model.means(rigid_frames)
        return means, centres, kp3, rigid
