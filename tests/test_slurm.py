"""A real SLURM cluster: Debian's slurm-wlm started on this machine (.ci/slurm/start.sh, one node,
localhost, its cores) runs a 2x2 sweep through ``hydra/launcher=submitit_slurm``. One job is sent
``scancel --signal=TERM`` while it trains its curve; the sweep is run again and must end with four
ok results, every endpoint trained exactly once, and the cancelled job resumed from its own
checkpoint (the other three skipped). Skips, with the reason, where SLURM is not installed and
cannot be (no apt-get: `make slurm` installs it where apt is available) or without root.
"""
from __future__ import annotations

import os
import random
import re
import shutil
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from conftest import REPO
from modeconn.results import read_results
from modeconn.store import EndpointStore

pytestmark = pytest.mark.slow
SLURM_SCRIPTS = REPO / ".ci" / "slurm"
BINARIES = ("munged", "slurmctld", "slurmd", "slurmdbd", "sbatch", "squeue", "scancel", "sacct",
            "mariadbd", "mariadb-install-db")
EPOCHS = 25          # endpoints and curve: the curve trains ~5 s here, time to cancel it mid-way
CANCELLED = 1        # job 1 = seed=0 method=bezier (Hydra numbers the grid seed-major)
SWEEP = ("hydra/launcher=submitit_slurm", "hydra.launcher.cpus_per_task=1", "hydra.launcher.timeout_min=15",
         "dataset=digits", "arch=mlp", "trainer=smoke", "logger=none", f"endpoint.epochs={EPOCHS}",
         "seed=0,1", "method=linear,bezier")


def _free_port_base(count: int = 4) -> int:
    """A base port with `count` free ports after it (start.sh uses base..base+3)."""
    for _ in range(50):
        base = random.randrange(20000, 60000)
        try:
            for port in range(base, base + count):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
    raise RuntimeError("no free ports")


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """A private one-node cluster for this module; its environment (SLURM_CONF) for clients."""
    missing = [b for b in BINARIES if shutil.which(b) is None]
    if missing:
        why = ("apt-get is not available to install them" if shutil.which("apt-get") is None
               else "`make slurm` (or .ci/slurm/install.sh) installs them")
        pytest.skip(f"SLURM is not installed ({', '.join(missing)} missing): {why}")
    if os.geteuid() != 0:
        pytest.skip("the local SLURM cluster is started as root (slurmd runs jobs as their user)")
    state = tmp_path_factory.mktemp("slurm")
    env = {**os.environ, "MODECONN_SLURM_DIR": str(state), "MODECONN_SLURM_PORT": str(_free_port_base())}
    try:
        start = subprocess.run([str(SLURM_SCRIPTS / "start.sh")], env=env, capture_output=True, text=True,
                               timeout=240)
        assert start.returncode == 0, f"the SLURM cluster did not start:\n{start.stdout}\n{start.stderr[-4000:]}"
        yield {**env, "SLURM_CONF": str(state / "etc" / "slurm.conf")}
    finally:
        subprocess.run([str(SLURM_SCRIPTS / "stop.sh")], env=env, capture_output=True, timeout=120)


def _env(slurm: dict, home: Path) -> dict:
    return {**slurm, "MODECONN_HOME": str(home), "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1",
            "PYTHONPATH": str(REPO / "src")}


def _sweep_command(sweep: Path) -> list[str]:
    return [sys.executable, "-m", "modeconn", "-m", *SWEEP, f"hydra.sweep.dir={sweep}"]


def _wait(condition, what: str, seconds: float, proc: subprocess.Popen | None = None):
    deadline = time.monotonic() + seconds
    while True:
        value = condition()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the sweep ended (status {proc.returncode}) before {what}:\n"
                                 f"{proc.stdout.read()[-3000:]}")
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def _job_dir(sweep: Path, num: int) -> Path | None:
    return next(iter(sweep.glob(f"{num}_*")), None)


def _queue(env: dict) -> list[str]:
    out = subprocess.run(["squeue", "-h", "-o", "%i %T"], env=env, capture_output=True, text=True, check=True)
    return out.stdout.split("\n")[:-1]


