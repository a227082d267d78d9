"""Torch threads per job: a parallel launcher's jobs share the machine's cores.

torch starts as many threads as the machine has cores in every process; two jobs of
a joblib sweep on 2 cores then run 4 threads that preempt each other inside every
matrix product (weight matching on preresnet164 took ~30 s instead of ~0.7 s with
one thread). `trainer.threads`: `auto` (default) gives each job of a parallel
launcher its share of the cores (joblib: cores // n_jobs; submitit: its
cpus_per_task, else the share of its array_parallelism) and leaves a single run or a
sequential sweep at torch's default; an integer sets the count; null keeps torch's.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any


def cores() -> int:
    """The CPUs this process may run on (affinity-aware, unlike os.cpu_count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def parallel_jobs(launcher: Mapping[str, Any] | None, available: int) -> int | None:
    """How many jobs of this launcher run at once on this machine (None: not a parallel one)."""
    if not launcher:
        return None
    target = str(launcher.get("_target_", ""))
    if "joblib" in target.lower():
        n = int(launcher.get("n_jobs", -1) or -1)
        return max(1, n if n > 0 else available + 1 + n)  # joblib: -1 = all cores, -2 = all but one
    if "submitit" in target.lower() and "local" in target.lower():
        return max(1, min(int(launcher.get("array_parallelism", available) or available), available))
    return None


def job_threads(setting: Any, launcher: Mapping[str, Any] | None, available: int | None = None) -> int | None:
    """Threads for this job: `setting` as an int, or for `auto` the share of the cores when a
    parallel launcher runs the job; None leaves torch's default."""
    if setting is None:
        return None
    if setting != "auto":
        return int(setting)
    available = available or cores()
    if launcher and launcher.get("cpus_per_task"):  # submitit (local or SLURM) gives each task these
        return max(1, min(int(launcher["cpus_per_task"]), available))
    jobs = parallel_jobs(launcher, available)
    return None if jobs is None or jobs <= 1 else max(1, available // jobs)


def apply(setting: Any, launcher: Mapping[str, Any] | None) -> int:
    """Set torch's intra-op threads for this job as `job_threads` says; returns the count in use."""
    import torch

    threads = job_threads(setting, launcher)
    if threads is not None and threads != torch.get_num_threads():
        torch.set_num_threads(threads)
    return torch.get_num_threads()
