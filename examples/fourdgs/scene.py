"""A deterministic synthetic dynamic scene with ground truth (no download).

An articulated figure made of coloured 3-D Gaussians, skinned rigidly to a kinematic tree
whose 17 COCO keypoints move over ``T`` frames with seeded, smooth (sums of sines) joint
angles, root translation and yaw. It is seen by one monocular training camera that sweeps an
arc around it (one view per frame, the D-NeRF-style monocular setting) and by held-out cameras
for evaluation. From the ground-truth 2-D keypoints of the training view it makes "detector"
keypoints: Gaussian noise, dropped (occluded) points in short bursts, and outliers (left/right
swaps and random jumps), with visibility flags (dropped = 0; outliers stay 1, a detector does
not know its own mistakes).

Everything is a function of ``seed`` (``torch.Generator``), so any seed gives a valid scene.
Units: the figure is about 1.55 tall, centred near the origin, y up, facing +z.
"""
import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import torch

from . import cameras
from .data import Dataset
from .render_torch import rasterization
from .skeleton import COCO17_FLIP, COCO17_NAMES, coco17_edge_index


@dataclass
class SceneConfig:
    """Size and difficulty of the synthetic scene."""
    num_frames: int = 24
    image_size: int = 64            # square images
    num_gaussians: int = 2500
    fov_deg: float = 34.0
    camera_radius: float = 3.2
    train_sweep_deg: float = 60.0   # the training camera's arc over the whole sequence
    heldout_cameras: Tuple[Tuple[float, float], ...] = ((-45.0, 20.0), (40.0, -5.0))  # (az, el)
    motion_scale: float = 1.0       # multiplies every joint-angle amplitude
    motion: Optional[str] = None    # motion capture instead: a pybullet humanoid clip name or
                                    # a .npy of COCO-17 tracks [T, 17, 3] (fourdgs/mocap.py)
    detector_noise: float = 0.015   # std of detector noise, as a fraction of the image size
    detector_drop: float = 0.08     # fraction of keypoints dropped (in bursts of 1-4 frames)
    detector_outlier: float = 0.03  # fraction of visible keypoints replaced by outliers
    init_noise: float = 0.02        # std of the initial point cloud's position noise (units)
    background: Tuple[float, float, float] = (1.0, 1.0, 1.0)


