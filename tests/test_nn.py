"""SIREN, keypoint GNN and the two-stream keypoint predictor."""
import math

import pytest
import torch

from sirenpose_loss.graphs import KeypointGraph, skeleton
from sirenpose_loss.nn import (KeypointGNN, SineLayer, Siren, TwoStreamKeypointPredictor,
                               fourier_time_features)

from conftest import ThreadCount

pytest.importorskip("torch_geometric")


@pytest.fixture(autouse=True)
def one_thread():
    """These networks are tiny: one intra-op thread is the fastest setting, and it keeps the
    timings sane on a shared, oversubscribed CPU (two OpenMP threads then stall each other)."""
    with ThreadCount(1):
        yield


def _generator(seed):
    return torch.Generator().manual_seed(seed)


def _arcsine_ks_distance(values: torch.Tensor) -> float:
    """Kolmogorov-Smirnov distance to the arcsine law on [-1, 1], CDF 1/2 + asin(y)/pi: the
    distribution of sin(u) for a phase u uniform over many periods (SIREN, Sec. 3.2)."""
    v, _ = values.detach().flatten().double().sort()
    cdf = 0.5 + torch.asin(v.clamp(-1, 1)) / math.pi
    n = v.numel()
    upper = torch.arange(1, n + 1, dtype=torch.float64) / n
    return float(torch.maximum(upper - cdf, cdf - (upper - 1 / n)).max())


# -------------------------------------------------------------------------------- SIREN
def test_sine_layer_initialisation_bounds():
    torch.manual_seed(0)
    first = SineLayer(3, 512, is_first=True)
    hidden = SineLayer(256, 512, omega0=30.0)
    w_first, w_hidden = first.linear.weight, hidden.linear.weight
    bound_first, bound_hidden = 1 / 3, math.sqrt(6 / 256) / 30
    assert w_first.abs().max() <= bound_first and w_first.abs().max() > 0.95 * bound_first
    assert w_hidden.abs().max() <= bound_hidden and w_hidden.abs().max() > 0.95 * bound_hidden
    # uniform: variance bound^2 / 3
    assert abs(w_hidden.var().item() / (bound_hidden ** 2 / 3) - 1) < 0.05
    x = torch.rand(8, 3)
    torch.testing.assert_close(first(x), torch.sin(30.0 * first.linear(x)))


def test_siren_activations_keep_their_statistics_through_depth():
    """With SIREN's init every hidden activation is ~arcsine distributed (std 1/sqrt(2)) and
    the pre-activations keep a constant spread, layer after layer (10 hidden layers)."""
    torch.manual_seed(0)
    net = Siren(2, 256, 9, 1)
    h = torch.rand(2048, 2, generator=_generator(1)) * 2 - 1
    layers = list(net.net)[:-1]
    assert len(layers) == 10
    for depth, layer in enumerate(layers):
        pre = layer.omega0 * layer.linear(h)
        h = torch.sin(pre)
        assert 0.65 < h.std().item() < 0.76, f"layer {depth}: activation std {h.std():.3f}"
        assert _arcsine_ks_distance(h) < 0.06, f"layer {depth}: not arcsine distributed"
        if depth > 0:  # unit-variance weights term plus the bias phase: ~1.5 at every depth
            assert 1.1 < pre.std().item() < 1.9, \
                f"layer {depth}: pre-activation std {pre.std():.3f}"


def test_without_the_division_by_omega0_the_network_is_chaotic():
    """SirenPose eq. 4 as printed (U(+-sqrt(6/n)), no /omega0) makes input gradients explode
    with depth; SIREN's scheme keeps them moderate. This is why the docstring follows SIREN."""
    x = (torch.rand(256, 2, generator=_generator(2)) * 2 - 1).requires_grad_()

    def median_input_gradient(divide: bool) -> float:
        torch.manual_seed(3)
        net = Siren(2, 64, 4, 1)
        if not divide:
            for layer in list(net.net)[1:]:
                linear = layer.linear if isinstance(layer, SineLayer) else layer
                bound = math.sqrt(6 / linear.weight.shape[1])
                torch.nn.init.uniform_(linear.weight, -bound, bound)
        (grad,) = torch.autograd.grad(net(x).sum(), x)
        return grad.norm(dim=1).median().item()

    siren, eq4 = median_input_gradient(True), median_input_gradient(False)
    assert siren < 50
    assert eq4 > 1e4 * siren


