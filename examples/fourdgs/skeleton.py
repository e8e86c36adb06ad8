"""The COCO-17 person keypoints and their skeleton graph, from ``sirenpose_loss.graphs``, so the
example trains on exactly the graph users get."""
import torch

from sirenpose_loss.graphs import skeleton

_COCO17 = skeleton("coco17")
COCO17_NAMES = list(_COCO17.names)
# COCO's 19 limbs, 0-based, each undirected edge once.
COCO17_EDGES = [tuple(e) for e in _COCO17.edge_index.t().tolist()]
# left <-> right partner of every keypoint (detectors confuse them)
COCO17_FLIP = [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15]


def coco17_edge_index() -> torch.Tensor:
    """``[2, E]`` int64 edge index of the COCO-17 skeleton, each undirected edge once."""
    return _COCO17.edge_index.clone()
