"""Git Re-Basin weight matching (Ainsworth et al. 2023): no data, only the two weight sets.

Maximise sum over layers of <W_A, P W_B> by coordinate descent over the
permutation groups: holding every other group fixed, the best permutation of
one group is a linear assignment on sum over its axes of W_A W_B^T. Groups are
visited in a random order each sweep until a sweep improves nothing.
"""
from __future__ import annotations

from collections.abc import Mapping

import torch
from scipy.optimize import linear_sum_assignment

from modeconn.align.groups import PermutationGroup, PermutationSpec
from modeconn.align.permute import identity, permute_tensor, unit_rows


def weight_similarity(group: PermutationGroup, spec_axes: dict, state_a: Mapping, state_b: Mapping,
                perms: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """sum over the group's axes of A_units @ B_units^T, B's other axes under the current permutations."""
    sim = None
    for axis in group.axes:
        if axis.key not in state_a:  # e.g. BN running statistics when matching parameters only
            continue
        b = permute_tensor(state_b[axis.key], spec_axes[axis.key], perms, skip=axis)
        term = unit_rows(state_a[axis.key], axis, group.size).double() @ unit_rows(b, axis, group.size).double().T
        sim = term if sim is None else sim + term
    if sim is None:
        raise ValueError(f"group {group.name!r} has no axis in the weights being matched")
    return sim


@torch.no_grad()
def weight_matching(spec: PermutationSpec, state_a: Mapping[str, torch.Tensor], state_b: Mapping[str, torch.Tensor],
                    *, max_iter: int = 100, seed: int = 0) -> tuple[dict[str, torch.Tensor], int]:
    """Permutations of B's units that align B to A, and the number of sweeps it took."""
    device = next(iter(state_b.values())).device
    perms = identity(spec, device)
    spec_axes = spec.axes_by_key()
    generator = torch.Generator().manual_seed(seed)
    for sweep in range(1, max_iter + 1):
        improved = False
        for i in torch.randperm(len(spec.groups), generator=generator).tolist():
            group = spec.groups[i]
            sim = weight_similarity(group, spec_axes, state_a, state_b, perms)
            _, cols = linear_sum_assignment(sim.cpu().numpy(), maximize=True)
            cols = torch.as_tensor(cols, device=device)
            rows = torch.arange(group.size, device=device)
            old, new = sim[rows, perms[group.name]].sum(), sim[rows, cols].sum()
            if new > old + 1e-12 * abs(float(old)):
                perms[group.name] = cols
                improved = True
        if not improved:
            return perms, sweep
    return perms, max_iter
