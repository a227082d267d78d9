"""One runner per kind of method. Paths (linear, curves, ...) share `run_path`;
methods that are not a 1-D path (FGE, ensembles, simplexes, complexes), or whose path is
constructed from measurements (Kuditipudi's dropout path, Anokhin's Arc/WA/B-fly/flow), register their own here."""
from __future__ import annotations

from collections.abc import Callable

from modeconn.runners.context import RunContext
from modeconn.runners.path import run_path

RUNNERS: dict[str, Callable[[RunContext], None]] = {}

from modeconn.runners.anokhin import run_anokhin  # noqa: E402
from modeconn.runners.cut import run_cut  # noqa: E402
from modeconn.runners.dropout import run_dropout  # noqa: E402
from modeconn.runners.ensemble import run_ensemble, run_fge  # noqa: E402
from modeconn.runners.simplex import run_complex, run_simplex  # noqa: E402
from modeconn.runners.subspace import run_subspace  # noqa: E402
from modeconn.runners.toy import run_toy  # noqa: E402

RUNNERS["fge"] = run_fge
RUNNERS["ensemble"] = run_ensemble
RUNNERS["simplex"] = run_simplex
RUNNERS["complex"] = run_complex
RUNNERS["dropout"] = run_dropout
for _name in ("arc", "wa", "bfly", "gauss", "flow"):
    RUNNERS[_name] = run_anokhin
RUNNERS["toy"] = run_toy
RUNNERS["cut"] = run_cut
RUNNERS["subspace"] = run_subspace


def runner_for(method: str) -> Callable[[RunContext], None]:
    return RUNNERS.get(method, run_path)


__all__ = ["RunContext", "RUNNERS", "runner_for", "run_path"]
