"""sirenpose_loss.distributed, run for real: 2 and 3 CPU processes on gloo, spawned from pytest.

Every rank builds the same global problem from a fixed seed, computes the single-process loss
and gradients itself, then its shard's distributed loss, and checks value and gradients against
them (float64, 1e-12 relative). Every collective has a timeout, and the harness stops all ranks
as soon as one fails, failing the test with that rank's traceback.
"""
import datetime
import json
import math
import os
import queue
import socket
import subprocess
import sys
import time
import traceback

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import sirenpose_loss as spl
import sirenpose_loss.distributed as sd
from sirenpose_loss.graphs import knn_graph, skeleton

COLLECTIVE_TIMEOUT_S = 30     # gloo's timeout for every collective of a test rank
RUN_TIMEOUT_S = 120           # the harness's limit for a whole spawned run
RTOL = 1e-12


# ----------------------------------------------------------------------------------- harness

class RankFailed(AssertionError):
    """A rank raised or died; the message holds its traceback."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank, world, port, fn, args, results):
    torch.set_num_threads(1)
    try:
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                                world_size=world,
                                timeout=datetime.timedelta(seconds=COLLECTIVE_TIMEOUT_S))
        fn(rank, world, *args)
        results.put((rank, None))
    except BaseException:  # noqa: BLE001 - reported to the parent, which fails the test
        results.put((rank, traceback.format_exc()))
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def _stop(procs):
    for p in procs:
        if p.is_alive():
            p.terminate()
    for p in procs:
        p.join(5)
        if p.is_alive():
            p.kill()
            p.join()


def _context():
    """Fresh processes (never a fork of pytest) that start in a fraction of a second: a fork
    server that imported torch once forks them (torch's import is most of a rank's start-up)."""
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["torch", "sirenpose_loss.distributed"])
    return ctx


def _dead_ranks(procs, reported):
    return [f"rank {r} exited with code {p.exitcode} and no report"
            for r, p in enumerate(procs) if r not in reported and p.exitcode not in (None, 0)]


def run_ranks(fn, world: int, *args, timeout: float = RUN_TIMEOUT_S) -> None:
    """Run ``fn(rank, world, *args)`` on ``world`` gloo processes on localhost; raise
    :class:`RankFailed` with the failing rank's error (the others are stopped at once). A rank
    that dies without a report is named first: the others' errors are then its consequence."""
    ctx = _context()
    results = ctx.Queue()
    port = _free_port()
    procs = [ctx.Process(target=_rank_main, args=(r, world, port, fn, args, results), daemon=True)
             for r in range(world)]
    for p in procs:
        p.start()
    done, deadline = set(), time.monotonic() + timeout
    try:
        while len(done) < world:
            try:
                rank, error = results.get(timeout=0.2)
            except queue.Empty:
                dead = _dead_ranks(procs, done)
                if dead and results.empty():
                    raise RankFailed("; ".join(dead)) from None
                if time.monotonic() > deadline:
                    raise RankFailed(f"timed out after {timeout} s; ranks without a report: "
                                     f"{sorted(set(range(world)) - done)}") from None
                continue
            if error is not None:
                time.sleep(0.5)   # let a rank that died (the likely cause) be seen as dead
                dead = _dead_ranks(procs, done | {rank})
                raise RankFailed("; ".join(dead + [f"rank {rank} failed:\n{error}"]))
            done.add(rank)
    finally:
        _stop(procs)


# ------------------------------------------------------------------------------- helpers

def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _close(got, want, what):
    got, want = got.detach(), want.detach()
    assert got.shape == want.shape, f"{what}: shape {list(got.shape)} != {list(want.shape)}"
    if not want.numel():
        return
    err = float((got - want).abs().max() / want.abs().max().clamp_min(1e-300))
    assert err <= RTOL, f"{what}: relative error {err:.3g} > {RTOL}"


def _splits(total, world):
    """Uneven batch shards with one rank holding nothing: e.g. 7 over 3 ranks -> [5, 0, 2]."""
    sizes = [0] * world
    sizes[0] = total - total // 3
    sizes[-1] = total // 3
    return sizes


def _pieces(x, sizes, rank, dim=0):
    start = sum(sizes[:rank])
    return x.narrow(dim, start, sizes[rank])


def _leaf(x):
    return x.detach().clone().requires_grad_()


