"""The fused losses: functional forms, nn.Modules and the autograd.Functions beneath them."""
from .keypoint_match import KeypointMatchFunction, KeypointMatchLoss, keypoint_match_loss
from .pose_alignment import PoseAlignmentLoss, PoseAlignmentOutput
from .sirenpose import (SinGraphConsistencyLoss, SirenPoseFunction, SirenPoseLoss, SirenPoseOutput,
                        SirenPoseTerms, sin_graph_consistency_loss, sirenpose_loss)
from .spatiotemporal_consistency import (SpatioTemporalConsistencyFunction,
                                         SpatioTemporalConsistencyLoss,
                                         spatiotemporal_consistency_loss)
