"""Anokhin & Yarotsky 2020's Arc: S(t) = mu + cos(pi t/2)(S_A - mu) + sin(pi t/2)(S_B - mu).

mu is the per-coordinate mean of both nets' neurons (:meth:`NeuronView.neuron_mean`).
If the neurons of A and B are independent draws of one distribution with mean mu,
every S(t) has that distribution's first two moments (cos^2 + sin^2 = 1), while the
straight line shrinks the spread by up to 1/sqrt(2) at t = 1/2. Written as a mix of
three control points [S_A, S_B, mu] with weights [cos, sin, 1 - cos - sin]; where mu
is the midpoint of A and B (the output bias: no neuron index) the arc is
mid + (cos - sin)(S_A - mid), which stays on the segment between them.
"""
from __future__ import annotations

import math

import torch

from modeconn.paths.base import ControlPointPath
from modeconn.paths.neurons import NeuronView
from modeconn.paths.space import ParameterSpace

CONNECTS = ("linear", "arc")


def connect_coefficients(kind: str, t: float | torch.Tensor) -> tuple[float, float, float]:
    """Weights of (S_A, S_B, mu) at t in [0, 1] for ``kind`` (linear ignores mu).

    cos(pi/2) is 6e-17 in floating point, not 0: values that small are snapped to 0
    so that t = 0 and t = 1 give A and B exactly.
    """
    t = float(t)
    if kind == "linear":
        return 1.0 - t, t, 0.0
    if kind == "arc":
        snap = lambda v: 0.0 if abs(v) < 1e-12 else v  # noqa: E731
        c, s = snap(math.cos(math.pi * t / 2)), snap(math.sin(math.pi * t / 2))
        return c, s, snap(1.0 - c - s)
    raise ValueError(f"unknown connection {kind!r}; choose one of {CONNECTS}")


def connect(kind: str, a: torch.Tensor, b: torch.Tensor, mu: torch.Tensor | None, t: float) -> torch.Tensor:
    """One tensor moved from ``a`` to ``b`` along ``kind`` (mu: Arc's centre)."""
    ca, cb, cm = connect_coefficients(kind, t)
    out = ca * a + cb * b
    return out + cm * mu if cm else out


def neuron_means(view: NeuronView, space: ParameterSpace, w_a: torch.Tensor, w_b: torch.Tensor) -> torch.Tensor:
    """mu for every parameter of the flat vectors ``w_a``, ``w_b``, as one flat vector."""
    a, b = space.unflatten(w_a), space.unflatten(w_b)
    return space.flatten({k: view.neuron_mean(k, a[k], b[k]) for k in space.names})


class ArcPath(ControlPointPath):
    """Arc between two endpoints, every layer at once."""

    def __init__(self, space: ParameterSpace, view: NeuronView, w_a: torch.Tensor, w_b: torch.Tensor,
                 points: int = 61):
        super().__init__(space, [w_a, w_b, neuron_means(view, space, w_a, w_b)], [False] * 3, points=points)

    def coefficients(self, coords: torch.Tensor) -> torch.Tensor:
        return torch.tensor(connect_coefficients("arc", coords.reshape(-1)[0]))
