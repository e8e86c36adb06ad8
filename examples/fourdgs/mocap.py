"""Motion capture for the synthetic scene: pybullet's humanoid clips or your own joint tracks.

``load_tracks(motion, num_frames)`` gives COCO-17 joint tracks ``[T, 17, 3]`` (float64) from

* a pybullet humanoid clip name (``humanoid3d_walk``, ... see :func:`clip_names`): the clip's
  poses are resampled to ``T`` frames (root position and revolute angles interpolated
  linearly, quaternions by slerp) and pybullet computes the forward kinematics headless on the
  CPU (``p.DIRECT``) with the clip's own ``humanoid/humanoid.urdf``;
* or a path to a ``.npy`` of joint tracks ``[T', 17, 3]`` in COCO-17 order, y up (resampled
  linearly to ``T`` frames).

The tracks are then normalised to the scene's frame: turned about y so that the figure faces
+z at the first frame (its left hip towards +x), scaled so that the whole motion fits the
cameras, and centred on the cameras' target. :func:`drive` turns them into the world frames of
the scene's kinematic nodes, so that the scene's Gaussians are skinned to the moving skeleton
exactly as for the built-in motion.

The clips' layout (DeepMimic's humanoid, y up, facing +x, right side towards +z): each frame
is ``[duration, root position (3), root quaternion (4), chest (4), neck (4), right hip (4),
right knee (1), right ankle (4), right shoulder (4), right elbow (1), left hip (4), left knee
(1), left ankle (4), left shoulder (4), left elbow (1)]``; quaternions are stored w, x, y, z
(pybullet takes x, y, z, w), the knees and elbows are revolute joints (one angle).
"""
import contextlib
import dataclasses
import json
import math
import os
import sys
from typing import Dict, List, Tuple

import numpy as np
import torch

INSTALL_HINT = "pip install pybullet==3.2.7 (or the examples extra: pip install '.[examples]')"

# (pybullet joint index, offset in a frame, number of values) in the clips' order
_LAYOUT = [(1, 8, 4), (2, 12, 4), (9, 16, 4), (10, 20, 1), (11, 21, 4), (3, 25, 4), (4, 29, 1),
           (12, 30, 4), (13, 34, 1), (14, 35, 4), (6, 39, 4), (7, 43, 1)]
_FRAME_LEN = 44
_SCALE = 0.25          # the URDF is 4x the clips' units (metres); pybullet's own DeepMimic code
                       # loads it with globalScaling=0.25 too
# COCO body keypoints <- pybullet link indices (each link's frame sits on its joint)
_BODY = {5: 6, 6: 3, 7: 7, 8: 4, 9: 8, 10: 5, 11: 12, 12: 9, 13: 13, 14: 10, 15: 14, 16: 11}
_NECK = 2
# The face, in the neck link's frame (x forward, y up, z to the figure's right; metres): the
# head sphere's centre is 0.175 above the neck joint; nose, eyes and ears are fixed offsets of
# it (the built-in figure's face, whose head is about as large).
_HEAD_CENTRE = (0.0, 0.175, 0.0)
_FACE = [(0.095, -0.01, 0.0),                           # nose
         (0.08, 0.02, -0.035), (0.08, 0.02, 0.035),     # left eye, right eye
         (0.0, 0.0, -0.085), (0.0, 0.0, 0.085)]         # left ear, right ear
# how far the normalised motion may reach from the cameras' target (the built-in figure's
# keypoints span 1.48 units vertically)
_HALF_EXTENT = 0.74
_STANDING = 1.48       # the built-in figure's ankle-to-eye height


class MotionError(ValueError):
    """The ``motion`` argument is neither a pybullet clip nor a valid ``.npy`` of tracks."""


class PybulletMissing(ImportError):
    """A pybullet clip was asked for but pybullet is not installed."""


