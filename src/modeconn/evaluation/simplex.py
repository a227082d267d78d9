"""Evaluating a simplex or complex (Benton et al. 2021): its vertices, centroids and samples.

Vertices and every simplex's centroid get the full protocol (BN recomputed,
train loss, train/test NLL and error). Sampled points get their test-set
predictions (BN recomputed each), from which their error and NLL follow; the
mean of a simplex's sample predictions is that simplex's ESPRO ensemble member.
"""
from __future__ import annotations

import numpy as np
import torch
from modeconn.progress import Progress

from modeconn.evaluation.ensemble import ensemble_metrics
from modeconn.paths.simplex import SimplicialComplexPath


def _outline(points: list[torch.Tensor], per_edge: int = 12) -> list[torch.Tensor]:
    """The closed polygon v0 -> v1 -> ... -> v0 as weight vectors (for drawing a simplex's edges)."""
    ring = [*points, points[0]]
    return [a + (b - a) * (i / per_edge) for a, b in zip(ring[:-1], ring[1:]) for i in range(per_edge)] + [ring[-1]]


@torch.no_grad()
def evaluate_complex(ctx, path: SimplicialComplexPath, *, samples: int, seed: int,
                     progress: bool = True) -> tuple[dict, list[torch.Tensor]]:
    """(record, per-simplex mean test probabilities) of `path`.

    The record has `vertices` (metrics of each), `volume` (Euclidean, per simplex)
    and `simplexes`: for each its vertex indices, `centroid` metrics and `samples`
    (count, mean / max test error, mean test NLL of the sampled points).
    """
    generator = torch.Generator().manual_seed(int(seed))
    y = ctx.data.y_test
    n = path.coord_dim
    steps = n + len(path.simplexes) * (1 + samples)
    bar = Progress(total=steps, desc="evaluating simplex", enabled=progress)

    def measure(coords: torch.Tensor) -> dict:
        metrics = ctx.evaluate(path.vector(coords.to(path.device)).detach()).as_dict()
        bar.update()
        return metrics

    record = {"vertices": [measure(path.vertex_coords(i)) for i in range(n)], "volume": path.volumes(),
              "simplexes": []}
    mean_probs = []
    for s, members in enumerate(path.simplexes):
        centroid = measure(path.centroid_coords(s))
        total, errs, nlls = None, [], []
        for coords in path.sample_in(s, samples, generator):
            probs = ctx.test_probs(path.vector(coords.to(path.device)).detach())
            m = ensemble_metrics(probs, y)
            errs.append(100.0 - m["test_acc"])
            nlls.append(m["test_nll"])
            total = probs if total is None else total + probs
            bar.update()
        record["simplexes"].append({
            "vertices": list(members), "centroid": centroid,
            "samples": {"n": samples, "test_err_mean": float(np.mean(errs)) if errs else None,
                        "test_err_max": float(np.max(errs)) if errs else None,
                        "test_nll_mean": float(np.mean(nlls)) if nlls else None}})
        mean_probs.append(total / samples if total is not None else None)
    bar.close()
    return record, mean_probs


def simplex_slice(ctx, vertices: list[torch.Tensor], name: str = "simplex_slice",
                  labels=("vertices 0, 1", "vertex 2", "simplex edges")) -> dict:
    """The 2-D slice through three vertices (Benton's Fig. 1 style), with the triangle drawn on it."""
    from modeconn.evaluation.plane import evaluate_plane, plane_through, save_plane

    m = ctx.cfg.method
    plane = plane_through(*vertices[:3])
    result = evaluate_plane(ctx.model, ctx.space, plane, ctx.data, grid=m.plane_grid, margin=m.plane_margin,
                            anchors=list(vertices[:3]), curve=_outline(list(vertices[:3])),
                            progress=ctx.cfg.trainer.progress, **ctx.eval_kwargs())
    files = save_plane(result, ctx.out_dir, name=name, labels=labels)
    for f in files[1:]:
        ctx.tracker.log_image(f"{name}/{f.stem}", f)
    return {"grid": m.plane_grid, "margin": m.plane_margin, "files": [f.name for f in files]}
