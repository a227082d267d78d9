"""Anokhin & Yarotsky 2020's panel as a table: every connection's max and mean test error
along its path, per net, with the endpoint detail the method uses (its cost).

One table per (dataset, net); rows are (alignment, method) in the paper's order of
complexity, values mean ± std over seeds (test error in percent). The paper's thesis is
that accuracy grows with the method's use of the endpoints' details; its MNIST numbers
are read off a figure and printed for reference.
"""
from __future__ import annotations

from collections import defaultdict

from modeconn.report.collect import mean_std_cell
from modeconn.report.table import Table, render


def method_cost(method: str, align: str, fit_samples: int | None = None, pool: int | None = None) -> str:
    """What a connection reads from the endpoints beyond their weights (the paper's 'cost').

    Here, not in runners/anokhin.py (which records it), so the report imports no torch."""
    parts = {"linear": ["weights"], "arc": ["weights", "neuron means"],
             "wa": ["weights", f"features of {fit_samples} train examples, a least-squares fit at every t"],
             "bfly": ["weights", f"features of {fit_samples} train examples, one least-squares fit per layer"],
             "flow": ["weights", f"a flow trained once on the neurons of {pool} other nets"],
             "gauss": ["weights", "per-coordinate neuron quantiles"]}.get(method, ["weights"])
    if align == "ot":
        parts.insert(1, "neuron matching (OT)")
    elif align != "none":
        parts.insert(1, f"{align} matching")
    return " + ".join(parts)


METHODS = ("linear", "arc", "gauss", "bfly", "wa", "flow")
NAMES = {"linear": "Linear", "arc": "Arc", "gauss": "Gaussianisation + Arc", "bfly": "B-fly", "wa": "WA",
         "flow": "flow + Arc"}
REFERENCE = ("Paper (MNIST 784-2000-10, read off its figure, unverified): ends ~1.9-2.0% test error; "
             "Linear peaks near 4.9%, Arc near 3.1%; OT and WA lower still.")
COLUMNS = ("ends test err %", "max test err %", "mean test err %", "barrier %", "max train loss", "cost")


def net_label(run: dict) -> str:
    params = (run.get("config") or {}).get("arch", {}).get("params", {}) or {}
    label = run["arch"]
    if "depth" in params and "width" in params:
        label += f" {params['depth']} x {params['width']}"
    if params.get("bias") is False:
        label += ", no bias"
    return label


def row_name(method: str, align: str) -> str:
    prefix = {"none": "", "ot": "OT + "}.get(align, f"{align} + ")
    return prefix + NAMES[method]


def collect(runs: list[dict]) -> dict:
    """{(dataset, net): {(method, align): [run, ...]}} over the connections' path runs."""
    table: dict = defaultdict(lambda: defaultdict(list))
    for run in runs:
        if run.get("method") in METHODS and "summary" in run:
            table[(run["dataset"], net_label(run))][(run["method"], run.get("align", "none"))].append(run)
    return table


def _cost(runs: list[dict]) -> str:
    run = runs[0]
    section = run.get("anokhin") or {}
    return section.get("cost") or method_cost(run["method"], run.get("align", "none"))


def _row(runs: list[dict]) -> list[str]:
    ends = [sum(e["test_err"] for e in r["endpoints"]) / len(r["endpoints"]) for r in runs]
    return [mean_std_cell(ends), mean_std_cell([r["summary"]["test_err"]["max"] for r in runs]),
            mean_std_cell([r["summary"]["test_err"]["avg"] for r in runs]),
            mean_std_cell([r["summary"]["barrier"]["test_err"] for r in runs]),
            mean_std_cell([r["summary"]["train_loss"]["max"] for r in runs], ".3f"), _cost(runs)]


def _order(key: tuple[str, str]) -> tuple:
    method, align = key
    return (align != "none", align, METHODS.index(method))


def tables(runs: list[dict]) -> list[Table]:
    out = []
    for (dataset, net), groups in sorted(collect(runs).items()):
        table = Table(f"Anokhin & Yarotsky 2020: {dataset} / {net}", [*COLUMNS, "runs"], corner="connection")
        for key in sorted(groups, key=_order):
            table.add(row_name(*key), [*_row(groups[key]), len(groups[key])])
        table.notes.append(REFERENCE)
        out.append(table)
    return out


def markdown(runs: list[dict]) -> str:
    return render(tables(runs), "md")
