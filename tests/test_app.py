"""One run end to end: config -> endpoints -> path -> results.json."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import compose_config
from modeconn.app import CONFIG_DIR, run
from modeconn.errors import ConfigError
from modeconn.results import read_results, validate

REPO = Path(__file__).resolve().parents[1]


def test_linear_run_writes_the_contract_and_reuses_endpoints(run_config, tmp_path):
    cfg = run_config("dataset=digits", "arch=mlp", "method=linear")
    results = run(cfg)
    on_disk = read_results(tmp_path / "run")
    assert on_disk == json.loads(json.dumps(results, default=float))
    assert validate(on_disk) == []
    assert on_disk["status"] == "ok"
    assert (on_disk["dataset"], on_disk["arch"], on_disk["method"], on_disk["align"]) == ("digits", "mlp", "linear", "none")
    assert len(on_disk["path"]["t"]) == 61
    for i, end in ((0, 0), (1, -1)):
        endpoint = on_disk["endpoints"][i]
        assert not endpoint["cached"]
        for metric in ("train_loss", "train_err", "test_nll", "test_err"):
            assert on_disk["path"][metric][end] == endpoint[metric]
    assert on_disk["endpoints"][0]["key"] != on_disk["endpoints"][1]["key"]
    assert on_disk["summary"]["length"] > 0
    assert (tmp_path / "run" / "path.png").stat().st_size > 0
    # the same run again trains nothing
    again = run(run_config("dataset=digits", "arch=mlp", "method=linear"))
    assert [e["cached"] for e in again["endpoints"]] == [True, True]
    assert again["path"] == results["path"]


def test_failed_run_records_the_error(run_config, tmp_path):
    """An arch that cannot be built is a config error found once the data's shape is known: recorded as failed."""
    cfg = run_config("dataset=digits", "arch=mlp", "method=linear", "arch.name=nonexistent")
    with pytest.raises(ConfigError, match="nonexistent"):
        run(cfg)
    results = read_results(tmp_path / "run")
    assert results["status"] == "failed" and "nonexistent" in results["error"]
    assert validate(results) == []


def _cli(*args, home):
    env = {**os.environ, "MODECONN_HOME": str(home), "WANDB_MODE": "disabled"}
    return subprocess.run([sys.executable, "-m", "modeconn", *args], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=600)


def test_missing_dataset_is_one_clear_line_and_touches_no_store(tmp_path):
    home = tmp_path / "home"
    proc = _cli("dataset=fashion_mnist", "dataset.root=/nonexistent/fm", "trainer=smoke", "logger=none",
                f"hydra.run.dir={tmp_path / 'run'}", home=home)
    assert proc.returncode != 0
    error_lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(error_lines) == 1, proc.stderr
    assert "/nonexistent/fm" in error_lines[0] and "dataset-fashion-mnist" in error_lines[0]
    assert not (home / "endpoints").exists()
    assert read_results(tmp_path / "run")["status"] == "failed"


def test_cli_run_prints_the_table(tmp_path):
    proc = _cli("dataset=digits", "arch=mlp", "method=linear", "trainer=smoke", "logger=csv",
                f"hydra.run.dir={tmp_path / 'run'}", home=tmp_path / "home")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "max along the path" in proc.stdout and "barrier" in proc.stdout
    assert (tmp_path / "run" / "profile.csv").exists()
    assert validate(read_results(tmp_path / "run")) == []


@pytest.mark.parametrize("experiment", sorted(p.stem for p in (CONFIG_DIR / "experiment").glob("*.yaml")))
def test_every_experiment_composes_and_names_its_sweep_dir(experiment):
    """The sweep dir is resolved before any job runs (no HydraConfig yet), so it may only use config keys."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("config", overrides=[f"experiment={experiment}"], return_hydra_config=True)
    sweep_dir = OmegaConf.to_container(cfg.hydra.sweep, resolve=False)["dir"]
    OmegaConf.set_struct(cfg, False)
    cfg.resolved_sweep_dir = sweep_dir
    assert cfg.resolved_sweep_dir.startswith(f"multirun/{experiment.removesuffix('_lines')}")
    assert cfg.hydra.sweeper.params


@pytest.mark.parametrize("spec", sorted(p.name for p in (REPO / "sweeps").glob("*.yaml")))
def test_every_wandb_sweep_spec_composes_and_has_its_experiment(spec):
    """Each W&B sweep's parameters are valid overrides of the app, mirroring an experiment file."""
    import itertools

    import yaml
    sweep = yaml.safe_load((REPO / "sweeps" / spec).read_text())
    assert (CONFIG_DIR / "experiment" / spec).exists()
    grid = {k: v.get("values", [v.get("value")]) for k, v in sweep["parameters"].items()}
    for combo in itertools.islice(itertools.product(*grid.values()), 4):
        overrides = [f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in zip(grid, combo)]
        cfg = compose_config(*overrides)
        assert cfg.method.name in grid["method"]


def test_every_paper_table_has_a_wandb_sweep_spec_ending_in_its_overrides():
    """One Hydra multirun (conf/experiment/X.yaml) and one W&B sweep (sweeps/X.yaml) per paper table."""
    import yaml
    experiments = {p.stem for p in (CONFIG_DIR / "experiment").glob("*.yaml")}
    specs = {p.stem for p in (REPO / "sweeps").glob("*.yaml")}
    assert experiments == specs, f"without a W&B spec: {experiments - specs}; without an experiment: {specs - experiments}"
    for spec in specs:
        command = yaml.safe_load((REPO / "sweeps" / f"{spec}.yaml").read_text())["command"]
        assert command[-1] == "${args_no_hyphens}" and command[-2:-4:-1] == ["modeconn", "-m"], spec


def test_sweep_jobs_with_long_override_lists_get_short_distinct_dirs(tmp_path):
    from modeconn.app import MAX_DIRNAME, short_dirname
    long = ",".join(f"method.option_{i}=value_{i}" for i in range(20))
    assert short_dirname("seed=1") == "seed=1"
    assert len(short_dirname(long).encode()) <= MAX_DIRNAME and short_dirname(long).startswith(long[:50])
    assert short_dirname(long) != short_dirname(long + "x")
    # end to end: a multirun whose override list alone is longer than a file name may be
    overrides = [
        "dataset.train_size=300", "dataset=digits", "method=linear", "method.points=3", "trainer=smoke", "logger=none", "seed=0",
        "endpoint.momentum=0.9", "endpoint.schedule=garipov", "endpoint.batch_size=128", "eval.batch_size=2048",
        "eval.bn_batch_size=128", "arch.params.width=16", "arch.params.depth=1", "arch.params.bias=true",
        "arch.params.batchnorm=false", "arch.params.dropout=0.0", "dataset.test_size=200", "arch.lr=0.05"]
    assert len(",".join(overrides)) > 255
    proc = _cli("-m", *overrides, f"hydra.sweep.dir={tmp_path / 'sweep'}", home=tmp_path / "home")
    assert proc.returncode == 0, proc.stderr[-3000:]
    (job,) = [p for p in (tmp_path / "sweep").iterdir() if p.is_dir() and p.name.startswith("0_")]
    assert len(job.name) <= MAX_DIRNAME + 2 and validate(read_results(job)) == []
