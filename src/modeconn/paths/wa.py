"""Anokhin & Yarotsky 2020's layer-wise connections: weight adjustment (WA) and B-fly.

A net of K weight layers (L = K - 1 hidden layers, then the output layer) is moved
one layer per segment; t in [0, segments], segment s is t in [s, s + 1] with local
time tau = t - s, its layers below s already B's, its layers above s + 1 still A's.

*Adjusted weights* (computed once on the fitting data): Adj_0 = A's first layer;
for k >= 1, Adj_k is layer k refit by least squares (paths/lstsq.py) to produce
A's pre-activations of layer k while reading B's features of layer k - 1. Adj_k is
"A's layer k, re-expressed for B's units below it".

WA (``method=wa``), K segments, t in [0, K]:
  segment s < K - 1: layer s moves Adj_s -> B_s along Linear or Arc (``connect``);
    layer s + 1 is refit by least squares at every tau so that the net reproduces
    A's pre-activations of layer s + 1 on the fitting data (for s = K - 2: A's
    logits). The refit at tau = 0 reads only approximately A's features (Adj_s
    is a fit), so a correction (1 - tau)(A_{s+1} - Fit_{s+1}(0)) is added, which
    makes segment s start exactly where segment s - 1 ended and vanishes at tau = 1,
    where the refit is Adj_{s+1}; for s = 0 the features are exactly A's and the
    correction is zero up to rounding (the ridge pulls the fit to A's own layer).
  segment K - 1: the output layer moves from Adj_{K-1} (B's features, A's logits)
    to B's along the straight line, whatever ``connect``: both ends read the same
    features and the output units are the fixed classes, so nothing is unmatched for
    Arc to correct, and the line keeps the convexity guarantee (cross-entropy is
    convex in the output layer: the loss along it stays below its larger end).
  One hidden layer (K = 2): the paper's WA, t in [0, 2].

B-fly (``method=bfly``), K - 1 segments, t in [0, K - 1]: segment s moves layer s
Adj_s -> B_s and layer s + 1 A_{s+1} -> Adj_{s+1} at once (Adj_{K-1} := B's output
layer), no refit along the way; consecutive segments share their ends exactly.
For one hidden layer B-fly is the simultaneous Linear/Arc.

Both are constructed, not trained; every segment is recorded (which layer moves,
which is fitted, the least-squares residuals).
"""
from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import nn

from modeconn.paths.arc import CONNECTS, connect
from modeconn.paths.base import Path, segment_grid
from modeconn.paths.lstsq import LayerFit, as_rows, layer_io, module_of, solve_layer
from modeconn.paths.neurons import NeuronView
from modeconn.paths.space import ParameterSpace

State = dict[str, torch.Tensor]
METHODS = ("wa", "bfly")


