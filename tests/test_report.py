"""modeconn-report: Garipov's tables from results.json files."""
import json
from pathlib import Path

import pytest

from modeconn.report.cli import main
from modeconn.report.garipov import curve_table


def _path_run(method, seed, loss=(0.1, 0.3), err=(5.0, 9.0)):
    summary = {"train_loss": {"min": loss[0], "max": loss[1]},
               "test_err": {"min": err[0], "max": err[1], "avg": sum(err) / 2}, "barrier": {"test_err": 1.0}}
    endpoints = [{"train_loss": 0.2, "test_err": 6.0}, {"train_loss": 0.25, "test_err": 7.0}]
    return {"status": "ok", "dataset": "cifar10", "arch": "vgg16", "method": method, "align": "none", "seed": seed,
            "summary": summary, "endpoints": endpoints}


def _ensemble_run(method, budget, acc):
    ens = {"members": budget, "test_acc": acc, "test_nll": 0.5, "test_ece": 0.01, "test_brier": 0.1,
           "baseline": {"test_acc": 70.0, "test_nll": 0.9}}
    return {"status": "ok", "dataset": "cifar100", "arch": "vgg16", "method": method, "align": "none", "seed": 0,
            "config": {"method": {"budget": budget}}, "ensemble": ens, "endpoints": []}


def test_curve_table_rows_and_seed_statistics():
    runs = [_path_run("linear", 0), _path_run("bezier", 0, err=(5.0, 7.0)), _path_run("bezier", 1, err=(5.0, 8.0))]
    table = curve_table(runs)[("cifar10", "vgg16")]
    assert table["Single"] == [(0.2, 0.25, 6.0, 7.0)]
    assert [v[3] for v in table["Bezier"]] == [7.0, 8.0]


def test_report_cli_writes_both_tables_with_the_paper_beside(tmp_path, capsys):
    runs = [_path_run("linear", 0), _path_run("bezier", 0), _ensemble_run("fge", 1, 74.0),
            _ensemble_run("ensemble", 1, 72.0), _ensemble_run("fge", 2, 76.0)]
    for i, run in enumerate(runs):
        (tmp_path / f"run{i}").mkdir()
        (tmp_path / f"run{i}" / "results.json").write_text(json.dumps(run))
    assert main([str(tmp_path), "--out", str(tmp_path / "out")]) == 0
    text = (tmp_path / "out" / "garipov2018.md").read_text()
    assert "| Bezier |" in text and "Bezier (paper)" in text and "6.79" in text
    assert "| FGE | 74.00 / 0.5000 | 76.00 / 0.5000 |" in text and "FGE (paper)" in text
    assert main([str(tmp_path / "nothing")]) == 2


def test_tatro_table_separates_aligned_pam_and_line_rows(tmp_path):
    from modeconn.report.tatro import markdown

    def run(method, align, seed, max_err, pam=False, barrier=1.0):
        r = _path_run(method, seed, err=(9.0, max_err))
        r["summary"]["test_err"]["avg"] = max_err - 1
        r["summary"]["barrier"]["test_err"] = barrier
        r["endpoints"] = [{"key": f"k{seed}a", "train_loss": 0.2, "test_err": 9.0},
                          {"key": f"k{seed}b", "train_loss": 0.2, "test_err": 10.0}]
        r.update(align=align, config={"method": {"num_bends": 3, "pam": {"enabled": pam}}})
        return r
    runs = [run("bezier", "none", 0, 12.0), run("bezier", "none", 1, 14.0), run("bezier", "activation", 0, 10.0),
            run("bezier", "none", 0, 11.0, pam=True), run("linear", "none", 0, 30.0, barrier=20.5),
            run("linear", "weight", 0, 13.0, barrier=3.5)]
    text = markdown(runs)
    assert "| Endpoints | 90.50 ± 0.50 | | | 4 |" in text
    assert "| Curve, unaligned | 88.00 ± 1.00 | 87.00 ± 1.00 | | 2 |" in text
    assert "| Curve, aligned (activation) | 91.00 | 90.00 | | 1 |" in text
    assert "| Curve, PAM unaligned | 90.00 | 89.00 | | 1 |" in text
    assert "| Line, unaligned | 71.00 | 70.00 | 20.50 | 1 |" in text and "| Line, aligned (weight) |" in text
    assert "cifar10 / tinyten: endpoint 89.0" in text
    from modeconn.report.garipov import curve_table
    assert [v[3] for v in curve_table(runs)[("cifar10", "vgg16")]["Bezier"]] == [12.0, 14.0]  # no PAM, no aligned


