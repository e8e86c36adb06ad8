"""The contract of the graph losses of Gaussians (local rigidity, rotation similarity,
isometry, ARAP, graph smoothness) and of RigidityLoss: the fused kernels against the plain
PyTorch reference in float64 (values and gradients, every reduction and penalty, weighted or
not, batched, several frames), gradcheck, opcheck, torch.compile, empty graphs, determinism
across thread counts, half precision, and bad input."""
import dataclasses

import pytest
import torch

import sirenpose_loss as spl
from sirenpose_loss import reference as ref

from conftest import (ThreadCount, assert_bitwise_equal, assert_close, compare_with_reference,
                      fresh_compile, needs_compiled, op, run_with_grads, seed_of)
from graph_loss_specs import CASES, SPECS, Problem, fns, problem

REDUCTIONS = ["none", "mean", "sum"]


# ------------------------------------------------------------------------ against the reference
@pytest.mark.parametrize("batch", [(), (2,), (2, 1)], ids=str)
@pytest.mark.parametrize("T", [2, 3])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name,penalty", CASES)
def test_matches_reference(name, penalty, reduction, weighted, T, batch):
    spec = SPECS[name]
    p = problem(batch=batch, T=T, seed=seed_of(name, T, batch))
    ew = p.edge_weight if weighted else None
    ours, theirs = fns(spec, p, edge_weight=ew, penalty=penalty, reduction=reduction)
    compare_with_reference(ours, theirs, spec.leaves(p), grad_seed=seed_of(name, reduction))


@pytest.mark.parametrize("name,penalty", CASES)
def test_gradcheck(name, penalty):
    """ARAP holds its rotations fixed, which is the exact gradient of the energy (it is
    stationary in them) but not of a single term: no gradcheck of its "none" terms."""
    spec = SPECS[name]
    p = problem(batch=(2,), T=3, M=10, k=3, seed=seed_of("gc", name))
    for reduction in REDUCTIONS[name == "arap":]:
        ours, _ = fns(spec, p, edge_weight=p.edge_weight, penalty=penalty, reduction=reduction)
        assert torch.autograd.gradcheck(ours, spec.leaves(p))


@needs_compiled
@pytest.mark.parametrize("name,penalty", CASES)
def test_torch_compile_fullgraph(name, penalty):
    spec = SPECS[name]
    p = problem(batch=(2,), seed=seed_of("compile", name))
    for reduction in ("mean", "none"):
        ours, _ = fns(spec, p, edge_weight=p.edge_weight, penalty=penalty, reduction=reduction)
        compiled = fresh_compile(ours)
        want_out, want_grad = run_with_grads(ours, spec.leaves(p), grad_seed=1)
        got_out, got_grad = run_with_grads(compiled, spec.leaves(p), grad_seed=1)
        assert_bitwise_equal(got_out, want_out, "compiled output")
        assert_bitwise_equal(got_grad, want_grad, "compiled gradients")


@needs_compiled
@pytest.mark.parametrize("name,penalty", CASES)
def test_torch_compile_dynamic_shapes(name, penalty):
    """One compiled graph serves other M, E and T (symbolic shapes in the fake kernels)."""
    spec = SPECS[name]
    torch._dynamo.reset()
    for M, T in ((24, 2), (40, 3)):
        p = problem(batch=(2,), M=M, T=T, seed=M)
        ours, _ = fns(spec, p, edge_weight=p.edge_weight, penalty=penalty)
        compiled = torch.compile(ours, dynamic=True, fullgraph=True)
        want_out, want_grad = run_with_grads(ours, spec.leaves(p), grad_seed=1)
        got_out, got_grad = run_with_grads(compiled, spec.leaves(p), grad_seed=1)
        assert_bitwise_equal(got_out, want_out, "compiled output")
        assert_bitwise_equal(got_grad, want_grad, "compiled gradients")


@needs_compiled
def test_opcheck():
    p = problem(batch=(2,), seed=3)
    inc = spl.graphs.RigidityGraph(p.edge_index, p.edge_weight, p.rest_length,
                                   p.positions.shape[-2]).graph_incidence()
    x, q, f = p.positions, p.quaternions, p.features
    for reduction in (0, 1, 2):
        for penalty in (0, 1):
            for terms in (1, 2, 4, 7):
                args = (None if terms == 2 else x, None if terms == 4 else q, p.edge_index,
                        p.rest_length, p.edge_weight, inc, [4.0, 4.0, 2.0], terms, penalty,
                        reduction)
                torch.library.opcheck(op("rigidity"), args)
            torch.library.opcheck(op("graph_smoothness"),
                                  (f, p.edge_index, None, inc, penalty, reduction))
        for rest in (None, p.rest_points):
            torch.library.opcheck(op("arap"), (x, p.edge_index, rest, p.edge_weight, inc,
                                               reduction))


