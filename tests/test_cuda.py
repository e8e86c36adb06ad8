"""CUDA-only tests: the CUDA kernels against the CPU kernels (every loss, reduction and weight
kind), half/bfloat16 against float64, bit-identical repeats, no host syncs, CUDA graphs,
torch.compile(mode="reduce-overhead"), opcheck, 64-bit indexing and empty inputs.

Everything here skips without a GPU or without the CUDA kernels built; the device-generic
behaviour (validation messages, the maths against the reference) is tested per loss in
test_<loss>.py on both devices. Sizes are small: the whole file runs in seconds on a GPU, except
the `slow` >2^31-element case.
"""
import pytest
import torch

import sirenpose_loss as spl
from conftest import (F64, assert_bitwise_equal, assert_close, fresh_compile, op, rand_edge_index,
                      rand_mask, rand_weight, randn, seed_of)

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available() or not spl.cuda_kernels_built(),
                       reason="needs a CUDA GPU and the extension built with its CUDA kernels"),
]

CUDA = "cuda"
F32 = dict(rtol=1e-4, atol=1e-5)  # CUDA float32 (float arithmetic) vs CPU (double arithmetic)
LOW = {torch.float16: dict(rtol=1e-2, atol=2e-2), torch.bfloat16: dict(rtol=5e-2, atol=1e-1)}
REDUCTIONS = ["mean", "sum", "none"]
WEIGHTS = ["none", "shared", "batch", "mask", "zeros"]
K, D, BATCH = 17, 3, (2, 3)


# ------------------------------------------------------------------------------------ cases
def _weight(kind, batch_shape, rows, *, seed, dtype):
    """A per-row weight of the given kind on the CPU (moved by the caller)."""
    if kind == "none":
        return None
    if kind == "shared":
        return rand_weight(rows, seed=seed, dtype=dtype)
    if kind == "batch":
        return rand_weight(*batch_shape, rows, seed=seed, dtype=dtype)
    if kind == "mask":
        return rand_mask(*batch_shape, rows, seed=seed)
    return torch.zeros(rows, dtype=dtype)  # zero total weight: the mean is 0 with a 0 gradient


class Case:
    """One loss call: the leaves that get gradients, the constants, and the call."""

    def __init__(self, fn, leaves, consts):
        self.fn, self.leaves, self.consts = fn, leaves, consts

    def rounded(self, dtype):
        """The same case with every floating tensor rounded to dtype (kept in its own dtype)."""
        rnd = lambda v: v.to(dtype).to(v.dtype) if _floating(v) else v  # noqa: E731
        return Case(self.fn, [rnd(x) for x in self.leaves],
                    {k: rnd(v) for k, v in self.consts.items()})

    def on(self, device, dtype=None):
        """(call, leaves) with every tensor on device and floating ones in dtype (if given)."""
        def move(v):
            if not isinstance(v, torch.Tensor):
                return v
            return v.to(device=device, dtype=dtype if dtype and _floating(v) else v.dtype)
        consts = {k: move(v) for k, v in self.consts.items()}
        return (lambda *xs: self.fn(*xs, **consts)), [move(x) for x in self.leaves]


def _floating(v):
    return isinstance(v, torch.Tensor) and v.is_floating_point()


def kml_case(reduction, weight, dtype=torch.float64, batch=BATCH, k=K, d=D):
    s = seed_of("kml", reduction, weight, batch, k, d)
    pred, target = randn(*batch, k, d, seed=s, dtype=dtype), randn(*batch, k, d, seed=s + 1, dtype=dtype)
    w = _weight(weight, batch, k, seed=s + 2, dtype=dtype)
    return Case(lambda p, t, **c: spl.keypoint_match_loss(p, t, **c), [pred, target],
                dict(weight=w, reduction=reduction))


