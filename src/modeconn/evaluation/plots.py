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
