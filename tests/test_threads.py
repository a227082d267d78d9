"""Threads per job under parallel launchers (src/modeconn/threads.py)."""
import subprocess
import sys

import pytest

from modeconn.threads import job_threads, parallel_jobs
from modeconn.validate import threads_setting

JOBLIB = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"
LOCAL = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher"
SLURM = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"


@pytest.mark.parametrize("launcher, cores, expected", [
    (None, 8, None),                                              # a single run: torch's default
    ({"_target_": "hydra._internal.core_plugins.basic_launcher.BasicLauncher"}, 8, None),  # sequential
    ({"_target_": JOBLIB, "n_jobs": 2}, 2, 1),
    ({"_target_": JOBLIB, "n_jobs": 2}, 16, 8),
    ({"_target_": JOBLIB, "n_jobs": 3}, 16, 5),
    ({"_target_": JOBLIB, "n_jobs": -1}, 16, 1),                  # joblib's -1: one job per core
    ({"_target_": JOBLIB, "n_jobs": -2}, 16, 1),
    ({"_target_": JOBLIB, "n_jobs": 32}, 16, 1),                  # never below one
    ({"_target_": JOBLIB, "n_jobs": 1}, 16, None),
    ({"_target_": LOCAL, "array_parallelism": 4, "cpus_per_task": None}, 16, 4),
    ({"_target_": LOCAL, "array_parallelism": 256, "cpus_per_task": None}, 16, 1),
    ({"_target_": LOCAL, "array_parallelism": 4, "cpus_per_task": 2}, 16, 2),
    ({"_target_": SLURM, "cpus_per_task": 8}, 64, 8),
    ({"_target_": SLURM, "cpus_per_task": None}, 64, None),
])
def test_auto_gives_each_parallel_job_its_share_of_the_cores(launcher, cores, expected):
    assert job_threads("auto", launcher, cores) == expected


def test_explicit_settings_and_validation():
    assert job_threads(3, {"_target_": JOBLIB, "n_jobs": 2}, 2) == 3
    assert job_threads(None, {"_target_": JOBLIB, "n_jobs": 2}, 2) is None
    assert parallel_jobs(None, 4) is None
    assert [threads_setting(v) for v in ("auto", 1, 8, None)] == [None] * 4
    assert all(threads_setting(v) for v in (0, -1, "many", True, 1.5))


@pytest.mark.slow
def test_a_joblib_sweep_job_runs_with_its_share(tmp_path):
    """Two jobs of hydra/launcher=local_parallel (joblib, n_jobs 2) each set torch to cores // 2."""
    code = f"""
import os, sys, torch
sys.argv = ["modeconn", "-m", "hydra/launcher=local_parallel", "seed=0,1", "hydra.sweep.dir={tmp_path}/sweep",
            "hydra.launcher.n_jobs=2"]
import modeconn.app as app
from modeconn.errors import UserError
seen = []
def fake_run(cfg):
    from modeconn import threads
    n = threads.apply(cfg.trainer.threads, app._launcher_config())
    open(os.path.join("{tmp_path}", f"job{{cfg.seed}}"), "w").write(str(n))
    # a user error ends the job as a recorded failure and the sweep goes on: SystemExit in one
    # loky worker could end the driver before the other job had written its file
    raise UserError("only the thread setting is under test")
"""
    # The real job function with `run` replaced: only the thread setting is under test.
    code += """
app.run = fake_run
try:
    app.main()
except SystemExit:
    pass
"""
    subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    from modeconn.threads import cores
    got = sorted(p.read_text() for p in tmp_path.glob("job*"))
    assert got == [str(max(1, cores() // 2))] * 2, got