@contextlib.contextmanager
def _quiet():
    """Silence pybullet's C-level prints (its build time, URDF warnings) on fds 1 and 2."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 1)
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved + [null]:
            os.close(fd)


def _pybullet():
    try:
        with _quiet():
            import pybullet
            import pybullet_data
    except ImportError as err:
        raise PybulletMissing(f"motion clips need the pybullet package, which is not installed "
                              f"({err}); install it with: {INSTALL_HINT}") from err
    return pybullet, pybullet_data


def motions_dir() -> str:
    _, pybullet_data = _pybullet()
    return os.path.join(pybullet_data.getDataPath(), "data", "motions")


def clip_names() -> List[str]:
    """The humanoid clips pybullet ships (``humanoid3d_*``), sorted."""
    return sorted(n[:-4] for n in os.listdir(motions_dir())
                  if n.startswith("humanoid3d_") and n.endswith(".txt"))


def read_clip(name: str) -> np.ndarray:
    """The frames ``[F, 44]`` of a pybullet humanoid clip."""
    path = os.path.join(motions_dir(), name + ".txt")
    if not os.path.isfile(path):
        raise MotionError(f"motion must be a pybullet humanoid clip ({', '.join(clip_names())}) "
                         f"or a path to a .npy of joint tracks [T, 17, 3], got {name!r}")
    with open(path) as f:
        frames = np.asarray(json.load(f)["Frames"], dtype=np.float64)
    if frames.ndim != 2 or frames.shape[1] != _FRAME_LEN or frames.shape[0] < 2:
        raise MotionError(f"{path}: expected frames of {_FRAME_LEN} values, got shape {frames.shape}")
    return frames


def _slerp(q0: np.ndarray, q1: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Row-wise slerp between unit quaternions ``[n, 4]`` at weights ``w [n]``."""
    q0 = q0 / np.linalg.norm(q0, axis=-1, keepdims=True)
    q1 = q1 / np.linalg.norm(q1, axis=-1, keepdims=True)
    dot = (q0 * q1).sum(-1)
    q1 = np.where(dot[:, None] < 0, -q1, q1)     # the short way round
    dot = np.abs(dot).clip(max=1.0)
    theta = np.arccos(dot)
    sin = np.sin(theta)
    small = sin < 1e-8
    a = np.where(small, 1 - w, np.sin((1 - w) * theta) / np.where(small, 1, sin))
    b = np.where(small, w, np.sin(w * theta) / np.where(small, 1, sin))
    q = a[:, None] * q0 + b[:, None] * q1
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def resample_clip(frames: np.ndarray, num_frames: int) -> np.ndarray:
    """Poses ``[T, 44]`` at ``T`` evenly spaced times over the clip (column 0 then unused)."""
    times = np.concatenate([[0.0], np.cumsum(frames[:-1, 0])])
    t = np.linspace(0.0, times[-1], num_frames)
    i = np.clip(np.searchsorted(times, t, side="right") - 1, 0, len(frames) - 2)
    w = (t - times[i]) / np.maximum(times[i + 1] - times[i], 1e-12)
    w = w.clip(0.0, 1.0)
    a, b = frames[i], frames[i + 1]
    out = a + w[:, None] * (b - a)                 # positions and revolute angles
    for off in [4] + [o for _, o, n in _LAYOUT if n == 4]:
        out[:, off:off + 4] = _slerp(a[:, off:off + 4], b[:, off:off + 4], w)
    return out


def _xyzw(q):
    return [q[1], q[2], q[3], q[0]]


def clip_tracks(name: str, num_frames: int) -> np.ndarray:
    """COCO-17 tracks ``[T, 17, 3]`` of a clip, in the clip's own frame (metres, y up)."""
    p, pybullet_data = _pybullet()
    poses = resample_clip(read_clip(name), num_frames)
    with _quiet():
        client = p.connect(p.DIRECT)
        body = p.loadURDF(os.path.join(pybullet_data.getDataPath(), "humanoid", "humanoid.urdf"),
                          globalScaling=_SCALE, physicsClientId=client)
    try:
        out = np.zeros((num_frames, 17, 3))
        head_c, face = np.asarray(_HEAD_CENTRE), np.asarray(_FACE)
        for t, f in enumerate(poses):
            p.resetBasePositionAndOrientation(body, f[1:4].tolist(), _xyzw(f[4:8]),
                                              physicsClientId=client)
            for joint, off, n in _LAYOUT:
                value = _xyzw(f[off:off + 4]) if n == 4 else [f[off]]
                p.resetJointStateMultiDof(body, joint, value, physicsClientId=client)
            for k, link in _BODY.items():
                out[t, k] = p.getLinkState(body, link, computeForwardKinematics=True,
                                           physicsClientId=client)[4]
            neck = p.getLinkState(body, _NECK, computeForwardKinematics=True, physicsClientId=client)
            rot = np.asarray(p.getMatrixFromQuaternion(neck[5])).reshape(3, 3)
            out[t, :5] = np.asarray(neck[4]) + (head_c + face) @ rot.T
    finally:
        p.disconnect(client)
    return out


def _resample_tracks(tracks: np.ndarray, num_frames: int) -> np.ndarray:
    t = np.linspace(0.0, tracks.shape[0] - 1, num_frames)
    i = np.clip(np.floor(t).astype(int), 0, tracks.shape[0] - 2)
    w = (t - i)[:, None, None]
    return tracks[i] + w * (tracks[i + 1] - tracks[i])


