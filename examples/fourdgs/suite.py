"""The motion-capture protocol (docs/examples.md, "Motion capture: the pre-registered
protocol"): tune the loss weights on the tuning clips, freeze them, and report every
configuration on the evaluation clips with means, standard deviations and paired differences
against photometric-only.

``python examples/ablation.py --suite mocap --out runs/mocap`` runs both stages;
``--stage tune`` or ``--stage eval`` one of them, ``--smoke`` a tiny version that only proves the
machinery works. Every run is saved as it finishes (``runs/<stage>/<clip>/seed<N>/<config>.json``)
and skipped when found again, so an interrupted suite resumes where it stopped.
"""
import dataclasses
import json
import math
import os
import statistics
from typing import Dict, List, Optional

import torch

TUNING_CLIPS = ["humanoid3d_walk", "humanoid3d_run", "humanoid3d_jump", "humanoid3d_punch"]
TUNING_SEEDS = [0, 1]
EVAL_CLIPS = ["humanoid3d_kick", "humanoid3d_spinkick", "humanoid3d_backflip", "humanoid3d_crawl",
              "humanoid3d_roll", "humanoid3d_spin"]
EVAL_SEEDS = [0, 1, 2]
# the weights the tuning starts from (the built-in scene's choice) and its grid: each weight in
# turn is tried at 1/sqrt(10), 1 and sqrt(10) times its current value, the others held
START = dict(scl=100.0, kml=1.0, sp=0.01, scl2=100.0)
STEPS = [10 ** -0.5, 1.0, 10 ** 0.5]
# the picture: held-out view 0 of this evaluation run, ground truth vs these configurations
PICTURE = dict(clip="humanoid3d_spinkick", seed=0, configs=("photometric", "all"))
METRICS = ["psnr_heldout", "ssim_heldout", "kp3d_error", "pck2d", "jitter", "energy_ratio",
           "loss_share"]
LABELS = dict(psnr_heldout="PSNR held-out (dB)", ssim_heldout="SSIM held-out",
              kp3d_error="3-D kp error", pck2d="PCK@0.1 2-D", jitter="jitter",
              energy_ratio="motion energy / GT", loss_share="loss share")


def eval_configs(w: Dict[str, float]) -> Dict[str, Dict]:
    """The evaluated configurations: Config overrides for frozen weights ``w``."""
    off = dict(lambda_scl=0.0, lambda_kml=0.0, lambda_sp=0.0, scl_order=1)
    return {
        "photometric": off,
        "+scl": dict(off, lambda_scl=w["scl"]),
        "+kml": dict(off, lambda_kml=w["kml"]),
        "+sirenpose": dict(off, lambda_sp=w["sp"]),
        "scl+kml": dict(off, lambda_scl=w["scl"], lambda_kml=w["kml"]),
        "all": dict(off, lambda_scl=w["scl"], lambda_kml=w["kml"], lambda_sp=w["sp"]),
        "all, scl order 2": dict(off, lambda_scl=w["scl2"], lambda_kml=w["kml"], lambda_sp=w["sp"],
                                 scl_order=2),
        **{f"all, sp {label}": dict(off, lambda_scl=w["scl"], lambda_kml=w["kml"],
                                    lambda_sp=w["sp"], sp_schedule=schedule)
           for label, schedule in SP_VARIANTS.items()},
    }


# the SirenPose schedules of the study (docs/examples.md), by row label: Config.sp_schedule
SP_VARIANTS = {"warm-up": "warmup", "coarse-to-fine": "coarse-to-fine", "alias gate": "alias-gate"}
# the SirenPose study: the configurations compared with "scl+kml" (same weights, no SirenPose)
STUDY = ["scl+kml", "all"] + [f"all, sp {label}" for label in SP_VARIANTS] + ["all, scl order 2"]


def motion_energy(tracks: torch.Tensor) -> float:
    """Mean squared frame-to-frame displacement of ``[T, K, 3]`` tracks (units^2 / frame^2)."""
    return float((tracks[1:] - tracks[:-1]).pow(2).sum(-1).mean())


