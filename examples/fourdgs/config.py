"""The training configuration and its presets.

One weight per loss; a weight of 0 switches its term off (nothing is computed for it):

* ``lambda_photo``  photometric L1 between the rendered and the observed training frame;
* ``lambda_scl``    DynaPose4D's spatio-temporal consistency loss over the Gaussian centres of
  all frames (``scl_gaussians`` random Gaussians per step, 0 = all);
* ``lambda_kml``    DynaPose4D's keypoint match loss between the rendered keypoints (bound
  Gaussians, projected) and the detector keypoints, visibility-weighted, all frames;
* ``lambda_sp``     the SirenPose loss on the skeleton graph between the same two keypoint
  sets (``lambda_geo`` and ``omega0`` inside it);
* ``sp_schedule``   how SirenPose's settings change during training (``SP_SCHEDULES``):
  ``constant`` (the paper's), ``warmup`` (sine term on once 90 % of the limb residuals are
  within half a period), ``coarse-to-fine`` (omega0 rises from where the sine is monotone to
  ``omega0`` over the first half of training) or ``alias-gate`` (per step, aliased limbs drop
  out of the sine term);
* ``lambda_rigid``  Dynamic 3D Gaussians' motion trio (``RigidityLoss``: local rigidity,
  rotation similarity, isometry with their weights 4, 4, 2) over a k-nearest-neighbour graph of
  all canonical Gaussians, on a window of ``rigid_frames`` consecutive frames per step;
* ``lambda_arap``   the ARAP energy over the same graph and frames, the canonical centres as
  the rest shape.

The neighbour graph (``rigid_k`` neighbours, edge weights ``exp(-rigid_weight_lambda d^2)``)
is built once on the initial canonical centres; ``rigid_weight_lambda = None`` scales it to
the scene: ``1 / median(d^2)`` over the graph's edges, so the median edge weighs ``1/e``.

Keypoint losses use normalised image coordinates (``[-1, 1]`` across the longer image side),
the units SirenPose's ``omega0 = 30`` is meant for.
"""
from dataclasses import asdict, dataclass, field, replace
from typing import Optional

from .scene import SceneConfig


SP_SCHEDULES = ("constant", "warmup", "coarse-to-fine", "alias-gate")


