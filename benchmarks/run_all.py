"""Runs every CPU loss benchmark and writes benchmarks/RESULTS.md.

    python benchmarks/run_all.py [--quick] [--device cpu|cuda] [--out benchmarks/results/]
                                 [--report-only] [--results-md PATH]

Each bench_<loss>.py runs in its own process (fresh allocator, fresh torch.compile caches) and
writes results/<loss>.json + .md; this script then evaluates the performance targets on those
numbers and writes the report. --report-only rebuilds the report from existing JSON. Every
sentence about the machine comes from the metadata the harness measured with the numbers. The
exit status is 1 when a loss's sweep failed or `ours` failed the correctness gate in any case.
"""
import argparse
import datetime
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402

BENCHES = [
    ("spatiotemporal_consistency", "bench_spatiotemporal_consistency.py"),
    ("keypoint_match", "bench_keypoint_match.py"),
    ("sirenpose", "bench_sirenpose.py"),
    ("rigidity", "bench_rigidity.py"),
    ("arap", "bench_arap.py"),
]
GRAPH_FAMILY = ("rigidity", "arap")  # memory target: gradients + 16 B per edge, not + 1 MB
MB = harness.MB


def _build_running() -> bool:
    r = subprocess.run(["pgrep", "-f", "pip install"], capture_output=True, text=True)
    return bool(r.stdout.strip())


def _wait_for_builds(max_wait_s: float = 1800) -> None:
    t0 = time.time()
    while _build_running() and time.time() - t0 < max_wait_s:
        print("a `pip install` (extension build) is running; waiting 20 s ...", flush=True)
        time.sleep(20)


def _wait_for_quiet(max_wait_s: float, threshold: float = 0.5) -> None:
    """Waits (at most max_wait_s) for a 2-s window in which other processes use < threshold cores."""
    t0 = time.time()
    while time.time() - t0 < max_wait_s:
        probe = harness.CpuLoad()
        time.sleep(2)
        other = probe.other_cores()
        if other is None or other < threshold:
            return
        print(f"other processes use {other:.2f} cores; waiting for a quieter moment ...", flush=True)


def run_benches(args) -> list:
    """Runs every sweep (all of them, even after a failure); returns the scripts that failed."""
    failed = []
    for stem, script in BENCHES:
        _wait_for_builds()
        _wait_for_quiet(args.wait_quiet)
        cmd = [sys.executable, os.path.join(HERE, script), "--device", args.device, "--out", args.out]
        if args.quick:
            cmd.append("--quick")
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        print("$ " + " ".join(cmd), flush=True)
        if subprocess.run(cmd).returncode != 0:
            failed.append(script)
    return failed


def _stem(stem: str, args) -> str:
    return stem + (".quick" if args.quick else "") + ("" if args.device == "cpu" else "." + args.device)


def load_results(args) -> dict:
    out = {}
    for stem, _ in BENCHES:
        path = os.path.join(args.out, _stem(stem, args) + ".json")
        if os.path.exists(path):
            with open(path) as f:
                out[stem] = json.load(f)
    return out


# ------------------------------------------------------------------------------------------
# Targets
# ------------------------------------------------------------------------------------------

def _iqr_overlap(rec, a, b, mode="full") -> bool:
    ta, tb = rec["times"][a][mode], rec["times"][b][mode]
    return not (ta["q3_s"] < tb["q1_s"] or tb["q3_s"] < ta["q1_s"])


_WITH_CPU = False  # also quote the process-CPU-time ratio (set for one-thread runs)


def _ratio_line(rec, base, mode="full") -> str:
    r = harness.speedup(rec, base, mode)
    t = rec["times"]
    s = (f"{r:.2f}x ({harness.fmt_time(t[base][mode]['median_s'])} {base} / "
         f"{harness.fmt_time(t['ours'][mode]['median_s'])} ours")
    c = harness.speedup(rec, base, mode, key="cpu_median_s") if _WITH_CPU else None
    if c is not None:
        s += f"; CPU time {c:.2f}x"
    if rec.get("other_cores") is not None:
        s += f"; other load {rec['other_cores']:.2f}"
    return s + ")"


