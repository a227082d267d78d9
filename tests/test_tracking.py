"""Trackers: W&B's mode follows the environment; one offline W&B run per job."""
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
    import wandb
    assert wandb.run is None  # finished: the next job starts its own W&B run


def test_unknown_logger_is_an_error(run_config):
    with pytest.raises(ValueError, match="logger=nope"):
        run(run_config("dataset=digits", "logger.name=nope"))
