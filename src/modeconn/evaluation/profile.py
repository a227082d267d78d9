"""The evaluation protocol along a 1-D path: every grid point measured as Garipov does.

`PathEvaluator` sets up what one path shares across its points (the first layer's
outputs of every control point, evaluation/first_layer.py, where it applies) and then
measures one point at a time; `evaluate_path` runs it over the grid.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from modeconn.progress import Progress

from modeconn.evaluation.first_layer import FirstLayerCache
from modeconn.evaluation.metrics import METRICS, PointMetrics, evaluate_point
from modeconn.evaluation.summary import summarize_profile
from modeconn.paths.base import Path

#: (t, parameters) -> (parameters, BN statistics to use as given, or None to recompute them)
PointTransform = Callable[[float, dict[str, torch.Tensor]], tuple[dict[str, torch.Tensor], dict | None]]


class PathEvaluator:
    """Measure `model` at points of `path` (BN recomputed at each, as `evaluate_point`).

    `precompute=False` skips the first-layer cache (the plain protocol; same numbers)."""

    def __init__(self, path: Path, model: nn.Module, data, *, wd: float, batch_size: int, bn_batch_size: int,
                 precompute: bool = True):
        self.path, self.model, self.data = path, model, data
        self.kw = dict(wd=wd, batch_size=batch_size, bn_batch_size=bn_batch_size)
        self.cache = FirstLayerCache.build(path, model, data) if precompute else None

    @torch.no_grad()
    def point(self, coords: torch.Tensor) -> tuple[PointMetrics, torch.Tensor]:
        """The metrics at `coords` and the flat weight vector there."""
        vector = self.path.vector(coords.to(self.path.device)).detach()
        params = self.path.space.unflatten(vector)
        if self.cache is None:
            return evaluate_point(self.model, params, self.data, **self.kw), vector
        z_train, z_test = self.cache.combine(self.path.coefficients(coords.to(self.path.device)))
        with self.cache.feeding():
            metrics = evaluate_point(self.model, params, self.data, inputs=(z_train, z_test),
                                     sq_norm=vector.double().pow(2).sum().item(), **self.kw)
        return metrics, vector


@torch.no_grad()
def evaluate_path(path: Path, model: nn.Module, data, *, wd: float, batch_size: int, bn_batch_size: int,
                  progress: bool = True, precompute: bool = True, transform: PointTransform | None = None
                  ) -> tuple[dict[str, list[float]], dict]:
    """Measure `model` at every point of `path.grid()`.

    Returns the profile (`t` and one list per metric) and its summaries (start,
    end, min, max, avg, arc-length weighted int, length, barrier). `transform(t, params)`
    changes each point's weights before it is measured and may give BN statistics to use
    as they are (REPAIR, the no-RESET baseline); the length is the path's own.
    """
    grid = path.grid()
    evaluator = PathEvaluator(path, model, data, wd=wd, batch_size=batch_size, bn_batch_size=bn_batch_size,
                              precompute=precompute)
    profile: dict[str, list[float]] = {"t": [float(c[0]) for c in grid], **{m: [] for m in METRICS}}
    dl = [0.0]
    previous = None
    for coords in Progress(grid, desc="evaluating path", enabled=progress):
        if transform is None:
            point, vector = evaluator.point(coords)
        else:
            vector = path.vector(coords.to(path.device)).detach()
            params, buffers = transform(float(coords[0]), path.space.unflatten(vector))
            point = evaluate_point(model, params, data, wd=wd, batch_size=batch_size, bn_batch_size=bn_batch_size,
                                   buffers=buffers)
        for name, value in point.as_dict().items():
            profile[name].append(value)
        if previous is not None:
            dl.append(torch.linalg.vector_norm((vector - previous).double()).item())
        previous = vector
    return profile, summarize_profile(profile, dl, METRICS)
