"""The losses under torch.distributed: global means over all ranks and graphs sharded across
ranks. Nothing here runs a collective when torch.distributed is not initialised.

* :func:`global_mean` / :func:`global_means`: the mean over every rank's terms from each rank's
  ``(sum, denominator)``, one all-reduce per call, with the gradient convention that makes
  DistributedDataParallel's averaging yield the gradient of the global mean (``average_grads``).
* ``*_count``: each loss's denominator (its weighted number of terms) on this rank.
* :func:`keypoint_match_loss`, :func:`spatiotemporal_consistency_loss`,
  :func:`sin_graph_consistency_loss`, :func:`sirenpose_loss`: the package's losses as global
  means; the graph ones also take a :class:`HaloPlan` for sharded nodes.
* :class:`Partition` (gsplat's strided ``x[rank::world_size]`` layout or any owner map) and
  :class:`HaloPlan` (which rows go where, built once per graph; a differentiable exchange).
"""
from .counts import graph_edge_count, keypoint_match_count, spatiotemporal_consistency_count
from .halo import HaloPlan
from .losses import (keypoint_match_loss, sin_graph_consistency_loss, sirenpose_loss,
                     spatiotemporal_consistency_loss)
from .partition import Partition
from .reduce import global_mean, global_means

__all__ = ["global_mean", "global_means", "keypoint_match_count",
           "spatiotemporal_consistency_count", "graph_edge_count", "keypoint_match_loss",
           "spatiotemporal_consistency_loss", "sin_graph_consistency_loss", "sirenpose_loss",
           "Partition", "HaloPlan"]
