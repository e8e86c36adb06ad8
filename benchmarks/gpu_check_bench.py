"""The GPU benchmark cases of tools/gpu_check.sh: each loss's forward+backward (ours, eager
PyTorch, torch.compile; harness.py times them with CUDA events) and, for each provider, the
fraction of the GPU's measured device-to-device copy bandwidth it reaches (gpu_bandwidth.py).

    python benchmarks/gpu_check_bench.py --out RESULT.json [--budget 0.2]

Cases: SCL T=32, M=1e6, D=3 (fp32, the memory-bound one); SirenPose B=65536, K=100, E=200,
D=2; and a tiny call of each loss (B=1, K=17), where launch overhead decides.
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

import gpu_bandwidth  # noqa: E402
import harness  # noqa: E402
import sirenpose_loss  # noqa: E402
from sirenpose_loss import reference  # noqa: E402


def _scl_build(T, M, D):
    def build(device):
        g = torch.Generator().manual_seed(0)
        start = torch.randn(1, M, D, generator=g)
        steps = 0.01 * torch.randn(T, M, D, generator=g)
        return ((start + steps.cumsum_(0)).to(device).requires_grad_(),), {}
    return build


def _keypoint_build(B, K, D, graph):
    def build(device):
        pred, target, _ = harness.keypoint_inputs(B, K, D, False, device)
        args = (pred, target) + ((harness.keypoint_graph(K).to(device),) if graph else ())
        return args, {}
    return build


def cases():
    """(case, loss name for the byte count, elements of the streamed input)."""
    scl = ("spatiotemporal_consistency", sirenpose_loss.spatiotemporal_consistency_loss,
           reference.spatiotemporal_consistency_loss)
    kml = ("keypoint_match", sirenpose_loss.keypoint_match_loss, reference.keypoint_match_loss)
    sp = ("sirenpose", sirenpose_loss.sirenpose_loss, reference.sirenpose_loss)
    for loss, ours, ref, label, params, build, elements, tag in [
        (*scl, "SCL T=32, M=1e6, D=3", dict(T=32, M=10 ** 6, D=3), _scl_build(32, 10 ** 6, 3),
         32 * 10 ** 6 * 3, "scl_large"),
        (*sp, "SirenPose B=65536, K=100, E=200, D=2", dict(B=65536, K=100, E=200, D=2),
         _keypoint_build(65536, 100, 2, True), 65536 * 100 * 2, "sirenpose_large"),
        (*scl, "SCL tiny T=8, M=17, D=3", dict(T=8, M=17, D=3), _scl_build(8, 17, 3),
         8 * 17 * 3, "tiny"),
        (*kml, "KML tiny B=1, K=17, D=2", dict(B=1, K=17, D=2), _keypoint_build(1, 17, 2, False),
         17 * 2, "tiny"),
        (*sp, "SirenPose tiny B=1, K=17, E=19, D=2", dict(B=1, K=17, E=19, D=2),
         _keypoint_build(1, 17, 2, True), 17 * 2, "tiny"),
    ]:
        yield harness.Case(label=label, params=params, build=build, ours=ours, reference=ref,
                           large=tag != "tiny", tags=(tag,)), loss, elements


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="JSON file to write")
    p.add_argument("--budget", type=float, default=0.2,
                   help="seconds of samples per (provider, mode, case)")
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        sys.exit("gpu_check_bench: no CUDA GPU")
    device = torch.device("cuda")
    t0 = time.perf_counter()
    copy = gpu_bandwidth.device_copy_bandwidth()
    print(f"[gpu_check_bench] copy bandwidth {copy['bandwidth_bytes_per_s'] / 1e9:.0f} GB/s "
          f"({copy['gpu']})", flush=True)
    budget = harness.Budget(seconds=args.budget, min_samples=5, retries=0)
    records = []
    for case, loss, elements in cases():
        rec = harness.run_case(case, device, budget)
        moved = gpu_bandwidth.minimum_bytes(loss, "full", elements=elements, itemsize=4, grads=1)
        rec["loss"], rec["min_bytes_full"] = loss, moved
        rec["fraction_of_copy"] = {
            prov: gpu_bandwidth.fraction_of_copy(moved, t["full"]["median_s"], copy)
            for prov, t in rec["times"].items()}
        rec["speedup_vs_eager"] = harness.speedup(rec, "eager")
        rec["speedup_vs_compile"] = harness.speedup(rec, "compile")
        print(f"[gpu_check_bench] {case.label}: ours {harness.fmt_time(rec['times']['ours']['full']['median_s'])}"
              f", {rec['fraction_of_copy']['ours']:.0%} of copy bandwidth, "
              f"x{rec['speedup_vs_eager']:.2f} vs eager, x{rec['speedup_vs_compile']:.2f} vs compile",
              flush=True)
        records.append(rec)
    out = {"meta": harness.machine_info(device), "copy_bandwidth": copy, "budget": budget.__dict__,
           "wall_s": time.perf_counter() - t0, "cases": records}
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
    bad = [r["label"] for r in records if not r["check"]["ours"]["ok"]]
    if bad:
        sys.exit(f"gpu_check_bench: ours disagrees with eager on {bad}")


if __name__ == "__main__":
    main()