class LayerFits:
    """The fitting data, A's targets per layer and the adjusted weights Adj_k."""

    def __init__(self, model: nn.Module, view: NeuronView, state_a: Mapping[str, torch.Tensor],
                 state_b: Mapping[str, torch.Tensor], x_fit: torch.Tensor, ridge: float, fit_rows: int,
                 generator: torch.Generator | None = None):
        chain = view.chain
        self.model, self.view, self.x_fit, self.ridge = model, view, x_fit, float(ridge)
        self.layers = [(layer.weight, layer.bias) for layer in chain.layers] + [(chain.top_weight, chain.top_bias)]
        self.modules = [module_of(w) for w, _ in self.layers]
        self.a = {k: v.detach() for k, v in state_a.items()}
        self.b = {k: v.detach() for k, v in state_b.items()}
        io_a = layer_io(model, self.a, x_fit, self.modules)
        io_b = layer_io(model, self.b, x_fit, self.modules)
        self.rows: list[torch.Tensor | None] = []
        self.targets: list[torch.Tensor] = []
        for name in self.modules:
            _, z = as_rows(model.get_submodule(name), *io_a[name])
            rows = None
            if fit_rows and z.shape[0] > fit_rows:
                rows = torch.randperm(z.shape[0], generator=generator)[:fit_rows].sort().values.to(z.device)
                z = z[rows]
            self.rows.append(rows)
            self.targets.append(z)
        self.adjusted: list[tuple[torch.Tensor, torch.Tensor | None]] = [self.layer(self.a, 0)]
        self.adjusted_residuals: list[float | None] = [None]
        for k in range(1, self.depth):
            fit = self.fit(k, self._rows(k, *io_b[self.modules[k]]))
            self.adjusted.append((fit.weight, fit.bias))
            self.adjusted_residuals.append(fit.relative_residual)

    @property
    def depth(self) -> int:
        """K, the number of weight layers."""
        return len(self.layers)

    def layer(self, state: Mapping[str, torch.Tensor], k: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        w, b = self.layers[k]
        return state[w], (state[b] if b else None)

    def set_layer(self, state: State, k: int, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
        w, b = self.layers[k]
        state[w] = weight
        if b:
            state[b] = bias

    def _rows(self, k: int, inputs: torch.Tensor, outputs: torch.Tensor) -> torch.Tensor:
        h, _ = as_rows(self.model.get_submodule(self.modules[k]), inputs, outputs)
        return h if self.rows[k] is None else h[self.rows[k]]

    def features(self, state: Mapping[str, torch.Tensor], k: int) -> torch.Tensor:
        """Rows of the features layer k reads when the net has weights ``state``."""
        name = self.modules[k]
        return self._rows(k, *layer_io(self.model, state, self.x_fit, [name])[name])

    def fit(self, k: int, features: torch.Tensor) -> LayerFit:
        """Layer k refit to A's pre-activations of layer k from ``features`` (ridge towards A's layer k)."""
        return solve_layer(features, self.targets[k], *self.layer(self.a, k), self.ridge)

    def connect_layer(self, kind: str, k: int, start: tuple, end: tuple, tau: float) -> tuple:
        """Layer k's (weight, bias) moved from ``start`` to ``end`` along ``kind`` (Arc's mu: both ends' neurons)."""
        out = []
        for key, a, b in zip(self.layers[k], start, end):
            if key is None:
                out.append(None)
                continue
            mu = self.view.neuron_mean(key, a, b) if kind == "arc" else None
            out.append(connect(kind, a, b, mu, tau))
        return tuple(out)


class LayerwisePath(Path):
    """t in [0, segments]; ``state_at(s, tau)`` gives the weights in segment s at local time tau."""

    def __init__(self, space: ParameterSpace, fits: LayerFits, segments: int, connect_kind: str,
                 points_per_segment: int):
        if connect_kind not in CONNECTS:
            raise ValueError(f"connect must be one of {CONNECTS}, got {connect_kind!r}")
        if points_per_segment < 2:
            raise ValueError("points_per_segment must be >= 2 (both ends of every segment)")
        super().__init__(space, points=segments * (points_per_segment - 1) + 1)
        self.fits, self.segments, self.connect_kind = fits, segments, connect_kind
        self.points_per_segment = points_per_segment
        self.register_buffer("anchor", fits.x_fit.new_zeros(0), persistent=False)  # carries the device

    def locate(self, t: float) -> tuple[int, float]:
        if not 0 <= t <= self.segments:
            raise ValueError(f"t = {t} outside [0, {self.segments}]")
        s = min(int(math.floor(t)), self.segments - 1)
        return s, t - s

    def state_at(self, s: int, tau: float) -> State:
        raise NotImplementedError

    def vector(self, coords: torch.Tensor) -> torch.Tensor:
        return self.space.flatten(self.state_at(*self.locate(float(coords.reshape(-1)[0]))))

    def mixed(self, s: int) -> State:
        """B's layers below s, A's from s on (the untouched layers of segment s)."""
        out = dict(self.fits.a)
        for k in range(s):
            self.fits.set_layer(out, k, *self.fits.layer(self.fits.b, k))
        return out

    def sample_coords(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.rand(n, 1, generator=generator) * self.segments

    def grid(self) -> torch.Tensor:
        return segment_grid(self.segments, self.points_per_segment)


class WAPath(LayerwisePath):
    """Weight adjustment (module docstring): K segments."""

    def __init__(self, space: ParameterSpace, fits: LayerFits, connect_kind: str = "arc", points_per_segment: int = 11):
        super().__init__(space, fits, fits.depth, connect_kind, points_per_segment)
        self.residuals: dict[float, float] = {}     # t -> relative residual of the refit layer
        self.corrections: list[float | None] = []   # per segment: ||A_{s+1} - Fit_{s+1}(0)|| / ||A_{s+1}||
        self._start_fits: list[LayerFit | None] = []
        for s in range(self.segments):
            if s == self.segments - 1:
                self._start_fits.append(None)
                self.corrections.append(None)
                continue
            fit = self._refit(s, 0.0)
            self._start_fits.append(fit)
            ref = torch.cat([p.reshape(-1) for p in fits.layer(fits.a, s + 1) if p is not None])
            got = torch.cat([p.reshape(-1) for p in (fit.weight, fit.bias) if p is not None])
            self.corrections.append(float((ref - got).norm() / ref.norm().clamp_min(1e-30)))

    def segment_connect(self, s: int) -> str:
        """How segment s moves its layer: ``connect``, the output layer's own segment linearly."""
        return "linear" if s == self.segments - 1 else self.connect_kind

    def _moving(self, s: int, tau: float) -> State:
        f = self.fits
        state = self.mixed(s)
        f.set_layer(state, s, *f.connect_layer(self.segment_connect(s), s, f.adjusted[s], f.layer(f.b, s), tau))
        return state

    def _refit(self, s: int, tau: float) -> LayerFit:
        return self.fits.fit(s + 1, self.fits.features(self._moving(s, tau), s + 1))

    def state_at(self, s: int, tau: float) -> State:
        f = self.fits
        state = self._moving(s, tau)
        if s == self.segments - 1:      # the output layer's own segment: no refit
            return state
        if tau == 0.0:                  # the correction makes the refit exactly A's layer here
            return state
        fit = self._refit(s, tau)
        self.residuals[s + tau] = fit.relative_residual
        start = self._start_fits[s]
        params = []
        for fitted, a, first in zip((fit.weight, fit.bias), f.layer(f.a, s + 1), (start.weight, start.bias)):
            params.append(None if a is None else fitted + (1.0 - tau) * (a - first))
        f.set_layer(state, s + 1, *params)
        return state

    def describe(self) -> list[dict]:
        """Per segment: the layer that moves, the layer refit, the least-squares residuals."""
        f, out = self.fits, []
        for s in range(self.segments):
            inside = {t: r for t, r in self.residuals.items() if s <= t <= s + 1}
            last = s == self.segments - 1
            out.append({"index": s, "start": float(s), "end": float(s + 1), "kind": "output" if last else "refit",
                        "moves": f.modules[s], "connect": self.segment_connect(s),
                        "fits": None if last else f.modules[s + 1],
                        "from": "adjusted" if s else "A", "to": "B",
                        "start_residual": None if last else self._start_fits[s].relative_residual,
                        "end_residual": None if last else f.adjusted_residuals[s + 1],
                        "max_residual": max(inside.values()) if inside else None,
                        "correction": self.corrections[s]})
        return out


class BflyPath(LayerwisePath):
    """B-fly (module docstring): K - 1 segments, two layers move in each."""

    def __init__(self, space: ParameterSpace, fits: LayerFits, connect_kind: str = "arc", points_per_segment: int = 11):
        if fits.depth < 2:
            raise ValueError("B-fly needs at least one hidden layer")
        super().__init__(space, fits, fits.depth - 1, connect_kind, points_per_segment)

    def target(self, k: int) -> tuple:
        """Where layer k ends: Adj_k, except the output layer, which ends at B's."""
        return self.fits.layer(self.fits.b, k) if k == self.fits.depth - 1 else self.fits.adjusted[k]

    def state_at(self, s: int, tau: float) -> State:
        f = self.fits
        state = self.mixed(s)
        f.set_layer(state, s, *f.connect_layer(self.connect_kind, s, f.adjusted[s], f.layer(f.b, s), tau))
        f.set_layer(state, s + 1, *f.connect_layer(self.connect_kind, s + 1, f.layer(f.a, s + 1), self.target(s + 1),
                                                    tau))
        return state

    def describe(self) -> list[dict]:
        f = self.fits
        return [{"index": s, "start": float(s), "end": float(s + 1), "kind": "butterfly",
                 "moves": f.modules[s], "fits": None, "also_moves": f.modules[s + 1],
                 "end_residual": f.adjusted_residuals[s + 1] if s + 1 < f.depth - 1 else None}
                for s in range(self.segments)]