# ------------------------------------------------------------------------------ RigidityLoss
@pytest.mark.parametrize("penalty", ["squared", "norm"])
def test_rigidity_loss_is_the_weighted_sum(penalty):
    p = problem(batch=(2,), seed=5)
    graph = spl.graphs.RigidityGraph(p.edge_index, p.edge_weight, p.rest_length, 24)
    module = spl.RigidityLoss(lambda_rigid=4.0, lambda_rotation=3.0, lambda_isometry=2.0,
                              penalty=penalty)

    def reference(x, q):
        kw = dict(edge_weight=p.edge_weight, penalty=penalty)
        return (4.0 * ref.local_rigidity_loss(x, q, p.edge_index, **kw)
                + 3.0 * ref.rotation_similarity_loss(q, p.edge_index, **kw)
                + 2.0 * ref.isometry_loss(x, p.edge_index, p.rest_length, **kw))
    compare_with_reference(lambda x, q: module(x, q, graph), reference,
                           (p.positions, p.quaternions), grad_seed=2)
    out = module(p.positions, p.quaternions, graph, return_terms=True)
    kw = dict(edge_weight=p.edge_weight, penalty=penalty)
    for got, want in zip(out[1:], (ref.local_rigidity_loss(p.positions, p.quaternions, p.edge_index, **kw),
                                   ref.rotation_similarity_loss(p.quaternions, p.edge_index, **kw),
                                   ref.isometry_loss(p.positions, p.edge_index, p.rest_length, **kw))):
        assert not got.requires_grad
        assert_close(got, want.detach(), rtol=1e-12, atol=1e-14)


def test_rigidity_loss_none_returns_the_terms():
    p = problem(seed=6)
    terms = spl.RigidityLoss(reduction="none")(p.positions, p.quaternions, p.edge_index,
                                               p.rest_length)
    E = p.edge_index.shape[1]
    assert [t.shape for t in terms] == [(2, E), (2, E), (3, E)]


def test_modules_match_functions():
    p = problem(seed=7)
    kw = dict(penalty="norm", reduction="sum")
    e = p.edge_index
    pairs = [
        (spl.LocalRigidityLoss(**kw)(p.positions, p.quaternions, e),
         spl.local_rigidity_loss(p.positions, p.quaternions, e, **kw)),
        (spl.RotationSimilarityLoss(**kw)(p.quaternions, e),
         spl.rotation_similarity_loss(p.quaternions, e, **kw)),
        (spl.IsometryLoss(**kw)(p.positions, e, p.rest_length),
         spl.isometry_loss(p.positions, e, p.rest_length, **kw)),
        (spl.ARAPLoss(reduction="sum")(p.positions, e), spl.arap_loss(p.positions, e, reduction="sum")),
        (spl.GraphSmoothnessLoss(**kw)(p.features, e), spl.graph_smoothness_loss(p.features, e, **kw)),
    ]
    for got, want in pairs:
        assert_bitwise_equal(got, want, "module vs function")


# ------------------------------------------------------------------------------- edge cases
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name,penalty", CASES)
def test_empty_graph(name, penalty, reduction):
    """No edges: a mean or sum of 0 with zero gradients; "none" gives an empty tensor."""
    spec = SPECS[name]
    p = problem(batch=(2,), seed=8)
    p.edge_index = p.edge_index[:, :0]
    p.rest_length = p.rest_length[:0]
    ours, theirs = fns(spec, p, penalty=penalty, reduction=reduction)
    out, grads = compare_with_reference(ours, theirs, spec.leaves(p), grad_seed=3)
    assert out[0].numel() == 0 if reduction == "none" else float(out[0]) == 0.0
    for g in grads:
        assert g is not None and not bool(g.any())


@pytest.mark.parametrize("name", ["local_rigidity", "rotation_similarity"])
def test_single_frame_has_no_pair_terms(name):
    spec = SPECS[name]
    p = problem(T=1, seed=9)
    for reduction in REDUCTIONS:
        ours, theirs = fns(spec, p, reduction=reduction)
        out, grads = compare_with_reference(ours, theirs, spec.leaves(p), grad_seed=4)
        assert all(not bool(g.any()) for g in grads)