def npy_tracks(path: str, num_frames: int) -> np.ndarray:
    """COCO-17 tracks ``[T, 17, 3]`` from a ``.npy`` of ``[T', 17, 3]``, resampled to ``T``."""
    try:
        arr = np.load(path)
    except Exception as err:
        raise MotionError(f"motion {path!r}: cannot be read with numpy.load ({err})") from err
    if arr.ndim != 3 or arr.shape[1:] != (17, 3) or arr.shape[0] < 2:
        raise MotionError(f"motion {path!r}: expected joint tracks of shape [T, 17, 3] with T >= 2 "
                         f"(COCO-17 order, y up), got {list(arr.shape)}")
    arr = np.asarray(arr, dtype=np.float64)
    if not np.isfinite(arr).all():
        raise MotionError(f"motion {path!r}: contains NaN or Inf")
    return _resample_tracks(arr, num_frames)


def normalise(tracks: np.ndarray, target: Tuple[float, float, float]) -> np.ndarray:
    """Remove the mean horizontal velocity, turn about y (face +z at frame 0), scale to fit
    the cameras, centre on ``target``.

    The pelvis' least-squares constant horizontal velocity is taken out of every joint (a
    treadmill: accelerations, hence jitter, are unchanged, and a run stays in view). The scale is the built-in figure's over this figure's first-frame height (ankles to eyes),
    reduced where the motion travels or reaches further than the built-in figure does: every
    joint stays within ``_HALF_EXTENT`` of the centre horizontally and vertically."""
    x = tracks.copy()
    t = np.arange(x.shape[0], dtype=np.float64)
    t -= t.mean()
    pelvis = (x[:, 11] + x[:, 12]) / 2
    velocity = (t[:, None] * pelvis).sum(0) / max((t * t).sum(), 1e-12)
    velocity[1] = 0.0
    x = x - (t[:, None] * velocity)[:, None, :]
    left = x[0, 11] - x[0, 12]                       # right hip -> left hip
    ang = math.atan2(left[2], left[0])               # turn it onto +x
    c, s = math.cos(ang), math.sin(ang)
    rot = np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])
    x = x @ rot.T
    lo, hi = x.reshape(-1, 3).min(0), x.reshape(-1, 3).max(0)
    centre = (lo + hi) / 2
    x = x - centre
    height = x[0, :3, 1].mean() - x[0, 15:, 1].mean()
    reach = max(np.linalg.norm(x[..., [0, 2]], axis=-1).max(), np.abs(x[..., 1]).max())
    scale = _STANDING / height if height > 1e-6 else math.inf
    scale = min(scale, _HALF_EXTENT / max(reach, 1e-12))
    return x * scale + np.asarray(target)


def load_tracks(motion: str, num_frames: int, target=(0.0, -0.05, 0.0)) -> torch.Tensor:
    """Normalised COCO-17 tracks ``[T, 17, 3]`` (float64) of a clip name or a ``.npy`` path."""
    if motion.endswith(".npy") or os.path.sep in motion:
        raw = npy_tracks(motion, num_frames)
    else:
        raw = clip_tracks(motion, num_frames)
    return torch.from_numpy(normalise(raw, target))


# --------------------------------------------------------------------------------------------
# the scene's kinematic nodes from the tracks
# --------------------------------------------------------------------------------------------
def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def _frame(x_dir: torch.Tensor, y_dir: torch.Tensor) -> torch.Tensor:
    """Rotations ``[T, 3, 3]`` with columns x, y, z: y along ``y_dir``, x as close to ``x_dir``
    as orthogonality allows."""
    y = _unit(y_dir)
    x = _unit(x_dir - (x_dir * y).sum(-1, keepdim=True) * y)
    return torch.stack([x, y, torch.linalg.cross(x, y)], -1)


