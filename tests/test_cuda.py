"""CUDA-only tests: the CUDA kernels against the float64 truth (every loss, reduction and weight
kind) within a derived rounding-error bound (see cuda_cases.py), half/bfloat16 within a relative
bound, the device-built incidence against the Python one, bit-identical repeats, no host syncs,
CUDA graphs, torch.compile(mode="reduce-overhead"), opcheck, 64-bit indexing and empty inputs.

Everything here skips without a GPU, and FAILS when a GPU is visible but the extension was built
without its CUDA kernels (a silent skip would hide the broken build). The device-generic
behaviour (validation messages, the maths against the reference) is tested per loss in
test_<loss>.py on both devices. Sizes are small: the whole file runs in seconds on a GPU, except
the `slow` >2^31-element case.
"""
import pytest
import torch

import sirenpose_loss as spl
from conftest import (F64, assert_bitwise_equal, assert_close, fresh_compile, op, rand_edge_index,
                      rand_weight, randn, seed_of)
from contract.cases import GAUSSIAN_CASES
from contract.harness import assert_matches, caller, case_inputs, forward_backward
from cuda_cases import (CASES, D, K, REDUCTIONS, check_against_truth, kml_case, outputs, scl_case,
                        sirenpose_case)

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


@pytest.fixture(autouse=True)
def _cuda_kernels_present():
    if not spl.cuda_kernels_built():
        pytest.fail("a GPU is visible but sirenpose_loss was built without its CUDA kernels "
                    f"(backend: {spl.backend()}); rebuild with FORCE_CUDA=1 "
                    "pip install --no-build-isolation .")


CUDA = "cuda"
F32 = torch.float32
# A few cases per loss for the (slower) machinery tests.
SMALL = {name: CASES[name] for name in
         ("kml-mean-batch", "scl1-mean-shared", "scl2-sum-none", "sirenpose-mean-batch-ew1-pos1",
          "sirenpose-none-shared-ew0-pos0")}


def _outputs(fn, leaves, *, grad_dtype=None):
    """(detached outputs, gradients of the leaves) of cuda_cases.outputs()."""
    outs, grads, _ = outputs(fn, leaves, grad_dtype=grad_dtype)
    return outs, grads


def _total(out):
    """One scalar from a loss output (a tensor, or the (pos, geo) terms of reduction none)."""
    return out.sum() if isinstance(out, torch.Tensor) else sum(o.sum() for o in out)


def _assert_same_results(got, want, tol, what):
    (outs, grads), (ref_outs, ref_grads) = got, want
    for i, (o, r) in enumerate(zip(outs, ref_outs)):
        assert o.device.type == CUDA and o.dtype == r.dtype and o.shape == r.shape, what
        assert_close(o.cpu(), r.cpu(), **tol, msg=lambda m, i=i: f"{what} output {i}: {m}")
    for i, (g, r) in enumerate(zip(grads, ref_grads)):
        assert g.dtype == r.dtype and g.shape == r.shape, what
        assert_close(g.cpu(), r.cpu(), **tol, msg=lambda m, i=i: f"{what} grad {i}: {m}")


def _check_case(case, dtype, what):
    """float64: the CUDA kernels against the CPU kernels at F64. Lower precisions: against the
    float64 truth on the very values the run sees (inputs, weights and incoming gradients
    rounded to dtype), within the case's error bound."""
    if dtype == torch.float64:
        _assert_same_results(_outputs(*case.on(CUDA)), _outputs(*case.on("cpu")), F64, what)
        return
    got = outputs(*case.on(CUDA, dtype))
    assert all(o.device.type == CUDA for o in got[0]), what
    truth = outputs(*case.rounded(dtype).on("cpu"), grad_dtype=dtype)
    check_against_truth(case.rounded(dtype), got, truth, dtype=dtype, what=what)


# ------------------------------------------------------------------------- CPU vs CUDA values
@pytest.mark.parametrize("dtype", [torch.float64, F32], ids=["f64", "f32"])
@pytest.mark.parametrize("name", list(CASES))
def test_cuda_matches_cpu(name, dtype):
    _check_case(CASES[name](), dtype, name)


# More than 256 first-pass reduction blocks with the launch rule of csrc/common/launch_cuda.h
# (reduce_blocks: 391, 391 and 492 blocks): the finisher then reads several partials per thread.
MANY_BLOCKS = {
    "kml-many-blocks": lambda: kml_case("mean", "batch", batch=(1000,), k=100, d=8),
    "scl-many-blocks": lambda: scl_case("sum", "shared", 1, batch=(1,), t=8, m=100000, d=3),
    "sirenpose-many-blocks": lambda: sirenpose_case("mean", "shared", True, batch=(8192,)),
}