def scl_case(reduction, weight, order=1, dtype=torch.float64, batch=(2,), t=6, m=40, d=D):
    s = seed_of("scl", reduction, weight, order, batch, t, m, d)
    positions = randn(*batch, t, m, d, seed=s, dtype=dtype)
    w = _weight(weight, batch, m, seed=s + 1, dtype=dtype)
    return Case(lambda x, **c: spl.spatiotemporal_consistency_loss(x, **c), [positions],
                dict(weight=w, order=order, reduction=reduction))


def sirenpose_case(reduction, weight, edge_weight=False, with_pos=True, dtype=torch.float64,
                   batch=BATCH, k=K, d=D, num_edges=24, index_dtype=torch.int64):
    s = seed_of("sirenpose", reduction, weight, edge_weight, with_pos, batch, k, d, num_edges)
    # Normalised coordinates: the sine period at omega0 = 30 is ~0.21 units.
    pred = randn(*batch, k, d, seed=s, dtype=dtype, scale=0.1)
    target = randn(*batch, k, d, seed=s + 1, dtype=dtype, scale=0.1)
    ei = rand_edge_index(k, num_edges, seed=s + 2, dtype=index_dtype)
    w = _weight(weight, batch, k, seed=s + 3, dtype=dtype)
    ew = rand_weight(num_edges, seed=s + 4, dtype=dtype) if edge_weight else None
    loss = spl.sirenpose_loss if with_pos else spl.sin_graph_consistency_loss
    return Case(lambda p, t, edge_index, **c: loss(p, t, edge_index, **c), [pred, target],
                dict(edge_index=ei, weight=w, edge_weight=ew, reduction=reduction))


def all_cases():
    for r in REDUCTIONS:
        for w in WEIGHTS:
            yield f"kml-{r}-{w}", lambda r=r, w=w, **kw: kml_case(r, w, **kw)
            for order in (1, 2):
                yield f"scl{order}-{r}-{w}", lambda r=r, w=w, o=order, **kw: scl_case(r, w, o, **kw)
            for ew in (False, True):
                for pos in (True, False):
                    yield (f"sirenpose-{r}-{w}-ew{int(ew)}-pos{int(pos)}",
                           lambda r=r, w=w, ew=ew, pos=pos, **kw: sirenpose_case(r, w, ew, pos, **kw))


CASES = dict(all_cases())
# A few cases per loss for the (slower) machinery tests.
SMALL = {name: CASES[name] for name in
         ("kml-mean-batch", "scl1-mean-shared", "scl2-sum-none", "sirenpose-mean-batch-ew1-pos1",
          "sirenpose-none-shared-ew0-pos0")}


def _outputs(fn, leaves, *, grad_dtype=None):
    """(detached outputs, gradients of the leaves) after backpropagating a seeded incoming
    gradient through every output. The incoming gradient is drawn in float64 and rounded to
    grad_dtype (default: the output's dtype), so runs in different dtypes can get equal ones."""
    fresh = [x.detach().clone().requires_grad_(True) for x in leaves]
    out = fn(*fresh)
    outs = tuple(out) if isinstance(out, tuple) else (out,)
    grads_in = [randn(*o.shape, seed=7 + i, device=o.device).to(grad_dtype or o.dtype).to(o.dtype)
                for i, o in enumerate(outs)]
    pairs = [(o, g) for o, g in zip(outs, grads_in) if o.requires_grad]
    torch.autograd.backward([o for o, _ in pairs], [g for _, g in pairs])
    return [o.detach() for o in outs], [x.grad for x in fresh]


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


# ------------------------------------------------------------------------- CPU vs CUDA values
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("name", list(CASES))
def test_cuda_matches_cpu(name, dtype):
    case = CASES[name](dtype=dtype)
    want = _outputs(*case.on("cpu"))
    got = _outputs(*case.on(CUDA))
    _assert_same_results(got, want, F64 if dtype == torch.float64 else F32, name)


