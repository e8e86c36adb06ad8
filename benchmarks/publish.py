"""Writes every published figure into README.md and docs/*.md, from the committed results.

    python benchmarks/publish.py          # rewrite the marked blocks
    python benchmarks/publish.py --check  # exit 1 if any marked block differs from its source

A figure lives between ``<!-- figures:NAME:begin -->`` and ``<!-- figures:NAME:end -->``. When the
begin marker ends its line the block is a paragraph or a table; otherwise it is a phrase inside a
sentence. NAME is a key of ``blocks()``: the benchmark figures below (from benchmarks/results/)
and the examples' (examples/figures.py, from examples/results/). Nothing is measured here: the
numbers come from the JSON that the benchmark and example scripts wrote.
"""
import argparse
import glob
import json
import os
import re
import sys
from typing import Callable, Dict, List, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
RESULTS = os.path.join(HERE, "results")
sys.path.insert(0, os.path.join(REPO, "examples"))

import figures as example_figures  # noqa: E402

MARKER = re.compile(r"<!-- figures:([\w.-]+):begin -->(.*?)<!-- figures:\1:end -->", re.S)
LOSSES = ("spatiotemporal_consistency", "keypoint_match", "sirenpose")
SHORT = {"spatiotemporal_consistency": "SCL", "keypoint_match": "KML", "sirenpose": "SirenPose"}
# The README's performance table: the cases each target names, and the largest of each loss.
PERF_CASES = [
    ("spatiotemporal_consistency", "T=32, M=1e5, D=3"),
    ("spatiotemporal_consistency", "T=32, M=1e6, D=3"),
    ("spatiotemporal_consistency", "T=8, M=1e6, D=3"),
    ("keypoint_match", "B=1, K=17, D=2"),
    ("keypoint_match", "B=4096, K=100, D=2"),
    ("sirenpose", "sirenpose B=1, K=17, E=19, D=2"),
    ("sirenpose", "sirenpose B=4096, K=100, E=200, D=2"),
    ("sirenpose", "sirenpose B=256, K=100, E=200, D=2"),
]


def _load(path: str) -> dict:
    with open(path) as f:
        return json.load(f)


def _fmt_time(s: float) -> str:
    if s < 1e-3:
        return f"{s * 1e6:.3g} µs"
    if s < 1:
        return f"{s * 1e3:.3g} ms"
    return f"{s:.3g} s"


def _sweeps() -> Dict[str, dict]:
    return {stem: _load(os.path.join(RESULTS, stem + ".json")) for stem in LOSSES}


def _ratio(rec: dict, base: str) -> float:
    t = rec["times"]
    return t[base]["full"]["median_s"] / t["ours"]["full"]["median_s"]


def _all_cases() -> List[Tuple[str, dict]]:
    return [(stem, r) for stem, res in _sweeps().items() for r in res["cases"]
            if "eager" in r["times"] and "ours" in r["times"]]


# ------------------------------------------------------------------------------- blocks
def perf_machine() -> str:
    sweeps = _sweeps()
    m = next(iter(sweeps.values()))["meta"]
    cpu = m.get("lscpu_model_name") or m.get("cpu_model", "a CPU whose model was not recorded")
    if m.get("lscpu_hypervisor_vendor"):
        cpu += f" ({m['lscpu_hypervisor_vendor']} guest)"
    other = max(r["other_cores"] for res in sweeps.values() for r in res["cases"]
                if r.get("other_cores") is not None)
    return (f"Measured with `python benchmarks/run_all.py` on {cpu}, {m['os_cpu_count']} logical CPUs, "
            f"{m['torch_threads']} threads, torch {m['torch']}; other processes used at most "
            f"{other:.2f} cores while a case was timed.")


def perf_table() -> str:
    sweeps = _sweeps()
    lines = ["| loss | case | ours | eager | torch.compile | vs eager | vs compile |",
             "|---|---|---|---|---|---|---|"]
    for stem, label in PERF_CASES:
        rec = next(r for r in sweeps[stem]["cases"] if r["label"] == label)
        t = {p: rec["times"][p]["full"]["median_s"] for p in ("ours", "eager", "compile")}
        case = label.replace("sirenpose ", "")
        lines.append(f"| {SHORT[stem]} | {case} | {_fmt_time(t['ours'])} | {_fmt_time(t['eager'])} | "
                     f"{_fmt_time(t['compile'])} | {_ratio(rec, 'eager'):.1f}x | {_ratio(rec, 'compile'):.2f}x |")
    return "\n".join(lines)


def perf_vs_eager() -> str:
    cases = _all_cases()
    worst_stem, worst = min(cases, key=lambda sr: _ratio(sr[1], "eager"))
    slower = sum(_ratio(r, "eager") < 1.0 for _, r in cases)
    head = (f"Never slower than eager in any of the {len(cases)} cases of the sweep" if not slower
            else f"Slower than eager in {slower} of the {len(cases)} cases of the sweep")
    return (f"- {head} (least speed-up {_ratio(worst, 'eager'):.2f}x: {SHORT[worst_stem]} "
            f"{worst['label'].replace('sirenpose ', '')}).")


