"""Runs from a W&B project, as the same records as results.json files on disk.

Every job with ``logger=wandb`` uploads its results.json to its W&B run (tracking.py),
so loading a project is downloading those files: the tables and the dashboard then run
the same code as on local sweep directories. Offline runs are not visible to the API
until ``wandb sync`` has uploaded them.
"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from modeconn.results import FILENAME


def load_wandb_runs(project: str, *, api=None, only_ok: bool = True, filters: dict | None = None) -> list[dict]:
    """The results of ``project`` ("ENTITY/PROJECT") runs that finished and uploaded a results.json.

    ``api`` is a ``wandb.Api()`` (made here when omitted; it needs ``WANDB_API_KEY`` or
    ``wandb login``). Each record gets ``_wandb`` (the run's path, name, group and URL)
    instead of ``_file``.
    """
    if project.count("/") != 1:
        raise ValueError(f"--wandb {project!r}: give ENTITY/PROJECT, e.g. my-team/modeconn")
    if api is None:
        import wandb
        api = wandb.Api()
    runs, missing = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i, run in enumerate(api.runs(project, filters=filters or {"state": "finished"})):
            try:
                with run.file(FILENAME).download(root=str(Path(tmp) / str(i)), replace=True) as f:
                    results = json.load(f)
            except Exception:   # a run from before results.json was uploaded, or a crashed upload
                missing.append(run.name)
                continue
            if only_ok and results.get("status") != "ok":
                continue
            results["_wandb"] = {"path": "/".join(run.path), "name": run.name, "group": run.group, "url": run.url}
            runs.append(results)
    if missing:
        print(f"modeconn-report: {len(missing)} W&B run(s) in {project} have no {FILENAME} "
              f"(skipped): {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}", file=sys.stderr)
    return runs
