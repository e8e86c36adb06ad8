"""Cross-cutting contracts: value checks found in the kernels' own pass, reduction codes read
from the library, plain numbers checked under torch.compile, errors that name the caller's
arguments. Self-contained (plain torch, no shared helpers)."""
import math
import re

import pytest
import torch

import sirenpose_loss as spl
from sirenpose_loss import _ops, metrics

ops = torch.ops.sirenpose_loss
compiled_only = pytest.mark.skipif(spl.backend() != "compiled", reason="needs the compiled kernels")


def _randn(*shape, seed):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _message(fn, exc, threads=None):
    """The first line of the error that fn() raises (at `threads` threads when given)."""
    saved = torch.get_num_threads()
    torch.set_num_threads(threads or saved)
    try:
        with pytest.raises(exc) as info:
            fn()
    finally:
        torch.set_num_threads(saved)
    return str(info.value).splitlines()[0]


# ------------------------------------------------------------------------- reduction codes
@compiled_only
def test_reduction_codes_come_from_the_library_and_mean_what_they_say():
    from sirenpose_loss import _C
    assert (_ops.NONE, _ops.MEAN, _ops.SUM) == (_C.REDUCTION_NONE, _C.REDUCTION_MEAN,
                                                _C.REDUCTION_SUM)
    assert len({_ops.NONE, _ops.MEAN, _ops.SUM}) == 3
    p, t, w = _randn(3, 5, 2, seed=1), _randn(3, 5, 2, seed=2), _randn(5, seed=3).abs()
    terms = w * ((p - t) ** 2).sum(-1)
    none, _ = ops.keypoint_match_fwd(p, t, w, _ops.NONE)
    mean, denom = ops.keypoint_match_fwd(p, t, w, _ops.MEAN)
    total, _ = ops.keypoint_match_fwd(p, t, w, _ops.SUM)
    torch.testing.assert_close(none, terms)
    torch.testing.assert_close(total, terms.sum())
    torch.testing.assert_close(mean, terms.sum() / (3 * w.sum()))
    torch.testing.assert_close(denom, 3 * w.sum())


# ------------------------------------------------- value checks in the kernels' own pass
# Shapes with several chunks (4096 rows per KML chunk, 1024 Gaussians per SCL chunk) so the
# first bad entry must be found across chunks that run on different threads.
def _kml_call(weight, batch, K):
    p, t = _randn(batch, K, 2, seed=4), _randn(batch, K, 2, seed=5)
    return lambda: ops.keypoint_match_fwd(p, t, weight, _ops.MEAN)


def _scl_call(weight, batch, T, M):
    P = _randn(batch, T, M, 3, seed=6)
    return lambda: ops.spatiotemporal_consistency_fwd(P, weight, 1, _ops.NONE)


