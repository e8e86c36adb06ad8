"""Keypoint match loss: what is particular to it (known answers, its relation to MSE, exact
symmetries, its ops called directly). The contract every loss keeps (reference, gradients,
precisions, determinism, compile, opcheck, bad input) is checked in tests/contract/."""
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, strategies as st

import sirenpose_loss as spl

from conftest import (F64, assert_bitwise_equal, assert_close, draw_common, make_weight,
                      needs_compiled, op, rand_weight, randn)

def pair(*shape, seed, device="cpu", scale=1.0):
    return (randn(*shape, seed=seed, device=device, scale=scale),
            randn(*shape, seed=seed + 1, device=device, scale=scale))


# ------------------------------------------------------------------------------- known answers
def test_known_answer_two_keypoints(device):
    # d0 = (0,0)-(3,4) -> 25, d1 = (1,1)-(1,2) -> 1.
    pred = torch.tensor([[0.0, 0.0], [1.0, 1.0]], dtype=torch.float64, device=device,
                        requires_grad=True)
    target = torch.tensor([[3.0, 4.0], [1.0, 2.0]], dtype=torch.float64, device=device)
    none = spl.keypoint_match_loss(pred, target, reduction="none")
    assert none.tolist() == [25.0, 1.0]
    assert spl.keypoint_match_loss(pred, target, reduction="sum").item() == 26.0
    assert spl.keypoint_match_loss(pred, target, reduction="mean").item() == 13.0
    w = torch.tensor([1.0, 3.0], dtype=torch.float64, device=device)
    assert spl.keypoint_match_loss(pred, target, weight=w, reduction="sum").item() == 28.0
    loss = spl.keypoint_match_loss(pred, target, weight=w, reduction="mean")
    assert loss.item() == 7.0                       # 28 / (1 + 3)
    loss.backward()
    # d/dpred = 2 w (pred - target) / sum(w)
    assert pred.grad.tolist() == [[-1.5, -2.0], [0.0, -1.5]]


def test_mean_is_D_times_mse(device):
    pred, target = pair(4, 9, 3, seed=31, device=device)
    out = spl.keypoint_match_loss(pred, target)
    assert_close(out, 3 * F.mse_loss(pred, target), **F64)


# -------------------------------------------------------------------------- property tests
@st.composite
def kml_case(draw):
    return dict(draw_common(draw), K=draw(st.integers(0, 9)))


@given(case=kml_case())
def test_property_exact_symmetries(device, case):
    """Bit-exact: symmetric in pred/target; scaling the points by 2 scales the loss by 4;
    scaling the weights by 2 leaves the mean unchanged and doubles the sum; a bool mask is the
    same as 0/1 weights."""
    b, K, D, s, red = case["batch"], case["K"], case["D"], case["seed"], case["reduction"]
    pred, target = pair(*b, K, D, seed=s, device=device, scale=case["scale"])
    pred, target = pred.detach(), target.detach()
    w = make_weight(case["weight_kind"], b, K, seed=s + 2, device=device)
    out = spl.keypoint_match_loss(pred, target, weight=w, reduction=red)
    assert_bitwise_equal(spl.keypoint_match_loss(target, pred, weight=w, reduction=red), out,
                         "swap")
    assert_bitwise_equal(spl.keypoint_match_loss(2 * pred, 2 * target, weight=w, reduction=red),
                         4 * out, "scale")
    if w is not None:
        wf = w.to(torch.float64)
        assert_bitwise_equal(spl.keypoint_match_loss(pred, target, weight=wf, reduction=red),
                             out, "bool/float")
        doubled = spl.keypoint_match_loss(pred, target, weight=2 * wf, reduction=red)
        assert_bitwise_equal(doubled, out if red == "mean" else 2 * out, "weight scale")


@given(case=kml_case())
def test_property_consistency(device, case):
    """Translation invariance, shared weight == expanded weight, and the reductions agree with
    the per-term values."""
    b, K, D, s, red = case["batch"], case["K"], case["D"], case["seed"], case["reduction"]
    pred, target = pair(*b, K, D, seed=s, device=device)
    pred, target = pred.detach(), target.detach()
    shift = randn(D, seed=s + 5, device=device)
    w = rand_weight(K, seed=s + 2, device=device)
    out = spl.keypoint_match_loss(pred, target, weight=w, reduction=red)
    assert_close(spl.keypoint_match_loss(pred + shift, target + shift, weight=w, reduction=red),
                 out, rtol=1e-9, atol=1e-11)
    assert_close(spl.keypoint_match_loss(pred, target, weight=w.expand(*b, K).contiguous(),
                                         reduction=red), out, **F64)
    terms = spl.keypoint_match_loss(pred, target, weight=w, reduction="none")
    total = spl.keypoint_match_loss(pred, target, weight=w, reduction="sum")
    mean = spl.keypoint_match_loss(pred, target, weight=w, reduction="mean")
    assert_close(total, terms.sum(), **F64)
    denom = w.expand(*b, K).sum()
    assert_close(mean, terms.sum() / denom if denom > 0 else torch.zeros_like(mean), **F64)


def test_module_repr():
    assert "reduction='sum'" in repr(spl.KeypointMatchLoss(reduction="sum"))


@needs_compiled
def test_direct_op_calls_check_their_arguments():
    """The ops are public (torch.ops.sirenpose_loss.*): bad arguments raise, never crash."""
    fwd, bwd = op("keypoint_match_fwd"), op("keypoint_match_bwd")
    K = 4
    p, t = pair(2, K, 3, seed=1)
    with pytest.raises(ValueError, match=r"(?<!edge_)weight must be non-negative, got -1"):
        fwd(p, t, torch.tensor([1.0, -1.0, 1.0, 1.0], dtype=torch.float64), 1)
    with pytest.raises(ValueError, match=r"pred and target must have the same shape, got"):
        fwd(p, t[:, :3], None, 1)
    with pytest.raises(TypeError, match=r"pred must be a floating-point tensor, got"):
        fwd(p.long(), t.long(), None, 1)
    with pytest.raises(TypeError, match=r"pred and target must have the same dtype, got"):
        fwd(p, t.float(), None, 1)
    with pytest.raises(ValueError, match=r"weight must have 4 or 8 elements, got"):
        fwd(p, t, torch.ones(K + 1, dtype=torch.float64), 1)
    with pytest.raises(ValueError, match=r"reduction code must be 0 \(none\), 1 \(mean\) or 2 "
                                         r"\(sum\), got 3"):
        fwd(p, t, None, 3)
    with pytest.raises(ValueError, match=r"pred must have shape \[\.\.\., K, D\], got"):
        fwd(p[0, 0], t[0, 0], None, 1)
    loss, denom = fwd(p, t, None, 0)
    with pytest.raises(ValueError, match=r"per-term gradient must have shape \[2, 4\], got"):
        bwd(torch.ones(2, K + 3, dtype=torch.float64), p, t, None, denom, 0, [True, True])
