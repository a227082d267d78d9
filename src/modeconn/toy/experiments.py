"""The measurements behind Fort & Jastrzebski's predictions, on the wedge landscape.

Each function returns a JSON-ready dict (one part of results.json's `toy` section):

(1) `line_vs_path`: optima found by SGD from random starts lie in different wedges;
    the straight line between two of them leaves the low-loss set, a trained
    PolyChain does not, and it crosses from one wedge to the other where both are
    (almost) at distance zero, i.e. through their intersection.
(2) `cut_study`: training restricted to random d-dimensional affine cuts anchored at
    radius r; the fraction of cuts reaching low loss, and the smallest d that
    reaches it in half the cuts, for each r: farther out, fewer dimensions suffice.
(3) `radius_study`: how far from the origin noisy SGD ends, over learning rates and
    L2 strengths: larger steps travel farther, more L2 keeps it nearer.
"""
from __future__ import annotations

from dataclasses import asdict
from itertools import combinations
from pathlib import Path

import torch

from modeconn.toy import plots
from modeconn.toy.landscape import WedgeLandscape, WedgeSpec
from modeconn.toy.optimize import connect, descend, random_cuts, random_directions, train_in_cut


def find_optima(landscape: WedgeLandscape, *, runs: int, start_radius: float, lr: float, steps: int,
                noise: float, generator: torch.Generator) -> torch.Tensor:
    """Noisy SGD from `runs` random starts near the origin, then a noise-free polish to zero loss."""
    start = start_radius * random_directions(runs, landscape.dim, generator)
    w, _ = descend(landscape, start, lr=lr, steps=steps, noise=noise, generator=generator)
    w, _ = descend(landscape, w, lr=lr, steps=steps // 2)
    return w


def line_vs_path(landscape: WedgeLandscape, optima: torch.Tensor, *, pairs: int, num_bends: int, steps: int,
                 lr: float, generator: torch.Generator) -> tuple[dict, dict]:
    """Prediction (1) for up to `pairs` pairs of optima in different wedges; (record, curves for the plot)."""
    wedge = landscape.nearest(optima)
    chosen = [(i, j) for i, j in combinations(range(len(optima)), 2) if wedge[i] != wedge[j]][:pairs]
    if not chosen:
        raise ValueError("all optima fell in one wedge: raise toy.optima.runs or the number of wedges")
    rows, curves = [], None
    for i, j in chosen:
        t = torch.linspace(0, 1, 61, dtype=torch.float64)
        line = optima[i] + t[:, None] * (optima[j] - optima[i])
        path = connect(landscape, optima[i], optima[j], num_bends=num_bends, steps=steps, lr=lr,
                       generator=generator)
        with torch.no_grad():
            points = torch.stack([path.vector(ti.reshape(1)) for ti in t.float()]).double()
            path_loss = landscape.loss(points)
            both = landscape.distances(points)[:, [int(wedge[i]), int(wedge[j])]]
        crossing = int(both.max(1).values.argmin())
        rows.append({"optima": [i, j], "wedges": [int(wedge[i]), int(wedge[j])],
                     "linear_max_loss": float(landscape.loss(line).max()),
                     "path_max_loss": float(path_loss.max()),
                     "crossing_t": float(t[crossing]),
                     "crossing_distance": float(both[crossing].max()),
                     "radius": float(optima[[i, j]].norm(dim=1).mean())})
        if curves is None:
            curves = {"t": t.tolist(), "linear": landscape.loss(line).tolist(), "path": path_loss.tolist(),
                      "distance_a": both[:, 0].tolist(), "distance_b": both[:, 1].tolist(),
                      "wedges": rows[-1]["wedges"], "points": [optima[i], optima[j], path.free[len(path.free) // 2]],
                      "path_points": points}
    keys = ("linear_max_loss", "path_max_loss", "crossing_distance")
    return {"pairs": rows, **{f"{k}_mean": sum(r[k] for r in rows) / len(rows) for k in keys}}, curves


def cut_study(landscape: WedgeLandscape, *, dims: list[int], radii: list[float], count: int, reach: float,
              steps: int, lr: float, threshold: float, generator: torch.Generator) -> dict:
    """Prediction (2): fraction of `count` random cuts per (radius, dim) whose trained point lies
    within `threshold` x its radius of a wedge, and the smallest dim reaching half of them."""
    success = []
    for r in radii:
        row = []
        for d in dims:
            anchors, bases = random_cuts(count, landscape.dim, int(d), float(r), generator)
            reached = train_in_cut(landscape, anchors, bases, reach=reach, steps=steps, lr=lr) <= threshold
            row.append(float(reached.double().mean()))
        success.append(row)
    needed = [next((int(d) for d, s in zip(dims, row) if s >= 0.5), None) for row in success]
    return {"dims": [int(d) for d in dims], "radii": [float(r) for r in radii], "count": count, "reach": reach,
            "threshold": threshold, "success": success, "dim_needed": needed}


def radius_study(landscape: WedgeLandscape, *, lrs: list[float], l2s: list[float], runs: int, steps: int,
                 start_radius: float, noise: float, generator: torch.Generator) -> dict:
    """Prediction (3): mean final radius (and loss) of `runs` noisy SGD runs per (lr, L2)."""
    start = start_radius * random_directions(runs, landscape.dim, generator)
    radius, loss = [], []
    for lr in lrs:
        r_row, l_row = [], []
        for l2 in l2s:
            w, radii = descend(landscape, start, lr=float(lr), steps=steps, l2=float(l2), noise=noise,
                               generator=generator)
            r_row.append(float(radii[-1].mean()))
            l_row.append(float(landscape.loss(w).mean()))
        radius.append(r_row)
        loss.append(l_row)
    return {"lrs": [float(x) for x in lrs], "l2s": [float(x) for x in l2s], "runs": runs, "steps": steps,
            "noise": noise, "final_radius": radius, "final_loss": loss}


def run_all(cfg, out_dir: Path, seed: int = 0) -> dict:
    """Every measurement with the settings of `cfg` (conf/method/toy.yaml), pictures in `out_dir`."""
    spec = WedgeSpec(**dict(cfg.landscape))
    landscape = WedgeLandscape(spec)
    generator = torch.Generator().manual_seed(int(seed))
    o = cfg.optima
    optima = find_optima(landscape, runs=int(o.runs), start_radius=float(o.start_radius), lr=float(o.lr),
                         steps=int(o.steps), noise=float(o.noise), generator=generator)
    c = cfg.connect
    connection, curves = line_vs_path(landscape, optima, pairs=int(c.pairs), num_bends=int(c.num_bends),
                                      steps=int(c.steps), lr=float(c.lr), generator=generator)
    k = cfg.cuts
    cuts = cut_study(landscape, dims=list(k.dims), radii=list(k.radii), count=int(k.count), reach=float(k.reach),
                     steps=int(k.steps), lr=float(k.lr), threshold=float(k.threshold), generator=generator)
    r = cfg.radius
    radius = radius_study(landscape, lrs=list(r.lrs), l2s=list(r.l2s), runs=int(r.runs), steps=int(r.steps),
                          start_radius=float(o.start_radius), noise=float(r.noise), generator=generator)
    radii = torch.linspace(0, 4 * spec.r0 + 1, 9)
    files = [plots.plot_connection(landscape, curves, out_dir / "toy_connection.png"),
             plots.plot_cuts(cuts, out_dir / "toy_cuts.png"),
             plots.plot_radius(radius, out_dir / "toy_radius.png")]
    return {"landscape": asdict(spec),
            "width": {"radius": radii.tolist(), "width": landscape.width(radii).tolist()},
            "optima": {"runs": len(optima), "radius_mean": float(optima.norm(dim=1).mean()),
                       "loss_max": float(landscape.loss(optima).max()),
                       "wedges": sorted({int(i) for i in landscape.nearest(optima)})},
            "connect": connection, "cuts": cuts, "radius": radius, "files": [f.name for f in files]}
