#!/usr/bin/env python
"""Write the synthetic scene in the ``--data`` folder format (see fourdgs/data.py).

The tiny sample used by the tests (examples/data/sample_scene) is made with the defaults:

    python examples/make_sample_data.py --out examples/data/sample_scene

Bigger scenes: ``--frames 24 --size 64 --gaussians 2500`` is the ``cpu`` preset's scene.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--frames", type=int, default=6)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--gaussians", type=int, default=300)
    p.add_argument("--heldout", type=int, default=1, help="number of held-out cameras (0-2)")
    args = p.parse_args(argv)
    import torch
    torch.set_num_threads(1)
    from fourdgs.data import write_folder
    from fourdgs.scene import SceneConfig, make_scene
    cams = SceneConfig().heldout_cameras[:max(0, min(args.heldout, 2))]
    cfg = SceneConfig(num_frames=args.frames, image_size=args.size, num_gaussians=args.gaussians,
                      heldout_cameras=cams)
    write_folder(make_scene(args.seed, cfg).dataset, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
