"""The training data, in memory (:class:`Dataset`) and on disk (``--data DIR``).

Folder format (``train_4dgs.py --data DIR`` reads it; :func:`write_folder` writes it)::

    DIR/
      scene.json          required, see below
      frames/             required: the T training frames, PNG/JPG, RGB (alpha is dropped),
                          all width x height, taken in sorted file-name order (00000.png, ...)
      keypoints.json      required: {"keypoints": [[[x, y, v], ... K entries], ... T frames]}
                          x, y in pixels (pixel (i, j) covers [j, j+1) x [i, i+1), so the
                          centre of the top-left pixel is (0.5, 0.5)); v = visibility or
                          confidence in [0, 1] (0 = not detected / occluded; x, y then ignored)
      points.npy          optional: initial point cloud, float [N, 3] or [N, 6] (xyz, rgb 0-1)
      heldout/            optional, held-out views for evaluation:
        cameras.json      {"cameras": [{"K": 3x3, "viewmat": 4x4}, ...]}
        cam00/, cam01/... T frames each, same size and naming as frames/
      gt/                 optional ground truth, for scoring only:
        joints3d.npy      [T, K, 3] 3-D keypoint tracks in world units
        keypoints2d.npy   [T, K, 2] clean 2-D keypoints of the training view, pixels

``scene.json``::

    {
      "width": 80, "height": 80, "num_frames": 24,          # required
      "K": [[fx, 0, cx], [0, fy, cy], [0, 0, 1]],           # required: "K" (shared) or
      "Ks": [[[...]], ...],                                  #   "Ks" (one 3x3 per frame)
      "viewmats": [[[...4x4...]], ...],                      # optional: world-to-camera per
                                                             #   frame (OpenCV axes: x right,
                                                             #   y down, z forward); default
                                                             #   identity (a static camera)
      "keypoint_names": ["nose", ...],                      # optional
      "skeleton": [[i, j], ...],                            # optional, 0-based keypoint pairs;
                                                             #   default COCO-17 when K == 17
      "background": [1.0, 1.0, 1.0],                        # optional, RGB 0-1
      "init_depth": 3.0                                     # optional: depth of the initial
                                                             #   points when no points.npy
    }

A malformed folder raises :class:`DataFormatError` naming the file and what was expected.
"""
import json
import os
from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np
import torch

IMAGE_EXTS = (".png", ".jpg", ".jpeg")


class DataFormatError(ValueError):
    """The data folder does not follow the documented format."""


@dataclass
class Dataset:
    """Everything the trainer needs; the optional fields enable the matching metrics."""
    images: torch.Tensor                      # [T, H, W, 3] float in [0, 1], training view
    viewmats: torch.Tensor                    # [T, 4, 4] world-to-camera, training camera
    Ks: torch.Tensor                          # [T, 3, 3]
    keypoints: torch.Tensor                   # [T, K, 2] detector keypoints, pixels
    visibility: torch.Tensor                  # [T, K] in [0, 1]
    edge_index: Optional[torch.Tensor]        # [2, E] skeleton, or None
    background: torch.Tensor                  # [3]
    keypoint_names: List[str] = field(default_factory=list)
    init_points: Optional[torch.Tensor] = None   # [N, 3]
    init_colors: Optional[torch.Tensor] = None   # [N, 3]
    init_depth: float = 3.0
    heldout_viewmats: Optional[torch.Tensor] = None  # [C, 4, 4]
    heldout_Ks: Optional[torch.Tensor] = None        # [C, 3, 3]
    heldout_images: Optional[torch.Tensor] = None    # [C, T, H, W, 3]
    gt_joints3d: Optional[torch.Tensor] = None       # [T, K, 3]
    gt_keypoints2d: Optional[torch.Tensor] = None    # [T, K, 2]
    name: str = "data"

    @property
    def num_frames(self) -> int:
        return self.images.shape[0]

    @property
    def height(self) -> int:
        return self.images.shape[1]

    @property
    def width(self) -> int:
        return self.images.shape[2]

    @property
    def num_keypoints(self) -> int:
        return self.keypoints.shape[1]