def _benton_run(method, seed, **values):
    def point(k, acc):
        return {"members": k, "test_acc": acc, "test_nll": 0.5 + seed / 10, "test_ece": 0.02, "test_brier": 0.1}
    run = {"status": "ok", "dataset": "cifar10", "arch": "vgg16", "method": method, "align": "none", "seed": seed,
           "endpoints": [{"test_err": 7.0 + seed}, {"test_err": 9.0 + seed}]}
    if method == "simplex":
        run["simplex"] = {"vertices": 3, "components": 2, "volume": 0.5 + seed, "centroid_test_err": 6.5 + seed,
                          "vertex_test_err": [7.0 + seed, 8.0 + seed, 7.5],
                          "per_component": [{"samples": {"n": 3, "test_err_max": 8.5 + seed}}]}
        run["ensemble"] = {"members": 2, "budget_epochs": 30.0, "curve": [point(1, 93.5), point(2, 94.0 + seed)],
                           "baseline": {"budget_epochs": 10.0, "curve": [point(1, 93.0), point(2, 93.5)]},
                           "baseline_equal_cost": {"members": 6, "test_acc": 94.5, "test_nll": 0.4, "test_ece": 0.01,
                                                   "budget_epochs": 30.0}}
    else:
        run["complex"] = {"modes": 2, "connectors": 1, "centroid_test_err": [8.0, 9.0 + seed],
                          "sample_test_err_max": [10.0, 11.0]}
        run["summary"] = {"test_err": {"max": 12.0 + 2 * seed}, "barrier": {"test_err": 3.0}}
    return run


def test_benton_tables_average_seeds_and_show_the_paper():
    from modeconn.report.benton import markdown, tables
    runs = [_benton_run("simplex", 0), _benton_run("simplex", 1), _benton_run("complex", 0), _benton_run("complex", 1),
            _path_run("bezier", 0)]
    text = markdown(runs)
    assert text.count("### Benton et al. 2021 — cifar10 / vgg16") == 3      # ESPRO, simplex, complex
    assert "| 1 | 7.00 ± 0.00 | 0.5500 ± 0.0500 | 0.0200 ± 0.0000 | 6.50 ± 0.00 |" in text
    assert "| 2 | 6.50 ± 0.00 | 0.5500 ± 0.0500 | 0.0200 ± 0.0000 | 5.50 ± 0.50 |" in text
    assert "| deep ensemble, equal cost (6 members) | 5.50 ± 0.00 | 0.4000 ± 0.0000 |" in text
    assert "deep ensemble 10 ± 0; ESPRO 30 ± 0; deep ensemble, equal cost 30 ± 0." in text
    # the paper's points beside, in the error columns (it reports the error only)
    assert "| 1 (paper) | 6.95 | | | 6.6 | | | |" in text and "CIFAR-100" not in text
    assert "| 3 vertices | 7.50 ± 0.50 | 8.50 ± 0.50 | 7.00 ± 0.50 | 9.00 ± 0.50 | 1 ± 0.5 | 2 |" in text
    assert "| 2 / 1 | 8.50 ± 0.50 | 9.50 ± 0.50 | 11.00 ± 0.00 | 13.00 ± 1.00 | 3.00 ± 0.00 | 2 |" in text
    assert tables([_path_run("bezier", 0), _path_run("linear", 0)]) == []
    other = [{**r, "dataset": "mnist"} for r in runs[:2]]      # no matching setting: every reference as a note
    assert "CIFAR-100 VGG16: 1: 28.2 / 26.5" in markdown(other) and "(paper)" not in markdown(other)


