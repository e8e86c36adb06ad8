"""Graph builders: published skeletons, exact kNN / radius graphs in torch_geometric's
convention, fully connected graphs, KeypointGraph, keypoint normalisation.

The expected skeletons are typed here from the datasets' own annotation files (1-based, as
published), independently of the package's table, and converted in the test.
"""
import math

import pytest
import torch

import sirenpose_loss
from sirenpose_loss._incidence import build_incidence
from sirenpose_loss.graphs import (KeypointGraph, available_skeletons, denormalize_keypoints,
                                   fully_connected_graph, knn_graph, normalize_keypoints,
                                   radius_graph, skeleton)
from sirenpose_loss.graphs import _blocked_search
from conftest import ThreadCount


@pytest.fixture(autouse=True)
def one_thread():
    """Small inputs: one intra-op thread is fastest and keeps timings sane on a shared CPU
    (the determinism test below also runs with two)."""
    with ThreadCount(1):
        yield

# ----------------------------------------------------------------------------- skeletons
# COCO 2017 person_keypoints_*.json, category "person": `keypoints` and `skeleton` (1-based).
COCO_KEYPOINTS = ["nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder",
                  "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
                  "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle"]
COCO_SKELETON_1BASED = [[16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [7, 13],
                        [6, 7], [6, 8], [7, 9], [8, 10], [9, 11], [2, 3], [1, 2], [1, 3],
                        [2, 4], [3, 5], [4, 6], [5, 7]]
# AP-10K ap10k-*.json categories: `keypoints` and `skeleton` (1-based).
AP10K_KEYPOINTS = ["left_eye", "right_eye", "nose", "neck", "root_of_tail", "left_shoulder",
                   "left_elbow", "left_front_paw", "right_shoulder", "right_elbow",
                   "right_front_paw", "left_hip", "left_knee", "left_back_paw", "right_hip",
                   "right_knee", "right_back_paw"]
AP10K_SKELETON_1BASED = [[1, 2], [1, 3], [2, 3], [3, 4], [4, 5], [4, 6], [6, 7], [7, 8], [4, 9],
                         [9, 10], [10, 11], [5, 12], [12, 13], [13, 14], [5, 15], [15, 16],
                         [16, 17]]
# OpenPose / COCO-WholeBody hand: wrist, then 4 joints per finger (thumb .. pinky), 0-based bones.
HAND_BONES_0BASED = [[0, 1], [1, 2], [2, 3], [3, 4], [0, 5], [5, 6], [6, 7], [7, 8],
                     [0, 9], [9, 10], [10, 11], [11, 12], [0, 13], [13, 14], [14, 15], [15, 16],
                     [0, 17], [17, 18], [18, 19], [19, 20]]


def _pairs(graph):
    return graph.edge_index.t().tolist()


def test_coco17_is_the_published_skeleton_converted_to_0_based():
    g = skeleton("coco17")
    assert g.num_nodes == 17 and g.num_edges == 19
    assert list(g.names) == COCO_KEYPOINTS
    assert _pairs(g) == [[i - 1, j - 1] for i, j in COCO_SKELETON_1BASED]
    assert g.edge_index.dtype == torch.int64


def test_ap10k17_is_the_published_skeleton_converted_to_0_based():
    g = skeleton("ap10k17")
    assert g.num_nodes == 17 and g.num_edges == 17
    assert list(g.names) == AP10K_KEYPOINTS
    assert _pairs(g) == [[i - 1, j - 1] for i, j in AP10K_SKELETON_1BASED]


def test_hand21_is_wrist_plus_four_joints_per_finger():
    g = skeleton("hand21")
    assert g.num_nodes == 21 and g.num_edges == 20
    assert _pairs(g) == HAND_BONES_0BASED
    assert g.names[0] == "wrist" and g.names[4] == "thumb_tip" and g.names[20] == "pinky_tip"
    assert len(set(g.names)) == 21


@pytest.mark.parametrize("name", ["coco17", "ap10k17", "hand21"])
def test_skeletons_list_each_undirected_edge_once_and_are_connected(name):
    g = skeleton(name)
    undirected = {frozenset(p) for p in _pairs(g)}
    assert len(undirected) == g.num_edges                    # no edge twice, either direction
    assert all(len(e) == 2 for e in undirected)              # no self-loops
    reached, frontier = {0}, [0]
    while frontier:
        node = frontier.pop()
        for e in undirected:
            if node in e:
                (other,) = e - {node}
                if other not in reached:
                    reached.add(other)
                    frontier.append(other)
    assert reached == set(range(g.num_nodes))


def test_available_skeletons_and_unknown_name():
    assert set(available_skeletons()) == {"coco17", "ap10k17", "hand21"}
    with pytest.raises(ValueError, match=r"unknown skeleton 'coco18'.*available: ap10k17"):
        skeleton("coco18")


# ------------------------------------------------------------------- kNN / radius: oracle
def brute_force_neighbours(points, batch, loop):
    """Squared distances (float64, from coordinate differences) with cross-graph pairs (and
    self pairs unless loop) at +inf, and the neighbours of every centre ordered by (distance,
    index): the definition knn_graph and radius_graph must reproduce."""
    x = points.double()
    d2 = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    if batch is not None:
        d2[batch[:, None] != batch[None, :]] = math.inf
    if not loop:
        d2.fill_diagonal_(math.inf)
    order = torch.sort(d2, dim=1, stable=True).indices  # columns are in index order already
    return d2, order


def _edges(order, keep):
    """Edges (neighbour -> centre) for the kept entries of each row, row after row."""
    centre = torch.arange(order.shape[0])[:, None].expand_as(order)
    return torch.stack([order[keep], centre[keep]])


def brute_knn(points, k, batch=None, loop=False):
    d2, order = brute_force_neighbours(points, batch, loop)
    nearest = order[:, :k]
    return _edges(nearest, torch.isfinite(d2.gather(1, nearest)))


def brute_radius(points, r, batch=None, loop=False, max_num_neighbors=None):
    d2, order = brute_force_neighbours(points, batch, loop)
    inside = d2.gather(1, order) < r * r
    if max_num_neighbors is not None:
        inside &= torch.cumsum(inside.long(), 1) <= max_num_neighbors
    return _edges(order, inside)


def random_points(n, dims, seed, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, dims, generator=g, dtype=torch.float64) * scale


def random_batch(n, seed, sizes=None):
    """Sorted graph ids; graph sizes include one smaller than k (3 points) and an empty id."""
    g = torch.Generator().manual_seed(seed)
    if sizes is None:
        cut = sorted(torch.randperm(n - 10, generator=g)[:3].add(5).tolist())
        sizes = [cut[0], 3, cut[1] - cut[0], cut[2] - cut[1], n - cut[2] - 3]
    ids = [0, 1, 3, 4, 5]  # graph id 2 is empty: ids need not be consecutive
    return torch.cat([torch.full((s,), i) for s, i in zip(sizes, ids)])


@pytest.fixture(params=["kdtree", "torch"])
def method(request, monkeypatch):
    if request.param == "torch":
        # tiny leaves and tiles: many blocks, pruning, and the running top-k merge across tiles
        monkeypatch.setattr(_blocked_search, "BLOCK_SIZE_CPU", 8)
        monkeypatch.setattr(_blocked_search, "TILE_ELEMENTS_CPU", 256)
    return request.param


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("loop", [False, True])
@pytest.mark.parametrize("batched", [False, True])
def test_knn_graph_equals_brute_force(method, dims, loop, batched):
    n, k = 257, 6
    x = random_points(n, dims, seed=dims * 10 + loop)
    batch = random_batch(n, seed=dims) if batched else None
    got = knn_graph(x.float() if dims == 2 else x, k, batch=batch, loop=loop, method=method)
    expected = brute_knn(x.float().double() if dims == 2 else x, k, batch, loop)
    assert got.dtype == torch.int64
    assert torch.equal(got, expected)


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("loop", [False, True])
@pytest.mark.parametrize("batched", [False, True])
@pytest.mark.parametrize("cap", [None, 5])
def test_radius_graph_equals_brute_force(method, dims, loop, batched, cap):
    n, r = 160, 0.45 if dims == 2 else 0.7
    x = random_points(n, dims, seed=100 + dims + 2 * loop)
    batch = random_batch(n, seed=dims + 7) if batched else None
    got = radius_graph(x, r, batch=batch, loop=loop, max_num_neighbors=cap, method=method)
    expected = brute_radius(x, r, batch, loop, cap)
    assert expected.shape[1] > n  # the radius is large enough to matter
    assert torch.equal(got, expected)


def test_knn_graph_small_graphs_get_all_their_points(method):
    x = random_points(7, 3, seed=5)
    batch = torch.tensor([0, 0, 0, 1, 1, 2, 2])
    got = knn_graph(x, 4, batch=batch, method=method)
    assert got.shape[1] == 3 * 2 + 2 * 1 + 2 * 1
    assert torch.equal(batch[got[0]], batch[got[1]])


def test_kdtree_and_torch_paths_agree_bit_for_bit_and_are_deterministic(monkeypatch):
    monkeypatch.setattr(_blocked_search, "BLOCK_SIZE_CPU", 32)
    x = random_points(2000, 3, seed=11).float()
    a = knn_graph(x, 10, method="kdtree")
    b = knn_graph(x, 10, method="torch")
    assert torch.equal(a, b)
    with ThreadCount(2):  # the kd-tree queries run on torch.get_num_threads() workers
        assert torch.equal(a, knn_graph(x, 10, method="kdtree"))
        assert torch.equal(b, knn_graph(x, 10, method="torch"))


def test_torch_geometric_readme_example():
    """torch-cluster's README example (the implementation behind torch_geometric.nn.knn_graph):
    x = 4 corners of a square, k = 2 -> [[1, 2, 0, 3, 0, 3, 1, 2], [0, 0, 1, 1, 2, 2, 3, 3]]:
    edge_index[1] is the centre, edge_index[0] its neighbours (flow="source_to_target")."""
    x = torch.tensor([[-1.0, -1.0], [-1.0, 1.0], [1.0, -1.0], [1.0, 1.0]])
    batch = torch.tensor([0, 0, 0, 0])
    expected = torch.tensor([[1, 2, 0, 3, 0, 3, 1, 2], [0, 0, 1, 1, 2, 2, 3, 3]])
    for method in ("kdtree", "torch"):
        assert torch.equal(knn_graph(x, 2, batch=batch, method=method), expected)
        # sides are 2 long, diagonals 2.83: r = 2.5 keeps the sides only
        assert torch.equal(radius_graph(x, 2.5, batch=batch, method=method), expected)
        assert torch.equal(knn_graph(x, 2, batch=batch, flow="target_to_source", method=method),
                           expected.flip(0))


def test_messages_flow_from_neighbours_into_the_centre():
    """With the graph from knn_graph, a torch_geometric layer aggregates each point's own k
    nearest neighbours (kNN is not symmetric, so a flipped edge_index would fail)."""
    pyg_nn = pytest.importorskip("torch_geometric.nn")
    x = random_points(60, 3, seed=3).float()
    edge_index = knn_graph(x, 3)
    aggregated = pyg_nn.SimpleConv(aggr="mean")(x, edge_index)
    d2, order = brute_force_neighbours(x, None, loop=False)
    expected = x[order[:, :3]].mean(1)
    torch.testing.assert_close(aggregated, expected)


def test_matches_torch_geometric_when_its_knn_can_run():
    pyg_nn = pytest.importorskip("torch_geometric.nn")
    x = random_points(200, 3, seed=8).float()
    batch = torch.arange(200) // 70
    try:
        theirs = pyg_nn.knn_graph(x, 5, batch=batch)
    except ImportError:
        pytest.skip("torch_geometric.nn.knn_graph needs pyg-lib / torch-cluster, not installed")
    ours = knn_graph(x, 5, batch=batch)
    key = lambda e: sorted(map(tuple, e.t().tolist()))  # noqa: E731  (order may differ)
    assert key(ours) == key(theirs)


def test_duplicate_points_are_neighbours_but_not_themselves(method):
    x = torch.tensor([[0.0, 0.0], [3.0, 1.0], [0.0, 0.0], [7.0, 2.5]])

    def neighbours_of(edge_index, centre):
        return edge_index[0, edge_index[1] == centre].tolist()

    one = knn_graph(x, 1, method=method)
    assert neighbours_of(one, 0) == [2] and neighbours_of(one, 2) == [0]
    assert neighbours_of(knn_graph(x, 1, loop=True, method=method), 1) == [1]
    # the two copies are equally far from point 1: kept both, ordered by index
    assert neighbours_of(knn_graph(x, 2, method=method), 1) == [0, 2]


def test_points_that_require_grad_and_half_precision(method):
    x = random_points(50, 3, seed=9).float()
    expected = knn_graph(x, 4, method=method)
    assert torch.equal(knn_graph(x.clone().requires_grad_(), 4, method=method), expected)
    half = x.half()
    assert torch.equal(knn_graph(half, 4, method=method), knn_graph(half.float(), 4, method=method))


def test_empty_and_single_point_inputs(method):
    assert knn_graph(torch.zeros(0, 3), 4, method=method).shape == (2, 0)
    assert knn_graph(torch.zeros(1, 3), 4, method=method).shape == (2, 0)
    assert knn_graph(torch.zeros(1, 3), 4, loop=True, method=method).tolist() == [[0], [0]]
    assert radius_graph(torch.zeros(1, 2), 1.0, method=method, max_num_neighbors=None).shape \
        == (2, 0)


@pytest.mark.parametrize("call, error, pattern", [
    (lambda x: knn_graph(x, 0), ValueError, r"k must be >= 1, got 0"),
    (lambda x: knn_graph(x, 2.5), TypeError, r"k must be an int"),
    (lambda x: knn_graph(x, True), TypeError, r"k must be an int"),
    (lambda x: knn_graph(x[0], 2), ValueError, r"points must have shape \[N, D\]"),
    (lambda x: knn_graph(x.long(), 2), TypeError, r"points must be a floating-point tensor"),
    (lambda x: knn_graph(x.numpy(), 2), TypeError, r"points must be a torch.Tensor"),
    (lambda x: knn_graph(torch.where(x > 1, math.nan, x), 2), ValueError, r"points must be finite"),
    (lambda x: knn_graph(x, 2, batch=torch.zeros(5, dtype=torch.long)), ValueError,
     r"batch must have shape \[N\] = \[10\]"),
    (lambda x: knn_graph(x, 2, batch=torch.tensor([1] * 5 + [0] * 5)), ValueError,
     r"batch must be sorted"),
    (lambda x: knn_graph(x, 2, batch=torch.zeros(10)), TypeError, r"batch must be an integer"),
    (lambda x: knn_graph(x, 2, batch=torch.full((10,), -1)), ValueError, r"batch must hold graph"),
    (lambda x: knn_graph(x, 2, method="faiss"), ValueError, r"method must be one of"),
    (lambda x: knn_graph(x, 2, flow="up"), ValueError, r"flow must be"),
    (lambda x: radius_graph(x, 0.0), ValueError, r"r must be a positive finite number, got 0.0"),
    (lambda x: radius_graph(x, -1), ValueError, r"r must be a positive finite number"),
    (lambda x: radius_graph(x, math.inf), ValueError, r"r must be a positive finite number"),
    (lambda x: radius_graph(x, "1"), TypeError, r"r must be a positive finite number"),
    (lambda x: radius_graph(x, 1.0, max_num_neighbors=0), ValueError,
     r"max_num_neighbors must be >= 1"),
])
def test_neighbour_graph_argument_errors(call, error, pattern):
    x = random_points(10, 3, seed=1)
    with pytest.raises(error, match=pattern):
        call(x)


# ------------------------------------------------------------------------ fully connected
def test_fully_connected_graph_lists_every_pair_once():
    g = fully_connected_graph(5)
    pairs = _pairs(g)
    assert len(pairs) == 10 and all(i < j for i, j in pairs)
    assert {frozenset(p) for p in pairs} == {frozenset((i, j)) for i in range(5)
                                             for j in range(i + 1, 5)}
    loops = fully_connected_graph(3, loop=True)
    assert _pairs(loops) == [[0, 0], [0, 1], [0, 2], [1, 1], [1, 2], [2, 2]]
    assert fully_connected_graph(0).num_edges == 0
    assert fully_connected_graph(1).num_edges == 0
    with pytest.raises(ValueError, match=r"num_nodes must be >= 0"):
        fully_connected_graph(-1)
    with pytest.raises(TypeError, match=r"num_nodes must be an int"):
        fully_connected_graph(2.0)


# ---------------------------------------------------------------------------- KeypointGraph
def test_keypoint_graph_from_pairs_infers_num_nodes_and_checks_range():
    g = KeypointGraph([(0, 1), (1, 3)])
    assert g.num_nodes == 4 and g.num_edges == 2 and g.edge_index.dtype == torch.int64
    assert KeypointGraph(torch.tensor([[0], [1]], dtype=torch.int32), 5).num_nodes == 5
    assert KeypointGraph([], names=["a", "b"]).num_nodes == 2
    with pytest.raises(IndexError, match=r"edge_index values must be in \[0, 3\)"):
        KeypointGraph([(0, 3)], 3)
    with pytest.raises(ValueError, match=r"edge_index must have shape \[2, E\]"):
        KeypointGraph(torch.zeros(3, 2, dtype=torch.long))
    with pytest.raises(TypeError, match=r"edge_index must be an integer tensor"):
        KeypointGraph(torch.zeros(2, 2))
    with pytest.raises(ValueError, match=r"names must have num_nodes = 3 entries"):
        KeypointGraph([(0, 1)], 3, names=["a", "b"])


def test_keypoint_graph_edge_weight_checks():
    ei = [(0, 1), (1, 2)]
    with pytest.raises(ValueError, match=r"edge_weight must have shape \[E\] = \[2\]"):
        KeypointGraph(ei, edge_weight=torch.ones(3))
    with pytest.raises(ValueError, match=r"edge_weight must be non-negative"):
        KeypointGraph(ei, edge_weight=torch.tensor([1.0, -0.5]))
    with pytest.raises(ValueError, match=r"edge_weight is a constant"):
        KeypointGraph(ei, edge_weight=torch.ones(2, requires_grad=True))
    with pytest.raises(TypeError, match=r"edge_weight must be a floating-point"):
        KeypointGraph(ei, edge_weight=torch.ones(2, dtype=torch.long))


def test_undirected_has_both_directions_once_with_aligned_weights():
    g = KeypointGraph([(0, 1), (2, 1), (1, 0), (3, 3)], 4,
                      edge_weight=torch.tensor([1.0, 2.0, 5.0, 7.0]))
    u = g.undirected()
    got = {tuple(p): w for p, w in zip(_pairs(u), u.edge_weight.tolist())}
    # (0,1) and (1,0) were both given: each keeps its own weight; (2,1) gains (1,2); loop once
    assert got == {(0, 1): 1.0, (1, 0): 5.0, (1, 2): 2.0, (2, 1): 2.0, (3, 3): 7.0}
    assert _pairs(u) == sorted(_pairs(u))
    coco = skeleton("coco17").undirected()
    assert coco.num_edges == 38


def test_to_pyg():
    pytest.importorskip("torch_geometric")
    g = KeypointGraph([(0, 1), (1, 2)], 4, edge_weight=torch.tensor([0.5, 2.0]))
    data = g.to_pyg()
    assert data.num_nodes == 4
    assert torch.equal(data.edge_index, g.edge_index)
    assert torch.equal(data.edge_weight, g.edge_weight)
    assert "edge_weight" not in skeleton("coco17").to_pyg()


def test_subgraph_reindexes_and_keeps_weights_aligned():
    g = KeypointGraph([(0, 1), (1, 2), (2, 3), (3, 4), (4, 0), (1, 3)], 5,
                      names=["a", "b", "c", "d", "e"],
                      edge_weight=torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]))
    for nodes in (torch.tensor([True, True, False, True, True]), [4, 0, 1, 3]):
        sub = g.subgraph(nodes)
        # kept 0,1,3,4 -> new ids 0,1,2,3; edges through node 2 are gone
        assert sub.num_nodes == 4 and sub.names == ("a", "b", "d", "e")
        assert _pairs(sub) == [[0, 1], [2, 3], [3, 0], [1, 2]]
        assert sub.edge_weight.tolist() == [1.0, 4.0, 5.0, 6.0]
    assert g.subgraph(torch.zeros(5, dtype=torch.bool)).num_edges == 0
    with pytest.raises(ValueError, match=r"must not repeat"):
        g.subgraph([1, 1])
    with pytest.raises(ValueError, match=r"bool mask must have shape \[num_nodes\] = \[5\]"):
        g.subgraph(torch.ones(4, dtype=torch.bool))
    with pytest.raises(IndexError, match=r"nodes must be indices in \[0, 5\)"):
        g.subgraph([0, 5])


