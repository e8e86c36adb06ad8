#!/usr/bin/env python
"""Fit SirenPose's two-stream keypoint predictor to noisy detector tracks.

``sirenpose_loss.nn.TwoStreamKeypointPredictor`` (eq. 1: a GNN stream over the COCO-17
skeleton plus a SIREN stream, ``forward(t [T]) -> [T, K, 2]``) is fitted to the synthetic
scene's detector keypoints (noise, dropped points in bursts, left/right swaps and jumps) with

* ``L_pos``          the positional term only (eq. 5; the keypoint match loss),
* ``L_pos + SCL``    plus the spatio-temporal consistency loss on the predicted tracks,
* ``SirenPose``      the full loss, L_pos + lambda_geo L_geo on the skeleton (eq. 7),
* ``SirenPose + SCL``

all weighted by the detector's visibility, in normalised coordinates. Each is scored against
the *clean* tracks: mean error (px), PCK@0.1 of the bounding box, the error on the dropped
points only (interpolation), and jitter (px / frame^2; compare with the clean tracks' own).
Writes ``keypoints.json`` (rows), ``keypoints.md`` and ``keypoints_tracks.png`` to ``--out``.

    python examples/train_keypoints.py --preset cpu --seeds 0 1 2 --out examples/results/keypoints
    python examples/train_keypoints.py --preset cpu --seeds 0 --configs L_pos SirenPose --clean \
        --out examples/results/keypoints_clean
"""
import argparse
import dataclasses
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fourdgs.perf import tune_cpu_allocator  # noqa: E402

PRESETS = {
    # frames, image size (px), Adam steps
    "smoke": dict(num_frames=24, image_size=256, steps=150),
    "cpu": dict(num_frames=60, image_size=256, steps=1500),
    "gpu": dict(num_frames=120, image_size=512, steps=3000),
}
CONFIGS = {
    "L_pos": dict(geo=False, scl=False),
    "L_pos + SCL": dict(geo=False, scl=True),
    "SirenPose": dict(geo=True, scl=False),
    "SirenPose + SCL": dict(geo=True, scl=True),
}
DETECTOR_ARGS = ("detector_noise", "detector_drop", "detector_outlier")  # SceneConfig fields
ROW_KEYS = ["seed", "config", "error_px", "pck", "error_dropped_px", "jitter", "jitter_gt",
            "sec_per_step", "loss_share"]


def fit(tracks, name, args, device="cpu"):
    """Fit one predictor; returns (row, predicted pixel tracks [T, K, 2])."""
    import torch
    import sirenpose_loss as spl
    from sirenpose_loss import metrics as M
    from sirenpose_loss.graphs import KeypointGraph, denormalize_keypoints, normalize_keypoints
    from sirenpose_loss.nn import TwoStreamKeypointPredictor

    opts = CONFIGS[name]
    size = max(tracks.width, tracks.height)
    graph = KeypointGraph(tracks.edge_index, len(tracks.names))
    # pixel centres at i + 0.5 in our data, at i in normalize_keypoints' (OpenCV) convention
    target = normalize_keypoints(tracks.detector - 0.5, size).to(device)
    vis = tracks.visibility.to(device)
    seen = vis.sum(0).clamp_min(1)[:, None]
    base = (target * vis[..., None]).sum(0) / seen  # mean visible position per keypoint
    torch.manual_seed(args.seed_model)
    model = TwoStreamKeypointPredictor(graph, 2, base=base).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    t_frames = torch.linspace(0, 1, target.shape[0], device=device)
    sp = spl.SirenPoseLoss(graph, omega0=args.omega0, lambda_geo=args.lambda_geo)
    loss_time = 0.0
    t0 = time.perf_counter()
    for _ in range(args.steps):
        opt.zero_grad(set_to_none=True)
        pred = model(t_frames)
        t1 = time.perf_counter()
        leaf = pred.detach().requires_grad_()
        if opts["geo"]:
            loss = sp(leaf, target, weight=vis)
        else:
            loss = spl.keypoint_match_loss(leaf, target, weight=vis)
        if opts["scl"]:
            loss = loss + args.lambda_scl * spl.spatiotemporal_consistency_loss(leaf, order=args.scl_order)
        loss.backward()
        loss_time += time.perf_counter() - t1
        pred.backward(leaf.grad)
        opt.step()
    elapsed = time.perf_counter() - t0
    with torch.no_grad():
        px = denormalize_keypoints(model(t_frames).cpu(), size) + 0.5
    gt = tracks.gt2d
    dropped = tracks.visibility == 0
    thr = 0.1 * M.bbox_size(gt)
    row = dict(config=name, error_px=M.keypoint_error(px, gt), pck=M.pck(px, gt, thr),
               error_dropped_px=M.keypoint_error(px, gt, dropped) if dropped.any() else None,
               jitter=M.jitter(px), jitter_gt=M.jitter(gt), sec_per_step=elapsed / args.steps,
               loss_share=loss_time / elapsed)
    return row, px


def _fmt(v, d=3):
    return "n/a" if v is None else (f"{v:.{d}f}" if isinstance(v, float) else str(v))


def _detector_settings(args) -> dict:
    from fourdgs.scene import SceneConfig
    return {k: getattr(args, k) if getattr(args, k) is not None else getattr(SceneConfig, k)
            for k in DETECTOR_ARGS}


