"""The example's two splatting renderers: the pure-PyTorch one against an independent dense
evaluation of the same image formation (every pixel, every Gaussian), batched calls, the
metadata both return, the set-up probes, and (marked ``cuda``) gsplat against the torch
renderer, images and gradients, plus a few training steps on gsplat.

The ``cuda`` tests skip only where torch sees no GPU: with a GPU they fail, not skip, when
gsplat or the package's CUDA kernels are missing."""
import math
import os
import sys
import types

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples")
if EXAMPLES not in sys.path:
    sys.path.insert(0, EXAMPLES)

from fourdgs import cameras, probes, render_torch  # noqa: E402

W, H = 40, 32  # not square, so a swapped width/height shows


# ------------------------------------------------------------------ an independent reference
def _hamilton(p, q):
    pw, px, py, pz = p.unbind(-1)
    qw, qx, qy, qz = q.unbind(-1)
    return torch.stack([pw * qw - px * qx - py * qy - pz * qz, pw * qx + px * qw + py * qz - pz * qy,
                        pw * qy - px * qz + py * qw + pz * qx, pw * qz + px * qy - py * qx + pz * qw], -1)


def _rotate(quats, vec):
    """Rotate ``vec [3]`` by each quaternion ``[N, 4]`` as ``q v q*`` -> ``[N, 3]``."""
    q = quats / quats.norm(dim=-1, keepdim=True)
    v = torch.cat([vec.new_zeros(1), vec]).expand_as(q)
    conj = q * q.new_tensor([1.0, -1.0, -1.0, -1.0])
    return _hamilton(_hamilton(q, v), conj)[:, 1:]


def dense_image(means, quats, scales, opac, colors, view, K, width, height, background=None,
                near=0.01, far=1e10, eps2d=0.3):
    """One scene, one camera, every (pixel, Gaussian) pair: ``[H, W, D]``, ``[H, W, 1]``."""
    eye = torch.eye(3, dtype=means.dtype)
    axes = [_rotate(quats, eye[k]) for k in range(3)]                    # columns of R
    cov3 = sum((scales[:, k] ** 2)[:, None, None] * axes[k][:, :, None] * axes[k][:, None, :]
               for k in range(3))
    rot, trans = view[:3, :3], view[:3, 3]
    cam = (rot @ means.T).T + trans
    x, y, z = cam.unbind(-1)
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    # the Jacobian of (fx x/z + cx, fy y/z + cy), at x/z and y/z clamped to 1.3x the view
    mx, my = 0.3 * 0.5 * width / fx, 0.3 * 0.5 * height / fy
    xz = (x / z).clamp(-(cx / fx + mx), (width - cx) / fx + mx)
    yz = (y / z).clamp(-(cy / fy + my), (height - cy) / fy + my)
    zero = torch.zeros_like(z)
    jac = torch.stack([torch.stack([fx / z, zero, -fx * xz / z], -1),
                       torch.stack([zero, fy / z, -fy * yz / z], -1)], -2)
    full = jac @ rot
    cov2 = full @ cov3 @ full.transpose(-1, -2) + eps2d * torch.eye(2, dtype=means.dtype)
    conic = torch.linalg.inv(cov2)
    mean2d = torch.stack([fx * x / z + cx, fy * y / z + cy], -1)
    jj, ii = torch.meshgrid(torch.arange(width, dtype=means.dtype),
                            torch.arange(height, dtype=means.dtype), indexing="xy")
    centres = torch.stack([jj + 0.5, ii + 0.5], -1).reshape(-1, 1, 2)  # [P, 1, 2]
    d = centres - mean2d                                                # [P, N, 2]
    sigma = 0.5 * torch.einsum("pni,nij,pnj->pn", d, conic, d)
    alpha = torch.clamp(opac * torch.exp(-sigma), max=0.999)
    use = (sigma >= 0) & (alpha >= 1 / 255) & (z >= near) & (z <= far) & (opac >= 1 / 255)
    order = torch.argsort(z.detach())
    a = torch.where(use, alpha, torch.zeros_like(alpha))[:, order]
    use = use[:, order]
    t_before = torch.cumprod(torch.cat([torch.ones_like(a[:, :1]), 1 - a[:, :-1]], 1), 1)
    dead = use & (t_before * (1 - a) <= 1e-4)
    kept = use & (torch.cumsum(dead.long(), 1) == 0)
    w = torch.where(kept, a * t_before, torch.zeros_like(a))
    img = w @ colors[order]
    acc = w.sum(1, keepdim=True)
    if background is not None:
        img = img + (1 - acc) * background
    return img.reshape(height, width, -1), acc.reshape(height, width, 1), dict(
        stopped=int(dead.any(1).sum()), sigma=sigma, alpha=alpha, use=use, cov2=cov2)