def test_siren_shapes_and_outermost_sine():
    net = Siren(3, 32, 2, 4, outermost_linear=False)
    x = torch.rand(5, 7, 3) * 2 - 1
    y = net(x)
    assert y.shape == (5, 7, 4) and y.abs().max() <= 1
    assert Siren(3, 32, 0, 4)(x).shape == (5, 7, 4)
    with pytest.raises(ValueError, match=r"omega0 must be a positive finite number"):
        Siren(3, 32, 2, 4, omega0=0)
    with pytest.raises(ValueError, match=r"hidden_layers must be an int >= 0"):
        Siren(3, 32, -1, 4)
    with pytest.raises(ValueError, match=r"first_omega0 must be a positive finite number"):
        Siren(3, 32, 1, 4, first_omega0=math.nan)


# ---------------------------------------------------------------------------------- GNN
@pytest.mark.parametrize("conv", ["graph", "gcn"])
def test_keypoint_gnn_forward_backward_batched(conv):
    torch.manual_seed(0)
    gnn = KeypointGNN(skeleton("coco17"), 5, 32, 3, num_layers=3, conv=conv)
    x = torch.randn(4, 6, 17, 5)
    y = gnn(x)
    assert y.shape == (4, 6, 17, 3)
    y.square().sum().backward()
    for name, p in gnn.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name
    # every pose is processed on its own copy of the graph
    torch.testing.assert_close(gnn(x[2, 4]), y[2, 4], rtol=1e-5, atol=1e-6)


def test_keypoint_gnn_messages_follow_the_skeleton():
    """With L layers a keypoint's output depends only on keypoints within L hops."""
    torch.manual_seed(0)
    graph = skeleton("hand21")           # a tree: hops from the thumb tip are easy to list
    gnn = KeypointGNN(graph, 4, 16, 2, num_layers=2)
    x = torch.randn(21, 4, requires_grad=True)
    (grad,) = torch.autograd.grad(gnn(x)[4].sum(), x)   # output at the thumb tip (node 4)
    touched = set(grad.abs().sum(1).nonzero().flatten().tolist())
    assert touched == {2, 3, 4}          # itself, its joint and the joint before (2 hops)


def test_keypoint_gnn_directed_edges_and_edge_weights():
    torch.manual_seed(0)
    chain = KeypointGraph([(0, 1), (1, 2)], 3, edge_weight=torch.tensor([1.0, 0.0]))
    gnn = KeypointGNN(chain, 2, 8, 1, num_layers=1, undirected=False)
    x = torch.randn(3, 2, requires_grad=True)
    (grad,) = torch.autograd.grad(gnn(x)[1].sum(), x)
    assert grad[0].abs().sum() > 0 and grad[2].abs().sum() == 0   # 0 -> 1 only
    (grad,) = torch.autograd.grad(gnn(x)[2].sum(), x)
    assert grad[1].abs().sum() == 0                                # weight 0 on 1 -> 2


def test_keypoint_gnn_argument_errors():
    with pytest.raises(ValueError, match=r"x must have shape \[..., K, F\] = \[..., 17, 5\]"):
        KeypointGNN(skeleton("coco17"), 5, 8, 2)(torch.zeros(2, 16, 5))
    with pytest.raises(ValueError, match=r"conv must be one of"):
        KeypointGNN(skeleton("coco17"), 5, 8, 2, conv="gat")
    with pytest.raises(ValueError, match=r"num_nodes is needed"):
        KeypointGNN(torch.tensor([[0], [1]]), 5, 8, 2)
    gnn = KeypointGNN(torch.tensor([[0, 1], [1, 2]]), 5, 8, 2, num_nodes=4)
    assert gnn(torch.zeros(4, 5)).shape == (4, 2)


