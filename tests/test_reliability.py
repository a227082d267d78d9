"""A run you can trust whatever is done to it: re-run into a used dir, killed, fed bad input.

Each test here failed before its fix (issue 20's "Found" list): a stale checkpoint resumed into
another run and reported ok, SIGTERM exiting 0, bad values found only after training, NaN
endpoints stored, tracebacks for bad input, an ok record overwritten by a failed re-run, a report
aborted by one bad file, empty scratch dirs, the data cache ignoring store_dir, nested job dirs.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import REPO, compose_config
from modeconn import validate
from modeconn.app import run, short_dirname
from modeconn.errors import ConfigError, TrainingDiverged
from modeconn.results import read_results

SMOKE = ("dataset=digits", "arch=mlp", "trainer=smoke", "logger=none", "arch.params.width=32")


def _env(home: Path, **extra) -> dict:
    return {**os.environ, "MODECONN_HOME": str(home), "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1",
            "PYTHONPATH": str(REPO / "src"), **extra}


def _cli(*args: str, home: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "modeconn", *args], capture_output=True, text=True,
                          env=_env(home), cwd=REPO, timeout=timeout)


def _error_lines(proc: subprocess.CompletedProcess) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.strip()]


# ----------------------------------------------------------------- 1. stale checkpoints


def _fit_tiny(work_dir: Path, *, seed: int, identity: dict, epochs: int = 3, callbacks=()):
    from modeconn.data import TensorLoader
    from modeconn.models import build_model
    from modeconn.training.classifier import ClassifierModule
    from modeconn.training.fit import fit

    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(96, 1, 40, generator=g), torch.randint(0, 10, (96,), generator=g)
    model = build_model("mlp", {"width": 16, "depth": 1}, (1, 40), 10)
    loader = TensorLoader(x, y, 32, shuffle=True, seed=3)
    module = ClassifierModule(model, loader, lr=0.05, momentum=0.9, wd=5e-4, total_steps=len(loader) * epochs, seed=3)
    fit(module, epochs=epochs, work_dir=work_dir, trainer_cfg={"progress": False}, identity=identity,
        name="tiny", callbacks=list(callbacks))
    return {k: v.clone() for k, v in model.state_dict().items()}


class _Stop(RuntimeError):
    pass


class _StopAtEpoch(__import__("lightning").Callback):
    def __init__(self, epoch):
        self.epoch = epoch

    def on_train_epoch_start(self, trainer, module):
        if trainer.current_epoch == self.epoch:
            raise _Stop()


def _equal_states(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("change", ["identity", "start weights"])
def test_a_checkpoint_of_another_training_is_discarded_not_resumed(tmp_path, caplog, change):
    with pytest.raises(_Stop):
        _fit_tiny(tmp_path / "used", seed=0, identity={"lr": 0.05}, callbacks=[_StopAtEpoch(2)])
    assert (tmp_path / "used" / "last.ckpt").exists()
    other = {"seed": 1, "identity": {"lr": 0.05}} if change == "start weights" else {"seed": 0, "identity": {"lr": 0.1}}
    with caplog.at_level(logging.WARNING, logger="modeconn"):
        reused = _fit_tiny(tmp_path / "used", **other)
    fresh = _fit_tiny(tmp_path / "fresh", **other)
    assert _equal_states(reused, fresh)        # trained from its own start, as in a clean dir
    message = " ".join(r.getMessage() for r in caplog.records)
    assert "discarding checkpoint" in message and ("differs in the starting weights" in message if change == "start weights" else "differs in lr" in message)


def test_the_same_training_still_resumes(tmp_path, caplog):
    uninterrupted = _fit_tiny(tmp_path / "a", seed=0, identity={"lr": 0.05})
    with pytest.raises(_Stop):
        _fit_tiny(tmp_path / "b", seed=0, identity={"lr": 0.05}, callbacks=[_StopAtEpoch(2)])
    with caplog.at_level(logging.INFO, logger="modeconn"):
        resumed = _fit_tiny(tmp_path / "b", seed=0, identity={"lr": 0.05})
    assert _equal_states(resumed, uninterrupted)
    assert "resuming from its checkpoint at epoch 2/3" in caplog.text


def _run_twice_into_one_dir(make_config, first: tuple, second: tuple, store: Path) -> tuple[dict, dict]:
    """``second`` run into the dir ``first`` ran in, and ``second`` in a clean dir."""
    run(make_config(*first, "output_dir=" + str(store.parent / "used"), store=store))
    reused = run(make_config(*second, "output_dir=" + str(store.parent / "used"), store=store))
    fresh = run(make_config(*second, "output_dir=" + str(store.parent / "fresh"), store=store))
    return reused, fresh


def _config_maker():
    def make(*overrides, store):
        return compose_config(f"store_dir={store}", *SMOKE, *overrides)
    return make


def test_a_rerun_with_another_seed_into_a_used_run_dir_trains_its_own_curve(tmp_path):
    """The issue's case: seed=1 re-run into a seed=0 bezier run's dir reported seed 0's path
    with seed 1's endpoints; now its curve is the one a clean dir gives."""
    common = ("method=bezier", "method.points=5", "dataset.train_size=400")
    reused, fresh = _run_twice_into_one_dir(_config_maker(), (*common, "seed=0"), (*common, "seed=1"),
                                            tmp_path / "store")
    assert reused["path"] == fresh["path"]
    for i, end in ((0, 0), (1, -1)):     # the path starts and ends at its own endpoints
        assert reused["path"]["test_err"][end] == reused["endpoints"][i]["test_err"]


