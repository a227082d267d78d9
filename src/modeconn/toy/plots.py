"""Pictures of the toy measurements: one figure per prediction."""
from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import torch

from modeconn.evaluation.plane import plane_through

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _save(fig, out: Path, title: str) -> Path:
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return Path(out)


def plot_connection(landscape, curves: dict, out: Path, grid: int = 81) -> Path:
    """Prediction (1): loss along the line and the trained path; the path's distance to each of
    the two wedges (it switches where both are ~0); the plane through both optima and the bend."""
    fig, (ax_loss, ax_dist, ax_plane) = plt.subplots(1, 3, figsize=(14, 4))
    t = curves["t"]
    ax_loss.plot(t, curves["linear"], label="straight line")
    ax_loss.plot(t, curves["path"], label="trained PolyChain")
    ax_loss.set(xlabel="t", ylabel="loss", title="loss between optima in two wedges")
    a, b = curves["wedges"]
    ax_dist.plot(t, curves["distance_a"], label=f"distance to wedge {a}")
    ax_dist.plot(t, curves["distance_b"], label=f"distance to wedge {b}")
    ax_dist.set(xlabel="t", ylabel="distance", title="along the PolyChain: through the intersection")
    for ax in (ax_loss, ax_dist):
        ax.grid(alpha=0.3)
        ax.legend()

    start, end, bend = (p.detach().double() for p in curves["points"])
    plane = plane_through(start, end, bend)
    anchors = np.array([plane.coords(p) for p in (start, end, bend)])
    lo, hi = anchors.min(0), anchors.max(0)
    pad = 0.25 * (hi - lo).max()
    xs = np.linspace(lo[0] - pad, hi[0] + pad, grid)
    ys = np.linspace(lo[1] - pad, hi[1] + pad, grid)
    gx, gy = np.meshgrid(xs, ys)
    points = (plane.origin + torch.as_tensor(gx.ravel())[:, None] * plane.u
              + torch.as_tensor(gy.ravel())[:, None] * plane.v)
    loss = landscape.loss(points).reshape(grid, grid).numpy()
    mesh = ax_plane.contourf(gx, gy, np.log10(loss + 1e-3), levels=20, cmap="viridis")
    fig.colorbar(mesh, ax=ax_plane, label="log10(loss + 1e-3)")
    route = np.array([plane.coords(p) for p in curves["path_points"]])
    ax_plane.plot(route[:, 0], route[:, 1], color="white", label="PolyChain (projected)")
    ax_plane.plot(anchors[:2, 0], anchors[:2, 1], "--", color="red", label="straight line")
    ax_plane.scatter(anchors[:2, 0], anchors[:2, 1], color="black", zorder=3, label="optima")
    ax_plane.set(title="plane through the optima and the bend")
    ax_plane.legend(fontsize=7)
    return _save(fig, out, "Fort & Jastrzebski (1): wedges meet; straight lines leave them")


def plot_cuts(cuts: dict, out: Path) -> Path:
    """Prediction (2): the fraction of random cuts reaching low loss against their dimension."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for r, row in zip(cuts["radii"], cuts["success"]):
        ax.plot(cuts["dims"], row, marker="o", label=f"cut at radius {r:g}")
    ax.set(xlabel="cut dimension d", ylabel="fraction of cuts reaching low loss", ylim=(-0.03, 1.03))
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, out, "Fort & Jastrzebski (2): farther cuts need fewer dimensions")


def plot_radius(radius: dict, out: Path) -> Path:
    """Prediction (3): the radius noisy SGD ends at, against the learning rate, one line per L2."""
    fig, ax = plt.subplots(figsize=(6, 4))
    final = np.array(radius["final_radius"])
    for k, l2 in enumerate(radius["l2s"]):
        ax.plot(radius["lrs"], final[:, k], marker="o", label=f"L2 {l2:g}")
    ax.set(xscale="log", yscale="log", xlabel="learning rate", ylabel="final radius ||w||")
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, out, "Fort & Jastrzebski (3): step size and L2 set the radius")
