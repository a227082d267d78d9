"""Garipov et al. 2018's curves: Bezier and PolyChain through K control points (bends).

theta_0 = w_A and theta_{K-1} = w_B are fixed; the interior bends are trainable
and start evenly spaced on the segment between the endpoints (init_linear).
"""
from __future__ import annotations

import math

import torch

from modeconn.paths.base import ControlPointPath
from modeconn.paths.space import ParameterSpace


def segment_bends(w_a: torch.Tensor, w_b: torch.Tensor, num_bends: int) -> list[torch.Tensor]:
    """K points evenly spaced on the segment from w_A to w_B (the endpoints included)."""
    if num_bends < 3:
        raise ValueError(f"a curve needs num_bends >= 3 (got {num_bends}): the endpoints and one bend")
    return [w_a + (w_b - w_a) * (k / (num_bends - 1)) if 0 < k < num_bends - 1 else (w_a, w_b)[k > 0]
            for k in range(num_bends)]


class CurvePath(ControlPointPath):
    def __init__(self, space: ParameterSpace, w_a: torch.Tensor, w_b: torch.Tensor, num_bends: int = 3,
                 points: int = 61):
        bends = segment_bends(w_a, w_b, num_bends)
        free = [0 < k < num_bends - 1 for k in range(num_bends)]
        super().__init__(space, bends, free, points=points)
        self.num_bends = num_bends


class BezierPath(CurvePath):
    """phi(t) = sum_k C(K-1, k) t^k (1-t)^(K-1-k) theta_k."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        n = self.num_bends - 1
        self.register_buffer("binomial", torch.tensor([float(math.comb(n, k)) for k in range(n + 1)]),
                             persistent=False)
        self.register_buffer("powers", torch.arange(n + 1, dtype=torch.float32), persistent=False)

    def coefficients(self, coords: torch.Tensor) -> torch.Tensor:
        t = coords.reshape(-1)[0].to(self.powers)
        n = self.num_bends - 1
        return self.binomial * t ** self.powers * (1 - t) ** (n - self.powers)


def hat_coefficients(s: torch.Tensor, count: int) -> torch.Tensor:
    """Piecewise-linear weights of ``count`` knots at 0, 1, ..., count - 1 at position ``s``:
    max(0, 1 - |s - k|); exactly one knot has weight 1 at an integer ``s``."""
    k = torch.arange(count, dtype=s.dtype, device=s.device)
    return torch.clamp(1 - torch.abs(s - k), min=0)


class PolyChainPath(CurvePath):
    """Piecewise linear through the bends: hat coefficients max(0, 1 - |t(K-1) - k|)."""

    def coefficients(self, coords: torch.Tensor) -> torch.Tensor:
        t = coords.reshape(-1)[0].to(self.fixed)
        return hat_coefficients(t * (self.num_bends - 1), self.num_bends)
