"""Inputs of the graph-loss benchmarks: Gaussians at a Dynamic 3D Gaussians-like scale (a
~0.1-unit cloud, so exp(-2000 d^2) weights matter), their k-NN graph, small motions."""
import torch

from sirenpose_loss.graphs import rigidity_graph

_GRAPHS = {}


def graph(M: int, k: int):
    """The rest points and their RigidityGraph, built once per (M, k) in a process."""
    if (M, k) not in _GRAPHS:
        g = torch.Generator().manual_seed(0)
        rest = 0.1 * torch.rand(M, 3, generator=g) * (M / 1e5) ** (1 / 3)  # constant density
        _GRAPHS[(M, k)] = (rest, rigidity_graph(rest, k))
    return _GRAPHS[(M, k)]


def frames(M: int, k: int, T: int, device, with_quaternions: bool = True):
    """(positions [T, M, 3], quaternions [T, M, 4] or None, the graph), positions and
    quaternions requiring grad."""
    rest, gr = graph(M, k)
    g = torch.Generator().manual_seed(1)
    x = (rest + 0.002 * torch.randn(T, M, 3, generator=g).cumsum(0)).to(device).requires_grad_()
    q = None
    if with_quaternions:
        q0 = torch.randn(1, M, 4, generator=g)
        q = (q0 + 0.05 * torch.randn(T, M, 4, generator=g).cumsum(0)).to(device).requires_grad_()
    return x, q, gr


def label(M: int, k: int, T: int) -> str:
    from harness import fmt_count
    return f"M={fmt_count(M)}, k={k}, T={T}"