def _kuditipudi_run(seed, dropout, variant="dropout"):
    curve = [{"keep": 0.5, "typical": 0.4 + seed / 10}, {"keep": 0.9, "typical": 0.3}]
    return {"status": "ok", "dataset": "fashion_mnist", "arch": "mlp", "method": "dropout", "align": "none",
            "seed": seed, "config": {"arch": {"params": {"dropout": dropout}}},
            "endpoints": [{"key": f"{dropout}-{seed}-a"}, {"key": f"{dropout}-{seed}-b"}],
            "epsilon": 0.1, "bound": 0.4 + seed / 10, "summary": {"test_err": {"max": 12.0}},
            "line": {"summary": {"train_nll": {"max": 2.0 + seed}}},
            "dropout": {"variant": variant, "segments": 9 if variant == "dropout" else 5,
                        "endpoints": [{"train_nll": 0.3}, {"train_nll": 0.3 + seed / 10}],
                        "max_train_nll": 0.35, "bound_holds": True, "stability": [curve, curve]}}


def test_kuditipudi_tables_group_by_training_dropout_and_variant():
    from modeconn.report.kuditipudi import markdown
    runs = [_kuditipudi_run(0, 0.5), _kuditipudi_run(1, 0.5), _kuditipudi_run(0, 0.5, "noise"),
            _kuditipudi_run(0, 0.0, "noise"), _path_run("bezier", 0)]
    text = markdown(runs)
    assert text.count("### Kuditipudi et al. 2019: fashion_mnist / mlp, the constructed path") == 1
    assert ("| 0.5, dropout | 9 | 0.3500 ± 0.0500 | 0.1000 ± 0.0000 | 0.4500 ± 0.0500 | 0.3500 ± 0.0000 | "
            "2.5000 ± 0.5000 | 12.00 ± 0.00 | 2/2 | 2 |") in text
    assert "| 0, noise | 5 | 0.3000 |" in text
    # four distinct endpoints at keep 0.5 (the noise run of seed 0 shares the dropout run's)
    assert "| 0.5 | 0.450 ± 0.050 | 0.300 ± 0.000 |" in text
    assert "VGG-11" in text and markdown([_path_run("bezier", 0)]) == ""


def _anokhin_run(method, align, seed, peak, depth=1, width=2000, cost=None):
    run = _path_run(method, seed, err=(10.0, peak))
    run["endpoints"] = [{"test_err": 10.0}, {"test_err": 10.2}]
    run.update(dataset="fashion_mnist", arch="mlp", align=align,
               config={"arch": {"params": {"depth": depth, "width": width, "bias": True}}})
    if cost:
        run["anokhin"] = {"cost": cost}
    return run


def test_anokhin_table_orders_connections_by_complexity_and_names_their_cost():
    from modeconn.report.anokhin import markdown
    runs = [_anokhin_run("wa", "ot", 0, 10.5, cost="weights + OT + features"), _anokhin_run("linear", "none", 0, 14.0),
            _anokhin_run("linear", "none", 1, 15.0), _anokhin_run("arc", "none", 0, 12.0, cost="weights + neuron means"),
            _anokhin_run("linear", "ot", 0, 11.0), _anokhin_run("linear", "none", 0, 13.0, depth=2, width=512),
            _kuditipudi_run(0, 0.5)]
    text = markdown(runs)
    assert text.count("### Anokhin & Yarotsky 2020: fashion_mnist / mlp 1 x 2000") == 1
    assert "fashion_mnist / mlp 2 x 512" in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and "connection" not in line]
    assert [r.split(" | ")[0] for r in rows[:4]] == ["| Linear", "| Arc", "| OT + Linear", "| OT + WA"]
    assert rows[0].startswith("| Linear | 10.10 ± 0.00 | 14.50 ± 0.50 |") and rows[0].endswith("| weights | 2 |")
    assert "| weights + neuron matching (OT) |" in rows[2]     # derived for runs without the section
    assert "| weights + OT + features |" in rows[3] and "MNIST" in text
    assert markdown([_path_run("bezier", 0)]) == ""


