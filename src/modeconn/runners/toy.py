"""Fort & Jastrzebski 2019's wedge model (`method=toy`): the three predictions measured on the
phenomenological landscape (modeconn.toy), no data or network needed."""
from __future__ import annotations

from modeconn.runners.context import RunContext
from modeconn.toy.experiments import run_all


def run_toy(ctx: RunContext) -> None:
    with ctx.record.stage("toy"):
        section = run_all(ctx.cfg.method, ctx.out_dir, seed=int(ctx.cfg.seed))
    ctx.record.data["toy"] = section
    for name in section["files"]:
        ctx.tracker.log_image(f"toy/{name.removesuffix('.png')}", ctx.out_dir / name)
    connect, cuts = section["connect"], section["cuts"]
    ctx.tracker.log_summary({"toy/linear_max_loss": connect["linear_max_loss_mean"],
                             "toy/path_max_loss": connect["path_max_loss_mean"],
                             **{f"toy/dim_needed_r{r:g}": d for r, d in zip(cuts["radii"], cuts["dim_needed"])}})
