"""Permutation alignment of one endpoint to another, before any path (the ``align=`` group).

``permutation_spec`` finds which units may be permuted together (traced from the
model); a matcher picks the permutation of B's units that best matches A's:

- ``activation``: Tatro et al. 2020, correlation of features on training data;
- ``weight``: Git Re-Basin weight matching, no data;
- ``ot``: Anokhin & Yarotsky 2020, exact optimal transport between neurons (POT).
"""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from modeconn.align.groups import Axis, PermutationGroup, PermutationSpec, UnsupportedGraph, permutation_spec
from modeconn.align.permute import permute_state, permute_vector

MATCHERS = ("activation", "weight", "ot")


def match(method: str, model: nn.Module, spec: PermutationSpec, state_a: Mapping[str, torch.Tensor],
          state_b: Mapping[str, torch.Tensor], *, x: torch.Tensor | None = None, samples: int = 10_000,
          batch_size: int = 500, max_iter: int = 100, seed: int = 0) -> tuple[dict[str, torch.Tensor], dict]:
    """The permutations aligning B to A by ``method``, and what the matcher reports about itself.

    ``state_*`` are full state dicts (parameters and buffers); weight-based matchers
    use the parameters only. ``x`` (training inputs) is needed by ``activation``.
    """
    # The matchers are imported on use: scipy's and POT's imports (~1.2 s) are not every
    # process's start-up (a sweep's driver, the CLI's error paths import this package).
    from modeconn.align.activation import activation_matching
    from modeconn.align.ot import ot_matching
    from modeconn.align.weight import weight_matching

    params = {name for name, _ in model.named_parameters()}
    weights_a = {k: v for k, v in state_a.items() if k in params}
    weights_b = {k: v for k, v in state_b.items() if k in params}
    if method == "activation":
        if x is None:
            raise ValueError("activation matching needs training inputs")
        return activation_matching(model, spec, state_a, state_b, x[:samples], batch_size=batch_size), \
            {"samples": min(samples, len(x))}
    if method == "weight":
        return weight_matching(spec, weights_a, weights_b, max_iter=max_iter, seed=seed)
    if method == "ot":
        if any(g.heads for g in spec.groups):
            raise ValueError("align=ot matches neurons layer by layer and does not handle attention heads "
                             "(blocks of units); use align=weight or align=activation")
        return ot_matching(spec, weights_a, weights_b), {}
    raise ValueError(f"unknown alignment {method!r}; choose none or one of {MATCHERS}")


__all__ = ["MATCHERS", "Axis", "PermutationGroup", "PermutationSpec", "UnsupportedGraph", "match",
           "permutation_spec", "permute_state", "permute_vector"]