def test_table_renders_markdown_latex_and_numeric_csv_with_paper_rows():
    import csv
    import io

    from modeconn.report.table import Table, render
    table = Table("Curves: cifar10 / vgg16_bn", ["test_err max", "seeds"])
    table.add("Bezier", ["7.50 ± 0.25", 3])
    table.add("Bezier", [7.75], paper=True)
    table.notes.append("Budget 100% of a model.")
    md = render([table], "md")
    assert "| Bezier | 7.50 ± 0.25 | 3 |" in md and "| Bezier (paper) | 7.75 | |" in md and "Budget 100%" in md
    tex = render([table], "tex")
    assert r"\caption{Curves: cifar10 / vgg16\_bn}" in tex and r"7.50 $\pm$ 0.25" in tex and r"100\%" in tex
    assert tex.count(r"\midrule") == 2       # the paper's rows are ruled off from the measured ones
    rows = list(csv.DictReader(io.StringIO(render([table, table], "csv"))))
    assert len(rows) == 2 * 3            # long format: one line per non-empty cell, every table in one schema
    assert rows[0] == {"table": table.title, "source": "measured", "row": "Bezier", "column": "test_err max",
                       "value": "7.50 ± 0.25", "mean": "7.50", "std": "0.25"}
    assert rows[1]["column"] == "seeds" and rows[1]["mean"] == "3"
    assert rows[2]["source"] == "paper" and rows[2]["mean"] == "7.75" and rows[2]["std"] == ""
    with pytest.raises(ValueError, match="3 cells for 2 columns"):
        table.add("too long", [1, 2, 3])


OLD_STYLE = """## Someone et al. 2020 — cifar10 / vgg16

### Their table

| method | err % | runs |
|---|---|---|
| Arc | 3.10 ± 0.20 | 2 |
| Linear | 4.90 ± 0.10 | 2 |

Budget: 1 model.

Paper, same setting:

| | err % | |
|---|---|---|
| paper (MNIST, approx.) | 3.1 | |
"""


def test_older_markdown_reports_become_tables(tmp_path, monkeypatch):
    """A paper module that still returns markdown (report(runs) -> str) gets LaTeX and CSV too."""
    from modeconn.report import cli
    from modeconn.report.table import as_tables
    tables = as_tables(OLD_STYLE)
    assert [t.title for t in tables] == ["Their table", "Their table: Paper, same setting"]
    assert tables[0].columns == ["err %", "runs"] and tables[0].corner == "method"
    assert [(r.label, r.cells, r.paper) for r in tables[0].rows] == [("Arc", ["3.10 ± 0.20", "2"], False),
                                                                     ("Linear", ["4.90 ± 0.10", "2"], False)]
    assert tables[0].notes == ["Budget: 1 model."] and tables[1].rows[0].paper

    monkeypatch.setitem(cli.PAPERS, "someone2020", lambda runs: OLD_STYLE)
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "results.json").write_text(json.dumps(_path_run("linear", 0)))
    assert cli.main([str(tmp_path / "r"), "--paper", "someone2020", "--out", str(tmp_path / "out"), "--no-dashboard"]) == 0
    assert (tmp_path / "out" / "someone2020.md").read_text() == OLD_STYLE      # its own markdown, untouched
    assert r"Arc & 3.10 $\pm$ 0.20 & 2" in (tmp_path / "out" / "someone2020.tex").read_text()
    assert "Their table,measured,Linear,err %,4.90 ± 0.10,4.90,0.10" in (tmp_path / "out" / "someone2020.csv").read_text()


def test_report_writes_every_format_and_the_dashboard(tmp_path):
    for i, run in enumerate([_path_run("linear", 0), _path_run("bezier", 0), _path_run("bezier", 1)]):
        (tmp_path / "runs" / f"r{i}").mkdir(parents=True)
        (tmp_path / "runs" / f"r{i}" / "results.json").write_text(json.dumps(run))
    assert main([str(tmp_path / "runs"), "--paper", "garipov2018", "--out", str(tmp_path / "out")]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "dashboard.html", "garipov2018.csv", "garipov2018.md", "garipov2018.tex"]
    assert r"\begin{tabular}" in (tmp_path / "out" / "garipov2018.tex").read_text()


