"""Where does the time of one call go? A breakdown of `ours` for the smallest and largest cases.

    python benchmarks/profile_overhead.py [--threads N] [--large] [--out benchmarks/results]

Tiny cases (KML and SirenPose at B=1, K=17, D=2): the Python wrapper's argument checks, the
differentiable op called directly (torch.ops.sirenpose_loss.<loss>: C++ autograd + forward
kernel), its backward, the raw fused forward/backward kernels without autograd, and floors (one
tiny ATen op, a tiny autograd round trip). With --large: SCL at T=32, M in {1e5, 1e6}: the raw
kernels against a copy of the same bytes and a fresh-gradient allocation (page faults).

Timings are min and median over repeats of timeit loops (min = least disturbed by other
processes). Writes overhead.json (every row, keyed, with the harness's machine metadata) and
overhead.md (the table) to --out (overhead_large.* with --large); the benchmark sweeps' numbers
come from bench_*.py.
"""
import argparse
import json
import os
import statistics
import sys
import timeit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

import harness  # noqa: E402
import sirenpose_loss  # noqa: E402
from sirenpose_loss import _ops, reference  # noqa: E402
from sirenpose_loss import _validation as V  # noqa: E402


ROWS = []  # every timing of this run: section, key, label, min_s, median_s, loops, repeats
SECTION = [""]


def section(title):
    print(title)
    SECTION[0] = title


def bench(label, fn, number=None, repeat=7, setup=None, key=None):
    if number is None:  # aim at ~20 ms per repeat
        t = timeit.timeit(fn, number=3) / 3
        number = max(1, min(20000, int(0.02 / max(t, 1e-7))))
    times = []
    for _ in range(repeat):
        if setup:
            setup()
        times.append(timeit.timeit(fn, number=number) / number)
    mn, med = min(times), statistics.median(times)
    print(f"  {label:<58} min {harness.fmt_time(mn):>10}   median {harness.fmt_time(med):>10}")
    ROWS.append(dict(section=SECTION[0], key=key, label=label, min_s=mn, median_s=med,
                     loops=number, repeats=repeat))
    return mn


def tiny():
    pred, target, _ = harness.keypoint_inputs(1, 17, 2, False, torch.device("cpu"))
    pd = pred.detach()
    ei = harness.keypoint_graph(17)
    x, y = torch.rand(34), torch.rand(34)
    a = torch.rand(34, requires_grad=True)

    def reset():
        pred.grad = None

    section("floors")
    bench("torch.add(x, y), 34 floats", lambda: torch.add(x, y))
    bench("torch.empty(34)", lambda: torch.empty(34))
    bench("(a * 2).sum().backward(), 34 floats", lambda: (a.mul(2).sum().backward(), setattr(a, "grad", None)),
          key="autograd_floor")

    section("KML B=1, K=17, D=2")
    bench("full ours: keypoint_match_loss(...).backward()",
          lambda: (sirenpose_loss.keypoint_match_loss(pred, target).backward(), reset()), key="kml_full_ours")
    bench("full eager: reference(...).backward()",
          lambda: (reference.keypoint_match_loss(pred, target).backward(), reset()))
    bench("python checks (reduction_code, check_pair, check_weight)",
          lambda: (V.reduction_code("mean"), V.check_pair(pred, target, "[..., K, D]"),
                   V.check_weight(None, "weight", pred.shape[:-1], "[..., K]", pred)))
    if hasattr(_ops, "keypoint_match"):
        bench("op fwd with autograd: _ops.keypoint_match(...)",
              lambda: _ops.keypoint_match(pred, target, None, 1))
        bench("op fwd + bwd: _ops.keypoint_match(...).backward()",
              lambda: (_ops.keypoint_match(pred, target, None, 1).backward(), reset()))
    bench("kernel fwd alone: keypoint_match_fwd (no autograd)",
          lambda: _ops.keypoint_match_fwd(pd, target, None, 1), key="kml_kernel_fwd")
    _, denom = _ops.keypoint_match_fwd(pd, target, None, 1)
    g1 = torch.ones(())
    bench("kernel bwd alone: keypoint_match_bwd (no autograd)",
          lambda: _ops.keypoint_match_bwd(g1, pd, target, None, denom, 1, [True, False]))
    with torch.no_grad():
        bench("full wrapper under no_grad (checks + fwd kernel)",
              lambda: sirenpose_loss.keypoint_match_loss(pred, target))
    bench("eager forward alone", lambda: reference.keypoint_match_loss(pred, target))

    section("SirenPose B=1, K=17, E=19, D=2")
    bench("full ours: sirenpose_loss(...).backward()",
          lambda: (sirenpose_loss.sirenpose_loss(pred, target, ei).backward(), reset()))
    bench("full eager", lambda: (reference.sirenpose_loss(pred, target, ei).backward(), reset()))
    from sirenpose_loss.losses import sirenpose as sp
    if hasattr(sp, "_prepare"):
        bench("python checks: losses.sirenpose._prepare(...)",
              lambda: sp._prepare(pred, target, ei, 30.0, None, None, "mean"))
    if hasattr(_ops, "sirenpose"):
        bench("op fwd + bwd: _ops.sirenpose(...)[0].backward()",
              lambda: (_ops.sirenpose(pred, target, ei, None, None, None, None, 30.0, 1.0, True, 1)[0]
                       .backward(), reset()))
    bench("kernel fwd alone: sirenpose_fwd",
          lambda: _ops.sirenpose_fwd(pd, target, ei, None, None, 30.0, 1.0, True, 1))
    den = _ops.sirenpose_fwd(pd, target, ei, None, None, 30.0, 1.0, True, 1)[3]
    bench("kernel bwd alone: sirenpose_bwd",
          lambda: _ops.sirenpose_bwd(g1, g1, pd, target, ei, None, None, den, None, None, 30.0, 1.0,
                                     True, 1, [True, False]))
    bench("eager forward alone", lambda: reference.sirenpose_loss(pred, target, ei))

    print("torch.profiler: ops dispatched by one full ours call (KML B=1)")
    from torch.profiler import ProfilerActivity, profile
    sirenpose_loss.keypoint_match_loss(pred, target).backward()
    reset()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        sirenpose_loss.keypoint_match_loss(pred, target).backward()
    reset()
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))


