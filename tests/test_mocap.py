"""Motion-capture scenes (examples/fourdgs/mocap.py): pybullet's humanoid clips and .npy
joint tracks driving the synthetic figure, and the error when pybullet is missing."""
import dataclasses
import importlib.util
import json
import os
import sys

import numpy as np
import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples")
if EXAMPLES not in sys.path:
    sys.path.insert(0, EXAMPLES)

from fourdgs import mocap  # noqa: E402
from fourdgs.scene import _NODE_NAMES, SceneConfig, make_keypoint_tracks, make_scene  # noqa: E402

TINY = SceneConfig(num_frames=6, image_size=24, num_gaussians=300)
# the figure's rigid segments in COCO-17 (both ends on one URDF link, or fixed face offsets);
# shoulder-hip and ear-shoulder edges bend at the chest and neck joints, so they are not here
RIGID = [(5, 7), (7, 9), (6, 8), (8, 10), (11, 13), (13, 15), (12, 14), (14, 16), (11, 12),
         (5, 6), (0, 1), (0, 2), (1, 3), (2, 4), (3, 4)]
PROTOCOL_CLIPS = ["humanoid3d_walk", "humanoid3d_run", "humanoid3d_jump", "humanoid3d_punch",
                  "humanoid3d_kick", "humanoid3d_spinkick", "humanoid3d_backflip",
                  "humanoid3d_crawl", "humanoid3d_roll", "humanoid3d_spin"]
STARTS_LYING = {"humanoid3d_crawl", "humanoid3d_getup_facedown", "humanoid3d_getup_faceup"}
needs_pybullet = pytest.mark.skipif(
    importlib.util.find_spec("pybullet") is None,
    reason="pybullet is not installed (pip install pybullet==3.2.7)")


def _lengths(tracks, pairs):
    a, b = zip(*pairs)
    return np.linalg.norm(np.asarray(tracks)[:, list(a)] - np.asarray(tracks)[:, list(b)], axis=-1)


def _check_skinning(scene):
    """Every limb's Gaussians move rigidly with its bone (their distances to both ends do not
    change over time) and sit around it: close to the segment's axis, spread along it."""
    ds, g = scene.dataset, scene.gaussians
    joints = ds.gt_joints3d.double()
    ends = {"l_shoulder": (5, 7), "l_elbow": (7, 9), "r_shoulder": (6, 8), "r_elbow": (8, 10),
            "l_hip": (11, 13), "l_knee": (13, 15), "r_hip": (12, 14), "r_knee": (14, 16)}
    for node, (a, b) in ends.items():
        sel = g.node == _NODE_NAMES.index(node)
        assert sel.sum() > 0, node
        means = scene.gt_means.double()[:, sel]                        # [T, n, 3]
        for k in (a, b):
            d = (means - joints[:, k:k + 1]).norm(dim=-1)
            assert (d - d[:1]).abs().max() < 2e-4, (node, k)
        bone = joints[:, b:b + 1] - joints[:, a:a + 1]
        length = bone.norm(dim=-1, keepdim=True)
        rel = means - joints[:, a:a + 1]
        along = (rel * bone).sum(-1, keepdim=True) / length                # [T, n, 1]
        off_axis = (rel - along * bone / length).norm(dim=-1)
        assert float(off_axis.mean()) < 0.3 * float(length.mean()), node
        frac = along / length
        assert 0.15 < float(frac.mean()) < 0.85 and -0.5 < float(frac.min()) < float(frac.max()) < 1.6, node


