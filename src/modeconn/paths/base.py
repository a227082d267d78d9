"""The Path protocol: every method is a map from coordinates to weights.

A Path holds the anchor weights (trained endpoints) as buffers and the trainable
control points as parameters. Methods differ only in the coordinates they accept,
how training samples them, and how coordinates mix the control points.
"""
from __future__ import annotations

import torch
from torch import nn

from modeconn.paths.space import ParameterSpace


def segment_grid(segments: int, points_per_segment: int) -> torch.Tensor:
    """Evaluation t of a path over [0, segments]: ``points_per_segment`` evenly spaced points per
    segment (both ends included, shared ends once), so every integer t is evaluated exactly."""
    steps = points_per_segment - 1
    t = (torch.arange(segments)[:, None] + torch.arange(steps)[None, :] / steps).reshape(-1)
    return torch.cat([t, torch.tensor([float(segments)])]).unsqueeze(1)


class Path(nn.Module):
    """Base class: subclasses implement `vector(coords)`.

    `coords` is a 1-D tensor of length `coord_dim` (a curve's t is `tensor([t])`).
    """

    coord_dim: int = 1

    def __init__(self, space: ParameterSpace, points: int = 61):
        super().__init__()
        self.space = space
        self.points = points

    def vector(self, coords: torch.Tensor) -> torch.Tensor:
        """The flat weight vector at `coords`."""
        raise NotImplementedError

    def weights(self, coords: torch.Tensor) -> dict[str, torch.Tensor]:
        """The network's named parameters at `coords` (differentiable)."""
        return self.space.unflatten(self.vector(coords))

    def sample_coords(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Training coordinates: t ~ U(0, 1) for curves (Garipov)."""
        return torch.rand(n, self.coord_dim, generator=generator)

    def grid(self) -> torch.Tensor:
        """Evaluation coordinates, shape (points, coord_dim): evenly spaced t."""
        return torch.linspace(0.0, 1.0, self.points).unsqueeze(1)

    @property
    def trainable(self) -> bool:
        return any(p.requires_grad for p in self.parameters())

    def penalty(self) -> torch.Tensor | float:
        """An extra training loss term of the path's own (PAM's proximal pull); none by default."""
        return 0.0

    def project_(self) -> None:
        """Called after every optimiser step to restore constraints (PAM's Birkhoff projection)."""

    @property
    def device(self) -> torch.device:
        for tensor in (*self.buffers(), *self.parameters()):
            return tensor.device
        return torch.device("cpu")


class ControlPointPath(Path):
    """A path whose weights are a coefficient-weighted sum of control points.

    Linear, Bezier, PolyChain and simplexes are all of this form; only
    `coefficients` differs. Fixed points (the endpoints) are buffers, free points
    (bends, new vertices) are parameters; `order` says where each sits.
    """

    def __init__(self, space: ParameterSpace, control: list[torch.Tensor], free: list[bool], **kw):
        super().__init__(space, **kw)
        if len(control) != len(free):
            raise ValueError("one `free` flag per control point")
        fixed_idx = [i for i, f in enumerate(free) if not f]
        free_idx = [i for i, f in enumerate(free) if f]
        self.register_buffer("fixed_index", torch.tensor(fixed_idx, dtype=torch.long), persistent=False)
        self.register_buffer("free_index", torch.tensor(free_idx, dtype=torch.long), persistent=False)
        stack = lambda idx: torch.stack([control[i].detach().float() for i in idx]) if idx else torch.zeros(0, space.dim)
        self.register_buffer("fixed", stack(fixed_idx))
        self.free = nn.Parameter(stack(free_idx).clone(), requires_grad=bool(free_idx))

    @property
    def num_points(self) -> int:
        return self.fixed.shape[0] + self.free.shape[0]

    def coefficients(self, coords: torch.Tensor) -> torch.Tensor:
        """Mixing weights of the control points at `coords`, shape (num_points,)."""
        raise NotImplementedError

    def control_points(self) -> torch.Tensor:
        """All control points in order, shape (num_points, dim)."""
        out = self.fixed.new_empty(self.num_points, self.space.dim)
        out[self.fixed_index] = self.fixed
        out[self.free_index] = self.free.detach()
        return out

    def vector(self, coords: torch.Tensor) -> torch.Tensor:
        c = self.coefficients(coords).to(self.fixed)
        # Two products instead of stacking all points: no K x D copy per step.
        v = c[self.fixed_index] @ self.fixed
        if self.free.shape[0]:
            v = v + c[self.free_index] @ self.free
        return v
