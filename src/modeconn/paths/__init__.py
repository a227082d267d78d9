"""Paths: maps from coordinates to weights, one file per method family.

`build_path` turns a `method` config node into a Path over the given endpoint
weight vectors. A new method registers a builder in PATH_BUILDERS.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping

import torch

from modeconn.paths.base import ControlPointPath, Path
from modeconn.paths.curves import BezierPath, PolyChainPath
from modeconn.paths.linear import LinearPath
from modeconn.paths.space import ParameterSpace


def _linear(cfg: Mapping, space: ParameterSpace, endpoints: list[torch.Tensor]) -> Path:
    return LinearPath(space, endpoints[0], endpoints[1], points=cfg.get("points", 61))


def _curve(kind):
    def build(cfg: Mapping, space: ParameterSpace, endpoints: list[torch.Tensor]) -> Path:
        return kind(space, endpoints[0], endpoints[1], num_bends=cfg.get("num_bends", 3),
                    points=cfg.get("points", 61))
    return build


PATH_BUILDERS: dict[str, Callable[..., Path]] = {
    "linear": _linear, "bezier": _curve(BezierPath), "polychain": _curve(PolyChainPath),
}


def build_path(cfg: Mapping, space: ParameterSpace, endpoints: list[torch.Tensor]) -> Path:
    """The Path named by `cfg.name`, anchored at `endpoints` (flat weight vectors)."""
    name = cfg["name"]
    if name not in PATH_BUILDERS:
        raise ValueError(f"method={name} builds no path; known: {sorted(PATH_BUILDERS)}")
    return PATH_BUILDERS[name](cfg, space, endpoints)


__all__ = ["Path", "ControlPointPath", "LinearPath", "BezierPath", "PolyChainPath", "ParameterSpace", "PATH_BUILDERS", "build_path"]