@pytest.mark.parametrize("case", [
    lambda: kml_case("mean", "batch", batch=(50, 40), k=17, d=2),          # 34k rows: 2 passes
    lambda: scl_case("mean", "shared", 1, batch=(2,), t=5, m=20000, d=3),  # multi-block sums
    lambda: scl_case("sum", "batch", 2, batch=(3,), t=7, m=999, d=5),      # generic-D path
    lambda: scl_case("none", "none", 1, batch=(), t=9, m=300, d=1),
    lambda: sirenpose_case("mean", "shared", True, batch=(300,), k=21, d=2, num_edges=40),
    lambda: sirenpose_case("sum", "none", False, batch=(5,), k=17, d=3, num_edges=16,
                           index_dtype=torch.int32),
    *MANY_BLOCKS.values(),
], ids=["kml-large", "scl-large", "scl-d5", "scl-d1-nobatch", "sirenpose-large", "sirenpose-int32",
        *MANY_BLOCKS])
@pytest.mark.parametrize("dtype", [torch.float64, F32], ids=["f64", "f32"])
def test_cuda_matches_cpu_other_shapes(case, dtype):
    _check_case(case(), dtype, "shape case")


@pytest.mark.parametrize("name", list(MANY_BLOCKS))
def test_many_blocks_bit_identical_over_repeats(name):
    fn, leaves = MANY_BLOCKS[name]().on(CUDA, F32)
    first = _outputs(fn, leaves)
    for _ in range(3):
        again = _outputs(fn, leaves)
        assert_bitwise_equal(again[0], first[0], f"{name} loss")
        assert_bitwise_equal(again[1], first[1], f"{name} grads")


# ------------------------------------------------------------------------- half and bfloat16
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["f16", "bf16"])
@pytest.mark.parametrize("name", ["kml-mean-batch", "kml-none-shared", "scl1-mean-batch",
                                  "scl2-none-shared", "sirenpose-mean-shared-ew1-pos1",
                                  "sirenpose-sum-none-ew0-pos0", "sirenpose-none-batch-ew0-pos1"])
def test_low_precision_against_float64(name, dtype):
    """The kernels compute half and bfloat16 in float: the float bound plus the rounding of each
    stored result, relative (2 units of the dtype's roundoff)."""
    _check_case(CASES[name](), dtype, name)


# ------------------------------------------------------------------------- device incidence
@pytest.mark.parametrize("index_dtype", [torch.int64, torch.int32], ids=["i64", "i32"])
@pytest.mark.parametrize("k,num_edges", [(17, 24), (5, 200), (40, 7), (2, 5)],
                         ids=["typical", "dense-repeats", "isolated-nodes", "two-nodes"])
def test_device_incidence_matches_python(k, num_edges, index_dtype):
    """sirenpose_bwd builds the per-keypoint incidence on the device when none is passed; its
    gradient must be bit-identical to the one gathered over sirenpose_loss._incidence's
    incidence (same slots in the same order: with many repeated edges another order changes
    the bits, a missing or extra slot the values)."""
    s = seed_of("incidence", k, num_edges, index_dtype)
    pred = randn(4, k, D, seed=s, device=CUDA, dtype=F32, scale=0.1)
    target = randn(4, k, D, seed=s + 1, device=CUDA, dtype=F32, scale=0.1)
    ei = rand_edge_index(k, num_edges, seed=s + 2, device=CUDA, dtype=index_dtype)
    w = rand_weight(4, k, seed=s + 3, device=CUDA, dtype=F32)
    ew = rand_weight(num_edges, seed=s + 4, device=CUDA, dtype=F32)
    ptr, slot = spl._incidence.build_incidence(ei, k)
    for r in (0, 1):
        for with_pos in (True, False):
            _, pos, geo, denom = op("sirenpose_fwd")(pred, target, ei, w, ew, 30.0, 0.5, with_pos, r)
            grads = [randn(*x.shape, seed=s + 5 + i, device=CUDA, dtype=F32) if r == 0
                     else torch.ones((), device=CUDA) for i, x in enumerate((pos, geo))]
            before, after = (grads[0], grads[1], pred, target, ei, w, ew, denom), (
                30.0, 0.5, with_pos, r, [True, True])
            python_csr = op("sirenpose_bwd")(*before, ptr, slot, *after)
            device_csr = op("sirenpose_bwd")(*before, None, None, *after)
            assert_bitwise_equal(device_csr, python_csr, f"reduction {r}, with_pos {with_pos}")
            assert all(bool(g.abs().sum() > 0) for g in python_csr), "a zero gradient tests nothing"


