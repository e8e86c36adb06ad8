"""kNN graph build time and peak memory over random 3-D Gaussian centres (issue 4).

Providers (all build the same ``[2, M * k]`` edge_index, neighbours -> centre, no self loops):

* ``ours``        - ``sirenpose_loss.graphs.knn_graph`` with ``method="auto"``: scipy's cKDTree on
                    CPU (queries in the tree's leaf order, chunked, ``torch.get_num_threads()``
                    workers);
* ``ours-torch``  - ``knn_graph(method="torch")``: the plain-torch path CUDA tensors take (kd
                    leaves + bounding-box pruning), run here on the CPU;
* ``cdist-topk``  - the usual pure-torch baseline: ``torch.cdist`` of a chunk of centres against
                    all points, ``topk``, in chunks of at most 2^24 distances (64 MB).

Every measurement runs in a fresh child process (``python bench_knn_graph.py --child ...``), so
that one run's allocations cannot hide another's. Peak memory is the growth of the child's
resident set during the call: ``VmHWM`` (the RSS high-water mark) after the call minus ``VmRSS``
before it, with the high-water mark reset just before the call (``echo 5 >
/proc/self/clear_refs``, Linux). That counts everything the call touches: torch's allocator,
numpy and scipy buffers (the kd-tree) and the output edge_index itself (``2 * M * k * 8`` bytes).
Where the mark cannot be reset it falls back to ``ru_maxrss`` (peak of the whole child, an upper
bound). The input points are created before the measurement and not counted.

A provider is skipped where it would run for more than 60 s: the time of its first chunks is
extrapolated (``cdist-topk`` is O(M^2)) or the M / 10 case is scaled (``ours-torch``), and the
estimate is printed instead.

The CUDA path (``--device cuda``) times with ``torch.cuda.synchronize`` and reports
``torch.cuda.max_memory_allocated``, but it has never been run: the machine these numbers come
from has no GPU.

Usage: ``python benchmarks/bench_knn_graph.py [--sizes 1e4 1e5 1e6] [--ks 8 20] [--repeats 3]
[--threads N]``
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, REPO)

MB = 2 ** 20
TIME_LIMIT_S = 60.0
PROVIDERS = ("ours", "ours-torch", "cdist-topk")


# ----------------------------------------------------------------------------- providers
def cdist_topk_knn(points, k: int, tile: int = 1 << 24):
    """Baseline: chunked torch.cdist + topk (self excluded), neighbours -> centre."""
    import torch
    n = points.shape[0]
    chunk = max(1, tile // n)
    neighbours = []
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        dist = torch.cdist(points[start:stop], points)
        rows = torch.arange(stop - start)
        dist[rows, rows + start] = float("inf")
        neighbours.append(dist.topk(k, dim=1, largest=False).indices)
    nbr = torch.cat(neighbours)
    centre = torch.arange(n).repeat_interleave(k)
    return torch.stack([nbr.reshape(-1), centre])


def estimate_cdist_seconds(points, k: int, tile: int = 1 << 24, probe_chunks: int = 3) -> float:
    """Time the first chunks of the baseline and extrapolate to all of them."""
    import torch
    n = points.shape[0]
    chunk = max(1, tile // n)
    start_time = time.perf_counter()
    for start in range(0, min(n, probe_chunks * chunk), chunk):
        torch.cdist(points[start:start + chunk], points).topk(k, dim=1, largest=False)
    per_chunk = (time.perf_counter() - start_time) / min(probe_chunks, -(-n // chunk))
    return per_chunk * -(-n // chunk)


def run_provider(provider: str, points, k: int):
    from sirenpose_loss.graphs import knn_graph
    if provider == "ours":
        return knn_graph(points, k)
    if provider == "ours-torch":
        return knn_graph(points, k, method="torch")
    return cdist_topk_knn(points, k)


# ----------------------------------------------------------------------------- memory
def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def _reset_high_water_mark() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


# ----------------------------------------------------------------------------- child
def child(provider: str, m: int, k: int, repeats: int, device: str, threads: int) -> dict:
    import torch
    if threads > 0:
        torch.set_num_threads(threads)
    import scipy.spatial  # noqa: F401  (import cost is not part of a build)
    import sirenpose_loss.graphs  # noqa: F401
    gen = torch.Generator().manual_seed(0)
    points = torch.randn(m, 3, generator=gen).to(device)
    run_provider(provider, points[:256].contiguous(), min(k, 8))  # warm-up (allocator, imports)
    times, peak_mb, edges = [], 0.0, None
    for _ in range(repeats):
        edges = None
        if device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
        rss_before = _status_kb("VmRSS")
        exact_peak = _reset_high_water_mark()
        start = time.perf_counter()
        edges = run_provider(provider, points, k)
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
        if device == "cuda":
            peak = (torch.cuda.max_memory_allocated() - base) / MB
        elif exact_peak:
            peak = (_status_kb("VmHWM") - rss_before) / 1024
        else:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - rss_before / 1024
        peak_mb = max(peak_mb, peak)
    assert edges.shape == (2, m * k), edges.shape
    return {"times": times, "peak_mb": peak_mb, "exact_peak": exact_peak,
            "threads": torch.get_num_threads(), "output_mb": edges.numel() * 8 / MB}


def measure(provider: str, m: int, k: int, repeats: int, device: str, threads: int) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--child", provider, str(m), str(k),
           str(repeats), device, str(threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ,
                                                                   "PYTHONWARNINGS": "ignore"})
    if proc.returncode != 0:
        raise RuntimeError(f"child failed: {' '.join(cmd)}\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- main
def machine() -> str:
    model = platform.processor() or "unknown CPU"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        model = next(line.split(":", 1)[1].strip() for line in out.splitlines()
                     if line.startswith("Model name"))
    except (OSError, StopIteration):
        pass
    return f"{model}, {os.cpu_count()} logical CPUs, load average {os.getloadavg()[0]:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=[1e4, 1e5, 1e6])
    parser.add_argument("--ks", type=int, nargs="+", default=[8, 20])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--providers", nargs="+", default=list(PROVIDERS), choices=PROVIDERS)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=0,
                        help="torch.set_num_threads in every run (0: torch's default)")
    parser.add_argument("--time-limit", type=float, default=TIME_LIMIT_S,
                        help="skip a provider whose estimated time exceeds this (seconds)")
    parser.add_argument("--child", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        provider, m, k, repeats, device, threads = args.child
        print(json.dumps(child(provider, int(m), int(k), int(repeats), device, int(threads))))
        return

    import torch
    print(f"# kNN graph build, 3-D Gaussian points, {machine()}, torch {torch.__version__}, "
          f"device {args.device}")
    print("| M | k | provider | median s | min s | peak RSS growth MB | output MB | note |")
    print("|---|---|---|---|---|---|---|---|")
    torch_seconds = {}
    for m in (int(s) for s in args.sizes):
        for k in args.ks:
            for provider in args.providers:
                note = ""
                estimate = None
                if provider == "cdist-topk":
                    points = torch.randn(m, 3, generator=torch.Generator().manual_seed(0))
                    estimate = estimate_cdist_seconds(points, k)
                elif provider == "ours-torch" and (m // 10, k) in torch_seconds:
                    estimate = torch_seconds[(m // 10, k)] * 10 ** 1.3  # measured ~M^1.3 growth
                if estimate is not None and estimate > args.time_limit:
                    if provider == "ours-torch":  # the next size is estimated from this one
                        torch_seconds[(m, k)] = estimate
                    print(f"| {m:.0e} | {k} | {provider} | skipped | | | | estimated "
                          f"{estimate:.0f} s > {args.time_limit:.0f} s |", flush=True)
                    continue
                repeats = args.repeats if m < 10 ** 6 else max(1, args.repeats - 1)
                result = measure(provider, m, k, repeats, args.device, args.threads)
                times = sorted(result["times"])
                median = times[len(times) // 2]
                if provider == "ours-torch":
                    torch_seconds[(m, k)] = median
                if not result["exact_peak"]:
                    note = "peak = ru_maxrss (upper bound)"
                print(f"| {m:.0e} | {k} | {provider} | {median:.3f} | {times[0]:.3f} | "
                      f"{result['peak_mb']:.0f} | {result['output_mb']:.0f} | "
                      f"{result['threads']} threads {note} |", flush=True)


if __name__ == "__main__":
    main()
