"""Shared benchmark harness of sirenpose-loss.

For every case of a sweep it times three providers on the same inputs:

* ``ours``    - the package's functional loss (``sirenpose_loss.<loss>``: argument checks,
                ``torch.autograd.Function``, C++/CUDA kernels);
* ``eager``   - the pure-PyTorch reference (``sirenpose_loss.reference.<loss>``), autograd backward;
* ``compile`` - ``torch.compile(reference, dynamic=False)`` in the default mode, compiled once per
                shape (``torch._dynamo.reset()`` before every case); the first call (compilation of
                forward and backward) is timed separately and excluded from the timings.

and three modes (Liger-Kernel's naming):

* ``forward``  - the loss call alone, inputs requiring grad (so the autograd graph is built);
* ``backward`` - ``loss.backward()`` alone; the forward is re-run outside the timed region
                 before every sample (no ``retain_graph``);
* ``full``     - ``loss = f(...); loss.backward()`` (the primary metric).

Every sample is one call. Gradients are reset to ``None`` outside the timed region (as
``optimizer.zero_grad(set_to_none=True)`` would). Samples of the three providers are taken in
interleaved rounds so that a burst of load from other processes on the shared cores hits all of
them alike; the report gives the median, the inter-quartile range and the minimum. The CPU time
that other processes used while a case was timed is measured from /proc (``CpuLoad``); a case
timed under more than 0.3 cores of foreign load is re-measured (up to twice, and only when a
quiet second is seen within 5 s) and the attempt with the least foreign load is kept (chosen on
that load figure, never on the timings).

Peak memory of one forward+backward above the inputs:

* CPU: ``torch.profiler.profile(profile_memory=True)`` records every allocation and free of
  torch's CPU allocator (``c10::CPUAllocator`` reports each one, including the buffers that
  ATen kernels, Inductor-generated code and our C++ kernels allocate with ``at::empty``).
  Replaying the events in time order gives the live bytes over the call; the peak of that
  curve, relative to its start (inputs already alive, ``.grad`` reset to ``None``), is the
  peak above the inputs. Memory that does not come from torch's allocator (``std::vector`` in a
  kernel, the OpenMP runtime, Python objects) is not seen. As a rough cross-check the resident
  set's high-water mark (``VmHWM`` after ``echo 5 > /proc/self/clear_refs``) is recorded too.
* CUDA: ``torch.cuda.max_memory_allocated() - memory_allocated()`` around the call after
  ``reset_peak_memory_stats()``.

The bytes of the gradients (``.grad`` of every input that requires grad) are reported beside the
peak so that "peak <= gradients + 1 MB" can be judged.

Before timing, every provider's loss and gradients are compared with the reference run in float64
(``compare_to_reference``, tolerance derived per dtype in ``tolerance``); a sweep in which ``ours``
fails that gate still writes its results, then exits with status 1.

The CUDA path (``--device cuda``: ``torch.cuda.Event`` timing, CUDA memory statistics) is written;
each result file records the device it ran on.
"""
from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, REPO)

import torch  # noqa: E402

import sirenpose_loss  # noqa: E402
from sirenpose_loss.graphs import skeleton  # noqa: E402

PROVIDERS = ("ours", "eager", "compile")
MODES = ("forward", "backward", "full")
MB = 2 ** 20


# --------------------------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------------------------

@dataclass
class Case:
    """One benchmark point.

    ``build(device)`` returns ``(args, kwargs)``; the leaf tensors that require grad are the
    inputs whose gradients are computed. ``ours`` and ``reference`` are called as
    ``fn(*args, **kwargs)`` and must return a scalar loss.
    """
    label: str
    params: dict
    build: Callable[[torch.device], Tuple[tuple, dict]]
    ours: Callable
    reference: Callable
    large: bool = False           # counts for "not slower than torch.compile at the large sizes"
    tags: Tuple[str, ...] = ()    # e.g. "scl_4x", "tiny_5x": cases a target in run_all.py names


def fmt_count(n: float) -> str:
    """1000 -> '1e3', 100000 -> '1e5', 300000 -> '3e5', 17 -> '17'."""
    n = int(n)
    if n >= 1000:
        e = int(math.floor(math.log10(n)))
        if n % 10 ** e == 0:
            return f"{n // 10 ** e}e{e}"
    return str(n)