# ------------------------------------------------------------------------------ determinism
@pytest.mark.parametrize("case", [
    lambda: kml_case("mean", "batch", batch=(64, 64), d=2),
    lambda: scl_case("mean", "batch", 2, batch=(2,), t=8, m=30000),
    lambda: sirenpose_case("mean", "batch", True, batch=(512,), num_edges=32),
], ids=["kml", "scl", "sirenpose"])
def test_bit_identical_over_repeats(case):
    fn, leaves = case().on(CUDA, F32)
    first = _outputs(fn, leaves)
    for _ in range(9):
        again = _outputs(fn, leaves)
        assert_bitwise_equal(again[0], first[0], "loss")
        assert_bitwise_equal(again[1], first[1], "grads")


@pytest.mark.parametrize("name", list(SMALL))
def test_same_bits_on_a_side_stream(name):
    """The kernels run on the current stream (not the default one) and give the same bits."""
    fn, leaves = SMALL[name]().on(CUDA, F32)
    want = _outputs(fn, leaves)
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        got = _outputs(fn, leaves)
    torch.cuda.current_stream().wait_stream(stream)
    assert_bitwise_equal(got[0], want[0], "loss")
    assert_bitwise_equal(got[1], want[1], "grads")


@pytest.mark.parametrize("name", list(SMALL))
def test_no_host_sync_after_warmup(name):
    """After the first call (which checks weights and builds the graph's incidence, cached),
    forward and backward never synchronise with the host."""
    fn, leaves = SMALL[name]().on(CUDA, F32)
    _outputs(fn, leaves)
    xs = [x.detach().clone().requires_grad_(True) for x in leaves]
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        _total(fn(*xs)).backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert all(x.grad is not None for x in xs), "backward did not reach every input"


# ------------------------------------------------------------------- CUDA graphs and compile
@pytest.mark.parametrize("name", list(SMALL))
def test_cuda_graph_capture_and_replay(name):
    case = SMALL[name]()
    fn, leaves = case.on(CUDA, F32)
    static = [x.detach().clone().requires_grad_(True) for x in leaves]

    def step():
        loss = _total(fn(*static))
        loss.backward()
        return loss

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up: caches the weight checks and the incidence
        for _ in range(2):
            step()
            for x in static:
                x.grad = None
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_loss = step()
    for trial in range(3):
        fresh = [randn(*x.shape, seed=100 + trial + i, dtype=x.dtype, device=CUDA,
                       scale=0.1) for i, x in enumerate(static)]
        with torch.no_grad():
            for x, f in zip(static, fresh):
                x.copy_(f)
        graph.replay()
        eager = [f.clone().requires_grad_(True) for f in fresh]
        eager_loss = _total(fn(*eager))
        eager_loss.backward()
        assert_bitwise_equal(static_loss, eager_loss.detach(), "replayed loss")
        assert_bitwise_equal([x.grad for x in static], [x.grad for x in eager], "replayed grads")


@pytest.mark.parametrize("name", list(SMALL))
def test_compile_reduce_overhead(name):
    fn, leaves = SMALL[name]().on(CUDA, F32)

    def step(*xs):
        return _total(fn(*xs))

    compiled = fresh_compile(step, mode="reduce-overhead")
    # The same kernels run; only the sum of the per-term outputs may be ordered differently.
    tol = dict(rtol=1e-5, atol=1e-6)
    want = _outputs(step, leaves)
    for _ in range(3):  # warm-up, record, then replay the CUDA graph
        torch.compiler.cudagraph_mark_step_begin()
        got = _outputs(compiled, leaves)
        assert_close(got[0][0], want[0][0], **tol)
        for g, w in zip(got[1], want[1]):
            assert_close(g, w, **tol)


