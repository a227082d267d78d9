"""Sweeps: parallel launchers share the endpoint store, and a re-run sweep completes only the missing jobs."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from conftest import REPO
from modeconn.resume import finished
from modeconn.results import read_results, validate

SMOKE = ("dataset=digits", "arch=mlp", "trainer=smoke", "logger=none")


def _env(home: Path) -> dict:
    return {**os.environ, "MODECONN_HOME": str(home), "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1",
            "PYTHONPATH": str(REPO / "src")}


def _sweep(*args: str, home: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "modeconn", "-m", *args], capture_output=True, text=True,
                          env=_env(home), cwd=REPO, timeout=600)


def _jobs(sweep_dir: Path) -> dict[str, dict]:
    return {p.parent.name: read_results(p) for p in sorted(sweep_dir.glob("*/results.json"))}


def test_submitit_local_sweep_trains_each_endpoint_once_and_reports(tmp_path):
    """The issue's must-show: four parallel jobs, each endpoint trained by exactly one of them."""
    sweep = tmp_path / "sweep"
    proc = _sweep("hydra/launcher=submitit_local", *SMOKE, "method=linear,bezier", "seed=0,1",
                  f"hydra.sweep.dir={sweep}", home=tmp_path / "home")
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = _jobs(sweep)
    assert len(jobs) == 4 and all(r["status"] == "ok" and validate(r) == [] for r in jobs.values())
    assert sorted((r["method"], r["seed"]) for r in jobs.values()) == [("bezier", 0), ("bezier", 1),
                                                                      ("linear", 0), ("linear", 1)]
    trained = Counter(e["key"] for r in jobs.values() for e in r["endpoints"] if not e["cached"])
    used = {e["key"] for r in jobs.values() for e in r["endpoints"]}
    assert len(used) == 4 and trained == Counter({key: 1 for key in used})   # 2 seeds x 2 endpoints, once each

    from modeconn.report.cli import main
    out = tmp_path / "report"
    assert main([str(sweep), "--out", str(out)]) == 0
    table = (out / "garipov2018.md").read_text()
    assert "| Line |" in table and "| Bezier |" in table and "| 2 |" in table   # two seeds a row
    html = (out / "dashboard.html").read_text()
    assert "bezier (2 seeds)" in html and "linear (2 seeds)" in html and "<script src=" not in html


