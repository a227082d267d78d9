"""Benton et al. 2021: SPRO simplexes with their ESPRO ensemble, and mode-connecting complexes.

`method=simplex`: one simplex grown by SPRO from each of `components` trained
endpoints. Records the `simplex` section (component 0's vertices, volume, vertex
and centroid test errors; every component under `components`) and the
`ensemble` section: ESPRO (the mean prediction of `samples` Dirichlet points from
each simplex) as components are added, against deep ensembles of the same number
of members (`baseline`) and of the same training cost (`baseline_equal_cost`).

`method=complex`: `modes` endpoints joined by `connectors` shared vertices, every
simplex {mode_i, connectors...} trained to low loss; records the `complex` section
and, as a 1-D profile, the path mode 0 -> centroid of the connectors -> mode 1.
"""
from __future__ import annotations

import math

from modeconn.evaluation.ensemble import growing_ensemble
from modeconn.evaluation.plots import plot_ensemble_curves
from modeconn.evaluation.simplex import evaluate_complex, simplex_slice
from modeconn.paths.curves import PolyChainPath
from modeconn.paths.simplex import SimplicialComplexPath
from modeconn.runners.context import RunContext
from modeconn.runners.ensemble import ensemble_log
from modeconn.runners.path import record_profile
from modeconn.training.simplex import grow


def _positive(method, *keys) -> None:
    for key in keys:
        if int(method[key]) < 1:
            raise ValueError(f"method.{key} must be >= 1, got {method[key]}")


def _fixed(ctx: RunContext, vertices, simplexes) -> SimplicialComplexPath:
    return SimplicialComplexPath(ctx.space, list(vertices), [False] * len(vertices), simplexes).to(ctx.device)


def spro_budget(cfg) -> float:
    """One SPRO component's cost in epochs of forward-backward passes: the base network's
    training plus n_sample passes per batch for every epoch of every added vertex."""
    m = cfg.method
    return float(cfg.endpoint.epochs) + (int(m.vertices) - 1) * int(m.epochs_per_vertex) * int(m.n_sample)


def run_simplex(ctx: RunContext) -> None:
    cfg, m = ctx.cfg, ctx.cfg.method
    _positive(m, "vertices", "components", "samples", "n_sample")
    components = int(m.components)
    bases = ctx.load_endpoints(components)
    records, member_probs, plane = [], [], None
    for c, base in enumerate(bases):
        if int(m.vertices) > 1:
            with ctx.record.stage("train_path"):
                path, history = grow(ctx, [base], [[0]], join=[0], count=int(m.vertices) - 1,
                                     work_dir=ctx.out_dir / "checkpoints" / f"simplex{c}")
        else:
            path, history = _fixed(ctx, [base], [[0]]), []
        with ctx.record.stage("evaluate"):
            record, probs = evaluate_complex(ctx, path, samples=int(m.samples), seed=1000 * int(cfg.seed) + c,
                                             progress=cfg.trainer.progress)
        records.append({"endpoint": ctx.record.data["endpoints"][c]["key"], "growth": history,
                        "volume": record["volume"][0], "vertex_metrics": record["vertices"],
                        "centroid": record["simplexes"][0]["centroid"], "samples": record["simplexes"][0]["samples"]})
        member_probs.append(probs[0])
        if c == 0 and m.plane and int(m.vertices) >= 3:
            with ctx.record.stage("plane"):
                plane = simplex_slice(ctx, list(path.control_points()))
    first = records[0]
    section = {"vertices": int(m.vertices), "components": components, "lmbda": float(m.lmbda),
               "epochs_per_vertex": int(m.epochs_per_vertex), "n_sample": int(m.n_sample),
               "volume": first["volume"], "vertex_test_err": [v["test_err"] for v in first["vertex_metrics"]],
               "centroid_test_err": first["centroid"]["test_err"], "per_component": records}
    if plane is not None:
        section["plane"] = plane
    ctx.record.data["simplex"] = section
    ctx.record.data["ensemble"] = _espro_vs_deep_ensembles(ctx, member_probs)
    ctx.tracker.log_summary({"simplex/volume": section["volume"],
                             "simplex/centroid_test_err": section["centroid_test_err"],
                             "simplex/max_vertex_test_err": max(section["vertex_test_err"])})
    ensemble_log(ctx, ctx.record.data["ensemble"])


