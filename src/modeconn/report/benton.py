"""Benton et al. 2021's tables: ESPRO vs deep ensembles, the simplex, the mode-connecting complex.

Each table checks one of the paper's claims. A trained network sits in a simplex of
low-loss solutions: its vertices, centroid and random points test about as well as the
network itself (``method=simplex``). An ensemble of such simplexes (ESPRO) beats a deep
ensemble of as many members, and of the same training cost. A complex of simplexes
sharing "connector" vertices joins independently trained modes without an error barrier
(``method=complex``). Values are mean +- std over seeds; the paper's ensemble curves
(approximate, read off its figure) are printed beside for reference.
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np

from modeconn.report.collect import mean_std_cell, method_option
from modeconn.report.table import Table, render

# Test error % of (deep ensemble, ESPRO) by number of members, read off the paper's figure (approximate).
REFERENCE = {
    ("cifar10", "vgg16"): ("CIFAR-10 VGG16", {1: (6.95, 6.6), 8: (5.9, 5.65)}),
    ("cifar100", "vgg16"): ("CIFAR-100 VGG16", {1: (28.2, 26.5), 8: (23.2, 23.0)}),
}
METRICS = (("err %", lambda m: 100 - m["test_acc"], ".2f"), ("NLL", lambda m: m["test_nll"], ".4f"),
           ("ECE", lambda m: m["test_ece"], ".4f"))
SIMPLEX_COLUMNS = ("base net", "max vertex", "centroid", "max sampled point", "volume")
COMPLEX_COLUMNS = ("endpoints (mean)", "max centroid", "max sampled point", "max along mode 0 → mode 1", "barrier")


def simplex_setting(run: dict) -> tuple:
    """What makes simplex runs comparable: vertices, lambda, epochs per vertex, the vertex LR."""
    s = run["simplex"]
    return (s["vertices"], s.get("lmbda"), s.get("epochs_per_vertex"), (method_option(run, "train") or {}).get("lr"))


def setting_label(key: tuple) -> str:
    vertices, lmbda, epochs, lr = key
    return f"{vertices} vertices, λ {lmbda:g}, {epochs} epochs a vertex, lr {lr:g}" if lr is not None else \
        f"{vertices} vertices"


def collect(runs: list[dict]) -> dict:
    """{(dataset, arch): {"simplex": {simplex_setting: [runs]}, "complex": {(modes, connectors): [runs]}}}."""
    table: dict = defaultdict(lambda: {"simplex": defaultdict(list), "complex": defaultdict(list)})
    for run in runs:
        setting = (run["dataset"], run["arch"])
        if run["method"] == "simplex" and "simplex" in run:
            table[setting]["simplex"][simplex_setting(run)].append(run)
        elif run["method"] == "complex" and "complex" in run:
            table[setting]["complex"][(run["complex"]["modes"], run["complex"]["connectors"])].append(run)
    return table


def _at(ensembles: list[dict], k: int) -> list[dict]:
    """The k-member points of the ensembles' curves (one per seed)."""
    return [point for e in ensembles for point in e.get("curve", []) if point["members"] == k]


def _metric_cells(points: list[dict]) -> list[str]:
    return [mean_std_cell([get(p) for p in points], fmt) for _, get, fmt in METRICS]


