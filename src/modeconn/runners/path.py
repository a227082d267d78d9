"""Methods that build a Path between endpoints: build, train if it has parameters, evaluate."""
from __future__ import annotations

from modeconn.evaluation.plane import evaluate_plane, plane_through, save_plane
from modeconn.evaluation.plots import plot_profile
from modeconn.evaluation.profile import evaluate_path
from modeconn.paths import build_path
from modeconn.runners.context import RunContext
from modeconn.runners.repair import point_transform


def run_path(ctx: RunContext) -> None:
    cfg = ctx.cfg
    endpoints = ctx.load_endpoints(cfg.method.endpoints)
    if cfg.method.get("pam") and cfg.method.pam.enabled:
        from modeconn.training.pam import build_pam_path, train_pam
        path = build_pam_path(ctx, endpoints)
        with ctx.record.stage("train_path"):
            ctx.record.data["pam"] = train_pam(path, ctx)
    else:
        path = build_path(cfg.method, ctx.space, endpoints).to(ctx.device)
        if path.trainable:
            from modeconn.training.path_trainer import train_path
            with ctx.record.stage("train_path"):
                train_path(path, ctx, name=f"{cfg.method.name} curve")
    transform = point_transform(ctx) if cfg.method.name == "linear" else None
    record_profile(ctx, path, f"{cfg.method.name} on {cfg.dataset.name} / {cfg.arch.name}, seed {cfg.seed}",
                   transform=transform)
    if transform is not None:
        transform.finish()
    if cfg.method.get("plane") and getattr(path, "free", None) is not None and path.free.shape[0]:
        with ctx.record.stage("plane"):
            write_plane(path, endpoints, ctx)
    ctx.tracker.log_summary({
        **{f"endpoint{i}/{k}": v for i, e in enumerate(ctx.record.data["endpoints"])
           for k, v in e.items() if k not in ("key", "cached")},
    })


def record_profile(ctx: RunContext, path, title: str, transform=None) -> dict:
    """Evaluate a 1-D path on its grid with the protocol; record `path` and `summary`, draw
    path.png and log both. Every method with a mode-to-mode route shares this. `transform`
    changes each point before it is measured (REPAIR, see runners/repair.py)."""
    with ctx.record.stage("evaluate"):
        profile, summary = evaluate_path(path, ctx.model, ctx.data, progress=ctx.cfg.trainer.progress,
                                         transform=transform, **ctx.eval_kwargs())
    ctx.record.data["path"], ctx.record.data["summary"] = profile, summary
    picture = plot_profile(profile, ctx.out_dir / "path.png", title=title)
    ctx.tracker.log_profile(profile)
    ctx.tracker.log_image("path/picture", picture)
    ctx.tracker.log_summary({**{f"barrier/{k}": v for k, v in summary["barrier"].items()},
                             **{f"max/{k}": summary[k]["max"] for k in ("train_loss", "test_nll", "test_err")}})
    return summary


def write_plane(path, endpoints, ctx: RunContext) -> None:
    """Garipov's figure: the plane through both endpoints and the middle bend, with the curve on it."""
    bend = path.free.detach()[(path.free.shape[0] - 1) // 2]
    plane = plane_through(endpoints[0], endpoints[1], bend)
    curve = [path.vector(t.to(ctx.device)).detach() for t in path.grid()]
    result = evaluate_plane(ctx.model, ctx.space, plane, ctx.data, grid=ctx.cfg.method.plane_grid,
                            margin=ctx.cfg.method.plane_margin, anchors=[endpoints[0], endpoints[1], bend],
                            curve=curve, progress=ctx.cfg.trainer.progress, **ctx.eval_kwargs())
    files = save_plane(result, ctx.out_dir, name="plane")
    ctx.record.data["plane"] = {"grid": ctx.cfg.method.plane_grid, "margin": ctx.cfg.method.plane_margin,
                                "files": [f.name for f in files],
                                "max_curve_distance": float(max(result["curve_dist"]))}
    for f in files[1:]:
        ctx.tracker.log_image(f"plane/{f.stem}", f)