# ------------------------------------------------------------------------------------ opcheck
def _opcheck_args():
    """(op name, args) for every op on CUDA; inputs do not require grad (the fwd/bwd ops have
    no autograd of their own, the differentiable ops are covered by the autograd tests)."""
    s = seed_of("opcheck")
    pred, target = randn(2, K, D, seed=s, device=CUDA, scale=0.1), randn(2, K, D, seed=s + 1, device=CUDA, scale=0.1)
    w = rand_weight(K, seed=s + 2, device=CUDA)
    positions = randn(2, 5, 11, D, seed=s + 3, device=CUDA)
    wm = rand_weight(2, 11, seed=s + 4, device=CUDA)
    ei = rand_edge_index(K, 20, seed=s + 5, device=CUDA)
    ew = rand_weight(20, seed=s + 6, device=CUDA)
    ptr, slot = spl._incidence.build_incidence(ei, K)
    cases = []
    for r in (0, 1, 2):
        loss, denom = op("keypoint_match_fwd")(pred, target, w, r)
        g = torch.ones_like(loss)
        cases += [("keypoint_match_fwd", (pred, target, w, r)),
                  ("keypoint_match_bwd", (g, pred, target, w, denom, r, [True, True])),
                  ("keypoint_match_bwd", (g, pred, target, None, denom, r, [False, True])),
                  ("keypoint_match", (pred, target, w, r))]
        for order in (1, 2):
            loss, denom = op("spatiotemporal_consistency_fwd")(positions, wm, order, r)
            cases += [("spatiotemporal_consistency_fwd", (positions, wm, order, r)),
                      ("spatiotemporal_consistency_bwd", (torch.ones_like(loss), positions, wm, denom, order, r)),
                      ("spatiotemporal_consistency", (positions, wm, order, r))]
        for with_pos in (True, False):
            loss, pos, geo, denom = op("sirenpose_fwd")(pred, target, ei, w, ew, 30.0, 0.5, with_pos, r)
            gp, gg = (torch.ones_like(pos), torch.ones_like(geo)) if r == 0 else (torch.ones_like(loss),) * 2
            cases += [("sirenpose_fwd", (pred, target, ei, w, ew, 30.0, 0.5, with_pos, r)),
                      ("sirenpose_bwd", (gp, gg, pred, target, ei, w, ew, denom, ptr, slot, 30.0, 0.5,
                                         with_pos, r, [True, True])),
                      ("sirenpose_bwd", (gp, gg, pred, target, ei, None, None, denom, None, None, 30.0,
                                         0.5, with_pos, r, [True, False])),
                      ("sirenpose", (pred, target, ei, w, ew, ptr, slot, 30.0, 0.5, with_pos, r))]
    return cases


def test_opcheck_every_op_on_cuda():
    for name, args in _opcheck_args():
        torch.library.opcheck(op(name), args)


# ------------------------------------------------------------------------------- edge inputs
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("make", [
    lambda r: kml_case(r, "shared", batch=(0,)),
    lambda r: kml_case(r, "none", batch=(2,), k=0),
    lambda r: scl_case(r, "shared", 1, t=1),
    lambda r: scl_case(r, "shared", 2, t=2),
    lambda r: scl_case(r, "none", 1, m=0),
    lambda r: scl_case(r, "batch", 1, batch=(0,)),
    lambda r: sirenpose_case(r, "shared", num_edges=0),
    lambda r: sirenpose_case(r, "none", with_pos=False, num_edges=0),
    lambda r: sirenpose_case(r, "batch", batch=(0,)),
], ids=["kml-batch0", "kml-k0", "scl-t1", "scl2-t2", "scl-m0", "scl-batch0", "sp-e0",
        "sin-e0", "sp-batch0"])
def test_empty_inputs_match_cpu(make, reduction):
    case = make(reduction)
    want = _outputs(*case.on("cpu"))
    got = _outputs(*case.on(CUDA))
    _assert_same_results(got, want, F64, "empty")


def test_bad_edge_index_gives_nan_not_a_crash():
    """Direct op calls skip the Python range check; the kernels must not read out of bounds."""
    pred, target = randn(3, K, D, seed=1, device=CUDA), randn(3, K, D, seed=2, device=CUDA)
    for bad in ([[0, 1, K], [1, 2, 3]], [[0, -1, 2], [1, 2, 3]], [[0, 1, 2], [1, 2, 10 ** 9]]):
        ei = torch.tensor(bad, device=CUDA)
        bad_edge = ((ei < 0) | (ei >= K)).any(0)
        loss, pos, geo, denom = op("sirenpose_fwd")(pred, target, ei, None, None, 30.0, 1.0, True, 0)
        assert geo[:, bad_edge].isnan().all() and not geo[:, ~bad_edge].isnan().any()
        loss, pos, geo, denom = op("sirenpose_fwd")(pred, target, ei, None, None, 30.0, 1.0, True, 1)
        assert loss.isnan() and not pos.isnan()
        one = torch.ones((), device=CUDA, dtype=pred.dtype)
        gp, gt = op("sirenpose_bwd")(one, one, pred, target, ei, None, None, denom, None, None, 30.0,
                                     1.0, True, 1, [True, True])
        assert gp.isnan().all() and gt.isnan().all()
    torch.cuda.synchronize()  # an out-of-bounds access would surface here


