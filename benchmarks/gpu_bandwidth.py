"""The GPU's achievable memory bandwidth, and the least memory traffic each kernel can make: the
two numbers that turn a kernel time into "% of device-to-device copy bandwidth" (docs/cuda.md).

    python benchmarks/gpu_bandwidth.py [--gib 2] [--repeats 30]

prints the measured copy bandwidth as JSON. Nothing here has been run on a GPU yet: no figure
is recorded anywhere until it has.
"""
import argparse
import json
import statistics
from typing import Optional

import torch


def device_copy_bandwidth(nbytes: int = 2 << 30, repeats: int = 30, warmup: int = 3,
                          device: Optional[torch.device] = None) -> dict:
    """Median bandwidth of a large device-to-device copy, ``dst.copy_(src)``, timed with CUDA
    events. A copy reads and writes ``nbytes`` each, so ``2 * nbytes`` bytes move per copy (the
    convention of the kernels' minimum byte counts below). ``nbytes`` should be many times the L2
    cache (50-60 MB on H100/H200) so the figure is DRAM bandwidth, not cache bandwidth.
    """
    if not torch.cuda.is_available():
        raise RuntimeError("device_copy_bandwidth needs a CUDA GPU")
    device = torch.device(device or "cuda")
    n = nbytes // 4
    src = torch.empty(n, dtype=torch.float32, device=device).uniform_()
    dst = torch.empty_like(src)
    for _ in range(warmup):
        dst.copy_(src)
    start = [torch.cuda.Event(enable_timing=True) for _ in range(repeats)]
    end = [torch.cuda.Event(enable_timing=True) for _ in range(repeats)]
    torch.cuda.synchronize(device)
    for s, e in zip(start, end):
        s.record()
        dst.copy_(src)
        e.record()
    torch.cuda.synchronize(device)
    seconds = [s.elapsed_time(e) / 1e3 for s, e in zip(start, end)]
    median = statistics.median(seconds)
    moved = 2 * n * 4
    return {"gpu": torch.cuda.get_device_name(device), "bytes_per_copy": moved,
            "median_s": median, "min_s": min(seconds), "repeats": repeats,
            "bandwidth_bytes_per_s": moved / median}


def minimum_bytes(loss: str, mode: str, *, elements: int, itemsize: int,
                  grads: int = 1) -> int:
    """Least DRAM traffic of one call, counting only the streams that cannot be avoided.

    ``elements``: of positions (SCL) or of pred (KML, SirenPose; target has as many);
    ``grads``: how many of pred/target need a gradient (KML, SirenPose). Weights, edge lists,
    per-term outputs and the scalar results are ignored (small next to the points, or zero for
    mean/sum); each keypoint's neighbours in the graph backward come from cache.
      SCL        fwd: read P            bwd: read P, write dP            full: 2 reads + 1 write
      KML, SP    fwd: read p, t         bwd: read p, t, write grads      full: 4 reads + grads
    """
    n = elements * itemsize
    reads = {"spatiotemporal_consistency": 1, "keypoint_match": 2, "sirenpose": 2}[loss]
    writes = 1 if loss == "spatiotemporal_consistency" else grads
    per_mode = {"forward": reads * n, "backward": (reads + writes) * n,
                "full": (2 * reads + writes) * n}
    return per_mode[mode]


def fraction_of_copy(bytes_moved: int, seconds: float, copy: dict) -> float:
    """Achieved bandwidth of a kernel as a fraction of the measured copy bandwidth."""
    return bytes_moved / seconds / copy["bandwidth_bytes_per_s"]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Measure device-to-device copy bandwidth.")
    parser.add_argument("--gib", type=float, default=2.0, help="bytes per copy, in GiB")
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args(argv)
    result = device_copy_bandwidth(int(args.gib * (1 << 30)), args.repeats)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