def _espro_vs_deep_ensembles(ctx: RunContext, member_probs) -> dict:
    """ESPRO's growing ensemble beside deep ensembles of equal size and of equal training cost."""
    cfg, m = ctx.cfg, ctx.cfg.method
    y = ctx.data.y_test
    components = len(member_probs)
    epochs = float(cfg.endpoint.epochs)
    budget = components * spro_budget(cfg)
    equal_cost = max(components, math.floor(budget / epochs + 1e-9)) if m.equal_cost_baseline else components
    networks = ctx.load_endpoints(equal_cost)        # trains the extra members once (store)
    with ctx.record.stage("evaluate"):
        deep = growing_ensemble([ctx.test_probs(v) for v in networks], y)
        espro = growing_ensemble(member_probs, y)
    section = {**espro[-1], "curve": espro, "samples_per_component": int(m.samples), "budget_epochs": budget,
               "baseline": {**deep[components - 1], "curve": deep[:components],
                            "budget_epochs": components * epochs}}
    if m.equal_cost_baseline:
        section["baseline_equal_cost"] = {**deep[equal_cost - 1], "curve": deep, "budget_epochs": equal_cost * epochs}
    curves = {"ESPRO": espro, "deep ensemble": deep}
    picture = plot_ensemble_curves(curves, ctx.out_dir / "ensemble.png",
                                   title=f"ESPRO ({int(m.vertices)}-vertex simplexes) vs deep ensembles, "
                                         f"{cfg.dataset.name} / {cfg.arch.name}")
    ctx.tracker.log_image("ensemble/picture", picture)
    return section


def run_complex(ctx: RunContext) -> None:
    cfg, m = ctx.cfg, ctx.cfg.method
    _positive(m, "connectors", "samples", "n_sample")
    modes = int(m.modes)
    if modes < 2:
        raise ValueError(f"method.modes must be >= 2 (a complex connects modes), got {modes}")
    endpoints = ctx.load_endpoints(modes)
    with ctx.record.stage("train_path"):
        # Benton's complex_iterative: the first connector trains without the volume term.
        path, history = grow(ctx, list(endpoints), [[i] for i in range(modes)], join=list(range(modes)),
                             count=int(m.connectors), work_dir=ctx.out_dir / "checkpoints" / "complex",
                             volume_from=1)
    with ctx.record.stage("evaluate"):
        record, _ = evaluate_complex(ctx, path, samples=int(m.samples), seed=1000 * int(cfg.seed),
                                     progress=cfg.trainer.progress)
    vertices = list(path.control_points())
    connectors = vertices[modes:]
    section = {"modes": modes, "connectors": int(m.connectors), "lmbda": float(m.lmbda),
               "epochs_per_vertex": int(m.epochs_per_vertex), "n_sample": int(m.n_sample),
               "simplexes": path.simplexes, "volume": record["volume"], "growth": history,
               "connector_test_err": [v["test_err"] for v in record["vertices"][modes:]],
               "centroid_test_err": [s["centroid"]["test_err"] for s in record["simplexes"]],
               "sample_test_err_max": [s["samples"]["test_err_max"] for s in record["simplexes"]],
               "vertex_metrics": record["vertices"], "per_simplex": record["simplexes"]}
    ctx.record.data["complex"] = section

    # Mode 0 to mode 1 inside the complex: through the connectors' centroid (a face shared by both simplexes).
    hub = sum(connectors) / len(connectors)
    route = PolyChainPath(ctx.space, endpoints[0], endpoints[1], num_bends=3, points=int(m.points))
    route.free.data.copy_(hub.unsqueeze(0))
    record_profile(ctx, route.to(ctx.device), f"complex: mode 0 -> connectors' centroid -> mode 1, "
                                              f"{cfg.dataset.name} / {cfg.arch.name}, seed {cfg.seed}")
    if m.plane and len(vertices) >= 3:
        with ctx.record.stage("plane"):
            section["plane"] = simplex_slice(ctx, [endpoints[0], endpoints[1], hub], name="complex_slice",
                                             labels=("modes 0, 1", "connectors' centroid", "edges"))
    ctx.tracker.log_summary({"complex/max_centroid_test_err": max(section["centroid_test_err"])})
