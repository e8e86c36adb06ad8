"""Shared fixtures and helpers of the test suite.

* Strict by default: the session refuses to start when the compiled kernels did not load, so a
  broken build can never pass by testing the pure-PyTorch reference against itself.
  ``SIRENPOSE_TEST_REFERENCE=1`` asks for the fallback explicitly: the tests then run on it,
  and those that are about the kernels themselves (``needs_compiled``) skip.
* ``device``: device-aware tests run on ``cpu``, and on ``cuda`` too when a GPU is present (no
  CUDA parameters at all otherwise). A GPU with an extension built without its CUDA kernels is
  a broken build: every CUDA case fails, none skips.
* Seeded RNG helpers: every random tensor comes from its own ``torch.Generator`` on the CPU and
  is then moved, so a case sees the same numbers on every device and every run.
* A deterministic Hypothesis profile (``derandomize=True``, no deadline, few examples) keeps the
  property tests reproducible and fast;
  ``SIRENPOSE_HYPOTHESIS_PROFILE=sirenpose-thorough`` runs more examples.

Tests import the helpers with ``from conftest import ...``.
"""
import os
import zlib

import pytest
import torch
from hypothesis import HealthCheck, settings, strategies as st

import sirenpose_loss

TEST_REFERENCE = os.environ.get("SIRENPOSE_TEST_REFERENCE") == "1"
COMPILED = sirenpose_loss.backend() == "compiled"

needs_compiled = pytest.mark.skipif(
    not COMPILED, reason="needs the compiled kernels (SIRENPOSE_TEST_REFERENCE=1 runs the "
                         "reference fallback)")

_HEALTH = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
           HealthCheck.data_too_large]
settings.register_profile("sirenpose", derandomize=True, deadline=None, max_examples=25,
                          database=None, print_blob=True, suppress_health_check=_HEALTH)
settings.register_profile("sirenpose-thorough", derandomize=False, deadline=None,
                          max_examples=500, database=None, print_blob=True,
                          suppress_health_check=_HEALTH)
settings.load_profile(os.environ.get("SIRENPOSE_HYPOTHESIS_PROFILE", "sirenpose"))


def pytest_sessionstart(session):
    if not COMPILED and not TEST_REFERENCE:
        pytest.exit("sirenpose_loss.backend() is 'reference': the compiled kernels did not "
                    "load, so the tests would compare the reference with itself. Rebuild with "
                    "`pip install --no-build-isolation -e .`, or set SIRENPOSE_TEST_REFERENCE=1 "
                    "to test the fallback on purpose.", returncode=3)


def pytest_report_header(config):
    return (f"sirenpose_loss backend: {sirenpose_loss.backend()} "
            f"(cuda kernels built: {sirenpose_loss.cuda_kernels_built()}, "
            f"torch {torch.__version__}, threads {torch.get_num_threads()})")


def draw_common(draw, *, scales=(1e-3, 1.0, 1e3)) -> dict:
    """What every loss's property tests draw: batch dims (0 to 2, sizes 0 to 3), D (1 to 6),
    a reduction, a weight kind (see make_weight), a coordinate scale and a seed."""
    return dict(batch=tuple(draw(st.lists(st.integers(0, 3), max_size=2))),
                D=draw(st.integers(1, 6)),
                reduction=draw(st.sampled_from(["none", "mean", "sum"])),
                weight_kind=draw(st.sampled_from([None, "batch", "shared", "mask"])),
                scale=draw(st.sampled_from(scales)),
                seed=draw(st.integers(0, 2**30)))


# ----------------------------------------------------------------------------------- devices
DEVICES = ["cpu"] + ([pytest.param("cuda", marks=pytest.mark.cuda)]
                     if torch.cuda.is_available() else [])


@pytest.fixture(params=DEVICES)
def device(request) -> torch.device:
    if request.param == "cuda" and not sirenpose_loss.cuda_kernels_built():
        pytest.fail("a GPU is visible but the extension was built without its CUDA kernels")
    return torch.device(request.param)


# --------------------------------------------------------------------------------------- RNG
def seed_of(*parts) -> int:
    """A stable seed from test parameters (Python's hash() of str is salted per process)."""
    return zlib.crc32(repr(parts).encode()) & 0x7FFFFFFF


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))


def randn(*shape, seed: int, dtype=torch.float64, device="cpu", scale: float = 1.0,
          requires_grad: bool = False) -> torch.Tensor:
    """Standard normal * scale, never exactly zero, generated on the CPU then moved."""
    x = torch.randn(shape, generator=_gen(seed), dtype=torch.float64) * scale
    x = torch.where(x == 0, torch.full_like(x, 0.5 * scale), x)
    return x.to(device=device, dtype=dtype).requires_grad_(requires_grad)


def rand_weight(*shape, seed: int, dtype=torch.float64, device="cpu", low: float = 0.25,
                high: float = 1.75) -> torch.Tensor:
    """Strictly positive weights in [low, high)."""
    w = low + (high - low) * torch.rand(shape, generator=_gen(seed), dtype=torch.float64)
    return w.to(device=device, dtype=dtype)


def rand_mask(*shape, seed: int, device="cpu", p: float = 0.7) -> torch.Tensor:
    """A bool mask with at least one True (when non-empty)."""
    m = torch.rand(shape, generator=_gen(seed)) < p
    if m.numel():
        m.view(-1)[0] = True
    return m.to(device)