# --------------------------------------------------------------------------------------------
# kinematic tree
# --------------------------------------------------------------------------------------------
# node: (parent, rest offset in the parent's frame). A node's world frame is
# W_parent @ [R_node(t) | offset]; R_node rotates everything attached below it.
_NODES: Dict[str, Tuple[Optional[str], Tuple[float, float, float]]] = {
    "root": (None, (0.0, 0.0, 0.0)),
    "spine": ("root", (0.0, 0.0, 0.0)),
    "chest": ("spine", (0.0, 0.45, 0.0)),
    "head": ("chest", (0.0, 0.12, 0.0)),
    "l_shoulder": ("chest", (0.17, 0.0, 0.0)),
    "l_elbow": ("l_shoulder", (0.0, -0.27, 0.0)),
    "l_wrist": ("l_elbow", (0.0, -0.25, 0.0)),
    "r_shoulder": ("chest", (-0.17, 0.0, 0.0)),
    "r_elbow": ("r_shoulder", (0.0, -0.27, 0.0)),
    "r_wrist": ("r_elbow", (0.0, -0.25, 0.0)),
    "l_hip": ("root", (0.09, -0.03, 0.0)),
    "l_knee": ("l_hip", (0.0, -0.38, 0.0)),
    "l_ankle": ("l_knee", (0.0, -0.38, 0.0)),
    "r_hip": ("root", (-0.09, -0.03, 0.0)),
    "r_knee": ("r_hip", (0.0, -0.38, 0.0)),
    "r_ankle": ("r_knee", (0.0, -0.38, 0.0)),
}
# COCO-17 keypoints: (node, offset in the node's frame)
_KEYPOINTS = [
    ("head", (0.0, 0.09, 0.095)), ("head", (0.035, 0.12, 0.08)), ("head", (-0.035, 0.12, 0.08)),
    ("head", (0.085, 0.1, 0.0)), ("head", (-0.085, 0.1, 0.0)),
    ("l_shoulder", (0.0, 0.0, 0.0)), ("r_shoulder", (0.0, 0.0, 0.0)),
    ("l_elbow", (0.0, 0.0, 0.0)), ("r_elbow", (0.0, 0.0, 0.0)),
    ("l_wrist", (0.0, 0.0, 0.0)), ("r_wrist", (0.0, 0.0, 0.0)),
    ("l_hip", (0.0, 0.0, 0.0)), ("r_hip", (0.0, 0.0, 0.0)),
    ("l_knee", (0.0, 0.0, 0.0)), ("r_knee", (0.0, 0.0, 0.0)),
    ("l_ankle", (0.0, 0.0, 0.0)), ("r_ankle", (0.0, 0.0, 0.0)),
]
# body parts: (node, kind, params, rgb). Capsules run from a to b in the node's frame.
_PARTS = [
    ("spine", "cyl", dict(a=(0, -0.02, 0), b=(0, 0.47, 0), rx=0.16, rz=0.10), (0.20, 0.45, 0.80)),
    ("root", "ell", dict(c=(0, -0.05, 0), r=(0.17, 0.10, 0.11)), (0.25, 0.25, 0.35)),
    ("chest", "cap", dict(a=(0, 0.0, 0), b=(0, 0.1, 0), r=0.045), (0.95, 0.75, 0.60)),
    ("head", "ell", dict(c=(0, 0.1, 0), r=(0.09, 0.11, 0.10)), (0.95, 0.78, 0.62)),
    ("l_shoulder", "cap", dict(a=(0, 0, 0), b=(0, -0.27, 0), r=0.048), (0.90, 0.30, 0.25)),
    ("l_elbow", "cap", dict(a=(0, 0, 0), b=(0, -0.25, 0), r=0.040), (0.95, 0.65, 0.20)),
    ("l_elbow", "ell", dict(c=(0, -0.29, 0), r=(0.035, 0.05, 0.045)), (0.95, 0.80, 0.65)),
    ("r_shoulder", "cap", dict(a=(0, 0, 0), b=(0, -0.27, 0), r=0.048), (0.25, 0.70, 0.35)),
    ("r_elbow", "cap", dict(a=(0, 0, 0), b=(0, -0.25, 0), r=0.040), (0.20, 0.75, 0.75)),
    ("r_elbow", "ell", dict(c=(0, -0.29, 0), r=(0.035, 0.05, 0.045)), (0.95, 0.80, 0.65)),
    ("l_hip", "cap", dict(a=(0, 0, 0), b=(0, -0.38, 0), r=0.065), (0.55, 0.25, 0.70)),
    ("l_knee", "cap", dict(a=(0, 0, 0), b=(0, -0.38, 0), r=0.050), (0.85, 0.45, 0.75)),
    ("l_knee", "ell", dict(c=(0, -0.41, 0.05), r=(0.045, 0.035, 0.10)), (0.15, 0.15, 0.15)),
    ("r_hip", "cap", dict(a=(0, 0, 0), b=(0, -0.38, 0), r=0.065), (0.70, 0.55, 0.15)),
    ("r_knee", "cap", dict(a=(0, 0, 0), b=(0, -0.38, 0), r=0.050), (0.90, 0.85, 0.30)),
    ("r_knee", "ell", dict(c=(0, -0.41, 0.05), r=(0.045, 0.035, 0.10)), (0.15, 0.15, 0.15)),
]
_NODE_NAMES = list(_NODES)


def _rot(axis: str, angle: torch.Tensor) -> torch.Tensor:
    """Rotation matrices ``[T, 3, 3]`` about a coordinate axis by ``angle [T]`` (radians)."""
    c, s = torch.cos(angle), torch.sin(angle)
    o, z = torch.ones_like(angle), torch.zeros_like(angle)
    if axis == "x":
        m = [o, z, z, z, c, -s, z, s, c]
    elif axis == "y":
        m = [c, z, s, z, o, z, -s, z, c]
    else:
        m = [c, -s, z, s, c, z, z, z, o]
    return torch.stack(m, -1).reshape(angle.shape + (3, 3))


def _uniform(gen, lo, hi):
    return lo + (hi - lo) * float(torch.rand((), generator=gen, dtype=torch.float64))


