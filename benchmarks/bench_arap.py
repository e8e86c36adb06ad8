"""CPU/CUDA benchmark of the ARAP loss over control nodes (SC-GS-like: k = 10 neighbours).

positions [T, M, 3] float32 requiring grad, rest shape the first frame (the default), k = 10
nearest-neighbour graph with exp(-2000 d^2) weights, reduction "mean". The reference solves
the per-(frame, centre) rotation with torch.linalg.svd in float64 (Kabsch), ours with Horn's
quaternion method in the kernel.
Sweep: M = 1e4, T = 8 (and M = 1e3, T = 8).

    python benchmarks/bench_arap.py [--quick] [--device cpu|cuda] [--threads 2] [--out DIR]
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import graph_cases  # noqa: E402
import harness  # noqa: E402
import sirenpose_loss  # noqa: E402
from sirenpose_loss import reference  # noqa: E402


def _builder(M, k, T):
    def build(device):
        x, _, gr = graph_cases.frames(M, k, T, device, with_quaternions=False)
        return (x, gr.edge_index.to(device)), {"edge_weight": gr.edge_weight.to(device)}
    return build


def cases(size: str):
    quick = size != "full"  # "quick" and the gate's "tiny"
    k = 10
    for M, T in ([(1000, 2)] if quick else [(1000, 8), (10000, 8)]):
        yield harness.Case(
            label="arap " + graph_cases.label(M, k, T), params=dict(M=M, k=k, T=T, E=M * k),
            build=_builder(M, k, T), ours=sirenpose_loss.arap_loss, reference=reference.arap_loss,
            large=M >= 10000, tags=("arap_5x",) if M == 10000 else ())


if __name__ == "__main__":
    harness.main("arap", "ARAP loss over control nodes", cases)
