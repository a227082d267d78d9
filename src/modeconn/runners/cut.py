"""Fort & Jastrzebski 2019's random cuts on real networks (`method=cut`).

Training is restricted to a random d-dimensional affine subspace w = anchor + E z
(`paths.cut.RandomCut`) through a point at `radius_scale` times a fresh network's
initial radius (the anchor is that initialisation scaled). Sweeping `method.dim` and
`method.radius_scale` gives the accuracy reached against d for each radius: the wedge
model predicts that cuts farther from the origin need fewer dimensions.
"""
from __future__ import annotations

from modeconn.paths.cut import RandomCut
from modeconn.runners.context import RunContext
from modeconn.training.endpoints import endpoint_seed
from modeconn.training.path_trainer import train_path

CUT_SEED_OFFSET = 500   # the anchor's initialisation: endpoint_seed(seed, 500), apart from the endpoints'


def run_cut(ctx: RunContext) -> None:
    cfg, m = ctx.cfg, ctx.cfg.method
    if float(m.radius_scale) <= 0:
        raise ValueError(f"method.radius_scale must be > 0, got {m.radius_scale}")
    seed = endpoint_seed(cfg.seed, CUT_SEED_OFFSET)
    init = ctx.initial_vector(seed)
    anchor = float(m.radius_scale) * init
    cut = RandomCut(ctx.space, anchor, int(m.dim), seed=seed, density=m.density).to(ctx.device)
    with ctx.record.stage("train_path"):
        train_path(cut, ctx, m.train, ctx.out_dir / "checkpoints" / "cut", name="random cut")
    with ctx.record.stage("evaluate"):
        final = cut.vector().detach()
        anchor_metrics = ctx.evaluate(anchor).as_dict()
        metrics = ctx.evaluate(final).as_dict()
    section = {"dim": int(m.dim), "radius_scale": float(m.radius_scale), "parameters": int(init.numel()),
               "nonzeros": int(cut.values.numel()), "init_radius": float(init.norm()),
               "anchor_radius": float(anchor.norm()), "final_radius": float(final.norm()),
               "distance_travelled": float((final - anchor).norm()), "anchor_test_err": anchor_metrics["test_err"],
               **metrics}
    ctx.record.data["cut"] = section
    ctx.tracker.log_summary({f"cut/{k}": v for k, v in section.items()})
