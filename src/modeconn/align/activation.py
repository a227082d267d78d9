"""Tatro et al. 2020's activation matching.

Both networks see the same N training inputs (no augmentation); for every
probe (a post-activation feature map of a group; each spatial position or token
is a sample) the cross-correlation of A's and B's features is accumulated in one
streaming pass, in float64 sums. A group's score is the sum of its probes'
correlation matrices (a residual stream sums over all its blocks), and its
permutation the linear assignment that maximises it.

Exact on a permuted copy, also where the data say little:

- units that are (nearly) dead on the data -- a standard deviation below
  ``DEAD`` times the group's largest -- correlate with nothing reliable, so the
  assignment among them is arbitrary; they are matched instead by their weights
  (Git Re-Basin's similarity, under the permutations just found);
- correlations are ties when two units carry proportional features (two units
  that fire on the same single input): a second assignment adds ``TIE`` times the
  cosine similarity of the units' weights, which decides ties without moving any
  clear match. The eps of the correlation is relative to the features' scale.

Attention heads (a group with ``heads``) are matched as blocks: the cost of
putting B's head j in A's slot h is the best within-head matching of their q/k
and v features; an assignment over heads then picks the heads, and each slot
keeps its best within-head matching.
"""
from __future__ import annotations

from collections.abc import Mapping

import torch
from scipy.optimize import linear_sum_assignment
from torch import nn
from torch.func import functional_call

from modeconn.align.groups import PermutationGroup, PermutationSpec, Probe, probe_module
from modeconn.align.weight import weight_similarity

DEAD = 1e-6   # relative standard deviation below which a unit counts as dead on the data
TIE = 1e-6    # weight of the weight-cosine tie-breaker in the second assignment


class _Moments:
    """Running sums for the correlation of two feature sets (features along the last dim)."""

    def __init__(self):
        self.n = 0
        self.sa = self.sb = self.saa = self.sbb = self.sab = 0.0

    def add(self, a: torch.Tensor, b: torch.Tensor) -> None:
        a = a.reshape(-1, a.shape[-1]).double()
        b = b.reshape(-1, b.shape[-1]).double()
        self.n += a.shape[0]
        self.sa, self.sb = self.sa + a.sum(0), self.sb + b.sum(0)
        self.saa, self.sbb = self.saa + (a * a).sum(0), self.sbb + (b * b).sum(0)
        self.sab = self.sab + a.T @ b

    def stds(self) -> tuple[torch.Tensor, torch.Tensor]:
        ma, mb = self.sa / self.n, self.sb / self.n
        return (self.saa / self.n - ma * ma).clamp_min(0).sqrt(), (self.sbb / self.n - mb * mb).clamp_min(0).sqrt()

    def correlation(self, rel_eps: float = 1e-12) -> torch.Tensor:
        ma, mb = self.sa / self.n, self.sb / self.n
        sa, sb = self.stds()
        eps = rel_eps * float(sa.max()) * float(sb.max()) + 1e-300
        return (self.sab / self.n - torch.outer(ma, mb)) / (torch.outer(sa, sb) + eps)


def _features(out, dim: int) -> torch.Tensor:
    out = out[0] if isinstance(out, (tuple, list)) else out
    return out.movedim(dim, -1)


def _moments(model: nn.Module, spec: PermutationSpec, state_a, state_b, x: torch.Tensor,
             batch_size: int) -> dict[tuple[str, int], _Moments]:
    """Correlation sums per probed tensor (all its features), keyed by (name, dim)."""
    wanted = {(p.name, p.dim) for g in spec.groups for p in g.probe_list()}
    moments: dict[tuple[str, int], _Moments] = {}
    if spec.probes_on == "modules":
        net, hooks, seen = model, [], {}
        for name in {n for n, _ in wanted}:
            hooks.append(model.get_submodule(name).register_forward_hook(
                lambda _m, _i, out, name=name: seen.__setitem__(name, out)))
        run = lambda state, chunk: (functional_call(net, state, (chunk,)), dict(seen))[1]  # noqa: E731
    else:
        net, hooks = probe_module(model, spec), []
        run = lambda state, chunk: functional_call(net, state, (chunk,))  # noqa: E731
    was_training = model.training
    net.eval()
    names = set(net.state_dict())
    state_a = {k: v for k, v in state_a.items() if k in names}
    state_b = {k: v for k, v in state_b.items() if k in names}
    try:
        for chunk in x.split(batch_size):
            fa, fb = run(state_a, chunk), run(state_b, chunk)
            for name, dim in wanted:
                moments.setdefault((name, dim), _Moments()).add(_features(fa[name], dim), _features(fb[name], dim))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return moments


