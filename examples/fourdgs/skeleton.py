"""The COCO-17 person keypoints and their skeleton graph.

Uses ``sirenpose_loss.graphs.skeleton("coco17")`` when the package provides it, so the example
trains on exactly the graph users get; the local table below is the same COCO edge list
(0-indexed), kept so the example also runs against an older install.
"""
import torch

COCO17_NAMES = [
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip",
    "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
]
# COCO's 19 limbs, converted from its 1-indexed list.
COCO17_EDGES = [(15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6),
                (5, 7), (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5),
                (4, 6)]
# left <-> right partner of every keypoint (detectors confuse them)
COCO17_FLIP = [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15]


def coco17_edge_index() -> torch.Tensor:
    """``[2, E]`` int64 edge index of the COCO-17 skeleton, each undirected edge once."""
    try:
        from sirenpose_loss.graphs import skeleton
    except ImportError:  # an install without the graph builders
        return torch.tensor(COCO17_EDGES, dtype=torch.long).T.contiguous()
    return skeleton("coco17").edge_index.clone()
