"""Kuditipudi et al. 2019: dropout stability of two endpoints and the path it guarantees.

`method=dropout` measures each endpoint's loss against the keep probability
(`dropout.stability`), searches disjoint kept sets for the path, measures
eps (the larger of the two nets' dropout-stability gaps over the dropped-out
versions the path visits, on all training data), builds the constructed path
(paths/dropout.py) and evaluates it on the usual protocol with every segment
sampled. Records `segments` (kind, ends, losses; `max_logit_change` of the
function-preserving ones on training inputs), `epsilon`, `bound` =
max(L_A, L_B) + eps, the `dropout` section and the straight line A -> B (`line`).
"""
from __future__ import annotations

import torch
from torch.func import functional_call

from modeconn.evaluation.plots import plot_dropout_path, plot_stability
from modeconn.evaluation.profile import evaluate_path
from modeconn.evaluation.stability import Losses, search_path_masks, stability_curve
from modeconn.paths.dropout import FUNCTION_PRESERVING, VARIANTS, PiecewiseLinearPath, construct
from modeconn.paths.linear import LinearPath
from modeconn.paths.units import UnitChain
from modeconn.runners.context import RunContext


def run_dropout(ctx: RunContext) -> None:
    cfg, m = ctx.cfg, ctx.cfg.method
    if m.variant not in VARIANTS:
        raise ValueError(f"method.variant must be one of {VARIANTS}, got {m.variant!r}")
    keep = float(m.keep)
    chain = UnitChain.from_model(ctx.model, tuple(ctx.data.x_train.shape[1:]))   # refuse early, before training
    ctx.load_endpoints(2)
    states = ctx.states[:2]
    generator = torch.Generator().manual_seed(int(cfg.seed))
    x, y = ctx.data.x_train, ctx.data.y_train
    subset = torch.randperm(len(x), generator=generator)[: int(m.search_samples)].to(x.device)
    search = Losses(ctx.model, x[subset], y[subset], int(cfg.eval.batch_size))
    full = Losses(ctx.model, x, y, int(cfg.eval.batch_size))
    progress = bool(cfg.trainer.progress)

    with ctx.record.stage("stability"):
        curves = [stability_curve(search, chain, s, list(m.stability.keeps), int(m.stability.draws), generator,
                                  progress) for s in states]
        starts = list(range(chain.depth)) if m.variant == "dropout" else [0]
        masks_a, masks_b, search_record = search_path_masks(search, chain, states, keep, int(m.draws), starts,
                                                            generator, progress)
        nets = []
        for i, (state, masks) in enumerate(zip(states, (masks_a, masks_b))):
            base = ctx.record.data["endpoints"][i]["train_nll"]   # the protocol's, on all training data
            dropped = full.suffixes(state, chain, masks, keep, starts)
            nets.append({"train_nll": base, "subset_train_nll": search_record["train_nll"][i],
                         "dropped_train_nll": dict(zip([str(start) for start in starts], dropped)),
                         "epsilon": max(0.0, max(dropped) - base),
                         "kept": [int(len(mask)) for mask in masks]})
    epsilon = max(n["epsilon"] for n in nets)
    ends = max(n["train_nll"] for n in nets)
    bound = ends + epsilon

    vertices, kinds = construct(m.variant, states[0], states[1], chain, masks_a, masks_b, keep)
    path = PiecewiseLinearPath(ctx.space, [ctx.space.flatten(v) for v in vertices],
                               int(m.points_per_segment)).to(ctx.device)
    del vertices
    with ctx.record.stage("evaluate"):
        profile, summary = evaluate_path(path, ctx.model, ctx.data, progress=progress, **ctx.eval_kwargs())
        segments = describe_segments(ctx, path, kinds, profile, x[subset[: int(m.check_samples)]])
        line = None
        if int(m.line_points) >= 2:
            straight = LinearPath(ctx.space, path.control_points()[0], path.control_points()[-1],
                                  points=int(m.line_points)).to(ctx.device)
            line_profile, line_summary = evaluate_path(straight, ctx.model, ctx.data, progress=progress,
                                                       **ctx.eval_kwargs())
            line = {**line_profile, "summary": line_summary}

    peak = max(profile["train_nll"])
    record = ctx.record.data
    record["path"], record["summary"], record["segments"] = profile, summary, segments
    record["epsilon"], record["bound"] = epsilon, bound
    record["dropout"] = {
        "variant": m.variant, "keep": keep, "hidden_layers": chain.depth, "segments": len(kinds),
        "max_train_nll": peak, "bound_holds": bool(peak <= bound + 1e-6), "endpoints": nets,
        "search": search_record, "stability": curves,
    }
    if line is not None:
        record["line"] = line
    title = f"{m.variant} path, {cfg.dataset.name} / {cfg.arch.name}, seed {cfg.seed}"
    pictures = {"path/picture": plot_dropout_path(profile, kinds, bound, ends, line, ctx.out_dir / "path.png",
                                                  title=title),
                "stability/picture": plot_stability(curves, [n["subset_train_nll"] for n in nets],
                                                    ctx.out_dir / "stability.png",
                                                    title=f"dropout stability, {cfg.dataset.name} / {cfg.arch.name}")}
    ctx.tracker.log_profile(profile)
    for name, picture in pictures.items():
        ctx.tracker.log_image(name, picture)
    ctx.tracker.log_summary({"dropout/epsilon": epsilon, "dropout/bound": bound, "dropout/max_train_nll": peak,
                             "dropout/segments": len(kinds),
                             **({"line/max_train_nll": max(line["train_nll"])} if line else {})})


@torch.no_grad()
def describe_segments(ctx: RunContext, path: PiecewiseLinearPath, kinds: list[str], profile: dict,
                      x_check: torch.Tensor) -> list[dict]:
    """Per segment: its kind, its ends in t, the train loss at both ends and its maximum along
    the grid; for function-preserving segments the largest change of any logit on ``x_check``
    between the segment's start and each of its grid points."""
    t = torch.tensor(profile["t"])
    loss = torch.tensor(profile["train_nll"])
    logits = lambda coords: functional_call(ctx.model, path.weights(coords.to(path.device)), (x_check,))  # noqa: E731
    ctx.model.eval()
    out = []
    for k, kind in enumerate(kinds):
        inside = (t >= k) & (t <= k + 1)
        entry = {"index": k, "kind": kind, "start": float(k), "end": float(k + 1),
                 "train_nll_start": float(loss[t == k][0]), "train_nll_end": float(loss[t == k + 1][0]),
                 "train_nll_max": float(loss[inside].max())}
        if kind == FUNCTION_PRESERVING:
            reference = logits(torch.tensor([float(k)]))
            entry["max_logit_change"] = max(float((logits(c.reshape(1)) - reference).abs().max())
                                            for c in t[inside][1:])
        out.append(entry)
    return out
