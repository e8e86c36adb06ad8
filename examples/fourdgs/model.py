"""The 4-D model: canonical Gaussians, a time-conditioned deformation of their centres that
starts as the identity, and keypoints bound to the Gaussians they sit on."""
import math
from typing import Optional

import torch
from torch import nn

from .cameras import project
from .render_torch import contributions_at


def _logit(p: torch.Tensor) -> torch.Tensor:
    p = p.clamp(1e-4, 1 - 1e-4)
    return torch.log(p / (1 - p))


def nearest_neighbour_distance(points: torch.Tensor, k: int = 3, chunk: int = 2048) -> torch.Tensor:
    """Mean distance of every point to its ``k`` nearest neighbours (chunked cdist)."""
    out = []
    for s in range(0, points.shape[0], chunk):
        d = torch.cdist(points[s:s + chunk], points)
        out.append(d.topk(k + 1, largest=False).values[:, 1:].mean(-1))
    return torch.cat(out)


class Gaussians(nn.Module):
    """Canonical (time-independent) Gaussians: centre, log-scale, rotation, opacity, colour."""

    def __init__(self, points: torch.Tensor, colors: Optional[torch.Tensor] = None,
                 opacity: float = 0.8):
        super().__init__()
        n = points.shape[0]
        scale = nearest_neighbour_distance(points).clamp_min(1e-4)
        quats = torch.zeros(n, 4)
        quats[:, 0] = 1.0
        colors = torch.full((n, 3), 0.5) if colors is None else colors
        self.means = nn.Parameter(points.clone().float())
        self.log_scales = nn.Parameter(torch.log(scale)[:, None].repeat(1, 3).float())
        self.quats = nn.Parameter(quats)
        self.opacity_logits = nn.Parameter(_logit(torch.full((n,), opacity)))
        self.color_logits = nn.Parameter(_logit(colors.float()))

    @property
    def num(self) -> int:
        return self.means.shape[0]

    def attributes(self):
        """Activated ``(quats, scales, opacities, colors)``."""
        return (self.quats, torch.exp(self.log_scales), torch.sigmoid(self.opacity_logits),
                torch.sigmoid(self.color_logits))


def positional_encoding(x: torch.Tensor, num_freqs: int) -> torch.Tensor:
    """``[..., D] -> [..., D (1 + 2 num_freqs)]``: x, sin(2^k pi x), cos(2^k pi x)."""
    if num_freqs == 0:
        return x
    freqs = (2.0 ** torch.arange(num_freqs, device=x.device, dtype=x.dtype)) * math.pi
    xf = x.unsqueeze(-1) * freqs
    return torch.cat([x, xf.sin().flatten(-2), xf.cos().flatten(-2)], -1)