class _FakeFile:
    def __init__(self, text):
        self.text = text

    def download(self, root, replace=False):
        path = Path(root) / "results.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.text)
        return open(path)


class _FakeRun:
    def __init__(self, name, results):
        self.name, self.results = name, results
        self.path, self.group, self.url = ["team", "proj", name], "garipov2018/cifar10/vgg16", f"https://x/{name}"

    def file(self, name):
        if self.results is None:
            raise ValueError(f"{name} not found")
        return _FakeFile(json.dumps(self.results))


class _FakeApi:
    """wandb.Api's surface that the loader uses: runs(path, filters) -> runs with file(name).download(root)."""

    def __init__(self, runs):
        self._runs, self.asked = runs, []

    def runs(self, path, filters=None):
        self.asked.append((path, filters))
        return self._runs


def test_wandb_runs_load_as_the_same_records(tmp_path, capsys):
    from modeconn.report.garipov import curve_table
    from modeconn.report.wandb_source import load_wandb_runs
    local = [_path_run("linear", 0), _path_run("bezier", 0)]
    failed = {**_path_run("bezier", 1), "status": "failed"}
    api = _FakeApi([_FakeRun("a", local[0]), _FakeRun("b", local[1]), _FakeRun("c", failed), _FakeRun("old", None)])
    runs = load_wandb_runs("team/proj", api=api)
    assert api.asked == [("team/proj", {"state": "finished"})]
    assert [r["method"] for r in runs] == ["linear", "bezier"] and runs[0]["_wandb"]["path"] == "team/proj/a"
    assert "1 W&B run(s) in team/proj have no results.json" in capsys.readouterr().err
    assert curve_table(runs) == curve_table(local)      # the tables see the same records as from disk
    with pytest.raises(ValueError, match="ENTITY/PROJECT"):
        load_wandb_runs("proj", api=api)


def test_dashboard_shows_every_method_path_barrier_ensemble_and_plane(tmp_path):
    import numpy as np

    from modeconn.report.dashboard import dashboard_html, plane_files

    def with_path(run, peak):
        t = [0.0, 0.5, 1.0]
        run["path"] = {"t": t, "test_err": [6.0, peak, 7.0], "train_loss": [0.2, peak / 10, 0.25]}
        run["summary"]["barrier"]["train_loss"] = 0.1
        return run
    bezier = with_path(_path_run("bezier", 0), 9.0)
    bezier["_file"] = str(tmp_path / "results.json")
    bezier["plane"] = {"files": ["plane.npz", "plane_test_err.png"]}
    np.savez(tmp_path / "plane.npz", xs=np.linspace(0, 1, 3), ys=np.linspace(0, 1, 3), test_err=np.ones((3, 3)),
             train_loss=np.ones((3, 3)), anchors_xy=np.zeros((3, 2)), curve_xy=np.zeros((5, 2)))
    aligned = {**with_path(_path_run("linear", 0), 20.0), "align": "activation"}
    runs = [with_path(_path_run("linear", 0), 30.0), aligned, bezier, _ensemble_run("fge", 2, 74.0)]
    assert plane_files(bezier) == [tmp_path / "plane.npz"]
    page = dashboard_html(runs)
    for label in ("linear (1 seeds)", "linear+activation (1 seeds)", "bezier (1 seeds)", "fge: 1 run"):
        assert label in page
    assert "rendering 4 figures" in page      # cifar10 / vgg16: path, barriers, plane; cifar100 / vgg16: ensembles
    import re
    assert not re.search(r"<script[^>]*\bsrc=", page) and "Plotly.newPlot" in page   # plotly.js inline: opens offline


