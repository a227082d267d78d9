"""Fort & Jastrzebski 2019's low-loss subspace joining a set of M >= 3 optima.

Vertices: the M optima (fixed), one trainable connector e_ij for every pair of
optima, and one trainable centre c shared by all. Simplexes: the triangles
{m_i, e_ij, c} for every ordered pair i != j. For three optima this subdivides
the triangle m_0 m_1 m_2 into six (the centre and the edge midpoints pushed
off the plane by training), so the surface has the optima as its corners and
curved PolyChain edges m_i -> e_ij -> m_j where the flat triangle has straight
lines; more optima share the centre. Training draws a triangle uniformly, then
a flat Dirichlet point in it, so every simplex of the polytope is pulled to low loss.

`triangle_coords` maps the reference triangle of three optima onto the surface
(piecewise linearly), which gives the subspace and the flat triangle one
barycentric grid to be compared point by point.
"""
from __future__ import annotations

from itertools import combinations

import torch
from torch import Tensor

from modeconn.paths.simplex import SimplicialComplexPath
from modeconn.paths.space import ParameterSpace


class SubspacePath(SimplicialComplexPath):
    def __init__(self, space: ParameterSpace, modes: list[Tensor], noise: float = 0.0,
                 generator: torch.Generator | None = None, **kw):
        count = len(modes)
        if count < 3:
            raise ValueError(f"a subspace joins at least 3 optima (method.modes >= 3), got {count}")
        self.pairs = list(combinations(range(count), 2))
        stacked = torch.stack([m.detach().float() for m in modes])
        edges = [0.5 * (stacked[i] + stacked[j]) for i, j in self.pairs]
        centre = stacked.mean(0)
        connectors = [*edges, centre]
        if noise:
            # Connectors would start exactly on the flat polytope; a small kick lets symmetric ones part.
            scale = noise * float((stacked - centre).norm(dim=1).mean()) / stacked.shape[1] ** 0.5
            connectors = [v + scale * torch.randn(v.shape, generator=generator).to(v) for v in connectors]
        centre_index = count + len(self.pairs)
        simplexes = [[end, count + p, centre_index] for p, pair in enumerate(self.pairs) for end in pair]
        super().__init__(space, [*modes, *connectors], [False] * count + [True] * len(connectors), simplexes,
                         lmbda=0.0, **kw)
        self.modes = count

    def edge(self, i: int, j: int) -> int:
        """The vertex index of the connector between optima i and j."""
        return self.modes + self.pairs.index((min(i, j), max(i, j)))

    @property
    def centre(self) -> int:
        return self.modes + len(self.pairs)

    def triangle_coords(self, triple: tuple[int, int, int], lam: Tensor) -> Tensor:
        """Coordinates over all vertices of the points with barycentric `lam` (n, 3) in the
        reference triangle of optima `triple`: the sub-triangle {m_i, e_ij, c} holding each
        point (i its largest weight, j the second) and the local weights there."""
        lam = lam.to(torch.float64)
        out = torch.zeros(lam.shape[0], self.coord_dim, dtype=torch.float64)
        order = lam.argsort(dim=1, descending=True)
        for row, (p, q, r) in enumerate(order.tolist()):
            li, lj, lk = lam[row, p], lam[row, q], lam[row, r]
            i, j = triple[p], triple[q]
            out[row, i] += li - lj
            out[row, self.edge(i, j)] += 2 * (lj - lk)
            out[row, self.centre] += 3 * lk
        return out.float()


def barycentric_grid(steps: int) -> Tensor:
    """All points (a, b, c) / steps with a + b + c = steps: (steps+1)(steps+2)/2 rows."""
    rows = [(a, b, steps - a - b) for a in range(steps + 1) for b in range(steps + 1 - a)]
    return torch.tensor(rows, dtype=torch.float64) / steps
