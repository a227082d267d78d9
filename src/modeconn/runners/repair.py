"""REPAIR and RESET on the straight path (Jordan et al. 2023): the per-point transform a run's
`align.repair` / `align.reset` ask for, and its `repair` section.

- `align.repair=true`: every interior point's hidden channels get the interpolated endpoint
  statistics (:mod:`modeconn.align.repair`), on `align.repair_samples` training inputs;
- `align.reset=false`: the no-RESET baseline of BN nets: the point's BN statistics are the
  interpolation of the endpoints' running statistics instead of recomputed (the protocol,
  `reset=true`, is RESET).
"""
from __future__ import annotations

import torch
from torch.nn.modules.batchnorm import _BatchNorm

from modeconn.evaluation.profile import PointTransform
from modeconn.runners.context import RunContext


def wants_transform(cfg) -> bool:
    return bool(cfg.align.get("repair", False)) or not bool(cfg.align.get("reset", True))


def label(cfg) -> str:
    """How Jordan et al. name the treatment: none, RESET or REPAIR (REPAIR with RESET on BN nets)."""
    if cfg.align.get("repair", False):
        return "REPAIR"
    return "RESET" if cfg.align.get("reset", True) else "none"


def point_transform(ctx: RunContext) -> PointTransform | None:
    """The transform for the line between endpoints 0 and 1 (aligned when `align=` says so), or
    None when the run asks for neither; records the `repair` section."""
    cfg = ctx.cfg
    if not wants_transform(cfg):
        return None
    a, b = ctx.states[0], ctx.states[1]
    names = ctx.space.names
    params_a, params_b = {n: a[n] for n in names}, {n: b[n] for n in names}
    stat_keys = [f"{name}.{k}" for name, m in ctx.model.named_modules() if isinstance(m, _BatchNorm)
                 for k in ("running_mean", "running_var")]
    section = {"method": label(cfg), "reset": bool(cfg.align.get("reset", True)), "bn_statistics": len(stat_keys) // 2}
    repairer = None
    if cfg.align.get("repair", False):
        from modeconn.align.repair import Repairer
        x = ctx.data.x_train[: int(cfg.align.get("repair_samples", 5000))]
        repairer = Repairer(ctx.model, ctx.permutation_spec(), params_a, params_b, x,
                            batch_size=int(cfg.eval.batch_size))

    def transform(t: float, params: dict[str, torch.Tensor]):
        if repairer is not None:
            params = repairer(t, params)
        buffers = None if section["reset"] else {k: (1 - t) * a[k] + t * b[k] for k in stat_keys}
        return params, buffers

    def finish() -> None:
        if repairer is not None:
            midpoint = {n: 0.5 * (params_a[n] + params_b[n]) for n in names}
            section.update(repairer.report(midpoint))
        ctx.record.data["repair"] = section
        ratios = section.get("midpoint_variance_ratio")
        if ratios:
            ctx.tracker.log_summary({f"repair/variance_ratio_{k}": sum(v) / len(v) for k, v in ratios.items()})

    transform.finish = finish
    return transform