def motion(num_frames: int, gen: torch.Generator, scale: float = 1.0):
    """Seeded smooth joint angles -> (local rotations {node: [T,3,3]}, root translation [T,3]).

    Every degree of freedom is ``bias + amp * wave(2 pi (f s + phase))``, ``s`` in ``[0, 1]``
    over the sequence, with one rhythm ``f0`` (0.8-1.3 cycles) shared by the body and
    per-DOF multiples, amplitudes and phases drawn from ``gen``. One-sided joints (elbows,
    knees) use ``(1 - cos) / 2`` so they only flex one way.
    """
    s = torch.linspace(0.0, 1.0, num_frames, dtype=torch.float64)
    f0 = _uniform(gen, 0.8, 1.3)

    def wave(amp_lo, amp_hi, bias=0.0, one_sided=False, mult=None):
        amp = scale * _uniform(gen, amp_lo, amp_hi)
        m = mult if mult is not None else (1.0 if float(torch.rand((), generator=gen)) < 0.7 else 2.0)
        phase = _uniform(gen, 0.0, 1.0)
        arg = 2 * math.pi * (f0 * m * s + phase)
        w = (1 - torch.cos(arg)) / 2 if one_sided else torch.sin(arg)
        return bias + amp * w

    rot: Dict[str, torch.Tensor] = {}
    eye = torch.eye(3, dtype=torch.float64).expand(num_frames, 3, 3)
    rot["root"] = _rot("y", wave(0.25, 0.6, mult=0.5))
    rot["spine"] = _rot("y", wave(0.1, 0.35)) @ _rot("x", wave(0.03, 0.12))
    rot["chest"] = eye
    rot["head"] = _rot("y", wave(0.2, 0.6)) @ _rot("x", wave(0.05, 0.25))
    for side, sign in (("l", 1.0), ("r", -1.0)):
        # shoulder: abduction about z (arm up sideways), flexion about x (forwards = -angle)
        abd = wave(0.3, 0.9, bias=scale * _uniform(gen, 0.15, 0.45))
        rot[f"{side}_shoulder"] = _rot("z", sign * abd) @ _rot("x", wave(0.4, 1.1))
        rot[f"{side}_elbow"] = _rot("x", -wave(0.4, 1.4, one_sided=True))
        rot[f"{side}_wrist"] = eye
        rot[f"{side}_hip"] = _rot("x", wave(0.15, 0.55)) @ _rot("z", sign * wave(0.0, 0.15))
        rot[f"{side}_knee"] = _rot("x", wave(0.1, 0.9, one_sided=True))
        rot[f"{side}_ankle"] = eye
    root_t = torch.stack([wave(0.1, 0.25, mult=0.5), wave(0.01, 0.03, mult=2.0),
                          wave(0.0, 0.1, mult=0.5)], -1)
    return rot, root_t


def forward_kinematics(local_rot: Dict[str, torch.Tensor], root_t: torch.Tensor):
    """World rotation ``[T,3,3]`` and position ``[T,3]`` of every node."""
    world_r, world_p = {}, {}
    for name in _NODE_NAMES:
        parent, offset = _NODES[name]
        off = torch.tensor(offset, dtype=torch.float64)
        if parent is None:
            world_p[name] = root_t + off
            world_r[name] = local_rot[name]
        else:
            world_p[name] = world_p[parent] + world_r[parent] @ off
            world_r[name] = world_r[parent] @ local_rot[name]
    return world_r, world_p


# --------------------------------------------------------------------------------------------
# Gaussians on the body surface
# --------------------------------------------------------------------------------------------
def _part_area(kind, p):
    if kind == "ell":
        a, b, c = p["r"]
        return 4 * math.pi * ((a ** 1.6 * b ** 1.6 + a ** 1.6 * c ** 1.6 + b ** 1.6 * c ** 1.6) / 3) ** (1 / 1.6)
    if kind == "cyl":
        h = abs(p["b"][1] - p["a"][1])
        return 2 * math.pi * math.sqrt((p["rx"] ** 2 + p["rz"] ** 2) / 2) * h
    length = math.dist(p["a"], p["b"])
    return 2 * math.pi * p["r"] * length + 4 * math.pi * p["r"] ** 2