# --------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------
def _fail(path, msg):
    raise DataFormatError(f"{path}: {msg}")


def _read_json(path):
    if not os.path.isfile(path):
        _fail(path, "missing (required file)")
    try:
        with open(path) as f:
            return json.load(f)
    except json.JSONDecodeError as err:
        _fail(path, f"not valid JSON ({err})")


def _matrix(value, shape, path, key):
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        _fail(path, f"'{key}' must be a numeric array of shape {shape}")
    if arr.shape != shape:
        _fail(path, f"'{key}' must have shape {list(shape)}, got {list(arr.shape)}")
    if not np.isfinite(arr).all():
        _fail(path, f"'{key}' contains NaN or Inf")
    return torch.from_numpy(arr).float()


def _read_frames(folder, num, width, height):
    import imageio.v3 as iio
    if not os.path.isdir(folder):
        _fail(folder, "missing (required folder of frames)")
    names = sorted(n for n in os.listdir(folder) if n.lower().endswith(IMAGE_EXTS))
    if len(names) != num:
        _fail(folder, f"expected num_frames={num} images ({', '.join(IMAGE_EXTS)}), found {len(names)}")
    frames = []
    for n in names:
        path = os.path.join(folder, n)
        try:
            img = np.asarray(iio.imread(path))
        except Exception as err:  # imageio raises many types
            _fail(path, f"cannot be read as an image ({err})")
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, -1)
        if img.ndim != 3 or img.shape[2] not in (3, 4):
            _fail(path, f"must be an RGB or RGBA image, got array shape {img.shape}")
        if img.shape[:2] != (height, width):
            _fail(path, f"must be {width}x{height} (width x height from scene.json), got "
                        f"{img.shape[1]}x{img.shape[0]}")
        img = img[..., :3]
        scale = 65535.0 if img.dtype == np.uint16 else 255.0
        frames.append(torch.from_numpy(img.astype(np.float32) / scale))
    return torch.stack(frames)


def _read_keypoints(path, num):
    obj = _read_json(path)
    if not isinstance(obj, dict) or "keypoints" not in obj:
        _fail(path, "must be an object with a 'keypoints' entry: [T][K][3] = x, y, visibility")
    try:
        arr = np.asarray(obj["keypoints"], dtype=np.float64)
    except (TypeError, ValueError):
        _fail(path, "'keypoints' must be a rectangular numeric array [T][K][3] (x, y, visibility)")
    if arr.ndim != 3 or arr.shape[2] != 3:
        _fail(path, f"'keypoints' must have shape [T, K, 3] (x, y, visibility), got {list(arr.shape)}")
    if arr.shape[0] != num:
        _fail(path, f"'keypoints' has {arr.shape[0]} frames but scene.json says num_frames={num}")
    if arr.shape[1] < 1:
        _fail(path, "'keypoints' must have at least one keypoint per frame")
    vis = arr[..., 2]
    if not np.isfinite(vis).all() or (vis < 0).any() or (vis > 1).any():
        _fail(path, "visibility (the third value of each keypoint) must be in [0, 1]")
    xy = arr[..., :2]
    if not np.isfinite(xy[vis > 0]).all():
        _fail(path, "visible keypoints must have finite x, y")
    xy = np.where(vis[..., None] > 0, xy, 0.0)
    return torch.from_numpy(xy).float(), torch.from_numpy(vis).float()


def _read_npy(path, shape_desc, check):
    try:
        arr = np.load(path)
    except Exception as err:
        _fail(path, f"cannot be read with numpy.load ({err})")
    if not check(arr):
        _fail(path, f"must have shape {shape_desc}, got {list(arr.shape)}")
    if not np.isfinite(arr).all():
        _fail(path, "contains NaN or Inf")
    return torch.from_numpy(np.asarray(arr, dtype=np.float32))


