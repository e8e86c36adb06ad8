"""Pinhole cameras in the OpenCV / gsplat convention.

World-to-camera ``viewmat [4, 4]``; camera looks down +z, x right, y down; pixel centres at
integer + 0.5 (pixel ``(i, j)`` covers ``[j, j+1) x [i, i+1)``); ``K = [[fx, 0, cx],
[0, fy, cy], [0, 0, 1]]`` so a camera point ``(x, y, z)`` lands at ``(fx x/z + cx, fy y/z + cy)``.
"""
import math

import torch


def intrinsics(width: int, height: int, fov_deg: float, dtype=torch.float32) -> torch.Tensor:
    """``K [3, 3]`` for a horizontal field of view ``fov_deg`` and square pixels."""
    f = 0.5 * width / math.tan(math.radians(fov_deg) / 2)
    return torch.tensor([[f, 0.0, width / 2], [0.0, f, height / 2], [0.0, 0.0, 1.0]], dtype=dtype)


def look_at(eye, target, up=(0.0, 1.0, 0.0), dtype=torch.float32) -> torch.Tensor:
    """World-to-camera matrix ``[4, 4]`` of a camera at ``eye`` looking at ``target``; world
    ``up`` maps to image up (camera -y)."""
    eye = torch.as_tensor(eye, dtype=torch.float64)
    target = torch.as_tensor(target, dtype=torch.float64)
    up = torch.as_tensor(up, dtype=torch.float64)
    z = target - eye
    z = z / z.norm()
    x = torch.linalg.cross(z, up)
    x = x / x.norm()
    y = torch.linalg.cross(z, x)  # image down
    rot = torch.stack([x, y, z])  # rows: camera axes in world coordinates
    view = torch.eye(4, dtype=torch.float64)
    view[:3, :3] = rot
    view[:3, 3] = -rot @ eye
    return view.to(dtype)


def orbit(azimuth_deg: float, elevation_deg: float, radius: float, target=(0.0, 0.0, 0.0),
          dtype=torch.float32) -> torch.Tensor:
    """Look-at camera on a sphere around ``target`` (azimuth 0 = in front, on +z; y up)."""
    az, el = math.radians(azimuth_deg), math.radians(elevation_deg)
    t = torch.as_tensor(target, dtype=torch.float64)
    eye = t + radius * torch.tensor([math.sin(az) * math.cos(el), math.sin(el),
                                     math.cos(az) * math.cos(el)], dtype=torch.float64)
    return look_at(eye, t, dtype=dtype)


def project(points: torch.Tensor, viewmats: torch.Tensor, Ks: torch.Tensor):
    """Project world points ``[..., M, 3]`` with cameras ``viewmats [..., 4, 4]``,
    ``Ks [..., 3, 3]`` (batch dims broadcast) -> pixels ``[..., M, 2]``, depths ``[..., M]``.
    Differentiable in ``points``."""
    rot = viewmats[..., :3, :3]
    trans = viewmats[..., :3, 3]
    cam = points @ rot.transpose(-1, -2) + trans.unsqueeze(-2)
    z = cam[..., 2]
    zs = z.clamp_min(1e-6)
    fx, fy = Ks[..., 0, 0].unsqueeze(-1), Ks[..., 1, 1].unsqueeze(-1)
    cx, cy = Ks[..., 0, 2].unsqueeze(-1), Ks[..., 1, 2].unsqueeze(-1)
    uv = torch.stack([fx * cam[..., 0] / zs + cx, fy * cam[..., 1] / zs + cy], dim=-1)
    return uv, z
