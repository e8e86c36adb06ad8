"""The CUDA tests' error bound, checked on the CPU: float32 arithmetic (the reference evaluated
in float32) stays within it on every CUDA test case, and it is tight enough to catch a wrong
gradient element."""
import pytest
import torch

import sirenpose_loss as spl
from cuda_cases import CASES, assert_within, check_against_truth, outputs, sirenpose_case

F32 = torch.float32


def _truth(case):
    return outputs(*case.rounded(F32).on("cpu"), grad_dtype=F32)


@pytest.mark.parametrize("name", list(CASES))
def test_float32_arithmetic_is_within_the_bound(name):
    case = CASES[name]()
    got = outputs(*CASES[name](impl=spl.reference).rounded(F32).on("cpu", F32))
    check_against_truth(case, got, _truth(case), dtype=F32, what=name)


@pytest.mark.parametrize("name", ["kml-mean-batch", "scl2-sum-shared", "sirenpose-mean-batch-ew1-pos1",
                                  "sirenpose-none-shared-ew0-pos1"])
def test_bound_catches_a_wrong_gradient_element(name):
    """A gradient element off by 1e-3 of the gradient's largest element fails the check."""
    case = CASES[name]()
    outs, grads, grads_in = truth = _truth(case)
    bound = case.bound(grads_in, F32)
    for g, atol in zip(grads, bound.grad_atol):
        scale = float(g.abs().max())
        assert atol < 1e-3 * scale, f"{name}: atol {atol:.3g} is loose for gradients of size {scale:.3g}"
        wrong = g.clone()
        wrong.view(-1)[g.numel() // 2] += 1e-3 * scale
        with pytest.raises(AssertionError, match="outside the error bound"):
            assert_within(wrong.float(), g, atol, 2 ** -23, name)


def test_bound_grows_with_omega0():
    def grad_atol(omega0):
        case = sirenpose_case("mean", "none", omega0=omega0)
        return case.bound(_truth(case)[2], F32).grad_atol[0]
    assert grad_atol(60.0) > 2 * grad_atol(30.0) > 4 * grad_atol(15.0)