def _sample_part(kind, p, n, gen):
    """``n`` points on the part's surface in its node frame, and a texture coordinate."""
    u = torch.rand(n, generator=gen, dtype=torch.float64)
    v = torch.rand(n, generator=gen, dtype=torch.float64)
    if kind == "ell":
        z = 2 * u - 1
        phi = 2 * math.pi * v
        rr = torch.sqrt(1 - z ** 2)
        unit = torch.stack([rr * torch.cos(phi), z, rr * torch.sin(phi)], -1)
        pts = torch.tensor(p["c"], dtype=torch.float64) + unit * torch.tensor(p["r"], dtype=torch.float64)
        return pts, unit[:, 1] * p["r"][1] + 0.5 * phi.cos() * p["r"][0]
    if kind == "cyl":
        y = p["a"][1] + (p["b"][1] - p["a"][1]) * u
        phi = 2 * math.pi * v
        pts = torch.stack([p["rx"] * torch.cos(phi), y, p["rz"] * torch.sin(phi)], -1)
        return pts, y + 0.04 * torch.sin(phi)
    a = torch.tensor(p["a"], dtype=torch.float64)
    b = torch.tensor(p["b"], dtype=torch.float64)
    r = p["r"]
    axis = b - a
    length = float(axis.norm())
    e = axis / length
    n1 = torch.linalg.cross(e, torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64))
    n1 = n1 / n1.norm()
    n2 = torch.linalg.cross(e, n1)
    phi = 2 * math.pi * v
    radial = torch.cos(phi)[:, None] * n1 + torch.sin(phi)[:, None] * n2
    side_pts = a + (u * length)[:, None] * e + r * radial
    # caps: uniform directions, on the end whose side they point to
    d = torch.randn(n, 3, generator=gen, dtype=torch.float64)
    d = d / d.norm(dim=-1, keepdim=True)
    along = d @ e
    cap_pts = torch.where((along < 0)[:, None], a, b) + r * d
    on_side = torch.rand(n, generator=gen, dtype=torch.float64) < length / (length + 2 * r)
    pts = torch.where(on_side[:, None], side_pts, cap_pts)
    t = (pts - a) @ e
    return pts, t


@dataclass
class GroundTruthGaussians:
    """Gaussians skinned rigidly to kinematic nodes: ``world(t) = R_node(t) local + p_node(t)``."""
    local: torch.Tensor      # [N, 3] in the node frame
    node: torch.Tensor       # [N] node index into _NODE_NAMES
    colors: torch.Tensor     # [N, 3]
    scales: torch.Tensor     # [N, 3]
    opacities: torch.Tensor  # [N]

    def means(self, world_r, world_p) -> torch.Tensor:
        """Centres ``[T, N, 3]`` for world node frames from :func:`forward_kinematics`."""
        rs = torch.stack([world_r[n] for n in _NODE_NAMES], 1)  # [T, nodes, 3, 3]
        ps = torch.stack([world_p[n] for n in _NODE_NAMES], 1)
        r = rs[:, self.node]
        return (r @ self.local.unsqueeze(-1)).squeeze(-1) + ps[:, self.node]


def make_gaussians(num: int, gen: torch.Generator) -> GroundTruthGaussians:
    areas = torch.tensor([_part_area(k, p) for _, k, p, _ in _PARTS], dtype=torch.float64)
    counts = torch.floor(areas / areas.sum() * num).long()
    counts[torch.argmax(areas)] += num - int(counts.sum())
    spacing = math.sqrt(float(areas.sum()) / num)
    local, node, colors = [], [], []
    for (nname, kind, p, rgb), n in zip(_PARTS, counts.tolist()):
        pts, tex = _sample_part(kind, p, n, gen)
        base = torch.tensor(rgb, dtype=torch.float64)
        # texture: soft stripes along the part and a little per-Gaussian colour noise
        stripe = 0.72 + 0.28 * torch.sin(2 * math.pi * tex / 0.07)
        col = base * stripe[:, None] + 0.04 * torch.randn(n, 3, generator=gen, dtype=torch.float64)
        local.append(pts)
        node.append(torch.full((n,), _NODE_NAMES.index(nname), dtype=torch.long))
        colors.append(col.clamp(0.02, 0.98))
    local = torch.cat(local)
    n_total = local.shape[0]
    size = spacing * (0.55 + 0.2 * torch.rand(n_total, generator=gen, dtype=torch.float64))
    gauss = GroundTruthGaussians(local=local, node=torch.cat(node), colors=torch.cat(colors),
                                 scales=size[:, None].expand(n_total, 3).clone(),
                                 opacities=torch.full((n_total,), 0.95, dtype=torch.float64))
    # facial features for texture that identifies the head's rotation
    head = _NODE_NAMES.index("head")
    for (kn, off), rgb in zip(_KEYPOINTS[:3], [(0.8, 0.1, 0.1), (0.05, 0.05, 0.3), (0.05, 0.05, 0.3)]):
        near = ((gauss.local - torch.tensor(off, dtype=torch.float64)).norm(dim=-1) < 0.03) & \
            (gauss.node == head)
        gauss.colors[near] = torch.tensor(rgb, dtype=torch.float64)
    return gauss


