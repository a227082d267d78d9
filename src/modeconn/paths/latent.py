"""Anokhin & Yarotsky 2020's distribution-based connections through a neuron latent space.

A bijection T maps a layer's neuron vectors (paths/neurons.py, ``partition``: every
weight in exactly one neuron) to latent vectors that are close to standard normal;
two nets are connected by Arc in that space, where Arc's mean is 0 and its
variance preservation is exact, and mapped back:

    S_i(t) = T^-1(cos(pi t/2) T(S_A,i) + sin(pi t/2) T(S_B,i)).

Two choices of T:
* :class:`Gaussianizer` (``method=gauss``) - the cheap sibling: each coordinate through
  the empirical CDF of both nets' neurons and the normal quantile function (monotone,
  piecewise linear between the sorted samples, linear beyond them).
* the global connection model (``method=flow``, training/neuron_flow.py): a normalising
  flow trained once on neurons pooled from many nets of the same (dataset, arch).

T^-1(T(x)) equals x only to rounding, so the residuals (1 - t)(S_A - T^-1 T S_A) +
t(S_B - T^-1 T S_B) are added (of the order of float error) and t = 0, 1 return the
endpoints themselves. The output bias, which belongs to no neuron, moves along Arc
with its centre at the midpoint: the straight segment.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from modeconn.paths.arc import connect, connect_coefficients
from modeconn.paths.base import Path
from modeconn.paths.neurons import NeuronView
from modeconn.paths.space import ParameterSpace


class NeuronBijection(nn.Module):
    """T for one hidden layer's neurons: ``forward`` neurons -> latent, ``inverse`` back (rows)."""

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


def _interpolate(x: torch.Tensor, knots_x: torch.Tensor, knots_y: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear y(x) per column through sorted knots (n, d), linear beyond both ends."""
    n = knots_x.shape[0]
    idx = torch.searchsorted(knots_x.T.contiguous(), x.T.contiguous()).clamp(1, n - 1)   # (d, m)
    x0, x1 = knots_x.T.gather(1, idx - 1), knots_x.T.gather(1, idx)
    y0, y1 = knots_y.T.gather(1, idx - 1), knots_y.T.gather(1, idx)
    slope = (y1 - y0) / (x1 - x0).clamp_min(1e-300)
    return (y0 + slope * (x.T - x0)).T


class Gaussianizer(NeuronBijection):
    """Per-coordinate Gaussianisation fitted on samples (rows): knots at the sorted samples
    and the normal quantiles of their plotting positions (r + 1/2) / n."""

    def __init__(self, samples: torch.Tensor):
        super().__init__()
        n, d = samples.shape
        if n < 2:
            raise ValueError("Gaussianisation needs at least two neurons per coordinate")
        x = samples.detach().double().sort(0).values
        # Tied samples (a coordinate that is constant across neurons) get a tiny spread, so the
        # map stays strictly increasing and invertible.
        spread = torch.arange(n, dtype=x.dtype, device=x.device)[:, None] * 1e-12 * x.abs().amax(0).clamp_min(1.0)
        self.register_buffer("knots_x", torch.cummax(x + spread, 0).values)
        q = (torch.arange(n, dtype=torch.float64, device=x.device) + 0.5) / n
        z = math.sqrt(2.0) * torch.erfinv(2 * q - 1)
        self.register_buffer("knots_z", z[:, None].expand(n, d).contiguous())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _interpolate(x.double(), self.knots_x, self.knots_z).to(x.dtype)

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        return _interpolate(z.double(), self.knots_z, self.knots_x).to(z.dtype)


class LatentArcPath(Path):
    """Arc between A and B in the latent space of one :class:`NeuronBijection` per hidden layer."""

    def __init__(self, space: ParameterSpace, view: NeuronView, state_a: Mapping[str, torch.Tensor],
                 state_b: Mapping[str, torch.Tensor], bijections: Sequence[NeuronBijection], points: int = 61):
        super().__init__(space, points=points)
        if len(bijections) != view.depth:
            raise ValueError(f"one bijection per hidden layer: {view.depth} needed, {len(bijections)} given")
        self.view = view
        self.bijections = nn.ModuleList(bijections)
        self.register_buffer("w_a", space.flatten(state_a))
        self.register_buffer("w_b", space.flatten(state_b))
        with torch.no_grad():
            for j, (rows_a, rows_b) in enumerate(zip(view.partition(state_a), view.partition(state_b))):
                for tag, rows in (("a", rows_a), ("b", rows_b)):
                    z = bijections[j](rows)
                    self.register_buffer(f"z_{tag}{j}", z)
                    self.register_buffer(f"r_{tag}{j}", rows - bijections[j].inverse(z))

    def round_trip_error(self) -> float:
        """The largest |S - T^-1(T(S))| over both endpoints' neurons (what the residuals absorb)."""
        return max(float(getattr(self, f"r_{tag}{j}").abs().max()) for j in range(self.view.depth) for tag in "ab")

    @torch.no_grad()
    def vector(self, coords: torch.Tensor) -> torch.Tensor:
        t = float(coords.reshape(-1)[0])
        if t == 0.0:
            return self.w_a.clone()
        if t == 1.0:
            return self.w_b.clone()
        ca, cb, _ = connect_coefficients("arc", t)
        a, b = self.space.unflatten(self.w_a), self.space.unflatten(self.w_b)
        state = {k: connect("arc", a[k], b[k], (a[k] + b[k]) / 2, t) for k in self.space.names}
        layers = []
        for j, bijection in enumerate(self.bijections):
            z = ca * getattr(self, f"z_a{j}") + cb * getattr(self, f"z_b{j}")
            layers.append(bijection.inverse(z) + (1 - t) * getattr(self, f"r_a{j}") + t * getattr(self, f"r_b{j}"))
        return self.space.flatten(self.view.from_partition(state, layers))