@pytest.mark.parametrize("case", [
    lambda: kml_case("mean", "batch", batch=(50, 40), k=17, d=2),          # 34k rows: 2 passes
    lambda: scl_case("mean", "shared", 1, batch=(2,), t=5, m=20000, d=3),  # multi-block sums
    lambda: scl_case("sum", "batch", 2, batch=(3,), t=7, m=999, d=5),      # generic-D path
    lambda: scl_case("none", "none", 1, batch=(), t=9, m=300, d=1),
    lambda: sirenpose_case("mean", "shared", True, batch=(300,), k=21, d=2, num_edges=40),
    lambda: sirenpose_case("sum", "none", False, batch=(5,), k=17, d=3, num_edges=16,
                           index_dtype=torch.int32),
], ids=["kml-large", "scl-large", "scl-d5", "scl-d1-nobatch", "sirenpose-large", "sirenpose-int32"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_cuda_matches_cpu_other_shapes(case, dtype):
    c = case()
    want = _outputs(*c.on("cpu", dtype))
    got = _outputs(*c.on(CUDA, dtype))
    _assert_same_results(got, want, F64 if dtype == torch.float64 else F32, "shape case")


# ------------------------------------------------------------------------- half and bfloat16
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["f16", "bf16"])
@pytest.mark.parametrize("name", ["kml-mean-batch", "kml-none-shared", "scl1-mean-batch",
                                  "scl2-none-shared", "sirenpose-mean-shared-ew1-pos1",
                                  "sirenpose-sum-none-ew0-pos0", "sirenpose-none-batch-ew0-pos1"])
def test_low_precision_against_float64(name, dtype):
    """The truth is the float64 CPU result on the very values the low-precision run sees
    (inputs, weights and incoming gradients rounded to dtype)."""
    case = CASES[name]()
    outs, grads = _outputs(*case.on(CUDA, dtype))
    ref_outs, ref_grads = _outputs(*case.rounded(dtype).on("cpu"), grad_dtype=dtype)
    for o, r in zip(outs, ref_outs):
        assert o.dtype == dtype and o.shape == r.shape
        assert_close(o.cpu().double(), r, **LOW[dtype])
    for g, r in zip(grads, ref_grads):
        assert g.dtype == dtype and g.shape == r.shape
        assert_close(g.cpu().double(), r, **LOW[dtype])


# ------------------------------------------------------------------------------ determinism
@pytest.mark.parametrize("case", [
    lambda: kml_case("mean", "batch", batch=(64, 64), d=2),
    lambda: scl_case("mean", "batch", 2, batch=(2,), t=8, m=30000),
    lambda: sirenpose_case("mean", "batch", True, batch=(512,), num_edges=32),
], ids=["kml", "scl", "sirenpose"])
def test_bit_identical_over_repeats(case):
    fn, leaves = case().on(CUDA, torch.float32)
    first = _outputs(fn, leaves)
    for _ in range(9):
        again = _outputs(fn, leaves)
        assert_bitwise_equal(again[0], first[0], "loss")
        assert_bitwise_equal(again[1], first[1], "grads")


@pytest.mark.parametrize("name", list(SMALL))
def test_same_bits_on_a_side_stream(name):
    """The kernels run on the current stream (not the default one) and give the same bits."""
    fn, leaves = SMALL[name]().on(CUDA, torch.float32)
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
    fn, leaves = SMALL[name]().on(CUDA, torch.float32)
    _outputs(fn, leaves)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        _total(fn(*leaves)).backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")


# ------------------------------------------------------------------- CUDA graphs and compile
@pytest.mark.parametrize("name", list(SMALL))
def test_cuda_graph_capture_and_replay(name):
    case = SMALL[name]()
    fn, leaves = case.on(CUDA, torch.float32)
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
    fn, leaves = SMALL[name]().on(CUDA, torch.float32)

    def step(*xs):
        return _total(fn(*xs))

    compiled = fresh_compile(step, mode="reduce-overhead")
    want = _outputs(step, leaves)
    for _ in range(3):  # warm-up, record, then replay the CUDA graph
        torch.compiler.cudagraph_mark_step_begin()
        got = _outputs(compiled, leaves)
        assert_close(got[0][0], want[0][0], **F32)
        for g, w in zip(got[1], want[1]):
            assert_close(g, w, **F32)


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
