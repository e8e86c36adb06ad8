"""The drop-in set-up shared by the three Dynamic 3D Gaussians tests: one online step with the
previous frame detached, on the method's graph (k = 20, exp(-2000 d^2)) and scale."""
import torch

import sirenpose_loss as spl

from conftest import assert_close, randn
from d3dg_formulas import step_losses


def step(dtype, seed=0, M=400, k=20):
    rest = 0.1 * randn(M, 3, seed=seed)      # a ~0.1-unit object, so exp(-2000 d^2) matters
    graph = spl.graphs.rigidity_graph(rest, k)
    prev = rest + randn(M, 3, seed=seed + 1, scale=0.002)
    cur = (prev + randn(M, 3, seed=seed + 2, scale=0.002)).to(dtype).requires_grad_()
    prev_q = randn(M, 4, seed=seed + 3).to(dtype)
    cur_q = (prev_q + randn(M, 4, seed=seed + 4, scale=0.05)).to(dtype).requires_grad_()
    return graph.to("cpu"), prev.to(dtype), prev_q, cur, cur_q


def theirs(which, dtype):
    graph, prev, prev_q, cur, cur_q = step(dtype)
    k = graph.k
    tables = (graph.edge_index[0].view(-1, k), graph.edge_weight.to(dtype).view(-1, k),
              graph.rest_length.to(dtype).view(-1, k))
    loss = step_losses(prev, prev_q, cur, cur_q, *tables)[which]
    loss.backward()
    return loss.detach(), cur.grad, cur_q.grad


def ours(which, dtype):
    """Ours on positions/quaternions [T = 2, M, .] = (previous detached, current); the
    isometry term of the method is on the current frame alone (T = 1)."""
    graph, prev, prev_q, cur, cur_q = step(dtype)
    graph = spl.graphs.RigidityGraph(graph.edge_index, graph.edge_weight.to(dtype),
                                     graph.rest_length.to(dtype), graph.num_nodes)
    x = torch.stack([prev.detach(), cur])
    q = torch.stack([prev_q.detach(), cur_q])
    if which == 0:
        loss = spl.local_rigidity_loss(x, q, graph, penalty="norm")
    elif which == 1:
        loss = spl.rotation_similarity_loss(q, graph, penalty="norm")
    else:
        loss = spl.isometry_loss(cur[None], graph, penalty="norm")
    loss.backward()
    return loss.detach(), cur.grad, cur_q.grad


def check(which, dtype):
    """float64: equal to 1e-12. float32: both sides are rounded; ours is no further from the
    float64 truth than their float32 formulation is (within a factor 2, or 1e-6 relative)."""
    got, want = ours(which, dtype), theirs(which, dtype)
    if dtype == torch.float64:
        truth, tol = want, dict(rtol=1e-12, atol=1e-15)
    else:
        truth, tol = theirs(which, torch.float64), None
    for k, (g, w, t) in enumerate(zip(got, want, truth)):
        if t is None:
            assert w is None and (g is None or not bool(g.any()))
            continue
        scale = float(t.abs().max())
        assert scale > 0
        if tol is not None:
            assert_close(g / scale, w / scale, **tol)
            continue
        ours_err = float((g.double() - t).abs().max()) / scale
        their_err = float((w.double() - t).abs().max()) / scale
        assert ours_err <= max(2 * their_err, 1e-6), (k, ours_err, their_err)
    return got
