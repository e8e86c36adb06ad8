"""tools/gpu_check.sh without a GPU (one line, exit 0, nothing written), and how its report
judges the performance targets."""
import os
import subprocess
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import gpu_check  # noqa: E402


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present: the check would run")
def test_without_a_gpu_it_says_so_and_runs_nothing(tmp_path):
    out = tmp_path / "report"
    env = dict(os.environ, PYTHON=sys.executable, PATH=os.path.dirname(sys.executable) + ":/usr/bin:/bin")
    proc = subprocess.run(["bash", os.path.join(ROOT, "tools", "gpu_check.sh"), str(out)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["gpu_check: no CUDA GPU on this machine; nothing was run"]
    assert not out.exists()


def _record(label, tag, ours, eager, compile_, fraction):
    times = {p: {"full": {"median_s": t}} for p, t in
             (("ours", ours), ("eager", eager), ("compile", compile_))}
    return {"label": label, "tags": [tag], "times": times,
            "fraction_of_copy": {"ours": fraction, "eager": fraction / 4, "compile": fraction / 2},
            "speedup_vs_eager": eager / ours, "speedup_vs_compile": compile_ / ours}


def test_targets_and_report():
    bench = {"copy_bandwidth": {"bandwidth_bytes_per_s": 4e12}, "cases": [
        _record("SCL big", "scl_large", 1e-3, 6e-3, 1.2e-3, 0.9),        # misses 1.3x compile
        _record("SirenPose big", "sirenpose_large", 1e-3, 1e-2, 5e-3, 0.59),  # misses 60 %
        _record("KML tiny", "tiny", 1e-5, 5e-5, 3e-5, 1e-4)]}
    rows = gpu_check.targets(bench)
    assert {(r["case"], r["what"]): r["met"] for r in rows} == {
        ("SCL big", "fraction_of_copy"): True, ("SCL big", "speedup_vs_eager"): True,
        ("SCL big", "speedup_vs_compile"): False, ("SirenPose big", "fraction_of_copy"): False,
        ("KML tiny", "speedup_vs_eager"): True, ("KML tiny", "speedup_vs_compile"): True}
    report = {"machine": {"gpu": "G", "capability": "9.0", "driver": "d", "torch": "t",
                          "cuda": "c", "commit": "h"}, "seconds": 1.0, "verdict": "v",
              "steps": [{"step": "build", "ok": True, "rc": 0, "seconds": 1.0, "log": "logs/b"}],
              "bench": bench, "targets": rows}
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    md = gpu_check.markdown(report)
    assert "| SCL big | 1 ms | 6 ms | 1.2 ms | 6.00x | 1.20x | 90% / 22.5% / 45% |" in md
    assert md.count("**no**") == 2