def test_slurm_sweep_survives_a_scancel_and_resumes(slurm, tmp_path):
    """The issue's must-show, end to end on SLURM: a job cancelled mid-training is recorded as
    failed (by the job and by SLURM's accounting), the sweep command ends naming it, and the same
    command completes the sweep: the cancelled job resumes from its checkpoint, the others are
    skipped, and over both sweeps every endpoint is trained exactly once."""
    sweep, home = tmp_path / "sweep", tmp_path / "home"
    env = _env(slurm, home)
    started = time.monotonic()
    first = subprocess.Popen(_sweep_command(sweep), env=env, cwd=REPO, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        # The array task of Hydra job 1 is <array id>_1 (submitit's folder names it); cancel it
        # once its curve has checkpointed an epoch, while it still trains.
        task = _wait(lambda: next((p.name for p in (sweep / ".submitit").glob(f"*_{CANCELLED}")), None),
                     "the array to be submitted", 120, first)
        _wait(lambda: _job_dir(sweep, CANCELLED) and (_job_dir(sweep, CANCELLED) / "checkpoints" / "path"
                                                       / "last.ckpt").exists(),
              "job 1's curve checkpoint", 240, first)
        # scancel may report the job "already completing" when it retries the signal: the job's
        # own record below says whether the signal arrived.
        subprocess.run(["scancel", "--signal=TERM", task], env=env, capture_output=True)
        out, _ = first.communicate(timeout=300)      # the sweep command ends (it does not wait forever)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, 9)
            first.wait()
    _wait(lambda: not _queue(env), "the array's other jobs to finish", 300)
    first_s = time.monotonic() - started

    job = _job_dir(sweep, CANCELLED)
    cancelled = read_results(job / "results.json")
    assert cancelled["status"] == "failed" and cancelled["error"] == "Interrupted: terminated by SIGTERM"
    # The sweep command stops at the lost job with two lines naming it (the others ran on in SLURM).
    assert first.returncode == 1 and f"modeconn: error: sweep job {task} ended without a result" in out, out[-3000:]
    assert "Traceback" not in out
    accounting = subprocess.run(["sacct", "-n", "-P", "-X", "-j", task, "-o", "JobID,State"], env=env,
                                capture_output=True, text=True).stdout
    assert accounting.split() == [f"{task}|FAILED"], accounting     # SLURM saw a failed job
    log_before = (job / "app.log").read_text()
    stopped = [int(m) for m in re.findall(rf"bezier curve: epoch (\d+)/{EPOCHS}", log_before)]
    assert stopped and max(stopped) < EPOCHS, "the curve finished before it was cancelled"
    others = {p: p.stat().st_mtime_ns for p in sweep.glob("*/results.json") if p.parent != job}
    assert len(others) == 3 and all(read_results(p)["status"] == "ok" for p in others)

    rerun = subprocess.run(_sweep_command(sweep), env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, (rerun.stdout + rerun.stderr)[-3000:]
    results = {p.parent.name: read_results(p) for p in sweep.glob("*/results.json")}
    assert len(results) == 4 and all(r["status"] == "ok" for r in results.values()), results
    assert all(p.stat().st_mtime_ns == mtime for p, mtime in others.items())     # skipped, not re-run
    resumed = (job / "app.log").read_text()[len(log_before):]
    # from the last checkpoint: the epoch logged last, or the one before when the signal came
    # between an epoch's log line and its checkpoint
    at = re.findall(rf"bezier curve: resuming from its checkpoint at epoch (\d+)/{EPOCHS}", resumed)
    assert len(at) == 1 and max(stopped) - 1 <= int(at[0]) <= max(stopped) and int(at[0]) >= 1, resumed
    assert "bezier curve: epoch 1/" not in resumed                             # not from its start

    # Each endpoint trained once over both sweeps: one first and one last epoch per endpoint in
    # all the jobs' logs, four store entries, and those are the endpoints the results name.
    logs = "".join(p.read_text() for p in sweep.glob("*/app.log"))
    firsts = Counter(re.findall(rf"endpoint seed (\d+): epoch 1/{EPOCHS} ", logs))
    lasts = Counter(re.findall(rf"endpoint seed (\d+): epoch {EPOCHS}/{EPOCHS} ", logs))
    assert len(firsts) == 4 and set(firsts.values()) == {1} and lasts == firsts, (firsts, lasts)
    assert "endpoint seed" not in "".join(re.findall(r".*resuming.*", logs))
    used = {e["key"] for r in results.values() for e in r["endpoints"]}
    assert sorted(EndpointStore(home).keys()) == sorted(used) and len(used) == 4
    print(f"first sweep with the cancel {first_s:.0f} s, re-run {time.monotonic() - started - first_s:.0f} s")
