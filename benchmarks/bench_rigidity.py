"""CPU/CUDA benchmark of the Dynamic 3D Gaussians motion trio (local rigidity + rotation
similarity + isometry, weights 4, 4, 2) and of the single graph losses.

positions [T, M, 3], quaternions [T, M, 4] float32, both requiring grad; a k = 20 nearest-
neighbour graph with exp(-2000 d^2) weights and rest lengths (graph_cases.py); penalty
"squared", reduction "mean". "ours" is RigidityLoss (one fused kernel for the three terms), the
reference the sum of the three plain-PyTorch losses (and torch.compile of it).
Sweep: M in {1e5, 3e5} x T in {2, 8}; the single losses at M = 1e5, T = 2.
The per-graph incidence of the kernels (32 B per edge + 16 B per node, int64) is built once
per graph, in the first call, outside the timed and memory-measured calls. The memory target of
the trio is "peak above the inputs <= gradients + 16 B per edge" (E = k M).

    python benchmarks/bench_rigidity.py [--quick] [--device cpu|cuda] [--threads 2] [--out DIR]
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import graph_cases  # noqa: E402
import harness  # noqa: E402
import sirenpose_loss  # noqa: E402
from sirenpose_loss import reference  # noqa: E402

TRIO = sirenpose_loss.RigidityLoss()


def ours_trio(x, q, edge_index, edge_weight, rest_length):
    return TRIO(x, q, edge_index, rest_length, edge_weight=edge_weight)


def reference_trio(x, q, edge_index, edge_weight, rest_length):
    return (4.0 * reference.local_rigidity_loss(x, q, edge_index, edge_weight=edge_weight)
            + 4.0 * reference.rotation_similarity_loss(q, edge_index, edge_weight=edge_weight)
            + 2.0 * reference.isometry_loss(x, edge_index, rest_length, edge_weight=edge_weight))


def _single(impl, name):
    f = getattr(impl, name)
    calls = {
        "local_rigidity_loss": lambda x, q, e, w, d: f(x, q, e, edge_weight=w),
        "rotation_similarity_loss": lambda x, q, e, w, d: f(q, e, edge_weight=w),
        "isometry_loss": lambda x, q, e, w, d: f(x, e, d, edge_weight=w),
        "graph_smoothness_loss": lambda x, q, e, w, d: f(x[-1], e, edge_weight=w),
    }
    return calls[name]


def _builder(M, k, T, grads=("x", "q")):
    """Inputs of one case; only the inputs in `grads` require grad (those the loss uses)."""
    def build(device):
        x, q, gr = graph_cases.frames(M, k, T, device)
        x.requires_grad_("x" in grads)
        q.requires_grad_("q" in grads)
        return (x, q, gr.edge_index.to(device), gr.edge_weight.to(device),
                gr.rest_length.to(device)), {}
    return build


USES = {"local_rigidity_loss": ("x", "q"), "rotation_similarity_loss": ("q",),
        "isometry_loss": ("x",), "graph_smoothness_loss": ("x",)}


def cases(size: str):
    quick = size != "full"  # "quick" and the gate's "tiny"
    k = 20
    grid = [(10000, 2)] if quick else [(m, t) for m in (100000, 300000) for t in (2, 8)]
    for M, T in grid:
        yield harness.Case(
            label="trio " + graph_cases.label(M, k, T), params=dict(M=M, k=k, T=T, E=M * k),
            build=_builder(M, k, T), ours=ours_trio, reference=reference_trio,
            large=M >= 100000, tags=("trio_5x",) if (M, T) == (100000, 2) else ())
    M, T = (10000, 2) if quick else (100000, 2)
    for name in ("local_rigidity_loss", "rotation_similarity_loss", "isometry_loss",
                 "graph_smoothness_loss"):
        yield harness.Case(
            label=f"{name[:-5]} " + graph_cases.label(M, k, T),
            params=dict(M=M, k=k, T=T, E=M * k, loss=name), build=_builder(M, k, T, USES[name]),
            ours=_single(sirenpose_loss, name), reference=_single(reference, name),
            large=M >= 100000)


if __name__ == "__main__":
    harness.main("rigidity", "Dynamic 3D Gaussians motion trio and the single graph losses", cases)
