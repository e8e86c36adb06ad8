"""Motion priors over a neighbour graph of the Gaussians: Dynamic 3D Gaussians' trio
(``lambda_rigid``) and ARAP (``lambda_arap``).

Rotations. The deformation network moves only the centres: a Gaussian's rotation is its
canonical quaternion at every frame. The trio gets those quaternions (the model's rotations,
static in time), so every Gaussian's relative rotation ``R_{t-1} R_t^T`` is the identity and

* local rigidity asks every neighbour offset to stay the same from frame to frame: a
  neighbourhood may translate, not rotate or stretch;
* rotation similarity is zero (to float rounding) and pushes nothing: kept so that the trio is
  Dynamic 3D Gaussians' as is, and meaningful as soon as the deformation also rotates;
* isometry keeps every edge at its rest length (the canonical one).

The quaternions go in detached: the gradient through a rotation shared by both frames is zero
anyway (``R R^T = I``). ARAP solves each neighbourhood's best rotation itself, so it allows the
local rotations that the trio (with static rotations) forbids; its rest shape is the canonical
centres.

The graph is built once, on the initial canonical centres. This trainer neither densifies nor
prunes: the Gaussians keep their indices, so the graph stays valid for the whole run. A trainer
that prunes would call ``graph.reindex(keep)``, one that densifies ``graph.rebuild(points)``.
"""
from typing import Dict, Tuple

import torch

import sirenpose_loss as spl
from sirenpose_loss.graphs import RigidityGraph, rigidity_graph

from .config import Config


def neighbour_graph(cfg: Config, canonical: torch.Tensor) -> RigidityGraph:
    """``rigid_k`` nearest neighbours of every canonical centre; with ``rigid_weight_lambda``
    None the weights are scaled to the scene (the median edge weighs ``1/e``)."""
    points = canonical.detach()
    lam = cfg.rigid_weight_lambda
    if lam is None:
        rest = rigidity_graph(points, cfg.rigid_k, weight_lambda=0.0).rest_length
        lam = 1.0 / max(float(rest.double().pow(2).median()), 1e-12)
    return rigidity_graph(points, cfg.rigid_k, weight_lambda=lam)


class MotionPriors:
    """The rigidity trio and ARAP of one run: its graph, its frame windows and its terms."""

    def __init__(self, cfg: Config, canonical: torch.Tensor, num_frames: int):
        self.cfg = cfg
        self.graph = neighbour_graph(cfg, canonical)
        self.window = num_frames if cfg.rigid_frames == 0 else min(cfg.rigid_frames, num_frames)
        self.num_frames = num_frames
        self.trio = spl.RigidityLoss()
        # a stream of its own, so that the other terms draw the same frames as without it
        self.gen = torch.Generator().manual_seed(cfg.seed + 3)

    @staticmethod
    def wanted(cfg: Config) -> bool:
        return cfg.lambda_rigid > 0 or cfg.lambda_arap > 0

    def frames(self, device) -> torch.Tensor:
        """This step's window of consecutive frames."""
        start = int(torch.randint(self.num_frames - self.window + 1, (1,), generator=self.gen))
        return torch.arange(start, start + self.window, device=device)

    def __call__(self, positions: torch.Tensor, quats: torch.Tensor,
                 rest: torch.Tensor) -> Tuple[torch.Tensor, Dict[str, float]]:
        """``positions [T, N, 3]`` (the window's deformed centres), ``quats [N, 4]`` (the
        model's rotations), ``rest [N, 3]`` (canonical centres) -> (weighted sum, logged terms)."""
        cfg, terms = self.cfg, {}
        total = positions.new_zeros(())
        if cfg.lambda_rigid > 0:
            q = quats.detach().expand(positions.shape[0], -1, -1).contiguous()
            out = self.trio(positions, q, self.graph, return_terms=True)
            total = total + cfg.lambda_rigid * out.loss
            terms.update(rigid=float(out.loss.detach()), rigid_local=float(out.rigid),
                         rigid_rotation=float(out.rotation), rigid_isometry=float(out.isometry))
        if cfg.lambda_arap > 0:
            arap = spl.arap_loss(positions, self.graph, rest_positions=rest.detach())
            total = total + cfg.lambda_arap * arap
            terms["arap"] = float(arap.detach())
        return total, terms
