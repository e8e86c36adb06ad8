"""A small 4D Gaussian Splatting example built on sirenpose-loss (examples only, not library).

One idea per module:

* :mod:`.skeleton`  the COCO-17 keypoint graph (from ``sirenpose_loss.graphs`` when present)
* :mod:`.cameras`   pinhole cameras: look-at view matrices, intrinsics, projection
* :mod:`.scene`     the deterministic synthetic articulated scene with ground truth
* :mod:`.data`      the on-disk folder format (``--data DIR``): reader, writer, validation
* :mod:`.render_torch`   a differentiable pure-PyTorch splatting renderer (CPU and GPU)
* :mod:`.render_gsplat`  the same interface on gsplat's CUDA ``rasterization`` (lazy import)
* :mod:`.probes`    up-front checks of a GPU run (gsplat, its kernels, our CUDA kernels)
* :mod:`.model`     canonical Gaussians, the time-conditioned deformation, keypoint binding
* :mod:`.config`    the training config dataclass and its presets (smoke / cpu / gpu)
* :mod:`.trainer`   the training loop, the losses, evaluation
* :mod:`.shard`     which frames a process trains on and how its losses reduce
* :mod:`.distributed`   data-parallel training under torchrun (frames split across ranks, DDP)
* :mod:`.viz`       GIFs and trajectory plots
"""