CONTENDED = 0.3  # cores used by other processes above which a timing is flagged


def _verdict(ok: bool, close: bool = False, recs=()) -> str:
    v = "**met**" if ok else ("**missed** (within the run-to-run spread)" if close else "**missed**")
    loads = [r.get("other_cores") for r in recs if r.get("other_cores") is not None]
    if loads and max(loads) > CONTENDED:
        v += " (contended)"
    return v


def evaluate_targets(results: dict, with_cpu: bool = False) -> list:
    """Returns Markdown lines; every number comes from the JSON."""
    global _WITH_CPU
    _WITH_CPU = with_cpu
    lines = []
    all_recs = [(stem, r) for stem, res in results.items() for r in res["cases"]]
    have = {stem: res for stem, res in results.items()}

    def has(rec, *providers):
        return all(p in rec["times"] for p in providers)

    lines.append("| # | target | case | measured | verdict |")
    lines.append("|---|---|---|---|---|")
    # 0. The correctness gate (ours against the float64 reference).
    checked = [(stem, r) for stem, r in all_recs if "ours" in r["check"]]
    if checked:
        bad = [f"{stem} {label}" for stem, res in results.items() for label in harness.mismatches(res["cases"])]
        worst = max(checked, key=lambda sr: max(sr[1]["check"]["ours"]["rel_err_loss"],
                                                sr[1]["check"]["ours"]["rel_err_grad"]) / sr[1]["check"]["ours"].get("tol", 1e-3))
        lines.append(f"| 0 | loss and gradients of ours within the derived bound of the float64 reference | "
                     f"all {len(checked)} cases | closest to the bound: {worst[0]} {worst[1]['label']}: "
                     f"{harness._check_cell(worst[1]['check']['ours'])}"
                     + (f"; outside: {'; '.join(bad)}" if bad else "") + f" | {_verdict(not bad)} |")
    # 1. SCL large >= 4x vs eager.
    scl = [r for r in have.get("spatiotemporal_consistency", {}).get("cases", []) if "scl_4x" in r["tags"]]
    for r in scl:
        if not has(r, "ours", "eager"):
            continue
        s = harness.speedup(r, "eager")
        lines.append(f"| 1 | SCL fwd+bwd ≥ 4x faster than eager at T=32, M ∈ {{1e5, 1e6}} | {r['label']} | "
                     f"{_ratio_line(r, 'eager')} | {_verdict(s >= 4.0, recs=[r])} |")
    if not scl:
        lines.append("| 1 | SCL fwd+bwd ≥ 4x faster than eager at T=32, M ∈ {1e5, 1e6} | - | not measured "
                     "(needs the full sweep) | not evaluated |")
    # 2. Keypoint losses tiny >= 5x vs eager.
    for stem, name in (("keypoint_match", "KML"), ("sirenpose", "SirenPose")):
        tiny = [r for r in have.get(stem, {}).get("cases", []) if "tiny_5x" in r["tags"]]
        for r in tiny:
            if not has(r, "ours", "eager"):
                continue
            s = harness.speedup(r, "eager")
            lines.append(f"| 2 | {name} fwd+bwd ≥ 5x faster than eager at B=1, K=17 | {r['label']} | "
                         f"{_ratio_line(r, 'eager')} | {_verdict(s >= 5.0, recs=[r])} |")
        if not tiny:
            lines.append(f"| 2 | {name} fwd+bwd ≥ 5x faster than eager at B=1, K=17 | - | not measured | not evaluated |")
    # 3. Never slower than eager (full), every case.
    cmp_recs = [(stem, r) for stem, r in all_recs if has(r, "ours", "eager")]
    if cmp_recs:
        slower = [(stem, r) for stem, r in cmp_recs if harness.speedup(r, "eager") < 1.0]
        worst_stem, worst = min(cmp_recs, key=lambda sr: harness.speedup(sr[1], "eager"))
        close = all(_iqr_overlap(r, "ours", "eager") for _, r in slower)
        detail = (f"worst: {worst_stem} {worst['label']}: {_ratio_line(worst, 'eager')}; "
                  f"{len(slower)} of {len(cmp_recs)} cases slower")
        if slower:
            detail += " (" + "; ".join(f"{r['label']}: {harness.speedup(r, 'eager'):.2f}x" for _, r in slower) + ")"
        lines.append(f"| 3 | fwd+bwd never slower than eager, any size | all {len(cmp_recs)} cases | {detail} | "
                     f"{_verdict(not slower, bool(slower) and close, [r for _, r in slower] or [worst])} |")
        for mode in ("forward", "backward"):
            ws, wr = min(cmp_recs, key=lambda sr: harness.speedup(sr[1], "eager", mode))
            n_slow = sum(harness.speedup(r, "eager", mode) < 1.0 for _, r in cmp_recs)
            lines.append(f"| 3 (info) | {mode} alone vs eager | all {len(cmp_recs)} cases | worst: {ws} {wr['label']}: "
                         f"{_ratio_line(wr, 'eager', mode)}; {n_slow} cases slower | (not a target) |")
    # 4. Not slower than torch.compile at the large sizes.
    large = [(stem, r) for stem, r in all_recs if r["large"] and has(r, "ours", "compile")]
    for stem, r in large:
        s = harness.speedup(r, "compile")
        close = s < 1.0 and _iqr_overlap(r, "ours", "compile")
        lines.append(f"| 4 | fwd+bwd not slower than torch.compile at large sizes | {stem}: {r['label']} | "
                     f"{_ratio_line(r, 'compile')} | {_verdict(s >= 1.0, close, [r])} |")
    if not large:
        lines.append("| 4 | fwd+bwd not slower than torch.compile at large sizes | - | not measured | not evaluated |")
    # 5. Peak memory <= grads + 1 MB.
    mem = [(stem, r) for stem, r in all_recs if "ours" in r["memory"] and stem not in GRAPH_FAMILY]
    if mem:
        over = [(stem, r, r["memory"]["ours"]["peak_bytes"] - r["grad_bytes"]) for stem, r in mem]
        bad = [(s, r, o) for s, r, o in over if o > MB]
        ws, wr, wo = max(over, key=lambda x: x[2])
        detail = (f"largest excess over the gradients: {ws} {wr['label']}: peak "
                  f"{harness.fmt_bytes(wr['memory']['ours']['peak_bytes'])}, gradients "
                  f"{harness.fmt_bytes(wr['grad_bytes'])}, excess {harness.fmt_bytes(wo)}")
        if bad:
            detail += "; over 1 MB: " + "; ".join(f"{r['label']} (+{harness.fmt_bytes(o)})" for _, r, o in bad)
        lines.append(f"| 5 | peak memory of fwd+bwd (ours) ≤ gradients + 1 MB above the inputs | all {len(mem)} cases | "
                     f"{detail} | {_verdict(not bad)} |")
    lines += graph_family_targets(have)
    return lines


