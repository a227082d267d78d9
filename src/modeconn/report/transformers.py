"""Issue 17's table: the test-error barrier between two transformers (timm's ViT, Hugging Face's
GPT-2), on the straight line unaligned and after weight and activation matching, and on the
unaligned Bezier curve (experiment=transformers and transformers_lines). Mean +- std over seeds;
for a language model the error is the next-token error %.
"""
from __future__ import annotations

from collections import defaultdict

from modeconn.report.collect import mean_std_cell, method_option, uses_pam
from modeconn.report.table import Table, render

ARCHS = ("vit", "gpt2")
COLUMNS = (("linear", "none", "line, unaligned"), ("linear", "weight", "line, weight matching"),
           ("linear", "activation", "line, activation matching"), ("bezier", "none", "Bezier, unaligned"))


def collect(runs: list[dict]) -> dict:
    """{(dataset, arch): {(method, align): [barrier], "endpoints": {key: test_err}}}."""
    table: dict = defaultdict(lambda: defaultdict(list))
    for run in runs:
        if run.get("arch") not in ARCHS or "summary" not in run:
            continue
        if run["method"] not in ("linear", "bezier") or run["method"] == "bezier" and (
                method_option(run, "num_bends", 3) != 3 or uses_pam(run)):
            continue
        entry = table[(run["dataset"], run["arch"])]
        entry[(run["method"], run.get("align", "none"))].append(run["summary"]["barrier"]["test_err"])
        for e in run.get("endpoints", [])[:2]:
            entry.setdefault("endpoints", {})[e.get("key")] = e["test_err"]
    return table


def tables(runs: list[dict]) -> list[Table]:
    collected = collect(runs)
    if not collected:
        return []
    table = Table("Transformers (issue 17): test-error barrier (%; next-token error for text)",
                  ["endpoints' test err", *(label for _, _, label in COLUMNS), "runs"])
    for (dataset, arch), entry in sorted(collected.items()):
        cells = [mean_std_cell(entry[(m, a)]) if entry.get((m, a)) else "" for m, a, _ in COLUMNS]
        runs_here = sum(len(entry.get((m, a), [])) for m, a, _ in COLUMNS)
        endpoints = list(entry.get("endpoints", {}).values())
        table.add(f"{arch} / {dataset}", [mean_std_cell(endpoints) if endpoints else "", *cells, runs_here])
    table.notes.append("Barrier = max along the path minus the mean of its two ends; heads permute as blocks.")
    return [table]


def markdown(runs: list[dict]) -> str:
    return render(tables(runs), "md")
