#!/usr/bin/env python
"""Ablation of the sirenpose-loss losses on the synthetic 4-D scene.

Trains the same scene (same seed, same initialisation, same frame order) seven times:
photometric only, +SCL, +KML, +SirenPose, all three, and two motion priors over a neighbour
graph of the Gaussians that "all" does not include: +rigid (Dynamic 3D Gaussians' rigidity,
rotation and isometry trio) and +arap (as-rigid-as-possible), then writes to ``--out``:

* ``ablation.json``  a list of rows with the keys config, psnr_heldout, ssim_heldout,
  kp3d_error, pck2d, jitter, sec_per_iter, loss_share;
* ``ablation.md``    the same table in Markdown, with reference values (ground-truth jitter,
  the detector's PCK) and the all-vs-photometric comparison;
* ``ablation_full.json``  every metric, timing and weight of every run, and the scene;
* ``ablation_tracks.png`` 3-D wrist/ankle trajectories: ground truth, photometric only, all;
* ``ablation_views.gif``  training and held-out views: ground truth | photometric | all;
* ``runs/<config>/metrics.json``.

Metric conventions are in ``sirenpose_loss.metrics``: PSNR/SSIM (torchmetrics) averaged over
all held-out views and frames; kp3d_error = mean Euclidean distance of the 3-D keypoints (bound
Gaussians) to the ground-truth joints, scene units (the figure is ~1.55 tall); pck2d = PCK of
the rendered 2-D keypoints in the training view against the clean ground truth at
0.1 x the keypoints' bounding-box size; jitter = mean acceleration magnitude of the 3-D
keypoint tracks (units / frame^2); sec_per_iter = training wall time / iterations; loss_share =
the share of it spent inside the package's losses (forward + backward).

    python examples/ablation.py --preset cpu --seed 0 --out runs/ablation
    python examples/ablation.py --preset cpu --seed 0 --summary-only --out examples/results/seed0
    python examples/ablation.py --preset cpu --seed 0 --motion humanoid3d_kick --out runs/kick
    python examples/ablation.py --preset cpu --seed 0 --configs +rigid +arap --merge \
        --summary-only --out examples/results/seed0

``--merge`` replaces the rows of the configurations that ran in the tables already in ``--out``
and keeps the others (same seed, preset, iterations and scene, or it refuses).

``--motion`` drives the figure with motion capture (``fourdgs/mocap.py``); ``--suite mocap``
runs the pre-registered motion-capture protocol instead (``fourdgs/suite.py``).
"""
import argparse
import dataclasses
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fourdgs.perf import tune_cpu_allocator  # noqa: E402

ROW_KEYS = ["config", "psnr_heldout", "ssim_heldout", "kp3d_error", "pck2d", "jitter",
            "sec_per_iter", "loss_share"]
CONFIG_NAMES = ["photometric", "+scl", "+kml", "+sirenpose", "all", "+rigid", "+arap"]
WEIGHT_NAMES = ("scl", "kml", "sp", "rigid", "arap")


def ablation_configs(weights):
    """Each configuration's loss weights: the photometric term plus the one(s) it names."""
    only = lambda *names: {k: (weights[k] if k in names else 0.0) for k in WEIGHT_NAMES}  # noqa: E731
    return {"photometric": only(), "+scl": only("scl"), "+kml": only("kml"),
            "+sirenpose": only("sp"), "all": only("scl", "kml", "sp"),
            "+rigid": only("rigid"), "+arap": only("arap")}


def _fmt(v, digits=3):
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.{digits}f}" if abs(v) >= 1e-3 or v == 0 else f"{v:.2e}"
    return str(v)