class Deformation(nn.Module):
    """``delta(x, t)``: an MLP of the canonical centre and the time that displaces centres.

    Time enters as a positional encoding of ``t in [0, 1]`` plus, optionally, a learned
    per-frame code (``frame_code_dim``; like the per-time cells of a HexPlane, it lets every
    frame deviate on its own, which is what a motion prior has to tame). The last layer is
    zero-initialised, so training starts from the identity (the canonical scene at every
    frame). The first layer is split into a position part and a time part, so ``F`` frames
    of ``N`` centres cost one ``[N, H]`` and one ``[F, H]`` product before the broadcast.
    """

    def __init__(self, num_frames: int, *, pos_freqs: int = 4, time_freqs: int = 4,
                 frame_code_dim: int = 8, hidden: int = 96, layers: int = 3):
        super().__init__()
        self.num_frames = num_frames
        self.pos_freqs, self.time_freqs = pos_freqs, time_freqs
        self.frame_code = nn.Embedding(num_frames, frame_code_dim) if frame_code_dim else None
        if self.frame_code is not None:
            nn.init.normal_(self.frame_code.weight, std=0.1)
        self.in_pos = nn.Linear(3 * (1 + 2 * pos_freqs), hidden)
        self.in_time = nn.Linear(1 + 2 * time_freqs + frame_code_dim, hidden, bias=False)
        self.trunk = nn.Sequential(*[m for _ in range(layers - 1)
                                     for m in (nn.ReLU(), nn.Linear(hidden, hidden))], nn.ReLU())
        self.head = nn.Linear(hidden, 3)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def time_features(self, frames: torch.Tensor) -> torch.Tensor:
        t = frames.float().unsqueeze(-1) / max(self.num_frames - 1, 1)
        feats = [positional_encoding(t, self.time_freqs)]
        if self.frame_code is not None:
            feats.append(self.frame_code(frames))
        return torch.cat(feats, -1)

    def forward(self, x: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        """``x [N, 3]``, ``frames [F]`` (int) -> displacements ``[F, N, 3]``."""
        hp = self.in_pos(positional_encoding(x, self.pos_freqs))           # [N, H]
        ht = self.in_time(self.time_features(frames))                      # [F, H]
        return self.head(self.trunk(hp.unsqueeze(0) + ht.unsqueeze(1)))


class Model4D(nn.Module):
    """Canonical Gaussians plus their deformation: ``means(frames) -> [F, N, 3]``."""

    def __init__(self, gaussians: Gaussians, deformation: Deformation):
        super().__init__()
        self.gaussians = gaussians
        self.deformation = deformation

    def means(self, frames: torch.Tensor, index: Optional[torch.Tensor] = None) -> torch.Tensor:
        mu = self.gaussians.means if index is None else self.gaussians.means[index]
        return mu.unsqueeze(0) + self.deformation(mu, frames)


class KeypointBinding(nn.Module):
    """Keypoints bound to the canonical Gaussians they sit on (fixed indices and weights).

    For keypoint ``k``, on the first frame where the detector sees it, the ``per_keypoint``
    Gaussians with the largest blending weight ``alpha_i T_i`` at the detected pixel (the
    visible surface under the keypoint, computed from the initial, undeformed model) are
    bound with weights proportional to those blending weights. A keypoint's 3-D position
    at frame ``t`` is then the weighted mean of its Gaussians' deformed centres, and its 2-D
    position the projection of that: both differentiable, so keypoint losses move the scene.
    """

    def __init__(self, index: torch.Tensor, weight: torch.Tensor):
        super().__init__()
        self.register_buffer("index", index)    # [K, B]
        self.register_buffer("weight", weight)  # [K, B], rows sum to 1

    @classmethod
    @torch.no_grad()
    def from_detections(cls, gaussians: Gaussians, keypoints: torch.Tensor,
                        visibility: torch.Tensor, viewmats: torch.Tensor, Ks: torch.Tensor,
                        width: int, height: int, per_keypoint: int = 4) -> "KeypointBinding":
        num_k = keypoints.shape[1]
        quats, scales, opac, _ = gaussians.attributes()
        means = gaussians.means
        index = torch.zeros(num_k, per_keypoint, dtype=torch.long)
        weight = torch.zeros(num_k, per_keypoint)
        for k in range(num_k):
            seen = torch.nonzero(visibility[:, k] > 0).flatten()
            t = int(seen[0]) if seen.numel() else 0
            w = contributions_at(keypoints[t, k][None], means, quats, scales, opac, viewmats[t],
                                 Ks[t], width, height)[0]
            top = w.topk(per_keypoint)
            if float(top.values.sum()) > 1e-3:
                index[k], weight[k] = top.indices, top.values / top.values.sum()
            else:  # nothing rendered there: nearest projected centres instead
                uv, _ = project(means, viewmats[t], Ks[t])
                near = (uv - keypoints[t, k]).norm(dim=-1).topk(per_keypoint, largest=False)
                index[k], weight[k] = near.indices, 1.0 / per_keypoint
        return cls(index, weight)

    def points3d(self, model: Model4D, frames: torch.Tensor) -> torch.Tensor:
        """Keypoints ``[F, K, 3]`` at ``frames`` (differentiable)."""
        flat = self.index.flatten()
        centres = model.means(frames, flat)                                 # [F, K*B, 3]
        centres = centres.view(frames.shape[0], *self.index.shape, 3)
        return (centres * self.weight.unsqueeze(-1)).sum(-2)
