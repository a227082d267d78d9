"""Git Re-Basin weight matching (Ainsworth et al. 2023): no data, only the two weight sets.

Maximise sum over layers of <W_A, P W_B> by coordinate descent over the
permutation groups: holding every other group fixed, the best permutation of
one group is a linear assignment on sum over its axes of W_A W_B^T, repeated
until a sweep improves nothing.

Coordinate descent stops at a local optimum, and on deep residual nets the
order of the groups decides which: the first run visits the groups in forward
order (each layer sees its input's matching first), then ``restarts`` runs visit
them in a random order per sweep; the run with the largest objective wins.

Attention heads (a group with ``heads``) are matched as blocks: the value of
putting B's head j in A's slot h is the best within-head matching (of its q/k and
its v dims, under every other group's current permutation); an assignment over
heads picks the heads, each slot its best within-head matchings.
"""
from __future__ import annotations

from collections.abc import Mapping

import torch
from scipy.optimize import linear_sum_assignment

from modeconn.align.groups import Axis, PermutationGroup, PermutationSpec
from modeconn.align.permute import identity, permute_tensor, unit_rows

RESTARTS = 2   # random-order runs after the forward-order one


def weight_similarity(group: PermutationGroup, spec_axes: dict, state_a: Mapping, state_b: Mapping,
                      perms: Mapping[str, torch.Tensor], skip: tuple[str, ...] = (),
                      shift: int = 0) -> torch.Tensor:
    """sum over the group's axes of A_units @ B_units^T, B's other axes under the current permutations
    (except groups named in ``skip``); B's units are read ``shift`` entries further along each axis."""
    sim = None
    for axis in group.axes:
        if axis.key not in state_a:  # e.g. BN running statistics when matching parameters only
            continue
        others = {k: v for k, v in perms.items() if k not in skip}
        b = permute_tensor(state_b[axis.key], spec_axes[axis.key], others, skip=axis)
        moved = Axis(axis.key, axis.dim, axis.offset + shift, axis.block)
        term = unit_rows(state_a[axis.key], axis, group.size).double() @ unit_rows(b, moved, group.size).double().T
        sim = term if sim is None else sim + term
    if sim is None:
        raise ValueError(f"group {group.name!r} has no axis in the weights being matched")
    return sim


def objective(spec: PermutationSpec, state_a: Mapping, state_b: Mapping, perms: Mapping[str, torch.Tensor]) -> float:
    """sum over the spec's tensors of <A, P(B)>: what weight matching maximises."""
    axes = spec.axes_by_key()
    return sum(float((state_a[k].double() * permute_tensor(state_b[k], axes[k], perms).double()).sum())
               for k in axes if k in state_a)


def _assign(sim: torch.Tensor) -> tuple[torch.Tensor, float]:
    rows, cols = linear_sum_assignment(sim.cpu().numpy(), maximize=True)
    return torch.as_tensor(cols), float(sim.cpu().numpy()[rows, cols].sum())


def _step_heads(heads: PermutationGroup, spec: PermutationSpec, spec_axes, state_a, state_b,
                perms: dict) -> bool:
    """Re-match a head group and its within-head groups jointly; True when the objective grew."""
    n, block = heads.size, heads.axes[0].block
    names = (heads.name, *[w for slot in heads.heads for w in slot])
    current, value, best = 0.0, torch.zeros(n, n, dtype=torch.float64), {}
    for h in range(n):
        for j in range(n):
            found = []
            for w in heads.heads[h]:
                group = spec.group(w)
                sim = weight_similarity(group, spec_axes, state_a, state_b, perms, names, (j - h) * block)
                found.append(_assign(sim))
                if j == int(perms[heads.name][h]):
                    current += float(sim[torch.arange(group.size), perms[w].cpu()].sum())
            best[h, j] = found
            value[h, j] = sum(v for _, v in found)
    chosen, total = _assign(value)
    if total <= current + 1e-12 * abs(current):
        return False
    device = perms[heads.name].device
    perms[heads.name] = chosen.to(device)
    for h in range(n):
        for w, (perm, _) in zip(heads.heads[h], best[h, int(chosen[h])]):
            perms[w] = perm.to(device)
    return True


def _descend(spec: PermutationSpec, state_a, state_b, order, max_iter: int, device) -> tuple[dict, int]:
    perms = identity(spec, device)
    spec_axes = spec.axes_by_key()
    for sweep in range(1, max_iter + 1):
        improved = False
        for i in order():
            group = spec.groups[i]
            if group.heads:
                improved |= _step_heads(group, spec, spec_axes, state_a, state_b, perms)
                continue
            sim = weight_similarity(group, spec_axes, state_a, state_b, perms)
            cols, _ = _assign(sim)
            cols = cols.to(device)
            rows = torch.arange(group.size, device=device)
            old, new = sim[rows, perms[group.name]].sum(), sim[rows, cols].sum()
            if new > old + 1e-12 * abs(float(old)):
                perms[group.name] = cols
                improved = True
        if not improved:
            return perms, sweep
    return perms, max_iter


@torch.no_grad()
def weight_matching(spec: PermutationSpec, state_a: Mapping[str, torch.Tensor], state_b: Mapping[str, torch.Tensor],
                    *, max_iter: int = 100, seed: int = 0, restarts: int = RESTARTS) -> tuple[dict[str, torch.Tensor], dict]:
    """Permutations of B's units that align B to A, and a report: sweeps of the winning run, its
    objective, and every run's objective (forward order first)."""
    device = next(iter(state_b.values())).device
    generator = torch.Generator().manual_seed(seed)
    forward = list(range(len(spec.groups)))
    runs = [_descend(spec, state_a, state_b, lambda: forward, max_iter, device)]
    for _ in range(restarts):
        runs.append(_descend(spec, state_a, state_b,
                             lambda: torch.randperm(len(spec.groups), generator=generator).tolist(), max_iter, device))
    values = [objective(spec, state_a, state_b, perms) for perms, _ in runs]
    best = max(range(len(runs)), key=lambda i: values[i])
    perms, sweeps = runs[best]
    return perms, {"sweeps": sweeps, "objective": values[best], "objectives": values}
