"""Benton et al. 2021's simplexes and simplicial complexes of low loss.

A point of a simplex with vertices v_0..v_k is sum_i alpha_i v_i with alpha in
the probability simplex; training draws alpha from a flat Dirichlet. A
simplicial complex is a set of simplexes sharing vertices (Benton's
mode-connecting complexes: {mode_i} + the shared connectors, for every mode);
a single simplex is the complex with one simplex. Coordinates are barycentric
over *all* vertices of the complex, zero outside the simplex they lie in.

SPRO's volume term uses the Cayley-Menger determinant (Benton's
`simplex_helpers.volume_loss`): for n vertices with pairwise squared distances
D, V = |det [[0, 1^T], [1, D]]| / ((n-1)!^2 2^(n-1)), the *squared*
(n-1)-dimensional volume.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from modeconn.paths.base import ControlPointPath
from modeconn.paths.space import ParameterSpace


def squared_volume(points: Tensor, exact: bool = True) -> Tensor:
    """Cayley-Menger squared volume of the simplex spanned by the rows of `points` (float64,
    differentiable). One point has volume 0; coincident points give 0 up to rounding.

    `exact=False` forms the edges' Gram matrix in the points' own precision (float32, within
    1e-4 relative in the tests), as the training penalty does every step (a cheaper matmul);
    records and tests use float64 throughout."""
    n = points.shape[0]
    if n < 2:
        return points.new_zeros((), dtype=torch.float64)
    edges = points[1:] - points[:1]
    if exact:
        edges = edges.double()
    gram = (edges @ edges.T).double()                       # only n x n: no n^2 x D differences
    diag = torch.diagonal(gram)
    inner = diag[:, None] + diag[None, :] - 2 * gram        # |v_i - v_j|^2, i, j >= 1
    dist = torch.zeros(n, n, dtype=torch.float64, device=points.device)
    dist[1:, 1:] = inner
    dist[0, 1:] = diag
    dist[1:, 0] = diag
    dist = dist * (1 - torch.eye(n, dtype=torch.float64, device=points.device))  # exact zero diagonal
    cm = torch.ones(n + 1, n + 1, dtype=torch.float64, device=points.device)
    cm[0, 0] = 0
    cm[1:, 1:] = dist
    norm = math.factorial(n - 1) ** 2 * 2.0 ** (n - 1)
    return torch.abs(torch.linalg.det(cm)) / norm


def simplex_volume(points: Tensor) -> float:
    """The Euclidean (n-1)-volume of the simplex on the rows of `points` (sqrt of Benton's V)."""
    return math.sqrt(max(float(squared_volume(points.detach())), 0.0))


def flat_dirichlet(n: int, k: int, generator: torch.Generator | None = None) -> Tensor:
    """n draws from Dirichlet(1, ..., 1) over k vertices: normalised exponentials, as Benton's Simplex."""
    e = -torch.log(torch.rand(n, k, generator=generator, dtype=torch.float64).clamp_min(1e-300))
    return (e / e.sum(1, keepdim=True)).float()


class SimplicialComplexPath(ControlPointPath):
    """Vertices (fixed buffers or trainable parameters) and the simplexes over them.

    `lmbda` is the effective weight of SPRO's volume term -lmbda * mean_s log(V_s + eps)
    (0 turns it off); `penalty()` hands it to the shared Path trainer.
    """

    def __init__(self, space: ParameterSpace, vertices: list[Tensor], free: list[bool],
                 simplexes: list[list[int]], lmbda: float = 0.0, eps: float = 1e-4, **kw):
        super().__init__(space, vertices, free, **kw)
        n = len(vertices)
        if not simplexes or any(not s for s in simplexes):
            raise ValueError("a complex needs at least one non-empty simplex")
        for s in simplexes:
            if len(set(s)) != len(s) or any(not 0 <= i < n for i in s):
                raise ValueError(f"simplex {s} must name distinct vertices among 0..{n - 1}")
        self.simplexes = [list(map(int, s)) for s in simplexes]
        self.coord_dim = n
        self.lmbda, self.eps = float(lmbda), float(eps)
        # Where each vertex lives, as Python ints: stacking rows keeps the backward pass a cheap
        # copy where fancy indexing would scatter-add.
        self._rows = {i: ("fixed", n) for n, i in enumerate(self.fixed_index.tolist())}
        self._rows.update({i: ("free", n) for n, i in enumerate(self.free_index.tolist())})

    @classmethod
    def grown(cls, space: ParameterSpace, vertices: list[Tensor], simplexes: list[list[int]],
              join: list[int], **kw) -> "SimplicialComplexPath":
        """SPRO's step: every existing vertex fixed, one new trainable vertex at their centroid,
        added to the simplexes numbered in `join` (Benton's `add_vert(to_simplexes)`)."""
        new = len(vertices)
        centroid = torch.stack([v.detach().float() for v in vertices]).mean(0)
        grown = [list(s) + ([new] if i in join else []) for i, s in enumerate(simplexes)]
        return cls(space, [*vertices, centroid], [False] * new + [True], grown, **kw)

    def coefficients(self, coords: Tensor) -> Tensor:
        return coords.reshape(-1)

    def vertex_tensor(self, which: list[int] | None = None) -> Tensor:
        """Vertices `which` (default all) in order, (len, dim), differentiable in the free ones."""
        which = range(self.num_points) if which is None else which
        return torch.stack([getattr(self, self._rows[i][0])[self._rows[i][1]] for i in which])

    def squared_volumes(self, exact: bool = True) -> Tensor:
        """Benton's V for every simplex (differentiable in the free vertices)."""
        return torch.stack([squared_volume(self.vertex_tensor(s), exact=exact) for s in self.simplexes])

    def volumes(self) -> list[float]:
        """The Euclidean volume of every simplex (edge length for two vertices, area for three...)."""
        points = self.control_points()
        return [simplex_volume(points[s]) for s in self.simplexes]

    def penalty(self) -> Tensor | float:
        if self.lmbda == 0.0:
            return 0.0
        return (-self.lmbda * torch.log(self.squared_volumes(exact=False) + self.eps).mean()).float()

    def embed(self, simplex: int, alpha: Tensor) -> Tensor:
        """Barycentric `alpha` (..., len(simplex)) within one simplex as coordinates over all vertices."""
        index = torch.tensor(self.simplexes[simplex], device=alpha.device)
        out = alpha.new_zeros(*alpha.shape[:-1], self.coord_dim)
        return out.index_copy(-1, index, alpha)

    def sample_in(self, simplex: int, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n points drawn from the flat Dirichlet on one simplex, (n, num_points)."""
        return self.embed(simplex, flat_dirichlet(n, len(self.simplexes[simplex]), generator))

    def sample_coords(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """A simplex chosen uniformly for each draw (Benton's `vertex_weights`), then a flat Dirichlet in it."""
        which = torch.randint(len(self.simplexes), (n,), generator=generator)
        return torch.stack([self.sample_in(int(s), 1, generator)[0] for s in which])

    def vertex_coords(self, i: int) -> Tensor:
        return torch.nn.functional.one_hot(torch.tensor(i), self.coord_dim).float()

    def centroid_coords(self, simplex: int) -> Tensor:
        k = len(self.simplexes[simplex])
        return self.embed(simplex, torch.full((k,), 1.0 / k))

    def grid(self) -> Tensor:
        """The vertices, then each simplex's centroid (sampled points come from `sample_in`)."""
        return torch.stack([*(self.vertex_coords(i) for i in range(self.coord_dim)),
                            *(self.centroid_coords(s) for s in range(len(self.simplexes)))])