def sp_schedule(cfg: "Config"):
    """The ``sirenpose_loss`` schedule object for ``cfg.sp_schedule`` (None: constant), with
    the parameters fixed in docs/examples.md."""
    import sirenpose_loss as spl
    return {"constant": lambda: None,
            "warmup": lambda: spl.GeoWarmup(fraction=0.9),
            "coarse-to-fine": lambda: spl.OmegaCoarseToFine(max(cfg.iters // 2, 1), quantile=0.99),
            "alias-gate": lambda: spl.AliasGate()}[cfg.sp_schedule]()


@dataclass
class Config:
    preset: str = "cpu"
    seed: int = 0
    device: str = "cpu"
    renderer: str = "auto"          # "torch", "gsplat" (CUDA only, untested) or "auto"
    threads: int = 1                # torch CPU threads (0 = leave as is); 1 is fastest for
                                    # these small ops and immune to oversubscription
    # scene (synthetic) -----------------------------------------------------------------
    scene: SceneConfig = field(default_factory=SceneConfig)
    # model ------------------------------------------------------------------------------
    pos_freqs: int = 4
    time_freqs: int = 4
    frame_code_dim: int = 8
    hidden: int = 64
    layers: int = 3
    bind_per_keypoint: int = 4
    # optimisation ---------------------------------------------------------------------------
    iters: int = 1000
    frames_per_iter: int = 1
    lr_means: float = 3e-4
    lr_scales: float = 5e-3
    lr_quats: float = 1e-3
    lr_opacity: float = 2e-2
    lr_colors: float = 2e-2
    lr_deform: float = 1e-3
    lr_final_ratio: float = 0.1     # learning rates decay exponentially to this ratio
    # losses --------------------------------------------------------------------------------
    lambda_photo: float = 1.0
    lambda_scl: float = 0.0
    lambda_kml: float = 0.0
    lambda_sp: float = 0.0
    lambda_geo: float = 1.0
    omega0: float = 30.0
    sp_schedule: str = "constant"
    scl_order: int = 1
    scl_gaussians: int = 256
    lambda_rigid: float = 0.0
    lambda_arap: float = 0.0
    rigid_k: int = 20
    rigid_weight_lambda: Optional[float] = None
    rigid_frames: int = 2            # consecutive frames per step (0 = all frames)
    # evaluation / outputs --------------------------------------------------------------------
    pck_alpha: float = 0.1          # PCK threshold: alpha * max side of the GT keypoint bbox
    log_every: int = 50
    write_gif: bool = True
    write_plots: bool = True
    progress: bool = True

    def __post_init__(self):
        for name in ("lambda_photo", "lambda_scl", "lambda_kml", "lambda_sp", "lambda_geo",
                     "lambda_rigid", "lambda_arap"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0 (0 switches the term off), "
                                 f"got {getattr(self, name)}")
        if self.rigid_k < 1 or self.rigid_frames < 0 or self.rigid_frames == 1:
            raise ValueError(f"rigid_k must be >= 1 and rigid_frames 0 or >= 2, got "
                             f"rigid_k={self.rigid_k}, rigid_frames={self.rigid_frames}")
        if self.rigid_weight_lambda is not None and not self.rigid_weight_lambda >= 0:
            raise ValueError(f"rigid_weight_lambda must be >= 0 or None (scene-scaled), got "
                             f"{self.rigid_weight_lambda}")
        if self.sp_schedule not in SP_SCHEDULES:
            raise ValueError(f"sp_schedule must be one of {', '.join(SP_SCHEDULES)}, got "
                             f"{self.sp_schedule!r}")
        if self.renderer not in ("auto", "torch", "gsplat"):
            raise ValueError(f"renderer must be 'auto', 'torch' or 'gsplat', got {self.renderer!r}")
        if self.iters < 1 or self.frames_per_iter < 1:
            raise ValueError("iters and frames_per_iter must be >= 1")

    def to_dict(self):
        return asdict(self)

    def with_losses(self, photo=None, scl=None, kml=None, sp=None, rigid=None,
                    arap=None) -> "Config":
        kw = {}
        for key, val in (("lambda_photo", photo), ("lambda_scl", scl), ("lambda_kml", kml),
                         ("lambda_sp", sp), ("lambda_rigid", rigid), ("lambda_arap", arap)):
            if val is not None:
                kw[key] = val
        return replace(self, **kw)


# The loss weights of the "all losses" configuration; the ablation switches them on one at a
# time. Chosen on seed 0 only (see docs/examples.md).
DEFAULT_WEIGHTS = dict(scl=100.0, kml=1.0, sp=0.01)
# The weights of the ablation's +rigid and +arap rows (off everywhere else): not tuned, set to
# lambda_scl's value, the other motion prior on the Gaussian centres.
RIGIDITY_WEIGHTS = dict(rigid=100.0, arap=100.0)


def preset(name: str, **overrides) -> Config:
    """``smoke`` (CI, seconds), ``cpu`` (minutes on 2 cores), ``gpu`` (CUDA + gsplat)."""
    if name == "smoke":
        cfg = Config(preset="smoke", iters=60, log_every=20, scl_gaussians=256,
                     hidden=48,
                     scene=SceneConfig(num_frames=8, image_size=40, num_gaussians=500))
    elif name == "cpu":
        cfg = Config(preset="cpu")
    elif name == "gpu":
        cfg = Config(preset="gpu", device="cuda", renderer="gsplat", iters=6000,
                     frames_per_iter=2, hidden=128, scl_gaussians=8192,
                     scene=SceneConfig(num_frames=48, image_size=256, num_gaussians=20000))
    else:
        raise ValueError(f"unknown preset {name!r}; choose smoke, cpu or gpu")
    return replace(cfg, **overrides) if overrides else cfg