def _block(moments, group: PermutationGroup, shift: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The group's correlation (A's units x B's units shifted by ``shift`` entries) and A's stds."""
    corr, stds = 0.0, []
    for p in group.probe_list():
        m = moments[(p.name, p.dim)]
        rows, cols = slice(p.offset, p.offset + group.size), slice(p.offset + shift, p.offset + shift + group.size)
        corr = corr + m.correlation()[rows, cols]
        stds.append(m.stds()[0][rows] / m.stds()[0].max().clamp_min(1e-300))
    return corr, torch.stack(stds).amax(0)


def _assign(score: torch.Tensor) -> tuple[torch.Tensor, float]:
    rows, cols = linear_sum_assignment(score.cpu().numpy(), maximize=True)
    return torch.as_tensor(cols), float(score.cpu().numpy()[rows, cols].sum())


def _cosine(group, spec_axes, state_a, state_b, perms) -> torch.Tensor:
    sim = weight_similarity(group, spec_axes, state_a, state_b, perms)
    na = weight_similarity(group, spec_axes, state_a, state_a, {}).diagonal().clamp_min(1e-300).sqrt()
    nb = weight_similarity(group, spec_axes, state_b, state_b, {}).diagonal().clamp_min(1e-300).sqrt()
    return sim / torch.outer(na, nb)


@torch.no_grad()
def activation_matching(model: nn.Module, spec: PermutationSpec, state_a: Mapping[str, torch.Tensor],
                        state_b: Mapping[str, torch.Tensor], x: torch.Tensor, *,
                        batch_size: int = 500) -> dict[str, torch.Tensor]:
    """Permutations of B's units that align B to A, from their features on inputs ``x``.

    ``state_a``/``state_b`` are full state dicts (BN running statistics included):
    the networks run in eval mode.
    """
    moments = _moments(model, spec, state_a, state_b, x, batch_size)
    device = x.device
    within = {name for g in spec.groups for slot in g.heads for name in slot}
    plain = [g for g in spec.groups if not g.heads and g.name not in within]
    perms: dict[str, torch.Tensor] = {}
    dead: dict[str, torch.Tensor] = {}
    for group in plain:
        corr, stds = _block(moments, group)
        perms[group.name], _ = _assign(corr)
        dead[group.name] = stds <= DEAD
    for group in spec.groups:
        if group.heads:
            perms.update(_match_heads(group, spec, moments))
    spec_axes = spec.axes_by_key()
    params = {k: v for k, v in state_a.items()}
    for group in plain:   # ties broken by weights; dead units matched by weights alone
        corr, _ = _block(moments, group)
        cosine = _cosine(group, spec_axes, params, state_b, perms).to(corr)
        perms[group.name], _ = _assign(corr + TIE * cosine)
        rows = dead[group.name].nonzero().squeeze(1)
        if len(rows) > 1:
            cols = perms[group.name][rows]
            sim = weight_similarity(group, spec_axes, params, state_b, perms)[rows][:, cols]
            best, _ = _assign(sim)
            perms[group.name][rows] = cols[best]
    return {k: v.to(device) for k, v in perms.items()}


def _match_heads(heads: PermutationGroup, spec: PermutationSpec, moments) -> dict[str, torch.Tensor]:
    """Heads as blocks: slot h <- B's head j at the cost of their best within-head matchings."""
    n, block = heads.size, heads.axes[0].block
    best: dict[tuple[int, int], list[tuple[torch.Tensor, float]]] = {}
    cost = torch.zeros(n, n, dtype=torch.float64)
    for h in range(n):
        for j in range(n):
            found = [_assign(_block(moments, spec.group(w), (j - h) * block)[0]) for w in heads.heads[h]]
            best[h, j] = found
            cost[h, j] = sum(value for _, value in found)
    chosen, _ = _assign(cost)
    out = {heads.name: chosen}
    for h in range(n):
        for w, (perm, _) in zip(heads.heads[h], best[h, int(chosen[h])]):
            out[w] = perm
    return out
