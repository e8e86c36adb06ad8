"""CPU/CUDA benchmark of the spatio-temporal consistency loss (SCL, DynaPose4D eq. 5).

positions [T, M, 3] float32 (Gaussian centre tracks), requires grad; reduction "mean", no weight.
Sweep: T in {8, 32} x M in {1e3, 1e4, 1e5, 1e6}. Providers ours / eager / compile (see harness.py).

    python benchmarks/bench_spatiotemporal_consistency.py [--quick] [--device cpu|cuda] [--out DIR]
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

import harness  # noqa: E402
import sirenpose_loss  # noqa: E402
from sirenpose_loss import reference  # noqa: E402


def _builder(T: int, M: int, D: int = 3):
    def build(device):
        g = torch.Generator().manual_seed(0)
        start = torch.randn(1, M, D, generator=g)
        steps = 0.01 * torch.randn(T, M, D, generator=g)
        positions = (start + steps.cumsum_(0)).to(device).requires_grad_()
        return (positions,), {}
    return build


def cases(quick: bool):
    grid = [(8, 1000), (8, 100000), (32, 100000)] if quick else \
        [(t, m) for t in (8, 32) for m in (1000, 10000, 100000, 1000000)]
    for T, M in grid:
        tags = ("scl_4x",) if T == 32 and M >= 100000 else ()
        yield harness.Case(
            label=f"T={T}, M={harness.fmt_count(M)}, D=3",
            params={"T": T, "M": M, "D": 3},
            build=_builder(T, M),
            ours=sirenpose_loss.spatiotemporal_consistency_loss,
            reference=reference.spatiotemporal_consistency_loss,
            large=M >= 100000, tags=tags)


if __name__ == "__main__":
    harness.main("spatiotemporal_consistency",
                 "Spatio-temporal consistency loss (SCL), positions [T, M, 3]", cases)
