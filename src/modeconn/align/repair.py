"""REPAIR (Jordan, Sedghi, Saukh, Entezari, Neyshabur, ICLR 2023): undo the variance collapse of
interpolated networks.

Between two aligned nets the straight line's interior loses activation variance layer after
layer; REPAIR gives every hidden channel of the interpolated net w(t) the pre-activation mean
and standard deviation ``(1 - t) * stat_A + t * stat_B`` of the endpoints (the std is
interpolated, not the variance, as in ``KellerJordan/REPAIR``), measured on training inputs.
A channel's statistics are those of the output of the Linear/conv layer that produces it,
before any nonlinearity: the layers are found from the traced permutation groups
(:mod:`modeconn.align.groups`): each Linear/conv whose output channels form a free group.

The correction is folded into the layer: for y = W x + b with mean m and std s at w(t),
``W <- W * g / s`` (rows) and ``b <- (b - m) * g / s + mu`` give (g, mu) exactly. The
reference code inserts a BatchNorm after each layer, recomputes it with one train-mode pass
over batches and fuses it; here the layers are corrected one after the other, each measured on
all ``samples`` inputs after the earlier ones were corrected, so the targets hold exactly on
those inputs (the later layers see the corrected earlier ones, as in the BN pass). Unlike the
reference's BN layers no epsilon is added to the variances, so the targets hold to float
rounding; a channel that is constant on the samples (var < 1e-12) is only shifted.

Channels normalised by a BatchNorm are left alone: recomputing BN statistics at each point
("RESET" in the paper), which the evaluation protocol does anyway, is REPAIR's special case
there. A layer without a bias can only be rescaled (its shift is reported as not folded).
"""
from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.func import functional_call

from modeconn.align.groups import PermutationSpec

DEAD = 1e-12  # a channel whose variance is below this is constant on the samples: shifted, not rescaled
_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


@dataclass
class RepairPlan:
    """Which layers REPAIR corrects (forward order) and which channels BN already resets."""

    layers: list[str]                       # module names of the corrected Linear/conv layers
    channels: int                           # channels they produce
    bn_layers: list[str] = field(default_factory=list)   # producers whose channels a BN normalises
    no_bias: list[str] = field(default_factory=list)     # corrected layers that can only be rescaled

    @property
    def reset_applies(self) -> bool:
        return bool(self.bn_layers)


def plan_repair(model: nn.Module, spec: PermutationSpec, input_shape: tuple[int, ...]) -> RepairPlan:
    """The Linear/conv layers producing each free permutation group (the hidden channels; the
    logits' group is fixed and not in ``spec``), in the order a forward pass calls them."""
    producers, bn = [], []
    for group in spec.groups:
        normalised = any(a.key.endswith(".running_mean") for a in group.axes)
        for axis in group.axes:
            if axis.dim != 0 or axis.offset != 0 or not axis.key.endswith(".weight"):
                continue
            name = axis.key[: -len(".weight")]
            module = model.get_submodule(name)
            if isinstance(module, _LAYERS):
                (bn if normalised else producers).append(name)
    order = _call_order(model, input_shape)
    producers.sort(key=order.index)
    return RepairPlan(layers=producers,
                      channels=sum(_out_channels(model.get_submodule(n)) for n in producers),
                      bn_layers=sorted(bn, key=order.index),
                      no_bias=[n for n in producers if model.get_submodule(n).bias is None])


def _out_channels(m: nn.Module) -> int:
    return m.out_features if isinstance(m, nn.Linear) else m.out_channels


def _call_order(model: nn.Module, input_shape) -> list[str]:
    calls: list[str] = []
    handles = [m.register_forward_hook(lambda mod, i, o, n=name: calls.append(n))
               for name, m in model.named_modules() if isinstance(m, _LAYERS)]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            p = next(model.parameters())
            model(torch.zeros(2, *input_shape, device=p.device, dtype=p.dtype))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return list(dict.fromkeys(calls))


class _Stop(Exception):
    """Raised by a hook once the statistics it needs are taken: the rest of the forward is skipped."""


class _Moments:
    """Per-channel sums of y and y^2 over samples (and spatial positions), in float64."""

    def __init__(self):
        self.n, self.s1, self.s2 = 0, None, None

    def add(self, y: torch.Tensor) -> None:
        y = y.detach().double().transpose(0, 1).reshape(y.shape[1], -1)
        s1, s2 = y.sum(1), (y * y).sum(1)
        self.s1 = s1 if self.s1 is None else self.s1 + s1
        self.s2 = s2 if self.s2 is None else self.s2 + s2
        self.n += y.shape[1]

    def mean_var(self) -> tuple[torch.Tensor, torch.Tensor]:
        mean = self.s1 / self.n
        return mean, (self.s2 / self.n - mean * mean).clamp_min(0.0)


