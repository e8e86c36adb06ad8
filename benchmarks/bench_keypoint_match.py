"""CPU/CUDA benchmark of the keypoint match loss (KML, DynaPose4D eq. 4).

pred, target [B, K, D] float32 (normalised coordinates); pred requires grad, target does not;
reduction "mean". Sweep: B in {1, 16, 256, 4096} x K in {17, 100}, D = 2; plus B=4096, K=17, D=3,
B=256, K=17 with per-keypoint weights, and B=256, K=17 with reduction "none" (terms summed). Providers ours / eager / compile (see harness.py).

    python benchmarks/bench_keypoint_match.py [--quick] [--device cpu|cuda] [--out DIR]
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
import sirenpose_loss  # noqa: E402
from sirenpose_loss import reference  # noqa: E402


def _builder(B, K, D, weighted):
    def build(device):
        pred, target, weight = harness.keypoint_inputs(B, K, D, weighted, device)
        return (pred, target), ({"weight": weight} if weighted else {})
    return build


def cases(size: str):
    for p in harness.keypoint_grid(size):
        B, K, D, w = p["B"], p["K"], p["D"], p["weighted"]
        tags = ("tiny_5x",) if (B, K, D, w) == (1, 17, 2, False) else ()
        yield harness.Case(
            label=harness.keypoint_label(B, K, D, w), params=dict(p),
            build=_builder(B, K, D, w),
            ours=sirenpose_loss.keypoint_match_loss,
            reference=reference.keypoint_match_loss,
            large=B >= 4096, tags=tags)
    B = 4 if size == "tiny" else 256  # the per-term path, summed
    yield harness.Case(
        label=harness.keypoint_label(B, 17, 2, False) + ", reduction=none",
        params=dict(B=B, K=17, D=2, weighted=False, reduction="none"),
        build=_builder(B, 17, 2, False),
        ours=harness.summed_terms(sirenpose_loss.keypoint_match_loss),
        reference=harness.summed_terms(reference.keypoint_match_loss))


if __name__ == "__main__":
    harness.main("keypoint_match", "Keypoint match loss (KML), pred/target [B, K, D]", cases)