def markdown(rows, full, args) -> str:
    ref = full["reference"]
    lines = [
        f"Ablation on the synthetic scene"
        f"{f' driven by `{args.motion}`' if args.motion else ''}, seed {args.seed}, preset `{args.preset}` "
        f"({full['iters']} iterations, {full['scene']['num_frames']} frames, "
        f"{full['scene']['image_size']}x{full['scene']['image_size']} px, "
        f"{full['num_gaussians']} Gaussians; weights scl={full['weights']['scl']} "
        f"(order {full.get('scl_order', 1)}), "
        f"kml={full['weights']['kml']}, sp={full['weights']['sp']}"
        + (f", rigid={full['weights']['rigid']}, arap={full['weights']['arap']}"
           if "rigid" in full["weights"] else "") + ").",
        "",
        "| config | PSNR held-out (dB) ↑ | SSIM held-out ↑ | 3-D kp error ↓ | PCK@0.1 2-D ↑ "
        "| jitter ↓ | s / iter | loss share |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['config']} | {_fmt(r['psnr_heldout'], 2)} | {_fmt(r['ssim_heldout'])} | "
                     f"{_fmt(r['kp3d_error'], 4)} | {_fmt(r['pck2d'])} | {_fmt(r['jitter'], 4)} | "
                     f"{_fmt(r['sec_per_iter'])} | {_fmt(100 * r['loss_share'], 1)} % |")
    lines += ["", "More metrics (ablation_full.json has all): PSNR of the training view; jitter of the "
              "error (mean acceleration of predicted minus ground-truth 3-D tracks: noise rather "
              "than motion); 2-D keypoint error in the training view; ATE (Sim(3)-aligned RMSE) of "
              "the keypoints' centroid trajectory.", "",
              "| config | PSNR train (dB) | jitter of the error ↓ | 2-D kp error (px) ↓ | ATE centroid ↓ |",
              "|---|---|---|---|---|"]
    for r in rows:
        m = full["runs"][r["config"]]["metrics"]
        lines.append(f"| {r['config']} | {_fmt(m.get('psnr_train'), 2)} | "
                     f"{_fmt(m.get('jitter_residual'), 4)} | {_fmt(m.get('kp2d_error_px'), 2)} | "
                     f"{_fmt(m.get('ate_centroid'), 4)} |")
    lines += [
        "",
        f"Reference: ground-truth tracks' own jitter {_fmt(ref['jitter_gt'], 4)}; the detector's "
        f"PCK@0.1 {_fmt(ref['pck2d_detector'])} (visible points); 3-D error of the "
        f"undeformed initial model {_fmt(ref['kp3d_error_init'], 4)}.",
    ]
    by = {r["config"]: r for r in rows}
    if "photometric" in by and "all" in by:
        p, a = by["photometric"], by["all"]
        dj = 100 * (1 - a["jitter"] / p["jitter"]) if p["jitter"] else float("nan")
        dk = 100 * (1 - a["kp3d_error"] / p["kp3d_error"]) if p["kp3d_error"] else float("nan")
        dp = a["psnr_heldout"] - p["psnr_heldout"] if p["psnr_heldout"] is not None else float("nan")
        ok = lambda c: "yes" if c else "NO"  # noqa: E731
        lines += [
            "",
            "All losses vs photometric only:",
            f"- jitter {dj:+.1f} % lower (target: at least 30 % lower): {ok(dj >= 30)}",
            f"- 3-D keypoint error {dk:+.1f} % lower (target: lower): {ok(dk > 0)}",
            f"- held-out PSNR {dp:+.2f} dB (target: no more than 0.5 dB lower): {ok(dp >= -0.5)}",
        ]
    return "\n".join(lines) + "\n"


