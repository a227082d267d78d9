"""Tatro et al. 2020's table: test accuracy along curves, unaligned vs aligned, with and without PAM.

Curve rows (``method=bezier``): average and minimum test accuracy along the curve
(100 - the grid's mean / max test error). Line rows (``method=linear``): the same
for the straight line, plus the test-error barrier, per matcher. Values are mean
+- std over seeds; the paper's CIFAR values are printed beside for reference.
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np

from modeconn.report.collect import mean_std_cell, method_option, plain, uses_pam
from modeconn.report.table import Table, render

# README of IBM/NeuronAlignment: test accuracy % (endpoint; then avg / min along the curve).
REFERENCE = {
    ("cifar10", "tinyten"): {"endpoint": 89.0, "unaligned": (87.4, 82.8), "aligned (activation)": (88.5, 87.8),
                             "PAM unaligned": (87.6, 84.0), "PAM aligned (activation)": (88.4, 87.6)},
    ("cifar10", "resnet32"): {"endpoint": 92.9, "unaligned": (92.2, 89.1), "aligned (activation)": (92.7, 92.2)},
    ("cifar10", "googlenet"): {"endpoint": 93.4, "unaligned": (93.3, 92.1), "aligned (activation)": (93.4, 93.1)},
    ("cifar100", "tinyten"): {"endpoint": 58.1, "unaligned": (56.0, 53.2), "aligned (activation)": (58.7, 57.7)},
}
CURVE_ORDER = ("unaligned", "aligned (activation)", "aligned (weight)", "aligned (ot)", "PAM unaligned",
               "PAM aligned (activation)", "PAM aligned (weight)", "PAM aligned (ot)")
LINE_ALIGNS = ("none", "weight", "activation", "ot")


def _label(run: dict) -> str:
    align = run.get("align", "none")
    base = "unaligned" if align == "none" else f"aligned ({align})"
    return f"PAM {base}" if uses_pam(run) else base


def collect(runs: list[dict]) -> dict:
    """{(dataset, arch): {"curves": {label: [(avg, min)]}, "lines": {align: [(avg, min, barrier)]},
    "endpoint": {key: acc}}} over the runs with a path summary."""
    table: dict = defaultdict(lambda: {"curves": defaultdict(list), "lines": defaultdict(list), "endpoint": {}})
    for run in runs:
        if "summary" not in run or run["method"] not in ("bezier", "linear") or not plain(run):
            continue
        s = run["summary"]["test_err"]
        entry = table[(run["dataset"], run["arch"])]
        entry["endpoint"].update({e.get("key", f"{id(run)}-{i}"): 100 - e["test_err"]
                                  for i, e in enumerate(run["endpoints"][:2])})
        accs = (100 - s["avg"], 100 - s["max"])
        if run["method"] == "bezier" and method_option(run, "num_bends", 3) == 3:
            entry["curves"][_label(run)].append(accs)
        elif run["method"] == "linear":
            entry["lines"][run.get("align", "none")].append((*accs, run["summary"]["barrier"]["test_err"]))
    return table


def tables(runs: list[dict]) -> list[Table]:
    out = []
    for (dataset, arch), entry in sorted(collect(runs).items()):
        if set(entry["curves"]) <= {"unaligned"} and set(entry["lines"]) <= {"none"}:
            continue  # nothing aligned: Garipov's table already shows these runs
        table = Table(f"Tatro et al. 2020: {dataset} / {arch} (test accuracy %)",
                      ["avg along path", "min along path", "test-error barrier", "runs"])
        if entry["endpoint"]:
            accs = entry["endpoint"].values()
            table.add("Endpoints", [mean_std_cell(accs), "", "", len(accs)])
        for label in CURVE_ORDER:
            rows = entry["curves"].get(label)
            if rows:
                v = np.array(rows)
                table.add(f"Curve, {label}", [mean_std_cell(v[:, 0]), mean_std_cell(v[:, 1]), "", len(v)])
        for align in LINE_ALIGNS:
            rows = entry["lines"].get(align)
            if rows:
                v = np.array(rows)
                label = "unaligned" if align == "none" else f"aligned ({align})"
                table.add(f"Line, {label}", [*(mean_std_cell(v[:, j]) for j in range(3)), len(v)])
        reference = REFERENCE.get((dataset, arch))
        if reference:
            table.add("Endpoints", [reference["endpoint"]], paper=True)
            for label, (avg, low) in ((k, v) for k, v in reference.items() if k != "endpoint"):
                table.add(f"Curve, {label}", [avg, low], paper=True)
        else:
            table.notes.append("Paper (CIFAR, test accuracy %: endpoint; curve avg / min):")
            for (ref_data, ref_arch), ref in REFERENCE.items():
                curves = "; ".join(f"{k} {a} / {m}" for k, (a, m) in ((k, v) for k, v in ref.items() if k != "endpoint"))
                table.notes.append(f"- {ref_data} / {ref_arch}: endpoint {ref['endpoint']}; {curves}")
        out.append(table)
    return out


def markdown(runs: list[dict]) -> str:
    return render(tables(runs), "md")
