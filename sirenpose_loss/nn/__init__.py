"""Networks of SirenPose: the SIREN (eqs. 2-4), a keypoint GNN, and the two-stream keypoint
predictor of eq. 1 (``f = f_low + lambda * f_high``).

:class:`Siren` needs only torch; :class:`KeypointGNN` and :class:`TwoStreamKeypointPredictor`
need torch-geometric (imported when they are built).
"""
from .gnn import KeypointGNN
from .siren import SineLayer, Siren, siren_uniform_
from .two_stream import TwoStreamKeypointPredictor, fourier_time_features

__all__ = ["Siren", "SineLayer", "siren_uniform_", "KeypointGNN", "TwoStreamKeypointPredictor",
           "fourier_time_features"]
