"""RigidityLoss (the Dynamic 3D Gaussians trio on one kernel call, weighted), what is
specific to the rigidity ops and their graph: stale graphs, direct op calls with inconsistent
graphs, the k-NN builder and its re-indexing. Every loss of the family is checked against the
reference, across precisions, thread counts, autograd, torch.compile and bad input by the
contract suite (tests/contract, entries of cases.GAUSSIAN_CASES)."""
import pytest
import torch

import sirenpose_loss as spl
from sirenpose_loss import reference as ref

from conftest import assert_close, compare_with_reference, needs_compiled, op
from contract.cases import gaussian_graph

_trio = gaussian_graph("positions", "quaternions", "edge_index", "rest_length")


def problem(seed, batch=(2,), T=3, M=24, E=100):
    """positions, quaternions (leaves) and a RigidityGraph with weights and rest lengths."""
    x = _trio(seed, batch, T, M, E)
    weight = 0.25 + torch.rand(E, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    graph = spl.graphs.RigidityGraph(x["edge_index"], weight, x["rest_length"], M)
    return x["positions"].requires_grad_(), x["quaternions"].requires_grad_(), graph


# ------------------------------------------------------------------------------ RigidityLoss
@pytest.mark.parametrize("penalty", ["squared", "norm"])
def test_rigidity_loss_is_the_weighted_sum(penalty):
    """The fused weighted sum (one kernel call, lambdas applied inside) against the three
    references, values and gradients; return_terms gives each term, detached."""
    x, q, graph = problem(5)
    e, w, d = graph.edge_index, graph.edge_weight, graph.rest_length
    module = spl.RigidityLoss(lambda_rigid=4.0, lambda_rotation=3.0, lambda_isometry=2.0,
                              penalty=penalty)
    kw = dict(edge_weight=w, penalty=penalty)

    def terms(x, q):
        return (ref.local_rigidity_loss(x, q, e, **kw), ref.rotation_similarity_loss(q, e, **kw),
                ref.isometry_loss(x, e, d, **kw))

    compare_with_reference(lambda x, q: module(x, q, graph),
                           lambda x, q: sum(l * t for l, t in zip((4.0, 3.0, 2.0), terms(x, q))),
                           (x, q), grad_seed=2)
    out = module(x, q, graph, return_terms=True)
    for got, want in zip(out[1:], terms(x, q)):
        assert not got.requires_grad
        assert_close(got, want.detach(), rtol=1e-12, atol=1e-14)


def test_rigidity_loss_none_returns_the_terms():
    x, q, graph = problem(6, batch=())
    terms = spl.RigidityLoss(reduction="none")(x, q, graph.edge_index, graph.rest_length)
    E = graph.edge_index.shape[1]
    assert [t.shape for t in terms] == [(2, E), (2, E), (3, E)]


# -------------------------------------------------------------------------------- bad input
def _bad_cases():
    x, q, graph = problem(20)
    x, q = x.detach(), q.detach()
    return {
        "graph_stale_nodes": (lambda: spl.local_rigidity_loss(x[..., :20, :], q[..., :20, :], graph),
                              ValueError, "built for 24 Gaussians .* M = 20: it is stale"),
        "module_penalty": (lambda: spl.RigidityLoss(penalty="abs"), ValueError,
                           "penalty must be .* got 'abs'"),
        "module_lambda": (lambda: spl.RigidityLoss(lambda_rigid=-1.0), ValueError,
                          "lambda_rigid must be a non-negative finite number, got -1.0"),
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
    x, q, graph = problem(21, batch=())
    x, q, e, w, d = x.detach(), q.detach(), graph.edge_index, graph.edge_weight, graph.rest_length
    inc = graph.graph_incidence()
    fwd, bwd = op("rigidity_fwd"), op("rigidity_bwd")
    args = lambda e_, inc_: (x, q, e_, d, w, inc_, [1.0, 1.0, 1.0], 7, 0, 1)
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
        fwd(x, q, e, d, w, inc, [1.0, 1.0, 1.0], 7, 3, 1)


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
