"""SIREN: sine-activated MLP (SirenPose eqs. 2-4, after Sitzmann et al., NeurIPS 2020)."""
import math

import torch
from torch import nn

from .._validation import check_positive_number


def _check_size(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


def siren_uniform_(weight: torch.Tensor, omega0: float, is_first: bool) -> torch.Tensor:
    """SIREN initialisation in place: ``U(-1/n_in, 1/n_in)`` for a first layer, else
    ``U(-sqrt(6/n_in)/omega0, +sqrt(6/n_in)/omega0)``."""
    fan_in = weight.shape[1]
    bound = 1.0 / fan_in if is_first else math.sqrt(6.0 / fan_in) / omega0
    with torch.no_grad():
        return weight.uniform_(-bound, bound)


class SineLayer(nn.Module):
    """``h = sin(omega0 * (W x + b))`` with SIREN's initialisation.

    First layer (``is_first=True``): ``W ~ U(-1/n_in, 1/n_in)``, so ``omega0 * W`` spans
    frequencies up to ``omega0`` over inputs in [-1, 1]. Later layers:
    ``W ~ U(-sqrt(6/n_in)/omega0, +sqrt(6/n_in)/omega0)``: with arcsine-distributed inputs
    (variance 1/2) the pre-activation ``omega0 (W x)`` then has unit variance whatever the width,
    and its sine is arcsine-distributed again, so the statistics hold through any depth.

    The division by ``omega0`` is the SIREN paper's (Sitzmann et al. 2020, Sec. 3.2 and its
    reference code), which SirenPose cites for this scheme; SirenPose's own eq. 4 writes
    ``U(-sqrt(6/n_in), sqrt(6/n_in))`` without it. With ``omega0 = 30`` that makes every hidden
    pre-activation ~30 times too wide (std ~30 instead of ~1): each layer multiplies the
    frequency content of the signal by ~30, the network's output decorrelates between inputs a
    hair apart, and input gradients grow ~30x per layer (chaotic, untrainable). We follow SIREN.
    The bias keeps torch's default ``U(-1/sqrt(n_in), 1/sqrt(n_in))``, as SIREN's reference
    code does (inside the sine it acts as a random phase).
    """

    def __init__(self, in_features: int, out_features: int, *, omega0: float = 30.0,
                 is_first: bool = False, bias: bool = True):
        super().__init__()
        self.in_features = _check_size(in_features, "in_features")
        self.out_features = _check_size(out_features, "out_features")
        self.omega0 = check_positive_number(omega0, "omega0")
        self.is_first = bool(is_first)
        self.linear = nn.Linear(in_features, out_features, bias=bias)
        siren_uniform_(self.linear.weight, self.omega0, self.is_first)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(self.omega0 * self.linear(x))

    def extra_repr(self) -> str:
        return f"omega0={self.omega0}, is_first={self.is_first}"


class Siren(nn.Module):
    """SIREN MLP: ``hidden_layers + 1`` sine layers, then a linear read-out (or a last sine).

    Args:
        in_features: input size (inputs are meant to lie in [-1, 1]).
        hidden_features: width of every hidden layer.
        hidden_layers: number of hidden sine layers after the first one (>= 0).
        out_features: output size.
        omega0: frequency of the hidden layers (SirenPose / SIREN: 30).
        first_omega0: frequency of the first layer (30). Lower it to fit smoother signals.
        outermost_linear: last layer linear (True: an unbounded output, initialised like a
            hidden layer, ``U(+-sqrt(6/n)/omega0)``, as in SIREN's code) or another sine layer.

    See :class:`SineLayer` for the initialisation, which follows the SIREN paper (the division
    by omega0 that SirenPose's eq. 4 drops, making pre-activations chaotic at omega0 = 30).
    """

    def __init__(self, in_features: int, hidden_features: int, hidden_layers: int,
                 out_features: int, *, omega0: float = 30.0, first_omega0: float = 30.0,
                 outermost_linear: bool = True):
        super().__init__()
        _check_size(hidden_layers, "hidden_layers", minimum=0)
        self.omega0 = check_positive_number(omega0, "omega0")
        self.first_omega0 = check_positive_number(first_omega0, "first_omega0")
        layers = [SineLayer(in_features, hidden_features, omega0=first_omega0, is_first=True)]
        layers += [SineLayer(hidden_features, hidden_features, omega0=omega0)
                   for _ in range(hidden_layers)]
        if outermost_linear:
            last = nn.Linear(hidden_features, _check_size(out_features, "out_features"))
            siren_uniform_(last.weight, self.omega0, is_first=False)
        else:
            last = SineLayer(hidden_features, out_features, omega0=omega0)
        layers.append(last)
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``[..., in_features]`` -> ``[..., out_features]``."""
        return self.net(x)
