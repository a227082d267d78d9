"""The evaluation protocol along a 1-D path: every grid point measured as Garipov does."""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from modeconn.progress import Progress

from modeconn.evaluation.metrics import METRICS, evaluate_point
from modeconn.evaluation.summary import summarize_profile
from modeconn.paths.base import Path

#: (t, parameters) -> (parameters, BN statistics to use as given, or None to recompute them)
PointTransform = Callable[[float, dict[str, torch.Tensor]], tuple[dict[str, torch.Tensor], dict | None]]


@torch.no_grad()
def evaluate_path(path: Path, model: nn.Module, data, *, wd: float, batch_size: int, bn_batch_size: int,
                  progress: bool = True, transform: PointTransform | None = None) -> tuple[dict[str, list[float]], dict]:
    """Measure `model` at every point of `path.grid()`.

    Returns the profile (`t` and one list per metric) and its summaries (start,
    end, min, max, avg, arc-length weighted int, length, barrier). `transform(t, params)`
    changes each point's weights before it is measured and may give BN statistics to use
    as they are (REPAIR, the no-RESET baseline); the length is the path's own.
    """
    grid = path.grid()
    profile: dict[str, list[float]] = {"t": [float(c[0]) for c in grid], **{m: [] for m in METRICS}}
    dl = [0.0]
    previous = None
    for coords in Progress(grid, desc="evaluating path", enabled=progress):
        vector = path.vector(coords.to(path.device)).detach()
        params, buffers = path.space.unflatten(vector), None
        if transform is not None:
            params, buffers = transform(float(coords[0]), params)
        point = evaluate_point(model, params, data, wd=wd, batch_size=batch_size, bn_batch_size=bn_batch_size,
                               buffers=buffers)
        for name, value in point.as_dict().items():
            profile[name].append(value)
        if previous is not None:
            dl.append(torch.linalg.vector_norm((vector - previous).double()).item())
        previous = vector
    return profile, summarize_profile(profile, dl, METRICS)
