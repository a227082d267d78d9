"""Fort & Jastrzebski 2019's phenomenological landscape: a union of wedges in R^D.

Wedge i has an n-dimensional "long" subspace (orthonormal basis U_i) and D - n
"short" directions. For a point w let a = ||U_i^T w|| be its radius along the
wedge and b = ||w - U_i U_i^T w|| its distance from the long subspace. The wedge
is the set {a >= r0, b <= slope * (a - r0)}: closed at radius r0 (networks near
the origin are bad), its short directions opening linearly with radius. The
surrogate loss is the Euclidean distance to the nearest wedge, raised to `power`.

Because the wedge is defined by the two norms (a, b) alone, the distance from w
to it is the planar distance from (a, b) to the 2-D region {a' >= r0, 0 <= b' <=
slope (a' - r0)} (the nearest point keeps w's directions in both subspaces), so
loss and gradients are exact and cheap in any dimension.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class WedgeSpec:
    dim: int = 100          # D: the dimension of the space
    long_dim: int = 60      # n: long directions of each wedge
    wedges: int = 6         # how many wedges
    slope: float = 0.4      # short-direction width per unit of radius beyond r0
    r0: float = 1.0         # radius where a wedge begins (zero width there)
    power: float = 2.0      # loss = distance ** power
    seed: int = 0

    def __post_init__(self):
        if not 0 < self.long_dim < self.dim:
            raise ValueError(f"long_dim must lie in 1..dim-1 (got {self.long_dim}, dim {self.dim})")
        if self.wedges < 1 or self.slope <= 0 or self.r0 < 0 or self.power <= 0:
            raise ValueError(f"need wedges >= 1, slope > 0, r0 >= 0, power > 0: {self}")


class WedgeLandscape:
    """The loss over R^D of a union of random wedges (`WedgeSpec`), batched over points."""

    def __init__(self, spec: WedgeSpec):
        self.spec = spec
        g = torch.Generator().manual_seed(spec.seed)
        gauss = torch.randn(spec.wedges, spec.dim, spec.long_dim, generator=g, dtype=torch.float64)
        self.bases = torch.linalg.qr(gauss).Q                       # (W, D, n), orthonormal columns

    @property
    def dim(self) -> int:
        return self.spec.dim

    def width(self, radius: Tensor | float) -> Tensor:
        """How far a wedge reaches into its short directions at radius `radius` along it."""
        radius = torch.as_tensor(radius, dtype=torch.float64)
        return self.spec.slope * (radius - self.spec.r0).clamp_min(0)

    def coordinates(self, w: Tensor) -> tuple[Tensor, Tensor]:
        """(a, b) of points `w` (..., D) for every wedge: shapes (..., W)."""
        w = w.double()
        along = torch.einsum("...d,wdn->...wn", w, self.bases)
        a = along.norm(dim=-1)
        b2 = w.pow(2).sum(-1, keepdim=True) - along.pow(2).sum(-1)
        return a, b2.clamp_min(1e-30).sqrt()          # clamped: finite gradients on the subspace

    def distances(self, w: Tensor) -> Tensor:
        """Euclidean distance of each point to each wedge, (..., W)."""
        s, r0 = self.spec.slope, self.spec.r0
        a, b = self.coordinates(w)
        x = a - r0
        norm = math.sqrt(1 + s * s)
        to_edge = (b - s * x) / norm                                  # the ray b = s (a - r0), a >= r0
        to_apex = (x.pow(2) + b.pow(2)).clamp_min(1e-30).sqrt()
        outside = to_edge.where((x + s * b) > 0, to_apex)
        inside = (x >= 0) & (b <= s * x)
        return outside.clamp_min(0).where(~inside, torch.zeros_like(outside))

    def loss(self, w: Tensor) -> Tensor:
        """min over wedges of distance ** power, shape (...)."""
        return self.distances(w).min(-1).values.pow(self.spec.power)

    def nearest(self, w: Tensor) -> Tensor:
        """Index of the nearest wedge of each point (the wedge an optimum lies in)."""
        return self.distances(w).argmin(-1)

    def point_in(self, wedge: int, radius: float, depth: float = 0.5,
                 generator: torch.Generator | None = None) -> Tensor:
        """A random point of `wedge` at radius `radius` along it, `depth` of the way out to its width."""
        basis = self.bases[wedge]
        long = basis @ torch.randn(self.spec.long_dim, generator=generator, dtype=torch.float64)
        short = torch.randn(self.dim, generator=generator, dtype=torch.float64)
        short = short - basis @ (basis.T @ short)
        return radius * long / long.norm() + depth * float(self.width(radius)) * short / short.norm()