def random_connected_graph(num_nodes: int, num_edges: int, seed: int = 0) -> torch.Tensor:
    """A chain 0-1-...-(K-1) plus distinct random extra edges (no self-loops, each undirected
    edge once) up to ``num_edges``; returns ``edge_index`` [2, E] int64."""
    g = torch.Generator().manual_seed(seed)
    edges = [(i, i + 1) for i in range(num_nodes - 1)]
    seen = {frozenset(e) for e in edges}
    while len(edges) < num_edges:
        i, j = torch.randint(0, num_nodes, (2,), generator=g).tolist()
        if i != j and frozenset((i, j)) not in seen:
            seen.add(frozenset((i, j)))
            edges.append((i, j))
    return torch.tensor(edges, dtype=torch.int64).t().contiguous()


def keypoint_graph(num_nodes: int) -> torch.Tensor:
    """K = 17: the COCO skeleton (E = 19); otherwise a random connected graph with E = 2K."""
    if num_nodes == 17:
        return skeleton("coco17").edge_index.clone()  # the 19 COCO limbs
    return random_connected_graph(num_nodes, 2 * num_nodes)


def keypoint_grid(size: str) -> List[dict]:
    """(B, K, D, weighted) points shared by the keypoint losses.

    full: B in {1, 16, 256, 4096} x K in {17, 100}, D = 2; plus B=4096, K=17, D=3 and a
    weighted row B=256, K=17, D=2 with per-keypoint confidences. quick: B in {1, 256} at K=17,
    B=256 at K=100 and the weighted row. tiny (the correctness gate): B in {1, 4}, K=17,
    unweighted and weighted.
    """
    if size == "tiny":
        return [dict(B=b, K=17, D=2, weighted=w) for b in (1, 4) for w in (False, True)]
    if size == "quick":
        grid = [dict(B=b, K=17, D=2, weighted=False) for b in (1, 256)]
        grid.append(dict(B=256, K=100, D=2, weighted=False))
        grid.append(dict(B=256, K=17, D=2, weighted=True))
        return grid
    grid = [dict(B=b, K=k, D=2, weighted=False) for k in (17, 100) for b in (1, 16, 256, 4096)]
    grid.append(dict(B=4096, K=17, D=3, weighted=False))
    grid.append(dict(B=256, K=17, D=2, weighted=True))
    return grid


def keypoint_inputs(B: int, K: int, D: int, weighted: bool, device: torch.device,
                    dtype: torch.dtype = torch.float32, seed: int = 0):
    """Normalised keypoints (target in [0, 1), pred = target + small noise); pred requires grad,
    target does not (ground truth). Returns (pred, target, weight or None)."""
    g = torch.Generator().manual_seed(seed)
    target = torch.rand(B, K, D, generator=g, dtype=torch.float64)
    pred = target + 0.02 * torch.randn(B, K, D, generator=g, dtype=torch.float64)
    weight = torch.rand(B, K, generator=g, dtype=torch.float64) if weighted else None
    pred = pred.to(device=device, dtype=dtype).requires_grad_()
    target = target.to(device=device, dtype=dtype)
    if weight is not None:
        weight = weight.to(device=device, dtype=dtype)
    return pred, target, weight


def keypoint_label(B, K, D, weighted, E=None) -> str:
    s = f"B={B}, K={K}"
    if E is not None:
        s += f", E={E}"
    s += f", D={D}"
    if weighted:
        s += ", weighted"
    return s


# --------------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------------