def test_killed_sweep_rerun_completes_only_the_missing_jobs(tmp_path):
    """A real sweep is killed (SIGKILL) once its first job is done; the same command again skips
    that job (results.json untouched) and runs the others."""
    sweep, home = tmp_path / "sweep", tmp_path / "home"
    args = (*SMOKE, "method=linear", "seed=0,1,2", f"hydra.sweep.dir={sweep}")
    proc = subprocess.Popen([sys.executable, "-m", "modeconn", "-m", *args], env=_env(home), cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    try:
        while not any(r["status"] == "ok" for r in _readable_jobs(sweep).values()):
            assert proc.poll() is None and time.monotonic() < deadline, "the sweep ended before it could be killed"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    done_before = {name: (sweep / name / "results.json").stat().st_mtime_ns
                   for name, r in _readable_jobs(sweep).items() if r["status"] == "ok"}
    assert 1 <= len(done_before) < 3, done_before

    rerun = _sweep(*args, home=home)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    jobs = _jobs(sweep)
    assert [name.split(",")[-1] for name in sorted(jobs)] == ["seed=0", "seed=1", "seed=2"]   # the first run's dirs
    assert all(r["status"] == "ok" for r in jobs.values())
    for name, mtime in done_before.items():
        assert (sweep / name / "results.json").stat().st_mtime_ns == mtime, f"{name} ran again"
    assert (rerun.stdout + rerun.stderr).count("skipped") == len(done_before)   # Hydra logs to stdout


def _readable_jobs(sweep: Path) -> dict[str, dict]:
    jobs = {}
    for p in sweep.glob("*/results.json"):
        try:
            jobs[p.parent.name] = json.loads(p.read_text())
        except ValueError:
            pass
    return jobs


def test_only_an_ok_job_with_the_same_config_counts_as_done(tmp_path):
    config = {"seed": 0, "method": {"name": "linear"}, "logger": {"name": "none"}, "trainer": {"progress": False}}
    (tmp_path / "results.json").write_text(json.dumps({"status": "ok", "config": config}))
    assert finished(tmp_path, config)["status"] == "ok"
    # how a run reports does not matter; what it computes does
    assert finished(tmp_path, {**config, "logger": {"name": "wandb"}, "trainer": {"progress": True}, "resume": True})
    assert finished(tmp_path, {**config, "seed": 1}) is None
    (tmp_path / "results.json").write_text(json.dumps({"status": "failed", "config": config, "error": "x"}))
    assert finished(tmp_path, config) is None
    (tmp_path / "results.json").write_text('{"status": "ok", "conf')   # a torn file never counts
    assert finished(tmp_path, config) is None
    assert finished(tmp_path / "absent", config) is None


def test_launcher_configs_give_one_device_per_job(monkeypatch):
    """slurm_gpu is submitit_slurm with one GPU a job; local_parallel is joblib; on a host with
    several GPUs job k of a multirun takes GPU k mod their count."""
    from hydra import compose, initialize_config_dir

    from modeconn import app
    with initialize_config_dir(config_dir=str(app.CONFIG_DIR), version_base="1.3"):
        slurm = compose("config", overrides=["hydra/launcher=slurm_gpu", "hydra.launcher.partition=gpu"],
                        return_hydra_config=True).hydra.launcher
        joblib = compose("config", overrides=["hydra/launcher=local_parallel"], return_hydra_config=True).hydra.launcher
        local = compose("config", overrides=["hydra/launcher=submitit_local"], return_hydra_config=True).hydra.launcher
    assert slurm._target_.endswith("SlurmLauncher") and slurm.gpus_per_node == 1 and slurm.tasks_per_node == 1
    assert slurm.partition == "gpu"
    assert joblib._target_.endswith("JoblibLauncher") and joblib.n_jobs == 2
    assert local._target_.endswith("LocalLauncher")

    class Job:
        def __init__(self, num):
            self.job = type("J", (), {"num": num})
    monkeypatch.setattr(app, "_in_multirun", lambda: True)
    gpus = []
    for num in range(5):
        monkeypatch.setattr(app.HydraConfig, "get", staticmethod(lambda num=num: Job(num)))
        gpus.append(app.job_gpu(2))
    assert gpus == [0, 1, 0, 1, 0] and app.job_gpu(1) == 0
    monkeypatch.setattr(app, "_in_multirun", lambda: False)
    assert app.job_gpu(4) == 0          # a single run uses the first GPU (multi-GPU through trainer.devices)


def test_a_submitit_job_lost_to_a_signal_is_two_lines_naming_it_and_its_log(tmp_path, monkeypatch):
    """A scancelled SLURM job leaves submitit no result: the sweep command says which job and where
    its log is (submitit's own exception, raised where the launcher's wait for the job ends), not a traceback."""
    from submitit.slurm.slurm import SlurmJob

    from modeconn.app import lost_job_lines
    monkeypatch.setenv("PATH", "")                         # no sacct: the state reads UNKNOWN
    job = SlurmJob(folder=tmp_path / "%j", job_id="7_1")
    job.paths.folder.mkdir()                               # made at submission; the job wrote no result
    job._results_timeout_s = 0
    with pytest.raises(Exception) as caught:
        job._get_outcome_and_result()                      # what job.result() calls once SLURM says done
    lines = lost_job_lines(caught.value)
    assert lines[0] == f"sweep job 7_1 ended without a result (state: UNKNOWN); its log: {tmp_path}/7_1/7_1_0_log.err"
    assert "run the same command again" in lines[1]
    assert lost_job_lines(RuntimeError("Job 7_1 (task: 0) with path x_result.pkl")) is None


@pytest.mark.slow
def test_joblib_sweep_runs_jobs_in_parallel_processes(tmp_path):
    sweep = tmp_path / "sweep"
    proc = _sweep("hydra/launcher=local_parallel", *SMOKE, "method=linear", "seed=0,1", f"hydra.sweep.dir={sweep}",
                  home=tmp_path / "home")
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = _jobs(sweep)
    assert len(jobs) == 2 and all(r["status"] == "ok" for r in jobs.values())


def test_a_failed_job_is_recorded_and_the_sweep_goes_on_and_reruns_it(tmp_path):
    sweep, home = tmp_path / "sweep", tmp_path / "home"
    args = (*SMOKE, "method=ensemble", "method.members=0,1", f"hydra.sweep.dir={sweep}")
    proc = _sweep(*args, home=home)
    # the other job runs on, but the command does not exit 0: a script must not read it as a success
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "modeconn: error: 1 sweep job(s) failed" in proc.stderr
    (line,) = [l for l in proc.stderr.splitlines() if l.startswith("modeconn: error:   ")]
    assert str(sweep) in line and "method.members=0: must be an integer >= 1" in line
    failed, ok = (r for _, r in sorted(_jobs(sweep).items()))
    assert failed["status"] == "failed" and "method.members=0: must be an integer >= 1" in failed["error"] and validate(failed) == []
    assert ok["status"] == "ok"
    rerun = _sweep(*args, home=home)
    assert (rerun.stdout + rerun.stderr).count("skipped") == 1          # the ok job only; the failed one runs again
    assert "method.members=0: must be an integer >= 1" in rerun.stdout + rerun.stderr
    assert rerun.returncode == 1 and "modeconn: error: 1 sweep job(s) failed" in rerun.stderr  # not the skipped one


def test_the_app_imports_no_lightning_scipy_or_pot_until_a_job_runs():
    """A sweep's driver only launches jobs: importing the app leaves Lightning (with the
    torchmetrics, torchvision models and torch._dynamo it loads), the runners, scipy and POT to
    the job (~6 s of start-up a parallel sweep's driver paid before its workers paid it again)."""
    code = ("import sys, modeconn.app; "
            "heavy = [m for m in ('lightning', 'torchmetrics', 'modeconn.runners', 'scipy.optimize', 'ot') "
            "if m in sys.modules]; print(heavy); sys.exit(bool(heavy))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
