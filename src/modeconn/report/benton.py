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


def ensemble_markdown(runs: list[dict], key: tuple, setting: tuple[str, str]) -> list[str]:
    espro = [run["ensemble"] for run in runs if "ensemble" in run]
    if not espro:
        return []
    deep = [e["baseline"] for e in espro if "baseline" in e]
    equal = [e["baseline_equal_cost"] for e in espro if "baseline_equal_cost" in e]
    names = [f"deep ensemble {n}" for n, _, _ in METRICS] + [f"ESPRO {n}" for n, _, _ in METRICS]
    out = [f"### ESPRO ({setting_label(key)}) vs deep ensembles (test)", "",
           "| members | " + " | ".join(names) + " | runs |", "|---" * (len(names) + 2) + "|"]
    for k in sorted({p["members"] for e in espro + deep for p in e.get("curve", [])}):
        d, s = _at(deep, k), _at(espro, k)
        out.append(f"| {k} | " + " | ".join(_metric_cells(d) + _metric_cells(s)) + f" | {max(len(d), len(s))} |")
    if equal:
        members = "/".join(str(m) for m in sorted({e["members"] for e in equal}))
        out.append(f"| deep ensemble, equal cost ({members} members) | " + " | ".join(_metric_cells(equal))
                   + " |" * (len(METRICS) + 1) + f" {len(equal)} |")
    budgets = [(name, [e["budget_epochs"] for e in group if "budget_epochs" in e])
               for name, group in (("deep ensemble", deep), ("ESPRO", espro), ("deep ensemble, equal cost", equal))]
    out += ["", "Training budget (epochs): " + "; ".join(f"{n} {mean_std_cell(b, '.4g')}" for n, b in budgets if b) + "."]
    references = {k: v for k, v in REFERENCE.items() if k == setting} or REFERENCE
    out += ["", "| | members | deep ensemble err % | ESPRO err % |", "|---|---|---|---|"]
    for name, points in references.values():
        out += [f"| paper ({name}, approx.) | {k} | {d} | {s} |" for k, (d, s) in points.items()]
    return out + [""]


def _simplex_values(run: dict) -> tuple[float, ...]:
    s = run["simplex"]
    return (s["vertex_test_err"][0], max(s["vertex_test_err"]), s["centroid_test_err"],
            s["per_component"][0]["samples"]["test_err_max"], s["volume"])


def _complex_values(run: dict) -> tuple[float, ...]:
    c, summary = run["complex"], run["summary"]
    ends = [e["test_err"] for e in run["endpoints"][:c["modes"]]]
    return (float(np.mean(ends)), max(c["centroid_test_err"]), max(c["sample_test_err_max"]),
            summary["test_err"]["max"], summary["barrier"]["test_err"])


def _rows(groups: dict, values, labels, formats: tuple[str, ...]) -> list[str]:
    """One row per group: its label, each column's mean +- std over the group's runs, the run count."""
    out = []
    for key, runs in sorted(groups.items(), key=lambda kv: str(kv[0])):
        v = np.array([values(run) for run in runs])
        cells = [mean_std_cell(v[:, j], fmt) for j, fmt in enumerate(formats)]
        out.append(f"| {labels(key, runs)} | " + " | ".join(cells) + f" | {len(runs)} |")
    return out


def markdown(runs: list[dict]) -> str:
    out = []
    for (dataset, arch), entry in sorted(collect(runs).items()):
        out += [f"## Benton et al. 2021 — {dataset} / {arch}", ""]
        for key, group in sorted(entry["simplex"].items(), key=lambda kv: str(kv[0])):
            out += ensemble_markdown(group, key, (dataset, arch))
        if entry["simplex"]:
            out += ["### Simplex (component 0; test error %, volume)", "",
                    "| simplex | " + " | ".join(SIMPLEX_COLUMNS) + " | runs |", "|---" * (len(SIMPLEX_COLUMNS) + 2) + "|"]
            out += _rows(entry["simplex"], _simplex_values, lambda key, _: setting_label(key), (".2f",) * 4 + (".3g",))
            out.append("")
        if entry["complex"]:
            out += ["### Mode-connecting complex (test error %; path mode 0 → connectors' centroid → mode 1)", "",
                    "| modes / connectors | " + " | ".join(COMPLEX_COLUMNS) + " | runs |",
                    "|---" * (len(COMPLEX_COLUMNS) + 2) + "|"]
            out += _rows(entry["complex"], _complex_values, lambda key, _: f"{key[0]} / {key[1]}", (".2f",) * 5)
            out.append("")
    return "\n".join(out)


def report(runs: list[dict]) -> str:
    """The paper's tables for whichever settings the simplex / complex runs cover ("" when none)."""
    return markdown(runs)
