"""Per-step schedules for :class:`SirenPoseLoss`: they set ``omega0``, ``lambda_geo`` or a
per-limb gate from the current residuals, against the sine term's aliasing.

The sine term ``||sin(w0 dpred) - sin(w0 dtarget)||^2`` of a limb vector pulls towards the
nearest point with the same sine, not towards the target, once a component of the residual
``dpred - dtarget`` is more than half a period (``pi / omega0``) away. Each schedule below is
one answer to that; the loss module calls it once per training forward (``module.train()``),
and with the current settings but without advancing in ``eval()`` mode. A schedule's state
travels with the module's ``state_dict``.

The schedules decide on the host (a few scalars read back per step), so they are for eager
training loops; the loss op itself stays compilable.
"""
import math
from typing import Dict, NamedTuple, Optional

import torch


class SirenPoseSettings(NamedTuple):
    """What a schedule decides for one step. ``gate`` (``[..., E]``, 0 or 1, or None) switches
    single limb terms off; it is not differentiated."""
    omega0: float
    lambda_geo: float
    gate: Optional[torch.Tensor] = None


def limb_vectors(pred, target, edge_index, weight=None, edge_weight=None):
    """``(dpred, dtarget, counted)``: the limb vectors ``[..., E, D]`` of both keypoint sets and
    whether each ``[..., E]`` term carries weight (both end points visible, edge weight > 0)."""
    src, dst = edge_index[0].long(), edge_index[1].long()
    dpred = pred[..., src, :] - pred[..., dst, :]
    dtarget = target[..., src, :] - target[..., dst, :]
    counted = torch.ones(dpred.shape[:-1], dtype=torch.bool, device=pred.device)
    if weight is not None:
        w = weight.expand(pred.shape[:-1])
        counted = counted & (w[..., src] > 0) & (w[..., dst] > 0)
    if edge_weight is not None:
        counted = counted & (edge_weight > 0)
    return dpred, dtarget, counted


class SirenPoseSchedule:
    """Base class. ``__call__(pred, target, edge_index, weight, edge_weight, omega0, lambda_geo,
    advance)`` returns the step's :class:`SirenPoseSettings`; ``omega0`` and ``lambda_geo`` are
    the module's own values. ``step`` counts the training steps seen so far."""

    def __init__(self):
        self.step = 0

    def __call__(self, pred, target, edge_index, weight, edge_weight, omega0: float,
                 lambda_geo: float, advance: bool = True) -> SirenPoseSettings:
        with torch.no_grad():
            out = self.settings(pred.detach(), target.detach(), edge_index, weight, edge_weight,
                                omega0, lambda_geo, advance)
        if advance:
            self.step += 1
        return out

    def settings(self, pred, target, edge_index, weight, edge_weight, omega0, lambda_geo,
                 advance) -> SirenPoseSettings:
        raise NotImplementedError

    def state_dict(self) -> Dict:
        return dict(vars(self))

    def load_state_dict(self, state: Dict) -> None:
        unknown = set(state) - set(vars(self))
        if unknown:
            raise KeyError(f"state of {type(self).__name__} has unknown keys {sorted(unknown)}")
        vars(self).update(state)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in vars(self).items())})"


class GeoWarmup(SirenPoseSchedule):
    """The sine term is off (``lambda_geo = 0``, the position term on) until ``fraction`` of the
    counted limb-vector residual components ``|dpred - dtarget|`` are below half a period
    (``pi / omega0``); from then on it is on at the module's ``lambda_geo``."""

    def __init__(self, fraction: float = 0.9):
        super().__init__()
        fraction = float(fraction)
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f"fraction must be in (0, 1], got {fraction}")
        self.fraction = fraction
        self.on = False

    def settings(self, pred, target, edge_index, weight, edge_weight, omega0, lambda_geo, advance):
        if not self.on and advance:
            dpred, dtarget, counted = limb_vectors(pred, target, edge_index, weight, edge_weight)
            within = ((dpred - dtarget).abs() < math.pi / omega0) & counted[..., None]
            total = int(counted.sum()) * dpred.shape[-1]
            self.on = total > 0 and int(within.sum()) >= self.fraction * total
        return SirenPoseSettings(omega0, lambda_geo if self.on else 0.0)


class OmegaCoarseToFine(SirenPoseSchedule):
    """``omega0`` starts at ``(pi / 2) / q``, where ``q`` is the ``quantile`` of the counted
    limb-vector components ``|dpred|`` and ``|dtarget|`` at the first step, so that the sine is
    monotone over (nearly) all of them; it is capped at the module's ``omega0``. It then rises
    geometrically to the module's ``omega0`` over ``anneal_steps`` steps and stays there."""

    def __init__(self, anneal_steps: int, quantile: float = 0.99):
        super().__init__()
        if isinstance(anneal_steps, bool) or not isinstance(anneal_steps, int) or anneal_steps < 1:
            raise ValueError(f"anneal_steps must be an int >= 1, got {anneal_steps!r}")
        quantile = float(quantile)
        if not 0.0 < quantile <= 1.0:
            raise ValueError(f"quantile must be in (0, 1], got {quantile}")
        self.anneal_steps, self.quantile = anneal_steps, quantile
        self.omega_start = None

    def settings(self, pred, target, edge_index, weight, edge_weight, omega0, lambda_geo, advance):
        if self.omega_start is None:
            dpred, dtarget, counted = limb_vectors(pred, target, edge_index, weight, edge_weight)
            comps = torch.cat([dpred[counted].abs().flatten(), dtarget[counted].abs().flatten()])
            q = float(torch.quantile(comps.double(), self.quantile)) if comps.numel() else 0.0
            self.omega_start = min(omega0, (math.pi / 2) / q) if q > 0 else omega0
        if self.step >= self.anneal_steps:
            return SirenPoseSettings(omega0, lambda_geo)
        frac = self.step / self.anneal_steps
        return SirenPoseSettings(self.omega_start * (omega0 / self.omega_start) ** frac, lambda_geo)


class AliasGate(SirenPoseSchedule):
    """At every step a limb's sine term (per frame and edge) takes part only while all its
    residual components ``|dpred - dtarget|`` are within half a period (``pi / omega0``); aliased
    limbs are left to the position term. The gate is a constant of the step."""

    def settings(self, pred, target, edge_index, weight, edge_weight, omega0, lambda_geo, advance):
        dpred, dtarget, _ = limb_vectors(pred, target, edge_index)
        gate = ((dpred - dtarget).abs() < math.pi / omega0).all(-1)
        return SirenPoseSettings(omega0, lambda_geo, gate.to(pred.dtype))


def check_schedule(schedule) -> Optional[SirenPoseSchedule]:
    if schedule is not None and not isinstance(schedule, SirenPoseSchedule):
        raise TypeError(f"schedule must be a SirenPoseSchedule (GeoWarmup, OmegaCoarseToFine, "
                        f"AliasGate) or None, got {type(schedule).__name__}")
    return schedule


__all__ = ["SirenPoseSchedule", "SirenPoseSettings", "GeoWarmup", "OmegaCoarseToFine",
           "AliasGate", "limb_vectors"]