def graph_family_targets(have: dict) -> list:
    """The neighbour-graph losses: the trio's speed-ups and memory, ARAP's speed-up."""
    lines = []
    for r in [r for r in have.get("rigidity", {}).get("cases", []) if "trio_5x" in r["tags"]]:
        for base, goal in (("eager", 5.0), ("compile", 1.5)):
            if "ours" in r["times"] and base in r["times"]:
                s = harness.speedup(r, base)
                lines.append(f"| 6 | rigidity trio fwd+bwd ≥ {goal:g}x faster than {base} | {r['label']} | "
                             f"{_ratio_line(r, base)} | {_verdict(s >= goal, recs=[r])} |")
        if "ours" in r["memory"]:
            excess = r["memory"]["ours"]["peak_bytes"] - r["grad_bytes"]
            per_edge = excess / r["params"]["E"]
            lines.append(f"| 7 | rigidity trio peak memory ≤ gradients + 16 B per edge | {r['label']} | "
                         f"{harness.fmt_bytes(excess)} above the gradients = {per_edge:.1f} B per edge | "
                         f"{_verdict(per_edge <= 16.0)} |")
    for r in [r for r in have.get("arap", {}).get("cases", []) if "arap_5x" in r["tags"]]:
        if "ours" in r["times"] and "eager" in r["times"]:
            s = harness.speedup(r, "eager")
            lines.append(f"| 8 | ARAP fwd+bwd ≥ 5x faster than eager | {r['label']} | "
                         f"{_ratio_line(r, 'eager')} | {_verdict(s >= 5.0, recs=[r])} |")
    return lines


