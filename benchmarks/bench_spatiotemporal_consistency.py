"""CPU/CUDA benchmark of the spatio-temporal consistency loss (SCL, DynaPose4D eq. 5).

positions [T, M, 3] float32 (Gaussian centre tracks), requires grad; reduction "mean", no weight,
order 1, except for the variant rows (per-Gaussian weights, order 2, reduction "none").
Sweep: T in {8, 32} x M in {1e3, 1e4, 1e5, 1e6}; the variants at T=32, M=1e5. Providers ours / eager / compile (see harness.py).

    python benchmarks/bench_spatiotemporal_consistency.py [--quick] [--device cpu|cuda] [--out DIR]
"""
import functools
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

import harness  # noqa: E402
import sirenpose_loss  # noqa: E402
from sirenpose_loss import reference  # noqa: E402


def _builder(T: int, M: int, D: int = 3, weighted: bool = False):
    def build(device):
        g = torch.Generator().manual_seed(0)
        start = torch.randn(1, M, D, generator=g)
        steps = 0.01 * torch.randn(T, M, D, generator=g)
        positions = (start + steps.cumsum_(0)).to(device).requires_grad_()
        if not weighted:
            return (positions,), {}
        return (positions,), {"weight": torch.rand(M, generator=g).to(device)}
    return build


def _variant(fn, order: int, none: bool):
    """fn with order fixed, or its reduction="none" terms summed."""
    if none:
        return harness.summed_terms(fn)
    return functools.partial(fn, order=order) if order != 1 else fn


def cases(size: str):
    """full: T in {8, 32} x M in {1e3, 1e4, 1e5, 1e6}, then the variants (per-Gaussian weights,
    order 2, reduction "none") at T=32, M=1e5; quick: three plain sizes and the variants at T=8,
    M=1e4; tiny (the correctness gate): T=8, M=1e3 plain and every variant."""
    variant_size = {"full": (32, 100000), "quick": (8, 10000), "tiny": (8, 1000)}[size]
    grid = {"full": [(t, m) for t in (8, 32) for m in (1000, 10000, 100000, 1000000)],
            "quick": [(8, 1000), (8, 100000), (32, 100000)],
            "tiny": [(8, 1000)]}[size]
    rows = [(T, M, False, 1, False) for T, M in grid]
    rows += [variant_size + v for v in ((True, 1, False), (False, 2, False), (False, 1, True))]
    for T, M, weighted, order, none in rows:
        plain = not (weighted or order != 1 or none)
        label = f"T={T}, M={harness.fmt_count(M)}, D=3" + (", weighted" if weighted else "") \
            + (f", order={order}" if order != 1 else "") + (", reduction=none" if none else "")
        yield harness.Case(
            label=label,
            params={"T": T, "M": M, "D": 3, "weighted": weighted, "order": order,
                    "reduction": "none" if none else "mean"},
            build=_builder(T, M, weighted=weighted),
            ours=_variant(sirenpose_loss.spatiotemporal_consistency_loss, order, none),
            reference=_variant(reference.spatiotemporal_consistency_loss, order, none),
            large=plain and M >= 100000, tags=("scl_4x",) if plain and T == 32 and M >= 100000 else ())


if __name__ == "__main__":
    harness.main("spatiotemporal_consistency",
                 "Spatio-temporal consistency loss (SCL), positions [T, M, 3]", cases)