class Timer:
    """Seconds of one call: (wall, process CPU) on CPU; (CUDA-event time, None) on CUDA
    (untested here: no GPU). The CPU time (all threads of this process) is immune to time slices
    lost to other processes; with one intra-op thread it is the compute time of the call, with
    more it also counts OpenMP threads spinning at barriers."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        if self.cuda:
            self._start = torch.cuda.Event(enable_timing=True)
            self._end = torch.cuda.Event(enable_timing=True)

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    def time(self, fn: Callable[[], object]) -> Tuple[float, Optional[float]]:
        if self.cuda:
            torch.cuda.synchronize()
            self._start.record()
            fn()
            self._end.record()
            self._end.synchronize()
            return self._start.elapsed_time(self._end) * 1e-3, None
        c0 = time.process_time_ns()
        t0 = time.perf_counter_ns()
        fn()
        t1 = time.perf_counter_ns()
        c1 = time.process_time_ns()
        return (t1 - t0) * 1e-9, (c1 - c0) * 1e-9


def _reset_grads(grads: Sequence[torch.Tensor]) -> None:
    for t in grads:
        t.grad = None


def _one_sample(mode: str, fn: Callable, args: tuple, kwargs: dict,
                grads: Sequence[torch.Tensor], timer: Timer) -> Tuple[float, Optional[float]]:
    _reset_grads(grads)
    if mode == "forward":
        keep = []
        timer.sync()
        t = timer.time(lambda: keep.append(fn(*args, **kwargs)))
        del keep  # the graph is freed outside the timed region
        return t
    if mode == "backward":
        loss = fn(*args, **kwargs)
        timer.sync()
        t = timer.time(loss.backward)
        del loss
        return t
    if mode == "full":
        timer.sync()
        return timer.time(lambda: fn(*args, **kwargs).backward())
    raise ValueError(mode)


def _full_step(fn, args, kwargs, grads, timer) -> float:
    _reset_grads(grads)
    return timer.time(lambda: fn(*args, **kwargs).backward())[0]


def summarize(samples: Sequence[Tuple[float, Optional[float]]]) -> dict:
    """Wall-time median, quartiles, min and count; the same of the process CPU time (cpu_*)."""
    out = {}
    for prefix, vals in (("", [w for w, _ in samples]),
                         ("cpu_", [c for _, c in samples if c is not None])):
        if not vals:
            continue
        s = sorted(vals)
        q1, q3 = (statistics.quantiles(s, n=4, method="inclusive")[::2] if len(s) >= 2
                  else (s[0], s[0]))
        out.update({prefix + "median_s": statistics.median(s), prefix + "q1_s": q1,
                    prefix + "q3_s": q3, prefix + "min_s": s[0]})
    out["n"] = len(samples)
    return out


@dataclass
class Budget:
    seconds: float = 0.4        # per (provider, mode) and case, spread over the rounds
    min_samples: int = 5
    max_samples: int = 3000
    rounds: int = 3
    warmup_calls: int = 3
    warmup_seconds: float = 0.3
    # Re-measure a case (keeping the attempt during which other processes used the least CPU)
    # when other processes used more than max_other_cores on average; only for cases whose
    # timing takes less than retry_if_under_s.
    retries: int = 2
    max_other_cores: float = 0.3
    retry_if_under_s: float = 20.0
    retry_sleep_s: float = 5.0      # how long to look for a quiet moment before a retry
    slow_call_s: float = 1.0        # cases with a fwd+bwd call slower than this: >= 3 samples


def measure_times(fns: Dict[str, Callable], args, kwargs, grads, timer: Timer,
                  budget: Budget) -> Dict[str, Dict[str, dict]]:
    """Samples every (provider, mode) in interleaved rounds; returns stats[provider][mode]."""
    samples = {p: {m: [] for m in MODES} for p in fns}
    gc_was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        for mode in MODES:
            for r in range(budget.rounds):
                frac = (r + 1) / budget.rounds
                for p, fn in fns.items():
                    out = samples[p][mode]
                    need = math.ceil(budget.min_samples * frac)
                    cap = math.ceil(budget.max_samples * frac)
                    deadline = time.perf_counter() + budget.seconds / budget.rounds
                    while len(out) < cap and (len(out) < need or time.perf_counter() < deadline):
                        out.append(_one_sample(mode, fn, args, kwargs, grads, timer))
    finally:
        if gc_was_enabled:
            gc.enable()
    _reset_grads(grads)
    return {p: {m: summarize(v) for m, v in per.items()} for p, per in samples.items()}


class CpuLoad:
    """CPU time used by *other* processes while a block runs, in cores (Linux /proc; None
    elsewhere): (busy jiffies of the machine - jiffies of this process) / elapsed jiffies.
    Steal time (the hypervisor running someone else) counts as busy."""

    def __init__(self):
        self.ncpu = os.cpu_count() or 1
        self.start = self._read()

    @staticmethod
    def _read():
        try:
            with open("/proc/stat") as f:
                vals = [int(v) for v in f.readline().split()[1:9]]
            with open("/proc/self/stat") as f:
                s = f.read()
            fields = s[s.rfind(")") + 2:].split()
            own = int(fields[11]) + int(fields[12])  # utime + stime, all threads
        except (OSError, ValueError, IndexError):
            return None
        total = sum(vals)
        busy = total - vals[3] - vals[4]  # minus idle and iowait
        return busy, total, own

    def other_cores(self) -> Optional[float]:
        end = self._read()
        if self.start is None or end is None:
            return None
        d_busy, d_total, d_own = (e - s for e, s in zip(end, self.start))
        if d_total <= 0:
            return None
        return max(0.0, (d_busy - d_own) / (d_total / self.ncpu))


def wait_for_quiet(budget: Budget) -> bool:
    """Probes 1-s windows for up to budget.retry_sleep_s; True once other processes use at most
    budget.max_other_cores (then a re-measurement is worth it), False if they never did."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < budget.retry_sleep_s:
        probe = CpuLoad()
        time.sleep(1.0)
        other = probe.other_cores()
        if other is None or other <= budget.max_other_cores:
            return True
    return False


