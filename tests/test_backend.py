"""Which implementation runs: the compiled kernels, or (with one loud warning) the pure-PyTorch
reference when the extension cannot be loaded."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import sirenpose_loss as spl

from conftest import TEST_REFERENCE, needs_compiled, rand_weight, randn

PACKAGE_ROOT = str(Path(spl.__file__).resolve().parent.parent)
FUSED_OPS = ["keypoint_match_fwd", "keypoint_match_bwd", "spatiotemporal_consistency_fwd",
             "spatiotemporal_consistency_bwd", "sirenpose_fwd", "sirenpose_bwd"]
AUTOGRAD_OPS = ["keypoint_match", "spatiotemporal_consistency", "sirenpose"]


def run_python(code: str, *, env_extra=None, tmp_path) -> subprocess.CompletedProcess:
    """Run code in a fresh interpreter that imports this very package."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("SIRENPOSE_REQUIRE_COMPILED", "SIRENPOSE_TEST_REFERENCE")}
    env["PYTHONPATH"] = os.pathsep.join([PACKAGE_ROOT] + [p for p in [env.get("PYTHONPATH")] if p])
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=180)


def test_backend_is_one_of_two_strings():
    assert spl.backend() in ("compiled", "reference")
    assert isinstance(spl.cuda_kernels_built(), bool)
    if spl.backend() == "reference" or torch.version.cuda is None:
        assert spl.cuda_kernels_built() is False


def test_required_backend():
    """The session only runs on the fallback when SIRENPOSE_TEST_REFERENCE=1 asks for it."""
    assert spl.backend() == "compiled" or TEST_REFERENCE


@needs_compiled
def test_every_op_is_registered_for_cpu():
    for name in FUSED_OPS:
        assert torch._C._dispatch_has_kernel_for_dispatch_key(f"sirenpose_loss::{name}",
                                                              "CPU"), name
    for name in AUTOGRAD_OPS:
        assert hasattr(torch.ops.sirenpose_loss, name)
        assert torch._C._dispatch_has_kernel_for_dispatch_key(f"sirenpose_loss::{name}",
                                                              "Autograd"), name