def large():
    for M in (100000, 1000000):
        T = 32
        g = torch.Generator().manual_seed(0)
        pos = torch.randn(T, M, 3, generator=g)
        mb = pos.numel() * 4 / 2 ** 20
        section(f"SCL T={T}, M={harness.fmt_count(M)}: positions {mb:.1f} MB, {torch.get_num_threads()} threads")
        dst = torch.empty_like(pos)
        t = bench("copy_ into a warm buffer (read+write the bytes once)", lambda: dst.copy_(pos), repeat=5)
        print(f"    -> {2 * pos.numel() * 4 / t / 1e9:.1f} GB/s read+write")
        t = bench("sum() (read once)", lambda: pos.sum(), repeat=5)
        print(f"    -> {pos.numel() * 4 / t / 1e9:.1f} GB/s read")
        bench("torch.empty_like + fill_(0) (fresh pages, as a new .grad)",
              lambda: torch.empty_like(pos).fill_(0), repeat=5)
        t = bench("kernel fwd: spatiotemporal_consistency_fwd",
                  lambda: _ops.spatiotemporal_consistency_fwd(pos, None, 1, 1), repeat=5)
        print(f"    -> {pos.numel() * 4 / t / 1e9:.1f} GB/s of positions read")
        den = _ops.spatiotemporal_consistency_fwd(pos, None, 1, 1)[1]
        g1 = torch.ones(())
        t = bench("kernel bwd: spatiotemporal_consistency_bwd (allocates grad)",
                  lambda: _ops.spatiotemporal_consistency_bwd(g1, pos, None, den, 1, 1), repeat=5)
        print(f"    -> {2 * pos.numel() * 4 / t / 1e9:.1f} GB/s read+write")
        p = pos.clone().requires_grad_()
        bench("eager fwd+bwd", lambda: (reference.spatiotemporal_consistency_loss(p).backward(),
                                        setattr(p, "grad", None)), repeat=3)
        del dst, p


def markdown(meta: dict, cmdline: str) -> str:
    lines = [f"Written by `{cmdline}`: backend `{meta['sirenpose_backend']}`, torch {meta['torch']}, "
             f"{meta['torch_threads']} threads, {meta.get('cpu_model', 'CPU model not recorded')}, "
             f"measured {meta['date']}, 1-min load average {meta['loadavg_start'][0]:.2f} at start.", "",
             "| section | call | min | median |", "|---|---|---|---|"]
    lines += [f"| {r['section']} | {r['label']} | {harness.fmt_time(r['min_s'])} | "
              f"{harness.fmt_time(r['median_s'])} |" for r in ROWS]
    return "\n".join(lines) + "\n"


def write(out_dir: str, stem: str, cmdline: str) -> None:
    meta = harness.machine_info(torch.device("cpu"))
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, stem + ".json"), "w") as f:
        json.dump({"command": cmdline, "meta": meta, "rows": ROWS}, f, indent=1)
    with open(os.path.join(out_dir, stem + ".md"), "w") as f:
        f.write(markdown(meta, cmdline))
    print(f"wrote {os.path.join(out_dir, stem)}.json and .md")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--large", action="store_true")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"))
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"backend {sirenpose_loss.backend()}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"1-min load {os.getloadavg()[0]:.2f}")
    if args.large:
        large()
    else:
        tiny()
    cmdline = "python benchmarks/profile_overhead.py" + (f" --threads {args.threads}" if args.threads else "") \
        + (" --large" if args.large else "")
    write(args.out, "overhead_large" if args.large else "overhead", cmdline)


if __name__ == "__main__":
    main()