def _min_rotation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The smallest rotation ``[3, 3]`` taking unit ``a`` to unit ``b`` (Rodrigues)."""
    v = torch.linalg.cross(a, b)
    c = float(a @ b)
    if c < -1 + 1e-9:      # opposite: half a turn about any axis normal to a
        axis = torch.linalg.cross(a, torch.tensor([1.0, 0.0, 0.0], dtype=a.dtype))
        if axis.norm() < 1e-6:
            axis = torch.linalg.cross(a, torch.tensor([0.0, 0.0, 1.0], dtype=a.dtype))
        axis = _unit(axis)
        return 2 * torch.outer(axis, axis) - torch.eye(3, dtype=a.dtype)
    vx = torch.tensor([[0.0, -v[2], v[1]], [v[2], 0.0, -v[0]], [-v[1], v[0], 0.0]], dtype=a.dtype)
    return torch.eye(3, dtype=a.dtype) + vx + vx @ vx / (1 + c)


def _limb(parent_r: torch.Tensor, bone: torch.Tensor) -> torch.Tensor:
    """Limb rotations ``[T, 3, 3]`` whose -y follows ``bone [T, 3]``. Frame 0 swings the
    parent's frame (rest pose: the limb hangs along the parent's -y); later frames transport
    the previous one with the smallest rotation (no twist flips when a limb passes overhead)."""
    d = _unit(bone)
    down = torch.tensor([0.0, -1.0, 0.0], dtype=bone.dtype)
    out = [_min_rotation(parent_r[0] @ down, d[0]) @ parent_r[0]]
    for t in range(1, bone.shape[0]):
        out.append(_min_rotation(d[t - 1], d[t]) @ out[-1])
    return torch.stack(out)


def drive(joints: torch.Tensor, nodes: Dict[str, Tuple], keypoints: List[Tuple]):
    """World frames of the scene's nodes from COCO-17 ``joints [T, 17, 3]``.

    ``nodes`` and ``keypoints`` are the scene's kinematic tree and keypoint table. Returns
    ``(world_r, world_p, node_scale)``: rotations ``[T, 3, 3]`` and positions ``[T, 3]`` per
    node, and per node a constant scale ``[3]`` of its local geometry (the tracks' bone lengths
    over the built-in ones along the bone, the figure's overall size across it)."""
    j = joints
    nose, l_ear, r_ear = j[:, 0], j[:, 3], j[:, 4]
    l_sh, r_sh, l_hip, r_hip = j[:, 5], j[:, 6], j[:, 11], j[:, 12]
    mid_sh, mid_hip = (l_sh + r_sh) / 2, (l_hip + r_hip) / 2
    up = mid_sh - mid_hip
    side = _unit(l_sh - r_sh) + _unit(l_hip - r_hip)

    def rest(name):          # length of a node's rest offset
        return math.sqrt(sum(v * v for v in nodes[name][1]))

    def length(v):           # median length over time
        return float(v.norm(dim=-1).median())

    # the head frame from the face: ears give x, the nose gives forward; the node sits below
    # the ears' midpoint as in the built-in head (keypoint offsets of the ears: y = 0.1)
    head_size = length(l_ear - r_ear) / (2 * abs(keypoints[3][1][0]))
    ear_mid = (l_ear + r_ear) / 2
    head_x = _unit(l_ear - r_ear)
    fwd = nose - ear_mid
    fwd = _unit(fwd - (fwd * head_x).sum(-1, keepdim=True) * head_x)
    head_r = torch.stack([head_x, torch.linalg.cross(fwd, head_x), fwd], -1)
    head_p = ear_mid - head_size * keypoints[3][1][1] * head_r[..., 1]
    size = length(up) / rest("chest")                  # the figure's size against the built-in
    world_r = {"root": _frame(l_hip - r_hip, up), "spine": _frame(side, up)}
    world_p = {"root": mid_hip, "spine": mid_hip}
    world_r["chest"] = _frame(l_sh - r_sh, head_p - mid_sh)
    world_p["chest"] = mid_sh
    world_r["head"], world_p["head"] = head_r, head_p
    ones = torch.ones(3, dtype=j.dtype)
    scale = {n: size * ones for n in nodes}
    scale["spine"] = torch.tensor([length(l_sh - r_sh) / (2 * nodes["l_shoulder"][1][0]),
                                   size, size], dtype=j.dtype)
    scale["root"] = torch.tensor([length(l_hip - r_hip) / (2 * nodes["l_hip"][1][0]), size, size],
                                 dtype=j.dtype)
    scale["chest"] = torch.tensor([size, length(head_p - mid_sh) / rest("head"), size], dtype=j.dtype)
    scale["head"] = head_size * ones
    kp_index = {}
    for i, (node, off) in enumerate(keypoints):
        if i >= 5 and all(v == 0 for v in off):
            kp_index[node] = i
    for node, (parent, _) in nodes.items():
        if node in world_r:
            continue
        world_p[node] = j[:, kp_index[node]]
        child = [c for c, (p, _) in nodes.items() if p == node]
        if child:            # a limb segment: -y along the bone to its child
            bone = j[:, kp_index[child[0]]] - world_p[node]
            world_r[node] = _limb(world_r[parent], bone)
            scale[node] = torch.tensor([size, length(bone) / rest(child[0]), size], dtype=j.dtype)
        else:                # wrists and ankles carry no geometry of their own
            world_r[node] = world_r[parent]
    return world_r, world_p, scale


def fit_gaussians(gauss, scale: Dict[str, torch.Tensor], node_names: List[str]):
    """The scene's Gaussians resized to the tracks' skeleton: local positions scaled per node
    (see :func:`drive`), sizes by the node's mean scale."""
    s = torch.stack([scale[n] for n in node_names])[gauss.node]          # [N, 3]
    return dataclasses.replace(gauss, local=gauss.local * s,
                               scales=gauss.scales * s.prod(-1, keepdim=True) ** (1 / 3))