def dense_rasterization(means, quats, scales, opac, colors, views, Ks, width, height,
                        backgrounds=None):
    """:func:`dense_image` for every scene and camera of a batched call."""
    batch = means.shape[:-2]
    bflat = max(1, math.prod(batch))
    flat = lambda t, k: t.reshape((bflat,) + t.shape[len(batch):])  # noqa: E731
    m, q, s, o, col = (flat(t, 0) for t in (means, quats, scales, opac, colors))
    vw, kk = flat(views, 0), flat(Ks, 0)
    bgs = None if backgrounds is None else flat(backgrounds, 0)
    imgs, accs = [], []
    for b in range(bflat):
        for c in range(vw.shape[1]):
            img, acc, _ = dense_image(m[b], q[b], s[b], o[b], col[b], vw[b, c], kk[b, c], width,
                                      height, None if bgs is None else bgs[b, c])
            imgs.append(img)
            accs.append(acc)
    shape = batch + (vw.shape[1], height, width)
    return torch.stack(imgs).reshape(shape + (-1,)), torch.stack(accs).reshape(shape + (1,))


# ------------------------------------------------------------------------------ a test scene
def random_scene(num=70, batch=(2,), cams=2, dtype=torch.float64, seed=0, width=W, height=H):
    """Anisotropic, rotated Gaussians around the origin seen by ``cams`` orbit cameras; a few are
    behind the near plane, off-screen or below the opacity cull; a dense near stack makes some
    pixels stop early (T below 1e-4)."""
    g = torch.Generator().manual_seed(seed)
    rnd = lambda *s: torch.rand(batch + s, generator=g, dtype=torch.float64)  # noqa: E731
    means = (rnd(num, 3) - 0.5) * torch.tensor([1.6, 1.2, 1.0], dtype=torch.float64)
    means[..., :6, :] = rnd(6, 3) * 0.06 + torch.tensor([0.05, 0.0, 0.6], dtype=torch.float64)
    means[..., 6, :] = torch.tensor([0.0, 0.0, 3.5], dtype=torch.float64)   # behind a camera at z=3
    means[..., 7, :] = torch.tensor([9.0, 0.0, 0.0], dtype=torch.float64)   # far off-screen
    quats = torch.randn(batch + (num, 4), generator=g, dtype=torch.float64)
    scales = 0.02 + 0.12 * rnd(num, 3) ** 2
    scales[..., :6, :] = torch.tensor([0.2, 0.18, 0.05], dtype=torch.float64)
    opac = 0.05 + 0.949 * rnd(num)
    opac[..., :6] = 0.995
    opac[..., 8] = 0.003                                                   # below 1/255: culled
    colors = rnd(num, 3)
    views = torch.stack([cameras.orbit(az, el, 3.0, dtype=torch.float64)
                         for az, el in [(0, 0), (35, 20), (-50, -10)][:cams]])
    views = views.expand(batch + views.shape).clone()
    K = torch.tensor([[0.9 * width, 0.0, 0.5325 * width], [0.0, 1.1875 * height, 0.45625 * height],
                      [0.0, 0.0, 1.0]], dtype=torch.float64)  # off-centre principal point
    Ks = K.expand(batch + (cams, 3, 3)).clone()
    bgs = rnd(cams, 3)
    cast = lambda t: t.to(dtype)  # noqa: E731
    return [cast(t) for t in (means, quats, scales, opac, colors, views, Ks)], cast(bgs)


def _grads(fn, leaves, weight_seed=1):
    leaves = [x.detach().clone().requires_grad_() for x in leaves]
    img, alpha = fn(*leaves)[:2]
    g = torch.Generator().manual_seed(weight_seed)
    w1 = torch.rand(img.shape, generator=g, dtype=torch.float64).to(img)
    w2 = torch.rand(alpha.shape, generator=g, dtype=torch.float64).to(img)
    ((img * w1).sum() + (alpha * w2).sum()).backward()
    return img.detach(), alpha.detach(), [x.grad for x in leaves]