def _grads(loss, *xs):
    return torch.autograd.grad(loss, xs, allow_unused=True)


# ------------------------------------------------------------------ global means (batch split)

def _batch_problem(seed=0, batch=7, k=17, d=2):
    g = _gen(seed)
    pred = torch.rand(batch, k, d, generator=g, dtype=torch.float64) * 2 - 1
    target = pred + 0.05 * torch.randn(batch, k, d, generator=g, dtype=torch.float64)
    weight = torch.rand(batch, k, generator=g, dtype=torch.float64)
    weight[weight < 0.2] = 0
    return pred, target, weight


def _check_batch_loss(rank, world, name, single, distributed, tensors):
    """``single(*full)`` vs ``distributed(*shard)`` on a batch split unevenly, one rank empty
    (3 ranks) or with all-zero weights (2 ranks)."""
    sizes = _splits(tensors[0].shape[0], world)
    full = [_leaf(t) if t.is_floating_point() and i < 2 else t for i, t in enumerate(tensors)]
    want = single(*full)
    want_grads = _grads(want, full[0], full[1])
    for average_grads in (True, False):
        shard = [_pieces(t.detach(), sizes, rank) for t in tensors]
        shard = [_leaf(t) if i < 2 else t for i, t in enumerate(shard)]
        got = distributed(*shard, average_grads=average_grads)
        grads = _grads(got, shard[0], shard[1])
        scale = world if average_grads else 1
        _close(got, want, f"{name} value")
        for g, w in zip(grads, want_grads):
            _close(g / scale, _pieces(w, sizes, rank), f"{name} gradient "
                   f"(average_grads={average_grads})")


def _zeroed(tensors, sizes, rank_zero):
    """The single-process problem with rank ``rank_zero``'s weights set to 0."""
    out = [t.clone() for t in tensors]
    start = sum(sizes[:rank_zero])
    out[2][start:start + sizes[rank_zero]] = 0
    return out


def _check_global_means(rank, world):
    pred, target, weight = _batch_problem()
    graph = skeleton("coco17")
    ew = torch.rand(graph.num_edges, generator=_gen(5), dtype=torch.float64)
    cases = {
        "keypoint_match": (lambda p, t, w: spl.keypoint_match_loss(p, t, weight=w),
                           lambda p, t, w, **kw: sd.keypoint_match_loss(p, t, weight=w, **kw)),
        "sin_graph": (lambda p, t, w: spl.sin_graph_consistency_loss(p, t, graph, weight=w,
                                                                     edge_weight=ew),
                      lambda p, t, w, **kw: sd.sin_graph_consistency_loss(
                          p, t, graph, weight=w, edge_weight=ew, **kw)),
        "sirenpose": (lambda p, t, w: spl.sirenpose_loss(p, t, graph, weight=w, lambda_geo=0.3),
                      lambda p, t, w, **kw: sd.sirenpose_loss(p, t, graph, weight=w,
                                                              lambda_geo=0.3, **kw)),
    }
    tensors = [pred, target, weight]
    for name, (single, distributed) in cases.items():
        _check_batch_loss(rank, world, name, single, distributed, tensors)
        # a rank whose terms all have zero weight: the global mean ignores it
        zeroed = _zeroed(tensors, _splits(pred.shape[0], world), world - 1)
        _check_batch_loss(rank, world, name + " (zero-weight rank)", single, distributed, zeroed)
    _check_scl_frames(rank, world)
    _check_scl_gaussians(rank, world)


def _frame_ranges(num_frames, world, order):
    """Consecutive frame ranges overlapping by ``order`` frames: every SCL term on one rank."""
    steps = num_frames - order
    bounds = [round(steps * r / world) for r in range(world + 1)]
    return [(bounds[r], bounds[r + 1] + order) for r in range(world)]