def warm_up(fn, args, kwargs, grads, timer: Timer, budget: Budget) -> float:
    """At least 2 fwd+bwd calls (up to warmup_calls within warmup_seconds); returns the last
    call's wall time."""
    t0 = time.perf_counter()
    calls = 0
    last = 0.0
    while calls < 2 or (calls < budget.warmup_calls and time.perf_counter() - t0 < budget.warmup_seconds):
        last = _full_step(fn, args, kwargs, grads, timer)
        calls += 1
    _reset_grads(grads)
    return last


# --------------------------------------------------------------------------------------------
# Memory
# --------------------------------------------------------------------------------------------

def _allocation_events(prof) -> list:
    from torch._C._profiler import _EventType
    out = []
    stack = list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        e = stack.pop()
        if e.tag == _EventType.Allocation:
            out.append(e)
        stack.extend(e.children)
    return out


def _rss_kb(field_name: str) -> Optional[int]:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def peak_rss_delta_cpu(fn, args, kwargs, grads) -> Optional[int]:
    """Resident-set high-water mark growth over one fwd+bwd (Linux; a rough cross-check: page
    granularity, malloc may reuse pages it already holds, untouched pages do not count)."""
    _reset_grads(grads)
    gc.collect()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS
    except OSError:
        return None
    before = _rss_kb("VmRSS")
    fn(*args, **kwargs).backward()
    hwm = _rss_kb("VmHWM")
    _reset_grads(grads)
    if before is None or hwm is None:
        return None
    return (hwm - before) * 1024


def peak_memory(fn, args, kwargs, grads, device: torch.device) -> dict:
    """Peak bytes above the inputs during one forward+backward, and the bytes still held after it."""
    _reset_grads(grads)
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        loss = fn(*args, **kwargs)
        loss.backward()
        del loss
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated(device) - base
        final = torch.cuda.memory_allocated(device) - base
        _reset_grads(grads)
        return {"peak_bytes": int(peak), "retained_bytes": int(final), "method": "cuda_allocator"}
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        loss = fn(*args, **kwargs)
        loss.backward()
        del loss
    events = [e for e in _allocation_events(prof)
              if getattr(e.extra_fields.device, "type", str(e.extra_fields.device)) == "cpu"]
    events.sort(key=lambda e: e.start_time_ns)
    live = peak = 0
    for e in events:
        live += e.extra_fields.alloc_size
        peak = max(peak, live)
    _reset_grads(grads)
    out = {"peak_bytes": int(peak), "retained_bytes": int(live), "method": "profiler_allocations",
           "n_alloc_events": len(events)}
    out["rss_hwm_delta_bytes"] = peak_rss_delta_cpu(fn, args, kwargs, grads)
    return out


# --------------------------------------------------------------------------------------------
# Correctness gate (before timing)
# --------------------------------------------------------------------------------------------

# Every provider is compared with the reference run in float64 on the same input values; the
# error is max |a - b| / max |b| over the loss and over each gradient. The bound is derived, not
# fitted: our kernels accumulate in double and round once, so the number of terms does not enter;
# what remains is a few (<= 16) roundings in the input's precision per term, and the sine term's
# argument omega0 * x, which multiplies an input's relative rounding by up to omega0 (30). Hence
# tolerance = 16 * omega0 * u, u the unit roundoff of the compared dtype.
OMEGA0 = 30.0
ROUNDINGS = 16
UNIT_ROUNDOFF = {torch.float64: 2.0 ** -53, torch.float32: 2.0 ** -24}  # the benchmarked dtypes


def tolerance(dtype: torch.dtype) -> float:
    """The gate's bound on the max-abs-relative error of a provider in ``dtype``."""
    return ROUNDINGS * OMEGA0 * UNIT_ROUNDOFF[dtype]


