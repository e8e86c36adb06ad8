"""The steps of tools/gpu_check.sh (run that; it first checks that a GPU is there).

    python tools/gpu_check.py OUT_DIR

Each step runs as a subprocess with a time limit, its output in OUT_DIR/logs/; the report is
OUT_DIR/gpu_check.json and OUT_DIR/gpu_check.md. Exit status: 0 all passed, 1 a step failed,
2 every step passed but a performance target was missed.
"""
import json
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = sys.executable
BUDGET_S = 480  # the whole check, on a 16-core H100/H200 machine
# Performance targets: (case tag, what, threshold).
TARGETS = [
    ("scl_large", "fraction_of_copy", 0.85), ("scl_large", "speedup_vs_eager", 5.0),
    ("scl_large", "speedup_vs_compile", 1.3), ("sirenpose_large", "fraction_of_copy", 0.60),
    ("tiny", "speedup_vs_eager", 4.0), ("tiny", "speedup_vs_compile", 2.5),
]


class Steps:
    def __init__(self, out_dir):
        self.logs = os.path.join(out_dir, "logs")
        os.makedirs(self.logs, exist_ok=True)
        self.t0 = time.monotonic()
        self.records = []

    def run(self, name, cmd, *, limit_s, env=None):
        """Runs cmd in the repository; records ok, seconds, the log and its last lines."""
        return self.together([(name, cmd, limit_s, env)])

    def together(self, jobs):
        """Runs (name, cmd, limit_s, env) jobs side by side (none of them times anything);
        True when all passed."""
        running = []
        for name, cmd, limit_s, env in jobs:
            left = BUDGET_S - (time.monotonic() - self.t0)
            log = os.path.join(self.logs, name + ".log")
            with open(log, "w") as f:
                proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **(env or {})},
                                        stdout=f, stderr=subprocess.STDOUT)
            running.append((name, cmd, env, log, proc, max(min(limit_s, left), 30),
                            time.monotonic()))
        ok = True
        for name, cmd, env, log, proc, limit, t0 in running:
            try:
                rc = proc.wait(timeout=max(limit - (time.monotonic() - t0), 1))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                rc = "timeout"
            ok = self._record(name, cmd, env, log, rc, limit, time.monotonic() - t0) and ok
        return ok

    def _record(self, name, cmd, env, log, rc, limit, seconds):
        with open(log) as f:
            tail = f.read().splitlines()[-12:]
        rec = {"step": name, "ok": rc == 0, "rc": rc, "seconds": round(seconds, 1),
               "limit_s": round(limit), "command": " ".join(cmd),
               "env": env or {}, "log": os.path.relpath(log, os.path.dirname(self.logs)),
               "tail": tail}
        self.records.append(rec)
        status = "ok" if rec["ok"] else f"FAILED ({'time limit' if rc == 'timeout' else f'exit {rc}'})"
        print(f"[gpu_check] {name}: {status} in {seconds:.0f} s", flush=True)
        if not rec["ok"]:
            print("\n".join("    " + line for line in tail), flush=True)
        return rec["ok"]


def sanitizer():
    """compute-sanitizer on PATH, or beside the nvcc on PATH / in CUDA_HOME."""
    found = shutil.which("compute-sanitizer")
    if found:
        return found
    homes = [os.environ.get("CUDA_HOME", ""), "/usr/local/cuda"]
    nvcc = shutil.which("nvcc")
    if nvcc:
        homes.insert(0, os.path.dirname(os.path.dirname(os.path.realpath(nvcc))))
    for home in homes:
        path = os.path.join(home, "bin", "compute-sanitizer")
        if home and os.path.exists(path):
            return path
    return None


def targets(bench):
    rows = []
    for tag, what, need in TARGETS:
        for rec in bench["cases"]:
            if tag in rec["tags"]:
                value = rec[what]["ours"] if what == "fraction_of_copy" else rec[what]
                rows.append({"case": rec["label"], "what": what, "need": need, "got": value,
                             "met": value is not None and value >= need})
    return rows


def markdown(report):
    m = report["machine"]
    lines = ["# GPU check", "",
             f"{m['gpu']} (compute capability {m['capability']}), driver {m['driver']}, "
             f"torch {m['torch']} (CUDA {m['cuda']}), commit {m['commit']}; "
             f"{report['seconds']:.0f} s in all. **{report['verdict']}**", "",
             "| step | result | seconds | log |", "|---|---|---|---|"]
    for r in report["steps"]:
        result = "ok" if r["ok"] else f"**failed** ({r['rc']})"
        lines.append(f"| {r['step']} | {result} | {r['seconds']:.0f} | `{r['log']}` |")
    bench = report.get("bench")
    if bench:
        from harness import fmt_time  # noqa: E402  (benchmarks/ is on sys.path)
        bw = bench["copy_bandwidth"]["bandwidth_bytes_per_s"]
        lines += ["", f"## Forward + backward, fp32 (copy bandwidth {bw / 1e9:.0f} GB/s)", "",
                  "| case | ours | eager | compile | ours vs eager | ours vs compile | "
                  "of copy bandwidth: ours / eager / compile |", "|---|---|---|---|---|---|---|"]
        for r in bench["cases"]:
            t, f = r["times"], r["fraction_of_copy"]
            lines.append(f"| {r['label']} | " + " | ".join(
                fmt_time(t[p]["full"]["median_s"]) for p in ("ours", "eager", "compile"))
                + f" | {r['speedup_vs_eager']:.2f}x | {r['speedup_vs_compile']:.2f}x | "
                + " / ".join(f"{100 * f[p]:.3g}%" for p in ("ours", "eager", "compile")) + " |")
        lines += ["", "## Targets", "", "| case | measure | needed | got | met |",
                  "|---|---|---|---|---|"]
        for t in report["targets"]:
            got = "-" if t["got"] is None else f"{t['got']:.2f}"
            lines.append(f"| {t['case']} | {t['what']} | {t['need']} | {got} | "
                         f"{'yes' if t['met'] else '**no**'} |")
    return "\n".join(lines) + "\n"


