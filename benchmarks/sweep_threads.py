"""A 2-job sweep run in parallel (hydra/launcher=local_parallel, joblib) vs the same sweep run
sequentially, with `trainer.threads=auto` (each parallel job its share of the cores) and with
torch's default threads in every job (oversubscribed).

Each job: fashion_mnist (train subset), mlp, linear path, endpoints from trainer=smoke
(its own fresh store per sweep, so every sweep trains the same endpoints), then the
61-point evaluation. The three sweeps alternate over the repeats; wall-clock medians
and ratios are printed (never asserted).

    .venv/bin/python benchmarks/sweep_threads.py [--repeats 3] [--train-size 10000] [--test-size 2000]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time


def sweep(kind: str, args, root: str) -> float:
    store = tempfile.mkdtemp(dir=root)
    cmd = [sys.executable, "-m", "modeconn", "-m", "seed=0,1", "dataset=fashion_mnist",
           f"dataset.train_size={args.train_size}", f"dataset.test_size={args.test_size}", "arch=mlp", "method=linear", "trainer=smoke",
           "logger=none", "trainer.progress=false", f"store_dir={store}", f"hydra.sweep.dir={store}/sweep"]
    if kind != "sequential":
        cmd += ["hydra/launcher=local_parallel", "hydra.launcher.n_jobs=2"]
    cmd += ["trainer.threads=auto" if kind != "parallel, torch default threads" else "trainer.threads=null"]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "WANDB_MODE": "disabled"})
    if done.returncode:
        sys.exit(f"{kind} sweep failed:\n{done.stderr[-2000:]}")
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--train-size", type=int, default=10000)
    ap.add_argument("--test-size", type=int, default=2000)
    args = ap.parse_args()
    from modeconn.threads import cores
    import torch
    print(f"{cores()} cores; torch default threads {torch.get_num_threads()}; load average {os.getloadavg()[0]:.1f}")
    kinds = ["sequential", "parallel, trainer.threads=auto", "parallel, torch default threads"]
    times = {k: [] for k in kinds}
    with tempfile.TemporaryDirectory() as root:
        for r in range(args.repeats):
            for kind in (kinds if r % 2 == 0 else kinds[::-1]):
                times[kind].append(sweep(kind, args, root))
    seq = statistics.median(times["sequential"])
    for kind in kinds:
        t = statistics.median(times[kind])
        print(f"{kind:34s} {t:7.1f} s  ({seq / t:.2f}x the sequential sweep)")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
