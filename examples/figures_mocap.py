"""The motion-capture protocol's published figures, from the committed suite results:

* ``mocap/mocap.json``, ``mocap/frozen_weights.json``: ``python examples/ablation.py --suite mocap
  --jobs 2 --out examples/results/mocap``;
* ``mocap/step_profile.json``: ``python examples/profile_step.py --out examples/results/mocap``.
"""
import json
import os

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "mocap")
_MARK = {True: "✓", False: "✗", None: "n/a"}


def _read(path):
    with open(path) as f:
        return json.load(f)


def _load(name):
    return _read(os.path.join(RESULTS, name))


def _pm(p, scale=1.0, fmt="+.2f", unit=""):
    return f"{format(scale * p['mean'], fmt)} ± {format(scale * p['std'], fmt.lstrip('+'))}{unit}"


def criteria() -> str:
    """"all" (SCL order 1 and 2) against photometric-only: the protocol's four criteria."""
    d = _load("mocap.json")
    n = d["summary"]["runs"]
    lines = [f"| all losses vs photometric-only ({n} paired runs) | jitter (≥ 30 % lower) | "
             "3-D kp error (lower) | held-out PSNR (≥ −0.5 dB) | motion energy / GT (0.8–1.2) |",
             "|---|---|---|---|---|"]
    for name, crit in (("SCL order 1", d["criteria"]), ("SCL order 2", d["criteria_scl_order2"])):
        lines.append(f"| {name} | {100 * crit['jitter_change']:+.1f} % {_MARK[crit['jitter_ok']]} | "
                     f"{100 * crit['kp3d_change']:+.1f} % {_MARK[crit['kp3d_ok']]} | "
                     f"{crit['psnr_diff']:+.2f} dB {_MARK[crit['psnr_ok']]} | "
                     f"{crit['energy_ratio']:.2f} {_MARK[crit['energy_ok']]} |")
    return "\n".join(lines)


def _kp(pa) -> str:
    return _pm(pa["kp3d_error"], 100, "+.1f", " %")


def configs() -> str:
    """Every configuration, paired against photometric-only (mean ± std over the runs)."""
    s = _load("mocap.json")["summary"]
    lines = ["| config | Δ PSNR held-out (dB) | 3-D kp error change | jitter change | "
             "motion energy / GT | loss share |", "|---|---|---|---|---|---|"]
    for name, c in s["configs"].items():
        pa, st = c["paired"], c["stats"]
        cells = ["–"] * 3 if name == s["reference"] else [
            _pm(pa["psnr_heldout"]),
            f"{_kp(pa)} (lower in {pa['kp3d_error']['lower']}/{pa['kp3d_error']['n']})",
            _pm(pa["jitter"], 100, "+.0f", " %")]
        cells += [f"{st['energy_ratio']['mean']:.2f} ± {st['energy_ratio']['std']:.2f}",
                  f"{100 * st['loss_share']['mean']:.1f} %"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def study() -> str:
    """The SirenPose study: each configuration with SirenPose against scl+kml."""
    d = _load("mocap.json")
    lines = ["| against `scl+kml` | 3-D kp error change | lower in | Δ PSNR held-out (dB) | helps? |",
             "|---|---|---|---|---|"]
    for name, verdict in d["study_helps"].items():
        pa = d["study"]["configs"][name]["paired"]
        lines.append(f"| {name} | {_kp(pa)} | {pa['kp3d_error']['lower']}/{pa['kp3d_error']['n']} | "
                     f"{_pm(pa['psnr_heldout'])} | {'yes' if verdict else 'no'} |")
    return "\n".join(lines)


def scl_order() -> str:
    """The SCL-order decision of the protocol (the criteria met by each order)."""
    d = _load("mocap.json")
    keys = ("jitter_ok", "kp3d_ok", "psnr_ok", "energy_ok")
    met = [sum(bool(d[c][k]) for k in keys) for c in ("criteria", "criteria_scl_order2")]
    kp = [d["summary"]["configs"][n]["stats"]["kp3d_error"]["mean"] for n in ("all", "all, scl order 2")]
    return (f"order 1 meets {met[0]} of the four criteria and order 2 meets {met[1]} (mean 3-D "
            f"keypoint error {kp[0]:.4f} against {kp[1]:.4f}), so the protocol picks order "
            f"{d['scl_order_choice']}")


def weights() -> str:
    w = _load("frozen_weights.json")
    return (f"λ_scl = {w['scl']:.3g} (order 1), λ_kml = {w['kml']:.3g}, λ_sp = {w['sp']:.3g}, "
            f"λ_scl = {w['scl2']:.3g} (order 2)")


def step_profile() -> str:
    d = _load("step_profile.json")
    step = d["step_ms_profiled"]
    parts = ", ".join(f"`{k}` {v:.1f} ms ({100 * v / step:.0f} %)" for k, v in d["regions_ms"].items())
    return (f"{step:.1f} ms per step under the profiler (`{d['motion']}`, preset `{d['preset']}`, "
            f"{d['threads']} thread): {parts}")


def cost() -> str:
    """How long the protocol's runs trained, from their saved timings."""
    import glob
    parts = []
    for stage in ("tune", "eval"):
        runs = [_read(f) for f in glob.glob(os.path.join(RESULTS, "runs", stage, "*", "*", "*.json"))]
        secs = sum(r["timing"]["train_seconds"] for r in runs)
        per_iter = 1e3 * secs / sum(r["timing"]["train_seconds"] / r["timing"]["sec_per_iter"] for r in runs)
        parts.append(f"{len(runs)} {stage} runs trained for {secs / 3600:.2f} CPU-hours "
                     f"({per_iter:.0f} ms per step on average)")
    return "; ".join(parts)


BLOCKS = {
    "mocap-cost": cost,
    "mocap-criteria": criteria,
    "mocap-configs": configs,
    "mocap-study": study,
    "mocap-weights": weights,
    "mocap-scl-order": scl_order,
    "mocap-step-profile": step_profile,
}
