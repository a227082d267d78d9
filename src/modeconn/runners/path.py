"""Methods that build a Path between endpoints: build, train if it has parameters, evaluate."""
from __future__ import annotations

from modeconn.evaluation.plots import plot_profile
from modeconn.evaluation.profile import evaluate_path
from modeconn.paths import build_path
from modeconn.runners.context import RunContext


def run_path(ctx: RunContext) -> None:
    cfg = ctx.cfg
    endpoints = ctx.load_endpoints(cfg.method.endpoints)
    path = build_path(cfg.method, ctx.space, endpoints).to(ctx.device)
    if path.trainable:
        from modeconn.training.path_trainer import train_path
        with ctx.record.stage("train_path"):
            train_path(path, ctx)
    with ctx.record.stage("evaluate"):
        profile, summary = evaluate_path(path, ctx.model, ctx.data, progress=cfg.trainer.progress,
                                         **ctx.eval_kwargs())
    ctx.record.data["path"], ctx.record.data["summary"] = profile, summary
    picture = plot_profile(profile, ctx.out_dir / "path.png",
                           title=f"{cfg.method.name} on {cfg.dataset.name} / {cfg.arch.name}, seed {cfg.seed}")
    ctx.tracker.log_profile(profile)
    ctx.tracker.log_image("path/picture", picture)
    ctx.tracker.log_summary({
        **{f"barrier/{k}": v for k, v in summary["barrier"].items()},
        **{f"max/{k}": summary[k]["max"] for k in ("train_loss", "test_nll", "test_err")},
        **{f"endpoint{i}/{k}": v for i, e in enumerate(ctx.record.data["endpoints"])
           for k, v in e.items() if k not in ("key", "cached")},
    })
