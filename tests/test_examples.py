"""The README's examples run as written."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import REPO


@pytest.mark.slow     # trains two MLPs and a curve, evaluates three paths: ~30 s here
def test_own_checkpoints_example_runs_and_alignment_lowers_the_barrier(tmp_path):
    proc = subprocess.run([sys.executable, str(REPO / "examples" / "own_checkpoints.py"), "--out", str(tmp_path)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    barriers = {line.split("test-error barrier")[0].strip(): float(line.split("test-error barrier")[1].split("%")[0])
                for line in proc.stdout.splitlines() if "test-error barrier" in line}
    assert set(barriers) == {"straight line", "aligned line", "aligned Bezier curve"}
    assert barriers["aligned line"] < barriers["straight line"] / 3
    assert barriers["aligned Bezier curve"] < barriers["straight line"] / 3
    record = json.loads((tmp_path / "profile.json").read_text())
    assert len(record["path"]["t"]) == 61 and record["alignment"]["max_logit_change"] < 1e-4
    assert (tmp_path / "path.png").stat().st_size > 0
