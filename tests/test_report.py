"""modeconn-report: Garipov's tables from results.json files."""
import json

from modeconn.report.cli import main
from modeconn.report.garipov import curve_table


def _path_run(method, seed, loss=(0.1, 0.3), err=(5.0, 9.0)):
    summary = {"train_loss": {"min": loss[0], "max": loss[1]}, "test_err": {"min": err[0], "max": err[1]}}
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