# --------------------------------------------------------------------------------------------
# the scene
# --------------------------------------------------------------------------------------------
@dataclass
class SyntheticScene:
    """A :class:`~fourdgs.data.Dataset` plus the ground truth it was made from."""
    dataset: Dataset
    gaussians: GroundTruthGaussians
    gt_means: torch.Tensor        # [T, N, 3]
    config: SceneConfig
    seed: int


def keypoints3d(world_r, world_p) -> torch.Tensor:
    """COCO-17 joint tracks ``[T, 17, 3]``."""
    out = []
    for node, off in _KEYPOINTS:
        out.append(world_p[node] + world_r[node] @ torch.tensor(off, dtype=torch.float64))
    return torch.stack(out, 1)


def _detector(kp2d: torch.Tensor, size: int, cfg: SceneConfig, gen: torch.Generator):
    """Noisy detections ``[T, K, 2]`` and visibility ``[T, K]`` from clean pixels."""
    t_len, k = kp2d.shape[:2]
    det = kp2d + cfg.detector_noise * size * torch.randn(kp2d.shape, generator=gen, dtype=torch.float64)
    vis = torch.ones(t_len, k, dtype=torch.float64)
    # occlusions in bursts of 1-4 frames until the requested fraction is dropped
    target = int(round(cfg.detector_drop * t_len * k))
    while int((vis == 0).sum()) < target:
        kk = int(torch.randint(k, (), generator=gen))
        t0 = int(torch.randint(t_len, (), generator=gen))
        length = int(torch.randint(1, 5, (), generator=gen))
        vis[t0:t0 + length, kk] = 0
    # outliers among the visible: half left/right swaps, half random jumps
    outlier = (torch.rand(t_len, k, generator=gen, dtype=torch.float64) < cfg.detector_outlier) & (vis > 0)
    swap = torch.rand(t_len, k, generator=gen, dtype=torch.float64) < 0.5
    flipped = det[:, COCO17_FLIP]
    jump = torch.randn(t_len, k, 2, generator=gen, dtype=torch.float64)
    jump = det + 0.15 * size * jump / jump.norm(dim=-1, keepdim=True) * \
        (1 + torch.rand(t_len, k, 1, generator=gen, dtype=torch.float64))
    same = torch.tensor(COCO17_FLIP) == torch.arange(k)
    use_swap = outlier & swap & ~same
    use_jump = outlier & ~use_swap
    det = torch.where(use_swap[..., None], flipped, det)
    det = torch.where(use_jump[..., None], jump, det)
    inside = (det >= 0).all(-1) & (det < size).all(-1)
    vis = vis * inside.to(vis.dtype)
    return det, vis, outlier


@torch.no_grad()
def render_gt(gauss: GroundTruthGaussians, means_t: torch.Tensor, viewmats, Ks, size, background):
    """Render ground-truth images ``[T, H, W, 3]`` (one camera per frame)."""
    quats = torch.zeros(gauss.local.shape[0], 4)
    quats[:, 0] = 1
    imgs = []
    for t in range(means_t.shape[0]):
        img, _, _ = rasterization(means_t[t].float(), quats, gauss.scales.float(),
                                  gauss.opacities.float(), gauss.colors.float(), viewmats[t:t + 1],
                                  Ks[t:t + 1], size, size, backgrounds=background[None])
        imgs.append(img[0])
    return torch.stack(imgs).clamp(0, 1)


@dataclass
class KeypointTracks:
    """The scene's keypoints without any rendering (what ``train_keypoints.py`` fits)."""
    gt3d: torch.Tensor        # [T, K, 3]
    gt2d: torch.Tensor        # [T, K, 2] clean, training view, pixels
    detector: torch.Tensor    # [T, K, 2] noisy detections, pixels
    visibility: torch.Tensor  # [T, K]
    outlier: torch.Tensor     # [T, K] bool, which detections are outliers
    width: int
    height: int
    names: List[str]
    edge_index: torch.Tensor


