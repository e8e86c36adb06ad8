"""The 4-D Gaussian example: smoke runs of the three scripts, the data folder format, the
synthetic scene and the pure-PyTorch renderer (tests/test_renderers.py has the renderers in
depth, and gsplat on a GPU)."""
import json
import math
import os
import shutil
import subprocess
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples")
SAMPLE = os.path.join(EXAMPLES, "data", "sample_scene")
if EXAMPLES not in sys.path:
    sys.path.insert(0, EXAMPLES)

from fourdgs import cameras, render_torch  # noqa: E402
from fourdgs.data import DataFormatError, read_folder, write_folder  # noqa: E402
from fourdgs.scene import SceneConfig, make_keypoint_tracks, make_scene  # noqa: E402

TINY = SceneConfig(num_frames=5, image_size=24, num_gaussians=200)
ROW_KEYS = {"config", "psnr_heldout", "ssim_heldout", "kp3d_error", "pck2d", "jitter",
            "sec_per_iter", "loss_share"}


def _run_script(args, timeout):
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    proc = subprocess.run([sys.executable] + args, cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


# ------------------------------------------------------------------------------ smoke runs
def test_smoke_ablation_writes_all_outputs(tmp_path):
    out = tmp_path / "ablation"
    proc = _run_script([os.path.join("examples", "ablation.py"), "--preset", "smoke", "--seed",
                        "3", "--out", str(out)], timeout=600)
    rows = json.loads((out / "ablation.json").read_text())
    assert [r["config"] for r in rows] == ["photometric", "+scl", "+kml", "+sirenpose", "all",
                                           "+rigid", "+arap"]
    for r in rows:
        assert set(r) == ROW_KEYS
        for key in ROW_KEYS - {"config"}:
            assert isinstance(r[key], float) and math.isfinite(r[key]), (r["config"], key)
        assert 0.0 <= r["pck2d"] <= 1.0 and 0.0 <= r["loss_share"] < 1.0
    for r in rows[1:]:  # photometric runs none of our losses
        assert rows[0]["loss_share"] < r["loss_share"], r["config"]
    md = (out / "ablation.md").read_text()
    assert "| config |" in md and "| all |" in md
    for name in ("ablation_full.json", "ablation_tracks.png", "ablation_views.gif"):
        assert (out / name).stat().st_size > 0, name
    for name in ("photometric", "scl", "kml", "sirenpose", "all", "rigid", "arap"):
        assert (out / "runs" / name / "metrics.json").exists()
    assert "| all |" in proc.stdout  # the table is printed


def test_train_4dgs_on_the_sample_folder_writes_all_outputs(tmp_path):
    import train_4dgs
    out = tmp_path / "run"
    assert train_4dgs.main(["--preset", "smoke", "--data", SAMPLE, "--iters", "8",
                            "--no-progress", "--out", str(out)]) == 0
    rec = json.loads((out / "metrics.json").read_text())
    m = rec["metrics"]
    for key in ("psnr_train", "psnr_heldout", "ssim_heldout", "kp3d_error", "pck2d", "jitter"):
        assert m[key] is not None and math.isfinite(m[key]), key
    from fourdgs.config import DEFAULT_WEIGHTS
    # the package's keypoint and SCL losses on by default, the rigidity priors off
    assert rec["losses"] == dict(photo=1.0, **DEFAULT_WEIGHTS, rigid=0.0, arap=0.0)
    assert set(rec["history"][-1]) >= {"iter", "photo", "scl", "kml", "sp"}
    for name in ("renders.gif", "tracks3d.png", "tracks2d.png"):
        assert (out / name).stat().st_size > 0, name


def test_a_zero_weight_switches_its_loss_off(tmp_path):
    import train_4dgs
    out = tmp_path / "run"
    assert train_4dgs.main(["--preset", "smoke", "--data", SAMPLE, "--iters", "3", "--no-progress",
                            "--lambda-scl", "0", "--lambda-sp", "0", "--out", str(out)]) == 0
    last = json.loads((out / "metrics.json").read_text())["history"][-1]
    assert "kml" in last and "scl" not in last and "sp" not in last


# ------------------------------------------------------------------- rigidity priors
def _smoke_cfg(**over):
    from fourdgs.config import preset
    return preset("smoke", iters=40, progress=False, write_gif=False, write_plots=False, **over)


@pytest.fixture(scope="module")
def smoke_scene():
    return make_scene(0, _smoke_cfg().scene).dataset


@pytest.fixture(scope="module")
def photometric_fit(smoke_scene):
    from fourdgs.trainer import train
    return train(_smoke_cfg(), smoke_scene)


def _all_frames_prior(cfg, fit, ds):
    """The configured prior, evaluated on a fitted model's centres at every frame."""
    from fourdgs.rigidity import MotionPriors
    import dataclasses
    cfg = dataclasses.replace(cfg, rigid_frames=0)
    model = fit["model"]
    with torch.no_grad():
        positions = model.means(torch.arange(ds.num_frames))
        # the graph of the initial canonical centres, as in training
        from fourdgs.trainer import build
        canonical, _ = build(cfg, ds)
        priors = MotionPriors(cfg, canonical.gaussians.means, ds.num_frames)
        value, _ = priors(positions, model.gaussians.quats, model.gaussians.means)
    return float(value)


@pytest.mark.parametrize("weights, logged", [
    (dict(rigid=100.0), ("rigid", "rigid_local", "rigid_rotation", "rigid_isometry")),
    (dict(arap=100.0), ("arap",)),
])
def test_rigidity_priors_train_and_make_the_motion_more_rigid(smoke_scene, photometric_fit,
                                                              weights, logged):
    from fourdgs.trainer import train
    cfg = _smoke_cfg().with_losses(**weights)
    fit = train(cfg, smoke_scene)
    for h in fit["history"]:
        for key in logged:
            assert math.isfinite(h[key]) and h[key] >= 0, (key, h)
    # the model starts as the identity (rigid: every term 0); photometric training deforms it
    assert fit["history"][0][logged[0]] < 1e-12 < fit["history"][-1][logged[0]]
    # static rotations: the rotation-similarity term has nothing to measure
    assert all(h.get("rigid_rotation", 0.0) < 1e-9 for h in fit["history"])
    # with the prior the fitted motion is more rigid than with the photometric term alone
    with_prior = _all_frames_prior(cfg, fit, smoke_scene)
    without = _all_frames_prior(cfg, photometric_fit, smoke_scene)
    assert math.isfinite(with_prior) and 0.0 < with_prior < 0.8 * without, (with_prior, without)
    assert 0.0 < fit["timing"]["loss_share"] < 1.0


def test_zero_rigidity_weights_leave_training_bit_identical(smoke_scene, photometric_fit):
    from fourdgs.trainer import train
    cfg = _smoke_cfg(lambda_rigid=0.0, lambda_arap=0.0, rigid_k=3, rigid_frames=0,
                     rigid_weight_lambda=5.0)
    fit = train(cfg, smoke_scene)
    ref = photometric_fit["model"].state_dict()
    for name, value in fit["model"].state_dict().items():
        assert torch.equal(value, ref[name]), name
    assert fit["history"] == photometric_fit["history"]


def test_rigidity_priors_refuse_several_processes(smoke_scene):
    from fourdgs.shard import Shard
    from fourdgs.trainer import train

    class TwoRanks(Shard):
        world_size = 2
    with pytest.raises(ValueError, match="single-process only, got world_size=2"):
        train(_smoke_cfg(lambda_arap=1.0), smoke_scene, shard=TwoRanks(8, torch.device("cpu")))


@pytest.mark.parametrize("over, message", [
    (dict(lambda_rigid=-1.0), "lambda_rigid must be >= 0"),
    (dict(lambda_arap=-0.5), "lambda_arap must be >= 0"),
    (dict(rigid_frames=1), "rigid_frames 0 or >= 2"),
    (dict(rigid_k=0), "rigid_k must be >= 1"),
    (dict(rigid_weight_lambda=-2.0), "rigid_weight_lambda must be >= 0"),
])
def test_bad_rigidity_settings_are_refused(over, message):
    with pytest.raises(ValueError, match=message):
        _smoke_cfg(**over)


def test_ablation_merge_keeps_the_other_rows_and_refuses_another_run(tmp_path, capsys):
    import ablation
    out = str(tmp_path / "merged")
    common = ["--preset", "smoke", "--seed", "1", "--iters", "4", "--summary-only", "--out", out]
    assert ablation.main(common + ["--configs", "photometric", "+kml"]) == 0
    before = {r["config"]: r for r in json.loads((tmp_path / "merged" / "ablation.json").read_text())}
    assert ablation.main(common + ["--configs", "+arap", "+kml", "--merge"]) == 0
    rows = json.loads((tmp_path / "merged" / "ablation.json").read_text())
    assert [r["config"] for r in rows] == ["photometric", "+kml", "+arap"]
    assert rows[0] == before["photometric"]
    full = json.loads((tmp_path / "merged" / "ablation_full.json").read_text())
    assert list(full["runs"]) == ["photometric", "+kml", "+arap"]
    assert full["weights"]["arap"] > 0 and "| +arap |" in (tmp_path / "merged" / "ablation.md").read_text()
    other = ["--preset", "smoke", "--seed", "1", "--iters", "5", "--summary-only", "--out", out]
    assert ablation.main(other + ["--configs", "+rigid", "--merge"]) == 2
    assert "--merge: iters" in capsys.readouterr().err


def test_train_4dgs_reports_a_malformed_folder(tmp_path, capsys):
    import train_4dgs
    bad = tmp_path / "bad"
    shutil.copytree(SAMPLE, bad)
    os.remove(bad / "keypoints.json")
    assert train_4dgs.main(["--preset", "smoke", "--data", str(bad), "--out",
                            str(tmp_path / "o")]) == 2
    assert "keypoints.json: missing" in capsys.readouterr().err


def test_train_keypoints_smoke(tmp_path):
    import train_keypoints
    out = tmp_path / "kp"
    assert train_keypoints.main(["--preset", "smoke", "--seeds", "1", "--steps", "15",
                                 "--out", str(out)]) == 0
    data = json.loads((out / "keypoints.json").read_text())
    assert [r["config"] for r in data["rows"]] == ["L_pos", "L_pos + SCL", "SirenPose",
                                                   "SirenPose + SCL"]
    assert all(math.isfinite(r["error_px"]) for r in data["rows"])
    assert (out / "keypoints.md").exists() and (out / "keypoints_tracks.png").exists()


# -------------------------------------------------------------------------- data folder
def test_sample_folder_reads_and_round_trips(tmp_path):
    ds = read_folder(SAMPLE)
    assert ds.images.shape == (6, 32, 32, 3) and ds.keypoints.shape == (6, 17, 2)
    assert ds.heldout_images.shape == (1, 6, 32, 32, 3)
    assert ds.gt_joints3d.shape == (6, 17, 3) and ds.edge_index.shape == (2, 19)
    assert ds.init_points.shape[1] == 3
    write_folder(ds, tmp_path / "copy")
    again = read_folder(tmp_path / "copy")
    assert torch.equal(again.images, ds.images)
    assert torch.allclose(again.keypoints, ds.keypoints, atol=1e-3)
    assert torch.equal(again.visibility, ds.visibility)
    assert torch.allclose(again.Ks, ds.Ks) and torch.allclose(again.viewmats, ds.viewmats)


def test_sample_folder_matches_the_generator(tmp_path):
    """examples/data/sample_scene is what make_sample_data.py writes (regenerate if not)."""
    import make_sample_data
    make_sample_data.main(["--out", str(tmp_path / "gen")])
    gen, committed = read_folder(tmp_path / "gen"), read_folder(SAMPLE)
    assert torch.equal(gen.images, committed.images)
    assert torch.equal(gen.keypoints, committed.keypoints)


def _broken(tmp_path, edit):
    root = tmp_path / "d"
    shutil.copytree(SAMPLE, root)
    edit(root)
    return root


def _edit_json(path, fn):
    obj = json.loads(path.read_text())
    fn(obj)
    path.write_text(json.dumps(obj))


@pytest.mark.parametrize("edit, message", [
    (lambda r: os.remove(r / "scene.json"), r"scene\.json: missing"),
    (lambda r: (r / "scene.json").write_text("{not json"), r"scene\.json: not valid JSON"),
    (lambda r: _edit_json(r / "scene.json", lambda o: o.pop("width")), r"missing required key 'width'"),
    (lambda r: _edit_json(r / "scene.json", lambda o: o.update(num_frames=2)), r"at least 3"),
    (lambda r: _edit_json(r / "scene.json", lambda o: o.pop("K")), r"camera intrinsics"),
    (lambda r: _edit_json(r / "scene.json", lambda o: o.update(K=[[1, 0], [0, 1]])),
     r"'K' must have shape \[3, 3\]"),
    (lambda r: _edit_json(r / "scene.json", lambda o: o.update(viewmats=o["viewmats"][:2])),
     r"'viewmats' must have shape \[6, 4, 4\]"),
    (lambda r: _edit_json(r / "scene.json", lambda o: o.update(skeleton=[[0, 17]])),
     r"'skeleton' indices must be in \[0, 17\)"),
    (lambda r: os.remove(r / "frames" / "00003.png"), r"expected num_frames=6 images"),
    (lambda r: shutil.rmtree(r / "frames"), r"frames: missing"),
    (lambda r: _edit_json(r / "keypoints.json", lambda o: o.update(keypoints=o["keypoints"][:4])),
     r"has 4 frames but scene\.json says num_frames=6"),
    (lambda r: _edit_json(r / "keypoints.json",
                          lambda o: o.update(keypoints=[[p[:2] for p in f] for f in o["keypoints"]])),
     r"shape \[T, K, 3\]"),
    (lambda r: _edit_json(r / "keypoints.json",
                          lambda o: o["keypoints"][0][0].__setitem__(2, 1.5)), r"visibility .* \[0, 1\]"),
    (lambda r: _edit_json(r / "heldout" / "cameras.json", lambda o: o["cameras"][0].pop("viewmat")),
     r"camera 0 must have 'K' and 'viewmat'"),
])
def test_malformed_folders_raise_clear_errors(tmp_path, edit, message):
    root = _broken(tmp_path, edit)
    with pytest.raises(DataFormatError, match=message):
        read_folder(root)


def test_wrong_image_size_is_reported(tmp_path):
    import imageio.v3 as iio
    import numpy as np
    root = _broken(tmp_path, lambda r: None)
    iio.imwrite(root / "frames" / "00002.png", np.zeros((10, 12, 3), np.uint8))
    with pytest.raises(DataFormatError, match=r"00002\.png: must be 32x32 .* got 12x10"):
        read_folder(root)


def test_a_folder_without_points_or_extras_trains(tmp_path):
    """Only the required files: init points come from back-projecting the first frame."""
    import train_4dgs
    root = _broken(tmp_path, lambda r: None)
    for extra in ("points.npy",):
        os.remove(root / extra)
    shutil.rmtree(root / "heldout")
    shutil.rmtree(root / "gt")
    out = tmp_path / "o"
    assert train_4dgs.main(["--preset", "smoke", "--data", str(root), "--iters", "3",
                            "--no-progress", "--out", str(out)]) == 0
    m = json.loads((out / "metrics.json").read_text())["metrics"]
    assert m["pck2d_vs_detector"] is not None and "psnr_heldout" not in m


# ---------------------------------------------------------------------- synthetic scene
def test_scene_is_deterministic_and_seed_dependent():
    a, b, c = make_scene(5, TINY), make_scene(5, TINY), make_scene(6, TINY)
    assert torch.equal(a.dataset.images, b.dataset.images)
    assert torch.equal(a.dataset.keypoints, b.dataset.keypoints)
    assert not torch.equal(a.dataset.gt_joints3d, c.dataset.gt_joints3d)
    tracks = make_keypoint_tracks(5, TINY)
    assert torch.equal(tracks.detector, a.dataset.keypoints)


@pytest.mark.parametrize("seed", range(0, 40, 3))
def test_any_seed_gives_a_valid_scene(seed):
    cfg = SceneConfig(num_frames=24, image_size=64, num_gaussians=300)
    tr = make_keypoint_tracks(seed, cfg)
    size = cfg.image_size
    # every ground-truth keypoint in the training view, with a margin
    assert bool(((tr.gt2d > 1) & (tr.gt2d < size - 1)).all())
    assert 0.8 < float(tr.visibility.mean()) <= 0.95
    # the figure moves: joints travel, and the ground truth is smooth but not static
    speed = (tr.gt3d[1:] - tr.gt3d[:-1]).norm(dim=-1).mean()
    assert 0.01 < float(speed) < 0.15
    # bones keep their length (rigid kinematics)
    from fourdgs.skeleton import COCO17_EDGES
    for i, j in [(5, 7), (7, 9), (11, 13), (13, 15)]:
        length = (tr.gt3d[:, i] - tr.gt3d[:, j]).norm(dim=-1)
        assert float(length.max() - length.min()) < 1e-4
    assert len(COCO17_EDGES) == 19


def test_heldout_views_see_the_figure():
    s = make_scene(11, SceneConfig(num_frames=4, image_size=32, num_gaussians=300))
    ds = s.dataset
    for c in range(ds.heldout_images.shape[0]):
        uv, z = cameras.project(ds.gt_joints3d, ds.heldout_viewmats[c], ds.heldout_Ks[c])
        assert bool((z > 0).all()) and bool(((uv > 0) & (uv < 32)).all())
        assert float((ds.heldout_images[c] < 0.95).float().mean()) > 0.05  # not empty


# ------------------------------------------------------------------------------- renderer
def _one_gaussian(dtype=torch.float64):
    means = torch.tensor([[0.1, -0.05, 3.0]], dtype=dtype)
    quats = torch.tensor([[1.0, 0.2, 0.0, 0.1]], dtype=dtype)
    scales = torch.tensor([[0.08, 0.05, 0.06]], dtype=dtype)
    opac = torch.tensor([0.9], dtype=dtype)
    colors = torch.tensor([[0.2, 0.6, 0.9]], dtype=dtype)
    view = torch.eye(4, dtype=dtype)[None]
    K = cameras.intrinsics(24, 24, 40.0, dtype=dtype)[None]
    return means, quats, scales, opac, colors, view, K


def test_renderer_places_a_gaussian_where_it_projects():
    means, quats, scales, opac, colors, view, K = _one_gaussian()
    img, alpha, meta = render_torch.rasterization(means, quats, scales, opac, colors, view, K, 24, 24)
    uv, _ = cameras.project(means, view[0], K[0])
    peak = torch.nonzero(alpha[0, ..., 0] == alpha.max())[0]
    assert abs(float(peak[1]) + 0.5 - float(uv[0, 0])) <= 1.0
    assert abs(float(peak[0]) + 0.5 - float(uv[0, 1])) <= 1.0
    assert float(alpha.max()) <= 0.999 and float(alpha.max()) > 0.8
    assert torch.allclose(img[0], alpha[0] * colors[0])  # no background: premultiplied colour
    assert torch.allclose(meta["means2d"][0], uv)


def test_renderer_composites_front_to_back():
    means, quats, scales, opac, _, view, K = _one_gaussian()
    two = torch.cat([means, means + torch.tensor([[0.0, 0.0, 1.0]], dtype=means.dtype)])
    colors = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=means.dtype)
    img, _, _ = render_torch.rasterization(two, quats.repeat(2, 1), scales.repeat(2, 1),
                                           torch.tensor([0.999, 0.999], dtype=means.dtype),
                                           colors, view, K, 24, 24)
    uv, _ = cameras.project(means, view[0], K[0])
    centre = img[0, int(uv[0, 1]), int(uv[0, 0])]
    # the near red one (alpha a) hides the blue one behind: blue gets (1 - a) of the light
    assert float(centre[0]) > 0.9 and float(centre[2]) < 0.1 * float(centre[0])


def test_renderer_gradients_match_finite_differences():
    means, quats, scales, opac, colors, view, K = _one_gaussian()
    bg = torch.tensor([[0.3, 0.3, 0.3]], dtype=torch.float64)
    w = torch.rand(24, 24, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)

    def f(m, s, o, c):
        img, _, _ = render_torch.rasterization(m, quats, s, o, c, view, K, 24, 24, backgrounds=bg)
        return (img[0] * w).sum()
    inputs = [means.clone().requires_grad_(), scales.clone().requires_grad_(),
              opac.clone().requires_grad_(), colors.clone().requires_grad_()]
    # the 1/255 alpha cut-off and the pixel footprint are piecewise constant: tiny steps only
    assert torch.autograd.gradcheck(f, inputs, eps=1e-7, atol=1e-4, rtol=1e-3)