def _rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().double(), b.detach().double()
    scale = b.abs().max().item() if b.numel() else 0.0
    diff = (a - b).abs().max().item() if b.numel() else 0.0
    return diff / scale if scale > 0 else diff


def _as_float64(args: tuple, kwargs: dict) -> Tuple[tuple, dict, List[torch.Tensor]]:
    """Copies of the floating inputs in float64 (same values), grad leaves where the originals are."""
    def conv(v):
        if isinstance(v, torch.Tensor) and v.is_floating_point():
            return v.detach().double().requires_grad_(v.requires_grad)
        return v
    a, k = tuple(conv(v) for v in args), {key: conv(v) for key, v in kwargs.items()}
    return a, k, _grad_leaves(a, k)


def compare_to_reference(fn, ref, args, kwargs, grads) -> dict:
    """Loss and gradients of ``fn`` against ``ref`` run in float64 on the same values."""
    a64, k64, g64 = _as_float64(args, kwargs)
    loss64 = ref(*a64, **k64)
    loss64.backward()
    expected = loss64.detach()
    _reset_grads(grads)
    loss = fn(*args, **kwargs)
    loss.backward()
    got = [t.grad.clone() for t in grads]
    _reset_grads(grads)
    err_loss = _rel_err(loss, expected)
    err_grad = max((_rel_err(x, t.grad) for x, t in zip(got, g64)), default=0.0)
    tol = tolerance(loss.dtype)
    return {"rel_err_loss": err_loss, "rel_err_grad": err_grad, "dtype": str(loss.dtype),
            "tol": tol, "ok": bool(err_loss <= tol and err_grad <= tol)}


def mismatches(records: Iterable[dict], provider: str = "ours") -> List[str]:
    """Labels of the cases where ``provider`` failed the gate."""
    return [r["label"] for r in records
            if provider in r["check"] and not r["check"][provider]["ok"]]


def summed_terms(fn: Callable) -> Callable:
    """``fn(..., reduction="none")`` summed to a scalar (every returned tensor), so that the
    per-term path can be timed and checked like the reduced ones."""
    def call(*args, **kwargs):
        out = fn(*args, reduction="none", **kwargs)
        parts = out if isinstance(out, tuple) else (out,)
        return sum(p.sum() for p in parts)
    return call


# --------------------------------------------------------------------------------------------
# Running a sweep
# --------------------------------------------------------------------------------------------

def _grad_leaves(args: tuple, kwargs: dict) -> List[torch.Tensor]:
    vals = list(args) + list(kwargs.values())
    return [v for v in vals if isinstance(v, torch.Tensor) and v.requires_grad and v.is_leaf]


def _tensor_bytes(args: tuple, kwargs: dict) -> int:
    vals = list(args) + list(kwargs.values())
    return sum(v.numel() * v.element_size() for v in vals if isinstance(v, torch.Tensor))


def run_case(case: Case, device: torch.device, budget: Budget,
             providers: Sequence[str] = PROVIDERS) -> dict:
    import torch._dynamo
    args, kwargs = case.build(device)
    grads = _grad_leaves(args, kwargs)
    timer = Timer(device)
    fns: Dict[str, Callable] = {}
    compile_s = None
    if "ours" in providers:
        fns["ours"] = case.ours
    if "eager" in providers:
        fns["eager"] = case.reference
    if "compile" in providers:
        torch._dynamo.reset()
        cfn = torch.compile(case.reference, dynamic=False)
        compile_s = _full_step(cfn, args, kwargs, grads, timer)  # compiles forward and backward
        fns["compile"] = cfn
    load_before = os.getloadavg()
    check = {p: compare_to_reference(fn, case.reference, args, kwargs, grads)
             for p, fn in fns.items()}
    slowest = max(warm_up(fn, args, kwargs, grads, timer, budget) for fn in fns.values())
    if slowest > budget.slow_call_s:  # a provider needs over a second a call: fewer samples
        budget = dataclasses.replace(budget, min_samples=min(budget.min_samples, 3))
    attempts = []
    while True:
        t0 = time.perf_counter()
        load = CpuLoad()
        stats = measure_times(fns, args, kwargs, grads, timer, budget)
        timing_s = time.perf_counter() - t0
        other = load.other_cores()
        attempts.append({"other_cores": other, "timing_wall_s": timing_s, "stats": stats})
        if (other is None or other <= budget.max_other_cores or len(attempts) > budget.retries
                or timing_s > budget.retry_if_under_s or not wait_for_quiet(budget)):
            break
    best = min(attempts, key=lambda a: a["other_cores"] if a["other_cores"] is not None else 0.0)
    stats, timing_s = best["stats"], best["timing_wall_s"]
    mem = {p: peak_memory(fn, args, kwargs, grads, device) for p, fn in fns.items()}
    grad_bytes = sum(t.numel() * t.element_size() for t in grads)
    rec = {
        "label": case.label, "params": case.params, "large": case.large, "tags": list(case.tags),
        "input_bytes": _tensor_bytes(args, kwargs), "grad_bytes": grad_bytes,
        "times": stats, "memory": mem, "check": check, "compile_warmup_s": compile_s,
        "loadavg_before": list(load_before), "loadavg_after": list(os.getloadavg()),
        "timing_wall_s": timing_s, "other_cores": best["other_cores"],
        "attempts_other_cores": [a["other_cores"] for a in attempts],
    }
    del args, kwargs, grads, fns
    torch._dynamo.reset()
    gc.collect()
    return rec


