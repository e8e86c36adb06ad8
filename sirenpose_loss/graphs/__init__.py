"""Keypoint graphs for the losses and for torch-geometric GNN layers.

* :func:`skeleton` - published skeletons ("coco17", "ap10k17", "hand21") as :class:`KeypointGraph`;
* :func:`knn_graph`, :func:`radius_graph` - exact neighbour graphs over 2-D/3-D points (keypoints,
  Gaussian centres at scale), torch_geometric's edge convention, no torch-cluster needed;
* :func:`rigidity_graph` - k nearest Gaussians with exp(-lambda d^2) weights and rest lengths,
  the graph of the rigidity losses (:class:`RigidityGraph`, re-indexed after pruning);
* :func:`fully_connected_graph`;
* :func:`normalize_keypoints` / :func:`denormalize_keypoints` - pixels <-> [-1, 1], the range the
  sine term of the SirenPose loss (period 2 pi / omega0 ~ 0.21) is meant for.

Every builder lists each undirected edge once (the SirenPose loss sums edges as given);
``KeypointGraph.undirected()`` gives both directions for message passing. kNN and radius graphs
are directed by construction (centre <- neighbour), as in torch_geometric.
"""
from .fully_connected import fully_connected_graph
from .keypoint_graph import KeypointGraph
from .neighbour_graphs import knn_graph, radius_graph
from .normalize import denormalize_keypoints, normalize_keypoints
from .rigidity_graph import RigidityGraph, rigidity_graph
from .skeletons import available_skeletons, skeleton

__all__ = ["KeypointGraph", "skeleton", "available_skeletons", "knn_graph", "radius_graph",
           "fully_connected_graph", "normalize_keypoints", "denormalize_keypoints",
           "RigidityGraph", "rigidity_graph"]