def ensemble_table(runs: list[dict], key: tuple, setting: tuple[str, str]) -> Table | None:
    espro = [run["ensemble"] for run in runs if "ensemble" in run]
    if not espro:
        return None
    deep = [e["baseline"] for e in espro if "baseline" in e]
    equal = [e["baseline_equal_cost"] for e in espro if "baseline_equal_cost" in e]
    names = [f"deep ensemble {n}" for n, _, _ in METRICS] + [f"ESPRO {n}" for n, _, _ in METRICS]
    table = Table(f"Benton et al. 2021 — {setting[0]} / {setting[1]}: ESPRO ({setting_label(key)}) vs deep "
                  "ensembles (test)", [*names, "runs"], corner="members")
    for k in sorted({p["members"] for e in espro + deep for p in e.get("curve", [])}):
        d, s = _at(deep, k), _at(espro, k)
        table.add(str(k), [*_metric_cells(d), *_metric_cells(s), max(len(d), len(s))])
    if equal:
        members = "/".join(str(m) for m in sorted({e["members"] for e in equal}))
        table.add(f"deep ensemble, equal cost ({members} members)",
                  [*_metric_cells(equal), *[""] * len(METRICS), len(equal)])
    budgets = [(name, [e["budget_epochs"] for e in group if "budget_epochs" in e])
               for name, group in (("deep ensemble", deep), ("ESPRO", espro), ("deep ensemble, equal cost", equal))]
    table.notes.append("Training budget (epochs): " + "; ".join(f"{n} {mean_std_cell(b, '.4g')}"
                                                                for n, b in budgets if b) + ".")
    if setting in REFERENCE:
        name, points = REFERENCE[setting]
        for k, (d, s) in points.items():       # the paper gives the error only
            table.add(f"{k}", [d, *[""] * (len(METRICS) - 1), s], paper=True)
        table.notes.append(f"Paper rows: {name}, read off its figure (approximate).")
    else:
        table.notes.append("Paper (test error % of deep ensemble / ESPRO by members, read off its figure, approx.): "
                           + "; ".join(f"{name}: " + ", ".join(f"{k}: {d} / {s}" for k, (d, s) in points.items())
                                       for name, points in REFERENCE.values()) + ".")
    return table


def _simplex_values(run: dict) -> tuple[float, ...]:
    s = run["simplex"]
    return (s["vertex_test_err"][0], max(s["vertex_test_err"]), s["centroid_test_err"],
            s["per_component"][0]["samples"]["test_err_max"], s["volume"])


def _complex_values(run: dict) -> tuple[float, ...]:
    c, summary = run["complex"], run["summary"]
    ends = [e["test_err"] for e in run["endpoints"][:c["modes"]]]
    return (float(np.mean(ends)), max(c["centroid_test_err"]), max(c["sample_test_err_max"]),
            summary["test_err"]["max"], summary["barrier"]["test_err"])


def _add_rows(table: Table, groups: dict, values, labels, formats: tuple[str, ...]) -> Table:
    """One row per group: its label, each column's mean +- std over the group's runs, the run count."""
    for key, runs in sorted(groups.items(), key=lambda kv: str(kv[0])):
        v = np.array([values(run) for run in runs])
        table.add(labels(key, runs), [*(mean_std_cell(v[:, j], fmt) for j, fmt in enumerate(formats)), len(runs)])
    return table


def tables(runs: list[dict]) -> list[Table]:
    """The paper's tables for whichever settings the simplex / complex runs cover (none when none)."""
    out = []
    for (dataset, arch), entry in sorted(collect(runs).items()):
        where = f"Benton et al. 2021 — {dataset} / {arch}"
        for key, group in sorted(entry["simplex"].items(), key=lambda kv: str(kv[0])):
            out += filter(None, [ensemble_table(group, key, (dataset, arch))])
        if entry["simplex"]:
            table = Table(f"{where}: simplex (component 0; test error %, volume)", [*SIMPLEX_COLUMNS, "runs"],
                          corner="simplex")
            out.append(_add_rows(table, entry["simplex"], _simplex_values, lambda key, _: setting_label(key),
                                 (".2f",) * 4 + (".3g",)))
        if entry["complex"]:
            table = Table(f"{where}: mode-connecting complex (test error %; path mode 0 → connectors' centroid → "
                          "mode 1)", [*COMPLEX_COLUMNS, "runs"], corner="modes / connectors")
            out.append(_add_rows(table, entry["complex"], _complex_values, lambda key, _: f"{key[0]} / {key[1]}",
                                 (".2f",) * 5))
    return out


def markdown(runs: list[dict]) -> str:
    return render(tables(runs), "md")