def machine_info(device: torch.device) -> dict:
    info = {"python": platform.python_version(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "platform": platform.platform(),
            "os_cpu_count": os.cpu_count(), "sirenpose_backend": sirenpose_loss.backend(),
            "device": str(device), "date": time.strftime("%Y-%m-%d %H:%M %Z")}
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu_model"] = next(line.split(":", 1)[1].strip() for line in f
                                     if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in lscpu.splitlines():
            key, _, val = line.partition(":")
            key = key.strip()
            if key in ("Model name", "CPU(s)", "Thread(s) per core", "Core(s) per socket",
                       "Socket(s)", "L2 cache", "L3 cache", "Hypervisor vendor", "Flags"):
                val = val.strip()
                if key == "Flags":
                    val = " ".join(f for f in val.split() if f in ("avx2", "fma", "avx512f"))
                info["lscpu_" + key.lower().replace("(s)", "s").replace(" ", "_")] = val
    except (OSError, subprocess.CalledProcessError):
        pass
    try:
        with open("/proc/meminfo") as f:
            info["mem_total"] = f.readline().split(":")[1].strip()
    except OSError:
        pass
    try:
        info["git_commit"] = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"],
                                            capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--", "csrc",
                                "sirenpose_loss"], capture_output=True, text=True).stdout.strip()
        info["git_dirty_package"] = bool(dirty)
    except OSError:
        pass
    try:  # which build of the extension was timed (it is rebuilt often)
        import hashlib
        import sirenpose_loss._C as ext
        with open(ext.__file__, "rb") as f:
            info["extension_sha1"] = hashlib.sha1(f.read()).hexdigest()[:12]
        info["extension_mtime"] = time.strftime("%Y-%m-%d %H:%M:%S",
                                                time.localtime(os.path.getmtime(ext.__file__)))
    except (ImportError, OSError, AttributeError):
        pass
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    info["loadavg_start"] = list(os.getloadavg())
    return info


# --------------------------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------------------------

def fmt_time(s: Optional[float]) -> str:
    if s is None:
        return "-"
    if s < 1e-3:
        return f"{s * 1e6:.3g} µs"
    if s < 1:
        return f"{s * 1e3:.3g} ms"
    return f"{s:.3g} s"


def fmt_bytes(b: Optional[float]) -> str:
    if b is None:
        return "-"
    a = abs(b)
    if a < 1024:
        return f"{int(b)} B"
    if a < MB:
        return f"{b / 1024:.3g} KB"
    if a < 1024 * MB:
        return f"{b / MB:.4g} MB"
    return f"{b / (1024 * MB):.3g} GB"


def _cell(stats: Optional[dict]) -> str:
    """'median ±IQR/2'."""
    if not stats:
        return "-"
    half_iqr = (stats["q3_s"] - stats["q1_s"]) / 2
    return fmt_time(stats["median_s"]) + " ±" + fmt_time(half_iqr)


def _load_cell(rec: dict) -> str:
    """CPU cores used by other processes during the kept attempt (and the number of attempts)."""
    o = rec.get("other_cores")
    if o is None:
        return "-"
    n = len(rec.get("attempts_other_cores", [])) or 1
    return f"{o:.2f}" + (f" ({n} tries)" if n > 1 else "")


