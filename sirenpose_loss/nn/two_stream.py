"""Two-stream keypoint predictor of SirenPose (eq. 1): ``f = f_low + lambda * f_high``."""
import math
from typing import Optional, Sequence, Tuple

import torch
from torch import nn

from .._validation import check_nonnegative_number
from .gnn import KeypointGNN, _as_graph
from .siren import Siren


def fourier_time_features(t: torch.Tensor, num_frequencies: int) -> torch.Tensor:
    """``[t, sin(pi f t), cos(pi f t)]`` for ``f = 1/2, 1, 2, ..., 2^(L-2)``: ``[..., 1 + 2L]``.

    For ``t`` in [-1, 1] the slowest pair spans half a period over the sequence and the fastest
    ``2^(L-2)`` periods: a smooth, low-frequency basis (L = 3: at most 2 cycles per sequence).
    """
    freqs = math.pi * 2.0 ** torch.arange(-1, num_frequencies - 1, dtype=t.dtype, device=t.device)
    angles = t[..., None] * freqs
    return torch.cat([t[..., None], torch.sin(angles), torch.cos(angles)], dim=-1)


class TwoStreamKeypointPredictor(nn.Module):
    """Keypoint trajectories as a function of time (SirenPose eq. 1):
    ``k(t) = base + f_low(t) + lambda_high * f_high(t)``, ``forward(t: [T]) -> [T, K, D]``.

    * Every keypoint ``k`` has a learnable embedding ``e_k`` (``[K, embedding_dim]``,
      initialised ``U(-1, 1)``, the range SIREN inputs are meant for): it is what tells the
      keypoints apart in both streams.
    * **Low-frequency graph stream** ``f_low``: a :class:`KeypointGNN` over the skeleton whose
      input at keypoint ``k`` and time ``t`` is ``[e_k, fourier_time_features(t)]`` (``t`` plus
      ``time_frequencies`` sine/cosine pairs, at most ``2^(L-2)`` cycles per sequence). Smooth in
      time by construction, and coupled along the bones: the coarse, coherent motion.
    * **High-frequency stream** ``f_high``: a :class:`Siren` of ``[t, e_k]`` per keypoint
      (hidden ``omega0 = 30`` as in the paper): fine detail and fast motion the low stream
      cannot represent. Its first layer uses ``first_omega0 = 10`` by default, not 30: the
      paper's 30 suits densely sampled inputs (image pixels); on a 60-frame track it fits the
      per-frame noise within a few hundred Adam steps (measured on noisy synthetic tracks: the
      error to the clean tracks climbs back towards the noise level), while 10 keeps the fit
      below the noise for longer and still follows 5-cycles-per-sequence motion.
    * ``lambda_high`` (default 0.1) scales the SIREN stream down, so that early in training the
      smooth stream explains the data and the SIREN adds residual detail. For long fits to noisy
      tracks add a temporal smoothness term (e.g. ``spatiotemporal_consistency_loss`` with
      ``order=2`` on the predicted tracks) or stop early.
    * ``base``: an optional fixed ``[K, D]`` pose added to the output (e.g. the mean of the
      tracks), so that both streams only model the motion around it.

    Times: ``t`` in ``time_range`` (default ``(0, 1)``, e.g. ``frame / (T - 1)``), mapped
    linearly to [-1, 1] inside. Output coordinates are meant to be normalised
    (:func:`sirenpose_loss.graphs.normalize_keypoints`), like the SirenPose loss's inputs.
    At K = 17, T = 60 a forward + backward is a few milliseconds on a CPU.
    """

    def __init__(self, graph, out_features: int = 2, *, num_nodes: Optional[int] = None,
                 embedding_dim: int = 16, time_frequencies: int = 3,
                 gnn_hidden: int = 64, gnn_layers: int = 2, siren_hidden: int = 64,
                 siren_layers: int = 2, omega0: float = 30.0, first_omega0: float = 10.0,
                 lambda_high: float = 0.1, time_range: Sequence[float] = (0.0, 1.0),
                 base: Optional[torch.Tensor] = None):
        super().__init__()
        graph = _as_graph(graph, num_nodes)
        if isinstance(time_frequencies, bool) or not isinstance(time_frequencies, int) \
                or time_frequencies < 1:
            raise ValueError(f"time_frequencies must be an int >= 1, got {time_frequencies!r}")
        lambda_high = check_nonnegative_number(lambda_high, "lambda_high")
        low, high = (float(v) for v in time_range)
        if not high > low:
            raise ValueError(f"time_range must be (start, end) with end > start, got "
                             f"{time_range!r}")
        self.num_nodes, self.out_features = graph.num_nodes, out_features
        self.time_frequencies = time_frequencies
        self.lambda_high = float(lambda_high)
        self.time_range: Tuple[float, float] = (low, high)
        self.embedding = nn.Parameter(torch.empty(graph.num_nodes, embedding_dim).uniform_(-1, 1))
        time_dim = 1 + 2 * time_frequencies
        self.low = KeypointGNN(graph, embedding_dim + time_dim, gnn_hidden, out_features,
                               num_layers=gnn_layers)
        self.high = Siren(1 + embedding_dim, siren_hidden, siren_layers, out_features,
                          omega0=omega0, first_omega0=first_omega0)
        if base is not None:
            if not isinstance(base, torch.Tensor) or tuple(base.shape) != (graph.num_nodes,
                                                                           out_features):
                raise ValueError(f"base must be a tensor of shape [K, D] = [{graph.num_nodes}, "
                                 f"{out_features}], got {getattr(base, 'shape', type(base))}")
            base = base.detach().clone()
        self.register_buffer("base", base)

    def normalized_time(self, t: torch.Tensor) -> torch.Tensor:
        low, high = self.time_range
        return (t - low) * (2.0 / (high - low)) - 1.0

    def streams(self, t: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(f_low, f_high)``, each ``[..., K, D]`` for times ``t: [...]`` (before ``lambda``)."""
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            raise TypeError(f"t must be a floating-point tensor of times [T], got "
                            f"{t.dtype if isinstance(t, torch.Tensor) else type(t).__name__}")
        t = self.normalized_time(t.to(self.embedding.dtype))
        k, e = self.num_nodes, self.embedding.shape[1]
        emb = self.embedding.expand(*t.shape, k, e)
        time_feat = fourier_time_features(t, self.time_frequencies)
        time_feat = time_feat[..., None, :].expand(*t.shape, k, time_feat.shape[-1])
        low = self.low(torch.cat([emb, time_feat], dim=-1))
        high = self.high(torch.cat([t[..., None, None].expand(*t.shape, k, 1), emb], dim=-1))
        return low, high

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        """Keypoints ``[..., K, D]`` at times ``t: [...]`` (typically ``[T] -> [T, K, D]``)."""
        low, high = self.streams(t)
        out = low + self.lambda_high * high
        return out if self.base is None else out + self.base