def make_weight(kind, batch, rows: int, *, seed: int, device="cpu", dtype=torch.float64):
    """None (kind None), or a per-row weight: "shared" [rows], "batch" [*batch, rows] (both
    strictly positive), "mask" (bool [*batch, rows], at least one True) or "zero" ([rows] of
    zeros: a mean over zero total weight)."""
    if kind is None:
        return None
    if kind == "shared":
        return rand_weight(rows, seed=seed, device=device, dtype=dtype)
    if kind == "batch":
        return rand_weight(*batch, rows, seed=seed, device=device, dtype=dtype)
    if kind == "mask":
        return rand_mask(*batch, rows, seed=seed, device=device)
    if kind == "zero":
        return torch.zeros(rows, dtype=dtype, device=device)
    raise ValueError(f"unknown weight kind {kind!r}")


def rand_edge_index(num_nodes: int, num_edges: int, *, seed: int, device="cpu",
                    dtype=torch.int64) -> torch.Tensor:
    """[2, E] random edges over num_nodes nodes: repeats and self-loops are allowed."""
    if num_edges and not num_nodes:
        raise ValueError("edges need nodes")
    ei = torch.randint(0, max(num_nodes, 1), (2, num_edges), generator=_gen(seed))
    return ei.to(device=device, dtype=dtype)


def random_like_outputs(outputs, seed: int):
    """A random incoming gradient for each output tensor (never zero)."""
    return [randn(*o.shape, seed=seed + i, dtype=o.dtype, device=o.device)
            for i, o in enumerate(outputs)]


# ------------------------------------------------------------------------------- comparisons
F64 = dict(rtol=1e-9, atol=1e-12)      # compiled float64 vs the float64 reference


def assert_close(actual, expected, *, rtol, atol, equal_nan=False, msg=None):
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=atol, equal_nan=equal_nan,
                               msg=msg)


def as_tuple(out):
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


def run_with_grads(fn, leaves, *, grad_seed: int):
    """Call fn(*leaves) on fresh copies of the leaves, backpropagate a random incoming gradient
    through every differentiable output, and return (detached outputs, grads of the leaves).

    A leaf that does not require grad gets ``None``; tensors that are not leaves (views made by
    fn) are fine: the gradient is read on the leaf.
    """
    fresh = [x.detach().clone().requires_grad_(x.requires_grad) if isinstance(x, torch.Tensor)
             else x for x in leaves]
    outs = as_tuple(fn(*fresh))
    grads_in = random_like_outputs(outs, grad_seed)
    pairs = [(o, g) for o, g in zip(outs, grads_in) if o.requires_grad]
    if pairs:
        torch.autograd.backward([o for o, _ in pairs], [g for _, g in pairs])
    grads = [x.grad if isinstance(x, torch.Tensor) and x.requires_grad else None for x in fresh]
    return [o.detach() for o in outs], grads


def compare_with_reference(fn, ref_fn, leaves, *, grad_seed: int, rtol=F64["rtol"],
                           atol=F64["atol"], equal_nan=False):
    """fn and ref_fn agree in value (shape, dtype) and in the gradients of every leaf."""
    outs, grads = run_with_grads(fn, leaves, grad_seed=grad_seed)
    ref_outs, ref_grads = run_with_grads(ref_fn, leaves, grad_seed=grad_seed)
    assert len(outs) == len(ref_outs)
    for i, (o, r) in enumerate(zip(outs, ref_outs)):
        assert o.shape == r.shape, (f"output {i}: shape {tuple(o.shape)} != reference "
                                    f"{tuple(r.shape)}")
        assert o.dtype == r.dtype, f"output {i}: dtype {o.dtype} != reference {r.dtype}"
        assert_close(o, r, rtol=rtol, atol=atol, equal_nan=equal_nan,
                     msg=lambda m, i=i: f"output {i} differs from the reference: {m}")
    for i, (g, r) in enumerate(zip(grads, ref_grads)):
        if r is None:
            assert g is None, f"leaf {i}: got a gradient where the reference has none"
            continue
        assert g is not None, f"leaf {i}: no gradient (the reference has one)"
        assert_close(g, r, rtol=rtol, atol=atol, equal_nan=equal_nan,
                     msg=lambda m, i=i: f"gradient of leaf {i} differs from the reference: {m}")
    return outs, grads


def assert_bitwise_equal(a, b, what: str = "") -> None:
    """Bit-identical (NaN-aware) comparison of tensors or tuples of tensors."""
    for i, (x, y) in enumerate(zip(as_tuple(a), as_tuple(b))):
        if x is None or y is None:
            assert x is None and y is None, f"{what}[{i}]: one side is None"
            continue
        assert x.shape == y.shape and x.dtype == y.dtype, f"{what}[{i}]: shape/dtype differ"
        xb = x.detach().cpu().contiguous().view(-1)
        yb = y.detach().cpu().contiguous().view(-1)
        if x.element_size() == 8:
            xb, yb = xb.view(torch.int64), yb.view(torch.int64)
        elif x.element_size() == 4:
            xb, yb = xb.view(torch.int32), yb.view(torch.int32)
        else:
            xb, yb = xb.view(torch.int16), yb.view(torch.int16)
        assert torch.equal(xb, yb), f"{what}[{i}]: not bit-identical"


# ---------------------------------------------------------------------------- compile/ops
def fresh_compile(fn, **kwargs):
    torch._dynamo.reset()
    return torch.compile(fn, fullgraph=True, **kwargs)


def op(name: str):
    """torch.ops.sirenpose_loss.<name>.default (the compiled op)."""
    return getattr(torch.ops.sirenpose_loss, name).default


class ThreadCount:
    """Context manager: run with n intra-op threads, then restore."""

    def __init__(self, n: int):
        self.n = n

    def __enter__(self):
        self.saved = torch.get_num_threads()
        torch.set_num_threads(self.n)

    def __exit__(self, *exc):
        torch.set_num_threads(self.saved)
