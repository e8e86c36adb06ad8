"""Where a training step's time goes: the trainer's regions and the costliest operators.

Trains the motion-capture scene with all losses (the protocol's frozen weights when they are
in ``--weights``, else the built-in ones) under ``torch.profiler`` and writes
``step_profile.json`` and ``step_profile.md``: per step, the time in each of the trainer's
regions (``step/model``: deformation and keypoint binding; ``step/render``: the rasteriser's
forward; ``step/losses``: the package's losses, forward and backward; ``step/backward``: the
backward of everything else, the rasteriser's included; ``step/optimizer``) and the operators
with the most self time.

    python examples/profile_step.py --out examples/results/mocap
"""
import argparse
import dataclasses
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

REGIONS = ["step/model", "step/render", "step/losses", "step/backward", "step/optimizer"]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--motion", default="humanoid3d_kick")
    p.add_argument("--preset", default="cpu", choices=["smoke", "cpu"])
    p.add_argument("--iters", type=int, default=100, help="profiled steps (after 20 untimed)")
    p.add_argument("--weights", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                     "results", "mocap", "frozen_weights.json"))
    p.add_argument("--out", default="runs/profile")
    args = p.parse_args(argv)
    import torch
    from torch.profiler import ProfilerActivity, profile
    from fourdgs.config import DEFAULT_WEIGHTS, preset
    from fourdgs.perf import tune_cpu_allocator
    from fourdgs.run import write_json
    from fourdgs.scene import make_scene
    from fourdgs.trainer import train

    tune_cpu_allocator()
    weights = dict(DEFAULT_WEIGHTS)
    source = "built-in"
    if os.path.exists(args.weights):
        with open(args.weights) as f:
            weights = {k: v for k, v in json.load(f).items() if k in weights}
        source = os.path.relpath(args.weights)
    base = preset(args.preset, progress=False)
    base = dataclasses.replace(base, scene=dataclasses.replace(base.scene, motion=args.motion))
    ds = make_scene(0, base.scene).dataset
    cfg = base.with_losses(photo=1.0, scl=weights["scl"], kml=weights["kml"], sp=weights["sp"])
    train(dataclasses.replace(cfg, iters=20), ds)          # warm-up: allocator, first calls
    cfg = dataclasses.replace(cfg, iters=args.iters)
    t0 = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fit = train(cfg, ds)
    wall = time.perf_counter() - t0
    events = prof.key_averages()
    by_name = {e.key: e for e in events}
    step_ms = 1e3 * fit["timing"]["train_seconds"] / args.iters
    regions = {r: by_name[r].cpu_time_total / 1e3 / args.iters if r in by_name else 0.0
               for r in REGIONS}
    ops = sorted((e for e in events if not e.key.startswith("step/")),
                 key=lambda e: e.self_cpu_time_total, reverse=True)[:10]
    top = [dict(op=e.key, self_ms_per_step=e.self_cpu_time_total / 1e3 / args.iters,
                calls_per_step=e.count / args.iters) for e in ops]
    result = dict(motion=args.motion, preset=args.preset, steps=args.iters, weights=weights,
                  weights_from=source, threads=torch.get_num_threads(),
                  torch=torch.__version__, step_ms_profiled=step_ms,
                  regions_ms=regions, top_ops=top, wall_seconds=wall,
                  note="times under the profiler, whose own cost is in the step")
    os.makedirs(args.out, exist_ok=True)
    write_json(os.path.join(args.out, "step_profile.json"), result)
    lines = [f"One training step, `{args.motion}`, preset `{args.preset}`, all losses "
             f"(weights: {source}), {result['threads']} thread, {args.iters} steps under "
             f"torch.profiler: {step_ms:.1f} ms per step.", "",
             "| region | ms / step | share |", "|---|---|---|"]
    for r, ms in regions.items():
        lines.append(f"| `{r}` | {ms:.2f} | {100 * ms / step_ms:.1f} % |")
    other = step_ms - sum(regions.values())
    lines += [f"| rest of the loop | {other:.2f} | {100 * other / step_ms:.1f} % |", "",
              "Operators with the most self time:", "", "| operator | ms / step | calls / step |",
              "|---|---|---|"]
    for t in top:
        lines.append(f"| `{t['op']}` | {t['self_ms_per_step']:.2f} | {t['calls_per_step']:.1f} |")
    md = "\n".join(lines) + "\n"
    with open(os.path.join(args.out, "step_profile.md"), "w") as f:
        f.write(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