# --------------------------------------------------------------------------------------------
# runs
# --------------------------------------------------------------------------------------------
class Runner:
    """Trains (clip, seed, config) runs, caching scenes and saved results; ``jobs`` > 1 trains
    that many runs at once in worker processes (each with ``base.threads`` threads)."""

    def __init__(self, base, out: str, progress: bool, jobs: int = 1):
        self.base, self.out, self.progress, self.jobs = base, out, progress, jobs
        self._scenes = {}

    def _path(self, stage, clip, seed, name):
        return os.path.join(self.out, "runs", stage, clip, f"seed{seed}", _slug(name) + ".json")

    def _saved(self, stage, clip, seed, name, over) -> Optional[Dict]:
        from .run import rounded
        path = self._path(stage, clip, seed, name)
        if os.path.exists(path) and (not _pictured(stage, clip, seed, name)
                                     or os.path.exists(_render_path(path))):
            with open(path) as f:
                saved = json.load(f)
            if saved["overrides"] == rounded(over):
                return saved
        return None

    def results(self, stage: str, tasks: List, bar) -> List[Dict]:
        """The record of every ``(clip, seed, name, overrides)`` task, in order: the saved one,
        or :meth:`train`'s."""
        out = [self._saved(stage, *t) for t in tasks]
        bar.update(sum(r is not None for r in out))
        todo = [i for i, r in enumerate(out) if r is None]
        if self.jobs <= 1 or len(todo) <= 1:
            for i in todo:
                clip, seed, name, over = tasks[i]
                bar.set_postfix_str(f"{clip.replace('humanoid3d_', '')} seed {seed} {name}")
                out[i] = self.train(stage, *tasks[i])
                bar.update(1)
            return out
        import concurrent.futures as cf
        import multiprocessing as mp
        with cf.ProcessPoolExecutor(self.jobs, mp_context=mp.get_context("spawn"),
                                    initializer=_init_worker,
                                    initargs=(self.base, self.out)) as pool:
            futures = {pool.submit(_work, stage, *tasks[i]): i for i in todo}
            for fut in cf.as_completed(futures):
                out[futures[fut]] = fut.result()
                bar.update(1)
        return out

    def _scene(self, clip: str, seed: int):
        from .scene import make_scene
        key = (clip, seed)
        if key not in self._scenes:
            self._scenes = {key: make_scene(seed, dataclasses.replace(self.base.scene, motion=clip))}
        return self._scenes[key]

    def train(self, stage: str, clip: str, seed: int, name: str, over: Dict) -> Dict:
        """Train one run (``results`` has found no saved record of it) and save its record."""
        from .run import run, write_json
        path = self._path(stage, clip, seed, name)
        ds = self._scene(clip, seed).dataset
        cfg = dataclasses.replace(self.base, seed=seed, write_gif=False, write_plots=False, **over)
        res = run(cfg, ds, None, label=name, progress=self.progress)
        m, tm = res["record"]["metrics"], res["record"]["timing"]
        row = {k: m.get(k) for k in METRICS if k in m}
        gt_energy = motion_energy(ds.gt_joints3d)
        row["energy_ratio"] = motion_energy(res["tracks"]["pred3d"]) / gt_energy
        row["loss_share"] = tm["loss_share"]
        saved = dict(stage=stage, clip=clip, seed=seed, config=name, overrides=over, metrics=row,
                     all_metrics=m, timing=tm, gt_energy=gt_energy)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if _pictured(stage, clip, seed, name):
            import numpy as np
            from .viz import _to_uint8
            np.savez_compressed(_render_path(path), renders=_to_uint8(res["renders"]["heldout"][0]))
        write_json(path, saved)
        with open(path) as f:          # what a resumed suite would read back
            return json.load(f)


def _pictured(stage, clip, seed, name) -> bool:
    return stage == "eval" and (clip, seed) == (PICTURE["clip"], PICTURE["seed"]) and \
        name in PICTURE["configs"]


def _render_path(run_path: str) -> str:
    return run_path[:-len(".json")] + ".heldout.npz"


