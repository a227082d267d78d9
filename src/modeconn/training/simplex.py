"""SPRO (Benton et al. 2021): grow a simplex or a complex one vertex at a time.

Each new vertex starts at the centroid of all existing vertices and is the only
one that trains (the others are buffers), for `epochs_per_vertex` epochs with a
cosine LR, `n_sample` Dirichlet points per minibatch, and the volume term
-lambda log(V + 1e-4) through the shared Path trainer. Every vertex trains in its
own checkpoint directory, so a killed run resumes at the vertex it was on.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
from modeconn.paths.simplex import SimplicialComplexPath, squared_volume
from modeconn.training.endpoints import new_model
from modeconn.training.path_trainer import train_path

VOLUME_EPS = 1e-4
# Seeds of the randomly initialised networks whose simplex sets lambda's scale.
RANDOM_SIMPLEX_SEED = 7_000_000


def volume_weight(ctx, n_vertices: int, lmbda: float) -> float:
    """Benton's lambda for a simplex of `n_vertices`: lmbda / log(V_rand + 1e-4), V_rand the
    Cayley-Menger volume of a simplex of freshly initialised networks of this architecture,
    floored at 1e-8 as the reference code does (`reg_pars`)."""
    if lmbda == 0.0 or n_vertices < 2:
        return 0.0
    vectors = []
    with torch.random.fork_rng(devices=[]):
        for i in range(n_vertices):
            torch.manual_seed(RANDOM_SIMPLEX_SEED + i)
            model = new_model(ctx.cfg, ctx.data)
            vectors.append(ctx.space.flatten(dict(model.named_parameters())))
    log_volume = math.log(float(squared_volume(torch.stack(vectors))) + VOLUME_EPS)
    return max(lmbda / log_volume, 1e-8) if log_volume != 0 else 1e-8


def grow(ctx, vertices: list[torch.Tensor], simplexes: list[list[int]], *, join: list[int], count: int,
         work_dir, volume_from: int = 0) -> tuple[SimplicialComplexPath, list[dict]]:
    """Add `count` trained vertices to the complex (`vertices`, `simplexes`), each joining the
    simplexes numbered in `join`. The volume term is off for the first `volume_from` new
    vertices (Benton's complexes train the first connector without it).

    Returns the final path (all vertices fixed but the last) and one record per new vertex.
    """
    method = ctx.cfg.method
    recipe = method.train      # epochs = epochs_per_vertex, cosine LR (conf/method/simplex.yaml)
    history, path = [], None
    for step in range(count):
        size = max(len(s) for s in simplexes) + 1
        lmbda = volume_weight(ctx, size, float(method.lmbda)) if step >= volume_from else 0.0
        path = SimplicialComplexPath.grown(ctx.space, vertices, simplexes, join, lmbda=lmbda,
                                           eps=VOLUME_EPS).to(ctx.device)
        if recipe.epochs > 0:
            train_path(path, ctx, recipe, work_dir / f"vertex{len(vertices)}", samples=int(method.n_sample),
                       name=f"{Path(work_dir).name} vertex {len(vertices)}")
        vertices = list(path.control_points())
        simplexes = path.simplexes
        history.append({"vertex": len(vertices) - 1, "lmbda": lmbda, "volume": path.volumes()})
    return path, history
