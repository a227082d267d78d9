"""Errors a researcher can act on, and how a run ends on a signal.

A :class:`UserError` (and the older bad-input exceptions the app lists beside it) is
printed as one line, ``modeconn: error: ...``, with exit status 2: the message names the
value, file or place on disk and what to do, so no traceback is needed.
"""
from __future__ import annotations

import contextlib
import signal
import threading


class UserError(Exception):
    """Bad input (a config value, a file, a place on disk) that the user fixes, not a bug."""


class ConfigError(UserError):
    """Every problem found in a config before any work starts, one line each."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class CorruptCheckpoint(UserError):
    """A training checkpoint that cannot be read (a write cut short, a damaged disk)."""


class TrainingDiverged(UserError):
    """A NaN or infinite loss or weight: the training stops and nothing is stored."""


class Interrupted(SystemExit):
    """The run was stopped by SIGTERM/SIGINT (a pre-empted or cancelled job, Ctrl-C).

    A SystemExit with the shell's status for a signal (128 + signum: 143 for SIGTERM, 130 for
    SIGINT), so a scheduler sees a failed job; ``except Exception`` handlers do not swallow it.
    """

    def __init__(self, signum: int):
        self.signum = int(signum)
        super().__init__(128 + self.signum)

    def __str__(self) -> str:
        return f"terminated by {signal.Signals(self.signum).name}"


def _raise_interrupted(signum, frame):
    raise Interrupted(signum)


@contextlib.contextmanager
def interrupt_on_signals(signums=(signal.SIGTERM, signal.SIGINT)):
    """While inside, SIGTERM and SIGINT raise :class:`Interrupted` wherever the run is.

    Replaces default and foreign handlers (submitit's SIGTERM bypass, Python's
    KeyboardInterrupt, which Lightning turns into exit status 1) and restores them on exit.
    Lightning's own SIGTERM handler, installed during a fit, chains to this one.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _raise_interrupted) for s in signums}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