def _generate(seed: int, cfg: SceneConfig):
    """Every random draw of the scene, in a fixed order (rendering draws none)."""
    if cfg.num_frames < 3:
        raise ValueError("the scene needs at least 3 frames")
    gen = torch.Generator().manual_seed(int(seed))
    t_len, size = cfg.num_frames, cfg.image_size
    if cfg.motion:   # motion capture (fourdgs/mocap.py); the seed draws everything else
        from . import mocap
        joints = mocap.load_tracks(cfg.motion, t_len, _TARGET)        # [T, 17, 3]
        world_r, world_p, node_scale = mocap.drive(joints, _NODES, _KEYPOINTS)
        gauss = mocap.fit_gaussians(make_gaussians(cfg.num_gaussians, gen), node_scale, _NODE_NAMES)
    else:
        local_rot, root_t = motion(t_len, gen, cfg.motion_scale)
        world_r, world_p = forward_kinematics(local_rot, root_t)
        gauss = make_gaussians(cfg.num_gaussians, gen)
        joints = keypoints3d(world_r, world_p)                        # [T, 17, 3]
    means_t = gauss.means(world_r, world_p)                           # [T, N, 3]
    az0 = _uniform(gen, -20.0, 20.0)
    azs = [az0 + cfg.train_sweep_deg * (t / max(t_len - 1, 1) - 0.5) for t in range(t_len)]
    viewmats = torch.stack([cameras.orbit(a, 8.0, cfg.camera_radius, _TARGET) for a in azs])
    K = cameras.intrinsics(size, size, cfg.fov_deg)
    Ks = K.expand(t_len, 3, 3).clone()
    kp2d, _ = cameras.project(joints, viewmats.double(), Ks.double())
    det, vis, outlier = _detector(kp2d, size, cfg, gen)
    init = means_t[0] + cfg.init_noise * torch.randn(means_t.shape[1:], generator=gen, dtype=torch.float64)
    return dict(gauss=gauss, means_t=means_t, joints=joints, az0=az0, viewmats=viewmats, K=K,
                Ks=Ks, kp2d=kp2d, det=det, vis=vis, outlier=outlier, init=init)


_TARGET = (0.0, -0.05, 0.0)


def make_keypoint_tracks(seed: int = 0, cfg: Optional[SceneConfig] = None) -> KeypointTracks:
    """The keypoint tracks of :func:`make_scene` for the same seed and config (no images)."""
    cfg = cfg or SceneConfig()
    g = _generate(seed, cfg)
    return KeypointTracks(gt3d=g["joints"].float(), gt2d=g["kp2d"].float(), detector=g["det"].float(),
                          visibility=g["vis"].float(), outlier=g["outlier"], width=cfg.image_size,
                          height=cfg.image_size, names=list(COCO17_NAMES),
                          edge_index=coco17_edge_index())


def make_scene(seed: int = 0, cfg: Optional[SceneConfig] = None) -> SyntheticScene:
    """Generate the scene for ``seed`` (deterministic: CPU, float64 kinematics).

    The initial point cloud is a noisy copy (``init_noise``) of the first frame's Gaussian
    centres, as structure-from-motion or a depth sensor would give; colours are unknown."""
    cfg = cfg or SceneConfig()
    g = _generate(seed, cfg)
    t_len, size = cfg.num_frames, cfg.image_size
    gauss, means_t, Ks, K = g["gauss"], g["means_t"], g["Ks"], g["K"]
    background = torch.tensor(cfg.background, dtype=torch.float32)
    images = render_gt(gauss, means_t, g["viewmats"], Ks, size, background)
    ho_view = torch.stack([cameras.orbit(g["az0"] + a, e, cfg.camera_radius, _TARGET)
                           for a, e in cfg.heldout_cameras]) if cfg.heldout_cameras else None
    ho_images = None
    if ho_view is not None:
        ho_images = torch.stack([render_gt(gauss, means_t, v.expand(t_len, 4, 4), Ks, size, background)
                                 for v in ho_view])
    ds = Dataset(
        images=images, viewmats=g["viewmats"], Ks=Ks, keypoints=g["det"].float(),
        visibility=g["vis"].float(), edge_index=coco17_edge_index(), background=background,
        keypoint_names=list(COCO17_NAMES), init_points=g["init"].float(), heldout_viewmats=ho_view,
        heldout_Ks=None if ho_view is None else K.expand(len(ho_view), 3, 3).clone(),
        heldout_images=ho_images, gt_joints3d=g["joints"].float(), gt_keypoints2d=g["kp2d"].float(),
        init_depth=cfg.camera_radius, name=f"synthetic-seed{seed}")
    return SyntheticScene(dataset=ds, gaussians=gauss, gt_means=means_t.float(), config=cfg, seed=seed)
