"""Jordan et al. 2023 (REPAIR): the straight line between aligned nets as it is ("none"), with
BN statistics recomputed at each point (RESET, BN nets) and with REPAIR, per setting.

Columns: the test-error barrier and the maximum along the line (mean ± std over seeds), the
ends' mean test error, and the midpoint's variance ratio (mean over hidden layers of
var(w(0.5)) / mean of the endpoints' variances) before and after REPAIR, from the run's
``repair`` section: the paper's variance collapse.
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np

from modeconn.report.collect import mean_std_cell, spawn_of, treatment
from modeconn.report.frankle import setting
from modeconn.report.table import Table

ORDER = ("none", "RESET", "REPAIR")
# Read off the paper (test accuracy barriers, CIFAR-10, after permutation alignment): REPAIR removes
# 60-100 % of the barrier that alignment leaves (abstract); 90 % for ResNet-18 on CIFAR-10.
PAPER_NOTES = ["Paper: REPAIR reduces the barrier left after alignment by 60-100 % across architectures "
               "(90 % for ResNet-18 on CIFAR-10, 74 % for ResNet-50 on ImageNet); for BN nets RESET "
               "(recomputing BN statistics) is REPAIR's special case."]


def collect(runs: list[dict]) -> dict:
    """{(dataset, arch, align): {treatment: [run]}} over straight lines between independent endpoints."""
    out: dict = defaultdict(lambda: defaultdict(list))
    for run in runs:
        if run["method"] != "linear" or "summary" not in run or spawn_of(run) is not None:
            continue
        out[(*setting(run), run.get("align", "none"))][treatment(run)].append(run)
    return out


def tables(runs: list[dict]) -> list[Table]:
    out = []
    for (dataset, arch, align), by_treatment in sorted(collect(runs).items()):
        if set(by_treatment) <= {"none"} and "(BN)" not in arch:
            continue                     # nothing repaired or reset: Tatro's table shows these lines
        table = Table(f"Jordan et al. 2023: {dataset} / {arch}, line after align={align} (test error %)",
                      ["barrier", "max along the line", "ends", "midpoint variance ratio before", "after", "runs"],
                      corner="treatment")
        for name in ORDER:
            rows = by_treatment.get(name)
            if not rows:
                continue
            barrier = [r["summary"]["barrier"]["test_err"] for r in rows]
            peak = [r["summary"]["test_err"]["max"] for r in rows]
            ends = [np.mean([r["summary"]["test_err"]["start"], r["summary"]["test_err"]["end"]]) for r in rows]
            ratios = [r["repair"]["midpoint_variance_ratio"] for r in rows
                      if "midpoint_variance_ratio" in r.get("repair", {})]
            table.add(name, [mean_std_cell(barrier), mean_std_cell(peak), mean_std_cell(ends),
                             mean_std_cell([np.mean(x["before"]) for x in ratios], ".3f"),
                             mean_std_cell([np.mean(x["after"]) for x in ratios], ".3f"), len(rows)])
        table.notes += PAPER_NOTES
        out.append(table)
    return out
