"""The CUDA kernels' code, run on the host, against the CPU ops and a bit-exact model.

Needs no GPU: tests/host_emulation/ compiles the kernels' host+device code (per-item work, the
warp shuffle tree, block sums, the two-pass finisher) with g++ and runs it over an emulated grid
(see tests/host_emulation/exec.h). What it checks:
* the order of additions of every scalar reduction equals an independent model of the GPU's
  (grid-stride items per thread, the shuffle tree with offsets 16..1, warp totals in warp order,
  the single-block shortcut, a final pass over up to 1024 blocks), bit for bit;
* every loss's forward and backward, for every dtype, reduction, weight kind and D, agrees with
  the CPU op; SCL for any chunking of the time axis; bad CSRs give NaN instead of garbage.
What it cannot check: the kernels' launch, memory and warp-synchronous behaviour on a GPU, and
the device's own float arithmetic (nvcc fuses multiply-adds; the emulation does not).
"""
import ctypes
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import TEST_REFERENCE, needs_compiled  # noqa: E402
from host_emulation import loader  # noqa: E402

from sirenpose_loss._graph_ops import graph_incidence  # noqa: E402
from sirenpose_loss._incidence import build_incidence  # noqa: E402
from sirenpose_loss._ops import REDUCTION_CODES  # noqa: E402

pytestmark = needs_compiled
OPS = torch.ops.sirenpose_loss
DTYPES = {torch.float32: 0, torch.float64: 1, torch.float16: 2, torch.bfloat16: 3}
REDUCTIONS = REDUCTION_CODES  # the codes the compiled library exports
THREADS, WARP = 256, 32


@pytest.fixture(scope="module")
def emu():
    if loader.compiler() is None:
        if not TEST_REFERENCE:
            pytest.fail("no host C++ compiler (g++ or $CXX) to build the host emulation")
        pytest.skip("no host C++ compiler (g++ or $CXX) to build the host emulation")
    return loader.load()


def ptr(t):
    return None if t is None or t.numel() == 0 else t.data_ptr()


def rand(gen, *shape, dtype=torch.float64, scale=1.0):
    return (scale * torch.randn(shape, generator=gen, dtype=torch.float64)).to(dtype)


def weights(gen, kind, batch, rows, dtype):
    """(weight tensor or None, shared flag): none, one per row ([rows]) or per batch entry."""
    if kind == "none":
        return None, 0
    shape = (rows,) if kind == "shared" else (batch, rows)
    return (0.25 + torch.rand(*shape, generator=gen, dtype=torch.float64)).to(dtype), int(
        kind == "shared")


def tolerance(dtype, ref):
    """What separates the emulation (float arithmetic for float32/16, its own summation order)
    from the CPU op: a few roundings of the output dtype, relative to the output's magnitude."""
    rel = {torch.float64: 1e-10, torch.float32: 5e-5, torch.float16: 2e-3,
           torch.bfloat16: 1.6e-2}[dtype]
    finite = ref[torch.isfinite(ref)].double()
    scale = float(finite.abs().max()) if finite.numel() else 1.0
    return dict(rtol=rel, atol=rel * max(scale, 1e-30), equal_nan=True)


def assert_matches(got, ref, dtype, what):
    torch.testing.assert_close(got.double(), ref.double(), **tolerance(dtype, ref),
                               msg=lambda m: f"{what}: {m}")


def incoming(gen, reduction, shape, dtype):
    """The incoming gradient of the terms (none) or of the reduced loss."""
    return rand(gen, *(shape if reduction == "none" else ()), dtype=dtype)


# ------------------------------------------------------------------ the order of additions
def model_tree(v):
    """__shfl_down_sync tree over the lanes (axis -2): lane l += lane l + offset, offsets 16..1."""
    lane = np.arange(WARP)
    for offset in (16, 8, 4, 2, 1):
        v = v + v[..., np.where(lane + offset < WARP, lane + offset, lane), :]
    return v[..., 0, :]


