"""CPU/CUDA benchmark of the SirenPose loss (SirenPose eqs. 5-7) and of its graph term alone,
the sine graph consistency loss (eq. 6), which runs the same kernels with with_pos=False.

pred, target [B, K, D] float32 (normalised coordinates), pred requires grad; edge_index [2, E]:
K = 17 is the COCO-17 skeleton (E = 19), K = 100 a connected random graph (a chain plus random
extra edges, E = 200); omega0 = 30, lambda_geo = 1, reduction "mean".
Sweep: B in {1, 16, 256, 4096} x K in {17, 100}, D = 2; plus B=4096, K=17, D=3; B=256, K=17 with
per-keypoint weights; B=256, K=17 with reduction "none" (both term tensors summed); and
sin_graph_consistency_loss at B=1, K=17 and B=4096, K=100.

    python benchmarks/bench_sirenpose.py [--quick] [--device cpu|cuda] [--out DIR]
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
        edge_index = harness.keypoint_graph(K).to(device)
        return (pred, target, edge_index), ({"weight": weight} if weighted else {})
    return build


def cases(size: str):
    for p in harness.keypoint_grid(size):
        B, K, D, w = p["B"], p["K"], p["D"], p["weighted"]
        E = harness.keypoint_graph(K).shape[1]
        tags = ("tiny_5x",) if (B, K, D, w) == (1, 17, 2, False) else ()
        yield harness.Case(
            label="sirenpose " + harness.keypoint_label(B, K, D, w, E),
            params=dict(p, E=E, loss="sirenpose_loss"),
            build=_builder(B, K, D, w),
            ours=sirenpose_loss.sirenpose_loss, reference=reference.sirenpose_loss,
            large=B >= 4096, tags=tags)
    B = 4 if size == "tiny" else 256  # the per-term path (pos and geo terms), summed
    yield harness.Case(
        label="sirenpose " + harness.keypoint_label(B, 17, 2, False, 19) + ", reduction=none",
        params=dict(B=B, K=17, D=2, weighted=False, E=19, loss="sirenpose_loss", reduction="none"),
        build=_builder(B, 17, 2, False),
        ours=harness.summed_terms(sirenpose_loss.sirenpose_loss),
        reference=harness.summed_terms(reference.sirenpose_loss))
    for B, K in ([(1, 17), (4096, 100)] if size == "full" else [(1, 17)]):
        E = harness.keypoint_graph(K).shape[1]
        yield harness.Case(
            label="sin_graph " + harness.keypoint_label(B, K, 2, False, E),
            params=dict(B=B, K=K, D=2, weighted=False, E=E, loss="sin_graph_consistency_loss"),
            build=_builder(B, K, 2, False),
            ours=sirenpose_loss.sin_graph_consistency_loss,
            reference=reference.sin_graph_consistency_loss,
            large=B >= 4096)


if __name__ == "__main__":
    harness.main("sirenpose", "SirenPose loss (L_pos + L_geo over a keypoint graph) and the "
                 "sine graph consistency loss alone", cases)