def _check_scl_frames(rank, world):
    """Frames split across ranks (overlapping ranges, as the trainer does); the overlap rows'
    gradients add up over ranks to the single-process ones."""
    g = _gen(1)
    pos = torch.randn(2, 9, 11, 3, generator=g, dtype=torch.float64)
    w = torch.rand(11, generator=g, dtype=torch.float64)
    for order in (1, 2):
        full = _leaf(pos)
        want = spl.spatiotemporal_consistency_loss(full, weight=w, order=order)
        (want_grad,) = _grads(want, full)
        lo, hi = _frame_ranges(pos.shape[1], world, order)[rank]
        mine = _leaf(pos[:, lo:hi])
        got = sd.spatiotemporal_consistency_loss(mine, weight=w, order=order)
        (grad,) = _grads(got, mine)
        _close(got, want, f"SCL order {order} value (frames split)")
        summed = torch.zeros_like(pos)
        summed[:, lo:hi] = grad / world
        dist.all_reduce(summed)
        _close(summed, want_grad, f"SCL order {order} gradient (frames split)")


def _check_scl_gaussians(rank, world):
    """Gaussians sharded in gsplat's strided layout: the SCL needs only the global mean."""
    g = _gen(2)
    pos = torch.randn(6, 23, 3, generator=g, dtype=torch.float64)
    w = torch.rand(23, generator=g, dtype=torch.float64)
    full = _leaf(pos)
    want = spl.spatiotemporal_consistency_loss(full, weight=w)
    (want_grad,) = _grads(want, full)
    mine = _leaf(pos[:, rank::world])
    got = sd.spatiotemporal_consistency_loss(mine, weight=w[rank::world], average_grads=False)
    (grad,) = _grads(got, mine)
    _close(got, want, "SCL value (sharded Gaussians)")
    _close(grad, want_grad[:, rank::world], "SCL gradient (sharded Gaussians)")


def _check_ddp(rank, world):
    """A model under DistributedDataParallel: after its gradient averaging every rank holds the
    gradient of the global mean, on uneven shards with one rank holding no terms."""
    pred, target, weight = _batch_problem(seed=3, k=17, d=3)
    graph = skeleton("coco17")
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2).double()
    reference = torch.nn.Linear(3, 2).double()
    reference.load_state_dict(model.state_dict())

    def loss_single(m, x, t, w):
        out = m(x)
        return spl.keypoint_match_loss(out, t, weight=w) + spl.sirenpose_loss(out, t, graph, weight=w)

    t2 = target[..., :2]
    loss_single(reference, pred, t2, weight).backward()
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    sizes = _splits(pred.shape[0], world)
    x, t, w = (_pieces(a, sizes, rank) for a in (pred, t2, weight))
    out = ddp(x)
    loss = sd.keypoint_match_loss(out, t, weight=w) + sd.sirenpose_loss(out, t, graph, weight=w)
    loss.backward()
    _close(loss, loss_single(reference, pred, t2, weight), "DDP loss value")
    for (name, p), q in zip(model.named_parameters(), reference.parameters()):
        _close(p.grad, q.grad, f"DDP gradient of {name}")


def _check_compile(rank, world):
    """torch.compile(fullgraph=True) traces the all-reduce and the halo exchange: same values
    and gradients as eager."""
    pred, target, weight = _batch_problem(seed=4)
    sizes = _splits(pred.shape[0], world)
    p, t, w = (_pieces(a, sizes, rank) for a in (pred, target, weight))
    part = sd.Partition.strided(17, world)
    plan = sd.HaloPlan(skeleton("coco17").edge_index, part)
    sharded = [part.shard(a, rank, -1 if a.dim() == 2 else -2) for a in (pred, target, weight)]
    cases = [(lambda a, b, c: sd.keypoint_match_loss(a, b, weight=c), (p, t, w)),
             (lambda a, b, c: sd.sirenpose_loss(a, b, plan, weight=c, average_grads=False),
              sharded)]
    for fn, (a, b, c) in cases:
        compiled = torch.compile(fn, fullgraph=True, backend="aot_eager")
        leaf_e, leaf_c = _leaf(a), _leaf(a)
        eager, traced = fn(leaf_e, b, c), compiled(leaf_c, b, c)
        _close(traced, eager, "compiled value")
        _close(_grads(traced, leaf_c)[0], _grads(eager, leaf_e)[0], "compiled gradient")


# -------------------------------------------------------------------- sharded graphs (halo)

def _partition(kind, num_nodes, world):
    if kind == "strided":
        return sd.Partition.strided(num_nodes, world)
    # a given partition in which the last rank owns nothing
    owner = torch.randint(0, max(world - 1, 1), (num_nodes,), generator=_gen(7))
    return sd.Partition(owner, world)


