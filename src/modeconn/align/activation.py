"""Tatro et al. 2020's activation matching.

Both networks see the same N training inputs (no augmentation); for every
probe (a post-activation feature map of a group; each spatial position is a
sample) the cross-correlation of A's and B's channels is accumulated in one
streaming pass, in float64 sums. A group's score is the sum of its probes'
correlation matrices (a residual stream sums over all its blocks), and its
permutation the linear assignment that maximises it.

Units that never activate on the data (dead ReLUs) correlate with nothing, so
the assignment among them is arbitrary; they are matched instead by their
weights (Git Re-Basin's similarity, under the permutations just found), which
makes the result exact for a permuted copy and closer for real pairs.
"""
from __future__ import annotations

from collections.abc import Mapping

import torch
from scipy.optimize import linear_sum_assignment
from torch import nn
from torch.func import functional_call

from modeconn.align.groups import PermutationSpec, probe_module
from modeconn.align.weight import weight_similarity


class _Moments:
    """Running sums for the correlation of two feature sets."""

    def __init__(self):
        self.n = 0
        self.sa = self.sb = self.saa = self.sbb = self.sab = 0.0

    def add(self, a: torch.Tensor, b: torch.Tensor) -> None:
        a = a.movedim(1, -1).reshape(-1, a.shape[1]).double()
        b = b.movedim(1, -1).reshape(-1, b.shape[1]).double()
        self.n += a.shape[0]
        self.sa, self.sb = self.sa + a.sum(0), self.sb + b.sum(0)
        self.saa, self.sbb = self.saa + (a * a).sum(0), self.sbb + (b * b).sum(0)
        self.sab = self.sab + a.T @ b

    def stds(self) -> tuple[torch.Tensor, torch.Tensor]:
        ma, mb = self.sa / self.n, self.sb / self.n
        return (self.saa / self.n - ma * ma).clamp_min(0).sqrt(), (self.sbb / self.n - mb * mb).clamp_min(0).sqrt()

    def correlation(self, eps: float = 1e-8) -> torch.Tensor:
        ma, mb = self.sa / self.n, self.sb / self.n
        sa, sb = self.stds()
        return (self.sab / self.n - torch.outer(ma, mb)) / (torch.outer(sa, sb) + eps)


@torch.no_grad()
def activation_matching(model: nn.Module, spec: PermutationSpec, state_a: Mapping[str, torch.Tensor],
                        state_b: Mapping[str, torch.Tensor], x: torch.Tensor, *,
                        batch_size: int = 500) -> dict[str, torch.Tensor]:
    """Permutations of B's units that align B to A, from their features on inputs ``x``.

    ``state_a``/``state_b`` are full state dicts (BN running statistics included):
    the networks run in eval mode.
    """
    probes = probe_module(model, spec).eval()
    names = set(probes.state_dict())
    state_a = {k: v for k, v in state_a.items() if k in names}
    state_b = {k: v for k, v in state_b.items() if k in names}
    moments: dict[str, _Moments] = {}
    for chunk in x.split(batch_size):
        fa, fb = functional_call(probes, state_a, (chunk,)), functional_call(probes, state_b, (chunk,))
        for name in fa:
            moments.setdefault(name, _Moments()).add(fa[name], fb[name])
    perms = {}
    for group in spec.groups:
        corr = sum(moments[p].correlation() for p in group.probes)
        _, cols = linear_sum_assignment(corr.cpu().numpy(), maximize=True)
        perms[group.name] = torch.as_tensor(cols, device=x.device)
    spec_axes = spec.axes_by_key()
    for group in spec.groups:
        dead = torch.stack([moments[p].stds()[0] for p in group.probes]).amax(0) <= 1e-12
        if dead.sum() > 1:
            rows = dead.nonzero().squeeze(1).to(x.device)
            cols = perms[group.name][rows]
            sim = weight_similarity(group, spec_axes, state_a, state_b, perms)[rows][:, cols]
            _, best = linear_sum_assignment(sim.cpu().numpy(), maximize=True)
            perms[group.name][rows] = cols[torch.as_tensor(best, device=x.device)]
    return perms
