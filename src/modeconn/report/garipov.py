"""Garipov et al. 2018's curve table: rows Single / Bezier / Poly; min/max train loss, min/max test error.

"Single" is the endpoints themselves (min/max over the two of each run); a curve
row is the min/max along its path. Values are mean +- std over seeds.
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np

from modeconn.report.collect import mean_std_cell, method_option, uses_pam, plain
from modeconn.report.table import Table, render

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


# FGE vs independent ensembles, CIFAR-100 test accuracy % at 1/2/3 budgets (paper).
FGE_REFERENCE = {
    ("cifar100", "vgg16"): {"Ind": (72.5, 74.8, 75.6), "FGE": (74.6, 76.1, 76.6)},
    ("cifar100", "preresnet164"): {"Ind": (78.4, 80.5, 81.6), "FGE": (80.3, 81.3, 81.7)},
}
FGE_ROWS = (("Ind", "ensemble"), ("FGE", "fge"))


def _row_values(run: dict, source: str) -> tuple[float, ...]:
    if source == "endpoints":
        ends = run["endpoints"][:2]
        loss, err = [e["train_loss"] for e in ends], [e["test_err"] for e in ends]
        return min(loss), max(loss), min(err), max(err)
    s = run["summary"]
    return s["train_loss"]["min"], s["train_loss"]["max"], s["test_err"]["min"], s["test_err"]["max"]


def curve_table(runs: list[dict]) -> dict[tuple[str, str], dict[str, list[tuple[float, ...]]]]:
    """{(dataset, arch): {row: [per-seed values]}} from path runs with align=none (and no PAM)."""
    table: dict = defaultdict(lambda: defaultdict(list))
    for run in runs:
        if run.get("align", "none") != "none" or "summary" not in run:
            continue
        if uses_pam(run) or not plain(run):  # Tatro's PAM curves, Frankle's and Jordan's lines are not Garipov's
            continue
        setting = (run["dataset"], run["arch"])
        for row, source in ROWS:
            if source == run["method"]:
                table[setting][row].append(_row_values(run, source))
        if run["method"] == "linear":
            table[setting]["Single"].append(_row_values(run, "endpoints"))
    return table


def curve_tables(runs: list[dict]) -> list[Table]:
    tables = []
    for (dataset, arch), rows in sorted(curve_table(runs).items()):
        table = Table(f"Garipov et al. 2018 curves: {dataset} / {arch}", [*COLUMNS, "seeds"])
        for row, _ in ROWS:
            if rows.get(row):
                values = np.array(rows[row])
                table.add(row, [*(mean_std_cell(values[:, j], ".3f" if j < 2 else ".2f") for j in range(4)),
                                len(values)])
        for row, values in REFERENCE.get((dataset, arch), {}).items():
            table.add(row, values, paper=True)
        tables.append(table)
    return tables


def fge_table(runs: list[dict]) -> dict:
    """{(dataset, arch): {row: {budget: [per-seed ensemble dicts]}}} from fge/ensemble runs."""
    table: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for run in runs:
        row = dict((m, r) for r, m in FGE_ROWS).get(run["method"])
        if row and "ensemble" in run:
            budget = method_option(run, "budget", 1)
            table[(run["dataset"], run["arch"])][row][budget].append(run["ensemble"])
    return table


def fge_tables(runs: list[dict]) -> list[Table]:
    tables = []
    for (dataset, arch), rows in sorted(fge_table(runs).items()):
        budgets = sorted({b for by_budget in rows.values() for b in by_budget})
        table = Table(f"Garipov et al. 2018 FGE vs independent ensembles: {dataset} / {arch}",
                      [f"budget {b}: acc % / NLL" for b in budgets])
        for row, _ in FGE_ROWS:
            cells = []
            for b in budgets:
                members = rows[row].get(b, [])
                acc = mean_std_cell([m['test_acc'] for m in members], '.2f')
                nll = mean_std_cell([m['test_nll'] for m in members], '.4f')
                cells.append(f"{acc} / {nll}" if members else "")
            table.add(row, cells)
        single = [m["baseline"] for by_budget in rows.get("FGE", {}).values() for m in by_budget]
        if single:
            table.add("Single", [f"{mean_std_cell([m['test_acc'] for m in single], '.2f')} / "
                                 f"{mean_std_cell([m['test_nll'] for m in single], '.4f')}"])
        for row, values in FGE_REFERENCE.get((dataset, arch), {}).items():
            table.add(row, [f"{v} / " for v in values][:len(budgets)], paper=True)
        if FGE_REFERENCE.get((dataset, arch)):
            table.notes.append("The paper reports test accuracy only (budgets 1/2/3).")
        tables.append(table)
    return tables


def tables(runs: list[dict]) -> list[Table]:
    """Both of the paper's tables, for whichever settings the runs cover."""
    return curve_tables(runs) + fge_tables(runs)


def markdown(runs: list[dict]) -> str:
    return render(tables(runs), "md")
