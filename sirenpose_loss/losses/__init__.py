"""The fused losses: functional forms and nn.Modules over the differentiable ops
``torch.ops.sirenpose_loss.{keypoint_match, spatiotemporal_consistency, sirenpose}``, whose
autograd Functions (csrc/autograd.cpp) call our fused forward and backward kernels."""
from .keypoint_match import KeypointMatchLoss, keypoint_match_loss
from .pose_alignment import PoseAlignmentLoss, PoseAlignmentOutput
from .sirenpose import (SinGraphConsistencyLoss, SirenPoseLoss, SirenPoseOutput, SirenPoseTerms,
                        sin_graph_consistency_loss, sirenpose_loss)
from .sirenpose_schedules import (AliasGate, GeoWarmup, OmegaCoarseToFine, SirenPoseSchedule,
                                  SirenPoseSettings)
from .spatiotemporal_consistency import SpatioTemporalConsistencyLoss, spatiotemporal_consistency_loss
from .arap import ARAPLoss, arap_loss
from .graph_smoothness import GraphSmoothnessLoss, graph_smoothness_loss
from .isometry import IsometryLoss, isometry_loss
from .local_rigidity import LocalRigidityLoss, local_rigidity_loss
from .rigidity import RigidityLoss, RigidityOutput, RigidityTerms
from .rotation_similarity import RotationSimilarityLoss, rotation_similarity_loss
