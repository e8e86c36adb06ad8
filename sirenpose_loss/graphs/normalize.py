"""Pixel coordinates <-> the [-1, 1] range the SirenPose loss and SIREN inputs are meant for."""
from typing import Sequence, Union

import torch

ImageSize = Union[float, Sequence[float], torch.Tensor]


def _extent(kp: torch.Tensor, image_size: ImageSize) -> torch.Tensor:
    if not isinstance(kp, torch.Tensor) or not kp.is_floating_point():
        raise TypeError(f"kp must be a floating-point tensor [..., D], got "
                        f"{type(kp).__name__ if not isinstance(kp, torch.Tensor) else kp.dtype}")
    if kp.dim() < 1:
        raise ValueError("kp must have shape [..., D] (a coordinate axis last), got a 0-d tensor")
    size = torch.as_tensor(image_size, dtype=kp.dtype, device=kp.device)
    if size.dim() > 0 and size.shape[-1] not in (1, kp.shape[-1]):
        raise ValueError(f"image_size must be a number, or hold one extent per coordinate "
                         f"(last dim {kp.shape[-1]}, e.g. (width, height) for (x, y) keypoints), "
                         f"got shape {list(size.shape)}")
    if not bool((size > 0).all()):
        raise ValueError(f"image_size must be positive, got {image_size!r}")
    return size


def normalize_keypoints(kp: torch.Tensor, image_size: ImageSize, *,
                        align_corners: bool = False) -> torch.Tensor:
    """Pixel coordinates ``[..., D]`` -> normalised coordinates in [-1, 1].

    ``image_size`` is in the keypoints' coordinate order: ``(width, height)`` for ``(x, y)``
    keypoints (not torch's ``(H, W)``); a single number for a square image, or a tensor
    broadcasting to ``[..., D]`` for per-image sizes.

    Pixel-centre convention: pixel ``i`` covers ``[i - 0.5, i + 0.5]``, its centre at integer
    ``i`` (OpenCV, and what COCO-style annotation tools write). With ``align_corners=False``
    (default) the image *edges* map to -1 and +1: ``u = (2 x + 1) / W - 1``, the convention of
    ``torch.nn.functional.grid_sample(align_corners=False)``, so normalised keypoints sample
    feature maps at the right place and the mapping does not depend on whether W is odd or even.
    ``align_corners=True`` maps the centres of the first and last pixels to -1 and +1:
    ``u = 2 x / (W - 1) - 1``.

    Why the SirenPose loss needs this: its edge term compares ``sin(omega0 * (k_i - k_j))``,
    whose period in coordinate units is ``2 pi / omega0``, about 0.21 for the paper's
    ``omega0 = 30``. On raw pixels that is a fifth of a pixel: the term wraps hundreds of times
    along a limb, and its gradient ``omega0 cos(omega0 d) (...)`` flips sign with sub-pixel
    changes, i.e. noise. In [-1, 1] the period is about a tenth of the image width, so the term
    measures each limb vector modulo ~10 % of the image: a fine-scale refinement on top of the
    positional term, which brings predictions within a period. Normalising each axis by its own
    extent scales x and y differently on non-square images; pass ``image_size=max(W, H)`` to
    keep limb lengths isotropic.
    """
    size = _extent(kp, image_size)
    if align_corners:
        return 2.0 * kp / (size - 1).clamp_min(1) - 1.0
    return (2.0 * kp + 1.0) / size - 1.0


def denormalize_keypoints(kp: torch.Tensor, image_size: ImageSize, *,
                          align_corners: bool = False) -> torch.Tensor:
    """Inverse of :func:`normalize_keypoints` (same ``image_size`` and ``align_corners``)."""
    size = _extent(kp, image_size)
    if align_corners:
        return (kp + 1.0) * (size - 1).clamp_min(1) / 2.0
    return ((kp + 1.0) * size - 1.0) / 2.0