def _with_negatives(shape, flat_indices, values):
    w = torch.rand(*shape, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    for i, v in zip(flat_indices, values):
        w.view(-1)[i] = v
    return w


WEIGHT_CASES = {
    # name: (call, first bad flat index, its value)
    "kml_shared": (lambda: _kml_call(_with_negatives((5000,), [4500, 100], [-1.0, -2.5]), 3, 5000),
                   100, "-2.5"),
    "kml_per_entry": (lambda: _kml_call(_with_negatives((3, 5000), [10010, 9999], [-1.0, -0.5]),
                                        3, 5000), 9999, "-0.5"),
    "kml_empty_batch": (lambda: _kml_call(_with_negatives((4,), [2], [-3.0]), 0, 4), 2, "-3"),
    "scl_shared": (lambda: _scl_call(_with_negatives((3000,), [2999, 1500], [-1.0, -4.0]), 2, 4,
                                     3000), 1500, "-4"),
    "scl_per_entry": (lambda: _scl_call(_with_negatives((2, 3000), [5000, 3001], [-1.0, -0.25]),
                                        2, 4, 3000), 3001, "-0.25"),
    "scl_no_terms": (lambda: _scl_call(_with_negatives((30,), [7], [-1.0]), 2, 1, 30), 7, "-1"),
}


@compiled_only
@pytest.mark.parametrize("case", list(WEIGHT_CASES))
def test_negative_weight_found_in_the_pass_names_the_first_flat_index(case):
    make, index, value = WEIGHT_CASES[case]
    call = make()
    messages = {_message(call, ValueError, threads=n) for n in (1, 2, 4)}
    assert messages == {f"weight must be non-negative, got {value} at flat index {index}"}


def _graph(K=6, E=5, batch=4, seed=8):
    p, t = _randn(batch, K, 2, seed=seed), _randn(batch, K, 2, seed=seed + 1)
    e = torch.stack([torch.arange(E) % K, (torch.arange(E) + 1) % K])
    return p, t, e


def _sirenpose_fwd(p, t, e, w=None, ew=None, with_pos=True):
    return lambda: ops.sirenpose_fwd(p, t, e, w, ew, 30.0, 1.0, with_pos, _ops.MEAN)


@compiled_only
@pytest.mark.parametrize("batch", [0, 1, 700])  # no chunk, one chunk, several chunks
def test_graph_values_found_in_the_pass(batch):
    p, t, e = _graph(batch=batch)
    bad = e.clone()
    bad[1, 3] = 6   # flat index 8
    bad[0, 4] = -1  # flat index 4: the first in flat order
    w = torch.ones(6, dtype=torch.float64)
    w[5] = -2.0
    ew = torch.ones(5, dtype=torch.float64)
    ew[2] = -0.5
    for n in (1, 4):
        # edges first, then weight, then edge_weight, whatever else is wrong too
        assert _message(_sirenpose_fwd(p, t, bad, w, ew), IndexError, n) == (
            "edge_index values must be in [0, 6) (K = 6 keypoints), got -1 at edge 4")
        assert _message(_sirenpose_fwd(p, t, bad.int(), w, ew), IndexError, n).endswith(
            "got -1 at edge 4")
        # keypoint weights are checked without the pos term too
        assert _message(_sirenpose_fwd(p, t, e, w, ew, with_pos=False), ValueError, n) == (
            "weight must be non-negative, got -2 at flat index 5")
        assert _message(_sirenpose_fwd(p, t, e, None, ew), ValueError, n) == (
            "edge_weight must be non-negative, got -0.5 at flat index 2")


@compiled_only
def test_graph_weight_of_a_keypoint_on_no_edge_is_checked():
    p, t, _ = _graph(batch=3)
    e = torch.tensor([[0, 1], [1, 2]])
    w = torch.ones(3, 6, dtype=torch.float64)
    w[2, 4] = -1.0  # keypoint 4 of batch entry 2 is on no edge
    assert _message(_sirenpose_fwd(p, t, e, w, with_pos=False), ValueError) == (
        "weight must be non-negative, got -1 at flat index 16")


@compiled_only
def test_backward_guards_edges_but_does_not_recheck_weights():
    p, t, e = _graph(batch=3)
    w = torch.ones(6, dtype=torch.float64)
    w[0] = -1.0  # the forward refuses this; the backward does not read weights as indices
    denom = torch.tensor([6.0, 5.0], dtype=torch.float64)
    g = torch.tensor(1.0, dtype=torch.float64)
    gp, _ = ops.sirenpose_bwd(g, g, p, t, e, w, None, denom, None, None, 30.0, 1.0, True,
                              _ops.MEAN, [True, False])
    assert torch.isfinite(gp).all()
    gk, _ = ops.keypoint_match_bwd(g, p, t, w, torch.tensor(6.0, dtype=torch.float64),
                                   _ops.SUM, [True, False])
    torch.testing.assert_close(gk[:, 0], 2 * -1.0 * (p[:, 0] - t[:, 0]))
    bad = e.clone()
    bad[1, 0] = 99
    with pytest.raises(IndexError, match=r"edge_index values must be in \[0, 6\) .* got 99 at "
                                         r"edge 0"):
        ops.sirenpose_bwd(g, g, p, t, bad, None, None, denom, None, None, 30.0, 1.0, True,
                          _ops.MEAN, [True, True])


# ----------------------------------------------------- plain numbers, eager and compiled
@compiled_only
@pytest.mark.parametrize("value", [-1.0, -30.0, -0.1, -1e-05, -2.5e-07, -1e16, -123456.789,
                                   -0.0, 0.0, math.nan, math.inf, -math.inf])
def test_kernel_number_messages_match_the_python_api(value):
    """The kernels check omega0 and lambda_geo with the Python API's exact messages."""
    p, t, e = _graph(batch=1)
    if not value > 0:
        kernel = _message(lambda: ops.sirenpose_fwd(p, t, e, None, None, value, 1.0, True, 1),
                          ValueError)
        python = _message(lambda: spl.sirenpose_loss(p, t, e, omega0=value), ValueError)
        assert kernel == python == f"omega0 must be a positive finite number, got {value!r}"
    if not value >= 0:
        kernel = _message(lambda: ops.sirenpose_fwd(p, t, e, None, None, 30.0, value, True, 1),
                          ValueError)
        python = _message(lambda: spl.sirenpose_loss(p, t, e, lambda_geo=value), ValueError)
        assert kernel == python == f"lambda_geo must be a non-negative finite number, got {value!r}"


def _compiled(fn):
    torch._dynamo.reset()
    return torch.compile(fn, fullgraph=True, backend="aot_eager")


COMPILED_BAD_CALLS = {
    "omega0": (lambda p, t, e: spl.sirenpose_loss(p, t, e, omega0=-1.0),
               "omega0 must be a positive finite number, got -1.0"),
    "omega0_graph_term": (lambda p, t, e: spl.sin_graph_consistency_loss(p, t, e, omega0=math.nan),
                          "omega0 must be a positive finite number, got nan"),
    "lambda_geo": (lambda p, t, e: spl.sirenpose_loss(p, t, e, lambda_geo=-0.5),
                   "lambda_geo must be a non-negative finite number, got -0.5"),
    "order": (lambda p, t, e: spl.spatiotemporal_consistency_loss(p[None], order=3),
              "order must be 1 (velocity) or 2 (acceleration), got 3"),
}


@compiled_only
@pytest.mark.parametrize("case", list(COMPILED_BAD_CALLS))
def test_plain_numbers_raise_the_same_error_under_compile(case):
    fn, expected = COMPILED_BAD_CALLS[case]
    p, t, e = _graph(batch=3)
    assert _message(lambda: fn(p, t, e), ValueError) == expected  # eager
    assert _message(lambda: _compiled(fn)(p, t, e), ValueError) == expected


@compiled_only
def test_valid_numbers_compile_without_graph_break():
    p, t, e = _graph(batch=3)
    p.requires_grad_(True)

    def fn(p, t, e, omega0, lambda_geo):
        return (spl.sirenpose_loss(p, t, e, omega0=omega0, lambda_geo=lambda_geo)
                + spl.spatiotemporal_consistency_loss(p[None], order=2))

    compiled = _compiled(fn)
    for omega0, lambda_geo in [(30.0, 1.0), (20.0, 0.5), (10.0, 0.0)]:  # floats may go symbolic
        out = compiled(p, t, e, omega0, lambda_geo)
        ref = fn(p, t, e, omega0, lambda_geo)
        torch.testing.assert_close(out, ref)
        (g,) = torch.autograd.grad(out, p)
        (g_ref,) = torch.autograd.grad(ref, p)
        torch.testing.assert_close(g, g_ref)


# ------------------------------------------------------------ the caller's own names
def _pose_inputs():
    return _randn(2, 6, 2, seed=20), _randn(2, 6, 2, seed=21), _randn(2, 5, 4, 3, seed=22)


@pytest.mark.parametrize("call, exc, pattern", [
    (lambda m, pk, tk, P: m(pk, tk[:, :5], P), ValueError,
     r"^pred_keypoints and target_keypoints must have the same shape \[\.\.\., K, D\], got "),
    (lambda m, pk, tk, P: m(pk.float(), tk, P), TypeError,
     r"^pred_keypoints and target_keypoints must have the same dtype, got "),
    (lambda m, pk, tk, P: m(pk[0, 0], tk, P), ValueError,
     r"^pred_keypoints must have shape \[\.\.\., K, D\] \(at least 2 dims\), got "),
    (lambda m, pk, tk, P: m(pk, tk, P, keypoint_weight=torch.ones(5, dtype=torch.float64)),
     ValueError, r"^keypoint_weight must have shape \[\.\.\., K\] = \[2, 6\] or \[6\], got \[5\]"),
    (lambda m, pk, tk, P: m(pk, tk, P, keypoint_weight=-torch.ones(6, dtype=torch.float64)),
     ValueError, r"^keypoint_weight must be non-negative, got -1(\.0)? at flat index 0"),
    (lambda m, pk, tk, P: m(pk, tk, P, gaussian_weight=torch.ones(8, dtype=torch.float64)),
     ValueError, r"^gaussian_weight must have shape \[\.\.\., M\] = \[2, 4\] or \[4\], got \[8\]"),
    (lambda m, pk, tk, P: m(pk, tk, P, gaussian_weight=torch.tensor([1.0, 1, -3, 1],
                                                                    dtype=torch.float64)),
     ValueError, r"^gaussian_weight must be non-negative, got -3(\.0)? at flat index 2"),
    (lambda m, pk, tk, P: m(pk, tk, P, gaussian_weight=torch.ones(4, requires_grad=True)),
     ValueError, r"^gaussian_weight is a constant of the loss and must not require grad .*got "),
], ids=["shape", "dtype", "dims", "kw_shape", "kw_value", "gw_shape", "gw_value", "gw_grad"])
def test_pose_alignment_errors_name_its_own_arguments(call, exc, pattern):
    pk, tk, P = _pose_inputs()
    message = _message(lambda: call(spl.PoseAlignmentLoss(), pk, tk, P), exc)
    assert re.search(pattern, message), message


def test_order_is_checked_alike_everywhere():
    P = _randn(5, 4, 3, seed=30)
    expected = "order must be 1 (velocity) or 2 (acceleration), got 1.5"
    for make in (lambda: spl.spatiotemporal_consistency_loss(P, order=1.5),
                 lambda: spl.SpatioTemporalConsistencyLoss(order=1.5),
                 lambda: spl.PoseAlignmentLoss(order=1.5)):
        assert _message(make, ValueError) == expected


@pytest.mark.parametrize("call, exc", [
    (lambda: metrics.keypoint_error([[0.0, 0.0]], torch.zeros(1, 2)), TypeError),
    (lambda: metrics.jitter(torch.zeros(4, 2)), ValueError),
    (lambda: metrics.jitter(torch.zeros(4, 3, 2), dt=0.0), ValueError),
    (lambda: metrics.bbox_size(torch.zeros(3)), ValueError),
    (lambda: metrics.rpe(torch.zeros(5, 3), torch.zeros(6, 3)), ValueError),
    (lambda: metrics.rpe(torch.zeros(2, 3), torch.zeros(2, 3), delta=2), ValueError),
    (lambda: metrics.umeyama_alignment(torch.ones(4, 3), torch.zeros(4, 3)), ValueError),
    (lambda: metrics.psnr(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4), data_range=-1.0),
     ValueError),
])
def test_metric_errors_say_what_they_got(call, exc):
    assert " got " in _message(call, exc)
