"""Trackers: W&B's mode follows the environment; one offline W&B run per job."""
import json

import pytest

from modeconn.app import run
from modeconn.tracking import wandb_mode


def test_wandb_mode_prefers_config_then_environment(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert wandb_mode("online") == "online"
    assert wandb_mode(None) == "disabled"
    monkeypatch.delenv("WANDB_MODE")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert wandb_mode(None) == "online"


def test_wandb_offline_run_is_written_and_finished(run_config, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    cfg = run_config("dataset=digits", "method=linear", "logger=wandb")
    results = run(cfg)
    assert results["status"] == "ok"
    runs = list((tmp_path / "run" / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(runs) == 1 and runs[0].stat().st_size > 0
    # results.json travels with the W&B run: `modeconn-report --wandb` reads the same record
    (uploaded,) = (tmp_path / "run" / "wandb").glob("offline-run-*/files/results.json")
    assert json.loads(uploaded.read_text())["status"] == "ok"
    import wandb
    assert wandb.run is None  # finished: the next job starts its own W&B run


def test_unknown_logger_is_an_error(run_config):
    with pytest.raises(ValueError, match="logger=nope"):
        run(run_config("dataset=digits", "logger.name=nope"))


def test_wandb_runs_are_grouped_by_paper_setting_and_tagged_by_method(run_config):
    from modeconn.tracking import run_labels
    cfg = run_config("dataset=digits", "method=bezier", "align=activation", "seed=2", "logger=wandb",
                     "logger.tags=[mine]")
    labels = run_labels(cfg, "tatro2020")
    assert labels["group"] == "tatro2020/digits/mlp" and labels["job_type"] == "bezier-activation"
    assert labels["tags"] == ["paper-tatro2020", "digits", "mlp", "bezier", "align-activation", "mine"]
    assert labels["name"] == "bezier-activation-s2"
    assert run_labels(run_config("logger=wandb", "logger.group=g"), "adhoc")["group"] == "g"
    toy = run_labels(run_config("logger=wandb", "method=toy"), "fort2019_toy")   # no data: not the defaults
    assert toy["group"] == "fort2019_toy/toy/wedges" and "mnist1d" not in toy["tags"]


def test_the_profile_is_history_against_its_own_x_axis():
    """W&B overlays (and averages per group) line plots of history, not of custom charts."""
    from modeconn.tracking import profile_steps
    steps = profile_steps({"t": [0.0, 0.5, 1.0], "test_err": [5, 9, 6]})
    assert steps == [{"along/t": 0.0, "along/test_err": 5.0}, {"along/t": 0.5, "along/test_err": 9.0},
                     {"along/t": 1.0, "along/test_err": 6.0}]
