"""sirenpose-loss: fused, exact, differentiable regularisation losses for keypoint-supervised
4D reconstruction (DynaPose4D's keypoint match and spatio-temporal consistency losses, and the
SirenPose loss), on our own C++ (CPU) and CUDA kernels with analytic backward passes.

The maths is in the README; :mod:`sirenpose_loss.reference` holds the plain-PyTorch oracle.
"""
from ._backend import backend, cuda_kernels_built
from . import _ops  # noqa: F401  (registers the fake kernels before any op is traced)
from . import _graph_ops  # noqa: F401
from . import graphs, nn, reference
from .losses import (KeypointMatchLoss, PoseAlignmentLoss, PoseAlignmentOutput,
                     SinGraphConsistencyLoss, SirenPoseLoss, SirenPoseOutput, SirenPoseTerms,
                     SpatioTemporalConsistencyLoss,
                     keypoint_match_loss, sin_graph_consistency_loss, sirenpose_loss,
                     spatiotemporal_consistency_loss)
from .losses import (ARAPLoss, GraphSmoothnessLoss, IsometryLoss, LocalRigidityLoss, RigidityLoss,
                     RigidityOutput, RigidityTerms, RotationSimilarityLoss, arap_loss,
                     graph_smoothness_loss, isometry_loss, local_rigidity_loss,
                     rotation_similarity_loss)
from .losses import (AliasGate, GeoWarmup, OmegaCoarseToFine, SirenPoseSchedule,
                     SirenPoseSettings)

__version__ = "0.1.0"

__all__ = [
    "keypoint_match_loss", "spatiotemporal_consistency_loss", "sin_graph_consistency_loss",
    "sirenpose_loss", "KeypointMatchLoss", "SpatioTemporalConsistencyLoss",
    "SinGraphConsistencyLoss", "SirenPoseLoss", "PoseAlignmentLoss", "SirenPoseTerms",
    "SirenPoseOutput", "PoseAlignmentOutput", "backend", "cuda_kernels_built",
    "reference", "graphs", "nn",
    "local_rigidity_loss", "rotation_similarity_loss", "isometry_loss", "arap_loss",
    "graph_smoothness_loss", "LocalRigidityLoss", "RotationSimilarityLoss", "IsometryLoss",
    "ARAPLoss", "GraphSmoothnessLoss", "RigidityLoss", "RigidityOutput", "RigidityTerms",
    "SirenPoseSchedule", "SirenPoseSettings", "GeoWarmup", "OmegaCoarseToFine", "AliasGate",
]
