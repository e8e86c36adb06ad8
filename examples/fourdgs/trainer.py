"""Training and evaluation of the 4-D Gaussian model with the package's losses.

Per step: render ``frames_per_iter`` random training frames (photometric L1), plus

* SCL over the centres of ``scl_gaussians`` random Gaussians at *all* frames,
* KML and SirenPose between the rendered keypoints of all frames (bound Gaussians, projected
  with each frame's camera, normalised to ``[-1, 1]``) and the detector keypoints, weighted by
  the detector's visibility;
* the rigidity trio and ARAP over a neighbour graph of all Gaussians, on a window of
  consecutive frames (:mod:`.rigidity`: why the rotations are static, when the graph would
  need rebuilding).

The package's losses run on detached leaf copies of their inputs inside a timed block (their
forward and backward), and their input gradients are then pushed into the rest of the graph,
so ``loss_share`` is the exact share of the step spent inside the losses.
"""
import math
import time
from typing import Dict, Optional

import torch
from torch.profiler import record_function

import sirenpose_loss as spl
from sirenpose_loss import metrics as M
from sirenpose_loss.graphs import KeypointGraph, normalize_keypoints

from . import render_torch
from .cameras import project
from .config import Config
from .data import Dataset
from .model import Deformation, Gaussians, KeypointBinding, Model4D
from .perf import tune_cpu_allocator
from .rigidity import MotionPriors
from .shard import Shard, StepForward


def get_renderer(cfg: Config):
    """The ``rasterization`` function for ``cfg.renderer`` (gsplat is imported lazily)."""
    name = cfg.renderer
    if name == "auto":
        name = "gsplat" if str(cfg.device).startswith("cuda") else "torch"
    if name == "gsplat":  # pragma: no cover - needs CUDA + gsplat (untested, no GPU here)
        from . import render_gsplat
        return render_gsplat.rasterization
    return render_torch.rasterization