def test_zero_edge_weights_give_a_zero_mean():
    p = problem(seed=10)
    zero = torch.zeros_like(p.edge_weight)
    for name, penalty in CASES:
        spec = SPECS[name]
        ours, theirs = fns(spec, p, edge_weight=zero, penalty=penalty)
        compare_with_reference(ours, theirs, spec.leaves(p), grad_seed=5)


@needs_compiled
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
@pytest.mark.parametrize("name,penalty", CASES)
def test_deterministic_across_thread_counts(name, penalty, dtype):
    """Bit-identical values and gradients with 1, 2 and 4 threads, on a graph with many
    chunks of edges and nodes (float64 too: its output shows a reordered double sum)."""
    spec = SPECS[name]
    p = problem(batch=(2,), T=3, M=3000, k=8, seed=11, dtype=dtype)
    ours, _ = fns(spec, p, edge_weight=p.edge_weight, penalty=penalty)
    results = []
    for threads in (1, 2, 4):
        with ThreadCount(threads):
            results.append(run_with_grads(ours, spec.leaves(p), grad_seed=6))
    for out, grads in results[1:]:
        assert_bitwise_equal(out, results[0][0], "loss")
        assert_bitwise_equal(grads, results[0][1], "gradients")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32], ids=str)
@pytest.mark.parametrize("name,penalty", CASES)
def test_low_precision_against_float64(name, penalty, dtype):
    """Low-precision inputs against the float64 reference on the same (rounded) values: the
    kernels accumulate in float32 or better, so only the output's rounding remains."""
    spec = SPECS[name]
    p = problem(batch=(2,), seed=12, dtype=dtype)
    p64 = Problem(*(t if not t.is_floating_point() else
                    t.detach().double().requires_grad_(t.requires_grad)
                    for t in dataclasses.astuple(p)))
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == torch.float32 else dict(rtol=1e-2, atol=1e-3)
    ours, _ = fns(spec, p, edge_weight=p.edge_weight, penalty=penalty)
    _, theirs = fns(spec, p64, edge_weight=p64.edge_weight, penalty=penalty)
    out, grads = run_with_grads(ours, spec.leaves(p), grad_seed=7)
    want, want_grads = run_with_grads(theirs, spec.leaves(p64), grad_seed=7)
    assert out[0].dtype == dtype
    assert_close(out[0].double(), want[0], **tol)
    for g, w in zip(grads, want_grads):
        assert g.dtype == dtype
        scale = float(w.abs().max())
        assert_close(g.double() / scale, w / scale, **tol)


def test_double_backward_is_refused():
    p = problem(seed=13)
    loss = spl.local_rigidity_loss(p.positions, p.quaternions, p.edge_index)
    (g,) = torch.autograd.grad(loss, p.positions, create_graph=True)
    if spl.backend() == "compiled":
        with pytest.raises(RuntimeError, match="differentiable once"):
            g.sum().backward()


def test_no_grad_and_inference_mode():
    p = problem(seed=14)
    want = spl.arap_loss(p.positions, p.edge_index).detach()
    with torch.no_grad():
        assert_bitwise_equal(spl.arap_loss(p.positions, p.edge_index), want)
    with torch.inference_mode():
        assert_bitwise_equal(spl.arap_loss(p.positions, p.edge_index), want)