@torch.no_grad()
def layer_stats(model: nn.Module, params: Mapping[str, torch.Tensor], x: torch.Tensor, layers: list[str],
                batch_size: int = 1000) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Per-channel (mean, variance) of each layer's output (pre-activation) over ``x``, eval mode.
    The forward stops after the last of ``layers``."""
    moments = {name: _Moments() for name in layers}
    last = layers[-1] if layers else None

    def hook(name):
        def record(module, inputs, output):
            moments[name].add(output)
            if name == last:
                raise _Stop
        return record

    handles = [model.get_submodule(n).register_forward_hook(hook(n)) for n in layers]
    was_training = model.training
    model.eval()
    try:
        for start in range(0, x.shape[0], batch_size):
            try:
                functional_call(model, dict(params), (x[start:start + batch_size],))
            except _Stop:
                pass
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return {name: m.mean_var() for name, m in moments.items()}


@dataclass
class Targets:
    """The endpoints' per-channel pre-activation statistics, per corrected layer."""

    mean_a: dict[str, torch.Tensor]
    std_a: dict[str, torch.Tensor]
    mean_b: dict[str, torch.Tensor]
    std_b: dict[str, torch.Tensor]

    def at(self, name: str, t: float) -> tuple[torch.Tensor, torch.Tensor]:
        return ((1 - t) * self.mean_a[name] + t * self.mean_b[name],
                (1 - t) * self.std_a[name] + t * self.std_b[name])


def endpoint_targets(model: nn.Module, plan: RepairPlan, params_a, params_b, x: torch.Tensor,
                     batch_size: int = 1000) -> Targets:
    """Measure both endpoints once (REPAIR's "goal" statistics come from them)."""
    sa = layer_stats(model, params_a, x, plan.layers, batch_size)
    sb = layer_stats(model, params_b, x, plan.layers, batch_size)
    return Targets({n: sa[n][0] for n in plan.layers}, {n: sa[n][1].sqrt() for n in plan.layers},
                   {n: sb[n][0] for n in plan.layers}, {n: sb[n][1].sqrt() for n in plan.layers})


@torch.no_grad()
def repair_params(model: nn.Module, plan: RepairPlan, params: Mapping[str, torch.Tensor], targets: Targets, t: float,
                  x: torch.Tensor, batch_size: int = 1000) -> dict[str, torch.Tensor]:
    """``params`` (the interpolated net at ``t``) with every planned layer's rescale and shift
    folded into its weight and bias, layer after layer in forward order."""
    out = dict(params)
    for name in plan.layers:
        mean, var = layer_stats(model, out, x, [name], batch_size)[name]
        goal_mean, goal_std = targets.at(name, t)
        alive = var > DEAD
        scale = torch.where(alive, goal_std / var.clamp_min(DEAD).sqrt(), torch.ones_like(var))
        w_key, b_key = f"{name}.weight", f"{name}.bias"
        w = out[w_key]
        out[w_key] = (w.double() * scale.reshape(-1, *([1] * (w.dim() - 1)))).to(w.dtype)
        if b_key in out:
            b = out[b_key]
            out[b_key] = ((b.double() - mean) * scale + goal_mean).to(b.dtype)
    return out


def variance_ratios(model: nn.Module, plan: RepairPlan, params: Mapping[str, torch.Tensor], targets: Targets,
                    x: torch.Tensor, batch_size: int = 1000) -> list[float]:
    """Per layer: the mean over channels of var(w(t)) / ((var_A + var_B) / 2), the paper's
    variance-collapse figure (1 = no collapse), for the net ``params``."""
    stats = layer_stats(model, params, x, plan.layers, batch_size)
    out = []
    for name in plan.layers:
        endpoint_var = (targets.std_a[name] ** 2 + targets.std_b[name] ** 2) / 2
        alive = endpoint_var > DEAD
        out.append(float((stats[name][1][alive] / endpoint_var[alive]).mean()))
    return out


class Repairer:
    """A per-point transform for the straight path between two aligned endpoints: REPAIR at every t
    (the ends are left as they are: their targets are their own statistics), and the run's
    ``repair`` section."""

    def __init__(self, model: nn.Module, spec: PermutationSpec, params_a: Mapping[str, torch.Tensor],
                 params_b: Mapping[str, torch.Tensor], x: torch.Tensor, batch_size: int = 1000):
        start = time.perf_counter()
        self.model, self.x, self.batch_size = model, x, batch_size
        self.plan = plan_repair(model, spec, tuple(x.shape[1:]))
        self.targets = endpoint_targets(model, self.plan, params_a, params_b, x, batch_size)
        self.seconds = time.perf_counter() - start
        self.points = 0

    def __call__(self, t: float, params: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if not self.plan.layers or t in (0.0, 1.0):
            return dict(params)
        start = time.perf_counter()
        out = repair_params(self.model, self.plan, params, self.targets, t, self.x, self.batch_size)
        self.seconds += time.perf_counter() - start
        self.points += 1
        return out

    def report(self, midpoint: Mapping[str, torch.Tensor]) -> dict:
        """The ``repair`` section: what was corrected and the midpoint's variance ratio before/after."""
        section = {"layers": self.plan.layers, "channels": self.plan.channels, "samples": int(self.x.shape[0]),
                   "points": self.points, "seconds": self.seconds,
                   "reset_applies": self.plan.reset_applies, "bn_layers": self.plan.bn_layers,
                   "shift_not_folded": self.plan.no_bias}
        if self.plan.layers:
            repaired = repair_params(self.model, self.plan, midpoint, self.targets, 0.5, self.x, self.batch_size)
            section["midpoint_variance_ratio"] = {
                "before": variance_ratios(self.model, self.plan, midpoint, self.targets, self.x, self.batch_size),
                "after": variance_ratios(self.model, self.plan, repaired, self.targets, self.x, self.batch_size)}
        return section