class _OpRecorder(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(str(func))
        return func(*args, **(kwargs or {}))


_MATH = ("aten.sin", "aten.cos", "aten.pow", "aten.sub", "aten.sum", "aten.mul", "aten.div",
         "aten.index", "aten.where", "aten.mean", "aten.square", "aten.gather", "aten.mse_loss")


@needs_compiled
@pytest.mark.parametrize("loss", ["kml", "scl", "sgc", "sp"])
def test_losses_run_one_fused_kernel_each_way(loss):
    """Compiled backend: a loss and its backward are one fused forward op and one fused
    backward op; none of the reference's tensor maths runs."""
    p = randn(2, 5, 3, seed=1, requires_grad=True)
    t = randn(2, 5, 3, seed=2)
    w = rand_weight(5, seed=3)
    ei = torch.tensor([[0, 1, 3], [1, 2, 4]])
    call = {"kml": lambda: spl.keypoint_match_loss(p, t, weight=w),
            "scl": lambda: spl.spatiotemporal_consistency_loss(p, weight=w),
            "sgc": lambda: spl.sin_graph_consistency_loss(p, t, ei, weight=w),
            "sp": lambda: spl.sirenpose_loss(p, t, ei, weight=w)}[loss]
    stem = {"kml": "keypoint_match", "scl": "spatiotemporal_consistency", "sgc": "sirenpose",
            "sp": "sirenpose"}[loss]
    with _OpRecorder() as rec:
        call().backward()
    ours = [o for o in rec.ops if o.startswith("sirenpose_loss.")]
    assert ours == [f"sirenpose_loss.{stem}_fwd.default", f"sirenpose_loss.{stem}_bwd.default"]
    assert not [o for o in rec.ops if o.startswith(_MATH)], rec.ops


def test_fresh_interpreter_loads_the_same_backend(tmp_path):
    """`import sirenpose_loss` as the first import of a program (torch not imported yet) must
    load the compiled kernels whenever this session has them, without a warning."""
    res = run_python("""
        import json, warnings
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            import sirenpose_loss
        print(json.dumps({"backend": sirenpose_loss.backend(),
                          "warnings": [str(w.message) for w in caught
                                       if issubclass(w.category, RuntimeWarning)]}))
    """, tmp_path=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    if spl.backend() == "compiled":
        assert out == {"backend": "compiled", "warnings": []}, out
    else:
        assert out["backend"] in ("compiled", "reference")
        assert len(out["warnings"]) == (out["backend"] == "reference")


_HIDE_C = """
    import sys

    class _BlockCompiled:
        def find_spec(self, name, path=None, target=None):
            if name == "sirenpose_loss._C":
                raise ImportError("sirenpose_loss._C is hidden by the test")
            return None

    sys.meta_path.insert(0, _BlockCompiled())
"""
_BLOCKED = _HIDE_C + """
    import json, warnings
    import torch
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        import sirenpose_loss as spl
        import sirenpose_loss.losses, sirenpose_loss.reference  # no further warnings
"""


def test_hidden_extension_falls_back_to_reference(tmp_path):
    res = run_python(_BLOCKED + """
    out = {"warnings": [(w.category.__name__, str(w.message)) for w in caught],
           "backend": spl.backend(), "cuda": spl.cuda_kernels_built()}
    ref = spl.reference
    g = torch.Generator().manual_seed(0)
    p = torch.randn(3, 4, 2, dtype=torch.float64, generator=g, requires_grad=True)
    t = torch.randn(3, 4, 2, dtype=torch.float64, generator=g)
    P = torch.randn(3, 5, 4, 2, dtype=torch.float64, generator=g)
    w = torch.rand(4, dtype=torch.float64, generator=g)
    ei = torch.tensor([[0, 1, 2], [1, 2, 3]])
    pairs = {
        "kml": (spl.keypoint_match_loss(p, t, weight=w), ref.keypoint_match_loss(p, t, weight=w)),
        "scl": (spl.spatiotemporal_consistency_loss(P, weight=w, order=2),
                ref.spatiotemporal_consistency_loss(P, weight=w, order=2)),
        "sgc": (spl.sin_graph_consistency_loss(p, t, ei, weight=w),
                ref.sin_graph_consistency_loss(p, t, ei, weight=w)),
        "sp": (spl.sirenpose_loss(p, t, ei, lambda_geo=0.5, reduction="sum"),
               ref.sirenpose_loss(p, t, ei, lambda_geo=0.5, reduction="sum")),
    }
    out["equal"] = {k: bool(torch.equal(a, b)) for k, a, b in ((k, *v) for k, v in pairs.items())}
    known = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    out["known"] = spl.keypoint_match_loss(known, torch.tensor([[3.0, 4.0], [1.0, 2.0]]),
                                           reduction="sum").item()
    pairs["sp"][0].backward()
    out["grad"] = p.grad is not None and bool(p.grad.abs().sum() > 0)
    errors = {}
    for name, fn, exc in [
        ("weight", lambda: spl.keypoint_match_loss(p, t, weight=-w), ValueError),
        ("scl_weight", lambda: spl.spatiotemporal_consistency_loss(P, weight=-w), ValueError),
        ("edge", lambda: spl.sirenpose_loss(p, t, torch.tensor([[0], [4]])), IndexError),
        ("edge_weight", lambda: spl.sin_graph_consistency_loss(
            p, t, ei, edge_weight=-torch.ones(3, dtype=torch.float64)), ValueError),
    ]:
        try:
            fn()
            errors[name] = "no error"
        except exc as e:
            errors[name] = str(e)
    out["errors"] = errors
    print(json.dumps(out))
    """, tmp_path=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    runtime = [m for c, m in out["warnings"] if c == "RuntimeWarning"]
    assert len(runtime) == 1, out["warnings"]
    assert "compiled kernels could not be loaded" in runtime[0]
    assert "reference" in runtime[0] and "pip install" in runtime[0]
    assert out["backend"] == "reference" and out["cuda"] is False
    assert out["equal"] == {"kml": True, "scl": True, "sgc": True, "sp": True}
    assert out["known"] == 26.0 and out["grad"] is True
    assert out["errors"]["weight"].startswith("weight must be non-negative")
    assert out["errors"]["scl_weight"].startswith("weight must be non-negative")
    assert out["errors"]["edge"].startswith("edge_index values must be in [0, 4) (K = 4 keypoints)")
    assert out["errors"]["edge_weight"].startswith("edge_weight must be non-negative")


def test_hidden_extension_with_required_compiled_fails_loudly(tmp_path):
    res = run_python(_BLOCKED, env_extra={"SIRENPOSE_REQUIRE_COMPILED": "1"}, tmp_path=tmp_path)
    assert res.returncode != 0
    assert "ImportError" in res.stderr and "SIRENPOSE_REQUIRE_COMPILED=1" in res.stderr


@pytest.mark.parametrize("flag", [None, "1"], ids=["strict", "SIRENPOSE_TEST_REFERENCE=1"])
def test_test_session_refuses_the_fallback_unless_asked(tmp_path, flag):
    """A broken build fails the test session (it would compare the reference with itself),
    unless SIRENPOSE_TEST_REFERENCE=1 asks to test the fallback."""
    (tmp_path / "hide_compiled.py").write_text(textwrap.dedent(_HIDE_C))
    env = {k: v for k, v in os.environ.items()
           if k not in ("SIRENPOSE_REQUIRE_COMPILED", "SIRENPOSE_TEST_REFERENCE")}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), PACKAGE_ROOT])
    if flag:
        env["SIRENPOSE_TEST_REFERENCE"] = flag
    tests = Path(__file__).resolve().parent
    res = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "hide_compiled", "-p", "no:cacheprovider",
         "--rootdir", str(tests.parent), str(tests / "test_backend.py"), "-k",
         "test_required_backend or test_backend_is_one_of_two_strings"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    if flag:
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
        assert "2 passed" in res.stdout
    else:
        assert res.returncode == 3, res.stdout[-3000:] + res.stderr[-3000:]
        assert "the compiled kernels did not load" in res.stdout + res.stderr