def machine():
    import torch
    cap = torch.cuda.get_device_capability()
    driver = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                            capture_output=True, text=True).stdout.strip() \
        if shutil.which("nvidia-smi") else "?"
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip() \
        if shutil.which("git") else ""
    return {"gpu": torch.cuda.get_device_name(), "capability": f"{cap[0]}.{cap[1]}",
            "driver": driver or "?", "torch": torch.__version__, "cuda": torch.version.cuda,
            "python": sys.version.split()[0], "cpus": os.cpu_count(), "commit": commit or "?"}


def main(out_dir):
    out_dir = os.path.abspath(out_dir)
    m = machine()
    steps = Steps(out_dir)
    bench_json = os.path.join(steps.logs, "bench.json")
    if os.path.exists(bench_json):  # from an earlier run
        os.remove(bench_json)
    test_env = {"SIRENPOSE_REQUIRE_COMPILED": "1", "PYTHONPATH": ROOT}
    # pytest and hypothesis are needed; without ninja the build compiles one file at a time.
    ok = steps.run("preflight", [PY, "-c", "import pytest, hypothesis; "
                                 "from torch.utils.cpp_extension import is_ninja_available as n; "
                                 "print('ninja:', 'yes' if n() else 'NO (a serial, slower build)')"],
                   limit_s=60)
    ok = ok and steps.run("build", [PY, "setup.py", "-q", "build_ext", "--inplace", "--force"],
                          limit_s=240, env={"FORCE_CUDA": "1", "MAX_JOBS": "16",
                                            "TORCH_CUDA_ARCH_LIST": m["capability"]})
    ok = ok and steps.run("import", [PY, "-c", "import sirenpose_loss as s; "
                                     "assert s.cuda_kernels_built(), 'no CUDA kernels'"],
                          limit_s=60, env=test_env)
    if ok:
        # The tests and the sanitizers check behaviour, not speed: they share the GPU.
        jobs = [("test_cuda", [PY, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                               "tests/test_cuda.py"], 270, test_env)]
        tool = sanitizer()
        if tool is None:
            steps.records.append({"step": "compute-sanitizer", "ok": False, "rc": "not found",
                                  "seconds": 0.0, "log": "-", "tail": []})
            print("[gpu_check] compute-sanitizer: FAILED (not found)", flush=True)
        else:
            cases = os.path.join("tools", "gpu_sanitize_cases.py")
            for kind, extra in (("memcheck", []), ("racecheck", ["--small"])):
                # No caching allocator under memcheck: each tensor its own allocation, so an
                # access past a tensor's end is seen.
                env = dict(test_env, PYTORCH_NO_CUDA_MEMORY_CACHING="1") if kind == "memcheck" \
                    else test_env
                jobs.append((kind, [tool, "--tool", kind, "--error-exitcode", "1", PY, cases,
                                    *extra], 270, env))
        steps.together(jobs)
        # Timed alone, after everything else.
        steps.run("bench", [PY, "benchmarks/gpu_check_bench.py", "--out", bench_json],
                  limit_s=240, env=test_env)
    report = {"machine": m, "steps": steps.records, "seconds": time.monotonic() - steps.t0}
    if os.path.exists(bench_json):
        with open(bench_json) as f:
            report["bench"] = json.load(f)
        report["targets"] = targets(report["bench"])
    failed = [r["step"] for r in steps.records if not r["ok"]]
    missed = [t for t in report.get("targets", []) if not t["met"]]
    report["verdict"] = (f"FAILED: {', '.join(failed)}" if failed else
                         f"passed; {len(missed)} performance target(s) missed" if missed else
                         "passed, every performance target met")
    with open(os.path.join(out_dir, "gpu_check.json"), "w") as f:
        json.dump(report, f, indent=1)
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    with open(os.path.join(out_dir, "gpu_check.md"), "w") as f:
        f.write(markdown(report))
    print(f"[gpu_check] {report['verdict']}; report in {out_dir}/gpu_check.md and .json", flush=True)
    return 1 if failed else 2 if missed else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python tools/gpu_check.py OUT_DIR")
    sys.exit(main(sys.argv[1]))