def picture(runner: Runner, path: str) -> bool:
    """Ground truth and the pictured configurations side by side on held-out view 0 of the
    pictured evaluation run (False when those runs are not in this suite)."""
    import numpy as np
    from .viz import _to_uint8, frame_strips
    clip, seed = PICTURE["clip"], PICTURE["seed"]
    files = {c: _render_path(runner._path("eval", clip, seed, c)) for c in PICTURE["configs"]}
    if not all(os.path.exists(f) for f in files.values()):
        return False
    ds = runner._scene(clip, seed).dataset
    rows = {"ground truth": _to_uint8(ds.heldout_images[0])}
    rows.update({c: np.load(f)["renders"] for c, f in files.items()})
    T = ds.num_frames
    frame_strips(path, rows, [round(i * (T - 1) / 5) for i in range(6)],
                 title=f"{clip.replace('humanoid3d_', '')}, seed {seed}, held-out view")
    return True


_WORKER: Optional[Runner] = None


def _init_worker(base, out):
    global _WORKER
    if base.threads:
        torch.set_num_threads(base.threads)
    _WORKER = Runner(base, out, progress=False)


def _work(stage, clip, seed, name, over):
    return _WORKER.train(stage, clip, seed, name, over)


def _label(over: Dict) -> str:
    """A tuning run's name: its weights and SCL order (equal settings share their runs)."""
    return (f"scl={over['lambda_scl']:.4g} (order {over['scl_order']}), kml={over['lambda_kml']:.4g}, "
            f"sp={over['lambda_sp']:.4g}")


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_") or "run"


def _bar(total: int, desc: str, show: bool):
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, disable=not show, dynamic_ncols=True)


# --------------------------------------------------------------------------------------------
# statistics
# --------------------------------------------------------------------------------------------
def _mean_std(values: List[float]):
    vals = [v for v in values if v is not None and math.isfinite(v)]
    if not vals:
        return None, None, 0
    return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else 0.0), len(vals)


def summarise(results: List[Dict], configs: List[str], reference: str = "photometric") -> Dict:
    """Per configuration: mean and std of every metric; paired against ``reference``: the
    per-run difference (PSNR, SSIM, PCK, energy ratio) or relative change (errors, jitter)."""
    by = {(r["clip"], r["seed"], r["config"]): r["metrics"] for r in results}
    runs = sorted({(c, s) for c, s, _ in by})
    out = dict(runs=len(runs), reference=reference, configs={})
    for name in configs:
        rows = [by[(c, s, name)] for c, s in runs if (c, s, name) in by]
        stats = {k: dict(zip(("mean", "std", "n"), _mean_std([r.get(k) for r in rows]))) for k in METRICS}
        paired = {}
        for k in METRICS:
            diffs = []
            for c, s in runs:
                a, p = by.get((c, s, name), {}).get(k), by.get((c, s, reference), {}).get(k)
                if a is None or p is None:
                    continue
                diffs.append(a / p - 1 if k in ("kp3d_error", "jitter") and p else a - p)
            mean, std, n = _mean_std(diffs)
            lower = sum(d < 0 for d in diffs)
            paired[k] = dict(mean=mean, std=std, n=n, lower=lower)
        per_clip = {}
        for clip in sorted({c for c, _ in runs}):
            vals = [by[(c, s, name)] for c, s in runs if c == clip and (c, s, name) in by]
            per_clip[clip] = {k: _mean_std([v.get(k) for v in vals])[0] for k in METRICS}
        out["configs"][name] = dict(stats=stats, paired=paired, per_clip=per_clip)
    return out


def criteria(summary: Dict, name: str = "all") -> Optional[Dict]:
    """The protocol's four criteria for ``name`` against photometric-only."""
    if name not in summary["configs"] or "photometric" not in summary["configs"]:
        return None
    pa, st = summary["configs"][name]["paired"], summary["configs"][name]["stats"]
    jit, kp, ps = pa["jitter"]["mean"], pa["kp3d_error"]["mean"], pa["psnr_heldout"]["mean"]
    en = st["energy_ratio"]["mean"]
    ok = lambda v, test: None if v is None else bool(test(v))  # noqa: E731
    return dict(jitter_change=jit, jitter_ok=ok(jit, lambda v: v <= -0.30),
                kp3d_change=kp, kp3d_ok=ok(kp, lambda v: v < 0),
                psnr_diff=ps, psnr_ok=ok(ps, lambda v: v >= -0.5),
                energy_ratio=en, energy_ok=ok(en, lambda v: 0.8 <= v <= 1.2))