def test_a_rerun_with_another_recipe_retrains_the_curve(tmp_path):
    """trainer=smoke -> a longer recipe (the README says that re-runs): the old checkpoint is not resumed."""
    common = ("method=bezier", "method.points=5", "dataset.train_size=400")
    reused, fresh = _run_twice_into_one_dir(_config_maker(), (*common, "method.train.limit_batches=2"),
                                            (*common, "method.train.limit_batches=4"), tmp_path / "store")
    assert reused["path"] == fresh["path"]


@pytest.mark.slow
@pytest.mark.parametrize("method", [
    ("method=simplex", "method.vertices=3", "method.samples=2", "method.equal_cost_baseline=false"),
    ("method=complex", "method.connectors=1", "method.samples=2", "method.points=5"),
    ("method=bezier", "method.pam.enabled=true", "method.pam.rounds=1", "method.pam.perm_batches=2", "method.points=5"),
    ("method=fge", "endpoint.epochs=4"),
    ("method=subspace", "method.grid=2", "method.points=5", "method.train.epochs=1"),
    ("method=cut", "method.dim=5", "method.train.epochs=1"),
], ids=["simplex", "complex", "pam", "fge", "subspace", "cut"])
def test_every_resumable_work_dir_refuses_another_runs_checkpoints(tmp_path, method):
    """Simplex vertices, complex connectors, PAM rounds, FGE cycles, subspace connectors and cuts
    keep checkpoints in the run dir too: each re-run with another seed equals a clean run."""
    reused, fresh = _run_twice_into_one_dir(_config_maker(), (*method, "seed=0", "dataset.train_size=400"),
                                            (*method, "seed=1", "dataset.train_size=400"), tmp_path / "store")
    for section in ("path", "simplex", "complex", "ensemble", "pam", "cut", "subspace"):
        if section in fresh:
            assert _uncached(reused[section]) == _uncached(fresh[section]), section


def _uncached(record):
    """A record without its `cached` flags (the second run finds the first's store entries)."""
    if isinstance(record, dict):
        return {k: _uncached(v) for k, v in record.items() if k != "cached"}
    return [_uncached(v) for v in record] if isinstance(record, list) else record


def test_endpoints_trained_at_another_precision_get_their_own_store_key():
    from modeconn.store import spec_key
    from modeconn.training.endpoints import endpoint_spec

    fp32 = endpoint_spec(compose_config(), 0)
    assert "precision" not in fp32      # float32 keys are the ones stores already hold
    bf16 = endpoint_spec(compose_config("trainer.precision=bf16-mixed"), 0)
    assert spec_key(bf16) != spec_key(fp32)


# ----------------------------------------------------------------- 2. signals


