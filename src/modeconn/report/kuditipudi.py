"""Kuditipudi et al. 2019's figures as tables: the constructed path against its bound and
against the straight line, and the loss under dropout against the keep probability.

Rows are grouped by the endpoints' training dropout and the path variant; values are
mean +- std over seeds (train NLL in nats, the paper's L). The paper's VGG-11 numbers
are read off its figure and printed for reference.
"""
from __future__ import annotations

from collections import defaultdict

from modeconn.report.collect import mean_std_cell
from modeconn.report.table import Table, render

REFERENCE = ("Paper (CIFAR-10 VGG-11, read off its figure, unverified): train loss ~0.05 at the ends, "
             "peak ~0.22 along the constructed path.")
PATH_COLUMNS = ("segments", "L_A, L_B (max)", "eps", "bound", "path max", "line max", "path max test err %",
                "bound holds")


def _training_dropout(run: dict) -> float:
    return float(((run.get("config") or {}).get("arch", {}).get("params", {}) or {}).get("dropout", 0.0))


def collect(runs: list[dict]) -> dict:
    """{(dataset, arch): {(training dropout, variant): [run, ...]}} over dropout-path runs."""
    table: dict = defaultdict(lambda: defaultdict(list))
    for run in runs:
        if run.get("method") == "dropout" and "dropout" in run:
            key = (_training_dropout(run), run["dropout"]["variant"])
            table[(run["dataset"], run["arch"])][key].append(run)
    return table


def _path_row(runs: list[dict]) -> list[str]:
    ends = [max(e["train_nll"] for e in r["dropout"]["endpoints"]) for r in runs]
    lines = [r["line"]["summary"]["train_nll"]["max"] for r in runs if "line" in r]
    holds = sum(r["dropout"]["bound_holds"] for r in runs)
    return [str(runs[0]["dropout"]["segments"]), mean_std_cell(ends, ".4f"),
            mean_std_cell([r["epsilon"] for r in runs], ".4f"), mean_std_cell([r["bound"] for r in runs], ".4f"),
            mean_std_cell([r["dropout"]["max_train_nll"] for r in runs], ".4f"), mean_std_cell(lines, ".4f"),
            mean_std_cell([r["summary"]["test_err"]["max"] for r in runs]), f"{holds}/{len(runs)}"]


def _stability_table(groups: dict, title: str) -> Table | None:
    """Median-draw loss with every hidden layer dropped, per keep probability, per training
    dropout; each endpoint counted once (the variants' runs share their endpoints)."""
    curves: dict = defaultdict(dict)   # training dropout -> endpoint key -> curve
    for (dropout, _), runs in groups.items():
        for run in runs:
            for endpoint, curve in zip(run["endpoints"], run["dropout"]["stability"]):
                curves[dropout][endpoint.get("key", id(curve))] = curve
    by_dropout: dict = defaultdict(lambda: defaultdict(list))
    for dropout, by_key in curves.items():
        for curve in by_key.values():
            for row in curve:
                by_dropout[dropout][row["keep"]].append(row["typical"])
    if not by_dropout:
        return None
    keeps = sorted({k for rows in by_dropout.values() for k in rows})
    table = Table(title, [f"keep {k:g}" for k in keeps], corner="training dropout")
    for dropout, rows in sorted(by_dropout.items()):
        table.add(f"{dropout:g}", [mean_std_cell(rows.get(k, []), ".3f") for k in keeps])
    table.notes.append(REFERENCE)
    return table


def tables(runs: list[dict]) -> list[Table]:
    out = []
    for (dataset, arch), groups in sorted(collect(runs).items()):
        path = Table(f"Kuditipudi et al. 2019: {dataset} / {arch}, the constructed path (train NLL, nats)",
                     [*PATH_COLUMNS, "runs"], corner="training dropout, variant")
        for (dropout, variant), group in sorted(groups.items()):
            path.add(f"{dropout:g}, {variant}", [*_path_row(group), len(group)])
        out.append(path)
        stability = _stability_table(groups, f"Kuditipudi et al. 2019: {dataset} / {arch}, loss under dropout "
                                     "(every hidden layer; median of the random draws; train NLL on the search "
                                     "subset), mean over the distinct endpoints")
        if stability:
            out.append(stability)
        else:
            path.notes.append(REFERENCE)
    return out


def markdown(runs: list[dict]) -> str:
    return render(tables(runs), "md")