def test_wandb_report_compares_methods_per_setting(tmp_path, monkeypatch, capsys):
    """Built offline (saving needs a login): a section per setting, its runs filtered to it and
    grouped by job type (method-align), bars of the summaries the jobs log."""
    from modeconn.report import wandb_dashboard
    report = wandb_dashboard.comparison_report("team", "proj", [("cifar10", "vgg16"), ("digits", "mlp")])
    grids = [b for b in report.blocks if type(b).__name__ == "PanelGrid"]
    assert len(grids) == 2 and report.entity == "team" and report.project == "proj"
    runset = grids[0].runsets[0]
    assert runset.groupby == ["JobType"] and runset.project == "proj"
    assert runset.filters == """Config("dataset.name") == 'cifar10' and Config("arch.name") == 'vgg16'"""
    metrics = [m for p in grids[0].panels for m in getattr(p, "metrics", [])]
    assert "barrier/test_err" in metrics and "ensemble/test_acc" in metrics
    lines = [p for p in grids[0].panels if type(p).__name__ == "LinePlot"]
    assert [(p.x, p.y) for p in lines] == [("along/t", ["along/test_err"]), ("along/t", ["along/train_loss"])]

    saved = []
    monkeypatch.setattr(type(report), "save", lambda self, **kw: saved.append(self) or self)
    monkeypatch.setattr(type(report), "url", property(lambda self: "https://wandb.ai/team/proj/reports/x"),
                        raising=False)
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "results.json").write_text(json.dumps(_path_run("bezier", 0)))
    assert main([str(tmp_path / "r"), "--wandb-report", "team/proj", "--paper", "garipov2018"]) == 0
    assert len(saved) == 1 and "W&B report: https://wandb.ai/team/proj/reports/x" in capsys.readouterr().out


def test_a_lead_in_without_a_table_stays_a_note():
    from modeconn.report.table import as_tables
    (table,) = as_tables("### T\n\n| | a |\n|---|---|\n| x | 1 |\n\nPaper (CIFAR):\n\n- cifar10: 89.0\n")
    assert table.title == "T" and table.notes == ["Paper (CIFAR):", "- cifar10: 89.0"]


def test_fort_tables_from_real_runs(run_config, tmp_path):
    """Every Fort table appears with the measured values of the runs it is built from."""
    from modeconn.app import run
    from modeconn.report import fort
    store = tmp_path / "store"
    runs = []
    for i, overrides in enumerate([
        ("method=toy", "method.optima.runs=6", "method.connect.pairs=1", "method.cuts.dims=[20]",
         "method.cuts.radii=[2.0,20.0]", "method.cuts.count=4", "method.radius.steps=50"),
        ("dataset=digits", "method=subspace", "method.grid=2", "method.points=3"),
        ("dataset=digits", "method=cut", "method.dim=10"),
        ("dataset=digits", "method=cut", "method.dim=10", "method.radius_scale=2"),
        ("dataset=digits", "method=ensemble", "method.budget=1", "arch.lr=0.01"),
        ("dataset=digits", "method=ensemble", "method.budget=1", "arch.lr=0.1"),
    ]):
        cfg = run_config(*overrides, store=store)
        cfg.output_dir = str(tmp_path / f"run{i}")
        runs.append(run(cfg))
    text = fort.markdown(runs)
    assert "## The wedge model" in text and "| 20 |" in text
    subspace = runs[1]["subspace"]
    assert f"| digits / mlp | 3 | {max(subspace['optima_test_err']):.2f} | {subspace['subspace_test_err_max']:.2f}" in text
    assert "one optimum neighbourhood" in text
    assert "| x1 |" in text and "| x2 |" in text and f"{runs[3]['cut']['test_err']:.2f}" in text
    assert "How far training travels" in text and "| 0.01 |" in text and "| 0.1 |" in text
    assert fort.markdown([]) == ""
    from modeconn.report.dashboard import dashboard_html
    page = dashboard_html(runs)
    assert "Random cuts: test error reached" in page and "cut at radius x2" in page
    assert "The wedge model" in page and "cut at radius 20" in page


def test_report_cli_imports_no_torch_lightning_or_runners():
    """A reader of results starts fast (`modeconn-report --help` < 1 s): nothing heavy at import."""
    import subprocess
    import sys
    code = ("import sys, modeconn.report.cli; "
            "heavy = [m for m in ('torch', 'lightning', 'hydra', 'plotly', 'modeconn.runners', 'zuko') if m in sys.modules]; "
            "print(heavy); sys.exit(bool(heavy))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