def _check_cell(chk: Optional[dict]) -> str:
    if not chk:
        return "-"
    bound = f"{chk['tol']:.1e}" if "tol" in chk else "1e-3, vs float32 eager"  # older result files
    return (f"{'ok' if chk['ok'] else '**MISMATCH**'} ({chk['rel_err_loss']:.1e} / "
            f"{chk['rel_err_grad']:.1e}; {bound})")


def speedup(rec: dict, base: str, mode: str = "full", of: str = "ours",
            key: str = "median_s") -> Optional[float]:
    """Ratio of medians base / of (>1: `of` is faster); key="cpu_median_s" for CPU time."""
    t = rec["times"]
    if base not in t or of not in t or key not in t[base][mode] or key not in t[of][mode]:
        return None
    return t[base][mode][key] / t[of][mode][key]


def cpu_time_table(results: dict) -> str:
    """fwd+bwd process CPU time (meaningful as compute time with one intra-op thread)."""
    lines = ["| case | ours | eager | compile | ours vs eager | ours vs compile | wall: ours vs eager | wall: ours vs compile |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results["cases"]:
        t = r["times"]
        cells = [r["label"]]
        for p in PROVIDERS:
            st = t.get(p, {}).get("full", {})
            cells.append(fmt_time(st.get("cpu_median_s")) if st else "-")
        for key in ("cpu_median_s", "median_s"):
            for base in ("eager", "compile"):
                v = speedup(r, base, key=key)
                cells.append("-" if v is None else f"{v:.2f}x")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def markdown_tables(results: dict, heading_level: int = 3) -> str:
    h = "#" * heading_level
    recs = results["cases"]
    lines = []
    lines.append(f"{h} Forward + backward (primary metric): median ±IQR/2")
    lines.append("")
    lines.append("| case | ours | eager | compile | ours vs eager | ours vs compile | compile warm-up | check: rel. err. loss / grad vs float64 reference (bound) | other load |")
    lines.append("|---|---|---|---|---|---|---|---|---|")
    for r in recs:
        t = r["times"]
        se, sc = speedup(r, "eager"), speedup(r, "compile")
        warm = "-" if r["compile_warmup_s"] is None else "%.1f s" % r["compile_warmup_s"]
        chk_s = _check_cell(r["check"].get("ours"))
        lines.append(f"| {r['label']} | {_cell(t.get('ours', {}).get('full'))} | "
                     f"{_cell(t.get('eager', {}).get('full'))} | {_cell(t.get('compile', {}).get('full'))} | "
                     f"{'-' if se is None else f'{se:.2f}x'} | {'-' if sc is None else f'{sc:.2f}x'} | "
                     f"{warm} | {chk_s} | {_load_cell(r)} |")
    lines.append("")
    lines.append(f"{h} Forward alone and backward alone: median ±IQR/2 (speed-up of ours vs eager / vs compile)")
    lines.append("")
    lines.append("| case | fwd ours | fwd eager | fwd compile | fwd speed-up | bwd ours | bwd eager | bwd compile | bwd speed-up |")
    lines.append("|---|---|---|---|---|---|---|---|---|")
    for r in recs:
        t = r["times"]
        cells = [r["label"]]
        for mode in ("forward", "backward"):
            cells += [_cell(t.get(p, {}).get(mode)) for p in PROVIDERS]
            se, sc = speedup(r, "eager", mode), speedup(r, "compile", mode)
            cells.append(f"{'-' if se is None else f'{se:.2f}x'} / {'-' if sc is None else f'{sc:.2f}x'}")
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(f"{h} Peak memory of one forward+backward above the inputs")
    lines.append("")
    lines.append("| case | inputs | gradients | ours | eager | compile | ours − gradients | eager / ours | ours ≤ grads + 1 MB |")
    lines.append("|---|---|---|---|---|---|---|---|---|")
    for r in recs:
        m = r["memory"]
        peak = {p: m[p]["peak_bytes"] for p in m}
        ours = peak.get("ours")
        over = None if ours is None else ours - r["grad_bytes"]
        ratio = (f"{peak['eager'] / ours:.1f}x" if ours and "eager" in peak else "-")
        ok = "-" if over is None else ("yes" if over <= MB else "**no**")
        lines.append(f"| {r['label']} | {fmt_bytes(r['input_bytes'])} | {fmt_bytes(r['grad_bytes'])} | "
                     f"{fmt_bytes(ours)} | {fmt_bytes(peak.get('eager'))} | {fmt_bytes(peak.get('compile'))} | "
                     f"{fmt_bytes(over)} | {ratio} | {ok} |")
    lines.append("")
    return "\n".join(lines)


def write_outputs(results: dict, out_dir: str, stem: str) -> Tuple[str, str]:
    os.makedirs(out_dir, exist_ok=True)
    jpath = os.path.join(out_dir, stem + ".json")
    mpath = os.path.join(out_dir, stem + ".md")
    with open(jpath, "w") as f:
        json.dump(results, f, indent=1)
    meta = results["meta"]
    head = [f"## {results['title']}", "",
            f"backend `{meta['sirenpose_backend']}`, device `{meta['device']}`, torch {meta['torch']}, "
            f"{meta['torch_threads']} threads, dtype {results['dtype']}, "
            f"{'quick' if results['quick'] else 'full'} sweep, {results['wall_s']:.0f} s.", ""]
    with open(mpath, "w") as f:
        f.write("\n".join(head) + markdown_tables(results) + "\n")
    return jpath, mpath


# --------------------------------------------------------------------------------------------
# CLI shared by bench_<loss>.py
# --------------------------------------------------------------------------------------------

def parse_args(argv=None, description: str = "") -> argparse.Namespace:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="a few small cases, short time budget")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                   help="cuda: CUDA-event timing and CUDA memory stats (untested here: no GPU)")
    p.add_argument("--out", default=os.path.join(REPO, "benchmarks", "results"),
                   help="folder for <loss>.json and <loss>.md")
    p.add_argument("--providers", default=",".join(PROVIDERS),
                   help="comma-separated subset of ours,eager,compile")
    p.add_argument("--budget", type=float, default=None,
                   help="seconds of samples per (provider, mode, case); default 0.4, quick 0.1")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--filter", default=None, help="only cases whose label contains this text")
    return p.parse_args(argv)


