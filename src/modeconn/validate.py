"""Every check on a run's config, in one place, before any work (data, training, store).

A value a run would only trip over after training its endpoints (``method.num_bends=2``),
one that would train forever (``endpoint.epochs=-1``), store untrained or NaN networks
(``endpoint.epochs=0``, ``endpoint.lr=nan``) or report a meaningless number
(``method.points=1``, a barrier of 0) is refused here, one line per problem, naming the key.
Keys a config does not have are not checked, so a method's rules list all its options.
"""
from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from modeconn.errors import ConfigError

# A rule returns what is wrong with a value ("must be ..."), or None when it is fine.
Rule = Callable[[Any], "str | None"]
SCHEDULES = ("garipov", "cosine", "constant")
PRECISIONS = ("32-true", "32", "64-true", "64", "16-mixed", "bf16-mixed", "bf16-true", "16-true", "transformer-engine")


def integer(low: int | None = None, optional: bool = False) -> Rule:
    def rule(value):
        if value is None and optional:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or (low is not None and value < low):
            return f"must be an integer{f' >= {low}' if low is not None else ''}" + (" or null" if optional else "")
        return None
    return rule


def number(low: float | None = None, high: float | None = None, *, low_open: bool = False, high_open: bool = False,
           optional: bool = False) -> Rule:
    """A finite real number in the interval (open or closed at each end)."""
    def rule(value):
        if value is None and optional:
            return None
        bounds = []
        if low is not None:
            bounds.append(f"{'>' if low_open else '>='} {low:g}")
        if high is not None:
            bounds.append(f"{'<' if high_open else '<='} {high:g}")
        want = "must be a finite number" + (f" {' and '.join(bounds)}" if bounds else "") + (" or null" if optional else "")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return want
        if low is not None and (value < low or (low_open and value == low)):
            return want
        if high is not None and (value > high or (high_open and value == high)):
            return want
        return None
    return rule


def choice(*options: Any) -> Rule:
    def rule(value):
        return None if value in options else f"must be one of {', '.join(map(str, options))}"
    return rule


def threads_setting(value) -> str | None:
    """trainer.threads: auto (a parallel launcher's share of the cores), a count, or null (torch's)."""
    if value is None or value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
        return None
    return "must be auto, an integer >= 1 or null"


def compile_setting(value) -> str | None:
    """trainer.compile: false, true (inductor) or a torch.compile backend's name."""
    return None if isinstance(value, (bool, str)) else "must be true, false or a torch.compile backend name"


def boolean(value) -> str | None:
    return None if isinstance(value, bool) else "must be true or false"


def even_cycle(value) -> str | None:
    problem = integer(2)(value)
    return problem or (f"must be even (half a cycle up, half down)" if value % 2 else None)


def keeps(value) -> str | None:
    if not isinstance(value, (list, tuple)) or not value:
        return "must be a non-empty list of keep probabilities in (0, 1]"
    return next((f"has {v!r}: keep probabilities must lie in (0, 1]" for v in value
                 if number(0, 1, low_open=True)(v)), None)


POSITIVE, NONNEG, COUNT, SIZE = number(0, low_open=True), number(0), integer(0), integer(1)
MOMENTUM = number(0, 1, high_open=True)

# How a network is trained (endpoint.*, method.train.*). A path may train for 0 epochs
# (it stays where it is built); an endpoint may not (it would be an untrained network).
RECIPE = {"lr": POSITIVE, "wd": NONNEG, "momentum": MOMENTUM, "batch_size": SIZE,
          "schedule": choice(*SCHEDULES), "limit_batches": integer(1, optional=True)}

GLOBAL: dict[str, Rule] = {
    "seed": integer(0),
    "endpoint.epochs": SIZE,
    **{f"endpoint.{k}": r for k, r in RECIPE.items()},
    "method.train.epochs": COUNT,
    **{f"method.train.{k}": r for k, r in RECIPE.items()},
    "eval.batch_size": SIZE, "eval.bn_batch_size": SIZE, "eval.wd": NONNEG,
    "dataset.train_size": integer(1, optional=True), "dataset.test_size": integer(1, optional=True),
    "align.samples": SIZE, "align.batch_size": SIZE, "align.max_iter": SIZE,
    "align.repair": boolean, "align.reset": boolean, "align.repair_samples": integer(2),
    "endpoint.spawn": integer(0, optional=True),
    "trainer.accelerator": choice("cpu", "gpu"), "trainer.devices": SIZE, "trainer.precision": choice(*PRECISIONS),
    "trainer.threads": threads_setting, "trainer.channels_last": choice(True, False),
    "trainer.compile": compile_setting,
    "method.endpoints": COUNT, "method.points": integer(2),
    "method.plane_grid": integer(2), "method.plane_margin": NONNEG,
}

CURVE = {"num_bends": integer(3), "pam.rounds": SIZE, "pam.perm_epochs": COUNT,
         "pam.perm_batches": integer(1, optional=True), "pam.perm_lr": POSITIVE, "pam.perm_momentum": MOMENTUM,
         "pam.prox": NONNEG}
VERTICES = {"epochs_per_vertex": COUNT, "n_sample": SIZE, "lmbda": NONNEG, "samples": SIZE}
LAYERWISE = {"connect": choice("arc", "linear"), "fit_samples": COUNT, "fit_rows": COUNT, "ridge": NONNEG,
             "points_per_segment": integer(2)}