def read_folder(root: str) -> Dataset:
    """Read a data folder (format in this module's docstring); raise DataFormatError if bad."""
    if not os.path.isdir(root):
        raise DataFormatError(f"{root}: not a directory")
    meta_path = os.path.join(root, "scene.json")
    meta = _read_json(meta_path)
    if not isinstance(meta, dict):
        _fail(meta_path, "must be a JSON object")
    for key in ("width", "height", "num_frames"):
        if key not in meta:
            _fail(meta_path, f"missing required key '{key}'")
        if not isinstance(meta[key], int) or isinstance(meta[key], bool) or meta[key] < 1:
            _fail(meta_path, f"'{key}' must be a positive integer, got {meta[key]!r}")
    width, height, num = meta["width"], meta["height"], meta["num_frames"]
    if num < 3:
        _fail(meta_path, f"'num_frames' must be at least 3 (temporal losses need 3), got {num}")
    if "Ks" in meta:
        Ks = _matrix(meta["Ks"], (num, 3, 3), meta_path, "Ks")
    elif "K" in meta:
        Ks = _matrix(meta["K"], (3, 3), meta_path, "K").expand(num, 3, 3).clone()
    else:
        _fail(meta_path, "missing camera intrinsics: give 'K' (3x3) or 'Ks' (num_frames x 3x3)")
    if (Ks[:, 0, 0] <= 0).any() or (Ks[:, 1, 1] <= 0).any():
        _fail(meta_path, "focal lengths (K[0][0], K[1][1]) must be positive")
    if "viewmats" in meta:
        viewmats = _matrix(meta["viewmats"], (num, 4, 4), meta_path, "viewmats")
    else:
        viewmats = torch.eye(4).expand(num, 4, 4).clone()
    images = _read_frames(os.path.join(root, "frames"), num, width, height)
    kp, vis = _read_keypoints(os.path.join(root, "keypoints.json"), num)
    k = kp.shape[1]
    names = meta.get("keypoint_names", [])
    if names and len(names) != k:
        _fail(meta_path, f"'keypoint_names' has {len(names)} names but keypoints.json has K={k}")
    if "skeleton" in meta:
        try:
            edges = np.asarray(meta["skeleton"], dtype=np.int64).reshape(-1, 2)
        except (TypeError, ValueError):
            _fail(meta_path, "'skeleton' must be a list of [i, j] pairs of 0-based keypoint indices")
        if edges.size and (edges.min() < 0 or edges.max() >= k):
            _fail(meta_path, f"'skeleton' indices must be in [0, {k}) (0-based, K={k})")
        edge_index = torch.from_numpy(edges.T.copy())
    elif k == 17:
        from .skeleton import coco17_edge_index
        edge_index = coco17_edge_index()
    else:
        edge_index = None
    background = _matrix(meta.get("background", [1.0, 1.0, 1.0]), (3,), meta_path, "background")
    init_depth = meta.get("init_depth", 3.0)
    if not isinstance(init_depth, (int, float)) or init_depth <= 0:
        _fail(meta_path, f"'init_depth' must be a positive number, got {init_depth!r}")
    ds = Dataset(images=images, viewmats=viewmats, Ks=Ks, keypoints=kp, visibility=vis,
                 edge_index=edge_index, background=background, keypoint_names=list(names),
                 init_depth=float(init_depth), name=os.path.basename(os.path.normpath(root)))
    pts_path = os.path.join(root, "points.npy")
    if os.path.exists(pts_path):
        pts = _read_npy(pts_path, "[N, 3] or [N, 6]",
                        lambda a: a.ndim == 2 and a.shape[1] in (3, 6) and a.shape[0] > 0)
        ds.init_points = pts[:, :3]
        ds.init_colors = pts[:, 3:].clamp(0, 1) if pts.shape[1] == 6 else None
    ho = os.path.join(root, "heldout")
    if os.path.isdir(ho):
        cam_path = os.path.join(ho, "cameras.json")
        cams = _read_json(cam_path)
        if not isinstance(cams, dict) or not isinstance(cams.get("cameras"), list) or not cams["cameras"]:
            _fail(cam_path, "must be {\"cameras\": [{\"K\": 3x3, \"viewmat\": 4x4}, ...]} (non-empty)")
        hv, hk, himg = [], [], []
        for i, cam in enumerate(cams["cameras"]):
            if not isinstance(cam, dict) or "K" not in cam or "viewmat" not in cam:
                _fail(cam_path, f"camera {i} must have 'K' and 'viewmat'")
            hk.append(_matrix(cam["K"], (3, 3), cam_path, f"cameras[{i}].K"))
            hv.append(_matrix(cam["viewmat"], (4, 4), cam_path, f"cameras[{i}].viewmat"))
            himg.append(_read_frames(os.path.join(ho, f"cam{i:02d}"), num, width, height))
        ds.heldout_viewmats, ds.heldout_Ks = torch.stack(hv), torch.stack(hk)
        ds.heldout_images = torch.stack(himg)
    gt = os.path.join(root, "gt")
    if os.path.isdir(gt):
        j3 = os.path.join(gt, "joints3d.npy")
        if os.path.exists(j3):
            ds.gt_joints3d = _read_npy(j3, f"[{num}, {k}, 3]", lambda a: a.shape == (num, k, 3))
        k2 = os.path.join(gt, "keypoints2d.npy")
        if os.path.exists(k2):
            ds.gt_keypoints2d = _read_npy(k2, f"[{num}, {k}, 2]", lambda a: a.shape == (num, k, 2))
    return ds


