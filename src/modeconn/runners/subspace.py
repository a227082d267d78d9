"""Fort & Jastrzebski 2019's low-loss subspace joining `method.modes` >= 3 optima.

Trains the connectors of a `SubspacePath` (every triangle {m_i, e_ij, c} sampled
uniformly, a flat Dirichlet point in it, the shared Path trainer), then records
the `subspace` section: test error over a barycentric grid of every triangle of
optima on the trained surface and on the flat triangle, the connectors' full
metrics, and the diversity study (ensembles of the optima vs of points from mode
0's low-loss neighbourhood vs of points sampled over the whole subspace). The 1-D
profile is the surface's edge mode 0 -> e_01 -> mode 1.
"""
from __future__ import annotations

import torch

from modeconn.evaluation.ensemble import diversity
from modeconn.evaluation.subspace import evaluate_subspace, plot_subspace
from modeconn.paths.curves import PolyChainPath
from modeconn.paths.simplex import flat_dirichlet
from modeconn.paths.subspace import SubspacePath
from modeconn.runners.context import RunContext
from modeconn.runners.path import record_profile
from modeconn.training.path_trainer import train_path


def neighbourhood_coords(path: SubspacePath, count: int, rho: float, generator: torch.Generator) -> torch.Tensor:
    """`count` points of the surface near mode 0: a Dirichlet point of a triangle {m_0, e_0j, c},
    pulled towards m_0 by 1 - rho (convex in one triangle, so still on the surface)."""
    around = [s for s, simplex in enumerate(path.simplexes) if 0 in simplex]
    rows = []
    for k in range(count):
        simplex = around[k % len(around)]
        point = path.embed(simplex, flat_dirichlet(1, 3, generator))[0]
        rows.append((1 - rho) * path.vertex_coords(0) + rho * point)
    return torch.stack(rows)


def ensembles_by_origin(ctx: RunContext, path: SubspacePath, members: int, rho: float, seed: int) -> dict:
    """Diversity and ensemble gain of `members` networks from different optima, from mode 0's
    low-loss neighbourhood, and from the whole subspace."""
    generator = torch.Generator().manual_seed(seed)
    y = ctx.data.y_test
    optima = [ctx.test_probs(v) for v in path.vertex_tensor(list(range(path.modes))).detach()[:members]]

    def probs(coords: torch.Tensor) -> list[torch.Tensor]:
        return [ctx.test_probs(path.vector(c.to(path.device)).detach()) for c in coords]

    return {"different_optima": diversity(optima, y),
            "one_optimum_neighbourhood": diversity(probs(neighbourhood_coords(path, members, rho, generator)), y),
            "subspace_samples": diversity(probs(path.sample_coords(members, generator)), y),
            "rho": rho}


def run_subspace(ctx: RunContext) -> None:
    cfg, m = ctx.cfg, ctx.cfg.method
    modes = int(m.modes)
    if modes < 3:
        raise ValueError(f"method.modes must be >= 3 (a subspace joins a set of optima), got {modes}")
    optima = ctx.load_endpoints(modes)
    generator = torch.Generator().manual_seed(1000 * int(cfg.seed) + 1)
    path = SubspacePath(ctx.space, list(optima), noise=float(m.init_noise), generator=generator,
                        points=int(m.points)).to(ctx.device)
    if int(m.train.epochs) > 0:
        with ctx.record.stage("train_path"):
            train_path(path, ctx, m.train, ctx.out_dir / "checkpoints" / "subspace", samples=int(m.n_sample),
                       name="subspace connectors")
    with ctx.record.stage("evaluate"):
        connectors = [ctx.evaluate(v.detach()).as_dict() for v in path.vertex_tensor()[modes:]]
        grid = evaluate_subspace(ctx, path, steps=int(m.grid), progress=cfg.trainer.progress)
        origins = ensembles_by_origin(ctx, path, min(modes, int(m.ensemble_members)) if m.ensemble_members else modes,
                                      float(m.neighbourhood), seed=1000 * int(cfg.seed) + 2)
    optima_err = [e["test_err"] for e in ctx.record.data["endpoints"][:modes]]
    picture = plot_subspace(grid, optima_err, ctx.out_dir / "subspace.png",
                            title=f"low-loss subspace joining {modes} optima vs their flat triangle, "
                                  f"{cfg.dataset.name} / {cfg.arch.name}, seed {cfg.seed}")
    section = {"modes": modes, "connectors": len(connectors), "n_sample": int(m.n_sample),
               "epochs": int(m.train.epochs), "simplexes": path.simplexes, "optima_test_err": optima_err,
               "connector_metrics": connectors, **grid,
               "subspace_gap": grid["subspace_test_err_max"] - max(optima_err),
               "flat_gap": grid["flat_test_err_max"] - max(optima_err),
               "diversity": origins, "files": [picture.name]}
    ctx.record.data["subspace"] = section
    ctx.tracker.log_image("subspace/picture", picture)
    ctx.tracker.log_summary({f"subspace/{k}": section[k] for k in
                             ("subspace_test_err_max", "flat_test_err_max", "subspace_gap", "flat_gap")})

    route = PolyChainPath(ctx.space, optima[0], optima[1], num_bends=3, points=int(m.points))
    route.free.data.copy_(path.vertex_tensor([path.edge(0, 1)]).detach())
    record_profile(ctx, route.to(ctx.device), f"subspace edge: optimum 0 -> e_01 -> optimum 1, "
                                              f"{cfg.dataset.name} / {cfg.arch.name}, seed {cfg.seed}")
