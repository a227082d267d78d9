"""Loss planes (Garipov et al. 2018, Fig. 1 and 2): loss and error on a 2-D slice of weight space.

The slice is the plane through three weight vectors, usually the two endpoints
and the middle bend of a trained curve. Each grid point is measured with the
same protocol as a path point (`evaluate_point`, BN statistics recomputed), so
the heatmaps and the path profile can be compared number for number.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
import torch
from torch import Tensor, nn
from modeconn.progress import Progress

from modeconn.evaluation.metrics import METRICS, evaluate_point
from modeconn.paths.space import ParameterSpace

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


@dataclass
class Plane:
    """An affine plane `origin + x * u + y * v` with orthonormal `u`, `v`.

    Orthonormal coordinates keep distances in the picture equal to distances in
    weight space, so the plot does not distort how far apart the modes are.
    Basis vectors are kept in float64: weight vectors have 10^4..10^7 entries and
    float32 Gram-Schmidt loses the 1e-5 round trip on large networks.
    """

    origin: Tensor
    u: Tensor
    v: Tensor

    def coords(self, w: Tensor) -> tuple[float, float]:
        """Orthogonal projection of flat weight vector `w` onto the plane, as (x, y)."""
        d = w.detach().double().to(self.origin.device) - self.origin
        return float(d @ self.u), float(d @ self.v)

    def point(self, x: float, y: float) -> Tensor:
        """The float32 weight vector at plane coordinates (x, y)."""
        return (self.origin + x * self.u + y * self.v).float()

    def distance(self, w: Tensor) -> float:
        """Euclidean distance of `w` from the plane (how far a curve leaves the slice)."""
        x, y = self.coords(w)
        return float(torch.linalg.vector_norm(w.detach().double().to(self.origin.device)
                                              - (self.origin + x * self.u + y * self.v)))


def plane_through(w1: Tensor, w2: Tensor, w3: Tensor) -> Plane:
    """Gram-Schmidt as Garipov's plane.py: u along w2 - w1, v the part of w3 - w1 orthogonal to u.

    So w1 sits at (0, 0), w2 at (|w2 - w1|, 0) and w3 at (., > 0).
    """
    w1, w2, w3 = (w.detach().double() for w in (w1, w2, w3))
    u = w2 - w1
    if torch.linalg.vector_norm(u) == 0:
        raise ValueError("w1 and w2 coincide: no plane")
    u = u / torch.linalg.vector_norm(u)
    v = w3 - w1
    v = v - (v @ u) * u
    norm_v = torch.linalg.vector_norm(v)
    if norm_v <= 1e-12 * torch.linalg.vector_norm(w3 - w1).clamp_min(1e-300):
        raise ValueError("w1, w2, w3 are collinear: no plane")
    return Plane(w1, u, v / norm_v)


def plane_grid(plane: Plane, anchors_xy, grid: int = 21, margin: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """Grid axes: the anchors' coordinate range widened by `margin` times its extent on each side.

    With the endpoints at (0, 0), (dx, 0) and the bend at (bx, dy), 0 <= bx <= dx,
    this is Garipov's grid exactly (alphas, betas in [-0.2, 1.2] times dx, dy, G = 21);
    taking the anchors' range also keeps a bend that overhangs an endpoint in view.
    """
    xy = np.asarray(anchors_xy, dtype=np.float64).reshape(-1, 2)
    lo, hi = xy.min(0), xy.max(0)
    ext = hi - lo
    xs = np.linspace(lo[0] - margin * ext[0], hi[0] + margin * ext[0], grid)
    ys = np.linspace(lo[1] - margin * ext[1], hi[1] + margin * ext[1], grid)
    return xs, ys


@torch.no_grad()
def evaluate_plane(model: nn.Module, space: ParameterSpace, plane: Plane, data, *, grid: int = 21,
                   margin: float = 0.2, wd: float, batch_size: int, bn_batch_size: int,
                   anchors: list[Tensor], curve: list[Tensor] | None = None, progress: bool = True) -> dict:
    """Measure every node of the plane's grid; also place the anchors and the curve on it.

    `anchors` are the plane's defining vectors, endpoints first (w1, w2, bend):
    they fix the grid's extent and are drawn on the picture. `curve` (weight
    vectors along the path) is projected for drawing; `curve_dist` is each curve
    point's distance from the plane, since a curve with several bends need not
    lie in it. Metric arrays have shape (grid, grid), indexed [i, j] at
    (xs[i], ys[j]) as in Garipov's plane.py. All values are numpy arrays.
    """
    anchors_xy = np.array([plane.coords(w) for w in anchors], dtype=np.float64).reshape(-1, 2)
    xs, ys = plane_grid(plane, anchors_xy, grid=grid, margin=margin)
    out: dict[str, np.ndarray] = {"xs": xs, "ys": ys, "anchors_xy": anchors_xy,
                                  **{m: np.zeros((grid, grid)) for m in METRICS}}
    nodes = [(i, j) for i in range(grid) for j in range(grid)]
    for i, j in Progress(nodes, desc="evaluating plane", enabled=progress):
        metrics = evaluate_point(model, space.unflatten(plane.point(xs[i], ys[j])), data, wd=wd,
                                 batch_size=batch_size, bn_batch_size=bn_batch_size)
        for name, value in metrics.as_dict().items():
            out[name][i, j] = value
    curve = curve or []
    out["curve_xy"] = np.array([plane.coords(w) for w in curve], dtype=np.float64).reshape(-1, 2)
    out["curve_dist"] = np.array([plane.distance(w) for w in curve], dtype=np.float64)
    return out


def _log_levels(values: np.ndarray, n: int = 7, log_alpha: float = -5.0) -> np.ndarray:
    """Garipov's contour levels: min + exp(...) spaced log-uniformly, dense near the minimum.

    The interesting structure (the low-loss valley) spans a tiny value range next
    to walls orders of magnitude higher; linear levels would paint it one colour.
    """
    lo, hi = float(values.min()), float(values.max())
    if not np.isfinite(hi - lo) or hi - lo <= 0:
        return np.array([lo - 0.5, lo + 0.5]) if np.isfinite(lo) else np.array([0.0, 1.0])
    log_gamma = (np.log(hi - lo) - log_alpha) / n
    levels = lo + np.exp(log_alpha + log_gamma * np.arange(n + 1))
    levels[0], levels[-1] = lo, hi
    return np.unique(levels)


#: Legend entries for the first two anchors, the others, and the drawn curve (Garipov's figure).
CURVE_LABELS = ("endpoints", "bend", "curve")


def _heatmap(result: dict, key: str, label: str, out: Path, title: str, labels=CURVE_LABELS) -> Path:
    x, y = np.meshgrid(result["xs"], result["ys"], indexing="ij")
    values = np.nan_to_num(np.asarray(result[key], dtype=np.float64), nan=np.nanmax(result[key]), posinf=1e10)
    levels = _log_levels(values)
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    filled = ax.contourf(x, y, values, levels=levels, cmap="jet_r", alpha=0.75, zorder=0)
    ax.contour(x, y, values, levels=levels, cmap="jet_r", linewidths=1.5, zorder=1)
    fig.colorbar(filled, ax=ax, format="%.4g", label=label)
    curve = result.get("curve_xy")
    if curve is not None and len(curve):
        ax.plot(curve[:, 0], curve[:, 1], color="black", lw=2, zorder=3, label=labels[2])
    anchors = result["anchors_xy"]
    ax.scatter(anchors[:2, 0], anchors[:2, 1], s=60, c="black", edgecolors="white", zorder=4, label=labels[0])
    if len(anchors) > 2:
        ax.scatter(anchors[2:, 0], anchors[2:, 1], s=70, marker="x", c="black", linewidths=2.5, zorder=4,
                   label=labels[1])
    ax.set(xlabel="x (along $w_2 - w_1$)", ylabel=f"y (towards {labels[1]})", title=title)
    ax.legend(loc="best", fontsize=8, framealpha=0.6)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return Path(out)


def save_plane(result: dict, out_dir: Path, name: str = "plane", labels=CURVE_LABELS) -> list[Path]:
    """Write `<name>.npz` (every array of `result`) and train-loss / test-error heatmaps
    (`labels` name the first two anchors, the rest, and the drawn curve)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    arrays = out_dir / f"{name}.npz"
    np.savez(arrays, **{k: np.asarray(v) for k, v in result.items()})
    return [arrays,
            _heatmap(result, "train_loss", "train loss (+wd), nats", out_dir / f"{name}_train_loss.png",
                     "train loss", labels),
            _heatmap(result, "test_err", "test error, %", out_dir / f"{name}_test_err.png", "test error",
                     labels)]
