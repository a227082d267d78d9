"""A 2-job sweep run in parallel (hydra/launcher=local_parallel, joblib) vs the same sweep run
sequentially, with `trainer.threads=auto` (each parallel job its share of the cores) and with
torch's default threads in every job (oversubscribed).

Each job (by default): fashion_mnist, mlp, linear path, two endpoints trained
`--epochs` epochs (a fresh store per sweep, so every sweep trains the same endpoints),
then the 61-point evaluation: enough work that the jobs' compute, not Python's start-up,
is compared (a job of a few seconds measures joblib's worker start-up). The three sweeps
alternate over the repeats; wall-clock medians and ratios are printed (never asserted).

    .venv/bin/python benchmarks/sweep_threads.py [--repeats 3] [--epochs 1] [--train-size N] [--test-size N]
        [--dataset fashion_mnist] [--method linear] [--override KEY=VALUE ...]

What a parallel sweep can gain depends on the job. Light jobs (a small net, a job's
work on one core: `--dataset digits --method bezier --epochs 120`) run side by side almost
as fast as alone; jobs whose matrix products already use both cores (full Fashion-MNIST) can
gain little on a 2-core machine. Each joblib worker pays the job's imports (Lightning and
what it loads, ~9 s here) again; the driver, which only launches, does not import them.
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
    cmd = [sys.executable, "-m", "modeconn", "-m", "seed=0,1", f"dataset={args.dataset}",
           "arch=mlp", f"method={args.method}", "trainer=cpu", f"endpoint.epochs={args.epochs}",
           "logger=none", "trainer.progress=false", f"store_dir={store}", f"hydra.sweep.dir={store}/sweep"]
    cmd += list(args.override)
    cmd += [f"dataset.{name}_size={size}" for name, size in (("train", args.train_size), ("test", args.test_size)) if size]
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
    ap.add_argument("--epochs", type=int, default=1, help="endpoint training epochs")
    ap.add_argument("--dataset", default="fashion_mnist")
    ap.add_argument("--method", default="linear")
    ap.add_argument("--override", nargs="*", default=[], help="more overrides for every job (method.train.epochs=2)")
    ap.add_argument("--train-size", type=int, default=None, help="default: the full training set")
    ap.add_argument("--test-size", type=int, default=None, help="default: the full test set")
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