def _check_sharded(rank, world, name, part, single, sharded, node_tensors, node_dim=-2):
    """Loss and gradients of the sharded evaluation against the single-process ones."""
    full = [_leaf(x) for x in node_tensors]
    want = single(*full)
    want_grads = _grads(want, *full)
    mine = [_leaf(part.shard(x, rank, node_dim)) for x in node_tensors]
    got = sharded(*mine)
    grads = _grads(got, *mine)
    _close(got, want, f"{name} value")
    for i, (g, w) in enumerate(zip(grads, want_grads)):
        g = torch.zeros_like(mine[i]) if g is None else g
        _close(g, part.shard(w, rank, node_dim), f"{name} gradient of input {i}")


def _knn_problem():
    g = _gen(11)
    points = torch.rand(40, 3, generator=g, dtype=torch.float64)
    edge_index = knn_graph(points, k=4)
    pred = points + 0.02 * torch.randn(2, 40, 3, generator=g, dtype=torch.float64)
    target = points + 0.02 * torch.randn(2, 40, 3, generator=g, dtype=torch.float64)
    weight = torch.rand(2, 40, generator=g, dtype=torch.float64)
    edge_weight = torch.rand(edge_index.shape[1], generator=g, dtype=torch.float64)
    return edge_index, pred, target, weight, edge_weight


def _edge_energy(x, edge_index):
    """A plain-torch graph loss on [..., T, M, C]: the sum over edges of ||x_j - x_i||^2."""
    return (x[..., edge_index[0], :] - x[..., edge_index[1], :]).square().sum()


def _check_halo(rank, world):
    edge_index, pred, target, weight, ew = _knn_problem()
    bones = skeleton("coco17")
    kp_pred, kp_target, kp_weight = _batch_problem(seed=12, batch=3)
    tracks = torch.randn(4, 40, 3, generator=_gen(13), dtype=torch.float64)   # [T, M, C]
    for kind in ("strided", "given"):
        part = _partition(kind, 40, world)
        plan = sd.HaloPlan(edge_index, part)
        assert plan.num_local == int(part.counts[rank])
        w_mine = part.shard(weight, rank, -1)
        _check_sharded(
            rank, world, f"sin graph over kNN ({kind})", part,
            lambda p, t: spl.sin_graph_consistency_loss(p, t, edge_index, weight=weight,
                                                        edge_weight=ew, omega0=7.0),
            lambda p, t: sd.sin_graph_consistency_loss(p, t, plan, weight=w_mine, edge_weight=ew,
                                                       omega0=7.0, average_grads=False),
            [pred, target])
        # any loss over [..., T, M, C] plus edge_index runs unchanged on the extended rows
        _check_sharded(
            rank, world, f"plain-torch edge loss over kNN, [T, M, C] ({kind})", part,
            lambda x: _edge_energy(x, edge_index) / (x.shape[0] * edge_index.shape[1]),
            lambda x: sd.global_mean(_edge_energy(plan.exchange(x), plan.edge_index),
                                     x.shape[0] * plan.edge_index.shape[1], average_grads=False),
            [tracks])
        kp_part = _partition(kind, 17, world)
        kp_plan = sd.HaloPlan(bones.edge_index, kp_part)
        kw_mine = kp_part.shard(kp_weight, rank, -1)
        _check_sharded(
            rank, world, f"SirenPose over the COCO skeleton ({kind})", kp_part,
            lambda p, t: spl.sirenpose_loss(p, t, bones, weight=kp_weight, lambda_geo=0.5),
            lambda p, t: sd.sirenpose_loss(p, t, kp_plan, weight=kw_mine, lambda_geo=0.5,
                                           average_grads=False),
            [kp_pred, kp_target])


def _check_all(rank, world):
    _check_global_means(rank, world)
    _check_ddp(rank, world)
    _check_halo(rank, world)
    if world == 2:
        _check_compile(rank, world)


@pytest.mark.parametrize("world", [2, 3])
def test_global_means_gradients_and_halo_exchange_match_single_process(world):
    """One run per world size (a run's start-up costs more than its checks): global means and
    gradients on uneven shards with an empty rank and a zero-weight rank, DDP, the SCL with
    frames split and with Gaussians sharded, the halo exchange on a kNN and a skeleton graph,
    and (2 ranks) torch.compile."""
    run_ranks(_check_all, world)


# ----------------------------------------------------------------- failures do not hang

