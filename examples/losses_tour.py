"""A two-minute tour of the losses on built-in sample data: a COCO-17 pose moving over time.

Prints what each loss computes, checks it against the pure-PyTorch reference (value and
gradient) and shows which backend runs. Run: python examples/losses_tour.py
"""
import math

import torch

import sirenpose_loss as spl
from sirenpose_loss import graphs, reference


def sample_pose_track(frames: int = 24, seed: int = 0):
    """A smooth COCO-17 pose track in pixels (a figure waving its arms), plus a noisy copy with
    jitter, a dropped (occluded) keypoint and one outlier, as a keypoint detector would give."""
    g = torch.Generator().manual_seed(seed)
    rest = torch.tensor([[320, 90], [330, 80], [310, 80], [345, 85], [295, 85], [370, 150],
                         [270, 150], [400, 220], [240, 220], [420, 290], [220, 290], [350, 300],
                         [290, 300], [355, 400], [285, 400], [360, 490], [280, 490]],
                        dtype=torch.float64)
    t = torch.linspace(0, 2 * math.pi, frames, dtype=torch.float64)
    track = rest.expand(frames, 17, 2).clone()
    wave = torch.stack([torch.zeros_like(t), -40 * torch.sin(t)], -1)  # wrists and elbows wave
    track[:, [7, 8]] += 0.5 * wave[:, None]
    track[:, [9, 10]] += wave[:, None]
    noisy = track + 4.0 * torch.randn(track.shape, generator=g, dtype=torch.float64)
    visible = torch.ones(frames, 17, dtype=torch.float64)
    visible[5:9, 9] = 0.0                      # left wrist occluded for four frames
    noisy[12, 15] += torch.tensor([150.0, -90.0], dtype=torch.float64)  # one detector outlier
    return track, noisy, visible


def main() -> None:
    torch.set_printoptions(precision=4, sci_mode=False)
    print(f"sirenpose_loss {spl.__version__}, backend: {spl.backend()}\n")
    skeleton = graphs.skeleton("coco17")
    image_size = (640, 512)
    clean_px, noisy_px, visible = sample_pose_track()
    # The sine term has period 2 pi / omega0 (~0.21 units for omega0 = 30): normalise to [-1, 1].
    clean = graphs.normalize_keypoints(clean_px, image_size)
    pred = graphs.normalize_keypoints(noisy_px, image_size).requires_grad_(True)
    print(f"{skeleton}\nkeypoints: {tuple(pred.shape)} = [T, K, D], normalised to [-1, 1]\n")

    losses = {
        "keypoint_match_loss (DynaPose4D eq. 4)":
            (spl.keypoint_match_loss, reference.keypoint_match_loss, (pred, clean), {"weight": visible}),
        "spatiotemporal_consistency_loss (eq. 5)":
            (spl.spatiotemporal_consistency_loss, reference.spatiotemporal_consistency_loss, (pred,), {}),
        "  ... order=2 (acceleration)":
            (spl.spatiotemporal_consistency_loss, reference.spatiotemporal_consistency_loss, (pred,), {"order": 2}),
        "sin_graph_consistency_loss (SirenPose eq. 6)":
            (spl.sin_graph_consistency_loss, reference.sin_graph_consistency_loss,
             (pred, clean, skeleton.edge_index), {"weight": visible}),
        "sirenpose_loss (SirenPose eq. 7)":
            (spl.sirenpose_loss, reference.sirenpose_loss, (pred, clean, skeleton.edge_index),
             {"weight": visible}),
    }
    print(f"{'loss':44s} {'value':>10s} {'|grad|':>10s} {'vs reference':>14s}")
    for name, (ours, ref, args, kwargs) in losses.items():
        value = ours(*args, **kwargs)
        grad, = torch.autograd.grad(value, pred)
        ref_value = ref(*args, **kwargs)
        ref_grad, = torch.autograd.grad(ref_value, pred)
        err = max(abs(value.item() - ref_value.item()) / max(abs(ref_value.item()), 1e-300),
                  ((grad - ref_grad).abs().max() / ref_grad.abs().max().clamp_min(1e-300)).item())
        print(f"{name:44s} {value.item():10.6f} {grad.norm().item():10.6f} {err:14.1e}")

    terms = spl.sirenpose_loss(pred, clean, skeleton, weight=visible, reduction="none")
    worst = terms.pos.sum(0).argmax().item()
    print(f"\nper-term view (reduction='none'): pos {tuple(terms.pos.shape)}, geo {tuple(terms.geo.shape)}")
    print(f"keypoint with the largest L_pos over the track: {skeleton.names[worst]} (the outlier)")
    module = spl.SirenPoseLoss(skeleton, lambda_geo=0.5)
    out = module(pred, clean, weight=visible, return_terms=True)
    print(f"SirenPoseLoss(coco17, lambda_geo=0.5): loss {out.loss.item():.6f} = "
          f"pos {out.pos.item():.6f} + 0.5 * geo {out.geo.item():.6f}")
    smooth = spl.spatiotemporal_consistency_loss(clean)
    print(f"\nSCL of the clean track {smooth.item():.6f} vs the noisy one "
          f"{spl.spatiotemporal_consistency_loss(pred).item():.6f}: the prior prefers smooth motion.")


if __name__ == "__main__":
    main()
