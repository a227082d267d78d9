"""Finding and loading runs: every results.json under the given directories."""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from modeconn.results import FILENAME, read_results

log = logging.getLogger("modeconn.report")

# What every table reads to place a run; the rest (config, timing, ...) each table looks up with a default.
REPORTED_KEYS = ("status", "dataset", "arch", "method", "align", "seed")


class MissingRunDirectory(FileNotFoundError):
    """A directory given to the report does not exist (a typo would otherwise report nothing)."""


def load_runs(dirs: Iterable[str | Path], *, only_ok: bool = True, warn: Callable[[str], None] = log.warning) -> list[dict]:
    """Every run recorded under ``dirs``. A results.json that cannot be read as one run's record
    (truncated, not an object, missing its keys) is skipped with a one-line ``warn`` naming it."""
    runs = []
    for directory in dirs:
        directory = Path(directory)
        if not directory.exists():
            raise MissingRunDirectory(f"{directory}: no such file or directory")
        files = [directory] if directory.is_file() else sorted(directory.rglob(FILENAME))
        for f in files:
            results = _readable(f, warn)
            if results is not None and (not only_ok or results.get("status") == "ok"):
                results["_file"] = str(f)
                runs.append(results)
    return runs


def _readable(path: Path, warn: Callable[[str], None]) -> dict | None:
    try:
        results = read_results(path)
    except (OSError, ValueError) as e:
        problem = f"cannot be read ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
    else:
        if not isinstance(results, dict):
            problem = f"holds a {type(results).__name__}, not a run's record"
        elif missing := [k for k in REPORTED_KEYS if k not in results]:
            problem = f"lacks {', '.join(missing)}"
        else:
            return results
    warn(f"skipping {path}: it {problem}")
    return None


def method_option(run: dict, key: str, default=None):
    """``run``'s resolved ``method.<key>`` (``default`` when the run's config lacks it)."""
    return (run.get("config") or {}).get("method", {}).get(key, default)


def uses_pam(run: dict) -> bool:
    return bool((method_option(run, "pam") or {}).get("enabled", False))


def mean_std_cell(values, fmt: str = ".2f") -> str:
    """A table cell over seeds: the value itself for one run, "mean ± std" for several, "" for none."""
    values = list(values)
    if not values:
        return ""
    if len(values) == 1:
        return f"{values[0]:{fmt}}"
    return f"{np.mean(values):{fmt}} ± {np.std(values):{fmt}}"


def method_label(run: dict) -> str:
    """How the dashboard names a run's method: the method, its alignment, PAM and REPAIR/RESET
    ("bezier", "bezier+activation+PAM", "linear+weight+REPAIR"); spawned runs add their K
    (``spawn K``), so Frankle's runs at each K are traces of their own."""
    parts = [run["method"]]
    if run.get("align", "none") != "none":
        parts.append(run["align"])
    if uses_pam(run):
        parts.append("PAM")
    if config_value(run, "align.repair", False):
        parts.append("REPAIR")
    if not config_value(run, "align.reset", True):
        parts.append("no RESET")
    if spawn_of(run) is not None:
        parts.append(f"spawn {spawn_of(run)}")
    return "+".join(parts)


def config_value(run: dict, dotted: str, default=None):
    """``run``'s resolved config value at ``dotted`` (``default`` when the run's config lacks it)."""
    node = run.get("config") or {}
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def spawn_of(run: dict) -> int | None:
    """``endpoint.spawn`` of a run (Frankle et al.'s K), None for independent endpoints."""
    value = config_value(run, "endpoint.spawn")
    return None if value is None else int(value)


def treatment(run: dict) -> str:
    """Jordan et al.'s name for what is done at each point of the line: none, RESET or REPAIR.
    On a net without BN the protocol's recomputation does nothing, so plain runs are "none"."""
    if config_value(run, "align.repair", False):
        return "REPAIR"
    if not config_value(run, "align.reset", True):
        return "none"
    return "RESET" if config_value(run, "arch.params.batchnorm", False) else "none"


def plain(run: dict) -> bool:
    """Independent endpoints measured by the protocol as it is: not Frankle's spawned children,
    no REPAIR, BN statistics recomputed. The other papers' tables read only such runs."""
    return (spawn_of(run) is None and not config_value(run, "align.repair", False)
            and config_value(run, "align.reset", True))