def _raise_on_rank_1(rank, world):
    if rank == 1:
        raise ValueError("rank 1 fails on purpose")
    dist.all_reduce(torch.ones(1))       # would wait for rank 1 until the gloo timeout


def _raise_while_rank_0_is_busy(rank, world):
    if rank == 1:
        raise ValueError("rank 1 fails on purpose")
    time.sleep(2 * COLLECTIVE_TIMEOUT_S)  # busy outside any collective: no timeout can fire


def _exit_on_rank_1(rank, world):
    if rank == 1:
        os._exit(3)
    dist.all_reduce(torch.ones(1))


@pytest.mark.parametrize("worker", [_raise_on_rank_1, _raise_while_rank_0_is_busy])
def test_a_rank_that_raises_fails_the_test_with_its_error_and_no_hang(worker):
    start = time.monotonic()
    with pytest.raises(RankFailed, match="rank 1 failed:(.|\n)*ValueError: rank 1 fails on purpose"):
        run_ranks(worker, 2)
    assert time.monotonic() - start < COLLECTIVE_TIMEOUT_S


def test_a_rank_that_dies_fails_the_test_and_no_hang():
    start = time.monotonic()
    with pytest.raises(RankFailed, match="^rank 1 exited with code 3 and no report"):
        run_ranks(_exit_on_rank_1, 2)
    assert time.monotonic() - start < COLLECTIVE_TIMEOUT_S


# ------------------------------------------------------------ without torch.distributed

def test_without_a_process_group_no_collective_runs_and_means_are_local(monkeypatch):
    assert not dist.is_initialized()

    def forbidden(*args, **kwargs):
        raise AssertionError("a collective ran without a process group")
    monkeypatch.setattr(dist, "all_to_all_single", forbidden)
    monkeypatch.setattr("torch.distributed._functional_collectives.all_reduce", forbidden)
    pred, target, weight = _batch_problem()
    graph = skeleton("coco17")
    pairs = [
        (spl.keypoint_match_loss(pred, target, weight=weight),
         sd.keypoint_match_loss(pred, target, weight=weight)),
        (spl.sirenpose_loss(pred, target, graph, weight=weight[0]),
         sd.sirenpose_loss(pred, target, graph, weight=weight[0])),
        (spl.spatiotemporal_consistency_loss(pred, weight=weight[0], order=2),
         sd.spatiotemporal_consistency_loss(pred, weight=weight[0], order=2)),
    ]
    for want, got in pairs:
        _close(got, want, "local mean")
    plan = sd.HaloPlan(graph.edge_index, sd.Partition.strided(17, 1))
    assert plan.num_halo == 0 and torch.equal(plan.edge_index, graph.edge_index)
    assert plan.exchange(pred) is pred
    _close(sd.sin_graph_consistency_loss(pred, target, plan, weight=weight),
           spl.sin_graph_consistency_loss(pred, target, graph, weight=weight), "plan, one rank")


def test_zero_denominator_gives_zero_and_zero_gradient():
    x = torch.randn(3, 4, 2, dtype=torch.float64, requires_grad=True)
    loss = sd.keypoint_match_loss(x, torch.zeros_like(x), weight=torch.zeros(4, dtype=torch.float64))
    loss.backward()
    assert float(loss.detach()) == 0.0 and torch.equal(x.grad, torch.zeros_like(x))


def test_counts_match_the_losses_mean_definitions():
    pred, target, weight = _batch_problem()
    graph = skeleton("coco17")
    for w in (None, weight, weight[0]):
        for fn, count in (
                (lambda r: spl.keypoint_match_loss(pred, target, weight=w, reduction=r),
                 sd.keypoint_match_count(pred, w)),
                (lambda r: spl.sin_graph_consistency_loss(pred, target, graph, weight=w,
                                                          reduction=r),
                 sd.graph_edge_count(graph.edge_index, pred.shape[:-2], weight=w))):
            _close(fn("sum") / count, fn("mean"), "sum / count")
    pos = torch.randn(2, 5, 17, 2, dtype=torch.float64)
    for order in (1, 2):
        for w in (None, weight[:2], weight[0]):
            total = spl.spatiotemporal_consistency_loss(pos, weight=w, order=order, reduction="sum")
            _close(total / sd.spatiotemporal_consistency_count(pos, w, order),
                   spl.spatiotemporal_consistency_loss(pos, weight=w, order=order), "SCL count")


