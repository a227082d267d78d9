"""Evaluating Fort's low-loss subspace against the flat polytope of its optima.

Every triangle of three optima is covered by one barycentric grid; each grid
point is measured twice, on the trained surface (`SubspacePath.triangle_coords`)
and on the flat triangle of the optima, so the two differ only in the weights.
Grid points get their test error and NLL with BN statistics recomputed (as every
point of the suite); the optima and connectors get the full protocol.
"""
from __future__ import annotations

from itertools import combinations
from pathlib import Path

import matplotlib
import numpy as np
import torch
from modeconn.progress import Progress

from modeconn.evaluation.ensemble import ensemble_metrics
from modeconn.paths.subspace import SubspacePath, barycentric_grid

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.tri as mtri  # noqa: E402


def _test_err(probs: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    m = ensemble_metrics(probs, y)
    return 100.0 - m["test_acc"], m["test_nll"]


@torch.no_grad()
def evaluate_subspace(ctx, path: SubspacePath, *, steps: int, progress: bool = True) -> dict:
    """Test error / NLL on the barycentric grid of every triangle of optima, on the surface and flat."""
    
    lam = barycentric_grid(steps)
    triples = list(combinations(range(path.modes), 3))
    modes = path.vertex_tensor(list(range(path.modes))).detach()
    y = ctx.data.y_test
    bar = Progress(total=2 * len(triples) * lam.shape[0], desc="evaluating subspace", enabled=progress)
    triangles = []
    for triple in triples:
        surface_coords = path.triangle_coords(triple, lam).to(path.device)
        flat_points = lam.float().to(modes.device) @ modes[list(triple)]
        record = {"optima": list(triple), "subspace_test_err": [], "subspace_test_nll": [],
                  "flat_test_err": [], "flat_test_nll": []}
        for coords, flat in zip(surface_coords, flat_points):
            for kind, vector in (("subspace", path.vector(coords).detach()), ("flat", flat)):
                err, nll = _test_err(ctx.test_probs(vector), y)
                record[f"{kind}_test_err"].append(err)
                record[f"{kind}_test_nll"].append(nll)
                bar.update()
        triangles.append(record)
    bar.close()

    def stat(kind: str, fn) -> float:
        return float(fn([v for t in triangles for v in t[f"{kind}_test_err"]]))

    return {"grid_steps": steps, "barycentric": lam.tolist(), "triangles": triangles,
            **{f"{kind}_test_err_{name}": stat(kind, fn) for kind in ("subspace", "flat")
               for name, fn in (("max", np.max), ("mean", np.mean))}}


def plot_subspace(record: dict, optima_err: list[float], out: Path, title: str = "") -> Path:
    """The first triangle of optima drawn flat, test error coloured: the trained subspace beside
    the flat triangle, on one colour scale (Fort & Jastrzebski's Fig. 7 layout)."""
    lam = np.array(record["barycentric"])
    corners = np.array([[0.0, 0.0], [1.0, 0.0], [0.5, np.sqrt(3) / 2]])
    xy = lam @ corners
    tri = mtri.Triangulation(xy[:, 0], xy[:, 1])
    first = record["triangles"][0]
    values = [np.array(first["subspace_test_err"]), np.array(first["flat_test_err"])]
    lo, hi = min(v.min() for v in values), max(v.max() for v in values)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6))
    for ax, v, name in zip(axes, values, ("trained subspace (connectors)", "flat triangle of the optima")):
        mesh = ax.tripcolor(tri, v, shading="gouraud", vmin=lo, vmax=hi, cmap="viridis")
        ax.triplot(mtri.Triangulation(corners[:, 0], corners[:, 1]), color="white", lw=0.8)
        for (x, y_), k in zip(corners, first["optima"]):
            ax.annotate(f"optimum {k}\n{optima_err[k]:.2f}%", (x, y_), ha="center", va="center",
                        fontsize=8, color="black", bbox={"fc": "white", "alpha": 0.7, "lw": 0})
        ax.set(title=f"{name}: max {v.max():.2f}%", aspect="equal")
        ax.axis("off")
        fig.colorbar(mesh, ax=ax, label="test error, %", shrink=0.8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return Path(out)