def main(stem: str, title: str, cases_fn: Callable[[str], Iterable[Case]], argv=None) -> dict:
    """``cases_fn(size)`` yields the cases of one sweep size: "full", "quick" or "tiny" (the gate's)."""
    args = parse_args(argv, title)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: no CUDA device is available")
    providers = [p.strip() for p in args.providers.split(",") if p.strip()]
    for p in providers:
        if p not in PROVIDERS:
            sys.exit(f"unknown provider {p!r}; expected some of {PROVIDERS}")
    budget = Budget(seconds=args.budget if args.budget is not None else (0.1 if args.quick else 0.4),
                    min_samples=3 if args.quick else 5)
    import torch._dynamo.config as dynamo_config
    # One compiled graph per shape; reset between cases, but never fall back to eager silently.
    for name in ("recompile_limit", "cache_size_limit"):
        if hasattr(dynamo_config, name):
            setattr(dynamo_config, name, 64)
    backend = sirenpose_loss.backend()
    if backend != "compiled":
        print(f"WARNING: sirenpose_loss.backend() == {backend!r}: 'ours' runs the pure-PyTorch "
              "reference; the timings compare the reference with itself.", file=sys.stderr)
    meta = machine_info(device)
    t0 = time.perf_counter()
    records = []
    for case in cases_fn("quick" if args.quick else "full"):
        if args.filter and args.filter not in case.label:
            continue
        rec = run_case(case, device, budget, providers)
        records.append(rec)
        t = rec["times"]
        msg = " ".join(f"{p}={fmt_time(t[p]['full']['median_s'])}" for p in t)
        se = speedup(rec, "eager")
        print(f"[{stem}] {case.label:<34} full: {msg}"
              + (f"  (x{se:.2f} vs eager)" if se else "")
              + f"  other load {_load_cell(rec)}", flush=True)
    meta["loadavg_end"] = list(os.getloadavg())
    results = {"title": title, "stem": stem, "quick": args.quick, "dtype": "float32",
               "providers": providers, "budget": budget.__dict__, "meta": meta,
               "wall_s": time.perf_counter() - t0, "cases": records}
    out_stem = stem + (".quick" if args.quick else "") + ("" if device.type == "cpu" else "." + device.type)
    jpath, mpath = write_outputs(results, args.out, out_stem)
    print(f"wrote {jpath} and {mpath} ({results['wall_s']:.0f} s)")
    bad = mismatches(records)
    if bad:
        raise SystemExit(f"correctness gate: ours differs from the float64 reference beyond the "
                         f"bound in {len(bad)} case(s): {'; '.join(bad)}")
    return results