NAMES = ["means", "quats", "scales", "opacities", "colors"]


def test_the_scene_exercises_every_rule():
    """The dense test below is only as strong as its scene: some pixels must stop early, some
    Gaussians be culled, and some contributions lie beyond 3 standard deviations."""
    (means, quats, scales, opac, colors, views, Ks), _ = random_scene(batch=())
    _, _, info = dense_image(means, quats, scales, opac, colors, views[0], Ks[0], W, H)
    assert info["stopped"] > 0
    proj = render_torch.project_gaussians(means, quats, scales, opac, views, Ks, W, H)
    culled = ~proj["valid"][0]
    assert bool(culled[6]) and bool(culled[7]) and bool(culled[8])
    # contributions at a Mahalanobis distance beyond 3 along the longer axis
    lam_max = torch.linalg.eigvalsh(info["cov2"])[:, -1]
    beyond = info["use"] & (2 * info["sigma"] > 9.0)
    assert int(beyond.sum()) > 0 and bool((lam_max > 0).all())


@pytest.mark.parametrize("with_background", [True, False])
def test_torch_renderer_matches_the_dense_evaluation(with_background):
    """Images, alphas and the gradients w.r.t. means, quats, scales, opacities and colours,
    float64, a batched call (2 scenes x 2 cameras): equal to float rounding."""
    leaves, bgs = random_scene()
    views, Ks = leaves[5:]
    bg = bgs if with_background else None
    ours = _grads(lambda m, q, s, o, c: render_torch.rasterization(m, q, s, o, c, views, Ks, W, H,
                                                                   backgrounds=bg), leaves[:5])
    ref = _grads(lambda m, q, s, o, c: dense_rasterization(m, q, s, o, c, views, Ks, W, H, bg),
                 leaves[:5])
    torch.testing.assert_close(ours[0], ref[0], rtol=1e-10, atol=1e-12, msg="image")
    torch.testing.assert_close(ours[1], ref[1], rtol=1e-10, atol=1e-12, msg="alpha")
    for name, g, r in zip(NAMES, ours[2], ref[2]):
        assert float(r.abs().max()) > 0, name
        torch.testing.assert_close(g, r, rtol=1e-8, atol=1e-10, msg=lambda m, n=name: f"d/d{n}: {m}")


def test_radii_are_the_opacity_aware_per_axis_box():
    (means, quats, scales, opac, colors, views, Ks), _ = random_scene(batch=())
    _, _, meta = render_torch.rasterization(means, quats, scales, opac, colors, views, Ks, W, H)
    for c in range(views.shape[0]):
        _, _, info = dense_image(means, quats, scales, opac, colors, views[c], Ks[c], W, H)
        ext = torch.sqrt(2 * torch.log(255 * opac.clamp_min(1 / 255))).clamp(max=3.33)
        want = torch.ceil(ext[:, None] * torch.diagonal(info["cov2"], dim1=-2, dim2=-1).sqrt())
        got = meta["radii"][c]
        shown = (got > 0).all(-1)
        assert int(shown.sum()) > 40
        assert torch.equal(got[shown].double(), want[shown])
        assert not bool(shown[6] | shown[7] | shown[8])


def test_metadata_shapes_dtypes_and_culled_entries():
    leaves, bgs = random_scene(batch=(2,), cams=3, dtype=torch.float32)
    img, alpha, meta = render_torch.rasterization(*leaves, W, H, backgrounds=bgs)
    assert img.shape == (2, 3, H, W, 3) and alpha.shape == (2, 3, H, W, 1)
    assert img.dtype == alpha.dtype == torch.float32
    assert set(meta) == set(render_torch.META_KEYS)
    assert meta["radii"].shape == (2, 3, 70, 2) and meta["radii"].dtype == torch.int32
    for key, tail in (("means2d", (2,)), ("depths", ()), ("conics", (3,)), ("opacities", ())):
        assert meta[key].shape == (2, 3, 70) + tail and meta[key].dtype == torch.float32, key
        culled = (meta["radii"] == 0).all(-1)
        assert bool(culled.any()) and bool((meta[key][culled] == 0).all()), key
    assert (meta["n_batches"], meta["n_cameras"], meta["width"], meta["height"]) == (2, 3, W, H)


