"""A random affine cut of weight space (Fort & Jastrzebski 2019, after Li et al. 2018's intrinsic
dimension): the network's weights are w = anchor + E z with z in R^d trainable and E a fixed
random D x d projection. The cut is a Path with a single point, so the suite's Path trainer
trains z as it trains curve bends, and the protocol evaluates the result.

E is a very sparse random projection (Li, Hastie & Church 2006): about sqrt(D) entries of +-1
per column, columns scaled to unit norm, so a step in z moves the weights by the same length
and E costs O(d sqrt(D)) memory where a dense one would need D x d (billions of entries for a
convnet at d = 1000).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from modeconn.paths.base import Path
from modeconn.paths.space import ParameterSpace


def sparse_projection(rows: int, cols: int, seed: int,
                      density: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """A (rows, cols) matrix of +-1 entries at `density` (default 1/sqrt(rows)), every column
    scaled to unit Euclidean norm, as two (cols, k) tensors: the row index and the value of
    each column's k non-zeros. A row drawn twice in one column stays two entries (they add
    up in the product; the norm counts them as one)."""
    density = density or 1.0 / math.sqrt(rows)
    g = torch.Generator().manual_seed(seed)
    per_col = max(1, round(density * rows))
    r = torch.randint(rows, (cols, per_col), generator=g)
    values = torch.randint(0, 2, (cols, per_col), generator=g).float() * 2 - 1
    c = torch.arange(cols).unsqueeze(1).expand(cols, per_col)
    key = (r * cols + c).reshape(-1)                               # repeated (row, col) add up
    unique, inverse = key.unique(return_inverse=True)
    merged = torch.zeros(unique.numel()).index_add_(0, inverse, values.reshape(-1))
    norms = torch.zeros(cols).index_add_(0, unique % cols, merged.pow(2)).sqrt().clamp_min(1e-12)
    return r, values / norms.unsqueeze(1)


class RandomCut(Path):
    """The point anchor + E z of a d-dimensional random affine subspace through `anchor`."""

    coord_dim = 1

    def __init__(self, space: ParameterSpace, anchor: torch.Tensor, dim: int, seed: int = 0,
                 density: float | None = None):
        super().__init__(space, points=1)
        if dim < 1:
            raise ValueError(f"a cut needs dimension >= 1, got {dim}")
        self.dim = int(dim)
        self.register_buffer("anchor", anchor.detach().float().clone())
        # Rebuilt from the seed rather than checkpointed: it is large and fully determined.
        rows, values = sparse_projection(anchor.numel(), dim, seed, density)
        self.register_buffer("rows", rows.reshape(-1), persistent=False)
        self.register_buffer("values", values, persistent=False)
        self.z = nn.Parameter(torch.zeros(dim))

    def vector(self, coords: torch.Tensor | None = None) -> torch.Tensor:
        # E z as a scatter of each column's non-zeros scaled by its z: O(nnz) each way, and the
        # backward to z is a per-column sum, not a scatter (benchmarks/cut_step.py).
        return self.anchor.index_add(0, self.rows, (self.values * self.z.unsqueeze(1)).reshape(-1))

    def dense_projection(self) -> torch.Tensor:
        """E as a dense (D, d) matrix: for checks on small spaces."""
        cols = torch.arange(self.dim, device=self.rows.device).repeat_interleave(self.values.shape[1])
        return torch.zeros(self.anchor.numel(), self.dim, device=self.rows.device).index_put_(
            (self.rows, cols), self.values.reshape(-1), accumulate=True)

    def sample_coords(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.zeros(n, 1)

    def grid(self) -> torch.Tensor:
        return torch.zeros(1, 1)
