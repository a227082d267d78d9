"""The straight segment between two endpoints: the baseline every paper compares against."""
from __future__ import annotations

import torch

from modeconn.paths.base import ControlPointPath
from modeconn.paths.space import ParameterSpace


class LinearPath(ControlPointPath):
    """w(t) = (1 - t) w_A + t w_B."""

    def __init__(self, space: ParameterSpace, w_a: torch.Tensor, w_b: torch.Tensor, points: int = 61):
        super().__init__(space, [w_a, w_b], [False, False], points=points)

    def coefficients(self, coords: torch.Tensor) -> torch.Tensor:
        t = coords.reshape(-1)[0]
        return torch.stack([1 - t, t])