def test_a_batched_call_equals_per_camera_calls():
    """[F, N] scenes x [F, C] cameras in one call == one call per (scene, camera)."""
    leaves, bgs = random_scene(batch=(3,), cams=2)
    means, quats, scales, opac, colors, views, Ks = leaves
    leaves = [x.requires_grad_() for x in leaves[:5]]
    img, alpha, meta = render_torch.rasterization(*leaves, views, Ks, W, H, backgrounds=bgs)
    gw = torch.rand(img.shape, generator=torch.Generator().manual_seed(3), dtype=img.dtype)
    batched_grads = torch.autograd.grad((img * gw).sum(), leaves)
    one_grads = [torch.zeros_like(x) for x in leaves]
    for f in range(3):
        for c in range(2):
            sub = [x[f].detach().clone().requires_grad_() for x in leaves]
            i1, a1, m1 = render_torch.rasterization(*sub, views[f, c:c + 1], Ks[f, c:c + 1], W, H,
                                                    backgrounds=bgs[f, c:c + 1])
            torch.testing.assert_close(img[f, c], i1[0], rtol=1e-12, atol=1e-13)
            torch.testing.assert_close(alpha[f, c], a1[0], rtol=1e-12, atol=1e-13)
            assert torch.equal(meta["radii"][f, c], m1["radii"][0])
            for acc, g in zip(one_grads, torch.autograd.grad((i1[0] * gw[f, c]).sum(), sub)):
                acc[f] += g
    for name, g, r in zip(NAMES, batched_grads, one_grads):
        torch.testing.assert_close(g, r, rtol=1e-10, atol=1e-12, msg=lambda m, n=name: f"d/d{n}: {m}")


def test_colours_per_camera_and_an_empty_view():
    (means, quats, scales, opac, colors, views, Ks), bgs = random_scene(batch=(), cams=2)
    per_cam = torch.stack([colors, colors.flip(-1)])
    img, _, _ = render_torch.rasterization(means, quats, scales, opac, per_cam, views, Ks, W, H)
    one, _, _ = render_torch.rasterization(means, quats, scales, opac, colors.flip(-1), views[1:],
                                           Ks[1:], W, H)
    torch.testing.assert_close(img[1], one[0], rtol=1e-12, atol=1e-13)
    away = views.clone()
    away[:, 2, 3] = -50.0  # every Gaussian behind the camera
    img, alpha, meta = render_torch.rasterization(means, quats, scales, opac, colors, away, Ks, W,
                                                  H, backgrounds=bgs)
    assert bool((meta["radii"] == 0).all()) and bool((alpha == 0).all())
    assert torch.equal(img, bgs[:, None, None, :].expand_as(img))


@pytest.mark.parametrize("which, bad, message", [
    ("means", lambda t: t[..., :2], r"means must have shape \[\.\.\., N, 3\], got \[2, 70, 2\]"),
    ("quats", lambda t: t[:, :5], r"quats must have shape \[2, 70, 4\], got \[2, 5, 4\]"),
    ("opacities", lambda t: t[..., None], r"opacities must have shape \[2, 70\], got \[2, 70, 1\]"),
    ("viewmats", lambda t: t[0], r"viewmats must have shape \[2, C, 4, 4\], got \[2, 4, 4\]"),
    ("Ks", lambda t: t[:, :1], r"Ks must have shape \[2, 2, 3, 3\], got \[2, 1, 3, 3\]"),
    ("colors", lambda t: t[:, :3], r"colors must have shape \[2, 70, D\], got \[2, 3, 3\]"),
])
def test_bad_shapes_name_the_argument(which, bad, message):
    leaves, _ = random_scene()
    args = dict(zip(["means", "quats", "scales", "opacities", "colors", "viewmats", "Ks"], leaves))
    args[which] = bad(args[which])
    with pytest.raises(ValueError, match=message):
        render_torch.rasterization(**args, width=W, height=H)


@pytest.mark.parametrize("mode", [dict(rasterize_mode="antialiased"), dict(render_mode="RGB+D"),
                                  dict(sh_degree=3)])
def test_modes_it_does_not_implement_raise(mode):
    leaves, _ = random_scene(batch=())
    with pytest.raises(ValueError, match=f"{next(iter(mode))} must be"):
        render_torch.rasterization(*leaves, W, H, **mode)