def perf_memory() -> str:
    # reduction="none" returns one value per term: that output, not scratch, is above the gradients.
    cases = [(s, r) for s, r in _all_cases() if "ours" in r["memory"] and "eager" in r["memory"]
             and "reduction=none" not in r["label"]]
    excess = max(r["memory"]["ours"]["peak_bytes"] - r["grad_bytes"] for _, r in cases)
    ratios = [r["memory"]["eager"]["peak_bytes"] / r["memory"]["ours"]["peak_bytes"] for _, r in cases]
    return (f"- Peak memory of forward + backward above the inputs is the gradients plus at most "
            f"{excess} bytes in every reduced case (torch's allocator, traced by the profiler; "
            f"`reduction=\"none\"` adds its per-term output); eager needs "
            f"{min(ratios):.1f}-{max(ratios):.0f}x more.")


def perf_compile_wins() -> str:
    wins = [(s, r) for s, r in _all_cases() if "compile" in r["times"] and _ratio(r, "compile") < 1.0]
    if not wins:
        return "- `torch.compile` is slower than ours in every case of the sweep."
    listed = "; ".join(f"{SHORT[s]} {r['label'].replace('sirenpose ', '')}: {_ratio(r, 'compile'):.2f}x"
                       for s, r in wins)
    return f"- `torch.compile` is faster than ours in {len(wins)} of {len(_all_cases())} cases ({listed})."


GRAPH_LOSSES = ("rigidity", "arap")  # the neighbour-graph sweeps, each its own JSON


def perf_graph() -> str:
    """Every case of the neighbour-graph sweeps, with the memory above the gradients per edge."""
    lines = ["| case | ours | eager | torch.compile | vs eager | vs compile | ours' peak above the gradients |",
             "|---|---|---|---|---|---|---|"]
    for stem in GRAPH_LOSSES:
        for rec in _load(os.path.join(RESULTS, stem + ".json"))["cases"]:
            t = {p: rec["times"][p]["full"]["median_s"] for p in ("ours", "eager", "compile")}
            excess = rec["memory"]["ours"]["peak_bytes"] - rec["grad_bytes"]
            lines.append(f"| {rec['label']} | {_fmt_time(t['ours'])} | {_fmt_time(t['eager'])} | "
                         f"{_fmt_time(t['compile'])} | {_ratio(rec, 'eager'):.1f}x | "
                         f"{_ratio(rec, 'compile'):.2f}x | {excess / rec['params']['E']:.1f} B per edge |")
    return "\n".join(lines)


def overhead() -> str:
    res = _load(os.path.join(RESULTS, "overhead.json"))
    rows = {r["key"]: r for r in res["rows"] if r.get("key")}
    m = res["meta"]
    return (f"- At B=1 most of the time is PyTorch's own machinery: `(a * 2).sum().backward()` on 34 "
            f"floats costs {_fmt_time(rows['autograd_floor']['min_s'])}, the whole KML call through "
            f"`loss.backward()` {_fmt_time(rows['kml_full_ours']['min_s'])}, and our forward kernel "
            f"alone {_fmt_time(rows['kml_kernel_fwd']['min_s'])} (`{res['command']}`, fastest of "
            f"repeated loops, {m['torch_threads']} threads, 1-min load average "
            f"{m['loadavg_start'][0]:.1f}).")


def knn() -> str:
    res = _load(os.path.join(RESULTS, "knn_graph.json"))
    row = max((r for r in res["rows"] if r["provider"] == "ours" and not r["skipped"] and r["k"] == 8),
              key=lambda r: r["M"])
    return (f"kNN over {row['M']:,} random 3-D points with k = 8: {row['median_s']:.1f} s "
            f"(median) and {row['peak_mb']:.0f} MB peak, {row['output_mb']:.0f} MB of it the "
            f"returned edge_index ({res['meta'].get('cpu_model', 'CPU model not recorded')}, "
            f"{row['threads']} threads, 1-min load average {res['loadavg'][0]:.1f}).")


def blocks() -> Dict[str, Callable[[], str]]:
    out = {"perf-machine": perf_machine, "perf-table": perf_table, "perf-vs-eager": perf_vs_eager,
           "perf-memory": perf_memory, "perf-compile-wins": perf_compile_wins,
           "perf-overhead": overhead, "knn": knn, "perf-graph": perf_graph}
    out.update(example_figures.BLOCKS)
    return out


# ------------------------------------------------------------------------------- markers
def documents() -> List[str]:
    return [os.path.join(REPO, "README.md")] + sorted(glob.glob(os.path.join(REPO, "docs", "*.md")))


def render(text: str, table: Dict[str, Callable[[], str]]) -> str:
    """``text`` with every marked block replaced by its generated content."""
    def fill(m):
        name, body = m.group(1), m.group(2)
        if name not in table:
            raise KeyError(f"unknown figure {name!r}; known: {', '.join(sorted(table))}")
        new = table[name]().strip()
        if body.startswith("\n"):
            new = f"\n{new}\n"
        return f"<!-- figures:{name}:begin -->{new}<!-- figures:{name}:end -->"
    return MARKER.sub(fill, text)


def stale(paths=None) -> List[str]:
    """Documents whose marked blocks differ from what ``render`` writes."""
    table = blocks()
    out = []
    for path in paths or documents():
        with open(path) as f:
            text = f.read()
        if render(text, table) != text:
            out.append(os.path.relpath(path, REPO))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="only report stale documents (exit 1)")
    args = p.parse_args(argv)
    if args.check:
        bad = stale()
        for path in bad:
            print(f"{path}: a figure differs from its results; run python benchmarks/publish.py")
        return 1 if bad else 0
    table = blocks()
    for path in documents():
        with open(path) as f:
            text = f.read()
        new = render(text, table)
        if new != text:
            with open(path, "w") as f:
                f.write(new)
            print(f"updated {os.path.relpath(path, REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