def normalize(kp_px: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Pixels -> ``[-1, 1]`` with :func:`sirenpose_loss.graphs.normalize_keypoints`, scaled by
    the longer image side (distances stay isotropic). Our pixel coordinates put pixel centres
    at ``i + 0.5`` (gsplat's convention), ``normalize_keypoints`` at ``i`` (OpenCV's), hence
    the shift. SirenPose's sine period (about 0.21 for omega0 = 30) is then about a tenth of
    the image."""
    return normalize_keypoints(kp_px - 0.5, max(width, height))


def _initial_points(ds: Dataset, cfg: Config, gen: torch.Generator):
    """The dataset's point cloud, or random points back-projected from the first frame inside
    the keypoints' bounding box at ``ds.init_depth`` (for folders without points.npy)."""
    if ds.init_points is not None:
        return ds.init_points.float(), ds.init_colors
    n = cfg.scene.num_gaussians
    vis = ds.visibility[0] > 0
    kp = ds.keypoints[0][vis] if vis.any() else ds.keypoints.reshape(-1, 2)
    lo, hi = kp.min(0).values, kp.max(0).values
    pad = 0.15 * (hi - lo) + 2
    lo = torch.maximum(lo - pad, torch.zeros(2))
    hi = torch.minimum(hi + pad, torch.tensor([ds.width - 1.0, ds.height - 1.0]))
    uv = lo + (hi - lo) * torch.rand(n, 2, generator=gen)
    depth = ds.init_depth * (1 + 0.05 * torch.randn(n, generator=gen))
    K, view = ds.Ks[0], ds.viewmats[0]
    cam = torch.stack([(uv[:, 0] - K[0, 2]) / K[0, 0], (uv[:, 1] - K[1, 2]) / K[1, 1],
                       torch.ones(n)], -1) * depth[:, None]
    world = (cam - view[:3, 3]) @ view[:3, :3]  # R^T (cam - t)
    ij = uv.long()
    colors = ds.images[0][ij[:, 1].clamp(0, ds.height - 1), ij[:, 0].clamp(0, ds.width - 1)]
    return world, colors


def build(cfg: Config, ds: Dataset):
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    points, colors = _initial_points(ds, cfg, gen)
    torch.manual_seed(cfg.seed)
    gauss = Gaussians(points, colors)
    deform = Deformation(ds.num_frames, pos_freqs=cfg.pos_freqs, time_freqs=cfg.time_freqs,
                         frame_code_dim=cfg.frame_code_dim, hidden=cfg.hidden, layers=cfg.layers)
    model = Model4D(gauss, deform)
    binding = KeypointBinding.from_detections(gauss, ds.keypoints, ds.visibility, ds.viewmats,
                                              ds.Ks, ds.width, ds.height, cfg.bind_per_keypoint)
    return model, binding


def _optimizer(cfg: Config, model: Model4D):
    g = model.gaussians
    groups = [
        dict(params=[g.means], lr=cfg.lr_means), dict(params=[g.log_scales], lr=cfg.lr_scales),
        dict(params=[g.quats], lr=cfg.lr_quats), dict(params=[g.opacity_logits], lr=cfg.lr_opacity),
        dict(params=[g.color_logits], lr=cfg.lr_colors),
        dict(params=list(model.deformation.parameters()), lr=cfg.lr_deform),
    ]
    opt = torch.optim.Adam(groups, eps=1e-15)
    gamma = cfg.lr_final_ratio ** (1.0 / max(cfg.iters, 1))
    return opt, torch.optim.lr_scheduler.ExponentialLR(opt, gamma)


def _render(render_fn, model: Model4D, means: torch.Tensor, viewmats, Ks, ds: Dataset,
            chunk: int = 8):
    """Render ``means [F, N, 3]`` with one camera per frame -> ``[F, H, W, 3]``: ``chunk``
    frames per renderer call (cameras batched, as gsplat renders them), so that the torch
    renderer's per-call memory stays bounded."""
    quats, scales, opac, colors = model.gaussians.attributes()
    n, c = means.shape[1], colors.shape[-1]
    out = []
    for f0 in range(0, means.shape[0], chunk):
        m = means[f0:f0 + chunk]
        f = m.shape[0]
        img, _, _ = render_fn(m, quats.expand(f, n, 4), scales.expand(f, n, 3), opac.expand(f, n),
                              colors.expand(f, n, c), viewmats[f0:f0 + f].unsqueeze(1),
                              Ks[f0:f0 + f].unsqueeze(1), ds.width, ds.height,
                              backgrounds=ds.background.to(means).expand(f, 1, c))
        out.append(img[:, 0])
    return torch.cat(out)


def train(cfg: Config, ds: Dataset, *, progress: Optional[bool] = None,
          shard: Optional[Shard] = None) -> Dict:
    """Fit the model to ``ds``; returns ``{"model", "binding", "history", "timing"}``.

    ``shard`` says which frames this process trains on and how the losses reduce (default: the
    whole problem in this process; :class:`fourdgs.distributed.DistributedShard` under torchrun).
    """
    tune_cpu_allocator()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = torch.device(cfg.device)
    render_fn = get_renderer(cfg)
    model, binding = build(cfg, ds)
    model.to(device)
    binding.to(device)
    shard = Shard(ds.num_frames, device) if shard is None else shard
    ds_dev = dict(images=ds.images.to(device), viewmats=ds.viewmats.to(device), Ks=ds.Ks.to(device),
                  background=ds.background.to(device))
    use_kp = cfg.lambda_kml > 0 or cfg.lambda_sp > 0
    if cfg.lambda_sp > 0 and ds.edge_index is None:
        raise ValueError("lambda_sp > 0 needs a skeleton: add 'skeleton' to scene.json")
    graph = None
    if cfg.lambda_sp > 0:
        graph = KeypointGraph(ds.edge_index, ds.num_keypoints).to(device)
    scl_loss, kml, sp = shard.losses(cfg, graph)
    kp_frames = shard.keypoint_frames()
    det_n = normalize(ds.keypoints, ds.width, ds.height).to(device)[kp_frames]
    vis = ds.visibility.to(device)[kp_frames]
    kp_views, kp_Ks = ds_dev["viewmats"][kp_frames], ds_dev["Ks"][kp_frames]
    scl_frames = shard.scl_frames(cfg.scl_order)
    priors = None
    if MotionPriors.wanted(cfg):
        if shard.world_size > 1:
            raise ValueError("lambda_rigid and lambda_arap are single-process only, got "
                             f"world_size={shard.world_size}")
        priors = MotionPriors(cfg, model.gaussians.means, ds.num_frames)
    # Without the photometric term the appearance parameters get no gradient, which DDP must
    # be told about.
    net = shard.wrap(StepForward(model, binding), find_unused_parameters=cfg.lambda_photo <= 0)
    opt, sched = _optimizer(cfg, model)
    gen = torch.Generator().manual_seed(cfg.seed + 2)
    n_gauss = model.gaussians.num
    history = []
    loss_time = 0.0
    show = (cfg.progress if progress is None else progress) and shard.is_main
    from tqdm import tqdm
    bar = tqdm(range(cfg.iters), disable=not show, desc="train", dynamic_ncols=True, leave=False)
    t_start = time.perf_counter()
    for it in bar:
        frames = shard.photo_frames(gen, cfg.frames_per_iter)
        opt.zero_grad(set_to_none=True)
        terms = {}
        total = torch.zeros((), device=device)
        idx = None
        if cfg.lambda_scl > 0:
            m = n_gauss if cfg.scl_gaussians <= 0 else min(cfg.scl_gaussians, n_gauss)
            idx = torch.randperm(n_gauss, generator=gen)[:m].to(device)
        with record_function("step/model"):
            means, centres, kp3, rigid = net(frames if cfg.lambda_photo > 0 else None,
                                             scl_frames if idx is not None else None, idx,
                                             kp_frames if use_kp else None,
                                             None if priors is None else priors.frames(device))
        # [F, N, 3], [T, M, 3], [T, K, 3], [W, N, 3]
        if means is not None:
            with record_function("step/render"):
                pred = _render(render_fn, model, means, ds_dev["viewmats"][frames],
                               ds_dev["Ks"][frames], ds)
            photo = (pred - ds_dev["images"][frames]).abs().mean()
            total = total + cfg.lambda_photo * photo
            terms["photo"] = float(photo.detach())
        # inputs of our losses (their forward/backward is timed below)
        reg_inputs = []
        kp_n = None
        if centres is not None:
            reg_inputs.append(centres)
        if kp3 is not None:
            kp2, _ = project(kp3, kp_views, kp_Ks)
            kp_n = normalize(kp2, ds.width, ds.height)
            reg_inputs.append(kp_n)
        if rigid is not None:
            reg_inputs.append(rigid)
        with record_function("step/losses"):
            t0 = time.perf_counter()
            leaves = [x.detach().requires_grad_() for x in reg_inputs]
            reg = torch.zeros((), device=device)
            li = 0
            if centres is not None:
                scl_val = scl_loss(leaves[li])
                reg = reg + cfg.lambda_scl * scl_val
                terms["scl"] = float(scl_val.detach())
                li += 1
            if kp_n is not None:
                k_leaf = leaves[li]
                if cfg.lambda_kml > 0:
                    kml_val = kml(k_leaf, det_n, weight=vis)
                    reg = reg + cfg.lambda_kml * kml_val
                    terms["kml"] = float(kml_val.detach())
                if cfg.lambda_sp > 0:
                    sp_val = sp(k_leaf, det_n, weight=vis)
                    reg = reg + cfg.lambda_sp * sp_val
                    terms["sp"] = float(sp_val.detach())
                li += 1
            if rigid is not None:
                prior_val, prior_terms = priors(leaves[li], model.gaussians.quats, model.gaussians.means)
                reg = reg + prior_val
                terms.update(prior_terms)
            if leaves:
                reg.backward()
            if device.type == "cuda":  # pragma: no cover
                torch.cuda.synchronize()
            loss_time += time.perf_counter() - t0
        outs, grads = [], []
        if cfg.lambda_photo > 0:
            outs.append(total)
            grads.append(None)
        for x, leaf in zip(reg_inputs, leaves):
            outs.append(x)
            grads.append(leaf.grad)
        if outs:
            with record_function("step/backward"):
                torch.autograd.backward(outs, grads)
        with record_function("step/optimizer"):
            opt.step()
            sched.step()
        if it % cfg.log_every == 0 or it == cfg.iters - 1:
            history.append(dict(iter=it, **terms))
            bar.set_postfix({k: f"{v:.4g}" for k, v in terms.items()})
    if device.type == "cuda":  # pragma: no cover
        torch.cuda.synchronize()
    train_time = time.perf_counter() - t_start
    bar.close()
    timing = dict(train_seconds=train_time, sec_per_iter=train_time / cfg.iters,
                  loss_seconds=loss_time, loss_share=loss_time / train_time)
    return dict(model=model, binding=binding, history=history, timing=timing)


@torch.no_grad()
def evaluate(cfg: Config, ds: Dataset, model: Model4D, binding: KeypointBinding) -> Dict:
    """Metrics (see :mod:`sirenpose_loss.metrics` for conventions), renders and tracks."""
    device = model.gaussians.means.device
    render_fn = get_renderer(cfg)
    frames = torch.arange(ds.num_frames, device=device)
    means = model.means(frames)
    pred_train = _render(render_fn, model, means, ds.viewmats.to(device), ds.Ks.to(device), ds).cpu()
    chw = lambda x: x.permute(0, 3, 1, 2)  # noqa: E731
    out = dict(metrics={}, renders=dict(train=pred_train), tracks={})
    m = out["metrics"]
    m["psnr_train"] = M.psnr(chw(pred_train), chw(ds.images))
    if ds.heldout_images is not None:
        renders, gts = [], []
        for c in range(ds.heldout_viewmats.shape[0]):
            view = ds.heldout_viewmats[c].expand(ds.num_frames, 4, 4).to(device)
            K = ds.heldout_Ks[c].expand(ds.num_frames, 3, 3).to(device)
            renders.append(_render(render_fn, model, means, view, K, ds).cpu())
            gts.append(ds.heldout_images[c])
        pr, gt = torch.cat(renders), torch.cat(gts)
        m["psnr_heldout"] = M.psnr(chw(pr), chw(gt))
        m["ssim_heldout"] = M.ssim(chw(pr), chw(gt))
        out["renders"]["heldout"] = torch.stack(renders)
    kp3 = binding.points3d(model, frames).cpu()
    kp2, _ = project(kp3, ds.viewmats, ds.Ks)
    out["tracks"] = dict(pred3d=kp3, pred2d=kp2, detector2d=ds.keypoints, visibility=ds.visibility)
    vis = ds.visibility > 0
    scale = max(ds.width, ds.height)
    m["jitter2d"] = M.jitter(kp2 / scale)
    m["jitter2d_detector"] = M.jitter(ds.keypoints / scale, vis)
    if ds.gt_joints3d is not None:
        gt3 = ds.gt_joints3d
        out["tracks"]["gt3d"] = gt3
        m["kp3d_error"] = M.keypoint_error(kp3, gt3)
        m["jitter"] = M.jitter(kp3)
        m["jitter_gt"] = M.jitter(gt3)
        m["jitter_residual"] = M.jitter(kp3 - gt3)  # acceleration of the error: noise, not motion
        m["ate_centroid"] = M.ate(kp3.mean(1), gt3.mean(1))
        m["rpe_centroid"] = M.rpe(kp3.mean(1), gt3.mean(1)).trans
    else:
        m["jitter"] = M.jitter(kp3)
    if ds.gt_keypoints2d is not None:
        gt2 = ds.gt_keypoints2d
        out["tracks"]["gt2d"] = gt2
        thr = cfg.pck_alpha * M.bbox_size(gt2)
        m["pck2d"] = M.pck(kp2, gt2, thr)
        m["pck2d_detector"] = M.pck(ds.keypoints, gt2, thr, vis)
        m["kp2d_error_px"] = M.keypoint_error(kp2, gt2)
        m["jitter2d_gt"] = M.jitter(gt2 / scale)
    else:  # no ground truth: agreement with the detector
        thr = cfg.pck_alpha * M.bbox_size(ds.keypoints, vis)
        m["pck2d_vs_detector"] = M.pck(kp2, ds.keypoints, thr, vis)
    for k, v in list(m.items()):
        if isinstance(v, float) and math.isnan(v):
            m[k] = None
    return out