def test_python_api_checks_cuda_values_once():
    pred, target = randn(2, K, D, seed=3, device=CUDA), randn(2, K, D, seed=4, device=CUDA)
    bad = rand_weight(K, seed=5, device=CUDA)
    bad[3] = -1.0
    with pytest.raises(ValueError, match="weight must be non-negative"):
        spl.keypoint_match_loss(pred, target, weight=bad)
    good = rand_weight(K, seed=6, device=CUDA)
    spl.keypoint_match_loss(pred, target, weight=good)
    good[0] = -2.0  # an in-place edit bumps the version counter: checked again
    with pytest.raises(ValueError, match="weight must be non-negative"):
        spl.keypoint_match_loss(pred, target, weight=good)
    with pytest.raises(IndexError, match="edge_index values must be in"):
        spl.sirenpose_loss(pred, target, torch.tensor([[0, 1], [2, K]], device=CUDA))


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_runs_on_the_inputs_device():
    case = SMALL["sirenpose-mean-batch-ew1-pos1"]()
    want = _outputs(*case.on("cuda:0"))
    got = _outputs(*case.on("cuda:1"))
    assert got[0][0].device == torch.device("cuda:1")
    assert_bitwise_equal(got[0], want[0], "loss")
    assert_bitwise_equal(got[1], want[1], "grads")


# --------------------------------------------------------------------------- 64-bit indexing
@pytest.mark.slow
def test_scl_more_than_2_to_the_31_elements():
    """positions [2, M, 3] in float16 with 2 * M * 3 > 2^31: one non-zero coordinate in the last
    Gaussian, past element 2^31, so a 32-bit index would read or write the wrong element."""
    m = 2 ** 31 // 6 + 1024
    need = 3 * (2 * m * 3) * 2 + (1 << 30)  # positions, gradient, per-term output, slack
    if torch.cuda.get_device_properties(0).total_memory < need:
        pytest.skip("not enough GPU memory")
    positions = torch.zeros(2, m, 3, dtype=torch.float16, device=CUDA)
    assert positions.numel() > 2 ** 31
    positions[1, m - 1, 2] = 1.0
    loss = spl.spatiotemporal_consistency_loss(positions, reduction="sum")
    assert loss.item() == 1.0
    terms = spl.spatiotemporal_consistency_loss(positions, reduction="none")
    assert terms.shape == (1, m) and terms[0, m - 1].item() == 1.0
    assert terms.float().sum().item() == 1.0
    del terms
    positions.requires_grad_(True)
    spl.spatiotemporal_consistency_loss(positions, reduction="sum").backward()
    grad = positions.grad
    assert grad[1, m - 1, 2].item() == 2.0 and grad[0, m - 1, 2].item() == -2.0
    assert torch.count_nonzero(grad).item() == 2


# ---------------------------------------------------------------- graph losses of Gaussians
@pytest.mark.parametrize("dtype", [F64, F32], ids=str)
@pytest.mark.parametrize("case,path,reduction", [
    pytest.param(c, p, r, id=f"{c.name}-{p.id}-{r}")
    for c in GAUSSIAN_CASES for p in c.paths for r in c.reductions])
def test_graph_losses_match_the_cpu_kernels(case, path, reduction, dtype):
    """Each contract entry's CUDA kernels against its CPU kernels (values and gradients, float64
    to 1e-9, float32 to 1e-4 of the largest), then bit-identical repeats on the GPU."""
    inputs = case_inputs(case, path, case.sizes["reference"][-1], seed=seed_of(case.name, 30),
                         dtype=dtype)
    call = caller(case.fn, path.options, reduction)
    want = forward_backward(call, inputs, case.differentiable, seed=8)
    on_gpu = {k: v.to(CUDA) if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}
    got = forward_backward(call, on_gpu, case.differentiable, seed=8)
    bound = dict(rtol=1e-9, atol=1e-12) if dtype == F64 else dict(rtol=1e-4, scaled_atol=1e-4)
    assert_matches([o.cpu() for o in got[0]], {k: g.cpu() for k, g in got[1].items()}, *want,
                   what=f"cuda {dtype}", **bound)
    again = forward_backward(call, on_gpu, case.differentiable, seed=8)
    assert_bitwise_equal(again[0], got[0], "repeat")
    assert_bitwise_equal(list(again[1].values()), list(got[1].values()), "repeat gradients")
