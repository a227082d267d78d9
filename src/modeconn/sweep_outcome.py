"""A sweep's outcome for its command's exit status.

A failed job is recorded (results.json, status failed) and the sweep goes on to its other
jobs; the command must still not exit 0 afterwards, or a script or CI job that runs a sweep
reads a sweep whose jobs all failed as a success. This Hydra callback runs in the sweep's
driver process (whatever the launcher) and collects, at the end of the multirun, the jobs
whose results.json was written during it with a status other than ok; `modeconn.app.cli`
turns them into error lines and exit status 1. Jobs skipped as already done are untouched
and count as ok.
"""
from __future__ import annotations

import time
from pathlib import Path

from hydra.experimental.callback import Callback

from modeconn.results import FILENAME, read_results

# (job dir, first line of its error) for each job of the last multirun that did not end ok
FAILED: list[tuple[Path, str]] = []


class SweepOutcome(Callback):
    def on_multirun_start(self, config, **kwargs) -> None:
        self.started = time.time()
        FAILED.clear()

    def on_multirun_end(self, config, **kwargs) -> None:
        FAILED[:] = failed_jobs(Path(config.hydra.sweep.dir), since=getattr(self, "started", 0.0))


def failed_jobs(sweep_dir: Path, since: float) -> list[tuple[Path, str]]:
    """Job dirs under `sweep_dir` whose results.json, written at or after `since`, is not ok."""
    failed = []
    for path in sorted(sweep_dir.glob(f"*/{FILENAME}")):
        try:
            if path.stat().st_mtime < since - 1:        # an earlier sweep's job, or one skipped as done
                continue
            record = read_results(path)
        except (OSError, ValueError) as error:
            failed.append((path.parent, f"unreadable {FILENAME}: {error}"))
            continue
        if record.get("status") != "ok":
            error = str(record.get("error") or record.get("status") or "no status").strip()
            failed.append((path.parent, error.splitlines()[0] if error else "failed"))
    return failed