def test_partition_layouts():
    part = sd.Partition.strided(10, 3)
    x = torch.arange(20.0).reshape(1, 10, 2)
    for r in range(3):
        assert torch.equal(part.shard(x, r), x[:, r::3])
    owner = torch.tensor([2, 0, 2, 1, 0])
    given = sd.Partition(owner, 3)
    assert given.rows(2).tolist() == [0, 2] and given.local.tolist() == [0, 0, 1, 0, 1]
    assert given.counts.tolist() == [2, 1, 2]


@pytest.mark.parametrize("call, message", [
    (lambda: sd.Partition(torch.tensor([0, 3]), 3), r"owner values must be ranks in \[0, 3\), got"),
    (lambda: sd.Partition(torch.tensor([0.5]), 1), "owner must be an integer tensor of shape"),
    (lambda: sd.Partition.strided(4, 0), "world_size must be a positive int, got 0"),
    (lambda: sd.HaloPlan(torch.tensor([[0], [1]]), sd.Partition.strided(4, 2)),
     "partition is over 2 ranks but the process group has 1"),
    (lambda: sd.HaloPlan(torch.tensor([[0], [9]]), sd.Partition.strided(4, 1)),
     r"edge_index values must be node ids in \[0, 4\), got"),
    (lambda: sd.HaloPlan(torch.zeros(3, 2, dtype=torch.long), sd.Partition.strided(4, 1)),
     r"edge_index must be an integer tensor of shape \[2, E\], got shape \[3, 2\]"),
    (lambda: sd.HaloPlan(torch.tensor([[0], [1]]), sd.Partition.strided(4, 1)).exchange(
        torch.zeros(3, 2)), "x must hold this rank's 4 rows along dim -2, got shape"),
    (lambda: sd.global_means([torch.ones(())], []), "sums and counts must have the same length"),
    (lambda: sd.global_mean(torch.ones(2), 1), r"sums\[0\] must be a floating-point scalar"),
    (lambda: sd.global_mean(torch.ones(()), "3"), r"counts\[0\] must be a number or a scalar"),
])
def test_bad_input_is_named(call, message):
    with pytest.raises((TypeError, ValueError, IndexError), match=message):
        call()


def test_partition_world_size_must_match():
    with pytest.raises(ValueError, match="partition is over"):
        sd.HaloPlan(torch.tensor([[0], [1]]), sd.Partition.strided(2, 3))


# ------------------------------------------------------------- the distributed 4DGS trainer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _frame_block():
    sys.path.insert(0, os.path.join(ROOT, "examples"))
    try:
        from fourdgs.distributed import frame_block
    finally:
        sys.path.remove(os.path.join(ROOT, "examples"))
    return frame_block


@pytest.mark.parametrize("num_frames", [3, 8, 24])
@pytest.mark.parametrize("world", [1, 2, 3])
def test_trainer_frame_blocks_hold_every_frame_and_every_scl_term_once(num_frames, world):
    frame_block = _frame_block()
    own = [range(*frame_block(num_frames, world, r)) for r in range(world)]
    assert sorted(f for block in own for f in block) == list(range(num_frames))
    for order in (1, 2):
        terms = []
        for r in range(world):
            lo, hi = frame_block(num_frames, world, r, order)
            terms += [t for t in range(lo + order, hi)]      # the term ending at frame t
        assert sorted(terms) == list(range(order, num_frames)), (world, order)


@pytest.mark.slow
def test_torchrun_two_processes_train_and_only_rank_0_writes(tmp_path):
    out = tmp_path / "ddp"
    env = dict(os.environ, PYTHONWARNINGS="ignore",
               PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "--tee", "3", os.path.join("examples", "train_4dgs.py"), "--distributed", "--preset",
           "smoke", "--iters", "3", "--out", str(out)]     # --tee: lines tagged [default<rank>]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    record = json.loads((out / "metrics.json").read_text())
    assert record["world_size"] == 2 and math.isfinite(record["metrics"]["psnr_heldout"])
    both = proc.stdout + proc.stderr
    assert "[default0]:wrote " in both and "wrote " not in both.replace("[default0]:wrote ", "")
    assert "[default0]:train" in both and "[default1]:train" not in both   # progress: rank 0