# ------------------------------------------------------------------------------ .npy tracks
def test_scene_from_npy_tracks(tmp_path):
    src = make_keypoint_tracks(5, SceneConfig(num_frames=11)).gt3d.double().numpy()
    path = tmp_path / "tracks.npy"
    np.save(path, src)
    scene = make_scene(2, dataclasses.replace(TINY, motion=str(path)))
    ds = scene.dataset
    assert ds.num_frames == TINY.num_frames and ds.keypoints.shape == (TINY.num_frames, 17, 2)
    # resampled to the scene's frames, then only turned, scaled and moved: within every frame
    # the pairwise distances are the source's (linearly resampled) times one constant
    want = src[np.linspace(0, 10, TINY.num_frames).round().astype(int)]   # 11 -> 6: exact frames
    got = ds.gt_joints3d.double().numpy()
    dw = np.linalg.norm(want[:, :, None] - want[:, None], axis=-1)
    dg = np.linalg.norm(got[:, :, None] - got[:, None], axis=-1)
    ratio = dg[dw > 1e-3] / dw[dw > 1e-3]
    assert np.ptp(ratio) < 1e-4 * ratio.mean()
    _check_skinning(scene)
    # the figure faces the cameras' +z side at the first frame and fits the views
    assert float(ds.gt_joints3d[0, 11, 0] - ds.gt_joints3d[0, 12, 0]) > 0
    inside = ((ds.gt_keypoints2d >= 0) & (ds.gt_keypoints2d < TINY.image_size)).all(-1)
    assert inside.all()
    assert (ds.heldout_images < 0.9).any(-1).sum() > 0.05 * ds.heldout_images[..., 0].numel()


@pytest.mark.parametrize("shape", [(4, 16, 3), (4, 17, 2), (1, 17, 3)])
def test_bad_npy_tracks_are_reported(tmp_path, shape):
    path = tmp_path / "bad.npy"
    np.save(path, np.ones(shape))
    with pytest.raises(mocap.MotionError, match=r"\[T, 17, 3\].*got \[" + str(shape[0])):
        make_scene(0, dataclasses.replace(TINY, motion=str(path)))


