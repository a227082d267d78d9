"""Finding and loading runs: every results.json under the given directories."""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from modeconn.results import FILENAME, read_results


def load_runs(dirs: Iterable[str | Path], *, only_ok: bool = True) -> list[dict]:
    runs = []
    for directory in dirs:
        directory = Path(directory)
        files = [directory] if directory.is_file() else sorted(directory.rglob(FILENAME))
        for f in files:
            results = read_results(f)
            if not only_ok or results.get("status") == "ok":
                results["_file"] = str(f)
                runs.append(results)
    return runs


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
    """How the dashboard names a run's method: the method, its alignment and PAM ("bezier", "bezier+activation+PAM")."""
    parts = [run["method"]]
    if run.get("align", "none") != "none":
        parts.append(run["align"])
    if uses_pam(run):
        parts.append("PAM")
    return "+".join(parts)