def model_block(threads):
    """A block's totals: each warp's tree, then warp 0's tree over the warp totals (8 lanes)."""
    totals = model_tree(threads.reshape(THREADS // WARP, WARP, -1))
    second = np.zeros((WARP, threads.shape[1]))
    second[: THREADS // WARP] = totals
    return model_tree(second)


def model_thread_sums(items, threads):
    """Each of `threads` threads adds items t, t + threads, ... in order, starting from 0."""
    acc = np.zeros((threads, items.shape[1]))
    for start in range(0, items.shape[0], threads):
        chunk = items[start:start + threads]
        acc[: chunk.shape[0]] = acc[: chunk.shape[0]] + chunk
    return acc


def model_reduce(items, blocks):
    per_thread = model_thread_sums(items, blocks * THREADS)
    partials = np.stack([model_block(per_thread[b * THREADS:(b + 1) * THREADS])
                         for b in range(blocks)])
    if blocks == 1:
        return partials[0]
    return model_block(model_thread_sums(partials, THREADS))


def emulated_sum(emu, x, blocks):
    out = np.zeros(2)
    emu.emu_sum(x.ctypes.data, x.size, blocks, out.ctypes.data)
    return out


@pytest.mark.parametrize("n, blocks", [(1, 1), (255, 1), (5000, 1), (5000, 2), (70000, 7),
                                       (70000, 256), (70000, 257), (300000, 1024), (100, 300)])
def test_reduction_order_is_the_model_bit_for_bit(emu, n, blocks):
    rng = np.random.default_rng(n + blocks)
    # Magnitudes spread over 2^-30..2^30, so any change of the order changes the bits.
    x = rng.standard_normal(n) * np.exp2(rng.integers(-30, 30, n))
    items = np.stack([x, x * x], axis=1)
    got = emulated_sum(emu, x, blocks)
    want = model_reduce(items, blocks)
    assert got.tobytes() == want.tobytes(), (got, want)
    assert got[0] != 0.0 and np.isclose(got[0], x.sum(), rtol=1e-6, atol=1e-6 * np.abs(x).sum())


def test_reduction_order_depends_on_the_grid(emu):
    # The grid is part of the summation tree: that is why reduce_blocks depends on the problem
    # size only. (A test that the model is not trivially order-free.)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(100000) * np.exp2(rng.integers(-30, 30, 100000))
    sums = {emulated_sum(emu, x, b)[0] for b in (1, 2, 3, 257, 1024)}
    assert len(sums) > 1


def test_reduce_blocks_is_capped_and_exceeds_256(emu):
    assert emu.emu_reduce_blocks(0, 3) == 1
    assert emu.emu_reduce_blocks(100, 3) == 1
    assert emu.emu_kml_blocks(200000, 3) > 256
    assert emu.emu_reduce_blocks(10**9, 3) == 1024


# ----------------------------------------------------------------------------- keypoint match
def kml_emulated(emu, pred, target, weight, shared, reduction, grad, denom, blocks=0):
    dtype, K, D = pred.dtype, pred.shape[-2], pred.shape[-1]
    rows = pred.numel() // D
    code, red = DTYPES[dtype], REDUCTIONS[reduction]
    out = torch.empty(pred.shape[:-1] if reduction == "none" else (), dtype=dtype)
    d = torch.empty((), dtype=torch.float64)
    assert emu.emu_kml_fwd(code, ptr(pred), ptr(target), ptr(weight), shared, rows, K, D, red,
                           ptr(out), ptr(d), blocks) == 0
    gp, gt = torch.empty_like(pred), torch.empty_like(target)
    assert emu.emu_kml_bwd(code, ptr(pred), ptr(target), ptr(weight), shared, rows, K, D, red,
                           ptr(grad), ptr(denom), ptr(gp), ptr(gt)) == 0
    return out, d, gp, gt


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("reduction", list(REDUCTIONS))
@pytest.mark.parametrize("wkind", ["none", "shared", "batch"])
def test_keypoint_match_matches_cpu(emu, dtype, reduction, wkind):
    gen = torch.Generator().manual_seed(1)
    for batch, K, D in [(3, 17, 3), (2, 5, 1), (1, 40, 2), (4, 9, 5)]:
        pred, target = rand(gen, batch, K, D, dtype=dtype), rand(gen, batch, K, D, dtype=dtype)
        weight, shared = weights(gen, wkind, batch, K, dtype)
        red = REDUCTIONS[reduction]
        loss, denom = OPS.keypoint_match_fwd(pred, target, weight, red)
        grad = incoming(gen, reduction, (batch, K), dtype)
        gp, gt = OPS.keypoint_match_bwd(grad, pred, target, weight, denom, red, [True, True])
        e_loss, e_denom, e_gp, e_gt = kml_emulated(emu, pred, target, weight, shared, reduction,
                                                   grad, denom)
        assert_matches(e_loss, loss, dtype, "loss")
        torch.testing.assert_close(e_denom, denom.reshape(()), rtol=1e-15, atol=0)
        assert_matches(e_gp, gp, dtype, "grad_pred")
        assert_matches(e_gt, gt, dtype, "grad_target")


def test_keypoint_match_more_than_256_blocks(emu):
    gen = torch.Generator().manual_seed(2)
    pred, target = rand(gen, 200000, 1, 3), rand(gen, 200000, 1, 3)
    assert emu.emu_kml_blocks(200000, 3) > 256
    loss, denom = OPS.keypoint_match_fwd(pred, target, None, REDUCTIONS["mean"])
    grad = torch.ones((), dtype=torch.float64)
    e_loss, _, _, _ = kml_emulated(emu, pred, target, None, 0, "mean", grad, denom)
    torch.testing.assert_close(e_loss, loss, rtol=1e-13, atol=0)


# ------------------------------------------------------------------ spatio-temporal consistency
PLAN_KEYS = ("fwd_chunk", "fwd_items", "fwd_blocks", "bwd_chunk", "bwd_items", "bwd_blocks")


def scl_plan(emu, batch, T, M, D, order):
    """The SCL kernels' launch plan (spatiotemporal_consistency_cuda.h) for one problem."""
    out = (ctypes.c_int64 * len(PLAN_KEYS))()
    emu.emu_scl_plan(batch, T, M, D, order, out)
    return dict(zip(PLAN_KEYS, out))


def scl_emulated(emu, positions, weight, shared, order, reduction, grad, denom, chunk=0):
    dtype = positions.dtype
    batch, (T, M, D) = positions.shape[0], positions.shape[1:]
    steps = max(T - order, 0)
    code, red = DTYPES[dtype], REDUCTIONS[reduction]
    out = torch.empty((batch, steps, M) if reduction == "none" else (), dtype=dtype)
    d = torch.empty((), dtype=torch.float64)
    assert emu.emu_scl_fwd(code, ptr(positions), ptr(weight), shared, batch, T, M, D, order, red,
                           ptr(out), ptr(d), 0, chunk) == 0
    g = torch.empty_like(positions)
    assert emu.emu_scl_bwd(code, ptr(positions), ptr(weight), shared, batch, T, M, D, order, red,
                           ptr(grad), ptr(denom), ptr(g), chunk) == 0
    return out, d, g


SCL_SHAPES = [(2, 40, 5, 3), (1, 7, 3, 2), (3, 3, 4, 1), (2, 23, 2, 5), (1, 100, 4, 3)]


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("reduction", list(REDUCTIONS))
@pytest.mark.parametrize("wkind", ["none", "shared", "batch"])
@pytest.mark.parametrize("order", [1, 2])
def test_spatiotemporal_consistency_matches_cpu(emu, dtype, reduction, wkind, order):
    gen = torch.Generator().manual_seed(3)
    for batch, T, M, D in SCL_SHAPES:
        positions = rand(gen, batch, T, M, D, dtype=dtype)
        weight, shared = weights(gen, wkind, batch, M, dtype)
        red = REDUCTIONS[reduction]
        loss, denom = OPS.spatiotemporal_consistency_fwd(positions, weight, order, red)
        grad = incoming(gen, reduction, (batch, T - order, M), dtype)
        g = OPS.spatiotemporal_consistency_bwd(grad, positions, weight, denom, order, red)
        e_loss, e_denom, e_g = scl_emulated(emu, positions, weight, shared, order, reduction,
                                            grad, denom)
        assert_matches(e_loss, loss, dtype, f"loss {batch, T, M, D}")
        torch.testing.assert_close(e_denom, denom.reshape(()), rtol=1e-15, atol=0)
        assert_matches(e_g, g, dtype, f"grad {batch, T, M, D}")


@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("D", [1, 2, 3])
def test_spatiotemporal_consistency_any_chunking(emu, order, D):
    # Every chunk length gives the CPU's terms; the backward is the same bits for every chunk
    # length (each chunk replays the terms before it), the forward's sum only regroups.
    gen = torch.Generator().manual_seed(4)
    positions = rand(gen, 2, 37, 3, D)
    weight, shared = weights(gen, "batch", 2, 3, torch.float64)
    grad = rand(gen, 2, 37 - order, 3)
    terms, _ = OPS.spatiotemporal_consistency_fwd(positions, weight, order, 0)
    loss, denom = OPS.spatiotemporal_consistency_fwd(positions, weight, order, 1)
    ref_g = OPS.spatiotemporal_consistency_bwd(grad, positions, weight, denom, order, 0)
    grads = []
    for chunk in (1, 2, 3, 5, 16, 35, 37, 100):
        e_terms, _, e_g = scl_emulated(emu, positions, weight, shared, order, "none", grad, denom,
                                       chunk)
        e_loss, _, _ = scl_emulated(emu, positions, weight, shared, order, "mean", grad, denom,
                                    chunk)
        torch.testing.assert_close(e_terms, terms, rtol=1e-13, atol=1e-15)
        torch.testing.assert_close(e_loss, loss, rtol=1e-13, atol=0)
        torch.testing.assert_close(e_g, ref_g, rtol=1e-12, atol=1e-14)
        grads.append(e_g)
    assert all(torch.equal(g, grads[0]) for g in grads)


# 132 SMs x 4 resident blocks of 256 threads (the SCL float kernels' launch bounds).
FULL_GPU_THREADS = 132 * 4 * THREADS


@pytest.mark.parametrize("batch, M, T", [(1, 10**4, 300), (1, 10**6, 32), (64, 1000, 300),
                                         (1, 17, 3), (2, 3, 5000), (1, 1, 2)])
def test_spatiotemporal_launch_fills_the_gpu(emu, batch, M, T):
    # The time axis is chunked until the grid fills a 132-SM GPU whenever the problem has that
    # much work, never into chunks shorter than 8; the plan depends on the sizes only.
    for order in (1, 2):
        steps = T - order
        if steps <= 0:  # no terms: the glue returns before any launch
            continue
        plan = scl_plan(emu, batch, T, M, 3, order)
        assert plan == scl_plan(emu, batch, T, M, 3, order)
        for kind, length, columns in (("fwd", steps, batch * M), ("bwd", T, batch * M * 3)):
            chunk, items = plan[f"{kind}_chunk"], plan[f"{kind}_items"]
            assert min(8, length) <= chunk <= length
            assert items == columns * -(-length // chunk)
            if columns * -(-length // 8) >= FULL_GPU_THREADS:  # enough work to fill the GPU
                assert min(items, plan[f"{kind}_blocks"] * THREADS) >= FULL_GPU_THREADS
        assert plan["fwd_blocks"] == min(-(-plan["fwd_items"] // THREADS), 1024)


# ----------------------------------------------------------------------------------- sirenpose
def random_graph(gen, K, E, index_dtype):
    src = torch.randint(0, K, (E,), generator=gen)
    dst = (src + 1 + torch.randint(0, K - 1, (E,), generator=gen)) % K
    return torch.stack([src, dst]).to(index_dtype)


def siren_emulated(emu, pred, target, edges, weight, shared, edge_weight, omega0, lam, with_pos,
                   reduction, grad_pos, grad_geo, denom, inc_ptr, inc_slot, mask=(True, True)):
    dtype = pred.dtype
    batch, K, D = pred.shape
    E = edges.shape[1]
    code, index, red = DTYPES[dtype], int(edges.dtype == torch.int32), REDUCTIONS[reduction]
    common = (code, index, ptr(pred), ptr(target), ptr(edges), ptr(weight), shared,
              ptr(edge_weight), batch, K, D, E, omega0, lam, int(with_pos), red)
    if reduction == "none":
        loss = torch.empty(0, dtype=dtype)
        pos = torch.empty((batch, K) if with_pos else (0,), dtype=dtype)
        geo = torch.empty((batch, E), dtype=dtype)
    else:
        loss, pos, geo = (torch.empty((), dtype=dtype) for _ in range(3))
    d = torch.empty(2, dtype=torch.float64)
    assert emu.emu_siren_fwd(*common, ptr(loss), ptr(pos), ptr(geo), ptr(d), 0) == 0
    gp = torch.full_like(pred, 7.0) if mask[0] else None
    gt = torch.full_like(target, 7.0) if mask[1] else None
    assert emu.emu_siren_bwd(*common, ptr(grad_pos), ptr(grad_geo), ptr(denom), ptr(inc_ptr),
                             ptr(inc_slot), ptr(gp), ptr(gt)) == 0
    return loss, pos, geo, d, gp, gt


def siren_case(gen, dtype, reduction, wkind, batch, K, D, E, with_pos, index_dtype, ew):
    pred = rand(gen, batch, K, D, dtype=dtype, scale=0.5)
    target = rand(gen, batch, K, D, dtype=dtype, scale=0.5)
    edges = random_graph(gen, K, E, index_dtype)
    weight, shared = weights(gen, wkind, batch, K, dtype)
    edge_weight = (0.5 + torch.rand(E, generator=gen, dtype=torch.float64)).to(dtype) if ew else None
    grad_pos = incoming(gen, reduction, (batch, K), dtype) if with_pos else torch.empty(0, dtype=dtype)
    grad_geo = incoming(gen, reduction, (batch, E), dtype)
    return pred, target, edges, weight, shared, edge_weight, grad_pos, grad_geo


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("reduction", list(REDUCTIONS))
@pytest.mark.parametrize("wkind", ["none", "shared", "batch"])
def test_sirenpose_matches_cpu(emu, dtype, reduction, wkind):
    gen = torch.Generator().manual_seed(5)
    red = REDUCTIONS[reduction]
    for batch, K, D, E, with_pos, index_dtype, ew, omega0 in [
            (2, 17, 3, 30, True, torch.int64, True, 1.0), (1, 6, 2, 9, False, torch.int32, False, 3.0),
            (3, 11, 5, 25, True, torch.int32, False, 0.7), (2, 4, 1, 7, False, torch.int64, True, 1.5)]:
        pred, target, edges, weight, shared, edge_weight, grad_pos, grad_geo = siren_case(
            gen, dtype, reduction, wkind, batch, K, D, E, with_pos, index_dtype, ew)
        lam = 0.8
        loss, pos, geo, denom = OPS.sirenpose_fwd(pred, target, edges, weight, edge_weight, omega0,
                                                  lam, with_pos, red)
        inc_ptr, inc_slot = build_incidence(edges, K)
        gp, gt = OPS.sirenpose_bwd(grad_pos, grad_geo, pred, target, edges, weight, edge_weight,
                                   denom, inc_ptr, inc_slot, omega0, lam, with_pos, red,
                                   [True, True])
        e = siren_emulated(emu, pred, target, edges, weight, shared, edge_weight, omega0, lam,
                           with_pos, reduction, grad_pos, grad_geo, denom, inc_ptr, inc_slot)
        what = f"{batch, K, D, E, with_pos}"
        if reduction != "none":
            assert_matches(e[0], loss, dtype, "loss " + what)
        if with_pos or reduction != "none":
            assert_matches(e[1], pos, dtype, "pos " + what)
        assert_matches(e[2], geo, dtype, "geo " + what)
        torch.testing.assert_close(e[3], denom, rtol=1e-15, atol=0)
        assert_matches(e[4], gp, dtype, "grad_pred " + what)
        assert_matches(e[5], gt, dtype, "grad_target " + what)


def test_sirenpose_single_gradient_output(emu):
    gen = torch.Generator().manual_seed(6)
    pred, target, edges, weight, shared, ew, gpos, ggeo = siren_case(
        gen, torch.float64, "sum", "batch", 2, 9, 3, 14, True, torch.int64, True)
    _, _, _, denom = OPS.sirenpose_fwd(pred, target, edges, weight, ew, 1.0, 1.0, True, 2)
    inc = build_incidence(edges, 9)
    ref = OPS.sirenpose_bwd(gpos, ggeo, pred, target, edges, weight, ew, denom, *inc, 1.0, 1.0,
                            True, 2, [True, True])
    for mask in ((True, False), (False, True)):
        e = siren_emulated(emu, pred, target, edges, weight, shared, ew, 1.0, 1.0, True, "sum",
                           gpos, ggeo, denom, *inc, mask=mask)
        got = e[4] if mask[0] else e[5]
        torch.testing.assert_close(got, ref[0] if mask[0] else ref[1], rtol=1e-12, atol=1e-14)


def corrupt(inc_ptr, inc_slot, how):
    """A CSR that names the wrong endpoints, and the nodes whose gradients it must poison."""
    inc_ptr, inc_slot = inc_ptr.clone(), inc_slot.clone()
    counts = inc_ptr[1:] - inc_ptr[:-1]
    n = int(torch.nonzero(counts >= 2)[0])
    lo = int(inc_ptr[n])
    if how == "repeated slot":  # the node's first slot twice: one endpoint counted twice
        inc_slot[lo + 1] = inc_slot[lo]
    elif how == "out of order":
        inc_slot[lo], inc_slot[lo + 1] = inc_slot[lo + 1].clone(), inc_slot[lo].clone()
    elif how == "foreign slot":  # another node's slot
        inc_slot[lo] = inc_slot[int(inc_ptr[n + 1])] if n + 1 < len(counts) else inc_slot[0]
    elif how == "slot out of range":
        inc_slot[lo] = 2 * inc_slot.numel()
    elif how == "ptr not from 0":
        inc_ptr[0] = 1
        return inc_ptr, inc_slot, None
    elif how == "ptr decreasing":
        inc_ptr[n + 1] = inc_ptr[n] - 1
    return inc_ptr, inc_slot, n


@pytest.mark.parametrize("how", ["repeated slot", "out of order", "foreign slot",
                                 "slot out of range", "ptr not from 0", "ptr decreasing"])
def test_sirenpose_bad_csr_poisons_with_nan(emu, how):
    gen = torch.Generator().manual_seed(7)
    pred, target, edges, weight, shared, ew, gpos, ggeo = siren_case(
        gen, torch.float64, "mean", "none", 2, 8, 3, 20, True, torch.int64, False)
    _, _, _, denom = OPS.sirenpose_fwd(pred, target, edges, None, None, 1.0, 1.0, True, 1)
    inc_ptr, inc_slot, node = corrupt(*build_incidence(edges, 8), how)
    e = siren_emulated(emu, pred, target, edges, None, 0, None, 1.0, 1.0, True, "mean", gpos, ggeo,
                       denom, inc_ptr, inc_slot)
    gp = e[4]
    if node is None:
        assert torch.isnan(gp).all()
    else:
        assert torch.isnan(gp[:, node]).all()
        others = torch.ones(8, dtype=torch.bool)
        others[node] = False
        if how != "ptr decreasing":  # a decreasing ptr also spoils the next node's range
            assert torch.isfinite(gp[:, others]).all()


# ----------------------------------------------------------- neighbour-graph losses (shared)
def graph_inputs(gen, dtype, batch, M, E, weighted):
    """A random graph with no self-loops, its packed incidence and optional edge weights."""
    edges = random_graph(gen, M, E, torch.int64)
    ew = (0.5 + torch.rand(E, generator=gen, dtype=torch.float64)).to(dtype) if weighted else None
    return edges, graph_incidence(edges, M), ew


def assert_graph_matches(got, ref, dtype, exact, what):
    """Bit-identical where the emulation does the CPU op's arithmetic, else within tolerance."""
    if exact:
        assert torch.equal(got, ref), f"{what}: not bit-identical, max diff " \
            f"{(got.double() - ref.double()).abs().max()}"
    else:
        assert_matches(got, ref, dtype, what)


GRAPH_DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]


# ------------------------------------------------------------------------- graph smoothness
def smooth_emulated(emu, f, edges, inc, ew, penalty, reduction, grad, denom, blocks=0):
    dtype, (M, C), E = f.dtype, f.shape[-2:], edges.shape[1]
    batch = f.numel() // (M * C)
    none = reduction == "none"
    terms = torch.empty((batch, E) if none else (0,), dtype=dtype)
    loss = torch.empty((0,) if none else (), dtype=dtype)
    d = torch.empty((), dtype=torch.float64)
    common = (DTYPES[dtype], ptr(f), ptr(edges), ptr(inc), ptr(ew), batch, M, C, E, penalty,
              REDUCTIONS[reduction])
    assert emu.emu_smooth_fwd(*common, ptr(loss), ptr(terms), ptr(d), blocks) == 0
    g = torch.full_like(f, 7.0)
    assert emu.emu_smooth_bwd(*common, ptr(grad), ptr(denom), ptr(g)) == 0
    return (terms if none else loss), d, g


def smooth_cpu(f, edges, inc, ew, penalty, reduction, grad):
    red = REDUCTIONS[reduction]
    _, out, state = OPS.graph_smoothness_fwd(f, edges, ew, inc, penalty, red)
    g = OPS.graph_smoothness_bwd([grad], f, edges, ew, inc, penalty, red, state, [True])
    return out, state, g


@pytest.mark.parametrize("dtype", GRAPH_DTYPES)
@pytest.mark.parametrize("reduction", list(REDUCTIONS))
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("penalty", [0, 1])
def test_graph_smoothness_matches_cpu(emu, dtype, reduction, weighted, penalty):
    # Terms are the CPU's bits (same double arithmetic); the sums regroup (CPU: edge chunks of
    # 2048, GPU: the grid); the gradient is the CPU's bits except that mean/sum scale it by a
    # coefficient rounded to the accumulation type (float for float32) on the device.
    gen = torch.Generator().manual_seed(8)
    for batch, M, C, E in [(2, 9, 3, 20), (1, 5, 1, 7), (3, 12, 4, 30), (1, 40, 2, 25)]:
        f = rand(gen, batch, M, C, dtype=dtype)
        edges, inc, ew = graph_inputs(gen, dtype, batch, M, E, weighted)
        grad = incoming(gen, reduction, (batch, E), dtype)
        out, state, g = smooth_cpu(f, edges, inc, ew, penalty, reduction, grad)
        e_out, e_denom, e_g = smooth_emulated(emu, f, edges, inc, ew, penalty, reduction, grad,
                                              state)
        what = f"{batch, M, C, E}"
        assert_graph_matches(e_out, out, dtype, reduction == "none", "loss/terms " + what)
        torch.testing.assert_close(e_denom, state.reshape(()), rtol=1e-13, atol=0)
        exact = reduction == "none" or dtype == torch.float64
        assert_graph_matches(e_g, g, dtype, exact, "grad " + what)


def test_graph_smoothness_more_than_256_blocks(emu):
    gen = torch.Generator().manual_seed(9)
    M, C, E = 5000, 3, 200000
    assert emu.emu_smooth_blocks(1, C, E) > 256
    f = rand(gen, 1, M, C)
    edges, inc, ew = graph_inputs(gen, torch.float64, 1, M, E, True)
    for penalty in (0, 1):
        grad = torch.tensor(0.75, dtype=torch.float64)
        loss, state, g = smooth_cpu(f, edges, inc, ew, penalty, "mean", grad)
        e_loss, e_denom, e_g = smooth_emulated(emu, f, edges, inc, ew, penalty, "mean", grad,
                                               state)
        torch.testing.assert_close(e_loss, loss, rtol=1e-13, atol=0)
        torch.testing.assert_close(e_denom, state.reshape(()), rtol=1e-13, atol=0)
        assert torch.equal(e_g, g)


# ------------------------------------------------------------------------------------- ARAP
def arap_rest(gen, kind, batch, M, dtype):
    """rest_positions of kind first frame (None), shared [M, 3] or per batch entry, with the
    (pointer source, stride) the glue passes for it."""
    if kind == "first":
        return None
    return rand(gen, *((M, 3) if kind == "shared" else (batch, M, 3)), dtype=dtype)


def arap_emulated(emu, x, edges, inc, rest, ew, reduction, grad, state, blocks=0):
    dtype, (batch, T, M) = x.dtype, x.shape[:3]
    E = edges.shape[1]
    stride = T * M * 3 if rest is None else (0 if rest.dim() == 2 else M * 3)
    none = reduction == "none"
    terms = torch.empty((batch, T, E) if none else (0,), dtype=dtype)
    loss = torch.empty((0,) if none else (), dtype=dtype)
    s = torch.zeros(1 + batch * T * M * 9, dtype=torch.float64)
    common = (DTYPES[dtype], ptr(x), ptr(x if rest is None else rest), stride, ptr(edges),
              ptr(inc), ptr(ew), batch, T, M, E, REDUCTIONS[reduction])
    assert emu.emu_arap_fwd(*common, ptr(loss), ptr(terms), ptr(s), blocks) == 0
    g = torch.full_like(x, 7.0)
    assert emu.emu_arap_bwd(*common, ptr(grad), ptr(state), ptr(g)) == 0
    return (terms if none else loss), s, g


def arap_cpu(x, edges, inc, rest, ew, reduction, grad):
    red = REDUCTIONS[reduction]
    _, out, state = OPS.arap_fwd(x, edges, rest, ew, inc, red)
    g = OPS.arap_bwd([grad], x, edges, rest, ew, inc, red, state, [True])
    return out, state, g


@pytest.mark.parametrize("dtype", GRAPH_DTYPES)
@pytest.mark.parametrize("reduction", list(REDUCTIONS))
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("rest_kind", ["first", "shared", "batch"])
def test_arap_matches_cpu(emu, dtype, reduction, weighted, rest_kind):
    # Rotations, terms and gradients are the CPU's bits (the same double arithmetic in the same
    # edge order); the loss and the denominator regroup their sums.
    gen = torch.Generator().manual_seed(10)
    for batch, T, M, E in [(2, 3, 9, 20), (1, 1, 5, 7), (1, 4, 12, 30), (3, 2, 6, 15)]:
        x = rand(gen, batch, T, M, 3, dtype=dtype)
        rest = arap_rest(gen, rest_kind, batch, M, dtype)
        edges, inc, ew = graph_inputs(gen, dtype, batch, M, E, weighted)
        grad = incoming(gen, reduction, (batch, T, E), dtype)
        out, state, g = arap_cpu(x, edges, inc, rest, ew, reduction, grad)
        e_out, e_state, e_g = arap_emulated(emu, x, edges, inc, rest, ew, reduction, grad, state)
        what = f"{batch, T, M, E}"
        assert torch.equal(e_state[1:], state[1:]), "rotations " + what
        torch.testing.assert_close(e_state[0], state[0], rtol=1e-13, atol=0)
        assert_graph_matches(e_out, out, dtype, reduction == "none", "loss/terms " + what)
        assert_graph_matches(e_g, g, dtype, True, "grad " + what)


def test_arap_more_than_256_blocks(emu):
    gen = torch.Generator().manual_seed(11)
    batch, T, M, E = 1, 2, 3000, 40000
    assert emu.emu_arap_blocks(batch * T, E) > 256
    x = rand(gen, batch, T, M, 3)
    edges, inc, ew = graph_inputs(gen, torch.float64, batch, M, E, True)
    grad = torch.tensor(1.25, dtype=torch.float64)
    loss, state, g = arap_cpu(x, edges, inc, None, ew, "sum", grad)
    e_loss, e_state, e_g = arap_emulated(emu, x, edges, inc, None, ew, "sum", grad, state)
    torch.testing.assert_close(e_loss, loss, rtol=1e-13, atol=0)
    assert torch.equal(e_state[1:], state[1:])
    assert torch.equal(e_g, g)


# ----------------------------------------------------------------------- the rigidity trio
TRIO_STEPS = (lambda T: T - 1, lambda T: T - 1, lambda T: T)  # frames of rigid, rotation, iso
LAMBDAS = [1.0, 0.5, 2.0]


def trio_case(gen, dtype, terms, batch, T, M, E, weighted, with_rest):
    x = rand(gen, batch, T, M, 3, dtype=dtype) if terms & 5 else None
    q = rand(gen, batch, T, M, 4, dtype=dtype) if terms & 3 else None
    edges, inc, ew = graph_inputs(gen, dtype, batch, M, E, weighted)
    rest = (0.5 + torch.rand(E, generator=gen, dtype=torch.float64)).to(dtype) if with_rest else None
    return x, q, edges, inc, ew, rest


def trio_emulated(emu, x, q, edges, inc, rest, ew, terms, penalty, reduction, grads, denom,
                  blocks=0):
    like = x if x is not None else q
    dtype, (batch, T, M) = like.dtype, like.shape[:3]
    E = edges.shape[1]
    none = reduction == "none"
    lambdas = np.array(LAMBDAS)
    outs = [torch.empty((batch, TRIO_STEPS[k](T), E) if none else (), dtype=dtype)
            if terms >> k & 1 else None for k in range(3)]
    loss = torch.empty((0,) if none else (), dtype=dtype)
    d = torch.empty(3, dtype=torch.float64)
    common = (DTYPES[dtype], ptr(x), ptr(q), ptr(edges), ptr(inc), ptr(rest), ptr(ew), batch, T, M,
              E, terms, penalty, lambdas.ctypes.data, REDUCTIONS[reduction])
    if not none:  # the finisher writes every term's 0-dim output
        outs = [torch.empty((), dtype=dtype) for _ in range(3)]
    assert emu.emu_trio_fwd(*common, ptr(loss), *(ptr(o) for o in outs), ptr(d), blocks) == 0
    gx = None if x is None else torch.full_like(x, 7.0)
    gq = None if q is None else torch.full_like(q, 7.0)
    g3 = list(grads) + [None] * (3 - len(grads))
    assert emu.emu_trio_bwd(*common, *(ptr(g) for g in g3), ptr(denom), ptr(gx), ptr(gq)) == 0
    return loss, outs, d, gx, gq


def trio_cpu(x, q, edges, inc, rest, ew, terms, penalty, reduction, grads):
    red = REDUCTIONS[reduction]
    loss, *outs, state = OPS.rigidity_fwd(x, q, edges, rest, ew, inc, LAMBDAS, terms, penalty, red)
    gx, gq = OPS.rigidity_bwd(grads, x, q, edges, rest, ew, inc, LAMBDAS, terms, penalty, red,
                              state, [True, True])
    return loss, outs, state, gx, gq


def trio_grads(gen, terms, reduction, batch, T, E, dtype):
    if reduction != "none":
        return [rand(gen, dtype=dtype)]
    return [rand(gen, batch, TRIO_STEPS[k](T), E, dtype=dtype) if terms >> k & 1
            else torch.empty(0, dtype=dtype) for k in range(3)]


@pytest.mark.parametrize("dtype", GRAPH_DTYPES)
@pytest.mark.parametrize("reduction", list(REDUCTIONS))
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("penalty", [0, 1])
def test_rigidity_matches_cpu(emu, dtype, reduction, weighted, penalty):
    # Terms are the CPU's bits; the sums regroup (the loss and each term's reduced value, and the
    # weight total in the denominators). Gradients regroup too: the kernel keeps a node's
    # incoming, outgoing and carried frame-pair parts in double registers, the CPU adds them to
    # the output pass by pass (rounding to the dtype in between), so they agree within the
    # dtype's tolerance, not bit for bit.
    gen = torch.Generator().manual_seed(12)
    for terms, (batch, T, M, E), with_rest in [
            (7, (2, 3, 9, 20), True), (1, (1, 2, 5, 7), False), (2, (1, 4, 12, 30), False),
            (4, (3, 2, 6, 15), True), (5, (2, 1, 8, 12), True), (3, (1, 3, 7, 16), False)]:
        x, q, edges, inc, ew, rest = trio_case(gen, dtype, terms, batch, T, M, E, weighted,
                                               with_rest)
        grads = trio_grads(gen, terms, reduction, batch, T, E, dtype)
        loss, outs, state, gx, gq = trio_cpu(x, q, edges, inc, rest, ew, terms, penalty,
                                             reduction, grads)
        e_loss, e_outs, e_denom, e_gx, e_gq = trio_emulated(emu, x, q, edges, inc, rest, ew, terms,
                                                            penalty, reduction, grads, state)
        what = f"terms {terms} {batch, T, M, E}"
        torch.testing.assert_close(e_denom, state, rtol=1e-13, atol=0)
        if reduction != "none":
            assert_matches(e_loss, loss, dtype, "loss " + what)
        for k in range(3):
            if terms >> k & 1 or reduction != "none":
                assert_graph_matches(e_outs[k], outs[k], dtype, reduction == "none",
                                     f"term {k} " + what)
        if x is not None:
            assert_matches(e_gx, gx, dtype, "grad_positions " + what)
        if q is not None:
            assert_matches(e_gq, gq, dtype, "grad_quaternions " + what)


def test_rigidity_more_than_256_blocks(emu):
    gen = torch.Generator().manual_seed(13)
    batch, T, M, E = 1, 3, 2000, 30000
    assert emu.emu_trio_blocks(batch * T, E) > 256
    x, q, edges, inc, ew, rest = trio_case(gen, torch.float64, 7, batch, T, M, E, True, True)
    like = dict(dtype=torch.float64)
    grads = [torch.tensor(0.5, **like)]
    loss, outs, state, gx, gq = trio_cpu(x, q, edges, inc, rest, ew, 7, 1, "mean", grads)
    e_loss, e_outs, e_denom, e_gx, e_gq = trio_emulated(emu, x, q, edges, inc, rest, ew, 7, 1,
                                                        "mean", grads, state)
    torch.testing.assert_close(e_loss, loss, rtol=1e-13, atol=0)
    for k in range(3):
        torch.testing.assert_close(e_outs[k], outs[k], rtol=1e-13, atol=0)
    assert_matches(e_gx, gx, torch.float64, "grad_positions")
    assert_matches(e_gq, gq, torch.float64, "grad_quaternions")