# ------------------------------------------------------------------------------------------
# Report
# ------------------------------------------------------------------------------------------

def method_text(meta: dict) -> str:
    cores = meta.get("os_cpu_count", "?")
    return f"""\
* **Providers.** `ours` = the package's functional loss (argument checks, the registered op, our
  kernels); `eager` = `sirenpose_loss.reference` (pure PyTorch, autograd backward);
  `compile` = `torch.compile(reference, dynamic=False)`, default mode, compiled once per shape
  (`torch._dynamo.reset()` before each case). The compile column "compile warm-up" is the time of
  the first forward+backward call (compilation of both graphs, with Inductor's on-disk cache
  possibly warm from earlier runs); it is excluded from every timing.
* **Modes.** `forward` = the loss call with inputs requiring grad (graph built); `backward` =
  `loss.backward()` alone, the forward re-run outside the timed region before every sample;
  `full` = `loss = f(...); loss.backward()` (the primary metric). `.grad` is reset to `None`
  outside the timed region before every sample. Keypoint losses: `pred` requires grad, `target`
  does not (ground truth); SCL: `positions` requires grad. float32, `reduction="mean"` unless a
  row says otherwise (`reduction=none` rows sum the returned terms in both providers).
* **Timing.** Wall clock (`time.perf_counter_ns`) around one call per sample, after ≥2 warm-up
  fwd+bwd calls per provider, with the garbage collector off. Samples of the three providers are
  taken in interleaved rounds per mode (budgets in the JSON), so load from other processes hits
  them alike. Tables show median ±IQR/2; the JSON also has the quartiles, the minimum and the
  sample count. Speed-ups are ratios of medians.
* **Contention.** The "other load" column is the CPU (in cores, of {cores}) that *other* processes
  used while the case was timed (machine busy jiffies from `/proc/stat` minus this process's,
  steal included). A case above the budget's threshold was re-measured when a quiet moment was
  seen, and the attempt with the least other load was kept; the choice is made on that external
  load figure, never on the timings.
* **Correctness gate.** Before timing, loss and gradients of every provider are compared with the
  reference run in float64 on the same values (max abs. difference / max abs. value). The bound
  is 16 · ω0 · u (u the unit roundoff of the dtype, ω0 = 30; derived in `harness.tolerance`); a
  sweep in which `ours` exceeds it exits with status 1. `python benchmarks/gate.py` runs the gate
  alone at small sizes.
* **Peak memory.** One fwd+bwd under `torch.profiler.profile(profile_memory=True)`: the profiler
  records every allocation and free of torch's CPU allocator (`c10::CPUAllocator`), including the
  buffers that ATen ops, Inductor-generated code and our C++ kernels allocate with `at::empty`.
  Replaying those events in time order gives the live bytes over the call; the peak relative to
  the start (inputs alive, `.grad` = `None`) is "peak above the inputs". It includes the
  gradients themselves (they stay allocated), so the target reads "peak ≤ gradient bytes + 1 MB".
  Not seen: memory a kernel takes from `malloc`/`std::vector` directly, the OpenMP runtime,
  Python objects. The JSON also holds a resident-set cross-check (`VmHWM` growth after
  `echo 5 > /proc/self/clear_refs`), which is coarse (pages, malloc reuse) and meaningful only
  for the large cases.
"""


