"""Garipov et al. 2018's curve table: rows Single / Bezier / Poly; min/max train loss, min/max test error.

"Single" is the endpoints themselves (min/max over the two of each run); a curve
row is the min/max along its path. Values are mean +- std over seeds.
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np

COLUMNS = ("train_loss min", "train_loss max", "test_err min", "test_err max")
ROWS = (("Single", "endpoints"), ("Line", "linear"), ("Bezier", "bezier"), ("Poly", "polychain"))

# The paper's README values (CIFAR): {(dataset, arch): {row: (loss min, loss max, err min, err max)}}
REFERENCE = {
    ("cifar10", "vgg16"): {"Single": (.24, .24, 6.79, 6.94), "Bezier": (.14, .24, 6.79, 7.75),
                           "Poly": (.16, .27, 6.79, 8.08)},
    ("cifar10", "preresnet164"): {"Bezier": (.09, .18, 4.45, 4.97), "Poly": (.11, .18, 4.39, 5.13)},
    ("cifar10", "wrn28x10"): {"Single": (.08, .09, 3.69, 3.73), "Bezier": (.05, .09, 3.49, 3.88),
                              "Poly": (.05, .10, 3.53, 4.29)},
    ("cifar100", "vgg16"): {"Single": (.89, .89, 27.5, 27.5), "Bezier": (.48, .89, 27.4, 30.1),
                            "Poly": (.59, 1.05, 27.1, 30.8)},
}


def _row_values(run: dict, source: str) -> tuple[float, ...]:
    if source == "endpoints":
        ends = run["endpoints"][:2]
        loss, err = [e["train_loss"] for e in ends], [e["test_err"] for e in ends]
        return min(loss), max(loss), min(err), max(err)
    s = run["summary"]
    return s["train_loss"]["min"], s["train_loss"]["max"], s["test_err"]["min"], s["test_err"]["max"]


def curve_table(runs: list[dict]) -> dict[tuple[str, str], dict[str, list[tuple[float, ...]]]]:
    """{(dataset, arch): {row: [per-seed values]}} from path runs with align=none."""
    table: dict = defaultdict(lambda: defaultdict(list))
    for run in runs:
        if run.get("align", "none") != "none" or "summary" not in run:
            continue
        setting = (run["dataset"], run["arch"])
        for row, source in ROWS:
            if source == run["method"]:
                table[setting][row].append(_row_values(run, source))
        if run["method"] == "linear":
            table[setting]["Single"].append(_row_values(run, "endpoints"))
    return table


def _cell(values: list[float], digits: int) -> str:
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{np.mean(values):.{digits}f} ± {np.std(values):.{digits}f}"


def markdown(runs: list[dict]) -> str:
    out = []
    for (dataset, arch), rows in sorted(curve_table(runs).items()):
        out += [f"### Garipov et al. 2018 curves: {dataset} / {arch}", "",
                "| | " + " | ".join(COLUMNS) + " | seeds |", "|---" * (len(COLUMNS) + 2) + "|"]
        for row, _ in ROWS:
            if rows.get(row):
                values = np.array(rows[row])
                cells = [_cell(list(values[:, j]), 3 if j < 2 else 2) for j in range(4)]
                out.append(f"| {row} | " + " | ".join(cells) + f" | {len(values)} |")
        reference = REFERENCE.get((dataset, arch))
        if reference:
            out += ["", "Paper (README):", ""]
            out += [f"| {row} (paper) | " + " | ".join(f"{v}" for v in vals) + " | |" for row, vals in reference.items()]
        out.append("")
    return "\n".join(out)
