"""One experiment end to end: data -> train -> evaluate -> metrics.json and pictures."""
import json
import os
from typing import Dict, Optional

from .config import Config
from .data import Dataset, read_folder
from .probes import check_setup
from .scene import make_scene
from .shard import Shard
from .trainer import evaluate, train
from . import viz


def load_dataset(cfg: Config, data_dir: Optional[str] = None) -> Dataset:
    """The folder at ``data_dir``, or the synthetic scene for ``cfg.seed``. Probes first what
    ``cfg`` needs on a GPU (:func:`.probes.check_setup` raises ``SetupError``)."""
    check_setup(cfg)
    if data_dir:
        return read_folder(data_dir)
    return make_scene(cfg.seed, cfg.scene).dataset


def rounded(obj):
    """``obj`` as it is written to JSON (floats to 6 decimals)."""
    if isinstance(obj, dict):
        return {k: rounded(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [rounded(v) for v in obj]
    if isinstance(obj, float):
        return round(obj, 6)
    return obj


def write_json(path: str, obj) -> None:
    with open(path, "w") as f:
        json.dump(rounded(obj), f, indent=2)


def run(cfg: Config, ds: Dataset, out_dir: Optional[str] = None, *, label: str = "",
        progress: Optional[bool] = None, shard: Optional[Shard] = None) -> Optional[Dict]:
    """Train and evaluate; when ``out_dir`` is given write ``metrics.json``, ``renders.gif``,
    ``tracks3d.png`` / ``tracks2d.png`` there. Returns the record plus tracks and renders.
    With a distributed ``shard`` every rank trains; only the main rank evaluates and writes
    (the others return None)."""
    check_setup(cfg)
    fit = train(cfg, ds, progress=progress, shard=shard)
    if shard is not None and not shard.is_main:
        return None
    ev = evaluate(cfg, ds, fit["model"], fit["binding"])
    record = dict(label=label, data=ds.name, metrics=ev["metrics"], timing=fit["timing"],
                  history=fit["history"], config=cfg.to_dict(),
                  losses=dict(photo=cfg.lambda_photo, scl=cfg.lambda_scl, kml=cfg.lambda_kml,
                              sp=cfg.lambda_sp, rigid=cfg.lambda_rigid, arap=cfg.lambda_arap))
    if shard is not None:
        record["world_size"] = shard.world_size
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
        write_json(os.path.join(out_dir, "metrics.json"), record)
        if cfg.write_gif:
            cols = [ds.images, ev["renders"]["train"]]
            if "heldout" in ev["renders"]:
                for c in range(ev["renders"]["heldout"].shape[0]):
                    cols += [ds.heldout_images[c], ev["renders"]["heldout"][c]]
            viz.save_gif(os.path.join(out_dir, "renders.gif"), viz.grid_video(cols, rows=1),
                         upscale=2 if ds.width <= 64 else 1)
        if cfg.write_plots:
            tr = ev["tracks"]
            keypoints = [k for k in viz.TRACK_KEYPOINTS if k < ds.num_keypoints] or [0]
            if "gt3d" in tr:
                viz.plot_tracks(os.path.join(out_dir, "tracks3d.png"), tr["gt3d"],
                                {label or "prediction": tr["pred3d"]}, ds.keypoint_names, keypoints,
                                title="3-D keypoint tracks (world units)")
            viz.plot_tracks(os.path.join(out_dir, "tracks2d.png"), tr.get("gt2d"),
                            {label or "prediction": tr["pred2d"]}, ds.keypoint_names, keypoints,
                            detector=tr["detector2d"], visibility=tr["visibility"],
                            axes_labels=("u px", "v px"), title="2-D keypoint tracks, training view")
    return dict(record=record, tracks=ev["tracks"], renders=ev["renders"])