def test_incidence_is_cached_and_rebuilt_after_in_place_edit():
    g = skeleton("coco17")
    first = g.incidence()
    assert g.incidence() is first and g.incidence(17) is first
    expected = build_incidence(g.edge_index, 17)
    assert all(torch.equal(a, b) for a, b in zip(first, expected))
    assert g.to("cpu") is g
    g.edge_index[0, 0] = 0  # in-place edit bumps the version counter
    rebuilt = g.incidence()
    assert rebuilt is not first
    assert all(torch.equal(a, b) for a, b in zip(rebuilt, build_incidence(g.edge_index, 17)))


def test_incidence_of_a_graph_built_in_inference_mode():
    with torch.inference_mode():
        g = skeleton("hand21")
    ptr, slot = g.incidence()
    assert g.incidence()[0] is ptr
    assert torch.equal(ptr, build_incidence(g.edge_index, 21)[0])


def test_repr_names_the_graph():
    text = repr(skeleton("coco17"))
    assert "coco17" in text and "num_nodes=17" in text and "num_edges=19" in text


def test_losses_accept_a_keypoint_graph_and_use_its_edge_weight():
    g = KeypointGraph(skeleton("coco17").edge_index, 17,
                      edge_weight=torch.linspace(0.5, 2.0, 19, dtype=torch.float64))
    gen = torch.Generator().manual_seed(0)
    pred = torch.rand(3, 17, 2, generator=gen, dtype=torch.float64)
    target = torch.rand(3, 17, 2, generator=gen, dtype=torch.float64)
    with_graph = sirenpose_loss.sirenpose_loss(pred, target, g)
    with_tensor = sirenpose_loss.sirenpose_loss(pred, target, g.edge_index,
                                                edge_weight=g.edge_weight)
    reference = sirenpose_loss.reference.sirenpose_loss(pred, target, g.edge_index,
                                                        edge_weight=g.edge_weight)
    torch.testing.assert_close(with_graph, with_tensor, rtol=1e-12, atol=0)
    torch.testing.assert_close(with_graph, reference, rtol=1e-9, atol=1e-12)
    unweighted = sirenpose_loss.sirenpose_loss(pred, target, g.edge_index)
    assert not torch.allclose(with_graph, unweighted)