def helps(study: Dict, name: str) -> Optional[bool]:
    """The SirenPose study's rule against ``scl+kml``: a lower mean 3-D keypoint error, lower in
    at least 13 of 18 paired runs (the same share of fewer runs, rounded up: a one-sided sign
    test at p < 0.05 for 18), and a mean held-out PSNR no more than 0.1 dB lower."""
    pa = study["configs"].get(name, {}).get("paired")
    if not pa or pa["kp3d_error"]["mean"] is None or pa["psnr_heldout"]["mean"] is None:
        return None
    n = pa["kp3d_error"]["n"]
    return bool(pa["kp3d_error"]["mean"] < 0 and pa["kp3d_error"]["lower"] >= math.ceil(13 * n / 18)
                and pa["psnr_heldout"]["mean"] >= -0.1)


def scl_order_choice(summary: Dict) -> Optional[int]:
    """The protocol's SCL order: the one of "all" (order 1) and "all, scl order 2" that meets
    more of the four criteria; a tie goes to the lower mean 3-D keypoint error."""
    c1, c2 = criteria(summary, "all"), criteria(summary, "all, scl order 2")
    if c1 is None or c2 is None:
        return None
    met = [sum(bool(c[k]) for k in ("jitter_ok", "kp3d_ok", "psnr_ok", "energy_ok")) for c in (c1, c2)]
    if met[0] != met[1]:
        return 1 if met[0] > met[1] else 2
    kp = [summary["configs"][n]["stats"]["kp3d_error"]["mean"] for n in ("all", "all, scl order 2")]
    return 1 if kp[0] <= kp[1] else 2


def _f(v, digits=3):
    if v is None:
        return "n/a"
    return f"{v:.{digits}f}" if abs(v) >= 1e-3 or v == 0 else f"{v:.2e}"


_DIGITS = dict(psnr_heldout=2, kp3d_error=4, jitter=4)


def markdown(summary: Dict, meta: Dict) -> str:
    configs = list(summary["configs"])
    head = "| config | runs | " + " | ".join(LABELS[k] for k in METRICS) + " |"
    lines = [meta["title"], "", "Mean ± standard deviation over the runs (clips x seeds).", "",
             head, "|" + "---|" * (len(METRICS) + 2)]
    for name in configs:
        st = summary["configs"][name]["stats"]
        cells = []
        for k in METRICS:
            s = st[k]
            scale = 100 if k == "loss_share" else 1
            unit = " %" if k == "loss_share" else ""
            d = 1 if k == "loss_share" else _DIGITS.get(k, 3)
            cells.append("n/a" if s["mean"] is None else
                         f"{_f(scale * s['mean'], d)} ± {_f(scale * s['std'], d)}{unit}")
        lines.append(f"| {name} | {st['kp3d_error']['n']} | " + " | ".join(cells) + " |")
    ref = summary.get("reference", "photometric")
    lines += ["", f"Paired against `{ref}`, per run (same clip, seed and initialisation): "
              "the difference for PSNR, SSIM, PCK and the energy ratio, the relative change for "
              "the 3-D keypoint error and jitter; mean ± std, and in how many runs it went down.", "",
              "| config | Δ PSNR (dB) | Δ SSIM | 3-D kp error change | Δ PCK | jitter change "
              "| Δ energy ratio |", "|---|---|---|---|---|---|---|"]
    for name in configs:
        if name == ref:
            continue
        pa = summary["configs"][name]["paired"]

        def cell(k, pct=False):
            p = pa[k]
            if p["mean"] is None:
                return "n/a"
            if pct:
                return f"{100 * p['mean']:+.1f} ± {100 * p['std']:.1f} % (lower in {p['lower']}/{p['n']})"
            return f"{p['mean']:+.3f} ± {p['std']:.3f} (lower in {p['lower']}/{p['n']})"
        lines.append(f"| {name} | {cell('psnr_heldout')} | {cell('ssim_heldout')} | "
                     f"{cell('kp3d_error', True)} | {cell('pck2d')} | {cell('jitter', True)} | "
                     f"{cell('energy_ratio')} |")
    clips = sorted({c for n in configs for c in summary["configs"][n]["per_clip"]})
    lines += ["", "Per clip (mean over seeds): 3-D keypoint error / held-out PSNR.", "",
              "| config | " + " | ".join(c.replace("humanoid3d_", "") for c in clips) + " |",
              "|" + "---|" * (len(clips) + 1)]
    for name in configs:
        pc = summary["configs"][name]["per_clip"]
        lines.append(f"| {name} | " + " | ".join(
            f"{_f(pc[c]['kp3d_error'], 4)} / {_f(pc[c]['psnr_heldout'], 2)}" if c in pc else "n/a"
            for c in clips) + " |")
    crit = criteria(summary) if ref == "photometric" else None
    if crit:
        yn = lambda v: "n/a" if v is None else ("yes" if v else "NO")  # noqa: E731
        pct = lambda v: "n/a" if v is None else f"{100 * v:+.1f} %"  # noqa: E731
        lines += ["", "All losses against photometric-only (the protocol's criteria):",
                  f"- jitter {pct(crit['jitter_change'])} on average (target: at most -30 %): "
                  f"{yn(crit['jitter_ok'])}",
                  f"- 3-D keypoint error {pct(crit['kp3d_change'])} on average (target: lower): "
                  f"{yn(crit['kp3d_ok'])}",
                  f"- held-out PSNR {_f(crit['psnr_diff'], 2)} dB on average (target: at least "
                  f"-0.5 dB): {yn(crit['psnr_ok'])}",
                  f"- motion energy {_f(crit['energy_ratio'], 2)} x the ground truth's on average "
                  f"(target: 0.8 to 1.2): {yn(crit['energy_ok'])}"]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# the two stages
