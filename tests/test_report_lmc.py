"""Frankle 2020 and Jordan 2023 tables, instability.png and the dashboard's instability figure,
from planted records."""
from __future__ import annotations

import json

from modeconn.report import frankle, garipov, jordan, tatro
from modeconn.report.cli import main
from modeconn.report.dashboard import dashboard_html


def _line(seed, barrier, *, align="none", spawn=None, repair=False, reset=True, batchnorm=False, ratio=None):
    run = {"status": "ok", "dataset": "fashion_mnist", "arch": "mlp", "method": "linear", "align": align, "seed": seed,
           "config": {"endpoint": {"spawn": spawn, "epochs": 20}, "align": {"repair": repair, "reset": reset},
                      "arch": {"params": {"batchnorm": batchnorm, "width": 512, "depth": 2}}},
           "endpoints": [{"test_err": 10.0}, {"test_err": 11.0}],
           "path": {"t": [0, 0.5, 1], "test_err": [10.0, 10.5 + barrier, 11.0], "train_loss": [0.1, 0.5, 0.1]},
           "summary": {"barrier": {"test_err": barrier, "train_loss": 0.4},
                       "test_err": {"start": 10.0, "end": 11.0, "max": 10.5 + barrier}}}
    if ratio is not None:
        run["repair"] = {"midpoint_variance_ratio": {"before": [ratio, ratio - 0.1], "after": [0.98, 0.99]}}
    return run


def test_instability_table_rows_per_k_with_seed_statistics_and_stability(tmp_path):
    runs = [_line(s, b, spawn=k) for k, bs in ((0, (30.0, 34.0)), (1, (5.0, 3.0)), (4, (0.5, 0.7))) for s, b in enumerate(bs)]
    (table,) = frankle.tables(runs)
    cells = {r.label: r.cells for r in table.rows}
    assert list(cells) == ["K=0", "K=1", "K=4"]
    assert cells["K=0"][1:3] == ["0%", "32.00 ± 2.00"] and cells["K=0"][4] == "no"
    assert cells["K=1"][1] == "5%" and cells["K=4"][2:] == ["0.60 ± 0.10", "10.50 ± 0.00", "yes", "2"]
    assert frankle.plot_instability(runs, tmp_path / "instability.png").stat().st_size > 1000
    # spawned lines are not Garipov's or Tatro's rows
    assert garipov.curve_table(runs) == {} and tatro.tables(runs) == []


def test_jordan_table_orders_none_reset_repair_and_reports_variance_collapse():
    runs = [_line(s, 1.0 + s, align="weight") for s in (0, 1)]
    runs += [_line(s, 0.2, align="weight", repair=True, ratio=0.6) for s in (0, 1)]
    runs += [_line(0, 8.0, align="weight", batchnorm=True, reset=False), _line(0, 0.5, align="weight", batchnorm=True)]
    plain, bn = jordan.tables(runs)
    assert [r.label for r in plain.rows] == ["none", "REPAIR"] and "mlp," in plain.title
    assert plain.rows[0].cells[0] == "1.50 ± 0.50" and plain.rows[1].cells[3:5] == ["0.550 ± 0.000", "0.985 ± 0.000"]
    assert "(BN)" in bn.title and [(r.label, r.cells[0]) for r in bn.rows] == [("none", "8.00"), ("RESET", "0.50")]


def test_report_cli_writes_the_tables_the_plot_and_the_dashboard_figure(tmp_path, capsys):
    runs = [_line(s, b, spawn=k) for k, b in ((0, 20.0), (2, 1.0)) for s in (0, 1)]
    for i, run in enumerate(runs):
        (tmp_path / "runs" / str(i)).mkdir(parents=True)
        (tmp_path / "runs" / str(i) / "results.json").write_text(json.dumps(run))
    assert main([str(tmp_path / "runs"), "--paper", "frankle2020", "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "instability.png").exists() and (tmp_path / "out" / "frankle2020.tex").exists()
    assert "Instability: test-error barrier" in dashboard_html(runs)
