"""Pictures: comparison GIFs and keypoint-trajectory plots (matplotlib, Agg backend)."""
import os
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

TRACK_KEYPOINTS = (9, 10, 15, 16)  # wrists and ankles: the fastest COCO-17 joints


def _to_uint8(img: torch.Tensor) -> np.ndarray:
    return (img.detach().clamp(0, 1).cpu().numpy() * 255 + 0.5).astype(np.uint8)


def grid_video(columns: Sequence[torch.Tensor], rows: int = 1, pad: int = 2) -> torch.Tensor:
    """Tile ``len(columns)`` videos ``[T, H, W, 3]`` into ``rows`` rows -> ``[T, H', W', 3]``."""
    cols_per_row = int(np.ceil(len(columns) / rows))
    t, h, w, _ = columns[0].shape
    out = torch.ones(t, rows * (h + pad) + pad, cols_per_row * (w + pad) + pad, 3)
    for i, vid in enumerate(columns):
        r, c = divmod(i, cols_per_row)
        y, x = pad + r * (h + pad), pad + c * (w + pad)
        out[:, y:y + h, x:x + w] = vid.cpu()
    return out


def save_gif(path: str, video: torch.Tensor, fps: float = 8.0, upscale: int = 1) -> None:
    """Write ``video [T, H, W, 3]`` (floats in [0, 1]) as a looping GIF."""
    import imageio.v3 as iio
    if upscale > 1:
        video = video.repeat_interleave(upscale, 1).repeat_interleave(upscale, 2)
    iio.imwrite(path, _to_uint8(video), extension=".gif", duration=int(1000 / fps), loop=0)


def plot_tracks(path: str, gt: Optional[torch.Tensor], preds: Dict[str, torch.Tensor],
                names: List[str], keypoints: Sequence[int] = TRACK_KEYPOINTS,
                detector: Optional[torch.Tensor] = None, visibility=None,
                axes_labels=("x", "y", "z"), title: str = "") -> None:
    """One subplot per (keypoint, coordinate): ground truth (black), every prediction, and the
    detector's points (grey dots, visible ones only) against the frame index."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    dims = next(iter(preds.values())).shape[-1]
    fig, axes = plt.subplots(len(keypoints), dims, figsize=(3.2 * dims, 1.9 * len(keypoints)),
                             sharex=True, squeeze=False)
    frames = np.arange(next(iter(preds.values())).shape[0])
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for r, k in enumerate(keypoints):
        for d in range(dims):
            ax = axes[r, d]
            if detector is not None:
                vis = np.ones(len(frames), bool) if visibility is None else visibility[:, k].numpy() > 0
                ax.plot(frames[vis], detector[vis, k, d].numpy(), ".", color="0.6", ms=4,
                        label="detector")
            if gt is not None:
                ax.plot(frames, gt[:, k, d].numpy(), "-", color="k", lw=2.0, label="ground truth")
            for i, (label, tr) in enumerate(preds.items()):
                ax.plot(frames, tr[:, k, d].numpy(), "-", color=colors[i % len(colors)], lw=1.2,
                        label=label)
            name = names[k] if k < len(names) else f"kp{k}"
            ax.set_title(f"{name} {axes_labels[d]}", fontsize=8)
            ax.tick_params(labelsize=7)
    axes[-1, 0].set_xlabel("frame", fontsize=8)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 7), fontsize=8,
               frameon=False)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0.05, 1, 0.97 if title else 1))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    shrink_png(path)


def shrink_png(path: str, colors: int = 32) -> None:
    """Rewrite a plot as a palette PNG (a line plot needs few colours: about a quarter the bytes)."""
    from PIL import Image
    with Image.open(path) as im:
        small = im.convert("RGB").quantize(colors=colors, method=Image.Quantize.MEDIANCUT,
                                           dither=Image.Dither.NONE)
    small.save(path, optimize=True)


def plot_bars(path: str, rows: List[dict], keys: Sequence[str], title: str = "") -> None:
    """Small bar charts of the ablation rows, one panel per metric."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(keys), figsize=(2.6 * len(keys), 2.6), squeeze=False)
    labels = [r["config"] for r in rows]
    for ax, key in zip(axes[0], keys):
        vals = [np.nan if r.get(key) is None else r[key] for r in rows]
        ax.bar(range(len(vals)), vals, color="0.55")
        ax.set_xticks(range(len(vals)))
        ax.set_xticklabels(labels, rotation=45, ha="right", fontsize=7)
        ax.set_title(key, fontsize=8)
        ax.tick_params(labelsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    shrink_png(path)


def frame_strips(path: str, rows: Dict[str, np.ndarray], frames: Sequence[int], title: str = "",
                 upscale: int = 2) -> None:
    """One row per label of ``uint8 [T, H, W, 3]`` videos, at ``frames``: a still comparison."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    n = len(frames)
    fig, axes = plt.subplots(len(rows), n, figsize=(1.1 * n + 1.2, 1.2 * len(rows) + 0.4),
                             squeeze=False)
    for r, (label, video) in enumerate(rows.items()):
        for c, f in enumerate(frames):
            ax = axes[r][c]
            ax.imshow(video[f].repeat(upscale, 0).repeat(upscale, 1), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"frame {f}", fontsize=7)
        axes[r][0].set_ylabel(label, fontsize=7)
    if title:
        fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    shrink_png(path, colors=64)