METHODS: dict[str, dict[str, Rule]] = {
    "bezier": CURVE, "polychain": CURVE,
    "simplex": {"vertices": integer(2), "components": SIZE, **VERTICES},
    "complex": {"modes": integer(2), "connectors": SIZE, **VERTICES},
    "fge": {"start_fraction": number(0, 1, low_open=True), "cycle": even_cycle, "budget": POSITIVE,
            "cycles": integer(1, optional=True), "lr_1": POSITIVE, "lr_2": POSITIVE},
    "ensemble": {"budget": POSITIVE, "members": SIZE},
    "dropout": {"variant": choice("dropout", "noise"), "keep": number(0, 0.5, low_open=True), "draws": SIZE,
                "search_samples": SIZE, "points_per_segment": integer(2), "check_samples": SIZE,
                "line_points": lambda v: None if v == 0 else integer(2)(v) and "must be 0 (skip) or an integer >= 2",
                "stability.keeps": keeps, "stability.draws": SIZE},
    "subspace": {"modes": integer(3), "n_sample": SIZE, "init_noise": NONNEG, "grid": SIZE,
                 "neighbourhood": number(0, 1, low_open=True, high_open=True), "ensemble_members": integer(1, optional=True)},
    "cut": {"dim": SIZE, "radius_scale": POSITIVE, "density": number(0, 1, low_open=True, optional=True)},
    "wa": LAYERWISE, "bfly": LAYERWISE,
    "flow": {"pool": SIZE, "transforms": SIZE, "hidden": SIZE, "epochs": SIZE, "lr": POSITIVE, "batch_size": SIZE},
}


_ABSENT = object()


def _get(cfg: DictConfig | Mapping, dotted: str) -> Any:
    """The resolved value at ``dotted``, or _ABSENT. Keys are resolved one by one, so a config
    composed outside a Hydra run (its output_dir unresolvable) can still be checked."""
    if isinstance(cfg, DictConfig):
        value = OmegaConf.select(cfg, dotted, default=_ABSENT, throw_on_missing=False)
        return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
    node: Any = cfg
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return _ABSENT
        node = node[part]
    return node


def problems(cfg: DictConfig | Mapping) -> list[str]:
    """What is wrong with ``cfg``, one line per key (empty when it can run)."""
    method = _get(cfg, "method.name")
    rules = {**GLOBAL, **{f"method.{k}": r for k, r in METHODS.get(method, {}).items()}}
    found = []
    for key, rule in rules.items():
        value = _get(cfg, key)
        if value is not _ABSENT and (problem := rule(value)):
            found.append(f"{key}={value!r}: {problem}")
    found += _cross_checks(cfg)
    if not found:       # the files are read only for an otherwise good config
        from modeconn.checkpoints import checkpoint_problems
        found += checkpoint_problems(cfg)
    return found


def _cross_checks(cfg: DictConfig | Mapping) -> list[str]:
    out = []
    if _get(cfg, "trainer.accelerator") == "gpu":
        import torch
        if not torch.cuda.is_available():
            out.append("trainer=gpu: no CUDA device is visible here; use trainer=cpu")
    store = _get(cfg, "store_dir")
    if store not in (_ABSENT, None) and (problem := _unusable_dir(Path(str(store)).expanduser())):
        out.append(f"store_dir={store} (MODECONN_HOME, default ~/.cache/modeconn): {problem}")
    if _get(cfg, "dataset.name") == "folder":          # your own images: the folder must be there
        from modeconn.data import DatasetNotFound
        from modeconn.data.folder import recipe, split_dirs
        try:
            split_dirs(_get(cfg, "dataset"))
            recipe(_get(cfg, "dataset"))
        except (DatasetNotFound, ValueError) as e:
            out.append(str(e))
    spawn, epochs = _get(cfg, "endpoint.spawn"), _get(cfg, "endpoint.epochs")
    if isinstance(spawn, int) and not isinstance(spawn, bool) and isinstance(epochs, int) and spawn >= epochs > 0:
        out.append(f"endpoint.spawn={spawn}: must be less than endpoint.epochs={epochs} (the children train "
                   f"epochs {spawn}..{epochs} after the parent's first {spawn})")
    for key, default in (("align.repair", False), ("align.reset", True)):
        if _get(cfg, key) not in (_ABSENT, default) and _get(cfg, "method.name") != "linear":
            out.append(f"{key}={_get(cfg, key)}: applies to the straight line only (method=linear), "
                       f"not method={_get(cfg, 'method.name')}")
    if _get(cfg, "method.pam.enabled") is True and (_get(cfg, "method.name"), _get(cfg, "method.num_bends")) != ("bezier", 3):
        out.append("method.pam.enabled=true needs method=bezier with method.num_bends=3 (Tatro's quadratic curve)")
    return out


def _unusable_dir(path: Path) -> str | None:
    """Why ``path`` cannot be (made into) a writable directory, or None."""
    if path.exists():
        if not path.is_dir():
            return "is a file, not a directory"
        return None if os.access(path, os.W_OK | os.X_OK) else "is not writable"
    parent = next((p for p in path.parents if p.exists()), None)
    if parent is None or not parent.is_dir():
        return f"cannot be created ({parent} is a file)"
    return None if os.access(parent, os.W_OK | os.X_OK) else f"cannot be created ({parent} is not writable)"


def check(cfg: DictConfig | Mapping) -> None:
    """Raise :class:`ConfigError` with every problem of ``cfg``; return quietly when there is none."""
    found = problems(cfg)
    if found:
        raise ConfigError(found)