# --------------------------------------------------------------------------------- probes
def _fake_gsplat(monkeypatch, version="1.5.3", backend=None, backend_error=None):
    """Stand-ins for an installed gsplat whose CUDA backend is ``backend`` (or fails)."""
    pkg = types.ModuleType("gsplat")
    pkg.__version__ = version
    pkg.__path__ = []
    cuda = types.ModuleType("gsplat.cuda")
    cuda.__path__ = []
    monkeypatch.setitem(sys.modules, "gsplat", pkg)
    monkeypatch.setitem(sys.modules, "gsplat.cuda", cuda)
    if backend_error is not None:
        real = probes._import

        def fail(name):
            if name == "gsplat.cuda._backend":
                raise backend_error
            return real(name)
        monkeypatch.setattr(probes, "_import", fail)
    else:
        mod = types.ModuleType("gsplat.cuda._backend")
        mod._C = backend
        monkeypatch.setitem(sys.modules, "gsplat.cuda._backend", mod)


@pytest.fixture
def cuda_visible(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(probes, "_torch_cuda_version", lambda: "12.8")


def test_probe_without_a_gpu_says_so():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(probes.SetupError, match=r"needs a CUDA GPU.*--preset cpu"):
        probes.require_gsplat()


def test_probe_missing_gsplat(monkeypatch, cuda_visible):
    monkeypatch.setitem(sys.modules, "gsplat", None)
    with pytest.raises(probes.SetupError, match=r"gsplat is not installed.*requirements-gpu\.txt.*"
                                                r"gpu_check_examples\.sh"):
        probes.require_gsplat()


def test_probe_wrong_gsplat_version(monkeypatch, cuda_visible):
    _fake_gsplat(monkeypatch, version="1.4.0", backend=object())
    with pytest.raises(probes.SetupError, match=r"gsplat 1\.4\.0 is installed.*gsplat==1\.5\.3"):
        probes.require_gsplat()


def test_probe_no_cuda_toolkit_for_gsplat_kernels(monkeypatch, cuda_visible):
    _fake_gsplat(monkeypatch, backend=None)
    monkeypatch.setenv("CUDA_HOME", "/nowhere/cuda")
    with pytest.raises(probes.SetupError, match=r"no compiled CUDA kernels.*CUDA_HOME.*nvcc.*12\.8.*"
                                                r"/nowhere/cuda"):
        probes.require_gsplat()


def test_probe_gsplat_kernels_fail_to_compile(monkeypatch, cuda_visible):
    _fake_gsplat(monkeypatch, backend_error=RuntimeError("Error building extension 'gsplat_cuda'"))
    with pytest.raises(probes.SetupError, match=r"could not compile its CUDA kernels.*Error building "
                                                r"extension.*nvcc.*12\.8"):
        probes.require_gsplat()


def test_probe_gsplat_backend_dependency_missing(monkeypatch, cuda_visible):
    _fake_gsplat(monkeypatch, backend_error=ModuleNotFoundError("No module named 'rich'", name="rich"))
    with pytest.raises(probes.SetupError, match=r"needs the Python package 'rich'.*requirements-gpu"):
        probes.require_gsplat()


def test_probe_passes_with_working_gsplat(monkeypatch, cuda_visible):
    _fake_gsplat(monkeypatch, backend=types.SimpleNamespace())
    probes.require_gsplat()


def test_probe_package_cuda_kernels_missing(monkeypatch, cuda_visible):
    import sirenpose_loss
    monkeypatch.setattr(sirenpose_loss, "cuda_kernels_built", lambda: False)
    with pytest.raises(probes.SetupError, match=r"sirenpose_loss was built without its CUDA kernels.*"
                                                r"FORCE_CUDA=1 pip install --no-build-isolation"):
        probes.require_package_cuda()


def test_probe_setup_of_a_config(monkeypatch, cuda_visible):
    """``check_setup`` probes the renderer the config will use, and the package's CUDA kernels
    only for a CUDA device."""
    from fourdgs.config import preset
    import sirenpose_loss
    monkeypatch.setattr(sirenpose_loss, "cuda_kernels_built", lambda: False)
    monkeypatch.setitem(sys.modules, "gsplat", None)
    probes.check_setup(preset("smoke"))  # cpu + torch renderer: nothing to probe
    with pytest.raises(probes.SetupError, match="gsplat is not installed"):
        probes.check_setup(preset("smoke", renderer="gsplat"))
    with pytest.raises(probes.SetupError, match="gsplat is not installed"):
        probes.check_setup(preset("smoke", device="cuda"))  # auto on CUDA -> gsplat
    with pytest.raises(probes.SetupError, match="without its CUDA kernels"):
        probes.check_setup(preset("smoke", device="cuda", renderer="torch"))


def test_gpu_preset_fails_before_building_a_scene(monkeypatch, capsys, tmp_path):
    """Without what the gpu preset needs, ablation.py says why at once (no scene is built)."""
    import ablation
    from fourdgs import scene
    monkeypatch.setitem(sys.modules, "gsplat", None)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)

    def no_scene(*a, **k):
        raise AssertionError("a scene was built before the set-up was probed")
    monkeypatch.setattr(scene, "make_scene", no_scene)
    assert ablation.main(["--preset", "gpu", "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "needs a CUDA GPU" in err


# ------------------------------------------------------------------------- on a GPU only
def _gpu_ready():
    """Skip without a GPU; with one, fail with the probe's message when gsplat is missing."""
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    probes.require_gsplat()
    from fourdgs import render_gsplat
    return render_gsplat


@pytest.mark.cuda
def test_gsplat_matches_the_torch_renderer():
    """Images, alphas, gradients and metadata of a batched call (2 scenes x 2 cameras), float32
    on the GPU. Differences come from float32 rounding (gsplat's fast-math ``exp``, its float32
    transmittance); a pair whose alpha sits within rounding of 1/255 may count in one renderer
    and not the other, which moves a pixel by at most about 2/255."""
    render_gsplat = _gpu_ready()
    dev = torch.device("cuda")
    leaves, bgs = random_scene(num=400, batch=(2,), cams=2, dtype=torch.float32, width=64,
                               height=48)
    leaves = [x.to(dev) for x in leaves]
    views, Ks = leaves[5:]
    bgs = bgs.to(dev)
    run = lambda fn: _grads(lambda m, q, s, o, c: fn(m, q, s, o, c, views, Ks, 64, 48,  # noqa: E731
                                                     backgrounds=bgs), leaves[:5])
    ours, theirs = run(render_torch.rasterization), run(render_gsplat.rasterization)
    for what, a, b in (("image", ours[0], theirs[0]), ("alpha", ours[1], theirs[1])):
        diff = (a - b).abs()
        assert float(diff.max()) < 1e-2, what
        assert float((diff > 1e-5).float().mean()) < 1e-3, what
    for name, a, b in zip(NAMES, ours[2], theirs[2]):
        scale = float(a.abs().max())
        bad = (a - b).abs() > 1e-3 * scale + 1e-6
        assert float(bad.float().mean()) < 0.01, (name, float((a - b).abs().max()), scale)
    _, _, m1 = render_torch.rasterization(*leaves, 64, 48)
    _, _, m2 = render_gsplat.rasterization(*leaves, 64, 48)
    assert set(m1) == set(m2) == set(render_torch.META_KEYS)
    for key in ("radii", "means2d", "depths", "conics", "opacities"):
        assert m1[key].shape == m2[key].shape and m1[key].dtype == m2[key].dtype, key
    same = (m1["radii"] == m2["radii"]).all(-1)
    assert float(same.float().mean()) > 0.99
    torch.testing.assert_close(m1["means2d"][same], m2["means2d"][same], rtol=1e-5, atol=1e-3)


@pytest.mark.cuda
def test_train_five_iterations_with_gsplat():
    _gpu_ready()
    from fourdgs.config import DEFAULT_WEIGHTS, preset
    from fourdgs.scene import SceneConfig, make_scene
    from fourdgs.trainer import train
    cfg = preset("smoke", device="cuda", renderer="gsplat", iters=5, progress=False,
                 scene=SceneConfig(num_frames=6, image_size=32, num_gaussians=300))
    cfg = cfg.with_losses(photo=1.0, **DEFAULT_WEIGHTS)
    probes.check_setup(cfg)
    fit = train(cfg, make_scene(0, cfg.scene).dataset, progress=False)
    last = fit["history"][-1]
    assert set(last) >= {"photo", "scl", "kml", "sp"}
    assert all(math.isfinite(v) for v in last.values())
    assert fit["timing"]["sec_per_iter"] > 0


def test_gpu_tests_fail_rather_than_skip_without_gsplat(monkeypatch, cuda_visible):
    """With a GPU and no gsplat, the ``cuda`` tests above raise (fail); they never skip."""
    monkeypatch.setitem(sys.modules, "gsplat", None)
    with pytest.raises(probes.SetupError, match="gsplat is not installed"):
        _gpu_ready()
