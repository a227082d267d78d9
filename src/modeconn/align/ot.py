"""Anokhin & Yarotsky 2020's OT alignment: exact optimal transport between neuron sets.

Layer by layer from the input, each group's neurons are vectors of everything
that is already comparable: incoming weights (under the permutations found for
earlier layers), biases and normalisation parameters, and outgoing weights
into fixed channels (the logits). With equal sizes, uniform masses and squared
Euclidean cost the exact transport plan (POT's network simplex) is a
permutation: for a one-hidden-layer net this is the paper's neuron matching.
"""
from __future__ import annotations

from collections.abc import Mapping

import torch

from modeconn.align.groups import PermutationSpec
from modeconn.align.permute import permute_tensor, unit_rows


@torch.no_grad()
def ot_matching(spec: PermutationSpec, state_a: Mapping[str, torch.Tensor],
                state_b: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Permutations of B's units that align B to A (spec.groups must be in forward order, as traced)."""
    device = next(iter(state_b.values())).device
    spec_axes = spec.axes_by_key()
    perms: dict[str, torch.Tensor] = {}
    for group in spec.groups:
        rows_a, rows_b = [], []
        for axis in group.axes:
            if axis.key not in state_a:
                continue
            others = [g.name for g, a in spec_axes[axis.key] if a.dim != axis.dim]
            if any(name not in perms for name in others):  # connects to a layer not matched yet
                continue
            b = permute_tensor(state_b[axis.key], spec_axes[axis.key], perms, skip=axis)
            rows_a.append(unit_rows(state_a[axis.key], axis, group.size))
            rows_b.append(unit_rows(b, axis, group.size))
        if not rows_a:
            raise ValueError(f"group {group.name!r}: no weights connect it to matched layers; "
                             "is the spec in forward order?")
        a = torch.cat(rows_a, 1).double().cpu().numpy()
        b = torch.cat(rows_b, 1).double().cpu().numpy()
        import ot  # POT (and the scikit-learn it loads): ~0.9 s, only for align=ot

        uniform = ot.unif(group.size)
        plan = ot.emd(uniform, uniform, ot.dist(a, b), numItermax=10_000_000)
        perms[group.name] = torch.as_tensor(plan.argmax(1), device=device)
    return perms
