"""benchmarks/gpu_recipe.py --quick runs end to end on a CPU (CI): both sides, every stage."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_recipe_quick_runs_on_cpu():
    env = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_recipe.py"), "--quick"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    for arch in ("vgg16", "preresnet110"):
        for stage in ("endpoint epoch", "curve epoch", "evaluation", "full recipe"):
            assert any(line.startswith(arch) and stage in line for line in lines), (arch, stage)