# ----------------------------------------------------------------------------- normalise
def test_normalize_maps_image_edges_to_plus_minus_one():
    w, h = 640, 480
    kp = torch.tensor([[-0.5, -0.5], [w - 0.5, h - 0.5], [0.0, 0.0], [(w - 1) / 2, (h - 1) / 2]],
                      dtype=torch.float64)
    u = normalize_keypoints(kp, (w, h))
    expected = torch.tensor([[-1.0, -1.0], [1.0, 1.0], [-1 + 1 / w, -1 + 1 / h], [0.0, 0.0]],
                            dtype=torch.float64)
    torch.testing.assert_close(u, expected)
    corners = normalize_keypoints(torch.tensor([[0.0, 0.0], [w - 1.0, h - 1.0]]), (w, h),
                                  align_corners=True)
    torch.testing.assert_close(corners, torch.tensor([[-1.0, -1.0], [1.0, 1.0]]))


@pytest.mark.parametrize("align_corners", [False, True])
def test_normalized_keypoints_sample_their_pixel_with_grid_sample(align_corners):
    """The convention matches grid_sample: sampling at normalize(x, y) reads pixel (x, y)."""
    gen = torch.Generator().manual_seed(2)
    image = torch.rand(1, 1, 7, 11, generator=gen, dtype=torch.float64)
    kp = torch.tensor([[3.0, 5.0], [0.0, 0.0], [10.0, 6.0], [4.0, 2.0]], dtype=torch.float64)
    grid = normalize_keypoints(kp, (11, 7), align_corners=align_corners)
    sampled = torch.nn.functional.grid_sample(image, grid.view(1, 1, -1, 2),
                                              align_corners=align_corners).view(-1)
    expected = image[0, 0, kp[:, 1].long(), kp[:, 0].long()]
    torch.testing.assert_close(sampled, expected)


def test_denormalize_inverts_normalize():
    gen = torch.Generator().manual_seed(4)
    kp = torch.rand(5, 17, 2, generator=gen, dtype=torch.float64) * 500
    sizes = torch.tensor([[640.0, 480.0]], dtype=torch.float64).expand(5, 1, 2)
    for size in ((640, 480), 512, sizes):
        for align in (False, True):
            back = denormalize_keypoints(normalize_keypoints(kp, size, align_corners=align),
                                         size, align_corners=align)
            torch.testing.assert_close(back, kp)


def test_normalize_errors():
    kp = torch.zeros(4, 2)
    with pytest.raises(ValueError, match=r"image_size must be a number, or hold one extent"):
        normalize_keypoints(kp, (640, 480, 3))
    with pytest.raises(ValueError, match=r"image_size must be positive"):
        normalize_keypoints(kp, (640, 0))
    with pytest.raises(TypeError, match=r"kp must be a floating-point tensor"):
        normalize_keypoints(kp.long(), 100)
