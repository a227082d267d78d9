"""Applying permutations (hard, or relaxed to doubly stochastic matrices for PAM) to weights.

Convention: ``perms[group][i] = j`` means unit ``i`` of the aligned network is unit
``j`` of the original, so ``aligned = original.index_select(dim, perm)`` along
every axis of the group. A matrix ``P`` generalises this: aligned unit ``i`` is
``sum_j P[i, j]`` times original unit ``j`` (a permutation's matrix has
``P[i, perm[i]] = 1``).
"""
from __future__ import annotations

from collections.abc import Mapping

import torch

from modeconn.align.groups import Axis, PermutationSpec
from modeconn.paths.space import ParameterSpace


def identity(spec: PermutationSpec, device=None) -> dict[str, torch.Tensor]:
    return {g.name: torch.arange(g.size, device=device) for g in spec.groups}


def random_permutations(spec: PermutationSpec, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    return {g.name: torch.randperm(g.size, generator=generator) for g in spec.groups}


def inverse(perms: Mapping[str, torch.Tensor], spec: PermutationSpec | None = None) -> dict[str, torch.Tensor]:
    """The permutations that undo ``perms``. With nested groups (attention heads and the dims
    inside each head slot, see ``spec``) slot t's within-head permutation of the inverse undoes
    the one of the slot its head came from."""
    out = {name: torch.argsort(p) for name, p in perms.items()}
    for group in spec.groups if spec is not None else []:
        if group.heads and group.name in perms:
            back = out[group.name]
            for t, slot in enumerate(group.heads):
                for k, name in enumerate(slot):
                    out[name] = torch.argsort(perms[group.heads[int(back[t])][k]])
    return out


def as_matrix(perm: torch.Tensor, dtype=torch.float32) -> torch.Tensor:
    """The 0/1 matrix of a permutation under this module's convention."""
    m = torch.zeros(len(perm), len(perm), dtype=dtype, device=perm.device)
    m[torch.arange(len(perm), device=perm.device), perm] = 1
    return m


def _index(size: int, axes: list[tuple[Axis, torch.Tensor]], device) -> torch.Tensor:
    """The composed gather index of several axes along one dim. Axes may nest (attention heads as
    blocks, and the dims inside each head slot): coarser blocks apply first, so a within-head
    permutation of slot h acts on whichever head the head permutation put in slot h."""
    idx = torch.arange(size, device=device)
    for axis, perm in sorted(axes, key=lambda entry: -entry[0].block):
        perm = perm.to(device)
        within = torch.arange(axis.block, device=device)
        span = len(perm) * axis.block
        step = torch.arange(size, device=device)
        step[axis.offset:axis.offset + span] = axis.offset + (perm[:, None] * axis.block + within).reshape(-1)
        idx = idx[step]
    return idx


def permute_tensor(tensor: torch.Tensor, spec_axes: list, perms: Mapping[str, torch.Tensor],
                   skip: Axis | None = None) -> torch.Tensor:
    """``tensor`` with every axis of ``spec_axes`` whose group is in ``perms`` permuted, except ``skip``."""
    by_dim: dict[int, list] = {}
    for group, axis in spec_axes:
        if axis != skip and group.name in perms:
            by_dim.setdefault(axis.dim, []).append((axis, perms[group.name]))
    for dim, axes in by_dim.items():
        tensor = tensor.index_select(dim, _index(tensor.shape[dim], axes, tensor.device))
    return tensor


def permute_state(state: Mapping[str, torch.Tensor], spec: PermutationSpec,
                  perms: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A new state dict (parameters and buffers) with the permutations applied; entries the
    spec does not touch are shared, not copied."""
    axes = spec.axes_by_key()
    return {k: permute_tensor(v, axes[k], perms) if k in axes else v for k, v in state.items()}


def permute_vector(space: ParameterSpace, vector: torch.Tensor, spec: PermutationSpec,
                   perms: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """A flat parameter vector with the permutations applied."""
    return space.flatten(permute_state(space.unflatten(vector), spec, perms))


def unit_rows(tensor: torch.Tensor, axis: Axis, size: int) -> torch.Tensor:
    """The ``size`` units of ``axis`` as rows of a matrix (each unit's block and other dims flattened)."""
    part = tensor.narrow(axis.dim, axis.offset, size * axis.block).movedim(axis.dim, 0)
    return part.reshape(size, -1)


def _mix(tensor: torch.Tensor, axis: Axis, matrix: torch.Tensor) -> torch.Tensor:
    """Along ``axis``: replace units by ``matrix @ units`` (differentiable in both)."""
    n = matrix.shape[0]
    span = n * axis.block
    before, part, after = tensor.split([axis.offset, span, tensor.shape[axis.dim] - axis.offset - span], axis.dim)
    moved = part.movedim(axis.dim, 0)
    rest = moved.shape[1:]
    mixed = (matrix @ moved.reshape(n, axis.block, -1).reshape(n, -1)).reshape(n * axis.block, *rest)
    return torch.cat([before, mixed.movedim(0, axis.dim), after], axis.dim)


def mix_state(state: Mapping[str, torch.Tensor], spec: PermutationSpec,
              matrices: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``permute_state`` for matrices: with permutation matrices (``as_matrix``) it equals
    ``permute_state``; with doubly stochastic ones it is PAM's relaxation."""
    axes = spec.axes_by_key()
    out = dict(state)
    for key, entries in axes.items():
        if key not in out:
            continue
        t = out[key]
        for group, axis in sorted(entries, key=lambda entry: -entry[1].block):  # coarser blocks first
            if group.name in matrices:
                t = _mix(t, axis, matrices[group.name].to(t))
        out[key] = t
    return out
