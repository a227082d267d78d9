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
                      density: float | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The non-zeros (row, col, value) of a (rows, cols) matrix of +-1 entries at `density`
    (default 1/sqrt(rows)), every column scaled to unit Euclidean norm (and never empty)."""
    density = density or 1.0 / math.sqrt(rows)
    g = torch.Generator().manual_seed(seed)
    per_col = max(1, round(density * rows))
    r = torch.randint(rows, (cols * per_col,), generator=g)
    c = torch.arange(cols).repeat_interleave(per_col)
    values = torch.randint(0, 2, (cols * per_col,), generator=g).float() * 2 - 1
    key = r * cols + c                                                           # merge repeated (row, col)
    unique, inverse = key.unique(return_inverse=True)
    merged = torch.zeros(unique.numel()).index_add_(0, inverse, values)
    r, c = unique // cols, unique % cols
    norms = torch.zeros(cols).index_add_(0, c, merged.pow(2)).sqrt().clamp_min(1e-12)
    return r, c, merged / norms[c]


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
        rows, cols, values = sparse_projection(anchor.numel(), dim, seed, density)
        for name, tensor in (("rows", rows), ("cols", cols), ("values", values)):
            self.register_buffer(name, tensor, persistent=False)
        self.z = nn.Parameter(torch.zeros(dim))

    def vector(self, coords: torch.Tensor | None = None) -> torch.Tensor:
        # E z as a scatter of the non-zeros: O(nnz) each way; torch.sparse.mm costs 4.5x more on CPU
        # (benchmarks/cut_step.py).
        return self.anchor.index_add(0, self.rows, self.values * self.z[self.cols])

    def sample_coords(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.zeros(n, 1)

    def grid(self) -> torch.Tensor:
        return torch.zeros(1, 1)