# --------------------------------------------------------------------------------------------
def _score(summary: Dict, name: str):
    """The tuning rule: admissible if the mean PSNR change is >= -0.5 dB and the mean energy
    ratio is in [0.8, 1.2]; among the admissible, the lowest mean 3-D keypoint error change,
    then the lowest jitter change. Returns a sort key (smaller is better)."""
    c = summary["configs"][name]
    ps, en = c["paired"]["psnr_heldout"]["mean"], c["stats"]["energy_ratio"]["mean"]
    kp, jit = c["paired"]["kp3d_error"]["mean"], c["paired"]["jitter"]["mean"]
    admissible = ps is not None and ps >= -0.5 and en is not None and 0.8 <= en <= 1.2
    return (0 if admissible else 1, kp if kp is not None else math.inf,
            jit if jit is not None else math.inf)


def _grid_runs(runner, clips, seeds, configs, stage, bar):
    return runner.results(stage, [(clip, seed, name, over) for clip in clips for seed in seeds
                                  for name, over in configs.items()], bar)


def tune(runner, clips, seeds, show) -> Dict:
    """Coordinate search over scl, kml, sp (all losses, SCL order 1), then scl2 (order 2)."""
    w = dict(START)
    log = []
    bar = _bar(len(clips) * len(seeds) * (1 + len(STEPS) * 4), "tune", show)
    results = _grid_runs(runner, clips, seeds, {"photometric": eval_configs(w)["photometric"]},
                         "tune", bar)
    for key in ("scl", "kml", "sp", "scl2"):
        cands = {}
        for step in STEPS:
            trial = dict(w, **{key: float(f"{w[key] * step:.3g}")})   # exact in the JSON files
            over = eval_configs(trial)["all, scl order 2" if key == "scl2" else "all"]
            cands[_label(over)] = (trial, over)
        res = _grid_runs(runner, clips, seeds, {k: v[1] for k, v in cands.items()}, "tune", bar)
        results += res
        summary = summarise(results, ["photometric"] + list(cands))
        best = min(cands, key=lambda k: _score(summary, k))
        log.append(dict(weight=key, tried={k: summary["configs"][k]["paired"] for k in cands},
                        scores={k: list(_score(summary, k)) for k in cands}, chosen=best))
        w = cands[best][0]
    bar.close()
    return dict(weights=w, log=log, results=results)