def merge_into(out: str, rows, full):
    """``rows`` and ``full`` merged into the tables already in ``out``: the rows that ran
    replace theirs, the others stay, in ``CONFIG_NAMES`` order; the runs must match."""
    with open(os.path.join(out, "ablation.json")) as f:
        old_rows = json.load(f)
    with open(os.path.join(out, "ablation_full.json")) as f:
        old = json.load(f)
    from fourdgs.run import rounded
    for key in ("seed", "preset", "iters", "scl_order", "scene", "num_gaussians"):
        if rounded(old.get(key)) != rounded(full.get(key)):
            raise ValueError(f"--merge: {key} of {out} is {old.get(key)!r}, this run's is "
                             f"{full.get(key)!r}")
    ran = {r["config"] for r in rows}
    by = {r["config"]: r for r in old_rows if r["config"] not in ran}
    by.update({r["config"]: r for r in rows})
    order = lambda names: sorted(names, key=CONFIG_NAMES.index)  # noqa: E731
    runs = dict(old["runs"], **full["runs"])
    merged = dict(full, weights=dict(old["weights"], **{k: v for k, v in full["weights"].items()
                                                         if k not in old["weights"]}),
                  runs={k: runs[k] for k in order(runs)},
                  total_seconds=old["total_seconds"] + full["total_seconds"])
    return [by[k] for k in order(by)], merged


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Ablation of the sirenpose-loss losses")
    p.add_argument("--preset", choices=["smoke", "cpu", "gpu"], default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/ablation")
    p.add_argument("--iters", type=int, default=None)
    p.add_argument("--configs", nargs="+", choices=CONFIG_NAMES, default=CONFIG_NAMES)
    p.add_argument("--lambda-scl", type=float, default=None)
    p.add_argument("--lambda-kml", type=float, default=None)
    p.add_argument("--lambda-sp", type=float, default=None)
    p.add_argument("--lambda-rigid", type=float, default=None,
                   help="weight of the rigidity trio in the +rigid row")
    p.add_argument("--lambda-arap", type=float, default=None,
                   help="weight of ARAP in the +arap row")
    p.add_argument("--scl-order", type=int, choices=[1, 2], default=None,
                   help="1: DynaPose4D's velocity SCL (default); 2: the acceleration variant")
    p.add_argument("--motion", default=None, metavar="NAME",
                   help="drive the figure with motion capture: a pybullet humanoid clip "
                        "(humanoid3d_walk, ...) or a .npy of COCO-17 tracks [T, 17, 3]")
    p.add_argument("--suite", choices=["mocap"], default=None,
                   help="run the motion-capture protocol (fourdgs/suite.py) instead of one ablation")
    p.add_argument("--stage", choices=["tune", "eval", "all"], default="all",
                   help="with --suite: tune the weights, evaluate with the frozen ones, or both")
    p.add_argument("--weights", default=None,
                   help="with --suite --stage eval: frozen weights JSON (default OUT/frozen_weights.json)")
    p.add_argument("--smoke", action="store_true",
                   help="with --suite: a tiny run (smoke preset, one clip per stage) that only "
                        "proves the machinery works")
    p.add_argument("--jobs", type=int, default=1,
                   help="with --suite: runs trained at once, in worker processes (2 on 2 cores)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--progress", action="store_true", help="show a progress bar per run")
    p.add_argument("--summary-only", action="store_true",
                   help="write only ablation.json, ablation.md, ablation_full.json and "
                        "ablation_tracks.png (the layout of examples/results/seed{N}/)")
    p.add_argument("--merge", action="store_true",
                   help="keep the rows of the configurations that do not run from the "
                        "ablation.json and ablation_full.json already in --out")
    args = p.parse_args(argv)
    if args.jobs < 1:
        p.error(f"--jobs must be >= 1, got {args.jobs}")
    return args


def main(argv=None):
    args = parse_args(argv)
    tune_cpu_allocator()
    import torch
    from fourdgs import mocap, viz
    from fourdgs.config import DEFAULT_WEIGHTS, RIGIDITY_WEIGHTS, preset
    from fourdgs.probes import SetupError, check_setup
    from fourdgs.run import run, write_json
    from fourdgs.scene import make_scene
    from sirenpose_loss import metrics as M

    over = dict(seed=args.seed, progress=args.progress)
    if args.iters is not None:
        over["iters"] = args.iters
    if args.threads is not None:
        over["threads"] = args.threads
    if args.scl_order is not None:
        over["scl_order"] = args.scl_order
    base = preset(args.preset, **over)
    if args.motion:
        base = dataclasses.replace(base, scene=dataclasses.replace(base.scene, motion=args.motion))
    try:  # what a GPU run needs, before minutes go into building the scene
        check_setup(base)
    except SetupError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.suite:
        from fourdgs import suite
        if base.threads:
            torch.set_num_threads(base.threads)
        return suite.main(args, base)
    if base.threads:
        torch.set_num_threads(base.threads)
    weights = dict(DEFAULT_WEIGHTS, **RIGIDITY_WEIGHTS)
    for key in WEIGHT_NAMES:
        if getattr(args, f"lambda_{key}") is not None:
            weights[key] = getattr(args, f"lambda_{key}")
    os.makedirs(args.out, exist_ok=True)
    t0 = time.perf_counter()
    try:
        scene = make_scene(args.seed, base.scene)
    except (mocap.MotionError, mocap.PybulletMissing) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    ds = scene.dataset
    print(f"scene seed {args.seed}: {ds.num_frames} frames, {ds.width}x{ds.height}, "
          f"{scene.gaussians.local.shape[0]} Gaussians ({time.perf_counter() - t0:.1f} s)")
    rows, results = [], {}
    configs = ablation_configs(weights)
    for name in args.configs:
        cfg = base.with_losses(photo=1.0, **configs[name])
        t1 = time.perf_counter()
        cfg = dataclasses.replace(cfg, write_gif=False, write_plots=False)
        res = run(cfg, ds, None if args.summary_only else os.path.join(args.out, "runs", name.lstrip("+")),
                  label=name, progress=args.progress)
        m, tm = res["record"]["metrics"], res["record"]["timing"]
        row = dict(config=name, psnr_heldout=m.get("psnr_heldout"), ssim_heldout=m.get("ssim_heldout"),
                   kp3d_error=m.get("kp3d_error"), pck2d=m.get("pck2d"), jitter=m.get("jitter"),
                   sec_per_iter=tm["sec_per_iter"], loss_share=tm["loss_share"])
        rows.append(row)
        results[name] = res
        print(f"{name:12s} " + "  ".join(f"{k}={_fmt(row[k])}" for k in ROW_KEYS[1:])
              + f"  ({time.perf_counter() - t1:.0f} s)", flush=True)
    # reference values
    init_err = M.keypoint_error(ds.gt_joints3d[:1].expand_as(ds.gt_joints3d), ds.gt_joints3d)
    first = next(iter(results.values()))["record"]["metrics"]
    full = dict(seed=args.seed, preset=args.preset, iters=base.iters, weights=weights,
                scl_order=base.scl_order,
                num_gaussians=int(scene.gaussians.local.shape[0]),
                scene=dict(base.scene.__dict__),
                reference=dict(jitter_gt=first.get("jitter_gt"),
                               pck2d_detector=first.get("pck2d_detector"),
                               jitter2d_gt=first.get("jitter2d_gt"),
                               jitter2d_detector=first.get("jitter2d_detector"),
                               kp3d_error_init=init_err),
                runs={k: dict(metrics=v["record"]["metrics"], timing=v["record"]["timing"],
                              losses=v["record"]["losses"]) for k, v in results.items()},
                total_seconds=time.perf_counter() - t0)
    if args.merge:
        try:
            rows, full = merge_into(args.out, rows, full)
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    with open(os.path.join(args.out, "ablation.json"), "w") as f:
        json.dump([{k: (round(v, 6) if isinstance(v, float) else v) for k, v in r.items()}
                   for r in rows], f, indent=2)
    write_json(os.path.join(args.out, "ablation_full.json"), full)
    md = markdown(rows, full, args)
    with open(os.path.join(args.out, "ablation.md"), "w") as f:
        f.write(md)
    # pictures: ground truth vs photometric only vs all (or whatever ran)
    shown = [c for c in ("photometric", "all") if c in results] or list(results)[:2]
    preds = {c: results[c]["tracks"]["pred3d"] for c in shown}
    if not args.merge or len(shown) == 2 and "all" in shown:  # a merge keeps the old picture
        viz.plot_tracks(os.path.join(args.out, "ablation_tracks.png"), ds.gt_joints3d, preds,
                        ds.keypoint_names, title=f"3-D keypoint tracks, seed {args.seed}: "
                        "ground truth vs " + " vs ".join(shown))
    print()
    print(md)
    if args.summary_only:
        print(f"wrote {args.out}/ablation.json, ablation.md, ablation_full.json, ablation_tracks.png "
              f"({time.perf_counter() - t0:.0f} s)")
        return 0
    cols = [ds.images] + [results[c]["renders"]["train"] for c in shown]
    if ds.heldout_images is not None:
        cols += [ds.heldout_images[0]] + [results[c]["renders"]["heldout"][0] for c in shown]
    viz.save_gif(os.path.join(args.out, "ablation_views.gif"),
                 viz.grid_video(cols, rows=2 if ds.heldout_images is not None else 1),
                 upscale=2 if ds.width < 48 else 1)
    print(f"wrote {args.out}/ablation.json, ablation.md, ablation_full.json, ablation_tracks.png, "
          f"ablation_views.gif ({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