def machine_section(results: dict) -> list:
    """Sentences from the metadata each sweep recorded (nothing assumed about the machine)."""
    m = next(iter(results.values()))["meta"]
    cpu = m.get("lscpu_model_name") or m.get("cpu_model", "CPU model not recorded")
    if m.get("lscpu_hypervisor_vendor"):
        cpu += f" ({m['lscpu_hypervisor_vendor']} guest)"
    lines = [
        f"* CPU: {cpu}, {m.get('lscpu_cpus', m.get('os_cpu_count', '?'))} CPUs, "
        f"{m.get('lscpu_threads_per_core', '?')} thread(s) per core, SIMD flags: "
        f"{m.get('lscpu_flags', '?')}; memory {m.get('mem_total', '?')}; device `{m.get('device', '?')}`",
        f"* torch {m['torch']}, {m['torch_threads']} intra-op threads, Python {m['python']}, {m['platform']}",
        f"* sirenpose_loss backend: `{m['sirenpose_backend']}`",
    ]
    for stem, res in results.items():
        mm = res["meta"]
        other = [r["other_cores"] for r in res["cases"] if r.get("other_cores") is not None]
        retried = sum(len(r.get("attempts_other_cores", [])) > 1 for r in res["cases"])
        lines.append(f"* `{stem}`: " + (f"measured {mm['date']}, " if mm.get("date") else "")
                     + f"commit {mm.get('git_commit', '?')}"
                     + (" + uncommitted package changes" if mm.get("git_dirty_package") else "")
                     + (f", `_C.so` {mm['extension_sha1']}" if mm.get("extension_sha1") else "")
                     + f", run {res['wall_s']:.0f} s, 1-min load average {mm['loadavg_start'][0]:.2f} at "
                     f"start, {mm['loadavg_end'][0]:.2f} at end; CPU used by other processes while timing: "
                     + (f"{min(other):.2f}–{max(other):.2f} cores across cases" if other else "n/a")
                     + f"; {retried} case(s) re-measured")
    return lines


def rss_crosscheck(results: dict, min_peak: int = 64 * MB) -> str:
    """How well the resident-set cross-check agrees with the profiler where it is meaningful."""
    pairs = []
    for res in results.values():
        for r in res["cases"]:
            for p, m in r["memory"].items():
                rss = m.get("rss_hwm_delta_bytes")
                if rss is not None and m["peak_bytes"] >= min_peak:
                    pairs.append((r["label"], p, m["peak_bytes"], rss))
    if not pairs:
        return ""
    worst = max(pairs, key=lambda x: abs(x[3] - x[2]) / x[2])
    return (f"* **Memory cross-check (measured).** For the {len(pairs)} (case, provider) pairs whose "
            f"profiler peak is ≥ {min_peak // MB} MB, the resident-set growth differs from the profiler "
            f"peak by at most {100 * abs(worst[3] - worst[2]) / worst[2]:.1f} % ({worst[0]}, {worst[1]}: "
            f"{harness.fmt_bytes(worst[2])} vs {harness.fmt_bytes(worst[3])}). Below that, malloc reuses "
            "pages it already holds and the resident-set figure is not meaningful.\n")


