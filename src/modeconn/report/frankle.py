"""Frankle et al. 2020's instability analysis: the test-error barrier between two children of one
parent against K, the epochs the parent trained before they were spawned (``endpoint.spawn``).

One table per (dataset, arch): a row per K (with K as a fraction of the endpoints' training),
the instability (max test error along the line minus the mean of its ends) mean ± std over
seeds, the children's test error, and the number of runs; and ``instability.png`` (one line
per setting, the seeds' spread as error bars). A net is "stable" at K when the barrier is
below 2 points, the paper's threshold.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from modeconn.report.collect import config_value, mean_std_cell, spawn_of
from modeconn.report.table import Table

STABLE = 2.0   # Frankle et al.: stable when the error barrier is below 2 points
PAPER_NOTES = [
    "Paper (CIFAR-10 / MNIST, test-error barrier; stable = below 2 points): LeNet on MNIST stable from "
    "initialisation (K=0); ResNet-20 on CIFAR-10 from about iteration 2,000 (~3 % of training); "
    "VGG-16 on CIFAR-10 from about iteration 1,000.",
]


# Architecture options that make a different net of the same arch (shown when they differ from the defaults).
SHOWN_PARAMS = {"depth": 2, "width": 512, "channels": [32, 64], "hidden": 128}


def setting(run: dict) -> tuple[str, str]:
    """(dataset, arch label): the arch, "(BN)" when it normalises, and its size when not the default."""
    params = config_value(run, "arch.params", {}) or {}
    sizes = [f"{k}={params[k]}" for k, default in SHOWN_PARAMS.items() if k in params and params[k] != default]
    arch = run["arch"] + (" (BN)" if params.get("batchnorm") else "") + (f" [{', '.join(sizes)}]" if sizes else "")
    return run["dataset"], arch


def collect(runs: list[dict]) -> dict:
    """{(dataset, arch): {K: [(barrier, mean children's test error, epochs)]}} over spawned straight lines."""
    out: dict = defaultdict(lambda: defaultdict(list))
    for run in runs:
        k = spawn_of(run)
        if k is None or run["method"] != "linear" or "summary" not in run:
            continue
        children = [e["test_err"] for e in run["endpoints"][:2]]
        out[setting(run)][k].append((run["summary"]["barrier"]["test_err"], float(np.mean(children)),
                                     int(config_value(run, "endpoint.epochs", 0) or 0)))
    return out


def tables(runs: list[dict]) -> list[Table]:
    out = []
    for (dataset, arch), by_k in sorted(collect(runs).items()):
        table = Table(f"Frankle et al. 2020: instability of {dataset} / {arch} (test error %)",
                      ["K (epochs)", "fraction of training", "instability (barrier)", "children's test error",
                       "stable", "runs"], corner="spawn")
        for k in sorted(by_k):
            v = np.array(by_k[k])
            epochs = int(v[0, 2]) or None
            table.add(f"K={k}", [k, f"{k / epochs:.0%}" if epochs else "", mean_std_cell(v[:, 0]),
                                 mean_std_cell(v[:, 1]), "yes" if v[:, 0].mean() < STABLE else "no", len(v)])
        table.notes += PAPER_NOTES
        out.append(table)
    return out


def plot_instability(runs: list[dict], path: str | Path) -> Path | None:
    """instability.png: the barrier against K, a line per setting (mean ± std over seeds)."""
    data = collect(runs)
    if not data:
        return None
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for (dataset, arch), by_k in sorted(data.items()):
        ks = sorted(by_k)
        means = [np.mean([b for b, _, _ in by_k[k]]) for k in ks]
        stds = [np.std([b for b, _, _ in by_k[k]]) for k in ks]
        ax.errorbar(ks, means, yerr=stds, marker="o", capsize=3, label=f"{dataset} / {arch}")
    ax.axhline(STABLE, color="grey", linestyle=":", label="stable (< 2 points)")
    ax.set_xscale("symlog", linthresh=1)
    ticks = sorted({k for by_k in data.values() for k in by_k})
    ax.set_xticks(ticks, [str(k) for k in ticks])
    ax.set_xlabel("K: epochs the parent trained before spawning")
    ax.set_ylabel("instability: test-error barrier, %")
    ax.set_title("Instability analysis (Frankle et al. 2020)")
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
