"""Pictures of a profile: loss and error along the path, the figure people look at first."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_profile(profile: dict[str, list[float]], out: Path, title: str = "") -> Path:
    """Two panels over t: losses (nats) and errors (%), train and test."""
    fig, (ax_loss, ax_err) = plt.subplots(1, 2, figsize=(10, 3.6))
    t = profile["t"]
    ax_loss.plot(t, profile["train_loss"], label="train loss (+wd)")
    ax_loss.plot(t, profile["test_nll"], label="test NLL")
    ax_err.plot(t, profile["train_err"], label="train error")
    ax_err.plot(t, profile["test_err"], label="test error")
    ax_loss.set(xlabel="t", ylabel="nats")
    ax_err.set(xlabel="t", ylabel="%")
    return _save(fig, (ax_loss, ax_err), out, title)


def _save(fig, axes, out: Path, title: str) -> Path:
    """Grid and legend on every panel, the title, and the PNG written."""
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return Path(out)


def plot_ensemble_curves(curves: dict[str, list[dict]], out: Path, title: str = "") -> Path:
    """Test error, NLL and ECE against ensemble size, one line per method (Benton's Fig. 6)."""
    panels = (("test_acc", "test error, %", lambda v: 100.0 - v), ("test_nll", "test NLL, nats", None),
              ("test_ece", "ECE", None))
    fig, axes = plt.subplots(1, len(panels), figsize=(12, 3.6))
    for ax, (key, label, transform) in zip(axes, panels):
        for name, curve in curves.items():
            members = [c["members"] for c in curve]
            values = [transform(c[key]) if transform else c[key] for c in curve]
            ax.plot(members, values, marker="o", label=name)
        ax.set(xlabel="ensemble members", ylabel=label)
    return _save(fig, axes, out, title)


SEGMENT_COLOURS = {"top_layer": "tab:orange", "function_preserving": "tab:green", "all_layers": "tab:red"}


def plot_dropout_path(profile: dict[str, list[float]], kinds: list[str], bound: float, ends: float,
                      line: dict[str, list[float]] | None, out: Path, title: str = "") -> Path:
    """Kuditipudi's figure: train loss along the constructed path against max(L_A, L_B) + eps,
    each segment shaded by its move, the straight line A -> B beside it (t stretched to the
    path's length); test error on the right."""
    fig, (ax_loss, ax_err) = plt.subplots(1, 2, figsize=(11, 3.8))
    t, segments = profile["t"], len(kinds)
    for ax in (ax_loss, ax_err):
        for k, kind in enumerate(kinds):
            ax.axvspan(k, k + 1, color=SEGMENT_COLOURS.get(kind, "grey"), alpha=0.08, lw=0)
    ax_loss.plot(t, profile["train_nll"], label="train loss, constructed path")
    ax_err.plot(t, profile["test_err"], label="test error, constructed path")
    if line is not None:
        stretched = [s * segments for s in line["t"]]
        ax_loss.plot(stretched, line["train_nll"], ls=":", color="grey", label="straight line A-B")
        ax_err.plot(stretched, line["test_err"], ls=":", color="grey", label="straight line A-B")
    ax_loss.axhline(bound, ls="--", color="tab:red", label="max(L_A, L_B) + eps")
    ax_loss.axhline(ends, ls="--", color="black", lw=0.8, label="max(L_A, L_B)")
    ax_loss.set(xlabel="segment (orange: top layer, green: function-preserving)", ylabel="train NLL, nats")
    ax_err.set(xlabel="segment", ylabel="%")
    return _save(fig, (ax_loss, ax_err), out, title)


def plot_stability(curves: list[list[dict]], bases: list[float], out: Path, title: str = "") -> Path:
    """Train loss with every hidden layer dropped against the keep probability (Kuditipudi's
    Fig. 2): the best and the median of the random draws, one colour per endpoint, its loss
    without dropout (on the same examples) dotted."""
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for i, (curve, base) in enumerate(zip(curves, bases)):
        keeps = [row["keep"] for row in curve]
        line, = ax.plot(keeps, [row["typical"] for row in curve], marker="o", label=f"endpoint {i}, median draw")
        ax.plot(keeps, [row["best"] for row in curve], marker=".", ls="--", color=line.get_color(),
                label=f"endpoint {i}, best draw")
        ax.axhline(base, color=line.get_color(), lw=0.8, ls=":")
    ax.set(xlabel="keep probability", ylabel="train NLL, nats")
    return _save(fig, (ax,), out, title)
