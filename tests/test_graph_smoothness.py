"""Graph smoothness loss: a known answer on a small graph, worked by hand. The contract
(reference, 1 to 16 channels, precisions, autograd, bad input) is in tests/contract."""
import math

import pytest
import torch

import sirenpose_loss as spl

from conftest import assert_close


@pytest.mark.parametrize("penalty", ["squared", "norm"])
def test_known_answer(penalty):
    f = torch.tensor([[0.0, 1.0], [2.0, 1.0], [0.0, -2.0]], dtype=torch.float64, requires_grad=True)
    edges = torch.tensor([[1, 2, 0], [0, 0, 2]])          # (j -> i): 1->0, 2->0, 0->2
    w = torch.tensor([0.5, 2.0, 1.0], dtype=torch.float64)
    sq = [4.0, 9.0, 9.0]                                   # ||f_j - f_i||^2 of the three edges
    if penalty == "squared":
        terms = [wi * s for wi, s in zip(w.tolist(), sq)]
        mean = sum(terms) / float(w.sum())
    else:
        terms = [math.sqrt(wi * s + 1e-20) for wi, s in zip(w.tolist(), sq)]
        mean = sum(terms) / 3
    got = spl.graph_smoothness_loss(f, edges, edge_weight=w, penalty=penalty, reduction="none")
    assert_close(got, torch.tensor(terms, dtype=torch.float64), rtol=1e-15, atol=0)
    loss = spl.graph_smoothness_loss(f, edges, edge_weight=w, penalty=penalty)
    assert_close(loss, torch.tensor(mean, dtype=torch.float64), rtol=1e-15, atol=0)
    loss.backward()
    # squared, by hand: d/df_0 = -(2 * 0.5 * (f1 - f0) + 2 * 2 * (f2 - f0)) + 2 * 1 * (f0 - f2)
    if penalty == "squared":
        d = lambda a, b: f.detach()[a] - f.detach()[b]
        g0 = -(1.0 * d(1, 0) + 4.0 * d(2, 0)) + 2.0 * d(0, 2)
        assert_close(f.grad[0], g0 / float(w.sum()), rtol=1e-14, atol=0)
