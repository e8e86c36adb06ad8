"""The benchmarks' correctness gate fails, with a non-zero exit, when a loss is wrong."""
import json
import os
import shutil
import sys

import pytest
import torch

import sirenpose_loss

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")
sys.path.insert(0, BENCH)

import gate  # noqa: E402
import harness  # noqa: E402
import run_all  # noqa: E402

needs_compiled = pytest.mark.skipif(sirenpose_loss.backend() != "compiled",
                                    reason="the gate refuses to compare the reference with itself")


def _off_by(fn, factor):
    """fn whose loss is scaled by ``factor``: a wrong result of the size the gate must catch."""
    def wrong(*args, **kwargs):
        out = fn(*args, **kwargs)
        if isinstance(out, tuple):  # SirenPoseTerms with reduction="none"
            return type(out)(*(t * factor for t in out))
        return out * factor
    return wrong


def test_tolerance_is_derived_per_dtype():
    assert harness.tolerance(torch.float32) == 16 * 30 * 2.0 ** -24
    assert harness.tolerance(torch.float64) == 16 * 30 * 2.0 ** -53


@needs_compiled
def test_gate_passes_on_the_compiled_losses(capsys):
    assert gate.main([]) == 0
    out = capsys.readouterr().out
    for row in ("weighted", "order=2", "reduction=none"):
        assert row in out


@needs_compiled
@pytest.mark.parametrize("name", ["keypoint_match_loss", "spatiotemporal_consistency_loss",
                                  "sirenpose_loss"])
def test_gate_fails_on_a_wrong_loss(monkeypatch, capsys, name):
    monkeypatch.setattr(sirenpose_loss, name, _off_by(getattr(sirenpose_loss, name), 1 + 1e-4))
    assert gate.main(["--dtypes", "float64"]) == 1
    assert "FAIL" in capsys.readouterr().out


@needs_compiled
def test_gate_catches_an_error_of_a_few_times_the_float32_bound(monkeypatch):
    wrong = _off_by(sirenpose_loss.keypoint_match_loss, 1 + 4 * harness.tolerance(torch.float32))
    monkeypatch.setattr(sirenpose_loss, "keypoint_match_loss", wrong)
    rows = gate.check("tiny", [torch.float32])
    assert any(not r["ok"] and "keypoint_match" in r["label"] for r in rows)


def test_gate_refuses_the_reference_backend(monkeypatch):
    monkeypatch.setattr(sirenpose_loss, "backend", lambda: "reference")
    assert gate.main([]) == 1


@needs_compiled
def test_a_timed_sweep_exits_nonzero_on_a_mismatch(monkeypatch, tmp_path):
    import bench_keypoint_match
    monkeypatch.setattr(sirenpose_loss, "keypoint_match_loss",
                        _off_by(sirenpose_loss.keypoint_match_loss, 1.01))
    argv = ["--quick", "--providers", "ours,eager", "--budget", "0.01", "--filter",
            "B=1, K=17, D=2", "--out", str(tmp_path)]
    with pytest.raises(SystemExit, match="correctness gate"):
        harness.main("keypoint_match", "test", bench_keypoint_match.cases, argv)
    assert (tmp_path / "keypoint_match.quick.json").exists()  # the evidence is written first


def test_the_report_exits_nonzero_on_a_recorded_mismatch(tmp_path):
    src = os.path.join(BENCH, "results", "keypoint_match.json")
    with open(src) as f:
        res = json.load(f)
    res["cases"][0]["check"]["ours"]["ok"] = False
    with open(tmp_path / "keypoint_match.json", "w") as f:
        json.dump(res, f)
    with pytest.raises(SystemExit, match="gate mismatch"):
        run_all.main(["--report-only", "--out", str(tmp_path), "--results-md", str(tmp_path / "R.md")])
    assert "**missed**" in (tmp_path / "R.md").read_text()
