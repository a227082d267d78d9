"""Methods that are ensembles, not paths: independent ensembles and FGE (Garipov et al. 2018).

Both record results.json's `ensemble` section: the final ensemble's test metrics,
`curve` (the metrics as members are added), `budget_epochs` (training epochs
spent, one model's full training = endpoint.epochs) and `baseline` (one
independently trained network).
"""
from __future__ import annotations

import copy

import torch
from omegaconf import OmegaConf

from modeconn.evaluation.ensemble import ensemble_metrics, growing_ensemble
from modeconn.runners.context import RunContext
from modeconn.store import load_state, spec_key
from modeconn.training.endpoints import endpoint_spec, new_model, obtain_endpoint
from modeconn.training.fge import check_cycle, fge_cycles, train_fge


def _ensemble_section(ctx: RunContext, vectors: list[torch.Tensor]) -> tuple[dict, list[dict]]:
    """(final ensemble metrics with `curve`, single-member metrics), BN recomputed per member."""
    y = ctx.data.y_test
    probs = [ctx.test_probs(v) for v in vectors]
    curve = growing_ensemble(probs, y)
    singles = [ensemble_metrics(p, y) for p in probs]
    return {**curve[-1], "curve": curve}, singles


def ensemble_log(ctx: RunContext, section: dict) -> None:
    ctx.tracker.log_summary({
        **{f"ensemble/{k}": section[k] for k in ("members", "test_acc", "test_nll", "test_ece", "test_brier")},
        **{f"baseline/{k}": v for k, v in section["baseline"].items() if isinstance(v, (int, float))},
    })


def run_ensemble(ctx: RunContext) -> None:
    """N independently trained networks (store endpoints 0..N-1), softmax-averaged."""
    cfg = ctx.cfg
    members = int(cfg.method.members)
    if members < 1:
        raise ValueError(f"method.members must be >= 1, got {members}")
    vectors = ctx.load_endpoints(members)
    with ctx.record.stage("evaluate"):
        section, singles = _ensemble_section(ctx, vectors)
    epochs = int(cfg.endpoint.epochs)
    section.update({
        "budget_epochs": members * epochs,
        "budget_models": float(members),
        "member_metrics": singles,
        "baseline": {**singles[0], "budget_epochs": epochs, "budget_models": 1.0},
    })
    ctx.record.data["ensemble"] = section
    ensemble_log(ctx, section)


def run_fge(ctx: RunContext) -> None:
    """Fast geometric ensembling from a network trained for `start_fraction` of the recipe."""
    cfg, m = ctx.cfg, ctx.cfg.method
    epochs = int(cfg.endpoint.epochs)
    fraction = float(m.start_fraction)
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"method.start_fraction must be in (0, 1], got {fraction}")
    cycle = check_cycle(m.cycle)
    start_epochs = max(1, round(fraction * epochs))
    # `budget` counts whole models' trainings (Garipov's FGE table: 1, 2, 3 budgets).
    cycles = fge_cycles(int(round(float(m.get("budget", 1)) * epochs)), start_epochs, cycle, m.get("cycles"))

    # The independent baseline: endpoint 0 with the full recipe.
    baseline_vector = ctx.load_endpoints(1)[0]

    # The start network: endpoint 0's recipe cut to start_epochs (its own store entry).
    start_cfg = copy.deepcopy(cfg)
    OmegaConf.update(start_cfg, "endpoint.epochs", start_epochs, merge=False)
    with ctx.record.stage("endpoints"):
        entry, cached = obtain_endpoint(start_cfg, ctx.data, 0, ctx.store)
    model = new_model(cfg, ctx.data).to(ctx.device)
    load_state(model, entry.state, source=str(ctx.store.entry_dir(entry.key)))
    start_vector = ctx.space.flatten(entry.state).to(ctx.device)

    recipe = OmegaConf.to_container(cfg.endpoint, resolve=True)
    spec = endpoint_spec(start_cfg, 0)
    seed = spec["seed"] + 500_000     # FGE batches differ from the start network's own
    fge_spec = {"start": entry.key, "cycle": cycle, "cycles": cycles, "lr_1": float(m.lr_1),
                "lr_2": float(m.lr_2), "momentum": float(recipe["momentum"]), "wd": float(recipe["wd"]),
                "batch_size": int(recipe["batch_size"]), "limit_batches": recipe.get("limit_batches"),
                "seed": seed}
    work_dir = ctx.out_dir / "fge_work" / spec_key(fge_spec)
    with ctx.record.stage("train_fge"):
        snapshots, info = train_fge(model, ctx.data, ctx.space.flatten, cycle=cycle, cycles=cycles,
                                    lr_1=fge_spec["lr_1"], lr_2=fge_spec["lr_2"], momentum=fge_spec["momentum"],
                                    wd=fge_spec["wd"], batch_size=fge_spec["batch_size"],
                                    limit_batches=fge_spec["limit_batches"], seed=seed, work_dir=work_dir,
                                    trainer_cfg=cfg.trainer,
                                    identity={**fge_spec, "precision": str(cfg.trainer.get("precision", "32-true"))})
    if len(snapshots) != cycles:
        raise RuntimeError(f"FGE took {len(snapshots)} snapshots for {cycles} cycles")

    with ctx.record.stage("evaluate"):
        section, singles = _ensemble_section(ctx, snapshots)
        baseline = ensemble_metrics(ctx.test_probs(baseline_vector), ctx.data.y_test)
        start = ensemble_metrics(ctx.test_probs(start_vector), ctx.data.y_test)
    budget = start_epochs + cycles * cycle
    section.update({
        "budget_epochs": budget,
        "budget_models": budget / epochs,
        "member_metrics": singles,
        "start": {"key": entry.key, "cached": cached, "epochs": start_epochs, **start},
        "fge": {"cycle": cycle, "cycles": cycles, "lr_1": fge_spec["lr_1"], "lr_2": fge_spec["lr_2"],
                "start_fraction": fraction, **info},
        "baseline": {"key": ctx.record.data["endpoints"][0]["key"], **baseline,
                     "budget_epochs": epochs, "budget_models": 1.0},
    })
    ctx.record.data["ensemble"] = section
    ensemble_log(ctx, section)
