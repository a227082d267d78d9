"""Re-running a sweep: a job whose results.json already says ok with the same config is skipped.

A sweep's job directories are named by job number and overrides (conf/config.yaml), which
the sweeper enumerates in the same order every time the same command runs, so a re-run
finds each job's earlier results.json. The config must match too: a job re-run with other
settings (a changed default, trainer=smoke vs cpu) is run again, never mistaken for done.
Keys that do not change the results (where it logs, the store's location, progress bars, this
switch) are ignored.
"""
from __future__ import annotations

import json
from pathlib import Path

from modeconn.results import FILENAME

# Config keys that change how a run reports or where it finds its endpoints, not what it computes.
IGNORED_KEYS = ("logger", "resume", "store_dir")
IGNORED_TRAINER_KEYS = ("progress", "threads")


def comparable(config: dict) -> dict:
    """``config`` without the keys that do not affect the results."""
    config = {k: v for k, v in config.items() if k not in IGNORED_KEYS}
    if isinstance(config.get("trainer"), dict):
        config["trainer"] = {k: v for k, v in config["trainer"].items() if k not in IGNORED_TRAINER_KEYS}
    if isinstance(config.get("endpoint"), dict) and config["endpoint"].get("checkpoints") is None:
        # endpoint.checkpoints (issue 18) unset = endpoints trained as before: records made
        # before the key existed still match
        config["endpoint"] = {k: v for k, v in config["endpoint"].items() if k != "checkpoints"}
    return config


def finished(out_dir: str | Path, config: dict) -> dict | None:
    """The earlier results of this job when they say ok and were made with ``config``; else None
    (no file, a failed or killed run, an unreadable file, or other settings)."""
    path = Path(out_dir) / FILENAME
    try:
        earlier = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if earlier.get("status") != "ok" or comparable(earlier.get("config") or {}) != comparable(config):
        return None
    return earlier
