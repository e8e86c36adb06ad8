"""A small selection of CUDA calls for compute-sanitizer (tools/gpu_check.sh): every kernel of
every loss in float32 (forward and backward, reduced and per-term, weighted or not), a float64
and a bfloat16 call, a two-pass reduction with more than 256 first-pass blocks, the incidence
built on the device, empty inputs, and out-of-range edge indices (which must give NaN, never an
out-of-bounds access).

    compute-sanitizer --tool memcheck --error-exitcode 1 python tools/gpu_sanitize_cases.py
    compute-sanitizer --tool racecheck --error-exitcode 1 python tools/gpu_sanitize_cases.py --small
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(HERE), os.path.join(os.path.dirname(HERE), "tests")]

import torch  # noqa: E402

import sirenpose_loss as spl  # noqa: E402
from cuda_cases import CASES, kml_case, outputs, sirenpose_case  # noqa: E402

SMALL = ["kml-mean-batch", "kml-none-mask", "scl1-mean-shared", "scl2-sum-none", "scl1-none-batch",
         "sirenpose-mean-batch-ew1-pos1", "sirenpose-none-shared-ew0-pos0",
         "sirenpose-sum-zeros-ew1-pos1"]


def run(case, dtype=torch.float32):
    outputs(*case.on("cuda", dtype))
    torch.cuda.synchronize()


def bad_edge_index():
    pred = torch.randn(3, 17, 3, device="cuda")
    target = torch.randn(3, 17, 3, device="cuda")
    ei = torch.tensor([[0, 1, 17], [1, -1, 3]], device="cuda")
    ops = torch.ops.sirenpose_loss
    for r in (0, 1):
        try:  # NaN or a clear error are both fine; an out-of-bounds access is not
            _, pos, geo, denom = ops.sirenpose_fwd(pred, target, ei, None, None, 30.0, 1.0, True, r)
            grads = (torch.ones_like(pos), torch.ones_like(geo))
            ops.sirenpose_bwd(*grads, pred, target, ei, None, None, denom, None, None, 30.0, 1.0,
                              True, r, [True, True])
        except (IndexError, ValueError):
            pass
    torch.cuda.synchronize()


def main(small: bool) -> None:
    assert spl.cuda_kernels_built(), "the extension was built without its CUDA kernels"
    for name in SMALL:
        run(CASES[name]())
    run(kml_case("mean", "batch", batch=(1000,), k=100, d=8))  # 391 first-pass blocks
    if not small:
        run(CASES["sirenpose-mean-shared-ew1-pos1"](), torch.float64)
        run(CASES["scl2-mean-batch"](), torch.bfloat16)
        run(sirenpose_case("sum", "none", False, batch=(5,), index_dtype=torch.int32))
        run(sirenpose_case("mean", "shared", batch=(0,)))
        run(CASES["sirenpose-none-batch-ew1-pos1"](num_edges=0))
        bad_edge_index()
    print("gpu_sanitize_cases: done")


if __name__ == "__main__":
    main("--small" in sys.argv[1:])
