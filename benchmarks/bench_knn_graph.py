"""kNN graph build time and peak memory over random 3-D Gaussian centres.

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
``torch.cuda.max_memory_allocated``; the results record the device they ran on.

Writes ``results/knn_graph.json`` (every row and the measured machine metadata) and
``benchmarks/RESULTS_graphs.md`` (generated from that JSON; ``--report-only`` rewrites it).

Usage: ``python benchmarks/bench_knn_graph.py [--sizes 1e4 1e5 1e6] [--ks 8 20] [--repeats 3]
[--threads N] [--time-limit S] [--report-only]``
"""
from __future__ import annotations

import argparse
import json
import os
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
def fmt_count(n: int) -> str:
    """1000000 -> '1e6'; other counts as they are."""
    e = len(str(n)) - 1
    return f"1e{e}" if n == 10 ** e and e >= 3 else str(n)


HERE = os.path.dirname(os.path.abspath(__file__))
METHOD = """\
* **Providers**: `ours` = `sirenpose_loss.graphs.knn_graph(points, k)` (scipy cKDTree on CPU);
  `ours-torch` = `knn_graph(..., method="torch")`, the plain-torch path that CUDA tensors take;
  `cdist-topk` = the usual chunked `torch.cdist` + `topk` baseline (2^24 distances per chunk).
* **Peak** = growth of the child process's resident set during the call (VmHWM after minus
  VmRSS before, high-water mark reset just before), so it includes the output edge_index
  (`output MB`) and the kd-tree; the input points are not counted.
* Providers estimated to take longer than the time limit are skipped; the estimate (first chunks
  extrapolated for `cdist-topk`, O(M^2); the M/10 case scaled for `ours-torch`) is given instead.
"""


def sweep(args) -> list:
    """Measures every (M, k, provider); returns the rows (skipped ones carry an estimate)."""
    import torch
    rows = []
    torch_seconds = {}
    for m in (int(s) for s in args.sizes):
        for k in args.ks:
            for provider in args.providers:
                estimate = None
                if provider == "cdist-topk":
                    points = torch.randn(m, 3, generator=torch.Generator().manual_seed(0))
                    estimate = estimate_cdist_seconds(points, k)
                elif provider == "ours-torch" and (m // 10, k) in torch_seconds:
                    estimate = torch_seconds[(m // 10, k)] * 10 ** 1.3  # measured ~M^1.3 growth
                row = dict(M=m, k=k, provider=provider)
                if estimate is not None and estimate > args.time_limit:
                    if provider == "ours-torch":  # the next size is estimated from this one
                        torch_seconds[(m, k)] = estimate
                    rows.append(dict(row, skipped=True, estimate_s=estimate))
                    print(f"{m:.0e} k={k} {provider}: skipped, estimated {estimate:.0f} s", flush=True)
                    continue
                repeats = args.repeats if m < 10 ** 6 else max(1, args.repeats - 1)
                result = measure(provider, m, k, repeats, args.device, args.threads)
                times = sorted(result["times"])
                row.update(skipped=False, median_s=times[len(times) // 2], min_s=times[0], **result)
                if provider == "ours-torch":
                    torch_seconds[(m, k)] = row["median_s"]
                rows.append(row)
                print(f"{m:.0e} k={k} {provider}: {row['median_s']:.3f} s, {row['peak_mb']:.0f} MB",
                      flush=True)
    return rows


def markdown(res: dict) -> str:
    meta = res["meta"]
    lines = ["# kNN graph build: measured results", "",
             f"Written by `{res['command']}` (method in its docstring): exact kNN graphs "
             "(`[2, M * k]` edge_index, no self loops) over `M` random 3-D standard-normal points.", "",
             f"* **Machine (recorded)**: {meta.get('cpu_model', 'CPU model not recorded')}, "
             f"{meta.get('os_cpu_count', '?')} logical CPUs, memory {meta.get('mem_total', '?')}; "
             f"torch {meta['torch']}, scipy {res.get('scipy', '?')}, device `{res['device']}`, "
             f"{res['rows'][0].get('threads', '?') if res['rows'] else '?'} threads; measured {meta['date']}; "
             f"1-min load average {res['loadavg'][0]:.1f} at start, {res['loadavg'][1]:.1f} at end "
             f"(time limit {res['time_limit_s']:.0f} s).",
             METHOD,
             "| M | k | provider | median s | min s | peak RSS growth MB | output MB |",
             "|---|---|---|---|---|---|---|"]
    for r in res["rows"]:
        head = f"| {fmt_count(r['M'])} | {r['k']} | {r['provider']} |"
        if r["skipped"]:
            lines.append(f"{head} skipped (est. {r['estimate_s']:.0f} s) | | | |")
        else:
            note = "" if r["exact_peak"] else " (ru_maxrss: upper bound)"
            lines.append(f"{head} {r['median_s']:.3f} | {r['min_s']:.3f} | {r['peak_mb']:.0f}{note} | "
                         f"{r['output_mb']:.0f} |")
    return "\n".join(lines) + "\n"


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
    parser.add_argument("--out", default=os.path.join(HERE, "results"), help="folder for knn_graph.json")
    parser.add_argument("--results-md", default=os.path.join(HERE, "RESULTS_graphs.md"))
    parser.add_argument("--report-only", action="store_true", help="rewrite the Markdown from the JSON")
    parser.add_argument("--child", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        provider, m, k, repeats, device, threads = args.child
        print(json.dumps(child(provider, int(m), int(k), int(repeats), device, int(threads))))
        return
    jpath = os.path.join(args.out, "knn_graph.json")
    if not args.report_only:
        import scipy
        import harness  # noqa: E402  (machine metadata, shared with the loss benchmarks)
        load0 = os.getloadavg()[0]
        rows = sweep(args)
        command = "python benchmarks/bench_knn_graph.py " + " ".join(sys.argv[1:])
        res = {"command": command.strip(), "device": args.device, "time_limit_s": args.time_limit,
               "scipy": scipy.__version__, "meta": harness.machine_info(__import__("torch").device("cpu")),
               "loadavg": [load0, os.getloadavg()[0]], "rows": rows}
        os.makedirs(args.out, exist_ok=True)
        with open(jpath, "w") as f:
            json.dump(res, f, indent=1)
    with open(jpath) as f:
        res = json.load(f)
    with open(args.results_md, "w") as f:
        f.write(markdown(res))
    print(f"wrote {jpath} and {args.results_md}")


if __name__ == "__main__":
    main()
