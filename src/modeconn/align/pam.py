"""Tatro et al. 2020's PAM: learn the curve and a permutation of endpoint B together.

The quadratic Bezier curve between theta_0 and P theta_1 has its middle bend at
``0.5 theta_0 + 0.5 P theta_1 + phi``. Proximal alternating minimisation:

- permutation step: P relaxed to a doubly stochastic matrix per group; SGD on the
  curve loss plus ``prox/2 ||P - P_start||^2``, each step followed by the Euclidean
  projection onto the Birkhoff polytope (exact, by dual block ascent); at the end of
  the step P is rounded back to the nearest permutation (linear assignment);
- curve step: train phi with P fixed (the Path trainer, as any curve).

After the last round P is a permutation, so the curve ends at a network computing
exactly B's function.
"""
from __future__ import annotations

import torch
from scipy.optimize import linear_sum_assignment
from torch import nn

from modeconn.align.groups import PermutationSpec
from modeconn.align.permute import as_matrix, mix_state
from modeconn.paths.base import Path
from modeconn.paths.space import ParameterSpace


def _simplex_shift(v: torch.Tensor, iters: int = 100) -> torch.Tensor:
    """Per row, the tau with sum_j max(0, v_j - tau) = 1 (Euclidean projection onto the simplex).

    Michelot's fixed point: from tau = (sum v - 1) / n, which is never above the
    answer, recompute tau over the entries still above it; tau only grows and stops
    exactly after a few passes. No sort, so it is cheap for the 512x512 matrices PAM
    projects at every step.
    """
    tau = (v.sum(1, keepdim=True) - 1) / v.shape[1]
    for _ in range(iters):
        above = v > tau
        new = ((v * above).sum(1, keepdim=True) - 1) / above.sum(1, keepdim=True)
        if torch.equal(new, tau):
            break
        tau = new
    return tau


@torch.no_grad()
def project_birkhoff(m: torch.Tensor, iters: int = 100, tol: float = 1e-4,
                     shift: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The nearest doubly stochastic matrix to ``m``, and the column shifts that give it.

    The projection is ``max(0, m - a 1^T - 1 b^T)`` for the dual variables (a, b)
    that make every row and column sum to 1; exact block ascent on the dual
    alternates row and column simplex projections until the rows are within
    ``tol`` (the columns are exact after each sweep). Passing the previous
    step's ``shift`` (b) as a warm start makes one or two sweeps enough.
    """
    b = torch.zeros(1, m.shape[1], dtype=m.dtype, device=m.device) if shift is None else shift
    x = m
    for _ in range(iters):
        a = _simplex_shift(m - b)
        b = _simplex_shift((m - a).T).T
        x = (m - a - b).clamp_min(0)
        if (x.sum(1) - 1).abs().max() < tol:
            break
    return x, b


def nearest_permutation(x: torch.Tensor) -> torch.Tensor:
    """The permutation (index form) with the largest overlap with matrix ``x``."""
    _, cols = linear_sum_assignment(x.detach().cpu().numpy(), maximize=True)
    return torch.as_tensor(cols, device=x.device)


class PamBezierPath(Path):
    """phi(t) = (1-t)^2 theta_0 + 2t(1-t) (0.5 theta_0 + 0.5 P theta_1 + phi) + t^2 P theta_1."""

    def __init__(self, space: ParameterSpace, spec: PermutationSpec, theta0: torch.Tensor, theta1: torch.Tensor,
                 *, prox: float = 1.0, points: int = 61):
        super().__init__(space, points=points)
        self.spec, self.prox = spec, prox
        self.register_buffer("theta0", theta0.detach().float().clone())
        self.register_buffer("theta1", theta1.detach().float().clone())
        self.phi = nn.Parameter(torch.zeros_like(self.theta0))
        self.perm = nn.ParameterList([nn.Parameter(torch.eye(g.size, device=theta0.device)) for g in spec.groups])
        self.anchor = [p.detach().clone() for p in self.perm]  # P at the start of the current permutation step
        self.shifts: list[torch.Tensor | None] = [None] * len(self.perm)  # warm starts of the projection
        self._end: torch.Tensor | None = None
        self.set_phase("curve")

    def matrices(self) -> dict[str, torch.Tensor]:
        return {g.name: p for g, p in zip(self.spec.groups, self.perm)}

    def permutations(self) -> dict[str, torch.Tensor]:
        """The current P of each group as an index permutation (exact after `round_`)."""
        return {name: nearest_permutation(p) for name, p in self.matrices().items()}

    def end(self) -> torch.Tensor:
        """P theta_1; cached while P is not training."""
        if self.perm[0].requires_grad:
            return self._mixed_end()
        if self._end is None:
            with torch.no_grad():
                self._end = self._mixed_end()
        return self._end

    def _mixed_end(self) -> torch.Tensor:
        state = mix_state(self.space.unflatten(self.theta1), self.spec, self.matrices())
        return torch.cat([state[n].reshape(-1) for n in self.space.names])  # differentiable in P

    def vector(self, coords: torch.Tensor) -> torch.Tensor:
        t = coords.reshape(-1)[0].to(self.theta0)
        end = self.end()
        mid = 0.5 * self.theta0 + 0.5 * end + self.phi
        return (1 - t) ** 2 * self.theta0 + 2 * t * (1 - t) * mid + t**2 * end

    def set_phase(self, phase: str) -> None:
        """``curve``: only phi trains; ``permutation``: only P trains (from the current P)."""
        if phase not in ("curve", "permutation"):
            raise ValueError(f"unknown PAM phase {phase!r}")
        self.phi.requires_grad_(phase == "curve")
        for p in self.perm:
            p.requires_grad_(phase == "permutation")
        self.anchor = [p.detach().clone() for p in self.perm]
        self._end = None

    def penalty(self) -> torch.Tensor | float:
        if not self.perm[0].requires_grad:
            return 0.0
        return 0.5 * self.prox * sum(((p - a.to(p)) ** 2).sum() for p, a in zip(self.perm, self.anchor))

    def project_(self) -> None:
        if self.perm[0].requires_grad:
            for i, p in enumerate(self.perm):
                p.data, self.shifts[i] = project_birkhoff(p.data, shift=self.shifts[i])
            self._end = None

    @torch.no_grad()
    def round_(self) -> dict[str, int]:
        """Every P to its nearest permutation; returns how many units of each group are
        away from where they started (P = identity)."""
        moved = {}
        for g, p in zip(self.spec.groups, self.perm):
            hard = nearest_permutation(p)
            moved[g.name] = int((hard != torch.arange(g.size, device=p.device)).sum())
            p.data = as_matrix(hard).to(p)
        self._end = None
        return moved
