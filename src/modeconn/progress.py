"""Progress on long work: a bar on a terminal, a few plain lines in a log.

Under CI, SLURM or submitit, stdout is a file: a bar there writes a partial line per
update. So off a terminal each stage logs one line when it ends, plus one a minute while
it runs, through the ``modeconn`` logger (Hydra sends it to the console and the job's log).
"""
from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator

from tqdm.auto import tqdm

log = logging.getLogger("modeconn")
HEARTBEAT_SECONDS = 60.0


def interactive() -> bool:
    """True when stdout is a terminal (bars), False in logs and pipes (lines)."""
    return sys.stdout.isatty()


class Progress:
    """``tqdm``'s interface (iterate, ``update``, ``close``) with the lines fallback above."""

    def __init__(self, iterable: Iterable | None = None, *, desc: str, total: int | None = None,
                 enabled: bool = True):
        self.iterable, self.desc, self.enabled = iterable, desc, enabled
        self.total = total if total is not None else (len(iterable) if hasattr(iterable, "__len__") else None)
        self.count = 0
        self.start = self.last_line = time.perf_counter()
        self.bar = tqdm(iterable, desc=desc, total=self.total, leave=False) if enabled and interactive() else None
        self.closed = False

    def __iter__(self) -> Iterator:
        source = self.bar if self.bar is not None else self.iterable
        for item in source:
            yield item
            if self.bar is None:
                self._advance(1)
        self.close()

    def update(self, n: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(n)
        else:
            self._advance(n)

    def _advance(self, n: int) -> None:
        self.count += n
        now = time.perf_counter()
        if self.enabled and now - self.last_line >= HEARTBEAT_SECONDS:
            log.info("%s: %s (%.0f s)", self.desc, self._done(), now - self.start)
            self.last_line = now

    def _done(self) -> str:
        return f"{self.count}/{self.total}" if self.total else str(self.count)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.bar is not None:
            self.bar.close()
        elif self.enabled:
            log.info("%s: %s done in %.1f s", self.desc, self._done(), time.perf_counter() - self.start)


def progress(iterable: Iterable, *, desc: str, enabled: bool = True, total: int | None = None) -> Progress:
    """Iterate ``iterable`` with progress shown as fits the output (see the module docstring)."""
    return Progress(iterable, desc=desc, total=total, enabled=enabled)