def test_the_built_in_motion_does_not_touch_mocap(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("mocap used without a motion")
    monkeypatch.setattr(mocap, "load_tracks", boom)
    make_scene(0, TINY)


# ------------------------------------------------------------------------------ missing pybullet
def test_missing_pybullet_says_how_to_install(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "pybullet", None)     # makes `import pybullet` fail
    with pytest.raises(mocap.PybulletMissing, match=r"pip install pybullet==3\.2\.7"):
        make_scene(0, dataclasses.replace(TINY, motion="humanoid3d_walk"))
    import train_4dgs
    assert train_4dgs.main(["--preset", "smoke", "--motion", "humanoid3d_walk", "--out",
                            os.devnull]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "pip install pybullet==3.2.7" in err


# ------------------------------------------------------------------------------ pybullet clips
@needs_pybullet
def test_every_clip_gives_an_upright_rigid_skeleton():
    names = mocap.clip_names()
    assert len(names) == 15 and set(PROTOCOL_CLIPS) <= set(names)
    for name in names:
        frames = mocap.read_clip(name)
        tracks = mocap.clip_tracks(name, min(len(frames), 40))
        assert np.isfinite(tracks).all(), name
        lengths = _lengths(tracks, RIGID)
        assert np.abs(lengths - lengths[:1]).max() < 1e-5, name
        # the figure's left is on its left: (left hip - right hip) . (up x forward) > 0
        up = tracks[:, 5:7].mean(1) - tracks[:, 11:13].mean(1)
        fwd = tracks[:, 0] - tracks[:, 3:5].mean(1)
        left = tracks[:, 11] - tracks[:, 12]
        assert ((left * np.cross(up, fwd)).sum(-1) > 0).all(), name
        if name not in STARTS_LYING:   # upright at the start, y up: head, shoulders, hips, a foot
            y = tracks[0, :, 1]
            assert y[0] > y[5:7].max() and y[5:7].min() > y[11:13].max() > y[11:13].min() > y[15:].min(), name
    with pytest.raises(mocap.MotionError, match="humanoid3d_walk.*got 'humanoid3d_moonwalk'"):
        mocap.read_clip("humanoid3d_moonwalk")


@needs_pybullet
def test_resampling_keeps_the_clip_and_its_timing():
    frames = mocap.read_clip("humanoid3d_walk")
    same = mocap.resample_clip(frames, len(frames))
    # the walk's frames are evenly spaced, so resampling at its own frame count gives them back
    # (up to the renormalisation of quaternions stored to six decimals)
    np.testing.assert_allclose(same[:, 1:], frames[:, 1:], atol=2e-6)
    half = mocap.resample_clip(frames, 2 * len(frames) - 1)
    np.testing.assert_allclose(half[::2, 1:], frames[:, 1:], atol=2e-6)
    q = half[:, 4:8]
    np.testing.assert_allclose(np.linalg.norm(q, axis=-1), 1.0, atol=1e-9)


@needs_pybullet
def test_scene_from_a_short_clip():
    cfg = dataclasses.replace(TINY, motion="humanoid3d_run")
    scene = make_scene(1, cfg)
    ds = scene.dataset
    torch.testing.assert_close(ds.gt_joints3d.double(),
                               mocap.load_tracks("humanoid3d_run", TINY.num_frames), rtol=0, atol=1e-6)
    _check_skinning(scene)
    lengths = _lengths(ds.gt_joints3d.double(), RIGID)
    assert np.abs(lengths - lengths[:1]).max() < 1e-5
    # the detector's keypoints are the ground truth's plus noise, drops and outliers, as before
    vis = ds.visibility > 0
    err = (ds.keypoints - ds.gt_keypoints2d).norm(dim=-1)[vis]
    assert 0.5 * TINY.detector_drop < 1 - float(vis.float().mean()) < 3 * TINY.detector_drop
    assert float(err.median()) < 4 * TINY.detector_noise * TINY.image_size
    # the seed draws the rest of the scene; the motion is the clip's
    other = make_scene(2, cfg).dataset
    assert torch.equal(other.gt_joints3d, ds.gt_joints3d)
    assert not torch.equal(other.keypoints, ds.keypoints)
    assert torch.equal(make_scene(1, cfg).dataset.images, ds.images)


@needs_pybullet
def test_train_4dgs_runs_on_a_clip(tmp_path):
    import train_4dgs
    out = tmp_path / "run"
    assert train_4dgs.main(["--preset", "smoke", "--motion", "humanoid3d_jump", "--iters", "3",
                            "--no-progress", "--out", str(out)]) == 0
    rec = json.loads((out / "metrics.json").read_text())
    assert rec["config"]["scene"]["motion"] == "humanoid3d_jump"
    assert np.isfinite(rec["metrics"]["kp3d_error"])


# ------------------------------------------------------------------------------ the protocol suite
def _fake_results(values):
    """``values[(clip, seed, config)] = dict(metric=...)`` -> the suite's result records."""
    return [dict(clip=c, seed=s, config=n, metrics=m) for (c, s, n), m in values.items()]


def test_summary_pairs_each_run_with_its_photometric_twin():
    from fourdgs import suite
    rng = np.random.default_rng(0)
    values, photo, allv = {}, {}, {}
    for clip in ("a", "b"):
        for seed in (0, 1, 2):
            p = dict(psnr_heldout=rng.uniform(12, 16), ssim_heldout=0.6, kp3d_error=rng.uniform(0.2, 0.3),
                     pck2d=0.8, jitter=rng.uniform(0.01, 0.03), energy_ratio=1.0, loss_share=0.0)
            a = dict(p, psnr_heldout=p["psnr_heldout"] - rng.uniform(0, 0.8),
                     kp3d_error=p["kp3d_error"] * rng.uniform(0.8, 1.0),
                     jitter=p["jitter"] * rng.uniform(0.5, 0.8), energy_ratio=rng.uniform(0.7, 1.0))
            values[(clip, seed, "photometric")], values[(clip, seed, "all")] = p, a
            photo[(clip, seed)], allv[(clip, seed)] = p, a
    summary = suite.summarise(_fake_results(values), ["photometric", "all"])
    keys = sorted(photo)
    rel_jit = [allv[k]["jitter"] / photo[k]["jitter"] - 1 for k in keys]
    d_psnr = [allv[k]["psnr_heldout"] - photo[k]["psnr_heldout"] for k in keys]
    pa, st = summary["configs"]["all"]["paired"], summary["configs"]["all"]["stats"]
    assert summary["runs"] == 6 and pa["jitter"]["n"] == 6
    assert pa["jitter"]["mean"] == pytest.approx(np.mean(rel_jit))
    assert pa["jitter"]["std"] == pytest.approx(np.std(rel_jit, ddof=1))
    assert pa["psnr_heldout"]["mean"] == pytest.approx(np.mean(d_psnr))
    assert pa["psnr_heldout"]["lower"] == sum(d < 0 for d in d_psnr)
    assert st["kp3d_error"]["mean"] == pytest.approx(np.mean([allv[k]["kp3d_error"] for k in keys]))
    assert summary["configs"]["all"]["per_clip"]["b"]["jitter"] == pytest.approx(
        np.mean([allv[("b", s)]["jitter"] for s in range(3)]))
    crit = suite.criteria(summary)
    assert crit["jitter_ok"] == (np.mean(rel_jit) <= -0.3) and crit["kp3d_ok"]
    assert crit["psnr_ok"] == (np.mean(d_psnr) >= -0.5)
    assert crit["energy_ok"] == (0.8 <= np.mean([allv[k]["energy_ratio"] for k in keys]) <= 1.2)
    md = suite.markdown(summary, dict(title="t"))
    assert "| all | 6 |" in md and "lower in" in md and "| a | b |" in md


@pytest.mark.parametrize("jitter_scale, ok", [(0.69, True), (0.71, False)])
def test_the_jitter_criterion_sits_at_30_percent(jitter_scale, ok):
    from fourdgs import suite
    base = dict(psnr_heldout=14.0, ssim_heldout=0.6, kp3d_error=0.2, pck2d=0.8, jitter=0.02,
                energy_ratio=1.0, loss_share=0.0)
    values = {("a", 0, "photometric"): base, ("a", 0, "all"): dict(base, jitter=0.02 * jitter_scale)}
    assert suite.criteria(suite.summarise(_fake_results(values), ["photometric", "all"]))["jitter_ok"] is ok


def _study(kp_scales, psnr_shift):
    """18 paired runs of "all, sp X" against "scl+kml" with the given keypoint-error factors."""
    from fourdgs import suite
    base = dict(psnr_heldout=14.0, ssim_heldout=0.6, kp3d_error=0.2, pck2d=0.8, jitter=0.02,
                energy_ratio=1.0, loss_share=0.0)
    values = {}
    for i, scale in enumerate(kp_scales):
        values[(f"c{i // 3}", i % 3, "scl+kml")] = base
        values[(f"c{i // 3}", i % 3, "all, sp X")] = dict(base, kp3d_error=0.2 * scale,
                                                          psnr_heldout=14.0 + psnr_shift)
    return suite.summarise(_fake_results(values), ["scl+kml", "all, sp X"], reference="scl+kml")


@pytest.mark.parametrize("lower, psnr_shift, verdict", [
    (13, 0.0, True),      # 13 of 18 lower: the sign test's threshold
    (12, 0.0, False),     # 12 of 18: not enough
    (13, -0.11, False),   # PSNR more than 0.1 dB lower
    (13, -0.09, True),
])
def test_the_sirenpose_study_rule(lower, psnr_shift, verdict):
    from fourdgs import suite
    scales = [0.9] * lower + [1.01] * (18 - lower)
    assert suite.helps(_study(scales, psnr_shift), "all, sp X") is verdict
    # a lower count with a higher mean error does not help either
    assert suite.helps(_study([0.999] * lower + [1.5] * (18 - lower), 0.0), "all, sp X") is False


@pytest.mark.parametrize("order2, choice", [
    (dict(jitter=0.01), 2),                            # order 2 meets one criterion more
    (dict(psnr_heldout=10.0), 1),                      # order 2 misses PSNR
    (dict(kp3d_error=0.149), 2),                       # a tie on criteria: lower error wins
    (dict(kp3d_error=0.151), 1),
])
def test_the_scl_order_rule(order2, choice):
    from fourdgs import suite
    photo = dict(psnr_heldout=14.0, ssim_heldout=0.6, kp3d_error=0.2, pck2d=0.8, jitter=0.02,
                 energy_ratio=1.0, loss_share=0.0)
    order1 = dict(photo, kp3d_error=0.15, jitter=0.016)            # misses only the jitter target
    values = {("a", 0, "photometric"): photo, ("a", 0, "all"): order1,
              ("a", 0, "all, scl order 2"): dict(order1, **order2)}
    summary = suite.summarise(_fake_results(values), ["photometric", "all", "all, scl order 2"])
    assert suite.scl_order_choice(summary) == choice


def test_motion_energy_scales_with_speed():
    from fourdgs import suite
    track = torch.randn(7, 17, 3, dtype=torch.float64)
    assert suite.motion_energy(2 * track) == pytest.approx(4 * suite.motion_energy(track))
    assert suite.motion_energy(track[:1].expand(7, 17, 3)) == 0.0


@needs_pybullet
def test_the_suite_smoke_runs_writes_its_tables_and_resumes(tmp_path, monkeypatch):
    import ablation
    from fourdgs import run as run_module
    out = str(tmp_path / "suite")
    assert ablation.main(["--suite", "mocap", "--stage", "eval", "--smoke", "--out", out]) == 2
    assert ablation.main(["--suite", "mocap", "--smoke", "--iters", "3", "--out", out]) == 0
    first = json.loads((tmp_path / "suite" / "mocap.json").read_text())
    assert len(first["runs"]) == 2 * 10 and first["smoke"] is True
    assert first["study"]["reference"] == "scl+kml"
    schedules = {"all, sp warm-up", "all, sp coarse-to-fine", "all, sp alias gate"}
    assert set(first["study"]["configs"]) == {"scl+kml", "all", "all, scl order 2"} | schedules
    assert set(first["summary"]["configs"]) == {"photometric", "+scl", "+kml", "+sirenpose", "scl+kml", "all",
                                                "all, scl order 2"} | schedules
    by_config = {r["config"]: r["overrides"] for r in first["runs"]}
    assert by_config["all, sp alias gate"]["sp_schedule"] == "alias-gate"
    assert json.loads((tmp_path / "suite" / "frozen_weights.json").read_text()) == first["weights"]
    md = (tmp_path / "suite" / "mocap.md").read_text()
    assert "SMOKE RUN" in md and "| all, scl order 2 |" in md
    assert (tmp_path / "suite" / "mocap_heldout.png").stat().st_size > 1000 and "mocap_heldout.png" in md

    def no_training(*a, **k):
        raise AssertionError("a saved run was trained again")
    monkeypatch.setattr(run_module, "run", no_training)
    assert ablation.main(["--suite", "mocap", "--smoke", "--iters", "3", "--out", out]) == 0
    assert json.loads((tmp_path / "suite" / "mocap.json").read_text())["summary"] == first["summary"]


@needs_pybullet
def test_the_suite_with_two_jobs_gives_the_sequential_results(tmp_path):
    """Worker processes change where runs train, not what they compute."""
    import ablation
    seq, par = str(tmp_path / "seq"), str(tmp_path / "par")
    common = ["--suite", "mocap", "--smoke", "--iters", "2", "--stage", "tune"]
    assert ablation.main(common + ["--out", seq]) == 0
    assert ablation.main(common + ["--jobs", "2", "--out", par]) == 0
    a = json.loads((tmp_path / "seq" / "tune.json").read_text())
    b = json.loads((tmp_path / "par" / "tune.json").read_text())
    assert a["weights"] == b["weights"] and len(a["log"]) == 4

    def metrics(root):
        out = {}
        for path in sorted((tmp_path / root / "runs").rglob("*.json")):
            m = json.loads(path.read_text())["metrics"]
            out[str(path.relative_to(tmp_path / root))] = {k: v for k, v in m.items()
                                                           if k != "loss_share"}
        return out
    assert metrics("seq") == metrics("par") and len(metrics("seq")) == 11


@needs_pybullet
def test_the_step_profile_accounts_for_the_step(tmp_path):
    import profile_step
    assert profile_step.main(["--preset", "smoke", "--iters", "3", "--weights", "none",
                              "--out", str(tmp_path)]) == 0
    res = json.loads((tmp_path / "step_profile.json").read_text())
    regions = res["regions_ms"]
    assert set(regions) == set(profile_step.REGIONS) and all(v > 0 for v in regions.values())
    assert sum(regions.values()) <= res["step_ms_profiled"] * 1.05
    assert res["weights_from"] == "built-in" and len(res["top_ops"]) == 10
    assert "| `step/render` |" in (tmp_path / "step_profile.md").read_text()
