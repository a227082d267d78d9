"""Kuditipudi et al. 2019: the piecewise-linear path between two dropout-stable nets.

Dropping hidden layer j keeps the units ``masks[j]`` (a fraction ``keep``) and
rescales their outgoing weights by r = 1/keep, silencing the others. theta_i is
the net with hidden layers i.. dropped; a net is eps-dropout stable when every
theta_i is within eps of its loss. The path uses only two moves:

- ``top_layer``: only the output layer changes. The logits are linear in it and
  cross-entropy is convex in the logits, so the loss along the segment never
  exceeds the larger of its ends;
- ``function_preserving``: only incoming weights of units that nothing reads
  (their outgoing weights are zero, or feed only such units) change: the outputs
  do not change at all.

Construction (:func:`dropout_path_vertices`, 4L + 1 segments for L hidden layers):
each net goes to its fully dropped-out version theta_0 by the lemma (drop the top
hidden layer with a top-layer move; then, layer by layer downwards, copy the
layers above into idle units so that they read only the kept units below, and
switch the output layer to the copy), A's kept sub-network and B's sit in
disjoint units, so B's is written into A's idle units, the output layer swaps
from A's to B's, and B's lemma path is walked back. The loss stays below
max(L_A, L_B) + eps, eps the larger dropout-stability gap of the two (over the
theta_i visited).

The two nets' kept sets are drawn disjoint (B keeps only units A drops), which
is what lets B's sub-network fit A's idle units: the lemma's copies alternate
between a net's own kept units and the other net's, so A's and B's layers end on
opposite sets in every layer (with keep = 1/2 every copy lands in the one free half).

The noise-stability variant (:func:`noise_path_vertices`, 5 segments at any depth)
drops every layer of a net in one straight ``all_layers`` segment (the reference
code's interpolation between a net and its dropped-out version); its loss is not
bounded by dropout stability but, by the paper's noise-stability argument, stays
low for noise-stable nets.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch

from modeconn.paths.base import ControlPointPath, segment_grid
from modeconn.paths.curves import hat_coefficients
from modeconn.paths.space import ParameterSpace
from modeconn.paths.units import UnitChain
from modeconn.results import ALL_LAYERS, FUNCTION_PRESERVING, SEGMENT_KINDS, TOP_LAYER  # noqa: F401  (schema names)

Masks = list[torch.Tensor]  # per hidden layer, the sorted indices of the kept units
State = dict[str, torch.Tensor]

VARIANTS = ("dropout", "noise")


def kept_count(size: int, keep: float) -> int:
    """Units kept of ``size`` (as the reference: floor(keep * size)), at least one."""
    return max(1, int(keep * size))


def draw_masks(chain: UnitChain, keep: float, generator: torch.Generator | None = None,
               disjoint: int = 1) -> list[Masks]:
    """``disjoint`` kept sets per hidden layer, drawn uniformly and mutually disjoint."""
    if not 0 < keep <= 1:
        raise ValueError(f"keep must be in (0, 1], got {keep}")
    out: list[Masks] = [[] for _ in range(disjoint)]
    for layer in chain.layers:
        k = kept_count(layer.size, keep)
        if disjoint * k > layer.size:
            raise ValueError(f"keep={keep} keeps {k} of the {layer.size} units of {layer.name}; the path needs "
                             f"{disjoint} kept sets side by side, so keep <= {1 / disjoint:g}")
        order = torch.randperm(layer.size, generator=generator)
        for n in range(disjoint):
            out[n].append(order[n * k:(n + 1) * k].sort().values)
    return out


def _clone(state: Mapping[str, torch.Tensor]) -> State:
    return {k: v.detach().clone() for k, v in state.items()}


def dropped_state(state: Mapping[str, torch.Tensor], chain: UnitChain, masks: Masks, keep: float,
                  start: int = 0) -> State:
    """theta_start: hidden layers ``start``.. dropped in place (every unit keeps its position)."""
    out = _clone(state)
    for j in range(start, chain.depth):
        factors = torch.zeros(chain.layers[j].size)
        factors[masks[j].cpu()] = 1.0 / keep   # applied as a product, as compact() applies r
        chain.scale_outgoing(out, j, factors)
    return out


@dataclass
class Compact:
    """A fully dropped-out net, kept units only (in mask order): per hidden layer its
    incoming weights from the kept units below (rescaled) and biases; then the output layer."""

    layers: list[tuple[torch.Tensor, torch.Tensor | None]]
    top: tuple[torch.Tensor, torch.Tensor | None]


def compact(state: Mapping[str, torch.Tensor], chain: UnitChain, masks: Masks, keep: float) -> Compact:
    r = 1.0 / keep
    layers = []
    for j in range(chain.depth):
        w, b = chain.incoming(state, j, masks[j], masks[j - 1] if j else None)
        layers.append((w * r if j else w, b))
    w, b = chain.top(state, masks[-1])
    return Compact(layers, (w * r, b))


def lemma_vertices(state: Mapping[str, torch.Tensor], chain: UnitChain, own: Masks, partner: Masks,
                   keep: float) -> tuple[list[State], list[str], Masks]:
    """The lemma path from a net to its dropped-out version (2L - 1 segments).

    Copies of a layer alternate between its kept units ``own`` and the ``partner``
    units (idle once the layer above reads the other copy). Returns the vertices,
    the kind of each segment, and where each layer's kept units end up.
    """
    depth = chain.depth
    c = compact(state, chain, own, keep)
    at_own = [True] * depth
    where = lambda j: own[j] if at_own[j] else partner[j]  # noqa: E731
    current = _clone(state)
    chain.set_top(current, own[-1], *c.top)   # drop the top hidden layer
    vertices, kinds = [_clone(state), current], [TOP_LAYER]
    for i in range(depth - 2, -1, -1):        # drop layer i: the layers above move to idle units
        copied = _clone(current)
        for j in range(i + 1, depth):
            at_own[j] = not at_own[j]
            chain.set_incoming(copied, j, where(j), where(j - 1), *c.layers[j])
        switched = _clone(copied)
        chain.set_top(switched, where(depth - 1), *c.top)
        vertices += [copied, switched]
        kinds += [FUNCTION_PRESERVING, TOP_LAYER]
        current = switched
    return vertices, kinds, [where(j) for j in range(depth)]


def joint_state(template: Mapping[str, torch.Tensor], chain: UnitChain, nets: list[tuple[Compact, Masks]],
                reading: int) -> State:
    """Every net of ``nets`` placed at its units (disjoint), all other weights zero; the
    output layer reads net ``reading``."""
    out = {k: torch.zeros_like(v) for k, v in template.items()}
    for c, where in nets:
        for j in range(chain.depth):
            chain.set_incoming(out, j, where[j], where[j - 1] if j else None, *c.layers[j])
    c, where = nets[reading]
    chain.set_top(out, where[-1], *c.top)
    return out


def dropout_path_vertices(state_a: Mapping[str, torch.Tensor], state_b: Mapping[str, torch.Tensor],
                          chain: UnitChain, masks_a: Masks, masks_b: Masks,
                          keep: float) -> tuple[list[State], list[str]]:
    """The 4L + 1 segment path from A to B (``masks_a`` and ``masks_b`` disjoint)."""
    va, ka, where_a = lemma_vertices(state_a, chain, masks_a, masks_b, keep)
    vb, kb, where_b = lemma_vertices(state_b, chain, masks_b, masks_a, keep)
    nets = [(compact(state_a, chain, masks_a, keep), where_a), (compact(state_b, chain, masks_b, keep), where_b)]
    middle = [joint_state(state_a, chain, nets, 0), joint_state(state_a, chain, nets, 1)]
    return va + middle + vb[::-1], ka + [FUNCTION_PRESERVING, TOP_LAYER, FUNCTION_PRESERVING] + kb[::-1]


def noise_path_vertices(state_a: Mapping[str, torch.Tensor], state_b: Mapping[str, torch.Tensor],
                        chain: UnitChain, masks_a: Masks, masks_b: Masks,
                        keep: float) -> tuple[list[State], list[str]]:
    """The 5-segment path: A to its dropped-out version in one step, the swap, back up to B."""
    nets = [(compact(state_a, chain, masks_a, keep), masks_a), (compact(state_b, chain, masks_b, keep), masks_b)]
    vertices = [_clone(state_a), dropped_state(state_a, chain, masks_a, keep),
                joint_state(state_a, chain, nets, 0), joint_state(state_a, chain, nets, 1),
                dropped_state(state_b, chain, masks_b, keep), _clone(state_b)]
    return vertices, [ALL_LAYERS, FUNCTION_PRESERVING, TOP_LAYER, FUNCTION_PRESERVING, ALL_LAYERS]


def construct(variant: str, state_a, state_b, chain: UnitChain, masks_a: Masks, masks_b: Masks,
              keep: float) -> tuple[list[State], list[str]]:
    """The vertices of ``variant``'s path from A to B and the kind of each segment."""
    device = next(iter(state_a.values())).device
    masks_a, masks_b = [m.to(device) for m in masks_a], [m.to(device) for m in masks_b]
    if variant == "dropout":
        return dropout_path_vertices(state_a, state_b, chain, masks_a, masks_b, keep)
    if variant == "noise":
        return noise_path_vertices(state_a, state_b, chain, masks_a, masks_b, keep)
    raise ValueError(f"unknown dropout path variant {variant!r}; choose one of {VARIANTS}")


class PiecewiseLinearPath(ControlPointPath):
    """Straight segments through fixed vertices: vertex k at t = k, t in [0, segments].

    The grid samples every segment at ``points_per_segment`` evenly spaced t, the
    shared ends once, so each vertex is evaluated exactly.
    """

    def __init__(self, space: ParameterSpace, vertices: list[torch.Tensor], points_per_segment: int = 7):
        if len(vertices) < 2 or points_per_segment < 2:
            raise ValueError("a piecewise-linear path needs >= 2 vertices and >= 2 points per segment")
        self.points_per_segment = points_per_segment
        super().__init__(space, vertices, [False] * len(vertices),
                         points=(len(vertices) - 1) * (points_per_segment - 1) + 1)

    @property
    def segments(self) -> int:
        return self.num_points - 1

    def coefficients(self, coords: torch.Tensor) -> torch.Tensor:
        return hat_coefficients(coords.reshape(-1)[0].to(self.fixed), self.num_points)

    def sample_coords(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.rand(n, 1, generator=generator) * self.segments

    def grid(self) -> torch.Tensor:
        return segment_grid(self.segments, self.points_per_segment)