def markdown(rows, refs, args):
    lines = [f"Two-stream keypoint predictor on the synthetic detector tracks, preset "
             f"`{args.preset}` ({PRESETS[args.preset]['num_frames']} frames, "
             f"{args.steps} Adam steps, lambda_geo={args.lambda_geo}, "
             f"omega0={args.omega0}, lambda_scl={args.lambda_scl} (order {args.scl_order}), "
             + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in _detector_settings(args).items())
             + " (noise as a fraction of the image size). "
             "Errors in pixels of a "
             f"{PRESETS[args.preset]['image_size']} px image against the clean tracks.", "",
             "| seed | config | error (px) ↓ | PCK@0.1 ↑ | error on dropped points (px) ↓ "
             "| jitter (px/frame²) | s / step | loss share |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['seed']} | {r['config']} | {_fmt(r['error_px'], 2)} | {_fmt(r['pck'])} | "
                     f"{_fmt(r['error_dropped_px'], 2)} | {_fmt(r['jitter'], 2)} | "
                     f"{_fmt(r['sec_per_step'], 4)} | {_fmt(100 * r['loss_share'], 1)} % |")
    lines += ["", "Reference (the detector itself, visible points; the clean tracks' jitter):", ""]
    for seed, ref in refs.items():
        lines.append(f"- seed {seed}: detector error {ref['detector_error_px']:.2f} px, "
                     f"PCK@0.1 {ref['detector_pck']:.3f}, detector jitter "
                     f"{ref['detector_jitter']:.2f}, clean-track jitter {ref['jitter_gt']:.2f}")
    return "\n".join(lines) + "\n"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Two-stream keypoint predictor: L_pos vs SirenPose")
    p.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--out", default="runs/keypoints")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--lambda-geo", type=float, default=1.0, help="SirenPose's lambda_geo (paper: 1)")
    p.add_argument("--omega0", type=float, default=30.0, help="SirenPose's omega0 (paper: 30)")
    p.add_argument("--lambda-scl", type=float, default=10.0)
    p.add_argument("--scl-order", type=int, choices=[1, 2], default=1)
    p.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=list(CONFIGS))
    p.add_argument("--detector-noise", type=float, default=None,
                   help="detector noise std as a fraction of the image size (scene default 0.015)")
    p.add_argument("--detector-drop", type=float, default=None,
                   help="fraction of keypoints dropped, in bursts (scene default 0.08)")
    p.add_argument("--detector-outlier", type=float, default=None,
                   help="fraction of visible keypoints replaced by outliers (scene default 0.03)")
    p.add_argument("--clean", action="store_true",
                   help="fit the clean tracks: no detector noise, drops or outliers")
    args = p.parse_args(argv)
    if args.clean:
        for name in DETECTOR_ARGS:
            if getattr(args, name) not in (None, 0.0):
                p.error(f"--clean fits the clean tracks, so --{name.replace('_', '-')} must not be "
                        f"set; got {getattr(args, name)}")
            setattr(args, name, 0.0)
    if args.steps is None:
        args.steps = PRESETS[args.preset]["steps"]
    return args


def main(argv=None):
    args = parse_args(argv)
    tune_cpu_allocator()
    import torch
    torch.set_num_threads(1)
    from fourdgs import viz
    from fourdgs.scene import SceneConfig, make_keypoint_tracks
    from sirenpose_loss import metrics as M

    pre = PRESETS[args.preset]
    os.makedirs(args.out, exist_ok=True)
    rows, refs, shown = [], {}, {}
    for seed in args.seeds:
        scene_cfg = SceneConfig(num_frames=pre["num_frames"], image_size=pre["image_size"])
        scene_cfg = dataclasses.replace(scene_cfg, **{k: getattr(args, k) for k in DETECTOR_ARGS
                                                      if getattr(args, k) is not None})
        tracks = make_keypoint_tracks(seed, scene_cfg)
        vis = tracks.visibility > 0
        refs[seed] = dict(
            detector_error_px=M.keypoint_error(tracks.detector, tracks.gt2d, vis),
            detector_pck=M.pck(tracks.detector, tracks.gt2d, 0.1 * M.bbox_size(tracks.gt2d), vis),
            detector_jitter=M.jitter(tracks.detector, vis), jitter_gt=M.jitter(tracks.gt2d))
        args.seed_model = seed
        for name in args.configs:
            row, px = fit(tracks, name, args)
            row = dict(seed=seed, **row)
            rows.append(row)
            print("  ".join(f"{k}={_fmt(row[k])}" for k in ROW_KEYS), flush=True)
            if seed == args.seeds[0]:
                shown[name] = px
        if seed == args.seeds[0]:
            first = tracks
    with open(os.path.join(args.out, "keypoints.json"), "w") as f:
        json.dump(dict(rows=rows, reference={str(k): v for k, v in refs.items()},
                       args={k: v for k, v in vars(args).items()}), f, indent=2)
    md = markdown(rows, refs, args)
    with open(os.path.join(args.out, "keypoints.md"), "w") as f:
        f.write(md)
    pick = {k: shown[k] for k in ("L_pos", "SirenPose + SCL") if k in shown} or shown
    viz.plot_tracks(os.path.join(args.out, "keypoints_tracks.png"), first.gt2d, pick, first.names,
                    detector=first.detector, visibility=first.visibility,
                    axes_labels=("u px", "v px"),
                    title=f"2-D tracks, seed {args.seeds[0]}: detector (dots), clean (black), fits")
    print()
    print(md)
    print(f"wrote {args.out}/keypoints.json, keypoints.md, keypoints_tracks.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
