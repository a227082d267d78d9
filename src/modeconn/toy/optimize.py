"""Optimisation on the wedge landscape, batched over independent runs (rows).

`descend` is SGD with the minibatch noise modelled as Gaussian gradient noise of
scale `noise` and an L2 term; `train_in_cut` restricts it to random affine
subspaces; `connect` trains a PolyChain between two optima with Garipov's
objective (the loss at t ~ U(0, 1)), reusing the suite's own Path classes.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from modeconn.paths import ParameterSpace, PolyChainPath
from modeconn.toy.landscape import WedgeLandscape


def random_directions(count: int, dim: int, generator: torch.Generator) -> Tensor:
    """`count` points uniform on the unit sphere of R^dim."""
    x = torch.randn(count, dim, generator=generator, dtype=torch.float64)
    return x / x.norm(dim=1, keepdim=True)


def descend(landscape: WedgeLandscape, start: Tensor, *, lr: float, steps: int, l2: float = 0.0,
            noise: float = 0.0, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Run SGD from each row of `start`; returns (final points, radius after every step (steps, runs))."""
    w = start.clone().double()
    radii = torch.empty(steps, w.shape[0], dtype=torch.float64)
    for step in range(steps):
        w.requires_grad_(True)
        grad, = torch.autograd.grad(landscape.loss(w).sum(), w)
        with torch.no_grad():
            kick = noise * torch.randn(w.shape, generator=generator, dtype=w.dtype) if noise else 0.0
            w = w - lr * (grad + l2 * w + kick)
        radii[step] = w.norm(dim=1)
    return w.detach(), radii


def random_cuts(count: int, dim: int, cut_dim: int, radius: float,
                generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """`count` random affine subspaces of dimension `cut_dim`: anchors at `radius` (count, D) and
    orthonormal bases (count, D, cut_dim)."""
    anchors = radius * random_directions(count, dim, generator)
    bases = torch.linalg.qr(torch.randn(count, dim, cut_dim, generator=generator, dtype=torch.float64)).Q
    return anchors, bases


def relative_distance(landscape: WedgeLandscape, w: Tensor) -> Tensor:
    """Distance to the nearest wedge over the radius: the scale-free measure of "low loss".

    Why: a ReLU net's predictions depend only on its weights' direction, so whether a point
    classifies well is an angular question; judging cuts at every radius by one absolute
    threshold would instead favour the points nearest the origin."""
    return landscape.distances(w).min(-1).values / w.norm(dim=-1).clamp_min(1e-12)


def train_in_cut(landscape: WedgeLandscape, anchors: Tensor, bases: Tensor, *, reach: float = 1.0,
                 steps: int = 300, lr: float = 0.05) -> Tensor:
    """Minimise the loss over w = anchor + r * basis z, ||z|| <= reach, for each cut (Adam on z
    from 0, projected); returns the final `relative_distance`.

    The search stays within `reach` times the anchor's radius r of the anchor: training moves
    weights by an amount comparable to their scale, and an unbounded cut could run off to
    infinity, where every cone looks alike, which would hide the role of the radius."""
    scale = anchors.norm(dim=1, keepdim=True)
    z = torch.zeros(bases.shape[0], bases.shape[2], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([z], lr=lr)

    def points() -> Tensor:
        return anchors + scale * torch.einsum("rdk,rk->rd", bases, z)

    for _ in range(steps):
        opt.zero_grad()
        landscape.loss(points()).sum().backward()
        opt.step()
        with torch.no_grad():
            z.mul_((reach / z.norm(dim=1, keepdim=True).clamp_min(1e-12)).clamp(max=1))
    with torch.no_grad():
        return relative_distance(landscape, points())


def vector_space(dim: int) -> ParameterSpace:
    """The toy's weights as one flat parameter, so the suite's Paths apply to it unchanged."""
    return ParameterSpace(nn.ParameterDict({"w": nn.Parameter(torch.zeros(dim))}))


def connect(landscape: WedgeLandscape, a: Tensor, b: Tensor, *, num_bends: int = 3, steps: int = 600,
            lr: float = 0.05, samples: int = 16, generator: torch.Generator | None = None) -> PolyChainPath:
    """A PolyChain from `a` to `b` whose bends minimise E_t loss(phi(t)) (Garipov's objective)."""
    path = PolyChainPath(vector_space(landscape.dim), a.float(), b.float(), num_bends=num_bends)
    opt = torch.optim.Adam([path.free], lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        t = torch.rand(samples, 1, generator=generator)
        points = torch.stack([path.vector(ti) for ti in t])
        landscape.loss(points).mean().backward()
        opt.step()
    return path