# --------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------
def _write_frames(folder, images):
    import imageio.v3 as iio
    os.makedirs(folder, exist_ok=True)
    for t, img in enumerate(images):
        arr = (img.clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)
        iio.imwrite(os.path.join(folder, f"{t:05d}.png"), arr)


def write_folder(ds: Dataset, root: str) -> None:
    """Write ``ds`` in the folder format (frames as 8-bit PNG)."""
    os.makedirs(root, exist_ok=True)
    shared_k = bool((ds.Ks == ds.Ks[:1]).all())
    meta = dict(width=ds.width, height=ds.height, num_frames=ds.num_frames)
    if shared_k:
        meta["K"] = ds.Ks[0].tolist()
    else:
        meta["Ks"] = ds.Ks.tolist()
    meta.update(viewmats=ds.viewmats.tolist(),
                keypoint_names=list(ds.keypoint_names), background=ds.background.tolist(),
                init_depth=ds.init_depth)
    if ds.edge_index is not None:
        meta["skeleton"] = ds.edge_index.T.tolist()
    with open(os.path.join(root, "scene.json"), "w") as f:
        json.dump(meta, f)
    _write_frames(os.path.join(root, "frames"), ds.images)
    kp = torch.cat([ds.keypoints, ds.visibility.unsqueeze(-1)], -1)
    with open(os.path.join(root, "keypoints.json"), "w") as f:
        json.dump({"keypoints": [[[round(v, 3) for v in p] for p in frame] for frame in kp.tolist()]}, f)
    if ds.init_points is not None:
        pts = ds.init_points if ds.init_colors is None else torch.cat([ds.init_points, ds.init_colors], 1)
        np.save(os.path.join(root, "points.npy"), pts.numpy().astype(np.float32))
    if ds.heldout_images is not None:
        ho = os.path.join(root, "heldout")
        os.makedirs(ho, exist_ok=True)
        with open(os.path.join(ho, "cameras.json"), "w") as f:
            json.dump({"cameras": [{"K": k.tolist(), "viewmat": v.tolist()}
                                   for k, v in zip(ds.heldout_Ks, ds.heldout_viewmats)]}, f)
        for i, imgs in enumerate(ds.heldout_images):
            _write_frames(os.path.join(ho, f"cam{i:02d}"), imgs)
    if ds.gt_joints3d is not None or ds.gt_keypoints2d is not None:
        os.makedirs(os.path.join(root, "gt"), exist_ok=True)
        if ds.gt_joints3d is not None:
            np.save(os.path.join(root, "gt", "joints3d.npy"), ds.gt_joints3d.numpy().astype(np.float32))
        if ds.gt_keypoints2d is not None:
            np.save(os.path.join(root, "gt", "keypoints2d.npy"), ds.gt_keypoints2d.numpy().astype(np.float32))
