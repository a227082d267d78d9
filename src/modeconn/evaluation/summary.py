"""Summaries of a profile along a 1-D path, as Garipov's eval_curve.py prints them."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def summarize(values: Sequence[float], dl: Sequence[float]) -> dict[str, float]:
    """start/end/min/max/avg and `int`: the trapezoid average weighted by arc length.

    `dl[i]` is the distance between points i-1 and i (dl[0] unused).
    """
    v = np.asarray(values, dtype=float)
    d = np.asarray(dl, dtype=float)[1:]
    segment_means = 0.5 * (v[:-1] + v[1:])
    integral = float(np.sum(segment_means * d) / np.sum(d)) if d.sum() > 0 else float(v.mean())
    return {
        "start": float(v[0]), "end": float(v[-1]), "min": float(v.min()), "max": float(v.max()),
        "avg": float(v.mean()), "int": integral,
    }


def summarize_profile(profile: Mapping[str, Sequence[float]], dl: Sequence[float], metrics: Sequence[str]) -> dict:
    """One summary per metric, the total `length` of the path, and each metric's
    `barrier`: the maximum along the path minus the mean of the two ends."""
    summary = {m: summarize(profile[m], dl) for m in metrics}
    summary["length"] = float(np.sum(np.asarray(dl, dtype=float)[1:]))
    summary["barrier"] = {m: summary[m]["max"] - 0.5 * (summary[m]["start"] + summary[m]["end"]) for m in metrics}
    return summary
