"""Named keypoint skeletons (COCO-17 person, AP-10K quadruped, 21-point hand)."""
from typing import Dict, Sequence, Tuple

import torch

from . import _published_skeletons as published
from .keypoint_graph import KeypointGraph


def _from_one_based(pairs: Sequence[Tuple[int, int]]) -> Tuple[Tuple[int, int], ...]:
    return tuple((i - 1, j - 1) for i, j in pairs)


# name -> (keypoint names, 0-based edges): each undirected edge once, in the published order and
# direction.
_SKELETONS: Dict[str, Tuple[Tuple[str, ...], Tuple[Tuple[int, int], ...]]] = {
    "coco17": (published.COCO17_NAMES, _from_one_based(published.COCO17_SKELETON_1BASED)),
    "ap10k17": (published.AP10K17_NAMES, _from_one_based(published.AP10K17_SKELETON_1BASED)),
    "hand21": (published.HAND21_NAMES, published.HAND21_SKELETON_0BASED),
}


def available_skeletons() -> Tuple[str, ...]:
    """Names accepted by :func:`skeleton`."""
    return tuple(sorted(_SKELETONS))


def skeleton(name: str, *, device=None) -> KeypointGraph:
    """The published skeleton of a keypoint dataset as a :class:`KeypointGraph`.

    * ``"coco17"``: COCO person, 17 keypoints, the 19 limbs of the COCO annotation files;
    * ``"ap10k17"``: AP-10K quadruped, 17 keypoints, 17 limbs;
    * ``"hand21"``: wrist + 4 joints per finger (OpenPose / COCO-WholeBody / MediaPipe order),
      20 bones.

    The datasets' 1-based ``skeleton`` fields are converted to 0-based indices; each undirected
    edge is listed once (in its published direction), as the SirenPose loss expects.
    """
    if not isinstance(name, str) or name not in _SKELETONS:
        raise ValueError(f"unknown skeleton {name!r}; available: "
                         f"{', '.join(available_skeletons())} (name must be one of them, got "
                         f"{name!r})")
    names, edges = _SKELETONS[name]
    edge_index = torch.tensor(edges, dtype=torch.long).t().contiguous()
    graph = KeypointGraph(edge_index, len(names), names=names, name=name)
    return graph if device is None else graph.to(device)