def write_report(results: dict, args, path: str, cmdline: str, appendix: dict = None) -> None:
    backend = {res["meta"]["sirenpose_backend"] for res in results.values()}
    quick = any(res["quick"] for res in results.values())
    lines = ["# sirenpose-loss CPU benchmarks", "",
             f"Written {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')} by `{cmdline}`"
             + (" (quick sweep: a subset of the sizes, short budgets)" if quick else "") + ".", ""]
    if backend != {"compiled"}:
        lines += [f"> **Warning:** backend {sorted(backend)}: `ours` ran the pure-PyTorch reference, so "
                  "these numbers compare the reference with itself and the targets are not evaluated "
                  "meaningfully.", ""]
    lines += ["## Machine (as recorded by each sweep)", ""] + machine_section(results) + [""]
    lines += ["## Method", "", method_text(next(iter(results.values()))["meta"]) + rss_crosscheck(results)]
    threads = results[next(iter(results))]["meta"]["torch_threads"]
    lines += ["## Targets: forward+backward of ours", ""]
    if appendix:
        lines += [f"### {threads} intra-op threads (torch's default here), wall clock", ""]
    lines += evaluate_targets(results, with_cpu=threads == 1) + [""]
    if appendix:
        lines += ["### 1 intra-op thread (appendix run), wall clock; CPU-time ratio in brackets", ""]
        lines += evaluate_targets(appendix, with_cpu=True) + [""]
    lines += ["Speed-ups are medians of ours vs the named provider (>1 = ours faster). \"Large\" sizes "
              "for target 4 are SCL M ≥ 1e5 (both T) and the keypoint losses at B = 4096. \"Within the "
              "run-to-run spread\" means the inter-quartile ranges of the two providers overlap.", ""]
    titles = {"spatiotemporal_consistency": "Spatio-temporal consistency loss (SCL)",
              "keypoint_match": "Keypoint match loss (KML)",
              "sirenpose": "SirenPose loss (and sin_graph_consistency_loss)",
              "rigidity": "Rigidity trio and single neighbour-graph losses",
              "arap": "ARAP loss"}
    for stem, res in results.items():
        lines += [f"## {titles.get(stem, stem)}", "", res["title"] + ".", ""]
        if stem == "sirenpose":
            lines += ["`sirenpose …` rows time `sirenpose_loss` (L_pos + λ·L_geo); `sin_graph …` rows time "
                      "`sin_graph_consistency_loss`, the graph term alone, which runs the same kernels with "
                      "`with_pos=False`. K=17 uses the COCO-17 skeleton (E=19), K=100 a connected random "
                      "graph (chain + random extra edges, E=200). ω0 = 30, λ_geo = 1.", ""]
        lines += [harness.markdown_tables(res, heading_level=3)]
        if res["meta"]["torch_threads"] == 1:
            lines += ["### Forward + backward, process CPU time (1 thread: immune to lost time slices)", "",
                      harness.cpu_time_table(res)]
    if appendix:
        builds = ", ".join(f"`{st}` {r['meta'].get('git_commit', '?')} (`_C.so` {r['meta'].get('extension_sha1', '?')})"
                           for st, r in appendix.items())
        lines += ["## Appendix: one intra-op thread, process CPU time", "", f"Builds: {builds}.", "",
                  "The same sweep run with `torch.set_num_threads(1)` (`python benchmarks/run_all.py --threads 1`, "
                  "results in `results/threads1/`). With one thread, the process CPU time of a call does not "
                  "count time slices lost to other processes and no OpenMP barrier can stall. "
                  "Medians of fwd+bwd.", ""]
        for stem, res in appendix.items():
            lines += [f"### {titles.get(stem, stem)} (1 thread)", "", harness.cpu_time_table(res)]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--out", default=None,
                   help="default benchmarks/results (benchmarks/results/threads<N> with --threads N)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--wait-quiet", type=float, default=60,
                   help="seconds to wait, before each loss, for the other processes to go quiet")
    p.add_argument("--report-only", action="store_true", help="only rebuild the report from the JSON")
    p.add_argument("--results-md", default=None,
                   help="report path (default benchmarks/RESULTS.md; results/RESULTS.quick.md with --quick)")
    args = p.parse_args(argv)
    if args.out is None:
        args.out = os.path.join(HERE, "results", f"threads{args.threads}" if args.threads else "")
    failed = [] if args.report_only else run_benches(args)
    results = load_results(args)
    if not results:
        sys.exit(f"no results in {args.out}")
    if args.results_md:
        path = args.results_md
    elif args.quick or args.threads:
        path = os.path.join(args.out, "RESULTS" + (".quick" if args.quick else "")
                            + (f".threads{args.threads}" if args.threads else "") + ".md")
    else:
        path = os.path.join(HERE, "RESULTS.md")
    cmdline = ("python benchmarks/run_all.py" + (" --report-only" if args.report_only else "") + (" --quick" if args.quick else "")
               + (f" --threads {args.threads}" if args.threads else ""))
    appendix = None
    if not args.threads and not args.quick:
        a = argparse.Namespace(**vars(args))
        a.out = os.path.join(HERE, "results", "threads1")
        appendix = load_results(a) or None
    write_report(results, args, path, cmdline, appendix)
    print(f"wrote {path}")
    bad = [f"{stem}: {label}" for stem, res in results.items() for label in harness.mismatches(res["cases"])]
    if failed or bad:
        sys.exit("benchmark sweep failed: " + "; ".join(failed + [f"gate mismatch in {b}" for b in bad]))


if __name__ == "__main__":
    main()