def _wait_for(proc: subprocess.Popen, lines: list[str], needle: str, timeout: float = 300) -> None:
    """Read ``proc``'s stdout into ``lines`` until a line holds ``needle``."""
    deadline = time.monotonic() + timeout
    for line in proc.stdout:
        lines.append(line)
        if needle in line:
            return
        assert time.monotonic() < deadline, "".join(lines[-20:])
    raise AssertionError(f"the run ended before {needle!r}:\n" + "".join(lines[-30:]))


def _interrupted(args: tuple, home: Path, signum: int, status: int) -> str:
    """Run the CLI, send ``signum`` during the third epoch, check the exit status; its output."""
    proc = subprocess.Popen([sys.executable, "-m", "modeconn", *args], env=_env(home), cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lines: list[str] = []
    try:
        _wait_for(proc, lines, "epoch 3/40")
        proc.send_signal(signum)
        lines += proc.stdout.readlines()
        assert proc.wait(timeout=120) == status, "".join(lines[-30:])
    finally:
        proc.kill()
    return "".join(lines)


def test_sigterm_fails_a_sweep_job_with_143_and_the_rerun_resumes_it(tmp_path):
    """A pre-empted job (SIGTERM) is a failed job: exit status 143, results.json failed; the same
    sweep again skips nothing that failed and resumes the endpoint from its checkpoint. Off a
    terminal, training prints one line per epoch and no progress bar."""
    sweep, home = tmp_path / "sweep", tmp_path / "home"
    args = ("-m", *SMOKE, "method=linear", "method.points=3", "seed=0,1", "endpoint.epochs=40",
            f"hydra.sweep.dir={sweep}")
    output = _interrupted(args, home, signal.SIGTERM, status=143)
    assert "\r" not in output and output.count("epoch 1/40") == 1
    (job,) = sweep.glob("0_*/results.json")
    first = read_results(job)
    assert first["status"] == "failed" and "SIGTERM" in first["error"]
    assert not list(sweep.glob("1_*/results.json"))          # the sweep stopped with its job
    assert list((home / "partial").iterdir())                # the endpoint's checkpoint survives

    rerun = _cli(*args, home=home)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "resuming from its checkpoint at epoch" in rerun.stdout
    jobs = [read_results(p) for p in sorted(sweep.glob("*/results.json"))]
    assert [r["status"] for r in jobs] == ["ok", "ok"]
    assert not (home / "partial").exists() or not list((home / "partial").iterdir())


def test_sigint_exits_130_and_a_corrupt_checkpoint_names_the_file_to_delete(tmp_path):
    home, run_dir = tmp_path / "home", tmp_path / "run"
    args = (*SMOKE, "method=linear", "method.points=3", "endpoint.epochs=40", f"hydra.run.dir={run_dir}")
    _interrupted(args, home, signal.SIGINT, status=130)
    record = read_results(run_dir)
    assert record["status"] == "failed" and "SIGINT" in record["error"]

    (checkpoint,) = (home / "partial").glob("*/last.ckpt")
    data = checkpoint.read_bytes()
    checkpoint.write_bytes(data[: len(data) // 2])           # a write cut short
    proc = _cli(*args, home=home)
    (line,) = _error_lines(proc)
    assert proc.returncode == 2 and line.startswith("modeconn: error: ")
    assert "corrupt" in line and f"rm {checkpoint}" in line and not (home / "endpoints").exists()


# ----------------------------------------------------------------- 3./4. validation before work


@pytest.mark.parametrize("override, key", [
    ("method.num_bends=2", "method.num_bends"), ("method.points=0", "method.points"),
    ("method.points=1", "method.points"), ("endpoint.lr=nan", "endpoint.lr"), ("endpoint.lr=-0.1", "endpoint.lr"),
    ("endpoint.epochs=0", "endpoint.epochs"), ("endpoint.epochs=-1", "endpoint.epochs"), ("seed=abc", "seed"),
    ("seed=-1", "seed"), ("eval.batch_size=0", "eval.batch_size"), ("eval.bn_batch_size=0", "eval.bn_batch_size"),
    ("endpoint.momentum=1.5", "endpoint.momentum"), ("method.train.wd=inf", "method.train.wd"),
    ("dataset.train_size=0", "dataset.train_size"), ("endpoint.schedule=linear", "endpoint.schedule"),
])
def test_bad_values_are_refused_naming_their_key(override, key):
    problems = validate.problems(compose_config("method=bezier", override))
    value = override.split("=", 1)[1]
    # one line for the key, and one for any key that inherits its value (method.train.epochs)
    assert problems and problems[0].startswith(f"{key}=") and all(value in p for p in problems), problems


def test_the_default_configs_and_every_experiment_pass_validation():
    assert validate.problems(compose_config()) == []
    for method in sorted(p.stem for p in (REPO / "conf" / "method").glob("*.yaml")):
        assert validate.problems(compose_config(f"method={method}")) == [], method


def test_a_bad_config_fails_before_any_endpoint_is_trained(run_config, tmp_path):
    with pytest.raises(ConfigError) as error:
        run(run_config("method=bezier", "method.num_bends=2", "method.points=0"))
    assert len(error.value.problems) == 2
    assert not (tmp_path / "store").exists() and not (tmp_path / "run" / "results.json").exists()


def test_a_training_set_smaller_than_asked_warns(caplog):
    from modeconn.data import load_dataset
    with caplog.at_level(logging.WARNING, logger="modeconn"):
        data = load_dataset({"name": "digits", "train_size": 10**6})
    assert "dataset.train_size=1000000 is larger than the" in caplog.text and len(data.x_train) < 10**6


@pytest.mark.parametrize("overrides, what", [
    (("endpoint.lr=1e6",), "endpoint"),
    (("method=bezier", "method.train.lr=1e6", "method.points=3"), "bezier curve"),
])
def test_a_diverging_training_stops_and_stores_nothing(run_config, tmp_path, overrides, what):
    with pytest.raises(TrainingDiverged, match=f"{what}.*NaN or infinite.*lower the learning rate"):
        run(run_config(*SMOKE, *overrides))
    store = tmp_path / "store"
    if what == "endpoint":
        assert not (store / "endpoints").exists() or not list((store / "endpoints").iterdir())
    assert not (store / "partial").exists() or not list((store / "partial").iterdir())
    assert read_results(tmp_path / "run")["status"] == "failed"


# ----------------------------------------------------------------- 5. one line, not a traceback


def test_every_bad_value_is_one_line_and_exit_2_with_nothing_written(tmp_path):
    home = tmp_path / "home"
    proc = _cli(*SMOKE, "method=bezier", "method.num_bends=2", "endpoint.lr=-1", "seed=abc", "eval.batch_size=0",
                "eval.bn_batch_size=0", "endpoint.epochs=0", f"hydra.run.dir={tmp_path / 'run'}", home=home)
    lines = _error_lines(proc)
    assert proc.returncode == 2 and len(lines) == 6, proc.stderr
    assert all(line.startswith("modeconn: error: ") for line in lines)
    assert not home.exists() and not (tmp_path / "run" / "results.json").exists()


@pytest.mark.parametrize("case", ["run dir under a file", "MODECONN_HOME is a file", "unknown choice", "key typo"])
def test_bad_places_and_hydra_errors_end_without_a_traceback(tmp_path, case):
    a_file = tmp_path / "a_file"
    a_file.write_text("not a directory")
    args, home = [*SMOKE, f"hydra.run.dir={tmp_path / 'run'}"], tmp_path / "home"
    if case == "run dir under a file":
        args[-1] = f"hydra.run.dir={a_file / 'run'}"
    elif case == "MODECONN_HOME is a file":
        home = a_file
    elif case == "unknown choice":
        args.append("method=nope")
    else:
        args.append("endpoint.epoch=3")
    proc = _cli(*args, home=home)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith("modeconn: error: ")
    if case in ("run dir under a file", "MODECONN_HOME is a file"):
        (line,) = _error_lines(proc)
        assert str(a_file) in line
    else:     # Hydra's own message is kept
        assert ("Could not find 'method/nope'" if case == "unknown choice" else "Key 'epoch' is not in struct") in proc.stderr


@pytest.fixture
def full_disk(tmp_path):
    """A 256 KiB tmpfs: the first checkpoint does not fit (needs root and mount; skipped otherwise)."""
    mount = tmp_path / "full"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_is_one_line(tmp_path, full_disk):
    proc = _cli(*SMOKE, "arch.params.width=512", "method=linear", f"hydra.run.dir={tmp_path / 'run'}", home=full_disk)
    (line,) = _error_lines(proc)
    assert proc.returncode == 2 and line.startswith("modeconn: error: No space left on device"), proc.stderr
    assert not list((full_disk / "endpoints").glob("*")) if (full_disk / "endpoints").exists() else True
    assert read_results(tmp_path / "run")["status"] == "failed"


# ----------------------------------------------------------------- 6. an ok record is kept


def test_a_failed_rerun_keeps_the_earlier_ok_record(run_config, tmp_path):
    ok = run(run_config(*SMOKE, "method=linear", "method.points=3"))
    with pytest.raises(FileNotFoundError):
        run(run_config("dataset=fashion_mnist", "dataset.root=/nonexistent/fm", "method=linear"))
    assert read_results(tmp_path / "run")["status"] == "failed"
    (kept,) = (tmp_path / "run").glob("results.*.json")
    assert json.loads(kept.read_text()) == json.loads(json.dumps(ok, default=float))


# ----------------------------------------------------------------- 7. the report


def test_the_report_skips_a_bad_results_file_and_refuses_a_missing_dir(run_config, tmp_path, capsys):
    from modeconn.report.cli import main as report

    good = run(run_config(*SMOKE, "method=linear", "method.points=3"))
    runs = tmp_path / "runs"
    for name, text in {"good": json.dumps(good, default=float), "truncated": '{"status": "ok", "data',
                       "a_list": "[1, 2]", "fields": json.dumps({"status": "ok"})}.items():
        (runs / name).mkdir(parents=True)
        (runs / name / "results.json").write_text(text)
    assert report([str(runs), "--paper", "garipov2018"]) == 0
    err = capsys.readouterr().err
    for name in ("truncated", "a_list", "fields"):
        assert sum(f"{runs / name / 'results.json'}" in line and "skipping" in line for line in err.splitlines()) == 1
    assert report([str(tmp_path / "nowhere")]) == 2
    assert "nowhere: no such file or directory" in capsys.readouterr().err


# ----------------------------------------------------------------- 8. smaller


def test_a_failed_training_leaves_no_empty_scratch_dir(tmp_path):
    from modeconn.store import EndpointStore

    store = EndpointStore(tmp_path)

    def crash(work_dir):
        raise RuntimeError("crashed before its first checkpoint")

    with pytest.raises(RuntimeError):
        store.get_or_create({"seed": 0}, crash)
    assert not (tmp_path / "partial").exists() or not list((tmp_path / "partial").iterdir())


def test_generated_data_is_cached_under_the_runs_store_dir(tmp_path, monkeypatch):
    from modeconn.data import load_dataset

    monkeypatch.setenv("MODECONN_HOME", str(tmp_path / "home"))
    load_dataset({"name": "mnist1d"}, home=tmp_path / "store")
    assert list((tmp_path / "store" / "data").glob("mnist1d-*.npz"))
    assert not (tmp_path / "home").exists()


def test_an_override_holding_a_path_makes_one_job_dir():
    name = short_dirname("dataset.root=/data/fm,seed=0")
    assert "/" not in name and name.startswith("dataset.root=_data_fm,seed=0")
    assert name != short_dirname("dataset.root=_data_fm,seed=0")


@pytest.mark.slow
def test_the_demo_prints_fewer_than_100_lines_into_a_pipe(tmp_path):
    """`make demo | cat`: the main job, off a terminal, prints lines rather than bars."""
    proc = _cli("dataset=mnist1d", "arch=mlp", "method=linear", "logger=csv", f"hydra.run.dir={tmp_path / 'run'}",
                home=tmp_path / "home")
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    assert "\r" not in output and len(output.splitlines()) < 100, output
    assert "barrier" in proc.stdout