# --------------------------------------------------------------------- two-stream predictor
def test_two_stream_forward_is_low_plus_lambda_high_plus_base():
    torch.manual_seed(0)
    base = torch.rand(17, 2)
    model = TwoStreamKeypointPredictor(skeleton("coco17"), 2, lambda_high=0.25, base=base)
    t = torch.linspace(0, 1, 60)
    out = model(t)
    assert out.shape == (60, 17, 2)
    low, high = model.streams(t)
    torch.testing.assert_close(out, base + low + 0.25 * high)
    out.square().sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
    off = TwoStreamKeypointPredictor(skeleton("coco17"), 3, lambda_high=0.0)
    torch.testing.assert_close(off(t), off.streams(t)[0])


def test_two_stream_time_range_is_mapped_to_minus_one_one():
    torch.manual_seed(0)
    a = TwoStreamKeypointPredictor(skeleton("hand21"), 3, time_range=(0.0, 1.0))
    b = TwoStreamKeypointPredictor(skeleton("hand21"), 3, time_range=(-1.0, 1.0))
    b.load_state_dict(a.state_dict())
    t = torch.linspace(0, 1, 9)
    torch.testing.assert_close(a(t), b(2 * t - 1))
    features = fourier_time_features(torch.tensor([0.0, 1.0]), 3)
    assert features.shape == (2, 7)
    torch.testing.assert_close(features[1], torch.tensor(
        [1.0, 1.0, 0.0, 0.0, 0.0, -1.0, 1.0]), atol=1e-6, rtol=0)


def test_two_stream_fits_noisy_tracks_smoothly_in_seconds():
    """Fit 17 noisy keypoint tracks over 60 frames: the fit ends closer to the clean tracks
    than the noisy data are (it smooths), in a few hundred Adam steps."""
    torch.manual_seed(0)
    gen = _generator(5)
    frames, k = 60, 17
    t = torch.linspace(0, 1, frames)
    base = torch.rand(k, 2, generator=gen) * 1.2 - 0.6
    amp = 0.05 + 0.1 * torch.rand(k, 2, generator=gen)
    phase = torch.rand(k, 2, generator=gen) * 2 * math.pi
    clean = base + amp * torch.sin(2 * math.pi * 1.5 * t[:, None, None] + phase)
    noise_std = 0.02
    noisy = clean + noise_std * torch.randn(clean.shape, generator=gen)
    model = TwoStreamKeypointPredictor(skeleton("coco17"), 2, base=noisy.mean(0))
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    first = None
    for _ in range(250):
        loss = (model(t) - noisy).square().sum(-1).mean()
        first = first if first is not None else loss.item()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        rmse_clean = (model(t) - clean).square().sum(-1).mean().sqrt().item()
    noise_rms = noise_std * math.sqrt(2)
    assert loss.item() < first / 20
    assert rmse_clean < 0.75 * noise_rms


def test_two_stream_argument_errors():
    g = skeleton("coco17")
    with pytest.raises(ValueError, match=r"base must be a tensor of shape \[K, D\] = \[17, 2\]"):
        TwoStreamKeypointPredictor(g, 2, base=torch.zeros(17, 3))
    with pytest.raises(ValueError, match=r"time_range must be \(start, end\) with end > start"):
        TwoStreamKeypointPredictor(g, 2, time_range=(1.0, 0.0))
    with pytest.raises(ValueError, match=r"lambda_high must be a non-negative finite number"):
        TwoStreamKeypointPredictor(g, 2, lambda_high=-1.0)
    with pytest.raises(TypeError, match=r"t must be a floating-point tensor"):
        TwoStreamKeypointPredictor(g, 2)(torch.arange(5))