def main(args, base) -> int:
    from .run import write_json
    os.makedirs(args.out, exist_ok=True)
    tune_clips, tune_seeds = TUNING_CLIPS, TUNING_SEEDS
    eval_clips, eval_seeds = EVAL_CLIPS, EVAL_SEEDS
    if args.smoke:     # proves the machinery only: smoke preset, one seed, one or two clips
        tune_clips, tune_seeds, eval_clips, eval_seeds = tune_clips[:1], [0], eval_clips[:2], [0]
        if base.preset != "smoke" or args.iters is None:
            from .config import preset
            base = preset("smoke", iters=args.iters or 20, threads=base.threads,
                          scl_order=base.scl_order)
    runner = Runner(base, args.out, bool(args.progress), jobs=args.jobs)
    show = True
    meta = dict(preset=base.preset, iters=base.iters, smoke=bool(args.smoke),
                scene=dataclasses.asdict(base.scene))
    weights_path = os.path.join(args.out, "frozen_weights.json")
    if args.stage in ("tune", "all"):
        tuned = tune(runner, tune_clips, tune_seeds, show)
        write_json(os.path.join(args.out, "tune.json"),
                   dict(meta, clips=tune_clips, seeds=tune_seeds, start=START, steps=STEPS,
                        weights=tuned["weights"], log=tuned["log"]))
        write_json(weights_path, tuned["weights"])
        print("frozen weights: " + json.dumps(tuned["weights"]))
    if args.stage in ("eval", "all"):
        path = args.weights or weights_path
        if not os.path.exists(path):
            print(f"error: --stage eval needs the frozen weights: run --stage tune first or give "
                  f"--weights FILE (no {path})", flush=True)
            return 2
        with open(path) as f:
            w = json.load(f)
        configs = eval_configs(w)
        bar = _bar(len(eval_clips) * len(eval_seeds) * len(configs), "eval", show)
        results = _grid_runs(runner, eval_clips, eval_seeds, configs, "eval", bar)
        bar.close()
        summary = summarise(results, list(configs))
        study = summarise(results, [c for c in STUDY if c in configs], reference="scl+kml")
        title = (f"Motion-capture protocol, evaluation clips ({', '.join(eval_clips)}) x seeds "
                 f"{eval_seeds}; preset `{base.preset}`, {base.iters} iterations; frozen weights "
                 + ", ".join(f"{k}={v:.4g}" for k, v in w.items())
                 + (". SMOKE RUN: proves the machinery only, not a result." if args.smoke else "."))
        write_json(os.path.join(args.out, "mocap.json"),
                   dict(meta, clips=eval_clips, seeds=eval_seeds, weights=w, summary=summary,
                        criteria=criteria(summary),
                        criteria_scl_order2=criteria(summary, "all, scl order 2"),
                        scl_order_choice=scl_order_choice(summary), study=study,
                        study_helps={n: helps(study, n) for n in study["configs"] if n != "scl+kml"},
                        runs=results))
        verdicts = [f"- `{n}`: " + {True: "helps", False: "does not help", None: "n/a"}[helps(study, n)]
                    for n in study["configs"] if n != "scl+kml"]
        md = markdown(summary, dict(title=title)) + "\n" + markdown(study, dict(
            title="SirenPose study: every configuration with SirenPose against the same losses "
                  "without it (`scl+kml`).")) + (
            "\nThe study's rule (lower mean 3-D keypoint error, lower in at least 13 of 18 runs, "
            "mean held-out PSNR at most 0.1 dB lower):\n\n" + "\n".join(verdicts) + "\n")
        if picture(runner, os.path.join(args.out, "mocap_heldout.png")):
            md += ("\nHeld-out view of `" + PICTURE["clip"] + "`, seed " + str(PICTURE["seed"])
                   + ": ground truth, " + " and ".join(PICTURE["configs"])
                   + " (`mocap_heldout.png`).\n")
        with open(os.path.join(args.out, "mocap.md"), "w") as f:
            f.write(md)
        print(md)
    return 0