# -------------------------------------------------------------------------------- bad input
def _bad_cases():
    p = problem(batch=(2,), seed=20)
    x, q, e, d, w = p.positions.detach(), p.quaternions.detach(), p.edge_index, p.rest_length, p.edge_weight
    E = e.shape[1]
    rig = spl.local_rigidity_loss
    return {
        "positions_not_tensor": (lambda: rig(x.tolist(), q, e), TypeError, "positions must be a torch.Tensor.*got list"),
        "positions_int": (lambda: rig(x.long(), q, e), TypeError, "positions must be a floating-point tensor, got dtype"),
        "positions_D": (lambda: rig(x[..., :2], q, e), ValueError, r"positions must have shape \[\.\.\., T, M, 3\], got"),
        "quaternions_C": (lambda: rig(x, q[..., :3], e), ValueError, r"quaternions must have shape \[\.\.\., T, M, 4\], got"),
        "quaternions_M": (lambda: rig(x, q[..., :5, :], e), ValueError, "quaternions must have the leading shape .* got"),
        "quaternions_dtype": (lambda: rig(x, q.float(), e), TypeError, "quaternions must have the dtype of positions .* got"),
        "edge_index_float": (lambda: rig(x, q, e.double()), TypeError, "edge_index must be an int64 .* got dtype"),
        "edge_index_shape": (lambda: rig(x, q, e[0]), ValueError, r"edge_index must have shape \[2, E\], got"),
        "edge_index_stale": (lambda: rig(x, q, e.clamp(max=30) + 1), IndexError, r"values must be in \[0, 24\).*stale"),
        "edge_index_negative": (lambda: rig(x, q, e - 1), IndexError, r"values must be in \[0, 24\)"),
        "edge_weight_shape": (lambda: rig(x, q, e, edge_weight=w[:-1]), ValueError, "edge_weight must have shape .* got"),
        "edge_weight_negative": (lambda: rig(x, q, e, edge_weight=-w), ValueError, "edge_weight must be non-negative, got"),
        "edge_weight_grad": (lambda: rig(x, q, e, edge_weight=w.clone().requires_grad_()), ValueError, "edge_weight is a constant"),
        "penalty": (lambda: rig(x, q, e, penalty="l1"), ValueError, "penalty must be 'squared' or 'norm', got 'l1'"),
        "reduction": (lambda: rig(x, q, e, reduction="avg"), ValueError, "reduction must be one of .* got 'avg'"),
        "rest_length_missing": (lambda: spl.isometry_loss(x, e, None), ValueError, "rest_length must be a tensor .* got None"),
        "rest_length_shape": (lambda: spl.isometry_loss(x, e, d[:3]), ValueError, r"rest_length must have shape \[E\] = \[%d\].* got" % E),
        "rest_positions_shape": (lambda: spl.arap_loss(x, e, rest_positions=x[0, 0, :5]), ValueError, "rest_positions must have shape .* got"),
        "rest_positions_grad": (lambda: spl.arap_loss(x, e, rest_positions=p.rest_points.clone().requires_grad_()), ValueError, "rest_positions is a constant"),
        "features_1d": (lambda: spl.graph_smoothness_loss(p.features.detach()[0, 0], e), ValueError, r"features must have shape \[\.\.\., M, C\].* got"),
        "graph_stale_nodes": (lambda: rig(x[..., :20, :], q[..., :20, :], spl.graphs.RigidityGraph(e, w, d, 24)), ValueError, "built for 24 Gaussians .* M = 20: it is stale"),
        "module_penalty": (lambda: spl.RigidityLoss(penalty="abs"), ValueError, "penalty must be .* got 'abs'"),
        "module_lambda": (lambda: spl.RigidityLoss(lambda_rigid=-1.0), ValueError, "lambda_rigid must be a non-negative finite number, got -1.0"),
    }


BAD = _bad_cases()


@pytest.mark.parametrize("name", list(BAD))
def test_bad_input(name):
    call, exc, match = BAD[name]
    with pytest.raises(exc, match=match):
        call()


@needs_compiled
def test_direct_op_calls_check_their_arguments():
    """Direct calls of the ops with inconsistent graphs raise, never read out of bounds."""
    p = problem(seed=21)
    x, q, e = p.positions.detach(), p.quaternions.detach(), p.edge_index
    inc = spl.graphs.RigidityGraph(e, p.edge_weight, p.rest_length, 24).graph_incidence()
    fwd, bwd = op("rigidity_fwd"), op("rigidity_bwd")
    args = lambda e_, inc_: (x, q, e_, p.rest_length, p.edge_weight, inc_, [1.0, 1.0, 1.0], 7, 0, 1)
    bad_e = e.clone()
    bad_e[0, 3] = 24
    with pytest.raises(IndexError, match=r"edge_index values must be in \[0, 24\)"):
        fwd(*args(bad_e, inc))
    for where, value in ((0, 5), (25 + 3, 10 ** 6), (-1, 10 ** 6)):  # in_ptr, in_edge, out_pos
        bad_inc = inc.clone()
        bad_inc[where] = value
        with pytest.raises((IndexError, ValueError), match="incidence"):
            state = fwd(*args(e, bad_inc))[-1]
            bwd([torch.ones((), dtype=x.dtype)], *args(e, bad_inc), state, [1, 1])
    with pytest.raises(ValueError, match="incidence must have shape"):
        fwd(*args(e, inc[:-1]))
    with pytest.raises(ValueError, match="penalty code must be 0 .* got 3"):
        fwd(x, q, e, p.rest_length, p.edge_weight, inc, [1.0, 1.0, 1.0], 7, 3, 1)


