"""Anokhin & Yarotsky 2020's connections: ``method=arc``, ``wa``, ``bfly``, ``gauss`` and ``flow``.

Each reads the endpoints through the neuron view (paths/neurons.py) and is built,
not trained; ``align=ot`` (their OT) permutes B first, as for any method. The
run is evaluated on the usual protocol and records an ``anokhin`` section: the
connection, the *cost* (which details of the endpoints the method uses, the
paper's axis of comparison), and for the layer-wise methods every segment
(which layer moves, which is refit, the least-squares residuals); the latent-space
methods their bijections' round-trip error, and the flow its store entries.
"""
from __future__ import annotations

import torch

from modeconn.paths.arc import ArcPath
from modeconn.paths.latent import Gaussianizer, LatentArcPath
from modeconn.paths.neurons import NeuronView
from modeconn.paths.wa import BflyPath, LayerFits, WAPath
from modeconn.report.anokhin import method_cost
from modeconn.runners.context import RunContext
from modeconn.runners.path import record_profile

LAYERWISE = {"wa": WAPath, "bfly": BflyPath}


def fitting_inputs(ctx: RunContext, samples: int) -> torch.Tensor:
    """The training examples the layer-wise methods fit on: a seeded random subset."""
    x = ctx.data.x_train
    if samples <= 0 or samples >= len(x):
        return x
    generator = torch.Generator().manual_seed(int(ctx.cfg.seed))
    return x[torch.randperm(len(x), generator=generator)[:samples].to(x.device)]


def run_anokhin(ctx: RunContext) -> None:
    cfg, m = ctx.cfg, ctx.cfg.method
    view = NeuronView.from_model(ctx.model, tuple(ctx.data.x_train.shape[1:]), method=m.name)  # refuse early
    ctx.load_endpoints(2)
    a, b = ({k: s[k] for k in ctx.space.names} for s in ctx.states[:2])
    section: dict = {"method": m.name, "align": cfg.align.name, "hidden_layers": view.depth}
    with ctx.record.stage("build"):
        if m.name == "arc":
            path = ArcPath(ctx.space, view, ctx.space.flatten(a), ctx.space.flatten(b), points=int(m.points))
            section["connect"] = "arc"
        elif m.name in ("gauss", "flow"):
            if m.name == "gauss":   # fitted on both endpoints' neurons
                bijections = [Gaussianizer(torch.cat([x, y])) for x, y in zip(view.partition(a), view.partition(b))]
            else:
                from modeconn.training.neuron_flow import global_flows
                with ctx.record.stage("flow"):
                    bijections, section["flows"] = global_flows(cfg, ctx.data, view, ctx.store, m,
                                                                progress=bool(cfg.trainer.progress))
                bijections = [f.to(ctx.device) for f in bijections]
            path = LatentArcPath(ctx.space, view, a, b, bijections, points=int(m.points))
            section.update(connect="arc in the latent space", round_trip_error=path.round_trip_error())
        else:
            x_fit = fitting_inputs(ctx, int(m.fit_samples))
            fits = LayerFits(ctx.model, view, a, b, x_fit, ridge=float(m.ridge), fit_rows=int(m.fit_rows),
                             generator=torch.Generator().manual_seed(int(cfg.seed)))
            path = LAYERWISE[m.name](ctx.space, fits, connect_kind=m.connect,
                                     points_per_segment=int(m.points_per_segment))
            section.update(connect=m.connect, fit_samples=len(x_fit), ridge=float(m.ridge),
                           segments_count=path.segments)
    section["cost"] = method_cost(m.name, cfg.align.name, section.get("fit_samples"), m.get("pool"))
    ctx.record.data["anokhin"] = section
    title = f"{m.name} (align={cfg.align.name}) on {cfg.dataset.name} / {cfg.arch.name}, seed {cfg.seed}"
    record_profile(ctx, path.to(ctx.device), title)
    if hasattr(path, "describe"):
        section["segments"] = path.describe()
        residuals = [r for s in section["segments"] for r in (s.get("max_residual"), s.get("end_residual"))
                     if r is not None]
        if residuals:
            ctx.tracker.log_summary({"anokhin/max_residual": max(residuals)})
