"""Pure-PyTorch reference of every loss: the oracle of the tests and the baseline of the benchmarks.

Same signatures and semantics as the fused functions in :mod:`sirenpose_loss`, but written as
plain tensor expressions whose backward is PyTorch autograd. No input validation is done here.
"""
from .keypoint_match import keypoint_match_loss
from .sirenpose import SirenPoseTerms, sin_graph_consistency_loss, sirenpose_loss
from .spatiotemporal_consistency import spatiotemporal_consistency_loss
from .arap import arap_loss
from .graph_smoothness import graph_smoothness_loss
from .isometry import isometry_loss
from .local_rigidity import local_rigidity_loss
from .rotation_similarity import rotation_similarity_loss

__all__ = ["keypoint_match_loss", "spatiotemporal_consistency_loss", "sin_graph_consistency_loss",
           "sirenpose_loss", "SirenPoseTerms", "local_rigidity_loss", "rotation_similarity_loss",
           "isometry_loss", "arap_loss", "graph_smoothness_loss"]