# ------------------------------------------------------------------------------ the graph
def test_rigidity_graph_neighbours_weights_and_rest_lengths():
    points = 0.3 * torch.rand(200, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    g = spl.graphs.rigidity_graph(points, 6, weight_lambda=50.0)
    j, i = g.edge_index
    assert g.edge_index.shape == (2, 200 * 6) and g.num_nodes == 200
    assert not bool((i == j).any()), "a point is its own neighbour"
    dist = torch.cdist(points, points)
    dist.fill_diagonal_(float("inf"))
    want = torch.sort(dist.topk(6, largest=False).indices, dim=1).values
    got = torch.sort(j.view(200, 6), dim=1).values
    assert torch.equal(got, want)
    assert_close(g.rest_length, (points[j] - points[i]).norm(dim=-1), rtol=1e-12, atol=0)
    assert_close(g.edge_weight, torch.exp(-50.0 * g.rest_length ** 2), rtol=1e-12, atol=0)
    default = spl.graphs.rigidity_graph(points)
    assert default.k == 20 and default.weight_lambda == 2000.0


def test_rigidity_graph_reindex_after_pruning_and_rebuild():
    points = torch.rand(100, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    g = spl.graphs.rigidity_graph(points, 5)
    keep = torch.rand(100, generator=torch.Generator().manual_seed(2)) > 0.3
    pruned = g.reindex(keep)
    kept = points[keep]
    assert pruned.num_nodes == int(keep.sum())
    old = g.edge_index[:, keep[g.edge_index[0]] & keep[g.edge_index[1]]]
    assert torch.equal(kept[pruned.edge_index], points[old]), "edges do not join the same points"
    assert_close(pruned.rest_length, (kept[pruned.edge_index[0]] - kept[pruned.edge_index[1]]).norm(dim=-1),
                 rtol=1e-12, atol=0)
    x = kept.expand(2, -1, -1).clone().requires_grad_()
    spl.isometry_loss(x, pruned).backward()     # the pruned graph fits the pruned Gaussians
    with pytest.raises(ValueError, match="stale"):
        spl.isometry_loss(points.expand(2, -1, -1), pruned)
    grown = torch.cat([kept, torch.rand(7, 3, dtype=torch.float64)])
    rebuilt = pruned.rebuild(grown)
    assert rebuilt.num_nodes == grown.shape[0] and rebuilt.k == 5
    with pytest.raises(TypeError, match="keep must be a bool tensor"):
        g.reindex(keep.long())
    with pytest.raises(ValueError, match=r"keep must have shape \[100\]"):
        g.reindex(keep[:10])


# ------------------------------------------------------------------------------------ CUDA
@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available() or not spl.cuda_kernels_built(),
                    reason="needs a CUDA GPU and the extension built with its CUDA kernels")
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name,penalty", CASES)
def test_cuda_matches_cpu(name, penalty, reduction, dtype):
    """The CUDA kernels against the CPU kernels, values and gradients, then bit-identical
    repeats on the GPU."""
    spec = SPECS[name]
    cpu = problem(batch=(2,), seed=30, dtype=dtype)
    gpu = problem(batch=(2,), seed=30, dtype=dtype, device="cuda")
    tol = dict(rtol=1e-9, atol=1e-12) if dtype == torch.float64 else dict(rtol=1e-4, atol=1e-5)
    kw = dict(edge_weight=None, penalty=penalty, reduction=reduction)
    want_out, want_grads = run_with_grads(fns(spec, cpu, **{**kw, "edge_weight": cpu.edge_weight})[0],
                                          spec.leaves(cpu), grad_seed=8)
    ours = fns(spec, gpu, **{**kw, "edge_weight": gpu.edge_weight})[0]
    out, grads = run_with_grads(ours, spec.leaves(gpu), grad_seed=8)
    assert_close(out[0].cpu(), want_out[0], **tol)
    for g, w in zip(grads, want_grads):
        assert_close(g.cpu(), w, **tol)
    again = run_with_grads(ours, spec.leaves(gpu), grad_seed=8)
    assert_bitwise_equal(again[0], out, "repeat")
    assert_bitwise_equal(again[1], grads, "repeat gradients")
