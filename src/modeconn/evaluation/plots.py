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
    for ax in (ax_loss, ax_err):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return Path(out)
