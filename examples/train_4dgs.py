#!/usr/bin/env python
"""Train a 4-D Gaussian Splatting model with the sirenpose-loss losses.

Canonical Gaussians plus a time-conditioned deformation network (identity at start), rendered
per frame with gsplat's ``rasterization`` on CUDA (``--preset gpu``; UNTESTED, no GPU was
available when this was written) or with the small differentiable pure-PyTorch splatting
renderer in ``fourdgs/render_torch.py`` on a CPU. Loss:

    lambda_photo * L1  +  lambda_scl * SCL(Gaussian centres, all frames)
                       +  lambda_kml * KML(rendered keypoints, detector keypoints)
                       +  lambda_sp  * SirenPose(rendered keypoints, detector keypoints, skeleton)
                       +  lambda_rigid * RigidityLoss(Gaussian centres, neighbour graph)
                       +  lambda_arap  * ARAP(Gaussian centres, neighbour graph)

Each weight 0 switches its term off; the two rigidity terms are off unless asked for
(``fourdgs/rigidity.py`` says what they do with this model's static rotations). By default the synthetic scene of ``--seed`` is used
(generated on the fly, nothing downloaded); ``--data DIR`` reads your own folder instead (format
in ``fourdgs/data.py`` and docs/examples.md). Writes ``metrics.json``, ``renders.gif``
(training view and held-out views: ground truth | render) and ``tracks3d.png`` /
``tracks2d.png`` (keypoint trajectories against ground truth) to ``--out``.

    python examples/train_4dgs.py --preset smoke --out runs/smoke
    python examples/train_4dgs.py --preset cpu --seed 1 --lambda-sp 0 --out runs/no_sp
    python examples/train_4dgs.py --preset cpu --data examples/data/sample_scene --out runs/mine
    torchrun --nproc_per_node=2 examples/train_4dgs.py --distributed --preset cpu --out runs/ddp

With ``--distributed`` (under torchrun: gloo on CPU, NCCL on CUDA) the ranks split the frames,
the model is wrapped in DistributedDataParallel and the losses are global means over all ranks
(``fourdgs/distributed.py``); each rank renders ``--frames-per-iter`` frames per step. Only rank
0 shows progress, evaluates and writes.
"""
import argparse
import dataclasses
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fourdgs.perf import tune_cpu_allocator  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=["smoke", "cpu", "gpu"], default="cpu")
    p.add_argument("--seed", type=int, default=0, help="scene and training seed")
    p.add_argument("--out", default="runs/train_4dgs", help="output folder")
    p.add_argument("--data", default=None, help="your own data folder (see docs/examples.md)")
    p.add_argument("--motion", default=None, metavar="NAME",
                   help="drive the synthetic figure with motion capture: a pybullet humanoid "
                        "clip (humanoid3d_walk, ...) or a .npy of COCO-17 tracks [T, 17, 3]")
    p.add_argument("--iters", type=int, default=None)
    for name in ("photo", "scl", "kml", "sp", "rigid", "arap"):
        p.add_argument(f"--lambda-{name}", type=float, default=None,
                       help=f"weight of the {name} loss (0 = off)")
    p.add_argument("--rigid-k", type=int, default=None,
                   help="neighbours per Gaussian in the rigidity graph (default 20)")
    p.add_argument("--rigid-frames", type=int, default=None,
                   help="consecutive frames per step of the rigidity terms (default 2, 0 = all)")
    p.add_argument("--scl-order", type=int, choices=[1, 2], default=None,
                   help="1: DynaPose4D's velocity SCL (default); 2: the acceleration variant")
    p.add_argument("--sp-schedule", default=None,
                   choices=["constant", "warmup", "coarse-to-fine", "alias-gate"],
                   help="how SirenPose's settings change during training (default constant)")
    p.add_argument("--device", default=None, help="cpu or cuda (preset default)")
    p.add_argument("--renderer", choices=["auto", "torch", "gsplat"], default=None)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default 1)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--frames-per-iter", type=int, default=None,
                   help="frames rendered per step (per rank with --distributed)")
    p.add_argument("--distributed", action="store_true",
                   help="data-parallel training under torchrun (see above)")
    p.add_argument("--frame-seed", type=int, default=None,
                   help="with --distributed: seed of the ranks' frame draws (default --seed)")
    args = p.parse_args(argv)
    if args.motion and args.data:
        p.error("--motion drives the synthetic scene; it cannot be combined with --data")
    return args


def make_config(args):
    from fourdgs.config import DEFAULT_WEIGHTS, preset
    over = dict(seed=args.seed)
    for key in ("iters", "device", "renderer", "threads", "scl_order", "frames_per_iter",
                "rigid_k", "rigid_frames", "sp_schedule"):
        if getattr(args, key) is not None:
            over[key] = getattr(args, key)
    if args.no_progress:
        over["progress"] = False
    cfg = preset(args.preset, **over)
    if args.motion:
        cfg = dataclasses.replace(cfg, scene=dataclasses.replace(cfg.scene, motion=args.motion))
    weights = dict(photo=1.0, **DEFAULT_WEIGHTS, rigid=0.0, arap=0.0)
    for name in weights:
        value = getattr(args, f"lambda_{name}")
        if value is not None:
            weights[name] = value
    return cfg.with_losses(**weights)


def main(argv=None):
    args = parse_args(argv)
    tune_cpu_allocator()
    import torch
    cfg = make_config(args)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if args.distributed:
        from fourdgs import distributed
        cfg = distributed.init(cfg)
        try:
            return _main(args, cfg, distributed)
        finally:
            distributed.shutdown()
    return _main(args, cfg, None)


def _main(args, cfg, distributed):
    from fourdgs.data import DataFormatError
    from fourdgs.probes import SetupError
    from fourdgs.mocap import MotionError, PybulletMissing
    from fourdgs.run import load_dataset, run
    quiet = distributed is not None and distributed.rank() != 0   # only rank 0 speaks
    try:
        ds = load_dataset(cfg, args.data)
    except DataFormatError as err:
        print(f"error: malformed data folder: {err}", file=sys.stderr)
        return 2
    except (SetupError, MotionError, PybulletMissing) as err:  # said before any scene is built
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.data and cfg.lambda_sp > 0 and ds.edge_index is None:
        if not quiet:
            print("note: the data has no skeleton, so the SirenPose term is switched off",
                  file=sys.stderr)
        cfg = dataclasses.replace(cfg, lambda_sp=0.0)
    shard = None
    if distributed is not None:
        import torch
        seed = cfg.seed if args.frame_seed is None else args.frame_seed
        shard = distributed.DistributedShard(ds.num_frames, torch.device(cfg.device), seed)
    out = run(cfg, ds, args.out, label="train_4dgs", shard=shard)
    if out is None:   # not the main rank
        return 0
    rec = out["record"]
    print(json.dumps(dict(metrics=rec["metrics"], timing=rec["timing"]), indent=2))
    print(f"wrote {args.out}/metrics.json, renders.gif, tracks*.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
